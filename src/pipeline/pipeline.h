/* pipeline/pipeline.h — the txt2img pipeline's internal interface: offload policies and the
 * stage-transition decisions as pure functions (simulated for `auto` and for the memory
 * requirements of each mode), the latent noise stream, RGB conversion, output naming (sd.cpp's
 * -o rules) and the PNG `parameters` string (sd.cpp's layout). The public API is include/sluice.h;
 * this header is for the CLI, the server and the tests.
 *
 * Stage transitions (ARCHITECTURE §4). A request runs three stages, each on one component:
 * conditioning (text encoder, one pass per prompt), sampling (diffusion model, steps passes per
 * image, all images) and decoding (VAE, one pass per image). Before a stage its component is put
 * on the device by sl_pipe_decide:
 *   - loaded whole and fitting beside the loaded idle components and the stage's activation arena:
 *     kept (or loaded);
 *   - else (not in `none`) the cheapest set of idle components to reload later is parked first;
 *   - else, when the policy streams, every idle component is parked and the component is planned
 *     within what is left (usable − arena): resident units plus a slot ring;
 *   - else the VAE decodes in tiles (the only fallback that changes the output), and any other
 *     component fails with SL_ERR_OOM_DEVICE naming the bytes needed and usable.
 * After its stage a component is parked when the policy says so; at the end of a request parked
 * components the policy reloads are loaded back when they fit.
 * `usable` is the device memory sluice may use in total, its own loaded components included:
 * min(free + ours − streaming_min_vram, max_vram). */
#ifndef SL_PIPELINE_PIPELINE_H
#define SL_PIPELINE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "models/flux_vae/flux_vae.h"
#include "sluice.h"

enum { SL_PIPE_TE = 0, SL_PIPE_DIT = 1, SL_PIPE_VAE = 2, SL_PIPE_NCOMP = 3 };

/* ---- policies ---- */

typedef struct sl_pipe_policy {
    sluice_offload_mode mode;       /* never AUTO */
    bool park_after[SL_PIPE_NCOMP]; /* park the component right after its stage */
    bool reload[SL_PIPE_NCOMP];     /* load it back at the end of a request when parked */
    bool stream;                    /* components may be planned below their size */
    bool pin_all;                   /* `none`: load everything at conditioning, never evict */
} sl_pipe_policy;

/* The mode's table (include/sluice.h) with the engine params' overrides applied (-1: default). */
sl_pipe_policy sl_pipe_policy_make(sluice_offload_mode m, const sluice_engine_params *p);

/* ---- the numbers of a request ---- */

/* The planner's view of one component: units in pass order. */
typedef struct sl_pipe_view {
    int n;
    size_t *bytes; /* [n] packed unit bytes */
    double *cost;  /* [n] compute seconds per pass (measured when available) */
    bool *must;    /* [n] units held across a pass: planned resident */
    size_t whole;  /* Σ bytes: the device bytes of the whole component */
} sl_pipe_view;

typedef struct sl_pipe_job {
    sl_pipe_view view[SL_PIPE_NCOMP];
    size_t arena[SL_PIPE_NCOMP]; /* activation arena of each stage (VAE: untiled decode) */
    int passes[SL_PIPE_NCOMP];   /* passes of each stage in one request */
    int lat_h, lat_w;            /* latent size (VAE tiling) */
    sl_fluxvae_cfg vae_cfg;
    sl_dtype act; /* activation dtype of the backend */
    int prefetch;
    double link_gbps; /* <= 0: the planner's default */
} sl_pipe_job;

/* What sits on the device. */
typedef struct sl_pipe_state {
    bool loaded[SL_PIPE_NCOMP];
    size_t dev[SL_PIPE_NCOMP];    /* device bytes of a loaded component */
    size_t budget[SL_PIPE_NCOMP]; /* its plan's budget (SIZE_MAX: whole) */
} sl_pipe_state;

/* How one stage starts. */
typedef struct sl_pipe_decision {
    bool park[SL_PIPE_NCOMP]; /* idle components to park first */
    bool load[SL_PIPE_NCOMP]; /* components to (re)plan and load (c, and in `none` the others) */
    size_t budget;            /* c's plan budget (SIZE_MAX: whole); others load whole */
    size_t dev;               /* c's device bytes once loaded */
    double pass_s;            /* c's predicted seconds per pass */
    size_t arena;             /* activation arena bytes to allocate */
    int tile, overlap;        /* VAE: decode tiles (0: whole) */
} sl_pipe_decision;

/* Decide stage c (see the top of this file). SL_ERR_OOM_DEVICE with a message naming the
 * component, the bytes needed and usable when nothing the policy allows fits. Pure. */
sl_status sl_pipe_decide(const sl_pipe_policy *pol, const sl_pipe_job *job, size_t usable,
                         const sl_pipe_state *st, int c, sl_pipe_decision *d, sl_err *err);
/* Apply a decision to a state (what the engine does on the device). */
void sl_pipe_state_apply(sl_pipe_state *st, int c, const sl_pipe_decision *d,
                         const sl_pipe_job *job);
/* Apply the end of stage c / of a request to a state. */
void sl_pipe_state_stage_exit(sl_pipe_state *st, const sl_pipe_policy *pol, int c);
void sl_pipe_state_request_end(sl_pipe_state *st, const sl_pipe_policy *pol, const sl_pipe_job *job,
                               size_t usable);

/* One request simulated from state *st (updated): its feasibility and predicted time. */
typedef struct sl_pipe_sim {
    sl_status status;  /* SL_OK, or why the request cannot run */
    double time_s;     /* compute (per pass predictions) + transfers */
    double transfer_s; /* components loaded / bytes / link */
    size_t load_bytes; /* bytes uploaded at transitions */
    bool vae_tiled;
} sl_pipe_sim;
void sl_pipe_simulate(const sl_pipe_policy *pol, const sl_pipe_job *job, size_t usable,
                      sl_pipe_state *st, sl_pipe_sim *out, sl_err *err);

/* Smallest `usable` with which a request in mode m runs from a cold device without VAE tiling
 * (SIZE_MAX when none does). need[] is indexed by sluice_offload_mode; need[AUTO] is the least.
 * The overrides of p apply. */
void sl_pipe_requirements(const sluice_engine_params *p, const sl_pipe_job *job,
                          size_t need[SLUICE_OFFLOAD_LAYER_STREAMING + 1]);
/* sl_pipe_requirements for a request on an engine (tokenizes the prompts, sizes the arenas). */
sl_status sl_pipe_needs(sluice_engine *e, const sluice_gen_params *gp,
                        size_t need[SLUICE_OFFLOAD_LAYER_STREAMING + 1], sl_err *err);
/* The most units of component c (SL_PIPE_*) any plan of this engine has streamed (tests). */
int sl_pipe_streamed_units(const sluice_engine *e, int c);
/* The fastest mode that fits a request (auto), predicted from state st: *mode, *predicted_s and a
 * one-line reason. Modes needing VAE tiling lose to modes that do not. SL_ERR_OOM_DEVICE when no
 * mode fits. */
sl_status sl_pipe_auto(const sluice_engine_params *p, const sl_pipe_job *job, size_t usable,
                       const sl_pipe_state *st, sluice_offload_mode *mode, double *predicted_s,
                       char *why, size_t why_len, sl_err *err);
void sl_pipe_job_free(sl_pipe_job *job);

/* Smallest plan budget with which a view can be planned at this prefetch (its whole size when
 * nothing can stream). */
size_t sl_pipe_view_min_budget(const sl_pipe_view *v, int prefetch, double link_gbps);

/* ---- noise, pixels ---- */

/* The initial latent of a seed: out[i] for i in [0, n) in [C, H, W] order (c·H·W + y·W + x) is
 * normal sample i of core/rng's Philox stream (seed, SL_PIPE_NOISE_STREAM) starting at 0
 * (sl_rng_normal). Backend-independent, so every backend starts from the same bytes. */
#define SL_PIPE_NOISE_STREAM 0
void sl_pipe_noise(int64_t seed, float *out, int64_t n);

/* VAE output f32 [3, H, W] in [−1, 1] → interleaved RGB uint8 [H, W, 3]: clamp(x/2 + 0.5, 0, 1)
 * · 255 rounded to nearest even (numpy's round, as the reference pipelines convert). */
void sl_pipe_to_rgb8(const float *chw, int H, int W, uint8_t *rgb);

/* ---- output naming (specs/cli-server.md §1.7) ---- */

/* The file of result i (0-based) of n for `-o pattern`:
 *   the extension decides the format: .png (any case) is kept; .jpg/.jpeg/.jpe/.webp are
 *   SL_ERR_UNSUPPORTED (only PNG is written); any other or no extension gets ".png" appended to
 *   the whole name (out.foo → out.foo.png);
 *   a printf index %d or %0Nd (N up to 3 digits; %% is a literal %) is replaced by start + i;
 *   otherwise one result is the path itself and several are <stem>_<start+i><ext>. */
sl_status sl_pipe_output_path(const char *pattern, int i, int n, int start, char *out,
                              size_t out_len, sl_err *err);

/* ---- the PNG `parameters` string (specs/cli-server.md §1.12, sd.cpp's exact layout) ---- */

typedef struct sl_pipe_infotext {
    const char *prompt, *negative_prompt;
    int steps;
    float cfg_scale, guidance, flow_shift; /* flow_shift: the value used */
    bool eta_set;                          /* false: "Eta: inf" and null in the JSON */
    float eta;
    int64_t seed;
    int width, height;
    const char *model_path; /* -m (basename written), may be NULL */
    const char *llm_path, *diffusion_model_path, *vae_path;
    const char *rng;                 /* "philox" */
    const char *sampler, *scheduler; /* ids */
    const char *version;             /* sluice version for the SDCPP JSON's generator */
} sl_pipe_infotext;

/* The string into buf (NUL-terminated). Returns the full length (snprintf style). */
size_t sl_pipe_infotext_format(const sl_pipe_infotext *in, char *buf, size_t n);

#endif
