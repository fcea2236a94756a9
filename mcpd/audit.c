/*
 * audit.c - the audit log's runtime half (see audit.h): the bounded queue,
 * the writer thread, and the loop side that runs the callbacks. The row
 * format lives in audit_row.c, verify and print in audit_query.c.
 *
 *   loop thread                        writer thread (own connection)
 *   submit: redact + copy the record,  wait for work
 *           append to `queue`    --->  take the whole queue (a batch)
 *                                      BEGIN IMMEDIATE; chain and INSERT
 *                                      each row; move `head`; retention;
 *                                      COMMIT (synchronous=NORMAL, or FULL: fsync)
 *   on_async: run the callbacks  <---  append the batch to `done`,
 *             of `done`, free          uv_async_send
 *   outcome: append to `outs`    --->  one `result` row per batch of outcomes
 *                                      (no callback; a lone outcome waits up
 *                                      to MCPD_AUDIT_OUTCOME_DELAY_MS)
 *
 * A batch's callbacks run only after its COMMIT returned, so an
 * acknowledged record is in the WAL on disk and survives kill -9 (and,
 * with synchronous=FULL, power loss). Group commit keeps that at one fsync
 * per batch: records submitted while a commit is in progress form the
 * next batch.
 *
 * Chain: each row's `hash` is hex SHA-256(previous row's hash "\n"
 * canonical row text) (audit_int.h), the first row's previous hash being
 * 64 zeros. audit_meta holds two links: `head` (the last row written,
 * moved in the same transaction) and `anchor` (the last row deleted by
 * retention, whose hash the first remaining row chains from). The writer
 * re-reads both inside each write transaction, so it never trusts memory.
 * Retention deletes only a prefix of the chain (by row count, or the
 * leading run of rows older than retain_ms), at most a bounded number of
 * rows per batch, and never deletes past a missing row.
 *
 * Failure: the first failed transaction (disk full, read-only file,
 * SQLITE_BUSY past the bounded busy timeout, ...) fails its batch and every
 * later one, and turns the audit into a refusing state: submit returns
 * MCPD_EUNAVAIL from then on. The reason is logged once, from the loop.
 * There is no retry: an audit that lost writes needs an operator.
 */
#include "audit.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "audit_int.h"
#include "buf.h"
#include "error.h"
#include "log.h"
#include "store_db.h"

#define AUDIT_MAGIC       0xa0d17u
#define DEFAULT_MAX_ARGS  ((size_t)64 * 1024)
#define DEFAULT_QUEUE_CAP 65536u
#define QUEUE_BYTES_MAX   ((size_t)64 * 1024 * 1024) /* record bytes waiting at most */
#define FIELD_MAX         4096                       /* bytes kept of each text field */
#define RETAIN_STEP       4096 /* rows retention deletes per batch beyond its size */
/*
 * After a commit the writer polls for the next records this long before it
 * sleeps on the condition variable: at low concurrency the next call's row
 * arrives within a round trip, and a futex wake-up of a sleeping thread
 * (an idle vCPU) costs more than the poll. Busy writers never poll.
 */
#define WRITER_SPIN_NS ((uint64_t)MCPD_AUDIT_SPIN_US * 1000u)
/*
 * The same on the loop: while at most LOOP_SPIN_PENDING records wait for
 * their commit (low concurrency, answers held), an idle handle keeps the
 * loop polling without blocking, for at most LOOP_SPIN_NS, and releases the
 * answers as soon as the writer marks the batch done, instead of sleeping
 * until the uv_async wake-up.
 */
#define LOOP_SPIN_NS      ((uint64_t)MCPD_AUDIT_LOOP_SPIN_US * 1000u)
#define LOOP_SPIN_PENDING 4

struct audit_item {
    struct audit_item *next;
    mcpd_audit_cb cb;
    void *data;
    int status;
    size_t bytes; /* counted against QUEUE_BYTES_MAX */
    struct audit_val val[AC_NCOLS];
    char digest[AUDIT_HASH_HEX + 1];
    bool raw_args;        /* val[AC_ARGS] is the caller's text: redacted by the writer */
    const char *args_key; /* raw_args is a whole request; the arguments are params[args_key] */
    json_t *args_ref;     /* the arguments as a value (a reference): redacted by the writer */
    int64_t *row_id;      /* the caller's: receives val[AC_ID] before cb */
    char *args_owned;     /* the redacted, capped text (writer thread) */
    char storage[];       /* the text fields */
};

/* The outcome of a call whose row is durable (mcpd_audit_outcome). */
struct audit_outcome {
    int64_t call_id, latency_us;
    char status[24];
};

struct mcpd_audit {
    bool sync_full; /* synchronous=FULL instead of NORMAL */
    unsigned magic;
    uv_loop_t *loop;
    uv_async_t async;
    uv_prepare_t flush; /* hands the loop's records over before each poll */
    uv_idle_t spin;     /* polls for done batches at low concurrency (LOOP_SPIN_NS) */
    uint64_t spin_end;
    atomic_int done_ready; /* done != NULL, readable without mu (the loop's poll) */
    int handles_open;
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cv;
    size_t max_args;
    unsigned queue_cap;
    int64_t retain_ms, retain_rows;
    /* writer thread only (after open) */
    sqlite3 *db;
    sqlite3_stmt *ins, *meta_get, *meta_set, *first_live, *row_hash, *del, *begin, *commit;
    /* under mu */
    struct audit_item *queue, **queue_tail;
    atomic_int queued; /* queue != NULL, readable without mu (the writer's poll) */
    struct audit_item *done, **done_tail;
    struct audit_outcome *outs; /* waiting for the writer */
    size_t nouts, outs_cap;
    bool stop, writer_done, failed;
    int fail_code;
    char fail_reason[256];
    /* loop only */
    struct audit_item *local, **local_tail; /* submitted in this loop iteration */
    struct audit_outcome *louts;
    size_t nlouts, louts_cap, nouts_seen;
    size_t pending, pending_bytes;
    bool closing, refusing, handle_closed;
    void (*close_cb)(void *data);
    void *close_data;
};

static const char *const stmt_sql[] = {
    ("INSERT INTO audit(" AUDIT_COLUMNS ", hash) "
     "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"),
    "SELECT id, hash FROM audit_meta WHERE k = ?1",
    "UPDATE audit_meta SET id = ?2, hash = ?3 WHERE k = ?1",
    /* the first row past the anchor that is young enough, or past the step */
    ("SELECT id FROM audit NOT INDEXED WHERE id > ?1 AND (time_ms >= ?2 OR id > ?3) "
     "ORDER BY id LIMIT 1"),
    "SELECT hash FROM audit WHERE id = ?1",
    "DELETE FROM audit WHERE id <= ?1",
    "BEGIN IMMEDIATE", /* prepared once: sqlite parsed them on every batch */
    "COMMIT",
};

/* ---- the writer thread ----------------------------------------------------------------------- */

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

/* Binds ids[0..n) to ?1..?n and steps once (the retention statements). */
static int step_ids(sqlite3_stmt *st, const int64_t *ids, int n)
{
    int rc = SQLITE_OK;

    sqlite3_reset(st);
    for (int i = 0; rc == SQLITE_OK && i < n; i++)
        rc = sqlite3_bind_int64(st, i + 1, ids[i]);
    return rc == SQLITE_OK ? sqlite3_step(st) : rc;
}

/* The id retention may delete up to (inclusive); anchor->id when nothing. */
static int retention_cut(struct mcpd_audit *a, const struct audit_link *head,
                         const struct audit_link *anchor, size_t batch, int64_t *cut)
{
    int64_t limit = anchor->id + (int64_t)batch + RETAIN_STEP;
    int rc = SQLITE_OK;

    *cut = anchor->id;
    if (a->retain_rows > 0 && head->id - anchor->id > a->retain_rows)
        *cut = head->id - a->retain_rows;
    if (a->retain_ms > 0) {
        int64_t args[3] = { anchor->id, mcpd__store_db_now_ms() - a->retain_ms, limit };

        rc = step_ids(a->first_live, args, 3);
        if (rc == SQLITE_ROW && sqlite3_column_int64(a->first_live, 0) - 1 > *cut)
            *cut = sqlite3_column_int64(a->first_live, 0) - 1;
        else if (rc == SQLITE_DONE && head->id > *cut)
            *cut = head->id; /* every row has expired */
        sqlite3_reset(a->first_live);
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (*cut > limit)
        *cut = limit;
    return rc;
}

static int retain(struct mcpd_audit *a, const struct audit_link *head, size_t batch)
{
    struct audit_link anchor, next;
    int64_t cut;
    int rc;

    if (a->retain_rows <= 0 && a->retain_ms <= 0)
        return SQLITE_OK;
    if ((rc = mcpd__audit_meta_get(a->meta_get, "anchor", &anchor)) != SQLITE_OK)
        return rc == SQLITE_DONE ? SQLITE_CORRUPT : rc;
    if ((rc = retention_cut(a, head, &anchor, batch, &cut)) != SQLITE_OK || cut <= anchor.id)
        return rc;
    rc = step_ids(a->row_hash, &cut, 1);
    if (rc != SQLITE_ROW || sqlite3_column_bytes(a->row_hash, 0) != AUDIT_HASH_HEX) {
        /* the row to anchor on is gone or damaged: keep everything as evidence */
        sqlite3_reset(a->row_hash);
        return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    next.id = cut;
    memcpy(next.hash, sqlite3_column_text(a->row_hash, 0), AUDIT_HASH_HEX + 1);
    sqlite3_reset(a->row_hash);
    if ((rc = step_ids(a->del, &cut, 1)) != SQLITE_DONE)
        return rc;
    sqlite3_reset(a->del);
    return meta_set(a, "anchor", &next);
}

static int insert_item(struct mcpd_audit *a, struct audit_link *head, struct audit_item *it)
{
    char hash[AUDIT_HASH_HEX + 1];
    int rc;

    if (it->raw_args || it->args_ref) {
        /* redaction, the cap and the digest are the writer's work, off the loop */
        bool truncated = false;
        size_t n = 0;
        int r;
        if (it->args_ref) {
            r = mcpd__audit_args_value(it->args_ref, a->max_args, &it->args_owned, &n, &truncated,
                                       it->digest);
            json_decref(it->args_ref);
            it->args_ref = NULL;
        } else {
            r = mcpd__audit_args(it->val[AC_ARGS].p, it->val[AC_ARGS].len, it->args_key,
                                 a->max_args, &it->args_owned, &n, &truncated, it->digest);
        }
        it->raw_args = false;
        if (r != 0)
            return SQLITE_NOMEM;
        it->val[AC_ARGS].p = it->args_owned;
        it->val[AC_ARGS].len = n;
        it->val[AC_ARGS_TRUNCATED].i = truncated;
        if (it->digest[0] != '\0') {
            it->val[AC_ARGS_DIGEST].p = it->digest;
            it->val[AC_ARGS_DIGEST].len = AUDIT_HASH_HEX;
        }
    }
    it->val[AC_ID].i = head->id + 1;
    if (mcpd__audit_row_hash(hash, head->hash, it->val) != 0)
        return SQLITE_NOMEM;
    sqlite3_reset(a->ins);
    sqlite3_clear_bindings(a->ins);
    rc = mcpd__audit_row_bind(a->ins, it->val, hash);
    if (rc == SQLITE_OK && (rc = sqlite3_step(a->ins)) == SQLITE_DONE)
        rc = SQLITE_OK;
    sqlite3_reset(a->ins);
    if (rc == SQLITE_OK) {
        head->id++;
        memcpy(head->hash, hash, sizeof(hash));
    }
    return rc;
}

/* Steps a statement without results (BEGIN, COMMIT) once. */
static int step_once(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* One `result` row listing outs[0..n): [[call_id, "status", latency_us], ...]. */
static int insert_outcomes(struct mcpd_audit *a, struct audit_link *head,
                           const struct audit_outcome *outs, size_t n)
{
    struct audit_item it;
    struct mcpd_buf b;
    char reason[48];
    int rc = SQLITE_OK;

    mcpd_buf_init(&b, SIZE_MAX / 2);
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++)
        if (mcpd_buf_appendf(&b, "%s[%lld,\"%s\",%lld]", i ? "," : "[", (long long)outs[i].call_id,
                             outs[i].status, (long long)outs[i].latency_us) != 0)
            rc = SQLITE_NOMEM;
    if (rc == SQLITE_OK && mcpd_buf_append(&b, "]", 1) != 0)
        rc = SQLITE_NOMEM;
    if (rc == SQLITE_OK) {
        memset(&it, 0, sizeof(it));
        snprintf(reason, sizeof(reason), "%zu outcome%s", n, n == 1 ? "" : "s");
        it.val[AC_KIND].p = mcpd__audit_kind_name(MCPD_AUDIT_RESULT);
        it.val[AC_KIND].len = strlen(it.val[AC_KIND].p);
        it.val[AC_TIME_MS].i = mcpd__store_db_now_ms();
        it.val[AC_REASON].p = reason;
        it.val[AC_REASON].len = strlen(reason);
        it.val[AC_ARGS].p = b.p;
        it.val[AC_ARGS].len = b.len;
        rc = insert_item(a, head, &it);
    }
    mcpd_buf_dispose(&b);
    return rc;
}

static int write_batch(struct mcpd_audit *a, struct audit_item *batch,
                       const struct audit_outcome *outs, size_t nouts)
{
    struct audit_link head;
    size_t n = 0;
    int rc;

    if ((rc = step_once(a->begin)) != SQLITE_OK)
        return rc;
    if ((rc = mcpd__audit_meta_get(a->meta_get, "head", &head)) != SQLITE_OK) {
        rc = rc == SQLITE_DONE ? SQLITE_CORRUPT : rc;
        goto out;
    }
    for (struct audit_item *it = batch; it != NULL; it = it->next, n++)
        if ((rc = insert_item(a, &head, it)) != SQLITE_OK)
            goto out;
    for (size_t i = 0; i < nouts; i += MCPD_AUDIT_OUTCOMES_PER_ROW, n++) {
        size_t k =
            nouts - i < MCPD_AUDIT_OUTCOMES_PER_ROW ? nouts - i : MCPD_AUDIT_OUTCOMES_PER_ROW;
        if ((rc = insert_outcomes(a, &head, outs + i, k)) != SQLITE_OK)
            goto out;
    }
    if ((rc = meta_set(a, "head", &head)) != SQLITE_OK || (rc = retain(a, &head, n)) != SQLITE_OK)
        goto out;
    rc = step_once(a->commit);
out:
    return rc;
}

/*
 * Commits a batch; returns 0, or the negative code with the reason in why
 * (taken before the rollback, which would reset sqlite's message).
 */
static int commit_batch(struct mcpd_audit *a, struct audit_item *batch,
                        const struct audit_outcome *outs, size_t nouts, char *why, size_t whycap)
{
    int rc = write_batch(a, batch, outs, nouts);
    int r;

    if (rc == SQLITE_OK)
        return 0;
    if (strcmp(sqlite3_errmsg(a->db), sqlite3_errstr(rc)) == 0)
        snprintf(why, whycap, "%s", sqlite3_errmsg(a->db));
    else
        snprintf(why, whycap, "%s (%s)", sqlite3_errmsg(a->db), sqlite3_errstr(rc));
    mcpd__store_db_rollback(a->db);
    r = mcpd__store_db_code(rc);
    return r != 0 ? r : UV_EIO;
}

static void finish_batch(struct mcpd_audit *a, struct audit_item *batch, int status,
                         const char *why)
{
    uv_mutex_lock(&a->mu);
    if (status != 0 && !a->failed) {
        a->failed = true;
        a->fail_code = status;
        snprintf(a->fail_reason, sizeof(a->fail_reason), "%s", why);
    }
    for (struct audit_item *it = batch; it != NULL; it = it->next)
        it->status = status;
    if (batch == NULL) { /* outcomes only: nobody waits for them */
        uv_mutex_unlock(&a->mu);
        return;
    }
    *a->done_tail = batch;
    while (*a->done_tail != NULL)
        a->done_tail = &(*a->done_tail)->next;
    atomic_store_explicit(&a->done_ready, 1, memory_order_release);
    uv_mutex_unlock(&a->mu);
    uv_async_send(&a->async);
}

static void writer_close_db(struct mcpd_audit *a)
{
    sqlite3_stmt **stmts[] = { &a->ins,      &a->meta_get, &a->meta_set, &a->first_live,
                               &a->row_hash, &a->del,      &a->begin,    &a->commit };

    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        sqlite3_finalize(*stmts[i]);
        *stmts[i] = NULL;
    }
    sqlite3_close(a->db);
    a->db = NULL;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Polls (without mu) until records are queued, at most WRITER_SPIN_NS. */
static void spin_for_records(struct mcpd_audit *a)
{
    uint64_t end = uv_hrtime() + WRITER_SPIN_NS;

    while (atomic_load_explicit(&a->queued, memory_order_acquire) == 0 && uv_hrtime() < end)
        for (int i = 0; i < 16; i++)
            cpu_relax();
}

static void writer_thread(void *arg)
{
    struct mcpd_audit *a = arg;
    struct audit_item *batch;
    struct audit_outcome *outs = NULL, *tmp;
    size_t nouts, outs_cap = 0, nbatch = 0;
    char why[256] = "";
    bool failed;
    int status;

    uv_mutex_lock(&a->mu);
    for (;;) {
        /* poll only at low concurrency (a small last batch): a busy machine needs the core */
        if (a->queue == NULL && !a->stop && WRITER_SPIN_NS > 0 && nbatch > 0 &&
            nbatch <= LOOP_SPIN_PENDING) {
            uv_mutex_unlock(&a->mu);
            spin_for_records(a);
            uv_mutex_lock(&a->mu);
        }
        while (a->queue == NULL && a->nouts == 0 && !a->stop)
            uv_cond_wait(&a->cv, &a->mu);
        if (a->queue == NULL && a->nouts == 0)
            break; /* stopping, and everything is written */
        if (a->queue == NULL && !a->stop) {
            /* outcomes alone: give the next call's record a moment to share the commit */
            uv_cond_timedwait(&a->cv, &a->mu, (uint64_t)MCPD_AUDIT_OUTCOME_DELAY_MS * 1000000u);
        }
        batch = a->queue;
        a->queue = NULL;
        a->queue_tail = &a->queue;
        nbatch = 0;
        for (struct audit_item *it = batch; it != NULL && nbatch <= LOOP_SPIN_PENDING;
             it = it->next)
            nbatch++;
        atomic_store_explicit(&a->queued, 0, memory_order_relaxed);
        /* swap the outcome arrays: the loop fills the other one meanwhile */
        tmp = outs;
        outs = a->outs;
        nouts = a->nouts;
        a->outs = tmp;
        a->nouts = 0;
        {
            size_t c = outs_cap;
            outs_cap = a->outs_cap;
            a->outs_cap = c;
        }
        failed = a->failed;
        status = a->fail_code;
        uv_mutex_unlock(&a->mu);
        if (!failed)
            status = commit_batch(a, batch, outs, nouts, why, sizeof(why));
        finish_batch(a, batch, status, why);
        uv_mutex_lock(&a->mu);
    }
    uv_mutex_unlock(&a->mu);
    free(outs);
    writer_close_db(a);
    uv_mutex_lock(&a->mu);
    a->writer_done = true;
    uv_mutex_unlock(&a->mu);
    uv_async_send(&a->async);
}

/* ---- the loop side --------------------------------------------------------------------------- */

static void free_audit(struct mcpd_audit *a)
{
    free(a->outs);
    free(a->louts);
    uv_cond_destroy(&a->cv);
    uv_mutex_destroy(&a->mu);
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
    uv_close((uv_handle_t *)&a->spin, on_audit_closed);
    uv_close((uv_handle_t *)&a->async, on_audit_closed);
}

static void run_callbacks(struct mcpd_audit *a, struct audit_item *list)
{
    while (list != NULL) {
        struct audit_item *it = list;

        list = it->next;
        a->pending--;
        a->pending_bytes -= it->bytes;
        if (it->row_id != NULL)
            *it->row_id = it->status == 0 ? it->val[AC_ID].i : 0;
        if (it->cb != NULL)
            it->cb(it->status, it->data);
        free(it->args_owned);
        json_decref(it->args_ref);
        free(it);
    }
}

static void on_audit_async(uv_async_t *h)
{
    struct mcpd_audit *a = h->data;
    struct audit_item *list;
    char reason[sizeof(a->fail_reason)];
    bool failed, writer_done;

    if (a->magic != AUDIT_MAGIC || a->handle_closed)
        return;
    uv_mutex_lock(&a->mu);
    atomic_store_explicit(&a->done_ready, 0, memory_order_relaxed);
    list = a->done;
    a->done = NULL;
    a->done_tail = &a->done;
    failed = a->failed;
    memcpy(reason, a->fail_reason, sizeof(reason));
    writer_done = a->writer_done;
    uv_mutex_unlock(&a->mu);
    if (failed && !a->refusing) {
        a->refusing = true;
        LOG_ERROR("audit", "cannot write the audit log, refusing audited calls: %s", reason);
    }
    run_callbacks(a, list);
    if (writer_done) {
        uv_thread_join(&a->thread);
        close_handles(a);
    }
}

/*
 * Hands what the loop submitted to the writer, from a prepare handle (it
 * runs before the loop polls, so nothing waits behind a blocking poll):
 * one lock and at most one wake-up per loop iteration instead of one per
 * record.
 * Records arriving after a write failure fail with its code (their
 * callbacks run here, never inside submit).
 */
static void flush_local(struct mcpd_audit *a)
{
    struct audit_item *list = a->local;
    bool failed;
    int code;

    if (list == NULL && a->nlouts == 0)
        return;
    a->local = NULL;
    a->local_tail = &a->local;
    uv_mutex_lock(&a->mu);
    failed = a->failed;
    code = a->fail_code;
    if (!failed) {
        if (list != NULL) {
            *a->queue_tail = list;
            while (*a->queue_tail != NULL)
                a->queue_tail = &(*a->queue_tail)->next;
            atomic_store_explicit(&a->queued, 1, memory_order_release);
        }
        if (a->nlouts > 0 && a->nouts + a->nlouts > a->outs_cap) {
            size_t cap = (a->nouts + a->nlouts) * 2;
            struct audit_outcome *n = realloc(a->outs, cap * sizeof(*n));
            if (n != NULL) {
                a->outs = n;
                a->outs_cap = cap;
            }
        }
        if (a->nlouts > 0 && a->nouts + a->nlouts <= a->outs_cap) {
            memcpy(a->outs + a->nouts, a->louts, a->nlouts * sizeof(*a->louts));
            a->nouts += a->nlouts;
        } else if (a->nlouts > 0) {
            LOG_WARN("audit", "out of memory: %zu call outcomes not recorded", a->nlouts);
        }
        a->nouts_seen = a->nouts;
        uv_cond_signal(&a->cv);
    }
    uv_mutex_unlock(&a->mu);
    a->nlouts = 0;
    if (failed) {
        for (struct audit_item *it = list; it != NULL; it = it->next)
            it->status = code;
        run_callbacks(a, list);
    }
}

static void on_spin(uv_idle_t *h)
{
    struct mcpd_audit *a = h->data;

    if (atomic_load_explicit(&a->done_ready, memory_order_acquire) != 0) {
        uv_idle_stop(h);
        on_audit_async(&a->async); /* the async wake-up that follows finds nothing */
    } else if (uv_hrtime() >= a->spin_end) {
        uv_idle_stop(h);
    }
}

static void on_flush(uv_prepare_t *h)
{
    struct mcpd_audit *a = h->data;
    bool records = a->local != NULL;

    uv_prepare_stop(h);
    flush_local(a);
    if (records && LOOP_SPIN_NS > 0 && a->pending <= LOOP_SPIN_PENDING && !a->handle_closed &&
        !uv_is_active((uv_handle_t *)&a->spin)) {
        a->spin_end = uv_hrtime() + LOOP_SPIN_NS;
        uv_idle_start(&a->spin, on_spin);
    }
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

/* Lays the record's texts and the arguments out in one allocation. */
static struct audit_item *alloc_item(const char *src[AC_NCOLS], const char *args, size_t args_len)
{
    struct audit_item *it;
    size_t len[AC_NCOLS] = { 0 }, total = args_len + 1, off = 0;

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
    if (args != NULL) {
        memcpy(it->storage + off, args, args_len);
        it->val[AC_ARGS].p = it->storage + off;
        it->val[AC_ARGS].len = args_len;
    }
    return it;
}

static int make_item(struct mcpd_audit *a, const struct mcpd_audit_record *r,
                     struct audit_item **out)
{
    const char *src[AC_NCOLS];
    struct audit_item *it;

    *out = NULL;
    record_texts(r, src);
    it = alloc_item(src, r->args_json, r->args_json ? r->args_len : 0);
    if (it == NULL)
        return MCPD_ENOMEM;
    it->raw_args = r->args_json != NULL;
    it->args_key = r->args_key;
    if (r->args_json == NULL && r->args_value != NULL)
        it->args_ref = json_incref(r->args_value);
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
    if (a->pending_bytes + it->bytes > QUEUE_BYTES_MAX) {
        json_decref(it->args_ref);
        free(it);
        return MCPD_EBUSY;
    }
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

    if (a->closing || a->refusing)
        return MCPD_EUNAVAIL;
    if (a->nlouts + a->nouts_seen >= a->queue_cap)
        return MCPD_EBUSY;
    if (a->nlouts == a->louts_cap) {
        size_t cap = a->louts_cap ? a->louts_cap * 2 : 64;
        struct audit_outcome *n = realloc(a->louts, cap * sizeof(*n));
        if (n == NULL)
            return MCPD_ENOMEM;
        a->louts = n;
        a->louts_cap = cap;
    }
    o = &a->louts[a->nlouts++];
    o->call_id = call_id;
    o->latency_us = latency_us;
    snprintf(o->status, sizeof(o->status), "%s", status ? status : "");
    uv_prepare_start(&a->flush, on_flush);
    return 0;
}

/* ---- open and close -------------------------------------------------------------------------- */

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

static int open_db(struct mcpd_audit *a, const char *path, int busy_ms, char *err, size_t errcap)
{
    sqlite3_stmt **stmts[] = { &a->ins,      &a->meta_get, &a->meta_set, &a->first_live,
                               &a->row_hash, &a->del,      &a->begin,    &a->commit };
    int r;

    if ((r = mcpd__store_db_open(&a->db, path, true, busy_ms, err, errcap)) != 0)
        return r;
    if ((r = mcpd__store_db_begin(a->db, err, errcap)) != 0 ||
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
        (r = mcpd__store_db_exec(a->db, "COMMIT", err, errcap)) != 0)
        goto fail;
    /*
     * WAL with synchronous=NORMAL: a COMMIT that returned is in the WAL file,
     * so a crash or kill -9 of mcpd loses nothing acknowledged; only power
     * loss (or a kernel crash) can lose the last commits. FULL adds an fsync
     * per commit for that case, at a large cost (audit.sync: full).
     */
    if (!a->sync_full &&
        (r = mcpd__store_db_exec(a->db, "PRAGMA synchronous=NORMAL", err, errcap)) != 0)
        goto fail;
    return 0;
fail:
    mcpd__store_db_rollback(a->db);
    writer_close_db(a);
    return r;
}

static void set_options(struct mcpd_audit *a, const struct mcpd_audit_options *o)
{
    a->max_args = o->max_args_bytes ? o->max_args_bytes : DEFAULT_MAX_ARGS;
    a->queue_cap = o->queue_cap ? o->queue_cap : DEFAULT_QUEUE_CAP;
    a->retain_ms = o->retain_ms > 0 ? o->retain_ms : 0;
    a->retain_rows = o->retain_rows > 0 ? o->retain_rows : 0;
    a->queue_tail = &a->queue;
    atomic_init(&a->queued, 0);
    atomic_init(&a->done_ready, 0);
    a->done_tail = &a->done;
    a->local_tail = &a->local;
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
    if ((r = uv_async_init(loop, &a->async, on_audit_async)) != 0) {
        uv_cond_destroy(&a->cv);
        uv_mutex_destroy(&a->mu);
        goto fail;
    }
    a->async.data = a;
    uv_prepare_init(loop, &a->flush); /* cannot fail */
    a->flush.data = a;
    uv_idle_init(loop, &a->spin); /* cannot fail */
    a->spin.data = a;
    a->handles_open = 3;
    return 0;
fail:
    snprintf(err, errcap, "audit: %s", mcpd_strerror(r));
    return r;
}

int mcpd_audit_open(struct mcpd_audit **out, uv_loop_t *loop, const struct mcpd_audit_options *o,
                    char *err, size_t errcap)
{
    struct mcpd_audit *a;
    int r;

    *out = NULL;
    if ((a = calloc(1, sizeof(*a))) == NULL) {
        snprintf(err, errcap, "out of memory");
        return MCPD_ENOMEM;
    }
    a->magic = AUDIT_MAGIC;
    a->loop = loop;
    set_options(a, o);
    a->sync_full = o->sync_full;
    if ((r = open_db(a, o->path, o->busy_timeout_ms, err, errcap)) != 0) {
        free(a);
        return r;
    }
    if ((r = start(a, loop, err, errcap)) != 0) {
        writer_close_db(a);
        free(a);
        return r;
    }
    if ((r = uv_thread_create(&a->thread, writer_thread, a)) != 0) {
        /* the handle is live: its close callback frees the audit */
        snprintf(err, errcap, "audit: %s", mcpd_strerror(r));
        writer_close_db(a);
        close_handles(a);
        return r;
    }
    *out = a;
    return 0;
}

void mcpd_audit_close(struct mcpd_audit *a, void (*done)(void *data), void *data)
{
    if (a == NULL || a->closing)
        return;
    a->closing = true;
    a->close_cb = done;
    a->close_data = data;
    uv_prepare_stop(&a->flush);
    flush_local(a);
    uv_mutex_lock(&a->mu);
    a->stop = true;
    uv_cond_signal(&a->cv);
    uv_mutex_unlock(&a->mu);
}
