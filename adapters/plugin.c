/*
 * plugin.c - declarative HTTP plugins as an in-process MCP server behind the
 * upstream vtable (mcpd/upstream.h).
 *
 * send() receives the core's JSON-RPC messages (initialize, tools/list,
 * tools/call, notifications/cancelled, ping) and answers through
 * mcpd_upstream_on_message, so handshake, ids, deadlines, policy and audit
 * come from the core unchanged. Answers are queued and delivered from an
 * idle handle on the next loop turn (never from inside send()).
 *
 * tools/call runs the operation on the plugin's own HTTP client (libcurl
 * multi on the loop; its own connection cache, so every connection it
 * reuses was checked). Egress: the URL's scheme and host are checked
 * against egress.allowedHosts before each hop, and every address curl is
 * about to connect to is classified (mcpd/net/egress.h) in curl's
 * open-socket callback: the checked address is the connected address.
 * Redirects are followed here, at most MCPD_MAX_PLUGIN_REDIRECTS, with both
 * checks again; credentials are not sent to another host. API errors (4xx,
 * 5xx) and transport failures become tool results with isError: true.
 * Exec plugins never come here: they are stdio servers (factory.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "adapters.h"
#include "mcpd/buf.h"
#include "mcpd/credentials.h"
#include "mcpd/error.h"
#include "mcpd/limits.h"
#include "mcpd/log.h"
#include "mcpd/manifest.h"
#include "mcpd/net/egress.h"
#include "mcpd/net/http_client.h"

struct plugin_up;

struct pcall {
    struct plugin_up *pu;
    struct pcall *prev, *next;
    json_t *id;   /* the core's request id */
    json_t *args; /* arguments object */
    const struct mcpd_manifest_op *op;
    struct mcpd_http_call *http;
    struct mcpd_credential_req *creq;
    enum mcpd_credential_kind kind;
    char *secret;
    char *url;        /* current hop */
    char *first_host; /* origin of the first hop: only it gets the credential */
    bool get_after_303, retried, toobig;
    unsigned hops;
    int status;
    char ctype[128];
    struct mcpd_buf resp;
};

struct plugin_up {
    struct mcpd_upstream up; /* first */
    const struct mcpd_plugin_config *pl;
    struct mcpd_http_client *hc;
    struct pcall *calls;
    struct mcpd_buf outq; /* NUL-separated messages to deliver */
    uv_idle_t flush;      /* delivers queued answers on the next loop turn */
    bool running;
};

static struct plugin_up *from_up(struct mcpd_upstream *up)
{
    return (struct plugin_up *)(void *)up;
}

/* ---- delivery ------------------------------------------------------------------------------- */

static void on_flush(uv_idle_t *h)
{
    struct plugin_up *pu = h->data;
    struct mcpd_buf q = pu->outq;

    uv_idle_stop(h);
    mcpd_buf_init(&pu->outq, MCPD_MAX_UPSTREAM_MSG * 4u);
    for (size_t off = 0; off < q.len && pu->running;) {
        size_t n = strlen(q.p + off);
        mcpd_upstream_on_message(&pu->up, q.p + off, n);
        off += n + 1;
    }
    mcpd_buf_dispose(&q);
}

static void deliver(struct plugin_up *pu, json_t *msg)
{
    char *s = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (s == NULL)
        return;
    if (mcpd_buf_append(&pu->outq, s, strlen(s) + 1) != 0)
        LOG_WARN("plugin", "upstream=%s reply dropped (queue full)", pu->up.name);
    free(s);
    uv_idle_start(&pu->flush, on_flush);
}

static void reply(struct plugin_up *pu, json_t *id, json_t *result)
{
    if (result == NULL) { /* out of memory: still answer */
        deliver(pu, json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id, "error",
                              "code", -32603, "message", "out of memory"));
        return;
    }
    deliver(pu, json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result));
}

static void reply_error(struct plugin_up *pu, json_t *id, int code, const char *msg)
{
    deliver(pu, json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id, "error", "code",
                          code, "message", msg));
}

/* A copy of s with each byte that is not part of valid UTF-8 replaced by '?'. */
static char *utf8_clean(const char *s)
{
    size_t n = strlen(s), i = 0;
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xE0) == 0xC0 ? 2
                     : (c & 0xF0) == 0xE0 ? 3
                     : (c & 0xF8) == 0xF0 ? 4
                                          : 0;
        json_t *probe = len > 1 && i + len <= n ? json_stringn(s + i, len) : NULL;
        if (len == 1 || probe) {
            memcpy(out + i, s + i, len);
            i += len;
        } else {
            out[i++] = '?';
        }
        json_decref(probe);
    }
    out[n] = '\0';
    return out;
}

static json_t *tool_text(const char *text, bool is_error)
{
    json_t *r = json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text", text);
    if (r == NULL) { /* not UTF-8 (an API error body cut at the excerpt cap, say) */
        char *clean = utf8_clean(text);
        r = clean ? json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text", clean) : NULL;
        free(clean);
    }
    if (r && is_error)
        json_object_set_new(r, "isError", json_true());
    return r;
}

/* ---- calls ---------------------------------------------------------------------------------- */

static void call_free(struct pcall *c)
{
    struct plugin_up *pu = c->pu;
    if (c->prev)
        c->prev->next = c->next;
    else
        pu->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->http)
        mcpd_http_call_cancel(c->http);
    if (c->creq)
        mcpd_credential_cancel(c->creq);
    json_decref(c->id);
    json_decref(c->args);
    if (c->secret) {
        memset(c->secret, 0, strlen(c->secret));
        free(c->secret);
    }
    free(c->url);
    free(c->first_host);
    mcpd_buf_dispose(&c->resp);
    free(c);
}

static void call_finish(struct pcall *c, json_t *result)
{
    reply(c->pu, c->id, result);
    call_free(c);
}

static void call_fail(struct pcall *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void call_fail(struct pcall *c, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    LOG_DEBUG("plugin", "upstream=%s operation=%s failed: %s", c->pu->up.name, c->op->name, msg);
    call_finish(c, tool_text(msg, true));
}

static const char *check_addr(const struct sockaddr *sa, void *data)
{
    const struct plugin_up *pu = data;
    const char *why = mcpd_egress_addr_class(sa);
    if (why == NULL || pu->pl->allow_private ||
        mcpd_egress_cidr_match(pu->pl->private_cidrs, pu->pl->nprivate_cidrs, sa))
        return NULL;
    return why;
}

/* The host of url if its scheme is http(s) and the host is allowed; else NULL + why. */
static char *allowed_host(const struct plugin_up *pu, const char *url, char *why, size_t n)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *out = NULL;

    if (u == NULL) {
        snprintf(why, n, "out of memory");
        return NULL;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(why, n, "egress refused: not a valid URL");
    } else if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        snprintf(why, n, "egress refused: scheme '%.16s' (http and https only)", scheme);
    } else {
        char bare[256];
        size_t hl = strlen(host);
        /* IPv6 literals come bracketed */
        if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
            snprintf(bare, sizeof(bare), "%.*s", (int)(hl - 2), host + 1);
        else
            snprintf(bare, sizeof(bare), "%s", host);
        if (!mcpd_egress_host_allowed(pu->pl->allowed_hosts, pu->pl->nallowed_hosts, bare))
            snprintf(why, n, "egress refused: host '%.128s' is not in egress.allowedHosts", bare);
        else
            out = strdup(bare);
    }
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return out;
}

/* "scheme://host:port" of an absolute URL (default ports filled in), or NULL. */
static char *origin_of(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *out = NULL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
        size_t n = strlen(scheme) + strlen(host) + strlen(port) + 5;
        if ((out = malloc(n)) != NULL)
            snprintf(out, n, "%s://%s:%s", scheme, host, port);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return out;
}

static const struct mcpd_manifest_auth *auth_for(const struct mcpd_manifest *m,
                                                 enum mcpd_auth_type t)
{
    for (size_t i = 0; i < m->nauth; i++)
        if (m->auth[i].type == t)
            return &m->auth[i];
    return NULL;
}

/* api_key credentials need an api_key method; bearer and oauth2 tokens go as a bearer. */
static bool auth_matches(const struct mcpd_manifest *m, enum mcpd_credential_kind kind)
{
    if (kind == MCPD_CRED_API_KEY)
        return auth_for(m, MCPD_AUTH_API_KEY) != NULL;
    return auth_for(m, MCPD_AUTH_BEARER) != NULL || auth_for(m, MCPD_AUTH_OAUTH2) != NULL;
}

static int append_query(struct mcpd_buf *u, bool *first, const char *name, const json_t *v)
{
    char tmp[64];
    const char *s = NULL;
    size_t len = 0;
    int rc;

    if (json_is_array(v)) {
        size_t i;
        json_t *item;
        json_array_foreach (v, i, item) {
            if ((rc = append_query(u, first, name, item)) != 0)
                return rc;
        }
        return 0;
    }
    if (json_is_string(v)) {
        s = json_string_value(v);
        len = json_string_length(v);
    } else if (json_is_integer(v)) {
        snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        snprintf(tmp, sizeof(tmp), "%.17g", json_real_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(tmp, sizeof(tmp), "%s", json_is_true(v) ? "true" : "false");
    } else {
        return MCPD_EPROTO;
    }
    if (s == NULL) {
        s = tmp;
        len = strlen(tmp);
    }
    if ((rc = mcpd_buf_append(u, *first ? "?" : "&", 1)) != 0 ||
        (rc = mcpd_manifest_pct_encode(u, name, strlen(name))) != 0 ||
        (rc = mcpd_buf_append(u, "=", 1)) != 0 || (rc = mcpd_manifest_pct_encode(u, s, len)) != 0)
        return rc;
    *first = false;
    return 0;
}

/* The first hop's URL: template + query arguments (+ api key in the query). */
static int build_url(struct pcall *c, char **out, char *err, size_t errlen)
{
    const struct mcpd_plugin_config *pl = c->pu->pl;
    const struct mcpd_manifest_auth *ak;
    struct mcpd_buf u;
    bool first;
    int rc;

    *out = NULL;
    mcpd_buf_init(&u, MCPD_MAX_PLUGIN_URL);
    if ((rc = mcpd_manifest_expand(&u, c->op->url, c->args, pl->config, true, err, errlen)) != 0)
        goto out;
    first = u.p == NULL || strchr(u.p, '?') == NULL;
    for (size_t i = 0; i < c->op->query.n; i++) {
        const json_t *v = json_object_get(c->args, c->op->query.v[i]);
        if (v == NULL || json_is_null(v))
            continue;
        if ((rc = append_query(&u, &first, c->op->query.v[i], v)) != 0) {
            snprintf(err, errlen, "argument '%.64s' cannot go in a query string",
                     c->op->query.v[i]);
            goto out;
        }
    }
    if (c->secret && c->kind == MCPD_CRED_API_KEY &&
        (ak = auth_for(pl->manifest, MCPD_AUTH_API_KEY)) != NULL && ak->in_query) {
        json_t *k = json_string(c->secret);
        rc = k ? append_query(&u, &first, ak->param, k) : MCPD_ENOMEM;
        json_decref(k);
        if (rc != 0)
            goto out;
    }
    *out = mcpd_buf_steal(&u, NULL);
    rc = *out ? 0 : MCPD_ENOMEM;
out:
    if (rc == MCPD_ETOOBIG)
        snprintf(err, errlen, "request URL longer than %u bytes", MCPD_MAX_PLUGIN_URL);
    mcpd_buf_dispose(&u);
    return rc;
}

static void on_headers(struct mcpd_http_call *h, int status, const char *ct, void *data)
{
    struct pcall *c = data;
    (void)h;
    c->status = status;
    snprintf(c->ctype, sizeof(c->ctype), "%s", ct ? ct : "");
}

static int on_data(struct mcpd_http_call *h, const char *buf, size_t len, void *data)
{
    struct pcall *c = data;
    (void)h;
    if (mcpd_buf_append(&c->resp, buf, len) != 0) {
        c->toobig = true;
        return 1;
    }
    return 0;
}

static void on_done(struct mcpd_http_call *h, int result, const char *why, void *data);
static const struct mcpd_http_call_ops call_ops = { on_headers, on_data, on_done };

static void send_hop(struct pcall *c)
{
    struct plugin_up *pu = c->pu;
    const struct mcpd_manifest_op *op = c->op;
    const char *hdrs[72];
    char *owned[72], err[300], *host, *body = NULL;
    size_t nh = 0, no = 0;
    bool same_host, with_body;
    struct mcpd_http_spec spec;
    int rc;

    if ((host = allowed_host(pu, c->url, err, sizeof(err))) == NULL) {
        call_fail(c, "%s", err);
        return;
    }
    free(host);
    /* the credential goes only to the first hop's origin (scheme, host and port) */
    if ((host = origin_of(c->url)) == NULL) {
        call_fail(c, "out of memory");
        return;
    }
    same_host = c->first_host == NULL || strcasecmp(host, c->first_host) == 0;
    if (c->first_host == NULL)
        c->first_host = host;
    else
        free(host);
    with_body = op->body.n > 0 && !c->get_after_303;
    for (size_t i = 0; i < op->nheaders && nh < 64; i++) {
        struct mcpd_buf v;
        mcpd_buf_init(&v, MCPD_MAX_HEADER_BYTES);
        rc = mcpd_buf_appendf(&v, "%s: ", op->headers[i].key);
        if (rc == 0)
            rc = mcpd_manifest_expand(&v, op->headers[i].value, c->args, pu->pl->config, false, err,
                                      sizeof(err));
        if (rc != 0) {
            mcpd_buf_dispose(&v);
            for (size_t j = 0; j < no; j++)
                free(owned[j]);
            call_fail(c, "header %s: %s", op->headers[i].key, err[0] ? err : "too long");
            return;
        }
        {
            owned[no] = mcpd_buf_steal(&v, NULL);
            hdrs[nh++] = owned[no++];
        }
    }
    if (c->secret && !auth_matches(pu->pl->manifest, c->kind)) {
        for (size_t j = 0; j < no; j++)
            free(owned[j]);
        call_fail(c, "credential \"%s\" is of a kind that plugin '%s' does not accept",
                  pu->pl->credential, pu->pl->manifest->name);
        return;
    }
    if (c->secret && same_host) {
        const struct mcpd_manifest_auth *ak = auth_for(pu->pl->manifest, MCPD_AUTH_API_KEY);
        struct mcpd_buf v;
        mcpd_buf_init(&v, MCPD_MAX_HEADER_BYTES);
        if (c->kind != MCPD_CRED_API_KEY)
            rc = mcpd_buf_appendf(&v, "Authorization: Bearer %s", c->secret);
        else if (ak && !ak->in_query)
            rc = mcpd_buf_appendf(&v, "%s: %s", ak->param, c->secret);
        else
            rc = 1;
        if (rc == 0 && v.p) {
            owned[no] = mcpd_buf_steal(&v, NULL);
            hdrs[nh++] = owned[no++];
        }
        mcpd_buf_dispose(&v);
    }
    hdrs[nh++] = "User-Agent: mcpd";
    if (with_body)
        hdrs[nh++] = "Content-Type: application/json";
    hdrs[nh] = NULL;
    if (with_body) {
        json_t *b = json_object();
        for (size_t i = 0; b && i < op->body.n; i++) {
            json_t *v = json_object_get(c->args, op->body.v[i]);
            if (v)
                json_object_set(b, op->body.v[i], v);
        }
        body = b ? json_dumps(b, JSON_COMPACT) : NULL;
        json_decref(b);
    }
    memset(&spec, 0, sizeof(spec));
    spec.method = c->get_after_303 ? "GET" : op->method;
    spec.url = c->url;
    spec.headers = hdrs;
    spec.body = body;
    spec.body_len = body ? strlen(body) : 0;
    spec.connect_timeout_ms = 10000;
    spec.timeout_ms = pu->pl->timeout_ms;
    spec.check_addr = check_addr;
    spec.check_data = pu;
    c->status = 0;
    c->ctype[0] = '\0';
    mcpd_buf_reset(&c->resp);
    rc = mcpd_http_call_start(&c->http, pu->hc, &spec, &call_ops, c);
    for (size_t j = 0; j < no; j++) {
        memset(owned[j], 0, strlen(owned[j]));
        free(owned[j]);
    }
    free(body);
    if (rc != 0)
        call_fail(c, "cannot start the request: %s", mcpd_strerror(rc));
}

static void on_secret(int status, enum mcpd_credential_kind kind, const char *secret,
                      const char *why, void *data)
{
    struct pcall *c = data;
    char err[300], *url;

    c->creq = NULL;
    if (status != 0) {
        call_fail(c, "%s", why ? why : "credential unavailable");
        return;
    }
    if (c->secret) {
        memset(c->secret, 0, strlen(c->secret));
        free(c->secret);
    }
    c->kind = kind;
    if ((c->secret = strdup(secret)) == NULL) {
        call_fail(c, "out of memory");
        return;
    }
    if (build_url(c, &url, err, sizeof(err)) != 0) {
        call_fail(c, "%s", err);
        return;
    }
    free(c->url);
    c->url = url;
    c->hops = 0;
    c->get_after_303 = false;
    free(c->first_host);
    c->first_host = NULL;
    send_hop(c);
}

static bool is_json(const char *ct)
{
    return strncasecmp(ct, "application/json", 16) == 0 ||
           (strstr(ct, "+json") != NULL && strchr(ct, '/') != NULL);
}

static void finish_response(struct pcall *c)
{
    const char *body = c->resp.p ? c->resp.p : "";
    json_t *result, *parsed = NULL;

    if (c->status >= 400) {
        char msg[MCPD_MAX_PLUGIN_ERRBODY + 64];
        snprintf(
            msg, sizeof(msg), "HTTP %d from the API: %.*s", c->status,
            (int)(c->resp.len > MCPD_MAX_PLUGIN_ERRBODY ? MCPD_MAX_PLUGIN_ERRBODY : c->resp.len),
            body);
        call_finish(c, tool_text(msg, true));
        return;
    }
    if (is_json(c->ctype))
        parsed = json_loadb(body, c->resp.len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (parsed && c->op->text_pointer) {
        /* a JSON pointer: /a/b/0 (~0 and ~1 escapes) */
        const json_t *at = parsed;
        char tok[256];
        for (const char *p = c->op->text_pointer; at && *p == '/';) {
            size_t n = 0;
            for (p++; *p && *p != '/' && n < sizeof(tok) - 1; p++) {
                if (*p == '~' && (p[1] == '0' || p[1] == '1')) {
                    tok[n++] = p[1] == '0' ? '~' : '/';
                    p++;
                } else {
                    tok[n++] = *p;
                }
            }
            tok[n] = '\0';
            at = json_is_array(at) ? json_array_get(at, strtoul(tok, NULL, 10))
                                   : json_object_get(at, tok);
        }
        if (at && json_is_string(at)) {
            result = tool_text(json_string_value(at), false);
        } else if (at) {
            char *s = json_dumps(at, JSON_COMPACT | JSON_ENCODE_ANY);
            result = tool_text(s ? s : "", false);
            free(s);
        } else {
            result = tool_text("", false);
        }
    } else {
        json_t *text = json_stringn(body, c->resp.len); /* NULL: not UTF-8 */
        if (text == NULL)
            text = json_string("(binary response)");
        result = json_pack("{s:[{s:s, s:o}]}", "content", "type", "text", "text", text);
    }
    if (result && parsed)
        json_object_set_new(result, "structuredContent",
                            json_is_object(parsed) ? json_incref(parsed)
                                                   : json_pack("{s:O}", "result", parsed));
    json_decref(parsed);
    call_finish(c, result);
}

static void on_done(struct mcpd_http_call *h, int result, const char *why, void *data)
{
    struct pcall *c = data;
    struct plugin_up *pu = c->pu;
    const char *loc;
    (void)h;

    c->http = NULL;
    if (c->toobig) {
        call_fail(c, "the response is larger than %u bytes", MCPD_MAX_PLUGIN_RESPONSE);
        return;
    }
    if (result != 0) {
        call_fail(c, "request failed: %s", why ? why : mcpd_strerror(result));
        return;
    }
    if (c->status == 401 && c->secret && !c->retried && pu->pl->credential) {
        c->retried = true;
        if (mcpd_credential_rejected(pu->up.daemon, pu->pl->credential, c->secret, on_secret, c,
                                     &c->creq) != 0)
            call_fail(c, "HTTP 401 from the API and the credential could not be renewed");
        return;
    }
    if ((c->status == 301 || c->status == 302 || c->status == 303 || c->status == 307 ||
         c->status == 308) &&
        (loc = mcpd_http_call_header(h, "Location")) != NULL) {
        CURLU *u = curl_url();
        char *next = NULL;
        if (++c->hops > MCPD_MAX_PLUGIN_REDIRECTS) {
            curl_url_cleanup(u);
            call_fail(c, "too many redirects (more than %u)", MCPD_MAX_PLUGIN_REDIRECTS);
            return;
        }
        if (u == NULL || curl_url_set(u, CURLUPART_URL, c->url, 0) != CURLUE_OK ||
            curl_url_set(u, CURLUPART_URL, loc, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_URL, &next, 0) != CURLUE_OK) {
            curl_url_cleanup(u);
            call_fail(c, "redirect to an invalid location");
            return;
        }
        curl_url_cleanup(u);
        free(c->url);
        c->url = strdup(next);
        curl_free(next);
        if (c->url == NULL) {
            call_fail(c, "out of memory");
            return;
        }
        if (c->status == 303 ||
            ((c->status == 301 || c->status == 302) && strcmp(c->op->method, "POST") == 0))
            c->get_after_303 = true;
        send_hop(c);
        return;
    }
    finish_response(c);
}

static void start_call(struct plugin_up *pu, json_t *id, const struct mcpd_manifest_op *op,
                       json_t *args)
{
    struct pcall *c = calloc(1, sizeof(*c));
    char err[300];

    if (c == NULL) {
        reply_error(pu, id, -32603, "out of memory");
        return;
    }
    c->pu = pu;
    c->id = json_incref(id);
    c->op = op;
    c->args = args ? json_incref(args) : json_object();
    mcpd_buf_init(&c->resp, MCPD_MAX_PLUGIN_RESPONSE);
    c->next = pu->calls;
    if (pu->calls)
        pu->calls->prev = c;
    pu->calls = c;
    if (!json_is_object(c->args)) {
        call_fail(c, "arguments must be an object");
        return;
    }
    if (op->input && mcpd_manifest_check_schema(op->input, c->args, err, sizeof(err)) != NULL) {
        call_fail(c, "invalid arguments: %s", err);
        return;
    }
    if (pu->pl->credential) {
        if (mcpd_credential_get(pu->up.daemon, pu->pl->credential, on_secret, c, &c->creq) != 0)
            call_fail(c, "credential \"%s\" is unavailable", pu->pl->credential);
        return;
    }
    if (build_url(c, &c->url, err, sizeof(err)) != 0) {
        call_fail(c, "%s", err);
        return;
    }
    send_hop(c);
}

/* ---- MCP server ----------------------------------------------------------------------------- */

/* The exposed name of op, or NULL when allowedOperations leaves it out. */
static const char *exposed_name(const struct mcpd_plugin_config *pl,
                                const struct mcpd_manifest_op *op)
{
    if (pl->all_ops)
        return op->name;
    for (size_t i = 0; i < pl->naliases; i++)
        if (strcmp(pl->aliases[i].key, op->name) == 0)
            return pl->aliases[i].value ? pl->aliases[i].value : op->name;
    return NULL;
}

static json_t *tools_list(const struct plugin_up *pu)
{
    const struct mcpd_manifest *m = pu->pl->manifest;
    json_t *tools = json_array();
    for (size_t i = 0; tools && i < m->nops; i++) {
        const char *name = exposed_name(pu->pl, &m->ops[i]);
        json_t *t;
        if (name == NULL)
            continue;
        t = json_pack("{s:s, s:O}", "name", name, "inputSchema", m->ops[i].input);
        if (t && m->ops[i].description)
            json_object_set_new(t, "description", json_string(m->ops[i].description));
        json_array_append_new(tools, t);
    }
    return json_pack("{s:o}", "tools", tools);
}

static void handle_call(struct plugin_up *pu, json_t *id, json_t *params)
{
    const struct mcpd_manifest *m = pu->pl->manifest;
    const char *name = json_string_value(json_object_get(params, "name"));
    json_t *args = json_object_get(params, "arguments");

    for (size_t i = 0; name && i < m->nops; i++) {
        const char *ex = exposed_name(pu->pl, &m->ops[i]);
        if (ex && strcmp(ex, name) == 0) {
            start_call(pu, id, &m->ops[i], args);
            return;
        }
    }
    reply_error(pu, id, -32602, "unknown tool");
}

static void handle_cancel(struct plugin_up *pu, json_t *params)
{
    json_t *rid = json_object_get(params, "requestId");
    for (struct pcall *c = pu->calls; c && rid; c = c->next)
        if (json_equal(c->id, rid)) {
            call_free(c);
            return;
        }
}

static int up_send(struct mcpd_upstream *up, const char *data, size_t len)
{
    struct plugin_up *pu = from_up(up);
    json_t *msg, *id, *params;
    const char *method;

    if (!pu->running)
        return MCPD_ECLOSED;
    if ((msg = json_loadb(data, len, 0, NULL)) == NULL)
        return MCPD_EPROTO;
    method = json_string_value(json_object_get(msg, "method"));
    id = json_object_get(msg, "id");
    params = json_object_get(msg, "params");
    if (method == NULL) {
        /* a response to a server->client request: this server sends none */
    } else if (id == NULL) {
        if (strcmp(method, "notifications/cancelled") == 0)
            handle_cancel(pu, params);
    } else if (strcmp(method, "initialize") == 0) {
        const char *v = json_string_value(json_object_get(params, "protocolVersion"));
        json_t *info = json_pack("{s:s, s:s}", "name", pu->pl->manifest->name, "version",
                                 pu->pl->manifest->version);
        reply(pu, id,
              json_pack("{s:s, s:{s:{}}, s:o}", "protocolVersion", v ? v : "2025-06-18",
                        "capabilities", "tools", "serverInfo", info));
    } else if (strcmp(method, "ping") == 0) {
        reply(pu, id, json_object());
    } else if (strcmp(method, "tools/list") == 0) {
        reply(pu, id, tools_list(pu));
    } else if (strcmp(method, "tools/call") == 0) {
        handle_call(pu, id, params);
    } else {
        reply_error(pu, id, -32601, "method not found");
    }
    json_decref(msg);
    return 0;
}

static int up_start(struct mcpd_upstream *up)
{
    struct plugin_up *pu = from_up(up);
    int rc;
    if ((rc = mcpd_http_client_new(&pu->hc, up->daemon->loop)) != 0)
        return rc;
    mcpd_http_client_set_max_connections(pu->hc, MCPD_PLUGIN_KEEP_CONNS);
    pu->running = true;
    LOG_INFO("plugin", "upstream=%s plugin %s %s (%zu operations) ready", up->name,
             pu->pl->manifest->name, pu->pl->manifest->version, pu->pl->manifest->nops);
    mcpd_upstream_on_connected(up);
    return 0;
}

static void up_stop(struct mcpd_upstream *up)
{
    struct plugin_up *pu = from_up(up);
    if (!pu->running) {
        mcpd_upstream_on_disconnected(up, "stopped");
        return;
    }
    pu->running = false;
    while (pu->calls)
        call_free(pu->calls);
    mcpd_http_client_close(pu->hc);
    pu->hc = NULL;
    mcpd_buf_reset(&pu->outq);
    mcpd_upstream_on_disconnected(up, "stopped by mcpd");
}

static void on_flush_closed(uv_handle_t *h)
{
    struct plugin_up *pu = h->data;
    mcpd_buf_dispose(&pu->outq);
    free(pu);
}

static void up_free(struct mcpd_upstream *up)
{
    struct plugin_up *pu = from_up(up);
    while (pu->calls)
        call_free(pu->calls);
    if (pu->hc)
        mcpd_http_client_close(pu->hc);
    uv_close((uv_handle_t *)&pu->flush, on_flush_closed);
}

static const struct mcpd_upstream_ops plugin_ops = { "plugin", up_start, up_send, up_stop,
                                                     up_free };

int mcpd_plugin_upstream_new(struct mcpd_upstream **out, struct mcpd_daemon *d,
                             const struct mcpd_server_config *cfg)
{
    struct plugin_up *pu = calloc(1, sizeof(*pu));
    *out = NULL;
    if (pu == NULL)
        return MCPD_ENOMEM;
    mcpd_upstream_init(&pu->up, d, cfg, &plugin_ops);
    pu->pl = cfg->plugin;
    uv_idle_init(d->loop, &pu->flush);
    pu->flush.data = pu;
    mcpd_buf_init(&pu->outq, MCPD_MAX_UPSTREAM_MSG * 4u);
    *out = &pu->up;
    return 0;
}
