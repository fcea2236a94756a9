/*
 * buf.h - struct mcpd_buf, an owning growable byte buffer with a hard cap
 * fixed at init (curl's dynbuf). It is always NUL-terminated when non-empty
 * storage exists. An append past the cap returns MCPD_ETOOBIG and leaves the
 * buffer valid and unchanged.
 *
 * Invariant: len <= cap_alloc, len <= max.
 */
#ifndef MCPD_BUF_H
#define MCPD_BUF_H

#include <stddef.h>
#include <string.h>

struct mcpd_buf {
    char *p;      /* storage, NULL until the first append */
    size_t len;   /* bytes used */
    size_t alloc; /* bytes allocated */
    size_t max;   /* hard cap on len */
};

void mcpd_buf_init(struct mcpd_buf *b, size_t max);
void mcpd_buf_dispose(struct mcpd_buf *b);
/* Drops the contents but keeps the storage. */
void mcpd_buf_reset(struct mcpd_buf *b);
int mcpd__buf_append_slow(struct mcpd_buf *b, const void *data, size_t len);

/*
 * Returns 0, MCPD_ETOOBIG (past max) or MCPD_ENOMEM. Inline when it fits
 * (it runs per JSON token: jansson's dump callback, the audit's writers);
 * the allocation never exceeds max + 1, so fitting is within max.
 */
static inline int mcpd_buf_append(struct mcpd_buf *b, const void *data, size_t len)
{
    if (len < b->alloc - b->len) {
        if (len)
            memcpy(b->p + b->len, data, len);
        b->len += len;
        b->p[b->len] = '\0';
        return 0;
    }
    return mcpd__buf_append_slow(b, data, len);
}
int mcpd_buf_appendf(struct mcpd_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Ensures room for `extra` more bytes; returns as append does. */
int mcpd_buf_reserve(struct mcpd_buf *b, size_t extra);
/* Removes the first n bytes. */
void mcpd_buf_consume(struct mcpd_buf *b, size_t n);
/* Hands the storage to the caller (who frees it with free()); resets b. */
char *mcpd_buf_steal(struct mcpd_buf *b, size_t *len);

#endif
