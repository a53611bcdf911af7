/* io/gguf.c — GGUF v2/v3 parser and streaming writer (specs/formats.md §2, §3). */
#include "io/gguf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_ARRAY_DEPTH   8  /* nested arrays are parsed and skipped up to this depth */
#define GGUF_MIN_KV_BYTES      14 /* u64 key length + >= 1 key byte + u32 type + >= 1 value byte */
#define GGUF_MIN_INFO_BYTES    24 /* u64 name length + u32 n_dims + u32 type + u64 offset */
#define GGUF_ORIG_SHAPE_KEY    "comfy.gguf.orig_shape."

/* ggml type names for messages (formats.md §3); NULL for ids that never appear in files. */
static const char *const g_ggml_names[] = {
    "F32",
    "F16",
    "Q4_0",
    "Q4_1",
    "(Q4_2, removed)",
    "(Q4_3, removed)",
    "Q5_0",
    "Q5_1",
    "Q8_0",
    "Q8_1",
    "Q2_K",
    "Q3_K",
    "Q4_K",
    "Q5_K",
    "Q6_K",
    "Q8_K",
    "IQ2_XXS",
    "IQ2_XS",
    "IQ3_XXS",
    "IQ1_S",
    "IQ4_NL",
    "IQ3_S",
    "IQ2_S",
    "IQ4_XS",
    "I8",
    "I16",
    "I32",
    "I64",
    "F64",
    "IQ1_M",
    "BF16",
    "(Q4_0_4_4, removed)",
    "(Q4_0_4_8, removed)",
    "(Q4_0_8_8, removed)",
    "TQ1_0",
    "TQ2_0",
    "(IQ4_NL_4_4, removed)",
    "(IQ4_NL_4_8, removed)",
    "(IQ4_NL_8_8, removed)",
    "MXFP4",
    "NVFP4",
    "Q1_0",
    "Q2_0",
};

static const char *ggml_type_name(uint32_t t) {
    return t < SL_ARRAY_LEN(g_ggml_names) ? g_ggml_names[t] : "unknown";
}

static const char *const g_vt_names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                         "bool", "string", "array", "u64", "i64", "f64"};

static int vt_size(uint32_t t) {
    switch (t) {
    case SL_GGUF_U8:
    case SL_GGUF_I8:
    case SL_GGUF_BOOL:
        return 1;
    case SL_GGUF_U16:
    case SL_GGUF_I16:
        return 2;
    case SL_GGUF_U32:
    case SL_GGUF_I32:
    case SL_GGUF_F32:
        return 4;
    case SL_GGUF_U64:
    case SL_GGUF_I64:
    case SL_GGUF_F64:
        return 8;
    default:
        return 0; /* string, array, unknown */
    }
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- bounds-checked little-endian reader ---- */

typedef struct rd {
    const uint8_t *b;
    size_t len, pos;
    const char *what;
    char item[192]; /* what is being read, for messages ("KV #3 'general.name'") */
    sl_err *err;
    sl_status st;
} rd;

static int rd_need(rd *r, uint64_t n, const char *field) {
    if (n <= (uint64_t)(r->len - r->pos)) return 1;
    r->st = sl_err_set(r->err, SL_ERR_FORMAT,
                       "%s: truncated: %s of %s at offset %zu needs %llu bytes but the file ends "
                       "at %zu",
                       r->what, field, r->item, r->pos, (unsigned long long)n, r->len);
    return 0;
}

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int rd_u32(rd *r, uint32_t *v, const char *field) {
    if (!rd_need(r, 4, field)) return 0;
    *v = (uint32_t)le(r->b + r->pos, 4);
    r->pos += 4;
    return 1;
}

static int rd_u64(rd *r, uint64_t *v, const char *field) {
    if (!rd_need(r, 8, field)) return 0;
    *v = le(r->b + r->pos, 8);
    r->pos += 8;
    return 1;
}

/* A string: u64 length + bytes. Returns a NUL-terminated copy in *out (when out != NULL). */
static int rd_str(rd *r, char **out, const char *field) {
    uint64_t n;
    if (!rd_u64(r, &n, field)) return 0;
    if (!rd_need(r, n, field)) return 0;
    if (out) {
        char *s = malloc((size_t)n + 1);
        if (!s) {
            r->st = sl_err_set(r->err, SL_ERR_OOM_HOST, "%s: out of memory for a %llu-byte %s",
                               r->what, (unsigned long long)n, field);
            return 0;
        }
        memcpy(s, r->b + r->pos, (size_t)n);
        s[n] = 0;
        *out = s;
    }
    r->pos += (size_t)n;
    return 1;
}

static int rd_fail(rd *r, sl_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int rd_fail(rd *r, sl_status st, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->st = sl_err_set(r->err, st, "%s: %s", r->what, msg);
    return 0;
}

/* Skips `count` array values of type t (bounds-checked; nested arrays recurse). */
static int skip_array(rd *r, uint32_t t, uint64_t count, int depth) {
    int sz = vt_size(t);
    if (sz) {
        unsigned long long bytes;
        if (!sl_mul_u64(count, (unsigned long long)sz, &bytes))
            return rd_fail(r, SL_ERR_FORMAT, "%s: array of %llu elements overflows (offset %zu)",
                           r->item, (unsigned long long)count, r->pos);
        if (!rd_need(r, bytes, "array data")) return 0;
        r->pos += (size_t)bytes;
        return 1;
    }
    if (t == SL_GGUF_STRING) {
        if (count > (r->len - r->pos) / 8)
            return rd_fail(r, SL_ERR_FORMAT,
                           "%s: array of %llu strings at offset %zu cannot fit in the file "
                           "(truncated or corrupt)",
                           r->item, (unsigned long long)count, r->pos);
        for (uint64_t i = 0; i < count; i++)
            if (!rd_str(r, NULL, "array string")) return 0;
        return 1;
    }
    if (t == SL_GGUF_ARRAY) {
        if (depth >= GGUF_MAX_ARRAY_DEPTH)
            return rd_fail(r, SL_ERR_FORMAT, "%s: arrays nested deeper than %d levels (offset %zu)",
                           r->item, GGUF_MAX_ARRAY_DEPTH, r->pos);
        if (count > (r->len - r->pos) / 12)
            return rd_fail(r, SL_ERR_FORMAT,
                           "%s: array of %llu arrays at offset %zu cannot fit in the file", r->item,
                           (unsigned long long)count, r->pos);
        for (uint64_t i = 0; i < count; i++) {
            uint32_t et;
            uint64_t n;
            if (!rd_u32(r, &et, "nested array type") || !rd_u64(r, &n, "nested array count"))
                return 0;
            if (!skip_array(r, et, n, depth + 1)) return 0;
        }
        return 1;
    }
    return rd_fail(r, SL_ERR_FORMAT, "%s: unknown array element type %u (offset %zu)", r->item, t,
                   r->pos - 12);
}

static int rd_kv(rd *r, sl_gguf_kv *kv) {
    size_t at = r->pos;
    if (!rd_str(r, &kv->key, "key")) return 0;
    snprintf(r->item, sizeof r->item, "KV '%.120s' (offset %zu)", kv->key, at);
    if (!kv->key[0]) return rd_fail(r, SL_ERR_FORMAT, "empty KV key at offset %zu", at);
    uint32_t t;
    if (!rd_u32(r, &t, "value type")) return 0;
    if (t > SL_GGUF_F64) return rd_fail(r, SL_ERR_FORMAT, "%s: unknown value type %u", r->item, t);
    kv->type = (sl_gguf_type)t;
    int sz = vt_size(t);
    if (sz) {
        if (!rd_need(r, (uint64_t)sz, "value")) return 0;
        uint64_t u = le(r->b + r->pos, sz);
        r->pos += (size_t)sz;
        switch (t) {
        case SL_GGUF_U8:
        case SL_GGUF_U16:
        case SL_GGUF_U32:
        case SL_GGUF_U64:
            kv->v.u = u;
            break;
        case SL_GGUF_I8:
            kv->v.i = (int8_t)u;
            break;
        case SL_GGUF_I16:
            kv->v.i = (int16_t)u;
            break;
        case SL_GGUF_I32:
            kv->v.i = (int32_t)u;
            break;
        case SL_GGUF_I64:
            kv->v.i = (int64_t)u;
            break;
        case SL_GGUF_BOOL:
            kv->v.b = u != 0;
            break;
        case SL_GGUF_F32: {
            uint32_t b32 = (uint32_t)u;
            float f;
            memcpy(&f, &b32, 4);
            kv->v.f = f;
            break;
        }
        case SL_GGUF_F64: {
            double d;
            memcpy(&d, &u, 8);
            kv->v.f = d;
            break;
        }
        }
        return 1;
    }
    if (t == SL_GGUF_STRING) return rd_str(r, &kv->str, "string value");
    /* array */
    uint32_t et;
    uint64_t n;
    if (!rd_u32(r, &et, "array element type") || !rd_u64(r, &n, "array count")) return 0;
    if (et > SL_GGUF_F64)
        return rd_fail(r, SL_ERR_FORMAT, "%s: unknown array element type %u", r->item, et);
    kv->arr_type = (sl_gguf_type)et;
    kv->arr_count = n;
    kv->arr_offset = r->pos;
    return skip_array(r, et, n, 0);
}

/* ---- parser ---- */

void sl_gguf_file_free(sl_gguf_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n_kvs; i++) {
        free(f->kvs[i].key);
        free(f->kvs[i].str);
    }
    free(f->kvs);
    for (int i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    memset(f, 0, sizeof *f);
}

const sl_gguf_kv *sl_gguf_find_kv(const sl_gguf_file *f, const char *key) {
    for (int i = 0; i < f->n_kvs; i++)
        if (!strcmp(f->kvs[i].key, key)) return &f->kvs[i];
    return NULL;
}

static int rd_tensor_info(rd *r, int idx, sl_gguf_tensor *t) {
    size_t at = r->pos;
    snprintf(r->item, sizeof r->item, "tensor info #%d (offset %zu)", idx, at);
    if (!rd_str(r, &t->name, "name")) return 0;
    snprintf(r->item, sizeof r->item, "tensor '%.120s' (info at offset %zu)", t->name, at);
    if (!t->name[0])
        return rd_fail(r, SL_ERR_FORMAT, "tensor info #%d at offset %zu has an empty name", idx,
                       at);
    uint32_t nd;
    if (!rd_u32(r, &nd, "n_dims")) return 0;
    if (nd > SL_MAX_DIMS)
        return rd_fail(r, SL_ERR_FORMAT, "%s: n_dims = %u (GGUF allows at most %d)", r->item, nd,
                       SL_MAX_DIMS);
    int64_t ne[SL_MAX_DIMS] = {1, 1, 1, 1}; /* innermost first, as stored */
    for (uint32_t j = 0; j < nd; j++) {
        uint64_t v;
        if (!rd_u64(r, &v, "dimension")) return 0;
        if (v > (uint64_t)INT64_MAX)
            return rd_fail(r, SL_ERR_FORMAT, "%s: ne[%u] = %llu is negative as i64", r->item, j,
                           (unsigned long long)v);
        ne[j] = (int64_t)v;
    }
    uint32_t type;
    if (!rd_u32(r, &type, "type") || !rd_u64(r, &t->offset, "offset")) return 0;
    t->ggml_type = type;
    int dt = sl_dtype_from_ggml(type);
    if (dt < 0)
        return rd_fail(r, SL_ERR_UNSUPPORTED,
                       "tensor '%s' has ggml type %u (%s), which sluice does not support", t->name,
                       type, ggml_type_name(type));
    t->dtype = (sl_dtype)dt;
    const sl_dtype_info *di = sl_dtype_get(t->dtype);
    if (ne[0] % di->blck)
        return rd_fail(r, SL_ERR_FORMAT,
                       "%s: innermost dimension ne[0] = %lld is not a multiple of the %s block "
                       "size %d",
                       r->item, (long long)ne[0], di->name, di->blck);
    unsigned long long numel = 1, nbytes = (unsigned long long)(ne[0] / di->blck) * di->bsize;
    int ok = 1;
    for (int j = 0; j < SL_MAX_DIMS; j++)
        ok = ok && sl_mul_u64(numel, (unsigned long long)ne[j], &numel);
    for (int j = 1; j < SL_MAX_DIMS; j++)
        ok = ok && sl_mul_u64(nbytes, (unsigned long long)ne[j], &nbytes);
    if (!ok || numel > (unsigned long long)INT64_MAX || nbytes > (unsigned long long)INT64_MAX)
        return rd_fail(r, SL_ERR_FORMAT, "%s: element count or byte size overflows 64 bits",
                       r->item);
    t->nbytes = nbytes;
    t->ndim = (int)nd;
    for (int j = 0; j < SL_MAX_DIMS; j++)
        t->ne[j] = j < (int)nd ? ne[nd - 1 - j] : 1;
    return 1;
}

/* comfy.gguf.orig_shape.<name>: the PyTorch shape to use instead of reversed ne. */
static sl_status apply_orig_shape(const uint8_t *buf, const char *what, const sl_gguf_kv *kv,
                                  sl_gguf_tensor *t, sl_err *err) {
    int sz = vt_size(kv->arr_type);
    int is_int = kv->type == SL_GGUF_ARRAY && sz &&
                 (kv->arr_type != SL_GGUF_F32 && kv->arr_type != SL_GGUF_F64 &&
                  kv->arr_type != SL_GGUF_BOOL);
    if (!is_int)
        return sl_err_set(err, SL_ERR_FORMAT, "%s: %s is not an array of integers", what, kv->key);
    if (kv->arr_count > SL_MAX_DIMS)
        return sl_err_set(err, SL_ERR_UNSUPPORTED,
                          "%s: tensor '%s' has original shape of %llu dimensions (%s); sluice "
                          "supports at most %d",
                          what, t->name, (unsigned long long)kv->arr_count, kv->key, SL_MAX_DIMS);
    int signed_t = kv->arr_type == SL_GGUF_I8 || kv->arr_type == SL_GGUF_I16 ||
                   kv->arr_type == SL_GGUF_I32 || kv->arr_type == SL_GGUF_I64;
    int64_t ne[SL_MAX_DIMS] = {1, 1, 1, 1};
    unsigned long long numel = 1, have = 1;
    for (int j = 0; j < (int)kv->arr_count; j++) {
        uint64_t u = le(buf + kv->arr_offset + (uint64_t)j * (uint64_t)sz, sz);
        int64_t v;
        if (signed_t) {
            int sh = 64 - 8 * sz; /* sign-extend */
            v = (int64_t)(u << sh) >> sh;
        } else {
            if (u > (uint64_t)INT64_MAX)
                v = -1;
            else
                v = (int64_t)u;
        }
        if (v < 0)
            return sl_err_set(err, SL_ERR_FORMAT, "%s: %s[%d] is negative", what, kv->key, j);
        ne[j] = v;
        if (!sl_mul_u64(numel, (unsigned long long)v, &numel))
            return sl_err_set(err, SL_ERR_FORMAT, "%s: %s overflows", what, kv->key);
    }
    for (int j = 0; j < SL_MAX_DIMS; j++)
        have *= (unsigned long long)t->ne[j];
    if (numel != have)
        return sl_err_set(err, SL_ERR_FORMAT, "%s: %s has %llu elements but tensor '%s' has %llu",
                          what, kv->key, numel, t->name, have);
    int nd = (int)kv->arr_count;
    const sl_dtype_info *di = sl_dtype_get(t->dtype);
    int64_t inner = nd ? ne[nd - 1] : 1;
    if (inner % di->blck)
        return sl_err_set(err, SL_ERR_UNSUPPORTED,
                          "%s: tensor '%s' (%s): original shape's innermost dimension %lld is not "
                          "a multiple of the block size %d",
                          what, t->name, di->name, (long long)inner, di->blck);
    t->ndim = nd;
    for (int j = 0; j < SL_MAX_DIMS; j++)
        t->ne[j] = ne[j];
    return SL_OK;
}

typedef struct gg_sorted {
    uint64_t off, nbytes;
    int idx;
} gg_sorted;

static int cmp_off(const void *a, const void *b) {
    const gg_sorted *x = a, *y = b;
    if (x->off != y->off) return x->off < y->off ? -1 : 1;
    return x->idx - y->idx;
}

typedef struct name_idx {
    const char *name;
    int idx;
} name_idx;

static int cmp_name_idx(const void *a, const void *b) {
    return strcmp(((const name_idx *)a)->name, ((const name_idx *)b)->name);
}

/* Index of the tensor named `name` in `order` (sorted by name), or -1. */
static int find_sorted(const sl_gguf_file *f, const int *order, const char *name) {
    int lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[order[mid]].name, name);
        if (!c) return order[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

static sl_status check_tensors(const uint8_t *buf, size_t len, const char *what, sl_gguf_file *f,
                               sl_err *err) {
    sl_status st = SL_OK;
    int n = f->n_tensors;
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    gg_sorted *s = malloc((size_t)(n ? n : 1) * sizeof *s);
    if (!order || !s) {
        st = sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
        goto done;
    }
    /* unique names; the name-sorted order also serves the orig_shape lookup */
    {
        name_idx *ni = malloc((size_t)(n ? n : 1) * sizeof *ni);
        if (!ni) {
            st = sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
            goto done;
        }
        for (int i = 0; i < n; i++)
            ni[i] = (name_idx){f->tensors[i].name, i};
        qsort(ni, (size_t)n, sizeof *ni, cmp_name_idx);
        for (int i = 0; i < n; i++)
            order[i] = ni[i].idx;
        free(ni);
    }
    for (int i = 1; i < n; i++)
        if (!strcmp(f->tensors[order[i - 1]].name, f->tensors[order[i]].name)) {
            st = sl_err_set(err, SL_ERR_FORMAT, "%s: tensor '%s' appears twice", what,
                            f->tensors[order[i]].name);
            goto done;
        }
    /* orig_shape overrides */
    size_t plen = strlen(GGUF_ORIG_SHAPE_KEY);
    for (int k = 0; k < f->n_kvs; k++) {
        const sl_gguf_kv *kv = &f->kvs[k];
        if (strncmp(kv->key, GGUF_ORIG_SHAPE_KEY, plen)) continue;
        int ti = find_sorted(f, order, kv->key + plen);
        if (ti < 0) continue;
        st = apply_orig_shape(buf, what, kv, &f->tensors[ti], err);
        if (st) goto done;
    }
    /* ranges: aligned, inside the file, not overlapping */
    for (int i = 0; i < n; i++) {
        sl_gguf_tensor *t = &f->tensors[i];
        unsigned long long abs_off = 0, end = 0;
        if (t->offset % f->alignment) {
            st = sl_err_set(err, SL_ERR_FORMAT,
                            "%s: tensor '%s': data offset %llu is not a multiple of the alignment "
                            "%u",
                            what, t->name, (unsigned long long)t->offset, f->alignment);
            goto done;
        }
        if (!sl_add_u64(f->data_start, t->offset, &abs_off) ||
            !sl_add_u64(abs_off, t->nbytes, &end) || end > len) {
            st = sl_err_set(err, SL_ERR_FORMAT,
                            "%s: tensor '%s': data [%llu, +%llu) at data offset %llu runs past "
                            "the end of the file (%zu bytes): truncated file?",
                            what, t->name, (unsigned long long)abs_off,
                            (unsigned long long)t->nbytes, (unsigned long long)t->offset, len);
            goto done;
        }
        t->offset = abs_off;
        s[i] = (gg_sorted){abs_off, t->nbytes, i};
    }
    qsort(s, (size_t)n, sizeof *s, cmp_off);
    uint64_t max_end = 0;
    int max_idx = -1;
    for (int i = 0; i < n; i++) {
        if (!s[i].nbytes) continue;
        if (max_idx >= 0 && s[i].off < max_end) {
            st = sl_err_set(err, SL_ERR_FORMAT,
                            "%s: tensor '%s' (bytes %llu..%llu) overlaps tensor '%s' (ends at "
                            "%llu)",
                            what, f->tensors[s[i].idx].name, (unsigned long long)s[i].off,
                            (unsigned long long)(s[i].off + s[i].nbytes), f->tensors[max_idx].name,
                            (unsigned long long)max_end);
            goto done;
        }
        if (s[i].off + s[i].nbytes > max_end) {
            max_end = s[i].off + s[i].nbytes;
            max_idx = s[i].idx;
        }
    }
done:
    free(order);
    free(s);
    return st;
}

sl_status sl_gguf_parse(const uint8_t *buf, size_t len, const char *what, sl_gguf_file *out,
                        sl_err *err) {
    SL_ASSERT(out && (buf || len == 0));
    memset(out, 0, sizeof *out);
    if (!what) what = "gguf";
    rd r = {.b = buf, .len = len, .what = what, .err = err};
    snprintf(r.item, sizeof r.item, "the header");
    if (len < 4 || memcmp(buf, "GGUF", 4)) {
        if (len < 4)
            return sl_err_set(err, SL_ERR_FORMAT, "%s: file is %zu bytes, too short for GGUF", what,
                              len);
        return sl_err_set(err, SL_ERR_FORMAT,
                          "%s: bad magic %02x %02x %02x %02x at offset 0 (expected 'GGUF'): not a "
                          "GGUF file",
                          what, buf[0], buf[1], buf[2], buf[3]);
    }
    r.pos = 4;
    uint32_t version;
    if (!rd_u32(&r, &version, "version")) return r.st;
    if (version && !(version & 0xffffu))
        return sl_err_set(err, SL_ERR_UNSUPPORTED,
                          "%s: big-endian GGUF (version field 0x%08x at offset 4); only "
                          "little-endian files are supported",
                          what, version);
    if (version == 1)
        return sl_err_set(err, SL_ERR_UNSUPPORTED,
                          "%s: GGUF version 1 (2023 format) is not supported; re-convert the file "
                          "with a current gguf tool (version 2 or 3)",
                          what);
    if (version != 2 && version != 3)
        return sl_err_set(err, SL_ERR_UNSUPPORTED,
                          "%s: GGUF version %u at offset 4 is not supported (only 2 and 3)", what,
                          version);
    out->version = version;
    uint64_t n_tensors, n_kvs;
    if (!rd_u64(&r, &n_tensors, "tensor count") || !rd_u64(&r, &n_kvs, "KV count")) return r.st;
    size_t rest = len - r.pos;
    if (n_kvs > rest / GGUF_MIN_KV_BYTES || n_kvs > INT32_MAX)
        return sl_err_set(err, SL_ERR_FORMAT,
                          "%s: KV count %llu (offset 16) cannot fit in the remaining %zu bytes: "
                          "corrupt or truncated file",
                          what, (unsigned long long)n_kvs, rest);
    if (n_tensors > rest / GGUF_MIN_INFO_BYTES || n_tensors > INT32_MAX)
        return sl_err_set(err, SL_ERR_FORMAT,
                          "%s: tensor count %llu (offset 8) cannot fit in the remaining %zu bytes: "
                          "corrupt or truncated file",
                          what, (unsigned long long)n_tensors, rest);
    out->alignment = GGUF_DEFAULT_ALIGNMENT;
    sl_status st = SL_OK;
    out->kvs = calloc((size_t)(n_kvs ? n_kvs : 1), sizeof *out->kvs);
    out->tensors = calloc((size_t)(n_tensors ? n_tensors : 1), sizeof *out->tensors);
    const char **keys = calloc((size_t)(n_kvs ? n_kvs : 1), sizeof *keys);
    if (!out->kvs || !out->tensors || !keys) {
        free(keys);
        st = sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", what);
        goto fail;
    }
    for (uint64_t i = 0; i < n_kvs; i++) {
        snprintf(r.item, sizeof r.item, "KV #%llu (offset %zu)", (unsigned long long)i, r.pos);
        sl_gguf_kv *kv = &out->kvs[i];
        int ok = rd_kv(&r, kv);
        out->n_kvs = (int)i + 1; /* the partial record is freed too */
        if (!ok) {
            st = r.st;
            break;
        }
        keys[i] = kv->key;
        if (!strcmp(kv->key, "general.alignment")) {
            if (kv->type != SL_GGUF_U32)
                st = sl_err_set(err, SL_ERR_FORMAT,
                                "%s: general.alignment has type %s; it must be u32", what,
                                g_vt_names[kv->type]);
            else if (kv->v.u == 0 || (kv->v.u & (kv->v.u - 1)))
                st = sl_err_set(err, SL_ERR_FORMAT,
                                "%s: general.alignment = %llu is not a power of two", what,
                                (unsigned long long)kv->v.u);
            else
                out->alignment = (uint32_t)kv->v.u;
            if (st) break;
        }
    }
    if (!st && n_kvs > 1) {
        qsort(keys, (size_t)n_kvs, sizeof *keys, cmp_str_ptr);
        for (uint64_t i = 1; i < n_kvs && !st; i++)
            if (!strcmp(keys[i - 1], keys[i]))
                st = sl_err_set(err, SL_ERR_FORMAT, "%s: KV key '%s' appears twice", what, keys[i]);
    }
    free(keys);
    if (st) goto fail;
    for (uint64_t i = 0; i < n_tensors; i++) {
        int ok = rd_tensor_info(&r, (int)i, &out->tensors[i]);
        out->n_tensors = (int)i + 1;
        if (!ok) {
            st = r.st;
            goto fail;
        }
    }
    unsigned long long ds;
    if (!sl_add_u64(r.pos, out->alignment - 1, &ds)) {
        st = sl_err_set(err, SL_ERR_FORMAT, "%s: data section start overflows", what);
        goto fail;
    }
    out->data_start = ds / out->alignment * out->alignment;
    st = check_tensors(buf, len, what, out, err);
    if (st) goto fail;
    return SL_OK;
fail:
    sl_gguf_file_free(out);
    return st;
}

/* ---- array element access ---- */

int64_t sl_gguf_arr_int(const uint8_t *buf, const sl_gguf_kv *kv, uint64_t i) {
    SL_ASSERT(kv->type == SL_GGUF_ARRAY && i < kv->arr_count);
    int sz = vt_size(kv->arr_type);
    SL_ASSERTF(sz && kv->arr_type != SL_GGUF_F32 && kv->arr_type != SL_GGUF_F64,
               "%s is not an integer array", kv->key);
    uint64_t u = le(buf + kv->arr_offset + i * (uint64_t)sz, sz);
    switch (kv->arr_type) {
    case SL_GGUF_I8:
        return (int8_t)u;
    case SL_GGUF_I16:
        return (int16_t)u;
    case SL_GGUF_I32:
        return (int32_t)u;
    default:
        return (int64_t)u; /* unsigned types, I64, BOOL */
    }
}

double sl_gguf_arr_float(const uint8_t *buf, const sl_gguf_kv *kv, uint64_t i) {
    SL_ASSERT(kv->type == SL_GGUF_ARRAY && i < kv->arr_count);
    SL_ASSERTF(kv->arr_type == SL_GGUF_F32 || kv->arr_type == SL_GGUF_F64,
               "%s is not a float array", kv->key);
    if (kv->arr_type == SL_GGUF_F32) {
        uint32_t b = (uint32_t)le(buf + kv->arr_offset + i * 4, 4);
        float f;
        memcpy(&f, &b, 4);
        return f;
    }
    uint64_t b = le(buf + kv->arr_offset + i * 8, 8);
    double d;
    memcpy(&d, &b, 8);
    return d;
}

sl_gguf_str_iter sl_gguf_arr_strings(const uint8_t *buf, const sl_gguf_kv *kv) {
    SL_ASSERTF(kv->type == SL_GGUF_ARRAY && kv->arr_type == SL_GGUF_STRING,
               "%s is not a string array", kv->key);
    return (sl_gguf_str_iter){buf + kv->arr_offset, kv->arr_count};
}

bool sl_gguf_arr_next_str(sl_gguf_str_iter *it, const char **s, size_t *n) {
    if (!it->left) return false;
    uint64_t len = le(it->p, 8);
    *s = (const char *)it->p + 8;
    *n = (size_t)len;
    it->p += 8 + len;
    it->left--;
    return true;
}

/* ---- streaming writer ---- */

typedef struct gg_decl {
    char *name;
    sl_dtype dtype;
    int ndim;
    int64_t ne[SL_MAX_DIMS]; /* row-major */
    uint64_t nbytes, offset;
} gg_decl;

typedef struct bbuf {
    uint8_t *p;
    size_t n, cap;
    int oom;
} bbuf;

static void bb_put(bbuf *b, const void *s, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void bb_le(bbuf *b, uint64_t v, int n) {
    uint8_t t[8];
    for (int i = 0; i < n; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    bb_put(b, t, (size_t)n);
}
static void bb_str(bbuf *b, const char *s) {
    size_t n = strlen(s);
    bb_le(b, n, 8);
    bb_put(b, s, n);
}

struct sl_gguf_writer {
    char *path;
    FILE *f;
    bbuf kv;
    char **keys;
    int n_kv, cap_kv;
    gg_decl *t;
    int n, cap;
    uint32_t alignment;
    int started;
    int cur;           /* tensor being written */
    uint64_t cur_done; /* its bytes written so far */
};

sl_status sl_gguf_writer_open(sl_gguf_writer **out, const char *path, sl_err *err) {
    SL_ASSERT(out && path);
    *out = NULL;
    sl_gguf_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", path);
    }
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
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

/* Appends the key and type of a new KV; fails on a duplicate key. */
static sl_status kv_begin(sl_gguf_writer *w, const char *key, sl_gguf_type t, sl_err *err) {
    SL_ASSERT(w && key && !w->started);
    if (!key[0]) return sl_err_set(err, SL_ERR_INVALID_ARG, "%s: empty KV key", w->path);
    for (int i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key))
            return sl_err_set(err, SL_ERR_INVALID_ARG, "%s: KV key '%s' given twice", w->path, key);
    if (w->n_kv == w->cap_kv) {
        int cap = w->cap_kv ? 2 * w->cap_kv : 16;
        char **k = realloc(w->keys, (size_t)cap * sizeof *k);
        if (!k) return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", w->path);
        w->keys = k;
        w->cap_kv = cap;
    }
    if (!(w->keys[w->n_kv] = strdup(key)))
        return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", w->path);
    w->n_kv++;
    bb_str(&w->kv, key);
    bb_le(&w->kv, (uint64_t)t, 4);
    return SL_OK;
}

static sl_status kv_end(sl_gguf_writer *w, sl_err *err) {
    return w->kv.oom ? sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", w->path) : SL_OK;
}

sl_status sl_gguf_writer_kv_str(sl_gguf_writer *w, const char *key, const char *value,
                                sl_err *err) {
    SL_ASSERT(value);
    sl_status st = kv_begin(w, key, SL_GGUF_STRING, err);
    if (st) return st;
    bb_str(&w->kv, value);
    return kv_end(w, err);
}

sl_status sl_gguf_writer_kv_u32(sl_gguf_writer *w, const char *key, uint32_t value, sl_err *err) {
    if (!strcmp(key, "general.alignment")) {
        if (!value || (value & (value - 1)))
            return sl_err_set(err, SL_ERR_INVALID_ARG,
                              "%s: general.alignment = %u is not a power of two", w->path, value);
    }
    sl_status st = kv_begin(w, key, SL_GGUF_U32, err);
    if (st) return st;
    if (!strcmp(key, "general.alignment")) w->alignment = value;
    bb_le(&w->kv, value, 4);
    return kv_end(w, err);
}

sl_status sl_gguf_writer_kv_f32(sl_gguf_writer *w, const char *key, float value, sl_err *err) {
    sl_status st = kv_begin(w, key, SL_GGUF_F32, err);
    if (st) return st;
    uint32_t b;
    memcpy(&b, &value, 4);
    bb_le(&w->kv, b, 4);
    return kv_end(w, err);
}

sl_status sl_gguf_writer_kv_i32_array(sl_gguf_writer *w, const char *key, const int32_t *values,
                                      int n, sl_err *err) {
    SL_ASSERT(n >= 0 && (values || n == 0));
    sl_status st = kv_begin(w, key, SL_GGUF_ARRAY, err);
    if (st) return st;
    bb_le(&w->kv, SL_GGUF_I32, 4);
    bb_le(&w->kv, (uint64_t)n, 8);
    for (int i = 0; i < n; i++)
        bb_le(&w->kv, (uint32_t)values[i], 4);
    return kv_end(w, err);
}

sl_status sl_gguf_writer_add(sl_gguf_writer *w, const char *name, sl_dtype dtype, int ndim,
                             const int64_t *ne, sl_err *err) {
    SL_ASSERT(w && name && !w->started);
    SL_ASSERT(ndim >= 0 && ndim <= SL_MAX_DIMS && (ne || ndim == 0));
    const sl_dtype_info *di = sl_dtype_get(dtype);
    if (di->ggml_type < 0)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "%s: tensor '%s': dtype %s has no GGUF type (fp8 needs safetensors)",
                          w->path, name, di->name);
    if (!name[0]) return sl_err_set(err, SL_ERR_INVALID_ARG, "%s: empty tensor name", w->path);
    int64_t inner = ndim ? ne[ndim - 1] : 1;
    if (inner < 0 || inner % di->blck)
        return sl_err_set(err, SL_ERR_INVALID_ARG,
                          "%s: tensor '%s': innermost dimension %lld is not a multiple of the %s "
                          "block size %d",
                          w->path, name, (long long)inner, di->name, di->blck);
    unsigned long long nbytes =
        (unsigned long long)(inner / di->blck) * (unsigned long long)di->bsize;
    for (int i = 0; i + 1 < ndim; i++)
        if (ne[i] < 0 || !sl_mul_u64(nbytes, (unsigned long long)ne[i], &nbytes))
            return sl_err_set(err, SL_ERR_INVALID_ARG, "%s: tensor '%s': bad shape", w->path, name);
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        gg_decl *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", w->path);
        w->t = t;
        w->cap = cap;
    }
    gg_decl *d = &w->t[w->n];
    memset(d, 0, sizeof *d);
    if (!(d->name = strdup(name)))
        return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", w->path);
    d->dtype = dtype;
    d->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        d->ne[i] = ne[i];
    d->nbytes = nbytes;
    w->n++;
    return SL_OK;
}

static sl_status gw_io_fail(sl_gguf_writer *w, const char *doing, sl_err *err) {
    return sl_err_set(err, SL_ERR_IO, "%s: %s: %s", w->path, doing, strerror(errno));
}

static int write_zeros(FILE *f, uint64_t n) {
    static const uint8_t z[256];
    while (n) {
        size_t k = n < sizeof z ? (size_t)n : sizeof z;
        if (fwrite(z, 1, k, f) != k) return 0;
        n -= k;
    }
    return 1;
}

sl_status sl_gguf_writer_begin_data(sl_gguf_writer *w, sl_err *err) {
    SL_ASSERT(w && !w->started);
    int any_quant = 0;
    for (int i = 0; i < w->n; i++)
        any_quant |= sl_dtype_get(w->t[i].dtype)->is_quant;
    int have_qv = 0;
    for (int i = 0; i < w->n_kv; i++)
        have_qv |= !strcmp(w->keys[i], "general.quantization_version");
    if (any_quant && !have_qv) {
        sl_status st = sl_gguf_writer_kv_u32(w, "general.quantization_version", 2, err);
        if (st) return st;
    }
    if (w->n > 1) {
        const char **names = malloc((size_t)w->n * sizeof *names);
        if (!names) return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory", w->path);
        for (int i = 0; i < w->n; i++)
            names[i] = w->t[i].name;
        qsort(names, (size_t)w->n, sizeof *names, cmp_str_ptr);
        sl_status st = SL_OK;
        for (int i = 1; i < w->n && !st; i++)
            if (!strcmp(names[i - 1], names[i]))
                st = sl_err_set(err, SL_ERR_INVALID_ARG, "%s: tensor '%s' declared twice", w->path,
                                names[i]);
        free(names);
        if (st) return st;
    }
    bbuf h = {0};
    bb_put(&h, "GGUF", 4);
    bb_le(&h, 3, 4);
    bb_le(&h, (uint64_t)w->n, 8);
    bb_le(&h, (uint64_t)w->n_kv, 8);
    if (w->kv.n) bb_put(&h, w->kv.p, w->kv.n);
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        gg_decl *d = &w->t[i];
        bb_str(&h, d->name);
        bb_le(&h, (uint64_t)d->ndim, 4);
        for (int j = d->ndim - 1; j >= 0; j--)
            bb_le(&h, (uint64_t)d->ne[j], 8);
        bb_le(&h, (uint64_t)sl_dtype_get(d->dtype)->ggml_type, 4);
        bb_le(&h, off, 8);
        d->offset = off;
        off += SL_ALIGN_UP(d->nbytes, (uint64_t)w->alignment);
    }
    if (h.oom) {
        free(h.p);
        return sl_err_set(err, SL_ERR_OOM_HOST, "%s: out of memory for the header", w->path);
    }
    uint64_t pad = SL_ALIGN_UP((uint64_t)h.n, (uint64_t)w->alignment) - h.n;
    sl_status st = SL_OK;
    if (fwrite(h.p, 1, h.n, w->f) != h.n || !write_zeros(w->f, pad))
        st = gw_io_fail(w, "writing the header", err);
    free(h.p);
    if (st) return st;
    w->started = 1;
    return SL_OK;
}

/* Finishes tensor w->cur when complete (writes its padding) and skips empty tensors. */
static sl_status advance(sl_gguf_writer *w, sl_err *err) {
    while (w->cur < w->n && w->cur_done == w->t[w->cur].nbytes) {
        uint64_t nb = w->t[w->cur].nbytes;
        if (!write_zeros(w->f, SL_ALIGN_UP(nb, (uint64_t)w->alignment) - nb))
            return gw_io_fail(w, "writing padding", err);
        w->cur++;
        w->cur_done = 0;
    }
    return SL_OK;
}

sl_status sl_gguf_writer_write(sl_gguf_writer *w, const void *bytes, size_t n, sl_err *err) {
    SL_ASSERT(w && w->started && (bytes || n == 0));
    const uint8_t *p = bytes;
    while (n) {
        sl_status st = advance(w, err);
        if (st) return st;
        if (w->cur >= w->n)
            return sl_err_set(err, SL_ERR_INVALID_ARG,
                              "%s: %zu bytes written beyond the declared tensors", w->path, n);
        uint64_t left = w->t[w->cur].nbytes - w->cur_done;
        size_t k = left < n ? (size_t)left : n;
        if (fwrite(p, 1, k, w->f) != k) return gw_io_fail(w, "writing tensor data", err);
        p += k;
        n -= k;
        w->cur_done += k;
    }
    return advance(w, err);
}

static void gw_free(sl_gguf_writer *w) {
    for (int i = 0; i < w->n; i++)
        free(w->t[i].name);
    free(w->t);
    for (int i = 0; i < w->n_kv; i++)
        free(w->keys[i]);
    free(w->keys);
    free(w->kv.p);
    free(w->path);
    free(w);
}

sl_status sl_gguf_writer_close(sl_gguf_writer *w, sl_err *err) {
    if (!w) return SL_OK;
    sl_status st = SL_OK;
    if (!w->started)
        st =
            sl_err_set(err, SL_ERR_INVALID_ARG,
                       "%s: closed before sl_gguf_writer_begin_data; nothing was written", w->path);
    else {
        st = advance(w, err);
        if (!st && w->cur < w->n)
            st = sl_err_set(err, SL_ERR_INVALID_ARG,
                            "%s: tensor '%s' got %llu of its %llu bytes (and %d tensors after it "
                            "none)",
                            w->path, w->t[w->cur].name, (unsigned long long)w->cur_done,
                            (unsigned long long)w->t[w->cur].nbytes, w->n - w->cur - 1);
    }
    if (!st && fflush(w->f) != 0) st = gw_io_fail(w, "flushing", err);
    if (fclose(w->f) != 0 && !st) st = gw_io_fail(w, "closing", err);
    w->f = NULL;
    if (st) unlink(w->path);
    gw_free(w);
    return st;
}

void sl_gguf_writer_abort(sl_gguf_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f);
    unlink(w->path);
    gw_free(w);
}
