/* backend/cpu/cpu_impl.h — private to the CPU backend (the .c files beside it).
 *
 * The CPU backend state, the row conversion helpers every op uses (any float dtype ↔ f32), the
 * per-thread scratch buffers, and the op entry points that cpu.c puts into the vtable.
 *
 * Threads: ops run on the thread that calls them (the "compute queue") and spread their work over
 * the backend's sl_pool. Scratch slot i < nthreads belongs to pool thread i while an op runs;
 * slots nthreads.. are shared buffers that the calling thread sizes before a parallel loop. */
#ifndef SL_BACKEND_CPU_CPU_IMPL_H
#define SL_BACKEND_CPU_CPU_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/threads.h"

/* Shared scratch slots after the per-thread ones. */
enum { CPU_SHARED_A = 0, CPU_SHARED_B, CPU_SHARED_C, CPU_SHARED_D, CPU_N_SHARED };

typedef struct cpu_mem {
    void *p;
    size_t bytes;
    bool device; /* a device allocation (as_device) rather than host_alloc memory */
} cpu_mem;

typedef struct cpu_cmd cpu_cmd;

typedef struct sl_cpu {
    sl_pool *pool;
    int nthreads;
    bool as_device;
    size_t budget; /* 0: unlimited */
    size_t used;   /* device bytes allocated (as_device), host bytes allocated (plain) */

    /* One mutex guards: the allocation registry, `used`, every event and the copy queue. */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled when the copy queue changes or an event is reached */

    cpu_mem *mems; /* live alloc/host_alloc allocations */
    int n_mems, cap_mems;

    /* Copy queue (as_device only): FIFO of commands run by the worker thread. */
    pthread_t worker;
    bool worker_started, quit;
    cpu_cmd *q_head, *q_tail;
    uint64_t q_pushed, q_done; /* commands enqueued / completed */
    unsigned copy_delay_us;    /* SLUICE_CPU_COPY_DELAY_US: slow every upload to expose races */

    /* Scratch: nthreads per-thread slots, then CPU_N_SHARED shared ones. */
    float **scr;
    size_t *scr_n;
} sl_cpu;

static inline sl_cpu *cpu_of(sl_backend *be) { return (sl_cpu *)be->impl; }

/* Record a failure message in be->last_error and return st. */
sl_status cpu_fail(sl_backend *be, sl_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Scratch of at least n floats in slot `slot` (a pool tid, or nthreads + CPU_SHARED_*). Grows the
 * slot's buffer, never shrinks it; NULL when the host is out of memory. Valid until the next call
 * for the same slot. */
float *cpu_scratch(sl_cpu *c, int slot, size_t n);
static inline int cpu_shared_slot(const sl_cpu *c, int which) { return c->nthreads + which; }

/* In as_device mode, fail (SL_ERR_BACKEND) when t's bytes do not lie inside one device allocation:
 * a GPU would fault on such a pointer. Always SL_OK in plain mode and for NULL tensors. */
sl_status cpu_check_dev(sl_backend *be, const char *op, const sl_tensor *t);
#define CPU_CHECK_DEV(be, op, ...)                                                                 \
    do {                                                                                           \
        const sl_tensor *ts_[] = {__VA_ARGS__};                                                    \
        for (size_t i_ = 0; i_ < sizeof ts_ / sizeof ts_[0]; i_++) {                               \
            sl_status s_ = cpu_check_dev((be), (op), ts_[i_]);                                     \
            if (s_ != SL_OK) return s_;                                                            \
        }                                                                                          \
    } while (0)

/* ---- conversions (n elements, starting at element `off` of a dense array) ---- */
static inline size_t cpu_esize(sl_dtype dt) { return (size_t)sl_dtype_get(dt)->bsize; }

/* dst[0..n) = values of src (f32/f16/bf16/f8, or a block type when off and n are whole blocks). */
void cpu_load(sl_dtype dt, const void *src, int64_t off, float *dst, int64_t n);
/* dst elements [off, off+n) (f32/f16/bf16) = src rounded to nearest even. */
void cpu_store(sl_dtype dt, void *dst, int64_t off, const float *src, int64_t n);
/* True when cpu_load can read dt here (block types need the quant module). */
bool cpu_can_load(sl_dtype dt);

/* ---- ops (cpu_ops.c, cpu_matmul.c, cpu_attn.c); semantics in backend.h ---- */
sl_status cpu_matmul(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                     const sl_tensor *bias);
sl_status cpu_binary(sl_backend *be, sl_binary_op op, sl_tensor *y, const sl_tensor *a,
                     const sl_tensor *b);
sl_status cpu_scale(sl_backend *be, sl_tensor *y, const sl_tensor *x, float s, float bias);
sl_status cpu_unary(sl_backend *be, sl_unary_op op, sl_tensor *y, const sl_tensor *x);
sl_status cpu_glu(sl_backend *be, sl_unary_op act, sl_tensor *y, const sl_tensor *g,
                  const sl_tensor *u);
sl_status cpu_rms_norm(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                       const sl_tensor *mod, float eps);
sl_status cpu_layer_norm(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                         const sl_tensor *b, const sl_tensor *scale, const sl_tensor *shift,
                         float eps);
sl_status cpu_group_norm(sl_backend *be, sl_tensor *y, const sl_tensor *x, int groups,
                         const sl_tensor *w, const sl_tensor *b, float eps, bool silu);
sl_status cpu_rope(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *norm_w,
                   float eps, const sl_tensor *tab, sl_rope_mode mode);
sl_status cpu_attention(sl_backend *be, sl_tensor *o, const sl_tensor *q, const sl_tensor *k,
                        const sl_tensor *v, float scale, bool causal);
sl_status cpu_softmax(sl_backend *be, sl_tensor *y, const sl_tensor *x);
sl_status cpu_gated_add(sl_backend *be, sl_tensor *x, const sl_tensor *y, const sl_tensor *w,
                        const sl_tensor *gate, float eps);
sl_status cpu_conv2d(sl_backend *be, sl_tensor *y, const sl_tensor *x, const sl_tensor *w,
                     const sl_tensor *b, int stride, const int pad[4]);
sl_status cpu_upsample_nearest(sl_backend *be, sl_tensor *y, const sl_tensor *x, int factor);
sl_status cpu_patchify(sl_backend *be, sl_tensor *y, const sl_tensor *x, int p,
                       sl_patch_order order);
sl_status cpu_unpatchify(sl_backend *be, sl_tensor *y, const sl_tensor *x, int p,
                         sl_patch_order order);
sl_status cpu_permute(sl_backend *be, sl_tensor *y, const sl_tensor *x, const int perm[4]);
sl_status cpu_concat(sl_backend *be, sl_tensor *y, const sl_tensor *a, const sl_tensor *b,
                     int dim);
sl_status cpu_slice(sl_backend *be, sl_tensor *y, const sl_tensor *x, int dim, int64_t start);
sl_status cpu_copy(sl_backend *be, sl_tensor *y, const sl_tensor *x);
sl_status cpu_get_rows(sl_backend *be, sl_tensor *y, const sl_tensor *table,
                       const sl_tensor *ids);
sl_status cpu_repeat_rows(sl_backend *be, sl_tensor *y, const sl_tensor *x);
sl_status cpu_timestep_embed(sl_backend *be, sl_tensor *y, const float *t, int n, float t_scale,
                             float max_period, bool cos_first);
sl_status cpu_fill(sl_backend *be, sl_tensor *y, float value);

#endif
