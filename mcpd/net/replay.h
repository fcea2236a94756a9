/*
 * replay.h - the recent events of one SSE stream, so that a client that
 * reconnects with Last-Event-ID gets what it missed (MCP resumability).
 * Sans-I/O: a bounded ring of serialized messages, MCPD_REPLAY_EVENTS
 * events and MCPD_REPLAY_BYTES bytes at most (the oldest go first).
 *
 * Event ids are "<stream>-<seq>": the stream number is unique within its
 * session, so an id names exactly one stream and replay never crosses
 * streams.
 */
#ifndef MCPD_REPLAY_H
#define MCPD_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../limits.h"

struct mcpd_replay_event {
    uint64_t seq;
    char *data;
    size_t len;
};

struct mcpd_replay {
    unsigned stream;
    uint64_t seq; /* the last event's number; events are numbered from 1 */
    struct mcpd_replay_event ev[MCPD_REPLAY_EVENTS];
    unsigned head, count;
    size_t bytes;
};

void mcpd_replay_init(struct mcpd_replay *r, unsigned stream);
void mcpd_replay_dispose(struct mcpd_replay *r);
/* Records a copy of one message; returns its number, or 0 when out of memory. */
uint64_t mcpd_replay_add(struct mcpd_replay *r, const char *data, size_t len);
/*
 * Calls fn for every kept event numbered above `after`, oldest first.
 * Returns false (and calls nothing) when some of those were already dropped.
 */
bool mcpd_replay_since(const struct mcpd_replay *r, uint64_t after,
                       void (*fn)(void *arg, uint64_t seq, const char *data, size_t len),
                       void *arg);
/* True when every event after `after` is still kept (mcpd_replay_since would succeed). */
bool mcpd_replay_can_resume(const struct mcpd_replay *r, uint64_t after);
/* Writes "<stream>-<seq>" into out (>= 48 bytes). */
void mcpd_replay_id(char *out, size_t cap, unsigned stream, uint64_t seq);
/* Parses an event id; returns false for anything not of mcpd's form. */
bool mcpd_replay_parse_id(const char *id, unsigned *stream, uint64_t *seq);

#endif
