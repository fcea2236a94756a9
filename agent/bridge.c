/*
 * bridge.c - a local stdio MCP server behind the agent (see bridge.h).
 *
 *   STARTING --initialize ok--> LISTING --last page--> READY
 *       ^                                                |  list_changed: LISTING again
 *       |                                                v
 *   BACKOFF <------------- child exited / stdout closed (any state)
 *
 * The child's process and pipes live in a struct proc that is freed when
 * its four handles are closed; only then is a restart scheduled, so a new
 * child never overlaps the old one. Requests to the child use the bridge's
 * own integer ids; struct pending maps them back to mcpd's ids.
 */
#include "agent/bridge.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcpd/buf.h"
#include "mcpd/env.h"
#include "mcpd/error.h"
#include "mcpd/jsonrpc.h"
#include "mcpd/limits.h"
#include "mcpd/log.h"
#include "mcpd/net/lines.h"

enum state { ST_STARTING, ST_LISTING, ST_READY, ST_BACKOFF, ST_CLOSING };
enum kind { K_CALL, K_INIT, K_LIST };

struct pending {
    struct pending *next;
    int64_t cid;
    json_t *mid; /* mcpd's id (K_CALL) */
    unsigned gen;
    uint64_t started;
    enum kind kind;
};

struct proc {
    struct mcpd_agent_bridge *br;
    uv_process_t proc;
    uv_pipe_t in, out, err;
    struct mcpd_line_reader lr_out, lr_err;
    int open;
    bool exited, gone;
};

struct mcpd_agent_bridge {
    uv_loop_t *loop;
    const struct mcpd_agent_server *srv;
    unsigned call_timeout_ms;
    struct mcpd_agent_bridge_cbs cbs;
    void *data;
    struct proc *p;
    enum state st;
    json_t *tools;   /* exposed tools while READY (or the last good list while relisting) */
    json_t *listing; /* pages gathered so far */
    int pages;
    int64_t next_id;
    struct pending *pending;
    size_t npending;
    uv_timer_t restart, sweep;
    unsigned backoff_ms;
    int timers_open;
    void (*close_cb)(void *);
    void *close_data;
};

static void start(struct mcpd_agent_bridge *br);

const char *mcpd_agent_bridge_name(const struct mcpd_agent_bridge *br)
{
    return br->srv->name;
}

static void set_state(struct mcpd_agent_bridge *br, enum state st)
{
    static const char *const names[] = { "starting", "listing", "ready", "backoff", "closing" };
    LOG_DEBUG("agent", "server %s: %s -> %s", br->srv->name, names[br->st], names[st]);
    br->st = st;
}

/* ---- writing to the child ------------------------------------------------------------------- */

static int child_send(struct mcpd_agent_bridge *br, json_t *msg)
{
    char *s;
    int rc;

    if (br->p == NULL || br->p->exited || uv_is_closing((uv_handle_t *)&br->p->in))
        return MCPD_EUNAVAIL;
    if ((s = json_dumps(msg, JSON_COMPACT)) == NULL)
        return MCPD_ENOMEM;
    rc = mcpd_write_line((uv_stream_t *)&br->p->in, s, strlen(s), MCPD_MAX_UPSTREAM_MSG);
    free(s);
    return rc;
}

static struct pending *add_pending(struct mcpd_agent_bridge *br, enum kind k, json_t *mid,
                                   unsigned gen)
{
    struct pending *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->cid = ++br->next_id;
    q->kind = k;
    q->mid = mid ? json_deep_copy(mid) : NULL;
    q->gen = gen;
    q->started = uv_now(br->loop);
    q->next = br->pending;
    br->pending = q;
    br->npending++;
    return q;
}

static struct pending *take_pending(struct mcpd_agent_bridge *br, int64_t cid)
{
    for (struct pending **pp = &br->pending; *pp; pp = &(*pp)->next) {
        struct pending *q = *pp;
        if (q->cid == cid) {
            *pp = q->next;
            br->npending--;
            return q;
        }
    }
    return NULL;
}

static void free_pending(struct pending *q)
{
    json_decref(q->mid);
    free(q);
}

static int request(struct mcpd_agent_bridge *br, enum kind k, const char *method, json_t *params)
{
    struct pending *q = add_pending(br, k, NULL, 0);
    json_t *msg;
    int rc;

    if (q == NULL) {
        json_decref(params);
        return MCPD_ENOMEM;
    }
    msg = json_pack("{s:s,s:I,s:s,s:o}", "jsonrpc", "2.0", "id", (json_int_t)q->cid, "method",
                    method, "params", params ? params : json_object());
    rc = msg ? child_send(br, msg) : MCPD_ENOMEM;
    json_decref(msg);
    return rc;
}

static void notify_child(struct mcpd_agent_bridge *br, const char *method, json_t *params)
{
    json_t *msg = json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method", method, "params",
                            params ? params : json_object());
    if (msg)
        child_send(br, msg);
    json_decref(msg);
}

/* An error response to mcpd for a forwarded call. */
static void reply_error(struct mcpd_agent_bridge *br, struct pending *q, int code, const char *m)
{
    json_t *msg = json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", q->mid, "error",
                            "code", code, "message", m);
    if (msg)
        br->cbs.send(msg, q->gen, br->data);
    json_decref(msg);
}

/* ---- tool lists ----------------------------------------------------------------------------- */

static json_t *expose(const struct mcpd_agent_bridge *br, json_t *t)
{
    const char *name = json_string_value(json_object_get(t, "name"));
    char wire[256];
    json_t *c, *meta;

    if (name == NULL ||
        snprintf(wire, sizeof(wire), "%s.%s", br->srv->name, name) >= (int)sizeof(wire))
        return NULL;
    if ((c = json_deep_copy(t)) == NULL)
        return NULL;
    json_object_set_new(c, "name", json_string(wire));
    meta = json_object_get(c, "_meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(c, "_meta", meta);
    }
    json_object_set_new(meta, "io.mcpd/group", json_string(br->srv->name));
    json_object_set_new(meta, "io.mcpd/tool", json_string(name));
    /* the configured dimensions; a tool's own declaration is kept */
    if (br->srv->dimensions && !json_object_get(meta, "io.mcpd/dimensions"))
        json_object_set(meta, "io.mcpd/dimensions", br->srv->dimensions);
    return c;
}

void mcpd_agent_bridge_tools(const struct mcpd_agent_bridge *br, json_t *arr)
{
    size_t i;
    json_t *t, *c;

    if (br->tools == NULL || br->p == NULL || br->p->exited)
        return;
    json_array_foreach (br->tools, i, t) {
        if ((c = expose(br, t)) != NULL)
            json_array_append_new(arr, c);
    }
}

static void list_page(struct mcpd_agent_bridge *br, const char *cursor)
{
    json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : json_object();
    request(br, K_LIST, "tools/list", params);
}

static void on_list_result(struct mcpd_agent_bridge *br, json_t *result)
{
    json_t *tools = json_object_get(result, "tools");
    const char *cursor = json_string_value(json_object_get(result, "nextCursor"));

    if (br->listing == NULL)
        br->listing = json_array();
    if (json_is_array(tools))
        json_array_extend(br->listing, tools);
    if (json_array_size(br->listing) > MCPD_MAX_UPSTREAM_TOOLS) {
        LOG_WARN("agent", "server %s: more than %d tools; the rest are ignored", br->srv->name,
                 MCPD_MAX_UPSTREAM_TOOLS);
        cursor = NULL;
    }
    if (cursor && cursor[0] && ++br->pages < MCPD_MAX_LIST_PAGES) {
        list_page(br, cursor);
        return;
    }
    json_decref(br->tools);
    br->tools = br->listing;
    br->listing = NULL;
    br->pages = 0;
    br->backoff_ms = 0;
    set_state(br, ST_READY);
    LOG_INFO("agent", "server %s: ready with %zu tools", br->srv->name, json_array_size(br->tools));
    br->cbs.changed(br, br->data);
}

/* ---- messages from the child ---------------------------------------------------------------- */

static void on_response(struct mcpd_agent_bridge *br, struct mcpd_msg *m)
{
    json_int_t cid = json_is_integer(m->id) ? json_integer_value(m->id) : -1;
    struct pending *q = take_pending(br, cid);
    json_t *out;

    if (q == NULL)
        return; /* late (timed out or cancelled) */
    if (q->kind == K_CALL) {
        out = json_pack("{s:s,s:O}", "jsonrpc", "2.0", "id", q->mid);
        if (out && m->error)
            json_object_set(out, "error", m->error);
        else if (out)
            json_object_set(out, "result", m->result ? m->result : json_object());
        if (out)
            br->cbs.send(out, q->gen, br->data);
        json_decref(out);
    } else if (m->error) {
        LOG_WARN("agent", "server %s: %s failed", br->srv->name,
                 q->kind == K_INIT ? "initialize" : "tools/list");
        if (br->p && !br->p->exited)
            uv_process_kill(&br->p->proc, SIGTERM);
    } else if (q->kind == K_INIT) {
        notify_child(br, "notifications/initialized", NULL);
        set_state(br, ST_LISTING);
        list_page(br, NULL);
    } else {
        on_list_result(br, m->result);
    }
    free_pending(q);
}

static void on_child_request(struct mcpd_agent_bridge *br, struct mcpd_msg *m)
{
    json_t *r;
    if (strcmp(m->method, "ping") == 0)
        r = json_pack("{s:s,s:O,s:{}}", "jsonrpc", "2.0", "id", m->id, "result");
    else
        r = json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", m->id, "error", "code",
                      MCPD_RPC_METHOD_NOT_FOUND, "message", "not supported by the mcpd agent");
    if (r)
        child_send(br, r);
    json_decref(r);
}

static void on_child_line(void *arg, const char *line, size_t len)
{
    struct proc *p = arg;
    struct mcpd_agent_bridge *br = p->br;
    struct mcpd_rpc_error err;
    struct mcpd_msg m;
    json_t *root;

    if (p->gone || br->p != p)
        return;
    if ((root = mcpd_jsonrpc_decode(line, len, MCPD_MAX_JSON_DEPTH, &err)) == NULL ||
        !json_is_object(root) || mcpd_jsonrpc_classify(&m, root, &err) != 0) {
        LOG_WARN("agent", "server %s: invalid message ignored", br->srv->name);
        json_decref(root);
        return;
    }
    if (m.kind == MCPD_MSG_RESPONSE)
        on_response(br, &m);
    else if (m.kind == MCPD_MSG_REQUEST)
        on_child_request(br, &m);
    else if (strcmp(m.method, "notifications/tools/list_changed") == 0) {
        if (br->st == ST_READY) {
            set_state(br, ST_LISTING);
            list_page(br, NULL);
        }
    } else if (strcmp(m.method, "notifications/progress") == 0 ||
               strcmp(m.method, "notifications/message") == 0) {
        br->cbs.send(root, UINT_MAX, br->data);
    }
    json_decref(root);
}

static void on_overflow(void *arg)
{
    struct proc *p = arg;
    LOG_WARN("agent", "server %s: message larger than %u bytes dropped", p->br->srv->name,
             MCPD_MAX_UPSTREAM_MSG);
}

static void on_err_line(void *arg, const char *line, size_t len)
{
    struct proc *p = arg;
    LOG_INFO("agent", "[%s] %.*s", p->br->srv->name, (int)(len > 512 ? 512 : len), line);
}

/* ---- process lifecycle ---------------------------------------------------------------------- */

static void fail_all(struct mcpd_agent_bridge *br, const char *why)
{
    struct pending *q;
    while ((q = br->pending) != NULL) {
        br->pending = q->next;
        br->npending--;
        if (q->kind == K_CALL)
            reply_error(br, q, MCPD_RPC_SERVER_ERROR, why);
        free_pending(q);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    struct mcpd_agent_bridge *br = h->data;
    if (--br->timers_open > 0)
        return;
    json_decref(br->tools);
    json_decref(br->listing);
    if (br->close_cb)
        br->close_cb(br->close_data);
    free(br);
}

static void finish_close(struct mcpd_agent_bridge *br)
{
    uv_close((uv_handle_t *)&br->restart, on_timer_closed);
    uv_close((uv_handle_t *)&br->sweep, on_timer_closed);
}

static void on_restart(uv_timer_t *t)
{
    start(t->data);
}

/* All of a child's handles are closed: free it, then restart (or finish closing). */
static void proc_gone(struct proc *p)
{
    struct mcpd_agent_bridge *br = p->br;
    bool had_tools = br->tools != NULL;

    mcpd_line_reader_dispose(&p->lr_out);
    mcpd_line_reader_dispose(&p->lr_err);
    free(p);
    br->p = NULL;
    fail_all(br, "the local server exited");
    json_decref(br->tools);
    json_decref(br->listing);
    br->tools = br->listing = NULL;
    if (br->st == ST_CLOSING) {
        finish_close(br);
        return;
    }
    br->backoff_ms = br->backoff_ms ? br->backoff_ms * 2 : MCPD_RESTART_MIN_MS;
    if (br->backoff_ms > MCPD_RESTART_MAX_MS)
        br->backoff_ms = MCPD_RESTART_MAX_MS;
    LOG_WARN("agent", "server %s: exited; restarting in %u ms", br->srv->name, br->backoff_ms);
    set_state(br, ST_BACKOFF);
    uv_timer_start(&br->restart, on_restart, br->backoff_ms, 0);
    if (had_tools)
        br->cbs.changed(br, br->data);
}

static void on_proc_handle_closed(uv_handle_t *h)
{
    struct proc *p = h->data;
    if (--p->open == 0)
        proc_gone(p);
}

static void close_proc(struct proc *p)
{
    uv_handle_t *hs[] = { (uv_handle_t *)&p->proc, (uv_handle_t *)&p->in, (uv_handle_t *)&p->out,
                          (uv_handle_t *)&p->err };
    if (p->gone)
        return;
    p->gone = true;
    for (size_t i = 0; i < 4; i++)
        if (!uv_is_closing(hs[i]))
            uv_close(hs[i], on_proc_handle_closed);
}

static void on_exit_cb(uv_process_t *h, int64_t status, int sig)
{
    struct proc *p = h->data;
    p->exited = true;
    if (sig)
        LOG_WARN("agent", "server %s: killed by signal %d", p->br->srv->name, sig);
    else
        LOG_INFO("agent", "server %s: exited with status %lld", p->br->srv->name,
                 (long long)status);
    close_proc(p);
}

static void on_alloc_out(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct proc *p = h->data;
    (void)hint;
    mcpd_line_reader_alloc(&p->lr_out, b);
}

static void on_alloc_err(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct proc *p = h->data;
    (void)hint;
    mcpd_line_reader_alloc(&p->lr_err, b);
}

static void on_read_out(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct proc *p = s->data;
    (void)b;
    if (n < 0 && n != UV_ENOBUFS) {
        uv_read_stop(s);
        if (!p->exited)
            uv_process_kill(&p->proc, SIGTERM); /* stdout closed: the child is of no use */
        return;
    }
    mcpd_line_reader_feed(&p->lr_out, n, &p->gone);
}

static void on_read_err(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct proc *p = s->data;
    (void)b;
    if (n < 0 && n != UV_ENOBUFS) {
        uv_read_stop(s);
        return;
    }
    mcpd_line_reader_feed(&p->lr_err, n, &p->gone);
}

static void free_strv(char **v)
{
    for (char **p = v; p && *p; p++)
        free(*p);
    free(v);
}

static void start(struct mcpd_agent_bridge *br)
{
    const struct mcpd_agent_server *srv = br->srv;
    uv_process_options_t opt;
    uv_stdio_container_t io[3];
    char **args = NULL, **env = NULL;
    struct proc *p;
    int rc = MCPD_ENOMEM;

    set_state(br, ST_STARTING);
    if ((p = calloc(1, sizeof(*p))) == NULL)
        goto retry;
    p->br = br;
    mcpd_line_reader_init(&p->lr_out, MCPD_MAX_UPSTREAM_MSG, on_child_line, on_overflow, p);
    mcpd_line_reader_init(&p->lr_err, MCPD_MAX_STDERR_LINE, on_err_line, NULL, p);
    uv_pipe_init(br->loop, &p->in, 0);
    uv_pipe_init(br->loop, &p->out, 0);
    uv_pipe_init(br->loop, &p->err, 0);
    p->proc.data = p->in.data = p->out.data = p->err.data = p;
    if ((args = calloc(srv->nargs + 2, sizeof(*args))) == NULL ||
        (env = mcpd_env_child(srv->env, srv->nenv)) == NULL)
        goto fail;
    args[0] = srv->command;
    for (size_t i = 0; i < srv->nargs; i++)
        args[i + 1] = srv->args[i];
    memset(&opt, 0, sizeof(opt));
    io[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    io[0].data.stream = (uv_stream_t *)&p->in;
    io[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    io[1].data.stream = (uv_stream_t *)&p->out;
    io[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    io[2].data.stream = (uv_stream_t *)&p->err;
    opt.file = srv->command;
    opt.args = args;
    opt.env = env;
    opt.cwd = srv->cwd;
    opt.stdio = io;
    opt.stdio_count = 3;
    opt.exit_cb = on_exit_cb;
    rc = uv_spawn(br->loop, &p->proc, &opt);
    free(args);
    free_strv(env);
    p->open = 4;
    br->p = p;
    if (rc != 0) {
        LOG_ERROR("agent", "server %s: cannot start '%s': %s", srv->name, srv->command,
                  uv_strerror(rc));
        p->exited = true;
        close_proc(p); /* proc_gone schedules the retry */
        return;
    }
    LOG_INFO("agent", "server %s: started (pid %d)", srv->name, p->proc.pid);
    uv_read_start((uv_stream_t *)&p->out, on_alloc_out, on_read_out);
    uv_read_start((uv_stream_t *)&p->err, on_alloc_err, on_read_err);
    request(br, K_INIT, "initialize",
            json_pack("{s:s,s:{},s:{s:s,s:s}}", "protocolVersion", "2025-06-18", "capabilities",
                      "clientInfo", "name", "mcpd-agent", "version", MCPD_VERSION));
    return;
fail:
    free(args);
    free_strv(env);
    mcpd_line_reader_dispose(&p->lr_out);
    mcpd_line_reader_dispose(&p->lr_err);
    /* The pipes were initialised: close them before freeing. */
    p->open = 3;
    p->gone = true;
    br->p = p;
    uv_close((uv_handle_t *)&p->in, on_proc_handle_closed);
    uv_close((uv_handle_t *)&p->out, on_proc_handle_closed);
    uv_close((uv_handle_t *)&p->err, on_proc_handle_closed);
    return;
retry:
    LOG_ERROR("agent", "server %s: cannot start: %s", srv->name, mcpd_strerror(rc));
    set_state(br, ST_BACKOFF);
    uv_timer_start(&br->restart, on_restart, MCPD_RESTART_MAX_MS, 0);
}

/* Once a second: calls past the deadline are answered with an error and cancelled at the child. */
static void on_sweep(uv_timer_t *t)
{
    struct mcpd_agent_bridge *br = t->data;
    uint64_t now = uv_now(br->loop);
    struct pending **pp = &br->pending, *q;

    while ((q = *pp) != NULL) {
        unsigned limit = q->kind == K_CALL ? br->call_timeout_ms : MCPD_INIT_TIMEOUT_MS;
        if (now - q->started < limit) {
            pp = &q->next;
            continue;
        }
        *pp = q->next;
        br->npending--;
        if (q->kind == K_CALL) {
            reply_error(br, q, MCPD_RPC_SERVER_ERROR, "the local server did not answer in time");
            notify_child(
                br, "notifications/cancelled",
                json_pack("{s:I,s:s}", "requestId", (json_int_t)q->cid, "reason", "timed out"));
        } else if (br->p && !br->p->exited) {
            LOG_WARN("agent", "server %s: no answer to %s; restarting it", br->srv->name,
                     q->kind == K_INIT ? "initialize" : "tools/list");
            uv_process_kill(&br->p->proc, SIGKILL);
        }
        free_pending(q);
    }
}

int mcpd_agent_bridge_new(struct mcpd_agent_bridge **out, uv_loop_t *loop,
                          const struct mcpd_agent_server *srv, unsigned call_timeout_ms,
                          const struct mcpd_agent_bridge_cbs *cbs, void *data)
{
    struct mcpd_agent_bridge *br;

    *out = NULL;
    if ((br = calloc(1, sizeof(*br))) == NULL)
        return MCPD_ENOMEM;
    br->loop = loop;
    br->srv = srv;
    br->call_timeout_ms = call_timeout_ms;
    br->cbs = *cbs;
    br->data = data;
    uv_timer_init(loop, &br->restart);
    uv_timer_init(loop, &br->sweep);
    br->restart.data = br->sweep.data = br;
    br->timers_open = 2;
    uv_timer_start(&br->sweep, on_sweep, 1000, 1000);
    uv_unref((uv_handle_t *)&br->sweep);
    start(br);
    *out = br;
    return 0;
}

int mcpd_agent_bridge_call(struct mcpd_agent_bridge *br, json_t *id, unsigned gen, const char *tool,
                           json_t *params)
{
    struct pending *q;
    json_t *msg, *pc;
    int rc;

    if (br->tools == NULL || br->p == NULL || br->p->exited)
        return MCPD_EUNAVAIL;
    if (br->npending >= MCPD_AGENT_MAX_PENDING)
        return MCPD_EBUSY;
    if ((q = add_pending(br, K_CALL, id, gen)) == NULL)
        return MCPD_ENOMEM;
    pc = json_is_object(params) ? json_copy(params) : json_object();
    json_object_set_new(pc, "name", json_string(tool));
    msg = json_pack("{s:s,s:I,s:s,s:o}", "jsonrpc", "2.0", "id", (json_int_t)q->cid, "method",
                    "tools/call", "params", pc);
    rc = msg ? child_send(br, msg) : MCPD_ENOMEM;
    json_decref(msg);
    if (rc != 0)
        free_pending(take_pending(br, q->cid));
    return rc;
}

void mcpd_agent_bridge_cancel(struct mcpd_agent_bridge *br, json_t *id, unsigned gen)
{
    for (struct pending *q = br->pending; q; q = q->next) {
        if (q->kind == K_CALL && q->gen == gen && json_equal(q->mid, id)) {
            struct pending *t = take_pending(br, q->cid);
            notify_child(br, "notifications/cancelled",
                         json_pack("{s:I,s:s}", "requestId", (json_int_t)t->cid, "reason",
                                   "cancelled by the client"));
            free_pending(t);
            return;
        }
    }
}

void mcpd_agent_bridge_drop(struct mcpd_agent_bridge *br, unsigned gen)
{
    struct pending **pp = &br->pending, *q;
    while ((q = *pp) != NULL) {
        if (q->kind != K_CALL || q->gen >= gen) {
            pp = &q->next;
            continue;
        }
        *pp = q->next;
        br->npending--;
        notify_child(br, "notifications/cancelled",
                     json_pack("{s:I,s:s}", "requestId", (json_int_t)q->cid, "reason",
                               "the connection to mcpd was lost"));
        free_pending(q);
    }
}

void mcpd_agent_bridge_close(struct mcpd_agent_bridge *br, void (*cb)(void *data), void *data)
{
    br->close_cb = cb;
    br->close_data = data;
    set_state(br, ST_CLOSING);
    uv_timer_stop(&br->restart);
    if (br->p == NULL) {
        finish_close(br);
        return;
    }
    /* Closing stdin is the MCP stdio shutdown; SIGTERM follows for the slow ones. */
    if (!uv_is_closing((uv_handle_t *)&br->p->in))
        uv_close((uv_handle_t *)&br->p->in, on_proc_handle_closed);
    if (!br->p->exited)
        uv_process_kill(&br->p->proc, SIGTERM);
}
