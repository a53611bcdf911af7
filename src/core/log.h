/* core/log.h — leveled logging with a user callback.
 *
 * Default sink: stderr, level SL_LOG_INFO (SLUICE_LOG=debug|info|warn|error overrides at first use).
 * A callback installed with sl_log_set_callback receives every message at or above the level;
 * it may be called from any thread. */
#ifndef SL_CORE_LOG_H
#define SL_CORE_LOG_H

typedef enum sl_log_level {
    SL_LOG_DEBUG = 0,
    SL_LOG_INFO = 1,
    SL_LOG_WARN = 2,
    SL_LOG_ERROR = 3,
    SL_LOG_NONE = 4,
} sl_log_level;

typedef void (*sl_log_fn)(sl_log_level level, const char *msg, void *user);

void sl_log_set_level(sl_log_level level);
sl_log_level sl_log_get_level(void);
/* fn == NULL restores the stderr sink. */
void sl_log_set_callback(sl_log_fn fn, void *user);
void sl_log(sl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define SL_DEBUG(...) sl_log(SL_LOG_DEBUG, __VA_ARGS__)
#define SL_INFO(...) sl_log(SL_LOG_INFO, __VA_ARGS__)
#define SL_WARN(...) sl_log(SL_LOG_WARN, __VA_ARGS__)
#define SL_ERROR(...) sl_log(SL_LOG_ERROR, __VA_ARGS__)

#endif
