// CoDeNet IP top function (contract: FORMAT.md, "IP interface").
#ifndef CODENET_TOP_H
#define CODENET_TOP_H

#include "pd_ap_types.h"

#include "codenet_config.h"
#include "codenet_port.h"

// One start runs the whole program: n_layers (0 .. MAX_LAYERS) descriptors of DESC_WORDS words
// at `program`, in order; parameters from the `weights` blob; activations read from and written
// to the `arena`. The host (or codenet_csim_run) has checked every descriptor against the limits.
// The arena is two explicit-burst ports on the same buffer (`arena` read by the layers' readers,
// `arena_wr` written by their writers; the host sets both to the arena's address) (codenet_port.h: hls::burst_maxi in synthesis, its C-sim
// twin otherwise, built from the beat pointer). weights and arena are ARENA_BUS_BYTES-wide ports over byte-addressed buffers (FORMAT.md):
// both start 16-byte aligned and are allocated to a whole number of beats.
// Per-layer profile (FORMAT.md "Profile region"): `timestamp` is a free-running cycle counter
// (ap_none wire, sampled before and after each layer); when profile_off != 0 the engine writes
// layer l's {start, end} as one beat at arena byte offset profile_off + 16 * l.
void codenet_top(const ap_uint<32> *program, const ap_uint<8 * ARENA_BUS_BYTES> *weights,
                 codenet::arena_port_t arena, codenet::arena_port_t arena_wr, ap_uint<32> n_layers,
                 ap_uint<32> profile_off, volatile ap_uint<64> *timestamp);

#endif  // CODENET_TOP_H
