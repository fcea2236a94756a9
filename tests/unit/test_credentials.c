/*
 * test_credentials.c - the daemon's credential registry (mcpd/credentials.c)
 * on a real loop and a real store file, without the network: static
 * credentials through mcpd_credential_get (never called back before it
 * returns), peek, exists (before and after start), the errors of unknown,
 * pending and damaged credentials, cancel, a 401 on a static credential
 * (rejected, written to the store), and a change made through another
 * store handle (the CLI) picked up by the poll.
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

#include <uv.h>

#include "helpers.h"
#include "mcpd/config.h"
#include "mcpd/credentials.h"
#include "mcpd/crypto.h"
#include "mcpd/daemon.h"
#include "mcpd/error.h"
#include "mcpd/store_cred.h"

struct fixture {
    char dir[64], yaml[128], path[160], key[160];
    uv_loop_t loop;
    struct mcpd_daemon d;
    struct mcpd_cred_store *cs;
    char err[256];
};

struct got {
    int calls, status;
    enum mcpd_credential_kind kind;
    char secret[128], why[400];
};

static void on_cred(int status, enum mcpd_credential_kind kind, const char *secret, const char *why,
                    void *data)
{
    struct got *g = data;

    g->calls++;
    g->status = status;
    g->kind = kind;
    snprintf(g->secret, sizeof(g->secret), "%s", secret ? secret : "");
    snprintf(g->why, sizeof(g->why), "%s", why ? why : "");
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct mcpd_diag diag;
    FILE *fp;

    assert_non_null(f);
    unsetenv(MCPD_MASTER_KEY_ENV);
    test_make_dir(f->dir, sizeof(f->dir), "creg");
    snprintf(f->yaml, sizeof(f->yaml), "%s/m.yaml", f->dir);
    snprintf(f->path, sizeof(f->path), "%s/mcpd.db", f->dir);
    snprintf(f->key, sizeof(f->key), "%s/mcpd.db.key", f->dir);
    fp = fopen(f->yaml, "w");
    assert_non_null(fp);
    fputs("oauth_providers:\n  idp: { token_url: http://127.0.0.1:9/token, client_id: c }\n"
          "servers:\n  e: { command: /bin/true }\n",
          fp);
    fclose(fp);
    assert_int_equal(mcpd_config_load(&f->d.cfg, f->yaml, &diag), 0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->d.loop = &f->loop;
    assert_int_equal(mcpd_cred_store_open(&f->cs, f->path, f->key, true, f->err, sizeof(f->err)),
                     0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    mcpd__credentials_close(&f->d);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    mcpd_cred_store_close(f->cs);
    mcpd_config_free(f->d.cfg);
    test_remove_dir(f->dir);
    free(f);
    return 0;
}

static void run_once(struct fixture *f)
{
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void test_static_get(void **state)
{
    struct fixture *f = *state;
    struct got g = { 0 };
    struct mcpd_credential_req *req;

    assert_int_equal(mcpd_cred_store_add(f->cs, "gh", MCPD_CRED_API_KEY, NULL, "sk-1234567890",
                                         f->err, sizeof(f->err)),
                     0);
    assert_true(mcpd_credential_exists(&f->d, "gh")); /* before start: from the store */
    assert_false(mcpd_credential_exists(&f->d, "nope"));
    assert_int_equal(mcpd__credentials_start(&f->d), 0);
    assert_true(mcpd_credential_exists(&f->d, "gh"));
    assert_string_equal(mcpd_credential_peek(&f->d, "gh"), "sk-1234567890");
    assert_int_equal(mcpd_credential_get(&f->d, "gh", on_cred, &g, &req), 0);
    assert_non_null(req);
    assert_int_equal(g.calls, 0); /* never before it returns */
    run_once(f);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.kind, MCPD_CRED_API_KEY);
    assert_string_equal(g.secret, "sk-1234567890");
}

static void test_errors_and_cancel(void **state)
{
    struct fixture *f = *state;
    struct got g = { 0 }, g2 = { 0 };
    struct mcpd_credential_req *req;

    assert_int_equal(
        mcpd_cred_store_add(f->cs, "o", MCPD_CRED_OAUTH2, "idp", NULL, f->err, sizeof(f->err)), 0);
    assert_int_equal(mcpd__credentials_start(&f->d), 0);
    assert_null(mcpd_credential_peek(&f->d, "o"));
    assert_int_equal(mcpd_credential_get(&f->d, "o", on_cred, &g, NULL), 0);
    assert_int_equal(mcpd_credential_get(&f->d, "missing", on_cred, &g2, NULL), 0);
    run_once(f);
    assert_int_equal(g.status, MCPD_EDENIED);
    assert_string_equal(g.why, "credential \"o\" is not authorized yet: run mcpd credentials "
                               "authorize o");
    assert_int_equal(g2.status, MCPD_ECONFIG);
    assert_non_null(strstr(g2.why, "credential \"missing\" does not exist"));
    /* cancelled before delivery: never called */
    memset(&g, 0, sizeof(g));
    assert_int_equal(mcpd_credential_get(&f->d, "o", on_cred, &g, &req), 0);
    mcpd_credential_cancel(req);
    run_once(f);
    assert_int_equal(g.calls, 0);
}

static void test_static_rejected(void **state)
{
    struct fixture *f = *state;
    struct got g = { 0 };
    struct mcpd_cred_row row;

    assert_int_equal(mcpd_cred_store_add(f->cs, "tok", MCPD_CRED_BEARER, NULL, "bearer-value",
                                         f->err, sizeof(f->err)),
                     0);
    assert_int_equal(mcpd__credentials_start(&f->d), 0);
    assert_int_equal(mcpd_credential_rejected(&f->d, "tok", "bearer-value", on_cred, &g, NULL), 0);
    assert_int_equal(g.calls, 0);
    run_once(f);
    assert_int_equal(g.status, MCPD_EDENIED);
    assert_non_null(strstr(g.why, "credential \"tok\" was rejected by the upstream (HTTP 401)"));
    assert_null(strstr(g.why, "bearer-value"));
    /* the status reaches the store from the threadpool */
    for (int i = 0; i < 200; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        assert_int_equal(mcpd_cred_store_get(f->cs, "tok", &row, f->err, sizeof(f->err)), 0);
        if (row.status == MCPD_CRED_STATUS_REJECTED)
            break;
        mcpd_cred_row_dispose(&row);
        usleep(10000);
    }
    assert_int_equal(row.status, MCPD_CRED_STATUS_REJECTED);
    assert_non_null(strstr(row.last_error, "HTTP 401"));
    mcpd_cred_row_dispose(&row);
}

static void on_tick(uv_timer_t *t)
{
    struct fixture *f = t->data;

    if (mcpd_credential_peek(&f->d, "later") != NULL)
        uv_stop(&f->loop);
}

static void on_guard(uv_timer_t *t)
{
    struct fixture *f = t->data;

    uv_stop(&f->loop);
}

static void test_poll_picks_up_changes(void **state)
{
    struct fixture *f = *state;
    uv_timer_t tick, guard;

    assert_int_equal(
        mcpd_cred_store_add(f->cs, "first", MCPD_CRED_BEARER, NULL, "v1", f->err, sizeof(f->err)),
        0);
    assert_int_equal(mcpd__credentials_start(&f->d), 0);
    assert_false(mcpd_credential_exists(&f->d, "later"));
    /* the CLI adds one and deletes another through its own handle */
    assert_int_equal(
        mcpd_cred_store_add(f->cs, "later", MCPD_CRED_BEARER, NULL, "v2", f->err, sizeof(f->err)),
        0);
    assert_int_equal(mcpd_cred_store_delete(f->cs, "first", f->err, sizeof(f->err)), 0);
    uv_timer_init(&f->loop, &tick);
    uv_timer_init(&f->loop, &guard);
    tick.data = f;
    guard.data = f;
    uv_timer_start(&tick, on_tick, 50, 50);
    uv_timer_start(&guard, on_guard, 5000, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_string_equal(mcpd_credential_peek(&f->d, "later"), "v2");
    assert_false(mcpd_credential_exists(&f->d, "first"));
    uv_close((uv_handle_t *)&tick, NULL);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* the handles live on this stack frame */
}

static void test_no_store_file(void **state)
{
    struct fixture *f = *state;
    uv_timer_t tick, guard;
    char p[200];

    /* no store yet: start creates nothing; the credential added later is picked up */
    mcpd_cred_store_close(f->cs);
    f->cs = NULL;
    for (int i = 0; i < 4; i++) {
        static const char *const sfx[] = { "", "-wal", "-shm", ".key" };
        snprintf(p, sizeof(p), "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    assert_int_equal(mcpd__credentials_start(&f->d), 0);
    assert_int_equal(access(f->path, F_OK), -1);
    assert_int_equal(mcpd_cred_store_open(&f->cs, f->path, f->key, true, f->err, sizeof(f->err)),
                     0);
    assert_int_equal(
        mcpd_cred_store_add(f->cs, "later", MCPD_CRED_BEARER, NULL, "v2", f->err, sizeof(f->err)),
        0);
    uv_timer_init(&f->loop, &tick);
    uv_timer_init(&f->loop, &guard);
    tick.data = guard.data = f;
    uv_timer_start(&tick, on_tick, 50, 50);
    uv_timer_start(&guard, on_guard, 5000, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_string_equal(mcpd_credential_peek(&f->d, "later"), "v2");
    uv_close((uv_handle_t *)&tick, NULL);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_static_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_static_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll_picks_up_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_store_file, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
