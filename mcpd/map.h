/*
 * map.h - a small hash map from byte-string or 64-bit keys to pointers
 * (chained, power-of-two buckets, grows at load 1). Keys are copied; values
 * are borrowed. Used for sessions by id, catalog names and pending requests.
 */
#ifndef MCPD_MAP_H
#define MCPD_MAP_H

#include <stddef.h>
#include <stdint.h>

struct mcpd_map_entry;

struct mcpd_map {
    struct mcpd_map_entry **buckets;
    size_t nbuckets; /* 0 or a power of two */
    size_t count;
};

void mcpd_map_init(struct mcpd_map *m);
/* Frees the entries (not the values). */
void mcpd_map_dispose(struct mcpd_map *m);

/* Inserts or replaces. Returns 0 or MCPD_ENOMEM. */
int mcpd_map_put(struct mcpd_map *m, const void *key, size_t klen, void *value);
void *mcpd_map_get(const struct mcpd_map *m, const void *key, size_t klen);
/* Removes and returns the value, or NULL. */
void *mcpd_map_del(struct mcpd_map *m, const void *key, size_t klen);

static inline int mcpd_map_put_u64(struct mcpd_map *m, uint64_t k, void *v)
{
    return mcpd_map_put(m, &k, sizeof(k), v);
}
static inline void *mcpd_map_get_u64(const struct mcpd_map *m, uint64_t k)
{
    return mcpd_map_get(m, &k, sizeof(k));
}
static inline void *mcpd_map_del_u64(struct mcpd_map *m, uint64_t k)
{
    return mcpd_map_del(m, &k, sizeof(k));
}

/* Calls fn for every entry; fn must not modify the map. */
void mcpd_map_foreach(const struct mcpd_map *m, void (*fn)(void *value, void *arg), void *arg);
/* The same, with each entry's key. */
void mcpd_map_foreach_key(const struct mcpd_map *m,
                          void (*fn)(const void *key, size_t klen, void *value, void *arg),
                          void *arg);

#endif
