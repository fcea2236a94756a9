/*
 * store_watch.c - the daemon's view of the bot table (see store.h). A
 * thread with its own connection polls the store's generation every
 * poll_ms; when it moved, the thread reads the table and the generation
 * from one snapshot and parks the new table in the watch, then wakes the
 * loop with uv_async_send. The loop side hands the latest parked table to
 * on_change (an older one not yet delivered is simply replaced). Read
 * errors keep the last good table and are reported once per streak,
 * logged from the loop.
 *
 * Shutdown: close sets `stop` and signals the thread; the thread closes
 * its connection, sets `exited` and wakes the loop one last time; the loop
 * joins it and closes the async handle, whose close callback calls done
 * and frees the watch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "log.h"
#include "store.h"
#include "store_db.h"

#define WATCH_MAGIC     0x57a7c4u
#define DEFAULT_POLL_MS 500

struct mcpd_store_watch {
    unsigned magic;
    uv_loop_t *loop;
    uv_async_t async;
    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cv;
    uint64_t poll_ns;
    void (*on_bots)(struct mcpd_bot_row *rows, size_t n, void *data);
    void (*on_agents)(struct mcpd_agent_row *rows, size_t n, void *data);
    void *data;
    /* the table read: bots (mcpd__store_read_table) or agents (mcpd__store_read_agents) */
    int (*read)(struct mcpd_store *st, void **rows, size_t *n, int64_t *gen, char *err,
                size_t errcap);
    const char *what; /* "bot" or "agent", for logs */
    /* thread only */
    struct mcpd_store *st;
    int64_t gen;
    bool failing;
    /* under mu */
    bool stop, exited, fresh;
    void *rows; /* the latest table not yet delivered (when fresh) */
    size_t n;
    char err[256]; /* an error to log (when err[0]) */
    /* loop only */
    bool closing, handle_closed;
    void (*done)(void *data);
    void *done_data;
};

/* ---- the thread ------------------------------------------------------------------------------ */

static void park_error(struct mcpd_store_watch *w, const char *msg)
{
    if (w->failing)
        return;
    w->failing = true;
    uv_mutex_lock(&w->mu);
    snprintf(w->err, sizeof(w->err), "%s", msg);
    uv_mutex_unlock(&w->mu);
    uv_async_send(&w->async);
}

static void park_table(struct mcpd_store_watch *w, void *rows, size_t n)
{
    uv_mutex_lock(&w->mu);
    free(w->rows);
    w->rows = rows;
    w->n = n;
    w->fresh = true;
    uv_mutex_unlock(&w->mu);
    uv_async_send(&w->async);
}

static void poll_once(struct mcpd_store_watch *w)
{
    void *rows = NULL;
    char err[256];
    int64_t gen = mcpd_store_generation(w->st);
    size_t n = 0;

    if (gen < 0) {
        snprintf(err, sizeof(err), "generation: %s", mcpd_strerror((int)gen));
        park_error(w, err);
        return;
    }
    if (gen == w->gen) {
        w->failing = false;
        return;
    }
    if (w->read(w->st, &rows, &n, &gen, err, sizeof(err)) != 0) {
        park_error(w, err);
        return;
    }
    w->failing = false;
    w->gen = gen;
    park_table(w, rows, n);
}

static void watch_thread(void *arg)
{
    struct mcpd_store_watch *w = arg;

    uv_mutex_lock(&w->mu);
    while (!w->stop) {
        /* a timeout or a signal; spurious wake-ups just poll early */
        uv_cond_timedwait(&w->cv, &w->mu, w->poll_ns);
        if (w->stop)
            break;
        uv_mutex_unlock(&w->mu);
        poll_once(w);
        uv_mutex_lock(&w->mu);
    }
    uv_mutex_unlock(&w->mu);
    mcpd_store_close(w->st);
    w->st = NULL;
    uv_mutex_lock(&w->mu);
    w->exited = true;
    uv_mutex_unlock(&w->mu);
    uv_async_send(&w->async);
}

/* ---- the loop side --------------------------------------------------------------------------- */

static void free_watch(struct mcpd_store_watch *w)
{
    free(w->rows);
    uv_cond_destroy(&w->cv);
    uv_mutex_destroy(&w->mu);
    w->magic = 0;
    free(w);
}

static void on_watch_closed(uv_handle_t *h)
{
    struct mcpd_store_watch *w = h->data;
    void (*done)(void *data) = w->done;
    void *done_data = w->done_data;

    free_watch(w);
    if (done != NULL)
        done(done_data);
}

static void deliver(struct mcpd_store_watch *w, void *rows, size_t n)
{
    if (w->on_agents != NULL)
        w->on_agents(rows, n, w->data);
    else
        w->on_bots(rows, n, w->data);
}

static void on_watch_async(uv_async_t *h)
{
    struct mcpd_store_watch *w = h->data;
    void *rows;
    char err[256];
    bool fresh, exited;
    size_t n;

    if (w->magic != WATCH_MAGIC || w->handle_closed)
        return;
    uv_mutex_lock(&w->mu);
    rows = w->rows;
    n = w->n;
    fresh = w->fresh;
    w->rows = NULL;
    w->fresh = false;
    memcpy(err, w->err, sizeof(err));
    w->err[0] = '\0';
    exited = w->exited;
    uv_mutex_unlock(&w->mu);
    if (err[0] != '\0' && !w->closing)
        LOG_WARN("store", "cannot re-read the %s table, keeping the last one: %s", w->what, err);
    if (fresh && !w->closing)
        deliver(w, rows, n); /* takes rows */
    else
        free(rows);
    if (exited) {
        uv_thread_join(&w->thread);
        w->handle_closed = true;
        uv_close((uv_handle_t *)&w->async, on_watch_closed);
    }
}

static int watch_init(struct mcpd_store_watch *w, uv_loop_t *loop, const char *path,
                      unsigned poll_ms, void **rows, size_t *n, char *err, size_t errcap)
{
    int r;

    w->magic = WATCH_MAGIC;
    w->loop = loop;
    w->poll_ns = (uint64_t)(poll_ms ? poll_ms : DEFAULT_POLL_MS) * 1000000u;
    if ((r = mcpd_store_open(&w->st, path, err, errcap)) != 0)
        return r;
    if ((r = w->read(w->st, rows, n, &w->gen, err, errcap)) != 0)
        goto fail_store;
    if ((r = uv_mutex_init(&w->mu)) != 0)
        goto fail_rows;
    if ((r = uv_cond_init(&w->cv)) != 0)
        goto fail_mutex;
    return 0;
fail_mutex:
    uv_mutex_destroy(&w->mu);
fail_rows:
    free(*rows);
    *rows = NULL;
    snprintf(err, errcap, "store watch: %s", mcpd_strerror(r));
fail_store:
    mcpd_store_close(w->st);
    w->st = NULL;
    return r;
}

static int read_bots(struct mcpd_store *st, void **rows, size_t *n, int64_t *gen, char *err,
                     size_t errcap)
{
    return mcpd__store_read_table(st, (struct mcpd_bot_row **)rows, n, gen, err, errcap);
}

static int read_agents(struct mcpd_store *st, void **rows, size_t *n, int64_t *gen, char *err,
                       size_t errcap)
{
    return mcpd__store_read_agents(st, (struct mcpd_agent_row **)rows, n, gen, err, errcap);
}

static int watch_new(struct mcpd_store_watch **out, uv_loop_t *loop, const char *path,
                     unsigned poll_ms,
                     void (*on_bots)(struct mcpd_bot_row *rows, size_t n, void *data),
                     void (*on_agents)(struct mcpd_agent_row *rows, size_t n, void *data),
                     void *data, char *err, size_t errcap)
{
    struct mcpd_store_watch *w;
    void *rows = NULL;
    size_t n = 0;
    int r;

    *out = NULL;
    if ((w = calloc(1, sizeof(*w))) == NULL) {
        snprintf(err, errcap, "out of memory");
        return MCPD_ENOMEM;
    }
    w->on_bots = on_bots;
    w->on_agents = on_agents;
    w->data = data;
    w->read = on_agents ? read_agents : read_bots;
    w->what = on_agents ? "agent" : "bot";
    if ((r = watch_init(w, loop, path, poll_ms, &rows, &n, err, errcap)) != 0) {
        free(w);
        return r;
    }
    /* cannot fail once the loop's async machinery exists; checked anyway */
    if ((r = uv_async_init(loop, &w->async, on_watch_async)) != 0) {
        snprintf(err, errcap, "store watch: %s", mcpd_strerror(r));
        mcpd_store_close(w->st);
        free(rows);
        w->rows = NULL;
        free_watch(w);
        return r;
    }
    w->async.data = w;
    if ((r = uv_thread_create(&w->thread, watch_thread, w)) != 0) {
        /* the handle is live: the close callback frees the watch */
        snprintf(err, errcap, "store watch: %s", mcpd_strerror(r));
        mcpd_store_close(w->st);
        w->st = NULL;
        free(rows);
        w->handle_closed = true;
        uv_close((uv_handle_t *)&w->async, on_watch_closed);
        return r;
    }
    *out = w;
    deliver(w, rows, n); /* the first table, synchronously */
    return 0;
}

int mcpd_store_watch(struct mcpd_store_watch **out, uv_loop_t *loop, const char *path,
                     unsigned poll_ms,
                     void (*on_change)(struct mcpd_bot_row *rows, size_t n, void *data), void *data,
                     char *err, size_t errcap)
{
    return watch_new(out, loop, path, poll_ms, on_change, NULL, data, err, errcap);
}

int mcpd_store_watch_agents(struct mcpd_store_watch **out, uv_loop_t *loop, const char *path,
                            unsigned poll_ms,
                            void (*on_change)(struct mcpd_agent_row *rows, size_t n, void *data),
                            void *data, char *err, size_t errcap)
{
    return watch_new(out, loop, path, poll_ms, NULL, on_change, data, err, errcap);
}

void mcpd_store_watch_close(struct mcpd_store_watch *w, void (*done)(void *data), void *data)
{
    if (w == NULL || w->closing)
        return;
    w->closing = true;
    w->done = done;
    w->done_data = data;
    uv_mutex_lock(&w->mu);
    w->stop = true;
    uv_cond_signal(&w->cv);
    uv_mutex_unlock(&w->mu);
}
