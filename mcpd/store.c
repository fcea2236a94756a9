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
 * A key is "mk_" followed by 48 lowercase hex digits from RAND_bytes (192
 * bits). It leaves this file once, through key_out; only its SHA-256 and
 * a hint (first 6 and last 4 characters) are stored, and the buffers that
 * held its random bytes are cleansed.
 */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "error.h"
#include "store_db.h"

#define SCHEMA_VERSION 1
#define NAME_MAX_LEN   32
#define KEY_RANDOM     24 /* bytes: 48 hex digits */

struct mcpd_store {
    sqlite3 *db;
};

enum op { OP_CREATE, OP_ROTATE, OP_DISABLE, OP_ENABLE, OP_DELETE };

static const char *const op_sql[] = {
    [OP_CREATE] = ("INSERT INTO bots(name, key_hash, key_hint, disabled, created_ms, rotated_ms) "
                   "VALUES(?1, ?2, ?3, 0, ?4, 0)"),
    [OP_ROTATE] = "UPDATE bots SET key_hash = ?2, key_hint = ?3, rotated_ms = ?4 WHERE name = ?1",
    [OP_DISABLE] = "UPDATE bots SET disabled = 1 WHERE name = ?1",
    [OP_ENABLE] = "UPDATE bots SET disabled = 0 WHERE name = ?1",
    [OP_DELETE] = "DELETE FROM bots WHERE name = ?1",
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

/* ---- small helpers --------------------------------------------------------------------------- */

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

/* "<pre>"<name>"<post>", the name made printable. */
static int user_error(char *err, size_t errcap, const char *pre, const char *name, const char *post)
{
    char shown[48];

    name_for_msg(shown, sizeof(shown), name);
    snprintf(err, errcap, "%s\"%s\"%s", pre, shown, post);
    return MCPD_ECONFIG;
}

static int check_name(const char *name, char *err, size_t errcap)
{
    if (name_valid(name))
        return 0;
    return user_error(err, errcap, "invalid bot name ", name,
                      ": must match ^[a-z0-9][a-z0-9-]{0,31}$");
}

/* A new key into key_out (MCPD_BOT_KEY_LEN + 1 bytes), its hash and hint. */
static int new_key(char *key_out, unsigned char hash[32], char hint[24], char *err, size_t errcap)
{
    return mcpd__store_new_key(MCPD_BOT_KEY_PREFIX, 6, key_out, hash, hint, err, errcap);
}

int mcpd__store_new_key(const char *prefix, size_t head, char *key_out, unsigned char hash[32],
                        char hint[24], char *err, size_t errcap)
{
    unsigned char rnd[KEY_RANDOM];
    size_t n = strlen(prefix);
    int r = 0;

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        snprintf(err, errcap, "no random bytes for a key");
        r = UV_EIO;
        goto out;
    }
    memcpy(key_out, prefix, n);
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

static int bind_change(sqlite3_stmt *q, const char *name, const unsigned char *hash,
                       const char *hint)
{
    int rc = mcpd__store_db_bind_text(q, 1, name, strlen(name));

    if (rc == SQLITE_OK && sqlite3_bind_parameter_count(q) >= 4) {
        rc = sqlite3_bind_blob(q, 2, hash, 32, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = mcpd__store_db_bind_text(q, 3, hint ? hint : "", hint ? strlen(hint) : 0);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(q, 4, mcpd__store_db_now_ms());
    }
    return rc;
}

/* Runs one change and bumps the generation, in one transaction. */
static int change(struct mcpd_store *st, enum op op, const char *name, const unsigned char *hash,
                  const char *hint, char *err, size_t errcap)
{
    sqlite3_stmt *q = NULL;
    int r, rc;

    if ((r = mcpd__store_db_begin(st->db, err, errcap)) != 0)
        return r;
    if (sqlite3_prepare_v2(st->db, op_sql[op], -1, &q, NULL) != SQLITE_OK ||
        bind_change(q, name, hash, hint) != SQLITE_OK) {
        r = mcpd__store_db_fail(st->db, "bots", err, errcap);
        goto out;
    }
    rc = sqlite3_step(q);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        r = user_error(err, errcap, "bot ", name, " already exists");
        goto out;
    }
    if (rc != SQLITE_DONE) {
        r = mcpd__store_db_fail(st->db, "bots", err, errcap);
        goto out;
    }
    if (sqlite3_changes(st->db) == 0) {
        r = user_error(err, errcap, "no bot named ", name, "");
        goto out;
    }
    r = mcpd__store_db_exec(st->db,
                            "UPDATE store_meta SET v = v + 1 WHERE k = 'generation';"
                            "COMMIT",
                            err, errcap);
out:
    sqlite3_finalize(q);
    if (r != 0)
        mcpd__store_db_rollback(st->db);
    return r;
}

/* create and rotate: a new key, then the change; key_out is wiped on failure. */
static int keyed_change(struct mcpd_store *st, enum op op, const char *name, char *key_out,
                        char *err, size_t errcap)
{
    unsigned char hash[32];
    char hint[24];
    int r;

    if ((r = check_name(name, err, errcap)) != 0)
        return r;
    if ((r = new_key(key_out, hash, hint, err, errcap)) != 0)
        return r;
    r = change(st, op, name, hash, hint, err, errcap);
    if (r != 0)
        OPENSSL_cleanse(key_out, MCPD_BOT_KEY_LEN + 1);
    return r;
}

int mcpd_store_bot_create(struct mcpd_store *st, const char *name, char *key_out, char *err,
                          size_t errcap)
{
    return keyed_change(st, OP_CREATE, name, key_out, err, errcap);
}

int mcpd_store_bot_rotate(struct mcpd_store *st, const char *name, char *key_out, char *err,
                          size_t errcap)
{
    return keyed_change(st, OP_ROTATE, name, key_out, err, errcap);
}

int mcpd_store_bot_set_disabled(struct mcpd_store *st, const char *name, bool disabled, char *err,
                                size_t errcap)
{
    int r = check_name(name, err, errcap);

    if (r != 0)
        return r;
    return change(st, disabled ? OP_DISABLE : OP_ENABLE, name, NULL, NULL, err, errcap);
}

int mcpd_store_bot_delete(struct mcpd_store *st, const char *name, char *err, size_t errcap)
{
    int r = check_name(name, err, errcap);

    if (r != 0)
        return r;
    return change(st, OP_DELETE, name, NULL, NULL, err, errcap);
}

/* ---- reading --------------------------------------------------------------------------------- */

static void copy_text(char *dst, size_t cap, const unsigned char *s, int len)
{
    size_t n = s == NULL || len < 0 ? 0 : (size_t)len;

    if (n >= cap)
        n = cap - 1;
    if (n > 0)
        memcpy(dst, s, n);
    dst[n] = '\0';
}

/* One row; a hash of the wrong size (an edited file) becomes a disabled, unmatchable row. */
static void read_row(sqlite3_stmt *q, struct mcpd_bot_row *row)
{
    const void *hash = sqlite3_column_blob(q, 1);
    int hlen = sqlite3_column_bytes(q, 1);

    memset(row, 0, sizeof(*row));
    copy_text(row->name, sizeof(row->name), sqlite3_column_text(q, 0), sqlite3_column_bytes(q, 0));
    copy_text(row->key_hint, sizeof(row->key_hint), sqlite3_column_text(q, 2),
              sqlite3_column_bytes(q, 2));
    row->disabled = sqlite3_column_int64(q, 3) != 0;
    row->created_ms = sqlite3_column_int64(q, 4);
    row->rotated_ms = sqlite3_column_int64(q, 5);
    if (hash != NULL && hlen == 32)
        memcpy(row->key_hash, hash, 32);
    else
        row->disabled = true;
}

static int grow_rows(struct mcpd_bot_row **rows, size_t *cap, size_t n)
{
    struct mcpd_bot_row *p;
    size_t ncap;

    if (n < *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 16;
    if ((p = realloc(*rows, ncap * sizeof(*p))) == NULL)
        return MCPD_ENOMEM;
    *rows = p;
    *cap = ncap;
    return 0;
}

static int select_rows(sqlite3 *db, struct mcpd_bot_row **out, size_t *nout, char *err,
                       size_t errcap)
{
    sqlite3_stmt *q = NULL;
    struct mcpd_bot_row *rows = NULL;
    size_t n = 0, cap = 0;
    int r = 0, rc;

    if (sqlite3_prepare_v2(db,
                           "SELECT name, key_hash, key_hint, disabled, created_ms, rotated_ms "
                           "FROM bots ORDER BY name",
                           -1, &q, NULL) != SQLITE_OK) {
        r = mcpd__store_db_fail(db, "bots", err, errcap);
        goto out;
    }
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if ((r = grow_rows(&rows, &cap, n)) != 0) {
            snprintf(err, errcap, "out of memory");
            goto out;
        }
        read_row(q, &rows[n++]);
    }
    if (rc != SQLITE_DONE)
        r = mcpd__store_db_fail(db, "bots", err, errcap);
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

int mcpd__store_read_table(struct mcpd_store *st, struct mcpd_bot_row **rows, size_t *n,
                           int64_t *gen, char *err, size_t errcap)
{
    int r;

    *rows = NULL;
    *n = 0;
    /* one read transaction: the rows and the generation come from one snapshot */
    if ((r = mcpd__store_db_exec(st->db, "BEGIN", err, errcap)) != 0)
        return r;
    *gen = mcpd_store_generation(st);
    if (*gen < 0) {
        r = mcpd__store_db_fail(st->db, "generation", err, errcap);
        goto out;
    }
    if ((r = select_rows(st->db, rows, n, err, errcap)) != 0)
        goto out;
    r = mcpd__store_db_exec(st->db, "COMMIT", err, errcap);
    if (r != 0) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
out:
    if (r != 0)
        mcpd__store_db_rollback(st->db);
    return r;
}

int mcpd_store_bot_list(struct mcpd_store *st, struct mcpd_bot_row *rows, size_t cap, char *err,
                        size_t errcap)
{
    struct mcpd_bot_row *all = NULL;
    size_t n = 0;
    int r = select_rows(st->db, &all, &n, err, errcap);

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
    static const unsigned char zero[32];
    const struct mcpd_bot_row *found = NULL;
    unsigned char h[32];

    mcpd_store_key_hash(h, key, len);
    if (CRYPTO_memcmp(h, zero, 32) == 0)
        return NULL; /* hashing failed */
    for (size_t i = 0; i < n; i++) {
        /* no early exit: every row costs the same */
        if (CRYPTO_memcmp(h, rows[i].key_hash, 32) == 0 && found == NULL)
            found = &rows[i];
    }
    OPENSSL_cleanse(h, sizeof(h));
    return found;
}
