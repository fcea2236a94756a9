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
 * Cursors are mcpd's own: "o<offset>" inside an opaque base64url wrapper is
 * overkill here; they are "mcpd:<generation>:<offset>" and a cursor from an
 * older catalog generation is still honoured by offset.
 */
#ifndef MCPD_CATALOG_H
#define MCPD_CATALOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "map.h"

struct mcpd_catalog_source {
    const char *resource; /* borrowed */
    json_t *tools;        /* borrowed array of tool objects, may be NULL */
    void *owner;          /* stored in entries (the upstream) */
};

struct mcpd_catalog_entry {
    char *name;       /* exposed name */
    const char *tool; /* the upstream's own name (borrowed from `json`'s source) */
    char *tool_owned;
    const char *resource;
    void *owner;
    json_t *json;     /* exposed tool object (new object, name rewritten) */
    bool renamed;     /* name differs from resource+sep+tool or tool */
};

struct mcpd_catalog {
    struct mcpd_catalog_entry *entries;
    size_t count;
    struct mcpd_map by_name;
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

#endif
