/*
 * audit.c - the audit log's runtime half (see audit.h): records submitted
 * on the loop, committed on the loop once per iteration (or, at low
 * concurrency, on the helper thread), and checkpoints on the helper thread.
 * The row format lives in audit_row.c, verify and print in audit_query.c.
 *
 *   loop thread                                  helper thread
 *   submit: redact + serialise the arguments,    (own connection for
 *           copy the record to `local`           checkpoints)
 *   prepare (before the loop polls):             - a job: commit the batch
 *     BEGIN IMMEDIATE; read the head; chain        the loop handed over (at
 *     every record of `local` and the waiting      most LOW_PENDING records
 *     outcomes into one audit_block row;           waiting), then poll for the
 *     move `head`; retention; COMMIT               next one a moment
 *     run the callbacks (answers released)       - the WAL grew by
 *                                                  checkpoint_pages: PASSIVE
 *                                                  checkpoint (RESTART when it
 *                                                  keeps growing)
 *
 * Why on the loop: the records of one iteration form one commit, so the
 * batch grows with the load and a commit costs one INSERT however many
 * records it holds; and there is no thread hand-off per batch (two futex
 * or eventfd wake-ups and a context switch each way cost more than the
 * commit on a small VM; the writer thread this replaced spent most of its
 * time there, see bench/RESULTS.md). With synchronous=NORMAL a commit
 * writes the WAL into the page cache and never fsyncs: the loop is not
 * blocked on the disk. Checkpoints, which read the WAL, write the database
 * and fsync, run on the helper thread.
 *
 * Why the helper at low concurrency: a lone call waits for its own commit.
 * On the loop that commit runs after the forward and before the upstream's
 * answer is read, in series with the upstream; on the helper it runs in
 * parallel with it, and both threads poll briefly (MCPD_AUDIT_SPIN_US) for
 * each other instead of sleeping, which a sleeping thread's wake-up would
 * cost on every call. The connection belongs to one thread at a time:
 * job_state hands it over (JOB_READY to the helper, JOB_DONE back), and the
 * loop neither commits nor hands off while a job is out.
 *
 * A commit that returned is in the WAL file, so an acknowledged record
 * survives kill -9 (and, with sync_full, power loss): a record's callback
 * runs only after its commit returned.
 *
 * Chain: each record's hash is hex SHA-256(previous record's hash "\n"
 * canonical record text) (audit_int.h), the first record's previous hash
 * being 64 zeros. audit_meta holds two links: `head` (the last record
 * written, moved in the same transaction) and `anchor` (the last record
 * deleted by retention, whose hash the first remaining record chains
 * from). Every commit re-reads the head inside its transaction, so a
 * second writer on the same file cannot fork the chain. Retention deletes
 * only whole leading blocks (by record count, or the leading blocks whose
 * newest record is older than retain_ms), a bounded number per commit.
 *
 * Another connection holding the write lock (SQLITE_BUSY: a CLI command,
 * the helper's RESTART checkpoint) never blocks the loop: the commit is retried
 * from a timer with a growing delay, for at most busy_timeout_ms in all,
 * while the records and their answers wait.
 *
 * Failure: the first failed commit (disk full, read-only file, the lock
 * not obtained within busy_timeout_ms, ...) fails its records and turns the
 * audit into a refusing state: submit returns MCPD_EUNAVAIL from then on,
 * and the reason is logged once. There is no retry: an audit that lost
 * writes needs an operator.
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
#define RETAIN_STEP       4096 /* records retention deletes per commit beyond its size */
#define BLOCK_BYTES       ((size_t)1024 * 1024) /* a block's JSON text, about at most */
#define CKPT_PAGES        1000u /* WAL pages that wake the helper for a checkpoint (sqlite's default) */
#define CKPT_FORCE_FACTOR 8u  /* past this many times CKPT_PAGES: RESTART */
#define CKPT_BUSY_MS      20  /* how long a RESTART waits for the lock and for readers */
#define BUSY_DELAY_MAX_MS 16u /* the longest wait between two attempts at the lock */
#define LOW_PENDING       4   /* records waiting at most for a commit on the helper thread */
#ifndef MCPD_AUDIT_SPIN_US
#define MCPD_AUDIT_SPIN_US 200 /* how long the helper and the loop poll for each other */
#endif
#define HELPER_SPIN_NS ((uint64_t)MCPD_AUDIT_SPIN_US * 1000u)
enum { JOB_IDLE, JOB_READY, JOB_DONE };

struct audit_item {
    struct audit_item *next;
    mcpd_audit_cb cb;
    void *data;
    size_t bytes; /* counted against QUEUE_BYTES_MAX */
    struct audit_val val[AC_NCOLS];
    char digest[AUDIT_HASH_HEX + 1];
    int64_t *row_id;  /* the caller's: receives val[AC_ID] before cb */
    char *args_owned; /* the redacted, capped argument text */
    char storage[];   /* the text fields */
};

/* The outcome of a call whose row is durable (mcpd_audit_outcome). */
struct audit_outcome {
    int64_t call_id, latency_us;
    char status[24];
};

/* A commit handed to the helper thread (low concurrency). */
struct audit_job {
    struct audit_item *list;
    struct audit_outcome *outs;
    size_t nouts, outs_cap;
    int rc;
    char why[256];
};

struct mcpd_audit {
    unsigned magic;
    bool sync_full;
    uv_loop_t *loop;
    uv_prepare_t flush; /* commits before the loop polls */
    uv_timer_t timer;   /* outcomes alone, a retry on SQLITE_BUSY, the final flush */
    uv_async_t async;   /* the helper finished a job */
    uv_idle_t spin;     /* polls for that at low concurrency (HELPER_SPIN_NS) */
    uint64_t spin_end;
    struct audit_job job;   /* the loop's while job_state is JOB_IDLE, else the helper's */
    atomic_int job_state;   /* JOB_IDLE, JOB_READY (to the helper), JOB_DONE (to the loop) */
    atomic_int helper_busy; /* checkpointing: low-concurrency commits stay on the loop */
    bool helper_sleeping;   /* under mu */
    int handles_open;
    size_t max_args;
    unsigned queue_cap;
    int64_t retain_ms, retain_rows;
    int busy_ms;
    sqlite3 *db;
    sqlite3_stmt *ins, *meta_get, *meta_set, *retain_first, *retain_last, *del, *begin, *commit;
    struct audit_block block; /* the one being built */
    struct mcpd_buf outs_text;
    /* waiting for a commit */
    struct audit_item *local, **local_tail;
    struct audit_outcome *outs;
    size_t nouts, outs_cap;
    size_t pending, pending_bytes;
    uint64_t busy_since; /* uv_now of the first SQLITE_BUSY of this commit (0: none) */
    unsigned busy_delay;
    bool closing, refusing, handle_closed;
    int fail_code;
    void (*close_cb)(void *data);
    void *close_data;
    /* the helper thread: low-concurrency commits, checkpoints */
    char *path;
    unsigned ckpt_pages;
    int ckpt_base; /* loop: the WAL's size at the last request */
    uv_thread_t helper_thread;
    bool helper_started;
    uv_mutex_t mu;
    uv_cond_t cv;
    sqlite3 *ckpt_db;      /* the helper's own connection, for checkpoints */
    int ckpt_want;         /* under mu: the WAL's size in pages when it asked, 0: none */
    atomic_int ckpt_asked; /* ckpt_want != 0, for the helper's job loop (which holds no lock) */
    bool ckpt_stop;        /* under mu */
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
};

static bool is_busy(int rc)
{
    return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

/* ---- one commit ------------------------------------------------------------------------------ */

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

/* Chains the record after head and adds it to the block (inserted when full). */
static int block_add(struct mcpd_audit *a, struct audit_link *head, struct audit_val val[AC_NCOLS])
{
    char hash[AUDIT_HASH_HEX + 1];

    val[AC_ID].i = head->id + 1;
    if (mcpd__audit_row_hash(hash, head->hash, val) != 0 ||
        mcpd__audit_block_add(&a->block, val, hash) != 0)
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
    return block_add(a, head, val);
}

/* The records of list and the outcomes, in one transaction (BEGIN done). */
static int write_records(struct mcpd_audit *a, struct audit_item *list,
                         const struct audit_outcome *outs, size_t nouts)
{
    struct audit_link head;
    size_t n = 0;
    int rc;

    a->block.n = 0;
    mcpd_buf_reset(&a->block.text);
    if ((rc = mcpd__audit_meta_get(a->meta_get, "head", &head)) != SQLITE_OK)
        return rc == SQLITE_DONE ? SQLITE_CORRUPT : rc;
    for (struct audit_item *it = list; it != NULL; it = it->next, n++)
        if ((rc = block_add(a, &head, it->val)) != SQLITE_OK)
            return rc;
    for (size_t i = 0; i < nouts; i += MCPD_AUDIT_OUTCOMES_PER_ROW, n++) {
        size_t k =
            nouts - i < MCPD_AUDIT_OUTCOMES_PER_ROW ? nouts - i : MCPD_AUDIT_OUTCOMES_PER_ROW;
        if ((rc = add_outcomes(a, &head, outs + i, k)) != SQLITE_OK)
            return rc;
    }
    if ((rc = mcpd__audit_block_insert(a->ins, &a->block)) != SQLITE_OK ||
        (rc = meta_set(a, "head", &head)) != SQLITE_OK)
        return rc;
    return retain(a, &head, n);
}

/* Returns a sqlite code; the reason in why (taken before the rollback resets it). */
static int write_batch(struct mcpd_audit *a, struct audit_item *list,
                       const struct audit_outcome *outs, size_t nouts, char *why, size_t whycap)
{
    int rc;

    if ((rc = step_once(a->begin)) == SQLITE_OK &&
        (rc = write_records(a, list, outs, nouts)) == SQLITE_OK &&
        (rc = step_once(a->commit)) == SQLITE_OK)
        return SQLITE_OK;
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

static void run_callbacks(struct mcpd_audit *a, struct audit_item *list, int status)
{
    while (list != NULL) {
        struct audit_item *it = list;

        list = it->next;
        a->pending--;
        a->pending_bytes -= it->bytes;
        if (it->row_id != NULL)
            *it->row_id = status == 0 ? it->val[AC_ID].i : 0;
        if (it->cb != NULL)
            it->cb(status, it->data);
        free(it->args_owned);
        free(it);
    }
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

static void on_timer(uv_timer_t *h);

/* Appends n outcomes (a batch that must be written again) to those waiting. */
static void outs_put_back(struct mcpd_audit *a, const struct audit_outcome *outs, size_t n)
{
    if (n == 0)
        return;
    if (a->nouts + n > a->outs_cap) {
        size_t cap = (a->nouts + n) * 2;
        struct audit_outcome *m = realloc(a->outs, cap * sizeof(*m));

        if (m == NULL) {
            LOG_WARN("audit", "out of memory: %zu call outcomes not recorded", n);
            return;
        }
        a->outs = m;
        a->outs_cap = cap;
    }
    memcpy(a->outs + a->nouts, outs, n * sizeof(*outs));
    a->nouts += n;
}

/*
 * What a commit of list (and of the outcomes it carried) leads to, on the
 * loop: callbacks; or, on SQLITE_BUSY, the records wait for a retry from
 * the timer; or the audit refuses from now on. Returns true when the
 * outcomes were written or dropped (false: the caller puts them back).
 */
static bool commit_done(struct mcpd_audit *a, struct audit_item *list, int rc, const char *why0)
{
    char why[300];
    int code;

    if (rc == SQLITE_OK) {
        a->busy_since = 0;
        a->busy_delay = 0;
        if (!a->closing)
            uv_timer_stop(&a->timer);
        run_callbacks(a, list, 0);
        return true;
    }
    snprintf(why, sizeof(why), "%s", why0);
    if (is_busy(rc) && !a->closing) {
        uint64_t now = uv_now(a->loop);

        if (a->busy_since == 0)
            a->busy_since = now;
        if (now - a->busy_since < (uint64_t)a->busy_ms) {
            /*
             * The records wait, in front of any submitted meanwhile. A
             * commit of outcomes alone has none: then local stays as it
             * is (its tail must never point into this frame).
             */
            if (list != NULL) {
                struct audit_item *last = list;

                while (last->next != NULL)
                    last = last->next;
                last->next = a->local;
                if (a->local == NULL)
                    a->local_tail = &last->next;
                a->local = list;
            }
            a->busy_delay = a->busy_delay == 0 ? 1 : a->busy_delay * 2;
            if (a->busy_delay > BUSY_DELAY_MAX_MS)
                a->busy_delay = BUSY_DELAY_MAX_MS;
            uv_timer_start(&a->timer, on_timer, a->busy_delay, 0);
            return false;
        }
        snprintf(why + strlen(why), sizeof(why) - strlen(why), " for %d ms", a->busy_ms);
    }
    code = mcpd__store_db_code(rc);
    refuse(a, code != 0 ? code : UV_EIO, why);
    run_callbacks(a, list, a->fail_code);
    return true;
}

/* Whether records (or outcomes) wait for a commit. */
static bool commit_due(const struct mcpd_audit *a, bool outcomes_due)
{
    return a->local != NULL ||
           (a->nouts > 0 && (outcomes_due || a->nouts >= MCPD_AUDIT_OUTCOMES_PER_ROW));
}

/* Takes the records waiting (the caller owns the list). */
static struct audit_item *take_local(struct mcpd_audit *a)
{
    struct audit_item *list = a->local;

    a->local = NULL;
    a->local_tail = &a->local;
    return list;
}

/* Commits on the loop what waits. */
static void commit(struct mcpd_audit *a, bool outcomes_due)
{
    struct audit_item *list;
    char why[256] = "";
    int rc;

    if (!commit_due(a, outcomes_due) || atomic_load_explicit(&a->job_state, memory_order_acquire))
        return; /* nothing, or the helper thread is committing: its completion comes back here */
    list = take_local(a);
    if (a->refusing) {
        a->nouts = 0;
        run_callbacks(a, list, a->fail_code);
        return;
    }
    rc = write_batch(a, list, a->outs, a->nouts, why, sizeof(why));
    {
        size_t n = a->nouts;

        a->nouts = 0;
        if (!commit_done(a, list, rc, why))
            a->nouts = n; /* busy: they are still in a->outs */
    }
}

/* ---- low concurrency: the commit on the helper thread ---------------------------------------- */

/*
 * With at most LOW_PENDING records waiting, a call waits for its own
 * commit: on the loop, the commit would run after the forward and before
 * the upstream's answer is read, in series with it. Then the helper thread
 * commits instead, in parallel with the upstream, and both threads poll
 * briefly (HELPER_SPIN_NS) for each other rather than paying two wake-ups
 * of a sleeping thread per call. Busier loops commit on the loop, where
 * an iteration's records form one commit and nothing polls.
 */
static bool hand_off(struct mcpd_audit *a);

static void job_finish(struct mcpd_audit *a)
{
    struct audit_item *list = a->job.list;

    a->job.list = NULL;
    atomic_store_explicit(&a->job_state, 0, memory_order_relaxed);
    uv_idle_stop(&a->spin);
    if (!commit_done(a, list, a->job.rc, a->job.why))
        outs_put_back(a, a->job.outs, a->job.nouts); /* busy: written with the retry */
    a->job.nouts = 0;
    if (a->closing || a->busy_since != 0)
        return; /* the close or the retry timer commits what waits */
    if (hand_off(a))
        return; /* what arrived meanwhile, at once: the helper may still be polling */
    if (a->local != NULL || a->nouts >= MCPD_AUDIT_OUTCOMES_PER_ROW)
        uv_timer_start(&a->timer, on_timer, 0, 0); /* what arrived meanwhile */
    else if (a->nouts > 0 && !uv_is_active((uv_handle_t *)&a->timer))
        uv_timer_start(&a->timer, on_timer, MCPD_AUDIT_OUTCOME_DELAY_MS, 0);
}

static void on_job_async(uv_async_t *h)
{
    struct mcpd_audit *a = h->data;

    if (atomic_load_explicit(&a->job_state, memory_order_acquire) == JOB_DONE)
        job_finish(a);
}

static void on_spin(uv_idle_t *h)
{
    struct mcpd_audit *a = h->data;

    if (atomic_load_explicit(&a->job_state, memory_order_acquire) == JOB_DONE)
        job_finish(a); /* the async wake-up that follows finds nothing */
    else if (uv_hrtime() >= a->spin_end)
        uv_idle_stop(h);
}

/* Hands what waits to the helper thread; false when it is not the time for that. */
static bool hand_off(struct mcpd_audit *a)
{
    struct audit_outcome *o;
    size_t cap;

    if (atomic_load_explicit(&a->job_state, memory_order_acquire) != JOB_IDLE ||
        a->pending > LOW_PENDING || HELPER_SPIN_NS == 0 || a->refusing || a->closing ||
        !a->helper_started || atomic_load_explicit(&a->helper_busy, memory_order_acquire) ||
        a->local == NULL)
        return false;
    a->job.list = take_local(a);
    /* swap the outcome arrays: the loop collects into the job's empty one meanwhile */
    o = a->job.outs, a->job.outs = a->outs, a->outs = o;
    cap = a->job.outs_cap, a->job.outs_cap = a->outs_cap, a->outs_cap = cap;
    a->job.nouts = a->nouts;
    a->nouts = 0;
    a->job.rc = SQLITE_OK;
    a->job.why[0] = '\0';
    uv_mutex_lock(&a->mu);
    atomic_store_explicit(&a->job_state, JOB_READY, memory_order_release);
    if (a->helper_sleeping)
        uv_cond_signal(&a->cv);
    uv_mutex_unlock(&a->mu);
    a->spin_end = uv_hrtime() + HELPER_SPIN_NS;
    uv_idle_start(&a->spin, on_spin);
    return true;
}

static void on_flush(uv_prepare_t *h)
{
    struct mcpd_audit *a = h->data;

    uv_prepare_stop(h);
    if (a->busy_since != 0 || atomic_load_explicit(&a->job_state, memory_order_acquire))
        return; /* the timer retries; or the job's completion commits what waits */
    if (hand_off(a))
        return;
    commit(a, false);
    /* records submitted by the callbacks: a prepare started now runs after the poll */
    if (a->local != NULL && !a->closing && a->busy_since == 0)
        uv_timer_start(&a->timer, on_timer, 0, 0);
}

static void on_timer(uv_timer_t *h)
{
    struct mcpd_audit *a = h->data;

    if (!hand_off(a))
        commit(a, true);
}

/* ---- the helper thread ---------------------------------------------------------------------- */

/* sqlite calls this after each commit with the WAL's size (it replaces the autocheckpoint). */
static int on_wal(void *arg, sqlite3 *db, const char *name, int pages)
{
    struct mcpd_audit *a = arg;

    (void)db;
    (void)name;
    if (pages < a->ckpt_base)
        a->ckpt_base = 0; /* the WAL started over */
    /* a checkpoint per ckpt_pages of growth: under load the WAL only starts over after RESTART */
    if (pages - a->ckpt_base >= (int)a->ckpt_pages && a->helper_started) {
        a->ckpt_base = pages;
        uv_mutex_lock(&a->mu);
        if (a->ckpt_want == 0) {
            a->ckpt_want = pages;
            atomic_store_explicit(&a->ckpt_asked, 1, memory_order_release);
            uv_cond_signal(&a->cv);
        }
        uv_mutex_unlock(&a->mu);
    }
    return SQLITE_OK;
}

static void checkpoint(struct mcpd_audit *a, int pages)
{
    int log = 0, done = 0, rc;

    atomic_store_explicit(&a->helper_busy, 1, memory_order_release);
    /* copies what is committed, without blocking the loop's commits */
    rc = sqlite3_wal_checkpoint_v2(a->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (rc == SQLITE_OK && (unsigned)pages >= a->ckpt_pages * CKPT_FORCE_FACTOR) {
        /*
         * The WAL does not start over after passive passes here, whether
         * commits kept coming during them or the pass copied everything
         * (measured: past 1 GB in seconds at one record per commit, every
         * pass complete). A RESTART does it: take the write lock for the
         * (short) rest. The loop sees SQLITE_BUSY meanwhile and retries
         * from its timer.
         */
        rc = sqlite3_wal_checkpoint_v2(a->ckpt_db, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done);
    }
    if (rc != SQLITE_OK && !is_busy(rc))
        LOG_WARN("audit", "checkpoint: %s", sqlite3_errmsg(a->ckpt_db));
    atomic_store_explicit(&a->helper_busy, 0, memory_order_release);
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Runs the job the loop handed over (the connection is this thread's until JOB_DONE). */
static void run_job(struct mcpd_audit *a)
{
    a->job.rc =
        write_batch(a, a->job.list, a->job.outs, a->job.nouts, a->job.why, sizeof(a->job.why));
    atomic_store_explicit(&a->job_state, JOB_DONE, memory_order_release);
    uv_async_send(&a->async);
}

/*
 * After a job: poll for the next one a moment (low concurrency: it comes
 * within a round trip). Not when a checkpoint is asked for: under a steady
 * stream of jobs the helper would never get to it, and the WAL would grow
 * without end (it did: 1 GB in seconds at one record per commit).
 */
static bool spin_for_job(struct mcpd_audit *a)
{
    uint64_t end = uv_hrtime() + HELPER_SPIN_NS;

    if (atomic_load_explicit(&a->ckpt_asked, memory_order_acquire)) {
        /* from now on the loop commits on its own (see helper) */
        atomic_store_explicit(&a->helper_busy, 1, memory_order_seq_cst);
        return false;
    }
    while (uv_hrtime() < end) {
        if (atomic_load_explicit(&a->job_state, memory_order_acquire) == JOB_READY)
            return true;
        for (int i = 0; i < 16; i++)
            cpu_relax();
    }
    return false;
}

/* The helper thread: low-concurrency commits (hand_off) and checkpoints. */
static void helper(void *arg)
{
    struct mcpd_audit *a = arg;
    int pages;

    uv_mutex_lock(&a->mu);
    for (;;) {
        a->helper_sleeping = true;
        while (atomic_load_explicit(&a->job_state, memory_order_acquire) != JOB_READY &&
               a->ckpt_want == 0 && !a->ckpt_stop)
            uv_cond_wait(&a->cv, &a->mu);
        a->helper_sleeping = false;
        if (a->ckpt_want != 0 && !a->ckpt_stop) {
            /*
             * A checkpoint asked for goes before further jobs: from here on
             * (helper_busy) the loop commits on its own. A job it handed
             * over before that runs first.
             */
            pages = a->ckpt_want;
            uv_mutex_unlock(&a->mu);
            atomic_store_explicit(&a->helper_busy, 1, memory_order_seq_cst);
            if (atomic_load_explicit(&a->job_state, memory_order_seq_cst) == JOB_READY)
                run_job(a);
            checkpoint(a, pages);
            uv_mutex_lock(&a->mu);
            a->ckpt_want = 0;
            atomic_store_explicit(&a->ckpt_asked, 0, memory_order_release);
            continue;
        }
        if (atomic_load_explicit(&a->job_state, memory_order_acquire) == JOB_READY) {
            uv_mutex_unlock(&a->mu);
            do
                run_job(a);
            while (spin_for_job(a));
            uv_mutex_lock(&a->mu);
            continue;
        }
        if (a->ckpt_stop)
            break;
    }
    uv_mutex_unlock(&a->mu);
}

static void stop_helper(struct mcpd_audit *a)
{
    if (a->helper_started) {
        uv_mutex_lock(&a->mu);
        a->ckpt_stop = true;
        uv_cond_signal(&a->cv);
        uv_mutex_unlock(&a->mu);
        uv_thread_join(&a->helper_thread);
        a->helper_started = false;
    }
}

/* ---- open and close -------------------------------------------------------------------------- */

static void close_db(struct mcpd_audit *a)
{
    sqlite3_stmt **stmts[] = { &a->ins,         &a->meta_get, &a->meta_set, &a->retain_first,
                               &a->retain_last, &a->del,      &a->begin,    &a->commit };

    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        sqlite3_finalize(*stmts[i]);
        *stmts[i] = NULL;
    }
    sqlite3_close(a->db);
    a->db = NULL;
    sqlite3_close(a->ckpt_db);
    a->ckpt_db = NULL;
}

static void free_audit(struct mcpd_audit *a)
{
    free(a->outs);
    free(a->job.outs);
    free(a->path);
    mcpd_buf_dispose(&a->block.text);
    mcpd_buf_dispose(&a->outs_text);
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
    uv_close((uv_handle_t *)&a->timer, on_audit_closed);
    uv_close((uv_handle_t *)&a->async, on_audit_closed);
    uv_close((uv_handle_t *)&a->spin, on_audit_closed);
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

static int open_db(struct mcpd_audit *a, const char *path, char *err, size_t errcap)
{
    sqlite3_stmt **stmts[] = { &a->ins,         &a->meta_get, &a->meta_set, &a->retain_first,
                               &a->retain_last, &a->del,      &a->begin,    &a->commit };
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
    /* the loop never waits for the lock (commit retries), nor checkpoints */
    sqlite3_busy_timeout(a->db, 0);
    sqlite3_wal_hook(a->db, on_wal, a);
    if ((r = mcpd__store_db_open(&a->ckpt_db, path, true, 1000, err, errcap)) != 0)
        goto fail;
    /*
     * A RESTART blocks new writers while it waits for the lock and for
     * readers (the busy handler): at most CKPT_BUSY_MS, then it gives up
     * until the next request. A second's wait stalled every call.
     */
    sqlite3_busy_timeout(a->ckpt_db, CKPT_BUSY_MS);
    return 0;
fail:
    if (a->db != NULL && !sqlite3_get_autocommit(a->db))
        mcpd__store_db_rollback(a->db);
    close_db(a);
    return r;
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
    uv_prepare_init(loop, &a->flush); /* cannot fail */
    a->flush.data = a;
    uv_timer_init(loop, &a->timer); /* cannot fail */
    a->timer.data = a;
    if ((r = uv_async_init(loop, &a->async, on_job_async)) != 0) {
        uv_close((uv_handle_t *)&a->flush, NULL);
        uv_close((uv_handle_t *)&a->timer, NULL);
        uv_cond_destroy(&a->cv);
        uv_mutex_destroy(&a->mu);
        goto fail;
    }
    a->async.data = a;
    uv_idle_init(loop, &a->spin); /* cannot fail */
    a->spin.data = a;
    a->handles_open = 4;
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
    if ((a = calloc(1, sizeof(*a))) == NULL || (a->path = strdup(o->path)) == NULL) {
        free(a);
        snprintf(err, errcap, "out of memory");
        return MCPD_ENOMEM;
    }
    a->magic = AUDIT_MAGIC;
    a->loop = loop;
    a->max_args = o->max_args_bytes ? o->max_args_bytes : DEFAULT_MAX_ARGS;
    a->queue_cap = o->queue_cap ? o->queue_cap : DEFAULT_QUEUE_CAP;
    a->retain_ms = o->retain_ms > 0 ? o->retain_ms : 0;
    a->retain_rows = o->retain_rows > 0 ? o->retain_rows : 0;
    a->busy_ms = o->busy_timeout_ms > 0 ? o->busy_timeout_ms : MCPD_STORE_BUSY_MS;
    a->ckpt_pages = o->checkpoint_pages > 0 ? o->checkpoint_pages : CKPT_PAGES;
    a->sync_full = o->sync_full;
    a->local_tail = &a->local;
    atomic_init(&a->job_state, JOB_IDLE);
    atomic_init(&a->helper_busy, 0);
    mcpd_buf_init(&a->block.text, SIZE_MAX / 2);
    mcpd_buf_init(&a->outs_text, SIZE_MAX / 2);
    if ((r = open_db(a, o->path, err, errcap)) != 0) {
        free(a->path);
        free(a);
        return r;
    }
    if ((r = start(a, loop, err, errcap)) != 0) {
        close_db(a);
        free(a->path);
        free(a);
        return r;
    }
    if ((r = uv_thread_create(&a->helper_thread, helper, a)) != 0) {
        /* the handles are live: their close callbacks free the audit */
        snprintf(err, errcap, "audit: %s", mcpd_strerror(r));
        close_db(a);
        close_handles(a);
        return r;
    }
    a->helper_started = true;
    *out = a;
    return 0;
}

/* The final flush, on the loop iteration after close: wait for the lock this time. */
static void on_close_timer(uv_timer_t *h)
{
    struct mcpd_audit *a = h->data;

    if (atomic_load_explicit(&a->job_state, memory_order_acquire) != JOB_IDLE) {
        if (atomic_load_explicit(&a->job_state, memory_order_acquire) == JOB_DONE)
            job_finish(a);
        else
            uv_timer_start(&a->timer, on_close_timer, 1, 0); /* the helper is committing */
        if (atomic_load_explicit(&a->job_state, memory_order_acquire) != JOB_IDLE)
            return;
    }
    sqlite3_busy_timeout(a->db, a->busy_ms);
    commit(a, true);
    stop_helper(a);
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
    a->busy_since = 0;
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
    if (a->pending_bytes + it->bytes > QUEUE_BYTES_MAX) {
        free(it->args_owned);
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
    if (a->nouts >= a->queue_cap)
        return MCPD_EBUSY;
    if (a->nouts == a->outs_cap) {
        size_t cap = a->outs_cap ? a->outs_cap * 2 : 64;
        struct audit_outcome *n = realloc(a->outs, cap * sizeof(*n));
        if (n == NULL)
            return MCPD_ENOMEM;
        a->outs = n;
        a->outs_cap = cap;
    }
    o = &a->outs[a->nouts++];
    o->call_id = call_id;
    o->latency_us = latency_us;
    snprintf(o->status, sizeof(o->status), "%s", status ? status : "");
    if (a->nouts >= MCPD_AUDIT_OUTCOMES_PER_ROW)
        uv_prepare_start(&a->flush, on_flush);
    else if (a->busy_since == 0 && !uv_is_active((uv_handle_t *)&a->timer))
        uv_timer_start(&a->timer, on_timer, MCPD_AUDIT_OUTCOME_DELAY_MS, 0);
    return 0;
}
