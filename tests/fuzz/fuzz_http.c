/*
 * fuzz_http.c - libFuzzer target for the HTTP request path of
 * mcpd/net/http_server.c: llhttp plus mcpd's own handling (URL, header and
 * body capture into capped buffers, limits and their 413/414/431 answers,
 * pipelining with the parser paused while a request is handled, keep-alive,
 * streamed answers, deadline expiry, aborts).
 *
 * The server file is included (STYLE.md 2.11 allows it for tests) so the
 * target reaches its static input path: each input gets a connection over
 * one end of a socketpair, built as on_connection() builds one, and its
 * bytes go straight into on_read() in slices. Answers are written to the
 * socketpair for real and drained from the other end.
 *
 * Input: one flags byte, then the bytes the client sends.
 *   bits 0-2  slice size: whole input, 1, 2, 3, 7, 16, 64, 512 bytes
 *   bit 3     fire the connection's deadline after the input
 *   bit 4     answer deferred ("/a...") requests after each slice
 * The handler picks its behaviour from the second character of the path:
 * "/a" deferred answer, "/h" never answered (aborted at close), "/s" a
 * chunked stream, "/c" an answer that closes, anything else echoes.
 */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../mcpd/net/http_server.c"
#include "fuzz.h"

#define FZ_MAX_LINE    256
#define FZ_MAX_HDR     1024
#define FZ_MAX_HEADERS 8
#define FZ_MAX_BODY    2048

static uv_loop_t fz_loop;
static struct mcpd_http_server *fz_srv;
static struct mcpd_http_conn *fz_held; /* a request waiting for its answer */

static void fz_on_abort(struct mcpd_http_conn *c, void *data)
{
    FUZZ_CHECK(c == fz_held);
    fz_held = NULL;
}

/* What the handler is given must respect the limits and point into the conn's buffers. */
static void fz_check_request(struct mcpd_http_conn *c, const struct mcpd_http_request *req)
{
    const char *lo = c->hdr.p, *hi = c->hdr.p + c->hdr.len;

    FUZZ_CHECK(c->magic == CONN_MAGIC);
    FUZZ_CHECK(c->state == ST_HANDLING);
    FUZZ_CHECK(req->method != NULL && req->path != NULL && req->query != NULL);
    FUZZ_CHECK(strlen(req->path) <= FZ_MAX_LINE);
    FUZZ_CHECK(req->path >= lo && req->path < hi);
    FUZZ_CHECK(req->nheaders <= FZ_MAX_HEADERS);
    FUZZ_CHECK(c->hdr.len <= FZ_MAX_HDR + FZ_MAX_LINE);
    for (unsigned i = 0; i < req->nheaders; i++) {
        const struct mcpd_http_header *h = &req->headers[i];
        FUZZ_CHECK(h->name >= lo && h->name < hi && h->value >= lo && h->value < hi);
        FUZZ_CHECK(h->name + strlen(h->name) < hi && h->value + strlen(h->value) < hi);
        /* lookup finds the first header of that name, whatever its case */
        FUZZ_CHECK(mcpd_http_header(req, h->name) != NULL);
    }
    FUZZ_CHECK(req->body_len <= FZ_MAX_BODY);
    FUZZ_CHECK(req->body != NULL && req->body[req->body_len] == '\0');
    FUZZ_CHECK(strcmp(req->peer, "fuzz") == 0);
}

static void fz_handler(struct mcpd_http_conn *c, struct mcpd_http_request *req, void *data)
{
    size_t third = req->body_len / 3;

    fz_check_request(c, req);
    FUZZ_CHECK(fz_held == NULL);
    switch (req->path[0] == '/' ? req->path[1] : '\0') {
    case 'a':
    case 'h':
        /* the abort data marks which held requests fz_answer_held() may answer */
        fz_held = c;
        mcpd_http_conn_on_abort(c, fz_on_abort, req->path[1] == 'a' ? c : NULL);
        break;
    case 's':
        if (mcpd_http_stream_begin(c, 200, "text/event-stream", "X-Fuzz: 1\r\n") != 0)
            break;
        mcpd_http_stream_write(c, req->body, third);
        mcpd_http_stream_event(c, NULL, "message", req->body + third, third);
        mcpd_http_stream_write(c, req->body + 2 * third, req->body_len - 2 * third);
        mcpd_http_stream_end(c, req->path[2] != 'c');
        break;
    case 'c':
        mcpd_http_respond(c, 400, "text/plain", "Connection: close\r\n", req->body, req->body_len);
        break;
    default:
        mcpd_http_respond(c, 200, "application/octet-stream", NULL, req->body, req->body_len);
        break;
    }
}

static void fz_init(void)
{
    struct mcpd_http_limits lim = {
        .max_request_line = FZ_MAX_LINE,
        .max_header_bytes = FZ_MAX_HDR,
        .max_headers = FZ_MAX_HEADERS,
        .max_body = FZ_MAX_BODY,
        /* deadlines never expire on their own here; bit 3 fires them */
        .header_timeout_ms = 600000,
        .body_timeout_ms = 600000,
        .idle_timeout_ms = 600000,
        .max_connections = 4,
    };

    mcpd_log_level = MCPD_LOG_ERROR;
    FUZZ_CHECK(uv_loop_init(&fz_loop) == 0);
    FUZZ_CHECK(mcpd_http_server_start(&fz_srv, &fz_loop, "127.0.0.1", 0, &lim, fz_handler, NULL) ==
               0);
}

/* A connection on `fd`, set up as on_connection() sets up an accepted one. */
static struct mcpd_http_conn *fz_conn_new(int fd)
{
    struct mcpd_http_server *srv = fz_srv;
    struct mcpd_http_conn *c = calloc(1, sizeof(*c));

    FUZZ_CHECK(c != NULL);
    c->magic = CONN_MAGIC;
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles_open = 2;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    FUZZ_CHECK(uv_tcp_open(&c->tcp, fd) == 0);
    snprintf(c->peer, sizeof(c->peer), "fuzz");
    mcpd_buf_init(&c->in, srv->lim.max_header_bytes + srv->lim.max_request_line +
                              srv->lim.max_body + 65536);
    mcpd_buf_init(&c->hdr, srv->lim.max_header_bytes + srv->lim.max_request_line);
    mcpd_buf_init(&c->body, srv->lim.max_body);
    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    c->parser.data = c;
    arm(c, srv->lim.header_timeout_ms);
    return c;
}

/* Reads and drops what the server wrote, so its writes never block. */
static void fz_drain(int fd)
{
    char sink[16384];
    while (read(fd, sink, sizeof(sink)) > 0)
        ;
}

/* Answers a deferred request; pipelined requests behind it then run. */
static void fz_answer_held(void)
{
    for (int guard = 0; guard < 64 && fz_held && fz_held->abort_data; guard++) {
        struct mcpd_http_conn *c = fz_held;
        fz_held = NULL;
        mcpd_http_conn_on_abort(c, NULL, NULL);
        mcpd_http_respond(c, 200, "text/plain", NULL, "late", 4);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t slices[] = { 0, 1, 2, 3, 7, 16, 64, 512 };
    static bool ready;
    struct mcpd_http_conn *c;
    size_t slice, off;
    unsigned flags;
    int sv[2];

    if (!ready) {
        fz_init();
        ready = true;
    }
    if (size == 0)
        return 0;
    flags = data[0];
    data++;
    size--;
    slice = slices[flags & 7] ? slices[flags & 7] : (size ? size : 1);

    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    FUZZ_CHECK(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0);
    c = fz_conn_new(sv[0]);
    fz_held = NULL;

    for (off = 0; off < size && c->state != ST_CLOSED; off += slice) {
        size_t n = size - off < slice ? size - off : slice;
        uv_buf_t b = uv_buf_init((char *)data + off, (unsigned)n);
        on_read((uv_stream_t *)&c->tcp, (ssize_t)n, &b);
        if (c->state != ST_CLOSED && (flags & 0x10))
            fz_answer_held();
        FUZZ_CHECK(c->in.len <= c->in.max);
        fz_drain(sv[1]);
    }
    if (c->state != ST_CLOSED && (flags & 0x08))
        on_timer(&c->timer);
    if (c->state != ST_CLOSED) {
        /* the client goes away: a held request is aborted */
        uv_buf_t none = uv_buf_init(NULL, 0);
        on_read((uv_stream_t *)&c->tcp, UV_EOF, &none);
    }
    FUZZ_CHECK(c->state == ST_CLOSED);
    FUZZ_CHECK(fz_held == NULL);
    fz_drain(sv[1]);
    /* close callbacks (and cancelled writes) free the connection */
    for (int i = 0; i < 3; i++)
        uv_run(&fz_loop, UV_RUN_NOWAIT);
    FUZZ_CHECK(fz_srv->conns == NULL && fz_srv->nconns == 0);
    close(sv[1]);
    return 0;
}
