/* Choosing a backend by name. The only place outside backend/cuda that knows whether CUDA was
 * compiled in. */
#include <string.h>

#include "backend/backend.h"

bool sl_backend_have_cuda(void) {
#ifdef SL_HAVE_CUDA
    return true;
#else
    return false;
#endif
}

#ifndef SL_HAVE_CUDA
sl_status sl_backend_cuda_create(int device, sl_backend **out, sl_err *err) {
    (void)device;
    *out = NULL;
    return sl_err_set(err, SL_ERR_UNSUPPORTED,
                      "this sluice was built without CUDA (rebuild where nvcc is installed, or use "
                      "--backend cpu)");
}
#endif

sl_status sl_backend_create(const char *name, int threads, sl_backend **out, sl_err *err) {
    *out = NULL;
    if (!name || !strcmp(name, "auto")) {
        if (sl_backend_have_cuda()) {
            sl_err tmp = {0};
            if (sl_backend_cuda_create(0, out, &tmp) == SL_OK) return SL_OK;
        }
        name = "cpu";
    }
    if (!strcmp(name, "cpu")) {
        sl_cpu_options o = {.threads = threads};
        return sl_backend_cpu_create(&o, out, err);
    }
    if (!strcmp(name, "cuda")) return sl_backend_cuda_create(0, out, err);
    return sl_err_set(err, SL_ERR_INVALID_ARG, "unknown backend '%s' (use cpu, cuda or auto)", name);
}

void sl_backend_destroy(sl_backend *be) {
    if (be) be->vt->destroy(be);
}
