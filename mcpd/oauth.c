/*
 * oauth.c - sans-I/O OAuth 2.0 helpers (see oauth.h).
 */
#include "oauth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <uv.h>

#include "buf.h"
#include "crypto.h"
#include "error.h"
#include "limits.h"

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64 without padding (url) or with (std) into out; returns the length. */
static size_t b64(char *out, const unsigned char *in, size_t n, bool url)
{
    const char *t = url ? b64url : b64std;
    size_t o = 0, i;

    for (i = 0; i + 2 < n; i += 3) {
        out[o++] = t[in[i] >> 2];
        out[o++] = t[(in[i] & 3) << 4 | in[i + 1] >> 4];
        out[o++] = t[(in[i + 1] & 15) << 2 | in[i + 2] >> 6];
        out[o++] = t[in[i + 2] & 63];
    }
    if (n - i == 1) {
        out[o++] = t[in[i] >> 2];
        out[o++] = t[(in[i] & 3) << 4];
        if (!url) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (n - i == 2) {
        out[o++] = t[in[i] >> 2];
        out[o++] = t[(in[i] & 3) << 4 | in[i + 1] >> 4];
        out[o++] = t[(in[i + 1] & 15) << 2];
        if (!url)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

int mcpd_oauth_state(char state[MCPD_OAUTH_STATE_LEN + 1])
{
    unsigned char rnd[32];

    if (mcpd_crypto_random(rnd, sizeof(rnd)) != 0)
        return UV_EIO;
    b64(state, rnd, sizeof(rnd), true);
    OPENSSL_cleanse(rnd, sizeof(rnd));
    return 0;
}

int mcpd_oauth_pkce(char verifier[MCPD_OAUTH_VERIFIER_LEN + 1],
                    char challenge[MCPD_OAUTH_VERIFIER_LEN + 1])
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    if (mcpd_oauth_state(verifier) != 0)
        return UV_EIO;
    if (EVP_Digest(verifier, MCPD_OAUTH_VERIFIER_LEN, md, &mdlen, EVP_sha256(), NULL) != 1 ||
        mdlen != 32) {
        OPENSSL_cleanse(verifier, MCPD_OAUTH_VERIFIER_LEN + 1);
        return UV_EIO;
    }
    b64(challenge, md, 32, true);
    return 0;
}

char *mcpd_oauth_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s), o = 0;
    char *out = malloc(3 * n + 1);

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
    return out;
}

char *mcpd_oauth_redirect_uri(const struct mcpd_config *cfg,
                              const struct mcpd_oauth_provider_config *p)
{
    char *s;
    const char *host = cfg->listen_host ? cfg->listen_host : "127.0.0.1";
    bool v6 = strchr(host, ':') != NULL;

    if (p->callback_url != NULL)
        return strdup(p->callback_url);
    if (asprintf(&s, "http://%s%s%s:%d/oauth/callback", v6 ? "[" : "", host, v6 ? "]" : "",
                 cfg->listen_port) < 0)
        return NULL;
    return s;
}

/* Appends "&k=escaped(v)" (no '&' first); false on ENOMEM. */
static bool form_add(struct mcpd_buf *b, const char *k, const char *v)
{
    char *e = mcpd_oauth_escape(v);
    bool ok = e != NULL;

    if (ok && b->len > 0)
        ok = mcpd_buf_append(b, "&", 1) == 0;
    ok = ok && mcpd_buf_append(b, k, strlen(k)) == 0 && mcpd_buf_append(b, "=", 1) == 0 &&
         mcpd_buf_append(b, e, strlen(e)) == 0;
    mcpd_crypto_free_str(e);
    return ok;
}

static char *join_scopes(const struct mcpd_oauth_provider_config *p)
{
    size_t n = 1, o = 0;
    char *s;

    for (size_t i = 0; i < p->scopes.n; i++)
        n += strlen(p->scopes.v[i]) + 1;
    if ((s = calloc(1, n)) == NULL)
        return NULL;
    for (size_t i = 0; i < p->scopes.n; i++) {
        size_t len = strlen(p->scopes.v[i]);

        if (i > 0)
            s[o++] = ' ';
        memcpy(s + o, p->scopes.v[i], len);
        o += len;
    }
    s[o] = '\0';
    return s;
}

/* Takes the buffer's bytes as a NUL-terminated string (NULL on ENOMEM). */
static char *buf_take(struct mcpd_buf *b, bool ok)
{
    char *s = NULL;

    if (ok && mcpd_buf_append(b, "", 1) == 0 && (s = malloc(b->len)) != NULL)
        memcpy(s, b->p, b->len);
    if (b->p != NULL)
        OPENSSL_cleanse(b->p, b->len);
    mcpd_buf_dispose(b);
    return s;
}

char *mcpd_oauth_authorize_url(const struct mcpd_oauth_provider_config *p, const char *redirect,
                               const char *state, const char *challenge)
{
    struct mcpd_buf b;
    char *scopes = join_scopes(p);
    bool ok = scopes != NULL;

    mcpd_buf_init(&b, 64 * 1024);
    ok = ok && form_add(&b, "response_type", "code") && form_add(&b, "client_id", p->client_id) &&
         form_add(&b, "redirect_uri", redirect) &&
         (p->scopes.n == 0 || form_add(&b, "scope", scopes)) && form_add(&b, "state", state) &&
         form_add(&b, "code_challenge", challenge) && form_add(&b, "code_challenge_method", "S256");
    free(scopes);
    {
        char *q = buf_take(&b, ok), *url = NULL;

        if (q != NULL && asprintf(&url, "%s%c%s", p->authorize_url,
                                  strchr(p->authorize_url, '?') ? '&' : '?', q) < 0)
            url = NULL;
        free(q);
        return url;
    }
}

static char *basic_header(const char *id, const char *secret)
{
    char *eid = mcpd_oauth_escape(id), *esec = mcpd_oauth_escape(secret), *pair = NULL, *enc = NULL,
         *h = NULL;
    size_t n;

    if (eid == NULL || esec == NULL || asprintf(&pair, "%s:%s", eid, esec) < 0) {
        pair = NULL;
        goto out;
    }
    n = strlen(pair);
    if ((enc = malloc(4 * (n / 3 + 1) + 1)) == NULL)
        goto out;
    b64(enc, (const unsigned char *)pair, n, false);
    if (asprintf(&h, "Authorization: Basic %s", enc) < 0)
        h = NULL;
out:
    mcpd_crypto_free_str(eid);
    mcpd_crypto_free_str(esec);
    mcpd_crypto_free_str(pair);
    mcpd_crypto_free_str(enc);
    return h;
}

int mcpd_oauth_request(char **body, char **auth_header, const struct mcpd_oauth_provider_config *p,
                       const char *client_secret, enum mcpd_oauth_grant g, const char *a,
                       const char *b, const char *c)
{
    struct mcpd_buf f;
    char *scopes = join_scopes(p);
    bool ok = scopes != NULL;

    *body = NULL;
    *auth_header = NULL;
    mcpd_buf_init(&f, MCPD_MAX_TOKEN_RESPONSE);
    switch (g) {
    case MCPD_OAUTH_CODE:
        ok = ok && form_add(&f, "grant_type", "authorization_code") && form_add(&f, "code", a) &&
             form_add(&f, "code_verifier", b) && form_add(&f, "redirect_uri", c);
        break;
    case MCPD_OAUTH_REFRESH:
        ok = ok && form_add(&f, "grant_type", "refresh_token") && form_add(&f, "refresh_token", a);
        break;
    case MCPD_OAUTH_CLIENT_CREDENTIALS:
        ok = ok && form_add(&f, "grant_type", "client_credentials") &&
             (p->scopes.n == 0 || form_add(&f, "scope", scopes));
        break;
    case MCPD_OAUTH_DEVICE_CODE:
        ok = ok && form_add(&f, "grant_type", "urn:ietf:params:oauth:grant-type:device_code") &&
             form_add(&f, "device_code", a);
        break;
    case MCPD_OAUTH_DEVICE_AUTHORIZE:
        ok = ok && (p->scopes.n == 0 || form_add(&f, "scope", scopes));
        break;
    }
    free(scopes);
    if (client_secret == NULL)
        ok = ok && form_add(&f, "client_id", p->client_id);
    if ((*body = buf_take(&f, ok)) == NULL)
        return MCPD_ENOMEM;
    if (client_secret != NULL &&
        (*auth_header = basic_header(p->client_id, client_secret)) == NULL) {
        mcpd_crypto_free_str(*body);
        *body = NULL;
        return MCPD_ENOMEM;
    }
    return 0;
}

/* ---- responses --------------------------------------------------------------------------------
 */

static void printable(char *dst, size_t cap, const char *s)
{
    size_t n = 0;

    for (size_t i = 0; s != NULL && s[i] != '\0' && n + 1 < cap; i++)
        dst[n++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    dst[n] = '\0';
}

static char *str_dup(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));

    return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

static void wipe_json(json_t *o)
{
    const char *k;
    json_t *v;

    json_object_foreach (o, k, v) {
        if (json_is_string(v))
            OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
    }
}

int mcpd_oauth_parse(struct mcpd_oauth_token *out, int status, const char *body, size_t len,
                     bool device, int64_t now_ms)
{
    json_t *o, *ei;
    int r = 0;

    memset(out, 0, sizeof(*out));
    if (len > MCPD_MAX_TOKEN_RESPONSE) {
        snprintf(out->error, sizeof(out->error), "response too large");
        return MCPD_EPROTO;
    }
    o = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(o)) {
        snprintf(out->error, sizeof(out->error), "HTTP %d, not a JSON object", status);
        json_decref(o);
        return MCPD_EPROTO;
    }
    if (json_is_string(json_object_get(o, "error")) &&
        json_string_value(json_object_get(o, "error"))[0] != '\0') {
        printable(out->error, sizeof(out->error), json_string_value(json_object_get(o, "error")));
        printable(out->error_description, sizeof(out->error_description),
                  json_string_value(json_object_get(o, "error_description")));
        r = MCPD_EDENIED;
        goto out;
    }
    if (status < 200 || status > 299) {
        snprintf(out->error, sizeof(out->error), "HTTP %d", status);
        r = MCPD_EPROTO;
        goto out;
    }
    if (device) {
        json_t *iv = json_object_get(o, "interval"), *ex = json_object_get(o, "expires_in");

        out->device_code = str_dup(o, "device_code");
        out->user_code = str_dup(o, "user_code");
        out->verification_uri = str_dup(o, "verification_uri");
        out->verification_uri_complete = str_dup(o, "verification_uri_complete");
        out->interval_s = 5;
        if (json_is_integer(iv) && json_integer_value(iv) > 0 && json_integer_value(iv) < 3600)
            out->interval_s = (unsigned)json_integer_value(iv);
        if (json_is_integer(ex) && json_integer_value(ex) > 0 && json_integer_value(ex) < 86400)
            out->device_expires_s = (unsigned)json_integer_value(ex);
        if (out->device_code == NULL || out->user_code == NULL || out->verification_uri == NULL) {
            snprintf(out->error, sizeof(out->error), "incomplete device authorization response");
            r = MCPD_EPROTO;
        }
        goto out;
    }
    out->access_token = str_dup(o, "access_token");
    out->refresh_token = str_dup(o, "refresh_token");
    out->scope = str_dup(o, "scope");
    ei = json_object_get(o, "expires_in");
    if (json_is_integer(ei) && json_integer_value(ei) > 0 &&
        json_integer_value(ei) < (json_int_t)10 * 365 * 86400)
        out->expires_ms = now_ms + (int64_t)json_integer_value(ei) * 1000;
    if (out->access_token == NULL) {
        snprintf(out->error, sizeof(out->error), "no access_token in the response");
        r = MCPD_EPROTO;
    }
out:
    wipe_json(o);
    json_decref(o);
    if (r != 0 && r != MCPD_EDENIED) {
        char keep[64];

        memcpy(keep, out->error, sizeof(keep));
        mcpd_oauth_token_dispose(out);
        memcpy(out->error, keep, sizeof(keep));
    }
    return r;
}

void mcpd_oauth_token_dispose(struct mcpd_oauth_token *t)
{
    mcpd_crypto_free_str(t->access_token);
    mcpd_crypto_free_str(t->refresh_token);
    free(t->scope);
    mcpd_crypto_free_str(t->device_code);
    free(t->user_code);
    free(t->verification_uri);
    free(t->verification_uri_complete);
    t->access_token = t->refresh_token = t->scope = t->device_code = t->user_code = NULL;
    t->verification_uri = t->verification_uri_complete = NULL;
}

int64_t mcpd_oauth_refresh_at(int64_t obtained, int64_t expires)
{
    int64_t at, by_margin, life;

    if (expires <= 0)
        return 0;
    if (obtained <= 0 || obtained > expires)
        obtained = expires;
    life = expires - obtained;
    at = obtained + life * MCPD_REFRESH_FRACTION / 100;
    by_margin = expires - MCPD_REFRESH_MARGIN_MS;
    /* the margin wins when earlier, but never takes more than half of the lifetime: a
     * short-lived token would otherwise be refreshed again at once, in a loop */
    if (by_margin < at && by_margin >= obtained + life / 2)
        at = by_margin;
    if (at < obtained + 1000 && expires > obtained + 1000)
        at = obtained + 1000; /* at most one refresh a second */
    return at;
}

char *mcpd_oauth_query_param(const char *q, const char *key)
{
    size_t kl = strlen(key);

    for (const char *p = q; p != NULL && *p != '\0';) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            const char *v = p + kl + 1, *vend = p + len;
            char *out = malloc((size_t)(vend - v) + 1), *o = out;

            if (out == NULL)
                return NULL;
            for (const char *s = v; s < vend; s++) {
                if (*s == '%') {
                    unsigned char ch;

                    if (vend - s < 3 || mcpd_crypto_unhex(&ch, s + 1, 1) != 0 || ch == 0) {
                        free(out);
                        return NULL;
                    }
                    *o++ = (char)ch;
                    s += 2;
                } else {
                    *o++ = *s == '+' ? ' ' : *s;
                }
            }
            *o = '\0';
            return out;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}
