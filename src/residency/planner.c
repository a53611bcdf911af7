/* residency/planner.c — see planner.h. */
#include "residency/planner.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SIM_PASSES = 3 };

static double bw_bytes_per_s(const sl_plan_in *in) {
    return (in->link_gbps > 0 ? in->link_gbps : SL_PLAN_DEFAULT_GBPS) * 1e9;
}

static double cost_of(const sl_plan_in *in, int i) {
    return in->cost ? in->cost[i] : 0.0;
}

/* Sizes of a placement. */
static void measure(const sl_plan_in *in, const bool *res, int slots, sl_plan_out *o) {
    memset(o, 0, sizeof *o);
    for (int i = 0; i < in->n; i++) {
        o->compute_s += cost_of(in, i);
        if (res[i]) {
            o->resident_bytes += in->bytes[i];
            o->n_resident++;
        } else {
            o->streamed_bytes += in->bytes[i];
            o->slot_bytes = SL_MAX(o->slot_bytes, in->bytes[i]);
            o->n_streamed++;
        }
    }
    o->slots = o->n_streamed ? slots : 0;
    if (!o->n_streamed) o->slot_bytes = 0;
    o->device_bytes = o->resident_bytes + (size_t)o->slots * o->slot_bytes;
    o->link_s = (double)o->streamed_bytes / bw_bytes_per_s(in);
}

/* Device bytes of a placement, SIZE_MAX on overflow. */
static size_t device_bytes(const sl_plan_in *in, const bool *res, int slots) {
    unsigned long long r = 0, mx = 0, tot;
    bool any = false;
    for (int i = 0; i < in->n; i++) {
        if (res[i]) {
            if (!sl_add_u64(r, in->bytes[i], &r)) return SIZE_MAX;
        } else {
            any = true;
            if (in->bytes[i] > mx) mx = in->bytes[i];
        }
    }
    if (!any) return (size_t)r;
    if (!sl_mul_u64(mx, (unsigned long long)slots, &mx) || !sl_add_u64(r, mx, &tot) ||
        tot > SIZE_MAX)
        return SIZE_MAX;
    return (size_t)tot;
}

double sl_plan_simulate(const sl_plan_in *in, const bool *res, int slots, sl_plan_out *out) {
    SL_ASSERT(in && res && in->n >= 0);
    sl_plan_out o;
    measure(in, res, slots, &o);
    int m = o.n_streamed;
    SL_ASSERTF(m == 0 || slots >= 1, "planner: %d streamed units and no slots", m);
    double bw = bw_bytes_per_s(in);
    /* Streamed units held across the pass (must_resident but streamed under force_stream_all)
     * keep a slot from their use to the end of the pass; the others share the remaining ring. */
    int nspan = 0;
    for (int i = 0; i < in->n; i++)
        if (!res[i] && in->must_resident && in->must_resident[i]) nspan++;
    int ring = slots - nspan;
    if (m && ring < 1) {
        o.pass_s = INFINITY; /* the engine could not acquire the other units */
        if (out) *out = o;
        return INFINITY;
    }
    /* compute end of the last `ring` ring units, indexed by ring position; release time of each
     * spanning unit (the end of the pass that used it) */
    double small[64], *end = small, *span_rel = small + 32;
    if (ring > 32 || in->n > 32) {
        end = malloc((size_t)(ring + in->n) * sizeof *end);
        SL_ASSERT(end);
        span_rel = end + ring;
    }
    for (int s = 0; s < ring; s++)
        end[s] = 0;
    for (int i = 0; i < in->n; i++)
        span_rel[i] = 0;
    double copy_free = 0, comp = 0, pass_s = 0;
    long j = 0; /* ring position over all passes */
    for (int p = 0; p < SIM_PASSES; p++) {
        double start = comp;
        for (int i = 0; i < in->n; i++) {
            if (res[i]) {
                comp += cost_of(in, i);
                continue;
            }
            bool span = in->must_resident && in->must_resident[i];
            int s = span ? 0 : (int)(j % ring);
            double cs = SL_MAX(copy_free, span ? span_rel[i] : end[s]);
            double ce = cs + (double)in->bytes[i] / bw;
            copy_free = ce;
            comp = SL_MAX(comp, ce) + cost_of(in, i);
            if (!span) {
                end[s] = comp;
                j++;
            }
        }
        for (int i = 0; i < in->n; i++)
            if (!res[i] && in->must_resident && in->must_resident[i]) span_rel[i] = comp;
        pass_s = comp - start;
    }
    if (end != small) free(end);
    o.pass_s = pass_s;
    if (out) *out = o;
    return pass_s;
}

/* Cyclic distance in pass order from unit i to the nearest resident unit (n when none). */
static int gap_to_resident(const bool *res, int n, int i) {
    for (int d = 1; d < n; d++)
        if (res[(i + d) % n] || res[(i - d + n) % n]) return d;
    return n;
}

/* Greedy from a starting placement (res, modified in place); returns its predicted time. */
static double greedy(const sl_plan_in *in, bool *res, int slots) {
    double cur = sl_plan_simulate(in, res, slots, NULL);
    for (;;) {
        int best = -1;
        double best_score = 0, best_t = 0;
        int best_gap = -1;
        for (int i = 0; i < in->n; i++) {
            if (res[i]) continue;
            res[i] = true;
            size_t need = device_bytes(in, res, slots);
            double t = need <= in->budget ? sl_plan_simulate(in, res, slots, NULL) : INFINITY;
            res[i] = false;
            if (!(t <= cur * (1 + 1e-12) + 1e-15)) continue; /* over budget, or slower */
            double score = (cur - t) / (double)(in->bytes[i] ? in->bytes[i] : 1);
            int gap = gap_to_resident(res, in->n, i);
            double tol = 1e-9 * fabs(best_score) + 1e-21;
            bool better = best < 0 || score > best_score + tol ||
                          (fabs(score - best_score) <= tol && gap > best_gap);
            if (better) {
                best = i;
                best_score = score;
                best_t = t;
                best_gap = gap;
            }
        }
        if (best < 0) return cur;
        res[best] = true;
        cur = SL_MIN(cur, best_t);
    }
}

static int cmp_size_desc(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The least device bytes any placement needs with `slots` slots (streaming everything no larger
 * than some threshold, keeping the rest resident), or everything resident. */
static bool must(const sl_plan_in *in, int i) {
    return in->must_resident && !in->force_stream_all && in->must_resident[i];
}

static size_t min_need(const sl_plan_in *in, int slots, const size_t *sizes, int nsz, bool *tmp) {
    size_t best = SIZE_MAX;
    for (int k = 0; k < nsz; k++) {
        for (int i = 0; i < in->n; i++)
            tmp[i] = in->bytes[i] > sizes[k] || must(in, i);
        best = SL_MIN(best, device_bytes(in, tmp, slots));
    }
    for (int i = 0; i < in->n; i++)
        tmp[i] = true;
    return SL_MIN(best, device_bytes(in, tmp, slots));
}

sl_status sl_plan_make(const sl_plan_in *in, bool *resident, sl_plan_out *out, sl_err *err) {
    SL_ASSERT(in && resident && out && in->n >= 0);
    if (in->prefetch < 1)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "streaming prefetch must be at least 1, got %d",
                          in->prefetch);
    int slots = in->prefetch + 1;
    int n = in->n;
    unsigned long long total = 0;
    for (int i = 0; i < n; i++)
        SL_ASSERT(sl_add_u64(total, in->bytes[i], &total));

    if (!in->force_stream_all && total <= in->budget) {
        for (int i = 0; i < n; i++)
            resident[i] = true;
        sl_plan_simulate(in, resident, slots, out);
        return SL_OK;
    }

    bool *cand = malloc((size_t)(n ? n : 1) * sizeof *cand);
    size_t *sizes = malloc((size_t)(n ? n : 1) * sizeof *sizes);
    if (!cand || !sizes) {
        free(cand);
        free(sizes);
        return sl_err_set(err, SL_ERR_OOM_HOST, "planner: out of host memory");
    }
    memcpy(sizes, in->bytes, (size_t)n * sizeof *sizes);
    qsort(sizes, (size_t)n, sizeof *sizes, cmp_size_desc);
    int nsz = 0;
    for (int i = 0; i < n; i++)
        if (nsz == 0 || sizes[nsz - 1] != sizes[i]) sizes[nsz++] = sizes[i];

    sl_status st = SL_OK;
    if (in->force_stream_all) {
        for (int i = 0; i < n; i++)
            resident[i] = false;
        if (device_bytes(in, resident, slots) > in->budget) goto too_small;
        sl_plan_simulate(in, resident, slots, out);
        goto done;
    }

    /* starting points: everything up to a size threshold streamed (largest threshold first) */
    double best_t = INFINITY;
    size_t best_bytes = SIZE_MAX;
    for (int k = 0; k < nsz; k++) {
        for (int i = 0; i < n; i++)
            cand[i] = in->bytes[i] > sizes[k] || must(in, i);
        if (device_bytes(in, cand, slots) > in->budget) continue;
        double t = greedy(in, cand, slots);
        size_t b = device_bytes(in, cand, slots);
        if (t < best_t * (1 - 1e-12) || (t <= best_t * (1 + 1e-12) && b < best_bytes)) {
            best_t = t;
            best_bytes = b;
            memcpy(resident, cand, (size_t)n * sizeof *resident);
        }
    }
    if (best_t == INFINITY) goto too_small;
    sl_plan_simulate(in, resident, slots, out);
    goto done;

too_small : {
    size_t need = min_need(in, slots, sizes, nsz, cand);
    size_t need1 = min_need(in, 2, sizes, nsz, cand);
    char alt[256] = "";
    if (slots > 2 && need1 <= in->budget)
        snprintf(alt, sizeof alt, ", or use --streaming-prefetch 1 (fits: needs %.3f GB)",
                 (double)need1 / 1e9);
    else if (slots > 2)
        snprintf(alt, sizeof alt, " (--streaming-prefetch 1 would need %.3f GB)",
                 (double)need1 / 1e9);
    size_t must_b = 0;
    for (int i = 0; i < n; i++)
        if (must(in, i)) must_b += in->bytes[i];
    char mb[96] = "";
    if (must_b) snprintf(mb, sizeof mb, "; %zu bytes of it for units held across a pass", must_b);
    st = sl_err_set(err, SL_ERR_OOM_DEVICE,
                    "VRAM budget for weights too small: streaming with %d slots needs at least "
                    "%.3f GB (%zu bytes; largest unit %zu bytes%s), %.3f GB (%zu bytes) "
                    "available; raise --max-vram, lower --streaming-min-vram or free VRAM%s",
                    slots, (double)need / 1e9, need, nsz ? sizes[0] : (size_t)0, mb,
                    (double)in->budget / 1e9, in->budget, alt);
}
done:
    free(cand);
    free(sizes);
    return st;
}
