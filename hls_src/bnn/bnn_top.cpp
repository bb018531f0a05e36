// BNN IP top function: LOAD (mode 0) fills the on-chip weight / threshold memories from the
// params buffer; CLASSIFY (mode 1) streams n_images images through the layer pipeline
// (a DATAFLOW region: the layers overlap across images, throughput is set by the slowest one,
// see the cycle model in bnn_config.h). Contract: FORMAT.md.
#include "bnn_top.h"

#include "bnn_config.h"
#include "bnn_layers.h"

namespace {

using bnn::Conv0Acc;
using bnn::Shape;

typedef Shape<PE0, SIMD0, 9, IN_C, C0> S0;
typedef Shape<PE1, SIMD1, 9, C0, C1> S1;
typedef Shape<PE2, SIMD2, 9, C1, C2> S2;
typedef Shape<PE3, SIMD3, 9, C2, C3> S3;
typedef Shape<PEF0, SIMDF0, 1, FC_IN, F0> SF0;
typedef Shape<PEF1, SIMDF1, 1, F0, NUM_CLASSES> SF1;
typedef ap_int<Conv0Acc<9, IN_C>::BITS> thr0_t;

static_assert(PARAM_WORDS == 5459, "FORMAT.md parameter buffer length");
static_assert(C3 % SIMDF0 == 0, "fc0 input words must tile a pool1 pixel");
static_assert(C0 % 2 == 0 && C1 % 2 == 0 && C2 % 2 == 0 && C3 % 2 == 0 && F0 % 2 == 0,
              "thresholds are packed two per word");

constexpr int COSIM_IMAGES = 4;  // depth hints for C/RTL co-simulation only
constexpr int POOL1_PIXELS = HP1 * WP1;
constexpr int COSIM_POOL1_PIXELS = COSIM_IMAGES * HP1 * WP1;
constexpr int IMAGE_PIXELS = IN_H * IN_W;
constexpr int COSIM_IMAGE_BYTES = COSIM_IMAGES * IN_H * IN_W * IN_C;
constexpr int COSIM_SCORES = COSIM_IMAGES * NUM_CLASSES;
constexpr int SPLIT = C3 / SIMDF0;

// On-chip memories: persist across starts (LOAD writes them, CLASSIFY reads them).
static ap_uint<SIMD0> w0[PE0][S0::TILES];
static thr0_t t0[PE0][S0::GROUPS];
static ap_uint<SIMD1> w1[PE1][S1::TILES];
static ap_uint<S1::THR_BITS> t1[PE1][S1::GROUPS];
static ap_uint<SIMD2> w2[PE2][S2::TILES];
static ap_uint<S2::THR_BITS> t2[PE2][S2::GROUPS];
static ap_uint<SIMD3> w3[PE3][S3::TILES];
static ap_uint<S3::THR_BITS> t3[PE3][S3::GROUPS];
static ap_uint<SIMDF0> wf0[PEF0][SF0::TILES];
static ap_uint<SF0::THR_BITS> tf0[PEF0][SF0::GROUPS];
static ap_uint<SIMDF1> wf1[PEF1][SF1::TILES];
static ap_uint<3> shf1[PEF1][SF1::GROUPS];
static ap_int<32> bf1[PEF1][SF1::GROUPS];

void load_all(const ap_uint<64> *params) {
    // word 0 is the magic / version word: the host checks it (validate_params) before a load.
    int pos = OFF_CONV0;
    bnn::load_weights<PE0, SIMD0, 9, IN_C, C0>(params, pos, w0, IN_C, C0);
    bnn::load_thresholds<PE0, S0::GROUPS>(params, pos, t0, C0, -Conv0Acc<9, IN_C>::BOUND,
                                          Conv0Acc<9, IN_C>::BOUND + 1);
    bnn::load_weights<PE1, SIMD1, 9, C0, C1>(params, pos, w1, C0, C1);
    bnn::load_thresholds<PE1, S1::GROUPS>(params, pos, t1, C1, 0, S1::MAXK + 1);
    bnn::load_weights<PE2, SIMD2, 9, C1, C2>(params, pos, w2, C1, C2);
    bnn::load_thresholds<PE2, S2::GROUPS>(params, pos, t2, C2, 0, S2::MAXK + 1);
    bnn::load_weights<PE3, SIMD3, 9, C2, C3>(params, pos, w3, C2, C3);
    bnn::load_thresholds<PE3, S3::GROUPS>(params, pos, t3, C3, 0, S3::MAXK + 1);
    bnn::load_weights<PEF0, SIMDF0, 1, FC_IN, F0>(params, pos, wf0, FC_IN, F0);
    bnn::load_thresholds<PEF0, SF0::GROUPS>(params, pos, tf0, F0, 0, SF0::MAXK + 1);
    bnn::load_weights<PEF1, SIMDF1, 1, F0, NUM_CLASSES>(params, pos, wf1, F0, NUM_CLASSES);
    bnn::load_shift_bias<PEF1, SF1::GROUPS>(params, pos, shf1, bf1, NUM_CLASSES);
}

// images (bytes, NHWC) -> one word of IN_C bytes per pixel
void read_images(const ap_uint<8> *images, hls::stream<ap_uint<8 * IN_C> > &out, int n) {
    int rd = 0;
    for (int i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = COSIM_IMAGES
        for (int p = 0; p < IMAGE_PIXELS; p++) {
#pragma HLS PIPELINE II = IN_C
            ap_uint<8 * IN_C> px = 0;
            for (int c = 0; c < IN_C; c++) px.range(8 * c + 7, 8 * c) = images[rd++];
            out.write(px);
        }
    }
}

// pool1 pixels (C3 bits) -> fc0 input words (SIMDF0 bits); NHWC flatten order is kept.
void pixels_to_words(hls::stream<ap_uint<C3> > &in, hls::stream<ap_uint<SIMDF0> > &out, int n) {
    for (int i = 0; i < n * POOL1_PIXELS; i++) {
#pragma HLS LOOP_TRIPCOUNT min = POOL1_PIXELS max = COSIM_POOL1_PIXELS
        const ap_uint<C3> px = in.read();
        for (int j = 0; j < SPLIT; j++) {
#pragma HLS PIPELINE II = 1
            out.write((ap_uint<SIMDF0>)(px >> (SIMDF0 * j)));
        }
    }
}

void write_scores(hls::stream<ap_int<32> > &in, ap_int<32> *scores, int n) {
    int wr = 0;
    for (int i = 0; i < n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = COSIM_IMAGES
        for (int c = 0; c < NUM_CLASSES; c++) {
#pragma HLS PIPELINE II = 1
            scores[wr++] = in.read();
        }
    }
}

void classify(const ap_uint<8> *images, ap_int<32> *scores, int n) {
#pragma HLS DATAFLOW
    // the weight memories are written only by LOAD: stable during a CLASSIFY run
#pragma HLS STABLE variable = w0
#pragma HLS STABLE variable = t0
#pragma HLS STABLE variable = w1
#pragma HLS STABLE variable = t1
#pragma HLS STABLE variable = w2
#pragma HLS STABLE variable = t2
#pragma HLS STABLE variable = w3
#pragma HLS STABLE variable = t3
#pragma HLS STABLE variable = wf0
#pragma HLS STABLE variable = tf0
#pragma HLS STABLE variable = wf1
#pragma HLS STABLE variable = shf1
#pragma HLS STABLE variable = bf1
    hls::stream<ap_uint<8 * IN_C> > s_img("s_img");
    hls::stream<ap_uint<C0> > s_c0("s_c0");
    hls::stream<ap_uint<C1> > s_c1("s_c1");
    hls::stream<ap_uint<C1> > s_p0("s_p0");
    hls::stream<ap_uint<C2> > s_c2("s_c2");
    hls::stream<ap_uint<C3> > s_c3("s_c3");
    hls::stream<ap_uint<C3> > s_p1("s_p1");
    hls::stream<ap_uint<SIMDF0> > s_f0in("s_f0in");
    hls::stream<ap_uint<SIMDF1> > s_f0("s_f0");
    hls::stream<ap_int<32> > s_sc("s_sc");
#pragma HLS STREAM variable = s_img depth = FIFO_IMG
#pragma HLS STREAM variable = s_c0 depth = FIFO_C0
#pragma HLS STREAM variable = s_c1 depth = FIFO_MIN
#pragma HLS STREAM variable = s_p0 depth = FIFO_P0
#pragma HLS STREAM variable = s_c2 depth = FIFO_C2
#pragma HLS STREAM variable = s_c3 depth = FIFO_MIN
#pragma HLS STREAM variable = s_p1 depth = FIFO_MIN
#pragma HLS STREAM variable = s_f0in depth = FIFO_F0IN
#pragma HLS STREAM variable = s_f0 depth = FIFO_F0
#pragma HLS STREAM variable = s_sc depth = FIFO_MIN

    read_images(images, s_img, n);
    bnn::conv0_3x3<PE0, SIMD0, IN_H, IN_W, IN_C, C0>(s_img, s_c0, w0, t0, IN_H, IN_W, IN_C, C0, n);
    bnn::binconv_3x3<PE1, SIMD1, H0, W0, C0, C1>(s_c0, s_c1, w1, t1, H0, W0, C0, C1, n);
    bnn::pool2x2_or<W1, C1>(s_c1, s_p0, H1, W1, n);
    bnn::binconv_3x3<PE2, SIMD2, HP0, WP0, C1, C2>(s_p0, s_c2, w2, t2, HP0, WP0, C1, C2, n);
    bnn::binconv_3x3<PE3, SIMD3, H2, W2, C2, C3>(s_c2, s_c3, w3, t3, H2, W2, C2, C3, n);
    bnn::pool2x2_or<W3, C3>(s_c3, s_p1, H3, W3, n);
    pixels_to_words(s_p1, s_f0in, n);
    bnn::fc_binary<PEF0, SIMDF0, SIMDF1, FC_IN, F0>(s_f0in, s_f0, wf0, tf0, FC_IN, F0, n);
    bnn::fc_output<PEF1, SIMDF1, F0, NUM_CLASSES>(s_f0, s_sc, wf1, shf1, bf1, F0, NUM_CLASSES, n);
    write_scores(s_sc, scores, n);
}

}  // namespace

void bnn_top(const ap_uint<64> *params, const ap_uint<8> *images, ap_int<32> *scores,
             ap_uint<32> mode, ap_uint<32> n_images) {
#pragma HLS INTERFACE m_axi port = params offset = slave bundle = gmem_params depth = PARAM_WORDS latency = AXI_LATENCY num_read_outstanding = AXI_OUTSTANDING num_write_outstanding = AXI_UNUSED_OUTSTANDING max_read_burst_length = AXI_MAX_BURST max_write_burst_length = AXI_UNUSED_BURST
#pragma HLS INTERFACE m_axi port = images offset = slave bundle = gmem_images depth = COSIM_IMAGE_BYTES latency = AXI_LATENCY num_read_outstanding = AXI_OUTSTANDING num_write_outstanding = AXI_UNUSED_OUTSTANDING max_read_burst_length = AXI_MAX_BURST max_write_burst_length = AXI_UNUSED_BURST
#pragma HLS INTERFACE m_axi port = scores offset = slave bundle = gmem_scores depth = COSIM_SCORES latency = AXI_LATENCY num_read_outstanding = AXI_UNUSED_OUTSTANDING num_write_outstanding = AXI_OUTSTANDING max_read_burst_length = AXI_UNUSED_BURST max_write_burst_length = AXI_MAX_BURST
#pragma HLS INTERFACE s_axilite port = params bundle = control
#pragma HLS INTERFACE s_axilite port = images bundle = control
#pragma HLS INTERFACE s_axilite port = scores bundle = control
#pragma HLS INTERFACE s_axilite port = mode bundle = control
#pragma HLS INTERFACE s_axilite port = n_images bundle = control
#pragma HLS INTERFACE s_axilite port = return bundle = control
    // one weight / threshold bank per PE lane: every lane reads its SIMD-bit tile each cycle
#pragma HLS ARRAY_PARTITION variable = w0 complete dim = 1
#pragma HLS ARRAY_PARTITION variable = t0 complete dim = 1
#pragma HLS ARRAY_PARTITION variable = w1 complete dim = 1
#pragma HLS ARRAY_PARTITION variable = t1 complete dim = 1
#pragma HLS ARRAY_PARTITION variable = w2 complete dim = 1
#pragma HLS ARRAY_PARTITION variable = t2 complete dim = 1
#pragma HLS ARRAY_PARTITION variable = w3 complete dim = 1
#pragma HLS ARRAY_PARTITION variable = t3 complete dim = 1
#pragma HLS ARRAY_PARTITION variable = wf0 complete dim = 1
#pragma HLS ARRAY_PARTITION variable = tf0 complete dim = 1
#pragma HLS ARRAY_PARTITION variable = wf1 complete dim = 1
#pragma HLS ARRAY_PARTITION variable = shf1 complete dim = 1
#pragma HLS ARRAY_PARTITION variable = bf1 complete dim = 1
    if (mode == BNN_MODE_LOAD) {
        load_all(params);
    } else if (mode == BNN_MODE_CLASSIFY) {
        // 1 .. MAX_BATCH images; a larger count is cut to MAX_BATCH, 0 does nothing
        const int n = (n_images > (unsigned)MAX_BATCH) ? MAX_BATCH : (int)n_images;
        if (n > 0) classify(images, scores, n);
    }
}
