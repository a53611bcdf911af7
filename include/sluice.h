/* sluice.h — the public C API of libsluice.
 *
 * An engine holds the loaded model components (text encoder, diffusion model, VAE) and the
 * device; generation requests run on it one at a time (one thread at a time per engine). All
 * strings are UTF-8. Every function that can fail returns 0 on success or a negative
 * sluice_status code, and writes a human-readable message into the caller's buffer (err,
 * err_len), which names what failed and what to try (which file, which tensor, bytes needed vs
 * free, which flag would fit).
 *
 * Ownership: the engine owns everything it allocates; images returned by sluice_generate belong
 * to the caller and are released with sluice_images_free. Strings passed in params are copied
 * by the call that takes them.
 *
 * Memory (ARCHITECTURE §4, docs/USAGE.md): every component's weights live in host memory (pinned,
 * or the mapped file on host backends); the device holds what the offload mode and the budget
 * allow. At fixed points of a generation — before and after conditioning, before sampling,
 * before VAE decode, after the request — whole components are loaded, kept, parked (device memory
 * freed, nothing copied back) or planned to stream unit by unit. Whatever the mode, budget or
 * prefetch depth, the image is bit-identical to the one of SLUICE_OFFLOAD_NONE for the same
 * inputs (VAE tiling, a fallback when even the smallest placement leaves too little room for the
 * decoder's activations, is the one exception, and is logged as a warning). */
#ifndef SLUICE_H
#define SLUICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_VERSION "0.1.0"

/* Return codes (the negated sl_status values of the library's core). */
typedef enum sluice_status {
    SLUICE_OK = 0,
    SLUICE_ERR_INVALID_ARG = -1, /* a parameter is unusable (size not a multiple of 16, ...) */
    SLUICE_ERR_IO = -2,          /* a file could not be opened / read / written */
    SLUICE_ERR_FORMAT = -3,      /* a file is malformed */
    SLUICE_ERR_UNSUPPORTED = -4, /* well-formed but not supported (dtype, sampler, ...) */
    SLUICE_ERR_NOT_FOUND = -5,   /* a tensor / file / component is missing */
    SLUICE_ERR_SHAPE = -6,       /* a tensor has the wrong shape */
    SLUICE_ERR_OOM_HOST = -7,    /* not enough host RAM */
    SLUICE_ERR_OOM_DEVICE = -8,  /* not enough device memory for any placement the mode allows */
    SLUICE_ERR_BACKEND = -9,     /* the device reported an error */
    SLUICE_ERR_CANCELLED = -10,  /* the progress callback asked to stop */
    SLUICE_ERR_INTERNAL = -11,
} sluice_status;

typedef struct sluice_engine sluice_engine;

/* How components share device memory (ARCHITECTURE §4). Which component is parked when:
 *
 *   mode             text encoder        diffusion model      VAE              streaming
 *   none             kept                kept                 kept             no
 *   cond_only        parked after cond.  kept                 kept             no
 *   cond_diffusion   parked after cond.  parked after sampl.  kept             no
 *   aggressive       parked after cond.  parked after sampl.  parked after use no
 *   layer_streaming  parked after cond.  parked after sampl.  kept             yes
 *
 * "kept" components stay on the device between stages and between requests while there is room;
 * a stage that needs the room parks idle components first (never in `none`, which loads all
 * three up front and fails with a clear message when they do not fit). With streaming, a
 * component that does not fit whole is planned unit by unit within the stage's budget (resident
 * units spread between streamed ones, a ring of prefetch + 1 slots). `auto` predicts the time of
 * a request in each mode from the planner (compute per pass, link bytes per request) and takes
 * the fastest that fits, preferring modes that need no VAE tiling. */
typedef enum sluice_offload_mode {
    SLUICE_OFFLOAD_AUTO = 0,        /* fastest mode that fits, chosen by the planner and logged */
    SLUICE_OFFLOAD_NONE,            /* everything resident for the whole run */
    SLUICE_OFFLOAD_COND_ONLY,       /* text encoder parked after conditioning */
    SLUICE_OFFLOAD_COND_DIFFUSION,  /* text encoder and diffusion model loaded only for their stage
                                     */
    SLUICE_OFFLOAD_AGGRESSIVE,      /* every component parked as soon as it is not running */
    SLUICE_OFFLOAD_LAYER_STREAMING, /* components that do not fit are streamed unit by unit */
} sluice_offload_mode;

/* "auto", "none", "cond_only", ... (the CLI spelling). */
const char *sluice_offload_mode_name(sluice_offload_mode m);
/* Parse the CLI spelling; returns -1 for an unknown name. */
int sluice_offload_mode_parse(const char *name);

typedef struct sluice_engine_params {
    /* model files: model_path (a diffusers folder with transformer/, text_encoder/, vae/,
     * tokenizer/, or a single file), and/or the components, which override what model_path
     * provides. Each may be .safetensors, a sharded *.safetensors.index.json, a folder of one of
     * those, or .gguf. A single file provides the diffusion model, plus the text encoder and VAE
     * when it contains them. */
    const char *model_path;           /* -m */
    const char *diffusion_model_path; /* --diffusion-model */
    const char *vae_path;             /* --vae */
    const char *llm_path;             /* --llm (Qwen3 text encoder) */
    const char *tokenizer_path; /* optional tokenizer.json (else the folder's, else built in) */
    /* "auto" (default: cuda when built with CUDA and a GPU is present, else cpu), "cpu", "cuda",
     * or "cpu-device:<bytes>": the CPU backend presenting itself as a device with its own memory
     * of <bytes> bytes (0: unlimited) and an asynchronous copy queue, so that every offload mode
     * and streaming plan runs exactly as on a GPU (tests; see backend/backend.h) */
    const char *backend;
    int threads; /* CPU threads, <= 0: all cores */
    /* memory */
    sluice_offload_mode offload_mode;
    int offload_cond_stage;       /* -1: mode default, 0/1: override (--[no-]offload-cond-stage) */
    int offload_diffusion;        /* --[no-]offload-diffusion: park the DiT after sampling */
    int reload_cond_stage;        /* --[no-]reload-cond-stage: load a parked text encoder back at
                                     the end of a request (ready for the next); default 0 */
    int reload_diffusion;         /* --[no-]reload-diffusion: same for the DiT; default 0 */
    double max_vram_gb;           /* --max-vram; 0: no cap (free VRAM decides) */
    int streaming_prefetch;       /* --streaming-prefetch, default 1 (units in flight ahead) */
    int streaming_min_vram_mb;    /* --streaming-min-vram, default 512 (left free for others) */
    bool vram_estimation_formula; /* --vram-estimation formula (default dryrun) */
    bool offload_log;             /* --offload-log: log every transition and plan at INFO */
    bool profile;                 /* --profile / SLUICE_PROFILE=1: per-pass residency line */
} sluice_engine_params;

void sluice_engine_params_init(sluice_engine_params *p); /* defaults */
/* Resolve the paths, create the backend, open the weight files, load the tokenizer and the three
 * models with their host homes (nothing goes to the device yet: that happens per stage). */
int sluice_engine_open(const sluice_engine_params *p, sluice_engine **out, char *err,
                       size_t err_len);
void sluice_engine_close(sluice_engine *e); /* NULL is fine */
/* The backend's name ("cpu", "cuda") and device description; borrowed, valid until close. */
const char *sluice_engine_backend(const sluice_engine *e);
const char *sluice_engine_device(const sluice_engine *e);

typedef struct sluice_gen_params {
    const char *prompt;
    const char *negative_prompt; /* used only when cfg_scale > 1 */
    int width, height;           /* multiples of 16 (default 512 × 512) */
    int steps;                   /* <= 0: model default (8 for Z-Image-Turbo) */
    float cfg_scale;             /* sd.cpp convention: <= 1 no CFG (Turbo, default 1); s > 1 runs
                                    the negative branch with guidance w = s − 1 (pos + w·(pos−neg)) */
    float flow_shift;            /* <= 0: model default (3.0) */
    int64_t seed;                /* < 0: random; image i uses seed + i */
    int batch_count;             /* images generated one after another (default 1) */
    const char *sampling_method; /* NULL/"": model default ("euler") */
    const char *scheduler;       /* NULL/"": model default ("auto", the reference schedule) */
} sluice_gen_params;

void sluice_gen_params_init(sluice_gen_params *p);

typedef struct sluice_image {
    int width, height, channels; /* channels = 3 (RGB) */
    uint8_t *data;               /* width·height·channels bytes, row-major */
    int64_t seed;                /* the seed this image used */
} sluice_image;

/* Progress of a generation. stage is "conditioning", "sampling" or "decoding"; step/steps count
 * within the stage (sampling: denoising steps; conditioning: prompts encoded; decoding: tiles);
 * image (0-based) of n_images, with its seed. */
typedef struct sluice_progress {
    const char *stage;
    int step, steps;
    double stage_elapsed_s;
    int image, n_images;
    int64_t seed;
} sluice_progress;

/* Called after each step of each stage, on the generating thread. Return nonzero to cancel the
 * generation (it then fails with SLUICE_ERR_CANCELLED; images already finished are dropped). */
typedef int (*sluice_progress_fn)(void *user, const sluice_progress *p);

/* Wall times of the last sluice_generate call, in seconds. */
typedef struct sluice_timings {
    double load_s;         /* sluice_engine_open (files, tokenizer, host homes) */
    double conditioning_s; /* tokenizing and text encoding (once per call) */
    double sampling_s;     /* all images' denoising loops */
    double decoding_s;     /* all images' VAE decodes */
    double transfer_s;     /* stage transitions: loading components to the device, parking */
    double total_s;        /* the whole call */
    double per_step_s;     /* sampling time per step of the last image */
    int n_images, steps;
    sluice_offload_mode mode; /* the mode used (auto resolved) */
    double predicted_s; /* the planner's prediction of a call in that mode (0: not predicted) */
} sluice_timings;

int sluice_generate(sluice_engine *e, const sluice_gen_params *p, sluice_progress_fn progress,
                    void *user, sluice_image **images, int *n_images, char *err, size_t err_len);
void sluice_images_free(sluice_image *images, int n);
void sluice_last_timings(const sluice_engine *e, sluice_timings *out);

/* Logging: every library message at or above min_level (0 debug, 1 info, 2 warn, 3 error) goes
 * to fn (any thread); fn NULL restores the default sink (stderr). */
typedef void (*sluice_log_fn)(int level, const char *msg, void *user);
void sluice_set_log(sluice_log_fn fn, void *user, int min_level);

#ifdef __cplusplus
}
#endif
#endif
