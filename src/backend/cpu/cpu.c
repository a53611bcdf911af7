/* The CPU backend: memory, queues, events and the vtable (ops live in cpu_ops.c, cpu_matmul.c,
 * cpu_attn.c).
 *
 * Two modes (sl_cpu_options.as_device):
 *   plain      info.is_device = false, host_visible = true. Every queue is the calling thread:
 *              uploads, downloads and event records complete before the call returns.
 *   as_device  info.is_device = true, host_visible = false. alloc() memory is "device" memory
 *              counted against device_budget and filled with 0xff bytes (NaN in every float
 *              type) so that reads of never-written memory show up; ops fail when handed a
 *              pointer outside it, as a GPU would fault. The copy queue is a worker thread
 *              that runs uploads, event records and waits in FIFO order, concurrently with the
 *              compute queue (the calling thread). The residency engine's event ordering is thus
 *              exercised for real: a missing wait is a data race here just as on a GPU, and
 *              SLUICE_CPU_COPY_DELAY_US=<n> slows every queued upload by n µs to make such races
 *              deterministic in tests.
 *
 * Ordering model (the same rules as CUDA streams): event_record on a queue captures that queue's
 * current end; the event is reached when the queue has run everything before the record. A
 * re-record replaces the captured point; a queue_wait captures the record current at the time of
 * the call; waiting on a never-recorded event returns at once; free and host_free first wait for
 * every queued copy, as cudaFree and cudaFreeHost do. The compute queue is synchronous,
 * so events recorded on it are reached at record time and queue_wait(COMPUTE, e) blocks the host
 * until e is reached. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "backend/cpu/cpu_impl.h"
#include "core/log.h"

struct cpu_cmd {
    enum { CMD_COPY, CMD_RECORD, CMD_WAIT } kind;
    void *dst;
    const void *src;
    size_t n;
    sl_event *e;
    uint64_t gen; /* RECORD: the record's generation; WAIT: the generation waited for */
    cpu_cmd *next;
};

struct sl_event {
    uint64_t want;    /* generation of the latest record (0: never recorded) */
    uint64_t reached; /* latest generation whose point its queue has passed */
    double t_ms;      /* host time when `reached` last advanced */
    int pending;      /* queued commands that still refer to this event */
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

sl_status cpu_fail(sl_backend *be, sl_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(be->last_error, sizeof be->last_error, fmt, ap);
    va_end(ap);
    return st;
}

float *cpu_scratch(sl_cpu *c, int slot, size_t n) {
    SL_ASSERT(slot >= 0 && slot < c->nthreads + CPU_N_SHARED);
    if (c->scr_n[slot] >= n) return c->scr[slot];
    size_t want = n < 1024 ? 1024 : n;
    void *p = NULL;
    if (posix_memalign(&p, 64, want * sizeof(float)) != 0) return NULL;
    free(c->scr[slot]);
    c->scr[slot] = p;
    c->scr_n[slot] = want;
    return p;
}

/* ---- allocation registry (guarded by mu) ---- */

static int mem_find(sl_cpu *c, const void *p) {
    for (int i = 0; i < c->n_mems; i++)
        if (c->mems[i].p == p) return i;
    return -1;
}

/* Index of the allocation holding [p, p+n), or -1. */
static int mem_containing(sl_cpu *c, const void *p, size_t n, bool device) {
    uintptr_t a = (uintptr_t)p;
    for (int i = 0; i < c->n_mems; i++) {
        uintptr_t b = (uintptr_t)c->mems[i].p;
        if (c->mems[i].device == device && a >= b && a - b <= c->mems[i].bytes &&
            n <= c->mems[i].bytes - (a - b))
            return i;
    }
    return -1;
}

static bool mem_add(sl_cpu *c, void *p, size_t bytes, bool device) {
    if (c->n_mems == c->cap_mems) {
        int cap = c->cap_mems ? c->cap_mems * 2 : 64;
        cpu_mem *m = realloc(c->mems, (size_t)cap * sizeof *m);
        if (!m) return false;
        c->mems = m;
        c->cap_mems = cap;
    }
    c->mems[c->n_mems++] = (cpu_mem){p, bytes, device};
    return true;
}

sl_status cpu_check_dev(sl_backend *be, const char *op, const sl_tensor *t) {
    sl_cpu *c = cpu_of(be);
    if (!c->as_device || !t) return SL_OK;
    size_t n = sl_tensor_nbytes(t);
    if (n == 0) return SL_OK; /* nothing is read or written */
    pthread_mutex_lock(&c->mu);
    int i = mem_containing(c, t->data, n, true);
    pthread_mutex_unlock(&c->mu);
    if (i >= 0) return SL_OK;
    char d[96];
    return cpu_fail(be, SL_ERR_BACKEND,
                    "%s: tensor %s%s%s at %p (%zu bytes) is not in device memory of the "
                    "cpu-as-device backend (a GPU would fault here): upload it or take it from "
                    "the residency engine",
                    op, t->name ? t->name : "", t->name ? " " : "", sl_tensor_desc(t, d, sizeof d),
                    t->data, n);
}

/* ---- memory ---- */

static void host_mem(size_t *free_b, size_t *total_b) {
    long pg = sysconf(_SC_PAGESIZE), av = sysconf(_SC_AVPHYS_PAGES), ph = sysconf(_SC_PHYS_PAGES);
    if (free_b) *free_b = pg > 0 && av > 0 ? (size_t)pg * (size_t)av : 0;
    if (total_b) *total_b = pg > 0 && ph > 0 ? (size_t)pg * (size_t)ph : 0;
}

static sl_status c_alloc(sl_backend *be, size_t bytes, void **out, sl_err *err) {
    sl_cpu *c = cpu_of(be);
    *out = NULL;
    size_t b = SL_ALIGN_UP(bytes ? bytes : 1, (size_t)256);
    pthread_mutex_lock(&c->mu);
    if (c->as_device && c->budget && b > c->budget - c->used) {
        size_t fr = c->budget - c->used;
        pthread_mutex_unlock(&c->mu);
        cpu_fail(be, SL_ERR_OOM_DEVICE,
                 "out of device memory (cpu-as-device): %zu bytes needed, %zu free of a %zu-byte "
                 "budget",
                 b, fr, c->budget);
        return sl_err_set(err, SL_ERR_OOM_DEVICE, "%s", be->last_error);
    }
    c->used += b; /* reserve before allocating so that the budget holds across threads */
    pthread_mutex_unlock(&c->mu);
    void *p = NULL;
    if (posix_memalign(&p, 256, b) != 0) {
        pthread_mutex_lock(&c->mu);
        c->used -= b;
        pthread_mutex_unlock(&c->mu);
        cpu_fail(be, c->as_device ? SL_ERR_OOM_DEVICE : SL_ERR_OOM_HOST,
                 "out of host memory allocating %zu bytes for the cpu backend", b);
        return sl_err_set(err, c->as_device ? SL_ERR_OOM_DEVICE : SL_ERR_OOM_HOST, "%s",
                          be->last_error);
    }
    if (c->as_device) memset(p, 0xff, b);
    pthread_mutex_lock(&c->mu);
    bool ok = mem_add(c, p, b, true);
    if (!ok) c->used -= b;
    pthread_mutex_unlock(&c->mu);
    if (!ok) {
        free(p);
        cpu_fail(be, SL_ERR_OOM_HOST, "out of host memory for the allocation registry");
        return sl_err_set(err, SL_ERR_OOM_HOST, "%s", be->last_error);
    }
    *out = p;
    return SL_OK;
}

/* Wait until the copy queue has run every command queued so far (caller holds mu). */
static void drain_locked(sl_cpu *c) {
    uint64_t upto = c->q_pushed;
    while (c->q_done < upto) pthread_cond_wait(&c->cv, &c->mu);
}

static void c_free(sl_backend *be, void *p) {
    if (!p) return;
    sl_cpu *c = cpu_of(be);
    pthread_mutex_lock(&c->mu);
    drain_locked(c); /* like cudaFree, which waits for the device's queued work */
    int i = mem_find(c, p);
    SL_ASSERTF(i >= 0 && c->mems[i].device, "cpu backend: free(%p) of memory not from alloc()", p);
    c->used -= c->mems[i].bytes;
    c->mems[i] = c->mems[--c->n_mems];
    pthread_mutex_unlock(&c->mu);
    free(p);
}

static sl_status c_host_alloc(sl_backend *be, size_t bytes, void **out, sl_err *err) {
    sl_cpu *c = cpu_of(be);
    *out = NULL;
    size_t b = SL_ALIGN_UP(bytes ? bytes : 1, (size_t)256);
    void *p = NULL;
    if (posix_memalign(&p, 256, b) != 0) {
        cpu_fail(be, SL_ERR_OOM_HOST, "out of host memory allocating %zu bytes", b);
        return sl_err_set(err, SL_ERR_OOM_HOST, "%s", be->last_error);
    }
    pthread_mutex_lock(&c->mu);
    bool ok = mem_add(c, p, b, false);
    pthread_mutex_unlock(&c->mu);
    if (!ok) {
        free(p);
        cpu_fail(be, SL_ERR_OOM_HOST, "out of host memory for the allocation registry");
        return sl_err_set(err, SL_ERR_OOM_HOST, "%s", be->last_error);
    }
    *out = p;
    return SL_OK;
}

static void c_host_free(sl_backend *be, void *p) {
    if (!p) return;
    sl_cpu *c = cpu_of(be);
    pthread_mutex_lock(&c->mu);
    drain_locked(c); /* like cudaFreeHost: queued copies from p finish first */
    int i = mem_find(c, p);
    SL_ASSERTF(i >= 0 && !c->mems[i].device,
               "cpu backend: host_free(%p) of memory not from host_alloc()", p);
    c->mems[i] = c->mems[--c->n_mems];
    pthread_mutex_unlock(&c->mu);
    free(p);
}

static void c_mem_info(sl_backend *be, size_t *free_b, size_t *total_b) {
    sl_cpu *c = cpu_of(be);
    if (c->as_device && c->budget) {
        pthread_mutex_lock(&c->mu);
        if (free_b) *free_b = c->budget - c->used;
        if (total_b) *total_b = c->budget;
        pthread_mutex_unlock(&c->mu);
        return;
    }
    host_mem(free_b, total_b);
}

/* ---- the copy queue ---- */

/* Append a command (caller holds mu). */
static sl_status q_push(sl_backend *be, cpu_cmd tmpl) {
    sl_cpu *c = cpu_of(be);
    cpu_cmd *cmd = malloc(sizeof *cmd);
    if (!cmd) return cpu_fail(be, SL_ERR_OOM_HOST, "out of host memory queueing a copy");
    *cmd = tmpl;
    cmd->next = NULL;
    if (cmd->e) cmd->e->pending++;
    if (c->q_tail)
        c->q_tail->next = cmd;
    else
        c->q_head = cmd;
    c->q_tail = cmd;
    c->q_pushed++;
    pthread_cond_broadcast(&c->cv);
    return SL_OK;
}

static void event_reach(sl_event *e, uint64_t gen) {
    if (gen >= e->reached) {
        e->reached = gen;
        e->t_ms = now_ms();
    }
}

static void *copy_worker(void *arg) {
    sl_cpu *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->q_head && !c->quit) pthread_cond_wait(&c->cv, &c->mu);
        if (!c->q_head) break; /* quit with an empty queue */
        cpu_cmd *cmd = c->q_head;
        switch (cmd->kind) {
        case CMD_COPY:
            pthread_mutex_unlock(&c->mu);
            if (c->copy_delay_us) usleep(c->copy_delay_us);
            memcpy(cmd->dst, cmd->src, cmd->n);
            pthread_mutex_lock(&c->mu);
            break;
        case CMD_RECORD:
            event_reach(cmd->e, cmd->gen);
            break;
        case CMD_WAIT:
            while (cmd->e->reached < cmd->gen) pthread_cond_wait(&c->cv, &c->mu);
            break;
        }
        if (cmd->e) cmd->e->pending--;
        c->q_head = cmd->next;
        if (!c->q_head) c->q_tail = NULL;
        c->q_done++;
        free(cmd);
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- transfers ---- */

static sl_status c_upload(sl_backend *be, sl_queue q, void *dst, const void *src, size_t n) {
    sl_cpu *c = cpu_of(be);
    if (n == 0) return SL_OK;
    if (!c->as_device) {
        memcpy(dst, src, n);
        return SL_OK;
    }
    pthread_mutex_lock(&c->mu);
    sl_status st = SL_OK;
    if (mem_containing(c, dst, n, true) < 0) {
        st = cpu_fail(be, SL_ERR_BACKEND,
                      "upload: destination %p (%zu bytes) is not device memory of the "
                      "cpu-as-device backend",
                      dst, n);
    } else if (q == SL_QUEUE_COPY && mem_containing(c, src, n, false) < 0) {
        st = cpu_fail(be, SL_ERR_BACKEND,
                      "upload on the copy queue: source %p (%zu bytes) is not host_alloc memory "
                      "(asynchronous uploads must come from pinned buffers)",
                      src, n);
    } else if (q == SL_QUEUE_COPY) {
        st = q_push(be, (cpu_cmd){.kind = CMD_COPY, .dst = dst, .src = src, .n = n});
    }
    pthread_mutex_unlock(&c->mu);
    if (st == SL_OK && q == SL_QUEUE_COMPUTE) memcpy(dst, src, n);
    return st;
}

static sl_status c_download(sl_backend *be, void *dst, const void *src, size_t n) {
    sl_cpu *c = cpu_of(be);
    if (n == 0) return SL_OK;
    if (c->as_device) {
        pthread_mutex_lock(&c->mu);
        int i = mem_containing(c, src, n, true);
        pthread_mutex_unlock(&c->mu);
        if (i < 0)
            return cpu_fail(be, SL_ERR_BACKEND,
                            "download: source %p (%zu bytes) is not device memory of the "
                            "cpu-as-device backend",
                            src, n);
    }
    memcpy(dst, src, n); /* the compute queue is this thread: all queued work is done */
    return SL_OK;
}

static sl_status c_copy_d2d(sl_backend *be, void *dst, const void *src, size_t n) {
    sl_cpu *c = cpu_of(be);
    if (n == 0) return SL_OK;
    if (c->as_device) {
        pthread_mutex_lock(&c->mu);
        bool ok = mem_containing(c, src, n, true) >= 0 && mem_containing(c, dst, n, true) >= 0;
        pthread_mutex_unlock(&c->mu);
        if (!ok)
            return cpu_fail(be, SL_ERR_BACKEND,
                            "copy_d2d: %p → %p (%zu bytes) is not within device memory of the "
                            "cpu-as-device backend",
                            src, dst, n);
    }
    memmove(dst, src, n);
    return SL_OK;
}

/* ---- events ---- */

static sl_status c_event_create(sl_backend *be, sl_event **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return cpu_fail(be, SL_ERR_OOM_HOST, "out of host memory creating an event");
    return SL_OK;
}

static void c_event_destroy(sl_backend *be, sl_event *e) {
    if (!e) return;
    sl_cpu *c = cpu_of(be);
    /* CUDA lets an event be destroyed with work pending on it; finish that work first here. */
    pthread_mutex_lock(&c->mu);
    while (e->pending > 0) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    free(e);
}

static sl_status c_event_record(sl_backend *be, sl_event *e, sl_queue q) {
    sl_cpu *c = cpu_of(be);
    sl_status st = SL_OK;
    pthread_mutex_lock(&c->mu);
    uint64_t gen = ++e->want;
    if (q == SL_QUEUE_COPY && c->as_device)
        st = q_push(be, (cpu_cmd){.kind = CMD_RECORD, .e = e, .gen = gen});
    else
        event_reach(e, gen);
    if (st != SL_OK) e->want--;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return st;
}

static sl_status c_event_sync(sl_backend *be, sl_event *e) {
    sl_cpu *c = cpu_of(be);
    pthread_mutex_lock(&c->mu);
    uint64_t gen = e->want;
    while (e->reached < gen) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    return SL_OK;
}

static sl_status c_queue_wait(sl_backend *be, sl_queue q, sl_event *e) {
    sl_cpu *c = cpu_of(be);
    if (q == SL_QUEUE_COMPUTE || !c->as_device) return c_event_sync(be, e);
    sl_status st = SL_OK;
    pthread_mutex_lock(&c->mu);
    if (e->reached < e->want) st = q_push(be, (cpu_cmd){.kind = CMD_WAIT, .e = e, .gen = e->want});
    pthread_mutex_unlock(&c->mu);
    return st;
}

static sl_status c_event_elapsed(sl_backend *be, sl_event *a, sl_event *b, float *ms) {
    sl_cpu *c = cpu_of(be);
    pthread_mutex_lock(&c->mu);
    bool ok = a->want && b->want && a->reached >= a->want && b->reached >= b->want;
    double d = b->t_ms - a->t_ms;
    pthread_mutex_unlock(&c->mu);
    if (!ok)
        return cpu_fail(be, SL_ERR_BACKEND,
                        "event_elapsed: both events must be recorded and completed (sync first)");
    *ms = (float)d;
    return SL_OK;
}

static sl_status c_sync(sl_backend *be) {
    sl_cpu *c = cpu_of(be);
    pthread_mutex_lock(&c->mu);
    drain_locked(c);
    pthread_mutex_unlock(&c->mu);
    return SL_OK;
}

/* ---- lifetime ---- */

static void c_destroy(sl_backend *be) {
    if (!be) return;
    sl_cpu *c = cpu_of(be);
    if (c) {
        if (c->worker_started) {
            pthread_mutex_lock(&c->mu);
            c->quit = true;
            pthread_cond_broadcast(&c->cv);
            pthread_mutex_unlock(&c->mu);
            pthread_join(c->worker, NULL);
        }
        if (c->n_mems)
            SL_WARN("cpu backend destroyed with %d allocation(s) still live (freed now)",
                    c->n_mems);
        for (int i = 0; i < c->n_mems; i++) free(c->mems[i].p);
        free(c->mems);
        if (c->scr)
            for (int i = 0; i < c->nthreads + CPU_N_SHARED; i++) free(c->scr[i]);
        free(c->scr);
        free(c->scr_n);
        sl_pool_free(c->pool);
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c);
    }
    free(be);
}

static const sl_backend_vt g_vt = {
    .destroy = c_destroy,
    .alloc = c_alloc,
    .free = c_free,
    .host_alloc = c_host_alloc,
    .host_free = c_host_free,
    .mem_info = c_mem_info,
    .upload = c_upload,
    .download = c_download,
    .copy_d2d = c_copy_d2d,
    .event_create = c_event_create,
    .event_destroy = c_event_destroy,
    .event_record = c_event_record,
    .queue_wait = c_queue_wait,
    .event_sync = c_event_sync,
    .event_elapsed = c_event_elapsed,
    .sync = c_sync,
    .matmul = cpu_matmul,
    .binary = cpu_binary,
    .scale = cpu_scale,
    .unary = cpu_unary,
    .glu = cpu_glu,
    .rms_norm = cpu_rms_norm,
    .layer_norm = cpu_layer_norm,
    .group_norm = cpu_group_norm,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .softmax = cpu_softmax,
    .gated_add = cpu_gated_add,
    .conv2d = cpu_conv2d,
    .upsample_nearest = cpu_upsample_nearest,
    .patchify = cpu_patchify,
    .unpatchify = cpu_unpatchify,
    .permute = cpu_permute,
    .concat = cpu_concat,
    .slice = cpu_slice,
    .copy = cpu_copy,
    .get_rows = cpu_get_rows,
    .repeat_rows = cpu_repeat_rows,
    .timestep_embed = cpu_timestep_embed,
    .fill = cpu_fill,
};

sl_status sl_backend_cpu_create(const sl_cpu_options *opt, sl_backend **out, sl_err *err) {
    sl_cpu_options o = opt ? *opt : (sl_cpu_options){0};
    *out = NULL;
    sl_backend *be = calloc(1, sizeof *be);
    sl_cpu *c = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return sl_err_set(err, SL_ERR_OOM_HOST, "out of host memory creating the cpu backend");
    }
    be->vt = &g_vt;
    be->impl = c;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->as_device = o.as_device;
    c->budget = o.as_device ? o.device_budget : 0;
    c->pool = sl_pool_create(o.threads);
    if (!c->pool) goto oom;
    c->nthreads = sl_pool_size(c->pool);
    c->scr = calloc((size_t)(c->nthreads + CPU_N_SHARED), sizeof *c->scr);
    c->scr_n = calloc((size_t)(c->nthreads + CPU_N_SHARED), sizeof *c->scr_n);
    if (!c->scr || !c->scr_n) goto oom;
    if (c->as_device) {
        const char *d = getenv("SLUICE_CPU_COPY_DELAY_US");
        if (d && *d) c->copy_delay_us = (unsigned)strtoul(d, NULL, 10);
        if (pthread_create(&c->worker, NULL, copy_worker, c) != 0) {
            c_destroy(be);
            return sl_err_set(err, SL_ERR_BACKEND, "cpu backend: cannot start the copy thread");
        }
        c->worker_started = true;
    }
    /* Matmul, conv2d and attention parallelise over tiles on the pool and call a single-threaded
     * sgemm per tile. Measured on the 2-core CI box (x[M,3840]·W[3840,3840]ᵀ, bf16 W): M = 4,
     * 23 ms vs 54 ms for one OpenBLAS-threaded sgemm per tile (the dequantisation is shared out
     * too); M = 1024, within noise of each other (0.9-1.0 s); and OpenBLAS's spinning threads
     * collapse when the machine is oversubscribed. This sets OpenBLAS's thread count for the
     * whole process. */
    openblas_set_num_threads(1);

    be->info.name = "cpu";
    be->info.is_device = c->as_device;
    be->info.host_visible = !c->as_device;
    be->info.can_time = true;
    be->info.act_dtype = SL_DTYPE_F32;
    be->info.cc = 0;
    if (c->as_device)
        snprintf(be->info.device, sizeof be->info.device,
                 "cpu as device (%d threads, budget %zu MiB)", c->nthreads, c->budget >> 20);
    else
        snprintf(be->info.device, sizeof be->info.device, "cpu (%d threads)", c->nthreads);
    *out = be;
    return SL_OK;
oom:
    c_destroy(be);
    return sl_err_set(err, SL_ERR_OOM_HOST, "out of host memory creating the cpu backend");
}
