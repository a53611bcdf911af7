#include "core/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sl_status sl_err_set(sl_err *err, sl_status status, const char *fmt, ...) {
    if (err && err->status == SL_OK) {
        err->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

void sl_err_prefix(sl_err *err, const char *fmt, ...) {
    if (!err || err->status == SL_OK) return;
    char head[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s%s", head, old);
}

void sl_err_clear(sl_err *err) {
    if (!err) return;
    err->status = SL_OK;
    err->msg[0] = 0;
}

const char *sl_status_str(sl_status s) {
    switch (s) {
    case SL_OK: return "ok";
    case SL_ERR_INVALID_ARG: return "invalid argument";
    case SL_ERR_IO: return "i/o error";
    case SL_ERR_FORMAT: return "bad file format";
    case SL_ERR_UNSUPPORTED: return "unsupported";
    case SL_ERR_NOT_FOUND: return "not found";
    case SL_ERR_SHAPE: return "wrong shape or dtype";
    case SL_ERR_OOM_HOST: return "out of host memory";
    case SL_ERR_OOM_DEVICE: return "out of device memory";
    case SL_ERR_BACKEND: return "backend error";
    case SL_ERR_CANCELLED: return "cancelled";
    case SL_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

void sl_assert_fail(const char *file, int line, const char *expr, const char *msg) {
    fprintf(stderr, "sluice: assertion failed at %s:%d: %s%s%s\n", file, line, expr,
            msg ? ": " : "", msg ? msg : "");
    fflush(stderr);
    abort();
}

void sl_assert_fail_fmt(const char *file, int line, const char *expr, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sl_assert_fail(file, line, expr, buf);
}
