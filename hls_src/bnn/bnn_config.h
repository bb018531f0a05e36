// BNN engine configuration: the one source of truth for every network constant and for the
// per-layer parallelism of the HLS kernel (runtime/engines/bnn_config.py mirrors these numbers
// and a test checks that the two agree). Contract: FORMAT.md in this folder.
//
// Parsed by Python (runtime/engines/bnn_config.py: read_header_constants): keep every constant on
// one line of the form `constexpr int NAME = <integer or expression of earlier names>;`
// ('/' is C integer division).
//
// Parallelism: PE = output channels computed in parallel, SIMD = input bits consumed per cycle
// and per PE (conv0: SIMD0 = 8-bit input pixels (channels of one tap) per cycle, one add/sub each).
// Modelled cycles per image and layer (II = 1 everywhere; each layer first buffers its input
// image, then computes; the layers run as a DATAFLOW pipeline, so throughput is set by the
// slowest layer):
//   conv  : H*W (fill) + Ho*Wo * ceil(Cout/PE) * 9 * ceil(Cin/SIMD)
//   pool  : H*W
//   fc    : ceil(Cin/SIMD) (fill) + ceil(Cout/PE) * ceil(Cin/SIMD)
// With the numbers below: conv0 784 + 6,084; conv1 676 + 20,736; conv2 144 + 7,200;
// conv3 100 + 9,216; fc0 16 + 1,024; fc1 4 + 40; input read 784 (8-bit port).
// Slowest: conv1, 21,412 cycles per image = 11,675 images/s at 250 MHz (modelled).
// LOAD (mode 0) walks the weight rows one bit per cycle: about PARAM_WORDS * 64 = 349,376 cycles
// (1.4 ms at 250 MHz), once per model.
#ifndef BNN_CONFIG_H
#define BNN_CONFIG_H

#define BNN_FORMAT_VERSION 1
#define BNN_MAGIC 0x00000001424E4E31ULL

// ---- network (FORMAT.md) ----
constexpr int IN_H = 28;
constexpr int IN_W = 28;
constexpr int IN_C = 1;
constexpr int C0 = 32;
constexpr int C1 = 32;
constexpr int C2 = 64;
constexpr int C3 = 64;
constexpr int F0 = 256;
constexpr int NUM_CLASSES = 10;
constexpr int MAX_BATCH = 65536;
constexpr int TRIPCOUNT_IMAGES = 16;   // images per start the LOOP_TRIPCOUNT estimates assume (reports only)

// spatial sizes: 3x3 valid convs, 2x2 stride-2 pools
constexpr int H0 = IN_H - 2;
constexpr int W0 = IN_W - 2;
constexpr int H1 = H0 - 2;
constexpr int W1 = W0 - 2;
constexpr int HP0 = H1 / 2;
constexpr int WP0 = W1 / 2;
constexpr int H2 = HP0 - 2;
constexpr int W2 = WP0 - 2;
constexpr int H3 = H2 - 2;
constexpr int W3 = W2 - 2;
constexpr int HP1 = H3 / 2;
constexpr int WP1 = W3 / 2;
constexpr int FC_IN = HP1 * WP1 * C3;

// ---- fan-in K per layer (bits per weight row; conv0: 8-bit pixels per row) ----
constexpr int K0 = 9 * IN_C;
constexpr int K1 = 9 * C0;
constexpr int K2 = 9 * C1;
constexpr int K3 = 9 * C2;
constexpr int KF0 = FC_IN;
constexpr int KF1 = F0;

// ---- 64-bit words per weight row: ceil(K / 64) ----
constexpr int WPR0 = (K0 + 63) / 64;
constexpr int WPR1 = (K1 + 63) / 64;
constexpr int WPR2 = (K2 + 63) / 64;
constexpr int WPR3 = (K3 + 63) / 64;
constexpr int WPRF0 = (KF0 + 63) / 64;
constexpr int WPRF1 = (KF1 + 63) / 64;

// ---- parameter buffer layout (word offsets; FORMAT.md "Parameter buffer") ----
constexpr int OFF_CONV0 = 1;
constexpr int OFF_CONV1 = OFF_CONV0 + C0 * WPR0 + C0 / 2;
constexpr int OFF_CONV2 = OFF_CONV1 + C1 * WPR1 + C1 / 2;
constexpr int OFF_CONV3 = OFF_CONV2 + C2 * WPR2 + C2 / 2;
constexpr int OFF_FC0 = OFF_CONV3 + C3 * WPR3 + C3 / 2;
constexpr int OFF_FC1 = OFF_FC0 + F0 * WPRF0 + F0 / 2;
constexpr int PARAM_WORDS = OFF_FC1 + NUM_CLASSES * WPRF1 + NUM_CLASSES;

// ---- parallelism ----
constexpr int PE0 = 32;
constexpr int SIMD0 = 1;
constexpr int PE1 = 8;
constexpr int SIMD1 = 32;
constexpr int PE2 = 8;
constexpr int SIMD2 = 32;
constexpr int PE3 = 8;
constexpr int SIMD3 = 32;
constexpr int PEF0 = 4;
constexpr int SIMDF0 = 64;
constexpr int PEF1 = 1;
constexpr int SIMDF1 = 64;

constexpr int CLOCK_MHZ = 250;

// ---- DATAFLOW stream depths (bnn_top.cpp classify; simulated by runtime/measure/bnn_dataflow.py) ----
// A stream into a stage that buffers its whole input image before computing (conv, fc) holds one
// image of items, so that its producer runs ahead while that stage computes; with depth 2 the
// producer stalls for the whole compute phase (simulated: 26,796 cycles per image instead of the
// slowest stage's 21,412). Streams into stages that consume as they go take FIFO_MIN.
constexpr int FIFO_MIN = 2;
constexpr int FIFO_IMG = IN_H * IN_W;          // -> conv0
constexpr int FIFO_C0 = H0 * W0;               // -> conv1
constexpr int FIFO_P0 = HP0 * WP0;             // -> conv2
constexpr int FIFO_C2 = H2 * W2;               // -> conv3
constexpr int FIFO_F0IN = FC_IN / SIMDF0;      // -> fc0
constexpr int FIFO_F0 = F0 / SIMDF1;           // -> fc1

// ---- m_axi settings (same values and sources as hls_src/codenet/codenet_config.h "memory system";
// a test checks that the two headers agree) ----
constexpr int AXI_LATENCY = 64;
constexpr int AXI_OUTSTANDING = 8;
constexpr int AXI_MAX_BURST = 16;
constexpr int AXI_UNUSED_OUTSTANDING = 1;
constexpr int AXI_UNUSED_BURST = 2;

#endif  // BNN_CONFIG_H
