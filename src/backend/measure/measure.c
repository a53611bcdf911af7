/* The measuring backend: the op table with no work. Allocations hand out fake, never-dereferenced
 * addresses and are counted, so a dry run of a forward pass reports the exact device bytes it
 * would allocate. Events complete immediately. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"

typedef struct alloc_rec {
    uintptr_t addr;
    size_t bytes;
} alloc_rec;

typedef struct measure {
    uintptr_t next;   /* next fake address */
    size_t current, peak;
    alloc_rec *recs;
    int n_recs, cap_recs;
} measure;

struct sl_event {
    int dummy;
};

static measure *M(sl_backend *be) { return be->impl; }

static void m_destroy(sl_backend *be) {
    measure *m = M(be);
    free(m->recs);
    free(m);
    free(be);
}

static sl_status m_alloc(sl_backend *be, size_t bytes, void **out, sl_err *err) {
    measure *m = M(be);
    if (m->n_recs == m->cap_recs) {
        int cap = m->cap_recs ? m->cap_recs * 2 : 64;
        alloc_rec *r = realloc(m->recs, (size_t)cap * sizeof *r);
        if (!r) return sl_err_set(err, SL_ERR_OOM_HOST, "measuring backend: out of host memory");
        m->recs = r;
        m->cap_recs = cap;
    }
    size_t b = SL_ALIGN_UP(bytes ? bytes : 1, (size_t)256);
    m->recs[m->n_recs++] = (alloc_rec){m->next, b};
    *out = (void *)m->next;
    m->next += b + 256; /* a gap so that distinct buffers never share an address */
    m->current += b;
    if (m->current > m->peak) m->peak = m->current;
    return SL_OK;
}

static void m_free(sl_backend *be, void *p) {
    measure *m = M(be);
    if (!p) return;
    for (int i = 0; i < m->n_recs; i++) {
        if (m->recs[i].addr == (uintptr_t)p) {
            m->current -= m->recs[i].bytes;
            m->recs[i] = m->recs[--m->n_recs];
            return;
        }
    }
    SL_ASSERTF(0, "measuring backend: free of an unknown address");
}

static sl_status m_host_alloc(sl_backend *be, size_t bytes, void **out, sl_err *err) {
    (void)be;
    void *p = NULL;
    if (posix_memalign(&p, 256, bytes ? bytes : 1) != 0)
        return sl_err_set(err, SL_ERR_OOM_HOST, "out of host memory allocating %zu bytes", bytes);
    *out = p;
    return SL_OK;
}

static void m_host_free(sl_backend *be, void *p) {
    (void)be;
    free(p);
}

static void m_mem_info(sl_backend *be, size_t *f, size_t *t) {
    (void)be;
    if (f) *f = SIZE_MAX / 2;
    if (t) *t = SIZE_MAX / 2;
}

static sl_status m_xfer(sl_backend *be, sl_queue q, void *dst, const void *src, size_t n) {
    (void)be, (void)q, (void)dst, (void)src, (void)n;
    return SL_OK;
}
static sl_status m_download(sl_backend *be, void *dst, const void *src, size_t n) {
    (void)be, (void)src;
    memset(dst, 0, n); /* defined contents for callers that look */
    return SL_OK;
}
static sl_status m_d2d(sl_backend *be, void *dst, const void *src, size_t n) {
    (void)be, (void)dst, (void)src, (void)n;
    return SL_OK;
}
static sl_status m_event_create(sl_backend *be, sl_event **out) {
    (void)be;
    *out = calloc(1, sizeof **out);
    return *out ? SL_OK : SL_ERR_OOM_HOST;
}
static void m_event_destroy(sl_backend *be, sl_event *e) {
    (void)be;
    free(e);
}
static sl_status m_event_op(sl_backend *be, sl_event *e, sl_queue q) {
    (void)be, (void)e, (void)q;
    return SL_OK;
}
static sl_status m_queue_wait(sl_backend *be, sl_queue q, sl_event *e) {
    (void)be, (void)e, (void)q;
    return SL_OK;
}
static sl_status m_event_sync(sl_backend *be, sl_event *e) {
    (void)be, (void)e;
    return SL_OK;
}
static sl_status m_elapsed(sl_backend *be, sl_event *a, sl_event *b, float *ms) {
    (void)be, (void)a, (void)b;
    *ms = 0;
    return SL_OK;
}
static sl_status m_sync(sl_backend *be) {
    (void)be;
    return SL_OK;
}

/* ops: no work */
#define NOP(...) { return SL_OK; }
static sl_status o_matmul(sl_backend *b, sl_tensor *y, const sl_tensor *x, const sl_tensor *w, const sl_tensor *bi) NOP()
static sl_status o_binary(sl_backend *b, sl_binary_op op, sl_tensor *y, const sl_tensor *a, const sl_tensor *c) NOP()
static sl_status o_scale(sl_backend *b, sl_tensor *y, const sl_tensor *x, float s, float bi) NOP()
static sl_status o_unary(sl_backend *b, sl_unary_op op, sl_tensor *y, const sl_tensor *x) NOP()
static sl_status o_glu(sl_backend *b, sl_unary_op a, sl_tensor *y, const sl_tensor *g, const sl_tensor *u) NOP()
static sl_status o_rms(sl_backend *b, sl_tensor *y, const sl_tensor *x, const sl_tensor *w, const sl_tensor *m, float e) NOP()
static sl_status o_ln(sl_backend *b, sl_tensor *y, const sl_tensor *x, const sl_tensor *w, const sl_tensor *bi,
                      const sl_tensor *s, const sl_tensor *sh, float e) NOP()
static sl_status o_gn(sl_backend *b, sl_tensor *y, const sl_tensor *x, int g, const sl_tensor *w, const sl_tensor *bi,
                      float e, bool s) NOP()
static sl_status o_rope(sl_backend *b, sl_tensor *y, const sl_tensor *x, const sl_tensor *w, float e,
                        const sl_tensor *t, sl_rope_mode m) NOP()
static sl_status o_attn(sl_backend *b, sl_tensor *o, const sl_tensor *q, const sl_tensor *k, const sl_tensor *v,
                        float s, bool c) NOP()
static sl_status o_softmax(sl_backend *b, sl_tensor *y, const sl_tensor *x) NOP()
static sl_status o_gated(sl_backend *b, sl_tensor *x, const sl_tensor *y, const sl_tensor *w, const sl_tensor *g,
                         float e) NOP()
static sl_status o_conv(sl_backend *b, sl_tensor *y, const sl_tensor *x, const sl_tensor *w, const sl_tensor *bi,
                        int s, const int p[4]) NOP()
static sl_status o_up(sl_backend *b, sl_tensor *y, const sl_tensor *x, int f) NOP()
static sl_status o_patch(sl_backend *b, sl_tensor *y, const sl_tensor *x, int p, sl_patch_order o) NOP()
static sl_status o_perm(sl_backend *b, sl_tensor *y, const sl_tensor *x, const int p[4]) NOP()
static sl_status o_concat(sl_backend *b, sl_tensor *y, const sl_tensor *a, const sl_tensor *c, int d) NOP()
static sl_status o_slice(sl_backend *b, sl_tensor *y, const sl_tensor *x, int d, int64_t s) NOP()
static sl_status o_copy(sl_backend *b, sl_tensor *y, const sl_tensor *x) NOP()
static sl_status o_rows(sl_backend *b, sl_tensor *y, const sl_tensor *t, const sl_tensor *i) NOP()
static sl_status o_repeat(sl_backend *b, sl_tensor *y, const sl_tensor *x) NOP()
static sl_status o_temb(sl_backend *b, sl_tensor *y, const float *t, int n, float s, float mp, bool c) NOP()
static sl_status o_fill(sl_backend *b, sl_tensor *y, float v) NOP()

static const sl_backend_vt g_vt = {
    .destroy = m_destroy,
    .alloc = m_alloc,
    .free = m_free,
    .host_alloc = m_host_alloc,
    .host_free = m_host_free,
    .mem_info = m_mem_info,
    .upload = m_xfer,
    .download = m_download,
    .copy_d2d = m_d2d,
    .event_create = m_event_create,
    .event_destroy = m_event_destroy,
    .event_record = m_event_op,
    .queue_wait = m_queue_wait,
    .event_sync = m_event_sync,
    .event_elapsed = m_elapsed,
    .sync = m_sync,
    .matmul = o_matmul,
    .binary = o_binary,
    .scale = o_scale,
    .unary = o_unary,
    .glu = o_glu,
    .rms_norm = o_rms,
    .layer_norm = o_ln,
    .group_norm = o_gn,
    .rope = o_rope,
    .attention = o_attn,
    .softmax = o_softmax,
    .gated_add = o_gated,
    .conv2d = o_conv,
    .upsample_nearest = o_up,
    .patchify = o_patch,
    .unpatchify = o_patch,
    .permute = o_perm,
    .concat = o_concat,
    .slice = o_slice,
    .copy = o_copy,
    .get_rows = o_rows,
    .repeat_rows = o_repeat,
    .timestep_embed = o_temb,
    .fill = o_fill,
};

sl_status sl_backend_measure_create(const sl_backend *like, sl_backend **out, sl_err *err) {
    sl_backend *be = calloc(1, sizeof *be);
    measure *m = calloc(1, sizeof *m);
    if (!be || !m) {
        free(be);
        free(m);
        return sl_err_set(err, SL_ERR_OOM_HOST, "out of host memory");
    }
    m->next = (uintptr_t)1 << 40; /* far from real heap addresses */
    be->vt = &g_vt;
    be->impl = m;
    be->info.name = "measure";
    be->info.is_device = true;
    be->info.act_dtype = like ? like->info.act_dtype : SL_DTYPE_F32;
    be->info.cc = like ? like->info.cc : 0;
    strcpy(be->info.device, "measuring (no work)");
    *out = be;
    return SL_OK;
}

void sl_backend_measure_stats(const sl_backend *be, size_t *current, size_t *peak) {
    SL_ASSERT(be && be->vt == &g_vt);
    const measure *m = be->impl;
    if (current) *current = m->current;
    if (peak) *peak = m->peak;
}

void sl_backend_measure_reset_peak(sl_backend *be) {
    SL_ASSERT(be && be->vt == &g_vt);
    measure *m = be->impl;
    m->peak = m->current;
}
