/*
 * commands.h - the `commands` dimension (internal to policy/): commands as
 * token slices, compiled command patterns and the token-wise matcher.
 */
#ifndef MCPD_POLICY_COMMANDS_H
#define MCPD_POLICY_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/policy.h"

struct mcpd__policy_slice {
    const char *p; /* borrowed; not NUL-terminated */
    size_t len;
};

/* A command as at most MCPD_POLICY_MAX_TOKENS validated tokens (borrowed slices). */
struct mcpd__policy_cmd {
    struct mcpd__policy_slice tok[MCPD_POLICY_MAX_TOKENS];
    int n;
};

/*
 * Splits shell source s[0..len) at spaces into c (the slices borrow s).
 * Returns 0, or -1 with *why ("shell metacharacter ';'", "newline",
 * "non-ASCII character", "empty command", "more than 64 tokens", ...).
 */
int mcpd__policy_cmd_split(struct mcpd__policy_cmd *c, const char *s, size_t len, const char **why);

/* Appends one argv element (borrowed) to c, validated as exactly one token; 0 or -1 with *why. */
int mcpd__policy_cmd_push(struct mcpd__policy_cmd *c, const char *s, size_t len, const char **why);

/*
 * Checks the program token of c (c->n > 0). Returns 0 for a plain program
 * name, 1 for a path-qualified one (its canonical absolute path is written
 * to canon), -1 with *why for an environment assignment ("VAR=value"), a
 * relative program path ("./git") or a path the canonicaliser refuses.
 */
int mcpd__policy_cmd_program(const struct mcpd__policy_cmd *c, char *canon, size_t cap,
                             const char **why);

/* True when p[0..len) names a wrapper program (env, sudo, sh, xargs, ...). */
bool mcpd__policy_cmd_is_wrapper(const char *p, size_t len);

struct mcpd__policy_cmdpat;

/* Compiles a command pattern such as "git log *"; 0 with *out (new) or -1 with *why. */
int mcpd__policy_cmdpat_new(struct mcpd__policy_cmdpat **out, const char *text, const char **why);
void mcpd__policy_cmdpat_free(struct mcpd__policy_cmdpat *p);

/*
 * True when command c matches pattern p. canon is the program's canonical
 * path when mcpd__policy_cmd_program() returned 1, else NULL. Borrows all.
 */
bool mcpd__policy_cmdpat_match(const struct mcpd__policy_cmdpat *p,
                               const struct mcpd__policy_cmd *c, const char *canon);

#endif
