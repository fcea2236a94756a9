/*
 * test_store_agents.c - connected agents in the store (mcpd/store_agents.c)
 * on real database files in a fresh mkdtemp directory per test.
 *
 * Covers create/list/rotate/disable/enable/delete with their exact error
 * messages, the key shape and its masked form (first 8 + "…" + last 4),
 * that a key never reaches the file in clear, status and resource writes
 * (which do not bump the generation), opening a database created before
 * the agent tables existed (schema 1, bots only), and the agent watcher.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cmocka.h needs these four first. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <sqlite3.h>
#include <uv.h>

#include "helpers.h"
#include "mcpd/config.h"
#include "mcpd/error.h"
#include "mcpd/limits.h"
#include "mcpd/store.h"

static int setup(void **state)
{
    return test_store_setup(state, "agents");
}

static int teardown(void **state)
{
    return test_store_teardown(state);
}

static void assert_key_shape(const char *key)
{
    assert_int_equal(strlen(key), MCPD_AGENT_KEY_LEN);
    assert_memory_equal(key, "ak_", 3);
    for (size_t i = 3; i < MCPD_AGENT_KEY_LEN; i++)
        assert_true((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f'));
}

static const struct mcpd_agent_row *row_named(const struct mcpd_agent_row *rows, size_t n,
                                              const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].name, name) == 0)
            return &rows[i];
    return NULL;
}

static void test_create_list_mask(void **state)
{
    struct store_fixture *f = *state;
    char ka[MCPD_AGENT_KEY_LEN + 1], kb[MCPD_AGENT_KEY_LEN + 1], hint[32];
    struct mcpd_agent_row *rows = NULL;
    size_t n = 0;

    assert_int_equal(mcpd_store_agent_create(f->st, "laptop", kb, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_agent_create(f->st, "build-1", ka, f->err, sizeof(f->err)), 0);
    assert_key_shape(ka);
    assert_key_shape(kb);
    assert_string_not_equal(ka, kb);
    assert_int_equal(mcpd_store_agent_list(f->st, &rows, &n, f->err, sizeof(f->err)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].name, "build-1"); /* name order */
    assert_string_equal(rows[1].name, "laptop");
    snprintf(hint, sizeof(hint), "%.8s\xe2\x80\xa6%s", ka, ka + MCPD_AGENT_KEY_LEN - 4);
    assert_string_equal(rows[0].key_hint, hint);
    assert_false(rows[0].disabled);
    assert_false(rows[0].online);
    assert_int_equal(rows[0].last_online_ms, 0);
    assert_int_equal(rows[0].nresources, 0);
    assert_true(rows[0].created_ms > 1600000000000LL);
    assert_true(mcpd_store_key_equal(rows[0].key_hash, ka, strlen(ka)));
    /* find by key, and not by another key or a bot-shaped one */
    assert_ptr_equal(mcpd_store_agent_find(rows, n, kb, strlen(kb)), &rows[1]);
    assert_null(mcpd_store_agent_find(rows, n, "ak_0", 4));
    free(rows);

    /* errors, exact */
    assert_int_equal(mcpd_store_agent_create(f->st, "laptop", ka, f->err, sizeof(f->err)),
                     MCPD_ECONFIG);
    assert_string_equal(f->err, "agent \"laptop\" already exists");
    assert_int_equal(mcpd_store_agent_create(f->st, "Laptop", ka, f->err, sizeof(f->err)),
                     MCPD_ECONFIG);
    assert_string_equal(f->err,
                        "invalid agent name \"Laptop\": must match ^[a-z0-9][a-z0-9-]{0,31}$");
    assert_int_equal(mcpd_store_agent_create(f->st, "-x", ka, f->err, sizeof(f->err)),
                     MCPD_ECONFIG);
    assert_int_equal(mcpd_store_agent_create(f->st, "a23456789012345678901234567890123", ka, f->err,
                                             sizeof(f->err)),
                     MCPD_ECONFIG);
    assert_int_equal(mcpd_store_agent_delete(f->st, "nobody", f->err, sizeof(f->err)),
                     MCPD_ECONFIG);
    assert_string_equal(f->err, "no agent named \"nobody\"");
    /* agents and bots are separate namespaces */
    assert_int_equal(mcpd_store_bot_create(f->st, "laptop", ka, f->err, sizeof(f->err)), 0);
}

static void test_rotate_disable_delete(void **state)
{
    struct store_fixture *f = *state;
    char k1[MCPD_AGENT_KEY_LEN + 1], k2[MCPD_AGENT_KEY_LEN + 1];
    struct mcpd_agent_row *rows = NULL;
    size_t n = 0;
    int64_t g0, g1;

    assert_int_equal(mcpd_store_agent_create(f->st, "laptop", k1, f->err, sizeof(f->err)), 0);
    g0 = mcpd_store_generation(f->st);
    assert_int_equal(mcpd_store_agent_rotate(f->st, "laptop", k2, f->err, sizeof(f->err)), 0);
    assert_key_shape(k2);
    assert_string_not_equal(k1, k2);
    g1 = mcpd_store_generation(f->st);
    assert_true(g1 > g0);
    assert_int_equal(mcpd_store_agent_list(f->st, &rows, &n, f->err, sizeof(f->err)), 0);
    assert_int_equal(n, 1);
    assert_false(mcpd_store_key_equal(rows[0].key_hash, k1, strlen(k1)));
    assert_true(mcpd_store_key_equal(rows[0].key_hash, k2, strlen(k2)));
    assert_null(mcpd_store_agent_find(rows, n, k1, strlen(k1)));
    assert_true(rows[0].rotated_ms > 0);
    free(rows);

    assert_int_equal(mcpd_store_agent_set_disabled(f->st, "laptop", true, f->err, sizeof(f->err)),
                     0);
    assert_true(mcpd_store_generation(f->st) > g1);
    assert_int_equal(mcpd_store_agent_list(f->st, &rows, &n, f->err, sizeof(f->err)), 0);
    assert_true(rows[0].disabled);
    free(rows);
    assert_int_equal(mcpd_store_agent_set_disabled(f->st, "laptop", false, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(mcpd_store_agent_list(f->st, &rows, &n, f->err, sizeof(f->err)), 0);
    assert_false(rows[0].disabled);
    free(rows);

    /* resources survive the agent's deletion */
    assert_int_equal(
        mcpd_store_agent_add_resource(f->st, "laptop", "fs", "laptop-fs", f->err, sizeof(f->err)),
        0);
    assert_int_equal(mcpd_store_agent_delete(f->st, "laptop", f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_agent_list(f->st, &rows, &n, f->err, sizeof(f->err)), 0);
    assert_int_equal(n, 0);
    free(rows);
    {
        struct mcpd_agent_resource_row *res = NULL;
        assert_int_equal(mcpd_store_agent_resources(f->st, &res, &n, f->err, sizeof(f->err)), 0);
        assert_int_equal(n, 1);
        assert_string_equal(res[0].name, "laptop-fs");
        free(res);
    }
    assert_int_equal(mcpd_store_agent_rotate(f->st, "laptop", k1, f->err, sizeof(f->err)),
                     MCPD_ECONFIG);
    assert_string_equal(f->err, "no agent named \"laptop\"");
}

static void test_status_and_resources(void **state)
{
    struct store_fixture *f = *state;
    char k[MCPD_AGENT_KEY_LEN + 1];
    struct mcpd_agent_row *rows = NULL;
    struct mcpd_agent_resource_row *res = NULL;
    const struct mcpd_agent_row *a;
    size_t n = 0;
    int64_t g;

    assert_int_equal(mcpd_store_agent_create(f->st, "laptop", k, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_agent_create(f->st, "nas", k, f->err, sizeof(f->err)), 0);
    g = mcpd_store_generation(f->st);
    assert_int_equal(mcpd_store_agent_set_online(f->st, "laptop", true, f->err, sizeof(f->err)), 0);
    assert_int_equal(
        mcpd_store_agent_add_resource(f->st, "laptop", "fs", "laptop-fs", f->err, sizeof(f->err)),
        0);
    assert_int_equal(mcpd_store_agent_add_resource(f->st, "laptop", "builtin", "laptop-builtin",
                                                   f->err, sizeof(f->err)),
                     0);
    /* again: ignored */
    assert_int_equal(
        mcpd_store_agent_add_resource(f->st, "laptop", "fs", "laptop-fs", f->err, sizeof(f->err)),
        0);
    /* an unknown agent is not an error for status writes */
    assert_int_equal(mcpd_store_agent_set_online(f->st, "gone", true, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_generation(f->st), g); /* status is not a change of identity */

    assert_int_equal(mcpd_store_agent_list(f->st, &rows, &n, f->err, sizeof(f->err)), 0);
    a = row_named(rows, n, "laptop");
    assert_non_null(a);
    assert_true(a->online);
    assert_true(a->last_online_ms > 1600000000000LL);
    assert_int_equal(a->nresources, 2);
    assert_int_equal(row_named(rows, n, "nas")->nresources, 0);
    free(rows);

    assert_int_equal(mcpd_store_agent_resources(f->st, &res, &n, f->err, sizeof(f->err)), 0);
    assert_int_equal(n, 2);
    assert_string_equal(res[0].name, "laptop-builtin");
    assert_string_equal(res[0].agent, "laptop");
    assert_string_equal(res[0].group, "builtin");
    assert_string_equal(res[1].name, "laptop-fs");
    free(res);

    assert_int_equal(mcpd_store_agent_set_online(f->st, "laptop", false, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(mcpd_store_agent_list(f->st, &rows, &n, f->err, sizeof(f->err)), 0);
    assert_false(row_named(rows, n, "laptop")->online);
    assert_true(row_named(rows, n, "laptop")->last_online_ms > 0);
    free(rows);
    assert_int_equal(mcpd_store_agent_set_online(f->st, "nas", true, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_agents_all_offline(f->st, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_agent_list(f->st, &rows, &n, f->err, sizeof(f->err)), 0);
    assert_false(row_named(rows, n, "nas")->online);
    free(rows);
}

/* The key is in the file only as its hash. */
static void test_key_not_stored(void **state)
{
    struct store_fixture *f = *state;
    char k[MCPD_AGENT_KEY_LEN + 1];

    assert_int_equal(mcpd_store_agent_create(f->st, "laptop", k, f->err, sizeof(f->err)), 0);
    mcpd_store_close(f->st);
    f->st = NULL;
    assert_int_equal(access(f->path, R_OK), 0);
    assert_false(test_file_contains(f->path, k + 3, 48));
    assert_false(test_file_contains(f->path, k + 11, 36)); /* not even the unmasked middle */
    assert_int_equal(mcpd_store_open(&f->st, f->path, f->err, sizeof(f->err)), 0);
}

/*
 * A database made before the agent tables existed (the schema-1 tables of
 * bots only, as an older mcpd wrote them) opens, keeps its bots, and gets
 * the agent tables.
 */
static void test_old_database(void **state)
{
    struct store_fixture *f = *state;
    char path[160], k[MCPD_AGENT_KEY_LEN + 1];
    struct mcpd_store *st = NULL;
    struct mcpd_bot_row bots[2];
    struct mcpd_agent_row *rows = NULL;
    size_t n = 9;
    sqlite3 *db;

    snprintf(path, sizeof(path), "%s/old.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE bots (name TEXT PRIMARY KEY NOT NULL, key_hash BLOB NOT NULL,"
                     " key_hint TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0,"
                     " created_ms INTEGER NOT NULL, rotated_ms INTEGER NOT NULL DEFAULT 0);"
                     "CREATE TABLE store_meta (k TEXT PRIMARY KEY NOT NULL, v INTEGER NOT NULL);"
                     "INSERT INTO store_meta(k, v) VALUES('generation', 7), ('schema', 1);"
                     "INSERT INTO bots VALUES('old', zeroblob(32), 'mk_000…0000', 0, 1, 0);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(mcpd_store_open(&st, path, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_list(st, bots, 2, f->err, sizeof(f->err)), 1);
    assert_string_equal(bots[0].name, "old");
    assert_int_equal(mcpd_store_agent_list(st, &rows, &n, f->err, sizeof(f->err)), 0);
    assert_int_equal(n, 0);
    assert_int_equal(mcpd_store_agent_create(st, "laptop", k, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_generation(st), 8);
    mcpd_store_close(st);
    /* and again, now that the tables exist */
    assert_int_equal(mcpd_store_open(&st, path, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_agent_list(st, &rows, &n, f->err, sizeof(f->err)), 0);
    assert_int_equal(n, 1);
    free(rows);
    mcpd_store_close(st);
}

/* ---- the watcher ----------------------------------------------------------------------------- */

struct watch_rec {
    int calls;
    struct mcpd_agent_row *rows;
    size_t n;
    bool closed;
};

static void on_agents(struct mcpd_agent_row *rows, size_t n, void *data)
{
    struct watch_rec *rec = data;
    free(rec->rows);
    rec->rows = rows;
    rec->n = n;
    rec->calls++;
}

static void on_watch_done(void *data)
{
    struct watch_rec *rec = data;
    rec->closed = true;
    free(rec->rows);
    rec->rows = NULL;
}

static void test_watch(void **state)
{
    enum { POLL_MS = 100 };
    struct store_fixture *f = *state;
    char k[MCPD_AGENT_KEY_LEN + 1];
    struct mcpd_store_watch *w = NULL;
    struct watch_rec rec = { 0 };
    struct mcpd_store *st2;
    uv_loop_t loop;

    assert_int_equal(mcpd_store_agent_create(f->st, "laptop", k, f->err, sizeof(f->err)), 0);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(mcpd_store_watch_agents(&w, &loop, f->path, POLL_MS, on_agents, &rec, f->err,
                                             sizeof(f->err)),
                     0);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.n, 1);
    assert_string_equal(rec.rows[0].name, "laptop");

    assert_int_equal(mcpd_store_open(&st2, f->path, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_agent_rotate(st2, "laptop", k, f->err, sizeof(f->err)), 0);
    test_run_until(&loop, &rec.calls, 2, 20 * POLL_MS);
    assert_int_equal(rec.calls, 2);
    assert_true(mcpd_store_key_equal(rec.rows[0].key_hash, k, strlen(k)));

    /* a status write is not delivered (no generation bump) */
    assert_int_equal(mcpd_store_agent_set_online(st2, "laptop", true, f->err, sizeof(f->err)), 0);
    test_run_until(&loop, &rec.calls, 3, 3 * POLL_MS);
    assert_int_equal(rec.calls, 2);

    assert_int_equal(mcpd_store_agent_delete(st2, "laptop", f->err, sizeof(f->err)), 0);
    test_run_until(&loop, &rec.calls, 3, 20 * POLL_MS);
    assert_int_equal(rec.calls, 3);
    assert_int_equal(rec.n, 0);
    mcpd_store_close(st2);
    mcpd_store_watch_close(w, on_watch_done, &rec);
    while (!rec.closed)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- the agents: configuration keys --------------------------------------------------------- */

static struct mcpd_config *parse(const char *text, struct mcpd_diag *d)
{
    struct mcpd_config *cfg = NULL;
    mcpd_config_parse(&cfg, "t.yaml", text, strlen(text), d);
    return cfg;
}

static void test_config_keys(void **state)
{
    struct mcpd_config *cfg;
    struct mcpd_diag d;

    (void)state;
    cfg = parse("servers: {}\n", &d);
    assert_non_null(cfg);
    assert_false(cfg->agents_enabled);
    assert_int_equal(cfg->agent_ping_interval_ms, MCPD_AGENT_PING_MS);
    assert_int_equal(cfg->agent_ping_timeout_ms, MCPD_AGENT_PONG_TIMEOUT_MS);
    assert_int_equal(cfg->agent_call_timeout_ms, MCPD_CALL_TIMEOUT_MS);
    assert_int_equal(cfg->agent_max_message, MCPD_MAX_AGENT_MESSAGE_DEFAULT);
    mcpd_config_free(cfg);

    cfg = parse("agents: {}\n", &d);
    assert_non_null(cfg);
    assert_true(cfg->agents_enabled);
    mcpd_config_free(cfg);

    cfg = parse("agents:\n  ping_interval: 5s\n  ping_timeout: 7s\n  call_timeout: 2m\n"
                "  max_message: 1MiB\n  call_timeouts: { laptop-shell: 90s, nas-fs: 250ms }\n",
                &d);
    assert_non_null(cfg);
    assert_true(cfg->agents_enabled);
    assert_int_equal(cfg->agent_ping_interval_ms, 5000);
    assert_int_equal(cfg->agent_ping_timeout_ms, 7000);
    assert_int_equal(cfg->agent_call_timeout_ms, 120000);
    assert_int_equal(cfg->agent_max_message, 1024 * 1024);
    assert_int_equal(cfg->nagent_timeouts, 2);
    assert_string_equal(cfg->agent_timeouts[0].resource, "laptop-shell");
    assert_int_equal(cfg->agent_timeouts[0].ms, 90000);
    assert_string_equal(cfg->agent_timeouts[1].resource, "nas-fs");
    assert_int_equal(cfg->agent_timeouts[1].ms, 250);
    mcpd_config_free(cfg);

    assert_null(parse("agents: { pingg: 1s }\n", &d));
    assert_non_null(strstr(d.msg, "unknown key 'pingg'"));
    assert_null(parse("agents: { ping_interval: 0 }\n", &d));
    assert_non_null(strstr(d.msg, "invalid duration"));
    assert_null(parse("agents: { call_timeout: 11m }\n", &d));
    assert_non_null(strstr(d.msg, "exceeds the maximum"));
    assert_null(parse("agents: { max_message: 100 }\n", &d));
    assert_null(parse("agents: { max_message: 1GiB }\n", &d));
    assert_null(parse("agents: { call_timeouts: { Bad_Name: 1s } }\n", &d));
    assert_non_null(strstr(d.msg, "is not a resource name"));
    assert_null(parse("agents: { call_timeouts: { a-b: never } }\n", &d));
    assert_null(parse("agents: [1]\n", &d));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_list_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotate_disable_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_and_resources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_not_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch, setup, teardown),
        cmocka_unit_test(test_config_keys),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
