/* bench/bench_dit.c — the DiT benchmark (bench.h): one model, one input shape, a list of
 * residency configurations, every ratio measured in the same run.
 *
 * Order of a run: backend → link bandwidth → model (host home loaded once, reused by every
 * configuration) → GEMM rate → activation arena (allocated once) → the resident configuration
 * (the compute-only reference) → the other configurations, each planned, loaded, run and parked.
 * The residency engine keeps the unit costs it measured on the very first pass, so every
 * streamed configuration is planned with measured costs from its start. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/ops.h"
#include "bench/bench.h"
#include "bench/bench_impl.h"
#include "core/log.h"
#include "core/rng.h"
#include "io/wdir.h"
#include "models/zimage/zimage.h"
#include "residency/residency.h"

/* Left free for the backend's scratch and others when the budget is "all" (as the CLI's default
 * --streaming-min-vram). */
#define BENCH_RESERVE ((size_t)512 << 20)
/* Bisection for "min" stops when the interval is this small. */
#define BENCH_MIN_STEP ((size_t)1 << 20)

void sl_bench_opts_init(sl_bench_opts *o) {
    *o = (sl_bench_opts){.backend = "auto",
                         .width = 1024,
                         .height = 1024,
                         .cap_tokens = 256,
                         .passes = 5,
                         .warmup = 2,
                         .prefetch = 1,
                         .modes = "none,layer_streaming",
                         .budgets = "min,8,12,all",
                         .seed = 42};
}

/* ---- device memory probe: the lowest free device memory seen while it runs ---- */

typedef struct mem_probe {
    sl_backend *be;
    pthread_t th;
    atomic_bool stop;
    bool running;
    size_t min_free;
} mem_probe;

static void *probe_main(void *arg) {
    mem_probe *p = arg;
    /* 5 ms: cudaMemGetInfo takes a driver lock; nothing the forward allocates is shorter-lived
     * (the backend's scratch only grows, re-planning parks before it reloads) */
    const struct timespec ts = {0, 5000000};
    while (!atomic_load(&p->stop)) {
        size_t fr = 0, tot = 0;
        p->be->vt->mem_info(p->be, &fr, &tot);
        if (fr < p->min_free) p->min_free = fr;
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void probe_start(mem_probe *p, sl_backend *be) {
    p->be = be;
    atomic_store(&p->stop, false);
    size_t tot = 0;
    be->vt->mem_info(be, &p->min_free, &tot);
    p->running = pthread_create(&p->th, NULL, probe_main, p) == 0;
}

/* Returns the lowest free bytes seen (including one last reading). */
static size_t probe_stop(mem_probe *p) {
    if (p->running) {
        atomic_store(&p->stop, true);
        pthread_join(p->th, NULL);
        p->running = false;
    }
    size_t fr = 0, tot = 0;
    p->be->vt->mem_info(p->be, &fr, &tot);
    return fr < p->min_free ? fr : p->min_free;
}

/* ---- the run's state ---- */

typedef struct dit_run {
    const sl_bench_opts *o;
    sl_backend *be;
    sl_wdir *wd;
    sl_res *res;
    sl_zimage *m;
    int Hl, Wl, Lc;
    float *h_lat, *h_cap; /* host inputs */
    void *arena;          /* activation arena + inputs/outputs */
    size_t arena_bytes;
    sl_event **ev; /* passes + 1 compute-queue marks */
    double *pass_ms;
    double link_gbps; /* measured at start-up */
    size_t free0;     /* device free bytes right after the backend was created */
    bool probe;       /* mem_info means device memory (is_device) */
} dit_run;

static size_t io_bytes(const sl_zimage_config *c, int Hl, int Wl, int Lc) {
    size_t lat = SL_ALIGN_UP((size_t)c->in_ch * (size_t)Hl * (size_t)Wl * 4, 256);
    size_t cap = SL_ALIGN_UP((size_t)Lc * (size_t)c->cap_dim * 4, 256);
    return 2 * lat + cap + 4096;
}

static sl_status arena_alloc(sl_backend *be, size_t n, void **out, sl_err *err) {
    if (be->info.is_device) return be->vt->alloc(be, n, out, err);
    if (posix_memalign(out, 256, n)) {
        *out = NULL;
        return sl_err_set(err, SL_ERR_OOM_HOST, "bench: %zu bytes of host memory for the arena", n);
    }
    return SL_OK;
}

static void arena_free(sl_backend *be, void *p) {
    if (!p) return;
    if (be->info.is_device)
        be->vt->free(be, p);
    else
        free(p);
}

/* GEMM rate of the backend at the DiT's largest GEMM (FFN up-projection: M tokens, N = F,
 * K = D, bf16 weights, activations in the backend's dtype), random data. CPU backends use at
 * most 128 rows (the rate, not the shape, is what the table needs). */
static double measure_gemm(sl_backend *be, const sl_zimage_config *c, int M, char *shape,
                           size_t shape_n, sl_err *err) {
    bool cuda = !strcmp(be->info.name, "cuda");
    if (!cuda && M > 128) M = 128;
    const int N = c->ffn_dim, K = c->dim, reps = cuda ? 20 : 3;
    sl_dtype act = be->info.act_dtype;
    size_t need = 0;
    need += SL_ALIGN_UP((size_t)M * K * 4, 256) + SL_ALIGN_UP((size_t)N * K * 4, 256); /* f32 */
    need += SL_ALIGN_UP((size_t)M * K * 4, 256) + SL_ALIGN_UP((size_t)N * K * 2, 256);
    need += SL_ALIGN_UP((size_t)M * N * 4, 256) + 4096;
    void *mem = NULL;
    float *host = malloc((size_t)N * K * sizeof *host);
    sl_event *e0 = NULL, *e1 = NULL;
    double tflops = 0;
    sl_status st = host ? arena_alloc(be, need, &mem, err)
                        : sl_err_set(err, SL_ERR_OOM_HOST, "bench: GEMM host buffer");
    if (st == SL_OK && ((st = be->vt->event_create(be, &e0)) != SL_OK ||
                        (st = be->vt->event_create(be, &e1)) != SL_OK))
        sl_err_set(err, st, "bench: events: %s", be->last_error);
    if (st == SL_OK) {
        sl_ctx ctx;
        sl_ctx_init(&ctx, be, mem, need);
        sl_tensor xf = sl_new2(&ctx, SL_DTYPE_F32, M, K), wf = sl_new2(&ctx, SL_DTYPE_F32, N, K);
        sl_tensor x = sl_new2(&ctx, act, M, K), w = sl_new2(&ctx, SL_DTYPE_BF16, N, K);
        sl_tensor y = sl_new2(&ctx, act, M, N);
        sl_rng_normal(7, 1, 0, host, (int64_t)M * K);
        sl_upload(&ctx, &xf, host);
        sl_rng_normal(7, 2, 0, host, (int64_t)N * K);
        for (int64_t i = 0; i < (int64_t)N * K; i++)
            host[i] *= 0.02f;
        sl_upload(&ctx, &wf, host);
        sl_op_copy(&ctx, &x, &xf);
        sl_op_copy(&ctx, &w, &wf);
        for (int i = 0; i < 2; i++) /* warm-up: kernel selection, clocks */
            sl_op_matmul(&ctx, &y, &x, &w, NULL);
        be->vt->event_record(be, e0, SL_QUEUE_COMPUTE);
        for (int i = 0; i < reps; i++)
            sl_op_matmul(&ctx, &y, &x, &w, NULL);
        be->vt->event_record(be, e1, SL_QUEUE_COMPUTE);
        st = sl_ctx_take_error(&ctx, err);
        float ms = 0;
        if (st == SL_OK && (st = be->vt->event_sync(be, e1)) == SL_OK &&
            (st = be->vt->event_elapsed(be, e0, e1, &ms)) == SL_OK && ms > 0)
            tflops = 2.0 * M * N * K * reps / (ms * 1e-3) / 1e12;
        if (st != SL_OK) sl_err_set(err, st, "bench: GEMM timing: %s", be->last_error);
    }
    snprintf(shape, shape_n, "M=%d N=%d K=%d %s x bf16", M, N, K, sl_dtype_name(act));
    be->vt->sync(be);
    if (e0) be->vt->event_destroy(be, e0);
    if (e1) be->vt->event_destroy(be, e1);
    arena_free(be, mem);
    free(host);
    return st == SL_OK ? tflops : 0;
}

/* The weight dtype of a model: the dtype that holds most of its bytes (norms, biases and odd
 * rows stay float in quantised files). */
static const char *model_dtype(const sl_wdir *wd) {
    double by[SL_DTYPE_COUNT] = {0};
    int best = -1;
    for (int i = 0; i < sl_wdir_count(wd); i++) {
        const sl_wentry *e = sl_wdir_at(wd, i);
        if ((int)e->dtype < 0 || (int)e->dtype >= SL_DTYPE_COUNT) continue;
        by[e->dtype] += (double)e->nbytes;
        if (best < 0 || by[e->dtype] > by[best]) best = (int)e->dtype;
    }
    return best >= 0 ? sl_dtype_name((sl_dtype)best) : "?";
}

/* ---- one configuration ---- */

static void row_fail(sl_bench_row *row, sl_status st, const char *msg) {
    row->ok = false;
    snprintf(row->error, sizeof row->error, "%s: %s", sl_status_str(st), msg);
    SL_WARN("bench: %s: %s", row->setting, row->error);
}

/* The smallest budget the planner accepts (bisection between nothing and the whole model). */
static sl_status find_min_budget(dit_run *d, const sl_res_plan_opts *base, size_t *out,
                                 sl_err *err) {
    sl_res_plan_opts po = *base;
    sl_log_level lvl = sl_log_get_level();
    sl_log_set_level(SL_LOG_ERROR); /* one plan line per probe would drown the table */
    size_t lo = 0, hi = sl_res_total_bytes(d->res) + ((size_t)1 << 20);
    sl_err e = {0};
    po.budget = hi;
    sl_status st = sl_res_plan(d->res, &po, &e);
    while (st == SL_OK && hi - lo > BENCH_MIN_STEP) {
        size_t mid = lo + (hi - lo) / 2;
        po.budget = mid;
        sl_err_clear(&e);
        if (sl_res_plan(d->res, &po, &e) == SL_OK)
            hi = mid;
        else
            lo = mid;
    }
    sl_log_set_level(lvl);
    if (st != SL_OK) return sl_err_set(err, st, "%s", e.msg);
    *out = hi;
    return SL_OK;
}

static void run_config(dit_run *d, const char *mode, const char *btok, sl_bench_row *row) {
    const sl_bench_opts *o = d->o;
    sl_backend *be = d->be;
    sl_err err = {0};
    bool streaming = strcmp(mode, "none") != 0;
    snprintf(row->mode, sizeof row->mode, "%s", mode);
    snprintf(row->budget, sizeof row->budget, "%s", streaming ? btok : "all");
    snprintf(row->setting, sizeof row->setting, "%s%s%s", mode, streaming ? " " : "",
             streaming ? btok : "");

    sl_res_plan_opts po = {.budget = SIZE_MAX, .prefetch = o->prefetch, .link_gbps = d->link_gbps};
    sl_status st = SL_OK;
    if (streaming) {
        bool is_min = false;
        size_t b = 0;
        if ((st = sl_bench_parse_budget(btok, &b, &is_min, &err)) != SL_OK) {
            row_fail(row, st, err.msg);
            return;
        }
        if (is_min) {
            if ((st = find_min_budget(d, &po, &b, &err)) != SL_OK) {
                row_fail(row, st, err.msg);
                return;
            }
        } else if (b == SIZE_MAX) {
            b = sl_res_weight_budget(d->res, BENCH_RESERVE, 0, 0);
        }
        po.budget = b;
    }
    row->budget_bytes = po.budget;

    mem_probe probe = {0};
    if (d->probe) probe_start(&probe, be);
    if ((st = sl_res_plan(d->res, &po, &err)) != SL_OK ||
        (st = sl_res_load_device(d->res, &err)) != SL_OK) {
        if (d->probe) probe_stop(&probe);
        sl_res_park(d->res);
        row_fail(row, st, err.msg);
        return;
    }

    /* inputs carved at the arena's bottom; the forward's activations above them */
    const sl_zimage_config *c = &d->m->cfg;
    sl_ctx ctx;
    sl_ctx_init(&ctx, be, d->arena, d->arena_bytes);
    sl_tensor lat = sl_new3(&ctx, SL_DTYPE_F32, c->in_ch, d->Hl, d->Wl);
    sl_tensor cap = sl_new2(&ctx, SL_DTYPE_F32, d->Lc, c->cap_dim);
    sl_tensor vel = sl_new3(&ctx, SL_DTYPE_F32, c->in_ch, d->Hl, d->Wl);
    sl_upload(&ctx, &lat, d->h_lat);
    sl_upload(&ctx, &cap, d->h_cap);
    const sl_tensor *caps[1] = {&cap};
    sl_tensor *vels[1] = {&vel};
    const float t = 0.5f;
    int total = o->warmup + o->passes;
    for (int i = 0; i < total && st == SL_OK; i++) {
        if (i >= o->warmup) be->vt->event_record(be, d->ev[i - o->warmup], SL_QUEUE_COMPUTE);
        st = sl_zimage_forward(d->m, d->res, &ctx, &lat, t, caps, 1, vels, &err);
    }
    if (st == SL_OK) {
        be->vt->event_record(be, d->ev[o->passes], SL_QUEUE_COMPUTE);
        if ((st = be->vt->event_sync(be, d->ev[o->passes])) != SL_OK)
            sl_err_set(&err, st, "bench: %s", be->last_error);
    }
    for (int k = 0; st == SL_OK && k < o->passes; k++) {
        float ms = 0;
        if ((st = be->vt->event_elapsed(be, d->ev[k], d->ev[k + 1], &ms)) != SL_OK)
            sl_err_set(&err, st, "bench: event timing: %s", be->last_error);
        d->pass_ms[k] = ms;
    }
    size_t min_free = d->probe ? probe_stop(&probe) : 0;
    if (st != SL_OK) {
        sl_res_park(d->res);
        row_fail(row, st, err.msg);
        return;
    }

    sl_res_stats rs;
    sl_res_last_stats(d->res, &rs);
    sl_res_plan_info pi;
    sl_res_plan_info_get(d->res, &pi);
    row->ok = true;
    row->passes = o->passes;
    row->units_resident = pi.n_resident;
    row->units_streamed = pi.n_streamed;
    row->bytes_per_pass = rs.bytes_uploaded;
    row->stall_ms = rs.stall_ms;
    row->copy_ms = rs.copy_ms;
    row->compute_ms = rs.compute_ms;
    row->achieved_gbps = rs.copy_ms > 0 ? (double)rs.bytes_uploaded / (rs.copy_ms * 1e6) : 0;
    row->predicted_ms = pi.predicted_ms;
    row->plan_bytes = pi.device_bytes;
    row->arena_bytes = d->arena_bytes;
    row->pass_ms_min = row->pass_ms_max = d->pass_ms[0];
    for (int k = 1; k < o->passes; k++) {
        row->pass_ms_min = fmin(row->pass_ms_min, d->pass_ms[k]);
        row->pass_ms_max = fmax(row->pass_ms_max, d->pass_ms[k]);
    }
    row->pass_ms = sl_bench_median(d->pass_ms, o->passes);
    if (d->probe) {
        row->peak_accounted = pi.device_bytes + d->arena_bytes;
        row->peak_measured = d->free0 > min_free ? d->free0 - min_free : 0;
        row->peak_vram = SL_MAX(row->peak_accounted, row->peak_measured);
    }
    if (streaming && !strcmp(btok, "min"))
        snprintf(row->setting, sizeof row->setting, "%s min (%.2f GB)", mode,
                 (double)po.budget / 1e9);
    sl_res_park(d->res);
}

/* ---- the run ---- */

/* Ratios once every row is in: the compute-only pass is the median of the resident row (mode
 * none; else the first other row where nothing streamed), else the smallest compute time measured
 * in a streamed row. */
static void fill_ratios(sl_bench_result *r, double link_gbps) {
    double res_ms = -1, comp_ms = -1;
    for (int i = 0; i < r->n_rows; i++) {
        const sl_bench_row *w = &r->rows[i];
        if (!w->ok) continue;
        if (w->units_streamed == 0 && (res_ms < 0 || !strcmp(w->mode, "none"))) res_ms = w->pass_ms;
        if (w->compute_ms > 0 && (comp_ms < 0 || w->compute_ms < comp_ms)) comp_ms = w->compute_ms;
    }
    r->compute_ms = res_ms >= 0 ? res_ms : comp_ms;
    snprintf(r->compute_ref, sizeof r->compute_ref, "%s",
             res_ms >= 0    ? "resident"
             : comp_ms >= 0 ? "streamed compute"
                            : "none");
    for (int i = 0; i < r->n_rows; i++) {
        sl_bench_row *w = &r->rows[i];
        if (!w->ok) continue;
        double link_ms = link_gbps > 0 ? (double)w->bytes_per_pass / (link_gbps * 1e6) : 0;
        w->bound_ms = fmax(r->compute_ms, link_ms);
        w->ratio_bound = w->bound_ms > 0 ? w->pass_ms / w->bound_ms : -1;
        w->ratio_resident = res_ms > 0 ? w->pass_ms / res_ms : -1;
    }
}

static bool has_token(const char *list, const char *tok) {
    size_t n = strlen(tok);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == n && !strncmp(p, tok, n)) return true;
        p = e ? e + 1 : NULL;
    }
    return false;
}

sl_status sl_bench_dit(const sl_bench_opts *o, sl_bench_result *out, sl_err *err) {
    SL_ASSERT(o && out);
    memset(out, 0, sizeof *out);
    if (!o->model_path)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "bench: no model (--diffusion-model or --synth)");
    if (o->width <= 0 || o->height <= 0 || o->width % 16 || o->height % 16)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "bench: image size %dx%d: width and height must be positive multiples "
                          "of 16",
                          o->width, o->height);
    if (o->cap_tokens < 1 || o->passes < 1 || o->warmup < 0 || o->prefetch < 1)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "bench: need --cap-tokens >= 1, --passes >= 1, --warmup >= 0, "
                          "--prefetch >= 1 (got %d, %d, %d, %d)",
                          o->cap_tokens, o->passes, o->warmup, o->prefetch);
    for (const char *p = o->modes; p && *p;) { /* every mode is known */
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (!(k == 4 && !strncmp(p, "none", 4)) && !(k == 15 && !strncmp(p, "layer_streaming", 15)))
            return sl_err_set(err, SL_ERR_INVALID_ARG,
                              "bench: unknown mode '%.*s' in --modes (use none, layer_streaming)",
                              (int)k, p);
        p = e ? e + 1 : NULL;
    }

    dit_run d = {.o = o, .Hl = o->height / 8, .Wl = o->width / 8, .Lc = o->cap_tokens};
    sl_status st = sl_bench_open_backend(o->backend, o->threads, &d.be, err);
    if (st != SL_OK) return st;
    sl_backend *be = d.be;
    snprintf(out->kind, sizeof out->kind, "dit");
    snprintf(out->backend, sizeof out->backend, "%s", be->info.name);
    snprintf(out->device, sizeof out->device, "%s", be->info.device);
    sl_bench_now(out->date, sizeof out->date);
    snprintf(out->model, sizeof out->model, "%s", o->model_path);
    out->width = o->width;
    out->height = o->height;
    out->cap_tokens = o->cap_tokens;
    out->warmup = o->warmup;
    out->prefetch = o->prefetch;
    out->compute_ms = -1;
    d.probe = be->info.is_device;

    SL_INFO("bench: %s (%s), measuring the link", be->info.device, be->info.name);
    if ((st = sl_res_measure_link(be, 0, &out->link_gbps, err)) != SL_OK) goto done;
    d.link_gbps = out->link_gbps;

    const char *path = o->model_path;
    if ((st = sl_wdir_open(&d.wd, &path, 1, err)) != SL_OK) goto done;
    snprintf(out->dtype, sizeof out->dtype, "%s", model_dtype(d.wd));
    if ((st = sl_res_create(be, "diffusion model", &d.res, err)) != SL_OK) goto done;
    if ((st = sl_zimage_load(d.wd, d.res, o->tflops, &d.m, err)) != SL_OK) goto done;
    const sl_zimage_config *c = &d.m->cfg;
    sl_zimage_set_costs(d.m, d.res, d.Hl, d.Wl, d.Lc, 1, o->tflops);
    out->model_bytes = sl_res_total_bytes(d.res);
    SL_INFO("bench: loading %s (%.2f GB of %s weights) into the host home", path,
            (double)out->model_bytes / 1e9, out->dtype);
    if ((st = sl_res_set_wdir(d.res, d.wd, err)) != SL_OK ||
        (st = sl_res_load_host(d.res, err)) != SL_OK)
        goto done;

    /* the level the peaks are measured from: nothing of ours allocated yet */
    size_t tot = 0;
    be->vt->mem_info(be, &d.free0, &tot);

    /* tokens of the unified sequence: image tokens and caption tokens, each padded to 32 */
    int M = SL_ALIGN_UP((d.Hl / c->patch) * (d.Wl / c->patch), c->seq_multi) +
            SL_ALIGN_UP(d.Lc, c->seq_multi);
    if (!o->skip_gemm) {
        sl_err ge = {0};
        out->gemm_tflops = measure_gemm(be, c, M, out->gemm_shape, sizeof out->gemm_shape, &ge);
        if (ge.status) SL_WARN("bench: GEMM rate not measured: %s", ge.msg);
    }

    d.arena_bytes = sl_zimage_arena_bytes(c, be->info.act_dtype, d.Hl, d.Wl, &d.Lc, 1) +
                    io_bytes(c, d.Hl, d.Wl, d.Lc);
    if ((st = arena_alloc(be, d.arena_bytes, &d.arena, err)) != SL_OK) goto done;
    size_t nlat = (size_t)c->in_ch * d.Hl * d.Wl, ncap = (size_t)d.Lc * c->cap_dim;
    d.h_lat = malloc(nlat * sizeof *d.h_lat);
    d.h_cap = malloc(ncap * sizeof *d.h_cap);
    d.ev = calloc((size_t)o->passes + 1, sizeof *d.ev);
    d.pass_ms = calloc((size_t)o->passes, sizeof *d.pass_ms);
    if (!d.h_lat || !d.h_cap || !d.ev || !d.pass_ms) {
        st = sl_err_set(err, SL_ERR_OOM_HOST, "bench: out of host memory");
        goto done;
    }
    sl_rng_normal(o->seed, 1, 0, d.h_lat, (int64_t)nlat);
    sl_rng_normal(o->seed, 2, 0, d.h_cap, (int64_t)ncap);
    for (int k = 0; k <= o->passes; k++)
        if ((st = be->vt->event_create(be, &d.ev[k])) != SL_OK) {
            sl_err_set(err, st, "bench: events: %s", be->last_error);
            goto done;
        }

    /* configurations: resident first (the reference), then each streaming budget */
    int n_budgets = 1;
    for (const char *p = o->budgets; p && *p; p++)
        n_budgets += *p == ',';
    out->cap_rows = 1 + (has_token(o->modes, "layer_streaming") ? n_budgets : 0);
    out->rows = calloc((size_t)out->cap_rows, sizeof *out->rows);
    if (!out->rows) {
        st = sl_err_set(err, SL_ERR_OOM_HOST, "bench: out of host memory");
        goto done;
    }
    for (int k = 0; k < out->cap_rows; k++) {
        const char *mode = k == 0 ? "none" : "layer_streaming";
        char tok[32] = "all";
        if (k > 0) { /* the k-th budget token */
            const char *p = o->budgets;
            for (int j = 1; j < k; j++)
                p = strchr(p, ',') + 1;
            const char *e = strchr(p, ',');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            snprintf(tok, sizeof tok, "%.*s", (int)(n < sizeof tok ? n : sizeof tok - 1), p);
        }
        sl_bench_row *row = &out->rows[out->n_rows++];
        sl_bench_row_init(row, "sluice", "dit");
        snprintf(row->dtype, sizeof row->dtype, "%s", out->dtype);
        row->width = o->width;
        row->height = o->height;
        row->cap_tokens = o->cap_tokens;
        SL_INFO("bench: %s %s", mode, k ? tok : "");
        run_config(&d, mode, tok, row);
    }
    fill_ratios(out, out->link_gbps);

done:
    if (d.ev)
        for (int k = 0; k <= o->passes; k++)
            if (d.ev[k]) be->vt->event_destroy(be, d.ev[k]);
    free(d.ev);
    free(d.pass_ms);
    free(d.h_lat);
    free(d.h_cap);
    if (d.arena) {
        be->vt->sync(be);
        arena_free(be, d.arena);
    }
    sl_zimage_free(d.m);
    sl_res_free(d.res);
    sl_wdir_free(d.wd);
    sl_backend_destroy(be);
    if (st != SL_OK) {
        sl_bench_result_free(out);
        memset(out, 0, sizeof *out);
    }
    return st;
}
