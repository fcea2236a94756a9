/*
 * test_store.c - bot keys in sqlite (mcpd/store.c, mcpd/store_watch.c) on
 * real database files in a fresh mkdtemp directory per test.
 *
 * Covers the CLI operations (create, list, rotate, disable, enable,
 * delete) with their exact error messages, the shape of keys, that a key
 * never reaches the file in clear, the hash comparison helpers, the
 * generation counter, and the watcher: the first table delivered
 * synchronously, a change made through a second handle delivered on the
 * loop within about two poll intervals, and a clean close ending with
 * uv_loop_close() == 0.
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

#include <openssl/evp.h>
#include <uv.h>

#include "helpers.h"
#include "mcpd/error.h"
#include "mcpd/store.h"

static int setup(void **state)
{
    return test_store_setup(state, "store");
}

static int teardown(void **state)
{
    return test_store_teardown(state);
}

static void assert_key_shape(const char *key)
{
    assert_int_equal(strlen(key), MCPD_BOT_KEY_LEN);
    assert_memory_equal(key, "mk_", 3);
    for (size_t i = 3; i < MCPD_BOT_KEY_LEN; i++)
        assert_true((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f'));
}

static void sha256(unsigned char out[32], const void *p, size_t n)
{
    unsigned int len = 32;
    assert_int_equal(EVP_Digest(p, n, out, &len, EVP_sha256(), NULL), 1);
}

/* ---- CLI operations -------------------------------------------------------------------------- */

static void test_create_list(void **state)
{
    struct store_fixture *f = *state;
    char ka[MCPD_BOT_KEY_LEN + 1], kb[MCPD_BOT_KEY_LEN + 1], hint[16];
    struct mcpd_bot_row rows[4];
    unsigned char h[32];

    assert_int_equal(mcpd_store_bot_create(f->st, "bob", kb, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_create(f->st, "alice", ka, f->err, sizeof(f->err)), 0);
    assert_key_shape(ka);
    assert_key_shape(kb);
    assert_string_not_equal(ka, kb);
    assert_int_equal(mcpd_store_bot_list(f->st, rows, 4, f->err, sizeof(f->err)), 2);
    assert_string_equal(rows[0].name, "alice"); /* name order */
    assert_string_equal(rows[1].name, "bob");
    sha256(h, ka, strlen(ka));
    assert_memory_equal(rows[0].key_hash, h, 32);
    snprintf(hint, sizeof(hint), "%.6s\xe2\x80\xa6%s", ka, ka + MCPD_BOT_KEY_LEN - 4);
    assert_string_equal(rows[0].key_hint, hint);
    assert_false(rows[0].disabled);
    assert_true(rows[0].created_ms > 1600000000000LL);
    assert_int_equal(rows[0].rotated_ms, 0);
    /* a smaller array still gets the count */
    assert_int_equal(mcpd_store_bot_list(f->st, rows, 1, f->err, sizeof(f->err)), 2);
    assert_int_equal(mcpd_store_bot_list(f->st, NULL, 0, f->err, sizeof(f->err)), 2);
}

static void test_rotate(void **state)
{
    struct store_fixture *f = *state;
    char k1[MCPD_BOT_KEY_LEN + 1], k2[MCPD_BOT_KEY_LEN + 1];
    struct mcpd_bot_row row;

    assert_int_equal(mcpd_store_bot_create(f->st, "alice", k1, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_rotate(f->st, "alice", k2, f->err, sizeof(f->err)), 0);
    assert_key_shape(k2);
    assert_string_not_equal(k1, k2);
    assert_int_equal(mcpd_store_bot_list(f->st, &row, 1, f->err, sizeof(f->err)), 1);
    assert_false(mcpd_store_key_equal(row.key_hash, k1, strlen(k1)));
    assert_true(mcpd_store_key_equal(row.key_hash, k2, strlen(k2)));
    assert_true(row.rotated_ms >= row.created_ms);
    assert_memory_equal(row.key_hint, k2, 6);
    assert_int_equal(mcpd_store_bot_rotate(f->st, "zed", k2, f->err, sizeof(f->err)), MCPD_ECONFIG);
    assert_string_equal(f->err, "no bot named \"zed\"");
}

static void test_disable_enable_delete(void **state)
{
    struct store_fixture *f = *state;
    char k[MCPD_BOT_KEY_LEN + 1];
    struct mcpd_bot_row rows[2];

    assert_int_equal(mcpd_store_bot_create(f->st, "alice", k, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_create(f->st, "bob", k, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_set_disabled(f->st, "alice", true, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_list(f->st, rows, 2, f->err, sizeof(f->err)), 2);
    assert_true(rows[0].disabled);
    assert_false(rows[1].disabled);
    assert_int_equal(mcpd_store_bot_set_disabled(f->st, "alice", false, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_list(f->st, rows, 2, f->err, sizeof(f->err)), 2);
    assert_false(rows[0].disabled);
    assert_int_equal(mcpd_store_bot_delete(f->st, "alice", f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_list(f->st, rows, 2, f->err, sizeof(f->err)), 1);
    assert_string_equal(rows[0].name, "bob");
    assert_int_equal(mcpd_store_bot_delete(f->st, "alice", f->err, sizeof(f->err)), MCPD_ECONFIG);
    assert_string_equal(f->err, "no bot named \"alice\"");
    assert_int_equal(mcpd_store_bot_set_disabled(f->st, "carol", true, f->err, sizeof(f->err)),
                     MCPD_ECONFIG);
    assert_string_equal(f->err, "no bot named \"carol\"");
}

static void test_names(void **state)
{
    static const char *const bad[] = { "",    "-a",       "Alice",
                                       "a_b", "a b",      "a.b",
                                       "a\n", "\xc3\xa9", "0123456789012345678901234567890123" };
    struct store_fixture *f = *state;
    char k[MCPD_BOT_KEY_LEN + 1], want[160];

    assert_int_equal(mcpd_store_bot_create(f->st, "alice", k, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_create(f->st, "alice", k, f->err, sizeof(f->err)),
                     MCPD_ECONFIG);
    assert_string_equal(f->err, "bot \"alice\" already exists");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(mcpd_store_bot_create(f->st, bad[i], k, f->err, sizeof(f->err)),
                         MCPD_ECONFIG);
        if (i == 0)
            assert_string_equal(f->err,
                                "invalid bot name \"\": must match ^[a-z0-9][a-z0-9-]{0,31}$");
    }
    assert_string_equal(f->err, "invalid bot name \"0123456789012345678901234567890123\": must "
                                "match ^[a-z0-9][a-z0-9-]{0,31}$");
    /* control characters and non-ASCII never reach the message */
    assert_int_equal(mcpd_store_bot_create(f->st, "a\n\x1b[1m", k, f->err, sizeof(f->err)),
                     MCPD_ECONFIG);
    assert_string_equal(f->err,
                        "invalid bot name \"a??[1m\": must match ^[a-z0-9][a-z0-9-]{0,31}$");
    assert_int_equal(mcpd_store_bot_delete(f->st, "Alice", f->err, sizeof(f->err)), MCPD_ECONFIG);
    snprintf(want, sizeof(want), "invalid bot name \"Alice\": must match %s",
             "^[a-z0-9][a-z0-9-]{0,31}$");
    assert_string_equal(f->err, want);
    /* the edges of the valid set */
    assert_int_equal(mcpd_store_bot_create(f->st, "0", k, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_create(f->st, "a-", k, f->err, sizeof(f->err)), 0);
    assert_int_equal(
        mcpd_store_bot_create(f->st, "abcdefghijklmnopqrstuvwxyz012345", k, f->err, sizeof(f->err)),
        0);
    assert_int_equal(mcpd_store_bot_list(f->st, NULL, 0, f->err, sizeof(f->err)), 4);
}

/* ---- keys at rest ---------------------------------------------------------------------------- */

static void test_key_not_stored(void **state)
{
    struct store_fixture *f = *state;
    char k1[MCPD_BOT_KEY_LEN + 1], k2[MCPD_BOT_KEY_LEN + 1], wal[160];
    unsigned char h[32];

    assert_int_equal(mcpd_store_bot_create(f->st, "alice", k1, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_create(f->st, "bob", k2, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_rotate(f->st, "bob", k2, f->err, sizeof(f->err)), 0);
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    /* while open, the rows sit in the WAL */
    assert_false(test_file_contains(f->path, k1, strlen(k1)));
    assert_false(test_file_contains(wal, k1, strlen(k1)));
    assert_false(test_file_contains(wal, k2, strlen(k2)));
    mcpd_store_close(f->st);
    f->st = NULL;
    /* after the checkpoint, in the main file: the hash is there, the key is not */
    sha256(h, k1, strlen(k1));
    assert_true(test_file_contains(f->path, h, sizeof(h)));
    assert_false(test_file_contains(f->path, k1, strlen(k1)));
    assert_false(test_file_contains(f->path, k2, strlen(k2)));
    assert_false(test_file_contains(f->path, k1 + 3, 20)); /* nor a long part of it */
    assert_true(test_file_contains(f->path, k1, 6));       /* the hint's prefix is */
}

static void test_hash_helpers(void **state)
{
    static const unsigned char abc[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
    };
    struct store_fixture *f = *state;
    char k1[MCPD_BOT_KEY_LEN + 1], k2[MCPD_BOT_KEY_LEN + 1], other[MCPD_BOT_KEY_LEN + 1];
    struct mcpd_bot_row rows[2];
    unsigned char h[32];

    mcpd_store_key_hash(h, "abc", 3);
    assert_memory_equal(h, abc, 32);
    assert_true(mcpd_store_key_equal(abc, "abc", 3));
    assert_false(mcpd_store_key_equal(abc, "abd", 3));
    assert_false(mcpd_store_key_equal(abc, "ab", 2));
    assert_false(mcpd_store_key_equal(abc, "abc\0", 4)); /* length counts */

    assert_int_equal(mcpd_store_bot_create(f->st, "alice", k1, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_create(f->st, "bob", k2, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_list(f->st, rows, 2, f->err, sizeof(f->err)), 2);
    assert_ptr_equal(mcpd_store_bot_find(rows, 2, k1, strlen(k1)), &rows[0]);
    assert_ptr_equal(mcpd_store_bot_find(rows, 2, k2, strlen(k2)), &rows[1]);
    memcpy(other, k2, sizeof(other));
    other[MCPD_BOT_KEY_LEN - 1] = other[MCPD_BOT_KEY_LEN - 1] == '0' ? '1' : '0';
    assert_null(mcpd_store_bot_find(rows, 2, other, strlen(other)));
    assert_null(mcpd_store_bot_find(rows, 2, k2, strlen(k2) - 1));
    assert_null(mcpd_store_bot_find(rows, 2, "", 0));
    assert_null(mcpd_store_bot_find(NULL, 0, k1, strlen(k1)));
}

static void test_generation(void **state)
{
    struct store_fixture *f = *state;
    char k[MCPD_BOT_KEY_LEN + 1];
    struct mcpd_store *st2;
    int64_t g0 = mcpd_store_generation(f->st);

    assert_true(g0 >= 0);
    assert_int_equal(mcpd_store_bot_create(f->st, "alice", k, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_generation(f->st), g0 + 1);
    assert_int_equal(mcpd_store_bot_rotate(f->st, "alice", k, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_generation(f->st), g0 + 2);
    assert_int_equal(mcpd_store_bot_set_disabled(f->st, "alice", true, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_set_disabled(f->st, "alice", false, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_generation(f->st), g0 + 4);
    /* failures change nothing */
    assert_int_equal(mcpd_store_bot_create(f->st, "alice", k, f->err, sizeof(f->err)),
                     MCPD_ECONFIG);
    assert_int_equal(mcpd_store_bot_delete(f->st, "zed", f->err, sizeof(f->err)), MCPD_ECONFIG);
    assert_int_equal(mcpd_store_bot_create(f->st, "Bad", k, f->err, sizeof(f->err)), MCPD_ECONFIG);
    assert_int_equal(mcpd_store_generation(f->st), g0 + 4);
    /* another handle on the same file sees the same counter, and reopening keeps it */
    assert_int_equal(mcpd_store_open(&st2, f->path, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_delete(st2, "alice", f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_generation(f->st), g0 + 5);
    mcpd_store_close(st2);
    mcpd_store_close(f->st);
    assert_int_equal(mcpd_store_open(&f->st, f->path, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_generation(f->st), g0 + 5);
}

/* ---- the watcher ----------------------------------------------------------------------------- */

struct watch_rec {
    int calls;
    size_t n;
    struct mcpd_bot_row rows[8];
    uint64_t at; /* uv_hrtime of the last call */
    bool closed;
};

static void on_change(struct mcpd_bot_row *rows, size_t n, void *data)
{
    struct watch_rec *w = data;

    w->calls++;
    w->n = n;
    w->at = uv_hrtime();
    if (n > 0)
        memcpy(w->rows, rows, (n < 8 ? n : 8) * sizeof(*rows));
    free(rows);
}

static void on_watch_done(void *data)
{
    ((struct watch_rec *)data)->closed = true;
}

static void test_watch(void **state)
{
    enum { POLL_MS = 100 };
    struct store_fixture *f = *state;
    char k[MCPD_BOT_KEY_LEN + 1];
    struct mcpd_store_watch *w = NULL;
    struct watch_rec rec = { 0 };
    struct mcpd_store *st2;
    uv_loop_t loop;
    uint64_t t0;
    int closed;

    assert_int_equal(mcpd_store_bot_create(f->st, "alice", k, f->err, sizeof(f->err)), 0);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(
        mcpd_store_watch(&w, &loop, f->path, POLL_MS, on_change, &rec, f->err, sizeof(f->err)), 0);
    /* the first table arrived before mcpd_store_watch returned */
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.n, 1);
    assert_string_equal(rec.rows[0].name, "alice");

    /* a change through another handle reaches the loop within about two polls */
    assert_int_equal(mcpd_store_open(&st2, f->path, f->err, sizeof(f->err)), 0);
    t0 = uv_hrtime();
    assert_int_equal(mcpd_store_bot_create(st2, "bob", k, f->err, sizeof(f->err)), 0);
    test_run_until(&loop, &rec.calls, 2, 20 * POLL_MS);
    assert_int_equal(rec.calls, 2);
    assert_true(rec.at - t0 <= (uint64_t)(2 * POLL_MS + 100) * 1000000u);
    assert_int_equal(rec.n, 2);
    assert_string_equal(rec.rows[1].name, "bob");
    assert_true(mcpd_store_key_equal(rec.rows[1].key_hash, k, strlen(k)));

    assert_int_equal(mcpd_store_bot_set_disabled(st2, "alice", true, f->err, sizeof(f->err)), 0);
    test_run_until(&loop, &rec.calls, 3, 20 * POLL_MS);
    assert_int_equal(rec.calls, 3);
    assert_true(rec.rows[0].disabled);

    /* nothing changes: no delivery */
    test_run_until(&loop, &rec.calls, 4, 3 * POLL_MS);
    assert_int_equal(rec.calls, 3);

    /* a change right before close is not delivered after close */
    assert_int_equal(mcpd_store_bot_delete(st2, "alice", f->err, sizeof(f->err)), 0);
    mcpd_store_close(st2);
    mcpd_store_watch_close(w, on_watch_done, &rec);
    closed = 0;
    while (!rec.closed && closed++ < 1000)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(rec.closed);
    assert_int_equal(rec.calls, 3);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_watch_empty_and_bad_path(void **state)
{
    struct store_fixture *f = *state;
    struct mcpd_store_watch *w = NULL;
    struct watch_rec rec = { 0 };
    char path[160];
    uv_loop_t loop;

    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(
        mcpd_store_watch(&w, &loop, f->path, 0, on_change, &rec, f->err, sizeof(f->err)), 0);
    assert_int_equal(rec.calls, 1);
    assert_int_equal(rec.n, 0);
    mcpd_store_watch_close(w, on_watch_done, &rec);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_true(rec.closed);

    snprintf(path, sizeof(path), "%s/missing/dir/mcpd.db", f->dir);
    w = (struct mcpd_store_watch *)&rec; /* cleared on failure */
    assert_true(mcpd_store_watch(&w, &loop, path, 0, on_change, &rec, f->err, sizeof(f->err)) < 0);
    assert_null(w);
    assert_non_null(strstr(f->err, "cannot open for writing"));
    assert_int_equal(rec.calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disable_enable_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_not_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash_helpers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_empty_and_bad_path, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
