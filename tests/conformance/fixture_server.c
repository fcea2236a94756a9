/*
 * mcpd-fixture: a stdio MCP server used as the upstream in mcpd's tests.
 *
 * It implements the fixture names that the official MCP conformance suite
 * (@modelcontextprotocol/conformance 0.1.16) calls on a server, so that the
 * suite can be run against mcpd with this program behind it, plus a few
 * tools that exercise proxy robustness (sleep, hang, crash, big, ...).
 *
 * Transport: newline-delimited JSON-RPC 2.0 on stdin/stdout, logs on stderr.
 * Everything runs in one poll() loop. Work that takes time (sleep, the
 * logging and progress tools) is a timed job, and a tool that asks the client
 * something (sampling, elicitation) parks a pending entry until the client's
 * response arrives, so other requests are served meanwhile:
 *
 *   stdin line -> request  -> answer now | add job | send request + pending
 *              -> response -> match pending by id -> answer the tool call
 *   poll timeout          -> run due jobs (notifications, deferred answers)
 *   stdin EOF             -> exit 0
 *
 * Environment: FIXTURE_LOG (append every received line to this file),
 * FIXTURE_NAME (serverInfo.name), FIXTURE_TOOL_PREFIX (prefix of every tool
 * name).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#ifndef MCPD_VERSION
#define MCPD_VERSION "0.0.0"
#endif

#define FX_LINE_MAX   (16u * 1024u * 1024u)  /* longest accepted input line */
#define FX_BIG_MAX    (256u * 1024u * 1024u) /* largest "big" result */
#define FX_SLEEP_MAX  (3600 * 1000)          /* longest "sleep" in ms */
#define FX_STEP_MS    50                     /* delay between notifications */
#define FX_READ_CHUNK 65536

/* A 1x1 RGB PNG and a 1 ms, 8 kHz, 8-bit mono WAV, generated for this file. */
static const char fx_png_b64[] =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mNQaHgAAAJEAYFP"
    "PxUdAAAAAElFTkSuQmCC";
static const char fx_wav_b64[] =
    "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==";

static const char *const fx_versions[] = { "2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25" };
#define FX_LATEST_VERSION "2025-11-25"

static const char *const fx_levels[] = { "debug", "info",     "notice", "warning",
                                         "error", "critical", "alert",  "emergency" };

enum fx_job_kind { FX_JOB_SLEEP, FX_JOB_LOGGING, FX_JOB_PROGRESS, FX_JOB_RECONNECT };

/* A timed piece of work; owns id and token (either may be NULL). */
struct fx_job {
    struct fx_job *next;
    enum fx_job_kind kind;
    json_t *id;    /* id of the tools/call request to answer */
    json_t *token; /* progress token, or NULL */
    int step;
    long ms;        /* FX_JOB_SLEEP: requested duration */
    int64_t due_ms; /* monotonic deadline */
};

enum fx_ask_kind { FX_ASK_SAMPLING, FX_ASK_ELICIT, FX_ASK_ELICIT_FORM };

/* A server->client request waiting for its response; owns call_id. */
struct fx_pending {
    struct fx_pending *next;
    json_int_t out_id; /* id of our request to the client */
    json_t *call_id;   /* id of the tools/call that is waiting */
    enum fx_ask_kind kind;
};

struct fx_linebuf {
    char *data;
    size_t len;
    size_t cap;
    int discarding; /* dropping the rest of an over-long line */
};

struct fx_state {
    struct fx_job *jobs;
    struct fx_pending *pending;
    json_int_t next_out_id;
    json_t *client_caps; /* capabilities from initialize, or NULL */
    int initialized;     /* initialize was received */
    int log_level;       /* index into fx_levels */
    int extra_tool;      /* toggle_extra state */
    int extra_prompt;    /* test_trigger_prompt_change state */
    int watched;         /* test://watched-resource is subscribed to */
    FILE *log;           /* FIXTURE_LOG, or NULL */
    const char *name;
    const char *prefix;
    size_t prefix_len;
    struct fx_linebuf in;
};

static struct fx_state fx;

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 1, 2))) static char *fx_printf(const char *fmt, ...)
{
    va_list ap;
    int n;
    char *s;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    s = malloc((size_t)n + 1);
    if (s == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* ---- output ---------------------------------------------------------- */

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, p, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            /* The client went away: nothing left to do. */
            fprintf(stderr, "mcpd-fixture: write to stdout failed: %s\n", strerror(errno));
            exit(0);
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Sends one message and drops the reference to it. */
static void send_msg(json_t *msg)
{
    char *s;

    if (msg == NULL)
        return;
    s = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (s == NULL) {
        fprintf(stderr, "mcpd-fixture: cannot encode a message\n");
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

/* id is borrowed (NULL means null); data is stolen and may be NULL. */
static void send_error(json_t *id, int code, const char *message, json_t *data)
{
    json_t *err = json_pack("{s:i, s:s}", "code", code, "message", message);

    if (err != NULL && data != NULL)
        json_object_set_new(err, "data", data);
    else
        json_decref(data);
    send_msg(
        json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error", err));
}

/* params is stolen. */
static void send_notification(const char *method, json_t *params)
{
    json_t *msg = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);

    if (msg != NULL && params != NULL)
        json_object_set_new(msg, "params", params);
    else
        json_decref(params);
    send_msg(msg);
}

static void send_log(const char *level, const char *text)
{
    size_t i;

    for (i = 0; i < sizeof(fx_levels) / sizeof(fx_levels[0]); i++) {
        if (strcmp(fx_levels[i], level) == 0)
            break;
    }
    if ((int)i < fx.log_level)
        return;
    send_notification("notifications/message", json_pack("{s:s, s:s, s:s}", "level", level,
                                                         "logger", "mcpd-fixture", "data", text));
}

/* ---- content helpers ------------------------------------------------- */

static json_t *text_block(const char *text)
{
    return json_pack("{s:s, s:s}", "type", "text", "text", text ? text : "");
}

static json_t *image_block(void)
{
    return json_pack("{s:s, s:s, s:s}", "type", "image", "data", fx_png_b64, "mimeType",
                     "image/png");
}

/* content is stolen. */
static void reply_content(json_t *id, json_t *content, int is_error)
{
    json_t *result = json_pack("{s:o}", "content", content);

    if (result != NULL && is_error)
        json_object_set_new(result, "isError", json_true());
    send_result(id, result);
}

static void reply_text(json_t *id, const char *text, int is_error)
{
    reply_content(id, json_pack("[o]", text_block(text)), is_error);
}

/* text is freed. */
static void reply_text_owned(json_t *id, char *text, int is_error)
{
    reply_text(id, text ? text : "out of memory", is_error || text == NULL);
    free(text);
}

/* ---- jobs and pending server->client requests -------------------------- */

static struct fx_job *job_add(enum fx_job_kind kind, json_t *id, int64_t due_ms)
{
    struct fx_job *job = calloc(1, sizeof(*job));

    if (job == NULL)
        return NULL;
    job->kind = kind;
    job->id = json_incref(id);
    job->due_ms = due_ms;
    job->next = fx.jobs;
    fx.jobs = job;
    return job;
}

static void job_free(struct fx_job *job)
{
    json_decref(job->id);
    json_decref(job->token);
    free(job);
}

/* Advances one job; returns 1 when it is finished. */
static int job_step(struct fx_job *job)
{
    static const char *const log_texts[] = { "Tool execution started", "Tool processing data",
                                             "Tool execution completed" };

    switch (job->kind) {
    case FX_JOB_SLEEP:
        reply_text_owned(job->id, fx_printf("slept %ld ms", job->ms), 0);
        return 1;
    case FX_JOB_RECONNECT:
        reply_text(job->id, "Reconnection test completed successfully.", 0);
        return 1;
    case FX_JOB_LOGGING:
        send_log("info", log_texts[job->step]);
        if (++job->step < 3)
            break;
        reply_text(job->id, "Tool with logging executed successfully", 0);
        return 1;
    case FX_JOB_PROGRESS:
        if (job->token != NULL) {
            int progress = job->step * 50;
            char *msg = fx_printf("Completed step %d of 100", progress);

            send_notification("notifications/progress",
                              json_pack("{s:O, s:i, s:i, s:s}", "progressToken", job->token,
                                        "progress", progress, "total", 100, "message",
                                        msg ? msg : ""));
            free(msg);
        }
        if (++job->step < 3)
            break;
        if (job->token != NULL) {
            char *tok = json_dumps(job->token, JSON_ENCODE_ANY | JSON_COMPACT);

            reply_text_owned(job->id, fx_printf("Progress reported with token %s", tok ? tok : "?"),
                             0);
            free(tok);
        } else {
            reply_text(job->id, "Tool with progress executed (no progress token)", 0);
        }
        return 1;
    }
    job->due_ms = now_ms() + FX_STEP_MS;
    return 0;
}

static void jobs_run_due(void)
{
    struct fx_job **pp = &fx.jobs;
    int64_t now = now_ms();

    while (*pp != NULL) {
        struct fx_job *job = *pp;

        if (job->due_ms <= now && job_step(job)) {
            *pp = job->next;
            job_free(job);
            continue;
        }
        pp = &job->next;
    }
}

static int jobs_timeout(void)
{
    struct fx_job *job;
    int64_t now = now_ms();
    int64_t best = -1;

    for (job = fx.jobs; job != NULL; job = job->next) {
        int64_t d = job->due_ms > now ? job->due_ms - now : 0;

        if (best < 0 || d < best)
            best = d;
    }
    return best > INT_MAX ? INT_MAX : (int)best;
}

/* Sends a request to the client; the tools/call call_id waits for its response. */
static void ask_client(json_t *call_id, enum fx_ask_kind kind, const char *method, json_t *params)
{
    struct fx_pending *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        json_decref(params);
        reply_text(call_id, "out of memory", 1);
        return;
    }
    p->out_id = ++fx.next_out_id;
    p->call_id = json_incref(call_id);
    p->kind = kind;
    p->next = fx.pending;
    fx.pending = p;
    send_msg(json_pack("{s:s, s:I, s:s, s:o}", "jsonrpc", "2.0", "id", p->out_id, "method", method,
                       "params", params));
}

/* Turns the client's answer to sampling or elicitation into the tool result. */
static void finish_ask(struct fx_pending *p, json_t *msg)
{
    json_t *err = json_object_get(msg, "error");
    json_t *res = json_object_get(msg, "result");
    const char *what = p->kind == FX_ASK_SAMPLING ? "sampling" : "elicitation";

    if (err != NULL || !json_is_object(res)) {
        const char *m = json_string_value(json_object_get(err, "message"));

        reply_text_owned(p->call_id,
                         fx_printf("%s request failed: %s", what, m ? m : "invalid response"), 1);
        return;
    }
    if (p->kind == FX_ASK_SAMPLING) {
        json_t *content = json_object_get(res, "content");
        const char *text = NULL;

        /* 2025-11-25 allows an array of content blocks as well as one block. */
        if (json_is_array(content)) {
            size_t i;
            json_t *c;

            json_array_foreach (content, i, c) {
                text = json_string_value(json_object_get(c, "text"));
                if (text != NULL)
                    break;
            }
        } else {
            text = json_string_value(json_object_get(content, "text"));
        }
        reply_text_owned(p->call_id, fx_printf("LLM response: %s", text ? text : "(no text)"), 0);
    } else {
        const char *action = json_string_value(json_object_get(res, "action"));
        json_t *content = json_object_get(res, "content");
        char *c = content ? json_dumps(content, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

        reply_text_owned(
            p->call_id,
            fx_printf("%s: action=%s, content=%s",
                      p->kind == FX_ASK_ELICIT ? "User response" : "Elicitation completed",
                      action ? action : "(none)", c ? c : "{}"),
            0);
        free(c);
    }
}

static void handle_response(json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    struct fx_pending **pp;

    for (pp = &fx.pending; *pp != NULL; pp = &(*pp)->next) {
        struct fx_pending *p = *pp;

        if (json_is_integer(id) && json_integer_value(id) == p->out_id) {
            *pp = p->next;
            finish_ask(p, msg);
            json_decref(p->call_id);
            free(p);
            return;
        }
    }
    fprintf(stderr, "mcpd-fixture: response with an unknown id ignored\n");
}

/* ---- tools ------------------------------------------------------------ */

#define FX_NO_ARGS "{\"type\":\"object\",\"properties\":{}}"

struct fx_tool {
    const char *name;
    const char *description;
    const char *input_schema; /* JSON text */
    void (*call)(json_t *id, json_t *args, json_t *params);
};

/* Returns 1 if the client declared the capability (an object) at initialize. */
static int client_has(const char *cap)
{
    /* A client that never initialized is trusted to support everything. */
    if (!fx.initialized)
        return 1;
    return json_is_object(json_object_get(fx.client_caps, cap));
}

static void t_simple_text(json_t *id, json_t *args, json_t *params)
{
    reply_text(id, "This is a simple text response for testing.", 0);
}

static void t_image(json_t *id, json_t *args, json_t *params)
{
    reply_content(id, json_pack("[o]", image_block()), 0);
}

static void t_audio(json_t *id, json_t *args, json_t *params)
{
    reply_content(id,
                  json_pack("[{s:s, s:s, s:s}]", "type", "audio", "data", fx_wav_b64, "mimeType",
                            "audio/wav"),
                  0);
}

static void t_embedded(json_t *id, json_t *args, json_t *params)
{
    reply_content(id,
                  json_pack("[{s:s, s:{s:s, s:s, s:s}}]", "type", "resource", "resource", "uri",
                            "test://embedded-resource", "mimeType", "text/plain", "text",
                            "This is an embedded resource content."),
                  0);
}

static void t_multiple(json_t *id, json_t *args, json_t *params)
{
    reply_content(id,
                  json_pack("[o, o, {s:s, s:{s:s, s:s, s:s}}]",
                            text_block("Multiple content types test:"), image_block(), "type",
                            "resource", "resource", "uri", "test://mixed-content-resource",
                            "mimeType", "application/json", "text",
                            "{\"test\":\"data\",\"value\":123}"),
                  0);
}

static void t_logging(json_t *id, json_t *args, json_t *params)
{
    if (job_add(FX_JOB_LOGGING, id, now_ms()) == NULL)
        reply_text(id, "out of memory", 1);
}

static void t_progress(json_t *id, json_t *args, json_t *params)
{
    json_t *token = json_object_get(json_object_get(params, "_meta"), "progressToken");
    struct fx_job *job = job_add(FX_JOB_PROGRESS, id, now_ms());

    if (job == NULL) {
        reply_text(id, "out of memory", 1);
        return;
    }
    /* The token goes back exactly as received (string or integer). */
    if (token != NULL && !json_is_null(token))
        job->token = json_deep_copy(token);
}

static void t_error(json_t *id, json_t *args, json_t *params)
{
    reply_text(id, "This tool intentionally returns an error for testing", 1);
}

static void t_sampling(json_t *id, json_t *args, json_t *params)
{
    const char *prompt = json_string_value(json_object_get(args, "prompt"));

    if (prompt == NULL) {
        reply_text(id, "argument 'prompt' (string) is required", 1);
        return;
    }
    if (!client_has("sampling")) {
        reply_text(id, "the client did not declare the sampling capability", 1);
        return;
    }
    ask_client(id, FX_ASK_SAMPLING, "sampling/createMessage",
               json_pack("{s:[{s:s, s:{s:s, s:s}}], s:i}", "messages", "role", "user", "content",
                         "type", "text", "text", prompt, "maxTokens", 100));
}

/* Sends elicitation/create with a schema given as JSON text. */
static void elicit(json_t *id, enum fx_ask_kind kind, const char *message, const char *schema)
{
    json_t *s;

    if (!client_has("elicitation")) {
        reply_text(id, "the client did not declare the elicitation capability", 1);
        return;
    }
    s = json_loads(schema, 0, NULL);
    if (s == NULL) {
        reply_text(id, "internal error: bad schema", 1);
        return;
    }
    ask_client(id, kind, "elicitation/create",
               json_pack("{s:s, s:o}", "message", message, "requestedSchema", s));
}

static void t_elicitation(json_t *id, json_t *args, json_t *params)
{
    const char *message = json_string_value(json_object_get(args, "message"));

    if (message == NULL) {
        reply_text(id, "argument 'message' (string) is required", 1);
        return;
    }
    elicit(id, FX_ASK_ELICIT, message,
           "{\"type\":\"object\",\"properties\":{"
           "\"username\":{\"type\":\"string\",\"description\":\"Your user name\"},"
           "\"email\":{\"type\":\"string\",\"description\":\"Your email address\"}},"
           "\"required\":[\"username\",\"email\"]}");
}

/* SEP-1034: a default for every primitive type. */
static void t_elicitation_defaults(json_t *id, json_t *args, json_t *params)
{
    elicit(id, FX_ASK_ELICIT_FORM, "Please check the prefilled fields",
           "{\"type\":\"object\",\"properties\":{"
           "\"name\":{\"type\":\"string\",\"description\":\"Name\",\"default\":\"John Doe\"},"
           "\"age\":{\"type\":\"integer\",\"description\":\"Age\",\"default\":30},"
           "\"score\":{\"type\":\"number\",\"description\":\"Score\",\"default\":95.5},"
           "\"status\":{\"type\":\"string\",\"description\":\"Status\","
           "\"enum\":[\"active\",\"inactive\",\"pending\"],\"default\":\"active\"},"
           "\"verified\":{\"type\":\"boolean\",\"description\":\"Verified\",\"default\":true}},"
           "\"required\":[]}");
}

/* SEP-1330: the five enum shapes. */
static void t_elicitation_enums(json_t *id, json_t *args, json_t *params)
{
    elicit(id, FX_ASK_ELICIT_FORM, "Please pick from the enum fields",
           "{\"type\":\"object\",\"properties\":{"
           "\"untitledSingle\":{\"type\":\"string\",\"description\":\"Pick one\","
           "\"enum\":[\"option1\",\"option2\",\"option3\"]},"
           "\"titledSingle\":{\"type\":\"string\",\"description\":\"Pick one (titled)\","
           "\"oneOf\":[{\"const\":\"value1\",\"title\":\"Value one\"},"
           "{\"const\":\"value2\",\"title\":\"Value two\"},"
           "{\"const\":\"value3\",\"title\":\"Value three\"}]},"
           "\"legacyEnum\":{\"type\":\"string\",\"description\":\"Pick one (legacy titles)\","
           "\"enum\":[\"opt1\",\"opt2\",\"opt3\"],"
           "\"enumNames\":[\"Opt one\",\"Opt two\",\"Opt three\"]},"
           "\"untitledMulti\":{\"type\":\"array\",\"description\":\"Pick some\","
           "\"minItems\":1,\"maxItems\":3,"
           "\"items\":{\"type\":\"string\",\"enum\":[\"option1\",\"option2\",\"option3\"]}},"
           "\"titledMulti\":{\"type\":\"array\",\"description\":\"Pick some (titled)\","
           "\"minItems\":1,\"maxItems\":3,"
           "\"items\":{\"anyOf\":[{\"const\":\"value1\",\"title\":\"Choice one\"},"
           "{\"const\":\"value2\",\"title\":\"Choice two\"},"
           "{\"const\":\"value3\",\"title\":\"Choice three\"}]}}},"
           "\"required\":[]}");
}

static void t_json_schema(json_t *id, json_t *args, json_t *params)
{
    char *a = json_dumps(args, JSON_COMPACT);

    reply_text_owned(id, fx_printf("json_schema_2020_12_tool called with: %s", a ? a : "{}"), 0);
    free(a);
}

/* Answers after a short delay, like a slow tool, so that an HTTP layer in
 * front may close the response stream mid-call (SEP-1699 polling). */
static void t_reconnection(json_t *id, json_t *args, json_t *params)
{
    if (job_add(FX_JOB_RECONNECT, id, now_ms() + 2 * FX_STEP_MS) == NULL)
        reply_text(id, "out of memory", 1);
}

static void t_echo(json_t *id, json_t *args, json_t *params)
{
    json_t *text = json_object_get(args, "text");
    json_t *meta = json_object_get(params, "_meta");
    json_t *result;

    if (!json_is_string(text)) {
        reply_text(id, "argument 'text' (string) is required", 1);
        return;
    }
    result = json_pack("{s:[{s:s, s:O}]}", "content", "type", "text", "text", text);
    if (result != NULL && meta != NULL)
        json_object_set_new(result, "structuredContent", json_pack("{s:O}", "meta", meta));
    send_result(id, result);
}

static void t_sleep(json_t *id, json_t *args, json_t *params)
{
    json_t *ms = json_object_get(args, "ms"), *token;
    double v = json_number_value(ms);
    struct fx_job *job;

    if (!json_is_number(ms) || v < 0 || v > FX_SLEEP_MAX) {
        reply_text(id, "argument 'ms' must be a number from 0 to 3600000", 1);
        return;
    }
    job = job_add(FX_JOB_SLEEP, id, now_ms() + (int64_t)v);
    if (job == NULL) {
        reply_text(id, "out of memory", 1);
        return;
    }
    job->ms = (long)v;
    /* with a progress token, one notification first: the answer then comes
     * ms later on an SSE stream (used by the stream resumption tests) */
    token = json_object_get(json_object_get(params, "_meta"), "progressToken");
    if (token != NULL && !json_is_null(token))
        send_notification("notifications/progress",
                          json_pack("{s:O, s:i, s:f, s:s}", "progressToken", token, "progress", 0,
                                    "total", v, "message", "sleeping"));
}

static void t_hang(json_t *id, json_t *args, json_t *params)
{
    fprintf(stderr, "mcpd-fixture: hang: this call is never answered\n");
}

static void t_crash(json_t *id, json_t *args, json_t *params)
{
    fprintf(stderr, "mcpd-fixture: crash: exiting with status 3\n");
    exit(3);
}

static void t_big(json_t *id, json_t *args, json_t *params)
{
    json_t *bytes = json_object_get(args, "bytes");
    json_int_t n = json_integer_value(bytes);
    char *buf;
    json_t *text;

    if (!json_is_integer(bytes) || n < 0 || n > (json_int_t)FX_BIG_MAX) {
        reply_text(id, "argument 'bytes' must be an integer from 0 to 268435456", 1);
        return;
    }
    buf = malloc((size_t)n + 1);
    if (buf == NULL) {
        reply_text(id, "out of memory", 1);
        return;
    }
    memset(buf, 'x', (size_t)n);
    buf[n] = '\0';
    text = json_pack("{s:s, s:o}", "type", "text", "text", json_stringn_nocheck(buf, (size_t)n));
    free(buf);
    reply_content(id, json_pack("[o]", text), 0);
}

static void t_toggle_extra(json_t *id, json_t *args, json_t *params)
{
    fx.extra_tool = !fx.extra_tool;
    send_notification("notifications/tools/list_changed", NULL);
    reply_text(id, fx.extra_tool ? "extra_tool added" : "extra_tool removed", 0);
}

/*
 * test_missing_capability (2026-07-28 suite): needs sampling, which a client
 * that did not declare it cannot give: -32021 with the capability, and no
 * request is sent.
 */
static void t_missing_capability(json_t *id, json_t *args, json_t *params)
{
    if (!client_has("sampling")) {
        send_error(id, -32021, "Missing required client capability: sampling",
                   json_pack("{s:{s:{}}}", "requiredCapabilities", "sampling"));
        return;
    }
    reply_text(id, "the client declared sampling", 0);
}

/* Answers with its arguments, as JSON text. */
static void t_echo_args(json_t *id, json_t *args, json_t *params)
{
    char *a = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);

    reply_text_owned(id, fx_printf("arguments: %s", a ? a : "{}"), 0);
    free(a);
}

/* Sends resources/updated for test://watched-resource if a client subscribed to it. */
static void t_touch_watched(json_t *id, json_t *args, json_t *params)
{
    if (fx.watched)
        send_notification("notifications/resources/updated",
                          json_pack("{s:s}", "uri", "test://watched-resource"));
    reply_text(id, fx.watched ? "updated" : "not subscribed", 0);
}

/* test_trigger_prompt_change (2026-07-28 suite): the prompt list changes. */
static void t_toggle_prompt(json_t *id, json_t *args, json_t *params)
{
    fx.extra_prompt = !fx.extra_prompt;
    send_notification("notifications/prompts/list_changed", NULL);
    reply_text(id, fx.extra_prompt ? "extra_prompt added" : "extra_prompt removed", 0);
}

static void t_stderr_noise(json_t *id, json_t *args, json_t *params)
{
    int i;

    for (i = 1; i <= 3; i++)
        fprintf(stderr, "mcpd-fixture: stderr noise line %d of 3\n", i);
    fprintf(stderr, "{\"jsonrpc\":\"2.0\",\"method\":\"not/a/message\"} (stderr is not stdout)\n");
    reply_text(id, "wrote 4 lines to stderr", 0);
}

static void t_extra(json_t *id, json_t *args, json_t *params)
{
    reply_text(id, "extra_tool called", 0);
}

static const struct fx_tool fx_tools[] = {
    { "test_simple_text", "Returns one text block", FX_NO_ARGS, t_simple_text },
    { "test_image_content", "Returns a base64 PNG image", FX_NO_ARGS, t_image },
    { "test_audio_content", "Returns a base64 WAV audio clip", FX_NO_ARGS, t_audio },
    { "test_embedded_resource", "Returns an embedded text resource", FX_NO_ARGS, t_embedded },
    { "test_multiple_content_types", "Returns text, image and resource blocks", FX_NO_ARGS,
      t_multiple },
    { "test_tool_with_logging", "Sends three info log notifications, then answers", FX_NO_ARGS,
      t_logging },
    { "test_tool_with_progress", "Sends three progress notifications if given a progressToken",
      FX_NO_ARGS, t_progress },
    { "test_error_handling", "Always returns a tool error (isError)", FX_NO_ARGS, t_error },
    { "test_sampling", "Asks the client for an LLM completion (sampling/createMessage)",
      "{\"type\":\"object\",\"properties\":{\"prompt\":{\"type\":\"string\","
      "\"description\":\"Prompt for the LLM\"}},\"required\":[\"prompt\"]}",
      t_sampling },
    { "test_elicitation", "Asks the client for user input (elicitation/create)",
      "{\"type\":\"object\",\"properties\":{\"message\":{\"type\":\"string\","
      "\"description\":\"Message shown to the user\"}},\"required\":[\"message\"]}",
      t_elicitation },
    { "test_elicitation_sep1034_defaults", "Elicitation whose schema has defaults (SEP-1034)",
      FX_NO_ARGS, t_elicitation_defaults },
    { "test_elicitation_sep1330_enums", "Elicitation with the enum schema variants (SEP-1330)",
      FX_NO_ARGS, t_elicitation_enums },
    { "json_schema_2020_12_tool", "Tool whose input schema uses JSON Schema 2020-12 keywords",
      /* with SEP-2106's vocabulary: $anchor, allOf/anyOf, if/then/else */
      "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"object\","
      "\"$defs\":{\"address\":{\"$anchor\":\"addressDef\",\"type\":\"object\","
      "\"properties\":{\"street\":{\"type\":\"string\"},\"city\":{\"type\":\"string\"}}}},"
      "\"properties\":{\"name\":{\"type\":\"string\"},"
      "\"address\":{\"$ref\":\"#/$defs/address\"},"
      "\"contactMethod\":{\"type\":\"string\",\"enum\":[\"phone\",\"email\"]},"
      "\"phone\":{\"type\":\"string\"},\"email\":{\"type\":\"string\"}},"
      "\"allOf\":[{\"anyOf\":[{\"required\":[\"phone\"]},{\"required\":[\"email\"]}]}],"
      "\"if\":{\"properties\":{\"contactMethod\":{\"const\":\"phone\"}},"
      "\"required\":[\"contactMethod\"]},\"then\":{\"required\":[\"phone\"]},"
      "\"else\":{\"required\":[\"email\"]},\"additionalProperties\":false}",
      t_json_schema },
    { "test_reconnection", "Returns a text result after 100 ms (the HTTP layer tests reconnection)",
      FX_NO_ARGS, t_reconnection },
    { "echo", "Echoes text; echoes params._meta under structuredContent.meta",
      "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},"
      "\"required\":[\"text\"]}",
      t_echo },
    { "sleep", "Answers after ms milliseconds without blocking other requests",
      "{\"type\":\"object\",\"properties\":{\"ms\":{\"type\":\"integer\",\"minimum\":0}},"
      "\"required\":[\"ms\"]}",
      t_sleep },
    { "hang", "Never answers", FX_NO_ARGS, t_hang },
    { "crash", "Exits with status 3 without answering", FX_NO_ARGS, t_crash },
    { "big", "Returns a text block of the given number of 'x' bytes",
      "{\"type\":\"object\",\"properties\":{\"bytes\":{\"type\":\"integer\",\"minimum\":0}},"
      "\"required\":[\"bytes\"]}",
      t_big },
    { "toggle_extra", "Adds or removes extra_tool and sends tools/list_changed", FX_NO_ARGS,
      t_toggle_extra },
    /* the names the 2026-07-28 suite (server-stateless) looks for */
    { "test_trigger_tool_change", "Adds or removes extra_tool and sends tools/list_changed",
      FX_NO_ARGS, t_toggle_extra },
    { "test_trigger_prompt_change", "Adds or removes extra_prompt and sends prompts/list_changed",
      FX_NO_ARGS, t_toggle_prompt },
    { "test_logging_tool", "Sends three info log notifications, then answers", FX_NO_ARGS,
      t_logging },
    { "touch_watched", "Sends resources/updated for test://watched-resource when subscribed",
      FX_NO_ARGS, t_touch_watched },
    { "test_missing_capability", "Needs sampling: -32021 when the client did not declare it",
      FX_NO_ARGS, t_missing_capability },
    /* SEP-2243: arguments a client mirrors in Mcp-Param-* headers */
    { "test_header_param", "Echoes region and count; both are mirrored in Mcp-Param headers",
      "{\"type\":\"object\",\"properties\":{"
      "\"region\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"},"
      "\"count\":{\"type\":\"integer\",\"x-mcp-header\":\"Count\"},"
      "\"note\":{\"type\":\"string\"}},\"required\":[\"region\"]}",
      t_echo_args },
    { "stderr_noise", "Writes a few lines to stderr, then answers", FX_NO_ARGS, t_stderr_noise },
};

static const struct fx_tool fx_extra_tool = { "extra_tool", "Exists while toggle_extra is on",
                                              FX_NO_ARGS, t_extra };

static json_t *tool_json(const struct fx_tool *t)
{
    json_t *schema = json_loads(t->input_schema, 0, NULL);
    char *name = fx_printf("%s%s", fx.prefix, t->name);
    json_t *o = NULL;

    if (schema != NULL && name != NULL)
        o = json_pack("{s:s, s:s, s:O}", "name", name, "description", t->description, "inputSchema",
                      schema);
    json_decref(schema);
    free(name);
    return o;
}

/* A cursor from us never exists, so any cursor is invalid (-32602). */
static int reject_cursor(json_t *id, json_t *params)
{
    if (json_object_get(params, "cursor") == NULL)
        return 0;
    send_error(id, -32602, "Invalid cursor", NULL);
    return 1;
}

static void m_tools_list(json_t *id, json_t *params)
{
    json_t *tools = json_array();
    size_t i;

    if (reject_cursor(id, params)) {
        json_decref(tools);
        return;
    }
    for (i = 0; i < sizeof(fx_tools) / sizeof(fx_tools[0]); i++)
        json_array_append_new(tools, tool_json(&fx_tools[i]));
    if (fx.extra_tool)
        json_array_append_new(tools, tool_json(&fx_extra_tool));
    send_result(id, json_pack("{s:o}", "tools", tools));
}

static void m_tools_call(json_t *id, json_t *params)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    json_t *args = json_object_get(params, "arguments");
    json_t *empty = NULL;
    const struct fx_tool *tool = NULL;
    size_t i;

    if (name == NULL) {
        send_error(id, -32602, "Invalid params: 'name' (string) is required", NULL);
        return;
    }
    if (args != NULL && !json_is_object(args)) {
        send_error(id, -32602, "Invalid params: 'arguments' must be an object", NULL);
        return;
    }
    if (strncmp(name, fx.prefix, fx.prefix_len) == 0) {
        const char *base = name + fx.prefix_len;

        for (i = 0; i < sizeof(fx_tools) / sizeof(fx_tools[0]); i++) {
            if (strcmp(fx_tools[i].name, base) == 0)
                tool = &fx_tools[i];
        }
        if (tool == NULL && fx.extra_tool && strcmp(fx_extra_tool.name, base) == 0)
            tool = &fx_extra_tool;
    }
    if (tool == NULL) {
        send_error(id, -32602, "Unknown tool", json_pack("{s:s}", "name", name));
        return;
    }
    if (args == NULL)
        args = empty = json_object();
    tool->call(id, args, params);
    json_decref(empty);
}

/* ---- resources -------------------------------------------------------- */

#define FX_TEMPLATE_PREFIX "test://template/"
#define FX_TEMPLATE_SUFFIX "/data"

static void m_resources_list(json_t *id, json_t *params)
{
    if (reject_cursor(id, params))
        return;
    send_result(id, json_pack("{s:[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s},"
                              " {s:s, s:s, s:s, s:s}]}",
                              "resources", "uri", "test://static-text", "name", "static-text",
                              "description", "A fixed text resource", "mimeType", "text/plain",
                              "uri", "test://static-binary", "name", "static-binary", "description",
                              "A fixed binary resource (PNG)", "mimeType", "image/png", "uri",
                              "test://watched-resource", "name", "watched-resource", "description",
                              "A resource clients may subscribe to", "mimeType", "text/plain"));
}

static void m_templates_list(json_t *id, json_t *params)
{
    if (reject_cursor(id, params))
        return;
    send_result(id, json_pack("{s:[{s:s, s:s, s:s, s:s}]}", "resourceTemplates", "uriTemplate",
                              "test://template/{id}/data", "name", "template", "description",
                              "JSON data for the given id", "mimeType", "application/json"));
}

/* Returns the {id} of a template URI as a new string, or NULL. */
static char *template_id(const char *uri)
{
    size_t plen = strlen(FX_TEMPLATE_PREFIX);
    size_t slen = strlen(FX_TEMPLATE_SUFFIX);
    size_t len = strlen(uri);
    size_t idlen;
    char *out;

    if (len <= plen + slen || strncmp(uri, FX_TEMPLATE_PREFIX, plen) != 0 ||
        strcmp(uri + len - slen, FX_TEMPLATE_SUFFIX) != 0)
        return NULL;
    idlen = len - plen - slen;
    if (memchr(uri + plen, '/', idlen) != NULL)
        return NULL;
    out = malloc(idlen + 1);
    if (out != NULL) {
        memcpy(out, uri + plen, idlen);
        out[idlen] = '\0';
    }
    return out;
}

static void m_resources_read(json_t *id, json_t *params)
{
    const char *uri = json_string_value(json_object_get(params, "uri"));
    json_t *c = NULL;
    char *tid;

    if (uri == NULL) {
        send_error(id, -32602, "Invalid params: 'uri' (string) is required", NULL);
        return;
    }
    if (strcmp(uri, "test://static-text") == 0) {
        c = json_pack("{s:s, s:s, s:s}", "uri", uri, "mimeType", "text/plain", "text",
                      "This is the content of the static text resource.");
    } else if (strcmp(uri, "test://static-binary") == 0) {
        c = json_pack("{s:s, s:s, s:s}", "uri", uri, "mimeType", "image/png", "blob", fx_png_b64);
    } else if (strcmp(uri, "test://watched-resource") == 0) {
        c = json_pack("{s:s, s:s, s:s}", "uri", uri, "mimeType", "text/plain", "text",
                      "Watched resource content");
    } else if ((tid = template_id(uri)) != NULL) {
        char *desc = fx_printf("Data for ID: %s", tid);
        json_t *data =
            json_pack("{s:s, s:b, s:s}", "id", tid, "templateTest", 1, "data", desc ? desc : "");
        char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;

        c = json_pack("{s:s, s:s, s:s}", "uri", uri, "mimeType", "application/json", "text",
                      text ? text : "{}");
        json_decref(data);
        free(desc);
        free(text);
        free(tid);
    }
    if (c == NULL) {
        send_error(id, -32002, "Resource not found", json_pack("{s:s}", "uri", uri));
        return;
    }
    send_result(id, json_pack("{s:[o]}", "contents", c));
}

static void subscription(json_t *id, json_t *params, int on)
{
    const char *uri = json_string_value(json_object_get(params, "uri"));

    if (uri == NULL) {
        send_error(id, -32602, "Invalid params: 'uri' (string) is required", NULL);
        return;
    }
    if (strcmp(uri, "test://watched-resource") == 0)
        fx.watched = on;
    send_result(id, NULL);
}

static void m_subscribe(json_t *id, json_t *params)
{
    subscription(id, params, 1);
}

static void m_unsubscribe(json_t *id, json_t *params)
{
    subscription(id, params, 0);
}

/* ---- prompts and completion ------------------------------------------- */

/* Returns the string argument or NULL after sending -32602. */
static const char *prompt_arg(json_t *id, json_t *params, const char *name)
{
    const char *v = json_string_value(json_object_get(json_object_get(params, "arguments"), name));

    if (v == NULL) {
        char *msg = fx_printf("Invalid params: missing required argument '%s'", name);

        send_error(id, -32602, msg ? msg : "Invalid params", NULL);
        free(msg);
    }
    return v;
}

static void m_prompts_list(json_t *id, json_t *params)
{
    json_t *res;

    if (reject_cursor(id, params))
        return;
    res =
        json_pack("{s:[{s:s, s:s}, {s:s, s:s, s:[{s:s, s:s, s:b}, {s:s, s:s, s:b}]},"
                  " {s:s, s:s, s:[{s:s, s:s, s:b}]}, {s:s, s:s}]}",
                  "prompts", "name", "test_simple_prompt", "description",
                  "A prompt without arguments", "name", "test_prompt_with_arguments", "description",
                  "A prompt that substitutes two arguments", "arguments", "name", "arg1",
                  "description", "First argument", "required", 1, "name", "arg2", "description",
                  "Second argument", "required", 1, "name", "test_prompt_with_embedded_resource",
                  "description", "A prompt that embeds a resource", "arguments", "name",
                  "resourceUri", "description", "URI of the resource to embed", "required", 1,
                  "name", "test_prompt_with_image", "description", "A prompt with an image");
    if (res != NULL && fx.extra_prompt)
        json_array_append_new(json_object_get(res, "prompts"),
                              json_pack("{s:s, s:s}", "name", "extra_prompt", "description",
                                        "Exists while test_trigger_prompt_change is on"));
    send_result(id, res);
}

static void m_prompts_get(json_t *id, json_t *params)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    json_t *args = json_object_get(params, "arguments");
    json_t *messages = NULL;

    if (name == NULL) {
        send_error(id, -32602, "Invalid params: 'name' (string) is required", NULL);
        return;
    }
    if (args != NULL && !json_is_object(args)) {
        send_error(id, -32602, "Invalid params: 'arguments' must be an object", NULL);
        return;
    }
    if (strcmp(name, "test_simple_prompt") == 0) {
        messages = json_pack("[{s:s, s:o}]", "role", "user", "content",
                             text_block("This is a simple prompt for testing."));
    } else if (strcmp(name, "test_prompt_with_arguments") == 0) {
        const char *a1 = prompt_arg(id, params, "arg1");
        const char *a2 = a1 ? prompt_arg(id, params, "arg2") : NULL;
        char *text;

        if (a2 == NULL)
            return;
        text = fx_printf("Prompt with arguments: arg1='%s', arg2='%s'", a1, a2);
        messages = json_pack("[{s:s, s:o}]", "role", "user", "content", text_block(text));
        free(text);
    } else if (strcmp(name, "test_prompt_with_embedded_resource") == 0) {
        const char *uri = prompt_arg(id, params, "resourceUri");

        if (uri == NULL)
            return;
        messages =
            json_pack("[{s:s, s:{s:s, s:{s:s, s:s, s:s}}}, {s:s, s:o}]", "role", "user", "content",
                      "type", "resource", "resource", "uri", uri, "mimeType", "text/plain", "text",
                      "Embedded resource content for testing.", "role", "user", "content",
                      text_block("Please process the embedded resource above."));
    } else if (strcmp(name, "test_prompt_with_image") == 0) {
        messages =
            json_pack("[{s:s, s:o}, {s:s, s:o}]", "role", "user", "content", image_block(), "role",
                      "user", "content", text_block("Please analyze the image above."));
    } else {
        send_error(id, -32602, "Unknown prompt", json_pack("{s:s}", "name", name));
        return;
    }
    send_result(id, json_pack("{s:o}", "messages", messages));
}

static void m_complete(json_t *id, json_t *params)
{
    static const char *const arg1[] = { "test", "testValue1", "testing", "paris", "park", "party" };
    static const char *const arg2[] = { "testValue2", "world", "wonder" };
    static const char *const ids[] = { "1", "2", "3", "123" };
    json_t *ref = json_object_get(params, "ref");
    const char *type = json_string_value(json_object_get(ref, "type"));
    const char *rname = json_string_value(json_object_get(ref, "name"));
    const char *ruri = json_string_value(json_object_get(ref, "uri"));
    json_t *arg = json_object_get(params, "argument");
    const char *aname = json_string_value(json_object_get(arg, "name"));
    const char *value = json_string_value(json_object_get(arg, "value"));
    const char *const *cand = NULL;
    size_t n = 0, i;
    json_t *values;

    if (type == NULL || aname == NULL || value == NULL) {
        send_error(id, -32602, "Invalid params: 'ref' and 'argument' are required", NULL);
        return;
    }
    if (strcmp(type, "ref/prompt") == 0 && rname != NULL &&
        strcmp(rname, "test_prompt_with_arguments") == 0) {
        if (strcmp(aname, "arg1") == 0) {
            cand = arg1;
            n = sizeof(arg1) / sizeof(arg1[0]);
        } else if (strcmp(aname, "arg2") == 0) {
            cand = arg2;
            n = sizeof(arg2) / sizeof(arg2[0]);
        }
    } else if (strcmp(type, "ref/resource") == 0 && ruri != NULL &&
               strcmp(ruri, "test://template/{id}/data") == 0) {
        if (strcmp(aname, "id") == 0) {
            cand = ids;
            n = sizeof(ids) / sizeof(ids[0]);
        }
    } else if (strcmp(type, "ref/prompt") == 0 || strcmp(type, "ref/resource") == 0) {
        /* Known prompts and resources without completions answer empty lists. */
    } else {
        send_error(id, -32602, "Invalid params: unknown ref type", NULL);
        return;
    }
    values = json_array();
    for (i = 0; i < n; i++) {
        if (strncmp(cand[i], value, strlen(value)) == 0)
            json_array_append_new(values, json_string(cand[i]));
    }
    send_result(id, json_pack("{s:{s:o, s:I, s:b}}", "completion", "values", values, "total",
                              (json_int_t)json_array_size(values), "hasMore", 0));
}

/* ---- lifecycle and dispatch ------------------------------------------- */

static void m_initialize(json_t *id, json_t *params)
{
    const char *want = json_string_value(json_object_get(params, "protocolVersion"));
    const char *version = FX_LATEST_VERSION;
    json_t *caps = json_object_get(params, "capabilities");
    size_t i;

    for (i = 0; want != NULL && i < sizeof(fx_versions) / sizeof(fx_versions[0]); i++) {
        if (strcmp(want, fx_versions[i]) == 0)
            version = fx_versions[i];
    }
    json_decref(fx.client_caps);
    fx.client_caps = json_is_object(caps) ? json_deep_copy(caps) : json_object();
    fx.initialized = 1;
    send_result(id, json_pack("{s:s, s:{s:{s:b}, s:{s:b, s:b}, s:{s:b}, s:{}, s:{}},"
                              " s:{s:s, s:s}, s:s}",
                              "protocolVersion", version, "capabilities", "tools", "listChanged", 1,
                              "resources", "subscribe", 1, "listChanged", 1, "prompts",
                              "listChanged", 1, "logging", "completions", "serverInfo", "name",
                              fx.name, "version", MCPD_VERSION, "instructions",
                              "Test fixture for mcpd; see tests/conformance/fixture_server.c"));
}

static void m_ping(json_t *id, json_t *params)
{
    send_result(id, NULL);
}

static void m_set_level(json_t *id, json_t *params)
{
    const char *level = json_string_value(json_object_get(params, "level"));
    size_t i;

    for (i = 0; level != NULL && i < sizeof(fx_levels) / sizeof(fx_levels[0]); i++) {
        if (strcmp(level, fx_levels[i]) == 0) {
            fx.log_level = (int)i;
            send_result(id, NULL);
            return;
        }
    }
    send_error(id, -32602, "Invalid params: unknown log level", NULL);
}

struct fx_method {
    const char *name;
    void (*fn)(json_t *id, json_t *params);
};

static const struct fx_method fx_methods[] = {
    { "initialize", m_initialize },
    { "ping", m_ping },
    { "tools/list", m_tools_list },
    { "tools/call", m_tools_call },
    { "resources/list", m_resources_list },
    { "resources/templates/list", m_templates_list },
    { "resources/read", m_resources_read },
    { "resources/subscribe", m_subscribe },
    { "resources/unsubscribe", m_unsubscribe },
    { "prompts/list", m_prompts_list },
    { "prompts/get", m_prompts_get },
    { "completion/complete", m_complete },
    { "logging/setLevel", m_set_level },
};

static void handle_message(json_t *msg)
{
    json_t *id = json_object_get(msg, "id");
    json_t *method = json_object_get(msg, "method");
    json_t *params = json_object_get(msg, "params");
    const char *jsonrpc = json_string_value(json_object_get(msg, "jsonrpc"));
    int id_ok = json_is_string(id) || json_is_integer(id);
    size_t i;

    if (jsonrpc == NULL || strcmp(jsonrpc, "2.0") != 0) {
        send_error(id_ok ? id : NULL, -32600, "Invalid Request: jsonrpc must be \"2.0\"", NULL);
        return;
    }
    if (method == NULL) {
        if (id_ok && (json_object_get(msg, "result") || json_object_get(msg, "error")))
            handle_response(msg);
        else if (!(json_is_null(id) && json_object_get(msg, "error")))
            send_error(id_ok ? id : NULL, -32600, "Invalid Request", NULL);
        return;
    }
    if (!json_is_string(method) || (id != NULL && !id_ok)) {
        send_error(id_ok ? id : NULL, -32600, "Invalid Request", NULL);
        return;
    }
    if (id == NULL)
        return; /* notifications: initialized, cancelled, roots/list_changed, ... */
    if (params != NULL && !json_is_object(params)) {
        send_error(id, -32602, "Invalid params: params must be an object", NULL);
        return;
    }
    for (i = 0; i < sizeof(fx_methods) / sizeof(fx_methods[0]); i++) {
        if (strcmp(fx_methods[i].name, json_string_value(method)) == 0) {
            fx_methods[i].fn(id, params);
            return;
        }
    }
    send_error(id, -32601, "Method not found",
               json_pack("{s:s}", "method", json_string_value(method)));
}

static void handle_line(char *line, size_t len)
{
    json_error_t err;
    json_t *msg;
    size_t i;

    if (len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
    for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
        ;
    if (i == len)
        return;
    if (fx.log != NULL) {
        fwrite(line, 1, len, fx.log);
        fputc('\n', fx.log);
        fflush(fx.log);
    }
    msg = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (msg == NULL) {
        send_error(NULL, -32700, "Parse error", json_string(err.text));
        return;
    }
    if (json_is_object(msg))
        handle_message(msg);
    else if (json_is_array(msg))
        send_error(NULL, -32600, "Invalid Request: batches are not supported", NULL);
    else
        send_error(NULL, -32600, "Invalid Request: not an object", NULL);
    json_decref(msg);
}

/* Splits input into lines; a line longer than FX_LINE_MAX is answered with
 * -32600 and skipped up to its newline. */
static void feed(const char *p, size_t n)
{
    struct fx_linebuf *lb = &fx.in;

    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;

        if (lb->discarding) {
            lb->discarding = nl == NULL;
        } else if (lb->len + take > FX_LINE_MAX) {
            send_error(NULL, -32600, "Invalid Request: message larger than 16 MiB", NULL);
            lb->len = 0;
            lb->discarding = nl == NULL;
        } else {
            if (lb->len + take + 1 > lb->cap) {
                size_t cap = lb->cap ? lb->cap : 4096;
                char *d;

                while (cap < lb->len + take + 1)
                    cap *= 2;
                d = realloc(lb->data, cap);
                if (d == NULL) {
                    fprintf(stderr, "mcpd-fixture: out of memory\n");
                    exit(1);
                }
                lb->data = d;
                lb->cap = cap;
            }
            memcpy(lb->data + lb->len, p, take);
            lb->len += take;
            lb->data[lb->len] = '\0';
            if (nl != NULL) {
                size_t len = lb->len;

                lb->len = 0;
                handle_line(lb->data, len);
            }
        }
        if (nl == NULL)
            break;
        p = nl + 1;
        n -= take + 1;
    }
}

static void cleanup(void)
{
    while (fx.jobs != NULL) {
        struct fx_job *job = fx.jobs;

        fx.jobs = job->next;
        job_free(job);
    }
    while (fx.pending != NULL) {
        struct fx_pending *p = fx.pending;

        fx.pending = p->next;
        json_decref(p->call_id);
        free(p);
    }
    json_decref(fx.client_caps);
    fx.client_caps = NULL;
    free(fx.in.data);
    fx.in.data = NULL;
    if (fx.log != NULL)
        fclose(fx.log);
    fx.log = NULL;
}

int main(void)
{
    static char chunk[FX_READ_CHUNK];
    const char *log_path = getenv("FIXTURE_LOG");
    const char *name = getenv("FIXTURE_NAME");
    const char *prefix = getenv("FIXTURE_TOOL_PREFIX");

    signal(SIGPIPE, SIG_IGN);
    fx.name = name && *name ? name : "mcpd-fixture";
    fx.prefix = prefix ? prefix : "";
    fx.prefix_len = strlen(fx.prefix);
    if (log_path != NULL && *log_path) {
        fx.log = fopen(log_path, "a");
        if (fx.log == NULL)
            fprintf(stderr, "mcpd-fixture: cannot open FIXTURE_LOG %s: %s\n", log_path,
                    strerror(errno));
    }
    atexit(cleanup);

    for (;;) {
        struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
        int rc = poll(&pfd, 1, jobs_timeout());

        if (rc < 0 && errno != EINTR) {
            fprintf(stderr, "mcpd-fixture: poll: %s\n", strerror(errno));
            return 1;
        }
        jobs_run_due();
        if (rc > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = read(STDIN_FILENO, chunk, sizeof(chunk));

            if (r < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (r < 0) {
                fprintf(stderr, "mcpd-fixture: read: %s\n", strerror(errno));
                return 1;
            }
            if (r == 0) {
                /* EOF: a last line without a newline still counts. */
                if (fx.in.len > 0 && !fx.in.discarding)
                    handle_line(fx.in.data, fx.in.len);
                return 0;
            }
            feed(chunk, (size_t)r);
        }
    }
}
