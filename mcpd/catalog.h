/*
 * catalog.h - the merged, namespaced tool list (sans-I/O).
 *
 * Built from each ready upstream's tools in configuration order. Exposed
 * names are `<resource><sep><tool>` when prefixing is on, the tool's own
 * name otherwise. A name that would leave [A-Za-z0-9_-] or exceed
 * MCPD_MAX_NAME characters is rewritten deterministically: invalid bytes
 * become '_', the result is cut to leave room, and "_" plus 8 hex digits of
 * a hash of (resource, tool) is appended. Two tools that still end with the
 * same name are a collision: the first (in configuration order) keeps it,
 * the later one is left out and reported. Tool objects are passed through
 * unchanged except for "name".
 *
 * Prompts are named the same way. Resource URIs and URI templates are
 * namespaced reversibly when prefixing is on: "<resource>+<uri>" (a valid
 * URI scheme, since resource names are [a-z0-9-]); without prefixing they
 * pass unchanged and reads are routed by exact URI, then by template, then
 * to the only upstream that has resources.
 *
 * Cursors are mcpd's own, "mcpd:<generation>:<offset>"; a cursor from an
 * older catalog generation is still honoured by offset.
 */
#ifndef MCPD_CATALOG_H
#define MCPD_CATALOG_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "map.h"

enum mcpd_list_kind {
    MCPD_LIST_TOOLS = 0,
    MCPD_LIST_PROMPTS,
    MCPD_LIST_RESOURCES,
    MCPD_LIST_TEMPLATES,
    MCPD_LIST_KINDS,
};

/* Per kind: the list method, the result key, the notification that says it changed. */
extern const char *const mcpd_list_method[MCPD_LIST_KINDS];
extern const char *const mcpd_list_key[MCPD_LIST_KINDS];
extern const char *const mcpd_list_changed[MCPD_LIST_KINDS];

struct mcpd_catalog_source {
    const char *resource; /* borrowed */
    json_t *tools;        /* borrowed array of tool objects, may be NULL */
    void *owner;          /* stored in entries (the upstream) */
    json_t *prompts;      /* borrowed arrays, may be NULL */
    json_t *resources;
    json_t *templates;
    /*
     * A connected agent's tool group: always prefixed; a tool's name within
     * the resource is _meta["io.mcpd/tool"] (default: its wire "name", which
     * stays the name forwarded), and _meta["io.mcpd/dimensions"] is kept
     * for the policy.
     */
    bool agent;
};

struct mcpd_catalog_entry {
    char *name;       /* exposed name */
    const char *tool; /* the upstream's own name (borrowed from `json`'s source) */
    char *tool_owned;
    const char *resource;
    void *owner;
    json_t *json; /* exposed tool object (new object, name rewritten) */
    bool renamed; /* name differs from resource+sep+tool or tool */
    bool agent;   /* from an agent source */
    char *wire;   /* agent tools: the name to forward (the upstream's wire name) */
    json_t *dims; /* agent tools: _meta["io.mcpd/dimensions"] (owned), or NULL */
};

/* An exposed resource or template, with where it comes from. */
struct mcpd_catalog_item {
    json_t *json; /* exposed object (uri / uriTemplate rewritten when prefixing) */
    void *owner;
    const char *resource;
};

struct mcpd_catalog {
    struct mcpd_catalog_entry *entries; /* tools */
    size_t count;
    struct mcpd_map by_name;
    struct mcpd_catalog_entry *prompts;
    size_t nprompts;
    struct mcpd_map prompt_by_name;
    struct mcpd_catalog_item *resources, *templates;
    size_t nresources, ntemplates;
    struct mcpd_map resource_by_uri;   /* exposed uri -> item (exact routing) */
    struct mcpd_map owner_by_resource; /* resource name -> owner */
    void *only_resources_owner;        /* the single source with resources, or NULL */
    bool prefix;
    /* the first page of each list, serialized once per catalog (unfiltered clients) */
    char *first_page[MCPD_LIST_KINDS];
    size_t first_page_len[MCPD_LIST_KINDS];
    json_t *collisions; /* array of {resource, tool, name, kept_by} */
    unsigned generation;
};

/* Builds a catalog. Returns 0 or MCPD_ENOMEM. */
int mcpd_catalog_build(struct mcpd_catalog **out, const struct mcpd_catalog_source *src,
                       size_t nsrc, const char *sep, bool prefix, unsigned generation);
void mcpd_catalog_free(struct mcpd_catalog *cat);

/* Exact lookup of an exposed name; returns a borrowed entry or NULL. */
const struct mcpd_catalog_entry *mcpd_catalog_lookup(const struct mcpd_catalog *cat,
                                                     const char *name);

/*
 * Makes the exposed name for (resource, tool) into `out` (>= MCPD_MAX_NAME+1
 * bytes). Returns true when the name had to be rewritten.
 */
bool mcpd_catalog_name(char *out, const char *resource, const char *tool, const char *sep,
                       bool prefix);

/*
 * One tools/list page: returns a new result object {tools, nextCursor?} or
 * NULL when `cursor` (may be NULL) is invalid.
 */
json_t *mcpd_catalog_page(const struct mcpd_catalog *cat, const char *cursor, unsigned page_size);
/* The same for any list kind ({prompts}, {resources}, {resourceTemplates}). */
json_t *mcpd_catalog_page_kind(const struct mcpd_catalog *cat, enum mcpd_list_kind kind,
                               const char *cursor, unsigned page_size);

/*
 * A page of only the items `keep` accepts; `name` is the upstream's own name
 * (tools, prompts) or URI / URI template (resources, templates). Offsets in
 * cursors count kept items.
 */
typedef bool (*mcpd_catalog_keep)(enum mcpd_list_kind kind, const char *resource, const char *name,
                                  void *arg);
json_t *mcpd_catalog_page_filtered(const struct mcpd_catalog *cat, enum mcpd_list_kind kind,
                                   const char *cursor, unsigned page_size, mcpd_catalog_keep keep,
                                   void *arg);

/* Exact lookup of an exposed prompt name; NULL when unknown. */
const struct mcpd_catalog_entry *mcpd_catalog_prompt(const struct mcpd_catalog *cat,
                                                     const char *name);

/*
 * Routes an exposed resource URI: returns the owner and sets *inner to the
 * upstream's URI (a pointer into `uri`), or NULL when no upstream can have it.
 */
void *mcpd_catalog_route_uri(const struct mcpd_catalog *cat, const char *uri, const char **inner);

/*
 * Writes the exposed form of an upstream URI into a new string (free()),
 * "<resource>+<uri>" when the catalog prefixes, else a copy.
 */
char *mcpd_catalog_expose_uri(const struct mcpd_catalog *cat, const char *resource,
                              const char *uri);

#endif
