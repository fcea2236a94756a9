/*
 * router.c - forwarding between sessions and upstreams (see router.h).
 *
 * Hot path of a tools/call: the decoded client message is rewritten in
 * place (id, tool name, progress token), serialized once into a reused
 * buffer and written to the upstream; the response object from the
 * upstream gets the client's id back and is serialized once toward the
 * client's sink. Deadlines live in one timer per upstream over a list kept
 * in deadline order (insertion from the tail is O(1) when every call to an
 * upstream has the same timeout, the common case).
 */
#include "router.h"

#include <stdlib.h>
#include <string.h>

#include "agents.h"
#include "authz.h"
#include "catalog.h"
#include "daemon.h"
#include "error.h"
#include "limits.h"
#include "log.h"

static struct mcpd_buf client_scratch = { NULL, 0, 0, (size_t)-1 / 2 };
static struct mcpd_buf upstream_scratch = { NULL, 0, 0, (size_t)-1 / 2 };

int mcpd__send(struct mcpd_sink *sink, const json_t *msg, bool final)
{
    int r;
    if (sink == NULL)
        return MCPD_ECLOSED;
    mcpd_buf_reset(&client_scratch);
    if ((r = mcpd_jsonrpc_dump(&client_scratch, msg)) != 0)
        return r;
    return sink->ops->send(sink, client_scratch.p, client_scratch.len, final);
}

void mcpd__send_error(struct mcpd_sink *sink, json_t *id, int code, const char *message)
{
    json_t *e = mcpd_jsonrpc_error_new(id, code, message, NULL);
    if (e) {
        mcpd__send(sink, e, true);
        json_decref(e);
    }
}

int mcpd__upstream_send(struct mcpd_upstream *up, const json_t *msg)
{
    int r;
    mcpd_buf_reset(&upstream_scratch);
    if ((r = mcpd_jsonrpc_dump(&upstream_scratch, msg)) != 0)
        return r;
    return up->ops->send(up, upstream_scratch.p, upstream_scratch.len);
}

/* ---- deadline list ------------------------------------------------------ */

static void on_deadline(uv_timer_t *t);

static void rearm(struct mcpd_upstream *up)
{
    uint64_t now = uv_now(up->daemon->loop);
    if (up->fifo_head == NULL) {
        uv_timer_stop(&up->deadline_timer);
        return;
    }
    uv_timer_start(&up->deadline_timer, on_deadline,
                   up->fifo_head->deadline > now ? up->fifo_head->deadline - now : 0, 0);
}

static void link_pending(struct mcpd_upstream *up, struct mcpd_pending *p)
{
    struct mcpd_pending *at = up->fifo_tail;
    while (at && at->deadline > p->deadline)
        at = at->fprev;
    p->fprev = at;
    p->fnext = at ? at->fnext : up->fifo_head;
    if (p->fnext)
        p->fnext->fprev = p;
    else
        up->fifo_tail = p;
    if (at)
        at->fnext = p;
    else
        up->fifo_head = p;
    up->npending++;
    p->linked_up = true;
    if (up->fifo_head == p)
        rearm(up);
}

/* Takes p out of its upstream's deadline list (not out of the id map). */
static void fifo_remove(struct mcpd_upstream *up, struct mcpd_pending *p)
{
    if (p->fprev)
        p->fprev->fnext = p->fnext;
    else
        up->fifo_head = p->fnext;
    if (p->fnext)
        p->fnext->fprev = p->fprev;
    else
        up->fifo_tail = p->fprev;
    p->fprev = p->fnext = NULL;
    up->npending--;
}

/* Detaches p from its upstream (id map, deadlines). */
static void unlink_up(struct mcpd_pending *p)
{
    struct mcpd_upstream *up = p->up;
    bool was_head;

    if (!p->linked_up)
        return;
    p->linked_up = false;
    was_head = up->fifo_head == p;
    mcpd_map_del_u64(&up->pending, p->up_id);
    fifo_remove(up, p);
    if (was_head)
        rearm(up);
}

/* Moves p to another deadline in its upstream's list (a parked call waits input_wait). */
static void set_deadline(struct mcpd_pending *p, uint64_t deadline)
{
    struct mcpd_upstream *up = p->up;

    if (!p->linked_up) {
        p->deadline = deadline;
        return;
    }
    fifo_remove(up, p);
    p->deadline = deadline;
    link_pending(up, p); /* back in order */
    rearm(up);
}

/*
 * A parked call (MRTR) ended without a sink: its answer waits for the
 * retry, which gets it with its own id. True when kept.
 */
static bool stash_final(struct mcpd_pending *p, json_t *msg)
{
    struct mcpd_session *s = p->session;

    if (s == NULL || !s->parked || s->mrtr_call != p || msg == NULL || s->mrtr_final != NULL)
        return false;
    s->mrtr_final = json_incref(msg);
    return true;
}

/* Detaches p from its session and sink. */
static void unlink_session(struct mcpd_pending *p)
{
    struct mcpd_session *s = p->session;
    if (s && (p->sprev || s->pending == p)) {
        if (p->sprev)
            p->sprev->snext = p->snext;
        else
            s->pending = p->snext;
        if (p->snext)
            p->snext->sprev = p->sprev;
        p->sprev = p->snext = NULL;
        s->inflight--;
    }
    if (s && s->mrtr_call == p) {
        s->mrtr_call = NULL;
        if (s->parked && s->mrtr_final == NULL) { /* a retry finds nothing to resume */
            mcpd__session_unpark(s);
            mcpd__session_close_soon(s);
        }
    }
    if (p->sink)
        p->sink->npending--;
    p->sink = NULL;
}

/* Detaches p from its upstream, session and sink. Does not free it. */
static void unlink_pending(struct mcpd_pending *p)
{
    unlink_up(p);
    unlink_session(p);
}

static void forget_inputs(struct mcpd_session *s, struct mcpd_pending *p);

static void free_pending(struct mcpd_pending *p)
{
    struct mcpd_session *s = p->session;
    json_decref(p->held);
    json_decref(p->queued);
    free(p->wire);
    json_decref(p->client_id);
    json_decref(p->progress_token);
    json_decref(p->retry_msg);
    json_decref(p->mrtr_answers);
    json_decref(p->mrtr_state);
    free(p->bind);
    if (p->mrtr_out_n > 0 && s != NULL)
        forget_inputs(s, p);
    free(p);
    if (s)
        mcpd_session_unref(&s);
}

static struct mcpd_pending *new_pending(struct mcpd_upstream *up, unsigned timeout_ms)
{
    struct mcpd_pending *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->up = up;
    p->up_id = ++up->next_id;
    p->deadline = uv_now(up->daemon->loop) + timeout_ms;
    p->timeout_ms = timeout_ms;
    if (mcpd_map_put_u64(&up->pending, p->up_id, p) != 0) {
        free(p);
        return NULL;
    }
    p->started_ns = uv_hrtime();
    return p;
}

static void send_cancelled(struct mcpd_upstream *up, uint64_t id, const char *reason)
{
    json_t *n = mcpd_jsonrpc_notification_new(
        "notifications/cancelled",
        json_pack("{s:I, s:s}", "requestId", (json_int_t)id, "reason", reason));
    if (n && up->state >= MCPD_UP_INITIALIZING && up->state <= MCPD_UP_READY)
        mcpd__upstream_send(up, n);
    json_decref(n);
}

/*
 * Gives the held answer of p (an audited call or denial) once its row is
 * durable (status 0), or the refusal when the row failed, records a
 * forwarded call's outcome, and frees p.
 */
static void release(struct mcpd_pending *p, int status)
{
    struct mcpd_sink *sink = p->sink;
    struct mcpd_daemon *d = p->session ? p->session->daemon : p->up ? p->up->daemon : NULL;

    if (sink == NULL && status == 0)
        stash_final(p, p->held);
    unlink_session(p); /* before sending: a final answer may free the sink */
    if (sink && p->held) {
        if (status == 0)
            mcpd__send(sink, p->held, true);
        else /* fail closed: an answer that cannot be audited is not given */
            mcpd__send_error(sink, p->client_id, MCPD_RPC_SERVER_ERROR,
                             "the audit log cannot be written; the answer is withheld");
    }
    if (d && p->audit_row && status == 0 && p->audit_id > 0 &&
        mcpd_authz_audit_outcome(d->authz, p->audit_id, p->outcome, p->latency_us) != 0)
        LOG_WARN("router", "the outcome of audited call %lld could not be recorded",
                 (long long)p->audit_id);
    if (d)
        mcpd__daemon_check_drained(d);
    free_pending(p);
}

static void on_audited(int status, void *data)
{
    release(data, status);
}

/* Whether p's request went upstream (a cancellation means something there). */
static bool sent(const struct mcpd_pending *p)
{
    return p->queued == NULL && p->wire == NULL;
}

static void fail_pending(struct mcpd_pending *p, int code, const char *why);

/* Sends an audited call's request, whose row is durable; fails it if it cannot. */
static void send_wire(struct mcpd_pending *p)
{
    struct mcpd_upstream *up = p->up;
    char why[200];
    int r = up->state == MCPD_UP_READY ? up->ops->send(up, p->wire, p->wire_len) : MCPD_EUNAVAIL;

    if (r != 0) { /* still unsent: audited as not_sent; frees p */
        snprintf(why, sizeof(why), "upstream '%s' is unavailable: %s", up->name, mcpd_strerror(r));
        fail_pending(p, MCPD_RPC_SERVER_ERROR, why);
        return;
    }
    free(p->wire);
    p->wire = NULL;
}

/*
 * A routed call's row is durable (status 0) or failed. Durable: its request
 * goes upstream now, unless the call has ended meanwhile (cancelled, timed
 * out, its upstream lost: release() records how) or its per-client
 * instance is still starting (mcpd__router_flush_queued sends it). Failed:
 * the upstream never saw the call, which is refused (fail closed).
 */
static void on_call_audited(int status, void *data)
{
    struct mcpd_pending *p = data;

    p->audit_sent = false;
    p->audit_status = status;
    if (p->audit_wait) {
        release(p, status);
    } else if (status != 0) {
        struct mcpd_sink *sink = p->sink;
        struct mcpd_daemon *d = p->up->daemon;

        unlink_pending(p); /* before sending: a final answer may free the sink */
        if (sink)
            mcpd__send_error(sink, p->client_id, MCPD_RPC_SERVER_ERROR, MCPD_AUDIT_REFUSED);
        free_pending(p);
        mcpd__daemon_check_drained(d);
    } else if (!(p->up->is_private &&
                 (p->up->state == MCPD_UP_CONNECTING || p->up->state == MCPD_UP_INITIALIZING))) {
        send_wire(p);
    }
}

/*
 * Whether the call is answered and its row settled: then release it. A
 * call that ended before its request left (timed out, cancelled, its
 * upstream lost or refusing the write) is audited as not_sent: the
 * upstream never saw it.
 */
static void answered(struct mcpd_pending *p, json_t *msg, const char *status)
{
    p->held = msg;
    p->outcome = sent(p) ? status : "not_sent";
    p->latency_us = (int64_t)((uv_hrtime() - p->started_ns) / 1000);
    p->audit_wait = true;
    if (!p->audit_sent)
        release(p, p->audit_status);
}

/* The outcome of a call for the audit, from its final message. */
static const char *outcome(const json_t *msg)
{
    json_t *res = json_object_get(msg, "result");
    if (res == NULL)
        return "error";
    return json_is_true(json_object_get(res, "isError")) ? "tool_error" : "ok";
}

/*
 * Gives a client request its final message `msg` (stolen): at once, or,
 * with the audit on, once the call's record is durable. `status` overrides
 * the outcome written to the audit ("timeout", "cancelled", ...).
 */
static void complete(struct mcpd_pending *p, json_t *msg, const char *status)
{
    unlink_up(p);
    if (p->audit_row) {
        answered(p, msg, status ? status : outcome(msg));
        return;
    }
    {
        struct mcpd_sink *sink = p->sink;
        if (sink == NULL)
            stash_final(p, msg);
        unlink_session(p); /* before sending: a final answer may free the sink */
        if (sink && msg)
            mcpd__send(sink, msg, true);
    }
    json_decref(msg);
    free_pending(p);
}

/* Completes p with an error to its client (or internal callback), then frees it. */
static void fail_pending(struct mcpd_pending *p, int code, const char *why)
{
    if (p->internal) {
        unlink_pending(p);
        p->internal(p->up, NULL, why);
        free_pending(p);
        return;
    }
    complete(p, mcpd_jsonrpc_error_new(p->client_id, code, why, NULL),
             strstr(why, "did not answer within") ? "timeout" : "upstream_error");
}

static void on_deadline(uv_timer_t *t)
{
    struct mcpd_upstream *up = t->data;
    uint64_t now = uv_now(up->daemon->loop);
    char why[200];

    while (up->fifo_head && up->fifo_head->deadline <= now) {
        struct mcpd_pending *p = up->fifo_head;
        LOG_WARN("router", "upstream=%s request %llu (%s) timed out", up->name,
                 (unsigned long long)p->up_id, p->internal ? "internal" : p->tool_name);
        if (p->mrtr_answers != NULL) { /* the upstream answered; the client did not */
            snprintf(why, sizeof(why),
                     "the client did not answer within %u ms the input upstream '%s' asked for",
                     up->daemon->cfg->limits.input_wait_ms, up->name);
            fail_pending(p, MCPD_RPC_SERVER_ERROR, why);
            continue;
        }
        if (sent(p))
            send_cancelled(up, p->up_id, "timeout");
        snprintf(why, sizeof(why), "upstream '%s' did not answer within %u ms", up->name,
                 p->timeout_ms);
        fail_pending(p, MCPD_RPC_SERVER_ERROR, why);
    }
    mcpd__daemon_check_drained(up->daemon);
}

/* ---- forwarding --------------------------------------------------------- */

/*
 * Submits the call's row and keeps the request's bytes in p->wire: they go
 * upstream from the row's callback, once the row is durable, so a call that
 * reached an upstream always has its row, even after a kill -9 (security.md
 * 8.2). The audit redacts and serialises the arguments now. The row holds
 * everything known now; the outcome follows in a `result` row (release()).
 */
static int audit_forwarded(struct mcpd_session *s, struct mcpd_upstream *up, struct mcpd_pending *p,
                           struct mcpd_msg *m)
{
    char buf[80];
    const char *loc = up->location; /* an agent's */
    int r;

    mcpd_buf_reset(&upstream_scratch);
    if ((r = mcpd_jsonrpc_dump(&upstream_scratch, m->root)) != 0)
        return r;
    if ((p->wire = malloc(upstream_scratch.len)) == NULL)
        return MCPD_ENOMEM;
    memcpy(p->wire, upstream_scratch.p, upstream_scratch.len);
    p->wire_len = upstream_scratch.len;
    if (loc == NULL && !up->cfg->plugin && !up->cfg->url) {
        loc = "local";
    } else if (loc == NULL) {
        /* "plugin:<name>" or "remote:<name>", cut to the buffer (no printf on every call) */
        size_t n = strlen(up->name);

        n = n < sizeof(buf) - 8 ? n : sizeof(buf) - 8;
        memcpy(buf, up->cfg->plugin ? "plugin:" : "remote:", 7);
        memcpy(buf + 7, up->name, n);
        buf[7 + n] = '\0';
        loc = buf;
    }
    struct mcpd_audit_record rec = {
        .kind = MCPD_AUDIT_CALL,
        .bot = s->bot,
        .session = s->id,
        .transport = s->transport,
        .resource = p->resource[0] ? p->resource : up->name,
        .tool = p->tool_name,
        .location = loc,
        .decision = "allow",
        /* the checked arguments, as forwarded; nothing modifies them from here on */
        .args_value = json_object_get(json_object_get(m->root, "params"),
                                      p->fwd == MCPD_FWD_READ ? "uri" : "arguments"),
        .status = "forwarded",
        .row_id = &p->audit_id,
    };
    if ((r = mcpd_authz_audit(up->daemon->authz, &rec, on_call_audited, p)) != 0) {
        free(p->wire);
        p->wire = NULL;
        return r;
    }
    p->audit_row = true;
    p->audit_sent = true;
    return 0;
}

int mcpd__router_forward(struct mcpd_session *s, struct mcpd_upstream *up, struct mcpd_msg *m,
                         struct mcpd_sink *reply, const char *label, enum mcpd_fwd fwd)
{
    return mcpd__router_forward_res(s, up, m, reply, label, fwd, NULL);
}

/*
 * A retry's requestState. Toward a 2026-07-28 upstream it must be one mcpd
 * wrapped for this bot, server and request, and goes on unwrapped; a
 * session-era upstream never gets a wrapped one. Returns false once the
 * client has its error.
 */
/*
 * What a wrapped requestState is bound to besides bot and server: the
 * request's name, or its URI for resources/read, whole (as the upstream
 * sees it, after the catalog's rewrite).
 */
static const char *bind_name(const struct mcpd_msg *m, const char *label)
{
    const char *v = m->params
                        ? json_string_value(json_object_get(
                              m->params, strcmp(m->method, "resources/read") == 0 ? "uri" : "name"))
                        : NULL;
    return v ? v : label ? label : m->method;
}

/*
 * A forward that failed after the rewrite: the client's id goes back into
 * m (m->id borrows it, and p held the only other reference).
 */
static void unforward(struct mcpd_upstream *up, struct mcpd_pending *p, struct mcpd_msg *m)
{
    json_object_set(m->root, "id", p->client_id);
    mcpd_map_del_u64(&up->pending, p->up_id);
    free_pending(p);
}

static bool take_state(struct mcpd_session *s, struct mcpd_upstream *up, struct mcpd_msg *m,
                       struct mcpd_sink *reply, const char *name, enum mcpd_fwd fwd)
{
    json_t *rs = m->params ? json_object_get(m->params, "requestState") : NULL;
    const char *w = json_string_value(rs);
    char *ustate = NULL;

    if (rs == NULL || (!up->modern && !mcpd__mrtr_is_wrapped(w)))
        return true;
    if (!up->modern || w == NULL ||
        mcpd__mrtr_unwrap(s->bot, up->name, fwd, name, w, &ustate) != 0) {
        mcpd__send_error(reply, m->id, MCPD_RPC_INVALID_PARAMS,
                         "Invalid params: requestState is not one this server issued for this "
                         "client and request");
        return false;
    }
    if (ustate)
        json_object_set_new(m->params, "requestState", json_string(ustate));
    else
        json_object_del(m->params, "requestState");
    free(ustate);
    return true;
}

int mcpd__router_forward_res(struct mcpd_session *s, struct mcpd_upstream *up, struct mcpd_msg *m,
                             struct mcpd_sink *reply, const char *label, enum mcpd_fwd fwd,
                             const char *resource)
{
    struct mcpd_pending *p;
    json_t *meta, *token;
    char name[sizeof(p->tool_name)];
    const char *bind = bind_name(m, label);
    int r;

    bool queue =
        up->is_private && (up->state == MCPD_UP_CONNECTING || up->state == MCPD_UP_INITIALIZING);
    if (up->state != MCPD_UP_READY && !queue)
        return MCPD_EUNAVAIL;
    if (up->npending >= MCPD_MAX_UPSTREAM_INFLIGHT)
        return MCPD_EBUSY;
    snprintf(name, sizeof(name), "%s", label ? label : m->method);
    if (!take_state(s, up, m, reply, bind, fwd))
        return 0;
    p = new_pending(up, up->agent && resource ? mcpd__agents_call_timeout(up->daemon, resource)
                                              : up->cfg->timeout_ms);
    if (p == NULL)
        return MCPD_ENOMEM;
    p->client_id = json_incref(m->id);
    p->fwd = fwd;
    p->mrtr_ok = mcpd__mrtr_parkable(m->method);
    memcpy(p->tool_name, name, sizeof(name));
    if (resource != NULL)
        snprintf(p->resource, sizeof(p->resource), "%s", resource);
    /* rewrite in place: id, progress token */
    json_object_set_new(m->root, "id", json_integer((json_int_t)p->up_id));
    meta = m->params ? json_object_get(m->params, "_meta") : NULL;
    token = json_is_object(meta) ? json_object_get(meta, "progressToken") : NULL;
    if (token) {
        p->progress_token = json_incref(token);
        json_object_set_new(meta, "progressToken", json_integer((json_int_t)p->up_id));
    }
    if (up->modern && (r = mcpd__upstream_meta(up, m->root, s->client_caps)) != 0) {
        unforward(up, p, m);
        if (r != MCPD_EPROTO)
            return r;
        mcpd__send_error(reply, m->id, MCPD_RPC_INVALID_PARAMS,
                         "Invalid params: params and its _meta must be objects");
        return 0;
    }
    if (up->modern && p->mrtr_ok &&
        ((!s->modern && (p->retry_msg = json_deep_copy(m->root)) == NULL) ||
         (s->modern && (p->bind = strdup(bind)) == NULL))) {
        unforward(up, p, m);
        return MCPD_ENOMEM;
    }
    p->session = s;
    mcpd_session_ref(s);
    if (mcpd_authz_auditing(up->daemon->authz)) {
        /* sent by on_call_audited */
        if ((r = audit_forwarded(s, up, p, m)) != 0) {
            unforward(up, p, m);
            mcpd__send_error(reply, m->id, MCPD_RPC_SERVER_ERROR, MCPD_AUDIT_REFUSED);
            return 0;
        }
    } else if (queue) {
        p->queued = json_incref(m->root); /* sent once the instance is initialized */
    } else if ((r = mcpd__upstream_send(up, m->root)) != 0) {
        unforward(up, p, m);
        return r;
    }
    p->sink = reply;
    reply->npending++;
    p->snext = s->pending;
    if (s->pending)
        s->pending->sprev = p;
    s->pending = p;
    s->inflight++;
    link_pending(up, p);
    return 0;
}

int mcpd__router_internal(struct mcpd_upstream *up, const char *method, json_t *params,
                          unsigned timeout_ms, mcpd_internal_cb cb)
{
    struct mcpd_pending *p = new_pending(up, timeout_ms);
    json_t *msg;
    int r;

    if (p == NULL) {
        json_decref(params);
        return MCPD_ENOMEM;
    }
    msg = json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", (json_int_t)p->up_id, "method",
                    method, "params", params ? params : json_object());
    if ((r = msg ? mcpd__upstream_meta(up, msg, NULL) : MCPD_ENOMEM) == 0)
        r = mcpd__upstream_send(up, msg);
    json_decref(msg);
    if (r != 0) {
        mcpd_map_del_u64(&up->pending, p->up_id);
        free(p);
        return r;
    }
    p->internal = cb;
    link_pending(up, p);
    return 0;
}

void mcpd__router_cancel(struct mcpd_pending *p, const char *reason)
{
    struct mcpd_sink *sink = p->sink;
    if (p->audit_wait) { /* answered already; its audit callback frees it */
        unlink_session(p);
        return;
    }
    unlink_pending(p);
    if (p->up && sent(p) && p->mrtr_answers == NULL) /* not when it waits for the client */
        send_cancelled(p->up, p->up_id, reason);
    if (p->audit_row)
        answered(p, NULL, "cancelled"); /* the outcome is audited too; frees p */
    else
        free_pending(p);
    if (sink && sink->ops->cancelled)
        sink->ops->cancelled(sink);
}

void mcpd__router_flush_queued(struct mcpd_upstream *up)
{
    struct mcpd_pending *p, *next;
    for (p = up->fifo_head; p; p = next) {
        next = p->fnext;
        if (p->wire != NULL && !p->audit_sent) { /* its row is durable */
            send_wire(p);
            continue;
        }
        if (p->queued == NULL)
            continue;
        if (mcpd__upstream_send(up, p->queued) != 0) {
            fail_pending(p, MCPD_RPC_SERVER_ERROR, "upstream refused the request");
            continue;
        }
        json_decref(p->queued);
        p->queued = NULL;
    }
}

void mcpd__router_deny(struct mcpd_session *s, struct mcpd_msg *m, struct mcpd_sink *reply,
                       const char *resource, const char *tool, const char *reason, int code,
                       json_t *data)
{
    struct mcpd_daemon *d = s->daemon;
    json_t *msg = mcpd_jsonrpc_error_new(m->id, code, reason, data);
    struct mcpd_pending *p;
    char *args = NULL;
    json_t *a;

    if (!mcpd_authz_auditing(d->authz) || msg == NULL || (p = calloc(1, sizeof(*p))) == NULL) {
        if (msg)
            mcpd__send(reply, msg, true);
        json_decref(msg);
        return;
    }
    a = m->params ? json_object_get(m->params, "arguments") : NULL;
    if (a)
        args = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
    struct mcpd_audit_record r = {
        .kind = MCPD_AUDIT_DENY,
        .bot = s->bot,
        .session = s->id,
        .transport = s->transport,
        .resource = resource,
        .tool = tool,
        .location = "mcpd",
        .decision = "deny",
        .reason = reason,
        .args_json = args,
        .args_len = args ? strlen(args) : 0,
        .status = "denied",
    };
    /* a held answer with no upstream: linked to the session so a closing sink detaches it */
    p->session = s;
    mcpd_session_ref(s);
    p->client_id = json_incref(m->id);
    p->held = msg;
    p->audit_wait = true;
    p->sink = reply;
    reply->npending++;
    p->snext = s->pending;
    if (s->pending)
        s->pending->sprev = p;
    s->pending = p;
    s->inflight++;
    if (mcpd_authz_audit(d->authz, &r, on_audited, p) != 0) {
        p->held = mcpd_jsonrpc_error_new(m->id, MCPD_RPC_SERVER_ERROR, MCPD_AUDIT_REFUSED, NULL);
        json_decref(msg);
        on_audited(0, p);
    }
    free(args);
}

void mcpd__router_fail_all(struct mcpd_upstream *up, const char *why)
{
    while (up->fifo_head)
        fail_pending(up->fifo_head, MCPD_RPC_SERVER_ERROR, why);
}

/* ---- messages from upstreams -------------------------------------------- */

void mcpd__expose_block(struct mcpd_upstream *up, json_t *block)
{
    const struct mcpd_catalog *cat = up->daemon->catalog;
    const char *type = json_string_value(json_object_get(block, "type"));
    json_t *holder = NULL;
    const char *uri;
    char *exposed;

    if (cat == NULL || !cat->prefix || type == NULL)
        return;
    if (strcmp(type, "resource_link") == 0)
        holder = block;
    else if (strcmp(type, "resource") == 0)
        holder = json_object_get(block, "resource");
    if ((uri = json_string_value(json_object_get(holder, "uri"))) == NULL)
        return;
    if ((exposed = mcpd_catalog_expose_uri(cat, up->name, uri)) != NULL)
        json_object_set_new(holder, "uri", json_string(exposed));
    free(exposed);
}

/* URIs in a result become the exposed form, so clients can read what they see. */
static void expose_result(struct mcpd_upstream *up, enum mcpd_fwd fwd, json_t *result)
{
    const struct mcpd_catalog *cat = up->daemon->catalog;
    size_t i;
    json_t *v;

    if (cat == NULL || !cat->prefix || !json_is_object(result))
        return;
    switch (fwd) {
    case MCPD_FWD_TOOL:
        json_array_foreach (json_object_get(result, "content"), i, v)
            mcpd__expose_block(up, v);
        break;
    case MCPD_FWD_PROMPT:
        json_array_foreach (json_object_get(result, "messages"), i, v)
            mcpd__expose_block(up, json_object_get(v, "content"));
        break;
    case MCPD_FWD_READ:
        json_array_foreach (json_object_get(result, "contents"), i, v) {
            const char *uri = json_string_value(json_object_get(v, "uri"));
            char *exposed = uri ? mcpd_catalog_expose_uri(cat, up->name, uri) : NULL;
            if (exposed)
                json_object_set_new(v, "uri", json_string(exposed));
            free(exposed);
        }
        break;
    default:
        break;
    }
}

/* A text block that stands in for a block the client's version lacks. */
static json_t *stand_in(json_t *block, const char *type, const char *version)
{
    char text[512];
    if (strcmp(type, "resource_link") == 0)
        snprintf(text, sizeof(text), "[resource %.200s: %.250s]",
                 json_string_value(json_object_get(block, "name")) ?: "link",
                 json_string_value(json_object_get(block, "uri")) ?: "");
    else
        snprintf(text, sizeof(text), "[%s content (%.100s) omitted: protocol %s has no %s blocks]",
                 type, json_string_value(json_object_get(block, "mimeType")) ?: "unknown type",
                 version, type);
    return json_pack("{s:s, s:s}", "type", "text", "text", text);
}

/*
 * Content blocks are degraded only where the client's negotiated version
 * lacks them: audio (2025-03-26), resource_link and structuredContent
 * (2025-06-18). Everything else passes unchanged.
 */
static void degrade_content(json_t *content, const char *version)
{
    size_t i;
    json_t *b;
    json_array_foreach (content, i, b) {
        const char *type = json_string_value(json_object_get(b, "type"));
        if (type == NULL)
            continue;
        if ((strcmp(type, "audio") == 0 && strcmp(version, "2025-03-26") < 0) ||
            (strcmp(type, "resource_link") == 0 && strcmp(version, "2025-06-18") < 0)) {
            json_t *t = stand_in(b, type, version);
            if (t)
                json_array_set_new(content, i, t);
        }
    }
}

static void degrade_result(const char *version, enum mcpd_fwd fwd, json_t *result)
{
    size_t i;
    json_t *v;
    if (strcmp(version, "2025-06-18") >= 0 || !json_is_object(result))
        return;
    if (fwd == MCPD_FWD_TOOL) {
        json_t *content = json_object_get(result, "content");
        json_t *sc = json_object_get(result, "structuredContent");
        if (sc && json_array_size(content) == 0) { /* keep the data as text */
            char *text = json_dumps(sc, JSON_COMPACT);
            if (text) {
                if (!json_is_array(content))
                    json_object_set_new(result, "content", content = json_array());
                json_array_append_new(content,
                                      json_pack("{s:s, s:s}", "type", "text", "text", text));
            }
            free(text);
        }
        json_object_del(result, "structuredContent");
        degrade_content(content, version);
    } else if (fwd == MCPD_FWD_PROMPT) {
        json_array_foreach (json_object_get(result, "messages"), i, v) {
            json_t *one = json_array(), *c = json_object_get(v, "content");
            if (one == NULL || c == NULL) {
                json_decref(one);
                continue;
            }
            json_array_append(one, c);
            degrade_content(one, version);
            json_object_set(v, "content", json_array_get(one, 0));
            json_decref(one);
        }
    }
}

/* ---- input_required of a 2026-07-28 upstream -------------------------------- */

static const char *needed_capability(const char *method);

/* The upstream answered p again: its answers go out under a new id. */
static void retry_call(struct mcpd_pending *p)
{
    struct mcpd_upstream *up = p->up;
    json_t *params = json_object_get(p->retry_msg, "params"), *meta;
    uint64_t id = up->next_id + 1;

    if (up->state != MCPD_UP_READY || mcpd_map_put_u64(&up->pending, id, p) != 0) {
        fail_pending(p, MCPD_RPC_SERVER_ERROR, "the upstream is unavailable for the retry");
        return;
    }
    up->next_id = id;
    mcpd_map_del_u64(&up->pending, p->up_id);
    p->up_id = id;
    json_object_set_new(p->retry_msg, "id", json_integer((json_int_t)id));
    json_object_set_new(params, "inputResponses", p->mrtr_answers);
    p->mrtr_answers = NULL;
    p->mrtr_out_n = 0; /* all answered */
    if (p->mrtr_state)
        json_object_set(params, "requestState", p->mrtr_state);
    else
        json_object_del(params, "requestState");
    meta = json_object_get(params, "_meta");
    if (p->progress_token && json_is_object(meta))
        json_object_set_new(meta, "progressToken", json_integer((json_int_t)id));
    set_deadline(p, uv_now(up->daemon->loop) + p->timeout_ms);
    LOG_DEBUG("router", "upstream=%s %s retried with the client's input (round %u)", up->name,
              p->tool_name, p->mrtr_rounds);
    if (mcpd__upstream_send(up, p->retry_msg) != 0)
        fail_pending(p, MCPD_RPC_SERVER_ERROR, "the upstream is unavailable for the retry");
}

/* Why the inputRequests of `result` cannot be asked of p's session-era client, or NULL. */
static const char *cannot_ask(struct mcpd_pending *p, json_t *asks, json_t *state, char *buf,
                              size_t cap)
{
    struct mcpd_session *s = p->session;
    const char *key;
    json_t *req;

    if (p->retry_msg == NULL)
        return "the upstream asked for input on a request that cannot be retried";
    if (p->mrtr_rounds >= MCPD_MAX_MRTR_ROUNDS)
        return "the upstream asked for input too many times";
    if (!json_is_object(asks) || json_object_size(asks) == 0)
        return "the upstream's input_required result has no inputRequests";
    if (state && (!json_is_string(state) || json_string_length(state) > MCPD_MAX_REQUEST_STATE))
        return "the upstream's requestState is not a string of a sane size";
    if ((p->sink ? p->sink : s->stream) == NULL)
        return "no stream to ask this client on";
    if (s->out.count + json_object_size(asks) > s->daemon->cfg->limits.max_inflight)
        return "too many requests to this client in flight";
    json_object_foreach (asks, key, req) {
        const char *method = json_string_value(json_object_get(req, "method"));
        const char *need = method ? needed_capability(method) : NULL;
        json_t *params = json_object_get(req, "params");

        if (need == NULL || (params && !json_is_object(params))) {
            snprintf(buf, cap, "the upstream asked for an input mcpd cannot relay (%.64s)",
                     method ? method : "no method");
            return buf;
        }
        if (json_object_get(s->client_caps, need) == NULL) {
            snprintf(buf, cap, "the upstream needs %s, which this client did not declare", method);
            return buf;
        }
    }
    return NULL;
}

/*
 * A 2026-07-28 upstream answered a session-era client's call input_required:
 * mcpd asks the client each input as a server->client request (ids of its
 * own, on the call's stream), and retries once every answer is in.
 */
static void ask_legacy(struct mcpd_pending *p, json_t *result)
{
    struct mcpd_session *s = p->session;
    struct mcpd_upstream *up = p->up;
    uint64_t call = p->up_id;
    json_t *asks = json_object_get(result, "inputRequests");
    json_t *state = json_object_get(result, "requestState"), *req, *msgs;
    const char *key, *why;
    char buf[200];
    size_t i;

    if ((why = cannot_ask(p, asks, state, buf, sizeof(buf))) != NULL) {
        LOG_WARN("router", "upstream=%s %s: %s", up->name, p->tool_name, why);
        fail_pending(p, MCPD_RPC_SERVER_ERROR, why);
        return;
    }
    p->mrtr_rounds++;
    json_decref(p->mrtr_answers);
    json_decref(p->mrtr_state);
    p->mrtr_answers = json_object();
    p->mrtr_state = json_incref(state);
    p->mrtr_waiting = 0;
    p->mrtr_out_first = s->next_out_id + 1;
    p->mrtr_out_n = 0;
    /* the upstream's call is over: this one waits for the client instead */
    set_deadline(p, uv_now(s->daemon->loop) + s->daemon->cfg->limits.input_wait_ms);
    /* every request registered first: a send may end the call (its stream closing) */
    msgs = json_array();
    json_object_foreach (asks, key, req) {
        struct mcpd_outreq *o = calloc(1, sizeof(*o));
        json_t *params = json_object_get(req, "params"), *msg;

        if (o == NULL || msgs == NULL || p->mrtr_answers == NULL ||
            (o->key = strdup(key)) == NULL ||
            mcpd_map_put_u64(&s->out, s->next_out_id + 1, o) != 0) {
            if (o)
                free(o->key);
            free(o);
            json_decref(msgs);
            fail_pending(p, MCPD_RPC_INTERNAL_ERROR, "out of memory asking the client for input");
            return;
        }
        s->next_out_id++;
        p->mrtr_out_n++;
        p->mrtr_waiting++;
        o->up = up;
        o->call = call;
        msg = json_pack("{s:s, s:I, s:O, s:o}", "jsonrpc", "2.0", "id", (json_int_t)s->next_out_id,
                        "method", json_object_get(req, "method"), "params",
                        params ? json_incref(params) : json_object());
        if (msg == NULL || json_array_append_new(msgs, msg) != 0) {
            json_decref(msgs);
            fail_pending(p, MCPD_RPC_INTERNAL_ERROR, "out of memory asking the client for input");
            return;
        }
    }
    mcpd_session_ref(s);
    json_array_foreach (msgs, i, req) {
        struct mcpd_sink *sink = p->sink ? p->sink : s->stream;
        int r = sink ? mcpd__send(sink, req, false) : -1;

        /* the send may have closed the stream, and that ended the call */
        if ((p = mcpd_map_get_u64(&up->pending, call)) == NULL || p->session != s)
            break;
        if (r != 0) {
            fail_pending(p, MCPD_RPC_INTERNAL_ERROR, "could not ask the client for input");
            break;
        }
    }
    json_decref(msgs);
    mcpd_session_unref(&s);
}

/* A call that asked its client for input ended: what the client was not asked back is forgotten. */
static void forget_inputs(struct mcpd_session *s, struct mcpd_pending *p)
{
    for (unsigned i = 0; i < p->mrtr_out_n; i++) {
        uint64_t id = p->mrtr_out_first + i;
        struct mcpd_outreq *o = mcpd_map_get_u64(&s->out, id);

        if (o == NULL || o->call != p->up_id || o->up != p->up)
            continue;
        mcpd_map_del_u64(&s->out, id);
        json_decref(o->up_id);
        free(o->key);
        free(o);
    }
    p->mrtr_out_n = 0;
}

/* A session-era client answered one input of call o->call. */
static void input_answer(struct mcpd_session *s, struct mcpd_outreq *o, struct mcpd_msg *m)
{
    struct mcpd_pending *p = o->up ? mcpd_map_get_u64(&o->up->pending, o->call) : NULL;
    char why[200];

    if (p == NULL || p->session != s || p->mrtr_answers == NULL || p->mrtr_waiting == 0)
        return; /* that call has ended */
    if (m->error) {
        snprintf(why, sizeof(why), "the client refused the upstream's request for input: %.120s",
                 json_string_value(json_object_get(m->error, "message")) ?: "error");
        fail_pending(p, MCPD_RPC_SERVER_ERROR, why);
        return;
    }
    json_object_set(p->mrtr_answers, o->key, m->result ? m->result : json_null());
    if (--p->mrtr_waiting == 0)
        retry_call(p);
}

/*
 * A 2026-07-28 upstream's result for call p. input_required goes on to a
 * modern client with its requestState wrapped (bound to bot and request),
 * and a session-era client is asked instead (false: handled here). The
 * resultType means nothing to a session-era client.
 */
static bool modern_result(struct mcpd_pending *p, json_t *result)
{
    const char *rt = json_string_value(json_object_get(result, "resultType"));
    struct mcpd_session *s = p->session;
    json_t *state;
    char *w;

    if (s == NULL)
        return true;
    if (rt == NULL || strcmp(rt, "input_required") != 0) {
        if (!s->modern) { /* words of 2026-07-28 alone */
            json_object_del(result, "resultType");
            json_object_del(result, "ttlMs");
            json_object_del(result, "cacheScope");
        }
        return true;
    }
    if (!s->modern) {
        ask_legacy(p, result);
        return false;
    }
    state = json_object_get(result, "requestState");
    if ((state && (!json_is_string(state) ||
                   strlen(json_string_value(state)) != json_string_length(state))) ||
        (w = mcpd__mrtr_wrap(s->bot, p->up->name, p->fwd, p->bind ? p->bind : p->tool_name,
                             json_string_value(state))) == NULL) {
        fail_pending(p, MCPD_RPC_SERVER_ERROR,
                     "the upstream's requestState is not a string of a sane size");
        return false;
    }
    json_object_set_new(result, "requestState", json_string(w));
    free(w);
    return true;
}

static void on_response(struct mcpd_upstream *up, struct mcpd_msg *m)
{
    struct mcpd_pending *p;

    if (!json_is_integer(m->id) || json_integer_value(m->id) <= 0 ||
        (p = mcpd_map_get_u64(&up->pending, (uint64_t)json_integer_value(m->id))) == NULL) {
        LOG_DEBUG("router", "upstream=%s response for unknown id dropped", up->name);
        return;
    }
    if (p->mrtr_answers != NULL) { /* answered already: the call waits for its client */
        LOG_DEBUG("router", "upstream=%s second response for %lld dropped", up->name,
                  (long long)p->up_id);
        return;
    }
    if (!sent(p)) { /* an id it was not given yet: a guess, not an answer */
        LOG_DEBUG("router", "upstream=%s response for unsent request %lld dropped", up->name,
                  (long long)p->up_id);
        return;
    }
    if (p->internal) {
        unlink_pending(p);
        p->internal(up, m, NULL);
        free_pending(p);
    } else {
        if (up->modern && m->result && !modern_result(p, m->result)) {
            mcpd__daemon_check_drained(up->daemon);
            return;
        }
        json_object_set(m->root, "id", p->client_id);
        if (p->fwd != MCPD_FWD_PLAIN && m->result) {
            expose_result(up, p->fwd, m->result);
            if (p->session && p->session->version[0])
                degrade_result(p->session->version, p->fwd, m->result);
        }
        if (p->session && p->session->modern)
            mcpd__modernize(m->root, p->fwd == MCPD_FWD_READ);
        complete(p, json_incref(m->root), NULL);
    }
    mcpd__daemon_check_drained(up->daemon);
}

static const char *const syslog_levels[] = { "debug",    "info",  "notice",    "warning", "error",
                                             "critical", "alert", "emergency", NULL };

int mcpd__log_level_index(const char *l)
{
    for (int i = 0; l && syslog_levels[i]; i++)
        if (strcmp(l, syslog_levels[i]) == 0)
            return i;
    return -1;
}

/*
 * A notification that names no request (logging) can only go to a client if
 * exactly one session has requests in flight on this upstream: then the
 * upstream is working for that client. Otherwise it is dropped, never
 * broadcast, so one client's data never reaches another.
 */
static struct mcpd_pending *sole_requester(struct mcpd_upstream *up)
{
    struct mcpd_pending *last = NULL;
    /* a per-client instance works for its session only: its newest request */
    if (up->is_private) {
        for (struct mcpd_pending *p = up->fifo_tail; p; p = p->fprev)
            if (p->session && p->sink && sent(p))
                return p;
    }
    /* requests not sent yet do not count: the upstream is not working on them */
    for (struct mcpd_pending *p = up->fifo_head; p; p = p->fnext) {
        if (p->session == NULL || !sent(p))
            continue;
        if (last && last->session != p->session)
            return NULL;
        last = p;
    }
    return last;
}

static void on_log_message(struct mcpd_upstream *up, struct mcpd_msg *m)
{
    struct mcpd_pending *p = sole_requester(up);
    const char *lvl = json_string_value(json_object_get(m->params, "level"));

    if (p == NULL) {
        LOG_DEBUG("router", "upstream=%s log notification not attributable to one client, dropped",
                  up->name);
        return;
    }
    if (p->session->log_level >= 0 && mcpd__log_level_index(lvl) < p->session->log_level)
        return;
    mcpd__send(p->sink ? p->sink : p->session->stream, m->root, false);
}

static void on_progress(struct mcpd_upstream *up, struct mcpd_msg *m)
{
    json_t *token = json_object_get(m->params, "progressToken");
    struct mcpd_pending *p;

    if (!json_is_integer(token) ||
        (p = mcpd_map_get_u64(&up->pending, (uint64_t)json_integer_value(token))) == NULL ||
        p->progress_token == NULL || p->session == NULL || !sent(p))
        return;
    json_object_set(m->params, "progressToken", p->progress_token);
    mcpd__send(p->sink ? p->sink : p->session->stream, m->root, false);
}

/* Delivered to every session that subscribed to the URI (they asked for it). */
static void on_resource_updated(struct mcpd_upstream *up, struct mcpd_msg *m)
{
    /* held: the upstream's uri stays readable once params carries the exposed one */
    json_t *held = json_incref(json_object_get(m->params, "uri"));
    const char *inner = json_string_value(held);
    char *exposed;
    if (inner == NULL || up->daemon->catalog == NULL ||
        (exposed = mcpd_catalog_expose_uri(up->daemon->catalog, up->name, inner)) == NULL) {
        json_decref(held);
        return;
    }
    json_object_set_new(m->params, "uri", json_string(exposed));
    /* a send that fails may close (and free) s: its successor is taken first */
    for (struct mcpd_session *s = up->daemon->sessions, *next; s; s = next) {
        next = s->next;
        /* a per-client instance's updates are its own client's only */
        if (up->is_private && s != up->owner)
            continue;
        /* visibility again: a reload may have taken the URI from the session's bot */
        if (s->subs && json_object_get(s->subs, exposed) && s->stream &&
            mcpd_authz_uri_visible(up->daemon->authz, s->bot, up->name, inner)) {
            if (s->listen_id)
                mcpd__listen_send(s, m->root);
            else
                mcpd__send(s->stream, m->root, false);
        }
    }
    free(exposed);
    json_decref(held);
}

/* The client capability a server->client request needs. */
static const char *needed_capability(const char *method)
{
    if (strcmp(method, "sampling/createMessage") == 0)
        return "sampling";
    if (strcmp(method, "elicitation/create") == 0)
        return "elicitation";
    if (strcmp(method, "roots/list") == 0)
        return "roots";
    return NULL;
}

/* ---- MRTR: a modern client's input, asked for with input_required ------------ */

/*
 * Answers the waiting call p of modern session s with input_required (every
 * request s->mrtr_asked holds) and parks s: the HTTP request (or stdio
 * line) is done, the call and its instance stay until the retry.
 */
static void mrtr_answer(struct mcpd_session *s, struct mcpd_pending *p)
{
    struct mcpd_sink *sink = p->sink;
    char state[160];
    json_t *resp;

    s->mrtr_round++;
    mcpd__mrtr_state(s, state, sizeof(state));
    resp = mcpd_jsonrpc_result_new(p->client_id, json_pack("{s:s, s:O, s:s}", "resultType",
                                                           "input_required", "inputRequests",
                                                           s->mrtr_asked, "requestState", state));
    if (resp == NULL) { /* the call ends with an error instead */
        fail_pending(p, MCPD_RPC_INTERNAL_ERROR, "out of memory");
        return;
    }
    s->mrtr_call = p;
    sink->npending--;
    p->sink = NULL;
    s->parked = true; /* before the send: the final answer would close s */
    mcpd__session_park(s);
    /* the upstream waits as long as the client may take to retry */
    set_deadline(p, uv_now(s->daemon->loop) + s->daemon->cfg->limits.input_wait_ms + 1000);
    LOG_DEBUG("router", "session=%s %s waits for input (round %u, %zu requests)", s->id,
              p->tool_name, s->mrtr_round, json_object_size(s->mrtr_asked));
    if (mcpd__send(sink, resp, true) != 0) { /* the client left: nobody will retry */
        LOG_WARN("router", "session=%s the input_required answer could not be sent", s->id);
        mcpd__session_unpark(s);
        mcpd__session_close_soon(s);
    }
    json_decref(resp);
    mcpd__daemon_check_drained(s->daemon); /* stopping: nobody can retry */
}

/* An upstream asks a modern client for input during one of its calls. */
static int ask_modern(struct mcpd_upstream *up, struct mcpd_msg *m, const char *cap)
{
    struct mcpd_session *s = up->owner;
    struct mcpd_pending *p = sole_requester(up);
    struct mcpd_outreq *o;
    json_t *req;
    char key[24];

    /* only the request of the client's own call, which a retry can resume */
    if (p == NULL || p->session != s || !p->mrtr_ok || s->listen_id != NULL ||
        (p->sink != &s->tsink && !s->parked) || json_object_get(s->client_caps, cap) == NULL ||
        s->out.count >= MCPD_MAX_INFLIGHT || (o = calloc(1, sizeof(*o))) == NULL)
        return -1;
    o->up = up;
    o->up_id = json_incref(m->id);
    snprintf(key, sizeof(key), "%llu", (unsigned long long)++s->next_out_id);
    req = json_pack("{s:s}", "method", m->method);
    if (req && m->params)
        json_object_set(req, "params", m->params);
    if (s->mrtr_asked == NULL)
        s->mrtr_asked = json_object();
    if (req == NULL || s->mrtr_asked == NULL || mcpd_map_put_u64(&s->out, s->next_out_id, o) != 0 ||
        json_object_set(s->mrtr_asked, key, req) != 0) {
        mcpd_map_del_u64(&s->out, s->next_out_id);
        json_decref(o->up_id);
        json_decref(req);
        free(o);
        return -1;
    }
    json_decref(req);
    /* parked already: asked with the next round (the retry will lack its answer) */
    if (!s->parked && p->sink)
        mrtr_answer(s, p);
    return 0;
}

/* The parked session ps moves into s, the retry's transient session. */
static void adopt(struct mcpd_session *s, struct mcpd_session *ps)
{
    struct mcpd_map out = s->out;

    while (ps->pending) {
        struct mcpd_pending *p = ps->pending;
        struct mcpd_session *old = ps;

        ps->pending = p->snext;
        if (ps->pending)
            ps->pending->sprev = NULL;
        ps->inflight--;
        p->sprev = NULL;
        p->snext = s->pending;
        if (s->pending)
            s->pending->sprev = p;
        s->pending = p;
        s->inflight++;
        p->session = s;
        mcpd_session_ref(s);
        mcpd_session_unref(&old); /* p's reference; ps lives on (its close timer holds one) */
    }
    s->out = ps->out; /* the retry's own map is empty */
    ps->out = out;
    s->next_out_id = ps->next_out_id;
    s->privates = ps->privates;
    ps->privates = NULL;
    for (struct mcpd_upstream *up = s->privates; up; up = up->next_private)
        up->owner = s;
    s->mrtr_asked = ps->mrtr_asked;
    ps->mrtr_asked = NULL;
    s->mrtr_round = ps->mrtr_round;
    s->mrtr_call = ps->mrtr_call;
    ps->mrtr_call = NULL;
    s->mrtr_final = ps->mrtr_final;
    ps->mrtr_final = NULL;
    mcpd__session_unpark(ps);
    mcpd__session_close_soon(ps); /* empty now */
}

void mcpd__mrtr_resume(struct mcpd_session *s, json_t *root)
{
    json_t *id = json_object_get(root, "id"), *params = json_object_get(root, "params");
    json_t *answers = json_object_get(params, "inputResponses"), *v;
    const char *state = json_string_value(json_object_get(params, "requestState"));
    struct mcpd_session *ps = state ? mcpd__mrtr_find(s, state) : NULL;
    struct mcpd_pending *p;
    const char *key, *why = NULL;
    json_t *token;
    void *tmp;

    if (ps == NULL || (ps->mrtr_call == NULL && ps->mrtr_final == NULL))
        why = "Invalid params: requestState is not one this server issued for this client, or "
              "its call has ended";
    else if (answers && !json_is_object(answers))
        why = "Invalid params: inputResponses must be an object";
    else if (strcmp(s->req_method, ps->req_method) != 0 || s->req_name == NULL ||
             ps->req_name == NULL || strcmp(s->req_name, ps->req_name) != 0)
        why = "Invalid params: a retry must repeat the request its requestState belongs to";
    if (why != NULL) {
        mcpd__send_error(&s->tsink, id, MCPD_RPC_INVALID_PARAMS, why);
        return;
    }
    adopt(s, ps);
    if ((p = s->mrtr_call) == NULL) { /* it ended while parked: its answer, for this retry */
        json_object_set(s->mrtr_final, "id", id);
        mcpd__send(&s->tsink, s->mrtr_final, true);
        json_decref(s->mrtr_final);
        s->mrtr_final = NULL;
        return;
    }
    p->sink = &s->tsink;
    s->tsink.npending++;
    json_decref(p->client_id);
    p->client_id = json_incref(id); /* the retry is a new request */
    token = json_object_get(json_object_get(params, "_meta"), "progressToken");
    if (token && p->progress_token) { /* progress goes on under the retry's token */
        json_decref(p->progress_token);
        p->progress_token = json_incref(token);
    }
    set_deadline(p, uv_now(s->daemon->loop) + p->timeout_ms);
    json_object_foreach_safe(s->mrtr_asked, tmp, key, v)
    {
        json_t *answer = json_object_get(answers, key), *msg;
        struct mcpd_outreq *o;

        if (answer == NULL)
            continue; /* asked again below */
        o = mcpd_map_del_u64(&s->out, strtoull(key, NULL, 10));
        if (o && o->up && o->up->state == MCPD_UP_READY &&
            (msg = json_pack("{s:s, s:O, s:O}", "jsonrpc", "2.0", "id", o->up_id, "result",
                             answer)) != NULL) {
            mcpd__upstream_send(o->up, msg);
            json_decref(msg);
        }
        if (o) {
            json_decref(o->up_id);
            free(o);
        }
        json_object_del(s->mrtr_asked, key);
    }
    LOG_DEBUG("router", "session=%s resumes %s (round %u)", s->id, p->tool_name, s->mrtr_round);
    if (json_object_size(s->mrtr_asked) > 0)
        mrtr_answer(s, p); /* what the retry did not answer, and what came meanwhile */
}

/*
 * Relays a server->client request of a per-client instance to its session,
 * on the stream of the request it is working on (or the session's stream),
 * with an id from mcpd's own space toward that client. Returns 0, or -1
 * when it cannot (the caller answers the upstream with an error).
 */
static int relay_to_client(struct mcpd_upstream *up, struct mcpd_msg *m)
{
    struct mcpd_session *s = up->owner;
    const char *cap = needed_capability(m->method);
    struct mcpd_pending *p;
    struct mcpd_sink *sink;
    struct mcpd_outreq *o;

    if (s != NULL && s->modern && cap != NULL)
        return ask_modern(up, m, cap); /* MRTR: no requests toward a modern client */
    if (s == NULL || s->modern || cap == NULL || json_object_get(s->client_caps, cap) == NULL ||
        s->out.count >= MCPD_MAX_INFLIGHT)
        return -1;
    p = sole_requester(up);
    sink = p && p->sink ? p->sink : s->stream;
    if (sink == NULL || (o = calloc(1, sizeof(*o))) == NULL)
        return -1;
    o->up = up;
    o->up_id = json_incref(m->id);
    if (mcpd_map_put_u64(&s->out, ++s->next_out_id, o) != 0) {
        json_decref(o->up_id);
        free(o);
        return -1;
    }
    json_object_set_new(m->root, "id", json_integer((json_int_t)s->next_out_id));
    if (mcpd__send(sink, m->root, false) != 0) {
        mcpd_map_del_u64(&s->out, s->next_out_id);
        json_decref(o->up_id);
        free(o);
        return -1;
    }
    return 0;
}

void mcpd__router_client_response(struct mcpd_session *s, struct mcpd_msg *m)
{
    struct mcpd_outreq *o;
    if (!json_is_integer(m->id) ||
        (o = mcpd_map_del_u64(&s->out, (uint64_t)json_integer_value(m->id))) == NULL) {
        LOG_DEBUG("router", "session=%s response for an unknown request dropped", s->id);
        return;
    }
    if (o->call) {
        input_answer(s, o, m);
    } else if (o->up && o->up->state == MCPD_UP_READY) {
        json_object_set(m->root, "id", o->up_id);
        mcpd__upstream_send(o->up, m->root);
    }
    json_decref(o->up_id);
    free(o->key);
    free(o);
}

static void on_upstream_request(struct mcpd_upstream *up, struct mcpd_msg *m)
{
    json_t *reply;
    if (strcmp(m->method, "ping") == 0) {
        reply = mcpd_jsonrpc_result_new(m->id, json_object());
    } else if (up->is_private && relay_to_client(up, m) == 0) {
        return;
    } else {
        /* shared instances are told of no client capabilities, and
         * per-client ones only of their client's: a conforming upstream
         * does not get here */
        char why[160];
        snprintf(why, sizeof(why), "Method not found: %s (not offered by this client)", m->method);
        reply = mcpd_jsonrpc_error_new(m->id, MCPD_RPC_METHOD_NOT_FOUND, why, NULL);
    }
    if (reply)
        mcpd__upstream_send(up, reply);
    json_decref(reply);
}

/*
 * The upstream withdrew a server->client request it had made: the client
 * gets notifications/cancelled with the id mcpd gave that request.
 */
static void on_upstream_cancelled(struct mcpd_upstream *up, struct mcpd_msg *m)
{
    json_t *rid = json_object_get(m->params, "requestId");
    struct mcpd_session *s = up->owner;
    if (!up->is_private || s == NULL || rid == NULL)
        return;
    for (uint64_t id = s->next_out_id; id > 0 && id + MCPD_MAX_INFLIGHT * 4 > s->next_out_id;
         id--) {
        struct mcpd_outreq *o = mcpd_map_get_u64(&s->out, id);
        struct mcpd_pending *p;
        if (o == NULL || o->up != up || !json_equal(o->up_id, rid))
            continue;
        mcpd_map_del_u64(&s->out, id);
        json_decref(o->up_id);
        free(o);
        if (s->modern) { /* never sent as a request: it is just not asked again */
            char key[24];
            snprintf(key, sizeof(key), "%llu", (unsigned long long)id);
            json_object_del(s->mrtr_asked, key);
            return;
        }
        json_object_set_new(m->params, "requestId", json_integer((json_int_t)id));
        p = sole_requester(up);
        mcpd__send(p && p->sink ? p->sink : s->stream, m->root, false);
        return;
    }
}

/*
 * Notifications are capped per upstream (a flood costs the upstream's own
 * clients, not mcpd): MCPD_MAX_UPSTREAM_NOTIFY per second, the rest dropped
 * and counted in one log line per second.
 */
static void report_dropped(struct mcpd_upstream *up)
{
    if (up->notify_dropped)
        LOG_WARN("router", "upstream=%s sent too many notifications: %u dropped", up->name,
                 up->notify_dropped);
    up->notify_dropped = 0;
}

static void on_notify_window_end(uv_timer_t *t)
{
    report_dropped(t->data);
}

static bool notification_budget(struct mcpd_upstream *up)
{
    uint64_t now = uv_now(up->daemon->loop);
    if (now - up->notify_window >= 1000) {
        report_dropped(up);
        up->notify_window = now;
        up->notify_count = 0;
    }
    if (++up->notify_count <= MCPD_MAX_UPSTREAM_NOTIFY)
        return true;
    if (up->notify_dropped++ == 0) /* the count is reported when this second ends */
        uv_timer_start(&up->notify_timer, on_notify_window_end,
                       up->notify_window + 1000 > now ? up->notify_window + 1000 - now : 0, 0);
    return false;
}

void mcpd__router_upstream_message(struct mcpd_upstream *up, struct mcpd_msg *m)
{
    switch (m->kind) {
    case MCPD_MSG_RESPONSE:
        on_response(up, m);
        break;
    case MCPD_MSG_REQUEST:
        on_upstream_request(up, m);
        break;
    case MCPD_MSG_NOTIFICATION:
        if (!notification_budget(up))
            break;
        if (strcmp(m->method, "notifications/progress") == 0)
            on_progress(up, m);
        else if (strcmp(m->method, "notifications/message") == 0)
            on_log_message(up, m);
        else if (strcmp(m->method, "notifications/tools/list_changed") == 0)
            mcpd__upstream_relist(up, 1u << MCPD_LIST_TOOLS);
        else if (strcmp(m->method, "notifications/prompts/list_changed") == 0)
            mcpd__upstream_relist(up, 1u << MCPD_LIST_PROMPTS);
        else if (strcmp(m->method, "notifications/resources/list_changed") == 0)
            mcpd__upstream_relist(up, (1u << MCPD_LIST_RESOURCES) | (1u << MCPD_LIST_TEMPLATES));
        else if (strcmp(m->method, "notifications/resources/updated") == 0)
            on_resource_updated(up, m);
        else if (strcmp(m->method, "notifications/cancelled") == 0)
            on_upstream_cancelled(up, m);
        else
            LOG_DEBUG("router", "upstream=%s notification %s ignored", up->name, m->method);
        break;
    }
}
