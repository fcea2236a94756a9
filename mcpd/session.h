/*
 * session.h - one client conversation with mcpd (session era), and the
 * dispatch of its messages.
 *
 * A transport creates a session, feeds it classified messages with the sink
 * that should receive the answer, and tells it when sinks or the whole
 * session go away. The session answers initialize, ping,
 * logging/setLevel and server/discover itself, serves tools/list from the
 * catalog, and routes tools/call to the owning upstream through the router.
 * A modern (2026-07-28) request gets a transient session of its own
 * (mcpd_session_serve_stateless, mcpd/modern.c).
 *
 * Sessions are reference counted: the transport holds one reference; the
 * core takes one around every call that may reach back into the transport.
 */
#ifndef MCPD_SESSION_H
#define MCPD_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "jsonrpc.h"
#include "sink.h"

struct mcpd_daemon;
struct mcpd_session;

typedef void (*mcpd_session_close_cb)(struct mcpd_session *s, void *data);

/* True for methods mcpd routes upstream (they need params). */
bool mcpd_session_method_known(const char *method);

/* Protocol versions of the session era that mcpd speaks, newest first. */
extern const char *const mcpd_session_versions[];
bool mcpd_session_version_supported(const char *v);

/*
 * Creates a session for `transport` ("stdio", "http"). Fails with MCPD_EBUSY
 * when the daemon holds max_sessions already. The caller holds one ref.
 */
int mcpd_session_new(struct mcpd_session **out, struct mcpd_daemon *d, const char *transport,
                     const char *peer);
void mcpd_session_ref(struct mcpd_session *s);
void mcpd_session_unref(struct mcpd_session **s);

/* The session id (32 hex chars from a CSPRNG). */
const char *mcpd_session_id(const struct mcpd_session *s);
/* Negotiated protocol version, or NULL before initialize. */
const char *mcpd_session_version(const struct mcpd_session *s);
bool mcpd_session_is_closed(const struct mcpd_session *s);
/* True when the session negotiated 2025-03-26 (the only batching version). */
bool mcpd_session_allows_batch(const struct mcpd_session *s);

/*
 * Binds the session to a bot (before initialize). key_hash is the SHA-256 of
 * the key it authenticated with (HTTP), or NULL (stdio).
 */
void mcpd_session_set_bot(struct mcpd_session *s, const char *bot, const unsigned char *key_hash);
/* The session's bot, "" when none. */
const char *mcpd_session_bot(const struct mcpd_session *s);
/* True when `key_hash` is the key this session's bot authenticated with. */
bool mcpd_session_key_matches(const struct mcpd_session *s, const unsigned char *key_hash);

/* Called when the core ends the session (reaped, shutdown): the transport forgets it. */
void mcpd_session_on_close(struct mcpd_session *s, mcpd_session_close_cb cb, void *data);

/*
 * Handles one message. `m->root` is borrowed but may be modified (ids are
 * rewritten in place before forwarding). For a request, exactly one final
 * message is eventually sent to `reply` (unless the sink is closed first).
 * Notifications and responses send nothing to `reply`.
 */
void mcpd_session_handle(struct mcpd_session *s, struct mcpd_msg *m, struct mcpd_sink *reply);

/* Sets the sink for messages not tied to a request (GET stream, stdout); NULL clears. */
void mcpd_session_set_stream(struct mcpd_session *s, struct mcpd_sink *sink);

/* The transport drops `sink`: pending requests answering there are cancelled upstream. */
void mcpd_session_sink_closed(struct mcpd_session *s, struct mcpd_sink *sink);

/* Ends the session (DELETE, EOF): cancels everything in flight. Idempotent. */
void mcpd_session_close(struct mcpd_session *s);

/* Sends a serialized-on-demand message to a sink, for transports' own errors. */
int mcpd_session_send_json(struct mcpd_sink *sink, json_t *msg, bool final);

/*
 * Handles a JSON-RPC batch (2025-03-26): `array` is borrowed and may be
 * modified. Returns the number of requests in it; when that is > 0, `reply`
 * later receives exactly one final message, the array of responses. With 0,
 * nothing is sent (HTTP answers 202). Invalid elements get error responses.
 */
unsigned mcpd_session_handle_batch(struct mcpd_session *s, json_t *array, struct mcpd_sink *reply);

/*
 * Decodes one message line/body and handles it: single messages go to
 * mcpd_session_handle, arrays to the batch path when the session allows it.
 * Errors the client caused are answered on `reply`. Returns the number of
 * requests that will be answered on `reply` (0 for notifications and
 * responses, or when an error was already sent: then *answered is true).
 */
unsigned mcpd_session_feed(struct mcpd_session *s, const char *data, size_t len,
                           struct mcpd_sink *reply, bool *answered);
/* The same for a message already decoded with mcpd_jsonrpc_decode (borrowed). */
unsigned mcpd_session_feed_json(struct mcpd_session *s, json_t *root, struct mcpd_sink *reply,
                                bool *answered);

/* ---- the stateless revision (2026-07-28), mcpd/modern.c ---- */

#define MCPD_MODERN_VERSION "2026-07-28"
#define MCPD_META_VERSION   "io.modelcontextprotocol/protocolVersion"
#define MCPD_META_CAPS      "io.modelcontextprotocol/clientCapabilities"
#define MCPD_META_INFO      "io.modelcontextprotocol/clientInfo"
#define MCPD_META_SERVER    "io.modelcontextprotocol/serverInfo"

enum mcpd_era {
    MCPD_ERA_LEGACY = 0, /* no modern _meta (or initialize): the session era applies */
    MCPD_ERA_MODERN,     /* a request with a valid modern _meta */
    MCPD_ERA_INVALID,    /* modern _meta that is incomplete or names another version */
};

/*
 * Classifies a decoded message (borrowed). For MCPD_ERA_INVALID, *error is
 * the error response to send (new reference; -32602 or -32022, HTTP 400),
 * NULL only when out of memory.
 */
enum mcpd_era mcpd_session_era(json_t *root, json_t **error);

/*
 * The -32602 error (new reference) for a request that a transport knows to
 * be modern (its MCP-Protocol-Version header says so) but that carries no
 * modern _meta.
 */
json_t *mcpd_session_meta_missing(json_t *root);

/*
 * SEP-2243: for a modern tools/call of a tool `bot` may see, the arguments
 * its inputSchema marks with "x-mcp-header": {header suffix: argument value}
 * (new reference), which an HTTP client mirrors in Mcp-Param-<suffix>; NULL
 * when there are none.
 */
json_t *mcpd_session_param_headers(struct mcpd_daemon *d, const char *bot, json_t *root);

/*
 * Whether a 2026-07-28 header value (Mcp-Name, Mcp-Param-*, ...) says
 * `want`: a value wrapped whole in =?base64?...?= is compared decoded
 * (strict padding and alphabet, else false), any other value literally.
 */
bool mcpd_session_header_is(const char *value, const char *want);

/* params._meta's protocol version of a decoded request (borrowed), or NULL. */
const char *mcpd_session_meta_version(json_t *root);

/*
 * Serves one modern request (or a server/discover without _meta) in `s`, a
 * session just created for it with mcpd_session_new (and set_bot): the
 * client's context comes from _meta, and the session closes itself once the
 * final answer went to `reply`, the request was cancelled, or the transport
 * called mcpd_session_sink_closed(s, reply). `root` is borrowed and may be
 * modified. The caller keeps its own reference and drops it when it likes.
 */
void mcpd_session_serve_stateless(struct mcpd_session *s, json_t *root, struct mcpd_sink *reply);
#endif
