/* pipeline/engine_impl.h — the engine's state, shared by the pipeline's files (engine.c: opening,
 * paths, models; offload.c: modes, budgets, stage transitions; generate.c: the stages). Not part
 * of the public API: include/sluice.h is. */
#ifndef SL_PIPELINE_ENGINE_IMPL_H
#define SL_PIPELINE_ENGINE_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/ops.h"
#include "io/wdir.h"
#include "models/flux_vae/flux_vae.h"
#include "models/qwen3/qwen3.h"
#include "models/qwen3/tokenizer.h"
#include "models/zimage/zimage.h"
#include "pipeline/pipeline.h"
#include "residency/residency.h"
#include "sluice.h"

/* One component: its weights, its residency engine, and how it sits on the device. */
typedef struct pipe_comp {
    const char *name; /* "text encoder", "diffusion model", "VAE" */
    char *path;       /* the path its weights came from (messages) */
    sl_wdir *wd;      /* borrowed from engine->wdirs */
    sl_res *res;      /* owned */
    int held_unit;    /* unit acquired for the whole pass (planned resident), -1 if none */
    size_t budget;    /* budget of the current plan (SIZE_MAX: whole) while loaded */
    int max_streamed; /* the most units any plan streamed (tests, logs) */
} pipe_comp;

struct sluice_engine {
    sluice_engine_params p; /* strings point at the owned copies below */
    char *s_model, *s_dit, *s_vae, *s_llm, *s_tok, *s_backend;
    sl_backend *be;    /* compute backend */
    sl_backend *mb;    /* measuring backend standing in for be (dry runs) */
    sl_event *ev_step; /* recorded on the compute queue after each pass (progress timing) */
    bool device;       /* be has its own memory: budgets and transitions are real */
    double link_gbps;  /* measured host→device bandwidth (0: unknown) */
    sl_tok *tok;
    sl_wdir *wdirs[SL_PIPE_NCOMP]; /* distinct opened directories (a single file serves several) */
    int n_wdirs;
    pipe_comp comp[SL_PIPE_NCOMP];
    sl_qwen3 *te;
    sl_zimage *dit;
    sl_fluxvae *vae;
    bool warned_vocab;
    double load_s;
    sluice_timings timings;
};

/* ---- offload.c ---- */

/* Usable device bytes for sluice in total right now (weights of loaded components included):
 * min(free + ours − streaming_min_vram, max_vram). SIZE_MAX on host backends. */
size_t sl_pipe_usable(sluice_engine *e);
/* The planner's view of a component (units in pass order, bytes, costs, held units). */
sl_status sl_pipe_view_get(sluice_engine *e, int c, sl_pipe_view *v, sl_err *err);
void sl_pipe_view_free(sl_pipe_view *v);
/* Put component c on the device for its stage under the policy (parking idle components when the
 * room is needed, streaming when allowed) and allocate the stage's arena of *arena bytes. For
 * the VAE, *tile receives the decode tiling (0: whole) and *arena may shrink to a tile's. On
 * success *arena_mem is the arena (free with sl_pipe_stage_exit). */
sl_status sl_pipe_stage_enter(sluice_engine *e, const sl_pipe_policy *pol, int c,
                              const sl_pipe_job *job, size_t *arena, int *tile, void **arena_mem,
                              sl_err *err);
/* Free the arena; park c when the policy says so. */
void sl_pipe_stage_exit(sluice_engine *e, const sl_pipe_policy *pol, int c, void *arena_mem);
/* End of a request: reload parked components the policy reloads (when they fit). */
void sl_pipe_request_end(sluice_engine *e, const sl_pipe_policy *pol);
/* Park everything (after a failure, and at close). */
void sl_pipe_park_all(sluice_engine *e);
/* Resolve the mode for a request (auto: predict every mode, log the choice). */
sl_status sl_pipe_choose(sluice_engine *e, const sl_pipe_job *job, sl_pipe_policy *pol,
                         double *predicted_s, sl_err *err);

/* ---- generate.c ---- */

/* Fill the request's numbers: bytes and costs of each component, activation arenas (dry run or
 * formula), passes. lc[0..n_caps) are the caption token counts. */
sl_status sl_pipe_job_make(sluice_engine *e, int width, int height, const int *lc, int n_caps,
                           int steps, int n_images, sl_pipe_job *job, sl_err *err);

#endif
