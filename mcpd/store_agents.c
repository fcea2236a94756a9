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
 * Agents are keyed identities like bots (store_keyed.c): the same names,
 * changes and messages, keys with the prefix "ak_" and a hint of the first
 * 8 and last 4 characters.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_db.h"
#include "store_keyed.h"

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

static const struct mcpd__keyed_kind agent_kind = {
    .table = "agents",
    .noun = "agent",
    .prefix = MCPD_AGENT_KEY_PREFIX,
    .hint_head = 8,
    .key_len = MCPD_AGENT_KEY_LEN,
};

int mcpd_store_agent_create(struct mcpd_store *st, const char *name, char *key_out, char *err,
                            size_t errcap)
{
    return mcpd__keyed_change(st, &agent_kind, MCPD__KEYED_CREATE, name, key_out, err, errcap);
}

int mcpd_store_agent_rotate(struct mcpd_store *st, const char *name, char *key_out, char *err,
                            size_t errcap)
{
    return mcpd__keyed_change(st, &agent_kind, MCPD__KEYED_ROTATE, name, key_out, err, errcap);
}

int mcpd_store_agent_set_disabled(struct mcpd_store *st, const char *name, bool disabled, char *err,
                                  size_t errcap)
{
    return mcpd__keyed_change(st, &agent_kind, disabled ? MCPD__KEYED_DISABLE : MCPD__KEYED_ENABLE,
                              name, NULL, err, errcap);
}

int mcpd_store_agent_delete(struct mcpd_store *st, const char *name, char *err, size_t errcap)
{
    return mcpd__keyed_change(st, &agent_kind, MCPD__KEYED_DELETE, name, NULL, err, errcap);
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

/* One row; a hash of the wrong size (an edited file) becomes a disabled, unmatchable row. */
static void read_agent(sqlite3_stmt *q, void *p)
{
    struct mcpd_agent_row *row = p;
    const void *hash = sqlite3_column_blob(q, 1);

    mcpd__store_db_column_text(row->name, sizeof(row->name), q, 0);
    mcpd__store_db_column_text(row->key_hint, sizeof(row->key_hint), q, 2);
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

static const struct mcpd__store_query agent_query = {
    .sql = "SELECT a.name, a.key_hash, a.key_hint, a.disabled, a.created_ms, "
           "a.rotated_ms, a.online, a.last_online_ms, "
           "(SELECT count(*) FROM agent_resources r WHERE r.agent = a.name) "
           "FROM agents a ORDER BY a.name",
    .what = "agents",
    .size = sizeof(struct mcpd_agent_row),
    .read_row = read_agent,
};

int mcpd_store_agent_list(struct mcpd_store *st, struct mcpd_agent_row **rows, size_t *n, char *err,
                          size_t errcap)
{
    void *p;
    int r = mcpd__store_select(mcpd__store_sqlite(st), &agent_query, &p, n, err, errcap);

    *rows = p;
    return r;
}

int mcpd__store_read_agents(struct mcpd_store *st, struct mcpd_agent_row **rows, size_t *n,
                            int64_t *gen, char *err, size_t errcap)
{
    void *p;
    int r = mcpd__store_read_snapshot(st, &agent_query, &p, n, gen, err, errcap);

    *rows = p;
    return r;
}

static void read_resource(sqlite3_stmt *q, void *p)
{
    struct mcpd_agent_resource_row *row = p;

    mcpd__store_db_column_text(row->agent, sizeof(row->agent), q, 0);
    mcpd__store_db_column_text(row->group, sizeof(row->group), q, 1);
    mcpd__store_db_column_text(row->name, sizeof(row->name), q, 2);
    row->created_ms = sqlite3_column_int64(q, 3);
}

int mcpd_store_agent_resources(struct mcpd_store *st, struct mcpd_agent_resource_row **out,
                               size_t *nout, char *err, size_t errcap)
{
    static const struct mcpd__store_query query = {
        .sql = "SELECT agent, grp, name, created_ms FROM agent_resources ORDER BY name",
        .what = "agent_resources",
        .size = sizeof(struct mcpd_agent_resource_row),
        .read_row = read_resource,
    };
    void *p;
    int r = mcpd__store_select(mcpd__store_sqlite(st), &query, &p, nout, err, errcap);

    *out = p;
    return r;
}

const struct mcpd_agent_row *mcpd_store_agent_find(const struct mcpd_agent_row *rows, size_t n,
                                                   const char *key, size_t len)
{
    return mcpd__keyed_find(rows, n, sizeof(*rows), offsetof(struct mcpd_agent_row, key_hash), key,
                            len);
}
