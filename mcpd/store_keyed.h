/*
 * store_keyed.h - what bots (store.c) and agents (store_agents.c) share.
 * Both are keyed identities: a row of (name, key_hash, key_hint, disabled,
 * created_ms, rotated_ms) in a table of their own, a key shown once and
 * stored as its SHA-256, and changes made one at a time, each with a
 * generation bump. A small descriptor says which table, which key and
 * which noun the messages use; the public mcpd_store_bot_* and
 * mcpd_store_agent_* functions are thin wrappers over these. Nothing
 * outside mcpd/store*.c includes this header.
 */
#ifndef MCPD_STORE_KEYED_H
#define MCPD_STORE_KEYED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

struct mcpd_store;

struct mcpd__keyed_kind {
    const char *table;  /* "bots": the table, and what storage errors name */
    const char *noun;   /* "bot": in the messages for the caller's mistakes */
    const char *prefix; /* the key's prefix, e.g. MCPD_BOT_KEY_PREFIX */
    size_t hint_head;   /* key characters the hint shows before its "…" (<= 12) */
    size_t key_len;     /* strlen of a whole key, e.g. MCPD_BOT_KEY_LEN */
};

enum mcpd__keyed_op {
    MCPD__KEYED_CREATE, /* a new row with a new key */
    MCPD__KEYED_ROTATE, /* a new key for an existing row */
    MCPD__KEYED_DISABLE,
    MCPD__KEYED_ENABLE,
    MCPD__KEYED_DELETE,
};

/*
 * Checks the name (^[a-z0-9][a-z0-9-]{0,31}$), then runs one change and
 * bumps the generation in one transaction. CREATE and ROTATE write the new
 * key (kind->key_len + 1 bytes, NUL-terminated) to key_out, wiped again on
 * failure; the other ops ignore key_out (may be NULL). The caller's
 * mistakes are MCPD_ECONFIG with these messages (<noun> from kind):
 *   invalid <noun> name "<name>": must match ^[a-z0-9][a-z0-9-]{0,31}$
 *   <noun> "<name>" already exists
 *   no <noun> named "<name>"
 */
int mcpd__keyed_change(struct mcpd_store *st, const struct mcpd__keyed_kind *kind,
                       enum mcpd__keyed_op op, const char *name, char *key_out, char *err,
                       size_t errcap);

/*
 * The row (borrowed from rows: n elements of `size` bytes, each with its
 * 32-byte key hash at offset hash_off) whose key is `key`, or NULL; the key
 * is hashed once and compared with every row in constant time.
 */
const void *mcpd__keyed_find(const void *rows, size_t n, size_t size, size_t hash_off,
                             const char *key, size_t len);

/* A query that reads rows into an array: each row zeroed, then filled by read_row. */
struct mcpd__store_query {
    const char *sql;
    const char *what; /* what storage errors name */
    size_t size;      /* bytes of one row */
    void (*read_row)(sqlite3_stmt *q, void *row);
};

/* Every row of the query into a new array (*out, free(); NULL when empty). */
int mcpd__store_select(sqlite3 *db, const struct mcpd__store_query *query, void **out, size_t *n,
                       char *err, size_t errcap);

/* The same, with the generation, from one read transaction (one snapshot). */
int mcpd__store_read_snapshot(struct mcpd_store *st, const struct mcpd__store_query *query,
                              void **out, size_t *n, int64_t *gen, char *err, size_t errcap);

#endif
