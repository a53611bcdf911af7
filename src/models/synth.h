/* models/synth.h — random-weight model files for tests, benchmarks and demos.
 *
 * Each architecture describes its tensors (names exactly as its real files spell them, in the
 * chosen layout, and shapes for the chosen size) as an sl_synth_list; sl_synth_write turns a list
 * into a file in the chosen dtype and format, streaming (a full-size model never needs its size
 * in RAM). Values come from core/rng (counter-based), so the same list, seed and dtype always
 * give the same bytes. */
#ifndef SL_MODELS_SYNTH_H
#define SL_MODELS_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/dtype.h"
#include "core/status.h"

typedef enum sl_synth_init {
    SL_INIT_NORMAL, /* N(mean, std²) */
    SL_INIT_CONST,  /* every element = mean (norm weights: 1, biases: 0) */
} sl_synth_init;

typedef struct sl_synth_tensor {
    char name[160];
    int ndim;
    int64_t ne[4];      /* row-major */
    sl_synth_init init;
    float mean, std;
    bool keep_float;    /* never quantise (norms, biases, embeddings of odd size, pad tokens) */
} sl_synth_tensor;

typedef struct sl_synth_list {
    sl_synth_tensor *t;
    int n, cap;
    char arch[32];      /* written as metadata ("general.architecture" / "sluice.arch") */
} sl_synth_list;

void sl_synth_list_add(sl_synth_list *l, const char *name, int ndim, const int64_t *ne,
                       sl_synth_init init, float mean, float std, bool keep_float);
void sl_synth_list_free(sl_synth_list *l);

typedef enum sl_synth_format { SL_SYNTH_SAFETENSORS, SL_SYNTH_GGUF } sl_synth_format;

typedef struct sl_synth_opts {
    sl_dtype dtype;          /* weights: bf16, f16, f32, f8_e4m3, q8_0, q4_0, q4_k, ... */
    sl_synth_format format;
    uint64_t seed;
} sl_synth_opts;

/* Write the list to path. Tensors that are 1-D, keep_float, or whose rows are not whole blocks
 * of a block dtype are written in f32 (GGUF) or bf16 (safetensors with an fp8 or block dtype
 * requested) — what real quantised releases do. Block dtypes need format GGUF; fp8 needs
 * safetensors (SL_ERR_INVALID_ARG otherwise). */
sl_status sl_synth_write(const sl_synth_list *l, const sl_synth_opts *o, const char *path,
                         sl_err *err);

/* Per-architecture tensor lists, implemented by each model (models/<arch>/).
 * size: "tiny" (every name and the structure, small dims; the config the reference fixtures use)
 * or "full" (the real release). layout: "official" (diffusers / HF names) or "comfy" (ComfyUI /
 * BFL single-file names); architectures with one layout ignore it. */
sl_status sl_zimage_synth_list(const char *size, const char *layout, sl_synth_list *out, sl_err *err);
sl_status sl_qwen3_synth_list(const char *size, const char *layout, sl_synth_list *out, sl_err *err);
sl_status sl_fluxvae_synth_list(const char *size, const char *layout, sl_synth_list *out, sl_err *err);

#endif
