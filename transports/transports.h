/*
 * transports.h - constructors of the client-facing transports. Each returns
 * a struct mcpd_transport that main.c hands to mcpd_daemon_add_transport().
 */
#ifndef MCPD_TRANSPORTS_H
#define MCPD_TRANSPORTS_H

#include "mcpd/daemon.h"

/* MCP over this process's stdin/stdout (newline-delimited JSON-RPC). */
int mcpd_stdio_transport_new(struct mcpd_transport **out);

/*
 * Streamable HTTP on the configured listen address and http.path. After
 * start, mcpd_http_transport_port() tells the bound port.
 */
int mcpd_http_transport_new(struct mcpd_transport **out);
int mcpd_http_transport_port(const struct mcpd_transport *tp);

/* Legacy HTTP+SSE (2024-11-05): GET /sse and POST /message?sessionId= on the same listener. */
int mcpd_sse_transport_new(struct mcpd_transport **out);

#endif
