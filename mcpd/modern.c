/*
 * modern.c - the stateless revision (2026-07-28) toward clients.
 *
 * A modern request carries its context in params._meta (protocol version,
 * client capabilities and info, log level) instead of an initialize
 * handshake. mcpd serves each one in a transient session of its own: the
 * transport opens the session as it would for initialize (same bot, same
 * authentication), mcpd_session_serve_stateless() fills it from _meta and
 * feeds the request, and the session closes itself on a later loop turn
 * once the answer is out, the request was cancelled or the transport's sink
 * went away (a sink must not call back into the core). Upstreams stay in the
 * session era: the modern _meta keys are removed before forwarding, and
 * answers are translated back (mcpd__modernize).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "authz.h"
#include "daemon.h"
#include "error.h"
#include "limits.h"
#include "log.h"
#include "router.h"
#include "session.h"

#define KEY_VERSION MCPD_META_VERSION
#define KEY_CAPS    MCPD_META_CAPS
#define KEY_INFO    MCPD_META_INFO
#define KEY_LEVEL   "io.modelcontextprotocol/logLevel"
#define KEY_SUB     "io.modelcontextprotocol/subscriptionId"
#define KEY_SERVER  MCPD_META_SERVER

/* Capabilities and versions do not change while mcpd runs. */
#define DISCOVER_TTL_MS 3600000

/* params._meta of a message, or NULL. */
static json_t *meta_of(json_t *root)
{
    json_t *meta = json_object_get(json_object_get(root, "params"), "_meta");
    return json_is_object(meta) ? meta : NULL;
}

static bool is_request(json_t *root)
{
    return json_is_object(root) && json_is_string(json_object_get(root, "method")) &&
           json_object_get(root, "id") != NULL;
}

static json_t *supported_versions(void)
{
    json_t *a = json_array();
    json_array_append_new(a, json_string(MCPD_MODERN_VERSION));
    for (int i = 0; mcpd_session_versions[i]; i++)
        json_array_append_new(a, json_string(mcpd_session_versions[i]));
    return a;
}

/* Error for a modern _meta that is incomplete or names another version. */
static json_t *meta_error(json_t *root, json_t *meta)
{
    json_t *id = json_object_get(root, "id"), *v = json_object_get(meta, KEY_VERSION);
    json_t *info = json_object_get(meta, KEY_INFO), *lvl = json_object_get(meta, KEY_LEVEL);

    if (json_is_string(v) && strcmp(json_string_value(v), MCPD_MODERN_VERSION) != 0)
        return mcpd_jsonrpc_error_new(
            id, MCPD_RPC_UNSUPPORTED_VERSION, "Unsupported protocol version",
            json_pack("{s:o, s:O}", "supported", supported_versions(), "requested", v));
    if (!json_is_string(v) || !json_is_object(json_object_get(meta, KEY_CAPS)))
        return mcpd_jsonrpc_error_new(
            id, MCPD_RPC_INVALID_PARAMS,
            "Invalid params: _meta needs " KEY_VERSION " (string) and " KEY_CAPS " (object)", NULL);
    if ((info && !json_is_object(info)) ||
        (lvl && mcpd__log_level_index(json_string_value(lvl)) < 0))
        return mcpd_jsonrpc_error_new(id, MCPD_RPC_INVALID_PARAMS,
                                      "Invalid params: _meta clientInfo must be an object and "
                                      "logLevel a syslog level",
                                      NULL);
    return NULL;
}

enum mcpd_era mcpd_session_era(json_t *root, json_t **error)
{
    json_t *meta;

    *error = NULL;
    if (!is_request(root))
        return MCPD_ERA_LEGACY;
    meta = meta_of(root);
    /*
     * initialize keeps its session-era meaning; only one without a
     * params.protocolVersion and with the modern _meta is a modern request
     * (for a method that protocol removed: -32601).
     */
    if (strcmp(json_string_value(json_object_get(root, "method")), "initialize") == 0 &&
        (json_object_get(json_object_get(root, "params"), "protocolVersion") != NULL ||
         json_object_get(meta, KEY_VERSION) == NULL))
        return MCPD_ERA_LEGACY;
    if (json_object_get(meta, KEY_VERSION) == NULL && json_object_get(meta, KEY_CAPS) == NULL)
        return MCPD_ERA_LEGACY;
    *error = meta_error(root, meta);
    return *error ? MCPD_ERA_INVALID : MCPD_ERA_MODERN;
}

json_t *mcpd_session_meta_missing(json_t *root)
{
    return meta_error(root, NULL);
}

const char *mcpd_session_meta_version(json_t *root)
{
    return json_string_value(json_object_get(meta_of(root), KEY_VERSION));
}

json_t *mcpd__discover(struct mcpd_session *s)
{
    return json_pack("{s:o, s:o, s:{s:{s:s, s:s, s:s}}, s:I, s:s, s:s}", "supportedVersions",
                     supported_versions(), "capabilities", mcpd__daemon_capabilities(s->daemon),
                     "_meta", "io.modelcontextprotocol/serverInfo", "name", "mcpd", "title",
                     "mcpd MCP proxy", "version", MCPD_VERSION, "ttlMs",
                     (json_int_t)DISCOVER_TTL_MS, "cacheScope", "private", "resultType",
                     "complete");
}

bool mcpd__modern_lacks(const char *method)
{
    static const char *const gone[] = {
        "initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe",
        NULL
    };
    for (int i = 0; gone[i]; i++)
        if (strcmp(method, gone[i]) == 0)
            return true;
    return false;
}

void mcpd__modernize(json_t *msg, bool cache_hint)
{
    json_t *res = json_object_get(msg, "result"), *err = json_object_get(msg, "error");

    if (json_is_object(res)) {
        if (json_object_get(res, "resultType") == NULL)
            json_object_set_new(res, "resultType", json_string("complete"));
        if (cache_hint) { /* an upstream's ttlMs stands; its scope does not (per-bot views) */
            if (json_object_get(res, "ttlMs") == NULL)
                json_object_set_new(res, "ttlMs", json_integer(0));
            json_object_set_new(res, "cacheScope", json_string("private"));
        }
    } else if (json_integer_value(json_object_get(err, "code")) == -32002) {
        /* modern servers never emit "resource not found": invalid params */
        json_object_set_new(err, "code", json_integer(MCPD_RPC_INVALID_PARAMS));
    }
}

/* ---- the transient session's lifetime ------------------------------------ */

static void on_close_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void on_close_timer(uv_timer_t *t)
{
    struct mcpd_session *s = t->data;
    mcpd_session_close(s);
    mcpd_session_unref(&s); /* the reference serve_stateless took */
    uv_close((uv_handle_t *)t, on_close_timer_closed);
}

void mcpd__session_close_soon(struct mcpd_session *s)
{
    uv_timer_t *t;
    if (!s->modern || s->closing_soon || s->parked)
        return;
    s->closing_soon = true;
    if ((t = malloc(sizeof(*t))) == NULL) {
        LOG_ERROR("session", "session=%s out of memory; left to the reaper", s->id);
        return;
    }
    uv_timer_init(s->daemon->loop, t);
    t->data = s;
    uv_timer_start(t, on_close_timer, 0, 0);
}

static struct mcpd_session *of_tsink(struct mcpd_sink *sk)
{
    return (struct mcpd_session *)((char *)sk - offsetof(struct mcpd_session, tsink));
}

static int transient_send(struct mcpd_sink *sk, const char *data, size_t len, bool final)
{
    struct mcpd_session *s = of_tsink(sk);
    struct mcpd_sink *parent = s->tparent;
    if (final) {
        s->tparent = NULL;
        mcpd__session_close_soon(s);
    }
    return parent ? parent->ops->send(parent, data, len, final) : MCPD_ECLOSED;
}

static void transient_cancelled(struct mcpd_sink *sk)
{
    struct mcpd_session *s = of_tsink(sk);
    struct mcpd_sink *parent = s->tparent;
    s->tparent = NULL;
    mcpd__session_close_soon(s);
    if (parent && parent->ops->cancelled)
        parent->ops->cancelled(parent);
}

static struct mcpd_sink *transient_parent(struct mcpd_sink *sk)
{
    return of_tsink(sk)->tparent;
}

static const struct mcpd_sink_ops transient_ops = { transient_send, transient_cancelled,
                                                    transient_parent };

/* Takes the client's context from _meta and removes it: upstreams are session era. */
static void apply_meta(struct mcpd_session *s, json_t *root)
{
    json_t *params = json_object_get(root, "params"), *meta = meta_of(root);
    const char *lvl = json_string_value(json_object_get(meta, KEY_LEVEL));

    /* no logLevel: no notifications/message at all (8 is above emergency) */
    s->log_level = lvl ? mcpd__log_level_index(lvl) : 8;
    s->client_caps = json_incref(json_object_get(meta, KEY_CAPS));
    s->client_info = json_incref(json_object_get(meta, KEY_INFO));
    if (s->client_caps == NULL)
        s->client_caps = json_object();
    if (meta == NULL)
        return;
    json_object_del(meta, KEY_VERSION);
    json_object_del(meta, KEY_CAPS);
    json_object_del(meta, KEY_INFO);
    json_object_del(meta, KEY_LEVEL);
    if (json_object_size(meta) == 0)
        json_object_del(params, "_meta");
}

/* ---- MRTR: parked calls and their requestState ---------------------------- */

static void on_park_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void on_park_expired(uv_timer_t *t)
{
    struct mcpd_session *s = t->data;

    LOG_INFO("session",
             "session=%s no retry came for its input_required answer within %u ms; "
             "the call ends",
             s->id, s->daemon->cfg->limits.input_wait_ms);
    mcpd__session_unpark(s);
    mcpd__session_close_soon(s);
}

void mcpd__session_park(struct mcpd_session *s)
{
    if (s->park_timer == NULL) {
        if ((s->park_timer = malloc(sizeof(*s->park_timer))) == NULL) {
            LOG_ERROR("session", "session=%s out of memory; the parked call waits for its deadline",
                      s->id);
            return;
        }
        uv_timer_init(s->daemon->loop, s->park_timer);
        s->park_timer->data = s;
    }
    uv_timer_start(s->park_timer, on_park_expired, s->daemon->cfg->limits.input_wait_ms, 0);
}

void mcpd__session_unpark(struct mcpd_session *s)
{
    s->parked = false;
    if (s->park_timer) {
        uv_close((uv_handle_t *)s->park_timer, on_park_timer_closed);
        s->park_timer = NULL;
    }
}

/* A per-process key: a requestState is only good for the mcpd that issued it. */
static const unsigned char *state_key(void)
{
    static unsigned char key[32];
    static bool ready;

    if (!ready && RAND_bytes(key, sizeof(key)) == 1)
        ready = true;
    return ready ? key : NULL;
}

/* hex HMAC-SHA256 of "<session id>.<round>.<bot>" into out (65 bytes) */
static bool state_mac(const char *sid, unsigned round, const char *bot, char out[65])
{
    const unsigned char *key = state_key();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char msg[200];
    int n = snprintf(msg, sizeof(msg), "%s.%u.%s", sid, round, bot);

    if (key == NULL || n < 0 || (size_t)n >= sizeof(msg) ||
        HMAC(EVP_sha256(), key, 32, (const unsigned char *)msg, (size_t)n, md, &mdlen) == NULL ||
        mdlen != 32)
        return false;
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return true;
}

void mcpd__mrtr_state(struct mcpd_session *s, char *out, size_t cap)
{
    char mac[65];

    if (!state_mac(s->id, s->mrtr_round, s->bot, mac))
        mac[0] = '\0'; /* never valid: the retry is refused */
    snprintf(out, cap, "%s.%u.%s", s->id, s->mrtr_round, mac);
}

bool mcpd__mrtr_parse_state(const char *state, char sid[33], unsigned *round, char mac[65])
{
    char digits[10], canon[120];
    int used = 0;

    if (strlen(state) >= sizeof(canon) ||
        sscanf(state, "%32[0-9a-f].%9[0-9].%64[0-9a-f]%n", sid, digits, mac, &used) != 3 ||
        state[used] != '\0' || strlen(sid) != 32 || strlen(mac) != 64)
        return false;
    *round = (unsigned)strtoul(digits, NULL, 10); /* at most 9 digits */
    /* one spelling only: the canonical text of what was parsed */
    snprintf(canon, sizeof(canon), "%s.%u.%s", sid, *round, mac);
    return strcmp(canon, state) == 0;
}

struct mcpd_session *mcpd__mrtr_find(struct mcpd_session *s, const char *state)
{
    char sid[33], mac[65], want[65];
    unsigned round;

    if (!mcpd__mrtr_parse_state(state, sid, &round, mac))
        return NULL;
    /* the retry's bot: a state is no good to another bot's key */
    if (!state_mac(sid, round, s->bot, want) || CRYPTO_memcmp(want, mac, 64) != 0)
        return NULL;
    for (struct mcpd_session *p = s->daemon->sessions; p; p = p->next)
        if (p != s && p->parked && p->mrtr_round == round && strcmp(p->id, sid) == 0)
            return p;
    return NULL;
}

/*
 * A 2026-07-28 upstream's requestState, handed to a modern client, is bound
 * to the bot, the server and the request (method kind and name) by an HMAC
 * under the per-process key: the upstream sees one client, mcpd, so without
 * it one bot could replay another's state. "u0.<mac>" when the upstream gave
 * none, "u1.<mac>.<base64 of the upstream's state>" when it did.
 */
static bool wrap_mac(const char *bot, const char *server, int fwd, const char *name,
                     const char *ustate, char out[65])
{
    const unsigned char *key = state_key();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t n = strlen(bot) + strlen(server) + strlen(name) + (ustate ? strlen(ustate) : 0) + 96;
    char *msg = malloc(n);
    int len;
    bool ok;

    if (key == NULL || msg == NULL) {
        free(msg);
        return false;
    }
    /* lengths first: no two field lists give the same text */
    len = snprintf(msg, n, "%zu:%s|%zu:%s|%d|%zu:%s|%c|%s", strlen(bot), bot, strlen(server),
                   server, fwd, strlen(name), name, ustate ? '1' : '0', ustate ? ustate : "");
    ok = len > 0 && (size_t)len < n &&
         HMAC(EVP_sha256(), key, 32, (const unsigned char *)msg, (size_t)len, md, &mdlen) != NULL &&
         mdlen == 32;
    free(msg);
    for (unsigned i = 0; ok && i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return ok;
}

bool mcpd__mrtr_is_wrapped(const char *state)
{
    return state && (strncmp(state, "u0.", 3) == 0 || strncmp(state, "u1.", 3) == 0);
}

char *mcpd__mrtr_wrap(const char *bot, const char *server, int fwd, const char *name,
                      const char *ustate)
{
    size_t n = ustate ? strlen(ustate) : 0;
    char mac[65], *out;

    if (n > MCPD_MAX_REQUEST_STATE || !wrap_mac(bot, server, fwd, name, ustate, mac) ||
        (out = malloc(4 * ((n + 2) / 3) + 72)) == NULL)
        return NULL;
    snprintf(out, 72, "u%c.%s%s", ustate ? '1' : '0', mac, ustate ? "." : "");
    if (ustate)
        EVP_EncodeBlock((unsigned char *)out + 68, (const unsigned char *)ustate, (int)n);
    return out;
}

int mcpd__mrtr_unwrap(const char *bot, const char *server, int fwd, const char *name,
                      const char *wrapped, char **ustate)
{
    size_t n = strlen(wrapped), b64, len;
    char mac[65], want[65], *st = NULL, *again;
    bool has;

    *ustate = NULL;
    if (!mcpd__mrtr_is_wrapped(wrapped)) /* also: at least 3 bytes */
        return -1;
    has = wrapped[1] == '1';
    if (n < 67 || n > 72 + 4 * (MCPD_MAX_REQUEST_STATE / 3 + 1) ||
        strspn(wrapped + 3, "0123456789abcdef") != 64 || (has ? wrapped[67] != '.' : n != 67))
        return -1;
    memcpy(mac, wrapped + 3, 64);
    mac[64] = '\0';
    if (has) {
        b64 = n - 68;
        if (b64 % 4 != 0 || (st = malloc(b64 / 4 * 3 + 1)) == NULL)
            return -1;
        int got =
            EVP_DecodeBlock((unsigned char *)st, (const unsigned char *)wrapped + 68, (int)b64);
        if (got < 0) {
            free(st);
            return -1;
        }
        len = (size_t)got;
        for (size_t i = n; i > 68 && wrapped[i - 1] == '=' && len > 0; i--)
            len--; /* the padding decodes to zeros */
        st[len] = '\0';
        /* a NUL inside, or another spelling of the same bytes: not what mcpd wrote */
        again = strlen(st) == len ? malloc(b64 + 1) : NULL;
        if (again == NULL ||
            EVP_EncodeBlock((unsigned char *)again, (const unsigned char *)st, (int)len) !=
                (int)b64 ||
            memcmp(again, wrapped + 68, b64) != 0) {
            free(again);
            free(st);
            return -1;
        }
        free(again);
    }
    if (!wrap_mac(bot, server, fwd, name, st, want) || CRYPTO_memcmp(want, mac, 64) != 0) {
        free(st);
        return -1;
    }
    *ustate = st;
    return 0;
}

bool mcpd__mrtr_parkable(const char *m)
{
    return m && (strcmp(m, "tools/call") == 0 || strcmp(m, "prompts/get") == 0 ||
                 strcmp(m, "resources/read") == 0);
}

/* What a retry must repeat: the method and the name (or uri) of s's one request. */
static void remember_request(struct mcpd_session *s, json_t *root)
{
    const char *m = json_string_value(json_object_get(root, "method"));
    json_t *params = json_object_get(root, "params");
    const char *name = json_string_value(json_object_get(params, "name"));

    if (!mcpd__mrtr_parkable(m))
        return; /* nothing to copy for lists, discover, listen ... */
    if (name == NULL)
        name = json_string_value(json_object_get(params, "uri"));
    snprintf(s->req_method, sizeof(s->req_method), "%s", m ? m : "");
    free(s->req_name);
    s->req_name = name ? strdup(name) : NULL;
}

/* A modern retry of a call mcpd answered with input_required. */
static bool is_retry(json_t *root)
{
    json_t *state = json_object_get(json_object_get(root, "params"), "requestState");

    /* a 2026-07-28 upstream's state goes through the router, like any call */
    return mcpd__mrtr_parkable(json_string_value(json_object_get(root, "method"))) &&
           state != NULL && !mcpd__mrtr_is_wrapped(json_string_value(state));
}

void mcpd_session_serve_stateless(struct mcpd_session *s, json_t *root, struct mcpd_sink *reply)
{
    bool answered;

    snprintf(s->version, sizeof(s->version), "%s", MCPD_MODERN_VERSION);
    s->state = MCPD_SESSION_READY;
    s->modern = true;
    apply_meta(s, root);
    s->tsink.ops = &transient_ops;
    s->tparent = reply;
    mcpd_session_ref(s); /* dropped by the close that follows the answer */
    LOG_DEBUG("session", "session=%s stateless %s client=%s", s->id,
              json_string_value(json_object_get(root, "method")),
              json_string_value(json_object_get(s->client_info, "name")));
    remember_request(s, root);
    if (is_retry(root)) {
        struct mcpd_rpc_error err;
        struct mcpd_msg m;

        if (mcpd_jsonrpc_classify(&m, root, &err) != 0) /* stdio has not checked it yet */
            mcpd__send_error(&s->tsink, err.id, err.code, err.message);
        else
            mcpd__mrtr_resume(s, root); /* the parked call answers on s's sink */
        return;
    }
    if (mcpd_session_feed_json(s, root, &s->tsink, &answered) == 0 && !answered)
        mcpd__session_close_soon(s); /* nothing will answer */
}

bool mcpd_session_header_is(const char *v, const char *want)
{
    size_t n = strlen(v);
    unsigned char *buf;
    int len;
    bool same;

    /* only the whole wrapper makes it Base64: anything else is literal (SEP-2243) */
    if (n < 11 || strncmp(v, "=?base64?", 9) != 0 || strcmp(v + n - 2, "?=") != 0)
        return strcmp(v, want) == 0;
    if ((n - 11) % 4 != 0 || n - 11 > INT_MAX || (buf = malloc((n - 11) / 4 * 3 + 1)) == NULL)
        return false;
    len = EVP_DecodeBlock(buf, (const unsigned char *)v + 9, (int)(n - 11));
    for (size_t i = n - 3; len > 0 && i >= n - 4 && v[i] == '='; i--)
        len--; /* EVP_DecodeBlock counts the padding as zero bytes */
    same = len >= 0 && (size_t)len == strlen(want) && memcmp(buf, want, (size_t)len) == 0;
    free(buf);
    return same;
}

json_t *mcpd_session_param_headers(struct mcpd_daemon *d, const char *bot, json_t *root)
{
    json_t *params = json_object_get(root, "params"), *args, *props, *prop, *out = NULL;
    const char *name = json_string_value(json_object_get(params, "name")), *key;
    const struct mcpd_catalog_entry *e;

    if (strcmp(json_string_value(json_object_get(root, "method")), "tools/call") != 0 ||
        name == NULL || d->catalog == NULL || (e = mcpd_catalog_lookup(d->catalog, name)) == NULL ||
        !mcpd_authz_tool_visible(d->authz, bot, e->resource, e->tool))
        return NULL; /* no such tool for this bot: the call's own error says so */
    args = json_object_get(params, "arguments");
    props = json_object_get(json_object_get(e->json, "inputSchema"), "properties");
    json_object_foreach (props, key, prop) {
        const char *h = json_string_value(json_object_get(prop, "x-mcp-header"));
        json_t *v = json_object_get(args, key);

        if (h == NULL || v == NULL ||
            !(json_is_string(v) || json_is_number(v) || json_is_boolean(v)))
            continue;
        if (out == NULL && (out = json_object()) == NULL)
            return NULL;
        json_object_set(out, h, v);
    }
    return out;
}

/* ---- subscriptions/listen ------------------------------------------------ */

/* The filter's flags, in MCPD_LIST_* order (templates ride on resources). */
static const char *const listen_flags[MCPD_LIST_KINDS] = { "toolsListChanged", "promptsListChanged",
                                                           "resourcesListChanged", NULL };

int mcpd__listen_send(struct mcpd_session *s, const json_t *n)
{
    json_t *c = json_copy((json_t *)n), *params, *meta;
    int r = MCPD_ENOMEM;

    params = json_is_object(json_object_get(c, "params")) ? json_copy(json_object_get(c, "params"))
                                                          : json_object();
    meta = json_is_object(json_object_get(params, "_meta"))
               ? json_copy(json_object_get(params, "_meta"))
               : json_object();
    if (c && params && meta && json_object_set(meta, KEY_SUB, s->listen_id) == 0 &&
        json_object_set(params, "_meta", meta) == 0 && json_object_set(c, "params", params) == 0)
        r = s->stream ? mcpd__send(s->stream, c, false) : MCPD_ECLOSED;
    json_decref(meta);
    json_decref(params);
    json_decref(c);
    return r;
}

void mcpd__listen_end(struct mcpd_session *s)
{
    json_t *res =
        json_pack("{s:s, s:{s:O, s:{s:s, s:s}}}", "resultType", "complete", "_meta", KEY_SUB,
                  s->listen_id, KEY_SERVER, "name", "mcpd", "version", MCPD_VERSION);
    json_t *resp = res ? mcpd_jsonrpc_result_new(s->listen_id, res) : NULL;
    struct mcpd_sink *sink = s->stream;

    s->stream = NULL;
    if (resp && sink)
        mcpd__send(sink, resp, true);
    json_decref(resp);
}

void mcpd__listen(struct mcpd_session *s, struct mcpd_msg *m, struct mcpd_sink *reply)
{
    json_t *want = json_object_get(m->params, "notifications"), *uris, *caps, *ok, *ack, *v;
    size_t i;

    uris = json_object_get(want, "resourceSubscriptions");
    if (!json_is_object(want) || (uris && !json_is_array(uris))) {
        mcpd__send_error(reply, m->id, MCPD_RPC_INVALID_PARAMS,
                         "Invalid params: notifications (object) is required, and its "
                         "resourceSubscriptions must be an array of URIs");
        return;
    }
    caps = mcpd__daemon_capabilities(s->daemon);
    ok = json_object();
    s->listen_kinds = 0;
    for (int k = 0; k < MCPD_LIST_KINDS; k++) {
        static const char *const cap[MCPD_LIST_KINDS] = { "tools", "prompts", "resources", NULL };
        /* only what was asked for, and only where mcpd tells of changes */
        if (listen_flags[k] == NULL || !json_is_true(json_object_get(want, listen_flags[k])) ||
            !json_is_true(json_object_get(json_object_get(caps, cap[k]), "listChanged")))
            continue;
        s->listen_kinds |= 1u << k;
        json_object_set_new(ok, listen_flags[k], json_true());
    }
    json_decref(caps);
    s->listen_id = json_incref(m->id);
    s->stream = reply;
    if (json_array_size(uris) > 0) {
        json_t *subscribed = json_array();

        json_array_foreach (uris, i, v) {
            if (json_is_string(v) && mcpd__session_subscribe(s, json_string_value(v), m->id))
                json_array_append(subscribed, v);
        }
        json_object_set_new(ok, "resourceSubscriptions", subscribed);
    }
    ack = json_pack("{s:s, s:s, s:{s:o}}", "jsonrpc", "2.0", "method",
                    "notifications/subscriptions/acknowledged", "params", "notifications", ok);
    if (ack == NULL || mcpd__listen_send(s, ack) != 0) {
        LOG_WARN("session", "session=%s subscriptions/listen could not be acknowledged", s->id);
        s->tparent = NULL;
        mcpd__session_close_soon(s);
    } else {
        LOG_DEBUG("session", "session=%s listening (kinds 0x%x)", s->id, s->listen_kinds);
    }
    json_decref(ack);
}
