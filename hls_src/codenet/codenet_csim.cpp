// Testbench side (not synthesized): plain-C entry points of the CoDeNet C simulation, loaded
// through ctypes (runtime/engines/csim.py). Final signatures (also in FORMAT.md):
//
//   int codenet_csim_run(const uint32_t *program, const uint8_t *weights, uint8_t *arena,
//                        uint32_t n_layers, uint64_t arena_bytes, uint64_t weights_bytes);
//       Checks every descriptor (codenet_csim_check), then runs codenet_top on copies of the
//       buffers wrapped into ap types and writes the arena back. Returns 0, or an error code
//       (CSIM_ERR_*) with a message on stderr (and in codenet_csim_last_error()); nothing is
//       written to the arena then. program holds n_layers * DESC_WORDS words, weights
//       weights_bytes bytes, arena arena_bytes bytes.
//   int codenet_csim_run_profiled(program, weights, arena, n_layers, arena_bytes, weights_bytes,
//                                 uint64_t profile_off, uint64_t timestamp0);
//       The same with the per-layer profile on (FORMAT.md "Profile region"): layer l's
//       {start, end} beat at arena byte profile_off + 16 * l (profile_off: a non-zero multiple of
//       16, the n_layers beats inside the arena, else code 2 / 5); the timestamp input holds
//       timestamp0 (the C simulation's clock adds the trip counts so far, sample_clock).
//   int codenet_csim_check(const uint32_t *program, const uint8_t *weights, uint32_t n_layers,
//                          uint64_t arena_bytes, uint64_t weights_bytes);
//       The checks alone (same codes).
//   const char *codenet_csim_last_error(void);   // "" after a success
//   uint32_t codenet_csim_cycles(uint64_t *out, uint32_t max_layers);
//       Cycle accounting of the last codenet_csim_run (see codenet_config.h, "Cycle model"):
//       writes min(n, max_layers) rows of N_PHASES uint64 counts (desc, load, read, compute,
//       write, entries; row-major) to out (may be NULL when max_layers is 0) and returns n, the
//       number of layers that run had. Counted while the engine ran: one per pipelined-loop
//       iteration (all II = 1) or single-beat access, and one per loop entry (last column).
//   int codenet_csim_cycle_phases(void);          // N_PHASES
//   uint32_t codenet_csim_events(uint32_t layer, uint64_t *out, uint32_t max_rows);
//       The events of that layer in the last run: distinct (phase, kind, trips, beats) rows with
//       their count (EV_FIELDS uint64 each, codenet_config.h "kinds of events"), at most max_rows
//       written; returns the number of distinct rows.
//
// The arena and weights are copied into zero-padded arrays of 16-byte beats (codenet_host.h);
// only the arena's bytes [0, arena_bytes) are copied back, so nothing outside the caller's
// buffer is ever written.
// The checks are the engine limits of FORMAT.md ("Changes" lists the ones the table leaves
// implicit) and bounds: every byte range that any descriptor reads or writes must lie inside the
// buffers passed, so a bad program returns an error instead of touching memory out of bounds.
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <vector>

#include "codenet_config.h"
#include "codenet_engine.h"
#include "codenet_host.h"
#include "codenet_top.h"

namespace {

constexpr int CSIM_ERR_N_LAYERS = 1;      // n_layers above MAX_LAYERS (0 runs nothing)
constexpr int CSIM_ERR_FIELD = 2;         // a descriptor field outside the engine limits
constexpr int CSIM_ERR_WEIGHT_BUF = 3;    // a 1x1 layer's weights do not fit the on-chip buffer
constexpr int CSIM_ERR_WEIGHTS_RANGE = 4; // a weights-blob section outside the blob
constexpr int CSIM_ERR_ARENA_RANGE = 5;   // an arena access outside the arena
constexpr int CSIM_ERR_PARAM = 6;         // a gather entry or requant parameter out of range

char g_error[512] = "";

int fail(int code, int layer, const char *what, long long value) {
    if (layer >= 0)
        snprintf(g_error, sizeof(g_error), "codenet_csim: layer %d: %s (%lld)", layer, what, value);
    else
        snprintf(g_error, sizeof(g_error), "codenet_csim: %s (%lld)", what, value);
    fprintf(stderr, "%s\n", g_error);
    return code;
}

uint64_t le16(const uint8_t *p) { return (uint64_t)p[0] | ((uint64_t)p[1] << 8); }

int32_t s32(uint32_t v) { return (int32_t)v; }

// tensor layout v3 (FORMAT.md "Memory"; runtime/engines/codenet_layout.py is_grouped): a buffer
// whose channel stride is a multiple of 16 above 16 is in pixel groups
bool grouped(uint64_t cs) { return cs % ARENA_BUS_BYTES == 0 && cs > (uint64_t)ARENA_BUS_BYTES; }

// All the checks of one descriptor w (raw words); 0 or an error code.
int check_layer(int l, const uint32_t *w, const uint8_t *weights, uint64_t arena_bytes,
                uint64_t weights_bytes) {
    const uint64_t op = w[D_OP], in_off = w[D_IN_OFF], in_h = w[D_IN_H], in_w = w[D_IN_W];
    const uint64_t in_cs = w[D_IN_CS], cin = w[D_CIN], mode = w[D_IN_MODE], stride = w[D_STRIDE];
    const uint64_t in_zp = w[D_IN_ZP], flags = w[D_FLAGS], out_off = w[D_OUT_OFF];
    const uint64_t out_h = w[D_OUT_H], out_w = w[D_OUT_W], out_cs = w[D_OUT_CS];
    const uint64_t out_choff = w[D_OUT_CHOFF], cout = w[D_COUT];
    const uint64_t gather_off = w[D_GATHER_OFF], w_off = w[D_W_OFF], q_off = w[D_Q_OFF];
    const int64_t clamp_lo = s32(w[D_CLAMP_LO]), clamp_hi = s32(w[D_CLAMP_HI]);
    const uint64_t dil_off = w[D_DIL_OFF], dil_cs = w[D_DIL_CS], pad = w[D_PAD];
    const bool conv = op == (uint64_t)OP_CONV1X1;
    const bool patch = conv && mode == (uint64_t)MODE_PATCH3X3;
    const bool deform = (flags & FLAG_DEFORMABLE) != 0;
    const bool w8 = (flags & FLAG_W8) != 0;
    const bool out_signed = (flags & FLAG_OUT_SIGNED) != 0;

    // ---- fields
    if (op != (uint64_t)OP_CONV1X1 && op != (uint64_t)OP_DW3X3)
        return fail(CSIM_ERR_FIELD, l, "op is not CONV1X1 (0) or DW3X3 (1)", op);
    // depthwise layers go through the line buffer (MAX_H x MAX_W); 1x1 / patch layers read DDR
    const uint64_t max_h = conv ? (uint64_t)MAX_IMG : (uint64_t)MAX_H;
    const uint64_t max_w = conv ? (uint64_t)MAX_IMG : (uint64_t)MAX_W;
    if (in_h < 1 || in_h > max_h) return fail(CSIM_ERR_FIELD, l, "in_h outside the height limit", in_h);
    if (in_w < 1 || in_w > max_w) return fail(CSIM_ERR_FIELD, l, "in_w outside the width limit", in_w);
    if (out_h < 1 || out_h > max_h) return fail(CSIM_ERR_FIELD, l, "out_h outside the height limit", out_h);
    if (out_w < 1 || out_w > max_w) return fail(CSIM_ERR_FIELD, l, "out_w outside the width limit", out_w);
    if (cin < 1 || cin > (uint64_t)MAX_CH) return fail(CSIM_ERR_FIELD, l, "cin outside 1..MAX_CH", cin);
    if (cout < 1 || cout > (uint64_t)MAX_CH) return fail(CSIM_ERR_FIELD, l, "cout outside 1..MAX_CH", cout);
    if (!conv && cin != cout) return fail(CSIM_ERR_FIELD, l, "DW3X3 needs cin == cout", cin);
    if (mode > (uint64_t)MODE_PATCH3X3) return fail(CSIM_ERR_FIELD, l, "in_mode outside 0..2", mode);
    if (mode == (uint64_t)MODE_PATCH3X3 && !conv)
        return fail(CSIM_ERR_FIELD, l, "PATCH3X3 input mode is for CONV1X1 only", mode);
    if (patch && 9 * cin > (uint64_t)MAX_K)
        return fail(CSIM_ERR_FIELD, l, "PATCH3X3 9 * cin exceeds MAX_CH", 9 * cin);
    if (in_cs < 1) return fail(CSIM_ERR_FIELD, l, "in_cs must be >= 1", in_cs);
    // beat layout (FORMAT.md "Memory"): a layer writes its cout bytes and the zero pad up to
    // whole beats, so the padded run must fit the pixel
    const uint64_t out_run = (cout + ARENA_BUS_BYTES - 1) / ARENA_BUS_BYTES * ARENA_BUS_BYTES;
    if (out_cs < 1 || out_choff + out_run > out_cs)
        return fail(CSIM_ERR_FIELD, l, "out_choff + cout padded to whole beats exceeds out_cs", out_choff + out_run);
    const uint64_t aligned[] = {out_off, out_cs, out_choff, deform ? dil_cs : 0};
    const char *aligned_name[] = {"out_off not a multiple of ARENA_BUS_BYTES", "out_cs not a multiple of ARENA_BUS_BYTES",
                                  "out_choff not a multiple of ARENA_BUS_BYTES", "dil_cs not a multiple of ARENA_BUS_BYTES"};
    for (int i = 0; i < 4; i++)
        if (aligned[i] % ARENA_BUS_BYTES) return fail(CSIM_ERR_FIELD, l, aligned_name[i], (long long)aligned[i]);
    if (conv && !patch) {
        if (stride != 1 && stride != 2) return fail(CSIM_ERR_FIELD, l, "1x1 stride not 1 or 2", stride);
        if (pad != 0) return fail(CSIM_ERR_FIELD, l, "1x1 (direct / upsample) pad must be 0", pad);
    } else {
        if (stride != 1 && stride != 2 && stride != 4)
            return fail(CSIM_ERR_FIELD, l, "3x3 stride not 1, 2 or 4", stride);
        if (pad > (uint64_t)MAX_PAD) return fail(CSIM_ERR_FIELD, l, "pad outside 0..MAX_PAD", pad);
    }
    if (in_zp > 255) return fail(CSIM_ERR_FIELD, l, "in_zp outside 0..255", in_zp);
    if (flags & ~(uint64_t)FLAGS_ALL) return fail(CSIM_ERR_FIELD, l, "unknown flag bits", flags);
    if (deform) {
        if (conv) return fail(CSIM_ERR_FIELD, l, "deformable is for DW3X3 only", flags);
        if (stride != 1 || pad != 1)
            return fail(CSIM_ERR_FIELD, l, "deformable needs stride 1 and pad 1", stride);
        // layout v3 (FORMAT.md "Memory"): the dilation map is read as one run per output row
        if (dil_cs != (uint64_t)ARENA_BUS_BYTES)
            return fail(CSIM_ERR_FIELD, l, "dilation map buffer not one beat per pixel (dil_cs != 16)", dil_cs);
    }
    const int64_t lo_min = out_signed ? -128 : 0, hi_max = out_signed ? 127 : 255;
    if (clamp_lo < lo_min || clamp_hi > hi_max || clamp_lo > clamp_hi)
        return fail(CSIM_ERR_FIELD, l, "clamp_lo..clamp_hi not inside the output byte range", clamp_lo);
    for (int i = D_RESERVED; i < DESC_WORDS; i++)
        if (w[i] != 0) return fail(CSIM_ERR_FIELD, l, "reserved descriptor word not 0", i);
    if (gather_off % SECTION_ALIGN || w_off % SECTION_ALIGN || q_off % SECTION_ALIGN)
        return fail(CSIM_ERR_FIELD, l, "weights-blob section not 8-byte aligned",
                    (long long)(gather_off % SECTION_ALIGN ? gather_off : w_off % SECTION_ALIGN ? w_off : q_off));

    // ---- weights blob
    const uint64_t k = patch ? 9 * cin : conv ? cin : 9;
    const uint64_t row_bytes = w8 ? k : (k + 1) / 2;
    if (conv && cout * row_bytes > (uint64_t)W_BUF_BYTES)
        return fail(CSIM_ERR_WEIGHT_BUF, l, "1x1 weights exceed W_BUF_BYTES", cout * row_bytes);
    if (conv) {  // implied by the line above (see W_WORDS); kept as the engine's own guard
        const uint64_t words = (cout + PE - 1) / PE * ((row_bytes + W_WORD_BYTES - 1) / W_WORD_BYTES);
        if (words > (uint64_t)W_WORDS)
            return fail(CSIM_ERR_WEIGHT_BUF, l, "1x1 weights exceed the on-chip buffer (words per lane)", words);
    }
    if (gather_off + 2 * cin > weights_bytes)
        return fail(CSIM_ERR_WEIGHTS_RANGE, l, "gather table past the weights blob", gather_off);
    if (w_off + cout * row_bytes > weights_bytes)
        return fail(CSIM_ERR_WEIGHTS_RANGE, l, "weights past the weights blob", w_off);
    if (q_off + (RQ_RECORD_BYTES + 2) * cout > weights_bytes)
        return fail(CSIM_ERR_WEIGHTS_RANGE, l, "requant parameters past the weights blob", q_off);
    uint64_t max_gather = 0, min_gather = ~0ULL;
    for (uint64_t i = 0; i < cin; i++) {
        const uint64_t g = le16(weights + gather_off + 2 * i);
        if (g >= in_cs) return fail(CSIM_ERR_PARAM, l, "gather entry >= in_cs", (long long)g);
        if (g > max_gather) max_gather = g;
        if (g < min_gather) min_gather = g;
    }
    // the input side of the streaming engine (FORMAT.md "Memory")
    const uint64_t bus = ARENA_BUS_BYTES;
    if (patch) {
        if (max_gather - min_gather >= bus)
            return fail(CSIM_ERR_PARAM, l, "PATCH3X3 gathered channels span more than one beat", max_gather - min_gather);
        if (grouped(in_cs))
            return fail(CSIM_ERR_FIELD, l, "PATCH3X3 input in pixel groups (in_cs a multiple of 16 above 16)", in_cs);
        if (in_w * in_cs + 2 * bus - 2 > (uint64_t)PATCH_ROW_BEATS * bus)
            return fail(CSIM_ERR_FIELD, l, "PATCH3X3 input row exceeds PATCH_ROW_BEATS", in_w * in_cs);
    } else {
        if (in_off % bus) return fail(CSIM_ERR_FIELD, l, "in_off not a multiple of ARENA_BUS_BYTES", in_off);
        if (in_cs % bus) return fail(CSIM_ERR_FIELD, l, "in_cs not a multiple of ARENA_BUS_BYTES", in_cs);
        if (conv && max_gather / bus - min_gather / bus + 1 > (uint64_t)PIX_BEATS)
            return fail(CSIM_ERR_PARAM, l, "gathered channels span more than PIX_BEATS beats", max_gather - min_gather);
    }
    for (uint64_t c = 0; c < cout; c++) {
        const uint8_t *r = weights + q_off + RQ_RECORD_BYTES * c;
        const int16_t m = (int16_t)le16(r + 4);
        if (!(flags & FLAG_SHIFT_ONLY) && m < 0)
            return fail(CSIM_ERR_PARAM, l, "requant M < 0 in channel", (long long)c);
        if (r[6] > MAX_SHIFT) return fail(CSIM_ERR_PARAM, l, "requant S > 31 in channel", (long long)c);
    }

    // ---- arena (the engine computes 32-bit byte offsets)
    const uint64_t limit = arena_bytes < (1ULL << 32) ? arena_bytes : (1ULL << 32);
    // a tensor in pixel groups (cs a multiple of 16 above 16) spreads a pixel over its whole row
    // group: the layer's bytes lie in off .. off + h * w * cs
    const bool in_grouped = grouped(in_cs), out_grouped = grouped(out_cs);
    const uint64_t in_end = in_grouped ? in_off + in_h * in_w * in_cs : in_off + (in_h * in_w - 1) * in_cs + max_gather + 1;
    const uint64_t out_end = out_grouped ? out_off + out_h * out_w * out_cs
                                         : out_off + (out_h * out_w - 1) * out_cs + out_choff + out_run;
    if (in_end > limit)
        return fail(CSIM_ERR_ARENA_RANGE, l, "input tensor past the arena", in_off);
    if (out_end > limit)
        return fail(CSIM_ERR_ARENA_RANGE, l, "output tensor past the arena", out_off);
    if (deform && dil_off + (out_h * out_w - 1) * dil_cs + 1 > limit)
        return fail(CSIM_ERR_ARENA_RANGE, l, "dilation map past the arena", dil_off);
    return 0;
}

}  // namespace

extern "C" const char *codenet_csim_last_error(void) { return g_error; }

extern "C" int codenet_csim_check(const uint32_t *program, const uint8_t *weights,
                                  uint32_t n_layers, uint64_t arena_bytes,
                                  uint64_t weights_bytes) {
    g_error[0] = '\0';
    if (n_layers > (uint32_t)MAX_LAYERS)
        return fail(CSIM_ERR_N_LAYERS, -1, "n_layers above MAX_LAYERS", n_layers);
    for (uint32_t l = 0; l < n_layers; l++) {
        const int err = check_layer((int)l, program + (uint64_t)l * DESC_WORDS, weights,
                                    arena_bytes, weights_bytes);
        if (err) return err;
    }
    return 0;
}

extern "C" int codenet_csim_run_profiled(const uint32_t *program, const uint8_t *weights, uint8_t *arena,
                                         uint32_t n_layers, uint64_t arena_bytes, uint64_t weights_bytes,
                                         uint64_t profile_off, uint64_t timestamp0) {
    const int err = codenet_csim_check(program, weights, n_layers, arena_bytes, weights_bytes);
    if (err) return err;
    if (profile_off % ARENA_BUS_BYTES != 0 || profile_off >= (1ULL << 32))
        return fail(CSIM_ERR_FIELD, -1, "profile_off not a 32-bit multiple of 16", (long long)profile_off);
    if (profile_off && profile_off + (uint64_t)n_layers * ARENA_BUS_BYTES > arena_bytes)
        return fail(CSIM_ERR_ARENA_RANGE, -1, "profile region past the arena", (long long)profile_off);
    std::vector<ap_uint<32> > prog(program, program + (uint64_t)n_layers * DESC_WORDS);
    if (prog.empty()) prog.push_back(0);  // a valid pointer even for an empty program
    std::vector<codenet_host::beat_t> wts = codenet_host::to_beats(weights, weights_bytes);
    std::vector<codenet_host::beat_t> mem = codenet_host::to_beats(arena, arena_bytes);
    volatile ap_uint<64> timestamp = timestamp0;
    codenet_top(prog.data(), wts.data(), mem.data(), mem.data(), ap_uint<32>(n_layers), ap_uint<32>(profile_off), &timestamp);
    codenet_host::from_beats(mem, arena, arena_bytes);
    return 0;
}

extern "C" int codenet_csim_run(const uint32_t *program, const uint8_t *weights, uint8_t *arena,
                                uint32_t n_layers, uint64_t arena_bytes, uint64_t weights_bytes) {
    return codenet_csim_run_profiled(program, weights, arena, n_layers, arena_bytes, weights_bytes, 0, 0);
}

extern "C" uint32_t codenet_csim_cycles(uint64_t *out, uint32_t max_layers) {
    const codenet::CycleLog &log = codenet::cycle_log();
    const uint32_t n = (uint32_t)log.n_layers;
    for (uint32_t l = 0; l < n && l < max_layers; l++)
        for (int p = 0; p < N_PHASES; p++) out[(uint64_t)l * N_PHASES + p] = log.count[l][p];
    return n;
}

extern "C" int codenet_csim_cycle_phases(void) { return N_PHASES; }

// Exhaustive check of one packed DSP (codenet_engine.h mac_chain<1>): every pair of w_bits-bit
// signed weights (w_lo, w_hi) with every activation the engine reads (int8 and uint8: -128..255).
// Returns the number of wrong products; *cases receives the number of (w_lo, w_hi, x) tried.
extern "C" uint64_t codenet_csim_dsp_pack_check(int w_bits, uint64_t *cases) {
    const int wmin = -(1 << (w_bits - 1)), wmax = (1 << (w_bits - 1)) - 1;
    uint64_t bad = 0, n = 0;
    for (int lo = wmin; lo <= wmax; lo++)
        for (int hi = wmin; hi <= wmax; hi++)
            for (int x = -128; x <= 255; x++) {
                const codenet::wgt_t wl[1] = {codenet::wgt_t(lo)}, wh[1] = {codenet::wgt_t(hi)};
                const codenet::act_t xa[1] = {codenet::act_t(x)};
                const codenet::ChainPair pr = codenet::mac_chain<1>(wl, wh, xa);
                if (pr.lo.to_int() != lo * x || pr.hi.to_int() != hi * x) bad++;
                n++;
            }
    *cases = n;
    return bad;
}

namespace {
// One cascade of N packed DSPs against the true dot products, for `trials` operand sets: first
// every uniform set of extremes (all N w_lo equal, all N w_hi equal, all N x equal, each one of
// {min, -1, 0, 1, max}: the largest field sums of either sign), then `trials` - 125 sets mixing
// extremes and uniform random values (deterministic generator).
template <int N>
uint64_t chain_check(int w_bits, uint64_t trials, uint64_t *cases) {
    const int wmin = -(1 << (w_bits - 1)), wmax = (1 << (w_bits - 1)) - 1;
    const int wv[5] = {wmin, -1, 0, 1, wmax}, xv[5] = {-128, -1, 0, 1, 255};
    uint64_t state = 0x9E3779B97F4A7C15ull, bad = 0, n = 0;
    auto next = [&state]() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        return state;
    };
    auto pick = [&next](int lo, int hi, const int ext[5]) {
        const uint64_t r = next();
        return (r & 3) == 0 ? ext[(r >> 2) % 5] : lo + (int)((r >> 8) % (uint64_t)(hi - lo + 1));
    };
    for (uint64_t t = 0; t < trials; t++) {
        codenet::wgt_t wl[N], wh[N];
        codenet::act_t x[N];
        int64_t lo_sum = 0, hi_sum = 0;
        for (int j = 0; j < N; j++) {
            int l, h, a;
            if (t < 125) {
                l = wv[t % 5];
                h = wv[(t / 5) % 5];
                a = xv[t / 25];
            } else {
                l = pick(wmin, wmax, wv);
                h = pick(wmin, wmax, wv);
                a = pick(-128, 255, xv);
            }
            wl[j] = l;
            wh[j] = h;
            x[j] = a;
            lo_sum += (int64_t)l * a;
            hi_sum += (int64_t)h * a;
        }
        const codenet::ChainPair pr = codenet::mac_chain<N>(wl, wh, x);
        if (pr.lo.to_int() != lo_sum || pr.hi.to_int() != hi_sum) bad++;
        n++;
    }
    *cases = n;
    return bad;
}
}  // namespace

// The DSP cascades of the 1x1 MAC (codenet_engine.h mac_chain): `chain` packed DSPs of w_bits-bit
// weights (4-bit: CHAIN_4BIT, 8-bit: CHAIN_8BIT as the engine uses them; 8-bit at 8 shows the
// guard is tight: it must fail). Returns the wrong sums; *cases the operand sets tried;
// UINT64_MAX for a (w_bits, chain) this library does not instantiate.
extern "C" uint64_t codenet_csim_dsp_chain_check(int w_bits, int chain, uint64_t trials, uint64_t *cases) {
    if (w_bits == 4 && chain == CHAIN_4BIT) return chain_check<CHAIN_4BIT>(4, trials, cases);
    if (w_bits == 8 && chain == CHAIN_8BIT) return chain_check<CHAIN_8BIT>(8, trials, cases);
    if (w_bits == 8 && chain == 2 * CHAIN_8BIT) return chain_check<2 * CHAIN_8BIT>(8, trials, cases);
    *cases = 0;
    return UINT64_MAX;
}

extern "C" uint32_t codenet_csim_events(uint32_t layer, uint64_t *out, uint32_t max_rows) {
    const codenet::CycleLog &log = codenet::cycle_log();
    if (layer >= (uint32_t)log.n_layers) return 0;
    uint32_t row = 0;
    for (const auto &kv : log.events[layer]) {
        if (row < max_rows) {
            for (int f = 0; f < EV_FIELDS - 1; f++) out[(uint64_t)row * EV_FIELDS + f] = kv.first[f];
            out[(uint64_t)row * EV_FIELDS + EV_FIELDS - 1] = kv.second;
        }
        row++;
    }
    return row;
}
