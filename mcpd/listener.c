/*
 * listener.c - one HTTP listener shared by the HTTP transports (see
 * listener.h). Host and Origin validation lives here so that no transport
 * can forget it.
 */
#include "listener.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "authz.h"
#include "daemon.h"
#include "error.h"
#include "jsonrpc.h"
#include "limits.h"
#include "log.h"
#include "net/tls.h"

#define MAX_ROUTES 8

struct route {
    char *path;
    mcpd_http_handler cb;
    void *data;
};

struct mcpd_listener {
    struct mcpd_http_server *srv;
    struct mcpd_tls_ctx *tls; /* NULL: plain HTTP */
    struct route routes[MAX_ROUTES];
    unsigned nroutes;
    int port;
};

static struct mcpd_listener *get(struct mcpd_daemon *d)
{
    if (d->listener == NULL)
        d->listener = calloc(1, sizeof(*d->listener));
    return d->listener;
}

int mcpd_listener_route(struct mcpd_daemon *d, const char *path, mcpd_http_handler cb, void *data)
{
    struct mcpd_listener *l = get(d);
    if (l == NULL)
        return MCPD_ENOMEM;
    if (l->nroutes == MAX_ROUTES)
        return MCPD_ECONFIG;
    for (unsigned i = 0; i < l->nroutes; i++) {
        if (strcmp(l->routes[i].path, path) == 0) {
            LOG_ERROR("http", "two transports claim the path %s", path);
            return MCPD_ECONFIG;
        }
    }
    if ((l->routes[l->nroutes].path = strdup(path)) == NULL)
        return MCPD_ENOMEM;
    l->routes[l->nroutes].cb = cb;
    l->routes[l->nroutes++].data = data;
    return 0;
}

bool mcpd_listener_tls(const struct mcpd_daemon *d)
{
    return d->listener && d->listener->tls;
}

int mcpd_listener_port(const struct mcpd_daemon *d)
{
    return d->listener ? d->listener->port : 0;
}

void mcpd_http_respond_rpc_error(struct mcpd_http_conn *c, int status, int code, const char *msg)
{
    struct mcpd_buf b;
    json_t *e = mcpd_jsonrpc_error_new(NULL, code, msg, NULL);
    mcpd_buf_init(&b, 4096);
    if (e == NULL || mcpd_jsonrpc_dump(&b, e) != 0)
        mcpd_buf_reset(&b);
    mcpd_http_respond(c, status, "application/json", NULL, b.p ? b.p : "", b.len);
    mcpd_buf_dispose(&b);
    json_decref(e);
}

/* Host header value without its port, lowercased into `out`. */
static void host_only(char *out, size_t cap, const char *h)
{
    size_t n;
    const char *end;
    if (h[0] == '[') {
        end = strchr(h, ']');
        n = end ? (size_t)(end - h + 1) : strlen(h);
    } else {
        end = strchr(h, ':');
        n = end ? (size_t)(end - h) : strlen(h);
    }
    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)(h[i] >= 'A' && h[i] <= 'Z' ? h[i] + 32 : h[i]);
    out[n] = '\0';
}

bool mcpd_listener_host_allowed(const struct mcpd_config *cfg, const char *host)
{
    char h[256];
    host_only(h, sizeof(h), host);
    for (size_t i = 0; i < cfg->nallowed_hosts; i++)
        if (strcasecmp(cfg->allowed_hosts[i], h) == 0)
            return true;
    return false;
}

/* '*' matches any run of characters; used for allowed_origins. Linear: one backtrack point. */
static bool glob_match(const char *p, const char *s)
{
    const char *star = NULL, *ss = s;
    while (*s) {
        if (*p == '*') {
            star = p++;
            ss = s;
        } else if (*p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++ss;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

bool mcpd_listener_origin_allowed(const struct mcpd_config *cfg, const char *origin)
{
    const char *h = strstr(origin, "://");
    for (size_t i = 0; i < cfg->nallowed_origins; i++)
        if (glob_match(cfg->allowed_origins[i], origin))
            return true;
    if (h == NULL || strncmp(origin, "http", 4) != 0)
        return false;
    return mcpd_listener_host_allowed(cfg, h + 3);
}

static void ignore_audit(int status, void *data)
{
}

bool mcpd_listener_authenticate(struct mcpd_daemon *d, struct mcpd_http_conn *c,
                                struct mcpd_http_request *req, const char **bot,
                                unsigned char key_hash[32])
{
    const char *h = mcpd_http_header(req, "authorization");
    const char *why;

    *bot = NULL;
    if (!mcpd_authz_active(d->authz))
        return true;
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        why = "missing bearer key";
    } else {
        for (h += 7; *h == ' '; h++)
            ;
        if ((*bot = mcpd_authz_bot_for_key(d->authz, h, key_hash)) != NULL)
            return true;
        why = "unknown, revoked or disabled key";
    }
    LOG_INFO("http", "peer=%s refused: %s", req->peer, why);
    {
        struct mcpd_audit_record r = { .kind = MCPD_AUDIT_AUTH,
                                       .transport = "http",
                                       .decision = "deny",
                                       .reason = why,
                                       .status = "unauthorized",
                                       .location = req->peer };
        mcpd_authz_audit(d->authz, &r, ignore_audit, NULL); /* never the key itself */
    }
    mcpd_http_respond(
        c, 401, "application/json",
        "WWW-Authenticate: Bearer realm=\"mcpd\", error=\"invalid_token\"\r\n",
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,\"message\":\"Unauthorized: a "
        "valid bot key is required (Authorization: Bearer mk_...)\"}}",
        strlen("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32000,\"message\":"
               "\"Unauthorized: a valid bot key is required (Authorization: Bearer mk_...)\"}}"));
    return false;
}

static void on_request(struct mcpd_http_conn *c, struct mcpd_http_request *req, void *data)
{
    struct mcpd_daemon *d = data;
    struct mcpd_listener *l = d->listener;
    const char *host = mcpd_http_header(req, "host");
    const char *origin = mcpd_http_header(req, "origin");

    /* DNS rebinding: the Host and any Origin must name this server */
    if (host == NULL) {
        mcpd_http_respond_rpc_error(c, 400, MCPD_RPC_SERVER_ERROR,
                                    "Bad Request: Host header is required");
        return;
    }
    if (!mcpd_listener_host_allowed(d->cfg, host) ||
        (origin && !mcpd_listener_origin_allowed(d->cfg, origin))) {
        LOG_WARN("http", "peer=%s refused: host or origin not allowed", req->peer);
        mcpd_http_respond_rpc_error(c, 403, MCPD_RPC_SERVER_ERROR,
                                    "Forbidden: Host or Origin not allowed");
        return;
    }
    for (unsigned i = 0; i < l->nroutes; i++) {
        if (strcmp(req->path, l->routes[i].path) == 0) {
            l->routes[i].cb(c, req, l->routes[i].data);
            return;
        }
    }
    mcpd_http_respond_rpc_error(c, 404, MCPD_RPC_SERVER_ERROR, "Not Found");
}

int mcpd__listener_start(struct mcpd_daemon *d)
{
    struct mcpd_listener *l = d->listener;
    const struct mcpd_config *cfg = d->cfg;
    struct mcpd_http_limits lim = {
        .max_request_line = MCPD_MAX_REQUEST_LINE,
        .max_header_bytes = MCPD_MAX_HEADER_BYTES,
        .max_headers = MCPD_MAX_HEADERS,
        .max_body = cfg->limits.max_message,
        .header_timeout_ms = cfg->limits.header_timeout_ms,
        .body_timeout_ms = cfg->limits.body_timeout_ms,
        .idle_timeout_ms = cfg->limits.idle_timeout_ms,
        .max_connections = cfg->limits.max_connections,
    };
    bool v6;
    int r;

    if (l == NULL || l->nroutes == 0)
        return 0;
    if (cfg->listen_host == NULL) {
        LOG_ERROR("http", "no listen address configured (listen: or --listen)");
        return MCPD_ECONFIG;
    }
    if (cfg->listen_tls_cert && l->tls == NULL) {
        char err[512];
        if (mcpd_tls_server_ctx_new(&l->tls, cfg->listen_tls_cert, cfg->listen_tls_key, err,
                                    sizeof(err)) != 0) {
            LOG_ERROR("http", "listen.tls: %s", err);
            return MCPD_ECONFIG;
        }
    }
    r = mcpd_http_server_start(&l->srv, d->loop, cfg->listen_host, cfg->listen_port, &lim,
                               on_request, d);
    if (r != 0) {
        LOG_ERROR("http", "cannot listen on %s:%d: %s", cfg->listen_host, cfg->listen_port,
                  uv_strerror(r));
        return r;
    }
    if (l->tls)
        mcpd_http_server_set_tls(l->srv, l->tls);
    l->port = mcpd_http_server_port(l->srv);
    v6 = strchr(cfg->listen_host, ':') != NULL;
    for (unsigned i = 0; i < l->nroutes; i++)
        LOG_INFO("http", "listening on %s://%s%s%s:%d%s", l->tls ? "https" : "http", v6 ? "[" : "",
                 cfg->listen_host, v6 ? "]" : "", l->port, l->routes[i].path);
    return 0;
}

void mcpd__listener_stop(struct mcpd_daemon *d)
{
    if (d->listener && d->listener->srv)
        mcpd_http_server_stop_accepting(d->listener->srv);
}

void mcpd__listener_close(struct mcpd_daemon *d)
{
    struct mcpd_listener *l = d->listener;
    if (l == NULL)
        return;
    mcpd_http_server_close(l->srv); /* aborts every held exchange and stream */
    mcpd_tls_ctx_free(l->tls);      /* connections still closing hold their own reference */
    for (unsigned i = 0; i < l->nroutes; i++)
        free(l->routes[i].path);
    free(l);
    d->listener = NULL;
}
