#include "core/tensor.h"

#include <stdio.h>

#include "core/status.h"

sl_tensor sl_tensor_make(sl_dtype dtype, int ndim, const int64_t *ne) {
    SL_ASSERT(ndim >= 0 && ndim <= SL_MAX_DIMS);
    sl_tensor t = {0};
    t.dtype = dtype;
    t.ndim = ndim;
    for (int i = 0; i < SL_MAX_DIMS; i++) t.ne[i] = i < ndim ? ne[i] : 1;
    for (int i = 0; i < ndim; i++) SL_ASSERT(ne[i] >= 0);
    return t;
}

int64_t sl_tensor_numel(const sl_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->ne[i];
    return n;
}

int64_t sl_tensor_ncols(const sl_tensor *t) { return t->ndim ? t->ne[t->ndim - 1] : 1; }

int64_t sl_tensor_nrows(const sl_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i + 1 < t->ndim; i++) n *= t->ne[i];
    return n;
}

size_t sl_tensor_nbytes(const sl_tensor *t) {
    return (size_t)sl_tensor_nrows(t) * sl_dtype_row_bytes(t->dtype, sl_tensor_ncols(t));
}

int sl_tensor_same_shape(const sl_tensor *a, const sl_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->ne[i] != b->ne[i]) return 0;
    return 1;
}

sl_tensor sl_tensor_rows(const sl_tensor *t, int64_t r0, int64_t n) {
    SL_ASSERT(t->ndim >= 1 && r0 >= 0 && n >= 0 && r0 + n <= t->ne[0]);
    sl_tensor v = *t;
    size_t row = sl_tensor_nbytes(t) / (size_t)(t->ne[0] ? t->ne[0] : 1);
    v.ne[0] = n;
    v.data = t->data ? (char *)t->data + (size_t)r0 * row : NULL;
    return v;
}

sl_tensor sl_tensor_reshape(const sl_tensor *t, int ndim, const int64_t *ne) {
    sl_tensor v = sl_tensor_make(t->dtype, ndim, ne);
    SL_ASSERTF(sl_tensor_numel(&v) == sl_tensor_numel(t), "reshape changes the element count");
    SL_ASSERT(sl_dtype_row_ok(t->dtype, sl_tensor_ncols(&v)));
    v.data = t->data;
    v.name = t->name;
    return v;
}

const char *sl_tensor_desc(const sl_tensor *t, char *buf, size_t n) {
    int o = snprintf(buf, n, "%s[", sl_dtype_name(t->dtype));
    for (int i = 0; i < t->ndim && o > 0 && (size_t)o < n; i++)
        o += snprintf(buf + o, n - (size_t)o, i ? ", %lld" : "%lld", (long long)t->ne[i]);
    if (o > 0 && (size_t)o < n) snprintf(buf + o, n - (size_t)o, "]");
    return buf;
}
