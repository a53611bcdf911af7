/* The op parity harness: see ops_harness.h. */
#include "ops_harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/ops.h"
#include "core/quant.h"
#include "core/rng.h"
#include "test.h"

#define GUARD 256  /* canary bytes on each side of the output */
#define MAX_IN 6

/* ---- the case table ---- */

#define F32 SL_DTYPE_F32
#define BF16 SL_DTYPE_BF16
#define F16 SL_DTYPE_F16

/* clang-format off */
/* Positional rows; trailing fields (f, seed, tag) default to zero. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const sl_oh_case g_cases[] = {
    /* matmul: every weight dtype, odd sizes, several tiles, with and without bias */
    {SL_OH_MATMUL, F32, F32, {13, 67, 29}, {1}},
    {SL_OH_MATMUL, F32, F32, {300, 96, 200}, {0}},
    {SL_OH_MATMUL, BF16, F32, {13, 67, 29}, {1}},
    {SL_OH_MATMUL, F32, F16, {7, 67, 45}, {1}},
    {SL_OH_MATMUL, F16, F16, {7, 67, 45}, {0}},
    {SL_OH_MATMUL, F32, BF16, {9, 83, 131}, {1}},
    {SL_OH_MATMUL, BF16, BF16, {9, 83, 131}, {0}},
    {SL_OH_MATMUL, F32, SL_DTYPE_F8_E4M3, {5, 48, 33}, {1}},
    {SL_OH_MATMUL, BF16, SL_DTYPE_F8_E4M3, {5, 48, 33}, {0}},
    {SL_OH_MATMUL, F32, SL_DTYPE_F8_E5M2, {5, 48, 33}, {0}},
    {SL_OH_MATMUL, F32, SL_DTYPE_Q4_0, {5, 96, 37}, {1}},
    {SL_OH_MATMUL, BF16, SL_DTYPE_Q4_0, {5, 96, 37}, {0}},
    {SL_OH_MATMUL, F32, SL_DTYPE_Q4_1, {5, 96, 37}, {0}},
    {SL_OH_MATMUL, F32, SL_DTYPE_Q5_0, {5, 96, 37}, {1}},
    {SL_OH_MATMUL, F32, SL_DTYPE_Q5_1, {5, 96, 37}, {0}},
    {SL_OH_MATMUL, F32, SL_DTYPE_Q8_0, {5, 96, 37}, {1}},
    {SL_OH_MATMUL, BF16, SL_DTYPE_Q8_0, {5, 96, 37}, {1}},
    {SL_OH_MATMUL, F32, SL_DTYPE_Q2_K, {3, 512, 19}, {0}},
    {SL_OH_MATMUL, F32, SL_DTYPE_Q3_K, {3, 512, 19}, {1}},
    {SL_OH_MATMUL, F32, SL_DTYPE_Q4_K, {3, 512, 19}, {1}},
    {SL_OH_MATMUL, BF16, SL_DTYPE_Q4_K, {3, 512, 19}, {0}},
    {SL_OH_MATMUL, F32, SL_DTYPE_Q5_K, {3, 512, 19}, {0}},
    {SL_OH_MATMUL, F32, SL_DTYPE_Q6_K, {3, 512, 19}, {1}},
    {SL_OH_MATMUL, BF16, SL_DTYPE_Q6_K, {3, 512, 19}, {0}},
    {SL_OH_MATMUL, F32, F32, {1, 1, 1}, {1}},
    {SL_OH_MATMUL, F32, F32, {2, 5, 300}, {1}},
    /* real Z-Image shapes with small M */
    {SL_OH_MATMUL, BF16, BF16, {1, 256, 1024}, {1}, {0}, 0, "zimage t_embedder.mlp.0"},
    {SL_OH_MATMUL, F32, BF16, {6, 64, 3840}, {1}, {0}, 0, "zimage x_embedder"},
    {SL_OH_MATMUL, F32, BF16, {3, 3840, 3840}, {0}, {0}, 0, "zimage to_q"},
    {SL_OH_MATMUL, BF16, SL_DTYPE_Q8_0, {4, 3840, 320}, {0}, {0}, 0, "zimage to_out slice"},
    {SL_OH_MATMUL, F32, SL_DTYPE_Q4_K, {3, 3840, 256}, {0}, {0}, 0, "zimage w1 slice"},
    {SL_OH_MATMUL, F32, SL_DTYPE_F8_E4M3, {2, 3840, 64}, {1}, {0}, 0, "zimage final"},

    {SL_OH_BINARY, F32, F32, {7, 33}, {SL_BINARY_ADD, 0}},
    {SL_OH_BINARY, F32, F32, {7, 33}, {SL_BINARY_SUB, 1}},
    {SL_OH_BINARY, F32, F32, {7, 33}, {SL_BINARY_MUL, 2}},
    {SL_OH_BINARY, F32, F32, {5, 2049}, {SL_BINARY_MUL, 1}},
    {SL_OH_BINARY, BF16, F32, {7, 33}, {SL_BINARY_ADD, 1}},
    {SL_OH_BINARY, BF16, F32, {7, 33}, {SL_BINARY_SUB, 2}},
    {SL_OH_BINARY, BF16, F32, {7, 33}, {SL_BINARY_MUL, 0}},
    {SL_OH_BINARY, F16, F32, {3, 17}, {SL_BINARY_ADD, 0}},

    {SL_OH_SCALE, F32, F32, {5, 19}, {0}, {-1.5f, 0.25f}},
    {SL_OH_SCALE, BF16, F32, {5, 19}, {0}, {3.0f, -1.0f}},
    {SL_OH_SCALE, F32, F32, {40, 1000}, {0}, {0.5f, 0.0f}},

    {SL_OH_UNARY, F32, F32, {9, 21}, {SL_UNARY_SILU}},
    {SL_OH_UNARY, F32, F32, {9, 21}, {SL_UNARY_GELU_TANH}},
    {SL_OH_UNARY, F32, F32, {9, 21}, {SL_UNARY_GELU_ERF}},
    {SL_OH_UNARY, F32, F32, {9, 21}, {SL_UNARY_QUICK_GELU}},
    {SL_OH_UNARY, F32, F32, {9, 21}, {SL_UNARY_TANH}},
    {SL_OH_UNARY, F32, F32, {9, 21}, {SL_UNARY_RELU}},
    {SL_OH_UNARY, F32, F32, {9, 21}, {SL_UNARY_NEG}},
    {SL_OH_UNARY, F32, F32, {9, 21}, {SL_UNARY_EXP}},
    {SL_OH_UNARY, BF16, F32, {9, 21}, {SL_UNARY_SILU}},
    {SL_OH_UNARY, BF16, F32, {9, 21}, {SL_UNARY_GELU_TANH}},
    {SL_OH_UNARY, BF16, F32, {9, 21}, {SL_UNARY_EXP}},
    {SL_OH_UNARY, F16, F32, {9, 21}, {SL_UNARY_GELU_ERF}},
    {SL_OH_UNARY, F32, F32, {3, 5000}, {SL_UNARY_SILU}},

    {SL_OH_GLU, F32, F32, {6, 40}, {SL_UNARY_SILU}},
    {SL_OH_GLU, F32, F32, {6, 40}, {SL_UNARY_GELU_TANH}},
    {SL_OH_GLU, BF16, F32, {6, 40}, {SL_UNARY_SILU}},
    {SL_OH_GLU, BF16, F32, {2, 10240}, {SL_UNARY_SILU}, {0}, 0, "zimage ffn"},

    {SL_OH_RMS_NORM, F32, F32, {3, 3840}, {1, 1}, {1e-5f}, 0, "zimage attention_norm1 * scale"},
    {SL_OH_RMS_NORM, F32, F32, {5, 37}, {1, 0}, {1e-6f}},
    {SL_OH_RMS_NORM, F32, F32, {4, 128}, {0, 0}, {1e-5f}},
    {SL_OH_RMS_NORM, F32, F32, {4, 45}, {0, 1}, {1e-5f}},
    {SL_OH_RMS_NORM, BF16, F32, {3, 3840}, {1, 1}, {1e-5f}},
    {SL_OH_RMS_NORM, BF16, F32, {5, 37}, {1, 0}, {1e-6f}},
    {SL_OH_RMS_NORM, F16, F32, {5, 37}, {1, 1}, {1e-6f}},

    {SL_OH_LAYER_NORM, F32, F32, {3, 3840}, {0, 0, 1, 0}, {1e-6f}, 0, "zimage final norm"},
    {SL_OH_LAYER_NORM, F32, F32, {4, 50}, {1, 1, 1, 1}, {1e-5f}},
    {SL_OH_LAYER_NORM, F32, F32, {6, 33}, {1, 1, 0, 0}, {1e-5f}},
    {SL_OH_LAYER_NORM, F32, F32, {6, 33}, {0, 0, 0, 1}, {1e-6f}},
    {SL_OH_LAYER_NORM, BF16, F32, {4, 50}, {1, 1, 1, 1}, {1e-5f}},
    {SL_OH_LAYER_NORM, BF16, F32, {3, 3840}, {0, 0, 1, 0}, {1e-6f}},

    {SL_OH_GROUP_NORM, F32, F32, {64, 5, 7}, {32, 1, 1}, {1e-6f}},
    {SL_OH_GROUP_NORM, F32, F32, {64, 5, 7}, {32, 1, 0}, {1e-6f}},
    {SL_OH_GROUP_NORM, F32, F32, {6, 9, 4}, {3, 0, 0}, {1e-5f}},
    {SL_OH_GROUP_NORM, F32, F32, {6, 9, 4}, {1, 0, 1}, {1e-5f}},
    {SL_OH_GROUP_NORM, BF16, F32, {64, 5, 7}, {32, 1, 1}, {1e-6f}},
    {SL_OH_GROUP_NORM, F32, F32, {128, 16, 16}, {32, 1, 1}, {1e-6f}, 0, "flux vae"},

    /* rope: both modes, per-head norm, tokens with zero positions (pad tokens) */
    {SL_OH_ROPE, F32, F32, {9, 3, 16}, {SL_ROPE_INTERLEAVED, 1, 3, 4}, {1e-5f, 256.0f}},
    {SL_OH_ROPE, F32, F32, {9, 3, 16}, {SL_ROPE_HALF, 0, 1, 0}, {1e-6f, 1e6f}},
    {SL_OH_ROPE, F32, F32, {7, 2, 24}, {SL_ROPE_HALF, 1, 1, 3}, {1e-6f, 10000.0f}},
    {SL_OH_ROPE, F32, F32, {7, 2, 24}, {SL_ROPE_INTERLEAVED, 0, 1, 2}, {1e-6f, 10000.0f}},
    {SL_OH_ROPE, F32, F32, {11, 2, 128}, {SL_ROPE_INTERLEAVED, 1, 3, 5}, {1e-5f, 256.0f}, 0, "zimage q/k"},
    {SL_OH_ROPE, F32, F32, {6, 3, 128}, {SL_ROPE_HALF, 1, 1, 0}, {1e-6f, 1e6f}, 0, "qwen3 q/k"},
    {SL_OH_ROPE, BF16, F32, {11, 2, 128}, {SL_ROPE_INTERLEAVED, 1, 3, 5}, {1e-5f, 256.0f}},
    {SL_OH_ROPE, BF16, F32, {9, 3, 16}, {SL_ROPE_HALF, 1, 1, 4}, {1e-6f, 1e6f}},

    /* attention: non-causal, causal, GQA, Sq != Sk, 3-D and 4-D, several query blocks */
    {SL_OH_ATTENTION, F32, F32, {1, 70, 70, 2, 2, 32}, {0, 0}},
    {SL_OH_ATTENTION, F32, F32, {2, 37, 91, 4, 2, 16}, {0, 1}},
    {SL_OH_ATTENTION, F32, F32, {1, 130, 130, 4, 1, 24}, {1, 0}},
    {SL_OH_ATTENTION, F32, F32, {2, 65, 65, 6, 3, 8}, {1, 1}, {0.3f}},
    {SL_OH_ATTENTION, F32, F32, {1, 150, 150, 2, 2, 128}, {0, 0}, {0}, 0, "zimage sdpa"},
    {SL_OH_ATTENTION, F32, F32, {1, 1, 200, 4, 4, 64}, {0, 0}},
    {SL_OH_ATTENTION, BF16, F32, {1, 70, 70, 2, 2, 32}, {0, 0}},
    {SL_OH_ATTENTION, BF16, F32, {2, 37, 91, 4, 2, 16}, {0, 1}},
    {SL_OH_ATTENTION, BF16, F32, {1, 130, 130, 4, 1, 24}, {1, 0}},
    {SL_OH_ATTENTION, F16, F32, {1, 33, 47, 2, 1, 16}, {0, 0}},

    {SL_OH_SOFTMAX, F32, F32, {7, 300}, {0}, {4.0f}},
    {SL_OH_SOFTMAX, F32, F32, {3, 5}, {0}, {1.0f}},
    {SL_OH_SOFTMAX, BF16, F32, {7, 300}, {0}, {4.0f}},

    {SL_OH_GATED_ADD, F32, F32, {3, 3840}, {1, 1}, {1e-5f}, 0, "zimage sandwich"},
    {SL_OH_GATED_ADD, F32, F32, {5, 45}, {0, 1}, {1e-5f}},
    {SL_OH_GATED_ADD, F32, F32, {5, 45}, {1, 0}, {1e-5f}},
    {SL_OH_GATED_ADD, F32, F32, {5, 45}, {0, 0}, {1e-5f}},
    {SL_OH_GATED_ADD, BF16, F32, {3, 3840}, {1, 1}, {1e-5f}},

    /* conv2d: paddings incl. asymmetric, strides, 1×1, non-square kernels, weight dtypes */
    {SL_OH_CONV2D, F32, F32, {3, 9, 11, 5, 3, 3}, {1, 1, 1, 1, 1, 1}},
    {SL_OH_CONV2D, F32, F32, {4, 10, 7, 6, 3, 3}, {2, 0, 1, 0, 1, 1}},
    {SL_OH_CONV2D, F32, F32, {8, 5, 6, 3, 1, 1}, {1, 0, 0, 0, 0, 0}},
    {SL_OH_CONV2D, F32, F32, {3, 8, 9, 4, 3, 2}, {3, 2, 0, 1, 2, 1}},
    {SL_OH_CONV2D, F32, F32, {5, 7, 7, 2, 1, 1}, {2, 1, 0, 0, 1, 1}},
    {SL_OH_CONV2D, F32, BF16, {16, 12, 10, 32, 3, 3}, {1, 1, 1, 1, 1, 1}},
    {SL_OH_CONV2D, F32, F16, {3, 9, 11, 5, 3, 3}, {2, 1, 1, 1, 1, 1}},
    {SL_OH_CONV2D, BF16, BF16, {16, 12, 10, 32, 3, 3}, {1, 1, 1, 1, 1, 1}},
    {SL_OH_CONV2D, BF16, F32, {4, 10, 7, 6, 3, 3}, {2, 0, 1, 0, 1, 0}},
    {SL_OH_CONV2D, F32, F32, {128, 24, 24, 128, 3, 3}, {1, 1, 1, 1, 1, 1}, {0}, 0, "flux vae conv"},

    {SL_OH_UPSAMPLE, F32, F32, {3, 4, 5}, {2}},
    {SL_OH_UPSAMPLE, BF16, F32, {2, 3, 7}, {3}},
    {SL_OH_UPSAMPLE, F32, F32, {2, 3, 7}, {1}},

    {SL_OH_PATCHIFY, F32, F32, {16, 6, 8}, {2, SL_PATCH_PW_C}, {0}, 0, "zimage"},
    {SL_OH_PATCHIFY, F32, F32, {16, 6, 8}, {2, SL_PATCH_C_PW}, {0}, 0, "flux"},
    {SL_OH_PATCHIFY, BF16, F32, {3, 9, 6}, {3, SL_PATCH_PW_C}},
    {SL_OH_PATCHIFY, F32, F32, {3, 9, 6}, {3, SL_PATCH_C_PW}},
    {SL_OH_UNPATCHIFY, F32, F32, {16, 6, 8}, {2, SL_PATCH_PW_C}},
    {SL_OH_UNPATCHIFY, F32, F32, {16, 6, 8}, {2, SL_PATCH_C_PW}},
    {SL_OH_UNPATCHIFY, BF16, F32, {3, 9, 6}, {3, SL_PATCH_C_PW}},

    {SL_OH_PERMUTE, F32, F32, {3, 4, 5, 6}, {0, 2, 1, 3, 4}},
    {SL_OH_PERMUTE, F32, F32, {3, 4, 5, 6}, {3, 1, 0, 2, 4}},
    {SL_OH_PERMUTE, BF16, F32, {5, 7, 9}, {1, 0, 2, 0, 3}},
    {SL_OH_PERMUTE, F32, F32, {5, 7, 9}, {2, 0, 1, 0, 3}},
    {SL_OH_PERMUTE, BF16, F32, {13, 17}, {1, 0, 0, 0, 2}},
    {SL_OH_PERMUTE, F32, F32, {13, 17}, {0, 1, 0, 0, 2}},

    {SL_OH_CONCAT, F32, F32, {3, 4, 5}, {3, 0, 2}},
    {SL_OH_CONCAT, F32, F32, {3, 4, 5}, {3, 1, 7}},
    {SL_OH_CONCAT, BF16, F32, {3, 4, 5}, {3, 2, 1}},
    {SL_OH_CONCAT, F32, F32, {9, 33}, {2, 0, 4}, {0}, 0, "img ; cap"},
    {SL_OH_CONCAT, BF16, F32, {9, 33}, {2, 1, 31}},

    {SL_OH_SLICE, F32, F32, {6, 4, 5}, {3, 0, 2, 3}},
    {SL_OH_SLICE, F32, F32, {6, 4, 5}, {3, 1, 1, 2}},
    {SL_OH_SLICE, BF16, F32, {6, 4, 5}, {3, 2, 4, 1}},
    {SL_OH_SLICE, F32, F32, {3, 11520}, {2, 1, 3840, 3840}, {0}, 0, "zimage qkv → k"},

    {SL_OH_COPY, F32, F32, {3, 256}},
    {SL_OH_COPY, F32, BF16, {3, 256}},
    {SL_OH_COPY, BF16, F32, {3, 256}},
    {SL_OH_COPY, F16, F32, {3, 256}},
    {SL_OH_COPY, F32, F16, {3, 256}},
    {SL_OH_COPY, BF16, BF16, {3, 256}},
    {SL_OH_COPY, F32, SL_DTYPE_F8_E4M3, {3, 256}},
    {SL_OH_COPY, F32, SL_DTYPE_F8_E5M2, {3, 256}},
    {SL_OH_COPY, F32, SL_DTYPE_Q8_0, {3, 256}},
    {SL_OH_COPY, BF16, SL_DTYPE_Q4_K, {3, 256}},
    {SL_OH_COPY, F32, SL_DTYPE_Q3_K, {3, 256}},

    {SL_OH_GET_ROWS, F32, F32, {50, 64, 7}},
    {SL_OH_GET_ROWS, F32, BF16, {50, 64, 7}},
    {SL_OH_GET_ROWS, BF16, BF16, {50, 64, 7}},
    {SL_OH_GET_ROWS, F32, SL_DTYPE_Q8_0, {50, 64, 9}},
    {SL_OH_GET_ROWS, F32, SL_DTYPE_Q4_K, {20, 256, 5}},
    {SL_OH_GET_ROWS, BF16, SL_DTYPE_Q6_K, {20, 256, 5}},

    {SL_OH_REPEAT_ROWS, F32, F32, {5, 33}},
    {SL_OH_REPEAT_ROWS, F32, BF16, {5, 33}, {0}, {0}, 0, "x_pad_token"},
    {SL_OH_REPEAT_ROWS, BF16, F16, {4, 3840}},

    {SL_OH_TIMESTEP, F32, F32, {3, 256}, {1}, {1000.0f, 10000.0f}, 0, "zimage"},
    {SL_OH_TIMESTEP, F32, F32, {2, 64}, {0}, {1.0f, 10000.0f}},
    {SL_OH_TIMESTEP, F32, F32, {4, 258}, {1}, {1000.0f, 100.0f}},

    {SL_OH_FILL, F32, F32, {7, 9}, {0}, {3.25f}},
    {SL_OH_FILL, BF16, F32, {7, 9}, {0}, {-1.5f}},
    {SL_OH_FILL, F16, F32, {1, 1}, {0}, {0.0f}},
};
#pragma GCC diagnostic pop
/* clang-format on */

const sl_oh_case *sl_oh_cases(int *n) {
    *n = (int)SL_ARRAY_LEN(g_cases);
    return g_cases;
}

static const char *g_op_names[SL_OH_COUNT] = {
    "matmul",     "binary",     "scale",     "unary",    "glu",         "rms_norm",
    "layer_norm", "group_norm", "rope",      "attention", "softmax",    "gated_add",
    "conv2d",     "upsample",   "patchify",  "unpatchify", "permute",   "concat",
    "slice",      "copy",       "get_rows",  "repeat_rows", "timestep_embed", "fill",
};

const char *sl_oh_op_name(sl_oh_op op) {
    return (unsigned)op < SL_OH_COUNT ? g_op_names[op] : "?";
}

static bool op_has_wdt(sl_oh_op op) {
    return op == SL_OH_MATMUL || op == SL_OH_CONV2D || op == SL_OH_COPY ||
           op == SL_OH_GET_ROWS || op == SL_OH_REPEAT_ROWS;
}

const char *sl_oh_case_name(const sl_oh_case *c, char *buf, size_t n) {
    int k = snprintf(buf, n, "%s x=%s", sl_oh_op_name(c->op), sl_dtype_name(c->act));
    if (op_has_wdt(c->op) && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, " w=%s", sl_dtype_name(c->wdt));
    int nd = 6;
    while (nd > 1 && c->d[nd - 1] == 0) nd--;
    for (int i = 0; i < nd && k >= 0 && (size_t)k < n; i++)
        k += snprintf(buf + k, n - (size_t)k, "%s%lld", i ? "," : " d=[", (long long)c->d[i]);
    if (k >= 0 && (size_t)k < n) k += snprintf(buf + k, n - (size_t)k, "] i=[%d,%d,%d,%d,%d,%d]",
                                               c->i[0], c->i[1], c->i[2], c->i[3], c->i[4], c->i[5]);
    if (c->f[0] != 0 || c->f[1] != 0)
        if (k >= 0 && (size_t)k < n) k += snprintf(buf + k, n - (size_t)k, " f=[%g,%g]", c->f[0], c->f[1]);
    if (c->tag && k >= 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, " (%s)", c->tag);
    return buf;
}

bool sl_oh_case_supported(const sl_oh_case *c) {
    (void)c;
    return true; /* every dtype can be generated: quantisable types by sl_quant_row, the rest as
                    random blocks */
}

/* ---- tolerances ---- */

static bool is_exact_op(const sl_oh_case *c) {
    switch (c->op) {
    case SL_OH_UPSAMPLE:
    case SL_OH_PATCHIFY:
    case SL_OH_UNPATCHIFY:
    case SL_OH_PERMUTE:
    case SL_OH_CONCAT:
    case SL_OH_SLICE:
    case SL_OH_FILL:
        return true;
    case SL_OH_COPY:
    case SL_OH_GET_ROWS:
    case SL_OH_REPEAT_ROWS:
        return c->wdt == c->act; /* no conversion: bytes move unchanged */
    default:
        return false;
    }
}

static sl_dtype out_dtype(const sl_oh_case *c) {
    return c->op == SL_OH_TIMESTEP ? SL_DTYPE_F32 : c->act;
}

void sl_oh_tolerance(const sl_oh_case *c, double *tol_abs, double *tol_rel) {
    if (is_exact_op(c)) {
        *tol_abs = 0;
        *tol_rel = 0;
        return;
    }
    switch (out_dtype(c)) {
    case SL_DTYPE_BF16: /* one rounding to 8 significant bits (2^-9 relative) plus f32 work */
        *tol_abs = 1.6e-2;
        *tol_rel = 6e-3;
        break;
    case SL_DTYPE_F16:
        *tol_abs = 2e-3;
        *tol_rel = 1e-3;
        break;
    default: /* f32: the CPU backend stays below 1e-6; leave room for other summation orders */
        *tol_abs = 5e-5;
        *tol_rel = 1e-5;
        break;
    }
    if (c->op == SL_OH_TIMESTEP) { /* f32 arguments up to t·t_scale ≈ 1000: 6e-5 absolute */
        *tol_abs = 5e-4;
        *tol_rel = 3e-4;
    }
}

/* ---- host-side inputs ---- */

typedef struct oh_buf {
    sl_tensor t;  /* dtype and shape; data = the device address once carved */
    void *bytes;  /* encoded host bytes (sl_tensor_nbytes(&t)) */
    double *ref;  /* decoded values, numel(t) (NULL for i32 ids) */
    bool used;
} oh_buf;

typedef struct oh_prep {
    oh_buf in[MAX_IN];
    sl_tensor out;   /* output descriptor (gated_add: same as in[0]) */
    double *ref;     /* expected output, numel(out) */
    float *tvals;    /* timestep host values */
    int out_from_in; /* -1, or the input whose bytes initialise the output (gated_add) */
} oh_prep;

static uint64_t case_seed(const sl_oh_case *c) {
    if (c->seed) return c->seed;
    uint64_t h = 1469598103934665603ull;
    const uint64_t vals[] = {(uint64_t)c->op, (uint64_t)c->act, (uint64_t)c->wdt,
                             (uint64_t)c->d[0], (uint64_t)c->d[1], (uint64_t)c->d[2],
                             (uint64_t)c->d[3], (uint64_t)c->d[4], (uint64_t)c->d[5],
                             (uint64_t)c->i[0], (uint64_t)c->i[1], (uint64_t)c->i[2],
                             (uint64_t)c->i[3], (uint64_t)c->i[4], (uint64_t)c->i[5]};
    for (size_t i = 0; i < SL_ARRAY_LEN(vals); i++) h = (h ^ vals[i]) * 1099511628211ull;
    return h;
}

static void prep_free(oh_prep *p) {
    for (int i = 0; i < MAX_IN; i++) {
        free(p->in[i].bytes);
        free(p->in[i].ref);
    }
    free(p->ref);
    free(p->tvals);
    memset(p, 0, sizeof *p);
}

/* Byte offsets of the f16 scale fields (d, dmin) in a block, for random blocks. */
static void block_scale_fields(sl_dtype dt, int off[2], int *n) {
    *n = 0;
    switch (dt) {
    case SL_DTYPE_Q4_0: case SL_DTYPE_Q5_0: case SL_DTYPE_Q8_0: off[(*n)++] = 0; break;
    case SL_DTYPE_Q4_1: case SL_DTYPE_Q5_1: case SL_DTYPE_Q4_K: case SL_DTYPE_Q5_K:
        off[(*n)++] = 0;
        off[(*n)++] = 2;
        break;
    case SL_DTYPE_Q2_K: off[(*n)++] = 80; off[(*n)++] = 82; break;
    case SL_DTYPE_Q3_K: off[(*n)++] = 108; break;
    case SL_DTYPE_Q6_K: off[(*n)++] = 208; break;
    default: break;
    }
}

/* A tensor of dtype dt filled from N(0,1)·scale (quantised with sl_quant_row where possible;
 * otherwise, for block types, random bytes with small positive scales), decoded into ref. */
static bool gen(oh_buf *b, sl_dtype dt, int ndim, const int64_t *ne, uint64_t seed, uint64_t stream,
                float scale) {
    b->t = sl_tensor_make(dt, ndim, ne);
    b->used = true;
    int64_t n = sl_tensor_numel(&b->t), cols = sl_tensor_ncols(&b->t), rows = sl_tensor_nrows(&b->t);
    size_t nb = sl_tensor_nbytes(&b->t);
    b->bytes = malloc(nb ? nb : 1);
    b->ref = malloc((size_t)(n ? n : 1) * sizeof(double));
    float *f = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!b->bytes || !b->ref || !f) {
        free(f);
        return false;
    }
    sl_rng_normal(seed, stream, 0, f, n);
    for (int64_t i = 0; i < n; i++) f[i] *= scale;
    size_t rb = sl_dtype_row_bytes(dt, cols);
    if (sl_quant_supported(dt)) {
        for (int64_t r = 0; r < rows; r++)
            sl_quant_row(dt, f + r * cols, (char *)b->bytes + (size_t)r * rb, cols);
    } else { /* dequant-only block type: random quants, small positive scales */
        const sl_dtype_info *di = sl_dtype_get(dt);
        SL_ASSERT(di->is_quant);
        unsigned char *p = b->bytes;
        for (size_t i = 0; i < nb; i += 4) {
            uint32_t w[4];
            sl_philox(seed, stream + 1000, i / 16, w);
            memcpy(p + i, &w[(i / 4) % 4], SL_MIN((size_t)4, nb - i));
        }
        int off[2], nf;
        block_scale_fields(dt, off, &nf);
        size_t nblocks = nb / (size_t)di->bsize;
        for (size_t k = 0; k < nblocks; k++)
            for (int j = 0; j < nf; j++) {
                float u;
                sl_rng_uniform(seed, stream + 2000, k * 2 + (size_t)j, 0.002f, 0.02f, &u, 1);
                uint16_t h = sl_f32_to_f16(u * scale);
                memcpy(p + k * (size_t)di->bsize + (size_t)off[j], &h, 2);
            }
    }
    for (int64_t r = 0; r < rows; r++) {
        sl_dequant_row(dt, (const char *)b->bytes + (size_t)r * rb, f + r * cols, cols);
        for (int64_t i = 0; i < cols; i++) b->ref[r * cols + i] = f[r * cols + i];
    }
    free(f);
    return true;
}

#define GEN(k, dt, nd, scale, ...)                                                                 \
    gen(&p->in[k], (dt), (nd), (const int64_t[]){__VA_ARGS__}, seed, (uint64_t)(k) + 1, (scale))

static double silu_d(double v) { return v / (1.0 + exp(-v)); }

static double unary_d(int op, double v) {
    switch ((sl_unary_op)op) {
    case SL_UNARY_SILU: return silu_d(v);
    case SL_UNARY_GELU_TANH:
        return 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    case SL_UNARY_GELU_ERF: return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    case SL_UNARY_QUICK_GELU: return v / (1.0 + exp(-1.702 * v));
    case SL_UNARY_TANH: return tanh(v);
    case SL_UNARY_RELU: return v > 0 ? v : 0;
    case SL_UNARY_NEG: return -v;
    case SL_UNARY_EXP: return exp(v);
    }
    return NAN;
}

/* RMS-normalise v[0..D) with optional weight w (double). */
static void rms_d(double *v, int64_t D, const double *w, double eps) {
    double ss = 0;
    for (int64_t i = 0; i < D; i++) ss += v[i] * v[i];
    double r = 1.0 / sqrt(ss / (double)D + eps);
    for (int64_t i = 0; i < D; i++) v[i] = v[i] * r * (w ? w[i] : 1.0);
}

static const double *R(const oh_prep *p, int k) { return p->in[k].used ? p->in[k].ref : NULL; }

/* Build inputs, output descriptor and the double reference. */
static bool prepare(const sl_oh_case *c, oh_prep *p) {
    memset(p, 0, sizeof *p);
    p->out_from_in = -1;
    uint64_t seed = case_seed(c);
    const int64_t *d = c->d;
    sl_dtype A = c->act;
    bool ok = true;
    int64_t n_out;
#define NEWREF(t_)                                                                                 \
    do {                                                                                           \
        p->out = (t_);                                                                             \
        n_out = sl_tensor_numel(&p->out);                                                          \
        p->ref = calloc((size_t)(n_out ? n_out : 1), sizeof(double));                              \
        if (!p->ref) return false;                                                                 \
    } while (0)

    switch (c->op) {
    case SL_OH_MATMUL: {
        int64_t M = d[0], K = d[1], N = d[2];
        sl_dtype bdt = sl_dtype_get(c->wdt)->is_quant ? F32 : c->wdt;
        ok = GEN(0, A, 2, 1.0f, M, K) && GEN(1, c->wdt, 2, (float)(1.0 / sqrt((double)K)), N, K);
        if (ok && c->i[0]) ok = GEN(2, bdt, 1, 0.5f, N);
        if (!ok) return false;
        NEWREF(sl_tensor2(A, M, N));
        const double *x = R(p, 0), *w = R(p, 1), *b = R(p, 2);
        for (int64_t m = 0; m < M; m++)
            for (int64_t nn = 0; nn < N; nn++) {
                double s = b ? b[nn] : 0;
                for (int64_t k = 0; k < K; k++) s += x[m * K + k] * w[nn * K + k];
                p->ref[m * N + nn] = s;
            }
        break;
    }
    case SL_OH_BINARY: {
        int64_t r = d[0], cl = d[1];
        ok = GEN(0, A, 2, 1.0f, r, cl);
        if (ok && c->i[1] == 0) ok = GEN(1, A, 2, 1.0f, r, cl);
        if (ok && c->i[1] == 1) ok = GEN(1, A, 1, 1.0f, cl);
        if (ok && c->i[1] == 2) ok = GEN(1, A, 1, 1.0f, 1);
        if (!ok) return false;
        NEWREF(sl_tensor2(A, r, cl));
        const double *a = R(p, 0), *b = R(p, 1);
        for (int64_t i = 0; i < n_out; i++) {
            double bv = c->i[1] == 0 ? b[i] : c->i[1] == 1 ? b[i % cl] : b[0];
            p->ref[i] = c->i[0] == SL_BINARY_ADD ? a[i] + bv : c->i[0] == SL_BINARY_SUB ? a[i] - bv : a[i] * bv;
        }
        break;
    }
    case SL_OH_SCALE:
    case SL_OH_UNARY:
    case SL_OH_SOFTMAX: {
        float spread = c->op == SL_OH_SOFTMAX && c->f[0] != 0 ? c->f[0] : 1.0f;
        if (!GEN(0, A, 2, spread, d[0], d[1])) return false;
        NEWREF(sl_tensor2(A, d[0], d[1]));
        const double *x = R(p, 0);
        if (c->op == SL_OH_SCALE)
            for (int64_t i = 0; i < n_out; i++) p->ref[i] = x[i] * (double)c->f[0] + (double)c->f[1];
        else if (c->op == SL_OH_UNARY)
            for (int64_t i = 0; i < n_out; i++) p->ref[i] = unary_d(c->i[0], x[i]);
        else
            for (int64_t r = 0; r < d[0]; r++) {
                const double *xr = x + r * d[1];
                double mx = -INFINITY, s = 0;
                for (int64_t i = 0; i < d[1]; i++) mx = fmax(mx, xr[i]);
                for (int64_t i = 0; i < d[1]; i++) s += exp(xr[i] - mx);
                for (int64_t i = 0; i < d[1]; i++) p->ref[r * d[1] + i] = exp(xr[i] - mx) / s;
            }
        break;
    }
    case SL_OH_GLU: {
        if (!GEN(0, A, 2, 1.0f, d[0], d[1]) || !GEN(1, A, 2, 1.0f, d[0], d[1])) return false;
        NEWREF(sl_tensor2(A, d[0], d[1]));
        for (int64_t i = 0; i < n_out; i++) p->ref[i] = unary_d(c->i[0], R(p, 0)[i]) * R(p, 1)[i];
        break;
    }
    case SL_OH_RMS_NORM:
    case SL_OH_LAYER_NORM:
    case SL_OH_GATED_ADD: {
        int64_t rows = d[0], D = d[1];
        /* inputs: 0 x (gated_add: the residual), then optional vectors; gated_add's branch is 5 */
        ok = GEN(0, A, 2, c->op == SL_OH_LAYER_NORM ? 2.0f : 1.0f, rows, D);
        int nvec = c->op == SL_OH_LAYER_NORM ? 4 : 2;
        for (int k = 0; k < nvec && ok; k++)
            if (c->i[k]) ok = GEN(1 + k, A, 1, k == 0 ? 1.0f : 0.5f, D);
        if (ok && c->op == SL_OH_GATED_ADD) ok = GEN(5, A, 2, 3.0f, rows, D);
        if (!ok) return false;
        NEWREF(sl_tensor2(A, rows, D));
        double *v = malloc((size_t)D * sizeof(double));
        if (!v) return false;
        for (int64_t r = 0; r < rows; r++) {
            const double *x = R(p, 0) + r * D;
            double *o = p->ref + r * D;
            if (c->op == SL_OH_RMS_NORM) {
                memcpy(v, x, (size_t)D * sizeof(double));
                rms_d(v, D, R(p, 1), c->f[0]);
                for (int64_t i = 0; i < D; i++) o[i] = v[i] * (R(p, 2) ? R(p, 2)[i] : 1.0);
            } else if (c->op == SL_OH_LAYER_NORM) {
                double s = 0, ss = 0;
                for (int64_t i = 0; i < D; i++) s += x[i];
                double mean = s / (double)D;
                for (int64_t i = 0; i < D; i++) ss += (x[i] - mean) * (x[i] - mean);
                double rs = 1.0 / sqrt(ss / (double)D + (double)c->f[0]);
                for (int64_t i = 0; i < D; i++) {
                    double t = (x[i] - mean) * rs;
                    if (R(p, 1)) t *= R(p, 1)[i];
                    if (R(p, 2)) t += R(p, 2)[i];
                    if (R(p, 3)) t *= R(p, 3)[i];
                    if (R(p, 4)) t += R(p, 4)[i];
                    o[i] = t;
                }
            } else {
                memcpy(v, R(p, 5) + r * D, (size_t)D * sizeof(double));
                if (R(p, 1)) rms_d(v, D, R(p, 1), c->f[0]);
                for (int64_t i = 0; i < D; i++) o[i] = x[i] + (R(p, 2) ? R(p, 2)[i] : 1.0) * v[i];
            }
        }
        free(v);
        if (c->op == SL_OH_GATED_ADD) p->out_from_in = 0;
        break;
    }
    case SL_OH_GROUP_NORM: {
        int64_t C = d[0], H = d[1], W = d[2], G = c->i[0], S = H * W, cpg = C / G;
        ok = GEN(0, A, 3, 1.5f, C, H, W);
        if (ok && c->i[1]) ok = GEN(1, A, 1, 1.0f, C) && GEN(2, A, 1, 0.5f, C);
        if (!ok) return false;
        NEWREF(sl_tensor3(A, C, H, W));
        const double *x = R(p, 0);
        for (int64_t g = 0; g < G; g++) {
            int64_t n = cpg * S, base = g * n;
            double s = 0, ss = 0;
            for (int64_t i = 0; i < n; i++) s += x[base + i];
            double mean = s / (double)n;
            for (int64_t i = 0; i < n; i++) ss += (x[base + i] - mean) * (x[base + i] - mean);
            double rs = 1.0 / sqrt(ss / (double)n + (double)c->f[0]);
            for (int64_t i = 0; i < n; i++) {
                int64_t ch = g * cpg + i / S;
                double t = (x[base + i] - mean) * rs;
                if (R(p, 1)) t = t * R(p, 1)[ch] + R(p, 2)[ch];
                p->ref[base + i] = c->i[2] ? silu_d(t) : t;
            }
        }
        break;
    }
    case SL_OH_ROPE: {
        int64_t T = d[0], H = d[1], Dh = d[2], P = Dh / 2;
        ok = GEN(0, A, 3, 1.0f, T, H, Dh);
        if (ok && c->i[1]) ok = GEN(1, A, 1, 1.0f, Dh);
        if (!ok) return false;
        /* the (cos, sin) table, an f32 input built from integer positions */
        oh_buf *tb = &p->in[2];
        tb->t = sl_tensor3(F32, T, P, 2);
        tb->used = true;
        tb->bytes = malloc((size_t)(T * P * 2) * sizeof(float));
        tb->ref = malloc((size_t)(T * P * 2) * sizeof(double));
        if (!tb->bytes || !tb->ref) return false;
        int64_t na[3] = {P, 0, 0};
        if (c->i[2] == 3) {
            na[0] = P / 4;
            na[1] = (P - na[0]) / 2;
            na[2] = P - na[0] - na[1];
        }
        double theta = c->f[1] != 0 ? c->f[1] : 10000.0;
        for (int64_t t = 0; t < T; t++) {
            bool zero = c->i[3] && t % c->i[3] == c->i[3] - 1;
            double pos[3] = {(double)(t + 3), (double)(t % 3), (double)(t % 5)};
            int64_t pair = 0;
            for (int a = 0; a < 3; a++)
                for (int64_t j = 0; j < na[a]; j++, pair++) {
                    double om = pow(theta, -2.0 * (double)j / (double)(2 * na[a]));
                    double ang = zero ? 0.0 : pos[a] * om;
                    float cs = (float)cos(ang), sn = (float)sin(ang);
                    ((float *)tb->bytes)[(t * P + pair) * 2] = cs;
                    ((float *)tb->bytes)[(t * P + pair) * 2 + 1] = sn;
                    tb->ref[(t * P + pair) * 2] = cs;
                    tb->ref[(t * P + pair) * 2 + 1] = sn;
                }
        }
        NEWREF(sl_tensor3(A, T, H, Dh));
        double *v = malloc((size_t)Dh * sizeof(double));
        if (!v) return false;
        for (int64_t r = 0; r < T * H; r++) {
            int64_t t = r / H;
            memcpy(v, R(p, 0) + r * Dh, (size_t)Dh * sizeof(double));
            if (R(p, 1)) rms_d(v, Dh, R(p, 1), c->f[0]);
            const double *cs = tb->ref + t * P * 2;
            double *o = p->ref + r * Dh;
            for (int64_t q = 0; q < P; q++) {
                int64_t i0 = c->i[0] == SL_ROPE_INTERLEAVED ? 2 * q : q;
                int64_t i1 = c->i[0] == SL_ROPE_INTERLEAVED ? 2 * q + 1 : q + P;
                o[i0] = v[i0] * cs[2 * q] - v[i1] * cs[2 * q + 1];
                o[i1] = v[i0] * cs[2 * q + 1] + v[i1] * cs[2 * q];
            }
        }
        free(v);
        break;
    }
    case SL_OH_ATTENTION: {
        int64_t B = d[0], Sq = d[1], Sk = d[2], Hq = d[3], Hk = d[4], Dh = d[5];
        bool four = c->i[1];
        if (four)
            ok = GEN(0, A, 4, 1.0f, B, Sq, Hq, Dh) && GEN(1, A, 4, 1.0f, B, Sk, Hk, Dh) &&
                 GEN(2, A, 4, 1.0f, B, Sk, Hk, Dh);
        else
            ok = GEN(0, A, 3, 1.0f, Sq, Hq, Dh) && GEN(1, A, 3, 1.0f, Sk, Hk, Dh) &&
                 GEN(2, A, 3, 1.0f, Sk, Hk, Dh);
        if (!ok) return false;
        NEWREF(p->in[0].t);
        double sc = c->f[0] != 0 ? c->f[0] : 1.0 / sqrt((double)Dh);
        double *s = malloc((size_t)Sk * sizeof(double));
        if (!s) return false;
        const double *q = R(p, 0), *k = R(p, 1), *v = R(p, 2);
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < Hq; h++) {
                int64_t g = h / (Hq / Hk);
                for (int64_t i = 0; i < Sq; i++) {
                    const double *qi = q + ((b * Sq + i) * Hq + h) * Dh;
                    int64_t nk = c->i[0] ? i + 1 : Sk;
                    double mx = -INFINITY, sum = 0;
                    for (int64_t j = 0; j < nk; j++) {
                        const double *kj = k + ((b * Sk + j) * Hk + g) * Dh;
                        double dot = 0;
                        for (int64_t e = 0; e < Dh; e++) dot += qi[e] * kj[e];
                        s[j] = dot * sc;
                        mx = fmax(mx, s[j]);
                    }
                    for (int64_t j = 0; j < nk; j++) sum += (s[j] = exp(s[j] - mx));
                    double *o = p->ref + ((b * Sq + i) * Hq + h) * Dh;
                    for (int64_t e = 0; e < Dh; e++) {
                        double acc = 0;
                        for (int64_t j = 0; j < nk; j++) acc += s[j] * v[((b * Sk + j) * Hk + g) * Dh + e];
                        o[e] = acc / sum;
                    }
                }
            }
        free(s);
        break;
    }
    case SL_OH_CONV2D: {
        int64_t Ci = d[0], H = d[1], W = d[2], Co = d[3], kh = d[4], kw = d[5];
        int st = c->i[0];
        const int *pd = &c->i[1];
        int64_t Ho = (H + pd[0] + pd[1] - kh) / st + 1, Wo = (W + pd[2] + pd[3] - kw) / st + 1;
        ok = GEN(0, A, 3, 1.0f, Ci, H, W) &&
             GEN(1, c->wdt, 4, (float)(1.0 / sqrt((double)(Ci * kh * kw))), Co, Ci, kh, kw);
        if (ok && c->i[5]) ok = GEN(2, c->wdt, 1, 0.5f, Co);
        if (!ok) return false;
        NEWREF(sl_tensor3(A, Co, Ho, Wo));
        const double *x = R(p, 0), *w = R(p, 1), *bb = R(p, 2);
        for (int64_t co = 0; co < Co; co++)
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                    double s = bb ? bb[co] : 0;
                    for (int64_t ci = 0; ci < Ci; ci++)
                        for (int64_t dy = 0; dy < kh; dy++)
                            for (int64_t dx = 0; dx < kw; dx++) {
                                int64_t iy = oy * st - pd[0] + dy, ix = ox * st - pd[2] + dx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                s += x[(ci * H + iy) * W + ix] * w[((co * Ci + ci) * kh + dy) * kw + dx];
                            }
                    p->ref[(co * Ho + oy) * Wo + ox] = s;
                }
        break;
    }
    case SL_OH_UPSAMPLE: {
        int64_t C = d[0], H = d[1], W = d[2], f = c->i[0];
        if (!GEN(0, A, 3, 1.0f, C, H, W)) return false;
        NEWREF(sl_tensor3(A, C, H * f, W * f));
        for (int64_t ch = 0; ch < C; ch++)
            for (int64_t y = 0; y < H * f; y++)
                for (int64_t x = 0; x < W * f; x++)
                    p->ref[(ch * H * f + y) * W * f + x] = R(p, 0)[(ch * H + y / f) * W + x / f];
        break;
    }
    case SL_OH_PATCHIFY:
    case SL_OH_UNPATCHIFY: {
        int64_t C = d[0], H = d[1], W = d[2], pp = c->i[0], Wt = W / pp, T = (H / pp) * Wt, F = pp * pp * C;
        bool inv = c->op == SL_OH_UNPATCHIFY;
        ok = inv ? GEN(0, A, 2, 1.0f, T, F) : GEN(0, A, 3, 1.0f, C, H, W);
        if (!ok) return false;
        NEWREF(inv ? sl_tensor3(A, C, H, W) : sl_tensor2(A, T, F));
        for (int64_t t = 0; t < T; t++)
            for (int64_t ph = 0; ph < pp; ph++)
                for (int64_t pw = 0; pw < pp; pw++)
                    for (int64_t ch = 0; ch < C; ch++) {
                        int64_t f = c->i[1] == SL_PATCH_PW_C ? (ph * pp + pw) * C + ch : (ch * pp + ph) * pp + pw;
                        int64_t ii = (ch * H + (t / Wt) * pp + ph) * W + (t % Wt) * pp + pw;
                        if (inv)
                            p->ref[ii] = R(p, 0)[t * F + f];
                        else
                            p->ref[t * F + f] = R(p, 0)[ii];
                    }
        break;
    }
    case SL_OH_PERMUTE: {
        int nd = c->i[4];
        if (!gen(&p->in[0], A, nd, d, seed, 1, 1.0f)) return false;
        int64_t ne[4] = {1, 1, 1, 1}, xs[4] = {1, 1, 1, 1};
        for (int k = 0; k < nd; k++) ne[k] = d[c->i[k]];
        for (int k = nd - 2; k >= 0; k--) xs[k] = xs[k + 1] * d[k + 1];
        NEWREF(sl_tensor_make(A, nd, ne));
        for (int64_t i = 0; i < n_out; i++) {
            int64_t rem = i, src = 0; /* y index (row-major over ne) → x offset */
            for (int k = nd - 1; k >= 0; k--) {
                src += (rem % ne[k]) * xs[c->i[k]];
                rem /= ne[k];
            }
            p->ref[i] = R(p, 0)[src];
        }
        break;
    }
    case SL_OH_CONCAT: {
        int nd = c->i[0], dim = c->i[1];
        int64_t nb[4], ny[4];
        for (int k = 0; k < nd; k++) nb[k] = ny[k] = d[k];
        nb[dim] = c->i[2];
        ny[dim] = d[dim] + c->i[2];
        if (!gen(&p->in[0], A, nd, d, seed, 1, 1.0f) || !gen(&p->in[1], A, nd, nb, seed, 2, 1.0f)) return false;
        NEWREF(sl_tensor_make(A, nd, ny));
        int64_t outer = 1, inner = 1;
        for (int k = 0; k < dim; k++) outer *= d[k];
        for (int k = dim + 1; k < nd; k++) inner *= d[k];
        int64_t na = d[dim] * inner, nbb = nb[dim] * inner, at = 0;
        for (int64_t o = 0; o < outer; o++) {
            for (int64_t i = 0; i < na; i++) p->ref[at++] = R(p, 0)[o * na + i];
            for (int64_t i = 0; i < nbb; i++) p->ref[at++] = R(p, 1)[o * nbb + i];
        }
        break;
    }
    case SL_OH_SLICE: {
        int nd = c->i[0], dim = c->i[1];
        int64_t ny[4];
        for (int k = 0; k < nd; k++) ny[k] = d[k];
        ny[dim] = c->i[3];
        if (!gen(&p->in[0], A, nd, d, seed, 1, 1.0f)) return false;
        NEWREF(sl_tensor_make(A, nd, ny));
        int64_t outer = 1, inner = 1;
        for (int k = 0; k < dim; k++) outer *= d[k];
        for (int k = dim + 1; k < nd; k++) inner *= d[k];
        int64_t at = 0;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < ny[dim] * inner; i++)
                p->ref[at++] = R(p, 0)[(o * d[dim] + c->i[2]) * inner + i];
        break;
    }
    case SL_OH_COPY: {
        if (!GEN(0, c->wdt, 2, 1.0f, d[0], d[1])) return false;
        NEWREF(sl_tensor2(A, d[0], d[1]));
        memcpy(p->ref, R(p, 0), (size_t)n_out * sizeof(double));
        break;
    }
    case SL_OH_GET_ROWS: {
        int64_t V = d[0], D = d[1], n = d[2];
        if (!GEN(0, c->wdt, 2, 1.0f, V, D)) return false;
        oh_buf *ib = &p->in[1];
        ib->t = sl_tensor1(SL_DTYPE_I32, n);
        ib->used = true;
        ib->bytes = malloc((size_t)n * sizeof(int32_t));
        if (!ib->bytes) return false;
        for (int64_t i = 0; i < n; i++) {
            uint32_t w[4];
            sl_philox(seed, 77, (uint64_t)i, w);
            ((int32_t *)ib->bytes)[i] = i == 0 ? (int32_t)(V - 1) : (int32_t)(w[0] % (uint32_t)V);
        }
        NEWREF(sl_tensor2(A, n, D));
        for (int64_t i = 0; i < n; i++)
            memcpy(p->ref + i * D, R(p, 0) + ((int32_t *)ib->bytes)[i] * D, (size_t)D * sizeof(double));
        break;
    }
    case SL_OH_REPEAT_ROWS: {
        if (!GEN(0, c->wdt, 1, 1.0f, d[1])) return false;
        NEWREF(sl_tensor2(A, d[0], d[1]));
        for (int64_t i = 0; i < n_out; i++) p->ref[i] = R(p, 0)[i % d[1]];
        break;
    }
    case SL_OH_TIMESTEP: {
        int64_t n = d[0], dim = d[1], half = dim / 2;
        p->tvals = malloc((size_t)n * sizeof(float));
        if (!p->tvals) return false;
        sl_rng_uniform(seed, 5, 0, 0.0f, 1.0f, p->tvals, n);
        p->tvals[0] = 1.0f;
        NEWREF(sl_tensor2(F32, n, dim));
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < half; k++) {
                double a = (double)p->tvals[i] * (double)c->f[0] *
                           exp(-log((double)c->f[1]) * (double)k / (double)half);
                p->ref[i * dim + (c->i[0] ? k : half + k)] = cos(a);
                p->ref[i * dim + (c->i[0] ? half + k : k)] = sin(a);
            }
        break;
    }
    case SL_OH_FILL: {
        NEWREF(sl_tensor2(A, d[0], d[1]));
        for (int64_t i = 0; i < n_out; i++) p->ref[i] = c->f[0];
        break;
    }
    default:
        return false;
    }
#undef NEWREF
    (void)n_out;
    return true;
}

/* ---- running ---- */

static const sl_tensor *T(oh_prep *p, int k) { return p->in[k].used ? &p->in[k].t : NULL; }

static void run_op(sl_ctx *cx, const sl_oh_case *c, oh_prep *p, sl_tensor *out) {
    switch (c->op) {
    case SL_OH_MATMUL: sl_op_matmul(cx, out, T(p, 0), T(p, 1), T(p, 2)); break;
    case SL_OH_BINARY: sl_op_binary(cx, (sl_binary_op)c->i[0], out, T(p, 0), T(p, 1)); break;
    case SL_OH_SCALE: sl_op_scale(cx, out, T(p, 0), c->f[0], c->f[1]); break;
    case SL_OH_UNARY: sl_op_unary(cx, (sl_unary_op)c->i[0], out, T(p, 0)); break;
    case SL_OH_GLU: sl_op_glu(cx, (sl_unary_op)c->i[0], out, T(p, 0), T(p, 1)); break;
    case SL_OH_RMS_NORM: sl_op_rms_norm(cx, out, T(p, 0), T(p, 1), T(p, 2), c->f[0]); break;
    case SL_OH_LAYER_NORM:
        sl_op_layer_norm(cx, out, T(p, 0), T(p, 1), T(p, 2), T(p, 3), T(p, 4), c->f[0]);
        break;
    case SL_OH_GROUP_NORM:
        sl_op_group_norm(cx, out, T(p, 0), c->i[0], T(p, 1), T(p, 2), c->f[0], c->i[2]);
        break;
    case SL_OH_ROPE:
        sl_op_rope(cx, out, T(p, 0), T(p, 1), c->f[0], T(p, 2), (sl_rope_mode)c->i[0]);
        break;
    case SL_OH_ATTENTION: {
        float sc = c->f[0] != 0 ? c->f[0] : (float)(1.0 / sqrt((double)c->d[5]));
        sl_op_attention(cx, out, T(p, 0), T(p, 1), T(p, 2), sc, c->i[0]);
        break;
    }
    case SL_OH_SOFTMAX: sl_op_softmax(cx, out, T(p, 0)); break;
    case SL_OH_GATED_ADD: sl_op_gated_add(cx, out, T(p, 5), T(p, 1), T(p, 2), c->f[0]); break;
    case SL_OH_CONV2D: sl_op_conv2d(cx, out, T(p, 0), T(p, 1), T(p, 2), c->i[0], &c->i[1]); break;
    case SL_OH_UPSAMPLE: sl_op_upsample_nearest(cx, out, T(p, 0), c->i[0]); break;
    case SL_OH_PATCHIFY:
        sl_op_patchify(cx, out, T(p, 0), c->i[0], (sl_patch_order)c->i[1]);
        break;
    case SL_OH_UNPATCHIFY:
        sl_op_unpatchify(cx, out, T(p, 0), c->i[0], (sl_patch_order)c->i[1]);
        break;
    case SL_OH_PERMUTE: sl_op_permute(cx, out, T(p, 0), c->i); break;
    case SL_OH_CONCAT: sl_op_concat(cx, out, T(p, 0), T(p, 1), c->i[1]); break;
    case SL_OH_SLICE: sl_op_slice(cx, out, T(p, 0), c->i[1], c->i[2]); break;
    case SL_OH_COPY: sl_op_copy(cx, out, T(p, 0)); break;
    case SL_OH_GET_ROWS: sl_op_get_rows(cx, out, T(p, 0), T(p, 1)); break;
    case SL_OH_REPEAT_ROWS: sl_op_repeat_rows(cx, out, T(p, 0)); break;
    case SL_OH_TIMESTEP:
        sl_op_timestep_embed(cx, out, p->tvals, (int)c->d[0], c->f[0], c->f[1], c->i[0]);
        break;
    case SL_OH_FILL: sl_op_fill(cx, out, c->f[0]); break;
    default: sl_ctx_fail(cx, SL_ERR_INVALID_ARG, "unknown harness op %d", (int)c->op); break;
    }
}

static double decode1(sl_dtype dt, const void *p, int64_t i) {
    switch (dt) {
    case SL_DTYPE_F32: return ((const float *)p)[i];
    case SL_DTYPE_BF16: return sl_bf16_to_f32(((const uint16_t *)p)[i]);
    case SL_DTYPE_F16: return sl_f16_to_f32(((const uint16_t *)p)[i]);
    default: return NAN;
    }
}

static unsigned char canary(size_t i) { return (unsigned char)(0x5a ^ (i * 131u)); }

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

sl_status sl_oh_run(sl_backend *be, const sl_oh_case *c, double tol_scale, sl_oh_result *r,
                    sl_err *err) {
    memset(r, 0, sizeof *r);
    sl_oh_case_name(c, r->name, sizeof r->name);
    oh_prep p;
    if (!prepare(c, &p)) {
        prep_free(&p);
        return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of host memory preparing inputs", r->name);
    }
    size_t out_b = sl_tensor_nbytes(&p.out), region_b = GUARD + SL_ALIGN_UP(out_b, (size_t)GUARD) + GUARD;
    size_t cap = region_b + SL_ARENA_ALIGN;
    for (int k = 0; k < MAX_IN; k++)
        if (p.in[k].used) cap += SL_ALIGN_UP(sl_tensor_nbytes(&p.in[k].t), (size_t)SL_ARENA_ALIGN) + SL_ARENA_ALIGN;
    void *arena = NULL;
    unsigned char *host = malloc(region_b);
    sl_status st = host ? be->vt->alloc(be, cap, &arena, err) : SL_ERR_OOM_HOST;
    if (st != SL_OK) {
        if (!host) sl_err_set(err, st, "%s: out of host memory", r->name);
        free(host);
        prep_free(&p);
        return st;
    }
    sl_ctx cx;
    sl_ctx_init(&cx, be, arena, cap);
    sl_tensor region = sl_new1(&cx, SL_DTYPE_U8, (int64_t)region_b);
    sl_tensor out = p.out;
    out.data = (char *)region.data + GUARD;
    for (size_t i = 0; i < region_b; i++) host[i] = canary(i);
    if (p.out_from_in >= 0)
        memcpy(host + GUARD, p.in[p.out_from_in].bytes, out_b);
    else
        memset(host + GUARD, 0xff, out_b); /* NaN in every float type: unwritten output shows */
    for (int k = 0; k < MAX_IN; k++) {
        if (!p.in[k].used) continue;
        sl_tensor t = sl_new(&cx, p.in[k].t.dtype, p.in[k].t.ndim, p.in[k].t.ne);
        p.in[k].t.data = t.data;
        sl_upload(&cx, &p.in[k].t, p.in[k].bytes);
    }
    sl_upload(&cx, &region, host);
    if (p.out_from_in >= 0) p.in[p.out_from_in].t.data = out.data; /* in-place: x is the output */
    double t0 = now_ms();
    run_op(&cx, c, &p, &out);
    sl_download(&cx, host, &region);
    r->ms = now_ms() - t0;
    st = sl_ctx_take_error(&cx, err);
    be->vt->free(be, arena);
    if (st != SL_OK) {
        sl_err_prefix(err, "%s: ", r->name);
        free(host);
        prep_free(&p);
        return st;
    }
    r->canary_ok = true;
    for (size_t i = 0; i < GUARD; i++) r->canary_ok &= host[i] == canary(i);
    for (size_t i = GUARD + out_b; i < region_b; i++) r->canary_ok &= host[i] == canary(i);
    r->n = sl_tensor_numel(&out);
    double se = 0, sr = 0;
    for (int64_t i = 0; i < r->n; i++) {
        double o = decode1(out.dtype, host + GUARD, i), e = p.ref[i];
        if (!isfinite(o) && isfinite(e)) {
            r->n_nonfinite++;
            continue;
        }
        double df = fabs(o - e);
        r->max_abs = fmax(r->max_abs, df);
        r->ref_max = fmax(r->ref_max, fabs(e));
        se += df * df;
        sr += e * e;
    }
    r->rel_l2 = sr > 0 ? sqrt(se / sr) : sqrt(se);
    double ta, tr;
    sl_oh_tolerance(c, &ta, &tr);
    r->tol_abs = ta * tol_scale * fmax(1.0, r->ref_max);
    r->tol_rel = tr * tol_scale;
    r->pass = r->canary_ok && r->n_nonfinite == 0 && r->max_abs <= r->tol_abs && r->rel_l2 <= r->tol_rel;
    free(host);
    prep_free(&p);
    return SL_OK;
}

sl_status sl_oh_run_dry(sl_backend *be, const sl_oh_case *c, sl_err *err) {
    oh_prep p;
    char name[192];
    sl_oh_case_name(c, name, sizeof name);
    if (!prepare(c, &p)) {
        prep_free(&p);
        return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of host memory preparing inputs", name);
    }
    sl_ctx cx;
    sl_ctx_init(&cx, be, NULL, 0);
    sl_tensor out = sl_new(&cx, p.out.dtype, p.out.ndim, p.out.ne);
    for (int k = 0; k < MAX_IN; k++) {
        if (!p.in[k].used) continue;
        sl_tensor t = sl_new(&cx, p.in[k].t.dtype, p.in[k].t.ndim, p.in[k].t.ne);
        p.in[k].t.data = t.data;
        sl_upload(&cx, &p.in[k].t, p.in[k].bytes);
    }
    if (p.out_from_in >= 0) p.in[p.out_from_in].t.data = out.data;
    run_op(&cx, c, &p, &out);
    void *host = malloc(sl_tensor_nbytes(&out) + 1);
    if (host) sl_download(&cx, host, &out);
    free(host);
    sl_status st = sl_ctx_take_error(&cx, err);
    if (st != SL_OK) sl_err_prefix(err, "%s: ", name);
    prep_free(&p);
    return st;
}

int sl_oh_check(sl_backend *be, const sl_oh_case *c, double tol_scale) {
    char name[192];
    if (!sl_oh_case_supported(c)) return -1;
    sl_oh_result r;
    sl_err err = {0};
    sl_status st = sl_oh_run(be, c, tol_scale, &r, &err);
    if (st == SL_ERR_UNSUPPORTED) return -1;
    if (st != SL_OK) {
        sl_test_fail(__FILE__, __LINE__, "%s on %s: %s", sl_oh_case_name(c, name, sizeof name),
                     be->info.name, err.msg);
        return 0;
    }
    if (getenv("SLUICE_OH_VERBOSE"))
        fprintf(stderr, "    %-4s %-72s rel_l2 %.2e/%.0e max_abs %.2e/%.1e %.2f ms\n",
                r.pass ? "ok" : "BAD", r.name, r.rel_l2, r.tol_rel, r.max_abs, r.tol_abs, r.ms);
    if (!r.pass) {
        sl_test_fail(__FILE__, __LINE__,
                     "%s on %s: max_abs %.3g (tol %.3g, max|ref| %.3g), rel_l2 %.3g (tol %.3g), "
                     "%lld non-finite of %lld, guards %s",
                     r.name, be->info.name, r.max_abs, r.tol_abs, r.ref_max, r.rel_l2, r.tol_rel,
                     (long long)r.n_nonfinite, (long long)r.n, r.canary_ok ? "intact" : "OVERWRITTEN");
        return 0;
    }
    return 1;
}

void sl_oh_check_table(sl_backend *be, sl_oh_op op, const char *filter, double tol_scale,
                       int *n_pass, int *n_fail, int *n_skip) {
    int n, np = 0, nf = 0, ns = 0;
    const sl_oh_case *cs = sl_oh_cases(&n);
    char name[192];
    for (int i = 0; i < n; i++) {
        if (op != SL_OH_COUNT && cs[i].op != op) continue;
        if (filter && !strstr(sl_oh_case_name(&cs[i], name, sizeof name), filter)) continue;
        int k = sl_oh_check(be, &cs[i], tol_scale);
        if (k > 0) np++;
        else if (k == 0) nf++;
        else ns++;
    }
    if (n_pass) *n_pass = np;
    if (n_fail) *n_fail = nf;
    if (n_skip) *n_skip = ns;
}
