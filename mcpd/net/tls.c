/*
 * tls.c - OpenSSL through memory BIOs (see tls.h).
 *
 * Each engine has two memory BIOs: `rbio` receives the ciphertext the
 * owner read from the socket, `wbio` collects what OpenSSL wants sent.
 * Nothing here touches a socket or the loop. Plaintext written before the
 * handshake completes waits in `pending` (capped) and is encrypted once the
 * handshake is done.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "../error.h"
#include "../limits.h"

struct mcpd_tls_ctx {
    SSL_CTX *ssl;
    bool server;
};

struct mcpd_tls {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    bool done, failed;
    struct mcpd_buf pending; /* plaintext written before the handshake completed */
    char err[256];
};

/* The first queued OpenSSL error as one line, prefixed; clears the queue. */
static void ssl_err(char *err, size_t cap, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[200];
    if (e)
        ERR_error_string_n(e, buf, sizeof(buf));
    else
        snprintf(buf, sizeof(buf), "unknown error");
    ERR_clear_error();
    snprintf(err, cap, "%s: %s", what, buf);
}

int mcpd_tls_server_ctx_new(struct mcpd_tls_ctx **out, const char *cert_file, const char *key_file,
                            char *err, size_t errcap)
{
    struct mcpd_tls_ctx *c;
    char what[512];

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return MCPD_ENOMEM;
    c->server = true;
    c->ssl = SSL_CTX_new(TLS_server_method());
    if (c->ssl == NULL) {
        ssl_err(err, errcap, "TLS context");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(c->ssl, cert_file) != 1) {
        snprintf(what, sizeof(what), "certificate %s", cert_file);
        ssl_err(err, errcap, what);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c->ssl, key_file, SSL_FILETYPE_PEM) != 1) {
        snprintf(what, sizeof(what), "private key %s", key_file);
        ssl_err(err, errcap, what);
        goto fail;
    }
    if (SSL_CTX_check_private_key(c->ssl) != 1) {
        snprintf(what, sizeof(what), "private key %s does not match certificate %s", key_file,
                 cert_file);
        ssl_err(err, errcap, what);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    mcpd_tls_ctx_free(c);
    return MCPD_ECONFIG;
}

int mcpd_tls_client_ctx_new(struct mcpd_tls_ctx **out, const char *ca_file, bool verify, char *err,
                            size_t errcap)
{
    struct mcpd_tls_ctx *c;
    char what[512];

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return MCPD_ENOMEM;
    c->ssl = SSL_CTX_new(TLS_client_method());
    if (c->ssl == NULL) {
        ssl_err(err, errcap, "TLS context");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION);
    if (verify) {
        SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
        if (ca_file) {
            if (SSL_CTX_load_verify_locations(c->ssl, ca_file, NULL) != 1) {
                snprintf(what, sizeof(what), "CA file %s", ca_file);
                ssl_err(err, errcap, what);
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(c->ssl) != 1) {
            ssl_err(err, errcap, "system CA store");
            goto fail;
        }
    } else {
        SSL_CTX_set_verify(c->ssl, SSL_VERIFY_NONE, NULL);
    }
    *out = c;
    return 0;
fail:
    mcpd_tls_ctx_free(c);
    return MCPD_ECONFIG;
}

void mcpd_tls_ctx_free(struct mcpd_tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    SSL_CTX_free(ctx->ssl);
    free(ctx);
}

static bool is_ip_literal(const char *name)
{
    unsigned char a[16];
    return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

int mcpd_tls_new(struct mcpd_tls **out, struct mcpd_tls_ctx *ctx, const char *server_name)
{
    struct mcpd_tls *t;

    *out = NULL;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return MCPD_ENOMEM;
    mcpd_buf_init(&t->pending, MCPD_TLS_MAX_PENDING);
    t->ssl = SSL_new(ctx->ssl);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return MCPD_ENOMEM;
    }
    /* an empty read BIO means "want more", not EOF */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    if (ctx->server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        if (server_name && *server_name) {
            bool ip = is_ip_literal(server_name);
            int ok = 1;
            if (!ip) /* RFC 6066 3: no SNI for address literals */
                ok = SSL_set_tlsext_host_name(t->ssl, server_name);
            if (ok == 1 && SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) {
                X509_VERIFY_PARAM *p = SSL_get0_param(t->ssl);
                if (ip)
                    ok = X509_VERIFY_PARAM_set1_ip_asc(p, server_name);
                else
                    ok = SSL_set1_host(t->ssl, server_name);
            }
            if (ok != 1) {
                ERR_clear_error();
                mcpd_tls_free(t);
                return MCPD_ECONFIG;
            }
        }
    }
    *out = t;
    return 0;
}

void mcpd_tls_free(struct mcpd_tls *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl); /* frees both BIOs */
    mcpd_buf_dispose(&t->pending);
    free(t);
}

/* Records a failure from an SSL_* call that returned r. */
static int fail_with(struct mcpd_tls *t, int r, const char *what)
{
    int e = SSL_get_error(t->ssl, r);
    long v;

    t->failed = true;
    if (e == SSL_ERROR_SSL && (v = SSL_get_verify_result(t->ssl)) != X509_V_OK) {
        snprintf(t->err, sizeof(t->err), "%s: certificate verification failed: %s", what,
                 X509_verify_cert_error_string(v));
        ERR_clear_error();
    } else if (e == SSL_ERROR_SSL) {
        ssl_err(t->err, sizeof(t->err), what);
    } else {
        snprintf(t->err, sizeof(t->err), "%s: TLS error %d", what, e);
        ERR_clear_error();
    }
    return MCPD_EPROTO;
}

static int encrypt(struct mcpd_tls *t, const char *data, size_t len)
{
    while (len > 0) {
        int n = len > INT32_MAX ? INT32_MAX : (int)len;
        int r = SSL_write(t->ssl, data, n);
        if (r <= 0)
            return fail_with(t, r, "write");
        data += r;
        len -= (size_t)r;
    }
    return 0;
}

int mcpd_tls_feed(struct mcpd_tls *t, const char *data, size_t len, struct mcpd_buf *plain)
{
    char buf[16384];
    int r;

    if (t->failed)
        return MCPD_EPROTO;
    while (len > 0) {
        int n = len > INT32_MAX ? INT32_MAX : (int)len;
        r = BIO_write(t->rbio, data, n);
        if (r <= 0)
            return MCPD_ENOMEM;
        data += r;
        len -= (size_t)r;
    }
    if (!t->done) {
        r = SSL_do_handshake(t->ssl);
        if (r != 1) {
            int e = SSL_get_error(t->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            return fail_with(t, r, "handshake");
        }
        t->done = true;
        if (t->pending.len) {
            r = encrypt(t, t->pending.p, t->pending.len);
            mcpd_buf_dispose(&t->pending);
            if (r)
                return r;
        }
    }
    for (;;) {
        r = SSL_read(t->ssl, buf, sizeof(buf));
        if (r > 0) {
            int a = mcpd_buf_append(plain, buf, (size_t)r);
            if (a)
                return a;
            continue;
        }
        switch (SSL_get_error(t->ssl, r)) {
        case SSL_ERROR_WANT_READ:
        case SSL_ERROR_WANT_WRITE:
            return 0;
        case SSL_ERROR_ZERO_RETURN:
            snprintf(t->err, sizeof(t->err), "peer sent close_notify");
            return MCPD_ECLOSED;
        default:
            return fail_with(t, r, "read");
        }
    }
}

int mcpd_tls_write(struct mcpd_tls *t, const char *data, size_t len)
{
    if (t->failed)
        return MCPD_EPROTO;
    if (len == 0)
        return 0;
    if (!t->done)
        return mcpd_buf_append(&t->pending, data, len);
    return encrypt(t, data, len);
}

size_t mcpd_tls_take_output(struct mcpd_tls *t, struct mcpd_buf *out)
{
    size_t moved = 0, n;
    while ((n = BIO_ctrl_pending(t->wbio)) > 0) {
        if (n > 65536)
            n = 65536;
        if (mcpd_buf_reserve(out, n) != 0)
            break;
        int r = BIO_read(t->wbio, out->p + out->len, (int)n);
        if (r <= 0)
            break;
        out->len += (size_t)r;
        out->p[out->len] = '\0';
        moved += (size_t)r;
    }
    return moved;
}

int mcpd_tls_connect(struct mcpd_tls *t)
{
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->done = true;
        return 0;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    return fail_with(t, r, "handshake");
}

void mcpd_tls_close_notify(struct mcpd_tls *t)
{
    if (t->done && !t->failed)
        SSL_shutdown(t->ssl);
    ERR_clear_error();
}

bool mcpd_tls_handshake_done(const struct mcpd_tls *t)
{
    return t->done;
}

const char *mcpd_tls_error(const struct mcpd_tls *t)
{
    return t->err[0] ? t->err : "no error";
}
