/*
 * agents.h - connected agents in the daemon (core side; the WebSocket
 * adapter is adapters/agent.c).
 *
 * The registry knows every agent of the store (a watcher thread re-reads
 * the table when `mcpd agents ...` changes it) and every resource an
 * agent's tool groups created (<agent>-<group>, persisted). It serves
 * GET /agent: the bearer key is checked before the upgrade (401, 403),
 * then the agent's upstream (one per agent, made on its first connection,
 * never restarted by the core) takes the connection. While the upstream is
 * READY, each valid tool group is one catalog source; otherwise the
 * agent's resources are "disconnected". Status (online, last online) and
 * new resources are written to the store by a worker, never on the loop.
 */
#ifndef MCPD_AGENTS_H
#define MCPD_AGENTS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct mcpd_daemon;
struct mcpd_upstream;
struct mcpd_catalog_source;

/* Opens the registry (store, watcher) and routes GET /agent. Returns 0 or a code, err filled. */
int mcpd__agents_start(struct mcpd_daemon *d, char *err, size_t errcap);
/* Stops the watcher (shutdown); pending store writes still finish. */
void mcpd__agents_close(struct mcpd_daemon *d);
/* Frees the registry (after the loop ended). */
void mcpd__agents_free(struct mcpd_daemon *d);

/*
 * Sans-I/O: groups an agent's tools/list (array of tool objects) by
 * _meta["io.mcpd/group"] into a new object {group: [tool, ...]}, keeping
 * only tools with a name, a valid group (^[a-z0-9][a-z0-9-]{0,31}$), an
 * optional non-empty "io.mcpd/tool" string, optional "io.mcpd/dimensions"
 * of the form {dimension: [argument, ...]} (at most 16 x 16, arguments 1..64
 * bytes), and a wire name not seen before; `refused` (may be NULL) hears of
 * every other tool. NULL when out of memory.
 */
json_t *mcpd_agents_group_tools(const json_t *tools,
                                void (*refused)(const char *tool, const char *why, void *arg),
                                void *arg);

/*
 * Catalog sources of a READY agent upstream, one per valid tool group, into
 * src (at most cap). Each source's tools is a new array the caller releases
 * after building the catalog. Returns the number written.
 */
size_t mcpd__agents_sources(struct mcpd_daemon *d, struct mcpd_upstream *up,
                            struct mcpd_catalog_source *src, size_t cap);

/*
 * True when `name` (an exposed tool name) belongs to a persisted resource of
 * an agent that is not connected and `bot` is bound to that tool: `why` then
 * holds the "agent not connected" message naming the agent.
 */
bool mcpd__agents_not_connected(struct mcpd_daemon *d, const char *bot, const char *name, char *why,
                                size_t cap);

/* The core reports: an agent's upstream went down (offline in the store). */
void mcpd__agents_upstream_down(struct mcpd_upstream *up);

/* The call deadline of an agent resource: agents.call_timeouts, else agents.call_timeout. */
unsigned mcpd__agents_call_timeout(struct mcpd_daemon *d, const char *resource);

/* [{name, agent, group, status: connected|disconnected}] for `mcpd catalog` (new ref). */
json_t *mcpd__agents_resources_json(struct mcpd_daemon *d);

#endif
