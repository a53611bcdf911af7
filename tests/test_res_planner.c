/* Planner tests (residency/planner.h): pure numbers, no backend. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "residency/planner.h"
#include "test.h"

enum { MAXN = 64 };

static sl_plan_in uniform(int n, size_t bytes, double cost, double gbps, size_t budget, int pf,
                          size_t *b, double *c) {
    for (int i = 0; i < n; i++) {
        b[i] = bytes;
        c[i] = cost;
    }
    return (sl_plan_in){
        .n = n, .bytes = b, .cost = c, .link_gbps = gbps, .budget = budget, .prefetch = pf};
}

SL_TEST(res_plan_all_fit_all_resident) {
    size_t b[MAXN];
    double c[MAXN];
    sl_plan_in in = uniform(10, 1000, 1e-3, 10, 10000, 1, b, c);
    bool res[MAXN];
    sl_plan_out o;
    sl_err e = {0};
    REQUIRE_OK(sl_plan_make(&in, res, &o, &e), &e);
    for (int i = 0; i < 10; i++)
        CHECK(res[i]);
    CHECK(o.slots == 0 && o.slot_bytes == 0 && o.n_streamed == 0 && o.n_resident == 10);
    CHECK(o.device_bytes == 10000 && o.streamed_bytes == 0);
    CHECK_NEAR(o.pass_s, 10e-3, 1e-12);
    /* unlimited budget too */
    in.budget = SIZE_MAX;
    REQUIRE_OK(sl_plan_make(&in, res, &o, &e), &e);
    CHECK(o.n_resident == 10);
}

SL_TEST(res_plan_simulation_by_hand) {
    /* two streamed units, 2 slots: compute-bound (copy 1 s, compute 2 s) → 4 s per pass;
     * link-bound (copy 2 s, compute 1 s) → 4 s per pass; both equal the lower bound */
    size_t b[2];
    double c[2];
    bool res[2] = {false, false};
    sl_plan_in in = uniform(2, 1000000000, 2.0, 1.0, SIZE_MAX, 1, b, c);
    sl_plan_out o;
    CHECK_NEAR(sl_plan_simulate(&in, res, 2, &o), 4.0, 1e-9);
    CHECK(o.slots == 2 && o.slot_bytes == 1000000000 && o.device_bytes == 2000000000);
    in = uniform(2, 2000000000, 1.0, 1.0, SIZE_MAX, 1, b, c);
    CHECK_NEAR(sl_plan_simulate(&in, res, 2, &o), 4.0, 1e-9);
    CHECK_NEAR(o.link_s, 4.0, 1e-9);
    CHECK_NEAR(o.compute_s, 2.0, 1e-12);
    /* one slot: no overlap at all, copy 2 + compute 1 per unit */
    CHECK_NEAR(sl_plan_simulate(&in, res, 1, NULL), 6.0, 1e-9);
}

SL_TEST(res_plan_budget_and_lower_bound_random) {
    /* random cases: never above budget, never below max(compute, streamed bytes / bandwidth),
     * never slower than streaming everything that fits */
    float u[4 * MAXN];
    for (int trial = 0; trial < 150; trial++) {
        sl_rng_uniform(77, (uint64_t)trial, 0, 0.0f, 1.0f, u, 4 * MAXN);
        int n = 2 + (int)(u[0] * 30);
        size_t b[MAXN];
        double c[MAXN];
        size_t total = 0, mx = 0;
        for (int i = 0; i < n; i++) {
            b[i] = (size_t)(1 + u[1 + i] * 100) * 1000000;
            if (i == 0 && u[2 * MAXN] < 0.3f) b[i] *= 5; /* a big globals unit */
            c[i] = u[MAXN + i] * 0.02;
            total += b[i];
            mx = SL_MAX(mx, b[i]);
        }
        int pf = 1 + (int)(u[3 * MAXN] * 3);
        size_t budget = (size_t)(u[3 * MAXN + 1] * (double)total * 1.1);
        sl_plan_in in = {.n = n,
                         .bytes = b,
                         .cost = c,
                         .link_gbps = 0.5 + u[3 * MAXN + 2] * 20,
                         .budget = budget,
                         .prefetch = pf};
        bool res[MAXN];
        sl_plan_out o;
        sl_err e = {0};
        sl_status st = sl_plan_make(&in, res, &o, &e);
        if (st != SL_OK) {
            CHECK(st == SL_ERR_OOM_DEVICE);
            CHECKF(budget < (size_t)(pf + 1) * mx, "trial %d: refused a budget that fits: %s",
                   trial, e.msg);
            continue;
        }
        CHECKF(o.device_bytes <= budget, "trial %d: %zu > %zu", trial, o.device_bytes, budget);
        double lb = SL_MAX(o.compute_s, o.link_s);
        CHECKF(o.pass_s >= lb * (1 - 1e-9), "trial %d: %g below bound %g", trial, o.pass_s, lb);
        sl_plan_out o2;
        double t2 = sl_plan_simulate(&in, res, pf + 1, &o2);
        CHECK_NEAR(t2, o.pass_s, 1e-12);
        CHECK(o2.device_bytes == o.device_bytes);
        bool all_s[MAXN];
        for (int i = 0; i < n; i++)
            all_s[i] = false;
        if ((size_t)(pf + 1) * mx <= budget)
            CHECKF(o.pass_s <= sl_plan_simulate(&in, all_s, pf + 1, NULL) * (1 + 1e-9),
                   "trial %d: slower than streaming everything", trial);
    }
}

SL_TEST(res_plan_interleaves_when_link_bound) {
    /* 20 equal units, copy 2× their compute: room for 8 resident + 2 slots */
    enum { N = 20 };
    size_t b[N];
    double c[N];
    size_t ub = 100000000; /* 0.1 s at 1 GB/s */
    sl_plan_in in = uniform(N, ub, 0.05, 1.0, 10 * ub, 1, b, c);
    bool res[N];
    sl_plan_out o;
    sl_err e = {0};
    REQUIRE_OK(sl_plan_make(&in, res, &o, &e), &e);
    CHECK(o.n_resident == 8 && o.slots == 2 && o.device_bytes == 10 * ub);
    bool prefix[N], suffix[N];
    for (int i = 0; i < N; i++) {
        prefix[i] = i < 8;
        suffix[i] = i >= N - 8;
    }
    double tp = sl_plan_simulate(&in, prefix, 2, NULL), ts = sl_plan_simulate(&in, suffix, 2, NULL);
    fprintf(stderr, "    plan %.4f s, resident prefix %.4f s, suffix %.4f s, bound %.4f s\n",
            o.pass_s, tp, ts, SL_MAX(o.compute_s, o.link_s));
    CHECKF(o.pass_s < tp * 0.97, "plan %g s vs resident prefix %g s", o.pass_s, tp);
    CHECKF(o.pass_s < ts * 0.97, "plan %g s vs resident suffix %g s", o.pass_s, ts);
    /* the resident units are spread: no two adjacent runs of more than 1 resident */
    int run = 0, maxrun = 0;
    for (int i = 0; i < N; i++) {
        run = res[i] ? run + 1 : 0;
        maxrun = SL_MAX(maxrun, run);
    }
    CHECKF(maxrun <= 1, "resident units bunch up (run of %d)", maxrun);
    /* here interleaving reaches the link bound: 12 streamed × 0.1 s */
    CHECK_NEAR(o.pass_s, 1.2, 1e-6);
}

SL_TEST(res_plan_compute_bound_hides_streaming) {
    /* copy 0.5× compute: streaming hides completely, predicted time = compute */
    size_t b[16];
    double c[16];
    sl_plan_in in = uniform(16, 50000000, 0.1, 1.0, 4 * 50000000, 1, b, c);
    bool res[16];
    sl_plan_out o;
    sl_err e = {0};
    REQUIRE_OK(sl_plan_make(&in, res, &o, &e), &e);
    CHECK(o.device_bytes <= in.budget);
    CHECK_NEAR(o.pass_s, 1.6, 1e-9);
}

SL_TEST(res_plan_big_unit_made_resident_for_slots) {
    /* a 5× globals unit cannot share slots with the blocks within budget: it becomes resident */
    size_t b[9] = {500, 100, 100, 100, 100, 100, 100, 100, 100};
    double c[9] = {0};
    sl_plan_in in = {.n = 9, .bytes = b, .cost = c, .link_gbps = 1, .budget = 750, .prefetch = 1};
    bool res[9];
    sl_plan_out o;
    sl_err e = {0};
    REQUIRE_OK(sl_plan_make(&in, res, &o, &e), &e);
    CHECK(res[0]);
    CHECK(o.slot_bytes == 100 && o.slots == 2 && o.device_bytes <= 750);
    CHECK(o.n_resident == 1); /* 500 + 2 × 100; one more block would need 800 */
}

SL_TEST(res_plan_too_small_budget_says_what_fits) {
    size_t b[8];
    double c[8];
    sl_plan_in in = uniform(8, 1000000000, 0.1, 10, 2500000000, 2, b, c);
    bool res[8];
    sl_plan_out o;
    sl_err e = {0};
    sl_status st = sl_plan_make(&in, res, &o, &e);
    CHECK(st == SL_ERR_OOM_DEVICE);
    CHECKF(strstr(e.msg, "3.000 GB") && strstr(e.msg, "2.500 GB"), "%s", e.msg);
    CHECKF(strstr(e.msg, "--max-vram") && strstr(e.msg, "--streaming-prefetch 1"), "%s", e.msg);
    CHECKF(strstr(e.msg, "fits"), "prefetch 1 fits in 2.5 GB: %s", e.msg);
    /* with prefetch 1 it works */
    in.prefetch = 1;
    sl_err e2 = {0};
    REQUIRE_OK(sl_plan_make(&in, res, &o, &e2), &e2);
    CHECK(o.slots == 2 && o.n_resident == 0);
    /* below two units nothing works */
    in.budget = 1500000000;
    sl_err e3 = {0};
    CHECK(sl_plan_make(&in, res, &o, &e3) == SL_ERR_OOM_DEVICE);
    CHECKF(strstr(e3.msg, "2.000 GB") && strstr(e3.msg, "--max-vram"), "%s", e3.msg);
    in.prefetch = 0;
    CHECK(sl_plan_make(&in, res, &o, &e3) == SL_ERR_INVALID_ARG);
}

SL_TEST(res_plan_force_stream_all) {
    size_t b[6];
    double c[6];
    sl_plan_in in = uniform(6, 100, 1e-3, 1, SIZE_MAX, 2, b, c);
    in.force_stream_all = true;
    bool res[6];
    sl_plan_out o;
    sl_err e = {0};
    REQUIRE_OK(sl_plan_make(&in, res, &o, &e), &e);
    for (int i = 0; i < 6; i++)
        CHECK(!res[i]);
    CHECK(o.slots == 3 && o.device_bytes == 300 && o.streamed_bytes == 600);
    in.budget = 299;
    CHECK(sl_plan_make(&in, res, &o, &e) == SL_ERR_OOM_DEVICE);
}
