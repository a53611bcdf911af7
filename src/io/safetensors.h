/* io/safetensors.h — safetensors files (specs/formats.md §1): a pure parser over bytes, the
 * sharded-index reader, and a streaming writer.
 *
 * The parser enforces every rule of formats.md §1.4 with overflow-checked 64-bit arithmetic and
 * rejects duplicate names. Messages name the file (`what`), the tensor and the offending offset. */
#ifndef SL_IO_SAFETENSORS_H
#define SL_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"

typedef struct sl_st_tensor {
    char *name;
    sl_dtype dtype;
    int ndim;
    int64_t ne[SL_MAX_DIMS];
    uint64_t offset; /* absolute file offset of the data (8 + N + begin) */
    uint64_t nbytes;
} sl_st_tensor;

typedef struct sl_st_kv {
    char *key, *value;
} sl_st_kv;

typedef struct sl_st_file {
    sl_st_tensor *tensors;
    int n_tensors;
    sl_st_kv *meta; /* __metadata__ string values */
    int n_meta;
    uint64_t data_start; /* 8 + N */
} sl_st_file;

/* Parse a whole file's bytes. `what` names the file in messages. On failure *out is left empty
 * (nothing to free). JSON whitespace around the header object is accepted; the header must be
 * UTF-8 without NUL bytes; duplicate keys (tensor names, __metadata__ keys) are rejected;
 * __metadata__ values that are not strings are skipped. Tensors come out in header order. Tensors
 * with more than SL_MAX_DIMS dimensions or unsupported dtypes are errors (SL_ERR_UNSUPPORTED)
 * naming the tensor. */
sl_status sl_st_parse(const uint8_t *buf, size_t len, const char *what, sl_st_file *out,
                      sl_err *err);
void sl_st_file_free(sl_st_file *f); /* NULL is fine */

/* Parse a `*.safetensors.index.json`: the distinct shard file names (relative to the index's
 * folder) in first-seen order and, for each tensor name, its shard index. */
typedef struct sl_st_index {
    char **shards;
    int n_shards;
    char **names;  /* tensor names */
    int *shard_of; /* shard index per name */
    int n_names;
} sl_st_index;
sl_status sl_st_parse_index(const uint8_t *buf, size_t len, const char *what, sl_st_index *out,
                            sl_err *err);
void sl_st_index_free(sl_st_index *ix);

/* Streaming writer: declare every tensor (and metadata) first, then write the tensors' bytes in
 * declaration order in chunks of any size. The header is padded with spaces to a multiple of 8.
 * Nothing is buffered beyond the header; a full-size model is written without its size in RAM. */
typedef struct sl_st_writer sl_st_writer;
sl_status sl_st_writer_open(sl_st_writer **out, const char *path, sl_err *err);
sl_status sl_st_writer_meta(sl_st_writer *w, const char *key, const char *value, sl_err *err);
sl_status sl_st_writer_add(sl_st_writer *w, const char *name, sl_dtype dtype, int ndim,
                           const int64_t *ne, sl_err *err);
/* Writes the header; afterwards only sl_st_writer_write / close. */
sl_status sl_st_writer_begin_data(sl_st_writer *w, sl_err *err);
sl_status sl_st_writer_write(sl_st_writer *w, const void *bytes, size_t n, sl_err *err);
/* Checks that exactly the declared bytes were written, closes, frees. w may be NULL. On error the
 * partial file is removed. */
sl_status sl_st_writer_close(sl_st_writer *w, sl_err *err);
/* Frees without finishing (removes the partial file). NULL is fine. */
void sl_st_writer_abort(sl_st_writer *w);

/* safetensors dtype string ("BF16") for a dtype, NULL when the format cannot store it. */
const char *sl_st_dtype_string(sl_dtype dt);

#endif
