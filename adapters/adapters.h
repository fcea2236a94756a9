/*
 * adapters.h - constructors of the upstream adapters. Each returns a
 * struct mcpd_upstream that main.c hands to mcpd_daemon_add_upstream().
 */
#ifndef MCPD_ADAPTERS_H
#define MCPD_ADAPTERS_H

#include "mcpd/config.h"
#include "mcpd/daemon.h"
#include "mcpd/upstream.h"

/* A child MCP server over stdio, per `cfg` (borrowed; must outlive the upstream). */
int mcpd_stdio_upstream_new(struct mcpd_upstream **out, struct mcpd_daemon *d,
                            const struct mcpd_server_config *cfg);

#endif
