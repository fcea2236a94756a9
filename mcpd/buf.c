/* buf.c - capped growable buffer (see buf.h). */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

void mcpd_buf_init(struct mcpd_buf *b, size_t max)
{
    b->p = NULL;
    b->len = 0;
    b->alloc = 0;
    b->max = max;
}

void mcpd_buf_dispose(struct mcpd_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->alloc = 0;
}

void mcpd_buf_reset(struct mcpd_buf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

int mcpd_buf_reserve(struct mcpd_buf *b, size_t extra)
{
    size_t need, n;
    char *p;

    if (extra > b->max - b->len)
        return MCPD_ETOOBIG;
    need = b->len + extra + 1;
    if (need <= b->alloc)
        return 0;
    n = b->alloc ? b->alloc : 256;
    while (n < need)
        n *= 2;
    if (n > b->max + 1)
        n = b->max + 1;
    p = realloc(b->p, n);
    if (p == NULL)
        return MCPD_ENOMEM;
    b->p = p;
    b->alloc = n;
    return 0;
}

int mcpd__buf_append_slow(struct mcpd_buf *b, const void *data, size_t len)
{
    int r = mcpd_buf_reserve(b, len);
    if (r != 0)
        return r;
    if (len)
        memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
    return 0;
}

int mcpd_buf_appendf(struct mcpd_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n, r;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return MCPD_EPROTO;
    if ((r = mcpd_buf_reserve(b, (size_t)n)) != 0)
        return r;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void mcpd_buf_consume(struct mcpd_buf *b, size_t n)
{
    if (n >= b->len) {
        mcpd_buf_reset(b);
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
    b->p[b->len] = '\0';
}

char *mcpd_buf_steal(struct mcpd_buf *b, size_t *len)
{
    char *p = b->p;
    if (len)
        *len = b->len;
    b->p = NULL;
    b->len = b->alloc = 0;
    return p;
}
