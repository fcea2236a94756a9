/*
 * mcpd-fixture-modern: a stdio MCP server that speaks only 2026-07-28 (no
 * initialize, no session, every request carries its context in _meta) and
 * implements the MRTR fixtures of the conformance suite
 * (input-required-result-*): tools and a prompt that answer input_required
 * until the client's inputResponses are in.
 *
 * It refuses initialize with -32022 naming 2026-07-28, as a modern-only
 * server does, so that mcpd's `protocol: auto` has something to find. Every
 * request line it receives is appended to $FIXTURE_MODERN_LOG when set (the
 * e2e tests check what reached it). Test code, not part of mcpd.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define VERSION      "2026-07-28"
#define META_VERSION "io.modelcontextprotocol/protocolVersion"
#define META_CAPS    "io.modelcontextprotocol/clientCapabilities"

static FILE *request_log;
static json_t *listen_id;   /* an open subscriptions/listen (its changes go there) */
static json_t *listen_uris; /* its resourceSubscriptions */
static int extra_tool;      /* test_toggle_tool: one more tool listed */

static void send_msg(json_t *msg)
{
    char *text = json_dumps(msg, JSON_COMPACT);
    if (text) {
        fputs(text, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    free(text);
    json_decref(msg);
}

static void send_result(json_t *id, json_t *result)
{
    if (json_object_get(result, "resultType") == NULL)
        json_object_set_new(result, "resultType", json_string("complete"));
    send_msg(json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result));
}

static void send_error(json_t *id, int code, const char *message, json_t *data)
{
    json_t *err = json_pack("{s:i, s:s}", "code", code, "message", message);
    if (data)
        json_object_set_new(err, "data", data);
    send_msg(json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "error", err));
}

static void reply_text(json_t *id, const char *text)
{
    send_result(id, json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text", text));
}

/* ---- requestState: "<payload>.<hex of FNV-1a over a secret and payload>" ---- */

static uint64_t sign(const char *payload)
{
    static const char secret[] = "mcpd-fixture-modern-secret";
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = secret; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    for (const char *p = payload; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

static char *make_state(const char *payload)
{
    size_t n = strlen(payload) + 20;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s.%016llx", payload, (unsigned long long)sign(payload));
    return s;
}

/* The payload of a state this server signed (malloc'd), or NULL. */
static char *check_state(json_t *params)
{
    const char *st = json_string_value(json_object_get(params, "requestState"));
    const char *dot = st ? strrchr(st, '.') : NULL;
    char want[17], *payload;

    if (dot == NULL || strlen(dot + 1) != 16 || (payload = strndup(st, (size_t)(dot - st))) == NULL)
        return NULL;
    snprintf(want, sizeof(want), "%016llx", (unsigned long long)sign(payload));
    if (strcmp(want, dot + 1) != 0) {
        free(payload);
        return NULL;
    }
    return payload;
}

/* ---- input requests ------------------------------------------------------------ */

static json_t *elicit(const char *message, const char *field, const char *type)
{
    return json_pack("{s:s, s:{s:s, s:{s:s, s:{s:{s:s}}, s:[s]}}}", "method", "elicitation/create",
                     "params", "message", message, "requestedSchema", "type", "object",
                     "properties", field, "type", type, "required", field);
}

static json_t *sample(const char *text, int max_tokens)
{
    return json_pack("{s:s, s:{s:[{s:s, s:{s:s, s:s}}], s:i}}", "method", "sampling/createMessage",
                     "params", "messages", "role", "user", "content", "type", "text", "text", text,
                     "maxTokens", max_tokens);
}

static json_t *roots(void)
{
    return json_pack("{s:s, s:{}}", "method", "roots/list", "params");
}

/* input_required with `asks` (owned) and, when payload is given, a signed state. */
static void ask(json_t *id, json_t *asks, const char *payload)
{
    json_t *r = json_pack("{s:s, s:o}", "resultType", "input_required", "inputRequests", asks);
    if (payload) {
        char *st = make_state(payload);
        json_object_set_new(r, "requestState", json_string(st));
        free(st);
    }
    send_result(id, r);
}

static json_t *answer(json_t *params, const char *key)
{
    return json_object_get(json_object_get(params, "inputResponses"), key);
}

/* The accepted content field of an elicitation answer, or NULL. */
static const char *accepted(json_t *params, const char *key, const char *field)
{
    json_t *a = answer(params, key);
    const char *action = json_string_value(json_object_get(a, "action"));
    if (action == NULL || strcmp(action, "accept") != 0)
        return NULL;
    return json_string_value(json_object_get(json_object_get(a, "content"), field));
}

static const char *sampled(json_t *params, const char *key)
{
    return json_string_value(
        json_object_get(json_object_get(answer(params, key), "content"), "text"));
}

static void t_elicitation(json_t *id, json_t *params)
{
    const char *name = accepted(params, "user_name", "name");
    char text[256];

    if (name == NULL) {
        ask(id, json_pack("{s:o}", "user_name", elicit("What is your name?", "name", "string")),
            NULL);
        return;
    }
    snprintf(text, sizeof(text), "Hello, %.200s!", name);
    reply_text(id, text);
}

static void t_sampling(json_t *id, json_t *params)
{
    const char *said = sampled(params, "capital_question");
    char text[256];

    if (said == NULL) {
        ask(id,
            json_pack("{s:o}", "capital_question", sample("What is the capital of France?", 100)),
            NULL);
        return;
    }
    snprintf(text, sizeof(text), "The model said: %.200s", said);
    reply_text(id, text);
}

static void t_list_roots(json_t *id, json_t *params)
{
    json_t *list = json_object_get(answer(params, "client_roots"), "roots"), *r;
    char text[512] = "Roots:";
    size_t i;

    if (!json_is_array(list)) {
        ask(id, json_pack("{s:o}", "client_roots", roots()), NULL);
        return;
    }
    json_array_foreach (list, i, r) {
        size_t n = strlen(text);
        snprintf(text + n, sizeof(text) - n, " %.200s",
                 json_string_value(json_object_get(r, "uri")) ?: "?");
    }
    reply_text(id, text);
}

static void t_request_state(json_t *id, json_t *params)
{
    char *payload;

    if (json_object_get(params, "requestState") == NULL || answer(params, "confirm") == NULL) {
        ask(id, json_pack("{s:o}", "confirm", elicit("Please confirm", "ok", "boolean")),
            "confirm");
        return;
    }
    if ((payload = check_state(params)) == NULL || strcmp(payload, "confirm") != 0) {
        free(payload);
        send_error(id, -32602, "Invalid params: requestState failed its integrity check", NULL);
        return;
    }
    free(payload);
    reply_text(id, "state-ok: the requestState came back intact");
}

static void t_multiple_inputs(json_t *id, json_t *params)
{
    const char *name = accepted(params, "user_name", "name");
    const char *greeting = sampled(params, "greeting");
    json_t *list = json_object_get(answer(params, "client_roots"), "roots");
    char *payload = check_state(params), text[512];

    if (name == NULL || greeting == NULL || !json_is_array(list) || payload == NULL ||
        strcmp(payload, "multiple") != 0) {
        free(payload);
        ask(id,
            json_pack("{s:o, s:o, s:o}", "user_name",
                      elicit("What is your name?", "name", "string"), "greeting",
                      sample("Generate a greeting", 50), "client_roots", roots()),
            "multiple");
        return;
    }
    free(payload);
    snprintf(text, sizeof(text), "name=%.100s greeting=%.100s roots=%zu", name, greeting,
             json_array_size(list));
    reply_text(id, text);
}

static void t_multi_round(json_t *id, json_t *params)
{
    char *payload = check_state(params), text[512];
    const char *name = accepted(params, "step1", "name");
    const char *color = accepted(params, "step2", "color");

    if (payload && strncmp(payload, "round2:", 7) == 0 && color) {
        snprintf(text, sizeof(text), "%.100s likes %.100s", payload + 7, color);
        reply_text(id, text);
    } else if (payload && strcmp(payload, "round1") == 0 && name) {
        char next[160];
        snprintf(next, sizeof(next), "round2:%.100s", name);
        ask(id,
            json_pack("{s:o}", "step2",
                      elicit("Step 2: What is your favorite color?", "color", "string")),
            next);
    } else {
        ask(id, json_pack("{s:o}", "step1", elicit("Step 1: What is your name?", "name", "string")),
            "round1");
    }
    free(payload);
}

static void t_tampered_state(json_t *id, json_t *params)
{
    char *payload;

    if (json_object_get(params, "requestState") == NULL) {
        ask(id, json_pack("{s:o}", "confirm", elicit("Please confirm", "ok", "boolean")), "tamper");
        return;
    }
    if ((payload = check_state(params)) == NULL || strcmp(payload, "tamper") != 0) {
        free(payload);
        send_error(id, -32602, "Invalid params: requestState failed its integrity check", NULL);
        return;
    }
    free(payload);
    reply_text(id, "state verified");
}

static void t_capabilities(json_t *id, json_t *params)
{
    json_t *caps = json_object_get(json_object_get(params, "_meta"), META_CAPS);
    json_t *asks = json_object();

    if (json_object_get(params, "inputResponses") != NULL) {
        reply_text(id, "inputs received");
        json_decref(asks);
        return;
    }
    if (json_object_get(caps, "elicitation"))
        json_object_set_new(asks, "user_name", elicit("What is your name?", "name", "string"));
    if (json_object_get(caps, "sampling"))
        json_object_set_new(asks, "greeting", sample("Generate a greeting", 50));
    if (json_object_get(caps, "roots"))
        json_object_set_new(asks, "client_roots", roots());
    if (json_object_size(asks) == 0) {
        json_decref(asks);
        reply_text(id, "no client capabilities declared: nothing to ask");
        return;
    }
    ask(id, asks, NULL);
}

static void t_toggle(json_t *id, json_t *params)
{
    (void)params;
    extra_tool = !extra_tool;
    if (listen_id)
        send_msg(json_pack("{s:s, s:s, s:{s:{s:O}}}", "jsonrpc", "2.0", "method",
                           "notifications/tools/list_changed", "params", "_meta",
                           "io.modelcontextprotocol/subscriptionId", listen_id));
    reply_text(id, extra_tool ? "extra tool on" : "extra tool off");
}

/* notifications/resources/updated for test://modern/info, if the listen subscribed to it */
static void t_touch(json_t *id, json_t *params)
{
    json_t *u;
    size_t i;
    int sent = 0;

    (void)params;
    json_array_foreach (listen_uris, i, u)
        if (listen_id && json_is_string(u) &&
            strcmp(json_string_value(u), "test://modern/info") == 0) {
            send_msg(json_pack("{s:s, s:s, s:{s:s, s:{s:O}}}", "jsonrpc", "2.0", "method",
                               "notifications/resources/updated", "params", "uri",
                               "test://modern/info", "_meta",
                               "io.modelcontextprotocol/subscriptionId", listen_id));
            sent = 1;
        }
    reply_text(id, sent ? "updated: sent" : "updated: nobody listens");
}

static const struct {
    const char *name;
    void (*fn)(json_t *id, json_t *params);
} tools[] = {
    { "test_touch_resource", t_touch },
    { "test_input_required_result_elicitation", t_elicitation },
    { "test_input_required_result_sampling", t_sampling },
    { "test_input_required_result_list_roots", t_list_roots },
    { "test_input_required_result_request_state", t_request_state },
    { "test_input_required_result_multiple_inputs", t_multiple_inputs },
    { "test_input_required_result_multi_round", t_multi_round },
    { "test_input_required_result_tampered_state", t_tampered_state },
    { "test_input_required_result_capabilities", t_capabilities },
    /* server-stateless: the answer stream holds no request, only this result */
    { "test_streaming_elicitation", t_elicitation },
    /* lists one more tool (or one less) and says so on the listen stream */
    { "test_toggle_tool", t_toggle },
    { "test_extra_modern_tool", t_toggle },
};

#define NTOOLS (sizeof(tools) / sizeof(tools[0]) - (extra_tool ? 0 : 1))

/* ---- methods ------------------------------------------------------------------- */

static void m_discover(json_t *id)
{
    json_t *r = json_pack("{s:[s], s:{s:{s:b}, s:{}, s:{s:b}}, s:{s:{s:s, s:s}}, s:i, s:s}",
                          "supportedVersions", VERSION, "capabilities", "tools", "listChanged", 1,
                          "prompts", "resources", "subscribe", 1, "_meta",
                          "io.modelcontextprotocol/serverInfo", "name", "mcpd-fixture-modern",
                          "version", "1.0.0", "ttlMs", 0, "cacheScope", "public");
    const char *no = getenv("FIXTURE_MODERN_NO_SUBSCRIBE");

    if (no && *no) /* a server without resource subscriptions */
        json_object_del(json_object_get(json_object_get(r, "capabilities"), "resources"),
                        "subscribe");
    send_result(id, r);
}

static void m_tools_list(json_t *id)
{
    json_t *list = json_array();
    for (size_t i = 0; i < NTOOLS; i++)
        json_array_append_new(list, json_pack("{s:s, s:s, s:{s:s}}", "name", tools[i].name,
                                              "description", "MRTR fixture (SEP-2322)",
                                              "inputSchema", "type", "object"));
    send_result(id,
                json_pack("{s:o, s:i, s:s}", "tools", list, "ttlMs", 0, "cacheScope", "public"));
}

static void m_tools_call(json_t *id, json_t *params)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    for (size_t i = 0; name && i < NTOOLS; i++)
        if (strcmp(name, tools[i].name) == 0) {
            tools[i].fn(id, params);
            return;
        }
    send_error(id, -32602, "Unknown tool", NULL);
}

static void m_prompts_list(json_t *id)
{
    send_result(id, json_pack("{s:[{s:s, s:s}], s:i, s:s}", "prompts", "name",
                              "test_input_required_result_prompt", "description",
                              "A prompt that asks for its context", "ttlMs", 0, "cacheScope",
                              "public"));
}

static void m_prompts_get(json_t *id, json_t *params)
{
    const char *name = json_string_value(json_object_get(params, "name"));
    const char *ctx = accepted(params, "user_context", "context");
    char text[256];

    if (name == NULL || strcmp(name, "test_input_required_result_prompt") != 0) {
        send_error(id, -32602, "Unknown prompt", NULL);
        return;
    }
    if (ctx == NULL) {
        ask(id,
            json_pack("{s:o}", "user_context",
                      elicit("What context should the prompt use?", "context", "string")),
            NULL);
        return;
    }
    snprintf(text, sizeof(text), "Use this context: %.200s", ctx);
    send_result(id, json_pack("{s:s, s:[{s:s, s:{s:s, s:s}}]}", "description", "with context",
                              "messages", "role", "user", "content", "type", "text", "text", text));
}

static void m_resources_list(json_t *id)
{
    send_result(id, json_pack("{s:[{s:s, s:s, s:s}], s:i, s:s}", "resources", "uri",
                              "test://modern/info", "name", "info", "mimeType", "text/plain",
                              "ttlMs", 0, "cacheScope", "public"));
}

static void m_resources_read(json_t *id, json_t *params)
{
    const char *uri = json_string_value(json_object_get(params, "uri"));

    if (uri == NULL || strcmp(uri, "test://modern/info") != 0) {
        send_error(id, -32602, "Invalid params: no such resource", NULL);
        return;
    }
    send_result(id, json_pack("{s:[{s:s, s:s, s:s}], s:i, s:s}", "contents", "uri", uri, "mimeType",
                              "text/plain", "text", "a 2026-07-28 server", "ttlMs", 0, "cacheScope",
                              "public"));
}

static void handle(json_t *msg)
{
    json_t *id = json_object_get(msg, "id"), *params = json_object_get(msg, "params");
    const char *method = json_string_value(json_object_get(msg, "method"));
    const char *v =
        json_string_value(json_object_get(json_object_get(params, "_meta"), META_VERSION));

    if (method == NULL || id == NULL)
        return; /* notifications and responses: nothing to do */
    if (strcmp(method, "initialize") == 0) {
        send_error(id, -32022, "Unsupported protocol version",
                   json_pack("{s:[s], s:O?}", "supported", VERSION, "requested",
                             json_object_get(params, "protocolVersion")));
        return;
    }
    if (v == NULL || json_object_get(json_object_get(params, "_meta"), META_CAPS) == NULL) {
        send_error(id, -32602, "Invalid params: _meta lacks protocolVersion or clientCapabilities",
                   NULL);
        return;
    }
    if (strcmp(v, VERSION) != 0) {
        send_error(id, -32022, "Unsupported protocol version",
                   json_pack("{s:[s], s:s}", "supported", VERSION, "requested", v));
        return;
    }
    if (strcmp(method, "server/discover") == 0)
        m_discover(id);
    else if (strcmp(method, "tools/list") == 0)
        m_tools_list(id);
    else if (strcmp(method, "tools/call") == 0)
        m_tools_call(id, params);
    else if (strcmp(method, "prompts/list") == 0)
        m_prompts_list(id);
    else if (strcmp(method, "prompts/get") == 0)
        m_prompts_get(id, params);
    else if (strcmp(method, "resources/list") == 0)
        m_resources_list(id);
    else if (strcmp(method, "resources/templates/list") == 0)
        send_result(id, json_pack("{s:[], s:i, s:s}", "resourceTemplates", "ttlMs", 0, "cacheScope",
                                  "public"));
    else if (strcmp(method, "resources/read") == 0)
        m_resources_read(id, params);
    else if (strcmp(method, "subscriptions/listen") == 0) {
        json_t *want = json_object_get(params, "notifications");
        json_t *uris = json_object_get(want, "resourceSubscriptions");
        json_decref(listen_id);
        listen_id = json_incref(id);
        json_decref(listen_uris);
        listen_uris = json_is_array(uris) ? json_incref(uris) : json_array();
        send_msg(json_pack("{s:s, s:s, s:{s:{s:b, s:O}, s:{s:O}}}", "jsonrpc", "2.0", "method",
                           "notifications/subscriptions/acknowledged", "params", "notifications",
                           "toolsListChanged",
                           json_is_true(json_object_get(want, "toolsListChanged")),
                           "resourceSubscriptions", listen_uris, "_meta",
                           "io.modelcontextprotocol/subscriptionId", id));
    } else
        send_error(id, -32601, "Method not found", NULL);
}

int main(void)
{
    const char *path = getenv("FIXTURE_MODERN_LOG");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    if (path && *path)
        request_log = fopen(path, "a");
    while ((n = getline(&line, &cap, stdin)) > 0) {
        json_error_t err;
        json_t *msg = json_loadb(line, (size_t)n, 0, &err);

        if (request_log) {
            fwrite(line, 1, (size_t)n, request_log);
            fflush(request_log);
        }
        if (json_is_object(msg))
            handle(msg);
        json_decref(msg);
    }
    free(line);
    json_decref(listen_id);
    json_decref(listen_uris);
    if (request_log)
        fclose(request_log);
    return 0;
}
