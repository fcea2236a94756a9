/*
 * agent_swarm - holds many agent connections open against mcpd, for
 * bench/agent.sh's memory figure.
 *
 *   agent_swarm URL KEYFILE N [SECONDS]
 *
 * Dials URL (ws:// only) N times, the i-th connection with the i-th key of
 * KEYFILE (one ak_... per line), at most 64 dials in flight. Each
 * connection is a minimal agent: it answers initialize, tools/list (one tool
 * "g.echo" in group "g") and ping. Prints "READY <n>" on stdout once every
 * connection has been listed by mcpd (or "PARTIAL <n>" after 60 s), then
 * holds the connections for SECONDS (default 10) or until SIGTERM, closes
 * them with 1000 and exits. Keys are never printed.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "mcpd/error.h"
#include "mcpd/net/ws.h"

#define MAX_INFLIGHT_DIALS 64

struct conn {
    struct mcpd_ws *ws;
    char auth[96];
    int idx;
    bool listed, open;
};

static struct conn *conns;
static int nconns, next_dial, dialing, nlisted, nclosed;
static const char *url;
static uv_loop_t *loop;
static uv_timer_t hold, deadline;
static uv_signal_t sig;
static bool ready_printed, stopping;

static void dial_more(void);

static void reply(struct conn *c, json_t *id, json_t *result)
{
    json_t *m = json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result);
    char *s = json_dumps(m, JSON_COMPACT);
    if (s && c->ws)
        mcpd_ws_send_text(c->ws, s, strlen(s));
    free(s);
    json_decref(m);
}

static void check_ready(void)
{
    if (!ready_printed && nlisted == nconns) {
        ready_printed = true;
        printf("READY %d\n", nlisted);
        fflush(stdout);
        uv_timer_stop(&deadline);
    }
}

static void on_message(struct mcpd_ws *ws, const char *msg, size_t len, void *data)
{
    struct conn *c = data;
    json_t *m = json_loadb(msg, len, 0, NULL), *id;
    const char *method;

    (void)ws;
    if (m == NULL)
        return;
    id = json_object_get(m, "id");
    method = json_string_value(json_object_get(m, "method"));
    if (id && method && strcmp(method, "initialize") == 0) {
        reply(c, id,
              json_pack("{s:s,s:{s:{s:b}},s:{s:s,s:s}}", "protocolVersion", "2025-06-18",
                        "capabilities", "tools", "listChanged", 1, "serverInfo", "name", "swarm",
                        "version", "1"));
    } else if (id && method && strcmp(method, "tools/list") == 0) {
        reply(c, id,
              json_pack("{s:[{s:s,s:s,s:{s:s,s:{s:{s:s}}},s:{s:s,s:s}}]}", "tools", "name",
                        "g.echo", "description", "echo", "inputSchema", "type", "object",
                        "properties", "text", "type", "string", "_meta", "io.mcpd/group", "g",
                        "io.mcpd/tool", "echo"));
        if (!c->listed) {
            c->listed = true;
            nlisted++;
            check_ready();
        }
    } else if (id && method && strcmp(method, "ping") == 0) {
        reply(c, id, json_object());
    } else if (id && method && strcmp(method, "tools/call") == 0) {
        json_t *t =
            json_object_get(json_object_get(json_object_get(m, "params"), "arguments"), "text");
        reply(c, id,
              json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text",
                        json_is_string(t) ? json_string_value(t) : ""));
    }
    json_decref(m);
}

static void on_open(struct mcpd_ws *ws, void *data)
{
    struct conn *c = data;
    (void)ws;
    c->open = true;
    dialing--;
    dial_more();
}

static void on_close(struct mcpd_ws *ws, int code, int status, const char *reason, void *data)
{
    struct conn *c = data;
    (void)ws;
    if (!c->open)
        dialing--;
    if (!stopping)
        fprintf(stderr, "agent_swarm: connection %d closed: %d %d %s\n", c->idx, code, status,
                reason);
    c->ws = NULL;
    c->open = false;
    nclosed++;
    if (!stopping)
        dial_more();
}

static void dial_more(void)
{
    static const struct mcpd_ws_callbacks cbs = { .on_open = on_open,
                                                  .on_message = on_message,
                                                  .on_close = on_close };
    while (!stopping && dialing < MAX_INFLIGHT_DIALS && next_dial < nconns) {
        struct conn *c = &conns[next_dial++];
        const char *h[] = { c->auth };
        dialing++;
        if (mcpd_ws_connect(&c->ws, loop, url, h, 1, NULL, &cbs, c, 1u << 20, 15000) != 0) {
            dialing--;
            fprintf(stderr, "agent_swarm: dial %d failed\n", c->idx);
        }
    }
}

static void stop(void)
{
    if (stopping)
        return;
    stopping = true;
    for (int i = 0; i < nconns; i++)
        if (conns[i].ws)
            mcpd_ws_close(conns[i].ws, 1000, "swarm done");
    uv_close((uv_handle_t *)&hold, NULL);
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_close((uv_handle_t *)&sig, NULL);
}

static void on_hold(uv_timer_t *t)
{
    (void)t;
    stop();
}

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    printf("PARTIAL %d\n", nlisted);
    fflush(stdout);
    ready_printed = true;
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    stop();
}

int main(int argc, char **argv)
{
    char line[256];
    unsigned hold_s = 10;
    FILE *f;

    if (argc < 4) {
        fprintf(stderr, "usage: agent_swarm URL KEYFILE N [SECONDS]\n");
        return 2;
    }
    url = argv[1];
    nconns = atoi(argv[3]);
    if (argc > 4)
        hold_s = (unsigned)atoi(argv[4]);
    if (nconns <= 0 || (f = fopen(argv[2], "r")) == NULL) {
        fprintf(stderr, "agent_swarm: bad N or key file\n");
        return 2;
    }
    conns = calloc((size_t)nconns, sizeof(*conns));
    for (int i = 0; i < nconns; i++) {
        if (fgets(line, sizeof(line), f) == NULL) {
            fprintf(stderr, "agent_swarm: only %d keys in the file\n", i);
            return 2;
        }
        line[strcspn(line, "\r\n")] = '\0';
        snprintf(conns[i].auth, sizeof(conns[i].auth), "Authorization: Bearer %s", line);
        conns[i].idx = i;
    }
    fclose(f);
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    uv_timer_init(loop, &hold);
    uv_timer_init(loop, &deadline);
    uv_signal_init(loop, &sig);
    uv_signal_start(&sig, on_signal, SIGTERM);
    uv_timer_start(&deadline, on_deadline, 60000, 0);
    dial_more();
    /* Hold: started once READY (check_ready), or after the deadline. */
    while (uv_run(loop, UV_RUN_ONCE)) {
        if (ready_printed && !stopping && !uv_is_active((uv_handle_t *)&hold))
            uv_timer_start(&hold, on_hold, hold_s * 1000u, 0);
    }
    free(conns);
    return 0;
}
