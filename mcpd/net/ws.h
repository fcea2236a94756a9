/*
 * ws.h - WebSocket connections (RFC 6455, framing by wslay) on mcpd's
 * libuv streams, plain or TLS.
 *
 * CONTRACT (written before the implementation; the implementer may extend
 * it, never silently change it). Used by the agent endpoint (server role,
 * adapters/agent.c) and by `mcpd agent` (client role). Text messages carry
 * one JSON-RPC message each. Callbacks run on the loop thread.
 *
 * Limits: a message larger than max_message closes the connection with
 * 1009; fragmented messages are reassembled under the same cap; binary
 * frames close with 1003; the send queue is capped (MCPD_ETOOBIG: the peer
 * reads too slowly). Control frames are answered (ping -> pong) inside.
 *
 * The process must not die of SIGPIPE (mcpd catches it; a program using
 * the client role must ignore or catch it too). on_close never runs inside
 * a call into this API: it comes from the loop once the handles are closed.
 */
#ifndef MCPD_NET_WS_H
#define MCPD_NET_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct mcpd_ws;
struct mcpd_tls_ctx;
struct mcpd_http_conn;
struct mcpd_http_request;

struct mcpd_ws_callbacks {
    /* Client role: the upgrade succeeded (server role: not called). */
    void (*on_open)(struct mcpd_ws *ws, void *data);
    /* One complete text message (not NUL-terminated; valid during the call). */
    void (*on_message)(struct mcpd_ws *ws, const char *msg, size_t len, void *data);
    /* A pong arrived (heartbeat bookkeeping). May be NULL. */
    void (*on_pong)(struct mcpd_ws *ws, void *data);
    /*
     * The connection is gone, exactly once; ws is freed right after the
     * call returns. code: the peer's or our close code (1000..4999), 1006
     * when the transport dropped without a close frame, or 0 when a client
     * never got connected. http_status: the status of a refused upgrade
     * (client role, e.g. 401), else 0. reason: one line, never NULL (the
     * text of the peer's close frame when the peer closed first).
     */
    void (*on_close)(struct mcpd_ws *ws, int code, int http_status, const char *reason, void *data);
};

/*
 * Server role: inside an HTTP route handler. Checks the upgrade headers
 * (GET, Upgrade: websocket, Connection: upgrade, Sec-WebSocket-Version: 13,
 * Sec-WebSocket-Key); if they are wrong it answers 400 (426 for a missing
 * Upgrade) itself and returns MCPD_EPROTO. Otherwise it sends 101 and takes
 * the connection (and its TLS engine) from the HTTP server: the handler
 * must not touch `c` again.
 */
int mcpd_ws_accept(struct mcpd_ws **out, struct mcpd_http_conn *c, struct mcpd_http_request *req,
                   const struct mcpd_ws_callbacks *cb, void *data, size_t max_message);

/*
 * Client role: dials url (ws://host:port/path or wss://...), sends the
 * upgrade with the extra header lines (each "Name: value", no CRLF), and
 * reports on_open or on_close. tls is required for wss:// (borrowed; must
 * outlive the connection). timeout_ms bounds connect + handshake.
 */
int mcpd_ws_connect(struct mcpd_ws **out, uv_loop_t *loop, const char *url,
                    const char *const *headers, size_t nheaders, struct mcpd_tls_ctx *tls,
                    const struct mcpd_ws_callbacks *cb, void *data, size_t max_message,
                    unsigned timeout_ms);

/* Queues a text message. Returns 0, MCPD_ETOOBIG or MCPD_ECLOSED. */
int mcpd_ws_send_text(struct mcpd_ws *ws, const char *msg, size_t len);
/* Sends a ping (the caller keeps the heartbeat timers). */
int mcpd_ws_ping(struct mcpd_ws *ws);
/*
 * Orderly close: sends a close frame, waits briefly (bounded) for the
 * peer's, then closes the socket; on_close follows. Safe to call twice.
 */
void mcpd_ws_close(struct mcpd_ws *ws, uint16_t code, const char *reason);
/* Drops the connection now (no close handshake); on_close follows with 1006. */
void mcpd_ws_abort(struct mcpd_ws *ws);
/* "ip:port" of the peer. */
const char *mcpd_ws_peer(const struct mcpd_ws *ws);
/* The data pointer can be changed (e.g. when a connection is handed over). */
void mcpd_ws_set_data(struct mcpd_ws *ws, void *data);

/*
 * The client's upgrade-response parser, sans I/O (used by mcpd_ws_connect;
 * public for its fuzz target). `key` is the Sec-WebSocket-Key sent.
 * feed() returns 0 (need more; all of data consumed), 1 (a valid 101:
 * *used bytes were the response head, the rest is WebSocket data),
 * MCPD_EPROTO (refused or invalid: status() is the HTTP status, 0 if none)
 * or MCPD_ETOOBIG (head larger than MCPD_WS_MAX_HANDSHAKE).
 */
struct mcpd_ws_handshake;
int mcpd_ws_handshake_new(struct mcpd_ws_handshake **out, const char *key);
int mcpd_ws_handshake_feed(struct mcpd_ws_handshake *h, const char *data, size_t len, size_t *used);
int mcpd_ws_handshake_status(const struct mcpd_ws_handshake *h);
const char *mcpd_ws_handshake_error(const struct mcpd_ws_handshake *h);
void mcpd_ws_handshake_free(struct mcpd_ws_handshake *h);

#endif
