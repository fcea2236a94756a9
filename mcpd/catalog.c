/* catalog.c - merged tool namespace (see catalog.h). */
#include "catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "limits.h"

const char *const mcpd_list_method[MCPD_LIST_KINDS] = { "tools/list", "prompts/list",
                                                        "resources/list",
                                                        "resources/templates/list" };
const char *const mcpd_list_key[MCPD_LIST_KINDS] = { "tools", "prompts", "resources",
                                                     "resourceTemplates" };
const char *const mcpd_list_changed[MCPD_LIST_KINDS] = { "notifications/tools/list_changed",
                                                         "notifications/prompts/list_changed",
                                                         "notifications/resources/list_changed",
                                                         "notifications/resources/list_changed" };

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

/* Adds a tool or prompt under its exposed name to (arr, *count, map). */
static int add_named(struct mcpd_catalog *cat, struct mcpd_catalog_entry *arr, size_t *count,
                     struct mcpd_map *map, const struct mcpd_catalog_source *s, json_t *tool,
                     const char *sep, bool prefix)
{
    const char *tname = json_string_value(json_object_get(tool, "name"));
    const char *wire = tname;
    json_t *meta = s->agent ? json_object_get(tool, "_meta") : NULL;
    struct mcpd_catalog_entry *e, *other;
    char name[MCPD_MAX_NAME + 16];

    if (tname == NULL || !json_is_object(tool))
        return 0; /* a tool without a name cannot be called; skip it */
    if (s->agent) {
        const char *t = json_string_value(json_object_get(meta, "io.mcpd/tool"));
        if (t != NULL && t[0] != '\0')
            tname = t;
        prefix = true; /* agent resources are always named */
    }
    bool renamed = mcpd_catalog_name(name, s->resource, tname, sep, prefix);
    other = mcpd_map_get(map, name, strlen(name));
    if (other)
        return add_collision(cat, s->resource, tname, name, other->resource);
    e = &arr[*count];
    memset(e, 0, sizeof(*e));
    e->name = strdup(name);
    e->tool_owned = strdup(tname);
    e->json = json_copy(tool); /* shallow: nested schemas are shared, not copied */
    if (e->name == NULL || e->tool_owned == NULL || e->json == NULL)
        goto nomem;
    if (s->agent) {
        e->agent = true;
        if ((e->wire = strdup(wire)) == NULL)
            goto nomem;
        e->dims = json_incref(json_object_get(meta, "io.mcpd/dimensions"));
    }
    e->tool = e->tool_owned;
    e->resource = s->resource;
    e->owner = s->owner;
    e->renamed = renamed;
    if (json_object_set_new(e->json, "name", json_string(name)) != 0 ||
        mcpd_map_put(map, e->name, strlen(e->name), e) != 0)
        goto nomem;
    (*count)++;
    return 0;
nomem:
    free(e->name);
    free(e->tool_owned);
    free(e->wire);
    json_decref(e->dims);
    json_decref(e->json);
    return MCPD_ENOMEM;
}

char *mcpd_catalog_expose_uri(const struct mcpd_catalog *cat, const char *resource, const char *uri)
{
    size_t rl = strlen(resource), ul = strlen(uri);
    char *out;
    if (!cat->prefix)
        return strdup(uri);
    out = malloc(rl + ul + 2);
    if (out) {
        memcpy(out, resource, rl);
        out[rl] = '+';
        memcpy(out + rl + 1, uri, ul + 1);
    }
    return out;
}

/* Adds a resource (key "uri") or template (key "uriTemplate") in exposed form. */
static int add_item(struct mcpd_catalog *cat, struct mcpd_catalog_item *arr, size_t *count,
                    const struct mcpd_catalog_source *s, json_t *item, const char *key)
{
    const char *uri = json_string_value(json_object_get(item, key));
    struct mcpd_catalog_item *it = &arr[*count];
    char *exposed;

    if (uri == NULL || !json_is_object(item))
        return 0; /* unusable without its uri */
    if ((exposed = mcpd_catalog_expose_uri(cat, s->resource, uri)) == NULL ||
        (it->json = json_copy(item)) == NULL) {
        free(exposed);
        return MCPD_ENOMEM;
    }
    json_object_set_new(it->json, key, json_string(exposed));
    it->owner = s->owner;
    it->resource = s->resource;
    if (arr == cat->resources &&
        mcpd_map_get(&cat->resource_by_uri, exposed, strlen(exposed)) == NULL)
        mcpd_map_put(&cat->resource_by_uri, exposed, strlen(exposed), it);
    free(exposed);
    (*count)++;
    return 0;
}

static int add_source(struct mcpd_catalog *cat, const struct mcpd_catalog_source *s,
                      const char *sep, bool prefix)
{
    size_t j;
    json_t *v;
    json_array_foreach (s->tools, j, v) {
        if (add_named(cat, cat->entries, &cat->count, &cat->by_name, s, v, sep, prefix) != 0)
            return MCPD_ENOMEM;
    }
    json_array_foreach (s->prompts, j, v) {
        if (add_named(cat, cat->prompts, &cat->nprompts, &cat->prompt_by_name, s, v, sep, prefix) !=
            0)
            return MCPD_ENOMEM;
    }
    json_array_foreach (s->resources, j, v) {
        if (add_item(cat, cat->resources, &cat->nresources, s, v, "uri") != 0)
            return MCPD_ENOMEM;
    }
    json_array_foreach (s->templates, j, v) {
        if (add_item(cat, cat->templates, &cat->ntemplates, s, v, "uriTemplate") != 0)
            return MCPD_ENOMEM;
    }
    return mcpd_map_put(&cat->owner_by_resource, s->resource, strlen(s->resource), s->owner);
}

int mcpd_catalog_build(struct mcpd_catalog **out, const struct mcpd_catalog_source *src,
                       size_t nsrc, const char *sep, bool prefix, unsigned generation)
{
    struct mcpd_catalog *cat;
    size_t ntools = 0, nprompts = 0, nres = 0, ntpl = 0, with_resources = 0;

    *out = NULL;
    for (size_t i = 0; i < nsrc; i++) {
        ntools += json_array_size(src[i].tools);
        nprompts += json_array_size(src[i].prompts);
        nres += json_array_size(src[i].resources);
        ntpl += json_array_size(src[i].templates);
    }
    cat = calloc(1, sizeof(*cat));
    if (cat == NULL)
        return MCPD_ENOMEM;
    mcpd_map_init(&cat->by_name);
    mcpd_map_init(&cat->prompt_by_name);
    mcpd_map_init(&cat->resource_by_uri);
    mcpd_map_init(&cat->owner_by_resource);
    cat->generation = generation;
    cat->prefix = prefix;
    cat->collisions = json_array();
    cat->entries = calloc(ntools + 1, sizeof(*cat->entries));
    cat->prompts = calloc(nprompts + 1, sizeof(*cat->prompts));
    cat->resources = calloc(nres + 1, sizeof(*cat->resources));
    cat->templates = calloc(ntpl + 1, sizeof(*cat->templates));
    if (cat->collisions == NULL || cat->entries == NULL || cat->prompts == NULL ||
        cat->resources == NULL || cat->templates == NULL)
        goto nomem;
    for (size_t i = 0; i < nsrc; i++) {
        if (src[i].resources || src[i].templates) {
            with_resources++;
            cat->only_resources_owner = src[i].owner;
        }
        if (add_source(cat, &src[i], sep, prefix) != 0)
            goto nomem;
    }
    if (with_resources != 1)
        cat->only_resources_owner = NULL;
    *out = cat;
    return 0;
nomem:
    mcpd_catalog_free(cat);
    return MCPD_ENOMEM;
}

static void free_entries(struct mcpd_catalog_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].name);
        free(e[i].tool_owned);
        free(e[i].wire);
        json_decref(e[i].dims);
        json_decref(e[i].json);
    }
    free(e);
}

static void free_items(struct mcpd_catalog_item *it, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(it[i].json);
    free(it);
}

void mcpd_catalog_free(struct mcpd_catalog *cat)
{
    if (cat == NULL)
        return;
    free_entries(cat->entries, cat->count);
    free_entries(cat->prompts, cat->nprompts);
    free_items(cat->resources, cat->nresources);
    free_items(cat->templates, cat->ntemplates);
    for (int k = 0; k < MCPD_LIST_KINDS; k++)
        free(cat->first_page[k]);
    mcpd_map_dispose(&cat->by_name);
    mcpd_map_dispose(&cat->prompt_by_name);
    mcpd_map_dispose(&cat->resource_by_uri);
    mcpd_map_dispose(&cat->owner_by_resource);
    json_decref(cat->collisions);
    free(cat);
}

const struct mcpd_catalog_entry *mcpd_catalog_lookup(const struct mcpd_catalog *cat,
                                                     const char *name)
{
    return cat ? mcpd_map_get(&cat->by_name, name, strlen(name)) : NULL;
}

const struct mcpd_catalog_entry *mcpd_catalog_prompt(const struct mcpd_catalog *cat,
                                                     const char *name)
{
    return cat ? mcpd_map_get(&cat->prompt_by_name, name, strlen(name)) : NULL;
}

/* RFC 6570 templates, matched loosely: literals must match, each {expr} takes
 * the shortest run up to the next literal character. */
static bool template_matches(const char *t, const char *u)
{
    while (*t) {
        if (*t == '{') {
            const char *close = strchr(t, '}');
            if (close == NULL)
                return false;
            t = close + 1;
            if (*t == '\0')
                return true;
            while (*u && *u != *t)
                u++;
            if (*u == '\0')
                return false;
        } else if (*t++ != *u++) {
            return false;
        }
    }
    return *u == '\0';
}

void *mcpd_catalog_route_uri(const struct mcpd_catalog *cat, const char *uri, const char **inner)
{
    const struct mcpd_catalog_item *it;
    *inner = uri;
    if (cat == NULL)
        return NULL;
    if (cat->prefix) {
        const char *plus = strchr(uri, '+');
        void *owner =
            plus ? mcpd_map_get(&cat->owner_by_resource, uri, (size_t)(plus - uri)) : NULL;
        if (owner)
            *inner = plus + 1;
        return owner;
    }
    if ((it = mcpd_map_get(&cat->resource_by_uri, uri, strlen(uri))) != NULL)
        return it->owner;
    for (size_t i = 0; i < cat->ntemplates; i++) {
        const char *t = json_string_value(json_object_get(cat->templates[i].json, "uriTemplate"));
        if (t && template_matches(t, uri))
            return cat->templates[i].owner;
    }
    return cat->only_resources_owner;
}

json_t *mcpd_catalog_page(const struct mcpd_catalog *cat, const char *cursor, unsigned page_size)
{
    return mcpd_catalog_page_kind(cat, MCPD_LIST_TOOLS, cursor, page_size);
}

static json_t *item_json(const struct mcpd_catalog *cat, enum mcpd_list_kind kind, size_t i)
{
    switch (kind) {
    case MCPD_LIST_TOOLS:
        return cat->entries[i].json;
    case MCPD_LIST_PROMPTS:
        return cat->prompts[i].json;
    case MCPD_LIST_RESOURCES:
        return cat->resources[i].json;
    default:
        return cat->templates[i].json;
    }
}

json_t *mcpd_catalog_page_kind(const struct mcpd_catalog *cat, enum mcpd_list_kind kind,
                               const char *cursor, unsigned page_size)
{
    static const size_t zero = 0;
    const size_t *counts[MCPD_LIST_KINDS] = { cat ? &cat->count : &zero,
                                              cat ? &cat->nprompts : &zero,
                                              cat ? &cat->nresources : &zero,
                                              cat ? &cat->ntemplates : &zero };
    size_t off = 0, count = *counts[kind];
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
        json_array_append(tools, item_json(cat, kind, i));
    json_object_set_new(res, mcpd_list_key[kind], tools);
    if (off + page_size < count) {
        char next[64];
        snprintf(next, sizeof(next), "mcpd:%u:%zu", cat->generation, off + page_size);
        json_object_set_new(res, "nextCursor", json_string(next));
    }
    return res;
}

/* The upstream's own name or URI of item i of a kind. */
static const char *item_name(const struct mcpd_catalog *cat, enum mcpd_list_kind kind, size_t i,
                             const char **resource)
{
    const struct mcpd_catalog_item *it;
    const char *uri;
    switch (kind) {
    case MCPD_LIST_TOOLS:
        *resource = cat->entries[i].resource;
        return cat->entries[i].tool;
    case MCPD_LIST_PROMPTS:
        *resource = cat->prompts[i].resource;
        return cat->prompts[i].tool;
    case MCPD_LIST_RESOURCES:
        it = &cat->resources[i];
        uri = json_string_value(json_object_get(it->json, "uri"));
        break;
    default:
        it = &cat->templates[i];
        uri = json_string_value(json_object_get(it->json, "uriTemplate"));
        break;
    }
    *resource = it->resource;
    return uri && cat->prefix ? uri + strlen(it->resource) + 1 : uri ? uri : "";
}

json_t *mcpd_catalog_page_filtered(const struct mcpd_catalog *cat, enum mcpd_list_kind kind,
                                   const char *cursor, unsigned page_size, mcpd_catalog_keep keep,
                                   void *arg)
{
    static const size_t zero = 0;
    const size_t *counts[MCPD_LIST_KINDS] = { cat ? &cat->count : &zero,
                                              cat ? &cat->nprompts : &zero,
                                              cat ? &cat->nresources : &zero,
                                              cat ? &cat->ntemplates : &zero };
    size_t off = 0, seen = 0, count = *counts[kind];
    json_t *res, *items;
    bool more = false;

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
    items = json_array();
    if (res == NULL || items == NULL) {
        json_decref(res);
        json_decref(items);
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        const char *resource, *name = item_name(cat, kind, i, &resource);
        if (!keep(kind, resource, name, arg))
            continue;
        if (seen++ < off)
            continue;
        if (json_array_size(items) == page_size) {
            more = true;
            break;
        }
        json_array_append(items, item_json(cat, kind, i));
    }
    json_object_set_new(res, mcpd_list_key[kind], items);
    if (more) {
        char next[64];
        snprintf(next, sizeof(next), "mcpd:%u:%zu", cat->generation, off + page_size);
        json_object_set_new(res, "nextCursor", json_string(next));
    }
    return res;
}
