/* Logging to stderr: "2026-11-24T07:40:01.123Z level=info msg..." one line per call.
 *
 * The level lives in the daemon context (struct hp_log); hp_log_attach() points the
 * logger at it once at start-up, so SIGHUP can change the level in one place.
 * Without an attached context the level is info.
 */
#ifndef HP_UTIL_LOG_H
#define HP_UTIL_LOG_H

#include <stdatomic.h>

enum hp_log_level { HP_LOG_ERROR = 0, HP_LOG_WARN, HP_LOG_INFO, HP_LOG_DEBUG };

struct hp_log {
    _Atomic int level;
};

void hp_log_attach(struct hp_log *log);
int hp_log_enabled(int level);
/* Parse "error|warn|info|debug"; -1 when unknown. */
int hp_log_parse_level(const char *s);
const char *hp_log_level_name(int level);

void hp_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hp_error(...) hp_log_write(HP_LOG_ERROR, __VA_ARGS__)
#define hp_warn(...)  hp_log_write(HP_LOG_WARN, __VA_ARGS__)
#define hp_info(...)  hp_log_write(HP_LOG_INFO, __VA_ARGS__)
#define hp_debug(...)                                                                              \
    do {                                                                                           \
        if (hp_log_enabled(HP_LOG_DEBUG))                                                          \
            hp_log_write(HP_LOG_DEBUG, __VA_ARGS__);                                               \
    } while (0)

#endif
