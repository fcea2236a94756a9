/* map.c - chained hash map with FNV-1a hashing (see map.h). */
#include "map.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

struct mcpd_map_entry {
    struct mcpd_map_entry *next;
    uint64_t hash;
    void *value;
    size_t klen;
    unsigned char key[];
};

static uint64_t hash_bytes(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

void mcpd_map_init(struct mcpd_map *m)
{
    m->buckets = NULL;
    m->nbuckets = 0;
    m->count = 0;
}

void mcpd_map_dispose(struct mcpd_map *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct mcpd_map_entry *e = m->buckets[i], *n;
        for (; e; e = n) {
            n = e->next;
            free(e);
        }
    }
    free(m->buckets);
    mcpd_map_init(m);
}

static int grow(struct mcpd_map *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    struct mcpd_map_entry **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return MCPD_ENOMEM;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct mcpd_map_entry *e = m->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

static struct mcpd_map_entry **find(const struct mcpd_map *m, const void *key, size_t klen,
                                    uint64_t h)
{
    struct mcpd_map_entry **pp;
    if (m->nbuckets == 0)
        return NULL;
    for (pp = &m->buckets[h & (m->nbuckets - 1)]; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0)
            return pp;
    return NULL;
}

int mcpd_map_put(struct mcpd_map *m, const void *key, size_t klen, void *value)
{
    uint64_t h = hash_bytes(key, klen);
    struct mcpd_map_entry **pp = find(m, key, klen, h), *e;

    if (pp) {
        (*pp)->value = value;
        return 0;
    }
    if (m->count >= m->nbuckets && grow(m) != 0)
        return MCPD_ENOMEM;
    e = malloc(sizeof(*e) + klen);
    if (e == NULL)
        return MCPD_ENOMEM;
    e->hash = h;
    e->value = value;
    e->klen = klen;
    memcpy(e->key, key, klen);
    e->next = m->buckets[h & (m->nbuckets - 1)];
    m->buckets[h & (m->nbuckets - 1)] = e;
    m->count++;
    return 0;
}

void *mcpd_map_get(const struct mcpd_map *m, const void *key, size_t klen)
{
    struct mcpd_map_entry **pp = find(m, key, klen, hash_bytes(key, klen));
    return pp ? (*pp)->value : NULL;
}

void *mcpd_map_del(struct mcpd_map *m, const void *key, size_t klen)
{
    struct mcpd_map_entry **pp = find(m, key, klen, hash_bytes(key, klen)), *e;
    void *v;
    if (pp == NULL)
        return NULL;
    e = *pp;
    *pp = e->next;
    v = e->value;
    free(e);
    m->count--;
    return v;
}

void mcpd_map_foreach(const struct mcpd_map *m, void (*fn)(void *value, void *arg), void *arg)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (struct mcpd_map_entry *e = m->buckets[i]; e; e = e->next)
            fn(e->value, arg);
}

void mcpd_map_foreach_key(const struct mcpd_map *m,
                          void (*fn)(const void *key, size_t klen, void *value, void *arg),
                          void *arg)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (struct mcpd_map_entry *e = m->buckets[i]; e; e = e->next)
            fn(e->key, e->klen, e->value, arg);
}
