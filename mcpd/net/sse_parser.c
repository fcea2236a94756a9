/* sse_parser.c - text/event-stream parser (see sse_parser.h). */
#include "sse_parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../error.h"

void mcpd_sse_parser_init(struct mcpd_sse_parser *p, size_t max,
                          void (*on_event)(void *, const char *, const char *, const char *,
                                           size_t),
                          void (*on_retry)(void *, unsigned), void *arg)
{
    memset(p, 0, sizeof(*p));
    mcpd_buf_init(&p->line, max + 64);
    mcpd_buf_init(&p->data, max);
    p->on_event = on_event;
    p->on_retry = on_retry;
    p->arg = arg;
}

void mcpd_sse_parser_dispose(struct mcpd_sse_parser *p)
{
    mcpd_buf_dispose(&p->line);
    mcpd_buf_dispose(&p->data);
}

static void dispatch(struct mcpd_sse_parser *p)
{
    if (p->has_data || p->has_id)
        p->on_event(p->arg, p->event[0] ? p->event : "message", p->has_id ? p->id : "",
                    p->data.p ? p->data.p : "", p->data.len);
    mcpd_buf_reset(&p->data);
    p->event[0] = '\0';
    p->has_data = false;
    p->has_id = false; /* the last event id is the caller's to remember */
}

static int field(struct mcpd_sse_parser *p, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len), *value = "";
    size_t nlen = colon ? (size_t)(colon - line) : len, vlen = 0;
    int r;

    if (len == 0) {
        dispatch(p);
        return 0;
    }
    if (colon == line)
        return 0; /* comment */
    if (colon) {
        value = colon + 1;
        vlen = len - nlen - 1;
        if (vlen && *value == ' ') {
            value++;
            vlen--;
        }
    }
    if (nlen == 4 && memcmp(line, "data", 4) == 0) {
        if (p->has_data && (r = mcpd_buf_append(&p->data, "\n", 1)) != 0)
            return r;
        if ((r = mcpd_buf_append(&p->data, value, vlen)) != 0)
            return r;
        p->has_data = true;
    } else if (nlen == 5 && memcmp(line, "event", 5) == 0) {
        snprintf(p->event, sizeof(p->event), "%.*s", (int)vlen, value);
    } else if (nlen == 2 && memcmp(line, "id", 2) == 0) {
        if (memchr(value, '\0', vlen) == NULL) { /* the spec ignores ids with NUL */
            snprintf(p->id, sizeof(p->id), "%.*s", (int)vlen, value);
            p->has_id = true;
        }
    } else if (nlen == 5 && memcmp(line, "retry", 5) == 0) {
        unsigned long ms = 0;
        size_t i;
        for (i = 0; i < vlen && value[i] >= '0' && value[i] <= '9' && ms < 100000000; i++)
            ms = ms * 10 + (unsigned long)(value[i] - '0');
        if (i == vlen && vlen > 0 && p->on_retry)
            p->on_retry(p->arg, (unsigned)ms);
    }
    return 0;
}

int mcpd_sse_parser_feed(struct mcpd_sse_parser *p, const char *buf, size_t len)
{
    size_t i = 0;
    int r;

    if (!p->started && len > 0) {
        p->started = true;
        if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
            i = 3; /* a leading byte order mark is not part of the stream */
    }
    while (i < len) {
        const char *nl = NULL;
        size_t j;
        if (p->last_cr && buf[i] == '\n') { /* the second half of a split "\r\n" */
            p->last_cr = false;
            i++;
            continue;
        }
        p->last_cr = false;
        for (j = i; j < len; j++) {
            if (buf[j] == '\n' || buf[j] == '\r') {
                nl = buf + j;
                break;
            }
        }
        if (nl == NULL)
            return mcpd_buf_append(&p->line, buf + i, len - i);
        if ((r = mcpd_buf_append(&p->line, buf + i, j - i)) != 0)
            return r;
        if ((r = field(p, p->line.p ? p->line.p : "", p->line.len)) != 0)
            return r;
        mcpd_buf_reset(&p->line);
        if (*nl == '\r') {
            if (j + 1 < len && buf[j + 1] == '\n')
                j++;
            else if (j + 1 == len)
                p->last_cr = true;
        }
        i = j + 1;
    }
    return 0;
}
