/* bench/kernels/lab.c — the CUDA kernel lab (STYLE §8): validates, then times, the backend's
 * heavy kernels at Z-Image and VAE shapes, against the card's peaks measured in the same run.
 *
 *   build-gpu/kernel-lab [results.tsv]
 *
 * Peaks: a bf16 8192³ GEMM through the backend's matmul (cuBLASLt) and a 1 GiB device copy
 * (bytes read + written). Each case: inputs drawn at random on the host (never zeros), one run
 * checked against a reference (the CPU backend on the same inputs for memory-bound ops; a double
 * reference on sampled rows for GEMM, attention and convolution), then timed with CUDA events
 * (3 warm-up runs, the median of many; memory-bound cases rotate over 3 input/output sets so the
 * 50 MB L2 does not serve repeats). Prints a table; with a path argument also writes it as TSV
 * (op, shape, ms, rate, unit, % of peak, check) for bench/ops_vs_torch.py.
 *
 * Attention runs once per path (SLUICE_CUDA_ATTN=cudnn, cudnn-composite, 4, 8, generic) on separate
 * backend instances sharing the device memory; a path that does not run (cuDNN absent or refusing
 * the shape) prints why. The row ops run the shipped kernels and, marked [v1], the two-pass
 * kernels they replace (SLUICE_CUDA_ROWS=v1), on the same inputs against the same reference. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/quant.h"
#include "core/rng.h"

static sl_backend *g_be, *g_cpu;
static sl_backend
    *g_v1; /* SLUICE_CUDA_ROWS=v1: the two-pass row kernels, for a [v1] row beside each row op */
static FILE *g_tsv;
static double g_peak_tflops = 0, g_peak_gbs = 0;

static void fail(sl_backend *be, const char *what) {
    fprintf(stderr, "lab: %s failed: %s\n", what, be ? be->last_error : "");
    exit(1);
}

static void *dalloc(size_t n) {
    void *p = NULL;
    sl_err e = {0};
    if (g_be->vt->alloc(g_be, n ? n : 1, &p, &e) != SL_OK) {
        fprintf(stderr, "lab: %s\n", e.msg);
        exit(1);
    }
    return p;
}

/* A device tensor with random contents (normal × scale, or quantised normal weights); the
 * host bytes and the exact decoded values are kept when asked for. */
typedef struct lt {
    sl_tensor d; /* device */
    void *bytes; /* host encoding (NULL when not kept) */
    float *vals; /* decoded values (NULL when not kept) */
} lt;

static lt mk(sl_dtype dt, int nd, const int64_t *ne, uint64_t seed, float scale, bool keep) {
    lt t = {0};
    t.d = sl_tensor_make(dt, nd, ne);
    int64_t n = sl_tensor_numel(&t.d);
    size_t nb = sl_tensor_nbytes(&t.d);
    float *v = malloc((size_t)n * sizeof(float) + 4);
    sl_rng_normal(seed, 3, 0, v, n);
    for (int64_t i = 0; i < n; i++)
        v[i] *= scale;
    void *b = malloc(nb + 4);
    sl_quant_row(dt, v, b, n); /* rows of block types are whole blocks: one long row is the same */
    t.d.data = dalloc(nb);
    if (g_be->vt->upload(g_be, SL_QUEUE_COMPUTE, t.d.data, b, nb) != SL_OK) fail(g_be, "upload");
    if (keep) {
        sl_dequant_row(dt, b, v, n);
        t.bytes = b;
        t.vals = v;
    } else {
        free(b);
        free(v);
    }
    return t;
}

static sl_tensor mk_out(sl_dtype dt, int nd, const int64_t *ne) {
    sl_tensor t = sl_tensor_make(dt, nd, ne);
    t.data = dalloc(sl_tensor_nbytes(&t));
    return t;
}

static float *fetch(const sl_tensor *t) {
    int64_t n = sl_tensor_numel(t);
    size_t nb = sl_tensor_nbytes(t);
    void *h = malloc(nb);
    float *v = malloc((size_t)n * sizeof(float));
    if (g_be->vt->download(g_be, h, t->data, nb) != SL_OK) fail(g_be, "download");
    sl_dequant_row(t->dtype, h, v, n);
    free(h);
    return v;
}

/* ---- comparison ---- */

typedef struct cmpr {
    double d2, r2, max_abs, ref_max;
    int64_t bad, n;
} cmpr;
static void cadd(cmpr *c, double o, double r) {
    c->n++;
    if (!isfinite(o)) {
        c->bad++;
        return;
    }
    double d = fabs(o - r);
    c->max_abs = d > c->max_abs ? d : c->max_abs;
    c->ref_max = fabs(r) > c->ref_max ? fabs(r) : c->ref_max;
    c->d2 += d * d;
    c->r2 += r * r;
}
/* "ok 3.1e-03" or "BAD 2.0e-01" into buf (bf16 bounds: rel_l2 6e-3, max_abs 1.6e-2·max|ref|) */
static const char *cverdict(const cmpr *c, char *buf, size_t n) {
    double rel = c->r2 > 0 ? sqrt(c->d2 / c->r2) : sqrt(c->d2);
    bool ok = c->bad == 0 && c->n > 0 && rel <= 6e-3 && c->max_abs <= 1.6e-2 * fmax(1, c->ref_max);
    snprintf(buf, n, "%s %.1e", ok ? "ok" : "BAD", rel);
    return buf;
}

/* ---- timing ---- */

typedef sl_status (*run_fn)(sl_backend *be, void *arg, int rep);

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double time_ms(sl_backend *be, run_fn f, void *a, int reps) {
    sl_event *e0, *e1;
    if (be->vt->event_create(be, &e0) || be->vt->event_create(be, &e1)) fail(be, "event");
    for (int i = 0; i < 3; i++)
        if (f(be, a, i) != SL_OK) fail(be, "warm-up");
    if (be->vt->sync(be) != SL_OK) fail(be, "sync");
    double t[256];
    if (reps > 256) reps = 256;
    for (int r = 0; r < reps; r++) {
        float ms = 0;
        if (be->vt->event_record(be, e0, SL_QUEUE_COMPUTE) || f(be, a, r) ||
            be->vt->event_record(be, e1, SL_QUEUE_COMPUTE) || be->vt->event_sync(be, e1) ||
            be->vt->event_elapsed(be, e0, e1, &ms))
            fail(be, "timed run");
        t[r] = ms;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_d);
    be->vt->event_destroy(be, e0);
    be->vt->event_destroy(be, e1);
    return t[reps / 2];
}

static void report(const char *op, const char *shape, double ms, double flop, double bytes,
                   const char *check) {
    double rate, pct;
    const char *unit;
    if (flop > 0) {
        rate = flop / ms / 1e9;
        unit = "TFLOP/s";
        pct = g_peak_tflops > 0 ? 100 * rate / g_peak_tflops : 0;
    } else {
        rate = bytes / ms / 1e6;
        unit = "GB/s";
        pct = g_peak_gbs > 0 ? 100 * rate / g_peak_gbs : 0;
    }
    printf("%-26s %-30s %9.4f ms %9.1f %-7s %6.1f%%  %s\n", op, shape, ms, rate, unit, pct, check);
    fflush(stdout);
    if (g_tsv) {
        fprintf(g_tsv, "%s\t%s\t%.5f\t%.2f\t%s\t%.1f\t%s\n", op, shape, ms, rate, unit, pct, check);
        fflush(g_tsv);
    }
}

/* ---- peaks ---- */

typedef struct mm_arg {
    sl_tensor *y, *x, *w, *b;
} mm_arg;
static sl_status run_mm(sl_backend *be, void *a, int rep) {
    (void)rep;
    mm_arg *m = a;
    return be->vt->matmul(be, m->y, m->x, m->w, m->b);
}

typedef struct cp_arg {
    void *dst, *src;
    size_t n;
} cp_arg;
static sl_status run_cp(sl_backend *be, void *a, int rep) {
    (void)rep;
    cp_arg *c = a;
    return be->vt->copy_d2d(be, c->dst, c->src, c->n);
}

static void peaks(void) {
    const int64_t n = 8192;
    lt x = mk(SL_DTYPE_BF16, 2, (int64_t[]){n, n}, 1, 1.0f, false);
    lt w = mk(SL_DTYPE_BF16, 2, (int64_t[]){n, n}, 2, 0.02f, false);
    sl_tensor y = mk_out(SL_DTYPE_BF16, 2, (int64_t[]){n, n});
    mm_arg m = {&y, &x.d, &w.d, NULL};
    double ms = time_ms(g_be, run_mm, &m, 20);
    g_peak_tflops = 2.0 * n * n * n / ms / 1e9;
    report("peak gemm bf16", "8192^3 (cuBLASLt)", ms, 2.0 * n * n * n, 0, "-");
    g_be->vt->free(g_be, x.d.data);
    g_be->vt->free(g_be, w.d.data);
    g_be->vt->free(g_be, y.data);
    const size_t bytes = (size_t)1 << 30;
    cp_arg c = {dalloc(bytes), dalloc(bytes), bytes};
    /* contents matter little for a copy, but never time untouched memory */
    sl_tensor src = sl_tensor1(SL_DTYPE_F32, (int64_t)(bytes / 4));
    src.data = c.src;
    if (g_be->vt->fill(g_be, &src, 1.5f) != SL_OK) fail(g_be, "fill");
    ms = time_ms(g_be, run_cp, &c, 20);
    g_peak_gbs = 2.0 * bytes / ms / 1e6;
    report("peak copy", "1 GiB d2d (read+write)", ms, 0, 2.0 * bytes, "-");
    g_be->vt->free(g_be, c.dst);
    g_be->vt->free(g_be, c.src);
}

/* ---- matmul at the FFN shapes, every weight path ---- */

static void matmul_case(int64_t M, int64_t K, int64_t N, sl_dtype wdt, const char *name) {
    lt x = mk(SL_DTYPE_BF16, 2, (int64_t[]){M, K}, 10, 1.0f, true);
    lt w = mk(wdt, 2, (int64_t[]){N, K}, 11, 0.02f, true);
    sl_tensor y = mk_out(SL_DTYPE_BF16, 2, (int64_t[]){M, N});
    mm_arg m = {&y, &x.d, &w.d, NULL};
    char chk[32] = "-", shape[64], op[64];
    if (run_mm(g_be, &m, 0) != SL_OK) fail(g_be, name);
    float *out = fetch(&y);
    cmpr c = {0};
    const int64_t rows[] = {0, M / 2, M - 1};
    for (int ri = 0; ri < 3; ri++)
        for (int64_t nn = 0; nn < N; nn++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++)
                s += (double)x.vals[rows[ri] * K + k] * w.vals[nn * K + k];
            cadd(&c, out[rows[ri] * N + nn], s);
        }
    cverdict(&c, chk, sizeof chk);
    double ms = time_ms(g_be, run_mm, &m, 20);
    snprintf(shape, sizeof shape, "%lldx%lldx%lld", (long long)M, (long long)K, (long long)N);
    snprintf(op, sizeof op, "matmul %s w=%s", name, sl_dtype_name(wdt));
    report(op, shape, ms, 2.0 * M * N * K, 0, chk);
    free(out);
    g_be->vt->free(g_be, x.d.data), g_be->vt->free(g_be, w.d.data), g_be->vt->free(g_be, y.data);
    free(x.bytes), free(x.vals), free(w.bytes), free(w.vals);
}

typedef struct copy_arg {
    sl_tensor *y, *x;
} copy_arg;
static sl_status run_copy(sl_backend *be, void *a, int rep) {
    (void)rep;
    copy_arg *c = a;
    return be->vt->copy(be, c->y, c->x);
}

static void dequant_case(sl_dtype wdt, int64_t N, int64_t K) {
    lt w = mk(wdt, 2, (int64_t[]){N, K}, 12, 0.02f, true);
    sl_tensor y = mk_out(SL_DTYPE_BF16, 2, (int64_t[]){N, K});
    copy_arg a = {&y, &w.d};
    if (run_copy(g_be, &a, 0) != SL_OK) fail(g_be, "dequant");
    float *out = fetch(&y);
    int64_t diff = 0;
    for (int64_t i = 0; i < N * K; i++)
        if (sl_f32_to_bf16(w.vals[i]) != sl_f32_to_bf16(out[i]) &&
            !(isnan(w.vals[i]) && isnan(out[i])))
            diff++;
    char chk[32], op[48], shape[48];
    snprintf(chk, sizeof chk, diff ? "BAD %lld" : "ok exact", (long long)diff);
    double ms = time_ms(g_be, run_copy, &a, 30);
    snprintf(op, sizeof op, "dequant %s->bf16", sl_dtype_name(wdt));
    snprintf(shape, sizeof shape, "%lldx%lld", (long long)N, (long long)K);
    report(op, shape, ms, 0, (double)sl_tensor_nbytes(&w.d) + (double)sl_tensor_nbytes(&y), chk);
    free(out);
    g_be->vt->free(g_be, w.d.data), g_be->vt->free(g_be, y.data);
    free(w.bytes), free(w.vals);
}

/* ---- attention ---- */

typedef struct at_arg {
    sl_tensor *o, *q, *k, *v;
    float scale;
    bool causal;
} at_arg;
static sl_status run_at(sl_backend *be, void *a, int rep) {
    (void)rep;
    at_arg *t = a;
    return be->vt->attention(be, t->o, t->q, t->k, t->v, t->scale, t->causal);
}

static sl_backend *backend_with(const char *attn) {
    setenv("SLUICE_CUDA_ATTN", attn, 1);
    sl_backend *be = NULL;
    sl_err e = {0};
    if (sl_backend_cuda_create(0, &be, &e) != SL_OK) {
        fprintf(stderr, "lab: %s\n", e.msg);
        exit(1);
    }
    unsetenv("SLUICE_CUDA_ATTN");
    return be;
}

static void attention_case(int64_t S, int64_t H, int64_t Dh, bool causal, const char *variants) {
    const int64_t ne[4] = {1, S, H, Dh};
    lt q = mk(SL_DTYPE_BF16, 4, ne, 20, 1.0f, true), k = mk(SL_DTYPE_BF16, 4, ne, 21, 1.0f, true),
       v = mk(SL_DTYPE_BF16, 4, ne, 22, 1.0f, true);
    sl_tensor o = mk_out(SL_DTYPE_BF16, 4, ne);
    at_arg a = {&o, &q.d, &k.d, &v.d, (float)(1.0 / sqrt((double)Dh)), causal};
    const double flop = 4.0 * S * S * H * Dh * (causal ? 0.5 : 1.0);
    char vs[64];
    snprintf(vs, sizeof vs, "%s", variants);
    char op[64], shape[64];
    snprintf(shape, sizeof shape, "S%lld H%lld Dh%lld", (long long)S, (long long)H, (long long)Dh);
    for (char *tok = strtok(vs, ","); tok; tok = strtok(NULL, ",")) {
        sl_backend *be = backend_with(tok);
        snprintf(op, sizeof op, "attention%s [%s]", causal ? " causal" : "", tok);
        if (run_at(be, &a, 0) != SL_OK) { /* e.g. cuDNN absent or refusing the shape */
            printf("%-26s %-30s  not run: %.200s\n", op, shape, be->last_error);
            sl_backend_destroy(be);
            continue;
        }
        if (be->vt->sync(be) != SL_OK) fail(be, "attention sync");
        float *out = fetch(&o);
        cmpr c = {0};
        double *s = malloc((size_t)S * sizeof(double)), acc[512];
        for (int smp = 0; smp < 48; smp++) {
            int64_t i = smp == 47 ? S - 1 : (smp * 7919) % S, h = (smp * 13) % H;
            double mx = -INFINITY, sum = 0;
            for (int64_t j = 0; j < S; j++) {
                double d = 0;
                for (int64_t e = 0; e < Dh; e++)
                    d += (double)q.vals[(i * H + h) * Dh + e] * k.vals[(j * H + h) * Dh + e];
                s[j] = (causal && j > i) ? -INFINITY : d * a.scale;
                mx = s[j] > mx ? s[j] : mx;
            }
            for (int64_t j = 0; j < S; j++)
                sum += (s[j] = exp(s[j] - mx));
            for (int64_t e = 0; e < Dh; e++)
                acc[e] = 0;
            for (int64_t j = 0; j < S; j++)
                for (int64_t e = 0; e < Dh; e++)
                    acc[e] += s[j] / sum * v.vals[(j * H + h) * Dh + e];
            for (int64_t e = 0; e < Dh; e++)
                cadd(&c, out[(i * H + h) * Dh + e], acc[e]);
        }
        free(s);
        free(out);
        char chk[32];
        cverdict(&c, chk, sizeof chk);
        double ms = time_ms(be, run_at, &a, 20);
        report(op, shape, ms, flop, 0, chk);
        sl_backend_destroy(be);
    }
    g_be->vt->free(g_be, q.d.data), g_be->vt->free(g_be, k.d.data), g_be->vt->free(g_be, v.d.data);
    g_be->vt->free(g_be, o.data);
    free(q.bytes), free(q.vals), free(k.bytes), free(k.vals), free(v.bytes), free(v.vals);
}

/* ---- memory-bound ops: three rotating sets, checked against the CPU backend ---- */

enum { K_RMS, K_GATED, K_LN, K_GLU, K_ADD, K_ROPE, K_CVT, K_GN, K_SOFTMAX };
#define NSET 3

typedef struct mb_case {
    int kind;
    int nin;
    lt in[NSET][4]; /* per set: inputs (in[s][0] is the read-write x of gated_add) */
    sl_tensor out[NSET];
    lt vec[3]; /* shared small vectors / tables */
    int groups;
    bool v1; /* also run and time the two-pass kernel (g_v1) */
} mb_case;

/* Run the case's op on be with the given tensors (device or host ones). */
static sl_status mb_op(sl_backend *be, const mb_case *c, sl_tensor *in, sl_tensor *out,
                       sl_tensor *vec) {
    switch (c->kind) {
    case K_RMS:
        return be->vt->rms_norm(be, out, &in[0], &vec[0], &vec[1], 1e-5f);
    case K_GATED:
        return be->vt->gated_add(be, &in[0], &in[1], &vec[0], &vec[1], 1e-5f);
    case K_LN:
        return be->vt->layer_norm(be, out, &in[0], NULL, NULL, &vec[0], NULL, 1e-6f);
    case K_GLU:
        return be->vt->glu(be, SL_UNARY_SILU, out, &in[0], &in[1]);
    case K_ADD:
        return be->vt->binary(be, SL_BINARY_ADD, out, &in[0], &in[1]);
    case K_ROPE:
        return be->vt->rope(be, out, &in[0], &vec[0], 1e-5f, &vec[1], SL_ROPE_INTERLEAVED);
    case K_CVT:
        return be->vt->copy(be, out, &in[0]);
    case K_GN:
        return be->vt->group_norm(be, out, &in[0], c->groups, &vec[0], &vec[1], 1e-6f, true);
    default:
        return be->vt->softmax(be, out, &in[0]);
    }
}

static sl_status run_mb(sl_backend *be, void *a, int rep) {
    mb_case *c = a;
    int s = rep % NSET;
    sl_tensor in[4], vec[3];
    for (int i = 0; i < c->nin; i++)
        in[i] = c->in[s][i].d;
    for (int i = 0; i < 3; i++)
        vec[i] = c->vec[i].d;
    return mb_op(be, c, in, &c->out[s], vec);
}

static void mb_run(mb_case *c, const char *op, const char *shape, double bytes) {
    /* reference: the CPU backend on set 0's host bytes (before the GPU touches gated_add's x) */
    sl_tensor hin[4], hvec[3], hout;
    void *hbuf[4] = {0};
    for (int i = 0; i < c->nin; i++) {
        hin[i] = c->in[0][i].d;
        size_t nb = sl_tensor_nbytes(&hin[i]);
        hbuf[i] = malloc(nb);
        memcpy(hbuf[i], c->in[0][i].bytes, nb);
        hin[i].data = hbuf[i];
    }
    for (int i = 0; i < 3; i++) {
        hvec[i] = c->vec[i].d;
        hvec[i].data = c->vec[i].bytes;
    }
    const bool inplace = c->kind == K_GATED;
    hout = inplace ? hin[0] : c->out[0];
    void *ho = inplace ? NULL : malloc(sl_tensor_nbytes(&hout));
    if (!inplace) hout.data = ho;
    if (mb_op(g_cpu, c, hin, &hout, hvec) != SL_OK) fail(g_cpu, op);
    if (run_mb(g_be, c, 0) != SL_OK) fail(g_be, op);
    const sl_tensor *gout = inplace ? &c->in[0][0].d : &c->out[0];
    float *gv = fetch(gout);
    int64_t n = sl_tensor_numel(gout);
    float *cv = malloc((size_t)n * sizeof(float));
    sl_dequant_row(hout.dtype, hout.data, cv, n);
    cmpr cm = {0};
    for (int64_t i = 0; i < n; i++)
        cadd(&cm, gv[i], cv[i]);
    char chk[32];
    cverdict(&cm, chk, sizeof chk);
    double ms = time_ms(g_be, run_mb, c, 60);
    report(op, shape, ms, 0, bytes, chk);
    if (c->v1) { /* the two-pass kernel on the same sets, checked against the same reference */
        if (g_be->vt->sync(g_be) != SL_OK) fail(g_be, "sync");
        if (inplace) /* gated_add's residual was updated by the timed runs: restore set 0 */
            if (g_be->vt->upload(g_be, SL_QUEUE_COMPUTE, c->in[0][0].d.data, c->in[0][0].bytes,
                                 sl_tensor_nbytes(gout)) != SL_OK ||
                g_be->vt->sync(g_be) != SL_OK)
                fail(g_be, "restore");
        if (run_mb(g_v1, c, 0) != SL_OK) fail(g_v1, op);
        if (g_v1->vt->sync(g_v1) != SL_OK) fail(g_v1, "sync");
        float *g2 = fetch(gout);
        cmpr c2 = {0};
        for (int64_t i = 0; i < n; i++)
            cadd(&c2, g2[i], cv[i]);
        char chk2[32], op2[64];
        cverdict(&c2, chk2, sizeof chk2);
        snprintf(op2, sizeof op2, "%s [v1]", op);
        report(op2, shape, time_ms(g_v1, run_mb, c, 60), 0, bytes, chk2);
        free(g2);
    }
    free(gv), free(cv), free(ho);
    for (int i = 0; i < c->nin; i++)
        free(hbuf[i]);
}

static void mb_free(mb_case *c) {
    for (int s = 0; s < NSET; s++) {
        for (int i = 0; i < c->nin; i++) {
            g_be->vt->free(g_be, c->in[s][i].d.data);
            free(c->in[s][i].bytes), free(c->in[s][i].vals);
        }
        if (c->out[s].data) g_be->vt->free(g_be, c->out[s].data);
    }
    for (int i = 0; i < 3; i++) {
        if (c->vec[i].d.data) g_be->vt->free(g_be, c->vec[i].d.data);
        free(c->vec[i].bytes), free(c->vec[i].vals);
    }
}

static void mb_cases(void) {
    const int64_t T = 4352, D = 3840, F = 10240, H = 30, Dh = 128;
    const sl_dtype BF = SL_DTYPE_BF16;
    const double nTD = (double)T * D;
    {
        mb_case c = {.kind = K_RMS, .nin = 1, .v1 = true};
        for (int s = 0; s < NSET; s++) {
            c.in[s][0] = mk(BF, 2, (int64_t[]){T, D}, 100 + s, 2.0f, true);
            c.out[s] = mk_out(BF, 2, (int64_t[]){T, D});
        }
        c.vec[0] = mk(BF, 1, (int64_t[]){D}, 110, 1.0f, true);
        c.vec[1] = mk(BF, 1, (int64_t[]){D}, 111, 1.0f, true);
        mb_run(&c, "rms_norm+mod", "4352x3840 bf16", 2 * nTD * 2);
        mb_free(&c);
    }
    {
        mb_case c = {.kind = K_GATED, .nin = 2, .v1 = true};
        for (int s = 0; s < NSET; s++) {
            c.in[s][0] = mk(BF, 2, (int64_t[]){T, D}, 120 + s, 2.0f, true);
            c.in[s][1] = mk(BF, 2, (int64_t[]){T, D}, 130 + s, 1.0f, true);
        }
        c.vec[0] = mk(BF, 1, (int64_t[]){D}, 140, 1.0f, true);
        c.vec[1] = mk(BF, 1, (int64_t[]){D}, 141, 0.3f, true);
        mb_run(&c, "gated_add (rms, gate)", "4352x3840 bf16", 3 * nTD * 2);
        mb_free(&c);
    }
    {
        mb_case c = {.kind = K_LN, .nin = 1, .v1 = true};
        for (int s = 0; s < NSET; s++) {
            c.in[s][0] = mk(BF, 2, (int64_t[]){T, D}, 150 + s, 2.0f, true);
            c.out[s] = mk_out(BF, 2, (int64_t[]){T, D});
        }
        c.vec[0] = mk(BF, 1, (int64_t[]){D}, 160, 1.0f, true);
        mb_run(&c, "layer_norm*scale", "4352x3840 bf16", 2 * nTD * 2);
        mb_free(&c);
    }
    {
        mb_case c = {.kind = K_GLU, .nin = 2, .v1 = false};
        for (int s = 0; s < NSET; s++) {
            c.in[s][0] = mk(BF, 2, (int64_t[]){T, F}, 170 + s, 2.0f, true);
            c.in[s][1] = mk(BF, 2, (int64_t[]){T, F}, 180 + s, 1.0f, true);
            c.out[s] = mk_out(BF, 2, (int64_t[]){T, F});
        }
        mb_run(&c, "glu silu", "4352x10240 bf16", 3.0 * T * F * 2);
        mb_free(&c);
    }
    {
        mb_case c = {.kind = K_ADD, .nin = 2, .v1 = false};
        for (int s = 0; s < NSET; s++) {
            c.in[s][0] = mk(BF, 2, (int64_t[]){T, D}, 190 + s, 1.0f, true);
            c.in[s][1] = mk(BF, 2, (int64_t[]){T, D}, 200 + s, 1.0f, true);
            c.out[s] = mk_out(BF, 2, (int64_t[]){T, D});
        }
        mb_run(&c, "add", "4352x3840 bf16", 3 * nTD * 2);
        mb_free(&c);
    }
    {
        mb_case c = {.kind = K_ROPE, .nin = 1, .v1 = true};
        for (int s = 0; s < NSET; s++) {
            c.in[s][0] = mk(BF, 3, (int64_t[]){T, H, Dh}, 210 + s, 1.0f, true);
            c.out[s] = mk_out(BF, 3, (int64_t[]){T, H, Dh});
        }
        c.vec[0] = mk(BF, 1, (int64_t[]){Dh}, 220, 1.0f, true);
        c.vec[1] = mk(SL_DTYPE_F32, 3, (int64_t[]){T, Dh / 2, 2}, 221, 0.7f, true);
        mb_run(&c, "rope+qk_norm", "4352x30x128 bf16", 2 * nTD * 2 + (double)T * Dh * 4);
        mb_free(&c);
    }
    {
        mb_case c = {.kind = K_CVT, .nin = 1, .v1 = false};
        for (int s = 0; s < NSET; s++) {
            c.in[s][0] = mk(BF, 2, (int64_t[]){T, D}, 230 + s, 1.0f, true);
            c.out[s] = mk_out(SL_DTYPE_F32, 2, (int64_t[]){T, D});
        }
        mb_run(&c, "copy bf16->f32", "4352x3840", nTD * 6);
        mb_free(&c);
    }
    {
        mb_case c = {.kind = K_SOFTMAX, .nin = 1, .v1 = false};
        for (int s = 0; s < NSET; s++) {
            c.in[s][0] = mk(BF, 2, (int64_t[]){4096, 4096}, 240 + s, 3.0f, true);
            c.out[s] = mk_out(BF, 2, (int64_t[]){4096, 4096});
        }
        mb_run(&c, "softmax", "4096x4096 bf16", 4096.0 * 4096 * 4);
        mb_free(&c);
    }
    const int64_t gshapes[2][3] = {{512, 128, 128}, {128, 512, 512}};
    for (int gi = 0; gi < 2; gi++) {
        const int64_t C = gshapes[gi][0], Hh = gshapes[gi][1], W = gshapes[gi][2];
        mb_case c = {.kind = K_GN, .nin = 1, .v1 = false};
        c.groups = 32;
        for (int s = 0; s < NSET; s++) {
            c.in[s][0] = mk(BF, 3, (int64_t[]){C, Hh, W}, 250 + s, 2.0f, true);
            c.out[s] = mk_out(BF, 3, (int64_t[]){C, Hh, W});
        }
        c.vec[0] = mk(BF, 1, (int64_t[]){C}, 260, 1.0f, true);
        c.vec[1] = mk(BF, 1, (int64_t[]){C}, 261, 1.0f, true);
        char shape[48];
        snprintf(shape, sizeof shape, "%lldx%lldx%lld bf16", (long long)C, (long long)Hh,
                 (long long)W);
        mb_run(&c, "group_norm+silu", shape, (double)C * Hh * W * 2 * 2);
        mb_free(&c);
    }
}

/* ---- conv2d (VAE decoder shapes) ---- */

typedef struct cv_arg {
    sl_tensor *y, *x, *w, *b;
    int pad[4];
} cv_arg;
static sl_status run_cv(sl_backend *be, void *a, int rep) {
    (void)rep;
    cv_arg *c = a;
    return be->vt->conv2d(be, c->y, c->x, c->w, c->b, 1, c->pad);
}

static void conv_case(int64_t Cin, int64_t Hh, int64_t W, int64_t Cout, int k, int reps) {
    lt x = mk(SL_DTYPE_BF16, 3, (int64_t[]){Cin, Hh, W}, 300, 1.0f, true);
    lt w = mk(SL_DTYPE_BF16, 4, (int64_t[]){Cout, Cin, k, k}, 301, 0.05f, true);
    lt b = mk(SL_DTYPE_BF16, 1, (int64_t[]){Cout}, 302, 0.5f, true);
    sl_tensor y = mk_out(SL_DTYPE_BF16, 3, (int64_t[]){Cout, Hh, W});
    const int p = k / 2;
    cv_arg a = {&y, &x.d, &w.d, &b.d, {p, p, p, p}};
    if (run_cv(g_be, &a, 0) != SL_OK) fail(g_be, "conv2d");
    float *out = fetch(&y);
    cmpr c = {0};
    const int64_t ny = Cout * Hh * W;
    for (int64_t i = 0; i < ny; i += ny / 2000 + 1) {
        int64_t co = i / (Hh * W), oy = (i / W) % Hh, ox = i % W;
        double s = b.vals[co];
        for (int64_t ci = 0; ci < Cin; ci++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) {
                    int64_t iy = oy - p + ky, ix = ox - p + kx;
                    if (iy >= 0 && iy < Hh && ix >= 0 && ix < W)
                        s += (double)x.vals[(ci * Hh + iy) * W + ix] *
                             w.vals[((co * Cin + ci) * k + ky) * k + kx];
                }
        cadd(&c, out[i], s);
    }
    char chk[32], op[48], shape[64];
    cverdict(&c, chk, sizeof chk);
    double ms = time_ms(g_be, run_cv, &a, reps);
    snprintf(op, sizeof op, "conv2d %dx%d", k, k);
    snprintf(shape, sizeof shape, "%lld->%lld @%lldx%lld bf16", (long long)Cin, (long long)Cout,
             (long long)Hh, (long long)W);
    report(op, shape, ms, 2.0 * Cout * Cin * k * k * Hh * W, 0, chk);
    free(out);
    g_be->vt->free(g_be, x.d.data), g_be->vt->free(g_be, w.d.data), g_be->vt->free(g_be, b.d.data);
    g_be->vt->free(g_be, y.data);
    free(x.bytes), free(x.vals), free(w.bytes), free(w.vals), free(b.bytes), free(b.vals);
}

int main(int argc, char **argv) {
    sl_err e = {0};
    if (sl_backend_cuda_create(0, &g_be, &e) != SL_OK) {
        fprintf(stderr, "lab: %s\n", e.msg);
        return 2;
    }
    setenv("SLUICE_CUDA_ROWS", "v1", 1);
    if (sl_backend_cuda_create(0, &g_v1, &e) != SL_OK) {
        fprintf(stderr, "lab: %s\n", e.msg);
        return 2;
    }
    unsetenv("SLUICE_CUDA_ROWS");
    sl_cpu_options co = {.threads = 0};
    if (sl_backend_cpu_create(&co, &g_cpu, &e) != SL_OK) {
        fprintf(stderr, "lab: cpu backend: %s\n", e.msg);
        return 2;
    }
    const char *only = getenv("LAB_ONLY"); /* a comma list of sections: peaks,mm,attn,mb,conv */
#define WANT(s) (!only || strstr(only, s))
    if (argc > 1) g_tsv = fopen(argv[1], "w");
    printf("kernel lab on %s (sm_%d)\n", g_be->info.device, g_be->info.cc);
    printf("%-26s %-30s %12s %9s %-7s %7s  %s\n", "op", "shape", "median", "rate", "unit", "%peak",
           "check");
    peaks();
    if (WANT("attn")) {
        attention_case(4352, 30, 128, false, "cudnn,cudnn-composite,4,8,generic");
        attention_case(4352, 30, 128, true, "cudnn,4,8");
        attention_case(4096, 24, 64, false, "cudnn,4,8");
    }
    if (WANT("mm")) {
        matmul_case(4352, 3840, 10240, SL_DTYPE_BF16, "ffn w1");
        matmul_case(4352, 3840, 10240, SL_DTYPE_F8_E4M3, "ffn w1");
        matmul_case(4352, 3840, 10240, SL_DTYPE_Q8_0, "ffn w1");
        matmul_case(4352, 3840, 10240, SL_DTYPE_Q4_K, "ffn w1");
        matmul_case(4352, 10240, 3840, SL_DTYPE_BF16, "ffn w2");
        matmul_case(4352, 10240, 3840, SL_DTYPE_Q8_0, "ffn w2");
        matmul_case(4352, 3840, 3840, SL_DTYPE_BF16, "to_q");
        dequant_case(SL_DTYPE_Q8_0, 10240, 3840);
        dequant_case(SL_DTYPE_F8_E4M3, 10240, 3840);
        dequant_case(SL_DTYPE_Q4_K, 10240, 3840);
    }
    if (WANT("mb")) mb_cases();
    if (WANT("conv")) {
        conv_case(512, 128, 128, 512, 3, 20);
        conv_case(512, 256, 256, 512, 3, 10);
        conv_case(256, 512, 512, 256, 3, 5);
        conv_case(128, 1024, 1024, 128, 3, 5);
        conv_case(512, 256, 256, 256, 1, 20);
    }
    if (g_tsv) fclose(g_tsv);
    sl_backend_destroy(g_cpu);
    sl_backend_destroy(g_v1);
    sl_backend_destroy(g_be);
    return 0;
}
