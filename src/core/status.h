/* core/status.h — the three kinds of failure (STYLE §3).
 *
 * Expected failures return an sl_status and fill a caller-supplied sl_err with a message a user
 * can act on. Bugs hit SL_ASSERT, which is always on, prints file:line and aborts. Library code
 * never calls exit(). */
#ifndef SL_CORE_STATUS_H
#define SL_CORE_STATUS_H

#include <stddef.h>

typedef enum sl_status {
    SL_OK = 0,
    SL_ERR_INVALID_ARG,   /* caller passed something unusable (bad flag value, bad size) */
    SL_ERR_IO,            /* open/read/write/mmap failed */
    SL_ERR_FORMAT,        /* a file is malformed (truncated, bad header, bad offsets) */
    SL_ERR_UNSUPPORTED,   /* well-formed but not supported (dtype, architecture, version) */
    SL_ERR_NOT_FOUND,     /* a tensor / file / key is missing */
    SL_ERR_SHAPE,         /* a tensor has the wrong shape or dtype for its role */
    SL_ERR_OOM_HOST,      /* not enough host RAM (or pinned memory) */
    SL_ERR_OOM_DEVICE,    /* not enough device memory */
    SL_ERR_BACKEND,       /* the backend (CUDA driver, ...) reported an error */
    SL_ERR_CANCELLED,     /* the user cancelled through the progress callback */
    SL_ERR_INTERNAL,      /* an inconsistency that is not a plain bug (should not happen) */
} sl_status;

/* Caller-supplied error buffer. The first failure that fills it wins; later ones are dropped so
 * that the message names the root cause. Zero-initialise before use (sl_err e = {0};). */
typedef struct sl_err {
    sl_status status;
    char msg[1024];
} sl_err;

/* Fill err (if not NULL and not already set) with a printf-style message; returns status so that
 * `return sl_err_set(err, SL_ERR_IO, "...")` reads naturally. */
sl_status sl_err_set(sl_err *err, sl_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepend context to an existing message ("loading vae: " + msg). No-op when err is NULL/empty. */
void sl_err_prefix(sl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reset err to the empty state. */
void sl_err_clear(sl_err *err);

/* Short name of a status ("SL_ERR_IO" -> "io error"). Never NULL. */
const char *sl_status_str(sl_status s);

/* Always-on assertion for bugs: prints file:line and the expression, then aborts. */
#define SL_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (__builtin_expect(!(cond), 0)) sl_assert_fail(__FILE__, __LINE__, #cond, NULL);         \
    } while (0)
#define SL_ASSERTF(cond, ...)                                                                      \
    do {                                                                                           \
        if (__builtin_expect(!(cond), 0)) sl_assert_fail_fmt(__FILE__, __LINE__, #cond, __VA_ARGS__); \
    } while (0)

_Noreturn void sl_assert_fail(const char *file, int line, const char *expr, const char *msg);
_Noreturn void sl_assert_fail_fmt(const char *file, int line, const char *expr, const char *fmt,
                                  ...) __attribute__((format(printf, 4, 5)));

/* Overflow-checked size arithmetic for parsers: return 0 on overflow (and leave *out untouched),
 * 1 on success. */
static inline int sl_mul_u64(unsigned long long a, unsigned long long b, unsigned long long *out) {
    unsigned long long r;
    if (__builtin_mul_overflow(a, b, &r)) return 0;
    *out = r;
    return 1;
}
static inline int sl_add_u64(unsigned long long a, unsigned long long b, unsigned long long *out) {
    unsigned long long r;
    if (__builtin_add_overflow(a, b, &r)) return 0;
    *out = r;
    return 1;
}

#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SL_ALIGN_UP(x, a) ((((x) + (a)-1) / (a)) * (a))
#define SL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
