/* io/gguf.h — GGUF v2/v3 files (specs/formats.md §2): a pure parser over bytes and a streaming
 * writer.
 *
 * Shapes are returned row-major (outermost first): GGUF's innermost-first ne[] is reversed, and
 * `comfy.gguf.orig_shape.<name>` overrides it when present. Every length, count, offset and size
 * is checked against the buffer with overflow-safe arithmetic; messages name the file (`what`),
 * the key or tensor, and the byte offset. */
#ifndef SL_IO_GGUF_H
#define SL_IO_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"

typedef enum sl_gguf_type {
    SL_GGUF_U8 = 0,
    SL_GGUF_I8 = 1,
    SL_GGUF_U16 = 2,
    SL_GGUF_I16 = 3,
    SL_GGUF_U32 = 4,
    SL_GGUF_I32 = 5,
    SL_GGUF_F32 = 6,
    SL_GGUF_BOOL = 7,
    SL_GGUF_STRING = 8,
    SL_GGUF_ARRAY = 9,
    SL_GGUF_U64 = 10,
    SL_GGUF_I64 = 11,
    SL_GGUF_F64 = 12,
} sl_gguf_type;

typedef struct sl_gguf_kv {
    char *key;
    sl_gguf_type type;
    /* scalars */
    union {
        uint64_t u;
        int64_t i;
        double f;
        bool b;
    } v;
    char *str;             /* STRING */
    sl_gguf_type arr_type; /* ARRAY element type */
    uint64_t arr_count;    /* ARRAY element count */
    uint64_t arr_offset;   /* ARRAY: file offset of the first element; elements are not
                              copied: read them with sl_gguf_arr_* below */
} sl_gguf_kv;

typedef struct sl_gguf_tensor {
    char *name;
    sl_dtype dtype;
    uint32_t ggml_type;
    int ndim;
    int64_t ne[SL_MAX_DIMS]; /* row-major */
    uint64_t offset;         /* absolute file offset */
    uint64_t nbytes;
} sl_gguf_tensor;

typedef struct sl_gguf_file {
    uint32_t version;
    uint32_t alignment;
    sl_gguf_kv *kvs;
    int n_kvs;
    sl_gguf_tensor *tensors;
    int n_tensors;
    uint64_t data_start;
} sl_gguf_file;

sl_status sl_gguf_parse(const uint8_t *buf, size_t len, const char *what, sl_gguf_file *out,
                        sl_err *err);
void sl_gguf_file_free(sl_gguf_file *f);
const sl_gguf_kv *sl_gguf_find_kv(const sl_gguf_file *f, const char *key);

/* Array elements, read from the bytes the file was parsed from (`buf`, borrowed; the parser has
 * bounds-checked every element). sl_gguf_arr_int: element i of an integer or bool array;
 * sl_gguf_arr_float: element i of an F32/F64 array (asserts on other types or i >= count).
 * String arrays are walked in order: init an iterator, then each sl_gguf_arr_next_str returns
 * the next string (not NUL-terminated; *s points into buf) until it returns false. */
int64_t sl_gguf_arr_int(const uint8_t *buf, const sl_gguf_kv *kv, uint64_t i);
double sl_gguf_arr_float(const uint8_t *buf, const sl_gguf_kv *kv, uint64_t i);
typedef struct sl_gguf_str_iter {
    const uint8_t *p;
    uint64_t left;
} sl_gguf_str_iter;
sl_gguf_str_iter sl_gguf_arr_strings(const uint8_t *buf, const sl_gguf_kv *kv);
bool sl_gguf_arr_next_str(sl_gguf_str_iter *it, const char **s, size_t *n);

/* Streaming writer (formats.md §2.10): declare KVs and tensors, then write tensor bytes in
 * declaration order in chunks; alignment padding is inserted automatically. */
typedef struct sl_gguf_writer sl_gguf_writer;
sl_status sl_gguf_writer_open(sl_gguf_writer **out, const char *path, sl_err *err);
sl_status sl_gguf_writer_kv_str(sl_gguf_writer *w, const char *key, const char *value, sl_err *err);
sl_status sl_gguf_writer_kv_u32(sl_gguf_writer *w, const char *key, uint32_t value, sl_err *err);
sl_status sl_gguf_writer_kv_f32(sl_gguf_writer *w, const char *key, float value, sl_err *err);
/* An ARRAY of I32 (e.g. comfy.gguf.orig_shape.<name>, outermost first). */
sl_status sl_gguf_writer_kv_i32_array(sl_gguf_writer *w, const char *key, const int32_t *values,
                                      int n, sl_err *err);
sl_status sl_gguf_writer_add(sl_gguf_writer *w, const char *name, sl_dtype dtype, int ndim,
                             const int64_t *ne, sl_err *err); /* ne row-major */
sl_status sl_gguf_writer_begin_data(sl_gguf_writer *w, sl_err *err);
sl_status sl_gguf_writer_write(sl_gguf_writer *w, const void *bytes, size_t n, sl_err *err);
sl_status sl_gguf_writer_close(sl_gguf_writer *w, sl_err *err);
void sl_gguf_writer_abort(sl_gguf_writer *w);

#endif
