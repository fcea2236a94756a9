/*
 * daemon.h - the process: loop, upstream registry, catalog, sessions,
 * client transports, graceful shutdown.
 *
 * main.c creates the daemon, adds one adapter per configured server and the
 * transports, then runs the loop. Transports start once every upstream has
 * finished its first start attempt (ready or failed, bounded by
 * MCPD_INIT_TIMEOUT_MS), so the first tools/list a client sees is complete.
 */
#ifndef MCPD_DAEMON_H
#define MCPD_DAEMON_H

#include <stdbool.h>

#include <jansson.h>
#include <uv.h>

#include "catalog.h"
#include "config.h"
#include "upstream.h"

struct mcpd_session;
struct mcpd_transport;
struct mcpd_listener;
struct mcpd_authz;
struct mcpd_agents;
struct mcpd_creds;

struct mcpd_transport_ops {
    const char *name;
    /* Starts serving (listen, read stdin). Returns 0 or a negative code. */
    int (*start)(struct mcpd_transport *tp);
    /* Stops taking new sessions/requests; in-flight ones continue. */
    void (*stop)(struct mcpd_transport *tp);
    /* Closes everything; the transport may free itself once closed. */
    void (*close)(struct mcpd_transport *tp);
};

struct mcpd_transport {
    const struct mcpd_transport_ops *ops;
    struct mcpd_daemon *daemon;
    struct mcpd_transport *next;
};

/*
 * Work that waits until the loop is about to block, such as the writes one
 * loop iteration queued for a stdio upstream (they leave in one syscall).
 * The daemon runs it from a prepare handle, and also as soon as the audit
 * has run a batch of callbacks: those run in the audit's own prepare
 * handle, and a prepare handle started from another's callback would only
 * run on the next iteration, after the loop slept.
 */
struct mcpd_deferred {
    struct mcpd_deferred *next;
    void (*run)(struct mcpd_deferred *w); /* must not defer w again */
    bool queued;
};

struct mcpd_daemon {
    uv_loop_t *loop;
    struct mcpd_config *cfg;    /* owned */
    struct mcpd_upstream **ups; /* owned, in config order */
    size_t nups;
    struct mcpd_catalog *catalog; /* owned; rebuilt when a tool list changes */
    unsigned generation;
    bool prefix;                   /* resolved prefix mode */
    struct mcpd_session *sessions; /* all live sessions (list) */
    unsigned nsessions;
    struct mcpd_transport *transports;
    struct mcpd_listener *listener; /* HTTP, when a transport registered a route */
    struct mcpd_authz *authz;       /* bots, policy, audit (see authz.h) */
    struct mcpd_creds *creds;       /* credential registry (credentials.c) */
    const char *stdio_bot;          /* the bot of stdio clients (--bot or auth.default_bot) */
    uv_timer_t reaper;              /* idle sessions */
    uv_timer_t startup_timer;
    uv_timer_t drain_timer;
    uv_signal_t sigint, sigterm, sigpipe, sighup;
    uv_prepare_t deferred_prepare; /* runs `deferred` */
    struct mcpd_deferred *deferred, **deferred_tail;
    bool deferred_closed;
    bool started; /* transports running */
    bool shutting_down;
    bool closing;
    int exit_code;
    void (*on_started)(struct mcpd_daemon *d); /* optional, after transports start */
    /* Set by main: makes an adapter for `cfg` (per-client instances are made on demand). */
    int (*new_upstream)(struct mcpd_upstream **out, struct mcpd_daemon *d,
                        const struct mcpd_server_config *cfg);
    /* connected agents (mcpd/agents.c); serve_agents: main asks for GET /agent */
    struct mcpd_agents *agents;
    bool serve_agents;
    /* Set by main: makes the adapter of a connected agent (ops->accept and ->kick). */
    int (*new_agent_upstream)(struct mcpd_upstream **out, struct mcpd_daemon *d,
                              const struct mcpd_server_config *cfg);
};

/* Creates a daemon on `loop`, taking ownership of `cfg`. */
int mcpd_daemon_new(struct mcpd_daemon **out, uv_loop_t *loop, struct mcpd_config *cfg);
/* Adds an upstream (owned from now on). */
int mcpd_daemon_add_upstream(struct mcpd_daemon *d, struct mcpd_upstream *up);
/* Adds a client transport; started once the catalog is complete. */
void mcpd_daemon_add_transport(struct mcpd_daemon *d, struct mcpd_transport *tp);
/* Starts upstreams and signal handling. Returns 0 or a negative code. */
int mcpd_daemon_start(struct mcpd_daemon *d);
/*
 * Begins graceful shutdown: transports stop taking work, in-flight calls
 * get MCPD_DRAIN_MS to finish, then everything closes and the loop ends.
 */
void mcpd_daemon_shutdown(struct mcpd_daemon *d);
/*
 * SIGHUP: reads the configuration file again. Bots, roles, their bindings
 * and auth.default_bot are applied (sessions of bots that are gone close,
 * every session is told its lists may have changed); when another section
 * changed (a server, listen, limits, the store...), or the file does not
 * load or its policy does not build, nothing is, and the log says why.
 * Loop thread.
 */
void mcpd_daemon_reload(struct mcpd_daemon *d);
/* Frees what is left after uv_run returned. */
void mcpd_daemon_free(struct mcpd_daemon *d);

/*
 * Core-internal: lists of an upstream changed (or it came up or went down);
 * `kinds` has a bit per enum mcpd_list_kind. Rebuilds the catalog and tells
 * clients with list_changed.
 */
void mcpd__daemon_lists_changed(struct mcpd_daemon *d, struct mcpd_upstream *up, unsigned kinds);
/* Core-internal: an upstream finished its first start attempt. */
void mcpd__daemon_upstream_settled(struct mcpd_daemon *d);
/* Core-internal: re-check whether shutdown can proceed. */
void mcpd__daemon_check_drained(struct mcpd_daemon *d);
/* Runs w before the loop next blocks (no-op when queued already). */
void mcpd__daemon_defer(struct mcpd_daemon *d, struct mcpd_deferred *w);
/* Takes w out of the queue (before freeing it). */
void mcpd__daemon_undefer(struct mcpd_daemon *d, struct mcpd_deferred *w);
/* Runs what is queued now (the audit, after its callbacks). */
void mcpd__daemon_run_deferred(struct mcpd_daemon *d);
/* Core-internal: server capabilities advertised to clients (new reference). */
json_t *mcpd__daemon_capabilities(struct mcpd_daemon *d);

#endif
