/* io/safetensors.c — safetensors parser, shard-index parser and streaming writer
 * (specs/formats.md §1). */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ST_MAX_HEADER 100000000ull       /* the reference reader's MAX_HEADER_SIZE */
#define ST_MAX_INT    9007199254740992.0 /* 2^53: the largest exactly representable JSON integer */

/* ---- dtype strings (formats.md §1.3) ---- */

typedef struct st_dtype_row {
    const char *s;
    int dt; /* sl_dtype, or -1: a known safetensors dtype sluice does not handle */
} st_dtype_row;

static const st_dtype_row g_dtypes[] = {
    {"F64", SL_DTYPE_F64},
    {"F32", SL_DTYPE_F32},
    {"F16", SL_DTYPE_F16},
    {"BF16", SL_DTYPE_BF16},
    {"F8_E4M3", SL_DTYPE_F8_E4M3},
    {"F8_E5M2", SL_DTYPE_F8_E5M2},
    {"I64", SL_DTYPE_I64},
    {"I32", SL_DTYPE_I32},
    {"I16", SL_DTYPE_I16},
    {"I8", SL_DTYPE_I8},
    {"U8", SL_DTYPE_U8},
    {"BOOL", SL_DTYPE_BOOL},
    {"U16", -1},
    {"U32", -1},
    {"U64", -1},
    {"C64", -1},
    {"F8_E4M3FNUZ", -1},
    {"F8_E5M2FNUZ", -1},
    {"F8_E8M0", -1},
    {"F6_E2M3", -1},
    {"F6_E3M2", -1},
    {"F4", -1},
};

const char *sl_st_dtype_string(sl_dtype dt) {
    for (size_t i = 0; i < SL_ARRAY_LEN(g_dtypes); i++)
        if (g_dtypes[i].dt == (int)dt) return g_dtypes[i].s;
    return NULL;
}

/* ---- small helpers ---- */

static uint64_t rd_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int is_json_ws(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Offset of the first byte that is not valid UTF-8, or len when all of it is. */
static size_t utf8_bad_at(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF)
            n = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 3, cp = c & 0x07;
        else
            return i;
        if (len - i <= (size_t)n) return i;
        for (int k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += (size_t)n + 1;
    }
    return len;
}

/* A JSON number that is a non-negative integer exactly representable in a double. */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > ST_MAX_INT || d != (double)(uint64_t)d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Parse a JSON object header held in buf[0..len): leading/trailing JSON whitespace only, UTF-8,
 * no NUL bytes. `base` is the file offset of buf[0] for messages. Returns the root or NULL. */
static cJSON *parse_json_object(const uint8_t *buf, size_t len, uint64_t base, const char *what,
                                const char *part, sl_err *err) {
    size_t bad = utf8_bad_at(buf, len);
    if (bad < len) {
        sl_err_set(err, SL_ERR_FORMAT,
                   "%s: %s is not valid UTF-8 (byte 0x%02x at file offset %llu)", what, part,
                   buf[bad], (unsigned long long)(base + bad));
        return NULL;
    }
    const uint8_t *nul = memchr(buf, 0, len);
    if (nul) {
        sl_err_set(err, SL_ERR_FORMAT, "%s: %s contains a NUL byte at file offset %llu", what, part,
                   (unsigned long long)(base + (size_t)(nul - buf)));
        return NULL;
    }
    size_t i = 0;
    while (i < len && is_json_ws(buf[i]))
        i++;
    if (i == len || buf[i] != '{') {
        sl_err_set(err, SL_ERR_FORMAT,
                   "%s: %s is not a JSON object (expected '{' at file offset %llu)%s", what, part,
                   (unsigned long long)(base + i), base == 8 ? "; not a safetensors file?" : "");
        return NULL;
    }
    /* cJSON gets its own NUL-terminated copy so that it can never read past the header */
    char *copy = malloc(len + 1);
    if (!copy) {
        sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory for a %zu-byte %s", what, len, part);
        return NULL;
    }
    memcpy(copy, buf, len);
    copy[len] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(copy, len, &end, 0);
    if (!root) {
        size_t at = end && end >= copy && end <= copy + len ? (size_t)(end - copy) : 0;
        sl_err_set(err, SL_ERR_FORMAT, "%s: %s is not valid JSON (error near file offset %llu)",
                   what, part, (unsigned long long)(base + at));
        free(copy);
        return NULL;
    }
    size_t at = (size_t)(end - copy);
    while (at < len && is_json_ws(buf[at]))
        at++;
    if (at != len) {
        sl_err_set(err, SL_ERR_FORMAT,
                   "%s: %s has extra bytes after the JSON object (at file offset %llu)", what, part,
                   (unsigned long long)(base + at));
        cJSON_Delete(root);
        free(copy);
        return NULL;
    }
    free(copy);
    if (!cJSON_IsObject(root)) { /* cannot happen after the '{' check; kept for safety */
        sl_err_set(err, SL_ERR_FORMAT, "%s: %s is not a JSON object", what, part);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Rejects duplicate keys of a JSON object (cJSON keeps them all). */
static sl_status check_unique_keys(const cJSON *obj, const char *what, const char *part,
                                   sl_err *err) {
    int n = cJSON_GetArraySize(obj);
    if (n < 2) return SL_OK;
    const char **keys = malloc((size_t)n * sizeof *keys);
    if (!keys) return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
    int k = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        keys[k++] = c->string ? c->string : "";
    qsort(keys, (size_t)k, sizeof *keys, cmp_str_ptr);
    sl_status st = SL_OK;
    for (int i = 1; i < k; i++)
        if (!strcmp(keys[i - 1], keys[i])) {
            st = sl_err_set(err, SL_ERR_FORMAT, "%s: %s has the key '%s' twice", what, part,
                            keys[i]);
            break;
        }
    free(keys);
    return st;
}

/* ---- parser ---- */

void sl_st_file_free(sl_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->meta);
    memset(f, 0, sizeof *f);
}

typedef struct st_range {
    uint64_t begin, end;
    int idx;
} st_range;

static int cmp_range(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

static sl_status parse_metadata(const cJSON *m, const char *what, sl_st_file *out, sl_err *err) {
    if (!cJSON_IsObject(m))
        return sl_err_set(err, SL_ERR_FORMAT, "%s: __metadata__ is not a JSON object", what);
    sl_status st = check_unique_keys(m, what, "__metadata__", err);
    if (st) return st;
    int n = cJSON_GetArraySize(m);
    if (n == 0) return SL_OK;
    out->meta = calloc((size_t)n, sizeof *out->meta);
    if (!out->meta) return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
    for (const cJSON *c = m->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !c->string) continue; /* tolerated: skip non-string values */
        sl_st_kv *kv = &out->meta[out->n_meta];
        kv->key = strdup(c->string);
        kv->value = strdup(c->valuestring);
        if (!kv->key || !kv->value) {
            free(kv->key);
            free(kv->value);
            kv->key = kv->value = NULL;
            return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
        }
        out->n_meta++;
    }
    return SL_OK;
}

/* One tensor entry: dtype, shape, data_offsets; fills t (name excluded) and r. */
static sl_status parse_entry(const cJSON *e, const char *name, const char *what, sl_st_tensor *t,
                             st_range *r, sl_err *err) {
    if (!cJSON_IsObject(e))
        return sl_err_set(err, SL_ERR_FORMAT, "%s: tensor '%s': entry is not a JSON object", what,
                          name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return sl_err_set(err, SL_ERR_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"",
                          what, name);
    if (!cJSON_IsArray(sh))
        return sl_err_set(err, SL_ERR_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"",
                          what, name);
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2)
        return sl_err_set(err, SL_ERR_FORMAT,
                          "%s: tensor '%s': \"data_offsets\" must be an array of 2 integers", what,
                          name);
    int found = -2;
    for (size_t i = 0; i < SL_ARRAY_LEN(g_dtypes); i++)
        if (!strcmp(g_dtypes[i].s, dt->valuestring)) found = g_dtypes[i].dt;
    if (found == -2)
        return sl_err_set(err, SL_ERR_UNSUPPORTED, "%s: tensor '%s' has unknown dtype \"%.40s\"",
                          what, name, dt->valuestring);
    if (found == -1)
        return sl_err_set(err, SL_ERR_UNSUPPORTED,
                          "%s: tensor '%s' has dtype %s, which sluice does not support", what, name,
                          dt->valuestring);
    t->dtype = (sl_dtype)found;

    int ndim = cJSON_GetArraySize(sh);
    uint64_t dims[SL_MAX_DIMS];
    int k = 0;
    unsigned long long numel = 1;
    for (const cJSON *c = sh->child; c; c = c->next, k++) {
        uint64_t v;
        if (!json_uint(c, &v))
            return sl_err_set(err, SL_ERR_FORMAT,
                              "%s: tensor '%s': shape[%d] is not a non-negative integer", what,
                              name, k);
        if (!sl_mul_u64(numel, v, &numel))
            return sl_err_set(err, SL_ERR_FORMAT, "%s: tensor '%s': shape overflows 64 bits", what,
                              name);
        if (k < SL_MAX_DIMS) dims[k] = v;
    }
    if (ndim > SL_MAX_DIMS)
        return sl_err_set(err, SL_ERR_UNSUPPORTED,
                          "%s: tensor '%s' has %d dimensions; sluice supports at most %d", what,
                          name, ndim, SL_MAX_DIMS);
    if (numel > (unsigned long long)INT64_MAX)
        return sl_err_set(err, SL_ERR_FORMAT, "%s: tensor '%s': element count overflows", what,
                          name);
    t->ndim = ndim;
    for (int i = 0; i < SL_MAX_DIMS; i++)
        t->ne[i] = i < ndim ? (int64_t)dims[i] : 1;

    uint64_t b, en;
    if (!json_uint(of->child, &b) || !json_uint(of->child->next, &en))
        return sl_err_set(err, SL_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets are not non-negative integers", what,
                          name);
    unsigned long long nbits;
    const sl_dtype_info *di = sl_dtype_get(t->dtype);
    if (!sl_mul_u64(numel, (unsigned long long)di->bsize * 8ull, &nbits))
        return sl_err_set(err, SL_ERR_FORMAT, "%s: tensor '%s': byte size overflows 64 bits", what,
                          name);
    t->nbytes = nbits / 8;
    r->begin = b;
    r->end = en;
    return SL_OK;
}

sl_status sl_st_parse(const uint8_t *buf, size_t len, const char *what, sl_st_file *out,
                      sl_err *err) {
    SL_ASSERT(out && (buf || len == 0));
    memset(out, 0, sizeof *out);
    if (!what) what = "safetensors";
    if (len < 8)
        return sl_err_set(err, SL_ERR_FORMAT,
                          "%s: file is %zu bytes, too short for a safetensors header (8 bytes of "
                          "length + JSON)",
                          what, len);
    uint64_t n = rd_le64(buf);
    if (n > ST_MAX_HEADER)
        return sl_err_set(err, SL_ERR_FORMAT,
                          "%s: header length %llu (u64 at offset 0) exceeds the 100000000-byte "
                          "limit: corrupt file or not safetensors",
                          what, (unsigned long long)n);
    if (n > len - 8)
        return sl_err_set(err, SL_ERR_FORMAT,
                          "%s: header length %llu (u64 at offset 0) runs past the end of the file "
                          "(8 + %llu > %zu bytes): truncated file?",
                          what, (unsigned long long)n, (unsigned long long)n, len);
    const uint64_t data_start = 8 + n;
    const uint64_t data_len = (uint64_t)len - data_start;

    cJSON *root = parse_json_object(buf + 8, (size_t)n, 8, what, "header", err);
    if (!root) return err ? err->status : SL_ERR_FORMAT;
    sl_status st = check_unique_keys(root, what, "header", err);
    if (st) goto fail;

    int n_items = cJSON_GetArraySize(root);
    out->data_start = data_start;
    out->tensors = calloc((size_t)(n_items ? n_items : 1), sizeof *out->tensors);
    st_range *rs = calloc((size_t)(n_items ? n_items : 1), sizeof *rs);
    if (!out->tensors || !rs) {
        free(rs);
        st = sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory for %d tensors", what, n_items);
        goto fail;
    }
    for (const cJSON *c = root->child; c; c = c->next) {
        const char *name = c->string ? c->string : "";
        if (!strcmp(name, "__metadata__")) {
            st = parse_metadata(c, what, out, err);
            if (st) break;
            continue;
        }
        sl_st_tensor *t = &out->tensors[out->n_tensors];
        st_range *r = &rs[out->n_tensors];
        st = parse_entry(c, name, what, t, r, err);
        if (st) break;
        t->name = strdup(name);
        if (!t->name) {
            st = sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
            break;
        }
        r->idx = out->n_tensors++;
    }
    if (st) {
        free(rs);
        goto fail;
    }

    /* rules 2-5: sorted by offsets, the ranges tile [0, data_len) exactly */
    qsort(rs, (size_t)out->n_tensors, sizeof *rs, cmp_range);
    uint64_t cursor = 0;
    for (int i = 0; i < out->n_tensors && !st; i++) {
        sl_st_tensor *t = &out->tensors[rs[i].idx];
        uint64_t b = rs[i].begin, e = rs[i].end;
        if (e < b)
            st = sl_err_set(err, SL_ERR_FORMAT,
                            "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin",
                            what, t->name, (unsigned long long)b, (unsigned long long)e);
        else if (e > data_len)
            st = sl_err_set(err, SL_ERR_FORMAT,
                            "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the "
                            "file (data section is %llu bytes from offset %llu): truncated file?",
                            what, t->name, (unsigned long long)b, (unsigned long long)e,
                            (unsigned long long)data_len, (unsigned long long)data_start);
        else if (b != cursor)
            st = sl_err_set(err, SL_ERR_FORMAT,
                            "%s: tensor '%s': data_offsets [%llu, %llu] %s (expected it to begin "
                            "at %llu)",
                            what, t->name, (unsigned long long)b, (unsigned long long)e,
                            b < cursor ? "overlap the previous tensor's data"
                                       : "leave a gap after the previous tensor's data",
                            (unsigned long long)cursor);
        else if (e - b != t->nbytes) {
            char desc[96];
            sl_tensor tt = sl_tensor_make(t->dtype, t->ndim, t->ne);
            st = sl_err_set(err, SL_ERR_FORMAT,
                            "%s: tensor '%s': %s needs %llu bytes but data_offsets [%llu, %llu] "
                            "hold %llu",
                            what, t->name, sl_tensor_desc(&tt, desc, sizeof desc),
                            (unsigned long long)t->nbytes, (unsigned long long)b,
                            (unsigned long long)e, (unsigned long long)(e - b));
        } else {
            t->offset = data_start + b;
            cursor = e;
        }
    }
    free(rs);
    if (st) goto fail;
    if (cursor != data_len) {
        st = sl_err_set(err, SL_ERR_FORMAT,
                        "%s: %llu trailing bytes after the last tensor's data (file offset %llu "
                        "to %zu); the tensors must cover the data section exactly",
                        what, (unsigned long long)(data_len - cursor),
                        (unsigned long long)(data_start + cursor), len);
        goto fail;
    }
    cJSON_Delete(root);
    return SL_OK;
fail:
    cJSON_Delete(root);
    sl_st_file_free(out);
    return st;
}

/* ---- sharded index ---- */

void sl_st_index_free(sl_st_index *ix) {
    if (!ix) return;
    for (int i = 0; i < ix->n_shards; i++)
        free(ix->shards[i]);
    free(ix->shards);
    for (int i = 0; i < ix->n_names; i++)
        free(ix->names[i]);
    free(ix->names);
    free(ix->shard_of);
    memset(ix, 0, sizeof *ix);
}

sl_status sl_st_parse_index(const uint8_t *buf, size_t len, const char *what, sl_st_index *out,
                            sl_err *err) {
    SL_ASSERT(out && (buf || len == 0));
    memset(out, 0, sizeof *out);
    if (!what) what = "safetensors index";
    cJSON *root = parse_json_object(buf, len, 0, what, "index", err);
    if (!root) return err ? err->status : SL_ERR_FORMAT;
    sl_status st = check_unique_keys(root, what, "index", err);
    if (st) goto fail;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        st = sl_err_set(err, SL_ERR_FORMAT,
                        "%s: no \"weight_map\" object (not a *.safetensors.index.json?)", what);
        goto fail;
    }
    st = check_unique_keys(wm, what, "weight_map", err);
    if (st) goto fail;
    int n = cJSON_GetArraySize(wm);
    out->names = calloc((size_t)(n ? n : 1), sizeof *out->names);
    out->shard_of = calloc((size_t)(n ? n : 1), sizeof *out->shard_of);
    out->shards = calloc((size_t)(n ? n : 1), sizeof *out->shards);
    if (!out->names || !out->shard_of || !out->shards) {
        st = sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
        goto fail;
    }
    for (const cJSON *c = wm->child; c; c = c->next) {
        const char *name = c->string ? c->string : "";
        if (!cJSON_IsString(c) || !c->valuestring[0]) {
            st = sl_err_set(err, SL_ERR_FORMAT,
                            "%s: weight_map entry '%s' is not a non-empty file name string", what,
                            name);
            goto fail;
        }
        const char *file = c->valuestring;
        if (file[0] == '/') {
            st = sl_err_set(err, SL_ERR_FORMAT,
                            "%s: weight_map entry '%s' names an absolute path '%s'; shard names "
                            "are relative to the index's folder",
                            what, name, file);
            goto fail;
        }
        int s = -1;
        for (int i = out->n_shards - 1; i >= 0 && s < 0; i--)
            if (!strcmp(out->shards[i], file)) s = i;
        if (s < 0) {
            out->shards[out->n_shards] = strdup(file);
            if (!out->shards[out->n_shards]) {
                st = sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
                goto fail;
            }
            s = out->n_shards++;
        }
        out->names[out->n_names] = strdup(name);
        if (!out->names[out->n_names]) {
            st = sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
            goto fail;
        }
        out->shard_of[out->n_names++] = s;
    }
    cJSON_Delete(root);
    return SL_OK;
fail:
    cJSON_Delete(root);
    sl_st_index_free(out);
    return st;
}

/* ---- streaming writer ---- */

typedef struct st_decl {
    char *name;
    sl_dtype dtype;
    int ndim;
    int64_t ne[SL_MAX_DIMS];
    uint64_t nbytes;
} st_decl;

struct sl_st_writer {
    char *path;
    FILE *f;
    st_decl *t;
    int n, cap;
    sl_st_kv *meta;
    int n_meta, cap_meta;
    int started;
    uint64_t total, written;
};

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) {
    sb_put(b, s, strlen(s));
}
static void sb_fmt_u64(sbuf *b, unsigned long long v) {
    char tmp[32];
    int k = snprintf(tmp, sizeof tmp, "%llu", v);
    sb_put(b, tmp, (size_t)k);
}
static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char tmp[8];
        if (*p == '"' || *p == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)*p;
            sb_put(b, tmp, 2);
        } else if (*p < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", *p);
            sb_put(b, tmp, 6);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

sl_status sl_st_writer_open(sl_st_writer **out, const char *path, sl_err *err) {
    SL_ASSERT(out && path);
    *out = NULL;
    sl_st_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", path);
    }
    w->f = fopen(path, "wb");
    if (!w->f) {
        int e = errno;
        free(w->path);
        free(w);
        return sl_err_set(err, SL_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    *out = w;
    return SL_OK;
}

sl_status sl_st_writer_meta(sl_st_writer *w, const char *key, const char *value, sl_err *err) {
    SL_ASSERT(w && key && value && !w->started);
    for (int i = 0; i < w->n_meta; i++)
        if (!strcmp(w->meta[i].key, key))
            return sl_err_set(err, SL_ERR_INVALID_ARG, "%s: metadata key '%s' given twice", w->path,
                              key);
    if (w->n_meta == w->cap_meta) {
        int cap = w->cap_meta ? 2 * w->cap_meta : 16;
        sl_st_kv *m = realloc(w->meta, (size_t)cap * sizeof *m);
        if (!m) return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", w->path);
        w->meta = m;
        w->cap_meta = cap;
    }
    sl_st_kv *kv = &w->meta[w->n_meta];
    kv->key = strdup(key);
    kv->value = strdup(value);
    if (!kv->key || !kv->value) {
        free(kv->key);
        free(kv->value);
        return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", w->path);
    }
    w->n_meta++;
    return SL_OK;
}

sl_status sl_st_writer_add(sl_st_writer *w, const char *name, sl_dtype dtype, int ndim,
                           const int64_t *ne, sl_err *err) {
    SL_ASSERT(w && name && !w->started);
    SL_ASSERT(ndim >= 0 && ndim <= SL_MAX_DIMS && (ne || ndim == 0));
    if (!sl_st_dtype_string(dtype))
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "%s: tensor '%s': dtype %s cannot be stored in safetensors (block types "
                          "need GGUF)",
                          w->path, name, sl_dtype_name(dtype));
    if (!name[0] || !strcmp(name, "__metadata__"))
        return sl_err_set(err, SL_ERR_INVALID_ARG, "%s: invalid tensor name '%s'", w->path, name);
    unsigned long long numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (ne[i] < 0 || !sl_mul_u64(numel, (unsigned long long)ne[i], &numel))
            return sl_err_set(err, SL_ERR_INVALID_ARG, "%s: tensor '%s': bad shape", w->path, name);
    }
    unsigned long long nbytes, total;
    if (!sl_mul_u64(numel, (unsigned long long)sl_dtype_get(dtype)->bsize, &nbytes) ||
        !sl_add_u64(w->total, nbytes, &total))
        return sl_err_set(err, SL_ERR_INVALID_ARG, "%s: tensor '%s': size overflows", w->path,
                          name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        st_decl *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", w->path);
        w->t = t;
        w->cap = cap;
    }
    st_decl *d = &w->t[w->n];
    memset(d, 0, sizeof *d);
    if (!(d->name = strdup(name))) return sl_err_set(err, SL_ERR_OOM_HOST, "out of memory");
    d->dtype = dtype;
    d->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        d->ne[i] = ne[i];
    d->nbytes = nbytes;
    w->total = total;
    w->n++;
    return SL_OK;
}

static sl_status writer_io_fail(sl_st_writer *w, const char *doing, sl_err *err) {
    return sl_err_set(err, SL_ERR_IO, "%s: %s: %s", w->path, doing, strerror(errno));
}

sl_status sl_st_writer_begin_data(sl_st_writer *w, sl_err *err) {
    SL_ASSERT(w && !w->started);
    /* duplicate names */
    if (w->n > 1) {
        const char **names = malloc((size_t)w->n * sizeof *names);
        if (!names) return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", w->path);
        for (int i = 0; i < w->n; i++)
            names[i] = w->t[i].name;
        qsort(names, (size_t)w->n, sizeof *names, cmp_str_ptr);
        for (int i = 1; i < w->n; i++)
            if (!strcmp(names[i - 1], names[i])) {
                sl_status st = sl_err_set(err, SL_ERR_INVALID_ARG, "%s: tensor '%s' declared twice",
                                          w->path, names[i]);
                free(names);
                return st;
            }
        free(names);
    }
    sbuf b = {0};
    sb_str(&b, "{");
    int first = 1;
    if (w->n_meta) {
        sb_str(&b, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            if (i) sb_str(&b, ",");
            sb_json_str(&b, w->meta[i].key);
            sb_str(&b, ":");
            sb_json_str(&b, w->meta[i].value);
        }
        sb_str(&b, "}");
        first = 0;
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const st_decl *d = &w->t[i];
        if (!first) sb_str(&b, ",");
        first = 0;
        sb_json_str(&b, d->name);
        sb_str(&b, ":{\"dtype\":\"");
        sb_str(&b, sl_st_dtype_string(d->dtype));
        sb_str(&b, "\",\"shape\":[");
        for (int k = 0; k < d->ndim; k++) {
            if (k) sb_str(&b, ",");
            sb_fmt_u64(&b, (unsigned long long)d->ne[k]);
        }
        sb_str(&b, "],\"data_offsets\":[");
        sb_fmt_u64(&b, off);
        sb_str(&b, ",");
        sb_fmt_u64(&b, off + d->nbytes);
        sb_str(&b, "]}");
        off += d->nbytes;
    }
    sb_str(&b, "}");
    while (b.n % 8)
        sb_str(&b, " ");
    if (b.oom) {
        free(b.p);
        return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory for the header", w->path);
    }
    if (b.n > ST_MAX_HEADER) {
        free(b.p);
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "%s: header would be %zu bytes, over the 100000000-byte limit", w->path,
                          b.n);
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)b.n >> (8 * i));
    sl_status st = SL_OK;
    if (fwrite(len8, 1, 8, w->f) != 8 || fwrite(b.p, 1, b.n, w->f) != b.n)
        st = writer_io_fail(w, "writing the header", err);
    free(b.p);
    if (st) return st;
    w->started = 1;
    return SL_OK;
}

sl_status sl_st_writer_write(sl_st_writer *w, const void *bytes, size_t n, sl_err *err) {
    SL_ASSERT(w && w->started && (bytes || n == 0));
    if (n > w->total - w->written)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "%s: writing %zu bytes at data offset %llu exceeds the %llu declared "
                          "bytes",
                          w->path, n, (unsigned long long)w->written, (unsigned long long)w->total);
    if (n && fwrite(bytes, 1, n, w->f) != n) return writer_io_fail(w, "writing tensor data", err);
    w->written += n;
    return SL_OK;
}

static void writer_free(sl_st_writer *w) {
    for (int i = 0; i < w->n; i++)
        free(w->t[i].name);
    free(w->t);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->meta);
    free(w->path);
    free(w);
}

sl_status sl_st_writer_close(sl_st_writer *w, sl_err *err) {
    if (!w) return SL_OK;
    sl_status st = SL_OK;
    if (!w->started)
        st = sl_err_set(err, SL_ERR_INVALID_ARG,
                        "%s: closed before sl_st_writer_begin_data; nothing was written", w->path);
    else if (w->written != w->total)
        st =
            sl_err_set(err, SL_ERR_INVALID_ARG, "%s: %llu of %llu declared data bytes were written",
                       w->path, (unsigned long long)w->written, (unsigned long long)w->total);
    if (!st && fflush(w->f) != 0) st = writer_io_fail(w, "flushing", err);
    if (fclose(w->f) != 0 && !st) st = writer_io_fail(w, "closing", err);
    w->f = NULL;
    if (st) unlink(w->path);
    writer_free(w);
    return st;
}

void sl_st_writer_abort(sl_st_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    unlink(w->path);
    writer_free(w);
}
