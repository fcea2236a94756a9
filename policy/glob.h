/*
 * glob.h - helpers around the glob matcher that only policy/ uses; the
 * matcher itself (mcpd_policy_glob, mcpd_policy_glob_check) is public in
 * policy/policy.h.
 */
#ifndef MCPD_POLICY_GLOB_H
#define MCPD_POLICY_GLOB_H

#include <stdbool.h>

/* Glob modes of mcpd_policy_glob(). */
#define MCPD__GLOB_PLAIN 0 /* '*' matches any run, '/' included */
#define MCPD__GLOB_PATH  1 /* '*', '?' and classes stop at '/'; a '**' segment crosses it */

/* True when `pattern` has no '*', '?', '[' or '\\', so it matches only itself. */
bool mcpd__policy_glob_is_literal(const char *pattern);

#endif
