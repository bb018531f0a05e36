// CoDeNet engine: the streaming layers, one DATAFLOW region each. Contract: FORMAT.md (the
// descriptor checks guarantee the input conditions below: beat-aligned inputs, a 1x1 pixel's
// gathered run within PIX_BEATS, a PATCH3X3 gather within one beat and its rows within
// PATCH_ROW_BEATS).
//
// CONV1X1 (direct, nearest x2, PATCH3X3):
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
    bool patch;       // PATCH3X3: the reader emits 9 lane-aligned tap beats per pixel (SB = 9)
    int k;            // logical inputs per pixel (cin, or 9 * cin)
};

inline ConvGeom conv_geom(const Desc &d, const Gather &g) {
    ConvGeom c;
    const bool up = d.in_mode == MODE_UPSAMPLE2;
    c.rep = up && d.stride == 1 ? 2 : 1;
    c.ncx = c.rep == 2 ? (d.out_w + 1) >> 1 : d.out_w;
    c.pstep = up ? 1 : d.stride;
    c.seen_h = up ? 2 * d.in_h : d.in_h;
    c.seen_w = up ? 2 * d.in_w : d.in_w;
    c.patch = d.in_mode == MODE_PATCH3X3;
    c.k = conv_k(d);
    c.lo_beat = (g.lo >> 4).to_int();
    c.sb = c.patch ? TAPS : (g.hi >> 4).to_int() - c.lo_beat + 1;
    c.cs_beats = (d.in_cs >> 4).to_int();
    c.ot_n = ceil_div(d.cout, PE);
    c.kt_n = ceil_div(row_bytes_of(c.k, d.w8), W_WORD_BYTES);
    c.whole_out = d.out_choff == 0 && d.out_cs == addr_t(c.ot_n * ARENA_BUS_BYTES);
    return c;
}

// Computed pixel c of an output row reads input pixel px (seen sx = c * rep * stride) when
// sx < seen_w; the valid ones are a prefix 0 .. nvalid - 1 of the row's computed pixels.
inline int conv_valid_pixels(const Desc &d, const ConvGeom &c) {
    if (c.patch) return c.ncx;                              // out-of-image taps arrive as zero points
    const int step = c.rep * d.stride;                      // 1, 2 or 4
    const int sh = step == 4 ? 2 : step == 2 ? 1 : 0;
    const int n = ((c.seen_w - 1) >> sh) + 1;               // (seen_w - 1) / step + 1, no divider
    return n < c.ncx ? n : c.ncx;
}

// 1x1 extraction table of the streaming path: input k of weight word kt, lane j (k = kt * PER + j)
// is byte xrel[j][kt] of the pixel's SB-beat run (PATCH3X3: of tap t's lane-aligned beat t).
// One entry a cycle.
template <bool W8>
inline void load_xrel(const Desc &d, const chan_t gch[MAX_CH], const Gather &g, chan_t xrel[PA][MAX_K / (PA / 2)]) {
    constexpr int PER = W8 ? PA / 2 : PA;
    const bool patch = d.in_mode == MODE_PATCH3X3;
    const chan_t base = patch ? g.lo : chan_t(g.lo & chan_t(~(ARENA_BUS_BYTES - 1)));
    int j = 0, kt = 0, i = 0, t = 0;
    CODENET_ENTER(PH_LOAD, EV_LOOP);
    for (int k = 0; k < conv_k(d); k++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_K
#pragma HLS PIPELINE II = 1
        CODENET_ITER(PH_LOAD);
        xrel[j][kt] = chan_t(t * ARENA_BUS_BYTES) + gch[i] - base;
        if (++i == d.cin) {
            i = 0;
            t++;
        }
        if (++j == PER) {
            j = 0;
            kt++;
        }
    }
}

// PATCH3X3 reader: per output row, its (up to) 3 input rows into the row buffer, one burst each,
// then the 9 taps of every output pixel as lane-aligned beats (the gathered run of tap t, read as
// the two row-buffer beats that hold it and shifted to lane 0; a tap outside the image is a beat
// of zero points), one a cycle.
inline void patch_reader(const bus_t *arena, const Desc &d, const Gather &g, hls::stream<bus_t> &pix) {
    static bus_t rbuf[3][PATCH_ROW_BEATS + 1];
#pragma HLS ARRAY_PARTITION variable = rbuf complete dim = 1
    bus_t zp_beat;
    for (int i = 0; i < ARENA_BUS_BYTES; i++) {
#pragma HLS UNROLL
        zp_beat.range(8 * i + 7, 8 * i) = d.in_zp;
    }
    const addr_t row_bytes = addr_t(d.in_w) * d.in_cs;
    for (int y = 0; y < d.out_h; y++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IMG
        bool row_ok[3];
        int lane0[3];
#pragma HLS ARRAY_PARTITION variable = row_ok complete
#pragma HLS ARRAY_PARTITION variable = lane0 complete
        for (int ky = 0; ky < 3; ky++) {
            const int sy = y * d.stride - d.pad + ky;
            row_ok[ky] = sy >= 0 && sy < d.in_h;
            const addr_t start = d.in_off + addr_t(row_ok[ky] ? sy : 0) * row_bytes;
            lane0[ky] = lane_of(start);
            if (!row_ok[ky]) continue;
            const int nb = beats_of(start, row_bytes.to_int());
            CODENET_ENTER(PH_READ, EV_BURST);
            for (int b = 0; b < nb; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = PATCH_ROW_BEATS
#pragma HLS PIPELINE II = 1
                CODENET_ITER(PH_READ);
                CODENET_BEAT();
                CODENET_READ(beat_of(start) + addr_t(b));
                rbuf[ky][b] = arena[beat_of(start) + addr_t(b)];
            }
        }
        int x = 0, ky = 0, kx = 0;
        CODENET_ENTER(PH_READ, EV_LOOP);
        for (int it = 0; it < d.out_w * TAPS; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IMG * TAPS
#pragma HLS PIPELINE II = 1
            CODENET_ITER(PH_READ);
            const int sx = x * d.stride - d.pad + kx;
            bus_t v = zp_beat;
            if (row_ok[ky] && sx >= 0 && sx < d.in_w) {
                const int rel = lane0[ky] + sx * d.in_cs.to_int() + g.lo.to_int();   // < PATCH_ROW_BEATS * 16
                const ap_uint<2 * 8 * ARENA_BUS_BYTES> two = (ap_uint<2 * 8 * ARENA_BUS_BYTES>(rbuf[ky][(rel >> 4) + 1])
                                                              << (8 * ARENA_BUS_BYTES)) |
                                                             ap_uint<2 * 8 * ARENA_BUS_BYTES>(rbuf[ky][rel >> 4]);
                v = bus_t(two >> (8 * (rel & (ARENA_BUS_BYTES - 1))));
            }
            pix.write(v);
            if (++kx == 3) {
                kx = 0;
                if (++ky == 3) {
                    ky = 0;
                    x++;
                }
            }
        }
    }
}

inline void conv_reader(const bus_t *arena, const Desc d, const Gather g, const ConvGeom c, hls::stream<bus_t> &pix) {
    if (c.patch) {
        patch_reader(arena, d, g, pix);
        return;
    }
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
    constexpr int CHAIN = W8 ? CHAIN_8BIT : CHAIN_4BIT;     // products per DSP cascade
    static_assert(PER % CHAIN == 0, "a weight word's inputs are whole DSP cascades");
    const act_t zp = act_value(d.in_zp, d.in_signed);
    const int nvalid = conv_valid_pixels(d, c);
    const int mac_n = c.ot_n * c.kt_n;
    for (int y = 0; y < d.out_h; y++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IMG
        const bool row_ok = c.patch || y * d.stride < c.seen_h;
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
                    const bool used = j < PER && k < c.k;
                    const int pos = used ? xrel[j][kt].to_int() : 0;
                    const act_t v = valid ? act_value(byte_at(pbuf[j][pos >> 4], pos & (ARENA_BUS_BYTES - 1)),
                                                      d.in_signed)
                                          : zp;
                    x[j] = used ? v : act_t(0);
                }
                // per lane pair: PER / CHAIN packed DSP cascades (mac_chain: the adds in the DSP
                // post-adders), each separated once at its end; then one add per chain and lane
                // onto the bias / running accumulator
                acc_t sum[PE];
#pragma HLS ARRAY_PARTITION variable = sum complete
                for (int p = 0; p < PE; p += 2) {
#pragma HLS UNROLL
                    const wword_t w_lo = wbuf[p][ot * c.kt_n + kt], w_hi = wbuf[p + 1][ot * c.kt_n + kt];
                    acc_t s_lo = kt == 0 ? acc_t(rq[p][ot].bias) : acc[p];
                    acc_t s_hi = kt == 0 ? acc_t(rq[p + 1][ot].bias) : acc[p + 1];
                    for (int ch = 0; ch < PER / CHAIN; ch++) {
#pragma HLS UNROLL
                        wgt_t wl[CHAIN], wh[CHAIN];
                        act_t xc[CHAIN];
#pragma HLS ARRAY_PARTITION variable = wl complete
#pragma HLS ARRAY_PARTITION variable = wh complete
#pragma HLS ARRAY_PARTITION variable = xc complete
                        for (int j = 0; j < CHAIN; j++) {
#pragma HLS UNROLL
                            wl[j] = weight_at(w_lo, ch * CHAIN + j, W8);
                            wh[j] = weight_at(w_hi, ch * CHAIN + j, W8);
                            xc[j] = x[ch * CHAIN + j];
                        }
                        const ChainPair cp = mac_chain<CHAIN>(wl, wh, xc);
                        s_lo += cp.lo;
                        s_hi += cp.hi;
                    }
                    sum[p] = s_lo;
                    sum[p + 1] = s_hi;
                }
                for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                    acc[p] = sum[p];
                }
                if (kt == c.kt_n - 1) {                     // a tile done: one output beat
                    outb.write(requant_tile(sum, rq, ot, d));                  // pad lanes 0
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
        int b = 0, r = 0;                                    // beat of the output pixel, copy 0 .. rep-1
        addr_t pa = row;                                     // the output pixel's first beat
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
            // whole_out: consecutive beats (one burst); else the pixel's run at its channel offset
            const addr_t a = c.whole_out ? addr_t(row + addr_t(i)) : addr_t(pa + addr_t(b));
            CODENET_WROTE(a);
            arena[a] = v;
            if (++b == c.ot_n) {
                b = 0;
                pa += cs_beats;
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
    conv_reader(arena, d, g, c, pix);
    conv_mac<W8>(d, c, xrel, wbuf, rq, pbuf, pix, outb);
    conv_writer(arena, d, c, outb);
}


// ---------------------------------------------------------------- streaming DW3X3
//
// A PE-channel tile's gathered channels live in TB distinct beats of each pixel (TB <= PE; 1 for a
// plain 16-channel slice, a few for a shuffled gather); `TileBeats` lists them. Per tile (PE
// channels = one output beat per pixel), per output row:
//   dw_reader   the input rows the row needs first (each once per tile): ONE burst over the row
//               (every pixel's beats, the tile's forwarded) when that reads at most
//               DW_SINGLE_BEAT_COST beats per tile beat, else one-beat reads of the tile's beats;
//               deformable: the row's dilation bytes to `dil` (one burst when dil_cs is one beat,
//               else one-beat reads);
//   dw_compute  fills line-buffer rows from `pix` (one II = 1 loop per row, each lane taking its
//               byte from its beat), then one II = 1 loop over the output pixels: 9 taps x PE
//               lanes a cycle, requantized into one output beat to `outb`;
//   dw_writer   the row's output beats: one burst when the tensor is this one tile wide (out_cs
//               one beat, out_choff 0), else one-beat writes (a beat stride apart).
// Line buffer (static banking, line_buf_t): tap column kx reads copy kx / 2 of EVERY row bank at
// the same column px = x + (kx - 1) * d (copy 0 serves columns 0 and 1 over its two ports), and
// the tap (ky, kx) selects its row among the LINE_ROWS words read (a data multiplexer, no runtime
// bank address).

// The rows the compute stage fills before output row y (reader and compute walk the same
// sequence): physical rows next_row .. return value - 1.
inline int dw_rows_needed(const Desc &d, int y) {
    const bool up = d.in_mode == MODE_UPSAMPLE2;
    const int seen_h = up ? 2 * d.in_h : d.in_h;
    int seen_hi = d.deformable ? y + MAX_DIL : y * d.stride - d.pad + 2;
    if (seen_hi > seen_h - 1) seen_hi = seen_h - 1;
    return (up ? seen_hi >> 1 : seen_hi) + 1;
}

// The distinct beats (offsets within the pixel, increasing) holding a tile's gathered channels,
// and for each lane the index of its beat in that list and its byte lane.
struct TileBeats {
    int nbt;                        // TB
    ap_uint<16> beat[PE];           // beat offsets within the pixel
    ap_uint<4> lane_k[PE], lane_b[PE];
};

inline TileBeats tile_beats(const chan_t gch[MAX_CH], int ct, int n) {
#pragma HLS INLINE
    TileBeats t;
    ap_uint<16> bt[PE];
    bool first[PE];
#pragma HLS ARRAY_PARTITION variable = bt complete
#pragma HLS ARRAY_PARTITION variable = first complete
    for (int c = 0; c < PE; c++) {
#pragma HLS UNROLL
        bt[c] = c < n ? ap_uint<16>(gch[ct * PE + c] >> 4) : bt[0];
    }
    // rank of each lane's beat among the distinct beats (a 16 x 16 comparator array, no loop)
    t.nbt = 0;
    for (int c = 0; c < PE; c++) {
#pragma HLS UNROLL
        first[c] = true;
        int rank = 0;
        for (int e = 0; e < PE; e++) {
#pragma HLS UNROLL
            if (e < c && bt[e] == bt[c]) first[c] = false;
        }
        for (int e = 0; e < PE; e++) {
#pragma HLS UNROLL
            bool first_e = true;
            for (int f = 0; f < e; f++) {
#pragma HLS UNROLL
                if (bt[f] == bt[e]) first_e = false;
            }
            if (first_e && bt[e] < bt[c]) rank++;
        }
        t.lane_k[c] = rank;
        t.lane_b[c] = c < n ? (gch[ct * PE + c] & 15).to_int() : 0;
        if (first[c]) t.nbt++;
    }
    for (int c = 0; c < PE; c++) {
#pragma HLS UNROLL
        if (first[c]) t.beat[t.lane_k[c]] = bt[c];
    }
    return t;
}

inline void dw_reader(const bus_t *arena, const Desc d, const chan_t gch[MAX_CH], hls::stream<bus_t> &pix,
                      hls::stream<byte_t> &dil) {
    const int cs_beats = (d.in_cs >> 4).to_int();
    const bool dil_run = d.dil_cs == addr_t(ARENA_BUS_BYTES);
    for (int ct = 0; ct < ceil_div(d.cout, PE); ct++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = CH_TILES
        const int n = d.cout - ct * PE < PE ? d.cout - ct * PE : PE;
        const TileBeats t = tile_beats(gch, ct, n);
        const int lo = t.beat[0].to_int(), span = t.beat[t.nbt - 1].to_int() - lo + 1;
        const bool run_mode = (d.in_w - 1) * cs_beats + span <= d.in_w * t.nbt * DW_SINGLE_BEAT_COST;
        int next_row = 0;
        for (int y = 0; y < d.out_h; y++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_H
            const int rows = dw_rows_needed(d, y);
            for (int row = next_row; row < rows; row++) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = LINE_ROWS
                const addr_t pix0 = beat_of(d.in_off + addr_t(row) * addr_t(d.in_w) * d.in_cs);
                if (run_mode) {
                    const int nb = (d.in_w - 1) * cs_beats + span;
                    int pb = lo, k = 0;                   // beat within the pixel, next listed beat
                    CODENET_ENTER(PH_READ, EV_BURST);
                    for (int b = 0; b < nb; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_W * CH_TILES
#pragma HLS PIPELINE II = 1
                        CODENET_ITER(PH_READ);
                        CODENET_BEAT();
                        CODENET_READ(pix0 + addr_t(lo + b));
                        const bus_t v = arena[pix0 + addr_t(lo + b)];
                        const bool listed = k < t.nbt && pb == t.beat[k & (PE - 1)];
                        if (listed) pix.write(v);
                        if (listed) k++;
                        if (++pb == cs_beats) {
                            pb = 0;
                            k = 0;
                        }
                    }
                } else {
                    int k = 0;
                    addr_t pa = pix0;                     // the pixel's first beat (added to, no product)
                    CODENET_ENTER(PH_READ, EV_SINGLES);   // strided: no burst is inferred
                    for (int i = 0; i < d.in_w * t.nbt; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_W * PE
#pragma HLS PIPELINE II = 1
                        CODENET_ITER(PH_READ);
                        CODENET_BEAT();
                        const addr_t a = pa + addr_t(t.beat[k]);
                        CODENET_READ(a);
                        pix.write(arena[a]);
                        if (++k == t.nbt) {
                            k = 0;
                            pa += cs_beats;
                        }
                    }
                }
            }
            if (rows > next_row) next_row = rows;
            if (d.deformable) {
                const addr_t da = d.dil_off + addr_t(y) * addr_t(d.out_w) * d.dil_cs;
                const int lane = lane_of(da);                 // dil_cs is whole beats: the same lane
                addr_t a = beat_of(da);
                CODENET_ENTER(PH_READ, dil_run ? EV_BURST : EV_SINGLES);
                for (int x = 0; x < d.out_w; x++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_W
#pragma HLS PIPELINE II = 1
                    CODENET_ITER(PH_READ);
                    CODENET_BEAT();
                    CODENET_READ(a);
                    dil.write(byte_at(arena[a], lane));
                    a += d.dil_cs >> 4;
                }
            }
        }
    }
}

inline void dw_compute(const Desc d, const chan_t gch[MAX_CH], const dwrow_t dww[PE][CH_TILES],
                       const Requant rq[PE][CH_TILES], line_buf_t &lb, hls::stream<bus_t> &pix,
                       hls::stream<byte_t> &dil, hls::stream<bus_t> &outb) {
    const bool up = d.in_mode == MODE_UPSAMPLE2;
    const int seen_h = up ? 2 * d.in_h : d.in_h;
    const int seen_w = up ? 2 * d.in_w : d.in_w;
    const act_t zp = act_value(d.in_zp, d.in_signed);
    for (int ct = 0; ct < ceil_div(d.cout, PE); ct++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = CH_TILES
        const int n = d.cout - ct * PE < PE ? d.cout - ct * PE : PE;
        const TileBeats t = tile_beats(gch, ct, n);
        int next_row = 0;
        for (int y = 0; y < d.out_h; y++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_H
            const int rows = dw_rows_needed(d, y);
            for (int row = next_row; row < rows; row++) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = LINE_ROWS
                const int slot = row % LINE_ROWS;          // constant modulus, once per row
                int x = 0, k = 0;
                lrow_t word = 0;
                CODENET_ENTER(PH_COMPUTE, EV_LOOP);
                for (int i = 0; i < d.in_w * t.nbt; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_W * PE
#pragma HLS PIPELINE II = 1
                    CODENET_ITER(PH_COMPUTE);
                    const bus_t v = pix.read();
                    lrow_t cur = word;
                    for (int c = 0; c < PE; c++) {
#pragma HLS UNROLL
                        if (c < n && t.lane_k[c] == k) cur.range(8 * c + 7, 8 * c) = byte_at(v, t.lane_b[c]);
                    }
                    const bool last = k == t.nbt - 1;
                    if (last) {
                        for (int k = 0; k < LB_COPIES; k++) {
#pragma HLS UNROLL
                            lb[slot][k][x] = cur;                // the LB_COPIES copies of the bank
                        }
                    }
                    word = last ? lrow_t(0) : cur;
                    if (++k == t.nbt) {
                        k = 0;
                        x++;
                    }
                }
            }
            if (rows > next_row) next_row = rows;
            CODENET_ENTER(PH_COMPUTE, EV_LOOP);
            for (int x = 0; x < d.out_w; x++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_W
#pragma HLS PIPELINE II = 1
                CODENET_ITER(PH_COMPUTE);
                int dl = 1, base_y = y * d.stride - d.pad, base_x = x * d.stride - d.pad;
                if (d.deformable) {
                    const byte_t db = dil.read();
                    dl = db > MAX_DIL ? MAX_DIL : db.to_int();
                    base_y = y - dl;
                    base_x = x - dl;
                }
                // copy kx of every bank, read at its column: LINE_ROWS x TAP_COLS words
                lrow_t col[TAP_COLS][LINE_ROWS];
#pragma HLS ARRAY_PARTITION variable = col complete dim = 0
                bool col_ok[TAP_COLS];
#pragma HLS ARRAY_PARTITION variable = col_ok complete
                for (int kx = 0; kx < TAP_COLS; kx++) {
#pragma HLS UNROLL
                    const int sx = base_x + kx * dl;
                    col_ok[kx] = sx >= 0 && sx < seen_w;
                    const int px = col_ok[kx] ? (up ? sx >> 1 : sx) : 0;
                    for (int r = 0; r < LINE_ROWS; r++) {
#pragma HLS UNROLL
                        col[kx][r] = lb[r][kx >> 1][px];   // copy 0: columns 0, 1; copy 1: column 2
                    }
                }
                // the 9 tap values of every lane (row select: a data mux over the banks)
                act_t tv[TAPS][PE];
#pragma HLS ARRAY_PARTITION variable = tv complete dim = 0
                for (int ky = 0; ky < 3; ky++) {
#pragma HLS UNROLL
                    const int sy = base_y + ky * dl;
                    const bool row_ok = sy >= 0 && sy < seen_h;
                    const int slot = row_ok ? (up ? sy >> 1 : sy) % LINE_ROWS : 0;   // row select (data mux)
                    for (int kx = 0; kx < TAP_COLS; kx++) {
#pragma HLS UNROLL
                        const lrow_t w = col[kx][slot];
                        const bool ok = row_ok && col_ok[kx];
                        for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                            tv[ky * 3 + kx][p] = ok ? act_value(byte_t(w.range(8 * p + 7, 8 * p)), d.in_signed) : zp;
                        }
                    }
                }
                // per lane: taps DW_DSP_TAPS .. 8 on LUT multipliers summed onto the bias, that sum
                // into the C port of a cascade of DW_DSP_TAPS DSP48E2 (P = PCIN + A x B, taps
                // 0 .. DW_DSP_TAPS - 1): the adds of the DSP taps in the post-adders. Integer sums
                // in any order are the same (FORMAT.md: the accumulator never overflows).
                acc_t accs[PE];
#pragma HLS ARRAY_PARTITION variable = accs complete
                for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                    const dwrow_t wr = dww[p][ct];
                    acc_t s = acc_t(rq[p][ct].bias);
                    for (int t = DW_DSP_TAPS; t < TAPS; t++) {
#pragma HLS UNROLL
                        const half_t prod = wgt_t(wr.range(8 * t + 7, 8 * t)) * tv[t][p];
#pragma HLS BIND_OP variable = prod op = mul impl = fabric
                        s += prod;
                    }
                    pack_acc_t cas = pack_acc_t(s);                  // the first slice's C input
#pragma HLS BIND_OP variable = cas op = add impl = dsp
                    for (int t = 0; t < DW_DSP_TAPS; t++) {
#pragma HLS UNROLL
                        const pack_p_t dprod = pack_a_t(wgt_t(wr.range(8 * t + 7, 8 * t))) * pack_b_t(tv[t][p]);
#pragma HLS BIND_OP variable = dprod op = mul impl = dsp
                        cas = cas + pack_acc_t(dprod);               // PCIN + A x B
                    }
                    accs[p] = acc_t(cas);
                }
                outb.write(requant_tile(accs, rq, ct, d));
            }
        }
    }
}

inline void dw_writer(bus_t *arena, const Desc d, hls::stream<bus_t> &outb) {
    CODENET_ASSERT(lane_of(d.out_off) == 0 && lane_of(d.out_cs) == 0 && lane_of(d.out_choff) == 0,
                   "partial-beat write: output runs not beat aligned", (d.out_off + d.out_choff).to_uint64());
    const addr_t cs_beats = d.out_cs >> 4;
    const bool whole = d.out_choff == 0 && d.out_cs == addr_t(ARENA_BUS_BYTES);
    for (int ct = 0; ct < ceil_div(d.cout, PE); ct++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = CH_TILES
        for (int y = 0; y < d.out_h; y++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_H
            addr_t a = beat_of(d.out_off) + addr_t(y) * addr_t(d.out_w) * cs_beats + (d.out_choff >> 4) + addr_t(ct);
            CODENET_ENTER(PH_WRITE, whole ? EV_BURST : EV_SINGLES);
            for (int x = 0; x < d.out_w; x++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_W
#pragma HLS PIPELINE II = 1
                CODENET_ITER(PH_WRITE);
                CODENET_BEAT();
                CODENET_WROTE(a);
                arena[a] = outb.read();
                a += cs_beats;                             // pixel x + 1 (whole: the next beat)
            }
        }
    }
}

// One streaming DW3X3 layer: the three stages run concurrently.
inline void dw3x3_stream(bus_t *arena, const Desc &d, const chan_t gch[MAX_CH],
                         const dwrow_t dww[PE][CH_TILES], const Requant rq[PE][CH_TILES], line_buf_t &lb) {
#pragma HLS INLINE off
    hls::stream<bus_t> pix("dw_pix"), outb("dw_out");
    hls::stream<byte_t> dil("dw_dil");
#pragma HLS STREAM variable = pix depth = STREAM_BEATS
#pragma HLS STREAM variable = outb depth = STREAM_BEATS
#pragma HLS STREAM variable = dil depth = STREAM_BEATS
#pragma HLS DATAFLOW
    dw_reader(arena, d, gch, pix, dil);
    dw_compute(d, gch, dww, rq, lb, pix, dil, outb);
    dw_writer(arena, d, outb);
}

}  // namespace codenet

#endif  // CODENET_DATAFLOW_H
