/*
 * stdio.c - MCP toward one client over stdin/stdout, as launched by an IDE.
 *
 * Messages are newline-delimited JSON; a line longer than max_message is
 * answered with a parse error and skipped up to its newline. stdout carries
 * only MCP (logs go to stderr). EOF on stdin ends the session and starts the
 * daemon's graceful shutdown.
 *
 * A modern (2026-07-28) request on the stream gets a transient session of its
 * own, like one over HTTP (same bot as the stdio session), answering on
 * stdout; notifications/cancelled is offered to those sessions too, since a
 * modern client cancels over stdio with that notification.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcpd/authz.h"
#include "mcpd/error.h"
#include "mcpd/jsonrpc.h"
#include "mcpd/limits.h"
#include "mcpd/log.h"
#include "mcpd/net/lines.h"
#include "mcpd/session.h"
#include "transports.h"

struct transient;

struct stdio_tp {
    struct mcpd_transport base;
    struct mcpd_sink sink;
    uv_pipe_t in, out;
    struct mcpd_line_reader lines;
    struct mcpd_session *session;
    struct transient *transients; /* modern requests in flight */
    bool closed;
    int handles;
};

/* The session of one modern request, until it closes itself. */
struct transient {
    struct transient *next, **prevp;
    struct mcpd_session *s;
};

static int sink_send(struct mcpd_sink *sk, const char *data, size_t len, bool final)
{
    struct stdio_tp *t = (struct stdio_tp *)((char *)sk - offsetof(struct stdio_tp, sink));
    if (t->closed)
        return MCPD_ECLOSED;
    /* a client that stops reading its stdout must not make mcpd grow without bound */
    return mcpd_write_line((uv_stream_t *)&t->out, data, len, MCPD_WRITE_HIGH_WATER * 16);
}

static const struct mcpd_sink_ops stdout_ops = { sink_send, NULL, NULL };

static void send_error_json(struct stdio_tp *t, json_t *e)
{
    if (e)
        mcpd_session_send_json(&t->sink, e, true);
    json_decref(e);
}

static void on_transient_close(struct mcpd_session *s, void *data)
{
    struct transient *tr = data;
    *tr->prevp = tr->next;
    if (tr->next)
        tr->next->prevp = tr->prevp;
    mcpd_session_unref(&tr->s);
    free(tr);
}

static void serve_modern(struct stdio_tp *t, json_t *root)
{
    struct transient *tr = calloc(1, sizeof(*tr));
    int r = tr ? mcpd_session_new(&tr->s, t->base.daemon, "stdio", "stdin") : MCPD_ENOMEM;

    if (r != 0) {
        free(tr);
        send_error_json(
            t, mcpd_jsonrpc_error_new(json_object_get(root, "id"),
                                      r == MCPD_EBUSY ? MCPD_RPC_BUSY : MCPD_RPC_INTERNAL_ERROR,
                                      mcpd_strerror(r), NULL));
        return;
    }
    if (*mcpd_session_bot(t->session))
        mcpd_session_set_bot(tr->s, mcpd_session_bot(t->session), NULL);
    tr->next = t->transients;
    if (tr->next)
        tr->next->prevp = &tr->next;
    tr->prevp = &t->transients;
    t->transients = tr;
    mcpd_session_on_close(tr->s, on_transient_close, tr);
    mcpd_session_serve_stateless(tr->s, root, &t->sink);
}

static bool is_cancel(json_t *root)
{
    const char *m = json_string_value(json_object_get(root, "method"));
    return m && strcmp(m, "notifications/cancelled") == 0 && json_object_get(root, "id") == NULL;
}

static void feed_legacy(struct stdio_tp *t, json_t *root)
{
    bool answered;
    mcpd_session_feed_json(t->session, root, &t->sink, &answered);
    /* the session closes on a later loop turn: the list does not change here */
    for (struct transient *tr = t->transients; tr && is_cancel(root); tr = tr->next)
        mcpd_session_feed_json(tr->s, root, &t->sink, &answered);
}

static void on_line(void *arg, const char *p, size_t len)
{
    struct stdio_tp *t = arg;
    struct mcpd_rpc_error err;
    json_t *root, *error;

    if (t->session == NULL)
        return;
    if ((root = mcpd_jsonrpc_decode(p, len, MCPD_MAX_JSON_DEPTH, &err)) == NULL) {
        send_error_json(t, mcpd_jsonrpc_error_new(NULL, err.code, err.message, NULL));
        return;
    }
    switch (mcpd_session_era(root, &error)) {
    case MCPD_ERA_MODERN:
        serve_modern(t, root);
        break;
    case MCPD_ERA_INVALID:
        send_error_json(t, error ? error
                                 : mcpd_jsonrpc_error_new(NULL, MCPD_RPC_INTERNAL_ERROR,
                                                          "out of memory", NULL));
        break;
    default:
        feed_legacy(t, root);
    }
    json_decref(root);
}

static void on_overflow(void *arg)
{
    struct stdio_tp *t = arg;
    json_t *e =
        mcpd_jsonrpc_error_new(NULL, MCPD_RPC_PARSE_ERROR, "Parse error: message too large", NULL);
    if (e)
        mcpd_session_send_json(&t->sink, e, true);
    json_decref(e);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct stdio_tp *t = h->data;
    mcpd_line_reader_alloc(&t->lines, buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct stdio_tp *t = s->data;
    if (n < 0 && n != UV_ENOBUFS) {
        LOG_INFO("stdio", "stdin closed; shutting down");
        uv_read_stop(s);
        if (t->session)
            mcpd_session_close(t->session);
        mcpd_daemon_shutdown(t->base.daemon);
        return;
    }
    mcpd_line_reader_feed(&t->lines, n, &t->closed);
}

static void on_session_close(struct mcpd_session *s, void *data)
{
    struct stdio_tp *t = data;
    mcpd_session_unref(&t->session);
}

static int tp_start(struct mcpd_transport *tp)
{
    struct stdio_tp *t = (struct stdio_tp *)tp;
    uv_loop_t *loop = tp->daemon->loop;
    int r;

    mcpd_line_reader_init(&t->lines, tp->daemon->cfg->limits.max_message + 1, on_line, on_overflow,
                          t);
    if ((r = uv_pipe_init(loop, &t->in, 0)) != 0 || (r = uv_pipe_open(&t->in, STDIN_FILENO)) != 0)
        return r;
    if ((r = uv_pipe_init(loop, &t->out, 0)) != 0 ||
        (r = uv_pipe_open(&t->out, STDOUT_FILENO)) != 0)
        return r;
    t->handles = 2;
    t->in.data = t->out.data = t;
    if ((r = mcpd_session_new(&t->session, tp->daemon, "stdio", "stdin")) != 0)
        return r;
    if (mcpd_authz_active(tp->daemon->authz)) {
        const char *bot = tp->daemon->stdio_bot;
        if (bot == NULL || !mcpd_authz_has_bot(tp->daemon->authz, bot)) {
            LOG_ERROR("stdio",
                      "bots are configured: name a configured bot with --bot or auth.default_bot");
            return MCPD_ECONFIG;
        }
        mcpd_session_set_bot(t->session, bot, NULL);
    }
    mcpd_session_on_close(t->session, on_session_close, t);
    mcpd_session_set_stream(t->session, &t->sink);
    return uv_read_start((uv_stream_t *)&t->in, on_alloc, on_read);
}

static void tp_stop(struct mcpd_transport *tp)
{
    struct stdio_tp *t = (struct stdio_tp *)tp;
    if (t->handles)
        uv_read_stop((uv_stream_t *)&t->in);
}

static void on_closed(uv_handle_t *h)
{
    struct stdio_tp *t = h->data;
    if (--t->handles == 0) {
        mcpd_line_reader_dispose(&t->lines);
        free(t);
    }
}

static void tp_close(struct mcpd_transport *tp)
{
    struct stdio_tp *t = (struct stdio_tp *)tp;
    t->closed = true;
    if (t->session)
        mcpd_session_close(t->session);
    while (t->transients)
        mcpd_session_close(t->transients->s);
    if (t->handles == 0) {
        mcpd_line_reader_dispose(&t->lines);
        free(t);
        return;
    }
    uv_close((uv_handle_t *)&t->in, on_closed);
    uv_close((uv_handle_t *)&t->out, on_closed);
}

static const struct mcpd_transport_ops stdio_ops = { "stdio", tp_start, tp_stop, tp_close };

int mcpd_stdio_transport_new(struct mcpd_transport **out)
{
    struct stdio_tp *t = calloc(1, sizeof(*t));
    *out = NULL;
    if (t == NULL)
        return MCPD_ENOMEM;
    t->base.ops = &stdio_ops;
    t->sink.ops = &stdout_ops;
    *out = &t->base;
    return 0;
}
