/*
 * test_crypto.c - mcpd/crypto.c and the sans-I/O parts of mcpd/oauth.c:
 * AES-256-GCM round trips, tamper detection (a flipped byte in the
 * version, nonce, ciphertext and tag each fails), AAD binding, a wrong
 * key, fresh nonces, the master key from the environment and from a key
 * file (created 0600 with O_EXCL; a 0644 file refused), and OAuth helpers
 * (PKCE S256 against the RFC 7636 appendix B vector, token and device
 * responses, refresh timing).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
#include "mcpd/crypto.h"
#include "mcpd/error.h"
#include "mcpd/limits.h"
#include "mcpd/oauth.h"

static const unsigned char key1[32] = { 1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                        12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                        23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };

static void seal(unsigned char **blob, size_t *len, const char *aad, const char *pt)
{
    assert_int_equal(mcpd_crypto_seal(blob, len, key1, aad, strlen(aad), pt, strlen(pt)), 0);
    assert_int_equal(*len, strlen(pt) + MCPD_CRYPTO_OVERHEAD);
}

static void test_round_trip(void **state)
{
    unsigned char *blob, *out;
    size_t len, olen;

    (void)state;
    seal(&blob, &len, "gh\0secret", "ghp_topsecretvalue");
    assert_int_equal(blob[0], MCPD_CRYPTO_VERSION);
    assert_null(memmem(blob, len, "topsecret", 9)); /* not in clear */
    /* seal() used strlen() of the AAD: "gh" (2 bytes); with the field it is another AAD */
    assert_int_equal(mcpd_crypto_open(&out, &olen, key1, "gh\0secret", 9, blob, len), MCPD_EPROTO);
    assert_int_equal(mcpd_crypto_open(&out, &olen, key1, "gh", 2, blob, len), 0);
    assert_string_equal((char *)out, "ghp_topsecretvalue");
    mcpd_crypto_wipe(out, olen);
    free(out);
    free(blob);
    assert_int_equal(mcpd_crypto_seal(&blob, &len, key1, "gh\0secret", 9, "v", 1), 0);
    assert_int_equal(mcpd_crypto_open(&out, &olen, key1, "gh\0secret", 9, blob, len), 0);
    assert_int_equal(olen, 1);
    assert_string_equal((char *)out, "v");
    free(out);
    free(blob);
    /* the empty plaintext works too */
    assert_int_equal(mcpd_crypto_seal(&blob, &len, key1, "a", 1, "", 0), 0);
    assert_int_equal(mcpd_crypto_open(&out, &olen, key1, "a", 1, blob, len), 0);
    assert_int_equal(olen, 0);
    free(out);
    free(blob);
}

static void test_tamper(void **state)
{
    unsigned char *blob, *out = NULL;
    size_t len, olen;
    /* version, first nonce byte, last nonce byte, ciphertext, first and last tag byte */
    size_t where[6];

    (void)state;
    seal(&blob, &len, "row", "the secret value");
    where[0] = 0;
    where[1] = 1;
    where[2] = MCPD_CRYPTO_NONCE_LEN;
    where[3] = 1 + MCPD_CRYPTO_NONCE_LEN + 3;
    where[4] = len - MCPD_CRYPTO_TAG_LEN;
    where[5] = len - 1;
    for (size_t i = 0; i < 6; i++) {
        blob[where[i]] ^= 0x01;
        assert_int_equal(mcpd_crypto_open(&out, &olen, key1, "row", 3, blob, len), MCPD_EPROTO);
        assert_null(out);
        blob[where[i]] ^= 0x01;
    }
    /* truncated and too short */
    assert_int_equal(mcpd_crypto_open(&out, &olen, key1, "row", 3, blob, len - 1), MCPD_EPROTO);
    assert_int_equal(mcpd_crypto_open(&out, &olen, key1, "row", 3, blob, 5), MCPD_EPROTO);
    /* the intact blob still opens */
    assert_int_equal(mcpd_crypto_open(&out, &olen, key1, "row", 3, blob, len), 0);
    assert_string_equal((char *)out, "the secret value");
    free(out);
    free(blob);
}

static void test_wrong_key_and_aad(void **state)
{
    unsigned char key2[32], *blob, *out = NULL;
    size_t len, olen;

    (void)state;
    memcpy(key2, key1, 32);
    key2[31] ^= 0x80;
    seal(&blob, &len, "alpha", "payload");
    assert_int_equal(mcpd_crypto_open(&out, &olen, key2, "alpha", 5, blob, len), MCPD_EPROTO);
    assert_int_equal(mcpd_crypto_open(&out, &olen, key1, "alphb", 5, blob, len), MCPD_EPROTO);
    assert_null(out);
    free(blob);
}

static void test_fresh_nonce(void **state)
{
    unsigned char *a, *b;
    size_t la, lb;

    (void)state;
    seal(&a, &la, "x", "same");
    seal(&b, &lb, "x", "same");
    assert_int_equal(la, lb);
    assert_memory_not_equal(a + 1, b + 1, MCPD_CRYPTO_NONCE_LEN);
    assert_memory_not_equal(a, b, la);
    free(a);
    free(b);
}

static void tmp_path(char *out, size_t cap, const char *leaf)
{
    char dir[128];

    test_make_dir(dir, sizeof(dir), "crypto");
    snprintf(out, cap, "%s/%s", dir, leaf);
}

static void rm_path(const char *p)
{
    char dir[256];
    char *slash;

    unlink(p);
    snprintf(dir, sizeof(dir), "%s", p);
    if ((slash = strrchr(dir, '/')) != NULL) {
        *slash = '\0';
        rmdir(dir);
    }
}

static void test_key_file(void **state)
{
    unsigned char k1[32], k2[32];
    char path[256], err[256];
    struct stat sb;
    bool created = false;

    (void)state;
    unsetenv(MCPD_MASTER_KEY_ENV);
    tmp_path(path, sizeof(path), "mcpd.db.key");
    /* missing and not to be created */
    assert_int_equal(mcpd_crypto_master_key(k1, path, false, &created, err, sizeof(err)),
                     UV_ENOENT);
    assert_non_null(strstr(err, "no master key file"));
    /* created 0600 on first use, the same key afterwards */
    umask(0);
    assert_int_equal(mcpd_crypto_master_key(k1, path, true, &created, err, sizeof(err)), 0);
    umask(022);
    assert_true(created);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(sb.st_size, 65);
    assert_int_equal(mcpd_crypto_master_key(k2, path, true, &created, err, sizeof(err)), 0);
    assert_false(created);
    assert_memory_equal(k1, k2, 32);
    /* a key file others can read is refused */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(mcpd_crypto_master_key(k2, path, true, &created, err, sizeof(err)),
                     MCPD_ECONFIG);
    assert_non_null(strstr(err, "accessible by group or others"));
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(mcpd_crypto_master_key(k2, path, true, &created, err, sizeof(err)),
                     MCPD_ECONFIG);
    /* garbage content is refused */
    assert_int_equal(chmod(path, 0600), 0);
    {
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        fputs("not a key\n", f);
        fclose(f);
    }
    assert_int_equal(mcpd_crypto_master_key(k2, path, true, &created, err, sizeof(err)),
                     MCPD_ECONFIG);
    assert_non_null(strstr(err, "64 hex digits"));
    rm_path(path);
}

static void test_key_env(void **state)
{
    unsigned char k[32];
    char err[256];

    (void)state;
    setenv(MCPD_MASTER_KEY_ENV, "000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F",
           1);
    assert_int_equal(mcpd_crypto_master_key(k, "/nonexistent/x.key", false, NULL, err, sizeof(err)),
                     0);
    for (int i = 0; i < 32; i++)
        assert_int_equal(k[i], i);
    setenv(MCPD_MASTER_KEY_ENV, "0011", 1);
    assert_int_equal(mcpd_crypto_master_key(k, NULL, false, NULL, err, sizeof(err)), MCPD_ECONFIG);
    assert_non_null(strstr(err, "64 hex digits"));
    assert_null(strstr(err, "0011")); /* the value itself is never echoed */
    unsetenv(MCPD_MASTER_KEY_ENV);
}

/* ---- oauth.c --------------------------------------------------------------------------------- */

static void test_pkce(void **state)
{
    char v[MCPD_OAUTH_VERIFIER_LEN + 1], c[MCPD_OAUTH_VERIFIER_LEN + 1], c2[64];
    unsigned char md[32];
    unsigned int n;

    (void)state;
    assert_int_equal(mcpd_oauth_pkce(v, c), 0);
    assert_int_equal(strlen(v), 43);
    assert_int_equal(strlen(c), 43);
    for (size_t i = 0; i < 43; i++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", v[i]));
    /* RFC 7636 appendix B */
    EVP_Digest("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", 43, md, &n, EVP_sha256(), NULL);
    assert_int_equal(EVP_EncodeBlock((unsigned char *)c2, md, 32), 44);
    for (char *p = c2; *p; p++)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    c2[43] = '\0';
    assert_string_equal(c2, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

static void test_token_parse(void **state)
{
    struct mcpd_oauth_token t;
    const char *ok = "{\"access_token\":\"at1\",\"refresh_token\":\"rt1\",\"expires_in\":60,"
                     "\"token_type\":\"Bearer\",\"scope\":\"a b\"}";
    const char *err = "{\"error\":\"invalid_grant\",\"error_description\":\"grant request is "
                      "invalid\\u0001\"}";
    const char *dev = "{\"device_code\":\"dc\",\"user_code\":\"ABCD-EFGH\",\"verification_uri\":"
                      "\"http://x/device\",\"interval\":2,\"expires_in\":600}";

    (void)state;
    assert_int_equal(mcpd_oauth_parse(&t, 200, ok, strlen(ok), false, 1000), 0);
    assert_string_equal(t.access_token, "at1");
    assert_string_equal(t.refresh_token, "rt1");
    assert_string_equal(t.scope, "a b");
    assert_int_equal(t.expires_ms, 61000);
    mcpd_oauth_token_dispose(&t);
    assert_int_equal(mcpd_oauth_parse(&t, 400, err, strlen(err), false, 0), MCPD_EDENIED);
    assert_string_equal(t.error, "invalid_grant");
    assert_string_equal(t.error_description, "grant request is invalid?");
    mcpd_oauth_token_dispose(&t);
    assert_int_equal(mcpd_oauth_parse(&t, 200, "{}", 2, false, 0), MCPD_EPROTO);
    assert_null(t.access_token);
    assert_int_equal(mcpd_oauth_parse(&t, 502, "<html>", 6, false, 0), MCPD_EPROTO);
    assert_int_equal(mcpd_oauth_parse(&t, 200, dev, strlen(dev), true, 0), 0);
    assert_string_equal(t.user_code, "ABCD-EFGH");
    assert_int_equal(t.interval_s, 2);
    assert_int_equal(t.device_expires_s, 600);
    mcpd_oauth_token_dispose(&t);
}

static void test_requests(void **state)
{
    struct mcpd_oauth_provider_config p = { .client_id = "cli ent",
                                            .token_url = "http://t/token",
                                            .authorize_url = "http://a/auth" };
    char *scopes[] = { "openid", "offline_access" };
    char *body, *auth, *url;

    (void)state;
    p.scopes.v = scopes;
    p.scopes.n = 2;
    assert_int_equal(
        mcpd_oauth_request(&body, &auth, &p, NULL, MCPD_OAUTH_REFRESH, "r/t", NULL, NULL), 0);
    assert_string_equal(body, "grant_type=refresh_token&refresh_token=r%2Ft&client_id=cli%20ent");
    assert_null(auth);
    free(body);
    assert_int_equal(mcpd_oauth_request(&body, &auth, &p, "s:e", MCPD_OAUTH_CLIENT_CREDENTIALS,
                                        NULL, NULL, NULL),
                     0);
    assert_string_equal(body, "grant_type=client_credentials&scope=openid%20offline_access");
    /* base64("cli%20ent:s%3Ae") */
    assert_string_equal(auth, "Authorization: Basic Y2xpJTIwZW50OnMlM0Fl");
    free(body);
    free(auth);
    url = mcpd_oauth_authorize_url(&p, "http://127.0.0.1:1/oauth/callback", "st", "ch");
    assert_string_equal(url,
                        "http://a/auth?response_type=code&client_id=cli%20ent&redirect_uri="
                        "http%3A%2F%2F127.0.0.1%3A1%2Foauth%2Fcallback&scope=openid%20"
                        "offline_access&state=st&code_challenge=ch&code_challenge_method=S256");
    free(url);
}

static void test_refresh_at(void **state)
{
    (void)state;
    assert_int_equal(mcpd_oauth_refresh_at(0, 0), 0);
    /* 10 s lifetime: 60 s before expiry is in the past (not a loop): 80 % = 8 s */
    assert_int_equal(mcpd_oauth_refresh_at(1000000, 1010000), 1008000);
    /* 1 s lifetime: not sooner than 1 s */
    assert_int_equal(mcpd_oauth_refresh_at(1000000, 1001500), 1001200);
    assert_int_equal(mcpd_oauth_refresh_at(1000000, 1000500), 1000400);
    /* 1 h lifetime: 80 % = 48 min is earlier than 59 min */
    assert_int_equal(mcpd_oauth_refresh_at(0 + 1, 3600001), 1 + 2880000);
    /* 4 min: 80 % = 192 s, 60 s before = 180 s: the earlier wins */
    assert_int_equal(mcpd_oauth_refresh_at(1000, 241000), 181000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_tamper),
        cmocka_unit_test(test_wrong_key_and_aad),
        cmocka_unit_test(test_fresh_nonce),
        cmocka_unit_test(test_key_file),
        cmocka_unit_test(test_key_env),
        cmocka_unit_test(test_pkce),
        cmocka_unit_test(test_token_parse),
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_refresh_at),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
