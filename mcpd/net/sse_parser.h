/*
 * sse_parser.h - sans-I/O parser for text/event-stream (the WHATWG
 * server-sent events format), for streams that upstream MCP servers send.
 *
 * Bytes go in in any chunking; complete events come out through on_event.
 * Lines end in "\n", "\r\n" or "\r"; fields are event, data (joined with
 * "\n"), id and retry; lines starting with ':' are comments. An event with
 * no data but an id (the MCP 2025-11-25 priming event) is still reported so
 * the caller can record the id. One event's data is capped at `max`.
 */
#ifndef MCPD_SSE_PARSER_H
#define MCPD_SSE_PARSER_H

#include <stdbool.h>
#include <stddef.h>

#include "../buf.h"

struct mcpd_sse_parser {
    struct mcpd_buf line; /* the line being read */
    struct mcpd_buf data; /* the event being built */
    char event[64];
    char id[256];
    bool has_id, has_data, last_cr, started;
    /* event is "message" when the stream named none; id is "" when none */
    void (*on_event)(void *arg, const char *event, const char *id, const char *data, size_t len);
    void (*on_retry)(void *arg, unsigned ms); /* may be NULL */
    void *arg;
};

void mcpd_sse_parser_init(struct mcpd_sse_parser *p, size_t max,
                          void (*on_event)(void *, const char *, const char *, const char *,
                                           size_t),
                          void (*on_retry)(void *, unsigned), void *arg);
void mcpd_sse_parser_dispose(struct mcpd_sse_parser *p);
/*
 * Feeds bytes. Returns 0, or MCPD_ETOOBIG when a line or an event exceeds
 * the cap (the parser is then unusable: close the stream). Callbacks run
 * synchronously and must not dispose the parser.
 */
int mcpd_sse_parser_feed(struct mcpd_sse_parser *p, const char *buf, size_t len);

#endif
