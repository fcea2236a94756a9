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

/* A remote MCP server over streamable HTTP or legacy HTTP+SSE, per `cfg` (cfg->url). */
int mcpd_remote_upstream_new(struct mcpd_upstream **out, struct mcpd_daemon *d,
                             const struct mcpd_server_config *cfg);

/*
 * A connected agent (mcpd/agents.c makes one per agent, on its first
 * connection; `cfg` is the agent's synthetic server entry). Sets up->link.
 */
int mcpd_agent_upstream_new(struct mcpd_upstream **out, struct mcpd_daemon *d,
                            const struct mcpd_server_config *cfg);
/* A declarative plugin (cfg->plugin without an exec command): HTTP operations in process. */
int mcpd_plugin_upstream_new(struct mcpd_upstream **out, struct mcpd_daemon *d,
                             const struct mcpd_server_config *cfg);

/* The adapter for `cfg`: remote when it has a url, stdio otherwise. */
int mcpd_upstream_new_for(struct mcpd_upstream **out, struct mcpd_daemon *d,
                          const struct mcpd_server_config *cfg);

#endif
