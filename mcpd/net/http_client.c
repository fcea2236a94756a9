/*
 * http_client.c - libcurl multi on libuv (see http_client.h).
 *
 * curl tells us which sockets to watch (socket callback) and when to call
 * it back (timer callback); we keep one uv_poll_t per socket and one
 * uv_timer_t per client and hand events back with curl_multi_socket_action.
 * Completed transfers are collected with curl_multi_info_read. Calls that
 * are cancelled from inside a curl callback are only marked; they are
 * removed once curl returns.
 */
#include "http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "../buf.h"
#include "../error.h"
#include "../limits.h"
#include "../log.h"

struct mcpd_http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct mcpd_http_call *calls; /* list */
    int depth;                    /* > 0 while inside curl or our callbacks */
    bool in_curl;                 /* inside curl_multi_socket_action: no adds allowed */
    bool closing;
};

struct mcpd_http_call {
    struct mcpd_http_client *hc;
    struct mcpd_http_call *prev, *next;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    const struct mcpd_http_call_ops *ops;
    void *data;
    struct mcpd_buf resp_headers; /* raw header lines of the last response */
    bool headers_reported, cancelled, done, added;
    char errbuf[CURL_ERROR_SIZE];
    const char *(*check_addr)(const struct sockaddr *sa, void *data);
    void *check_data;
    char refused[128]; /* why check_addr refused an address ("" if it did not) */
};

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct mcpd_http_client *hc;
};

static void check_done(struct mcpd_http_client *hc);

static void call_free(struct mcpd_http_call *c)
{
    struct mcpd_http_client *hc = c->hc;
    if (c->prev)
        c->prev->next = c->next;
    else
        hc->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->added)
        curl_multi_remove_handle(hc->multi, c->easy);
    curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->headers);
    free(c->body);
    mcpd_buf_dispose(&c->resp_headers);
    free(c);
}

/* ---- curl -> libuv ---------------------------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct sock_ctx *sc = h->data;
    struct mcpd_http_client *hc = sc->hc;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    hc->depth++;
    hc->in_curl = true;
    curl_multi_socket_action(hc->multi, sc->fd, flags, &running);
    hc->in_curl = false;
    hc->depth--;
    check_done(hc);
}

static void on_sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *sockp)
{
    struct mcpd_http_client *hc = userp;
    struct sock_ctx *sc = sockp;
    int events = 0;

    if (what == CURL_POLL_REMOVE) {
        if (sc) {
            uv_poll_stop(&sc->poll);
            uv_close((uv_handle_t *)&sc->poll, on_sock_closed);
            curl_multi_assign(hc->multi, fd, NULL);
        }
        return 0;
    }
    if (sc == NULL) {
        sc = calloc(1, sizeof(*sc));
        if (sc == NULL || uv_poll_init_socket(hc->loop, &sc->poll, fd) != 0) {
            free(sc);
            return -1;
        }
        sc->fd = fd;
        sc->hc = hc;
        sc->poll.data = sc;
        curl_multi_assign(hc->multi, fd, sc);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&sc->poll, events, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    struct mcpd_http_client *hc = t->data;
    int running;
    hc->depth++;
    hc->in_curl = true;
    curl_multi_socket_action(hc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    hc->in_curl = false;
    hc->depth--;
    check_done(hc);
}

static int on_timer(CURLM *multi, long ms, void *userp)
{
    struct mcpd_http_client *hc = userp;
    if (ms < 0)
        uv_timer_stop(&hc->timer);
    else
        uv_timer_start(&hc->timer, on_timeout, (uint64_t)ms, 0);
    return 0;
}

/* ---- transfers ---------------------------------------------------------------- */

static void report_headers(struct mcpd_http_call *c)
{
    long status = 0;
    char *ct = NULL;
    if (c->headers_reported || c->cancelled)
        return;
    c->headers_reported = true;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c->easy, CURLINFO_CONTENT_TYPE, &ct);
    c->ops->on_headers(c, (int)status, ct ? ct : "", c->data);
}

static size_t on_header_line(char *buf, size_t size, size_t n, void *userp)
{
    struct mcpd_http_call *c = userp;
    size_t len = size * n;
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0)
        mcpd_buf_reset(&c->resp_headers); /* a new response (after 100 or a redirect) */
    if (mcpd_buf_append(&c->resp_headers, buf, len) != 0)
        return 0; /* too many header bytes: abort */
    return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *userp)
{
    struct mcpd_http_call *c = userp;
    size_t len = size * n;
    if (c->cancelled)
        return 0;
    report_headers(c);
    if (c->cancelled || c->ops->on_data(c, buf, len, c->data) != 0 || c->cancelled)
        return 0;
    return len;
}

/* Egress pinning: the address checked is the address connected to. */
static curl_socket_t on_open_socket(void *userp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct mcpd_http_call *c = userp;
    const char *why;
    char host[INET6_ADDRSTRLEN] = "?";

    (void)purpose;
    why = c->check_addr((const struct sockaddr *)&addr->addr, c->check_data);
    if (why != NULL) {
        if (addr->family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(void *)&addr->addr)->sin_addr, host,
                      sizeof(host));
        else if (addr->family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(void *)&addr->addr)->sin6_addr,
                      host, sizeof(host));
        snprintf(c->refused, sizeof(c->refused), "egress refused: %s is %s", host, why);
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static void check_done(struct mcpd_http_client *hc)
{
    CURLMsg *msg;
    int left;
    if (hc->depth > 0)
        return;
    while ((msg = curl_multi_info_read(hc->multi, &left)) != NULL) {
        struct mcpd_http_call *c = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        if (c == NULL || c->done)
            continue;
        c->done = true;
        if (!c->cancelled) {
            CURLcode rc = msg->data.result;
            hc->depth++;
            if (rc == CURLE_OK)
                report_headers(c);
            if (!c->cancelled) {
                const char *why = c->refused[0]  ? c->refused
                                  : c->errbuf[0] ? c->errbuf
                                                 : curl_easy_strerror(rc);
                c->ops->on_done(c,
                                rc == CURLE_OK                   ? 0
                                : rc == CURLE_OPERATION_TIMEDOUT ? MCPD_ETIMEDOUT
                                                                 : MCPD_EUNAVAIL,
                                rc == CURLE_OK ? NULL : why, c->data);
            }
            hc->depth--;
        }
        call_free(c);
    }
    /* calls cancelled inside callbacks that curl has not finished yet, and
     * calls started inside curl's callbacks (curl refuses adds from there) */
    for (struct mcpd_http_call *c = hc->calls, *next; c; c = next) {
        next = c->next;
        if (c->cancelled) {
            call_free(c);
        } else if (!c->added) {
            c->added = true;
            if (curl_multi_add_handle(hc->multi, c->easy) != CURLM_OK) {
                c->done = true;
                hc->depth++;
                c->ops->on_done(c, MCPD_EUNAVAIL, "cannot start the request", c->data);
                hc->depth--;
                call_free(c);
            }
        }
    }
}

int mcpd_http_client_new(struct mcpd_http_client **out, uv_loop_t *loop)
{
    static bool global_init;
    struct mcpd_http_client *hc;

    *out = NULL;
    if (!global_init) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
            return MCPD_EUNAVAIL;
        global_init = true;
    }
    hc = calloc(1, sizeof(*hc));
    if (hc == NULL || (hc->multi = curl_multi_init()) == NULL) {
        free(hc);
        return MCPD_ENOMEM;
    }
    hc->loop = loop;
    uv_timer_init(loop, &hc->timer);
    hc->timer.data = hc;
    curl_multi_setopt(hc->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(hc->multi, CURLMOPT_SOCKETDATA, hc);
    curl_multi_setopt(hc->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(hc->multi, CURLMOPT_TIMERDATA, hc);
    *out = hc;
    return 0;
}

void mcpd_http_client_set_max_connections(struct mcpd_http_client *hc, unsigned n)
{
    curl_multi_setopt(hc->multi, CURLMOPT_MAXCONNECTS, (long)n);
}

static void on_client_timer_closed(uv_handle_t *h)
{
    struct mcpd_http_client *hc = h->data;
    curl_multi_cleanup(hc->multi);
    free(hc);
}

void mcpd_http_client_close(struct mcpd_http_client *hc)
{
    if (hc == NULL || hc->closing)
        return;
    hc->closing = true;
    while (hc->calls)
        call_free(hc->calls); /* removing each handle closes its sockets via on_socket */
    uv_close((uv_handle_t *)&hc->timer, on_client_timer_closed);
}

int mcpd_http_call_start(struct mcpd_http_call **out, struct mcpd_http_client *hc,
                         const struct mcpd_http_spec *spec, const struct mcpd_http_call_ops *ops,
                         void *data)
{
    struct mcpd_http_call *c;

    *out = NULL;
    if (hc->closing)
        return MCPD_ECLOSED;
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->easy = curl_easy_init()) == NULL) {
        free(c);
        return MCPD_ENOMEM;
    }
    c->hc = hc;
    c->ops = ops;
    c->data = data;
    mcpd_buf_init(&c->resp_headers, MCPD_MAX_HEADER_BYTES);
    for (size_t i = 0; spec->headers && spec->headers[i]; i++) {
        struct curl_slist *l = curl_slist_append(c->headers, spec->headers[i]);
        if (l == NULL)
            goto nomem;
        c->headers = l;
    }
    if (spec->body) {
        if ((c->body = malloc(spec->body_len + 1)) == NULL)
            goto nomem;
        memcpy(c->body, spec->body, spec->body_len);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)spec->body_len);
    }
    curl_easy_setopt(c->easy, CURLOPT_URL, spec->url);
    curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, spec->method);
    if (strcmp(spec->method, "GET") == 0)
        curl_easy_setopt(c->easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
    curl_easy_setopt(c->easy, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(c->easy, CURLOPT_HEADERFUNCTION, on_header_line);
    curl_easy_setopt(c->easy, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->easy, CURLOPT_FOLLOWLOCATION, 0L);  /* MCP endpoints do not redirect */
    curl_easy_setopt(c->easy, CURLOPT_ACCEPT_ENCODING, ""); /* bodies are capped after decoding */
    curl_easy_setopt(c->easy, CURLOPT_TCP_NODELAY, 1L);
    if (spec->connect_timeout_ms)
        curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)spec->connect_timeout_ms);
    if (spec->timeout_ms)
        curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, (long)spec->timeout_ms);
    if (spec->check_addr) {
        c->check_addr = spec->check_addr;
        c->check_data = spec->check_data;
        curl_easy_setopt(c->easy, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
        curl_easy_setopt(c->easy, CURLOPT_OPENSOCKETDATA, c);
        curl_easy_setopt(c->easy, CURLOPT_PROXY, ""); /* no proxy from the environment */
        curl_easy_setopt(c->easy, CURLOPT_NOPROXY, "*");
    }
    if (spec->insecure) {
        curl_easy_setopt(c->easy, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c->easy, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    c->next = hc->calls;
    if (hc->calls)
        hc->calls->prev = c;
    hc->calls = c;
    *out = c;
    if (hc->in_curl)
        return 0; /* added by check_done once curl returns */
    c->added = true;
    if (curl_multi_add_handle(hc->multi, c->easy) != CURLM_OK) {
        call_free(c);
        *out = NULL;
        return MCPD_EUNAVAIL;
    }
    return 0;
nomem:
    curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->headers);
    mcpd_buf_dispose(&c->resp_headers);
    free(c);
    return MCPD_ENOMEM;
}

void mcpd_http_call_cancel(struct mcpd_http_call *c)
{
    if (c == NULL || c->cancelled)
        return;
    c->cancelled = true;
    if (c->hc->depth == 0 && !c->done)
        call_free(c);
}

const char *mcpd_http_call_header(struct mcpd_http_call *c, const char *name)
{
    /* headers are "Name: value\r\n" lines; return a NUL-terminated copy slot */
    static char value[1024];
    size_t nl = strlen(name);
    const char *p = c->resp_headers.p, *end = p ? p + c->resp_headers.len : NULL;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        size_t len = eol ? (size_t)(eol - p) : (size_t)(end - p);
        if (len > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1;
            size_t vl = len - nl - 1;
            while (vl && (*v == ' ' || *v == '\t')) {
                v++;
                vl--;
            }
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
                vl--;
            if (vl >= sizeof(value))
                return NULL;
            memcpy(value, v, vl);
            value[vl] = '\0';
            return value;
        }
        p = eol ? eol + 1 : end;
    }
    return NULL;
}
