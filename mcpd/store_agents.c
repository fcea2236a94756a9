/*
 * store_agents.c - connected agents in the store (see store.h).
 *
 * Tables, created with IF NOT EXISTS when the store opens (the schema
 * version stays 1: a database made before these tables existed simply
 * gets them, and older binaries ignore them):
 *   agents(name PRIMARY KEY, key_hash BLOB(32), key_hint, disabled,
 *          created_ms, rotated_ms, online, last_online_ms)
 *   agent_resources(name PRIMARY KEY, agent, grp, created_ms)
 *
 * Keys are made like bot keys (mcpd__store_new_key) with the prefix "ak_"
 * and a hint of the first 8 and last 4 characters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "error.h"
#include "store.h"
#include "store_db.h"

#define NAME_MAX_LEN 32

static const char agents_schema_sql[] = "CREATE TABLE IF NOT EXISTS agents ("
                                        " name TEXT PRIMARY KEY NOT NULL,"
                                        " key_hash BLOB NOT NULL,"
                                        " key_hint TEXT NOT NULL,"
                                        " disabled INTEGER NOT NULL DEFAULT 0,"
                                        " created_ms INTEGER NOT NULL,"
                                        " rotated_ms INTEGER NOT NULL DEFAULT 0,"
                                        " online INTEGER NOT NULL DEFAULT 0,"
                                        " last_online_ms INTEGER NOT NULL DEFAULT 0);"
                                        "CREATE TABLE IF NOT EXISTS agent_resources ("
                                        " name TEXT PRIMARY KEY NOT NULL,"
                                        " agent TEXT NOT NULL,"
                                        " grp TEXT NOT NULL,"
                                        " created_ms INTEGER NOT NULL);";

int mcpd__store_agents_schema(sqlite3 *db, char *err, size_t errcap)
{
    return mcpd__store_db_exec(db, agents_schema_sql, err, errcap);
}

enum op { OP_CREATE, OP_ROTATE, OP_DISABLE, OP_ENABLE, OP_DELETE };

static const char *const op_sql[] = {
    [OP_CREATE] = ("INSERT INTO agents(name, key_hash, key_hint, disabled, created_ms) "
                   "VALUES(?1, ?2, ?3, 0, ?4)"),
    [OP_ROTATE] = "UPDATE agents SET key_hash = ?2, key_hint = ?3, rotated_ms = ?4 WHERE name = ?1",
    [OP_DISABLE] = "UPDATE agents SET disabled = 1 WHERE name = ?1",
    [OP_ENABLE] = "UPDATE agents SET disabled = 0 WHERE name = ?1",
    [OP_DELETE] = "DELETE FROM agents WHERE name = ?1",
};

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

static int user_error(char *err, size_t errcap, const char *pre, const char *name, const char *post)
{
    char shown[48];
    size_t i, n = 0;

    for (i = 0; name != NULL && name[i] != '\0' && n + 4 < sizeof(shown); i++) {
        char c = name[i];
        if (i == 40) {
            memcpy(shown + n, "...", 3);
            n += 3;
            break;
        }
        shown[n++] = (c < 0x20 || c >= 0x7f || c == '"') ? '?' : c;
    }
    shown[n] = '\0';
    snprintf(err, errcap, "%s\"%s\"%s", pre, shown, post);
    return MCPD_ECONFIG;
}

static int check_name(const char *name, char *err, size_t errcap)
{
    if (name_valid(name))
        return 0;
    return user_error(err, errcap, "invalid agent name ", name,
                      ": must match ^[a-z0-9][a-z0-9-]{0,31}$");
}

/* Runs one change and bumps the generation, in one transaction. */
static int change(struct mcpd_store *st, enum op op, const char *name, const unsigned char *hash,
                  const char *hint, char *err, size_t errcap)
{
    sqlite3 *db = mcpd__store_sqlite(st);
    sqlite3_stmt *q = NULL;
    int r, rc;

    if ((r = mcpd__store_db_begin(db, err, errcap)) != 0)
        return r;
    rc = sqlite3_prepare_v2(db, op_sql[op], -1, &q, NULL);
    if (rc == SQLITE_OK)
        rc = mcpd__store_db_bind_text(q, 1, name, strlen(name));
    if (rc == SQLITE_OK && hash != NULL) {
        rc = sqlite3_bind_blob(q, 2, hash, 32, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = mcpd__store_db_bind_text(q, 3, hint, strlen(hint));
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(q, 4, mcpd__store_db_now_ms());
    }
    if (rc != SQLITE_OK) {
        r = mcpd__store_db_fail(db, "agents", err, errcap);
        goto out;
    }
    rc = sqlite3_step(q);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT) {
        r = user_error(err, errcap, "agent ", name, " already exists");
        goto out;
    }
    if (rc != SQLITE_DONE) {
        r = mcpd__store_db_fail(db, "agents", err, errcap);
        goto out;
    }
    if (sqlite3_changes(db) == 0) {
        r = user_error(err, errcap, "no agent named ", name, "");
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

static int keyed_change(struct mcpd_store *st, enum op op, const char *name, char *key_out,
                        char *err, size_t errcap)
{
    unsigned char hash[32];
    char hint[24];
    int r;

    if ((r = check_name(name, err, errcap)) != 0)
        return r;
    if ((r = mcpd__store_new_key(MCPD_AGENT_KEY_PREFIX, 8, key_out, hash, hint, err, errcap)) != 0)
        return r;
    r = change(st, op, name, hash, hint, err, errcap);
    if (r != 0)
        OPENSSL_cleanse(key_out, MCPD_AGENT_KEY_LEN + 1);
    return r;
}

int mcpd_store_agent_create(struct mcpd_store *st, const char *name, char *key_out, char *err,
                            size_t errcap)
{
    return keyed_change(st, OP_CREATE, name, key_out, err, errcap);
}

int mcpd_store_agent_rotate(struct mcpd_store *st, const char *name, char *key_out, char *err,
                            size_t errcap)
{
    return keyed_change(st, OP_ROTATE, name, key_out, err, errcap);
}

int mcpd_store_agent_set_disabled(struct mcpd_store *st, const char *name, bool disabled, char *err,
                                  size_t errcap)
{
    int r = check_name(name, err, errcap);

    if (r != 0)
        return r;
    return change(st, disabled ? OP_DISABLE : OP_ENABLE, name, NULL, NULL, err, errcap);
}

int mcpd_store_agent_delete(struct mcpd_store *st, const char *name, char *err, size_t errcap)
{
    int r = check_name(name, err, errcap);

    if (r != 0)
        return r;
    return change(st, OP_DELETE, name, NULL, NULL, err, errcap);
}

/* ---- status and resources (no generation bump) ----------------------------------------------- */

/* Runs `sql` with up to three text parameters and an optional integer ?4. */
static int exec_params(struct mcpd_store *st, const char *sql, const char *a, const char *b,
                       const char *c, int64_t n, char *err, size_t errcap)
{
    sqlite3 *db = mcpd__store_sqlite(st);
    const char *p[3] = { a, b, c };
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &q, NULL), r = 0;

    for (int i = 0; i < 3 && rc == SQLITE_OK; i++)
        if (p[i] != NULL)
            rc = mcpd__store_db_bind_text(q, i + 1, p[i], strlen(p[i]));
    if (rc == SQLITE_OK && sqlite3_bind_parameter_count(q) >= 4)
        rc = sqlite3_bind_int64(q, 4, n);
    if (rc != SQLITE_OK || sqlite3_step(q) != SQLITE_DONE)
        r = mcpd__store_db_fail(db, "agents", err, errcap);
    sqlite3_finalize(q);
    return r;
}

int mcpd_store_agent_set_online(struct mcpd_store *st, const char *name, bool online, char *err,
                                size_t errcap)
{
    if (online)
        return exec_params(st, "UPDATE agents SET online = 1, last_online_ms = ?4 WHERE name = ?1",
                           name, NULL, NULL, mcpd__store_db_now_ms(), err, errcap);
    return exec_params(st, "UPDATE agents SET online = 0, last_online_ms = ?4 WHERE name = ?1",
                       name, NULL, NULL, mcpd__store_db_now_ms(), err, errcap);
}

int mcpd_store_agents_all_offline(struct mcpd_store *st, char *err, size_t errcap)
{
    return mcpd__store_db_exec(mcpd__store_sqlite(st), "UPDATE agents SET online = 0 WHERE online",
                               err, errcap);
}

int mcpd_store_agent_add_resource(struct mcpd_store *st, const char *agent, const char *group,
                                  const char *resource, char *err, size_t errcap)
{
    return exec_params(st,
                       "INSERT OR IGNORE INTO agent_resources(name, agent, grp, created_ms) "
                       "VALUES(?3, ?1, ?2, ?4)",
                       agent, group, resource, mcpd__store_db_now_ms(), err, errcap);
}

/* ---- reading --------------------------------------------------------------------------------- */

static void copy_text(char *dst, size_t cap, sqlite3_stmt *q, int col)
{
    const unsigned char *s = sqlite3_column_text(q, col);
    int len = sqlite3_column_bytes(q, col);
    size_t n = s == NULL || len < 0 ? 0 : (size_t)len;

    if (n >= cap)
        n = cap - 1;
    if (n > 0)
        memcpy(dst, s, n);
    dst[n] = '\0';
}

static int select_agents(sqlite3 *db, struct mcpd_agent_row **out, size_t *nout, char *err,
                         size_t errcap)
{
    sqlite3_stmt *q = NULL;
    struct mcpd_agent_row *rows = NULL, *p;
    size_t n = 0, cap = 0;
    int r = 0, rc;

    *out = NULL;
    *nout = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT a.name, a.key_hash, a.key_hint, a.disabled, a.created_ms, "
                           "a.rotated_ms, a.online, a.last_online_ms, "
                           "(SELECT count(*) FROM agent_resources r WHERE r.agent = a.name) "
                           "FROM agents a ORDER BY a.name",
                           -1, &q, NULL) != SQLITE_OK)
        return mcpd__store_db_fail(db, "agents", err, errcap);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        struct mcpd_agent_row *row;
        const void *hash = sqlite3_column_blob(q, 1);

        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            if ((p = realloc(rows, cap * sizeof(*p))) == NULL) {
                snprintf(err, errcap, "out of memory");
                r = MCPD_ENOMEM;
                goto out;
            }
            rows = p;
        }
        row = &rows[n++];
        memset(row, 0, sizeof(*row));
        copy_text(row->name, sizeof(row->name), q, 0);
        copy_text(row->key_hint, sizeof(row->key_hint), q, 2);
        row->disabled = sqlite3_column_int64(q, 3) != 0;
        row->created_ms = sqlite3_column_int64(q, 4);
        row->rotated_ms = sqlite3_column_int64(q, 5);
        row->online = sqlite3_column_int64(q, 6) != 0;
        row->last_online_ms = sqlite3_column_int64(q, 7);
        row->nresources = (unsigned)sqlite3_column_int64(q, 8);
        if (hash != NULL && sqlite3_column_bytes(q, 1) == 32)
            memcpy(row->key_hash, hash, 32);
        else
            row->disabled = true;
    }
    if (rc != SQLITE_DONE)
        r = mcpd__store_db_fail(db, "agents", err, errcap);
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

int mcpd_store_agent_list(struct mcpd_store *st, struct mcpd_agent_row **rows, size_t *n, char *err,
                          size_t errcap)
{
    return select_agents(mcpd__store_sqlite(st), rows, n, err, errcap);
}

int mcpd__store_read_agents(struct mcpd_store *st, struct mcpd_agent_row **rows, size_t *n,
                            int64_t *gen, char *err, size_t errcap)
{
    sqlite3 *db = mcpd__store_sqlite(st);
    int r;

    *rows = NULL;
    *n = 0;
    if ((r = mcpd__store_db_exec(db, "BEGIN", err, errcap)) != 0)
        return r;
    *gen = mcpd_store_generation(st);
    if (*gen < 0) {
        r = mcpd__store_db_fail(db, "generation", err, errcap);
        goto out;
    }
    if ((r = select_agents(db, rows, n, err, errcap)) != 0)
        goto out;
    if ((r = mcpd__store_db_exec(db, "COMMIT", err, errcap)) != 0) {
        free(*rows);
        *rows = NULL;
        *n = 0;
    }
out:
    if (r != 0)
        mcpd__store_db_rollback(db);
    return r;
}

int mcpd_store_agent_resources(struct mcpd_store *st, struct mcpd_agent_resource_row **out,
                               size_t *nout, char *err, size_t errcap)
{
    sqlite3 *db = mcpd__store_sqlite(st);
    struct mcpd_agent_resource_row *rows = NULL, *p;
    sqlite3_stmt *q = NULL;
    size_t n = 0, cap = 0;
    int r = 0, rc;

    *out = NULL;
    *nout = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT agent, grp, name, created_ms FROM agent_resources ORDER BY name",
                           -1, &q, NULL) != SQLITE_OK)
        return mcpd__store_db_fail(db, "agent_resources", err, errcap);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            if ((p = realloc(rows, cap * sizeof(*p))) == NULL) {
                snprintf(err, errcap, "out of memory");
                r = MCPD_ENOMEM;
                goto out;
            }
            rows = p;
        }
        memset(&rows[n], 0, sizeof(rows[n]));
        copy_text(rows[n].agent, sizeof(rows[n].agent), q, 0);
        copy_text(rows[n].group, sizeof(rows[n].group), q, 1);
        copy_text(rows[n].name, sizeof(rows[n].name), q, 2);
        rows[n].created_ms = sqlite3_column_int64(q, 3);
        n++;
    }
    if (rc != SQLITE_DONE)
        r = mcpd__store_db_fail(db, "agent_resources", err, errcap);
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

const struct mcpd_agent_row *mcpd_store_agent_find(const struct mcpd_agent_row *rows, size_t n,
                                                   const char *key, size_t len)
{
    static const unsigned char zero[32];
    const struct mcpd_agent_row *found = NULL;
    unsigned char h[32];

    mcpd_store_key_hash(h, key, len);
    if (CRYPTO_memcmp(h, zero, 32) == 0)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (CRYPTO_memcmp(h, rows[i].key_hash, 32) == 0 && found == NULL)
            found = &rows[i];
    }
    OPENSSL_cleanse(h, sizeof(h));
    return found;
}
