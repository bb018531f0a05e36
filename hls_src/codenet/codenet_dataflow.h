// CoDeNet engine: the streaming layers, one DATAFLOW region each. Contract: FORMAT.md (the
// descriptor checks guarantee the input conditions below: beat-aligned inputs, a 1x1 pixel's
// gathered run within PIX_BEATS, a PATCH3X3 gather within one beat and its rows within
// PATCH_ROW_BEATS).
//
// CONV1X1 (direct, nearest x2, PATCH3X3):
//   conv_reader  per output row, per input pixel group holding a needed pixel: the group's
//                gathered blocks (one run of SB x gw beats, layout v3) into the group buffer, then
//                the beats of the pixels the row computes, in pixel order, to `pix`;
//   conv_mac     per output row: ONE flattened II = 1 loop; per computed pixel it pops the pixel's
//                SB beats into the pixel buffer, then runs OT x KT MAC cycles (PA inputs x PE
//                outputs), and pushes each requantized PE-lane tile as one output beat to `outb`;
//   conv_writer  per output row, per output pixel group: the computed pixels' OT beats into the
//                group buffer, then the group's run of the layer's OT blocks (one run whether the
//                layer owns the buffer or writes its channel range of a concat).
// Every arena access is an explicit burst of whole beats (codenet_port.h): the readers' requests
// run AXI_OUTSTANDING bursts ahead of their data, the writers' responses are taken lagged.
// The three run concurrently (DATAFLOW); the streams decouple them by STREAM_BEATS beats.
// 4-bit and 8-bit weights are two instances of the same template (W8): the inputs per weight word
// (PER) and the weight decode are constants of each, never selected at run time.
#ifndef CODENET_DATAFLOW_H
#define CODENET_DATAFLOW_H

#include "codenet_engine.h"
#include "codenet_port.h"

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

// ---------------------------------------------------------------- tensor layout v3
// A row of a beat-layout tensor (FORMAT.md "Memory") is pixel groups of GROUP_PIX pixels, the
// last one `tail` wide (0: none); inside a group of width gw, 16-channel block b of its pixels is
// the run of gw beats from beat b * gw of the group. The group width of a run is GROUP_PIX or the
// row's tail: products by it are shifts or a product by the tail computed once per layer.
static_assert((GROUP_PIX & (GROUP_PIX - 1)) == 0 && GROUP_PIX <= AXI_MAX_BURST,
              "a group's channel block is at most one burst");
// The 1x1 stages' group buffers (one BRAM each, one write and one read port; declared in
// codenet_top.cpp and shared by the 4-bit and 8-bit instances, which never run at once): the
// reader's run of a group's gathered blocks, the writer's output beats of a group.
typedef bus_t group_buf_t[PIX_BEATS * GROUP_PIX];
typedef bus_t out_group_buf_t[CH_TILES * GROUP_PIX];
struct RowGroups {
    int full, tail, n;               // whole groups, width of the partial one (0: none), groups
};
inline RowGroups row_groups(int w) {
    RowGroups r;
    r.full = w / GROUP_PIX;
    r.tail = w % GROUP_PIX;
    r.n = r.full + (r.tail != 0 ? 1 : 0);
    return r;
}

// ---------------------------------------------------------------- streaming CONV1X1 readers

// PATCH3X3 reader's runs: per output row, its input rows inside the image (ky_lo .. ky_hi), each
// one run of the packed row's beats. Output rows past the image (a descriptor may ask for more
// rows than the geometry gives) read nothing: the runs end at y_end.
struct PatchRuns {
    addr_t row_bytes, base;          // base = in_off + sy0 * row_bytes (mod 2^32: sy0 may be -1)
    addr_t step;                     // stride * row_bytes
    int in_h, stride, pad, y_end;
    int y, ky, sy0;                  // sy0 = y * stride - pad
    int ky_lo() const { return sy0 < 0 ? -sy0 : 0; }
    int ky_hi() const { return in_h - 1 - sy0 < 2 ? in_h - 1 - sy0 : 2; }
    void init(const Desc &d) {
        row_bytes = addr_t(d.in_w) * d.in_cs;
        step = d.stride == 4 ? row_bytes << 2 : d.stride == 2 ? row_bytes << 1 : row_bytes;
        base = d.pad ? addr_t(d.in_off - row_bytes) : d.in_off;    // pad <= MAX_PAD = 1
        in_h = d.in_h;
        stride = d.stride;
        pad = d.pad;
        const int sh = d.stride == 4 ? 2 : d.stride == 2 ? 1 : 0;
        y_end = ((d.in_h - 1 + d.pad) >> sh) + 1;          // rows y with y * stride - pad <= in_h - 1
        if (y_end > d.out_h) y_end = d.out_h;
        y = 0;
        sy0 = -d.pad;
        ky = ky_lo();
    }
    bool next(addr_t &beat, int &len, const NoCtx &) {
#pragma HLS INLINE
        if (y >= y_end) return false;
        const addr_t start = base + (ky == 2 ? addr_t(row_bytes << 1) : ky == 1 ? row_bytes : addr_t(0));
        beat = beat_of(start);
        len = beats_of(start, row_bytes.to_int());
        if (++ky > ky_hi()) {
            y++;
            sy0 += stride;
            base += step;
            ky = ky_lo();
        }
        return true;
    }
};

// PATCH3X3 reader: per output row, its (up to) 3 input rows into the row buffer (one run each,
// requested ahead), then the 9 taps of every output pixel as lane-aligned beats (the gathered run
// of tap t, read as the two row-buffer beats that hold it and shifted to lane 0; a tap outside
// the image is a beat of zero points), one a cycle.
inline void patch_reader(arena_port_t &arena, const Desc &d, const Gather &g, hls::stream<bus_t> &pix) {
    static bus_t rbuf[3][PATCH_ROW_BEATS + 1];
#pragma HLS ARRAY_PARTITION variable = rbuf complete dim = 1
    bus_t zp_beat;
    for (int i = 0; i < ARENA_BUS_BYTES; i++) {
#pragma HLS UNROLL
        zp_beat.range(8 * i + 7, 8 * i) = d.in_zp;
    }
    const addr_t row_bytes = addr_t(d.in_w) * d.in_cs;
    PatchRuns runs;
    runs.init(d);
    const NoCtx ctx;
    Prefetch<PatchRuns, NoCtx> pf;
    pf.start(arena, runs, ctx, PH_READ);
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
            CODENET_ENTER(PH_READ, EV_QUEUED);
            for (int b = 0; b < nb; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = PATCH_ROW_BEATS
#pragma HLS PIPELINE II = 1
                CODENET_ITER(PH_READ);
                CODENET_BEAT();
                pf.try_issue(arena, ctx);
                rbuf[ky][b] = arena.read();
                if (burst_end(b, nb)) pf.done();
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

// The output rows of a direct / x2 CONV1X1 layer that read input (a prefix: the others are
// zero-point rows).
inline int conv_rows_read(const Desc &d, const ConvGeom &c) {
    if (conv_valid_pixels(d, c) == 0) return 0;
    const int n = d.stride == 2 ? (c.seen_h + 1) >> 1 : c.seen_h;   // rows with y * stride < seen_h
    return n < d.out_h ? n : d.out_h;
}

// The 1x1 reader's runs: per output row that reads input, per group holding a needed pixel, the
// group's gathered blocks lo .. lo + SB - 1 (one run of SB x gw beats).
struct ConvRuns {
    addr_t row, row_beats, grp_beats;   // current input row's first beat; beats of a row, of a group
    int rows, last_px, y, g, groups, full;   // rows that read, last needed pixel, groups it spans
    int lo_full, lo_tail, len_full, len_tail;
    int gbase;                          // g * grp_beats
    bool up;
    int stride, sy, py;                 // sy = y * stride
    void init(const Desc &d, const ConvGeom &c) {
        const RowGroups rg = row_groups(d.in_w);
        last_px = (conv_valid_pixels(d, c) - 1) * c.pstep;
        row_beats = addr_t(d.in_w) * addr_t(c.cs_beats);
        grp_beats = addr_t(GROUP_PIX * c.cs_beats);
        row = beat_of(d.in_off);
        rows = conv_rows_read(d, c);
        groups = last_px / GROUP_PIX + 1;
        full = rg.full;
        lo_full = c.lo_beat * GROUP_PIX;
        lo_tail = c.lo_beat * rg.tail;
        len_full = c.sb * GROUP_PIX;
        len_tail = c.sb * rg.tail;
        up = d.in_mode == MODE_UPSAMPLE2;
        stride = d.stride;
        y = 0;
        g = 0;
        gbase = 0;
        sy = 0;
        py = 0;
    }
    bool next(addr_t &beat, int &len, const NoCtx &) {
#pragma HLS INLINE
        if (y >= rows) return false;
        const bool whole = g < full;
        beat = row + addr_t(gbase) + addr_t(whole ? lo_full : lo_tail);
        len = whole ? len_full : len_tail;
        if (++g == groups) {
            g = 0;
            gbase = 0;
            y++;
            sy += stride;
            const int npy = up ? sy >> 1 : sy;
            if (npy - py == 2) row += row_beats << 1;   // the next input row: 0, 1 or 2 rows on
            else if (npy - py == 1) row += row_beats;
            py = npy;
        } else {
            gbase += grp_beats.to_int();
        }
        return true;
    }
};

// The 1x1 reader: per output row that reads input, per group holding a needed pixel: its run of
// the gathered blocks into the group buffer (block-major, requested ahead), then the beats of the
// pixels the row computes (every pstep-th, up to the last valid one) in pixel order to `pix`.
inline void conv_reader(arena_port_t &arena, const Desc d, const Gather g, const ConvGeom c, group_buf_t &gbuf,
                        hls::stream<bus_t> &pix) {
    if (c.patch) {
        patch_reader(arena, d, g, pix);
        return;
    }
    const RowGroups rg = row_groups(d.in_w);
    ConvRuns runs;                                   // the run sequence, also the data side's bounds
    runs.init(d, c);
    const int rows = runs.rows, last_px = runs.last_px, groups = runs.groups;
    const NoCtx ctx;
    Prefetch<ConvRuns, NoCtx> pf;
    pf.start(arena, runs, ctx, PH_READ);
    for (int y = 0; y < rows; y++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IMG
        for (int gi = 0; gi < groups; gi++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IMG / GROUP_PIX
            const int gw = gi < rg.full ? GROUP_PIX : rg.tail;
            const int len = c.sb * gw;
            const int px0 = gi * GROUP_PIX;
            const int last = last_px - px0 < gw - 1 ? last_px - px0 : gw - 1;     // last needed pixel of the group
            CODENET_ENTER(PH_READ, EV_QUEUED);
            for (int i = 0; i < len; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = PIX_BEATS * GROUP_PIX
#pragma HLS PIPELINE II = 1
                CODENET_ITER(PH_READ);
                CODENET_BEAT();
                pf.try_issue(arena, ctx);
                gbuf[i] = arena.read();
                if (burst_end(i, len)) pf.done();
            }
            // emit: pixel xi = 0, pstep, .. <= last; its blocks k at k * gw + xi
            const int ne = c.pstep == 1 ? last + 1 : (last >> 1) + 1;
            int xi = 0, k = 0, a = 0;
            CODENET_ENTER(PH_READ, EV_LOOP);
            for (int j = 0; j < ne * c.sb; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = PIX_BEATS * GROUP_PIX
#pragma HLS PIPELINE II = 1
                CODENET_ITER(PH_READ);
                pix.write(gbuf[a]);
                if (++k == c.sb) {
                    k = 0;
                    xi += c.pstep;
                    a = xi;
                } else {
                    a += gw;
                }
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

// The 1x1 writer: per output row, per group of the row: the computed pixels' OT beats into the
// group buffer (pixel-major from the stream), then the group's run of the layer's blocks
// out_choff / 16 .. + OT - 1 (OT x gw beats, block-major; nearest x2: each computed pixel is two
// output pixels) written as bursts, the write responses taken lagged (WriteBursts).
inline void conv_writer(arena_port_t &arena, const Desc d, const ConvGeom c, out_group_buf_t &obuf,
                        hls::stream<bus_t> &outb) {
    CODENET_ASSERT(lane_of(d.out_off) == 0 && lane_of(d.out_cs) == 0 && lane_of(d.out_choff) == 0,
                   "partial-beat write: output runs not beat aligned", (d.out_off + d.out_choff).to_uint64());
    const RowGroups rg = row_groups(d.out_w);
    const int cs_beats = (d.out_cs >> 4).to_int(), choff_beats = (d.out_choff >> 4).to_int();
    const addr_t row_beats = addr_t(d.out_w) * addr_t(cs_beats);
    const int grp_beats = GROUP_PIX * cs_beats;
    const int off_full = choff_beats * GROUP_PIX, off_tail = choff_beats * rg.tail;
    const int len_full = c.ot_n * GROUP_PIX, len_tail = c.ot_n * rg.tail;
    const int rep_shift = c.rep == 2 ? 1 : 0;
    WriteBursts wb;
    wb.start();
    addr_t row = beat_of(d.out_off);
    for (int y = 0; y < d.out_h; y++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IMG
        int gbase = 0;
        for (int gi = 0; gi < rg.n; gi++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IMG / GROUP_PIX
            const bool whole = gi < rg.full;
            const int gw = whole ? GROUP_PIX : rg.tail;
            const int ncg = (gw + c.rep - 1) >> rep_shift;      // computed pixels of the group
            int b = 0, cx = 0, a = 0;
            CODENET_ENTER(PH_WRITE, EV_LOOP);
            for (int i = 0; i < ncg * c.ot_n; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = CH_TILES * GROUP_PIX
#pragma HLS PIPELINE II = 1
                CODENET_ITER(PH_WRITE);
                obuf[a] = outb.read();                        // beat b of computed pixel cx
                if (++b == c.ot_n) {
                    b = 0;
                    cx++;
                    a = cx;
                } else {
                    a += GROUP_PIX;
                }
            }
            const addr_t start = row + addr_t(gbase + (whole ? off_full : off_tail));
            const int len = whole ? len_full : len_tail;
            int xi = 0;
            b = 0;
            CODENET_ENTER(PH_WRITE, EV_QUEUED);
            for (int i = 0; i < len; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = CH_TILES * GROUP_PIX
#pragma HLS PIPELINE II = 1
                CODENET_ITER(PH_WRITE);
                CODENET_BEAT();
                if ((i & (AXI_MAX_BURST - 1)) == 0)
                    wb.request(arena, start + addr_t(i), len - i < AXI_MAX_BURST ? len - i : AXI_MAX_BURST);
                arena.write(obuf[b * GROUP_PIX + (xi >> rep_shift)]);
                if (++xi == gw) {
                    xi = 0;
                    b++;
                }
            }
            gbase += grp_beats;
        }
        row += row_beats;
    }
    wb.finish(arena, PH_WRITE);
}

// One streaming CONV1X1 layer: the three stages run concurrently.
template <bool W8>
inline void conv1x1_stream(arena_port_t &arena, arena_port_t &arena_wr, const Desc &d, const Gather &g, const chan_t xrel[PA][MAX_K / (PA / 2)],
                           const wword_t wbuf[PE][W_WORDS], const Requant rq[PE][CH_TILES], pix_buf_t &pbuf,
                           group_buf_t &gbuf, out_group_buf_t &obuf, const ConvGeom c) {
#pragma HLS INLINE off
    hls::stream<bus_t> pix("pix"), outb("outb");
#pragma HLS STREAM variable = pix depth = STREAM_BEATS
#pragma HLS STREAM variable = outb depth = STREAM_BEATS
#pragma HLS DATAFLOW
    conv_reader(arena, d, g, c, gbuf, pix);
    conv_mac<W8>(d, c, xrel, wbuf, rq, pbuf, pix, outb);
    conv_writer(arena_wr, d, c, obuf, outb);
}


// ---------------------------------------------------------------- streaming DW3X3
//
// A PE-channel tile's gathered channels live in TB distinct 16-channel blocks of each pixel
// (TB <= PE; 1 for a plain 16-channel slice, a few for a shuffled gather). load_tiles lists them
// once per layer (TileBlocks, TileLanes). Per tile (PE channels = one output beat per pixel), per output row:
//   dw_reader   the input rows the row needs first (each once per tile): per row group, the
//               tile's blocks (TB runs of gw beats, requested ahead); TB = 1: the run is in pixel
//               order and goes straight to `pix`, else the group's TB runs go into a small buffer
//               and out in pixel order (TB beats per pixel); deformable: the row's dilation bytes
//               (one run: the map has one beat per pixel) to `dil`;
//   dw_compute  fills line-buffer rows from `pix` (one II = 1 loop per row, each lane taking its
//               byte from its beat), then one II = 1 loop over the output pixels: 9 taps x PE
//               lanes a cycle, requantized into one output beat to `outb`;
//   dw_writer   the row's output beats: per group, the tile's block (one run of gw beats) as a
//               burst, write responses lagged.
// Line buffer (static banking, line_buf_t): tap column kx reads copy kx / 2 of EVERY row bank at
// the same column px = x + (kx - 1) * d (copy 0 serves columns 0 and 1 over its two ports), and
// the tap (ky, kx) selects its row among the LINE_ROWS words read (a data multiplexer, no runtime
// bank address).

// The rows the compute stage fills before output row y (reader and compute walk the same
// sequence): physical rows next_row .. return value - 1.
// rows_upto: the physical rows 0 .. return - 1 holding seen rows up to seen_hi (capped).
inline int rows_upto(int seen_hi, int seen_h, bool up) {
    if (seen_hi > seen_h - 1) seen_hi = seen_h - 1;
    return (up ? seen_hi >> 1 : seen_hi) + 1;
}
inline int dw_rows_needed(const Desc &d, int y) {
    const bool up = d.in_mode == MODE_UPSAMPLE2;
    return rows_upto(d.deformable ? y + MAX_DIL : y * d.stride - d.pad + 2, up ? 2 * d.in_h : d.in_h, up);
}

// Every tile's distinct 16-channel blocks (in order of first appearance among its lanes) and
// each lane's block index and byte, built once per layer one channel a cycle: a 16-entry list per
// tile searched by PE equality comparators (the loop-carried state: the list and its length). Two
// tables, so that each DATAFLOW process reads only its own: the reader's (the tile's block count
// and each block's offset inside a full group and inside the row's partial group: no product at
// run time) and the compute stage's (block count, lane map).
struct TileBlocks {
    ap_uint<5> nbt[CH_TILES];
    ap_uint<16> off_full[CH_TILES * PE], off_tail[CH_TILES * PE];   // block * GROUP_PIX, block * tail
};
struct TileLanes {
    ap_uint<5> nbt[CH_TILES];
    ap_uint<4> lane_k[PE][CH_TILES], lane_b[PE][CH_TILES];
};

inline void load_tiles(const Desc &d, const chan_t gch[MAX_CH], TileBlocks &tb, TileLanes &tl) {
    const int tail = d.in_w % GROUP_PIX;
    ap_uint<12> list[PE];                        // the tile's blocks so far (block < MAX_CH * 4)
#pragma HLS ARRAY_PARTITION variable = list complete
    int nb = 0, lane = 0, ct = 0;
    CODENET_ENTER(PH_LOAD, EV_LOOP);
    for (int i = 0; i < d.cout; i++) {          // channel i: tile ct, lane `lane`
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_CH
#pragma HLS PIPELINE II = 1
        CODENET_ITER(PH_LOAD);
        const chan_t ch = gch[i];
        const ap_uint<12> blk = ch >> 4;
        int hit = PE;                            // the list entry holding blk (at most one)
        for (int e = 0; e < PE; e++) {
#pragma HLS UNROLL
            if (e < nb && list[e] == blk) hit = e;
        }
        const bool is_new = hit == PE;
        const int k = is_new ? nb : hit;
        for (int e = 0; e < PE; e++) {           // constant indices: an enable per register
#pragma HLS UNROLL
            if (is_new && e == nb) list[e] = blk;
            if (e == lane) {
                tl.lane_k[e][ct] = k;
                tl.lane_b[e][ct] = ch & 15;
            }
        }
        if (is_new) {
            tb.off_full[ct * PE + nb] = blk * GROUP_PIX;
            tb.off_tail[ct * PE + nb] = blk * tail;
        }
        const int nb_next = is_new ? nb + 1 : nb;
        if (lane == PE - 1 || i == d.cout - 1) { // the tile is complete
            tb.nbt[ct] = nb_next;
            tl.nbt[ct] = nb_next;
            nb = 0;
            lane = 0;
            ct++;
        } else {
            nb = nb_next;
            lane++;
        }
    }
}

// The dw reader's runs, in the order it reads them: per tile, the input rows in order, per row
// group the tile's TB blocks (gw beats each); deformable: output row y's dilation run (out_w
// beats) as soon as the rows y needs are listed.
struct DwRuns {
    addr_t in_beat, row_beats, dil_beat;
    int grp_beats, full, tail, groups, n_tiles, rows_all, out_w, out_h;
    bool deformable, up;
    int seen_h, stride, pad;
    int ct, r, g, k, y, rows_y;
    addr_t rbase, dil_row;
    int gbase;
    void init(const Desc &dd) {
        const RowGroups rg = row_groups(dd.in_w);
        const int cs_beats = (dd.in_cs >> 4).to_int();
        in_beat = beat_of(dd.in_off);
        row_beats = addr_t(dd.in_w) * addr_t(cs_beats);
        grp_beats = GROUP_PIX * cs_beats;
        full = rg.full;
        tail = rg.tail;
        groups = rg.n;
        n_tiles = ceil_div(dd.cout, PE);
        rows_all = dw_rows_needed(dd, dd.out_h - 1);
        out_w = dd.out_w;
        out_h = dd.out_h;
        deformable = dd.deformable;
        up = dd.in_mode == MODE_UPSAMPLE2;
        seen_h = up ? 2 * dd.in_h : dd.in_h;
        stride = dd.stride;
        pad = dd.pad;
        dil_beat = beat_of(dd.dil_off);
        restart();
        ct = 0;
    }
    void restart() {               // the first run of a tile
        r = 0;
        g = 0;
        k = 0;
        y = 0;
        gbase = 0;
        rbase = in_beat;
        dil_row = dil_beat;
        rows_y = rows_needed(0);
    }
    int rows_needed(int yy) const {       // dw_rows_needed of a deformable layer (stride 1, no
#pragma HLS INLINE                        // product): the only kind that interleaves dilation runs
        return rows_upto(yy + MAX_DIL, seen_h, up);
    }
    bool next(addr_t &beat, int &len, const TileBlocks &tt) {
#pragma HLS INLINE
        if (ct == n_tiles) return false;
        if (deformable && (r == rows_all || r >= rows_y)) {            // output row y's dilations
            beat = dil_row;
            len = out_w;
            dil_row += addr_t(out_w);
            if (++y == out_h) {
                ct++;
                restart();
            } else {
                rows_y = rows_needed(y);
            }
            return true;
        }
        const int gw = g < full ? GROUP_PIX : tail;
        beat = rbase + addr_t(gbase) + addr_t(g < full ? tt.off_full[ct * PE + k] : tt.off_tail[ct * PE + k]);
        len = gw;
        if (++k == tt.nbt[ct]) {
            k = 0;
            if (++g == groups) {
                g = 0;
                gbase = 0;
                rbase += row_beats;
                if (++r == rows_all && !deformable) {
                    ct++;
                    restart();
                }
            } else {
                gbase += grp_beats;
            }
        }
        return true;
    }
};

inline void dw_reader(arena_port_t &arena, const Desc d, const TileBlocks &tt, hls::stream<bus_t> &pix,
                      hls::stream<byte_t> &dil) {
    static bus_t tbuf[PE * GROUP_PIX];                // a group's TB runs (TB > 1), block-major
    const RowGroups rg = row_groups(d.in_w);
    const int dil_lane = lane_of(d.dil_off);          // dil_cs is one beat: the same lane
    DwRuns runs;
    runs.init(d);
    const TileBlocks &ctx = tt;
    Prefetch<DwRuns, TileBlocks> pf;
    pf.start(arena, runs, ctx, PH_READ);
    for (int ct = 0; ct < ceil_div(d.cout, PE); ct++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = CH_TILES
        const int nbt = tt.nbt[ct].to_int();
        int next_row = 0;
        for (int y = 0; y < d.out_h; y++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_H
            const int rows = dw_rows_needed(d, y);
            for (int row = next_row; row < rows; row++) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = LINE_ROWS
                for (int gi = 0; gi < rg.n; gi++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_W / GROUP_PIX
                    const int gw = gi < rg.full ? GROUP_PIX : rg.tail;
                    for (int k = 0; k < nbt; k++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = PE
                        CODENET_ENTER(PH_READ, EV_QUEUED);
                        for (int xi = 0; xi < gw; xi++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = GROUP_PIX
#pragma HLS PIPELINE II = 1
                            CODENET_ITER(PH_READ);
                            CODENET_BEAT();
                            pf.try_issue(arena, ctx);
                            const bus_t v = arena.read();
                            if (nbt == 1) pix.write(v);              // one block: already in pixel order
                            else tbuf[k * GROUP_PIX + xi] = v;
                            if (xi == gw - 1) pf.done();
                        }
                    }
                    if (nbt == 1) continue;
                    int xi = 0, k = 0;
                    CODENET_ENTER(PH_READ, EV_LOOP);
                    for (int j = 0; j < gw * nbt; j++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = GROUP_PIX * PE
#pragma HLS PIPELINE II = 1
                        CODENET_ITER(PH_READ);
                        pix.write(tbuf[k * GROUP_PIX + xi]);
                        if (++k == nbt) {
                            k = 0;
                            xi++;
                        }
                    }
                }
            }
            if (rows > next_row) next_row = rows;
            if (d.deformable) {
                CODENET_ENTER(PH_READ, EV_QUEUED);
                for (int x = 0; x < d.out_w; x++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_W
#pragma HLS PIPELINE II = 1
                    CODENET_ITER(PH_READ);
                    CODENET_BEAT();
                    pf.try_issue(arena, ctx);
                    dil.write(byte_at(arena.read(), dil_lane));
                    if (burst_end(x, d.out_w)) pf.done();
                }
            }
        }
    }
}

inline void dw_compute(const Desc d, const TileLanes &tt, const dwrow_t dww[PE][CH_TILES],
                       const Requant rq[PE][CH_TILES], line_buf_t &lb, hls::stream<bus_t> &pix,
                       hls::stream<byte_t> &dil, hls::stream<bus_t> &outb) {
    const bool up = d.in_mode == MODE_UPSAMPLE2;
    const int seen_h = up ? 2 * d.in_h : d.in_h;
    const int seen_w = up ? 2 * d.in_w : d.in_w;
    const act_t zp = act_value(d.in_zp, d.in_signed);
    for (int ct = 0; ct < ceil_div(d.cout, PE); ct++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = CH_TILES
        const int n = d.cout - ct * PE < PE ? d.cout - ct * PE : PE;
        const int nbt = tt.nbt[ct].to_int();
        ap_uint<4> lane_k[PE], lane_b[PE];
#pragma HLS ARRAY_PARTITION variable = lane_k complete
#pragma HLS ARRAY_PARTITION variable = lane_b complete
        for (int c = 0; c < PE; c++) {
#pragma HLS UNROLL
            lane_k[c] = tt.lane_k[c][ct];
            lane_b[c] = tt.lane_b[c][ct];
        }
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
                for (int i = 0; i < d.in_w * nbt; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_W * PE
#pragma HLS PIPELINE II = 1
                    CODENET_ITER(PH_COMPUTE);
                    const bus_t v = pix.read();
                    lrow_t cur = word;
                    for (int c = 0; c < PE; c++) {
#pragma HLS UNROLL
                        if (c < n && lane_k[c] == k) cur.range(8 * c + 7, 8 * c) = byte_at(v, lane_b[c]);
                    }
                    const bool last = k == nbt - 1;
                    if (last) {
                        for (int k = 0; k < LB_COPIES; k++) {
#pragma HLS UNROLL
                            lb[slot][k][x] = cur;                // the LB_COPIES copies of the bank
                        }
                    }
                    word = last ? lrow_t(0) : cur;
                    if (++k == nbt) {
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

inline void dw_writer(arena_port_t &arena, const Desc d, hls::stream<bus_t> &outb) {
    CODENET_ASSERT(lane_of(d.out_off) == 0 && lane_of(d.out_cs) == 0 && lane_of(d.out_choff) == 0,
                   "partial-beat write: output runs not beat aligned", (d.out_off + d.out_choff).to_uint64());
    const RowGroups rg = row_groups(d.out_w);
    const int cs_beats = (d.out_cs >> 4).to_int();
    const addr_t row_beats = addr_t(d.out_w) * addr_t(cs_beats);
    const int grp_beats = GROUP_PIX * cs_beats;
    WriteBursts wb;
    wb.start();
    for (int ct = 0; ct < ceil_div(d.cout, PE); ct++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = CH_TILES
        const int blk = (d.out_choff >> 4).to_int() + ct;        // the tile's block of the output
        const int off_full = blk * GROUP_PIX, off_tail = blk * rg.tail;
        addr_t row = beat_of(d.out_off);
        for (int y = 0; y < d.out_h; y++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_H
            int xi = 0, gi = 0, gbase = 0;
            CODENET_ENTER(PH_WRITE, EV_QUEUED);
            for (int x = 0; x < d.out_w; x++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_W
#pragma HLS PIPELINE II = 1
                CODENET_ITER(PH_WRITE);
                CODENET_BEAT();
                const bool whole = gi < rg.full;
                if (xi == 0)                                       // a group's block: one burst
                    wb.request(arena, row + addr_t(gbase + (whole ? off_full : off_tail)), whole ? GROUP_PIX : rg.tail);
                arena.write(outb.read());
                if (++xi == (whole ? GROUP_PIX : rg.tail)) {
                    xi = 0;
                    gi++;
                    gbase += grp_beats;
                }
            }
            row += row_beats;
        }
    }
    wb.finish(arena, PH_WRITE);
}

// One streaming DW3X3 layer: the three stages run concurrently.
inline void dw3x3_stream(arena_port_t &arena, arena_port_t &arena_wr, const Desc &d, const TileBlocks &tb, const TileLanes &tl,
                         const dwrow_t dww[PE][CH_TILES], const Requant rq[PE][CH_TILES], line_buf_t &lb) {
#pragma HLS INLINE off
    hls::stream<bus_t> pix("dw_pix"), outb("dw_out");
    hls::stream<byte_t> dil("dw_dil");
#pragma HLS STREAM variable = pix depth = STREAM_BEATS
#pragma HLS STREAM variable = outb depth = STREAM_BEATS
#pragma HLS STREAM variable = dil depth = STREAM_BEATS
#pragma HLS DATAFLOW
    dw_reader(arena, d, tb, pix, dil);
    dw_compute(d, tl, dww, rq, lb, pix, dil, outb);
    dw_writer(arena_wr, d, outb);
}

}  // namespace codenet

#endif  // CODENET_DATAFLOW_H
