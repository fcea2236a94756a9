/*
 * bridge.h - one local stdio MCP server bridged to mcpd as a tool group.
 *
 * The child is spawned (uv_spawn), initialised, and its tools listed
 * (following nextCursor); each tool is exposed as "<group>.<tool>" with
 * io.mcpd/group and io.mcpd/tool in _meta. tools/call from mcpd is
 * forwarded with a fresh id; the answer goes back with mcpd's id.
 * notifications/cancelled from mcpd is forwarded with the child's id;
 * progress and log notifications from the child are relayed as they are
 * (progress tokens are mcpd's own, passed through in _meta). A crashed child
 * is restarted with exponential backoff; whenever its tools appear, change
 * or disappear, on_changed fires so the agent can send
 * notifications/tools/list_changed.
 */
#ifndef MCPD_AGENT_BRIDGE_H
#define MCPD_AGENT_BRIDGE_H

#include <stdbool.h>

#include <jansson.h>
#include <uv.h>

#include "agent/config.h"

struct mcpd_agent_bridge;

struct mcpd_agent_bridge_cbs {
    /* A message for mcpd (borrowed): a response or a relayed notification. gen: see call(). */
    void (*send)(json_t *msg, unsigned gen, void *data);
    /* The exposed tool list changed (ready, relisted, gone). */
    void (*changed)(struct mcpd_agent_bridge *br, void *data);
};

/* Borrows srv (must outlive the bridge). Starts the child at once. */
int mcpd_agent_bridge_new(struct mcpd_agent_bridge **out, uv_loop_t *loop,
                          const struct mcpd_agent_server *srv, unsigned call_timeout_ms,
                          const struct mcpd_agent_bridge_cbs *cbs, void *data);
/* Group name (the server's name). */
const char *mcpd_agent_bridge_name(const struct mcpd_agent_bridge *br);
/* Appends the exposed tools (new objects) to arr, when the child is ready. */
void mcpd_agent_bridge_tools(const struct mcpd_agent_bridge *br, json_t *arr);
/*
 * Forwards a tools/call: id (borrowed, copied) is mcpd's, gen is the
 * agent's connection generation (echoed to send), tool the name within the
 * group, params the call's params (borrowed; its name is rewritten in a
 * copy). Returns 0 or MCPD_EUNAVAIL (not ready), MCPD_EBUSY, MCPD_ENOMEM.
 */
int mcpd_agent_bridge_call(struct mcpd_agent_bridge *br, json_t *id, unsigned gen, const char *tool,
                           json_t *params);
/* Forwards a cancellation of mcpd's request id, if this bridge has it. */
void mcpd_agent_bridge_cancel(struct mcpd_agent_bridge *br, json_t *id, unsigned gen);
/* Forgets (and cancels at the child) every call of an older generation. */
void mcpd_agent_bridge_drop(struct mcpd_agent_bridge *br, unsigned gen);
/* Stops the child (stdin closed, SIGTERM, SIGKILL) and frees the bridge; cb when done. */
void mcpd_agent_bridge_close(struct mcpd_agent_bridge *br, void (*cb)(void *data), void *data);

#endif
