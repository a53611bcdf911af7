#include "backend/ops.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

void sl_ctx_init(sl_ctx *c, sl_backend *be, void *base, size_t cap) {
    SL_ASSERT(c && be);
    *c = (sl_ctx){0};
    c->be = be;
    c->act = be->info.act_dtype;
    c->base = base;
    c->cap = base ? cap : SIZE_MAX;
}

void sl_ctx_fail(sl_ctx *c, sl_status st, const char *fmt, ...) {
    if (c->status != SL_OK) return;
    c->status = st;
    c->err.status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err.msg, sizeof c->err.msg, fmt, ap);
    va_end(ap);
}

sl_status sl_ctx_take_error(sl_ctx *c, sl_err *err) {
    if (c->status != SL_OK) sl_err_set(err, c->status, "%s", c->err.msg);
    return c->status;
}

void sl_ctx_reset(sl_ctx *c, size_t mark) {
    SL_ASSERT(mark <= c->off);
    c->off = mark;
}

sl_tensor sl_new(sl_ctx *c, sl_dtype dt, int ndim, const int64_t *ne) {
    sl_tensor t = sl_tensor_make(dt, ndim, ne);
    SL_ASSERTF(sl_dtype_row_ok(dt, sl_tensor_ncols(&t)), "row of %lld is not whole %s blocks",
               (long long)sl_tensor_ncols(&t), sl_dtype_name(dt));
    size_t bytes = SL_ALIGN_UP(sl_tensor_nbytes(&t), (size_t)SL_ARENA_ALIGN);
    if (c->status != SL_OK) return t;
    if (bytes > c->cap - c->off) {
        sl_ctx_fail(c, SL_ERR_OOM_DEVICE,
                    "activation arena too small: %zu bytes in use, %zu more needed, %zu available "
                    "(try --vram-estimation dryrun)",
                    c->off, bytes, c->cap);
        return t;
    }
    /* fake addresses for measuring start at one alignment unit so that they are never NULL */
    t.data = c->base ? (void *)(c->base + c->off) : (void *)(uintptr_t)(SL_ARENA_ALIGN + c->off);
    c->off += bytes;
    if (c->off > c->peak) c->peak = c->off;
    return t;
}

sl_tensor sl_new_like(sl_ctx *c, const sl_tensor *x, sl_dtype dt) {
    return sl_new(c, dt, x->ndim, x->ne);
}

/* ---- checks ---- */

#define DESC(t) sl_tensor_desc((t), (char[96]){0}, 96)

static int is_act(sl_dtype d) { return d == SL_DTYPE_F32 || d == SL_DTYPE_BF16 || d == SL_DTYPE_F16; }

static void need_act(const sl_tensor *t, const char *op, const char *what) {
    SL_ASSERTF(is_act(t->dtype), "%s: %s must be f32/bf16/f16, got %s", op, what, DESC(t));
}

static void need_same(const sl_tensor *a, const sl_tensor *b, const char *op) {
    SL_ASSERTF(sl_tensor_same_shape(a, b), "%s: shapes differ: %s vs %s", op, DESC(a), DESC(b));
}

static void need_row(const sl_tensor *v, int64_t d, const char *op, const char *what) {
    if (!v) return;
    SL_ASSERTF(sl_tensor_numel(v) == d && sl_dtype_get(v->dtype)->is_float &&
                   !sl_dtype_get(v->dtype)->is_quant,
               "%s: %s must be a float vector of %lld, got %s", op, what, (long long)d, DESC(v));
}

/* Run the backend op unless the context already failed; record a failure. */
#define RUN(c, opname, ...)                                                                          \
    do {                                                                                           \
        if ((c)->status != SL_OK) return;                                                          \
        sl_status st_ = (c)->be->vt->opname((c)->be, __VA_ARGS__);                                   \
        if (st_ != SL_OK) sl_ctx_fail((c), st_, "op " #opname " failed on backend %s: %s",          \
                                      (c)->be->info.name, (c)->be->last_error);                    \
    } while (0)

void sl_upload(sl_ctx *c, sl_tensor *dst, const void *src) {
    if (c->status != SL_OK) return;
    sl_status st = c->be->vt->upload(c->be, SL_QUEUE_COMPUTE, dst->data, src, sl_tensor_nbytes(dst));
    if (st != SL_OK) sl_ctx_fail(c, st, "upload of %zu bytes failed", sl_tensor_nbytes(dst));
}

void sl_download(sl_ctx *c, void *dst, const sl_tensor *src) {
    if (c->status != SL_OK) return;
    sl_status st = c->be->vt->download(c->be, dst, src->data, sl_tensor_nbytes(src));
    if (st != SL_OK) sl_ctx_fail(c, st, "download of %zu bytes failed", sl_tensor_nbytes(src));
}

void sl_op_matmul(sl_ctx *c, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                  const sl_tensor *bias) {
    need_act(x, "matmul", "x");
    need_act(y, "matmul", "y");
    SL_ASSERTF(w->ndim == 2 && sl_dtype_get(w->dtype)->is_float, "matmul: weight must be 2-D float/quant, got %s", DESC(w));
    int64_t K = sl_tensor_ncols(x), N = w->ne[0], M = sl_tensor_nrows(x);
    SL_ASSERTF(w->ne[1] == K, "matmul: x %s does not match weight %s", DESC(x), DESC(w));
    SL_ASSERTF(sl_tensor_ncols(y) == N && sl_tensor_nrows(y) == M, "matmul: y %s, expected [%lld, %lld]",
               DESC(y), (long long)M, (long long)N);
    need_row(bias, N, "matmul", "bias");
    RUN(c, matmul, y, x, w, bias);
}

void sl_op_binary(sl_ctx *c, sl_binary_op op, sl_tensor *y, const sl_tensor *a, const sl_tensor *b) {
    need_act(a, "binary", "a");
    need_act(b, "binary", "b");
    need_act(y, "binary", "y");
    need_same(y, a, "binary");
    int64_t nb = sl_tensor_numel(b);
    SL_ASSERTF(nb == sl_tensor_numel(a) || nb == sl_tensor_ncols(a) || nb == 1,
               "binary: b %s neither matches a %s nor is a row of it", DESC(b), DESC(a));
    RUN(c, binary, op, y, a, b);
}

void sl_op_scale(sl_ctx *c, sl_tensor *y, const sl_tensor *x, float s, float bias) {
    need_act(x, "scale", "x");
    need_act(y, "scale", "y");
    need_same(y, x, "scale");
    RUN(c, scale, y, x, s, bias);
}

void sl_op_unary(sl_ctx *c, sl_unary_op op, sl_tensor *y, const sl_tensor *x) {
    need_act(x, "unary", "x");
    need_act(y, "unary", "y");
    need_same(y, x, "unary");
    RUN(c, unary, op, y, x);
}

void sl_op_glu(sl_ctx *c, sl_unary_op act, sl_tensor *y, const sl_tensor *g, const sl_tensor *u) {
    need_act(g, "glu", "g");
    need_act(u, "glu", "u");
    need_act(y, "glu", "y");
    need_same(y, g, "glu");
    need_same(y, u, "glu");
    RUN(c, glu, act, y, g, u);
}

void sl_op_rms_norm(sl_ctx *c, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                    const sl_tensor *mod, float eps) {
    need_act(x, "rms_norm", "x");
    need_act(y, "rms_norm", "y");
    need_same(y, x, "rms_norm");
    need_row(w, sl_tensor_ncols(x), "rms_norm", "w");
    need_row(mod, sl_tensor_ncols(x), "rms_norm", "mod");
    RUN(c, rms_norm, y, x, w, mod, eps);
}

void sl_op_layer_norm(sl_ctx *c, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                      const sl_tensor *b, const sl_tensor *scale, const sl_tensor *shift, float eps) {
    int64_t D = sl_tensor_ncols(x);
    need_act(x, "layer_norm", "x");
    need_act(y, "layer_norm", "y");
    need_same(y, x, "layer_norm");
    need_row(w, D, "layer_norm", "w");
    need_row(b, D, "layer_norm", "b");
    need_row(scale, D, "layer_norm", "scale");
    need_row(shift, D, "layer_norm", "shift");
    RUN(c, layer_norm, y, x, w, b, scale, shift, eps);
}

void sl_op_group_norm(sl_ctx *c, sl_tensor *y, const sl_tensor *x, int groups, const sl_tensor *w,
                      const sl_tensor *b, float eps, bool silu) {
    need_act(x, "group_norm", "x");
    need_act(y, "group_norm", "y");
    need_same(y, x, "group_norm");
    SL_ASSERTF(x->ndim >= 2 && groups > 0 && x->ne[0] % groups == 0,
               "group_norm: %s cannot be split into %d channel groups", DESC(x), groups);
    need_row(w, x->ne[0], "group_norm", "w");
    need_row(b, x->ne[0], "group_norm", "b");
    RUN(c, group_norm, y, x, groups, w, b, eps, silu);
}

void sl_op_rope(sl_ctx *c, sl_tensor *y, const sl_tensor *x, const sl_tensor *norm_w, float eps,
                const sl_tensor *tab, sl_rope_mode mode) {
    need_act(x, "rope", "x");
    need_act(y, "rope", "y");
    need_same(y, x, "rope");
    SL_ASSERTF(x->ndim == 3 && x->ne[2] % 2 == 0, "rope: x must be [T, H, Dh] with even Dh, got %s", DESC(x));
    SL_ASSERTF(tab->dtype == SL_DTYPE_F32 && tab->ndim == 3 && tab->ne[0] == x->ne[0] &&
                   tab->ne[1] == x->ne[2] / 2 && tab->ne[2] == 2,
               "rope: table %s does not fit x %s (want f32[T, Dh/2, 2])", DESC(tab), DESC(x));
    need_row(norm_w, x->ne[2], "rope", "norm_w");
    RUN(c, rope, y, x, norm_w, eps, tab, mode);
}

/* q/k/v/o as [B, S, H, Dh]; a 3-D [S, H, Dh] tensor is B = 1. */
static void bshd(const sl_tensor *t, int64_t out[4], const char *what) {
    SL_ASSERTF(t->ndim == 3 || t->ndim == 4, "attention: %s must be [B,] S, H, Dh; got %s", what, DESC(t));
    if (t->ndim == 3) {
        out[0] = 1;
        out[1] = t->ne[0];
        out[2] = t->ne[1];
        out[3] = t->ne[2];
    } else {
        for (int i = 0; i < 4; i++) out[i] = t->ne[i];
    }
}

void sl_op_attention(sl_ctx *c, sl_tensor *o, const sl_tensor *q, const sl_tensor *k,
                     const sl_tensor *v, float scale, bool causal) {
    int64_t Q[4], K[4], V[4], O[4];
    need_act(q, "attention", "q");
    need_act(k, "attention", "k");
    need_act(v, "attention", "v");
    need_act(o, "attention", "o");
    bshd(q, Q, "q");
    bshd(k, K, "k");
    bshd(v, V, "v");
    bshd(o, O, "o");
    SL_ASSERTF(Q[0] == K[0] && Q[0] == V[0] && K[1] == V[1] && K[2] == V[2] && Q[3] == K[3] &&
                   V[3] == Q[3] && Q[2] % K[2] == 0,
               "attention: q %s, k %s, v %s do not fit together", DESC(q), DESC(k), DESC(v));
    for (int i = 0; i < 4; i++) SL_ASSERTF(O[i] == Q[i], "attention: o %s must match q %s", DESC(o), DESC(q));
    SL_ASSERTF(!causal || Q[1] == K[1], "attention: causal needs Sq == Sk");
    RUN(c, attention, o, q, k, v, scale, causal);
}

void sl_op_softmax(sl_ctx *c, sl_tensor *y, const sl_tensor *x) {
    need_act(x, "softmax", "x");
    need_act(y, "softmax", "y");
    need_same(y, x, "softmax");
    RUN(c, softmax, y, x);
}

void sl_op_gated_add(sl_ctx *c, sl_tensor *x, const sl_tensor *y, const sl_tensor *w,
                     const sl_tensor *gate, float eps) {
    need_act(x, "gated_add", "x");
    need_act(y, "gated_add", "y");
    need_same(x, y, "gated_add");
    need_row(w, sl_tensor_ncols(x), "gated_add", "w");
    need_row(gate, sl_tensor_ncols(x), "gated_add", "gate");
    RUN(c, gated_add, x, y, w, gate, eps);
}

void sl_op_conv2d(sl_ctx *c, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                  const sl_tensor *b, int stride, const int pad[4]) {
    need_act(x, "conv2d", "x");
    need_act(y, "conv2d", "y");
    SL_ASSERTF(x->ndim == 3 && w->ndim == 4 && y->ndim == 3 && sl_dtype_get(w->dtype)->is_float &&
                   !sl_dtype_get(w->dtype)->is_quant,
               "conv2d: want x [C,H,W], w [O,C,kh,kw] (float), y [O,Ho,Wo]; got %s %s %s", DESC(x),
               DESC(w), DESC(y));
    SL_ASSERT(stride >= 1 && pad[0] >= 0 && pad[1] >= 0 && pad[2] >= 0 && pad[3] >= 0);
    int64_t Ho = (x->ne[1] + pad[0] + pad[1] - w->ne[2]) / stride + 1;
    int64_t Wo = (x->ne[2] + pad[2] + pad[3] - w->ne[3]) / stride + 1;
    SL_ASSERTF(w->ne[1] == x->ne[0] && y->ne[0] == w->ne[0] && y->ne[1] == Ho && y->ne[2] == Wo,
               "conv2d: x %s, w %s give [%lld, %lld, %lld], y is %s", DESC(x), DESC(w),
               (long long)w->ne[0], (long long)Ho, (long long)Wo, DESC(y));
    need_row(b, w->ne[0], "conv2d", "b");
    RUN(c, conv2d, y, x, w, b, stride, pad);
}

void sl_op_upsample_nearest(sl_ctx *c, sl_tensor *y, const sl_tensor *x, int factor) {
    need_act(x, "upsample", "x");
    need_act(y, "upsample", "y");
    SL_ASSERTF(x->ndim == 3 && y->ndim == 3 && factor >= 1 && y->ne[0] == x->ne[0] &&
                   y->ne[1] == x->ne[1] * factor && y->ne[2] == x->ne[2] * factor,
               "upsample: x %s ×%d does not give y %s", DESC(x), factor, DESC(y));
    RUN(c, upsample_nearest, y, x, factor);
}

static void check_patch(const sl_tensor *img, const sl_tensor *tok, int p, const char *op) {
    SL_ASSERTF(img->ndim == 3 && tok->ndim == 2 && p >= 1 && img->ne[1] % p == 0 && img->ne[2] % p == 0 &&
                   tok->ne[0] == (img->ne[1] / p) * (img->ne[2] / p) && tok->ne[1] == p * p * img->ne[0],
               "%s: image %s and tokens %s do not fit patch %d", op, DESC(img), DESC(tok), p);
}

void sl_op_patchify(sl_ctx *c, sl_tensor *y, const sl_tensor *x, int p, sl_patch_order order) {
    need_act(x, "patchify", "x");
    need_act(y, "patchify", "y");
    check_patch(x, y, p, "patchify");
    RUN(c, patchify, y, x, p, order);
}

void sl_op_unpatchify(sl_ctx *c, sl_tensor *y, const sl_tensor *x, int p, sl_patch_order order) {
    need_act(x, "unpatchify", "x");
    need_act(y, "unpatchify", "y");
    check_patch(y, x, p, "unpatchify");
    RUN(c, unpatchify, y, x, p, order);
}

void sl_op_permute(sl_ctx *c, sl_tensor *y, const sl_tensor *x, const int perm[4]) {
    need_act(x, "permute", "x");
    SL_ASSERT(y->dtype == x->dtype && y->ndim == x->ndim);
    int seen = 0;
    for (int i = 0; i < x->ndim; i++) {
        SL_ASSERT(perm[i] >= 0 && perm[i] < x->ndim && !(seen & (1 << perm[i])));
        seen |= 1 << perm[i];
        SL_ASSERTF(y->ne[i] == x->ne[perm[i]], "permute: y %s is not a permutation of x %s", DESC(y), DESC(x));
    }
    RUN(c, permute, y, x, perm);
}

void sl_op_concat(sl_ctx *c, sl_tensor *y, const sl_tensor *a, const sl_tensor *b, int dim) {
    need_act(a, "concat", "a");
    SL_ASSERT(a->dtype == b->dtype && y->dtype == a->dtype && a->ndim == b->ndim && y->ndim == a->ndim);
    SL_ASSERT(dim >= 0 && dim < a->ndim);
    for (int i = 0; i < a->ndim; i++) {
        int64_t want = i == dim ? a->ne[i] + b->ne[i] : a->ne[i];
        SL_ASSERTF((i == dim || b->ne[i] == a->ne[i]) && y->ne[i] == want,
                   "concat: %s + %s along %d does not give %s", DESC(a), DESC(b), dim, DESC(y));
    }
    RUN(c, concat, y, a, b, dim);
}

void sl_op_slice(sl_ctx *c, sl_tensor *y, const sl_tensor *x, int dim, int64_t start) {
    need_act(x, "slice", "x");
    SL_ASSERT(y->dtype == x->dtype && y->ndim == x->ndim && dim >= 0 && dim < x->ndim);
    for (int i = 0; i < x->ndim; i++)
        SL_ASSERTF(i == dim ? (start >= 0 && start + y->ne[i] <= x->ne[i]) : y->ne[i] == x->ne[i],
                   "slice: y %s at %lld along %d is not inside x %s", DESC(y), (long long)start, dim, DESC(x));
    RUN(c, slice, y, x, dim, start);
}

void sl_op_copy(sl_ctx *c, sl_tensor *y, const sl_tensor *x) {
    need_act(y, "copy", "y");
    SL_ASSERTF(sl_dtype_get(x->dtype)->is_float, "copy: x %s is not a float or block type", DESC(x));
    SL_ASSERTF(sl_tensor_numel(y) == sl_tensor_numel(x) && sl_tensor_ncols(y) == sl_tensor_ncols(x),
               "copy: %s into %s", DESC(x), DESC(y));
    RUN(c, copy, y, x);
}

void sl_op_get_rows(sl_ctx *c, sl_tensor *y, const sl_tensor *table, const sl_tensor *ids) {
    need_act(y, "get_rows", "y");
    SL_ASSERTF(table->ndim == 2 && sl_dtype_get(table->dtype)->is_float && ids->dtype == SL_DTYPE_I32 &&
                   ids->ndim == 1 && y->ndim == 2 && y->ne[0] == ids->ne[0] && y->ne[1] == table->ne[1],
               "get_rows: table %s, ids %s, y %s", DESC(table), DESC(ids), DESC(y));
    RUN(c, get_rows, y, table, ids);
}

void sl_op_repeat_rows(sl_ctx *c, sl_tensor *y, const sl_tensor *x) {
    need_act(y, "repeat_rows", "y");
    SL_ASSERTF(sl_dtype_get(x->dtype)->is_float && !sl_dtype_get(x->dtype)->is_quant &&
                   sl_tensor_numel(x) == sl_tensor_ncols(y),
               "repeat_rows: x %s is not one row of y %s", DESC(x), DESC(y));
    RUN(c, repeat_rows, y, x);
}

void sl_op_timestep_embed(sl_ctx *c, sl_tensor *y, const float *t, int n, float t_scale,
                          float max_period, bool cos_first) {
    SL_ASSERTF(y->dtype == SL_DTYPE_F32 && y->ndim == 2 && y->ne[0] == n && y->ne[1] % 2 == 0,
               "timestep_embed: y %s for %d values", DESC(y), n);
    RUN(c, timestep_embed, y, t, n, t_scale, max_period, cos_first);
}

void sl_op_fill(sl_ctx *c, sl_tensor *y, float value) {
    need_act(y, "fill", "y");
    RUN(c, fill, y, value);
}
