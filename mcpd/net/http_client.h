/*
 * http_client.h - HTTP requests on libcurl's multi interface, driven by the
 * daemon's libuv loop (curl's socket and timer callbacks become uv_poll and
 * uv_timer handles), so no request ever blocks the loop. DNS resolution is
 * curl's (threaded resolver), also off the loop.
 *
 * A call reports, in order: on_headers once (status, Content-Type), on_data
 * for each body chunk, on_done once. mcpd_http_call_cancel() stops a call;
 * nothing is reported after it, and it may be called from any callback.
 */
#ifndef MCPD_HTTP_CLIENT_H
#define MCPD_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

struct sockaddr;

struct mcpd_http_client;
struct mcpd_http_call;

struct mcpd_http_call_ops {
    void (*on_headers)(struct mcpd_http_call *call, int status, const char *content_type,
                       void *data);
    /* Returns 0, or non-zero to abort the call (reported as an error). */
    int (*on_data)(struct mcpd_http_call *call, const char *buf, size_t len, void *data);
    /* result 0 when the exchange completed (any status), else a negative code and `why`. */
    void (*on_done)(struct mcpd_http_call *call, int result, const char *why, void *data);
};

struct mcpd_http_spec {
    const char *method; /* "GET", "POST", "DELETE" */
    const char *url;
    const char *const *headers; /* "Name: value" lines, NULL-terminated, may be NULL */
    const char *body;           /* copied; may be NULL */
    size_t body_len;
    unsigned connect_timeout_ms; /* 0: curl's default */
    unsigned timeout_ms;         /* whole exchange; 0: none (long-lived streams) */
    bool insecure;               /* skip TLS verification (explicitly configured only) */
    /*
     * Egress pinning (plugins): when set, every address curl is about to
     * connect to is offered to check_addr first; a non-NULL return (a static
     * reason) refuses that address, no socket is opened, and the call fails
     * with "egress refused: <addr> is <reason>". Proxies from the environment
     * are ignored then.
     */
    const char *(*check_addr)(const struct sockaddr *sa, void *data);
    void *check_data;
};

int mcpd_http_client_new(struct mcpd_http_client **out, uv_loop_t *loop);
/*
 * Keeps up to n idle connections for reuse (curl's default follows the number
 * of transfers in progress, so a burst of short requests closes most of its
 * connections again and the next burst reconnects).
 */
void mcpd_http_client_set_max_connections(struct mcpd_http_client *hc, unsigned n);
/* Cancels every call and frees the client once its handles are closed. */
void mcpd_http_client_close(struct mcpd_http_client *hc);

/* Starts a call. Returns 0 or a negative code (nothing will be reported then). */
int mcpd_http_call_start(struct mcpd_http_call **out, struct mcpd_http_client *hc,
                         const struct mcpd_http_spec *spec, const struct mcpd_http_call_ops *ops,
                         void *data);
void mcpd_http_call_cancel(struct mcpd_http_call *call);
/* A response header (case-insensitive), valid until on_done returns; NULL when absent. */
const char *mcpd_http_call_header(struct mcpd_http_call *call, const char *name);

#endif
