// CoDeNet IP top function: walks the program's layer descriptors in order; per layer, loads the
// gather table, requant parameters and weights into on-chip buffers, then streams the pixels
// (codenet_engine.h). Contract: FORMAT.md. Cycle model: codenet_config.h.
#include "codenet_top.h"

#include "codenet_dataflow.h"
#include "codenet_engine.h"
#include "codenet_port.h"

namespace {

// C/RTL co-simulation depth hints only, in beats (the real buffers are whatever the host allocates).
constexpr int COSIM_WEIGHT_BEATS = (1 << 20) / ARENA_BUS_BYTES;
constexpr int COSIM_ARENA_BEATS = (1 << 22) / ARENA_BUS_BYTES;

}  // namespace

void codenet_top(const ap_uint<32> *program, const ap_uint<8 * ARENA_BUS_BYTES> *weights,
                 codenet::arena_port_t arena, codenet::arena_port_t arena_wr, ap_uint<32> n_layers,
                 ap_uint<32> profile_off, volatile ap_uint<64> *timestamp) {
    // every m_axi setting from codenet_config.h ("memory system"): the cycle model charges the same
#pragma HLS INTERFACE m_axi port = program offset = slave bundle = gmem_prog depth = MAX_LAYERS * DESC_WORDS latency = AXI_LATENCY num_read_outstanding = AXI_OUTSTANDING num_write_outstanding = AXI_UNUSED_OUTSTANDING max_read_burst_length = PROG_MAX_BURST max_write_burst_length = AXI_UNUSED_BURST
#pragma HLS INTERFACE m_axi port = weights offset = slave bundle = gmem_weights depth = COSIM_WEIGHT_BEATS latency = AXI_LATENCY num_read_outstanding = AXI_OUTSTANDING num_write_outstanding = AXI_UNUSED_OUTSTANDING max_read_burst_length = AXI_MAX_BURST max_write_burst_length = AXI_UNUSED_BURST
    // the arena through two ports on the same buffer (the host writes one address to both): the
    // layers' readers use `arena` (reads only), their writers and the profile `arena_wr` (writes
    // only), so each DATAFLOW process has an m_axi argument of its own
#pragma HLS INTERFACE m_axi port = arena offset = slave bundle = gmem_arena depth = COSIM_ARENA_BEATS latency = AXI_LATENCY num_read_outstanding = AXI_OUTSTANDING num_write_outstanding = AXI_UNUSED_OUTSTANDING max_read_burst_length = AXI_MAX_BURST max_write_burst_length = AXI_UNUSED_BURST
#pragma HLS INTERFACE m_axi port = arena_wr offset = slave bundle = gmem_arena_wr depth = COSIM_ARENA_BEATS latency = AXI_LATENCY num_read_outstanding = AXI_UNUSED_OUTSTANDING num_write_outstanding = AXI_OUTSTANDING max_read_burst_length = AXI_UNUSED_BURST max_write_burst_length = AXI_MAX_BURST
#pragma HLS INTERFACE s_axilite port = program bundle = control
#pragma HLS INTERFACE s_axilite port = weights bundle = control
#pragma HLS INTERFACE s_axilite port = arena bundle = control
#pragma HLS INTERFACE s_axilite port = arena_wr bundle = control
#pragma HLS INTERFACE s_axilite port = n_layers bundle = control
#pragma HLS INTERFACE s_axilite port = profile_off bundle = control
    // the free-running counter of the block design (overlays/codenet/block_design.tcl): a plain
    // wire, no handshake; volatile so that every read is a read of the port (UG1399 "Volatile")
#pragma HLS INTERFACE mode = ap_none port = timestamp
#pragma HLS INTERFACE s_axilite port = return bundle = control

    // On-chip buffers, refilled at the start of every layer.
    static codenet::chan_t gch[MAX_CH];         // gather table (read one entry a cycle)
    static codenet::Gather gather;              // its channel ranges
    static codenet::Requant rq[PE][CH_TILES];
#pragma HLS ARRAY_PARTITION variable = rq complete dim = 1
    static codenet::chan_t xrel[PA][MAX_K / (PA / 2)];   // streaming 1x1: input -> pixel-run byte
#pragma HLS ARRAY_PARTITION variable = xrel complete dim = 1
    static codenet::pix_buf_t pbuf;             // 1x1 pixel buffer (PA copies)
#pragma HLS ARRAY_PARTITION variable = pbuf complete dim = 1
    static codenet::group_buf_t gbuf;           // 1x1 reader: a group's gathered blocks
    static codenet::out_group_buf_t obuf;       // 1x1 writer: a group's output beats
    static codenet::line_buf_t lbank;           // dw line buffer: row banks x LB_COPIES copies
#pragma HLS ARRAY_PARTITION variable = lbank complete dim = 1
#pragma HLS ARRAY_PARTITION variable = lbank complete dim = 2
    static codenet::wword_t wbuf[PE][W_WORDS];  // 1x1 weights, PA x PE per cycle
#pragma HLS ARRAY_PARTITION variable = wbuf complete dim = 1
    static codenet::dwrow_t dww[PE][CH_TILES];  // 3x3 depthwise weights, 9 x PE per cycle
#pragma HLS ARRAY_PARTITION variable = dww complete dim = 1
    static codenet::TileBlocks tile_blocks;     // dw reader: every tile's channel blocks
    static codenet::TileLanes tile_lanes;       // dw compute: every tile's lane map
#pragma HLS ARRAY_PARTITION variable = tile_lanes.lane_k complete dim = 1
#pragma HLS ARRAY_PARTITION variable = tile_lanes.lane_b complete dim = 1

    // one requantization stage shared by both ops (its PE DSPs counted once)
#pragma HLS ALLOCATION function instances = codenet::requant_tile limit = REQUANT_STAGES
    const int n = n_layers.to_int();
    const bool profile = profile_off != 0;
    const codenet::addr_t prof_beat = codenet::beat_of(profile_off);
#ifndef __SYNTHESIS__
    codenet::cycle_log().open_layer = -1;   // every run ends with commit(): nothing is pending
    codenet::cycle_log().n_layers = n;
#endif
    for (int l = 0; l < n; l++) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = MAX_LAYERS
#ifndef __SYNTHESIS__
        codenet::cycle_log().commit();
        codenet::cycle_log().layer = l;
        for (int p = 0; p < N_PHASES; p++) codenet::cycle_log().count[l][p] = 0;
        codenet::cycle_log().events[l].clear();
        codenet::cycle_log().epoch++;          // a new layer: no beat read or written yet
#endif
        const ap_uint<64> t_start = codenet::sample_clock(timestamp);
        const codenet::Desc d = codenet::read_desc(program, l);
        codenet::load_gather(weights, d, gch, gather);
        codenet::load_requant(weights, d, rq);
        if (d.op == OP_CONV1X1) {
            codenet::load_conv_weights(weights, d, wbuf);
            // two datapaths, 4-bit and 8-bit weights: constants of each instance
            if (d.w8) {
                codenet::load_xrel<true>(d, gch, gather, xrel);
                codenet::conv1x1_stream<true>(arena, arena_wr, d, gather, xrel, wbuf, rq, pbuf, gbuf, obuf, codenet::conv_geom(d, gather));
            } else {
                codenet::load_xrel<false>(d, gch, gather, xrel);
                codenet::conv1x1_stream<false>(arena, arena_wr, d, gather, xrel, wbuf, rq, pbuf, gbuf, obuf, codenet::conv_geom(d, gather));
            }
        } else {
            codenet::load_dw_weights(weights, d, dww);
            codenet::load_tiles(d, gch, tile_blocks, tile_lanes);
            codenet::dw3x3_stream(arena, arena_wr, d, tile_blocks, tile_lanes, dww, rq, lbank);
        }
        const ap_uint<64> t_end = codenet::sample_clock(timestamp);
        if (profile) codenet::write_profile(arena_wr, prof_beat + codenet::addr_t(l), t_start, t_end);
#ifndef __SYNTHESIS__
        codenet::port_check_idle();
#endif
    }
#ifndef __SYNTHESIS__
    codenet::cycle_log().commit();
#endif
}
