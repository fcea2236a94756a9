/*
 * fuzz_jsonrpc.c - libFuzzer target for the strict JSON-RPC layer
 * (mcpd/jsonrpc.c): every input is decoded, every message in it classified
 * and the whole value dumped.
 *
 * Invariants checked:
 *   - decode fails only with -32700 or -32600, never echoes an id, and
 *     leaves a NUL-terminated message;
 *   - a decoded value is an object or an array whose nesting depth d is at
 *     most the cap, and the pre-scan agrees with jansson: decoding again with
 *     max_depth d succeeds and with d - 1 fails;
 *   - classify success sets a kind and the members that kind needs; classify
 *     failure is -32600 with an id that is either NULL or a valid id;
 *   - the compact dump decodes again to an equal value, and a response built
 *     from a request's id carries an equal id.
 */
#include <string.h>

#include "fuzz.h"
#include "mcpd/buf.h"
#include "mcpd/jsonrpc.h"
#include "mcpd/limits.h"

static size_t depth_of(const json_t *v)
{
    size_t worst = 0, d;
    const char *key;
    json_t *el;
    size_t i;

    if (json_is_object(v)) {
        json_object_foreach ((json_t *)v, key, el) {
            d = depth_of(el);
            if (d > worst)
                worst = d;
        }
        return worst + 1;
    }
    if (json_is_array(v)) {
        json_array_foreach (v, i, el) {
            d = depth_of(el);
            if (d > worst)
                worst = d;
        }
        return worst + 1;
    }
    return 0;
}

static void check_error(const struct mcpd_rpc_error *err, int want_code)
{
    FUZZ_CHECK(err->code == want_code);
    FUZZ_CHECK(memchr(err->message, '\0', sizeof(err->message)) != NULL);
    FUZZ_CHECK(strlen(err->message) > 0);
}

static void check_message(json_t *obj)
{
    struct mcpd_rpc_error err;
    struct mcpd_msg m;

    memset(&err, 0, sizeof(err));
    if (mcpd_jsonrpc_classify(&m, obj, &err) != 0) {
        check_error(&err, MCPD_RPC_INVALID_REQUEST);
        FUZZ_CHECK(err.id == NULL || mcpd_jsonrpc_id_valid(err.id));
        FUZZ_CHECK(strncmp(err.message, "Invalid Request: ", 17) == 0);
        return;
    }
    FUZZ_CHECK(m.root == obj);
    FUZZ_CHECK(m.kind >= MCPD_MSG_REQUEST && m.kind <= MCPD_MSG_RESPONSE);
    switch (m.kind) {
    case MCPD_MSG_REQUEST:
        FUZZ_CHECK(m.method != NULL);
        FUZZ_CHECK(mcpd_jsonrpc_id_valid(m.id));
        FUZZ_CHECK(m.result == NULL && m.error == NULL);
        FUZZ_CHECK(m.params == NULL || json_is_object(m.params) || json_is_array(m.params));
        {
            /* a response echoes the id exactly */
            json_t *resp = mcpd_jsonrpc_result_new(m.id, json_object());
            FUZZ_CHECK(resp != NULL);
            FUZZ_CHECK(json_equal(json_object_get(resp, "id"), m.id));
            json_decref(resp);
        }
        break;
    case MCPD_MSG_NOTIFICATION:
        FUZZ_CHECK(m.method != NULL);
        FUZZ_CHECK(m.id == NULL);
        FUZZ_CHECK(json_object_get(obj, "id") == NULL);
        FUZZ_CHECK(m.params == NULL || json_is_object(m.params) || json_is_array(m.params));
        break;
    case MCPD_MSG_RESPONSE:
        FUZZ_CHECK(m.method == NULL);
        FUZZ_CHECK((m.result == NULL) != (m.error == NULL));
        FUZZ_CHECK(m.id != NULL && (mcpd_jsonrpc_id_valid(m.id) || json_is_null(m.id)));
        FUZZ_CHECK(m.error == NULL || json_is_integer(json_object_get(m.error, "code")));
        break;
    }
}

static void check_roundtrip(const json_t *root)
{
    struct mcpd_buf b;
    struct mcpd_rpc_error err;
    json_t *again;

    mcpd_buf_init(&b, 4 * (size_t)MCPD_MAX_MESSAGE);
    FUZZ_CHECK(mcpd_jsonrpc_dump(&b, root) == 0);
    FUZZ_CHECK(b.p != NULL && strlen(b.p) == b.len); /* no NUL inside a dump */
    again = mcpd_jsonrpc_decode(b.p, b.len, MCPD_MAX_JSON_DEPTH, &err);
    if (again == NULL)
        fprintf(stderr, "dump '%.200s' does not decode: %s\n", b.p, err.message);
    FUZZ_CHECK(again != NULL);
    FUZZ_CHECK(json_equal(again, root));
    json_decref(again);
    mcpd_buf_dispose(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    struct mcpd_rpc_error err;
    json_t *root, *el;
    size_t depth, i;

    memset(&err, 0, sizeof(err));
    root = mcpd_jsonrpc_decode(p, size, MCPD_MAX_JSON_DEPTH, &err);
    if (root == NULL) {
        FUZZ_CHECK(err.code == MCPD_RPC_PARSE_ERROR || err.code == MCPD_RPC_INVALID_REQUEST);
        check_error(&err, err.code);
        FUZZ_CHECK(err.id == NULL);
        return 0;
    }
    FUZZ_CHECK(json_is_object(root) || json_is_array(root));

    /* the byte scan and jansson agree on the depth */
    depth = depth_of(root);
    FUZZ_CHECK(depth >= 1 && depth <= MCPD_MAX_JSON_DEPTH);
    {
        json_t *at = mcpd_jsonrpc_decode(p, size, depth, &err);
        FUZZ_CHECK(at != NULL);
        json_decref(at);
        FUZZ_CHECK(mcpd_jsonrpc_decode(p, size, depth - 1, &err) == NULL);
        check_error(&err, MCPD_RPC_PARSE_ERROR);
        FUZZ_CHECK(strncmp(err.message, "Parse error: nesting deeper than ", 33) == 0);
    }

    if (json_is_array(root)) {
        json_array_foreach (root, i, el)
            check_message(el);
    } else {
        check_message(root);
    }
    check_roundtrip(root);
    json_decref(root);
    return 0;
}
