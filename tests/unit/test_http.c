/*
 * test_http.c - the HTTP/1.1 server (mcpd/net/http_server.c) over a real
 * loopback socket.
 *
 * The server runs on the test's uv loop in the main thread with small
 * limits and timeouts. Each test runs one client scenario in a second
 * thread over plain blocking sockets; the scenario checks what it reads
 * and records the first mismatch (cmocka's asserts must stay on the main
 * thread, which reports it). The handler answers "200 hello" on "/", and
 * has paths that echo, answer later from a uv_timer, stream three chunks,
 * or never answer (to observe the abort callback). Every test ends with
 * mcpd_http_server_close() and uv_loop_close() == 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* cmocka.h needs these four first. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <uv.h>

#include "mcpd/log.h"
#include "mcpd/net/http_server.h"

#define MAX_LINE       1024
#define MAX_HDR        4096
#define MAX_HEADERS    10
#define MAX_BODY       1024
#define TIMEOUT_MS     300
#define MAX_CLIENT_FDS 16

/* ---- fixture and handler (main thread) ------------------------------------------------------- */

struct fixture {
    uv_loop_t loop;
    uv_timer_t tick;
    struct mcpd_http_server *srv;
    int port;
    atomic_int requests; /* handler calls */
    atomic_int aborted;  /* abort callbacks */
    atomic_int done;     /* the client scenario finished */
    int keep_fd[4];      /* client sockets the main thread closes after the server */
    int client_fds[MAX_CLIENT_FDS];
    void (*scenario)(struct fixture *f);
    char fail[2048]; /* first mismatch seen by the client */
};

struct async_req {
    uv_timer_t timer;
    struct mcpd_http_conn *c;
    struct fixture *f;
};

static void on_async_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_async_abort(struct mcpd_http_conn *c, void *data)
{
    struct async_req *a = data;
    atomic_fetch_add(&a->f->aborted, 1);
    a->c = NULL;
    uv_timer_stop(&a->timer);
    uv_close((uv_handle_t *)&a->timer, on_async_closed);
}

static void on_async_timer(uv_timer_t *t)
{
    struct async_req *a = t->data;
    struct mcpd_http_conn *c = a->c;

    a->c = NULL;
    mcpd_http_conn_on_abort(c, NULL, NULL);
    uv_close((uv_handle_t *)&a->timer, on_async_closed);
    mcpd_http_respond(c, 200, "text/plain", NULL, "async", 5);
}

static void on_hang_abort(struct mcpd_http_conn *c, void *data)
{
    struct fixture *f = data;
    atomic_fetch_add(&f->aborted, 1);
}

static void respond_str(struct mcpd_http_conn *c, const char *body)
{
    mcpd_http_respond(c, 200, "text/plain", NULL, body, strlen(body));
}

static const char *hdr_or_dash(const struct mcpd_http_request *req, const char *name)
{
    const char *v = mcpd_http_header(req, name);
    return v ? v : "-";
}

static void on_request(struct mcpd_http_conn *c, struct mcpd_http_request *req, void *data)
{
    struct fixture *f = data;
    char small[512];

    atomic_fetch_add(&f->requests, 1);
    if (strcmp(req->path, "/") == 0) {
        mcpd_http_respond(c, 200, "text/plain", NULL, "hello", 5);
    } else if (strcmp(req->path, "/echo") == 0) {
        size_t n = strlen(req->method) + 1 + req->body_len;
        char *out = malloc(n + 1);
        assert_non_null(out);
        snprintf(out, n + 1, "%s ", req->method);
        memcpy(out + strlen(req->method) + 1, req->body, req->body_len);
        /* the body is NUL-terminated for the handler's convenience */
        assert_int_equal(req->body[req->body_len], '\0');
        mcpd_http_respond(c, 200, "application/octet-stream", NULL, out, n);
        free(out);
    } else if (strcmp(req->path, "/headers") == 0) {
        snprintf(small, sizeof(small), "n=%u a=[%s] b=[%s] e=[%s] q=[%s] ka=%d", req->nheaders,
                 hdr_or_dash(req, "x-a"), hdr_or_dash(req, "X-B"), hdr_or_dash(req, "x-empty"),
                 req->query, req->keep_alive);
        respond_str(c, small);
    } else if (strcmp(req->path, "/peer") == 0) {
        respond_str(c, req->peer);
    } else if (strcmp(req->path, "/async") == 0) {
        struct async_req *a = calloc(1, sizeof(*a));
        assert_non_null(a);
        a->c = c;
        a->f = f;
        uv_timer_init(&f->loop, &a->timer);
        a->timer.data = a;
        mcpd_http_conn_on_abort(c, on_async_abort, a);
        uv_timer_start(&a->timer, on_async_timer, 50, 0);
    } else if (strcmp(req->path, "/hang") == 0) {
        mcpd_http_conn_on_abort(c, on_hang_abort, f);
    } else if (strcmp(req->path, "/stream") == 0) {
        assert_int_equal(mcpd_http_stream_begin(c, 200, "text/event-stream", NULL), 0);
        assert_int_equal(mcpd_http_stream_write(c, "one", 3), 0);
        assert_int_equal(mcpd_http_stream_write(c, "two", 3), 0);
        assert_int_equal(mcpd_http_stream_write(c, "three", 5), 0);
        mcpd_http_stream_end(c, true);
    } else {
        snprintf(small, sizeof(small), "hello %s%s%s", req->path, req->query[0] ? "?" : "",
                 req->query);
        respond_str(c, small);
    }
}

static void on_tick(uv_timer_t *t)
{
    /* only wakes uv_run(UV_RUN_ONCE) so the main thread sees the client finish */
}

static int setup_limits(void **state, unsigned max_connections)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct mcpd_http_limits lim = {
        .max_request_line = MAX_LINE,
        .max_header_bytes = MAX_HDR,
        .max_headers = MAX_HEADERS,
        .max_body = MAX_BODY,
        .header_timeout_ms = TIMEOUT_MS,
        .body_timeout_ms = TIMEOUT_MS,
        .idle_timeout_ms = TIMEOUT_MS,
        .max_connections = max_connections,
    };

    assert_non_null(f);
    for (int i = 0; i < 4; i++)
        f->keep_fd[i] = -1;
    for (int i = 0; i < MAX_CLIENT_FDS; i++)
        f->client_fds[i] = -1;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->tick), 0);
    assert_int_equal(mcpd_http_server_start(&f->srv, &f->loop, "127.0.0.1", 0, &lim, on_request, f),
                     0);
    f->port = mcpd_http_server_port(f->srv);
    assert_true(f->port > 0);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_limits(state, 16);
}

static int setup_two_conns(void **state)
{
    return setup_limits(state, 2);
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    mcpd_http_server_close(f->srv);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 4; i++)
        if (f->keep_fd[i] >= 0)
            close(f->keep_fd[i]);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void *client_main(void *arg)
{
    struct fixture *f = arg;
    f->scenario(f);
    atomic_store(&f->done, 1);
    return NULL;
}

/* Runs `scenario` in a client thread while the loop serves; fails the test on a mismatch. */
static void run_client(struct fixture *f, void (*scenario)(struct fixture *f))
{
    pthread_t th;

    f->scenario = scenario;
    uv_timer_start(&f->tick, on_tick, 5, 5);
    assert_int_equal(pthread_create(&th, NULL, client_main, f), 0);
    while (!atomic_load(&f->done))
        uv_run(&f->loop, UV_RUN_ONCE);
    pthread_join(th, NULL);
    for (int i = 0; i < MAX_CLIENT_FDS; i++) {
        if (f->client_fds[i] >= 0) {
            close(f->client_fds[i]);
            f->client_fds[i] = -1;
        }
    }
    /*
     * Let the server see what the client did last (a close, usually): only
     * the connections handed over in keep_fd may still be open afterwards.
     */
    {
        unsigned kept = 0;
        uint64_t deadline = uv_now(&f->loop) + 2000;
        for (int i = 0; i < 4; i++)
            kept += f->keep_fd[i] >= 0;
        for (int i = 0; i < 20; i++)
            uv_run(&f->loop, UV_RUN_NOWAIT);
        while (mcpd_http_server_connections(f->srv) > kept && uv_now(&f->loop) < deadline)
            uv_run(&f->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&f->tick);
    if (f->fail[0])
        fail_msg("%s", f->fail);
}

/* ---- client side (client thread) ------------------------------------------------------------- */

struct conn {
    int fd;
    char buf[1 << 16];
    size_t len; /* received, not yet consumed */
};

struct resp {
    int status;
    char head[8192]; /* status line and header lines, with the blank line */
    char body[8192]; /* decoded */
    size_t body_len;
    char raw_body[8192]; /* as received (chunk framing included) */
    size_t raw_len;
};

static void failed(struct fixture *f, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void failed(struct fixture *f, int line, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (f->fail[0])
        return;
    n = snprintf(f->fail, sizeof(f->fail), "test_http.c:%d: ", line);
    va_start(ap, fmt);
    vsnprintf(f->fail + n, sizeof(f->fail) - (size_t)n, fmt, ap);
    va_end(ap);
}

#define CHECK(f, cond)                                        \
    do {                                                      \
        if (!(cond)) {                                        \
            failed((f), __LINE__, "check failed: %s", #cond); \
            return;                                           \
        }                                                     \
    } while (0)

#define CHECK_INT(f, got, want)                                           \
    do {                                                                  \
        long long g_ = (long long)(got), w_ = (long long)(want);          \
        if (g_ != w_) {                                                   \
            failed((f), __LINE__, "%s == %lld, want %lld", #got, g_, w_); \
            return;                                                       \
        }                                                                 \
    } while (0)

#define CHECK_STR(f, got, want)                                                               \
    do {                                                                                      \
        const char *g_ = (got), *w_ = (want);                                                 \
        if (g_ == NULL || strcmp(g_, w_) != 0) {                                              \
            failed((f), __LINE__, "%s == \"%s\", want \"%s\"", #got, g_ ? g_ : "(null)", w_); \
            return;                                                                           \
        }                                                                                     \
    } while (0)

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Client sockets still open; closed by run_client when a scenario stops early. */
static void track(struct fixture *f, int fd, bool add)
{
    for (int i = 0; i < MAX_CLIENT_FDS; i++) {
        if (add ? f->client_fds[i] < 0 : f->client_fds[i] == fd) {
            f->client_fds[i] = add ? fd : -1;
            return;
        }
    }
}

static int dial(struct fixture *f, struct conn *k)
{
    int port = f->port;
    struct sockaddr_in sa;
    struct timeval tv = { 3, 0 };
    int one = 1;

    memset(k, 0, sizeof(*k));
    k->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (k->fd < 0)
        return -1;
    setsockopt(k->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(k->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(k->fd);
        k->fd = -1;
        return -1;
    }
    track(f, k->fd, true);
    return 0;
}

static void hangup(struct fixture *f, struct conn *k)
{
    if (k->fd >= 0) {
        track(f, k->fd, false);
        close(k->fd);
    }
    k->fd = -1;
}

static int send_all(struct conn *k, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(k->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_str(struct conn *k, const char *s)
{
    return send_all(k, s, strlen(s));
}

/* Reads more into k->buf. Returns bytes read, 0 on EOF, -1 on error or timeout. */
static int fill(struct conn *k)
{
    ssize_t n;
    if (k->len >= sizeof(k->buf))
        return -1;
    do
        n = recv(k->fd, k->buf + k->len, sizeof(k->buf) - k->len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        k->len += (size_t)n;
    return n < 0 ? -1 : (int)n;
}

static void consume(struct conn *k, size_t n)
{
    memmove(k->buf, k->buf + n, k->len - n);
    k->len -= n;
}

/* Waits until `len` bytes are buffered. */
static int need(struct conn *k, size_t len)
{
    while (k->len < len)
        if (fill(k) <= 0)
            return -1;
    return 0;
}

/* Sets *end just past the first `term` in the buffer, reading as needed. Returns 0 or -1. */
static int need_line(struct conn *k, const char *term, size_t *end)
{
    size_t tl = strlen(term);
    for (;;) {
        for (size_t i = 0; i + tl <= k->len; i++) {
            if (memcmp(k->buf + i, term, tl) == 0) {
                *end = i + tl;
                return 0;
            }
        }
        if (fill(k) <= 0)
            return -1;
    }
}

/* Finds header `name` in a response head (case-insensitive); copies its value. */
static const char *header(const struct resp *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = strstr(r->head, "\r\n");

    while (p && p[2] != '\r') {
        const char *line = p + 2, *eol = strstr(line, "\r\n");
        if (eol && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(eol - v), v);
            return out;
        }
        p = eol;
    }
    return NULL;
}

/* Reads one response (1xx interim responses included). Returns 0 or -1. */
static int read_response(struct conn *k, struct resp *r)
{
    size_t end;
    char v[64];
    char *stop;

    memset(r, 0, sizeof(*r));
    if (need_line(k, "\r\n\r\n", &end) != 0 || end >= sizeof(r->head))
        return -1;
    memcpy(r->head, k->buf, end);
    r->head[end] = '\0';
    consume(k, end);
    if (strncmp(r->head, "HTTP/1.1 ", 9) != 0)
        return -1;
    r->status = (int)strtol(r->head + 9, &stop, 10);
    if (r->status < 200)
        return 0;
    if (header(r, "Transfer-Encoding", v, sizeof(v)) && strcmp(v, "chunked") == 0) {
        for (;;) {
            unsigned long n;
            if (need_line(k, "\r\n", &end) != 0)
                return -1;
            n = strtoul(k->buf, &stop, 16);
            if (n + end + 2 > sizeof(r->raw_body) - r->raw_len || need(k, end + n + 2) != 0)
                return -1;
            memcpy(r->raw_body + r->raw_len, k->buf, end + n + 2);
            r->raw_len += end + n + 2;
            memcpy(r->body + r->body_len, k->buf + end, n);
            r->body_len += n;
            consume(k, end + n + 2);
            if (n == 0)
                return 0;
        }
    }
    if (header(r, "Content-Length", v, sizeof(v))) {
        unsigned long n = strtoul(v, &stop, 10);
        if (n >= sizeof(r->body) || need(k, n) != 0)
            return -1;
        memcpy(r->body, k->buf, n);
        r->body_len = n;
        memcpy(r->raw_body, k->buf, n);
        r->raw_len = n;
        consume(k, n);
    }
    return 0;
}

/* Reads the next final response, skipping "100 Continue". */
static int read_final(struct conn *k, struct resp *r)
{
    do {
        if (read_response(k, r) != 0)
            return -1;
    } while (r->status < 200);
    return 0;
}

/* True when the server closes the connection within `ms` without sending anything more. */
static bool closed_within(struct conn *k, int ms)
{
    struct pollfd p = { k->fd, POLLIN, 0 };
    long deadline = now_ms() + ms;
    while (now_ms() < deadline) {
        int r = poll(&p, 1, 50);
        if (r > 0) {
            char c;
            ssize_t n = recv(k->fd, &c, 1, 0);
            return n == 0 || (n < 0 && errno == ECONNRESET);
        }
    }
    return false;
}

/* True when nothing arrives (and no close) within `ms`. */
static bool quiet_for(struct conn *k, int ms)
{
    struct pollfd p = { k->fd, POLLIN, 0 };
    return poll(&p, 1, ms) == 0;
}

static bool wait_counter(atomic_int *v, int want, int ms)
{
    long deadline = now_ms() + ms;
    while (atomic_load(v) < want && now_ms() < deadline)
        sleep_ms(5);
    return atomic_load(v) >= want;
}

/* Sends `req` and checks a 200 response whose body is `body`. */
#define EXPECT_200(f, k, req, want_body)     \
    do {                                     \
        struct resp r_;                      \
        CHECK(f, send_str((k), (req)) == 0); \
        CHECK(f, read_final((k), &r_) == 0); \
        CHECK_INT(f, r_.status, 200);        \
        CHECK_STR(f, r_.body, (want_body));  \
    } while (0)

/* Sends `req`, checks an error `status` (and `body` unless NULL), then the connection closes. */
#define EXPECT_ERROR_CLOSE(f, k, req, req_len, want_status, want_body)    \
    do {                                                                  \
        struct resp r_;                                                   \
        char v_[64];                                                      \
        send_all((k), (req), (req_len));                                  \
        CHECK(f, read_final((k), &r_) == 0);                              \
        CHECK_INT(f, r_.status, (want_status));                           \
        CHECK_STR(f, header(&r_, "Connection", v_, sizeof(v_)), "close"); \
        if ((want_body) != NULL)                                          \
            CHECK_STR(f, r_.body, (want_body));                           \
        CHECK(f, closed_within((k), 2000));                               \
    } while (0)

/* ---- scenarios ------------------------------------------------------------------------------- */

static void sc_simple_get(struct fixture *f)
{
    struct conn k;
    struct resp r;

    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n") == 0);
    CHECK(f, read_final(&k, &r) == 0);
    CHECK_STR(f, r.head,
              "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n");
    CHECK_STR(f, r.body, "hello");
    CHECK_INT(f, atomic_load(&f->requests), 1);
    /* the query is split off the path */
    EXPECT_200(f, &k, "GET /q?x=1&y=%20 HTTP/1.1\r\nHost: h\r\n\r\n", "hello /q?x=1&y=%20");
    hangup(f, &k);
}

static void sc_keep_alive(struct fixture *f)
{
    struct conn k;
    struct sockaddr_in me;
    socklen_t len = sizeof(me);
    char want[64];

    CHECK(f, dial(f, &k) == 0);
    CHECK(f, getsockname(k.fd, (struct sockaddr *)&me, &len) == 0);
    snprintf(want, sizeof(want), "127.0.0.1:%d", ntohs(me.sin_port));
    /* two requests on the same connection, both answered, both from this peer */
    EXPECT_200(f, &k, "GET /peer HTTP/1.1\r\nHost: h\r\n\r\n", want);
    EXPECT_200(f, &k, "GET /peer HTTP/1.1\r\nHost: h\r\n\r\n", want);
    EXPECT_200(f, &k, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "hello");
    CHECK_INT(f, atomic_load(&f->requests), 3);
    CHECK(f, quiet_for(&k, 100));
    hangup(f, &k);
}

static void sc_pipelined(struct fixture *f)
{
    struct conn k;
    struct resp r;
    static const char *const want[] = { "hello /p1", "async", "hello /p3", "POST abc",
                                        "hello /p5" };

    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "GET /p1 HTTP/1.1\r\nHost: h\r\n\r\n"
                          "GET /async HTTP/1.1\r\nHost: h\r\n\r\n"
                          "GET /p3 HTTP/1.1\r\nHost: h\r\n\r\n"
                          "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                          "GET /p5 HTTP/1.1\r\nHost: h\r\n\r\n") == 0);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        CHECK(f, read_final(&k, &r) == 0);
        CHECK_INT(f, r.status, 200);
        CHECK_STR(f, r.body, want[i]);
    }
    CHECK(f, quiet_for(&k, 100));
    hangup(f, &k);
}

static void sc_request_line_limit(struct fixture *f)
{
    struct conn k;
    char req[4096];
    int n;

    /* a URL of exactly MAX_LINE bytes is fine */
    CHECK(f, dial(f, &k) == 0);
    n = snprintf(req, sizeof(req), "GET /%0*d HTTP/1.1\r\nHost: h\r\n\r\n", MAX_LINE - 1, 0);
    CHECK(f, send_all(&k, req, (size_t)n) == 0);
    {
        struct resp r;
        CHECK(f, read_final(&k, &r) == 0);
        CHECK_INT(f, r.status, 200);
    }
    /* one more: 414, and the connection closes */
    n = snprintf(req, sizeof(req), "GET /%0*d HTTP/1.1\r\nHost: h\r\n\r\n", MAX_LINE, 0);
    EXPECT_ERROR_CLOSE(f, &k, req, (size_t)n, 414, "request line too long\n");
    hangup(f, &k);

    /* far past it, sent before the server answers */
    CHECK(f, dial(f, &k) == 0);
    n = snprintf(req, sizeof(req), "GET /%03000d HTTP/1.1\r\n\r\n", 0);
    EXPECT_ERROR_CLOSE(f, &k, req, (size_t)n, 414, "request line too long\n");
    hangup(f, &k);
}

static void sc_header_limits(struct fixture *f)
{
    struct conn k;
    char req[8192];
    size_t n;

    /* MAX_HEADERS headers are fine */
    CHECK(f, dial(f, &k) == 0);
    n = (size_t)snprintf(req, sizeof(req), "GET /headers HTTP/1.1\r\n");
    for (int i = 0; i < MAX_HEADERS; i++)
        n += (size_t)snprintf(req + n, sizeof(req) - n, "X-H%d: %d\r\n", i, i);
    n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n");
    CHECK(f, send_all(&k, req, n) == 0);
    {
        struct resp r;
        CHECK(f, read_final(&k, &r) == 0);
        CHECK_INT(f, r.status, 200);
        CHECK_STR(f, r.body, "n=10 a=[-] b=[-] e=[-] q=[] ka=1");
    }
    /* one more: 431 */
    n = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\n");
    for (int i = 0; i <= MAX_HEADERS; i++)
        n += (size_t)snprintf(req + n, sizeof(req) - n, "X-H%d: %d\r\n", i, i);
    n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n");
    EXPECT_ERROR_CLOSE(f, &k, req, n, 431, "too many headers\n");
    hangup(f, &k);

    /* too many header bytes in one value: 431 */
    CHECK(f, dial(f, &k) == 0);
    n = (size_t)snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Big: %0*d\r\n\r\n",
                         MAX_HDR + MAX_LINE + 10, 0);
    EXPECT_ERROR_CLOSE(f, &k, req, n, 431, "headers too large\n");
    hangup(f, &k);
}

static void sc_body_limits(struct fixture *f)
{
    struct conn k;
    char req[4096], want[MAX_BODY + 8];
    size_t n;

    /* exactly MAX_BODY bytes */
    CHECK(f, dial(f, &k) == 0);
    n = (size_t)snprintf(req, sizeof(req),
                         "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", MAX_BODY);
    memset(req + n, 'b', MAX_BODY);
    n += MAX_BODY;
    CHECK(f, send_all(&k, req, n) == 0);
    snprintf(want, sizeof(want), "POST %0*d", MAX_BODY, 0);
    memset(want + 5, 'b', MAX_BODY);
    {
        struct resp r;
        CHECK(f, read_final(&k, &r) == 0);
        CHECK_INT(f, r.status, 200);
        CHECK_INT(f, r.body_len, MAX_BODY + 5);
        CHECK_STR(f, r.body, want);
    }
    /* Content-Length past the cap: 413 before any body byte is sent */
    n = (size_t)snprintf(req, sizeof(req),
                         "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n",
                         MAX_BODY + 1);
    EXPECT_ERROR_CLOSE(f, &k, req, n, 413, NULL);
    hangup(f, &k);

    /* a chunked body that grows past the cap: 413 */
    CHECK(f, dial(f, &k) == 0);
    n = (size_t)snprintf(req, sizeof(req),
                         "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 5; i++) {
        n += (size_t)snprintf(req + n, sizeof(req) - n, "100\r\n");
        memset(req + n, 'c', 256);
        n += 256;
        n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n");
    }
    n += (size_t)snprintf(req + n, sizeof(req) - n, "0\r\n\r\n");
    EXPECT_ERROR_CLOSE(f, &k, req, n, 413, NULL);
    hangup(f, &k);

    /* a Content-Length that would wrap in 32 bits: 413 */
    CHECK(f, dial(f, &k) == 0);
    n = (size_t)snprintf(req, sizeof(req),
                         "POST /echo HTTP/1.1\r\nContent-Length: 4294967296\r\n\r\n");
    EXPECT_ERROR_CLOSE(f, &k, req, n, 413, NULL);
    hangup(f, &k);
}

static void sc_bodies(struct fixture *f)
{
    struct conn k;

    CHECK(f, dial(f, &k) == 0);
    EXPECT_200(f, &k,
               "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\n"
               "Content-Length: 11\r\n\r\nhello world",
               "POST hello world");
    EXPECT_200(f, &k,
               "POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
               "POST hello world");
    /* chunk extensions, upper-case hex and a trailer */
    EXPECT_200(f, &k,
               "PUT /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
               "A;ext=1\r\n0123456789\r\n1\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n",
               "PUT 0123456789!");
    /* no body at all, and an explicit empty one */
    EXPECT_200(f, &k, "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", "POST ");
    EXPECT_200(f, &k, "DELETE /echo HTTP/1.1\r\nHost: h\r\n\r\n", "DELETE ");
    /* a body with NUL bytes arrives whole */
    {
        static const char nul_req[] = "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\na\0b";
        struct resp r;
        CHECK(f, send_all(&k, nul_req, sizeof(nul_req) - 1) == 0);
        CHECK(f, read_final(&k, &r) == 0);
        CHECK_INT(f, r.body_len, 8);
        CHECK(f, memcmp(r.body, "POST a\0b", 8) == 0);
    }
    hangup(f, &k);
}

static void sc_expect_continue(struct fixture *f)
{
    struct conn k;
    struct resp r;
    struct pollfd p;

    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                          "Content-Length: 5\r\n\r\n") == 0);
    /* the server may send "100 Continue" or nothing; either way the body is then sent */
    p.fd = k.fd;
    p.events = POLLIN;
    if (poll(&p, 1, 500) > 0) {
        CHECK(f, read_response(&k, &r) == 0);
        CHECK_INT(f, r.status, 100);
        CHECK_STR(f, r.head, "HTTP/1.1 100 Continue\r\n\r\n");
    }
    CHECK(f, send_str(&k, "hello") == 0);
    CHECK(f, read_final(&k, &r) == 0);
    CHECK_INT(f, r.status, 200);
    CHECK_STR(f, r.body, "POST hello");
    /* and a client that does not wait for it */
    EXPECT_200(f, &k,
               "POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
               "Content-Length: 2\r\n\r\nok",
               "POST ok");
    hangup(f, &k);
}

static void sc_headers(struct fixture *f)
{
    struct conn k;

    CHECK(f, dial(f, &k) == 0);
    EXPECT_200(f, &k,
               "GET /headers?z=9 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-b:   two words\r\n"
               "X-Empty:\r\n\r\n",
               "n=4 a=[1] b=[two words] e=[] q=[z=9] ka=1");
    hangup(f, &k);
}

/* Everything sent one byte at a time: every llhttp span is split. */
static void sc_byte_by_byte(struct fixture *f)
{
    static const char req[] = "POST /echo?x=y HTTP/1.1\r\nHost: host\r\nX-A: abc\r\n"
                              "Content-Length: 4\r\n\r\nbody"
                              "GET /headers HTTP/1.1\r\nX-A: 12\r\nX-B: 34\r\n\r\n";
    struct conn k;
    struct resp r;

    CHECK(f, dial(f, &k) == 0);
    for (size_t i = 0; i < sizeof(req) - 1; i++) {
        CHECK(f, send_all(&k, req + i, 1) == 0);
        sleep_ms(1);
    }
    CHECK(f, read_final(&k, &r) == 0);
    CHECK_STR(f, r.body, "POST body");
    CHECK(f, read_final(&k, &r) == 0);
    CHECK_STR(f, r.body, "n=2 a=[12] b=[34] e=[-] q=[] ka=1");
    hangup(f, &k);
}

static void sc_stream(struct fixture *f)
{
    struct conn k;
    struct resp r;

    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "GET /stream HTTP/1.1\r\nHost: h\r\n\r\n") == 0);
    CHECK(f, read_final(&k, &r) == 0);
    CHECK_STR(f, r.head,
              "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
              "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"
              "Transfer-Encoding: chunked\r\n\r\n");
    CHECK_STR(f, r.raw_body, "3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n");
    CHECK_STR(f, r.body, "onetwothree");
    /* the connection is kept for the next request */
    EXPECT_200(f, &k, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "hello");
    hangup(f, &k);
}

static void sc_async(struct fixture *f)
{
    struct conn k;
    long t0;

    CHECK(f, dial(f, &k) == 0);
    t0 = now_ms();
    EXPECT_200(f, &k, "GET /async HTTP/1.1\r\nHost: h\r\n\r\n", "async");
    CHECK(f, now_ms() - t0 >= 40);
    EXPECT_200(f, &k, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "hello");
    hangup(f, &k);
    CHECK_INT(f, atomic_load(&f->aborted), 0);
}

static void sc_abort(struct fixture *f)
{
    struct conn k;

    /* a request that is never answered: closing the socket calls the abort callback */
    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "GET /hang HTTP/1.1\r\nHost: h\r\n\r\n") == 0);
    CHECK(f, wait_counter(&f->requests, 1, 2000));
    CHECK(f, quiet_for(&k, 50));
    hangup(f, &k);
    CHECK(f, wait_counter(&f->aborted, 1, 2000));

    /* an async answer whose client leaves before the timer fires */
    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "GET /async HTTP/1.1\r\nHost: h\r\n\r\n") == 0);
    CHECK(f, wait_counter(&f->requests, 2, 2000));
    hangup(f, &k);
    CHECK(f, wait_counter(&f->aborted, 2, 2000));
    sleep_ms(100); /* past the timer: nothing may touch the dead connection */
    CHECK_INT(f, atomic_load(&f->aborted), 2);

    /* half-written request, then close: no handler call, no abort */
    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "GET /hang HTTP/1.1\r\nHo") == 0);
    hangup(f, &k);
    sleep_ms(50);
    CHECK_INT(f, atomic_load(&f->requests), 2);
    CHECK_INT(f, atomic_load(&f->aborted), 2);
}

static void sc_connection_close(struct fixture *f)
{
    struct conn k;
    struct resp r;
    char v[64];

    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n") == 0);
    CHECK(f, read_final(&k, &r) == 0);
    CHECK_STR(f, r.body, "hello");
    CHECK_STR(f, header(&r, "Connection", v, sizeof(v)), "close");
    CHECK(f, closed_within(&k, 2000));
    hangup(f, &k);

    /* HTTP/1.0 without keep-alive */
    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "GET /headers HTTP/1.0\r\n\r\n") == 0);
    CHECK(f, read_final(&k, &r) == 0);
    CHECK_STR(f, r.body, "n=0 a=[-] b=[-] e=[-] q=[] ka=0");
    CHECK(f, closed_within(&k, 2000));
    hangup(f, &k);
}

static void sc_bad_request(struct fixture *f)
{
    struct conn k;
    struct resp r;

    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "B@D / HTTP/1.1\r\n\r\n") == 0);
    CHECK(f, read_final(&k, &r) == 0);
    CHECK_INT(f, r.status, 400);
    CHECK(f, closed_within(&k, 2000));
    hangup(f, &k);

    /* a bare LF inside a header value */
    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "GET / HTTP/1.1\nX: a\n\n") == 0);
    CHECK(f, read_final(&k, &r) == 0);
    CHECK_INT(f, r.status, 400);
    CHECK(f, closed_within(&k, 2000));
    hangup(f, &k);

    /* Content-Length and chunked together is a smuggling vector: refused */
    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n") == 0);
    CHECK(f, read_final(&k, &r) == 0);
    CHECK_INT(f, r.status, 400);
    CHECK(f, closed_within(&k, 2000));
    hangup(f, &k);
    CHECK_INT(f, atomic_load(&f->requests), 0);
}

/*
 * The reason given to fail() is the body of the error response, whichever
 * llhttp callback hit the limit: here on_headers_complete.
 */
static void sc_reason_headers_complete(struct fixture *f)
{
    struct conn k;
    char req[256];
    size_t n;

    CHECK(f, dial(f, &k) == 0);
    n = (size_t)snprintf(req, sizeof(req),
                         "POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n",
                         MAX_BODY + 1);
    EXPECT_ERROR_CLOSE(f, &k, req, n, 413, "body too large\n");
    hangup(f, &k);
}

/* The same, for a limit hit in a data callback (on_body). */
static void sc_reason_body(struct fixture *f)
{
    struct conn k;
    char req[4096];
    size_t n;

    CHECK(f, dial(f, &k) == 0);
    n = (size_t)snprintf(req, sizeof(req),
                         "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n",
                         MAX_BODY + 1);
    memset(req + n, 'c', MAX_BODY + 1);
    n += MAX_BODY + 1;
    n += (size_t)snprintf(req + n, sizeof(req) - n, "\r\n0\r\n\r\n");
    EXPECT_ERROR_CLOSE(f, &k, req, n, 413, "body too large\n");
    hangup(f, &k);
}

/* RFC 9110 5.5: a field value excludes leading and trailing whitespace. */
static void sc_header_value_ows(struct fixture *f)
{
    struct conn k;

    CHECK(f, dial(f, &k) == 0);
    EXPECT_200(f, &k, "GET /headers HTTP/1.1\r\nX-A: 1 \t \r\nX-B:\t2\r\n\r\n",
               "n=2 a=[1] b=[2] e=[-] q=[] ka=1");
    hangup(f, &k);
}

/*
 * RFC 9112 5.1: whitespace between a field name and the colon is answered
 * with 400. Accepted, "Host : x" is a header named "Host " that lookups of
 * "Host" miss while an intermediary may read it as Host. Field names are
 * tokens, so "Bad Header" is refused as well.
 */
static void sc_header_name_space(struct fixture *f)
{
    struct conn k;
    struct resp r;

    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "GET /headers HTTP/1.1\r\nHost : x\r\n\r\n") == 0);
    CHECK(f, read_final(&k, &r) == 0);
    CHECK_INT(f, r.status, 400);
    CHECK(f, closed_within(&k, 2000));
    hangup(f, &k);

    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "GET /headers HTTP/1.1\r\nBad Header: x\r\n\r\n") == 0);
    CHECK(f, read_final(&k, &r) == 0);
    CHECK_INT(f, r.status, 400);
    CHECK(f, closed_within(&k, 2000));
    hangup(f, &k);
}

static void sc_timeouts(struct fixture *f)
{
    struct conn k;
    struct resp r;
    long t0;

    /* connected, never sends a byte: closed after the header deadline, no response */
    CHECK(f, dial(f, &k) == 0);
    t0 = now_ms();
    CHECK(f, closed_within(&k, 3000));
    CHECK(f, now_ms() - t0 >= TIMEOUT_MS - 50);
    hangup(f, &k);

    /* headers started but never finished: 408, then close */
    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "GET / HTTP/1.1\r\nHost: h\r\n") == 0);
    CHECK(f, read_final(&k, &r) == 0);
    CHECK_STR(f, r.head,
              "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\n"
              "Content-Length: 16\r\nConnection: close\r\n\r\n");
    CHECK_STR(f, r.body, "request timeout\n");
    CHECK(f, closed_within(&k, 2000));
    hangup(f, &k);

    /* slowloris: a byte every 60 ms keeps the connection busy but not alive */
    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "GET / HTTP/1.1\r\n") == 0);
    t0 = now_ms();
    for (int i = 0; i < 50 && quiet_for(&k, 60); i++)
        CHECK(f, send_str(&k, "X") == 0);
    CHECK(f, read_final(&k, &r) == 0);
    CHECK_INT(f, r.status, 408);
    CHECK(f, now_ms() - t0 < 2000);
    hangup(f, &k);

    /* a body that stops coming: 408 */
    CHECK(f, dial(f, &k) == 0);
    CHECK(f, send_str(&k, "POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc") == 0);
    CHECK(f, read_final(&k, &r) == 0);
    CHECK_INT(f, r.status, 408);
    CHECK(f, closed_within(&k, 2000));
    hangup(f, &k);

    /* an idle keep-alive connection is closed after the idle timeout */
    CHECK(f, dial(f, &k) == 0);
    EXPECT_200(f, &k, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "hello");
    t0 = now_ms();
    CHECK(f, closed_within(&k, 3000));
    CHECK(f, now_ms() - t0 >= TIMEOUT_MS - 50);
    hangup(f, &k);

    /* an async answer is not cut by the deadlines: it takes less, but the wait is not counted */
    CHECK(f, dial(f, &k) == 0);
    EXPECT_200(f, &k, "GET /async HTTP/1.1\r\nHost: h\r\n\r\n", "async");
    hangup(f, &k);
}

static void sc_max_connections(struct fixture *f)
{
    struct conn a, b, c;

    CHECK(f, dial(f, &a) == 0);
    EXPECT_200(f, &a, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "hello");
    CHECK(f, dial(f, &b) == 0);
    EXPECT_200(f, &b, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "hello");
    /* the third is accepted and closed at once */
    CHECK(f, dial(f, &c) == 0);
    CHECK(f, closed_within(&c, 2000));
    hangup(f, &c);
    /* once one leaves, a new one is served */
    hangup(f, &a);
    sleep_ms(100);
    CHECK(f, dial(f, &c) == 0);
    EXPECT_200(f, &c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "hello");
    hangup(f, &b);
    hangup(f, &c);
}

/* Leaves an idle connection and a held request open for the server close in teardown. */
static void sc_open_at_close(struct fixture *f)
{
    struct conn a, b;

    CHECK(f, dial(f, &a) == 0);
    EXPECT_200(f, &a, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", "hello");
    CHECK(f, dial(f, &b) == 0);
    CHECK(f, send_str(&b, "GET /hang HTTP/1.1\r\nHost: h\r\n\r\n") == 0);
    CHECK(f, wait_counter(&f->requests, 2, 2000));
    /* handed to the main thread, which closes them after the server */
    track(f, a.fd, false);
    track(f, b.fd, false);
    f->keep_fd[0] = a.fd;
    f->keep_fd[1] = b.fd;
}

/* ---- tests ----------------------------------------------------------------------------------- */

#define SCENARIO_TEST(name)               \
    static void test_##name(void **state) \
    {                                     \
        run_client(*state, sc_##name);    \
    }

SCENARIO_TEST(simple_get)
SCENARIO_TEST(keep_alive)
SCENARIO_TEST(pipelined)
SCENARIO_TEST(request_line_limit)
SCENARIO_TEST(header_limits)
SCENARIO_TEST(body_limits)
SCENARIO_TEST(bodies)
SCENARIO_TEST(expect_continue)
SCENARIO_TEST(headers)
SCENARIO_TEST(byte_by_byte)
SCENARIO_TEST(stream)
SCENARIO_TEST(async)
SCENARIO_TEST(abort)
SCENARIO_TEST(connection_close)
SCENARIO_TEST(bad_request)
SCENARIO_TEST(reason_headers_complete)
SCENARIO_TEST(reason_body)
SCENARIO_TEST(header_value_ows)
SCENARIO_TEST(header_name_space)
SCENARIO_TEST(timeouts)
SCENARIO_TEST(max_connections)

/* Closing the server with connections open aborts the held request and frees everything. */
static void test_close_with_open_connections(void **state)
{
    struct fixture *f = *state;

    run_client(f, sc_open_at_close);
    assert_int_equal(mcpd_http_server_connections(f->srv), 2);
    assert_int_equal(atomic_load(&f->aborted), 0);
    mcpd_http_server_close(f->srv);
    assert_int_equal(atomic_load(&f->aborted), 1);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (int i = 0; i < 4; i++)
        if (f->keep_fd[i] >= 0)
            close(f->keep_fd[i]);
    free(f);
    *state = NULL;
}

static int teardown_if_left(void **state)
{
    return *state ? teardown(state) : 0;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_simple_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_line_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expect_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_by_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_request, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reason_headers_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reason_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_value_ows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_name_space, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_connections, setup_two_conns, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_open_connections, setup, teardown_if_left),
    };

    mcpd_log_level = MCPD_LOG_ERROR;
    if (argc > 1)
        cmocka_set_test_filter(argv[1]); /* e.g. test_http 'test_abort' */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
