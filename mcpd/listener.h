/*
 * listener.h - the daemon's HTTP listener: one address, the paths of every
 * HTTP transport (streamable HTTP at http.path, legacy SSE at /sse and
 * /message), and the checks every request passes first: Host and Origin
 * (DNS rebinding: 403), then the route (404).
 *
 * Transports register their routes in their start() hook; the daemon binds
 * the address once every transport has started.
 */
#ifndef MCPD_LISTENER_H
#define MCPD_LISTENER_H

#include <stdbool.h>

#include "net/http_server.h"

struct mcpd_daemon;
struct mcpd_config;

/* Registers a handler for an exact path. Returns 0 or MCPD_ENOMEM/MCPD_ECONFIG. */
int mcpd_listener_route(struct mcpd_daemon *d, const char *path, mcpd_http_handler cb, void *data);

/* The bound port, 0 before the listener started. */
int mcpd_listener_port(const struct mcpd_daemon *d);

/* True when the listener serves TLS (https, and wss for WebSocket upgrades). */
bool mcpd_listener_tls(const struct mcpd_daemon *d);

/* Answers with `status` and an id-less JSON-RPC error object as the body. */
void mcpd_http_respond_rpc_error(struct mcpd_http_conn *c, int status, int code, const char *msg);

/* True when `host` (a Host header value, port ignored) is an allowed host name. */
bool mcpd_listener_host_allowed(const struct mcpd_config *cfg, const char *host);
/* True when `origin` is allowed (its host is allowed, or it matches allowed_origins). */
bool mcpd_listener_origin_allowed(const struct mcpd_config *cfg, const char *origin);

/*
 * With bots configured, requires "Authorization: Bearer <key>" naming an
 * enabled bot: on success sets *bot (valid until the next call) and
 * key_hash and returns true; otherwise answers 401 with WWW-Authenticate,
 * audits the failure, and returns false. Without bots: true, *bot = NULL.
 */
bool mcpd_listener_authenticate(struct mcpd_daemon *d, struct mcpd_http_conn *c,
                                struct mcpd_http_request *req, const char **bot,
                                unsigned char key_hash[32]);

/* Core-internal (daemon.c): bind and serve if any route was registered. */
int mcpd__listener_start(struct mcpd_daemon *d);
void mcpd__listener_stop(struct mcpd_daemon *d);
void mcpd__listener_close(struct mcpd_daemon *d);

#endif
