/*
 * batch.c - JSON-RPC batches (protocol 2025-03-26 only) and the common
 * "bytes in, message handled" entry point for transports.
 *
 * A batch gets its own sink that collects the final responses of its
 * requests into one array and hands it to the transport's sink when the
 * last one is in. Non-final messages (progress, logging) pass straight
 * through. If the transport's sink goes away first, the batch cancels what
 * it still has in flight.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "error.h"
#include "limits.h"
#include "log.h"
#include "router.h"
#include "session.h"

struct batch {
    struct mcpd_sink sink;
    struct mcpd_sink *parent;
    struct mcpd_session *session;
    struct mcpd_buf out; /* "[r1,r2" */
    unsigned expected, got;
};

static void batch_free(struct batch *b)
{
    mcpd_buf_dispose(&b->out);
    mcpd_session_unref(&b->session);
    free(b);
}

static int batch_send(struct mcpd_sink *sk, const char *data, size_t len, bool final)
{
    struct batch *b = (struct batch *)sk;
    int r;
    if (!final)
        return b->parent ? b->parent->ops->send(b->parent, data, len, false) : MCPD_ECLOSED;
    mcpd_buf_append(&b->out, b->got ? "," : "[", 1);
    mcpd_buf_append(&b->out, data, len);
    if (++b->got < b->expected)
        return 0;
    mcpd_buf_append(&b->out, "]", 1);
    r = b->parent ? b->parent->ops->send(b->parent, b->out.p, b->out.len, true) : MCPD_ECLOSED;
    batch_free(b);
    return r;
}

/* One request will not answer: finish when the others are in. */
static void batch_cancelled(struct mcpd_sink *sk)
{
    struct batch *b = (struct batch *)sk;
    b->parent = NULL; /* a partial batch answer is worse than none */
    if (--b->expected == b->got)
        batch_free(b);
}

static struct mcpd_sink *batch_parent(struct mcpd_sink *sk)
{
    return ((struct batch *)sk)->parent;
}

static const struct mcpd_sink_ops batch_ops = { batch_send, batch_cancelled, batch_parent };

unsigned mcpd_session_handle_batch(struct mcpd_session *s, json_t *array, struct mcpd_sink *reply)
{
    struct batch *b;
    struct mcpd_rpc_error err;
    struct mcpd_msg m;
    size_t i;
    json_t *el;
    unsigned requests = 0;

    if (json_array_size(array) == 0 || json_array_size(array) > MCPD_MAX_BATCH) {
        mcpd__send_error(reply, NULL, MCPD_RPC_INVALID_REQUEST,
                         "Invalid Request: a batch holds 1 to 64 messages");
        return 0;
    }
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return 0;
    b->sink.ops = &batch_ops;
    b->parent = reply;
    b->session = s;
    mcpd_session_ref(s);
    mcpd_buf_init(&b->out, (size_t)s->daemon->cfg->limits.max_message * 4);
    /* count what will be answered first: a response may arrive synchronously */
    json_array_foreach (array, i, el) {
        if (mcpd_jsonrpc_classify(&m, el, &err) != 0 || m.kind == MCPD_MSG_REQUEST)
            requests++;
    }
    b->expected = requests;
    b->got = 0;
    if (requests == 0) {
        json_array_foreach (array, i, el) {
            if (mcpd_jsonrpc_classify(&m, el, &err) == 0)
                mcpd_session_handle(s, &m, &b->sink);
        }
        batch_free(b);
        return 0;
    }
    reply->npending++; /* the batch as a whole answers there */
    json_array_foreach (array, i, el) {
        if (mcpd_jsonrpc_classify(&m, el, &err) != 0) {
            mcpd__send_error(&b->sink, err.id, err.code, err.message);
        } else if (m.kind == MCPD_MSG_REQUEST && strcmp(m.method, "initialize") == 0) {
            mcpd__send_error(&b->sink, m.id, MCPD_RPC_INVALID_REQUEST,
                             "Invalid Request: initialize must not be part of a batch");
        } else {
            mcpd_session_handle(s, &m, &b->sink);
        }
    }
    reply->npending--;
    return requests;
}

unsigned mcpd_session_feed(struct mcpd_session *s, const char *data, size_t len,
                           struct mcpd_sink *reply, bool *answered)
{
    struct mcpd_rpc_error err;
    json_t *root;
    unsigned n;

    root = mcpd_jsonrpc_decode(data, len, MCPD_MAX_JSON_DEPTH, &err);
    if (root == NULL) {
        mcpd__send_error(reply, NULL, err.code, err.message);
        *answered = true;
        return 0;
    }
    n = mcpd_session_feed_json(s, root, reply, answered);
    json_decref(root);
    return n;
}

unsigned mcpd_session_feed_json(struct mcpd_session *s, json_t *root, struct mcpd_sink *reply,
                                bool *answered)
{
    struct mcpd_rpc_error err;
    struct mcpd_msg m;
    unsigned n = 0;

    *answered = false;
    if (json_is_array(root)) {
        if (mcpd_session_allows_batch(s) &&
            (json_array_size(root) == 0 || json_array_size(root) > MCPD_MAX_BATCH)) {
            mcpd__send_error(reply, NULL, MCPD_RPC_INVALID_REQUEST,
                             "Invalid Request: a batch holds 1 to 64 messages");
            *answered = true;
        } else if (!mcpd_session_allows_batch(s)) {
            mcpd__send_error(reply, NULL, MCPD_RPC_INVALID_REQUEST,
                             "Invalid Request: batches are only part of protocol 2025-03-26");
            *answered = true;
        } else {
            n = mcpd_session_handle_batch(s, root, reply);
        }
    } else if (mcpd_jsonrpc_classify(&m, root, &err) != 0) {
        mcpd__send_error(reply, err.id, err.code, err.message);
        *answered = true;
    } else {
        n = m.kind == MCPD_MSG_REQUEST;
        mcpd_session_handle(s, &m, reply);
    }
    return n;
}
