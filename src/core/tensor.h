/* core/tensor.h — the tensor descriptor every layer passes around.
 *
 * A tensor is a dense, row-major (C order) array: shape ne[0] is the outermost dimension and
 * ne[ndim-1] the innermost, contiguous one, exactly as PyTorch and safetensors write shapes.
 * (GGUF lists dimensions innermost first; io/gguf reverses them on load.)
 * For block-quantised dtypes the innermost dimension is a multiple of the block size and a row
 * is ne[ndim-1]/blck consecutive blocks.
 *
 * `data` points into memory owned by someone else: a backend buffer (device memory on CUDA), an
 * activation arena, a mapped file or a residency slot. Its lifetime is stated by whoever hands
 * the tensor out. A tensor never owns its data. */
#ifndef SL_CORE_TENSOR_H
#define SL_CORE_TENSOR_H

#include <stdint.h>

#include "core/dtype.h"

#define SL_MAX_DIMS 4

typedef struct sl_tensor {
    void *data;
    sl_dtype dtype;
    int ndim;                /* 0..SL_MAX_DIMS; 0 is a scalar (one element) */
    int64_t ne[SL_MAX_DIMS]; /* row-major shape; entries >= ndim are 1 */
    const char *name;        /* optional, borrowed (for messages) */
} sl_tensor;

/* A descriptor with the given shape and NULL data. */
sl_tensor sl_tensor_make(sl_dtype dtype, int ndim, const int64_t *ne);
#define sl_tensor1(dt, a) sl_tensor_make((dt), 1, (const int64_t[]){(a)})
#define sl_tensor2(dt, a, b) sl_tensor_make((dt), 2, (const int64_t[]){(a), (b)})
#define sl_tensor3(dt, a, b, c) sl_tensor_make((dt), 3, (const int64_t[]){(a), (b), (c)})
#define sl_tensor4(dt, a, b, c, d) sl_tensor_make((dt), 4, (const int64_t[]){(a), (b), (c), (d)})

int64_t sl_tensor_numel(const sl_tensor *t);
/* Bytes of the whole tensor (row-aware for block types). */
size_t sl_tensor_nbytes(const sl_tensor *t);
/* Number of rows: product of all dimensions but the innermost (1 for ndim <= 1). */
int64_t sl_tensor_nrows(const sl_tensor *t);
/* Elements in the innermost dimension (numel for ndim 0/1). */
int64_t sl_tensor_ncols(const sl_tensor *t);
/* Same shape (ndim and every extent), dtype not compared. */
int sl_tensor_same_shape(const sl_tensor *a, const sl_tensor *b);

/* Views (no copy): rows [r0, r0+n) along the outermost dimension; a reshape with the same
 * element count. Both keep data/dtype. */
sl_tensor sl_tensor_rows(const sl_tensor *t, int64_t r0, int64_t n);
sl_tensor sl_tensor_reshape(const sl_tensor *t, int ndim, const int64_t *ne);
#define sl_reshape2(t, a, b) sl_tensor_reshape((t), 2, (const int64_t[]){(a), (b)})
#define sl_reshape3(t, a, b, c) sl_tensor_reshape((t), 3, (const int64_t[]){(a), (b), (c)})
#define sl_reshape4(t, a, b, c, d) sl_tensor_reshape((t), 4, (const int64_t[]){(a), (b), (c), (d)})

/* "bf16[3840, 64]" into buf; returns buf. */
const char *sl_tensor_desc(const sl_tensor *t, char *buf, size_t n);

#endif
