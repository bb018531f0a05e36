// CoDeNet engine building blocks (header only; contract: FORMAT.md in this folder).
//
// One layer runs in phases:
//   1. decode its descriptor (read_desc, 32-bit program port);
//   2. move its gather table, requant parameters and 1x1 or 3x3 weights from the weights blob
//      into on-chip buffers (load_*), before any pixel streams;
//   3. stream the pixels: one DATAFLOW region per layer (codenet_dataflow.h), a reader, a compute
//      stage (1x1: PA inputs x PE outputs a cycle; dw: PE channels x 9 taps a cycle) and a
//      writer running concurrently on hls::stream beats, one loop entry per row and stage.
// The arena and weights ports are ARENA_BUS_BYTES (16) bytes wide. Every arena write is a whole
// beat (FORMAT.md "Memory": outputs are beat aligned, their pad bytes written 0): nothing is read
// back or merged. Under C simulation every pipelined loop iteration, single-beat access and loop
// entry is counted per layer and phase and logged as an event (CODENET_ENTER / ITER / BEAT /
// BLOCKING below; runtime/measure/codenet_cycles.py derives the same from the descriptors), and
// the engine's memory invariants are asserted (CODENET_ASSERT). All pipelined loops are II = 1.
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
#ifdef __SYNTHESIS__
#include <ap_utils.h>   // ap_wait (sample_clock)
#endif
#include "codenet_config.h"

namespace codenet {

typedef ap_uint<8> byte_t;                   // a stored activation / blob byte
typedef ap_uint<8 * ARENA_BUS_BYTES> bus_t;  // one beat of the arena / weights port
typedef ap_int<ACT_VALUE_BITS> act_t;              // an activation value (int8 or uint8)
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
    void latency(int phase) { events[layer][EventKey{{(uint64_t)phase, (uint64_t)EV_LATENCY, 0, 0}}]++; }
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
// a stage's AXI latency paid once: its first read data / its last write responses (codenet_port.h)
#define CODENET_LATENCY(phase) (::codenet::cycle_log().latency(phase))
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
#define CODENET_LATENCY(phase) ((void)0)
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

// ---------------------------------------------------------------- per-layer profile
// The cycle counter at this point of the program. On hardware `timestamp` is the block design's
// free-running 64-bit counter on an ap_none input: a volatile read is a read of the port each
// time (UG1399 "Volatile": no access of a volatile is merged or removed), and the PROTOCOL fixed
// region with ap_wait() keeps the read where it is written in the schedule, after the layer's
// calls before it and before the ones after it (UG1399 "Specifying a Protocol Region"). The first
// csynth schedule should be checked for that order. Under C simulation the counter does not move
// during a call, so the engine adds a deterministic clock: every pipelined-loop iteration and
// one-beat access logged so far (the trip counts of the cycle accounting, all layers up to this
// one): monotone, and larger after any layer than before it.
inline ap_uint<64> sample_clock(volatile ap_uint<64> *timestamp) {
#pragma HLS INLINE
    ap_uint<64> t;
    {
#pragma HLS PROTOCOL mode = fixed
        t = *timestamp;
#ifdef __SYNTHESIS__
        ap_wait();
#endif
    }
#ifndef __SYNTHESIS__
    const CycleLog &log = cycle_log();
    for (int l = 0; l <= log.layer && l < MAX_LAYERS; l++)
        for (int p = 0; p < PH_ENTRIES; p++) t += log.count[l][p];
#endif
    return t;
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

// The one requantization stage: the PE lanes of channel tile `tile` -> one output beat, the lanes
// past the layer's last channel written as 0 (pad bytes). CONV1X1 and DW3X3 call it; codenet_top
// allows REQUANT_STAGES instance of it, so both ops share its PE DSPs.
static_assert(PE == ARENA_BUS_BYTES, "one channel tile is one output beat");
inline bus_t requant_tile(const acc_t acc[PE], const Requant rq[PE][CH_TILES], int tile, const Desc &d) {
#pragma HLS INLINE off
    bus_t o = 0;
    for (int p = 0; p < PE; p++) {
#pragma HLS UNROLL
        if (tile * PE + p < d.cout) o.range(8 * p + 7, 8 * p) = requantize(acc[p], rq[p][tile], d);
    }
    return o;
}

// ---------------------------------------------------------------- DSP48E2 packing (Xilinx WP486)
// Two products that share their activation x (one input, two output channels) in one 27 x 18
// multiply: P = (w_hi * 2^PACK_SHIFT + w_lo) * x = w_hi x 2^PACK_SHIFT + w_lo x (the packed
// factor is formed in the DSP's pre-adder). While the low field's signed value stays within
// PACK_SHIFT bits, the low PACK_SHIFT bits of P read as a signed number are exactly the low
// product (or sum of products); the bits above are the high one minus the borrow a negative low
// field took from them, added back (sign correction).
// Operands: weights int4 or int8 (sign-extended wgt_t), activations int8 or uint8 (act_t);
// one packed DSP (mac_chain<1>) is proven exact over every pair by codenet_csim_dsp_pack_check,
// the cascades below by codenet_csim_dsp_chain_check (tests/test_codenet_dsp_pack.py).
// PACK_SHIFT: codenet_config.h
static_assert(PE % 2 == 0, "1x1 output lanes are packed in pairs");
typedef ap_int<27> pack_a_t;                  // DSP48E2 A / pre-adder width
typedef ap_int<18> pack_b_t;                  // DSP48E2 B width
typedef ap_int<45> pack_p_t;                  // 27 x 18 product
typedef ap_int<PACK_SHIFT> half_t;            // the low field read as a signed number

// A column of N packed DSPs summed in the DSP48E2 post-adder cascade (UG579 "DSP48E2 slice":
// P = PCIN + A x B, PCOUT -> PCIN of the next slice; WP486: the packed pairs of a column add
// field-wise). Returns the two dot products sum_j w_lo[j] x[j] and sum_j w_hi[j] x[j]; the field
// separation and the sign correction happen ONCE at the end of the chain, not per DSP.
// Guard: the low field (PACK_SHIFT bits, signed) holds the whole chain's low sum when
// N x max|w_lo x| < 2^(PACK_SHIFT - 1): 4-bit weights 16 x 8 x 255 = 32,640 (16 products: one
// chain per PA = 16 inputs); 8-bit weights 4 x 128 x 255 = 130,560 < 131,072 (so the 8-bit
// datapath's PA / 2 = 8 inputs are TWO chains of 4; 8 would need 19 bits, and w_hi << 19 no longer
// fits the 27-bit pre-adder). Checked with the extreme operands and at random by
// codenet_csim_dsp_chain_check (tests/test_codenet_dsp_pack.py), including that one product
// more (8-bit, N = 8) does break.
// Canonical cascade form (UG1399 "Optimizing DSP usage"): an unrolled chain p = p + a * b, every
// product BIND_OP dsp, the adds a chain (each stage adds ONE product to the previous stage's P),
// not a tree; pipelined, Vitis registers stage j's operands j cycles late (systolic skew, SRLs).
// (CHAIN_4BIT, CHAIN_8BIT: codenet_config.h)
static_assert(CHAIN_4BIT * 8 * 255 < (1 << (PACK_SHIFT - 1)), "4-bit cascade: low field overflows");
static_assert(CHAIN_8BIT * 128 * 255 < (1 << (PACK_SHIFT - 1)), "8-bit cascade: low field overflows");
typedef ap_int<48> pack_acc_t;                // DSP48E2 P / PCOUT width
typedef ap_int<PACK_SHIFT + 3> chain_half_t;  // one separated chain sum (|sum| < 2^(PACK_SHIFT + 2))

struct ChainPair {
    chain_half_t lo, hi;                      // sum_j w_lo[j] x[j], sum_j w_hi[j] x[j]
};

template <int N>
inline ChainPair mac_chain(const wgt_t w_lo[N], const wgt_t w_hi[N], const act_t x[N]) {
#pragma HLS INLINE
    pack_acc_t p = 0;
#pragma HLS BIND_OP variable = p op = add impl = dsp
    for (int j = 0; j < N; j++) {
#pragma HLS UNROLL
        const pack_a_t a = (pack_a_t(w_hi[j]) << PACK_SHIFT) + pack_a_t(w_lo[j]);   // pre-adder
        const pack_p_t m = a * pack_b_t(x[j]);
#pragma HLS BIND_OP variable = m op = mul impl = dsp
        p = p + pack_acc_t(m);                                                       // PCIN + A x B
    }
    ChainPair r;
    const half_t lo = half_t(p.range(PACK_SHIFT - 1, 0));
    r.lo = chain_half_t(lo);
    r.hi = chain_half_t((p >> PACK_SHIFT) + pack_acc_t(lo < 0 ? 1 : 0));
    return r;
}

// ---------------------------------------------------------------- wide-port byte runs

// ---------------------------------------------------------------- per-layer loads (DDR -> chip)

// Sequential reader of a byte run of the weights blob, from a stream of the run's beats (in
// order; burst_beats below reads them as one burst): start() takes the first beat and the run's
// lane, take(n), n <= ARENA_BUS_BYTES, returns the next n bytes in the low bytes of a beat (the
// bytes above them are not defined) and pops at most one more beat, so a loop taking one item per
// iteration runs at II = 1. It pops exactly the beats holding a byte of the run (beats_of), which
// is what burst_beats pushes.
struct StreamByteReader {
    hls::stream<bus_t> *in;
    ap_uint<16 * ARENA_BUS_BYTES> win;
    int avail;

    void start(hls::stream<bus_t> &s, int lane) {
        in = &s;
        win = ap_uint<16 * ARENA_BUS_BYTES>(in->read()) >> (8 * lane);
        avail = ARENA_BUS_BYTES - lane;
    }
    bus_t take(int n) {
        if (avail < n) {
            win |= ap_uint<16 * ARENA_BUS_BYTES>(in->read()) << (8 * avail);
            avail += ARENA_BUS_BYTES;
        }
        const bus_t r = win.range(8 * ARENA_BUS_BYTES - 1, 0);
        win >>= 8 * n;
        avail -= n;
        return r;
    }
};

// The nb beats from beat `first` of the weights port as ONE burst into a stream.
inline void burst_beats(const bus_t *mem, addr_t first, int nb, hls::stream<bus_t> &out) {
    CODENET_ENTER(PH_LOAD, EV_BURST);
    for (int b = 0; b < nb; b++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = W_BUF_BYTES / ARENA_BUS_BYTES + 1
#pragma HLS PIPELINE II = 1
        CODENET_ITER(PH_LOAD);
        CODENET_BEAT();
        out.write(mem[first + addr_t(b)]);
    }
}


// gather table: cin little-endian uint16, one per cycle; also the lowest / highest channel of
// the layer and of each PE tile. The section's beats arrive as one burst (DATAFLOW with the parse).
inline void parse_gather(const Desc &d, int lane, hls::stream<bus_t> &in, chan_t gch[MAX_CH], Gather &g) {
    StreamByteReader r;
    r.start(in, lane);
    chan_t lo = 0, hi = 0, tlo = 0, thi = 0;
    CODENET_ENTER(PH_LOAD, EV_LOOP);
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

inline void load_gather(const bus_t *weights, const Desc &d, chan_t gch[MAX_CH], Gather &g) {
#pragma HLS INLINE off
    hls::stream<bus_t> beats("g_beats");
#pragma HLS STREAM variable = beats depth = STREAM_BEATS
#pragma HLS DATAFLOW
    burst_beats(weights, beat_of(d.gather_off), beats_of(d.gather_off, 2 * d.cin), beats);
    parse_gather(d, lane_of(d.gather_off), beats, gch, g);
}

// requant: cout records (int32 bias, int16 M, uint8 S, int8 0), then cout int16 zp_out; one
// per cycle each. Channel c goes to lane c % PE, entry c / PE (the PE lanes are read in parallel).
// The two sections are contiguous: one burst feeds both loops (DATAFLOW with the parse).
inline void parse_requant(const Desc &d, int lane, hls::stream<bus_t> &in, Requant rq[PE][CH_TILES]) {
    StreamByteReader r;
    r.start(in, lane);
    CODENET_ENTER(PH_LOAD, EV_LOOP);
    for (int c = 0; c < d.cout; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_CH
#pragma HLS PIPELINE II = 1
        CODENET_ITER(PH_LOAD);
        const bus_t v = r.take(RQ_RECORD_BYTES);
        rq[c % PE][c / PE].bias = ap_int<32>(ap_uint<32>(v.range(31, 0)));
        rq[c % PE][c / PE].mult = ap_int<16>(ap_uint<16>(v.range(47, 32)));
        rq[c % PE][c / PE].shift = v.range(52, 48);
    }
    CODENET_ENTER(PH_LOAD, EV_LOOP);
    for (int c = 0; c < d.cout; c++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_CH
#pragma HLS PIPELINE II = 1
        CODENET_ITER(PH_LOAD);
        rq[c % PE][c / PE].zp = ap_int<16>(ap_uint<16>(r.take(2).range(15, 0)));
    }
}

inline void load_requant(const bus_t *weights, const Desc &d, Requant rq[PE][CH_TILES]) {
#pragma HLS INLINE off
    hls::stream<bus_t> beats("q_beats");
#pragma HLS STREAM variable = beats depth = STREAM_BEATS
#pragma HLS DATAFLOW
    burst_beats(weights, beat_of(d.q_off), beats_of(d.q_off, (RQ_RECORD_BYTES + 2) * d.cout), beats);
    parse_requant(d, lane_of(d.q_off), beats, rq);
}

// Bytes of one packed weight row (FORMAT.md: rows padded to whole bytes).
inline int row_bytes_of(int k, bool w8) { return w8 ? k : (k + 1) / 2; }

// 1x1 logical inputs per pixel: cin, or 9 * cin for PATCH3X3.
inline int conv_k(const Desc &d) { return d.in_mode == MODE_PATCH3X3 ? 9 * d.cin : d.cin; }

// 1x1 weights: cout packed rows -> wbuf[o % PE][(o / PE) * KT + t], word t = row bytes
// [t * W_WORD_BYTES, (t + 1) * W_WORD_BYTES), zero-filled past the row; the pad nibble of an
// odd-length 4-bit row is cleared so that no input ever meets a stray weight. One word a cycle,
// from a stream of the section's beats.
inline void parse_conv_weights(const Desc &d, int lane, hls::stream<bus_t> &in, wword_t wbuf[PE][W_WORDS]) {
    const int k = conv_k(d);
    const int rb = row_bytes_of(k, d.w8);
    const int kt_n = ceil_div(rb, W_WORD_BYTES);
    const bool odd_nibble = !d.w8 && (k & 1);
    StreamByteReader r;
    r.start(in, lane);
    int p = 0, t = 0, base = 0;                 // lane o % PE, word in the row, (o / PE) * KT
    CODENET_ENTER(PH_LOAD, EV_LOOP);
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
        wbuf[p][base + t] = word;
        if (++t == kt_n) {
            t = 0;
            if (++p == PE) {
                p = 0;
                base += kt_n;
            }
        }
    }
}

// The 1x1 weights section: one burst (burst_beats) feeding the parser, concurrently (DATAFLOW).
inline void load_conv_weights(const bus_t *weights, const Desc &d, wword_t wbuf[PE][W_WORDS]) {
#pragma HLS INLINE off
    const int nb = beats_of(d.w_off, d.cout * row_bytes_of(conv_k(d), d.w8));
    hls::stream<bus_t> beats("w_beats");
#pragma HLS STREAM variable = beats depth = STREAM_BEATS
#pragma HLS DATAFLOW
    burst_beats(weights, beat_of(d.w_off), nb, beats);
    parse_conv_weights(d, lane_of(d.w_off), beats, wbuf);
}

// 3x3 depthwise weights: cout rows of 9 taps (5 bytes at 4-bit, 9 at 8-bit), one a cycle -> one
// 72-bit word of 9 sign-extended int8 taps per channel, dww[c % PE][c / PE]; one burst feeding
// the parse (DATAFLOW).
inline void parse_dw_weights(const Desc &d, int lane, hls::stream<bus_t> &in, dwrow_t dww[PE][CH_TILES]) {
    const int rb = row_bytes_of(9, d.w8);
    StreamByteReader r;
    r.start(in, lane);
    CODENET_ENTER(PH_LOAD, EV_LOOP);
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

inline void load_dw_weights(const bus_t *weights, const Desc &d, dwrow_t dww[PE][CH_TILES]) {
#pragma HLS INLINE off
    hls::stream<bus_t> beats("dw_beats");
#pragma HLS STREAM variable = beats depth = STREAM_BEATS
#pragma HLS DATAFLOW
    burst_beats(weights, beat_of(d.w_off), beats_of(d.w_off, d.cout * row_bytes_of(9, d.w8)), beats);
    parse_dw_weights(d, lane_of(d.w_off), beats, dww);
}

// ---------------------------------------------------------------- on-chip buffers of the layers
// (the streaming layers themselves: codenet_dataflow.h)

// The 1x1 pixel buffer: PA copies (one per MAC input lane, so PA bytes are picked a cycle, each
// copy with one read and one write port) of PIX_BEATS beats.
typedef bus_t pix_buf_t[PA][PIX_BEATS];

// The depthwise line buffer: LINE_ROWS row banks (rows r in bank r % LINE_ROWS; LINE_ROWS =
// 2 * MAX_DIL + 1 covers the deformable window), one word of PE lanes per pixel, each bank in
// LB_COPIES copies so that the TAP_COLS column taps of a pixel are read in one cycle (copy kx / 2:
// copy 0 serves tap columns 0 and 1 over its two ports, copy 1 column 2).
static_assert(PE % ARENA_BUS_BYTES == 0, "a depthwise channel tile's output run starts a beat");
typedef ap_uint<8 * PE> lrow_t;
typedef lrow_t line_buf_t[LINE_ROWS][LB_COPIES][MAX_W];

}  // namespace codenet

#endif  // CODENET_ENGINE_H
