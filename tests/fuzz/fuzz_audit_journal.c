/*
 * fuzz_audit_journal.c - libFuzzer target for the audit journal's line
 * parser (mcpd__jnl_parse in mcpd/audit_journal.c), which reads the files a
 * killed mcpd left behind.
 *
 * Invariants checked:
 *   - no crash; *used never passes the input, and always ends a line;
 *   - parsing the same text twice reports the same lines (no hidden state);
 *   - parsing in two pieces (every cut point's prefix, then the rest from
 *     where the prefix stopped) reports what one pass reports, so a line
 *     cut short by a crash is never taken for a record.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "mcpd/audit_int.h"

struct count {
    size_t records, outcomes;
    int64_t sum;
};

static int on_record(void *arg, int64_t handle, json_t *row)
{
    struct count *c = arg;

    FUZZ_CHECK(row != NULL && handle >= 0);
    c->records++;
    c->sum += handle + (int64_t)json_array_size(row);
    return 0;
}

static int on_outcome(void *arg, int64_t handle, int64_t latency_us, const char *status, size_t len)
{
    struct count *c = arg;

    FUZZ_CHECK(handle >= 0 && latency_us >= 0 && memchr(status, '\n', len) == NULL);
    c->outcomes++;
    c->sum += handle + latency_us + (int64_t)len;
    return 0;
}

static int parse(const char *p, size_t len, size_t *used, struct count *c)
{
    struct jnl_sink s = { c, on_record, on_outcome };
    int r = mcpd__jnl_parse(p, len, used, &s);

    FUZZ_CHECK(*used <= len);
    FUZZ_CHECK(*used == 0 || p[*used - 1] == '\n');
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    struct count one = { 0 }, again = { 0 };
    size_t used = 0, used2 = 0;
    int r = parse(p, size, &used, &one);

    FUZZ_CHECK(parse(p, size, &used2, &again) == r && used2 == used);
    FUZZ_CHECK(again.records == one.records && again.outcomes == one.outcomes &&
               again.sum == one.sum);
    if (r == 0 && size <= 4096) {
        size_t cut = size / 2;
        struct count two = { 0 };
        size_t u1 = 0, u2 = 0;

        FUZZ_CHECK(parse(p, cut, &u1, &two) == 0);
        FUZZ_CHECK(parse(p + u1, size - u1, &u2, &two) == 0);
        FUZZ_CHECK(u1 + u2 == used);
        FUZZ_CHECK(two.records == one.records && two.outcomes == one.outcomes &&
                   two.sum == one.sum);
    }
    return 0;
}
