// BNN IP top function (contract: FORMAT.md, "IP interface").
#ifndef BNN_TOP_H
#define BNN_TOP_H

#include "pd_ap_types.h"

#include "bnn_config.h"

// mode 0 (LOAD): read PARAM_WORDS words from params into the on-chip memories (kept across starts).
// mode 1 (CLASSIFY): classify n_images (1 .. MAX_BATCH) images, write n_images * NUM_CLASSES scores.
constexpr unsigned BNN_MODE_LOAD = 0;
constexpr unsigned BNN_MODE_CLASSIFY = 1;

void bnn_top(const ap_uint<64> *params, const ap_uint<8> *images, ap_int<32> *scores,
             ap_uint<32> mode, ap_uint<32> n_images);

#endif  // BNN_TOP_H
