/* lines.c - newline framing over libuv streams (see lines.h). */
#include "lines.h"

#include <stdlib.h>
#include <string.h>

#include "../error.h"

void mcpd_line_reader_init(struct mcpd_line_reader *lr, size_t max,
                           void (*on_line)(void *, const char *, size_t),
                           void (*on_overflow)(void *), void *arg)
{
    mcpd_buf_init(&lr->buf, max);
    lr->skipping = false;
    lr->on_line = on_line;
    lr->on_overflow = on_overflow;
    lr->arg = arg;
}

void mcpd_line_reader_dispose(struct mcpd_line_reader *lr)
{
    mcpd_buf_dispose(&lr->buf);
}

void mcpd_line_reader_alloc(struct mcpd_line_reader *lr, uv_buf_t *buf)
{
    if (mcpd_buf_reserve(&lr->buf, 65536) != 0 && mcpd_buf_reserve(&lr->buf, 1) != 0) {
        *buf = uv_buf_init(NULL, 0); /* full: the read callback sees UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init(lr->buf.p + lr->buf.len, (unsigned)(lr->buf.alloc - lr->buf.len - 1));
}

void mcpd_line_reader_feed(struct mcpd_line_reader *lr, ssize_t nread, const bool *stop)
{
    size_t start = 0;
    char *nl;

    if (nread == UV_ENOBUFS) {
        mcpd_buf_reset(&lr->buf);
        if (!lr->skipping && lr->on_overflow)
            lr->on_overflow(lr->arg);
        lr->skipping = true;
        return;
    }
    if (nread <= 0)
        return;
    lr->buf.len += (size_t)nread;
    lr->buf.p[lr->buf.len] = '\0';
    while ((nl = memchr(lr->buf.p + start, '\n', lr->buf.len - start)) != NULL) {
        size_t end = (size_t)(nl - lr->buf.p), len = end - start;
        const char *line = lr->buf.p + start;
        start = end + 1;
        if (lr->skipping) {
            lr->skipping = false;
            continue;
        }
        while (len && (line[len - 1] == '\r'))
            len--;
        if (len)
            lr->on_line(lr->arg, line, len);
        if (stop && *stop)
            return;
    }
    if (lr->skipping)
        start = lr->buf.len;
    mcpd_buf_consume(&lr->buf, start);
}

struct line_write {
    uv_write_t req;
    char data[];
};

static void on_written(uv_write_t *req, int status)
{
    free(req);
}

int mcpd_write_line(uv_stream_t *s, const char *data, size_t len, size_t max_queue)
{
    uv_buf_t b[2] = { uv_buf_init((char *)data, (unsigned)len), uv_buf_init("\n", 1) };
    size_t done = 0, total = len + 1;
    struct line_write *w;
    int r;

    if (uv_stream_get_write_queue_size(s) == 0) {
        r = uv_try_write(s, b, 2);
        if (r < 0 && r != UV_EAGAIN)
            return r;
        done = r > 0 ? (size_t)r : 0;
        if (done == total)
            return 0;
    } else if (uv_stream_get_write_queue_size(s) > max_queue) {
        return MCPD_EBUSY;
    }
    w = malloc(sizeof(*w) + total - done);
    if (w == NULL)
        return MCPD_ENOMEM;
    if (done < len)
        memcpy(w->data, data + done, len - done);
    w->data[total - done - 1] = '\n';
    uv_buf_t rest = uv_buf_init(w->data, (unsigned)(total - done));
    if ((r = uv_write(&w->req, s, &rest, 1, on_written)) != 0)
        free(w);
    return r;
}
