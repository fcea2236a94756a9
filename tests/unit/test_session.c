/*
 * test_session.c - session negotiation and dispatch through the real core
 * (mcpd/session.c, mcpd/batch.c, mcpd/daemon.c) on a real uv loop.
 *
 * Each test builds a daemon from a YAML configuration without servers,
 * starts it, opens sessions and feeds them raw JSON-RPC text with
 * mcpd_session_feed(); a recording sink keeps every message the core sends,
 * byte for byte. Teardown shuts the daemon down, runs the loop until every
 * handle is closed and asserts uv_loop_close() == 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs these four first. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <uv.h>

#include "mcpd/config.h"
#include "mcpd/daemon.h"
#include "mcpd/error.h"
#include "mcpd/jsonrpc.h"
#include "mcpd/limits.h"
#include "mcpd/log.h"
#include "mcpd/router.h"
#include "mcpd/session.h"
#include "mcpd/sink.h"

#define INIT_FMT                                                                               \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":" \
    "\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}"

/* ---- a sink that records --------------------------------------------------------------------- */

struct rec_sink {
    struct mcpd_sink sink;
    json_t *raw; /* array of strings: each message exactly as sent */
    unsigned nfinal;
    unsigned ncancelled;
};

static int rec_send(struct mcpd_sink *sk, const char *data, size_t len, bool final)
{
    struct rec_sink *r = (struct rec_sink *)sk;
    json_array_append_new(r->raw, json_stringn(data, len));
    if (final)
        r->nfinal++;
    return 0;
}

static void rec_cancelled(struct mcpd_sink *sk)
{
    ((struct rec_sink *)sk)->ncancelled++;
}

static const struct mcpd_sink_ops rec_ops = { .send = rec_send, .cancelled = rec_cancelled };

static void rec_init(struct rec_sink *r)
{
    memset(r, 0, sizeof(*r));
    r->sink.ops = &rec_ops;
    r->raw = json_array();
}

static size_t rec_count(const struct rec_sink *r)
{
    return json_array_size(r->raw);
}

static const char *rec_text(const struct rec_sink *r, size_t i)
{
    return json_string_value(json_array_get(r->raw, i));
}

/* ---- fixture --------------------------------------------------------------------------------- */

#define MAX_OPEN 8

struct fixture {
    uv_loop_t loop;
    struct mcpd_daemon *d;
    struct rec_sink out;
    struct mcpd_session *open[MAX_OPEN]; /* refs a failed test left behind */
};

static struct fixture *current;

static int setup_with(void **state, const char *yaml)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct mcpd_config *cfg = NULL;
    struct mcpd_diag diag;

    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    if (mcpd_config_parse(&cfg, "test.yaml", yaml, strlen(yaml), &diag) != 0)
        fail_msg("config: %s", diag.msg);
    assert_int_equal(cfg->nservers, 0);
    assert_int_equal(mcpd_daemon_new(&f->d, &f->loop, cfg), 0);
    assert_int_equal(mcpd_daemon_start(f->d), 0);
    rec_init(&f->out);
    current = f;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, "log_level: error\n");
}

static int setup_small(void **state)
{
    return setup_with(state, "log_level: error\nlimits:\n  max_sessions: 2\n  page_size: 2\n");
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    mcpd_daemon_shutdown(f->d);
    for (int i = 0; i < MAX_OPEN; i++)
        mcpd_session_unref(&f->open[i]);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(f->d->closing);
    assert_null(f->d->sessions);
    assert_int_equal(f->d->nsessions, 0);
    mcpd_daemon_free(f->d);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    json_decref(f->out.raw);
    free(f);
    return 0;
}

static struct mcpd_session *new_session(struct fixture *f)
{
    struct mcpd_session *s = NULL;
    assert_int_equal(mcpd_session_new(&s, f->d, "test", "127.0.0.1:1"), 0);
    assert_non_null(s);
    for (int i = 0; i < MAX_OPEN; i++) {
        if (f->open[i] == NULL) {
            f->open[i] = s; /* the test's own reference, dropped by teardown if still held */
            break;
        }
    }
    return s;
}

/* Drops the test's reference. */
static void drop_session(struct mcpd_session **s)
{
    for (int i = 0; i < MAX_OPEN; i++)
        if (current->open[i] == *s)
            current->open[i] = NULL;
    mcpd_session_unref(s);
    assert_null(*s);
}

/* What a transport does when its client leaves: close, then drop its reference. */
static void end_session(struct mcpd_session **s)
{
    mcpd_session_close(*s);
    assert_true(mcpd_session_is_closed(*s));
    drop_session(s);
}

/*
 * Feeds `in` and checks the core answered with exactly one final message
 * equal to `want`, that feed returned `want_n` and `*answered` as expected.
 */
static void expect_answer(struct fixture *f, struct mcpd_session *s, const char *in,
                          unsigned want_n, bool want_answered, const char *want)
{
    size_t before = rec_count(&f->out);
    unsigned finals = f->out.nfinal;
    bool answered = !want_answered;
    unsigned n = mcpd_session_feed(s, in, strlen(in), &f->out.sink, &answered);

    assert_int_equal(n, want_n);
    assert_int_equal(answered, want_answered);
    assert_int_equal(rec_count(&f->out), before + 1);
    assert_int_equal(f->out.nfinal, finals + 1);
    assert_string_equal(rec_text(&f->out, before), want);
    assert_int_equal(f->out.sink.npending, 0);
}

/* A request answered by the core itself: n == 1, not "answered" by feed. */
static void expect_reply(struct fixture *f, struct mcpd_session *s, const char *in,
                         const char *want)
{
    expect_answer(f, s, in, 1, false, want);
}

/* Like expect_reply, for an error whose message is only pinned by a prefix. */
static void expect_error(struct fixture *f, struct mcpd_session *s, const char *in,
                         const char *want_id, int want_code, const char *msg_prefix)
{
    size_t before = rec_count(&f->out);
    bool answered = true;
    json_t *msg, *id;
    const char *text;

    assert_int_equal(mcpd_session_feed(s, in, strlen(in), &f->out.sink, &answered), 1);
    assert_false(answered);
    assert_int_equal(rec_count(&f->out), before + 1);
    msg = json_loads(rec_text(&f->out, before), 0, NULL);
    assert_non_null(msg);
    id = json_loads(want_id, JSON_DECODE_ANY, NULL);
    assert_true(json_equal(json_object_get(msg, "id"), id));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(msg, "error"), "code")),
                     want_code);
    text = json_string_value(json_object_get(json_object_get(msg, "error"), "message"));
    assert_non_null(text);
    if (strncmp(text, msg_prefix, strlen(msg_prefix)) != 0)
        fail_msg("message '%s' does not start with '%s'", text, msg_prefix);
    json_decref(id);
    json_decref(msg);
}

static void expect_silence(struct fixture *f, struct mcpd_session *s, const char *in)
{
    size_t before = rec_count(&f->out);
    bool answered = true;
    unsigned n = mcpd_session_feed(s, in, strlen(in), &f->out.sink, &answered);

    assert_int_equal(n, 0);
    assert_false(answered);
    assert_int_equal(rec_count(&f->out), before);
}

static void initialize(struct fixture *f, struct mcpd_session *s, const char *version)
{
    char in[512];
    size_t before = rec_count(&f->out);
    bool answered;

    snprintf(in, sizeof(in), INIT_FMT, version);
    assert_int_equal(mcpd_session_feed(s, in, strlen(in), &f->out.sink, &answered), 1);
    assert_int_equal(rec_count(&f->out), before + 1);
}

/* ---- initialize ------------------------------------------------------------------------------ */

static void check_init_result(const char *text, const char *want_version)
{
    json_t *msg = json_loads(text, 0, NULL), *res;
    char *s;

    assert_non_null(msg);
    assert_int_equal(json_integer_value(json_object_get(msg, "id")), 1);
    assert_string_equal(json_string_value(json_object_get(msg, "jsonrpc")), "2.0");
    res = json_object_get(msg, "result");
    assert_non_null(res);
    assert_string_equal(json_string_value(json_object_get(res, "protocolVersion")), want_version);
    s = json_dumps(json_object_get(res, "serverInfo"), JSON_COMPACT);
    assert_string_equal(s, "{\"name\":\"mcpd\",\"title\":\"mcpd MCP proxy\","
                           "\"version\":\"" MCPD_VERSION "\"}");
    free(s);
    s = json_dumps(json_object_get(json_object_get(res, "capabilities"), "tools"), JSON_COMPACT);
    assert_string_equal(s, "{\"listChanged\":true}");
    free(s);
    s = json_dumps(json_object_get(json_object_get(res, "capabilities"), "logging"), JSON_COMPACT);
    assert_string_equal(s, "{}");
    free(s);
    json_decref(msg);
}

static void test_initialize_versions(void **state)
{
    struct fixture *f = *state;

    for (int i = 0; mcpd_session_versions[i]; i++) {
        struct mcpd_session *s = new_session(f);
        char in[512];
        size_t before = rec_count(&f->out);
        bool answered = true;

        assert_null(mcpd_session_version(s));
        snprintf(in, sizeof(in), INIT_FMT, mcpd_session_versions[i]);
        assert_int_equal(mcpd_session_feed(s, in, strlen(in), &f->out.sink, &answered), 1);
        assert_false(answered);
        assert_int_equal(rec_count(&f->out), before + 1);
        check_init_result(rec_text(&f->out, before), mcpd_session_versions[i]);
        assert_string_equal(mcpd_session_version(s), mcpd_session_versions[i]);
        assert_int_equal(mcpd_session_allows_batch(s),
                         strcmp(mcpd_session_versions[i], "2025-03-26") == 0);
        end_session(&s);
    }
    /* the four session-era versions, newest first */
    assert_string_equal(mcpd_session_versions[0], "2025-11-25");
    assert_string_equal(mcpd_session_versions[1], "2025-06-18");
    assert_string_equal(mcpd_session_versions[2], "2025-03-26");
    assert_string_equal(mcpd_session_versions[3], "2024-11-05");
    assert_true(mcpd_session_version_supported("2024-11-05"));
    assert_false(mcpd_session_version_supported("2024-11-5"));
    assert_false(mcpd_session_version_supported(NULL));
}

static void test_initialize_unknown_version(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);

    initialize(f, s, "1999-01-01");
    check_init_result(rec_text(&f->out, 0), "2025-11-25");
    assert_string_equal(mcpd_session_version(s), "2025-11-25");
    end_session(&s);

    /* a very long version string is not echoed either */
    s = new_session(f);
    initialize(f, s, "2025-11-25-and-a-lot-more-text-than-any-version-has");
    check_init_result(rec_text(&f->out, 1), "2025-11-25");
    end_session(&s);
}

#define BAD_INIT                                                                              \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32602,\"message\":\"Invalid params: " \
    "initialize needs protocolVersion (string) and capabilities (object)\"}}"

static void test_initialize_bad_params(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);

    expect_reply(f, s,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
                 "{\"capabilities\":{}}}",
                 BAD_INIT);
    expect_reply(f, s,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
                 "{\"protocolVersion\":20250618,\"capabilities\":{}}}",
                 BAD_INIT);
    expect_reply(f, s,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
                 "{\"protocolVersion\":\"2025-06-18\",\"capabilities\":[]}}",
                 BAD_INIT);
    expect_reply(f, s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}", BAD_INIT);
    expect_reply(f, s,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
                 "[\"2025-06-18\"]}",
                 BAD_INIT);
    /* none of these initialized the session */
    assert_null(mcpd_session_version(s));
    initialize(f, s, "2025-06-18");
    assert_string_equal(mcpd_session_version(s), "2025-06-18");
    end_session(&s);
}

static void test_initialize_twice(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);
    char in[512];

    initialize(f, s, "2025-06-18");
    snprintf(in, sizeof(in), INIT_FMT, "2025-03-26");
    expect_reply(f, s, in,
                 "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32600,\"message\":\"Invalid "
                 "Request: the session is already initialized\"}}");
    assert_string_equal(mcpd_session_version(s), "2025-06-18");
    end_session(&s);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

#define NOT_INIT(id)                                                             \
    "{\"jsonrpc\":\"2.0\",\"id\":" id ",\"error\":{\"code\":-32600,\"message\":" \
    "\"Invalid Request: the session is not initialized\"}}"

static void test_before_initialize(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);

    expect_reply(f, s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}", NOT_INIT("2"));
    expect_reply(f, s,
                 "{\"jsonrpc\":\"2.0\",\"id\":\"c\",\"method\":\"tools/call\",\"params\":"
                 "{\"name\":\"x\",\"arguments\":{}}}",
                 NOT_INIT("\"c\""));
    expect_reply(f, s,
                 "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"logging/setLevel\",\"params\":"
                 "{\"level\":\"info\"}}",
                 NOT_INIT("4"));
    expect_reply(f, s, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"no/such\"}", NOT_INIT("5"));
    /* ping is allowed at any time (MCP lifecycle) */
    expect_reply(f, s, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping\"}",
                 "{\"jsonrpc\":\"2.0\",\"id\":6,\"result\":{}}");
    expect_silence(f, s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    assert_null(mcpd_session_version(s));
    end_session(&s);
}

static void test_ping_and_unknown(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);

    initialize(f, s, "2025-06-18");
    expect_silence(f, s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    expect_reply(f, s, "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\",\"params\":{}}",
                 "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"result\":{}}");
    expect_reply(f, s, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"foo/bar\"}",
                 "{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32601,\"message\":"
                 "\"Method not found: foo/bar\"}}");
    /* unknown notifications and stray responses are dropped silently */
    expect_silence(f, s, "{\"jsonrpc\":\"2.0\",\"method\":\"foo/bar\"}");
    expect_silence(f, s, "{\"jsonrpc\":\"2.0\",\"id\":77,\"result\":{}}");
    expect_silence(f, s,
                   "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":"
                   "{\"requestId\":123}}");
    /* params of the wrong type */
    expect_reply(f, s, "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/list\",\"params\":[1]}",
                 "{\"jsonrpc\":\"2.0\",\"id\":10,\"error\":{\"code\":-32602,\"message\":"
                 "\"Invalid params: params must be an object\"}}");
    end_session(&s);
}

static void test_decode_errors(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);
    json_t *msg;
    bool answered = false;

    initialize(f, s, "2025-06-18");
    assert_int_equal(mcpd_session_feed(s, "{\"jsonrpc\":", 11, &f->out.sink, &answered), 0);
    assert_true(answered);
    msg = json_loads(rec_text(&f->out, 1), 0, NULL);
    assert_true(json_is_null(json_object_get(msg, "id")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(msg, "error"), "code")),
                     MCPD_RPC_PARSE_ERROR);
    json_decref(msg);

    expect_answer(f, s, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":1}", 0, true,
                  "{\"jsonrpc\":\"2.0\",\"id\":5,\"error\":{\"code\":-32600,\"message\":"
                  "\"Invalid Request: \\\"method\\\" must be a string\"}}");
    expect_answer(f, s, "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", 0, true,
                  "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":"
                  "\"Invalid Request: \\\"id\\\" must be a string or an integer\"}}");
    expect_answer(f, s, "7", 0, true,
                  "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":"
                  "\"Invalid Request: a message must be a JSON object\"}}");
    end_session(&s);
}

/* ---- tools and logging ----------------------------------------------------------------------- */

static void test_tools_list_empty(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);

    initialize(f, s, "2025-06-18");
    expect_reply(f, s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}",
                 "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[]}}");
    expect_reply(f, s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\",\"params\":{}}",
                 "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"tools\":[]}}");
    expect_reply(f, s,
                 "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\",\"params\":"
                 "{\"cursor\":5}}",
                 "{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":-32602,\"message\":"
                 "\"Invalid params: cursor must be a string\"}}");
    expect_reply(f, s,
                 "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/list\",\"params\":"
                 "{\"cursor\":\"bogus\"}}",
                 "{\"jsonrpc\":\"2.0\",\"id\":5,\"error\":{\"code\":-32602,\"message\":"
                 "\"Invalid params: unknown cursor\"}}");
    end_session(&s);
}

static void test_tools_call_unknown(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);
    char in[1024], want[1024], longname[301];

    initialize(f, s, "2025-06-18");
    expect_reply(f, s,
                 "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":"
                 "{\"name\":\"x\",\"arguments\":{}}}",
                 "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32602,\"message\":"
                 "\"Unknown tool: x\"}}");
    expect_reply(f, s,
                 "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":"
                 "{\"name\":\"x\"}}",
                 "{\"jsonrpc\":\"2.0\",\"id\":8,\"error\":{\"code\":-32602,\"message\":"
                 "\"Unknown tool: x\"}}");
    expect_reply(f, s,
                 "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":"
                 "{\"arguments\":{}}}",
                 "{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32602,\"message\":"
                 "\"Invalid params: tools/call needs name (string) and arguments (object)\"}}");
    expect_reply(f, s,
                 "{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/call\",\"params\":"
                 "{\"name\":\"x\",\"arguments\":[1]}}",
                 "{\"jsonrpc\":\"2.0\",\"id\":10,\"error\":{\"code\":-32602,\"message\":"
                 "\"Invalid params: tools/call needs name (string) and arguments (object)\"}}");
    /* no params at all: -32602 (the wording is the session's) */
    expect_error(f, s, "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools/call\"}", "11",
                 MCPD_RPC_INVALID_PARAMS, "Invalid params: ");

    /* the name is echoed at most 200 characters long */
    memset(longname, 'n', 300);
    longname[300] = '\0';
    snprintf(in, sizeof(in),
             "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"tools/call\","
             "\"params\":{\"name\":\"%s\"}}",
             longname);
    snprintf(want, sizeof(want),
             "{\"jsonrpc\":\"2.0\",\"id\":12,\"error\":{\"code\":-32602,\"message\":"
             "\"Unknown tool: %.200s\"}}",
             longname);
    expect_reply(f, s, in, want);
    end_session(&s);
}

#define BAD_LEVEL(id)                                                                              \
    "{\"jsonrpc\":\"2.0\",\"id\":" id ",\"error\":{\"code\":-32602,\"message\":\"Invalid params: " \
    "level must be one of debug, info, notice, warning, error, critical, alert, emergency\"}}"

static void test_set_level(void **state)
{
    static const char *const levels[] = { "debug", "info",     "notice", "warning",
                                          "error", "critical", "alert",  "emergency" };
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);
    char in[256];

    initialize(f, s, "2025-06-18");
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        snprintf(in, sizeof(in),
                 "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"logging/setLevel\",\"params\":"
                 "{\"level\":\"%s\"}}",
                 levels[i]);
        expect_reply(f, s, in, "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}");
    }
    expect_reply(f, s,
                 "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"logging/setLevel\",\"params\":"
                 "{\"level\":\"verbose\"}}",
                 BAD_LEVEL("4"));
    expect_reply(f, s,
                 "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"logging/setLevel\",\"params\":"
                 "{\"level\":\"INFO\"}}",
                 BAD_LEVEL("5"));
    expect_reply(f, s,
                 "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"logging/setLevel\",\"params\":"
                 "{\"level\":3}}",
                 BAD_LEVEL("6"));
    expect_reply(f, s,
                 "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"logging/setLevel\",\"params\":{}}",
                 BAD_LEVEL("7"));
    expect_reply(f, s, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"logging/setLevel\"}",
                 BAD_LEVEL("8"));
    end_session(&s);
}

/* ---- batches --------------------------------------------------------------------------------- */

#define TWO_PINGS                                          \
    "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}," \
    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}]"
#define NO_BATCH                                                                                  \
    "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":\"Invalid Request: " \
    "batches are only part of protocol 2025-03-26\"}}"

static void test_batch_refused(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);

    /* not before initialize */
    expect_answer(f, s, TWO_PINGS, 0, true, NO_BATCH);
    end_session(&s);

    for (int i = 0; mcpd_session_versions[i]; i++) {
        if (strcmp(mcpd_session_versions[i], "2025-03-26") == 0)
            continue;
        s = new_session(f);
        initialize(f, s, mcpd_session_versions[i]);
        expect_answer(f, s, TWO_PINGS, 0, true, NO_BATCH);
        /* not even a batch of notifications */
        expect_answer(f, s, "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}]", 0,
                      true, NO_BATCH);
        end_session(&s);
    }
}

static void test_batch_two_pings(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);

    initialize(f, s, "2025-03-26");
    assert_true(mcpd_session_allows_batch(s));
    expect_answer(f, s, TWO_PINGS, 2, false,
                  "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}},"
                  "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}]");
    end_session(&s);
}

static void test_batch_notifications_only(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);

    initialize(f, s, "2025-03-26");
    expect_silence(f, s,
                   "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
                   "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":"
                   "{\"requestId\":1}},{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}]");
    assert_int_equal(f->out.sink.npending, 0);
    end_session(&s);
}

static void test_batch_mixed(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);
    char in[2048];

    initialize(f, s, "2025-03-26");
    snprintf(in, sizeof(in),
             "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},"
             "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
             "5,"
             "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"tools/call\",\"params\":"
             "{\"name\":\"nope\"}},"
             "{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"},"
             "%s,"
             "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\"},"
             "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}]",
             "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\",\"params\":"
             "{\"protocolVersion\":\"2025-03-26\",\"capabilities\":{}}}");
    expect_answer(f, s, in, 6, false,
                  "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}},"
                  "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":"
                  "\"Invalid Request: a message must be a JSON object\"}},"
                  "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"error\":{\"code\":-32602,\"message\":"
                  "\"Unknown tool: nope\"}},"
                  "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":"
                  "\"Invalid Request: \\\"id\\\" must be a string or an integer\"}},"
                  "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32600,\"message\":"
                  "\"Invalid Request: initialize must not be part of a batch\"}},"
                  "{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{\"tools\":[]}}]");
    assert_string_equal(mcpd_session_version(s), "2025-03-26");
    end_session(&s);
}

#define BATCH_SIZE_ERR                                                                            \
    "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":\"Invalid Request: " \
    "a batch holds 1 to 64 messages\"}}"

/*
 * An empty or oversized batch is answered with an error at once, so feed
 * must say so (*answered = true); otherwise an HTTP transport answers the
 * same request a second time with 202.
 */
static void test_batch_size_limits(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);
    char in[8192];
    size_t n = 0;

    initialize(f, s, "2025-03-26");
    expect_answer(f, s, "[]", 0, true, BATCH_SIZE_ERR);

    in[n++] = '[';
    for (int i = 0; i <= MCPD_MAX_BATCH; i++)
        n += (size_t)snprintf(in + n, sizeof(in) - n,
                              "%s{\"jsonrpc\":\"2.0\",\"id\":%d,"
                              "\"method\":\"ping\"}",
                              i ? "," : "", i);
    snprintf(in + n, sizeof(in) - n, "]");
    expect_answer(f, s, in, 0, true, BATCH_SIZE_ERR);
    end_session(&s);
}

static void test_batch_max(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);
    char in[8192];
    size_t n = 0, before;
    bool answered = true;
    json_t *arr;

    initialize(f, s, "2025-03-26");
    in[n++] = '[';
    for (int i = 0; i < MCPD_MAX_BATCH; i++)
        n += (size_t)snprintf(in + n, sizeof(in) - n,
                              "%s{\"jsonrpc\":\"2.0\",\"id\":%d,"
                              "\"method\":\"ping\"}",
                              i ? "," : "", i);
    snprintf(in + n, sizeof(in) - n, "]");
    before = rec_count(&f->out);
    assert_int_equal(mcpd_session_feed(s, in, strlen(in), &f->out.sink, &answered), MCPD_MAX_BATCH);
    assert_false(answered);
    assert_int_equal(rec_count(&f->out), before + 1);
    arr = json_loads(rec_text(&f->out, before), 0, NULL);
    assert_int_equal(json_array_size(arr), MCPD_MAX_BATCH);
    for (int i = 0; i < MCPD_MAX_BATCH; i++)
        assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, (size_t)i), "id")),
                         i);
    json_decref(arr);
    end_session(&s);
}

/* ---- session objects ------------------------------------------------------------------------- */

static void on_closed(struct mcpd_session *s, void *data)
{
    (*(int *)data)++;
}

static void test_closed_session(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);
    int closed = 0;

    assert_int_equal(strlen(mcpd_session_id(s)), 32);
    assert_int_equal(strspn(mcpd_session_id(s), "0123456789abcdef"), 32);
    mcpd_session_on_close(s, on_closed, &closed);
    initialize(f, s, "2025-06-18");
    mcpd_session_close(s);
    assert_int_equal(closed, 1);
    mcpd_session_close(s); /* idempotent */
    assert_int_equal(closed, 1);
    expect_answer(f, s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}", 1, false,
                  "{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32600,\"message\":"
                  "\"Invalid Request: session closed\"}}");
    drop_session(&s);
}

static void test_shutdown_closes_sessions(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *a = new_session(f), *b = new_session(f);
    int closed = 0;

    assert_string_not_equal(mcpd_session_id(a), mcpd_session_id(b));
    mcpd_session_on_close(a, on_closed, &closed);
    mcpd_session_on_close(b, on_closed, &closed);
    assert_int_equal(f->d->nsessions, 2);
    mcpd_daemon_shutdown(f->d);
    assert_int_equal(closed, 2);
    assert_true(mcpd_session_is_closed(a));
    assert_true(mcpd_session_is_closed(b));
    assert_int_equal(f->d->nsessions, 0);
    drop_session(&a);
    drop_session(&b);
}

/* ---- deferred work (mcpd__daemon_defer) ----------------------------------------------------- */

struct dwork {
    struct mcpd_deferred w;
    char name;
    char *log; /* appends name when run */
};

static void dwork_run(struct mcpd_deferred *w)
{
    struct dwork *k = (struct dwork *)w;
    size_t n = strlen(k->log);
    k->log[n] = k->name;
    k->log[n + 1] = '\0';
}

static void test_deferred(void **state)
{
    struct fixture *f = *state;
    char log[16] = "";
    struct dwork k[4];

    for (int i = 0; i < 4; i++)
        k[i] = (struct dwork){ .w = { .run = dwork_run }, .name = (char)('a' + i), .log = log };
    /* queued once each, in order; the loop runs them before it blocks */
    mcpd__daemon_defer(f->d, &k[0].w);
    mcpd__daemon_defer(f->d, &k[1].w);
    mcpd__daemon_defer(f->d, &k[0].w);
    mcpd__daemon_defer(f->d, &k[2].w);
    mcpd__daemon_defer(f->d, &k[3].w);
    assert_string_equal(log, "");
    /* taken out: the middle one and the last one (the tail moves back) */
    mcpd__daemon_undefer(f->d, &k[1].w);
    mcpd__daemon_undefer(f->d, &k[3].w);
    mcpd__daemon_undefer(f->d, &k[3].w); /* not queued: no-op */
    mcpd__daemon_defer(f->d, &k[3].w);   /* after the new tail */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_string_equal(log, "acd");
    assert_null(f->d->deferred);
    /* run at once (the audit's hook) */
    log[0] = '\0';
    mcpd__daemon_defer(f->d, &k[1].w);
    mcpd__daemon_run_deferred(f->d);
    assert_string_equal(log, "b");
    assert_false(k[1].w.queued);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_string_equal(log, "b");
}

static void test_max_sessions_and_pages(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *a = new_session(f), *b = new_session(f), *c = NULL;

    assert_int_equal(mcpd_session_new(&c, f->d, "test", NULL), MCPD_EBUSY);
    assert_null(c);
    end_session(&a);
    c = new_session(f);
    initialize(f, c, "2025-06-18");
    expect_reply(f, c, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}",
                 "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[]}}");
    end_session(&b);
    end_session(&c);
}

/* ---- the stateless revision (2026-07-28) ------------------------------------------------------
 */

#define MODERN_META                                                          \
    "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"," \
    "\"io.modelcontextprotocol/clientCapabilities\":{},\"progressToken\":7}"

static enum mcpd_era era_of(const char *text, int *code)
{
    json_t *root = json_loads(text, 0, NULL), *err = NULL;
    enum mcpd_era era;

    assert_non_null(root);
    era = mcpd_session_era(root, &err);
    *code = (int)json_integer_value(json_object_get(json_object_get(err, "error"), "code"));
    assert_true((era == MCPD_ERA_INVALID) == (err != NULL));
    json_decref(err);
    json_decref(root);
    return era;
}

static void test_era(void **state)
{
    int code;

    assert_int_equal(era_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", &code),
                     MCPD_ERA_LEGACY);
    assert_int_equal(
        era_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{" MODERN_META
               "}}",
               &code),
        MCPD_ERA_MODERN);
    /* initialize keeps its session-era meaning unless it is a modern request (then -32601) */
    assert_int_equal(
        era_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{" MODERN_META
               "}}",
               &code),
        MCPD_ERA_MODERN);
    assert_int_equal(era_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                            "\"protocolVersion\":\"2025-11-25\"," MODERN_META "}}",
                            &code),
                     MCPD_ERA_LEGACY);
    assert_int_equal(era_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                            "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{}}}",
                            &code),
                     MCPD_ERA_LEGACY);
    assert_int_equal(
        era_of("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\",\"params\":{" MODERN_META "}}",
               &code),
        MCPD_ERA_LEGACY);
    assert_int_equal(
        era_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{"
               "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}}",
               &code),
        MCPD_ERA_INVALID);
    assert_int_equal(code, MCPD_RPC_INVALID_PARAMS);
    assert_int_equal(era_of("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{"
                            "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2030-01-01\","
                            "\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
                            &code),
                     MCPD_ERA_INVALID);
    assert_int_equal(code, MCPD_RPC_UNSUPPORTED_VERSION);
    {
        /* a request a transport knows to be modern, without _meta: -32602 naming its id */
        json_t *root =
            json_loads("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/list\"}", 0, NULL);
        json_t *e = mcpd_session_meta_missing(root);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(e, "error"), "code")),
                         MCPD_RPC_INVALID_PARAMS);
        assert_int_equal(json_integer_value(json_object_get(e, "id")), 9);
        assert_null(mcpd_session_meta_version(root));
        json_decref(e);
        json_decref(root);
    }
}

/* Serves `in` statelessly in a fresh session; the session is gone after one loop turn. */
static json_t *serve_modern(struct fixture *f, const char *in)
{
    struct mcpd_session *s = new_session(f);
    json_t *root = json_loads(in, 0, NULL), *out;
    size_t before = rec_count(&f->out);
    unsigned n = f->d->nsessions;

    assert_non_null(root);
    mcpd_session_serve_stateless(s, root, &f->out.sink);
    json_decref(root);
    drop_session(&s);
    assert_int_equal(rec_count(&f->out), before + 1);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->d->nsessions, n - 1);
    out = json_loads(rec_text(&f->out, before), 0, NULL);
    assert_non_null(out);
    return out;
}

static void test_stateless(void **state)
{
    struct fixture *f = *state;
    json_t *r;

    r = serve_modern(
        f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/list\",\"params\":{" MODERN_META "}}");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "result"), "resultType")), "complete");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "result"), "cacheScope")), "private");
    json_decref(r);
    r = serve_modern(f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\",\"params\":{" MODERN_META
                        "}}");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "error"), "code")),
                     MCPD_RPC_METHOD_NOT_FOUND);
    json_decref(r);
    r = serve_modern(f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"server/discover\"}");
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(r, "result"), "supportedVersions"), 0)),
                        MCPD_MODERN_VERSION);
    json_decref(r);
}

/* server/discover needs no initialize, and a legacy session answers it too. */
static void test_discover_legacy(void **state)
{
    struct fixture *f = *state;
    struct mcpd_session *s = new_session(f);
    size_t before = rec_count(&f->out);
    bool answered;
    const char *in = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"server/discover\"}";

    assert_int_equal(mcpd_session_feed(s, in, strlen(in), &f->out.sink, &answered), 1);
    assert_non_null(strstr(rec_text(&f->out, before), "\"supportedVersions\":[\"2026-07-28\""));
    expect_error(f, s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}", "2",
                 MCPD_RPC_INVALID_REQUEST, "Invalid Request");
    end_session(&s);
}

/* A 2026-07-28 upstream's requestState, wrapped for a modern client. */
static void test_upstream_state_wrap(void **state)
{
    char *w, *u = NULL, *big;
    (void)state;

    w = mcpd__mrtr_wrap("alice", "srv", 1, "tool", "opaque \"state\" \xc3\xa9");
    assert_non_null(w);
    assert_true(mcpd__mrtr_is_wrapped(w));
    assert_int_equal(strncmp(w, "u1.", 3), 0);
    assert_int_equal(mcpd__mrtr_unwrap("alice", "srv", 1, "tool", w, &u), 0);
    assert_string_equal(u, "opaque \"state\" \xc3\xa9");
    free(u);
    /* bound to the bot, the server, the request's kind and its name */
    assert_int_equal(mcpd__mrtr_unwrap("bob", "srv", 1, "tool", w, &u), -1);
    assert_int_equal(mcpd__mrtr_unwrap("alice", "other", 1, "tool", w, &u), -1);
    assert_int_equal(mcpd__mrtr_unwrap("alice", "srv", 2, "tool", w, &u), -1);
    assert_int_equal(mcpd__mrtr_unwrap("alice", "srv", 1, "tool2", w, &u), -1);
    assert_null(u);
    /* a changed byte anywhere */
    for (size_t i = 0; w[i]; i++) {
        char was = w[i];
        w[i] = was == 'A' ? 'B' : 'A';
        assert_int_equal(mcpd__mrtr_unwrap("alice", "srv", 1, "tool", w, &u), -1);
        w[i] = was;
    }
    free(w);
    /* no upstream state: a bare binding, which unwraps to none */
    w = mcpd__mrtr_wrap("alice", "srv", 1, "tool", NULL);
    assert_non_null(w);
    assert_int_equal(strlen(w), 67);
    assert_int_equal(mcpd__mrtr_unwrap("alice", "srv", 1, "tool", w, &u), 0);
    assert_null(u);
    /* ... and is not the empty state */
    assert_int_equal(mcpd__mrtr_unwrap("alice", "srv", 1, "tool", "u1.x", &u), -1);
    free(w);
    w = mcpd__mrtr_wrap("alice", "srv", 1, "tool", "");
    assert_int_equal(mcpd__mrtr_unwrap("alice", "srv", 1, "tool", w, &u), 0);
    assert_string_equal(u, "");
    free(u);
    w[1] = '0'; /* claims no state */
    assert_int_equal(mcpd__mrtr_unwrap("alice", "srv", 1, "tool", w, &u), -1);
    free(w);
    /* field boundaries do not move: ("ab", "c") is not ("a", "bc") */
    w = mcpd__mrtr_wrap("ab", "c", 1, "t", NULL);
    assert_int_equal(mcpd__mrtr_unwrap("a", "bc", 1, "t", w, &u), -1);
    free(w);
    /* one spelling: the same bytes in other Base64 (a padding bit set, padding alone) fail */
    w = mcpd__mrtr_wrap("alice", "srv", 1, "tool", "A"); /* ...QQ== */
    assert_string_equal(w + strlen(w) - 4, "QQ==");
    w[strlen(w) - 3] = 'R'; /* QR== decodes to "A" too */
    assert_int_equal(mcpd__mrtr_unwrap("alice", "srv", 1, "tool", w, &u), -1);
    free(w);
    w = mcpd__mrtr_wrap("alice", "srv", 1, "tool", "");
    big = malloc(strlen(w) + 5);
    snprintf(big, strlen(w) + 5, "%s====", w);
    assert_int_equal(mcpd__mrtr_unwrap("alice", "srv", 1, "tool", big, &u), -1);
    free(big);
    free(w);
    assert_int_equal(mcpd__mrtr_unwrap("alice", "srv", 1, "tool", "", &u), -1);
    assert_int_equal(mcpd__mrtr_unwrap("alice", "srv", 1, "tool", "u", &u), -1);
    /* not mcpd's, or too big to carry */
    assert_false(mcpd__mrtr_is_wrapped("0123.1.abcd"));
    assert_int_equal(mcpd__mrtr_unwrap("alice", "srv", 1, "tool", "u2.abc", &u), -1);
    big = malloc(MCPD_MAX_REQUEST_STATE + 2);
    memset(big, 'x', MCPD_MAX_REQUEST_STATE + 1);
    big[MCPD_MAX_REQUEST_STATE + 1] = '\0';
    assert_null(mcpd__mrtr_wrap("alice", "srv", 1, "tool", big));
    big[MCPD_MAX_REQUEST_STATE] = '\0';
    w = mcpd__mrtr_wrap("alice", "srv", 1, "tool", big);
    assert_non_null(w);
    assert_int_equal(mcpd__mrtr_unwrap("alice", "srv", 1, "tool", w, &u), 0);
    assert_string_equal(u, big);
    free(u);
    free(w);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_initialize_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_initialize_unknown_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_initialize_bad_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_initialize_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_before_initialize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_and_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tools_list_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tools_call_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_two_pings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_notifications_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_mixed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_size_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_closes_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_sessions_and_pages, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_era, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stateless, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discover_legacy, setup, teardown),
        cmocka_unit_test(test_upstream_state_wrap),
    };

    mcpd_log_level = MCPD_LOG_ERROR;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
