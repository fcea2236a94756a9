/*
 * admin_credentials.c - `mcpd credentials ...` (see admin_credentials.h).
 * Synchronous: the store through its own connection, the OAuth endpoints
 * through libcurl easy (blocking is fine in the CLI). Secrets come from
 * stdin or a no-echo prompt, never argv, and are printed nowhere.
 */
#include "admin_credentials.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "admin.h"
#include "buf.h"
#include "crypto.h"
#include "error.h"
#include "limits.h"
#include "oauth.h"
#include "store_cred.h"

struct cli {
    const struct mcpd_config *cfg;
    struct mcpd_cred_store *cs;
    char err[512];
};

char *mcpd_admin_key_file(const struct mcpd_config *cfg, const char *store_path)
{
    if (cfg->master_key_file != NULL)
        return strdup(cfg->master_key_file);
    return mcpd_cred_default_key_file(store_path);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- reading a secret ------------------------------------------------------------------------ */

/* The secret from a no-echo prompt on the tty, or all of stdin (one trailing newline dropped). */
static char *read_secret(const char *name)
{
    struct mcpd_buf b;
    char chunk[512], *s = NULL;
    bool tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    ssize_t n;

    mcpd_buf_init(&b, MCPD_MAX_SECRET);
    if (tty) {
        fprintf(stderr, "secret for credential '%s' (not shown): ", name);
        fflush(stderr);
        if (tcgetattr(STDIN_FILENO, &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        }
    }
    while ((n = read(STDIN_FILENO, chunk, sizeof(chunk))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || mcpd_buf_append(&b, chunk, (size_t)n) != 0) {
            fprintf(stderr, "\nmcpd: cannot read the secret (at most %u bytes)\n", MCPD_MAX_SECRET);
            goto out;
        }
        if (tty && memchr(chunk, '\n', (size_t)n) != NULL)
            break;
    }
    while (b.len > 0 && (b.p[b.len - 1] == '\n' || b.p[b.len - 1] == '\r'))
        b.len--;
    if (mcpd_buf_append(&b, "", 1) == 0 && (s = malloc(b.len)) != NULL)
        memcpy(s, b.p, b.len);
out:
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    mcpd_crypto_wipe(chunk, sizeof(chunk));
    mcpd_crypto_wipe(b.p, b.alloc);
    mcpd_buf_dispose(&b);
    return s;
}

/* ---- add, list, show, delete ----------------------------------------------------------------- */

static int cmd_add(struct cli *c, const struct mcpd_admin_cred_args *a)
{
    int kind = mcpd_cred_kind_parse(a->kind);
    char *secret = NULL;
    int r;

    if (kind < 0) {
        fprintf(stderr, "mcpd: credentials add needs --kind api_key|bearer|oauth2\n");
        return 2;
    }
    if (kind == MCPD_CRED_OAUTH2) {
        if (a->provider == NULL || mcpd_config_oauth_provider(c->cfg, a->provider) == NULL) {
            fprintf(stderr, "mcpd: --kind oauth2 needs --provider P, one of oauth_providers:\n");
            return 2;
        }
    } else if (a->provider != NULL) {
        fprintf(stderr, "mcpd: --provider is for --kind oauth2\n");
        return 2;
    } else if (!mcpd_cred_name_valid(a->name)) {
        fprintf(stderr, "mcpd: invalid credential name: must match ^[a-z0-9][a-z0-9_-]{0,63}$\n");
        return 1;
    } else if ((secret = read_secret(a->name)) == NULL) {
        return 1;
    }
    r = mcpd_cred_store_add(c->cs, a->name, (enum mcpd_credential_kind)kind, a->provider, secret,
                            c->err, sizeof(c->err));
    mcpd_crypto_free_str(secret);
    if (r != 0) {
        fprintf(stderr, "mcpd: %s\n", c->err);
        return 1;
    }
    if (kind == MCPD_CRED_OAUTH2)
        fprintf(stderr,
                "mcpd: credential '%s' added; authorize it with: mcpd credentials authorize %s\n",
                a->name, a->name);
    else
        fprintf(stderr, "mcpd: credential '%s' added (encrypted in the store)\n", a->name);
    return 0;
}

/* "…abcd" for a static secret of 16 characters or more, else "" (nothing useful to guess). */
static void hint_of(char *out, size_t cap, const struct mcpd_cred_row *row)
{
    const char *s = row->kind == MCPD_CRED_OAUTH2 ? NULL : row->secret;
    size_t n = s ? strlen(s) : 0;

    out[0] = '\0';
    if (n >= 16 && cap >= 8)
        snprintf(out, cap, "\xe2\x80\xa6%s", s + n - 4);
}

static json_t *row_json(const struct mcpd_cred_row *row, bool detail)
{
    char t[32];
    json_t *o = json_object();

    json_object_set_new(o, "name", json_string(row->name));
    json_object_set_new(o, "kind", json_string(mcpd_cred_kind_name(row->kind)));
    if (row->provider[0])
        json_object_set_new(o, "provider", json_string(row->provider));
    json_object_set_new(o, "status",
                        json_string(row->damaged ? "damaged" : mcpd_cred_status_name(row->status)));
    if (row->expires_ms > 0) {
        mcpd_admin_time_text(t, sizeof(t), row->expires_ms);
        json_object_set_new(o, "expires", json_string(t));
    }
    if (detail) {
        char hint[16];

        mcpd_admin_time_text(t, sizeof(t), row->created_ms);
        json_object_set_new(o, "created", json_string(t));
        mcpd_admin_time_text(t, sizeof(t), row->updated_ms);
        json_object_set_new(o, "updated", json_string(t));
        if (row->refreshed_ms > 0) {
            mcpd_admin_time_text(t, sizeof(t), row->refreshed_ms);
            json_object_set_new(o, "refreshed", json_string(t));
        }
        if (row->scopes[0])
            json_object_set_new(o, "scopes", json_string(row->scopes));
        if (row->last_error[0])
            json_object_set_new(o, "last_error", json_string(row->last_error));
        if (row->kind == MCPD_CRED_OAUTH2)
            json_object_set_new(o, "refresh_token", json_boolean(row->refresh_token != NULL));
        hint_of(hint, sizeof(hint), row);
        if (hint[0])
            json_object_set_new(o, "hint", json_string(hint));
    }
    return o;
}

static int cmd_list(struct cli *c, bool json)
{
    struct mcpd_cred_row *rows;
    size_t n;

    if (mcpd_cred_store_list(c->cs, false, &rows, &n, NULL, c->err, sizeof(c->err)) != 0) {
        fprintf(stderr, "mcpd: %s\n", c->err);
        return 1;
    }
    if (json) {
        json_t *arr = json_array();
        char *s;

        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, row_json(&rows[i], false));
        s = json_dumps(arr, JSON_INDENT(2));
        printf("%s\n", s ? s : "[]");
        free(s);
        json_decref(arr);
    } else {
        printf("%-24s %-8s %-16s %-9s %s\n", "CREDENTIAL", "KIND", "PROVIDER", "STATUS", "EXPIRES");
        for (size_t i = 0; i < n; i++) {
            char t[32];

            mcpd_admin_time_text(t, sizeof(t), rows[i].expires_ms);
            printf("%-24s %-8s %-16s %-9s %s\n", rows[i].name, mcpd_cred_kind_name(rows[i].kind),
                   rows[i].provider[0] ? rows[i].provider : "-",
                   mcpd_cred_status_name(rows[i].status), t);
        }
    }
    mcpd_cred_rows_free(rows, n);
    return 0;
}

static int cmd_show(struct cli *c, const char *name, bool json)
{
    struct mcpd_cred_row row;
    json_t *o;
    char *s;

    if (mcpd_cred_store_get(c->cs, name, &row, c->err, sizeof(c->err)) != 0) {
        fprintf(stderr, "mcpd: %s\n", c->err);
        return 1;
    }
    o = row_json(&row, true);
    mcpd_cred_row_dispose(&row);
    if (json) {
        s = json_dumps(o, JSON_INDENT(2));
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        const char *k;
        json_t *v;

        json_object_foreach (o, k, v) {
            if (json_is_string(v))
                printf("%-14s %s\n", k, json_string_value(v));
            else
                printf("%-14s %s\n", k, json_is_true(v) ? "yes" : "no");
        }
    }
    json_decref(o);
    return 0;
}

/* ---- OAuth over libcurl easy ----------------------------------------------------------------- */

static size_t on_body(char *p, size_t sz, size_t n, void *data)
{
    return mcpd_buf_append(data, p, sz * n) == 0 ? sz * n : 0;
}

/* POSTs a form; *status and resp filled. 0 or -1 (err filled; never the body). */
static int post_form(const char *url, const char *body, const char *auth, int *status,
                     struct mcpd_buf *resp, char *err, size_t errcap)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    long code = 0;
    CURLcode rc;

    if (h == NULL) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    hdr = curl_slist_append(hdr, "Accept: application/json");
    hdr = curl_slist_append(hdr, "Content-Type: application/x-www-form-urlencoded");
    if (auth != NULL)
        hdr = curl_slist_append(hdr, auth);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)MCPD_OAUTH_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hdr); /* the Authorization line: curl copied it; ours is wiped by caller */
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        snprintf(err, errcap, "%s: %s", url, curl_easy_strerror(rc));
        return -1;
    }
    *status = (int)code;
    return 0;
}

/* The client secret of a provider (NULL for a public client); *secret new or NULL. */
static int client_secret(struct cli *c, const struct mcpd_oauth_provider_config *p, char **secret)
{
    struct mcpd_cred_row row;

    *secret = NULL;
    if (p->client_secret_credential == NULL)
        return 0;
    if (mcpd_cred_store_get(c->cs, p->client_secret_credential, &row, c->err, sizeof(c->err)) !=
        0) {
        fprintf(stderr, "mcpd: provider '%s': client_secret_credential: %s\n", p->name, c->err);
        return 1;
    }
    if (row.kind == MCPD_CRED_OAUTH2 || row.secret == NULL) {
        fprintf(stderr, "mcpd: provider '%s': credential '%s' must be an api_key%s\n", p->name,
                row.name, row.damaged ? " (it is damaged or the master key is wrong)" : "");
        mcpd_cred_row_dispose(&row);
        return 1;
    }
    *secret = row.secret;
    row.secret = NULL;
    mcpd_cred_row_dispose(&row);
    return 0;
}

/*
 * One token endpoint exchange: *tok filled. Returns 0, MCPD_EDENIED (an
 * OAuth error in tok->error) or another negative code (message printed).
 */
static int exchange(struct cli *c, const struct mcpd_oauth_provider_config *p, const char *url,
                    enum mcpd_oauth_grant g, const char *a, const char *b, const char *cc,
                    struct mcpd_oauth_token *tok)
{
    char *secret = NULL, *body = NULL, *auth = NULL;
    struct mcpd_buf resp;
    int status = 0, r;

    memset(tok, 0, sizeof(*tok));
    if (client_secret(c, p, &secret) != 0)
        return MCPD_ECONFIG;
    mcpd_buf_init(&resp, MCPD_MAX_TOKEN_RESPONSE);
    r = mcpd_oauth_request(&body, &auth, p, secret, g, a, b, cc);
    mcpd_crypto_free_str(secret);
    if (r != 0) {
        fprintf(stderr, "mcpd: out of memory\n");
        goto out;
    }
    if (post_form(url, body, auth, &status, &resp, c->err, sizeof(c->err)) != 0) {
        fprintf(stderr, "mcpd: %s\n", c->err);
        r = UV_EIO;
        goto out;
    }
    r = mcpd_oauth_parse(tok, status, resp.p ? resp.p : "", resp.len,
                         g == MCPD_OAUTH_DEVICE_AUTHORIZE, now_ms());
    if (r == MCPD_EPROTO)
        fprintf(stderr, "mcpd: %s: %s\n", url, tok->error);
out:
    mcpd_crypto_free_str(body);
    mcpd_crypto_free_str(auth);
    mcpd_crypto_wipe(resp.p, resp.alloc);
    mcpd_buf_dispose(&resp);
    return r;
}

static int save_tokens(struct cli *c, const char *name, struct mcpd_oauth_token *tok,
                       const char *grant)
{
    int r = mcpd_cred_store_set_tokens(c->cs, name, tok->access_token, tok->refresh_token,
                                       tok->expires_ms, tok->scope, grant, c->err, sizeof(c->err));

    if (r != 0) {
        fprintf(stderr, "mcpd: %s\n", c->err);
        return 1;
    }
    return 0;
}

static void oauth_failed(struct cli *c, const char *name, const struct mcpd_oauth_token *tok,
                         bool mark_expired)
{
    char line[256];

    snprintf(line, sizeof(line), "%s%s%s", tok->error, tok->error_description[0] ? ": " : "",
             tok->error_description);
    fprintf(stderr, "mcpd: credential '%s': the authorization server refused: %s\n", name, line);
    if (mark_expired)
        mcpd_cred_store_set_status(c->cs, name, MCPD_CRED_STATUS_EXPIRED, line, c->err,
                                   sizeof(c->err));
}

static int flow_client_credentials(struct cli *c, const char *name,
                                   const struct mcpd_oauth_provider_config *p)
{
    struct mcpd_oauth_token tok;
    int r = exchange(c, p, p->token_url, MCPD_OAUTH_CLIENT_CREDENTIALS, NULL, NULL, NULL, &tok);

    if (r == MCPD_EDENIED)
        oauth_failed(c, name, &tok, false);
    if (r == 0)
        r = save_tokens(c, name, &tok, "client_credentials");
    mcpd_oauth_token_dispose(&tok);
    if (r == 0)
        fprintf(stderr, "mcpd: credential '%s' authorized (client credentials)\n", name);
    return r == 0 ? 0 : 1;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int flow_device(struct cli *c, const char *name, const struct mcpd_oauth_provider_config *p)
{
    struct mcpd_oauth_token dev, tok;
    unsigned interval_ms, waited = 0, max_wait;
    int r;

    if (p->device_authorization_url == NULL) {
        fprintf(stderr, "mcpd: provider '%s' has no device_authorization_url\n", p->name);
        return 1;
    }
    r = exchange(c, p, p->device_authorization_url, MCPD_OAUTH_DEVICE_AUTHORIZE, NULL, NULL, NULL,
                 &dev);
    if (r != 0) {
        if (r == MCPD_EDENIED)
            oauth_failed(c, name, &dev, false);
        mcpd_oauth_token_dispose(&dev);
        return 1;
    }
    printf("To authorize '%s', open %s and enter the code %s\n", name, dev.verification_uri,
           dev.user_code);
    if (dev.verification_uri_complete)
        printf("(or open %s)\n", dev.verification_uri_complete);
    fflush(stdout);
    interval_ms = dev.interval_s * 1000;
    max_wait = dev.device_expires_s ? dev.device_expires_s * 1000 : MCPD_DEVICE_MAX_WAIT_MS;
    if (max_wait > MCPD_DEVICE_MAX_WAIT_MS)
        max_wait = MCPD_DEVICE_MAX_WAIT_MS;
    for (;;) {
        if (waited >= max_wait) {
            fprintf(stderr, "mcpd: credential '%s': the device code expired\n", name);
            mcpd_oauth_token_dispose(&dev);
            return 1;
        }
        sleep_ms(interval_ms);
        waited += interval_ms;
        r = exchange(c, p, p->token_url, MCPD_OAUTH_DEVICE_CODE, dev.device_code, NULL, NULL, &tok);
        if (r == MCPD_EDENIED && strcmp(tok.error, "authorization_pending") == 0) {
            mcpd_oauth_token_dispose(&tok);
        } else if (r == MCPD_EDENIED && strcmp(tok.error, "slow_down") == 0) {
            interval_ms += 5000; /* RFC 8628 3.5 */
            fprintf(stderr, "mcpd: the server asked to slow down: polling every %u s\n",
                    interval_ms / 1000);
            mcpd_oauth_token_dispose(&tok);
        } else {
            break;
        }
    }
    mcpd_oauth_token_dispose(&dev);
    if (r == MCPD_EDENIED)
        oauth_failed(c, name, &tok, false); /* expired_token, access_denied, ... */
    if (r == 0)
        r = save_tokens(c, name, &tok, "device");
    mcpd_oauth_token_dispose(&tok);
    if (r != 0)
        return 1;
    fprintf(stderr, "mcpd: credential '%s' authorized (device flow)\n", name);
    return 0;
}

static size_t discard(char *p, size_t sz, size_t n, void *data)
{
    (void)p;
    (void)data;
    return sz * n;
}

/* Whether an HTTP server answers at url (any status), within 2 s. */
static bool answers(const char *url)
{
    CURL *h = curl_easy_init();
    CURLcode rc;

    if (h == NULL)
        return true; /* cannot tell: no warning */
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    return rc == CURLE_OK;
}

/* Authorization code + PKCE: the daemon's /oauth/callback completes it; we wait for that. */
static int flow_code(struct cli *c, const char *name, const struct mcpd_oauth_provider_config *p)
{
    char verifier[MCPD_OAUTH_VERIFIER_LEN + 1], challenge[MCPD_OAUTH_VERIFIER_LEN + 1];
    char state[MCPD_OAUTH_STATE_LEN + 1], *redirect = NULL, *url = NULL;
    struct mcpd_cred_row row;
    int64_t before, deadline;
    int rc = 1;

    if (p->authorize_url == NULL) {
        fprintf(stderr, "mcpd: provider '%s' has no authorize_url\n", p->name);
        return 1;
    }
    if (mcpd_cred_store_get(c->cs, name, &row, c->err, sizeof(c->err)) != 0) {
        fprintf(stderr, "mcpd: %s\n", c->err);
        return 1;
    }
    before = row.updated_ms;
    mcpd_cred_row_dispose(&row);
    if (mcpd_oauth_pkce(verifier, challenge) != 0 || mcpd_oauth_state(state) != 0 ||
        (redirect = mcpd_oauth_redirect_uri(c->cfg, p)) == NULL ||
        (url = mcpd_oauth_authorize_url(p, redirect, state, challenge)) == NULL) {
        fprintf(stderr, "mcpd: cannot start the authorization\n");
        goto out;
    }
    if (mcpd_cred_store_pending_add(c->cs, state, name, verifier, c->err, sizeof(c->err)) != 0) {
        fprintf(stderr, "mcpd: %s\n", c->err);
        goto out;
    }
    printf("Open this URL to authorize '%s' (valid 10 minutes; mcpd serve must be running to "
           "receive %s):\n%s\n",
           name, redirect, url);
    fflush(stdout);
    if (!answers(redirect))
        fprintf(stderr,
                "mcpd: warning: nothing answers at %s: start mcpd serve there (the callback "
                "completes the authorization)\n",
                redirect);
    deadline = now_ms() + MCPD_CRED_PENDING_MS;
    while (now_ms() < deadline) {
        sleep_ms(500);
        if (mcpd_cred_store_get(c->cs, name, &row, c->err, sizeof(c->err)) != 0) {
            fprintf(stderr, "mcpd: %s\n", c->err);
            goto out;
        }
        if (row.updated_ms != before && row.status == MCPD_CRED_STATUS_OK) {
            fprintf(stderr, "mcpd: credential '%s' authorized (authorization code)\n", name);
            mcpd_cred_row_dispose(&row);
            rc = 0;
            goto out;
        }
        if (row.updated_ms != before && row.last_error[0]) {
            fprintf(stderr, "mcpd: credential '%s': %s\n", name, row.last_error);
            mcpd_cred_row_dispose(&row);
            goto out;
        }
        mcpd_cred_row_dispose(&row);
    }
    fprintf(stderr, "mcpd: credential '%s': the authorization did not complete in time\n", name);
out:
    mcpd_crypto_wipe(verifier, sizeof(verifier));
    free(redirect);
    free(url);
    return rc;
}

static const struct mcpd_oauth_provider_config *oauth_target(struct cli *c, const char *name,
                                                             struct mcpd_cred_row *row)
{
    const struct mcpd_oauth_provider_config *p;

    if (mcpd_cred_store_get(c->cs, name, row, c->err, sizeof(c->err)) != 0) {
        fprintf(stderr, "mcpd: %s\n", c->err);
        return NULL;
    }
    if (row->kind != MCPD_CRED_OAUTH2) {
        fprintf(stderr, "mcpd: credential '%s' is not an oauth2 credential\n", name);
        return NULL;
    }
    if ((p = mcpd_config_oauth_provider(c->cfg, row->provider)) == NULL)
        fprintf(stderr, "mcpd: credential '%s': provider '%s' is not in oauth_providers:\n", name,
                row->provider);
    return p;
}

static int cmd_authorize(struct cli *c, const struct mcpd_admin_cred_args *a)
{
    struct mcpd_cred_row row;
    const struct mcpd_oauth_provider_config *p = oauth_target(c, a->name, &row);
    const char *grant;

    mcpd_cred_row_dispose(&row);
    if (p == NULL)
        return 1;
    grant = a->device               ? "device"
            : a->client_credentials ? "client_credentials"
            : p->grant              ? p->grant
                                    : "code";
    if (strcmp(grant, "device") == 0)
        return flow_device(c, a->name, p);
    if (strcmp(grant, "client_credentials") == 0)
        return flow_client_credentials(c, a->name, p);
    return flow_code(c, a->name, p);
}

static int cmd_refresh(struct cli *c, const char *name)
{
    struct mcpd_cred_row row;
    const struct mcpd_oauth_provider_config *p = oauth_target(c, name, &row);
    struct mcpd_oauth_token tok;
    int r;

    if (p == NULL) {
        mcpd_cred_row_dispose(&row);
        return 1;
    }
    if (row.refresh_token == NULL) {
        bool cc = strcmp(row.grant, "client_credentials") == 0 ||
                  (p->grant != NULL && strcmp(p->grant, "client_credentials") == 0);

        mcpd_cred_row_dispose(&row);
        if (cc) /* a client credentials token is obtained again, not refreshed */
            return flow_client_credentials(c, name, p);
        fprintf(stderr,
                "mcpd: credential '%s' has no refresh token: run mcpd credentials "
                "authorize %s\n",
                name, name);
        return 1;
    }
    r = exchange(c, p, p->token_url, MCPD_OAUTH_REFRESH, row.refresh_token, NULL, NULL, &tok);
    mcpd_cred_row_dispose(&row);
    if (r == MCPD_EDENIED)
        oauth_failed(c, name, &tok, true);
    if (r == 0)
        r = save_tokens(c, name, &tok, NULL);
    mcpd_oauth_token_dispose(&tok);
    if (r != 0)
        return 1;
    fprintf(stderr, "mcpd: credential '%s' refreshed\n", name);
    return 0;
}

int mcpd_admin_credentials(const struct mcpd_config *cfg, const struct mcpd_admin_cred_args *a)
{
    struct cli c = { .cfg = cfg };
    char *path = mcpd_admin_store_path(cfg), *key_file = NULL;
    bool keyless = strcmp(a->verb, "list") == 0 || strcmp(a->verb, "delete") == 0;
    int rc;

    if (path == NULL || (key_file = mcpd_admin_key_file(cfg, path)) == NULL) {
        fprintf(stderr, "mcpd: out of memory\n");
        free(path);
        return 1;
    }
    /* the key is created on first add; other verbs need an existing one */
    if (mcpd_cred_store_open(&c.cs, path, keyless ? NULL : key_file, strcmp(a->verb, "add") == 0,
                             c.err, sizeof(c.err)) != 0) {
        fprintf(stderr, "mcpd: %s\n", c.err);
        free(path);
        free(key_file);
        return 1;
    }
    if (strcmp(a->verb, "add") == 0)
        rc = cmd_add(&c, a);
    else if (strcmp(a->verb, "list") == 0)
        rc = cmd_list(&c, a->json);
    else if (strcmp(a->verb, "show") == 0)
        rc = cmd_show(&c, a->name, a->json);
    else if (strcmp(a->verb, "delete") == 0) {
        rc = mcpd_cred_store_delete(c.cs, a->name, c.err, sizeof(c.err)) != 0;
        if (rc)
            fprintf(stderr, "mcpd: %s\n", c.err);
        else
            fprintf(stderr, "mcpd: credential '%s' deleted\n", a->name);
    } else if (strcmp(a->verb, "authorize") == 0)
        rc = cmd_authorize(&c, a);
    else if (strcmp(a->verb, "refresh") == 0)
        rc = cmd_refresh(&c, a->name);
    else {
        fprintf(stderr,
                "mcpd: unknown credentials verb '%s' "
                "(add|list|show|delete|authorize|refresh)\n",
                a->verb);
        rc = 2;
    }
    mcpd_cred_store_close(c.cs);
    free(path);
    free(key_file);
    return rc;
}
