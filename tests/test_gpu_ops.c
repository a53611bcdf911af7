/* CUDA backend tests (gpu_*): the backend's memory, queues and events; every op of the shared
 * harness table (tests/ops_harness.h) against its double-precision reference; dequantisation bit
 * for bit against core/quant.c; and the kernels the harness table does not reach (flash
 * attention at head dims 64/128, vector paths, chunked GEMM/conv/attention) at real Z-Image and
 * VAE shapes, compared on sampled rows with a double reference.
 *
 * All tests SKIP when sl_backend_cuda_create fails (no GPU, or a build without CUDA). Strict
 * parity runs with SLUICE_CUDA_F32_GEMM=f32 so that f32 cases meet the harness's f32 bounds;
 * gpu_ops_tf32 checks the default TF32 path with bounds scaled for its 10-bit mantissas. Each
 * test runs in its own process, so setenv only affects that test. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/ops.h"
#include "core/quant.h"
#include "core/rng.h"
#include "ops_harness.h"
#include "test.h"

/* ---- helpers ---- */

/* f32mode: "f32" (exact f32 GEMMs), NULL (default TF32); attn: NULL or "4"/"8"/"generic". */
static sl_backend *gpu_create(const char *f32mode, const char *attn, sl_err *err) {
    if (f32mode)
        setenv("SLUICE_CUDA_F32_GEMM", f32mode, 1);
    else
        unsetenv("SLUICE_CUDA_F32_GEMM");
    if (attn)
        setenv("SLUICE_CUDA_ATTN", attn, 1);
    else
        unsetenv("SLUICE_CUDA_ATTN");
    sl_backend *be = NULL;
    if (sl_backend_cuda_create(0, &be, err) != SL_OK) return NULL;
    return be;
}

#define GPU_OR_SKIP(be, f32mode, attn)                                                             \
    sl_err be##_err = {0};                                                                         \
    sl_backend *be = gpu_create((f32mode), (attn), &be##_err);                                     \
    if (!be) SKIP("no CUDA backend: %s", be##_err.msg)

#define GUARD 256

/* A device tensor; with guard bytes around it when it is an output. */
typedef struct dten {
    sl_tensor t;
    char *base;
    size_t bytes;
} dten;

static dten dt_new(sl_backend *be, sl_dtype dt, int nd, const int64_t *ne, const void *host) {
    dten d = {0};
    d.t = sl_tensor_make(dt, nd, ne);
    d.bytes = sl_tensor_nbytes(&d.t);
    sl_err err = {0};
    if (be->vt->alloc(be, d.bytes + 2 * GUARD, (void **)&d.base, &err) != SL_OK) {
        sl_test_fail(__FILE__, __LINE__, "alloc %zu: %s", d.bytes, err.msg);
        return d;
    }
    d.t.data = d.base + GUARD;
    unsigned char *pat = malloc(d.bytes + 2 * GUARD);
    memset(pat, 0xA5, GUARD);
    memset(pat + GUARD + d.bytes, 0xA5, GUARD);
    if (host)
        memcpy(pat + GUARD, host, d.bytes);
    else
        memset(pat + GUARD, 0xFF, d.bytes); /* NaN in every float dtype: unwritten shows */
    be->vt->upload(be, SL_QUEUE_COMPUTE, d.base, pat, d.bytes + 2 * GUARD);
    free(pat);
    return d;
}

/* Download into f32 values (f32/bf16/f16 tensors); returns false when a guard was touched. */
static bool dt_get(sl_backend *be, const dten *d, float *out) {
    unsigned char *h = malloc(d->bytes + 2 * GUARD);
    sl_status st = be->vt->download(be, h, d->base, d->bytes + 2 * GUARD);
    if (st != SL_OK) {
        sl_test_fail(__FILE__, __LINE__, "download: %s", be->last_error);
        free(h);
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < GUARD; i++)
        if (h[i] != 0xA5 || h[GUARD + d->bytes + i] != 0xA5) ok = false;
    sl_dequant_row(d->t.dtype, h + GUARD, out, sl_tensor_numel(&d->t));
    free(h);
    return ok;
}

static void dt_free(sl_backend *be, dten *d) {
    if (d->base) be->vt->free(be, d->base);
    d->base = NULL;
}

/* n random activations of dtype dt (normal × scale), host bytes + the exact decoded values. */
static void *rand_act(sl_dtype dt, int64_t n, uint64_t seed, float scale, float *vals) {
    sl_rng_normal(seed, 1, 0, vals, n);
    for (int64_t i = 0; i < n; i++)
        vals[i] *= scale;
    void *b = malloc(sl_dtype_row_bytes(dt, n) + 1);
    sl_quant_row(dt, vals, b, n);
    sl_dequant_row(dt, b, vals, n);
    return b;
}

typedef struct cmp {
    double max_abs, ref_max, d2, r2;
    int64_t n, bad;
} cmp;

static void cmp_add(cmp *c, double out, double ref) {
    c->n++;
    if (!isfinite(out)) {
        c->bad++;
        return;
    }
    double d = fabs(out - ref);
    if (d > c->max_abs) c->max_abs = d;
    if (fabs(ref) > c->ref_max) c->ref_max = fabs(ref);
    c->d2 += d * d;
    c->r2 += ref * ref;
}

/* Bounds as the harness states them: |out − ref| ≤ tol_abs·max(1, max|ref|), rel L2 ≤ tol_rel. */
static bool cmp_check(const cmp *c, double tol_abs, double tol_rel, const char *what) {
    double rel = c->r2 > 0 ? sqrt(c->d2 / c->r2) : sqrt(c->d2);
    double ta = tol_abs * fmax(1.0, c->ref_max);
    bool ok = c->bad == 0 && c->max_abs <= ta && rel <= tol_rel && c->n > 0;
    fprintf(stderr, "    %-4s %-64s rel_l2 %.2e/%.0e max_abs %.2e/%.1e (%lld values)\n",
            ok ? "ok" : "BAD", what, rel, tol_rel, c->max_abs, ta, (long long)c->n);
    CHECKF(ok, "%s: rel_l2 %.3g (tol %.3g), max_abs %.3g (tol %.3g), %lld non-finite of %lld", what,
           rel, tol_rel, c->max_abs, ta, (long long)c->bad, (long long)c->n);
    return ok;
}

static double tol_abs_of(sl_dtype dt) {
    return dt == SL_DTYPE_BF16 ? 1.6e-2 : dt == SL_DTYPE_F16 ? 2e-3 : 5e-5;
}
static double tol_rel_of(sl_dtype dt) {
    return dt == SL_DTYPE_BF16 ? 6e-3 : dt == SL_DTYPE_F16 ? 1e-3 : 1e-5;
}

static sl_status run_status(sl_backend *be, sl_status st) {
    if (st != SL_OK) sl_test_fail(__FILE__, __LINE__, "op failed: %s", be->last_error);
    return st;
}

/* ---- backend basics ---- */

SL_TEST(gpu_backend_basics) {
    GPU_OR_SKIP(be, NULL, NULL);
    CHECK(!strcmp(be->info.name, "cuda"));
    CHECK(be->info.is_device && !be->info.host_visible && be->info.can_time);
    CHECK(be->info.act_dtype == SL_DTYPE_BF16);
    CHECK(be->info.cc >= 80);
    fprintf(stderr, "    device: %s (cc %d)\n", be->info.device, be->info.cc);
    size_t fr = 0, tot = 0;
    be->vt->mem_info(be, &fr, &tot);
    CHECK(tot > 0 && fr > 0 && fr <= tot);

    /* OOM names the numbers */
    void *p = NULL;
    sl_err err = {0};
    sl_status st = be->vt->alloc(be, tot + ((size_t)1 << 40), &p, &err);
    CHECK(st == SL_ERR_OOM_DEVICE && p == NULL);
    CHECKF(strstr(err.msg, "MiB free") != NULL, "OOM message: %s", err.msg);
    /* the failure is not sticky */
    REQUIRE_OK(be->vt->alloc(be, 1 << 20, &p, &err), &err);
    CHECK(((uintptr_t)p & 255) == 0);

    /* pinned upload on the copy queue, compute waits on an event, download */
    const size_t n = 1 << 20;
    unsigned char *h = NULL, *back = malloc(n);
    REQUIRE_OK(be->vt->host_alloc(be, n, (void **)&h, &err), &err);
    for (size_t i = 0; i < n; i++)
        h[i] = (unsigned char)(i * 7 + 3);
    sl_event *e0 = NULL, *e1 = NULL, *e2 = NULL;
    REQUIRE(be->vt->event_create(be, &e0) == SL_OK && be->vt->event_create(be, &e1) == SL_OK &&
            be->vt->event_create(be, &e2) == SL_OK);
    CHECK(be->vt->event_record(be, e0, SL_QUEUE_COPY) == SL_OK);
    CHECK(be->vt->upload(be, SL_QUEUE_COPY, p, h, n) == SL_OK);
    CHECK(be->vt->event_record(be, e1, SL_QUEUE_COPY) == SL_OK);
    CHECK(be->vt->queue_wait(be, SL_QUEUE_COMPUTE, e1) == SL_OK);
    void *q = NULL;
    REQUIRE_OK(be->vt->alloc(be, n, &q, &err), &err);
    CHECK(be->vt->copy_d2d(be, q, p, n) == SL_OK);
    CHECK(be->vt->event_record(be, e2, SL_QUEUE_COMPUTE) == SL_OK);
    CHECK(be->vt->download(be, back, q, n) == SL_OK);
    CHECK(memcmp(back, h, n) == 0);
    CHECK(be->vt->event_sync(be, e2) == SL_OK);
    float ms = -1;
    CHECK(be->vt->event_elapsed(be, e0, e1, &ms) == SL_OK && ms >= 0);
    /* pinned source on the compute queue may be reused as soon as upload returns */
    CHECK(be->vt->upload(be, SL_QUEUE_COMPUTE, q, h, n) == SL_OK);
    memset(h, 0, n);
    CHECK(be->vt->download(be, back, q, n) == SL_OK);
    CHECK(back[1] == 10 && back[100] == (unsigned char)(100 * 7 + 3));
    CHECK(be->vt->sync(be) == SL_OK);
    be->vt->event_destroy(be, e0);
    be->vt->event_destroy(be, e1);
    be->vt->event_destroy(be, e2);
    be->vt->host_free(be, h);
    be->vt->free(be, p);
    be->vt->free(be, q);
    free(back);
    sl_backend_destroy(be);
}

/* ---- the shared harness table, one test per op ---- */

static void check_op(sl_oh_op op) {
    GPU_OR_SKIP(be, "f32", NULL);
    int np = 0, nf = 0, ns = 0;
    sl_oh_check_table(be, op, NULL, 1.0, &np, &nf, &ns);
    sl_backend_destroy(be);
    CHECKF(np > 0, "no %s case ran", sl_oh_op_name(op));
    CHECKF(ns == 0, "%d %s case(s) unsupported on the CUDA backend", ns, sl_oh_op_name(op));
}

SL_TEST(gpu_ops_matmul) {
    check_op(SL_OH_MATMUL);
}
SL_TEST(gpu_ops_binary) {
    check_op(SL_OH_BINARY);
}
SL_TEST(gpu_ops_scale) {
    check_op(SL_OH_SCALE);
}
SL_TEST(gpu_ops_unary) {
    check_op(SL_OH_UNARY);
}
SL_TEST(gpu_ops_glu) {
    check_op(SL_OH_GLU);
}
SL_TEST(gpu_ops_rms_norm) {
    check_op(SL_OH_RMS_NORM);
}
SL_TEST(gpu_ops_layer_norm) {
    check_op(SL_OH_LAYER_NORM);
}
SL_TEST(gpu_ops_group_norm) {
    check_op(SL_OH_GROUP_NORM);
}
SL_TEST(gpu_ops_rope) {
    check_op(SL_OH_ROPE);
}
SL_TEST(gpu_ops_attention) {
    check_op(SL_OH_ATTENTION);
}
SL_TEST(gpu_ops_softmax) {
    check_op(SL_OH_SOFTMAX);
}
SL_TEST(gpu_ops_gated_add) {
    check_op(SL_OH_GATED_ADD);
}
SL_TEST(gpu_ops_conv2d) {
    check_op(SL_OH_CONV2D);
}
SL_TEST(gpu_ops_upsample) {
    check_op(SL_OH_UPSAMPLE);
}
SL_TEST(gpu_ops_patchify) {
    check_op(SL_OH_PATCHIFY);
}
SL_TEST(gpu_ops_unpatchify) {
    check_op(SL_OH_UNPATCHIFY);
}
SL_TEST(gpu_ops_permute) {
    check_op(SL_OH_PERMUTE);
}
SL_TEST(gpu_ops_concat) {
    check_op(SL_OH_CONCAT);
}
SL_TEST(gpu_ops_slice) {
    check_op(SL_OH_SLICE);
}
SL_TEST(gpu_ops_copy) {
    check_op(SL_OH_COPY);
}
SL_TEST(gpu_ops_get_rows) {
    check_op(SL_OH_GET_ROWS);
}
SL_TEST(gpu_ops_repeat_rows) {
    check_op(SL_OH_REPEAT_ROWS);
}
SL_TEST(gpu_ops_timestep_embed) {
    check_op(SL_OH_TIMESTEP);
}
SL_TEST(gpu_ops_fill) {
    check_op(SL_OH_FILL);
}

/* The default f32 path runs GEMMs on TF32 tensor cores (10-bit mantissas, about 5e-4 relative per
 * product): 300× the f32 bounds (3e-3 relative). */
SL_TEST(gpu_ops_tf32) {
    GPU_OR_SKIP(be, NULL, NULL);
    int np = 0, nf = 0, ns = 0, p, f, s;
    const sl_oh_op ops[] = {SL_OH_MATMUL, SL_OH_CONV2D, SL_OH_ATTENTION};
    for (size_t i = 0; i < SL_ARRAY_LEN(ops); i++) {
        sl_oh_check_table(be, ops[i], "x=f32", 300.0, &p, &f, &s);
        np += p, nf += f, ns += s;
    }
    sl_backend_destroy(be);
    CHECK(np > 0 && ns == 0);
}

/* The measuring backend standing in for CUDA runs every case without touching memory. */
SL_TEST(gpu_ops_dry_run) {
    GPU_OR_SKIP(be, NULL, NULL);
    sl_backend *m = NULL;
    sl_err err = {0};
    REQUIRE_OK(sl_backend_measure_create(be, &m, &err), &err);
    int n;
    const sl_oh_case *cs = sl_oh_cases(&n);
    for (int i = 0; i < n; i++) {
        sl_err e = {0};
        CHECKF(sl_oh_run_dry(m, &cs[i], &e) == SL_OK, "%s", e.msg);
    }
    sl_backend_destroy(m);
    sl_backend_destroy(be);
}

/* ---- dequantisation: bit for bit against core/quant.c ---- */

/* Random blocks: quantised random values where a quantiser exists, else random bytes with the
 * f16 scale fields set to small positive or negative values. fp8: every byte pattern. */
static void *rand_weights(sl_dtype dt, int64_t rows, int64_t cols, uint64_t seed) {
    size_t rb = sl_dtype_row_bytes(dt, cols), n = rb * (size_t)rows;
    unsigned char *b = malloc(n);
    if (dt == SL_DTYPE_F8_E4M3 || dt == SL_DTYPE_F8_E5M2) {
        for (size_t i = 0; i < n; i++)
            b[i] = (unsigned char)(i * 37 + seed);
        return b;
    }
    if (sl_quant_supported(dt)) {
        float *v = malloc((size_t)cols * sizeof(float));
        for (int64_t r = 0; r < rows; r++) {
            sl_rng_normal(seed, 7, (uint64_t)(r * cols), v, cols);
            for (int64_t i = 0; i < cols; i++)
                v[i] *= 0.05f;
            sl_quant_row(dt, v, b + (size_t)r * rb, cols);
        }
        free(v);
        return b;
    }
    for (size_t i = 0; i < n; i += 4) {
        uint32_t w[4];
        sl_philox(seed, 9, i / 16, w);
        memcpy(b + i, &w[(i / 4) % 4], n - i < 4 ? n - i : 4);
    }
    const sl_dtype_info *in = sl_dtype_get(dt);
    int off[2] = {-1, -1};
    if (dt == SL_DTYPE_Q2_K) off[0] = 80, off[1] = 82;
    if (dt == SL_DTYPE_Q3_K) off[0] = 108;
    for (size_t blk = 0; blk < n / (size_t)in->bsize; blk++)
        for (int k = 0; k < 2; k++) {
            if (off[k] < 0) continue;
            float s = (blk % 3 == 0 ? -1.0f : 1.0f) * (0.001f + 0.0001f * (float)(blk % 17));
            uint16_t h = sl_f32_to_f16(s);
            memcpy(b + blk * (size_t)in->bsize + off[k], &h, 2);
        }
    return b;
}

SL_TEST(gpu_dequant_exact) {
    GPU_OR_SKIP(be, NULL, NULL);
    const sl_dtype types[] = {SL_DTYPE_F16,  SL_DTYPE_BF16, SL_DTYPE_F8_E4M3, SL_DTYPE_F8_E5M2,
                              SL_DTYPE_Q4_0, SL_DTYPE_Q4_1, SL_DTYPE_Q5_0,    SL_DTYPE_Q5_1,
                              SL_DTYPE_Q8_0, SL_DTYPE_Q2_K, SL_DTYPE_Q3_K,    SL_DTYPE_Q4_K,
                              SL_DTYPE_Q5_K, SL_DTYPE_Q6_K};
    const int64_t rows = 37, cols = 768;
    float *ref = malloc(rows * cols * sizeof(float)), *out = malloc(rows * cols * sizeof(float));
    for (size_t ti = 0; ti < SL_ARRAY_LEN(types); ti++) {
        sl_dtype dt = types[ti];
        void *w = rand_weights(dt, rows, cols, 100 + ti);
        sl_dequant_row(dt, w, ref, rows * cols);
        const sl_dtype outs[] = {SL_DTYPE_F32, SL_DTYPE_BF16, SL_DTYPE_F16};
        for (size_t oi = 0; oi < 3; oi++) {
            dten x = dt_new(be, dt, 2, (int64_t[]){rows, cols}, w);
            dten y = dt_new(be, outs[oi], 2, (int64_t[]){rows, cols}, NULL);
            if (run_status(be, be->vt->copy(be, &y.t, &x.t)) == SL_OK) {
                bool g = dt_get(be, &y, out);
                int64_t diff = 0;
                for (int64_t i = 0; i < rows * cols; i++) {
                    float want = ref[i];
                    if (outs[oi] == SL_DTYPE_BF16) want = sl_bf16_to_f32(sl_f32_to_bf16(want));
                    if (outs[oi] == SL_DTYPE_F16) want = sl_f16_to_f32(sl_f32_to_f16(want));
                    bool same =
                        (isnan(want) && isnan(out[i])) || sl_f32_bits(want) == sl_f32_bits(out[i]);
                    if (!same) diff++;
                }
                fprintf(stderr, "    %-4s copy %s -> %s: %lld of %lld differ\n",
                        diff ? "BAD" : "ok", sl_dtype_name(dt), sl_dtype_name(outs[oi]),
                        (long long)diff, (long long)(rows * cols));
                CHECKF(diff == 0 && g, "copy %s -> %s: %lld values differ from core/quant.c%s",
                       sl_dtype_name(dt), sl_dtype_name(outs[oi]), (long long)diff,
                       g ? "" : ", guards overwritten");
            }
            dt_free(be, &x);
            dt_free(be, &y);
        }
        /* get_rows gathers the same values (ids in device memory; one out of range -> NaN row) */
        int32_t ids[5] = {36, 0, 17, 17, 3};
        dten id = dt_new(be, SL_DTYPE_I32, 1, (int64_t[]){5}, ids);
        dten x = dt_new(be, dt, 2, (int64_t[]){rows, cols}, w);
        dten y = dt_new(be, SL_DTYPE_F32, 2, (int64_t[]){5, cols}, NULL);
        if (run_status(be, be->vt->get_rows(be, &y.t, &x.t, &id.t)) == SL_OK) {
            CHECK(dt_get(be, &y, out));
            int64_t diff = 0;
            for (int r = 0; r < 5; r++)
                for (int64_t c = 0; c < cols; c++) {
                    float want = ref[ids[r] * cols + c], got = out[r * cols + c];
                    if (!((isnan(want) && isnan(got)) || sl_f32_bits(want) == sl_f32_bits(got)))
                        diff++;
                }
            CHECKF(diff == 0, "get_rows %s: %lld values differ", sl_dtype_name(dt),
                   (long long)diff);
        }
        dt_free(be, &id);
        dt_free(be, &x);
        dt_free(be, &y);
        free(w);
    }
    free(ref);
    free(out);
    sl_backend_destroy(be);
}

/* ---- matmul at Z-Image shapes (chunked dequantisation, sampled rows) ---- */

static void matmul_case(sl_backend *be, int64_t M, int64_t K, int64_t N, sl_dtype wdt, bool bias,
                        sl_dtype act, const char *tag) {
    float *xv = malloc((size_t)M * K * sizeof(float));
    void *xb = rand_act(act, M * K, 11 + (uint64_t)wdt, 1.0f, xv);
    void *wb = NULL;
    float *wv = malloc((size_t)N * K * sizeof(float));
    if (wdt == SL_DTYPE_BF16 || wdt == SL_DTYPE_F16) {
        wb = rand_act(wdt, N * K, 12, 0.02f, wv);
    } else {
        wb = rand_weights(wdt, N, K, 13);
        sl_dequant_row(wdt, wb, wv, N * K);
        if (wdt == SL_DTYPE_F8_E4M3 || wdt == SL_DTYPE_F8_E5M2) { /* avoid NaN/huge patterns */
            float *v = malloc((size_t)N * K * sizeof(float));
            sl_rng_normal(14, 1, 0, v, N * K);
            for (int64_t i = 0; i < N * K; i++)
                v[i] *= 0.02f;
            sl_quant_row(wdt, v, wb, N * K);
            sl_dequant_row(wdt, wb, wv, N * K);
            free(v);
        }
    }
    float bv[16384];
    void *bb = NULL;
    if (bias) bb = rand_act(SL_DTYPE_F32, N, 15, 0.5f, bv);
    dten x = dt_new(be, act, 2, (int64_t[]){M, K}, xb);
    dten w = dt_new(be, wdt, 2, (int64_t[]){N, K}, wb);
    dten b = {0};
    if (bias) b = dt_new(be, SL_DTYPE_F32, 1, (int64_t[]){N}, bb);
    dten y = dt_new(be, act, 2, (int64_t[]){M, N}, NULL);
    float *out = malloc((size_t)M * N * sizeof(float));
    char what[160];
    snprintf(what, sizeof what, "matmul x=%s w=%s [%lld,%lld]x[%lld,%lld]ᵀ%s %s",
             sl_dtype_name(act), sl_dtype_name(wdt), (long long)M, (long long)K, (long long)N,
             (long long)K, bias ? " +b" : "", tag);
    if (run_status(be, be->vt->matmul(be, &y.t, &x.t, &w.t, bias ? &b.t : NULL)) == SL_OK) {
        CHECKF(dt_get(be, &y, out), "%s: guards overwritten", what);
        cmp c = {0};
        int64_t nan_all = 0;
        for (int64_t i = 0; i < M * N; i++)
            nan_all += !isfinite(out[i]);
        CHECKF(nan_all == 0, "%s: %lld non-finite outputs", what, (long long)nan_all);
        /* sampled rows, clamped into [0, M) and without repeats (M may be 1) */
        const int64_t cand[] = {0, 1, M / 3, M / 2 + 1, M - 2, M - 1};
        int64_t rows[6];
        int nrows = 0;
        for (size_t ci = 0; ci < SL_ARRAY_LEN(cand); ci++) {
            int64_t m = cand[ci] < 0 ? 0 : cand[ci] >= M ? M - 1 : cand[ci];
            bool seen = false;
            for (int j = 0; j < nrows; j++)
                seen |= rows[j] == m;
            if (!seen) rows[nrows++] = m;
        }
        for (int ri = 0; ri < nrows; ri++) {
            int64_t m = rows[ri];
            for (int64_t n = 0; n < N; n++) {
                double s = bias ? bv[n] : 0.0;
                const float *xr = xv + m * K, *wr = wv + n * K;
                for (int64_t k = 0; k < K; k++)
                    s += (double)xr[k] * wr[k];
                cmp_add(&c, out[m * N + n], s);
            }
        }
        cmp_check(&c, tol_abs_of(act), tol_rel_of(act), what);
    }
    dt_free(be, &x);
    dt_free(be, &w);
    dt_free(be, &b);
    dt_free(be, &y);
    free(xv);
    free(xb);
    free(wv);
    free(wb);
    free(bb);
    free(out);
}

SL_TEST(gpu_matmul_zimage) {
    GPU_OR_SKIP(be, NULL, NULL);
    /* FFN w1 (output chunked in two when dequantised), w2 (K = 10240), qkv-sized */
    matmul_case(be, 4352, 3840, 10240, SL_DTYPE_BF16, false, SL_DTYPE_BF16, "ffn w1");
    matmul_case(be, 4352, 3840, 10240, SL_DTYPE_Q8_0, false, SL_DTYPE_BF16, "ffn w1");
    matmul_case(be, 4352, 3840, 10240, SL_DTYPE_F8_E4M3, false, SL_DTYPE_BF16, "ffn w1");
    matmul_case(be, 4352, 10240, 3840, SL_DTYPE_Q4_K, false, SL_DTYPE_BF16, "ffn w2");
    matmul_case(be, 4352, 3840, 3840, SL_DTYPE_Q6_K, false, SL_DTYPE_BF16, "to_q");
    matmul_case(be, 4352, 3840, 3840, SL_DTYPE_F16, false, SL_DTYPE_BF16, "to_q");
    matmul_case(be, 4352, 64, 3840, SL_DTYPE_BF16, true, SL_DTYPE_BF16, "x_embedder");
    matmul_case(be, 1, 256, 15360, SL_DTYPE_BF16, true, SL_DTYPE_BF16, "adaLN");
    matmul_case(be, 333, 3840, 64, SL_DTYPE_Q5_K, true, SL_DTYPE_BF16, "final (odd M)");
    matmul_case(be, 77, 2560, 9728, SL_DTYPE_Q4_0, false, SL_DTYPE_F16, "qwen3 mlp f16");
    sl_backend_destroy(be);
}

/* With a tiny scratch budget the dequantised weight runs in many chunks; also the f32-tile
 * output path (bf16 out of an f16 GEMM is impossible in cuBLASLt: x f16, y bf16). */
SL_TEST(gpu_matmul_chunks) {
    setenv("SLUICE_CUDA_SCRATCH_MB", "8", 1);
    GPU_OR_SKIP(be, NULL, NULL);
    matmul_case(be, 300, 3840, 3000, SL_DTYPE_Q8_0, true, SL_DTYPE_BF16, "8 MiB chunks");
    matmul_case(be, 4352, 1024, 2000, SL_DTYPE_Q4_K, true, SL_DTYPE_F16, "8 MiB chunks f16");
    sl_backend_destroy(be);
}

/* ---- attention: the flash kernel (Dh 64/128), both block shapes, and the generic path ---- */

static void attn_ref(const float *q, const float *k, const float *v, int64_t Sq, int64_t Sk,
                     int64_t Hq, int64_t Hk, int64_t Dh, int64_t b, int64_t i, int64_t h,
                     double scale, bool causal, double *o) {
    const int64_t hk = h / (Hq / Hk);
    const float *qr = q + ((b * Sq + i) * Hq + h) * Dh;
    double *s = malloc((size_t)Sk * sizeof(double)), mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < Sk; j++) {
        const float *kr = k + ((b * Sk + j) * Hk + hk) * Dh;
        double d = 0;
        for (int64_t e = 0; e < Dh; e++)
            d += (double)qr[e] * kr[e];
        s[j] = (causal && j > i) ? -INFINITY : d * scale;
        if (s[j] > mx) mx = s[j];
    }
    for (int64_t j = 0; j < Sk; j++)
        sum += (s[j] = exp(s[j] - mx));
    for (int64_t e = 0; e < Dh; e++)
        o[e] = 0;
    for (int64_t j = 0; j < Sk; j++) {
        const float *vr = v + ((b * Sk + j) * Hk + hk) * Dh;
        for (int64_t e = 0; e < Dh; e++)
            o[e] += s[j] / sum * vr[e];
    }
    free(s);
}

/* One attention case on be against the double reference on sampled rows. With `other` (a backend
 * on the same device, another attention path), that path runs the same inputs and the two outputs
 * are compared element by element. may_refuse: be may answer SL_ERR_UNSUPPORTED (cuDNN refusing
 * an edge shape), reported as n/a instead of a failure. */
static void attn_case_ex(sl_backend *be, sl_backend *other, bool may_refuse, sl_dtype dt, int64_t B,
                         int64_t Sq, int64_t Sk, int64_t Hq, int64_t Hk, int64_t Dh, bool causal,
                         int nsample, const char *tag) {
    const int64_t nq = B * Sq * Hq * Dh, nk = B * Sk * Hk * Dh;
    float *qv = malloc(nq * sizeof(float)), *kv = malloc(nk * sizeof(float)),
          *vv = malloc(nk * sizeof(float)), *out = malloc(nq * sizeof(float));
    void *qb = rand_act(dt, nq, 21 + (uint64_t)Sq, 1.0f, qv);
    void *kb = rand_act(dt, nk, 22 + (uint64_t)Sk, 1.0f, kv);
    void *vb = rand_act(dt, nk, 23, 1.0f, vv);
    const bool four = B > 1 || Sq % 2;
    dten q, k, v, o;
    if (four) {
        q = dt_new(be, dt, 4, (int64_t[]){B, Sq, Hq, Dh}, qb);
        k = dt_new(be, dt, 4, (int64_t[]){B, Sk, Hk, Dh}, kb);
        v = dt_new(be, dt, 4, (int64_t[]){B, Sk, Hk, Dh}, vb);
        o = dt_new(be, dt, 4, (int64_t[]){B, Sq, Hq, Dh}, NULL);
    } else {
        q = dt_new(be, dt, 3, (int64_t[]){Sq, Hq, Dh}, qb);
        k = dt_new(be, dt, 3, (int64_t[]){Sk, Hk, Dh}, kb);
        v = dt_new(be, dt, 3, (int64_t[]){Sk, Hk, Dh}, vb);
        o = dt_new(be, dt, 3, (int64_t[]){Sq, Hq, Dh}, NULL);
    }
    const double scale = 1.0 / sqrt((double)Dh);
    char what[160];
    snprintf(what, sizeof what, "attention %s B%lld Sq%lld Sk%lld H%lld/%lld Dh%lld%s %s",
             sl_dtype_name(dt), (long long)B, (long long)Sq, (long long)Sk, (long long)Hq,
             (long long)Hk, (long long)Dh, causal ? " causal" : "", tag);
    sl_status ast = be->vt->attention(be, &o.t, &q.t, &k.t, &v.t, (float)scale, causal);
    if (ast == SL_ERR_UNSUPPORTED && may_refuse) {
        fprintf(stderr, "    n/a  %-64s %s\n", what, be->last_error);
        ast = SL_ERR_BACKEND; /* skip the checks below */
    } else {
        run_status(be, ast);
    }
    if (ast == SL_OK) {
        CHECKF(dt_get(be, &o, out), "%s: guards overwritten", what);
        int64_t bad = 0;
        for (int64_t i = 0; i < nq; i++)
            bad += !isfinite(out[i]);
        CHECKF(bad == 0, "%s: %lld non-finite outputs", what, (long long)bad);
        cmp c = {0};
        double *ref = malloc(Dh * sizeof(double));
        const int64_t total = B * Sq * Hq;
        const int64_t step = nsample <= 0 || total <= nsample ? 1 : total / nsample;
        for (int64_t r = 0; r < total; r += step) {
            /* r over (b, i, h); include the last query rows */
            int64_t rr = r + step >= total ? total - 1 : r;
            int64_t h = rr % Hq, i = (rr / Hq) % Sq, b = rr / (Hq * Sq);
            attn_ref(qv, kv, vv, Sq, Sk, Hq, Hk, Dh, b, i, h, scale, causal, ref);
            for (int64_t e = 0; e < Dh; e++)
                cmp_add(&c, out[((b * Sq + i) * Hq + h) * Dh + e], ref[e]);
        }
        free(ref);
        cmp_check(&c, tol_abs_of(dt), tol_rel_of(dt), what);
        if (other) { /* the same inputs through the other path, every element */
            dten o2 = dt_new(be, dt, o.t.ndim, o.t.ne, NULL);
            float *out2 = malloc(nq * sizeof(float));
            if (run_status(other, other->vt->attention(other, &o2.t, &q.t, &k.t, &v.t, (float)scale,
                                                       causal)) == SL_OK &&
                run_status(other, other->vt->sync(other)) == SL_OK) {
                CHECKF(dt_get(be, &o2, out2), "%s: guards overwritten (other path)", what);
                cmp c2 = {0};
                for (int64_t i = 0; i < nq; i++)
                    cmp_add(&c2, out[i], out2[i]);
                char w2[200];
                snprintf(w2, sizeof w2, "%.150s vs portable", what);
                cmp_check(&c2, tol_abs_of(dt), tol_rel_of(dt), w2);
            }
            dt_free(be, &o2);
            free(out2);
        }
    }
    dt_free(be, &q), dt_free(be, &k), dt_free(be, &v), dt_free(be, &o);
    free(qv), free(kv), free(vv), free(out), free(qb), free(kb), free(vb);
}

static void attn_case(sl_backend *be, sl_dtype dt, int64_t B, int64_t Sq, int64_t Sk, int64_t Hq,
                      int64_t Hk, int64_t Dh, bool causal, int nsample, const char *tag) {
    attn_case_ex(be, NULL, false, dt, B, Sq, Sk, Hq, Hk, Dh, causal, nsample, tag);
}

static void attn_suite(const char *variant) {
    GPU_OR_SKIP(be, NULL, variant);
    const sl_dtype BF = SL_DTYPE_BF16, FH = SL_DTYPE_F16;
    attn_case(be, BF, 1, 4352, 4352, 30, 30, 128, false, 300, "zimage");
    attn_case(be, BF, 1, 77, 77, 32, 8, 128, true, 0, "qwen3 gqa causal");
    attn_case(be, BF, 2, 130, 130, 4, 2, 64, true, 0, "causal B2");
    attn_case(be, BF, 1, 100, 333, 6, 3, 64, false, 0, "Sq != Sk");
    attn_case(be, BF, 1, 1, 200, 4, 4, 128, false, 0, "one query");
    attn_case(be, BF, 1, 257, 257, 2, 2, 128, true, 0, "tile edges");
    attn_case(be, FH, 1, 190, 190, 4, 4, 128, false, 0, "f16");
    attn_case(be, FH, 1, 64, 64, 3, 1, 64, true, 0, "f16 causal");
    sl_backend_destroy(be);
}

SL_TEST(gpu_attention_flash4) {
    attn_suite("4");
}
SL_TEST(gpu_attention_flash8) {
    attn_suite("8");
}

/* cuDNN's fused attention (forced: a refusal is an error, except on the edge shapes marked
 * may_refuse), against the double reference and element by element against the portable kernels
 * on the same inputs. SKIP when libcudnn.so.9 cannot be loaded (SLUICE_CUDNN_PATH /
 * LD_LIBRARY_PATH; scripts/gpu.sh points them at PyTorch's copy). */
SL_TEST(gpu_attention_cudnn) {
    GPU_OR_SKIP(be, NULL, "cudnn");
    GPU_OR_SKIP(port, NULL, "portable");
    {
        const int64_t ne[3] = {64, 1, 64};
        dten q = dt_new(be, SL_DTYPE_BF16, 3, ne, NULL), o = dt_new(be, SL_DTYPE_BF16, 3, ne, NULL);
        sl_status st = be->vt->attention(be, &o.t, &q.t, &q.t, &q.t, 0.125f, false);
        dt_free(be, &q), dt_free(be, &o);
        if (st != SL_OK && strstr(be->last_error, "library unavailable")) {
            char why[600];
            snprintf(why, sizeof why, "%s", be->last_error);
            sl_backend_destroy(port);
            sl_backend_destroy(be);
            SKIP("%s", why);
        }
    }
    const sl_dtype BF = SL_DTYPE_BF16, FH = SL_DTYPE_F16;
    attn_case_ex(be, port, false, BF, 1, 4352, 4352, 30, 30, 128, false, 300, "zimage");
    attn_case_ex(be, port, false, BF, 1, 4352, 4352, 30, 30, 128, true, 200, "zimage causal");
    attn_case_ex(be, port, false, BF, 1, 4096, 4096, 24, 24, 64, false, 200, "Dh 64");
    attn_case_ex(be, port, false, BF, 1, 257, 257, 2, 2, 128, true, 0, "S % 64 != 0 causal");
    attn_case_ex(be, port, false, BF, 1, 300, 300, 4, 4, 64, false, 0, "S % 64 != 0");
    attn_case_ex(be, port, false, BF, 1, 77, 77, 32, 8, 128, true, 0, "qwen3 gqa causal");
    attn_case_ex(be, port, false, BF, 2, 130, 130, 4, 2, 64, false, 0, "gqa B2");
    attn_case_ex(be, port, false, FH, 1, 190, 190, 4, 4, 128, false, 0, "f16");
    attn_case_ex(be, port, false, FH, 1, 64, 64, 3, 1, 64, true, 0, "f16 causal mqa");
    attn_case_ex(be, port, true, BF, 1, 100, 333, 6, 3, 64, false, 0, "Sq != Sk");
    attn_case_ex(be, port, true, BF, 1, 1, 200, 4, 4, 128, false, 0, "one query");
    sl_backend_destroy(port);
    sl_backend_destroy(be);
}

/* The generic path: VAE mid-attention (one head, Dh 512) in query chunks, other head dims. */
SL_TEST(gpu_attention_generic) {
    setenv("SLUICE_CUDA_SCRATCH_MB", "16", 1);
    GPU_OR_SKIP(be, NULL, NULL);
    attn_case(be, SL_DTYPE_BF16, 1, 4096, 4096, 1, 1, 512, false, 64, "vae mid (chunked)");
    attn_case(be, SL_DTYPE_BF16, 1, 300, 300, 3, 1, 80, true, 0, "Dh 80 causal");
    sl_backend_destroy(be);
    GPU_OR_SKIP(be2, NULL, "generic");
    attn_case(be2, SL_DTYPE_BF16, 1, 500, 500, 4, 2, 128, true, 0, "generic forced");
    sl_backend_destroy(be2);
}

/* ---- row ops at Z-Image sizes (vector paths) and views at odd offsets (scalar paths) ---- */

SL_TEST(gpu_rowops_zimage) {
    GPU_OR_SKIP(be, NULL, NULL);
    const int64_t T = 4352, D = 3840, H = 30, Dh = 128, n = T * D;
    const sl_dtype BF = SL_DTYPE_BF16;
    float *xv = malloc(n * sizeof(float)), *yv = malloc(n * sizeof(float)),
          *out = malloc(n * sizeof(float)), wv[3840], mv[3840], gv[3840], nwv[128];
    void *xb = rand_act(BF, n, 31, 2.0f, xv), *yb = rand_act(BF, n, 32, 1.0f, yv);
    void *wb = rand_act(SL_DTYPE_F32, D, 33, 1.0f, wv), *mb = rand_act(BF, D, 34, 1.0f, mv);
    void *gb = rand_act(SL_DTYPE_F32, D, 35, 0.5f, gv), *nwb = rand_act(BF, Dh, 36, 1.0f, nwv);
    dten x = dt_new(be, BF, 2, (int64_t[]){T, D}, xb), y = dt_new(be, BF, 2, (int64_t[]){T, D}, yb);
    dten w = dt_new(be, SL_DTYPE_F32, 1, (int64_t[]){D}, wb),
         m = dt_new(be, BF, 1, (int64_t[]){D}, mb);
    dten g = dt_new(be, SL_DTYPE_F32, 1, (int64_t[]){D}, gb),
         nw = dt_new(be, BF, 1, (int64_t[]){Dh}, nwb);
    const float eps = 1e-5f;

    /* rms_norm ⊙ w ⊙ mod */
    dten o = dt_new(be, BF, 2, (int64_t[]){T, D}, NULL);
    if (run_status(be, be->vt->rms_norm(be, &o.t, &x.t, &w.t, &m.t, eps)) == SL_OK) {
        CHECK(dt_get(be, &o, out));
        cmp c = {0};
        for (int64_t r = 0; r < T; r++) {
            double ss = 0;
            for (int64_t i = 0; i < D; i++)
                ss += (double)xv[r * D + i] * xv[r * D + i];
            double rs = 1.0 / sqrt(ss / D + eps);
            for (int64_t i = 0; i < D; i++)
                cmp_add(&c, out[r * D + i], xv[r * D + i] * rs * wv[i] * mv[i]);
        }
        cmp_check(&c, 1.6e-2, 6e-3, "rms_norm bf16 [4352,3840] w f32 mod bf16");
    }
    /* glu: silu(x) ⊙ y */
    if (run_status(be, be->vt->glu(be, SL_UNARY_SILU, &o.t, &x.t, &y.t)) == SL_OK) {
        CHECK(dt_get(be, &o, out));
        cmp c = {0};
        for (int64_t i = 0; i < n; i++)
            cmp_add(&c, out[i], xv[i] / (1.0 + exp(-(double)xv[i])) * yv[i]);
        cmp_check(&c, 1.6e-2, 6e-3, "glu silu bf16 [4352,3840]");
    }
    /* gated_add: x += gate ⊙ rms_norm(y; w) */
    if (run_status(be, be->vt->gated_add(be, &x.t, &y.t, &w.t, &g.t, eps)) == SL_OK) {
        CHECK(dt_get(be, &x, out));
        cmp c = {0};
        for (int64_t r = 0; r < T; r++) {
            double ss = 0;
            for (int64_t i = 0; i < D; i++)
                ss += (double)yv[r * D + i] * yv[r * D + i];
            double rs = 1.0 / sqrt(ss / D + eps);
            for (int64_t i = 0; i < D; i++)
                cmp_add(&c, out[r * D + i], xv[r * D + i] + gv[i] * (yv[r * D + i] * rs * wv[i]));
        }
        cmp_check(&c, 1.6e-2, 6e-3, "gated_add bf16 [4352,3840]");
    }
    /* rope with the fused per-head norm: interleaved (Z-Image) and half (Qwen3) */
    float *tab = malloc((size_t)T * Dh * sizeof(float));
    for (int64_t t = 0; t < T; t++)
        for (int64_t p = 0; p < Dh / 2; p++) {
            double a = (double)(t % 97) * pow(256.0, -2.0 * (p % 16) / 32.0);
            tab[(t * (Dh / 2) + p) * 2] = (float)cos(a);
            tab[(t * (Dh / 2) + p) * 2 + 1] = (float)sin(a);
        }
    dten tb = dt_new(be, SL_DTYPE_F32, 3, (int64_t[]){T, Dh / 2, 2}, tab);
    sl_tensor yh = sl_reshape3(&y.t, T, H, Dh), oh = sl_reshape3(&o.t, T, H, Dh);
    for (int mode = 0; mode < 2; mode++) {
        if (run_status(be, be->vt->rope(be, &oh, &yh, &nw.t, eps, &tb.t, (sl_rope_mode)mode)) !=
            SL_OK)
            continue;
        CHECK(dt_get(be, &o, out));
        cmp c = {0};
        double v[128];
        for (int64_t r = 0; r < T * H; r++) {
            const float *xr = yv + r * Dh;
            const float *cs = tab + (r / H) * Dh;
            double ss = 0;
            for (int e = 0; e < Dh; e++)
                ss += (double)xr[e] * xr[e];
            double rs = 1.0 / sqrt(ss / Dh + eps);
            for (int e = 0; e < Dh; e++)
                v[e] = xr[e] * rs * nwv[e];
            for (int p = 0; p < Dh / 2; p++) {
                int a = mode == SL_ROPE_INTERLEAVED ? 2 * p : p,
                    b = mode == SL_ROPE_INTERLEAVED ? 2 * p + 1 : p + Dh / 2;
                double cc = cs[2 * p], sn = cs[2 * p + 1];
                cmp_add(&c, out[r * Dh + a], v[a] * cc - v[b] * sn);
                cmp_add(&c, out[r * Dh + b], v[a] * sn + v[b] * cc);
            }
        }
        cmp_check(&c, 1.6e-2, 6e-3,
                  mode ? "rope half + qk-norm bf16 [4352,30,128]"
                       : "rope interleaved + qk-norm bf16 [4352,30,128]");
    }
    /* layer_norm (no affine) ⊙ scale, f32 in -> bf16 out (mixed dtypes: generic accessor) */
    dten o32 = dt_new(be, SL_DTYPE_F32, 2, (int64_t[]){T, D}, NULL);
    if (run_status(be, be->vt->copy(be, &o32.t, &y.t)) == SL_OK &&
        run_status(be, be->vt->layer_norm(be, &o.t, &o32.t, NULL, NULL, &m.t, NULL, 1e-6f)) ==
            SL_OK) {
        CHECK(dt_get(be, &o, out));
        cmp c = {0};
        for (int64_t r = 0; r < T; r += 7) {
            double s = 0, ss = 0;
            for (int64_t i = 0; i < D; i++)
                s += yv[r * D + i];
            double mean = s / D;
            for (int64_t i = 0; i < D; i++)
                ss += (yv[r * D + i] - mean) * (yv[r * D + i] - mean);
            double rs = 1.0 / sqrt(ss / D + 1e-6);
            for (int64_t i = 0; i < D; i++)
                cmp_add(&c, out[r * D + i], (yv[r * D + i] - mean) * rs * mv[i]);
        }
        cmp_check(&c, 1.6e-2, 6e-3, "layer_norm f32->bf16 ⊙ scale [4352,3840]");
    }
    dt_free(be, &o32);
    dt_free(be, &tb);
    dt_free(be, &x), dt_free(be, &y), dt_free(be, &w), dt_free(be, &m), dt_free(be, &g);
    dt_free(be, &nw), dt_free(be, &o);
    free(xv), free(yv), free(out), free(xb), free(yb), free(wb), free(mb), free(gb), free(nwb),
        free(tab);
    sl_backend_destroy(be);
}

/* The register-resident row kernels over their whole range of row lengths — one warp per row with
 * 1, 2 or 4 units of 8 per lane, one 128-thread block per row with 2, 4 or 8 — in bf16 and f16,
 * with vector arguments in each dtype read in place or absent, rows not a multiple of four (the
 * warp kernels' last block), and lengths just outside (D % 8 != 0, D > 8192) that take the two-pass
 * kernels; rope at head dims 64/128/256 in both pair layouts. Double references on the same
 * inputs. */
static void rows_case(sl_backend *be, sl_dtype dt, int64_t R, int64_t D, uint64_t seed) {
    const int64_t n = R * D;
    float *xv = malloc(n * sizeof(float)), *yv = malloc(n * sizeof(float)),
          *out = malloc(n * sizeof(float));
    float *wv = malloc(D * sizeof(float)), *bv = malloc(D * sizeof(float)),
          *gv = malloc(D * sizeof(float));
    void *xb = rand_act(dt, n, seed, 2.0f, xv), *yb = rand_act(dt, n, seed + 1, 1.0f, yv);
    /* vectors: w f32, b (and gate) in the activation dtype, scale bf16 */
    void *wb = rand_act(SL_DTYPE_F32, D, seed + 2, 1.0f, wv),
         *bb = rand_act(dt, D, seed + 3, 0.5f, bv);
    void *gb = rand_act(SL_DTYPE_BF16, D, seed + 4, 0.7f, gv);
    dten x = dt_new(be, dt, 2, (int64_t[]){R, D}, xb), y = dt_new(be, dt, 2, (int64_t[]){R, D}, yb);
    dten o = dt_new(be, dt, 2, (int64_t[]){R, D}, NULL);
    dten w = dt_new(be, SL_DTYPE_F32, 1, (int64_t[]){D}, wb),
         b = dt_new(be, dt, 1, (int64_t[]){D}, bb);
    dten g = dt_new(be, SL_DTYPE_BF16, 1, (int64_t[]){D}, gb);
    const float eps = 1e-5f;
    char what[96];
    const double ta = tol_abs_of(dt), tr = tol_rel_of(dt);
    /* rms_norm ⊙ w ⊙ mod (mod = b) */
    if (run_status(be, be->vt->rms_norm(be, &o.t, &x.t, &w.t, &b.t, eps)) == SL_OK) {
        CHECK(dt_get(be, &o, out));
        cmp c = {0};
        for (int64_t r = 0; r < R; r++) {
            double ss = 0;
            for (int64_t i = 0; i < D; i++)
                ss += (double)xv[r * D + i] * xv[r * D + i];
            const double rs = 1.0 / sqrt(ss / D + eps);
            for (int64_t i = 0; i < D; i++)
                cmp_add(&c, out[r * D + i], xv[r * D + i] * rs * wv[i] * bv[i]);
        }
        snprintf(what, sizeof what, "rms_norm %s [%lld,%lld] w f32 mod %s", sl_dtype_name(dt),
                 (long long)R, (long long)D, sl_dtype_name(dt));
        cmp_check(&c, ta, tr, what);
    }
    /* layer_norm with every affine part: ((x − mean)·rstd ⊙ w + b) ⊙ scale + shift */
    if (run_status(be, be->vt->layer_norm(be, &o.t, &y.t, &w.t, &b.t, &g.t, &b.t, 1e-6f)) ==
        SL_OK) {
        CHECK(dt_get(be, &o, out));
        cmp c = {0};
        for (int64_t r = 0; r < R; r++) {
            double s = 0, ss = 0;
            for (int64_t i = 0; i < D; i++)
                s += yv[r * D + i];
            const double mean = s / D;
            for (int64_t i = 0; i < D; i++)
                ss += (yv[r * D + i] - mean) * (yv[r * D + i] - mean);
            const double rs = 1.0 / sqrt(ss / D + 1e-6);
            for (int64_t i = 0; i < D; i++)
                cmp_add(&c, out[r * D + i],
                        ((yv[r * D + i] - mean) * rs * wv[i] + bv[i]) * gv[i] + bv[i]);
        }
        snprintf(what, sizeof what, "layer_norm %s [%lld,%lld] w b scale shift", sl_dtype_name(dt),
                 (long long)R, (long long)D);
        cmp_check(&c, ta, tr, what);
    }
    /* layer_norm without affine parts */
    if (run_status(be, be->vt->layer_norm(be, &o.t, &x.t, NULL, NULL, NULL, NULL, 1e-6f)) ==
        SL_OK) {
        CHECK(dt_get(be, &o, out));
        cmp c = {0};
        for (int64_t r = 0; r < R; r++) {
            double s = 0, ss = 0;
            for (int64_t i = 0; i < D; i++)
                s += xv[r * D + i];
            const double mean = s / D;
            for (int64_t i = 0; i < D; i++)
                ss += (xv[r * D + i] - mean) * (xv[r * D + i] - mean);
            const double rs = 1.0 / sqrt(ss / D + 1e-6);
            for (int64_t i = 0; i < D; i++)
                cmp_add(&c, out[r * D + i], (xv[r * D + i] - mean) * rs);
        }
        snprintf(what, sizeof what, "layer_norm %s [%lld,%lld] plain", sl_dtype_name(dt),
                 (long long)R, (long long)D);
        cmp_check(&c, ta, tr, what);
    }
    /* gated_add, gate only (no norm), then with the norm: x += gate ⊙ rms_norm(y; w) */
    float *xr = malloc(n * sizeof(float));
    memcpy(xr, xv, n * sizeof(float));
    for (int pass = 0; pass < 2; pass++) {
        const sl_tensor *wn = pass ? &w.t : NULL;
        if (run_status(be, be->vt->gated_add(be, &x.t, &y.t, wn, &g.t, eps)) != SL_OK) break;
        CHECK(dt_get(be, &x, out));
        cmp c = {0};
        for (int64_t r = 0; r < R; r++) {
            double rs = 1.0;
            if (pass) {
                double ss = 0;
                for (int64_t i = 0; i < D; i++)
                    ss += (double)yv[r * D + i] * yv[r * D + i];
                rs = 1.0 / sqrt(ss / D + eps);
            }
            for (int64_t i = 0; i < D; i++) {
                const double t = pass ? yv[r * D + i] * rs * wv[i] : yv[r * D + i];
                cmp_add(&c, out[r * D + i], xr[r * D + i] + gv[i] * t);
            }
        }
        snprintf(what, sizeof what, "gated_add %s [%lld,%lld]%s", sl_dtype_name(dt), (long long)R,
                 (long long)D, pass ? " rms w f32" : " no norm");
        cmp_check(&c, ta, tr, what);
        memcpy(xr, out, n * sizeof(float)); /* the next pass adds to the rounded result */
    }
    free(xr);
    dt_free(be, &x), dt_free(be, &y), dt_free(be, &o), dt_free(be, &w), dt_free(be, &b),
        dt_free(be, &g);
    free(xv), free(yv), free(out), free(wv), free(bv), free(gv), free(xb), free(yb), free(wb),
        free(bb), free(gb);
}

static void rope_case(sl_backend *be, sl_dtype dt, int64_t T, int64_t H, int64_t Dh, bool norm,
                      uint64_t seed) {
    const int64_t n = T * H * Dh;
    float *xv = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float)),
          *nwv = malloc(Dh * sizeof(float));
    void *xb = rand_act(dt, n, seed, 1.0f, xv),
         *nwb = rand_act(SL_DTYPE_BF16, Dh, seed + 1, 1.0f, nwv);
    float *tab = malloc((size_t)T * Dh * sizeof(float));
    for (int64_t t = 0; t < T; t++)
        for (int64_t p = 0; p < Dh / 2; p++) {
            const double a = (double)(t + 1) * pow(1000.0, -2.0 * p / (double)Dh);
            tab[(t * (Dh / 2) + p) * 2] = (float)cos(a);
            tab[(t * (Dh / 2) + p) * 2 + 1] = (float)sin(a);
        }
    dten x = dt_new(be, dt, 3, (int64_t[]){T, H, Dh}, xb),
         o = dt_new(be, dt, 3, (int64_t[]){T, H, Dh}, NULL);
    dten nw = dt_new(be, SL_DTYPE_BF16, 1, (int64_t[]){Dh}, nwb);
    dten tb = dt_new(be, SL_DTYPE_F32, 3, (int64_t[]){T, Dh / 2, 2}, tab);
    double *v = malloc(Dh * sizeof(double));
    for (int mode = 0; mode < 2; mode++) {
        if (run_status(be, be->vt->rope(be, &o.t, &x.t, norm ? &nw.t : NULL, 1e-6f, &tb.t,
                                        (sl_rope_mode)mode)) != SL_OK)
            continue;
        CHECK(dt_get(be, &o, out));
        cmp c = {0};
        for (int64_t r = 0; r < T * H; r++) {
            const float *xr = xv + r * Dh, *cs = tab + (r / H) * Dh;
            double rs = 1.0;
            if (norm) {
                double ss = 0;
                for (int64_t e = 0; e < Dh; e++)
                    ss += (double)xr[e] * xr[e];
                rs = 1.0 / sqrt(ss / Dh + 1e-6);
            }
            for (int64_t e = 0; e < Dh; e++)
                v[e] = xr[e] * rs * (norm ? nwv[e] : 1.0);
            for (int64_t p = 0; p < Dh / 2; p++) {
                const int64_t a = mode == SL_ROPE_INTERLEAVED ? 2 * p : p;
                const int64_t bi = mode == SL_ROPE_INTERLEAVED ? 2 * p + 1 : p + Dh / 2;
                const double cc = cs[2 * p], sn = cs[2 * p + 1];
                cmp_add(&c, out[r * Dh + a], v[a] * cc - v[bi] * sn);
                cmp_add(&c, out[r * Dh + bi], v[a] * sn + v[bi] * cc);
            }
        }
        char what[96];
        snprintf(what, sizeof what, "rope %s %s [%lld,%lld,%lld]%s", mode ? "half" : "interleaved",
                 sl_dtype_name(dt), (long long)T, (long long)H, (long long)Dh,
                 norm ? " + norm" : "");
        cmp_check(&c, tol_abs_of(dt), tol_rel_of(dt), what);
    }
    dt_free(be, &x), dt_free(be, &o), dt_free(be, &nw), dt_free(be, &tb);
    free(xv), free(out), free(nwv), free(xb), free(nwb), free(tab), free(v);
}

SL_TEST(gpu_rowops_shapes) {
    GPU_OR_SKIP(be, NULL, NULL);
    /* warp rows: 1, 2, 4 units a lane; block rows: 2, 4, 8; then the two-pass kernels */
    const int64_t Ds[] = {8, 200, 256, 512, 1000, 1024, 1536, 2560, 3840, 8192, 4100, 8200};
    for (size_t i = 0; i < sizeof Ds / sizeof Ds[0]; i++) {
        rows_case(be, SL_DTYPE_BF16, 37, Ds[i], 600 + 10 * i);
        if (i % 3 == 0) rows_case(be, SL_DTYPE_F16, 13, Ds[i], 700 + 10 * i);
    }
    rope_case(be, SL_DTYPE_BF16, 33, 3, 64, true, 800);
    rope_case(be, SL_DTYPE_BF16, 33, 3, 128, true, 810);
    rope_case(be, SL_DTYPE_F16, 17, 5, 256, true, 820);
    rope_case(be, SL_DTYPE_BF16, 9, 7, 128, false, 830);
    rope_case(be, SL_DTYPE_BF16, 9, 2, 96, true, 840); /* two-pass kernel */
    sl_backend_destroy(be);
}

/* Element-wise ops on views that start 2 bytes into an allocation: the 8-wide paths must step
 * aside for the scalar ones. */
SL_TEST(gpu_unaligned_views) {
    GPU_OR_SKIP(be, NULL, NULL);
    const int64_t n = 1001;
    const sl_dtype BF = SL_DTYPE_BF16;
    float av[1002], bv[1002], out[1002];
    void *ab = rand_act(BF, n + 1, 41, 1.0f, av), *bb = rand_act(BF, n + 1, 42, 1.0f, bv);
    dten a = dt_new(be, BF, 1, (int64_t[]){n + 1}, ab),
         b = dt_new(be, BF, 1, (int64_t[]){n + 1}, bb);
    dten y = dt_new(be, BF, 1, (int64_t[]){n + 1}, NULL);
    sl_tensor va = sl_tensor1(BF, n), vb = sl_tensor1(BF, n), vy = sl_tensor1(BF, n);
    va.data = (char *)a.t.data + 2, vb.data = (char *)b.t.data + 2, vy.data = (char *)y.t.data + 2;
    if (run_status(be, be->vt->binary(be, SL_BINARY_MUL, &vy, &va, &vb)) == SL_OK) {
        CHECK(dt_get(be, &y, out));
        cmp c = {0};
        for (int64_t i = 0; i < n; i++)
            cmp_add(&c, out[i + 1], (double)av[i + 1] * bv[i + 1]);
        cmp_check(&c, 1.6e-2, 6e-3, "binary mul bf16 at +2 bytes");
        CHECK(isnan(out[0])); /* the element before the view stays unwritten */
    }
    if (run_status(be, be->vt->glu(be, SL_UNARY_GELU_TANH, &vy, &va, &vb)) == SL_OK) {
        CHECK(dt_get(be, &y, out));
        cmp c = {0};
        for (int64_t i = 0; i < n; i++) {
            double x = av[i + 1];
            cmp_add(&c, out[i + 1],
                    0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))) *
                        bv[i + 1]);
        }
        cmp_check(&c, 1.6e-2, 6e-3, "glu gelu_tanh bf16 at +2 bytes");
    }
    sl_tensor r1 = sl_tensor2(BF, 7, 143), r2 = sl_tensor2(BF, 7, 143);
    r1.data = va.data, r2.data = vy.data;
    if (run_status(be, be->vt->rms_norm(be, &r2, &r1, NULL, NULL, 1e-6f)) == SL_OK) {
        CHECK(dt_get(be, &y, out));
        cmp c = {0};
        for (int r = 0; r < 7; r++) {
            double ss = 0;
            for (int i = 0; i < 143; i++)
                ss += (double)av[1 + r * 143 + i] * av[1 + r * 143 + i];
            for (int i = 0; i < 143; i++)
                cmp_add(&c, out[1 + r * 143 + i], av[1 + r * 143 + i] / sqrt(ss / 143 + 1e-6));
        }
        cmp_check(&c, 1.6e-2, 6e-3, "rms_norm bf16 [7,143] at +2 bytes");
    }
    dt_free(be, &a), dt_free(be, &b), dt_free(be, &y);
    free(ab), free(bb);
    sl_backend_destroy(be);
}

/* ---- VAE shapes: conv2d and group_norm ---- */

static void conv_case(sl_backend *be, sl_dtype act, sl_dtype wdt, int64_t Cin, int64_t H, int64_t W,
                      int64_t Cout, int kh, int kw, int stride, const int pad[4], const char *tag) {
    const int64_t Ho = (H + pad[0] + pad[1] - kh) / stride + 1,
                  Wo = (W + pad[2] + pad[3] - kw) / stride + 1;
    const int64_t nx = Cin * H * W, nw = Cout * Cin * kh * kw, ny = Cout * Ho * Wo;
    float *xv = malloc(nx * sizeof(float)), *wv = malloc(nw * sizeof(float)),
          *bv = malloc(Cout * sizeof(float)), *out = malloc(ny * sizeof(float));
    void *xb = rand_act(act, nx, 51, 1.0f, xv), *wb = rand_act(wdt, nw, 52, 0.05f, wv);
    void *bb = rand_act(SL_DTYPE_F32, Cout, 53, 0.5f, bv);
    dten x = dt_new(be, act, 3, (int64_t[]){Cin, H, W}, xb);
    dten w = dt_new(be, wdt, 4, (int64_t[]){Cout, Cin, kh, kw}, wb);
    dten b = dt_new(be, SL_DTYPE_F32, 1, (int64_t[]){Cout}, bb);
    dten y = dt_new(be, act, 3, (int64_t[]){Cout, Ho, Wo}, NULL);
    char what[160];
    snprintf(what, sizeof what, "conv2d %s w=%s %lldx%lldx%lld -> %lld k%dx%d s%d %s",
             sl_dtype_name(act), sl_dtype_name(wdt), (long long)Cin, (long long)H, (long long)W,
             (long long)Cout, kh, kw, stride, tag);
    if (run_status(be, be->vt->conv2d(be, &y.t, &x.t, &w.t, &b.t, stride, pad)) == SL_OK) {
        CHECKF(dt_get(be, &y, out), "%s: guards", what);
        int64_t bad = 0;
        for (int64_t i = 0; i < ny; i++)
            bad += !isfinite(out[i]);
        CHECKF(bad == 0, "%s: %lld non-finite", what, (long long)bad);
        cmp c = {0};
        for (int64_t i = 0; i < ny; i += 97) { /* sampled outputs */
            int64_t co = i / (Ho * Wo), oy = (i / Wo) % Ho, ox = i % Wo;
            double s = bv[co];
            for (int64_t ci = 0; ci < Cin; ci++)
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++) {
                        int64_t iy = oy * stride - pad[0] + ky, ix = ox * stride - pad[2] + kx;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                        s += (double)xv[(ci * H + iy) * W + ix] *
                             wv[((co * Cin + ci) * kh + ky) * kw + kx];
                    }
            cmp_add(&c, out[i], s);
        }
        double ta = act == SL_DTYPE_F32 ? 1.5e-2 : tol_abs_of(act),
               tr = act == SL_DTYPE_F32 ? 3e-3 : tol_rel_of(act);
        cmp_check(&c, ta, tr, what);
    }
    dt_free(be, &x), dt_free(be, &w), dt_free(be, &b), dt_free(be, &y);
    free(xv), free(wv), free(bv), free(out), free(xb), free(wb), free(bb);
}

SL_TEST(gpu_conv_vae) {
    setenv("SLUICE_CUDA_SCRATCH_MB", "16", 1); /* several im2col tiles */
    GPU_OR_SKIP(be, NULL, NULL);
    const int p1[4] = {1, 1, 1, 1}, p0[4] = {0, 0, 0, 0}, pd[4] = {0, 1, 0, 1};
    conv_case(be, SL_DTYPE_BF16, SL_DTYPE_BF16, 512, 64, 64, 512, 3, 3, 1, p1, "vae mid");
    conv_case(be, SL_DTYPE_BF16, SL_DTYPE_F32, 512, 96, 80, 256, 1, 1, 1, p0, "1x1 shortcut");
    conv_case(be, SL_DTYPE_F32, SL_DTYPE_BF16, 128, 130, 66, 128, 3, 3, 2, pd,
              "encoder downsample tf32");
    conv_case(be, SL_DTYPE_BF16, SL_DTYPE_BF16, 128, 256, 256, 3, 3, 3, 1, p1, "conv_out");
    conv_case(be, SL_DTYPE_F16, SL_DTYPE_BF16, 16, 128, 128, 512, 3, 3, 1, p1, "conv_in f16");
    sl_backend_destroy(be);
}

SL_TEST(gpu_group_norm_vae) {
    GPU_OR_SKIP(be, NULL, NULL);
    const int64_t C = 128, H = 384, W = 256, n = C * H * W, G = 32;
    float *xv = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float)), wv[128], bv[128];
    void *xb = rand_act(SL_DTYPE_BF16, n, 61, 3.0f, xv);
    for (int64_t i = 0; i < n; i++) { /* a per-channel offset makes the mean matter */
        int64_t c = i / (H * W);
        float v = xv[i] + 5.0f * (float)(c % 7);
        uint16_t h = sl_f32_to_bf16(v);
        memcpy((char *)xb + 2 * i, &h, 2);
        xv[i] = sl_bf16_to_f32(h);
    }
    void *wb = rand_act(SL_DTYPE_F32, C, 62, 1.0f, wv),
         *bb = rand_act(SL_DTYPE_BF16, C, 63, 1.0f, bv);
    dten x = dt_new(be, SL_DTYPE_BF16, 3, (int64_t[]){C, H, W}, xb);
    dten w = dt_new(be, SL_DTYPE_F32, 1, (int64_t[]){C}, wb),
         b = dt_new(be, SL_DTYPE_BF16, 1, (int64_t[]){C}, bb);
    dten y = dt_new(be, SL_DTYPE_BF16, 3, (int64_t[]){C, H, W}, NULL);
    if (run_status(be, be->vt->group_norm(be, &y.t, &x.t, (int)G, &w.t, &b.t, 1e-6f, true)) ==
        SL_OK) {
        CHECK(dt_get(be, &y, out));
        cmp c = {0};
        const int64_t gs = n / G;
        for (int64_t g = 0; g < G; g++) {
            double s = 0, ss = 0;
            for (int64_t i = 0; i < gs; i++)
                s += xv[g * gs + i];
            double mean = s / gs;
            for (int64_t i = 0; i < gs; i++)
                ss += (xv[g * gs + i] - mean) * (xv[g * gs + i] - mean);
            double rs = 1.0 / sqrt(ss / gs + 1e-6);
            for (int64_t i = 0; i < gs; i += 3) {
                int64_t e = g * gs + i, ch = e / (H * W);
                double t = (xv[e] - mean) * rs * wv[ch] + bv[ch];
                cmp_add(&c, out[e], t / (1.0 + exp(-t)));
            }
        }
        cmp_check(&c, 1.6e-2, 6e-3, "group_norm+silu bf16 [128,384,256] 32 groups");
    }
    dt_free(be, &x), dt_free(be, &w), dt_free(be, &b), dt_free(be, &y);
    free(xv), free(out), free(xb), free(wb), free(bb);
    sl_backend_destroy(be);
}

/* ---- mixed dtypes: the f32-tile output paths of matmul and conv, attention with q/k/v of
 * different dtypes (converted to f32, generic path) ---- */

SL_TEST(gpu_mixed_dtypes) {
    GPU_OR_SKIP(be, "f32", NULL);
    const int64_t M = 67, K = 96, N = 130;
    float xv[67 * 96], wv[130 * 96], bv[130], out[67 * 130];
    void *xb = rand_act(SL_DTYPE_F16, M * K, 71, 1.0f, xv);
    void *wb = rand_weights(SL_DTYPE_Q8_0, N, K, 72);
    sl_dequant_row(SL_DTYPE_Q8_0, wb, wv, N * K);
    void *bb = rand_act(SL_DTYPE_BF16, N, 73, 1.0f, bv);
    dten x = dt_new(be, SL_DTYPE_F16, 2, (int64_t[]){M, K}, xb);
    dten w = dt_new(be, SL_DTYPE_Q8_0, 2, (int64_t[]){N, K}, wb);
    dten b = dt_new(be, SL_DTYPE_BF16, 1, (int64_t[]){N}, bb);
    dten y = dt_new(be, SL_DTYPE_BF16, 2, (int64_t[]){M, N}, NULL);
    if (run_status(be, be->vt->matmul(be, &y.t, &x.t, &w.t, &b.t)) == SL_OK) {
        CHECK(dt_get(be, &y, out));
        cmp c = {0};
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double s = bv[n];
                for (int64_t k = 0; k < K; k++)
                    s += (double)xv[m * K + k] * wv[n * K + k];
                cmp_add(&c, out[m * N + n], s);
            }
        cmp_check(&c, 1.6e-2, 6e-3, "matmul x=f16 w=q8_0 y=bf16 +b(bf16)");
    }
    dt_free(be, &y);
    /* x f32 (exact f32 GEMM in this backend), y bf16 */
    float xf[67 * 96];
    void *xfb = rand_act(SL_DTYPE_F32, M * K, 74, 1.0f, xf);
    dten x32 = dt_new(be, SL_DTYPE_F32, 2, (int64_t[]){M, K}, xfb);
    y = dt_new(be, SL_DTYPE_BF16, 2, (int64_t[]){M, N}, NULL);
    if (run_status(be, be->vt->matmul(be, &y.t, &x32.t, &w.t, NULL)) == SL_OK) {
        CHECK(dt_get(be, &y, out));
        cmp c = {0};
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (double)xf[m * K + k] * wv[n * K + k];
                cmp_add(&c, out[m * N + n], s);
            }
        cmp_check(&c, 1.6e-2, 6e-3, "matmul x=f32 w=q8_0 y=bf16");
    }
    /* conv x f32 -> y bf16 */
    const int64_t Cin = 8, H = 13, W = 11, Co = 5;
    float cx[8 * 13 * 11], cw[5 * 8 * 9], cb[5], co[5 * 13 * 11];
    void *cxb = rand_act(SL_DTYPE_F32, Cin * H * W, 75, 1.0f, cx);
    void *cwb = rand_act(SL_DTYPE_F16, Co * Cin * 9, 76, 0.2f, cw);
    void *cbb = rand_act(SL_DTYPE_F32, Co, 77, 1.0f, cb);
    dten X = dt_new(be, SL_DTYPE_F32, 3, (int64_t[]){Cin, H, W}, cxb);
    dten Wt = dt_new(be, SL_DTYPE_F16, 4, (int64_t[]){Co, Cin, 3, 3}, cwb);
    dten B = dt_new(be, SL_DTYPE_F32, 1, (int64_t[]){Co}, cbb);
    dten Y = dt_new(be, SL_DTYPE_BF16, 3, (int64_t[]){Co, H, W}, NULL);
    const int pad[4] = {1, 1, 1, 1};
    if (run_status(be, be->vt->conv2d(be, &Y.t, &X.t, &Wt.t, &B.t, 1, pad)) == SL_OK) {
        CHECK(dt_get(be, &Y, co));
        cmp c = {0};
        for (int64_t o = 0; o < Co; o++)
            for (int64_t i = 0; i < H; i++)
                for (int64_t j = 0; j < W; j++) {
                    double s = cb[o];
                    for (int64_t ci = 0; ci < Cin; ci++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                int64_t iy = i - 1 + ky, ix = j - 1 + kx;
                                if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                                    s += (double)cx[(ci * H + iy) * W + ix] *
                                         cw[((o * Cin + ci) * 3 + ky) * 3 + kx];
                            }
                    cmp_add(&c, co[(o * H + i) * W + j], s);
                }
        cmp_check(&c, 1.6e-2, 6e-3, "conv2d x=f32 w=f16 y=bf16");
    }
    /* attention: q bf16, k f32, v f16 -> o f32 */
    const int64_t S = 45, Hh = 2, Dh = 24, n = S * Hh * Dh;
    float *qv = malloc(n * 4), *kv = malloc(n * 4), *vv = malloc(n * 4), *ov = malloc(n * 4);
    void *qb = rand_act(SL_DTYPE_BF16, n, 78, 1.0f, qv),
         *kb = rand_act(SL_DTYPE_F32, n, 79, 1.0f, kv),
         *vb = rand_act(SL_DTYPE_F16, n, 80, 1.0f, vv);
    dten q = dt_new(be, SL_DTYPE_BF16, 3, (int64_t[]){S, Hh, Dh}, qb);
    dten k = dt_new(be, SL_DTYPE_F32, 3, (int64_t[]){S, Hh, Dh}, kb);
    dten v = dt_new(be, SL_DTYPE_F16, 3, (int64_t[]){S, Hh, Dh}, vb);
    dten o = dt_new(be, SL_DTYPE_F32, 3, (int64_t[]){S, Hh, Dh}, NULL);
    if (run_status(be, be->vt->attention(be, &o.t, &q.t, &k.t, &v.t, 0.2f, true)) == SL_OK) {
        CHECK(dt_get(be, &o, ov));
        cmp c = {0};
        double ref[24];
        for (int64_t i = 0; i < S; i++)
            for (int64_t h = 0; h < Hh; h++) {
                attn_ref(qv, kv, vv, S, S, Hh, Hh, Dh, 0, i, h, 0.2, true, ref);
                for (int64_t e = 0; e < Dh; e++)
                    cmp_add(&c, ov[(i * Hh + h) * Dh + e], ref[e]);
            }
        cmp_check(&c, 5e-5, 1e-5, "attention q=bf16 k=f32 v=f16 o=f32 causal");
    }
    dt_free(be, &x), dt_free(be, &w), dt_free(be, &b), dt_free(be, &y), dt_free(be, &x32);
    dt_free(be, &X), dt_free(be, &Wt), dt_free(be, &B), dt_free(be, &Y);
    dt_free(be, &q), dt_free(be, &k), dt_free(be, &v), dt_free(be, &o);
    free(xb), free(wb), free(bb), free(xfb), free(cxb), free(cwb), free(cbb);
    free(qv), free(kv), free(vv), free(ov), free(qb), free(kb), free(vb);
    sl_backend_destroy(be);
}
