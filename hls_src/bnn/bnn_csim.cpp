// Testbench side (not synthesized): plain-C entry points of the C simulation, loaded through
// ctypes (runtime/engines/csim.py). bnn_csim_run drives bnn_top exactly as the host drives the
// IP; the layer entries run single blocks of bnn_layers.h -- the SAME templates and loaders
// that bnn_top instantiates -- on arbitrary shapes within the maxima below.
//
// Boundary conventions of the layer entries:
//   activations : one uint8 per element (0 / 1 for bits; 0..255 for conv0 pixels), NHWC,
//                 image-major: (n, h, w, c), or (n, c) for the fully connected layers;
//   weights     : packed rows exactly as in the params buffer (FORMAT.md): cout rows of
//                 ceil(K / 64) uint64 words, input index b = (ky * 3 + kx) * cin + ci (conv) or
//                 b = i (fc) is bit b % 64 of word b / 64;
//   thresholds  : int32 per output channel; fc_out: shift uint32 (0..7), bias int32.
//   variant     : which parallelism to instantiate (0 = the one bnn_top uses for that block,
//                 1 = another PE / SIMD pair, so the tests also cover partial lanes and folds).
// Every entry returns 0, or -1 when a size is outside the maxima (nothing is written then).
#include <stdint.h>
#include <string.h>

#include <vector>

#include "bnn_config.h"
#include "bnn_layers.h"
#include "bnn_top.h"

namespace {

// Layer-entry maxima (the network's own sizes fit in them).
constexpr int T_MAXH = 28;
constexpr int T_MAXW = 28;
constexpr int T_MAXCIN0 = 4;      // conv0 input channels
constexpr int T_MAXC = 64;        // binary conv channels
constexpr int T_MAXFIN = 1024;    // fc inputs
constexpr int T_MAXFOUT = 256;    // fc outputs
constexpr int T_MAXOIN = 256;     // output layer inputs
constexpr int T_MAXOUT = 16;      // output layer classes
constexpr int CSIM_CHUNK = 64;    // images per bnn_top call in bnn_csim_run

using bnn::Shape;

// thresholds (int32 per channel) -> the params-buffer words (two per word)
std::vector<ap_uint<64> > pack_rows_and_thresholds(const uint64_t *rows, int nrows, int row_words,
                                                   const int32_t *thr, int cout) {
    std::vector<ap_uint<64> > words;
    for (int i = 0; i < nrows * row_words; i++) words.push_back((ap_uint<64>)rows[i]);
    for (int c = 0; c < cout; c += 2) {
        ap_uint<64> wd = 0;
        wd.range(31, 0) = (ap_uint<32>)(uint32_t)thr[c];
        if (c + 1 < cout) wd.range(63, 32) = (ap_uint<32>)(uint32_t)thr[c + 1];
        words.push_back(wd);
    }
    return words;
}

template <int PE, int SIMD>
int conv0_impl(const uint8_t *in, const uint64_t *wrows, const int32_t *thr, uint8_t *out, int n,
               int h, int w, int cin, int cout) {
    typedef Shape<PE, SIMD, 9, T_MAXCIN0, T_MAXC> S;
    typedef bnn::Conv0Acc<9, T_MAXCIN0> A;
    static ap_uint<SIMD> wm[PE][S::TILES];
    static ap_int<A::BITS> tm[PE][S::GROUPS];
    std::vector<ap_uint<64> > words = pack_rows_and_thresholds(wrows, cout, (9 * cin + 63) / 64, thr, cout);
    int pos = 0;
    bnn::load_weights<PE, SIMD, 9, T_MAXCIN0, T_MAXC>(words.data(), pos, wm, cin, cout);
    bnn::load_thresholds<PE, S::GROUPS>(words.data(), pos, tm, cout, -A::BOUND, A::BOUND + 1);
    hls::stream<ap_uint<8 * T_MAXCIN0> > s_in;
    hls::stream<ap_uint<T_MAXC> > s_out;
    for (int i = 0; i < n * h * w; i++) {
        ap_uint<8 * T_MAXCIN0> px = 0;
        for (int c = 0; c < cin; c++) px.range(8 * c + 7, 8 * c) = in[i * cin + c];
        s_in.write(px);
    }
    bnn::conv0_3x3<PE, SIMD, T_MAXH, T_MAXW, T_MAXCIN0, T_MAXC>(s_in, s_out, wm, tm, h, w, cin, cout, n);
    for (int i = 0; i < n * (h - 2) * (w - 2); i++) {
        const ap_uint<T_MAXC> px = s_out.read();
        for (int c = 0; c < cout; c++) out[i * cout + c] = (uint8_t)px[c];
    }
    return 0;
}

template <int PE, int SIMD>
int binconv_impl(const uint8_t *in, const uint64_t *wrows, const int32_t *thr, uint8_t *out, int n,
                 int h, int w, int cin, int cout) {
    typedef Shape<PE, SIMD, 9, T_MAXC, T_MAXC> S;
    static ap_uint<SIMD> wm[PE][S::TILES];
    static ap_uint<S::THR_BITS> tm[PE][S::GROUPS];
    std::vector<ap_uint<64> > words = pack_rows_and_thresholds(wrows, cout, (9 * cin + 63) / 64, thr, cout);
    int pos = 0;
    bnn::load_weights<PE, SIMD, 9, T_MAXC, T_MAXC>(words.data(), pos, wm, cin, cout);
    bnn::load_thresholds<PE, S::GROUPS>(words.data(), pos, tm, cout, 0, S::MAXK + 1);
    hls::stream<ap_uint<T_MAXC> > s_in, s_out;
    for (int i = 0; i < n * h * w; i++) {
        ap_uint<T_MAXC> px = 0;
        for (int c = 0; c < cin; c++) px[c] = in[i * cin + c] & 1;
        s_in.write(px);
    }
    bnn::binconv_3x3<PE, SIMD, T_MAXH, T_MAXW, T_MAXC, T_MAXC>(s_in, s_out, wm, tm, h, w, cin, cout, n);
    for (int i = 0; i < n * (h - 2) * (w - 2); i++) {
        const ap_uint<T_MAXC> px = s_out.read();
        for (int c = 0; c < cout; c++) out[i * cout + c] = (uint8_t)px[c];
    }
    return 0;
}

template <int PE, int SIMD>
int fc_impl(const uint8_t *in, const uint64_t *wrows, const int32_t *thr, uint8_t *out, int n, int cin,
            int cout) {
    typedef Shape<PE, SIMD, 1, T_MAXFIN, T_MAXFOUT> S;
    constexpr int OSIMD = 64;
    static ap_uint<SIMD> wm[PE][S::TILES];
    static ap_uint<S::THR_BITS> tm[PE][S::GROUPS];
    std::vector<ap_uint<64> > words = pack_rows_and_thresholds(wrows, cout, (cin + 63) / 64, thr, cout);
    int pos = 0;
    bnn::load_weights<PE, SIMD, 1, T_MAXFIN, T_MAXFOUT>(words.data(), pos, wm, cin, cout);
    bnn::load_thresholds<PE, S::GROUPS>(words.data(), pos, tm, cout, 0, S::MAXK + 1);
    hls::stream<ap_uint<SIMD> > s_in;
    hls::stream<ap_uint<OSIMD> > s_out;
    const int folds = (cin + SIMD - 1) / SIMD, owords = (cout + OSIMD - 1) / OSIMD;
    for (int i = 0; i < n; i++) {
        for (int f = 0; f < folds; f++) {
            ap_uint<SIMD> wd = 0;
            for (int s = 0; s < SIMD && f * SIMD + s < cin; s++) wd[s] = in[i * cin + f * SIMD + s] & 1;
            s_in.write(wd);
        }
    }
    bnn::fc_binary<PE, SIMD, OSIMD, T_MAXFIN, T_MAXFOUT>(s_in, s_out, wm, tm, cin, cout, n);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < owords; j++) {
            const ap_uint<OSIMD> wd = s_out.read();
            for (int s = 0; s < OSIMD && j * OSIMD + s < cout; s++) out[i * cout + j * OSIMD + s] = (uint8_t)wd[s];
        }
    }
    return 0;
}

template <int PE, int SIMD>
int fc_out_impl(const uint8_t *in, const uint64_t *wrows, const uint32_t *shift, const int32_t *bias,
                int32_t *scores, int n, int cin, int cout) {
    typedef Shape<PE, SIMD, 1, T_MAXOIN, T_MAXOUT> S;
    static ap_uint<SIMD> wm[PE][S::TILES];
    static ap_uint<3> sm[PE][S::GROUPS];
    static ap_int<32> bm[PE][S::GROUPS];
    std::vector<ap_uint<64> > words;
    const int row_words = (cin + 63) / 64;
    for (int i = 0; i < cout * row_words; i++) words.push_back((ap_uint<64>)wrows[i]);
    for (int c = 0; c < cout; c++) {
        ap_uint<64> wd = 0;
        wd.range(31, 0) = (ap_uint<32>)(uint32_t)bias[c];
        wd.range(63, 32) = (ap_uint<32>)shift[c];
        words.push_back(wd);
    }
    int pos = 0;
    bnn::load_weights<PE, SIMD, 1, T_MAXOIN, T_MAXOUT>(words.data(), pos, wm, cin, cout);
    bnn::load_shift_bias<PE, S::GROUPS>(words.data(), pos, sm, bm, cout);
    hls::stream<ap_uint<SIMD> > s_in;
    hls::stream<ap_int<32> > s_out;
    const int folds = (cin + SIMD - 1) / SIMD;
    for (int i = 0; i < n; i++) {
        for (int f = 0; f < folds; f++) {
            ap_uint<SIMD> wd = 0;
            for (int s = 0; s < SIMD && f * SIMD + s < cin; s++) wd[s] = in[i * cin + f * SIMD + s] & 1;
            s_in.write(wd);
        }
    }
    bnn::fc_output<PE, SIMD, T_MAXOIN, T_MAXOUT>(s_in, s_out, wm, sm, bm, cin, cout, n);
    for (int i = 0; i < n * cout; i++) scores[i] = (int32_t)s_out.read().to_int();
    return 0;
}

bool bad_dims(int n, int h, int w, int cin, int cout, int maxcin, int maxcout) {
    return n < 0 || h < 3 || w < 3 || h > T_MAXH || w > T_MAXW || cin < 1 || cin > maxcin || cout < 1 ||
           cout > maxcout;
}

}  // namespace

extern "C" {

int bnn_csim_run(const uint64_t *params, const uint8_t *images, int32_t *scores, uint32_t mode,
                 uint32_t n_images) {
    if (mode == BNN_MODE_LOAD) {
        std::vector<ap_uint<64> > p(PARAM_WORDS);
        for (int i = 0; i < PARAM_WORDS; i++) p[i] = params[i];
        bnn_top(p.data(), 0, 0, mode, 0);
        return 0;
    }
    if (mode != BNN_MODE_CLASSIFY) return 0;
    // The IP takes the whole batch in one start; here it is fed in chunks to bound the memory
    // of the C-simulation streams (same results: images are independent).
    const int image_bytes = IN_H * IN_W * IN_C;
    const uint32_t n = n_images > (uint32_t)MAX_BATCH ? (uint32_t)MAX_BATCH : n_images;
    std::vector<ap_uint<8> > img(CSIM_CHUNK * image_bytes);
    std::vector<ap_int<32> > sc(CSIM_CHUNK * NUM_CLASSES);
    for (uint32_t start = 0; start < n; start += CSIM_CHUNK) {
        const uint32_t m = (n - start < (uint32_t)CSIM_CHUNK) ? n - start : (uint32_t)CSIM_CHUNK;
        const uint8_t *src = images + (size_t)start * image_bytes;
        for (size_t i = 0; i < (size_t)m * image_bytes; i++) img[i] = src[i];
        bnn_top(0, img.data(), sc.data(), mode, m);
        for (size_t i = 0; i < (size_t)m * NUM_CLASSES; i++)
            scores[(size_t)start * NUM_CLASSES + i] = (int32_t)sc[i].to_int();
    }
    return 0;
}

int bnn_csim_conv0(const uint8_t *in, const uint64_t *wrows, const int32_t *thr, uint8_t *out, int n, int h,
                   int w, int cin, int cout, int variant) {
    if (bad_dims(n, h, w, cin, cout, T_MAXCIN0, T_MAXC)) return -1;
    if (variant == 0) return conv0_impl<PE0, SIMD0>(in, wrows, thr, out, n, h, w, cin, cout);
    return conv0_impl<5, 3>(in, wrows, thr, out, n, h, w, cin, cout);
}

int bnn_csim_binconv(const uint8_t *in, const uint64_t *wrows, const int32_t *thr, uint8_t *out, int n, int h,
                     int w, int cin, int cout, int variant) {
    if (bad_dims(n, h, w, cin, cout, T_MAXC, T_MAXC)) return -1;
    if (variant == 0) return binconv_impl<PE1, SIMD1>(in, wrows, thr, out, n, h, w, cin, cout);
    return binconv_impl<3, 16>(in, wrows, thr, out, n, h, w, cin, cout);
}

int bnn_csim_pool(const uint8_t *in, uint8_t *out, int n, int h, int w, int c) {
    if (n < 0 || h < 2 || w < 2 || h > T_MAXH || w > T_MAXW || c < 1 || c > T_MAXC) return -1;
    hls::stream<ap_uint<T_MAXC> > s_in, s_out;
    for (int i = 0; i < n * h * w; i++) {
        ap_uint<T_MAXC> px = 0;
        for (int k = 0; k < c; k++) px[k] = in[i * c + k] & 1;
        s_in.write(px);
    }
    bnn::pool2x2_or<T_MAXW, T_MAXC>(s_in, s_out, h, w, n);
    for (int i = 0; i < n * (h / 2) * (w / 2); i++) {
        const ap_uint<T_MAXC> px = s_out.read();
        for (int k = 0; k < c; k++) out[i * c + k] = (uint8_t)px[k];
    }
    return 0;
}

int bnn_csim_fc(const uint8_t *in, const uint64_t *wrows, const int32_t *thr, uint8_t *out, int n, int cin,
                int cout, int variant) {
    if (n < 0 || cin < 1 || cin > T_MAXFIN || cout < 1 || cout > T_MAXFOUT) return -1;
    if (variant == 0) return fc_impl<PEF0, SIMDF0>(in, wrows, thr, out, n, cin, cout);
    return fc_impl<3, 32>(in, wrows, thr, out, n, cin, cout);
}

int bnn_csim_fc_out(const uint8_t *in, const uint64_t *wrows, const uint32_t *shift, const int32_t *bias,
                    int32_t *scores, int n, int cin, int cout, int variant) {
    if (n < 0 || cin < 1 || cin > T_MAXOIN || cout < 1 || cout > T_MAXOUT) return -1;
    if (variant == 0) return fc_out_impl<PEF1, SIMDF1>(in, wrows, shift, bias, scores, n, cin, cout);
    return fc_out_impl<2, 16>(in, wrows, shift, bias, scores, n, cin, cout);
}

// Checks the C-simulation popcount fast path against the adder tree synthesis builds, on
// `count` 64-bit values; returns the number of disagreements (0 expected).
int bnn_csim_popcount_check(const uint64_t *values, int count) {
    int bad = 0;
    for (int i = 0; i < count; i++) {
        const ap_uint<64> v = values[i];
        if (bnn::popcount<64>(v) != bnn::popcount_tree<64>(v)) bad++;
        const ap_uint<37> v37 = v.range(36, 0);
        if (bnn::popcount<37>(v37) != bnn::popcount_tree<37>(v37)) bad++;
    }
    return bad;
}

}  // extern "C"
