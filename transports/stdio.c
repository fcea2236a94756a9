/*
 * stdio.c - MCP toward one client over stdin/stdout, as launched by an IDE.
 *
 * Messages are newline-delimited JSON; a line longer than max_message is
 * answered with a parse error and skipped up to its newline. stdout carries
 * only MCP (logs go to stderr). EOF on stdin ends the session and starts the
 * daemon's graceful shutdown.
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

struct stdio_tp {
    struct mcpd_transport base;
    struct mcpd_sink sink;
    uv_pipe_t in, out;
    struct mcpd_line_reader lines;
    struct mcpd_session *session;
    bool closed;
    int handles;
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

static void on_line(void *arg, const char *p, size_t len)
{
    struct stdio_tp *t = arg;
    bool answered;
    mcpd_session_feed(t->session, p, len, &t->sink, &answered);
}

static void on_overflow(void *arg)
{
    struct stdio_tp *t = arg;
    json_t *e = mcpd_jsonrpc_error_new(NULL, MCPD_RPC_PARSE_ERROR, "Parse error: message too large",
                                       NULL);
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

    mcpd_line_reader_init(&t->lines, tp->daemon->cfg->limits.max_message + 1, on_line,
                          on_overflow, t);
    if ((r = uv_pipe_init(loop, &t->in, 0)) != 0 || (r = uv_pipe_open(&t->in, STDIN_FILENO)) != 0)
        return r;
    if ((r = uv_pipe_init(loop, &t->out, 0)) != 0 || (r = uv_pipe_open(&t->out, STDOUT_FILENO)) != 0)
        return r;
    t->handles = 2;
    t->in.data = t->out.data = t;
    if ((r = mcpd_session_new(&t->session, tp->daemon, "stdio", "stdin")) != 0)
        return r;
    if (mcpd_authz_active(tp->daemon->authz)) {
        const char *bot = tp->daemon->stdio_bot;
        if (bot == NULL || !mcpd_authz_has_bot(tp->daemon->authz, bot)) {
            LOG_ERROR("stdio", "bots are configured: name a configured bot with --bot or auth.default_bot");
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
