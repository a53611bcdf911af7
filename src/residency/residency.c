/* residency/residency.c — units, host home and device placement (see residency.h).
 *
 * Phase 1: host-visible backends use the mapped bytes in place; device backends keep every unit
 * resident (one upload at load_device on the copy queue, ordered before the first use by an
 * event). Streaming through slots comes with the planner. */
#include "residency/residency.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

#define RES_ALIGN 256

typedef struct res_tensor {
    int unit;
    sl_tensor *dst;
    int file;            /* file index of the entry */
    uint64_t file_off;   /* absolute offset of the (sliced) bytes in that file */
    size_t nbytes;       /* bytes of the (sliced) tensor */
    const uint8_t *src;  /* the mapped bytes of the (sliced) tensor */
    size_t off;          /* offset inside the unit's packed bytes */
} res_tensor;

typedef struct res_unit {
    char *name;
    int *tix; /* indices into r->tensors */
    int n_t, cap_t;
    size_t bytes; /* packed, 256-aligned */
    double cost;  /* seconds per use (estimate, or measured) */
    sl_unit_place place;
    size_t host_off; /* offset of the unit in the host arena */
    void *dev;       /* device copy while loaded (resident units) */
    bool held;
} res_unit;

typedef enum res_home { HOME_NONE, HOME_MAPPED, HOME_ARENA } res_home;

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

    bool planned;
    size_t plan_bytes;
    bool loaded;
    void *dev_block;       /* one device allocation holding every resident unit */
    sl_event *ev_loaded;   /* recorded on the copy queue after the resident uploads */
    bool need_load_wait;   /* compute must wait on ev_loaded before the next use */

    sl_res_stats last;
    sl_res_stats cur;
    bool in_pass;
};

static bool mapped_mode(const sl_backend *be) { return be->info.host_visible && !be->info.is_device; }

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

static void release_device(sl_res *r) {
    if (!r->loaded && !r->dev_block && !r->ev_loaded) return;
    /* queued work may still read the device copies: drain before freeing */
    r->be->vt->sync(r->be);
    if (r->dev_block) r->be->vt->free(r->be, r->dev_block);
    r->dev_block = NULL;
    if (r->ev_loaded) r->be->vt->event_destroy(r->be, r->ev_loaded);
    r->ev_loaded = NULL;
    for (int i = 0; i < r->n_units; i++) r->units[i].dev = NULL;
    r->loaded = false;
    r->need_load_wait = false;
}

void sl_res_free(sl_res *r) {
    if (!r) return;
    release_device(r);
    if (r->arena) r->be->vt->host_free(r->be, r->arena);
    for (int i = 0; i < r->n_units; i++) {
        free(r->units[i].name);
        free(r->units[i].tix);
    }
    for (int i = 0; i < r->n_files; i++) free(r->files[i]);
    free(r->files);
    free(r->units);
    free(r->tensors);
    free(r->name);
    free(r);
}

/* ---- declaration ---- */

static void *grow(void *p, int *cap, int need, size_t elem) {
    if (need <= *cap) return p;
    int c = *cap ? *cap * 2 : 16;
    while (c < need) c *= 2;
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
    *u = (res_unit){0};
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
    *rt = (res_tensor){.unit = unit, .dst = dst, .file = e->file, .file_off = off, .nbytes = nb,
                       .src = src, .off = u->bytes};
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

int sl_res_unit_count(const sl_res *r) { return r->n_units; }
const char *sl_res_unit_name(const sl_res *r, int unit) {
    SL_ASSERT(unit >= 0 && unit < r->n_units);
    return r->units[unit].name;
}
const char *sl_res_name(const sl_res *r) { return r->name; }

size_t sl_res_unit_bytes(const sl_res *r, int unit) {
    SL_ASSERT(unit >= 0 && unit < r->n_units);
    return r->units[unit].bytes;
}

size_t sl_res_total_bytes(const sl_res *r) {
    size_t s = 0;
    for (int i = 0; i < r->n_units; i++) s += r->units[i].bytes;
    return s;
}

/* ---- host home ---- */

sl_status sl_res_set_file(sl_res *r, int file, const char *path, sl_err *err) {
    SL_ASSERT(r && file >= 0 && path);
    if (file >= r->n_files) {
        char **f = realloc(r->files, (size_t)(file + 1) * sizeof *f);
        if (!f) return sl_err_set(err, SL_ERR_OOM_HOST, "residency: out of host memory");
        for (int i = r->n_files; i <= file; i++) f[i] = NULL;
        r->files = f;
        r->n_files = file + 1;
    }
    char *p = strdup(path);
    if (!p) return sl_err_set(err, SL_ERR_OOM_HOST, "residency: out of host memory");
    free(r->files[file]);
    r->files[file] = p;
    return SL_OK;
}

/* Read n bytes at off of fd into dst, all of them. */
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

/* Fill the arena: unit by unit, tensor by tensor, with pread from the files whose paths are known
 * (dropping what was read from the page cache so RAM holds one copy), else from the mapping. */
static sl_status fill_arena(sl_res *r, sl_err *err) {
    int *fds = NULL;
    sl_status st = SL_OK;
    if (r->n_files) {
        fds = malloc((size_t)r->n_files * sizeof *fds);
        if (!fds) return sl_err_set(err, SL_ERR_OOM_HOST, "residency: out of host memory");
        for (int i = 0; i < r->n_files; i++) fds[i] = -1;
    }
    for (int ui = 0; ui < r->n_units && st == SL_OK; ui++) {
        res_unit *u = &r->units[ui];
        uint8_t *base = r->arena + u->host_off;
        for (int k = 0; k < u->n_t && st == SL_OK; k++) {
            const res_tensor *t = &r->tensors[u->tix[k]];
            uint8_t *dst = base + t->off;
            const char *path = t->file < r->n_files ? r->files[t->file] : NULL;
            if (path) {
                if (fds[t->file] < 0) {
                    fds[t->file] = open(path, O_RDONLY | O_CLOEXEC);
                    if (fds[t->file] < 0) {
                        st = sl_err_set(err, SL_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
                        break;
                    }
                }
                st = pread_all(fds[t->file], dst, t->nbytes, t->file_off, path, err);
                if (st == SL_OK && t->nbytes)
                    posix_fadvise(fds[t->file], (off_t)t->file_off, (off_t)t->nbytes,
                                  POSIX_FADV_DONTNEED);
            } else if (t->nbytes) {
                memcpy(dst, t->src, t->nbytes);
            }
        }
        /* padding between tensors: defined bytes (uploads copy whole units) */
        size_t end = 0;
        for (int k = 0; k < u->n_t; k++) {
            const res_tensor *t = &r->tensors[u->tix[k]];
            if (t->off > end) memset(base + end, 0, t->off - end);
            end = t->off + t->nbytes;
        }
        if (u->bytes > end) memset(base + end, 0, u->bytes - end);
    }
    for (int i = 0; i < r->n_files; i++)
        if (fds[i] >= 0) close(fds[i]);
    free(fds);
    return st;
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
        total += r->units[i].bytes;
    }
    void *p = NULL;
    sl_err e2 = {0};
    if (r->be->vt->host_alloc(r->be, total ? total : RES_ALIGN, &p, &e2) != SL_OK)
        return sl_err_set(err, SL_ERR_OOM_HOST,
                          "%s: cannot allocate the pinned host home of %.2f GB (%zu bytes) for %d "
                          "units: %s (free host RAM, or use a smaller dtype/quantisation)",
                          r->name, (double)total / 1e9, total, r->n_units, e2.msg);
    r->arena = p;
    r->arena_bytes = total;
    sl_status st = fill_arena(r, err);
    if (st != SL_OK) {
        sl_err_prefix(err, "%s: loading weights: ", r->name);
        r->be->vt->host_free(r->be, r->arena);
        r->arena = NULL;
        r->arena_bytes = 0;
        return st;
    }
    r->home = HOME_ARENA;
    return SL_OK;
}

size_t sl_res_host_bytes(const sl_res *r) { return r->home == HOME_ARENA ? r->arena_bytes : 0; }

/* ---- planning and device placement ---- */

sl_status sl_res_plan(sl_res *r, const sl_res_plan_opts *opt, sl_err *err) {
    SL_ASSERT(r && opt);
    if (r->loaded) release_device(r);
    r->planned = false;
    if (r->home == HOME_MAPPED || mapped_mode(r->be)) {
        for (int i = 0; i < r->n_units; i++) r->units[i].place = SL_UNIT_RESIDENT;
        r->plan_bytes = 0;
        r->planned = true;
        return SL_OK;
    }
    size_t total = sl_res_total_bytes(r);
    if (opt->force_stream_all || total > opt->budget)
        return sl_err_set(err, SL_ERR_OOM_DEVICE,
                          "%s: weights need %.2f GB of VRAM, budget is %.2f GB (streaming is not "
                          "available yet; raise --max-vram or free VRAM)",
                          r->name, (double)total / 1e9, (double)opt->budget / 1e9);
    for (int i = 0; i < r->n_units; i++) r->units[i].place = SL_UNIT_RESIDENT;
    r->plan_bytes = total;
    r->planned = true;
    return SL_OK;
}

sl_unit_place sl_res_unit_place(const sl_res *r, int unit) {
    SL_ASSERT(unit >= 0 && unit < r->n_units);
    return r->units[unit].place;
}

size_t sl_res_plan_bytes(const sl_res *r) { return r->plan_bytes; }
bool sl_res_is_loaded(const sl_res *r) { return r->loaded; }

sl_status sl_res_load_device(sl_res *r, sl_err *err) {
    SL_ASSERT(r);
    if (r->loaded) return SL_OK;
    if (r->home == HOME_NONE) {
        sl_status st = sl_res_load_host(r, err);
        if (st != SL_OK) return st;
    }
    if (!r->planned) {
        sl_res_plan_opts o = {.budget = SIZE_MAX, .prefetch = 1};
        sl_status st = sl_res_plan(r, &o, err);
        if (st != SL_OK) return st;
    }
    if (r->home == HOME_MAPPED) {
        r->loaded = true;
        return SL_OK;
    }
    sl_backend *be = r->be;
    sl_err e2 = {0};
    sl_status st = SL_OK;
    size_t total = r->plan_bytes;
    if (total && (st = be->vt->alloc(be, total, &r->dev_block, &e2)) != SL_OK) {
        r->dev_block = NULL;
        size_t fr = 0, tot = 0;
        be->vt->mem_info(be, &fr, &tot);
        return sl_err_set(err, SL_ERR_OOM_DEVICE,
                          "%s: cannot allocate %.2f GB of VRAM for resident weights (%.2f GB free): "
                          "%s (lower --max-vram or free VRAM)",
                          r->name, (double)total / 1e9, (double)fr / 1e9, e2.msg);
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
        if (u->bytes &&
            (st = be->vt->upload(be, SL_QUEUE_COPY, u->dev, r->arena + u->host_off, u->bytes)) !=
                SL_OK) {
            sl_err_set(err, st, "%s: uploading unit %s (%zu bytes): %s", r->name, u->name, u->bytes,
                       be->last_error);
            goto fail;
        }
        off += u->bytes;
    }
    if ((st = be->vt->event_record(be, r->ev_loaded, SL_QUEUE_COPY)) != SL_OK) {
        sl_err_set(err, st, "%s: recording an event: %s", r->name, be->last_error);
        goto fail;
    }
    r->loaded = true;
    r->need_load_wait = true;
    return SL_OK;
fail:
    r->loaded = true; /* so that release_device cleans up */
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
    r->cur = (sl_res_stats){0};
    r->in_pass = true;
}

void sl_res_acquire(sl_res *r, int unit, sl_ctx *ctx) {
    if (!r) return;
    SL_ASSERTF(unit >= 0 && unit < r->n_units, "residency %s: unit %d out of range", r->name, unit);
    res_unit *u = &r->units[unit];
    if (ctx && ctx->status != SL_OK) return;
    if (!r->loaded) {
        sl_err e = {0};
        if (sl_res_load_device(r, &e) != SL_OK) {
            if (ctx) sl_ctx_fail(ctx, e.status, "%s", e.msg);
            return;
        }
    }
    if (r->home == HOME_MAPPED) {
        /* the mapped file in place: each tensor points at its own (possibly unaligned) bytes */
        for (int k = 0; k < u->n_t; k++) {
            const res_tensor *t = &r->tensors[u->tix[k]];
            t->dst->data = (void *)t->src;
        }
    } else {
        if (r->need_load_wait) {
            sl_status st = r->be->vt->queue_wait(r->be, SL_QUEUE_COMPUTE, r->ev_loaded);
            if (st != SL_OK) {
                if (ctx) sl_ctx_fail(ctx, st, "%s: queue_wait: %s", r->name, r->be->last_error);
                return;
            }
            r->need_load_wait = false;
        }
        set_pointers(r, u, u->dev);
    }
    u->held = true;
}

void sl_res_release(sl_res *r, int unit, sl_ctx *ctx) {
    if (!r) return;
    SL_ASSERTF(unit >= 0 && unit < r->n_units, "residency %s: unit %d out of range", r->name, unit);
    r->units[unit].held = false;
}

void sl_res_end_pass(sl_res *r, sl_ctx *ctx) {
    if (!r) return;
    int nres = 0, nstr = 0;
    for (int i = 0; i < r->n_units; i++) {
        if (r->units[i].place == SL_UNIT_RESIDENT)
            nres++;
        else
            nstr++;
    }
    r->cur.units_resident = nres;
    r->cur.units_streamed = nstr;
    r->last = r->cur;
    r->in_pass = false;
}

void sl_res_last_stats(const sl_res *r, sl_res_stats *out) {
    SL_ASSERT(r && out);
    *out = r->last;
}
