// CoDeNet engine configuration: the engine constants of FORMAT.md ("Engine constants") plus the
// descriptor layout and codes. runtime/engines/codenet_config.py mirrors these numbers (a test
// checks that they agree).
//
// Parsed by Python (same parser as bnn_config.h): keep every constant on one line of the form
// `constexpr int NAME = <integer or expression of earlier names>;` ('/' is C integer division).
//
// Cycle model (MODELLED): every layer is a DATAFLOW region (codenet_dataflow.h) of a reader, a
// compute stage and a writer, each a few pipelined loops (II = 1) per output row and pixel group
// (layout v3, FORMAT.md "Memory": every arena access is a run of whole beats); the arena and
// weights ports move ARENA_BUS_BYTES = 16 bytes a beat. The arena port issues explicit bursts
// (codenet_port.h): readers keep their requests AXI_OUTSTANDING bursts ahead of their data,
// writers take their write responses lagged, so a stage pays the AXI latency once per layer
// (EV_LATENCY) and its runs only their beats, capped by the outstanding-request limit (EV_QUEUED).
// The C simulation logs every loop entry and blocking access as an event (phase, kind EV_*,
// trips, beats; codenet_csim_events); runtime/measure/codenet_cycles.py derives the same events
// from the descriptors (tests/test_codenet_cycles.py proves them equal) and charges each its
// trips, a pipeline depth (DEPTH_*), and the AXI latency with the outstanding-request and burst
// limits (AXI_*, below, with their sources). A layer = descriptor + loads, then its slowest stage
// plus the longest event of each other stage (fill / drain); a frame = the sum of its layers.
//   desc    : DESC_WORDS (one burst on the 32-bit program port)
//   load    : gather table, requant records and zero points, 1x1 weights (one word a cycle) or
//             dw weights (one row a cycle) and the tile table (one tile a cycle), the 1x1
//             extraction table (K entries)
//   CONV1X1 : per output row and input group: the group's run of the gathered blocks, then its
//             pixels' beats in pixel order (PATCH3X3: up to 3 input-row runs, then 9 tap beats
//             per pixel); compute one loop of SB pops + OT x KT MAC steps per computed pixel;
//             per output group: its OT beats per pixel into the group buffer, then one run
//   DW3X3   : per PE-channel tile and input row: the tile's block of each group (one run per
//             group and block; a shuffled tile's blocks re-ordered on chip) and a fill loop; per
//             output row: the dilation run (deformable), one pixel loop (one pixel a cycle), the
//             row's output runs (one per group)
#ifndef CODENET_CONFIG_H
#define CODENET_CONFIG_H

// ---- engine constants (FORMAT.md) ----
constexpr int PA = 16;                 // input channels per cycle (1x1, 4-bit weights)
constexpr int PE = 16;                 // output channels per cycle (1x1); dw: PE channels x 9 taps
constexpr int CLOCK_MHZ = 250;
constexpr int MAX_CH = 1024;           // channels of any layer input / output
constexpr int MAX_W = 256;
constexpr int MAX_H = 256;
constexpr int MAX_IMG = 1024;          // conv1x1 / PATCH3X3 tensor height and width (no line buffer)
constexpr int W_BUF_BYTES = 262144;    // a 1x1 layer's packed weights (cout * row bytes) fit this
constexpr int MAX_LAYERS = 512;
constexpr int ACC_BITS = 24;
constexpr int LINE_ROWS = 15;          // line buffer rows (dilation 0..7 each side)
constexpr int MAX_DIL = 7;
constexpr int TAPS = 9;                // taps of a 3x3 window
constexpr int REQUANT_STAGES = 1;     // requantization stages (PE lanes each), shared by both ops
// 1x1 MAC: packed DSP48E2 products (two output lanes share an input) summed along PCOUT -> PCIN
// cascades, each separated once at its end (codenet_engine.h mac_chain). The low field of a
// cascade (18 bits signed) holds CHAIN products: 4-bit weights 16 x 8 x 255 < 2^17 (the whole
// weight word's PA inputs), 8-bit weights 4 x 128 x 255 < 2^17 (the PA / 2 inputs as two cascades).
constexpr int ACT_VALUE_BITS = 9;     // an activation value: int8 or uint8 (act_t)
constexpr int PACK_SHIFT = 18;        // the low field of a packed DSP48E2 product (bits, mac_chain)
constexpr int CHAIN_4BIT = PA;         // packed DSPs per cascade, 4-bit weights
constexpr int CHAIN_8BIT = 4;          // packed DSPs per cascade, 8-bit weights
// Depthwise: taps 0 .. DW_DSP_TAPS - 1 of each of the PE channels on a DSP48E2 cascade (one product
// per DSP: the taps share no operand, so no packing), the rest on LUT multipliers. The DSP budget
// sets it: 360 - (1x1 PA x PE / 2 + PA / 2 x PE / 2 = 192, requant PE = 16, row-size products 27)
// = 125 left, at most 7 taps (112); 6 (96 DSP, 331 in all) leaves margin for csynth's own DSP use.
constexpr int DW_DSP_TAPS = 6;

// ---- derived sizes of the on-chip buffers ----
// The 1x1 weight buffer holds PE lanes of W_WORDS words of W_WORD_BYTES bytes (one word: PA
// 4-bit or PA / 2 8-bit weights of one row); output channel o uses lane o % PE, words
// (o / PE) * ceil(row_bytes / W_WORD_BYTES) onwards. Padding every row to whole words and cout
// to whole lanes costs a little over W_BUF_BYTES: W_WORDS is the largest
// ceil(cout / PE) * ceil(row_bytes / W_WORD_BYTES) over every layer the contract admits
// (cout * row_bytes <= W_BUF_BYTES, cout and K <= MAX_CH, 4- or 8-bit; 2176 at cout = 257,
// K = 1017, 8-bit; tests/test_codenet_hls_build.py re-derives it). W_BUF_BYTES / (PE * W_WORD_BYTES)
// = 2048 would be exact for channel counts that are multiples of PE and PA.
constexpr int W_WORD_BYTES = PA / 2;
constexpr int W_WORDS = 2176;
constexpr int MAX_K = MAX_CH;                           // 1x1 inputs per pixel (PATCH3X3: 9 * cin)
constexpr int CH_TILES = MAX_CH / PE;                   // PE-channel tiles of MAX_CH

// ---- wide memory ports ----
constexpr int ARENA_BUS_BYTES = 16;    // arena / weights m_axi width (ap_uint<128> beats)
constexpr int GROUP_PIX = 16;          // tensor layout v3: pixels of a row group (FORMAT.md "Memory"): a
                                       // channel block of a group is one run of up to AXI_MAX_BURST beats
constexpr int PIX_BEATS = 128;         // 1x1 pixel buffer: the beats of one pixel's input runs
constexpr int STREAM_BEATS = 64;       // depth of the streams between a DATAFLOW layer's stages
constexpr int TAP_COLS = 3;            // tap columns of a 3x3 window
constexpr int LB_COPIES = 2;           // dw line buffer: copies of each row bank (two read ports each
                                       // serve the TAP_COLS column taps of a pixel in one cycle)
constexpr int PATCH_ROW_BEATS = 256;   // streaming PATCH3X3: one input row in the reader's row buffer
                                       // (a 1024-pixel 3-channel image row is 192 beats)
// ---- descriptor ----
constexpr int DESC_WORDS = 32;
constexpr int D_OP = 0;
constexpr int D_IN_OFF = 1;
constexpr int D_IN_H = 2;
constexpr int D_IN_W = 3;
constexpr int D_IN_CS = 4;
constexpr int D_CIN = 5;
constexpr int D_IN_MODE = 6;
constexpr int D_STRIDE = 7;
constexpr int D_IN_ZP = 8;
constexpr int D_FLAGS = 9;
constexpr int D_OUT_OFF = 10;
constexpr int D_OUT_H = 11;
constexpr int D_OUT_W = 12;
constexpr int D_OUT_CS = 13;
constexpr int D_OUT_CHOFF = 14;
constexpr int D_COUT = 15;
constexpr int D_GATHER_OFF = 16;
constexpr int D_W_OFF = 17;
constexpr int D_Q_OFF = 18;
constexpr int D_CLAMP_LO = 19;
constexpr int D_CLAMP_HI = 20;
constexpr int D_DIL_OFF = 21;
constexpr int D_DIL_CS = 22;
constexpr int D_PAD = 23;
constexpr int D_RESERVED = 24;         // words 24..31 are reserved, 0

// ---- codes ----
constexpr int OP_CONV1X1 = 0;
constexpr int OP_DW3X3 = 1;
constexpr int MODE_DIRECT = 0;
constexpr int MODE_UPSAMPLE2 = 1;
constexpr int MODE_PATCH3X3 = 2;
constexpr int FLAG_IN_SIGNED = 1;
constexpr int FLAG_OUT_SIGNED = 2;
constexpr int FLAG_DEFORMABLE = 4;
constexpr int FLAG_SHIFT_ONLY = 8;
constexpr int FLAG_W8 = 16;
constexpr int FLAGS_ALL = 31;

// ---- weights blob ----
constexpr int SECTION_ALIGN = 8;
constexpr int RQ_RECORD_BYTES = 8;     // int32 bias, int16 M, uint8 S, int8 reserved
constexpr int MAX_SHIFT = 31;
constexpr int MAX_PAD = 1;

// ---- memory system (used by the INTERFACE pragmas of codenet_top.cpp and by the cycle model
// runtime/measure/codenet_cycles.py; change them here only) ----
// AXI_LATENCY: cycles from a read request to its first beat, and from a burst's last write beat to
//   its write response (Vitis HLS's default expected m_axi latency is 64, UG1399 "Options for
//   Controlling AXI4 Burst Behavior"; the Zynq US+ PS-DDR path has no early write response,
//   UG1085 "AXI Interface Programming").
// AXI_OUTSTANDING: requests in flight per port and direction (UG1085: the HP ports' AXI FIFO
//   interface has a read / write command acceptance capability of eight).
// AXI_MAX_BURST: beats per burst (UG1085: the PS side of the PL interfaces is AXI3, "AXI4 access
//   in the PL is limited to a burst length of 16"; longer bursts are split by the interconnect).
constexpr int AXI_LATENCY = 64;
constexpr int AXI_OUTSTANDING = 8;
constexpr int AXI_MAX_BURST = 16;
constexpr int PROG_MAX_BURST = DESC_WORDS;   // one descriptor per burst on the 32-bit program port
constexpr int AXI_UNUSED_OUTSTANDING = 1;    // the direction a read-only port never uses:
constexpr int AXI_UNUSED_BURST = 2;            // the smallest adapter FIFOs Vitis accepts

// ---- pipeline depths of the engine's loops (ESTIMATES for the cycle model, not used by the HLS
// code: the first csynth report gives the real ones and replaces these numbers) ----
constexpr int DEPTH_MEM_LOOP = 3;      // address, request, data register (+ AXI_LATENCY when it reads)
constexpr int DEPTH_XSRC_LOOP = 2;     // loops without memory access outside the MAC / pixel loops
                                       // (tables, the weight parser, the PATCH3X3 tap emission)
// DEPTH_MAC_LOOP: weight word read (1), first packed DSP (A/B, M, P registers: 3), one P register
// per further DSP of the longest cascade (CHAIN_4BIT - 1: the systolic PCOUT -> PCIN chain; was a
// 4-level LUT adder tree), field separation / sign correction (1), accumulate (1), requant multiply
// (3; shift and clamp in its last stage). The 8-bit datapath's cascades (CHAIN_8BIT plus one add)
// and the depthwise pixel loop (LUT taps, then a DW_DSP_TAPS cascade) are shorter: the one
// constant takes the longest, the 4-bit chain.
constexpr int DEPTH_MAC_LOOP = 1 + 3 + CHAIN_4BIT - 1 + 1 + 1 + 3;
constexpr int DEPTH_DW_PIXEL = 13;     // a pass of a non-pipelined loop body (EV_STEP; the streaming
                                       // engine has none left: its depthwise pixel loop is pipelined)

// ---- cycle accounting phases (C simulation: codenet_csim_cycles) ----
constexpr int PH_DESC = 0;
constexpr int PH_LOAD = 1;
constexpr int PH_READ = 2;
constexpr int PH_COMPUTE = 3;
constexpr int PH_WRITE = 4;
constexpr int PH_ENTRIES = 5;          // pipelined-loop entries (not cycles)
constexpr int N_PHASES = 6;
// kinds of events the C simulation logs (codenet_csim_events; runtime/measure/codenet_cycles.py)
constexpr int EV_LOOP = 0;             // a pipelined loop without memory access: trips iterations
constexpr int EV_BURST = 1;            // a pipelined loop moving one contiguous run of `beats` beats
constexpr int EV_SINGLES = 2;          // a pipelined loop issuing `beats` separate one-beat requests
constexpr int EV_BLOCKING = 3;         // one blocking one-beat access outside any loop
constexpr int EV_STEP = 4;             // one pass of a non-pipelined loop body
constexpr int EV_QUEUED = 5;           // a pipelined loop moving `beats` beats in bursts requested ahead
                                       // (codenet_port.h): no latency of its own, AXI_OUTSTANDING bursts
                                       // in flight cap its rate
constexpr int EV_LATENCY = 6;          // a stage's AXI latency, paid once: its first read data, or its
                                       // last write responses (the layer's barrier)
constexpr int EV_FIELDS = 5;           // phase, kind, trips, beats, count

#endif  // CODENET_CONFIG_H
