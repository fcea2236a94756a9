/*
 * policy.h - the binding policy engine (sans-I/O): which bot may see which
 * resources, tools, prompts and resource URIs, and which argument values it
 * may pass, checked on canonicalised values.
 *
 * Model (DESIGN.md "Policy semantics", security.md section 6):
 *   - A bot has bindings, directly or through named roles (templates of
 *     bindings). Unbound resources are invisible.
 *   - A binding: {resource glob, tools: [globs], prompts: [globs],
 *     uris: [globs], dimension name -> [patterns]}. Missing tools/prompts/
 *     uris lists mean "none" (nothing visible of that kind) EXCEPT that
 *     a binding with no lists at all binds every tool ("*").
 *   - A call is allowed when some binding of the bot matches the resource
 *     and the tool and every dimension configured in THAT binding accepts
 *     every value the resource declares for it. Dimensions a binding does
 *     not configure are unrestricted. First allowing binding wins (config
 *     order: the bot's own bindings, then its roles' in role order).
 *   - Which argument a dimension applies to is declared per resource
 *     (struct mcpd_policy_resource): dimension name -> argument names.
 *     A binding's dimension that the resource declares no argument for
 *     has nothing to check (the configuration layer should warn).
 *     An absent argument is allowed (nothing to check). Fail closed: one
 *     present with the wrong JSON type (not a string, or for `commands`
 *     not a string or array of strings; null included) is a denial, and
 *     so is an argument whose name is a case variant of a constrained one
 *     ("Path" when "path" is constrained).
 *   - When no binding allows a call, the decision names the first binding
 *     that matched resource and tool and denied; "" when none matched.
 *
 * Dimensions:
 *   paths     absolute POSIX paths; lexical canonicalisation ("." and ".."
 *             resolved, "//" collapsed, trailing "/" dropped); rejected:
 *             relative paths, NUL and C0 controls, '\\', '%' (encodings),
 *             non-ASCII look-alikes of '.' and '/' (U+FF0E, U+FF0F, U+2024,
 *             U+FE52, U+2215, U+2044...), C1 controls, U+2028/U+2029,
 *             zero-width and bidi formatting characters, invalid UTF-8
 *             (overlong C0 AE included); ':' is allowed; symbolic links are
 *             not resolved (documented limitation); patterns are path
 *             globs ('*' within a segment, '**' across segments) with
 *             segment-boundary containment ("/srv/data/" + "**" matches
 *             "/srv/data" and below, never "/srv/database"). Patterns must
 *             be absolute and canonical (a trailing '/' is a build error:
 *             write "/dir/" + "**"). The argument
 *             is REPLACED by its canonical form, so the checked string is
 *             the forwarded string.
 *   commands  a string (shell source) or an array of strings (argv):
 *             every byte must be in the safe set [A-Za-z0-9] plus space and
 *             -_./,:=+@% (so metacharacters ;&|$`(){}<>!#*?[]~^'"\\, CR LF
 *             TAB NUL, other controls and non-ASCII are rejected); an argv
 *             element must be exactly one such token (no space, not empty),
 *             because an upstream may still join it into shell source; more
 *             than MCPD_POLICY_MAX_TOKENS tokens is a denial; leading
 *             VAR=value rejected, wrapper programs (env, command, exec,
 *             nice, timeout, xargs, sh, bash, dash, zsh, ksh, mksh, ash,
 *             csh, tcsh, fish, eval, busybox, sudo, doas, su, nohup, stdbuf,
 *             setsid, chroot, time, watch, ionice, taskset, chrt, flock,
 *             script, runuser, pkexec, unshare, nsenter, strace, ltrace,
 *             firejail, sg, newgrp, parallel, source, ".", builtin,
 *             systemd-run) rejected as the program unless a pattern names
 *             them literally, path-qualified programs rejected unless the
 *             canonical absolute path is the pattern's program (which must
 *             then be a literal canonical absolute path; a relative "./git"
 *             never matches); when a non-canonical program path is allowed
 *             the argument is rewritten with the canonical one; matched
 *             token-wise against patterns like "git status", "git log *",
 *             "ls -la *" where '*' matches exactly one token that does not
 *             start with '-' and a final "**" matches any number of such
 *             tokens; "-*" matches one flag token. Any other pattern token
 *             is a path-mode glob ('*' does not cross '/') and matches a
 *             token starting with '-' only if it starts with '-' itself.
 *   images    container image references parsed with the distribution
 *             grammar and normalised ("python:3" -> "docker.io/library/
 *             python:3", "index.docker.io"/"registry-1.docker.io" ->
 *             "docker.io", missing tag -> ":latest"); uppercase repository,
 *             whitespace, leading '-', ".." rejected, and so are an
 *             uppercase registry host, non-ASCII and IPv6 hosts;
 *             "name@sha256:<64 hex>" (or sha512:<128 hex>, with or without
 *             a tag) keeps its digest and only matches patterns that
 *             contain a digest or end in "@*"; patterns are normalised the
 *             same way and matched as globs ('*' not crossing '/'; no '**').
 *             The argument is REPLACED by its normalised form, so an
 *             upstream with other short-name rules (podman search
 *             registries) pulls exactly what was checked.
 *   other     any other name: plain glob over the string value ('*' matches
 *             any run of characters, including '/'); a value holding NUL is
 *             rejected.
 *
 * Globs: '*', '?' (one code point), '[...]' classes ('[!...]' or '[^...]'
 * negation, ']' first literal, '-' at an edge literal, "[:alpha:]" refused),
 * '\\' escapes; anchored; no FNM_PERIOD ('*' matches a leading '.');
 * linear time (no backtracking explosion: a pattern like "*a*a*a*b" against
 * 10 KB must take well under 10 ms). Resource, tool, prompt and URI globs
 * use mode 0. Invalid patterns are rejected when the policy is built.
 *
 * URIs: mcpd_policy_uri_visible() refuses (false) a URI with a control
 * character, '\\', a "." or ".." segment or an encoded '.', '/', '\\' or
 * '%' (%2e %2f %5c %25), since a mode-0 '*' would otherwise cross them.
 */
#ifndef MCPD_POLICY_H
#define MCPD_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Limits (fail closed beyond them). */
#define MCPD_POLICY_MAX_TOKENS  64   /* tokens in one command; more is a denial */
#define MCPD_POLICY_MAX_PATTERN 1024 /* bytes in one glob pattern */
#define MCPD_POLICY_MAX_PATH    4096 /* bytes in one path argument */

/* ---- what the configuration provides ------------------------------------------ */

struct mcpd_policy_dim {
    const char *name;            /* "paths", "commands", "images", or a custom name */
    const char *const *patterns; /* npatterns globs */
    size_t npatterns;
};

struct mcpd_policy_binding {
    const char *resource;     /* glob over resource names, e.g. "files" or "agent1-*" */
    const char *const *tools; /* NULL: missing (see the header comment); a list
                                 given but empty is non-NULL with ntools 0 */
    size_t ntools;
    const char *const *prompts;
    size_t nprompts;
    const char *const *uris;
    size_t nuris;
    const struct mcpd_policy_dim *dims;
    size_t ndims;
    const char *id; /* for explain/audit, e.g. "bots.alice.bindings[0]" */
};

struct mcpd_policy_role {
    const char *name;
    const struct mcpd_policy_binding *bindings;
    size_t nbindings;
};

struct mcpd_policy_bot {
    const char *name;
    const char *const *roles; /* names of roles, in order */
    size_t nroles;
    const struct mcpd_policy_binding *bindings;
    size_t nbindings;
};

/* Which arguments of a resource's tools each dimension constrains. */
struct mcpd_policy_dim_args {
    const char *dimension;   /* "paths", ... */
    const char *const *args; /* argument names, e.g. "path", "source" */
    size_t nargs;
};

struct mcpd_policy_resource {
    const char *name;
    const struct mcpd_policy_dim_args *dims;
    size_t ndims;
};

struct mcpd_policy;

/*
 * Compiles bots and roles (everything is copied; nothing is retained).
 * Returns 0 with *out (new; release with mcpd_policy_free), or -1 with a
 * one-line reason in err (e.g. "bots.alice.bindings[0].paths[1]: unterminated
 * '['", "bots.bob: unknown role 'x'"). A binding without an id gets
 * "bots.<bot>.bindings[<i>]" or "roles.<role>.bindings[<i>]"; the id of a
 * role's binding stays the role's. Bot and role names must be unique.
 */
int mcpd_policy_new(struct mcpd_policy **out, const struct mcpd_policy_bot *bots, size_t nbots,
                    const struct mcpd_policy_role *roles, size_t nroles, char *err, size_t errcap);
void mcpd_policy_free(struct mcpd_policy *p);

/* True when the policy knows `bot`. */
bool mcpd_policy_has_bot(const struct mcpd_policy *p, const char *bot);

/* Visibility: is (resource, tool|prompt|uri) bound for bot? */
bool mcpd_policy_tool_visible(const struct mcpd_policy *p, const char *bot, const char *resource,
                              const char *tool);
bool mcpd_policy_prompt_visible(const struct mcpd_policy *p, const char *bot, const char *resource,
                                const char *prompt);
bool mcpd_policy_uri_visible(const struct mcpd_policy *p, const char *bot, const char *resource,
                             const char *uri);

struct mcpd_policy_decision {
    bool allow;
    bool bound;         /* some binding matched the resource and the tool (the tool is
                           visible to the bot, whether or not the arguments passed) */
    char binding[128];  /* id of the deciding binding ("" when none matched) */
    char dimension[32]; /* the dimension that denied ("" otherwise) */
    char argument[64];  /* the argument that denied */
    char value[256];    /* the offending value (truncated, control chars escaped);
                           canonical/normalised when that succeeded, compact JSON
                           for a value of the wrong type */
    char pattern[256];  /* allow: the pattern that matched (last dimension checked;
                           the tool glob when no argument was checked) */
    char reason[256];   /* one line for the client and the audit, e.g.
                           "paths: '/etc/passwd' (argument 'path') is outside the allowed paths",
                           "paths: '/x/%2e' (argument 'path') is rejected: percent-encoding",
                           "paths: argument 'path' must be a string, not an array",
                           "tool 't' of resource 'r' is not bound for bot 'b'",
                           "unknown bot 'b'"; on allow "allowed by <binding id>" */
};

/*
 * Checks a tools/call. `args` (the call's arguments object, may be NULL) is
 * borrowed and MODIFIED on allow: the arguments the deciding binding
 * checked are replaced by their canonical form (paths, images, a command's
 * program path), so what is forwarded is exactly what was checked; a
 * non-object is a denial. `res` (borrowed, required) names the resource
 * and declares its dimension arguments (ndims 0: none); NULL is a denial.
 * Always fills `d`; returns 0 when allowed, -1 when denied. Does not call
 * back; safe to call concurrently on one policy (it is not modified).
 */
int mcpd_policy_check_call(const struct mcpd_policy *p, const char *bot,
                           const struct mcpd_policy_resource *res, const char *tool, json_t *args,
                           struct mcpd_policy_decision *d);

/* ---- the canonicalisers and the matcher, exposed for tests and fuzzing ------ */

/*
 * Lexical path canonicalisation of path[0..len) into out (cap bytes;
 * MCPD_POLICY_MAX_PATH + 1 always suffices); returns 0, or -1 with *why (a
 * static string, e.g. "relative path", "percent-encoding"). why may be NULL.
 */
int mcpd_policy_path_canon(char *out, size_t cap, const char *path, size_t len, const char **why);
/*
 * Splits a command string into at most maxtokens tokens (no expansion,
 * the byte rules of the `commands` dimension); returns the count (> 0) or
 * -1 with *why (static).
 */
int mcpd_policy_command_tokens(char tokens[][256], int maxtokens, const char *cmd, size_t len,
                               const char **why);
/* Normalises an image reference into out (cap bytes); returns 0 or -1 with *why (static). */
int mcpd_policy_image_normalise(char *out, size_t cap, const char *ref, size_t len,
                                const char **why);
/*
 * Glob match of s[0..len) (may hold NUL) against a NUL-terminated pattern;
 * mode 0: '*' matches anything; mode 1: path ('*' within a segment, '**'
 * across). An invalid pattern matches nothing. Compiles the pattern on
 * every call (one small allocation; out of memory matches nothing): the
 * policy itself matches globs compiled once when it is built.
 */
bool mcpd_policy_glob(const char *pattern, const char *s, size_t len, int mode);
/* Validates a glob pattern; returns 0 or -1 with why. */
int mcpd_policy_glob_check(const char *pattern, const char **why);

#endif
