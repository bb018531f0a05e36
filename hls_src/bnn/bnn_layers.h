// Header-only HLS building blocks of the multiplier-free BNN (contract: FORMAT.md).
//
// Every block is a template on its MAXIMUM sizes and parallelism (PE output channels in
// parallel, SIMD input bits / pixels per cycle and PE); the actual sizes (H, W, Cin, Cout) are
// runtime arguments bounded by those maxima, so the top function instantiates the blocks with
// the fixed network sizes and the C-simulation layer entries (bnn_csim.cpp) run random shapes
// through the very same code. Streams carry one pixel per word (channel c = bit c, or byte c
// for 8-bit pixels); fully connected layers take and give ceil(C / SIMD) words per image.
//
// Weight / threshold memories are [PE][...] arrays; the owner of the memory (bnn_top, where they
// are static) partitions dim 1 completely, so every PE lane has its own bank.
//
// Arithmetic: additions, subtractions, XNOR, popcount, compares and shifts only. The loop trip
// counts below are products of layer sizes (control, computed once per call); the top passes
// compile-time constants, so they fold to constants in synthesis (no DSP inferred).
#ifndef BNN_LAYERS_H
#define BNN_LAYERS_H


#include <stdint.h>

#include "pd_ap_types.h"
#include "bnn_config.h"  // TRIPCOUNT_IMAGES of the LOOP_TRIPCOUNT pragmas

namespace bnn {

// ---------------------------------------------------------------- compile-time helpers
constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

// Number of bits needed to hold the unsigned values 0 .. v.
constexpr int ubits(long v) {
    int b = 1;
    while ((1L << b) <= v) b++;
    return b;
}

// Memory shapes of a layer with PE lanes, SIMD-wide folds and TAPS taps per input channel
// group (9 for a 3x3 conv, 1 for a fully connected layer). Lane p holds the output channels
// co = g * PE + p; its tiles are ordered (group, tap, fold).
template <int PE, int SIMD, int TAPS, int MAXCIN, int MAXCOUT>
struct Shape {
    static constexpr int FOLDS = ceil_div(MAXCIN, SIMD);
    static constexpr int GROUPS = ceil_div(MAXCOUT, PE);
    static constexpr int TILES = GROUPS * TAPS * FOLDS;
    static constexpr int MAXK = TAPS * MAXCIN;
    static constexpr int ROW_WORDS = ceil_div(MAXK, 64);
    static constexpr int POP_BITS = ubits(MAXK);        // popcount 0 .. MAXK
    static constexpr int THR_BITS = ubits(MAXK + 1);    // clamped threshold 0 .. MAXK + 1
};

// Signed accumulator of conv0: |acc| <= TAPS * 255 * MAXCIN.
template <int TAPS, int MAXCIN>
struct Conv0Acc {
    static constexpr long BOUND = (long)TAPS * 255 * MAXCIN;
    static constexpr int BITS = ubits(BOUND + 1) + 1;   // thresholds clamped to -BOUND .. BOUND+1
};

// ---------------------------------------------------------------- popcount
// Adder tree over the bits (what synthesis builds).
template <int N>
ap_uint<ubits(N)> popcount_tree(ap_uint<N> x) {
#pragma HLS INLINE
    ap_uint<ubits(N)> cnt = 0;
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        cnt += (ap_uint<1>)x[i];
    }
    return cnt;
}

// The same count; C simulation takes a fast path through the compiler builtin (a test checks it
// against popcount_tree: bnn_csim_popcount_check).
template <int N>
ap_uint<ubits(N)> popcount(ap_uint<N> x) {
#pragma HLS INLINE
#ifndef __SYNTHESIS__
    unsigned cnt = 0;
    for (int lo = 0; lo < N; lo += 64) {
        const int hi = (lo + 63 < N - 1) ? lo + 63 : N - 1;
        cnt += (unsigned)__builtin_popcountll((unsigned long long)x.range(hi, lo).to_uint64());
    }
    return cnt;
#else
    return popcount_tree<N>(x);
#endif
}

// Low n bits set (0 <= n <= N).
template <int N>
ap_uint<N> low_mask(int n) {
#pragma HLS INLINE
    ap_uint<N> m = 0;
    for (int i = 0; i < N; i++) {
#pragma HLS UNROLL
        m[i] = (i < n) ? 1 : 0;
    }
    return m;
}

// ---------------------------------------------------------------- parameter loaders
// Weight rows as FORMAT.md packs them: Cout rows of ceil(TAPS * cin / 64) words; input index
// b = tap * cin + ci is bit b % 64 of word b / 64. The loader re-tiles every row into SIMD-wide
// tiles per (tap, fold), zeroing the bits past cin. Reads src[pos ...] and advances pos past the rows.
// It walks the rows one bit per cycle (PARAM_WORDS * 64 cycles, about 1.4 ms at 250 MHz, once
// per model), so its hardware is a 64-bit shift register and a SIMD-bit tile register instead
// of a barrel shifter across a whole row.
template <int PE, int SIMD, int TAPS, int MAXCIN, int MAXCOUT, class SRC>
void load_weights(const SRC *src, int &pos, ap_uint<SIMD> w[PE][Shape<PE, SIMD, TAPS, MAXCIN, MAXCOUT>::TILES],
                  int cin, int cout) {
    typedef Shape<PE, SIMD, TAPS, MAXCIN, MAXCOUT> S;
    constexpr int MAX_BITS = MAXCOUT * S::ROW_WORDS * 64;
    (void)MAX_BITS;  // used by the HLS pragmas only
    const int k = TAPS * cin;
    const int row_bits = ((k + 63) >> 6) << 6;
    const int folds = (cin + SIMD - 1) / SIMD;
    const int total = cout * row_bits;
    int lane = 0, gbase = 0, tile = 0;
    int b = 0;    // bit within the row
    int ci = 0;   // input channel within the tap
    int s = 0;    // bit within the tile
    ap_uint<64> cur = 0;
    ap_uint<SIMD> acc = 0;
    for (int i = 0; i < total; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 64 max = MAX_BITS
#pragma HLS PIPELINE II = 1
        if ((b & 63) == 0) cur = (ap_uint<64>)src[pos++];
        const ap_uint<1> bit = cur[0];
        cur >>= 1;
        if (b < k) {
            acc[s] = bit;
            const bool tap_end = (ci == cin - 1);
            if (s == SIMD - 1 || tap_end) {
                w[lane][tile] = acc;   // a partial last tile keeps zeros past cin
                tile++;
                acc = 0;
                s = 0;
            } else {
                s++;
            }
            ci = tap_end ? 0 : ci + 1;
        }
        if (b == row_bits - 1) {
            b = 0;
            if (++lane == PE) {
                lane = 0;
                gbase += TAPS * folds;
            }
            tile = gbase;
        } else {
            b++;
        }
    }
}

// Thresholds: two int32 per word (channel 2j low, 2j+1 high), ceil(cout / 2) words. Each one is
// clamped into [lo, hi] on the way in; the caller picks lo, hi so that the compare result is
// unchanged for every reachable accumulator value (a popcount lies in 0 .. K, so T <= 0 acts
// as 0 and T > K as K + 1).
template <int PE, int GROUPS, class T, class SRC>
void load_thresholds(const SRC *src, int &pos, T thr[PE][GROUPS], int cout, long lo, long hi) {
    constexpr int MAX_COUT = PE * GROUPS;
    (void)MAX_COUT;  // used by the HLS pragmas only
    ap_uint<64> word = 0;
    int lane = 0;
    int g = 0;
    for (int co = 0; co < cout; co++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_COUT
#pragma HLS PIPELINE II = 1
        if ((co & 1) == 0) {
            word = (ap_uint<64>)src[pos++];
        }
        const ap_int<32> t = (co & 1) ? (ap_int<32>)word.range(63, 32) : (ap_int<32>)word.range(31, 0);
        const long tv = (long)t.to_int();
        thr[lane][g] = (T)(tv < lo ? lo : (tv > hi ? hi : tv));
        if (++lane == PE) {
            lane = 0;
            g++;
        }
    }
}

// Output layer: per class one word, BIAS (int32) in the low half, SHIFT in the high half (the IP
// keeps its low 3 bits; the host rejects SHIFT > 7).
template <int PE, int GROUPS, class SRC>
void load_shift_bias(const SRC *src, int &pos, ap_uint<3> shift[PE][GROUPS], ap_int<32> bias[PE][GROUPS], int cout) {
    constexpr int MAX_COUT = PE * GROUPS;
    (void)MAX_COUT;  // used by the HLS pragmas only
    int lane = 0;
    int g = 0;
    for (int co = 0; co < cout; co++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_COUT
#pragma HLS PIPELINE II = 1
        const ap_uint<64> word = (ap_uint<64>)src[pos++];
        bias[lane][g] = (ap_int<32>)word.range(31, 0);
        shift[lane][g] = word.range(34, 32);
        if (++lane == PE) {
            lane = 0;
            g++;
        }
    }
}

// ---------------------------------------------------------------- conv0: 8-bit pixels, +-1 weights
// acc = sum over (ky, kx, ci) of (w ? +p : -p); out bit = acc >= T[c]. Per cycle: one tap,
// SIMD input channels, PE output channels (PE * SIMD add/subs).
template <int PE, int SIMD, int MAXH, int MAXW, int MAXCIN, int MAXCOUT>
void conv0_3x3(hls::stream<ap_uint<8 * MAXCIN> > &in, hls::stream<ap_uint<MAXCOUT> > &out,
               const ap_uint<SIMD> w[PE][Shape<PE, SIMD, 9, MAXCIN, MAXCOUT>::TILES],
               const ap_int<Conv0Acc<9, MAXCIN>::BITS> thr[PE][Shape<PE, SIMD, 9, MAXCIN, MAXCOUT>::GROUPS],
               int h, int wd, int cin, int cout, int reps) {
    typedef Shape<PE, SIMD, 9, MAXCIN, MAXCOUT> S;
    typedef ap_int<Conv0Acc<9, MAXCIN>::BITS> acc_t;
    constexpr int MAX_ITERS = (MAXH - 2) * (MAXW - 2) * S::TILES;
    (void)MAX_ITERS;  // used by the HLS pragmas only
    ap_uint<8 * MAXCIN> buf[MAXH][MAXW];
    acc_t acc[PE];
#pragma HLS ARRAY_PARTITION variable = acc complete
    const int ho = h - 2, wo = wd - 2;
    const int folds = (cin + SIMD - 1) / SIMD;
    const int groups = (cout + PE - 1) / PE;
    const int last_valid = cin - (folds - 1) * SIMD;
    const int total = ho * wo * groups * 9 * folds;

    for (int r = 0; r < reps; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = TRIPCOUNT_IMAGES
        for (int y = 0; y < h; y++) {
#pragma HLS LOOP_TRIPCOUNT min = 3 max = MAXH
            for (int x = 0; x < wd; x++) {
#pragma HLS LOOP_TRIPCOUNT min = 3 max = MAXW
#pragma HLS PIPELINE II = 1
                buf[y][x] = in.read();
            }
        }
        int y = 0, x = 0, ky = 0, kx = 0, f = 0, g = 0, gbase = 0, tile = 0;
        ap_uint<MAXCOUT> word = 0;
        for (int i = 0; i < total; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_ITERS
#pragma HLS PIPELINE II = 1
            const ap_uint<8 * SIMD> px = buf[y + ky][x + kx] >> (8 * SIMD * f);
            const int valid = (f == folds - 1) ? last_valid : SIMD;
            const bool first = (ky == 0 && kx == 0 && f == 0);
            const bool last = (ky == 2 && kx == 2 && f == folds - 1);
            for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                const ap_uint<SIMD> wb = w[p][tile];
                acc_t sum = first ? (acc_t)0 : acc[p];
                for (int s = 0; s < SIMD; s++) {
#pragma HLS UNROLL
                    const ap_int<10> v = (ap_int<10>)(ap_uint<8>)px.range(8 * s + 7, 8 * s);
                    if (s < valid) sum = wb[s] ? (acc_t)(sum + v) : (acc_t)(sum - v);
                }
                acc[p] = sum;
                if (last && gbase + p < cout) word[gbase + p] = (sum >= thr[p][g]) ? 1 : 0;
            }
            // advance (fold, tap, group, pixel) counters
            tile++;
            if (f != folds - 1) {
                f++;
            } else {
                f = 0;
                if (kx != 2) {
                    kx++;
                } else {
                    kx = 0;
                    if (ky != 2) {
                        ky++;
                    } else {
                        ky = 0;
                        if (g != groups - 1) {
                            g++;
                            gbase += PE;
                        } else {
                            out.write(word);
                            word = 0;
                            g = 0;
                            gbase = 0;
                            tile = 0;
                            if (x != wo - 1) {
                                x++;
                            } else {
                                x = 0;
                                y++;
                            }
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- binary 3x3 conv
// pop = #positions where w bit == a bit (XNOR, popcount); out bit = pop >= T[c].
template <int PE, int SIMD, int MAXH, int MAXW, int MAXCIN, int MAXCOUT>
void binconv_3x3(hls::stream<ap_uint<MAXCIN> > &in, hls::stream<ap_uint<MAXCOUT> > &out,
                 const ap_uint<SIMD> w[PE][Shape<PE, SIMD, 9, MAXCIN, MAXCOUT>::TILES],
                 const ap_uint<Shape<PE, SIMD, 9, MAXCIN, MAXCOUT>::THR_BITS>
                     thr[PE][Shape<PE, SIMD, 9, MAXCIN, MAXCOUT>::GROUPS],
                 int h, int wd, int cin, int cout, int reps) {
    typedef Shape<PE, SIMD, 9, MAXCIN, MAXCOUT> S;
    typedef ap_uint<S::POP_BITS> pop_t;
    constexpr int MAX_ITERS = (MAXH - 2) * (MAXW - 2) * S::TILES;
    (void)MAX_ITERS;  // used by the HLS pragmas only
    ap_uint<MAXCIN> buf[MAXH][MAXW];
    pop_t acc[PE];
#pragma HLS ARRAY_PARTITION variable = acc complete
    const int ho = h - 2, wo = wd - 2;
    const int folds = (cin + SIMD - 1) / SIMD;
    const int groups = (cout + PE - 1) / PE;
    const ap_uint<SIMD> last_mask = low_mask<SIMD>(cin - (folds - 1) * SIMD);
    const int total = ho * wo * groups * 9 * folds;

    for (int r = 0; r < reps; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = TRIPCOUNT_IMAGES
        for (int y = 0; y < h; y++) {
#pragma HLS LOOP_TRIPCOUNT min = 3 max = MAXH
            for (int x = 0; x < wd; x++) {
#pragma HLS LOOP_TRIPCOUNT min = 3 max = MAXW
#pragma HLS PIPELINE II = 1
                buf[y][x] = in.read();
            }
        }
        int y = 0, x = 0, ky = 0, kx = 0, f = 0, g = 0, gbase = 0, tile = 0;
        ap_uint<MAXCOUT> word = 0;
        for (int i = 0; i < total; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_ITERS
#pragma HLS PIPELINE II = 1
            const ap_uint<SIMD> a = buf[y + ky][x + kx] >> (SIMD * f);
            const ap_uint<SIMD> mask = (f == folds - 1) ? last_mask : (ap_uint<SIMD>)~ap_uint<SIMD>(0);
            const bool first = (ky == 0 && kx == 0 && f == 0);
            const bool last = (ky == 2 && kx == 2 && f == folds - 1);
            for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                const ap_uint<SIMD> agree = ~(a ^ w[p][tile]) & mask;
                const pop_t sum = (first ? (pop_t)0 : acc[p]) + popcount<SIMD>(agree);
                acc[p] = sum;
                if (last && gbase + p < cout) word[gbase + p] = (sum >= thr[p][g]) ? 1 : 0;
            }
            tile++;
            if (f != folds - 1) {
                f++;
            } else {
                f = 0;
                if (kx != 2) {
                    kx++;
                } else {
                    kx = 0;
                    if (ky != 2) {
                        ky++;
                    } else {
                        ky = 0;
                        if (g != groups - 1) {
                            g++;
                            gbase += PE;
                        } else {
                            out.write(word);
                            word = 0;
                            g = 0;
                            gbase = 0;
                            tile = 0;
                            if (x != wo - 1) {
                                x++;
                            } else {
                                x = 0;
                                y++;
                            }
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- 2x2 stride-2 max-pool on bits = OR
// Output (h / 2) x (w / 2); a trailing odd row / column is dropped (valid pooling).
template <int MAXW, int C>
void pool2x2_or(hls::stream<ap_uint<C> > &in, hls::stream<ap_uint<C> > &out, int h, int wd, int reps) {
    constexpr int MAX_PIXELS = MAXW * MAXW;   // tripcount estimate: square images
    (void)MAX_PIXELS;  // used by the HLS pragmas only
    ap_uint<C> rowbuf[MAXW / 2];
    ap_uint<C> left = 0;
    const int total = h * wd;
    const int h2 = h & ~1, w2 = wd & ~1;
    for (int r = 0; r < reps; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = TRIPCOUNT_IMAGES
        int y = 0, x = 0, xo = 0;
        for (int i = 0; i < total; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 4 max = MAX_PIXELS
#pragma HLS PIPELINE II = 1
            const ap_uint<C> p = in.read();
            if (y < h2 && x < w2) {
                if ((x & 1) == 0) {
                    left = p;
                } else {
                    const ap_uint<C> pair = left | p;
                    if ((y & 1) == 0) {
                        rowbuf[xo] = pair;
                    } else {
                        out.write(rowbuf[xo] | pair);
                    }
                    xo++;
                }
            }
            if (x != wd - 1) {
                x++;
            } else {
                x = 0;
                xo = 0;
                y++;
            }
        }
    }
}

// ---------------------------------------------------------------- fully connected, binary, threshold
// Input: ceil(cin / SIMD) words per image (input bit b = bit b % SIMD of word b / SIMD).
// Output: ceil(cout / OSIMD) words per image, bits past cout are 0.
template <int PE, int SIMD, int OSIMD, int MAXCIN, int MAXCOUT>
void fc_binary(hls::stream<ap_uint<SIMD> > &in, hls::stream<ap_uint<OSIMD> > &out,
               const ap_uint<SIMD> w[PE][Shape<PE, SIMD, 1, MAXCIN, MAXCOUT>::TILES],
               const ap_uint<Shape<PE, SIMD, 1, MAXCIN, MAXCOUT>::THR_BITS>
                   thr[PE][Shape<PE, SIMD, 1, MAXCIN, MAXCOUT>::GROUPS],
               int cin, int cout, int reps) {
    typedef Shape<PE, SIMD, 1, MAXCIN, MAXCOUT> S;
    typedef ap_uint<S::POP_BITS> pop_t;
    constexpr int MAX_FOLDS = S::FOLDS;
    (void)MAX_FOLDS;  // used by the HLS pragmas only
    constexpr int MAX_ITERS = S::TILES;
    (void)MAX_ITERS;  // used by the HLS pragmas only
    ap_uint<SIMD> inbuf[S::FOLDS];
    pop_t acc[PE];
#pragma HLS ARRAY_PARTITION variable = acc complete
    const int folds = (cin + SIMD - 1) / SIMD;
    const int groups = (cout + PE - 1) / PE;
    const int owords = (cout + OSIMD - 1) / OSIMD;
    constexpr int MAX_OWORDS = ceil_div(MAXCOUT, OSIMD);
    (void)MAX_OWORDS;  // used by the HLS pragmas only
    const ap_uint<SIMD> last_mask = low_mask<SIMD>(cin - (folds - 1) * SIMD);
    const int total = groups * folds;
    for (int r = 0; r < reps; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = TRIPCOUNT_IMAGES
        for (int f = 0; f < folds; f++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_FOLDS
#pragma HLS PIPELINE II = 1
            inbuf[f] = in.read();
        }
        ap_uint<S::GROUPS * PE> bits = 0;
        int f = 0, g = 0, gbase = 0;
        for (int i = 0; i < total; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_ITERS
#pragma HLS PIPELINE II = 1
            const ap_uint<SIMD> mask = (f == folds - 1) ? last_mask : (ap_uint<SIMD>)~ap_uint<SIMD>(0);
            const ap_uint<SIMD> a = inbuf[f];
            for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                const ap_uint<SIMD> agree = ~(a ^ w[p][i]) & mask;
                const pop_t sum = (f == 0 ? (pop_t)0 : acc[p]) + popcount<SIMD>(agree);
                acc[p] = sum;
                if (f == folds - 1 && gbase + p < cout) bits[gbase + p] = (sum >= thr[p][g]) ? 1 : 0;
            }
            if (f != folds - 1) {
                f++;
            } else {
                f = 0;
                g++;
                gbase += PE;
            }
        }
        int off = 0;
        for (int j = 0; j < owords; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_OWORDS
#pragma HLS PIPELINE II = 1
            out.write((ap_uint<OSIMD>)(bits >> off));
            off += OSIMD;
        }
    }
}

// ---------------------------------------------------------------- output layer: shift + bias
// acc = 2 * pop - cin (signed), score = (acc << SHIFT[c]) + BIAS[c] in int32. One int32 per class.
template <int PE, int SIMD, int MAXCIN, int MAXCOUT>
void fc_output(hls::stream<ap_uint<SIMD> > &in, hls::stream<ap_int<32> > &out,
               const ap_uint<SIMD> w[PE][Shape<PE, SIMD, 1, MAXCIN, MAXCOUT>::TILES],
               const ap_uint<3> shift[PE][Shape<PE, SIMD, 1, MAXCIN, MAXCOUT>::GROUPS],
               const ap_int<32> bias[PE][Shape<PE, SIMD, 1, MAXCIN, MAXCOUT>::GROUPS],
               int cin, int cout, int reps) {
    typedef Shape<PE, SIMD, 1, MAXCIN, MAXCOUT> S;
    typedef ap_uint<S::POP_BITS> pop_t;
    constexpr int MAX_FOLDS = S::FOLDS;
    (void)MAX_FOLDS;  // used by the HLS pragmas only
    constexpr int MAX_ITERS = S::TILES;
    (void)MAX_ITERS;  // used by the HLS pragmas only
    ap_uint<SIMD> inbuf[S::FOLDS];
    pop_t acc[PE];
#pragma HLS ARRAY_PARTITION variable = acc complete
    const int folds = (cin + SIMD - 1) / SIMD;
    const int groups = (cout + PE - 1) / PE;
    const ap_uint<SIMD> last_mask = low_mask<SIMD>(cin - (folds - 1) * SIMD);
    const int total = groups * folds;
    for (int r = 0; r < reps; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = TRIPCOUNT_IMAGES
        for (int f = 0; f < folds; f++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_FOLDS
#pragma HLS PIPELINE II = 1
            inbuf[f] = in.read();
        }
        int f = 0, g = 0, gbase = 0;
        for (int i = 0; i < total; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_ITERS
#pragma HLS PIPELINE II = 1
            const ap_uint<SIMD> mask = (f == folds - 1) ? last_mask : (ap_uint<SIMD>)~ap_uint<SIMD>(0);
            const ap_uint<SIMD> a = inbuf[f];
            ap_int<32> scores[PE];
#pragma HLS ARRAY_PARTITION variable = scores complete
            for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                const ap_uint<SIMD> agree = ~(a ^ w[p][i]) & mask;
                const pop_t sum = (f == 0 ? (pop_t)0 : acc[p]) + popcount<SIMD>(agree);
                acc[p] = sum;
                const ap_int<32> signed_acc = ((ap_int<32>)sum << 1) - cin;
                scores[p] = (ap_int<32>)(signed_acc << shift[p][g]) + bias[p][g];
            }
            if (f == folds - 1) {
                // PE scores per group, written in class order
                for (int p = 0; p < PE; p++) {
                    if (gbase + p < cout) out.write(scores[p]);
                }
            }
            if (f != folds - 1) {
                f++;
            } else {
                f = 0;
                g++;
                gbase += PE;
            }
        }
    }
}

}  // namespace bnn

#endif  // BNN_LAYERS_H
