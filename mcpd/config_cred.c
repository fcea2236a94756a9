/*
 * config_cred.c - the credential keys of the configuration:
 *
 *   master_key_file: mcpd.key          # default: <store file>.key; MCPD_MASTER_KEY wins
 *   oauth_providers:
 *     github:
 *       authorize_url: https://...     # authorization code + PKCE (S256)
 *       token_url: https://...         # required
 *       device_authorization_url: https://...   # device flow
 *       client_id: abc                 # required
 *       scopes: [repo, read:org]
 *       callback_url: http://127.0.0.1:8080/oauth/callback   # default: from listen:
 *       client_secret_credential: gh-client   # an api_key credential holding the secret
 *       grant: code                    # code | device | client_credentials (authorize's default)
 *   servers:
 *     x: { url: ..., credential: gh }  # Authorization: Bearer <secret> on every request
 *
 * The client secret is not a YAML value: it is a credential of its own, so
 * it is encrypted in the store like every other secret.
 */
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "store_cred.h"

/* A string into *dst (the old one freed) when ok(s); otherwise "key '<path>': <why>". */
static int checked_string(struct ctx *c, yaml_node_t *v, const char *path, char **dst,
                          bool (*ok)(const char *s), const char *why)
{
    char *s;
    int rc;

    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    if (!ok(s)) {
        free(s);
        return mcpd__cfg_fail(c, v, "key '%s': %s", path, why);
    }
    free(*dst);
    *dst = s;
    return 0;
}

static bool is_http_url(const char *s)
{
    return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

static bool is_grant(const char *s)
{
    return strcmp(s, "code") == 0 || strcmp(s, "device") == 0 ||
           strcmp(s, "client_credentials") == 0;
}

static int f_url(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f, void *base)
{
    return checked_string(c, v, path, AT(base, f->off, char *), is_http_url,
                          "must be an http:// or https:// URL");
}

static int f_cred_name(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                       void *base)
{
    return checked_string(c, v, path, AT(base, f->off, char *), mcpd_cred_name_valid,
                          "a credential name must match ^[a-z0-9][a-z0-9_-]{0,63}$");
}

static int f_grant(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                   void *base)
{
    return checked_string(c, v, path, AT(base, f->off, char *), is_grant,
                          "must be code, device or client_credentials");
}

static int f_scopes(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                    void *base)
{
    struct field lf = { .off = offsetof(struct mcpd_strv, v),
                        .off2 = offsetof(struct mcpd_strv, n) };

    return mcpd__cfg_strlist(c, v, path, &lf, AT(base, f->off, struct mcpd_strv), true);
}

#define PROV(m) offsetof(struct mcpd_oauth_provider_config, m)

static const struct field provider_fields[] = {
    { .key = "authorize_url", .fn = f_url, .off = PROV(authorize_url) },
    { .key = "token_url", .fn = f_url, .off = PROV(token_url) },
    { .key = "device_authorization_url", .fn = f_url, .off = PROV(device_authorization_url) },
    { .key = "client_id", .fn = mcpd__cfg_f_string, .off = PROV(client_id) },
    { .key = "scopes", .fn = f_scopes, .off = PROV(scopes) },
    { .key = "callback_url", .fn = f_url, .off = PROV(callback_url) },
    { .key = "client_secret_credential", .fn = f_cred_name, .off = PROV(client_secret_credential) },
    { .key = "grant", .fn = f_grant, .off = PROV(grant) },
    { .key = NULL },
};

static int parse_provider(struct ctx *c, yaml_node_t *v, const char *path,
                          struct mcpd_oauth_provider_config *p)
{
    int rc;

    p->line = mcpd__cfg_node_line(v);
    p->column = mcpd__cfg_node_col(v);
    if ((rc = mcpd__cfg_walk_mapping(c, v, path, provider_fields, p)) != 0)
        return rc;
    if (p->token_url == NULL)
        return mcpd__cfg_fail(c, v, "key '%s': missing required key 'token_url'", path);
    if (p->client_id == NULL || p->client_id[0] == '\0')
        return mcpd__cfg_fail(c, v, "key '%s': missing required key 'client_id'", path);
    if (p->grant != NULL && strcmp(p->grant, "code") == 0 && p->authorize_url == NULL)
        return mcpd__cfg_fail(c, v, "key '%s': grant code needs authorize_url", path);
    if (p->grant != NULL && strcmp(p->grant, "device") == 0 && p->device_authorization_url == NULL)
        return mcpd__cfg_fail(c, v, "key '%s': grant device needs device_authorization_url", path);
    return 0;
}

int mcpd__cfg_f_oauth_providers(struct ctx *c, yaml_node_t *v, const char *path,
                                const struct field *f, void *base)
{
    struct mcpd_config *cfg = c->cfg;
    char sub[KEY_PATH_MAX];
    yaml_node_pair_t *p;
    yaml_node_t *k, *val;
    int rc;

    (void)f;
    (void)base;
    if ((rc = mcpd__cfg_check_mapping(c, v, path, MCPD_MAX_CONFIG_ITEMS)) != 0)
        return rc;
    cfg->oauth_providers =
        calloc((size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start) + 1,
               sizeof(*cfg->oauth_providers));
    if (cfg->oauth_providers == NULL)
        return mcpd__cfg_oom(c);
    for (p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        struct mcpd_oauth_provider_config *pc = &cfg->oauth_providers[cfg->noauth_providers];
        const char *name = mcpd__cfg_key_of(c, p, &k);

        if ((rc = mcpd__cfg_check_name(c, mcpd__cfg_node_line(k), mcpd__cfg_node_col(k), name)) !=
            0)
            return rc;
        if ((pc->name = strdup(name)) == NULL)
            return mcpd__cfg_oom(c);
        cfg->noauth_providers++;
        mcpd__cfg_join(sub, sizeof(sub), path, name);
        if ((rc = mcpd__cfg_take_node(c, p->value, &val)) != 0)
            return rc;
        if (mcpd__cfg_is_null(val))
            return mcpd__cfg_fail(c, k, "key '%s': missing required key 'token_url'", sub);
        if ((rc = parse_provider(c, val, sub, pc)) != 0)
            return rc;
    }
    return 0;
}

int mcpd__cfg_f_master_key_file(struct ctx *c, yaml_node_t *v, const char *path,
                                const struct field *f, void *base)
{
    (void)f;
    (void)base; /* relative to the config file, like store: */
    return mcpd__cfg_path(c, v, path, &c->cfg->master_key_file);
}

int mcpd__cfg_f_credential(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                           void *base)
{
    struct field cf = { .off = offsetof(struct mcpd_server_config, credential) };

    (void)f;
    return f_cred_name(c, v, path, &cf, base);
}

const struct mcpd_oauth_provider_config *mcpd_config_oauth_provider(const struct mcpd_config *cfg,
                                                                    const char *name)
{
    for (size_t i = 0; name != NULL && i < cfg->noauth_providers; i++)
        if (strcmp(cfg->oauth_providers[i].name, name) == 0)
            return &cfg->oauth_providers[i];
    return NULL;
}

void mcpd__cfg_free_cred(struct mcpd_config *cfg)
{
    for (size_t i = 0; i < cfg->noauth_providers; i++) {
        struct mcpd_oauth_provider_config *p = &cfg->oauth_providers[i];

        free(p->name);
        free(p->authorize_url);
        free(p->token_url);
        free(p->device_authorization_url);
        free(p->client_id);
        for (size_t j = 0; j < p->scopes.n; j++)
            free(p->scopes.v[j]);
        free(p->scopes.v);
        free(p->callback_url);
        free(p->client_secret_credential);
        free(p->grant);
    }
    free(cfg->oauth_providers);
    free(cfg->master_key_file);
}
