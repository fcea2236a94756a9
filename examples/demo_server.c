/*
 * mcpd-demo-server: a tiny MCP server on stdio, the default upstream of the
 * README's demo configuration.
 *
 * It speaks newline-delimited JSON-RPC 2.0 on stdin/stdout (logs go to
 * stderr) and offers four tools: echo, add (with structured output), now and
 * reverse. Input is read in a poll() loop and split into lines of at most
 * 16 MiB; every request is answered at once. The server exits with status 0
 * when stdin reaches EOF.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#ifndef MCPD_VERSION
#define MCPD_VERSION "0.0.0"
#endif

#define DEMO_LINE_MAX   (16u * 1024u * 1024u)
#define DEMO_READ_CHUNK 65536
#define DEMO_LATEST     "2025-11-25"

static const char *const demo_versions[] = { "2024-11-05", "2025-03-26", "2025-06-18",
                                             "2025-11-25" };

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, p, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "mcpd-demo-server: write to stdout failed: %s\n", strerror(errno));
            exit(0);
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Sends one message and drops the reference to it. */
static void send_msg(json_t *msg)
{
    char *s = msg ? json_dumps(msg, JSON_COMPACT) : NULL;

    json_decref(msg);
    if (s == NULL) {
        fprintf(stderr, "mcpd-demo-server: cannot encode a message\n");
        return;
    }
    write_all(s, strlen(s));
    write_all("\n", 1);
    free(s);
}

/* id is borrowed; result is stolen. */
static void send_result(json_t *id, json_t *result)
{
    send_msg(json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result",
                       result ? result : json_object()));
}

/* id is borrowed (NULL means null). */
static void send_error(json_t *id, int code, const char *message)
{
    send_msg(json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                       "error", "code", code, "message", message));
}

static void reply_text(json_t *id, const char *text, int is_error)
{
    json_t *result = json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text", text);

    if (result != NULL && is_error)
        json_object_set_new(result, "isError", json_true());
    send_result(id, result);
}

/* ---- tools ------------------------------------------------------------ */

static void tool_echo(json_t *id, json_t *args)
{
    json_t *text = json_object_get(args, "text");

    if (!json_is_string(text)) {
        reply_text(id, "echo: argument 'text' must be a string", 1);
        return;
    }
    /* Pass the JSON string itself so that embedded NUL bytes survive. */
    send_result(id, json_pack("{s:[{s:s, s:O}]}", "content", "type", "text", "text", text));
}

static void tool_add(json_t *id, json_t *args)
{
    json_t *a = json_object_get(args, "a");
    json_t *b = json_object_get(args, "b");
    json_t *sum;
    json_t *result;
    char *text;

    if (!json_is_number(a) || !json_is_number(b)) {
        reply_text(id, "add: arguments 'a' and 'b' must be numbers", 1);
        return;
    }
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a);
        json_int_t y = json_integer_value(b);
        json_int_t s;

        if (!__builtin_add_overflow(x, y, &s))
            sum = json_integer(s);
        else
            sum = json_real((double)x + (double)y);
    } else {
        sum = json_real(json_number_value(a) + json_number_value(b));
    }
    text = sum ? json_dumps(sum, JSON_ENCODE_ANY) : NULL;
    if (text == NULL) {
        json_decref(sum);
        reply_text(id, "add: the sum is not a finite number", 1);
        return;
    }
    result = json_pack("{s:[{s:s, s:s}], s:{s:o}}", "content", "type", "text", "text", text,
                       "structuredContent", "sum", sum);
    free(text);
    send_result(id, result);
}

static void tool_now(json_t *id, json_t *args)
{
    struct timespec ts;
    struct tm tm;
    char date[32];
    char text[48];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(text, sizeof(text), "%s.%03ldZ", date, ts.tv_nsec / 1000000);
    reply_text(id, text, 0);
}

/* Reverses by UTF-8 code point, so the result stays valid UTF-8. */
static void tool_reverse(json_t *id, json_t *args)
{
    json_t *t = json_object_get(args, "text");
    const char *s = json_string_value(t);
    size_t len = json_string_length(t);
    size_t i = 0;
    char *out;

    if (s == NULL) {
        reply_text(id, "reverse: argument 'text' must be a string", 1);
        return;
    }
    out = malloc(len + 1);
    if (out == NULL) {
        reply_text(id, "reverse: out of memory", 1);
        return;
    }
    while (i < len) {
        size_t n = 1;

        while (i + n < len && ((unsigned char)s[i + n] & 0xC0) == 0x80)
            n++;
        memcpy(out + len - i - n, s + i, n);
        i += n;
    }
    out[len] = '\0';
    /* A string with NUL bytes inside would be cut by reply_text. */
    send_result(id, json_pack("{s:[{s:s, s:o}]}", "content", "type", "text", "text",
                              json_stringn(out, len)));
    free(out);
}

struct demo_tool {
    const char *name;
    const char *description;
    const char *input_schema;  /* JSON text */
    const char *output_schema; /* JSON text or NULL */
    void (*call)(json_t *id, json_t *args);
};

static const struct demo_tool demo_tools[] = {
    { "echo", "Returns the given text unchanged",
      "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\","
      "\"description\":\"Text to echo\"}},\"required\":[\"text\"]}",
      NULL, tool_echo },
    { "add", "Adds two numbers",
      "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"number\"},"
      "\"b\":{\"type\":\"number\"}},\"required\":[\"a\",\"b\"]}",
      "{\"type\":\"object\",\"properties\":{\"sum\":{\"type\":\"number\"}},"
      "\"required\":[\"sum\"]}",
      tool_add },
    { "now", "Returns the current UTC time in ISO-8601 form",
      "{\"type\":\"object\",\"properties\":{}}", NULL, tool_now },
    { "reverse", "Returns the given text reversed",
      "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\","
      "\"description\":\"Text to reverse\"}},\"required\":[\"text\"]}",
      NULL, tool_reverse },
};

#define DEMO_NTOOLS (sizeof(demo_tools) / sizeof(demo_tools[0]))

static void method_tools_list(json_t *id, json_t *params)
{
    json_t *tools = json_array();
    size_t i;

    for (i = 0; i < DEMO_NTOOLS; i++) {
        const struct demo_tool *t = &demo_tools[i];
        json_t *o = json_pack("{s:s, s:s, s:o}", "name", t->name, "description", t->description,
                              "inputSchema", json_loads(t->input_schema, 0, NULL));

        if (o != NULL && t->output_schema != NULL)
            json_object_set_new(o, "outputSchema", json_loads(t->output_schema, 0, NULL));
        json_array_append_new(tools, o);
    }
    send_result(id, json_pack("{s:o}", "tools", tools));
}

static void method_tools_call(json_t *id, json_t *params)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    json_t *args = json_object_get(params, "arguments");
    size_t i;

    if (name == NULL) {
        send_error(id, -32602, "Invalid params: 'name' (string) is required");
        return;
    }
    if (args != NULL && !json_is_object(args)) {
        send_error(id, -32602, "Invalid params: 'arguments' must be an object");
        return;
    }
    for (i = 0; i < DEMO_NTOOLS; i++) {
        if (strcmp(demo_tools[i].name, name) == 0) {
            json_t *empty = args ? NULL : json_object();

            demo_tools[i].call(id, args ? args : empty);
            json_decref(empty);
            return;
        }
    }
    send_error(id, -32602, "Unknown tool");
}

static void method_initialize(json_t *id, json_t *params)
{
    const char *want = json_string_value(json_object_get(params, "protocolVersion"));
    const char *version = DEMO_LATEST;
    size_t i;

    for (i = 0; want != NULL && i < sizeof(demo_versions) / sizeof(demo_versions[0]); i++) {
        if (strcmp(want, demo_versions[i]) == 0)
            version = demo_versions[i];
    }
    send_result(id, json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s}}", "protocolVersion", version,
                              "capabilities", "tools", "listChanged", 0, "serverInfo", "name",
                              "mcpd-demo", "version", MCPD_VERSION));
}

static void method_ping(json_t *id, json_t *params)
{
    send_result(id, NULL);
}

struct demo_method {
    const char *name;
    void (*fn)(json_t *id, json_t *params);
};

static const struct demo_method demo_methods[] = {
    { "initialize", method_initialize },
    { "ping", method_ping },
    { "tools/list", method_tools_list },
    { "tools/call", method_tools_call },
};

static void handle_message(json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    json_t *method = json_object_get(msg, "method");
    json_t *params = json_object_get(msg, "params");
    const char *jsonrpc = json_string_value(json_object_get(msg, "jsonrpc"));
    int id_ok = json_is_string(id) || json_is_integer(id);
    size_t i;

    if (jsonrpc == NULL || strcmp(jsonrpc, "2.0") != 0 || !json_is_string(method) ||
        (id != NULL && !id_ok)) {
        /* This server sends no requests, so a response is unexpected too. */
        send_error(id_ok ? id : NULL, -32600, "Invalid Request");
        return;
    }
    if (id == NULL)
        return; /* notifications need no answer */
    if (params != NULL && !json_is_object(params)) {
        send_error(id, -32602, "Invalid params: params must be an object");
        return;
    }
    for (i = 0; i < sizeof(demo_methods) / sizeof(demo_methods[0]); i++) {
        if (strcmp(demo_methods[i].name, json_string_value(method)) == 0) {
            demo_methods[i].fn(id, params);
            return;
        }
    }
    send_error(id, -32601, "Method not found");
}

static void handle_line(char *line, size_t len)
{
    json_t *msg;
    size_t i;

    if (len > 0 && line[len - 1] == '\r')
        len--;
    for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
        ;
    if (i == len)
        return;
    msg = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    if (msg == NULL) {
        send_error(NULL, -32700, "Parse error");
        return;
    }
    if (json_is_object(msg))
        handle_message(msg);
    else
        send_error(NULL, -32600, "Invalid Request");
    json_decref(msg);
}

int main(void)
{
    static char chunk[DEMO_READ_CHUNK];
    char *line = NULL;
    size_t len = 0, cap = 0;
    int discarding = 0;

    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
        const char *p = chunk;
        ssize_t r;
        size_t n;

        if (poll(&pfd, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "mcpd-demo-server: poll: %s\n", strerror(errno));
            free(line);
            return 1;
        }
        r = read(STDIN_FILENO, chunk, sizeof(chunk));
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            fprintf(stderr, "mcpd-demo-server: read: %s\n", strerror(errno));
            free(line);
            return 1;
        }
        if (r == 0) {
            if (len > 0 && !discarding)
                handle_line(line, len);
            free(line);
            return 0;
        }
        n = (size_t)r;
        while (n > 0) {
            const char *nl = memchr(p, '\n', n);
            size_t take = nl ? (size_t)(nl - p) : n;

            if (discarding) {
                discarding = nl == NULL;
            } else if (len + take > DEMO_LINE_MAX) {
                send_error(NULL, -32600, "Invalid Request: message larger than 16 MiB");
                len = 0;
                discarding = nl == NULL;
            } else {
                if (len + take > cap) {
                    size_t ncap = cap ? cap : 4096;
                    char *d;

                    while (ncap < len + take)
                        ncap *= 2;
                    d = realloc(line, ncap);
                    if (d == NULL) {
                        fprintf(stderr, "mcpd-demo-server: out of memory\n");
                        free(line);
                        return 1;
                    }
                    line = d;
                    cap = ncap;
                }
                memcpy(line + len, p, take);
                len += take;
                if (nl != NULL) {
                    handle_line(line, len);
                    len = 0;
                }
            }
            if (nl == NULL)
                break;
            p = nl + 1;
            n -= take + 1;
        }
    }
}
