/* CPU ops other than matmul, conv2d and attention: elementwise, norms, RoPE, softmax, layout.
 *
 * Every op converts what it reads to f32, computes in f32 (statistics of norms and softmax sums
 * in double), and rounds once when it stores. Work is split over the backend's pool by rows or
 * by blocks of elements; per-thread scratch holds the f32 copies of rows. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "backend/cpu/cpu_impl.h"

#define EW_BLK 1024 /* elements per elementwise work item */

/* A small f32 vector argument (norm weight, bias, ...) converted into shared slot `which`.
 * NULL t gives NULL; *st is set on failure. */
static const float *vec_f32(sl_backend *be, int which, const sl_tensor *t, sl_status *st) {
    if (!t || *st != SL_OK) return NULL;
    sl_cpu *c = cpu_of(be);
    int64_t n = sl_tensor_numel(t);
    if (!cpu_can_load(t->dtype)) {
        *st = cpu_fail(be, SL_ERR_UNSUPPORTED, "cpu backend cannot read %s vectors",
                       sl_dtype_name(t->dtype));
        return NULL;
    }
    float *v = cpu_scratch(c, cpu_shared_slot(c, which), (size_t)n);
    if (!v) {
        *st = cpu_fail(be, SL_ERR_OOM_HOST, "out of host memory (%lld floats of scratch)",
                       (long long)n);
        return NULL;
    }
    cpu_load(t->dtype, t->data, 0, v, n);
    return v;
}

static sl_status oom(sl_backend *be) {
    return cpu_fail(be, SL_ERR_OOM_HOST, "cpu backend: out of host memory for scratch buffers");
}

/* ---- activation functions ---- */

static inline float sigmoidf_(float v) { return 1.0f / (1.0f + expf(-v)); }

static void unary_apply(sl_unary_op op, float *v, int64_t n) {
    switch (op) {
    case SL_UNARY_SILU:
        for (int64_t i = 0; i < n; i++) v[i] = v[i] * sigmoidf_(v[i]);
        break;
    case SL_UNARY_GELU_TANH:
        for (int64_t i = 0; i < n; i++) {
            float x = v[i];
            v[i] = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
        }
        break;
    case SL_UNARY_GELU_ERF:
        for (int64_t i = 0; i < n; i++) v[i] = 0.5f * v[i] * (1.0f + erff(v[i] * 0.7071067811865476f));
        break;
    case SL_UNARY_QUICK_GELU:
        for (int64_t i = 0; i < n; i++) v[i] = v[i] * sigmoidf_(1.702f * v[i]);
        break;
    case SL_UNARY_TANH:
        for (int64_t i = 0; i < n; i++) v[i] = tanhf(v[i]);
        break;
    case SL_UNARY_RELU:
        for (int64_t i = 0; i < n; i++) v[i] = v[i] > 0.0f ? v[i] : 0.0f;
        break;
    case SL_UNARY_NEG:
        for (int64_t i = 0; i < n; i++) v[i] = -v[i];
        break;
    case SL_UNARY_EXP:
        for (int64_t i = 0; i < n; i++) v[i] = expf(v[i]);
        break;
    }
}

static bool unary_known(sl_unary_op op) { return (unsigned)op <= SL_UNARY_EXP; }

/* ---- elementwise: binary, scale, unary, glu, fill ---- */

typedef enum { EW_BINARY, EW_SCALE, EW_UNARY, EW_GLU, EW_FILL } ew_kind;

typedef struct ew_job {
    ew_kind kind;
    int op; /* sl_binary_op or sl_unary_op */
    sl_tensor *y;
    const sl_tensor *a, *b;
    const float *brow; /* b as f32 when broadcast (row or scalar) */
    int64_t bn;        /* elements of brow */
    float s, bias;
    int64_t n;
} ew_job;

static void ew_fn(void *arg, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    ew_job *j = arg;
    float va[EW_BLK], vb[EW_BLK];
    for (int64_t blk = i0; blk < i1; blk++) {
        int64_t off = blk * EW_BLK, n = SL_MIN((int64_t)EW_BLK, j->n - off);
        switch (j->kind) {
        case EW_FILL:
            for (int64_t i = 0; i < n; i++) va[i] = j->s;
            break;
        case EW_SCALE:
            cpu_load(j->a->dtype, j->a->data, off, va, n);
            for (int64_t i = 0; i < n; i++) va[i] = va[i] * j->s + j->bias;
            break;
        case EW_UNARY:
            cpu_load(j->a->dtype, j->a->data, off, va, n);
            unary_apply((sl_unary_op)j->op, va, n);
            break;
        case EW_GLU:
            cpu_load(j->a->dtype, j->a->data, off, va, n);
            cpu_load(j->b->dtype, j->b->data, off, vb, n);
            unary_apply((sl_unary_op)j->op, va, n);
            for (int64_t i = 0; i < n; i++) va[i] *= vb[i];
            break;
        case EW_BINARY:
            cpu_load(j->a->dtype, j->a->data, off, va, n);
            if (j->brow) {
                int64_t k = off % j->bn;
                for (int64_t i = 0; i < n; i++) {
                    vb[i] = j->brow[k];
                    if (++k == j->bn) k = 0;
                }
            } else {
                cpu_load(j->b->dtype, j->b->data, off, vb, n);
            }
            switch ((sl_binary_op)j->op) {
            case SL_BINARY_ADD:
                for (int64_t i = 0; i < n; i++) va[i] += vb[i];
                break;
            case SL_BINARY_SUB:
                for (int64_t i = 0; i < n; i++) va[i] -= vb[i];
                break;
            case SL_BINARY_MUL:
                for (int64_t i = 0; i < n; i++) va[i] *= vb[i];
                break;
            }
            break;
        }
        cpu_store(j->y->dtype, j->y->data, off, va, n);
    }
}

static void ew_run(sl_backend *be, ew_job *j) {
    j->n = sl_tensor_numel(j->y);
    int64_t nblk = (j->n + EW_BLK - 1) / EW_BLK;
    sl_pool_for(cpu_of(be)->pool, nblk, 16, ew_fn, j);
}

sl_status cpu_binary(sl_backend *be, sl_binary_op op, sl_tensor *y, const sl_tensor *a,
                     const sl_tensor *b) {
    CPU_CHECK_DEV(be, "binary", y, a, b);
    if ((unsigned)op > SL_BINARY_MUL)
        return cpu_fail(be, SL_ERR_UNSUPPORTED, "binary: unknown op %d", (int)op);
    ew_job j = {.kind = EW_BINARY, .op = op, .y = y, .a = a, .b = b};
    int64_t nb = sl_tensor_numel(b);
    if (nb != sl_tensor_numel(a)) {
        /* a row (or one element) broadcast over a's rows */
        sl_status st = SL_OK;
        j.brow = vec_f32(be, CPU_SHARED_A, b, &st);
        if (st != SL_OK) return st;
        j.bn = nb;
    }
    ew_run(be, &j);
    return SL_OK;
}

sl_status cpu_scale(sl_backend *be, sl_tensor *y, const sl_tensor *x, float s, float bias) {
    CPU_CHECK_DEV(be, "scale", y, x);
    ew_job j = {.kind = EW_SCALE, .y = y, .a = x, .s = s, .bias = bias};
    ew_run(be, &j);
    return SL_OK;
}

sl_status cpu_unary(sl_backend *be, sl_unary_op op, sl_tensor *y, const sl_tensor *x) {
    CPU_CHECK_DEV(be, "unary", y, x);
    if (!unary_known(op)) return cpu_fail(be, SL_ERR_UNSUPPORTED, "unary: unknown op %d", (int)op);
    ew_job j = {.kind = EW_UNARY, .op = op, .y = y, .a = x};
    ew_run(be, &j);
    return SL_OK;
}

sl_status cpu_glu(sl_backend *be, sl_unary_op act, sl_tensor *y, const sl_tensor *g,
                  const sl_tensor *u) {
    CPU_CHECK_DEV(be, "glu", y, g, u);
    if (!unary_known(act)) return cpu_fail(be, SL_ERR_UNSUPPORTED, "glu: unknown op %d", (int)act);
    ew_job j = {.kind = EW_GLU, .op = act, .y = y, .a = g, .b = u};
    ew_run(be, &j);
    return SL_OK;
}

sl_status cpu_fill(sl_backend *be, sl_tensor *y, float value) {
    CPU_CHECK_DEV(be, "fill", y);
    ew_job j = {.kind = EW_FILL, .y = y, .s = value};
    ew_run(be, &j);
    return SL_OK;
}

/* ---- row ops: rms_norm, layer_norm, softmax, gated_add ---- */

typedef enum { ROW_RMS, ROW_LN, ROW_SOFTMAX, ROW_GATED } row_kind;

typedef struct row_job {
    row_kind kind;
    sl_cpu *c;
    sl_tensor *y;       /* output (gated_add: x, read and written) */
    const sl_tensor *x; /* input (gated_add: y) */
    const float *w, *b, *scale, *shift; /* f32 vectors [D] or NULL */
    float eps;
    int64_t D;
    atomic_int fail;
} row_job;

/* v[0..D) ← rms_norm(v) ⊙ w (w may be NULL); statistics in double. */
static void rms_row(float *v, int64_t D, const float *w, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < D; i++) ss += (double)v[i] * v[i];
    float r = (float)(1.0 / sqrt(ss / (double)D + (double)eps));
    if (w)
        for (int64_t i = 0; i < D; i++) v[i] = v[i] * r * w[i];
    else
        for (int64_t i = 0; i < D; i++) v[i] *= r;
}

static void row_fn(void *arg, int64_t r0, int64_t r1, int tid) {
    row_job *j = arg;
    int64_t D = j->D;
    float *v = cpu_scratch(j->c, tid, (size_t)(j->kind == ROW_GATED ? 2 * D : D));
    if (!v) {
        atomic_store(&j->fail, 1);
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        cpu_load(j->x->dtype, j->x->data, r * D, v, D);
        switch (j->kind) {
        case ROW_RMS:
            rms_row(v, D, j->w, j->eps);
            if (j->scale)
                for (int64_t i = 0; i < D; i++) v[i] *= j->scale[i];
            break;
        case ROW_LN: {
            double s = 0, ss = 0;
            for (int64_t i = 0; i < D; i++) s += v[i];
            double mean = s / (double)D;
            for (int64_t i = 0; i < D; i++) ss += ((double)v[i] - mean) * ((double)v[i] - mean);
            float rstd = (float)(1.0 / sqrt(ss / (double)D + (double)j->eps)), m = (float)mean;
            for (int64_t i = 0; i < D; i++) {
                float t = (v[i] - m) * rstd;
                if (j->w) t *= j->w[i];
                if (j->b) t += j->b[i];
                if (j->scale) t *= j->scale[i];
                if (j->shift) t += j->shift[i];
                v[i] = t;
            }
            break;
        }
        case ROW_SOFTMAX: {
            float mx = -INFINITY;
            for (int64_t i = 0; i < D; i++) mx = v[i] > mx ? v[i] : mx;
            double s = 0;
            for (int64_t i = 0; i < D; i++) {
                v[i] = expf(v[i] - mx);
                s += v[i];
            }
            float inv = (float)(1.0 / s);
            for (int64_t i = 0; i < D; i++) v[i] *= inv;
            break;
        }
        case ROW_GATED: {
            float *acc = v + D;
            if (j->w) rms_row(v, D, j->w, j->eps);
            cpu_load(j->y->dtype, j->y->data, r * D, acc, D);
            if (j->scale)
                for (int64_t i = 0; i < D; i++) v[i] = acc[i] + j->scale[i] * v[i];
            else
                for (int64_t i = 0; i < D; i++) v[i] = acc[i] + v[i];
            break;
        }
        }
        cpu_store(j->y->dtype, j->y->data, r * D, v, D);
    }
}

static sl_status row_run(sl_backend *be, row_job *j) {
    j->c = cpu_of(be);
    j->D = sl_tensor_ncols(j->x);
    int64_t rows = sl_tensor_nrows(j->x);
    if (j->D == 0 || rows == 0) return SL_OK;
    atomic_init(&j->fail, 0);
    int64_t min_rows = SL_MAX((int64_t)1, 4096 / j->D);
    sl_pool_for(j->c->pool, rows, min_rows, row_fn, j);
    return atomic_load(&j->fail) ? oom(be) : SL_OK;
}

sl_status cpu_rms_norm(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                       const sl_tensor *mod, float eps) {
    CPU_CHECK_DEV(be, "rms_norm", y, x, w, mod);
    sl_status st = SL_OK;
    row_job j = {.kind = ROW_RMS, .y = y, .x = x, .eps = eps};
    j.w = vec_f32(be, CPU_SHARED_A, w, &st);
    j.scale = vec_f32(be, CPU_SHARED_B, mod, &st);
    return st != SL_OK ? st : row_run(be, &j);
}

sl_status cpu_layer_norm(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                         const sl_tensor *b, const sl_tensor *scale, const sl_tensor *shift,
                         float eps) {
    CPU_CHECK_DEV(be, "layer_norm", y, x, w, b, scale, shift);
    sl_status st = SL_OK;
    row_job j = {.kind = ROW_LN, .y = y, .x = x, .eps = eps};
    j.w = vec_f32(be, CPU_SHARED_A, w, &st);
    j.b = vec_f32(be, CPU_SHARED_B, b, &st);
    j.scale = vec_f32(be, CPU_SHARED_C, scale, &st);
    j.shift = vec_f32(be, CPU_SHARED_D, shift, &st);
    return st != SL_OK ? st : row_run(be, &j);
}

sl_status cpu_softmax(sl_backend *be, sl_tensor *y, const sl_tensor *x) {
    CPU_CHECK_DEV(be, "softmax", y, x);
    row_job j = {.kind = ROW_SOFTMAX, .y = y, .x = x};
    return row_run(be, &j);
}

sl_status cpu_gated_add(sl_backend *be, sl_tensor *x, const sl_tensor *y, const sl_tensor *w,
                        const sl_tensor *gate, float eps) {
    CPU_CHECK_DEV(be, "gated_add", x, y, w, gate);
    sl_status st = SL_OK;
    /* row_fn reads the branch from j.x and the residual from j.y, then writes j.y */
    row_job j = {.kind = ROW_GATED, .y = x, .x = y, .eps = eps};
    j.w = vec_f32(be, CPU_SHARED_A, w, &st);
    j.scale = vec_f32(be, CPU_SHARED_B, gate, &st);
    return st != SL_OK ? st : row_run(be, &j);
}

/* ---- group_norm ---- */

typedef struct gn_job {
    sl_tensor *y;
    const sl_tensor *x;
    const float *w, *b;
    int64_t cpg, S; /* channels per group, elements per channel */
    float eps;
    bool silu;
} gn_job;

static void gn_fn(void *arg, int64_t g0, int64_t g1, int tid) {
    (void)tid;
    gn_job *j = arg;
    float v[EW_BLK];
    int64_t n = j->cpg * j->S;
    for (int64_t g = g0; g < g1; g++) {
        int64_t base = g * n;
        double s = 0, ss = 0;
        for (int64_t off = 0; off < n; off += EW_BLK) {
            int64_t m = SL_MIN((int64_t)EW_BLK, n - off);
            cpu_load(j->x->dtype, j->x->data, base + off, v, m);
            for (int64_t i = 0; i < m; i++) s += v[i];
        }
        double mean = s / (double)n;
        for (int64_t off = 0; off < n; off += EW_BLK) {
            int64_t m = SL_MIN((int64_t)EW_BLK, n - off);
            cpu_load(j->x->dtype, j->x->data, base + off, v, m);
            for (int64_t i = 0; i < m; i++) ss += ((double)v[i] - mean) * ((double)v[i] - mean);
        }
        float rstd = (float)(1.0 / sqrt(ss / (double)n + (double)j->eps)), mf = (float)mean;
        for (int64_t ch = 0; ch < j->cpg; ch++) {
            int64_t c = g * j->cpg + ch;
            float wc = j->w ? j->w[c] : 1.0f, bc = j->b ? j->b[c] : 0.0f;
            for (int64_t off = 0; off < j->S; off += EW_BLK) {
                int64_t m = SL_MIN((int64_t)EW_BLK, j->S - off), at = c * j->S + off;
                cpu_load(j->x->dtype, j->x->data, at, v, m);
                for (int64_t i = 0; i < m; i++) v[i] = (v[i] - mf) * rstd * wc + bc;
                if (j->silu) unary_apply(SL_UNARY_SILU, v, m);
                cpu_store(j->y->dtype, j->y->data, at, v, m);
            }
        }
    }
}

sl_status cpu_group_norm(sl_backend *be, sl_tensor *y, const sl_tensor *x, int groups,
                         const sl_tensor *w, const sl_tensor *b, float eps, bool silu) {
    CPU_CHECK_DEV(be, "group_norm", y, x, w, b);
    sl_status st = SL_OK;
    gn_job j = {.y = y, .x = x, .eps = eps, .silu = silu};
    j.w = vec_f32(be, CPU_SHARED_A, w, &st);
    j.b = vec_f32(be, CPU_SHARED_B, b, &st);
    if (st != SL_OK) return st;
    j.cpg = x->ne[0] / groups;
    j.S = x->ne[0] ? sl_tensor_numel(x) / x->ne[0] : 0;
    if (j.S * j.cpg == 0) return SL_OK;
    sl_pool_for(cpu_of(be)->pool, groups, 1, gn_fn, &j);
    return SL_OK;
}

/* ---- rope ---- */

typedef struct rope_job {
    sl_cpu *c;
    sl_tensor *y;
    const sl_tensor *x, *tab;
    const float *nw;
    float eps;
    sl_rope_mode mode;
    int64_t H, Dh;
    atomic_int fail;
} rope_job;

static void rope_fn(void *arg, int64_t r0, int64_t r1, int tid) {
    rope_job *j = arg;
    int64_t Dh = j->Dh, half = Dh / 2;
    float *v = cpu_scratch(j->c, tid, (size_t)(2 * Dh));
    if (!v) {
        atomic_store(&j->fail, 1);
        return;
    }
    float *o = v + Dh;
    const float *tab = j->tab->data;
    for (int64_t r = r0; r < r1; r++) {
        int64_t t = r / j->H;
        const float *cs = tab + t * Dh; /* [Dh/2][2] = (cos, sin) */
        cpu_load(j->x->dtype, j->x->data, r * Dh, v, Dh);
        if (j->nw) rms_row(v, Dh, j->nw, j->eps);
        if (j->mode == SL_ROPE_INTERLEAVED) {
            for (int64_t p = 0; p < half; p++) {
                float c = cs[2 * p], s = cs[2 * p + 1], a = v[2 * p], b = v[2 * p + 1];
                o[2 * p] = a * c - b * s;
                o[2 * p + 1] = a * s + b * c;
            }
        } else {
            for (int64_t p = 0; p < half; p++) {
                float c = cs[2 * p], s = cs[2 * p + 1], a = v[p], b = v[p + half];
                o[p] = a * c - b * s;
                o[p + half] = b * c + a * s;
            }
        }
        cpu_store(j->y->dtype, j->y->data, r * Dh, o, Dh);
    }
}

sl_status cpu_rope(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *norm_w,
                   float eps, const sl_tensor *tab, sl_rope_mode mode) {
    CPU_CHECK_DEV(be, "rope", y, x, norm_w, tab);
    if (mode != SL_ROPE_INTERLEAVED && mode != SL_ROPE_HALF)
        return cpu_fail(be, SL_ERR_UNSUPPORTED, "rope: unknown mode %d", (int)mode);
    sl_status st = SL_OK;
    rope_job j = {.c = cpu_of(be), .y = y, .x = x, .tab = tab, .eps = eps, .mode = mode};
    j.nw = vec_f32(be, CPU_SHARED_A, norm_w, &st);
    if (st != SL_OK) return st;
    j.H = x->ne[1];
    j.Dh = x->ne[2];
    atomic_init(&j.fail, 0);
    int64_t rows = x->ne[0] * x->ne[1];
    sl_pool_for(j.c->pool, rows, SL_MAX((int64_t)1, 4096 / SL_MAX(j.Dh, (int64_t)1)), rope_fn, &j);
    return atomic_load(&j.fail) ? oom(be) : SL_OK;
}

/* ---- timestep embedding ---- */

sl_status cpu_timestep_embed(sl_backend *be, sl_tensor *y, const float *t, int n, float t_scale,
                             float max_period, bool cos_first) {
    CPU_CHECK_DEV(be, "timestep_embed", y);
    /* Evaluated in f32 in the order of the PyTorch references (diffusers, Z-Image, Flux):
     * freq_k = exp(−ln(max_period)·k / half), arg = (t·t_scale)·freq_k, then cos/sin. */
    int64_t dim = y->ne[1], half = dim / 2;
    float *out = y->data;
    float nl = (float)-log((double)max_period);
    for (int i = 0; i < n; i++) {
        float ts = t[i] * t_scale;
        float *row = out + (int64_t)i * dim;
        for (int64_t k = 0; k < half; k++) {
            float f = expf(nl * (float)k / (float)half);
            float a = ts * f;
            row[cos_first ? k : half + k] = cosf(a);
            row[cos_first ? half + k : k] = sinf(a);
        }
    }
    return SL_OK;
}

/* ---- layout ops ---- */

/* Element-wise conversion of one element (for gathers between possibly different dtypes). */
static inline float ld1(sl_dtype dt, const void *p, int64_t i) {
    switch (dt) {
    case SL_DTYPE_F32:
        return ((const float *)p)[i];
    case SL_DTYPE_BF16:
        return sl_bf16_to_f32(((const uint16_t *)p)[i]);
    default:
        return sl_f16_to_f32(((const uint16_t *)p)[i]);
    }
}

static inline void st1(sl_dtype dt, void *p, int64_t i, float v) {
    switch (dt) {
    case SL_DTYPE_F32:
        ((float *)p)[i] = v;
        break;
    case SL_DTYPE_BF16:
        ((uint16_t *)p)[i] = sl_f32_to_bf16(v);
        break;
    default:
        ((uint16_t *)p)[i] = sl_f32_to_f16(v);
        break;
    }
}

typedef struct patch_job {
    sl_tensor *y;
    const sl_tensor *x;
    int64_t C, H, W, p;
    sl_patch_order order;
    bool inverse; /* unpatchify: y is the image, x the tokens */
} patch_job;

static void patch_fn(void *arg, int64_t t0, int64_t t1, int tid) {
    (void)tid;
    patch_job *j = arg;
    int64_t C = j->C, p = j->p, Wt = j->W / p, F = p * p * C;
    const sl_tensor *img = j->inverse ? j->y : j->x, *tok = j->inverse ? j->x : j->y;
    for (int64_t t = t0; t < t1; t++) {
        int64_t h = t / Wt, w = t % Wt;
        for (int64_t ph = 0; ph < p; ph++)
            for (int64_t pw = 0; pw < p; pw++)
                for (int64_t c = 0; c < C; c++) {
                    int64_t f = j->order == SL_PATCH_PW_C ? (ph * p + pw) * C + c
                                                          : (c * p + ph) * p + pw;
                    int64_t ii = (c * j->H + h * p + ph) * j->W + w * p + pw, ti = t * F + f;
                    if (j->inverse)
                        st1(img->dtype, img->data, ii, ld1(tok->dtype, tok->data, ti));
                    else
                        st1(tok->dtype, tok->data, ti, ld1(img->dtype, img->data, ii));
                }
    }
}

static sl_status patch_run(sl_backend *be, sl_tensor *y, const sl_tensor *x, int p,
                           sl_patch_order order, bool inverse) {
    if (order != SL_PATCH_PW_C && order != SL_PATCH_C_PW)
        return cpu_fail(be, SL_ERR_UNSUPPORTED, "patchify: unknown order %d", (int)order);
    const sl_tensor *img = inverse ? y : x;
    patch_job j = {.y = y, .x = x, .C = img->ne[0], .H = img->ne[1], .W = img->ne[2], .p = p,
                   .order = order, .inverse = inverse};
    int64_t T = (j.H / p) * (j.W / p);
    sl_pool_for(cpu_of(be)->pool, T, 64, patch_fn, &j);
    return SL_OK;
}

sl_status cpu_patchify(sl_backend *be, sl_tensor *y, const sl_tensor *x, int p,
                       sl_patch_order order) {
    CPU_CHECK_DEV(be, "patchify", y, x);
    return patch_run(be, y, x, p, order, false);
}

sl_status cpu_unpatchify(sl_backend *be, sl_tensor *y, const sl_tensor *x, int p,
                         sl_patch_order order) {
    CPU_CHECK_DEV(be, "unpatchify", y, x);
    return patch_run(be, y, x, p, order, true);
}

typedef struct up_job {
    sl_cpu *c;
    sl_tensor *y;
    const sl_tensor *x;
    int64_t H, W, f;
    atomic_int fail;
} up_job;

static void up_fn(void *arg, int64_t r0, int64_t r1, int tid) {
    up_job *j = arg;
    int64_t W = j->W, f = j->f, Wo = W * f;
    float *v = cpu_scratch(j->c, tid, (size_t)(W + Wo));
    if (!v) {
        atomic_store(&j->fail, 1);
        return;
    }
    float *o = v + W;
    for (int64_t r = r0; r < r1; r++) { /* r: output row over (c, i) */
        int64_t c = r / (j->H * f), i = r % (j->H * f);
        cpu_load(j->x->dtype, j->x->data, (c * j->H + i / f) * W, v, W);
        for (int64_t k = 0; k < Wo; k++) o[k] = v[k / f];
        cpu_store(j->y->dtype, j->y->data, r * Wo, o, Wo);
    }
}

sl_status cpu_upsample_nearest(sl_backend *be, sl_tensor *y, const sl_tensor *x, int factor) {
    CPU_CHECK_DEV(be, "upsample_nearest", y, x);
    up_job j = {.c = cpu_of(be), .y = y, .x = x, .H = x->ne[1], .W = x->ne[2], .f = factor};
    atomic_init(&j.fail, 0);
    sl_pool_for(j.c->pool, y->ne[0] * y->ne[1], 16, up_fn, &j);
    return atomic_load(&j.fail) ? oom(be) : SL_OK;
}

/* permute: y index (i0,i1,i2,i3) reads x at Σ i_k·stride_x[perm[k]]. */
typedef struct perm_job {
    char *y;
    const char *x;
    int64_t ne[4];      /* y's shape padded to 4 dims (leading 1s) */
    int64_t xs[4];      /* x stride (elements) of the x dim that y's dim k comes from */
    size_t es;
} perm_job;

static void perm_fn(void *arg, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    perm_job *j = arg;
    int64_t n3 = j->ne[3];
    for (int64_t r = r0; r < r1; r++) { /* r over (i0, i1, i2) */
        int64_t i2 = r % j->ne[2], i1 = (r / j->ne[2]) % j->ne[1], i0 = r / (j->ne[2] * j->ne[1]);
        int64_t src = i0 * j->xs[0] + i1 * j->xs[1] + i2 * j->xs[2];
        char *dst = j->y + (size_t)(r * n3) * j->es;
        if (j->xs[3] == 1) {
            memcpy(dst, j->x + (size_t)src * j->es, (size_t)n3 * j->es);
        } else if (j->es == 4) {
            for (int64_t k = 0; k < n3; k++)
                ((uint32_t *)(void *)dst)[k] = ((const uint32_t *)(const void *)j->x)[src + k * j->xs[3]];
        } else {
            for (int64_t k = 0; k < n3; k++)
                ((uint16_t *)(void *)dst)[k] = ((const uint16_t *)(const void *)j->x)[src + k * j->xs[3]];
        }
    }
}

sl_status cpu_permute(sl_backend *be, sl_tensor *y, const sl_tensor *x, const int perm[4]) {
    CPU_CHECK_DEV(be, "permute", y, x);
    int nd = x->ndim, pad = 4 - nd;
    int64_t xstride[4] = {1, 1, 1, 1};
    for (int i = nd - 2; i >= 0; i--) xstride[i] = xstride[i + 1] * x->ne[i + 1];
    perm_job j = {.y = y->data, .x = x->data, .es = cpu_esize(x->dtype)};
    for (int k = 0; k < 4; k++) {
        j.ne[k] = k < pad ? 1 : y->ne[k - pad];
        j.xs[k] = k < pad ? 0 : xstride[perm[k - pad]];
    }
    if (nd == 0) j.xs[3] = 1;
    int64_t rows = j.ne[0] * j.ne[1] * j.ne[2];
    if (rows * j.ne[3] == 0) return SL_OK;
    sl_pool_for(cpu_of(be)->pool, rows, SL_MAX((int64_t)1, 16384 / SL_MAX(j.ne[3], (int64_t)1)),
                perm_fn, &j);
    return SL_OK;
}

/* outer = Π ne[0..dim), inner = bytes of one step along dim */
static void split_dims(const sl_tensor *t, int dim, int64_t *outer, size_t *inner) {
    int64_t o = 1, in = 1;
    for (int i = 0; i < dim; i++) o *= t->ne[i];
    for (int i = dim + 1; i < t->ndim; i++) in *= t->ne[i];
    *outer = o;
    *inner = (size_t)in * cpu_esize(t->dtype);
}

sl_status cpu_concat(sl_backend *be, sl_tensor *y, const sl_tensor *a, const sl_tensor *b,
                     int dim) {
    CPU_CHECK_DEV(be, "concat", y, a, b);
    int64_t outer;
    size_t inner;
    split_dims(a, dim, &outer, &inner);
    size_t na = (size_t)a->ne[dim] * inner, nb = (size_t)b->ne[dim] * inner;
    char *yd = y->data;
    const char *ad = a->data, *bd = b->data;
    for (int64_t o = 0; o < outer; o++) {
        memmove(yd + (size_t)o * (na + nb), ad + (size_t)o * na, na);
        memmove(yd + (size_t)o * (na + nb) + na, bd + (size_t)o * nb, nb);
    }
    return SL_OK;
}

sl_status cpu_slice(sl_backend *be, sl_tensor *y, const sl_tensor *x, int dim, int64_t start) {
    CPU_CHECK_DEV(be, "slice", y, x);
    int64_t outer;
    size_t inner;
    split_dims(x, dim, &outer, &inner);
    size_t nx = (size_t)x->ne[dim] * inner, ny = (size_t)y->ne[dim] * inner;
    char *yd = y->data;
    const char *xd = x->data;
    for (int64_t o = 0; o < outer; o++)
        memmove(yd + (size_t)o * ny, xd + (size_t)o * nx + (size_t)start * inner, ny);
    return SL_OK;
}

/* ---- copy, get_rows, repeat_rows ---- */

typedef struct rowcopy_job {
    sl_cpu *c;
    sl_tensor *y;
    const sl_tensor *x;
    const int32_t *ids; /* get_rows: source row of each output row; NULL: row r */
    int64_t D;
    atomic_int fail;
} rowcopy_job;

static void rowcopy_fn(void *arg, int64_t r0, int64_t r1, int tid) {
    rowcopy_job *j = arg;
    int64_t D = j->D;
    size_t xrow = sl_dtype_row_bytes(j->x->dtype, D);
    if (j->x->dtype == j->y->dtype) {
        for (int64_t r = r0; r < r1; r++) {
            int64_t s = j->ids ? j->ids[r] : r;
            memcpy((char *)j->y->data + (size_t)r * xrow, (const char *)j->x->data + (size_t)s * xrow,
                   xrow);
        }
        return;
    }
    float *v = cpu_scratch(j->c, tid, (size_t)D);
    if (!v) {
        atomic_store(&j->fail, 1);
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        int64_t s = j->ids ? j->ids[r] : r;
        cpu_load(j->x->dtype, (const char *)j->x->data + (size_t)s * xrow, 0, v, D);
        cpu_store(j->y->dtype, j->y->data, r * D, v, D);
    }
}

static sl_status rowcopy_run(sl_backend *be, rowcopy_job *j, int64_t rows, const char *op) {
    if (!cpu_can_load(j->x->dtype))
        return cpu_fail(be, SL_ERR_UNSUPPORTED, "%s: cpu backend cannot read %s", op,
                        sl_dtype_name(j->x->dtype));
    j->c = cpu_of(be);
    if (rows == 0 || j->D == 0) return SL_OK;
    atomic_init(&j->fail, 0);
    sl_pool_for(j->c->pool, rows, SL_MAX((int64_t)1, 16384 / j->D), rowcopy_fn, j);
    return atomic_load(&j->fail) ? oom(be) : SL_OK;
}

sl_status cpu_copy(sl_backend *be, sl_tensor *y, const sl_tensor *x) {
    CPU_CHECK_DEV(be, "copy", y, x);
    rowcopy_job j = {.y = y, .x = x, .D = sl_tensor_ncols(x)};
    return rowcopy_run(be, &j, sl_tensor_nrows(x), "copy");
}

sl_status cpu_get_rows(sl_backend *be, sl_tensor *y, const sl_tensor *table,
                       const sl_tensor *ids) {
    CPU_CHECK_DEV(be, "get_rows", y, table, ids);
    const int32_t *id = ids->data;
    int64_t n = ids->ne[0], V = table->ne[0];
    for (int64_t i = 0; i < n; i++)
        if (id[i] < 0 || id[i] >= V)
            return cpu_fail(be, SL_ERR_INVALID_ARG,
                            "get_rows: id %d at position %lld is outside the table of %lld rows",
                            id[i], (long long)i, (long long)V);
    rowcopy_job j = {.y = y, .x = table, .ids = id, .D = table->ne[1]};
    return rowcopy_run(be, &j, n, "get_rows");
}

typedef struct rep_job {
    sl_tensor *y;
    const float *v;
    int64_t D;
} rep_job;

static void rep_fn(void *arg, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    rep_job *j = arg;
    for (int64_t r = r0; r < r1; r++) cpu_store(j->y->dtype, j->y->data, r * j->D, j->v, j->D);
}

sl_status cpu_repeat_rows(sl_backend *be, sl_tensor *y, const sl_tensor *x) {
    CPU_CHECK_DEV(be, "repeat_rows", y, x);
    sl_status st = SL_OK;
    rep_job j = {.y = y, .D = sl_tensor_ncols(y)};
    j.v = vec_f32(be, CPU_SHARED_A, x, &st);
    if (st != SL_OK || j.D == 0) return st;
    sl_pool_for(cpu_of(be)->pool, sl_tensor_nrows(y), SL_MAX((int64_t)1, 16384 / j.D), rep_fn, &j);
    return SL_OK;
}
