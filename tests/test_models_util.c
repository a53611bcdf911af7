#include "test_models_util.h"

#include <stdio.h>
#include <string.h>

#include "test.h"

sl_synth_tensor *tm_list_find(sl_synth_list *l, const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->t[i].name, name)) return &l->t[i];
    return NULL;
}

void tm_list_drop(sl_synth_list *l, const char *name) {
    sl_synth_tensor *t = tm_list_find(l, name);
    if (t) *t = l->t[--l->n];
}

sl_status tm_write_list(const sl_synth_list *l, const char *name, sl_dtype dt, uint64_t seed,
                        char *buf, size_t n, sl_err *err) {
    snprintf(buf, n, "%s/%s", sl_test_tmpdir(), name);
    sl_synth_opts o = {.dtype = dt,
                       .seed = seed,
                       .format = sl_dtype_get(dt)->is_quant ? SL_SYNTH_GGUF : SL_SYNTH_SAFETENSORS};
    return sl_synth_write(l, &o, buf, err);
}

sl_wdir *tm_open_one(const char *path, sl_err *err) {
    sl_wdir *wd = NULL;
    const char *p[1] = {path};
    if (sl_wdir_open(&wd, p, 1, err) != SL_OK) return NULL;
    return wd;
}
