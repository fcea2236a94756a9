/*
 * error.h - mcpd's error codes. Functions return 0 on success or a negative
 * code: libuv's (negative errno) pass through unchanged, mcpd's own live in
 * the band -20000 and below (STYLE.md 2.7).
 */
#ifndef MCPD_ERROR_H
#define MCPD_ERROR_H

#define MCPD_ERRNO_MAP(XX)                                  \
    XX(ETOOBIG, -20001, "message exceeds configured limit") \
    XX(EPROTO, -20002, "protocol violation by peer")        \
    XX(EDENIED, -20003, "denied by policy")                 \
    XX(ECLOSED, -20004, "session is closed")                \
    XX(ECONFIG, -20005, "invalid configuration")            \
    XX(ENOMEM, -20006, "out of memory")                     \
    XX(EBUSY, -20007, "too many requests in flight")        \
    XX(ETIMEDOUT, -20008, "timed out")                      \
    XX(EUNAVAIL, -20009, "upstream unavailable")

enum mcpd_err {
#define XX(name, code, msg) MCPD_##name = code,
    MCPD_ERRNO_MAP(XX)
#undef XX
};

/* Returns a static description of any code (mcpd's or libuv's). */
const char *mcpd_strerror(int err);

#endif
