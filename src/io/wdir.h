/* io/wdir.h — the weight directory: every tensor of a model's files, by name.
 *
 * Opening maps each file read-only (safetensors, a sharded `*.safetensors.index.json`, or GGUF)
 * and validates it completely (io/safetensors.h, io/gguf.h). Entries point into the mappings;
 * they stay valid until sl_wdir_free. Shapes are row-major, outermost first, for both formats
 * (GGUF's innermost-first dims are reversed on load).
 *
 * Name lookup is exact first; then it tolerates a known prefix on either side: a name asked as
 * "x_embedder.weight" finds "model.diffusion_model.x_embedder.weight" and vice versa. The
 * prefixes tried are listed in wdir.c (model.diffusion_model., diffusion_model., model.,
 * first_stage_model., text_encoders.*.transformer., ...). Model name tables (models/...) map
 * their layouts' names; no string hacks at call sites. */
#ifndef SL_IO_WDIR_H
#define SL_IO_WDIR_H

#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"

typedef enum sl_file_format { SL_FORMAT_SAFETENSORS, SL_FORMAT_GGUF } sl_file_format;

typedef struct sl_wentry {
    const char *name; /* as stored in the file */
    int file;         /* index into the directory's files */
    uint64_t offset;  /* absolute byte offset of the data in that file */
    uint64_t nbytes;  /* data bytes */
    sl_dtype dtype;
    int ndim;
    int64_t ne[SL_MAX_DIMS]; /* row-major */
    const void *data;        /* the mapped bytes (valid until sl_wdir_free); may be unaligned */
} sl_wentry;

typedef struct sl_wdir sl_wdir;

/* Open one or more paths (each a .safetensors file, a .safetensors.index.json, or a .gguf) into
 * one directory. A name present twice is an error naming both files. A path may also be a folder
 * holding exactly one *.safetensors.index.json (e.g. a diffusers component folder with its
 * shards), or else exactly one .safetensors/.gguf file. GGUF is recognised by its magic, an index
 * by the .json suffix; every tensor an index lists must be in the shard it names. */
sl_status sl_wdir_open(sl_wdir **out, const char *const *paths, int n_paths, sl_err *err);
void sl_wdir_free(sl_wdir *d); /* NULL is fine */

int sl_wdir_count(const sl_wdir *d);
const sl_wentry *sl_wdir_at(const sl_wdir *d, int i);
/* Exact match, then prefix-tolerant match; NULL when absent. */
const sl_wentry *sl_wdir_find(const sl_wdir *d, const char *name);
/* Path and format of file i. */
const char *sl_wdir_file_path(const sl_wdir *d, int file);
sl_file_format sl_wdir_file_format(const sl_wdir *d, int file);
int sl_wdir_file_count(const sl_wdir *d);
/* Key/value metadata (safetensors __metadata__ strings; GGUF string values, and GGUF scalar
 * values printed as decimal text, "true"/"false" for bools; GGUF arrays are left out), NULL when
 * absent. With several files, the first file's value of a key wins. Borrowed, valid until
 * sl_wdir_free. */
const char *sl_wdir_meta(const sl_wdir *d, const char *key);
int sl_wdir_meta_count(const sl_wdir *d);
void sl_wdir_meta_at(const sl_wdir *d, int i, const char **key, const char **value);
/* A tensor descriptor for an entry, data pointing at the mapped bytes. */
sl_tensor sl_wentry_tensor(const sl_wentry *e);

#endif
