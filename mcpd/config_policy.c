/*
 * config_policy.c - the policy part of the configuration: bots, roles and
 * their bindings, which arguments each server's dimensions constrain, the
 * store file, the audit and auth sections. Like config.c, it only builds
 * plain validated structs (struct mcpd_config); the policy engine
 * (policy/) compiles them and checks the glob patterns.
 *
 *   roles:  { <role>: [binding, ...] }
 *   bots:   { <bot>: { roles: [role, ...], bindings: [binding, ...] } }
 *   binding: { resource: glob, tools: [...], prompts: [...], uris: [...],
 *              <dimension>: [pattern, ...] }
 *
 * A binding key other than resource/tools/prompts/uris names a dimension: one
 * of paths, commands, images, or a custom one that some server declares in
 * its `dimensions:` (so a typo is an error, not a silently ignored rule).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "error.h"
#include "limits.h"

#define BUILTIN_DIMS 3
static const char *const builtin_dims[BUILTIN_DIMS] = { "paths", "commands", "images" };

/* ---- freeing ---------------------------------------------------------------------------- */

static void free_strv(struct mcpd_strv *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

static void free_bindings(struct mcpd_binding_config *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(b[i].resource);
        free(b[i].id);
        free_strv(&b[i].tools);
        free_strv(&b[i].prompts);
        free_strv(&b[i].uris);
        for (size_t j = 0; j < b[i].ndims; j++) {
            free(b[i].dims[j].name);
            free_strv(&b[i].dims[j].patterns);
        }
        free(b[i].dims);
    }
    free(b);
}

void mcpd__cfg_free_dims(struct mcpd_dim_args_config *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(d[i].dimension);
        free_strv(&d[i].args);
    }
    free(d);
}

void mcpd__cfg_free_policy(struct mcpd_config *cfg)
{
    for (size_t i = 0; i < cfg->nbots; i++) {
        free(cfg->bots[i].name);
        free_strv(&cfg->bots[i].roles);
        free_bindings(cfg->bots[i].bindings, cfg->bots[i].nbindings);
    }
    free(cfg->bots);
    for (size_t i = 0; i < cfg->nroles; i++) {
        free(cfg->roles[i].name);
        free_bindings(cfg->roles[i].bindings, cfg->roles[i].nbindings);
    }
    free(cfg->roles);
    free(cfg->default_bot);
    free(cfg->store_path);
}

/* ---- lists -------------------------------------------------------------------------------- */

/* A list of strings into v (a struct mcpd_strv). */
static int strv(struct ctx *c, yaml_node_t *n, const char *path, struct mcpd_strv *v)
{
    struct field f = { .off = offsetof(struct mcpd_strv, v),
                       .off2 = offsetof(struct mcpd_strv, n) };
    free_strv(v);
    return mcpd__cfg_strlist(c, n, path, &f, v, false);
}

static size_t seq_len(const yaml_node_t *n)
{
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

/* ---- bindings ------------------------------------------------------------------------------- */

static int binding_key(struct ctx *c, struct mcpd_binding_config *b, const char *key,
                       yaml_node_t *k, yaml_node_t *v, const char *sub)
{
    struct mcpd_dim_config *d;

    if (strcmp(key, "resource") == 0)
        return mcpd__cfg_scalar(c, v, sub, &b->resource);
    if (strcmp(key, "tools") == 0) {
        b->has_tools = true;
        return strv(c, v, sub, &b->tools);
    }
    if (strcmp(key, "prompts") == 0) {
        b->has_prompts = true;
        return strv(c, v, sub, &b->prompts);
    }
    if (strcmp(key, "uris") == 0) {
        b->has_uris = true;
        return strv(c, v, sub, &b->uris);
    }
    /* anything else is a dimension; whether it exists is checked at the end */
    d = &b->dims[b->ndims];
    if ((d->name = strdup(key)) == NULL)
        return mcpd__cfg_oom(c);
    b->ndims++;
    if (v->type != YAML_SEQUENCE_NODE)
        return mcpd__cfg_fail(c, v, "key '%s': a dimension takes a list of patterns, got %s", sub,
                              mcpd__cfg_node_kind(v));
    (void)k;
    return strv(c, v, sub, &d->patterns);
}

static int one_binding(struct ctx *c, yaml_node_t *n, const char *path,
                       struct mcpd_binding_config *b)
{
    char sub[KEY_PATH_MAX];
    yaml_node_pair_t *p;
    yaml_node_t *k, *v;
    int rc;

    if ((b->id = strdup(path)) == NULL)
        return mcpd__cfg_oom(c);
    if ((rc = mcpd__cfg_check_mapping(c, n, path, 64)) != 0)
        return rc;
    b->dims = calloc((size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start) + 1,
                     sizeof(*b->dims));
    if (b->dims == NULL)
        return mcpd__cfg_oom(c);
    for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *key = mcpd__cfg_key_of(c, p, &k);
        if ((rc = mcpd__cfg_take_node(c, p->value, &v)) != 0)
            return rc;
        mcpd__cfg_join(sub, sizeof(sub), path, key);
        if (mcpd__cfg_is_null(v))
            continue;
        if ((rc = binding_key(c, b, key, k, v, sub)) != 0)
            return rc;
    }
    if (b->resource == NULL)
        return mcpd__cfg_fail(c, n, "key '%s': a binding needs 'resource' (a server name or glob)",
                              path);
    return 0;
}

static int bindings(struct ctx *c, yaml_node_t *n, const char *path,
                    struct mcpd_binding_config **out, size_t *count)
{
    char sub[KEY_PATH_MAX];
    yaml_node_t *item;
    size_t len;
    int rc;

    if (n->type != YAML_SEQUENCE_NODE)
        return mcpd__cfg_fail(c, n, "key '%s': expected a list of bindings, got %s", path,
                              mcpd__cfg_node_kind(n));
    len = seq_len(n);
    if (len > MCPD_MAX_CONFIG_ITEMS)
        return mcpd__cfg_fail(c, n, "key '%s': too many bindings (at most %u)", path,
                              MCPD_MAX_CONFIG_ITEMS);
    if ((*out = calloc(len + 1, sizeof(**out))) == NULL)
        return mcpd__cfg_oom(c);
    for (size_t i = 0; i < len; i++) {
        mcpd__cfg_join_index(sub, sizeof(sub), path, i);
        if ((rc = mcpd__cfg_take_node(c, n->data.sequence.items.start[i], &item)) != 0)
            return rc;
        (*count)++;
        if ((rc = one_binding(c, item, sub, &(*out)[i])) != 0)
            return rc;
    }
    return 0;
}

/* ---- roles and bots -----------------------------------------------------------------------------
 */

/* Parses one named entry (a role or a bot) whose name is already stored. */
typedef int (*named_fn)(struct ctx *c, yaml_node_t *v, const char *path, void *item);

/*
 * A mapping of names (^[a-z0-9][a-z0-9-]{0,31}$) to entries of `size`
 * bytes, each starting with its `char *name`, into *arr and *count.
 */
static int named_map(struct ctx *c, yaml_node_t *v, const char *path, void **arr, size_t size,
                     size_t *count, named_fn parse)
{
    char sub[KEY_PATH_MAX];
    yaml_node_pair_t *p;
    yaml_node_t *k, *val;
    int rc;

    if ((rc = mcpd__cfg_check_mapping(c, v, path, MCPD_MAX_CONFIG_ITEMS)) != 0)
        return rc;
    *arr = calloc((size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start) + 1, size);
    if (*arr == NULL)
        return mcpd__cfg_oom(c);
    for (p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        char *item = (char *)*arr + *count * size;
        const char *name = mcpd__cfg_key_of(c, p, &k);
        if ((rc = mcpd__cfg_check_name(c, mcpd__cfg_node_line(k), mcpd__cfg_node_col(k), name)) !=
            0)
            return rc;
        if ((*(char **)(void *)item = strdup(name)) == NULL)
            return mcpd__cfg_oom(c);
        (*count)++;
        mcpd__cfg_join(sub, sizeof(sub), path, name);
        if ((rc = mcpd__cfg_take_node(c, p->value, &val)) != 0 ||
            (rc = parse(c, val, sub, item)) != 0)
            return rc;
    }
    return 0;
}

static int parse_role(struct ctx *c, yaml_node_t *v, const char *path, void *item)
{
    struct mcpd_role_config *r = item;
    return bindings(c, v, path, &r->bindings, &r->nbindings);
}

int mcpd__cfg_f_roles(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                      void *base)
{
    return named_map(c, v, path, (void **)&c->cfg->roles, sizeof(struct mcpd_role_config),
                     &c->cfg->nroles, parse_role);
}

static int parse_bot(struct ctx *c, yaml_node_t *n, const char *path, void *item)
{
    struct mcpd_bot_config *b = item;
    char sub[KEY_PATH_MAX], in[KEY_PATH_MAX + 8];
    yaml_node_pair_t *p;
    yaml_node_t *k, *v;
    int rc;

    if (mcpd__cfg_is_null(n))
        return 0; /* a bot with no bindings sees nothing */
    if ((rc = mcpd__cfg_check_mapping(c, n, path, 8)) != 0)
        return rc;
    for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *key = mcpd__cfg_key_of(c, p, &k);
        if ((rc = mcpd__cfg_take_node(c, p->value, &v)) != 0)
            return rc;
        mcpd__cfg_join(sub, sizeof(sub), path, key);
        if (mcpd__cfg_is_null(v))
            continue;
        if (strcmp(key, "roles") == 0)
            rc = strv(c, v, sub, &b->roles);
        else if (strcmp(key, "bindings") == 0)
            rc = bindings(c, v, sub, &b->bindings, &b->nbindings);
        else
            rc = mcpd__cfg_fail(c, k, "unknown key '%.64s'%s", key,
                                mcpd__cfg_in_path(in, sizeof(in), path));
        if (rc != 0)
            return rc;
    }
    return 0;
}

int mcpd__cfg_f_bots(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base)
{
    return named_map(c, v, path, (void **)&c->cfg->bots, sizeof(struct mcpd_bot_config),
                     &c->cfg->nbots, parse_bot);
}

/* ---- servers.<name>.dimensions ------------------------------------------------------------------
 */

int mcpd__cfg_f_dimensions(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                           void *base)
{
    struct mcpd_server_config *s = base;
    char sub[KEY_PATH_MAX];
    yaml_node_pair_t *p;
    yaml_node_t *k, *val;
    int rc;

    if ((rc = mcpd__cfg_check_mapping(c, v, path, 32)) != 0)
        return rc;
    s->dims = calloc((size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start) + 1,
                     sizeof(*s->dims));
    if (s->dims == NULL)
        return mcpd__cfg_oom(c);
    for (p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        struct mcpd_dim_args_config *d = &s->dims[s->ndims];
        const char *name = mcpd__cfg_key_of(c, p, &k);
        if (strcmp(name, "resource") == 0 || strcmp(name, "tools") == 0 ||
            strcmp(name, "prompts") == 0 || strcmp(name, "uris") == 0 ||
            !mcpd_config_is_valid_name(name))
            return mcpd__cfg_fail(c, k, "key '%s': '%.64s' cannot name a dimension", path, name);
        if ((d->dimension = strdup(name)) == NULL)
            return mcpd__cfg_oom(c);
        s->ndims++;
        mcpd__cfg_join(sub, sizeof(sub), path, name);
        if ((rc = mcpd__cfg_take_node(c, p->value, &val)) != 0 ||
            (rc = strv(c, val, sub, &d->args)) != 0)
            return rc;
        if (d->args.n == 0)
            return mcpd__cfg_fail(c, val, "key '%s': name at least one argument", sub);
    }
    return 0;
}

/* ---- store, audit, auth ------------------------------------------------------------------------
 */

/* A relative store path is taken relative to the configuration file. */
int mcpd__cfg_f_store(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                      void *base)
{
    (void)f;
    (void)base;
    return mcpd__cfg_path(c, v, path, &c->cfg->store_path);
}

/* Durations with a day unit too ("30d"). */
static int f_retain(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                    void *base)
{
    char *s, *end;
    unsigned ms;
    int rc;

    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    errno = 0;
    unsigned long long days = strtoull(s, &end, 10);
    if (end != s && strcmp(end, "d") == 0 && errno == 0 && days > 0 && days <= 36500)
        c->cfg->audit_retain_ms = days * 86400000ull;
    else if (mcpd_config_parse_duration(s, &ms) == 0)
        c->cfg->audit_retain_ms = ms;
    else
        rc = mcpd__cfg_fail(c, v, "key '%s': expected a duration like 30d, 12h or 90m, got '%.64s'",
                            path, s);
    free(s);
    return rc;
}

static int f_max_rows(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                      void *base)
{
    char *s, *end;
    int rc;
    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (end == s || *end || errno || n == 0 || s[0] == '-')
        rc = mcpd__cfg_fail(c, v, "key '%s': expected a positive whole number, got '%.64s'", path,
                            s);
    else
        c->cfg->audit_max_rows = n;
    free(s);
    return rc;
}

static int f_audit_enabled(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                           void *base)
{
    c->cfg->audit_set = true;
    return mcpd__cfg_f_bool(c, v, path, f, base);
}

static int f_sync(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                  void *base)
{
    static const char *const words[] = { "normal", "full", NULL };
    int i, rc = mcpd__cfg_word(c, v, path, words, &i);

    if (rc == 0)
        c->cfg->audit_sync_full = i == 1;
    return rc;
}

static int f_chain(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                   void *base)
{
    static const char *const words[] = { "sha256", "hmac", NULL };
    int i, rc = mcpd__cfg_word(c, v, path, words, &i);

    if (rc == 0)
        c->cfg->audit_chain_hmac = i == 1;
    return rc;
}

const struct field mcpd__cfg_audit_fields[] = {
    { .key = "sync", .fn = f_sync },
    { .key = "chain", .fn = f_chain },
    { .key = "enabled", .fn = f_audit_enabled, .off = offsetof(struct mcpd_config, audit_enabled) },
    { .key = "retain", .fn = f_retain },
    { .key = "max_rows", .fn = f_max_rows },
    { .key = "max_args",
      .fn = mcpd__cfg_f_size,
      .off = offsetof(struct mcpd_config, audit_max_args),
      .min = 256,
      .max = 16u * 1024 * 1024 },
    { .key = NULL },
};

const struct field mcpd__cfg_auth_fields[] = {
    { .key = "default_bot",
      .fn = mcpd__cfg_f_string,
      .off = offsetof(struct mcpd_config, default_bot) },
    { .key = NULL },
};

/* ---- cross-checks ------------------------------------------------------------------------------
 */

static bool dim_declared(const struct mcpd_config *cfg, const char *name)
{
    for (size_t i = 0; i < BUILTIN_DIMS; i++)
        if (strcmp(builtin_dims[i], name) == 0)
            return true;
    for (size_t i = 0; i < cfg->nservers; i++)
        for (size_t j = 0; j < cfg->servers[i].ndims; j++)
            if (strcmp(cfg->servers[i].dims[j].dimension, name) == 0)
                return true;
    return false;
}

static int check_bindings(struct ctx *c, const struct mcpd_binding_config *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < b[i].ndims; j++)
            if (!dim_declared(c->cfg, b[i].dims[j].name))
                return mcpd__cfg_failat(
                    c, 0, 0,
                    "key '%s': unknown key or dimension '%.64s' (dimensions are paths, commands, "
                    "images, or one a server declares under 'dimensions')",
                    b[i].id, b[i].dims[j].name);
    return 0;
}

static const struct mcpd_role_config *find_role(const struct mcpd_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nroles; i++)
        if (strcmp(cfg->roles[i].name, name) == 0)
            return &cfg->roles[i];
    return NULL;
}

int mcpd__cfg_check_policy(struct ctx *c)
{
    struct mcpd_config *cfg = c->cfg;
    bool default_found = cfg->default_bot == NULL;
    int rc;

    for (size_t i = 0; i < cfg->nroles; i++)
        if ((rc = check_bindings(c, cfg->roles[i].bindings, cfg->roles[i].nbindings)) != 0)
            return rc;
    for (size_t i = 0; i < cfg->nbots; i++) {
        const struct mcpd_bot_config *b = &cfg->bots[i];
        if ((rc = check_bindings(c, b->bindings, b->nbindings)) != 0)
            return rc;
        for (size_t j = 0; j < b->roles.n; j++)
            if (find_role(cfg, b->roles.v[j]) == NULL)
                return mcpd__cfg_failat(c, 0, 0, "key 'bots.%s.roles': unknown role '%.64s'",
                                        b->name, b->roles.v[j]);
        if (cfg->default_bot && strcmp(cfg->default_bot, b->name) == 0)
            default_found = true;
    }
    if (!default_found)
        return mcpd__cfg_failat(c, 0, 0, "key 'auth.default_bot': no bot named '%.64s'",
                                cfg->default_bot);
    if (!cfg->audit_set)
        cfg->audit_enabled = cfg->nbots > 0;
    if (cfg->audit_max_args == 0)
        cfg->audit_max_args = 64 * 1024;
    if (cfg->store_path == NULL && (cfg->nbots > 0 || cfg->audit_enabled)) {
        const char *slash = strrchr(c->name, '/');
        int n = slash ? (int)(slash - c->name) : 0;
        if (asprintf(&cfg->store_path, "%.*s%smcpd.db", n, c->name, slash ? "/" : "") < 0) {
            cfg->store_path = NULL;
            return mcpd__cfg_oom(c);
        }
    }
    return 0;
}
