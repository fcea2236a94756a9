/*
 * main.c - the mcpd command line: argv, config load, wiring of transports
 * and adapters into the daemon, run loop, exit code. Nothing else.
 *
 *   mcpd serve -c FILE [--listen HOST:PORT] [--port-file F]   streamable HTTP + legacy SSE
 *   mcpd stdio -c FILE                                       MCP on stdin/stdout
 *   mcpd config check -c FILE                                validate only
 *   mcpd catalog -c FILE [--json]                            merged tool list
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapters.h"
#include "mcpd/config.h"
#include "mcpd/daemon.h"
#include "mcpd/error.h"
#include "mcpd/log.h"
#include "transports/transports.h"

enum mode { MODE_SERVE, MODE_STDIO, MODE_CHECK, MODE_CATALOG };

struct options {
    enum mode mode;
    const char *config;
    const char *listen;
    const char *port_file;
    const char *log_level;
    bool json;
};

static struct {
    struct mcpd_transport *http;
    const char *port_file;
    bool json;
} run;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mcpd <command> [options]\n"
            "\n"
            "commands:\n"
            "  serve -c FILE          serve MCP over streamable HTTP at /mcp and legacy\n"
            "                         HTTP+SSE at /sse (listen: in FILE)\n"
            "  stdio -c FILE          serve MCP on stdin/stdout (for IDE launch); logs on stderr\n"
            "  config check -c FILE   validate FILE and exit\n"
            "  catalog -c FILE        start the servers, print the merged tool list, exit\n"
            "\n"
            "options:\n"
            "  -c, --config FILE      configuration (YAML, or JSON with \"mcpServers\")\n"
            "  --listen HOST:PORT     override listen: (serve)\n"
            "  --port-file FILE       write the bound HTTP port to FILE once listening\n"
            "  --log-level LEVEL      error|warn|info|debug|trace (overrides log_level:)\n"
            "  --json                 catalog as JSON\n"
            "  -h, --help             this text\n"
            "  -V, --version          print the version\n");
}

static int die(const char *fmt, const char *arg)
{
    fprintf(stderr, "mcpd: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return 2;
}

static int parse_args(struct options *o, int argc, char **argv)
{
    int i = 2;
    memset(o, 0, sizeof(*o));
    if (argc < 2)
        return die("%s", "no command given (try mcpd --help)");
    if (strcmp(argv[1], "serve") == 0) {
        o->mode = MODE_SERVE;
    } else if (strcmp(argv[1], "stdio") == 0) {
        o->mode = MODE_STDIO;
    } else if (strcmp(argv[1], "catalog") == 0) {
        o->mode = MODE_CATALOG;
    } else if (strcmp(argv[1], "config") == 0 && argc > 2 && strcmp(argv[2], "check") == 0) {
        o->mode = MODE_CHECK;
        i = 3;
    } else {
        return die("unknown command '%s' (try mcpd --help)", argv[1]);
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0)
            slot = &o->config;
        else if (strcmp(a, "--listen") == 0)
            slot = &o->listen;
        else if (strcmp(a, "--port-file") == 0)
            slot = &o->port_file;
        else if (strcmp(a, "--log-level") == 0)
            slot = &o->log_level;
        else if (strcmp(a, "--json") == 0) {
            o->json = true;
            continue;
        } else
            return die("unknown option '%s' (try mcpd --help)", a);
        if (i + 1 >= argc)
            return die("option '%s' needs a value", a);
        *slot = argv[++i];
    }
    if (o->config == NULL)
        return die("%s", "no configuration file given (-c FILE)");
    return 0;
}

/* --listen HOST:PORT or [V6]:PORT into the config. */
static int apply_listen(struct mcpd_config *cfg, const char *spec)
{
    const char *colon = strrchr(spec, ':');
    char *end;
    long port;
    size_t hl;

    if (colon == NULL || colon == spec)
        return -1;
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
        return -1;
    hl = (size_t)(colon - spec);
    if (spec[0] == '[') {
        if (hl < 3 || spec[hl - 1] != ']')
            return -1;
        spec++;
        hl -= 2;
    }
    free(cfg->listen_host);
    cfg->listen_host = strndup(spec, hl);
    cfg->listen_port = (int)port;
    return cfg->listen_host ? 0 : -1;
}

static void print_catalog(struct mcpd_daemon *d)
{
    const struct mcpd_catalog *cat = d->catalog;
    json_t *out = json_object(), *servers = json_array(), *tools = json_array();

    for (size_t i = 0; i < d->nups; i++) {
        struct mcpd_upstream *up = d->ups[i];
        size_t n = 0;
        for (size_t j = 0; cat && j < cat->count; j++)
            n += cat->entries[j].owner == up;
        json_array_append_new(servers,
                              json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "name", up->name, "kind",
                                        up->ops->kind, "state",
                                        up->cfg->enabled ? mcpd_upstream_state_name(up->state) : "disabled",
                                        "protocol", up->protocol_version, "tools", (json_int_t)n,
                                        "error", up->last_error));
    }
    for (size_t j = 0; cat && j < cat->count; j++) {
        const struct mcpd_catalog_entry *e = &cat->entries[j];
        json_array_append_new(tools, json_pack("{s:s, s:s, s:s, s:b}", "name", e->name, "resource",
                                               e->resource, "tool", e->tool, "renamed", e->renamed));
    }
    json_object_set_new(out, "servers", servers);
    json_object_set_new(out, "tools", tools);
    json_object_set(out, "collisions", cat ? cat->collisions : json_array());
    if (run.json) {
        char *s = json_dumps(out, JSON_INDENT(2));
        if (s)
            printf("%s\n", s);
        free(s);
    } else {
        size_t i;
        json_t *v;
        printf("%-24s %-8s %-13s %-6s %s\n", "SERVER", "KIND", "STATE", "TOOLS", "ERROR");
        json_array_foreach(servers, i, v)
        {
            printf("%-24s %-8s %-13s %-6lld %s\n", json_string_value(json_object_get(v, "name")),
                   json_string_value(json_object_get(v, "kind")),
                   json_string_value(json_object_get(v, "state")),
                   (long long)json_integer_value(json_object_get(v, "tools")),
                   json_string_value(json_object_get(v, "error")));
        }
        printf("\n%-40s %-24s %s\n", "TOOL", "FROM", "UPSTREAM NAME");
        json_array_foreach(tools, i, v)
        {
            printf("%-40s %-24s %s%s\n", json_string_value(json_object_get(v, "name")),
                   json_string_value(json_object_get(v, "resource")),
                   json_string_value(json_object_get(v, "tool")),
                   json_is_true(json_object_get(v, "renamed")) ? "  (renamed)" : "");
        }
        json_array_foreach(cat ? cat->collisions : NULL, i, v)
        {
            printf("collision: %s of %s left out (name %s taken by %s)\n",
                   json_string_value(json_object_get(v, "tool")),
                   json_string_value(json_object_get(v, "resource")),
                   json_string_value(json_object_get(v, "name")),
                   json_string_value(json_object_get(v, "kept_by")));
        }
    }
    fflush(stdout);
    json_decref(out);
}

static void on_started(struct mcpd_daemon *d)
{
    if (run.http && run.port_file) {
        FILE *f = fopen(run.port_file, "w");
        if (f) {
            fprintf(f, "%d\n", mcpd_http_transport_port(run.http));
            fclose(f);
        } else {
            LOG_ERROR("daemon", "cannot write port file %s: %s", run.port_file, strerror(errno));
        }
    }
    if (run.http == NULL && d->transports == NULL) { /* catalog mode */
        print_catalog(d);
        mcpd_daemon_shutdown(d);
    }
}

static int wire(struct mcpd_daemon *d, const struct options *o)
{
    struct mcpd_transport *tp = NULL;
    int r;
    for (size_t i = 0; i < d->cfg->nservers; i++) {
        struct mcpd_upstream *up;
        if ((r = mcpd_upstream_new_for(&up, d, &d->cfg->servers[i])) != 0 ||
            (r = mcpd_daemon_add_upstream(d, up)) != 0)
            return r;
    }
    if (o->mode == MODE_SERVE) {
        if ((r = mcpd_http_transport_new(&tp)) != 0)
            return r;
        run.http = tp;
        mcpd_daemon_add_transport(d, tp);
        if ((r = mcpd_sse_transport_new(&tp)) != 0)
            return r;
        mcpd_daemon_add_transport(d, tp);
    } else if (o->mode == MODE_STDIO) {
        if ((r = mcpd_stdio_transport_new(&tp)) != 0)
            return r;
        mcpd_daemon_add_transport(d, tp);
    }
    d->on_started = on_started;
    d->new_upstream = mcpd_upstream_new_for;
    return 0;
}

int main(int argc, char **argv)
{
    struct options o;
    struct mcpd_config *cfg = NULL;
    struct mcpd_diag diag;
    struct mcpd_daemon *d = NULL;
    uv_loop_t loop;
    int r, lvl;

    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0)) {
        printf("mcpd %s\n", MCPD_VERSION);
        return 0;
    }
    if ((r = parse_args(&o, argc, argv)) != 0)
        return r;
    if (mcpd_config_load(&cfg, o.config, &diag) != 0) {
        fprintf(stderr, "mcpd: %s\n", diag.msg);
        return 1;
    }
    if (o.listen && apply_listen(cfg, o.listen) != 0) {
        mcpd_config_free(cfg);
        return die("--listen needs HOST:PORT, got '%s'", o.listen);
    }
    if (o.mode == MODE_SERVE && cfg->listen_host == NULL) {
        mcpd_config_free(cfg);
        return die("%s", "serve needs a listen address (listen: in the config or --listen)");
    }
    if (o.mode == MODE_CHECK) {
        printf("%s: ok (%zu servers)\n", o.config, cfg->nservers);
        mcpd_config_free(cfg);
        return 0;
    }
    mcpd_log_level = cfg->log_level;
    if (o.log_level) {
        if ((lvl = mcpd_log_parse_level(o.log_level)) < 0) {
            mcpd_config_free(cfg);
            return die("unknown log level '%s'", o.log_level);
        }
        mcpd_log_level = lvl;
    }
    run.port_file = o.port_file;
    run.json = o.json;
    uv_loop_init(&loop);
    if ((r = mcpd_daemon_new(&d, &loop, cfg)) != 0 || (r = wire(d, &o)) != 0 ||
        (r = mcpd_daemon_start(d)) != 0) {
        fprintf(stderr, "mcpd: cannot start: %s\n", mcpd_strerror(r));
        return 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    r = d->exit_code;
    mcpd_daemon_free(d);
    if (uv_loop_close(&loop) != 0) {
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    return r;
}
