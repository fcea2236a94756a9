/*
 * daemon.c - the process around the loop: upstream registry, catalog
 * rebuilds and list_changed, session reaping, signals and the graceful
 * shutdown sequence:
 *
 *   RUNNING --SIGINT/SIGTERM/stdin EOF--> DRAINING: transports stop taking
 *   work, in-flight calls may finish (MCPD_DRAIN_MS) --> CLOSING: sessions
 *   closed, transports closed, upstreams stopped (stdin closed, SIGTERM,
 *   SIGKILL) --> every handle closed, the loop ends, exit 0.
 */
#include "daemon.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents.h"
#include "authz.h"
#include "credentials.h"
#include "error.h"
#include "limits.h"
#include "listener.h"
#include "log.h"
#include "router.h"
#include "session.h"

int mcpd_daemon_new(struct mcpd_daemon **out, uv_loop_t *loop, struct mcpd_config *cfg)
{
    struct mcpd_daemon *d = calloc(1, sizeof(*d));
    size_t enabled = 0;

    *out = NULL;
    if (d == NULL)
        return MCPD_ENOMEM;
    d->loop = loop;
    d->cfg = cfg;
    for (size_t i = 0; i < cfg->nservers; i++)
        enabled += cfg->servers[i].enabled;
    enabled += cfg->agents_enabled; /* agent resources come and go: name everything */
    d->prefix =
        cfg->prefix == MCPD_PREFIX_ALWAYS || (cfg->prefix == MCPD_PREFIX_AUTO && enabled > 1);
    uv_timer_init(loop, &d->reaper);
    uv_timer_init(loop, &d->startup_timer);
    uv_timer_init(loop, &d->drain_timer);
    uv_signal_init(loop, &d->sigint);
    uv_signal_init(loop, &d->sigterm);
    uv_signal_init(loop, &d->sighup);
    d->sighup.data = d;
    uv_signal_init(loop, &d->sigpipe);
    uv_prepare_init(loop, &d->deferred_prepare);
    d->deferred_prepare.data = d;
    d->deferred_tail = &d->deferred;
    d->reaper.data = d->startup_timer.data = d->drain_timer.data = d;
    d->sigint.data = d->sigterm.data = d->sigpipe.data = d;
    *out = d;
    return 0;
}

int mcpd_daemon_add_upstream(struct mcpd_daemon *d, struct mcpd_upstream *up)
{
    struct mcpd_upstream **ups = realloc(d->ups, (d->nups + 1) * sizeof(*ups));
    if (ups == NULL)
        return MCPD_ENOMEM;
    d->ups = ups;
    d->ups[d->nups++] = up;
    return 0;
}

void mcpd_daemon_add_transport(struct mcpd_daemon *d, struct mcpd_transport *tp)
{
    tp->daemon = d;
    tp->next = d->transports;
    d->transports = tp;
}

json_t *mcpd__daemon_capabilities(struct mcpd_daemon *d)
{
    /* Announced whether or not an upstream offers them yet: upstreams come
     * and go, and an empty list is a correct answer. */
    return json_pack("{s:{s:b}, s:{s:b}, s:{s:b, s:b}, s:{}, s:{}}", "tools", "listChanged", 1,
                     "prompts", "listChanged", 1, "resources", "subscribe", 1, "listChanged", 1,
                     "completions", "logging");
}

/* ---- catalog --------------------------------------------------------------- */

static void rebuild_catalog(struct mcpd_daemon *d)
{
    struct mcpd_catalog_source *src;
    struct mcpd_catalog *cat = NULL;
    size_t n = 0, cap = d->nups + 1;

    for (size_t i = 0; i < d->nups; i++)
        if (d->ups[i]->agent != NULL)
            cap += MCPD_MAX_AGENT_GROUPS;
    if ((src = calloc(cap, sizeof(*src))) == NULL)
        return;
    for (size_t i = 0; i < d->nups; i++) {
        if (d->ups[i]->state != MCPD_UP_READY)
            continue;
        if (d->ups[i]->agent != NULL) { /* one source per tool group */
            n += mcpd__agents_sources(d, d->ups[i], src + n, cap - n);
            continue;
        }
        src[n].resource = d->ups[i]->name;
        src[n].tools = d->ups[i]->lists[MCPD_LIST_TOOLS];
        src[n].prompts = d->ups[i]->lists[MCPD_LIST_PROMPTS];
        src[n].resources = d->ups[i]->lists[MCPD_LIST_RESOURCES];
        src[n].templates = d->ups[i]->lists[MCPD_LIST_TEMPLATES];
        src[n].owner = d->ups[i];
        n++;
    }
    if (mcpd_catalog_build(&cat, src, n, d->cfg->separator, d->prefix, ++d->generation) == 0) {
        size_t j;
        json_t *c;
        json_array_foreach (cat->collisions, j, c) {
            LOG_WARN("catalog", "tool '%s' of '%s' collides with '%s' of '%s'; left out",
                     json_string_value(json_object_get(c, "tool")),
                     json_string_value(json_object_get(c, "resource")),
                     json_string_value(json_object_get(c, "name")),
                     json_string_value(json_object_get(c, "kept_by")));
        }
        mcpd_catalog_free(d->catalog);
        d->catalog = cat;
    }
    for (size_t i = 0; i < n; i++)
        if (src[i].agent)
            json_decref(src[i].tools); /* made for this build */
    free(src);
}

void mcpd__daemon_lists_changed(struct mcpd_daemon *d, struct mcpd_upstream *up, unsigned kinds)
{
    rebuild_catalog(d);
    if (!d->started || d->shutting_down)
        return;
    if (kinds & (1u << MCPD_LIST_TEMPLATES)) /* one notification covers both */
        kinds = (kinds | (1u << MCPD_LIST_RESOURCES)) & ~(1u << MCPD_LIST_TEMPLATES);
    for (int k = 0; k < MCPD_LIST_KINDS; k++) {
        json_t *n;
        if (!(kinds & (1u << k)))
            continue;
        n = mcpd_jsonrpc_notification_new(mcpd_list_changed[k], NULL);
        for (struct mcpd_session *s = d->sessions; n && s; s = s->next) {
            if (s->state != MCPD_SESSION_READY || s->stream == NULL)
                continue;
            if (s->listen_id == NULL)
                mcpd__send(s->stream, n, false);
            else if (s->listen_kinds & (1u << k)) /* a modern client's filter */
                mcpd__listen_send(s, n);
        }
        json_decref(n);
    }
}

/* ---- reload (SIGHUP) ------------------------------------------------------------ */

/* Whether mcpd serves a stdio client (its one session's bot is fixed at start). */
static bool serves_stdio(const struct mcpd_daemon *d)
{
    for (const struct mcpd_transport *tp = d->transports; tp; tp = tp->next)
        if (strcmp(tp->ops->name, "stdio") == 0)
            return true;
    return false;
}

/*
 * The sections a reload applies: who may do what. Any other that changed
 * takes a restart (servers, listen, the store, limits: several are taken
 * once, when the listener or a transport starts), and so does auth with a
 * stdio client (auth.default_bot is its session's bot).
 */
static bool reloadable(const struct mcpd_daemon *d, const char *key, size_t len)
{
    const char *const live[] = { "bots", "roles", serves_stdio(d) ? NULL : "auth", NULL };
    for (int i = 0; live[i]; i++)
        if (strlen(live[i]) == len && strncmp(live[i], key, len) == 0)
            return true;
    return false;
}

static bool config_has_bot(const struct mcpd_config *cfg, const char *bot)
{
    for (size_t i = 0; i < cfg->nbots; i++)
        if (strcmp(cfg->bots[i].name, bot) == 0)
            return true;
    return false;
}

#define SWAP(a, b)              \
    do {                        \
        __typeof__(a) t_ = (a); \
        (a) = (b);              \
        (b) = t_;               \
    } while (0)

void mcpd_daemon_reload(struct mcpd_daemon *d)
{
    struct mcpd_config *n = NULL, *cur = d->cfg;
    struct mcpd_diag diag;
    char changed[512], fixed[512] = "", err[512];
    bool stdio_default;

    if (d->shutting_down)
        return;
    if (mcpd_config_load(&n, cur->path, &diag) != 0) {
        LOG_ERROR("daemon", "reload: %s: the running configuration stays", diag.msg);
        return;
    }
    if (mcpd_config_changed(cur, n, changed, sizeof(changed)) == 0) {
        LOG_INFO("daemon", "reload: %s has not changed", cur->path);
        mcpd_config_free(n);
        return;
    }
    for (const char *k = changed; *k;) { /* "a, b, c" */
        size_t len = strcspn(k, ",");
        if (!reloadable(d, k, len)) {
            size_t at = strlen(fixed);
            snprintf(fixed + at, sizeof(fixed) - at, "%s%.*s", at ? ", " : "", (int)len, k);
        }
        k += len;
        k += strspn(k, ", ");
    }
    if (fixed[0] != '\0') {
        LOG_WARN("daemon", "reload: %s changed, which takes a restart: nothing was reloaded",
                 fixed);
        mcpd_config_free(n);
        return;
    }
    if (d->stdio_bot != NULL && serves_stdio(d) && !config_has_bot(n, d->stdio_bot)) {
        LOG_WARN("daemon",
                 "reload: the stdio client's bot '%s' would be gone, which takes a restart: "
                 "nothing was reloaded",
                 d->stdio_bot);
        mcpd_config_free(n);
        return;
    }
    if (d->authz == NULL || mcpd_authz_reload(d->authz, n, err, sizeof(err)) != 0) {
        LOG_ERROR("daemon", "reload: %s: nothing was reloaded",
                  d->authz ? err : "the policy is not running");
        mcpd_config_free(n);
        return;
    }
    /* the running configuration takes the new sections; n leaves with the old ones */
    stdio_default = d->stdio_bot != NULL && d->stdio_bot == cur->default_bot;
    SWAP(cur->bots, n->bots);
    SWAP(cur->nbots, n->nbots);
    SWAP(cur->roles, n->roles);
    SWAP(cur->nroles, n->nroles);
    SWAP(cur->default_bot, n->default_bot);
    memcpy(cur->sections, n->sections, sizeof(cur->sections));
    cur->nsections = n->nsections;
    if (stdio_default)
        d->stdio_bot = cur->default_bot;
    mcpd_config_free(n);
    LOG_INFO("daemon", "reload: applied (%s)", changed);
    /* what each bot may see may have changed */
    mcpd__daemon_lists_changed(d, NULL, (1u << MCPD_LIST_KINDS) - 1);
}

static void on_sighup(uv_signal_t *h, int signum)
{
    (void)signum;
    mcpd_daemon_reload(h->data);
}

/* ---- start-up ------------------------------------------------------------------ */

static void on_reaper(uv_timer_t *t)
{
    struct mcpd_daemon *d = t->data;
    uint64_t now = uv_now(d->loop);
    struct mcpd_session *s = d->sessions, *next;
    for (; s; s = next) {
        next = s->next;
        if (s->inflight == 0 && s->stream == NULL &&
            now - s->last_active > d->cfg->limits.session_idle_ms) {
            LOG_INFO("session", "session=%s idle for %u ms, reaped", s->id,
                     d->cfg->limits.session_idle_ms);
            mcpd_session_close(s);
        }
    }
}

static void start_transports(struct mcpd_daemon *d)
{
    if (d->started || d->shutting_down)
        return;
    d->started = true;
    uv_timer_stop(&d->startup_timer);
    for (struct mcpd_transport *tp = d->transports; tp; tp = tp->next) {
        int r = tp->ops->start(tp);
        if (r != 0) {
            LOG_ERROR("daemon", "transport %s failed to start: %s", tp->ops->name,
                      mcpd_strerror(r));
            d->exit_code = 1;
            mcpd_daemon_shutdown(d);
            return;
        }
    }
    if (mcpd__listener_start(d) != 0) {
        d->exit_code = 1;
        mcpd_daemon_shutdown(d);
        return;
    }
    {
        unsigned period = d->cfg->limits.session_idle_ms / 4;
        uv_timer_start(&d->reaper, on_reaper, period ? period : 1000, period ? period : 1000);
    }
    if (d->on_started)
        d->on_started(d);
}

void mcpd__daemon_upstream_settled(struct mcpd_daemon *d)
{
    for (size_t i = 0; i < d->nups; i++)
        if (!d->ups[i]->started_once && d->ups[i]->cfg->enabled)
            return;
    start_transports(d);
}

static void on_startup_timeout(uv_timer_t *t)
{
    struct mcpd_daemon *d = t->data;
    for (size_t i = 0; i < d->nups; i++)
        if (!d->ups[i]->started_once)
            LOG_WARN("daemon", "upstream=%s not ready after %u ms; serving without it for now",
                     d->ups[i]->name, MCPD_INIT_TIMEOUT_MS);
    start_transports(d);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct mcpd_daemon *d = h->data;
    if (signum == SIGPIPE)
        return;
    if (d->shutting_down)
        LOG_WARN("daemon", "signal %d again: not waiting for in-flight calls", signum);
    else
        LOG_INFO("daemon", "signal %d: shutting down", signum);
    mcpd_daemon_shutdown(d);
}

int mcpd_daemon_start(struct mcpd_daemon *d)
{
    size_t enabled = 0;
    char err[512];
    int r;

    if ((r = mcpd_authz_new(&d->authz, d, err, sizeof(err))) != 0) {
        LOG_ERROR("daemon", "%s", err);
        return r;
    }
    if (mcpd_authz_active(d->authz) && d->stdio_bot == NULL)
        d->stdio_bot = d->cfg->default_bot;
    if (d->cfg->agents_enabled && (r = mcpd__agents_start(d, err, sizeof(err))) != 0) {
        LOG_ERROR("daemon", "%s", err);
        return r;
    }
    if ((r = mcpd__credentials_start(d)) != 0)
        return r;
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    uv_signal_start(&d->sighup, on_sighup, SIGHUP);
    uv_signal_start(&d->sigpipe, on_signal, SIGPIPE);
    rebuild_catalog(d);
    for (size_t i = 0; i < d->nups; i++) {
        if (!d->ups[i]->cfg->enabled) {
            d->ups[i]->started_once = true;
            continue;
        }
        enabled++;
        mcpd__upstream_start(d->ups[i]);
    }
    if (enabled == 0)
        start_transports(d);
    else if (!d->started)
        uv_timer_start(&d->startup_timer, on_startup_timeout, MCPD_INIT_TIMEOUT_MS, 0);
    return 0;
}

/* ---- deferred work ------------------------------------------------------------- */

static void on_deferred(uv_prepare_t *h)
{
    uv_prepare_stop(h);
    mcpd__daemon_run_deferred(h->data);
}

void mcpd__daemon_defer(struct mcpd_daemon *d, struct mcpd_deferred *w)
{
    if (w->queued)
        return;
    if (d->deferred_closed) {
        w->run(w);
        return;
    }
    w->queued = true;
    w->next = NULL;
    *d->deferred_tail = w;
    d->deferred_tail = &w->next;
    uv_prepare_start(&d->deferred_prepare, on_deferred);
}

void mcpd__daemon_undefer(struct mcpd_daemon *d, struct mcpd_deferred *w)
{
    if (!w->queued)
        return;
    for (struct mcpd_deferred **pp = &d->deferred; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            if (d->deferred_tail == &w->next)
                d->deferred_tail = pp;
            break;
        }
    }
    w->queued = false;
}

/* One at a time off the list, so that undefer stays exact whatever run() does. */
void mcpd__daemon_run_deferred(struct mcpd_daemon *d)
{
    struct mcpd_deferred *w;

    while ((w = d->deferred) != NULL) {
        if ((d->deferred = w->next) == NULL)
            d->deferred_tail = &d->deferred;
        w->queued = false;
        w->run(w);
    }
    /* drained (the audit's hook): the prepare would only run for nothing */
    if (!d->deferred_closed)
        uv_prepare_stop(&d->deferred_prepare);
}

/* ---- shutdown ------------------------------------------------------------------ */

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void finish_close(struct mcpd_daemon *d)
{
    bool all_down = true;
    for (size_t i = 0; i < d->nups; i++)
        if (d->ups[i]->state != MCPD_UP_DOWN)
            all_down = false;
    if (!all_down)
        return; /* called again from check_drained as upstreams go down */
    for (size_t i = 0; i < d->nups; i++)
        mcpd__upstream_close(d->ups[i]);
    d->nups = 0;
    mcpd__agents_close(d);
    mcpd__credentials_close(d); /* before the audit: it may still write a record */
    /* the audit flushes everything queued before it closes */
    mcpd_authz_close(d->authz, NULL, NULL);
    d->authz = NULL;
    close_handle((uv_handle_t *)&d->reaper);
    close_handle((uv_handle_t *)&d->startup_timer);
    close_handle((uv_handle_t *)&d->drain_timer);
    close_handle((uv_handle_t *)&d->sigint);
    close_handle((uv_handle_t *)&d->sigterm);
    close_handle((uv_handle_t *)&d->sighup);
    close_handle((uv_handle_t *)&d->sigpipe);
    mcpd__daemon_run_deferred(d);
    d->deferred_closed = true; /* from now on deferred work runs at once */
    close_handle((uv_handle_t *)&d->deferred_prepare);
    LOG_INFO("daemon", "stopped");
}

static void begin_close(struct mcpd_daemon *d)
{
    if (d->closing)
        return;
    d->closing = true;
    uv_timer_stop(&d->drain_timer);
    while (d->sessions)
        mcpd_session_close(d->sessions);
    mcpd__listener_close(d); /* aborts held HTTP exchanges before transports go */
    for (struct mcpd_transport *tp = d->transports, *next; tp; tp = next) {
        next = tp->next; /* close may free tp */
        tp->ops->close(tp);
    }
    d->transports = NULL;
    for (size_t i = 0; i < d->nups; i++)
        mcpd__upstream_shutdown(d->ups[i]);
    finish_close(d);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct mcpd_daemon *d = t->data;
    LOG_WARN("daemon", "drain deadline passed; cancelling what is still in flight");
    begin_close(d);
}

void mcpd__daemon_check_drained(struct mcpd_daemon *d)
{
    if (!d->shutting_down)
        return;
    if (d->closing) {
        if (d->nups)
            finish_close(d);
        return;
    }
    /* a parked call (MRTR) waits for a retry that a stopped listener cannot take */
    for (struct mcpd_session *s = d->sessions; s; s = s->next)
        if (s->inflight && !s->parked)
            return;
    begin_close(d);
}

void mcpd_daemon_shutdown(struct mcpd_daemon *d)
{
    if (d->shutting_down) {
        begin_close(d); /* a second request skips the drain */
        return;
    }
    d->shutting_down = true;
    uv_timer_stop(&d->startup_timer);
    mcpd__listener_stop(d);
    for (struct mcpd_transport *tp = d->transports; tp; tp = tp->next)
        tp->ops->stop(tp);
    uv_timer_start(&d->drain_timer, on_drain_timeout, MCPD_DRAIN_MS, 0);
    mcpd__daemon_check_drained(d);
}

void mcpd_daemon_free(struct mcpd_daemon *d)
{
    if (d == NULL)
        return;
    mcpd_catalog_free(d->catalog);
    mcpd__agents_free(d);
    free(d->ups);
    mcpd_config_free(d->cfg);
    free(d);
}
