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
