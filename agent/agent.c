/*
 * agent.c - the agent program's connection to mcpd and its MCP server
 * side: one WebSocket to mcpd at a time, JSON-RPC requests from mcpd
 * dispatched to the builtins or to a bridged server, reconnection with
 * exponential backoff and full jitter, and a clean stop on SIGINT/SIGTERM.
 *
 *   IDLE --connect--> DIALING --on_open--> OPEN --on_close--> WAITING --timer--> DIALING
 *                        \------------on_close (refused)------/
 *   any --signal--> STOPPING (close 1000, children stopped, handles closed)
 *
 * Each connection has a generation number; answers to calls of an older
 * generation (mcpd's ids are only meaningful on their own connection) are
 * dropped. The agent key goes into the Authorization header and nowhere
 * else: it is never logged.
 */
#include "agent/agent.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/bridge.h"
#include "agent/builtins.h"
#include "agent/config.h"
#include "mcpd/error.h"
#include "mcpd/jsonrpc.h"
#include "mcpd/limits.h"
#include "mcpd/log.h"
#include "mcpd/net/tls.h"
#include "mcpd/net/ws.h"

enum conn_state { C_IDLE, C_DIALING, C_OPEN, C_WAITING, C_STOPPING };

struct call { /* a shell_exec in flight */
    struct call *next;
    struct agent *a;
    json_t *id;
    unsigned gen;
    struct mcpd_agent_shell_run *run;
    bool cancelled;
};

struct agent {
    uv_loop_t *loop;
    struct mcpd_agent_config *cfg;
    struct mcpd_tls_ctx *tls;
    struct mcpd_ws *ws;
    enum conn_state st;
    unsigned gen, attempt;
    bool initialized; /* mcpd sent notifications/initialized on this connection */
    uv_timer_t retry;
    uv_timer_t heartbeat; /* pings mcpd every ping_interval while open */
    uint64_t last_pong;   /* uv_now of the last pong (or of on_open) */
    uv_signal_t sigint, sigterm;
    struct mcpd_agent_builtins *builtins;
    struct mcpd_agent_bridge **bridges;
    size_t nbridges, bridges_open;
    struct call *calls;
    size_t ncalls;
    char auth[96];
    int exit_code;
};

static void dial(struct agent *a);

static void set_state(struct agent *a, enum conn_state st)
{
    static const char *const names[] = { "idle", "dialing", "open", "waiting", "stopping" };
    LOG_DEBUG("agent", "connection: %s -> %s", names[a->st], names[st]);
    a->st = st;
}

/* ---- sending to mcpd ------------------------------------------------------------------------ */

static void send_msg(struct agent *a, json_t *msg)
{
    char *s;
    int rc;

    if (a->ws == NULL || a->st != C_OPEN)
        return;
    if ((s = json_dumps(msg, JSON_COMPACT)) == NULL)
        return;
    if ((rc = mcpd_ws_send_text(a->ws, s, strlen(s))) != 0)
        LOG_WARN("agent", "cannot send to mcpd: %s", mcpd_strerror(rc));
    free(s);
}

static void send_result(struct agent *a, json_t *id, json_t *result)
{
    json_t *m = json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result);
    if (m)
        send_msg(a, m);
    json_decref(m);
}

static void send_error(struct agent *a, json_t *id, int code, const char *message)
{
    json_t *m = json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id, "error", "code",
                          code, "message", message);
    if (m)
        send_msg(a, m);
    json_decref(m);
}

static void on_bridge_send(json_t *msg, unsigned gen, void *data)
{
    struct agent *a = data;
    if (gen == UINT_MAX || gen == a->gen)
        send_msg(a, msg);
}

static void on_bridge_changed(struct mcpd_agent_bridge *br, void *data)
{
    struct agent *a = data;
    json_t *m;

    if (a->st != C_OPEN || !a->initialized)
        return;
    LOG_INFO("agent", "tools of group %s changed; telling mcpd", mcpd_agent_bridge_name(br));
    m = json_pack("{s:s,s:s}", "jsonrpc", "2.0", "method", "notifications/tools/list_changed");
    send_msg(a, m);
    json_decref(m);
}

/* ---- requests from mcpd --------------------------------------------------------------------- */

static json_t *all_tools(struct agent *a)
{
    json_t *arr = json_array();
    mcpd_agent_builtins_tools(a->builtins, arr);
    for (size_t i = 0; i < a->nbridges; i++)
        mcpd_agent_bridge_tools(a->bridges[i], arr);
    return arr;
}

static void log_tools(json_t *tools)
{
    char line[1024];
    size_t i, n = 0;
    json_t *t;

    line[0] = '\0';
    json_array_foreach (tools, i, t) {
        int w = snprintf(line + n, sizeof(line) - n, "%s%s", i ? ", " : "",
                         json_string_value(json_object_get(t, "name")));
        if (w < 0 || (size_t)w >= sizeof(line) - n) {
            snprintf(line + (sizeof(line) > 5 ? sizeof(line) - 5 : 0), 5, "...");
            break;
        }
        n += (size_t)w;
    }
    LOG_INFO("agent", "mcpd listed %zu tools: %s", json_array_size(tools), line);
}

static void on_shell_done(struct mcpd_agent_shell_run *run, json_t *result, void *data)
{
    struct call *c = data, **pp;
    struct agent *a = c->a;

    (void)run;
    if (!c->cancelled && c->gen == a->gen)
        send_result(a, c->id, result);
    else
        json_decref(result);
    for (pp = &a->calls; *pp && *pp != c; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = c->next;
    a->ncalls--;
    json_decref(c->id);
    free(c);
}

static void call_builtin(struct agent *a, json_t *id, const char *tool, json_t *args)
{
    struct mcpd_agent_shell_run *run = NULL;
    json_t *result = NULL;
    struct call *c;
    int rc;

    if (strcmp(tool, "shell_exec") == 0 && a->ncalls >= MCPD_AGENT_MAX_SHELL_CALLS) {
        send_result(a, id, mcpd_agent_tool_text("too many commands running; try again later", 1));
        return;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        send_error(a, id, MCPD_RPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    rc = mcpd_agent_builtins_call(a->builtins, tool, args, &result, &run, on_shell_done, c);
    if (rc < 0) {
        free(c);
        send_error(a, id, MCPD_RPC_INVALID_PARAMS, "unknown tool");
        return;
    }
    if (rc == 0) {
        free(c);
        send_result(a, id, result);
        return;
    }
    c->a = a;
    c->id = json_deep_copy(id);
    c->gen = a->gen;
    c->run = run;
    c->next = a->calls;
    a->calls = c;
    a->ncalls++;
}

static void on_call(struct agent *a, json_t *id, json_t *params)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    const char *dot = name ? strchr(name, '.') : NULL;
    char group[40];
    int rc;

    if (dot == NULL || (size_t)(dot - name) >= sizeof(group)) {
        send_error(a, id, MCPD_RPC_INVALID_PARAMS, "unknown tool");
        return;
    }
    memcpy(group, name, (size_t)(dot - name));
    group[dot - name] = '\0';
    if (strcmp(group, "builtin") == 0) {
        call_builtin(a, id, dot + 1, json_object_get(params, "arguments"));
        return;
    }
    for (size_t i = 0; i < a->nbridges; i++) {
        if (strcmp(mcpd_agent_bridge_name(a->bridges[i]), group) != 0)
            continue;
        rc = mcpd_agent_bridge_call(a->bridges[i], id, a->gen, dot + 1, params);
        if (rc == MCPD_EUNAVAIL)
            send_error(a, id, MCPD_RPC_SERVER_ERROR, "the local server is not running");
        else if (rc == MCPD_EBUSY)
            send_error(a, id, MCPD_RPC_BUSY, "too many calls in flight");
        else if (rc != 0)
            send_error(a, id, MCPD_RPC_INTERNAL_ERROR, mcpd_strerror(rc));
        return;
    }
    send_error(a, id, MCPD_RPC_INVALID_PARAMS, "unknown tool");
}

static void on_cancelled(struct agent *a, json_t *params)
{
    json_t *id = json_object_get(params, "requestId");

    if (id == NULL)
        return;
    for (struct call *c = a->calls; c; c = c->next) {
        if (c->gen == a->gen && json_equal(c->id, id) && !c->cancelled) {
            c->cancelled = true;
            mcpd_agent_shell_cancel(c->run);
            return;
        }
    }
    for (size_t i = 0; i < a->nbridges; i++)
        mcpd_agent_bridge_cancel(a->bridges[i], id, a->gen);
}

static void on_request(struct agent *a, struct mcpd_msg *m)
{
    if (strcmp(m->method, "initialize") == 0) {
        const char *v = json_string_value(json_object_get(m->params, "protocolVersion"));
        send_result(a, m->id,
                    json_pack("{s:s,s:{s:{s:b},s:{}},s:{s:s,s:s}}", "protocolVersion",
                              v ? v : "2025-06-18", "capabilities", "tools", "listChanged", 1,
                              "logging", "serverInfo", "name",
                              a->cfg->name ? a->cfg->name : "mcpd-agent", "version", MCPD_VERSION));
    } else if (strcmp(m->method, "ping") == 0) {
        send_result(a, m->id, json_object());
    } else if (strcmp(m->method, "tools/list") == 0) {
        json_t *tools = all_tools(a);
        log_tools(tools);
        send_result(a, m->id, json_pack("{s:o}", "tools", tools));
    } else if (strcmp(m->method, "tools/call") == 0) {
        if (!json_is_object(m->params))
            send_error(a, m->id, MCPD_RPC_INVALID_PARAMS, "params must be an object");
        else
            on_call(a, m->id, m->params);
    } else {
        send_error(a, m->id, MCPD_RPC_METHOD_NOT_FOUND, "method not found");
    }
}

static void on_message(struct mcpd_ws *ws, const char *msg, size_t len, void *data)
{
    struct agent *a = data;
    struct mcpd_rpc_error err;
    struct mcpd_msg m;
    json_t *root;

    (void)ws;
    if (len == 0 || msg == NULL) { /* an empty message is no JSON-RPC message */
        LOG_WARN("agent", "empty message from mcpd ignored");
        return;
    }
    if ((root = mcpd_jsonrpc_decode(msg, len, MCPD_MAX_JSON_DEPTH, &err)) == NULL ||
        !json_is_object(root) || mcpd_jsonrpc_classify(&m, root, &err) != 0) {
        LOG_WARN("agent", "invalid message from mcpd ignored");
        json_decref(root);
        return;
    }
    if (m.kind == MCPD_MSG_REQUEST)
        on_request(a, &m);
    else if (m.kind == MCPD_MSG_NOTIFICATION && strcmp(m.method, "notifications/initialized") == 0)
        a->initialized = true;
    else if (m.kind == MCPD_MSG_NOTIFICATION && strcmp(m.method, "notifications/cancelled") == 0)
        on_cancelled(a, m.params);
    json_decref(root);
}

/* ---- connection ----------------------------------------------------------------------------- */

/*
 * Kills every running shell_exec; their answers are dropped. A cancel may
 * finish the call at once (on_shell_done unlinks and frees it), so the next
 * pointer is read first.
 */
static void cancel_calls(struct agent *a)
{
    struct call *c, *next;
    for (c = a->calls; c; c = next) {
        next = c->next;
        if (!c->cancelled) {
            c->cancelled = true;
            mcpd_agent_shell_cancel(c->run);
        }
    }
}

static void on_retry(uv_timer_t *t)
{
    dial(t->data);
}

static unsigned backoff(struct agent *a, bool refused)
{
    unsigned lo = a->cfg->reconnect_min_ms, hi = a->cfg->reconnect_max_ms, cap = lo;

    if (refused)
        return hi;
    for (unsigned i = 0; i < a->attempt && cap < hi; i++)
        cap = cap > hi / 2 ? hi : cap * 2;
    if (cap > hi)
        cap = hi;
    a->attempt++;
    /* Full jitter between min and the current cap. */
    return lo + (cap > lo ? (unsigned)((unsigned long)random() % (cap - lo + 1)) : 0);
}

static void schedule(struct agent *a, bool refused)
{
    unsigned ms = backoff(a, refused);
    set_state(a, C_WAITING);
    LOG_INFO("agent", "reconnecting in %u ms", ms);
    uv_timer_start(&a->retry, on_retry, ms, 0);
}

/*
 * The agent's side of the heartbeat: mcpd pings the agent (and drops it
 * when no pong comes), but a silently vanished mcpd (a cut network, a
 * stopped host) would leave the agent waiting forever; so the agent pings
 * too and drops the connection when no pong came within ping_timeout.
 */
static void on_heartbeat(uv_timer_t *t)
{
    struct agent *a = t->data;

    if (a->st != C_OPEN || a->ws == NULL)
        return;
    if (uv_now(a->loop) - a->last_pong > a->cfg->ping_timeout_ms) {
        LOG_WARN("agent", "no pong from mcpd within %u ms; reconnecting", a->cfg->ping_timeout_ms);
        mcpd_ws_abort(a->ws); /* on_close follows with 1006 */
        return;
    }
    mcpd_ws_ping(a->ws);
}

static void on_pong(struct mcpd_ws *ws, void *data)
{
    struct agent *a = data;
    (void)ws;
    a->last_pong = uv_now(a->loop);
}

static void on_open(struct mcpd_ws *ws, void *data)
{
    struct agent *a = data;
    unsigned every;
    (void)ws;
    a->attempt = 0;
    a->initialized = false;
    set_state(a, C_OPEN);
    a->last_pong = uv_now(a->loop);
    /* check at least twice per timeout, so a missing pong is seen in time */
    every = a->cfg->ping_interval_ms;
    if (every > a->cfg->ping_timeout_ms / 2)
        every = a->cfg->ping_timeout_ms / 2 ? a->cfg->ping_timeout_ms / 2 : 1;
    uv_timer_start(&a->heartbeat, on_heartbeat, every, every);
    LOG_INFO("agent", "connected to %s (%s)", a->cfg->server_url, mcpd_ws_peer(ws));
}

static const char *close_meaning(int code, int status)
{
    if (status == 401)
        return "mcpd refused the agent key (401): unknown or missing key; check agent_key "
               "(mcpd agents list)";
    if (status == 403)
        return "mcpd refused the agent (403): it is disabled (mcpd agents enable NAME)";
    switch (code) {
    case 4000:
        return "replaced by a newer connection with the same key (is another agent running?)";
    case 4001:
        return "the agent key was rotated: put the new key in agent_key";
    case 4003:
        return "the agent was disabled on mcpd";
    case 4004:
        return "the agent was deleted on mcpd";
    case 1001:
        return "mcpd is shutting down";
    case 1009:
        return "a message was too big for mcpd";
    default:
        return NULL;
    }
}

static void on_close(struct mcpd_ws *ws, int code, int http_status, const char *reason, void *data)
{
    struct agent *a = data;
    const char *meaning = close_meaning(code, http_status);
    bool refused = http_status == 401 || http_status == 403 || (code >= 4000 && code <= 4004);

    (void)ws;
    a->ws = NULL;
    a->initialized = false;
    if (a->st != C_STOPPING)
        uv_timer_stop(&a->heartbeat);
    /* Calls of this connection can no longer be answered. */
    a->gen++;
    if (a->st == C_STOPPING) {
        /* on_signal cancelled the calls; the bridges may already be freed */
        LOG_INFO("agent", "disconnected from mcpd");
        return;
    }
    for (size_t i = 0; i < a->nbridges; i++)
        mcpd_agent_bridge_drop(a->bridges[i], a->gen);
    cancel_calls(a);
    if (refused)
        LOG_ERROR("agent", "%s", meaning);
    else if (http_status)
        LOG_WARN("agent", "mcpd answered the upgrade with HTTP %d: %s", http_status, reason);
    else if (meaning)
        LOG_WARN("agent", "disconnected (%d): %s", code, meaning);
    else
        LOG_WARN("agent", "disconnected (%d): %s", code, reason);
    schedule(a, refused);
}

static void dial(struct agent *a)
{
    static const struct mcpd_ws_callbacks cbs = {
        .on_open = on_open, .on_message = on_message, .on_pong = on_pong, .on_close = on_close
    };
    const char *hdr[] = { a->auth };
    bool tls = strncmp(a->cfg->server_url, "wss://", 6) == 0;
    int rc;

    if (a->st == C_STOPPING)
        return;
    set_state(a, C_DIALING);
    LOG_DEBUG("agent", "dialing %s", a->cfg->server_url);
    rc = mcpd_ws_connect(&a->ws, a->loop, a->cfg->server_url, hdr, 1, tls ? a->tls : NULL, &cbs, a,
                         MCPD_AGENT_MAX_MESSAGE, MCPD_AGENT_CONNECT_MS);
    if (rc != 0) {
        a->ws = NULL;
        LOG_WARN("agent", "cannot dial %s: %s", a->cfg->server_url, mcpd_strerror(rc));
        schedule(a, false);
    }
}

/* ---- start and stop ------------------------------------------------------------------------- */

static void on_bridge_closed(void *data)
{
    struct agent *a = data;
    a->bridges_open--;
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct agent *a = s->data;

    if (a->st == C_STOPPING) {
        LOG_WARN("agent", "second signal: exiting now");
        _exit(1);
    }
    LOG_INFO("agent", "signal %d: stopping", signum);
    set_state(a, C_STOPPING);
    uv_timer_stop(&a->retry);
    uv_close((uv_handle_t *)&a->retry, NULL);
    uv_close((uv_handle_t *)&a->heartbeat, NULL);
    if (a->ws)
        mcpd_ws_close(a->ws, 1000, "agent stopping");
    cancel_calls(a);
    for (size_t i = 0; i < a->nbridges; i++)
        mcpd_agent_bridge_close(a->bridges[i], on_bridge_closed, a);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    uv_close((uv_handle_t *)&a->sigterm, NULL);
}

static int parse_args(int argc, char **argv, const char **config, const char **level)
{
    *config = *level = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: mcpd agent -c agent.yaml [--log-level LEVEL]\n"
                   "Dials mcpd's /agent endpoint (server_url) with agent_key and serves this\n"
                   "machine's builtins and local MCP servers to it (examples/agent.yaml).\n");
            return -1;
        }
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            *config = argv[++i];
        else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc)
            *level = argv[++i];
        else {
            fprintf(stderr,
                    "mcpd agent: unknown or incomplete option '%s'\n"
                    "usage: mcpd agent -c agent.yaml [--log-level LEVEL]\n",
                    argv[i]);
            return 2;
        }
    }
    if (*config == NULL) {
        fprintf(stderr, "mcpd agent: no configuration file given (-c agent.yaml)\n");
        return 2;
    }
    return 0;
}

/* True when the authority after "ws://" is localhost, 127.x.y.z or [::1] (for a warning only). */
static bool loopback_url(const char *auth)
{
    size_t n = strcspn(auth, ":/");

    if (strncmp(auth, "[::1]", 5) == 0)
        return true;
    if (n == 9 && strncmp(auth, "localhost", 9) == 0)
        return true;
    return n >= 7 && strncmp(auth, "127.", 4) == 0 && strspn(auth, "0123456789.") == n;
}

static int setup(struct agent *a)
{
    char err[256];
    int rc, n;

    n = snprintf(a->auth, sizeof(a->auth), "Authorization: Bearer %s", a->cfg->agent_key);
    if (n < 0 || (size_t)n >= sizeof(a->auth))
        return MCPD_ECONFIG;
    if (strncmp(a->cfg->server_url, "wss://", 6) == 0 &&
        (rc = mcpd_tls_client_ctx_new(&a->tls, a->cfg->tls_ca_file, a->cfg->tls_verify, err,
                                      sizeof(err))) != 0) {
        fprintf(stderr, "mcpd agent: tls: %s\n", err);
        return rc;
    }
    if (!a->cfg->tls_verify)
        LOG_WARN("agent", "tls.verify is false: mcpd's certificate is not checked");
    if (strncmp(a->cfg->server_url, "ws://", 5) == 0 && !loopback_url(a->cfg->server_url + 5))
        LOG_WARN("agent", "server_url is ws:// to a host that is not loopback: the agent key "
                          "crosses the network in cleartext (use wss://)");
    if ((rc = mcpd_agent_builtins_new(&a->builtins, a->loop, a->cfg)) != 0)
        return rc;
    if (a->cfg->nservers && (a->bridges = calloc(a->cfg->nservers, sizeof(*a->bridges))) == NULL)
        return MCPD_ENOMEM;
    for (size_t i = 0; i < a->cfg->nservers; i++) {
        static const struct mcpd_agent_bridge_cbs bcbs = { .send = on_bridge_send,
                                                           .changed = on_bridge_changed };
        if ((rc = mcpd_agent_bridge_new(&a->bridges[i], a->loop, &a->cfg->servers[i],
                                        a->cfg->call_timeout_ms, &bcbs, a)) != 0)
            return rc;
        a->nbridges++;
        a->bridges_open++;
    }
    uv_timer_init(a->loop, &a->retry);
    uv_timer_init(a->loop, &a->heartbeat);
    a->retry.data = a->heartbeat.data = a;
    uv_signal_init(a->loop, &a->sigint);
    uv_signal_init(a->loop, &a->sigterm);
    a->sigint.data = a->sigterm.data = a;
    uv_signal_start(&a->sigint, on_signal, SIGINT);
    uv_signal_start(&a->sigterm, on_signal, SIGTERM);
    return 0;
}

int mcpd_agent_main(int argc, char **argv)
{
    struct agent a;
    struct mcpd_diag diag;
    const char *path, *level;
    uv_loop_t loop;
    int rc, lvl;

    if ((rc = parse_args(argc, argv, &path, &level)) != 0)
        return rc < 0 ? 0 : rc;
    memset(&a, 0, sizeof(a));
    if (mcpd_agent_config_load(&a.cfg, path, &diag) != 0) {
        fprintf(stderr, "mcpd agent: %s\n", diag.msg);
        return 1;
    }
    if (a.cfg->log_level >= 0)
        mcpd_log_level = a.cfg->log_level;
    if (level) {
        if ((lvl = mcpd_log_parse_level(level)) < 0) {
            fprintf(stderr, "mcpd agent: unknown log level '%s'\n", level);
            mcpd_agent_config_free(a.cfg);
            return 2;
        }
        mcpd_log_level = lvl;
    }
    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)time(NULL) ^ (unsigned)getpid());
    uv_loop_init(&loop);
    a.loop = &loop;
    if ((rc = setup(&a)) != 0) {
        fprintf(stderr, "mcpd agent: cannot start: %s\n", mcpd_strerror(rc));
        a.exit_code = 1;
        /* Stop what did start, then drain the loop. */
        for (size_t i = 0; i < a.nbridges; i++)
            mcpd_agent_bridge_close(a.bridges[i], on_bridge_closed, &a);
    } else {
        LOG_INFO("agent", "mcpd agent %s starting: %s, %zu local servers", MCPD_VERSION,
                 a.cfg->server_url, a.cfg->nservers);
        dial(&a);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    mcpd_agent_builtins_free(a.builtins);
    free(a.bridges);
    mcpd_tls_ctx_free(a.tls);
    explicit_bzero(a.auth, sizeof(a.auth));
    mcpd_agent_config_free(a.cfg);
    return a.exit_code;
}
