/*
 * admin.c - bots, audit, catalog and policy commands of the CLI (see
 * admin.h). The store and audit calls here are synchronous: these commands
 * run without an event loop (bots, audit) or after the daemon has built
 * its catalog and before it serves anyone (catalog, explain).
 */
#include "admin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "admin_credentials.h"
#include "agents.h"
#include "authz.h"
#include "catalog.h"
#include "daemon.h"
#include "error.h"
#include "policy/policy.h"
#include "store.h"
#include "upstream.h"

char *mcpd_admin_store_path(const struct mcpd_config *cfg)
{
    const char *slash;
    char *p;
    if (cfg->store_path)
        return strdup(cfg->store_path);
    slash = strrchr(cfg->path, '/');
    if (asprintf(&p, "%.*s%smcpd.db", slash ? (int)(slash - cfg->path) : 0, cfg->path,
                 slash ? "/" : "") < 0)
        return NULL;
    return p;
}

void mcpd_admin_time_text(char *buf, size_t cap, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0) {
        snprintf(buf, cap, "-");
        return;
    }
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_time(int64_t ms)
{
    char buf[32];

    mcpd_admin_time_text(buf, sizeof(buf), ms);
    printf("%-20s ", buf);
}

/* The configuration's store, opened; NULL once stderr says why. */
static struct mcpd_store *open_store(const struct mcpd_config *cfg)
{
    char *path = mcpd_admin_store_path(cfg), err[256];
    struct mcpd_store *st = NULL;

    if (path == NULL || mcpd_store_open(&st, path, err, sizeof(err)) != 0)
        fprintf(stderr, "mcpd: %s\n", path ? err : "out of memory");
    free(path);
    return st;
}

/* ---- bots and agents: keyed identities, the same verbs --------------------------------------- */

struct keyed_cli {
    const char *noun, *plural; /* "bot", "bots" */
    int (*list)(struct mcpd_store *st, bool as_json);
    int (*create)(struct mcpd_store *st, const char *name, char *key_out, char *err, size_t errcap);
    int (*rotate)(struct mcpd_store *st, const char *name, char *key_out, char *err, size_t errcap);
    int (*set_disabled)(struct mcpd_store *st, const char *name, bool disabled, char *err,
                        size_t errcap);
    int (*delete)(struct mcpd_store *st, const char *name, char *err, size_t errcap);
};

_Static_assert(MCPD_BOT_KEY_LEN == MCPD_AGENT_KEY_LEN, "one key buffer serves bots and agents");

static int keyed_command(const struct mcpd_config *cfg, const struct keyed_cli *k, const char *verb,
                         const char *name, bool as_json)
{
    char err[256], key[MCPD_BOT_KEY_LEN + 1];
    struct mcpd_store *st = open_store(cfg);
    int r = 0, rc = 1;

    if (st == NULL)
        return 1;
    if (strcmp(verb, "list") == 0) {
        rc = k->list(st, as_json);
        goto out;
    }
    if (strcmp(verb, "create") == 0)
        r = k->create(st, name, key, err, sizeof(err));
    else if (strcmp(verb, "rotate") == 0)
        r = k->rotate(st, name, key, err, sizeof(err));
    else if (strcmp(verb, "disable") == 0 || strcmp(verb, "enable") == 0)
        r = k->set_disabled(st, name, strcmp(verb, "disable") == 0, err, sizeof(err));
    else if (strcmp(verb, "delete") == 0)
        r = k->delete (st, name, err, sizeof(err));
    else {
        fprintf(stderr, "mcpd: unknown %s verb '%s' (create|list|rotate|disable|enable|delete)\n",
                k->plural, verb);
        rc = 2;
        goto out;
    }
    if (r != 0) {
        fprintf(stderr, "mcpd: %s\n", err);
        goto out;
    }
    if (strcmp(verb, "create") == 0 || strcmp(verb, "rotate") == 0) {
        /* the key goes to stdout alone, once; nothing else keeps it */
        printf("%s\n", key);
        fflush(stdout);
        OPENSSL_cleanse(key, sizeof(key));
        fprintf(stderr, "mcpd: %s '%s' %s; its key is shown once, above\n", k->noun, name,
                strcmp(verb, "create") == 0 ? "created" : "has a new key (the old one is revoked)");
    } else {
        fprintf(stderr, "mcpd: %s '%s' %sd\n", k->noun, name, verb);
    }
    rc = 0;
out:
    mcpd_store_close(st);
    return rc;
}

static int bots_list(struct mcpd_store *st, bool as_json)
{
    struct mcpd_bot_row rows[256];
    char err[256];
    int n = mcpd_store_bot_list(st, rows, 256, err, sizeof(err));

    (void)as_json; /* bots list as a table only */
    if (n < 0) {
        fprintf(stderr, "mcpd: %s\n", err);
        return 1;
    }
    printf("%-32s %-9s %-16s %-20s %s\n", "BOT", "STATUS", "KEY", "CREATED", "ROTATED");
    for (int i = 0; i < n && i < 256; i++) {
        printf("%-32s %-9s %-16s ", rows[i].name, rows[i].disabled ? "disabled" : "enabled",
               rows[i].key_hint);
        print_time(rows[i].created_ms);
        print_time(rows[i].rotated_ms);
        printf("\n");
    }
    return 0;
}

int mcpd_admin_bots(const struct mcpd_config *cfg, const char *verb, const char *name)
{
    static const struct keyed_cli bots = {
        .noun = "bot",
        .plural = "bots",
        .list = bots_list,
        .create = mcpd_store_bot_create,
        .rotate = mcpd_store_bot_rotate,
        .set_disabled = mcpd_store_bot_set_disabled,
        .delete = mcpd_store_bot_delete,
    };

    return keyed_command(cfg, &bots, verb, name, false);
}

static const char *agent_status(const struct mcpd_agent_row *a)
{
    return a->disabled ? "disabled" : a->online ? "online" : "offline";
}

static int agents_list(struct mcpd_store *st, bool as_json)
{
    struct mcpd_agent_row *rows = NULL;
    struct mcpd_agent_resource_row *res = NULL;
    size_t n = 0, nres = 0;
    char err[256], when[32];
    json_t *out;

    if (mcpd_store_agent_list(st, &rows, &n, err, sizeof(err)) != 0 ||
        mcpd_store_agent_resources(st, &res, &nres, err, sizeof(err)) != 0) {
        fprintf(stderr, "mcpd: %s\n", err);
        free(rows);
        return 1;
    }
    out = json_array();
    for (size_t i = 0; out && i < n; i++) {
        json_t *rl = json_array();
        mcpd_admin_time_text(when, sizeof(when), rows[i].last_online_ms);
        for (size_t j = 0; rl && j < nres; j++)
            if (strcmp(res[j].agent, rows[i].name) == 0)
                json_array_append_new(
                    rl, json_pack(
                            "{s:s, s:s, s:s}", "name", res[j].name, "group", res[j].group, "status",
                            rows[i].online && !rows[i].disabled ? "connected" : "disconnected"));
        json_array_append_new(out,
                              json_pack("{s:s, s:s, s:s, s:I, s:s, s:o}", "name", rows[i].name,
                                        "status", agent_status(&rows[i]), "key", rows[i].key_hint,
                                        "resources", (json_int_t)rows[i].nresources, "last_online",
                                        when, "resource_list", rl ? rl : json_array()));
    }
    if (as_json) {
        char *txt = json_dumps(out, JSON_INDENT(2));
        if (txt)
            printf("%s\n", txt);
        free(txt);
    } else {
        size_t i;
        json_t *v;
        printf("%-32s %-9s %-16s %-9s %s\n", "AGENT", "STATUS", "KEY", "RESOURCES", "LAST ONLINE");
        json_array_foreach (out, i, v) {
            size_t j;
            json_t *r;
            const char *k = json_string_value(json_object_get(v, "key"));
            /* the ellipsis is 3 bytes wide in UTF-8 but one column on screen */
            int width = 16 + (strstr(k, "\xe2\x80\xa6") ? 2 : 0);
            printf("%-32s %-9s %-*s %-9lld %s\n", json_string_value(json_object_get(v, "name")),
                   json_string_value(json_object_get(v, "status")), width, k,
                   (long long)json_integer_value(json_object_get(v, "resources")),
                   json_string_value(json_object_get(v, "last_online")));
            json_array_foreach (json_object_get(v, "resource_list"), j, r)
                printf("  %-30s %s\n", json_string_value(json_object_get(r, "name")),
                       json_string_value(json_object_get(r, "status")));
        }
    }
    fflush(stdout);
    json_decref(out);
    free(rows);
    free(res);
    return 0;
}

int mcpd_admin_agents(const struct mcpd_config *cfg, const char *verb, const char *name,
                      bool as_json)
{
    static const struct keyed_cli agents = {
        .noun = "agent",
        .plural = "agents",
        .list = agents_list,
        .create = mcpd_store_agent_create,
        .rotate = mcpd_store_agent_rotate,
        .set_disabled = mcpd_store_agent_set_disabled,
        .delete = mcpd_store_agent_delete,
    };

    return keyed_command(cfg, &agents, verb, name, as_json);
}

int mcpd_admin_parse_since(const char *s, int64_t *ms)
{
    struct tm tm;
    char *end;
    long long n;

    *ms = 0;
    if (s == NULL)
        return 0;
    errno = 0;
    n = strtoll(s, &end, 10);
    if (end != s && errno == 0 && n > 0 && end[0] && end[1] == '\0') {
        int64_t unit = end[0] == 's'   ? 1000
                       : end[0] == 'm' ? 60000
                       : end[0] == 'h' ? 3600000
                       : end[0] == 'd' ? 86400000
                                       : 0;
        if (unit == 0)
            return -1;
        *ms = (int64_t)time(NULL) * 1000 - n * unit;
        return 0;
    }
    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%d", &tm);
    if (end && *end == 'T')
        end = strptime(end + 1, "%H:%M", &tm);
    if (end && *end == ':')
        end = strptime(end + 1, "%S", &tm);
    if (end && *end == 'Z')
        end++;
    if (end == NULL || *end != '\0')
        return -1;
    *ms = (int64_t)timegm(&tm) * 1000;
    return 0;
}

int mcpd_admin_parse_limit(const char *s, int64_t *limit)
{
    char *end;
    *limit = 0;
    if (s == NULL)
        return 0;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (end == s || *end || errno || n <= 0)
        return -1;
    *limit = n;
    return 0;
}

int mcpd_admin_audit(const struct mcpd_config *cfg, const char *verb,
                     const struct mcpd_audit_query *q)
{
    char *path = mcpd_admin_store_path(cfg), err[256], *key_file;
    struct mcpd_audit_query keyed = *q;
    unsigned char key[32];
    int64_t rows = 0, bad = 0;
    int r, rc = 1;

    if (path == NULL)
        return 1;
    if (cfg->audit_chain_hmac) { /* audit.chain: hmac: the key must exist already */
        key_file = mcpd_admin_key_file(cfg, path);
        r = key_file ? mcpd_audit_chain_key(key, key_file, false, err, sizeof(err)) : MCPD_ENOMEM;
        free(key_file);
        if (r != 0) {
            fprintf(stderr, "mcpd: audit.chain is hmac, but %s\n",
                    r == MCPD_ENOMEM ? "out of memory" : err);
            free(path);
            return 1;
        }
        keyed.chain_key = key;
    }
    if (strcmp(verb, "verify") == 0) {
        r = mcpd_audit_verify(path, keyed.chain_key, &rows, &bad, err, sizeof(err));
        if (r == 0) {
            printf("audit: %lld rows, chain intact\n", (long long)rows);
            rc = 0;
        } else if (r == 1) {
            printf("audit: chain broken at row %lld (%lld rows checked before it)\n",
                   (long long)bad, (long long)rows);
        } else {
            fprintf(stderr, "mcpd: %s\n", err);
        }
    } else if (strcmp(verb, "query") == 0) {
        if (mcpd_audit_print(path, &keyed, stdout, err, sizeof(err)) == 0)
            rc = 0;
        else
            fprintf(stderr, "mcpd: %s\n", err);
    } else {
        fprintf(stderr, "mcpd: unknown audit verb '%s' (verify, or none to query)\n", verb);
        rc = 2;
    }
    OPENSSL_cleanse(key, sizeof(key));
    free(path);
    return rc;
}

/* ---- views over the running catalog ----------------------------------------------------- */

static bool bot_sees(struct mcpd_daemon *d, const char *bot, const struct mcpd_catalog_entry *e)
{
    return bot == NULL || mcpd_authz_tool_visible(d->authz, bot, e->resource, e->tool);
}

int mcpd_admin_print_catalog(struct mcpd_daemon *d, const char *bot, bool json)
{
    const struct mcpd_catalog *cat = d->catalog;
    json_t *out = json_object(), *servers = json_array(), *tools = json_array(), *v;
    size_t i;

    if (bot && mcpd_authz_active(d->authz) && !mcpd_authz_has_bot(d->authz, bot)) {
        fprintf(stderr, "mcpd: no bot named '%s' in the configuration\n", bot);
        json_decref(out);
        json_decref(servers);
        json_decref(tools);
        return 1;
    }
    for (i = 0; i < d->nups; i++) {
        struct mcpd_upstream *up = d->ups[i];
        size_t n = 0;
        if (up->agent != NULL)
            continue; /* listed by resource below */
        for (size_t j = 0; cat && j < cat->count; j++)
            n += cat->entries[j].owner == up && bot_sees(d, bot, &cat->entries[j]);
        json_array_append_new(
            servers,
            json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "name", up->name, "kind", up->ops->kind,
                      "state", up->cfg->enabled ? mcpd_upstream_state_name(up->state) : "disabled",
                      "protocol", up->protocol_version, "tools", (json_int_t)n, "error",
                      up->last_error));
    }
    {
        json_t *ares = mcpd__agents_resources_json(d);
        json_array_foreach (ares, i, v) {
            const char *rname = json_string_value(json_object_get(v, "name"));
            size_t n = 0;
            for (size_t j = 0; cat && j < cat->count; j++)
                n += cat->entries[j].resource && strcmp(cat->entries[j].resource, rname) == 0 &&
                     bot_sees(d, bot, &cat->entries[j]);
            json_array_append_new(
                servers, json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "name", rname, "kind", "agent",
                                   "state", json_string_value(json_object_get(v, "status")),
                                   "protocol", "", "tools", (json_int_t)n, "error", ""));
        }
        json_decref(ares);
    }
    for (size_t j = 0; cat && j < cat->count; j++) {
        const struct mcpd_catalog_entry *e = &cat->entries[j];
        if (bot_sees(d, bot, e))
            json_array_append_new(tools,
                                  json_pack("{s:s, s:s, s:s, s:b}", "name", e->name, "resource",
                                            e->resource, "tool", e->tool, "renamed", e->renamed));
    }
    json_object_set_new(out, "servers", servers);
    json_object_set_new(out, "tools", tools);
    json_object_set_new(out, "collisions", cat ? json_incref(cat->collisions) : json_array());
    if (bot)
        json_object_set_new(out, "bot", json_string(bot));
    if (json) {
        char *s = json_dumps(out, JSON_INDENT(2));
        if (s)
            printf("%s\n", s);
        free(s);
    } else {
        printf("%-24s %-8s %-13s %-6s %s\n", "SERVER", "KIND", "STATE", "TOOLS", "ERROR");
        json_array_foreach (servers, i, v) {
            printf("%-24s %-8s %-13s %-6lld %s\n", json_string_value(json_object_get(v, "name")),
                   json_string_value(json_object_get(v, "kind")),
                   json_string_value(json_object_get(v, "state")),
                   (long long)json_integer_value(json_object_get(v, "tools")),
                   json_string_value(json_object_get(v, "error")));
        }
        printf("\n%-40s %-24s %s\n", "TOOL", "FROM", "UPSTREAM NAME");
        json_array_foreach (tools, i, v) {
            printf("%-40s %-24s %s%s\n", json_string_value(json_object_get(v, "name")),
                   json_string_value(json_object_get(v, "resource")),
                   json_string_value(json_object_get(v, "tool")),
                   json_is_true(json_object_get(v, "renamed")) ? "  (renamed)" : "");
        }
        json_array_foreach (json_object_get(out, "collisions"), i, v) {
            printf("collision: %s of %s left out (name %s taken by %s)\n",
                   json_string_value(json_object_get(v, "tool")),
                   json_string_value(json_object_get(v, "resource")),
                   json_string_value(json_object_get(v, "name")),
                   json_string_value(json_object_get(v, "kept_by")));
        }
    }
    fflush(stdout);
    json_decref(out);
    return 0;
}

int mcpd_admin_explain(struct mcpd_daemon *d, const char *bot, const char *tool,
                       const char *args_json)
{
    const struct mcpd_catalog_entry *e = mcpd_catalog_lookup(d->catalog, tool);
    struct mcpd_policy_decision dec;
    json_error_t jerr;
    json_t *args;
    char *canon;

    if (!mcpd_authz_active(d->authz)) {
        printf("allow: no bots are configured, so there is no policy\n");
        return 0;
    }
    if (!mcpd_authz_has_bot(d->authz, bot)) {
        printf("deny: no bot named '%s' in the configuration\n", bot);
        return 1;
    }
    if (e == NULL) {
        printf("deny: no tool named '%s' in the catalog (mcpd catalog lists them)\n", tool);
        return 1;
    }
    if (!mcpd_authz_tool_visible(d->authz, bot, e->resource, e->tool)) {
        printf("deny: bot '%s' is bound to no binding for tool '%s' of '%s' (it is hidden)\n", bot,
               e->tool, e->resource);
        return 1;
    }
    args = args_json ? json_loads(args_json, JSON_REJECT_DUPLICATES, &jerr) : json_object();
    if (!json_is_object(args)) {
        fprintf(stderr, "mcpd: --args must be a JSON object%s%s\n", args ? "" : ": ",
                args ? "" : jerr.text);
        json_decref(args);
        return 2;
    }
    mcpd_authz_check_entry(d->authz, bot, e, args, &dec);
    canon = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
    printf("%s: %s\n", dec.allow ? "allow" : "deny",
           dec.allow ? "every dimension accepts the arguments" : dec.reason);
    printf("  bot:       %s\n  tool:      %s (%s of %s)\n", bot, tool, e->tool, e->resource);
    printf("  binding:   %s\n", dec.binding[0] ? dec.binding : "(none matched)");
    if (dec.dimension[0])
        printf("  dimension: %s, argument '%s', value '%s'\n", dec.dimension, dec.argument,
               dec.value);
    if (dec.pattern[0])
        printf("  pattern:   %s\n", dec.pattern);
    printf("  forwarded: %s\n", dec.allow && canon ? canon : "(nothing)");
    free(canon);
    json_decref(args);
    return dec.allow ? 0 : 1;
}
