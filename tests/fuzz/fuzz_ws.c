/*
 * fuzz_ws.c - libFuzzer target for the WebSocket frame input path of
 * mcpd/net/ws.c in the server role, after the upgrade: wslay's frame
 * parser and reassembly under mcpd's message cap, the control frames
 * (ping answered, close exchanged, binary refused), the close bookkeeping
 * and the writes that answer.
 *
 * ws.c is included (STYLE.md 2.11 allows it for tests) so the target can
 * build a server-role connection the way mcpd_ws_accept() does after the
 * HTTP handover, over one end of a socketpair, and push the input straight
 * into on_read() in slices. What the server writes is drained from the
 * other end.
 *
 * Input: one flags byte, then the bytes the client sends.
 *   bits 0-2  slice size: whole input, 1, 2, 3, 7, 16, 64, 512 bytes
 *   bit 3     echo every text message back (the send path)
 *   bit 4     the server closes (1000) before the client goes away
 *   bit 5     the server pings after every slice
 */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../mcpd/net/ws.c"
#include "fuzz.h"

#define FZ_MAX_MESSAGE 1024

static uv_loop_t fz_loop;
static int fz_closed, fz_flags;

static void fz_message(struct mcpd_ws *ws, const char *msg, size_t len, void *data)
{
    FUZZ_CHECK(len <= FZ_MAX_MESSAGE);
    FUZZ_CHECK(ws->state == WS_OPEN);
    if (fz_flags & 0x08) {
        int r = mcpd_ws_send_text(ws, msg, len);
        FUZZ_CHECK(r == 0 || r == MCPD_ETOOBIG || r == MCPD_ECLOSED);
    }
}

static void fz_close(struct mcpd_ws *ws, int code, int http_status, const char *reason, void *data)
{
    FUZZ_CHECK(code == 0 || (code >= 1000 && code <= 4999));
    FUZZ_CHECK(http_status == 0);
    FUZZ_CHECK(reason != NULL);
    fz_closed++;
}

static const struct mcpd_ws_callbacks fz_cb = { NULL, fz_message, NULL, fz_close };

static struct mcpd_ws *fz_ws_new(int fd)
{
    struct mcpd_ws *ws = ws_alloc(&fz_loop, &fz_cb, NULL, FZ_MAX_MESSAGE);
    FUZZ_CHECK(ws != NULL);
    ws->server = true;
    snprintf(ws->peer, sizeof(ws->peer), "fuzz");
    uv_tcp_init(&fz_loop, &ws->tcp);
    ws->tcp.data = ws;
    ws->tcp_init = true;
    ws->handles++;
    FUZZ_CHECK(uv_tcp_open(&ws->tcp, fd) == 0);
    FUZZ_CHECK(open_engine(ws) == 0);
    return ws;
}

static void fz_drain(int fd)
{
    char sink[16384];
    while (read(fd, sink, sizeof(sink)) > 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t slices[] = { 0, 1, 2, 3, 7, 16, 64, 512 };
    static bool ready;
    struct mcpd_ws *ws;
    size_t slice, off;
    int sv[2];

    if (!ready) {
        FUZZ_CHECK(uv_loop_init(&fz_loop) == 0);
        ready = true;
    }
    if (size == 0)
        return 0;
    fz_flags = data[0];
    data++;
    size--;
    slice = slices[fz_flags & 7] ? slices[fz_flags & 7] : (size ? size : 1);
    fz_closed = 0;

    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    FUZZ_CHECK(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0);
    ws = fz_ws_new(sv[0]);

    for (off = 0; off < size && ws->state != WS_DONE; off += slice) {
        size_t n = size - off < slice ? size - off : slice;
        uv_buf_t b = uv_buf_init((char *)data + off, (unsigned)n);
        on_read((uv_stream_t *)&ws->tcp, (ssize_t)n, &b);
        if (ws->state == WS_DONE)
            break;
        FUZZ_CHECK(ws->in.len <= ws->in.max);
        FUZZ_CHECK(ws->pend.len == 0); /* everything framed was handed to the socket */
        if (fz_flags & 0x20)
            mcpd_ws_ping(ws);
        fz_drain(sv[1]);
    }
    if (ws->state != WS_DONE && (fz_flags & 0x10))
        mcpd_ws_close(ws, 1000, "bye");
    if (ws->state != WS_DONE) {
        uv_buf_t none = uv_buf_init(NULL, 0);
        on_read((uv_stream_t *)&ws->tcp, UV_EOF, &none);
    }
    FUZZ_CHECK(ws->state == WS_DONE);
    fz_drain(sv[1]);
    /* close callbacks (and cancelled writes) report and free the connection */
    for (int i = 0; i < 3 && fz_closed == 0; i++)
        uv_run(&fz_loop, UV_RUN_NOWAIT);
    FUZZ_CHECK(fz_closed == 1);
    close(sv[1]);
    return 0;
}
