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
 *     Fail closed: a constrained argument that is absent counts as allowed
 *     only if not present at all? NO: absent is allowed (nothing to check);
 *     present but of the wrong JSON type (not a string, or for `commands`
 *     not a string or array of strings) is a denial.
 *
 * Dimensions:
 *   paths     absolute POSIX paths; lexical canonicalisation ("." and ".."
 *             resolved, "//" collapsed, trailing "/" dropped); rejected:
 *             relative paths, NUL and C0 controls, '\\', '%' (encodings),
 *             non-ASCII look-alikes of '.' and '/' (U+FF0E, U+FF0F, U+2024,
 *             U+FE52, U+2215, U+2044...), invalid UTF-8; patterns are path
 *             globs ('*' within a segment, '**' across segments) with
 *             segment-boundary containment ("/srv/data/" + "**" matches
 *             "/srv/data" and below, never "/srv/database"). The argument
 *             is REPLACED by its canonical form, so the checked string is
 *             the forwarded string.
 *   commands  a string (shell source) or an array of strings (argv):
 *             metacharacters ;&|$`(){}<>!#*?[]~'"\\ CR LF TAB NUL and non-ASCII
 *             rejected, leading VAR=value rejected, wrapper programs (env,
 *             command, exec, nice, timeout, xargs, sh, bash, dash, zsh,
 *             eval, busybox, sudo, doas, su, nohup, stdbuf, setsid, chroot)
 *             rejected as the program unless a pattern names them, path-
 *             qualified programs rejected unless the canonical absolute
 *             path is the pattern's program; matched token-wise against
 *             patterns like "git status", "git log *", "ls -la *" where '*'
 *             matches exactly one token that does not start with '-' and a
 *             final "**" matches any number of such tokens; "-*" matches one
 *             flag token. A token is compared with glob rules (no '/').
 *   images    container image references parsed with the distribution
 *             grammar and normalised ("python:3" -> "docker.io/library/
 *             python:3", "index.docker.io"/"registry-1.docker.io" ->
 *             "docker.io", missing tag -> ":latest"); uppercase repository,
 *             whitespace, leading '-', ".." rejected; "name@sha256:<64 hex>"
 *             keeps its digest and only matches patterns that contain a
 *             digest or end in "@*"; patterns are normalised the same way
 *             and matched as globs ('*' not crossing '/').
 *   other     any other name: plain glob over the string value ('*' matches
 *             any run of characters, including '/').
 *
 * Globs: '*', '?', '[...]' classes ('[!...]' negation, ']' first literal),
 * '\\' escapes; anchored; linear time (no backtracking explosion: a pattern
 * like "*a*a*a*b" against 10 KB must take well under 10 ms). Invalid
 * patterns are rejected when the policy is built.
 */
#ifndef MCPD_POLICY_H
#define MCPD_POLICY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- what the configuration provides ------------------------------------------ */

struct mcpd_policy_dim {
    const char *name;             /* "paths", "commands", "images", or a custom name */
    const char *const *patterns;  /* npatterns globs */
    size_t npatterns;
};

struct mcpd_policy_binding {
    const char *resource;         /* glob over resource names, e.g. "files" or "agent1-*" */
    const char *const *tools;     /* NULL: see the header comment */
    size_t ntools;
    const char *const *prompts;
    size_t nprompts;
    const char *const *uris;
    size_t nuris;
    const struct mcpd_policy_dim *dims;
    size_t ndims;
    const char *id;               /* for explain/audit, e.g. "bots.alice.bindings[0]" */
};

struct mcpd_policy_role {
    const char *name;
    const struct mcpd_policy_binding *bindings;
    size_t nbindings;
};

struct mcpd_policy_bot {
    const char *name;
    const char *const *roles;     /* names of roles, in order */
    size_t nroles;
    const struct mcpd_policy_binding *bindings;
    size_t nbindings;
};

/* Which arguments of a resource's tools each dimension constrains. */
struct mcpd_policy_dim_args {
    const char *dimension;        /* "paths", ... */
    const char *const *args;      /* argument names, e.g. "path", "source" */
    size_t nargs;
};

struct mcpd_policy_resource {
    const char *name;
    const struct mcpd_policy_dim_args *dims;
    size_t ndims;
};

struct mcpd_policy;

/*
 * Compiles bots and roles (everything is copied). Returns 0, or -1 with a
 * one-line reason in err (e.g. "bots.alice.bindings[0].paths[1]: unterminated
 * '['", "bots.bob: unknown role 'x'").
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
    char binding[128];   /* id of the deciding binding ("" when none matched) */
    char dimension[32];  /* the dimension that denied ("" otherwise) */
    char argument[64];   /* the argument that denied */
    char value[256];     /* the offending value (truncated, control chars escaped) */
    char pattern[256];   /* allow: the pattern that matched (last dimension checked) */
    char reason[256];    /* one line for the client and the audit, e.g.
                            "paths: '/etc/passwd' (argument 'path') is outside the allowed paths" */
};

/*
 * Checks a tools/call. `args` (the call's arguments object, may be NULL) is
 * borrowed and MODIFIED: constrained path arguments are replaced by their
 * canonical form, so what is forwarded is exactly what was checked. `res`
 * declares the resource's dimension arguments (may be NULL: none). Always
 * fills `d`; returns 0 when allowed, -1 when denied.
 */
int mcpd_policy_check_call(const struct mcpd_policy *p, const char *bot,
                           const struct mcpd_policy_resource *res, const char *tool, json_t *args,
                           struct mcpd_policy_decision *d);

/* ---- the canonicalisers and the matcher, exposed for tests and fuzzing ------ */

/* Lexical path canonicalisation into out; returns 0 or -1 with why set. */
int mcpd_policy_path_canon(char *out, size_t cap, const char *path, size_t len, const char **why);
/* Splits a command string into tokens (no expansion); returns count or -1 with why. */
int mcpd_policy_command_tokens(char tokens[][256], int maxtokens, const char *cmd, size_t len,
                               const char **why);
/* Normalises an image reference; returns 0 or -1 with why. */
int mcpd_policy_image_normalise(char *out, size_t cap, const char *ref, size_t len,
                                const char **why);
/* Glob match; mode 0: '*' matches anything; mode 1: path ('*' within a segment, '**' across). */
bool mcpd_policy_glob(const char *pattern, const char *s, size_t len, int mode);
/* Validates a glob pattern; returns 0 or -1 with why. */
int mcpd_policy_glob_check(const char *pattern, const char **why);

#endif
