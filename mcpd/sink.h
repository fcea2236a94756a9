/*
 * sink.h - where the core writes messages for one client.
 *
 * A transport embeds a struct mcpd_sink in each place a client reads from:
 * stdout (stdio), the answer to one POST, a GET stream. The core hands it
 * serialized JSON-RPC messages and never frees it; when the transport is
 * done with a sink that may still be referenced it calls
 * mcpd_session_sink_closed() first.
 */
#ifndef MCPD_SINK_H
#define MCPD_SINK_H

#include <stdbool.h>
#include <stddef.h>

struct mcpd_sink;

struct mcpd_sink_ops {
    /*
     * Delivers one serialized message (no trailing newline). `final` is true
     * for the response that completes the request this sink was opened for;
     * after it the core does not use the sink again. Returns 0, or a
     * negative code when the sink is broken (the core then treats it as
     * closed). Must not call back into the core synchronously except
     * mcpd_session_sink_closed() for this sink.
     */
    int (*send)(struct mcpd_sink *sk, const char *data, size_t len, bool final);
    /*
     * Optional: a request that was to answer here was cancelled (client
     * notification, session close) and will get no final message.
     */
    void (*cancelled)(struct mcpd_sink *sk);
    /* Optional: if this sink forwards to another, that one (for cleanup). */
    struct mcpd_sink *(*parent)(struct mcpd_sink *sk);
};

struct mcpd_sink {
    const struct mcpd_sink_ops *ops;
    unsigned npending; /* core-owned: pending requests that will answer here */
};

#endif
