/*
 * many_tools: a tiny MCP server over stdio with many tools, used to measure
 * how a proxy lists (and merges) large catalogs.
 *
 * Usage: many_tools [COUNT [PREFIX]]   (defaults: 50 tools, prefix "tool")
 * Tools are named PREFIX_000 .. PREFIX_<COUNT-1>, each with a description and a
 * small inputSchema (text: string, required; count: integer; mode: enum).
 * Transport: newline-delimited JSON-RPC 2.0 on stdin/stdout. Handles:
 *   initialize             -> echoes the client's protocolVersion, tools capability
 *   notifications (no id)  -> ignored
 *   tools/list             -> all COUNT tools in one page (no nextCursor); the
 *                             answer is built once at start-up
 *   tools/call PREFIX_nnn  -> content [{type:text, text:<arguments.text>}]
 *   ping                   -> {}
 *   any other request      -> error -32601
 * Replies are batched: every complete line in one read() gets one write().
 *
 * Build: gcc -O2 -Wall -Wextra -Werror -o many_tools many_tools.c
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

static void buf_reserve(buf_t *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t nc = b->cap ? b->cap : 65536;
    while (nc < b->len + extra)
        nc *= 2;
    b->p = realloc(b->p, nc);
    if (!b->p) {
        perror("realloc");
        exit(1);
    }
    b->cap = nc;
}
static void buf_add(buf_t *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}
static void buf_adds(buf_t *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* ---- minimal JSON scanning (no allocation; raw tokens are copied) ---- */
static const char *ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}
/* returns pointer just past the value at p, or NULL on malformed input */
static const char *skip_value(const char *p, const char *e)
{
    p = ws(p, e);
    if (p >= e)
        return NULL;
    if (*p == '"') {
        for (p++; p < e; p++) {
            if (*p == '\\') {
                p++;
                continue;
            }
            if (*p == '"')
                return p + 1;
        }
        return NULL;
    }
    if (*p == '{' || *p == '[') {
        char close = (*p == '{') ? '}' : ']';
        int is_obj = (*p == '{');
        p = ws(p + 1, e);
        if (p < e && *p == close)
            return p + 1;
        for (;;) {
            if (is_obj) {
                p = skip_value(p, e); /* key */
                if (!p)
                    return NULL;
                p = ws(p, e);
                if (p >= e || *p != ':')
                    return NULL;
                p++;
            }
            p = skip_value(p, e);
            if (!p)
                return NULL;
            p = ws(p, e);
            if (p >= e)
                return NULL;
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p == close)
                return p + 1;
            return NULL;
        }
    }
    /* number / true / false / null */
    const char *s = p;
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\r' &&
           *p != '\n')
        p++;
    return p > s ? p : NULL;
}
/* Find member `key` in the object starting at `obj` ('{'). Sets *vs and *ve to
 * the raw value token. Returns 1 if found. Keys are compared unescaped-naively. */
static int find_key(const char *obj, const char *e, const char *key, const char **vs,
                    const char **ve)
{
    const char *p = ws(obj, e);
    if (p >= e || *p != '{')
        return 0;
    p = ws(p + 1, e);
    if (p < e && *p == '}')
        return 0;
    size_t kl = strlen(key);
    for (;;) {
        p = ws(p, e);
        const char *ks = p;
        p = skip_value(p, e);
        if (!p || *ks != '"')
            return 0;
        int match = ((size_t)(p - ks) == kl + 2 && memcmp(ks + 1, key, kl) == 0);
        p = ws(p, e);
        if (p >= e || *p != ':')
            return 0;
        const char *v = ws(p + 1, e);
        p = skip_value(v, e);
        if (!p)
            return 0;
        if (match) {
            *vs = v;
            *ve = p;
            return 1;
        }
        p = ws(p, e);
        if (p >= e || *p != ',')
            return 0;
        p++;
    }
}
static int str_eq(const char *vs, const char *ve, const char *lit)
{
    size_t l = strlen(lit);
    return (size_t)(ve - vs) == l + 2 && vs[0] == '"' && memcmp(vs + 1, lit, l) == 0;
}

/* ---- replies ---- */
static void reply_head(buf_t *o, const char *ids, const char *ide)
{
    buf_adds(o, "{\"jsonrpc\":\"2.0\",\"id\":");
    buf_add(o, ids, (size_t)(ide - ids));
}
static void reply_error(buf_t *o, const char *ids, const char *ide, int code, const char *msg)
{
    char tmp[64];
    reply_head(o, ids, ide);
    snprintf(tmp, sizeof tmp, ",\"error\":{\"code\":%d,\"message\":\"", code);
    buf_adds(o, tmp);
    buf_adds(o, msg);
    buf_adds(o, "\"}}\n");
}

static buf_t tools_list; /* ",\"result\":{\"tools\":[...]}}\n" */
static const char *prefix = "tool";
static long count = 50;

static void build_tools_list(void)
{
    char tmp[1024];
    buf_adds(&tools_list, ",\"result\":{\"tools\":[");
    for (long i = 0; i < count; i++) {
        snprintf(
            tmp, sizeof tmp,
            "%s{\"name\":\"%s_%03ld\",\"description\":\"Bench tool %ld of %s: returns its text "
            "argument unchanged; count and mode are accepted and ignored.\","
            "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
            "\"text\":{\"type\":\"string\",\"description\":\"the text to return\"},"
            "\"count\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100},"
            "\"mode\":{\"type\":\"string\",\"enum\":[\"fast\",\"slow\"]}},"
            "\"required\":[\"text\"]}}",
            i ? "," : "", prefix, i, i, prefix);
        buf_adds(&tools_list, tmp);
    }
    buf_adds(&tools_list, "]}}\n");
}

/* Is the JSON string token [ns, ne) one of our tool names? */
static int is_our_tool(const char *ns, const char *ne)
{
    size_t pl = strlen(prefix), n = (size_t)(ne - ns);
    if (n < pl + 3 || ns[0] != '"' || ne[-1] != '"')
        return 0;
    if (memcmp(ns + 1, prefix, pl) != 0 || ns[1 + pl] != '_')
        return 0;
    char num[32];
    size_t dl = n - pl - 3;
    if (dl == 0 || dl >= sizeof num)
        return 0;
    memcpy(num, ns + 2 + pl, dl);
    num[dl] = 0;
    for (size_t i = 0; i < dl; i++)
        if (num[i] < '0' || num[i] > '9')
            return 0;
    long k = strtol(num, NULL, 10);
    return k >= 0 && k < count;
}

static void handle_line(const char *s, const char *e, buf_t *o)
{
    const char *ids, *ide, *ms, *me, *ps = NULL, *pe = NULL;
    s = ws(s, e);
    if (s >= e || *s != '{')
        return; /* batches / garbage: ignore */
    if (!find_key(s, e, "method", &ms, &me))
        return; /* a response: ignore */
    if (!find_key(s, e, "id", &ids, &ide))
        return; /* a notification: no reply */
    find_key(s, e, "params", &ps, &pe);

    if (str_eq(ms, me, "tools/call")) {
        const char *ns, *ne, *as = NULL, *ae = NULL, *ts, *te;
        if (!ps || !find_key(ps, pe, "name", &ns, &ne)) {
            reply_error(o, ids, ide, -32602, "missing tool name");
            return;
        }
        if (!is_our_tool(ns, ne)) {
            reply_error(o, ids, ide, -32602, "unknown tool");
            return;
        }
        find_key(ps, pe, "arguments", &as, &ae);
        if (!as || !find_key(as, ae, "text", &ts, &te) || *ts != '"') {
            reply_error(o, ids, ide, -32602, "arguments.text (string) is required");
            return;
        }
        reply_head(o, ids, ide);
        buf_adds(o, ",\"result\":{\"content\":[{\"type\":\"text\",\"text\":");
        buf_add(o, ts, (size_t)(te - ts));
        buf_adds(o, "}],\"isError\":false}}\n");
    } else if (str_eq(ms, me, "ping")) {
        reply_head(o, ids, ide);
        buf_adds(o, ",\"result\":{}}\n");
    } else if (str_eq(ms, me, "tools/list")) {
        reply_head(o, ids, ide);
        buf_add(o, tools_list.p, tools_list.len);
    } else if (str_eq(ms, me, "initialize")) {
        const char *vs = NULL, *ve = NULL;
        reply_head(o, ids, ide);
        buf_adds(o, ",\"result\":{\"protocolVersion\":");
        if (ps && find_key(ps, pe, "protocolVersion", &vs, &ve) && *vs == '"')
            buf_add(o, vs, (size_t)(ve - vs));
        else
            buf_adds(o, "\"2025-06-18\"");
        buf_adds(o, ",\"capabilities\":{\"tools\":{\"listChanged\":false}},"
                    "\"serverInfo\":{\"name\":\"many-tools\",\"version\":\"1.0.0\"}}}\n");
    } else {
        reply_error(o, ids, ide, -32601, "Method not found");
    }
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        char *end;
        count = strtol(argv[1], &end, 10);
        if (*end || count < 1 || count > 100000) {
            fprintf(stderr, "usage: many_tools [COUNT (1..100000) [PREFIX]]\n");
            return 2;
        }
    }
    if (argc > 2)
        prefix = argv[2];
    size_t pl = strlen(prefix);
    int bad = pl < 1 || pl > 64;
    for (const char *c = prefix; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_'))
            bad = 1;
    if (bad) {
        fprintf(stderr, "many_tools: PREFIX: 1 to 64 of [A-Za-z0-9_-]\n");
        return 2;
    }
    build_tools_list();
    buf_t in = { 0 }, out = { 0 };
    buf_reserve(&in, 65536);
    buf_reserve(&out, 65536);
    for (;;) {
        buf_reserve(&in, 65536);
        ssize_t r = read(0, in.p + in.len, in.cap - in.len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (r == 0)
            break; /* EOF: client closed stdin */
        in.len += (size_t)r;
        char *start = in.p, *end = in.p + in.len, *nl;
        while ((nl = memchr(start, '\n', (size_t)(end - start))) != NULL) {
            handle_line(start, nl, &out);
            start = nl + 1;
        }
        size_t rest = (size_t)(end - start);
        memmove(in.p, start, rest);
        in.len = rest;
        if (out.len) {
            if (write_all(1, out.p, out.len) < 0)
                return 1;
            out.len = 0;
        }
    }
    return 0;
}
