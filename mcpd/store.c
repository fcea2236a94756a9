/*
 * store.c - bot keys in sqlite (see store.h); the watcher thread lives in
 * store_watch.c.
 *
 * Tables (in the same file as the audit log, which has its own):
 *   bots(name PRIMARY KEY, key_hash BLOB(32), key_hint, disabled,
 *        created_ms, rotated_ms)   rotated_ms is 0 until the first rotation
 *   store_meta(k PRIMARY KEY, v)   'generation': bumped in the transaction
 *                                  of every change; 'schema': 1
 *
 * A key is "mk_" followed by 48 lowercase hex digits (192 bits), its hint
 * the first 6 and last 4 characters; keys, names, changes and reading are
 * shared with agents (store_keyed.c).
 */
#include "store.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "error.h"
#include "store_db.h"
#include "store_keyed.h"

#define SCHEMA_VERSION 1

struct mcpd_store {
    sqlite3 *db;
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS bots ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " key_hash BLOB NOT NULL,"
    " key_hint TEXT NOT NULL,"
    " disabled INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " rotated_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS store_meta (k TEXT PRIMARY KEY NOT NULL, v INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO store_meta(k, v) VALUES('generation', 0), ('schema', 1);";

static const struct mcpd__keyed_kind bot_kind = {
    .table = "bots",
    .noun = "bot",
    .prefix = MCPD_BOT_KEY_PREFIX,
    .hint_head = 6,
    .key_len = MCPD_BOT_KEY_LEN,
};

/* ---- open, close, generation ----------------------------------------------------------------- */

static int check_schema(sqlite3 *db, const char *path, char *err, size_t errcap)
{
    sqlite3_stmt *st = NULL;
    int r = 0;

    if (sqlite3_prepare_v2(db, "SELECT v FROM store_meta WHERE k = 'schema'", -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        r = mcpd__store_db_fail(db, path, err, errcap);
        goto out;
    }
    if (sqlite3_column_int64(st, 0) != SCHEMA_VERSION) {
        snprintf(err, errcap, "%s: store schema version %lld is not supported", path,
                 (long long)sqlite3_column_int64(st, 0));
        r = MCPD_ECONFIG;
    }
out:
    sqlite3_finalize(st);
    return r;
}

int mcpd_store_open(struct mcpd_store **out, const char *path, char *err, size_t errcap)
{
    struct mcpd_store *st = NULL;
    sqlite3 *db = NULL;
    int r;

    *out = NULL;
    if ((r = mcpd__store_db_open(&db, path, true, MCPD_STORE_BUSY_MS, err, errcap)) != 0)
        goto out;
    if ((r = mcpd__store_db_begin(db, err, errcap)) != 0 ||
        (r = mcpd__store_db_exec(db, schema_sql, err, errcap)) != 0 ||
        (r = mcpd__store_agents_schema(db, err, errcap)) != 0 ||
        (r = check_schema(db, path, err, errcap)) != 0 ||
        (r = mcpd__store_db_exec(db, "COMMIT", err, errcap)) != 0)
        goto out;
    if ((st = calloc(1, sizeof(*st))) == NULL) {
        snprintf(err, errcap, "out of memory");
        r = MCPD_ENOMEM;
        goto out;
    }
    st->db = db;
    db = NULL;
    *out = st;
out:
    if (db != NULL)
        mcpd__store_db_rollback(db);
    sqlite3_close(db);
    return r;
}

sqlite3 *mcpd__store_sqlite(struct mcpd_store *st)
{
    return st->db;
}

void mcpd_store_close(struct mcpd_store *st)
{
    if (st == NULL)
        return;
    sqlite3_close(st->db);
    free(st);
}

int64_t mcpd_store_generation(struct mcpd_store *st)
{
    sqlite3_stmt *q = NULL;
    int64_t gen;

    if (sqlite3_prepare_v2(st->db, "SELECT v FROM store_meta WHERE k = 'generation'", -1, &q,
                           NULL) != SQLITE_OK) {
        gen = mcpd__store_db_fail(st->db, "generation", NULL, 0);
        goto out;
    }
    if (sqlite3_step(q) == SQLITE_ROW)
        gen = sqlite3_column_int64(q, 0);
    else
        gen = mcpd__store_db_fail(st->db, "generation", NULL, 0);
out:
    sqlite3_finalize(q);
    return gen;
}

/* ---- changes --------------------------------------------------------------------------------- */

int mcpd_store_bot_create(struct mcpd_store *st, const char *name, char *key_out, char *err,
                          size_t errcap)
{
    return mcpd__keyed_change(st, &bot_kind, MCPD__KEYED_CREATE, name, key_out, err, errcap);
}

int mcpd_store_bot_rotate(struct mcpd_store *st, const char *name, char *key_out, char *err,
                          size_t errcap)
{
    return mcpd__keyed_change(st, &bot_kind, MCPD__KEYED_ROTATE, name, key_out, err, errcap);
}

int mcpd_store_bot_set_disabled(struct mcpd_store *st, const char *name, bool disabled, char *err,
                                size_t errcap)
{
    return mcpd__keyed_change(st, &bot_kind, disabled ? MCPD__KEYED_DISABLE : MCPD__KEYED_ENABLE,
                              name, NULL, err, errcap);
}

int mcpd_store_bot_delete(struct mcpd_store *st, const char *name, char *err, size_t errcap)
{
    return mcpd__keyed_change(st, &bot_kind, MCPD__KEYED_DELETE, name, NULL, err, errcap);
}

/* ---- reading --------------------------------------------------------------------------------- */

/* One row; a hash of the wrong size (an edited file) becomes a disabled, unmatchable row. */
static void read_row(sqlite3_stmt *q, void *p)
{
    struct mcpd_bot_row *row = p;
    const void *hash = sqlite3_column_blob(q, 1);

    mcpd__store_db_column_text(row->name, sizeof(row->name), q, 0);
    mcpd__store_db_column_text(row->key_hint, sizeof(row->key_hint), q, 2);
    row->disabled = sqlite3_column_int64(q, 3) != 0;
    row->created_ms = sqlite3_column_int64(q, 4);
    row->rotated_ms = sqlite3_column_int64(q, 5);
    if (hash != NULL && sqlite3_column_bytes(q, 1) == 32)
        memcpy(row->key_hash, hash, 32);
    else
        row->disabled = true;
}

static const struct mcpd__store_query bot_query = {
    .sql =
        "SELECT name, key_hash, key_hint, disabled, created_ms, rotated_ms FROM bots ORDER BY name",
    .what = "bots",
    .size = sizeof(struct mcpd_bot_row),
    .read_row = read_row,
};

int mcpd__store_read_table(struct mcpd_store *st, struct mcpd_bot_row **rows, size_t *n,
                           int64_t *gen, char *err, size_t errcap)
{
    void *p;
    int r = mcpd__store_read_snapshot(st, &bot_query, &p, n, gen, err, errcap);

    *rows = p;
    return r;
}

int mcpd_store_bot_list(struct mcpd_store *st, struct mcpd_bot_row *rows, size_t cap, char *err,
                        size_t errcap)
{
    void *all = NULL;
    size_t n = 0;
    int r = mcpd__store_select(st->db, &bot_query, &all, &n, err, errcap);

    if (r != 0)
        return r;
    if (n > (size_t)INT32_MAX) {
        free(all);
        snprintf(err, errcap, "too many bots");
        return MCPD_ETOOBIG;
    }
    if (rows != NULL && cap > 0)
        memcpy(rows, all, (n < cap ? n : cap) * sizeof(*rows));
    free(all);
    return (int)n;
}

/* ---- keys ------------------------------------------------------------------------------------ */

void mcpd_store_key_hash(unsigned char out[32], const char *key, size_t len)
{
    mcpd__store_db_sha256(out, key, len);
}

bool mcpd_store_key_equal(const unsigned char key_hash[32], const char *key, size_t len)
{
    unsigned char h[32];
    bool eq;

    mcpd_store_key_hash(h, key, len);
    eq = CRYPTO_memcmp(h, key_hash, 32) == 0;
    OPENSSL_cleanse(h, sizeof(h));
    return eq;
}

const struct mcpd_bot_row *mcpd_store_bot_find(const struct mcpd_bot_row *rows, size_t n,
                                               const char *key, size_t len)
{
    return mcpd__keyed_find(rows, n, sizeof(*rows), offsetof(struct mcpd_bot_row, key_hash), key,
                            len);
}
