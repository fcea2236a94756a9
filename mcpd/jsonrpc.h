/*
 * jsonrpc.h - sans-I/O JSON-RPC 2.0 on jansson: strict decoding,
 * classification, and the one place where error objects are built.
 *
 * Strictness (security.md 6.6): duplicate keys rejected, nesting depth capped
 * at MCPD_MAX_JSON_DEPTH before jansson sees the bytes, invalid UTF-8 and
 * NUL characters rejected (jansson), `id` must be a string or an integer
 * (never null, a float or a boolean) and is echoed back exactly as received.
 */
#ifndef MCPD_JSONRPC_H
#define MCPD_JSONRPC_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "buf.h"

#define MCPD_RPC_PARSE_ERROR      (-32700)
#define MCPD_RPC_INVALID_REQUEST  (-32600)
#define MCPD_RPC_METHOD_NOT_FOUND (-32601)
#define MCPD_RPC_INVALID_PARAMS   (-32602)
#define MCPD_RPC_INTERNAL_ERROR   (-32603)
/* Implementation-defined server errors (-32000..-32099). */
#define MCPD_RPC_SERVER_ERROR (-32000) /* upstream unavailable, timeout */
#define MCPD_RPC_BUSY         (-32001) /* too many requests in flight */
#define MCPD_RPC_DENIED       (-32003) /* denied by the binding policy (data says why) */
/* 2026-07-28 (the spec's range -32020..-32099). */
#define MCPD_RPC_HEADER_MISMATCH     (-32020) /* HTTP headers do not mirror the body */
#define MCPD_RPC_MISSING_CAPABILITY  (-32021) /* data: requiredCapabilities */
#define MCPD_RPC_UNSUPPORTED_VERSION (-32022) /* data: supported, requested */

enum mcpd_msg_kind {
    MCPD_MSG_REQUEST = 1,
    MCPD_MSG_NOTIFICATION,
    MCPD_MSG_RESPONSE,
};

/* A classified message. All pointers borrow from `root`. */
struct mcpd_msg {
    enum mcpd_msg_kind kind;
    json_t *root;       /* the message object */
    json_t *id;         /* request/response id, NULL for notifications */
    const char *method; /* requests and notifications */
    json_t *params;     /* object or array, NULL when absent */
    json_t *result;     /* responses */
    json_t *error;      /* responses */
};

/* Why a decode or classification failed: ready to become an error object. */
struct mcpd_rpc_error {
    int code;   /* MCPD_RPC_PARSE_ERROR or MCPD_RPC_INVALID_REQUEST */
    json_t *id; /* borrowed id when it could be read, else NULL */
    char message[160];
};

/*
 * Decodes `len` bytes holding exactly one JSON value that must be an object
 * or an array. Returns a new reference, or NULL with `err` filled
 * (code -32700, or -32600 for a top-level scalar).
 */
json_t *mcpd_jsonrpc_decode(const char *data, size_t len, size_t max_depth,
                            struct mcpd_rpc_error *err);

/*
 * Classifies one message object (borrowed). Returns 0 and fills `m`, or -1
 * with `err` filled (-32600; err->id set when the id itself was valid).
 */
int mcpd_jsonrpc_classify(struct mcpd_msg *m, json_t *obj, struct mcpd_rpc_error *err);

/* True for a valid JSON-RPC id: a string or an integer. */
bool mcpd_jsonrpc_id_valid(const json_t *id);

/*
 * Builders. `id` is borrowed (NULL becomes null); `result` and `data` are
 * stolen. Return new references (NULL only on allocation failure).
 */
json_t *mcpd_jsonrpc_result_new(json_t *id, json_t *result);
json_t *mcpd_jsonrpc_error_new(json_t *id, int code, const char *message, json_t *data);
json_t *mcpd_jsonrpc_notification_new(const char *method, json_t *params);

/* Serializes compactly, appending to `b`. Returns 0 or a buf error. */
int mcpd_jsonrpc_dump(struct mcpd_buf *b, const json_t *msg);

#endif
