/* models/zimage/zimage.h — the Z-Image DiT ("S3-DiT", specs/zimage.md §1).
 *
 * Shape letters used throughout this module:
 *   D   hidden size (3840)                 H   attention heads (30)      Dh  head dim (128)
 *   F   SwiGLU hidden size int(D/3·8)      A   adaLN input size min(D, 256)
 *   Cc  caption feature size (2560)        C   latent channels (16)      P   patch (2)
 *   Hl, Wl  latent height/width            Ht = Hl/P, Wt = Wl/P
 *   Ni  image tokens Ht·Wt, padded to Nip (multiple of 32)
 *   Lc  caption tokens, padded to Lcp (multiple of 32)
 *   N   unified sequence Nip + Lcp (image rows first, as in the official code)
 *
 * Loading binds every weight through the residency engine (one "globals" unit and one unit per
 * block in execution order), or directly to the mapped file when no engine is given (CPU runs on
 * host-visible memory and dry runs). The forward pass uses only backend/ops.h: activations come
 * from the context's arena, the residual stream is f32, everything else ctx->act. With bf16
 * activations some ops therefore mix dtypes (f32 residual in, ctx->act out for rms_norm and
 * layer_norm; ctx->act in, f32 residual out for matmul, gated_add and repeat_rows; f32 latent in
 * for patchify; ctx->act in, f32 out for the final scale), as backend.h allows. */
#ifndef SL_MODELS_ZIMAGE_H
#define SL_MODELS_ZIMAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/ops.h"
#include "io/wdir.h"
#include "residency/residency.h"

/* ---- configuration ---- */

typedef struct sl_zimage_config {
    int dim;          /* D */
    int n_heads;      /* H */
    int head_dim;     /* Dh = D / H = sum(axes_dims) */
    int n_layers;     /* main joint blocks (30) */
    int n_refiner;    /* noise_refiner and context_refiner blocks each (2) */
    int ffn_dim;      /* F = int(D / 3 * 8) */
    int adaln_dim;    /* A = min(D, 256) */
    int t_freq_dim;   /* sinusoid size (256) */
    int t_mid;        /* t_embedder hidden (1024, fixed in the reference code) */
    int cap_dim;      /* Cc */
    int in_ch;        /* C (16) */
    int patch;        /* P (2) */
    int seq_multi;    /* padding multiple (32) */
    float norm_eps;   /* every RMSNorm incl. qk-norm and the caption norm (1e-5) */
    float final_eps;  /* final LayerNorm without affine (1e-6) */
    float rope_theta; /* 256 */
    float t_scale;    /* 1000 */
    int axes_dims[3]; /* RoPE dims per axis (32, 48, 48) */
    int axes_lens[3]; /* reference table sizes (1536, 512, 512); positions must stay below them */
} sl_zimage_config;

/* Z-Image-Turbo as released (6,154,908,736 parameters). */
sl_zimage_config sl_zimage_config_full(void);
/* The tiny test config: every tensor name and the structure of the full model, with D = 384
 * (H = 3, Dh = 128, same RoPE axes), F = 1024, A = 256, Cc = 256 (the tiny Qwen3 hidden size),
 * 2 main layers and 2 + 2 refiners. Constructible as diffusers' ZImageTransformer2DModel(
 * dim=384, n_layers=2, n_refiner_layers=2, n_heads=3, n_kv_heads=3, cap_feat_dim=256,
 * axes_dims=[32,48,48], axes_lens=[1536,512,512]). D, F multiples of 32 (q8_0/q4_0 rows). */
sl_zimage_config sl_zimage_config_tiny(void);
/* Parameter count of a config (full: 6,154,908,736). */
long long sl_zimage_param_count(const sl_zimage_config *c);

/* ---- tensor names ---- */

typedef enum sl_zimage_layout {
    SL_ZIMAGE_OFFICIAL, /* diffusers / official: to_q/to_k/to_v, norm_q, to_out.0,
                           all_x_embedder.2-1 */
    SL_ZIMAGE_COMFY,    /* ComfyUI / sd.cpp: fused attention.qkv, q_norm, out, x_embedder */
} sl_zimage_layout;

/* Block kinds in execution order: noise_refiner.i, context_refiner.i, layers.i. */
typedef enum sl_zimage_block_kind {
    SL_ZIMAGE_NOISE_REFINER,
    SL_ZIMAGE_CONTEXT_REFINER,
    SL_ZIMAGE_LAYER,
} sl_zimage_block_kind;

/* "noise_refiner" / "context_refiner" / "layers". */
const char *sl_zimage_block_prefix(sl_zimage_block_kind k);

/* Weight roles. Block roles follow "<prefix>.<i>."; in the ComfyUI layout Q, K and V all name
 * the fused attention.qkv.weight (3D, D), whose rows [0,D), [D,2D), [2D,3D) are q, k, v. */
typedef enum sl_zimage_brole {
    SL_ZIMAGE_B_WQ,
    SL_ZIMAGE_B_WK,
    SL_ZIMAGE_B_WV,
    SL_ZIMAGE_B_WO,
    SL_ZIMAGE_B_QNORM,
    SL_ZIMAGE_B_KNORM,
    SL_ZIMAGE_B_ANORM1,
    SL_ZIMAGE_B_ANORM2,
    SL_ZIMAGE_B_FNORM1,
    SL_ZIMAGE_B_FNORM2,
    SL_ZIMAGE_B_W1,
    SL_ZIMAGE_B_W2,
    SL_ZIMAGE_B_W3,
    SL_ZIMAGE_B_ADA_W,
    SL_ZIMAGE_B_ADA_B, /* absent in context_refiner */
    SL_ZIMAGE_B_COUNT
} sl_zimage_brole;

typedef enum sl_zimage_grole {
    SL_ZIMAGE_G_X_W,
    SL_ZIMAGE_G_X_B,
    SL_ZIMAGE_G_CAP_NORM,
    SL_ZIMAGE_G_CAP_W,
    SL_ZIMAGE_G_CAP_B,
    SL_ZIMAGE_G_T_W0,
    SL_ZIMAGE_G_T_B0,
    SL_ZIMAGE_G_T_W2,
    SL_ZIMAGE_G_T_B2,
    SL_ZIMAGE_G_X_PAD,
    SL_ZIMAGE_G_CAP_PAD,
    SL_ZIMAGE_G_FADA_W,
    SL_ZIMAGE_G_FADA_B,
    SL_ZIMAGE_G_FIN_W,
    SL_ZIMAGE_G_FIN_B,
    SL_ZIMAGE_G_COUNT
} sl_zimage_grole;

/* Tensor names (without any prefix) into buf. */
void sl_zimage_block_name(sl_zimage_layout lay, sl_zimage_block_kind kind, int i,
                          sl_zimage_brole role, char *buf, size_t n);
void sl_zimage_global_name(sl_zimage_layout lay, const sl_zimage_config *c, sl_zimage_grole role,
                           char *buf, size_t n);
/* Expected shape of a role under a config (q/k/v: (D, D) each, i.e. one third of the fused qkv). */
void sl_zimage_block_shape(const sl_zimage_config *c, sl_zimage_brole role, int *ndim,
                           int64_t ne[2]);
void sl_zimage_global_shape(const sl_zimage_config *c, sl_zimage_grole role, int *ndim,
                            int64_t ne[2]);

/* ---- synthetic weights ---- */
/* sl_zimage_synth_list (declared in models/synth.h) lists every tensor of the given size and
 * layout. Init: Linear weights N(0, 1/fan_in) (adaLN linears half that, so that scales stay near
 * 1 through 34 blocks), norm weights N(1, 0.05²) (not exactly 1, so a swapped norm is visible),
 * biases N(0, 0.02²), pad tokens N(0, 0.5²). Row counts are multiples of 32 at both sizes. */

/* ---- the model ---- */

typedef struct sl_zimage_block {
    sl_zimage_block_kind kind;
    int index;                /* i in prefix.i */
    int unit;                 /* residency unit (-1 when bound directly) */
    bool modulated;           /* false for context_refiner */
    sl_tensor wq, wk, wv;     /* (D, D) each; rows of the fused (3D, D) qkv in the ComfyUI layout */
    sl_tensor wo;             /* (D, D) */
    sl_tensor q_norm, k_norm; /* (Dh) */
    sl_tensor attn_norm1, attn_norm2; /* (D) */
    sl_tensor ffn_norm1, ffn_norm2;   /* (D) */
    sl_tensor w1, w3;                 /* (F, D) gate, up */
    sl_tensor w2;                     /* (D, F) down */
    sl_tensor ada_w;                  /* (4D, A) modulated blocks only */
    sl_tensor ada_b;                  /* (4D) */
} sl_zimage_block;

typedef struct sl_zimage {
    sl_zimage_config cfg;
    sl_zimage_layout layout; /* detected from the names present */
    int unit_globals;        /* residency unit of the globals (-1 when bound directly) */
    /* globals */
    sl_tensor x_emb_w;     /* (D, P·P·C) */
    sl_tensor x_emb_b;     /* (D) */
    sl_tensor cap_norm;    /* (Cc) */
    sl_tensor cap_w;       /* (D, Cc) */
    sl_tensor cap_b;       /* (D) */
    sl_tensor t_w0;        /* (t_mid, t_freq_dim) */
    sl_tensor t_b0;        /* (t_mid) */
    sl_tensor t_w2;        /* (A, t_mid) */
    sl_tensor t_b2;        /* (A) */
    sl_tensor x_pad;       /* (1, D) */
    sl_tensor cap_pad;     /* (1, D) */
    sl_tensor final_ada_w; /* (D, A) */
    sl_tensor final_ada_b; /* (D) */
    sl_tensor final_w;     /* (P·P·C, D) */
    sl_tensor final_b;     /* (P·P·C) */
    /* blocks in execution order: n_refiner noise, n_refiner context, n_layers main */
    sl_zimage_block *blocks;
    int n_blocks;
    /* host scratch for RoPE tables (grown on demand, reused across passes) */
    float *host_tab;     /* [N, Dh] floats */
    int *host_pos;       /* [N, 3] positions */
    size_t host_tab_cap; /* floats in host_tab (host_pos holds 3·cap/Dh) */
} sl_zimage;

/* Build the model from a weight directory. The config (size) is derived from the tensor shapes
 * (D from the x embedder, Cc from the caption embedder, Dh from the qk-norm, F from w1, layer
 * counts from the names present) and every tensor is then checked against it.
 * res != NULL: declares unit "globals" then one unit per block in execution order
 * (noise_refiner.0.., context_refiner.0.., layers.0..), registers every weight (the ComfyUI
 * fused qkv as three row ranges, no copy) and sets per-unit cost estimates for 1024², 128 caption
 * tokens and `tflops` (≤ 0: 100 TFLOP/s). res == NULL: tensors point at the mapped file bytes
 * (valid until sl_wdir_free; usable on host-visible backends and for dry runs).
 * Errors: SL_ERR_NOT_FOUND naming the missing tensor and the file; SL_ERR_SHAPE with expected vs
 * found; SL_ERR_UNSUPPORTED for a dtype the ops cannot use in that role.
 * The model borrows `wd` and `res`; free with sl_zimage_free (which frees neither). */
sl_status sl_zimage_load(const sl_wdir *wd, sl_res *res, double tflops, sl_zimage **out,
                         sl_err *err);
void sl_zimage_free(sl_zimage *m); /* NULL is fine */

/* FLOPs of one use of block `b` (or the globals when b < 0) for one branch with the given shape
 * (matmuls 2·M·N·K, attention 4·N²·D). */
double sl_zimage_flops(const sl_zimage *m, int b, int Hl, int Wl, int Lc);
/* Set the residency cost of every unit: flops of n_branches branches at this shape / tflops. */
void sl_zimage_set_costs(const sl_zimage *m, sl_res *res, int Hl, int Wl, int Lc, int n_branches,
                         double tflops);

/* One DiT pass for 1 or 2 caption sets (2 = CFG: cond and uncond run inside the same
 * acquire/release of each block, so every weight is loaded once per pass).
 *   latent   f32 [C, Hl, Wl] (backend memory), Hl and Wl multiples of P
 *   t        the model time 1 − σ (the DiT multiplies it by t_scale itself)
 *   caps[i]  [Lc_i, Cc] f32 or ctx->act (backend memory), Lc_i ≥ 1
 *   vel[i]   f32 [C, Hl, Wl] (backend memory): the flow velocity v = −DiT(x) of branch i, so an
 *            Euler step is x += (σ_next − σ)·v (specs/zimage.md §1 step 11)
 * One call is one residency pass (sl_res_begin_pass … sl_res_end_pass inside). Not reentrant
 * for one model: the host RoPE scratch in m is reused (one pass at a time per model).
 * res: the component's engine, or NULL (weights bound directly, or a dry run on the measuring
 * backend). Arena use is stack-ordered and fully released before returning; the peak for a shape
 * is sl_zimage_arena_bytes. Returns the context's first failure (sticky errors, backend/ops.h). */
sl_status sl_zimage_forward(sl_zimage *m, sl_res *res, sl_ctx *ctx, const sl_tensor *latent,
                            float t, const sl_tensor *const *caps, int n_caps,
                            sl_tensor *const *vel, sl_err *err);

/* Arena bytes sl_zimage_forward needs (its exact peak) for this shape and activation dtype:
 * the closed form behind --vram-estimation formula. lc[i] for i < n_caps. */
size_t sl_zimage_arena_bytes(const sl_zimage_config *c, sl_dtype act, int Hl, int Wl, const int *lc,
                             int n_caps);

/* ---- pieces exposed for tests ---- */

/* Token positions (axis0, axis1, axis2) of the unified sequence of one branch: rows
 * [0, Nip) image (real tokens (Lcp+1, h, w), pad tokens (0,0,0)), rows [Nip, N) caption
 * ((j+1, 0, 0) for every padded index j). pos has 3·N ints. */
void sl_zimage_positions(const sl_zimage_config *c, int Ht, int Wt, int Lc, int *pos);
/* RoPE table f32 [N, Dh/2, 2] (cos, sin) for positions pos[3·N]: pair p of axis a with
 * j = p − (pairs of earlier axes) has ω = 1/θ^(2j/d_a) and angle pos_a·ω, both in float64; the
 * angle is rounded to f32 and its cos/sin taken (the reference's outer(...).float() + polar). */
void sl_zimage_rope_table(const sl_zimage_config *c, const int *pos, int n, float *tab);

#endif
