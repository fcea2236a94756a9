/*
 * jsonrpc.c - strict JSON-RPC 2.0 decoding and encoding (see jsonrpc.h).
 *
 * The depth scan runs before jansson so that a deeply nested document costs
 * one linear pass and no allocation: jansson's own limit (2048) is far above
 * what an MCP message needs and would let a peer build deep trees.
 */
#include "jsonrpc.h"

#include <string.h>

#include "error.h"

/* Returns the maximum nesting depth, stopping early once past max. */
static size_t scan_depth(const char *p, size_t len, size_t max)
{
    size_t depth = 0, worst = 0;
    bool in_str = false;

    for (size_t i = 0; i < len; i++) {
        char c = p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            if (++depth > worst) {
                worst = depth;
                if (worst > max)
                    return worst;
            }
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return worst;
}

json_t *mcpd_jsonrpc_decode(const char *data, size_t len, size_t max_depth,
                            struct mcpd_rpc_error *err)
{
    json_error_t jerr;
    json_t *root;

    err->id = NULL;
    if (scan_depth(data, len, max_depth) > max_depth) {
        err->code = MCPD_RPC_PARSE_ERROR;
        snprintf(err->message, sizeof(err->message), "Parse error: nesting deeper than %zu",
                 max_depth);
        return NULL;
    }
    root = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        err->code = MCPD_RPC_PARSE_ERROR;
        snprintf(err->message, sizeof(err->message), "Parse error: %s at offset %d", jerr.text,
                 jerr.position);
        return NULL;
    }
    if (!json_is_object(root) && !json_is_array(root)) {
        json_decref(root);
        err->code = MCPD_RPC_INVALID_REQUEST;
        snprintf(err->message, sizeof(err->message),
                 "Invalid Request: a message must be a JSON object");
        return NULL;
    }
    return root;
}

bool mcpd_jsonrpc_id_valid(const json_t *id)
{
    return id && (json_is_string(id) || json_is_integer(id));
}

static int invalid(struct mcpd_rpc_error *err, json_t *id, const char *why)
{
    err->code = MCPD_RPC_INVALID_REQUEST;
    err->id = id;
    snprintf(err->message, sizeof(err->message), "Invalid Request: %s", why);
    return -1;
}

int mcpd_jsonrpc_classify(struct mcpd_msg *m, json_t *obj, struct mcpd_rpc_error *err)
{
    json_t *ver, *method, *id;

    memset(m, 0, sizeof(*m));
    err->id = NULL;
    if (!json_is_object(obj))
        return invalid(err, NULL, "a message must be a JSON object");
    id = json_object_get(obj, "id");
    if (id && !mcpd_jsonrpc_id_valid(id))
        id = NULL; /* never echo an id we refuse */
    ver = json_object_get(obj, "jsonrpc");
    if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0)
        return invalid(err, id, "\"jsonrpc\" must be \"2.0\"");
    m->root = obj;
    method = json_object_get(obj, "method");
    if (method) {
        if (!json_is_string(method))
            return invalid(err, id, "\"method\" must be a string");
        m->method = json_string_value(method);
        m->params = json_object_get(obj, "params");
        if (m->params && !json_is_object(m->params) && !json_is_array(m->params))
            return invalid(err, id, "\"params\" must be an object or an array");
        if (json_object_get(obj, "result") || json_object_get(obj, "error"))
            return invalid(err, id, "a request carries no result or error");
        if (json_object_get(obj, "id") == NULL) {
            m->kind = MCPD_MSG_NOTIFICATION;
            return 0;
        }
        if (id == NULL)
            return invalid(err, NULL, "\"id\" must be a string or an integer");
        m->kind = MCPD_MSG_REQUEST;
        m->id = id;
        return 0;
    }
    m->result = json_object_get(obj, "result");
    m->error = json_object_get(obj, "error");
    if ((m->result == NULL) == (m->error == NULL))
        return invalid(err, id, "a response has exactly one of result and error");
    if (m->error &&
        (!json_is_object(m->error) || !json_is_integer(json_object_get(m->error, "code"))))
        return invalid(err, id, "\"error\" must be an object with an integer code");
    if (json_object_get(obj, "id") == NULL ||
        (id == NULL && !json_is_null(json_object_get(obj, "id"))))
        return invalid(err, NULL, "a response needs a valid id");
    m->kind = MCPD_MSG_RESPONSE;
    m->id = json_object_get(obj, "id");
    return 0;
}

json_t *mcpd_jsonrpc_result_new(json_t *id, json_t *result)
{
    json_t *o = json_object();
    if (o == NULL || result == NULL) {
        json_decref(o);
        json_decref(result);
        return NULL;
    }
    json_object_set_new(o, "jsonrpc", json_string("2.0"));
    json_object_set(o, "id", id ? id : json_null());
    json_object_set_new(o, "result", result);
    return o;
}

json_t *mcpd_jsonrpc_error_new(json_t *id, int code, const char *message, json_t *data)
{
    json_t *o = json_object(), *e = json_object();
    if (o == NULL || e == NULL) {
        json_decref(o);
        json_decref(e);
        json_decref(data);
        return NULL;
    }
    json_object_set_new(e, "code", json_integer(code));
    json_object_set_new(e, "message", json_string(message));
    if (data)
        json_object_set_new(e, "data", data);
    json_object_set_new(o, "jsonrpc", json_string("2.0"));
    json_object_set(o, "id", id ? id : json_null());
    json_object_set_new(o, "error", e);
    return o;
}

json_t *mcpd_jsonrpc_notification_new(const char *method, json_t *params)
{
    json_t *o = json_object();
    if (o == NULL) {
        json_decref(params);
        return NULL;
    }
    json_object_set_new(o, "jsonrpc", json_string("2.0"));
    json_object_set_new(o, "method", json_string(method));
    if (params)
        json_object_set_new(o, "params", params);
    return o;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return mcpd_buf_append(data, buffer, size) == 0 ? 0 : -1;
}

int mcpd_jsonrpc_dump(struct mcpd_buf *b, const json_t *msg)
{
    if (json_dump_callback(msg, dump_cb, b,
                           JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17)) != 0)
        return MCPD_ETOOBIG;
    return 0;
}
