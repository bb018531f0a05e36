// C-simulation testbench (Vitis HLS csim_design, or g++ via runtime/engines/csim.py
// compile_testbench). Usage: codenet_tb DIR
//
// DIR holds the golden vectors written by the numpy model side (FORMAT.md, "Testbench vectors"):
//   program.bin    n_layers * DESC_WORDS little-endian uint32 (n_layers = size / 128)
//   weights.bin    the weights blob
//   arena_in.bin   the arena before the run
//   arena_out.bin  the expected arena after the run (same size)
//   check.txt      one "offset length [name]" line (decimal) per byte range to compare;
//                  blank lines and lines starting with '#' are ignored
// Runs codenet_top once over the whole program, then compares the listed ranges. Prints PASS,
// or the first mismatches and FAIL; exit status 0 only on PASS (1: mismatch, 2: bad input).
// The program is trusted (the numpy side validated it); see codenet_csim.cpp for the checks.
#include <stdint.h>
#include <stdio.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "codenet_config.h"
#include "codenet_host.h"
#include "codenet_top.h"

namespace {

bool read_file(const std::string &path, std::vector<uint8_t> &out) {
    std::ifstream f(path.c_str(), std::ios::binary);
    if (!f) {
        fprintf(stderr, "codenet_tb: cannot read %s\n", path.c_str());
        return false;
    }
    out.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    return true;
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR (program.bin weights.bin arena_in.bin arena_out.bin check.txt)\n",
                argv[0]);
        return 2;
    }
    const std::string dir = std::string(argv[1]) + "/";
    std::vector<uint8_t> prog_bytes, weights, arena_in, arena_out;
    if (!read_file(dir + "program.bin", prog_bytes) || !read_file(dir + "weights.bin", weights) ||
        !read_file(dir + "arena_in.bin", arena_in) || !read_file(dir + "arena_out.bin", arena_out))
        return 2;
    const size_t desc_bytes = 4 * DESC_WORDS;
    const size_t n_layers = prog_bytes.size() / desc_bytes;
    if (prog_bytes.size() % desc_bytes != 0 || n_layers < 1 || n_layers > (size_t)MAX_LAYERS) {
        fprintf(stderr, "codenet_tb: program.bin is %zu bytes: not 1..%d descriptors\n",
                prog_bytes.size(), MAX_LAYERS);
        return 2;
    }
    if (arena_in.size() != arena_out.size()) {
        fprintf(stderr, "codenet_tb: arena_in.bin (%zu bytes) and arena_out.bin (%zu) differ in size\n",
                arena_in.size(), arena_out.size());
        return 2;
    }

    std::vector<ap_uint<32> > program(n_layers * DESC_WORDS);
    for (size_t i = 0; i < program.size(); i++) {
        const uint8_t *p = &prog_bytes[4 * i];
        program[i] = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
                     ((uint32_t)p[3] << 24);
    }
    std::vector<codenet_host::beat_t> wts = codenet_host::to_beats(weights.data(), weights.size());
    std::vector<codenet_host::beat_t> beats = codenet_host::to_beats(arena_in.data(), arena_in.size());

    volatile ap_uint<64> timestamp = 0;   // the C-sim's clock is the engine's own (sample_clock)
    codenet_top(program.data(), wts.data(), beats.data(), beats.data(), ap_uint<32>((unsigned)n_layers), 0, &timestamp);
    std::vector<uint8_t> arena(arena_in.size());
    codenet_host::from_beats(beats, arena.data(), arena.size());

    std::ifstream check((dir + "check.txt").c_str());
    if (!check) {
        fprintf(stderr, "codenet_tb: cannot read %scheck.txt\n", dir.c_str());
        return 2;
    }
    std::string line;
    size_t ranges = 0, compared = 0, mismatches = 0;
    while (std::getline(check, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream ss(line);
        unsigned long long off = 0, len = 0;
        std::string name;
        if (!(ss >> off >> len)) {
            fprintf(stderr, "codenet_tb: bad check.txt line: %s\n", line.c_str());
            return 2;
        }
        ss >> name;
        if (off + len > arena.size()) {
            fprintf(stderr, "codenet_tb: check range %llu+%llu past the arena (%zu bytes)\n", off,
                    len, arena.size());
            return 2;
        }
        ranges++;
        for (unsigned long long i = off; i < off + len; i++) {
            const unsigned got = arena[i], want = arena_out[i];
            compared++;
            if (got != want && mismatches++ < 10)
                printf("mismatch %s at arena byte %llu (range offset %llu): got %u, expected %u\n",
                       name.c_str(), i, i - off, got, want);
        }
    }
    if (ranges == 0) {
        fprintf(stderr, "codenet_tb: check.txt lists no ranges\n");
        return 2;
    }
    if (mismatches) {
        printf("FAIL: %zu of %zu bytes differ (%zu layers, %zu ranges)\n", mismatches, compared,
               n_layers, ranges);
        return 1;
    }
    printf("PASS: %zu bytes in %zu ranges match (%zu layers)\n", compared, ranges, n_layers);
    return 0;
}
