/*
 * config_plugin.c - the `plugins:` section of mcpd.yaml (see manifest.h):
 *
 *   plugins:
 *     github:                              # resource name
 *       source: plugins/github             # a directory or a .mst archive (relative to
 *                                          #   the config file)
 *       config: { api_base: "https://api.github.com" }   # checked against the schema
 *       credential: gh                     # mcpd credentials name (api_key, bearer, oauth2)
 *       allowedOperations:                 # absent: every operation
 *         issue.read: { alias: get_issue }
 *         pulls.list:                      # null: exposed under its own name
 *       egress: { allowedHosts: ["api.github.com"], allowPrivate: false }
 *       timeout: 30s
 *       enabled: true
 *
 * After the whole document, each plugin becomes one server entry
 * (mcpd_server_config.plugin set): the catalog, the policy's dimensions and
 * the adapter factory see it like any other resource.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_int.h"
#include "error.h"
#include "limits.h"
#include "manifest.h"
#include "net/egress.h"

#define PL(m) offsetof(struct mcpd_plugin_config, m)

static int f_json_object(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                         void *base)
{
    json_t **slot = AT(base, f->off, json_t *);
    int rc;
    if (v->type != YAML_MAPPING_NODE)
        return mcpd__cfg_fail(c, v, "key '%s': expected a mapping, got %s", path,
                              mcpd__cfg_node_kind(v));
    json_decref(*slot);
    *slot = NULL;
    rc = mcpd__cfg_to_json(c, v, path, 0, slot);
    return rc;
}

static bool is_tool_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MCPD_MAX_NAME)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static int f_allowed_ops(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                         void *base)
{
    struct mcpd_plugin_config *pl = base;
    char sub[KEY_PATH_MAX], sub2[KEY_PATH_MAX];
    yaml_node_t *k, *val;
    int rc;
    (void)f;

    if ((rc = mcpd__cfg_check_mapping(c, v, path, MCPD_MAX_PLUGIN_OPS)) != 0)
        return rc;
    pl->all_ops = false;
    pl->aliases = calloc((size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start) + 1,
                         sizeof(*pl->aliases));
    if (pl->aliases == NULL)
        return mcpd__cfg_oom(c);
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        struct mcpd_kv *kv = &pl->aliases[pl->naliases];
        const char *op = mcpd__cfg_key_of(c, p, &k);
        if ((kv->key = strdup(op)) == NULL)
            return mcpd__cfg_oom(c);
        pl->naliases++;
        mcpd__cfg_join(sub, sizeof(sub), path, op);
        if ((rc = mcpd__cfg_take_node(c, p->value, &val)) != 0)
            return rc;
        if (!mcpd__cfg_is_null(val)) {
            yaml_node_t *ak, *av;
            if ((rc = mcpd__cfg_check_mapping(c, val, sub, 1)) != 0)
                return rc;
            if (val->data.mapping.pairs.top == val->data.mapping.pairs.start)
                continue;
            const char *key = mcpd__cfg_key_of(c, val->data.mapping.pairs.start, &ak);
            if (strcmp(key, "alias") != 0)
                return mcpd__cfg_fail(c, ak, "unknown key '%.64s' in '%s' (only 'alias')", key,
                                      sub);
            mcpd__cfg_join(sub2, sizeof(sub2), sub, "alias");
            if ((rc = mcpd__cfg_take_node(c, val->data.mapping.pairs.start->value, &av)) != 0 ||
                (rc = mcpd__cfg_scalar(c, av, sub2, &kv->value)) != 0)
                return rc;
            if (!is_tool_name(kv->value))
                return mcpd__cfg_fail(c, av, "key '%s': an alias uses [A-Za-z0-9_-], 1-%d chars",
                                      sub2, MCPD_MAX_NAME);
        }
    }
    return 0;
}

static int f_hosts(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                   void *base)
{
    struct mcpd_plugin_config *pl = base;
    int rc;
    if ((rc = mcpd__cfg_strlist(c, v, path, f, base, true)) != 0)
        return rc;
    if (pl->nallowed_hosts > MCPD_MAX_EGRESS_HOSTS)
        return mcpd__cfg_fail(c, v, "key '%s': at most %u hosts", path, MCPD_MAX_EGRESS_HOSTS);
    for (size_t i = 0; i < pl->nallowed_hosts; i++)
        if (!mcpd_egress_pattern_is_valid(pl->allowed_hosts[i]))
            return mcpd__cfg_fail(c, v,
                                  "key '%s': '%.64s' is not a host name glob (labels of "
                                  "[A-Za-z0-9-] or '*')",
                                  path, pl->allowed_hosts[i]);
    return 0;
}

/* egress.allowPrivateCidrs: address ranges let through although not public. */
static int f_cidrs(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                   void *base)
{
    struct mcpd_plugin_config *pl = base;
    struct {
        char **list;
        size_t n;
    } tmp = { NULL, 0 };
    static const struct field as_list = { .off = 0, .off2 = sizeof(char **) };
    int rc;

    (void)f;
    if ((rc = mcpd__cfg_strlist(c, v, path, &as_list, &tmp, true)) != 0) {
        mcpd__cfg_free_strv(tmp.list, tmp.n); /* what it took before the error */
        return rc;
    }
    free(pl->private_cidrs); /* a key given twice: the last one counts */
    pl->private_cidrs = NULL;
    pl->nprivate_cidrs = 0;
    if (tmp.n > MCPD_MAX_EGRESS_HOSTS)
        rc = mcpd__cfg_fail(c, v, "key '%s': at most %u ranges", path, MCPD_MAX_EGRESS_HOSTS);
    else if (tmp.n > 0 && (pl->private_cidrs = calloc(tmp.n, sizeof(*pl->private_cidrs))) == NULL)
        rc = mcpd__cfg_oom(c);
    for (size_t i = 0; rc == 0 && i < tmp.n; i++) {
        if (!mcpd_egress_cidr_parse(tmp.list[i], &pl->private_cidrs[i]))
            rc = mcpd__cfg_fail(c, v,
                                "key '%s': '%.64s' is not an address range (a.b.c.d/n or "
                                "IPv6/n, with no host bits set)",
                                path, tmp.list[i]);
        else
            pl->nprivate_cidrs = i + 1;
    }
    mcpd__cfg_free_strv(tmp.list, tmp.n);
    return rc;
}

static const struct field egress_fields[] = {
    { .key = "allowedHosts", .fn = f_hosts, .off = PL(allowed_hosts), .off2 = PL(nallowed_hosts) },
    { .key = "allowPrivate", .fn = mcpd__cfg_f_bool, .off = PL(allow_private) },
    { .key = "allowPrivateCidrs", .fn = f_cidrs },
    { .key = NULL },
};

static int f_egress(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                    void *base)
{
    (void)f;
    return mcpd__cfg_walk_mapping(c, v, path, egress_fields, base);
}

static const struct field plugin_fields[] = {
    { .key = "source", .fn = mcpd__cfg_f_string, .off = PL(source) },
    { .key = "config", .fn = f_json_object, .off = PL(config) },
    { .key = "credential", .fn = mcpd__cfg_f_string, .off = PL(credential) },
    { .key = "allowedOperations", .fn = f_allowed_ops },
    { .key = "egress", .fn = f_egress },
    { .key = "enabled", .fn = mcpd__cfg_f_bool, .off = PL(enabled) },
    { .key = "timeout",
      .fn = mcpd__cfg_f_duration,
      .off = PL(timeout_ms),
      .min = 1,
      .max = MCPD_MAX_CALL_TIMEOUT_MS },
    { .key = NULL },
};

/* source relative to the config file's directory, made absolute. */
static int resolve_source(struct ctx *c, struct mcpd_plugin_config *pl, char **out)
{
    const char *slash = strrchr(c->name, '/');
    char joined[PATH_MAX * 2], real[PATH_MAX];

    if (pl->source[0] == '/' || slash == NULL)
        snprintf(joined, sizeof(joined), "%s", pl->source);
    else
        snprintf(joined, sizeof(joined), "%.*s/%s", (int)(slash - c->name), c->name, pl->source);
    if (realpath(joined, real) == NULL)
        return mcpd__cfg_failat(c, pl->line, pl->column, "key 'plugins.%s.source': %s: %s",
                                pl->name, joined, strerror(errno));
    if ((*out = strdup(real)) == NULL)
        return mcpd__cfg_oom(c);
    return 0;
}

static int load_package(struct ctx *c, struct mcpd_plugin_config *pl)
{
    struct stat st;
    char err[400];
    int rc;

    if (pl->source == NULL)
        return mcpd__cfg_failat(c, pl->line, pl->column,
                                "key 'plugins.%s': missing required key 'source'", pl->name);
    {
        char *abs;
        if ((rc = resolve_source(c, pl, &abs)) != 0)
            return rc;
        free(pl->source);
        pl->source = abs;
    }
    if (stat(pl->source, &st) != 0)
        return mcpd__cfg_failat(c, pl->line, pl->column, "key 'plugins.%s.source': %s", pl->name,
                                strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        if ((pl->dir = strdup(pl->source)) == NULL)
            return mcpd__cfg_oom(c);
    } else {
        char tmpl[PATH_MAX];
        if ((rc = mcpd_mst_tempdir(tmpl, sizeof(tmpl))) != 0)
            return mcpd__cfg_failat(c, pl->line, pl->column,
                                    "plugins.%s: cannot create an extraction directory: %s",
                                    pl->name, strerror(-rc));
        if ((pl->dir = strdup(tmpl)) == NULL)
            return mcpd__cfg_oom(c);
        pl->extracted = true;
        if ((rc = mcpd_mst_extract(pl->source, pl->dir, err, sizeof(err))) != 0)
            return rc == MCPD_ENOMEM
                       ? mcpd__cfg_oom(c)
                       : mcpd__cfg_failat(c, pl->line, pl->column, "plugins.%s: %s: %s", pl->name,
                                          pl->source, err);
    }
    if ((rc = mcpd_manifest_load(&pl->manifest, pl->dir, c->diag)) != 0)
        return rc; /* diag names the manifest file, line and column */
    return 0;
}

static int check_plugin(struct ctx *c, struct mcpd_plugin_config *pl)
{
    const struct mcpd_manifest *m = pl->manifest;
    char err[200];
    bool has_auth = false;

    if (pl->config == NULL && (pl->config = json_object()) == NULL)
        return mcpd__cfg_oom(c);
    if (m->config_schema &&
        mcpd_manifest_check_schema(m->config_schema, pl->config, err, sizeof(err)) != NULL)
        return mcpd__cfg_failat(c, pl->line, pl->column, "key 'plugins.%s.config': %s", pl->name,
                                err);
    for (size_t i = 0; i < m->nauth; i++)
        has_auth |= m->auth[i].type != MCPD_AUTH_NONE;
    if (pl->credential && !has_auth)
        return mcpd__cfg_failat(c, pl->line, pl->column,
                                "key 'plugins.%s.credential': plugin '%s' declares no auth method",
                                pl->name, m->name);
    if (m->exec_command) {
        if (pl->credential)
            return mcpd__cfg_failat(c, pl->line, pl->column,
                                    "key 'plugins.%s.credential': credentials are for declarative "
                                    "plugins ('%s' is an exec plugin)",
                                    pl->name, m->name);
        if (pl->naliases || pl->nallowed_hosts)
            return mcpd__cfg_failat(c, pl->line, pl->column,
                                    "plugins.%s: allowedOperations and egress are for declarative "
                                    "plugins ('%s' is an exec plugin)",
                                    pl->name, m->name);
        return 0;
    }
    for (size_t i = 0; i < pl->naliases; i++)
        if (mcpd_manifest_find_op(m, pl->aliases[i].key) == NULL)
            return mcpd__cfg_failat(c, pl->line, pl->column,
                                    "key 'plugins.%s.allowedOperations': plugin '%s' has no "
                                    "operation '%.64s'",
                                    pl->name, m->name, pl->aliases[i].key);
    if (pl->nallowed_hosts == 0)
        return mcpd__cfg_failat(c, pl->line, pl->column,
                                "key 'plugins.%s.egress.allowedHosts': required for a "
                                "declarative plugin (the hosts its operations may reach)",
                                pl->name);
    return 0;
}

int mcpd__cfg_f_plugins(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                        void *base)
{
    struct mcpd_config *cfg = base;
    char sub[KEY_PATH_MAX];
    yaml_node_t *k, *val;
    int rc;
    (void)f;

    if ((rc = mcpd__cfg_check_mapping(c, v, path, MCPD_MAX_SERVERS)) != 0)
        return rc;
    cfg->plugins = calloc((size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start) + 1,
                          sizeof(*cfg->plugins));
    if (cfg->plugins == NULL)
        return mcpd__cfg_oom(c);
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        struct mcpd_plugin_config *pl = &cfg->plugins[cfg->nplugins];
        const char *name = mcpd__cfg_key_of(c, p, &k);
        if ((rc = mcpd__cfg_check_name(c, mcpd__cfg_node_line(k), mcpd__cfg_node_col(k), name)) !=
            0)
            return rc;
        if ((pl->name = strdup(name)) == NULL)
            return mcpd__cfg_oom(c);
        cfg->nplugins++;
        pl->all_ops = true;
        pl->enabled = true;
        pl->timeout_ms = MCPD_CALL_TIMEOUT_MS;
        pl->line = mcpd__cfg_node_line(k);
        pl->column = mcpd__cfg_node_col(k);
        mcpd__cfg_join(sub, sizeof(sub), path, name);
        if ((rc = mcpd__cfg_take_node(c, p->value, &val)) != 0)
            return rc;
        if (mcpd__cfg_is_null(val))
            return mcpd__cfg_fail(c, val, "key '%s': expected a mapping with 'source'", sub);
        if ((rc = mcpd__cfg_walk_mapping(c, val, sub, plugin_fields, pl)) != 0)
            return rc;
        if ((rc = load_package(c, pl)) != 0 || (rc = check_plugin(c, pl)) != 0)
            return rc;
    }
    return 0;
}

static int copy_dims(struct ctx *c, struct mcpd_server_config *s, const struct mcpd_manifest *m)
{
    if (m->ndims == 0)
        return 0;
    if ((s->dims = calloc(m->ndims, sizeof(*s->dims))) == NULL)
        return mcpd__cfg_oom(c);
    for (size_t i = 0; i < m->ndims; i++) {
        struct mcpd_dim_args_config *d = &s->dims[i];
        if ((d->dimension = strdup(m->dims[i].dimension)) == NULL ||
            (d->args.v = calloc(m->dims[i].args.n + 1, sizeof(char *))) == NULL)
            return mcpd__cfg_oom(c);
        s->ndims++;
        for (size_t j = 0; j < m->dims[i].args.n; j++) {
            if ((d->args.v[j] = strdup(m->dims[i].args.v[j])) == NULL)
                return mcpd__cfg_oom(c);
            d->args.n++;
        }
    }
    return 0;
}

static int exec_server(struct ctx *c, struct mcpd_server_config *s,
                       const struct mcpd_plugin_config *pl)
{
    const struct mcpd_manifest *m = pl->manifest;
    size_t n = strlen(pl->dir) + strlen(m->exec_command) + 2;

    if ((s->command = malloc(n)) == NULL || (s->cwd = strdup(pl->dir)) == NULL)
        return mcpd__cfg_oom(c);
    snprintf(s->command, n, "%s/%s", pl->dir, m->exec_command);
    if (access(s->command, X_OK) != 0)
        return mcpd__cfg_failat(c, pl->line, pl->column,
                                "plugins.%s: exec command '%s' is not an executable file", pl->name,
                                m->exec_command);
    if ((s->args = calloc(m->nexec_args + 1, sizeof(char *))) == NULL)
        return mcpd__cfg_oom(c);
    for (size_t i = 0; i < m->nexec_args; i++) {
        if ((s->args[i] = strdup(m->exec_args[i])) == NULL)
            return mcpd__cfg_oom(c);
        s->nargs++;
    }
    return 0;
}

int mcpd__cfg_finish_plugins(struct ctx *c)
{
    struct mcpd_config *cfg = c->cfg;
    struct mcpd_server_config *grown;
    int rc;

    if (cfg->nplugins == 0)
        return 0;
    if (cfg->nservers + cfg->nplugins > MCPD_MAX_SERVERS)
        return mcpd__cfg_failat(c, 0, 0, "more than %u servers and plugins", MCPD_MAX_SERVERS);
    for (size_t i = 0; i < cfg->nplugins; i++)
        for (size_t j = 0; j < cfg->nservers; j++)
            if (strcmp(cfg->plugins[i].name, cfg->servers[j].name) == 0)
                return mcpd__cfg_failat(c, cfg->plugins[i].line, cfg->plugins[i].column,
                                        "key 'plugins.%s': a server has that name already (%d:%d)",
                                        cfg->plugins[i].name, cfg->servers[j].line,
                                        cfg->servers[j].column);
    grown = realloc(cfg->servers, (cfg->nservers + cfg->nplugins) * sizeof(*grown));
    if (grown == NULL)
        return mcpd__cfg_oom(c);
    cfg->servers = grown;
    for (size_t i = 0; i < cfg->nplugins; i++) {
        const struct mcpd_plugin_config *pl = &cfg->plugins[i];
        struct mcpd_server_config *s = &cfg->servers[cfg->nservers];
        memset(s, 0, sizeof(*s));
        if ((s->name = strdup(pl->name)) == NULL)
            return mcpd__cfg_oom(c);
        cfg->nservers++;
        s->timeout_ms = pl->timeout_ms;
        s->connect_timeout_ms = 5000;
        s->tls_verify = true;
        s->enabled = pl->enabled;
        s->line = pl->line;
        s->column = pl->column;
        s->plugin = pl;
        if ((rc = copy_dims(c, s, pl->manifest)) != 0)
            return rc;
        if (pl->credential && (s->credential = strdup(pl->credential)) == NULL)
            return mcpd__cfg_oom(c);
        if (pl->manifest->exec_command && (rc = exec_server(c, s, pl)) != 0)
            return rc;
    }
    return 0;
}

void mcpd__cfg_free_plugins(struct mcpd_config *cfg)
{
    for (size_t i = 0; i < cfg->nplugins; i++) {
        struct mcpd_plugin_config *pl = &cfg->plugins[i];
        if (pl->extracted)
            mcpd_mst_remove_tree(pl->dir);
        free(pl->name);
        free(pl->source);
        free(pl->dir);
        mcpd_manifest_free(pl->manifest);
        json_decref(pl->config);
        free(pl->credential);
        for (size_t j = 0; j < pl->naliases; j++) {
            free(pl->aliases[j].key);
            free(pl->aliases[j].value);
        }
        free(pl->aliases);
        for (size_t j = 0; j < pl->nallowed_hosts; j++)
            free(pl->allowed_hosts[j]);
        free(pl->allowed_hosts);
        free(pl->private_cidrs);
    }
    free(cfg->plugins);
    cfg->plugins = NULL;
    cfg->nplugins = 0;
}
