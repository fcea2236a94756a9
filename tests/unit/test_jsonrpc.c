/*
 * test_jsonrpc.c - unit tests of the strict JSON-RPC 2.0 layer
 * (mcpd/jsonrpc.c): decoding (duplicate keys, depth cap, UTF-8, top-level
 * shape), classification of requests, notifications and responses, the
 * id rules (string or integer, echoed exactly; anything else refused with
 * no id echoed), the builders and the compact dump.
 *
 * Every check compares exact values: error codes, full messages for the
 * errors mcpd words itself, and byte-exact serializations.
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

#include "mcpd/buf.h"
#include "mcpd/error.h"
#include "mcpd/jsonrpc.h"
#include "mcpd/limits.h"

#define MSG_JSONRPC  "Invalid Request: \"jsonrpc\" must be \"2.0\""
#define MSG_ID       "Invalid Request: \"id\" must be a string or an integer"
#define MSG_METHOD   "Invalid Request: \"method\" must be a string"
#define MSG_PARAMS   "Invalid Request: \"params\" must be an object or an array"
#define MSG_REQ_RES  "Invalid Request: a request carries no result or error"
#define MSG_ONE_OF   "Invalid Request: a response has exactly one of result and error"
#define MSG_ERR_CODE "Invalid Request: \"error\" must be an object with an integer code"
#define MSG_RESP_ID  "Invalid Request: a response needs a valid id"
#define MSG_OBJECT   "Invalid Request: a message must be a JSON object"

/* ---- helpers -------------------------------------------------------------------------------- */

static json_t *decode_len(const char *s, size_t len)
{
    struct mcpd_rpc_error err;
    json_t *root;

    memset(&err, 0, sizeof(err));
    root = mcpd_jsonrpc_decode(s, len, MCPD_MAX_JSON_DEPTH, &err);
    if (root == NULL)
        fail_msg("decode failed (%d): %s", err.code, err.message);
    return root;
}

static json_t *decode_ok(const char *s)
{
    return decode_len(s, strlen(s));
}

/* Decoding must fail with `code`; the message must start with `prefix`. */
static void decode_fails_len(const char *s, size_t len, int code, const char *prefix)
{
    struct mcpd_rpc_error err;
    json_t *root;

    memset(&err, 0x5a, sizeof(err));
    err.message[sizeof(err.message) - 1] = '\0';
    root = mcpd_jsonrpc_decode(s, len, MCPD_MAX_JSON_DEPTH, &err);
    if (root != NULL) {
        json_decref(root);
        fail_msg("decode of '%.80s' succeeded, want error %d", s, code);
    }
    assert_int_equal(err.code, code);
    assert_null(err.id);
    if (strncmp(err.message, prefix, strlen(prefix)) != 0)
        fail_msg("message '%s' does not start with '%s'", err.message, prefix);
}

static void decode_fails(const char *s, int code, const char *prefix)
{
    decode_fails_len(s, strlen(s), code, prefix);
}

/* Classification of `s` must fail with -32600, `msg`, and err.id == want_id (JSON, or NULL). */
static void classify_fails(const char *s, const char *msg, const char *want_id)
{
    struct mcpd_rpc_error err;
    struct mcpd_msg m;
    json_t *root = decode_ok(s);

    memset(&err, 0, sizeof(err));
    assert_int_equal(mcpd_jsonrpc_classify(&m, root, &err), -1);
    assert_int_equal(err.code, MCPD_RPC_INVALID_REQUEST);
    assert_string_equal(err.message, msg);
    if (want_id == NULL) {
        if (err.id != NULL)
            fail_msg("err.id set for '%s', want NULL", s);
    } else {
        json_t *want = json_loads(want_id, JSON_DECODE_ANY, NULL);
        assert_non_null(want);
        assert_non_null(err.id);
        assert_true(json_equal(err.id, want));
        json_decref(want);
    }
    json_decref(root);
}

/* Serializes with mcpd_jsonrpc_dump into a new string (caller frees). */
static char *dump(const json_t *msg)
{
    struct mcpd_buf b;
    char *s;

    mcpd_buf_init(&b, MCPD_MAX_MESSAGE);
    assert_int_equal(mcpd_jsonrpc_dump(&b, msg), 0);
    s = mcpd_buf_steal(&b, NULL);
    assert_non_null(s);
    return s;
}

static void assert_dump(const json_t *msg, const char *want)
{
    char *got = dump(msg);
    assert_string_equal(got, want);
    free(got);
}

/* A document of `depth` nested arrays (or objects) around 1. */
static char *nested(size_t depth, bool objects)
{
    struct mcpd_buf b;

    mcpd_buf_init(&b, 16 * depth + 16);
    for (size_t i = 0; i < depth; i++)
        assert_int_equal(mcpd_buf_append(&b, objects ? "{\"a\":" : "[", objects ? 5 : 1), 0);
    assert_int_equal(mcpd_buf_append(&b, "1", 1), 0);
    for (size_t i = 0; i < depth; i++)
        assert_int_equal(mcpd_buf_append(&b, objects ? "}" : "]", 1), 0);
    return mcpd_buf_steal(&b, NULL);
}

/* ---- valid messages ------------------------------------------------------------------------- */

static void test_request(void **state)
{
    struct mcpd_rpc_error err;
    struct mcpd_msg m;
    json_t *root = decode_ok("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
                             "\"params\":{\"name\":\"x\",\"arguments\":{}}}");

    assert_int_equal(mcpd_jsonrpc_classify(&m, root, &err), 0);
    assert_int_equal(m.kind, MCPD_MSG_REQUEST);
    assert_ptr_equal(m.root, root);
    assert_true(json_is_integer(m.id));
    assert_int_equal(json_integer_value(m.id), 1);
    assert_string_equal(m.method, "tools/call");
    assert_ptr_equal(m.params, json_object_get(root, "params"));
    assert_null(m.result);
    assert_null(m.error);
    json_decref(root);

    /* params may be an array, or absent */
    root = decode_ok("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"m\",\"params\":[1,2]}");
    assert_int_equal(mcpd_jsonrpc_classify(&m, root, &err), 0);
    assert_int_equal(m.kind, MCPD_MSG_REQUEST);
    assert_true(json_is_array(m.params));
    json_decref(root);

    root = decode_ok("{\"method\":\"ping\",\"id\":0,\"jsonrpc\":\"2.0\"}");
    assert_int_equal(mcpd_jsonrpc_classify(&m, root, &err), 0);
    assert_int_equal(m.kind, MCPD_MSG_REQUEST);
    assert_int_equal(json_integer_value(m.id), 0);
    assert_null(m.params);
    json_decref(root);
}

static void test_notification(void **state)
{
    struct mcpd_rpc_error err;
    struct mcpd_msg m;
    json_t *root = decode_ok("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
                             "\"params\":{\"requestId\":3}}");

    assert_int_equal(mcpd_jsonrpc_classify(&m, root, &err), 0);
    assert_int_equal(m.kind, MCPD_MSG_NOTIFICATION);
    assert_null(m.id);
    assert_string_equal(m.method, "notifications/cancelled");
    assert_non_null(m.params);
    json_decref(root);

    root = decode_ok("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    assert_int_equal(mcpd_jsonrpc_classify(&m, root, &err), 0);
    assert_int_equal(m.kind, MCPD_MSG_NOTIFICATION);
    assert_null(m.params);
    json_decref(root);
}

static void test_response(void **state)
{
    struct mcpd_rpc_error err;
    struct mcpd_msg m;
    json_t *root = decode_ok("{\"jsonrpc\":\"2.0\",\"id\":\"r-1\",\"result\":{\"tools\":[]}}");

    assert_int_equal(mcpd_jsonrpc_classify(&m, root, &err), 0);
    assert_int_equal(m.kind, MCPD_MSG_RESPONSE);
    assert_string_equal(json_string_value(m.id), "r-1");
    assert_null(m.method);
    assert_ptr_equal(m.result, json_object_get(root, "result"));
    assert_null(m.error);
    json_decref(root);

    root = decode_ok("{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32601,"
                     "\"message\":\"Method not found\"}}");
    assert_int_equal(mcpd_jsonrpc_classify(&m, root, &err), 0);
    assert_int_equal(m.kind, MCPD_MSG_RESPONSE);
    assert_int_equal(json_integer_value(m.id), 9);
    assert_null(m.result);
    assert_int_equal(json_integer_value(json_object_get(m.error, "code")), -32601);
    json_decref(root);

    /* JSON-RPC 2.0 §5: an error response to an unreadable request has id null */
    root = decode_ok("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
                     "\"message\":\"Parse error\"}}");
    assert_int_equal(mcpd_jsonrpc_classify(&m, root, &err), 0);
    assert_int_equal(m.kind, MCPD_MSG_RESPONSE);
    assert_true(json_is_null(m.id));
    json_decref(root);

    /* a result may be any JSON value, including null and false */
    root = decode_ok("{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":null}");
    assert_int_equal(mcpd_jsonrpc_classify(&m, root, &err), 0);
    assert_int_equal(m.kind, MCPD_MSG_RESPONSE);
    assert_true(json_is_null(m.result));
    json_decref(root);
}

/* ---- ids ------------------------------------------------------------------------------------ */

/* The id of `in` must come back in a built response exactly as `want_dump`. */
static void check_echo(const char *in, const char *want_dump)
{
    struct mcpd_rpc_error err;
    struct mcpd_msg m;
    json_t *root = decode_ok(in), *resp;

    assert_int_equal(mcpd_jsonrpc_classify(&m, root, &err), 0);
    assert_int_equal(m.kind, MCPD_MSG_REQUEST);
    resp = mcpd_jsonrpc_result_new(m.id, json_object());
    assert_non_null(resp);
    assert_dump(resp, want_dump);
    json_decref(resp);
    json_decref(root);
}

static void test_id_echo(void **state)
{
    check_echo("{\"jsonrpc\":\"2.0\",\"id\":9223372036854775807,\"method\":\"ping\"}",
               "{\"jsonrpc\":\"2.0\",\"id\":9223372036854775807,\"result\":{}}");
    check_echo("{\"jsonrpc\":\"2.0\",\"id\":-9223372036854775808,\"method\":\"ping\"}",
               "{\"jsonrpc\":\"2.0\",\"id\":-9223372036854775808,\"result\":{}}");
    check_echo("{\"jsonrpc\":\"2.0\",\"id\":-1,\"method\":\"ping\"}",
               "{\"jsonrpc\":\"2.0\",\"id\":-1,\"result\":{}}");
    check_echo("{\"jsonrpc\":\"2.0\",\"id\":\"\",\"method\":\"ping\"}",
               "{\"jsonrpc\":\"2.0\",\"id\":\"\",\"result\":{}}");
    /* unicode: raw UTF-8 (2, 3 and 4 byte sequences) stays raw */
    check_echo("{\"jsonrpc\":\"2.0\",\"id\":\"h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80\","
               "\"method\":\"ping\"}",
               "{\"jsonrpc\":\"2.0\",\"id\":\"h\xc3\xa9llo \xe2\x98\x83 \xf0\x9f\x98\x80\","
               "\"result\":{}}");
    /* escapes decode to the same code points: a surrogate pair is one 4-byte character */
    check_echo("{\"jsonrpc\":\"2.0\",\"id\":\"\\u00e9\\ud83d\\ude00\",\"method\":\"ping\"}",
               "{\"jsonrpc\":\"2.0\",\"id\":\"\xc3\xa9\xf0\x9f\x98\x80\",\"result\":{}}");
    /* characters JSON must escape are escaped again */
    check_echo("{\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\\\\c\\n\\u0001/\",\"method\":\"ping\"}",
               "{\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\\\\c\\n\\u0001/\",\"result\":{}}");
}

static void test_id_rejected(void **state)
{
    /* never echo an id mcpd refuses: err.id stays NULL */
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", MSG_ID, NULL);
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":1.0,\"method\":\"ping\"}", MSG_ID, NULL);
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", MSG_ID, NULL);
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":1e3,\"method\":\"ping\"}", MSG_ID, NULL);
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}", MSG_ID, NULL);
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":false,\"method\":\"ping\"}", MSG_ID, NULL);
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":{\"a\":1},\"method\":\"ping\"}", MSG_ID, NULL);
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"ping\"}", MSG_ID, NULL);
    /* other errors do not echo an invalid id either */
    classify_fails("{\"jsonrpc\":\"1.0\",\"id\":2.5,\"method\":\"ping\"}", MSG_JSONRPC, NULL);
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":7}", MSG_METHOD, NULL);

    assert_false(mcpd_jsonrpc_id_valid(NULL));
    {
        json_t *v[] = { json_null(), json_true(), json_real(1.0), json_object(), json_array() };
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
            assert_false(mcpd_jsonrpc_id_valid(v[i]));
            json_decref(v[i]);
        }
        json_t *s = json_string("x"), *n = json_integer(-5);
        assert_true(mcpd_jsonrpc_id_valid(s));
        assert_true(mcpd_jsonrpc_id_valid(n));
        json_decref(s);
        json_decref(n);
    }
}

static void test_id_out_of_range(void **state)
{
    /* jansson holds integers in 64 bits: 2^63 cannot be echoed exactly, so it is refused */
    decode_fails("{\"jsonrpc\":\"2.0\",\"id\":9223372036854775808,\"method\":\"ping\"}",
                 MCPD_RPC_PARSE_ERROR, "Parse error: ");
}

/* ---- decode errors -------------------------------------------------------------------------- */

static void test_duplicate_keys(void **state)
{
    decode_fails("{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"ping\"}",
                 MCPD_RPC_PARSE_ERROR, "Parse error: duplicate object key");
    decode_fails("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"method\":\"b\"}", MCPD_RPC_PARSE_ERROR,
                 "Parse error: duplicate object key");
    /* nested, and as elements of a batch */
    decode_fails("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\","
                 "\"params\":{\"x\":{\"k\":1,\"k\":1}}}",
                 MCPD_RPC_PARSE_ERROR, "Parse error: duplicate object key");
    decode_fails("[{\"jsonrpc\":\"2.0\",\"jsonrpc\":\"2.0\",\"method\":\"m\"}]",
                 MCPD_RPC_PARSE_ERROR, "Parse error: duplicate object key");
    /* keys equal after unescaping are duplicates */
    decode_fails("{\"id\":1,\"\\u0069d\":2}", MCPD_RPC_PARSE_ERROR,
                 "Parse error: duplicate object key");
}

static void test_depth(void **state)
{
    char *s;
    json_t *root;

    s = nested(MCPD_MAX_JSON_DEPTH, false);
    root = decode_ok(s);
    json_decref(root);
    free(s);
    s = nested(MCPD_MAX_JSON_DEPTH + 1, false);
    decode_fails(s, MCPD_RPC_PARSE_ERROR, "Parse error: nesting deeper than 64");
    free(s);

    s = nested(MCPD_MAX_JSON_DEPTH, true);
    root = decode_ok(s);
    json_decref(root);
    free(s);
    s = nested(MCPD_MAX_JSON_DEPTH + 1, true);
    decode_fails(s, MCPD_RPC_PARSE_ERROR, "Parse error: nesting deeper than 64");
    free(s);

    /* far deeper than jansson's own limit: still the same clean error */
    s = nested(100000, false);
    decode_fails(s, MCPD_RPC_PARSE_ERROR, "Parse error: nesting deeper than 64");
    free(s);

    /* brackets inside strings (with escaped quotes and backslashes) do not count */
    {
        static const char head[] = "{\"s\":\"\\\"", tail[] = "\\\\\",\"t\":[[1]]}";
        struct mcpd_buf b;
        mcpd_buf_init(&b, 4096);
        assert_int_equal(mcpd_buf_append(&b, head, strlen(head)), 0);
        for (int i = 0; i < 200; i++)
            assert_int_equal(mcpd_buf_append(&b, "[{", 2), 0);
        assert_int_equal(mcpd_buf_append(&b, tail, strlen(tail)), 0);
        root = decode_len(b.p, b.len);
        assert_true(json_is_array(json_object_get(root, "t")));
        /* '"' + 400 brackets + '\\' */
        assert_int_equal(strlen(json_string_value(json_object_get(root, "s"))), 402);
        json_decref(root);
        mcpd_buf_dispose(&b);
    }
}

static void test_invalid_utf8(void **state)
{
    static const char *const bad[] = {
        "{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}",             /* never valid */
        "{\"jsonrpc\":\"2.0\",\"method\":\"\xc0\xaf\"}",         /* overlong '/' */
        "{\"jsonrpc\":\"2.0\",\"method\":\"\xed\xa0\x80\"}",     /* UTF-16 surrogate */
        "{\"jsonrpc\":\"2.0\",\"method\":\"\xc3\"}",             /* truncated sequence */
        "{\"jsonrpc\":\"2.0\",\"method\":\"\xf4\x90\x80\x80\"}", /* above U+10FFFF */
        "{\"\xfe\":1}",                                          /* in a key */
        "{\"jsonrpc\":\"2.0\",\"method\":\"\\u0000\"}",          /* NUL (escaped) */
        "{\"jsonrpc\":\"2.0\",\"method\":\"\\ud800\"}",          /* lone surrogate escape */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        decode_fails(bad[i], MCPD_RPC_PARSE_ERROR, "Parse error: ");

    /* a raw NUL byte, in a string or after the value */
    decode_fails_len("{\"a\":\"x\0y\"}", 11, MCPD_RPC_PARSE_ERROR, "Parse error: ");
    decode_fails_len("{\"a\":1}\0", 8, MCPD_RPC_PARSE_ERROR, "Parse error: ");
}

static void test_not_json(void **state)
{
    decode_fails("", MCPD_RPC_PARSE_ERROR, "Parse error: ");
    decode_fails("   \n", MCPD_RPC_PARSE_ERROR, "Parse error: ");
    decode_fails("{", MCPD_RPC_PARSE_ERROR, "Parse error: ");
    decode_fails("{\"jsonrpc\":\"2.0\",}", MCPD_RPC_PARSE_ERROR, "Parse error: ");
    decode_fails("{} x", MCPD_RPC_PARSE_ERROR, "Parse error: ");
    decode_fails("{}{}", MCPD_RPC_PARSE_ERROR, "Parse error: ");
    decode_fails("{'a':1}", MCPD_RPC_PARSE_ERROR, "Parse error: ");
    decode_fails("{\"a\":NaN}", MCPD_RPC_PARSE_ERROR, "Parse error: ");
    decode_fails("{\"a\":1e999}", MCPD_RPC_PARSE_ERROR, "Parse error: ");
}

static void test_top_level_scalar(void **state)
{
    static const char *const scalars[] = { "1", "-2.5", "\"x\"", "null", "true", "false" };
    for (size_t i = 0; i < sizeof(scalars) / sizeof(scalars[0]); i++)
        decode_fails(scalars[i], MCPD_RPC_INVALID_REQUEST, MSG_OBJECT);

    /* the full message, exactly */
    {
        struct mcpd_rpc_error err;
        assert_null(mcpd_jsonrpc_decode("42", 2, MCPD_MAX_JSON_DEPTH, &err));
        assert_string_equal(err.message, MSG_OBJECT);
    }
    /* arrays (batches) and objects decode; whitespace around them is fine */
    json_decref(decode_ok(" [1] \n"));
    json_decref(decode_ok("\t{}\r\n"));
}

/* ---- classify errors ------------------------------------------------------------------------ */

static void test_jsonrpc_member(void **state)
{
    classify_fails("{\"id\":1,\"method\":\"ping\"}", MSG_JSONRPC, "1");
    classify_fails("{\"jsonrpc\":\"1.0\",\"id\":\"a\",\"method\":\"ping\"}", MSG_JSONRPC, "\"a\"");
    classify_fails("{\"jsonrpc\":2.0,\"id\":1,\"method\":\"ping\"}", MSG_JSONRPC, "1");
    classify_fails("{\"jsonrpc\":\"2.0 \",\"id\":1,\"method\":\"ping\"}", MSG_JSONRPC, "1");
    classify_fails("{\"jsonrpc\":null,\"method\":\"ping\"}", MSG_JSONRPC, NULL);
    classify_fails("{}", MSG_JSONRPC, NULL);
}

static void test_method_member(void **state)
{
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":1}", MSG_METHOD, "1");
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":\"q\",\"method\":null}", MSG_METHOD, "\"q\"");
    classify_fails("{\"jsonrpc\":\"2.0\",\"method\":[\"ping\"]}", MSG_METHOD, NULL);
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\",\"result\":{}}", MSG_REQ_RES,
                   "3");
    classify_fails("{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"error\":{\"code\":1}}", MSG_REQ_RES,
                   NULL);
}

static void test_params_member(void **state)
{
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":1}", MSG_PARAMS, "1");
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":\"x\"}", MSG_PARAMS,
                   "1");
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":true}", MSG_PARAMS,
                   "1");
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":null}", MSG_PARAMS,
                   "1");
    classify_fails("{\"jsonrpc\":\"2.0\",\"method\":\"n\",\"params\":2}", MSG_PARAMS, NULL);
}

static void test_response_shape(void **state)
{
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{\"code\":1,"
                   "\"message\":\"x\"}}",
                   MSG_ONE_OF, "1");
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":1}", MSG_ONE_OF, "1");
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"message\":\"x\"}}", MSG_ERR_CODE,
                   "1");
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1.5,\"message\":\"x\"}}",
                   MSG_ERR_CODE, "1");
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":\"-32600\"}}", MSG_ERR_CODE,
                   "1");
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":\"boom\"}", MSG_ERR_CODE, "1");
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":null}", MSG_ERR_CODE, "1");
    classify_fails("{\"jsonrpc\":\"2.0\",\"result\":{}}", MSG_RESP_ID, NULL);
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":2.5,\"result\":{}}", MSG_RESP_ID, NULL);
    classify_fails("{\"jsonrpc\":\"2.0\",\"id\":true,\"result\":{}}", MSG_RESP_ID, NULL);
}

static void test_not_an_object(void **state)
{
    classify_fails("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", MSG_OBJECT, NULL);
    classify_fails("[]", MSG_OBJECT, NULL);
    {
        struct mcpd_rpc_error err;
        struct mcpd_msg m;
        json_t *n = json_integer(1);
        assert_int_equal(mcpd_jsonrpc_classify(&m, n, &err), -1);
        assert_string_equal(err.message, MSG_OBJECT);
        json_decref(n);
    }
}

/* ---- builders and dump ---------------------------------------------------------------------- */

static void test_builders(void **state)
{
    json_t *id = json_integer(7), *sid = json_string("a"), *msg;

    msg = mcpd_jsonrpc_result_new(id, json_pack("{s:b, s:[i,s]}", "ok", 1, "v", 1, "two"));
    assert_int_equal(id->refcount, 2); /* borrowed, and held by the message */
    assert_dump(msg, "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"ok\":true,\"v\":[1,\"two\"]}}");
    json_decref(msg);
    assert_int_equal(id->refcount, 1);

    msg = mcpd_jsonrpc_result_new(NULL, json_object());
    assert_dump(msg, "{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":{}}");
    json_decref(msg);

    /* a NULL result (failed allocation upstream of the call) gives NULL, not a half message */
    assert_null(mcpd_jsonrpc_result_new(id, NULL));
    assert_int_equal(id->refcount, 1);

    msg = mcpd_jsonrpc_error_new(sid, MCPD_RPC_METHOD_NOT_FOUND, "Method not found: x", NULL);
    assert_dump(msg, "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"error\":{\"code\":-32601,"
                     "\"message\":\"Method not found: x\"}}");
    json_decref(msg);

    msg = mcpd_jsonrpc_error_new(NULL, MCPD_RPC_PARSE_ERROR, "Parse error",
                                 json_pack("{s:i}", "offset", 3));
    assert_dump(msg, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
                     "\"message\":\"Parse error\",\"data\":{\"offset\":3}}}");
    json_decref(msg);

    msg = mcpd_jsonrpc_error_new(id, MCPD_RPC_BUSY, "busy", json_string("d"));
    assert_dump(msg, "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-32001,"
                     "\"message\":\"busy\",\"data\":\"d\"}}");
    json_decref(msg);

    msg = mcpd_jsonrpc_notification_new(
        "notifications/progress", json_pack("{s:i, s:f}", "progressToken", 5, "progress", 0.5));
    assert_dump(msg, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\","
                     "\"params\":{\"progressToken\":5,\"progress\":0.5}}");
    json_decref(msg);

    msg = mcpd_jsonrpc_notification_new("notifications/tools/list_changed", NULL);
    assert_dump(msg, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}");
    json_decref(msg);

    assert_int_equal(id->refcount, 1);
    json_decref(id);
    json_decref(sid);
}

static void test_dump(void **state)
{
    struct mcpd_buf b;
    json_t *v;

    /* compact, member order preserved, appended to what the buffer holds */
    v = decode_ok("{ \"b\" : 1 ,\n \"a\" : [ true , null , \"\xc3\xa9\" ] , \"c\" : {} }");
    mcpd_buf_init(&b, 1024);
    assert_int_equal(mcpd_buf_append(&b, "x", 1), 0);
    assert_int_equal(mcpd_jsonrpc_dump(&b, v), 0);
    assert_string_equal(b.p, "x{\"b\":1,\"a\":[true,null,\"\xc3\xa9\"],\"c\":{}}");
    mcpd_buf_dispose(&b);
    json_decref(v);

    /* reals keep 17 significant digits: they survive a round trip */
    v = decode_ok("{\"r\":0.1,\"s\":-0.0,\"t\":1e300,\"u\":2.5}");
    assert_dump(v, "{\"r\":0.10000000000000001,\"s\":-0.0,\"t\":1.0000000000000001e300,"
                   "\"u\":2.5}");
    json_decref(v);

    /* control characters are escaped, '/' is not */
    v = json_pack("{s:s}", "k", "a\tb\x1f/\"");
    assert_dump(v, "{\"k\":\"a\\tb\\u001F/\\\"\"}");
    json_decref(v);

    /* past the buffer's cap: MCPD_ETOOBIG */
    v = decode_ok("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"text\":\"0123456789\"}}");
    mcpd_buf_init(&b, 16);
    assert_int_equal(mcpd_jsonrpc_dump(&b, v), MCPD_ETOOBIG);
    assert_true(b.len <= 16);
    mcpd_buf_dispose(&b);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request),          cmocka_unit_test(test_notification),
        cmocka_unit_test(test_response),         cmocka_unit_test(test_id_echo),
        cmocka_unit_test(test_id_rejected),      cmocka_unit_test(test_id_out_of_range),
        cmocka_unit_test(test_duplicate_keys),   cmocka_unit_test(test_depth),
        cmocka_unit_test(test_invalid_utf8),     cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_top_level_scalar), cmocka_unit_test(test_jsonrpc_member),
        cmocka_unit_test(test_method_member),    cmocka_unit_test(test_params_member),
        cmocka_unit_test(test_response_shape),   cmocka_unit_test(test_not_an_object),
        cmocka_unit_test(test_builders),         cmocka_unit_test(test_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
