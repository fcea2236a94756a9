/* catalog.c - merged tool namespace (see catalog.h). */
#include "catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "limits.h"

static bool valid_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-';
}

static uint32_t fnv32(const char *a, const char *b)
{
    uint32_t h = 2166136261u;
    for (const char *p = a; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    h = (h ^ 0xffu) * 16777619u; /* separator that cannot occur in names */
    for (const char *p = b; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h;
}

bool mcpd_catalog_name(char *out, const char *resource, const char *tool, const char *sep,
                       bool prefix)
{
    char full[4 * MCPD_MAX_NAME + 64];
    size_t n = 0;
    bool rewritten = false;
    int w;

    w = prefix ? snprintf(full, sizeof(full), "%s%s%s", resource, sep, tool)
               : snprintf(full, sizeof(full), "%s", tool);
    if (w < 0 || (size_t)w >= sizeof(full))
        rewritten = true;
    n = strlen(full);
    for (size_t i = 0; i < n; i++) {
        if (!valid_char(full[i])) {
            full[i] = '_';
            rewritten = true;
        }
    }
    if (n == 0 || n > MCPD_MAX_NAME)
        rewritten = true;
    if (!rewritten) {
        memcpy(out, full, n + 1);
        return false;
    }
    /* keep a readable stem, then a hash of the original pair */
    if (n > MCPD_MAX_NAME - 9)
        n = MCPD_MAX_NAME - 9;
    memcpy(out, full, n);
    snprintf(out + n, 10, "_%08x", fnv32(prefix ? resource : "", tool));
    return true;
}

static int add_collision(struct mcpd_catalog *cat, const char *res, const char *tool,
                         const char *name, const char *kept_by)
{
    json_t *c = json_pack("{s:s, s:s, s:s, s:s}", "resource", res, "tool", tool, "name", name,
                          "kept_by", kept_by);
    return c && json_array_append_new(cat->collisions, c) == 0 ? 0 : MCPD_ENOMEM;
}

static int add_tool(struct mcpd_catalog *cat, const struct mcpd_catalog_source *s, json_t *tool,
                    const char *sep, bool prefix)
{
    const char *tname = json_string_value(json_object_get(tool, "name"));
    struct mcpd_catalog_entry *e, *other;
    char name[MCPD_MAX_NAME + 16];

    if (tname == NULL || !json_is_object(tool))
        return 0; /* a tool without a name cannot be called; skip it */
    bool renamed = mcpd_catalog_name(name, s->resource, tname, sep, prefix);
    other = mcpd_map_get(&cat->by_name, name, strlen(name));
    if (other)
        return add_collision(cat, s->resource, tname, name, other->resource);
    e = &cat->entries[cat->count];
    memset(e, 0, sizeof(*e));
    e->name = strdup(name);
    e->tool_owned = strdup(tname);
    e->json = json_copy(tool); /* shallow: nested schemas are shared, not copied */
    if (e->name == NULL || e->tool_owned == NULL || e->json == NULL)
        goto nomem;
    e->tool = e->tool_owned;
    e->resource = s->resource;
    e->owner = s->owner;
    e->renamed = renamed;
    if (json_object_set_new(e->json, "name", json_string(name)) != 0 ||
        mcpd_map_put(&cat->by_name, e->name, strlen(e->name), e) != 0)
        goto nomem;
    cat->count++;
    return 0;
nomem:
    free(e->name);
    free(e->tool_owned);
    json_decref(e->json);
    return MCPD_ENOMEM;
}

int mcpd_catalog_build(struct mcpd_catalog **out, const struct mcpd_catalog_source *src,
                       size_t nsrc, const char *sep, bool prefix, unsigned generation)
{
    struct mcpd_catalog *cat;
    size_t total = 0;

    *out = NULL;
    for (size_t i = 0; i < nsrc; i++)
        total += json_array_size(src[i].tools);
    cat = calloc(1, sizeof(*cat));
    if (cat == NULL)
        return MCPD_ENOMEM;
    mcpd_map_init(&cat->by_name);
    cat->generation = generation;
    cat->collisions = json_array();
    cat->entries = calloc(total ? total : 1, sizeof(*cat->entries));
    if (cat->collisions == NULL || cat->entries == NULL)
        goto nomem;
    for (size_t i = 0; i < nsrc; i++) {
        size_t j;
        json_t *tool;
        json_array_foreach(src[i].tools, j, tool)
        {
            if (add_tool(cat, &src[i], tool, sep, prefix) != 0)
                goto nomem;
        }
    }
    *out = cat;
    return 0;
nomem:
    mcpd_catalog_free(cat);
    return MCPD_ENOMEM;
}

void mcpd_catalog_free(struct mcpd_catalog *cat)
{
    if (cat == NULL)
        return;
    for (size_t i = 0; i < cat->count; i++) {
        free(cat->entries[i].name);
        free(cat->entries[i].tool_owned);
        json_decref(cat->entries[i].json);
    }
    free(cat->entries);
    mcpd_map_dispose(&cat->by_name);
    json_decref(cat->collisions);
    free(cat);
}

const struct mcpd_catalog_entry *mcpd_catalog_lookup(const struct mcpd_catalog *cat,
                                                     const char *name)
{
    return cat ? mcpd_map_get(&cat->by_name, name, strlen(name)) : NULL;
}

json_t *mcpd_catalog_page(const struct mcpd_catalog *cat, const char *cursor, unsigned page_size)
{
    size_t off = 0, count = cat ? cat->count : 0;
    json_t *res, *tools;

    if (cursor) {
        unsigned gen;
        unsigned long long o;
        char tail;
        if (sscanf(cursor, "mcpd:%u:%llu%c", &gen, &o, &tail) != 2 || o > count)
            return NULL;
        off = (size_t)o;
    }
    if (page_size == 0)
        page_size = MCPD_LIST_PAGE_SIZE;
    res = json_object();
    tools = json_array();
    if (res == NULL || tools == NULL) {
        json_decref(res);
        json_decref(tools);
        return NULL;
    }
    for (size_t i = off; i < count && i < off + page_size; i++)
        json_array_append(tools, cat->entries[i].json);
    json_object_set_new(res, "tools", tools);
    if (off + page_size < count) {
        char next[64];
        snprintf(next, sizeof(next), "mcpd:%u:%zu", cat->generation, off + page_size);
        json_object_set_new(res, "nextCursor", json_string(next));
    }
    return res;
}
