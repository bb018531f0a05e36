// Host side of the C simulation (not synthesized): byte buffers <-> the engine's 16-byte beats.
// Used by codenet_csim.cpp and codenet_tb.cpp. A byte buffer of n bytes becomes ceil(n / 16)
// beats (at least one), zero-padded; only bytes [0, n) are ever copied back.
#ifndef CODENET_HOST_H
#define CODENET_HOST_H

#include <stdint.h>
#include <string.h>

#include <vector>

#include "pd_ap_types.h"
#include "codenet_config.h"

namespace codenet_host {

typedef ap_uint<8 * ARENA_BUS_BYTES> beat_t;

inline std::vector<beat_t> to_beats(const uint8_t *bytes, uint64_t n) {
    const uint64_t nb = n ? (n + ARENA_BUS_BYTES - 1) / ARENA_BUS_BYTES : 1;
    std::vector<beat_t> out(nb);
    for (uint64_t b = 0; b < nb; b++) {
        uint8_t chunk[ARENA_BUS_BYTES] = {0};
        const uint64_t start = b * ARENA_BUS_BYTES;
        const uint64_t len = n - start < (uint64_t)ARENA_BUS_BYTES ? n - start : ARENA_BUS_BYTES;
        memcpy(chunk, bytes + start, len);
        beat_t v = 0;
        for (int h = 0; h < ARENA_BUS_BYTES / 8; h++) {
            uint64_t word;
            memcpy(&word, chunk + 8 * h, 8);  // little-endian host (x86, ARM)
            v.range(64 * h + 63, 64 * h) = word;
        }
        out[b] = v;
    }
    return out;
}

inline void from_beats(const std::vector<beat_t> &beats, uint8_t *bytes, uint64_t n) {
    for (uint64_t b = 0; b * ARENA_BUS_BYTES < n; b++) {
        uint8_t chunk[ARENA_BUS_BYTES];
        for (int h = 0; h < ARENA_BUS_BYTES / 8; h++) {
            const uint64_t word = beats[b].range(64 * h + 63, 64 * h).to_uint64();
            memcpy(chunk + 8 * h, &word, 8);
        }
        const uint64_t start = b * ARENA_BUS_BYTES;
        const uint64_t len = n - start < (uint64_t)ARENA_BUS_BYTES ? n - start : ARENA_BUS_BYTES;
        memcpy(bytes + start, chunk, len);
    }
}

}  // namespace codenet_host

#endif  // CODENET_HOST_H
