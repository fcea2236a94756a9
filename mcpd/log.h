/*
 * log.h - leveled diagnostic logging to stderr.
 *
 * stdout belongs to MCP in stdio mode, so every log line goes to stderr.
 * The macro checks the level before evaluating its arguments. Secrets never
 * reach these lines: callers log names and ids, not arguments or headers.
 */
#ifndef MCPD_LOG_H
#define MCPD_LOG_H

enum mcpd_log_level {
    MCPD_LOG_ERROR = 0,
    MCPD_LOG_WARN,
    MCPD_LOG_INFO,
    MCPD_LOG_DEBUG,
    MCPD_LOG_TRACE,
};

extern int mcpd_log_level;

#define MCPD_LOG(lvl, sub, ...)                       \
    do {                                              \
        if ((lvl) <= mcpd_log_level)                  \
            mcpd_log_emit((lvl), (sub), __VA_ARGS__); \
    } while (0)

#define LOG_ERROR(sub, ...) MCPD_LOG(MCPD_LOG_ERROR, sub, __VA_ARGS__)
#define LOG_WARN(sub, ...)  MCPD_LOG(MCPD_LOG_WARN, sub, __VA_ARGS__)
#define LOG_INFO(sub, ...)  MCPD_LOG(MCPD_LOG_INFO, sub, __VA_ARGS__)
#define LOG_DEBUG(sub, ...) MCPD_LOG(MCPD_LOG_DEBUG, sub, __VA_ARGS__)
#define LOG_TRACE(sub, ...) MCPD_LOG(MCPD_LOG_TRACE, sub, __VA_ARGS__)

/* Writes one line "<time> <LEVEL> <sub>: <message>" to stderr. */
void mcpd_log_emit(int level, const char *sub, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses "error|warn|info|debug|trace"; returns the level or -1. */
int mcpd_log_parse_level(const char *s);

#endif
