/* replay.c - bounded per-stream event history (see replay.h). */
#include "replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void mcpd_replay_init(struct mcpd_replay *r, unsigned stream)
{
    memset(r, 0, sizeof(*r));
    r->stream = stream;
}

static void drop_oldest(struct mcpd_replay *r)
{
    struct mcpd_replay_event *e = &r->ev[r->head];
    r->bytes -= e->len;
    free(e->data);
    e->data = NULL;
    r->head = (r->head + 1) % MCPD_REPLAY_EVENTS;
    r->count--;
}

void mcpd_replay_dispose(struct mcpd_replay *r)
{
    while (r->count)
        drop_oldest(r);
}

uint64_t mcpd_replay_add(struct mcpd_replay *r, const char *data, size_t len)
{
    struct mcpd_replay_event *e;
    char *copy;

    r->seq++; /* numbered even when it cannot be kept: a gap is then reported */
    if (len > MCPD_REPLAY_BYTES)
        return r->seq;
    while (r->count && (r->count == MCPD_REPLAY_EVENTS || r->bytes + len > MCPD_REPLAY_BYTES))
        drop_oldest(r);
    if ((copy = malloc(len ? len : 1)) == NULL)
        return r->seq;
    memcpy(copy, data, len);
    e = &r->ev[(r->head + r->count) % MCPD_REPLAY_EVENTS];
    e->seq = r->seq;
    e->data = copy;
    e->len = len;
    r->count++;
    r->bytes += len;
    return r->seq;
}

bool mcpd_replay_can_resume(const struct mcpd_replay *r, uint64_t after)
{
    uint64_t first = r->count ? r->ev[r->head].seq : r->seq + 1;
    /* not an id from the future, and nothing missed is gone */
    return after <= r->seq && after + 1 >= first;
}

bool mcpd_replay_since(const struct mcpd_replay *r, uint64_t after,
                       void (*fn)(void *arg, uint64_t seq, const char *data, size_t len), void *arg)
{
    if (!mcpd_replay_can_resume(r, after))
        return false;
    for (unsigned i = 0; i < r->count; i++) {
        const struct mcpd_replay_event *e = &r->ev[(r->head + i) % MCPD_REPLAY_EVENTS];
        if (e->seq > after)
            fn(arg, e->seq, e->data, e->len);
    }
    return true;
}

void mcpd_replay_id(char *out, size_t cap, unsigned stream, uint64_t seq)
{
    snprintf(out, cap, "%u-%llu", stream, (unsigned long long)seq);
}

bool mcpd_replay_parse_id(const char *id, unsigned *stream, uint64_t *seq)
{
    char *end;
    unsigned long s;
    unsigned long long n;
    if (id == NULL || *id < '0' || *id > '9')
        return false;
    errno = 0;
    s = strtoul(id, &end, 10);
    if (errno || *end != '-' || s > 0xffffffffUL || end[1] < '0' || end[1] > '9')
        return false;
    n = strtoull(end + 1, &end, 10);
    if (errno || *end != '\0')
        return false;
    *stream = (unsigned)s;
    *seq = n;
    return true;
}
