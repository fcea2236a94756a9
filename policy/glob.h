/*
 * glob.h - helpers around the glob matcher that only policy/ uses; the
 * matcher itself (mcpd_policy_glob, mcpd_policy_glob_check) is public in
 * policy/policy.h.
 */
#ifndef MCPD_POLICY_GLOB_H
#define MCPD_POLICY_GLOB_H

#include <stdbool.h>
#include <stddef.h>

/* Glob modes of mcpd_policy_glob(). */
#define MCPD__GLOB_PLAIN  0 /* '*' matches any run, '/' included */
#define MCPD__GLOB_PATH   1 /* '*', '?' and classes stop at '/'; a '**' segment crosses it */
#define MCPD__GLOB_NOFAST 2 /* or'ed in: always the general program (tests compare the two) */

/*
 * A glob compiled once (when the policy is built) and matched many times:
 * literal patterns become a string compare, a literal with final stars
 * ("prefix*", or a directory and all below it) byte compares (glob.c:
 * fast_kind), anything else a program in one heap block sized to the
 * pattern (tokens, bit masks over token positions, the pattern text).
 */
struct mcpd__glob;

/* Compiles pattern for `mode`; 0 with *out (mcpd__glob_free), or -1 with *why (static). */
int mcpd__glob_new(struct mcpd__glob **out, const char *pattern, int mode, const char **why);
void mcpd__glob_free(struct mcpd__glob *g);
/* s[0..len) against g, like mcpd_policy_glob(). g NULL matches nothing. */
bool mcpd__glob_match(const struct mcpd__glob *g, const char *s, size_t len);
/* The pattern as given. */
const char *mcpd__glob_text(const struct mcpd__glob *g);

/* True when `pattern` has no '*', '?', '[' or '\\', so it matches only itself. */
bool mcpd__policy_glob_is_literal(const char *pattern);

#endif
