/* pipeline/offload.c — offload modes, budgets and stage transitions (pipeline.h, ARCHITECTURE §4).
 *
 * The decisions are pure functions over numbers (sl_pipe_decide and friends), so that `auto` and
 * the per-mode memory requirements simulate exactly what the engine will do; the engine part at
 * the bottom turns a decision into sl_res_park / sl_res_plan / sl_res_load_device calls. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "pipeline/engine_impl.h"
#include "residency/planner.h"

static const char *const g_comp_name[SL_PIPE_NCOMP] = {"text encoder", "diffusion model", "VAE"};

static size_t sat_sub(size_t a, size_t b) {
    return a > b ? a - b : 0;
}
static size_t sat_add(size_t a, size_t b) {
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}
static double gb(size_t b) {
    return (double)b / 1e9;
}

/* ---- modes ---- */

static const char *const g_mode_names[] = {"auto",           "none",       "cond_only",
                                           "cond_diffusion", "aggressive", "layer_streaming"};

const char *sluice_offload_mode_name(sluice_offload_mode m) {
    return (unsigned)m < SL_ARRAY_LEN(g_mode_names) ? g_mode_names[m] : "?";
}

int sluice_offload_mode_parse(const char *name) {
    for (size_t i = 0; name && i < SL_ARRAY_LEN(g_mode_names); i++)
        if (!strcmp(name, g_mode_names[i])) return (int)i;
    return -1;
}

sl_pipe_policy sl_pipe_policy_make(sluice_offload_mode m, const sluice_engine_params *p) {
    sl_pipe_policy pol = {.mode = m};
    switch (m) {
    case SLUICE_OFFLOAD_AUTO:
    case SLUICE_OFFLOAD_NONE:
        pol.mode = SLUICE_OFFLOAD_NONE;
        pol.pin_all = true;
        break;
    case SLUICE_OFFLOAD_COND_ONLY:
        pol.park_after[SL_PIPE_TE] = true;
        break;
    case SLUICE_OFFLOAD_COND_DIFFUSION:
        pol.park_after[SL_PIPE_TE] = pol.park_after[SL_PIPE_DIT] = true;
        break;
    case SLUICE_OFFLOAD_AGGRESSIVE:
        pol.park_after[SL_PIPE_TE] = pol.park_after[SL_PIPE_DIT] = true;
        pol.park_after[SL_PIPE_VAE] = true;
        break;
    case SLUICE_OFFLOAD_LAYER_STREAMING:
        pol.park_after[SL_PIPE_TE] = pol.park_after[SL_PIPE_DIT] = true;
        pol.stream = true;
        break;
    }
    if (p) {
        if (p->offload_cond_stage >= 0) pol.park_after[SL_PIPE_TE] = p->offload_cond_stage != 0;
        if (p->offload_diffusion >= 0) pol.park_after[SL_PIPE_DIT] = p->offload_diffusion != 0;
        if (p->reload_cond_stage >= 0) pol.reload[SL_PIPE_TE] = p->reload_cond_stage != 0;
        if (p->reload_diffusion >= 0) pol.reload[SL_PIPE_DIT] = p->reload_diffusion != 0;
    }
    return pol;
}

/* ---- the planner on a view ---- */

static double view_compute(const sl_pipe_view *v) {
    double s = 0;
    for (int i = 0; i < v->n; i++)
        s += v->cost[i];
    return s;
}

static sl_status view_plan(const sl_pipe_view *v, size_t budget, int prefetch, double gbps,
                           sl_plan_out *out, sl_err *err) {
    bool small[64], *res = v->n <= 64 ? small : malloc((size_t)v->n * sizeof *res);
    if (!res) return sl_err_set(err, SL_ERR_OOM_HOST, "out of host memory planning");
    sl_plan_in in = {.n = v->n,
                     .bytes = v->bytes,
                     .cost = v->cost,
                     .link_gbps = gbps,
                     .budget = budget,
                     .prefetch = prefetch < 1 ? 1 : prefetch,
                     .must_resident = v->must};
    sl_status st = sl_plan_make(&in, res, out, err);
    if (res != small) free(res);
    return st;
}

size_t sl_pipe_view_min_budget(const sl_pipe_view *v, int prefetch, double gbps) {
    size_t lo = 0, hi = v->whole; /* hi always fits: everything resident */
    sl_plan_out o;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        sl_err e = {0};
        if (view_plan(v, mid, prefetch, gbps, &o, &e) == SL_OK)
            hi = mid;
        else
            lo = mid + 1;
    }
    return hi;
}

void sl_pipe_job_free(sl_pipe_job *job) {
    for (int c = 0; c < SL_PIPE_NCOMP; c++)
        sl_pipe_view_free(&job->view[c]);
}

void sl_pipe_view_free(sl_pipe_view *v) {
    free(v->bytes);
    free(v->cost);
    free(v->must);
    memset(v, 0, sizeof *v);
}

/* ---- decisions ---- */

/* Σ device bytes of loaded components other than c. */
static size_t others_bytes(const sl_pipe_state *st, int c) {
    size_t s = 0;
    for (int x = 0; x < SL_PIPE_NCOMP; x++)
        if (x != c && st->loaded[x]) s = sat_add(s, st->dev[x]);
    return s;
}

/* Park the cheapest set of idle loaded components (least bytes to reload) that frees at least
 * `need` bytes. False when even all of them do not. */
static bool evict_min(const sl_pipe_state *st, int c, size_t need, bool park[SL_PIPE_NCOMP]) {
    int cand[SL_PIPE_NCOMP], n = 0;
    for (int x = 0; x < SL_PIPE_NCOMP; x++)
        if (x != c && st->loaded[x] && !park[x]) cand[n++] = x;
    int best = -1;
    size_t best_b = SIZE_MAX;
    for (int mask = 1; mask < (1 << n); mask++) {
        size_t b = 0;
        for (int k = 0; k < n; k++)
            if (mask & (1 << k)) b = sat_add(b, st->dev[cand[k]]);
        if (b >= need && b < best_b) best = mask, best_b = b;
    }
    if (need == 0) return true;
    if (best < 0) return false;
    for (int k = 0; k < n; k++)
        if (best & (1 << k)) park[cand[k]] = true;
    return true;
}

static void park_idle(const sl_pipe_state *st, int c, bool park[SL_PIPE_NCOMP]) {
    for (int x = 0; x < SL_PIPE_NCOMP; x++)
        if (x != c && st->loaded[x]) park[x] = true;
}

static size_t parked_bytes(const sl_pipe_state *st, const bool park[SL_PIPE_NCOMP]) {
    size_t s = 0;
    for (int x = 0; x < SL_PIPE_NCOMP; x++)
        if (park[x] && st->loaded[x]) s = sat_add(s, st->dev[x]);
    return s;
}

/* VAE fallback: decode in tiles within what is left beside its weights. */
static sl_status decide_tiles(const sl_pipe_policy *pol, const sl_pipe_job *job, size_t usable,
                              const sl_pipe_state *st, sl_pipe_decision *d, sl_err *err) {
    const int c = SL_PIPE_VAE;
    const sl_pipe_view *v = &job->view[c];
    if (!pol->pin_all) park_idle(st, c, d->park);
    size_t others = sat_sub(others_bytes(st, c), parked_bytes(st, d->park));
    size_t room = sat_sub(usable, others);
    size_t wdev = v->whole;
    d->budget = SIZE_MAX;
    d->pass_s = view_compute(v);
    if (pol->stream && room <= v->whole) {
        /* the weights do not leave room for a tile: stream them within the smallest budget */
        size_t mb = sl_pipe_view_min_budget(v, job->prefetch, job->link_gbps);
        sl_plan_out o;
        if (mb < room && view_plan(v, mb, job->prefetch, job->link_gbps, &o, err) == SL_OK) {
            d->budget = mb;
            wdev = o.device_bytes;
            d->pass_s = o.pass_s;
        }
    }
    sl_fluxvae_tiling tl;
    sl_err e2 = {0};
    if (wdev >= room || sl_fluxvae_choose_tiling(&job->vae_cfg, job->act, room - wdev, job->lat_h,
                                                 job->lat_w, &tl, &e2) != SL_OK)
        return sl_err_set(
            err, SL_ERR_OOM_DEVICE,
            "not enough device memory for the VAE decode: %.3f GB of weights and "
            "%.3f GB of activations (even tiled) do not fit the %.3f GB usable "
            "(free VRAM, lower the resolution or --streaming-min-vram)",
            gb(wdev), gb(sl_fluxvae_decode_arena_bytes(&job->vae_cfg, 8, 8, job->act)), gb(room));
    d->tile = tl.tile;
    d->overlap = tl.overlap;
    d->arena = sl_fluxvae_decode_arena_bytes(&job->vae_cfg, SL_MIN(tl.tile, job->lat_h),
                                             SL_MIN(tl.tile, job->lat_w), job->act);
    d->dev = wdev;
    d->load[c] = !(st->loaded[c] && st->budget[c] == d->budget);
    if (!d->load[c] && st->loaded[c]) d->dev = st->dev[c];
    return SL_OK;
}

sl_status sl_pipe_decide(const sl_pipe_policy *pol, const sl_pipe_job *job, size_t usable,
                         const sl_pipe_state *st, int c, sl_pipe_decision *d, sl_err *err) {
    memset(d, 0, sizeof *d);
    const sl_pipe_view *v = &job->view[c];
    const size_t A = job->arena[c], W = v->whole;
    d->budget = SIZE_MAX;
    d->arena = A;
    d->dev = W;
    d->pass_s = view_compute(v);
    bool whole_loaded = st->loaded[c] && st->budget[c] == SIZE_MAX;

    if (pol->pin_all) {
        /* none: everything loaded whole at conditioning (a component streamed by an earlier
         * request in another mode is reloaded whole), nothing ever evicted */
        size_t total = 0;
        for (int x = 0; x < SL_PIPE_NCOMP; x++) {
            bool wl = st->loaded[x] && st->budget[x] == SIZE_MAX;
            if (x == c || c == SL_PIPE_TE || st->loaded[x]) {
                if (!wl) d->load[x] = true;
                total = sat_add(total, job->view[x].whole);
            }
        }
        /* at conditioning, check the sampling stage's activations too: fail before anything
         * runs rather than after conditioning (the VAE may still fall back to tiles) */
        size_t Ak = c == SL_PIPE_TE ? SL_MAX(A, job->arena[SL_PIPE_DIT]) : A;
        if (sat_add(total, Ak) <= usable) return SL_OK;
        if (c == SL_PIPE_VAE) {
            memset(d->load, 0, sizeof d->load);
            return decide_tiles(pol, job, usable, st, d, err);
        }
        return sl_err_set(err, SL_ERR_OOM_DEVICE,
                          "offload mode none keeps every component on the device: %.3f GB of "
                          "weights + %.3f GB of %s activations = %.3f GB, but only %.3f GB are "
                          "usable",
                          gb(total), gb(Ak), Ak == A ? g_comp_name[c] : "diffusion model",
                          gb(sat_add(total, Ak)), gb(usable));
    }

    size_t others = others_bytes(st, c);
    if ((whole_loaded || !st->loaded[c]) && sat_add(sat_add(W, A), others) <= usable) {
        d->load[c] = !whole_loaded;
        return SL_OK;
    }
    if (sat_add(W, A) <= usable) {
        /* fits whole once idle components make room */
        bool ok = evict_min(st, c, sat_sub(sat_add(sat_add(W, A), others), usable), d->park);
        SL_ASSERT(ok);
        d->load[c] = !whole_loaded;
        return SL_OK;
    }
    if (pol->stream && usable > A) {
        memset(d->park, 0, sizeof d->park);
        park_idle(st, c, d->park);
        size_t B = usable - A;
        sl_plan_out o;
        sl_err e2 = {0};
        if (view_plan(v, B, job->prefetch, job->link_gbps, &o, &e2) == SL_OK) {
            d->budget = B;
            d->dev = o.device_bytes;
            d->pass_s = o.pass_s;
            d->load[c] = !(st->loaded[c] && st->budget[c] == B);
            if (!d->load[c]) d->dev = st->dev[c];
            return SL_OK;
        }
    }
    if (c == SL_PIPE_VAE) {
        memset(d->park, 0, sizeof d->park);
        return decide_tiles(pol, job, usable, st, d, err);
    }
    if (pol->stream) {
        size_t mb = sl_pipe_view_min_budget(v, job->prefetch, job->link_gbps);
        return sl_err_set(err, SL_ERR_OOM_DEVICE,
                          "not enough device memory for the %s even streamed: at least %.3f GB "
                          "of weights (resident units + %d slots) + %.3f GB of activations, "
                          "only %.3f GB usable (lower the resolution, --streaming-prefetch 1, or "
                          "a smaller --streaming-min-vram)",
                          g_comp_name[c], gb(mb), job->prefetch + 1, gb(A), gb(usable));
    }
    return sl_err_set(err, SL_ERR_OOM_DEVICE,
                      "not enough device memory for the %s in offload mode %s: %.3f GB of weights "
                      "+ %.3f GB of activations, only %.3f GB usable",
                      g_comp_name[c], sluice_offload_mode_name(pol->mode), gb(W), gb(A),
                      gb(usable));
}

void sl_pipe_state_apply(sl_pipe_state *st, int c, const sl_pipe_decision *d,
                         const sl_pipe_job *job) {
    for (int x = 0; x < SL_PIPE_NCOMP; x++) {
        if (d->park[x]) {
            st->loaded[x] = false;
            st->dev[x] = 0;
        }
        if (d->load[x]) {
            st->loaded[x] = true;
            st->dev[x] = x == c ? d->dev : job->view[x].whole;
            st->budget[x] = x == c ? d->budget : SIZE_MAX;
        }
    }
}

void sl_pipe_state_stage_exit(sl_pipe_state *st, const sl_pipe_policy *pol, int c) {
    if (pol->park_after[c]) {
        st->loaded[c] = false;
        st->dev[c] = 0;
    }
}

/* Which parked components the end of a request loads back (whole, when they fit). */
static void reload_set(const sl_pipe_state *st, const sl_pipe_policy *pol, const sl_pipe_job *job,
                       size_t usable, bool out[SL_PIPE_NCOMP]) {
    size_t used = others_bytes(st, -1);
    for (int x = 0; x < SL_PIPE_NCOMP; x++) {
        out[x] = false;
        if (!pol->reload[x] || st->loaded[x]) continue;
        if (sat_add(used, job->view[x].whole) > usable) continue;
        out[x] = true;
        used += job->view[x].whole;
    }
}

void sl_pipe_state_request_end(sl_pipe_state *st, const sl_pipe_policy *pol, const sl_pipe_job *job,
                               size_t usable) {
    bool rl[SL_PIPE_NCOMP];
    reload_set(st, pol, job, usable, rl);
    for (int x = 0; x < SL_PIPE_NCOMP; x++)
        if (rl[x]) {
            st->loaded[x] = true;
            st->dev[x] = job->view[x].whole;
            st->budget[x] = SIZE_MAX;
        }
}

void sl_pipe_simulate(const sl_pipe_policy *pol, const sl_pipe_job *job, size_t usable,
                      sl_pipe_state *st, sl_pipe_sim *out, sl_err *err) {
    memset(out, 0, sizeof *out);
    double compute = 0;
    for (int c = 0; c < SL_PIPE_NCOMP; c++) {
        sl_pipe_decision d;
        if ((out->status = sl_pipe_decide(pol, job, usable, st, c, &d, err)) != SL_OK) return;
        for (int x = 0; x < SL_PIPE_NCOMP; x++)
            if (d.load[x]) out->load_bytes += x == c ? d.dev : job->view[x].whole;
        sl_pipe_state_apply(st, c, &d, job);
        compute += job->passes[c] * d.pass_s;
        if (d.tile) out->vae_tiled = true;
        sl_pipe_state_stage_exit(st, pol, c);
    }
    bool rl[SL_PIPE_NCOMP];
    reload_set(st, pol, job, usable, rl);
    for (int x = 0; x < SL_PIPE_NCOMP; x++)
        if (rl[x]) out->load_bytes += job->view[x].whole;
    sl_pipe_state_request_end(st, pol, job, usable);
    double bw = (job->link_gbps > 0 ? job->link_gbps : SL_PLAN_DEFAULT_GBPS) * 1e9;
    out->transfer_s = (double)out->load_bytes / bw;
    out->time_s = compute + out->transfer_s;
}

/* Does a request in this policy run from a cold device within `usable`, untiled? */
static bool fits_cold(const sl_pipe_policy *pol, const sl_pipe_job *job, size_t usable) {
    sl_pipe_state st = {0};
    sl_pipe_sim sim;
    sl_err e = {0};
    sl_pipe_simulate(pol, job, usable, &st, &sim, &e);
    return sim.status == SL_OK && !sim.vae_tiled;
}

void sl_pipe_requirements(const sluice_engine_params *p, const sl_pipe_job *job,
                          size_t need[SLUICE_OFFLOAD_LAYER_STREAMING + 1]) {
    size_t hi = 0;
    for (int c = 0; c < SL_PIPE_NCOMP; c++)
        hi = sat_add(hi, sat_add(job->view[c].whole, job->arena[c]));
    need[SLUICE_OFFLOAD_AUTO] = SIZE_MAX;
    for (int m = SLUICE_OFFLOAD_NONE; m <= SLUICE_OFFLOAD_LAYER_STREAMING; m++) {
        sl_pipe_policy pol = sl_pipe_policy_make((sluice_offload_mode)m, p);
        if (!fits_cold(&pol, job, hi)) {
            need[m] = SIZE_MAX;
            continue;
        }
        size_t lo = 0, h = hi;
        while (lo < h) {
            size_t mid = lo + (h - lo) / 2;
            if (fits_cold(&pol, job, mid))
                h = mid;
            else
                lo = mid + 1;
        }
        need[m] = h;
        if (h < need[SLUICE_OFFLOAD_AUTO]) need[SLUICE_OFFLOAD_AUTO] = h;
    }
}

sl_status sl_pipe_auto(const sluice_engine_params *p, const sl_pipe_job *job, size_t usable,
                       const sl_pipe_state *st0, sluice_offload_mode *mode, double *predicted_s,
                       char *why, size_t why_len, sl_err *err) {
    int best = -1;
    bool best_tiled = true;
    double best_t = INFINITY;
    char skipped[512] = "";
    size_t need[SLUICE_OFFLOAD_LAYER_STREAMING + 1];
    bool have_need = false;
    for (int m = SLUICE_OFFLOAD_NONE; m <= SLUICE_OFFLOAD_LAYER_STREAMING; m++) {
        sl_pipe_policy pol = sl_pipe_policy_make((sluice_offload_mode)m, p);
        sl_pipe_state st = *st0;
        sl_pipe_sim sim;
        sl_err e = {0};
        /* the first request from the current state, then one in steady state */
        sl_pipe_simulate(&pol, job, usable, &st, &sim, &e);
        if (sim.status == SL_OK) sl_pipe_simulate(&pol, job, usable, &st, &sim, &e);
        if (sim.status != SL_OK) {
            if (!have_need) {
                sl_pipe_requirements(p, job, need);
                have_need = true;
            }
            size_t k = strlen(skipped);
            if (k < sizeof skipped - 1)
                snprintf(skipped + k, sizeof skipped - k, "%s%s needs %.3f GB", k ? ", " : "",
                         sluice_offload_mode_name((sluice_offload_mode)m),
                         need[m] == SIZE_MAX ? INFINITY : gb(need[m]));
            continue;
        }
        bool better = best < 0 || (best_tiled && !sim.vae_tiled) ||
                      (best_tiled == sim.vae_tiled && sim.time_s < best_t * (1 - 1e-9));
        if (better) {
            best = m;
            best_t = sim.time_s;
            best_tiled = sim.vae_tiled;
        }
    }
    if (best < 0)
        return sl_err_set(err, SL_ERR_OOM_DEVICE,
                          "no offload mode fits this request in the %.3f GB of device memory "
                          "usable (%s); lower the resolution or --streaming-min-vram, or free "
                          "VRAM",
                          gb(usable), skipped);
    *mode = (sluice_offload_mode)best;
    *predicted_s = best_t;
    snprintf(why, why_len, "offload mode auto: %s, predicted %.3f s per request%s%s%s%s",
             sluice_offload_mode_name(*mode), best_t, best_tiled ? " (VAE decoded in tiles)" : "",
             skipped[0] ? "; " : "", skipped, skipped[0] ? " (does not fit)" : "");
    return SL_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* the engine side                                                                            */
/* ------------------------------------------------------------------------------------------ */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static sl_log_level olog(const sluice_engine *e) {
    return e->p.offload_log ? SL_LOG_INFO : SL_LOG_DEBUG;
}

size_t sl_pipe_usable(sluice_engine *e) {
    if (!e->device) return SIZE_MAX;
    size_t fr = 0, tot = 0;
    e->be->vt->mem_info(e->be, &fr, &tot);
    size_t ours = 0;
    for (int c = 0; c < SL_PIPE_NCOMP; c++)
        if (sl_res_is_loaded(e->comp[c].res))
            ours = sat_add(ours, sl_res_plan_bytes(e->comp[c].res));
    size_t reserve = (size_t)(e->p.streaming_min_vram_mb > 0 ? e->p.streaming_min_vram_mb : 0)
                     << 20;
    /* the backend's own workspace and grow-only scratch count against every budget */
    size_t priv = e->be->info.private_bytes;
    size_t u = sat_sub(sat_sub(sat_add(fr, ours), reserve), priv);
    if (e->p.max_vram_gb > 0) {
        double cap = e->p.max_vram_gb * 1073741824.0 - (double)priv;
        if (cap < 0) cap = 0;
        if (cap < (double)u) u = (size_t)cap;
    }
    return u;
}

static void state_get(sluice_engine *e, sl_pipe_state *st) {
    memset(st, 0, sizeof *st);
    for (int c = 0; c < SL_PIPE_NCOMP; c++) {
        st->loaded[c] = sl_res_is_loaded(e->comp[c].res);
        st->dev[c] = st->loaded[c] ? sl_res_plan_bytes(e->comp[c].res) : 0;
        st->budget[c] = e->comp[c].budget;
    }
}

sl_status sl_pipe_view_get(sluice_engine *e, int c, sl_pipe_view *v, sl_err *err) {
    const sl_res *r = e->comp[c].res;
    int n = sl_res_unit_count(r);
    memset(v, 0, sizeof *v);
    v->n = n;
    size_t k = (size_t)(n ? n : 1);
    v->bytes = calloc(k, sizeof *v->bytes);
    v->cost = calloc(k, sizeof *v->cost);
    v->must = calloc(k, sizeof *v->must);
    if (!v->bytes || !v->cost || !v->must) {
        sl_pipe_view_free(v);
        return sl_err_set(err, SL_ERR_OOM_HOST, "out of host memory planning");
    }
    /* declaration order is the pass order of all three models */
    for (int i = 0; i < n; i++) {
        v->bytes[i] = sl_res_unit_bytes(r, i);
        v->cost[i] = sl_res_unit_cost(r, i, NULL);
        v->must[i] = i == e->comp[c].held_unit;
        v->whole += v->bytes[i];
    }
    return SL_OK;
}

int sl_pipe_streamed_units(const sluice_engine *e, int c) {
    return e->comp[c].max_streamed;
}

void sl_pipe_park_all(sluice_engine *e) {
    for (int c = 0; c < SL_PIPE_NCOMP; c++) {
        if (e->comp[c].res && sl_res_is_loaded(e->comp[c].res)) {
            sl_log(olog(e), "offload: park %s", e->comp[c].name);
            sl_res_park(e->comp[c].res);
        }
        e->comp[c].budget = SIZE_MAX;
    }
}

static sl_status load_comp(sluice_engine *e, int x, size_t budget, sl_err *err) {
    pipe_comp *pc = &e->comp[x];
    sl_res_plan_opts o = {
        .budget = budget, .prefetch = e->p.streaming_prefetch, .link_gbps = e->link_gbps};
    sl_status st = sl_res_plan(pc->res, &o, err);
    if (st == SL_OK) st = sl_res_load_device(pc->res, err);
    if (st != SL_OK) {
        sl_res_park(pc->res);
        return st;
    }
    pc->budget = budget;
    sl_res_plan_info pi;
    sl_res_plan_info_get(pc->res, &pi);
    pc->max_streamed = SL_MAX(pc->max_streamed, pi.n_streamed);
    sl_log(olog(e),
           "offload: load %s: %d resident / %d streamed units, %.3f GB on the device%s%s "
           "(budget %s%.3f GB), predicted %.1f ms/pass",
           pc->name, pi.n_resident, pi.n_streamed, gb(pi.device_bytes),
           pi.n_streamed ? ", slots " : "", pi.n_streamed ? "ring" : "",
           budget == SIZE_MAX ? "whole, " : "",
           budget == SIZE_MAX ? gb(pi.device_bytes) : gb(budget), pi.predicted_ms);
    return SL_OK;
}

sl_status sl_pipe_stage_enter(sluice_engine *e, const sl_pipe_policy *pol, int c,
                              const sl_pipe_job *job, size_t *arena, int *tile, void **arena_mem,
                              sl_err *err) {
    double t0 = now_s();
    *arena_mem = NULL;
    *tile = 0;
    sl_pipe_state st;
    state_get(e, &st);
    size_t usable = sl_pipe_usable(e);
    sl_pipe_decision d;
    sl_status s = sl_pipe_decide(pol, job, usable, &st, c, &d, err);
    if (s != SL_OK) return s;
    static const char *const stage[] = {"conditioning", "sampling", "VAE decode"};
    sl_log(olog(e), "offload: before %s (mode %s): %.3f GB usable, activations %.3f GB%s", stage[c],
           sluice_offload_mode_name(pol->mode), usable == SIZE_MAX ? INFINITY : gb(usable),
           gb(d.arena), d.tile ? " (tiled decode)" : "");
    for (int x = 0; x < SL_PIPE_NCOMP; x++)
        if (d.park[x]) {
            sl_log(olog(e), "offload: park %s (room for the %s)", e->comp[x].name, e->comp[c].name);
            sl_res_park(e->comp[x].res);
            e->comp[x].budget = SIZE_MAX;
        }
    bool loaded_any = false;
    for (int x = 0; x < SL_PIPE_NCOMP; x++) {
        if (!d.load[x]) {
            if (x == c) sl_log(olog(e), "offload: keep %s", e->comp[x].name);
            continue;
        }
        if ((s = load_comp(e, x, x == c ? d.budget : SIZE_MAX, err)) != SL_OK) return s;
        loaded_any = true;
    }
    if (loaded_any) e->be->vt->sync(e->be); /* the stage waits for its uploads anyway; time them */
    if (d.tile) {
        SL_WARN("VAE: decoding in %dx%d latent tiles (overlap %d): an untiled decode needs %.3f GB "
                "of activations and %.3f GB are usable; the image is close to, not identical "
                "to, the untiled one",
                d.tile, d.tile, d.overlap, gb(job->arena[c]), gb(usable));
        *tile = d.tile;
    }
    *arena = d.arena;
    if (d.arena) {
        sl_err e2 = {0};
        if ((s = e->be->vt->alloc(e->be, d.arena, arena_mem, &e2)) != SL_OK) {
            *arena_mem = NULL;
            return sl_err_set(err, s, "cannot allocate the %s's activation arena of %.3f GB: %s",
                              e->comp[c].name, gb(d.arena), e2.msg);
        }
    }
    e->timings.transfer_s += now_s() - t0;
    return SL_OK;
}

void sl_pipe_stage_exit(sluice_engine *e, const sl_pipe_policy *pol, int c, void *arena_mem) {
    if (arena_mem) e->be->vt->free(e->be, arena_mem);
    if (pol->park_after[c] && sl_res_is_loaded(e->comp[c].res)) {
        double t0 = now_s();
        sl_log(olog(e), "offload: park %s (after its stage, mode %s)", e->comp[c].name,
               sluice_offload_mode_name(pol->mode));
        sl_res_park(e->comp[c].res);
        e->comp[c].budget = SIZE_MAX;
        e->timings.transfer_s += now_s() - t0;
    }
}

void sl_pipe_request_end(sluice_engine *e, const sl_pipe_policy *pol) {
    sl_pipe_state st;
    state_get(e, &st);
    bool rl[SL_PIPE_NCOMP];
    sl_pipe_job job = {0};
    for (int c = 0; c < SL_PIPE_NCOMP; c++)
        job.view[c].whole = sl_res_total_bytes(e->comp[c].res);
    reload_set(&st, pol, &job, sl_pipe_usable(e), rl);
    double t0 = now_s();
    bool any = false;
    for (int x = 0; x < SL_PIPE_NCOMP; x++) {
        if (pol->reload[x] && !st.loaded[x] && !rl[x])
            sl_log(olog(e), "offload: not reloading the %s (does not fit)", e->comp[x].name);
        if (!rl[x]) continue;
        sl_err err = {0};
        sl_log(olog(e), "offload: reload %s for the next request", e->comp[x].name);
        if (load_comp(e, x, SIZE_MAX, &err) != SL_OK)
            SL_WARN("offload: reloading the %s failed: %s", e->comp[x].name, err.msg);
        any = true;
    }
    if (any) {
        e->be->vt->sync(e->be);
        e->timings.transfer_s += now_s() - t0;
    }
}

sl_status sl_pipe_choose(sluice_engine *e, const sl_pipe_job *job, sl_pipe_policy *pol,
                         double *predicted_s, sl_err *err) {
    sl_pipe_state st;
    state_get(e, &st);
    size_t usable = sl_pipe_usable(e);
    sluice_offload_mode m = e->p.offload_mode;
    *predicted_s = 0;
    if (m == SLUICE_OFFLOAD_AUTO) {
        char why[768];
        sl_status s = sl_pipe_auto(&e->p, job, usable, &st, &m, predicted_s, why, sizeof why, err);
        if (s != SL_OK) return s;
        /* on a host backend every mode is the same (weights used in place): not worth a line */
        sl_log(e->device ? SL_LOG_INFO : SL_LOG_DEBUG, "%s", why);
        *pol = sl_pipe_policy_make(m, &e->p);
        return SL_OK;
    }
    *pol = sl_pipe_policy_make(m, &e->p);
    /* check the whole request up front, so that a mode that cannot work fails before any stage
     * runs, naming a mode that would fit */
    sl_pipe_sim sim;
    sl_err e2 = {0};
    sl_pipe_simulate(pol, job, usable, &st, &sim, &e2);
    if (sim.status != SL_OK) {
        size_t need[SLUICE_OFFLOAD_LAYER_STREAMING + 1];
        sl_pipe_requirements(&e->p, job, need);
        char hint[256] = "";
        for (int k = SLUICE_OFFLOAD_NONE; k <= SLUICE_OFFLOAD_LAYER_STREAMING; k++)
            if (k != (int)m && need[k] <= usable) {
                snprintf(hint, sizeof hint, "; --offload-mode %s fits (needs %.3f GB)",
                         sluice_offload_mode_name((sluice_offload_mode)k), gb(need[k]));
                break;
            }
        if (!hint[0] && need[SLUICE_OFFLOAD_AUTO] != SIZE_MAX)
            snprintf(hint, sizeof hint,
                     "; no offload mode fits (the least demanding needs %.3f GB): lower the "
                     "resolution or --streaming-min-vram, or free VRAM",
                     gb(need[SLUICE_OFFLOAD_AUTO]));
        return sl_err_set(err, sim.status, "%s%s", e2.msg, hint);
    }
    *predicted_s = sim.time_s;
    sl_log(olog(e), "offload mode %s: predicted %.3f s per request (transfers %.3f s)%s",
           sluice_offload_mode_name(m), sim.time_s, sim.transfer_s,
           sim.vae_tiled ? ", VAE decoded in tiles" : "");
    return SL_OK;
}
