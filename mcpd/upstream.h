/*
 * upstream.h - the seam between the core and upstream adapters.
 *
 * An adapter (adapters/stdio.c, later remote, plugin, agent) embeds struct
 * mcpd_upstream as its first member, fills `ops`, and reports what happens
 * through the mcpd_upstream_on_* functions. The core owns everything else:
 * the MCP handshake, request ids, deadlines, the tool list, restarts.
 */
#ifndef MCPD_UPSTREAM_H
#define MCPD_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "map.h"

struct mcpd_daemon;
struct mcpd_upstream;
struct mcpd_pending;
struct mcpd_server_config;
struct mcpd_http_conn;
struct mcpd_http_request;
struct mcpd_agent;

struct mcpd_upstream_ops {
    const char *kind; /* "stdio" */
    /* Connects or spawns; reports mcpd_upstream_on_connected() or _on_disconnected(). */
    int (*start)(struct mcpd_upstream *up);
    /* Sends one serialized message (no newline). Returns 0 or a negative code. */
    int (*send)(struct mcpd_upstream *up, const char *data, size_t len);
    /*
     * Orderly stop (stdio: close stdin, wait, SIGTERM, SIGKILL). Reports
     * mcpd_upstream_on_disconnected() when done (at once if not running).
     */
    void (*stop)(struct mcpd_upstream *up);
    /* Releases the adapter; called once, after the last disconnect. */
    void (*free)(struct mcpd_upstream *up);
};

/* What an agent adapter (adapters/agent.c) adds: the connection comes to it. */
struct mcpd_agent_link_ops {
    /*
     * Takes an authenticated HTTP request and upgrades it (the agent's
     * connection; a current one is replaced, reporting its disconnect first).
     * Returns 0, or a negative code once the request has been answered.
     */
    int (*accept)(struct mcpd_upstream *up, struct mcpd_http_conn *c,
                  struct mcpd_http_request *req);
    /* Closes the current connection with a close code (4001, 4003, 4004). */
    void (*kick)(struct mcpd_upstream *up, unsigned code, const char *reason);
};

enum mcpd_upstream_state {
    MCPD_UP_DOWN = 0,     /* not running; restart may be scheduled */
    MCPD_UP_CONNECTING,   /* start() called, waiting for on_connected */
    MCPD_UP_INITIALIZING, /* initialize / tools/list in flight */
    MCPD_UP_READY,        /* tools in the catalog */
    MCPD_UP_STOPPING,     /* stop() called */
};

struct mcpd_upstream {
    const struct mcpd_upstream_ops *ops;
    struct mcpd_daemon *daemon;
    const struct mcpd_server_config *cfg; /* borrowed from the daemon's config */
    const char *name;                     /* cfg->name */
    /* core-private below */
    enum mcpd_upstream_state state;
    uint64_t next_id;
    struct mcpd_map pending;                    /* upstream id -> struct mcpd_pending */
    struct mcpd_pending *fifo_head, *fifo_tail; /* deadline order */
    unsigned npending;
    uv_timer_t deadline_timer;
    uv_timer_t restart_timer;
    unsigned restart_delay_ms;
    unsigned restarts;
    uint64_t ready_since;
    char protocol_version[16];
    bool modern;      /* spoken to in 2026-07-28: discovered, or servers.<x>.protocol */
    bool modern_hint; /* a per-client instance of a server found to speak 2026-07-28 */
    bool listening;   /* modern: its subscriptions/listen request is open */
    uint64_t listen_since;
    uint64_t listen_up_id; /* that request's id */
    bool listen_restart;   /* the subscribed URIs changed: reopen it */
    unsigned listen_backoff_ms;
    json_t *server_info; /* from initialize */
    json_t *server_caps; /* from initialize */
    json_t *lists[4];    /* tools, prompts, resources, templates (enum mcpd_list_kind) or NULL */
    json_t *list_next;   /* list being collected across pages */
    int listing;         /* kind being listed, -1 when idle */
    unsigned list_pages;
    unsigned relist_mask; /* kinds to list (again) when the current listing ends */
    struct mcpd_map subs; /* upstream uri -> subscriber count (resources/subscribe) */
    bool started_once;    /* first attempt finished (ready or failed) */
    bool stop_requested;
    char last_error[160];
    int handles_open;
    uint64_t notify_window; /* start of the current one-second window */
    unsigned notify_count, notify_dropped;
    uv_timer_t notify_timer; /* reports what a flood dropped when its second ends */
    uv_timer_t listen_timer; /* modern: reopens subscriptions/listen */
    /* per-client instances (share: per-client) */
    bool is_private;
    struct mcpd_session *owner;         /* the session served; NULL once it closed */
    struct mcpd_upstream *next_private; /* the owner's list */
    /* connected agents (mcpd/agents.c): never restarted by the core */
    struct mcpd_agent *agent;               /* the agent served, or NULL (set by mcpd/agents.c) */
    const struct mcpd_agent_link_ops *link; /* set by the agent adapter */
    const char *location;                   /* audit location ("agent:<name>"), or NULL */
};

/* Called by the core's constructor helper: initialises the core part. */
void mcpd_upstream_init(struct mcpd_upstream *up, struct mcpd_daemon *d,
                        const struct mcpd_server_config *cfg, const struct mcpd_upstream_ops *ops);

/* Adapter reports: the transport to the upstream is up. */
void mcpd_upstream_on_connected(struct mcpd_upstream *up);
/* Adapter reports one complete message from the upstream. */
void mcpd_upstream_on_message(struct mcpd_upstream *up, const char *data, size_t len);
/* Adapter reports: gone (exit, EOF, error, or after stop()). `why` is logged. */
void mcpd_upstream_on_disconnected(struct mcpd_upstream *up, const char *why);

/*
 * Core-internal: a request to a 2026-07-28 upstream carries its context in
 * params._meta: the version, mcpd's client info and the capabilities of the
 * client it is made for (`client_caps`, NULL for mcpd's own requests),
 * cut to what mcpd can relay. Does nothing for a session-era upstream.
 */
int mcpd__upstream_meta(const struct mcpd_upstream *up, json_t *msg, const json_t *client_caps);
/*
 * Core-internal, 2026-07-28 upstreams: the set of subscribed URIs (up->subs)
 * changed, so the listen stream is opened again with the new set; and whether
 * the server offers resource subscriptions at all.
 */
void mcpd__upstream_subs_changed(struct mcpd_upstream *up);
bool mcpd__upstream_can_subscribe(const struct mcpd_upstream *up);
/* Core-internal: the client capabilities of `caps` that mcpd relays (sampling, elicitation, roots).
 */
json_t *mcpd__relayed_caps(const json_t *caps);
/* Core-internal: the upstream said a list changed (bit per enum mcpd_list_kind). */
void mcpd__upstream_relist(struct mcpd_upstream *up, unsigned kinds);
/* Core-internal: first start attempt. */
void mcpd__upstream_start(struct mcpd_upstream *up);
/* Core-internal: stop for good (shutdown); no restart follows. */
void mcpd__upstream_shutdown(struct mcpd_upstream *up);
/* Core-internal: releases the core part once the adapter is done. */
void mcpd__upstream_close(struct mcpd_upstream *up);

/*
 * The server's own tools (its tools/list, as the catalog took it): a
 * per-client instance has none of its own, so its shared instance's.
 * Borrowed; NULL when not listed.
 */
json_t *mcpd_upstream_tools(const struct mcpd_upstream *up);

/* Name of a state for logs and `mcpd catalog`. */
const char *mcpd_upstream_state_name(enum mcpd_upstream_state st);

#endif
