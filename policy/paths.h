/*
 * paths.h - path-pattern validation for the `paths` dimension (internal to
 * policy/; the canonicaliser itself is public: mcpd_policy_path_canon).
 */
#ifndef MCPD_POLICY_PATHS_H
#define MCPD_POLICY_PATHS_H

/*
 * Checks a configured path pattern: a valid glob, absolute (or starting
 * with a "**" segment) and canonical, i.e. free of "//", "." and ".."
 * segments and of a trailing '/' (which no canonical path has, so such a
 * pattern could never match). Returns 0, or -1 with *why.
 */
int mcpd__policy_path_pattern_check(const char *pattern, const char **why);

#endif
