/* Placeholder until the CPU backend lands (being written now). */
#include "backend/backend.h"

sl_status sl_backend_cpu_create(const sl_cpu_options *opt, sl_backend **out, sl_err *err) {
    (void)opt;
    *out = NULL;
    return sl_err_set(err, SL_ERR_UNSUPPORTED, "cpu backend not built yet");
}
