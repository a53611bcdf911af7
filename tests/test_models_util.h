/* tests/test_models_util.h — helpers the model tests share: edit a synthetic tensor list, write it
 * into the test's scratch folder, open one file as a weight directory. */
#ifndef SL_TESTS_MODELS_UTIL_H
#define SL_TESTS_MODELS_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "io/wdir.h"
#include "models/synth.h"

/* The tensor named `name` in l, or NULL (also for name == NULL). Borrowed from l. */
sl_synth_tensor *tm_list_find(sl_synth_list *l, const char *name);
/* Remove the tensor named `name` from l (no-op for NULL or an absent name). */
void tm_list_drop(sl_synth_list *l, const char *name);
/* Write l to <sl_test_tmpdir()>/<name> in dtype dt (GGUF for block types, else safetensors) with
 * the given seed; the path goes to buf. */
sl_status tm_write_list(const sl_synth_list *l, const char *name, sl_dtype dt, uint64_t seed,
                        char *buf, size_t n, sl_err *err);
/* One file as a weight directory; NULL with err filled on failure. Free with sl_wdir_free. */
sl_wdir *tm_open_one(const char *path, sl_err *err);

#endif
