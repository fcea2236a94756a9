/*
 * http_server.c - HTTP/1.1 server connections on libuv + llhttp.
 *
 * A connection moves through these states:
 *
 *   READING --(message complete: parser paused, handler called)--> HANDLING
 *   HANDLING --(http_respond / stream_end)--> READING (keep-alive) | closed
 *   HANDLING --(stream_begin)--> STREAMING --(stream_end)--> READING | closed
 *   any --(peer EOF, error, deadline, server close)--> closed (abort cb first)
 *
 * Input is always read (so a disconnecting client is noticed while its call
 * is in flight) and kept in `in`, capped; llhttp runs over it only in
 * READING. Header names/values and the URL are copied into one capped
 * buffer as NUL-terminated strings; the body into another. Writes try
 * uv_try_write first and queue only what the socket did not take.
 */
#include "http_server.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <llhttp.h>

#include "../error.h"
#include "../limits.h"
#include "../log.h"
#include "tls.h"

#define CONN_MAGIC 0x48545450u

enum conn_state { ST_READING, ST_HANDLING, ST_STREAMING, ST_CLOSED };

struct mcpd_http_server {
    uv_tcp_t listener;
    uv_loop_t *loop;
    struct mcpd_http_limits lim;
    mcpd_http_handler handler;
    void *data;
    struct mcpd_http_conn *conns; /* doubly linked */
    unsigned nconns;
    unsigned nclosing; /* connections whose handles are still closing */
    int port;
    bool accepting, closing, listener_closed;
    struct mcpd_tls_ctx *tls; /* borrowed; every accepted connection is TLS when set */
};

struct mcpd_http_conn {
    unsigned magic;
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct mcpd_http_server *srv;
    struct mcpd_http_conn *prev, *next;
    llhttp_t parser;
    enum conn_state state;
    int handles_open;
    bool in_parse, close_after_write, request_started, field_open, value_open, url_open;
    int error_status;         /* response to send when the parser stops on a limit */
    const char *error_reason; /* mcpd's own reason (llhttp may replace its copy) */
    struct mcpd_buf in;       /* received, not yet parsed */
    struct mcpd_buf hdr;      /* url\0 name\0 value\0 ... */
    struct mcpd_buf body;
    size_t url_len;
    unsigned nheaders;
    size_t name_off[MCPD_MAX_HEADERS + 1], value_off[MCPD_MAX_HEADERS + 1];
    struct mcpd_http_header headers[MCPD_MAX_HEADERS];
    struct mcpd_http_request req;
    mcpd_http_abort_cb abort_cb;
    void *abort_data;
    struct mcpd_tls *tls; /* owned; NULL on a plaintext listener */
    bool hs_deadline;     /* TLS: the accept-time deadline covers handshake + first headers */
    char peer[64];
};

struct write_req {
    uv_write_t req;
    size_t len;
    char data[];
};

static llhttp_settings_t parser_settings;
static void conn_close(struct mcpd_http_conn *c);
static void process_input(struct mcpd_http_conn *c);

static const char *status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

/* ---- timers ------------------------------------------------------------ */

static void on_timer(uv_timer_t *t)
{
    struct mcpd_http_conn *c = t->data;
    if (c->state == ST_READING && c->request_started && c->error_status == 0) {
        LOG_DEBUG("http", "peer=%s request deadline passed", c->peer);
        c->close_after_write = true; /* adds Connection: close */
        c->state = ST_HANDLING;
        mcpd_http_respond(c, 408, "text/plain", NULL, "request timeout\n", 16);
        if (c->tcp.write_queue_size == 0)
            conn_close(c);
        return;
    }
    conn_close(c);
}

static void arm(struct mcpd_http_conn *c, unsigned ms)
{
    if (ms)
        uv_timer_start(&c->timer, on_timer, ms, 0);
    else
        uv_timer_stop(&c->timer);
}

/* ---- writes ------------------------------------------------------------ */

static void on_write_done(uv_write_t *req, int status)
{
    struct write_req *wr = (struct write_req *)req;
    struct mcpd_http_conn *c = req->handle->data;
    free(wr);
    if (c->state == ST_CLOSED)
        return;
    if (status < 0 || (c->close_after_write && c->tcp.write_queue_size == 0))
        conn_close(c);
}

static int conn_write_raw(struct mcpd_http_conn *c, uv_buf_t *bufs, unsigned n)
{
    size_t total = 0, done = 0, off = 0;
    struct write_req *wr;
    int r;

    if (c->state == ST_CLOSED)
        return MCPD_ECLOSED;
    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    if (c->tcp.write_queue_size == 0) {
        r = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
        if (r < 0 && r != UV_EAGAIN) {
            conn_close(c);
            return r;
        }
        done = r > 0 ? (size_t)r : 0;
        if (done == total) {
            if (c->close_after_write)
                conn_close(c);
            return 0;
        }
    }
    wr = malloc(sizeof(*wr) + (total - done));
    if (wr == NULL) {
        conn_close(c);
        return MCPD_ENOMEM;
    }
    wr->len = total - done;
    for (unsigned i = 0; i < n; i++) {
        size_t l = bufs[i].len;
        if (done >= l) {
            done -= l;
            continue;
        }
        memcpy(wr->data + off, bufs[i].base + done, l - done);
        off += l - done;
        done = 0;
    }
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)wr->len);
    r = uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_write_done);
    if (r < 0) {
        free(wr);
        conn_close(c);
    }
    return r;
}

/*
 * Writes out whatever ciphertext the TLS engine holds (handshake records,
 * alerts, data). *wrote tells whether there was any: conn_write_raw() closes
 * a close_after_write connection once everything is out, like a plain write.
 */
static int flush_tls(struct mcpd_http_conn *c, bool *wrote)
{
    struct mcpd_buf out;
    int r = 0;

    *wrote = false;
    mcpd_buf_init(&out, MCPD_TLS_MAX_OUTPUT);
    while (r == 0 && c->state != ST_CLOSED && mcpd_tls_take_output(c->tls, &out) > 0) {
        uv_buf_t b = uv_buf_init(out.p, (unsigned)out.len);
        *wrote = true;
        r = conn_write_raw(c, &b, 1);
        mcpd_buf_reset(&out);
    }
    mcpd_buf_dispose(&out);
    return r;
}

/* Plaintext out: straight to the socket, or through the TLS engine. */
static int conn_write(struct mcpd_http_conn *c, uv_buf_t *bufs, unsigned n)
{
    if (c->tls == NULL)
        return conn_write_raw(c, bufs, n);
    if (c->state == ST_CLOSED)
        return MCPD_ECLOSED;
    for (unsigned i = 0; i < n; i++) {
        int r = mcpd_tls_write(c->tls, bufs[i].base, bufs[i].len);
        if (r != 0) {
            LOG_DEBUG("http", "peer=%s tls: %s", c->peer, mcpd_tls_error(c->tls));
            conn_close(c);
            return r;
        }
    }
    bool wrote;
    int r = flush_tls(c, &wrote);
    /* nothing to send (an empty write): close now if asked to, as a plain write would */
    if (r == 0 && !wrote && c->state != ST_CLOSED && c->close_after_write &&
        c->tcp.write_queue_size == 0)
        conn_close(c);
    return r;
}

/* ---- close ------------------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    struct mcpd_http_conn *c = h->data;
    struct mcpd_http_server *srv = c->srv;
    if (--c->handles_open > 0)
        return;
    mcpd_buf_dispose(&c->in);
    mcpd_buf_dispose(&c->hdr);
    mcpd_buf_dispose(&c->body);
    mcpd_tls_free(c->tls);
    c->magic = 0;
    free(c);
    srv->nclosing--;
    if (srv->closing && srv->nconns == 0 && srv->nclosing == 0 && srv->listener_closed)
        free(srv);
}

static void conn_close(struct mcpd_http_conn *c)
{
    struct mcpd_http_server *srv = c->srv;
    if (c->state == ST_CLOSED)
        return;
    c->state = ST_CLOSED;
    if (c->abort_cb) {
        mcpd_http_abort_cb cb = c->abort_cb;
        c->abort_cb = NULL;
        cb(c, c->abort_data);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    srv->nclosing++;
    if (c->tls && mcpd_tls_handshake_done(c->tls)) { /* best effort close_notify */
        struct mcpd_buf out;
        mcpd_buf_init(&out, 4096);
        mcpd_tls_close_notify(c->tls);
        mcpd_tls_take_output(c->tls, &out);
        if (out.len && c->tcp.write_queue_size == 0) {
            uv_buf_t b = uv_buf_init(out.p, (unsigned)out.len);
            uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        }
        mcpd_buf_dispose(&out);
    }
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

/* ---- llhttp callbacks: they only append to capped buffers ---------------- */

static int fail(struct mcpd_http_conn *c, int status, const char *why)
{
    c->error_status = status;
    c->error_reason = why;
    llhttp_set_error_reason(&c->parser, why);
    return HPE_USER;
}

static int on_message_begin(llhttp_t *p)
{
    struct mcpd_http_conn *c = p->data;
    mcpd_buf_reset(&c->hdr);
    mcpd_buf_reset(&c->body);
    c->url_len = 0;
    c->nheaders = 0;
    c->error_reason = NULL;
    c->field_open = c->value_open = c->url_open = false;
    c->request_started = true;
    if (!c->hs_deadline)
        arm(c, c->srv->lim.header_timeout_ms);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct mcpd_http_conn *c = p->data;
    c->url_len += len;
    if (c->url_len > c->srv->lim.max_request_line)
        return fail(c, 414, "request line too long");
    c->url_open = true;
    return mcpd_buf_append(&c->hdr, at, len) == 0 ? 0 : fail(c, 431, "headers too large");
}

static int on_url_complete(llhttp_t *p)
{
    struct mcpd_http_conn *c = p->data;
    c->url_open = false;
    return mcpd_buf_append(&c->hdr, "", 1) == 0 ? 0 : fail(c, 431, "headers too large");
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct mcpd_http_conn *c = p->data;
    if (!c->field_open) {
        if (c->nheaders >= c->srv->lim.max_headers)
            return fail(c, 431, "too many headers");
        c->name_off[c->nheaders] = c->hdr.len;
        c->field_open = true;
    }
    return mcpd_buf_append(&c->hdr, at, len) == 0 ? 0 : fail(c, 431, "headers too large");
}

/* RFC 9110 token characters: a header name is nothing else (RFC 9112 5.1). */
static bool is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int on_header_field_complete(llhttp_t *p)
{
    struct mcpd_http_conn *c = p->data;
    c->field_open = false;
    if (c->hdr.len == c->name_off[c->nheaders])
        return fail(c, 400, "empty header name");
    for (size_t i = c->name_off[c->nheaders]; i < c->hdr.len; i++)
        if (!is_tchar(c->hdr.p[i]))
            return fail(c, 400, "invalid character in a header name");
    if (mcpd_buf_append(&c->hdr, "", 1) != 0)
        return fail(c, 431, "headers too large");
    c->value_off[c->nheaders] = c->hdr.len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct mcpd_http_conn *c = p->data;
    c->value_open = true;
    return mcpd_buf_append(&c->hdr, at, len) == 0 ? 0 : fail(c, 431, "headers too large");
}

static int on_header_value_complete(llhttp_t *p)
{
    struct mcpd_http_conn *c = p->data;
    if (!c->value_open)
        c->value_off[c->nheaders] = c->hdr.len; /* empty value */
    c->value_open = false;
    /* field values exclude trailing whitespace (RFC 9110 5.5) */
    while (c->hdr.len > c->value_off[c->nheaders] &&
           (c->hdr.p[c->hdr.len - 1] == ' ' || c->hdr.p[c->hdr.len - 1] == '\t'))
        c->hdr.len--;
    if (mcpd_buf_append(&c->hdr, "", 1) != 0)
        return fail(c, 431, "headers too large");
    c->nheaders++;
    return 0;
}

static bool expects_continue(struct mcpd_http_conn *c)
{
    for (unsigned i = 0; i < c->nheaders; i++)
        if (strcasecmp(c->hdr.p + c->name_off[i], "expect") == 0 &&
            strcasecmp(c->hdr.p + c->value_off[i], "100-continue") == 0)
            return true;
    return false;
}

static int on_headers_complete(llhttp_t *p)
{
    struct mcpd_http_conn *c = p->data;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->srv->lim.max_body)
        return fail(c, 413, "body too large");
    if (expects_continue(c)) {
        static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init(cont, sizeof(cont) - 1);
        conn_write(c, &b, 1);
    }
    arm(c, c->srv->lim.body_timeout_ms);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct mcpd_http_conn *c = p->data;
    return mcpd_buf_append(&c->body, at, len) == 0 ? 0 : fail(c, 413, "body too large");
}

static int on_message_complete(llhttp_t *p)
{
    struct mcpd_http_conn *c = p->data;
    arm(c, 0);
    c->request_started = false;
    c->hs_deadline = false;
    c->state = ST_HANDLING;
    return HPE_PAUSED;
}

/* ---- dispatch ---------------------------------------------------------- */

static void dispatch(struct mcpd_http_conn *c)
{
    struct mcpd_http_request *r = &c->req;
    char *url = c->hdr.p, *q;

    if (mcpd_buf_append(&c->body, "", 0) != 0) { /* ensure a NUL-terminated body */
        c->close_after_write = true;
        mcpd_http_respond(c, 500, "text/plain", NULL, "", 0);
        return;
    }
    for (unsigned i = 0; i < c->nheaders; i++) {
        c->headers[i].name = c->hdr.p + c->name_off[i];
        c->headers[i].value = c->hdr.p + c->value_off[i];
    }
    q = strchr(url, '?');
    if (q)
        *q++ = '\0';
    r->method = llhttp_method_name(c->parser.method);
    r->path = url;
    r->query = q ? q : "";
    r->headers = c->headers;
    r->nheaders = c->nheaders;
    r->body = c->body.p ? c->body.p : "";
    r->body_len = c->body.len;
    r->keep_alive = llhttp_should_keep_alive(&c->parser);
    r->peer = c->peer;
    if (!r->keep_alive)
        c->close_after_write = true;
    c->srv->handler(c, r, c->srv->data);
}

static void parse_error(struct mcpd_http_conn *c, llhttp_errno_t err)
{
    int status = c->error_status ? c->error_status : 400;
    const char *why = c->error_reason ? c->error_reason : llhttp_get_error_reason(&c->parser);
    char body[160];
    int n;

    LOG_DEBUG("http", "peer=%s bad request (%d): %s", c->peer, status,
              why ? why : llhttp_errno_name(err));
    n = snprintf(body, sizeof(body), "%s\n", why ? why : "bad request");
    c->state = ST_HANDLING;
    c->close_after_write = true; /* adds Connection: close */
    mcpd_http_respond(c, status, "text/plain", NULL, body, (size_t)(n > 0 ? n : 0));
}

static void process_input(struct mcpd_http_conn *c)
{
    if (c->in_parse)
        return;
    c->in_parse = true;
    while (c->state == ST_READING && c->in.len > 0) {
        llhttp_errno_t err = llhttp_execute(&c->parser, c->in.p, c->in.len);
        if (err == HPE_OK) {
            mcpd_buf_reset(&c->in);
            break;
        }
        /* an upgrade pauses after the request only once it is complete (not CONNECT) */
        if (err != HPE_PAUSED && (err != HPE_PAUSED_UPGRADE || c->state != ST_HANDLING)) {
            parse_error(c, err);
            break;
        }
        mcpd_buf_consume(&c->in, (size_t)(llhttp_get_error_pos(&c->parser) - c->in.p));
        if (err == HPE_PAUSED_UPGRADE) {
            /* not handed over (ws.c): answered normally, then closed */
            c->close_after_write = true;
            llhttp_resume_after_upgrade(&c->parser);
        } else
            llhttp_resume(&c->parser);
        dispatch(c);
    }
    c->in_parse = false;
}

/* ---- reads ------------------------------------------------------------- */

/*
 * Reads land in one buffer shared by every connection (the loop is single
 * threaded and each read is consumed before the next), then move into the
 * connection's own capped `in` buffer, which idle connections give back:
 * an idle keep-alive connection costs no read buffer.
 */
static char read_buf[64 * 1024];

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    *buf = uv_buf_init(read_buf, sizeof(read_buf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct mcpd_http_conn *c = s->data;
    if (nread < 0) {
        if (nread != UV_EOF)
            LOG_DEBUG("http", "peer=%s read: %s", c->peer, uv_strerror((int)nread));
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->tls) {
        size_t before = c->in.len;
        bool wrote, cae = c->close_after_write;
        int r = mcpd_tls_feed(c->tls, buf->base, (size_t)nread, &c->in);
        c->close_after_write = false; /* not a response: no close when these are out */
        flush_tls(c, &wrote);         /* handshake records, alerts, post-handshake messages */
        c->close_after_write = cae;
        if (r != 0 && c->state != ST_CLOSED) {
            if (r == MCPD_ETOOBIG)
                LOG_DEBUG("http", "peer=%s sent more than its input cap; closing", c->peer);
            else if (r != MCPD_ECLOSED)
                LOG_DEBUG("http", "peer=%s tls: %s", c->peer, mcpd_tls_error(c->tls));
            conn_close(c);
        }
        if (c->state == ST_CLOSED || c->in.len == before)
            return;
    } else if (mcpd_buf_append(&c->in, buf->base, (size_t)nread) != 0) {
        LOG_DEBUG("http", "peer=%s sent more than its input cap; closing", c->peer);
        conn_close(c);
        return;
    }
    if (c->state == ST_READING && !c->request_started && !c->hs_deadline)
        arm(c, c->srv->lim.header_timeout_ms);
    process_input(c);
    if (c->state != ST_CLOSED && c->in.len == 0 && c->in.alloc > 4096)
        mcpd_buf_dispose(&c->in);
}

/* ---- accept ------------------------------------------------------------ */

static void on_reject_closed(uv_handle_t *h)
{
    free(h);
}

static void peer_name(struct mcpd_http_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
    }
    snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
}

static void on_connection(uv_stream_t *ls, int status)
{
    struct mcpd_http_server *srv = ls->data;
    struct mcpd_http_conn *c;

    if (status < 0)
        return;
    if (!srv->accepting || srv->nconns >= srv->lim.max_connections) {
        uv_tcp_t *t = malloc(sizeof(*t));
        if (t == NULL)
            return;
        uv_tcp_init(srv->loop, t);
        if (uv_accept(ls, (uv_stream_t *)t) == 0) {
            if (srv->accepting)
                LOG_WARN("http", "connection limit (%u) reached, refusing",
                         srv->lim.max_connections);
            else
                LOG_DEBUG("http", "shutting down: connection refused");
        }
        uv_close((uv_handle_t *)t, on_reject_closed);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
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
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c);
    mcpd_buf_init(&c->in, srv->lim.max_header_bytes + srv->lim.max_request_line +
                              srv->lim.max_body + 65536);
    mcpd_buf_init(&c->hdr, srv->lim.max_header_bytes + srv->lim.max_request_line);
    mcpd_buf_init(&c->body, srv->lim.max_body);
    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    c->parser.data = c;
    if (srv->tls) {
        if (mcpd_tls_new(&c->tls, srv->tls, NULL) != 0) {
            conn_close(c);
            return;
        }
        c->hs_deadline = true;
    }
    arm(c, srv->lim.header_timeout_ms);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

int mcpd_http_server_start(struct mcpd_http_server **out, uv_loop_t *loop, const char *host,
                           int port, const struct mcpd_http_limits *lim, mcpd_http_handler h,
                           void *data)
{
    struct mcpd_http_server *srv;
    struct sockaddr_storage ss;
    int r, len = sizeof(ss);

    *out = NULL;
    llhttp_settings_init(&parser_settings);
    parser_settings.on_message_begin = on_message_begin;
    parser_settings.on_url = on_url;
    parser_settings.on_url_complete = on_url_complete;
    parser_settings.on_header_field = on_header_field;
    parser_settings.on_header_field_complete = on_header_field_complete;
    parser_settings.on_header_value = on_header_value;
    parser_settings.on_header_value_complete = on_header_value_complete;
    parser_settings.on_headers_complete = on_headers_complete;
    parser_settings.on_body = on_body;
    parser_settings.on_message_complete = on_message_complete;

    if (strchr(host, ':'))
        r = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
    else
        r = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
    if (r != 0)
        return r;
    srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return UV_ENOMEM;
    srv->loop = loop;
    srv->lim = *lim;
    srv->handler = h;
    srv->data = data;
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    if ((r = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0)) != 0 ||
        (r = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection)) != 0) {
        srv->closing = true;
        uv_close((uv_handle_t *)&srv->listener, NULL);
        uv_run(loop, UV_RUN_NOWAIT); /* let the close complete before freeing */
        free(srv);
        return r;
    }
    uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len);
    srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
    srv->accepting = true;
    *out = srv;
    return 0;
}

int mcpd_http_server_port(const struct mcpd_http_server *srv)
{
    return srv->port;
}

unsigned mcpd_http_server_connections(const struct mcpd_http_server *srv)
{
    return srv->nconns;
}

void mcpd_http_server_set_tls(struct mcpd_http_server *srv, struct mcpd_tls_ctx *tls)
{
    srv->tls = tls;
}

void mcpd_http_server_stop_accepting(struct mcpd_http_server *srv)
{
    srv->accepting = false;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct mcpd_http_server *srv = h->data;
    srv->listener_closed = true;
    if (srv->nconns == 0 && srv->nclosing == 0)
        free(srv);
}

void mcpd_http_server_close(struct mcpd_http_server *srv)
{
    if (srv == NULL || srv->closing)
        return;
    srv->closing = true;
    srv->accepting = false;
    while (srv->conns)
        conn_close(srv->conns);
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
}

/* ---- requests and responses -------------------------------------------- */

const char *mcpd_http_header(const struct mcpd_http_request *req, const char *name)
{
    for (unsigned i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

void mcpd_http_conn_on_abort(struct mcpd_http_conn *c, mcpd_http_abort_cb cb, void *data)
{
    c->abort_cb = cb;
    c->abort_data = data;
}

/* Back to reading after a response: the next pipelined request may start. */
static void finish_request(struct mcpd_http_conn *c)
{
    c->abort_cb = NULL;
    if (c->state == ST_CLOSED)
        return;
    if (c->body.alloc > 16384)
        mcpd_buf_dispose(&c->body);
    if (c->close_after_write) {
        if (c->tcp.write_queue_size == 0)
            conn_close(c);
        return;
    }
    c->state = ST_READING;
    arm(c, c->in.len ? c->srv->lim.header_timeout_ms : c->srv->lim.idle_timeout_ms);
    if (c->in.len)
        process_input(c);
}

void mcpd_http_respond(struct mcpd_http_conn *c, int status, const char *ctype, const char *extra,
                       const char *body, size_t len)
{
    char head[512];
    int n;
    uv_buf_t bufs[3];
    unsigned nb = 0;

    if (c->state == ST_CLOSED)
        return;
    n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n%s%s%sContent-Length: %zu\r\n%s", status,
                 status_text(status), ctype ? "Content-Type: " : "", ctype ? ctype : "",
                 ctype ? "\r\n" : "", len, c->close_after_write ? "Connection: close\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(head))
        n = 0;
    bufs[nb++] = uv_buf_init(head, (unsigned)n);
    if (extra && *extra)
        bufs[nb++] = uv_buf_init((char *)extra, (unsigned)strlen(extra));
    /* "\r\n" ends the headers; the body follows in the same buffer list */
    static char crlf[] = "\r\n";
    bufs[nb++] = uv_buf_init(crlf, 2);
    if (len) {
        uv_buf_t all[4];
        memcpy(all, bufs, sizeof(bufs[0]) * nb);
        all[nb] = uv_buf_init((char *)body, (unsigned)len);
        /* finish_request must run after the write is queued, not before */
        bool cae = c->close_after_write;
        c->close_after_write = false;
        conn_write(c, all, nb + 1);
        c->close_after_write = cae;
    } else {
        bool cae = c->close_after_write;
        c->close_after_write = false;
        conn_write(c, bufs, nb);
        c->close_after_write = cae;
    }
    finish_request(c);
}

int mcpd_http_stream_begin(struct mcpd_http_conn *c, int status, const char *ctype,
                           const char *extra)
{
    char head[512];
    int n;
    if (c->state != ST_HANDLING)
        return MCPD_ECLOSED;
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nCache-Control: no-cache\r\n"
                 "X-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n%s%s\r\n",
                 status, status_text(status), ctype,
                 c->close_after_write ? "Connection: close\r\n" : "", extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof(head))
        return MCPD_ETOOBIG;
    c->state = ST_STREAMING;
    uv_buf_t b = uv_buf_init(head, (unsigned)n);
    bool cae = c->close_after_write;
    c->close_after_write = false;
    n = conn_write(c, &b, 1);
    c->close_after_write = cae;
    return n;
}

int mcpd_http_stream_write(struct mcpd_http_conn *c, const char *data, size_t len)
{
    char size[24];
    static char crlf[] = "\r\n";
    uv_buf_t b[3];
    int n;
    if (c->state != ST_STREAMING)
        return MCPD_ECLOSED;
    if (len == 0)
        return 0;
    if (c->tcp.write_queue_size > MCPD_WRITE_HIGH_WATER)
        return MCPD_ETOOBIG;
    n = snprintf(size, sizeof(size), "%zx\r\n", len);
    b[0] = uv_buf_init(size, (unsigned)n);
    b[1] = uv_buf_init((char *)data, (unsigned)len);
    b[2] = uv_buf_init(crlf, 2);
    bool cae = c->close_after_write;
    c->close_after_write = false;
    n = conn_write(c, b, 3);
    c->close_after_write = cae;
    return n;
}

int mcpd_http_stream_event(struct mcpd_http_conn *c, const char *id, const char *event,
                           const char *data, size_t len)
{
    char size[24], head[128];
    static char tail[] = "\n\n\r\n";
    uv_buf_t b[4];
    int hn, n;
    if (c->state != ST_STREAMING)
        return MCPD_ECLOSED;
    if (c->tcp.write_queue_size > MCPD_WRITE_HIGH_WATER)
        return MCPD_ETOOBIG;
    hn = snprintf(head, sizeof(head), "%s%s%sevent: %s\ndata: ", id ? "id: " : "", id ? id : "",
                  id ? "\n" : "", event);
    if (hn < 0 || (size_t)hn >= sizeof(head))
        return MCPD_ETOOBIG;
    n = snprintf(size, sizeof(size), "%zx\r\n", (size_t)hn + len + 2);
    b[0] = uv_buf_init(size, (unsigned)n);
    b[1] = uv_buf_init(head, (unsigned)hn);
    b[2] = uv_buf_init((char *)data, (unsigned)len);
    b[3] = uv_buf_init(tail, 4);
    bool cae = c->close_after_write;
    c->close_after_write = false;
    n = conn_write(c, b, 4);
    c->close_after_write = cae;
    return n;
}

void mcpd_http_stream_end(struct mcpd_http_conn *c, bool keep_alive)
{
    static char last[] = "0\r\n\r\n";
    uv_buf_t b = uv_buf_init(last, 5);
    if (c->state != ST_STREAMING)
        return;
    if (!keep_alive)
        c->close_after_write = true;
    bool cae = c->close_after_write;
    c->close_after_write = false;
    conn_write(c, &b, 1);
    c->close_after_write = cae;
    c->state = ST_HANDLING;
    finish_request(c);
}

/* ---- handover (WebSocket upgrade) -------------------------------------- */

int mcpd_http_conn_detach(struct mcpd_http_conn *c, const char *head, size_t len,
                          struct mcpd_http_handover *h)
{
    uv_os_fd_t fd;
    int dupfd, r;

    memset(h, 0, sizeof(*h));
    h->fd = -1;
    mcpd_buf_init(&h->in, c->in.max);
    mcpd_buf_init(&h->out, MCPD_TLS_MAX_OUTPUT);
    if (c->state != ST_HANDLING)
        return MCPD_ECLOSED;
    if (c->tcp.write_queue_size > 0) /* an earlier response is still being written */
        return UV_EBUSY;
    if ((r = uv_fileno((uv_handle_t *)&c->tcp, &fd)) != 0)
        return r;
    dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dupfd < 0)
        return uv_translate_sys_error(errno);
    if (c->tls) {
        r = mcpd_tls_write(c->tls, head, len);
        if (r == 0)
            mcpd_tls_take_output(c->tls, &h->out);
    } else {
        r = mcpd_buf_append(&h->out, head, len);
    }
    if (r != 0) {
        close(dupfd);
        mcpd_buf_dispose(&h->out);
        return r;
    }
    h->fd = dupfd;
    h->loop = c->srv->loop;
    h->tls = c->tls;
    c->tls = NULL;
    mcpd_buf_dispose(&h->in);
    h->in = c->in; /* the bytes received after the request */
    mcpd_buf_init(&c->in, 0);
    snprintf(h->peer, sizeof(h->peer), "%s", c->peer);
    c->abort_cb = NULL;
    conn_close(c);
    return 0;
}
