/*
 * authz.c - bots, keys, policy and audit for the core (see authz.h).
 *
 * The policy is compiled once from the configuration. Bot keys live in the
 * store; a watcher thread re-reads them when they change (mcpd bots
 * rotate/disable/delete in another process) and hands the new table to the
 * loop, which then closes every session whose key is no longer valid.
 */
#include "authz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "admin_credentials.h"
#include "catalog.h"
#include "crypto.h"
#include "daemon.h"
#include "error.h"
#include "log.h"
#include "policy/policy.h"
#include "router.h"
#include "session.h"
#include "store.h"

struct mcpd_authz {
    struct mcpd_daemon *d;
    struct mcpd_policy *policy;       /* NULL when no bots are configured */
    struct mcpd_policy_resource *res; /* per configured server, same order */
    struct mcpd_policy_dim_args **res_dims;
    const char ***res_args;
    struct mcpd_audit *audit; /* NULL when the audit is off */
    struct mcpd_store_watch *watch;
    struct mcpd_bot_row *bots; /* the store's bot table (owned) */
    size_t nbots;
    struct key_slot *keys; /* KEY_SLOTS recently accepted keys; emptied with the table */
    int closing;
    void (*done)(void *data);
    void *done_data;
};

/*
 * Recently accepted bearer keys, so that a request does not SHA-256 its key
 * again (every HTTP request carries it): the slot is picked by a cheap hash
 * of the key, the key compared in constant time. Only keys of enabled bots
 * are kept; the cache is wiped (OPENSSL_cleanse) when the bot table changes
 * and at close, so a revoked, rotated or disabled key is never answered from it.
 */
#define KEY_SLOTS 64

struct key_slot {
    char key[MCPD_BOT_KEY_LEN];
    unsigned char hash[32];
    const char *bot; /* into az->bots; NULL: empty */
};

/* ---- building the policy from the configuration ------------------------------------------ */

static void free_tmp_bindings(struct mcpd_policy_binding *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((void *)b[i].dims);
    free(b);
}

/* Config bindings -> policy bindings (pointers into the config; the policy copies). */
static struct mcpd_policy_binding *conv_bindings(const struct mcpd_binding_config *c, size_t n)
{
    struct mcpd_policy_binding *b = calloc(n + 1, sizeof(*b));
    if (b == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        struct mcpd_policy_dim *dims = calloc(c[i].ndims + 1, sizeof(*dims));
        if (dims == NULL) {
            free_tmp_bindings(b, i);
            return NULL;
        }
        for (size_t j = 0; j < c[i].ndims; j++) {
            dims[j].name = c[i].dims[j].name;
            dims[j].patterns = (const char *const *)c[i].dims[j].patterns.v;
            dims[j].npatterns = c[i].dims[j].patterns.n;
        }
        b[i].resource = c[i].resource;
        b[i].tools = c[i].has_tools ? (const char *const *)c[i].tools.v : NULL;
        b[i].ntools = c[i].tools.n;
        b[i].prompts = c[i].has_prompts ? (const char *const *)c[i].prompts.v : NULL;
        b[i].nprompts = c[i].prompts.n;
        b[i].uris = c[i].has_uris ? (const char *const *)c[i].uris.v : NULL;
        b[i].nuris = c[i].uris.n;
        b[i].dims = dims;
        b[i].ndims = c[i].ndims;
        b[i].id = c[i].id;
    }
    return b;
}

static int build_policy(const struct mcpd_config *cfg, struct mcpd_policy **out, char *err,
                        size_t errcap)
{
    struct mcpd_policy_bot *bots = calloc(cfg->nbots + 1, sizeof(*bots));
    struct mcpd_policy_role *roles = calloc(cfg->nroles + 1, sizeof(*roles));
    int r = MCPD_ENOMEM;

    if (bots == NULL || roles == NULL)
        goto out;
    for (size_t i = 0; i < cfg->nroles; i++) {
        roles[i].name = cfg->roles[i].name;
        roles[i].nbindings = cfg->roles[i].nbindings;
        if ((roles[i].bindings = conv_bindings(cfg->roles[i].bindings, cfg->roles[i].nbindings)) ==
            NULL)
            goto out;
    }
    for (size_t i = 0; i < cfg->nbots; i++) {
        bots[i].name = cfg->bots[i].name;
        bots[i].roles = (const char *const *)cfg->bots[i].roles.v;
        bots[i].nroles = cfg->bots[i].roles.n;
        bots[i].nbindings = cfg->bots[i].nbindings;
        if ((bots[i].bindings = conv_bindings(cfg->bots[i].bindings, cfg->bots[i].nbindings)) ==
            NULL)
            goto out;
    }
    r = mcpd_policy_new(out, bots, cfg->nbots, roles, cfg->nroles, err, errcap) == 0 ? 0
                                                                                     : MCPD_ECONFIG;
out:
    for (size_t i = 0; roles && i < cfg->nroles; i++)
        free_tmp_bindings((struct mcpd_policy_binding *)roles[i].bindings, roles[i].nbindings);
    for (size_t i = 0; bots && i < cfg->nbots; i++)
        free_tmp_bindings((struct mcpd_policy_binding *)bots[i].bindings, bots[i].nbindings);
    free(bots);
    free(roles);
    if (r == MCPD_ENOMEM)
        snprintf(err, errcap, "out of memory building the policy");
    return r;
}

/* Which arguments each server's dimensions constrain (borrowed from the config). */
static int build_resources(struct mcpd_authz *az)
{
    const struct mcpd_config *cfg = az->d->cfg;
    az->res = calloc(cfg->nservers + 1, sizeof(*az->res));
    az->res_dims = calloc(cfg->nservers + 1, sizeof(*az->res_dims));
    if (az->res == NULL || az->res_dims == NULL)
        return MCPD_ENOMEM;
    for (size_t i = 0; i < cfg->nservers; i++) {
        const struct mcpd_server_config *s = &cfg->servers[i];
        if ((az->res_dims[i] = calloc(s->ndims + 1, sizeof(**az->res_dims))) == NULL)
            return MCPD_ENOMEM;
        for (size_t j = 0; j < s->ndims; j++) {
            az->res_dims[i][j].dimension = s->dims[j].dimension;
            az->res_dims[i][j].args = (const char *const *)s->dims[j].args.v;
            az->res_dims[i][j].nargs = s->dims[j].args.n;
        }
        az->res[i].name = s->name;
        az->res[i].dims = az->res_dims[i];
        az->res[i].ndims = s->ndims;
    }
    return 0;
}

int mcpd_authz_check_config(const struct mcpd_config *cfg, char *err, size_t errcap)
{
    struct mcpd_policy *policy = NULL;
    int r = cfg->nbots > 0 ? build_policy(cfg, &policy, err, errcap) : 0;

    mcpd_policy_free(policy);
    return r;
}

int mcpd_authz_reload(struct mcpd_authz *az, const struct mcpd_config *cfg, char *err,
                      size_t errcap)
{
    struct mcpd_policy *policy = NULL;
    struct mcpd_session *s, *next;
    int r;

    if ((cfg->nbots > 0) != (az->policy != NULL)) {
        snprintf(err, errcap,
                 "bots: adding the first bot or removing the last one turns "
                 "authentication on or off, which takes a restart");
        return MCPD_ECONFIG;
    }
    if (az->policy == NULL)
        return 0;
    if ((r = build_policy(cfg, &policy, err, errcap)) != 0)
        return r;
    mcpd_policy_free(az->policy);
    az->policy = policy;
    if (az->keys) /* a cached key may belong to a bot the new policy lacks */
        OPENSSL_cleanse(az->keys, KEY_SLOTS * sizeof(*az->keys));
    for (s = az->d->sessions; s; s = next) {
        next = s->next;
        if (s->bot[0] && !mcpd_policy_has_bot(policy, s->bot)) {
            LOG_INFO("authz", "session=%s bot=%s: no longer configured; closing", s->id, s->bot);
            mcpd_session_close(s);
        }
    }
    return 0;
}

/* ---- bot keys ------------------------------------------------------------------------------ */

/* A new bot table: sessions whose key is gone, rotated or disabled are closed. */
static void on_bots(struct mcpd_bot_row *rows, size_t n, void *data)
{
    struct mcpd_authz *az = data;
    struct mcpd_session *s, *next;
    if (az->keys)
        OPENSSL_cleanse(az->keys, KEY_SLOTS * sizeof(*az->keys));
    free(az->bots);
    az->bots = rows;
    az->nbots = n;
    for (s = az->d->sessions; s; s = next) {
        next = s->next;
        if (s->has_key && !mcpd_authz_key_valid(az, s->bot, s->key_hash)) {
            LOG_INFO("authz", "session=%s bot=%s: its key was revoked; closing", s->id, s->bot);
            mcpd_session_close(s);
        }
    }
}

const char *mcpd_authz_bot_for_key(struct mcpd_authz *az, const char *key,
                                   unsigned char key_hash[32])
{
    size_t len = strlen(key);
    struct key_slot *slot = NULL;
    uint32_t h = 2166136261u; /* FNV-1a: only picks the slot */

    if (len == MCPD_BOT_KEY_LEN && az->keys) {
        for (size_t i = 0; i < len; i++)
            h = (h ^ (unsigned char)key[i]) * 16777619u;
        slot = &az->keys[h % KEY_SLOTS];
        if (CRYPTO_memcmp(slot->key, key, MCPD_BOT_KEY_LEN) == 0 && slot->bot != NULL) {
            memcpy(key_hash, slot->hash, 32);
            return slot->bot;
        }
    }
    mcpd_store_key_hash(key_hash, key, len);
    if (len != MCPD_BOT_KEY_LEN || strncmp(key, MCPD_BOT_KEY_PREFIX, 3) != 0)
        return NULL;
    for (size_t i = 0; i < az->nbots; i++) {
        if (CRYPTO_memcmp(az->bots[i].key_hash, key_hash, 32) != 0)
            continue;
        /* a key in the store for a bot the configuration no longer has opens nothing */
        if (az->bots[i].disabled || !mcpd_authz_has_bot(az, az->bots[i].name))
            return NULL;
        if (slot != NULL) {
            memcpy(slot->key, key, MCPD_BOT_KEY_LEN);
            memcpy(slot->hash, key_hash, 32);
            slot->bot = az->bots[i].name;
        }
        return az->bots[i].name;
    }
    return NULL;
}

bool mcpd_authz_key_valid(struct mcpd_authz *az, const char *bot, const unsigned char key_hash[32])
{
    for (size_t i = 0; i < az->nbots; i++)
        if (strcmp(az->bots[i].name, bot) == 0)
            return !az->bots[i].disabled && CRYPTO_memcmp(az->bots[i].key_hash, key_hash, 32) == 0;
    return false;
}

bool mcpd_authz_has_bot(const struct mcpd_authz *az, const char *bot)
{
    return az->policy && mcpd_policy_has_bot(az->policy, bot);
}

/* ---- life cycle ------------------------------------------------------------------------------ */

/* The audit ran callbacks (in its prepare handle): send what they queued now. */
static void on_acked(void *d)
{
    mcpd__daemon_run_deferred(d);
}

int mcpd_authz_new(struct mcpd_authz **out, struct mcpd_daemon *d, char *err, size_t errcap)
{
    const struct mcpd_config *cfg = d->cfg;
    struct mcpd_authz *az = calloc(1, sizeof(*az));
    int r;

    *out = NULL;
    if (az == NULL)
        return MCPD_ENOMEM;
    az->d = d;
    if ((r = build_resources(az)) != 0) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    if (cfg->nbots > 0 && (r = build_policy(cfg, &az->policy, err, errcap)) != 0)
        goto fail;
    if (cfg->nbots > 0 && (az->keys = calloc(KEY_SLOTS, sizeof(*az->keys))) == NULL) {
        r = MCPD_ENOMEM;
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    if (cfg->nbots > 0 && cfg->store_path &&
        (r = mcpd_store_watch(&az->watch, d->loop, cfg->store_path, 1000, on_bots, az, err,
                              errcap)) != 0)
        goto fail;
    if (cfg->audit_enabled) {
        unsigned char key[32];
        char *key_file = NULL;
        struct mcpd_audit_options o = {
            .path = cfg->store_path,
            .max_args_bytes = cfg->audit_max_args,
            .queue_cap = 65536,
            .retain_ms = (int64_t)cfg->audit_retain_ms,
            .retain_rows = (int64_t)cfg->audit_max_rows,
            .sync_full = cfg->audit_sync_full,
            .acked = on_acked,
            .acked_arg = d,
        };
        if (cfg->audit_chain_hmac) {
            /* the key file is made on first use, like credentials', but never for a store
             * that is keyed already: its key must be the one it was chained with */
            bool keyed = mcpd_audit_store_keyed(cfg->store_path);

            if ((key_file = mcpd_admin_key_file(cfg, cfg->store_path)) == NULL) {
                snprintf(err, errcap, "out of memory");
                r = MCPD_ENOMEM;
                goto fail;
            }
            r = mcpd_audit_chain_key(key, key_file, !keyed, err, errcap);
            free(key_file);
            if (r != 0 && keyed) {
                char why[400];
                snprintf(why, sizeof(why), "%s", err);
                snprintf(err, errcap, "the audit log is chained with HMAC, and its key: %s", why);
            }
            if (r != 0)
                goto fail;
            o.chain_key = key;
        }
        r = mcpd_audit_open(&az->audit, d->loop, &o, err, errcap);
        mcpd_crypto_wipe(key, sizeof(key));
        if (r != 0)
            goto fail;
    }
    *out = az;
    return 0;
fail:
    mcpd_authz_close(az, NULL, NULL);
    return r;
}

static void close_step(void *data)
{
    struct mcpd_authz *az = data;
    if (--az->closing > 0)
        return;
    for (size_t i = 0; az->res_dims && i < az->d->cfg->nservers; i++)
        free(az->res_dims[i]);
    free(az->res_dims);
    free(az->res);
    mcpd_policy_free(az->policy);
    if (az->keys)
        OPENSSL_cleanse(az->keys, KEY_SLOTS * sizeof(*az->keys));
    free(az->keys);
    free(az->bots);
    if (az->done)
        az->done(az->done_data);
    free(az);
}

void mcpd_authz_close(struct mcpd_authz *az, void (*done)(void *data), void *data)
{
    if (az == NULL) {
        if (done)
            done(data);
        return;
    }
    az->done = done;
    az->done_data = data;
    az->closing = 1;
    if (az->audit) {
        az->closing++;
        mcpd_audit_close(az->audit, close_step, az);
        az->audit = NULL;
    }
    if (az->watch) {
        az->closing++;
        mcpd_store_watch_close(az->watch, close_step, az);
        az->watch = NULL;
    }
    close_step(az);
}

/* ---- decisions ---------------------------------------------------------------------------- */

bool mcpd_authz_active(const struct mcpd_authz *az)
{
    return az && az->policy;
}

bool mcpd_authz_auditing(const struct mcpd_authz *az)
{
    return az && az->audit;
}

bool mcpd_authz_tool_visible(const struct mcpd_authz *az, const char *bot, const char *resource,
                             const char *tool)
{
    return !mcpd_authz_active(az) || mcpd_policy_tool_visible(az->policy, bot, resource, tool);
}

bool mcpd_authz_prompt_visible(const struct mcpd_authz *az, const char *bot, const char *resource,
                               const char *prompt)
{
    return !mcpd_authz_active(az) || mcpd_policy_prompt_visible(az->policy, bot, resource, prompt);
}

bool mcpd_authz_uri_visible(const struct mcpd_authz *az, const char *bot, const char *resource,
                            const char *uri)
{
    return !mcpd_authz_active(az) || mcpd_policy_uri_visible(az->policy, bot, resource, uri);
}

int mcpd_authz_check_call(const struct mcpd_authz *az, const char *bot,
                          const struct mcpd_upstream *up, const char *tool, json_t *args,
                          struct mcpd_policy_decision *d)
{
    const struct mcpd_policy_resource *res = NULL;
    size_t i = (size_t)(up->cfg - az->d->cfg->servers);
    if (!mcpd_authz_active(az))
        return 0;
    if (i < az->d->cfg->nservers)
        res = &az->res[i];
    return mcpd_policy_check_call(az->policy, bot, res, tool, args, d);
}

int mcpd_authz_check_entry(const struct mcpd_authz *az, const char *bot,
                           const struct mcpd_catalog_entry *e, json_t *args,
                           struct mcpd_policy_decision *d)
{
    enum { MAX_DIMS = 16, MAX_ARGS = 16 };
    struct mcpd_policy_dim_args dims[MAX_DIMS];
    const char *argv[MAX_DIMS][MAX_ARGS];
    struct mcpd_policy_resource res = { .name = e->resource, .dims = dims };
    const char *dim;
    json_t *list;

    if (!e->agent)
        return mcpd_authz_check_call(az, bot, e->owner, e->tool, args, d);
    if (!mcpd_authz_active(az))
        return 0;
    /* validated when the catalog took the tool (agents.c); re-checked, failing closed */
    json_object_foreach (e->dims, dim, list) {
        size_t i;
        json_t *a;
        if (res.ndims == MAX_DIMS || !json_is_array(list) || json_array_size(list) > MAX_ARGS)
            return mcpd_policy_check_call(az->policy, bot, NULL, e->tool, args, d);
        dims[res.ndims].dimension = dim;
        dims[res.ndims].args = argv[res.ndims];
        dims[res.ndims].nargs = json_array_size(list);
        json_array_foreach (list, i, a) {
            if (!json_is_string(a))
                return mcpd_policy_check_call(az->policy, bot, NULL, e->tool, args, d);
            argv[res.ndims][i] = json_string_value(a);
        }
        res.ndims++;
    }
    return mcpd_policy_check_call(az->policy, bot, &res, e->tool, args, d);
}

int mcpd_authz_check_tool(const struct mcpd_authz *az, const char *bot,
                          const struct mcpd_catalog_entry *e, json_t *args,
                          struct mcpd_policy_decision *d, bool *visible)
{
    int r = mcpd_authz_check_entry(az, bot, e, args, d);
    const char *checked = e->resource;

    if (mcpd_authz_active(az) && !e->agent) {
        const struct mcpd_upstream *up = e->owner;
        size_t i = (size_t)(up->cfg - az->d->cfg->servers);
        checked = i < az->d->cfg->nservers ? az->res[i].name : NULL;
    }
    /* bound: a binding matched the resource checked and the tool, so visible
       when that resource is the entry's (it is, except for odd configurations) */
    if (mcpd_authz_active(az) && d->bound && checked && e->resource &&
        strcmp(checked, e->resource) == 0)
        *visible = true;
    else
        *visible = mcpd_authz_tool_visible(az, bot, e->resource, e->tool);
    return r;
}

int mcpd_authz_audit(struct mcpd_authz *az, const struct mcpd_audit_record *r, mcpd_audit_cb cb,
                     void *data)
{
    if (!mcpd_authz_auditing(az))
        return MCPD_ECLOSED;
    return mcpd_audit_submit(az->audit, r, cb, data);
}

int mcpd_authz_audit_outcome(struct mcpd_authz *az, int64_t call_id, const char *status,
                             int64_t latency_us)
{
    if (!mcpd_authz_auditing(az))
        return MCPD_ECLOSED;
    return mcpd_audit_outcome(az->audit, call_id, status, latency_us);
}
