/*
 * test_tls.c - the TLS engine (mcpd/net/tls.c) in memory: a client and a
 * server engine are pumped into each other, with a certificate the test
 * generates (tls_cert.h).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* cmocka.h needs these four first. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "mcpd/buf.h"
#include "mcpd/error.h"
#include "mcpd/net/tls.h"
#include "tls_cert.h"

struct pair {
    struct test_cert tc;
    struct mcpd_tls_ctx *sctx, *cctx;
    struct mcpd_tls *s, *c;
    struct mcpd_buf splain, cplain;
    int sr, cr; /* last feed results */
};

static int setup(void **state)
{
    static struct pair p;
    char err[256];
    memset(&p, 0, sizeof(p));
    assert_int_equal(test_cert_make(&p.tc, "DNS:localhost,IP:127.0.0.1"), 0);
    assert_int_equal(mcpd_tls_server_ctx_new(&p.sctx, p.tc.cert, p.tc.key, err, sizeof(err)), 0);
    assert_int_equal(mcpd_tls_client_ctx_new(&p.cctx, p.tc.cert, true, err, sizeof(err)), 0);
    mcpd_buf_init(&p.splain, 1 << 20);
    mcpd_buf_init(&p.cplain, 1 << 20);
    *state = &p;
    return 0;
}

static int teardown(void **state)
{
    struct pair *p = *state;
    mcpd_tls_free(p->s);
    mcpd_tls_free(p->c);
    mcpd_tls_ctx_free(p->sctx);
    mcpd_tls_ctx_free(p->cctx);
    mcpd_buf_dispose(&p->splain);
    mcpd_buf_dispose(&p->cplain);
    test_cert_remove(&p->tc);
    return 0;
}

/* Moves ciphertext both ways until neither side has anything to send. */
static void pump(struct pair *p)
{
    struct mcpd_buf b;
    mcpd_buf_init(&b, 1 << 24);
    for (int i = 0; i < 20; i++) {
        bool moved = false;
        mcpd_buf_reset(&b);
        if (mcpd_tls_take_output(p->c, &b) > 0) {
            moved = true;
            p->sr = mcpd_tls_feed(p->s, b.p, b.len, &p->splain);
        }
        mcpd_buf_reset(&b);
        if (mcpd_tls_take_output(p->s, &b) > 0) {
            moved = true;
            p->cr = mcpd_tls_feed(p->c, b.p, b.len, &p->cplain);
        }
        if (!moved)
            break;
    }
    mcpd_buf_dispose(&b);
}

static void round_trip(void **state)
{
    struct pair *p = *state;
    static char big[100000];

    assert_int_equal(mcpd_tls_new(&p->s, p->sctx, NULL), 0);
    assert_int_equal(mcpd_tls_new(&p->c, p->cctx, "localhost"), 0);
    /* written before the handshake: buffered, then sent */
    assert_int_equal(mcpd_tls_write(p->c, "early", 5), 0);
    assert_int_equal(mcpd_tls_connect(p->c), 0);
    assert_false(mcpd_tls_handshake_done(p->c));
    pump(p);
    assert_int_equal(p->sr, 0);
    assert_int_equal(p->cr, 0);
    assert_true(mcpd_tls_handshake_done(p->c));
    assert_true(mcpd_tls_handshake_done(p->s));
    assert_int_equal(p->splain.len, 5);
    assert_memory_equal(p->splain.p, "early", 5);

    memset(big, 'x', sizeof(big));
    assert_int_equal(mcpd_tls_write(p->s, big, sizeof(big)), 0);
    assert_int_equal(mcpd_tls_write(p->s, "!", 1), 0);
    pump(p);
    assert_int_equal(p->cplain.len, sizeof(big) + 1);
    assert_int_equal(p->cplain.p[sizeof(big)], '!');

    mcpd_tls_close_notify(p->c);
    pump(p);
    assert_int_equal(p->sr, MCPD_ECLOSED);
}

static void ip_literal_verified(void **state)
{
    struct pair *p = *state;
    assert_int_equal(mcpd_tls_new(&p->s, p->sctx, NULL), 0);
    assert_int_equal(mcpd_tls_new(&p->c, p->cctx, "127.0.0.1"), 0);
    assert_int_equal(mcpd_tls_connect(p->c), 0);
    pump(p);
    assert_int_equal(p->cr, 0);
    assert_true(mcpd_tls_handshake_done(p->c));
}

static void hostname_mismatch_refused(void **state)
{
    struct pair *p = *state;
    assert_int_equal(mcpd_tls_new(&p->s, p->sctx, NULL), 0);
    assert_int_equal(mcpd_tls_new(&p->c, p->cctx, "wrong.example"), 0);
    assert_int_equal(mcpd_tls_connect(p->c), 0);
    pump(p);
    assert_int_equal(p->cr, MCPD_EPROTO);
    assert_false(mcpd_tls_handshake_done(p->c));
    assert_non_null(strstr(mcpd_tls_error(p->c), "verification"));
    /* a failed engine stays failed */
    assert_int_equal(mcpd_tls_write(p->c, "x", 1), MCPD_EPROTO);
}

static void ip_mismatch_refused(void **state)
{
    struct pair *p = *state;
    assert_int_equal(mcpd_tls_new(&p->s, p->sctx, NULL), 0);
    assert_int_equal(mcpd_tls_new(&p->c, p->cctx, "127.0.0.2"), 0);
    assert_int_equal(mcpd_tls_connect(p->c), 0);
    pump(p);
    assert_int_equal(p->cr, MCPD_EPROTO);
}

static void untrusted_refused(void **state)
{
    struct pair *p = *state;
    struct mcpd_tls_ctx *sys;
    char err[256];
    /* the system store does not know the test's certificate */
    assert_int_equal(mcpd_tls_client_ctx_new(&sys, NULL, true, err, sizeof(err)), 0);
    assert_int_equal(mcpd_tls_new(&p->s, p->sctx, NULL), 0);
    assert_int_equal(mcpd_tls_new(&p->c, sys, "localhost"), 0);
    assert_int_equal(mcpd_tls_connect(p->c), 0);
    pump(p);
    assert_int_equal(p->cr, MCPD_EPROTO);
    mcpd_tls_free(p->c);
    p->c = NULL;
    mcpd_tls_ctx_free(sys);
    /* verification off: the same handshake succeeds */
    mcpd_tls_free(p->s);
    assert_int_equal(mcpd_tls_client_ctx_new(&sys, NULL, false, err, sizeof(err)), 0);
    assert_int_equal(mcpd_tls_new(&p->s, p->sctx, NULL), 0);
    assert_int_equal(mcpd_tls_new(&p->c, sys, "wrong.example"), 0);
    assert_int_equal(mcpd_tls_connect(p->c), 0);
    pump(p);
    assert_int_equal(p->cr, 0);
    assert_true(mcpd_tls_handshake_done(p->c));
    mcpd_tls_free(p->c);
    p->c = NULL;
    mcpd_tls_ctx_free(sys);
}

static void plaintext_to_server_fails(void **state)
{
    struct pair *p = *state;
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    struct mcpd_buf out;
    assert_int_equal(mcpd_tls_new(&p->s, p->sctx, NULL), 0);
    assert_int_equal(mcpd_tls_feed(p->s, req, sizeof(req) - 1, &p->splain), MCPD_EPROTO);
    assert_int_equal(p->splain.len, 0);
    assert_true(strlen(mcpd_tls_error(p->s)) > 0);
    mcpd_buf_init(&out, 4096);
    mcpd_tls_take_output(p->s, &out); /* an alert, maybe: must not crash */
    mcpd_buf_dispose(&out);
}

static void plaintext_cap(void **state)
{
    struct pair *p = *state;
    static char big[5000];
    assert_int_equal(mcpd_tls_new(&p->s, p->sctx, NULL), 0);
    assert_int_equal(mcpd_tls_new(&p->c, p->cctx, "localhost"), 0);
    assert_int_equal(mcpd_tls_connect(p->c), 0);
    pump(p);
    p->splain.max = 4096;
    assert_int_equal(mcpd_tls_write(p->c, big, sizeof(big)), 0);
    pump(p);
    assert_int_equal(p->sr, MCPD_ETOOBIG);
}

static void bad_files(void **state)
{
    struct pair *p = *state;
    struct mcpd_tls_ctx *c;
    char err[256];
    assert_int_equal(
        mcpd_tls_server_ctx_new(&c, "/nonexistent/cert.pem", p->tc.key, err, sizeof(err)),
        MCPD_ECONFIG);
    assert_null(c);
    assert_non_null(strstr(err, "/nonexistent/cert.pem"));
    assert_int_equal(
        mcpd_tls_server_ctx_new(&c, p->tc.cert, "/nonexistent/key.pem", err, sizeof(err)),
        MCPD_ECONFIG);
    assert_non_null(strstr(err, "/nonexistent/key.pem"));
    /* the certificate is not a key */
    assert_int_equal(mcpd_tls_server_ctx_new(&c, p->tc.cert, p->tc.cert, err, sizeof(err)),
                     MCPD_ECONFIG);
    assert_int_equal(mcpd_tls_client_ctx_new(&c, "/nonexistent/ca.pem", true, err, sizeof(err)),
                     MCPD_ECONFIG);
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(ip_literal_verified, setup, teardown),
        cmocka_unit_test_setup_teardown(hostname_mismatch_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(ip_mismatch_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(untrusted_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(plaintext_to_server_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(plaintext_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
