/* models/flux_vae/flux_vae.h — the FLUX.1 16-channel AutoencoderKL (specs/zimage.md §3), used by
 * Z-Image and FLUX.1: decoder (latent → image) and encoder (image → latent mean, for img2img).
 *
 * Shapes (row-major, outermost first; one image, batches are looped by the caller):
 *   latent   f32 [Z, h, w]        Z = 16 latent channels, in the DiT's normalised space
 *   image    f32 [3, 8h, 8w]      RGB in [−1, 1] (not clamped)
 *   inside   act [C, H, W]        activations in ctx->act (f32 on CPU, bf16 on CUDA)
 *
 * Decode: z = latent / 0.3611 + 0.1159 → conv_in → mid (resnet, single-head attention with
 * biases, resnet) → up levels (layers_per_block + 1 resnets each, nearest ×2 + 3×3 conv except
 * the last) → GroupNorm + SiLU → conv_out. Encode: conv_in → down levels (layers_per_block resnets,
 * then a stride-2 3×3 conv on the input padded by one row/column at the bottom/right, except the
 * last) → mid → GroupNorm + SiLU → conv_out (2Z moments) → mean = first Z channels →
 * (mean − 0.1159)·0.3611. GroupNorm: 32 groups, eps 1e-6. Resnets add a 1×1 conv shortcut when
 * their channel count changes.
 *
 * Both naming layouts load: diffusers (`decoder.up_blocks.{k}.resnets.{r}`, `mid_block.attentions.0
 * .to_q`, …) and the original LDM/BFL `ae.safetensors` (`decoder.up.{3−k}.block.{r}`,
 * `mid.attn_1.q` stored as 1×1 convs [C, C, 1, 1], `nin_shortcut`, `norm_out`, …). Decoder level k
 * below is always diffusers' up_blocks.k (k = 0 is the lowest resolution).
 *
 * Precision: activations use ctx->act (the official Z-Image code runs the VAE in f32; a pipeline
 * that wants that on a bf16 backend sets ctx->act = SL_DTYPE_F32 for the VAE stage). Norms,
 * softmax and the latent (de)normalisation are f32 in every case. The mid attention is one head
 * of dim C (512 in the full model) over h·w positions (16384 at 1024²), via sl_op_attention.
 *
 * Memory: each forward carves three equal "pool" buffers of the largest activation from the arena
 * and ping-pongs through them (no op runs in place), plus small extras; sl_fluxvae_*_arena_bytes
 * give the exact arena bytes by formula, equal to what a dry run on the measuring backend records.
 * When the arena cannot hold a whole decode, sl_fluxvae_decode_host decodes overlapping latent
 * tiles and blends them with linear ramps (GroupNorm statistics and attention become per-tile, so
 * the result is close to, not equal to, the untiled one). Only decoding is tiled. */
#ifndef SL_MODELS_FLUX_VAE_FLUX_VAE_H
#define SL_MODELS_FLUX_VAE_FLUX_VAE_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/ops.h"
#include "io/wdir.h"
#include "residency/residency.h"

#define SL_FLUXVAE_MAX_LEVELS 6
#define SL_FLUXVAE_MAX_RES    4 /* resnets per level */

typedef struct sl_fluxvae_cfg {
    int in_ch;                         /* image channels (3) */
    int z_ch;                          /* latent channels Z (16) */
    int n_levels;                      /* len(block_out_channels) (4) */
    int64_t ch[SL_FLUXVAE_MAX_LEVELS]; /* block_out_channels ([128, 256, 512, 512]) */
    int layers_per_block;              /* 2: encoder levels have 2 resnets, decoder levels 3 */
    int groups;                        /* GroupNorm groups (32) */
    float eps;                         /* GroupNorm eps (1e-6) */
    float scale, shift;                /* latent normalisation (0.3611, 0.1159) */
} sl_fluxvae_cfg;

/* The FLUX.1 VAE, and the tiny test config: block_out_channels [32, 64, 128, 128] (every channel
 * change, shortcut and name of the full model is present), layers_per_block 2, Z 16, 32 groups. */
sl_fluxvae_cfg sl_fluxvae_cfg_full(void);
sl_fluxvae_cfg sl_fluxvae_cfg_tiny(void);

typedef enum sl_fluxvae_layout {
    SL_FLUXVAE_DIFFUSERS, /* diffusers AutoencoderKL names ("official") */
    SL_FLUXVAE_LDM,       /* original LDM / BFL ae.safetensors / ComfyUI names ("comfy") */
} sl_fluxvae_layout;

typedef struct sl_fluxvae_resnet {
    int64_t cin, cout;
    sl_tensor norm1_w, norm1_b; /* (cin) */
    sl_tensor conv1_w;          /* (cout, cin, 3, 3) */
    sl_tensor conv1_b;          /* (cout) */
    sl_tensor norm2_w, norm2_b; /* (cout) */
    sl_tensor conv2_w;          /* (cout, cout, 3, 3) */
    sl_tensor conv2_b;          /* (cout) */
    sl_tensor short_w;          /* (cout, cin, 1, 1), only when cin != cout */
    sl_tensor short_b;          /* (cout) */
} sl_fluxvae_resnet;

typedef struct sl_fluxvae_attn {
    sl_tensor norm_w, norm_b;     /* (C) */
    sl_tensor q_w, k_w, v_w, o_w; /* (C, C), or (C, C, 1, 1) in the LDM layout: used as (C, C) */
    sl_tensor q_b, k_b, v_b, o_b; /* (C) */
} sl_fluxvae_attn;

typedef struct sl_fluxvae_level {
    int n_res;
    sl_fluxvae_resnet res[SL_FLUXVAE_MAX_RES];
    bool has_sample;    /* upsampler (decoder) or downsampler (encoder) */
    sl_tensor sample_w; /* (C, C, 3, 3) */
    sl_tensor sample_b; /* (C) */
    int unit;
} sl_fluxvae_level;

/* One half (decoder or encoder). Levels in execution order: decoder up_blocks 0 … n−1, encoder
 * down_blocks 0 … n−1. */
typedef struct sl_fluxvae_half {
    bool present;
    sl_tensor conv_in_w, conv_in_b; /* dec (C_top, Z, 3, 3); enc (ch0, 3, 3, 3) */
    sl_fluxvae_resnet mid_res[2];
    sl_fluxvae_attn mid_attn;
    sl_tensor norm_out_w, norm_out_b; /* dec (ch0); enc (C_top) */
    sl_tensor conv_out_w, conv_out_b; /* dec (3, ch0, 3, 3); enc (2Z, C_top, 3, 3) */
    sl_fluxvae_level lv[SL_FLUXVAE_MAX_LEVELS];
    int unit_globals, unit_mid;
    sl_res *res; /* borrowed; NULL: shapes only / mapped bytes */
} sl_fluxvae_half;

typedef struct sl_fluxvae {
    sl_fluxvae_cfg cfg;
    sl_fluxvae_layout layout;
    sl_fluxvae_half dec, enc;
} sl_fluxvae;

typedef struct sl_fluxvae_load_opts {
    int64_t est_h, est_w; /* image size assumed for per-unit cost estimates (<= 0: 1024) */
    double est_flops;     /* device FLOP/s assumed for cost estimates (<= 0: 1e14) */
    float scale, shift;   /* latent normalisation; scale <= 0: FLUX.1's 0.3611 / 0.1159 (SD3's
                             VAE has the same structure with 1.5305 / 0.0609) */
} sl_fluxvae_load_opts;

/* Detect the layout and the config from the tensors of `wd`, then declare units and register
 * weights: on dec_res (when not NULL) the decoder — units "dec.globals" (conv_in, norm_out,
 * conv_out), "dec.mid", "dec.up.0" … — and on enc_res the encoder — "enc.globals", "enc.down.0" …,
 * "enc.mid". A part whose res is NULL is not loaded unless want_* says so, in which case its
 * tensors carry shapes and the mapped bytes (dry runs; host-visible backends without residency).
 * dec_res and enc_res may be the same object. Every shape is checked (SL_ERR_SHAPE names tensor,
 * file, expected and found shapes); a missing tensor is SL_ERR_NOT_FOUND naming the layout. */
sl_status sl_fluxvae_load(const sl_wdir *wd, sl_res *dec_res, sl_res *enc_res, bool want_dec,
                          bool want_enc, const sl_fluxvae_load_opts *opts, sl_fluxvae **out,
                          sl_err *err);
void sl_fluxvae_free(sl_fluxvae *m); /* NULL is fine */

/* ---- device-level passes (tensors in ctx's memory, arena used above its mark and reset) ---- */

/* latent f32 [Z, h, w] (normalised DiT space) → image f32 [3, 8h, 8w]. */
sl_status sl_fluxvae_decode(sl_fluxvae *m, sl_ctx *ctx, const sl_tensor *latent, sl_tensor *image,
                            sl_err *err);
/* image f32 [3, H, W] in [−1, 1], H and W multiples of 8 → latent f32 [Z, H/8, W/8] (normalised
 * mean). */
sl_status sl_fluxvae_encode(sl_fluxvae *m, sl_ctx *ctx, const sl_tensor *image, sl_tensor *latent,
                            sl_err *err);

/* ---- host-level passes ---- */

typedef struct sl_fluxvae_tiling {
    int tile;    /* latent tile edge; 0: decode whole when it fits the arena, else choose tiles */
    int overlap; /* latent overlap between neighbouring tiles (< tile); used when tile > 0 */
} sl_fluxvae_tiling;

/* latent host [Z, h, w] → image host [3, 8h, 8w]. tiling NULL behaves as {0, 0}. The arena must
 * have at least sl_fluxvae_decode_arena_bytes(cfg, t, t) free for the tile t chosen. */
sl_status sl_fluxvae_decode_host(sl_fluxvae *m, sl_ctx *ctx, const float *latent, int h, int w,
                                 float *image, const sl_fluxvae_tiling *tiling, sl_err *err);
/* image host [3, H, W] → latent host [Z, H/8, W/8] (untiled). */
sl_status sl_fluxvae_encode_host(sl_fluxvae *m, sl_ctx *ctx, const float *image, int H, int W,
                                 float *latent, sl_err *err);

/* Exact arena bytes of sl_fluxvae_decode_host (untiled, h × w latent) and sl_fluxvae_encode_host
 * (H × W image), including their input and output tensors, for activation dtype act. */
size_t sl_fluxvae_decode_arena_bytes(const sl_fluxvae_cfg *cfg, int64_t h, int64_t w, sl_dtype act);
size_t sl_fluxvae_encode_arena_bytes(const sl_fluxvae_cfg *cfg, int64_t H, int64_t W, sl_dtype act);

/* Tiles for decoding an h × w latent within `budget` arena bytes: the largest square tile
 * (>= 8, at most max(h, w)) whose decode fits, overlap = tile / 4 (at least 2). Returns
 * SL_ERR_OOM_DEVICE naming the bytes when even the smallest tile does not fit. A latent that fits
 * whole gives tile = max(h, w), overlap 0. */
sl_status sl_fluxvae_choose_tiling(const sl_fluxvae_cfg *cfg, sl_dtype act, size_t budget, int h,
                                   int w, sl_fluxvae_tiling *out, sl_err *err);

#endif
