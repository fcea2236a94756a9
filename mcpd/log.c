/*
 * log.c - the stderr log sink. One write(2) per line so that lines from
 * mcpd and from relayed child stderr never interleave mid-line.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int mcpd_log_level = MCPD_LOG_INFO;

static const char *const level_names[] = { "ERROR", "WARN", "INFO", "DEBUG", "TRACE" };

void mcpd_log_emit(int level, const char *sub, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int r;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s: ", ts.tv_nsec / 1000000,
                 level_names[level < 0   ? 0
                             : level > 4 ? 4
                                         : level],
                 sub);
    if (r > 0)
        n += (size_t)r;
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (r > 0)
        n += (size_t)r < sizeof(line) - n ? (size_t)r : sizeof(line) - n - 1;
    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, line, n);
        if (w <= 0)
            break;
        n -= (size_t)w;
    }
}

int mcpd_log_parse_level(const char *s)
{
    static const char *const names[] = { "error", "warn", "info", "debug", "trace" };
    for (int i = 0; i < 5; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}
