/*
 * store_db.h - sqlite plumbing shared by the store (store.c) and the audit
 * log (audit*.c), which keep their tables in the same file: opening with
 * the project's pragmas, error text and codes, SHA-256 and hex. Nothing
 * outside mcpd/store*.c and mcpd/audit*.c includes it.
 */
#ifndef MCPD_STORE_DB_H
#define MCPD_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/* A bounded wait for another connection's write lock (store CLI vs. audit writer). */
#define MCPD_STORE_BUSY_MS 5000

/*
 * Opens `path` with its own connection (one per thread). Writable opens
 * create the file with mode 0600 first (it holds key hashes and audited
 * arguments; sqlite gives -wal and -shm the same mode), refuse a database
 * that sqlite could only open read-only, and set journal_mode=WAL and
 * synchronous=FULL. busy_ms bounds every wait for a lock. Returns 0 or a
 * negative code with err filled ("<path>: <reason>").
 */
int mcpd__store_db_open(sqlite3 **out, const char *path, bool writable, int busy_ms, char *err,
                        size_t errcap);

/* Runs SQL without results; returns 0 or fails as mcpd__store_db_fail. */
int mcpd__store_db_exec(sqlite3 *db, const char *sql, char *err, size_t errcap);

/*
 * Fills err with "<what>: <sqlite message>" and returns the negative code
 * for the connection's last error: UV_ENOSPC (full), UV_EROFS (read-only),
 * UV_EBUSY (locked past the busy timeout), MCPD_ENOMEM, otherwise UV_EIO.
 */
int mcpd__store_db_fail(sqlite3 *db, const char *what, char *err, size_t errcap);

/* The negative code for a sqlite result code (as mcpd__store_db_fail). */
int mcpd__store_db_code(int rc);

/* BEGIN IMMEDIATE (takes the write lock, waits at most busy_ms). */
int mcpd__store_db_begin(sqlite3 *db, char *err, size_t errcap);
/* ROLLBACK when a transaction is open; never fails. */
void mcpd__store_db_rollback(sqlite3 *db);

/*
 * Binds text with its explicit byte length (never -1), so a NUL inside
 * cannot cut it short. Not copied: s must live until the statement is
 * reset. NULL binds SQL NULL.
 */
int mcpd__store_db_bind_text(sqlite3_stmt *st, int idx, const char *s, size_t len);

/* Column col as text into dst (cap bytes, NUL-terminated, cut short if longer; NULL: ""). */
void mcpd__store_db_column_text(char *dst, size_t cap, sqlite3_stmt *q, int col);

/* SHA-256 of n bytes into out; returns 0, or MCPD_ENOMEM (out zeroed). */
int mcpd__store_db_sha256(unsigned char out[32], const void *p, size_t n);
/* Lowercase hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void mcpd__store_db_hex(char *out, const unsigned char *in, size_t n);

/* Wall clock in ms since the epoch. */
int64_t mcpd__store_db_now_ms(void);

/* ---- store.c, for store_watch.c ---- */

struct mcpd_store;
struct mcpd_bot_row;

/*
 * Reads the whole bot table and its generation from one read transaction.
 * On success *rows is a new array of *n rows (free()), NULL when empty.
 */
int mcpd__store_read_table(struct mcpd_store *st, struct mcpd_bot_row **rows, size_t *n,
                           int64_t *gen, char *err, size_t errcap);

/* ---- store.c, for store_agents.c ---- */

/* The store's connection. */
sqlite3 *mcpd__store_sqlite(struct mcpd_store *st);
/* store_agents.c: creates the agent tables (IF NOT EXISTS) inside the open transaction. */
int mcpd__store_agents_schema(sqlite3 *db, char *err, size_t errcap);
struct mcpd_agent_row;
/* The agent table and the generation from one read transaction (as mcpd__store_read_table). */
int mcpd__store_read_agents(struct mcpd_store *st, struct mcpd_agent_row **rows, size_t *n,
                            int64_t *gen, char *err, size_t errcap);

#endif
