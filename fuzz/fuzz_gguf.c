/* libFuzzer target: the GGUF parser (a pure function over bytes). Besides "no crash, no
 * sanitizer report", it checks the parser's promises on every accepted input: tensors lie inside
 * the buffer at aligned offsets past the header, sizes follow dtype x shape, no two overlap. */
#include <stdint.h>
#include <stdlib.h>

#include "io/gguf.h"

static void check(int ok) {
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sl_gguf_file f;
    sl_err err = {0};
    if (sl_gguf_parse(data, size, "fuzz", &f, &err) != SL_OK) {
        check(err.status != SL_OK && err.msg[0] && f.tensors == NULL && f.kvs == NULL);
        return 0;
    }
    check(f.alignment && !(f.alignment & (f.alignment - 1)));
    for (int i = 0; i < f.n_kvs; i++) {
        const sl_gguf_kv *kv = &f.kvs[i];
        check(kv->key && kv->key[0]);
        if (kv->type == SL_GGUF_STRING) check(kv->str != NULL);
        if (kv->type == SL_GGUF_ARRAY) check(kv->arr_offset <= size);
        check(sl_gguf_find_kv(&f, kv->key) == kv);
    }
    for (int i = 0; i < f.n_tensors; i++) {
        const sl_gguf_tensor *t = &f.tensors[i];
        check(t->offset >= f.data_start && (t->offset - f.data_start) % f.alignment == 0);
        check(t->offset <= size && t->nbytes <= size - t->offset);
        const sl_dtype_info *di = sl_dtype_get(t->dtype);
        int64_t inner = t->ndim ? t->ne[t->ndim - 1] : 1;
        check(inner % di->blck == 0);
        uint64_t rows = 1;
        for (int k = 0; k + 1 < t->ndim; k++)
            rows *= (uint64_t)t->ne[k];
        check(rows * (uint64_t)(inner / di->blck) * (uint64_t)di->bsize == t->nbytes);
        for (int j = 0; j < i && f.n_tensors <= 256; j++) { /* pairwise: small files only */
            const sl_gguf_tensor *u = &f.tensors[j];
            if (t->nbytes && u->nbytes)
                check(t->offset + t->nbytes <= u->offset || u->offset + u->nbytes <= t->offset);
        }
    }
    sl_gguf_file_free(&f);
    return 0;
}
