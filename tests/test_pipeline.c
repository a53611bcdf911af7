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
    for (size_t i = 0; i < nb; i++) lo = a[i] < lo ? a[i] : lo, hi = a[i] > hi ? a[i] : hi;
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
            sl_test_fail(__FILE__, __LINE__, "mode %s prefetch %d budget %zu (needs %s) request %d: %s",
                         mn, prefetch, budget, gb_s(need, b1), r, err);
            continue;
        }
        if (!expect) {
            CHECKF(rc == SLUICE_ERR_OOM_DEVICE, "mode %s prefetch %d budget %zu (needs %s) request %d: rc %d %s",
                   mn, prefetch, budget, gb_s(need, b1), r, rc, rc ? err : "(succeeded)");
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
        REQUIREF(sluice_generate(e, &rq[r].g, NULL, NULL, &im, &n, err, sizeof err) == 0, "%s", err);
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
        printf("    prefetch %d: needs none %s, cond_only %s, aggressive %s, layer_streaming %s\n", pf,
               gb_s(need[SLUICE_OFFLOAD_NONE], a), gb_s(need[SLUICE_OFFLOAD_COND_ONLY], b),
               gb_s(need[SLUICE_OFFLOAD_AGGRESSIVE], c), gb_s(need[SLUICE_OFFLOAD_LAYER_STREAMING], d));
        REQUIRE(need[SLUICE_OFFLOAD_LAYER_STREAMING] < need[SLUICE_OFFLOAD_AGGRESSIVE]);
        REQUIRE(need[SLUICE_OFFLOAD_AGGRESSIVE] <= need[SLUICE_OFFLOAD_COND_ONLY]);
        REQUIRE(need[SLUICE_OFFLOAD_COND_ONLY] <= need[SLUICE_OFFLOAD_NONE]);
        size_t ls = need[SLUICE_OFFLOAD_LAYER_STREAMING], ag = need[SLUICE_OFFLOAD_AGGRESSIVE];
        size_t budgets[] = {ls, ls + (ag - ls) / 3, ls + 2 * (ag - ls) / 3, ag,
                            need[SLUICE_OFFLOAD_COND_ONLY], need[SLUICE_OFFLOAD_NONE],
                            2 * need[SLUICE_OFFLOAD_NONE]};
        for (size_t k = 0; k < SL_ARRAY_LEN(budgets); k++) {
            for (int m = SLUICE_OFFLOAD_AUTO; m <= SLUICE_OFFLOAD_LAYER_STREAMING; m++) {
                /* deeper prefetch only changes streamed plans */
                if (pf > 1 && budgets[k] >= ag) continue;
                if (pf > 1 && m != SLUICE_OFFLOAD_LAYER_STREAMING && m != SLUICE_OFFLOAD_AUTO) continue;
                int st = inv_run(&s, budgets[k], (sluice_offload_mode)m, pf, rq, 2);
                if (st > 0) streamed_runs++;
                if (budgets[k] < ag && (m == SLUICE_OFFLOAD_LAYER_STREAMING || m == SLUICE_OFFLOAD_AUTO))
                    CHECKF(st > 0, "prefetch %d budget %zu mode %d: nothing streamed", pf, budgets[k], m);
            }
            if (sl_test_failed()) break;
        }
        if (sl_test_failed()) break;
    }
    printf("    %d runs streamed the diffusion model\n", streamed_runs);
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < rq[r].g.batch_count; i++) free(rq[r].ref[i]);
}
