/* Z-Image DiT tests: configs and names, the synthetic list, loading both layouts, RoPE and
 * positions, the forward pass on the CPU backend, dry runs, and reference fixtures. */
#include <stdlib.h>
#include <string.h>

#include "models/synth.h"
#include "models/zimage/zimage.h"
#include "test.h"
#include "test_models_util.h"

static const sl_synth_tensor *find_synth(const sl_synth_list *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->t[i].name, name)) return &l->t[i];
    return NULL;
}

static long long synth_params(const sl_synth_list *l) {
    long long n = 0;
    for (int i = 0; i < l->n; i++) {
        long long e = 1;
        for (int d = 0; d < l->t[i].ndim; d++)
            e *= l->t[i].ne[d];
        n += e;
    }
    return n;
}

SL_TEST(zimage_synth_full_param_count) {
    sl_err err = {0};
    const char *lays[] = {"official", "comfy"};
    for (int k = 0; k < 2; k++) {
        sl_synth_list l = {0};
        REQUIRE_OK(sl_zimage_synth_list("full", lays[k], &l, &err), &err);
        CHECKF(synth_params(&l) == 6154908736LL, "%s: %lld params", lays[k], synth_params(&l));
        /* 15 globals + 32 modulated blocks + 2 context refiners */
        int want = k == 0 ? 15 + 32 * 15 + 2 * 13 : 15 + 32 * 13 + 2 * 11;
        CHECKF(l.n == want, "%s: %d tensors, want %d", lays[k], l.n, want);
        CHECK(!strcmp(l.arch, "zimage"));
        free(l.t);
    }
    sl_zimage_config full = sl_zimage_config_full();
    CHECK(sl_zimage_param_count(&full) == 6154908736LL);
}

SL_TEST(zimage_synth_names_and_shapes) {
    sl_err err = {0};
    sl_synth_list l = {0};
    REQUIRE_OK(sl_zimage_synth_list("full", "official", &l, &err), &err);
    const sl_synth_tensor *t = find_synth(&l, "all_x_embedder.2-1.weight");
    REQUIRE(t && t->ndim == 2 && t->ne[0] == 3840 && t->ne[1] == 64);
    t = find_synth(&l, "layers.29.adaLN_modulation.0.weight");
    REQUIRE(t && t->ne[0] == 15360 && t->ne[1] == 256);
    CHECK(find_synth(&l, "context_refiner.1.adaLN_modulation.0.weight") == NULL);
    t = find_synth(&l, "noise_refiner.1.attention.norm_k.weight");
    REQUIRE(t && t->ndim == 1 && t->ne[0] == 128 && t->keep_float);
    t = find_synth(&l, "x_pad_token");
    REQUIRE(t && t->ndim == 2 && t->ne[0] == 1 && t->ne[1] == 3840);
    t = find_synth(&l, "layers.3.feed_forward.w2.weight");
    REQUIRE(t && t->ne[0] == 3840 && t->ne[1] == 10240 && !t->keep_float);
    CHECK_NEAR(t->std, 1.0 / sqrt(10240.0), 1e-7);
    t = find_synth(&l, "all_final_layer.2-1.adaLN_modulation.1.weight");
    REQUIRE(t && t->ne[0] == 3840 && t->ne[1] == 256);
    free(l.t);

    sl_synth_list c = {0};
    REQUIRE_OK(sl_zimage_synth_list("tiny", "comfy", &c, &err), &err);
    t = find_synth(&c, "layers.1.attention.qkv.weight");
    REQUIRE(t && t->ne[0] == 3 * 384 && t->ne[1] == 384);
    CHECK(find_synth(&c, "layers.1.attention.to_q.weight") == NULL);
    CHECK(find_synth(&c, "x_embedder.weight") != NULL);
    CHECK(find_synth(&c, "final_layer.linear.bias") != NULL);
    CHECK(find_synth(&c, "layers.0.attention.q_norm.weight") != NULL);
    CHECK(find_synth(&c, "layers.0.attention.out.weight") != NULL);
    t = find_synth(&c, "cap_embedder.1.weight");
    REQUIRE(t && t->ne[0] == 384 && t->ne[1] == 256);
    /* every quantisable row is whole q8_0 / q4_0 blocks */
    for (int i = 0; i < c.n; i++)
        if (!c.t[i].keep_float && c.t[i].ndim == 2)
            CHECKF(c.t[i].ne[1] % 32 == 0, "%s", c.t[i].name);
    free(c.t);

    sl_synth_list bad = {0};
    CHECK(sl_zimage_synth_list("huge", "official", &bad, &err) == SL_ERR_INVALID_ARG);
    sl_err e2 = {0};
    CHECK(sl_zimage_synth_list("tiny", "bfl", &bad, &e2) == SL_ERR_INVALID_ARG);
    CHECK(strstr(e2.msg, "comfy") != NULL);
}

SL_TEST(zimage_config_tiny_derivations) {
    sl_zimage_config c = sl_zimage_config_tiny();
    /* the reference constructor's derivations */
    CHECK(c.ffn_dim == (int)(c.dim / 3.0 * 8.0));
    CHECK(c.adaln_dim == (c.dim < 256 ? c.dim : 256));
    CHECK(c.head_dim * c.n_heads == c.dim);
    CHECK(c.axes_dims[0] + c.axes_dims[1] + c.axes_dims[2] == c.head_dim);
    CHECK(c.dim % 32 == 0 && c.ffn_dim % 32 == 0);
    CHECK(c.cap_dim == 256);
    sl_zimage_config f = sl_zimage_config_full();
    CHECK(f.ffn_dim == (int)(f.dim / 3.0 * 8.0));
}

/* ------------------------------------------------------------------------------------------ */
/* helpers: tiny model files, a forward runner, and a naive reference                          */
/* ------------------------------------------------------------------------------------------ */

#include "backend/backend.h"
#include "core/quant.h"
#include "core/rng.h"
#include "io/safetensors.h"

#define TINY_SEED 1234u

/* Write the tiny official-layout model (seed TINY_SEED; bf16 safetensors unless dt is a GGUF
 * block type) to the test's scratch dir; drop a tensor or swap a matrix shape on request. Returns
 * the path in buf. */
static sl_status write_tiny_dt(const char *name, const char *drop, const char *reshape, sl_dtype dt,
                               char *buf, size_t n, sl_err *err) {
    sl_synth_list l = {0};
    sl_status st = sl_zimage_synth_list("tiny", "official", &l, err);
    if (st == SL_OK) {
        tm_list_drop(&l, drop);
        sl_synth_tensor *t = tm_list_find(&l, reshape);
        if (t) {
            int64_t a = t->ne[0];
            t->ne[0] = t->ne[1];
            t->ne[1] = a;
        }
        st = tm_write_list(&l, name, dt, TINY_SEED, buf, n, err);
    }
    sl_synth_list_free(&l);
    return st;
}

static sl_status write_tiny(const char *name, const char *drop, const char *reshape, char *buf,
                            size_t n, sl_err *err) {
    return write_tiny_dt(name, drop, reshape, SL_DTYPE_BF16, buf, n, err);
}

/* The ComfyUI layout of the same weights: renamed, q/k/v rows concatenated into qkv, every name
 * under `prefix`. */
static sl_status write_comfy_from(const sl_wdir *wd, const sl_zimage_config *c, const char *prefix,
                                  const char *path, sl_err *err) {
    sl_st_writer *w = NULL;
    sl_status st = sl_st_writer_open(&w, path, err);
    if (st) return st;
    enum { MAXT = 512 };
    const sl_wentry *src[MAXT][3];
    int nsrc[MAXT], nt = 0;
    char on[160], cn[160], full[200];
    for (int r = 0; r < SL_ZIMAGE_G_COUNT; r++) {
        sl_zimage_global_name(SL_ZIMAGE_OFFICIAL, c, (sl_zimage_grole)r, on, sizeof on);
        sl_zimage_global_name(SL_ZIMAGE_COMFY, c, (sl_zimage_grole)r, cn, sizeof cn);
        const sl_wentry *e = sl_wdir_find(wd, on);
        SL_ASSERT(e);
        snprintf(full, sizeof full, "%s%s", prefix, cn);
        if ((st = sl_st_writer_add(w, full, e->dtype, e->ndim, e->ne, err))) goto fail;
        src[nt][0] = e;
        nsrc[nt++] = 1;
    }
    for (int kind = 0; kind < 3; kind++) {
        int nb = kind == SL_ZIMAGE_LAYER ? c->n_layers : c->n_refiner;
        for (int i = 0; i < nb; i++)
            for (int r = 0; r < SL_ZIMAGE_B_COUNT; r++) {
                if (kind == SL_ZIMAGE_CONTEXT_REFINER && r >= SL_ZIMAGE_B_ADA_W) continue;
                if (r == SL_ZIMAGE_B_WK || r == SL_ZIMAGE_B_WV) continue;
                sl_zimage_block_name(SL_ZIMAGE_COMFY, (sl_zimage_block_kind)kind, i,
                                     (sl_zimage_brole)r, cn, sizeof cn);
                snprintf(full, sizeof full, "%s%s", prefix, cn);
                int k = r == SL_ZIMAGE_B_WQ ? 3 : 1;
                for (int j = 0; j < k; j++) {
                    sl_zimage_block_name(SL_ZIMAGE_OFFICIAL, (sl_zimage_block_kind)kind, i,
                                         (sl_zimage_brole)(r + j), on, sizeof on);
                    src[nt][j] = sl_wdir_find(wd, on);
                    SL_ASSERT(src[nt][j]);
                }
                int64_t ne[4] = {src[nt][0]->ne[0] * k, src[nt][0]->ne[1]};
                if ((st = sl_st_writer_add(w, full, src[nt][0]->dtype, src[nt][0]->ndim, ne, err)))
                    goto fail;
                nsrc[nt++] = k;
                SL_ASSERT(nt < MAXT);
            }
    }
    if ((st = sl_st_writer_begin_data(w, err))) goto fail;
    for (int i = 0; i < nt; i++)
        for (int j = 0; j < nsrc[i]; j++)
            if ((st = sl_st_writer_write(w, src[i][j]->data, src[i][j]->nbytes, err))) goto fail;
    return sl_st_writer_close(w, err);
fail:
    sl_st_writer_abort(w);
    return st;
}

static sl_wdir *open_wdir(const char *path, sl_err *err) {
    sl_wdir *wd = NULL;
    const char *paths[] = {path};
    if (sl_wdir_open(&wd, paths, 1, err) != SL_OK) return NULL;
    return wd;
}

/* Inputs of one test case. */
typedef struct zcase {
    int Hl, Wl;
    float t;
    int n_caps;
    int lc[2];
    float *latent; /* [16, Hl, Wl] */
    float *cap[2]; /* [lc, Cc] */
} zcase;

static void zcase_make(zcase *z, const sl_zimage_config *c, int Hl, int Wl, float t, int n_caps,
                       int lc0, int lc1, uint64_t seed) {
    memset(z, 0, sizeof *z);
    z->Hl = Hl;
    z->Wl = Wl;
    z->t = t;
    z->n_caps = n_caps;
    z->lc[0] = lc0;
    z->lc[1] = lc1;
    int64_t nl = (int64_t)c->in_ch * Hl * Wl;
    z->latent = malloc((size_t)nl * sizeof(float));
    sl_rng_normal(seed, 1, 0, z->latent, nl);
    for (int b = 0; b < n_caps; b++) {
        int64_t nc = (int64_t)z->lc[b] * c->cap_dim;
        z->cap[b] = malloc((size_t)nc * sizeof(float));
        sl_rng_normal(seed, 2 + (uint64_t)b, 0, z->cap[b], nc);
    }
}

static void zcase_free(zcase *z) {
    free(z->latent);
    free(z->cap[0]);
    free(z->cap[1]);
}

/* Run sl_zimage_forward on backend be (a plain CPU backend, a CPU-as-device one, or the
 * measuring backend when out is NULL). Returns the forward's own arena peak in *peak. */
static sl_status run_forward(sl_zimage *m, sl_res *res, sl_backend *be, const zcase *z,
                             float *out[2], size_t *peak, sl_err *err) {
    const sl_zimage_config *c = &m->cfg;
    bool measure = !strcmp(be->info.name, "measure");
    size_t io = 2 * SL_ALIGN_UP((size_t)c->in_ch * z->Hl * z->Wl * 4, 256) * 2 + 4096;
    for (int b = 0; b < z->n_caps; b++)
        io += SL_ALIGN_UP((size_t)z->lc[b] * c->cap_dim * 4, 256);
    size_t need = sl_zimage_arena_bytes(c, be->info.act_dtype, z->Hl, z->Wl, z->lc, z->n_caps) + io;
    void *arena = NULL;
    if (!measure) {
        if (be->info.is_device) {
            sl_status st = be->vt->alloc(be, need, &arena, err);
            if (st) return st;
        } else if (posix_memalign(&arena, 256, need)) {
            return sl_err_set(err, SL_ERR_OOM_HOST, "test arena");
        }
    }
    sl_ctx ctx;
    sl_ctx_init(&ctx, be, arena, need);
    sl_tensor lat = sl_new3(&ctx, SL_DTYPE_F32, c->in_ch, z->Hl, z->Wl);
    sl_tensor caps[2], vel[2];
    for (int b = 0; b < z->n_caps; b++) {
        caps[b] = sl_new2(&ctx, SL_DTYPE_F32, z->lc[b], c->cap_dim);
        vel[b] = sl_new3(&ctx, SL_DTYPE_F32, c->in_ch, z->Hl, z->Wl);
    }
    sl_upload(&ctx, &lat, z->latent);
    for (int b = 0; b < z->n_caps; b++)
        sl_upload(&ctx, &caps[b], z->cap[b]);
    const sl_tensor *cp[2] = {&caps[0], &caps[1]};
    sl_tensor *vp[2] = {&vel[0], &vel[1]};
    size_t before = sl_ctx_mark(&ctx);
    SL_ASSERT(ctx.peak == before);
    sl_status st = sl_zimage_forward(m, res, &ctx, &lat, z->t, cp, z->n_caps, vp, err);
    if (peak) *peak = ctx.peak - before;
    if (!st && out)
        for (int b = 0; b < z->n_caps; b++)
            sl_download(&ctx, out[b], &vel[b]);
    if (!st) st = sl_ctx_take_error(&ctx, err);
    if (arena) {
        if (be->info.is_device)
            be->vt->free(be, arena);
        else
            free(arena);
    }
    return st;
}

static sl_backend *cpu_backend(bool as_device) {
    sl_cpu_options o = {.threads = 2, .as_device = as_device};
    sl_backend *be = NULL;
    sl_err err = {0};
    if (sl_backend_cpu_create(&o, &be, &err) != SL_OK) return NULL;
    return be;
}

static double rel_l2(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

/* ---- naive reference (plain loops, double accumulation), official-layout weights ---- */

static float *wget(const sl_wdir *wd, const char *name, int64_t want) {
    const sl_wentry *e = sl_wdir_find(wd, name);
    SL_ASSERTF(e, "reference: %s missing", name);
    sl_tensor t = sl_wentry_tensor(e);
    int64_t n = sl_tensor_numel(&t);
    SL_ASSERTF(n == want, "reference: %s has %lld elements, want %lld", name, (long long)n,
               (long long)want);
    float *v = malloc((size_t)n * sizeof *v);
    sl_dequant_row(e->dtype, e->data, v, n);
    return v;
}

/* y[M,N] = x[M,K]·W[N,K]ᵀ + b */
static void ref_linear(float *y, const float *x, const float *W, const float *b, int M, int N,
                       int K) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = b ? b[j] : 0.0;
            for (int k = 0; k < K; k++)
                s += (double)x[(size_t)i * K + k] * W[(size_t)j * K + k];
            y[(size_t)i * N + j] = (float)s;
        }
}

static void ref_rms(float *y, const float *x, const float *w, int M, int D, float eps) {
    for (int i = 0; i < M; i++) {
        double ss = 0;
        for (int k = 0; k < D; k++)
            ss += (double)x[(size_t)i * D + k] * x[(size_t)i * D + k];
        double r = 1.0 / sqrt(ss / D + eps);
        for (int k = 0; k < D; k++)
            y[(size_t)i * D + k] = (float)(x[(size_t)i * D + k] * r * w[k]);
    }
}

static double silu(double v) {
    return v / (1.0 + exp(-v));
}

/* One branch: velocity [16, Hl, Wl] = −DiT(latent, t, cap). */
static void ref_forward(const sl_wdir *wd, const sl_zimage_config *c, const float *latent, int Hl,
                        int Wl, float t, const float *cap, int Lc, float *vel) {
    const int D = c->dim, F = c->ffn_dim, A = c->adaln_dim, H = c->n_heads, Dh = c->head_dim;
    const int Ht = Hl / 2, Wt = Wl / 2, Ni = Ht * Wt, Nip = (Ni + 31) / 32 * 32;
    const int Lcp = (Lc + 31) / 32 * 32, N = Nip + Lcp;
    char nm[160];
    /* timestep embedding */
    float tf[256], h1[1024], cvec[256];
    for (int k = 0; k < 128; k++) {
        double f = exp(-log(10000.0) * k / 128.0), a = (double)t * 1000.0 * f;
        tf[k] = (float)cos(a);
        tf[128 + k] = (float)sin(a);
    }
    float *w0 = wget(wd, "t_embedder.mlp.0.weight", (int64_t)c->t_mid * 256);
    float *b0 = wget(wd, "t_embedder.mlp.0.bias", c->t_mid);
    float *w2 = wget(wd, "t_embedder.mlp.2.weight", (int64_t)A * c->t_mid);
    float *b2 = wget(wd, "t_embedder.mlp.2.bias", A);
    ref_linear(h1, tf, w0, b0, 1, c->t_mid, 256);
    for (int k = 0; k < c->t_mid; k++)
        h1[k] = (float)silu(h1[k]);
    ref_linear(cvec, h1, w2, b2, 1, A, c->t_mid);
    free(w0), free(b0), free(w2), free(b2);

    float *x = calloc((size_t)N * D, sizeof *x);
    /* image tokens: feature (ph·2 + pw)·16 + ch */
    float *feat = malloc((size_t)Ni * 64 * sizeof *feat);
    for (int h = 0; h < Ht; h++)
        for (int w = 0; w < Wt; w++)
            for (int ph = 0; ph < 2; ph++)
                for (int pw = 0; pw < 2; pw++)
                    for (int ch = 0; ch < 16; ch++)
                        feat[(size_t)(h * Wt + w) * 64 + (ph * 2 + pw) * 16 + ch] =
                            latent[((size_t)ch * Hl + 2 * h + ph) * Wl + 2 * w + pw];
    float *xw = wget(wd, "all_x_embedder.2-1.weight", (int64_t)D * 64);
    float *xb = wget(wd, "all_x_embedder.2-1.bias", D);
    ref_linear(x, feat, xw, xb, Ni, D, 64);
    float *xpad = wget(wd, "x_pad_token", D);
    for (int r = Ni; r < Nip; r++)
        memcpy(x + (size_t)r * D, xpad, (size_t)D * 4);
    free(feat), free(xw), free(xb), free(xpad);
    /* caption tokens */
    float *cn = malloc((size_t)Lc * c->cap_dim * sizeof *cn);
    float *cw0 = wget(wd, "cap_embedder.0.weight", c->cap_dim);
    float *cw1 = wget(wd, "cap_embedder.1.weight", (int64_t)D * c->cap_dim);
    float *cb1 = wget(wd, "cap_embedder.1.bias", D);
    ref_rms(cn, cap, cw0, Lc, c->cap_dim, 1e-5f);
    ref_linear(x + (size_t)Nip * D, cn, cw1, cb1, Lc, D, c->cap_dim);
    float *cpad = wget(wd, "cap_pad_token", D);
    for (int r = Nip + Lc; r < N; r++)
        memcpy(x + (size_t)r * D, cpad, (size_t)D * 4);
    free(cn), free(cw0), free(cw1), free(cb1), free(cpad);

    /* positions and rotations, written out independently of the model code */
    int *pos = malloc((size_t)N * 3 * sizeof *pos);
    for (int r = 0; r < N; r++) {
        int *p = pos + 3 * r;
        if (r < Ni)
            p[0] = Lcp + 1, p[1] = r / Wt, p[2] = r % Wt;
        else if (r < Nip)
            p[0] = p[1] = p[2] = 0;
        else
            p[0] = r - Nip + 1, p[1] = p[2] = 0;
    }
    double *cs = malloc((size_t)N * Dh * sizeof *cs); /* cos, sin per pair */
    for (int r = 0; r < N; r++)
        for (int q = 0; q < Dh / 2; q++) {
            int a = q < 16 ? 0 : q < 40 ? 1 : 2, j = q < 16 ? q : q < 40 ? q - 16 : q - 40;
            int d = a == 0 ? 32 : 48;
            double ang = pos[3 * r + a] * pow(256.0, -2.0 * j / d);
            cs[(size_t)r * Dh + 2 * q] = cos(ang);
            cs[(size_t)r * Dh + 2 * q + 1] = sin(ang);
        }

    float *h = malloc((size_t)N * D * 4), *q = malloc((size_t)N * D * 4),
          *k = malloc((size_t)N * D * 4);
    float *v = malloc((size_t)N * D * 4), *o = malloc((size_t)N * D * 4),
          *a = malloc((size_t)N * D * 4);
    float *g = malloc((size_t)N * F * 4), *u = malloc((size_t)N * F * 4);
    double *sc = malloc((size_t)N * sizeof *sc);
    static const char *const kinds[3] = {"noise_refiner", "context_refiner", "layers"};
    for (int kind = 0; kind < 3; kind++) {
        int nb = kind == 2 ? c->n_layers : c->n_refiner;
        int r0 = kind == 1 ? Nip : 0, n = kind == 0 ? Nip : kind == 1 ? Lcp : N;
        for (int bi = 0; bi < nb; bi++) {
#define W(suf, cnt) (snprintf(nm, sizeof nm, "%s.%d.%s", kinds[kind], bi, suf), wget(wd, nm, (cnt)))
            float *xs = x + (size_t)r0 * D;
            double mod[4][4096];
            SL_ASSERT(D <= 4096);
            for (int j = 0; j < 4; j++)
                for (int e = 0; e < D; e++)
                    mod[j][e] = 1.0; /* unmodulated: scale 1, gate 1 */
            if (kind != 1) {
                float *aw = W("adaLN_modulation.0.weight", (int64_t)4 * D * A);
                float *ab = W("adaLN_modulation.0.bias", 4 * D);
                float *mm = malloc((size_t)4 * D * 4);
                ref_linear(mm, cvec, aw, ab, 1, 4 * D, A);
                for (int j = 0; j < 4; j++)
                    for (int e = 0; e < D; e++)
                        mod[j][e] = j % 2 == 0 ? 1.0 + mm[j * D + e] : tanh((double)mm[j * D + e]);
                free(aw), free(ab), free(mm);
            }
            float *n1 = W("attention_norm1.weight", D), *n2 = W("attention_norm2.weight", D);
            float *f1 = W("ffn_norm1.weight", D), *f2 = W("ffn_norm2.weight", D);
            float *wq = W("attention.to_q.weight", (int64_t)D * D),
                  *wk = W("attention.to_k.weight", (int64_t)D * D);
            float *wv = W("attention.to_v.weight", (int64_t)D * D),
                  *wo = W("attention.to_out.0.weight", (int64_t)D * D);
            float *nq = W("attention.norm_q.weight", Dh), *nk = W("attention.norm_k.weight", Dh);
            float *w1 = W("feed_forward.w1.weight", (int64_t)F * D),
                  *w3 = W("feed_forward.w3.weight", (int64_t)F * D);
            float *ww2 = W("feed_forward.w2.weight", (int64_t)D * F);
#undef W
            ref_rms(h, xs, n1, n, D, 1e-5f);
            for (int r = 0; r < n; r++)
                for (int e = 0; e < D; e++)
                    h[(size_t)r * D + e] = (float)(h[(size_t)r * D + e] * mod[0][e]);
            ref_linear(q, h, wq, NULL, n, D, D);
            ref_linear(k, h, wk, NULL, n, D, D);
            ref_linear(v, h, wv, NULL, n, D, D);
            ref_rms(q, q, nq, n * H, Dh, 1e-5f);
            ref_rms(k, k, nk, n * H, Dh, 1e-5f);
            for (int r = 0; r < n; r++)
                for (int hh = 0; hh < H; hh++)
                    for (int p = 0; p < Dh / 2; p++) {
                        double co = cs[(size_t)(r0 + r) * Dh + 2 * p],
                               si = cs[(size_t)(r0 + r) * Dh + 2 * p + 1];
                        float *qq = q + (size_t)r * D + hh * Dh + 2 * p,
                              *kk = k + (size_t)r * D + hh * Dh + 2 * p;
                        double q0 = qq[0], q1 = qq[1], k0 = kk[0], k1 = kk[1];
                        qq[0] = (float)(q0 * co - q1 * si), qq[1] = (float)(q0 * si + q1 * co);
                        kk[0] = (float)(k0 * co - k1 * si), kk[1] = (float)(k0 * si + k1 * co);
                    }
            for (int hh = 0; hh < H; hh++)
                for (int i = 0; i < n; i++) {
                    double mx = -1e300, sum = 0;
                    for (int j = 0; j < n; j++) {
                        double s = 0;
                        for (int e = 0; e < Dh; e++)
                            s += (double)q[(size_t)i * D + hh * Dh + e] *
                                 k[(size_t)j * D + hh * Dh + e];
                        sc[j] = s / sqrt((double)Dh);
                        if (sc[j] > mx) mx = sc[j];
                    }
                    for (int j = 0; j < n; j++)
                        sum += (sc[j] = exp(sc[j] - mx));
                    for (int e = 0; e < Dh; e++) {
                        double acc = 0;
                        for (int j = 0; j < n; j++)
                            acc += sc[j] * v[(size_t)j * D + hh * Dh + e];
                        o[(size_t)i * D + hh * Dh + e] = (float)(acc / sum);
                    }
                }
            ref_linear(a, o, wo, NULL, n, D, D);
            ref_rms(a, a, n2, n, D, 1e-5f);
            for (int r = 0; r < n; r++)
                for (int e = 0; e < D; e++)
                    xs[(size_t)r * D + e] =
                        (float)(xs[(size_t)r * D + e] + mod[1][e] * a[(size_t)r * D + e]);
            ref_rms(h, xs, f1, n, D, 1e-5f);
            for (int r = 0; r < n; r++)
                for (int e = 0; e < D; e++)
                    h[(size_t)r * D + e] = (float)(h[(size_t)r * D + e] * mod[2][e]);
            ref_linear(g, h, w1, NULL, n, F, D);
            ref_linear(u, h, w3, NULL, n, F, D);
            for (size_t e = 0; e < (size_t)n * F; e++)
                g[e] = (float)(silu(g[e]) * u[e]);
            ref_linear(a, g, ww2, NULL, n, D, F);
            ref_rms(a, a, f2, n, D, 1e-5f);
            for (int r = 0; r < n; r++)
                for (int e = 0; e < D; e++)
                    xs[(size_t)r * D + e] =
                        (float)(xs[(size_t)r * D + e] + mod[3][e] * a[(size_t)r * D + e]);
            free(n1), free(n2), free(f1), free(f2), free(wq), free(wk), free(wv), free(wo);
            free(nq), free(nk), free(w1), free(w3), free(ww2);
        }
    }
    /* final layer */
    float *faw = wget(wd, "all_final_layer.2-1.adaLN_modulation.1.weight", (int64_t)D * A);
    float *fab = wget(wd, "all_final_layer.2-1.adaLN_modulation.1.bias", D);
    float *fw = wget(wd, "all_final_layer.2-1.linear.weight", (int64_t)64 * D);
    float *fb = wget(wd, "all_final_layer.2-1.linear.bias", 64);
    float sc_in[256], fs[4096], y[64];
    for (int e = 0; e < A; e++)
        sc_in[e] = (float)silu(cvec[e]);
    ref_linear(fs, sc_in, faw, fab, 1, D, A);
    for (int r = 0; r < Ni; r++) {
        double mean = 0, var = 0;
        for (int e = 0; e < D; e++)
            mean += x[(size_t)r * D + e];
        mean /= D;
        for (int e = 0; e < D; e++)
            var += (x[(size_t)r * D + e] - mean) * (x[(size_t)r * D + e] - mean);
        var /= D;
        for (int e = 0; e < D; e++)
            h[e] = (float)((x[(size_t)r * D + e] - mean) / sqrt(var + 1e-6) * (1.0 + fs[e]));
        ref_linear(y, h, fw, fb, 1, 64, D);
        int hh = r / Wt, ww = r % Wt;
        for (int ph = 0; ph < 2; ph++)
            for (int pw = 0; pw < 2; pw++)
                for (int ch = 0; ch < 16; ch++)
                    vel[((size_t)ch * Hl + 2 * hh + ph) * Wl + 2 * ww + pw] =
                        -y[(ph * 2 + pw) * 16 + ch];
    }
    free(faw), free(fab), free(fw), free(fb);
    free(x), free(pos), free(cs), free(h), free(q), free(k), free(v), free(o), free(a), free(g),
        free(u), free(sc);
}

/* ------------------------------------------------------------------------------------------ */
/* tests                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* A loaded tiny model (official layout, bf16, seed TINY_SEED) with its directory. */
typedef struct tiny {
    char path[600];
    sl_wdir *wd;
    sl_zimage *m;
} tiny;

static bool tiny_open(tiny *t, sl_err *err) {
    memset(t, 0, sizeof *t);
    if (write_tiny("tiny.safetensors", NULL, NULL, t->path, sizeof t->path, err)) return false;
    if (!(t->wd = open_wdir(t->path, err))) return false;
    return sl_zimage_load(t->wd, NULL, 0, &t->m, err) == SL_OK;
}

static void tiny_close(tiny *t) {
    sl_zimage_free(t->m);
    sl_wdir_free(t->wd);
}

SL_TEST(zimage_load_tiny_config) {
    sl_err err = {0};
    tiny t;
    REQUIREF(tiny_open(&t, &err), "%s", err.msg);
    sl_zimage_config want = sl_zimage_config_tiny(), *c = &t.m->cfg;
    CHECK(t.m->layout == SL_ZIMAGE_OFFICIAL);
    CHECK(c->dim == want.dim && c->n_heads == want.n_heads && c->head_dim == want.head_dim);
    CHECK(c->n_layers == want.n_layers && c->n_refiner == want.n_refiner);
    CHECK(c->ffn_dim == want.ffn_dim && c->adaln_dim == want.adaln_dim &&
          c->cap_dim == want.cap_dim);
    CHECK(c->t_mid == want.t_mid);
    REQUIRE(t.m->n_blocks == 6);
    CHECK(t.m->blocks[0].kind == SL_ZIMAGE_NOISE_REFINER && t.m->blocks[0].modulated);
    CHECK(t.m->blocks[2].kind == SL_ZIMAGE_CONTEXT_REFINER && !t.m->blocks[2].modulated);
    CHECK(t.m->blocks[5].kind == SL_ZIMAGE_LAYER && t.m->blocks[5].index == 1);
    CHECK(t.m->blocks[5].wq.ne[0] == 384 && t.m->blocks[5].w2.ne[1] == 1024);
    CHECK(t.m->x_pad.dtype == SL_DTYPE_BF16 && t.m->x_pad.data != NULL);
    tiny_close(&t);
}

SL_TEST(zimage_load_missing_tensor) {
    sl_err err = {0};
    char path[600];
    REQUIRE_OK(write_tiny("miss.safetensors", "layers.1.feed_forward.w3.weight", NULL, path,
                          sizeof path, &err),
               &err);
    sl_wdir *wd = open_wdir(path, &err);
    REQUIREF(wd, "%s", err.msg);
    sl_zimage *m = NULL;
    sl_err e = {0};
    CHECK(sl_zimage_load(wd, NULL, 0, &m, &e) == SL_ERR_NOT_FOUND);
    CHECK(m == NULL);
    CHECKF(strstr(e.msg, "layers.1.feed_forward.w3.weight") && strstr(e.msg, "miss.safetensors"),
           "%s", e.msg);
    sl_wdir_free(wd);

    /* a missing pad token (a global) and a missing qk-norm too */
    REQUIRE_OK(write_tiny("miss2.safetensors", "cap_pad_token", NULL, path, sizeof path, &err),
               &err);
    REQUIREF((wd = open_wdir(path, &err)), "%s", err.msg);
    sl_err e2 = {0};
    CHECK(sl_zimage_load(wd, NULL, 0, &m, &e2) == SL_ERR_NOT_FOUND);
    CHECKF(strstr(e2.msg, "cap_pad_token") != NULL, "%s", e2.msg);
    sl_wdir_free(wd);
}

SL_TEST(zimage_load_wrong_shape) {
    sl_err err = {0};
    char path[600];
    REQUIRE_OK(write_tiny("shape.safetensors", NULL, "noise_refiner.1.feed_forward.w2.weight", path,
                          sizeof path, &err),
               &err);
    sl_wdir *wd = open_wdir(path, &err);
    REQUIREF(wd, "%s", err.msg);
    sl_zimage *m = NULL;
    sl_err e = {0};
    CHECK(sl_zimage_load(wd, NULL, 0, &m, &e) == SL_ERR_SHAPE);
    CHECKF(strstr(e.msg, "noise_refiner.1.feed_forward.w2.weight") &&
               strstr(e.msg, "[1024, 384]") && strstr(e.msg, "[384, 1024]"),
           "%s", e.msg);
    sl_wdir_free(wd);
}

SL_TEST(zimage_positions_layout) {
    sl_zimage_config c = sl_zimage_config_tiny();
    /* Ht=3, Wt=5 → 15 image tokens padded to 32; 20 caption tokens padded to 32 */
    int N = 64, pos[64 * 3];
    sl_zimage_positions(&c, 3, 5, 20, pos);
    CHECK(pos[0] == 33 && pos[1] == 0 && pos[2] == 0);                     /* (Lcp+1, 0, 0) */
    CHECK(pos[3 * 7] == 33 && pos[3 * 7 + 1] == 1 && pos[3 * 7 + 2] == 2); /* token 7 = (h1, w2) */
    CHECK(pos[3 * 14] == 33 && pos[3 * 14 + 1] == 2 && pos[3 * 14 + 2] == 4);
    for (int r = 15; r < 32; r++)
        CHECK(pos[3 * r] == 0 && pos[3 * r + 1] == 0 && pos[3 * r + 2] == 0);
    for (int j = 0; j < 32; j++) /* caption pad rows get sequential positions too */
        CHECK(pos[3 * (32 + j)] == j + 1 && pos[3 * (32 + j) + 1] == 0 &&
              pos[3 * (32 + j) + 2] == 0);
    (void)N;
    /* a 100-token prompt: positions 1..128, image axis 0 = 129 (spec example) */
    int *p2 = malloc(sizeof(int) * 3 * (32 + 128));
    sl_zimage_positions(&c, 4, 8, 100, p2);
    CHECK(p2[0] == 129 && p2[3 * 32] == 1 && p2[3 * (32 + 127)] == 128);
    free(p2);
}

SL_TEST(zimage_rope_table_values) {
    sl_zimage_config c = sl_zimage_config_full();
    int pos[6] = {5, 3, 7, 129, 0, 0};
    float tab[2 * 64 * 2];
    sl_zimage_rope_table(&c, pos, 2, tab);
    /* pair 0: axis 0, ω = 1 → angle 5 */
    CHECK_NEAR(tab[0], cos(5.0), 1e-6);
    CHECK_NEAR(tab[1], sin(5.0), 1e-6);
    /* pair 3: axis 0, j = 3, ω = 256^(−6/32) */
    double w = 1.0 / pow(256.0, 6.0 / 32.0);
    CHECK_NEAR(tab[3 * 2], cos(5 * w), 1e-6);
    CHECK_NEAR(tab[3 * 2 + 1], sin(5 * w), 1e-6);
    /* pair 16: axis 1 (h = 3), j = 0 → angle 3 */
    CHECK_NEAR(tab[16 * 2], cos(3.0), 1e-6);
    /* pair 45: axis 2 (w = 7), j = 5, ω = 256^(−10/48) */
    w = 1.0 / pow(256.0, 10.0 / 48.0);
    CHECK_NEAR(tab[45 * 2 + 1], sin(7 * w), 1e-6);
    /* pair 39: last of axis 1, j = 23 */
    w = 1.0 / pow(256.0, 46.0 / 48.0);
    CHECK_NEAR(tab[39 * 2], cos(3 * w), 1e-6);
    /* a caption token (129, 0, 0): axes 1 and 2 do not rotate */
    const float *r1 = tab + 64 * 2;
    CHECK_NEAR(r1[0], cos((double)(float)129.0), 1e-6);
    for (int p = 16; p < 64; p++)
        CHECK(r1[2 * p] == 1.0f && r1[2 * p + 1] == 0.0f);
}

/* The CPU backend's patchify with the order the model uses is the spec's (ph, pw, c). */
SL_TEST(zimage_patchify_order) {
    sl_backend *be = cpu_backend(false);
    if (!be) SKIP("no CPU backend");
    enum { C = 16, Hl = 6, Wl = 4 };
    float lat[C * Hl * Wl], tok[(Hl / 2) * (Wl / 2) * 64], back[C * Hl * Wl];
    for (int i = 0; i < C * Hl * Wl; i++)
        lat[i] = (float)i;
    size_t cap = 4 * 4096 * 4;
    void *arena = NULL;
    REQUIRE(posix_memalign(&arena, 256, cap) == 0);
    sl_ctx ctx;
    sl_ctx_init(&ctx, be, arena, cap);
    sl_tensor x = sl_new3(&ctx, SL_DTYPE_F32, C, Hl, Wl), y = sl_new2(&ctx, SL_DTYPE_F32, 6, 64);
    sl_tensor z = sl_new3(&ctx, SL_DTYPE_F32, C, Hl, Wl);
    sl_upload(&ctx, &x, lat);
    sl_op_patchify(&ctx, &y, &x, 2, SL_PATCH_PW_C);
    sl_op_unpatchify(&ctx, &z, &y, 2, SL_PATCH_PW_C);
    sl_download(&ctx, tok, &y);
    sl_download(&ctx, back, &z);
    REQUIRE(ctx.status == SL_OK);
    for (int h = 0; h < Hl / 2; h++)
        for (int w = 0; w < Wl / 2; w++)
            for (int ph = 0; ph < 2; ph++)
                for (int pw = 0; pw < 2; pw++)
                    for (int ch = 0; ch < C; ch++)
                        CHECK(tok[(h * (Wl / 2) + w) * 64 + (ph * 2 + pw) * 16 + ch] ==
                              lat[(ch * Hl + 2 * h + ph) * Wl + 2 * w + pw]);
    CHECK(memcmp(back, lat, sizeof lat) == 0);
    free(arena);
    sl_backend_destroy(be);
}

SL_TEST(zimage_forward_matches_naive_reference) {
    sl_err err = {0};
    tiny t;
    REQUIREF(tiny_open(&t, &err), "%s", err.msg);
    sl_backend *be = cpu_backend(false);
    if (!be) {
        tiny_close(&t);
        SKIP("no CPU backend");
    }
    /* 3×5 image tokens (padded to 32), 20 caption tokens (padded to 32) */
    zcase z;
    zcase_make(&z, &t.m->cfg, 6, 10, 0.3f, 1, 20, 0, 7);
    int64_t n = 16 * 6 * 10;
    float *got = malloc((size_t)n * 4), *want = malloc((size_t)n * 4);
    float *outs[2] = {got, NULL};
    REQUIRE_OK(run_forward(t.m, NULL, be, &z, outs, NULL, &err), &err);
    ref_forward(t.wd, &t.m->cfg, z.latent, 6, 10, 0.3f, z.cap[0], 20, want);
    double r = rel_l2(got, want, n), norm = 0;
    for (int64_t i = 0; i < n; i++)
        norm += (double)want[i] * want[i];
    CHECKF(r <= 1e-4, "rel-L2 vs naive reference %.3g", r);
    CHECKF(sqrt(norm / n) > 0.1, "velocity RMS %.3g: model output degenerate", sqrt(norm / n));
    printf("    rel-L2 vs naive reference: %.3g (RMS %.3g)\n", r, sqrt(norm / n));
    free(got), free(want);
    zcase_free(&z);
    sl_backend_destroy(be);
    tiny_close(&t);
}

/* Block-quantised GGUF weights (dequantised per tile by the matmul) against the naive reference
 * on the same dequantised values. */
SL_TEST(zimage_forward_quantized_gguf) {
    sl_backend *be = cpu_backend(false);
    if (!be) SKIP("no CPU backend");
    const sl_dtype dts[2] = {SL_DTYPE_Q8_0, SL_DTYPE_Q4_0};
    for (int k = 0; k < 2; k++) {
        sl_err err = {0};
        char path[600], fn[64];
        snprintf(fn, sizeof fn, "tiny-%s.gguf", sl_dtype_name(dts[k]));
        REQUIRE_OK(write_tiny_dt(fn, NULL, NULL, dts[k], path, sizeof path, &err), &err);
        sl_wdir *wd = open_wdir(path, &err);
        REQUIREF(wd, "%s", err.msg);
        sl_zimage *m = NULL;
        REQUIRE_OK(sl_zimage_load(wd, NULL, 0, &m, &err), &err);
        CHECK(m->blocks[4].w1.dtype == dts[k] && m->blocks[4].attn_norm1.dtype == SL_DTYPE_F32);
        zcase z;
        zcase_make(&z, &m->cfg, 6, 10, 0.7f, 1, 33, 0, 17);
        int64_t n = 16 * 6 * 10;
        float *got = malloc((size_t)n * 4), *want = malloc((size_t)n * 4);
        float *outs[2] = {got, NULL};
        REQUIRE_OK(run_forward(m, NULL, be, &z, outs, NULL, &err), &err);
        ref_forward(wd, &m->cfg, z.latent, 6, 10, 0.7f, z.cap[0], 33, want);
        double r = rel_l2(got, want, n);
        CHECKF(r <= 1e-4, "%s: rel-L2 vs naive reference %.3g", sl_dtype_name(dts[k]), r);
        free(got), free(want);
        zcase_free(&z);
        sl_zimage_free(m);
        sl_wdir_free(wd);
    }
    sl_backend_destroy(be);
}

SL_TEST(zimage_layout_equivalence_and_prefix) {
    sl_err err = {0};
    tiny t;
    REQUIREF(tiny_open(&t, &err), "%s", err.msg);
    sl_backend *be = cpu_backend(false);
    if (!be) {
        tiny_close(&t);
        SKIP("no CPU backend");
    }
    char cpath[700];
    snprintf(cpath, sizeof cpath, "%s/comfy.safetensors", sl_test_tmpdir());
    REQUIRE_OK(write_comfy_from(t.wd, &t.m->cfg, "model.diffusion_model.", cpath, &err), &err);
    sl_wdir *cwd = open_wdir(cpath, &err);
    REQUIREF(cwd, "%s", err.msg);
    CHECK(sl_wdir_find(cwd, "model.diffusion_model.layers.0.attention.qkv.weight") != NULL);
    sl_zimage *cm = NULL;
    REQUIRE_OK(sl_zimage_load(cwd, NULL, 0, &cm, &err), &err);
    CHECK(cm->layout == SL_ZIMAGE_COMFY);
    /* q/k/v are row views of the fused tensor: no copy */
    const sl_wentry *qkv = sl_wdir_find(cwd, "model.diffusion_model.layers.1.attention.qkv.weight");
    REQUIRE(qkv);
    CHECK(cm->blocks[5].wq.data == qkv->data);
    CHECK((const char *)cm->blocks[5].wv.data == (const char *)qkv->data + 2 * 384 * 384 * 2);
    zcase z;
    zcase_make(&z, &t.m->cfg, 10, 14, 0.55f, 1, 20, 0, 11);
    int64_t n = 16 * 10 * 14;
    float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4);
    float *oa[2] = {a, NULL}, *ob[2] = {b, NULL};
    REQUIRE_OK(run_forward(t.m, NULL, be, &z, oa, NULL, &err), &err);
    REQUIRE_OK(run_forward(cm, NULL, be, &z, ob, NULL, &err), &err);
    CHECK(memcmp(a, b, (size_t)n * 4) == 0);
    /* determinism: the same run again is bit-identical */
    REQUIRE_OK(run_forward(t.m, NULL, be, &z, ob, NULL, &err), &err);
    CHECK(memcmp(a, b, (size_t)n * 4) == 0);
    free(a), free(b);
    zcase_free(&z);
    sl_zimage_free(cm);
    sl_wdir_free(cwd);
    sl_backend_destroy(be);
    tiny_close(&t);
}

/* CFG: two caption sets in one pass give what two one-branch passes give, with equal and with
 * different caption padding (the shared and the separate noise-refiner paths). */
SL_TEST(zimage_cfg_branches_match_single) {
    sl_err err = {0};
    tiny t;
    REQUIREF(tiny_open(&t, &err), "%s", err.msg);
    sl_backend *be = cpu_backend(false);
    if (!be) {
        tiny_close(&t);
        SKIP("no CPU backend");
    }
    int64_t n = 16 * 10 * 14;
    const int second[2] = {7, 40}; /* pads to 32 (shared) and to 64 (separate) */
    for (int k = 0; k < 2; k++) {
        zcase z2, z1;
        zcase_make(&z2, &t.m->cfg, 10, 14, 0.2f, 2, 20, second[k], 5);
        float *p2 = malloc((size_t)n * 4), *n2 = malloc((size_t)n * 4), *p1 = malloc((size_t)n * 4);
        float *o2[2] = {p2, n2}, *o1[2] = {p1, NULL};
        REQUIRE_OK(run_forward(t.m, NULL, be, &z2, o2, NULL, &err), &err);
        for (int b = 0; b < 2; b++) {
            z1 = z2;
            z1.n_caps = 1;
            z1.cap[0] = z2.cap[b];
            z1.lc[0] = z2.lc[b];
            REQUIRE_OK(run_forward(t.m, NULL, be, &z1, o1, NULL, &err), &err);
            double r = rel_l2(b ? n2 : p2, p1, n);
            CHECKF(r <= 1e-6, "case %d branch %d: rel-L2 %.3g", k, b, r);
        }
        CHECK(rel_l2(p2, n2, n) > 1e-3); /* the captions matter */
        free(p2), free(n2), free(p1);
        zcase_free(&z2);
    }
    sl_backend_destroy(be);
    tiny_close(&t);
}

/* The measuring backend's dry run, the real run and the closed form agree on the arena peak. */
SL_TEST(zimage_dryrun_arena_peak) {
    sl_err err = {0};
    tiny t;
    REQUIREF(tiny_open(&t, &err), "%s", err.msg);
    sl_backend *be = cpu_backend(false);
    if (!be) {
        tiny_close(&t);
        SKIP("no CPU backend");
    }
    sl_backend *mb = NULL;
    REQUIRE_OK(sl_backend_measure_create(be, &mb, &err), &err);
    int64_t n = 16 * 10 * 14;
    float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4);
    float *o[2] = {a, b};
    const int cases[3][3] = {{1, 20, 0}, {2, 20, 7}, {2, 33, 5}};
    for (int k = 0; k < 3; k++) {
        zcase z;
        zcase_make(&z, &t.m->cfg, 10, 14, 0.5f, cases[k][0], cases[k][1], cases[k][2], 3);
        size_t real = 0, dry = 0;
        REQUIRE_OK(run_forward(t.m, NULL, be, &z, o, &real, &err), &err);
        REQUIRE_OK(run_forward(t.m, NULL, mb, &z, NULL, &dry, &err), &err);
        size_t formula =
            sl_zimage_arena_bytes(&t.m->cfg, be->info.act_dtype, 10, 14, z.lc, z.n_caps);
        CHECKF(real == dry && dry == formula, "case %d: real %zu, dry run %zu, formula %zu", k,
               real, dry, formula);
        /* bf16 activations (the CUDA case): the dry run with a bf16 context matches too */
        zcase_free(&z);
    }
    /* full size at 1024² with 128 caption tokens, bf16: only the formula (no weights needed) */
    sl_zimage_config full = sl_zimage_config_full();
    int lc = 128;
    size_t fb = sl_zimage_arena_bytes(&full, SL_DTYPE_BF16, 128, 128, &lc, 1);
    CHECKF(fb > 300u << 20 && fb < 500u << 20, "full 1024² arena %zu bytes", fb);
    printf("    full 1024², 128 tokens, bf16: arena %.1f MB (1 branch)\n", fb / 1048576.0);
    free(a), free(b);
    sl_backend_destroy(mb);
    sl_backend_destroy(be);
    tiny_close(&t);
}

/* Through the residency engine on a CPU backend that emulates a device: same output as the
 * direct binding. */
SL_TEST(zimage_residency_matches_direct) {
    sl_err err = {0};
    tiny t;
    REQUIREF(tiny_open(&t, &err), "%s", err.msg);
    sl_backend *be = cpu_backend(false), *dev = cpu_backend(true);
    if (!be || !dev) {
        sl_backend_destroy(be);
        sl_backend_destroy(dev);
        tiny_close(&t);
        SKIP("no CPU backend");
    }
    sl_res *res = NULL;
    REQUIRE_OK(sl_res_create(dev, "diffusion model", &res, &err), &err);
    sl_zimage *m = NULL;
    REQUIRE_OK(sl_zimage_load(t.wd, res, 0, &m, &err), &err);
    CHECK(sl_res_unit_count(res) == 7);
    REQUIRE_OK(sl_res_load_host(res, &err), &err);
    sl_res_plan_opts po = {.budget = SIZE_MAX, .prefetch = 1};
    REQUIRE_OK(sl_res_plan(res, &po, &err), &err);
    REQUIRE_OK(sl_res_load_device(res, &err), &err);
    int64_t n = 16 * 10 * 14;
    float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4), *a2 = malloc((size_t)n * 4),
          *b2 = malloc((size_t)n * 4);
    zcase z;
    zcase_make(&z, &t.m->cfg, 10, 14, 0.8f, 2, 20, 9, 21);
    float *oa[2] = {a, a2}, *ob[2] = {b, b2};
    REQUIRE_OK(run_forward(t.m, NULL, be, &z, oa, NULL, &err), &err);
    REQUIRE_OK(run_forward(m, res, dev, &z, ob, NULL, &err), &err);
    CHECK(memcmp(a, b, (size_t)n * 4) == 0);
    CHECK(memcmp(a2, b2, (size_t)n * 4) == 0);
    /* every unit streamed through the slot ring, two passes (the second prefetches in the
     * recorded order): still bit-identical */
    sl_res_park(res);
    po.force_stream_all = true;
    REQUIRE_OK(sl_res_plan(res, &po, &err), &err);
    REQUIRE_OK(sl_res_load_device(res, &err), &err);
    for (int pass = 0; pass < 2; pass++) {
        memset(b, 0, (size_t)n * 4);
        REQUIRE_OK(run_forward(m, res, dev, &z, ob, NULL, &err), &err);
        CHECK(memcmp(a, b, (size_t)n * 4) == 0);
        CHECK(memcmp(a2, b2, (size_t)n * 4) == 0);
        sl_res_stats rs;
        sl_res_last_stats(res, &rs);
        CHECKF(rs.units_streamed == 7 && rs.bytes_uploaded > 0, "streamed %d units, %zu bytes",
               rs.units_streamed, rs.bytes_uploaded);
    }
    /* a dry run of the engine-bound model (weights not acquired) sizes the same arena */
    sl_backend *mb = NULL;
    REQUIRE_OK(sl_backend_measure_create(dev, &mb, &err), &err);
    size_t dry = 0;
    REQUIRE_OK(run_forward(m, NULL, mb, &z, NULL, &dry, &err), &err);
    CHECK(dry == sl_zimage_arena_bytes(&m->cfg, dev->info.act_dtype, 10, 14, z.lc, 2));
    sl_backend_destroy(mb);
    zcase_free(&z);
    free(a), free(b), free(a2), free(b2);
    sl_zimage_free(m);
    sl_res_free(res);
    sl_backend_destroy(dev);
    sl_backend_destroy(be);
    tiny_close(&t);
}

/* The tiny model on the CUDA backend (bf16 activations, f32 residual) against the CPU backend
 * (f32), one CFG pass with both padding cases; and the formula/dry-run arena for bf16. */
SL_TEST(gpu_zimage_tiny_cuda_vs_cpu) {
    sl_err err = {0};
    sl_backend *gpu = NULL;
    if (sl_backend_create("cuda", 0, &gpu, &err) != SL_OK) SKIP("no CUDA backend: %s", err.msg);
    tiny t;
    REQUIREF(tiny_open(&t, &err), "%s", err.msg);
    sl_backend *cpu = cpu_backend(false);
    REQUIRE(cpu);
    sl_res *res = NULL;
    REQUIRE_OK(sl_res_create(gpu, "diffusion model", &res, &err), &err);
    sl_zimage *m = NULL;
    REQUIRE_OK(sl_zimage_load(t.wd, res, 0, &m, &err), &err);
    REQUIRE_OK(sl_res_load_host(res, &err), &err);
    sl_res_plan_opts po = {.budget = SIZE_MAX, .prefetch = 1};
    REQUIRE_OK(sl_res_plan(res, &po, &err), &err);
    REQUIRE_OK(sl_res_load_device(res, &err), &err);
    const int second[2] = {9, 40};
    for (int k = 0; k < 2; k++) {
        zcase z;
        zcase_make(&z, &t.m->cfg, 18, 22, 0.4f, 2, 20, second[k], 33);
        int64_t n = 16 * 18 * 22;
        float *c0 = malloc((size_t)n * 4), *c1 = malloc((size_t)n * 4), *g0 = malloc((size_t)n * 4),
              *g1 = malloc((size_t)n * 4);
        float *oc[2] = {c0, c1}, *og[2] = {g0, g1};
        size_t peak = 0, dry = 0;
        REQUIRE_OK(run_forward(t.m, NULL, cpu, &z, oc, NULL, &err), &err);
        REQUIRE_OK(run_forward(m, res, gpu, &z, og, &peak, &err), &err);
        sl_backend *mb = NULL;
        REQUIRE_OK(sl_backend_measure_create(gpu, &mb, &err), &err);
        REQUIRE_OK(run_forward(m, NULL, mb, &z, NULL, &dry, &err), &err);
        sl_backend_destroy(mb);
        double e0 = rel_l2(g0, c0, n), e1 = rel_l2(g1, c1, n);
        printf("    case %d: CUDA (%s activations) vs CPU f32: rel-L2 %.3g / %.3g\n", k,
               sl_dtype_name(gpu->info.act_dtype), e0, e1);
        CHECKF(e0 <= 3e-2 && e1 <= 3e-2, "rel-L2 %.3g %.3g > 3e-2", e0, e1);
        size_t formula = sl_zimage_arena_bytes(&m->cfg, gpu->info.act_dtype, 18, 22, z.lc, 2);
        CHECKF(peak == dry && dry == formula, "arena: real %zu, dry %zu, formula %zu", peak, dry,
               formula);
        free(c0), free(c1), free(g0), free(g1);
        zcase_free(&z);
    }
    sl_zimage_free(m);
    sl_res_free(res);
    sl_backend_destroy(cpu);
    sl_backend_destroy(gpu);
    tiny_close(&t);
}

/* ------------------------------------------------------------------------------------------ */
/* reference fixtures (tools/ref/zimage_dit.py; tests/fixtures/zimage/README.md)              */
/* ------------------------------------------------------------------------------------------ */

#include "samplers/sampler.h"

static const float *fx_get(const sl_wdir *fx, const char *name, int64_t numel) {
    const sl_wentry *e = sl_wdir_find(fx, name);
    if (!e || e->dtype != SL_DTYPE_F32) return NULL;
    sl_tensor t = sl_wentry_tensor(e);
    if (sl_tensor_numel(&t) != numel) return NULL;
    return (const float *)e->data;
}

/* Copy (the mapped data may be unaligned). */
static float *fx_copy(const sl_wdir *fx, const char *name, int64_t numel) {
    const float *p = fx_get(fx, name, numel);
    if (!p) return NULL;
    float *v = malloc((size_t)numel * sizeof *v);
    memcpy(v, p, (size_t)numel * sizeof *v);
    return v;
}

/* The fixture's statistics of a few tensors identify the synthetic model it was made from. */
static bool fx_model_matches(const sl_wdir *fx, const sl_wdir *wd, char *why, size_t n) {
    static const char *const names[] = {
        "x_pad_token", "cap_embedder.1.weight", "layers.1.feed_forward.w2.weight",
        "noise_refiner.0.attention.norm_q.weight", "t_embedder.mlp.0.bias"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char key[200];
        snprintf(key, sizeof key, "check.%s.abssum", names[i]);
        const char *v = sl_wdir_meta(fx, key);
        const sl_wentry *e = sl_wdir_find(wd, names[i]);
        if (!v || !e) {
            snprintf(why, n, "fixture metadata %s or model tensor missing", key);
            return false;
        }
        sl_tensor t = sl_wentry_tensor(e);
        int64_t ne = sl_tensor_numel(&t);
        float *f = malloc((size_t)ne * sizeof *f);
        sl_dequant_row(e->dtype, e->data, f, ne);
        double s = 0;
        for (int64_t k = 0; k < ne; k++)
            s += fabs((double)f[k]);
        free(f);
        double want = strtod(v, NULL);
        if (fabs(s - want) > 1e-9 * fabs(want) + 1e-12) {
            snprintf(why, n, "%s: |sum| %.12g here, %.12g in the fixture", names[i], s, want);
            return false;
        }
    }
    return true;
}

typedef struct fixture {
    char path[600];
    sl_wdir *fx;
    tiny t;
    int Hl, Wl, lc[2];
    float *latent, *cap, *cap_neg;
} fixture;

/* 1: ready; 0: skip (message in why); -1: failure (message in why). */
static int fixture_open(fixture *f, char *why, size_t n) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s/tests/fixtures/zimage/zimage_tiny_ref.safetensors",
             sl_test_root());
    FILE *fp = fopen(f->path, "rb");
    if (!fp) {
        snprintf(why, n, "no fixture %s (made by tools/ref/zimage_dit.py --mode tiny)", f->path);
        return 0;
    }
    fclose(fp);
    sl_err err = {0};
    if (!(f->fx = open_wdir(f->path, &err)) || !tiny_open(&f->t, &err)) {
        snprintf(why, n, "%s", err.msg);
        return -1;
    }
    if (!fx_model_matches(f->fx, f->t.wd, why, n)) return -1;
    const char *sz = sl_wdir_meta(f->fx, "latent"), *cl = sl_wdir_meta(f->fx, "cap_len");
    if (!sz || sscanf(sz, "16x%dx%d", &f->Hl, &f->Wl) != 2 || !cl ||
        sscanf(cl, "%d,%d", &f->lc[0], &f->lc[1]) != 2) {
        snprintf(why, n, "fixture metadata latent/cap_len missing");
        return -1;
    }
    int64_t nl = 16LL * f->Hl * f->Wl, Cc = f->t.m->cfg.cap_dim;
    f->latent = fx_copy(f->fx, "latent", nl);
    f->cap = fx_copy(f->fx, "cap", f->lc[0] * Cc);
    f->cap_neg = fx_copy(f->fx, "cap_neg", f->lc[1] * Cc);
    if (!f->latent || !f->cap || !f->cap_neg) {
        snprintf(why, n, "fixture inputs missing or of the wrong size");
        return -1;
    }
    return 1;
}

static void fixture_close(fixture *f) {
    free(f->latent), free(f->cap), free(f->cap_neg);
    tiny_close(&f->t);
    sl_wdir_free(f->fx);
}

#define FIXTURE_OR_SKIP(f)                                                                         \
    char why_[1200];                                                                               \
    int fo_ = fixture_open(&(f), why_, sizeof why_);                                               \
    if (fo_ == 0) SKIP("%s", why_);                                                                \
    if (fo_ < 0) {                                                                                 \
        fixture_close(&(f));                                                                       \
        REQUIREF(0, "fixture: %s (regenerate it if the synthetic writer changed)", why_);          \
    }

/* One DiT pass, f32 on the CPU backend, against diffusers' f32 CPU output (both captions in one
 * CFG pass). Tolerance: rel-L2 ≤ 1e-4. */
SL_TEST(zimage_fixture_one_pass) {
    fixture f;
    FIXTURE_OR_SKIP(f);
    sl_backend *be = cpu_backend(false);
    REQUIRE(be);
    sl_err err = {0};
    int64_t n = 16LL * f.Hl * f.Wl;
    const float *t = fx_get(f.fx, "t", 1), *ref = fx_get(f.fx, "dit_out", n),
                *refn = fx_get(f.fx, "dit_out_neg", n);
    REQUIRE(t && ref && refn);
    zcase z = {.Hl = f.Hl,
               .Wl = f.Wl,
               .t = *t,
               .n_caps = 2,
               .lc = {f.lc[0], f.lc[1]},
               .latent = f.latent,
               .cap = {f.cap, f.cap_neg}};
    float *v = malloc((size_t)n * 4), *vn = malloc((size_t)n * 4), *want = malloc((size_t)n * 4);
    float *o[2] = {v, vn};
    REQUIRE_OK(run_forward(f.t.m, NULL, be, &z, o, NULL, &err), &err);
    for (int b = 0; b < 2; b++) {
        const float *r = b ? refn : ref;
        for (int64_t i = 0; i < n; i++)
            want[i] = -r[i]; /* velocity = −DiT output */
        double e = rel_l2(b ? vn : v, want, n);
        printf("    branch %d: rel-L2 vs diffusers %.3g\n", b, e);
        CHECKF(e <= 1e-4, "branch %d: rel-L2 %.3g > 1e-4", b, e);
    }
    free(v), free(vn), free(want);
    sl_backend_destroy(be);
    fixture_close(&f);
}

SL_TEST(zimage_fixture_sigmas) {
    fixture f;
    FIXTURE_OR_SKIP(f);
    sl_err err = {0};
    const int steps[2] = {8, 2};
    for (int k = 0; k < 2; k++) {
        char sn[32], tn[32];
        snprintf(sn, sizeof sn, "sigmas_%d", steps[k]);
        snprintf(tn, sizeof tn, "times_%d", steps[k]);
        const float *rs = fx_get(f.fx, sn, steps[k] + 1), *rt = fx_get(f.fx, tn, steps[k]);
        REQUIRE(rs && rt);
        float s[9];
        REQUIRE_OK(sl_sampler_sigmas(SL_SCHED_AUTO, steps[k], 3.0f, s, &err), &err);
        for (int i = 0; i <= steps[k]; i++)
            CHECKF(fabsf(s[i] - rs[i]) <= 1e-7f, "%s[%d]: %.9g vs %.9g", sn, i, (double)s[i],
                   (double)rs[i]);
        for (int i = 0; i < steps[k]; i++)
            CHECK_NEAR(sl_sampler_zimage_time(s[i]), rt[i], 1e-7);
    }
    fixture_close(&f);
}

/* The pipeline's loop in C: 2 steps without and with CFG, f32 on the CPU backend. */
static sl_status sample_c(sl_zimage *m, sl_backend *be, zcase *z, int steps, float w, float *x,
                          float *first, sl_err *err) {
    int64_t n = 16LL * z->Hl * z->Wl;
    float s[33], *v = malloc((size_t)n * 4), *vn = malloc((size_t)n * 4),
                 *pred = malloc((size_t)n * 4);
    sl_status st = sl_sampler_sigmas(SL_SCHED_AUTO, steps, 3.0f, s, err);
    memcpy(x, z->latent, (size_t)n * 4);
    const float *lat0 = z->latent;
    z->latent = x;
    for (int i = 0; i < steps && !st; i++) {
        z->t = sl_sampler_zimage_time(s[i]);
        bool cfg = sl_sampler_cfg_active(w, 1.0f, s[i]);
        int nc = z->n_caps;
        z->n_caps = cfg ? 2 : 1;
        float *o[2] = {v, vn};
        st = run_forward(m, NULL, be, z, o, NULL, err);
        z->n_caps = nc;
        if (st) break;
        if (cfg) {
            sl_sampler_cfg_host(pred, v, vn, n, w, 0.0f);
            memcpy(v, pred, (size_t)n * 4);
        }
        sl_sampler_euler_step_host(x, v, n, s[i + 1] - s[i]);
        if (i == 0 && first) memcpy(first, x, (size_t)n * 4);
    }
    z->latent = (float *)lat0;
    free(v), free(vn), free(pred);
    return st;
}

SL_TEST(zimage_fixture_sample) {
    fixture f;
    FIXTURE_OR_SKIP(f);
    sl_backend *be = cpu_backend(false);
    REQUIRE(be);
    sl_err err = {0};
    int64_t n = 16LL * f.Hl * f.Wl;
    const float *r1 = fx_get(f.fx, "sample2_step1", n), *r2 = fx_get(f.fx, "sample2_final", n);
    const float *rc = fx_get(f.fx, "sample2_cfg_final", n), *w = fx_get(f.fx, "cfg_scale", 1);
    REQUIRE(r1 && r2 && rc && w);
    zcase z = {.Hl = f.Hl,
               .Wl = f.Wl,
               .n_caps = 2,
               .lc = {f.lc[0], f.lc[1]},
               .latent = f.latent,
               .cap = {f.cap, f.cap_neg}};
    float *x = malloc((size_t)n * 4), *x1 = malloc((size_t)n * 4);
    REQUIRE_OK(sample_c(f.t.m, be, &z, 2, 0.0f, x, x1, &err), &err);
    double e1 = rel_l2(x1, r1, n), e2 = rel_l2(x, r2, n);
    REQUIRE_OK(sample_c(f.t.m, be, &z, 2, *w, x, NULL, &err), &err);
    double ec = rel_l2(x, rc, n);
    printf("    rel-L2 vs diffusers: step 1 %.3g, 2 steps %.3g, 2 steps CFG %.3g\n", e1, e2, ec);
    CHECKF(e1 <= 1e-4 && e2 <= 1e-4 && ec <= 1e-4, "rel-L2 %.3g %.3g %.3g > 1e-4", e1, e2, ec);
    free(x), free(x1);
    sl_backend_destroy(be);
    fixture_close(&f);
}

/* Full size on the GPU against tools/ref/zimage_dit.py --mode full (bf16, 512², one pass and 8
 * steps). Needs SLUICE_ZIMAGE_FULL_MODEL (official layout) and SLUICE_ZIMAGE_FULL_REF; writes
 * sluice's outputs to SLUICE_ZIMAGE_FULL_OUT when set (for the script's --sluice-out). */
SL_TEST(gpu_zimage_full_reference) {
    const char *mp = getenv("SLUICE_ZIMAGE_FULL_MODEL"), *rp = getenv("SLUICE_ZIMAGE_FULL_REF");
    if (!mp || !rp) SKIP("set SLUICE_ZIMAGE_FULL_MODEL and SLUICE_ZIMAGE_FULL_REF");
    sl_err err = {0};
    sl_backend *be = NULL;
    if (sl_backend_create("cuda", 0, &be, &err) != SL_OK) SKIP("no CUDA backend: %s", err.msg);
    sl_wdir *wd = open_wdir(mp, &err), *fx = open_wdir(rp, &err);
    REQUIREF(wd && fx, "%s", err.msg);
    sl_res *res = NULL;
    REQUIRE_OK(sl_res_create(be, "diffusion model", &res, &err), &err);
    sl_zimage *m = NULL;
    REQUIRE_OK(sl_zimage_load(wd, res, 0, &m, &err), &err);
    REQUIRE_OK(sl_res_set_file(res, 0, mp, &err), &err);
    REQUIRE_OK(sl_res_load_host(res, &err), &err);
    sl_res_plan_opts po = {.budget = SIZE_MAX, .prefetch = 1};
    REQUIRE_OK(sl_res_plan(res, &po, &err), &err);
    REQUIRE_OK(sl_res_load_device(res, &err), &err);
    int Hl = 0, Wl = 0, lc[2] = {0, 0};
    const char *cl = sl_wdir_meta(fx, "cap_len"), *sz = sl_wdir_meta(fx, "latent");
    REQUIRE(cl && sscanf(cl, "%d,%d", &lc[0], &lc[1]) == 2);
    REQUIRE(sz && sscanf(sz, "16x%dx%d", &Hl, &Wl) == 2);
    int64_t n = 16LL * Hl * Wl;
    const float *t = fx_get(fx, "t", 1), *ref = fx_get(fx, "dit_out", n),
                *r8 = fx_get(fx, "sample8_final", n);
    float *lat = fx_copy(fx, "latent", n),
          *cap = fx_copy(fx, "cap", (int64_t)lc[0] * m->cfg.cap_dim);
    REQUIRE(t && ref && r8 && lat && cap);
    float *v = malloc((size_t)n * 4), *x = malloc((size_t)n * 4), *raw = malloc((size_t)n * 4);
    zcase z = {.Hl = Hl,
               .Wl = Wl,
               .t = *t,
               .n_caps = 1,
               .lc = {lc[0], 0},
               .latent = lat,
               .cap = {cap, NULL}};
    float *o[2] = {v, NULL};
    REQUIRE_OK(run_forward(m, res, be, &z, o, NULL, &err), &err); /* warm-up */
    REQUIRE_OK(run_forward(m, res, be, &z, o, NULL, &err), &err);
    sl_res_stats rs;
    sl_res_last_stats(res, &rs);
    for (int64_t i = 0; i < n; i++)
        raw[i] = -v[i];
    double e1 = rel_l2(raw, ref, n);
    /* 8 steps through the same loop as the tiny fixture (host Euler in f32) */
    float s[9], *vv = malloc((size_t)n * 4);
    REQUIRE_OK(sl_sampler_sigmas(SL_SCHED_AUTO, 8, 3.0f, s, &err), &err);
    memcpy(x, lat, (size_t)n * 4);
    z.latent = x;
    for (int i = 0; i < 8; i++) {
        z.t = sl_sampler_zimage_time(s[i]);
        float *oo[2] = {vv, NULL};
        REQUIRE_OK(run_forward(m, res, be, &z, oo, NULL, &err), &err);
        sl_sampler_euler_step_host(x, vv, n, s[i + 1] - s[i]);
    }
    double e8 = rel_l2(x, r8, n);
    printf("    full 512², bf16: one pass rel-L2 %.3g (%.1f ms/pass), 8 steps rel-L2 %.3g\n", e1,
           rs.pass_ms, e8);
    const char *op = getenv("SLUICE_ZIMAGE_FULL_OUT");
    if (op) {
        sl_st_writer *w = NULL;
        int64_t sh[3] = {16, Hl, Wl};
        REQUIRE_OK(sl_st_writer_open(&w, op, &err), &err);
        REQUIRE_OK(sl_st_writer_add(w, "dit_out", SL_DTYPE_F32, 3, sh, &err), &err);
        REQUIRE_OK(sl_st_writer_add(w, "sample8_final", SL_DTYPE_F32, 3, sh, &err), &err);
        REQUIRE_OK(sl_st_writer_begin_data(w, &err), &err);
        REQUIRE_OK(sl_st_writer_write(w, raw, (size_t)n * 4, &err), &err);
        REQUIRE_OK(sl_st_writer_write(w, x, (size_t)n * 4, &err), &err);
        REQUIRE_OK(sl_st_writer_close(w, &err), &err);
    }
    CHECKF(e1 <= 3e-2, "one pass rel-L2 %.3g > 3e-2", e1);
    CHECKF(e8 <= 5e-2, "8-step rel-L2 %.3g > 5e-2", e8);
    free(v), free(x), free(raw), free(vv), free(lat), free(cap);
    sl_zimage_free(m);
    sl_res_free(res);
    sl_wdir_free(fx);
    sl_wdir_free(wd);
    sl_backend_destroy(be);
}
