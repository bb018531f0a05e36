// CoDeNet engine: the streaming CONV1X1 layer (DATAFLOW reader -> MAC array -> writer), used for
// direct and nearest-x2 input modes whenever the input tensor is beat aligned (in_off and in_cs
// multiples of ARENA_BUS_BYTES, which every tensor the engine writes is) and a pixel's gathered
// channel run fits the pixel buffer. PATCH3X3 (the image's first layer) and the other cases run
// conv1x1() of codenet_engine.h. Contract: FORMAT.md; arithmetic identical to conv1x1().
//
//   conv_reader  per output row: ONE burst over the row's needed input pixels (their gathered
//                channel runs are whole beats at a fixed beat stride), forwarding the beats of
//                the pixels the row computes, in order, to `pix`;
//   conv_mac     per output row: ONE flattened II = 1 loop; per computed pixel it pops the pixel's
//                SB beats into the pixel buffer, then runs OT x KT MAC cycles (PA inputs x PE
//                outputs), and pushes each requantized PE-lane tile as one output beat to `outb`;
//   conv_writer  per output row: ONE loop over the row's output beats (each computed pixel's OT
//                beats, twice under nearest x2): a single burst when the layer owns whole output
//                pixels (out_choff 0, out_cs = OT beats), else one-beat writes (strided runs).
// The three run concurrently (DATAFLOW); the streams decouple them by STREAM_BEATS beats.
// 4-bit and 8-bit weights are two instances of the same template (W8): the inputs per weight word
// (PER) and the weight decode are constants of each, never selected at run time.
#ifndef CODENET_DATAFLOW_H
#define CODENET_DATAFLOW_H

#include "codenet_engine.h"

namespace codenet {

// The geometry the three stages share, computed once per layer (no division in the stages).
struct ConvGeom {
    int rep;          // output pixels per computed pixel in x (2: nearest x2 at stride 1)
    int ncx;          // computed pixels per output row
    int pstep;        // input pixels between two computed pixels (1 or 2)
    int seen_h, seen_w;
    int sb;           // beats of one pixel's gathered run (SB)
    int lo_beat;      // first of them, counted from the pixel's first beat
    int cs_beats;     // input channel stride in beats
    int ot_n, kt_n;   // output tiles (beats), weight words per row
    bool whole_out;   // the layer owns whole output pixels: a row of output is one run
};

// True when the layer takes the streaming path.
inline bool conv_streams(const Desc &d, const Gather &g) {
    const int sb = (g.hi >> 4).to_int() - (g.lo >> 4).to_int() + 1;
    return d.in_mode != MODE_PATCH3X3 && lane_of(d.in_off) == 0 && lane_of(d.in_cs) == 0 && sb <= PIX_BEATS;
}

inline ConvGeom conv_geom(const Desc &d, const Gather &g) {
    ConvGeom c;
    const bool up = d.in_mode == MODE_UPSAMPLE2;
    c.rep = up && d.stride == 1 ? 2 : 1;
    c.ncx = c.rep == 2 ? (d.out_w + 1) >> 1 : d.out_w;
    c.pstep = up ? 1 : d.stride;
    c.seen_h = up ? 2 * d.in_h : d.in_h;
    c.seen_w = up ? 2 * d.in_w : d.in_w;
    c.lo_beat = (g.lo >> 4).to_int();
    c.sb = (g.hi >> 4).to_int() - c.lo_beat + 1;
    c.cs_beats = (d.in_cs >> 4).to_int();
    c.ot_n = ceil_div(d.cout, PE);
    c.kt_n = ceil_div(row_bytes_of(d.cin, d.w8), W_WORD_BYTES);
    c.whole_out = d.out_choff == 0 && d.out_cs == addr_t(c.ot_n * ARENA_BUS_BYTES);
    return c;
}

// Computed pixel c of an output row reads input pixel px (seen sx = c * rep * stride) when
// sx < seen_w; the valid ones are a prefix 0 .. nvalid - 1 of the row's computed pixels.
inline int conv_valid_pixels(const Desc &d, const ConvGeom &c) {
    const int step = c.rep * d.stride;                      // 1, 2 or 4: a shift
    const int n = (c.seen_w - 1) / step + 1;                // divisor 1, 2 or 4: a shift
    return n < c.ncx ? n : c.ncx;
}

// 1x1 extraction table of the streaming path: input k of weight word kt, lane j (k = kt * PER + j)
// is byte xrel[j][kt] of the pixel's SB-beat run. One entry a cycle.
template <bool W8>
inline void load_xrel(const Desc &d, const chan_t gch[MAX_CH], const Gather &g, chan_t xrel[PA][MAX_K / (PA / 2)]) {
    constexpr int PER = W8 ? PA / 2 : PA;
    const chan_t base = g.lo & chan_t(~(ARENA_BUS_BYTES - 1));
    int j = 0, kt = 0;
    CODENET_ENTER(PH_LOAD, EV_LOOP);
    for (int k = 0; k < d.cin; k++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_K
#pragma HLS PIPELINE II = 1
        CODENET_ITER(PH_LOAD);
        xrel[j][kt] = gch[k] - base;
        if (++j == PER) {
            j = 0;
            kt++;
        }
    }
}

inline void conv_reader(const bus_t *arena, const Desc d, const ConvGeom c, hls::stream<bus_t> &pix) {
    const int nvalid = conv_valid_pixels(d, c);
    const int hi_beat = c.lo_beat + c.sb - 1;
    for (int y = 0; y < d.out_h; y++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IMG
        const int sy = y * d.stride;
        if (sy >= c.seen_h || nvalid == 0) continue;        // zero-point row: nothing to read
        const int py = d.in_mode == MODE_UPSAMPLE2 ? sy >> 1 : sy;
        const int last_px = (nvalid - 1) * c.pstep;
        // the run: pixel 0's first gathered beat .. the last needed pixel's last gathered beat
        const addr_t first = beat_of(d.in_off + addr_t(py) * addr_t(d.in_w) * d.in_cs) + addr_t(c.lo_beat);
        const int nb = last_px * c.cs_beats + c.sb;
        int pb = c.lo_beat, p = 0;                           // beat within its pixel, pixel index
        CODENET_ENTER(PH_READ, EV_BURST);
        for (int b = 0; b < nb; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IMG * CH_TILES
#pragma HLS PIPELINE II = 1
            CODENET_ITER(PH_READ);
            CODENET_BEAT();
            CODENET_READ(first + addr_t(b));
            const bus_t v = arena[first + addr_t(b)];
            if (pb >= c.lo_beat && pb <= hi_beat && p == 0) pix.write(v);   // a computed pixel's run
            if (++pb == c.cs_beats) {
                pb = 0;
                if (++p == c.pstep) p = 0;
            }
        }
    }
}

template <bool W8>
inline void conv_mac(const Desc d, const ConvGeom c, const chan_t xrel[PA][MAX_K / (PA / 2)],
                     const wword_t wbuf[PE][W_WORDS], const Requant rq[PE][CH_TILES], pix_buf_t &pbuf,
                     hls::stream<bus_t> &pix, hls::stream<bus_t> &outb) {
    constexpr int PER = W8 ? PA / 2 : PA;                   // inputs per weight word
    const act_t zp = act_value(d.in_zp, d.in_signed);
    const int nvalid = conv_valid_pixels(d, c);
    const int mac_n = c.ot_n * c.kt_n;
    for (int y = 0; y < d.out_h; y++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IMG
        const bool row_ok = y * d.stride < c.seen_h;
        const int pops = row_ok ? c.sb : 0;
        // one flattened loop over (computed pixel, step): steps 0 .. pops-1 fill the pixel
        // buffer from the stream, then mac_n MAC steps (tile ot, word kt)
        const int trips = (row_ok ? nvalid * c.sb : 0) + c.ncx * mac_n;
        int cx = 0, step = 0, ot = 0, kt = 0;
        acc_t acc[PE];
#pragma HLS ARRAY_PARTITION variable = acc complete
        CODENET_ENTER(PH_COMPUTE, EV_LOOP);
        for (int it = 0; it < trips; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IMG * PE * W_WORDS
#pragma HLS PIPELINE II = 1
            CODENET_ITER(PH_COMPUTE);
            const bool valid = row_ok && cx < nvalid;
            const int np = valid ? pops : 0;
            if (step < np) {
                const bus_t v = pix.read();
                for (int j = 0; j < PA; j++) {
#pragma HLS UNROLL
                    pbuf[j][step] = v;
                }
            } else {
                act_t x[PA];
#pragma HLS ARRAY_PARTITION variable = x complete
                for (int j = 0; j < PA; j++) {
#pragma HLS UNROLL
                    const int k = kt * PER + j;
                    const bool used = j < PER && k < d.cin;
                    const int pos = used ? xrel[j][kt].to_int() : 0;
                    const act_t v = valid ? act_value(byte_at(pbuf[j][pos >> 4], pos & (ARENA_BUS_BYTES - 1)),
                                                      d.in_signed)
                                          : zp;
                    x[j] = used ? v : act_t(0);
                }
                acc_t sum[PE];
#pragma HLS ARRAY_PARTITION variable = sum complete
                for (int p = 0; p < PE; p += 2) {
#pragma HLS UNROLL
                    const wword_t w_lo = wbuf[p][ot * c.kt_n + kt], w_hi = wbuf[p + 1][ot * c.kt_n + kt];
                    acc_t s_lo = kt == 0 ? acc_t(rq[p][ot].bias) : acc[p];
                    acc_t s_hi = kt == 0 ? acc_t(rq[p + 1][ot].bias) : acc[p + 1];
                    for (int j = 0; j < PER; j++) {
#pragma HLS UNROLL
                        const ProductPair pr = mul2(weight_at(w_lo, j, W8), weight_at(w_hi, j, W8), x[j]);
                        s_lo += pr.lo;
                        s_hi += pr.hi;
                    }
                    sum[p] = s_lo;
                    sum[p + 1] = s_hi;
                }
                for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                    acc[p] = sum[p];
                }
                if (kt == c.kt_n - 1) {                     // a tile done: one output beat
                    byte_t q[PE];
#pragma HLS ARRAY_PARTITION variable = q complete
                    requant_tile(sum, rq, ot, d, q);
                    bus_t o = 0;
                    for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                        if (ot * PE + p < d.cout) o.range(8 * p + 7, 8 * p) = q[p];   // pad lanes 0
                    }
                    outb.write(o);
                }
                if (++kt == c.kt_n) {
                    kt = 0;
                    ot++;
                }
            }
            if (++step == np + mac_n) {
                step = 0;
                ot = 0;
                cx++;
            }
        }
    }
}

inline void conv_writer(bus_t *arena, const Desc d, const ConvGeom c, hls::stream<bus_t> &outb) {
    static bus_t held[CH_TILES];                             // the computed pixel's beats (x2: written twice)
    CODENET_ASSERT(lane_of(d.out_off) == 0 && lane_of(d.out_cs) == 0 && lane_of(d.out_choff) == 0,
                   "partial-beat write: output runs not beat aligned", (d.out_off + d.out_choff).to_uint64());
    const addr_t cs_beats = d.out_cs >> 4, choff_beats = d.out_choff >> 4;
    const int nb = d.out_w * c.ot_n;
    for (int y = 0; y < d.out_h; y++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IMG
        const addr_t row = beat_of(d.out_off) + addr_t(y) * addr_t(d.out_w) * cs_beats + choff_beats;
        int x = 0, b = 0, r = 0;                             // output pixel, its beat, copy 0 .. rep-1
        CODENET_ENTER(PH_WRITE, c.whole_out ? EV_BURST : EV_SINGLES);
        for (int i = 0; i < nb; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IMG * CH_TILES
#pragma HLS PIPELINE II = 1
            CODENET_ITER(PH_WRITE);
            CODENET_BEAT();
            bus_t v;
            if (r == 0) {
                v = outb.read();
                held[b] = v;
            } else {
                v = held[b];
            }
            // whole_out: consecutive beats (one burst); else pixel x's run at its channel offset
            const addr_t a = c.whole_out ? addr_t(row + addr_t(i)) : addr_t(row + addr_t(x) * cs_beats + addr_t(b));
            CODENET_WROTE(a);
            arena[a] = v;
            if (++b == c.ot_n) {
                b = 0;
                x++;
                if (++r == c.rep) r = 0;
            }
        }
        // a computed pixel whose second copy falls outside the row (odd out_w) is never reread
    }
}

// One streaming CONV1X1 layer: the three stages run concurrently.
template <bool W8>
inline void conv1x1_stream(bus_t *arena, const Desc &d, const Gather &g, const chan_t xrel[PA][MAX_K / (PA / 2)],
                           const wword_t wbuf[PE][W_WORDS], const Requant rq[PE][CH_TILES], pix_buf_t &pbuf) {
#pragma HLS INLINE off
    const ConvGeom c = conv_geom(d, g);
    hls::stream<bus_t> pix("pix"), outb("outb");
#pragma HLS STREAM variable = pix depth = STREAM_BEATS
#pragma HLS STREAM variable = outb depth = STREAM_BEATS
#pragma HLS DATAFLOW
    conv_reader(arena, d, c, pix);
    conv_mac<W8>(d, c, xrel, wbuf, rq, pbuf, pix, outb);
    conv_writer(arena, d, c, outb);
}

}  // namespace codenet

#endif  // CODENET_DATAFLOW_H
