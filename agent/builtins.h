/*
 * builtins.h - the agent's own tools, group "builtin": system_info,
 * read_file / write_file / list_directory (file_ops) and shell_exec, each
 * switched on in agent.yaml. Wire names are "builtin.<tool>".
 */
#ifndef MCPD_AGENT_BUILTINS_H
#define MCPD_AGENT_BUILTINS_H

#include <jansson.h>
#include <uv.h>

#include "agent/config.h"
#include "agent/shell.h"

struct mcpd_agent_builtins;

/* Borrows cfg (must outlive the object). Returns 0, MCPD_ECONFIG or MCPD_ENOMEM. */
int mcpd_agent_builtins_new(struct mcpd_agent_builtins **out, uv_loop_t *loop,
                            const struct mcpd_agent_config *cfg);
void mcpd_agent_builtins_free(struct mcpd_agent_builtins *b);

/* Appends the enabled tools (with their _meta) to arr (borrowed). */
void mcpd_agent_builtins_tools(const struct mcpd_agent_builtins *b, json_t *arr);

/*
 * Calls tool (the name within the group) with args (borrowed, may be NULL).
 * Returns 0 with *result (new tools/call result; isError for refusals), 1
 * when the call runs on (shell_exec: *run set, cb follows), or -1 when the
 * tool is unknown or disabled.
 */
int mcpd_agent_builtins_call(struct mcpd_agent_builtins *b, const char *tool, json_t *args,
                             json_t **result, struct mcpd_agent_shell_run **run,
                             mcpd_agent_shell_cb cb, void *data);

/* A tools/call result holding one text (new); isError as given. */
json_t *mcpd_agent_tool_text(const char *text, int is_error);

#endif
