/*
 * router.h - core-internal: sessions, pending requests and the id mapping
 * between clients and upstreams. Included only by core .c files.
 *
 * Every request mcpd forwards gets a fresh integer id from the upstream's
 * counter; a struct mcpd_pending remembers the client's id, its progress
 * token and the sink that waits for the answer. The same integer is used as
 * the progress token upstream, so progress notifications find their request
 * with one lookup. Two clients' ids therefore never meet upstream.
 */
#ifndef MCPD_ROUTER_H
#define MCPD_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "buf.h"
#include "jsonrpc.h"
#include "session.h"
#include "sink.h"
#include "upstream.h"

struct mcpd_pending;

/* The error a request gets when its audit record cannot be written (fail closed). */
#define MCPD_AUDIT_REFUSED "the audit log cannot be written; the request is refused"

/* Internal requests (initialize, tools/list): msg is NULL on failure, with `why`. */
typedef void (*mcpd_internal_cb)(struct mcpd_upstream *up, struct mcpd_msg *msg, const char *why);

/* What to rewrite in a forwarded request's result (URIs, when prefixing). */
enum mcpd_fwd {
    MCPD_FWD_PLAIN = 0,
    MCPD_FWD_TOOL,   /* result.content[] */
    MCPD_FWD_PROMPT, /* result.messages[].content */
    MCPD_FWD_READ,   /* result.contents[].uri */
};

struct mcpd_pending {
    struct mcpd_pending *fprev, *fnext; /* upstream list, deadline order */
    struct mcpd_pending *sprev, *snext; /* session list */
    struct mcpd_upstream *up;
    uint64_t up_id;
    uint64_t deadline;            /* uv_now() ms */
    struct mcpd_session *session; /* NULL for internal requests */
    struct mcpd_sink *sink;       /* NULL once the sink is gone */
    json_t *client_id;            /* owned */
    json_t *progress_token;       /* owned, client's token, or NULL */
    mcpd_internal_cb internal;
    enum mcpd_fwd fwd;
    json_t *queued; /* per-client instance still starting: the message to send */
    char *wire;     /* audited call: the request's bytes, sent once its row is durable */
    size_t wire_len;
    /*
     * audit: the call's row is submitted when the call is routed; the
     * request goes upstream once that row is durable (security.md 8.2),
     * the answer once the outcome can follow it
     */
    bool linked_up;      /* in the upstream's map and deadline list */
    bool mrtr_ok;        /* tools/call, prompts/get, resources/read: a modern retry may resume it */
    bool audit_row;      /* the call has a row (submitted at forwarding) */
    bool audit_sent;     /* that row's callback has not run yet */
    bool audit_wait;     /* answered (or cancelled); waiting for the row */
    int audit_status;    /* the row's status, once its callback ran */
    int64_t audit_id;    /* the row's id once durable */
    const char *outcome; /* static: "ok", "error", "cancelled", ... */
    int64_t latency_us;
    json_t *held;        /* the final answer to send once audited */
    uint64_t started_ns; /* uv_hrtime() when forwarded: the audited latency */
    unsigned timeout_ms; /* the deadline it was given, for the timeout message */
    const char *tool;    /* for logs (borrowed from the catalog entry copy) */
    char tool_name[65];
    char resource[40]; /* audit resource when it differs from up->name ("" otherwise) */
    /*
     * a session-era client's call to a 2026-07-28 upstream: when the upstream
     * answers input_required, mcpd asks the client (server->client requests)
     * and retries with the answers
     */
    json_t *retry_msg;     /* the request as sent upstream, or NULL */
    json_t *mrtr_answers;  /* inputResponses gathered so far */
    json_t *mrtr_state;    /* the upstream's requestState, or NULL */
    unsigned mrtr_waiting; /* answers still missing */
    unsigned mrtr_rounds;
    uint64_t mrtr_out_first; /* this round's requests to the client: its out ids */
    unsigned mrtr_out_n;     /* [first, first + n) */
    char *bind;              /* a modern client's call: the name its requestState is bound to */
};

enum mcpd_session_state {
    MCPD_SESSION_NEW = 0, /* waiting for initialize */
    MCPD_SESSION_READY,   /* initialize answered */
    MCPD_SESSION_CLOSED,
};

struct mcpd_session {
    struct mcpd_daemon *daemon;
    struct mcpd_session *prev, *next; /* daemon list */
    unsigned refs;
    enum mcpd_session_state state;
    char id[33];
    char version[16];
    const char *transport;
    char peer[64];
    char bot[64];               /* "" when no bots are configured */
    unsigned char key_hash[32]; /* the key the bot authenticated with (HTTP) */
    bool has_key;
    json_t *client_info;
    json_t *client_caps;
    int log_level;                  /* index into the syslog levels, -1 = all */
    json_t *subs;                   /* exposed uri -> upstream name, resources/subscribe */
    struct mcpd_upstream *privates; /* per-client upstream instances */
    struct mcpd_map out;            /* our id -> struct mcpd_outreq (server->client requests) */
    uint64_t next_out_id;
    struct mcpd_pending *pending; /* list */
    unsigned inflight;
    struct mcpd_sink *stream; /* GET stream / stdout, may be NULL */
    uint64_t last_active;
    mcpd_session_close_cb on_close;
    void *on_close_data;
    /* modern (2026-07-28) requests: one transient session per request */
    bool modern;               /* results get resultType, no relay, no ping */
    bool closing_soon;         /* its close is scheduled */
    struct mcpd_sink tsink;    /* wraps tparent: the close follows the answer */
    struct mcpd_sink *tparent; /* the transport's sink for the one request */
    json_t *listen_id;         /* a subscriptions/listen request's id (its stream is `stream`) */
    unsigned listen_kinds;     /* the list_changed kinds it accepted: 1u << MCPD_LIST_* */
    /* MRTR: a call whose upstream asked for input, answered input_required */
    bool parked;                    /* waiting for the client's retry (no sink) */
    unsigned mrtr_round;            /* rounds answered so far: the requestState names it */
    json_t *mrtr_asked;             /* key (our out id) -> {method, params} not yet answered */
    struct mcpd_pending *mrtr_call; /* the call that waits */
    json_t *mrtr_final;             /* its final answer, when it came while parked */
    uv_timer_t *park_timer;         /* ends a parked session nobody resumes */
    char req_method[24];            /* modern: the one request's method and name (or uri), */
    char *req_name;                 /* which a retry must repeat */
};

/* A server->client request relayed to a client, waiting for its answer. */
struct mcpd_outreq {
    struct mcpd_upstream *up; /* NULL once that instance is gone */
    json_t *up_id;            /* the upstream's own id */
    /* or: one input of a 2026-07-28 upstream's input_required, for a call of up */
    uint64_t call; /* that call's upstream id (a pending), 0 for a relayed request */
    char *key;     /* the input's key in inputRequests */
};

/* Serializes `msg` (borrowed) and sends it to `sink`. Returns the sink's result. */
int mcpd__send(struct mcpd_sink *sink, const json_t *msg, bool final);
/* Sends an error response for `id` to `sink` as a final message. */
void mcpd__send_error(struct mcpd_sink *sink, json_t *id, int code, const char *message);
/* Serializes `msg` (borrowed) to the upstream. Returns 0 or a negative code. */
int mcpd__upstream_send(struct mcpd_upstream *up, const json_t *msg);

/*
 * Forwards client request `m` (already rewritten for the upstream by the
 * caller; its id and progress token are rewritten here) to `up`, answering
 * on `reply`. `label` names the call in logs. Returns 0, or a negative code
 * after which the caller answers the client.
 */
int mcpd__router_forward(struct mcpd_session *s, struct mcpd_upstream *up, struct mcpd_msg *m,
                         struct mcpd_sink *reply, const char *label, enum mcpd_fwd fwd);
/* The same, naming the resource for the audit when it is not up->name (agent groups). */
int mcpd__router_forward_res(struct mcpd_session *s, struct mcpd_upstream *up, struct mcpd_msg *m,
                             struct mcpd_sink *reply, const char *label, enum mcpd_fwd fwd,
                             const char *resource);
/* Rewrites a content block's URIs (resource_link, embedded resource) to the exposed form. */
void mcpd__expose_block(struct mcpd_upstream *up, json_t *block);
/* Sends an internal request; params are stolen. */
int mcpd__router_internal(struct mcpd_upstream *up, const char *method, json_t *params,
                          unsigned timeout_ms, mcpd_internal_cb cb);
/* Cancels one pending request (notifies the upstream, answers nobody) and frees it. */
void mcpd__router_cancel(struct mcpd_pending *p, const char *reason);
/* Fails every pending request of `up` with an error to its client. */
void mcpd__router_fail_all(struct mcpd_upstream *up, const char *why);
/* Sends requests queued while a per-client instance started; fails them when `why`. */
void mcpd__router_flush_queued(struct mcpd_upstream *up);
/* A client's response to a relayed server->client request. */
void mcpd__router_client_response(struct mcpd_session *s, struct mcpd_msg *m);
/* Forgets a per-client instance in its session (it is going away). */
void mcpd__session_drop_private(struct mcpd_session *s, struct mcpd_upstream *up);
/*
 * Refuses client request `m` after a policy denial: audits the denial (when
 * the audit is on) and sends `code`/`message`/`data` (data stolen) to reply
 * once the record is durable.
 */
void mcpd__router_deny(struct mcpd_session *s, struct mcpd_msg *m, struct mcpd_sink *reply,
                       const char *resource, const char *tool, const char *reason, int code,
                       json_t *data);
/* Index of a syslog level name (debug 0 .. emergency 7), -1 when unknown. */
int mcpd__log_level_index(const char *level);
/* ---- modern.c: the stateless revision (2026-07-28) ---- */
/* The server/discover result (new reference). */
json_t *mcpd__discover(struct mcpd_session *s);
/* True for methods that do not exist for modern clients (ping, logging/setLevel, ...). */
bool mcpd__modern_lacks(const char *method);
/*
 * A final message to a modern client: results get resultType (and, with
 * cache_hint, ttlMs 0 and cacheScope private); -32002 becomes -32602.
 */
void mcpd__modernize(json_t *msg, bool cache_hint);
/* A transient (modern) session closes on a later loop turn; idempotent. */
void mcpd__session_close_soon(struct mcpd_session *s);
/*
 * subscriptions/listen in modern session s: acknowledges the notification
 * types mcpd honours, then keeps the request open; its stream carries them.
 */
void mcpd__listen(struct mcpd_session *s, struct mcpd_msg *m, struct mcpd_sink *reply);
/* Sends notification n (borrowed) on s's listen stream, tagged with its subscription id. */
int mcpd__listen_send(struct mcpd_session *s, const json_t *n);
/* Ends s's subscription gracefully: the listen request's final (empty) result. */
void mcpd__listen_end(struct mcpd_session *s);
/*
 * Subscribes s to the exposed resource uri as resources/subscribe would
 * (request id `id`, answers discarded). False when the uri is unknown or
 * hidden from s's bot.
 */
bool mcpd__session_subscribe(struct mcpd_session *s, const char *uri, json_t *id);
/*
 * MRTR (modern.c, router.c). A parked session waits MCPD_MRTR_PARK_MS for
 * the client's retry, then closes (cancelling its call upstream).
 */
void mcpd__session_park(struct mcpd_session *s);
void mcpd__session_unpark(struct mcpd_session *s);
/* tools/call, prompts/get, resources/read: a call that may wait for input, which a retry repeats.
 */
bool mcpd__mrtr_parkable(const char *method);
/* The requestState of s's current round (HMAC of session id, round and bot). */
void mcpd__mrtr_state(struct mcpd_session *s, char *out, size_t cap);
/*
 * Splits a requestState "<32 hex>.<round>.<64 hex>" written the one way
 * mcpd writes it (no sign, spaces or leading zeros). False otherwise.
 */
bool mcpd__mrtr_parse_state(const char *state, char sid[33], unsigned *round, char mac[65]);
/*
 * A 2026-07-28 upstream's requestState as mcpd hands it to a modern client:
 * "u0.<mac>" or "u1.<mac>.<base64>", the HMAC binding bot, server, request
 * kind (enum mcpd_fwd) and name. _wrap returns a malloc'd string, or NULL
 * (out of memory, or a state over MCPD_MAX_REQUEST_STATE). _unwrap returns
 * 0 and the upstream's state (malloc'd; NULL when it gave none), or -1 for a
 * state not wrapped for exactly these.
 */
bool mcpd__mrtr_is_wrapped(const char *state);
char *mcpd__mrtr_wrap(const char *bot, const char *server, int fwd, const char *name,
                      const char *ustate);
int mcpd__mrtr_unwrap(const char *bot, const char *server, int fwd, const char *name,
                      const char *wrapped, char **ustate);
/* The parked session `state` names for a retry in session s (same bot), or NULL. */
struct mcpd_session *mcpd__mrtr_find(struct mcpd_session *s, const char *state);
/*
 * A modern retry (params.requestState) in transient session s: takes over
 * the parked call, hands the client's inputResponses to the upstream and
 * answers on s's sink (the call's result, or another input_required).
 */
void mcpd__mrtr_resume(struct mcpd_session *s, json_t *root);
/* Handles one decoded message from an upstream. */
void mcpd__router_upstream_message(struct mcpd_upstream *up, struct mcpd_msg *m);

#endif
