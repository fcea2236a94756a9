/*
 * audit_query.c - the offline half of the audit log (see audit.h): chain
 * verification and printing, for the CLI. Each call opens its own
 * read-only connection and reads from one snapshot (a read transaction),
 * so a running mcpd may keep writing meanwhile.
 *
 * Verification walks the rows in id order from the anchor (the last row
 * retention deleted, or id 0 with 64 zeros): each row must have the next
 * id, columns of the right storage class, and a hash equal to SHA-256 of
 * the previous hash and its canonical text; the last row must be the head
 * recorded by the writer. The first row that fails is named: an edited
 * row by its id, a deleted row by the id that is missing, a reordered pair
 * by the first of them, a truncated tail by the first id missing before
 * the head. Without a key, a chain shows edits made without recomputing
 * every later hash; someone who can rewrite the whole file can rewrite the
 * chain too (an HMAC keyed outside the file is the later answer).
 *
 * Printing escapes every field (CWE-117): C0 controls, DEL, C1 controls,
 * line and paragraph separators and bidi overrides become \n, \xNN or
 * \uXXXX escapes, a backslash is doubled, and invalid UTF-8 bytes become
 * \xNN (table) or U+FFFD (JSON). Tables are tab-separated with a header
 * line; JSON lines carry every column.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "audit_int.h"
#include "buf.h"
#include "error.h"
#include "log.h"
#include "store_db.h"

#define TABLE_ARGS_MAX 200 /* argument bytes shown per table row */

bool mcpd_audit_store_keyed(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char err[256];
    bool keyed = false;

    if (access(path, F_OK) != 0 || mcpd__store_db_open(&db, path, false, 0, err, sizeof(err)) != 0)
        return false;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM audit_meta WHERE k = 'chain'", -1, &st, NULL) ==
        SQLITE_OK)
        keyed = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return keyed;
}

/* ---- verify ---------------------------------------------------------------------------------- */

struct verify {
    sqlite3 *db;
    sqlite3_stmt *meta, *rows;
    struct audit_link anchor, head;
    const unsigned char *key; /* a keyed chain's key, else NULL */
};

/*
 * Journals left by an mcpd that was killed hold acknowledged records that
 * are not in the chain yet: chain them first (a running mcpd's journal is
 * locked and left alone; it chains its own within milliseconds).
 */
static void recover_first(const char *path, const unsigned char *key)
{
    char err[512];

    if (mcpd__audit_recover(path, key, err, sizeof(err)) != 0)
        fprintf(stderr, "mcpd: warning: %s\n", err);
}

/* The records in id order: schema 2 (blocks), or a schema 1 table (before it is converted). */
static const char *verify_sql(sqlite3 *db)
{
    return mcpd__audit_is_v1(db) ? "SELECT " AUDIT_COLUMNS ", hash FROM audit ORDER BY id"
                                 : "SELECT " AUDIT_RECORD_COLUMNS AUDIT_RECORD_FROM
                                   " ORDER BY b.id, r.key";
}

static int verify_open(struct verify *v, const char *path, const unsigned char *key, char *err,
                       size_t errcap)
{
    bool keyed;
    int r, rc;

    recover_first(path, key);
    if ((r = mcpd__store_db_open(&v->db, path, false, 0, err, errcap)) != 0)
        return r;
    if ((r = mcpd__store_db_exec(v->db, "BEGIN", err, errcap)) != 0)
        return r;
    if (sqlite3_prepare_v2(v->db, "SELECT id, hash FROM audit_meta WHERE k = ?1", -1, &v->meta,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(v->db, verify_sql(v->db), -1, &v->rows, NULL) != SQLITE_OK)
        return mcpd__store_db_fail(v->db, path, err, errcap);
    if ((r = mcpd__audit_chain_mode(v->meta, path, key, &keyed, err, errcap)) != 0)
        return r;
    v->key = keyed ? key : NULL;
    rc = mcpd__audit_meta_get(v->meta, "anchor", &v->anchor);
    if (rc == SQLITE_OK)
        rc = mcpd__audit_meta_get(v->meta, "head", &v->head);
    if (rc == SQLITE_DONE) {
        snprintf(err, errcap, "%s: no audit chain anchor or head", path);
        return MCPD_ECONFIG;
    }
    if (rc != SQLITE_OK)
        return mcpd__store_db_fail(v->db, path, err, errcap);
    /*
     * Asked for a keyed chain, the store says plain: the mark is in the file, and
     * whoever can write it can delete the mark and chain everything again with
     * SHA-256. Only an empty store is no proof of anything.
     */
    if (key != NULL && !keyed && v->head.id != 0) {
        snprintf(err, errcap,
                 "%s: audit.chain is hmac, but this audit log is chained with SHA-256 (or its "
                 "keyed mark was removed): it cannot be vouched for with the key",
                 path);
        return MCPD_ECONFIG;
    }
    return 0;
}

static void verify_close(struct verify *v)
{
    sqlite3_finalize(v->meta);
    sqlite3_finalize(v->rows);
    if (v->db != NULL)
        mcpd__store_db_rollback(v->db);
    sqlite3_close(v->db);
}

/* Checks the current row against prev; returns 0 (good), 1 (bad) or a negative code. */
static int verify_row(struct verify *v, struct audit_link *prev, int64_t *bad)
{
    struct audit_val row[AC_NCOLS];
    char want[AUDIT_HASH_HEX + 1];
    const char *got = (const char *)sqlite3_column_text(v->rows, AC_NCOLS);
    bool typed = mcpd__audit_row_read(v->rows, row);

    if (row[AC_ID].i != prev->id + 1) {
        /* a gap names the first missing id; a row at or before prev (moved) names itself */
        *bad = row[AC_ID].i > prev->id + 1 ? prev->id + 1 : row[AC_ID].i;
        return 1;
    }
    if (mcpd__audit_row_hash(want, prev->hash, row, v->key) != 0)
        return MCPD_ENOMEM;
    if (!typed || got == NULL || sqlite3_column_type(v->rows, AC_NCOLS) != SQLITE_TEXT ||
        sqlite3_column_bytes(v->rows, AC_NCOLS) != AUDIT_HASH_HEX ||
        memcmp(got, want, AUDIT_HASH_HEX) != 0) {
        *bad = row[AC_ID].i;
        return 1;
    }
    prev->id = row[AC_ID].i;
    memcpy(prev->hash, want, sizeof(want));
    return 0;
}

/* The chain must end at the head the writer recorded. */
static int verify_head(const struct verify *v, const struct audit_link *last, int64_t *bad)
{
    if (last->id < v->head.id) {
        *bad = last->id + 1; /* rows missing at the end */
        return 1;
    }
    if (last->id > v->head.id) {
        *bad = v->head.id + 1; /* rows added past the head */
        return 1;
    }
    if (strcmp(last->hash, v->head.hash) != 0) {
        *bad = last->id;
        return 1;
    }
    return 0;
}

int mcpd_audit_verify(const char *path, const unsigned char *chain_key, int64_t *rows,
                      int64_t *bad_row, char *err, size_t errcap)
{
    struct verify v = { 0 };
    struct audit_link prev;
    int r, rc;

    *rows = 0;
    *bad_row = 0;
    if (err != NULL && errcap > 0)
        err[0] = '\0';
    if ((r = verify_open(&v, path, chain_key, err, errcap)) != 0)
        goto out;
    prev = v.anchor;
    while ((rc = sqlite3_step(v.rows)) == SQLITE_ROW) {
        if ((r = verify_row(&v, &prev, bad_row)) != 0)
            goto out;
        (*rows)++;
    }
    if (rc != SQLITE_DONE) {
        r = mcpd__store_db_fail(v.db, path, err, errcap);
        goto out;
    }
    r = verify_head(&v, &prev, bad_row);
out:
    if (r < 0 && err != NULL && errcap > 0 && err[0] == '\0')
        snprintf(err, errcap, "%s: %s", path, mcpd_strerror(r));
    verify_close(&v);
    return r;
}

/* ---- schema 1 to 2 -------------------------------------------------------------------------- */

#define UPGRADE_BLOCK 256 /* records per block when converting */

static int upgrade_rows(sqlite3 *db)
{
    sqlite3_stmt *sel = NULL, *ins = NULL;
    struct audit_val row[AC_NCOLS];
    struct audit_block b = { 0 };
    int rc;

    mcpd_buf_init(&b.text, SIZE_MAX / 2);
    if ((rc = sqlite3_exec(db, AUDIT_BLOCK_TABLE_SQL, NULL, NULL, NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v2(db, "SELECT " AUDIT_COLUMNS ", hash FROM audit ORDER BY id", -1,
                                 &sel, NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v2(db, AUDIT_BLOCK_INSERT_SQL, -1, &ins, NULL)) != SQLITE_OK)
        goto out;
    while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
        const char *hash = (const char *)sqlite3_column_text(sel, AC_NCOLS);

        mcpd__audit_row_read(sel, row); /* the chain verified: the classes are right */
        if (mcpd__audit_block_add(&b, row, hash ? hash : "", NULL, 0) != 0) {
            rc = SQLITE_NOMEM;
            goto out;
        }
        if (b.n == UPGRADE_BLOCK && (rc = mcpd__audit_block_insert(ins, &b)) != SQLITE_OK)
            goto out;
    }
    if (rc == SQLITE_DONE && (rc = mcpd__audit_block_insert(ins, &b)) == SQLITE_OK)
        rc = sqlite3_exec(db,
                          "DROP TABLE audit;"
                          "UPDATE audit_meta SET id = 2 WHERE k = 'schema'",
                          NULL, NULL, NULL);
out:
    sqlite3_finalize(sel);
    sqlite3_finalize(ins);
    mcpd_buf_dispose(&b.text);
    return rc;
}

int mcpd__audit_upgrade(sqlite3 *db, const char *path, char *err, size_t errcap)
{
    int64_t rows = 0, bad = 0;
    int r;

    if (!mcpd__audit_is_v1(db))
        return 0;
    r = mcpd_audit_verify(path, NULL, &rows, &bad, err, errcap); /* schema 1: never keyed */
    if (r > 0) {
        snprintf(err, errcap,
                 "%s: the schema 1 audit log does not verify (first bad row %lld): not converted "
                 "to schema 2; keep the file as evidence and point the store elsewhere",
                 path, (long long)bad);
        return MCPD_ECONFIG;
    }
    if (r < 0)
        return r;
    if (upgrade_rows(db) != SQLITE_OK)
        return mcpd__store_db_fail(db, path, err, errcap);
    LOG_INFO("audit", "%s: converted %lld audit rows to schema 2 (blocks)", path, (long long)rows);
    return 0;
}

/* ---- escaping -------------------------------------------------------------------------------- */

/* One UTF-8 sequence at p; returns its length with *cp, or 0 when invalid. */
static size_t utf8_decode(const unsigned char *p, size_t n, unsigned *cp)
{
    static const unsigned min[] = { 0, 0, 0x80, 0x800, 0x10000 };
    size_t len = p[0] < 0x80             ? 1
                 : (p[0] & 0xe0) == 0xc0 ? 2
                 : (p[0] & 0xf0) == 0xe0 ? 3
                 : (p[0] & 0xf8) == 0xf0 ? 4
                                         : 0;
    unsigned c;

    if (len == 0 || len > n)
        return 0;
    c = len == 1 ? p[0] : p[0] & (0x7fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3fu);
    }
    if (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* Characters that can forge or hide text on a terminal or in a log viewer. */
static bool cp_unsafe(unsigned cp)
{
    return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200e ||
           cp == 0x200f || cp == 0x061c || cp == 0xfeff;
}

static void put_cp_escape(FILE *f, unsigned cp, bool json)
{
    switch (cp) {
    case '\n':
        fputs("\\n", f);
        return;
    case '\r':
        fputs("\\r", f);
        return;
    case '\t':
        fputs("\\t", f);
        return;
    default:
        break;
    }
    if (!json && cp < 0x80)
        fprintf(f, "\\x%02x", cp);
    else
        fprintf(f, "\\u%04x", cp);
}

static void put_escaped(FILE *f, const char *s, size_t len, bool json)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned cp = 0;

    for (size_t i = 0; i < len;) {
        size_t k = utf8_decode(p + i, len - i, &cp);

        if (k == 0) {
            if (json)
                fputs("\\ufffd", f);
            else
                fprintf(f, "\\x%02x", p[i]);
            i++;
            continue;
        }
        if (cp == '\\')
            fputs("\\\\", f);
        else if (json && cp == '"')
            fputs("\\\"", f);
        else if (cp_unsafe(cp))
            put_cp_escape(f, cp, json);
        else
            fwrite(p + i, 1, k, f);
        i += k;
    }
}

/* ---- print ----------------------------------------------------------------------------------- */

/* blocks whose newest record is older than --since are skipped whole */
static const char print_sql[] =
    "SELECT * FROM ("
    " SELECT " AUDIT_RECORD_COLUMNS AUDIT_RECORD_FROM
    " WHERE b.time_ms >= ?1 AND r.value ->> 0 >= ?1 AND (?2 IS NULL OR r.value ->> 2 = ?2)"
    " AND (?3 IS NULL OR r.value ->> 6 = ?3) AND (?4 IS NULL OR r.value ->> 7 = ?4)"
    " ORDER BY b.id DESC, r.key DESC LIMIT ?5"
    ") ORDER BY 1";

static void format_time(char *out, size_t cap, int64_t ms)
{
    time_t sec = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int frac = (int)(ms - (int64_t)sec * 1000);
    struct tm tm;

    if (gmtime_r(&sec, &tm) == NULL) {
        snprintf(out, cap, "%lld", (long long)ms);
        return;
    }
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

static void put_table_text(FILE *f, const struct audit_val *v)
{
    if (v->p == NULL)
        fputs("-", f);
    else
        put_escaped(f, v->p, v->len, false);
}

static void put_table_row(FILE *f, const struct audit_val *row)
{
    static const enum audit_col cols[] = { AC_KIND,      AC_BOT,      AC_SESSION,
                                           AC_TRANSPORT, AC_RESOURCE, AC_TOOL,
                                           AC_LOCATION,  AC_DECISION, AC_STATUS };
    const struct audit_val *args = &row[AC_ARGS];
    char when[40];
    size_t n;

    format_time(when, sizeof(when), row[AC_TIME_MS].i);
    fprintf(f, "%lld\t%s", (long long)row[AC_ID].i, when);
    for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++) {
        fputc('\t', f);
        put_table_text(f, &row[cols[i]]);
    }
    fprintf(f, "\t%lld\t", (long long)row[AC_LATENCY_US].i);
    put_table_text(f, &row[AC_REASON]);
    fputc('\t', f);
    if (args->p == NULL) {
        fputs("-", f);
    } else {
        n = mcpd__audit_utf8_cut(args->p, args->len, TABLE_ARGS_MAX);
        put_escaped(f, args->p, n, false);
        if (n < args->len || row[AC_ARGS_TRUNCATED].i != 0)
            fputs("...", f);
    }
    fputc('\n', f);
}

static void put_json_text(FILE *f, const char *name, const struct audit_val *v)
{
    fprintf(f, ",\"%s\":", name);
    if (v->p == NULL) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    put_escaped(f, v->p, v->len, true);
    fputc('"', f);
}

static void put_json_row(FILE *f, const struct audit_val *row, const char *hash, size_t hash_len)
{
    static const struct {
        const char *name;
        enum audit_col col;
    } texts[] = { { "kind", AC_KIND },
                  { "bot", AC_BOT },
                  { "session", AC_SESSION },
                  { "transport", AC_TRANSPORT },
                  { "resource", AC_RESOURCE },
                  { "tool", AC_TOOL },
                  { "location", AC_LOCATION },
                  { "decision", AC_DECISION },
                  { "reason", AC_REASON },
                  { "args", AC_ARGS },
                  { "args_digest", AC_ARGS_DIGEST },
                  { "status", AC_STATUS } };
    struct audit_val h = { .p = hash, .len = hash_len };
    char when[40];

    format_time(when, sizeof(when), row[AC_TIME_MS].i);
    fprintf(f, "{\"id\":%lld,\"time_ms\":%lld,\"time\":\"%s\"", (long long)row[AC_ID].i,
            (long long)row[AC_TIME_MS].i, when);
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        put_json_text(f, texts[i].name, &row[texts[i].col]);
    fprintf(f, ",\"args_truncated\":%s,\"latency_us\":%lld",
            row[AC_ARGS_TRUNCATED].i ? "true" : "false", (long long)row[AC_LATENCY_US].i);
    put_json_text(f, "hash", &h);
    fputs("}\n", f);
}

static int bind_query(sqlite3_stmt *st, const struct mcpd_audit_query *q)
{
    const char *s[3] = { q->bot, q->tool, q->location };
    int rc = sqlite3_bind_int64(st, 1, q->since_ms > 0 ? q->since_ms : INT64_MIN);

    for (int i = 0; rc == SQLITE_OK && i < 3; i++)
        rc = mcpd__store_db_bind_text(st, i + 2, s[i], s[i] ? strlen(s[i]) : 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 5, q->limit > 0 ? q->limit : -1);
    return rc;
}

static int print_rows(sqlite3_stmt *st, const struct mcpd_audit_query *q, FILE *f)
{
    struct audit_val row[AC_NCOLS];
    int rc;

    if (!q->json)
        fputs("id\ttime\tkind\tbot\tsession\ttransport\tresource\ttool\tlocation\tdecision\t"
              "status\tlatency_us\treason\targs\n",
              f);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        mcpd__audit_row_read(st, row); /* shown as stored, whatever the storage class */
        if (q->json)
            put_json_row(f, row, (const char *)sqlite3_column_text(st, AC_NCOLS),
                         (size_t)sqlite3_column_bytes(st, AC_NCOLS));
        else
            put_table_row(f, row);
    }
    return rc;
}

int mcpd_audit_print(const char *path, const struct mcpd_audit_query *q, void *out_file, char *err,
                     size_t errcap)
{
    FILE *f = out_file;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int r;

    recover_first(path, q->chain_key);
    if ((r = mcpd__store_db_open(&db, path, false, 0, err, errcap)) != 0)
        goto out;
    if (sqlite3_prepare_v2(db, print_sql, -1, &st, NULL) != SQLITE_OK ||
        bind_query(st, q) != SQLITE_OK) {
        r = mcpd__store_db_fail(db, path, err, errcap);
        goto out;
    }
    if (print_rows(st, q, f) != SQLITE_DONE) {
        r = mcpd__store_db_fail(db, path, err, errcap);
        goto out;
    }
    if (fflush(f) != 0 || ferror(f)) {
        snprintf(err, errcap, "write error");
        r = UV_EIO;
    }
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return r;
}
