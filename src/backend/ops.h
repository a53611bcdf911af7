/* backend/ops.h — what model code calls: a compute context with an activation arena, and one
 * checked wrapper per op of the backend table.
 *
 * A context binds a backend, an activation dtype and one activation arena (device memory sized
 * before the stage runs, ARCHITECTURE §5). Tensors made with sl_new* are carved from the arena
 * and live until the arena is reset below them (sl_ctx_mark / sl_ctx_reset, stack order).
 *
 * Errors are sticky: the first failing op (or an arena overflow) records its status and message
 * in the context, and every later op is skipped. A forward pass checks sl_ctx_status() once at
 * its end. Shape and dtype mismatches between op arguments are bugs in model code and hit
 * SL_ASSERT with both shapes in the message.
 *
 * Dry runs: a context over a measuring backend with arena_base NULL hands out fake addresses and
 * records the arena's peak; the same forward code then tells how large the arena must be. */
#ifndef SL_BACKEND_OPS_H
#define SL_BACKEND_OPS_H

#include "backend/backend.h"

typedef struct sl_ctx {
    sl_backend *be;
    sl_dtype act;      /* activation dtype model code should use for hidden states */
    char *base;        /* arena base (NULL: measuring, addresses are fake) */
    size_t cap;        /* arena bytes */
    size_t off;        /* bytes in use */
    size_t peak;       /* high-water mark of off */
    sl_status status;  /* first failure, SL_OK while healthy */
    sl_err err;
} sl_ctx;

#define SL_ARENA_ALIGN 256

/* base may be NULL only for measuring (then cap is ignored and nothing fails for space). */
void sl_ctx_init(sl_ctx *c, sl_backend *be, void *base, size_t cap);
static inline sl_status sl_ctx_status(const sl_ctx *c) { return c->status; }
/* Copy the context's failure (if any) into err and return its status. */
sl_status sl_ctx_take_error(sl_ctx *c, sl_err *err);
/* Record a failure from outside the op wrappers (first one wins). */
void sl_ctx_fail(sl_ctx *c, sl_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static inline size_t sl_ctx_mark(const sl_ctx *c) { return c->off; }
void sl_ctx_reset(sl_ctx *c, size_t mark);

/* A tensor carved from the arena (data NULL and the context failed when it does not fit). */
sl_tensor sl_new(sl_ctx *c, sl_dtype dt, int ndim, const int64_t *ne);
#define sl_new1(c, dt, a) sl_new((c), (dt), 1, (const int64_t[]){(a)})
#define sl_new2(c, dt, a, b) sl_new((c), (dt), 2, (const int64_t[]){(a), (b)})
#define sl_new3(c, dt, a, b, cc) sl_new((c), (dt), 3, (const int64_t[]){(a), (b), (cc)})
#define sl_new4(c, dt, a, b, cc, d) sl_new((c), (dt), 4, (const int64_t[]){(a), (b), (cc), (d)})
/* A tensor of x's shape and the given dtype. */
sl_tensor sl_new_like(sl_ctx *c, const sl_tensor *x, sl_dtype dt);

/* Host ↔ arena transfers on the compute queue (src may be reused once the call returns). */
void sl_upload(sl_ctx *c, sl_tensor *dst, const void *src);
/* Waits for queued work, then copies to host. */
void sl_download(sl_ctx *c, void *dst, const sl_tensor *src);

/* ---- ops: see backend.h for the exact semantics of each ---- */
void sl_op_matmul(sl_ctx *c, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                  const sl_tensor *bias);
void sl_op_binary(sl_ctx *c, sl_binary_op op, sl_tensor *y, const sl_tensor *a, const sl_tensor *b);
#define sl_op_add(c, y, a, b) sl_op_binary((c), SL_BINARY_ADD, (y), (a), (b))
#define sl_op_sub(c, y, a, b) sl_op_binary((c), SL_BINARY_SUB, (y), (a), (b))
#define sl_op_mul(c, y, a, b) sl_op_binary((c), SL_BINARY_MUL, (y), (a), (b))
void sl_op_scale(sl_ctx *c, sl_tensor *y, const sl_tensor *x, float s, float bias);
void sl_op_unary(sl_ctx *c, sl_unary_op op, sl_tensor *y, const sl_tensor *x);
void sl_op_glu(sl_ctx *c, sl_unary_op act, sl_tensor *y, const sl_tensor *g, const sl_tensor *u);
void sl_op_rms_norm(sl_ctx *c, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                    const sl_tensor *mod, float eps);
void sl_op_layer_norm(sl_ctx *c, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                      const sl_tensor *b, const sl_tensor *scale, const sl_tensor *shift, float eps);
void sl_op_group_norm(sl_ctx *c, sl_tensor *y, const sl_tensor *x, int groups, const sl_tensor *w,
                      const sl_tensor *b, float eps, bool silu);
void sl_op_rope(sl_ctx *c, sl_tensor *y, const sl_tensor *x, const sl_tensor *norm_w, float eps,
                const sl_tensor *tab, sl_rope_mode mode);
void sl_op_attention(sl_ctx *c, sl_tensor *o, const sl_tensor *q, const sl_tensor *k,
                     const sl_tensor *v, float scale, bool causal);
void sl_op_softmax(sl_ctx *c, sl_tensor *y, const sl_tensor *x);
void sl_op_gated_add(sl_ctx *c, sl_tensor *x, const sl_tensor *y, const sl_tensor *w,
                     const sl_tensor *gate, float eps);
void sl_op_conv2d(sl_ctx *c, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                  const sl_tensor *b, int stride, const int pad[4]);
void sl_op_upsample_nearest(sl_ctx *c, sl_tensor *y, const sl_tensor *x, int factor);
void sl_op_patchify(sl_ctx *c, sl_tensor *y, const sl_tensor *x, int p, sl_patch_order order);
void sl_op_unpatchify(sl_ctx *c, sl_tensor *y, const sl_tensor *x, int p, sl_patch_order order);
void sl_op_permute(sl_ctx *c, sl_tensor *y, const sl_tensor *x, const int perm[4]);
void sl_op_concat(sl_ctx *c, sl_tensor *y, const sl_tensor *a, const sl_tensor *b, int dim);
void sl_op_slice(sl_ctx *c, sl_tensor *y, const sl_tensor *x, int dim, int64_t start);
void sl_op_copy(sl_ctx *c, sl_tensor *y, const sl_tensor *x);
void sl_op_get_rows(sl_ctx *c, sl_tensor *y, const sl_tensor *table, const sl_tensor *ids);
void sl_op_repeat_rows(sl_ctx *c, sl_tensor *y, const sl_tensor *x);
void sl_op_timestep_embed(sl_ctx *c, sl_tensor *y, const float *t, int n, float t_scale,
                          float max_period, bool cos_first);
void sl_op_fill(sl_ctx *c, sl_tensor *y, float value);

#endif
