#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The one pointer into the daemon context; written once at start-up. */
static struct hp_log *attached;

void hp_log_attach(struct hp_log *log)
{
    attached = log;
}

int hp_log_enabled(int level)
{
    int cur = attached ? atomic_load(&attached->level) : HP_LOG_INFO;
    return level <= cur;
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int hp_log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

const char *hp_log_level_name(int level)
{
    if (level < 0 || level > 3)
        return "?";
    return level_names[level];
}

void hp_log_write(int level, const char *fmt, ...)
{
    char line[4096];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n;

    if (!hp_log_enabled(level))
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                 hp_log_level_name(level));
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    /* one write per line so concurrent threads do not interleave */
    n = (int)strlen(line);
    line[n++] = '\n';
    fwrite(line, 1, (size_t)n, stderr);
    fflush(stderr);
}
