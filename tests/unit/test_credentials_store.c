/*
 * test_credentials_store.c - credentials in the store (mcpd/store_cred.c)
 * on real sqlite files in a fresh directory per test: add/list/get/delete
 * with their errors, secrets never in clear in the file, the key check
 * value (a wrong master key refused at open), a damaged row reported as
 * such (never garbage), a row's sealed fields moved to another row refused
 * (AAD), OAuth token updates, pending authorizations (single use,
 * expiry), that the bot tables and the schema version are untouched, and
 * the generation bump the daemon polls.
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

#include "helpers.h"
#include "mcpd/crypto.h"
#include "mcpd/error.h"
#include "mcpd/store.h"
#include "mcpd/store_cred.h"

struct fixture {
    char dir[64], path[128], key[160];
    struct mcpd_cred_store *cs;
    char err[256];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    unsetenv(MCPD_MASTER_KEY_ENV);
    test_make_dir(f->dir, sizeof(f->dir), "cred");
    snprintf(f->path, sizeof(f->path), "%s/mcpd.db", f->dir);
    snprintf(f->key, sizeof(f->key), "%s/mcpd.db.key", f->dir);
    assert_int_equal(mcpd_cred_store_open(&f->cs, f->path, f->key, true, f->err, sizeof(f->err)),
                     0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    mcpd_cred_store_close(f->cs);
    test_remove_dir(f->dir);
    free(f);
    return 0;
}

/* Whether the bytes of s occur anywhere in the file (and its WAL). */
static bool file_has(const char *path, const char *s)
{
    char wal[256];

    snprintf(wal, sizeof(wal), "%s-wal", path);
    return test_file_contains(path, s, strlen(s)) || test_file_contains(wal, s, strlen(s));
}

static void test_add_list_get_delete(void **state)
{
    struct fixture *f = *state;
    struct mcpd_cred_row *rows, row;
    size_t n;
    int64_t gen0 = mcpd_cred_store_generation(f->cs), gen;

    assert_int_equal(mcpd_cred_store_add(f->cs, "gh", MCPD_CRED_API_KEY, NULL,
                                         "ghp_SuperSecretValue123", f->err, sizeof(f->err)),
                     0);
    assert_int_equal(mcpd_cred_store_add(f->cs, "api_2", MCPD_CRED_BEARER, NULL, "tok-abc", f->err,
                                         sizeof(f->err)),
                     0);
    assert_int_equal(
        mcpd_cred_store_add(f->cs, "gh", MCPD_CRED_BEARER, NULL, "x", f->err, sizeof(f->err)),
        MCPD_ECONFIG);
    assert_string_equal(f->err, "credential \"gh\" already exists");
    assert_int_equal(
        mcpd_cred_store_add(f->cs, "Bad Name", MCPD_CRED_BEARER, NULL, "x", f->err, sizeof(f->err)),
        MCPD_ECONFIG);
    assert_non_null(strstr(f->err, "invalid credential name \"Bad Name\""));
    assert_int_equal(
        mcpd_cred_store_add(f->cs, "empty", MCPD_CRED_BEARER, NULL, "", f->err, sizeof(f->err)),
        MCPD_ECONFIG);
    assert_int_equal(
        mcpd_cred_store_add(f->cs, "o", MCPD_CRED_OAUTH2, NULL, NULL, f->err, sizeof(f->err)),
        MCPD_ECONFIG); /* oauth2 needs a provider */
    assert_int_equal(
        mcpd_cred_store_add(f->cs, "o", MCPD_CRED_OAUTH2, "idp", NULL, f->err, sizeof(f->err)), 0);
    gen = mcpd_cred_store_generation(f->cs);
    assert_int_equal(gen, gen0 + 3);
    /* list without decrypting: no secrets */
    assert_int_equal(mcpd_cred_store_list(f->cs, false, &rows, &n, NULL, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(n, 3);
    assert_string_equal(rows[0].name, "api_2");
    assert_int_equal(rows[0].kind, MCPD_CRED_BEARER);
    assert_null(rows[0].secret);
    assert_string_equal(rows[1].name, "gh");
    assert_string_equal(rows[2].name, "o");
    assert_int_equal(rows[2].status, MCPD_CRED_STATUS_PENDING);
    assert_string_equal(rows[2].provider, "idp");
    mcpd_cred_rows_free(rows, n);
    /* decrypted */
    assert_int_equal(mcpd_cred_store_get(f->cs, "gh", &row, f->err, sizeof(f->err)), 0);
    assert_string_equal(row.secret, "ghp_SuperSecretValue123");
    assert_int_equal(row.status, MCPD_CRED_STATUS_OK);
    assert_false(row.damaged);
    mcpd_cred_row_dispose(&row);
    assert_false(file_has(f->path, "SuperSecret"));
    assert_false(file_has(f->path, "tok-abc"));
    /* delete */
    assert_int_equal(mcpd_cred_store_delete(f->cs, "gh", f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_cred_store_delete(f->cs, "gh", f->err, sizeof(f->err)), MCPD_ECONFIG);
    assert_string_equal(f->err, "no credential named \"gh\"");
    assert_int_equal(mcpd_cred_store_get(f->cs, "gh", &row, f->err, sizeof(f->err)), MCPD_ECONFIG);
}

static void test_wrong_master_key(void **state)
{
    struct fixture *f = *state;
    struct mcpd_cred_store *cs = NULL;
    char err[256];

    assert_int_equal(mcpd_cred_store_add(f->cs, "gh", MCPD_CRED_API_KEY, NULL, "secret-1", f->err,
                                         sizeof(f->err)),
                     0);
    setenv(MCPD_MASTER_KEY_ENV, "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
           1);
    assert_int_equal(mcpd_cred_store_open(&cs, f->path, f->key, false, err, sizeof(err)),
                     MCPD_EDENIED);
    assert_null(cs);
    assert_non_null(strstr(err, "the master key does not match this store"));
    unsetenv(MCPD_MASTER_KEY_ENV);
    /* keyless opens work (list) */
    assert_int_equal(mcpd_cred_store_open(&cs, f->path, NULL, false, err, sizeof(err)), 0);
    mcpd_cred_store_close(cs);
}

static void exec_sql(const char *path, const char *sql)
{
    sqlite3 *db;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_damaged_and_moved_rows(void **state)
{
    struct fixture *f = *state;
    struct mcpd_cred_row row;

    assert_int_equal(mcpd_cred_store_add(f->cs, "a", MCPD_CRED_API_KEY, NULL, "secret-a", f->err,
                                         sizeof(f->err)),
                     0);
    assert_int_equal(mcpd_cred_store_add(f->cs, "b", MCPD_CRED_API_KEY, NULL, "secret-b", f->err,
                                         sizeof(f->err)),
                     0);
    /* a's sealed secret copied onto b: the AAD names a, so b does not open */
    exec_sql(f->path,
             "UPDATE credentials SET secret = (SELECT secret FROM credentials WHERE name = 'a') "
             "WHERE name = 'b'");
    assert_int_equal(mcpd_cred_store_get(f->cs, "b", &row, f->err, sizeof(f->err)), 0);
    assert_true(row.damaged);
    assert_null(row.secret);
    mcpd_cred_row_dispose(&row);
    /* a changed byte in a's blob (byte 21 is random: made 0x00, or 0x01 if it was 0x00) */
    exec_sql(f->path, "UPDATE credentials SET secret = CAST(substr(secret, 1, 20) || "
                      "CASE WHEN substr(secret, 21, 1) = x'00' THEN x'01' ELSE x'00' END || "
                      "substr(secret, 22) AS BLOB) WHERE name = 'a'");
    assert_int_equal(mcpd_cred_store_get(f->cs, "a", &row, f->err, sizeof(f->err)), 0);
    assert_true(row.damaged);
    assert_null(row.secret);
    mcpd_cred_row_dispose(&row);
}

static void test_tokens_and_status(void **state)
{
    struct fixture *f = *state;
    struct mcpd_cred_row row;

    assert_int_equal(
        mcpd_cred_store_add(f->cs, "o", MCPD_CRED_OAUTH2, "idp", NULL, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_cred_store_set_tokens(f->cs, "o", "AT-one", "RT-one", 12345, "openid",
                                                "code", f->err, sizeof(f->err)),
                     0);
    assert_int_equal(mcpd_cred_store_get(f->cs, "o", &row, f->err, sizeof(f->err)), 0);
    assert_string_equal(row.access_token, "AT-one");
    assert_string_equal(row.refresh_token, "RT-one");
    assert_int_equal(row.expires_ms, 12345);
    assert_string_equal(row.scopes, "openid");
    assert_int_equal(row.status, MCPD_CRED_STATUS_OK);
    assert_true(row.refreshed_ms > 0);
    mcpd_cred_row_dispose(&row);
    /* a refresh without a new refresh token keeps the old one */
    assert_int_equal(mcpd_cred_store_set_tokens(f->cs, "o", "AT-two", NULL, 99, NULL, NULL, f->err,
                                                sizeof(f->err)),
                     0);
    assert_int_equal(mcpd_cred_store_get(f->cs, "o", &row, f->err, sizeof(f->err)), 0);
    assert_string_equal(row.access_token, "AT-two");
    assert_string_equal(row.refresh_token, "RT-one");
    assert_string_equal(row.grant, "code"); /* kept */
    assert_string_equal(row.scopes, "openid");
    mcpd_cred_row_dispose(&row);
    /* a new authorization without a refresh token drops the old one */
    assert_int_equal(mcpd_cred_store_set_tokens(f->cs, "o", "AT-cc", NULL, 99, NULL,
                                                "client_credentials", f->err, sizeof(f->err)),
                     0);
    assert_int_equal(mcpd_cred_store_get(f->cs, "o", &row, f->err, sizeof(f->err)), 0);
    assert_null(row.refresh_token);
    assert_string_equal(row.grant, "client_credentials");
    mcpd_cred_row_dispose(&row);
    assert_int_equal(mcpd_cred_store_set_status(f->cs, "o", MCPD_CRED_STATUS_EXPIRED,
                                                "refresh refused: invalid_grant", f->err,
                                                sizeof(f->err)),
                     0);
    assert_int_equal(mcpd_cred_store_get(f->cs, "o", &row, f->err, sizeof(f->err)), 0);
    assert_int_equal(row.status, MCPD_CRED_STATUS_EXPIRED);
    assert_string_equal(row.last_error, "refresh refused: invalid_grant");
    mcpd_cred_row_dispose(&row);
    assert_false(file_has(f->path, "AT-two"));
    assert_false(file_has(f->path, "RT-one"));
    /* tokens only for oauth2 credentials */
    assert_int_equal(
        mcpd_cred_store_add(f->cs, "k", MCPD_CRED_API_KEY, NULL, "kk", f->err, sizeof(f->err)), 0);
    assert_int_equal(
        mcpd_cred_store_set_tokens(f->cs, "k", "x", NULL, 0, NULL, NULL, f->err, sizeof(f->err)),
        MCPD_ECONFIG);
}

static void test_pending(void **state)
{
    struct fixture *f = *state;
    char name[MCPD_CRED_NAME_MAX + 1], *verifier = NULL;

    assert_int_equal(
        mcpd_cred_store_add(f->cs, "o", MCPD_CRED_OAUTH2, "idp", NULL, f->err, sizeof(f->err)), 0);
    assert_int_equal(
        mcpd_cred_store_pending_add(f->cs, "state-1", "o", "verifier-xyz", f->err, sizeof(f->err)),
        0);
    assert_false(file_has(f->path, "verifier-xyz"));
    assert_int_equal(
        mcpd_cred_store_pending_take(f->cs, "state-2", name, &verifier, f->err, sizeof(f->err)),
        MCPD_EDENIED);
    assert_string_equal(f->err, "unknown or already used state");
    assert_int_equal(
        mcpd_cred_store_pending_take(f->cs, "state-1", name, &verifier, f->err, sizeof(f->err)), 0);
    assert_string_equal(name, "o");
    assert_string_equal(verifier, "verifier-xyz");
    mcpd_crypto_free_str(verifier);
    /* single use */
    assert_int_equal(
        mcpd_cred_store_pending_take(f->cs, "state-1", name, &verifier, f->err, sizeof(f->err)),
        MCPD_EDENIED);
    /* expired */
    assert_int_equal(
        mcpd_cred_store_pending_add(f->cs, "state-3", "o", "v3", f->err, sizeof(f->err)), 0);
    exec_sql(f->path, "UPDATE credential_pending SET expires_ms = 1 WHERE state = 'state-3'");
    assert_int_equal(
        mcpd_cred_store_pending_take(f->cs, "state-3", name, &verifier, f->err, sizeof(f->err)),
        MCPD_EDENIED);
    assert_non_null(strstr(f->err, "expired"));
    assert_null(verifier);
    /* and it is gone */
    assert_int_equal(
        mcpd_cred_store_pending_take(f->cs, "state-3", name, &verifier, f->err, sizeof(f->err)),
        MCPD_EDENIED);
    assert_string_equal(f->err, "unknown or already used state");
}

static void test_beside_bots(void **state)
{
    struct fixture *f = *state;
    struct mcpd_store *st;
    char key[MCPD_BOT_KEY_LEN + 1];

    /* the bot store opens the same file (schema version unchanged) and keeps working */
    assert_int_equal(mcpd_store_open(&st, f->path, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_bot_create(st, "alice", key, f->err, sizeof(f->err)), 0);
    assert_int_equal(
        mcpd_cred_store_add(f->cs, "gh", MCPD_CRED_BEARER, NULL, "b", f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd_store_generation(st), mcpd_cred_store_generation(f->cs));
    assert_int_equal(mcpd_store_bot_list(st, NULL, 0, f->err, sizeof(f->err)), 1);
    mcpd_store_close(st);
}

static void test_old_table_migrated(void **state)
{
    struct fixture *f = *state;
    struct mcpd_cred_store *cs = NULL;
    struct mcpd_cred_row row;

    /* a credentials table from before grant_type existed */
    mcpd_cred_store_close(f->cs);
    f->cs = NULL;
    exec_sql(f->path,
             "DROP TABLE credentials;"
             "CREATE TABLE credentials (name TEXT PRIMARY KEY NOT NULL, kind TEXT NOT NULL,"
             " provider TEXT NOT NULL DEFAULT '', status TEXT NOT NULL, secret BLOB,"
             " expires_ms INTEGER NOT NULL DEFAULT 0, scopes TEXT NOT NULL DEFAULT '',"
             " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
             " refreshed_ms INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '')");
    assert_int_equal(mcpd_cred_store_open(&cs, f->path, f->key, false, f->err, sizeof(f->err)), 0);
    f->cs = cs;
    assert_int_equal(
        mcpd_cred_store_add(f->cs, "o", MCPD_CRED_OAUTH2, "idp", NULL, f->err, sizeof(f->err)), 0);
    assert_int_equal(
        mcpd_cred_store_set_tokens(f->cs, "o", "a", "r", 1, NULL, "device", f->err, sizeof(f->err)),
        0);
    assert_int_equal(mcpd_cred_store_get(f->cs, "o", &row, f->err, sizeof(f->err)), 0);
    assert_string_equal(row.grant, "device");
    mcpd_cred_row_dispose(&row);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_add_list_get_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_master_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_and_moved_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens_and_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_beside_bots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_table_migrated, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
