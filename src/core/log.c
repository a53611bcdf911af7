#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_level = -1; /* -1: not yet read from the environment */
static sl_log_fn g_fn;
static void *g_user;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static int level_from_env(void) {
    const char *e = getenv("SLUICE_LOG");
    if (!e) return SL_LOG_INFO;
    if (!strcmp(e, "debug")) return SL_LOG_DEBUG;
    if (!strcmp(e, "warn")) return SL_LOG_WARN;
    if (!strcmp(e, "error")) return SL_LOG_ERROR;
    if (!strcmp(e, "none")) return SL_LOG_NONE;
    return SL_LOG_INFO;
}

void sl_log_set_level(sl_log_level level) { __atomic_store_n(&g_level, (int)level, __ATOMIC_RELAXED); }

sl_log_level sl_log_get_level(void) {
    int l = __atomic_load_n(&g_level, __ATOMIC_RELAXED);
    if (l < 0) {
        l = level_from_env();
        __atomic_store_n(&g_level, l, __ATOMIC_RELAXED);
    }
    return (sl_log_level)l;
}

void sl_log_set_callback(sl_log_fn fn, void *user) {
    pthread_mutex_lock(&g_mu);
    g_fn = fn;
    g_user = user;
    pthread_mutex_unlock(&g_mu);
}

void sl_log(sl_log_level level, const char *fmt, ...) {
    if ((int)level < (int)sl_log_get_level()) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&g_mu);
    if (g_fn) {
        g_fn(level, buf, g_user);
    } else {
        static const char *tag[] = {"debug", "info", "warn", "error"};
        fprintf(stderr, "[sluice %s] %s\n", tag[level < 4 ? level : 3], buf);
    }
    pthread_mutex_unlock(&g_mu);
}
