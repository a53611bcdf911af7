/* residency/residency.c — units, host home, placement and streaming (see residency.h,
 * ARCHITECTURE §3–§4).
 *
 * Host home. One pinned arena holding every unit packed (filled by pread from the files, page
 * cache dropped behind), or the mapped file in place on host-visible backends. Disk tier: an
 * arena of at most the host limit; units outside it are read into two pinned staging buffers at
 * upload time (the only host waits of a pass: for the upload that last used a staging buffer).
 *
 * Device side. Resident units live in one device block, uploaded once at load_device on the copy
 * queue (ev_loaded orders it before the first use). Streamed units pass through a ring of
 * prefetch + 1 slots, each with a `ready` event (copy queue, after the upload) and a `free` event
 * (compute queue, at the release of the unit it held). Streamed acquires of a pass are numbered
 * by their position in the recorded pass order; position g of the current "epoch" (the passes
 * since the order last changed) is uploaded into the oldest slot whose content has been consumed
 * and released, after the copy queue waits on that slot's `free`. An acquire makes the compute
 * queue wait on its slot's `ready` (no host wait) and then queues the uploads of the positions
 * that fit into free slots (at most `prefetch` ahead while one is held); end_pass queues the first
 * ones of the next pass. Nothing is copied back, nothing is synchronised with the host inside a
 * pass.
 *
 * Pass order. Before the first pass the order is predicted as unit declaration order; each pass's
 * actual acquire sequence is logged, and when it differs from the order (the prediction was
 * wrong, or the model changed its order) the rest of that pass uploads on demand and the logged
 * sequence becomes the order of the next passes. Units held while others are acquired are noted
 * (they are planned resident).
 *
 * Timing (backends that can time): marks on the compute queue around every acquire wait and at
 * every release, and events around every upload, in three sets by pass number (uploads for the
 * next pass are queued while the current one runs). A pass's numbers are read at the end of the
 * next pass (its events are complete by then: one event_sync that normally does not wait) or when
 * sl_res_last_stats asks. The first pass is read at its end: its unit times replace the cost
 * estimates and the component is re-planned with them (maybe_replan). */
#include "residency/residency.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/threads.h"
#include "residency/planner.h"

#define RES_ALIGN 256

typedef struct res_tensor {
    int unit;
    sl_tensor *dst;
    int file;           /* file index of the entry */
    uint64_t file_off;  /* absolute offset of the (sliced) bytes in that file */
    size_t nbytes;      /* bytes of the (sliced) tensor */
    const uint8_t *src; /* the mapped bytes of the (sliced) tensor */
    size_t off;         /* offset inside the unit's packed bytes */
} res_tensor;

typedef struct res_unit {
    char *name;
    int *tix; /* indices into r->tensors */
    int n_t, cap_t;
    size_t bytes;     /* packed, 256-aligned */
    double cost;      /* seconds per pass (model's estimate) */
    double cost_meas; /* seconds per pass measured on the first timed pass (< 0: none) */
    sl_unit_place place;
    size_t host_off; /* offset of the unit in the host arena */
    void *dev;       /* device copy while loaded (resident units) */
    int slot;        /* slot it occupies while acquired (streamed units), else -1 */
    bool held;
    bool spans;    /* held while other units are acquired: planned resident */
    bool in_arena; /* its bytes are in the host arena (else: disk tier, read through staging) */
} res_unit;

typedef enum res_home { HOME_NONE, HOME_MAPPED, HOME_ARENA } res_home;

typedef struct res_slot {
    void *dev;
    sl_event *ready;   /* copy queue: the upload into this slot is done */
    sl_event *free_ev; /* compute queue: the unit that was in it has been used */
    bool free_recorded;
    long seq;  /* epoch position it holds (-1: nothing, or an on-demand upload) */
    int unit;  /* unit whose bytes it holds or receives (-1: none) */
    bool held; /* acquired and not yet released */
} res_slot;

enum { MK_WAIT, MK_ACQ, MK_REL };
typedef struct res_mark {
    sl_event *ev;
    int unit, kind;
} res_mark;

/* Timing and counters of one pass (two sets, by pass parity). */
typedef struct res_tset {
    sl_event *p0, *p1; /* compute queue at begin / end of pass */
    res_mark *marks;
    int n_marks, cap_marks;
    sl_event **c0, **c1; /* copy queue around the upload of consumption index i */
    int cap_copy;
    int n_consumed; /* streamed acquires of the pass */
    size_t bytes;
    bool pending; /* ended, numbers not read yet */
    bool timed;   /* events were recorded (p0 at begin) */
} res_tset;

struct sl_res {
    sl_backend *be;
    char *name;
    res_unit *units;
    int n_units, cap_units;
    res_tensor *tensors;
    int n_tensors, cap_tensors;
    char **files; /* paths by file index (NULL: not given) */
    int n_files;

    res_home home;
    uint8_t *arena; /* pinned host home (HOME_ARENA) */
    size_t arena_bytes;
    /* disk tier (host_limit below the model): units outside the arena are read from their files
     * into one of two pinned staging buffers and uploaded from there */
    size_t host_limit;
    bool disk;
    uint8_t *stage[2];
    sl_event *stage_ev[2]; /* copy queue: the upload from stage[k] is done */
    bool stage_used[2];
    int stage_next;
    size_t stage_bytes;
    int *fds;      /* open files (disk tier), -1 where not opened */
    sl_err io_err; /* the last read failure inside a pass */

    /* plan */
    bool planned;
    sl_res_plan_opts popt; /* options of the current plan */
    size_t plan_bytes;
    int prefetch, n_slots;
    size_t slot_bytes;
    double predicted_s;

    /* device state */
    bool loaded;
    void *dev_block;  /* resident units */
    void *slot_block; /* n_slots × slot_bytes */
    res_slot *slots;
    sl_event *ev_loaded; /* copy queue, after the resident uploads */
    bool need_load_wait; /* compute must wait on ev_loaded before the next use */

    /* pass order: acquire sequence of a pass; spos[k] = streamed index of entry k or -1 */
    int *order, n_order, cap_order;
    int *sentry; /* entry index of streamed index j */
    int *spos;   /* streamed index of entry k, -1 for resident entries */
    long epoch0; /* absolute number of the first pass of the epoch */
    int m;       /* streamed entries per pass */
    bool order_measured;
    /* epoch positions */
    long cur;       /* next position to be consumed */
    long next_up;   /* next position to upload */
    long pass_base; /* position of the current pass's first streamed entry */
    /* the pass running now */
    bool in_pass, diverged;
    int n_acq;       /* acquires so far in this pass */
    int n_held;      /* units acquired and not released */
    bool first_done; /* a pass has completed (and re-planning was considered) */
    int *log, cap_log;
    long pass_no; /* passes ended since create: the absolute number of the current pass */

    bool timing;
    res_tset ts[3]; /* by absolute pass number % 3 */
    double *acc;    /* per-unit scratch for reading timings */
    sl_res_stats last;
    bool have_last;
};

static bool mapped_mode(const sl_backend *be) {
    return be->info.host_visible && !be->info.is_device;
}

sl_status sl_res_create(sl_backend *be, const char *name, sl_res **out, sl_err *err) {
    SL_ASSERT(be && out);
    *out = NULL;
    sl_res *r = calloc(1, sizeof *r);
    if (!r || !(r->name = strdup(name ? name : "weights"))) {
        free(r);
        return sl_err_set(err, SL_ERR_OOM_HOST, "residency: out of host memory");
    }
    r->be = be;
    *out = r;
    return SL_OK;
}

static void release_device(sl_res *r);
static void free_timing(sl_res *r);

void sl_res_free(sl_res *r) {
    if (!r) return;
    release_device(r);
    free_timing(r);
    if (r->arena) r->be->vt->host_free(r->be, r->arena);
    for (int k = 0; k < 2; k++) {
        if (r->stage[k]) r->be->vt->host_free(r->be, r->stage[k]);
        if (r->stage_ev[k]) r->be->vt->event_destroy(r->be, r->stage_ev[k]);
    }
    for (int i = 0; r->fds && i < r->n_files; i++)
        if (r->fds[i] >= 0) close(r->fds[i]);
    free(r->fds);
    for (int i = 0; i < r->n_units; i++) {
        free(r->units[i].name);
        free(r->units[i].tix);
    }
    for (int i = 0; i < r->n_files; i++)
        free(r->files[i]);
    free(r->files);
    free(r->units);
    free(r->tensors);
    free(r->order);
    free(r->sentry);
    free(r->spos);
    free(r->acc);
    free(r->log);
    free(r->name);
    free(r);
}

/* ---- declaration ---- */

static void *grow(void *p, int *cap, int need, size_t elem) {
    if (need <= *cap) return p;
    int c = *cap ? *cap * 2 : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(p, (size_t)c * elem);
    SL_ASSERTF(q, "residency: out of host memory growing a table to %d entries", c);
    *cap = c;
    return q;
}

int sl_res_add_unit(sl_res *r, const char *unit_name) {
    SL_ASSERT(r && unit_name);
    SL_ASSERTF(r->home == HOME_NONE, "residency %s: units added after load_host", r->name);
    r->units = grow(r->units, &r->cap_units, r->n_units + 1, sizeof *r->units);
    res_unit *u = &r->units[r->n_units];
    *u = (res_unit){.cost_meas = -1, .slot = -1};
    u->name = strdup(unit_name);
    SL_ASSERT(u->name);
    r->planned = false;
    return r->n_units++;
}

void sl_res_add_tensor(sl_res *r, int unit, const sl_wentry *e, int64_t row0, int64_t nrows,
                       sl_tensor *dst) {
    SL_ASSERT(r && e && dst);
    SL_ASSERTF(unit >= 0 && unit < r->n_units, "residency %s: unit %d out of range", r->name, unit);
    SL_ASSERTF(r->home == HOME_NONE, "residency %s: tensors added after load_host", r->name);
    sl_tensor t = sl_tensor_make(e->dtype, e->ndim, e->ne);
    size_t full = sl_tensor_nbytes(&t);
    SL_ASSERTF(full == e->nbytes, "residency %s: %s: %zu bytes for its shape, entry says %llu",
               r->name, e->name, full, (unsigned long long)e->nbytes);
    uint64_t off = e->offset;
    const uint8_t *src = e->data;
    if (nrows > 0) {
        SL_ASSERTF(e->ndim >= 1 && row0 >= 0 && row0 + nrows <= e->ne[0],
                   "residency %s: %s: rows [%lld, %lld) outside %lld", r->name, e->name,
                   (long long)row0, (long long)(row0 + nrows), (long long)(e->ndim ? e->ne[0] : 1));
        size_t row = e->ne[0] ? full / (size_t)e->ne[0] : 0;
        t.ne[0] = nrows;
        off += (uint64_t)row0 * row;
        src += (size_t)row0 * row;
    }
    size_t nb = sl_tensor_nbytes(&t);
    res_unit *u = &r->units[unit];
    r->tensors = grow(r->tensors, &r->cap_tensors, r->n_tensors + 1, sizeof *r->tensors);
    u->tix = grow(u->tix, &u->cap_t, u->n_t + 1, sizeof *u->tix);
    res_tensor *rt = &r->tensors[r->n_tensors];
    *rt = (res_tensor){.unit = unit,
                       .dst = dst,
                       .file = e->file,
                       .file_off = off,
                       .nbytes = nb,
                       .src = src,
                       .off = u->bytes};
    u->bytes = SL_ALIGN_UP(u->bytes + nb, (size_t)RES_ALIGN);
    u->tix[u->n_t++] = r->n_tensors++;
    /* shape and dtype now, data at acquire */
    t.data = NULL;
    t.name = e->name;
    *dst = t;
    r->planned = false;
}

void sl_res_set_unit_cost(sl_res *r, int unit, double seconds) {
    SL_ASSERT(r && unit >= 0 && unit < r->n_units && seconds >= 0);
    r->units[unit].cost = seconds;
}

int sl_res_unit_count(const sl_res *r) {
    return r->n_units;
}
const char *sl_res_unit_name(const sl_res *r, int unit) {
    SL_ASSERT(unit >= 0 && unit < r->n_units);
    return r->units[unit].name;
}
const char *sl_res_name(const sl_res *r) {
    return r->name;
}

size_t sl_res_unit_bytes(const sl_res *r, int unit) {
    SL_ASSERT(unit >= 0 && unit < r->n_units);
    return r->units[unit].bytes;
}

size_t sl_res_total_bytes(const sl_res *r) {
    size_t s = 0;
    for (int i = 0; i < r->n_units; i++)
        s += r->units[i].bytes;
    return s;
}

/* ---- host home ---- */

sl_status sl_res_set_file(sl_res *r, int file, const char *path, sl_err *err) {
    SL_ASSERT(r && file >= 0 && path);
    if (file >= r->n_files) {
        char **f = realloc(r->files, (size_t)(file + 1) * sizeof *f);
        if (!f) return sl_err_set(err, SL_ERR_OOM_HOST, "residency: out of host memory");
        for (int i = r->n_files; i <= file; i++)
            f[i] = NULL;
        r->files = f;
        r->n_files = file + 1;
    }
    char *p = strdup(path);
    if (!p) return sl_err_set(err, SL_ERR_OOM_HOST, "residency: out of host memory");
    free(r->files[file]);
    r->files[file] = p;
    return SL_OK;
}

sl_status sl_res_set_wdir(sl_res *r, const sl_wdir *d, sl_err *err) {
    SL_ASSERT(r && d);
    for (int i = 0; i < sl_wdir_file_count(d); i++) {
        sl_status st = sl_res_set_file(r, i, sl_wdir_file_path(d, i), err);
        if (st != SL_OK) return st;
    }
    return SL_OK;
}

/* Read n bytes at off of fd into dst, all of them. */
/* Pages read into the host home are dropped from the page cache so that RAM holds the weights
 * once, not twice. SLUICE_KEEP_PAGE_CACHE=1 keeps them (repeated loads of the same files in
 * benchmarks and tests then read from RAM instead of the disk). */
static bool drop_page_cache(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("SLUICE_KEEP_PAGE_CACHE");
        v = !(e && *e && strcmp(e, "0") != 0);
    }
    return v != 0;
}

static sl_status pread_all(int fd, uint8_t *dst, size_t n, uint64_t off, const char *path,
                           sl_err *err) {
    size_t done = 0;
    while (done < n) {
        size_t chunk = SL_MIN(n - done, (size_t)1 << 30);
        ssize_t k = pread(fd, dst + done, chunk, (off_t)(off + done));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return sl_err_set(err, SL_ERR_IO, "%s: read of %zu bytes at offset %llu failed: %s",
                              path, n - done, (unsigned long long)(off + done),
                              k < 0 ? strerror(errno) : "unexpected end of file");
        done += (size_t)k;
    }
    return SL_OK;
}

/* One piece of the arena fill: n bytes of file `file` at `off` (or of the mapping at src). */
typedef struct read_job {
    uint8_t *dst;
    const uint8_t *src;
    int file;
    uint64_t off;
    size_t n;
} read_job;

typedef struct read_ctx {
    const read_job *jobs;
    int n_jobs;
    const int *fds;
    char *const *paths;
    pthread_mutex_t mu;
    int next;
    sl_status st;
    sl_err *err;
} read_ctx;

enum { READ_CHUNK = 64 << 20, READ_THREADS = 4 };

/* Reader thread: takes jobs in order until none is left or one failed. pread goes straight into
 * the pinned arena; what was read is dropped from the page cache so RAM holds one copy. */
static void *reader(void *arg) {
    read_ctx *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        int i = c->st == SL_OK && c->next < c->n_jobs ? c->next++ : -1;
        pthread_mutex_unlock(&c->mu);
        if (i < 0) return NULL;
        const read_job *j = &c->jobs[i];
        sl_err e = {0};
        sl_status st = SL_OK;
        if (j->file >= 0) {
            st = pread_all(c->fds[j->file], j->dst, j->n, j->off, c->paths[j->file], &e);
            if (st == SL_OK && drop_page_cache())
                posix_fadvise(c->fds[j->file], (off_t)j->off, (off_t)j->n, POSIX_FADV_DONTNEED);
        } else {
            memcpy(j->dst, j->src, j->n);
        }
        if (st != SL_OK) {
            pthread_mutex_lock(&c->mu);
            if (c->st == SL_OK) {
                c->st = st;
                sl_err_set(c->err, st, "%s", e.msg);
            }
            pthread_mutex_unlock(&c->mu);
        }
    }
}

/* Fill the arena: zero the padding, then read every tensor (in ≤ 64 MiB pieces, by up to four
 * threads) from the files whose paths are known, else from the mapping. */
static sl_status fill_arena(sl_res *r, sl_err *err) {
    int nf = r->n_files;
    int *fds = malloc((size_t)(nf ? nf : 1) * sizeof *fds);
    int n_jobs = 0, cap = 0;
    read_job *jobs = NULL;
    sl_status st = SL_OK;
    if (!fds) return sl_err_set(err, SL_ERR_OOM_HOST, "residency: out of host memory");
    for (int i = 0; i < nf; i++)
        fds[i] = -1;
    for (int ui = 0; ui < r->n_units && st == SL_OK; ui++) {
        res_unit *u = &r->units[ui];
        if (!u->in_arena) continue;
        uint8_t *base = r->arena + u->host_off;
        size_t end = 0;
        for (int k = 0; k < u->n_t && st == SL_OK; k++) {
            const res_tensor *t = &r->tensors[u->tix[k]];
            if (t->off > end) memset(base + end, 0, t->off - end); /* defined padding */
            end = t->off + t->nbytes;
            const char *path = t->file < nf ? r->files[t->file] : NULL;
            if (path && fds[t->file] < 0 && (fds[t->file] = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
                st = sl_err_set(err, SL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
                break;
            }
            for (size_t o = 0; o < t->nbytes; o += READ_CHUNK) {
                jobs = grow(jobs, &cap, n_jobs + 1, sizeof *jobs);
                jobs[n_jobs++] = (read_job){.dst = base + t->off + o,
                                            .src = t->src + o,
                                            .file = path ? t->file : -1,
                                            .off = t->file_off + o,
                                            .n = SL_MIN((size_t)READ_CHUNK, t->nbytes - o)};
            }
        }
        if (u->bytes > end) memset(base + end, 0, u->bytes - end);
    }
    if (st == SL_OK && n_jobs) {
        read_ctx c = {.jobs = jobs, .n_jobs = n_jobs, .fds = fds, .paths = r->files, .err = err};
        pthread_mutex_init(&c.mu, NULL);
        pthread_t th[READ_THREADS];
        int nt = SL_MIN(SL_MIN(READ_THREADS, sl_cpu_count()), n_jobs), started = 0;
        for (int i = 1; i < nt; i++)
            if (pthread_create(&th[started], NULL, reader, &c) == 0) started++;
        reader(&c); /* this thread reads too */
        for (int i = 0; i < started; i++)
            pthread_join(th[i], NULL);
        pthread_mutex_destroy(&c.mu);
        st = c.st;
    }
    for (int i = 0; i < nf; i++)
        if (fds[i] >= 0) close(fds[i]);
    free(fds);
    free(jobs);
    return st;
}

void sl_res_set_host_limit(sl_res *r, size_t bytes) {
    SL_ASSERTF(r->home == HOME_NONE, "residency %s: host limit set after load_host", r->name);
    r->host_limit = bytes;
}

/* The disk tier's host side: an arena of host_limit bytes (filled at load_device, once the plan
 * says which units stream), two staging buffers, the files kept open. */
static sl_status setup_disk_tier(sl_res *r, size_t total, sl_err *err) {
    sl_backend *be = r->be;
    sl_err e2 = {0};
    size_t mx = 0;
    for (int i = 0; i < r->n_units; i++)
        mx = SL_MAX(mx, r->units[i].bytes);
    /* staging of at most a quarter of the limit; units larger than it go up in pieces */
    size_t cap = SL_MAX(r->host_limit / 4 / RES_ALIGN * RES_ALIGN, (size_t)RES_ALIGN);
    r->stage_bytes = SL_MIN(SL_ALIGN_UP(SL_MIN(mx, (size_t)READ_CHUNK), (size_t)RES_ALIGN), cap);
    if (!r->stage_bytes) r->stage_bytes = RES_ALIGN;
    size_t arena = r->host_limit > 2 * r->stage_bytes ? r->host_limit - 2 * r->stage_bytes : 0;
    arena = arena / RES_ALIGN * RES_ALIGN;
    r->disk = true;
    if (arena && be->vt->host_alloc(be, arena, (void **)&r->arena, &e2) != SL_OK) goto oom;
    r->arena_bytes = r->arena ? arena : 0;
    for (int k = 0; k < 2; k++) {
        if (be->vt->host_alloc(be, r->stage_bytes, (void **)&r->stage[k], &e2) != SL_OK) goto oom;
        if (be->vt->event_create(be, &r->stage_ev[k]) != SL_OK) {
            r->stage_ev[k] = NULL;
            return sl_err_set(err, SL_ERR_BACKEND, "%s: cannot create an event: %s", r->name,
                              be->last_error);
        }
    }
    r->fds = malloc((size_t)(r->n_files ? r->n_files : 1) * sizeof *r->fds);
    if (!r->fds) return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of host memory", r->name);
    for (int i = 0; i < r->n_files; i++) {
        r->fds[i] = -1;
        if (r->files[i] && (r->fds[i] = open(r->files[i], O_RDONLY | O_CLOEXEC)) < 0)
            return sl_err_set(err, SL_ERR_IO, "%s: cannot open: %s", r->files[i], strerror(errno));
    }
    for (int i = 0; i < r->n_units; i++)
        r->units[i].in_arena = false;
    SL_INFO("res[%s]: host limit %.2f GB for %.2f GB of weights: %.2f GB arena + 2 x %.1f MB "
            "staging, the rest read from disk when uploaded",
            r->name, (double)r->host_limit / 1e9, (double)total / 1e9, (double)r->arena_bytes / 1e9,
            (double)r->stage_bytes / 1e6);
    return SL_OK;
oom:
    return sl_err_set(err, SL_ERR_OOM_HOST,
                      "%s: cannot allocate %.2f GB of pinned host memory for the disk tier: %s "
                      "(lower the host RAM limit)",
                      r->name, (double)r->host_limit / 1e9, e2.msg);
}

static void free_host(sl_res *r) {
    sl_backend *be = r->be;
    if (r->arena) be->vt->host_free(be, r->arena);
    r->arena = NULL;
    r->arena_bytes = 0;
    for (int k = 0; k < 2; k++) {
        if (r->stage[k]) be->vt->host_free(be, r->stage[k]);
        if (r->stage_ev[k]) be->vt->event_destroy(be, r->stage_ev[k]);
        r->stage[k] = NULL;
        r->stage_ev[k] = NULL;
    }
    for (int i = 0; r->fds && i < r->n_files; i++)
        if (r->fds[i] >= 0) close(r->fds[i]);
    free(r->fds);
    r->fds = NULL;
    r->disk = false;
}

sl_status sl_res_load_host(sl_res *r, sl_err *err) {
    SL_ASSERT(r);
    if (r->home != HOME_NONE) return SL_OK;
    if (mapped_mode(r->be)) {
        r->home = HOME_MAPPED;
        return SL_OK;
    }
    size_t total = 0;
    for (int i = 0; i < r->n_units; i++) {
        r->units[i].host_off = total;
        r->units[i].in_arena = true;
        total += r->units[i].bytes;
    }
    if (r->host_limit && total > r->host_limit) {
        sl_status st = setup_disk_tier(r, total, err);
        if (st != SL_OK) {
            free_host(r);
            return st;
        }
        r->home = HOME_ARENA;
        return SL_OK;
    }
    void *p = NULL;
    sl_err e2 = {0};
    if (r->be->vt->host_alloc(r->be, total ? total : RES_ALIGN, &p, &e2) != SL_OK)
        return sl_err_set(err, SL_ERR_OOM_HOST,
                          "%s: cannot allocate the pinned host home of %.2f GB (%zu bytes) for %d "
                          "units: %s (free host RAM, limit the host RAM used (disk tier), or use "
                          "a smaller dtype/quantisation)",
                          r->name, (double)total / 1e9, total, r->n_units, e2.msg);
    r->arena = p;
    r->arena_bytes = total;
    sl_status st = fill_arena(r, err);
    if (st != SL_OK) {
        sl_err_prefix(err, "%s: loading weights: ", r->name);
        free_host(r);
        return st;
    }
    r->home = HOME_ARENA;
    return SL_OK;
}

/* Disk tier, at load_device: keep in the arena the streamed units first (they cross the link
 * every pass), then resident ones (re-read at every reload otherwise), in pass order while they
 * fit; refill when that set changed. */
static sl_status choose_arena_units(sl_res *r, sl_err *err) {
    int n = r->n_units;
    bool *want = calloc((size_t)(n ? n : 1), sizeof *want);
    if (!want) return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of host memory", r->name);
    size_t used = 0;
    for (int pass = 0; pass < 2; pass++) {
        sl_unit_place pl = pass == 0 ? SL_UNIT_STREAMED : SL_UNIT_RESIDENT;
        for (int k = 0; k < r->n_order + n; k++) {
            int i = k < r->n_order ? r->order[k] : k - r->n_order;
            if (want[i] || r->units[i].place != pl) continue;
            if (used + r->units[i].bytes <= r->arena_bytes) {
                want[i] = true;
                used += r->units[i].bytes;
            }
        }
    }
    bool same = true;
    for (int i = 0; i < n; i++)
        same = same && want[i] == r->units[i].in_arena;
    sl_status st = SL_OK;
    if (!same) {
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            r->units[i].in_arena = want[i];
            if (want[i]) {
                r->units[i].host_off = off;
                off += r->units[i].bytes;
            }
        }
        st = fill_arena(r, err);
        if (st != SL_OK) {
            for (int i = 0; i < n; i++)
                r->units[i].in_arena = false;
            sl_err_prefix(err, "%s: loading weights: ", r->name);
        }
    }
    free(want);
    return st;
}

/* Bytes [o, o + n) of unit u's packed layout into dst, from its files (or mapping). */
static sl_status read_unit_range(sl_res *r, const res_unit *u, size_t o, size_t n, uint8_t *dst,
                                 sl_err *err) {
    size_t cur = o, end = o + n;
    for (int k = 0; k < u->n_t; k++) {
        const res_tensor *t = &r->tensors[u->tix[k]];
        size_t lo = SL_MAX(o, t->off), hi = SL_MIN(end, t->off + t->nbytes);
        if (lo >= hi) continue;
        if (lo > cur) memset(dst + (cur - o), 0, lo - cur);
        int fd = r->fds && t->file < r->n_files ? r->fds[t->file] : -1;
        if (fd >= 0) {
            uint64_t fo = t->file_off + (lo - t->off);
            sl_status st = pread_all(fd, dst + (lo - o), hi - lo, fo, r->files[t->file], err);
            if (st != SL_OK) return st;
            if (drop_page_cache()) posix_fadvise(fd, (off_t)fo, (off_t)(hi - lo), POSIX_FADV_DONTNEED);
        } else {
            memcpy(dst + (lo - o), t->src + (lo - t->off), hi - lo);
        }
        cur = hi;
    }
    if (end > cur) memset(dst + (cur - o), 0, end - cur);
    return SL_OK;
}

/* Queue the upload of unit u into dev on the copy queue: one copy from the arena, or (disk tier)
 * piece by piece through the staging buffers — the host reads the next piece while the previous
 * one is uploaded, waiting only for the upload that last used the buffer. */
static sl_status upload_unit(sl_res *r, const res_unit *u, uint8_t *dev) {
    sl_backend *be = r->be;
    if (!u->bytes) return SL_OK;
    if (u->in_arena)
        return be->vt->upload(be, SL_QUEUE_COPY, dev, r->arena + u->host_off, u->bytes);
    for (size_t o = 0; o < u->bytes; o += r->stage_bytes) {
        int k = r->stage_next;
        r->stage_next ^= 1;
        size_t n = SL_MIN(r->stage_bytes, u->bytes - o);
        sl_status st;
        if (r->stage_used[k] && (st = be->vt->event_sync(be, r->stage_ev[k])) != SL_OK) return st;
        sl_err_clear(&r->io_err);
        if ((st = read_unit_range(r, u, o, n, r->stage[k], &r->io_err)) != SL_OK) return st;
        if ((st = be->vt->upload(be, SL_QUEUE_COPY, dev + o, r->stage[k], n)) != SL_OK) return st;
        if ((st = be->vt->event_record(be, r->stage_ev[k], SL_QUEUE_COPY)) != SL_OK) return st;
        r->stage_used[k] = true;
    }
    return SL_OK;
}

/* The message of the last failed upload: a read error, else the backend's. */
static const char *upload_msg(sl_res *r) {
    return r->io_err.status != SL_OK ? r->io_err.msg : r->be->last_error;
}

size_t sl_res_host_bytes(const sl_res *r) {
    return r->home == HOME_ARENA ? r->arena_bytes + (r->disk ? 2 * r->stage_bytes : 0) : 0;
}

__attribute__((format(printf, 3, 0))) static void
fail_ctx(sl_ctx *ctx, sl_status st, const char *fmt, const char *a, const char *b) {
    if (ctx)
        sl_ctx_fail(ctx, st, fmt, a, b);
    else
        SL_ERROR(fmt, a, b);
}

/* ---- pass order and epochs ---- */

enum { NSETS = 3 };

/* A new epoch: positions restart at 0 with the next pass; slot contents are forgotten (their
 * uploads may still be queued, which is harmless: later uploads into them wait in copy-queue
 * order and on their `free` events). */
static void new_epoch(sl_res *r) {
    r->cur = r->next_up = r->pass_base = 0;
    r->epoch0 = r->pass_no;
    for (int s = 0; s < r->n_slots && r->slots; s++)
        if (!r->slots[s].held) r->slots[s].seq = -1;
}

/* Derive the streamed entries of the order under the current placement. */
static void rebuild_streamed(sl_res *r) {
    int n = r->n_order ? r->n_order : 1;
    r->sentry = realloc(r->sentry, (size_t)n * sizeof *r->sentry);
    r->spos = realloc(r->spos, (size_t)n * sizeof *r->spos);
    SL_ASSERTF(r->sentry && r->spos, "residency: out of host memory");
    r->m = 0;
    for (int k = 0; k < r->n_order; k++) {
        bool st = r->units[r->order[k]].place == SL_UNIT_STREAMED;
        r->spos[k] = st ? r->m : -1;
        if (st) r->sentry[r->m++] = k;
    }
    new_epoch(r);
}

static void set_order(sl_res *r, const int *seq, int n) {
    r->order = grow(r->order, &r->cap_order, n, sizeof *r->order);
    if (n) memcpy(r->order, seq, (size_t)n * sizeof *seq);
    r->n_order = n;
    rebuild_streamed(r);
}

/* The order assumed before any pass ran: declaration order, each unit once. */
static void predict_order(sl_res *r) {
    r->order = grow(r->order, &r->cap_order, r->n_units, sizeof *r->order);
    for (int i = 0; i < r->n_units; i++)
        r->order[i] = i;
    r->n_order = r->n_units;
    rebuild_streamed(r);
}

/* ---- timing ---- */

static void free_timing(sl_res *r) {
    sl_backend *be = r->be;
    for (int s = 0; s < NSETS; s++) {
        res_tset *t = &r->ts[s];
        if (t->p0) be->vt->event_destroy(be, t->p0);
        if (t->p1) be->vt->event_destroy(be, t->p1);
        for (int i = 0; i < t->cap_marks; i++)
            if (t->marks[i].ev) be->vt->event_destroy(be, t->marks[i].ev);
        for (int i = 0; i < t->cap_copy; i++) {
            if (t->c0[i]) be->vt->event_destroy(be, t->c0[i]);
            if (t->c1[i]) be->vt->event_destroy(be, t->c1[i]);
        }
        free(t->marks);
        free(t->c0);
        free(t->c1);
        *t = (res_tset){0};
    }
    r->timing = false;
}

static sl_event *new_event(sl_res *r) {
    sl_event *e = NULL;
    if (r->be->vt->event_create(r->be, &e) != SL_OK) return NULL;
    return e;
}

/* Record a compute-queue mark (timing only; a failure just stops timing this pass). */
static void mark(sl_res *r, res_tset *t, int unit, int kind) {
    if (!t->timed) return;
    if (t->n_marks == t->cap_marks) {
        int c = t->cap_marks ? 2 * t->cap_marks : 64;
        res_mark *m = realloc(t->marks, (size_t)c * sizeof *m);
        SL_ASSERTF(m, "residency: out of host memory");
        for (int i = t->cap_marks; i < c; i++)
            m[i] = (res_mark){0};
        t->marks = m;
        t->cap_marks = c;
    }
    res_mark *m = &t->marks[t->n_marks];
    if (!m->ev && !(m->ev = new_event(r))) {
        t->timed = false;
        return;
    }
    if (r->be->vt->event_record(r->be, m->ev, SL_QUEUE_COMPUTE) != SL_OK) {
        t->timed = false;
        return;
    }
    m->unit = unit;
    m->kind = kind;
    t->n_marks++;
}

/* Copy-queue timing events for consumption index ci of set t (NULL when not timing). */
static bool copy_events(sl_res *r, res_tset *t, int ci, sl_event **a, sl_event **b) {
    *a = *b = NULL;
    if (!r->timing) return false;
    if (ci >= t->cap_copy) {
        int c = t->cap_copy ? t->cap_copy : 16;
        while (c <= ci)
            c *= 2;
        sl_event **x = realloc(t->c0, (size_t)c * sizeof *x);
        SL_ASSERTF(x, "residency: out of host memory");
        t->c0 = x;
        sl_event **y = realloc(t->c1, (size_t)c * sizeof *y);
        SL_ASSERTF(y, "residency: out of host memory");
        t->c1 = y;
        for (int i = t->cap_copy; i < c; i++)
            t->c0[i] = t->c1[i] = NULL;
        t->cap_copy = c;
    }
    if (!t->c0[ci]) t->c0[ci] = new_event(r);
    if (!t->c1[ci]) t->c1[ci] = new_event(r);
    *a = t->c0[ci];
    *b = t->c1[ci];
    return *a && *b;
}

static double elapsed(sl_res *r, sl_event *a, sl_event *b) {
    float ms = 0;
    if (!a || !b || r->be->vt->event_elapsed(r->be, a, b, &ms) != SL_OK) return 0;
    return ms;
}

/* Read the numbers of a pass that has ended (host-waits for its end event). */
static void finalize(sl_res *r, res_tset *t) {
    if (!t->pending) return;
    t->pending = false;
    sl_backend *be = r->be;
    sl_res_stats st = r->last;
    st.bytes_uploaded = t->bytes;
    st.copy_ms = st.compute_ms = st.stall_ms = st.pass_ms = 0;
    if (!r->acc && !(r->acc = calloc((size_t)(r->n_units ? r->n_units : 1), sizeof *r->acc)))
        t->timed = false;
    if (t->timed && be->vt->event_sync(be, t->p1) == SL_OK) {
        st.pass_ms = elapsed(r, t->p0, t->p1);
        for (int ci = 0; ci < t->n_consumed && ci < t->cap_copy; ci++)
            st.copy_ms += elapsed(r, t->c0[ci], t->c1[ci]);
        /* compute between marks goes to the most recently acquired unit still held */
        int stack[64], depth = 0;
        bool first = true;
        for (int i = 0; i < r->n_units; i++) {
            r->acc[i] = 0;
            if (r->units[i].cost_meas >= 0) first = false;
        }
        for (int i = 0; i < t->n_marks; i++) {
            const res_mark *m = &t->marks[i];
            sl_event *next = i + 1 < t->n_marks ? t->marks[i + 1].ev : t->p1;
            double d = elapsed(r, m->ev, next);
            if (m->kind == MK_WAIT) {
                st.stall_ms += d;
                continue;
            }
            if (m->kind == MK_ACQ && depth < 64) stack[depth++] = m->unit;
            if (m->kind == MK_REL)
                for (int k = depth - 1; k >= 0; k--)
                    if (stack[k] == m->unit) {
                        memmove(stack + k, stack + k + 1, (size_t)(depth - k - 1) * sizeof *stack);
                        depth--;
                        break;
                    }
            if (depth) r->acc[stack[depth - 1]] += d;
        }
        st.compute_ms = st.pass_ms - st.stall_ms;
        if (first) {
            for (int k = 0; k < t->n_marks; k++) {
                const res_mark *m = &t->marks[k];
                if (m->kind == MK_ACQ) r->units[m->unit].cost_meas = r->acc[m->unit] / 1e3;
            }
        }
    }
    r->last = st;
    r->have_last = true;
}

/* ---- slots and uploads ---- */

/* Queue the upload of `unit` into slot s on the copy queue (after the slot's `free`). */
static sl_status issue_upload(sl_res *r, int s, int unit, res_tset *t, int ci) {
    sl_backend *be = r->be;
    res_slot *sl = &r->slots[s];
    const res_unit *u = &r->units[unit];
    sl_status st = SL_OK;
    if (sl->free_recorded && (st = be->vt->queue_wait(be, SL_QUEUE_COPY, sl->free_ev)) != SL_OK)
        return st;
    sl_event *a, *b;
    bool timed = copy_events(r, t, ci, &a, &b);
    if (timed && (st = be->vt->event_record(be, a, SL_QUEUE_COPY)) != SL_OK) return st;
    if ((st = upload_unit(r, u, sl->dev)) != SL_OK) return st;
    if (timed && (st = be->vt->event_record(be, b, SL_QUEUE_COPY)) != SL_OK) return st;
    if ((st = be->vt->event_record(be, sl->ready, SL_QUEUE_COPY)) != SL_OK) return st;
    sl->unit = unit;
    return SL_OK;
}

/* A slot whose content has been consumed and released (or is stale): the oldest. With
 * `any_unheld`, also slots holding prefetched positions (used once a pass has diverged). */
static int free_slot(const sl_res *r, bool any_unheld) {
    int best = -1;
    for (int s = 0; s < r->n_slots; s++) {
        const res_slot *sl = &r->slots[s];
        if (sl->held || (!any_unheld && sl->seq >= r->cur)) continue;
        if (best < 0 || sl->seq < r->slots[best].seq) best = s;
    }
    return best;
}

static int slot_with_seq(const sl_res *r, long g) {
    for (int s = 0; s < r->n_slots; s++)
        if (r->slots[s].seq == g && !r->slots[s].held) return s;
    return -1;
}

/* Upload epoch position g into slot s. */
static sl_status upload_pos(sl_res *r, int s, long g) {
    int j = (int)(g % r->m);
    int unit = r->order[r->sentry[j]];
    res_tset *t = &r->ts[(r->epoch0 + g / r->m) % NSETS];
    sl_status st = issue_upload(r, s, unit, t, j);
    if (st == SL_OK) r->slots[s].seq = g;
    return st;
}

/* Queue uploads of the next positions into free slots, no further than the end of the next
 * pass (whose timing set is the last one not in use). */
static sl_status pump(sl_res *r) {
    if (!r->loaded || r->m == 0 || r->diverged) return SL_OK;
    long limit = r->pass_base + 2 * (long)r->m;
    while (r->next_up < limit) {
        int s = free_slot(r, false);
        if (s < 0) break;
        sl_status st = upload_pos(r, s, r->next_up);
        if (st != SL_OK) return st;
        r->next_up++;
    }
    return SL_OK;
}

/* ---- planning and device placement ---- */

/* Plan in numbers: fill place[unit] (true: resident) and out; *cur_s (may be NULL) receives the
 * predicted time of the current placement under the same inputs. */
static sl_status plan_compute(sl_res *r, const sl_res_plan_opts *opt, bool *place, sl_plan_out *out,
                              double *cur_s, sl_err *err) {
    int n = r->n_units;
    size_t nn = (size_t)(n ? n : 1);
    int *seq = malloc(nn * sizeof *seq);
    bool *seen = calloc(nn, sizeof *seen);
    size_t *bytes = malloc(nn * sizeof *bytes);
    double *cost = malloc(nn * sizeof *cost);
    bool *res = malloc(nn * sizeof *res);
    bool *must = malloc(nn * sizeof *must);
    sl_status st = SL_OK;
    if (!seq || !seen || !bytes || !cost || !res || !must) {
        st = sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of host memory planning", r->name);
        goto done;
    }
    /* units in pass order (first use), then any never acquired */
    int k = 0;
    for (int i = 0; i < r->n_order; i++)
        if (!seen[r->order[i]]) seen[seq[k++] = r->order[i]] = true;
    for (int i = 0; i < n; i++)
        if (!seen[i]) seq[k++] = i;
    for (int i = 0; i < n; i++) {
        const res_unit *u = &r->units[seq[i]];
        bytes[i] = u->bytes;
        cost[i] = u->cost_meas >= 0 ? u->cost_meas : u->cost;
        must[i] = u->spans;
    }
    sl_plan_in in = {.n = n,
                     .bytes = bytes,
                     .cost = cost,
                     .link_gbps = opt->link_gbps,
                     .budget = opt->budget,
                     .prefetch = opt->prefetch,
                     .force_stream_all = opt->force_stream_all,
                     .must_resident = must};
    if (cur_s) {
        for (int i = 0; i < n; i++)
            res[i] = r->units[seq[i]].place == SL_UNIT_RESIDENT;
        *cur_s = sl_plan_simulate(&in, res, opt->prefetch + 1, NULL);
    }
    st = sl_plan_make(&in, res, out, err);
    if (st != SL_OK) {
        sl_err_prefix(err, "%s: ", r->name);
        goto done;
    }
    for (int i = 0; i < n; i++)
        place[seq[i]] = res[i];
done:
    free(seq);
    free(seen);
    free(bytes);
    free(cost);
    free(res);
    free(must);
    return st;
}

static void plan_apply(sl_res *r, const sl_res_plan_opts *opt, const bool *place,
                       const sl_plan_out *out) {
    for (int i = 0; i < r->n_units; i++)
        r->units[i].place = place[i] ? SL_UNIT_RESIDENT : SL_UNIT_STREAMED;
    r->popt = *opt;
    r->prefetch = opt->prefetch;
    r->n_slots = out->slots;
    r->slot_bytes = out->slot_bytes;
    r->plan_bytes = out->device_bytes;
    r->predicted_s = out->pass_s;
    rebuild_streamed(r);
    r->planned = true;
    sl_log(out->n_streamed ? SL_LOG_INFO : SL_LOG_DEBUG,
           "res[%s] plan: %d resident / %d streamed, %d slots x %.1f MB, %.3f GB of VRAM "
           "(budget %.3f GB), predicted %.1f ms/pass (compute %.1f ms, link %.1f ms)",
           r->name, out->n_resident, out->n_streamed, out->slots, (double)out->slot_bytes / 1e6,
           (double)out->device_bytes / 1e9,
           opt->budget == SIZE_MAX ? INFINITY : (double)opt->budget / 1e9, out->pass_s * 1e3,
           out->compute_s * 1e3, out->link_s * 1e3);
}

sl_status sl_res_plan(sl_res *r, const sl_res_plan_opts *opt, sl_err *err) {
    SL_ASSERT(r && opt);
    if (r->loaded) release_device(r);
    r->planned = false;
    if (r->home == HOME_MAPPED || mapped_mode(r->be)) {
        for (int i = 0; i < r->n_units; i++)
            r->units[i].place = SL_UNIT_RESIDENT;
        r->plan_bytes = 0;
        r->n_slots = 0;
        r->slot_bytes = 0;
        r->planned = true;
        return SL_OK;
    }
    if (!r->order_measured) predict_order(r);
    bool *place = malloc((size_t)(r->n_units ? r->n_units : 1) * sizeof *place);
    if (!place) return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of host memory planning", r->name);
    sl_plan_out out;
    sl_status st = plan_compute(r, opt, place, &out, NULL, err);
    if (st == SL_OK) plan_apply(r, opt, place, &out);
    free(place);
    return st;
}

/* After the first measured pass: plan again with the measured costs, the recorded order and the
 * units seen held across others; switch when the placement changes and the prediction improves
 * by 2% or more. Between passes: parks and reloads (one-time uploads of the new resident set). */
static void maybe_replan(sl_res *r, sl_ctx *ctx) {
    if (!r->planned || r->popt.no_replan || r->popt.force_stream_all || r->n_slots == 0) return;
    int n = r->n_units;
    bool *place = malloc((size_t)(n ? n : 1) * sizeof *place);
    if (!place) return;
    sl_plan_out out;
    double cur_s = 0;
    sl_err e = {0};
    sl_res_plan_opts opt = r->popt;
    if (plan_compute(r, &opt, place, &out, &cur_s, &e) == SL_OK) {
        bool same = true;
        for (int i = 0; i < n; i++)
            same = same && place[i] == (r->units[i].place == SL_UNIT_RESIDENT);
        r->predicted_s = cur_s; /* the current placement, with the measured costs */
        if (!same && out.pass_s < cur_s * 0.98) {
            SL_INFO("res[%s]: re-planning with the costs measured on the first pass (predicted "
                    "%.1f → %.1f ms/pass)",
                    r->name, cur_s * 1e3, out.pass_s * 1e3);
            release_device(r);
            plan_apply(r, &opt, place, &out);
            if (sl_res_load_device(r, &e) != SL_OK) fail_ctx(ctx, e.status, "%s%s", e.msg, "");
        }
    }
    free(place);
}

sl_unit_place sl_res_unit_place(const sl_res *r, int unit) {
    SL_ASSERT(unit >= 0 && unit < r->n_units);
    return r->units[unit].place;
}

size_t sl_res_plan_bytes(const sl_res *r) {
    return r->plan_bytes;
}
bool sl_res_is_loaded(const sl_res *r) {
    return r->loaded;
}

void sl_res_plan_info_get(const sl_res *r, sl_res_plan_info *out) {
    SL_ASSERT(r && out);
    *out = (sl_res_plan_info){.slots = r->n_slots,
                              .slot_bytes = r->slot_bytes,
                              .device_bytes = r->plan_bytes,
                              .predicted_ms = r->predicted_s * 1e3};
    for (int i = 0; i < r->n_units; i++) {
        if (r->units[i].place == SL_UNIT_RESIDENT) {
            out->n_resident++;
        } else {
            out->n_streamed++;
            out->streamed_bytes += r->units[i].bytes;
        }
    }
}

double sl_res_unit_cost(const sl_res *r, int unit, bool *measured) {
    SL_ASSERT(unit >= 0 && unit < r->n_units);
    const res_unit *u = &r->units[unit];
    if (measured) *measured = u->cost_meas >= 0;
    return u->cost_meas >= 0 ? u->cost_meas : u->cost;
}

static void release_device(sl_res *r) {
    sl_backend *be = r->be;
    if (r->loaded || r->dev_block || r->slot_block || r->ev_loaded || r->slots) {
        /* queued work may still read the device copies: drain before freeing */
        be->vt->sync(be);
    }
    for (int s = 0; s < NSETS; s++)
        finalize(r, &r->ts[s]);
    if (r->dev_block) be->vt->free(be, r->dev_block);
    if (r->slot_block) be->vt->free(be, r->slot_block);
    r->dev_block = r->slot_block = NULL;
    if (r->slots) {
        for (int s = 0; s < r->n_slots; s++) {
            if (r->slots[s].ready) be->vt->event_destroy(be, r->slots[s].ready);
            if (r->slots[s].free_ev) be->vt->event_destroy(be, r->slots[s].free_ev);
        }
        free(r->slots);
        r->slots = NULL;
    }
    if (r->ev_loaded) be->vt->event_destroy(be, r->ev_loaded);
    r->ev_loaded = NULL;
    for (int i = 0; i < r->n_units; i++) {
        r->units[i].dev = NULL;
        r->units[i].slot = -1;
        r->units[i].held = false;
    }
    r->loaded = false;
    r->need_load_wait = false;
    r->in_pass = false;
    r->n_held = 0;
}

sl_status sl_res_load_device(sl_res *r, sl_err *err) {
    SL_ASSERT(r);
    if (r->loaded) return SL_OK;
    sl_status st;
    if (r->home == HOME_NONE && (st = sl_res_load_host(r, err)) != SL_OK) return st;
    if (!r->planned) {
        sl_res_plan_opts o = {.budget = SIZE_MAX, .prefetch = 1};
        if ((st = sl_res_plan(r, &o, err)) != SL_OK) return st;
    }
    if (r->home == HOME_MAPPED) {
        r->loaded = true;
        return SL_OK;
    }
    if (r->disk && (st = choose_arena_units(r, err)) != SL_OK) return st;
    sl_backend *be = r->be;
    sl_err e2 = {0};
    size_t res_bytes = r->plan_bytes - (size_t)r->n_slots * r->slot_bytes;
    size_t fr = 0, tot = 0;
    if (res_bytes && (st = be->vt->alloc(be, res_bytes, &r->dev_block, &e2)) != SL_OK) {
        r->dev_block = NULL;
        be->vt->mem_info(be, &fr, &tot);
        return sl_err_set(err, SL_ERR_OOM_DEVICE,
                          "%s: cannot allocate %.3f GB of VRAM for resident weights (%.3f GB "
                          "free): %s (lower --max-vram, raise --streaming-min-vram or free VRAM)",
                          r->name, (double)res_bytes / 1e9, (double)fr / 1e9, e2.msg);
    }
    r->loaded = true; /* from here on release_device undoes a partial load */
    if (r->n_slots) {
        size_t sb = SL_MAX((size_t)r->n_slots * r->slot_bytes, (size_t)RES_ALIGN);
        if ((st = be->vt->alloc(be, sb, &r->slot_block, &e2)) != SL_OK) {
            r->slot_block = NULL;
            be->vt->mem_info(be, &fr, &tot);
            sl_err_set(err, SL_ERR_OOM_DEVICE,
                       "%s: cannot allocate %d streaming slots of %.1f MB (%.3f GB free): %s "
                       "(lower --max-vram or --streaming-prefetch)",
                       r->name, r->n_slots, (double)r->slot_bytes / 1e6, (double)fr / 1e9, e2.msg);
            goto fail;
        }
        r->slots = calloc((size_t)r->n_slots, sizeof *r->slots);
        if (!r->slots) {
            st = sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of host memory", r->name);
            goto fail;
        }
        for (int s = 0; s < r->n_slots; s++) {
            res_slot *sl = &r->slots[s];
            sl->dev = (uint8_t *)r->slot_block + (size_t)s * r->slot_bytes;
            sl->seq = -1;
            sl->unit = -1;
            if ((st = be->vt->event_create(be, &sl->ready)) != SL_OK ||
                (st = be->vt->event_create(be, &sl->free_ev)) != SL_OK) {
                sl_err_set(err, st, "%s: cannot create an event: %s", r->name, be->last_error);
                goto fail;
            }
        }
    }
    if ((st = be->vt->event_create(be, &r->ev_loaded)) != SL_OK) {
        r->ev_loaded = NULL;
        sl_err_set(err, st, "%s: cannot create an event: %s", r->name, be->last_error);
        goto fail;
    }
    size_t off = 0;
    for (int i = 0; i < r->n_units; i++) {
        res_unit *u = &r->units[i];
        if (u->place != SL_UNIT_RESIDENT) continue;
        u->dev = (uint8_t *)r->dev_block + off;
        sl_err_clear(&r->io_err);
        if ((st = upload_unit(r, u, u->dev)) != SL_OK) {
            sl_err_set(err, st, "%s: uploading unit %s (%zu bytes): %s", r->name, u->name, u->bytes,
                       upload_msg(r));
            goto fail;
        }
        off += u->bytes;
    }
    if ((st = be->vt->event_record(be, r->ev_loaded, SL_QUEUE_COPY)) != SL_OK) {
        sl_err_set(err, st, "%s: recording an event: %s", r->name, be->last_error);
        goto fail;
    }
    r->need_load_wait = true;
    r->timing = be->info.can_time;
    new_epoch(r);
    if ((st = pump(r)) != SL_OK) {
        sl_err_set(err, st, "%s: queueing uploads: %s", r->name, upload_msg(r));
        goto fail;
    }
    return SL_OK;
fail:
    release_device(r);
    return st;
}

void sl_res_park(sl_res *r) {
    if (!r) return;
    if (r->home == HOME_MAPPED) {
        r->loaded = false;
        return;
    }
    release_device(r);
}

/* ---- passes ---- */

static void set_pointers(sl_res *r, res_unit *u, const uint8_t *base) {
    for (int k = 0; k < u->n_t; k++) {
        const res_tensor *t = &r->tensors[u->tix[k]];
        t->dst->data = (void *)(base ? base + t->off : NULL);
    }
}

void sl_res_begin_pass(sl_res *r, sl_ctx *ctx) {
    if (!r) return;
    if (ctx && ctx->status != SL_OK) return;
    if (!r->loaded) {
        sl_err e = {0};
        if (sl_res_load_device(r, &e) != SL_OK) {
            fail_ctx(ctx, e.status, "%s%s", e.msg, "");
            return;
        }
    }
    if (r->in_pass) return;
    r->in_pass = true;
    r->diverged = false;
    r->n_acq = 0;
    res_tset *t = &r->ts[r->pass_no % NSETS];
    finalize(r, t); /* not normally pending: read at the end of the next pass */
    t->n_marks = 0;
    t->n_consumed = 0;
    t->bytes = 0;
    t->timed = false;
    if (r->timing && r->home == HOME_ARENA) {
        if (!t->p0) t->p0 = new_event(r);
        if (!t->p1) t->p1 = new_event(r);
        t->timed =
            t->p0 && t->p1 && r->be->vt->event_record(r->be, t->p0, SL_QUEUE_COMPUTE) == SL_OK;
    }
}

void sl_res_acquire(sl_res *r, int unit, sl_ctx *ctx) {
    if (!r) return;
    SL_ASSERTF(unit >= 0 && unit < r->n_units, "residency %s: unit %d out of range", r->name, unit);
    if (ctx && ctx->status != SL_OK) return;
    if (!r->in_pass) sl_res_begin_pass(r, ctx);
    if (!r->in_pass) return; /* loading failed */
    res_unit *u = &r->units[unit];
    SL_ASSERTF(!u->held, "residency %s: unit %s acquired twice without a release", r->name,
               u->name);
    r->log = grow(r->log, &r->cap_log, r->n_acq + 1, sizeof *r->log);
    int k = r->n_acq++;
    r->log[k] = unit;
    if (r->n_held > 0) {
        /* units held across this acquire span it: they are planned resident from now on */
        for (int i = 0; i < r->n_units; i++)
            if (r->units[i].held && !r->units[i].spans) {
                r->units[i].spans = true;
                if (r->units[i].place == SL_UNIT_STREAMED)
                    SL_DEBUG("res[%s]: streamed unit %s is held across other units", r->name,
                             r->units[i].name);
            }
    }
    if (r->home == HOME_MAPPED) {
        /* the mapped file in place: each tensor points at its own (possibly unaligned) bytes */
        for (int i = 0; i < u->n_t; i++) {
            const res_tensor *t = &r->tensors[u->tix[i]];
            t->dst->data = (void *)t->src;
        }
        u->held = true;
        r->n_held++;
        return;
    }
    sl_backend *be = r->be;
    res_tset *t = &r->ts[r->pass_no % NSETS];
    sl_status st;
    if (r->need_load_wait) {
        if ((st = be->vt->queue_wait(be, SL_QUEUE_COMPUTE, r->ev_loaded)) != SL_OK) {
            fail_ctx(ctx, st, "%s: queue_wait: %s", r->name, be->last_error);
            return;
        }
        r->need_load_wait = false;
    }
    if (u->place == SL_UNIT_RESIDENT) {
        mark(r, t, unit, MK_ACQ);
        set_pointers(r, u, u->dev);
        u->held = true;
        r->n_held++;
        return;
    }
    bool expected = !r->diverged && k < r->n_order && r->order[k] == unit;
    if (!expected && !r->diverged) {
        r->diverged = true;
        if (r->order_measured)
            SL_DEBUG("res[%s]: pass %ld acquires %s at step %d, not in the recorded order; "
                     "uploading on demand for the rest of this pass",
                     r->name, r->pass_no, u->name, k);
    }
    int s = -1;
    long g = -1;
    if (expected) {
        g = r->pass_base + r->spos[k];
        s = slot_with_seq(r, g);
        while (s < 0 && r->next_up <= g) {
            int fs = free_slot(r, false);
            if (fs < 0) break;
            if ((st = upload_pos(r, fs, r->next_up)) != SL_OK) {
                fail_ctx(ctx, st, "%s: queueing an upload: %s", r->name, upload_msg(r));
                return;
            }
            if (r->next_up++ == g) s = fs;
        }
    }
    if (s < 0) {
        /* on demand: the order is unknown here, or the prefetch could not reach this unit */
        s = free_slot(r, true);
        if (s < 0) {
            char msg[256];
            snprintf(msg, sizeof msg, "%d streaming slots all hold acquired units", r->n_slots);
            fail_ctx(ctx, SL_ERR_INTERNAL,
                     "%s: cannot acquire a unit: %s (release units before acquiring more, or "
                     "raise --streaming-prefetch)",
                     r->name, msg);
            return;
        }
        if ((st = issue_upload(r, s, unit, t, t->n_consumed)) != SL_OK) {
            fail_ctx(ctx, st, "%s: queueing an upload: %s", r->name, upload_msg(r));
            return;
        }
        r->slots[s].seq = -1;
    }
    res_slot *sl = &r->slots[s];
    SL_ASSERT(sl->unit == unit);
    mark(r, t, unit, MK_WAIT);
    if ((st = be->vt->queue_wait(be, SL_QUEUE_COMPUTE, sl->ready)) != SL_OK) {
        fail_ctx(ctx, st, "%s: queue_wait: %s", r->name, be->last_error);
        return;
    }
    mark(r, t, unit, MK_ACQ);
    sl->held = true;
    u->slot = s;
    u->held = true;
    r->n_held++;
    set_pointers(r, u, sl->dev);
    t->n_consumed++;
    t->bytes += u->bytes;
    if (expected) {
        if (g + 1 > r->cur) r->cur = g + 1;
        if ((st = pump(r)) != SL_OK)
            fail_ctx(ctx, st, "%s: queueing uploads: %s", r->name, upload_msg(r));
    }
}

void sl_res_release(sl_res *r, int unit, sl_ctx *ctx) {
    if (!r) return;
    SL_ASSERTF(unit >= 0 && unit < r->n_units, "residency %s: unit %d out of range", r->name, unit);
    res_unit *u = &r->units[unit];
    if (!u->held) return; /* its acquire was skipped after a failure */
    u->held = false;
    r->n_held--;
    if (r->home == HOME_MAPPED) return;
    sl_backend *be = r->be;
    res_tset *t = &r->ts[r->pass_no % NSETS];
    if (u->slot >= 0) {
        res_slot *sl = &r->slots[u->slot];
        sl_status st = be->vt->event_record(be, sl->free_ev, SL_QUEUE_COMPUTE);
        if (st != SL_OK) {
            /* without the event the slot cannot be reused safely: keep it held */
            fail_ctx(ctx, st, "%s: recording an event: %s", r->name, be->last_error);
            return;
        }
        sl->free_recorded = true;
        sl->held = false;
        u->slot = -1;
        set_pointers(r, u, NULL); /* a use after release is a bug: make it loud */
    }
    mark(r, t, unit, MK_REL);
    sl_status st = pump(r);
    if (st != SL_OK) fail_ctx(ctx, st, "%s: queueing uploads: %s", r->name, upload_msg(r));
}

void sl_res_end_pass(sl_res *r, sl_ctx *ctx) {
    if (!r || !r->in_pass) return;
    r->in_pass = false;
    bool ok = !ctx || ctx->status == SL_OK;
    int nres = 0, nstr = 0;
    for (int i = 0; i < r->n_units; i++) {
        if (r->units[i].place == SL_UNIT_RESIDENT)
            nres++;
        else
            nstr++;
    }
    r->last.units_resident = nres;
    r->last.units_streamed = nstr;
    if (r->home == HOME_MAPPED) {
        r->pass_no++;
        r->have_last = true;
        return;
    }
    sl_backend *be = r->be;
    res_tset *t = &r->ts[r->pass_no % NSETS];
    if (t->timed && be->vt->event_record(be, t->p1, SL_QUEUE_COMPUTE) != SL_OK) t->timed = false;
    t->pending = true;
    bool changed = false;
    if (ok) {
        changed = r->n_acq != r->n_order ||
                  (r->n_acq && memcmp(r->log, r->order, (size_t)r->n_acq * sizeof *r->log));
        if (changed) SL_DEBUG("res[%s]: pass order recorded (%d acquires)", r->name, r->n_acq);
        r->order_measured = true;
    }
    r->pass_no++;
    if (changed) {
        set_order(r, r->log, r->n_acq); /* new epoch from the next pass */
    } else if (!ok || r->diverged) {
        new_epoch(r);
    } else {
        r->pass_base += r->m;
        if (r->cur < r->pass_base) r->cur = r->pass_base;
    }
    /* the previous pass's events are complete once the GPU is this far: read its numbers */
    if (r->pass_no >= 2) finalize(r, &r->ts[(r->pass_no - 2) % NSETS]);
    bool first = ok && !r->first_done;
    /* counters only (nothing to wait for), or the first pass: read it now (one host wait) and
     * re-plan with what it measured */
    if (!t->timed || first) finalize(r, t);
    if (first) {
        r->first_done = true;
        maybe_replan(r, ctx);
        if (!r->loaded) return; /* re-planning failed: the context says why */
    }
    sl_status st = pump(r); /* the first units of the next pass */
    if (st != SL_OK) fail_ctx(ctx, st, "%s: queueing uploads: %s", r->name, upload_msg(r));
}

void sl_res_last_stats(sl_res *r, sl_res_stats *out) {
    SL_ASSERT(r && out);
    /* oldest first, so that the newest pass's numbers end up in r->last */
    for (long p = r->pass_no - NSETS; p < r->pass_no; p++)
        if (p >= 0) finalize(r, &r->ts[p % NSETS]);
    *out = r->last;
}

int sl_res_format_stats(sl_res *r, char *buf, size_t n) {
    sl_res_stats s;
    sl_res_last_stats(r, &s);
    double gbps = s.copy_ms > 0 ? (double)s.bytes_uploaded / (s.copy_ms * 1e6) : 0;
    return snprintf(buf, n,
                    "res[%s] pass: %d resident / %d streamed, %.2f GB up, copy %.1f ms, compute "
                    "%.1f ms, stall %.1f ms, %.1f GB/s, pass %.1f ms",
                    r->name, s.units_resident, s.units_streamed, (double)s.bytes_uploaded / 1e9,
                    s.copy_ms, s.compute_ms, s.stall_ms, gbps, s.pass_ms);
}

void sl_res_set_unit_spans(sl_res *r, int unit) {
    SL_ASSERT(r && unit >= 0 && unit < r->n_units);
    r->units[unit].spans = true;
}

size_t sl_res_weight_budget(const sl_res *r, size_t reserve, size_t act_peak, size_t max_vram) {
    size_t fr = 0, tot = 0;
    r->be->vt->mem_info(r->be, &fr, &tot);
    if (r->loaded && r->home == HOME_ARENA) fr += r->plan_bytes;
    size_t b = fr > reserve ? fr - reserve : 0;
    b = b > act_peak ? b - act_peak : 0;
    if (max_vram && b > max_vram) b = max_vram;
    return b;
}
