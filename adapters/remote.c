/*
 * remote.c - upstream adapter for remote MCP servers over HTTP: streamable
 * HTTP (2025-03-26 and later) and legacy HTTP+SSE (2024-11-05), on libcurl
 * driven by the daemon's loop (mcpd/net/http_client.c).
 *
 * Streamable HTTP: every message is a POST; the answer is JSON or an SSE
 * stream (events parsed by mcpd/net/sse_parser.c). The session id from the
 * initialize answer goes on every later request, with MCP-Protocol-Version.
 * After notifications/initialized a GET stream is opened for the server's
 * own messages (405 is fine). A POST stream that ends before its answer is
 * resumed with GET + Last-Event-ID. An expired session (404) is
 * re-initialised here, invisibly to the core: the saved initialize is
 * replayed, its answer kept to ourselves, and the failed message sent again.
 * On close the session is ended with DELETE.
 *
 * Legacy HTTP+SSE: GET opens the stream, whose "endpoint" event names the
 * URL for POSTs (same origin only); everything else arrives on the stream.
 * With transport auto, an initialize answered 400/404/405 falls back to it
 * (unless the 400 is a refusal naming 2026-07-28: the core reads that).
 *
 * 2026-07-28 (up->modern): requests only, each a POST with its mirrored
 * headers and no session; a cancellation closes the request's stream.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "adapters.h"
#include "mcpd/credentials.h"
#include "mcpd/crypto.h"
#include "mcpd/daemon.h"
#include "mcpd/error.h"
#include "mcpd/jsonrpc.h"
#include "mcpd/limits.h"
#include "mcpd/log.h"
#include "mcpd/net/http_client.h"
#include "mcpd/net/sse_parser.h"
#include "mcpd/session.h"

enum mode { MODE_STREAMABLE, MODE_SSE };

struct remote;

/* One HTTP exchange: a POST (answer JSON or SSE), the GET stream, a resume or DELETE. */
struct xfer {
    struct remote *r;
    struct xfer *prev, *next;
    struct mcpd_http_call *call;
    struct mcpd_buf body; /* JSON answer */
    struct mcpd_sse_parser sse;
    char *sent; /* the message POSTed (for errors, retries) */
    size_t sent_len;
    int status;
    bool is_sse, is_get, is_init, is_replay, is_delete, answered;
    bool is_note;      /* notifications/initialized: later messages wait for it */
    bool busy;         /* delivering what it carries: it may not be freed now */
    bool doomed;       /* cancelled while busy: ended (and freed) once curl lets go */
    bool cred_retried; /* already sent again after a 401 with a refreshed credential */
    char *token;       /* the credential secret this request carried (to report a 401) */
    json_t *req_id;    /* id of the request POSTed, or NULL */
    char **extra;      /* 2026-07-28: Mcp-Method, Mcp-Name, Mcp-Param-* lines, or NULL */
    char last_id[256]; /* the last SSE event id of this stream (resumption) */
    unsigned retry_ms; /* this stream's retry field */
};

/* A stream resumption waiting for its retry delay. */
struct resume {
    uv_timer_t timer;
    struct remote *r;
    struct resume *next;
    json_t *req_id;
    char last_id[256];
};

struct remote {
    struct mcpd_upstream up; /* first: the core casts */
    struct mcpd_http_client *hc;
    enum mode mode;
    struct xfer *xfers;
    struct xfer *stream; /* GET stream (streamable) or the SSE stream (legacy) */
    char *session_id;
    char *post_url; /* legacy: from the endpoint event */
    char *init_msg, *initialized_msg;
    size_t init_len, initialized_len;
    unsigned nsent;        /* messages sent in this attempt */
    char get_last_id[256]; /* the GET stream's last event id */
    unsigned retry_ms;     /* the GET stream's retry field */
    unsigned stream_failures;
    bool running, stopping, reiniting, fallen_back;
    bool holding;         /* notifications/initialized in flight: later messages wait */
    struct mcpd_buf held; /* messages waiting (holding, re-initialisation), NUL-separated */
    struct resume *resumes;
    uv_timer_t timer; /* GET stream reconnect */
    /* servers.<name>.credential */
    struct cred_wait *cred_waits; /* credential requests in flight */
    bool next_retried;            /* the next post() is the retry after a 401 */
    bool retry_is_init;           /* ... of the initialize */
};

/* A request waiting for a credential: the start (sent NULL) or a retry after a 401. */
struct cred_wait {
    struct remote *r;
    struct cred_wait *next;
    struct mcpd_credential_req *req;
    char *sent;
    size_t sent_len;
    bool is_init;
    bool stream; /* the GET stream was refused with 401: reopen it with the new token */
};

static void xfer_free(struct xfer *x);
static const struct mcpd_http_call_ops xfer_ops;
static int post(struct remote *r, const char *data, size_t len, bool replay);
static void open_stream(struct remote *r);
static void disconnect(struct remote *r, const char *why);
static void finish(struct remote *r, const char *why);
static void on_timer_tick(uv_timer_t *t);

/* ---- helpers -------------------------------------------------------------------- */

/* The request id of a serialized message, or NULL for notifications and responses. */
static json_t *request_id(const char *data, size_t len)
{
    json_t *root = json_loadb(data, len, 0, NULL), *id = NULL;
    if (json_is_object(root) && json_object_get(root, "method"))
        id = json_incref(json_object_get(root, "id"));
    json_decref(root);
    return id;
}

/* An error answer for a request that the upstream could not take. */
static void answer_error(struct remote *r, json_t *id, const char *why)
{
    json_t *e = mcpd_jsonrpc_error_new(id, MCPD_RPC_SERVER_ERROR, why, NULL);
    char *s = e ? json_dumps(e, JSON_COMPACT) : NULL;
    if (s)
        mcpd_upstream_on_message(&r->up, s, strlen(s));
    free(s);
    json_decref(e);
}

static void deliver(struct remote *r, struct xfer *x, const char *data, size_t len)
{
    LOG_TRACE("upstream", "upstream=%s <- (%s%s) %.200s", r->up.name,
              x && x->is_get ? "GET" : "POST", x && x->is_sse ? " sse" : "", data);
    if (x && x->is_replay) { /* the answer to our own replayed initialize */
        x->answered = true;
        return;
    }
    if (x && x->req_id && !x->answered) {
        json_t *root = json_loadb(data, len, 0, NULL);
        if (json_is_object(root) && !json_object_get(root, "method") &&
            json_equal(json_object_get(root, "id"), x->req_id))
            x->answered = true;
        json_decref(root);
    }
    mcpd_upstream_on_message(&r->up, data, len);
}

/* ---- 2026-07-28: the headers that mirror the body --------------------------------- */

static void free_lines(char **h)
{
    for (size_t i = 0; h && h[i]; i++)
        free(h[i]);
    free(h);
}

/* A header value as SEP-2243 sends it: literal when plain ASCII, else =?base64?...?=. */
static char *header_value(const char *v)
{
    size_t n = strlen(v);
    bool plain = n > 0 && v[0] != ' ' && v[n - 1] != ' ' && strncmp(v, "=?base64?", 9) != 0;
    char *out;

    for (size_t i = 0; plain && i < n; i++)
        plain = (unsigned char)v[i] >= 0x20 && (unsigned char)v[i] < 0x7f;
    if (n > MCPD_MAX_HEADER_BYTES / 4)
        return NULL; /* the request fails: no server takes a header that long */
    if (plain)
        return strdup(v);
    if ((out = malloc(4 * ((n + 2) / 3) + 12)) == NULL)
        return NULL;
    memcpy(out, "=?base64?", 9);
    n = 9 + (size_t)EVP_EncodeBlock((unsigned char *)out + 9, (const unsigned char *)v, (int)n);
    memcpy(out + n, "?=", 3);
    return out;
}

/* An RFC 9110 token of at most 100 bytes: what may follow "Mcp-Param-". */
static bool header_token(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 100 &&
           strspn(s, "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == n;
}

static bool add_line(char ***h, size_t *n, const char *name, const char *value)
{
    char *v = header_value(value), **grown;

    if (v == NULL || (grown = realloc(*h, (*n + 2) * sizeof(**h))) == NULL) {
        free(v);
        return false;
    }
    *h = grown;
    if (asprintf(&grown[*n], "%s: %s", name, v) < 0) {
        free(v);
        return false;
    }
    free(v);
    grown[++*n] = NULL;
    return true;
}

/* The upstream's own tool named `name` (its inputSchema says what to mirror), or NULL. */
static json_t *own_tool(struct remote *r, const char *name)
{
    size_t i;
    json_t *t;

    json_array_foreach (mcpd_upstream_tools(&r->up), i, t) {
        const char *n = json_string_value(json_object_get(t, "name"));
        if (n && strcmp(n, name) == 0)
            return t;
    }
    return NULL;
}

/*
 * Mcp-Method, Mcp-Name (tools/call, prompts/get: params.name; resources/read:
 * params.uri) and, for a tools/call, Mcp-Param-<H> for each argument whose
 * property the tool's inputSchema marks "x-mcp-header": "<H>" (strings as
 * they are, numbers and booleans in their JSON spelling). NULL-terminated;
 * NULL when the message is not a request or out of memory.
 */
static char **modern_headers(struct remote *r, json_t *root)
{
    const char *method = json_string_value(json_object_get(root, "method")), *key;
    json_t *params = json_object_get(root, "params"), *prop, *tool;
    const char *name = NULL;
    char **h = calloc(1, sizeof(*h)), hn[160];
    size_t n = 0;
    bool ok;

    if (h == NULL || method == NULL || json_object_get(root, "id") == NULL) {
        free(h);
        return NULL;
    }
    if (strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0)
        name = json_string_value(json_object_get(params, "name"));
    else if (strcmp(method, "resources/read") == 0)
        name = json_string_value(json_object_get(params, "uri"));
    ok = add_line(&h, &n, "Mcp-Method", method) &&
         (name == NULL || add_line(&h, &n, "Mcp-Name", name));
    tool = ok && name && strcmp(method, "tools/call") == 0 ? own_tool(r, name) : NULL;
    json_object_foreach (json_object_get(json_object_get(tool, "inputSchema"), "properties"), key,
                         prop) {
        const char *suffix = json_string_value(json_object_get(prop, "x-mcp-header"));
        json_t *v = json_object_get(json_object_get(params, "arguments"), key);
        char *text;

        if (!ok || suffix == NULL || v == NULL || !header_token(suffix))
            continue; /* (a suffix that is no header name: the server rejects the tool) */
        if (json_is_string(v))
            text = strdup(json_string_value(v));
        else if (json_is_number(v) || json_is_boolean(v))
            text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        else
            continue;
        snprintf(hn, sizeof(hn), "Mcp-Param-%s", suffix);
        ok = text != NULL && add_line(&h, &n, hn, text);
        free(text);
    }
    if (!ok) {
        free_lines(h);
        return NULL;
    }
    return h;
}

/* Header lines for a request; returns a NULL-terminated array (free each and it). */
static char **build_headers(struct remote *r, bool post_body, const char *last_event_id,
                            const char *token, char *const *extra)
{
    const struct mcpd_server_config *cfg = r->up.cfg;
    size_t nextra = 0;
    char **h;
    size_t n = 0;

    while (extra && extra[nextra])
        nextra++;
    if ((h = calloc(cfg->nheaders + 7 + nextra, sizeof(*h))) == NULL)
        return NULL;
    h[n++] = strdup(post_body ? "Accept: application/json, text/event-stream"
                              : "Accept: text/event-stream");
    if (post_body)
        h[n++] = strdup("Content-Type: application/json");
    if (r->mode == MODE_STREAMABLE && r->session_id &&
        asprintf(&h[n], "Mcp-Session-Id: %s", r->session_id) > 0)
        n++;
    if (r->mode == MODE_STREAMABLE && (r->up.modern || r->up.protocol_version[0]) &&
        asprintf(&h[n], "MCP-Protocol-Version: %s",
                 r->up.modern ? MCPD_MODERN_VERSION : r->up.protocol_version) > 0)
        n++;
    for (size_t i = 0; i < nextra; i++)
        if ((h[n] = strdup(extra[i])) != NULL)
            n++;
    if (last_event_id && last_event_id[0] &&
        asprintf(&h[n], "Last-Event-ID: %s", last_event_id) > 0)
        n++;
    for (size_t i = 0; i < cfg->nheaders; i++)
        if (asprintf(&h[n], "%s: %s", cfg->headers[i].key, cfg->headers[i].value) > 0)
            n++;
    if (token != NULL && asprintf(&h[n], "Authorization: Bearer %s", token) > 0)
        n++;
    return h;
}

static void free_headers(char **h)
{
    for (size_t i = 0; h != NULL && h[i] != NULL; i++) /* may hold a credential */
        mcpd_crypto_wipe(h[i], strlen(h[i]));
    for (size_t i = 0; h && h[i]; i++)
        free(h[i]);
    free(h);
}

/* The endpoint of a legacy server, resolved against the SSE URL, same origin only. */
static char *resolve_endpoint(const char *base, const char *ep)
{
    const char *scheme_end = strstr(base, "://"), *path;
    size_t origin_len;
    char *out;
    if (scheme_end == NULL)
        return NULL;
    path = strchr(scheme_end + 3, '/');
    origin_len = path ? (size_t)(path - base) : strlen(base);
    if (strncmp(ep, "http://", 7) == 0 || strncmp(ep, "https://", 8) == 0) {
        if (strncmp(ep, base, origin_len) != 0 || (ep[origin_len] != '/' && ep[origin_len] != '\0'))
            return NULL; /* another origin: refused */
        return strdup(ep);
    }
    if (ep[0] == '/') {
        if (asprintf(&out, "%.*s%s", (int)origin_len, base, ep) < 0)
            return NULL;
        return out;
    }
    /* relative to the directory of the SSE URL */
    {
        const char *q = strchr(base, '?'), *slash = NULL;
        for (const char *p = base + origin_len; p < (q ? q : base + strlen(base)); p++)
            if (*p == '/')
                slash = p;
        size_t keep = slash ? (size_t)(slash - base + 1) : origin_len;
        if (asprintf(&out, "%.*s%s%s", (int)keep, base, slash ? "" : "/", ep) < 0)
            return NULL;
        return out;
    }
}

/* ---- SSE events ----------------------------------------------------------------------- */

static void on_event(void *arg, const char *event, const char *id, const char *data, size_t len)
{
    struct xfer *x = arg;
    struct remote *r = x->r;

    if (x->doomed)
        return; /* cancelled while its earlier events were delivered */

    if (id[0]) {
        snprintf(x->last_id, sizeof(x->last_id), "%s", id);
        if (x == r->stream)
            snprintf(r->get_last_id, sizeof(r->get_last_id), "%s", id);
    }
    if (r->mode == MODE_SSE && x == r->stream && strcmp(event, "endpoint") == 0) {
        char ep[2048];
        snprintf(ep, sizeof(ep), "%.*s", (int)len, data);
        free(r->post_url);
        r->post_url = resolve_endpoint(r->up.cfg->url, ep);
        if (r->post_url == NULL) {
            disconnect(r, "the endpoint event names another origin");
            return;
        }
        if (r->fallen_back && r->init_msg) { /* the core's initialize is waiting: resend it */
            r->nsent = 0;
            post(r, r->init_msg, r->init_len, false);
        } else {
            mcpd_upstream_on_connected(&r->up);
        }
        return;
    }
    if (len == 0 || strcmp(event, "message") != 0)
        return; /* priming events, unknown events */
    deliver(r, x, data, len);
}

static void on_retry(void *arg, unsigned ms)
{
    struct xfer *x = arg;
    x->retry_ms = ms > 60000 ? 60000 : ms;
    if (x == x->r->stream)
        x->r->retry_ms = x->retry_ms;
}

/* ---- transfers ---------------------------------------------------------------------- */

static void on_headers(struct mcpd_http_call *call, int status, const char *ctype, void *data)
{
    struct xfer *x = data;
    struct remote *r = x->r;
    const char *sid;

    x->status = status;
    x->is_sse = strncasecmp(ctype, "text/event-stream", 17) == 0;
    if (x->is_sse)
        mcpd_sse_parser_init(&x->sse, MCPD_MAX_UPSTREAM_MSG, on_event, on_retry, x);
    if (r->mode == MODE_STREAMABLE && !r->up.modern && (x->is_init || x->is_replay) &&
        status / 100 == 2 && (sid = mcpd_http_call_header(call, "mcp-session-id")) != NULL) {
        free(r->session_id);
        r->session_id = strdup(sid);
    }
}

static int on_data(struct mcpd_http_call *call, const char *buf, size_t len, void *data)
{
    struct xfer *x = data;
    int rc;

    if (x->status / 100 != 2)
        return mcpd_buf_append(&x->body, buf, len) == 0 ? 0 : 0; /* error bodies: kept short */
    if (x->is_sse) {
        /* what it delivers may cancel it (2026-07-28: by closing it): not freed under us */
        x->busy = true;
        rc = mcpd_sse_parser_feed(&x->sse, buf, len);
        x->busy = false;
        return rc == 0 && !x->doomed ? 0 : -1;
    }
    return mcpd_buf_append(&x->body, buf, len) == 0 ? 0 : -1;
}

/* An expired session: re-initialise, then send what failed again. */
static void reinit(struct remote *r, struct xfer *failed)
{
    if (failed->sent)
        mcpd_buf_append(&r->held, failed->sent, failed->sent_len + 1); /* with its NUL */
    if (r->reiniting)
        return;
    LOG_INFO("upstream", "upstream=%s session expired; initializing again", r->up.name);
    r->reiniting = true;
    free(r->session_id);
    r->session_id = NULL;
    post(r, r->init_msg, r->init_len, true);
}

/* Sends what waited for notifications/initialized (or a re-initialisation). */
static void flush_held(struct remote *r)
{
    struct mcpd_buf held = r->held;
    mcpd_buf_init(&r->held, held.max);
    for (size_t off = 0; off < held.len;) {
        size_t n = strlen(held.p + off);
        post(r, held.p + off, n, false);
        off += n + 1;
    }
    mcpd_buf_dispose(&held);
    if (r->stream == NULL && r->mode == MODE_STREAMABLE)
        open_stream(r);
}

/*
 * notifications/initialized goes alone: the server may still be setting up
 * the session (registering tools) when it is sent, so requests wait until
 * it is acknowledged.
 */
static void post_note(struct remote *r)
{
    r->holding = true;
    if (post(r, r->initialized_msg, r->initialized_len, false) != 0)
        r->holding = false;
}

static void replay_done(struct remote *r, bool ok)
{
    r->reiniting = false;
    if (!ok) {
        disconnect(r, "re-initialisation after an expired session failed");
        return;
    }
    if (r->initialized_msg)
        post_note(r);
    else
        flush_held(r);
}

/* The upstream lost our session: 404, or the SDK's 400 "No valid session ID". */
static bool session_lost(const struct remote *r, const struct xfer *x)
{
    if (r->session_id == NULL || x->is_init || r->mode != MODE_STREAMABLE || r->init_msg == NULL)
        return false;
    return x->status == 404 ||
           (x->status == 400 && x->body.p && strcasestr(x->body.p, "session") != NULL);
}

/* Starts x as METHOD url; returns 0 or a negative code (x is then freed). */
static int start_xfer(struct remote *r, struct xfer *x, const char *method, const char *url,
                      const char *body, size_t len, const char *last_event_id, unsigned timeout_ms)
{
    const char *token =
        r->up.cfg->credential ? mcpd_credential_peek(r->up.daemon, r->up.cfg->credential) : NULL;
    char **h;
    struct mcpd_http_spec spec = {
        .method = method,
        .url = url,
        .body = body,
        .body_len = len,
        .connect_timeout_ms = r->up.cfg->connect_timeout_ms,
        .timeout_ms = timeout_ms,
        .insecure = !r->up.cfg->tls_verify,
    };
    int rc;

    if (token != NULL && (x->token = strdup(token)) == NULL) {
        x->r = r;
        xfer_free(x);
        return MCPD_ENOMEM;
    }
    h = build_headers(r, body != NULL, last_event_id, token, x->extra);
    spec.headers = (const char *const *)h;
    x->r = r;
    mcpd_buf_init(&x->body, MCPD_MAX_UPSTREAM_MSG);
    x->next = r->xfers;
    if (r->xfers)
        r->xfers->prev = x;
    r->xfers = x;
    rc = h ? mcpd_http_call_start(&x->call, r->hc, &spec, &xfer_ops, x) : MCPD_ENOMEM;
    free_headers(h);
    if (rc != 0)
        xfer_free(x);
    return rc;
}

static void xfer_free(struct xfer *x)
{
    struct remote *r = x->r;
    if (x->prev)
        x->prev->next = x->next;
    else if (r->xfers == x)
        r->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    if (r->stream == x)
        r->stream = NULL;
    if (x->call)
        mcpd_http_call_cancel(x->call);
    if (x->is_sse)
        mcpd_sse_parser_dispose(&x->sse);
    mcpd_buf_dispose(&x->body);
    json_decref(x->req_id);
    free_lines(x->extra);
    free(x->sent);
    mcpd_crypto_free_str(x->token);
    free(x);
}

/* ---- servers.<name>.credential ------------------------------------------------------------ */

static void cred_wait_unlink(struct cred_wait *w)
{
    for (struct cred_wait **pp = &w->r->cred_waits; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    }
}

static void cred_wait_free(struct cred_wait *w)
{
    free(w->sent);
    free(w);
}

static void connect_now(struct remote *r);

/* The credential for a retry after a 401 (sent) or for the start (sent NULL). */
static void on_cred(int status, enum mcpd_credential_kind kind, const char *secret, const char *why,
                    void *data)
{
    struct cred_wait *w = data;
    struct remote *r = w->r;
    char msg[400];

    (void)kind;
    (void)secret; /* read again through mcpd_credential_peek when the headers are built */
    cred_wait_unlink(w);
    if (!r->running || r->stopping) {
        cred_wait_free(w);
        return;
    }
    if (w->stream) { /* optional: a GET stream that cannot be had is only logged */
        if (status == 0)
            open_stream(r);
        else
            LOG_WARN("upstream", "upstream=%s GET stream not reopened: %s", r->up.name,
                     why ? why : "no credential");
        cred_wait_free(w);
        return;
    }
    if (status != 0) {
        snprintf(msg, sizeof(msg), "upstream '%s': %s", r->up.name, why ? why : "no credential");
        if (w->sent == NULL || w->is_init) {
            json_t *id = w->sent ? request_id(w->sent, w->sent_len) : NULL;
            cred_wait_free(w);
            json_decref(id);
            disconnect(r, msg);
            return;
        }
        {
            json_t *id = request_id(w->sent, w->sent_len);
            if (id)
                answer_error(r, id, msg);
            else
                LOG_WARN("upstream", "upstream=%s %s", r->up.name, msg);
            json_decref(id);
        }
        cred_wait_free(w);
        return;
    }
    if (w->sent == NULL) {
        cred_wait_free(w);
        connect_now(r);
        return;
    }
    r->next_retried = true;
    r->retry_is_init = w->is_init;
    if (post(r, w->sent, w->sent_len, false) != 0) {
        json_t *id = request_id(w->sent, w->sent_len);
        if (id)
            answer_error(r, id, "cannot send the request again");
        json_decref(id);
    }
    r->next_retried = false;
    cred_wait_free(w);
}

/* Asks the registry (get, or rejected when token was refused); x may be NULL (the start). */
static int cred_wait(struct remote *r, struct xfer *x)
{
    struct cred_wait *w = calloc(1, sizeof(*w));
    const char *name = r->up.cfg->credential;
    int rc;

    if (w == NULL)
        return MCPD_ENOMEM;
    w->r = r;
    if (x != NULL) {
        w->sent = x->sent;
        w->sent_len = x->sent_len;
        w->is_init = x->is_init;
        x->sent = NULL;
    }
    w->next = r->cred_waits;
    r->cred_waits = w;
    if (x != NULL)
        rc = mcpd_credential_rejected(r->up.daemon, name, x->token, on_cred, w, &w->req);
    else
        rc = mcpd_credential_get(r->up.daemon, name, on_cred, w, &w->req);
    if (rc != 0) {
        cred_wait_unlink(w);
        if (x != NULL) {
            x->sent = w->sent;
            w->sent = NULL;
        }
        cred_wait_free(w);
    }
    return rc;
}

/* The GET stream got 401: the token is reported, and the stream reopens with its successor. */
static int stream_cred(struct remote *r, struct xfer *x)
{
    struct cred_wait *w;
    int rc;

    if (x->token == NULL || (w = calloc(1, sizeof(*w))) == NULL)
        return MCPD_ENOMEM;
    w->r = r;
    w->stream = true;
    w->next = r->cred_waits;
    r->cred_waits = w;
    rc = mcpd_credential_rejected(r->up.daemon, r->up.cfg->credential, x->token, on_cred, w,
                                  &w->req);
    if (rc != 0) {
        cred_wait_unlink(w);
        cred_wait_free(w);
    }
    return rc;
}

static void cred_waits_cancel(struct remote *r)
{
    while (r->cred_waits != NULL) {
        struct cred_wait *w = r->cred_waits;
        r->cred_waits = w->next;
        mcpd_credential_cancel(w->req);
        cred_wait_free(w);
    }
}

static void on_resume_closed(uv_handle_t *h)
{
    struct resume *rs = h->data;
    json_decref(rs->req_id);
    free(rs);
}

static void resume_drop(struct resume *rs)
{
    struct remote *r = rs->r;
    for (struct resume **pp = &r->resumes; *pp; pp = &(*pp)->next) {
        if (*pp == rs) {
            *pp = rs->next;
            break;
        }
    }
    uv_close((uv_handle_t *)&rs->timer, on_resume_closed);
}

static void on_resume_due(uv_timer_t *t)
{
    struct resume *rs = t->data;
    struct remote *r = rs->r;
    struct xfer *g = calloc(1, sizeof(*g));

    if (g == NULL) {
        answer_error(r, rs->req_id, "out of memory resuming a stream");
    } else {
        g->is_get = true;
        g->req_id = json_incref(rs->req_id);
        LOG_DEBUG("upstream", "upstream=%s resuming a stream after event %s", r->up.name,
                  rs->last_id);
        if (start_xfer(r, g, "GET", r->up.cfg->url, NULL, 0, rs->last_id,
                       r->up.cfg->timeout_ms + 5000) != 0)
            answer_error(r, rs->req_id, "could not resume the upstream's stream");
    }
    resume_drop(rs);
}

/*
 * The POST stream ended before its answer: GET + Last-Event-ID resumes it,
 * after the stream's retry delay (2025-11-25 polling).
 */
static void resume(struct remote *r, struct xfer *x)
{
    struct resume *rs = calloc(1, sizeof(*rs));
    if (rs == NULL) {
        answer_error(r, x->req_id, "out of memory resuming a stream");
        return;
    }
    rs->r = r;
    rs->req_id = json_incref(x->req_id);
    snprintf(rs->last_id, sizeof(rs->last_id), "%s", x->last_id);
    uv_timer_init(r->up.daemon->loop, &rs->timer);
    rs->timer.data = rs;
    rs->next = r->resumes;
    r->resumes = rs;
    uv_timer_start(&rs->timer, on_resume_due, x->retry_ms, 0);
}

/*
 * Whether a 4xx answer's body is the JSON-RPC error for x's request that the
 * core should read: from a 2026-07-28 server any; from another, only an
 * initialize refused naming 2026-07-28 among the supported versions.
 */
static bool answers_in_body(struct remote *r, struct xfer *x)
{
    json_t *root = x->body.len ? json_loadb(x->body.p, x->body.len, 0, NULL) : NULL, *v;
    json_t *err = json_object_get(root, "error");
    bool yes = json_is_object(err) && json_equal(json_object_get(root, "id"), x->req_id);
    size_t i;

    if (yes && !r->up.modern) {
        yes = false;
        if (x->is_init && r->up.cfg->era == MCPD_SPEAK_AUTO)
            json_array_foreach (json_object_get(json_object_get(err, "data"), "supported"), i, v)
                yes = yes ||
                      (json_is_string(v) && strcmp(json_string_value(v), MCPD_MODERN_VERSION) == 0);
    }
    json_decref(root);
    return yes;
}

static void post_done(struct remote *r, struct xfer *x, int result, const char *why)
{
    char msg[256];

    if (x->doomed)
        return; /* cancelled: nobody waits for it */
    if (x->is_replay) {
        replay_done(r, result == 0 && x->status / 100 == 2);
        return;
    }
    if (x->is_note) {
        r->holding = false;
        if (!r->reiniting)
            flush_held(r);
    }
    if (result == 0 && x->status == 401 && r->up.cfg->credential && !x->cred_retried && x->sent &&
        cred_wait(r, x) == 0)
        return; /* refreshed (once) and sent again, or answered with the credential's error */
    if (result == 0 && x->status / 100 == 4 && x->req_id && answers_in_body(r, x)) {
        /* 2026-07-28 errors come with 4xx statuses; and a refused initialize naming
         * that revision is for the core to read (protocol: auto) */
        deliver(r, x, x->body.p, x->body.len);
        return;
    }
    if (result != 0 || x->status / 100 != 2) {
        bool legacy_hint = x->status == 400 || x->status == 404 || x->status == 405;
        if (x->is_init && legacy_hint && r->up.cfg->transport == MCPD_REMOTE_AUTO &&
            r->mode == MODE_STREAMABLE && !r->fallen_back && !r->up.modern) {
            LOG_INFO("upstream",
                     "upstream=%s answered HTTP %d to initialize; trying legacy HTTP+SSE",
                     r->up.name, x->status);
            r->mode = MODE_SSE;
            r->fallen_back = true;
            open_stream(r);
            return;
        }
        if (session_lost(r, x)) {
            reinit(r, x);
            return;
        }
        if (result != 0)
            snprintf(msg, sizeof(msg), "upstream '%s' unreachable: %s", r->up.name, why);
        else
            snprintf(msg, sizeof(msg), "upstream '%s' answered HTTP %d: %.120s", r->up.name,
                     x->status, x->body.p ? x->body.p : "");
        /* a failed initialize, or a server that cannot be reached any more (not a
         * slow one: MCPD_ETIMEDOUT), is down: restart it with backoff */
        /* (2026-07-28: a stream that was answered and then broke is that request's
         * failure, not the server's) */
        if (x->is_init || (result == MCPD_EUNAVAIL && !(r->up.modern && x->status / 100 == 2))) {
            if (x->req_id && !x->is_init)
                answer_error(r, x->req_id, msg);
            disconnect(r, msg);
            return;
        }
        if (x->req_id)
            answer_error(r, x->req_id, msg);
        else
            LOG_WARN("upstream", "upstream=%s %s", r->up.name, msg);
        return;
    }
    if (r->mode == MODE_SSE)
        return; /* legacy: answers travel on the stream; the POST body says "Accepted" */
    if (!x->is_sse && x->body.len && x->req_id && x->status != 202)
        deliver(r, x, x->body.p, x->body.len); /* bodies of 202s (notifications) mean nothing */
    if (x->req_id && !x->answered && x->is_sse && x->last_id[0] && !r->up.modern)
        resume(r, x); /* (2026-07-28 has no resumption: the request is lost) */
    else if (x->req_id && !x->answered)
        answer_error(r, x->req_id, "the upstream closed the stream without an answer");
}

/* The GET stream (server messages) or, in legacy mode, the only stream. */
static void stream_done(struct remote *r, struct xfer *x, int result, const char *why)
{
    if (r->stopping)
        return;
    if (r->mode == MODE_SSE) {
        char msg[200];
        snprintf(msg, sizeof(msg), "the SSE stream ended: %s",
                 result                 ? why
                 : x->status / 100 != 2 ? "HTTP error"
                                        : "closed by the server");
        if (x->status && x->status / 100 != 2)
            snprintf(msg, sizeof(msg), "the SSE stream was refused with HTTP %d", x->status);
        disconnect(r, msg);
        return;
    }
    if (x->status == 405 || x->status == 404) /* no GET stream offered: fine */
        return;
    if (++r->stream_failures > 5) {
        LOG_WARN("upstream", "upstream=%s GET stream keeps failing; not reopened", r->up.name);
        return;
    }
    if (x->status == 401 && r->up.cfg->credential && stream_cred(r, x) == 0)
        return; /* reopened once the credential is refreshed (or logged if it cannot be) */
    uv_timer_start(&r->timer, on_timer_tick, r->retry_ms ? r->retry_ms : 1000, 0);
}

static void on_done(struct mcpd_http_call *call, int result, const char *why, void *data)
{
    struct xfer *x = data;
    struct remote *r = x->r;
    x->call = NULL; /* the client frees it after we return */
    /* off the list first: handling it may tear the whole attempt down */
    if (x->prev)
        x->prev->next = x->next;
    else if (r->xfers == x)
        r->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    if (x->is_delete) { /* the session is ended upstream: the stop is complete */
        xfer_free(x);
        finish(r, "stopped by mcpd");
        return;
    }
    if (x == r->stream)
        stream_done(r, x, result, why);
    else
        post_done(r, x, result, why); /* a resumed POST stream (GET) ends like a POST */
    xfer_free(x);
}

static const struct mcpd_http_call_ops xfer_ops = { on_headers, on_data, on_done };

static void open_stream(struct remote *r)
{
    struct xfer *x;
    if (r->stream || r->stopping || !r->running)
        return;
    if ((x = calloc(1, sizeof(*x))) == NULL)
        return;
    x->is_get = true;
    r->stream = x;
    if (start_xfer(r, x, "GET", r->up.cfg->url, NULL, 0,
                   r->mode == MODE_STREAMABLE ? r->get_last_id : NULL, 0) != 0 &&
        r->mode == MODE_SSE)
        disconnect(r, "cannot open the SSE stream");
}

/*
 * 2026-07-28 over HTTP has requests only: closing a request's stream is its
 * cancellation (notifications/cancelled becomes that), and nothing else that
 * is not a request goes to the server.
 */
static void modern_note(struct remote *r, json_t *root)
{
    const char *m = json_string_value(json_object_get(root, "method"));
    json_t *rid = json_object_get(json_object_get(root, "params"), "requestId");

    if (m && strcmp(m, "notifications/cancelled") == 0 && rid != NULL) {
        for (struct xfer *x = r->xfers; x; x = x->next)
            if (x->req_id && json_equal(x->req_id, rid)) {
                LOG_DEBUG("upstream", "upstream=%s request cancelled: its stream closed",
                          r->up.name);
                if (x->busy)
                    x->doomed = true; /* on_data ends it as soon as it returns */
                else
                    xfer_free(x);
                break;
            }
    } else {
        LOG_DEBUG("upstream", "upstream=%s not sent to a 2026-07-28 server: %.80s", r->up.name,
                  m ? m : "a response");
    }
}

static int post(struct remote *r, const char *data, size_t len, bool replay)
{
    struct xfer *x = calloc(1, sizeof(*x));
    const char *url = r->mode == MODE_SSE ? r->post_url : r->up.cfg->url, *m = NULL;
    unsigned timeout_ms = r->up.cfg->timeout_ms + 5000;
    json_t *root;

    if (x == NULL || (x->sent = malloc(len + 1)) == NULL) {
        free(x);
        return MCPD_ENOMEM;
    }
    memcpy(x->sent, data, len);
    x->sent[len] = '\0';
    x->sent_len = len;
    x->is_replay = replay;
    x->is_init = !replay && r->nsent == 0;
    if (r->next_retried) {
        x->cred_retried = true;
        x->is_init = r->retry_is_init;
        r->next_retried = false;
    }
    x->is_note = r->holding && data == r->initialized_msg;
    root = json_loadb(data, len, 0, NULL);
    if (json_is_object(root) && (m = json_string_value(json_object_get(root, "method"))) != NULL)
        x->req_id = json_incref(json_object_get(root, "id"));
    if (r->up.modern && x->req_id == NULL) { /* not a request: not sent as such */
        modern_note(r, root);
        json_decref(root);
        free(x->sent);
        free(x);
        return 0;
    }
    if (r->up.modern) {
        /* a listen stream stays open: the core's deadline ends it (by cancelling) */
        if (strcmp(m, "subscriptions/listen") == 0)
            timeout_ms = 0;
        if ((x->extra = modern_headers(r, root)) == NULL) { /* x is not on the list yet */
            json_decref(root);
            json_decref(x->req_id);
            free(x->sent);
            free(x);
            return MCPD_ENOMEM;
        }
    }
    json_decref(root);
    return start_xfer(r, x, "POST", url, data, len, NULL, timeout_ms);
}

/* ---- vtable ----------------------------------------------------------------------------- */

static void on_timer_tick(uv_timer_t *t)
{
    open_stream(t->data);
}

static void finish(struct remote *r, const char *why)
{
    r->running = false;
    cred_waits_cancel(r);
    while (r->xfers)
        xfer_free(r->xfers);
    while (r->resumes)
        resume_drop(r->resumes);
    uv_timer_stop(&r->timer);
    free(r->session_id);
    free(r->post_url);
    r->session_id = r->post_url = NULL;
    mcpd_buf_reset(&r->held);
    mcpd_upstream_on_disconnected(&r->up, why);
}

static void disconnect(struct remote *r, const char *why)
{
    if (!r->running)
        return;
    LOG_WARN("upstream", "upstream=%s %s", r->up.name, why);
    finish(r, why);
}

static int up_start(struct mcpd_upstream *up)
{
    struct remote *r = (struct remote *)up;
    r->running = true;
    r->stopping = false;
    r->reiniting = r->fallen_back = false;
    r->nsent = 0;
    r->stream_failures = 0;
    r->retry_ms = 0;
    r->get_last_id[0] = '\0';
    r->holding = false;
    r->mode = up->cfg->transport == MCPD_REMOTE_SSE ? MODE_SSE : MODE_STREAMABLE;
    /* a credential that needs a refresh or is unusable: wait for (or report) it first */
    if (up->cfg->credential && mcpd_credential_peek(up->daemon, up->cfg->credential) == NULL) {
        int rc = cred_wait(r, NULL);
        if (rc != 0)
            r->running = false;
        return rc;
    }
    connect_now(r);
    return r->running || r->mode != MODE_SSE ? 0 : MCPD_EUNAVAIL;
}

static void connect_now(struct remote *r)
{
    if (r->mode == MODE_SSE) {
        open_stream(r); /* connected once the endpoint event arrives */
        return;
    }
    mcpd_upstream_on_connected(&r->up);
}

static void keep(char **slot, size_t *slot_len, const char *data, size_t len)
{
    free(*slot);
    if ((*slot = malloc(len + 1)) != NULL) {
        memcpy(*slot, data, len);
        (*slot)[len] = '\0';
        *slot_len = len;
    }
}

static int up_send(struct mcpd_upstream *up, const char *data, size_t len)
{
    struct remote *r = (struct remote *)up;
    int rc;
    if (!r->running || r->stopping)
        return MCPD_ECLOSED;
    if (up->modern) { /* no session: no initialize to keep, nothing held */
        if ((rc = post(r, data, len, false)) != 0) {
            LOG_WARN("upstream", "upstream=%s cannot send: %s", up->name, mcpd_strerror(rc));
            return rc;
        }
        r->nsent++;
        return 0;
    }
    /* the core's first two messages are initialize and notifications/initialized:
     * kept to re-initialise an expired session */
    if (r->nsent == 0)
        keep(&r->init_msg, &r->init_len, data, len);
    else if (r->nsent == 1)
        keep(&r->initialized_msg, &r->initialized_len, data, len);
    if (r->reiniting || r->holding) {
        if (mcpd_buf_append(&r->held, data, len) != 0 || mcpd_buf_append(&r->held, "", 1) != 0)
            return MCPD_EBUSY;
        r->nsent++;
        return 0;
    }
    if (r->nsent == 1 && r->mode == MODE_STREAMABLE) {
        r->nsent++;
        post_note(r); /* the GET stream opens once it is acknowledged */
        return 0;
    }
    if ((rc = post(r, data, len, false)) != 0) {
        LOG_WARN("upstream", "upstream=%s cannot send: %s", up->name, mcpd_strerror(rc));
        return rc;
    }
    r->nsent++;
    return 0;
}

static void up_stop(struct mcpd_upstream *up)
{
    struct remote *r = (struct remote *)up;
    struct xfer *x;
    if (!r->running)
        return;
    r->stopping = true;
    while (r->xfers)
        xfer_free(r->xfers);
    /* end the session upstream (MCP: DELETE); the stop completes with it */
    if (r->mode == MODE_STREAMABLE && r->session_id && (x = calloc(1, sizeof(*x))) != NULL) {
        x->is_delete = true;
        if (start_xfer(r, x, "DELETE", up->cfg->url, NULL, 0, NULL, 2000) == 0)
            return;
    }
    finish(r, "stopped by mcpd");
}

static void on_timer_closed(uv_handle_t *h)
{
    struct remote *r = h->data;
    mcpd_buf_dispose(&r->held);
    free(r->init_msg);
    free(r->initialized_msg);
    free(r);
}

static void up_free(struct mcpd_upstream *up)
{
    struct remote *r = (struct remote *)up;
    mcpd_http_client_close(r->hc);
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

static const struct mcpd_upstream_ops remote_ops = { "remote", up_start, up_send, up_stop,
                                                     up_free };

int mcpd_remote_upstream_new(struct mcpd_upstream **out, struct mcpd_daemon *d,
                             const struct mcpd_server_config *cfg)
{
    struct remote *r = calloc(1, sizeof(*r));
    int rc;
    *out = NULL;
    if (r == NULL)
        return MCPD_ENOMEM;
    if ((rc = mcpd_http_client_new(&r->hc, d->loop)) != 0) {
        free(r);
        return rc;
    }
    mcpd_upstream_init(&r->up, d, cfg, &remote_ops);
    mcpd_buf_init(&r->held, MCPD_MAX_UPSTREAM_MSG);
    uv_timer_init(d->loop, &r->timer);
    r->timer.data = r;
    *out = &r->up;
    return 0;
}
