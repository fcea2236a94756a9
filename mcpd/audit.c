/*
 * audit.c - the audit log's runtime half (see audit.h): records submitted
 * on the loop are made durable in a journal file, one write per loop
 * iteration, and acknowledged; a helper thread then chains them into
 * sqlite in large transactions. The row format lives in audit_row.c, the
 * journal files in audit_journal.c, verify and print in audit_query.c.
 *
 *   loop thread                                  helper thread
 *   submit: redact + serialise the arguments,    wait for records (then
 *           copy the record to `local`           gather INGEST_WAIT_MS more)
 *   prepare (before the loop polls):             BEGIN IMMEDIATE; read the
 *     one line per record and outcome; one         head; chain every record
 *     write() to the journal, under the lock       (ids and hashes are given
 *     that hands them to the helper's queue        here); outcomes: the
 *     run the callbacks (answers released)         call's id; audit_block
 *                                                  rows; head; the journal's
 *                                                  watermark; retention;
 *                                                  COMMIT; checkpoints
 *
 * Why a journal: a sqlite commit costs 20-40 us of the loop's time however
 * few records it holds, and an answer waits for its record to be durable;
 * a write() of a few hundred bytes costs a few. A written line survives
 * kill -9 of mcpd as a WAL commit does (both sit in the page cache; with
 * sync_full each write is followed by fdatasync, for power loss).
 *
 * Why ids and hashes on the helper: several mcpd processes may write one
 * audit file (an IDE starts one `mcpd stdio` per window). The chain is
 * extended inside a write transaction that re-reads the head, so it never
 * forks; a process-local chain could. A call's outcome therefore names
 * the call by a handle (a per-process counter, given to the caller in
 * row_id), which the helper maps to the call's id when it chains it.
 *
 * A journal that its mcpd left behind (killed) is chained by the next
 * writer to open the file, or by `mcpd audit` (mcpd__audit_recover), from
 * its watermark: what the helper had already chained is recorded in
 * audit_meta ("j:<journal name>" = bytes) in the same transaction. An
 * outcome whose call was chained before the crash (its handle is lost
 * with the process) is dropped with a warning; the call's row stays.
 *
 * Chain: each record's hash is hex SHA-256(previous record's hash "\n"
 * canonical record text) (audit_int.h), the first record's previous hash
 * being 64 zeros. audit_meta holds two links: `head` (the last record
 * written, moved in the same transaction) and `anchor` (the last record
 * deleted by retention, whose hash the first remaining record chains
 * from). Retention deletes only whole leading blocks (by record count, or
 * the leading blocks whose newest record is older than retain_ms), a
 * bounded number per transaction.
 *
 * Failure: a journal write that fails (disk full, I/O error) fails its
 * records and turns the audit into a refusing state: submit returns
 * MCPD_EUNAVAIL from then on, and the reason is logged once. So does a
 * transaction the helper cannot commit (the lock not obtained within
 * busy_timeout_ms, a read-only or full database): the records it held stay
 * in the journal, which is left behind for the next start to chain. There
 * is no retry: an audit that lost writes needs an operator.
 */
#include "audit.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "audit_int.h"
#include "buf.h"
#include "crypto.h"
#include "error.h"
#include "log.h"
#include "map.h"
#include "store_db.h"

#define AUDIT_MAGIC       0xa0d17u
#define DEFAULT_MAX_ARGS  ((size_t)64 * 1024)
#define DEFAULT_QUEUE_CAP 65536u
#define QUEUE_BYTES_MAX   ((size_t)64 * 1024 * 1024) /* record bytes waiting at most */
#define FIELD_MAX         4096                       /* bytes kept of each text field */
#define RETAIN_STEP       4096 /* records retention deletes per commit beyond its size */
#define BLOCK_BYTES       ((size_t)1024 * 1024) /* a block's JSON text, about at most */
#define CKPT_BYTES        ((int64_t)4096000)    /* WAL between checkpoints: 1000 pages of 4 KiB */
#define CKPT_FORCE_FACTOR 8u                    /* past this many times ckpt_pages: RESTART */
#define INGEST_WAIT_MS    5 /* the helper gathers records this long before a transaction */
#define INGEST_BYTES      ((size_t)1 << 20)    /* or until this much journal text waits */
#define JNL_ROTATE_BYTES  ((uint64_t)16 << 20) /* a journal is replaced past this size */
#define JNL_STUCK_FACTOR  4u /* a journal this many times too large (never replaced): refuse */
#define CALLS_MAX         ((size_t)1 << 20) /* calls chained whose outcome has not come */

struct audit_item {
    struct audit_item *next;
    mcpd_audit_cb cb;
    void *data;
    size_t bytes;   /* counted against QUEUE_BYTES_MAX */
    int64_t handle; /* > 0: a call, whose outcome will name it by this */
    struct audit_val val[AC_NCOLS];
    char digest[AUDIT_HASH_HEX + 1];
    int64_t *row_id;  /* the caller's: receives the handle before cb */
    char *args_owned; /* the redacted, capped argument text */
    /*
     * The record's row as its journal line has it (mcpd__audit_row_json
     * with an empty hash), which the helper splices the hash into; NULL
     * for records read back from a journal. It lies in the text of the
     * loop's flush, which the flush's first item owns (text_owned): the
     * items of one flush reach the helper together and go together.
     */
    const char *row;
    size_t row_off, row_len; /* row_off: in the flush's text while it is written */
    char *text_owned;
    char storage[]; /* the text fields */
};

/* The outcome of a call: call_id is its handle until the helper resolves it to the row id. */
struct audit_outcome {
    int64_t call_id, latency_us;
    char status[24];
};

/* A callback to run once the records are in the journal. */
struct audit_ack {
    mcpd_audit_cb cb;
    void *data;
};

struct mcpd_audit {
    unsigned magic;
    bool sync_full;
    bool has_key;          /* audit.chain: hmac: a key was given */
    bool keyed;            /* the store's chain is HMAC under key */
    unsigned char key[32]; /* wiped when the audit is freed */
    void (*acked)(void *arg);
    void *acked_arg;
    uv_loop_t *loop;
    uv_prepare_t flush; /* writes the journal before the loop polls */
    uv_timer_t timer;   /* outcomes alone; the final flush */
    uv_async_t async;   /* the helper failed */
    int handles_open;
    size_t max_args;
    unsigned queue_cap;
    int64_t retain_ms, retain_rows;
    int busy_ms;
    char *path;
    /* the loop's */
    struct audit_item *local, **local_tail;
    struct audit_outcome *outs;
    size_t nouts, outs_cap;
    size_t pending, pending_bytes;
    int64_t next_handle;
    struct mcpd_buf lines;
    size_t lines_hint; /* the room a flush's text starts with */
    struct audit_ack *acks;
    size_t acks_cap;
    bool closing, refusing, handle_closed;
    int fail_code;
    void (*close_cb)(void *data);
    void *close_data;
    /* shared, under mu */
    uv_mutex_t mu;
    uv_cond_t cv;
    struct audit_jnl jnl; /* the loop appends (under mu), the helper replaces it */
    struct audit_item *q, **q_tail;
    struct audit_outcome *qouts;
    size_t nqouts, qouts_cap, qbytes;
    bool stop, helper_waiting, gathering;
    int hfail; /* the helper's failure (a negative code), 0: none */
    char hwhy[256];
    atomic_size_t backlog; /* item bytes handed to the helper and not yet chained */
    /* the helper's (the loop's before it starts and after it stopped) */
    uv_thread_t helper_thread;
    bool helper_started;
    sqlite3 *db;
    sqlite3_stmt *ins, *meta_get, *meta_set, *retain_first, *retain_last, *del, *begin, *commit,
        *jset, *jdel;
    struct audit_block block;
    struct mcpd_buf outs_text;
    struct audit_outcome *houts; /* swapped with qouts */
    size_t houts_cap;
    struct mcpd_map calls; /* handle -> row id: chained calls whose outcome is to come */
    unsigned ckpt_pages;
    int wal_pages;
    uint64_t jnl_max; /* JNL_ROTATE_BYTES unless a test asks for less */
    char instance[17];
    unsigned jseq;
    char rec_instance[300]; /* recovery: the journal name without its sequence number */
};

static const char *const stmt_sql[] = {
    AUDIT_BLOCK_INSERT_SQL,
    "SELECT id, hash FROM audit_meta WHERE k = ?1",
    "UPDATE audit_meta SET id = ?2, hash = ?3 WHERE k = ?1",
    /*
     * retention: the first block past the anchor that is young enough
     * (all: a large time), and the last block retention may delete, up to
     * a record id, with the hash of its last record (the new anchor)
     */
    ("SELECT id FROM audit_block WHERE id > ?1 AND time_ms >= ?2 ORDER BY id LIMIT 1"),
    ("SELECT id + n - 1, rows -> (n - 1) ->> 15 FROM audit_block WHERE id + n - 1 <= ?1 "
     "ORDER BY id DESC LIMIT 1"),
    "DELETE FROM audit_block WHERE id <= ?1",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "INSERT OR REPLACE INTO audit_meta(k, id, hash) VALUES(?1, ?2, '')",
    "DELETE FROM audit_meta WHERE k = ?1",
};

/* ---- one transaction (the helper thread) ----------------------------------------------------- */

static int meta_set(struct mcpd_audit *a, const char *key, const struct audit_link *l)
{
    sqlite3_stmt *st = a->meta_set;
    int rc;

    sqlite3_reset(st);
    rc = sqlite3_bind_text(st, 1, key, (int)strlen(key), SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 2, l->id);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 3, l->hash, AUDIT_HASH_HEX, SQLITE_STATIC);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_DONE)
        rc = sqlite3_changes(a->db) == 1 ? SQLITE_OK : SQLITE_CORRUPT;
    sqlite3_reset(st);
    return rc;
}

/* Binds one id to ?1 and steps once (the retention statements). */
static int step_id(sqlite3_stmt *st, int64_t id)
{
    int rc;

    sqlite3_reset(st);
    rc = sqlite3_bind_int64(st, 1, id);
    return rc == SQLITE_OK ? sqlite3_step(st) : rc;
}

/* The record id retention may delete up to (inclusive); anchor->id when nothing. */
static int retention_cut(struct mcpd_audit *a, const struct audit_link *head,
                         const struct audit_link *anchor, size_t n, int64_t *cut)
{
    int64_t limit = anchor->id + (int64_t)n + RETAIN_STEP;
    int rc = SQLITE_OK;

    *cut = anchor->id;
    if (a->retain_rows > 0 && head->id - anchor->id > a->retain_rows)
        *cut = head->id - a->retain_rows;
    if (a->retain_ms > 0) {
        sqlite3_reset(a->retain_first);
        rc = sqlite3_bind_int64(a->retain_first, 1, anchor->id);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(a->retain_first, 2, mcpd__store_db_now_ms() - a->retain_ms);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(a->retain_first);
        if (rc == SQLITE_ROW && sqlite3_column_int64(a->retain_first, 0) - 1 > *cut)
            *cut = sqlite3_column_int64(a->retain_first, 0) - 1;
        else if (rc == SQLITE_DONE && head->id > *cut)
            *cut = head->id; /* every block has expired */
        sqlite3_reset(a->retain_first);
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (*cut > limit)
        *cut = limit;
    return rc;
}

static int retain(struct mcpd_audit *a, const struct audit_link *head, size_t n)
{
    struct audit_link anchor, next;
    const unsigned char *h;
    int64_t cut;
    int rc;

    if (a->retain_rows <= 0 && a->retain_ms <= 0)
        return SQLITE_OK;
    if ((rc = mcpd__audit_meta_get(a->meta_get, "anchor", &anchor)) != SQLITE_OK)
        return rc == SQLITE_DONE ? SQLITE_CORRUPT : rc;
    if ((rc = retention_cut(a, head, &anchor, n, &cut)) != SQLITE_OK || cut <= anchor.id)
        return rc;
    /* whole blocks only: the last block ending at or before the cut */
    rc = step_id(a->retain_last, cut);
    h = rc == SQLITE_ROW ? sqlite3_column_text(a->retain_last, 1) : NULL;
    if (rc != SQLITE_ROW || h == NULL ||
        sqlite3_column_bytes(a->retain_last, 1) != AUDIT_HASH_HEX ||
        sqlite3_column_int64(a->retain_last, 0) <= anchor.id) {
        /* nothing whole to delete, or the record to anchor on is damaged: keep it as evidence */
        sqlite3_reset(a->retain_last);
        return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    next.id = sqlite3_column_int64(a->retain_last, 0);
    memcpy(next.hash, h, AUDIT_HASH_HEX + 1);
    sqlite3_reset(a->retain_last);
    if ((rc = step_id(a->del, next.id)) != SQLITE_DONE)
        return rc;
    sqlite3_reset(a->del);
    return meta_set(a, "anchor", &next);
}

/* Steps a statement without results (BEGIN, COMMIT) once. */
static int step_once(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/*
 * Chains the record after head and adds it to the block (inserted when
 * full). row: its row with an empty hash, written already (or NULL).
 */
static int block_add(struct mcpd_audit *a, struct audit_link *head, struct audit_val val[AC_NCOLS],
                     const char *row, size_t row_len)
{
    char hash[AUDIT_HASH_HEX + 1];

    val[AC_ID].i = head->id + 1;
    if (mcpd__audit_row_hash(hash, head->hash, val, a->keyed ? a->key : NULL) != 0 ||
        mcpd__audit_block_add(&a->block, val, hash, row, row_len) != 0)
        return SQLITE_NOMEM;
    head->id++;
    memcpy(head->hash, hash, sizeof(hash));
    return a->block.text.len >= BLOCK_BYTES ? mcpd__audit_block_insert(a->ins, &a->block)
                                            : SQLITE_OK;
}

/* One `result` record listing outs[0..n): [[call_id, "status", latency_us], ...]. */
static int add_outcomes(struct mcpd_audit *a, struct audit_link *head,
                        const struct audit_outcome *outs, size_t n)
{
    struct audit_val val[AC_NCOLS];
    struct mcpd_buf *b = &a->outs_text;
    char reason[48];

    mcpd_buf_reset(b);
    for (size_t i = 0; i < n; i++) {
        /* [call_id,"status",latency_us]: status is one of the router's words, never escaped */
        char t[2 * 21 + sizeof(outs[i].status) + 8];
        size_t k = 0, sl = strnlen(outs[i].status, sizeof(outs[i].status));

        memcpy(t, i ? ",[" : "[[", 2);
        k = 2 + mcpd__audit_put_dec(t + 2, outs[i].call_id);
        memcpy(t + k, ",\"", 2);
        memcpy(t + k + 2, outs[i].status, sl);
        k += 2 + sl;
        memcpy(t + k, "\",", 2);
        k += 2 + mcpd__audit_put_dec(t + k + 2, outs[i].latency_us);
        t[k++] = ']';
        if (mcpd_buf_append(b, t, k) != 0)
            return SQLITE_NOMEM;
    }
    if (mcpd_buf_append(b, "]", 1) != 0)
        return SQLITE_NOMEM;
    memset(val, 0, sizeof(val));
    snprintf(reason, sizeof(reason), "%zu outcome%s", n, n == 1 ? "" : "s");
    val[AC_KIND].p = mcpd__audit_kind_name(MCPD_AUDIT_RESULT);
    val[AC_KIND].len = strlen(val[AC_KIND].p);
    val[AC_TIME_MS].i = mcpd__store_db_now_ms();
    val[AC_REASON].p = reason;
    val[AC_REASON].len = strlen(reason);
    val[AC_ARGS].p = b->p;
    val[AC_ARGS].len = b->len;
    return block_add(a, head, val, NULL, 0);
}

/* Sets (off >= 0) or deletes a journal's watermark. */
static int jnl_mark(struct mcpd_audit *a, const char *key, int64_t off)
{
    sqlite3_stmt *st = off >= 0 ? a->jset : a->jdel;
    int rc;

    sqlite3_reset(st);
    rc = sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && off >= 0)
        rc = sqlite3_bind_int64(st, 2, off);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Row ids are kept in the map's value pointers. */
_Static_assert(sizeof(uintptr_t) >= sizeof(int64_t), "a row id must fit a pointer");

static void calls_clear(struct mcpd_audit *a)
{
    mcpd_map_dispose(&a->calls);
    mcpd_map_init(&a->calls);
}

/* The row id a chained call's handle maps to (forgotten now), 0 when unknown. */
static int64_t take_call(struct mcpd_audit *a, int64_t handle)
{
    /* row ids are positive and fit a pointer (checked where they are put) */
    return handle > 0 ? (int64_t)(uintptr_t)mcpd_map_del_u64(&a->calls, (uint64_t)handle) : 0;
}

static int chain_records(struct mcpd_audit *a, struct audit_link *head, struct audit_item *list,
                         size_t *n)
{
    int rc;

    if (a->calls.count > CALLS_MAX) {
        LOG_WARN("audit",
                 "%zu chained calls still wait for their outcome: those outcomes will "
                 "be dropped",
                 a->calls.count);
        calls_clear(a);
    }
    for (struct audit_item *it = list; it != NULL; it = it->next, (*n)++) {
        if ((rc = block_add(a, head, it->val, it->row, it->row_len)) != SQLITE_OK)
            return rc;
        if (it->handle > 0) {
            if (mcpd_map_put_u64(&a->calls, (uint64_t)it->handle, (void *)(uintptr_t)head->id) != 0)
                return SQLITE_NOMEM;
        }
    }
    return SQLITE_OK;
}

/* Outcomes: handles resolved to row ids in place, then `result` records. */
static int chain_outcomes(struct mcpd_audit *a, struct audit_link *head, struct audit_outcome *outs,
                          size_t nouts, size_t *n)
{
    size_t k = 0, dropped = 0;
    int rc;

    for (size_t i = 0; i < nouts; i++) {
        int64_t id = take_call(a, outs[i].call_id);
        if (id <= 0) {
            dropped++;
            continue;
        }
        outs[k] = outs[i];
        outs[k++].call_id = id;
    }
    if (dropped > 0)
        LOG_WARN("audit", "%zu call outcomes name no call known here (chained before a crash)",
                 dropped);
    for (size_t i = 0; i < k; i += MCPD_AUDIT_OUTCOMES_PER_ROW, (*n)++) {
        size_t m = k - i < MCPD_AUDIT_OUTCOMES_PER_ROW ? k - i : MCPD_AUDIT_OUTCOMES_PER_ROW;
        if ((rc = add_outcomes(a, head, outs + i, m)) != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

/*
 * One transaction: the records of list, then the outcomes, chained after
 * the head; the journal's watermark set to joff (or deleted: joff < 0).
 * Returns a sqlite code, with the reason in why on failure.
 */
static int ingest(struct mcpd_audit *a, struct audit_item *list, struct audit_outcome *outs,
                  size_t nouts, const char *jkey, int64_t joff, char *why, size_t whycap)
{
    struct audit_link head;
    size_t n = 0;
    int rc;

    a->block.n = 0;
    mcpd_buf_reset(&a->block.text);
    if ((rc = step_once(a->begin)) != SQLITE_OK)
        goto fail;
    if ((rc = mcpd__audit_meta_get(a->meta_get, "head", &head)) != SQLITE_OK) {
        rc = rc == SQLITE_DONE ? SQLITE_CORRUPT : rc;
        goto fail;
    }
    if ((rc = chain_records(a, &head, list, &n)) != SQLITE_OK ||
        (rc = chain_outcomes(a, &head, outs, nouts, &n)) != SQLITE_OK ||
        (rc = mcpd__audit_block_insert(a->ins, &a->block)) != SQLITE_OK ||
        (n > 0 && (rc = meta_set(a, "head", &head)) != SQLITE_OK) ||
        (jkey != NULL && (rc = jnl_mark(a, jkey, joff)) != SQLITE_OK) ||
        (n > 0 && (rc = retain(a, &head, n)) != SQLITE_OK) ||
        (rc = step_once(a->commit)) != SQLITE_OK)
        goto fail;
    return SQLITE_OK;
fail:
    if (strcmp(sqlite3_errmsg(a->db), sqlite3_errstr(rc)) == 0)
        snprintf(why, whycap, "%s", sqlite3_errmsg(a->db));
    else
        snprintf(why, whycap, "%s (%s)", sqlite3_errmsg(a->db), sqlite3_errstr(rc));
    if (!sqlite3_get_autocommit(a->db))
        mcpd__store_db_rollback(a->db);
    a->block.n = 0;
    mcpd_buf_reset(&a->block.text);
    return rc;
}

/* Makes room for need elements of size bytes in *p (capacity *cap, doubled). 0 or MCPD_ENOMEM. */
static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    size_t n = *cap ? *cap : 64;
    void *m;

    if (need <= *cap)
        return 0;
    while (n < need)
        n *= 2;
    if ((m = realloc(*p, n * size)) == NULL)
        return MCPD_ENOMEM;
    *p = m;
    *cap = n;
    return 0;
}

static void free_items(struct audit_item *list)
{
    while (list != NULL) {
        struct audit_item *it = list;
        list = it->next;
        free(it->args_owned);
        free(it->text_owned);
        free(it);
    }
}

/*
 * A journal chained to its end (its watermark says so): the file goes,
 * then the watermark. In that order: a kill between the two leaves a file
 * whose watermark is its size (nothing to chain again), never a file
 * without one; a key left behind names a file that is gone (names are
 * never reused).
 */
static void retire(struct mcpd_audit *a, struct audit_jnl *j, const char *key)
{
    bool gone = unlink(j->path) == 0;

    if (!gone)
        LOG_WARN("audit", "%s: cannot remove the chained journal: %s", j->path, strerror(errno));
    mcpd__jnl_close(j, false);
    if (gone && jnl_mark(a, key, -1) != SQLITE_OK)
        LOG_DEBUG("audit", "%s: watermark kept: %s", key, sqlite3_errmsg(a->db));
}

/* ---- journals left behind ------------------------------------------------------------------- */

struct recovery {
    struct mcpd_audit *a;
    struct audit_item *list, **tail;
    struct audit_outcome *outs;
    size_t nouts, cap;
    json_t *rows; /* keeps the parsed rows alive until they are chained */
};

static int rec_record(void *arg, int64_t handle, json_t *row)
{
    struct recovery *rc = arg;
    struct audit_item *it;

    if (!json_is_array(row) || json_array_size(row) != AC_NCOLS)
        return -1; /* every column but id, then the (empty) hash */
    if ((it = calloc(1, sizeof(*it))) == NULL)
        return MCPD_ENOMEM;
    for (int c = AC_TIME_MS; c < AC_NCOLS; c++) {
        json_t *v = json_array_get(row, (size_t)c - 1);
        if (mcpd__audit_col_is_int((enum audit_col)c) ? !json_is_integer(v)
                                                      : !json_is_string(v) && !json_is_null(v)) {
            free(it);
            return -1;
        }
        if (json_is_integer(v)) {
            it->val[c].i = json_integer_value(v);
        } else if (json_is_string(v)) {
            it->val[c].p = json_string_value(v);
            it->val[c].len = json_string_length(v);
        }
    }
    it->handle = handle;
    if (json_array_append(rc->rows, row) != 0) {
        free(it);
        return MCPD_ENOMEM;
    }
    *rc->tail = it;
    rc->tail = &it->next;
    return 0;
}

static int rec_outcome(void *arg, int64_t handle, int64_t latency_us, const char *status,
                       size_t len)
{
    struct recovery *rc = arg;
    struct audit_outcome *o;

    if (grow((void **)&rc->outs, &rc->cap, rc->nouts + 1, sizeof(*o)) != 0)
        return MCPD_ENOMEM;
    o = &rc->outs[rc->nouts++];
    o->call_id = handle;
    o->latency_us = latency_us;
    snprintf(o->status, sizeof(o->status), "%.*s", (int)(len < 23 ? len : 23), status);
    return 0;
}

/* Reads the file whole (journals are at most about JNL_ROTATE_BYTES). */
static char *read_all(int fd, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap), *m;
    ssize_t r;

    while (p != NULL) {
        if (n == cap) {
            if (cap >= SIZE_MAX / 4 || (m = realloc(p, cap * 2)) == NULL)
                break;
            p = m;
            cap *= 2;
        }
        r = read(fd, p + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        if (r == 0) {
            *len = n;
            return p;
        }
        n += (size_t)r;
    }
    free(p);
    return NULL;
}

/* One journal left behind: what is past its watermark, chained; then it goes. */
static int recover_file(void *arg, const char *path, int fd)
{
    struct mcpd_audit *a = arg;
    struct recovery rc = { .a = a };
    struct jnl_sink sink = { &rc, rec_record, rec_outcome };
    char key[300], why[256];
    struct audit_link mark;
    size_t len = 0, used = 0;
    char *text;
    int r, pr;

    rc.tail = &rc.list;
    snprintf(key, sizeof(key), "j:%s", mcpd__jnl_basename(path));
    r = mcpd__audit_meta_get(a->meta_get, key, &mark);
    if (r == SQLITE_DONE)
        mark.id = 0;
    else if (r != SQLITE_OK)
        return mcpd__store_db_code(r);
    if ((text = read_all(fd, &len)) == NULL || (rc.rows = json_array()) == NULL) {
        free(text);
        return MCPD_ENOMEM;
    }
    {
        /* handles are per process: its journals follow each other, in name order */
        const char *base = mcpd__jnl_basename(path);
        size_t n = strlen(base) > 9 ? strlen(base) - 9 : 0; /* without "-<seq>.jnl" */
        if (strlen(a->rec_instance) != n || strncmp(a->rec_instance, base, n) != 0) {
            calls_clear(a);
            snprintf(a->rec_instance, sizeof(a->rec_instance), "%.*s", (int)n, base);
        }
    }
    if ((uint64_t)mark.id > len)
        mark.id = (int64_t)len;
    pr = mcpd__jnl_parse(text + mark.id, len - (size_t)mark.id, &used, &sink);
    /* the watermark moves past what is chained here, in the same transaction */
    r = ingest(a, rc.list, rc.outs, rc.nouts, key, mark.id + (int64_t)used, why, sizeof(why));
    if (r == SQLITE_OK && pr < -1) {
        LOG_ERROR("audit", "%s: cannot read it whole (%s); kept for the next attempt", path,
                  mcpd_strerror(pr));
        r = SQLITE_NOMEM;
    } else if (r == SQLITE_OK) {
        size_t nrec = 0;
        char bad[4096 + 16];
        bool gone;

        for (struct audit_item *it = rc.list; it != NULL; it = it->next)
            nrec++;
        if (pr != 0) {
            snprintf(bad, sizeof(bad), "%s.bad", path);
            LOG_ERROR("audit",
                      "%s: a damaged line at byte %zu; %zu records before it chained, "
                      "the file kept as %s",
                      path, (size_t)mark.id + used, nrec, bad);
            gone = rename(path, bad) == 0;
        } else {
            if (nrec > 0 || rc.nouts > 0)
                LOG_INFO("audit",
                         "%s: %zu records and %zu outcomes left by a stopped mcpd, chained",
                         mcpd__jnl_basename(path), nrec, rc.nouts);
            gone = unlink(path) == 0;
        }
        if (!gone)
            LOG_WARN("audit", "%s: cannot remove it: %s", path, strerror(errno));
        else if (jnl_mark(a, key, -1) != SQLITE_OK)
            LOG_DEBUG("audit", "%s: watermark kept: %s", key, sqlite3_errmsg(a->db));
    } else {
        LOG_ERROR("audit", "%s: cannot chain the journal: %s", path, why);
    }
    for (struct audit_item *it = rc.list, *next; it != NULL; it = next) {
        next = it->next;
        free(it);
    }
    free(rc.outs);
    json_decref(rc.rows);
    free(text);
    return r == SQLITE_OK ? 0 : mcpd__store_db_code(r);
}

/* ---- the loop: the journal ------------------------------------------------------------------- */

static void fail_items(struct mcpd_audit *a, struct audit_item *list, int status)
{
    bool any = list != NULL;

    while (list != NULL) {
        struct audit_item *it = list;

        list = it->next;
        a->pending--;
        a->pending_bytes -= it->bytes;
        if (it->row_id != NULL)
            *it->row_id = 0;
        if (it->cb != NULL)
            it->cb(status, it->data);
        free(it->args_owned);
        free(it);
    }
    if (any && a->acked != NULL)
        a->acked(a->acked_arg);
}

static void refuse(struct mcpd_audit *a, int code, const char *why)
{
    if (a->refusing)
        return;
    a->refusing = true;
    a->fail_code = code;
    LOG_ERROR("audit", "cannot write the audit log, refusing audited calls: %s", why);
    if (a->nouts > 0)
        LOG_WARN("audit", "%zu call outcomes not recorded", a->nouts);
    a->nouts = 0;
}

static int put_dec(struct mcpd_buf *b, int64_t v)
{
    char t[24];

    return mcpd_buf_append(b, t, mcpd__audit_put_dec(t, v));
}

/* The journal text of list and the outcomes; the callbacks in a->acks. */
static int journal_text(struct mcpd_audit *a, struct audit_item *list, size_t *nacks)
{
    struct mcpd_buf *b = &a->lines;
    size_t n = 0;
    int r = 0;

    mcpd_buf_reset(b);
    if (list != NULL && b->alloc == 0 && (r = mcpd_buf_reserve(b, a->lines_hint)) != 0)
        return r;
    for (struct audit_item *it = list; it != NULL && r == 0; it = it->next, n++) {
        if (grow((void **)&a->acks, &a->acks_cap, n + 1, sizeof(*a->acks)) != 0)
            return MCPD_ENOMEM;
        a->acks[n].cb = it->cb;
        a->acks[n].data = it->data;
        if ((r = mcpd_buf_append(b, "R ", 2)) == 0 && (r = put_dec(b, it->handle)) == 0 &&
            (r = mcpd_buf_append(b, " ", 1)) == 0) {
            size_t at = b->len; /* an offset: the text may move as it grows */

            if ((r = mcpd__audit_row_json(b, it->val, "")) == 0 &&
                (r = mcpd_buf_append(b, "\n", 1)) == 0) {
                it->row_off = at;
                it->row_len = b->len - 1 - at;
            }
        }
    }
    for (size_t i = 0; i < a->nouts && r == 0; i++) {
        const struct audit_outcome *o = &a->outs[i];
        size_t sl = strnlen(o->status, sizeof(o->status));
        if ((r = mcpd_buf_append(b, "O ", 2)) == 0 && (r = put_dec(b, o->call_id)) == 0 &&
            (r = mcpd_buf_append(b, " ", 1)) == 0 && (r = put_dec(b, o->latency_us)) == 0 &&
            (r = mcpd_buf_append(b, " ", 1)) == 0 && (r = mcpd_buf_append(b, o->status, sl)) == 0)
            r = mcpd_buf_append(b, "\n", 1);
    }
    *nacks = n;
    return r;
}

/* Under mu: room in the helper's queue for the outcomes (before anything is written). */
static int reserve_outs(struct mcpd_audit *a)
{
    return grow((void **)&a->qouts, &a->qouts_cap, a->nqouts + a->nouts, sizeof(*a->qouts));
}

/* Under mu, after reserve_outs: the records and outcomes to the helper's queue. */
static void hand_over(struct mcpd_audit *a, struct audit_item *list, size_t bytes)
{
    a->qbytes += a->lines.len;
    if (list != NULL) {
        /*
         * The text goes with the records, which point into it (it is about
         * their size again, besides what QUEUE_BYTES_MAX counts); the next
         * flush starts a new one.
         */
        size_t len;

        /* twice the last text, within [4 KiB, 64 KiB]: a larger one grows as it is written */
        a->lines_hint = a->lines.len < 2048    ? 4096
                        : a->lines.len < 32768 ? 2 * a->lines.len
                                               : 65536;
        for (struct audit_item *it = list; it != NULL; it = it->next)
            it->row = a->lines.p + it->row_off;
        list->text_owned = mcpd_buf_steal(&a->lines, &len);
    }
    if (a->nouts > 0)
        memcpy(a->qouts + a->nqouts, a->outs, a->nouts * sizeof(*a->outs));
    a->nqouts += a->nouts;
    *a->q_tail = list;
    while (*a->q_tail != NULL)
        a->q_tail = &(*a->q_tail)->next;
    atomic_fetch_add_explicit(&a->backlog, bytes, memory_order_relaxed);
    if (a->helper_waiting || (a->gathering && a->qbytes >= INGEST_BYTES))
        uv_cond_signal(&a->cv);
}

/* Writes what waits to the journal and acknowledges it (on the loop). */
static void flush(struct mcpd_audit *a)
{
    struct audit_item *list = a->local;
    size_t nacks = 0, bytes = 0;
    char why[300];
    int r;

    if (list == NULL && a->nouts == 0)
        return;
    a->local = NULL;
    a->local_tail = &a->local;
    if (a->refusing) {
        a->nouts = 0;
        fail_items(a, list, a->fail_code);
        return;
    }
    for (struct audit_item *it = list; it != NULL; it = it->next) {
        bytes += it->bytes;
        if (it->row_id != NULL)
            *it->row_id = it->handle;
    }
    if ((r = journal_text(a, list, &nacks)) != 0) {
        refuse(a, r, "out of memory");
        fail_items(a, list, a->fail_code);
        return;
    }
    uv_mutex_lock(&a->mu);
    if ((r = a->hfail) != 0)
        snprintf(why, sizeof(why), "%s", a->hwhy);
    else if ((r = reserve_outs(a)) != 0)
        snprintf(why, sizeof(why), "out of memory");
    else if ((r = mcpd__jnl_append(&a->jnl, a->lines.p, a->lines.len, a->sync_full)) != 0)
        snprintf(why, sizeof(why), "%s: %s", a->jnl.path, uv_strerror(r));
    else
        hand_over(a, list, bytes);
    uv_mutex_unlock(&a->mu);
    if (r != 0) {
        refuse(a, r, why);
        fail_items(a, list, a->fail_code);
        return;
    }
    a->nouts = 0;
    /* the outcomes went too: a lone-outcome timer would only wake the loop for nothing */
    if (!a->closing)
        uv_timer_stop(&a->timer);
    /* the items are the helper's now: only the callbacks saved in acks run */
    a->pending -= nacks;
    a->pending_bytes -= bytes;
    for (size_t i = 0; i < nacks; i++)
        if (a->acks[i].cb != NULL)
            a->acks[i].cb(0, a->acks[i].data);
    if (nacks > 0 && a->acked != NULL)
        a->acked(a->acked_arg);
}

static void on_timer(uv_timer_t *h);

static void on_flush(uv_prepare_t *h)
{
    struct mcpd_audit *a = h->data;

    uv_prepare_stop(h);
    flush(a);
    /* records submitted by the callbacks: a prepare started now would wait for the poll */
    if (a->local != NULL && !a->closing)
        uv_timer_start(&a->timer, on_timer, 0, 0);
}

static void on_timer(uv_timer_t *h)
{
    flush(h->data);
}

/* The helper failed: refuse from now on. */
static void on_async(uv_async_t *h)
{
    struct mcpd_audit *a = h->data;
    char why[256];
    int code;

    uv_mutex_lock(&a->mu);
    code = a->hfail;
    snprintf(why, sizeof(why), "%s", a->hwhy);
    uv_mutex_unlock(&a->mu);
    if (code != 0)
        refuse(a, code, why);
}

/* ---- the helper thread ---------------------------------------------------------------------- */

/* sqlite calls this after each commit with the WAL's size (it replaces the autocheckpoint). */
static int on_wal(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct mcpd_audit *a = arg;

    (void)db;
    (void)name;
    a->wal_pages = pages;
    return SQLITE_OK;
}

static void checkpoint(struct mcpd_audit *a)
{
    int log = 0, done = 0, rc;

    if ((unsigned)a->wal_pages < a->ckpt_pages)
        return;
    /*
     * PASSIVE copies what is committed; the WAL only starts over after a
     * RESTART (measured: passive passes alone let it pass 1 GB), which
     * this thread can wait for: nothing else writes through this connection.
     */
    rc = sqlite3_wal_checkpoint_v2(a->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (rc == SQLITE_OK && (unsigned)a->wal_pages >= a->ckpt_pages * CKPT_FORCE_FACTOR)
        rc = sqlite3_wal_checkpoint_v2(a->db, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done);
    if (rc == SQLITE_OK)
        a->wal_pages = 0;
    else if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
        LOG_WARN("audit", "checkpoint: %s", sqlite3_errmsg(a->db));
}

/* Outside the lock: the journal that will replace the loop's (with sync, a directory fsync). */
static bool prepare_next(struct mcpd_audit *a, struct audit_jnl *next)
{
    char err[300];

    if (mcpd__jnl_create(next, a->path, a->instance, a->jseq + 1, a->sync_full, err, sizeof(err)) !=
        0) {
        LOG_WARN("audit", "%s (the journal in use keeps growing)", err);
        next->fd = -1;
        return false;
    }
    a->jseq++;
    return true;
}

static void helper(void *arg)
{
    struct mcpd_audit *a = arg;
    struct audit_jnl next = { .fd = -1 }; /* made outside the lock, swapped in under it */
    bool cannot_prepare = false;
    char key[300], why[256];

    uv_mutex_lock(&a->mu);
    for (;;) {
        struct audit_jnl old = { .fd = -1 };
        struct audit_item *list;
        struct audit_outcome *outs;
        size_t nouts, bytes = 0;
        int64_t joff;
        bool last, want_next, stuck;
        int rc;

        while (a->q == NULL && a->nqouts == 0 && !a->stop) {
            a->helper_waiting = true;
            uv_cond_wait(&a->cv, &a->mu);
            a->helper_waiting = false;
        }
        /* gather: one transaction for everything that arrives meanwhile (or INGEST_BYTES) */
        if (!a->stop && a->qbytes < INGEST_BYTES) {
            a->gathering = true;
            uv_cond_timedwait(&a->cv, &a->mu, (uint64_t)INGEST_WAIT_MS * 1000000u);
            a->gathering = false;
        }
        list = a->q;
        a->q = NULL;
        a->q_tail = &a->q;
        outs = a->qouts, a->qouts = a->houts, a->houts = outs;
        nouts = a->qouts_cap, a->qouts_cap = a->houts_cap, a->houts_cap = nouts;
        nouts = a->nqouts;
        a->nqouts = 0;
        a->qbytes = 0;
        last = a->stop; /* the loop wrote its last records before it asked */
        snprintf(key, sizeof(key), "j:%s", mcpd__jnl_basename(a->jnl.path));
        joff = (int64_t)a->jnl.bytes; /* everything written so far is in this batch */
        if (!last && a->jnl.bytes >= a->jnl_max && next.fd >= 0) {
            old = a->jnl; /* chained to its end by this batch, then removed */
            a->jnl = next;
            next = (struct audit_jnl){ .fd = -1 };
        }
        want_next = !last && next.fd < 0 && old.fd < 0 && a->jnl.bytes >= a->jnl_max / 2;
        /* a journal that cannot be replaced must not grow without end */
        stuck = !last && cannot_prepare && a->jnl.bytes >= (uint64_t)JNL_STUCK_FACTOR * a->jnl_max;
        uv_mutex_unlock(&a->mu);

        if (want_next)
            cannot_prepare = !prepare_next(a, &next);
        for (struct audit_item *it = list; it != NULL; it = it->next)
            bytes += it->bytes;
        if (a->hfail) {
            rc = SQLITE_ABORT;
        } else if (stuck) {
            rc = SQLITE_FULL;
            snprintf(why, sizeof(why), "the journal cannot be replaced (see the log)");
        } else {
            rc = ingest(a, list, outs, nouts, key, joff, why, sizeof(why));
        }
        free_items(list);
        atomic_fetch_sub_explicit(&a->backlog, bytes, memory_order_relaxed);
        if (rc == SQLITE_OK) {
            if (old.fd >= 0)
                retire(a, &old, key);
            checkpoint(a);
        } else {
            mcpd__jnl_close(&old, false); /* left for the next start to chain */
        }
        uv_mutex_lock(&a->mu);
        if (rc != SQLITE_OK && a->hfail == 0) {
            int code = mcpd__store_db_code(rc);
            a->hfail = code != 0 ? code : UV_EIO;
            snprintf(a->hwhy, sizeof(a->hwhy), "%s", why);
            uv_async_send(&a->async);
        }
        if (last && a->q == NULL && a->nqouts == 0)
            break;
    }
    uv_mutex_unlock(&a->mu);
    if (next.fd >= 0)
        mcpd__jnl_close(&next, true); /* made and never used */
}

/* ---- open and close -------------------------------------------------------------------------- */

static void close_db(struct mcpd_audit *a)
{
    sqlite3_stmt **stmts[] = { &a->ins,         &a->meta_get, &a->meta_set, &a->retain_first,
                               &a->retain_last, &a->del,      &a->begin,    &a->commit,
                               &a->jset,        &a->jdel };

    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        sqlite3_finalize(*stmts[i]);
        *stmts[i] = NULL;
    }
    sqlite3_close(a->db);
    a->db = NULL;
}

static void free_audit(struct mcpd_audit *a)
{
    free(a->outs);
    free(a->qouts);
    free(a->houts);
    free(a->acks);
    free(a->path);
    mcpd_map_dispose(&a->calls);
    mcpd_buf_dispose(&a->block.text);
    mcpd_buf_dispose(&a->outs_text);
    mcpd_buf_dispose(&a->lines);
    mcpd_crypto_wipe(a->key, sizeof(a->key));
    if (a->handles_open >= 0) {
        uv_cond_destroy(&a->cv);
        uv_mutex_destroy(&a->mu);
    }
    a->magic = 0;
    free(a);
}

static void on_audit_closed(uv_handle_t *h)
{
    struct mcpd_audit *a = h->data;
    void (*done)(void *data) = a->close_cb;
    void *data = a->close_data;

    if (--a->handles_open > 0)
        return;
    free_audit(a);
    if (done != NULL)
        done(data);
}

static void close_handles(struct mcpd_audit *a)
{
    a->handle_closed = true;
    uv_close((uv_handle_t *)&a->flush, on_audit_closed);
    uv_close((uv_handle_t *)&a->timer, on_audit_closed);
    uv_close((uv_handle_t *)&a->async, on_audit_closed);
}

static int check_schema(struct mcpd_audit *a, const char *path, char *err, size_t errcap)
{
    struct audit_link l;
    int rc = mcpd__audit_meta_get(a->meta_get, "schema", &l);

    if (rc != SQLITE_OK)
        return mcpd__store_db_fail(a->db, path, err, errcap);
    if (l.id != AUDIT_SCHEMA_VERSION) {
        snprintf(err, errcap, "%s: audit schema version %lld is not supported", path,
                 (long long)l.id);
        return MCPD_ECONFIG;
    }
    return 0;
}

/*
 * The chain's kind (audit_int.h). A key given for a store that is not keyed
 * yet makes it keyed, if it holds no record (a chain cannot change its kind
 * half way: verify would have to know where).
 */
static int check_chain(struct mcpd_audit *a, const char *path, char *err, size_t errcap)
{
    const unsigned char *key = a->has_key ? a->key : NULL;
    struct audit_link head;
    char check[AUDIT_HASH_HEX + 1], sql[160];
    int r, rc;

    if ((r = mcpd__audit_chain_mode(a->meta_get, path, key, &a->keyed, err, errcap)) != 0 ||
        a->keyed || key == NULL)
        return r;
    if ((rc = mcpd__audit_meta_get(a->meta_get, "head", &head)) != SQLITE_OK)
        return mcpd__store_db_fail(a->db, path, err, errcap);
    if (head.id != 0) {
        snprintf(err, errcap,
                 "%s: this audit log is chained with SHA-256 (%lld records): audit.chain: hmac "
                 "needs a new store file",
                 path, (long long)head.id);
        return MCPD_ECONFIG;
    }
    mcpd__audit_key_check(key, check);
    snprintf(sql, sizeof(sql), "INSERT INTO audit_meta(k, id, hash) VALUES('chain', 1, '%s')",
             check);
    if ((r = mcpd__store_db_exec(a->db, sql, err, errcap)) != 0)
        return r;
    a->keyed = true;
    return 0;
}

static int open_db(struct mcpd_audit *a, const char *path, char *err, size_t errcap)
{
    sqlite3_stmt **stmts[] = { &a->ins,         &a->meta_get, &a->meta_set, &a->retain_first,
                               &a->retain_last, &a->del,      &a->begin,    &a->commit,
                               &a->jset,        &a->jdel };
    int r;

    if ((r = mcpd__store_db_open(&a->db, path, true, a->busy_ms, err, errcap)) != 0)
        return r;
    if ((r = mcpd__store_db_begin(a->db, err, errcap)) != 0 ||
        (r = mcpd__audit_upgrade(a->db, path, err, errcap)) != 0 ||
        (r = mcpd__store_db_exec(a->db, mcpd__audit_schema_sql, err, errcap)) != 0)
        goto fail;
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        if (sqlite3_prepare_v3(a->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, stmts[i], NULL) !=
            SQLITE_OK) {
            r = mcpd__store_db_fail(a->db, path, err, errcap);
            goto fail;
        }
    }
    if ((r = check_schema(a, path, err, errcap)) != 0 ||
        (r = check_chain(a, path, err, errcap)) != 0 ||
        (r = mcpd__store_db_exec(a->db, "COMMIT", err, errcap)) != 0)
        goto fail;
    /*
     * The journal holds what is acknowledged; a transaction here only moves
     * it into the chain, so it needs no fsync of its own (NORMAL), unless
     * sync_full asks for every layer to reach the disk.
     */
    if (!a->sync_full &&
        (r = mcpd__store_db_exec(a->db, "PRAGMA synchronous=NORMAL", err, errcap)) != 0)
        goto fail;
    sqlite3_wal_hook(a->db, on_wal, a);
    return 0;
fail:
    if (a->db != NULL && !sqlite3_get_autocommit(a->db))
        mcpd__store_db_rollback(a->db);
    close_db(a);
    return r;
}

/* The file's page size (4096 when it cannot be read). */
static int64_t page_size(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int64_t n = 0;

    if (sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n >= 512 && n <= 65536 ? n : 4096;
}

static struct mcpd_audit *alloc_audit(const char *path)
{
    struct mcpd_audit *a = calloc(1, sizeof(*a));

    if (a == NULL || (a->path = strdup(path)) == NULL) {
        if (a != NULL)
            free(a->path);
        free(a);
        return NULL;
    }
    a->magic = AUDIT_MAGIC;
    mcpd_map_init(&a->calls);
    a->jnl.fd = -1;
    a->handles_open = -1; /* no mutex yet */
    a->local_tail = &a->local;
    a->q_tail = &a->q;
    a->busy_ms = MCPD_STORE_BUSY_MS;
    a->ckpt_pages = (unsigned)(CKPT_BYTES / 4096); /* until the file says its page size */
    a->jnl_max = JNL_ROTATE_BYTES;
    atomic_init(&a->backlog, 0);
    mcpd_buf_init(&a->block.text, SIZE_MAX / 2);
    mcpd_buf_init(&a->outs_text, SIZE_MAX / 2);
    mcpd_buf_init(&a->lines, SIZE_MAX / 2);
    return a;
}

static int start(struct mcpd_audit *a, uv_loop_t *loop, char *err, size_t errcap)
{
    int r;

    if ((r = uv_mutex_init(&a->mu)) != 0)
        goto fail;
    if ((r = uv_cond_init(&a->cv)) != 0) {
        uv_mutex_destroy(&a->mu);
        goto fail;
    }
    /* the one that can fail first: nothing to close then */
    if ((r = uv_async_init(loop, &a->async, on_async)) != 0) {
        uv_cond_destroy(&a->cv);
        uv_mutex_destroy(&a->mu);
        goto fail;
    }
    a->async.data = a;
    uv_prepare_init(loop, &a->flush); /* cannot fail */
    a->flush.data = a;
    uv_timer_init(loop, &a->timer); /* cannot fail */
    a->timer.data = a;
    a->handles_open = 3;
    return 0;
fail:
    snprintf(err, errcap, "audit: %s", mcpd_strerror(r));
    return r;
}

int mcpd_audit_open(struct mcpd_audit **out, uv_loop_t *loop, const struct mcpd_audit_options *o,
                    char *err, size_t errcap)
{
    unsigned char rnd[8];
    struct mcpd_audit *a;
    int r;

    *out = NULL;
    if ((a = alloc_audit(o->path)) == NULL) {
        snprintf(err, errcap, "out of memory");
        return MCPD_ENOMEM;
    }
    a->loop = loop;
    a->max_args = o->max_args_bytes ? o->max_args_bytes : DEFAULT_MAX_ARGS;
    a->queue_cap = o->queue_cap ? o->queue_cap : DEFAULT_QUEUE_CAP;
    a->retain_ms = o->retain_ms > 0 ? o->retain_ms : 0;
    a->retain_rows = o->retain_rows > 0 ? o->retain_rows : 0;
    a->busy_ms = o->busy_timeout_ms > 0 ? o->busy_timeout_ms : MCPD_STORE_BUSY_MS;
    a->jnl_max = o->journal_bytes > 0 ? o->journal_bytes : JNL_ROTATE_BYTES;
    a->sync_full = o->sync_full;
    if (o->chain_key != NULL) {
        memcpy(a->key, o->chain_key, sizeof(a->key));
        a->has_key = true;
    }
    a->acked = o->acked;
    a->acked_arg = o->acked_arg;
    if ((r = mcpd_crypto_random(rnd, sizeof(rnd))) != 0) {
        snprintf(err, errcap, "audit: no random bytes for the journal's name");
        goto fail;
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(a->instance + 2 * i, 3, "%02x", rnd[i]);
    if ((r = open_db(a, o->path, err, errcap)) != 0)
        goto fail;
    /* in bytes, whatever the file's page size (sqlite's default is 4 KiB; a file may differ) */
    a->ckpt_pages =
        o->checkpoint_pages > 0 ? o->checkpoint_pages : (unsigned)(CKPT_BYTES / page_size(a->db));
    /* journals of an mcpd that was killed: chained before anything new */
    if ((r = mcpd__jnl_orphans(o->path, recover_file, a)) != 0) {
        snprintf(err, errcap, "%s: cannot chain a journal left behind (see the log): %s", o->path,
                 mcpd_strerror(r));
        close_db(a);
        goto fail;
    }
    calls_clear(a); /* this process's handles start over */
    if ((r = mcpd__jnl_create(&a->jnl, o->path, a->instance, 0, a->sync_full, err, errcap)) != 0) {
        close_db(a);
        goto fail;
    }
    if ((r = start(a, loop, err, errcap)) != 0) {
        mcpd__jnl_close(&a->jnl, true);
        close_db(a);
        goto fail;
    }
    if ((r = uv_thread_create(&a->helper_thread, helper, a)) != 0) {
        /* the handles are live: their close callbacks free the audit */
        snprintf(err, errcap, "audit: %s", mcpd_strerror(r));
        mcpd__jnl_close(&a->jnl, true);
        close_db(a);
        close_handles(a);
        return r;
    }
    a->helper_started = true;
    *out = a;
    return 0;
fail:
    free_audit(a);
    return r;
}

struct cli_recovery {
    struct mcpd_audit *a;
    char *err;
    size_t errcap;
};

/* The database opens only when there is a journal to chain (else nothing is written). */
static int recover_lazily(void *arg, const char *path, int fd)
{
    struct cli_recovery *c = arg;
    int r;

    if (c->a->db == NULL && (r = open_db(c->a, c->a->path, c->err, c->errcap)) != 0)
        return r;
    if ((r = recover_file(c->a, path, fd)) != 0)
        snprintf(c->err, c->errcap, "%s: cannot chain the journal: %s", path, mcpd_strerror(r));
    return r;
}

int mcpd__audit_recover(const char *path, const unsigned char *chain_key, char *err, size_t errcap)
{
    struct cli_recovery c = { NULL, err, errcap };
    int r;

    if ((c.a = alloc_audit(path)) == NULL) {
        snprintf(err, errcap, "out of memory");
        return MCPD_ENOMEM;
    }
    if (chain_key != NULL) {
        memcpy(c.a->key, chain_key, sizeof(c.a->key));
        c.a->has_key = true;
    }
    r = mcpd__jnl_orphans(path, recover_lazily, &c);
    if (c.a->db != NULL)
        close_db(c.a);
    free_audit(c.a);
    return r;
}

/* The final flush, on the loop iteration after close. */
static void on_close_timer(uv_timer_t *h)
{
    struct mcpd_audit *a = h->data;
    bool failed;

    flush(a); /* what was queued before the close (callbacks cannot add to it: closing) */
    if (a->helper_started) {
        uv_mutex_lock(&a->mu);
        a->stop = true;
        uv_cond_signal(&a->cv);
        uv_mutex_unlock(&a->mu);
        uv_thread_join(&a->helper_thread);
        a->helper_started = false;
    }
    failed = a->hfail != 0 || a->refusing;
    if (a->hfail != 0)
        refuse(a, a->hfail, a->hwhy);
    /* chained to the last line: the journal and its watermark go (else both stay) */
    if (!failed && a->jnl.path != NULL) {
        char key[300];
        snprintf(key, sizeof(key), "j:%s", mcpd__jnl_basename(a->jnl.path));
        retire(a, &a->jnl, key);
    } else {
        mcpd__jnl_close(&a->jnl, false);
    }
    close_db(a);
    close_handles(a);
}

void mcpd_audit_close(struct mcpd_audit *a, void (*done)(void *data), void *data)
{
    if (a == NULL || a->closing)
        return;
    a->closing = true;
    a->close_cb = done;
    a->close_data = data;
    uv_prepare_stop(&a->flush);
    uv_timer_stop(&a->timer);
    uv_timer_start(&a->timer, on_close_timer, 0, 0);
}

/* ---- submit ---------------------------------------------------------------------------------- */

/* A text field's stored length: at most FIELD_MAX bytes, cut at a UTF-8 boundary. */
static size_t field_len(const char *s)
{
    size_t n;

    if (s == NULL)
        return 0;
    n = strnlen(s, FIELD_MAX + 1);
    return mcpd__audit_utf8_cut(s, n, FIELD_MAX);
}

static void record_texts(const struct mcpd_audit_record *r, const char *src[AC_NCOLS])
{
    memset(src, 0, AC_NCOLS * sizeof(src[0]));
    src[AC_BOT] = r->bot;
    src[AC_SESSION] = r->session;
    src[AC_TRANSPORT] = r->transport;
    src[AC_RESOURCE] = r->resource;
    src[AC_TOOL] = r->tool;
    src[AC_LOCATION] = r->location;
    src[AC_DECISION] = r->decision;
    src[AC_REASON] = r->reason;
    src[AC_STATUS] = r->status;
}

/* Lays the record's texts out in one allocation. */
static struct audit_item *alloc_item(const char *src[AC_NCOLS])
{
    struct audit_item *it;
    size_t len[AC_NCOLS] = { 0 }, total = 0, off = 0;

    for (int c = 0; c < AC_NCOLS; c++) {
        len[c] = field_len(src[c]);
        total += len[c] + 1;
    }
    if ((it = calloc(1, sizeof(*it) + total)) == NULL)
        return NULL;
    it->bytes = sizeof(*it) + total;
    for (int c = 0; c < AC_NCOLS; c++) {
        if (src[c] == NULL)
            continue;
        memcpy(it->storage + off, src[c], len[c]);
        it->val[c].p = it->storage + off;
        it->val[c].len = len[c];
        off += len[c] + 1;
    }
    return it;
}

/* Redacts, serialises, caps and digests the arguments into it. */
static int item_args(struct mcpd_audit *a, const struct mcpd_audit_record *r, struct audit_item *it)
{
    bool truncated = false;
    size_t n = 0;
    int rc;

    if (r->args_json != NULL)
        rc = mcpd__audit_args(r->args_json, r->args_len, r->args_key, a->max_args, &it->args_owned,
                              &n, &truncated, it->digest);
    else
        rc = mcpd__audit_args_value(r->args_value, a->max_args, &it->args_owned, &n, &truncated,
                                    it->digest);
    if (rc != 0)
        return rc;
    it->val[AC_ARGS].p = it->args_owned;
    it->val[AC_ARGS].len = n;
    it->val[AC_ARGS_TRUNCATED].i = truncated;
    if (it->digest[0] != '\0') {
        it->val[AC_ARGS_DIGEST].p = it->digest;
        it->val[AC_ARGS_DIGEST].len = AUDIT_HASH_HEX;
    }
    it->bytes += n;
    return 0;
}

static int make_item(struct mcpd_audit *a, const struct mcpd_audit_record *r,
                     struct audit_item **out)
{
    const char *src[AC_NCOLS];
    struct audit_item *it;

    *out = NULL;
    record_texts(r, src);
    if ((it = alloc_item(src)) == NULL)
        return MCPD_ENOMEM;
    if (item_args(a, r, it) != 0) {
        free(it->args_owned);
        free(it);
        return MCPD_ENOMEM;
    }
    it->row_id = r->row_id;
    it->val[AC_KIND].p = mcpd__audit_kind_name((int)r->kind); /* static */
    it->val[AC_KIND].len = strlen(it->val[AC_KIND].p);
    it->val[AC_TIME_MS].i = r->time_ms != 0 ? r->time_ms : mcpd__store_db_now_ms();
    it->val[AC_LATENCY_US].i = r->latency_us;
    *out = it;
    return 0;
}

int mcpd_audit_submit(struct mcpd_audit *a, const struct mcpd_audit_record *r, mcpd_audit_cb cb,
                      void *data)
{
    struct audit_item *it;
    int rc;

    if (a->closing || a->refusing)
        return MCPD_EUNAVAIL;
    if (a->pending >= a->queue_cap)
        return MCPD_EBUSY;
    if ((rc = make_item(a, r, &it)) != 0)
        return rc;
    /* what waits here and what the helper has yet to chain, together */
    if (a->pending_bytes + it->bytes + atomic_load_explicit(&a->backlog, memory_order_relaxed) >
        QUEUE_BYTES_MAX) {
        free(it->args_owned);
        free(it);
        return MCPD_EBUSY;
    }
    if (r->row_id != NULL)
        it->handle = ++a->next_handle;
    it->cb = cb;
    it->data = data;
    *a->local_tail = it;
    a->local_tail = &it->next;
    a->pending++;
    a->pending_bytes += it->bytes;
    uv_prepare_start(&a->flush, on_flush); /* no-op when started */
    return 0;
}

int mcpd_audit_outcome(struct mcpd_audit *a, int64_t call_id, const char *status,
                       int64_t latency_us)
{
    struct audit_outcome *o;
    size_t sl;

    if (a->closing || a->refusing)
        return MCPD_EUNAVAIL;
    if (a->nouts >= a->queue_cap)
        return MCPD_EBUSY;
    if (grow((void **)&a->outs, &a->outs_cap, a->nouts + 1, sizeof(*a->outs)) != 0)
        return MCPD_ENOMEM;
    o = &a->outs[a->nouts++];
    o->call_id = call_id;
    /* the journal writes at most 18 digits, no sign */
    o->latency_us = latency_us < 0                            ? 0
                    : latency_us > INT64_C(99999999999999999) ? INT64_C(99999999999999999)
                                                              : latency_us;
    sl = status != NULL ? strnlen(status, sizeof(o->status) - 1) : 0;
    if (sl > 0)
        memcpy(o->status, status, sl); /* cut to the field, without printf on every call */
    o->status[sl] = '\0';
    for (char *c = o->status; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '_'; /* one journal line */
    if (a->nouts >= MCPD_AUDIT_OUTCOMES_PER_ROW)
        uv_prepare_start(&a->flush, on_flush);
    else if (!uv_is_active((uv_handle_t *)&a->timer))
        uv_timer_start(&a->timer, on_timer, MCPD_AUDIT_OUTCOME_DELAY_MS, 0);
    return 0;
}
