/* sluice.h — the public C API of libsluice.
 *
 * An engine holds the loaded model components (text encoder, diffusion model, VAE) and the
 * device; generation requests run on it one at a time. All strings are UTF-8. Every function
 * that can fail returns 0 on success or a negative sluice_status-style code, and writes a
 * human-readable message into the caller's buffer (err, err_len), which names what failed and
 * what to try (which file, which tensor, bytes needed vs free, which flag would fit).
 *
 * Ownership: the engine owns everything it allocates; images returned by sluice_generate belong
 * to the caller and are released with sluice_images_free. */
#ifndef SLUICE_H
#define SLUICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_VERSION "0.1.0"

typedef struct sluice_engine sluice_engine;

/* How components share device memory (ARCHITECTURE §4). */
typedef enum sluice_offload_mode {
    SLUICE_OFFLOAD_AUTO = 0,        /* fastest mode that fits, chosen by the planner and logged */
    SLUICE_OFFLOAD_NONE,            /* everything resident for the whole run */
    SLUICE_OFFLOAD_COND_ONLY,       /* text encoder parked after conditioning */
    SLUICE_OFFLOAD_COND_DIFFUSION,  /* text encoder and diffusion model loaded only for their stage */
    SLUICE_OFFLOAD_AGGRESSIVE,      /* every component parked as soon as it is not running */
    SLUICE_OFFLOAD_LAYER_STREAMING, /* components that do not fit are streamed unit by unit */
} sluice_offload_mode;

typedef struct sluice_engine_params {
    /* model files: either model_path (a single file or a diffusers folder), or the components */
    const char *model_path;           /* -m */
    const char *diffusion_model_path; /* --diffusion-model */
    const char *vae_path;             /* --vae */
    const char *llm_path;             /* --llm (Qwen3 text encoder) */
    const char *tokenizer_path;       /* optional tokenizer.json (else the folder's, else built in) */
    const char *backend;              /* "auto" (default), "cpu", "cuda" */
    int threads;                      /* CPU threads, <= 0: all cores */
    /* memory */
    sluice_offload_mode offload_mode;
    int offload_cond_stage;           /* -1: mode default, 0/1: override (--[no-]offload-cond-stage) */
    int offload_diffusion;            /* --[no-]offload-diffusion */
    int reload_cond_stage;            /* --[no-]reload-cond-stage */
    int reload_diffusion;             /* --[no-]reload-diffusion */
    double max_vram_gb;               /* --max-vram; 0: no cap (free VRAM decides) */
    int streaming_prefetch;           /* --streaming-prefetch, default 1 */
    int streaming_min_vram_mb;        /* --streaming-min-vram, default 512 */
    bool vram_estimation_formula;     /* --vram-estimation formula (default dryrun) */
    bool offload_log;                 /* --offload-log: print every transition and plan */
    bool profile;                     /* --profile / SLUICE_PROFILE=1: per-pass residency profile */
} sluice_engine_params;

void sluice_engine_params_init(sluice_engine_params *p); /* defaults */
int sluice_engine_open(const sluice_engine_params *p, sluice_engine **out, char *err, size_t err_len);
void sluice_engine_close(sluice_engine *e); /* NULL is fine */

typedef struct sluice_gen_params {
    const char *prompt;
    const char *negative_prompt; /* used only when cfg_scale > 1 */
    int width, height;           /* multiples of 16 */
    int steps;                   /* <= 0: model default (8 for Z-Image-Turbo) */
    float cfg_scale;             /* <= 1: no CFG (Turbo) */
    float flow_shift;            /* <= 0: model default (3.0) */
    int64_t seed;                /* < 0: random; image i uses seed + i */
    int batch_count;             /* images generated one after another */
    const char *sampling_method; /* NULL/"": model default ("euler") */
    const char *scheduler;       /* NULL/"": model default */
} sluice_gen_params;

void sluice_gen_params_init(sluice_gen_params *p);

typedef struct sluice_image {
    int width, height, channels; /* channels = 3 (RGB) */
    uint8_t *data;               /* width·height·channels bytes, row-major */
    int64_t seed;                /* the seed this image used */
} sluice_image;

/* Progress: stage is "conditioning", "sampling", "decoding"; step/steps count within the stage.
 * Return nonzero to cancel the generation (it then fails with a "cancelled" message). */
typedef int (*sluice_progress_fn)(void *user, const char *stage, int step, int steps,
                                  double stage_elapsed_s);

/* Per-stage wall times of the last generation, in seconds. */
typedef struct sluice_timings {
    double load_s, conditioning_s, sampling_s, decoding_s, total_s;
    double per_step_s; /* sampling_s / steps of the last image */
} sluice_timings;

int sluice_generate(sluice_engine *e, const sluice_gen_params *p, sluice_progress_fn progress,
                    void *user, sluice_image **images, int *n_images, char *err, size_t err_len);
void sluice_images_free(sluice_image *images, int n);
void sluice_last_timings(const sluice_engine *e, sluice_timings *out);

#ifdef __cplusplus
}
#endif
#endif
