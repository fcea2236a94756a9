/*
 * upstream.c - the core half of every upstream: MCP handshake, tool
 * listing, health and restarts. Adapters only move bytes.
 *
 *   DOWN --start--> CONNECTING --connected--> INITIALIZING
 *   INITIALIZING --initialize ok, tools/list done--> READY
 *   any --disconnected--> DOWN --(backoff 1 s .. 60 s)--> CONNECTING
 *   any --shutdown--> STOPPING --disconnected--> DOWN (no restart)
 *
 * While an upstream is not READY its tools are out of the catalog and
 * clients are told with list_changed; other upstreams are unaffected.
 */
#include "upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents.h"
#include "catalog.h"
#include "config.h"
#include "daemon.h"
#include "error.h"
#include "limits.h"
#include "log.h"
#include "router.h"
#include "session.h"

static const char *const state_names[] = { "down", "connecting", "initializing", "ready",
                                           "stopping" };

const char *mcpd_upstream_state_name(enum mcpd_upstream_state st)
{
    return (unsigned)st < 5 ? state_names[st] : "?";
}

static void set_state(struct mcpd_upstream *up, enum mcpd_upstream_state st)
{
    if (up->state == st)
        return;
    LOG_DEBUG("upstream", "upstream=%s state %s -> %s", up->name, state_names[up->state],
              state_names[st]);
    up->state = st;
}

void mcpd_upstream_init(struct mcpd_upstream *up, struct mcpd_daemon *d,
                        const struct mcpd_server_config *cfg, const struct mcpd_upstream_ops *ops)
{
    memset(up, 0, sizeof(*up));
    up->ops = ops;
    up->daemon = d;
    up->cfg = cfg;
    up->name = cfg->name;
    mcpd_map_init(&up->pending);
    uv_timer_init(d->loop, &up->deadline_timer);
    uv_timer_init(d->loop, &up->restart_timer);
    uv_timer_init(d->loop, &up->notify_timer);
    uv_timer_init(d->loop, &up->listen_timer);
    up->deadline_timer.data = up->restart_timer.data = up->notify_timer.data = up;
    up->listen_timer.data = up;
    up->restart_delay_ms = MCPD_RESTART_MIN_MS;
    up->listing = -1;
    mcpd_map_init(&up->subs);
}

static void settle_first(struct mcpd_upstream *up)
{
    if (!up->started_once) {
        up->started_once = true;
        mcpd__daemon_upstream_settled(up->daemon);
    }
}

static void start_attempt(struct mcpd_upstream *up)
{
    int r;
    set_state(up, MCPD_UP_CONNECTING);
    if ((r = up->ops->start(up)) != 0) {
        snprintf(up->last_error, sizeof(up->last_error), "start failed: %s", mcpd_strerror(r));
        LOG_ERROR("upstream", "upstream=%s %s", up->name, up->last_error);
        mcpd_upstream_on_disconnected(up, up->last_error);
    }
}

static void on_restart_timer(uv_timer_t *t)
{
    struct mcpd_upstream *up = t->data;
    if (up->stop_requested || up->state != MCPD_UP_DOWN)
        return;
    LOG_INFO("upstream", "upstream=%s restarting (attempt %u)", up->name, up->restarts);
    start_attempt(up);
}

/* ---- lists across pages --------------------------------------------------- */

static void list_page(struct mcpd_upstream *up, const char *cursor);
static void list_next_kind(struct mcpd_upstream *up);

static bool has_cap(const struct mcpd_upstream *up, enum mcpd_list_kind k)
{
    static const char *const cap[MCPD_LIST_KINDS] = { "tools", "prompts", "resources",
                                                      "resources" };
    return json_object_get(up->server_caps, cap[k]) != NULL;
}

static void became_ready(struct mcpd_upstream *up)
{
    set_state(up, MCPD_UP_READY);
    up->restart_delay_ms = MCPD_RESTART_MIN_MS;
    up->ready_since = uv_now(up->daemon->loop);
    up->last_error[0] = '\0';
    if (up->is_private) {
        LOG_DEBUG("upstream", "upstream=%s per-client instance ready, protocol %s", up->name,
                  up->protocol_version);
        return;
    }
    LOG_INFO("upstream", "upstream=%s ready: %zu tools, %zu prompts, %zu resources, protocol %s",
             up->name, json_array_size(up->lists[MCPD_LIST_TOOLS]),
             json_array_size(up->lists[MCPD_LIST_PROMPTS]),
             json_array_size(up->lists[MCPD_LIST_RESOURCES]), up->protocol_version);
}

static void on_list(struct mcpd_upstream *up, struct mcpd_msg *m, const char *why)
{
    enum mcpd_list_kind k = (enum mcpd_list_kind)up->listing;
    json_t *items, *next;

    if (m == NULL || m->error ||
        !json_is_array(items = json_object_get(m->result, mcpd_list_key[k]))) {
        const char *em =
            m && m->error ? json_string_value(json_object_get(m->error, "message")) : NULL;
        snprintf(up->last_error, sizeof(up->last_error), "%s failed: %s", mcpd_list_method[k],
                 why             ? why
                 : em            ? em
                 : m && m->error ? "error"
                                 : "malformed result");
        LOG_ERROR("upstream", "upstream=%s %s", up->name, up->last_error);
        json_decref(up->list_next);
        up->list_next = NULL;
        up->listing = -1;
        if (up->state == MCPD_UP_INITIALIZING && k == MCPD_LIST_TOOLS) {
            up->ops->stop(up); /* counts as a failed start: restart with backoff */
            return;
        }
        list_next_kind(up); /* a broken optional list leaves that list empty */
        return;
    }
    if (json_array_size(up->list_next) + json_array_size(items) > MCPD_MAX_UPSTREAM_TOOLS) {
        LOG_WARN("upstream", "upstream=%s lists more than %u %s; the rest is ignored", up->name,
                 MCPD_MAX_UPSTREAM_TOOLS, mcpd_list_key[k]);
    } else {
        json_array_extend(up->list_next, items);
        next = json_object_get(m->result, "nextCursor");
        if (json_is_string(next) && ++up->list_pages < MCPD_MAX_LIST_PAGES) {
            list_page(up, json_string_value(next));
            return;
        }
    }
    json_decref(up->lists[k]);
    up->lists[k] = up->list_next;
    up->list_next = NULL;
    up->listing = -1;
    if (up->state == MCPD_UP_READY)
        mcpd__daemon_lists_changed(up->daemon, up, 1u << k);
    list_next_kind(up);
}

static void list_page(struct mcpd_upstream *up, const char *cursor)
{
    json_t *params = cursor ? json_pack("{s:s}", "cursor", cursor) : json_object();
    if (mcpd__router_internal(up, mcpd_list_method[up->listing], params, MCPD_INIT_TIMEOUT_MS,
                              on_list) != 0)
        up->ops->stop(up);
}

/* Lists the next kind in relist_mask; at the end of the first round, READY. */
/* ---- 2026-07-28: list changes come on a subscriptions/listen stream ---------------- */

static void listen_upstream(struct mcpd_upstream *up);

/*
 * Opens the listen again: after it ended (with backoff), or at once, from
 * the loop, when the subscribed URIs changed (up->listen_restart; never
 * from inside the request that changed them, which may run in the stream's
 * own delivery, and one restart for many changes).
 */
static void on_listen_timer(uv_timer_t *t)
{
    struct mcpd_upstream *up = t->data;
    struct mcpd_pending *p;

    if (up->state != MCPD_UP_READY || up->stop_requested || up->daemon->shutting_down)
        return;
    if (up->listen_restart && up->listening &&
        (p = mcpd_map_get_u64(&up->pending, up->listen_up_id)) != NULL) {
        mcpd__router_cancel(p, "resubscribing"); /* its callback does not run */
        up->listening = false;
    }
    up->listen_restart = false;
    listen_upstream(up);
}

/*
 * The stream ended: a timeout (MCPD_UPSTREAM_LISTEN_MS), a result, the
 * transport (a dropped HTTP stream), or the upstream went away (then the
 * next start listens again). A JSON-RPC refusal from the server (method or
 * params refused) stops it; anything else reopens it after a delay that
 * doubles while streams end within 10 s (1 s up to a minute).
 */
static void on_listen_end(struct mcpd_upstream *up, struct mcpd_msg *m, const char *why)
{
    uint64_t lasted = uv_now(up->daemon->loop) - up->listen_since;
    int64_t code = m && m->error ? json_integer_value(json_object_get(m->error, "code")) : 0;

    up->listening = false;
    if (up->state != MCPD_UP_READY || up->stop_requested)
        return;
    if (code == MCPD_RPC_METHOD_NOT_FOUND || code == MCPD_RPC_INVALID_PARAMS ||
        code == MCPD_RPC_MISSING_CAPABILITY) {
        LOG_WARN("upstream",
                 "upstream=%s refused subscriptions/listen (%.120s): its list changes and "
                 "resource updates are not seen",
                 up->name, json_string_value(json_object_get(m->error, "message")) ?: "error");
        return;
    }
    up->listen_backoff_ms =
        lasted < 10000 && up->listen_backoff_ms
            ? (up->listen_backoff_ms >= 30000 ? 60000 : up->listen_backoff_ms * 2)
            : 1000;
    if (why == NULL)
        why = m && m->error ? json_string_value(json_object_get(m->error, "message")) : "complete";
    LOG_DEBUG("upstream", "upstream=%s subscriptions/listen ended (%.120s): reopening in %u ms",
              up->name, why ? why : "error", up->listen_backoff_ms);
    uv_timer_start(&up->listen_timer, on_listen_timer, up->listen_backoff_ms, 0);
}

static void add_uri(const void *key, size_t klen, void *value, void *arg)
{
    (void)value;
    json_array_append_new(arg, json_stringn(key, klen));
}

/*
 * Opens the stream of what the server offers and mcpd wants: list changes
 * (its listChanged capabilities) and updates of the URIs some session
 * subscribed to (up->subs). Nothing to listen to: no stream.
 */
static void listen_upstream(struct mcpd_upstream *up)
{
    static const char *const cap[] = { "tools", "prompts", "resources" };
    static const char *const flag[] = { "toolsListChanged", "promptsListChanged",
                                        "resourcesListChanged" };
    json_t *want = json_object(), *uris;

    for (size_t i = 0; want && i < sizeof(cap) / sizeof(cap[0]); i++)
        if (json_is_true(json_object_get(json_object_get(up->server_caps, cap[i]), "listChanged")))
            json_object_set_new(want, flag[i], json_true());
    if (want && up->subs.count > 0 && (uris = json_array()) != NULL) {
        mcpd_map_foreach_key(&up->subs, add_uri, uris);
        json_object_set_new(want, "resourceSubscriptions", uris);
    }
    if (want == NULL || json_object_size(want) == 0 || up->listening) {
        json_decref(want);
        return;
    }
    up->listen_since = uv_now(up->daemon->loop);
    if (mcpd__router_internal(up, "subscriptions/listen", json_pack("{s:o}", "notifications", want),
                              MCPD_UPSTREAM_LISTEN_MS, on_listen_end) == 0) {
        up->listening = true;
        up->listen_up_id = up->next_id; /* the request just made */
    }
}

void mcpd__upstream_subs_changed(struct mcpd_upstream *up)
{
    if (!up->modern || up->state != MCPD_UP_READY || up->stop_requested ||
        up->daemon->shutting_down)
        return; /* the next listen (once ready) carries the set */
    up->listen_restart = true;
    uv_timer_start(&up->listen_timer, on_listen_timer, 0, 0);
}

json_t *mcpd_upstream_tools(const struct mcpd_upstream *up)
{
    const struct mcpd_daemon *d = up->daemon;

    if (!up->is_private)
        return up->lists[MCPD_LIST_TOOLS];
    for (size_t i = 0; i < d->nups; i++)
        if (d->ups[i]->cfg == up->cfg && !d->ups[i]->is_private)
            return d->ups[i]->lists[MCPD_LIST_TOOLS];
    return NULL;
}

bool mcpd__upstream_can_subscribe(const struct mcpd_upstream *up)
{
    return json_is_true(
        json_object_get(json_object_get(up->server_caps, "resources"), "subscribe"));
}

static void ignore_answer(struct mcpd_upstream *up, struct mcpd_msg *m, const char *why)
{
    if (m == NULL || m->error)
        LOG_WARN("upstream", "upstream=%s refused a subscription again after its restart: %s",
                 up->name, why ? why : "error");
}

static void resubscribe(const void *key, size_t klen, void *value, void *arg)
{
    struct mcpd_upstream *up = arg;
    (void)value;
    mcpd__router_internal(up, "resources/subscribe",
                          json_pack("{s:s%}", "uri", (const char *)key, klen), MCPD_INIT_TIMEOUT_MS,
                          ignore_answer);
}

static void list_next_kind(struct mcpd_upstream *up)
{
    for (int k = 0; k < MCPD_LIST_KINDS; k++) {
        if (!(up->relist_mask & (1u << k)))
            continue;
        up->relist_mask &= ~(1u << k);
        if (!has_cap(up, (enum mcpd_list_kind)k))
            continue;
        up->listing = k;
        up->list_pages = 0;
        up->list_next = json_array();
        list_page(up, NULL);
        return;
    }
    if (up->state == MCPD_UP_INITIALIZING) {
        became_ready(up);
        if (up->modern)
            listen_upstream(up);     /* with the subscribed URIs */
        else if (up->subs.count > 0) /* a restart: the new process knows of none */
            mcpd_map_foreach_key(&up->subs, resubscribe, up);
        mcpd__daemon_lists_changed(up->daemon, up, (1u << MCPD_LIST_KINDS) - 1);
        settle_first(up);
    }
}

void mcpd__upstream_relist(struct mcpd_upstream *up, unsigned kinds)
{
    up->relist_mask |= kinds;
    if (up->state == MCPD_UP_READY && up->listing < 0)
        list_next_kind(up);
}

/* ---- handshake ---------------------------------------------------------- */

json_t *mcpd__relayed_caps(const json_t *caps)
{
    static const char *const relayed[] = { "sampling", "elicitation", "roots" };
    json_t *out = json_object();

    for (size_t i = 0; out && i < sizeof(relayed) / sizeof(relayed[0]); i++) {
        json_t *c = json_object_get(caps, relayed[i]);
        if (json_is_object(c))
            json_object_set_new(out, relayed[i], json_deep_copy(c));
    }
    return out;
}

int mcpd__upstream_meta(const struct mcpd_upstream *up, json_t *msg, const json_t *client_caps)
{
    json_t *params, *meta;

    if (!up->modern)
        return 0;
    if ((params = json_object_get(msg, "params")) != NULL && !json_is_object(params))
        return MCPD_EPROTO;
    if (params == NULL && json_object_set_new(msg, "params", params = json_object()) != 0)
        return MCPD_ENOMEM;
    if ((meta = json_object_get(params, "_meta")) == NULL &&
        json_object_set_new(params, "_meta", meta = json_object()) != 0)
        return MCPD_ENOMEM;
    if (!json_is_object(meta))
        return MCPD_EPROTO;
    if (json_object_set_new(meta, MCPD_META_VERSION, json_string(MCPD_MODERN_VERSION)) != 0 ||
        json_object_set_new(meta, MCPD_META_CAPS, mcpd__relayed_caps(client_caps)) != 0 ||
        json_object_set_new(meta, MCPD_META_INFO,
                            json_pack("{s:s, s:s}", "name", "mcpd", "version", MCPD_VERSION)) != 0)
        return MCPD_ENOMEM;
    return 0;
}

/* The handshake is done (either era): the catalog's lists come next. */
static void handshake_done(struct mcpd_upstream *up)
{
    if (up->is_private) { /* the catalog comes from the shared instance */
        became_ready(up);
        mcpd__router_flush_queued(up);
        return;
    }
    up->relist_mask = (1u << MCPD_LIST_KINDS) - 1;
    list_next_kind(up);
}

static void on_discover(struct mcpd_upstream *up, struct mcpd_msg *m, const char *why)
{
    json_t *versions = m && m->result ? json_object_get(m->result, "supportedVersions") : NULL;
    json_t *v, *info;
    bool ok = false;
    size_t i;

    json_array_foreach (versions, i, v)
        ok = ok || (json_is_string(v) && strcmp(json_string_value(v), MCPD_MODERN_VERSION) == 0);
    if (!ok) {
        snprintf(up->last_error, sizeof(up->last_error), "server/discover failed: %s",
                 why             ? why
                 : m && m->error ? "error response"
                                 : "no " MCPD_MODERN_VERSION " in supportedVersions");
        LOG_ERROR("upstream", "upstream=%s %s", up->name, up->last_error);
        up->ops->stop(up);
        return;
    }
    snprintf(up->protocol_version, sizeof(up->protocol_version), "%s", MCPD_MODERN_VERSION);
    info = json_object_get(json_object_get(m->result, "_meta"), MCPD_META_SERVER);
    json_decref(up->server_info);
    up->server_info = json_incref(info ? info : json_object_get(m->result, "serverInfo"));
    json_decref(up->server_caps);
    up->server_caps = json_incref(json_object_get(m->result, "capabilities"));
    if (!json_is_object(up->server_caps)) {
        json_decref(up->server_caps);
        up->server_caps = json_object();
    }
    handshake_done(up);
}

static void discover(struct mcpd_upstream *up)
{
    up->modern = true;
    if (mcpd__router_internal(up, "server/discover", json_object(), MCPD_INIT_TIMEOUT_MS,
                              on_discover) != 0)
        up->ops->stop(up);
}

/* An error to initialize that names 2026-07-28 among the supported versions (-32022). */
static bool refused_for_modern(const struct mcpd_msg *m)
{
    json_t *supported = json_object_get(json_object_get(m->error, "data"), "supported"), *v;
    size_t i;

    json_array_foreach (supported, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), MCPD_MODERN_VERSION) == 0)
            return true;
    return false;
}

static void on_initialize(struct mcpd_upstream *up, struct mcpd_msg *m, const char *why)
{
    const char *v;
    json_t *n;

    if (m && m->error && up->cfg->era == MCPD_SPEAK_AUTO && !up->agent && refused_for_modern(m)) {
        LOG_INFO("upstream", "upstream=%s refused initialize: speaking %s to it", up->name,
                 MCPD_MODERN_VERSION);
        discover(up);
        return;
    }
    if (m == NULL || m->error || !json_is_string(json_object_get(m->result, "protocolVersion"))) {
        snprintf(up->last_error, sizeof(up->last_error), "initialize failed: %s",
                 why             ? why
                 : m && m->error ? "error response"
                                 : "no protocolVersion");
        LOG_ERROR("upstream", "upstream=%s %s", up->name, up->last_error);
        up->ops->stop(up);
        return;
    }
    v = json_string_value(json_object_get(m->result, "protocolVersion"));
    if (!mcpd_session_version_supported(v)) {
        snprintf(up->last_error, sizeof(up->last_error), "unsupported protocol version %.20s", v);
        LOG_ERROR("upstream", "upstream=%s %s", up->name, up->last_error);
        up->ops->stop(up);
        return;
    }
    snprintf(up->protocol_version, sizeof(up->protocol_version), "%s", v);
    json_decref(up->server_info);
    up->server_info = json_incref(json_object_get(m->result, "serverInfo"));
    json_decref(up->server_caps);
    up->server_caps = json_incref(json_object_get(m->result, "capabilities"));
    if (!json_is_object(up->server_caps)) {
        json_decref(up->server_caps);
        up->server_caps = json_object();
    }
    n = mcpd_jsonrpc_notification_new("notifications/initialized", NULL);
    if (n)
        mcpd__upstream_send(up, n);
    json_decref(n);
    handshake_done(up);
}

/*
 * The client capabilities an instance is told of. A per-client instance:
 * exactly its client's. The listing instance of a per-client server: every
 * capability mcpd can relay, so that the catalog shows the tools such
 * servers offer only to capable clients (it never works for a client; what
 * it asks is refused). A shared instance: none, since it serves clients that
 * may lack any of them.
 */
static json_t *initialize_capabilities(const struct mcpd_upstream *up)
{
    if (up->is_private && up->owner && up->owner->modern) /* asked of it with input_required */
        return mcpd__relayed_caps(up->owner->client_caps);
    if (up->is_private)
        return up->owner && up->owner->client_caps ? json_deep_copy(up->owner->client_caps)
                                                   : json_object();
    if (up->cfg->per_client)
        return json_pack("{s:{}, s:{s:{}, s:{}}, s:{s:b}}", "sampling", "elicitation", "form",
                         "url", "roots", "listChanged", 1);
    return json_object();
}

void mcpd_upstream_on_connected(struct mcpd_upstream *up)
{
    json_t *params;
    set_state(up, MCPD_UP_INITIALIZING);
    up->modern = false;
    if ((up->cfg->era == MCPD_SPEAK_MODERN || up->modern_hint) && !up->agent) {
        discover(up);
        return;
    }
    /* agents: the version fixed by the agent wire protocol */
    params = json_pack("{s:s, s:o, s:{s:s, s:s}}", "protocolVersion",
                       up->agent ? "2025-06-18" : mcpd_session_versions[0], "capabilities",
                       initialize_capabilities(up), "clientInfo", "name", "mcpd", "version",
                       MCPD_VERSION);
    if (mcpd__router_internal(up, "initialize", params, MCPD_INIT_TIMEOUT_MS, on_initialize) != 0)
        up->ops->stop(up);
}

void mcpd_upstream_on_message(struct mcpd_upstream *up, const char *data, size_t len)
{
    struct mcpd_rpc_error err;
    struct mcpd_msg m;
    json_t *root = mcpd_jsonrpc_decode(data, len, MCPD_MAX_JSON_DEPTH, &err);

    if (root == NULL || !json_is_object(root)) {
        LOG_WARN("upstream", "upstream=%s sent an invalid message: %s", up->name,
                 root ? "not an object" : err.message);
        json_decref(root);
        return;
    }
    if (json_object_size(root) == 0)
        LOG_DEBUG("upstream", "upstream=%s sent an empty object; ignored", up->name);
    else if (mcpd_jsonrpc_classify(&m, root, &err) != 0)
        LOG_WARN("upstream", "upstream=%s sent an invalid message: %s: %.200s", up->name,
                 err.message, data);
    else
        mcpd__router_upstream_message(up, &m);
    json_decref(root);
}

static void drop_lists(struct mcpd_upstream *up)
{
    for (int k = 0; k < MCPD_LIST_KINDS; k++) {
        json_decref(up->lists[k]);
        up->lists[k] = NULL;
    }
    json_decref(up->list_next);
    up->list_next = NULL;
    up->listing = -1;
    up->relist_mask = 0;
    /* up->subs stays: the sessions are still subscribed, and the next start subscribes again */
}

void mcpd_upstream_on_disconnected(struct mcpd_upstream *up, const char *why)
{
    bool was_ready = up->state == MCPD_UP_READY || up->state == MCPD_UP_STOPPING;
    char msg[240];

    if (why && up->last_error[0] == '\0')
        snprintf(up->last_error, sizeof(up->last_error), "%s", why);
    snprintf(msg, sizeof(msg), "upstream '%s' went away: %s", up->name, why ? why : "closed");
    mcpd__router_fail_all(up, msg);
    drop_lists(up);
    set_state(up, MCPD_UP_DOWN);
    if (up->is_private) { /* never restarted: the next request makes a new one */
        LOG_DEBUG("upstream", "upstream=%s per-client instance ended (%s)", up->name,
                  why ? why : "closed");
        if (up->owner)
            mcpd__session_drop_private(up->owner, up);
        mcpd__upstream_close(up);
        return;
    }
    if (was_ready)
        mcpd__daemon_lists_changed(up->daemon, up, (1u << MCPD_LIST_KINDS) - 1);
    settle_first(up);
    if (up->agent != NULL) { /* the agent reconnects by itself */
        LOG_INFO("upstream", "agent=%s disconnected (%s)", up->name, why ? why : "closed");
        mcpd__agents_upstream_down(up);
        if (up->stop_requested)
            mcpd__daemon_check_drained(up->daemon);
        return;
    }
    if (up->stop_requested) {
        mcpd__daemon_check_drained(up->daemon);
        return;
    }
    /* a server that stayed up a while gets a fresh backoff */
    if (up->ready_since && uv_now(up->daemon->loop) - up->ready_since > MCPD_RESTART_MAX_MS)
        up->restart_delay_ms = MCPD_RESTART_MIN_MS;
    up->ready_since = 0;
    up->restarts++;
    LOG_WARN("upstream", "upstream=%s down (%s); restart in %u ms", up->name, why ? why : "closed",
             up->restart_delay_ms);
    uv_timer_start(&up->restart_timer, on_restart_timer, up->restart_delay_ms, 0);
    up->restart_delay_ms = up->restart_delay_ms * 2 > MCPD_RESTART_MAX_MS
                               ? MCPD_RESTART_MAX_MS
                               : up->restart_delay_ms * 2;
}

void mcpd__upstream_shutdown(struct mcpd_upstream *up)
{
    up->stop_requested = true;
    uv_timer_stop(&up->restart_timer);
    if (up->state == MCPD_UP_DOWN)
        return;
    set_state(up, MCPD_UP_STOPPING);
    up->ops->stop(up);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct mcpd_upstream *up = h->data;
    if (--up->handles_open == 0)
        up->ops->free(up);
}

void mcpd__upstream_close(struct mcpd_upstream *up)
{
    mcpd__router_fail_all(up, "mcpd is shutting down");
    mcpd_map_dispose(&up->pending);
    drop_lists(up);
    mcpd_map_dispose(&up->subs);
    json_decref(up->server_info);
    json_decref(up->server_caps);
    up->server_info = up->server_caps = NULL;
    up->handles_open = 4;
    uv_close((uv_handle_t *)&up->deadline_timer, on_timer_closed);
    uv_close((uv_handle_t *)&up->restart_timer, on_timer_closed);
    uv_close((uv_handle_t *)&up->notify_timer, on_timer_closed);
    uv_close((uv_handle_t *)&up->listen_timer, on_timer_closed);
}

void mcpd__upstream_start(struct mcpd_upstream *up)
{
    start_attempt(up);
}
