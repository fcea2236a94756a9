/*
 * sse.c - the legacy HTTP+SSE transport (MCP 2024-11-05) toward clients.
 *
 *   GET  /sse                     opens a session; the first event is
 *                                 "endpoint" with "/message?sessionId=<id>",
 *                                 every later message is an "message" event
 *   POST /message?sessionId=<id>  one JSON-RPC message; answered 202, the
 *                                 response travels on the session's stream
 *
 * Closing the stream ends the session (and cancels its calls upstream).
 * The listener has checked Host and Origin before a request gets here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mcpd/error.h"
#include "mcpd/jsonrpc.h"
#include "mcpd/limits.h"
#include "mcpd/listener.h"
#include "mcpd/log.h"
#include "mcpd/map.h"
#include "mcpd/session.h"
#include "transports.h"

#define SSE_PATH     "/sse"
#define MESSAGE_PATH "/message"

struct sse_tp;

/* One client: its stream is its session's only sink. */
struct sse_client {
    struct mcpd_sink sink;
    struct sse_tp *tp;
    struct mcpd_http_conn *conn; /* NULL once the stream is gone */
    struct mcpd_session *s;      /* ref */
};

struct sse_tp {
    struct mcpd_transport base;
    struct mcpd_map clients; /* session id -> struct sse_client */
    uv_timer_t keepalive;
    bool stopping, started;
};

static int client_send(struct mcpd_sink *sk, const char *data, size_t len, bool final)
{
    struct sse_client *cl = (struct sse_client *)sk;
    int r;
    if (cl->conn == NULL)
        return MCPD_ECLOSED;
    r = mcpd_http_stream_event(cl->conn, NULL, "message", data, len);
    if (r == MCPD_ETOOBIG)
        LOG_WARN("sse", "session=%s reads too slowly; closing", mcpd_session_id(cl->s));
    return r;
}

static const struct mcpd_sink_ops client_ops = { client_send, NULL, NULL };

static void client_free(struct sse_client *cl)
{
    mcpd_map_del(&cl->tp->clients, mcpd_session_id(cl->s), 32);
    mcpd_session_unref(&cl->s);
    free(cl);
}

/* The stream went away: so does the session. */
static void on_stream_abort(struct mcpd_http_conn *c, void *data)
{
    struct sse_client *cl = data;
    cl->conn = NULL;
    mcpd_session_set_stream(cl->s, NULL);
    mcpd_session_sink_closed(cl->s, &cl->sink);
    mcpd_session_close(cl->s); /* calls on_session_close, which frees cl */
}

/* The core ended the session (reaped, shutdown): end the stream. */
static void on_session_close(struct mcpd_session *s, void *data)
{
    struct sse_client *cl = data;
    if (cl->conn) {
        mcpd_http_conn_on_abort(cl->conn, NULL, NULL);
        mcpd_http_stream_end(cl->conn, false);
        cl->conn = NULL;
    }
    client_free(cl);
}

static void handle_get(struct sse_tp *tp, struct mcpd_http_conn *c, struct mcpd_http_request *req)
{
    unsigned char key_hash[32];
    const char *bot;
    struct sse_client *cl;
    char endpoint[96];
    int r, n;

    if (tp->stopping) {
        mcpd_http_respond_rpc_error(c, 503, MCPD_RPC_SERVER_ERROR,
                                    "Service Unavailable: shutting down");
        return;
    }
    if (!mcpd_listener_authenticate(tp->base.daemon, c, req, &bot, key_hash))
        return;
    if ((cl = calloc(1, sizeof(*cl))) == NULL) {
        mcpd_http_respond_rpc_error(c, 500, MCPD_RPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    if ((r = mcpd_session_new(&cl->s, tp->base.daemon, "sse", req->peer)) != 0) {
        free(cl);
        mcpd_http_respond_rpc_error(c, r == MCPD_EBUSY ? 503 : 500, MCPD_RPC_SERVER_ERROR,
                                    r == MCPD_EBUSY ? "Service Unavailable: too many sessions"
                                                    : mcpd_strerror(r));
        return;
    }
    cl->sink.ops = &client_ops;
    cl->tp = tp;
    cl->conn = c;
    if (mcpd_map_put(&tp->clients, mcpd_session_id(cl->s), 32, cl) != 0 ||
        mcpd_http_stream_begin(c, 200, "text/event-stream", NULL) != 0) {
        mcpd_map_del(&tp->clients, mcpd_session_id(cl->s), 32);
        mcpd_session_close(cl->s);
        mcpd_session_unref(&cl->s);
        free(cl);
        mcpd_http_respond_rpc_error(c, 500, MCPD_RPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    mcpd_session_on_close(cl->s, on_session_close, cl);
    mcpd_session_set_stream(cl->s, &cl->sink);
    if (bot)
        mcpd_session_set_bot(cl->s, bot, key_hash);
    mcpd_http_conn_on_abort(c, on_stream_abort, cl);
    n = snprintf(endpoint, sizeof(endpoint), MESSAGE_PATH "?sessionId=%s", mcpd_session_id(cl->s));
    mcpd_http_stream_event(c, NULL, "endpoint", endpoint, (size_t)n);
}

/* sessionId=<32 hex> from the query string, or NULL. */
static struct sse_client *find_client(struct sse_tp *tp, const char *query)
{
    for (const char *p = query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t n = amp ? (size_t)(amp - p) : strlen(p);
        if (n == 10 + 32 && strncmp(p, "sessionId=", 10) == 0)
            return mcpd_map_get(&tp->clients, p + 10, 32);
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

static void handle_post(struct sse_tp *tp, struct mcpd_http_conn *c, struct mcpd_http_request *req)
{
    const char *ct = mcpd_http_header(req, "content-type");
    struct sse_client *cl;
    struct mcpd_rpc_error err;
    unsigned char key_hash[32];
    const char *bot;
    json_t *root;
    bool answered;

    if (!mcpd_listener_authenticate(tp->base.daemon, c, req, &bot, key_hash))
        return;
    cl = find_client(tp, req->query);
    if (cl && bot && !mcpd_session_key_matches(cl->s, key_hash))
        cl = NULL; /* another bot's session: as if unknown */
    if (cl == NULL || cl->conn == NULL) {
        mcpd_http_respond_rpc_error(c, 404, MCPD_RPC_SERVER_ERROR, "Session not found");
        return;
    }
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0) {
        mcpd_http_respond_rpc_error(
            c, 415, MCPD_RPC_SERVER_ERROR,
            "Unsupported Media Type: Content-Type must be application/json");
        return;
    }
    root = mcpd_jsonrpc_decode(req->body, req->body_len, MCPD_MAX_JSON_DEPTH, &err);
    if (root == NULL) {
        mcpd_http_respond_rpc_error(c, 400, err.code, err.message);
        return;
    }
    /* the answer goes to the stream; the POST only says it was taken */
    mcpd_session_ref(cl->s);
    {
        struct mcpd_session *s = cl->s;
        mcpd_session_feed_json(s, root, &cl->sink, &answered);
        mcpd_session_unref(&s);
    }
    json_decref(root);
    mcpd_http_respond(c, 202, "text/plain", NULL, "Accepted", 8);
}

static void on_get(struct mcpd_http_conn *c, struct mcpd_http_request *req, void *data)
{
    if (strcmp(req->method, "GET") == 0)
        handle_get(data, c, req);
    else
        mcpd_http_respond(c, 405, "text/plain", "Allow: GET\r\n", "method not allowed\n", 19);
}

static void on_message(struct mcpd_http_conn *c, struct mcpd_http_request *req, void *data)
{
    if (strcmp(req->method, "POST") == 0)
        handle_post(data, c, req);
    else
        mcpd_http_respond(c, 405, "text/plain", "Allow: POST\r\n", "method not allowed\n", 19);
}

struct keys {
    char (*ids)[40];
    size_t n;
};

static void collect_key(const void *key, size_t klen, void *value, void *arg)
{
    struct keys *k = arg;
    (void)value;
    if (klen < sizeof(k->ids[0])) {
        memcpy(k->ids[k->n], key, klen);
        k->ids[k->n++][klen] = '\0';
    }
}

/*
 * A write that fails closes that client's session, which removes it from
 * the map: the ids are taken first, and each client looked up again.
 */
static void on_keepalive(uv_timer_t *t)
{
    struct sse_tp *tp = t->data;
    struct keys k = { calloc(tp->clients.count + 1, sizeof(*k.ids)), 0 };

    if (k.ids == NULL)
        return;
    mcpd_map_foreach_key(&tp->clients, collect_key, &k);
    for (size_t i = 0; i < k.n; i++) {
        struct sse_client *cl = mcpd_map_get(&tp->clients, k.ids[i], strlen(k.ids[i]));
        if (cl && cl->conn)
            mcpd_http_stream_write(cl->conn, ":\n\n", 3);
    }
    free(k.ids);
}

static int tp_start(struct mcpd_transport *base)
{
    struct sse_tp *tp = (struct sse_tp *)base;
    int r;
    if ((r = mcpd_listener_route(base->daemon, SSE_PATH, on_get, tp)) != 0 ||
        (r = mcpd_listener_route(base->daemon, MESSAGE_PATH, on_message, tp)) != 0)
        return r;
    uv_timer_init(base->daemon->loop, &tp->keepalive);
    tp->keepalive.data = tp;
    tp->started = true;
    uv_timer_start(&tp->keepalive, on_keepalive, MCPD_SSE_KEEPALIVE_MS, MCPD_SSE_KEEPALIVE_MS);
    return 0;
}

static void tp_stop(struct mcpd_transport *base)
{
    ((struct sse_tp *)base)->stopping = true;
}

static void on_keepalive_closed(uv_handle_t *h)
{
    struct sse_tp *tp = h->data;
    mcpd_map_dispose(&tp->clients);
    free(tp);
}

static void tp_close(struct mcpd_transport *base)
{
    struct sse_tp *tp = (struct sse_tp *)base;
    tp->stopping = true;
    if (!tp->started) {
        mcpd_map_dispose(&tp->clients);
        free(tp);
        return;
    }
    uv_close((uv_handle_t *)&tp->keepalive, on_keepalive_closed);
}

static const struct mcpd_transport_ops sse_ops = { "sse", tp_start, tp_stop, tp_close };

int mcpd_sse_transport_new(struct mcpd_transport **out)
{
    struct sse_tp *tp = calloc(1, sizeof(*tp));
    *out = NULL;
    if (tp == NULL)
        return MCPD_ENOMEM;
    tp->base.ops = &sse_ops;
    mcpd_map_init(&tp->clients);
    *out = &tp->base;
    return 0;
}
