/*
 * agent.c - the upstream adapter of a connected agent: the agent is an MCP
 * server at the other end of a WebSocket it opened to GET /agent (see
 * mcpd/agents.c for authentication and the registry). Each text message is
 * one JSON-RPC message; the core does the handshake, listing, ids,
 * deadlines and cancellation exactly as for a child process.
 *
 * One upstream per agent lives as long as the daemon; its connection comes
 * and goes. The core never restarts it (the agent dials again by itself):
 * start() succeeds only while a connection is attached.
 *
 * Heartbeat: a ping every agents.ping_interval; when a pong is not back
 * within agents.ping_timeout of the first unanswered ping, the connection
 * is dropped. A second connection with the same key replaces the first
 * (closed with 4000); rotate, disable and delete close it with 4001, 4003,
 * 4004; shutdown with 1001.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters.h"
#include "mcpd/error.h"
#include "mcpd/log.h"
#include "mcpd/net/http_server.h"
#include "mcpd/net/ws.h"

struct agent_conn {
    struct agent_up *a; /* NULL once this connection no longer serves the upstream */
    struct mcpd_ws *ws;
};

struct agent_up {
    struct mcpd_upstream up; /* first member */
    struct agent_conn *cur;
    uv_timer_t ping_timer, pong_timer;
    int own_handles;
};

static struct agent_up *from_up(struct mcpd_upstream *up)
{
    return (struct agent_up *)up;
}

static void stop_timers(struct agent_up *a)
{
    uv_timer_stop(&a->ping_timer);
    uv_timer_stop(&a->pong_timer);
}

/*
 * Takes the current connection off the upstream and closes it with `code`
 * (0: drop it without a close handshake), then reports the disconnect.
 */
static void detach(struct agent_up *a, unsigned code, const char *why)
{
    struct agent_conn *conn = a->cur;

    if (conn == NULL)
        return;
    a->cur = NULL;
    conn->a = NULL;
    stop_timers(a);
    if (code == 0)
        mcpd_ws_abort(conn->ws);
    else
        mcpd_ws_close(conn->ws, (uint16_t)code, why);
    mcpd_upstream_on_disconnected(&a->up, why);
}

/* ---- WebSocket callbacks ------------------------------------------------------------------- */

static void on_ws_message(struct mcpd_ws *ws, const char *msg, size_t len, void *data)
{
    struct agent_conn *conn = data;

    (void)ws;
    if (conn->a != NULL && len > 0) /* an empty message is no JSON-RPC message: ignored */
        mcpd_upstream_on_message(&conn->a->up, msg, len);
}

static void on_ws_pong(struct mcpd_ws *ws, void *data)
{
    struct agent_conn *conn = data;

    (void)ws;
    if (conn->a != NULL)
        uv_timer_stop(&conn->a->pong_timer);
}

static void on_ws_close(struct mcpd_ws *ws, int code, int http_status, const char *reason,
                        void *data)
{
    struct agent_conn *conn = data;
    struct agent_up *a = conn->a;
    char why[160];

    (void)ws;
    (void)http_status;
    free(conn);
    if (a == NULL)
        return; /* replaced or kicked: reported already */
    a->cur = NULL;
    stop_timers(a);
    snprintf(why, sizeof(why), "connection closed (%d%s%.100s)", code, reason[0] ? ": " : "",
             reason);
    mcpd_upstream_on_disconnected(&a->up, why);
}

static const struct mcpd_ws_callbacks ws_cb = {
    .on_message = on_ws_message,
    .on_pong = on_ws_pong,
    .on_close = on_ws_close,
};

/* ---- heartbeat ------------------------------------------------------------------------------ */

static void on_pong_timeout(uv_timer_t *t)
{
    struct agent_up *a = t->data;
    char why[96];

    snprintf(why, sizeof(why), "no pong within %u ms", a->up.daemon->cfg->agent_ping_timeout_ms);
    LOG_WARN("agent", "agent=%s %s; dropped", a->up.name, why);
    detach(a, 0, why);
}

static void on_ping_timer(uv_timer_t *t)
{
    struct agent_up *a = t->data;

    if (a->cur == NULL)
        return;
    if (mcpd_ws_ping(a->cur->ws) != 0) {
        detach(a, 0, "ping failed");
        return;
    }
    if (!uv_is_active((uv_handle_t *)&a->pong_timer))
        uv_timer_start(&a->pong_timer, on_pong_timeout, a->up.daemon->cfg->agent_ping_timeout_ms,
                       0);
}

/* ---- the link (mcpd/agents.c) --------------------------------------------------------------- */

static int link_accept(struct mcpd_upstream *up, struct mcpd_http_conn *c,
                       struct mcpd_http_request *req)
{
    struct agent_up *a = from_up(up);
    struct agent_conn *conn = calloc(1, sizeof(*conn));
    int r;

    if (conn == NULL) {
        mcpd_http_respond(c, 503, "text/plain", NULL, "out of memory", 13);
        return MCPD_ENOMEM;
    }
    if ((r = mcpd_ws_accept(&conn->ws, c, req, &ws_cb, conn, up->daemon->cfg->agent_max_message)) !=
        0) {
        free(conn); /* answered (400, 426, 503) */
        return r;
    }
    if (a->cur != NULL) {
        LOG_INFO("agent", "agent=%s: a new connection replaces the current one", up->name);
        detach(a, 4000, "replaced by a new connection");
    }
    conn->a = a;
    a->cur = conn;
    mcpd__upstream_start(up);
    return 0;
}

static void link_kick(struct mcpd_upstream *up, unsigned code, const char *reason)
{
    detach(from_up(up), code, reason);
}

static const struct mcpd_agent_link_ops agent_link = { link_accept, link_kick };

/* ---- upstream ops -----------------------------------------------------------------------------
 */

static int up_start(struct mcpd_upstream *up)
{
    struct agent_up *a = from_up(up);
    unsigned every = up->daemon->cfg->agent_ping_interval_ms;

    if (a->cur == NULL)
        return MCPD_ECLOSED;
    uv_timer_start(&a->ping_timer, on_ping_timer, every, every);
    mcpd_upstream_on_connected(up);
    return 0;
}

static int up_send(struct mcpd_upstream *up, const char *data, size_t len)
{
    struct agent_up *a = from_up(up);

    if (a->cur == NULL)
        return MCPD_ECLOSED;
    return mcpd_ws_send_text(a->cur->ws, data, len);
}

static void up_stop(struct mcpd_upstream *up)
{
    struct agent_up *a = from_up(up);
    bool bye = up->daemon->shutting_down;

    /* the close callback reports the disconnect (never from inside the core's call) */
    if (a->cur != NULL)
        mcpd_ws_close(a->cur->ws, bye ? 1001 : 1000, bye ? "mcpd shutting down" : "closed by mcpd");
}

static void on_own_handle_closed(uv_handle_t *h)
{
    struct agent_up *a = h->data;

    if (--a->own_handles == 0)
        free(a);
}

static void up_free(struct mcpd_upstream *up)
{
    struct agent_up *a = from_up(up);

    if (a->cur != NULL) {
        a->cur->a = NULL;
        mcpd_ws_abort(a->cur->ws);
        a->cur = NULL;
    }
    a->own_handles = 2;
    uv_close((uv_handle_t *)&a->ping_timer, on_own_handle_closed);
    uv_close((uv_handle_t *)&a->pong_timer, on_own_handle_closed);
}

static const struct mcpd_upstream_ops agent_ops = { "agent", up_start, up_send, up_stop, up_free };

int mcpd_agent_upstream_new(struct mcpd_upstream **out, struct mcpd_daemon *d,
                            const struct mcpd_server_config *cfg)
{
    struct agent_up *a = calloc(1, sizeof(*a));

    *out = NULL;
    if (a == NULL)
        return MCPD_ENOMEM;
    mcpd_upstream_init(&a->up, d, cfg, &agent_ops);
    a->up.link = &agent_link;
    uv_timer_init(d->loop, &a->ping_timer);
    uv_timer_init(d->loop, &a->pong_timer);
    a->ping_timer.data = a->pong_timer.data = a;
    *out = &a->up;
    return 0;
}
