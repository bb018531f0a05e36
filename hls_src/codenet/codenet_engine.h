// CoDeNet engine building blocks (header only; contract: FORMAT.md in this folder).
//
// One layer runs in phases, one after the other:
//   1. decode its descriptor (read_desc, 32-bit program port);
//   2. move its gather table, requant parameters and 1x1 or 3x3 weights from the weights blob
//      into on-chip buffers (load_*), before any pixel streams;
//   3. stream the pixels: conv1x1 (PA inputs x PE outputs per cycle; input modes direct,
//      nearest upsample x2 and PATCH3X3 gather) or dw3x3 (PE channels x 9 taps per cycle, normal
//      or deformable, taps from a LINE_ROWS-row line buffer of a PE-channel tile).
// The arena and weights ports are ARENA_BUS_BYTES (16) bytes wide; the DDR layout stays byte
// addressed (FORMAT.md): a byte run is read as the beats that hold it and its bytes are picked
// on chip; a run is written as whole beats, the partial first / last beat read first and merged
// (read-modify-write; safe: one engine, layers in order, and a partial beat that was the last one
// written is forwarded on chip instead of read back, see LastBeat). The cycle model is in
// codenet_config.h; under C simulation every pipelined loop iteration, single-beat access and
// loop entry is counted per layer and phase, and every loop entry / blocking access is logged as
// an event (CODENET_ENTER / ITER / BEAT / BLOCKING / STEP below; runtime/measure/codenet_cycles.py). All loops are II = 1.
// The arithmetic is exactly FORMAT.md "Arithmetic (bit exact)".
#ifndef CODENET_ENGINE_H
#define CODENET_ENGINE_H

#ifndef __SYNTHESIS__
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <array>
#include <map>
#include <vector>
#endif

#include "pd_ap_types.h"
#include "codenet_config.h"

namespace codenet {

typedef ap_uint<8> byte_t;                   // a stored activation / blob byte
typedef ap_uint<8 * ARENA_BUS_BYTES> bus_t;  // one beat of the arena / weights port
typedef ap_int<9> act_t;                     // an activation value (int8 or uint8)
typedef ap_int<8> wgt_t;                     // a weight value (4-bit ones sign-extended)
typedef ap_int<ACC_BITS> acc_t;              // accumulator (the compiler proves no overflow)
typedef ap_int<48> prod_t;                   // acc * M, exact
typedef ap_uint<8 * W_WORD_BYTES> wword_t;   // PA 4-bit or PA/2 8-bit weights of one 1x1 row
typedef ap_uint<8 * 9> dwrow_t;              // the 9 taps (int8 each) of one depthwise channel
typedef ap_uint<16> chan_t;                  // gather-table entry
typedef ap_uint<32> addr_t;                  // byte offset into the arena / weights blob

// ---------------------------------------------------------------- cycle accounting (C-sim only)
// Two records per layer: `count`, the trip counts per phase (one per pipelined-loop iteration or
// one-beat blocking access, loop entries in PH_ENTRIES); `events`, every loop entry / blocking
// access as (phase, kind EV_*, trips, beats) with its multiplicity: what the cycle model v2 charges
// AXI latency, outstanding requests and pipeline depth on (runtime/measure/codenet_cycles.py).
#ifndef __SYNTHESIS__
// An invariant of the engine that the C simulation checks on every run: on failure it prints the
// message with the layer and value and aborts (codenet_csim_check refuses every descriptor that
// could break one, so a checked program never gets here).
[[noreturn]] inline void assert_fail(const char *what, uint64_t value);
#define CODENET_ASSERT(cond, what, value) \
    do {                                  \
        if (!(cond)) ::codenet::assert_fail(what, value); \
    } while (0)
typedef std::array<uint64_t, EV_FIELDS - 1> EventKey;   // phase, kind, trips, beats
struct CycleLog {
    uint64_t count[MAX_LAYERS][N_PHASES];
    std::map<EventKey, uint64_t> events[MAX_LAYERS];
    // arena beats read / written by the current layer (stamped with `epoch`, one per layer run):
    // a beat both read and written by one layer is a hazard: AXI does not order a read and a
    // write to the same address, a layer's DATAFLOW stages run concurrently, and the only barrier
    // is the end of a layer. The C simulation aborts on it (CODENET_ASSERT), whatever the order
    // in which its sequential execution of the stages happens to touch the beat.
    std::vector<uint32_t> rd_epoch, wr_epoch;
    uint32_t epoch;
    EventKey open;                                       // the loop entered last
    int open_layer;                                      // its layer (-1: none)
    int layer;
    int n_layers;

    void commit() {
        if (open_layer >= 0) events[open_layer][open]++;
        open_layer = -1;
    }
    void enter(int phase, int kind) {
        commit();
        open = EventKey{{(uint64_t)phase, (uint64_t)kind, 0, 0}};
        open_layer = layer;
        count[layer][PH_ENTRIES]++;
    }
    static void mark(std::vector<uint32_t> &v, uint64_t beat, uint32_t e) {
        if (beat >= v.size()) v.resize(beat + 1 + v.size() / 2, 0);
        v[beat] = e;
    }
    static bool has(const std::vector<uint32_t> &v, uint64_t beat, uint32_t e) { return beat < v.size() && v[beat] == e; }
    void wrote(uint64_t beat) {
        CODENET_ASSERT(!has(rd_epoch, beat, epoch), "arena beat both read and written by one layer (no barrier)", beat);
        mark(wr_epoch, beat, epoch);
    }
    void read(uint64_t beat) {
        CODENET_ASSERT(!has(wr_epoch, beat, epoch), "arena beat both read and written by one layer (no barrier)", beat);
        mark(rd_epoch, beat, epoch);
    }
    void single(int phase, int kind, uint64_t beats) {
        count[layer][phase]++;
        events[layer][EventKey{{(uint64_t)phase, (uint64_t)kind, 1, beats}}]++;
    }
};
inline CycleLog &cycle_log() {
    static CycleLog log;
    return log;
}
inline void assert_fail(const char *what, uint64_t value) {
    fprintf(stderr, "codenet engine assertion failed in layer %d: %s (%llu)\n", cycle_log().layer, what,
            (unsigned long long)value);
    abort();
}
// a pipelined loop is entered (kind: EV_LOOP, EV_BURST or EV_SINGLES)
#define CODENET_ENTER(phase, kind) (::codenet::cycle_log().enter(phase, kind))
// one iteration of the loop entered last
#define CODENET_ITER(phase) \
    (::codenet::cycle_log().count[::codenet::cycle_log().layer][phase]++, ::codenet::cycle_log().open[2]++)
// one beat moved by the loop entered last
#define CODENET_BEAT() (::codenet::cycle_log().open[3]++)
// a blocking one-beat access outside any loop; one pass of a non-pipelined loop body
#define CODENET_BLOCKING(phase) (::codenet::cycle_log().single(phase, EV_BLOCKING, 1))
#define CODENET_STEP(phase) (::codenet::cycle_log().single(phase, EV_STEP, 0))
// an arena beat written / read from DDR (not a value forwarded on chip)
#define CODENET_WROTE(beat) (::codenet::cycle_log().wrote((beat).to_uint64()))
#define CODENET_READ(beat) (::codenet::cycle_log().read((beat).to_uint64()))
#else
#define CODENET_WROTE(beat) ((void)0)
#define CODENET_READ(beat) ((void)0)
#define CODENET_ENTER(phase, kind) ((void)0)
#define CODENET_ITER(phase) ((void)0)
#define CODENET_BEAT() ((void)0)
#define CODENET_BLOCKING(phase) ((void)0)
#define CODENET_STEP(phase) ((void)0)
#define CODENET_ASSERT(cond, what, value) ((void)0)
#endif

// Decoded descriptor (FORMAT.md "Layer descriptor").
struct Desc {
    int op;
    addr_t in_off;
    int in_h, in_w;
    addr_t in_cs;
    int cin, in_mode, stride;
    byte_t in_zp;
    bool in_signed, out_signed, deformable, shift_only, w8;
    addr_t out_off;
    int out_h, out_w;
    addr_t out_cs, out_choff;
    int cout;
    addr_t gather_off, w_off, q_off;
    ap_int<32> clamp_lo, clamp_hi;
    addr_t dil_off, dil_cs;
    int pad;
};

// Per-output-channel requantization parameters (FORMAT.md "requant" section).
struct Requant {
    ap_int<32> bias;
    ap_int<16> mult;
    ap_uint<5> shift;
    ap_int<16> zp;
};

// The smallest / largest gathered physical channel of the layer and of every PE-channel tile
// (the byte runs a pixel's channels occupy); the gather table itself is a separate array.
struct Gather {
    chan_t lo, hi;
    chan_t tile_lo[CH_TILES], tile_hi[CH_TILES];
};

// 1x1 extraction table: logical input k is channel gather[i] of 3x3 tap `tap` (PATCH3X3: k =
// tap * cin + i; else tap 0, i = k); rel = gather[i] - lowest gathered channel.
struct XSrc {
    ap_uint<4> tap;
    chan_t rel;
};

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

inline addr_t beat_of(addr_t a) { return a / ARENA_BUS_BYTES; }
inline int lane_of(addr_t a) { return (a % ARENA_BUS_BYTES).to_int(); }
inline int beats_of(addr_t a, int n) { return (lane_of(a) + n + ARENA_BUS_BYTES - 1) / ARENA_BUS_BYTES; }
inline byte_t byte_at(const bus_t &b, int i) { return b.range(8 * i + 7, 8 * i); }

inline Desc decode_desc(const ap_uint<32> w[DESC_WORDS]) {
    Desc d;
    const int flags = w[D_FLAGS].to_int();
    d.op = w[D_OP].to_int();
    d.in_off = w[D_IN_OFF];
    d.in_h = w[D_IN_H].to_int();
    d.in_w = w[D_IN_W].to_int();
    d.in_cs = w[D_IN_CS];
    d.cin = w[D_CIN].to_int();
    d.in_mode = w[D_IN_MODE].to_int();
    d.stride = w[D_STRIDE].to_int();
    d.in_zp = w[D_IN_ZP].range(7, 0);
    d.in_signed = (flags & FLAG_IN_SIGNED) != 0;
    d.out_signed = (flags & FLAG_OUT_SIGNED) != 0;
    d.deformable = (flags & FLAG_DEFORMABLE) != 0;
    d.shift_only = (flags & FLAG_SHIFT_ONLY) != 0;
    d.w8 = (flags & FLAG_W8) != 0;
    d.out_off = w[D_OUT_OFF];
    d.out_h = w[D_OUT_H].to_int();
    d.out_w = w[D_OUT_W].to_int();
    d.out_cs = w[D_OUT_CS];
    d.out_choff = w[D_OUT_CHOFF];
    d.cout = w[D_COUT].to_int();
    d.gather_off = w[D_GATHER_OFF];
    d.w_off = w[D_W_OFF];
    d.q_off = w[D_Q_OFF];
    d.clamp_lo = ap_int<32>(w[D_CLAMP_LO]);
    d.clamp_hi = ap_int<32>(w[D_CLAMP_HI]);
    d.dil_off = w[D_DIL_OFF];
    d.dil_cs = w[D_DIL_CS];
    d.pad = w[D_PAD].to_int();
    return d;
}

inline Desc read_desc(const ap_uint<32> *program, int layer) {
    ap_uint<32> w[DESC_WORDS];
    CODENET_ENTER(PH_DESC, EV_BURST);
    for (int i = 0; i < DESC_WORDS; i++) {
#pragma HLS PIPELINE II = 1
        CODENET_ITER(PH_DESC);
        CODENET_BEAT();
        w[i] = program[layer * DESC_WORDS + i];
    }
    return decode_desc(w);
}

// A stored activation byte as a value: int8 if signed, else uint8.
inline act_t act_value(byte_t b, bool is_signed) {
    return is_signed ? act_t(ap_int<8>(b)) : act_t(b);
}

// Weight j of a 1x1 weight word: nibble j (4-bit), byte j (8-bit; only j < PA/2 exist).
inline wgt_t weight_at(const wword_t &wd, int j, bool w8) {
    if (w8) return j < W_WORD_BYTES ? wgt_t(wd.range(8 * j + 7, 8 * j)) : wgt_t(0);
    return wgt_t(ap_int<4>(wd.range(4 * j + 3, 4 * j)));
}

// FORMAT.md requantization: t = acc * M (48-bit), round half up by +2^(S-1) then arithmetic
// shift, + zp_out, clamp to [clamp_lo, clamp_hi], store the low byte.
inline byte_t requantize(const acc_t &acc, const Requant &q, const Desc &d) {
#pragma HLS INLINE
    const ap_int<16> m = d.shift_only ? ap_int<16>(1) : q.mult;
    const prod_t t = acc * m;                        // 24 x 16 bits: one DSP48E2 (27 x 18)
#pragma HLS BIND_OP variable = t op = mul impl = dsp
    const int s = q.shift.to_int();
    const prod_t r = s == 0 ? t : prod_t((t + (prod_t(1) << (s - 1))) >> s);
    ap_int<50> v = ap_int<50>(r) + ap_int<50>(q.zp);
    if (v < d.clamp_lo) v = d.clamp_lo;
    if (v > d.clamp_hi) v = d.clamp_hi;
    return byte_t(v.range(7, 0));
}

// The one requantization stage: the PE lanes of channel tile `tile`. CONV1X1 and DW3X3 call it;
// codenet_top allows REQUANT_STAGES instance of it, so both ops share its PE DSPs.
inline void requant_tile(const acc_t acc[PE], const Requant rq[PE][CH_TILES], int tile, const Desc &d,
                         byte_t out[PE]) {
#pragma HLS INLINE off
    for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
        out[p] = requantize(acc[p], rq[p][tile], d);
    }
}

// ---------------------------------------------------------------- DSP48E2 packing (Xilinx WP486)
// Two products that share their activation x (one input, two output channels) in one 27 x 18
// multiply: P = (w_hi * 2^PACK_SHIFT + w_lo) * x = w_hi x 2^PACK_SHIFT + w_lo x (the packed
// factor is formed in the DSP's pre-adder). |w_lo x| <= 128 * 255 < 2^(PACK_SHIFT - 1), so the low
// PACK_SHIFT bits of P read as a signed number are exactly w_lo x; the bits above are w_hi x
// minus the borrow a negative low product took from them, added back (sign correction).
// Operands: weights int4 or int8 (sign-extended wgt_t), activations int8 or uint8 (act_t);
// proven exact over every pair by codenet_csim_dsp_pack_check (tests/test_codenet_dsp_pack.py).
constexpr int PACK_SHIFT = 18;
static_assert(PE % 2 == 0, "1x1 output lanes are packed in pairs");
typedef ap_int<27> pack_a_t;                  // DSP48E2 A / pre-adder width
typedef ap_int<18> pack_b_t;                  // DSP48E2 B width
typedef ap_int<45> pack_p_t;                  // 27 x 18 product
typedef ap_int<PACK_SHIFT> half_t;            // one of the two products (17 bits suffice)

struct ProductPair {
    half_t lo, hi;                            // w_lo * x, w_hi * x
};

inline ProductPair mul2(const wgt_t &w_lo, const wgt_t &w_hi, const act_t &x) {
#pragma HLS INLINE
    const pack_a_t a = (pack_a_t(w_hi) << PACK_SHIFT) + pack_a_t(w_lo);
    const pack_p_t p = a * pack_b_t(x);
#pragma HLS BIND_OP variable = p op = mul impl = dsp
    ProductPair r;
    r.lo = half_t(p.range(PACK_SHIFT - 1, 0));
    r.hi = half_t((p >> PACK_SHIFT) + pack_p_t(r.lo < 0 ? 1 : 0));
    return r;
}

// ---------------------------------------------------------------- wide-port byte runs

// Sequential reader of a byte run of the weights blob: start() reads the first beat (one
// cycle); take(n), n <= ARENA_BUS_BYTES, returns the next n bytes in the low bytes of a beat (the
// bytes above them are not defined) and reads at most one more beat, so a loop taking one item
// per iteration runs at II = 1. Never reads a beat that holds no byte of the run.
struct ByteReader {
    const bus_t *mem;
    addr_t next;                             // next beat to read
    ap_uint<16 * ARENA_BUS_BYTES> win;       // bytes not taken yet, from the low end
    int avail;

    void start(const bus_t *m, addr_t a) {
        mem = m;
        next = beat_of(a);
        CODENET_BLOCKING(PH_LOAD);
        win = ap_uint<16 * ARENA_BUS_BYTES>(mem[next]) >> (8 * lane_of(a));
        next++;
        avail = ARENA_BUS_BYTES - lane_of(a);
    }
    bus_t take(int n) {
        if (avail < n) {
            CODENET_BEAT();
            win |= ap_uint<16 * ARENA_BUS_BYTES>(mem[next]) << (8 * avail);
            next++;
            avail += ARENA_BUS_BYTES;
        }
        const bus_t r = win.range(8 * ARENA_BUS_BYTES - 1, 0);
        win >>= 8 * n;
        avail -= n;
        return r;
    }
};

// Store src[0 .. n) at arena byte address a, which is beat aligned (FORMAT.md "Memory": every
// output run starts a beat), as ceil(n / 16) whole beats; the bytes past n in the last beat are
// the layer's pad bytes and are written 0. Nothing is read back: no read-modify-write.
template <int N>
inline void write_run(bus_t *arena, addr_t a, const byte_t (&src)[N], int n) {
    CODENET_ASSERT(lane_of(a) == 0, "partial-beat write: output run not beat aligned", a.to_uint64());
    const int nb = ceil_div(n, ARENA_BUS_BYTES);
    const addr_t b0 = beat_of(a);
    CODENET_ENTER(PH_WRITE, EV_BURST);
    for (int b = 0; b < nb; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_CH / ARENA_BUS_BYTES
#pragma HLS PIPELINE II = 1
        CODENET_ITER(PH_WRITE);
        CODENET_BEAT();
        bus_t v;
        for (int i = 0; i < ARENA_BUS_BYTES; i++) {
#pragma HLS UNROLL
            const int idx = b * ARENA_BUS_BYTES + i;
            v.range(8 * i + 7, 8 * i) = idx < n ? src[idx] : byte_t(0);
        }
        CODENET_WROTE(b0 + addr_t(b));
        arena[b0 + addr_t(b)] = v;
    }
}

// ---------------------------------------------------------------- per-layer loads (DDR -> chip)

// gather table: cin little-endian uint16, one per cycle; also the lowest / highest channel of
// the layer and of each PE tile.
inline void load_gather(const bus_t *weights, const Desc &d, chan_t gch[MAX_CH], Gather &g) {
    ByteReader r;
    r.start(weights, d.gather_off);
    chan_t lo = 0, hi = 0, tlo = 0, thi = 0;
    CODENET_ENTER(PH_LOAD, EV_SINGLES);
    for (int i = 0; i < d.cin; i++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_CH
#pragma HLS PIPELINE II = 1
        CODENET_ITER(PH_LOAD);
        const chan_t v = r.take(2).range(15, 0);
        gch[i] = v;
        if (i == 0 || v < lo) lo = v;
        if (i == 0 || v > hi) hi = v;
        if (i % PE == 0 || v < tlo) tlo = v;
        if (i % PE == 0 || v > thi) thi = v;
        if (i % PE == PE - 1 || i == d.cin - 1) {
            g.tile_lo[i / PE] = tlo;
            g.tile_hi[i / PE] = thi;
        }
    }
    g.lo = lo;
    g.hi = hi;
}

// requant: cout records (int32 bias, int16 M, uint8 S, int8 0), then cout int16 zp_out; one
// per cycle each. Channel c goes to lane c % PE, entry c / PE (the PE lanes are read in parallel).
inline void load_requant(const bus_t *weights, const Desc &d, Requant rq[PE][CH_TILES]) {
    ByteReader r;
    r.start(weights, d.q_off);
    CODENET_ENTER(PH_LOAD, EV_SINGLES);
    for (int c = 0; c < d.cout; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_CH
#pragma HLS PIPELINE II = 1
        CODENET_ITER(PH_LOAD);
        const bus_t v = r.take(RQ_RECORD_BYTES);
        rq[c % PE][c / PE].bias = ap_int<32>(ap_uint<32>(v.range(31, 0)));
        rq[c % PE][c / PE].mult = ap_int<16>(ap_uint<16>(v.range(47, 32)));
        rq[c % PE][c / PE].shift = v.range(52, 48);
    }
    r.start(weights, d.q_off + addr_t(RQ_RECORD_BYTES * d.cout));
    CODENET_ENTER(PH_LOAD, EV_SINGLES);
    for (int c = 0; c < d.cout; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_CH
#pragma HLS PIPELINE II = 1
        CODENET_ITER(PH_LOAD);
        rq[c % PE][c / PE].zp = ap_int<16>(ap_uint<16>(r.take(2).range(15, 0)));
    }
}

// Bytes of one packed weight row (FORMAT.md: rows padded to whole bytes).
inline int row_bytes_of(int k, bool w8) { return w8 ? k : (k + 1) / 2; }

// 1x1 logical inputs per pixel: cin, or 9 * cin for PATCH3X3.
inline int conv_k(const Desc &d) { return d.in_mode == MODE_PATCH3X3 ? 9 * d.cin : d.cin; }

// 1x1 weights: cout packed rows -> wbuf[o % PE][(o / PE) * KT + t], word t = row bytes
// [t * W_WORD_BYTES, (t + 1) * W_WORD_BYTES), zero-filled past the row; the pad nibble of an
// odd-length 4-bit row is cleared so that no input ever meets a stray weight. One word a cycle.
inline void load_conv_weights(const bus_t *weights, const Desc &d, wword_t wbuf[PE][W_WORDS]) {
    const int k = conv_k(d);
    const int rb = row_bytes_of(k, d.w8);
    const int kt_n = ceil_div(rb, W_WORD_BYTES);
    const bool odd_nibble = !d.w8 && (k & 1);
    ByteReader r;
    r.start(weights, d.w_off);
    int o = 0, t = 0;
    CODENET_ENTER(PH_LOAD, EV_SINGLES);
    for (int it = 0; it < d.cout * kt_n; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = PE * W_WORDS
#pragma HLS PIPELINE II = 1
        CODENET_ITER(PH_LOAD);
        const int n = rb - t * W_WORD_BYTES < W_WORD_BYTES ? rb - t * W_WORD_BYTES : W_WORD_BYTES;
        const bus_t v = r.take(n);
        wword_t word = 0;
        for (int i = 0; i < W_WORD_BYTES; i++) {
#pragma HLS UNROLL
            byte_t b = i < n ? byte_at(v, i) : byte_t(0);
            if (odd_nibble && t * W_WORD_BYTES + i == rb - 1) b.range(7, 4) = 0;
            word.range(8 * i + 7, 8 * i) = b;
        }
        wbuf[o % PE][(o / PE) * kt_n + t] = word;
        if (++t == kt_n) {
            t = 0;
            o++;
        }
    }
}

// 1x1 extraction table (one entry a cycle; see XSrc).
inline void load_xsrc(const Desc &d, const chan_t gch[MAX_CH], const Gather &g, XSrc xsrc[MAX_K]) {
    int i = 0, tap = 0;
    CODENET_ENTER(PH_LOAD, EV_LOOP);
    for (int k = 0; k < conv_k(d); k++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_K
#pragma HLS PIPELINE II = 1
        CODENET_ITER(PH_LOAD);
        xsrc[k].tap = tap;
        xsrc[k].rel = gch[i] - g.lo;
        if (++i == d.cin) {
            i = 0;
            tap++;
        }
    }
}

// 3x3 depthwise weights: cout rows of 9 taps (5 bytes at 4-bit, 9 at 8-bit), one a cycle -> one
// 72-bit word of 9 sign-extended int8 taps per channel, dww[c % PE][c / PE].
inline void load_dw_weights(const bus_t *weights, const Desc &d, dwrow_t dww[PE][CH_TILES]) {
    const int rb = row_bytes_of(9, d.w8);
    ByteReader r;
    r.start(weights, d.w_off);
    CODENET_ENTER(PH_LOAD, EV_SINGLES);
    for (int c = 0; c < d.cout; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_CH
#pragma HLS PIPELINE II = 1
        CODENET_ITER(PH_LOAD);
        const bus_t v = r.take(rb);
        dwrow_t row = 0;
        for (int t = 0; t < 9; t++) {
#pragma HLS UNROLL
            const byte_t b = byte_at(v, d.w8 ? t : t / 2);
            const wgt_t w = d.w8 ? wgt_t(b) : wgt_t(ap_int<4>(t % 2 ? b.range(7, 4) : b.range(3, 0)));
            row.range(8 * t + 7, 8 * t) = ap_uint<8>(w);
        }
        dww[c % PE][c / PE] = row;
    }
}

// ---------------------------------------------------------------- CONV1X1
//
// Per computed pixel: read the byte run [lowest, highest gathered channel] of each of its input
// taps (1, or 9 for PATCH3X3) as whole beats into the pixel buffer (PA copies, one per MAC
// input lane, so PA inputs are picked per cycle); the MAC loop's first output tile picks its PA
// inputs from there (later tiles reuse them from xbuf), requantizes each tile of PE outputs into
// obuf, and the outputs are stored as one run. Nearest upsample x2 at stride 1 repeats each
// source pixel in a 2x2 output block: computed once, stored four times. When a pixel's runs do
// not fit the pixel buffer (a gather spread over more than ~PIX_BEATS beats) the narrow path
// reads one beat per logical input instead.

// The 1x1 pixel buffer: PA copies (one per MAC input lane, so PA bytes are picked a cycle) of
// PIX_BEATS beats; one array in codenet_top, shared by conv1x1 and conv1x1_stream.
typedef bus_t pix_buf_t[PA][PIX_BEATS];

inline void conv1x1(bus_t *arena, const Desc &d, const Gather &g, const XSrc xsrc[MAX_K],
                    const wword_t wbuf[PE][W_WORDS], const Requant rq[PE][CH_TILES], pix_buf_t &pbuf) {
    static act_t xbuf[MAX_K / (PA / 2)][PA];
#pragma HLS ARRAY_PARTITION variable = xbuf complete dim = 2
    static byte_t obuf[MAX_CH];
#pragma HLS ARRAY_PARTITION variable = obuf cyclic factor = ARENA_BUS_BYTES
    const bool patch = d.in_mode == MODE_PATCH3X3;
    const bool up = d.in_mode == MODE_UPSAMPLE2;
    const int seen_h = up ? 2 * d.in_h : d.in_h;
    const int seen_w = up ? 2 * d.in_w : d.in_w;
    const int rep = up && d.stride == 1 ? 2 : 1;
    const int ntap = patch ? 9 : 1;
    const int k_total = conv_k(d);
    const int per_word = d.w8 ? PA / 2 : PA;        // logical inputs per weight word
    const int kt_n = ceil_div(row_bytes_of(k_total, d.w8), W_WORD_BYTES);
    const int ot_n = ceil_div(d.cout, PE);
    const int span = (g.hi - g.lo).to_int() + 1;
    const int tap_beats = (span + 2 * ARENA_BUS_BYTES - 2) / ARENA_BUS_BYTES;  // worst alignment
    const bool wide = ntap * tap_beats <= PIX_BEATS;
    const act_t zp = act_value(d.in_zp, d.in_signed);
    for (int yb = 0; yb < ceil_div(d.out_h, rep); yb++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IMG
        for (int xb = 0; xb < ceil_div(d.out_w, rep); xb++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_IMG
            // the taps: seen position, in-image flag, byte address of the lowest gathered channel
            bool valid[9];
            addr_t ta[9];
#pragma HLS ARRAY_PARTITION variable = valid complete
#pragma HLS ARRAY_PARTITION variable = ta complete
            for (int t = 0; t < 9; t++) {
#pragma HLS UNROLL
                const int sy = patch ? yb * d.stride - d.pad + t / 3 : yb * rep * d.stride;
                const int sx = patch ? xb * d.stride - d.pad + t % 3 : xb * rep * d.stride;
                valid[t] = t < ntap && sy >= 0 && sy < seen_h && sx >= 0 && sx < seen_w;
                const int py = up ? sy >> 1 : sy;
                const int px = up ? sx >> 1 : sx;
                ta[t] = valid[t] ? addr_t(d.in_off + (addr_t(py) * addr_t(d.in_w) + addr_t(px)) * d.in_cs + g.lo)
                                 : addr_t(0);
            }
            if (wide) {
                for (int t = 0; t < ntap; t++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = TAPS
                    if (!valid[t]) continue;
                    CODENET_ENTER(PH_READ, EV_BURST);
                    for (int b = 0; b < beats_of(ta[t], span); b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = PIX_BEATS
#pragma HLS PIPELINE II = 1
                        CODENET_ITER(PH_READ);
                        CODENET_BEAT();
                        CODENET_READ(beat_of(ta[t]) + addr_t(b));
                        const bus_t v = arena[beat_of(ta[t]) + addr_t(b)];
                        for (int j = 0; j < PA; j++) {
#pragma HLS UNROLL
                            pbuf[j][t * tap_beats + b] = v;
                        }
                    }
                }
            } else {
                CODENET_ENTER(PH_READ, EV_SINGLES);
                for (int k = 0; k < k_total; k++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_K
#pragma HLS PIPELINE II = 1
                    CODENET_ITER(PH_READ);
                    CODENET_BEAT();
                    const XSrc s = xsrc[k];
                    const addr_t a = ta[s.tap] + addr_t(s.rel);
                    if (valid[s.tap]) CODENET_READ(beat_of(a));
                    xbuf[k / per_word][k % per_word] =
                        valid[s.tap] ? act_value(byte_at(arena[beat_of(a)], lane_of(a)), d.in_signed) : zp;
                }
            }
            // MAC: (output tile ot, weight word kt), PA x PE products a cycle (8-bit: PA/2 x PE)
            acc_t acc[PE];
#pragma HLS ARRAY_PARTITION variable = acc complete
            int ot = 0, kt = 0;
            CODENET_ENTER(PH_COMPUTE, EV_LOOP);
            for (int it = 0; it < ot_n * kt_n; it++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = PE * W_WORDS
#pragma HLS PIPELINE II = 1
                CODENET_ITER(PH_COMPUTE);
                act_t x[PA];
#pragma HLS ARRAY_PARTITION variable = x complete
                for (int j = 0; j < PA; j++) {
#pragma HLS UNROLL
                    const int k = kt * per_word + j;
                    act_t v = 0;
                    if (!wide || ot > 0) {
                        v = xbuf[kt][j];
                    } else if (j < per_word && k < k_total) {
                        const XSrc s = xsrc[k];
                        const int pos = s.tap.to_int() * tap_beats * ARENA_BUS_BYTES +
                                        lane_of(ta[s.tap]) + s.rel.to_int();
                        v = valid[s.tap] ? act_value(byte_at(pbuf[j][pos / ARENA_BUS_BYTES],
                                                             pos % ARENA_BUS_BYTES), d.in_signed)
                                         : zp;
                    }
                    if (wide && ot == 0) xbuf[kt][j] = v;
                    x[j] = j < per_word && k < k_total ? v : act_t(0);
                }
                // output lanes p, p + 1 share each input x[j]: one packed DSP per pair (mul2)
                acc_t sum[PE];
#pragma HLS ARRAY_PARTITION variable = sum complete
                for (int p = 0; p < PE; p += 2) {
#pragma HLS UNROLL
                    const wword_t w_lo = wbuf[p][ot * kt_n + kt], w_hi = wbuf[p + 1][ot * kt_n + kt];
                    acc_t s_lo = kt == 0 ? acc_t(rq[p][ot].bias) : acc[p];
                    acc_t s_hi = kt == 0 ? acc_t(rq[p + 1][ot].bias) : acc[p + 1];
                    for (int j = 0; j < PA; j++) {
#pragma HLS UNROLL
                        const ProductPair pr = mul2(weight_at(w_lo, j, d.w8), weight_at(w_hi, j, d.w8), x[j]);
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
                if (kt == kt_n - 1) {
                    byte_t q[PE];
#pragma HLS ARRAY_PARTITION variable = q complete
                    requant_tile(sum, rq, ot, d, q);
                    for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                        if (ot * PE + p < d.cout) obuf[ot * PE + p] = q[p];
                    }
                }
                if (++kt == kt_n) {
                    kt = 0;
                    ot++;
                }
            }
            // store: one run of cout bytes per output pixel of the block
            for (int q = 0; q < rep * rep; q++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = UPSAMPLE_STORES
                const int y = yb * rep + q / rep, x = xb * rep + q % rep;
                if (y >= d.out_h || x >= d.out_w) continue;
                write_run(arena, d.out_off + (addr_t(y) * addr_t(d.out_w) + addr_t(x)) * d.out_cs + d.out_choff,
                          obuf, d.cout);
            }
        }
    }
}

// ---------------------------------------------------------------- DW3X3

// Line buffer of one PE-channel tile: the last LINE_ROWS physical input rows, row r in slot
// r % LINE_ROWS. Rows are filled in order, each exactly once per tile, just before the first
// output row that needs them; LINE_ROWS = 2 * MAX_DIL + 1 covers the deformable window.
// One word per pixel holds the tile's PE lanes (all lanes of a tap read the same pixel: one word
// read per tap), written once per pixel; partitioned by row (LINE_ROWS banks of MAX_W words).
// The depthwise pixel body is not pipelined, so the up-to-3 taps a row bank serves per pixel are
// read over its dual port in sequence (DEPTH_DW_PIXEL counts them).
static_assert(PE % ARENA_BUS_BYTES == 0, "a depthwise channel tile's output run starts a beat");
typedef ap_uint<8 * PE> lrow_t;
// Row banks in TAP_COLS copies (the streaming dw reads copy kx for tap column kx, codenet_dataflow.h);
// this path writes and reads copy 0. One array in codenet_top, shared by both dw paths.
constexpr int TAP_COLS = 3;
typedef lrow_t line_buf_t[LINE_ROWS][TAP_COLS][MAX_W];

// One input row of the tile: per pixel, the beats holding the tile's channel run [tile_lo,
// tile_hi]; every lane takes its byte as its beat passes (one beat a cycle) into a register, the
// pixel's word is stored once, on its last beat.
inline void fill_line_row(const bus_t *arena, const Desc &d, const chan_t gch[MAX_CH], const Gather &g, int ct, int n,
                          int row, line_buf_t &lbuf) {
    const int slot = row % LINE_ROWS;
    const int span = (g.tile_hi[ct] - g.tile_lo[ct]).to_int() + 1;
    int rel[PE];
#pragma HLS ARRAY_PARTITION variable = rel complete
    for (int c = 0; c < PE; c++) {
#pragma HLS UNROLL
        rel[c] = c < n ? (gch[ct * PE + c] - g.tile_lo[ct]).to_int() : 0;
    }
    addr_t a = d.in_off + addr_t(row) * addr_t(d.in_w) * d.in_cs + g.tile_lo[ct];
    int x = 0, b = 0, nb = beats_of(a, span);
    lrow_t pix = 0;
    CODENET_ENTER(PH_READ, EV_SINGLES);   // strided pixel runs: no burst is inferred
    while (x < d.in_w) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_W * PE
#pragma HLS PIPELINE II = 1
        CODENET_ITER(PH_READ);
        CODENET_BEAT();
        CODENET_READ(beat_of(a) + addr_t(b));
        const bus_t v = arena[beat_of(a) + addr_t(b)];
        lrow_t cur = pix;
        for (int c = 0; c < PE; c++) {
#pragma HLS UNROLL
            const int pos = lane_of(a) + rel[c];
            if (c < n && pos / ARENA_BUS_BYTES == b) cur.range(8 * c + 7, 8 * c) = byte_at(v, pos % ARENA_BUS_BYTES);
        }
        const bool last_beat = b == nb - 1;
        if (last_beat) lbuf[slot][0][x] = cur;
        pix = last_beat ? lrow_t(0) : cur;
        if (++b == nb) {
            b = 0;
            x++;
            a += d.in_cs;
            nb = beats_of(a, span);
        }
    }
}

inline void dw3x3(bus_t *arena, const Desc &d, const chan_t gch[MAX_CH], const Gather &g,
                  const dwrow_t dww[PE][CH_TILES],
                  const Requant rq[PE][CH_TILES], line_buf_t &lbuf) {
    static bus_t dbuf[DIL_BEATS];            // one output row's dilation bytes
    const bool up = d.in_mode == MODE_UPSAMPLE2;
    const int seen_h = up ? 2 * d.in_h : d.in_h;
    const int seen_w = up ? 2 * d.in_w : d.in_w;
    const act_t zp = act_value(d.in_zp, d.in_signed);
    // deformable: the run of one output row's dilation bytes (40-bit: dil_cs is unbounded)
    const ap_uint<40> dil_run = d.deformable ? ap_uint<40>(ap_uint<40>(d.out_w - 1) * d.dil_cs + 1) : ap_uint<40>(1);
    for (int ct = 0; ct < ceil_div(d.cout, PE); ct++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = CH_TILES
        const int n = d.cout - ct * PE < PE ? d.cout - ct * PE : PE;
        int next_row = 0;  // physical rows [0, next_row) have been filled for this tile
        for (int y = 0; y < d.out_h; y++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_H
            // fill up to the lowest row this output row can touch
            int seen_hi = d.deformable ? y + MAX_DIL : y * d.stride - d.pad + 2;
            if (seen_hi > seen_h - 1) seen_hi = seen_h - 1;
            const int phys_hi = up ? seen_hi >> 1 : seen_hi;
            for (int r = 0; r < phys_hi + 1 - next_row; r++) {
#pragma HLS LOOP_TRIPCOUNT min = 0 max = LINE_ROWS
                fill_line_row(arena, d, gch, g, ct, n, next_row + r, lbuf);
            }
            if (phys_hi + 1 > next_row) next_row = phys_hi + 1;
            // deformable: this row's dilations (one byte per pixel, shared by all channels), as
            // one run of beats, or one beat per pixel when the run would not fit dbuf
            const addr_t da = d.dil_off + addr_t(y) * addr_t(d.out_w) * d.dil_cs;
            const bool dil_run_fits = lane_of(da) + dil_run <= DIL_BEATS * ARENA_BUS_BYTES;
            if (d.deformable) {
                const int nb = dil_run_fits ? beats_of(da, dil_run.to_int()) : d.out_w;
                CODENET_ENTER(PH_READ, dil_run_fits ? EV_BURST : EV_SINGLES);
                for (int b = 0; b < nb; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = DIL_BEATS
#pragma HLS PIPELINE II = 1
                    CODENET_ITER(PH_READ);
                    CODENET_BEAT();
                    const addr_t beat = dil_run_fits ? addr_t(beat_of(da) + addr_t(b)) : beat_of(da + addr_t(b) * d.dil_cs);
                    CODENET_READ(beat);
                    dbuf[b] = arena[beat];
                }
            }
            const addr_t row_out = d.out_off + addr_t(y) * addr_t(d.out_w) * d.out_cs +
                                   d.out_choff + addr_t(ct * PE);
            for (int x = 0; x < d.out_w; x++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_W
                // one pixel: 9 taps x PE lanes in one cycle, then its n output bytes as one run
                CODENET_STEP(PH_COMPUTE);   // the x loop is not pipelined (it holds the store loop)
                int dil = 1, base_y = y * d.stride - d.pad, base_x = x * d.stride - d.pad;
                if (d.deformable) {
                    const int pos = dil_run_fits ? lane_of(da) + x * d.dil_cs.to_int()
                                                 : x * ARENA_BUS_BYTES + lane_of(da + addr_t(x) * d.dil_cs);
                    const byte_t db = byte_at(dbuf[pos / ARENA_BUS_BYTES], pos % ARENA_BUS_BYTES);
                    dil = db > MAX_DIL ? MAX_DIL : db.to_int();
                    base_y = y - dil;
                    base_x = x - dil;
                }
                byte_t res[PE];
#pragma HLS ARRAY_PARTITION variable = res complete
                acc_t accs[PE];
#pragma HLS ARRAY_PARTITION variable = accs complete
                for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
                    const dwrow_t w9 = dww[p][ct];
                    acc_t acc = acc_t(rq[p][ct].bias);
                    for (int t = 0; t < 9; t++) {
#pragma HLS UNROLL
                        const int sy = base_y + (t / 3) * dil;
                        const int sx = base_x + (t % 3) * dil;
                        act_t v = zp;
                        if (sy >= 0 && sy < seen_h && sx >= 0 && sx < seen_w) {
                            const int py = up ? sy >> 1 : sy;
                            const int px = up ? sx >> 1 : sx;
                            v = act_value(byte_t(lbuf[py % LINE_ROWS][0][px].range(8 * p + 7, 8 * p)), d.in_signed);
                        }
                        // every tap has its own activation: nothing to pack; LUT multipliers
                        const half_t prod = wgt_t(w9.range(8 * t + 7, 8 * t)) * v;
#pragma HLS BIND_OP variable = prod op = mul impl = fabric
                        acc += prod;
                    }
                    accs[p] = acc;
                }
                requant_tile(accs, rq, ct, d, res);
                write_run(arena, row_out + addr_t(x) * d.out_cs, res, n);
            }
        }
    }
}

}  // namespace codenet

#endif  // CODENET_ENGINE_H
