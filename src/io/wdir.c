/* io/wdir.c — the weight directory (see wdir.h): mapped, validated files and a name hash. */
#include "io/wdir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/gguf.h"
#include "io/mapfile.h"
#include "io/safetensors.h"

/* Prefixes a stored name may carry that the asking code may omit (or the reverse). Ordered so
 * that a longer prefix is tried before a shorter one it starts with. */
static const char *const g_prefixes[] = {
    "model.diffusion_model.",
    "diffusion_model.",
    "model.",
    "first_stage_model.",
    "vae.",
    "text_encoders.qwen3_4b.transformer.",
    "conditioner.embedders.0.transformer.",
};

typedef struct wfile {
    char *path;
    sl_file_format fmt;
    sl_mapfile map;
    sl_st_file st;   /* SL_FORMAT_SAFETENSORS */
    sl_gguf_file gg; /* SL_FORMAT_GGUF */
} wfile;

typedef struct wmeta {
    char *key, *value;
} wmeta;

struct sl_wdir {
    wfile *files;
    int n_files, cap_files;
    sl_wentry *e;
    int n, cap;
    int *slots; /* open-addressing hash of entry indices, -1 = empty */
    size_t mask;
    wmeta *meta;
    int n_meta, cap_meta;
};

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int lookup_exact(const sl_wdir *d, const char *name) {
    if (!d->slots) return -1;
    for (size_t i = hash_str(name) & d->mask;; i = (i + 1) & d->mask) {
        int k = d->slots[i];
        if (k < 0) return -1;
        if (!strcmp(d->e[k].name, name)) return k;
    }
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (k && p[k - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

/* Folder part of a path ("." when none), newly allocated. */
static char *path_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    size_t n = (size_t)(slash - path);
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, path, n);
    p[n] = 0;
    return p;
}

static sl_status add_meta(sl_wdir *d, const char *key, const char *value) {
    for (int i = 0; i < d->n_meta; i++)
        if (!strcmp(d->meta[i].key, key)) return SL_OK; /* the first file's value wins */
    if (d->n_meta == d->cap_meta) {
        int cap = d->cap_meta ? 2 * d->cap_meta : 16;
        wmeta *m = realloc(d->meta, (size_t)cap * sizeof *m);
        if (!m) return SL_ERR_OOM_HOST;
        d->meta = m;
        d->cap_meta = cap;
    }
    wmeta *m = &d->meta[d->n_meta];
    m->key = strdup(key);
    m->value = strdup(value);
    if (!m->key || !m->value) {
        free(m->key);
        free(m->value);
        return SL_ERR_OOM_HOST;
    }
    d->n_meta++;
    return SL_OK;
}

static sl_status gguf_meta(sl_wdir *d, const sl_gguf_file *g) {
    for (int i = 0; i < g->n_kvs; i++) {
        const sl_gguf_kv *kv = &g->kvs[i];
        char tmp[64];
        const char *v = tmp;
        switch (kv->type) {
        case SL_GGUF_STRING:
            v = kv->str;
            break;
        case SL_GGUF_U8:
        case SL_GGUF_U16:
        case SL_GGUF_U32:
        case SL_GGUF_U64:
            snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)kv->v.u);
            break;
        case SL_GGUF_I8:
        case SL_GGUF_I16:
        case SL_GGUF_I32:
        case SL_GGUF_I64:
            snprintf(tmp, sizeof tmp, "%lld", (long long)kv->v.i);
            break;
        case SL_GGUF_F32:
        case SL_GGUF_F64:
            snprintf(tmp, sizeof tmp, "%.9g", kv->v.f);
            break;
        case SL_GGUF_BOOL:
            v = kv->v.b ? "true" : "false";
            break;
        case SL_GGUF_ARRAY:
            continue;
        }
        if (add_meta(d, kv->key, v)) return SL_ERR_OOM_HOST;
    }
    return SL_OK;
}

static sl_status push_entry(sl_wdir *d, const sl_wentry *e) {
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 256;
        sl_wentry *p = realloc(d->e, (size_t)cap * sizeof *p);
        if (!p) return SL_ERR_OOM_HOST;
        d->e = p;
        d->cap = cap;
    }
    d->e[d->n++] = *e;
    return SL_OK;
}

/* Maps, parses and lists one model file (safetensors or GGUF, told apart by the GGUF magic). */
static sl_status open_file(sl_wdir *d, const char *path, int *file_index, sl_err *err) {
    if (d->n_files == d->cap_files) {
        int cap = d->cap_files ? 2 * d->cap_files : 8;
        wfile *p = realloc(d->files, (size_t)cap * sizeof *p);
        if (!p) return sl_err_set(err, SL_ERR_OOM_HOST, "out of memory");
        d->files = p;
        d->cap_files = cap;
    }
    int fi = d->n_files;
    wfile *f = &d->files[fi];
    memset(f, 0, sizeof *f);
    f->map.fd = -1;
    if (!(f->path = strdup(path))) return sl_err_set(err, SL_ERR_OOM_HOST, "out of memory");
    d->n_files++; /* from here on sl_wdir_free cleans it up */
    sl_status st = sl_mapfile_open(&f->map, path, err);
    if (st) return st;
    const uint8_t *buf = f->map.data;
    size_t len = f->map.size;
    if (len >= 4 && !memcmp(buf, "GGUF", 4)) {
        f->fmt = SL_FORMAT_GGUF;
        st = sl_gguf_parse(buf, len, path, &f->gg, err);
        if (st) return st;
        for (int i = 0; i < f->gg.n_tensors; i++) {
            const sl_gguf_tensor *t = &f->gg.tensors[i];
            sl_wentry e = {t->name,  fi,      t->offset, t->nbytes,
                           t->dtype, t->ndim, {0},       buf + t->offset};
            memcpy(e.ne, t->ne, sizeof e.ne);
            if (push_entry(d, &e)) return sl_err_set(err, SL_ERR_OOM_HOST, "out of memory");
        }
        if (gguf_meta(d, &f->gg)) return sl_err_set(err, SL_ERR_OOM_HOST, "out of memory");
    } else {
        f->fmt = SL_FORMAT_SAFETENSORS;
        st = sl_st_parse(buf, len, path, &f->st, err);
        if (st) return st;
        for (int i = 0; i < f->st.n_tensors; i++) {
            const sl_st_tensor *t = &f->st.tensors[i];
            sl_wentry e = {t->name,  fi,      t->offset, t->nbytes,
                           t->dtype, t->ndim, {0},       buf + t->offset};
            memcpy(e.ne, t->ne, sizeof e.ne);
            if (push_entry(d, &e)) return sl_err_set(err, SL_ERR_OOM_HOST, "out of memory");
        }
        for (int i = 0; i < f->st.n_meta; i++)
            if (add_meta(d, f->st.meta[i].key, f->st.meta[i].value))
                return sl_err_set(err, SL_ERR_OOM_HOST, "out of memory");
    }
    if (file_index) *file_index = fi;
    return SL_OK;
}

/* A sharded checkpoint: the index lists its shards; each is opened once. The (name -> shard)
 * pairs are checked after the hash is built (see check_index). */
typedef struct pending_index {
    char *path;
    sl_st_index ix;
    int *shard_file; /* file index per shard */
} pending_index;

static sl_status open_index(sl_wdir *d, const char *path, pending_index *pi, sl_err *err) {
    pi->path = strdup(path);
    if (!pi->path) return sl_err_set(err, SL_ERR_OOM_HOST, "out of memory");
    sl_mapfile m;
    sl_status st = sl_mapfile_open(&m, path, err);
    if (st) return st;
    st = sl_st_parse_index(m.data, m.size, path, &pi->ix, err);
    sl_mapfile_close(&m);
    if (st) return st;
    if (pi->ix.n_shards == 0)
        return sl_err_set(err, SL_ERR_FORMAT, "%s: the weight_map is empty", path);
    pi->shard_file = calloc((size_t)pi->ix.n_shards, sizeof *pi->shard_file);
    char *dir = path_dir(path);
    if (!pi->shard_file || !dir) {
        free(dir);
        return sl_err_set(err, SL_ERR_OOM_HOST, "out of memory");
    }
    for (int s = 0; s < pi->ix.n_shards && !st; s++) {
        char *sp = path_join(dir, pi->ix.shards[s]);
        if (!sp)
            st = sl_err_set(err, SL_ERR_OOM_HOST, "out of memory");
        else {
            st = open_file(d, sp, &pi->shard_file[s], err);
            if (st)
                sl_err_prefix(err, "shard %d of %d listed in %s: ", s + 1, pi->ix.n_shards, path);
            free(sp);
        }
    }
    free(dir);
    return st;
}

static sl_status check_index(const sl_wdir *d, const pending_index *pi, sl_err *err) {
    for (int i = 0; i < pi->ix.n_names; i++) {
        int s = pi->ix.shard_of[i];
        int k = lookup_exact(d, pi->ix.names[i]);
        int want = pi->shard_file[s];
        if (k < 0 || d->e[k].file != want)
            return sl_err_set(err, SL_ERR_FORMAT,
                              "%s: tensor '%s' is listed in shard %s, but that file does not "
                              "contain it%s%s",
                              pi->path, pi->ix.names[i], d->files[want].path,
                              k >= 0 ? "; it is in " : "",
                              k >= 0 ? d->files[d->e[k].file].path : "");
    }
    return SL_OK;
}

/* The model file to open inside a folder: its one *.safetensors.index.json, else its one
 * .safetensors/.gguf file. Newly allocated path in *out. */
static sl_status resolve_dir(const char *dir, char **out, sl_err *err) {
    DIR *dh = opendir(dir);
    if (!dh) return sl_err_set(err, SL_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    char *index = NULL, *single = NULL;
    int n_index = 0, n_files = 0;
    char listed[512] = "";
    struct dirent *de;
    while ((de = readdir(dh))) {
        const char *n = de->d_name;
        if (n[0] == '.') continue;
        int is_index = ends_with(n, ".safetensors.index.json");
        int is_file = ends_with(n, ".safetensors") || ends_with(n, ".gguf");
        if (!is_index && !is_file) continue;
        if (strlen(listed) + strlen(n) + 4 < sizeof listed)
            snprintf(listed + strlen(listed), sizeof listed - strlen(listed), "%s%s",
                     listed[0] ? ", " : "", n);
        if (is_index) {
            n_index++;
            if (!index) index = strdup(n);
        } else {
            n_files++;
            if (!single) single = strdup(n);
        }
    }
    closedir(dh);
    sl_status st = SL_OK;
    const char *pick = NULL;
    if (n_index == 1)
        pick = index;
    else if (n_index > 1)
        st = sl_err_set(err, SL_ERR_INVALID_ARG,
                        "%s: folder holds %d shard indexes (%s); name the one to open", dir,
                        n_index, listed);
    else if (n_files == 1)
        pick = single;
    else if (n_files == 0)
        st = sl_err_set(err, SL_ERR_NOT_FOUND,
                        "%s: folder holds no .safetensors, .safetensors.index.json or .gguf file",
                        dir);
    else
        st = sl_err_set(err, SL_ERR_INVALID_ARG,
                        "%s: folder holds %d model files (%s) and no shard index; name the "
                        "file(s) to open",
                        dir, n_files, listed);
    if (!st) {
        if (!pick || !(*out = path_join(dir, pick)))
            st = sl_err_set(err, SL_ERR_OOM_HOST, "out of memory");
    }
    free(index);
    free(single);
    return st;
}

static sl_status build_hash(sl_wdir *d, sl_err *err) {
    size_t cap = 16;
    while (cap < (size_t)d->n * 2)
        cap *= 2;
    d->slots = malloc(cap * sizeof *d->slots);
    if (!d->slots) return sl_err_set(err, SL_ERR_OOM_HOST, "out of memory for the name table");
    memset(d->slots, 0xff, cap * sizeof *d->slots);
    d->mask = cap - 1;
    for (int k = 0; k < d->n; k++) {
        size_t i = hash_str(d->e[k].name) & d->mask;
        for (;; i = (i + 1) & d->mask) {
            int o = d->slots[i];
            if (o < 0) {
                d->slots[i] = k;
                break;
            }
            if (!strcmp(d->e[o].name, d->e[k].name))
                return sl_err_set(err, SL_ERR_FORMAT, "tensor '%s' is present in both %s and %s",
                                  d->e[k].name, d->files[d->e[o].file].path,
                                  d->files[d->e[k].file].path);
        }
    }
    return SL_OK;
}

sl_status sl_wdir_open(sl_wdir **out, const char *const *paths, int n_paths, sl_err *err) {
    SL_ASSERT(out && (paths || n_paths == 0));
    *out = NULL;
    if (n_paths <= 0) return sl_err_set(err, SL_ERR_INVALID_ARG, "no model files given");
    sl_wdir *d = calloc(1, sizeof *d);
    pending_index *pis = calloc((size_t)n_paths, sizeof *pis);
    if (!d || !pis) {
        free(d);
        free(pis);
        return sl_err_set(err, SL_ERR_OOM_HOST, "out of memory");
    }
    sl_status st = SL_OK;
    for (int p = 0; p < n_paths && !st; p++) {
        const char *path = paths[p];
        char *resolved = NULL;
        struct stat sb;
        if (stat(path, &sb) != 0) {
            st = sl_err_set(err, SL_ERR_IO, "%s: %s", path, strerror(errno));
            break;
        }
        if (S_ISDIR(sb.st_mode)) {
            st = resolve_dir(path, &resolved, err);
            if (st) break;
            path = resolved;
        }
        if (ends_with(path, ".json"))
            st = open_index(d, path, &pis[p], err);
        else
            st = open_file(d, path, NULL, err);
        free(resolved);
    }
    if (!st) st = build_hash(d, err);
    for (int p = 0; p < n_paths && !st; p++)
        if (pis[p].path && pis[p].shard_file) st = check_index(d, &pis[p], err);
    for (int p = 0; p < n_paths; p++) {
        free(pis[p].path);
        free(pis[p].shard_file);
        sl_st_index_free(&pis[p].ix);
    }
    free(pis);
    if (st) {
        sl_wdir_free(d);
        return st;
    }
    *out = d;
    return SL_OK;
}

void sl_wdir_free(sl_wdir *d) {
    if (!d) return;
    for (int i = 0; i < d->n_files; i++) {
        wfile *f = &d->files[i];
        sl_st_file_free(&f->st);
        sl_gguf_file_free(&f->gg);
        sl_mapfile_close(&f->map);
        free(f->path);
    }
    free(d->files);
    free(d->e);
    free(d->slots);
    for (int i = 0; i < d->n_meta; i++) {
        free(d->meta[i].key);
        free(d->meta[i].value);
    }
    free(d->meta);
    free(d);
}

int sl_wdir_count(const sl_wdir *d) {
    return d->n;
}

const sl_wentry *sl_wdir_at(const sl_wdir *d, int i) {
    SL_ASSERT(i >= 0 && i < d->n);
    return &d->e[i];
}

const sl_wentry *sl_wdir_find(const sl_wdir *d, const char *name) {
    int k = lookup_exact(d, name);
    if (k >= 0) return &d->e[k];
    char tmp[1024];
    const int np = (int)SL_ARRAY_LEN(g_prefixes);
    /* the name carries a known prefix: try without it, then with each other prefix */
    for (int p = 0; p < np; p++) {
        size_t pl = strlen(g_prefixes[p]);
        if (strncmp(name, g_prefixes[p], pl)) continue;
        const char *base = name + pl;
        if (!base[0]) continue;
        if ((k = lookup_exact(d, base)) >= 0) return &d->e[k];
        for (int q = 0; q < np; q++) {
            if (q == p) continue;
            if ((size_t)snprintf(tmp, sizeof tmp, "%s%s", g_prefixes[q], base) >= sizeof tmp)
                continue;
            if ((k = lookup_exact(d, tmp)) >= 0) return &d->e[k];
        }
    }
    /* the stored name carries a prefix the caller omitted */
    for (int q = 0; q < np; q++) {
        if ((size_t)snprintf(tmp, sizeof tmp, "%s%s", g_prefixes[q], name) >= sizeof tmp) continue;
        if ((k = lookup_exact(d, tmp)) >= 0) return &d->e[k];
    }
    return NULL;
}

const char *sl_wdir_file_path(const sl_wdir *d, int file) {
    SL_ASSERT(file >= 0 && file < d->n_files);
    return d->files[file].path;
}

sl_file_format sl_wdir_file_format(const sl_wdir *d, int file) {
    SL_ASSERT(file >= 0 && file < d->n_files);
    return d->files[file].fmt;
}

int sl_wdir_file_count(const sl_wdir *d) {
    return d->n_files;
}

const char *sl_wdir_meta(const sl_wdir *d, const char *key) {
    for (int i = 0; i < d->n_meta; i++)
        if (!strcmp(d->meta[i].key, key)) return d->meta[i].value;
    return NULL;
}

int sl_wdir_meta_count(const sl_wdir *d) {
    return d->n_meta;
}

void sl_wdir_meta_at(const sl_wdir *d, int i, const char **key, const char **value) {
    SL_ASSERT(i >= 0 && i < d->n_meta);
    if (key) *key = d->meta[i].key;
    if (value) *value = d->meta[i].value;
}

sl_tensor sl_wentry_tensor(const sl_wentry *e) {
    sl_tensor t = sl_tensor_make(e->dtype, e->ndim, e->ne);
    t.data = (void *)e->data;
    t.name = e->name;
    return t;
}
