/* bench/bench_pipe.c — whole generations through the public API (bench.h, sl_bench_pipeline).
 *
 * One engine per configuration (offload mode × --max-vram), `warmup` untimed generations, then
 * `runs` timed ones; each stage time of a row is the median over the timed generations of what
 * sluice_last_timings reports. Peak device memory is measured from outside the engine: a second
 * CUDA backend created before the engine reads the device's free memory every 2 ms from a thread,
 * and the row reports the largest drop below the level before the engine was opened (the CUDA
 * context is shared by the process, so the drop is what the engine allocated). CPU backends have
 * no such measurement (0: not measured).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "bench/bench.h"
#include "bench/bench_impl.h"
#include "core/log.h"
#include "sluice.h"

void sl_bench_pipe_opts_init(sl_bench_pipe_opts *o) {
    *o = (sl_bench_pipe_opts){.backend = "auto",
                              .width = 1024,
                              .height = 1024,
                              .steps = 8,
                              .prompt = "a photograph of a red fox standing in fresh snow at "
                                        "golden hour, shallow depth of field",
                              .max_vram = "12,8,0",
                              .modes = "auto",
                              .runs = 2,
                              .warmup = 1,
                              .seed = 42};
}

/* ---- free device memory watched from a thread ---- */

typedef struct pipe_probe {
    sl_backend *be; /* a CUDA backend of its own (NULL: no measurement) */
    pthread_t th;
    atomic_bool stop;
    bool running;
    size_t min_free, free0;
} pipe_probe;

static void *pipe_probe_main(void *arg) {
    pipe_probe *p = arg;
    const struct timespec ts = {0, 2000000};
    while (!atomic_load(&p->stop)) {
        size_t fr = 0, tot = 0;
        p->be->vt->mem_info(p->be, &fr, &tot);
        if (fr < p->min_free) p->min_free = fr;
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void pipe_probe_start(pipe_probe *p) {
    if (!p->be) return;
    size_t tot = 0;
    p->be->vt->mem_info(p->be, &p->free0, &tot);
    p->min_free = p->free0;
    atomic_store(&p->stop, false);
    p->running = pthread_create(&p->th, NULL, pipe_probe_main, p) == 0;
}

/* Bytes of the largest drop of free memory since pipe_probe_start (0 without a probe). */
static size_t pipe_probe_stop(pipe_probe *p) {
    if (!p->be) return 0;
    if (p->running) {
        atomic_store(&p->stop, true);
        pthread_join(p->th, NULL);
        p->running = false;
    }
    return p->free0 > p->min_free ? p->free0 - p->min_free : 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The next comma-separated token of *p into buf; false at the end. */
static bool next_token(const char **p, char *buf, size_t n) {
    if (!*p || !**p) return false;
    const char *e = strchr(*p, ',');
    size_t k = e ? (size_t)(e - *p) : strlen(*p);
    snprintf(buf, n, "%.*s", (int)(k < n ? k : n - 1), *p);
    *p = e ? e + 1 : NULL;
    return true;
}

/* One configuration: open, warm up, time `runs` generations, close. */
static void run_pipe_config(const sl_bench_pipe_opts *o, const char *mode, double max_vram,
                            pipe_probe *probe, sl_bench_result *out, sl_bench_row *row) {
    char msg[1024] = "";
    sluice_engine_params ep;
    sluice_engine_params_init(&ep);
    ep.diffusion_model_path = o->diffusion_model;
    ep.llm_path = o->llm;
    ep.vae_path = o->vae;
    ep.backend = o->backend;
    ep.threads = o->threads;
    ep.offload_mode = (sluice_offload_mode)sluice_offload_mode_parse(mode);
    ep.max_vram_gb = max_vram;
    sluice_gen_params gp;
    sluice_gen_params_init(&gp);
    gp.prompt = o->prompt;
    gp.width = o->width;
    gp.height = o->height;
    gp.steps = o->steps;
    gp.seed = o->seed;

    int n = o->runs;
    double *v[8];
    for (int k = 0; k < 8; k++)
        v[k] = calloc((size_t)(n > 0 ? n : 1), sizeof(double));
    sluice_engine *e = NULL;
    pipe_probe_start(probe);
    double t0 = now_s();
    int rc = sluice_engine_open(&ep, &e, msg, sizeof msg);
    double load_s = now_s() - t0;
    if (rc == 0 && !out->device[0]) {
        snprintf(out->device, sizeof out->device, "%s", sluice_engine_device(e));
        snprintf(out->backend, sizeof out->backend, "%s", sluice_engine_backend(e));
    }
    sluice_timings tm = {0};
    for (int i = 0; rc == 0 && i < o->warmup + n; i++) {
        sluice_image *img = NULL;
        int n_img = 0;
        rc = sluice_generate(e, &gp, NULL, NULL, &img, &n_img, msg, sizeof msg);
        if (rc == 0) sluice_images_free(img, n_img);
        if (rc != 0 || i < o->warmup) continue;
        sluice_last_timings(e, &tm);
        int j = i - o->warmup;
        v[0][j] = tm.conditioning_s;
        v[1][j] = tm.sampling_s;
        v[2][j] = tm.per_step_s;
        v[3][j] = tm.decoding_s;
        v[4][j] = tm.transfer_s;
        v[5][j] = tm.total_s;
        v[6][j] = tm.predicted_s;
    }
    size_t peak = pipe_probe_stop(probe);
    sluice_engine_close(e);
    if (rc != 0) {
        row->ok = false;
        snprintf(row->error, sizeof row->error, "%s", msg);
        SL_WARN("bench: %s: %s", row->setting, msg);
    } else {
        row->ok = true;
        row->passes = n;
        row->load_s = tm.load_s > 0 ? tm.load_s : load_s;
        row->cond_s = sl_bench_median(v[0], n);
        row->sampling_s = sl_bench_median(v[1], n);
        row->per_step_s = sl_bench_median(v[2], n);
        row->decode_s = sl_bench_median(v[3], n);
        row->transfer_s = sl_bench_median(v[4], n);
        row->total_s = sl_bench_median(v[5], n);
        row->pred_s = sl_bench_median(v[6], n);
        if (row->pred_s <= 0) row->pred_s = -1;
        row->pass_ms = row->per_step_s >= 0 ? row->per_step_s * 1e3 : -1;
        snprintf(row->mode_used, sizeof row->mode_used, "%s", sluice_offload_mode_name(tm.mode));
        row->peak_vram = row->peak_measured = peak;
    }
    for (int k = 0; k < 8; k++)
        free(v[k]);
}

sl_status sl_bench_pipeline(const sl_bench_pipe_opts *o, sl_bench_result *out, sl_err *err) {
    SL_ASSERT(o && out);
    memset(out, 0, sizeof *out);
    if (!o->diffusion_model || !o->llm || !o->vae)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "bench --pipeline: needs the diffusion model, the text encoder (--llm) "
                          "and the VAE (--vae), or --synth DTYPE to write all three");
    if (o->runs < 1 || o->warmup < 0 || o->steps < 1)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "bench --pipeline: need --runs >= 1, --warmup >= 0, --steps >= 1");
    char tok[64];
    for (const char *p = o->modes; next_token(&p, tok, sizeof tok);)
        if (sluice_offload_mode_parse(tok) < 0)
            return sl_err_set(err, SL_ERR_INVALID_ARG,
                              "bench --pipeline: unknown offload mode '%s' (auto, none, cond_only, "
                              "cond_diffusion, aggressive, layer_streaming)",
                              tok);
    for (const char *p = o->max_vram; next_token(&p, tok, sizeof tok);) {
        char *end = NULL;
        double gb = strtod(tok, &end);
        if (strcmp(tok, "unlimited") && (end == tok || *end || gb < 0))
            return sl_err_set(err, SL_ERR_INVALID_ARG,
                              "bench --pipeline: --max-vram value '%s' is not a number of GB (0 or "
                              "unlimited: no cap)",
                              tok);
    }

    snprintf(out->kind, sizeof out->kind, "pipeline");
    sl_bench_now(out->date, sizeof out->date);
    snprintf(out->model, sizeof out->model, "%s", o->diffusion_model);
    out->width = o->width;
    out->height = o->height;
    out->warmup = o->warmup;
    out->compute_ms = -1;
    snprintf(out->dtype, sizeof out->dtype, "%s", o->dtype ? o->dtype : "-");

    pipe_probe probe = {0};
    bool cuda = sl_backend_have_cuda() &&
                (!o->backend || !strcmp(o->backend, "auto") || !strcmp(o->backend, "cuda"));
    if (cuda) {
        sl_err pe = {0};
        if (sl_backend_cuda_create(0, &probe.be, &pe) != SL_OK) probe.be = NULL;
    }

    for (const char *pm = o->modes; next_token(&pm, tok, sizeof tok);) {
        char mode[32];
        snprintf(mode, sizeof mode, "%s", tok);
        char vt[32];
        for (const char *pv = o->max_vram; next_token(&pv, vt, sizeof vt);) {
            double gb = !strcmp(vt, "unlimited") ? 0 : strtod(vt, NULL);
            sl_bench_row *row = sl_bench_add_row(out);
            if (!row) {
                sl_backend_destroy(probe.be);
                sl_bench_result_free(out);
                return sl_err_set(err, SL_ERR_OOM_HOST, "bench: out of host memory");
            }
            sl_bench_row_init(row, "sluice", "pipeline");
            snprintf(row->mode, sizeof row->mode, "%s", mode);
            snprintf(row->budget, sizeof row->budget, "%s", gb > 0 ? vt : "unlimited");
            /* --max-vram counts GiB, as sd.cpp's does (pipeline/offload.c) */
            row->budget_bytes = gb > 0 ? (size_t)(gb * 1073741824.0) : SIZE_MAX;
            if (gb > 0)
                snprintf(row->setting, sizeof row->setting, "%s, --max-vram %s", mode, vt);
            else
                snprintf(row->setting, sizeof row->setting, "%s, unlimited", mode);
            snprintf(row->dtype, sizeof row->dtype, "%s", out->dtype);
            row->width = o->width;
            row->height = o->height;
            row->steps = o->steps;
            SL_INFO("bench: pipeline %s", row->setting);
            run_pipe_config(o, mode, gb, &probe, out, row);
        }
    }
    sl_backend_destroy(probe.be);
    if (!out->device[0]) snprintf(out->device, sizeof out->device, "(no engine opened)");
    return SL_OK;
}
