/*
 * env.h - the environment of a child process (stdio upstreams, exec
 * plugins, the agent's bridged servers and shell_exec): mcpd's own
 * environment minus the secrets mcpd itself reads from it, plus the
 * configured variables (which win).
 *
 * Children are other people's code (npm servers, plugin executables): the
 * master key (MCPD_MASTER_KEY decrypts every stored credential) and the
 * agent key (MCPD_AGENT_KEY) never reach them.
 */
#ifndef MCPD_ENV_H
#define MCPD_ENV_H

#include <stdbool.h>
#include <stddef.h>

struct mcpd_kv;

/* True when the "NAME=value" entry names a secret that children never get. */
bool mcpd_env_is_secret(const char *entry);

/*
 * A NULL-terminated "NAME=value" array: environ without secrets and without
 * the names in `set`, then `set` (n entries; may be NULL). NULL when out of
 * memory. Free with mcpd_env_free.
 */
char **mcpd_env_child(const struct mcpd_kv *set, size_t n);
void mcpd_env_free(char **env);

#endif
