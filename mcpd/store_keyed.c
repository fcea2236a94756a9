/*
 * store_keyed.c - keyed identities, the part bots and agents share (see
 * store_keyed.h): names, keys, the five changes, reading a table.
 *
 * A key is the kind's prefix followed by 48 lowercase hex digits from
 * RAND_bytes (192 bits). It leaves this file once, through key_out; only
 * its SHA-256 and a hint (the first hint_head and last 4 characters) are
 * stored, and the buffers that held its random bytes are cleansed.
 */
#include "store_keyed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "error.h"
#include "store.h"
#include "store_db.h"

#define NAME_MAX_LEN 32
#define KEY_RANDOM   24 /* bytes: 48 hex digits */

/* Each change's SQL around its table's name: what comes before it, what after. */
static const char *const op_sql[][2] = {
    [MCPD__KEYED_CREATE] = { "INSERT INTO ",
                             ("(name, key_hash, key_hint, disabled, created_ms, rotated_ms) "
                              "VALUES(?1, ?2, ?3, 0, ?4, 0)") },
    [MCPD__KEYED_ROTATE] = { "UPDATE ", (" SET key_hash = ?2, key_hint = ?3, rotated_ms = ?4 "
                                         "WHERE name = ?1") },
    [MCPD__KEYED_DISABLE] = { "UPDATE ", " SET disabled = 1 WHERE name = ?1" },
    [MCPD__KEYED_ENABLE] = { "UPDATE ", " SET disabled = 0 WHERE name = ?1" },
    [MCPD__KEYED_DELETE] = { "DELETE FROM ", " WHERE name = ?1" },
};

/* ---- names ----------------------------------------------------------------------------------- */

/* ^[a-z0-9][a-z0-9-]{0,31}$ */
static bool name_valid(const char *name)
{
    size_t i;

    if (name == NULL || name[0] == '-' || name[0] == '\0')
        return false;
    for (i = 0; name[i] != '\0'; i++) {
        char c = name[i];
        if (i >= NAME_MAX_LEN)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

/* A name as it may appear in a message: printable ASCII, '?' for the rest, at most 40 chars. */
static void name_for_msg(char *out, size_t cap, const char *name)
{
    size_t i, n = 0;

    for (i = 0; name != NULL && name[i] != '\0' && n + 4 < cap; i++) {
        char c = name[i];

        if (i == 40) {
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
        if (c < 0x20 || c >= 0x7f || c == '"')
            c = '?';
        out[n++] = c;
    }
    out[n] = '\0';
}

/* "<pre><noun><mid>"<name>"<post>", the name made printable. */
static int user_error(char *err, size_t errcap, const char *pre, const char *noun, const char *mid,
                      const char *name, const char *post)
{
    char shown[48];

    name_for_msg(shown, sizeof(shown), name);
    snprintf(err, errcap, "%s%s%s\"%s\"%s", pre, noun, mid, shown, post);
    return MCPD_ECONFIG;
}

/* ---- keys ------------------------------------------------------------------------------------ */

/* A new key into key_out (prefix length + 49 bytes), its SHA-256 and its hint. */
static int new_key(const struct mcpd__keyed_kind *kind, char *key_out, unsigned char hash[32],
                   char hint[24], char *err, size_t errcap)
{
    unsigned char rnd[KEY_RANDOM];
    size_t n = strlen(kind->prefix), head = kind->hint_head;
    int r = 0;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        snprintf(err, errcap, "no random bytes for a key");
        r = UV_EIO;
        goto out;
    }
    memcpy(key_out, kind->prefix, n);
    mcpd__store_db_hex(key_out + n, rnd, sizeof(rnd));
    if (mcpd__store_db_sha256(hash, key_out, n + 2 * KEY_RANDOM) != 0) {
        snprintf(err, errcap, "out of memory");
        OPENSSL_cleanse(key_out, n + 2 * KEY_RANDOM + 1);
        r = MCPD_ENOMEM;
        goto out;
    }
    /* first `head`, an ellipsis (U+2026), last 4 */
    memcpy(hint, key_out, head);
    memcpy(hint + head, "\xe2\x80\xa6", 3);
    memcpy(hint + head + 3, key_out + n + 2 * KEY_RANDOM - 4, 4);
    hint[head + 7] = '\0';
out:
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return r;
}

const void *mcpd__keyed_find(const void *rows, size_t n, size_t size, size_t hash_off,
                             const char *key, size_t len)
{
    static const unsigned char zero[32];
    const unsigned char *p = rows;
    const void *found = NULL;
    unsigned char h[32];

    mcpd_store_key_hash(h, key, len);
    if (CRYPTO_memcmp(h, zero, 32) == 0)
        return NULL; /* hashing failed */
    for (size_t i = 0; i < n; i++) {
        /* no early exit: every row costs the same */
        if (CRYPTO_memcmp(h, p + i * size + hash_off, 32) == 0 && found == NULL)
            found = p + i * size;
    }
    OPENSSL_cleanse(h, sizeof(h));
    return found;
}

/* ---- changes --------------------------------------------------------------------------------- */

static int bind_change(sqlite3_stmt *q, const char *name, const unsigned char *hash,
                       const char *hint)
{
    int rc = mcpd__store_db_bind_text(q, 1, name, strlen(name));

    if (rc == SQLITE_OK && hash != NULL) {
        rc = sqlite3_bind_blob(q, 2, hash, 32, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = mcpd__store_db_bind_text(q, 3, hint, strlen(hint));
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(q, 4, mcpd__store_db_now_ms());
    }
    return rc;
}

/* Runs one change and bumps the generation, in one transaction. */
static int change(struct mcpd_store *st, const struct mcpd__keyed_kind *kind,
                  enum mcpd__keyed_op op, const char *name, const unsigned char *hash,
                  const char *hint, char *err, size_t errcap)
{
    sqlite3 *db = mcpd__store_sqlite(st);
    sqlite3_stmt *q = NULL;
    char sql[160];
    int r, rc;

    snprintf(sql, sizeof(sql), "%s%s%s", op_sql[op][0], kind->table, op_sql[op][1]);
    if ((r = mcpd__store_db_begin(db, err, errcap)) != 0)
        return r;
    if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK ||
        bind_change(q, name, hash, hint) != SQLITE_OK) {
        r = mcpd__store_db_fail(db, kind->table, err, errcap);
        goto out;
    }
    rc = sqlite3_step(q);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) { /* extended result codes are on */
        r = user_error(err, errcap, "", kind->noun, " ", name, " already exists");
        goto out;
    }
    if (rc != SQLITE_DONE) {
        r = mcpd__store_db_fail(db, kind->table, err, errcap);
        goto out;
    }
    if (sqlite3_changes(db) == 0) {
        r = user_error(err, errcap, "no ", kind->noun, " named ", name, "");
        goto out;
    }
    r = mcpd__store_db_exec(db,
                            "UPDATE store_meta SET v = v + 1 WHERE k = 'generation';"
                            "COMMIT",
                            err, errcap);
out:
    sqlite3_finalize(q);
    if (r != 0)
        mcpd__store_db_rollback(db);
    return r;
}

int mcpd__keyed_change(struct mcpd_store *st, const struct mcpd__keyed_kind *kind,
                       enum mcpd__keyed_op op, const char *name, char *key_out, char *err,
                       size_t errcap)
{
    unsigned char hash[32];
    char hint[24];
    int r;

    if (!name_valid(name))
        return user_error(err, errcap, "invalid ", kind->noun, " name ", name,
                          ": must match ^[a-z0-9][a-z0-9-]{0,31}$");
    if (op != MCPD__KEYED_CREATE && op != MCPD__KEYED_ROTATE)
        return change(st, kind, op, name, NULL, NULL, err, errcap);
    /* create and rotate: a new key, then the change; key_out is wiped on failure */
    if ((r = new_key(kind, key_out, hash, hint, err, errcap)) != 0)
        return r;
    r = change(st, kind, op, name, hash, hint, err, errcap);
    if (r != 0)
        OPENSSL_cleanse(key_out, kind->key_len + 1);
    return r;
}

/* ---- reading --------------------------------------------------------------------------------- */

int mcpd__store_select(sqlite3 *db, const struct mcpd__store_query *query, void **out, size_t *nout,
                       char *err, size_t errcap)
{
    sqlite3_stmt *q = NULL;
    unsigned char *rows = NULL, *p;
    size_t n = 0, cap = 0;
    int r = 0, rc;

    *out = NULL;
    *nout = 0;
    if (sqlite3_prepare_v2(db, query->sql, -1, &q, NULL) != SQLITE_OK)
        return mcpd__store_db_fail(db, query->what, err, errcap);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            if ((p = realloc(rows, cap * query->size)) == NULL) {
                snprintf(err, errcap, "out of memory");
                r = MCPD_ENOMEM;
                goto out;
            }
            rows = p;
        }
        memset(rows + n * query->size, 0, query->size);
        query->read_row(q, rows + n * query->size);
        n++;
    }
    if (rc != SQLITE_DONE)
        r = mcpd__store_db_fail(db, query->what, err, errcap);
out:
    sqlite3_finalize(q);
    if (r != 0) {
        free(rows);
        return r;
    }
    *out = rows;
    *nout = n;
    return 0;
}

int mcpd__store_read_snapshot(struct mcpd_store *st, const struct mcpd__store_query *query,
                              void **out, size_t *n, int64_t *gen, char *err, size_t errcap)
{
    sqlite3 *db = mcpd__store_sqlite(st);
    int r;

    *out = NULL;
    *n = 0;
    /* one read transaction: the rows and the generation come from one snapshot */
    if ((r = mcpd__store_db_exec(db, "BEGIN", err, errcap)) != 0)
        return r;
    *gen = mcpd_store_generation(st);
    if (*gen < 0) {
        r = mcpd__store_db_fail(db, "generation", err, errcap);
        goto out;
    }
    if ((r = mcpd__store_select(db, query, out, n, err, errcap)) != 0)
        goto out;
    if ((r = mcpd__store_db_exec(db, "COMMIT", err, errcap)) != 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
out:
    if (r != 0)
        mcpd__store_db_rollback(db);
    return r;
}
