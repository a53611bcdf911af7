/* synth_*: models/synth.c — random-weight files written through the io writers and read back
 * through the io parsers: names, dtypes (synth.h's policy, restated here as a table), shapes,
 * exact values (element i of a tensor = mean + std × N(0,1) sample i of Philox stream
 * (seed, FNV-1a-64(name)), as synth.c documents), determinism, statistics, constants, and the
 * rejected combinations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/quant.h"
#include "core/rng.h"
#include "core/status.h"
#include "io/gguf.h"
#include "io/mapfile.h"
#include "io/safetensors.h"
#include "models/synth.h"
#include "test.h"

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void tpath(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", sl_test_tmpdir(), name);
}

static uint64_t fnv(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* A file read back: one entry per tensor, format-independent. */
typedef struct rt {
    char name[160];
    sl_dtype dt;
    int ndim;
    int64_t ne[4];
    const uint8_t *data;
    uint64_t nbytes;
} rt;

typedef struct readback {
    sl_mapfile m;
    sl_st_file st;
    sl_gguf_file gg;
    int is_gguf;
    rt *t;
    int n;
} readback;

static sl_status rb_open(readback *r, const char *path, int gguf, sl_err *err) {
    memset(r, 0, sizeof *r);
    r->is_gguf = gguf;
    sl_status s = sl_mapfile_open(&r->m, path, err);
    if (s) return s;
    if (gguf) {
        if ((s = sl_gguf_parse(r->m.data, r->m.size, path, &r->gg, err))) return s;
        r->n = r->gg.n_tensors;
    } else {
        if ((s = sl_st_parse(r->m.data, r->m.size, path, &r->st, err))) return s;
        r->n = r->st.n_tensors;
    }
    r->t = calloc((size_t)r->n + 1, sizeof *r->t);
    for (int i = 0; i < r->n; i++) {
        rt *e = &r->t[i];
        if (gguf) {
            const sl_gguf_tensor *g = &r->gg.tensors[i];
            snprintf(e->name, sizeof e->name, "%s", g->name);
            e->dt = g->dtype;
            e->ndim = g->ndim;
            memcpy(e->ne, g->ne, sizeof e->ne);
            e->data = r->m.data + g->offset;
            e->nbytes = g->nbytes;
        } else {
            const sl_st_tensor *g = &r->st.tensors[i];
            snprintf(e->name, sizeof e->name, "%s", g->name);
            e->dt = g->dtype;
            e->ndim = g->ndim;
            memcpy(e->ne, g->ne, sizeof e->ne);
            e->data = r->m.data + g->offset;
            e->nbytes = g->nbytes;
        }
    }
    return SL_OK;
}

static void rb_close(readback *r) {
    free(r->t);
    sl_st_file_free(&r->st);
    if (r->is_gguf) sl_gguf_file_free(&r->gg);
    sl_mapfile_close(&r->m);
}

static const rt *rb_find(const readback *r, const char *name) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->t[i].name, name)) return &r->t[i];
    return NULL;
}

static const char *rb_meta(const readback *r, const char *key) {
    if (r->is_gguf) {
        const sl_gguf_kv *kv = sl_gguf_find_kv(&r->gg, key);
        return kv && kv->type == SL_GGUF_STRING ? kv->str : NULL;
    }
    for (int i = 0; i < r->st.n_meta; i++)
        if (!strcmp(r->st.meta[i].key, key)) return r->st.meta[i].value;
    return NULL;
}

static int64_t numel(const rt *e) {
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++) n *= e->ne[i];
    return n;
}

/* Decode a whole tensor to f32 (malloc'd). */
static float *decode(const rt *e) {
    int64_t n = numel(e);
    float *y = malloc((size_t)(n ? n : 1) * sizeof(float));
    sl_dequant_row(e->dt, e->data, y, n);
    return y;
}

/* The list every combination test writes: each kind of tensor the policy distinguishes. */
static void small_list(sl_synth_list *l) {
    memset(l, 0, sizeof *l);
    snprintf(l->arch, sizeof l->arch, "testarch");
    sl_synth_list_add(l, "blocks.0.attn.qkv.weight", 2, (int64_t[]){96, 512}, SL_INIT_NORMAL, 0.0f, 0.02f, false);
    sl_synth_list_add(l, "blocks.0.attn.qkv.bias", 1, (int64_t[]){96}, SL_INIT_CONST, 0.0f, 0, false);
    sl_synth_list_add(l, "blocks.0.norm.weight", 1, (int64_t[]){512}, SL_INIT_CONST, 1.0f, 0, false);
    sl_synth_list_add(l, "embed.weight", 2, (int64_t[]){8, 256}, SL_INIT_NORMAL, 0.0f, 1.0f, true);
    sl_synth_list_add(l, "odd.weight", 2, (int64_t[]){16, 100}, SL_INIT_NORMAL, 0.0f, 0.5f, false);
    sl_synth_list_add(l, "conv.weight", 4, (int64_t[]){4, 2, 3, 256}, SL_INIT_NORMAL, 0.1f, 0.3f, false);
    sl_synth_list_add(l, "scale.weight", 2, (int64_t[]){4, 256}, SL_INIT_CONST, 0.5f, 0, false);
    sl_synth_list_add(l, "q32only.weight", 2, (int64_t[]){2, 96}, SL_INIT_NORMAL, 0.0f, 1.0f, false);
}

/* The policy of synth.h as a table: the dtype tensor `name` must have. */
static sl_dtype expected_dtype(const char *name, int ndim, int64_t row, bool keep, sl_dtype req, int gguf) {
    const sl_dtype_info *in = sl_dtype_get(req);
    bool narrow = in->is_quant || req == SL_DTYPE_F8_E4M3 || req == SL_DTYPE_F8_E5M2;
    bool special = ndim == 1 || keep || row % in->blck != 0;
    (void)name;
    if (gguf) return special ? SL_DTYPE_F32 : req;
    return special && narrow ? SL_DTYPE_BF16 : req;
}

/* Error bound of one element of dtype dt for a value of magnitude |v| in a tensor with
 * std s (block types: a fraction of the block's spread). */
static double tol_for(sl_dtype dt, double v, double s) {
    switch (dt) {
    case SL_DTYPE_F32: return 0;
    case SL_DTYPE_F16: return fabs(v) * ldexp(1, -11) + ldexp(1, -25);
    case SL_DTYPE_BF16: return fabs(v) * ldexp(1, -8) + 1e-38;
    case SL_DTYPE_F8_E4M3: return fabs(v) * ldexp(1, -4) + ldexp(1, -10);
    case SL_DTYPE_F8_E5M2: return fabs(v) * ldexp(1, -3) + ldexp(1, -17);
    case SL_DTYPE_Q8_0: return 0.05 * s;
    default: return 1.2 * s; /* 4-bit: half a step of ~(6 s)/15, plus clamping of extremes */
    }
}

static const sl_dtype k_dtypes[] = {SL_DTYPE_F32,  SL_DTYPE_F16,  SL_DTYPE_BF16, SL_DTYPE_F8_E4M3,
                                    SL_DTYPE_F8_E5M2, SL_DTYPE_Q8_0, SL_DTYPE_Q4_0, SL_DTYPE_Q4_K,
                                    SL_DTYPE_Q5_K, SL_DTYPE_Q6_K};

SL_TEST(synth_all_combinations) {
    sl_synth_list l;
    small_list(&l);
    const uint64_t seed = 42;
    for (size_t d = 0; d < SL_ARRAY_LEN(k_dtypes); d++)
        for (int gguf = 0; gguf < 2; gguf++) {
            sl_dtype req = k_dtypes[d];
            const sl_dtype_info *in = sl_dtype_get(req);
            bool fp8 = req == SL_DTYPE_F8_E4M3 || req == SL_DTYPE_F8_E5M2;
            bool valid = gguf ? !fp8 : !in->is_quant;
            char path[700];
            char fname[64];
            snprintf(fname, sizeof fname, "m_%s.%s", in->name, gguf ? "gguf" : "safetensors");
            tpath(path, sizeof path, fname);
            sl_synth_opts o = {req, gguf ? SL_SYNTH_GGUF : SL_SYNTH_SAFETENSORS, seed};
            sl_err err = {0};
            sl_status st = sl_synth_write(&l, &o, path, &err);
            if (!valid) {
                CHECKF(st == SL_ERR_INVALID_ARG, "%s: %s accepted", fname, in->name);
                CHECKF(strstr(err.msg, gguf ? "safetensors" : "gguf") != NULL, "%s: message '%s'",
                       fname, err.msg);
                CHECK(!exists(path));
                continue;
            }
            REQUIREF(st == SL_OK, "%s: %s", fname, err.msg);
            readback r;
            REQUIRE_OK(rb_open(&r, path, gguf, &err), &err);
            CHECKF(r.n == l.n, "%s: %d tensors, want %d", fname, r.n, l.n);
            const char *arch = rb_meta(&r, gguf ? "general.architecture" : "sluice.arch");
            CHECKF(arch && !strcmp(arch, "testarch"), "%s: arch metadata", fname);
            if (!gguf) CHECK(rb_meta(&r, "sluice.synthetic") && !strcmp(rb_meta(&r, "sluice.synthetic"), "1"));
            for (int i = 0; i < l.n; i++) {
                const sl_synth_tensor *t = &l.t[i];
                const rt *e = rb_find(&r, t->name);
                REQUIREF(e, "%s: tensor %s missing", fname, t->name);
                sl_dtype want = expected_dtype(t->name, t->ndim, t->ne[t->ndim - 1], t->keep_float, req, gguf);
                CHECKF(e->dt == want, "%s: %s stored as %s, want %s", fname, t->name,
                       sl_dtype_name(e->dt), sl_dtype_name(want));
                CHECKF(e->ndim == t->ndim, "%s: %s ndim", fname, t->name);
                for (int k = 0; k < t->ndim; k++) CHECKF(e->ne[k] == t->ne[k], "%s: %s dim %d", fname, t->name, k);
                if (e->dt != want || e->ndim != t->ndim) continue;
                int64_t n = numel(e);
                CHECK(e->nbytes == sl_dtype_row_bytes(e->dt, n));
                /* values: the exact f32 sample, through the stored dtype */
                float *y = decode(e), *x = malloc((size_t)n * sizeof(float));
                if (t->init == SL_INIT_CONST)
                    for (int64_t k = 0; k < n; k++) x[k] = t->mean;
                else {
                    sl_rng_normal(seed, fnv(t->name), 0, x, n);
                    for (int64_t k = 0; k < n; k++) x[k] = t->mean + t->std * x[k];
                }
                int bad = 0;
                for (int64_t k = 0; k < n; k++) {
                    double tol = tol_for(e->dt, x[k], t->init == SL_INIT_CONST ? 0.01 * fabs(t->mean) : t->std);
                    if (!(fabs((double)y[k] - x[k]) <= tol)) {
                        if (bad < 3)
                            sl_test_fail(__FILE__, __LINE__, "%s: %s[%lld] = %g, want %g (%s)", fname,
                                         t->name, (long long)k, y[k], x[k], sl_dtype_name(e->dt));
                        bad++;
                    }
                }
                /* stored bytes are exactly sl_quant_row of the sample */
                uint8_t *q = malloc(e->nbytes + 1);
                sl_quant_row(e->dt, x, q, n);
                CHECKF(memcmp(q, e->data, e->nbytes) == 0, "%s: %s bytes differ from sl_quant_row",
                       fname, t->name);
                free(q);
                free(x);
                free(y);
            }
            rb_close(&r);
            char part[720];
            snprintf(part, sizeof part, "%s.partial", path);
            CHECKF(!exists(part), "%s: temporary file left behind", fname);
        }
    sl_synth_list_free(&l);
    CHECK(l.t == NULL && l.n == 0);
}

/* Constants are exact wherever the stored type can represent them: 1-D tensors (f32/bf16
 * fallback or the requested float type) and every float type. */
SL_TEST(synth_constants_exact) {
    sl_synth_list l;
    small_list(&l);
    sl_dtype reqs[] = {SL_DTYPE_BF16, SL_DTYPE_F16, SL_DTYPE_F32, SL_DTYPE_F8_E4M3, SL_DTYPE_Q4_K, SL_DTYPE_Q8_0};
    for (size_t d = 0; d < SL_ARRAY_LEN(reqs); d++) {
        bool gguf = sl_dtype_get(reqs[d])->is_quant;
        char path[700];
        tpath(path, sizeof path, gguf ? "c.gguf" : "c.safetensors");
        sl_synth_opts o = {reqs[d], gguf ? SL_SYNTH_GGUF : SL_SYNTH_SAFETENSORS, 7};
        sl_err err = {0};
        REQUIRE_OK(sl_synth_write(&l, &o, path, &err), &err);
        readback r;
        REQUIRE_OK(rb_open(&r, path, gguf, &err), &err);
        const char *names[] = {"blocks.0.attn.qkv.bias", "blocks.0.norm.weight", "scale.weight"};
        float want[] = {0.0f, 1.0f, 0.5f};
        for (int k = 0; k < 3; k++) {
            const rt *e = rb_find(&r, names[k]);
            REQUIRE(e);
            if (sl_dtype_get(e->dt)->is_quant) continue; /* 2-D constant in a block type */
            float *y = decode(e);
            int bad = 0;
            for (int64_t i = 0; i < numel(e); i++) bad += y[i] != want[k];
            CHECKF(bad == 0, "%s in %s: %d elements not exactly %g", names[k], sl_dtype_name(e->dt), bad, want[k]);
            free(y);
        }
        rb_close(&r);
        remove(path);
    }
    sl_synth_list_free(&l);
}

static int file_bytes(const char *path, uint8_t **buf, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc(*n + 1);
    size_t got = fread(*buf, 1, *n, f);
    fclose(f);
    return got == *n;
}

SL_TEST(synth_deterministic_and_seeded) {
    sl_synth_list l;
    small_list(&l);
    for (int gguf = 0; gguf < 2; gguf++) {
        char a[700], b[700], c[700];
        tpath(a, sizeof a, "a.bin");
        tpath(b, sizeof b, "b.bin");
        tpath(c, sizeof c, "c.bin");
        sl_synth_opts o = {gguf ? SL_DTYPE_Q4_K : SL_DTYPE_BF16, gguf ? SL_SYNTH_GGUF : SL_SYNTH_SAFETENSORS, 1234};
        sl_err err = {0};
        REQUIRE_OK(sl_synth_write(&l, &o, a, &err), &err);
        REQUIRE_OK(sl_synth_write(&l, &o, b, &err), &err);
        o.seed = 1235;
        REQUIRE_OK(sl_synth_write(&l, &o, c, &err), &err);
        uint8_t *ba, *bb, *bc;
        size_t na, nb, nc;
        REQUIRE(file_bytes(a, &ba, &na) && file_bytes(b, &bb, &nb) && file_bytes(c, &bc, &nc));
        CHECK(na == nb && memcmp(ba, bb, na) == 0);
        CHECK(na == nc && memcmp(ba, bc, na) != 0);
        /* per tensor: normal tensors change with the seed, constants do not */
        readback ra, rc;
        REQUIRE_OK(rb_open(&ra, a, gguf, &err), &err);
        REQUIRE_OK(rb_open(&rc, c, gguf, &err), &err);
        for (int i = 0; i < l.n; i++) {
            const rt *x = rb_find(&ra, l.t[i].name), *y = rb_find(&rc, l.t[i].name);
            REQUIRE(x && y && x->nbytes == y->nbytes);
            int same = memcmp(x->data, y->data, x->nbytes) == 0;
            CHECKF(same == (l.t[i].init == SL_INIT_CONST), "%s: seed change %s", l.t[i].name,
                   same ? "kept the bytes" : "changed a constant");
        }
        rb_close(&ra);
        rb_close(&rc);
        free(ba);
        free(bb);
        free(bc);
    }
    sl_synth_list_free(&l);
}

/* A tensor's values depend on its name and the seed only: not on its position in the list or
 * on the other tensors. */
SL_TEST(synth_order_independent) {
    sl_synth_list l1 = {0}, l2 = {0};
    int64_t s1[2] = {64, 256}, s2[2] = {32, 512};
    sl_synth_list_add(&l1, "x", 2, s1, SL_INIT_NORMAL, 0, 1, false);
    sl_synth_list_add(&l1, "y", 2, s2, SL_INIT_NORMAL, 0, 1, false);
    sl_synth_list_add(&l2, "y", 2, s2, SL_INIT_NORMAL, 0, 1, false);
    sl_synth_list_add(&l2, "extra", 1, (int64_t[]){1000}, SL_INIT_NORMAL, 0, 1, false);
    sl_synth_list_add(&l2, "x", 2, s1, SL_INIT_NORMAL, 0, 1, false);
    char a[700], b[700];
    tpath(a, sizeof a, "o1.safetensors");
    tpath(b, sizeof b, "o2.safetensors");
    sl_synth_opts o = {SL_DTYPE_F16, SL_SYNTH_SAFETENSORS, 9};
    sl_err err = {0};
    REQUIRE_OK(sl_synth_write(&l1, &o, a, &err), &err);
    REQUIRE_OK(sl_synth_write(&l2, &o, b, &err), &err);
    readback ra, rb;
    REQUIRE_OK(rb_open(&ra, a, 0, &err), &err);
    REQUIRE_OK(rb_open(&rb, b, 0, &err), &err);
    CHECK(ra.n == 2 && rb.n == 3);
    for (int k = 0; k < 2; k++) {
        const char *nm = k ? "y" : "x";
        const rt *x = rb_find(&ra, nm), *y = rb_find(&rb, nm);
        REQUIRE(x && y);
        CHECK(x->nbytes == y->nbytes && memcmp(x->data, y->data, x->nbytes) == 0);
    }
    /* different names give different values */
    CHECK(memcmp(rb_find(&ra, "x")->data, rb_find(&ra, "y")->data, 1024) != 0);
    rb_close(&ra);
    rb_close(&rb);
    sl_synth_list_free(&l1);
    sl_synth_list_free(&l2);
}

/* A tensor bigger than one chunk (1M elements) and one batch: exact values across chunk
 * boundaries, and the statistics of N(mean, std²). */
SL_TEST(synth_large_tensor_stats) {
    sl_synth_list l = {0};
    snprintf(l.arch, sizeof l.arch, "big");
    const int64_t R = 1536, C = 2048; /* 3.1M elements: 3+ chunks */
    sl_synth_list_add(&l, "big.weight", 2, (int64_t[]){R, C}, SL_INIT_NORMAL, 0.25f, 2.0f, false);
    char path[700];
    tpath(path, sizeof path, "big.gguf");
    sl_synth_opts o = {SL_DTYPE_F32, SL_SYNTH_GGUF, 77};
    sl_err err = {0};
    REQUIRE_OK(sl_synth_write(&l, &o, path, &err), &err);
    readback r;
    REQUIRE_OK(rb_open(&r, path, 1, &err), &err);
    const rt *e = rb_find(&r, "big.weight");
    REQUIRE(e && e->dt == SL_DTYPE_F32 && e->ne[0] == R && e->ne[1] == C);
    const int64_t n = R * C;
    float *x = malloc((size_t)n * sizeof(float));
    sl_rng_normal(77, fnv("big.weight"), 0, x, n);
    double sum = 0, sum2 = 0;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, e->data + 4 * i, 4);
        bad += v != 0.25f + 2.0f * x[i];
        sum += v;
        sum2 += (double)v * v;
    }
    CHECKF(bad == 0, "%d of %lld values differ from the Philox sample", bad, (long long)n);
    double mean = sum / (double)n, sd = sqrt(sum2 / (double)n - mean * mean);
    /* 5 sigma: mean's standard error 2/sqrt(n) = 0.0011, std's ≈ 2/sqrt(2n) = 0.0008 */
    CHECK_NEAR(mean, 0.25, 0.006);
    CHECK_NEAR(sd, 2.0, 0.004);
    /* chunk 1 (elements 1M..) is not a restart of chunk 0 */
    CHECK(memcmp(e->data, e->data + ((size_t)1 << 22), 4096) != 0);
    free(x);
    rb_close(&r);
    sl_synth_list_free(&l);
}

SL_TEST(synth_rejects_bad_requests) {
    sl_synth_list l;
    small_list(&l);
    char path[700];
    tpath(path, sizeof path, "bad.out");
    struct {
        sl_dtype dt;
        sl_synth_format f;
        const char *needle;
    } cases[] = {
        {SL_DTYPE_Q4_K, SL_SYNTH_SAFETENSORS, "gguf"},
        {SL_DTYPE_Q8_0, SL_SYNTH_SAFETENSORS, "gguf"},
        {SL_DTYPE_F8_E4M3, SL_SYNTH_GGUF, "fp8"},
        {SL_DTYPE_F8_E5M2, SL_SYNTH_GGUF, "fp8"},
        {SL_DTYPE_I32, SL_SYNTH_SAFETENSORS, "cannot write"},
        {SL_DTYPE_Q2_K, SL_SYNTH_GGUF, "cannot write"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        sl_synth_opts o = {cases[i].dt, cases[i].f, 0};
        sl_err err = {0};
        sl_status st = sl_synth_write(&l, &o, path, &err);
        CHECKF(st == SL_ERR_INVALID_ARG, "case %zu: status %s", i, sl_status_str(st));
        CHECKF(strstr(err.msg, cases[i].needle), "case %zu: message '%s' lacks '%s'", i, err.msg,
               cases[i].needle);
        CHECK(!exists(path));
    }
    /* duplicate names: the writer refuses, nothing is left behind */
    sl_synth_list_add(&l, "odd.weight", 2, (int64_t[]){2, 32}, SL_INIT_NORMAL, 0, 1, false);
    sl_synth_opts o = {SL_DTYPE_BF16, SL_SYNTH_SAFETENSORS, 0};
    sl_err err = {0};
    CHECK(sl_synth_write(&l, &o, path, &err) != SL_OK);
    CHECKF(strstr(err.msg, "odd.weight"), "message '%s'", err.msg);
    char part[720];
    snprintf(part, sizeof part, "%s.partial", path);
    CHECK(!exists(path) && !exists(part));
    /* an unwritable place: an I/O error naming the path */
    sl_err_clear(&err);
    CHECK(sl_synth_write(&l, &o, "/nonexistent-dir/x.safetensors", &err) == SL_ERR_IO);
    CHECKF(strstr(err.msg, "/nonexistent-dir/x.safetensors"), "message '%s'", err.msg);
    /* an existing file is replaced only on success */
    FILE *f = fopen(path, "wb");
    REQUIRE(f);
    fputs("old", f);
    fclose(f);
    sl_err_clear(&err);
    CHECK(sl_synth_write(&l, &o, path, &err) != SL_OK);
    uint8_t *buf;
    size_t n;
    REQUIRE(file_bytes(path, &buf, &n));
    CHECK(n == 3 && !memcmp(buf, "old", 3));
    free(buf);
    sl_synth_list_free(&l);
}

SL_TEST(synth_empty_and_zero_sized) {
    sl_synth_list l = {0};
    char path[700];
    tpath(path, sizeof path, "empty.safetensors");
    sl_synth_opts o = {SL_DTYPE_BF16, SL_SYNTH_SAFETENSORS, 0};
    sl_err err = {0};
    REQUIRE_OK(sl_synth_write(&l, &o, path, &err), &err);
    sl_synth_list_add(&l, "zero", 2, (int64_t[]){0, 64}, SL_INIT_NORMAL, 0, 1, false);
    sl_synth_list_add(&l, "one", 2, (int64_t[]){1, 32}, SL_INIT_NORMAL, 0, 1, false);
    tpath(path, sizeof path, "zero.gguf");
    o.dtype = SL_DTYPE_Q8_0;
    o.format = SL_SYNTH_GGUF;
    REQUIRE_OK(sl_synth_write(&l, &o, path, &err), &err);
    readback r;
    REQUIRE_OK(rb_open(&r, path, 1, &err), &err);
    CHECK(r.n == 2);
    const rt *e = rb_find(&r, "one");
    CHECK(e && e->dt == SL_DTYPE_Q8_0 && e->nbytes == 34);
    e = rb_find(&r, "zero");
    CHECK(e && e->nbytes == 0);
    rb_close(&r);
    sl_synth_list_free(&l);
}
