/* The adversarial residency test backend (see test_res.h). */
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "test_res.h"

enum { HIST = 64 }; /* event generations remembered (times of recent records) */

struct sl_event {
    uint64_t gen;  /* records enqueued */
    uint64_t done; /* records executed */
    double t[HIST];
};

typedef enum ck { C_UPLOAD, C_RECORD, C_WAIT, C_MATMUL, C_BINARY, C_FILL, C_COPY } ck;

typedef struct cmd {
    ck kind;
    struct cmd *next;
    void *dst;
    const void *src;
    size_t n;
    void *owned; /* snapshot of a compute-queue upload's source */
    sl_event *ev;
    uint64_t gen;
    sl_tensor y, x, w, b;
    bool has_b;
    sl_binary_op op;
    float v;
} cmd;

typedef struct mem {
    uint8_t *p;
    size_t n;
    bool dev;
} mem;

typedef struct rf {
    rf_opts o;
    cmd *head[2], *tail[2];
    double clock[2];
    mem *mems;
    int n_mems, cap_mems;
    size_t dev_used, dev_peak, host_used, copy_bytes;
    uint64_t rng;
} rf;

static rf *F(sl_backend *be) {
    return be->impl;
}

static uint64_t rnd(rf *f) {
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 7;
    f->rng ^= f->rng << 17;
    return f->rng;
}

/* ---- memory ---- */

static void add_mem(rf *f, uint8_t *p, size_t n, bool dev) {
    if (f->n_mems == f->cap_mems) {
        f->cap_mems = f->cap_mems ? 2 * f->cap_mems : 64;
        f->mems = realloc(f->mems, (size_t)f->cap_mems * sizeof *f->mems);
        SL_ASSERT(f->mems);
    }
    f->mems[f->n_mems++] = (mem){p, n, dev};
}

static const mem *find_mem(rf *f, const void *p, size_t n) {
    for (int i = 0; i < f->n_mems; i++) {
        const mem *m = &f->mems[i];
        if ((const uint8_t *)p >= m->p && (const uint8_t *)p + n <= m->p + m->n) return m;
    }
    return NULL;
}

/* In device mode every operand must lie in one device allocation. */
static void need_dev(rf *f, const void *p, size_t n, const char *what) {
    if (f->o.plain || !p) return;
    const mem *m = find_mem(f, p, n);
    SL_ASSERTF(m && m->dev, "rf: %s (%zu bytes at %p) is not device memory", what, n, p);
}

static sl_status rf_alloc(sl_backend *be, size_t bytes, void **out, sl_err *err) {
    rf *f = F(be);
    size_t b = SL_ALIGN_UP(bytes ? bytes : 1, (size_t)256);
    if (!f->o.plain && f->o.budget && f->dev_used + b > f->o.budget)
        return sl_err_set(err, SL_ERR_OOM_DEVICE, "rf: %zu bytes needed, %zu free", b,
                          f->o.budget - f->dev_used);
    void *p = NULL;
    if (posix_memalign(&p, 256, b)) return sl_err_set(err, SL_ERR_OOM_HOST, "rf: no memory");
    memset(p, 0xA5, b); /* fresh device memory is garbage */
    add_mem(f, p, b, true);
    f->dev_used += b;
    if (f->dev_used > f->dev_peak) f->dev_peak = f->dev_used;
    *out = p;
    return SL_OK;
}

static sl_status rf_host_alloc(sl_backend *be, size_t bytes, void **out, sl_err *err) {
    rf *f = F(be);
    void *p = NULL;
    if (f->o.host_limit && f->host_used + bytes > f->o.host_limit)
        return sl_err_set(err, SL_ERR_OOM_HOST, "rf: cannot pin %zu bytes (%zu in use, limit %zu)",
                          bytes, f->host_used, f->o.host_limit);
    if (posix_memalign(&p, 256, bytes ? bytes : 1))
        return sl_err_set(err, SL_ERR_OOM_HOST, "rf: no memory");
    add_mem(f, p, bytes ? bytes : 1, false);
    f->host_used += bytes ? bytes : 1;
    *out = p;
    return SL_OK;
}

static void drop_mem(rf *f, void *p, bool dev) {
    for (int i = 0; i < f->n_mems; i++) {
        if (f->mems[i].p == p) {
            SL_ASSERTF(f->mems[i].dev == dev, "rf: free of %s memory with the wrong call",
                       dev ? "host" : "device");
            if (dev)
                f->dev_used -= f->mems[i].n;
            else
                f->host_used -= f->mems[i].n;
            f->mems[i] = f->mems[--f->n_mems];
            free(p);
            return;
        }
    }
    SL_ASSERTF(0, "rf: free of an unknown pointer %p", p);
}

static sl_status rf_sync(sl_backend *be);
/* Like cudaFree / cudaFreeHost: queued work finishes first. */
static void rf_free(sl_backend *be, void *p) {
    if (!p) return;
    rf_sync(be);
    drop_mem(F(be), p, true);
}
static void rf_host_free(sl_backend *be, void *p) {
    if (!p) return;
    rf_sync(be);
    drop_mem(F(be), p, false);
}

static void rf_mem_info(sl_backend *be, size_t *fr, size_t *tot) {
    rf *f = F(be);
    size_t t = f->o.budget ? f->o.budget : (size_t)1 << 40;
    if (fr) *fr = t - f->dev_used;
    if (tot) *tot = t;
}

/* ---- queues ---- */

static void push(sl_backend *be, int q, cmd *c) {
    rf *f = F(be);
    c->next = NULL;
    if (f->tail[q])
        f->tail[q]->next = c;
    else
        f->head[q] = c;
    f->tail[q] = c;
}

static bool runnable(rf *f, int q) {
    cmd *c = f->head[q];
    if (!c) return false;
    if (c->kind == C_WAIT) return c->ev->done >= c->gen;
    return true;
}

static float wval(const sl_tensor *w, int64_t i) {
    switch (w->dtype) {
    case SL_DTYPE_F32: {
        float v;
        memcpy(&v, (const uint8_t *)w->data + 4 * i, 4);
        return v;
    }
    case SL_DTYPE_BF16: {
        uint16_t h;
        memcpy(&h, (const uint8_t *)w->data + 2 * i, 2);
        return sl_bf16_to_f32(h);
    }
    case SL_DTYPE_F16: {
        uint16_t h;
        memcpy(&h, (const uint8_t *)w->data + 2 * i, 2);
        return sl_f16_to_f32(h);
    }
    default:
        SL_ASSERTF(0, "rf: dtype %s not implemented", sl_dtype_name(w->dtype));
    }
    return 0;
}

static void exec(rf *f, int q, cmd *c) {
    switch (c->kind) {
    case C_UPLOAD:
        memcpy(c->dst, c->owned ? c->owned : c->src, c->n);
        if (q == SL_QUEUE_COPY) f->clock[q] += (double)c->n / f->o.link_bytes_per_ms;
        break;
    case C_RECORD:
        SL_ASSERT(c->gen > c->ev->done && c->gen + HIST > c->ev->gen);
        c->ev->done = c->gen;
        c->ev->t[c->gen % HIST] = f->clock[q];
        break;
    case C_WAIT:
        if (c->gen) {
            SL_ASSERTF(c->gen + HIST > c->ev->gen, "rf: event history too short");
            double t = c->ev->t[c->gen % HIST];
            if (t > f->clock[q]) f->clock[q] = t;
        }
        break;
    case C_MATMUL: {
        int64_t K = sl_tensor_ncols(&c->x), M = sl_tensor_nrows(&c->x), N = c->w.ne[0];
        float *y = c->y.data;
        const float *x = c->x.data;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                float acc = 0;
                for (int64_t k = 0; k < K; k++)
                    acc += x[m * K + k] * wval(&c->w, n * K + k);
                if (c->has_b) acc += wval(&c->b, n);
                y[m * N + n] = acc;
            }
        f->clock[q] += 2.0 * (double)M * (double)N * (double)K / f->o.flops_per_ms;
        break;
    }
    case C_BINARY: {
        int64_t n = sl_tensor_numel(&c->y), nb = sl_tensor_numel(&c->w);
        float *y = c->y.data;
        const float *a = c->x.data, *b = c->w.data;
        for (int64_t i = 0; i < n; i++) {
            float bv = b[nb == n ? i : nb == 1 ? 0 : i % nb];
            y[i] = c->op == SL_BINARY_ADD   ? a[i] + bv
                   : c->op == SL_BINARY_SUB ? a[i] - bv
                                            : a[i] * bv;
        }
        break;
    }
    case C_FILL: {
        float *y = c->y.data;
        for (int64_t i = 0; i < sl_tensor_numel(&c->y); i++)
            y[i] = c->v;
        break;
    }
    case C_COPY:
        memcpy(c->dst, c->src, c->n);
        break;
    }
}

/* Run one command of queue q. */
static void step(rf *f, int q) {
    cmd *c = f->head[q];
    f->head[q] = c->next;
    if (!f->head[q]) f->tail[q] = NULL;
    exec(f, q, c);
    free(c->owned);
    free(c);
}

/* Run one command chosen by the policy; false when nothing can run. */
static bool step_any(rf *f) {
    bool r0 = runnable(f, 0), r1 = runnable(f, 1);
    if (!r0 && !r1) return false;
    int q;
    if (r0 && r1) {
        if (f->o.policy == RF_COPY_FIRST)
            q = SL_QUEUE_COPY;
        else if (f->o.policy == RF_COMPUTE_FIRST)
            q = SL_QUEUE_COMPUTE;
        else
            q = (int)(rnd(f) & 1);
    } else {
        q = r0 ? 0 : 1;
    }
    step(f, q);
    return true;
}

static void run_until_empty(rf *f, int q) {
    while (f->head[q])
        SL_ASSERTF(step_any(f), "rf: deadlock: a queue waits on an event that never comes");
}

static void after_submit(sl_backend *be) {
    rf *f = F(be);
    if (f->o.policy != RF_RANDOM) return;
    int k = (int)(rnd(f) % 4);
    for (int i = 0; i < k; i++)
        if (!step_any(f)) break;
}

static cmd *new_cmd(ck kind) {
    cmd *c = calloc(1, sizeof *c);
    SL_ASSERT(c);
    c->kind = kind;
    return c;
}

static sl_status rf_upload(sl_backend *be, sl_queue q, void *dst, const void *src, size_t n) {
    rf *f = F(be);
    need_dev(f, dst, n, "upload destination");
    if (q == SL_QUEUE_COPY && !f->o.plain) {
        const mem *m = find_mem(f, src, n);
        SL_ASSERTF(m && !m->dev, "rf: copy-queue upload from memory that is not host_alloc'd");
        f->copy_bytes += n;
    }
    cmd *c = new_cmd(C_UPLOAD);
    c->dst = dst;
    c->src = src;
    c->n = n;
    if (q == SL_QUEUE_COMPUTE) {
        c->owned = malloc(n ? n : 1);
        SL_ASSERT(c->owned);
        memcpy(c->owned, src, n);
    }
    push(be, q, c);
    after_submit(be);
    return SL_OK;
}

static sl_status rf_download(sl_backend *be, void *dst, const void *src, size_t n) {
    rf *f = F(be);
    need_dev(f, src, n, "download source");
    run_until_empty(f, SL_QUEUE_COMPUTE);
    memcpy(dst, src, n);
    return SL_OK;
}

static sl_status rf_d2d(sl_backend *be, void *dst, const void *src, size_t n) {
    cmd *c = new_cmd(C_COPY);
    c->dst = dst;
    c->src = src;
    c->n = n;
    push(be, SL_QUEUE_COMPUTE, c);
    return SL_OK;
}

static sl_status rf_event_create(sl_backend *be, sl_event **out) {
    *out = calloc(1, sizeof **out);
    return *out ? SL_OK : SL_ERR_OOM_HOST;
}
static void rf_event_destroy(sl_backend *be, sl_event *e) {
    rf *f = F(be);
    for (int q = 0; q < 2; q++)
        for (cmd *c = f->head[q]; c; c = c->next)
            SL_ASSERTF(c->ev != e, "rf: event destroyed while queued work uses it");
    free(e);
}
static sl_status rf_event_record(sl_backend *be, sl_event *e, sl_queue q) {
    cmd *c = new_cmd(C_RECORD);
    c->ev = e;
    c->gen = ++e->gen;
    push(be, q, c);
    after_submit(be);
    return SL_OK;
}
static sl_status rf_queue_wait(sl_backend *be, sl_queue q, sl_event *e) {
    cmd *c = new_cmd(C_WAIT);
    c->ev = e;
    c->gen = e->gen; /* the point recorded last; 0: never recorded, no wait (as CUDA) */
    push(be, q, c);
    after_submit(be);
    return SL_OK;
}
static sl_status rf_event_sync(sl_backend *be, sl_event *e) {
    rf *f = F(be);
    while (e->done < e->gen)
        SL_ASSERTF(step_any(f), "rf: deadlock in event_sync");
    return SL_OK;
}
static sl_status rf_elapsed(sl_backend *be, sl_event *a, sl_event *b, float *ms) {
    SL_ASSERTF(a->done == a->gen && b->done == b->gen && a->gen && b->gen,
               "rf: event_elapsed on events not completed");
    *ms = (float)(b->t[b->gen % HIST] - a->t[a->gen % HIST]);
    return SL_OK;
}
static sl_status rf_sync(sl_backend *be) {
    rf *f = F(be);
    run_until_empty(f, 0);
    run_until_empty(f, 1);
    return SL_OK;
}

static sl_status rf_matmul(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                           const sl_tensor *bias) {
    rf *f = F(be);
    SL_ASSERTF(x->dtype == SL_DTYPE_F32 && y->dtype == SL_DTYPE_F32, "rf: matmul needs f32 x, y");
    need_dev(f, w->data, sl_tensor_nbytes(w), "matmul weight");
    if (bias) need_dev(f, bias->data, sl_tensor_nbytes(bias), "matmul bias");
    cmd *c = new_cmd(C_MATMUL);
    c->y = *y;
    c->x = *x;
    c->w = *w;
    if (bias) {
        c->b = *bias;
        c->has_b = true;
    }
    push(be, SL_QUEUE_COMPUTE, c);
    after_submit(be);
    return SL_OK;
}

static sl_status rf_binary(sl_backend *be, sl_binary_op op, sl_tensor *y, const sl_tensor *a,
                           const sl_tensor *b) {
    SL_ASSERT(a->dtype == SL_DTYPE_F32 && b->dtype == SL_DTYPE_F32 && y->dtype == SL_DTYPE_F32);
    cmd *c = new_cmd(C_BINARY);
    c->op = op;
    c->y = *y;
    c->x = *a;
    c->w = *b;
    push(be, SL_QUEUE_COMPUTE, c);
    after_submit(be);
    return SL_OK;
}

static sl_status rf_fill(sl_backend *be, sl_tensor *y, float v) {
    SL_ASSERT(y->dtype == SL_DTYPE_F32);
    cmd *c = new_cmd(C_FILL);
    c->y = *y;
    c->v = v;
    push(be, SL_QUEUE_COMPUTE, c);
    return SL_OK;
}

static sl_status rf_copy(sl_backend *be, sl_tensor *y, const sl_tensor *x) {
    SL_ASSERT(x->dtype == y->dtype);
    return rf_d2d(be, y->data, x->data, sl_tensor_nbytes(x));
}

static void rf_destroy(sl_backend *be) {
    rf *f = F(be);
    rf_sync(be);
    SL_ASSERTF(f->n_mems == 0, "rf: %d allocations leaked (device %zu, host %zu bytes)", f->n_mems,
               f->dev_used, f->host_used);
    free(f->mems);
    free(f);
    free(be);
}

static const sl_backend_vt g_rf_vt = {
    .destroy = rf_destroy,
    .alloc = rf_alloc,
    .free = rf_free,
    .host_alloc = rf_host_alloc,
    .host_free = rf_host_free,
    .mem_info = rf_mem_info,
    .upload = rf_upload,
    .download = rf_download,
    .copy_d2d = rf_d2d,
    .event_create = rf_event_create,
    .event_destroy = rf_event_destroy,
    .event_record = rf_event_record,
    .queue_wait = rf_queue_wait,
    .event_sync = rf_event_sync,
    .event_elapsed = rf_elapsed,
    .sync = rf_sync,
    .matmul = rf_matmul,
    .binary = rf_binary,
    .fill = rf_fill,
    .copy = rf_copy,
};

sl_backend *rf_create(const rf_opts *o) {
    sl_backend *be = calloc(1, sizeof *be);
    rf *f = calloc(1, sizeof *f);
    SL_ASSERT(be && f);
    f->o = *o;
    if (f->o.link_bytes_per_ms <= 0) f->o.link_bytes_per_ms = 1e6;
    if (f->o.flops_per_ms <= 0) f->o.flops_per_ms = 1e7;
    f->rng = o->seed * 2654435761u + 88172645463325252ull;
    be->vt = &g_rf_vt;
    be->impl = f;
    be->info.name = "rf";
    strcpy(be->info.device, "residency test fake");
    be->info.is_device = !o->plain;
    be->info.host_visible = o->plain;
    be->info.can_time = true;
    be->info.act_dtype = SL_DTYPE_F32;
    return be;
}

size_t rf_device_used(sl_backend *be) {
    return F(be)->dev_used;
}
size_t rf_device_peak(sl_backend *be) {
    return F(be)->dev_peak;
}
size_t rf_host_used(sl_backend *be) {
    return F(be)->host_used;
}
size_t rf_copy_bytes(sl_backend *be) {
    return F(be)->copy_bytes;
}

void rf_poison_host(sl_backend *be) {
    rf *f = F(be);
    rf_sync(be);
    for (int i = 0; i < f->n_mems; i++)
        if (!f->mems[i].dev) memset(f->mems[i].p, 0xFF, f->mems[i].n);
}
