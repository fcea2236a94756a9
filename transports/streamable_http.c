/*
 * streamable_http.c - MCP streamable HTTP (2025-03-26 .. 2025-11-25) at
 * http.path on the configured listener.
 *
 *   POST  one message (a batch for 2025-03-26 sessions). Notifications and
 *         responses: 202. Requests: the answer is plain JSON unless a
 *         related message (progress, logging) comes first, in which case
 *         the response switches to an SSE stream that ends with the answer.
 *   GET   the session's stream for messages not tied to a request
 *         (list_changed); the newest stream receives them.
 *   DELETE ends the session.
 *
 * The daemon's listener has checked Host and Origin (DNS rebinding) before a
 * request gets here; then come Accept/Content-Type checks, session lookup
 * (400 when missing, 404 when unknown) and the MCP-Protocol-Version check.
 *
 * Stateless (2026-07-28): a POST whose request carries the modern _meta, or
 * a server/discover without Mcp-Session-Id, is authenticated like an
 * initialize, its MCP-Protocol-Version, Mcp-Method and Mcp-Name headers are
 * checked against the body (400 + -32020), and it is served in a transient
 * core session that ends with its answer and is never named to the client.
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
#include "mcpd/net/http_server.h"
#include "mcpd/net/replay.h"
#include "mcpd/session.h"
#include "transports.h"

struct http_tp;

struct exchange;
struct gstream;

/*
 * A resumable SSE stream (sessions of 2025-03-26 and later): its events
 * carry ids "<stream>-<seq>" and the recent ones are kept, so a client that
 * lost the connection resumes with GET + Last-Event-ID. While the POST (or
 * GET) it belongs to may still produce events after a disconnect, the
 * exchange stays alive "detached" for MCPD_RESUME_GRACE_MS, recording.
 */
struct rstream {
    struct rstream *next;
    struct mcpd_replay rp;
    struct exchange *ex; /* the POST still answering on it, or NULL */
    struct gstream *g;   /* the GET stream it belongs to, or NULL */
    bool done;           /* the POST's answer is in it */
};

/* One GET stream. */
struct gstream {
    struct mcpd_sink sink;
    struct http_tp *tp;
    struct hsess *hs;
    struct mcpd_http_conn *conn; /* NULL while detached */
    struct gstream *next;
    struct rstream *rs; /* when resumable */
    bool detached;
    uint64_t detached_at;
};

/* What the transport keeps per session. */
struct hsess {
    struct mcpd_session *s;
    struct gstream *streams;
    unsigned nstreams;
    struct rstream *rstreams;
    unsigned nrstreams, next_stream;
};

/* One POST waiting for its answer. */
struct exchange {
    struct mcpd_sink sink;
    struct http_tp *tp;
    struct hsess *hs;
    struct mcpd_http_conn *conn; /* NULL once the client went away */
    struct mcpd_session *s;      /* ref */
    bool sse, in_send, aborted, is_init;
    bool held;          /* handle_post still uses it: the free is deferred to there */
    bool finished;      /* the final answer went out */
    struct rstream *rs; /* when its SSE stream is resumable */
    bool detached;      /* the client left; events are recorded for a resume */
    uint64_t detached_at;
    struct exchange *dnext;         /* tp->detached list */
    struct exchange *lprev, *lnext; /* tp->live: answering as SSE (keep-alive comments) */
    bool live;
    char extra[96];
};

struct http_tp {
    struct mcpd_transport base;
    struct mcpd_map sessions; /* id -> struct hsess */
    uv_timer_t tick;          /* 1 s: resume deadlines, keep-alive comments */
    unsigned ticks;
    struct exchange *detached;
    struct exchange *live; /* POSTs answering as SSE: long calls, subscriptions/listen */
    bool stopping, started;
};

static void stream_end(struct gstream *g, bool remove_from_session);

/* ---- small helpers ---------------------------------------------------------- */

static void respond_error(struct mcpd_http_conn *c, int status, int code, const char *msg)
{
    mcpd_http_respond_rpc_error(c, status, code, msg);
}

static bool accepts(const char *accept, const char *type)
{
    return accept && (strstr(accept, type) || strstr(accept, "*/*"));
}

/* ---- resumable streams -------------------------------------------------------- */

static bool resumable(const struct hsess *hs)
{
    const char *v = mcpd_session_version(hs->s);
    return v && strcmp(v, "2025-03-26") >= 0;
}

static uint64_t now_ms(const struct http_tp *tp)
{
    return uv_now(tp->base.daemon->loop);
}

/* A new resumable stream, or NULL (then the stream simply has no ids). */
static struct rstream *rstream_new(struct hsess *hs)
{
    struct rstream *rs, **pp, **victim = NULL;
    if (hs == NULL || !resumable(hs)) /* a stateless request's stream is not resumable */
        return NULL;
    if (hs->nrstreams >= MCPD_MAX_REPLAYS) { /* evict the oldest idle one */
        for (pp = &hs->rstreams; *pp; pp = &(*pp)->next)
            if ((*pp)->ex == NULL && (*pp)->g == NULL)
                victim = pp;
        if (victim == NULL)
            return NULL;
        rs = *victim;
        *victim = rs->next;
        mcpd_replay_dispose(&rs->rp);
        free(rs);
        hs->nrstreams--;
    }
    if ((rs = calloc(1, sizeof(*rs))) == NULL)
        return NULL;
    mcpd_replay_init(&rs->rp, ++hs->next_stream);
    rs->next = hs->rstreams;
    hs->rstreams = rs;
    hs->nrstreams++;
    return rs;
}

static struct rstream *rstream_find(struct hsess *hs, unsigned stream)
{
    for (struct rstream *rs = hs->rstreams; rs; rs = rs->next)
        if (rs->rp.stream == stream)
            return rs;
    return NULL;
}

/* 2025-11-25: the first event of a stream has an id and no data, so a
 * client can resume even before the first message. */
static void prime(struct hsess *hs, struct mcpd_http_conn *c, struct rstream *rs)
{
    char buf[96];
    int n;
    if (rs == NULL || strcmp(mcpd_session_version(hs->s), "2025-11-25") < 0)
        return;
    n = snprintf(buf, sizeof(buf), "id: %u-0\nretry: 1000\ndata: \n\n", rs->rp.stream);
    mcpd_http_stream_write(c, buf, (size_t)n);
}

/* Records (when resumable) and writes (when connected) one message event. */
static int emit(struct mcpd_http_conn *c, struct rstream *rs, const char *data, size_t len)
{
    char id[48];
    uint64_t seq = rs ? mcpd_replay_add(&rs->rp, data, len) : 0;
    if (rs)
        mcpd_replay_id(id, sizeof(id), rs->rp.stream, seq);
    return c ? mcpd_http_stream_event(c, rs ? id : NULL, "message", data, len) : 0;
}

/* ---- POST exchanges ------------------------------------------------------------- */

static void live_remove(struct exchange *ex)
{
    if (!ex->live)
        return;
    if (ex->lprev)
        ex->lprev->lnext = ex->lnext;
    else
        ex->tp->live = ex->lnext;
    if (ex->lnext)
        ex->lnext->lprev = ex->lprev;
    ex->lprev = ex->lnext = NULL;
    ex->live = false;
}

static void exchange_free(struct exchange *ex)
{
    live_remove(ex);
    if (ex->rs && ex->rs->ex == ex)
        ex->rs->ex = NULL;
    mcpd_session_unref(&ex->s);
    free(ex);
}

static void detached_remove(struct exchange *ex)
{
    for (struct exchange **pp = &ex->tp->detached; *pp; pp = &(*pp)->dnext) {
        if (*pp == ex) {
            *pp = ex->dnext;
            break;
        }
    }
    ex->detached = false;
}

/* The client left a resumable stream: keep the request, record its events. */
static void exchange_detach(struct exchange *ex)
{
    ex->detached = true;
    ex->detached_at = now_ms(ex->tp);
    ex->dnext = ex->tp->detached;
    ex->tp->detached = ex;
    LOG_DEBUG("http", "session=%s stream %u dropped; kept for resumption", mcpd_session_id(ex->s),
              ex->rs->rp.stream);
}

/*
 * The HTTP status of a stateless (2026-07-28) answer sent as plain JSON: an
 * unknown or removed method is 404, a missing client capability 400; other
 * errors travel in a 200 like results.
 */
static int modern_status(const char *data, size_t len)
{
    json_t *msg;
    json_int_t code;

    /* the error member comes right after jsonrpc and id: no need to search a long result */
    if (memmem(data, len < 512 ? len : 512, "\"error\"", 7) == NULL)
        return 200;
    msg = json_loadb(data, len, 0, NULL);
    code = json_integer_value(json_object_get(json_object_get(msg, "error"), "code"));
    json_decref(msg);
    return code == MCPD_RPC_METHOD_NOT_FOUND      ? 404
           : code == MCPD_RPC_MISSING_CAPABILITY  ? 400
           : code == MCPD_RPC_HEADER_MISMATCH     ? 400
           : code == MCPD_RPC_UNSUPPORTED_VERSION ? 400
                                                  : 200;
}

static int exchange_send(struct mcpd_sink *sk, const char *data, size_t len, bool final)
{
    struct exchange *ex = (struct exchange *)sk;
    int r = 0;

    if (ex->detached) { /* nobody reads: record for a resume */
        emit(NULL, ex->rs, data, len);
        if (final) {
            ex->rs->done = true;
            detached_remove(ex);
            exchange_free(ex);
        }
        return 0;
    }
    if (ex->conn == NULL)
        return MCPD_ECLOSED;
    ex->in_send = true;
    if (!final && !ex->sse) {
        r = mcpd_http_stream_begin(ex->conn, 200, "text/event-stream", ex->extra);
        ex->sse = true;
        ex->live = true; /* a quiet stream gets keep-alive comments */
        ex->lprev = NULL;
        ex->lnext = ex->tp->live;
        if (ex->lnext)
            ex->lnext->lprev = ex;
        ex->tp->live = ex;
        if (r == 0 && (ex->rs = rstream_new(ex->hs)) != NULL) {
            ex->rs->ex = ex;
            prime(ex->hs, ex->conn, ex->rs);
        }
    }
    if (ex->sse && r == 0 && !ex->aborted) {
        r = emit(ex->conn, ex->rs, data, len);
        if (final && r == 0 && !ex->aborted)
            mcpd_http_stream_end(ex->conn, true);
    } else if (!ex->sse) {
        mcpd_http_respond(ex->conn, ex->hs == NULL ? modern_status(data, len) : 200,
                          "application/json", ex->extra, data, len);
    }
    ex->in_send = false;
    if (final) {
        if (ex->rs)
            ex->rs->done = true;
        if (ex->conn)
            mcpd_http_conn_on_abort(ex->conn, NULL, NULL);
        ex->conn = NULL;
        ex->finished = true;
        if (!ex->held)
            exchange_free(ex);
        return r;
    }
    if (ex->aborted) {
        ex->aborted = false;
        ex->conn = NULL;
        if (ex->rs) {
            exchange_detach(ex);
        } else {
            ex->finished = true;
            mcpd_session_sink_closed(ex->s, &ex->sink);
            if (!ex->held)
                exchange_free(ex);
        }
        return MCPD_ECLOSED;
    }
    return r;
}

static void exchange_abort(struct mcpd_http_conn *c, void *data)
{
    struct exchange *ex = data;
    ex->conn = NULL;
    if (ex->in_send) {
        ex->aborted = true; /* exchange_send finishes the cleanup */
        return;
    }
    if (ex->rs && !ex->finished) {
        exchange_detach(ex);
        return;
    }
    ex->finished = true;
    mcpd_session_sink_closed(ex->s, &ex->sink);
    if (!ex->held)
        exchange_free(ex);
}

/* A request that was cancelled will not answer: end the POST. */
static void exchange_cancelled(struct mcpd_sink *sk)
{
    struct exchange *ex = (struct exchange *)sk;
    struct mcpd_http_conn *c = ex->conn;
    if (ex->sink.npending > 0 || c == NULL)
        return; /* detached ones are freed by the sweep or with the session */
    mcpd_http_conn_on_abort(c, NULL, NULL);
    ex->conn = NULL;
    ex->finished = true;
    if (ex->sse)
        mcpd_http_stream_end(c, true);
    else
        mcpd_http_respond(c, 204, NULL, NULL, "", 0);
    if (!ex->held)
        exchange_free(ex);
}

static const struct mcpd_sink_ops exchange_ops = { exchange_send, exchange_cancelled, NULL };

/* ---- sessions ------------------------------------------------------------------------ */

static void on_session_close(struct mcpd_session *s, void *data)
{
    struct http_tp *tp = data;
    struct hsess *hs = mcpd_map_del(&tp->sessions, mcpd_session_id(s), 32);
    struct exchange **pp;
    if (hs == NULL)
        return;
    while (hs->streams)
        stream_end(hs->streams, true);
    for (pp = &tp->detached; *pp;) {
        struct exchange *ex = *pp;
        if (ex->hs != hs) {
            pp = &ex->dnext;
            continue;
        }
        *pp = ex->dnext;
        ex->detached = false;
        exchange_free(ex);
    }
    while (hs->rstreams) {
        struct rstream *rs = hs->rstreams;
        hs->rstreams = rs->next;
        mcpd_replay_dispose(&rs->rp);
        free(rs);
    }
    mcpd_session_unref(&hs->s);
    free(hs);
}

/* Who a new session belongs to: the authenticated bot, or NULL without bots. */
struct opener {
    const char *bot;
    unsigned char key_hash[32];
};

/* A new core session for an authenticated request; answers the error itself. */
static struct mcpd_session *open_session(struct http_tp *tp, struct mcpd_http_conn *c,
                                         struct mcpd_http_request *req, const struct opener *who)
{
    struct mcpd_session *s;
    int r = mcpd_session_new(&s, tp->base.daemon, "http", req->peer);
    if (r != 0) {
        if (r == MCPD_EBUSY)
            respond_error(c, 503, MCPD_RPC_SERVER_ERROR, "Service Unavailable: too many sessions");
        else
            respond_error(c, 500, MCPD_RPC_INTERNAL_ERROR, mcpd_strerror(r));
        return NULL;
    }
    if (who->bot)
        mcpd_session_set_bot(s, who->bot, who->key_hash);
    return s;
}

static struct hsess *new_session(struct http_tp *tp, struct mcpd_http_conn *c,
                                 struct mcpd_http_request *req)
{
    struct hsess *hs;
    struct opener who;

    if (!mcpd_listener_authenticate(tp->base.daemon, c, req, &who.bot, who.key_hash))
        return NULL;
    hs = calloc(1, sizeof(*hs));
    if (hs == NULL) {
        respond_error(c, 500, MCPD_RPC_INTERNAL_ERROR, "out of memory");
        return NULL;
    }
    if ((hs->s = open_session(tp, c, req, &who)) == NULL) {
        free(hs);
        return NULL;
    }
    if (mcpd_map_put(&tp->sessions, mcpd_session_id(hs->s), 32, hs) != 0) {
        mcpd_session_close(hs->s);
        mcpd_session_unref(&hs->s);
        free(hs);
        respond_error(c, 500, MCPD_RPC_INTERNAL_ERROR, "out of memory");
        return NULL;
    }
    mcpd_session_on_close(hs->s, on_session_close, tp);
    return hs;
}

/* Finds the session named by the request; answers 400/404 itself when none. */
static struct hsess *find_session(struct http_tp *tp, struct mcpd_http_conn *c,
                                  struct mcpd_http_request *req)
{
    const char *sid = mcpd_http_header(req, "mcp-session-id");
    const char *pv = mcpd_http_header(req, "mcp-protocol-version");
    struct hsess *hs;
    unsigned char key_hash[32];
    const char *bot;

    if (!mcpd_listener_authenticate(tp->base.daemon, c, req, &bot, key_hash))
        return NULL;

    if (sid == NULL) {
        respond_error(c, 400, MCPD_RPC_SERVER_ERROR,
                      "Bad Request: Mcp-Session-Id header is required");
        return NULL;
    }
    hs = strlen(sid) == 32 ? mcpd_map_get(&tp->sessions, sid, 32) : NULL;
    /* a session is bound to the key that opened it: another bot's key finds nothing */
    if (hs && bot && !mcpd_session_key_matches(hs->s, key_hash))
        hs = NULL;
    if (hs == NULL) {
        respond_error(c, 404, MCPD_RPC_SERVER_ERROR, "Session not found");
        return NULL;
    }
    /* Only unsupported values are refused: clients in the wild (the
     * conformance suite among them) send an older supported version. */
    if (pv && !mcpd_session_version_supported(pv)) {
        respond_error(c, 400, MCPD_RPC_SERVER_ERROR,
                      "Bad Request: unsupported MCP-Protocol-Version");
        return NULL;
    }
    return hs;
}

/* ---- POST -------------------------------------------------------------------------------- */

/* Looks at the raw body only to tell whether it is an initialize request. */
static bool is_initialize(json_t *root)
{
    return json_is_object(root) && json_is_string(json_object_get(root, "method")) &&
           strcmp(json_string_value(json_object_get(root, "method")), "initialize") == 0 &&
           json_object_get(root, "id") != NULL;
}

/*
 * A single message that is not valid JSON-RPC is refused with HTTP 400 (the
 * transport spec wants an error status for input the server cannot take).
 * Returns true when `root` may go on.
 */
static bool invalid_message(struct mcpd_http_conn *c, json_t *root)
{
    struct mcpd_rpc_error err;
    struct mcpd_msg m;
    if (!json_is_object(root) || mcpd_jsonrpc_classify(&m, root, &err) == 0)
        return true;
    respond_error(c, 400, err.code, err.message);
    return false;
}

/* ---- stateless POSTs (2026-07-28) ------------------------------------------------------ */

/*
 * True when header `name` is present and equals `want`; a value of the form
 * =?base64?<b64>?= is compared decoded.
 */
static bool header_is(struct mcpd_http_request *req, const char *name, const char *want)
{
    const char *v = mcpd_http_header(req, name);
    return v != NULL && mcpd_session_header_is(v, want);
}

/* Sends a ready JSON-RPC message (borrowed) with `status`. */
static void respond_json(struct mcpd_http_conn *c, int status, const json_t *msg)
{
    char *text = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
    if (text == NULL) {
        respond_error(c, 500, MCPD_RPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    mcpd_http_respond(c, status, "application/json", NULL, text, strlen(text));
    free(text);
}

/* An error response naming the request's id (borrowed; the modern era wants it echoed). */
static void respond_rpc_error(struct mcpd_http_conn *c, int status, json_t *id, int code,
                              const char *msg)
{
    json_t *e = mcpd_jsonrpc_error_new(id, code, msg, NULL);

    respond_json(c, status, e);
    json_decref(e);
}

/*
 * SEP-2243: a tools/call argument the tool marks with x-mcp-header is
 * mirrored in Mcp-Param-<suffix>; missing, undecodable or different is
 * 400 + -32020. Numbers compare by value, booleans as true/false.
 */
static bool params_match(struct http_tp *tp, struct mcpd_http_conn *c,
                         struct mcpd_http_request *req, json_t *root, const char *bot)
{
    json_t *want = mcpd_session_param_headers(tp->base.daemon, bot, root), *v;
    const char *suffix, *bad = NULL;
    char name[96], text[64], why[200];

    json_object_foreach (want, suffix, v) {
        bool same;

        snprintf(name, sizeof(name), "mcp-param-%s", suffix);
        if (json_is_string(v)) {
            same = header_is(req, name, json_string_value(v));
        } else if (json_is_boolean(v)) {
            same = header_is(req, name, json_is_true(v) ? "true" : "false");
        } else if (json_is_integer(v)) {
            snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            same = header_is(req, name, text);
        } else { /* a real: any spelling of the same value */
            const char *h = mcpd_http_header(req, name);
            char *end = NULL;

            same = h && *h && strtod(h, &end) == json_real_value(v) && *end == '\0';
        }
        if (!same) {
            bad = suffix;
            break;
        }
    }
    if (bad)
        snprintf(why, sizeof(why),
                 "Bad Request: the Mcp-Param-%.60s header is missing, not valid or does not "
                 "match the argument",
                 bad);
    json_decref(want);
    if (bad == NULL)
        return true;
    respond_rpc_error(c, 400, json_object_get(root, "id"), MCPD_RPC_HEADER_MISMATCH, why);
    return false;
}

/*
 * A modern POST mirrors its body in headers; a missing or different one is
 * answered 400 + -32020 here. Returns true when they all match.
 */
static bool headers_match(struct mcpd_http_conn *c, struct mcpd_http_request *req, json_t *root)
{
    const char *method = json_string_value(json_object_get(root, "method"));
    json_t *params = json_object_get(root, "params");
    const char *name = NULL, *bad = NULL;
    char why[120];

    if (strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0)
        name = json_string_value(json_object_get(params, "name"));
    else if (strcmp(method, "resources/read") == 0)
        name = json_string_value(json_object_get(params, "uri"));
    if (!header_is(req, "mcp-protocol-version", MCPD_MODERN_VERSION))
        bad = "MCP-Protocol-Version";
    else if (!header_is(req, "mcp-method", method))
        bad = "Mcp-Method";
    else if (name && !header_is(req, "mcp-name", name)) /* no name: the body's error says so */
        bad = "Mcp-Name";
    if (bad == NULL)
        return true;
    snprintf(why, sizeof(why), "Bad Request: the %s header is missing or does not match the body",
             bad);
    respond_rpc_error(c, 400, json_object_get(root, "id"), MCPD_RPC_HEADER_MISMATCH, why);
    return false;
}

/* A POST that is served without a session: modern, or server/discover outside one. */
static bool is_stateless(struct mcpd_http_request *req, json_t *root, enum mcpd_era era)
{
    const char *method = json_string_value(json_object_get(root, "method"));
    if (era != MCPD_ERA_LEGACY)
        return true;
    return method && strcmp(method, "server/discover") == 0 && json_object_get(root, "id") &&
           mcpd_http_header(req, "mcp-session-id") == NULL;
}

/*
 * Serves a stateless request in a transient session, opened exactly as for
 * initialize (same authentication and bot) and never named to the client.
 */
static void handle_stateless(struct http_tp *tp, struct mcpd_http_conn *c,
                             struct mcpd_http_request *req, json_t *root, enum mcpd_era era,
                             json_t *error)
{
    struct opener who;
    struct exchange *ex;
    struct mcpd_session *s;

    if (!mcpd_listener_authenticate(tp->base.daemon, c, req, &who.bot, who.key_hash))
        return;
    if (era == MCPD_ERA_INVALID) {
        const char *v = mcpd_session_meta_version(root);

        /* a header that names another version than _meta is a mismatch, not a version error */
        if (v != NULL && !header_is(req, "mcp-protocol-version", v)) {
            respond_rpc_error(c, 400, json_object_get(root, "id"), MCPD_RPC_HEADER_MISMATCH,
                              "Bad Request: the MCP-Protocol-Version header is missing or does "
                              "not match the body");
            return;
        }
        respond_json(c, 400, error);
        return;
    }
    if (era == MCPD_ERA_MODERN &&
        (!headers_match(c, req, root) || !params_match(tp, c, req, root, who.bot)))
        return;
    if ((ex = calloc(1, sizeof(*ex))) == NULL) {
        respond_error(c, 500, MCPD_RPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    if ((s = open_session(tp, c, req, &who)) == NULL) {
        free(ex);
        return;
    }
    ex->sink.ops = &exchange_ops;
    ex->tp = tp;
    ex->conn = c;
    ex->s = s; /* open_session's reference */
    snprintf(ex->extra, sizeof(ex->extra), "X-Accel-Buffering: no\r\n");
    mcpd_http_conn_on_abort(c, exchange_abort, ex);
    ex->held = true;
    mcpd_session_serve_stateless(s, root, &ex->sink);
    ex->held = false;
    if (ex->finished)
        exchange_free(ex);
}

static void handle_post(struct http_tp *tp, struct mcpd_http_conn *c, struct mcpd_http_request *req)
{
    const char *ct = mcpd_http_header(req, "content-type");
    const char *acc = mcpd_http_header(req, "accept");
    struct hsess *hs;
    struct exchange *ex;
    struct mcpd_rpc_error err;
    json_t *probe, *error;
    enum mcpd_era era;
    bool init, answered;
    unsigned n;

    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0) {
        respond_error(c, 415, MCPD_RPC_SERVER_ERROR,
                      "Unsupported Media Type: Content-Type must be application/json");
        return;
    }
    if (!accepts(acc, "application/json") || !accepts(acc, "text/event-stream")) {
        respond_error(c, 406, MCPD_RPC_SERVER_ERROR,
                      "Not Acceptable: Accept must list application/json and text/event-stream");
        return;
    }
    /* Decoded once: the message decides between a new session and an existing one. */
    probe = mcpd_jsonrpc_decode(req->body, req->body_len, MCPD_MAX_JSON_DEPTH, &err);
    if (probe == NULL) {
        respond_error(c, 400, err.code, err.message);
        return;
    }
    init = is_initialize(probe);
    if (!invalid_message(c, probe)) {
        json_decref(probe);
        return;
    }
    if (tp->stopping) {
        json_decref(probe);
        respond_error(c, 503, MCPD_RPC_SERVER_ERROR, "Service Unavailable: shutting down");
        return;
    }
    era = mcpd_session_era(probe, &error);
    if (era == MCPD_ERA_LEGACY && !init && json_object_get(probe, "id") != NULL &&
        json_is_string(json_object_get(probe, "method")) &&
        mcpd_http_header(req, "mcp-session-id") == NULL &&
        header_is(req, "mcp-protocol-version", MCPD_MODERN_VERSION)) {
        /* the header says 2026-07-28, the body lacks its _meta */
        era = MCPD_ERA_INVALID;
        error = mcpd_session_meta_missing(probe);
    }
    if (is_stateless(req, probe, era)) {
        handle_stateless(tp, c, req, probe, era, error);
        json_decref(error);
        json_decref(probe);
        return;
    }
    hs = init ? new_session(tp, c, req) : find_session(tp, c, req);
    if (hs && json_is_array(probe) && !mcpd_session_allows_batch(hs->s)) {
        json_decref(probe);
        respond_error(c, 400, MCPD_RPC_INVALID_REQUEST,
                      "Invalid Request: batches are only part of protocol 2025-03-26");
        return;
    }
    ex = hs ? calloc(1, sizeof(*ex)) : NULL;
    if (ex == NULL) {
        json_decref(probe);
        if (hs)
            respond_error(c, 500, MCPD_RPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    ex->sink.ops = &exchange_ops;
    ex->tp = tp;
    ex->hs = hs;
    ex->conn = c;
    ex->s = hs->s;
    ex->is_init = init;
    mcpd_session_ref(hs->s);
    if (init)
        snprintf(ex->extra, sizeof(ex->extra), "Mcp-Session-Id: %s\r\n", mcpd_session_id(hs->s));
    mcpd_http_conn_on_abort(c, exchange_abort, ex);
    ex->held = true; /* answers may come synchronously: ex stays ours until we look */
    n = mcpd_session_feed_json(hs->s, probe, &ex->sink, &answered);
    json_decref(probe);
    ex->held = false;
    if (init && mcpd_session_version(hs->s) == NULL)
        mcpd_session_close(hs->s); /* initialize failed: no session */
    if (ex->finished) {            /* answered (or the client left) while we were feeding */
        exchange_free(ex);
        return;
    }
    if (n == 0 && !answered) { /* notifications and responses only */
        mcpd_http_conn_on_abort(c, NULL, NULL);
        mcpd_http_respond(c, 202, NULL, NULL, "", 0);
        exchange_free(ex);
    }
}

/* ---- GET streams ---------------------------------------------------------------------- */

static int gstream_send(struct mcpd_sink *sk, const char *data, size_t len, bool final)
{
    struct gstream *g = (struct gstream *)sk;
    int r;
    if (g->conn == NULL && !g->detached)
        return MCPD_ECLOSED;
    r = emit(g->conn, g->rs, data, len); /* detached: recorded only */
    if (r == MCPD_ETOOBIG)
        LOG_WARN("http", "GET stream reads too slowly; closing it");
    return r;
}

static const struct mcpd_sink_ops gstream_ops = { gstream_send, NULL, NULL };

static void gstream_unlink(struct gstream *g)
{
    struct hsess *hs = g->hs;
    for (struct gstream **pp = &hs->streams; *pp; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            hs->nstreams--;
            break;
        }
    }
    if (g->rs)
        g->rs->g = NULL;
    /* messages not tied to a request go to the newest remaining stream */
    mcpd_session_sink_closed(hs->s, &g->sink);
    mcpd_session_set_stream(hs->s, hs->streams ? &hs->streams->sink : NULL);
}

static void gstream_abort(struct mcpd_http_conn *c, void *data)
{
    struct gstream *g = data;
    g->conn = NULL;
    if (g->rs && g->hs->streams == g) {
        /* the session's stream: keep recording what it would have carried */
        g->detached = true;
        g->detached_at = now_ms(g->tp);
        return;
    }
    gstream_unlink(g);
    free(g);
}

static void stream_end(struct gstream *g, bool remove_from_session)
{
    if (g->conn) {
        mcpd_http_conn_on_abort(g->conn, NULL, NULL);
        mcpd_http_stream_end(g->conn, false);
    }
    if (remove_from_session)
        gstream_unlink(g);
    free(g);
}

struct replay_ctx {
    struct mcpd_http_conn *c;
    unsigned stream;
};

static void replay_one(void *arg, uint64_t seq, const char *data, size_t len)
{
    struct replay_ctx *rc = arg;
    char id[48];
    mcpd_replay_id(id, sizeof(id), rc->stream, seq);
    mcpd_http_stream_event(rc->c, id, "message", data, len);
}

/*
 * GET with Last-Event-ID: replay what the client missed on that stream, then
 * go on live if the stream's POST or GET is still producing.
 */
static void resume_stream(struct http_tp *tp, struct hsess *hs, struct mcpd_http_conn *c,
                          const char *last_id)
{
    struct replay_ctx rc = { c, 0 };
    struct rstream *rs;
    unsigned stream;
    uint64_t seq;

    if (!mcpd_replay_parse_id(last_id, &stream, &seq) || (rs = rstream_find(hs, stream)) == NULL ||
        (rs->ex && !rs->ex->detached) || (rs->g && !rs->g->detached)) {
        respond_error(c, 404, MCPD_RPC_SERVER_ERROR, "Not Found: unknown or busy Last-Event-ID");
        return;
    }
    if (!mcpd_replay_can_resume(&rs->rp, seq)) {
        respond_error(c, 404, MCPD_RPC_SERVER_ERROR, "Not Found: those events are no longer kept");
        return;
    }
    if (mcpd_http_stream_begin(c, 200, "text/event-stream", NULL) != 0)
        return;
    rc.stream = stream;
    mcpd_replay_since(&rs->rp, seq, replay_one, &rc);
    LOG_DEBUG("http", "session=%s stream %u resumed after event %llu", mcpd_session_id(hs->s),
              stream, (unsigned long long)seq);
    if (rs->ex) { /* the POST is still waiting for its answer: it continues here */
        struct exchange *ex = rs->ex;
        detached_remove(ex);
        ex->conn = c;
        mcpd_http_conn_on_abort(c, exchange_abort, ex);
    } else if (rs->g) {
        rs->g->detached = false;
        rs->g->conn = c;
        mcpd_http_conn_on_abort(c, gstream_abort, rs->g);
    } else {
        mcpd_http_stream_end(c, true); /* everything was in the replay */
    }
}

/* Detached GET streams are given up when a new stream opens without resuming them. */
static void drop_detached_gstreams(struct hsess *hs)
{
    for (struct gstream *g = hs->streams, *next; g; g = next) {
        next = g->next;
        if (g->detached)
            stream_end(g, true);
    }
}

/*
 * GET and DELETE only ever find sessions: a modern client (2026-07-28), which
 * has none, is told the endpoint takes POST only. True when answered.
 */
static bool modern_post_only(struct mcpd_http_conn *c, struct mcpd_http_request *req)
{
    if (mcpd_http_header(req, "mcp-session-id") != NULL ||
        !header_is(req, "mcp-protocol-version", MCPD_MODERN_VERSION))
        return false;
    static const char why[] =
        "Method Not Allowed: protocol 2026-07-28 has no GET stream or DELETE\n";

    mcpd_http_respond(c, 405, "text/plain", "Allow: POST\r\n", why, sizeof(why) - 1);
    return true;
}

static void handle_get(struct http_tp *tp, struct mcpd_http_conn *c, struct mcpd_http_request *req)
{
    const char *last_id = mcpd_http_header(req, "last-event-id");
    struct hsess *hs;
    struct gstream *g;

    if (modern_post_only(c, req))
        return;
    if (!accepts(mcpd_http_header(req, "accept"), "text/event-stream")) {
        respond_error(c, 406, MCPD_RPC_SERVER_ERROR,
                      "Not Acceptable: Accept must list text/event-stream");
        return;
    }
    if ((hs = find_session(tp, c, req)) == NULL)
        return;
    if (last_id) {
        resume_stream(tp, hs, c, last_id);
        return;
    }
    drop_detached_gstreams(hs);
    if (hs->nstreams >= MCPD_MAX_GET_STREAMS) {
        respond_error(c, 429, MCPD_RPC_SERVER_ERROR, "Too Many Requests: too many open streams");
        return;
    }
    g = calloc(1, sizeof(*g));
    if (g == NULL || mcpd_http_stream_begin(c, 200, "text/event-stream", NULL) != 0) {
        free(g);
        return;
    }
    g->sink.ops = &gstream_ops;
    g->tp = tp;
    g->hs = hs;
    g->conn = c;
    g->next = hs->streams;
    hs->streams = g;
    hs->nstreams++;
    if ((g->rs = rstream_new(hs)) != NULL)
        g->rs->g = g;
    mcpd_http_conn_on_abort(c, gstream_abort, g);
    mcpd_session_set_stream(hs->s, &g->sink);
    prime(hs, c, g->rs);
    /* an SSE comment tells proxies and clients the stream is open */
    mcpd_http_stream_write(c, ": mcpd\n\n", 8);
}

/* Every second: resume deadlines; every MCPD_SSE_KEEPALIVE_MS: keep-alive comments. */
static void tick_session(void *value, void *arg)
{
    struct hsess *hs = value;
    struct http_tp *tp = arg;
    uint64_t now = now_ms(tp);
    bool keepalive = tp->ticks % (MCPD_SSE_KEEPALIVE_MS / 1000) == 0;
    for (struct gstream *g = hs->streams, *next; g; g = next) {
        next = g->next;
        if (g->detached && now - g->detached_at > MCPD_RESUME_GRACE_MS)
            stream_end(g, true);
        else if (keepalive && g->conn)
            mcpd_http_stream_write(g->conn, ":\n\n", 3);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct http_tp *tp = t->data;
    uint64_t now = now_ms(tp);
    struct exchange **pp = &tp->detached;
    tp->ticks++;
    while (*pp) {
        struct exchange *ex = *pp;
        if (now - ex->detached_at <= MCPD_RESUME_GRACE_MS) {
            pp = &ex->dnext;
            continue;
        }
        /* nobody came back for it: now the disconnect cancels the request */
        *pp = ex->dnext;
        ex->detached = false;
        LOG_DEBUG("http", "session=%s stream %u not resumed; cancelling", mcpd_session_id(ex->s),
                  ex->rs->rp.stream);
        mcpd_session_sink_closed(ex->s, &ex->sink);
        exchange_free(ex);
    }
    mcpd_map_foreach(&tp->sessions, tick_session, tp);
    if (tp->ticks % (MCPD_SSE_KEEPALIVE_MS / 1000) == 0)
        for (struct exchange *ex = tp->live; ex; ex = ex->lnext)
            if (ex->conn && !ex->finished && !ex->aborted)
                mcpd_http_stream_write(ex->conn, ":\n\n", 3);
}

/* ---- dispatch -------------------------------------------------------------------------- */

static void handle_delete(struct http_tp *tp, struct mcpd_http_conn *c,
                          struct mcpd_http_request *req)
{
    struct hsess *hs;

    if (modern_post_only(c, req) || (hs = find_session(tp, c, req)) == NULL)
        return;
    LOG_DEBUG("http", "session=%s deleted by client", mcpd_session_id(hs->s));
    mcpd_session_close(hs->s);
    mcpd_http_respond(c, 200, NULL, NULL, "", 0);
}

static void on_request(struct mcpd_http_conn *c, struct mcpd_http_request *req, void *data)
{
    struct http_tp *tp = data;
    if (strcmp(req->method, "POST") == 0)
        handle_post(tp, c, req);
    else if (strcmp(req->method, "GET") == 0)
        handle_get(tp, c, req);
    else if (strcmp(req->method, "DELETE") == 0)
        handle_delete(tp, c, req);
    else
        mcpd_http_respond(c, 405, "text/plain", "Allow: GET, POST, DELETE\r\n",
                          "method not allowed\n", 19);
}

/* ---- transport vtable ------------------------------------------------------------------- */

static int tp_start(struct mcpd_transport *base)
{
    struct http_tp *tp = (struct http_tp *)base;
    int r = mcpd_listener_route(base->daemon, base->daemon->cfg->http_path, on_request, tp);
    if (r != 0)
        return r;
    uv_timer_init(base->daemon->loop, &tp->tick);
    tp->tick.data = tp;
    tp->started = true;
    uv_timer_start(&tp->tick, on_tick, 1000, 1000);
    return 0;
}

static void tp_stop(struct mcpd_transport *base)
{
    ((struct http_tp *)base)->stopping = true;
}

static void on_keepalive_closed(uv_handle_t *h)
{
    struct http_tp *tp = h->data;
    mcpd_map_dispose(&tp->sessions);
    free(tp);
}

static void tp_close(struct mcpd_transport *base)
{
    struct http_tp *tp = (struct http_tp *)base;
    tp->stopping = true;
    if (!tp->started) {
        mcpd_map_dispose(&tp->sessions);
        free(tp);
        return;
    }
    uv_close((uv_handle_t *)&tp->tick, on_keepalive_closed);
}

static const struct mcpd_transport_ops http_ops = { "http", tp_start, tp_stop, tp_close };

int mcpd_http_transport_new(struct mcpd_transport **out)
{
    struct http_tp *tp = calloc(1, sizeof(*tp));
    *out = NULL;
    if (tp == NULL)
        return MCPD_ENOMEM;
    tp->base.ops = &http_ops;
    mcpd_map_init(&tp->sessions);
    *out = &tp->base;
    return 0;
}

int mcpd_http_transport_port(const struct mcpd_transport *base)
{
    return mcpd_listener_port(base->daemon);
}
