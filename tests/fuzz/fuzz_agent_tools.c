/*
 * fuzz_agent_tools.c - libFuzzer target for what mcpd does with a connected
 * agent's tool list (mcpd/agents.c: mcpd_agents_group_tools; mcpd/catalog.c:
 * agent sources).
 *
 * Input: JSON text decoded like any peer message (depth-capped, duplicate
 * keys refused): a tools array, or an object whose "tools" is one.
 *
 * Invariants checked:
 *   - every array element is either accepted into exactly one group or
 *     reported refused (never both, never lost);
 *   - every group name matches ^[a-z0-9][a-z0-9-]{0,31}$ and every accepted
 *     tool has a string name, unique across groups;
 *   - a catalog built with one agent source per group (resource "a-<group>"
 *     when that is a valid name) has unique, valid exposed names found by
 *     lookup, always prefixed with the resource, each remembering its wire
 *     name (a tool's "name") and a dimensions object only when the tool
 *     declared one.
 */
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "mcpd/agents.h"
#include "mcpd/catalog.h"
#include "mcpd/config.h"
#include "mcpd/jsonrpc.h"
#include "mcpd/limits.h"

static void count_refused(const char *tool, const char *why, void *arg)
{
    FUZZ_CHECK(tool != NULL && why != NULL && why[0] != '\0');
    (*(size_t *)arg)++;
}

static bool group_ok(const char *g)
{
    size_t n = strlen(g);
    if (n == 0 || n > 32 || g[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((g[i] >= 'a' && g[i] <= 'z') || (g[i] >= '0' && g[i] <= '9') || g[i] == '-'))
            return false;
    return true;
}

static bool exposed_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MCPD_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mcpd_rpc_error err;
    struct mcpd_catalog_source src[64];
    char names[64][40];
    struct mcpd_catalog *cat = NULL;
    json_t *root, *tools, *groups, *arr, *seen;
    const char *g;
    size_t refused = 0, accepted = 0, nsrc = 0;

    if (size > 1 << 20)
        return 0;
    root = mcpd_jsonrpc_decode((const char *)data, size, MCPD_MAX_JSON_DEPTH, &err);
    if (root == NULL)
        return 0;
    tools = json_is_array(root) ? root : json_object_get(root, "tools");
    if (!json_is_array(tools)) {
        json_decref(root);
        return 0;
    }
    groups = mcpd_agents_group_tools(tools, count_refused, &refused);
    FUZZ_CHECK(groups != NULL);
    seen = json_object();
    json_object_foreach (groups, g, arr) {
        size_t i;
        json_t *t;
        FUZZ_CHECK(group_ok(g));
        FUZZ_CHECK(json_is_array(arr) && json_array_size(arr) > 0);
        json_array_foreach (arr, i, t) {
            const char *name = json_string_value(json_object_get(t, "name"));
            FUZZ_CHECK(name != NULL);
            FUZZ_CHECK(json_object_get(seen, name) == NULL);
            json_object_set_new(seen, name, json_true());
            accepted++;
        }
        if (nsrc < 64) {
            snprintf(names[nsrc], sizeof(names[nsrc]), "a-%s", g);
            if (mcpd_config_is_valid_name(names[nsrc])) {
                memset(&src[nsrc], 0, sizeof(src[nsrc]));
                src[nsrc].resource = names[nsrc];
                src[nsrc].tools = arr;
                src[nsrc].owner = &src[nsrc];
                src[nsrc].agent = true;
                nsrc++;
            }
        }
    }
    FUZZ_CHECK(accepted + refused == json_array_size(tools));
    FUZZ_CHECK(mcpd_catalog_build(&cat, src, nsrc, "__", false, 1) == 0);
    for (size_t i = 0; i < cat->count; i++) {
        const struct mcpd_catalog_entry *e = &cat->entries[i];
        const struct mcpd_catalog_source *s = e->owner;
        json_t *dims = json_object_get(json_object_get(e->json, "_meta"), "io.mcpd/dimensions");
        FUZZ_CHECK(exposed_ok(e->name));
        FUZZ_CHECK(mcpd_catalog_lookup(cat, e->name) == e);
        FUZZ_CHECK(e->agent && e->wire != NULL && json_object_get(seen, e->wire) != NULL);
        FUZZ_CHECK(strcmp(e->resource, s->resource) == 0);
        /* prefixed although the catalog was built without prefixing */
        FUZZ_CHECK(e->renamed || strncmp(e->name, s->resource, strlen(s->resource)) == 0);
        FUZZ_CHECK((e->dims != NULL) == (dims != NULL));
    }
    mcpd_catalog_free(cat);
    json_decref(seen);
    json_decref(groups);
    json_decref(root);
    return 0;
}
