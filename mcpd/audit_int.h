/*
 * audit_int.h - internals shared by the audit log's files: audit.c (the
 * writer thread and the loop side), audit_row.c (schema, the canonical row
 * text and its hash, argument redaction) and audit_query.c (verify, print).
 * Nothing outside mcpd/audit*.c includes it.
 */
#ifndef MCPD_AUDIT_INT_H
#define MCPD_AUDIT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <sqlite3.h>

#include "buf.h"

#define AUDIT_SCHEMA_VERSION 2
#define AUDIT_ZERO_HASH      "0000000000000000000000000000000000000000000000000000000000000000"
#define AUDIT_HASH_HEX       64

/* The stored columns, in canonical (hashing) order; `hash` follows them in the table. */
enum audit_col {
    AC_ID,
    AC_TIME_MS,
    AC_KIND,
    AC_BOT,
    AC_SESSION,
    AC_TRANSPORT,
    AC_RESOURCE,
    AC_TOOL,
    AC_LOCATION,
    AC_DECISION,
    AC_REASON,
    AC_ARGS,
    AC_ARGS_TRUNCATED,
    AC_ARGS_DIGEST,
    AC_STATUS,
    AC_LATENCY_US,
    AC_NCOLS
};

/* The same list as SQL, for INSERT and SELECT. */
#define AUDIT_COLUMNS                                                                          \
    "id, time_ms, kind, bot, session, transport, resource, tool, location, decision, reason, " \
    "args, args_truncated, args_digest, status, latency_us"

/* A record of audit_block b (json_each r), as the columns of AUDIT_COLUMNS, then hash. */
#define AUDIT_RECORD_COLUMNS                                                                      \
    "b.id + r.key, r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3, r.value ->> 4, "   \
    "r.value ->> 5, r.value ->> 6, r.value ->> 7, r.value ->> 8, r.value ->> 9, r.value ->> 10, " \
    "r.value ->> 11, r.value ->> 12, r.value ->> 13, r.value ->> 14, r.value ->> 15"
#define AUDIT_RECORD_FROM " FROM audit_block b, json_each(b.rows) r"

/* One column's value: integer columns use i, text columns p/len (p NULL: SQL NULL). */
struct audit_val {
    const char *p;
    size_t len;
    int64_t i;
};

/* A link of the chain: a row id and its hash (hex). */
struct audit_link {
    int64_t id;
    char hash[AUDIT_HASH_HEX + 1];
};

extern const char mcpd__audit_schema_sql[];

/* Whether column c holds an integer. */
bool mcpd__audit_col_is_int(enum audit_col c);
/* The kind's stored name ("call", "deny", "list", "auth", "result"; "unknown" otherwise). */
const char *mcpd__audit_kind_name(int kind);

/* Decimal text of v into out (at least 21 bytes); returns its length. */
size_t mcpd__audit_put_dec(char *out, int64_t v);

/*
 * hex SHA-256(prev "\n" canonical(row)) into out (65 bytes). The canonical
 * text is, for each column in enum audit_col order,
 *     <name> "=" <decimal byte length> ":" <bytes> "\n"     (a value)
 *     <name> "=-\n"                                          (SQL NULL)
 * with integers written in decimal. Returns 0 or MCPD_ENOMEM.
 */
int mcpd__audit_row_hash(char out[AUDIT_HASH_HEX + 1], const char *prev,
                         const struct audit_val row[AC_NCOLS], const unsigned char *key);

/*
 * A keyed chain (audit.chain: hmac) uses HMAC-SHA256 under `key` (32 bytes,
 * derived from the master key with AUDIT_KEY_INFO) where a plain chain uses
 * SHA-256: then a rewrite of the whole file by someone without the key is
 * found too. audit_meta 'chain' = (1, mcpd__audit_key_check(key)) marks a
 * store as keyed; the check names the key without revealing it.
 */
#define AUDIT_KEY_INFO "mcpd audit chain v1"
void mcpd__audit_key_check(const unsigned char key[32], char out[AUDIT_HASH_HEX + 1]);
/*
 * Whether the store of `meta_get` (a prepared "SELECT id, hash FROM
 * audit_meta WHERE k = ?1") is keyed, checked against key (NULL: none
 * given). Returns 0 (*keyed set), or MCPD_ECONFIG with err filled: a keyed
 * store without its key, or with another one.
 */
int mcpd__audit_chain_mode(sqlite3_stmt *meta_get, const char *path, const unsigned char *key,
                           bool *keyed, char *err, size_t errcap);

/* audit_block: the records of one commit (schema 2). */
#define AUDIT_BLOCK_TABLE_SQL                                        \
    "CREATE TABLE IF NOT EXISTS audit_block ("                       \
    " id INTEGER PRIMARY KEY,"   /* the id of its first record */    \
    " n INTEGER NOT NULL,"       /* records: ids id .. id + n - 1 */ \
    " time_ms INTEGER NOT NULL," /* the latest time_ms among them */ \
    " rows TEXT NOT NULL);"
#define AUDIT_BLOCK_INSERT_SQL \
    "INSERT INTO audit_block(id, n, time_ms, rows) VALUES(?1, ?2, ?3, ?4)"

/* A block being built: the JSON array of its records so far, first id, count, newest time. */
struct audit_block {
    struct mcpd_buf text;
    int64_t first, tmax;
    size_t n;
};

/*
 * Adds a record (its id in row[AC_ID], its hash) to b. Returns 0 or a buf
 * error. text (may be NULL): the record's mcpd__audit_row_json with an
 * empty hash, made already (the journal line's), into which the hash is
 * spliced instead of writing the row again.
 */
int mcpd__audit_block_add(struct audit_block *b, const struct audit_val row[AC_NCOLS],
                          const char *hash, const char *text, size_t text_len);

/*
 * Inserts b (nothing when empty) with ins, a prepared AUDIT_BLOCK_INSERT_SQL,
 * and empties it. Returns a sqlite code.
 */
int mcpd__audit_block_insert(sqlite3_stmt *ins, struct audit_block *b);

/* Whether db holds a schema 1 audit table (one row per record, not yet converted). */
bool mcpd__audit_is_v1(sqlite3 *db);

/*
 * Appends the record as its element of an audit_block's `rows`: the JSON
 * array [time_ms, kind, ..., latency_us, hash] (every column but id, in
 * enum order, then the hash; SQL NULL as null). Returns 0 or a buf error.
 */
int mcpd__audit_row_json(struct mcpd_buf *b, const struct audit_val row[AC_NCOLS],
                         const char *hash);

/*
 * Appends j as json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS |
 * JSON_ENCODE_ANY) would, faster. Returns 0; 1 when j holds what only
 * jansson writes (a real, a key with a NUL, deep nesting: b unchanged, use
 * json_dumps); or MCPD_ENOMEM.
 */
int mcpd__audit_canon(struct mcpd_buf *b, const json_t *j);

/*
 * Reads columns 0..15 of a SELECT AUDIT_COLUMNS row (pointers valid until
 * the next step). Returns false when a column has the wrong storage class
 * (an integer column holding text, a text column holding a number or a
 * blob): an edit that the canonical text alone could miss.
 */
bool mcpd__audit_row_read(sqlite3_stmt *st, struct audit_val row[AC_NCOLS]);

/*
 * Redacts and canonicalises the arguments (see audit.c); with key, json is
 * a whole JSON-RPC request and the arguments are its params[key] (absent:
 * *text NULL). *text is a new
 * string (free()) of at most cap bytes, cut at a UTF-8 boundary with
 * *truncated set when longer, and digest the hex SHA-256 of the whole
 * redacted canonical text. Arguments that do not parse as JSON leave
 * *text NULL and digest empty. Returns 0 or MCPD_ENOMEM.
 */
int mcpd__audit_args(const char *json, size_t len, const char *key, size_t cap, char **text,
                     size_t *text_len, bool *truncated, char digest[AUDIT_HASH_HEX + 1]);

/*
 * The same for the arguments as a value (borrowed, never modified: a value
 * that needs redaction is redacted on a copy). NULL: *text NULL.
 */
int mcpd__audit_args_value(json_t *args, size_t cap, char **text, size_t *text_len, bool *truncated,
                           char digest[AUDIT_HASH_HEX + 1]);

/* The longest prefix of s (len bytes) of at most cap bytes not splitting a UTF-8 sequence. */
size_t mcpd__audit_utf8_cut(const char *s, size_t len, size_t cap);

/*
 * Converts a schema 1 audit table (one row per record) into audit_blocks,
 * inside the caller's write transaction on db, when there is one: only if
 * its chain verifies (else MCPD_ECONFIG with the first bad row in err: the
 * evidence stays as it is). Hashes are unchanged (the canonical text is
 * the same). Returns 0 (also when there is nothing to convert).
 */
int mcpd__audit_upgrade(sqlite3 *db, const char *path, char *err, size_t errcap);

/* Reads the 'anchor' or 'head' link of audit_meta; returns a sqlite code (SQLITE_DONE: absent). */
int mcpd__audit_meta_get(sqlite3_stmt *get, const char *key, struct audit_link *out);

/* ---- the journal (audit_journal.c) ---------------------------------------------------------- */

/* One journal file, written by the loop (under the audit's lock). */
struct audit_jnl {
    int fd; /* -1: none */
    char *path;
    uint64_t bytes; /* written so far */
};

/* What mcpd__jnl_parse reports, line by line (row: borrowed for the call). */
struct jnl_sink {
    void *arg;
    int (*record)(void *arg, int64_t handle, json_t *row);
    int (*outcome)(void *arg, int64_t handle, int64_t latency_us, const char *status, size_t len);
};

/*
 * Creates and locks "<db>-audit-<instance>-<seq>.jnl" (0600, O_EXCL); with
 * sync, the directory is fsynced so that the name survives power loss.
 * 0 or -errno with err.
 */
int mcpd__jnl_create(struct audit_jnl *j, const char *db, const char *instance, unsigned seq,
                     bool sync, char *err, size_t errcap);
/* Closes j (removing the file when remove is set). */
void mcpd__jnl_close(struct audit_jnl *j, bool remove);
/* Appends n bytes in full (then fdatasync when sync); 0 or -errno (nothing of it stays). */
int mcpd__jnl_append(struct audit_jnl *j, const char *p, size_t n, bool sync);
/* The file name part of a path. */
const char *mcpd__jnl_basename(const char *path);
/*
 * Calls fn for every journal of db that no process holds (locked for the
 * call), in name order; stops at the first non-zero return, which it returns.
 */
int mcpd__jnl_orphans(const char *db, int (*fn)(void *arg, const char *path, int fd), void *arg);
/*
 * Parses journal text: every complete line, in order, to s. *used: the
 * bytes of the lines parsed. Returns 0 (an incomplete last line is left
 * unparsed), or non-zero at a malformed line (*used: where it starts) or
 * when the sink failed.
 */
int mcpd__jnl_parse(const char *p, size_t len, size_t *used, const struct jnl_sink *s);

/*
 * Chains the records of journals whose mcpd is gone into the database at
 * path, and removes them (the CLI, before reading). Returns 0, or a
 * negative code with err.
 */
int mcpd__audit_recover(const char *path, const unsigned char *chain_key, char *err, size_t errcap);

#endif
