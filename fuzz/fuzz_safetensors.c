/* libFuzzer target: the safetensors header parser and the shard-index parser (pure functions
 * over bytes). Besides "no crash, no sanitizer report", it checks the parser's promises on every
 * accepted input: each tensor's bytes lie inside the buffer, tile the data section exactly, and
 * match dtype x shape. */
#include <stdint.h>
#include <stdlib.h>

#include "io/safetensors.h"

static void check(int ok) {
    if (!ok) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sl_st_file f;
    sl_err err = {0};
    if (sl_st_parse(data, size, "fuzz", &f, &err) == SL_OK) {
        uint64_t covered = 0;
        for (int i = 0; i < f.n_tensors; i++) {
            const sl_st_tensor *t = &f.tensors[i];
            check(t->offset >= f.data_start && t->offset <= size && t->nbytes <= size - t->offset);
            uint64_t numel = 1;
            for (int k = 0; k < t->ndim; k++)
                numel *= (uint64_t)t->ne[k];
            check(numel * (uint64_t)sl_dtype_get(t->dtype)->bsize == t->nbytes);
            covered += t->nbytes;
        }
        check(f.data_start + covered == size);
        sl_st_file_free(&f);
    } else {
        check(err.status != SL_OK && err.msg[0] && f.tensors == NULL && f.n_tensors == 0);
    }
    sl_st_index ix;
    sl_err e2 = {0};
    if (sl_st_parse_index(data, size, "fuzz", &ix, &e2) == SL_OK) {
        for (int i = 0; i < ix.n_names; i++)
            check(ix.shard_of[i] >= 0 && ix.shard_of[i] < ix.n_shards);
        sl_st_index_free(&ix);
    }
    return 0;
}
