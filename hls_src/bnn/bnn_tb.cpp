// C-simulation testbench of bnn_top (Vitis HLS csim_design, or g++ via
// runtime/engines/csim.py:compile_testbench).
//
// usage: bnn_tb <dir>   where <dir> holds golden vectors written by the numpy engine model:
//   params.bin : PARAM_WORDS little-endian uint64
//   images.bin : N * IN_H * IN_W * IN_C uint8 (N taken from the file size)
//   scores.bin : N * NUM_CLASSES little-endian int32 (expected)
// Runs bnn_top in mode 0 (LOAD), then mode 1 (CLASSIFY) on all N images, compares every score.
// Prints "PASS n/n" and returns 0, or the first mismatches and "FAIL k/n" and returns 1
// (2 for unreadable input).
#include <stdint.h>
#include <stdio.h>

#include <string>
#include <vector>

#include "bnn_config.h"
#include "bnn_top.h"

static bool read_file(const std::string &path, std::vector<unsigned char> &data) {
    FILE *f = fopen(path.c_str(), "rb");
    if (!f) return false;
    data.clear();
    unsigned char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof(buf), f)) > 0) data.insert(data.end(), buf, buf + got);
    fclose(f);
    return true;
}

static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static int32_t le32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return (int32_t)v;
}

int main(int argc, char **argv) {
    const std::string dir = argc > 1 ? argv[1] : ".";
    std::vector<unsigned char> pbytes, ibytes, sbytes;
    if (!read_file(dir + "/params.bin", pbytes) || !read_file(dir + "/images.bin", ibytes) ||
        !read_file(dir + "/scores.bin", sbytes)) {
        fprintf(stderr, "bnn_tb: cannot read params.bin / images.bin / scores.bin in %s\n", dir.c_str());
        return 2;
    }
    const size_t image_bytes = (size_t)IN_H * IN_W * IN_C;
    const size_t n = ibytes.size() / image_bytes;
    if (pbytes.size() != (size_t)PARAM_WORDS * 8 || n == 0 || ibytes.size() != n * image_bytes ||
        sbytes.size() != n * NUM_CLASSES * 4 || n > (size_t)MAX_BATCH) {
        fprintf(stderr, "bnn_tb: bad sizes: params %zu bytes (expected %d), images %zu, scores %zu\n",
                pbytes.size(), PARAM_WORDS * 8, ibytes.size(), sbytes.size());
        return 2;
    }
    std::vector<ap_uint<64> > params(PARAM_WORDS);
    for (int i = 0; i < PARAM_WORDS; i++) params[i] = le64(&pbytes[8 * (size_t)i]);
    std::vector<ap_uint<8> > images(ibytes.size());
    for (size_t i = 0; i < ibytes.size(); i++) images[i] = ibytes[i];
    std::vector<ap_int<32> > scores(n * NUM_CLASSES, 0);

    bnn_top(params.data(), images.data(), scores.data(), BNN_MODE_LOAD, 0);
    bnn_top(params.data(), images.data(), scores.data(), BNN_MODE_CLASSIFY, (unsigned)n);

    size_t good = 0, shown = 0;
    for (size_t i = 0; i < n; i++) {
        bool ok = true;
        for (int c = 0; c < NUM_CLASSES; c++) {
            const int32_t got = (int32_t)scores[i * NUM_CLASSES + c].to_int();
            const int32_t want = le32(&sbytes[4 * (i * NUM_CLASSES + c)]);
            if (got != want) {
                ok = false;
                if (shown < 10) {
                    printf("mismatch: image %zu class %d: got %d expected %d\n", i, c, got, want);
                    shown++;
                }
            }
        }
        good += ok ? 1 : 0;
    }
    if (good == n) {
        printf("PASS %zu/%zu\n", good, n);
        return 0;
    }
    printf("FAIL %zu/%zu images match\n", good, n);
    return 1;
}
