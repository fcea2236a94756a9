/*
 * ws.c - WebSocket connections on libuv (framing by wslay's event API),
 * plain or TLS (see ws.h).
 *
 * One struct serves both roles. Its states:
 *
 *   client: RESOLVING -> CONNECTING -> UPGRADING -> OPEN
 *   server: OPEN (created from an HTTP connection handed over by
 *           mcpd_http_conn_detach() after the 101 is queued)
 *   OPEN --(close frame sent or received)--> CLOSING --(exchange done,
 *           writes flushed, or the close timer)--> DONE
 *   any --(transport error, EOF, abort, timeout)--> DONE
 *
 * DONE is entered through ws_finish() only (one door): it records the code
 * reported to on_close and closes the handles; on_close runs from the last
 * close callback and the struct is freed right after it, so on_close is
 * never called from inside a caller's own call into this file.
 *
 * I/O: ciphertext read from the socket goes through the TLS engine (when
 * there is one) into `in` (plaintext); wslay pulls from `in` through the
 * recv callback. wslay's output is collected in `pend` by the send callback
 * and written in one go after each wslay_event_send() (encrypted first when
 * TLS). Writes try uv_try_write first and queue only what the socket did not
 * take; the queue (uv's write_queue_size plus wslay's queued messages) is
 * capped by MCPD_WS_MAX_SEND_QUEUE.
 */
#include "ws.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <llhttp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <wslay/wslay.h>

#include "../buf.h"
#include "../error.h"
#include "../limits.h"
#include "../log.h"
#include "http_server.h"
#include "tls.h"

#define WS_MAGIC 0x57534f43u
#define WS_GUID  "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum ws_state { WS_RESOLVING, WS_CONNECTING, WS_UPGRADING, WS_OPEN, WS_CLOSING, WS_DONE };

struct mcpd_ws {
    unsigned magic;
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_getaddrinfo_t gai;
    uv_connect_t connect;
    struct mcpd_tls_ctx *tls_ctx; /* client: borrowed */
    struct mcpd_tls *tls;         /* owned */
    wslay_event_context_ptr ctx;
    struct mcpd_ws_callbacks cb;
    void *data;
    size_t max_message;
    enum ws_state state;
    bool server, tcp_init, in_recv, we_first, peer_first, close_when_flushed;
    int handles; /* open handles + a pending getaddrinfo; freed at 0 */
    int code, http_status;
    char reason[160];
    struct mcpd_buf in;   /* plaintext received, not yet framed */
    struct mcpd_buf pend; /* plaintext framed by wslay, not yet written */
    struct mcpd_ws_handshake *hs;
    char *host, *port, *path;
    struct mcpd_buf req; /* the client's upgrade request */
    char peer[64];
    char peer_reason[128]; /* the text of the peer's close frame, printable ASCII only */
};

struct ws_write {
    uv_write_t req;
    char data[];
};

static void ws_finish(struct mcpd_ws *ws, int code, int http_status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void after_io(struct mcpd_ws *ws);
static void process(struct mcpd_ws *ws);

/* ---- helpers ----------------------------------------------------------------------------- */

/* base64(SHA-1(key + GUID)) into out (>= 29 bytes). */
static void accept_for(const char *key, char out[32])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char buf[128];
    int n = snprintf(buf, sizeof(buf), "%s%s", key, WS_GUID);
    EVP_Digest(buf, (size_t)(n > 0 ? n : 0), md, &mdlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

/* Does a comma-separated header value hold `token` (case-insensitive)? */
static bool has_token(const char *v, const char *token)
{
    size_t tl = strlen(token);
    while (v && *v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *e = v;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - v) == tl && strncasecmp(v, token, tl) == 0)
            return true;
        v = e;
    }
    return false;
}

static bool valid_key(const char *k)
{
    if (k == NULL || strlen(k) != 24 || strcmp(k + 22, "==") != 0)
        return false;
    for (int i = 0; i < 22; i++)
        if (!((k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= 'a' && k[i] <= 'z') ||
              (k[i] >= '0' && k[i] <= '9') || k[i] == '+' || k[i] == '/'))
            return false;
    return true;
}

/* ---- the client's upgrade-response parser (sans I/O) ------------------------------------- */

struct mcpd_ws_handshake {
    llhttp_t parser;
    llhttp_settings_t settings;
    char expect[32];
    size_t total;
    int status;
    bool done;
    struct mcpd_buf hdr; /* name\0value\0 ... */
    char err[160];
};

static int hs_append(llhttp_t *p, const char *at, size_t len)
{
    struct mcpd_ws_handshake *h = p->data;
    return mcpd_buf_append(&h->hdr, at, len) == 0 ? 0 : HPE_USER;
}

static int hs_end_token(llhttp_t *p)
{
    return hs_append(p, "", 1);
}

static int hs_headers_complete(llhttp_t *p)
{
    struct mcpd_ws_handshake *h = p->data;
    h->status = p->status_code;
    h->done = true;
    return HPE_PAUSED;
}

int mcpd_ws_handshake_new(struct mcpd_ws_handshake **out, const char *key)
{
    struct mcpd_ws_handshake *h = calloc(1, sizeof(*h));
    *out = NULL;
    if (h == NULL)
        return MCPD_ENOMEM;
    llhttp_settings_init(&h->settings);
    h->settings.on_header_field = hs_append;
    h->settings.on_header_field_complete = hs_end_token;
    h->settings.on_header_value = hs_append;
    h->settings.on_header_value_complete = hs_end_token;
    h->settings.on_headers_complete = hs_headers_complete;
    llhttp_init(&h->parser, HTTP_RESPONSE, &h->settings);
    h->parser.data = h;
    mcpd_buf_init(&h->hdr, MCPD_WS_MAX_HANDSHAKE);
    accept_for(key, h->expect);
    *out = h;
    return 0;
}

void mcpd_ws_handshake_free(struct mcpd_ws_handshake *h)
{
    if (h == NULL)
        return;
    mcpd_buf_dispose(&h->hdr);
    free(h);
}

static const char *hs_header(struct mcpd_ws_handshake *h, const char *name)
{
    size_t off = 0;
    while (off < h->hdr.len) {
        const char *n = h->hdr.p + off;
        size_t nl = strlen(n);
        if (off + nl + 1 >= h->hdr.len)
            break;
        const char *v = n + nl + 1;
        if (strcasecmp(n, name) == 0)
            return v;
        off += nl + 1 + strlen(v) + 1;
    }
    return NULL;
}

static int hs_verdict(struct mcpd_ws_handshake *h)
{
    const char *v;
    if (h->status != 101) {
        snprintf(h->err, sizeof(h->err), "upgrade refused: HTTP %d", h->status);
        return MCPD_EPROTO;
    }
    if (!has_token(hs_header(h, "upgrade"), "websocket")) {
        snprintf(h->err, sizeof(h->err), "101 without Upgrade: websocket");
        return MCPD_EPROTO;
    }
    if (!has_token(hs_header(h, "connection"), "upgrade")) {
        snprintf(h->err, sizeof(h->err), "101 without Connection: upgrade");
        return MCPD_EPROTO;
    }
    v = hs_header(h, "sec-websocket-accept");
    if (v == NULL || strcmp(v, h->expect) != 0) {
        snprintf(h->err, sizeof(h->err), "wrong Sec-WebSocket-Accept");
        return MCPD_EPROTO;
    }
    if (hs_header(h, "sec-websocket-extensions") || hs_header(h, "sec-websocket-protocol")) {
        snprintf(h->err, sizeof(h->err), "server chose an extension or subprotocol not offered");
        return MCPD_EPROTO;
    }
    return 1;
}

int mcpd_ws_handshake_feed(struct mcpd_ws_handshake *h, const char *data, size_t len, size_t *used)
{
    llhttp_errno_t e;
    *used = 0;
    if (h->done)
        return h->err[0] ? MCPD_EPROTO : 1;
    e = llhttp_execute(&h->parser, data, len);
    if (h->done) {
        *used = (size_t)(llhttp_get_error_pos(&h->parser) - data);
        h->total += *used;
        if (h->total > MCPD_WS_MAX_HANDSHAKE) {
            snprintf(h->err, sizeof(h->err), "upgrade response head too large");
            return MCPD_ETOOBIG;
        }
        return hs_verdict(h);
    }
    if (e != HPE_OK) {
        if (h->hdr.len >= h->hdr.max || e == HPE_USER) {
            snprintf(h->err, sizeof(h->err), "upgrade response head too large");
            return MCPD_ETOOBIG;
        }
        snprintf(h->err, sizeof(h->err), "bad upgrade response: %s", llhttp_errno_name(e));
        return MCPD_EPROTO;
    }
    *used = len;
    h->total += len;
    if (h->total > MCPD_WS_MAX_HANDSHAKE) {
        snprintf(h->err, sizeof(h->err), "upgrade response head too large");
        return MCPD_ETOOBIG;
    }
    return 0;
}

int mcpd_ws_handshake_status(const struct mcpd_ws_handshake *h)
{
    return h->status;
}

const char *mcpd_ws_handshake_error(const struct mcpd_ws_handshake *h)
{
    return h->err[0] ? h->err : "incomplete";
}

/* ---- lifetime ---------------------------------------------------------------------------- */

static void release(struct mcpd_ws *ws)
{
    if (--ws->handles > 0)
        return;
    if (ws->cb.on_close)
        ws->cb.on_close(ws, ws->code, ws->http_status, ws->reason, ws->data);
    if (ws->ctx)
        wslay_event_context_free(ws->ctx);
    mcpd_tls_free(ws->tls);
    mcpd_ws_handshake_free(ws->hs);
    mcpd_buf_dispose(&ws->in);
    mcpd_buf_dispose(&ws->pend);
    if (ws->req.p) /* the upgrade request holds the caller's Authorization header */
        OPENSSL_cleanse(ws->req.p, ws->req.alloc);
    mcpd_buf_dispose(&ws->req);
    free(ws->host);
    free(ws->port);
    free(ws->path);
    ws->magic = 0;
    free(ws);
}

static void on_handle_closed(uv_handle_t *h)
{
    release(h->data);
}

static void ws_finish(struct mcpd_ws *ws, int code, int http_status, const char *fmt, ...)
{
    va_list ap;
    bool resolving = ws->state == WS_RESOLVING;
    if (ws->state == WS_DONE)
        return;
    LOG_DEBUG("ws", "peer=%s done state=%d code=%d", ws->peer, (int)ws->state, code);
    ws->state = WS_DONE;
    ws->code = code;
    ws->http_status = http_status;
    va_start(ap, fmt);
    vsnprintf(ws->reason, sizeof(ws->reason), fmt, ap);
    va_end(ap);
    if (ws->tcp_init) {
        if (ws->tls && mcpd_tls_handshake_done(ws->tls) && ws->tcp.write_queue_size == 0) {
            struct mcpd_buf out;
            mcpd_buf_init(&out, 4096);
            mcpd_tls_close_notify(ws->tls);
            mcpd_tls_take_output(ws->tls, &out);
            if (out.len) {
                uv_buf_t b = uv_buf_init(out.p, (unsigned)out.len);
                uv_try_write((uv_stream_t *)&ws->tcp, &b, 1);
            }
            mcpd_buf_dispose(&out);
        }
        uv_close((uv_handle_t *)&ws->tcp, on_handle_closed);
    }
    uv_close((uv_handle_t *)&ws->timer, on_handle_closed);
    /* a pending getaddrinfo keeps its reference until its callback */
    if (resolving)
        uv_cancel((uv_req_t *)&ws->gai);
}

/* The close code to report once the close exchange is over (or cut short). */
static int final_code(struct mcpd_ws *ws)
{
    uint16_t c;
    if (ws->ctx == NULL)
        return 1006;
    if (ws->we_first)
        c = wslay_event_get_status_code_sent(ws->ctx);
    else
        c = wslay_event_get_status_code_received(ws->ctx);
    return c ? c : 1005;
}

/* The reason reported for a close exchange: the peer's text when it closed first. */
static const char *close_reason(const struct mcpd_ws *ws)
{
    return ws->peer_first && ws->peer_reason[0] ? ws->peer_reason : "closed";
}

/* The transport is gone (EOF, error). */
static void peer_gone(struct mcpd_ws *ws, const char *why)
{
    if (ws->state < WS_OPEN)
        ws_finish(ws, 0, 0, "%s before the upgrade completed", why);
    else if (ws->ctx &&
             (wslay_event_get_close_sent(ws->ctx) || wslay_event_get_close_received(ws->ctx)))
        ws_finish(ws, final_code(ws), 0, "%s", close_reason(ws));
    else
        ws_finish(ws, 1006, 0, "%s", why);
}

/* ---- writes ------------------------------------------------------------------------------ */

static void on_write_done(uv_write_t *req, int status)
{
    struct mcpd_ws *ws = req->handle->data;
    free(req);
    if (ws->state == WS_DONE)
        return;
    if (status < 0) {
        peer_gone(ws, uv_strerror(status));
        return;
    }
    if (ws->close_when_flushed && ws->tcp.write_queue_size == 0)
        ws_finish(ws, final_code(ws), 0, "%s", close_reason(ws));
}

static int raw_write(struct mcpd_ws *ws, const char *data, size_t len)
{
    size_t done = 0;
    struct ws_write *wr;
    int r;

    if (ws->state == WS_DONE || !ws->tcp_init)
        return MCPD_ECLOSED;
    if (len == 0)
        return 0;
    if (ws->tcp.write_queue_size == 0) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        r = uv_try_write((uv_stream_t *)&ws->tcp, &b, 1);
        if (r < 0 && r != UV_EAGAIN) {
            peer_gone(ws, uv_strerror(r));
            return r;
        }
        done = r > 0 ? (size_t)r : 0;
        if (done == len)
            return 0;
    }
    /* control frames (pongs to a flood of pings) and TLS records bypass the send-queue
     * check of mcpd_ws_send_text: a peer that never reads cannot grow this queue either */
    if (ws->tcp.write_queue_size + (len - done) > 2 * (size_t)MCPD_WS_MAX_SEND_QUEUE) {
        peer_gone(ws, "the peer does not read what it is sent");
        return MCPD_ETOOBIG;
    }
    wr = malloc(sizeof(*wr) + (len - done));
    if (wr == NULL) {
        ws_finish(ws, 1006, 0, "out of memory");
        return MCPD_ENOMEM;
    }
    memcpy(wr->data, data + done, len - done);
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)(len - done));
    r = uv_write(&wr->req, (uv_stream_t *)&ws->tcp, &b, 1, on_write_done);
    if (r < 0) {
        free(wr);
        peer_gone(ws, uv_strerror(r));
    }
    return r;
}

static int flush_tls(struct mcpd_ws *ws)
{
    struct mcpd_buf out;
    int r = 0;
    mcpd_buf_init(&out, MCPD_TLS_MAX_OUTPUT);
    while (r == 0 && ws->state != WS_DONE && mcpd_tls_take_output(ws->tls, &out) > 0) {
        r = raw_write(ws, out.p, out.len);
        mcpd_buf_reset(&out);
    }
    mcpd_buf_dispose(&out);
    return r;
}

/* Plaintext out (wslay's frames, the upgrade request). */
static int plain_write(struct mcpd_ws *ws, const char *data, size_t len)
{
    int r;
    if (ws->tls == NULL)
        return raw_write(ws, data, len);
    if ((r = mcpd_tls_write(ws->tls, data, len)) != 0) {
        ws_finish(ws, ws->state < WS_OPEN ? 0 : 1006, 0, "tls: %s", mcpd_tls_error(ws->tls));
        return r;
    }
    return flush_tls(ws);
}

static int flush_pend(struct mcpd_ws *ws)
{
    int r = 0;
    if (ws->pend.len) {
        r = plain_write(ws, ws->pend.p, ws->pend.len);
        mcpd_buf_reset(&ws->pend);
        if (ws->pend.alloc > 65536)
            mcpd_buf_dispose(&ws->pend);
    }
    return r;
}

/* ---- wslay callbacks --------------------------------------------------------------------- */

static ssize_t cb_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    struct mcpd_ws *ws = user;
    (void)flags;
    if (ws->state == WS_DONE || ws->in.len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (len > ws->in.len)
        len = ws->in.len;
    memcpy(buf, ws->in.p, len);
    mcpd_buf_consume(&ws->in, len);
    return (ssize_t)len;
}

static ssize_t cb_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    struct mcpd_ws *ws = user;
    (void)flags;
    if (ws->state == WS_DONE) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    if (len > ws->pend.max - ws->pend.len) {
        if (ws->pend.len == 0) {
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
            return -1;
        }
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK); /* flushed, then sent again */
        return -1;
    }
    if (mcpd_buf_append(&ws->pend, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static int cb_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    (void)user;
    if (RAND_bytes(buf, (int)len) != 1) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return 0;
}

static void cb_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    struct mcpd_ws *ws = user;
    if (ws->state != WS_OPEN)
        return; /* closing: data is dropped */
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
        if (ws->cb.on_message)
            ws->cb.on_message(ws, arg->msg ? (const char *)arg->msg : "", arg->msg_length,
                              ws->data); /* wslay gives NULL for an empty message */
        break;
    case WSLAY_BINARY_FRAME:
        LOG_DEBUG("ws", "peer=%s sent a binary frame; closing with 1003", ws->peer);
        wslay_event_queue_close(ctx, WSLAY_CODE_UNSUPPORTED_DATA,
                                (const uint8_t *)"binary frames are not accepted", 30);
        break;
    case WSLAY_PONG:
        if (ws->cb.on_pong)
            ws->cb.on_pong(ws, ws->data);
        break;
    case WSLAY_CONNECTION_CLOSE: /* wslay answers it; after_io() notices */
        if (arg->msg_length > 2) {
            size_t n = 0;
            for (size_t i = 2; i < arg->msg_length && n + 1 < sizeof(ws->peer_reason); i++)
                ws->peer_reason[n++] =
                    arg->msg[i] >= 0x20 && arg->msg[i] < 0x7f ? (char)arg->msg[i] : '?';
            ws->peer_reason[n] = '\0';
        }
        break;
    default: /* ping: wslay answers */
        break;
    }
}

static const struct wslay_event_callbacks wslay_cbs = {
    .recv_callback = cb_recv,
    .send_callback = cb_send,
    .genmask_callback = cb_genmask,
    .on_msg_recv_callback = cb_msg,
};

/* ---- the event engine -------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    struct mcpd_ws *ws = t->data;
    switch (ws->state) {
    case WS_RESOLVING:
    case WS_CONNECTING:
    case WS_UPGRADING:
        ws_finish(ws, 0, 0, "timed out connecting");
        break;
    case WS_OPEN: /* a kick: process input received before we owned the socket */
        process(ws);
        break;
    case WS_CLOSING:
        ws_finish(ws, final_code(ws), 0, "close handshake timed out");
        break;
    case WS_DONE:
        break;
    }
}

/* After wslay ran: send what it queued, then see whether the close exchange is over. */
static void after_io(struct mcpd_ws *ws)
{
    if (ws->state != WS_OPEN && ws->state != WS_CLOSING)
        return;
    for (int i = 0; i < 1024 && wslay_event_want_write(ws->ctx); i++) {
        if (wslay_event_send(ws->ctx) != 0) {
            ws_finish(ws, 1006, 0, "framing failed");
            return;
        }
        if (ws->pend.len == 0)
            break;
        if (flush_pend(ws) != 0 || ws->state == WS_DONE)
            return;
    }
    if (flush_pend(ws) != 0 || ws->state == WS_DONE)
        return;
    if (!ws->we_first && !ws->peer_first) {
        if (wslay_event_get_close_received(ws->ctx))
            ws->peer_first = true;
        else if (wslay_event_get_close_sent(ws->ctx))
            ws->we_first = true;
    }
    if (ws->state == WS_OPEN && (ws->we_first || ws->peer_first)) {
        ws->state = WS_CLOSING;
        uv_timer_start(&ws->timer, on_timer, MCPD_WS_CLOSE_TIMEOUT_MS, 0);
    }
    /*
     * Over once both close frames went by. When wslay stopped reading without
     * the peer's close (1009, 1002), input is drained until the peer closes
     * or the close timer fires: closing with unread input would reset the
     * connection and could destroy our close frame before the peer reads it.
     */
    if (ws->state == WS_CLOSING && !wslay_event_get_read_enabled(ws->ctx))
        mcpd_buf_reset(&ws->in);
    if (ws->state == WS_CLOSING && wslay_event_get_close_sent(ws->ctx) &&
        wslay_event_get_close_received(ws->ctx)) {
        if (ws->tcp.write_queue_size == 0)
            ws_finish(ws, final_code(ws), 0, "%s", close_reason(ws));
        else
            ws->close_when_flushed = true;
    }
}

static int open_engine(struct mcpd_ws *ws)
{
    int r = ws->server ? wslay_event_context_server_init(&ws->ctx, &wslay_cbs, ws)
                       : wslay_event_context_client_init(&ws->ctx, &wslay_cbs, ws);
    if (r != 0)
        return MCPD_ENOMEM;
    wslay_event_config_set_max_recv_msg_length(ws->ctx, ws->max_message);
    ws->state = WS_OPEN;
    return 0;
}

static void process(struct mcpd_ws *ws)
{
    if (ws->state == WS_UPGRADING && ws->in.len) {
        size_t used = 0;
        int r = mcpd_ws_handshake_feed(ws->hs, ws->in.p, ws->in.len, &used);
        mcpd_buf_consume(&ws->in, used);
        if (r < 0) {
            int st = mcpd_ws_handshake_status(ws->hs);
            ws_finish(ws, 0, st == 101 ? 0 : st, "%s", mcpd_ws_handshake_error(ws->hs));
            return;
        }
        if (r == 0)
            return;
        if (open_engine(ws) != 0) {
            ws_finish(ws, 0, 0, "out of memory");
            return;
        }
        uv_timer_stop(&ws->timer);
        LOG_DEBUG("ws", "peer=%s connected", ws->peer);
        if (ws->cb.on_open)
            ws->cb.on_open(ws, ws->data);
    }
    if ((ws->state == WS_OPEN || ws->state == WS_CLOSING) && ws->in.len) {
        ws->in_recv = true;
        int r = wslay_event_recv(ws->ctx);
        ws->in_recv = false;
        if (ws->state == WS_DONE)
            return;
        if (r != 0) {
            ws_finish(ws, 1006, 0, "framing failed");
            return;
        }
    }
    after_io(ws);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char read_buf[64 * 1024]; /* one loop thread; each read is consumed at once */
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof(read_buf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct mcpd_ws *ws = s->data;
    bool eof = false;

    if (ws->state == WS_DONE)
        return;
    if (nread < 0) {
        if (ws->ctx && ws->in.len) /* a close frame may still be waiting */
            process(ws);
        peer_gone(ws, nread == UV_EOF ? "connection closed" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0)
        return;
    if (ws->tls) {
        int r = mcpd_tls_feed(ws->tls, buf->base, (size_t)nread, &ws->in);
        if (flush_tls(ws) != 0 || ws->state == WS_DONE)
            return;
        if (r == MCPD_ECLOSED) {
            eof = true;
        } else if (r != 0) {
            ws_finish(ws, ws->state < WS_OPEN ? 0 : 1006, 0, "tls: %s",
                      r == MCPD_ETOOBIG ? "input too large" : mcpd_tls_error(ws->tls));
            return;
        }
    } else if (mcpd_buf_append(&ws->in, buf->base, (size_t)nread) != 0) {
        ws_finish(ws, ws->state < WS_OPEN ? 0 : 1006, 0, "input too large");
        return;
    }
    process(ws);
    if (eof && ws->state != WS_DONE)
        peer_gone(ws, "connection closed");
}

static struct mcpd_ws *ws_alloc(uv_loop_t *loop, const struct mcpd_ws_callbacks *cb, void *data,
                                size_t max_message)
{
    struct mcpd_ws *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return NULL;
    ws->magic = WS_MAGIC;
    ws->loop = loop;
    ws->cb = *cb;
    ws->data = data;
    ws->max_message = max_message ? max_message : MCPD_WS_MAX_MESSAGE;
    mcpd_buf_init(&ws->in, MCPD_WS_MAX_INPUT);
    mcpd_buf_init(&ws->pend, 2 * (size_t)MCPD_WS_MAX_SEND_QUEUE);
    mcpd_buf_init(&ws->req, MCPD_WS_MAX_HANDSHAKE);
    uv_timer_init(loop, &ws->timer);
    ws->timer.data = ws;
    ws->handles = 1;
    snprintf(ws->peer, sizeof(ws->peer), "?");
    return ws;
}

/* ---- server role ------------------------------------------------------------------------- */

int mcpd_ws_accept(struct mcpd_ws **out, struct mcpd_http_conn *c, struct mcpd_http_request *req,
                   const struct mcpd_ws_callbacks *cb, void *data, size_t max_message)
{
    const char *up = mcpd_http_header(req, "upgrade");
    const char *conn = mcpd_http_header(req, "connection");
    const char *ver = mcpd_http_header(req, "sec-websocket-version");
    const char *key = mcpd_http_header(req, "sec-websocket-key");
    struct mcpd_http_handover h;
    struct mcpd_ws *ws;
    char acc[32], head[256];
    int n, r;

    *out = NULL;
    if (up == NULL || !has_token(up, "websocket")) {
        static const char msg[] = "WebSocket upgrade required\n";
        mcpd_http_respond(c, 426, "text/plain", "Upgrade: websocket\r\nConnection: Upgrade\r\n",
                          msg, sizeof(msg) - 1);
        return MCPD_EPROTO;
    }
    if (strcmp(req->method, "GET") != 0 || !has_token(conn, "upgrade") || ver == NULL ||
        strcmp(ver, "13") != 0 || !valid_key(key)) {
        static const char msg[] = "bad WebSocket upgrade request\n";
        mcpd_http_respond(c, 400, "text/plain", "Sec-WebSocket-Version: 13\r\n", msg,
                          sizeof(msg) - 1);
        return MCPD_EPROTO;
    }
    accept_for(key, acc);
    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                 acc);
    r = mcpd_http_conn_detach(c, head, (size_t)n, &h);
    if (r != 0) {
        static const char msg[] = "cannot upgrade now\n";
        mcpd_buf_dispose(&h.in);
        mcpd_buf_dispose(&h.out);
        mcpd_http_respond(c, 503, "text/plain", NULL, msg, sizeof(msg) - 1);
        return r;
    }
    ws = ws_alloc(h.loop, cb, data, max_message);
    if (ws == NULL) {
        close(h.fd);
        mcpd_tls_free(h.tls);
        mcpd_buf_dispose(&h.in);
        mcpd_buf_dispose(&h.out);
        return MCPD_ENOMEM;
    }
    ws->server = true;
    ws->tls = h.tls;
    snprintf(ws->peer, sizeof(ws->peer), "%s", h.peer);
    uv_tcp_init(h.loop, &ws->tcp);
    ws->tcp.data = ws;
    ws->tcp_init = true;
    ws->handles++;
    *out = ws;
    if ((r = uv_tcp_open(&ws->tcp, h.fd)) != 0) {
        close(h.fd);
        ws_finish(ws, 1006, 0, "socket: %s", uv_strerror(r));
    } else if (mcpd_buf_append(&ws->in, h.in.p ? h.in.p : "", h.in.len) != 0 ||
               open_engine(ws) != 0) {
        ws_finish(ws, 1006, 0, "out of memory");
    } else {
        uv_tcp_nodelay(&ws->tcp, 1);
        if (raw_write(ws, h.out.p, h.out.len) == 0 && ws->state != WS_DONE) {
            if ((r = uv_read_start((uv_stream_t *)&ws->tcp, on_alloc, on_read)) != 0)
                ws_finish(ws, 1006, 0, "read: %s", uv_strerror(r));
            else if (ws->in.len) /* bytes that came with the request: after we return */
                uv_timer_start(&ws->timer, on_timer, 0, 0);
        }
    }
    mcpd_buf_dispose(&h.in);
    mcpd_buf_dispose(&h.out);
    LOG_DEBUG("ws", "peer=%s upgraded", ws->peer);
    return 0;
}

/* ---- client role ------------------------------------------------------------------------- */

static void on_connected(uv_connect_t *req, int status)
{
    struct mcpd_ws *ws = req->data;
    struct sockaddr_storage ss;
    int len = sizeof(ss), r;
    char ip[INET6_ADDRSTRLEN] = "?";

    if (ws->state == WS_DONE)
        return;
    if (status < 0) {
        ws_finish(ws, 0, 0, "connect to %s:%s: %s", ws->host, ws->port, uv_strerror(status));
        return;
    }
    if (uv_tcp_getpeername(&ws->tcp, (struct sockaddr *)&ss, &len) == 0) {
        int port = 0;
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        }
        snprintf(ws->peer, sizeof(ws->peer), "%s:%d", ip, port);
    }
    uv_tcp_nodelay(&ws->tcp, 1);
    ws->state = WS_UPGRADING;
    if (ws->tls_ctx) {
        if ((r = mcpd_tls_new(&ws->tls, ws->tls_ctx, ws->host)) != 0) {
            ws_finish(ws, 0, 0, "tls: cannot set up for %s", ws->host);
            return;
        }
        if (mcpd_tls_connect(ws->tls) != 0) {
            ws_finish(ws, 0, 0, "tls: %s", mcpd_tls_error(ws->tls));
            return;
        }
    }
    if ((r = uv_read_start((uv_stream_t *)&ws->tcp, on_alloc, on_read)) != 0) {
        ws_finish(ws, 0, 0, "read: %s", uv_strerror(r));
        return;
    }
    plain_write(ws, ws->req.p, ws->req.len); /* with TLS: sent once the handshake is done */
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct mcpd_ws *ws = req->data;
    int r;

    if (ws->state == WS_DONE) {
        uv_freeaddrinfo(res);
        release(ws);
        return;
    }
    ws->handles--; /* the pending request no longer holds a reference */
    if (status < 0 || res == NULL) {
        ws_finish(ws, 0, 0, "resolve %s: %s", ws->host, uv_strerror(status));
        uv_freeaddrinfo(res);
        return;
    }
    uv_tcp_init(ws->loop, &ws->tcp);
    ws->tcp.data = ws;
    ws->tcp_init = true;
    ws->handles++;
    ws->state = WS_CONNECTING;
    ws->connect.data = ws;
    r = uv_tcp_connect(&ws->connect, &ws->tcp, res->ai_addr, on_connected);
    uv_freeaddrinfo(res);
    if (r != 0)
        ws_finish(ws, 0, 0, "connect to %s:%s: %s", ws->host, ws->port, uv_strerror(r));
}

/* Splits ws[s]://host[:port][/path]; host may be [v6]. */
static int parse_url(struct mcpd_ws *ws, const char *url, bool *tls)
{
    const char *p, *h, *he, *ps;
    char port[8];

    if (strncasecmp(url, "ws://", 5) == 0) {
        *tls = false;
        p = url + 5;
    } else if (strncasecmp(url, "wss://", 6) == 0) {
        *tls = true;
        p = url + 6;
    } else {
        return MCPD_ECONFIG;
    }
    if (*p == '[') {
        h = p + 1;
        he = strchr(h, ']');
        if (he == NULL)
            return MCPD_ECONFIG;
        ps = he + 1;
    } else {
        h = p;
        he = h + strcspn(h, ":/?#");
        ps = he;
    }
    if (he == h || (size_t)(he - h) > 253)
        return MCPD_ECONFIG;
    snprintf(port, sizeof(port), "%s", *tls ? "443" : "80");
    if (*ps == ':') {
        size_t n = strspn(ps + 1, "0123456789");
        long v = n > 0 && n <= 5 ? strtol(ps + 1, NULL, 10) : 0;
        if (v <= 0 || v > 65535)
            return MCPD_ECONFIG;
        snprintf(port, sizeof(port), "%ld", v);
        ps += 1 + n;
    }
    if (*ps != '\0' && *ps != '/' && *ps != '?')
        return MCPD_ECONFIG;
    ws->host = strndup(h, (size_t)(he - h));
    ws->port = strdup(port);
    ws->path = *ps == '/' ? strdup(ps) : (*ps == '?' ? NULL : strdup("/"));
    if (ws->path == NULL && *ps == '?') {
        size_t n = strlen(ps);
        ws->path = malloc(n + 2);
        if (ws->path) {
            ws->path[0] = '/';
            memcpy(ws->path + 1, ps, n + 1);
        }
    }
    if (ws->host == NULL || ws->port == NULL || ws->path == NULL)
        return MCPD_ENOMEM;
    if (strpbrk(ws->path, " \r\n\t#") || strpbrk(ws->host, " \r\n\t@/"))
        return MCPD_ECONFIG;
    return 0;
}

int mcpd_ws_connect(struct mcpd_ws **out, uv_loop_t *loop, const char *url,
                    const char *const *headers, size_t nheaders, struct mcpd_tls_ctx *tls,
                    const struct mcpd_ws_callbacks *cb, void *data, size_t max_message,
                    unsigned timeout_ms)
{
    struct mcpd_ws *ws;
    struct addrinfo hints;
    unsigned char raw[16];
    char key[32];
    bool secure = false, v6, dflt;
    int r;

    *out = NULL;
    ws = ws_alloc(loop, cb, data, max_message);
    if (ws == NULL)
        return MCPD_ENOMEM;
    if ((r = parse_url(ws, url, &secure)) != 0 || (secure && tls == NULL))
        goto fail_sync;
    ws->tls_ctx = secure ? tls : NULL;
    for (size_t i = 0; i < nheaders; i++)
        if (strpbrk(headers[i], "\r\n") || strchr(headers[i], ':') == NULL) {
            r = MCPD_ECONFIG;
            goto fail_sync;
        }
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        r = MCPD_ENOMEM;
        goto fail_sync;
    }
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
    if ((r = mcpd_ws_handshake_new(&ws->hs, key)) != 0)
        goto fail_sync;
    v6 = strchr(ws->host, ':') != NULL;
    dflt = strcmp(ws->port, secure ? "443" : "80") == 0;
    r = mcpd_buf_appendf(&ws->req,
                         "GET %s HTTP/1.1\r\nHost: %s%s%s%s%s\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                         "Sec-WebSocket-Version: 13\r\n",
                         ws->path, v6 ? "[" : "", ws->host, v6 ? "]" : "", dflt ? "" : ":",
                         dflt ? "" : ws->port, key);
    for (size_t i = 0; r == 0 && i < nheaders; i++)
        r = mcpd_buf_appendf(&ws->req, "%s\r\n", headers[i]);
    if (r == 0)
        r = mcpd_buf_append(&ws->req, "\r\n", 2);
    if (r != 0)
        goto fail_sync;

    *out = ws;
    ws->state = WS_RESOLVING;
    uv_update_time(loop); /* the caller may have blocked since the loop last ran */
    uv_timer_start(&ws->timer, on_timer, timeout_ms ? timeout_ms : MCPD_WS_CONNECT_TIMEOUT_MS, 0);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    ws->gai.data = ws;
    ws->handles++;
    r = uv_getaddrinfo(loop, &ws->gai, on_resolved, ws->host, ws->port, &hints);
    if (r != 0) {
        ws->handles--;
        ws_finish(ws, 0, 0, "resolve %s: %s", ws->host, uv_strerror(r));
    }
    return 0;

fail_sync:
    /* nothing was reported yet: free without on_close */
    ws->cb.on_close = NULL;
    ws->state = WS_DONE;
    uv_close((uv_handle_t *)&ws->timer, on_handle_closed);
    return r ? r : MCPD_ECONFIG;
}

/* ---- both roles -------------------------------------------------------------------------- */

int mcpd_ws_send_text(struct mcpd_ws *ws, const char *msg, size_t len)
{
    struct wslay_event_msg m = { WSLAY_TEXT_FRAME, (const uint8_t *)msg, len };
    if (ws->state != WS_OPEN)
        return MCPD_ECLOSED;
    if (wslay_event_get_queued_msg_length(ws->ctx) + ws->tcp.write_queue_size + len >
        MCPD_WS_MAX_SEND_QUEUE)
        return MCPD_ETOOBIG;
    if (wslay_event_queue_msg(ws->ctx, &m) != 0)
        return MCPD_ECLOSED;
    if (!ws->in_recv)
        after_io(ws);
    return 0;
}

int mcpd_ws_ping(struct mcpd_ws *ws)
{
    struct wslay_event_msg m = { WSLAY_PING, (const uint8_t *)"", 0 };
    if (ws->state != WS_OPEN)
        return MCPD_ECLOSED;
    if (wslay_event_queue_msg(ws->ctx, &m) != 0)
        return MCPD_ECLOSED;
    if (!ws->in_recv)
        after_io(ws);
    return 0;
}

void mcpd_ws_close(struct mcpd_ws *ws, uint16_t code, const char *reason)
{
    size_t rl = reason ? strlen(reason) : 0;
    if (ws->state == WS_DONE || ws->state == WS_CLOSING)
        return;
    if (ws->state < WS_OPEN) {
        ws_finish(ws, 0, 0, "closed before the upgrade completed");
        return;
    }
    if (rl > 123) /* a control frame payload is at most 125 bytes */
        rl = 123;
    if (wslay_event_queue_close(ws->ctx, code, (const uint8_t *)reason, rl) != 0) {
        ws_finish(ws, final_code(ws), 0, "%s", close_reason(ws));
        return;
    }
    if (!wslay_event_get_close_received(ws->ctx))
        ws->we_first = true;
    ws->state = WS_CLOSING;
    uv_timer_start(&ws->timer, on_timer, MCPD_WS_CLOSE_TIMEOUT_MS, 0);
    if (!ws->in_recv)
        after_io(ws);
}

void mcpd_ws_abort(struct mcpd_ws *ws)
{
    if (ws->state < WS_OPEN)
        ws_finish(ws, 0, 0, "aborted before the upgrade completed");
    else
        ws_finish(ws, 1006, 0, "aborted");
}

const char *mcpd_ws_peer(const struct mcpd_ws *ws)
{
    return ws->peer;
}

void mcpd_ws_set_data(struct mcpd_ws *ws, void *data)
{
    ws->data = data;
}
