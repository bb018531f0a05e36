// Xilinx arbitrary-precision types and streams, shared by the engines of hls_src/.
//
// In C simulation (g++ -O2 -Wall) the reference ap_types headers trip -Wmaybe-uninitialized /
// -Wuninitialized inside their own constructors (ap_private::clearUnusedBits reads the value it
// is about to set), reported through inlining even under -isystem. Those two warnings are
// silenced for the headers only (push / pop): our own code stays under the full -Wall.
// (`#pragma HLS` lines trip g++'s -Wunknown-pragmas; GCC cannot silence that from the source
// (bug 53431): the -Wall checks add -Wno-unknown-pragmas, their only exception.)
#ifndef PD_AP_TYPES_H
#define PD_AP_TYPES_H

#ifndef __SYNTHESIS__
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <ap_int.h>
#include <hls_stream.h>

#ifndef __SYNTHESIS__
#pragma GCC diagnostic pop
#endif

#endif  // PD_AP_TYPES_H
