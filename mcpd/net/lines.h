/*
 * lines.h - newline-delimited framing over libuv streams, shared by the
 * stdio transport and the stdio upstream adapter (and child stderr).
 *
 * The reader keeps at most `max` bytes of an unfinished line; a longer line
 * is reported once through on_overflow and skipped up to its newline.
 */
#ifndef MCPD_LINES_H
#define MCPD_LINES_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "../buf.h"

struct mcpd_line_reader {
    struct mcpd_buf buf;
    bool skipping;
    void (*on_line)(void *arg, const char *line, size_t len); /* without '\n' or '\r' */
    void (*on_overflow)(void *arg);
    void *arg;
};

void mcpd_line_reader_init(struct mcpd_line_reader *lr, size_t max,
                           void (*on_line)(void *, const char *, size_t),
                           void (*on_overflow)(void *), void *arg);
void mcpd_line_reader_dispose(struct mcpd_line_reader *lr);
/* For uv_read_start's alloc callback. */
void mcpd_line_reader_alloc(struct mcpd_line_reader *lr, uv_buf_t *buf);
/*
 * For the read callback with nread > 0 or UV_ENOBUFS: frames and delivers
 * lines. Returns false if `stop` became true during a callback (the owner
 * is closing; the reader must not be touched further).
 */
void mcpd_line_reader_feed(struct mcpd_line_reader *lr, ssize_t nread, const bool *stop);

/*
 * Writes data + "\n" to a stream: tries a direct write, queues the rest.
 * Returns 0, MCPD_EBUSY when more than `max_queue` bytes already wait (the
 * peer does not read), or a libuv error.
 */
int mcpd_write_line(uv_stream_t *s, const char *data, size_t len, size_t max_queue);

#endif
