/*
 * tls.h - TLS (OpenSSL) for mcpd's libuv streams, through memory BIOs.
 *
 * CONTRACT (written before the implementation; the implementer may extend
 * it, never silently change it). A context is shared by many connections;
 * an engine is one connection's TLS state, sans I/O: the owner feeds it the
 * ciphertext read from the socket and writes out whatever ciphertext the
 * engine produced (handshake records, application data, alerts).
 *
 * Server side: the HTTP listener with `listen: {address, tls: {cert, key}}` (PEM)
 * wraps every accepted connection, so https and wss share the port.
 * Client side: `mcpd agent` dialing wss:// (SNI and host name verification
 * against the system store or a CA file; verification can be disabled only
 * explicitly).
 */
#ifndef MCPD_NET_TLS_H
#define MCPD_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "../buf.h"

struct mcpd_tls_ctx;
struct mcpd_tls;

/* Loads a PEM certificate chain and private key. TLS 1.2+. err names the file and reason. */
int mcpd_tls_server_ctx_new(struct mcpd_tls_ctx **out, const char *cert_file, const char *key_file,
                            char *err, size_t errcap);
/* ca_file NULL: the system store. verify false disables peer verification (tests only). */
int mcpd_tls_client_ctx_new(struct mcpd_tls_ctx **out, const char *ca_file, bool verify, char *err,
                            size_t errcap);
void mcpd_tls_ctx_free(struct mcpd_tls_ctx *ctx);

/* One connection. server_name: SNI and the verified name (client side); NULL on the server. */
int mcpd_tls_new(struct mcpd_tls **out, struct mcpd_tls_ctx *ctx, const char *server_name);
void mcpd_tls_free(struct mcpd_tls *t);

/*
 * Ciphertext from the peer in; any plaintext it completes is appended to
 * `plain` (capped by plain->max: MCPD_ETOOBIG). Drives the handshake.
 * Returns 0, MCPD_EPROTO (handshake or record failure; the reason is in
 * mcpd_tls_error) or MCPD_ECLOSED (close_notify received).
 */
int mcpd_tls_feed(struct mcpd_tls *t, const char *data, size_t len, struct mcpd_buf *plain);
/* Plaintext out: encrypted into the engine's output (buffered until the handshake is done). */
int mcpd_tls_write(struct mcpd_tls *t, const char *data, size_t len);
/* Moves all ciphertext waiting to be sent into `out` (appended). Returns bytes moved. */
size_t mcpd_tls_take_output(struct mcpd_tls *t, struct mcpd_buf *out);
/* Client: starts the handshake (ClientHello into the output). */
int mcpd_tls_connect(struct mcpd_tls *t);
/* Queues close_notify. */
void mcpd_tls_close_notify(struct mcpd_tls *t);
bool mcpd_tls_handshake_done(const struct mcpd_tls *t);
/* The last failure, one line (never holds key material). */
const char *mcpd_tls_error(const struct mcpd_tls *t);

#endif
