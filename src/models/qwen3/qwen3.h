/* models/qwen3/qwen3.h — Qwen3 decoder-only LLM used as a (truncated) text encoder
 * (specs/zimage.md §2).
 *
 * Z-Image conditions on Qwen3-4B's `hidden_states[-2]`: the raw residual stream after decoder
 * layer n_layers − 2 (index 34 of 36), with no final norm. Layers after the output layer and
 * `model.norm` are never registered, loaded or run.
 *
 * Shapes (row-major, outermost first):
 *   S   tokens of the prompt (real tokens only, positions 0 … S−1)
 *   D   hidden size (2560; 256 in the tiny config)
 *   Hq  query heads (32), Hkv key/value heads (8), Dh head dim (128), I SwiGLU width (9728)
 *   V   vocabulary rows of embed_tokens (151936; 4096 in the tiny config)
 *
 * Layer math (HF Qwen3): x += o_proj(attn(rope(qk_rmsnorm(q/k_proj(rms(x)))), v_proj(rms(x))));
 * x += down(silu(gate(u)) ⊙ up(u)), u = rms(x). RoPE is rotate-half with θ = rope_theta, causal
 * attention with GQA (query head h reads kv head h / (Hq/Hkv)), scale 1/sqrt(Dh).
 *
 * Tensor names: the HF checkpoint's (`model.embed_tokens.weight`, `model.layers.{i}.…`, also what
 * Comfy-Org's qwen_3_4b.safetensors uses; the weight directory tolerates a missing or different
 * prefix) or llama.cpp's GGUF names (`token_embd.weight`, `blk.{i}.attn_q.weight`, …; Qwen3 rows
 * are not permuted there), whose `qwen3.rope.freq_base` / `qwen3.attention.layer_norm_rms_epsilon`
 * metadata are honoured. Quantised GGUF weights stay quantised. The tokenizer is separate
 * (models/qwen3/tokenizer.h); this module only takes token ids.
 *
 * Tiny config (tests and reference fixtures): D 256, 4 layers (output after layer 2), Hq 4,
 * Hkv 2, Dh 64, I 768, V 4096. Token ids used with the tiny model must be < 4096. */
#ifndef SL_MODELS_QWEN3_QWEN3_H
#define SL_MODELS_QWEN3_QWEN3_H

#include <stdint.h>

#include "backend/ops.h"
#include "io/wdir.h"
#include "residency/residency.h"

typedef struct sl_qwen3_cfg {
    int64_t vocab;    /* V */
    int64_t hidden;   /* D */
    int n_layers;     /* decoder layers in the checkpoint (36) */
    int n_heads;      /* Hq */
    int n_kv_heads;   /* Hkv */
    int64_t head_dim; /* Dh */
    int64_t ffn;      /* I */
    float rms_eps;    /* 1e-6 */
    float rope_theta; /* 1e6 */
} sl_qwen3_cfg;

/* The released Qwen3-4B config and the tiny test config (both with 1e-6 / 1e6). */
sl_qwen3_cfg sl_qwen3_cfg_full(void);
sl_qwen3_cfg sl_qwen3_cfg_tiny(void);

typedef struct sl_qwen3_layer {
    sl_tensor attn_norm; /* (D)  input_layernorm */
    sl_tensor wq;        /* (Hq·Dh, D) */
    sl_tensor wk;        /* (Hkv·Dh, D) */
    sl_tensor wv;        /* (Hkv·Dh, D) */
    sl_tensor wo;        /* (D, Hq·Dh) */
    sl_tensor q_norm;    /* (Dh) */
    sl_tensor k_norm;    /* (Dh) */
    sl_tensor ffn_norm;  /* (D)  post_attention_layernorm */
    sl_tensor w_gate;    /* (I, D) */
    sl_tensor w_up;      /* (I, D) */
    sl_tensor w_down;    /* (D, I) */
    int unit;            /* residency unit of this layer */
} sl_qwen3_layer;

typedef struct sl_qwen3 {
    sl_qwen3_cfg cfg;
    int out_layer;   /* index of the layer whose output is returned (n_layers − 2) */
    sl_tensor embed; /* (V, D) */
    int unit_globals;
    sl_qwen3_layer *layers; /* out_layer + 1 entries (owned) */
    sl_res *res;            /* borrowed; NULL when loaded for shapes only */
} sl_qwen3;

typedef struct sl_qwen3_load_opts {
    int out_layer;    /* < 0: n_layers − 2 (HF hidden_states[-2], what Z-Image uses) */
    float rope_theta; /* <= 0: 1e6 */
    float rms_eps;    /* <= 0: 1e-6 */
    int est_tokens;   /* sequence length assumed for per-unit cost estimates (<= 0: 256) */
    double est_flops; /* device FLOP/s assumed for cost estimates (<= 0: 1e14) */
} sl_qwen3_load_opts;

/* Read the config from the tensors of `wd` (dimensions from shapes, layer count by probing
 * `model.layers.{i}`), then declare units on `res` — "globals" (embed_tokens) first, then one
 * unit per decoder layer 0 … out_layer in order — and register every weight. Every tensor's shape
 * is checked (SL_ERR_SHAPE names the tensor, its file, the expected and found shapes; a missing
 * tensor is SL_ERR_NOT_FOUND). res may be NULL: the model then only carries shapes (for dry runs
 * on the measuring backend). opts may be NULL. On success *out is owned by the caller
 * (sl_qwen3_free); wd and res must outlive it. */
sl_status sl_qwen3_load(const sl_wdir *wd, sl_res *res, const sl_qwen3_load_opts *opts,
                        sl_qwen3 **out, sl_err *err);
void sl_qwen3_free(sl_qwen3 *m); /* NULL is fine */

/* Run the encoder on host token ids[0 … n) (positions 0 … n−1) and write the output layer's
 * residual stream to `out`, an f32 [n, D] tensor in ctx's memory. Weights are acquired unit by
 * unit from m->res (begin_pass … end_pass); on a measuring context (ctx->base NULL) they are not
 * acquired, so a dry run needs only shapes. Ids outside [0, V) are SL_ERR_INVALID_ARG. The arena
 * is used above its current mark and reset to it on return. Errors: the context's first failure. */
sl_status sl_qwen3_forward(sl_qwen3 *m, sl_ctx *ctx, const int32_t *ids, int n, sl_tensor *out,
                           sl_err *err);

/* Convenience: allocate the output in the arena, run sl_qwen3_forward, download it to out_host
 * (n·D floats, caller's memory) and reset the arena. */
sl_status sl_qwen3_encode(sl_qwen3 *m, sl_ctx *ctx, const int32_t *ids, int n, float *out_host,
                          sl_err *err);

/* Arena bytes sl_qwen3_encode needs for n tokens with activations of dtype act (closed form; equal
 * to the peak a dry run measures). */
size_t sl_qwen3_arena_bytes(const sl_qwen3_cfg *cfg, int n, sl_dtype act);

/* FLOPs of one decoder layer over n tokens (matmuls and causal attention). */
double sl_qwen3_layer_flops(const sl_qwen3_cfg *cfg, int n);

/* Rotate-half RoPE table f32 [n, Dh/2, 2] of (cos, sin) for positions 0 … n−1, computed as HF
 * does in f32: inv_freq_j = 1 / theta^(2j/Dh), angle = pos · inv_freq_j. tab holds n·Dh floats. */
void sl_qwen3_rope_table(float *tab, int n, int64_t head_dim, float theta);

#endif
