/*
 * test_ws.c - WebSocket connections (mcpd/net/ws.c) on 127.0.0.1, plain
 * and TLS, both roles.
 *
 * Each test runs an HTTP server (mcpd/net/http_server.c) on the test's uv
 * loop; GET /ws upgrades with mcpd_ws_accept() and the server side echoes
 * text messages, except a few commands ("close4000", "vanish", "ping").
 * GET /deny answers 401. Clients are mcpd_ws_connect() on the same loop,
 * or a raw blocking socket driven from the main thread between loop turns
 * (to send what our client never sends: fragments, binary frames).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

#include "mcpd/buf.h"
#include "mcpd/error.h"
#include "mcpd/net/http_server.h"
#include "mcpd/net/tls.h"
#include "mcpd/net/ws.h"
#include "tls_cert.h"

struct fx {
    uv_loop_t loop;
    uv_timer_t tick;
    struct mcpd_http_server *srv;
    int port;
    struct test_cert tc;
    struct mcpd_tls_ctx *sctx, *cctx;
    size_t server_max;
    struct mcpd_ws *sws, *cws;
    int accepted, s_msgs, s_pongs, s_closed, s_code;
    int c_open, c_msgs, c_pongs, c_closed, c_code, c_http;
    char s_reason[200], c_reason[200];
    char *c_last;
    size_t c_last_len;
    void (*on_open)(struct fx *f);
    struct mcpd_http_conn *held;
};

static struct fx *F;

/* ---- server side ------------------------------------------------------------------------- */

static void s_message(struct mcpd_ws *ws, const char *msg, size_t len, void *data)
{
    struct fx *f = data;
    f->s_msgs++;
    if (len == 9 && memcmp(msg, "close4000", 9) == 0)
        mcpd_ws_close(ws, 4000, "replaced by a new connection");
    else if (len == 6 && memcmp(msg, "vanish", 6) == 0)
        mcpd_ws_abort(ws);
    else if (len == 4 && memcmp(msg, "ping", 4) == 0)
        mcpd_ws_ping(ws);
    else
        mcpd_ws_send_text(ws, msg, len);
}

static void s_pong(struct mcpd_ws *ws, void *data)
{
    ((struct fx *)data)->s_pongs++;
}

static void s_close(struct mcpd_ws *ws, int code, int http_status, const char *reason, void *data)
{
    struct fx *f = data;
    f->s_closed++;
    f->s_code = code;
    snprintf(f->s_reason, sizeof(f->s_reason), "%s", reason);
    if (f->sws == ws)
        f->sws = NULL;
}

static const struct mcpd_ws_callbacks scb = { NULL, s_message, s_pong, s_close };

static void held_abort(struct mcpd_http_conn *c, void *data)
{
    ((struct fx *)data)->held = NULL;
}

static void handler(struct mcpd_http_conn *c, struct mcpd_http_request *req, void *data)
{
    struct fx *f = data;
    if (strcmp(req->path, "/ws") == 0) {
        if (mcpd_ws_accept(&f->sws, c, req, &scb, f, f->server_max) == 0)
            f->accepted++;
    } else if (strcmp(req->path, "/later") == 0) {
        f->held = c; /* answered by the test */
        mcpd_http_conn_on_abort(c, held_abort, f);
    } else if (strcmp(req->path, "/deny") == 0) {
        mcpd_http_respond(c, 401, "text/plain", "WWW-Authenticate: Bearer realm=\"mcpd-agent\"\r\n",
                          "no\n", 3);
    } else {
        mcpd_http_respond(c, 404, "text/plain", NULL, "", 0);
    }
}

/* ---- client side ------------------------------------------------------------------------- */

static void c_opened(struct mcpd_ws *ws, void *data)
{
    struct fx *f = data;
    f->c_open++;
    if (f->on_open)
        f->on_open(f);
}

static void c_message(struct mcpd_ws *ws, const char *msg, size_t len, void *data)
{
    struct fx *f = data;
    f->c_msgs++;
    free(f->c_last);
    f->c_last = malloc(len + 1);
    memcpy(f->c_last, msg, len);
    f->c_last[len] = '\0';
    f->c_last_len = len;
}

static void c_pong(struct mcpd_ws *ws, void *data)
{
    ((struct fx *)data)->c_pongs++;
}

static void c_close(struct mcpd_ws *ws, int code, int http_status, const char *reason, void *data)
{
    struct fx *f = data;
    f->c_closed++;
    f->c_code = code;
    f->c_http = http_status;
    snprintf(f->c_reason, sizeof(f->c_reason), "%s", reason);
    if (f->cws == ws)
        f->cws = NULL;
}

static const struct mcpd_ws_callbacks ccb = { c_opened, c_message, c_pong, c_close };

/* ---- loop driving ------------------------------------------------------------------------ */

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until cond holds or ms pass, then asserts cond. */
#define WAIT(f, cond, ms)                            \
    do {                                             \
        uv_update_time(&(f)->loop);                  \
        uint64_t _end = uv_now(&(f)->loop) + (ms);   \
        while (!(cond) && uv_now(&(f)->loop) < _end) \
            uv_run(&(f)->loop, UV_RUN_ONCE);         \
        assert_true(cond);                           \
    } while (0)

/* Runs the loop for ms. */
static void spin(struct fx *f, uint64_t ms)
{
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + ms;
    while (uv_now(&f->loop) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static int setup(void **state)
{
    static struct fx f;
    struct mcpd_http_limits lim = { 8192, 32768, 100, 65536, 2000, 2000, 5000, 100 };
    char err[256];

    memset(&f, 0, sizeof(f));
    F = &f;
    assert_int_equal(uv_loop_init(&f.loop), 0);
    uv_timer_init(&f.loop, &f.tick);
    uv_timer_start(&f.tick, on_tick, 10, 10);
    assert_int_equal(mcpd_http_server_start(&f.srv, &f.loop, "127.0.0.1", 0, &lim, handler, &f), 0);
    f.port = mcpd_http_server_port(f.srv);
    assert_int_equal(test_cert_make(&f.tc, "DNS:localhost,IP:127.0.0.1"), 0);
    assert_int_equal(mcpd_tls_server_ctx_new(&f.sctx, f.tc.cert, f.tc.key, err, sizeof(err)), 0);
    assert_int_equal(mcpd_tls_client_ctx_new(&f.cctx, f.tc.cert, true, err, sizeof(err)), 0);
    f.server_max = 65536;
    *state = &f;
    return 0;
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->cws)
        mcpd_ws_abort(f->cws);
    if (f->sws)
        mcpd_ws_abort(f->sws);
    if (f->srv)
        mcpd_http_server_close(f->srv);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    /* every handle must be gone by now: uv_loop_close() would fail otherwise */
    int r = uv_loop_close(&f->loop);
    if (r != 0) {
        uv_walk(&f->loop, on_walk_close, NULL);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        uv_loop_close(&f->loop);
    }
    mcpd_tls_ctx_free(f->sctx);
    mcpd_tls_ctx_free(f->cctx);
    test_cert_remove(&f->tc);
    free(f->c_last);
    assert_int_equal(r, 0);
    return 0;
}

static void dial(struct fx *f, const char *scheme, const char *host, const char *path,
                 size_t client_max)
{
    char url[256];
    snprintf(url, sizeof(url), "%s://%s:%d%s", scheme, host, f->port, path);
    assert_int_equal(
        mcpd_ws_connect(&f->cws, &f->loop, url, NULL, 0, f->cctx, &ccb, f, client_max, 3000), 0);
    assert_non_null(f->cws);
}

static void dial_open(struct fx *f, const char *scheme, const char *host)
{
    dial(f, scheme, host, "/ws", 0);
    WAIT(f, f->c_open || f->c_closed, 3000);
    assert_int_equal(f->c_closed, 0);
    assert_int_equal(f->c_open, 1);
    assert_int_equal(f->accepted, 1);
    assert_non_null(f->sws);
}

static void echo(struct fx *f, const char *msg)
{
    int before = f->c_msgs;
    assert_int_equal(mcpd_ws_send_text(f->cws, msg, strlen(msg)), 0);
    WAIT(f, f->c_msgs > before || f->c_closed, 3000);
    assert_int_equal(f->c_closed, 0);
    assert_string_equal(f->c_last, msg);
}

/* ---- tests: our client against our server ------------------------------------------------ */

static void client_close(struct fx *f, uint16_t code)
{
    mcpd_ws_close(f->cws, code, "bye");
    mcpd_ws_close(f->cws, code, "bye"); /* safe twice */
    WAIT(f, f->c_closed && f->s_closed, 3000);
    assert_int_equal(f->c_code, code);
    assert_int_equal(f->s_code, code);
    assert_int_equal(f->c_closed, 1);
    assert_int_equal(f->s_closed, 1);
}

static void echo_plain(void **state)
{
    struct fx *f = *state;
    dial_open(f, "ws", "127.0.0.1");
    assert_int_equal(strncmp(mcpd_ws_peer(f->cws), "127.0.0.1:", 10), 0);
    assert_int_equal(strncmp(mcpd_ws_peer(f->sws), "127.0.0.1:", 10), 0);
    echo(f, "hello");
    echo(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
    echo(f, "");
    client_close(f, 1000);
}

static void echo_tls(void **state)
{
    struct fx *f = *state;
    mcpd_http_server_set_tls(f->srv, f->sctx);
    dial_open(f, "wss", "localhost");
    echo(f, "hello over tls");
    client_close(f, 1000);
    f->c_open = f->c_closed = f->s_closed = f->accepted = 0;
    dial_open(f, "wss", "127.0.0.1");
    echo(f, "by address");
    client_close(f, 4001);
}

static void tls_hostname_mismatch(void **state)
{
    struct fx *f = *state;
    struct test_cert other;
    struct mcpd_tls_ctx *octx;
    char err[256];
    assert_int_equal(test_cert_make(&other, "DNS:other.example"), 0);
    assert_int_equal(mcpd_tls_server_ctx_new(&octx, other.cert, other.key, err, sizeof(err)), 0);
    mcpd_http_server_set_tls(f->srv, octx);
    dial(f, "wss", "127.0.0.1", "/ws", 0);
    WAIT(f, f->c_closed, 3000);
    assert_int_equal(f->c_open, 0);
    assert_int_equal(f->c_code, 0);
    assert_non_null(strstr(f->c_reason, "verification"));
    assert_int_equal(f->accepted, 0);
    mcpd_http_server_close(f->srv);
    f->srv = NULL;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    spin(f, 50);
    mcpd_tls_ctx_free(octx);
    test_cert_remove(&other);
}

static void wss_needs_tls_ctx(void **state)
{
    struct fx *f = *state;
    struct mcpd_ws *ws = NULL;
    assert_int_equal(
        mcpd_ws_connect(&ws, &f->loop, "wss://127.0.0.1:1/", NULL, 0, NULL, &ccb, f, 0, 1000),
        MCPD_ECONFIG);
    assert_null(ws);
    assert_int_equal(
        mcpd_ws_connect(&ws, &f->loop, "http://127.0.0.1:1/", NULL, 0, NULL, &ccb, f, 0, 1000),
        MCPD_ECONFIG);
    const char *bad[] = { "X-Bad: a\r\nInjected: b" };
    assert_int_equal(
        mcpd_ws_connect(&ws, &f->loop, "ws://127.0.0.1:1/", bad, 1, NULL, &ccb, f, 0, 1000),
        MCPD_ECONFIG);
    spin(f, 30);
    assert_int_equal(f->c_closed, 0); /* synchronous failures report nothing */
}

static void message_at_cap_and_over(void **state)
{
    struct fx *f = *state;
    char *big = malloc(f->server_max + 2);
    memset(big, 'a', f->server_max + 1);
    big[f->server_max] = '\0';
    dial_open(f, "ws", "127.0.0.1");
    echo(f, big); /* exactly the cap */
    assert_int_equal(f->c_last_len, f->server_max);
    big[f->server_max] = 'b';
    big[f->server_max + 1] = '\0';
    assert_int_equal(mcpd_ws_send_text(f->cws, big, f->server_max + 1), 0);
    WAIT(f, f->c_closed && f->s_closed, 3000);
    assert_int_equal(f->c_code, 1009);
    assert_int_equal(f->s_code, 1009);
    assert_int_equal(f->s_msgs, 1);
    free(big);
}

static void message_over_cap_tls(void **state)
{
    struct fx *f = *state;
    char *big = calloc(1, f->server_max + 2);
    mcpd_http_server_set_tls(f->srv, f->sctx);
    memset(big, 'a', f->server_max + 1);
    dial_open(f, "wss", "localhost");
    assert_int_equal(mcpd_ws_send_text(f->cws, big, f->server_max + 1), 0);
    WAIT(f, f->c_closed && f->s_closed, 3000);
    assert_int_equal(f->c_code, 1009);
    assert_int_equal(f->s_code, 1009);
    free(big);
}

static void client_message_cap(void **state)
{
    struct fx *f = *state;
    dial(f, "ws", "127.0.0.1", "/ws", 10);
    WAIT(f, f->c_open, 3000);
    echo(f, "0123456789");
    assert_int_equal(mcpd_ws_send_text(f->cws, "0123456789A", 11), 0);
    WAIT(f, f->c_closed && f->s_closed, 3000);
    assert_int_equal(f->c_code, 1009); /* the client refused the server's echo */
    assert_int_equal(f->s_code, 1009);
}

static void ping_pong(void **state)
{
    struct fx *f = *state;
    dial_open(f, "ws", "127.0.0.1");
    assert_int_equal(mcpd_ws_ping(f->cws), 0);
    WAIT(f, f->c_pongs == 1, 3000);
    assert_int_equal(mcpd_ws_send_text(f->cws, "ping", 4), 0); /* the server pings us */
    WAIT(f, f->s_pongs == 1, 3000);
    echo(f, "still open");
    client_close(f, 1000);
}

static void server_closes_4000(void **state)
{
    struct fx *f = *state;
    dial_open(f, "ws", "127.0.0.1");
    assert_int_equal(mcpd_ws_send_text(f->cws, "close4000", 9), 0);
    WAIT(f, f->c_closed && f->s_closed, 3000);
    assert_int_equal(f->c_code, 4000);
    assert_int_equal(f->s_code, 4000);
    assert_int_equal(f->c_http, 0);
    assert_string_equal(f->c_reason, "replaced by a new connection"); /* the peer's text */
    assert_string_equal(f->s_reason, "closed");
    /* closed connections refuse sends: nothing to send on, the pointers are gone */
    assert_null(f->cws);
    assert_null(f->sws);
}

static void refused_upgrade_reports_status(void **state)
{
    struct fx *f = *state;
    dial(f, "ws", "127.0.0.1", "/deny", 0);
    WAIT(f, f->c_closed, 3000);
    assert_int_equal(f->c_open, 0);
    assert_int_equal(f->c_code, 0);
    assert_int_equal(f->c_http, 401);
    f->c_closed = 0;
    dial(f, "ws", "127.0.0.1", "/nothing?x=1", 0);
    WAIT(f, f->c_closed, 3000);
    assert_int_equal(f->c_http, 404);
}

static void connect_timeout(void **state)
{
    struct fx *f = *state;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    char url[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    /* a listener that never accepts: the kernel completes the TCP handshake, nobody answers */
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws", ntohs(sa.sin_port));
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    assert_int_equal(mcpd_ws_connect(&f->cws, &f->loop, url, NULL, 0, NULL, &ccb, f, 0, 200), 0);
    WAIT(f, f->c_closed, 3000);
    assert_true(uv_now(&f->loop) - t0 >= 190);
    assert_int_equal(f->c_code, 0);
    assert_non_null(strstr(f->c_reason, "timed out"));
    close(fd);
}

static void connect_refused(void **state)
{
    struct fx *f = *state;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    char url[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd); /* a port nobody listens on */
    snprintf(url, sizeof(url), "ws://localhost:%d/", ntohs(sa.sin_port));
    assert_int_equal(mcpd_ws_connect(&f->cws, &f->loop, url, NULL, 0, NULL, &ccb, f, 0, 2000), 0);
    WAIT(f, f->c_closed, 3000);
    assert_int_equal(f->c_code, 0);
    assert_non_null(strstr(f->c_reason, "connect"));
}

static void close_while_resolving(void **state)
{
    struct fx *f = *state;
    assert_int_equal(
        mcpd_ws_connect(&f->cws, &f->loop, "ws://localhost:1/", NULL, 0, NULL, &ccb, f, 0, 2000),
        0);
    mcpd_ws_close(f->cws, 1000, NULL);
    WAIT(f, f->c_closed, 3000);
    assert_int_equal(f->c_closed, 1);
    assert_int_equal(f->c_code, 0);
}

static void peer_vanishes(void **state)
{
    struct fx *f = *state;
    dial_open(f, "ws", "127.0.0.1");
    assert_int_equal(mcpd_ws_send_text(f->cws, "vanish", 6), 0);
    WAIT(f, f->c_closed && f->s_closed, 3000);
    assert_int_equal(f->c_code, 1006);
    assert_int_equal(f->s_code, 1006);
}

static void peer_vanishes_tls(void **state)
{
    struct fx *f = *state;
    mcpd_http_server_set_tls(f->srv, f->sctx);
    dial_open(f, "wss", "localhost");
    mcpd_ws_abort(f->cws);
    WAIT(f, f->c_closed && f->s_closed, 3000);
    assert_int_equal(f->c_code, 1006);
    assert_int_equal(f->s_code, 1006);
}

static void send_queue_cap(void **state)
{
    struct fx *f = *state;
    size_t len = 1u << 20;
    char *big = malloc(len);
    int r = 0, i;
    memset(big, 'q', len);
    dial_open(f, "ws", "127.0.0.1");
    /* the loop does not run: nobody reads, the queue grows until the cap */
    for (i = 0; i < 200 && (r = mcpd_ws_send_text(f->cws, big, len)) == 0; i++)
        ;
    assert_int_equal(r, MCPD_ETOOBIG);
    assert_true(i >= 2);
    free(big);
    mcpd_ws_abort(f->cws);
    WAIT(f, f->c_closed && f->s_closed, 5000);
}

static void http_server_close_leaves_ws(void **state)
{
    struct fx *f = *state;
    dial_open(f, "ws", "127.0.0.1");
    assert_int_equal(mcpd_http_server_connections(f->srv), 0); /* handed over */
    mcpd_http_server_close(f->srv);
    f->srv = NULL;
    echo(f, "the ws belongs to its owner now");
    mcpd_ws_close(f->sws, 1001, "mcpd shutting down");
    WAIT(f, f->c_closed && f->s_closed, 3000);
    assert_int_equal(f->c_code, 1001);
    assert_int_equal(f->s_code, 1001);
}

static void send_on_open(struct fx *f)
{
    mcpd_ws_send_text(f->cws, "first", 5);
}

static void message_from_on_open(void **state)
{
    struct fx *f = *state;
    f->on_open = send_on_open;
    dial(f, "ws", "127.0.0.1", "/ws", 0);
    WAIT(f, f->c_msgs == 1, 3000);
    assert_string_equal(f->c_last, "first");
}

/* ---- tests with a raw client socket ------------------------------------------------------ */

static int raw_connect(struct fx *f)
{
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t)f->port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Reads what is there after running the loop a little; returns bytes read (0 at EOF). */
static ssize_t raw_read(struct fx *f, int fd, char *buf, size_t cap, int ms)
{
    ssize_t n = -1;
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + (uint64_t)ms;
    while (uv_now(&f->loop) < end) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        n = recv(fd, buf, cap, MSG_DONTWAIT);
        if (n >= 0)
            return n;
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    return n;
}

/* Reads an HTTP response head; returns its status. */
static int raw_head(struct fx *f, int fd)
{
    char buf[4096];
    size_t len = 0;
    while (len < sizeof(buf) - 1) {
        ssize_t n = raw_read(f, fd, buf + len, 1, 2000); /* one byte: frames may follow */
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n"))
            return atoi(buf + 9);
    }
    return -1;
}

static size_t frame(char *out, int fin, int opcode, const char *payload, size_t len)
{
    const unsigned char mask[4] = { 0x11, 0x22, 0x33, 0x44 };
    size_t o = 0;
    out[o++] = (char)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        out[o++] = (char)(0x80 | len);
    } else {
        out[o++] = (char)(0x80 | 126);
        out[o++] = (char)(len >> 8);
        out[o++] = (char)(len & 0xff);
    }
    memcpy(out + o, mask, 4);
    o += 4;
    for (size_t i = 0; i < len; i++)
        out[o + i] = (char)(payload[i] ^ mask[i % 4]);
    return o + len;
}

/* Reads one unmasked server frame (payload < 126 bytes). */
static int raw_frame(struct fx *f, int fd, char *payload, size_t *len)
{
    unsigned char h[2];
    size_t got = 0;
    while (got < 2) {
        ssize_t n = raw_read(f, fd, (char *)h + got, 2 - got, 2000);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    *len = h[1] & 0x7f;
    assert_true(*len < 126);
    got = 0;
    while (got < *len) {
        ssize_t n = raw_read(f, fd, payload + got, *len - got, 2000);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return h[0] & 0x0f;
}

static const char upgrade_req[] = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

static void fragments_reassembled(void **state)
{
    struct fx *f = *state;
    char buf[512], p[128];
    size_t n = 0, len;
    int fd = raw_connect(f);
    /* the request and the first frames in one write: bytes after the request are kept */
    memcpy(buf, upgrade_req, sizeof(upgrade_req) - 1);
    n = sizeof(upgrade_req) - 1;
    n += frame(buf + n, 0, 1, "hel", 3);
    n += frame(buf + n, 1, 9, "pi", 2); /* a ping between fragments */
    n += frame(buf + n, 1, 0, "lo", 2);
    assert_int_equal(send(fd, buf, n, 0), (ssize_t)n);
    assert_int_equal(raw_head(f, fd), 101);
    assert_int_equal(raw_frame(f, fd, p, &len), 0xA); /* pong */
    assert_int_equal(len, 2);
    assert_int_equal(raw_frame(f, fd, p, &len), 0x1);
    assert_int_equal(len, 5);
    assert_memory_equal(p, "hello", 5);
    assert_int_equal(f->s_msgs, 1);
    /* a close from the client: answered with the same code, then the server closes */
    n = frame(buf, 1, 8, "\x0f\xa1", 2); /* 4001 */
    assert_int_equal(send(fd, buf, n, 0), (ssize_t)n);
    assert_int_equal(raw_frame(f, fd, p, &len), 0x8);
    assert_int_equal(len, 2);
    assert_int_equal(((unsigned char)p[0] << 8) | (unsigned char)p[1], 4001);
    assert_int_equal(raw_read(f, fd, p, sizeof(p), 2000), 0); /* EOF */
    WAIT(f, f->s_closed, 2000);
    assert_int_equal(f->s_code, 4001);
    close(fd);
}

static void fragments_over_cap(void **state)
{
    struct fx *f = *state;
    char *buf = malloc(200000), p[128];
    static char chunk[40000];
    size_t n = 0, len;
    int fd = raw_connect(f);
    memset(chunk, 'z', sizeof(chunk));
    assert_int_equal(send(fd, upgrade_req, sizeof(upgrade_req) - 1, 0),
                     (ssize_t)(sizeof(upgrade_req) - 1));
    assert_int_equal(raw_head(f, fd), 101);
    /* two 40000-byte fragments: each under the 65536 cap, together over it */
    for (int i = 0; i < 2; i++) {
        size_t o = 0;
        buf[o++] = (char)(i == 0 ? 0x01 : 0x80);
        buf[o++] = (char)(0x80 | 126);
        buf[o++] = (char)(sizeof(chunk) >> 8);
        buf[o++] = (char)(sizeof(chunk) & 0xff);
        memset(buf + o, 0, 4); /* zero mask */
        o += 4;
        memcpy(buf + o, chunk, sizeof(chunk));
        o += sizeof(chunk);
        n = (size_t)send(fd, buf, o, 0);
        assert_int_equal(n, o);
    }
    assert_int_equal(raw_frame(f, fd, p, &len), 0x8);
    assert_int_equal(((unsigned char)p[0] << 8) | (unsigned char)p[1], 1009);
    close(fd); /* the server drains input until we go (or its close timer fires) */
    WAIT(f, f->s_closed, 2000);
    assert_int_equal(f->s_code, 1009);
    assert_int_equal(f->s_msgs, 0);
    free(buf);
}

static void binary_refused(void **state)
{
    struct fx *f = *state;
    char buf[256], p[128];
    size_t n, len;
    int fd = raw_connect(f);
    assert_int_equal(send(fd, upgrade_req, sizeof(upgrade_req) - 1, 0),
                     (ssize_t)(sizeof(upgrade_req) - 1));
    assert_int_equal(raw_head(f, fd), 101);
    n = frame(buf, 1, 2, "\x01\x02", 2);
    assert_int_equal(send(fd, buf, n, 0), (ssize_t)n);
    assert_int_equal(raw_frame(f, fd, p, &len), 0x8);
    assert_true(len >= 2);
    assert_int_equal(((unsigned char)p[0] << 8) | (unsigned char)p[1], 1003);
    /* we answer the close: the server finishes at once with its own code */
    n = frame(buf, 1, 8, "\x03\xeb", 2);
    assert_int_equal(send(fd, buf, n, 0), (ssize_t)n);
    WAIT(f, f->s_closed, 2000);
    assert_int_equal(f->s_code, 1003);
    assert_int_equal(f->s_msgs, 0);
    close(fd);
}

static void close_handshake_bounded(void **state)
{
    struct fx *f = *state;
    char p[128];
    size_t len;
    int fd = raw_connect(f);
    assert_int_equal(send(fd, upgrade_req, sizeof(upgrade_req) - 1, 0),
                     (ssize_t)(sizeof(upgrade_req) - 1));
    assert_int_equal(raw_head(f, fd), 101);
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    mcpd_ws_close(f->sws, 4003, "agent disabled");
    assert_int_equal(raw_frame(f, fd, p, &len), 0x8);
    /* we never answer: the server gives up after its close timer */
    WAIT(f, f->s_closed, 6000);
    assert_true(uv_now(&f->loop) - t0 >= 2500);
    assert_int_equal(f->s_code, 4003);
    close(fd);
}

static void unmasked_frame_refused(void **state)
{
    struct fx *f = *state;
    char p[128];
    size_t len;
    int fd = raw_connect(f);
    assert_int_equal(send(fd, upgrade_req, sizeof(upgrade_req) - 1, 0),
                     (ssize_t)(sizeof(upgrade_req) - 1));
    assert_int_equal(raw_head(f, fd), 101);
    assert_int_equal(send(fd, "\x81\x02hi", 4, 0), 4); /* a client frame must be masked */
    assert_int_equal(raw_frame(f, fd, p, &len), 0x8);
    assert_int_equal(((unsigned char)p[0] << 8) | (unsigned char)p[1], 1002);
    close(fd);
    WAIT(f, f->s_closed, 2000);
    assert_int_equal(f->s_code, 1002);
    assert_int_equal(f->s_msgs, 0);
}

static void bad_upgrades(void **state)
{
    struct fx *f = *state;
    static const char *reqs[] = {
        "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    };
    static const int want[] = { 426, 400, 400, 400, 426 };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        int fd = raw_connect(f);
        char p[64];
        assert_int_equal(send(fd, reqs[i], strlen(reqs[i]), 0), (ssize_t)strlen(reqs[i]));
        assert_int_equal(raw_head(f, fd), want[i]);
        close(fd);
        (void)p;
    }
    assert_int_equal(f->accepted, 0);
}

/* Sends plaintext through a client TLS engine over a raw socket. */
static void tls_send(int fd, struct mcpd_tls *t, const char *text)
{
    struct mcpd_buf out;
    mcpd_buf_init(&out, 1 << 20);
    if (text)
        assert_int_equal(mcpd_tls_write(t, text, strlen(text)), 0);
    mcpd_tls_take_output(t, &out);
    if (out.len)
        assert_int_equal(send(fd, out.p, out.len, 0), (ssize_t)out.len);
    mcpd_buf_dispose(&out);
}

/*
 * A request with Connection: close answered later, while the client sends
 * more bytes over TLS: the connection must stay open until the answer.
 */
static void tls_held_request_with_close(void **state)
{
    struct fx *f = *state;
    struct mcpd_tls *t;
    struct mcpd_buf plain;
    char buf[16384];
    ssize_t n;
    int fd = raw_connect(f);

    mcpd_http_server_set_tls(f->srv, f->sctx);
    mcpd_buf_init(&plain, 1 << 20);
    assert_int_equal(mcpd_tls_new(&t, f->cctx, "localhost"), 0);
    assert_int_equal(mcpd_tls_connect(t), 0);
    for (int i = 0; i < 20 && !mcpd_tls_handshake_done(t); i++) {
        tls_send(fd, t, NULL);
        n = raw_read(f, fd, buf, sizeof(buf), 2000);
        assert_true(n > 0);
        assert_int_equal(mcpd_tls_feed(t, buf, (size_t)n, &plain), 0);
    }
    assert_true(mcpd_tls_handshake_done(t));
    tls_send(fd, t, "GET /later HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    WAIT(f, f->held != NULL, 2000);
    tls_send(fd, t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); /* more bytes while held */
    spin(f, 100);
    assert_non_null(f->held); /* still open */
    mcpd_http_conn_on_abort(f->held, NULL, NULL);
    mcpd_http_respond(f->held, 200, "text/plain", NULL, "late", 4);
    f->held = NULL;
    for (;;) {
        n = raw_read(f, fd, buf, sizeof(buf), 2000);
        if (n <= 0)
            break;
        int r = mcpd_tls_feed(t, buf, (size_t)n, &plain);
        if (r == MCPD_ECLOSED)
            break;
        assert_int_equal(r, 0);
    }
    assert_non_null(plain.p);
    assert_int_equal(strncmp(plain.p, "HTTP/1.1 200 OK\r\n", 17), 0);
    assert_non_null(strstr(plain.p, "\r\n\r\nlate"));
    assert_null(strstr(plain.p, "hello")); /* the pipelined request was not served */
    mcpd_buf_dispose(&plain);
    mcpd_tls_free(t);
    close(fd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as mcpd and mcpd agent do: a peer reset is an error code */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(echo_plain, setup, teardown),
        cmocka_unit_test_setup_teardown(echo_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_hostname_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(wss_needs_tls_ctx, setup, teardown),
        cmocka_unit_test_setup_teardown(message_at_cap_and_over, setup, teardown),
        cmocka_unit_test_setup_teardown(message_over_cap_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(client_message_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(ping_pong, setup, teardown),
        cmocka_unit_test_setup_teardown(server_closes_4000, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_upgrade_reports_status, setup, teardown),
        cmocka_unit_test_setup_teardown(connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(close_while_resolving, setup, teardown),
        cmocka_unit_test_setup_teardown(peer_vanishes, setup, teardown),
        cmocka_unit_test_setup_teardown(peer_vanishes_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(send_queue_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(http_server_close_leaves_ws, setup, teardown),
        cmocka_unit_test_setup_teardown(message_from_on_open, setup, teardown),
        cmocka_unit_test_setup_teardown(fragments_reassembled, setup, teardown),
        cmocka_unit_test_setup_teardown(fragments_over_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(binary_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(close_handshake_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(unmasked_frame_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_upgrades, setup, teardown),
        cmocka_unit_test_setup_teardown(tls_held_request_with_close, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
