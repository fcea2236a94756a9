/*
 * internal.h - the compiled policy shared by policy.c (building, lookups,
 * visibility) and check.c (tools/call decisions). Internal to policy/.
 */
#ifndef MCPD_POLICY_INTERNAL_H
#define MCPD_POLICY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/commands.h"
#include "policy/policy.h"

enum mcpd__policy_kind {
    MCPD__DIM_PATHS,    /* canonical absolute paths, path-mode globs */
    MCPD__DIM_COMMANDS, /* token-wise command patterns */
    MCPD__DIM_IMAGES,   /* normalised image references, path-mode globs */
    MCPD__DIM_OTHER,    /* plain globs over strings */
};

struct mcpd__glob;

struct mcpd__policy_pat {
    char *text;                      /* as configured (shown in decisions) */
    struct mcpd__glob *g;            /* paths, images (over norm), other: compiled once */
    char *norm;                      /* images: normalised pattern */
    struct mcpd__policy_cmdpat *cmd; /* commands: compiled pattern */
    bool digest;                     /* images: the pattern has a digest part */
};

struct mcpd__policy_dim {
    char *name;
    enum mcpd__policy_kind kind;
    struct mcpd__policy_pat *pats;
    size_t npats;
};

struct mcpd__policy_list {
    char **v;
    struct mcpd__glob **g; /* v[i] compiled (mode 0) */
    size_t n;
};

struct mcpd__policy_binding {
    char *id;
    char *resource;
    struct mcpd__glob *resource_g;
    bool all_tools; /* no tools, prompts or uris list: every tool */
    struct mcpd__policy_list tools, prompts, uris;
    struct mcpd__policy_dim *dims;
    size_t ndims;
};

struct mcpd__policy_bot {
    char *name;
    const struct mcpd__policy_binding **b; /* own bindings, then roles' (borrowed) */
    size_t nb;
};

struct mcpd_policy {
    struct mcpd__policy_binding *bindings; /* every bot's and role's, owned */
    size_t nbindings;
    struct mcpd__policy_bot *bots;
    size_t nbots;
};

/* The bot named `name`, or NULL. */
const struct mcpd__policy_bot *mcpd__policy_find_bot(const struct mcpd_policy *p, const char *name);

/* The first glob of `list` matching s (mode 0), or NULL. */
const char *mcpd__policy_list_match(const struct mcpd__policy_list *list, const char *s);

/* The tool glob of b that admits `tool` ("*" for all_tools), or NULL. */
const char *mcpd__policy_tool_match(const struct mcpd__policy_binding *b, const char *tool);

#endif
