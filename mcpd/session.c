/*
 * session.c - one client session (session era) and the dispatch of its
 * messages.
 *
 *   NEW --initialize--> READY --close/reap/shutdown--> CLOSED
 *
 * mcpd answers initialize, ping, logging/setLevel, server/discover and the
 * lists itself; tools/call goes to the router. Requests before initialize
 * get -32600 (except ping and server/discover). A modern (2026-07-28)
 * request gets a transient session of its own, READY from the start
 * (modern.c). Hidden or unknown tools get the same -32602 error, so the
 * error never tells whether a name exists upstream.
 */
#include "session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "agents.h"
#include "authz.h"
#include "daemon.h"
#include "error.h"
#include "limits.h"
#include "log.h"
#include "policy/policy.h"
#include "router.h"

const char *const mcpd_session_versions[] = { "2025-11-25", "2025-06-18", "2025-03-26",
                                              "2024-11-05", NULL };

bool mcpd_session_version_supported(const char *v)
{
    for (int i = 0; v && mcpd_session_versions[i]; i++)
        if (strcmp(v, mcpd_session_versions[i]) == 0)
            return true;
    return false;
}

int mcpd_session_new(struct mcpd_session **out, struct mcpd_daemon *d, const char *transport,
                     const char *peer)
{
    struct mcpd_session *s;
    unsigned char rnd[16];

    *out = NULL;
    if (d->nsessions >= d->cfg->limits.max_sessions)
        return MCPD_EBUSY;
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        return MCPD_ENOMEM;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return MCPD_ENOMEM;
    for (int i = 0; i < 16; i++)
        snprintf(s->id + 2 * i, 3, "%02x", rnd[i]);
    s->daemon = d;
    s->refs = 1;
    s->transport = transport;
    s->log_level = -1;
    mcpd_map_init(&s->out);
    snprintf(s->peer, sizeof(s->peer), "%s", peer ? peer : "-");
    s->last_active = uv_now(d->loop);
    s->next = d->sessions;
    if (d->sessions)
        d->sessions->prev = s;
    d->sessions = s;
    d->nsessions++;
    *out = s;
    return 0;
}

static void ignore_result(struct mcpd_upstream *up, struct mcpd_msg *msg, const char *why)
{
}

static void forget_instance(void *value, void *arg)
{
    struct mcpd_outreq *o = value;
    if (o->up == arg)
        o->up = NULL;
}

static void free_outreq(void *value, void *arg)
{
    struct mcpd_outreq *o = value;
    json_decref(o->up_id);
    free(o->key);
    free(o);
}

void mcpd_session_ref(struct mcpd_session *s)
{
    s->refs++;
}

void mcpd_session_unref(struct mcpd_session **sp)
{
    struct mcpd_session *s = *sp;
    *sp = NULL;
    if (s == NULL || --s->refs > 0)
        return;
    json_decref(s->client_info);
    json_decref(s->client_caps);
    json_decref(s->subs);
    json_decref(s->listen_id);
    json_decref(s->mrtr_asked);
    json_decref(s->mrtr_final);
    free(s->req_name);
    mcpd_map_foreach(&s->out, free_outreq, NULL);
    mcpd_map_dispose(&s->out);
    free(s);
}

void mcpd_session_set_bot(struct mcpd_session *s, const char *bot, const unsigned char *key_hash)
{
    snprintf(s->bot, sizeof(s->bot), "%s", bot ? bot : "");
    s->has_key = key_hash != NULL;
    if (key_hash)
        memcpy(s->key_hash, key_hash, 32);
}

const char *mcpd_session_bot(const struct mcpd_session *s)
{
    return s->bot;
}

bool mcpd_session_key_matches(const struct mcpd_session *s, const unsigned char *key_hash)
{
    return s->has_key && key_hash && CRYPTO_memcmp(s->key_hash, key_hash, 32) == 0;
}

const char *mcpd_session_id(const struct mcpd_session *s)
{
    return s->id;
}

const char *mcpd_session_version(const struct mcpd_session *s)
{
    return s->version[0] ? s->version : NULL;
}

bool mcpd_session_is_closed(const struct mcpd_session *s)
{
    return s->state == MCPD_SESSION_CLOSED;
}

bool mcpd_session_allows_batch(const struct mcpd_session *s)
{
    return strcmp(s->version, "2025-03-26") == 0;
}

void mcpd_session_on_close(struct mcpd_session *s, mcpd_session_close_cb cb, void *data)
{
    s->on_close = cb;
    s->on_close_data = data;
}

void mcpd_session_set_stream(struct mcpd_session *s, struct mcpd_sink *sink)
{
    s->stream = sink;
}

int mcpd_session_send_json(struct mcpd_sink *sink, json_t *msg, bool final)
{
    return mcpd__send(sink, msg, final);
}

void mcpd_session_sink_closed(struct mcpd_session *s, struct mcpd_sink *sink)
{
    struct mcpd_pending *p = s->pending, *next;
    if (s->stream == sink)
        s->stream = NULL;
    for (; p; p = next) {
        next = p->snext;
        if (p->sink == sink ||
            (p->sink && p->sink->ops->parent && p->sink->ops->parent(p->sink) == sink)) {
            LOG_DEBUG("session", "session=%s client gone, cancelling %s upstream", s->id,
                      p->tool_name);
            mcpd__router_cancel(p, "client disconnected");
        }
    }
    if (s->tparent == sink) { /* a stateless request's client went away */
        s->tparent = NULL;
        mcpd__session_close_soon(s);
    }
    mcpd__daemon_check_drained(s->daemon);
}

/* The last subscriber of a URI going away unsubscribes upstream. */
static void drop_subscriptions(struct mcpd_session *s)
{
    const char *exposed;
    json_t *v;
    json_object_foreach (s->subs, exposed, v) {
        const char *inner;
        struct mcpd_upstream *up = mcpd_catalog_route_uri(s->daemon->catalog, exposed, &inner);
        uintptr_t n;
        if (up == NULL || strcmp(up->name, json_string_value(v)) != 0)
            continue;
        n = (uintptr_t)mcpd_map_get(&up->subs, inner, strlen(inner));
        if (n > 1) {
            mcpd_map_put(&up->subs, inner, strlen(inner), (void *)(n - 1));
        } else if (n == 1) {
            mcpd_map_del(&up->subs, inner, strlen(inner));
            if (up->modern)
                mcpd__upstream_subs_changed(up);
            else if (up->state == MCPD_UP_READY)
                mcpd__router_internal(up, "resources/unsubscribe", json_pack("{s:s}", "uri", inner),
                                      MCPD_INIT_TIMEOUT_MS, ignore_result);
        }
    }
    json_decref(s->subs);
    s->subs = NULL;
}

void mcpd_session_close(struct mcpd_session *s)
{
    struct mcpd_daemon *d = s->daemon;
    if (s->state == MCPD_SESSION_CLOSED)
        return;
    s->state = MCPD_SESSION_CLOSED;
    mcpd_session_ref(s);
    mcpd__session_unpark(s);
    while (s->pending)
        mcpd__router_cancel(s->pending, "session closed");
    drop_subscriptions(s);
    if (s->listen_id && s->stream) /* the subscription ends gracefully */
        mcpd__listen_end(s);
    while (s->privates) { /* per-client instances end with their session */
        struct mcpd_upstream *up = s->privates;
        bool down = up->state == MCPD_UP_DOWN;

        s->privates = up->next_private;
        up->owner = NULL;
        /* a stop may end at once (a 2026-07-28 url server has no session to DELETE): its
         * disconnect then closes it already */
        mcpd__upstream_shutdown(up);
        if (down)
            mcpd__upstream_close(up);
    }
    s->stream = NULL;
    if (s->prev)
        s->prev->next = s->next;
    else
        d->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    d->nsessions--;
    if (s->on_close) {
        mcpd_session_close_cb cb = s->on_close;
        s->on_close = NULL;
        cb(s, s->on_close_data);
    }
    LOG_DEBUG("session", "session=%s closed", s->id);
    mcpd__session_close_soon(s); /* a transient one drops its own reference there */
    mcpd_session_unref(&s);
    mcpd__daemon_check_drained(d);
}

/* ---- methods answered by mcpd itself -------------------------------------- */

static json_t *do_initialize(struct mcpd_session *s, struct mcpd_msg *m, int *code,
                             const char **why)
{
    const char *v = json_string_value(json_object_get(m->params, "protocolVersion"));
    json_t *caps = json_object_get(m->params, "capabilities");

    if (s->state != MCPD_SESSION_NEW) {
        *code = MCPD_RPC_INVALID_REQUEST;
        *why = "Invalid Request: the session is already initialized";
        return NULL;
    }
    if (v == NULL || (caps && !json_is_object(caps))) {
        *code = MCPD_RPC_INVALID_PARAMS;
        *why =
            "Invalid params: initialize needs protocolVersion (string) and capabilities (object)";
        return NULL;
    }
    /* lifecycle: echo a supported version, else offer our latest */
    snprintf(s->version, sizeof(s->version), "%s",
             mcpd_session_version_supported(v) ? v : mcpd_session_versions[0]);
    s->client_caps = json_incref(caps);
    s->client_info = json_incref(json_object_get(m->params, "clientInfo"));
    s->state = MCPD_SESSION_READY;
    LOG_DEBUG("session", "session=%s initialized version=%s client=%s", s->id, s->version,
              json_string_value(json_object_get(s->client_info, "name")));
    return json_pack("{s:s, s:o, s:{s:s, s:s, s:s}}", "protocolVersion", s->version, "capabilities",
                     mcpd__daemon_capabilities(s->daemon), "serverInfo", "name", "mcpd", "title",
                     "mcpd MCP proxy", "version", MCPD_VERSION);
}

static json_t *do_set_level(struct mcpd_session *s, struct mcpd_msg *m, int *code, const char **why)
{
    static const char *const levels[] = { "debug", "info",     "notice", "warning",
                                          "error", "critical", "alert",  "emergency" };
    const char *l = json_string_value(json_object_get(m->params, "level"));
    for (int i = 0; l && i < 8; i++) {
        if (strcmp(l, levels[i]) == 0) {
            s->log_level = i;
            return json_object();
        }
    }
    *code = MCPD_RPC_INVALID_PARAMS;
    *why = "Invalid params: level must be one of debug, info, notice, warning, error, critical, "
           "alert, emergency";
    return NULL;
}

/* The session's own instance of a per-client server, started on first use. */
static int private_instance(struct mcpd_session *s, struct mcpd_upstream *shared,
                            struct mcpd_upstream **out)
{
    struct mcpd_upstream *up;
    int r;
    for (up = s->privates; up; up = up->next_private) {
        if (up->cfg == shared->cfg && up->state != MCPD_UP_DOWN && !up->stop_requested) {
            *out = up;
            return 0;
        }
    }
    if (s->daemon->new_upstream == NULL)
        return MCPD_EUNAVAIL;
    if ((r = s->daemon->new_upstream(&up, s->daemon, shared->cfg)) != 0)
        return r;
    up->is_private = true;
    /* the era the shared instance found: requests queued while it starts are built for it */
    up->modern_hint = up->modern = shared->modern;
    up->owner = s;
    up->started_once = true;
    up->next_private = s->privates;
    s->privates = up;
    mcpd__upstream_start(up); /* may fail at once: then it is already dropped */
    if (up->state == MCPD_UP_DOWN)
        return MCPD_EUNAVAIL;
    *out = up;
    return 0;
}

void mcpd__session_drop_private(struct mcpd_session *s, struct mcpd_upstream *up)
{
    for (struct mcpd_upstream **pp = &s->privates; *pp; pp = &(*pp)->next_private) {
        if (*pp == up) {
            *pp = up->next_private;
            break;
        }
    }
    up->owner = NULL;
    mcpd_map_foreach(&s->out, forget_instance, up);
}

/* Forwards to `up` or answers the client with the reason it cannot. */
static void forward(struct mcpd_session *s, struct mcpd_upstream *up, const char *resource,
                    struct mcpd_msg *m, struct mcpd_sink *reply, const char *label,
                    enum mcpd_fwd fwd)
{
    char why[256];
    int r;
    if (s->inflight >= s->daemon->cfg->limits.max_inflight) {
        mcpd__send_error(reply, m->id, MCPD_RPC_BUSY,
                         "Too many requests in flight for this session");
        return;
    }
    if (up->cfg->per_client && !up->is_private && (r = private_instance(s, up, &up)) != 0) {
        snprintf(why, sizeof(why), "upstream '%s' could not start for this client: %s", resource,
                 mcpd_strerror(r));
        mcpd__send_error(reply, m->id, MCPD_RPC_SERVER_ERROR, why);
        return;
    }
    if ((r = mcpd__router_forward_res(s, up, m, reply, label, fwd,
                                      up->agent != NULL ? resource : NULL)) == 0)
        return;
    if (r == MCPD_EBUSY)
        snprintf(why, sizeof(why), "upstream '%s' is busy (too many requests in flight)", resource);
    else
        snprintf(why, sizeof(why), "upstream '%s' is unavailable: %s", resource, mcpd_strerror(r));
    mcpd__send_error(reply, m->id, MCPD_RPC_SERVER_ERROR, why);
}

/*
 * A prefixed name whose server is configured but not up: say so rather than
 * "unknown tool" (its tools left the catalog while it is down).
 */
static bool resource_down(struct mcpd_session *s, const char *name, char *why, size_t cap)
{
    struct mcpd_daemon *d = s->daemon;
    const char *sep = d->prefix ? strstr(name, d->cfg->separator) : NULL;
    size_t n = sep ? (size_t)(sep - name) : 0;

    for (size_t i = 0; sep && i < d->nups; i++) {
        struct mcpd_upstream *up = d->ups[i];
        if (strlen(up->name) != n || strncmp(up->name, name, n) != 0 || !up->cfg->enabled ||
            up->state == MCPD_UP_READY || up->agent != NULL)
            continue;
        /* only to a bot bound to that tool: no existence oracle */
        if (!mcpd_authz_tool_visible(d->authz, s->bot, up->name, sep + strlen(d->cfg->separator)))
            return false;
        snprintf(why, cap, "upstream '%s' is unavailable (%s); its tools return when it is back",
                 up->name,
                 up->last_error[0] ? up->last_error : mcpd_upstream_state_name(up->state));
        return true;
    }
    return false;
}

/* tools/call and prompts/get: exact lookup of the exposed name. */
static void do_named_call(struct mcpd_session *s, struct mcpd_msg *m, struct mcpd_sink *reply,
                          bool prompt)
{
    const char *name = json_string_value(json_object_get(m->params, "name"));
    json_t *args = json_object_get(m->params, "arguments");
    const struct mcpd_catalog_entry *e;
    char why[256];

    if (name == NULL || (args && !json_is_object(args))) {
        mcpd__send_error(
            reply, m->id, MCPD_RPC_INVALID_PARAMS,
            prompt ? "Invalid params: prompts/get needs name (string) and arguments (object)"
                   : "Invalid params: tools/call needs name (string) and arguments (object)");
        return;
    }
    struct mcpd_policy_decision d;
    int denied = 0;
    bool checked = false;

    e = prompt ? mcpd_catalog_prompt(s->daemon->catalog, name)
               : mcpd_catalog_lookup(s->daemon->catalog, name);
    if (e && !prompt && mcpd_authz_active(s->daemon->authz)) {
        /* one walk of the bot's bindings decides visibility and the call */
        bool visible;
        if (args == NULL) /* fail closed: check an empty object, never nothing */
            json_object_set_new(m->params, "arguments", args = json_object());
        denied = mcpd_authz_check_tool(s->daemon->authz, s->bot, e, args, &d, &visible);
        checked = true;
        if (!visible)
            e = NULL;
    }
    /* a tool the bot is not bound to does not exist for it: the same error */
    if (e && !checked &&
        !(prompt ? mcpd_authz_prompt_visible(s->daemon->authz, s->bot, e->resource, e->tool)
                 : mcpd_authz_tool_visible(s->daemon->authz, s->bot, e->resource, e->tool)))
        e = NULL;
    if (e == NULL) {
        if (!prompt && (resource_down(s, name, why, sizeof(why)) ||
                        mcpd__agents_not_connected(s->daemon, s->bot, name, why, sizeof(why)))) {
            mcpd__send_error(reply, m->id, MCPD_RPC_SERVER_ERROR, why);
            return;
        }
        snprintf(why, sizeof(why), "Unknown %s: %.200s", prompt ? "prompt" : "tool", name);
        mcpd__send_error(reply, m->id, MCPD_RPC_INVALID_PARAMS, why);
        return;
    }
    if (checked) {
        if (denied != 0) {
            LOG_INFO("policy", "session=%s bot=%s denied %s: %s", s->id, s->bot, e->name, d.reason);
            mcpd__router_deny(s, m, reply, e->resource, e->tool, d.reason, MCPD_RPC_DENIED,
                              json_pack("{s:s, s:s, s:s}", "dimension", d.dimension, "argument",
                                        d.argument, "value", d.value));
            return;
        }
    }
    json_object_set_new(m->params, "name", json_string(e->wire ? e->wire : e->tool));
    forward(s, e->owner, e->resource, m, reply, e->tool, prompt ? MCPD_FWD_PROMPT : MCPD_FWD_TOOL);
}

/* Routes params[key] (an exposed URI) and rewrites it; NULL after answering an error. */
static struct mcpd_upstream *route_uri(struct mcpd_session *s, struct mcpd_msg *m, json_t *holder,
                                       struct mcpd_sink *reply)
{
    const char *uri = json_string_value(json_object_get(holder, "uri")), *inner;
    struct mcpd_upstream *up;
    char why[300];

    if (uri == NULL) {
        mcpd__send_error(reply, m->id, MCPD_RPC_INVALID_PARAMS,
                         "Invalid params: uri (string) is required");
        return NULL;
    }
    up = mcpd_catalog_route_uri(s->daemon->catalog, uri, &inner);
    if (up && !mcpd_authz_uri_visible(s->daemon->authz, s->bot, up->name, inner))
        up = NULL; /* unbound: as if it did not exist */
    if (up == NULL) {
        snprintf(why, sizeof(why), "Resource not found: %.200s", uri);
        json_t *e = mcpd_jsonrpc_error_new(m->id, -32002, why, json_pack("{s:s}", "uri", uri));
        if (e && s->modern)
            mcpd__modernize(e, false);
        if (e)
            mcpd__send(reply, e, true);
        json_decref(e);
        return NULL;
    }
    if (inner != uri)
        json_object_set_new(holder, "uri", json_string(inner));
    return up;
}

/*
 * resources/subscribe and unsubscribe: one upstream subscription per
 * (upstream, uri) however many sessions want it; the first subscriber and
 * the last unsubscriber are forwarded, the others answered here.
 */
static void do_subscription(struct mcpd_session *s, struct mcpd_msg *m, struct mcpd_sink *reply,
                            bool subscribe)
{
    const char *exposed = json_string_value(json_object_get(m->params, "uri"));
    char *key = exposed ? strdup(exposed) : NULL;
    struct mcpd_upstream *up = route_uri(s, m, m->params, reply);
    const char *inner = json_string_value(json_object_get(m->params, "uri"));
    uintptr_t n;
    bool had;

    if (up == NULL || key == NULL || inner == NULL) {
        if (up && key == NULL)
            mcpd__send_error(reply, m->id, MCPD_RPC_INTERNAL_ERROR, "out of memory");
        free(key);
        return;
    }
    if (up->modern && !mcpd__upstream_can_subscribe(up)) {
        char why[160];
        free(key);
        snprintf(why, sizeof(why),
                 "Method not found: upstream '%.64s' offers no resource "
                 "subscriptions",
                 up->name);
        mcpd__send_error(reply, m->id, MCPD_RPC_METHOD_NOT_FOUND, why);
        return;
    }
    if (s->subs == NULL)
        s->subs = json_object();
    had = json_object_get(s->subs, key) != NULL;
    if (up->cfg->per_client && !up->modern) {
        /* the session's own instance: every subscribe and unsubscribe goes there */
        if (subscribe)
            json_object_set_new(s->subs, key, json_string(up->name));
        else
            json_object_del(s->subs, key);
        free(key);
        forward(s, up, up->name, m, reply, m->method, MCPD_FWD_PLAIN);
        return;
    }
    n = (uintptr_t)mcpd_map_get(&up->subs, inner, strlen(inner));
    if (subscribe && !had) {
        json_object_set_new(s->subs, key, json_string(up->name));
        mcpd_map_put(&up->subs, inner, strlen(inner), (void *)(n + 1));
    } else if (!subscribe && had) {
        json_object_del(s->subs, key);
        if (n <= 1)
            mcpd_map_del(&up->subs, inner, strlen(inner));
        else
            mcpd_map_put(&up->subs, inner, strlen(inner), (void *)(n - 1));
    }
    free(key);
    if ((subscribe && !had && n == 0) || (!subscribe && had && n == 1)) {
        if (up->modern) { /* 2026-07-28: the set goes on its listen stream */
            mcpd__upstream_subs_changed(up);
        } else {
            forward(s, up, up->name, m, reply, m->method, MCPD_FWD_PLAIN);
            return;
        }
    }
    json_t *resp = mcpd_jsonrpc_result_new(m->id, json_object());
    if (resp)
        mcpd__send(reply, resp, true);
    json_decref(resp);
}

static int discard_send(struct mcpd_sink *sk, const char *data, size_t len, bool final)
{
    (void)sk;
    (void)data;
    (void)len;
    (void) final;
    return 0;
}

static const struct mcpd_sink_ops discard_ops = { discard_send, NULL, NULL };
static struct mcpd_sink discard_sink = { &discard_ops, 0 };

bool mcpd__session_subscribe(struct mcpd_session *s, const char *uri, json_t *id)
{
    json_t *root = json_pack("{s:s, s:O, s:s, s:{s:s}}", "jsonrpc", "2.0", "id", id, "method",
                             "resources/subscribe", "params", "uri", uri);
    struct mcpd_rpc_error err;
    struct mcpd_msg m;
    bool ok = false;

    if (root != NULL && mcpd_jsonrpc_classify(&m, root, &err) == 0) {
        do_subscription(s, &m, &discard_sink, true); /* an unknown uri answers the discard */
        ok = s->subs != NULL && json_object_get(s->subs, uri) != NULL;
    }
    json_decref(root);
    return ok;
}

/* completion/complete is routed by its ref: a prompt name or a resource (template) URI. */
static void do_complete(struct mcpd_session *s, struct mcpd_msg *m, struct mcpd_sink *reply)
{
    json_t *ref = json_object_get(m->params, "ref");
    const char *type = json_string_value(json_object_get(ref, "type"));
    struct mcpd_upstream *up;

    if (type && strcmp(type, "ref/prompt") == 0) {
        const char *name = json_string_value(json_object_get(ref, "name"));
        const struct mcpd_catalog_entry *e =
            name ? mcpd_catalog_prompt(s->daemon->catalog, name) : NULL;
        if (e && !mcpd_authz_prompt_visible(s->daemon->authz, s->bot, e->resource, e->tool))
            e = NULL;
        if (e == NULL) {
            mcpd__send_error(reply, m->id, MCPD_RPC_INVALID_PARAMS,
                             "Invalid params: unknown prompt in ref");
            return;
        }
        json_object_set_new(ref, "name", json_string(e->tool));
        forward(s, e->owner, e->resource, m, reply, "completion/complete", MCPD_FWD_PLAIN);
    } else if (type && strcmp(type, "ref/resource") == 0) {
        if ((up = route_uri(s, m, ref, reply)) != NULL)
            forward(s, up, up->name, m, reply, "completion/complete", MCPD_FWD_PLAIN);
    } else {
        mcpd__send_error(reply, m->id, MCPD_RPC_INVALID_PARAMS,
                         "Invalid params: ref.type must be ref/prompt or ref/resource");
    }
}

/* What a bot sees of the catalog. */
static bool list_filter(enum mcpd_list_kind kind, const char *resource, const char *name, void *arg)
{
    struct mcpd_session *s = arg;
    switch (kind) {
    case MCPD_LIST_TOOLS:
        return mcpd_authz_tool_visible(s->daemon->authz, s->bot, resource, name);
    case MCPD_LIST_PROMPTS:
        return mcpd_authz_prompt_visible(s->daemon->authz, s->bot, resource, name);
    default:
        return mcpd_authz_uri_visible(s->daemon->authz, s->bot, resource, name);
    }
}

static void list_audited(int status, void *data)
{
}

/* A filtered list leaves a summary row: what the bot saw of how much. */
static int audit_list(struct mcpd_session *s, enum mcpd_list_kind kind, size_t shown)
{
    const struct mcpd_catalog *cat = s->daemon->catalog;
    size_t total = cat == NULL                   ? 0
                   : kind == MCPD_LIST_TOOLS     ? cat->count
                   : kind == MCPD_LIST_PROMPTS   ? cat->nprompts
                   : kind == MCPD_LIST_RESOURCES ? cat->nresources
                                                 : cat->ntemplates;
    char reason[96];
    struct mcpd_audit_record r = { .kind = MCPD_AUDIT_LIST,
                                   .bot = s->bot,
                                   .session = s->id,
                                   .transport = s->transport,
                                   .tool = mcpd_list_method[kind],
                                   .location = "mcpd",
                                   .decision = "allow",
                                   .reason = reason,
                                   .status = "ok" };
    snprintf(reason, sizeof(reason), "%zu of %zu %s shown (this page)", shown, total,
             mcpd_list_key[kind]);
    return mcpd_authz_audit(s->daemon->authz, &r, list_audited, NULL);
}

static json_t *do_list(struct mcpd_session *s, struct mcpd_msg *m, enum mcpd_list_kind kind,
                       int *code, const char **why)
{
    json_t *c = m->params ? json_object_get(m->params, "cursor") : NULL;
    json_t *page;
    if (c && !json_is_string(c)) {
        *code = MCPD_RPC_INVALID_PARAMS;
        *why = "Invalid params: cursor must be a string";
        return NULL;
    }
    page = mcpd_authz_active(s->daemon->authz)
               ? mcpd_catalog_page_filtered(s->daemon->catalog, kind, json_string_value(c),
                                            s->daemon->cfg->limits.page_size, list_filter, s)
               : mcpd_catalog_page_kind(s->daemon->catalog, kind, json_string_value(c),
                                        s->daemon->cfg->limits.page_size);
    if (page == NULL) {
        *code = MCPD_RPC_INVALID_PARAMS;
        *why = "Invalid params: unknown cursor";
    } else if (mcpd_authz_active(s->daemon->authz) && mcpd_authz_auditing(s->daemon->authz) &&
               audit_list(s, kind, json_array_size(json_object_get(page, mcpd_list_key[kind]))) !=
                   0) {
        json_decref(page);
        page = NULL;
        *code = MCPD_RPC_SERVER_ERROR;
        *why = MCPD_AUDIT_REFUSED;
    }
    return page;
}

/* Requests that go upstream; false when `m` is none of them. */
static bool route_request(struct mcpd_session *s, struct mcpd_msg *m, struct mcpd_sink *reply)
{
    struct mcpd_upstream *up;
    if (strcmp(m->method, "tools/call") == 0) {
        do_named_call(s, m, reply, false);
    } else if (strcmp(m->method, "prompts/get") == 0) {
        do_named_call(s, m, reply, true);
    } else if (strcmp(m->method, "resources/read") == 0) {
        if ((up = route_uri(s, m, m->params, reply)) != NULL)
            forward(s, up, up->name, m, reply, "resources/read", MCPD_FWD_READ);
    } else if (strcmp(m->method, "resources/subscribe") == 0) {
        do_subscription(s, m, reply, true);
    } else if (strcmp(m->method, "resources/unsubscribe") == 0) {
        do_subscription(s, m, reply, false);
    } else if (strcmp(m->method, "completion/complete") == 0) {
        do_complete(s, m, reply);
    } else {
        return false;
    }
    return true;
}

bool mcpd_session_method_known(const char *method)
{
    static const char *const known[] = { "tools/call",
                                         "prompts/get",
                                         "resources/read",
                                         "resources/subscribe",
                                         "resources/unsubscribe",
                                         "completion/complete",
                                         NULL };
    for (int i = 0; known[i]; i++)
        if (strcmp(method, known[i]) == 0)
            return true;
    return false;
}

/*
 * The first page of a list, for a client that sees the whole catalog (no
 * bots) in the session era, is serialized once per catalog and reused: with
 * hundreds of tools, serializing the page was nearly all the cost of a
 * tools/list and it blocked the loop meanwhile. Returns true when answered.
 */
static bool list_from_cache(struct mcpd_session *s, struct mcpd_msg *m, struct mcpd_sink *reply)
{
    struct mcpd_catalog *cat = s->daemon->catalog;
    struct mcpd_buf b;
    int kind = -1;
    bool sent = false;

    for (int k = 0; k < MCPD_LIST_KINDS; k++)
        if (strcmp(m->method, mcpd_list_method[k]) == 0)
            kind = k;
    if (kind < 0 || cat == NULL || s->modern || mcpd_authz_active(s->daemon->authz) ||
        (m->params && (!json_is_object(m->params) || json_object_get(m->params, "cursor"))))
        return false;
    if (cat->first_page[kind] == NULL) {
        json_t *page = mcpd_catalog_page_kind(cat, kind, NULL, s->daemon->cfg->limits.page_size);
        mcpd_buf_init(&b, (size_t)-1 / 2);
        if (page == NULL || mcpd_jsonrpc_dump(&b, page) != 0) {
            json_decref(page);
            mcpd_buf_dispose(&b);
            return false;
        }
        json_decref(page);
        cat->first_page[kind] = mcpd_buf_steal(&b, &cat->first_page_len[kind]);
    }
    mcpd_buf_init(&b, (size_t)-1 / 2);
    if (mcpd_buf_append(&b, "{\"jsonrpc\":\"2.0\",\"id\":", 22) == 0 &&
        mcpd_jsonrpc_dump(&b, m->id) == 0 && mcpd_buf_append(&b, ",\"result\":", 10) == 0 &&
        mcpd_buf_append(&b, cat->first_page[kind], cat->first_page_len[kind]) == 0 &&
        mcpd_buf_append(&b, "}", 1) == 0) {
        reply->ops->send(reply, b.p, b.len, true);
        sent = true;
    }
    mcpd_buf_dispose(&b);
    return sent;
}

static void handle_request(struct mcpd_session *s, struct mcpd_msg *m, struct mcpd_sink *reply)
{
    json_t *result = NULL;
    int code = MCPD_RPC_METHOD_NOT_FOUND;
    const char *why = NULL;
    char buf[200];

    if (strcmp(m->method, "server/discover") == 0) {
        result = mcpd__discover(s); /* any time, in either era */
    } else if (s->modern && mcpd__modern_lacks(m->method)) {
        snprintf(buf, sizeof(buf), "Method not found: %.100s does not exist in protocol %s",
                 m->method, MCPD_MODERN_VERSION);
        why = buf;
    } else if (strcmp(m->method, "ping") == 0) {
        result = json_object();
    } else if (strcmp(m->method, "initialize") == 0) {
        result = do_initialize(s, m, &code, &why);
    } else if (s->state != MCPD_SESSION_READY) {
        code = MCPD_RPC_INVALID_REQUEST;
        why = "Invalid Request: the session is not initialized";
    } else if (m->params && !json_is_object(m->params)) {
        code = MCPD_RPC_INVALID_PARAMS;
        why = "Invalid params: params must be an object";
    } else if (m->params == NULL && strcmp(m->method, "tools/list") != 0 &&
               strcmp(m->method, "prompts/list") != 0 && strcmp(m->method, "resources/list") != 0 &&
               strcmp(m->method, "resources/templates/list") != 0 &&
               strcmp(m->method, "logging/setLevel") != 0 && mcpd_session_method_known(m->method)) {
        code = MCPD_RPC_INVALID_PARAMS;
        why = "Invalid params: params are required";
    } else if (s->modern && strcmp(m->method, "subscriptions/listen") == 0) {
        mcpd__listen(s, m, reply);
        return;
    } else if (route_request(s, m, reply)) {
        return;
    } else if (list_from_cache(s, m, reply)) {
        return;
    } else if (strcmp(m->method, "tools/list") == 0) {
        result = do_list(s, m, MCPD_LIST_TOOLS, &code, &why);
    } else if (strcmp(m->method, "prompts/list") == 0) {
        result = do_list(s, m, MCPD_LIST_PROMPTS, &code, &why);
    } else if (strcmp(m->method, "resources/list") == 0) {
        result = do_list(s, m, MCPD_LIST_RESOURCES, &code, &why);
    } else if (strcmp(m->method, "resources/templates/list") == 0) {
        result = do_list(s, m, MCPD_LIST_TEMPLATES, &code, &why);
    } else if (strcmp(m->method, "logging/setLevel") == 0) {
        result = do_set_level(s, m, &code, &why);
    }
    if (result) {
        json_t *resp = mcpd_jsonrpc_result_new(m->id, result);
        if (resp && s->modern) /* lists must say how long they may be cached */
            mcpd__modernize(resp, strstr(m->method, "/list") != NULL);
        if (resp)
            mcpd__send(reply, resp, true);
        json_decref(resp);
        return;
    }
    if (why == NULL) {
        snprintf(buf, sizeof(buf), "Method not found: %.150s", m->method);
        why = buf;
    }
    mcpd__send_error(reply, m->id, code, why);
}

static void handle_notification(struct mcpd_session *s, struct mcpd_msg *m)
{
    json_t *rid;
    if (strcmp(m->method, "notifications/cancelled") != 0)
        return; /* initialized, roots/list_changed, ...: nothing to do */
    rid = json_object_get(m->params, "requestId");
    if (rid && s->listen_id && json_equal(s->listen_id, rid)) {
        /* a modern client ends its subscription (stdio): no answer follows */
        s->tparent = NULL;
        mcpd__session_close_soon(s);
        return;
    }
    for (struct mcpd_pending *p = s->pending; rid && p; p = p->snext) {
        if (json_equal(p->client_id, rid)) {
            LOG_DEBUG("session", "session=%s client cancelled %s", s->id, p->tool_name);
            mcpd__router_cancel(p, "cancelled by client");
            mcpd__daemon_check_drained(s->daemon);
            return;
        }
    }
}

void mcpd_session_handle(struct mcpd_session *s, struct mcpd_msg *m, struct mcpd_sink *reply)
{
    if (s->state == MCPD_SESSION_CLOSED) {
        if (m->kind == MCPD_MSG_REQUEST)
            mcpd__send_error(reply, m->id, MCPD_RPC_INVALID_REQUEST,
                             "Invalid Request: session closed");
        return;
    }
    mcpd_session_ref(s);
    s->last_active = uv_now(s->daemon->loop);
    switch (m->kind) {
    case MCPD_MSG_REQUEST:
        handle_request(s, m, reply);
        break;
    case MCPD_MSG_NOTIFICATION:
        handle_notification(s, m);
        break;
    case MCPD_MSG_RESPONSE:
        mcpd__router_client_response(s, m);
        break;
    }
    mcpd_session_unref(&s);
}
