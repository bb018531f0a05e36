// CoDeNet engine configuration: the engine constants of FORMAT.md ("Engine constants") plus the
// descriptor layout and codes. runtime/engines/codenet_config.py mirrors these numbers (a test
// checks that they agree).
//
// Parsed by Python (same parser as bnn_config.h): keep every constant on one line of the form
// `constexpr int NAME = <integer or expression of earlier names>;` ('/' is C integer division).
//
// Modelled cycles (II = 1 loops, the phases of a layer run one after the other; the arena port is
// 8 bits wide, so every activation byte read or written costs one cycle):
//   every layer   : DESC_WORDS (descriptor) + cin * 2 (gather table) + cout * 10 (requant)
//                   + weight bytes (CONV1X1: cout * W_WORDS_PER_ROW * PA/2, DW3X3: cout * 5 or 9)
//   CONV1X1       : per output pixel  K (input bytes; K = cin, or 9 * cin for PATCH3X3)
//                                    + ceil(cout / PE) * (ceil(row_bytes / (PA/2)) + PE_DRAIN)
//                                    + cout (output bytes)
//                   row_bytes = ceil(K / 2) (4-bit) or K (8-bit): a 4-bit layer takes PA inputs
//                   per cycle, an 8-bit layer PA / 2.
//   DW3X3         : per channel tile of PE channels (ceil(cout / PE) tiles):
//                   rows_loaded * in_w * PE (line-buffer fill, every input row of the tile once)
//                   + out_h * out_w * (n + 1 if deformable else n), n = channels in the tile
//                   (the 9-tap x PE MACs take one cycle, the n output bytes n cycles).
#ifndef CODENET_CONFIG_H
#define CODENET_CONFIG_H

// ---- engine constants (FORMAT.md) ----
constexpr int PA = 16;                 // input channels per cycle (1x1, 4-bit weights)
constexpr int PE = 16;                 // output channels per cycle (1x1); dw: PE channels x 9 taps
constexpr int CLOCK_MHZ = 250;
constexpr int MAX_CH = 1024;           // channels of any layer input / output
constexpr int MAX_W = 256;
constexpr int MAX_H = 256;
constexpr int W_BUF_BYTES = 262144;    // on-chip 1x1 weight buffer (PA x PE tiles, see FORMAT.md)
constexpr int MAX_LAYERS = 512;
constexpr int ACC_BITS = 24;
constexpr int LINE_ROWS = 15;          // line buffer rows (dilation 0..7 each side)
constexpr int MAX_DIL = 7;

// ---- derived sizes of the on-chip buffers ----
constexpr int W_WORD_BYTES = PA / 2;                    // one weight word: PA 4-bit or PA/2 8-bit
constexpr int W_WORDS = W_BUF_BYTES / (PE * W_WORD_BYTES);  // words per PE lane (2048)
constexpr int MAX_K = 9 * MAX_CH;                       // 1x1 inputs per pixel (PATCH3X3: 9 * cin)
constexpr int CH_TILES = MAX_CH / PE;                   // PE-channel tiles of MAX_CH
constexpr int PE_DRAIN = 2;                             // modelled pipeline drain per output tile

// ---- descriptor ----
constexpr int DESC_WORDS = 32;
constexpr int D_OP = 0;
constexpr int D_IN_OFF = 1;
constexpr int D_IN_H = 2;
constexpr int D_IN_W = 3;
constexpr int D_IN_CS = 4;
constexpr int D_CIN = 5;
constexpr int D_IN_MODE = 6;
constexpr int D_STRIDE = 7;
constexpr int D_IN_ZP = 8;
constexpr int D_FLAGS = 9;
constexpr int D_OUT_OFF = 10;
constexpr int D_OUT_H = 11;
constexpr int D_OUT_W = 12;
constexpr int D_OUT_CS = 13;
constexpr int D_OUT_CHOFF = 14;
constexpr int D_COUT = 15;
constexpr int D_GATHER_OFF = 16;
constexpr int D_W_OFF = 17;
constexpr int D_Q_OFF = 18;
constexpr int D_CLAMP_LO = 19;
constexpr int D_CLAMP_HI = 20;
constexpr int D_DIL_OFF = 21;
constexpr int D_DIL_CS = 22;
constexpr int D_PAD = 23;
constexpr int D_RESERVED = 24;         // words 24..31 are reserved, 0

// ---- codes ----
constexpr int OP_CONV1X1 = 0;
constexpr int OP_DW3X3 = 1;
constexpr int MODE_DIRECT = 0;
constexpr int MODE_UPSAMPLE2 = 1;
constexpr int MODE_PATCH3X3 = 2;
constexpr int FLAG_IN_SIGNED = 1;
constexpr int FLAG_OUT_SIGNED = 2;
constexpr int FLAG_DEFORMABLE = 4;
constexpr int FLAG_SHIFT_ONLY = 8;
constexpr int FLAG_W8 = 16;
constexpr int FLAGS_ALL = 31;

// ---- weights blob ----
constexpr int SECTION_ALIGN = 8;
constexpr int RQ_RECORD_BYTES = 8;     // int32 bias, int16 M, uint8 S, int8 reserved
constexpr int MAX_SHIFT = 31;
constexpr int MAX_PAD = 2;

#endif  // CODENET_CONFIG_H
