/*
 * session.c - one client session (session era) and the dispatch of its
 * messages.
 *
 *   NEW --initialize--> READY --close/reap/shutdown--> CLOSED
 *
 * mcpd answers initialize, ping, logging/setLevel and tools/list itself;
 * tools/call goes to the router. Requests before initialize get -32600
 * (except ping). Hidden or unknown tools get the same -32602 error, so the
 * error never tells whether a name exists upstream.
 */
#include "session.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "error.h"
#include "limits.h"
#include "log.h"
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
    free(s);
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
    mcpd__daemon_check_drained(s->daemon);
}

void mcpd_session_close(struct mcpd_session *s)
{
    struct mcpd_daemon *d = s->daemon;
    if (s->state == MCPD_SESSION_CLOSED)
        return;
    s->state = MCPD_SESSION_CLOSED;
    mcpd_session_ref(s);
    while (s->pending)
        mcpd__router_cancel(s->pending, "session closed");
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
        *why = "Invalid params: initialize needs protocolVersion (string) and capabilities (object)";
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
    return json_pack("{s:s, s:o, s:{s:s, s:s, s:s}}", "protocolVersion", s->version,
                     "capabilities", mcpd__daemon_capabilities(s->daemon), "serverInfo", "name",
                     "mcpd", "title", "mcpd MCP proxy", "version", MCPD_VERSION);
}

static json_t *do_set_level(struct mcpd_session *s, struct mcpd_msg *m, int *code,
                            const char **why)
{
    static const char *const levels[] = { "debug", "info", "notice", "warning", "error",
                                          "critical", "alert", "emergency" };
    const char *l = json_string_value(json_object_get(m->params, "level"));
    for (int i = 0; l && i < 8; i++) {
        if (strcmp(l, levels[i]) == 0) {
            s->log_level = i;
            return json_object();
        }
    }
    *code = MCPD_RPC_INVALID_PARAMS;
    *why = "Invalid params: level must be one of debug, info, notice, warning, error, critical, alert, emergency";
    return NULL;
}

static json_t *do_tools_list(struct mcpd_session *s, struct mcpd_msg *m, int *code,
                             const char **why)
{
    json_t *c = m->params ? json_object_get(m->params, "cursor") : NULL;
    json_t *page;
    if (c && !json_is_string(c)) {
        *code = MCPD_RPC_INVALID_PARAMS;
        *why = "Invalid params: cursor must be a string";
        return NULL;
    }
    page = mcpd_catalog_page(s->daemon->catalog, json_string_value(c),
                             s->daemon->cfg->limits.page_size);
    if (page == NULL) {
        *code = MCPD_RPC_INVALID_PARAMS;
        *why = "Invalid params: unknown cursor";
    }
    return page;
}

static void do_tools_call(struct mcpd_session *s, struct mcpd_msg *m, struct mcpd_sink *reply)
{
    const char *name = json_string_value(json_object_get(m->params, "name"));
    json_t *args = json_object_get(m->params, "arguments");
    const struct mcpd_catalog_entry *e;
    char why[256];
    int r;

    if (name == NULL || (args && !json_is_object(args))) {
        mcpd__send_error(reply, m->id, MCPD_RPC_INVALID_PARAMS,
                         "Invalid params: tools/call needs name (string) and arguments (object)");
        return;
    }
    e = mcpd_catalog_lookup(s->daemon->catalog, name);
    if (e == NULL) {
        snprintf(why, sizeof(why), "Unknown tool: %.200s", name);
        mcpd__send_error(reply, m->id, MCPD_RPC_INVALID_PARAMS, why);
        return;
    }
    if (s->inflight >= s->daemon->cfg->limits.max_inflight) {
        mcpd__send_error(reply, m->id, MCPD_RPC_BUSY,
                         "Too many requests in flight for this session");
        return;
    }
    r = mcpd__router_forward(s, e->owner, m, reply, e->tool);
    if (r == 0)
        return;
    if (r == MCPD_EBUSY)
        snprintf(why, sizeof(why), "upstream '%s' is busy (too many requests in flight)", e->resource);
    else
        snprintf(why, sizeof(why), "upstream '%s' is unavailable: %s", e->resource, mcpd_strerror(r));
    mcpd__send_error(reply, m->id, MCPD_RPC_SERVER_ERROR, why);
}

static void handle_request(struct mcpd_session *s, struct mcpd_msg *m, struct mcpd_sink *reply)
{
    json_t *result = NULL;
    int code = MCPD_RPC_METHOD_NOT_FOUND;
    const char *why = NULL;
    char buf[200];

    if (strcmp(m->method, "ping") == 0) {
        result = json_object();
    } else if (strcmp(m->method, "initialize") == 0) {
        result = do_initialize(s, m, &code, &why);
    } else if (s->state != MCPD_SESSION_READY) {
        code = MCPD_RPC_INVALID_REQUEST;
        why = "Invalid Request: the session is not initialized";
    } else if (m->params && !json_is_object(m->params)) {
        code = MCPD_RPC_INVALID_PARAMS;
        why = "Invalid params: params must be an object";
    } else if (strcmp(m->method, "tools/call") == 0) {
        do_tools_call(s, m, reply);
        return;
    } else if (strcmp(m->method, "tools/list") == 0) {
        result = do_tools_list(s, m, &code, &why);
    } else if (strcmp(m->method, "logging/setLevel") == 0) {
        result = do_set_level(s, m, &code, &why);
    }
    if (result) {
        json_t *resp = mcpd_jsonrpc_result_new(m->id, result);
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
            mcpd__send_error(reply, m->id, MCPD_RPC_INVALID_REQUEST, "Invalid Request: session closed");
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
        LOG_DEBUG("session", "session=%s unexpected response dropped", s->id);
        break;
    }
    mcpd_session_unref(&s);
}
