/*
 * shell.h - the `shell_exec` builtin: which commands may run (sans-I/O) and
 * running one (libuv).
 *
 * A command is never given to a shell. It is split into tokens with the
 * policy engine's command rules (shell metacharacters, quotes, `$`, newlines
 * and non-ASCII refused), then matched token-wise against the configured
 * globs exactly as mcpd's `commands` dimension matches ("git status",
 * "ls *": '*' is one non-flag token, a final "**" any number; leading
 * VAR=value, wrapper programs such as env/sh/sudo and relative program paths
 * refused). Only then is argv executed, in its own process group, with a
 * deadline (the group is killed) and a cap on the output kept.
 */
#ifndef MCPD_AGENT_SHELL_H
#define MCPD_AGENT_SHELL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <uv.h>

struct mcpd_agent_shell;

/*
 * Compiles the command globs (copied). Returns 0 with *out (new), or
 * MCPD_ECONFIG with a reason in why, or MCPD_ENOMEM. n may be 0 (nothing
 * is allowed).
 */
int mcpd_agent_shell_new(struct mcpd_agent_shell **out, const char *const *patterns, size_t n,
                         char *why, size_t whycap);
void mcpd_agent_shell_free(struct mcpd_agent_shell *sh);

/*
 * Checks `command` (borrowed; must be a JSON string). Returns 0 with
 * *argv (new, NULL-terminated; free with mcpd_agent_shell_argv_free), or
 * MCPD_EDENIED with a one-line reason in why (the command is not run).
 */
int mcpd_agent_shell_check(const struct mcpd_agent_shell *sh, const json_t *command, char ***argv,
                           char *why, size_t whycap);
void mcpd_agent_shell_argv_free(char **argv);

struct mcpd_agent_shell_run;
/* result: a tools/call result object (new; the callback takes it). */
typedef void (*mcpd_agent_shell_cb)(struct mcpd_agent_shell_run *run, json_t *result, void *data);

/*
 * Runs argv (borrowed; copied by libuv) in its own process group, stdout
 * and stderr into one buffer capped at max_output, killed after timeout_ms.
 * Returns 0 (cb follows exactly once, never synchronously) or a libuv error
 * (nothing started; no callback).
 */
int mcpd_agent_shell_run(struct mcpd_agent_shell_run **out, uv_loop_t *loop, char **argv,
                         unsigned timeout_ms, size_t max_output, mcpd_agent_shell_cb cb,
                         void *data);
/* Kills the process group; cb still follows (with a "cancelled" result). */
void mcpd_agent_shell_cancel(struct mcpd_agent_shell_run *run);

#endif
