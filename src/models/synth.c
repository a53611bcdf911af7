/* models/synth.c — the generic part of models/synth.h: tensor lists and the streaming writer.
 *
 * A tensor is treated as a flat run of elements cut into chunks of CHUNK_ELEMS (a multiple of
 * every block size, so chunk boundaries fall on block boundaries whenever the rows are whole
 * blocks). Element i of a tensor is N(0,1) sample i of Philox stream (seed, fnv1a64(name)), so
 * values do not depend on chunking, thread count, the tensor's position in the list or the other
 * tensors. Chunks are gathered into batches of at most BATCH_BYTES of output; the thread pool
 * generates and converts batch k+1 while a writer thread appends batch k to the file (two batch
 * buffers), so disk time hides behind compute. Memory held: two batches plus one f32 chunk per
 * thread (128 MB + 4 MB × threads).
 *
 * The file is written to "<path>.partial" and renamed over path only when complete, so a failed
 * or interrupted run never leaves a half-written file under the requested name. */
#include "models/synth.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/quant.h"
#include "core/rng.h"
#include "core/threads.h"
#include "io/gguf.h"
#include "io/safetensors.h"

#define CHUNK_ELEMS ((int64_t)1 << 20) /* 4 MB of f32 scratch per thread */
#define BATCH_BYTES ((size_t)64 << 20)

void sl_synth_list_add(sl_synth_list *l, const char *name, int ndim, const int64_t *ne,
                       sl_synth_init init, float mean, float std, bool keep_float) {
    SL_ASSERT(l && name && ne);
    SL_ASSERTF(ndim >= 1 && ndim <= 4, "synth tensor '%s': ndim %d", name, ndim);
    SL_ASSERTF(strlen(name) < sizeof l->t[0].name, "synth tensor name too long: '%s'", name);
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        sl_synth_tensor *t = realloc(l->t, (size_t)cap * sizeof *t);
        SL_ASSERTF(t, "out of memory growing a synth list to %d tensors", cap);
        l->t = t;
        l->cap = cap;
    }
    sl_synth_tensor *t = &l->t[l->n++];
    memset(t, 0, sizeof *t);
    strcpy(t->name, name);
    t->ndim = ndim;
    for (int i = 0; i < 4; i++) t->ne[i] = i < ndim ? ne[i] : 1;
    for (int i = 0; i < ndim; i++) SL_ASSERTF(ne[i] >= 0, "synth tensor '%s': dim %d < 0", name, i);
    t->init = init;
    t->mean = mean;
    t->std = std;
    t->keep_float = keep_float;
}

void sl_synth_list_free(sl_synth_list *l) {
    if (!l) return;
    free(l->t);
    l->t = NULL;
    l->n = l->cap = 0;
}

/* ---- dtype policy ---- */

static uint64_t fnv1a64(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

static int64_t numel_of(const sl_synth_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->ne[i];
    return n;
}

/* The dtype tensor t is stored in (synth.h's policy). */
static sl_dtype tensor_dtype(const sl_synth_tensor *t, const sl_synth_opts *o) {
    const sl_dtype_info *in = sl_dtype_get(o->dtype);
    const bool narrow = in->is_quant || o->dtype == SL_DTYPE_F8_E4M3 || o->dtype == SL_DTYPE_F8_E5M2;
    const sl_dtype fallback = o->format == SL_SYNTH_GGUF ? SL_DTYPE_F32 : SL_DTYPE_BF16;
    const bool special = t->ndim < 2 || t->keep_float || !sl_dtype_row_ok(o->dtype, t->ne[t->ndim - 1]);
    if (special && (narrow || o->format == SL_SYNTH_GGUF)) return fallback;
    return o->dtype;
}

static sl_status check_opts(const sl_synth_list *l, const sl_synth_opts *o, sl_err *err) {
    if ((unsigned)o->dtype >= SL_DTYPE_COUNT || !sl_dtype_get(o->dtype)->is_float ||
        !sl_quant_supported(o->dtype))
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "synth: cannot write weights as %s (use bf16, f16, f32, fp8, q8_0, q4_0 "
                          "or q4_k)",
                          (unsigned)o->dtype < SL_DTYPE_COUNT ? sl_dtype_name(o->dtype) : "?");
    const sl_dtype_info *in = sl_dtype_get(o->dtype);
    if (in->is_quant && o->format != SL_SYNTH_GGUF)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "synth: %s is a GGUF block type; safetensors cannot store it (use "
                          "--format gguf)",
                          in->name);
    if ((o->dtype == SL_DTYPE_F8_E4M3 || o->dtype == SL_DTYPE_F8_E5M2) &&
        o->format != SL_SYNTH_SAFETENSORS)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "synth: GGUF has no fp8 type; write %s as safetensors (--format "
                          "safetensors) or pick a GGUF type such as q8_0",
                          in->name);
    if (o->format != SL_SYNTH_SAFETENSORS && o->format != SL_SYNTH_GGUF)
        return sl_err_set(err, SL_ERR_INVALID_ARG, "synth: unknown format %d", (int)o->format);
    for (int i = 0; i < l->n; i++) {
        const sl_synth_tensor *t = &l->t[i];
        if (!t->name[0]) return sl_err_set(err, SL_ERR_INVALID_ARG, "synth: tensor %d has no name", i);
        if (t->ndim < 1 || t->ndim > 4)
            return sl_err_set(err, SL_ERR_INVALID_ARG, "synth: tensor '%s' has %d dimensions", t->name,
                              t->ndim);
        unsigned long long n = 1;
        for (int k = 0; k < t->ndim; k++)
            if (t->ne[k] < 0 || !sl_mul_u64(n, (unsigned long long)t->ne[k], &n) || n > (1ull << 50))
                return sl_err_set(err, SL_ERR_INVALID_ARG, "synth: tensor '%s' has a bad shape",
                                  t->name);
    }
    return SL_OK;
}

/* ---- the batch pipeline ---- */

typedef struct chunk {
    const sl_synth_tensor *t;
    sl_dtype dt;
    uint64_t stream;
    int64_t first, n; /* element range within the tensor */
    size_t out_off;   /* byte offset in the batch buffer */
} chunk;

typedef struct job {
    chunk *c;
    uint8_t *out;
    float **scratch; /* one CHUNK_ELEMS buffer per pool thread */
    uint64_t seed;
} job;

static void run_chunks(void *arg, int64_t begin, int64_t end, int tid) {
    job *j = arg;
    float *x = j->scratch[tid];
    for (int64_t i = begin; i < end; i++) {
        const chunk *c = &j->c[i];
        const sl_synth_tensor *t = c->t;
        if (t->init == SL_INIT_CONST) {
            for (int64_t k = 0; k < c->n; k++) x[k] = t->mean;
        } else {
            sl_rng_normal(j->seed, c->stream, (uint64_t)c->first, x, c->n);
            for (int64_t k = 0; k < c->n; k++) x[k] = t->mean + t->std * x[k];
        }
        sl_quant_row(c->dt, x, j->out + c->out_off, c->n);
    }
}

typedef struct sink {
    sl_synth_format fmt;
    sl_st_writer *st;
    sl_gguf_writer *gg;
} sink;

static sl_status sink_write(sink *s, const void *p, size_t n, sl_err *err) {
    return s->fmt == SL_SYNTH_GGUF ? sl_gguf_writer_write(s->gg, p, n, err)
                                   : sl_st_writer_write(s->st, p, n, err);
}

/* One batch being appended by the writer thread. While it runs, only it touches the sink and
 * err; the calling thread joins it before touching either. */
typedef struct wjob {
    sink *s;
    const uint8_t *p;
    size_t n;
    sl_err *err;
    sl_status st;
    pthread_t th;
    bool running;
} wjob;

static void *write_main(void *a) {
    wjob *w = a;
    w->st = sink_write(w->s, w->p, w->n, w->err);
    return NULL;
}

/* Wait for the batch in flight (if any); its status. */
static sl_status wjob_join(wjob *w) {
    if (!w->running) return SL_OK;
    pthread_join(w->th, NULL);
    w->running = false;
    return w->st;
}

sl_status sl_synth_write(const sl_synth_list *l, const sl_synth_opts *o, const char *path,
                         sl_err *err) {
    SL_ASSERT(l && o && path);
    sl_status st = check_opts(l, o, err);
    if (st) return st;

    sink s = {.fmt = o->format};
    sl_pool *pool = NULL;
    float **scratch = NULL;
    uint8_t *out[2] = {NULL, NULL};
    wjob wj = {.s = &s, .err = err};
    chunk *cs = NULL;
    int nthr = 0;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) return sl_err_set(err, SL_ERR_OOM_HOST, "synth: out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".partial", 9);

    /* declare everything */
    if (o->format == SL_SYNTH_GGUF) {
        if ((st = sl_gguf_writer_open(&s.gg, tmp, err))) goto fail;
        if ((st = sl_gguf_writer_kv_str(s.gg, "general.architecture", l->arch, err))) goto fail;
        if ((st = sl_gguf_writer_kv_str(s.gg, "sluice.synthetic", "1", err))) goto fail;
    } else {
        if ((st = sl_st_writer_open(&s.st, tmp, err))) goto fail;
        if ((st = sl_st_writer_meta(s.st, "sluice.arch", l->arch, err))) goto fail;
        if ((st = sl_st_writer_meta(s.st, "sluice.synthetic", "1", err))) goto fail;
    }
    uint64_t total = 0;
    for (int i = 0; i < l->n; i++) {
        const sl_synth_tensor *t = &l->t[i];
        sl_dtype dt = tensor_dtype(t, o);
        st = o->format == SL_SYNTH_GGUF ? sl_gguf_writer_add(s.gg, t->name, dt, t->ndim, t->ne, err)
                                        : sl_st_writer_add(s.st, t->name, dt, t->ndim, t->ne, err);
        if (st) goto fail;
        total += sl_dtype_row_bytes(dt, numel_of(t));
    }
    st = o->format == SL_SYNTH_GGUF ? sl_gguf_writer_begin_data(s.gg, err)
                                    : sl_st_writer_begin_data(s.st, err);
    if (st) goto fail;

    /* buffers */
    pool = sl_pool_create(0);
    nthr = sl_pool_size(pool);
    scratch = calloc((size_t)nthr, sizeof *scratch);
    const int max_chunks = 4 * nthr;
    cs = calloc((size_t)max_chunks, sizeof *cs);
    out[0] = malloc(BATCH_BYTES);
    out[1] = malloc(BATCH_BYTES);
    if (!pool || !scratch || !cs || !out[0] || !out[1]) goto oom;
    for (int i = 0; i < nthr; i++)
        if (!(scratch[i] = malloc((size_t)CHUNK_ELEMS * sizeof(float)))) goto oom;

    /* batches in file order */
    job jb = {.c = cs, .scratch = scratch, .seed = o->seed};
    int cur = 0;
    int ti = 0;
    int64_t pos = 0; /* next element of tensor ti */
    uint64_t done = 0, next_report = (uint64_t)1 << 30;
    sl_dtype cur_dt = SL_DTYPE_F32;
    uint64_t cur_stream = 0;
    if (l->n) {
        cur_dt = tensor_dtype(&l->t[0], o);
        cur_stream = fnv1a64(l->t[0].name);
    }
    while (ti < l->n) {
        int nc = 0;
        size_t used = 0;
        while (ti < l->n && nc < max_chunks) {
            const sl_synth_tensor *t = &l->t[ti];
            const int64_t ne = numel_of(t);
            if (pos < ne) {
                const sl_dtype_info *in = sl_dtype_get(cur_dt);
                int64_t n = SL_MIN(CHUNK_ELEMS, ne - pos);
                size_t bytes = (size_t)(n / in->blck) * (size_t)in->bsize;
                if (nc > 0 && used + bytes > BATCH_BYTES) break;
                cs[nc++] = (chunk){t, cur_dt, cur_stream, pos, n, used};
                used += bytes;
                pos += n;
            }
            if (pos >= ne) {
                ti++;
                pos = 0;
                if (ti < l->n) {
                    cur_dt = tensor_dtype(&l->t[ti], o);
                    cur_stream = fnv1a64(l->t[ti].name);
                }
            }
        }
        if (nc == 0) continue;
        jb.out = out[cur];
        sl_pool_for(pool, nc, 1, run_chunks, &jb);
        if ((st = wjob_join(&wj))) goto fail;
        wj.p = out[cur];
        wj.n = used;
        if (pthread_create(&wj.th, NULL, write_main, &wj) == 0)
            wj.running = true;
        else if ((st = sink_write(&s, out[cur], used, err)))
            goto fail;
        cur ^= 1;
        done += used;
        if (done >= next_report && total > ((uint64_t)1 << 30)) {
            SL_INFO("synth: %.1f of %.1f GB written", (double)done / 1e9, (double)total / 1e9);
            next_report = done + ((uint64_t)1 << 30);
        }
    }

    if ((st = wjob_join(&wj))) goto fail;
    st = o->format == SL_SYNTH_GGUF ? sl_gguf_writer_close(s.gg, err)
                                    : sl_st_writer_close(s.st, err);
    s.gg = NULL;
    s.st = NULL;
    if (st) goto fail;
    if (rename(tmp, path) != 0) {
        st = sl_err_set(err, SL_ERR_IO, "synth: cannot rename %s to %s: %s", tmp, path,
                        strerror(errno));
        remove(tmp);
        goto fail;
    }
    goto done;

oom:
    st = sl_err_set(err, SL_ERR_OOM_HOST, "synth: out of memory for %d threads' buffers (%zu MB)",
                    nthr, 2 * (BATCH_BYTES >> 20) + (size_t)nthr * 4);
fail:
    wjob_join(&wj);
    sl_gguf_writer_abort(s.gg);
    sl_st_writer_abort(s.st);
    sl_err_prefix(err, "writing %s: ", path);
done:
    if (scratch)
        for (int i = 0; i < nthr; i++) free(scratch[i]);
    free(scratch);
    free(cs);
    free(out[0]);
    free(out[1]);
    sl_pool_free(pool);
    free(tmp);
    return st;
}
