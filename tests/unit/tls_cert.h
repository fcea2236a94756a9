/*
 * tls_cert.h - test helper: a self-signed certificate (P-256) generated
 * with the OpenSSL API and written as PEM files into a temporary
 * directory. Used by test_tls.c and test_ws.c.
 */
#ifndef MCPD_TEST_TLS_CERT_H
#define MCPD_TEST_TLS_CERT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct test_cert {
    char dir[64];
    char cert[128];
    char key[128];
};

/* san: e.g. "DNS:localhost,IP:127.0.0.1". Returns 0 on success. */
static int test_cert_make(struct test_cert *tc, const char *san)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    FILE *f;
    int ok = -1;

    snprintf(tc->dir, sizeof(tc->dir), "/tmp/mcpd-cert-XXXXXX");
    if (pk == NULL || x == NULL || mkdtemp(tc->dir) == NULL)
        goto out;
    snprintf(tc->cert, sizeof(tc->cert), "%s/cert.pem", tc->dir);
    snprintf(tc->key, sizeof(tc->key), "%s/key.pem", tc->dir);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pk);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"mcpd test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    if (ext == NULL)
        goto out;
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (X509_sign(x, pk, EVP_sha256()) == 0)
        goto out;
    if ((f = fopen(tc->cert, "w")) == NULL)
        goto out;
    PEM_write_X509(f, x);
    fclose(f);
    if ((f = fopen(tc->key, "w")) == NULL)
        goto out;
    PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    ok = 0;
out:
    X509_free(x);
    EVP_PKEY_free(pk);
    return ok;
}

static void test_cert_remove(struct test_cert *tc)
{
    unlink(tc->cert);
    unlink(tc->key);
    rmdir(tc->dir);
}

#endif
