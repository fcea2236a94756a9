/*
 * http_server.h - an HTTP/1.1 server on libuv and llhttp, shared by the
 * streamable HTTP and (later) legacy SSE transports.
 *
 * One request at a time per connection: when a request is complete the
 * parser pauses and the handler is called; the handler answers exactly once,
 * now or later, with http_respond() or a stream (begin/write/end). Pipelined
 * bytes wait in the connection's input buffer until then. Limits: request
 * line, header bytes and count, body size, header/body/idle deadlines, all
 * from struct mcpd_http_limits (filled from limits.h and config).
 *
 * Lifetime: a connection may go away at any time (peer close, error, server
 * shutdown). If a handler still holds it (it has not finished its response),
 * the abort callback it registered runs first, synchronously, and the
 * handler must drop its pointer. Never call into a connection after that.
 */
#ifndef MCPD_HTTP_SERVER_H
#define MCPD_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "../buf.h"

struct mcpd_http_server;
struct mcpd_http_conn;

struct mcpd_http_limits {
    size_t max_request_line;
    size_t max_header_bytes;
    unsigned max_headers;
    size_t max_body;
    unsigned header_timeout_ms;
    unsigned body_timeout_ms;
    unsigned idle_timeout_ms;
    unsigned max_connections;
};

struct mcpd_http_header {
    const char *name; /* NUL-terminated, as received */
    const char *value;
};

struct mcpd_http_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* NUL-terminated, without the query */
    const char *query;  /* NUL-terminated, "" when absent */
    struct mcpd_http_header *headers;
    unsigned nheaders;
    const char *body; /* NUL-terminated, body_len bytes */
    size_t body_len;
    bool keep_alive;
    const char *peer; /* "ip:port" */
};

/* Called once per complete request. `req` stays valid until the response ends. */
typedef void (*mcpd_http_handler)(struct mcpd_http_conn *c, struct mcpd_http_request *req,
                                  void *data);
typedef void (*mcpd_http_abort_cb)(struct mcpd_http_conn *c, void *data);

/*
 * Binds host:port and starts accepting. Returns 0 or a negative libuv code.
 * *out is owned by the caller until mcpd_http_server_close().
 */
int mcpd_http_server_start(struct mcpd_http_server **out, uv_loop_t *loop, const char *host,
                           int port, const struct mcpd_http_limits *lim, mcpd_http_handler h,
                           void *data);
/* The bound port (useful with port 0). */
int mcpd_http_server_port(const struct mcpd_http_server *srv);
struct mcpd_tls_ctx;
struct mcpd_tls;
/*
 * Makes every connection accepted from now on TLS (https and wss on the
 * same port). ctx is borrowed and must outlive the server. Call right
 * after mcpd_http_server_start(), before the loop runs.
 */
void mcpd_http_server_set_tls(struct mcpd_http_server *srv, struct mcpd_tls_ctx *ctx);
/* Number of open connections. */
unsigned mcpd_http_server_connections(const struct mcpd_http_server *srv);
/* Stops accepting; existing connections continue. */
void mcpd_http_server_stop_accepting(struct mcpd_http_server *srv);
/*
 * Closes every connection (aborting held ones) and the listener; frees the
 * server once every handle is closed. Safe to call once.
 */
void mcpd_http_server_close(struct mcpd_http_server *srv);

/* Returns a header value (case-insensitive name) or NULL. */
const char *mcpd_http_header(const struct mcpd_http_request *req, const char *name);

/* Registers the abort callback for the request in progress. */
void mcpd_http_conn_on_abort(struct mcpd_http_conn *c, mcpd_http_abort_cb cb, void *data);

/*
 * Sends a complete response. `extra` holds further header lines, each ending
 * in "\r\n" (or NULL). The body is copied as needed. Ends the request.
 */
void mcpd_http_respond(struct mcpd_http_conn *c, int status, const char *ctype, const char *extra,
                       const char *body, size_t len);

/* Starts a chunked streaming response (SSE). Returns 0 or a negative code. */
int mcpd_http_stream_begin(struct mcpd_http_conn *c, int status, const char *ctype,
                           const char *extra);
/* Writes one chunk. Returns 0, or MCPD_ETOOBIG when the peer reads too slowly. */
int mcpd_http_stream_write(struct mcpd_http_conn *c, const char *data, size_t len);
/*
 * Writes one SSE event as one chunk: "[id: <id>\n]event: <event>\ndata: <data>\n\n"
 * (`id` may be NULL; `data` must hold no newline, which compact JSON never
 * does). Returns as mcpd_http_stream_write does.
 */
int mcpd_http_stream_event(struct mcpd_http_conn *c, const char *id, const char *event,
                           const char *data, size_t len);

/*
 * Ends the stream. With keep_alive false the connection closes after the
 * write (used for streams that end while the client still waits).
 */
void mcpd_http_stream_end(struct mcpd_http_conn *c, bool keep_alive);

/*
 * Connection handover (the WebSocket upgrade, see ws.c). Inside a handler,
 * mcpd_http_conn_detach() takes the connection out of the server: it is no
 * longer counted, timed or closed by the server, the abort callback is not
 * called, and the handler must not touch `c` again. The caller receives an
 * owned duplicate of the socket (`fd`, close-on-exec), the TLS engine (NULL
 * on a plaintext listener), the plaintext bytes already received after the
 * request (`in`), and `out`: the response head `head` (for example a 101),
 * encrypted when TLS, which the caller must write first. Both buffers are
 * the caller's to dispose. Returns 0; MCPD_ECLOSED when the connection is
 * not handling a request; UV_EBUSY while an earlier response is still being
 * written; or a negative errno code. On failure the connection is unchanged
 * (answer it normally).
 */
struct mcpd_http_handover {
    uv_loop_t *loop;
    int fd;
    struct mcpd_tls *tls;
    struct mcpd_buf in;
    struct mcpd_buf out;
    char peer[64];
};
int mcpd_http_conn_detach(struct mcpd_http_conn *c, const char *head, size_t len,
                          struct mcpd_http_handover *h);

#endif
