// The arena port: explicit AXI bursts (UG1399 "Using Manual Burst", hls::burst_maxi).
//
// The streaming stages (codenet_dataflow.h) issue their own burst requests: a reader keeps its
// read requests up to AXI_OUTSTANDING bursts ahead of the data it consumes (Prefetch), a writer
// requests each burst as its data is ready and takes the write responses lagged, up to
// AXI_OUTSTANDING bursts behind, then all of them at the end of the layer (the barrier). So the
// AXI latency is paid once per stage and layer, not once per row or run.
//
// Synthesis: arena_port_t is hls::burst_maxi<bus_t> (Vitis HLS 2022.1 and later). C simulation:
// ArenaPort below, the same five calls on the arena array, which also asserts the protocol the
// hardware needs: every burst 1 .. AXI_MAX_BURST beats, never more than AXI_OUTSTANDING read or
// write bursts in flight (a read request beyond that would block the stage that must consume the
// data: a deadlock), no read() without a request, no write() outside a requested burst, every
// read burst consumed and every write response taken by the end of the layer, and (through
// CODENET_READ / CODENET_WROTE) no beat both read and written by one layer.
#ifndef CODENET_PORT_H
#define CODENET_PORT_H

#include "codenet_engine.h"

#ifdef __SYNTHESIS__
#include <hls_burst_maxi.h>
namespace codenet {
typedef hls::burst_maxi<bus_t> arena_port_t;
}
#else
#include <deque>
namespace codenet {

struct PortState {
    std::deque<std::pair<uint64_t, int>> reads;    // requested read bursts: next beat, beats left
    uint64_t wr_beat;                              // the open write burst: next beat, beats left
    int wr_left;
    int wr_unacked;                                // write bursts requested, response not taken
    std::deque<bool> wr_done;                      // per unacked burst: all its beats written
};

class ArenaPort {
   public:
    ArenaPort(bus_t *p) : mem(p), st(&state()) {}
    static PortState &state() {
        static PortState s;
        return s;
    }
    void read_request(addr_t beat, int len) {
        CODENET_ASSERT(len >= 1 && len <= AXI_MAX_BURST, "read burst length outside 1..AXI_MAX_BURST", len);
        CODENET_ASSERT((int)st->reads.size() < AXI_OUTSTANDING, "more than AXI_OUTSTANDING read bursts in flight",
                       st->reads.size());
        st->reads.push_back({beat.to_uint64(), len});
    }
    bus_t read() {
        CODENET_ASSERT(!st->reads.empty(), "read() without a pending read request", 0);
        auto &r = st->reads.front();
        const uint64_t beat = r.first++;
        if (--r.second == 0) st->reads.pop_front();
        CODENET_READ(addr_t(beat));
        return mem[beat];
    }
    void write_request(addr_t beat, int len) {
        CODENET_ASSERT(len >= 1 && len <= AXI_MAX_BURST, "write burst length outside 1..AXI_MAX_BURST", len);
        CODENET_ASSERT(st->wr_left == 0, "write request before the previous burst's data", st->wr_left);
        CODENET_ASSERT(st->wr_unacked < AXI_OUTSTANDING, "more than AXI_OUTSTANDING write bursts in flight",
                       st->wr_unacked);
        st->wr_beat = beat.to_uint64();
        st->wr_left = len;
        st->wr_unacked++;
        st->wr_done.push_back(false);
    }
    void write(const bus_t &v) {
        CODENET_ASSERT(st->wr_left > 0, "write() outside a requested burst", 0);
        CODENET_WROTE(addr_t(st->wr_beat));
        mem[st->wr_beat++] = v;
        if (--st->wr_left == 0) st->wr_done.back() = true;
    }
    void write_response() {
        CODENET_ASSERT(st->wr_unacked > 0 && st->wr_done.front(), "write_response() with no complete burst", 0);
        st->wr_done.pop_front();
        st->wr_unacked--;
    }

   private:
    bus_t *mem;
    PortState *st;
};
typedef ArenaPort arena_port_t;

// The end of a layer: every read burst consumed, every write response taken.
inline void port_check_idle() {
    const PortState &s = ArenaPort::state();
    CODENET_ASSERT(s.reads.empty(), "read bursts requested but not consumed at the end of a layer", s.reads.size());
    CODENET_ASSERT(s.wr_unacked == 0 && s.wr_left == 0, "write responses not taken at the end of a layer",
                   s.wr_unacked);
}
}  // namespace codenet
#endif

namespace codenet {

// True when beat i of a run of len beats is the last of its burst (runs are requested as bursts
// of AXI_MAX_BURST beats from their first beat, the last one shorter).
inline bool burst_end(int i, int len) { return (i & (AXI_MAX_BURST - 1)) == AXI_MAX_BURST - 1 || i == len - 1; }

// A reader's requests, ahead of its data. Runs yields the stage's contiguous runs in exactly the
// order the data side reads them, one per step (bool next(addr_t &beat, int &len, const Ctx &),
// no empty run; Ctx: on-chip tables the sequence needs); each run is requested as bursts of at
// most AXI_MAX_BURST beats. try_issue() requests one burst when fewer than AXI_OUTSTANDING are in
// flight; the data side calls it before every beat it reads (so the burst it needs next is always
// requested: when none is in flight, the next request is that burst) and done() after the last
// beat of each burst. The stage's first beat arrives AXI_LATENCY after start() (an EV_LATENCY
// event); later bursts were requested ahead and cost only their beats, while AXI_OUTSTANDING
// requests cover the latency (the cycle model's EV_QUEUED).
struct NoCtx {};

template <class Runs, class Ctx>
struct Prefetch {
    Runs runs;
    addr_t beat;       // next beat to request in the current run
    int left;          // its beats not yet requested
    int in_flight;     // bursts requested, not fully read
    bool more;         // runs not yet taken from `runs`

    void start(arena_port_t &port, const Runs &r, const Ctx &ctx, int phase) {
#pragma HLS INLINE
        runs = r;
        left = 0;
        in_flight = 0;
        more = true;
        for (int i = 0; i < AXI_OUTSTANDING; i++) {
#pragma HLS PIPELINE II = 1
            try_issue(port, ctx);
        }
        if (in_flight > 0) CODENET_LATENCY(phase);
    }
    void try_issue(arena_port_t &port, const Ctx &ctx) {
#pragma HLS INLINE
        if (in_flight >= AXI_OUTSTANDING) return;
        if (left == 0 && more) more = runs.next(beat, left, ctx);
        if (left == 0) return;
        const int len = left < AXI_MAX_BURST ? left : AXI_MAX_BURST;
        port.read_request(beat, len);
        beat += len;
        left -= len;
        in_flight++;
    }
    void done() {
#pragma HLS INLINE
        in_flight--;
    }
};

// A writer's bursts: request() before the first beat of each burst, taking the oldest write
// response first when AXI_OUTSTANDING bursts are unacknowledged; finish() takes the rest (the
// layer's barrier: its writes are in memory before the next layer reads them).
struct WriteBursts {
    int unacked;
    bool any;          // a burst was written: the last responses cost AXI_LATENCY (EV_LATENCY)
    void start() {
        unacked = 0;
        any = false;
    }
    void request(arena_port_t &port, addr_t beat, int len) {
#pragma HLS INLINE
        any = true;
        if (unacked == AXI_OUTSTANDING) {
            port.write_response();
            unacked--;
        }
        port.write_request(beat, len);
        unacked++;
    }
    void finish(arena_port_t &port, int phase) {
#pragma HLS INLINE
        if (any) CODENET_LATENCY(phase);
        for (int i = 0; i < AXI_OUTSTANDING; i++) {
#pragma HLS PIPELINE II = 1
            if (unacked > 0) {
                port.write_response();
                unacked--;
            }
        }
    }
};

// One profile entry (FORMAT.md "Profile region"): a whole beat, start in bytes 0..7, end in
// bytes 8..15 (little-endian), written as a one-beat burst after the layer and waited for (counted
// as one blocking access of the descriptor phase: it is on the sequential path between two layers).
static_assert(ARENA_BUS_BYTES == 16, "a profile entry (two u64) is one beat");
inline void write_profile(arena_port_t &arena, addr_t beat, ap_uint<64> start, ap_uint<64> end) {
#pragma HLS INLINE
    bus_t v;
    v.range(63, 0) = start;
    v.range(127, 64) = end;
    CODENET_BLOCKING(PH_DESC);
    arena.write_request(beat, 1);
    arena.write(v);
    arena.write_response();
}

}  // namespace codenet

#endif  // CODENET_PORT_H
