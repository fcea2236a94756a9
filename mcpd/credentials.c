/*
 * credentials.c - the daemon's credential registry (implements
 * credentials.h).
 *
 * At start-up the store is read (synchronously, before any upstream
 * starts) and every credential kept decrypted in memory. After that the
 * loop never touches sqlite: one connection is used from the libuv
 * threadpool only (a mutex serialises the jobs), for
 *   - the poll: every MCPD_CRED_POLL_MS the store's generation is read and,
 *     when it moved (the CLI added, deleted or re-authorized something),
 *     the table is re-read and merged here;
 *   - writes: new tokens after a refresh or a callback, a status change;
 *   - taking a pending authorization (state) for /oauth/callback.
 * Token endpoint requests run on net/http_client (libcurl multi on the loop).
 *
 * OAuth credentials carry a refresh timer set by mcpd_oauth_refresh_at (80 %
 * of the lifetime or 60 s before expiry, whichever is earlier). A refresh
 * is shared: callers of get (for a token about to expire) and of rejected
 * (a 401) wait on the one in flight. A refused refresh (invalid_grant, a
 * revoked token) marks the credential expired: WARN log, an audit record
 * (kind "credential"), and every waiting and later call gets an error that
 * names the credential and the command that fixes it.
 *
 * Callbacks never run inside get/rejected: they are queued and delivered
 * from a zero timer ("kick").
 */
#include "credentials.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <uv.h>

#include "admin.h"
#include "admin_credentials.h"
#include "audit.h"
#include "authz.h"
#include "buf.h"
#include "crypto.h"
#include "daemon.h"
#include "error.h"
#include "limits.h"
#include "listener.h"
#include "log.h"
#include "net/http_client.h"
#include "oauth.h"
#include "store_cred.h"

struct cred;
struct mcpd_creds;

struct mcpd_credential_req {
    struct mcpd_creds *reg;
    struct cred *cr; /* NULL once delivered or for immediate answers */
    mcpd_credential_cb cb;
    void *data;
    bool cancelled, queued;
    int status;
    char why[300];
    struct mcpd_credential_req *next; /* in cr->waiters or reg->ready */
};

struct cred {
    struct mcpd_creds *reg;
    char name[MCPD_CRED_NAME_MAX + 1];
    enum mcpd_credential_kind kind;
    char provider[MCPD_CRED_NAME_MAX + 1];
    enum mcpd_cred_status status;
    int64_t expires_ms, refreshed_ms;
    char *secret;        /* static secret or access token (wiped on change) */
    char *refresh_token; /* oauth2 */
    char last_error[256];
    char grant[24]; /* how the tokens were obtained (store_cred.h) */
    bool damaged, gone;
    unsigned version;   /* bumped whenever secret changes */
    int64_t changed_ms; /* when we changed the status here (the store catches up later) */
    /* refresh */
    bool refreshing;
    struct mcpd_http_call *call;
    struct mcpd_buf body;
    int http_status;
    struct mcpd_credential_req *waiters;
    uv_timer_t timer;
    bool timer_init;
};

struct mcpd_creds {
    struct mcpd_daemon *d;
    struct cred **v;
    size_t n;
    char *store_path, *key_file;
    struct mcpd_cred_store *cs; /* threadpool only after start */
    uv_mutex_t mu;
    bool keyed;
    int64_t gen;
    uv_timer_t poll;
    bool poll_busy;
    uv_timer_t kick;
    struct mcpd_credential_req *ready, **ready_tail;
    struct mcpd_http_client *hc;
    unsigned jobs;                 /* threadpool jobs not yet completed */
    struct cb_exchange *exchanges; /* /oauth/callback requests in progress */
    unsigned handles;
    bool closing;
};

static void start_refresh(struct cred *cr);

/* ---- small helpers --------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    uv_timeval64_t tv;

    uv_gettimeofday(&tv);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static struct cred *find(struct mcpd_creds *reg, const char *name)
{
    for (size_t i = 0; reg != NULL && name != NULL && i < reg->n; i++)
        if (!reg->v[i]->gone && strcmp(reg->v[i]->name, name) == 0)
            return reg->v[i];
    return NULL;
}

static void set_secret(struct cred *cr, char **slot, char *value)
{
    mcpd_crypto_free_str(*slot);
    *slot = value;
    if (slot == &cr->secret)
        cr->version++;
}

static const struct mcpd_oauth_provider_config *provider_of(struct cred *cr)
{
    return mcpd_config_oauth_provider(cr->reg->d->cfg, cr->provider);
}

/* ---- delivering callbacks -------------------------------------------------------------------- */

static void on_kick(uv_timer_t *t)
{
    struct mcpd_creds *reg = t->data;

    while (reg->ready != NULL) {
        struct mcpd_credential_req *q = reg->ready;
        struct cred *cr;

        reg->ready = q->next;
        if (reg->ready == NULL)
            reg->ready_tail = &reg->ready;
        cr = q->status == 0 ? q->cr : NULL;
        if (!q->cancelled) {
            /* the secret is read now: a refresh in between hands out the newest */
            if (q->status == 0 && (cr == NULL || cr->gone || cr->secret == NULL))
                q->cb(MCPD_EUNAVAIL, MCPD_CRED_API_KEY, NULL, "the credential went away", q->data);
            else if (q->status == 0)
                q->cb(0, cr->kind, cr->secret, NULL, q->data);
            else
                q->cb(q->status, cr ? cr->kind : MCPD_CRED_API_KEY, NULL, q->why, q->data);
        }
        free(q);
    }
}

/* Queues q for delivery from the next loop iteration. */
static void ready(struct mcpd_credential_req *q, int status, const char *why)
{
    struct mcpd_creds *reg = q->reg;

    q->status = status;
    if (why != NULL)
        snprintf(q->why, sizeof(q->why), "%s", why);
    q->queued = true;
    q->next = NULL;
    *reg->ready_tail = q;
    reg->ready_tail = &q->next;
    if (!reg->closing)
        uv_timer_start(&reg->kick, on_kick, 0, 0);
}

static void wake_waiters(struct cred *cr, int status, const char *why)
{
    struct mcpd_credential_req *q = cr->waiters;

    cr->waiters = NULL;
    while (q != NULL) {
        struct mcpd_credential_req *next = q->next;

        ready(q, status, why);
        q = next;
    }
}

static struct mcpd_credential_req *new_req(struct mcpd_creds *reg, struct cred *cr,
                                           mcpd_credential_cb cb, void *data,
                                           struct mcpd_credential_req **out)
{
    struct mcpd_credential_req *q = calloc(1, sizeof(*q));

    if (out != NULL)
        *out = q;
    if (q == NULL)
        return NULL;
    q->reg = reg;
    q->cr = cr;
    q->cb = cb;
    q->data = data;
    return q;
}

/* The error of an unusable credential (why filled), or 0 when it can be used. */
static int unusable(struct cred *cr, const char *name, char *why, size_t cap)
{
    if (cr == NULL) {
        snprintf(why, cap, "credential \"%s\" does not exist: add it with mcpd credentials add %s",
                 name, name);
        return MCPD_ECONFIG;
    }
    if (cr->damaged) {
        snprintf(why, cap,
                 "credential \"%s\" cannot be decrypted (damaged, or the master key is wrong): "
                 "delete and add it again",
                 cr->name);
        return MCPD_EDENIED;
    }
    if (cr->kind == MCPD_CRED_OAUTH2 && cr->status == MCPD_CRED_STATUS_PENDING) {
        snprintf(why, cap,
                 "credential \"%s\" is not authorized yet: run mcpd credentials authorize %s",
                 cr->name, cr->name);
        return MCPD_EDENIED;
    }
    if (cr->kind == MCPD_CRED_OAUTH2 && cr->status == MCPD_CRED_STATUS_EXPIRED) {
        snprintf(why, cap,
                 "credential \"%s\" is expired (%s): re-authorize with mcpd credentials "
                 "authorize %s",
                 cr->name, cr->last_error[0] ? cr->last_error : "refresh failed", cr->name);
        return MCPD_EDENIED;
    }
    return 0;
}

/* ---- store jobs (threadpool) ----------------------------------------------------------------- */

enum job_op { JOB_POLL, JOB_TOKENS, JOB_STATUS, JOB_TAKE };

struct job {
    uv_work_t w;
    struct mcpd_creds *reg;
    enum job_op op;
    char name[MCPD_CRED_NAME_MAX + 1];
    char *access, *refresh, *scopes; /* JOB_TOKENS */
    const char *grant;               /* JOB_TOKENS: static string or NULL */
    int64_t expires_ms;
    enum mcpd_cred_status status; /* JOB_STATUS */
    char msg[256];
    char *state, *verifier;     /* JOB_TAKE */
    struct mcpd_cred_row *rows; /* JOB_POLL */
    size_t nrows;
    int64_t gen;
    bool changed;
    int r;
    char err[256];
    void (*done)(struct job *j);
    void *ctx;
};

static void job_work(uv_work_t *w)
{
    struct job *j = w->data;
    struct mcpd_creds *reg = j->reg;

    uv_mutex_lock(&reg->mu);
    if (reg->cs == NULL) { /* no store file yet */
        j->r = MCPD_ECONFIG;
        snprintf(j->err, sizeof(j->err), "no credential has been added yet");
        uv_mutex_unlock(&reg->mu);
        return;
    }
    switch (j->op) {
    case JOB_POLL: {
        int64_t gen = mcpd_cred_store_generation(reg->cs);

        if (gen < 0) {
            j->r = (int)gen;
            snprintf(j->err, sizeof(j->err), "cannot read the store generation");
        } else if (gen != reg->gen) {
            j->r = mcpd_cred_store_list(reg->cs, true, &j->rows, &j->nrows, &j->gen, j->err,
                                        sizeof(j->err));
            j->changed = j->r == 0;
        }
        break;
    }
    case JOB_TOKENS:
        j->r = mcpd_cred_store_set_tokens(reg->cs, j->name, j->access, j->refresh, j->expires_ms,
                                          j->scopes, j->grant, j->err, sizeof(j->err));
        break;
    case JOB_STATUS:
        j->r =
            mcpd_cred_store_set_status(reg->cs, j->name, j->status, j->msg, j->err, sizeof(j->err));
        break;
    case JOB_TAKE:
        j->r = mcpd_cred_store_pending_take(reg->cs, j->state, j->name, &j->verifier, j->err,
                                            sizeof(j->err));
        break;
    }
    /* OpenSSL keeps per-thread DRBG state: freed here, since libuv's worker threads
     * outlive the daemon (valgrind counted it as lost at exit) */
    OPENSSL_thread_stop();
    uv_mutex_unlock(&reg->mu);
}

static void maybe_free_registry(struct mcpd_creds *reg);
struct cb_exchange;
static void exchange_free(struct cb_exchange *x);

static void job_after(uv_work_t *w, int status)
{
    struct job *j = w->data;
    struct mcpd_creds *reg = j->reg;

    (void)status;
    reg->jobs--;
    if (j->done != NULL && !reg->closing)
        j->done(j);
    else if (j->ctx != NULL) /* a callback exchange cut short by shutdown */
        exchange_free(j->ctx);
    else if (j->r != 0 && j->op != JOB_POLL && j->op != JOB_TAKE)
        LOG_WARN("credentials", "credential=%s cannot update the store: %s", j->name, j->err);
    mcpd_crypto_free_str(j->access);
    mcpd_crypto_free_str(j->refresh);
    free(j->scopes);
    free(j->state);
    mcpd_crypto_free_str(j->verifier);
    mcpd_cred_rows_free(j->rows, j->nrows);
    free(j);
    if (reg->closing)
        maybe_free_registry(reg);
}

static struct job *job_new(struct mcpd_creds *reg, enum job_op op, const char *name)
{
    struct job *j = calloc(1, sizeof(*j));

    if (j == NULL)
        return NULL;
    j->reg = reg;
    j->op = op;
    j->w.data = j;
    if (name != NULL)
        snprintf(j->name, sizeof(j->name), "%s", name);
    return j;
}

static int job_queue(struct job *j)
{
    int r = uv_queue_work(j->reg->d->loop, &j->w, job_work, job_after);

    if (r == 0)
        j->reg->jobs++;
    return r;
}

static void save_tokens(struct cred *cr, const char *scopes)
{
    struct job *j = job_new(cr->reg, JOB_TOKENS, cr->name);

    if (j == NULL)
        return;
    j->access = strdup(cr->secret);
    j->refresh = cr->refresh_token ? strdup(cr->refresh_token) : NULL;
    j->scopes = scopes ? strdup(scopes) : NULL;
    j->expires_ms = cr->expires_ms;
    if (j->access == NULL || job_queue(j) != 0) {
        mcpd_crypto_free_str(j->access);
        mcpd_crypto_free_str(j->refresh);
        free(j->scopes);
        free(j);
        LOG_WARN("credentials", "credential=%s new tokens not saved (out of memory)", cr->name);
    }
}

static void save_status(struct cred *cr)
{
    struct job *j = job_new(cr->reg, JOB_STATUS, cr->name);

    if (j == NULL)
        return;
    j->status = cr->status;
    snprintf(j->msg, sizeof(j->msg), "%s", cr->last_error);
    if (job_queue(j) != 0)
        free(j);
}

/* ---- audit ----------------------------------------------------------------------------------- */

static void audit(struct mcpd_creds *reg, const struct cred *cr, const char *status,
                  const char *reason)
{
    char loc[80];
    struct mcpd_audit_record rec = {
        .kind = MCPD_AUDIT_CREDENTIAL,
        .resource = cr->name,
        .location = loc,
        .decision = "deny",
        .reason = reason,
        .status = status,
    };

    snprintf(loc, sizeof(loc), "credential:%s", cr->name);
    mcpd_authz_audit(reg->d->authz, &rec, NULL, NULL);
}

/* ---- refresh --------------------------------------------------------------------------------- */

static void on_refresh_timer(uv_timer_t *t)
{
    struct cred *cr = t->data;

    if (!cr->gone && cr->status == MCPD_CRED_STATUS_OK)
        start_refresh(cr);
}

static void schedule(struct cred *cr)
{
    int64_t at, now = now_ms();

    if (!cr->timer_init || cr->reg->closing)
        return;
    uv_timer_stop(&cr->timer);
    if (cr->kind != MCPD_CRED_OAUTH2 || cr->status != MCPD_CRED_STATUS_OK || cr->gone)
        return;
    if ((at = mcpd_oauth_refresh_at(cr->refreshed_ms, cr->expires_ms)) <= 0)
        return;
    uv_timer_start(&cr->timer, on_refresh_timer, at > now ? (uint64_t)(at - now) : 0, 0);
}

static void refresh_failed(struct cred *cr, bool refused, const char *line)
{
    char why[300];

    cr->refreshing = false;
    if (refused) {
        cr->status = MCPD_CRED_STATUS_EXPIRED;
        cr->changed_ms = now_ms();
        snprintf(cr->last_error, sizeof(cr->last_error), "refresh refused: %s", line);
        LOG_WARN("credentials",
                 "credential=%s refresh refused (%s): marked expired; run mcpd credentials "
                 "authorize %s",
                 cr->name, line, cr->name);
        audit(cr->reg, cr, "expired", cr->last_error);
        save_status(cr);
        unusable(cr, cr->name, why, sizeof(why));
        wake_waiters(cr, MCPD_EDENIED, why);
        return;
    }
    /* the endpoint could not be reached: keep the status, try again in 30 s */
    LOG_WARN("credentials", "credential=%s refresh failed: %s; retrying in 30 s", cr->name, line);
    snprintf(why, sizeof(why), "credential \"%s\" could not be refreshed: %s", cr->name, line);
    wake_waiters(cr, MCPD_EUNAVAIL, why);
    if (cr->timer_init && !cr->reg->closing)
        uv_timer_start(&cr->timer, on_refresh_timer, 30000, 0);
}

/*
 * A token answer taken into the credential (the strings move, tok keeps the
 * rest): the access token, the refresh token (when the answer has one, or
 * always with replace_refresh), the expiry, status ok.
 */
static void take_tokens(struct cred *cr, struct mcpd_oauth_token *tok, bool replace_refresh)
{
    set_secret(cr, &cr->secret, tok->access_token);
    tok->access_token = NULL;
    if (replace_refresh || tok->refresh_token != NULL) {
        set_secret(cr, &cr->refresh_token, tok->refresh_token);
        tok->refresh_token = NULL;
    }
    cr->expires_ms = tok->expires_ms;
    cr->refreshed_ms = now_ms();
    cr->status = MCPD_CRED_STATUS_OK;
    cr->last_error[0] = '\0';
}

static void on_refresh_headers(struct mcpd_http_call *call, int status, const char *ct, void *data)
{
    struct cred *cr = data;

    (void)call;
    (void)ct;
    cr->http_status = status;
}

static int on_refresh_data(struct mcpd_http_call *call, const char *buf, size_t len, void *data)
{
    struct cred *cr = data;

    (void)call;
    return mcpd_buf_append(&cr->body, buf, len) == 0 ? 0 : -1;
}

static void on_refresh_done(struct mcpd_http_call *call, int result, const char *why, void *data)
{
    struct cred *cr = data;
    struct mcpd_oauth_token tok;
    char line[256];
    int r;

    (void)call;
    cr->call = NULL;
    if (result != 0) {
        mcpd_crypto_wipe(cr->body.p, cr->body.alloc);
        mcpd_buf_dispose(&cr->body);
        refresh_failed(cr, false, why ? why : mcpd_strerror(result));
        return;
    }
    r = mcpd_oauth_parse(&tok, cr->http_status, cr->body.p ? cr->body.p : "", cr->body.len, false,
                         now_ms());
    mcpd_crypto_wipe(cr->body.p, cr->body.alloc);
    mcpd_buf_dispose(&cr->body);
    if (r != 0) {
        snprintf(line, sizeof(line), "%s%s%s", tok.error, tok.error_description[0] ? ": " : "",
                 tok.error_description);
        mcpd_oauth_token_dispose(&tok);
        /* an OAuth error answer (invalid_grant, ...) is a refusal; garbage is not */
        refresh_failed(cr, r == MCPD_EDENIED, line);
        return;
    }
    take_tokens(cr, &tok, false); /* a refresh token only when rotated */
    cr->refreshing = false;
    LOG_INFO("credentials", "credential=%s refreshed (expires in %lld s)", cr->name,
             cr->expires_ms ? (long long)(cr->expires_ms - cr->refreshed_ms) / 1000 : -1LL);
    save_tokens(cr, tok.scope);
    mcpd_oauth_token_dispose(&tok);
    schedule(cr);
    wake_waiters(cr, 0, NULL);
}

static const struct mcpd_http_call_ops refresh_ops = { on_refresh_headers, on_refresh_data,
                                                       on_refresh_done };

/* The client secret of a provider from the registry (borrowed) or NULL; *bad on a problem. */
static const char *client_secret(struct mcpd_creds *reg, const struct mcpd_oauth_provider_config *p,
                                 bool *bad)
{
    struct cred *s;

    *bad = false;
    if (p->client_secret_credential == NULL)
        return NULL;
    s = find(reg, p->client_secret_credential);
    if (s == NULL || s->damaged || s->kind == MCPD_CRED_OAUTH2 || s->secret == NULL) {
        *bad = true;
        return NULL;
    }
    return s->secret;
}

/* Starts a token request on the loop; the caller set what it waits for. 0 or a code (why). */
static int token_call(struct mcpd_creds *reg, const struct mcpd_oauth_provider_config *p,
                      enum mcpd_oauth_grant g, const char *a, const char *b, const char *c,
                      struct mcpd_http_call **call, const struct mcpd_http_call_ops *ops,
                      void *data, char *why, size_t cap)
{
    const char *hdr[4] = { "Accept: application/json",
                           "Content-Type: application/x-www-form-urlencoded", NULL, NULL };
    char *body = NULL, *auth = NULL;
    bool bad;
    const char *secret = client_secret(reg, p, &bad);
    struct mcpd_http_spec spec = { .method = "POST", .url = p->token_url };
    int r;

    if (bad) {
        snprintf(why, cap,
                 "provider '%s': client_secret_credential '%s' is missing or not an api_key",
                 p->name, p->client_secret_credential);
        return MCPD_ECONFIG;
    }
    if ((r = mcpd_oauth_request(&body, &auth, p, secret, g, a, b, c)) != 0) {
        snprintf(why, cap, "out of memory");
        return r;
    }
    hdr[2] = auth;
    spec.headers = hdr;
    spec.body = body;
    spec.body_len = strlen(body);
    spec.timeout_ms = MCPD_OAUTH_TIMEOUT_MS;
    spec.connect_timeout_ms = 10000;
    if (reg->hc == NULL)
        r = mcpd_http_client_new(&reg->hc, reg->d->loop);
    else
        r = 0;
    if (r == 0)
        r = mcpd_http_call_start(call, reg->hc, &spec, ops, data);
    mcpd_crypto_free_str(body); /* copied by the client */
    mcpd_crypto_free_str(auth);
    if (r != 0)
        snprintf(why, cap, "cannot reach the token endpoint: %s", mcpd_strerror(r));
    return r;
}

static void start_refresh(struct cred *cr)
{
    const struct mcpd_oauth_provider_config *p = provider_of(cr);
    char why[300];
    int r;

    if (cr->refreshing || cr->reg->closing)
        return;
    if (p == NULL) {
        snprintf(why, sizeof(why), "credential \"%s\": provider '%s' is not in oauth_providers",
                 cr->name, cr->provider);
        wake_waiters(cr, MCPD_ECONFIG, why);
        return;
    }
    cr->refreshing = true;
    cr->http_status = 0;
    mcpd_buf_init(&cr->body, MCPD_MAX_TOKEN_RESPONSE);
    if (cr->refresh_token != NULL)
        r = token_call(cr->reg, p, MCPD_OAUTH_REFRESH, cr->refresh_token, NULL, NULL, &cr->call,
                       &refresh_ops, cr, why, sizeof(why));
    else if (strcmp(cr->grant, "client_credentials") == 0 ||
             (p->grant != NULL && strcmp(p->grant, "client_credentials") == 0))
        r = token_call(cr->reg, p, MCPD_OAUTH_CLIENT_CREDENTIALS, NULL, NULL, NULL, &cr->call,
                       &refresh_ops, cr, why, sizeof(why));
    else {
        mcpd_buf_dispose(&cr->body);
        refresh_failed(cr, true, "no refresh token");
        return;
    }
    if (r != 0) {
        mcpd_buf_dispose(&cr->body);
        refresh_failed(cr, false, why);
    }
}

/* ---- the contract ---------------------------------------------------------------------------- */

int mcpd_credential_get(struct mcpd_daemon *d, const char *name, mcpd_credential_cb cb, void *data,
                        struct mcpd_credential_req **req)
{
    struct mcpd_creds *reg = d->creds;
    struct cred *cr = find(reg, name);
    struct mcpd_credential_req *q;
    char why[300];
    int err;

    if (req != NULL)
        *req = NULL;
    if (reg == NULL || reg->closing)
        return MCPD_ECLOSED;
    if ((q = new_req(reg, cr, cb, data, req)) == NULL)
        return MCPD_ENOMEM;
    if ((err = unusable(cr, name, why, sizeof(why))) != 0) {
        ready(q, err, why);
        return 0;
    }
    if (cr->kind == MCPD_CRED_OAUTH2 &&
        (cr->refreshing || cr->secret == NULL ||
         (cr->expires_ms > 0 &&
          mcpd_oauth_refresh_at(cr->refreshed_ms, cr->expires_ms) <= now_ms()))) {
        q->next = cr->waiters;
        cr->waiters = q;
        start_refresh(cr);
        return 0;
    }
    ready(q, 0, NULL);
    return 0;
}

int mcpd_credential_rejected(struct mcpd_daemon *d, const char *name, const char *secret,
                             mcpd_credential_cb cb, void *data, struct mcpd_credential_req **req)
{
    struct mcpd_creds *reg = d->creds;
    struct cred *cr = find(reg, name);
    struct mcpd_credential_req *q;
    char why[300];
    int err;

    if (req != NULL)
        *req = NULL;
    if (reg == NULL || reg->closing)
        return MCPD_ECLOSED;
    if ((q = new_req(reg, cr, cb, data, req)) == NULL)
        return MCPD_ENOMEM;
    if ((err = unusable(cr, name, why, sizeof(why))) != 0) {
        ready(q, err, why);
        return 0;
    }
    if (cr->kind != MCPD_CRED_OAUTH2) {
        if (cr->status != MCPD_CRED_STATUS_REJECTED) {
            cr->status = MCPD_CRED_STATUS_REJECTED;
            cr->changed_ms = now_ms();
            snprintf(cr->last_error, sizeof(cr->last_error), "rejected by an upstream (HTTP 401)");
            LOG_WARN("credentials", "credential=%s rejected by an upstream (HTTP 401)", cr->name);
            audit(reg, cr, "rejected", cr->last_error);
            save_status(cr);
        }
        snprintf(why, sizeof(why),
                 "credential \"%s\" was rejected by the upstream (HTTP 401): replace it with "
                 "mcpd credentials delete %s and add %s",
                 cr->name, cr->name, cr->name);
        ready(q, MCPD_EDENIED, why);
        return 0;
    }
    /* a newer token than the one refused exists already: use it */
    if (!cr->refreshing && cr->secret != NULL && secret != NULL &&
        strcmp(secret, cr->secret) != 0) {
        ready(q, 0, NULL);
        return 0;
    }
    q->next = cr->waiters;
    cr->waiters = q;
    start_refresh(cr);
    return 0;
}

void mcpd_credential_cancel(struct mcpd_credential_req *req)
{
    struct mcpd_credential_req **pp;

    if (req == NULL)
        return;
    if (req->queued) { /* freed by on_kick */
        req->cancelled = true;
        return;
    }
    if (req->cr != NULL) {
        for (pp = &req->cr->waiters; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == req) {
                *pp = req->next;
                free(req);
                return;
            }
        }
    }
    req->cancelled = true;
}

bool mcpd_credential_exists(struct mcpd_daemon *d, const char *name)
{
    struct mcpd_cred_store *cs = NULL;
    struct mcpd_cred_row row;
    char *path, err[256];
    bool found;

    if (d->creds != NULL)
        return find(d->creds, name) != NULL;
    /* before mcpd_daemon_start (adapters built in main.c): ask the store itself */
    if ((path = mcpd_admin_store_path(d->cfg)) == NULL)
        return false;
    found = mcpd_cred_store_open(&cs, path, NULL, false, err, sizeof(err)) == 0 &&
            mcpd_cred_store_get(cs, name, &row, err, sizeof(err)) == 0;
    if (found)
        mcpd_cred_row_dispose(&row);
    mcpd_cred_store_close(cs);
    free(path);
    return found;
}

const char *mcpd_credential_peek(struct mcpd_daemon *d, const char *name)
{
    struct cred *cr = find(d->creds, name);
    char why[8];

    if (cr == NULL || unusable(cr, name, why, sizeof(why)) != 0)
        return NULL;
    if (cr->kind == MCPD_CRED_OAUTH2 && cr->expires_ms > 0 && cr->expires_ms <= now_ms())
        return NULL;
    return cr->secret;
}

/* ---- loading and merging --------------------------------------------------------------------- */

static struct cred *cred_new(struct mcpd_creds *reg, const char *name)
{
    struct cred *cr = calloc(1, sizeof(*cr)), **v;

    if (cr == NULL || (v = realloc(reg->v, (reg->n + 1) * sizeof(*v))) == NULL) {
        free(cr);
        return NULL;
    }
    reg->v = v;
    reg->v[reg->n++] = cr;
    cr->reg = reg;
    snprintf(cr->name, sizeof(cr->name), "%s", name);
    if (uv_timer_init(reg->d->loop, &cr->timer) == 0) {
        cr->timer_init = true;
        cr->timer.data = cr;
        reg->handles++;
    }
    return cr;
}

/* Takes the row's values (its secrets are moved out) unless a refresh of ours is newer. */
static void merge_row(struct mcpd_creds *reg, struct mcpd_cred_row *row)
{
    struct cred *cr = find(reg, row->name);

    if (cr == NULL && (cr = cred_new(reg, row->name)) == NULL)
        return;
    cr->kind = row->kind;
    snprintf(cr->provider, sizeof(cr->provider), "%s", row->provider);
    cr->damaged = row->damaged;
    snprintf(cr->grant, sizeof(cr->grant), "%s", row->grant);
    if (cr->refreshing || (cr->kind == MCPD_CRED_OAUTH2 && row->refreshed_ms < cr->refreshed_ms))
        return; /* ours is newer; the store catches up with our write */
    /* a status we set is kept until the store has it (a poll may read the row before our write) */
    if (row->updated_ms >= cr->changed_ms) {
        cr->status = row->status;
        snprintf(cr->last_error, sizeof(cr->last_error), "%s", row->last_error);
    }
    cr->expires_ms = row->expires_ms;
    cr->refreshed_ms = row->refreshed_ms;
    {
        char *s = row->kind == MCPD_CRED_OAUTH2 ? row->access_token : row->secret;

        if (s == NULL || cr->secret == NULL || strcmp(s, cr->secret) != 0) {
            set_secret(cr, &cr->secret, s);
            if (row->kind == MCPD_CRED_OAUTH2)
                row->access_token = NULL;
            else
                row->secret = NULL;
        }
    }
    set_secret(cr, &cr->refresh_token, row->refresh_token);
    row->refresh_token = NULL;
    schedule(cr);
}

static void merge(struct mcpd_creds *reg, struct mcpd_cred_row *rows, size_t n)
{
    for (size_t i = 0; i < reg->n; i++) {
        struct cred *cr = reg->v[i];
        bool present = false;

        for (size_t k = 0; k < n && !present; k++)
            present = strcmp(rows[k].name, cr->name) == 0;
        if (!present && !cr->gone) {
            char why[300];

            cr->gone = true;
            if (cr->timer_init)
                uv_timer_stop(&cr->timer);
            set_secret(cr, &cr->secret, NULL);
            set_secret(cr, &cr->refresh_token, NULL);
            snprintf(why, sizeof(why), "credential \"%s\" was deleted", cr->name);
            wake_waiters(cr, MCPD_ECONFIG, why);
        }
    }
    for (size_t k = 0; k < n; k++)
        merge_row(reg, &rows[k]);
}

/* Tries to load the key once credentials exist (a keyless start had none). */
static bool ensure_key(struct mcpd_creds *reg, char *err, size_t errcap)
{
    struct mcpd_cred_store *cs;

    if (reg->keyed)
        return true;
    if (mcpd_cred_store_open(&cs, reg->store_path, reg->key_file, false, err, errcap) != 0)
        return false;
    mcpd_cred_store_close(reg->cs);
    reg->cs = cs;
    reg->keyed = true;
    return true;
}

static void on_poll_done(struct job *j)
{
    struct mcpd_creds *reg = j->reg;

    reg->poll_busy = false;
    if (j->r != 0) {
        LOG_WARN("credentials", "cannot re-read the credentials: %s", j->err);
        return;
    }
    if (!j->changed)
        return;
    reg->gen = j->gen;
    merge(reg, j->rows, j->nrows);
    LOG_DEBUG("credentials", "credentials re-read (generation %lld)", (long long)j->gen);
}

static void on_poll(uv_timer_t *t)
{
    struct mcpd_creds *reg = t->data;
    struct job *j;

    if (reg->poll_busy || reg->closing)
        return;
    if (!reg->keyed) {
        char err[256];

        /* under the mutex: no job is using the connection we replace */
        if (reg->jobs > 0)
            return;
        if (access(reg->store_path, F_OK) != 0 || !ensure_key(reg, err, sizeof(err)))
            return; /* still no store or no key: nothing to read or decrypt with */
    }
    if ((j = job_new(reg, JOB_POLL, NULL)) == NULL)
        return;
    j->done = on_poll_done;
    reg->poll_busy = true;
    if (job_queue(j) != 0) {
        reg->poll_busy = false;
        free(j);
    }
}

/* ---- /oauth/callback ------------------------------------------------------------------------- */

struct cb_exchange {
    struct mcpd_creds *reg;
    struct cb_exchange *prev, *next; /* reg->exchanges */
    struct mcpd_http_conn *conn;     /* NULL once the client went away */
    struct cred *cr;
    struct mcpd_http_call *call;
    struct mcpd_buf body;
    int http_status;
    char *code, *redirect;
};

static void respond(struct cb_exchange *x, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void respond(struct cb_exchange *x, int status, const char *fmt, ...)
{
    char msg[600], html[900];
    va_list ap;
    int n;

    if (x->conn == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* msg holds names and OAuth error codes made printable; escape for HTML anyway */
    n = 0;
    for (const char *p = msg; *p && n < (int)sizeof(html) - 8; p++) {
        const char *e = *p == '<'   ? "&lt;"
                        : *p == '>' ? "&gt;"
                        : *p == '&' ? "&amp;"
                        : *p == '"' ? "&quot;"
                                    : NULL;

        if (e != NULL) {
            memcpy(html + n, e, strlen(e));
            n += (int)strlen(e);
        } else {
            html[n++] = *p;
        }
    }
    html[n] = '\0';
    {
        char page[1200];
        int len =
            snprintf(page, sizeof(page), "<!doctype html><title>mcpd</title><p>%s</p>\n", html);

        mcpd_http_respond(x->conn, status, "text/html; charset=utf-8",
                          "Cache-Control: no-store\r\n", page, (size_t)len);
    }
    x->conn = NULL;
}

static void exchange_free(struct cb_exchange *x)
{
    if (x->conn != NULL)
        mcpd_http_conn_on_abort(x->conn, NULL, NULL);
    if (x->prev != NULL)
        x->prev->next = x->next;
    else if (x->reg->exchanges == x)
        x->reg->exchanges = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    mcpd_crypto_wipe(x->body.p, x->body.alloc);
    mcpd_buf_dispose(&x->body);
    mcpd_crypto_free_str(x->code);
    free(x->redirect);
    free(x);
}

static void on_cb_abort(struct mcpd_http_conn *c, void *data)
{
    struct cb_exchange *x = data;

    (void)c;
    x->conn = NULL;
}

static void on_tokens_saved(struct job *j)
{
    struct cb_exchange *x = j->ctx;

    if (j->r != 0)
        respond(x, 500, "the tokens could not be saved: %s", j->err);
    else
        respond(x, 200, "credential \"%s\" is authorized. You can close this window.", j->name);
    exchange_free(x);
}

static void on_cb_headers(struct mcpd_http_call *call, int status, const char *ct, void *data)
{
    struct cb_exchange *x = data;

    (void)call;
    (void)ct;
    x->http_status = status;
}

static int on_cb_data(struct mcpd_http_call *call, const char *buf, size_t len, void *data)
{
    struct cb_exchange *x = data;

    (void)call;
    return mcpd_buf_append(&x->body, buf, len) == 0 ? 0 : -1;
}

static void on_cb_done(struct mcpd_http_call *call, int result, const char *why, void *data)
{
    struct cb_exchange *x = data;
    struct cred *cr = x->cr;
    struct mcpd_oauth_token tok;
    struct job *j;
    int r;

    (void)call;
    x->call = NULL;
    if (result != 0) {
        respond(x, 502, "the token endpoint could not be reached: %s", why);
        exchange_free(x);
        return;
    }
    r = mcpd_oauth_parse(&tok, x->http_status, x->body.p ? x->body.p : "", x->body.len, false,
                         now_ms());
    if (r != 0 || cr->gone) {
        char line[256];

        snprintf(line, sizeof(line), "%s%s%s", cr->gone ? "the credential was deleted" : tok.error,
                 tok.error_description[0] ? ": " : "", tok.error_description);
        mcpd_oauth_token_dispose(&tok);
        snprintf(cr->last_error, sizeof(cr->last_error), "authorization failed: %s", line);
        LOG_WARN("credentials", "credential=%s authorization code exchange failed: %s", cr->name,
                 line);
        if (!cr->gone)
            save_status(cr);
        respond(x, 400, "the authorization failed: %s", line);
        exchange_free(x);
        return;
    }
    take_tokens(cr, &tok, true);
    LOG_INFO("credentials", "credential=%s authorized through /oauth/callback", cr->name);
    schedule(cr);
    wake_waiters(cr, 0, NULL);
    /* answer once the tokens are on disk: the waiting CLI then sees them */
    if ((j = job_new(cr->reg, JOB_TOKENS, cr->name)) == NULL ||
        (j->access = strdup(cr->secret)) == NULL) {
        free(j);
        mcpd_oauth_token_dispose(&tok);
        respond(x, 500, "out of memory");
        exchange_free(x);
        return;
    }
    j->refresh = cr->refresh_token ? strdup(cr->refresh_token) : NULL;
    j->scopes = tok.scope ? strdup(tok.scope) : NULL;
    j->expires_ms = cr->expires_ms;
    j->grant = "code";
    snprintf(cr->grant, sizeof(cr->grant), "code");
    j->done = on_tokens_saved;
    j->ctx = x;
    mcpd_oauth_token_dispose(&tok);
    if (job_queue(j) != 0) {
        mcpd_crypto_free_str(j->access);
        mcpd_crypto_free_str(j->refresh);
        free(j->scopes);
        free(j);
        respond(x, 500, "the tokens could not be saved");
        exchange_free(x);
    }
}

static const struct mcpd_http_call_ops cb_ops = { on_cb_headers, on_cb_data, on_cb_done };

static void on_state_taken(struct job *j)
{
    struct cb_exchange *x = j->ctx;
    struct mcpd_creds *reg = x->reg;
    const struct mcpd_oauth_provider_config *p;
    char why[300];

    if (j->r != 0) {
        LOG_WARN("credentials", "/oauth/callback refused: %s", j->err);
        respond(x, 400, "authorization refused: %s", j->err);
        exchange_free(x);
        return;
    }
    x->cr = find(reg, j->name);
    if (x->cr == NULL || x->cr->kind != MCPD_CRED_OAUTH2 || (p = provider_of(x->cr)) == NULL ||
        (x->redirect = mcpd_oauth_redirect_uri(reg->d->cfg, p)) == NULL) {
        respond(x, 400, "credential \"%s\" is unknown here or has no configured provider", j->name);
        x->cr = NULL;
        exchange_free(x);
        return;
    }
    mcpd_buf_init(&x->body, MCPD_MAX_TOKEN_RESPONSE);
    if (token_call(reg, p, MCPD_OAUTH_CODE, x->code, j->verifier, x->redirect, &x->call, &cb_ops, x,
                   why, sizeof(why)) != 0) {
        respond(x, 502, "%s", why);
        exchange_free(x);
    }
}

static void on_callback(struct mcpd_http_conn *c, struct mcpd_http_request *req, void *data)
{
    struct mcpd_creds *reg = data;
    struct cb_exchange *x = calloc(1, sizeof(*x));
    char *state = NULL, *error = NULL;
    struct job *j;

    if (x == NULL) {
        mcpd_http_respond(c, 500, "text/plain", NULL, "out of memory\n", 14);
        return;
    }
    x->reg = reg;
    x->conn = c;
    x->next = reg->exchanges;
    if (reg->exchanges != NULL)
        reg->exchanges->prev = x;
    reg->exchanges = x;
    if (strcmp(req->method, "GET") != 0) {
        respond(x, 405, "GET only");
        exchange_free(x);
        return;
    }
    state = mcpd_oauth_query_param(req->query, "state");
    error = mcpd_oauth_query_param(req->query, "error");
    x->code = mcpd_oauth_query_param(req->query, "code");
    if (state == NULL || strlen(state) > 128 || (x->code == NULL && error == NULL)) {
        respond(x, 400, "a callback needs code and state");
        goto out;
    }
    if ((j = job_new(reg, JOB_TAKE, NULL)) == NULL) {
        respond(x, 500, "out of memory");
        goto out;
    }
    /* the state is single use even when the server reports an error */
    j->state = state;
    state = NULL;
    j->ctx = x;
    j->done = on_state_taken;
    if (error != NULL) {
        char shown[64];
        size_t k = 0;

        for (; error[k] && k < sizeof(shown) - 1; k++)
            shown[k] = error[k] > 0x20 && error[k] < 0x7f ? error[k] : '?';
        shown[k] = '\0';
        j->done = NULL;
        j->ctx = NULL;
        respond(x, 400, "the authorization server answered: %s", shown);
        exchange_free(x);
        x = NULL;
    }
    if (x != NULL)
        mcpd_http_conn_on_abort(c, on_cb_abort, x);
    if (job_queue(j) != 0) {
        free(j->state);
        free(j);
        if (x != NULL)
            respond(x, 500, "cannot queue the request");
        goto out;
    }
    free(error);
    return;
out:
    free(state);
    free(error);
    if (x != NULL)
        exchange_free(x);
}

/* ---- start and close ------------------------------------------------------------------------- */

static bool serves_http(struct mcpd_daemon *d)
{
    for (struct mcpd_transport *tp = d->transports; tp != NULL; tp = tp->next)
        if (strcmp(tp->ops->name, "stdio") != 0)
            return d->cfg->listen_host != NULL;
    return false;
}

/* A server naming a credential that does not exist is worth a warning (it may come later). */
static void warn_missing(struct mcpd_creds *reg)
{
    struct mcpd_daemon *d = reg->d;

    for (size_t i = 0; i < d->cfg->nservers; i++) {
        const char *c = d->cfg->servers[i].credential;

        if (c != NULL && find(reg, c) == NULL)
            LOG_WARN("credentials",
                     "server %s: credential \"%s\" does not exist (yet): add it with mcpd "
                     "credentials add %s",
                     d->cfg->servers[i].name, c, c);
    }
}

int mcpd__credentials_start(struct mcpd_daemon *d)
{
    struct mcpd_creds *reg = calloc(1, sizeof(*reg));
    struct mcpd_cred_row *rows = NULL;
    size_t n = 0;
    char err[512];
    int r;

    if (reg == NULL)
        return MCPD_ENOMEM;
    d->creds = reg;
    reg->d = d;
    reg->ready_tail = &reg->ready;
    uv_mutex_init(&reg->mu);
    uv_timer_init(d->loop, &reg->poll);
    uv_timer_init(d->loop, &reg->kick);
    reg->poll.data = reg->kick.data = reg;
    reg->handles = 2;
    if ((reg->store_path = mcpd_admin_store_path(d->cfg)) == NULL ||
        (reg->key_file = mcpd_admin_key_file(d->cfg, reg->store_path)) == NULL)
        return MCPD_ENOMEM;
    /* reg->hc is made by the first token request: initialising libcurl (and with it
     * OpenSSL's tables) costs ~2 MiB of RSS that a daemon without OAuth never needs */
    uv_timer_start(&reg->poll, on_poll, MCPD_CRED_POLL_MS, MCPD_CRED_POLL_MS);
    if (serves_http(d) && (r = mcpd_listener_route(d, "/oauth/callback", on_callback, reg)) != 0)
        return r;
    /* no store file: no credentials, and none created here (the CLI creates it; the poll
     * notices) */
    if (access(reg->store_path, F_OK) != 0 && errno == ENOENT) {
        warn_missing(reg);
        return 0;
    }
    /* keyless first: a store without credentials needs no master key */
    if ((r = mcpd_cred_store_open(&reg->cs, reg->store_path, NULL, false, err, sizeof(err))) != 0 ||
        (r = mcpd_cred_store_list(reg->cs, false, &rows, &n, &reg->gen, err, sizeof(err))) != 0) {
        LOG_ERROR("credentials", "%s", err);
        return r;
    }
    mcpd_cred_rows_free(rows, n);
    rows = NULL;
    if (n > 0) {
        if (!ensure_key(reg, err, sizeof(err))) {
            LOG_ERROR("credentials", "%s", err);
            return MCPD_ECONFIG;
        }
        if ((r = mcpd_cred_store_list(reg->cs, true, &rows, &n, &reg->gen, err, sizeof(err))) !=
            0) {
            LOG_ERROR("credentials", "%s", err);
            return r;
        }
        merge(reg, rows, n);
        mcpd_cred_rows_free(rows, n);
        for (size_t i = 0; i < reg->n; i++)
            if (reg->v[i]->damaged)
                LOG_WARN("credentials",
                         "credential=%s cannot be decrypted (damaged, or another master key)",
                         reg->v[i]->name);
        LOG_INFO("credentials", "%zu credential(s) loaded", reg->n);
    }
    warn_missing(reg);
    return 0;
}

static void maybe_free_registry(struct mcpd_creds *reg)
{
    if (reg->jobs > 0 || reg->handles > 0)
        return;
    for (size_t i = 0; i < reg->n; i++) {
        set_secret(reg->v[i], &reg->v[i]->secret, NULL);
        set_secret(reg->v[i], &reg->v[i]->refresh_token, NULL);
        free(reg->v[i]);
    }
    free(reg->v);
    mcpd_cred_store_close(reg->cs);
    uv_mutex_destroy(&reg->mu);
    free(reg->store_path);
    free(reg->key_file);
    free(reg);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct mcpd_creds *reg = h->data;

    reg->handles--;
    maybe_free_registry(reg);
}

static void on_cred_timer_closed(uv_handle_t *h)
{
    struct cred *cr = h->data;
    struct mcpd_creds *reg = cr->reg;

    reg->handles--;
    maybe_free_registry(reg);
}

void mcpd__credentials_close(struct mcpd_daemon *d)
{
    struct mcpd_creds *reg = d->creds;

    if (reg == NULL)
        return;
    d->creds = NULL;
    reg->closing = true;
    for (size_t i = 0; i < reg->n; i++) {
        struct cred *cr = reg->v[i];
        struct mcpd_credential_req *q = cr->waiters;

        if (cr->call != NULL)
            mcpd_http_call_cancel(cr->call);
        cr->call = NULL;
        mcpd_crypto_wipe(cr->body.p, cr->body.alloc);
        mcpd_buf_dispose(&cr->body);
        while (q != NULL) { /* nobody is told any more: the daemon is going away */
            struct mcpd_credential_req *next = q->next;

            free(q);
            q = next;
        }
        cr->waiters = NULL;
        if (cr->timer_init)
            uv_close((uv_handle_t *)&cr->timer, on_cred_timer_closed);
    }
    /* callbacks waiting for the token endpoint end here; those in a store job end with it */
    for (struct cb_exchange *x = reg->exchanges, *next; x != NULL; x = next) {
        next = x->next;
        if (x->call == NULL)
            continue;
        mcpd_http_call_cancel(x->call);
        x->call = NULL;
        respond(x, 503, "mcpd is shutting down");
        exchange_free(x);
    }
    while (reg->ready != NULL) {
        struct mcpd_credential_req *q = reg->ready;

        reg->ready = q->next;
        free(q);
    }
    if (reg->hc != NULL)
        mcpd_http_client_close(reg->hc);
    reg->hc = NULL;
    uv_close((uv_handle_t *)&reg->poll, on_handle_closed);
    uv_close((uv_handle_t *)&reg->kick, on_handle_closed);
}
