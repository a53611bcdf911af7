/* pipe_*: the txt2img pipeline (include/sluice.h, src/pipeline/) end to end on the tiny synthetic
 * Z-Image set (models/synth.h: zimage, qwen3, flux-vae at size tiny, bf16) with the CPU backend,
 * plain or presenting itself as a device with a memory budget ("cpu-device:<bytes>"), so that
 * every offload mode, streaming plan and failure path runs as on a GPU. What is compared: image
 * bytes between runs (determinism, seeds), between offload modes / budgets / prefetch depths
 * (bit-identical to `none`), the decisions' numbers against what the engine allocates. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/rng.h"
#include "models/synth.h"
#include "pipeline/pipeline.h"
#include "sluice.h"
#include "test.h"

/* ---- the tiny model set ---- */

typedef sl_status (*list_fn)(const char *, const char *, sl_synth_list *, sl_err *);

/* Write one architecture's tiny list to path; names get `prefix` when not NULL. */
static sl_status write_tiny(list_fn fn, const char *layout, const char *prefix, const char *path,
                            sl_err *err) {
    sl_synth_list l = {0};
    sl_status st = fn("tiny", layout, &l, err);
    if (st != SL_OK) return st;
    if (prefix)
        for (int i = 0; i < l.n; i++) {
            char tmp[160];
            snprintf(tmp, sizeof tmp, "%s%s", prefix, l.t[i].name);
            snprintf(l.t[i].name, sizeof l.t[i].name, "%s", tmp);
        }
    sl_synth_opts o = {.dtype = SL_DTYPE_BF16, .format = SL_SYNTH_SAFETENSORS, .seed = 1};
    st = sl_synth_write(&l, &o, path, err);
    sl_synth_list_free(&l);
    return st;
}

typedef struct tiny_set {
    char dit[600], te[600], vae[600];
} tiny_set;

static int tiny_files(tiny_set *s) {
    sl_err err = {0};
    const char *d = sl_test_tmpdir();
    snprintf(s->dit, sizeof s->dit, "%s/zimage.safetensors", d);
    snprintf(s->te, sizeof s->te, "%s/qwen3.safetensors", d);
    snprintf(s->vae, sizeof s->vae, "%s/vae.safetensors", d);
    if (write_tiny(sl_zimage_synth_list, "official", NULL, s->dit, &err) ||
        write_tiny(sl_qwen3_synth_list, "official", NULL, s->te, &err) ||
        write_tiny(sl_fluxvae_synth_list, "official", NULL, s->vae, &err)) {
        fprintf(stderr, "    writing the tiny set: %s\n", err.msg);
        return 0;
    }
    return 1;
}

static sluice_engine *open_engine(const tiny_set *s, const char *backend, sluice_offload_mode mode,
                                  int prefetch, char *err, size_t n) {
    sluice_engine_params p;
    sluice_engine_params_init(&p);
    p.diffusion_model_path = s->dit;
    p.llm_path = s->te;
    p.vae_path = s->vae;
    p.backend = backend;
    p.threads = 2;
    p.offload_mode = mode;
    p.streaming_prefetch = prefetch;
    p.streaming_min_vram_mb = 0;
    sluice_engine *e = NULL;
    if (sluice_engine_open(&p, &e, err, n) != 0) return NULL;
    return e;
}

static void gen_defaults(sluice_gen_params *g) {
    sluice_gen_params_init(g);
    g->prompt = "a lighthouse at dusk";
    g->width = 64;
    g->height = 48;
    g->steps = 3;
    g->seed = 7;
}

/* Generate and return image 0's bytes (malloc'd), NULL on failure (message in err). */
static uint8_t *gen1(sluice_engine *e, const sluice_gen_params *g, char *err, size_t n) {
    sluice_image *im = NULL;
    int k = 0;
    if (sluice_generate(e, g, NULL, NULL, &im, &k, err, n) != 0) return NULL;
    size_t b = (size_t)im[0].width * im[0].height * 3;
    uint8_t *out = malloc(b);
    memcpy(out, im[0].data, b);
    sluice_images_free(im, k);
    return out;
}

SL_TEST(pipe_txt2img_deterministic) {
    sl_log_set_level(SL_LOG_ERROR);
    tiny_set s;
    REQUIRE(tiny_files(&s));
    char err[1024];
    sluice_engine *e = open_engine(&s, "cpu", SLUICE_OFFLOAD_AUTO, 1, err, sizeof err);
    REQUIREF(e, "open: %s", err);
    sluice_gen_params g;
    gen_defaults(&g);
    uint8_t *a = gen1(e, &g, err, sizeof err);
    REQUIREF(a, "generate: %s", err);
    uint8_t *b = gen1(e, &g, err, sizeof err);
    REQUIREF(b, "generate again: %s", err);
    size_t nb = (size_t)g.width * g.height * 3;
    CHECK(memcmp(a, b, nb) == 0);
    /* not a constant image */
    int lo = 255, hi = 0;
    for (size_t i = 0; i < nb; i++)
        lo = a[i] < lo ? a[i] : lo, hi = a[i] > hi ? a[i] : hi;
    CHECKF(hi - lo > 10, "pixel range %d..%d", lo, hi);
    g.seed = 8;
    uint8_t *c = gen1(e, &g, err, sizeof err);
    REQUIREF(c, "generate seed 8: %s", err);
    CHECK(memcmp(a, c, nb) != 0);
    sluice_timings t;
    sluice_last_timings(e, &t);
    CHECK(t.n_images == 1 && t.steps == 3 && t.total_s > 0 && t.sampling_s > 0);
    free(a), free(b), free(c);
    sluice_engine_close(e);
}

/* ---- the invariant: every mode, prefetch depth and budget gives the image of `none` ---- */

typedef struct inv_req {
    sluice_gen_params g;
    uint8_t *ref[2]; /* images of the request in `none` with everything fitting */
    size_t need[SLUICE_OFFLOAD_LAYER_STREAMING + 1];
} inv_req;

static const char *gb_s(size_t b, char *buf) {
    if (b == SIZE_MAX)
        snprintf(buf, 32, "inf");
    else
        snprintf(buf, 32, "%zu", b);
    return buf;
}

/* Run both requests on a cpu-device engine with `budget` bytes; for each, success is expected
 * exactly when the mode's requirement (from the pure simulation) fits, and a success must give
 * the reference bytes. Returns the number of streamed DiT units seen. */
static int inv_run(const tiny_set *s, size_t budget, sluice_offload_mode m, int prefetch,
                   inv_req *rq, int nrq) {
    char be[64], err[1024], b1[32];
    snprintf(be, sizeof be, "cpu-device:%zu", budget);
    sluice_engine *e = open_engine(s, be, m, prefetch, err, sizeof err);
    if (!e) {
        sl_test_fail(__FILE__, __LINE__, "open %s: %s", be, err);
        return 0;
    }
    int streamed = 0;
    for (int r = 0; r < nrq; r++) {
        size_t need = rq[r].need[m];
        bool expect = need <= budget;
        sluice_image *im = NULL;
        int n = 0;
        int rc = sluice_generate(e, &rq[r].g, NULL, NULL, &im, &n, err, sizeof err);
        const char *mn = sluice_offload_mode_name(m);
        if (expect && rc != 0) {
            sl_test_fail(__FILE__, __LINE__,
                         "mode %s prefetch %d budget %zu (needs %s) request %d: %s", mn, prefetch,
                         budget, gb_s(need, b1), r, err);
            continue;
        }
        if (!expect) {
            CHECKF(rc == SLUICE_ERR_OOM_DEVICE,
                   "mode %s prefetch %d budget %zu (needs %s) request %d: rc %d %s", mn, prefetch,
                   budget, gb_s(need, b1), r, rc, rc ? err : "(succeeded)");
            if (rc == 0) sluice_images_free(im, n);
            continue;
        }
        size_t nb = (size_t)rq[r].g.width * rq[r].g.height * 3;
        for (int i = 0; i < n; i++)
            CHECKF(memcmp(im[i].data, rq[r].ref[i], nb) == 0,
                   "mode %s prefetch %d budget %zu request %d image %d differs from none", mn,
                   prefetch, budget, r, i);
        sluice_images_free(im, n);
        sluice_timings t;
        sluice_last_timings(e, &t);
        if (m != SLUICE_OFFLOAD_AUTO) CHECK(t.mode == m);
    }
    streamed = sl_pipe_streamed_units(e, SL_PIPE_DIT);
    sluice_engine_close(e);
    return streamed;
}

SL_TEST(pipe_mode_invariance) {
    sl_log_set_level(SL_LOG_ERROR);
    tiny_set s;
    REQUIRE(tiny_files(&s));
    char err[1024];
    inv_req rq[2];
    gen_defaults(&rq[0].g);
    gen_defaults(&rq[1].g);
    rq[1].g.cfg_scale = 2.5f; /* CFG: two branches per weight load, negative prompt */
    rq[1].g.negative_prompt = "blurry";
    rq[1].g.batch_count = 2;
    rq[1].g.seed = 11;
    rq[1].g.steps = 2;
    /* references: everything resident on an unlimited emulated device */
    sluice_engine *e = open_engine(&s, "cpu-device:0", SLUICE_OFFLOAD_NONE, 1, err, sizeof err);
    REQUIREF(e, "open: %s", err);
    for (int r = 0; r < 2; r++) {
        sluice_image *im = NULL;
        int n = 0;
        REQUIREF(sluice_generate(e, &rq[r].g, NULL, NULL, &im, &n, err, sizeof err) == 0, "%s",
                 err);
        for (int i = 0; i < n; i++) {
            size_t nb = (size_t)im[i].width * im[i].height * 3;
            rq[r].ref[i] = malloc(nb);
            memcpy(rq[r].ref[i], im[i].data, nb);
        }
        sluice_images_free(im, n);
    }
    sluice_engine_close(e);
    /* the plain CPU backend (weights used in place) computes the same bytes */
    e = open_engine(&s, "cpu", SLUICE_OFFLOAD_AUTO, 1, err, sizeof err);
    REQUIREF(e, "open cpu: %s", err);
    uint8_t *plain = gen1(e, &rq[0].g, err, sizeof err);
    REQUIREF(plain, "%s", err);
    CHECK(memcmp(plain, rq[0].ref[0], (size_t)rq[0].g.width * rq[0].g.height * 3) == 0);
    free(plain);
    sluice_engine_close(e);

    int streamed_runs = 0;
    for (int pf = 1; pf <= 3; pf++) {
        e = open_engine(&s, "cpu-device:0", SLUICE_OFFLOAD_NONE, pf, err, sizeof err);
        REQUIREF(e, "open: %s", err);
        for (int r = 0; r < 2; r++) {
            sl_err er = {0};
            REQUIRE_OK(sl_pipe_needs(e, &rq[r].g, rq[r].need, &er), &er);
        }
        sluice_engine_close(e);
        size_t need[SLUICE_OFFLOAD_LAYER_STREAMING + 1];
        for (int m = 0; m <= SLUICE_OFFLOAD_LAYER_STREAMING; m++)
            need[m] = SL_MAX(rq[0].need[m], rq[1].need[m]);
        char a[32], b[32], c[32], d[32];
        printf("    prefetch %d: needs none %s, cond_only %s, aggressive %s, layer_streaming %s\n",
               pf, gb_s(need[SLUICE_OFFLOAD_NONE], a), gb_s(need[SLUICE_OFFLOAD_COND_ONLY], b),
               gb_s(need[SLUICE_OFFLOAD_AGGRESSIVE], c),
               gb_s(need[SLUICE_OFFLOAD_LAYER_STREAMING], d));
        REQUIRE(need[SLUICE_OFFLOAD_LAYER_STREAMING] < need[SLUICE_OFFLOAD_AGGRESSIVE]);
        REQUIRE(need[SLUICE_OFFLOAD_AGGRESSIVE] <= need[SLUICE_OFFLOAD_COND_ONLY]);
        REQUIRE(need[SLUICE_OFFLOAD_COND_ONLY] <= need[SLUICE_OFFLOAD_NONE]);
        size_t ls = need[SLUICE_OFFLOAD_LAYER_STREAMING], ag = need[SLUICE_OFFLOAD_AGGRESSIVE];
        size_t budgets[] = {ls,
                            ls + (ag - ls) / 3,
                            ls + 2 * (ag - ls) / 3,
                            ag,
                            need[SLUICE_OFFLOAD_COND_ONLY],
                            need[SLUICE_OFFLOAD_NONE],
                            2 * need[SLUICE_OFFLOAD_NONE]};
        for (size_t k = 0; k < SL_ARRAY_LEN(budgets); k++) {
            if (k > 0 && budgets[k] == budgets[k - 1]) continue;
            for (int m = SLUICE_OFFLOAD_AUTO; m <= SLUICE_OFFLOAD_LAYER_STREAMING; m++) {
                /* deeper prefetch only changes streamed plans */
                if (pf > 1 && budgets[k] >= ag) continue;
                if (pf > 1 && m != SLUICE_OFFLOAD_LAYER_STREAMING && m != SLUICE_OFFLOAD_AUTO)
                    continue;
                int st = inv_run(&s, budgets[k], (sluice_offload_mode)m, pf, rq, 2);
                if (st > 0) streamed_runs++;
                if (budgets[k] < ag &&
                    (m == SLUICE_OFFLOAD_LAYER_STREAMING || m == SLUICE_OFFLOAD_AUTO))
                    CHECKF(st > 0, "prefetch %d budget %zu mode %d: nothing streamed", pf,
                           budgets[k], m);
            }
            if (sl_test_failed()) break;
        }
        if (sl_test_failed()) break;
    }
    printf("    %d runs streamed the diffusion model\n", streamed_runs);
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < rq[r].g.batch_count; i++)
            free(rq[r].ref[i]);
}

/* ---- out of memory, then a request that fits, in the same process ---- */

static int expect_fail(sluice_engine *e, const sluice_gen_params *g, int want_rc,
                       const char *needle) {
    char err[1024] = "";
    sluice_image *im = NULL;
    int n = -1;
    int rc = sluice_generate(e, g, NULL, NULL, &im, &n, err, sizeof err);
    CHECKF(rc == want_rc, "rc %d, want %d (%s)", rc, want_rc, err);
    CHECK(im == NULL && n == 0);
    if (needle) CHECKF(strstr(err, needle) != NULL, "message lacks '%s': %s", needle, err);
    if (rc == 0) sluice_images_free(im, n);
    return rc == want_rc;
}

SL_TEST(pipe_oom_then_success) {
    sl_log_set_level(SL_LOG_ERROR);
    tiny_set s;
    REQUIRE(tiny_files(&s));
    char err[1024], be[64];
    sluice_gen_params small, big;
    gen_defaults(&small);
    gen_defaults(&big);
    big.width = big.height = 512;
    /* reference and requirements on an unlimited emulated device */
    sluice_engine *e = open_engine(&s, "cpu-device:0", SLUICE_OFFLOAD_NONE, 1, err, sizeof err);
    REQUIREF(e, "%s", err);
    uint8_t *ref = gen1(e, &small, err, sizeof err);
    REQUIREF(ref, "%s", err);
    size_t need_s[6], need_b[6];
    sl_err er = {0};
    REQUIRE_OK(sl_pipe_needs(e, &small, need_s, &er), &er);
    REQUIRE_OK(sl_pipe_needs(e, &big, need_b, &er), &er);
    sluice_engine_close(e);
    size_t nb = (size_t)small.width * small.height * 3;
    REQUIRE(need_b[SLUICE_OFFLOAD_NONE] > need_s[SLUICE_OFFLOAD_NONE]);

    /* none at exactly the small request's need: the big one fails up front naming the bytes and
     * a mode that fits (or says none does), the small one then works, twice */
    snprintf(be, sizeof be, "cpu-device:%zu", need_s[SLUICE_OFFLOAD_NONE]);
    e = open_engine(&s, be, SLUICE_OFFLOAD_NONE, 1, err, sizeof err);
    REQUIREF(e, "%s", err);
    expect_fail(e, &big, SLUICE_ERR_OOM_DEVICE, "offload mode none");
    /* the message names a mode that fits when one does */
    for (int m = SLUICE_OFFLOAD_COND_ONLY; m <= SLUICE_OFFLOAD_LAYER_STREAMING; m++)
        if (need_b[m] <= need_s[SLUICE_OFFLOAD_NONE]) {
            char want[64];
            snprintf(want, sizeof want, "--offload-mode %s fits", sluice_offload_mode_name(m));
            expect_fail(e, &big, SLUICE_ERR_OOM_DEVICE, want);
            break;
        }
    for (int k = 0; k < 2; k++) {
        uint8_t *img = gen1(e, &small, err, sizeof err);
        REQUIREF(img, "after the failure: %s", err);
        CHECK(memcmp(img, ref, nb) == 0);
        free(img);
        expect_fail(e, &big, SLUICE_ERR_OOM_DEVICE, "GB");
    }
    sluice_engine_close(e);

    /* layer streaming at its smallest budget: the big request's activations alone do not fit */
    snprintf(be, sizeof be, "cpu-device:%zu", need_s[SLUICE_OFFLOAD_LAYER_STREAMING]);
    e = open_engine(&s, be, SLUICE_OFFLOAD_LAYER_STREAMING, 1, err, sizeof err);
    REQUIREF(e, "%s", err);
    REQUIRE(need_b[SLUICE_OFFLOAD_LAYER_STREAMING] > need_s[SLUICE_OFFLOAD_LAYER_STREAMING]);
    expect_fail(e, &big, SLUICE_ERR_OOM_DEVICE, NULL);
    uint8_t *img = gen1(e, &small, err, sizeof err);
    REQUIREF(img, "after the failure: %s", err);
    CHECK(memcmp(img, ref, nb) == 0);
    free(img);
    sluice_engine_close(e);

    /* auto: no mode fits the big request */
    e = open_engine(&s, be, SLUICE_OFFLOAD_AUTO, 1, err, sizeof err);
    REQUIREF(e, "%s", err);
    expect_fail(e, &big, SLUICE_ERR_OOM_DEVICE, "no offload mode fits");
    img = gen1(e, &small, err, sizeof err);
    REQUIREF(img, "after the failure: %s", err);
    CHECK(memcmp(img, ref, nb) == 0);
    free(img);
    sluice_engine_close(e);

    /* a device too small for anything: open works, every request fails cleanly */
    e = open_engine(&s, "cpu-device:65536", SLUICE_OFFLOAD_AUTO, 1, err, sizeof err);
    REQUIREF(e, "%s", err);
    expect_fail(e, &small, SLUICE_ERR_OOM_DEVICE, NULL);
    sluice_engine_close(e);
    free(ref);
}

/* The VAE falls back to tiles when even the smallest placement leaves its activations no room:
 * the request succeeds (the image is close to, not equal to, the untiled one). */
SL_TEST(pipe_vae_tiling_fallback) {
    sl_log_set_level(SL_LOG_ERROR);
    tiny_set s;
    REQUIRE(tiny_files(&s));
    char err[1024], be[64];
    sluice_gen_params g;
    gen_defaults(&g);
    g.width = 256;
    g.height = 192;
    g.steps = 1;
    sluice_engine *e = open_engine(&s, "cpu-device:0", SLUICE_OFFLOAD_NONE, 1, err, sizeof err);
    REQUIREF(e, "%s", err);
    uint8_t *ref = gen1(e, &g, err, sizeof err);
    REQUIREF(ref, "%s", err);
    sluice_engine *e2 = e;
    size_t need[6];
    sl_err er = {0};
    REQUIRE_OK(sl_pipe_needs(e2, &g, need, &er), &er);
    sluice_engine_close(e);
    /* the minimal streaming need is set by the VAE's untiled arena here; a little less makes the
     * decoder tile */
    size_t budget = need[SLUICE_OFFLOAD_LAYER_STREAMING] - 4096;
    snprintf(be, sizeof be, "cpu-device:%zu", budget);
    e = open_engine(&s, be, SLUICE_OFFLOAD_LAYER_STREAMING, 1, err, sizeof err);
    REQUIREF(e, "%s", err);
    sluice_image *im = NULL;
    int n = 0;
    int rc = sluice_generate(e, &g, NULL, NULL, &im, &n, err, sizeof err);
    REQUIREF(rc == 0, "tiled request: %s", err);
    REQUIRE(n == 1 && im[0].width == 256 && im[0].height == 192);
    size_t nb = (size_t)g.width * g.height * 3;
    double mad = 0;
    for (size_t i = 0; i < nb; i++)
        mad += abs((int)im[0].data[i] - (int)ref[i]);
    mad /= (double)nb;
    printf("    tiled vs untiled: mean |diff| %.2f of 255\n", mad);
    CHECK(memcmp(im[0].data, ref, nb) != 0); /* it did tile */
    sluice_images_free(im, n);
    sluice_engine_close(e);
    free(ref);
}

/* ---- cancellation ---- */

typedef struct cancel_at {
    const char *stage;
    int step, calls;
} cancel_at;

static int cancel_cb(void *user, const sluice_progress *p) {
    cancel_at *c = user;
    c->calls++;
    return !strcmp(p->stage, c->stage) && p->step == c->step;
}

SL_TEST(pipe_cancel) {
    sl_log_set_level(SL_LOG_ERROR);
    tiny_set s;
    REQUIRE(tiny_files(&s));
    char err[1024];
    const char *backends[2] = {"cpu", "cpu-device:0"};
    for (int k = 0; k < 2; k++) {
        sluice_engine *e = open_engine(&s, backends[k], SLUICE_OFFLOAD_AUTO, 1, err, sizeof err);
        REQUIREF(e, "%s", err);
        sluice_gen_params g;
        gen_defaults(&g);
        g.batch_count = 2;
        uint8_t *ref = gen1(e, &g, err, sizeof err);
        REQUIREF(ref, "%s", err);
        const cancel_at at[] = {{"conditioning", 1, 0}, {"sampling", 2, 0}, {"decoding", 1, 0}};
        for (size_t j = 0; j < SL_ARRAY_LEN(at); j++) {
            cancel_at c = at[j];
            sluice_image *im = NULL;
            int n = -1;
            int rc = sluice_generate(e, &g, cancel_cb, &c, &im, &n, err, sizeof err);
            CHECKF(rc == SLUICE_ERR_CANCELLED, "%s: rc %d (%s)", c.stage, rc, err);
            CHECK(im == NULL && n == 0);
            CHECKF(strstr(err, "cancel") != NULL, "%s", err);
            /* the next request works and gives the same image */
            uint8_t *img = gen1(e, &g, err, sizeof err);
            REQUIREF(img, "after cancelling at %s: %s", c.stage, err);
            CHECK(memcmp(img, ref, (size_t)g.width * g.height * 3) == 0);
            free(img);
        }
        /* a callback that never cancels sees every step of every stage */
        cancel_at none = {"never", 0, 0};
        sluice_image *im = NULL;
        int n = 0;
        REQUIREF(sluice_generate(e, &g, cancel_cb, &none, &im, &n, err, sizeof err) == 0, "%s",
                 err);
        CHECKF(none.calls == 1 + g.steps * 2 + 2, "%d progress calls", none.calls);
        sluice_images_free(im, n);
        free(ref);
        sluice_engine_close(e);
    }
}

/* ---- batches: image i of a batch is the single image of seed + i ---- */

SL_TEST(pipe_batch_seeds) {
    sl_log_set_level(SL_LOG_ERROR);
    tiny_set s;
    REQUIRE(tiny_files(&s));
    char err[1024];
    sluice_engine *e = open_engine(&s, "cpu", SLUICE_OFFLOAD_AUTO, 1, err, sizeof err);
    REQUIREF(e, "%s", err);
    sluice_gen_params g;
    gen_defaults(&g);
    g.seed = 100;
    g.batch_count = 3;
    sluice_image *im = NULL;
    int n = 0;
    REQUIREF(sluice_generate(e, &g, NULL, NULL, &im, &n, err, sizeof err) == 0, "%s", err);
    REQUIRE(n == 3);
    size_t nb = (size_t)g.width * g.height * 3;
    for (int i = 0; i < 3; i++) {
        CHECK(im[i].seed == 100 + i && im[i].width == g.width && im[i].height == g.height &&
              im[i].channels == 3);
        sluice_gen_params one = g;
        one.batch_count = 1;
        one.seed = 100 + i;
        uint8_t *single = gen1(e, &one, err, sizeof err);
        REQUIREF(single, "%s", err);
        CHECKF(memcmp(single, im[i].data, nb) == 0, "image %d differs from seed %d alone", i,
               100 + i);
        free(single);
    }
    CHECK(memcmp(im[0].data, im[1].data, nb) != 0);
    sluice_timings t;
    sluice_last_timings(e, &t);
    CHECK(t.n_images == 1);
    sluice_images_free(im, n);
    /* a random seed (< 0) is reported in the image */
    g.seed = -1;
    g.batch_count = 1;
    REQUIREF(sluice_generate(e, &g, NULL, NULL, &im, &n, err, sizeof err) == 0, "%s", err);
    CHECK(im[0].seed >= 0);
    sluice_images_free(im, n);
    sluice_engine_close(e);
}

/* ---- negative prompt and CFG ---- */

SL_TEST(pipe_negative_prompt_cfg) {
    sl_log_set_level(SL_LOG_ERROR);
    tiny_set s;
    REQUIRE(tiny_files(&s));
    char err[1024];
    sluice_engine *e = open_engine(&s, "cpu", SLUICE_OFFLOAD_AUTO, 1, err, sizeof err);
    REQUIREF(e, "%s", err);
    sluice_gen_params g;
    gen_defaults(&g);
    size_t nb = (size_t)g.width * g.height * 3;
    uint8_t *plain = gen1(e, &g, err, sizeof err);
    REQUIREF(plain, "%s", err);
    /* without CFG the negative prompt is not used */
    g.negative_prompt = "blurry, low quality";
    uint8_t *neg_nocfg = gen1(e, &g, err, sizeof err);
    REQUIREF(neg_nocfg, "%s", err);
    CHECK(memcmp(plain, neg_nocfg, nb) == 0);
    /* with CFG it is, and the result depends on it */
    g.cfg_scale = 3.0f;
    uint8_t *cfg_a = gen1(e, &g, err, sizeof err);
    REQUIREF(cfg_a, "%s", err);
    uint8_t *cfg_a2 = gen1(e, &g, err, sizeof err);
    REQUIREF(cfg_a2, "%s", err);
    CHECK(memcmp(cfg_a, cfg_a2, nb) == 0);
    CHECK(memcmp(cfg_a, plain, nb) != 0);
    g.negative_prompt = "";
    uint8_t *cfg_b = gen1(e, &g, err, sizeof err);
    REQUIREF(cfg_b, "%s", err);
    CHECK(memcmp(cfg_a, cfg_b, nb) != 0);
    /* cfg scale 1 is no guidance (sd.cpp convention: w = s − 1) */
    g.cfg_scale = 1.0f;
    g.negative_prompt = "blurry, low quality";
    uint8_t *one = gen1(e, &g, err, sizeof err);
    REQUIREF(one, "%s", err);
    CHECK(memcmp(one, plain, nb) == 0);
    free(plain), free(neg_nocfg), free(cfg_a), free(cfg_a2), free(cfg_b), free(one);
    sluice_engine_close(e);
}

/* ---- model path resolution: diffusers folder, single file ---- */

/* Write an architecture's tiny list as two shards plus a diffusers-style index into dir. */
static sl_status write_sharded(list_fn fn, const char *dir, const char *stem, sl_err *err) {
    sl_synth_list l = {0};
    sl_status st = fn("tiny", "official", &l, err);
    if (st != SL_OK) return st;
    sl_synth_list half[2] = {{0}, {0}};
    for (int k = 0; k < 2; k++)
        snprintf(half[k].arch, sizeof half[k].arch, "%s", l.arch);
    for (int i = 0; i < l.n; i++) {
        const sl_synth_tensor *t = &l.t[i];
        sl_synth_list_add(&half[i < l.n / 2 ? 0 : 1], t->name, t->ndim, t->ne, t->init, t->mean,
                          t->std, t->keep_float);
    }
    char path[800], shard[2][128];
    FILE *ix = NULL;
    sl_synth_opts o = {.dtype = SL_DTYPE_BF16, .format = SL_SYNTH_SAFETENSORS, .seed = 1};
    for (int k = 0; k < 2 && st == SL_OK; k++) {
        snprintf(shard[k], sizeof shard[k], "%s-%05d-of-00002.safetensors", stem, k + 1);
        snprintf(path, sizeof path, "%s/%s", dir, shard[k]);
        st = sl_synth_write(&half[k], &o, path, err);
    }
    if (st == SL_OK) {
        snprintf(path, sizeof path, "%s/%s.safetensors.index.json", dir, stem);
        ix = fopen(path, "w");
        if (!ix) st = sl_err_set(err, SL_ERR_IO, "cannot write %s", path);
    }
    if (ix) {
        fprintf(ix, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
        for (int i = 0; i < l.n; i++)
            fprintf(ix, "%s\"%s\": \"%s\"", i ? ", " : "", l.t[i].name, shard[i < l.n / 2 ? 0 : 1]);
        fprintf(ix, "}}\n");
        fclose(ix);
    }
    sl_synth_list_free(&half[0]);
    sl_synth_list_free(&half[1]);
    sl_synth_list_free(&l);
    return st;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

SL_TEST(pipe_diffusers_folder) {
    sl_log_set_level(SL_LOG_ERROR);
    tiny_set s;
    REQUIRE(tiny_files(&s));
    char err[1024], root[700], sub[800];
    snprintf(root, sizeof root, "%s/Z-Image-Tiny", sl_test_tmpdir());
    mkdir(root, 0755);
    const char *subs[] = {"transformer", "text_encoder", "vae", "tokenizer", "scheduler"};
    for (size_t i = 0; i < SL_ARRAY_LEN(subs); i++) {
        snprintf(sub, sizeof sub, "%s/%s", root, subs[i]);
        mkdir(sub, 0755);
    }
    sl_err er = {0};
    snprintf(sub, sizeof sub, "%s/transformer", root);
    REQUIRE_OK(write_sharded(sl_zimage_synth_list, sub, "diffusion_pytorch_model", &er), &er);
    snprintf(sub, sizeof sub, "%s/transformer/config.json", root);
    write_text(sub, "{\"_class_name\": \"ZImageTransformer2DModel\"}\n");
    snprintf(sub, sizeof sub, "%s/text_encoder", root);
    REQUIRE_OK(write_sharded(sl_qwen3_synth_list, sub, "model", &er), &er);
    snprintf(sub, sizeof sub, "%s/vae/diffusion_pytorch_model.safetensors", root);
    REQUIRE_OK(write_tiny(sl_fluxvae_synth_list, "official", NULL, sub, &er), &er);
    snprintf(sub, sizeof sub, "%s/model_index.json", root);
    write_text(sub, "{\"_class_name\": \"ZImagePipeline\"}\n");

    /* the same weights as the separate files: the same image */
    sluice_engine *e = open_engine(&s, "cpu", SLUICE_OFFLOAD_AUTO, 1, err, sizeof err);
    REQUIREF(e, "%s", err);
    sluice_gen_params g;
    gen_defaults(&g);
    uint8_t *ref = gen1(e, &g, err, sizeof err);
    REQUIREF(ref, "%s", err);
    sluice_engine_close(e);

    sluice_engine_params p;
    sluice_engine_params_init(&p);
    p.model_path = root;
    p.backend = "cpu";
    p.threads = 2;
    REQUIREF(sluice_engine_open(&p, &e, err, sizeof err) == 0, "diffusers folder: %s", err);
    uint8_t *img = gen1(e, &g, err, sizeof err);
    REQUIREF(img, "%s", err);
    CHECK(memcmp(img, ref, (size_t)g.width * g.height * 3) == 0);
    free(img);
    sluice_engine_close(e);

    /* a component flag overrides the folder's */
    p.vae_path = s.vae;
    REQUIREF(sluice_engine_open(&p, &e, err, sizeof err) == 0, "folder + --vae: %s", err);
    sluice_engine_close(e);

    /* a folder without transformer/ and no --diffusion-model is an error naming the fix */
    snprintf(sub, sizeof sub, "%s/empty", sl_test_tmpdir());
    mkdir(sub, 0755);
    snprintf(root, sizeof root, "%s/text_encoder", sub);
    mkdir(root, 0755);
    p.model_path = sub;
    p.vae_path = NULL;
    CHECK(sluice_engine_open(&p, &e, err, sizeof err) != 0 && e == NULL);
    CHECKF(strstr(err, "--diffusion-model") != NULL, "%s", err);
    p.model_path = "/nonexistent/model";
    CHECK(sluice_engine_open(&p, &e, err, sizeof err) == SLUICE_ERR_IO);
    free(ref);
}

SL_TEST(pipe_single_file) {
    sl_log_set_level(SL_LOG_ERROR);
    tiny_set s;
    REQUIRE(tiny_files(&s));
    char err[1024], dit[700], vae[700], all[700];
    const char *d = sl_test_tmpdir();
    /* a ComfyUI-style checkpoint: DiT under model.diffusion_model., VAE under first_stage_model.
     * (LDM names); the same tensors also as two separate files */
    snprintf(dit, sizeof dit, "%s/dit_prefixed.safetensors", d);
    snprintf(vae, sizeof vae, "%s/vae_prefixed.safetensors", d);
    snprintf(all, sizeof all, "%s/checkpoint.safetensors", d);
    sl_err er = {0};
    REQUIRE_OK(write_tiny(sl_zimage_synth_list, "comfy", "model.diffusion_model.", dit, &er), &er);
    REQUIRE_OK(write_tiny(sl_fluxvae_synth_list, "comfy", "first_stage_model.", vae, &er), &er);
    sl_synth_list a = {0}, b = {0};
    REQUIRE_OK(sl_zimage_synth_list("tiny", "comfy", &a, &er), &er);
    REQUIRE_OK(sl_fluxvae_synth_list("tiny", "comfy", &b, &er), &er);
    for (int i = 0; i < a.n; i++) {
        char tmp[160];
        snprintf(tmp, sizeof tmp, "model.diffusion_model.%s", a.t[i].name);
        snprintf(a.t[i].name, sizeof a.t[i].name, "%s", tmp);
    }
    for (int i = 0; i < b.n; i++) {
        char nm[160];
        snprintf(nm, sizeof nm, "first_stage_model.%s", b.t[i].name);
        sl_synth_list_add(&a, nm, b.t[i].ndim, b.t[i].ne, b.t[i].init, b.t[i].mean, b.t[i].std,
                          b.t[i].keep_float);
    }
    sl_synth_opts o = {.dtype = SL_DTYPE_BF16, .format = SL_SYNTH_SAFETENSORS, .seed = 1};
    REQUIRE_OK(sl_synth_write(&a, &o, all, &er), &er);
    sl_synth_list_free(&a);
    sl_synth_list_free(&b);

    sluice_gen_params g;
    gen_defaults(&g);
    sluice_engine_params p;
    sluice_engine_params_init(&p);
    p.backend = "cpu";
    p.threads = 2;
    p.diffusion_model_path = dit;
    p.vae_path = vae;
    p.llm_path = s.te;
    sluice_engine *e = NULL;
    REQUIREF(sluice_engine_open(&p, &e, err, sizeof err) == 0, "separate: %s", err);
    uint8_t *ref = gen1(e, &g, err, sizeof err);
    REQUIREF(ref, "%s", err);
    sluice_engine_close(e);

    sluice_engine_params_init(&p);
    p.backend = "cpu";
    p.threads = 2;
    p.model_path = all;
    p.llm_path = s.te;
    REQUIREF(sluice_engine_open(&p, &e, err, sizeof err) == 0, "single file: %s", err);
    uint8_t *img = gen1(e, &g, err, sizeof err);
    REQUIREF(img, "%s", err);
    CHECK(memcmp(img, ref, (size_t)g.width * g.height * 3) == 0);
    free(img);
    sluice_engine_close(e);

    /* without --llm: the checkpoint has no text encoder, and the message says what to pass */
    p.llm_path = NULL;
    CHECK(sluice_engine_open(&p, &e, err, sizeof err) == SLUICE_ERR_NOT_FOUND);
    CHECKF(strstr(err, "--llm") != NULL, "%s", err);
    /* a DiT-only file without --vae */
    p.model_path = s.dit;
    p.llm_path = s.te;
    CHECK(sluice_engine_open(&p, &e, err, sizeof err) == SLUICE_ERR_NOT_FOUND);
    CHECKF(strstr(err, "--vae") != NULL, "%s", err);
    /* a mismatched set: the VAE given as the text encoder */
    p.vae_path = s.vae;
    p.llm_path = s.vae;
    CHECK(sluice_engine_open(&p, &e, err, sizeof err) != 0);
    free(ref);
}

/* ---- the decisions as pure functions ---- */

typedef struct fake_job {
    sl_pipe_job job;
    size_t bytes[3][12];
    double cost[3][12];
    bool must[3][12];
} fake_job;

/* TE 100 bytes (5 × 20), DiT 300 (20 held + 10 × 28), VAE 10 (1 unit); arenas 10, 50, 40. */
static void fake_make(fake_job *f) {
    memset(f, 0, sizeof *f);
    const int n[3] = {5, 11, 1};
    for (int c = 0; c < 3; c++) {
        sl_pipe_view *v = &f->job.view[c];
        v->n = n[c];
        v->bytes = f->bytes[c];
        v->cost = f->cost[c];
        v->must = f->must[c];
        for (int i = 0; i < n[c]; i++) {
            f->bytes[c][i] = c == 0 ? 20 : c == 2 ? 10 : i == 0 ? 20 : 28;
            f->cost[c][i] = 1e-3;
            v->whole += f->bytes[c][i];
        }
    }
    f->must[1][0] = true;
    f->job.arena[0] = 10;
    f->job.arena[1] = 50;
    f->job.arena[2] = 40;
    f->job.passes[0] = 1;
    f->job.passes[1] = 8;
    f->job.passes[2] = 1;
    f->job.prefetch = 1;
    f->job.link_gbps = 1e-6; /* 1000 bytes/s: transfers dominate the predictions */
    f->job.vae_cfg = sl_fluxvae_cfg_tiny();
    f->job.act = SL_DTYPE_F32;
    f->job.lat_h = f->job.lat_w = 8;
}

SL_TEST(pipe_decide_eviction_and_streaming) {
    fake_job f;
    fake_make(&f);
    sl_err err = {0};
    sl_pipe_decision d;
    sl_pipe_policy only = sl_pipe_policy_make(SLUICE_OFFLOAD_COND_ONLY, NULL);
    /* DiT stage with TE (100) and VAE (10) loaded, 380 usable: parking the VAE alone frees too
     * little, the TE alone is enough (and cheaper than both) */
    sl_pipe_state st = {.loaded = {true, false, true},
                        .dev = {100, 0, 10},
                        .budget = {SIZE_MAX, SIZE_MAX, SIZE_MAX}};
    REQUIRE_OK(sl_pipe_decide(&only, &f.job, 380, &st, SL_PIPE_DIT, &d, &err), &err);
    CHECK(d.park[SL_PIPE_TE] && !d.park[SL_PIPE_VAE] && d.load[SL_PIPE_DIT]);
    CHECK(d.budget == SIZE_MAX && d.dev == 300 && d.arena == 50);
    /* 460 usable: everything fits, nothing parked */
    REQUIRE_OK(sl_pipe_decide(&only, &f.job, 460, &st, SL_PIPE_DIT, &d, &err), &err);
    CHECK(!d.park[0] && !d.park[2] && d.load[1]);
    /* 345 < 300 + 50: cond_only cannot, layer_streaming streams within 295 after parking both */
    CHECK(sl_pipe_decide(&only, &f.job, 345, &st, SL_PIPE_DIT, &d, &err) == SL_ERR_OOM_DEVICE);
    CHECKF(strstr(err.msg, "diffusion model") && strstr(err.msg, "cond_only"), "%s", err.msg);
    sl_err_clear(&err);
    sl_pipe_policy ls = sl_pipe_policy_make(SLUICE_OFFLOAD_LAYER_STREAMING, NULL);
    REQUIRE_OK(sl_pipe_decide(&ls, &f.job, 345, &st, SL_PIPE_DIT, &d, &err), &err);
    CHECK(d.park[0] && d.park[2] && d.load[1] && d.budget == 295 && d.dev <= 295 && d.dev < 300);
    /* the smallest streaming budget: the held unit + 2 slots of the largest streamed unit */
    CHECK(sl_pipe_view_min_budget(&f.job.view[1], 1, 0) == 20 + 2 * 28);
    CHECK(sl_pipe_view_min_budget(&f.job.view[1], 3, 0) == 20 + 4 * 28);
    /* none: everything at conditioning, and the error names the sum */
    sl_pipe_policy none = sl_pipe_policy_make(SLUICE_OFFLOAD_NONE, NULL);
    sl_pipe_state cold = {.budget = {SIZE_MAX, SIZE_MAX, SIZE_MAX}};
    REQUIRE_OK(sl_pipe_decide(&none, &f.job, 460, &cold, SL_PIPE_TE, &d, &err), &err);
    CHECK(d.load[0] && d.load[1] && d.load[2]);
    CHECK(sl_pipe_decide(&none, &f.job, 459, &cold, SL_PIPE_TE, &d, &err) == SL_ERR_OOM_DEVICE);
    CHECKF(strstr(err.msg, "none"), "%s", err.msg);
    /* requirements per mode */
    size_t need[6];
    sl_pipe_requirements(NULL, &f.job, need);
    CHECK(need[SLUICE_OFFLOAD_NONE] == 460);
    CHECK(need[SLUICE_OFFLOAD_COND_ONLY] == 350 && need[SLUICE_OFFLOAD_AGGRESSIVE] == 350);
    CHECKF(need[SLUICE_OFFLOAD_LAYER_STREAMING] == 20 + 2 * 28 + 50, "%zu",
           need[SLUICE_OFFLOAD_LAYER_STREAMING]);
    CHECK(need[SLUICE_OFFLOAD_AUTO] == need[SLUICE_OFFLOAD_LAYER_STREAMING]);
    /* overrides: --no-offload-cond-stage keeps the TE in cond_only */
    sluice_engine_params p;
    sluice_engine_params_init(&p);
    p.offload_cond_stage = 0;
    p.reload_diffusion = 1;
    sl_pipe_policy o = sl_pipe_policy_make(SLUICE_OFFLOAD_COND_DIFFUSION, &p);
    CHECK(!o.park_after[SL_PIPE_TE] && o.park_after[SL_PIPE_DIT] && o.reload[SL_PIPE_DIT]);
}

SL_TEST(pipe_auto_choice) {
    fake_job f;
    fake_make(&f);
    sl_err err = {0};
    sl_pipe_state cold = {.budget = {SIZE_MAX, SIZE_MAX, SIZE_MAX}};
    sluice_offload_mode m;
    double t;
    char why[512];
    /* everything fits: none (no transfers after the first request) */
    REQUIRE_OK(sl_pipe_auto(NULL, &f.job, 10000, &cold, &m, &t, why, sizeof why, &err), &err);
    CHECKF(m == SLUICE_OFFLOAD_NONE, "%s", why);
    /* 400: none does not fit; cond_only and cond_diffusion move the same bytes in steady state,
     * cond_only is listed first */
    REQUIRE_OK(sl_pipe_auto(NULL, &f.job, 400, &cold, &m, &t, why, sizeof why, &err), &err);
    CHECKF(m == SLUICE_OFFLOAD_COND_ONLY, "%s", why);
    CHECKF(strstr(why, "none needs") != NULL, "%s", why);
    /* 200: only streaming */
    REQUIRE_OK(sl_pipe_auto(NULL, &f.job, 200, &cold, &m, &t, why, sizeof why, &err), &err);
    CHECKF(m == SLUICE_OFFLOAD_LAYER_STREAMING, "%s", why);
    CHECK(t > 0);
    /* nothing fits */
    CHECK(sl_pipe_auto(NULL, &f.job, 100, &cold, &m, &t, why, sizeof why, &err) ==
          SL_ERR_OOM_DEVICE);
    CHECKF(strstr(err.msg, "no offload mode fits"), "%s", err.msg);
}

/* ---- activation sizing: the dry run and the formula agree ---- */

#include "pipeline/engine_impl.h"

SL_TEST(pipe_arena_dryrun_matches_formula) {
    sl_log_set_level(SL_LOG_ERROR);
    tiny_set s;
    REQUIRE(tiny_files(&s));
    char err[1024];
    sluice_engine *e = open_engine(&s, "cpu-device:0", SLUICE_OFFLOAD_AUTO, 1, err, sizeof err);
    REQUIREF(e, "%s", err);
    const int cases[][5] = {{64, 48, 1, 13, 0}, {96, 160, 2, 20, 9}, {256, 256, 2, 40, 40}};
    for (size_t k = 0; k < SL_ARRAY_LEN(cases); k++) {
        int lc[2] = {cases[k][3], cases[k][4]};
        sl_pipe_job dry, form;
        sl_err er = {0};
        e->p.vram_estimation_formula = false;
        REQUIRE_OK(sl_pipe_job_make(e, cases[k][0], cases[k][1], lc, cases[k][2], 4, 1, &dry, &er),
                   &er);
        e->p.vram_estimation_formula = true;
        REQUIRE_OK(sl_pipe_job_make(e, cases[k][0], cases[k][1], lc, cases[k][2], 4, 1, &form, &er),
                   &er);
        for (int c = 0; c < SL_PIPE_NCOMP; c++)
            CHECKF(dry.arena[c] == form.arena[c], "case %zu stage %d: dry run %zu, formula %zu", k,
                   c, dry.arena[c], form.arena[c]);
        sl_pipe_job_free(&dry);
        sl_pipe_job_free(&form);
    }
    sluice_engine_close(e);
}

/* ---- --offload-log and --profile ---- */

typedef struct logcap {
    char buf[1 << 16];
    size_t len;
} logcap;

static void cap_log(int level, const char *msg, void *user) {
    logcap *c = user;
    (void)level;
    int k = snprintf(c->buf + c->len, sizeof c->buf - c->len, "%s\n", msg);
    if (k > 0 && c->len + (size_t)k < sizeof c->buf) c->len += (size_t)k;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

SL_TEST(pipe_offload_log_and_profile) {
    tiny_set s;
    REQUIRE(tiny_files(&s));
    char err[1024];
    static logcap cap;
    cap.len = 0;
    cap.buf[0] = 0;
    sluice_set_log(cap_log, &cap, 1);
    sluice_engine_params p;
    sluice_engine_params_init(&p);
    p.diffusion_model_path = s.dit;
    p.llm_path = s.te;
    p.vae_path = s.vae;
    p.backend = "cpu-device:0";
    p.threads = 2;
    p.offload_mode = SLUICE_OFFLOAD_COND_DIFFUSION;
    p.offload_log = true;
    p.profile = true;
    p.streaming_min_vram_mb = 0;
    sluice_engine *e = NULL;
    REQUIREF(sluice_engine_open(&p, &e, err, sizeof err) == 0, "%s", err);
    sluice_gen_params g;
    gen_defaults(&g);
    uint8_t *img = gen1(e, &g, err, sizeof err);
    sluice_set_log(NULL, NULL, 1);
    REQUIREF(img, "%s", err);
    free(img);
    sluice_engine_close(e);
    /* every transition, and a residency line per pass: 1 conditioning + 3 steps + 1 decode */
    CHECKF(strstr(cap.buf, "offload: load text encoder") &&
               strstr(cap.buf, "offload: park text encoder") &&
               strstr(cap.buf, "offload: load diffusion model") &&
               strstr(cap.buf, "offload: park diffusion model") &&
               strstr(cap.buf, "offload: load VAE"),
           "log:\n%s", cap.buf);
    CHECKF(count(cap.buf, "res[diffusion model]") >= 3 &&
               count(cap.buf, "res[text encoder]") >= 1 && count(cap.buf, "res[VAE]") >= 1,
           "log:\n%s", cap.buf);
    CHECKF(strstr(cap.buf, "generating image: 1/1 - seed 7") &&
               strstr(cap.buf, "sampling completed, taking") &&
               strstr(cap.buf, "decode_first_stage completed, taking") &&
               strstr(cap.buf, "generate_image completed in"),
           "log:\n%s", cap.buf);
}

/* ---- GGUF and quantised weights go through the same path ---- */

SL_TEST(pipe_gguf_quantized_dit) {
    sl_log_set_level(SL_LOG_ERROR);
    tiny_set s;
    REQUIRE(tiny_files(&s));
    char err[1024];
    snprintf(s.dit, sizeof s.dit, "%s/zimage-q8_0.gguf", sl_test_tmpdir());
    sl_synth_list l = {0};
    sl_err er = {0};
    REQUIRE_OK(sl_zimage_synth_list("tiny", "comfy", &l, &er), &er);
    sl_synth_opts o = {.dtype = SL_DTYPE_Q8_0, .format = SL_SYNTH_GGUF, .seed = 1};
    REQUIRE_OK(sl_synth_write(&l, &o, s.dit, &er), &er);
    sl_synth_list_free(&l);
    sluice_gen_params g;
    gen_defaults(&g);
    uint8_t *imgs[2];
    const char *backends[2] = {"cpu", "cpu-device:0"};
    for (int k = 0; k < 2; k++) {
        sluice_engine *e =
            open_engine(&s, backends[k], SLUICE_OFFLOAD_LAYER_STREAMING, 1, err, sizeof err);
        REQUIREF(e, "%s", err);
        imgs[k] = gen1(e, &g, err, sizeof err);
        REQUIREF(imgs[k], "%s: %s", backends[k], err);
        sluice_engine_close(e);
    }
    CHECK(memcmp(imgs[0], imgs[1], (size_t)g.width * g.height * 3) == 0);
    free(imgs[0]), free(imgs[1]);
}
