/* Sampler tests: schedules (the Z-Image Turbo values, sd.cpp's formulas), names, --sigmas parsing,
 * Euler and CFG on host arrays and on the CPU backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/rng.h"
#include "samplers/sampler.h"
#include "test.h"

SL_TEST(sampler_turbo_sigmas) {
    static const double want[9] = {1.0, 0.954545, 0.9, 0.833333, 0.75, 0.642857, 0.5, 0.3, 0.0};
    float s[9], r[9];
    sl_err err = {0};
    REQUIRE_OK(sl_sampler_sigmas(SL_SCHED_SIMPLE, 8, 3.0f, s, &err), &err);
    sl_sampler_zimage_reference_sigmas(8, 3.0f, r);
    for (int i = 0; i < 9; i++) {
        CHECK_NEAR(s[i], want[i], 1e-6);
        CHECK_NEAR(r[i], want[i], 1e-6);
        CHECK_NEAR(s[i], r[i], 2e-7);
    }
    CHECK(s[8] == 0.0f && s[0] == 1.0f);
    /* dt and model times of the spec */
    CHECK_NEAR(s[1] - s[0], -0.045455, 1e-6);
    CHECK_NEAR(s[8] - s[7], -0.3, 1e-6);
    CHECK_NEAR(sl_sampler_zimage_time(s[5]) * 1000.0, 357.14, 0.01);
    CHECK(sl_sampler_zimage_time(1.0f) == 0.0f);
}

SL_TEST(sampler_schedules_match_sdcpp_formulas) {
    sl_err err = {0};
    float s[33];
    const float shift = 3.0f;
    /* discrete: t_i = 999 − i·999/(n−1), σ = shift((t+1)/1000) */
    REQUIRE_OK(sl_sampler_sigmas(SL_SCHED_DISCRETE, 8, shift, s, &err), &err);
    for (int i = 0; i < 8; i++) {
        double t = 999.0 - i * 999.0 / 7.0, u = (t + 1) / 1000.0;
        CHECK_NEAR(s[i], 3 * u / (1 + 2 * u), 1e-6);
    }
    CHECK(s[8] == 0.0f);
    CHECK_NEAR(s[7], 3 * 0.001 / (1 + 2 * 0.001), 1e-6); /* ends at σ_min, not at 0.3 */
    /* sgm_uniform: linspace(999, 0, n+1)[:n] */
    REQUIRE_OK(sl_sampler_sigmas(SL_SCHED_SGM_UNIFORM, 4, shift, s, &err), &err);
    for (int i = 0; i < 4; i++) {
        double u = (999.0 - i * 999.0 / 4 + 1) / 1000.0;
        CHECK_NEAR(s[i], 3 * u / (1 + 2 * u), 1e-6);
    }
    /* karras and exponential: endpoints σ_max = 1 and σ_min = σ(0); monotone */
    const sl_scheduler ke[2] = {SL_SCHED_KARRAS, SL_SCHED_EXPONENTIAL};
    for (int k = 0; k < 2; k++) {
        REQUIRE_OK(sl_sampler_sigmas(ke[k], 10, shift, s, &err), &err);
        CHECK_NEAR(s[0], 1.0, 1e-6);
        CHECK_NEAR(s[9], sl_sampler_flow_sigma(shift, 0.0f), 1e-6);
        for (int i = 0; i < 9; i++)
            CHECK(s[i] > s[i + 1]);
        CHECK(s[10] == 0.0f);
    }
    /* exponential midpoint is the geometric mean */
    REQUIRE_OK(sl_sampler_sigmas(SL_SCHED_EXPONENTIAL, 3, shift, s, &err), &err);
    CHECK_NEAR(s[1], sqrt(1.0 * sl_sampler_flow_sigma(shift, 0.0f)), 1e-6);
    /* lcm: 50 original steps, k = 20: 4 steps → t = 999, 759, 499, 259 */
    REQUIRE_OK(sl_sampler_sigmas(SL_SCHED_LCM, 4, 1.0f, s, &err), &err);
    CHECK_NEAR(s[0], 1.0, 1e-6);
    CHECK_NEAR(s[1], 0.76, 1e-6);
    CHECK_NEAR(s[2], 0.50, 1e-6);
    CHECK_NEAR(s[3], 0.26, 1e-6);
    /* one step everywhere: [σ_max, 0] */
    for (int k = 0; k < SL_SCHED_COUNT; k++) {
        if (!sl_sampler_scheduler_supported((sl_scheduler)k)) continue;
        REQUIRE_OK(sl_sampler_sigmas((sl_scheduler)k, 1, shift, s, &err), &err);
        CHECKF(fabsf(s[0] - 1.0f) < 1e-6f && s[1] == 0.0f, "%s: %g %g",
               sl_sampler_scheduler_name((sl_scheduler)k), (double)s[0], (double)s[1]);
    }
    /* the reference schedule is "auto" at every step count, and "simple" when n divides 1000 */
    float r[33];
    for (int n = 1; n <= 32; n++) {
        sl_sampler_zimage_reference_sigmas(n, shift, r);
        REQUIRE_OK(sl_sampler_sigmas(SL_SCHED_AUTO, n, shift, s, &err), &err);
        CHECK(memcmp(s, r, (size_t)(n + 1) * sizeof *s) == 0);
        for (int i = 0; i < n; i++)
            CHECK_NEAR(r[i], 3.0 * (1.0 - (double)i / n) / (1 + 2.0 * (1.0 - (double)i / n)), 1e-6);
        REQUIRE_OK(sl_sampler_sigmas(SL_SCHED_SIMPLE, n, shift, s, &err), &err);
        double md = 0;
        for (int i = 0; i <= n; i++)
            md = fmax(md, fabs((double)s[i] - r[i]));
        if (1000 % n == 0) CHECKF(md < 1e-6, "simple n=%d differs from the reference by %g", n, md);
        if (n == 3) CHECK(md > 1e-4); /* 1000/3 is not whole: simple drifts */
    }
    sl_err e = {0};
    CHECK(sl_sampler_sigmas(SL_SCHED_SIMPLE, 0, shift, s, &e) == SL_ERR_INVALID_ARG);
    sl_err e2 = {0};
    CHECK(sl_sampler_sigmas(SL_SCHED_SIMPLE, 4, 0.0f, s, &e2) == SL_ERR_INVALID_ARG);
    sl_err e3 = {0};
    CHECK(sl_sampler_sigmas(SL_SCHED_BETA, 4, shift, s, &e3) == SL_ERR_UNSUPPORTED);
}

SL_TEST(sampler_names) {
    sl_err err = {0};
    sl_sample_method m = SL_SAMPLE_LMS;
    REQUIRE_OK(sl_sampler_parse_method("euler", &m, &err), &err);
    CHECK(m == SL_SAMPLE_EULER);
    m = SL_SAMPLE_LMS;
    REQUIRE_OK(sl_sampler_parse_method(NULL, &m, &err), &err);
    CHECK(m == SL_SAMPLE_EULER);
    sl_err e1 = {0};
    CHECK(sl_sampler_parse_method("dpm++2m", &m, &e1) == SL_ERR_UNSUPPORTED);
    CHECKF(strstr(e1.msg, "dpm++2m") && strstr(e1.msg, "euler"), "%s", e1.msg);
    sl_err e2 = {0};
    CHECK(sl_sampler_parse_method("Euler", &m, &e2) == SL_ERR_INVALID_ARG); /* case-sensitive */
    CHECKF(strstr(e2.msg, "euler_a") && strstr(e2.msg, "lms"), "%s", e2.msg);
    for (int i = 0; i < SL_SAMPLE_COUNT; i++) {
        sl_err e = {0};
        sl_status st = sl_sampler_parse_method(sl_sampler_method_name((sl_sample_method)i), &m, &e);
        CHECK(st == (i == SL_SAMPLE_EULER ? SL_OK : SL_ERR_UNSUPPORTED));
    }
    sl_scheduler s = SL_SCHED_BETA;
    REQUIRE_OK(sl_sampler_parse_scheduler("normal", &s, &err), &err);
    CHECK(s == SL_SCHED_DISCRETE);
    REQUIRE_OK(sl_sampler_parse_scheduler("simple", &s, &err), &err);
    CHECK(s == SL_SCHED_SIMPLE);
    REQUIRE_OK(sl_sampler_parse_scheduler("auto", &s, &err), &err);
    CHECK(s == SL_SCHED_AUTO);
    REQUIRE_OK(sl_sampler_parse_scheduler(NULL, &s, &err), &err);
    CHECK(s == SL_SCHED_AUTO);
    REQUIRE_OK(sl_sampler_parse_scheduler("sgm_uniform", &s, &err), &err);
    CHECK(s == SL_SCHED_SGM_UNIFORM);
    sl_err e3 = {0};
    CHECK(sl_sampler_parse_scheduler("ays", &s, &e3) == SL_ERR_UNSUPPORTED);
    CHECKF(strstr(e3.msg, "simple") != NULL, "%s", e3.msg);
    sl_err e4 = {0};
    CHECK(sl_sampler_parse_scheduler("Karras", &s, &e4) == SL_ERR_INVALID_ARG);
    CHECK(!strcmp(sl_sampler_scheduler_name(SL_SCHED_KL_OPTIMAL), "kl_optimal"));
    CHECK(!strcmp(sl_sampler_method_name(SL_SAMPLE_DPMPP2M_SDE_BT), "dpm++2m_sde_bt"));
}

SL_TEST(sampler_parse_sigmas) {
    sl_err err = {0};
    float v[16];
    int n = 0;
    REQUIRE_OK(sl_sampler_parse_sigmas("[1.0, 0.75, 0.5,0.25]", v, 15, &n, &err), &err);
    CHECK(n == 4 && v[0] == 1.0f && v[3] == 0.25f);
    CHECK(sl_sampler_finish_sigmas(v, n) == 4 && v[4] == 0.0f);
    REQUIRE_OK(sl_sampler_parse_sigmas(" 1, 0.3, 0 ", v, 15, &n, &err), &err);
    CHECK(n == 3 && sl_sampler_finish_sigmas(v, n) == 2);
    const char *bad[] = {"", "[]", "1,,2", "1, x", "[1, 2", "1 2", "-0.5", "nan", "1e99"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sl_err e = {0};
        CHECKF(sl_sampler_parse_sigmas(bad[i], v, 15, &n, &e) == SL_ERR_INVALID_ARG,
               "'%s' accepted", bad[i]);
    }
    sl_err e = {0};
    CHECK(sl_sampler_parse_sigmas("1,2,3", v, 2, &n, &e) == SL_ERR_INVALID_ARG);
}

SL_TEST(sampler_cfg_host) {
    float pos[4] = {1, 2, 3, 4}, neg[4] = {0, 2, 5, -4}, pred[4];
    sl_sampler_cfg_host(pred, pos, neg, 4, 0.0f, 0.0f);
    CHECK(memcmp(pred, pos, sizeof pos) == 0);
    sl_sampler_cfg_host(pred, pos, neg, 4, 2.0f, 0.0f);
    CHECK(pred[0] == 3 && pred[1] == 2 && pred[2] == -1 && pred[3] == 20);
    /* normalisation caps ‖pred‖ at k·‖pos‖ */
    sl_sampler_cfg_host(pred, pos, neg, 4, 2.0f, 1.0f);
    double np = 0, nq = 0;
    for (int i = 0; i < 4; i++)
        np += pos[i] * pos[i], nq += pred[i] * pred[i];
    CHECK_NEAR(sqrt(nq), sqrt(np), 1e-5);
    CHECK_NEAR(pred[3] / pred[0], 20.0 / 3.0, 1e-5);
    /* a large k leaves pred alone */
    sl_sampler_cfg_host(pred, pos, neg, 4, 2.0f, 100.0f);
    CHECK(pred[3] == 20);
    /* truncation: active while 1 − σ ≤ truncation */
    CHECK(!sl_sampler_cfg_active(0.0f, 1.0f, 0.5f));
    CHECK(sl_sampler_cfg_active(4.0f, 1.0f, 0.0f));
    CHECK(sl_sampler_cfg_active(4.0f, 0.5f, 0.6f));
    CHECK(!sl_sampler_cfg_active(4.0f, 0.5f, 0.3f));
}

SL_TEST(sampler_euler_and_cfg_on_backend) {
    sl_cpu_options o = {.threads = 2};
    sl_backend *be = NULL;
    sl_err err = {0};
    if (sl_backend_cpu_create(&o, &be, &err) != SL_OK) SKIP("no CPU backend: %s", err.msg);
    enum { N = 16 * 8 * 6 };
    float x[N], v[N], neg[N], hx[N], hp[N], out[N];
    sl_rng_normal(9, 1, 0, x, N);
    sl_rng_normal(9, 2, 0, v, N);
    sl_rng_normal(9, 3, 0, neg, N);
    size_t cap = 8 * SL_ALIGN_UP(N * 4, 256);
    void *arena = NULL;
    REQUIRE(posix_memalign(&arena, 256, cap) == 0);
    sl_ctx ctx;
    sl_ctx_init(&ctx, be, arena, cap);
    sl_tensor tx = sl_new3(&ctx, SL_DTYPE_F32, 16, 8, 6),
              tv = sl_new3(&ctx, SL_DTYPE_F32, 16, 8, 6);
    sl_tensor tn = sl_new3(&ctx, SL_DTYPE_F32, 16, 8, 6);
    /* Euler */
    sl_upload(&ctx, &tx, x);
    sl_upload(&ctx, &tv, v);
    sl_sampler_euler_step(&ctx, &tx, &tv, -0.2f);
    sl_download(&ctx, out, &tx);
    memcpy(hx, x, sizeof x);
    sl_sampler_euler_step_host(hx, v, N, -0.2f);
    REQUIRE(ctx.status == SL_OK);
    for (int i = 0; i < N; i++)
        CHECK_NEAR(out[i], hx[i], 1e-6);
    /* CFG with and without normalisation */
    const float ks[2] = {0.0f, 1.1f};
    for (int k = 0; k < 2; k++) {
        sl_upload(&ctx, &tv, v);
        sl_upload(&ctx, &tn, neg);
        sl_sampler_cfg(&ctx, &tv, &tn, 3.0f, ks[k]);
        sl_download(&ctx, out, &tv);
        sl_sampler_cfg_host(hp, v, neg, N, 3.0f, ks[k]);
        REQUIRE(ctx.status == SL_OK);
        for (int i = 0; i < N; i++)
            CHECK_NEAR(out[i], hp[i], 1e-5);
    }
    free(arena);
    sl_backend_destroy(be);
}
