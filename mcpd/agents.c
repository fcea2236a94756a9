/*
 * agents.c - the registry of connected agents (see agents.h).
 *
 * Names: an agent "laptop" with a tool group "fs" gives the resource
 * "laptop-fs". A group must match ^[a-z0-9][a-z0-9-]{0,31}$ and the
 * resource must be a valid server name (at most 32 characters) that no
 * configured server uses; anything else is refused and logged, so an agent
 * can neither leave its own "<agent>-" namespace nor shadow a server.
 *
 * Store writes (online/offline, new resources) are queued on the loop and
 * done by one uv_queue_work at a time with a connection of its own, in
 * order.
 */
#include "agents.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "admin.h"
#include "authz.h"
#include "catalog.h"
#include "config.h"
#include "daemon.h"
#include "error.h"
#include "jsonrpc.h"
#include "limits.h"
#include "listener.h"
#include "log.h"
#include "store.h"
#include "upstream.h"

struct mcpd_agent {
    struct mcpd_agent *next;
    struct mcpd_agents *reg;
    char name[64];
    char location[80]; /* "agent:<name>" */
    struct mcpd_server_config cfg;
    struct mcpd_upstream *up; /* made on the first connection */
    bool connected;
    unsigned char conn_key[32]; /* hash of the key the connection presented */
    char *res[MCPD_MAX_AGENT_GROUPS], *grp[MCPD_MAX_AGENT_GROUPS];
    size_t nres;
    const json_t *checked; /* the tool list last validated (warnings once per list) */
};

enum wop_kind { WOP_ONLINE, WOP_OFFLINE, WOP_RESOURCE };

struct wop {
    struct wop *next;
    enum wop_kind kind;
    char agent[64], group[64], res[80];
};

struct mcpd_agents {
    struct mcpd_daemon *d;
    char *path;
    struct mcpd_store_watch *watch;
    struct mcpd_agent_row *rows; /* the store's agent table */
    size_t nrows;
    struct mcpd_agent *list;
    size_t nagents;
    /* store writer */
    struct wop *q_head, *q_tail, *batch;
    bool busy;
    uv_work_t work;
    char work_err[256];
    bool closing;
};

/* ---- names ------------------------------------------------------------------------------- */

static bool group_valid(const char *g)
{
    size_t i;
    if (g == NULL || g[0] == '\0' || g[0] == '-')
        return false;
    for (i = 0; g[i]; i++) {
        if (i >= 32 ||
            !((g[i] >= 'a' && g[i] <= 'z') || (g[i] >= '0' && g[i] <= '9') || g[i] == '-'))
            return false;
    }
    return true;
}

static bool is_server_name(const struct mcpd_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nservers; i++)
        if (strcmp(cfg->servers[i].name, name) == 0)
            return true;
    return false;
}

/* {"<dimension>": ["<argument>", ...]} with at most 16 x 16 strings. */
static bool dims_valid(const json_t *dims)
{
    const char *k;
    json_t *v;
    if (dims == NULL)
        return true;
    if (!json_is_object(dims) || json_object_size(dims) > 16)
        return false;
    json_object_foreach ((json_t *)dims, k, v) {
        size_t i;
        json_t *a;
        if (!json_is_array(v) || json_array_size(v) > 16)
            return false;
        json_array_foreach (v, i, a)
            if (!json_is_string(a) || json_string_length(a) == 0 || json_string_length(a) > 64)
                return false;
    }
    return true;
}

/* ---- store writer ------------------------------------------------------------------------ */

static void work_cb(uv_work_t *w)
{
    struct mcpd_agents *ag = w->data;
    struct mcpd_store *st = NULL;
    char err[256];
    int r = 0;

    ag->work_err[0] = '\0';
    if (mcpd_store_open(&st, ag->path, err, sizeof(err)) != 0) {
        snprintf(ag->work_err, sizeof(ag->work_err), "%s", err);
        return;
    }
    for (struct wop *o = ag->batch; o && r == 0; o = o->next) {
        if (o->kind == WOP_RESOURCE)
            r = mcpd_store_agent_add_resource(st, o->agent, o->group, o->res, err, sizeof(err));
        else
            r = mcpd_store_agent_set_online(st, o->agent, o->kind == WOP_ONLINE, err, sizeof(err));
    }
    if (r != 0)
        snprintf(ag->work_err, sizeof(ag->work_err), "%s", err);
    mcpd_store_close(st);
}

static void pump(struct mcpd_agents *ag);

static void after_work_cb(uv_work_t *w, int status)
{
    struct mcpd_agents *ag = w->data;

    (void)status;
    while (ag->batch) {
        struct wop *o = ag->batch;
        ag->batch = o->next;
        free(o);
    }
    ag->busy = false;
    if (ag->work_err[0])
        LOG_WARN("agents", "cannot record agent status in the store: %s", ag->work_err);
    pump(ag);
}

static void pump(struct mcpd_agents *ag)
{
    if (ag->busy || ag->q_head == NULL)
        return;
    ag->batch = ag->q_head;
    ag->q_head = ag->q_tail = NULL;
    ag->busy = true;
    ag->work.data = ag;
    if (uv_queue_work(ag->d->loop, &ag->work, work_cb, after_work_cb) != 0) {
        ag->busy = false;
        LOG_WARN("agents", "cannot queue a store write");
        while (ag->batch) {
            struct wop *o = ag->batch;
            ag->batch = o->next;
            free(o);
        }
    }
}

static void queue_op(struct mcpd_agents *ag, enum wop_kind kind, const char *agent,
                     const char *group, const char *res)
{
    struct wop *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        LOG_WARN("agents", "agent=%s: out of memory recording its status", agent);
        return;
    }
    o->kind = kind;
    snprintf(o->agent, sizeof(o->agent), "%s", agent);
    snprintf(o->group, sizeof(o->group), "%s", group ? group : "");
    snprintf(o->res, sizeof(o->res), "%s", res ? res : "");
    if (ag->q_tail)
        ag->q_tail->next = o;
    else
        ag->q_head = o;
    ag->q_tail = o;
    pump(ag);
}

/* ---- agents ------------------------------------------------------------------------------ */

static struct mcpd_agent *find_agent(struct mcpd_agents *ag, const char *name)
{
    for (struct mcpd_agent *a = ag->list; a; a = a->next)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

static struct mcpd_agent *get_agent(struct mcpd_agents *ag, const char *name)
{
    struct mcpd_agent *a = find_agent(ag, name);

    if (a != NULL)
        return a;
    if (ag->nagents >= MCPD_MAX_AGENTS || strlen(name) >= sizeof(a->name) ||
        (a = calloc(1, sizeof(*a))) == NULL)
        return NULL;
    a->reg = ag;
    snprintf(a->name, sizeof(a->name), "%s", name);
    snprintf(a->location, sizeof(a->location), "agent:%s", name);
    a->cfg.name = a->name;
    a->cfg.timeout_ms = ag->d->cfg->agent_call_timeout_ms;
    a->cfg.enabled = true;
    a->cfg.tls_verify = true;
    a->next = ag->list;
    ag->list = a;
    ag->nagents++;
    return a;
}

/* The agent's resource for `group` (persistent string), created and persisted when new. */
static const char *agent_resource(struct mcpd_agent *a, const char *group, const char *res,
                                  bool persist)
{
    for (size_t i = 0; i < a->nres; i++)
        if (strcmp(a->res[i], res) == 0)
            return a->res[i];
    if (a->nres >= MCPD_MAX_AGENT_GROUPS)
        return NULL;
    a->res[a->nres] = strdup(res);
    a->grp[a->nres] = strdup(group);
    if (a->res[a->nres] == NULL || a->grp[a->nres] == NULL) {
        free(a->res[a->nres]);
        free(a->grp[a->nres]);
        return NULL;
    }
    if (persist) {
        LOG_INFO("agents", "agent=%s new resource %s", a->name, res);
        queue_op(a->reg, WOP_RESOURCE, a->name, group, res);
    }
    return a->res[a->nres++];
}

static void kick(struct mcpd_agent *a, unsigned code, const char *reason)
{
    if (!a->connected || a->up == NULL || a->up->link == NULL)
        return;
    LOG_INFO("agents", "agent=%s: %s; closing its connection (%u)", a->name, reason, code);
    a->up->link->kick(a->up, code, reason);
}

static const struct mcpd_agent_row *row_named(struct mcpd_agents *ag, const char *name)
{
    for (size_t i = 0; i < ag->nrows; i++)
        if (strcmp(ag->rows[i].name, name) == 0)
            return &ag->rows[i];
    return NULL;
}

/* A new agent table from the watcher: rotated, disabled or deleted agents are dropped. */
static void on_agents(struct mcpd_agent_row *rows, size_t n, void *data)
{
    struct mcpd_agents *ag = data;

    free(ag->rows);
    ag->rows = rows;
    ag->nrows = n;
    for (struct mcpd_agent *a = ag->list; a; a = a->next) {
        const struct mcpd_agent_row *row;
        if (!a->connected)
            continue;
        row = row_named(ag, a->name);
        if (row == NULL)
            kick(a, 4004, "agent deleted");
        else if (row->disabled)
            kick(a, 4003, "agent disabled");
        else if (CRYPTO_memcmp(row->key_hash, a->conn_key, 32) != 0)
            kick(a, 4001, "key rotated");
    }
}

void mcpd__agents_upstream_down(struct mcpd_upstream *up)
{
    struct mcpd_agent *a = up->agent;

    if (a == NULL || !a->connected)
        return;
    a->connected = false;
    queue_op(a->reg, WOP_OFFLINE, a->name, NULL, NULL);
}

/* ---- GET /agent ---------------------------------------------------------------------------- */

static void ignore_audit(int status, void *data)
{
    (void)status;
    (void)data;
}

static void refuse(struct mcpd_agents *ag, struct mcpd_http_conn *c, struct mcpd_http_request *req,
                   int status, const char *why, const char *agent)
{
    static const char body401[] =
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,\"message\":\"Unauthorized: "
        "a valid agent key is required (Authorization: Bearer ak_...)\"}}";
    static const char body403[] =
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,\"message\":\"Forbidden: "
        "this agent is disabled\"}}";
    struct mcpd_audit_record r = { .kind = MCPD_AUDIT_AUTH,
                                   .transport = "agent",
                                   .bot = agent,
                                   .decision = "deny",
                                   .reason = why,
                                   .status = status == 401 ? "unauthorized" : "forbidden",
                                   .location = req->peer };

    LOG_INFO("agents", "peer=%s refused on /agent: %s", req->peer, why);
    mcpd_authz_audit(ag->d->authz, &r, ignore_audit, NULL); /* never the key itself */
    if (status == 401)
        mcpd_http_respond(c, 401, "application/json",
                          "WWW-Authenticate: Bearer realm=\"mcpd-agent\"\r\n", body401,
                          sizeof(body401) - 1);
    else
        mcpd_http_respond(c, 403, "application/json", NULL, body403, sizeof(body403) - 1);
}

static void on_agent_request(struct mcpd_http_conn *c, struct mcpd_http_request *req, void *data)
{
    struct mcpd_agents *ag = data;
    struct mcpd_daemon *d = ag->d;
    const char *h = mcpd_http_header(req, "authorization");
    const struct mcpd_agent_row *row = NULL;
    struct mcpd_agent *a;
    unsigned char key_hash[32];

    if (d->shutting_down) {
        mcpd_http_respond_rpc_error(c, 503, MCPD_RPC_SERVER_ERROR, "mcpd is shutting down");
        return;
    }
    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0) {
        for (h += 7; *h == ' '; h++)
            ;
        row = mcpd_store_agent_find(ag->rows, ag->nrows, h, strlen(h));
    }
    if (row == NULL) {
        refuse(ag, c, req, 401, h ? "unknown or revoked agent key" : "missing bearer key", NULL);
        return;
    }
    if (row->disabled) {
        refuse(ag, c, req, 403, "agent disabled", row->name);
        return;
    }
    memcpy(key_hash, row->key_hash, 32);
    if ((a = get_agent(ag, row->name)) == NULL) {
        mcpd_http_respond_rpc_error(c, 503, MCPD_RPC_SERVER_ERROR, "too many agents");
        return;
    }
    if (a->up == NULL) {
        struct mcpd_upstream *up = NULL;
        if (d->new_agent_upstream == NULL || d->new_agent_upstream(&up, d, &a->cfg) != 0 ||
            up->link == NULL || mcpd_daemon_add_upstream(d, up) != 0) {
            if (up)
                mcpd__upstream_close(up); /* closes its timers, then frees it */
            mcpd_http_respond_rpc_error(c, 503, MCPD_RPC_SERVER_ERROR,
                                        "cannot serve this agent now");
            return;
        }
        up->agent = a;
        up->location = a->location;
        up->started_once = true; /* start-up never waits for agents */
        a->up = up;
    }
    /* a replaced connection reports its disconnect inside accept */
    if (a->up->link->accept(a->up, c, req) != 0)
        return; /* answered (400/426) */
    memcpy(a->conn_key, key_hash, 32);
    a->connected = true;
    queue_op(ag, WOP_ONLINE, a->name, NULL, NULL);
    LOG_INFO("agents", "agent=%s connected from %s", a->name, req->peer);
}

/* ---- catalog --------------------------------------------------------------------------------- */

json_t *mcpd_agents_group_tools(const json_t *tools,
                                void (*refused)(const char *tool, const char *why, void *arg),
                                void *arg)
{
    json_t *groups = json_object(), *seen = json_object(), *t, *arr;
    size_t i;

    if (groups == NULL || seen == NULL)
        goto fail;
    json_array_foreach ((json_t *)tools, i, t) {
        json_t *meta = json_object_get(t, "_meta");
        const char *name = json_string_value(json_object_get(t, "name"));
        json_t *tn = json_object_get(meta, "io.mcpd/tool");
        const char *g = json_string_value(json_object_get(meta, "io.mcpd/group"));
        const char *why = NULL;

        if (!json_is_object(t) || name == NULL)
            why = "no name";
        else if (!group_valid(g))
            why = "no valid io.mcpd/group";
        else if (tn != NULL && (!json_is_string(tn) || json_string_length(tn) == 0 ||
                                json_string_length(tn) > 128))
            why = "io.mcpd/tool is not a name";
        else if (!dims_valid(json_object_get(meta, "io.mcpd/dimensions")))
            why = "io.mcpd/dimensions is not {dimension: [argument, ...]}";
        else if (json_object_get(seen, name) != NULL)
            why = "listed twice";
        if (why != NULL) {
            if (refused)
                refused(name ? name : "", why, arg);
            continue;
        }
        if (json_object_set_new(seen, name, json_true()) != 0)
            goto fail;
        if ((arr = json_object_get(groups, g)) == NULL) {
            if ((arr = json_array()) == NULL || json_object_set_new(groups, g, arr) != 0)
                goto fail;
        }
        if (json_array_append(arr, t) != 0)
            goto fail;
    }
    json_decref(seen);
    return groups;
fail:
    json_decref(groups);
    json_decref(seen);
    return NULL;
}

/*
 * Why `res` is not agent a's to take, or NULL: another agent owns it
 * already, or it lies in the namespace of another agent with a longer name
 * ("a" with group "b-c" would make "a-b-c", which is agent "a-b"'s).
 */
static const char *foreign(struct mcpd_agents *ag, const struct mcpd_agent *a, const char *res)
{
    size_t own = strlen(a->name);

    for (const struct mcpd_agent *o = ag->list; o; o = o->next) {
        if (o == a)
            continue;
        for (size_t i = 0; i < o->nres; i++)
            if (strcmp(o->res[i], res) == 0)
                return "belongs to another agent";
    }
    for (size_t i = 0; i < ag->nrows; i++) {
        size_t n = strlen(ag->rows[i].name);
        if (n > own && strncmp(res, ag->rows[i].name, n) == 0 && res[n] == '-')
            return "lies in another agent's namespace";
    }
    return NULL;
}

static void log_refused(const char *tool, const char *why, void *arg)
{
    LOG_WARN("agents", "agent=%s tool '%.64s': %s; refused", (const char *)arg, tool, why);
}

size_t mcpd__agents_sources(struct mcpd_daemon *d, struct mcpd_upstream *up,
                            struct mcpd_catalog_source *src, size_t cap)
{
    struct mcpd_agent *a = up->agent;
    json_t *tools = up->lists[MCPD_LIST_TOOLS], *groups, *arr;
    const char *g, *why;
    size_t n = 0;
    bool warn;

    if (a == NULL || tools == NULL)
        return 0;
    warn = a->checked != tools;
    a->checked = tools;
    if ((groups = mcpd_agents_group_tools(tools, warn ? log_refused : NULL, a->name)) == NULL)
        return 0;
    json_object_foreach (groups, g, arr) {
        char res[80];
        const char *r;
        snprintf(res, sizeof(res), "%s-%s", a->name, g);
        if (!mcpd_config_is_valid_name(res)) {
            if (warn)
                LOG_WARN("agents", "agent=%s group '%s': resource name '%s' is too long; refused",
                         a->name, g, res);
            continue;
        }
        if (is_server_name(d->cfg, res)) {
            if (warn)
                LOG_WARN("agents",
                         "agent=%s group '%s': '%s' is a configured server's name; refused",
                         a->name, g, res);
            continue;
        }
        if ((why = foreign(d->agents, a, res)) != NULL) {
            if (warn)
                LOG_WARN("agents", "agent=%s group '%s': '%s' %s; refused", a->name, g, res, why);
            continue;
        }
        if ((r = agent_resource(a, g, res, true)) == NULL) {
            if (warn)
                LOG_WARN("agents", "agent=%s: more than %d groups; '%s' refused", a->name,
                         MCPD_MAX_AGENT_GROUPS, g);
            continue;
        }
        if (n == cap)
            break;
        src[n].resource = r;
        src[n].tools = json_incref(arr);
        src[n].owner = up;
        src[n].agent = true;
        n++;
    }
    json_decref(groups);
    return n;
}

bool mcpd__agents_not_connected(struct mcpd_daemon *d, const char *bot, const char *name, char *why,
                                size_t cap)
{
    struct mcpd_agents *ag = d->agents;
    const char *sep = strstr(name, d->cfg->separator);
    size_t n;

    if (ag == NULL || sep == NULL)
        return false;
    n = (size_t)(sep - name);
    for (struct mcpd_agent *a = ag->list; a; a = a->next) {
        for (size_t i = 0; i < a->nres; i++) {
            if (strlen(a->res[i]) != n || strncmp(a->res[i], name, n) != 0)
                continue;
            if (a->up != NULL && a->up->state == MCPD_UP_READY)
                return false; /* connected: the tool is simply not there */
            /* only to a bot bound to that tool: no existence oracle */
            if (!mcpd_authz_tool_visible(d->authz, bot, a->res[i], sep + strlen(d->cfg->separator)))
                return false;
            snprintf(why, cap,
                     "agent not connected: '%s' (the tools of %s return when it reconnects)",
                     a->name, a->res[i]);
            return true;
        }
    }
    return false;
}

unsigned mcpd__agents_call_timeout(struct mcpd_daemon *d, const char *resource)
{
    for (size_t i = 0; i < d->cfg->nagent_timeouts; i++)
        if (strcmp(d->cfg->agent_timeouts[i].resource, resource) == 0)
            return d->cfg->agent_timeouts[i].ms;
    return d->cfg->agent_call_timeout_ms;
}

json_t *mcpd__agents_resources_json(struct mcpd_daemon *d)
{
    json_t *out = json_array();

    for (struct mcpd_agent *a = d->agents ? d->agents->list : NULL; out && a; a = a->next)
        for (size_t i = 0; i < a->nres; i++)
            json_array_append_new(
                out,
                json_pack("{s:s, s:s, s:s, s:s}", "name", a->res[i], "agent", a->name, "group",
                          a->grp[i], "status",
                          a->up && a->up->state == MCPD_UP_READY ? "connected" : "disconnected"));
    return out;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

int mcpd__agents_start(struct mcpd_daemon *d, char *err, size_t errcap)
{
    struct mcpd_agents *ag = calloc(1, sizeof(*ag));
    struct mcpd_agent_resource_row *res = NULL;
    struct mcpd_store *st = NULL;
    size_t nres = 0;
    int r;

    if (ag == NULL || (ag->path = mcpd_admin_store_path(d->cfg)) == NULL) {
        free(ag);
        snprintf(err, errcap, "out of memory");
        return MCPD_ENOMEM;
    }
    ag->d = d;
    d->agents = ag;
    /*
     * start-up, before the loop runs: the persisted resources; a daemon that
     * serves GET /agent owns the status column: everyone offline (a crash
     * left stale rows). `mcpd catalog` only reads.
     */
    if ((r = mcpd_store_open(&st, ag->path, err, errcap)) != 0 ||
        (d->serve_agents && d->cfg->listen_host &&
         (r = mcpd_store_agents_all_offline(st, err, errcap)) != 0) ||
        (r = mcpd_store_agent_resources(st, &res, &nres, err, errcap)) != 0) {
        mcpd_store_close(st);
        return r;
    }
    mcpd_store_close(st);
    for (size_t i = 0; i < nres; i++) {
        struct mcpd_agent *a = get_agent(ag, res[i].agent);
        if (a != NULL)
            agent_resource(a, res[i].group, res[i].name, false);
    }
    free(res);
    if ((r = mcpd_store_watch_agents(&ag->watch, d->loop, ag->path, 500, on_agents, ag, err,
                                     errcap)) != 0)
        return r;
    if (d->serve_agents && d->cfg->listen_host == NULL)
        LOG_INFO("agents", "no listen address (listen: or --listen): GET /agent is not served");
    else if (d->serve_agents && (r = mcpd_listener_route(d, "/agent", on_agent_request, ag)) != 0) {
        snprintf(err, errcap, "cannot route /agent: %s", mcpd_strerror(r));
        return r;
    }
    LOG_DEBUG("agents", "%zu agents in the store, %zu resources known", ag->nrows, nres);
    return 0;
}

void mcpd__agents_close(struct mcpd_daemon *d)
{
    struct mcpd_agents *ag = d->agents;

    if (ag == NULL || ag->closing)
        return;
    ag->closing = true;
    mcpd_store_watch_close(ag->watch, NULL, NULL);
    ag->watch = NULL;
}

void mcpd__agents_free(struct mcpd_daemon *d)
{
    struct mcpd_agents *ag = d->agents;

    if (ag == NULL)
        return;
    while (ag->list) {
        struct mcpd_agent *a = ag->list;
        ag->list = a->next;
        for (size_t i = 0; i < a->nres; i++) {
            free(a->res[i]);
            free(a->grp[i]);
        }
        free(a);
    }
    while (ag->q_head) {
        struct wop *o = ag->q_head;
        ag->q_head = o->next;
        free(o);
    }
    free(ag->rows);
    free(ag->path);
    free(ag);
    d->agents = NULL;
}
