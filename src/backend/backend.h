/* backend/backend.h — the backend vtable (ARCHITECTURE §6).
 *
 * A backend owns a compute queue and a copy queue, memory (device buffers and pinned host
 * buffers), events, and implements the op table. Three backends implement it:
 *   cpu      the reference; runs everywhere. Optionally presents itself as a device with its own
 *            memory budget and an asynchronous copy queue (a worker thread), so that the residency
 *            engine's ordering runs in CI exactly as on a GPU.
 *   cuda     the fast one (compiled when nvcc is found).
 *   measure  launches nothing; allocations return fake addresses and are counted (dry runs).
 *
 * Queues and ordering. Work on one queue runs in submission order. Cross-queue ordering is by
 * events only: event_record(e, q) marks the point reached by q; queue_wait(q2, e) makes q2's later
 * work wait for that point without blocking the host. event_sync blocks the host.
 *
 * Ops. Every op is enqueued on the compute queue and reads/writes tensors whose data lives in
 * this backend's memory. Ops do not validate shapes (backend/ops.h does that once for every
 * backend); they return SL_ERR_BACKEND (with a message) when the backend fails, or
 * SL_ERR_UNSUPPORTED for a dtype combination they do not implement.
 *
 * Layouts used by the ops (row-major, outermost first):
 *   tokens     [T, D]          T = batch·sequence rows, D features
 *   heads      [T, H, Dh]      or [B, S, H, Dh] for attention
 *   images     [C, H, W]       one image; batches are looped by the caller
 * Weights of matmul are PyTorch Linear weights [N, K] (y = x·Wᵀ + b), in any sl_dtype for which
 * sl_dtype_get(dt)->is_float is true; they are dequantised per tile, never whole up front. */
#ifndef SL_BACKEND_BACKEND_H
#define SL_BACKEND_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"
#include "core/tensor.h"

typedef struct sl_backend sl_backend;
typedef struct sl_event sl_event;

typedef enum sl_queue { SL_QUEUE_COMPUTE = 0, SL_QUEUE_COPY = 1 } sl_queue;

typedef enum sl_unary_op {
    SL_UNARY_SILU,
    SL_UNARY_GELU_TANH,
    SL_UNARY_GELU_ERF,
    SL_UNARY_QUICK_GELU, /* x·σ(1.702x) (CLIP) */
    SL_UNARY_TANH,
    SL_UNARY_RELU,
    SL_UNARY_NEG,
    SL_UNARY_EXP,
} sl_unary_op;

typedef enum sl_binary_op { SL_BINARY_ADD, SL_BINARY_SUB, SL_BINARY_MUL } sl_binary_op;

typedef enum sl_rope_mode {
    SL_ROPE_INTERLEAVED, /* pairs (2p, 2p+1): Z-Image, Flux DiTs */
    SL_ROPE_HALF,        /* pairs (d, d + Dh/2): Qwen3/Llama "rotate half" */
} sl_rope_mode;

typedef enum sl_patch_order {
    SL_PATCH_PW_C, /* feature (ph·p + pw)·C + c: channel fastest (Z-Image) */
    SL_PATCH_C_PW, /* feature (c·p + ph)·p + pw (Flux) */
} sl_patch_order;

typedef struct sl_backend_info {
    const char *name;       /* "cpu", "cuda", "measure" */
    char device[128];       /* human-readable device name */
    bool is_device;         /* memory distinct from the host: weights must be uploaded */
    bool host_visible;      /* host pointers (mapped files) may be used directly as op inputs */
    bool can_time;          /* event_elapsed works */
    sl_dtype act_dtype;     /* activation dtype this backend runs best with (f32 on cpu, bf16 on cuda) */
    int cc;                 /* CUDA compute capability ×10 (90 for sm_90), 0 elsewhere */
    size_t private_bytes;   /* device memory the backend holds or may grow for itself (GEMM
                               workspace, dequant/im2col scratch) beside callers' allocations;
                               VRAM budgets (--max-vram) subtract it */
} sl_backend_info;

typedef struct sl_backend_vt {
    void (*destroy)(sl_backend *be);

    /* ---- memory ---- */
    /* Device memory, 256-byte aligned. SL_ERR_OOM_DEVICE (with needed/free bytes) on failure. */
    sl_status (*alloc)(sl_backend *be, size_t bytes, void **out, sl_err *err);
    void (*free)(sl_backend *be, void *p);
    /* Host memory usable for asynchronous uploads (pinned on CUDA), 256-byte aligned. */
    sl_status (*host_alloc)(sl_backend *be, size_t bytes, void **out, sl_err *err);
    void (*host_free)(sl_backend *be, void *p);
    /* Free and total device memory as the backend sees it now (a budget on cpu-as-device). */
    void (*mem_info)(sl_backend *be, size_t *free_bytes, size_t *total_bytes);

    /* ---- transfers ---- */
    /* Copy n bytes host→device, queued on q. On SL_QUEUE_COPY, src must be host_alloc memory and
     * stay valid until the copy completes (order by an event). On SL_QUEUE_COMPUTE any host
     * memory is allowed and may be reused as soon as the call returns. */
    sl_status (*upload)(sl_backend *be, sl_queue q, void *dst, const void *src, size_t n);
    /* Copy n bytes device→host after all compute work queued so far; returns when done. */
    sl_status (*download)(sl_backend *be, void *dst, const void *src, size_t n);
    /* Device→device copy on the compute queue. */
    sl_status (*copy_d2d)(sl_backend *be, void *dst, const void *src, size_t n);

    /* ---- events ---- */
    sl_status (*event_create)(sl_backend *be, sl_event **out);
    void (*event_destroy)(sl_backend *be, sl_event *e);
    sl_status (*event_record)(sl_backend *be, sl_event *e, sl_queue q);
    sl_status (*queue_wait)(sl_backend *be, sl_queue q, sl_event *e);
    sl_status (*event_sync)(sl_backend *be, sl_event *e);
    /* Milliseconds between two completed events (both recorded, both done). */
    sl_status (*event_elapsed)(sl_backend *be, sl_event *a, sl_event *b, float *ms);
    /* Wait for both queues to drain. */
    sl_status (*sync)(sl_backend *be);

    /* ---- ops (all on the compute queue; shapes already checked by ops.c) ---- */
    /* y[M,N] = x[M,K]·w[N,K]ᵀ (+ bias[N]). x, y: f32/bf16/f16. bias may be NULL. */
    sl_status (*matmul)(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                        const sl_tensor *bias);
    /* y = a ∘ b; b has a's shape, or is a row [ncols(a)] broadcast over rows, or one element. */
    sl_status (*binary)(sl_backend *be, sl_binary_op op, sl_tensor *y, const sl_tensor *a,
                        const sl_tensor *b);
    /* y = x·s + bias (scalars). */
    sl_status (*scale)(sl_backend *be, sl_tensor *y, const sl_tensor *x, float s, float bias);
    sl_status (*unary)(sl_backend *be, sl_unary_op op, sl_tensor *y, const sl_tensor *x);
    /* y = act(g) ⊙ u (SwiGLU with SL_UNARY_SILU, GeGLU with SL_UNARY_GELU_TANH). */
    sl_status (*glu)(sl_backend *be, sl_unary_op act, sl_tensor *y, const sl_tensor *g,
                     const sl_tensor *u);
    /* y = x / sqrt(mean(x²) + eps) ⊙ w ⊙ mod over the last dim; w [D] and mod [D] may be NULL.
     * Statistics in f32. mod is the modulation factor the caller already formed (1 + scale). */
    sl_status (*rms_norm)(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                          const sl_tensor *mod, float eps);
    /* y = ((x − mean)/sqrt(var + eps) ⊙ w + b) ⊙ scale + shift over the last dim; any of
     * w, b, scale, shift may be NULL. */
    sl_status (*layer_norm)(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                            const sl_tensor *b, const sl_tensor *scale, const sl_tensor *shift,
                            float eps);
    /* x [C, H, W]: normalise each of `groups` groups of C/groups channels over all their
     * elements, then per-channel affine w, b [C] (may be NULL), then SiLU when silu is set. */
    sl_status (*group_norm)(sl_backend *be, sl_tensor *y, const sl_tensor *x, int groups,
                            const sl_tensor *w, const sl_tensor *b, float eps, bool silu);
    /* x [T, H, Dh] → y: optional per-head RMSNorm (norm_w [Dh], eps) then rotary embedding with
     * tab f32 [T, Dh/2, 2] holding (cos, sin) of every pair of every row. */
    sl_status (*rope)(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *norm_w,
                      float eps, const sl_tensor *tab, sl_rope_mode mode);
    /* o = softmax(q·kᵀ·scale [+ causal mask]) · v. q, o [B, Sq, Hq, Dh]; k, v [B, Sk, Hk, Dh];
     * Hq a multiple of Hk (GQA: query head h reads kv head h / (Hq/Hk)). Causal masks key j > i
     * (Sq == Sk). Softmax and accumulation in f32. No Sq×Sk matrix needs to exist. */
    sl_status (*attention)(sl_backend *be, sl_tensor *o, const sl_tensor *q, const sl_tensor *k,
                           const sl_tensor *v, float scale, bool causal);
    /* Softmax over the last dim, in f32. */
    sl_status (*softmax)(sl_backend *be, sl_tensor *y, const sl_tensor *x);
    /* x += gate ⊙ rms_norm(y; w, eps) — the tanh-gated sandwich residual. w NULL: no norm;
     * gate [D] NULL: gate 1. x is read and written. */
    sl_status (*gated_add)(sl_backend *be, sl_tensor *x, const sl_tensor *y, const sl_tensor *w,
                           const sl_tensor *gate, float eps);
    /* y [Cout, Ho, Wo] = conv(x [Cin, H, W], w [Cout, Cin, kh, kw]) + b [Cout];
     * pad = {top, bottom, left, right} zeros; Ho = (H + top + bottom − kh)/stride + 1. */
    sl_status (*conv2d)(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                        const sl_tensor *b, int stride, const int pad[4]);
    /* y [C, f·H, f·W] = nearest-neighbour upsample of x [C, H, W]. */
    sl_status (*upsample_nearest)(sl_backend *be, sl_tensor *y, const sl_tensor *x, int factor);
    /* x [C, H, W] → y [(H/p)·(W/p), p·p·C], tokens row-major over (h, w). */
    sl_status (*patchify)(sl_backend *be, sl_tensor *y, const sl_tensor *x, int p,
                          sl_patch_order order);
    /* The inverse: x [(H/p)·(W/p), p·p·C] → y [C, H, W]. */
    sl_status (*unpatchify)(sl_backend *be, sl_tensor *y, const sl_tensor *x, int p,
                            sl_patch_order order);
    /* y.ne[i] = x.ne[perm[i]] for i < ndim. */
    sl_status (*permute)(sl_backend *be, sl_tensor *y, const sl_tensor *x, const int perm[4]);
    /* y = cat(a, b) along dim. */
    sl_status (*concat)(sl_backend *be, sl_tensor *y, const sl_tensor *a, const sl_tensor *b,
                        int dim);
    /* y = x[..., start : start + y.ne[dim], ...] along dim. */
    sl_status (*slice)(sl_backend *be, sl_tensor *y, const sl_tensor *x, int dim, int64_t start);
    /* y = x converted to y's dtype (same element count; x may be any float or block dtype). */
    sl_status (*copy)(sl_backend *be, sl_tensor *y, const sl_tensor *x);
    /* y [n, D] = table [V, D] rows ids [n] (i32, device memory); table in any float dtype. */
    sl_status (*get_rows)(sl_backend *be, sl_tensor *y, const sl_tensor *table,
                          const sl_tensor *ids);
    /* Every row of y [.., D] = x [D] (or [1, D]). */
    sl_status (*repeat_rows)(sl_backend *be, sl_tensor *y, const sl_tensor *x);
    /* y [n, dim] f32: sinusoidal embedding of t[i]·t_scale (host values), frequencies
     * exp(−ln(max_period)·k/(dim/2)); cos half first when cos_first. */
    sl_status (*timestep_embed)(sl_backend *be, sl_tensor *y, const float *t, int n, float t_scale,
                                float max_period, bool cos_first);
    /* Every element of y = value. */
    sl_status (*fill)(sl_backend *be, sl_tensor *y, float value);
} sl_backend_vt;

struct sl_backend {
    const sl_backend_vt *vt;
    sl_backend_info info;
    void *impl;           /* backend-private state */
    char last_error[512]; /* message of the last failing call (set by the backend) */
};

/* ---- creating backends ---- */

typedef struct sl_cpu_options {
    int threads;              /* <= 0: all cores */
    bool as_device;           /* separate "device" memory with a budget and an async copy thread */
    size_t device_budget;     /* bytes of "device" memory when as_device (0: unlimited) */
} sl_cpu_options;

sl_status sl_backend_cpu_create(const sl_cpu_options *opt, sl_backend **out, sl_err *err);
/* device: CUDA ordinal. SL_ERR_UNSUPPORTED when sluice was built without CUDA or no GPU exists. */
sl_status sl_backend_cuda_create(int device, sl_backend **out, sl_err *err);
/* A measuring backend: no work, counts allocations. `info_like` (may be NULL) is copied into its
 * info (act_dtype, name of the backend it stands in for) so dry runs size what that backend
 * would allocate. */
sl_status sl_backend_measure_create(const sl_backend *like, sl_backend **out, sl_err *err);
/* Peak and current device bytes allocated through a measuring backend. */
void sl_backend_measure_stats(const sl_backend *be, size_t *current, size_t *peak);
void sl_backend_measure_reset_peak(sl_backend *be);

/* By name: "cpu", "cuda", "auto" (cuda when available, else cpu). */
sl_status sl_backend_create(const char *name, int threads, sl_backend **out, sl_err *err);
/* True when this build includes the CUDA backend. */
bool sl_backend_have_cuda(void);
void sl_backend_destroy(sl_backend *be); /* NULL is fine */

#endif
