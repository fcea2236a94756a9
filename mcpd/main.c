/*
 * main.c - the mcpd command line: argv, config load, wiring of transports
 * and adapters into the daemon, run loop, exit code. Nothing else.
 *
 *   mcpd serve -c FILE [--listen HOST:PORT] [--port-file F]   streamable HTTP + legacy SSE
 *   mcpd stdio -c FILE [--listen HOST:PORT]                  MCP on stdin/stdout (+ GET /agent)
 *   mcpd config check -c FILE                                validate only
 *   mcpd catalog -c FILE [--json]                            merged tool list
 *   mcpd agent -c agent.yaml                                 the agent program (agent/)
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapters.h"
#include "agent/agent.h"
#include "mcpd/admin.h"
#include "mcpd/admin_credentials.h"
#include "mcpd/authz.h"
#include "mcpd/config.h"
#include "mcpd/daemon.h"
#include "mcpd/error.h"
#include "mcpd/listener.h"
#include "mcpd/log.h"
#include "mcpd/manifest.h"
#include "transports/transports.h"

enum mode {
    MODE_SERVE,
    MODE_STDIO,
    MODE_CHECK,
    MODE_CATALOG,
    MODE_EXPLAIN,
    MODE_BOTS,
    MODE_AUDIT,
    MODE_AGENTS,
    MODE_CREDENTIALS
};

struct options {
    enum mode mode;
    const char *config;
    const char *listen;
    const char *port_file;
    const char *log_level;
    const char *bot;
    const char *tool;
    const char *args;
    const char *since;
    const char *location;
    const char *limit;
    const char *verb; /* bots: create|list|...; audit: verify|query */
    const char *name; /* bots: the bot */
    bool json;
    struct mcpd_admin_cred_args cred; /* credentials */
};

static struct {
    struct mcpd_transport *http;
    const char *port_file;
    const char *bot, *tool, *args;
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
            "  stdio -c FILE          serve MCP on stdin/stdout (for IDE launch); logs on stderr;\n"
            "                         with agents: and a listen address, also GET /agent\n"
            "  config check -c FILE   validate FILE and exit\n"
            "  catalog -c FILE        start the servers, print the merged tool list, exit\n"
            "                         (--bot NAME: only what that bot sees)\n"
            "  policy explain -c FILE --bot B --tool T [--args JSON]\n"
            "                         allow or deny, and the binding and pattern that decided\n"
            "  bots create|rotate|disable|enable|delete NAME -c FILE\n"
            "  bots list -c FILE      manage bot keys (shown once, stored as hashes)\n"
            "  agents create|rotate|disable|enable|delete NAME -c FILE\n"
            "  agents list -c FILE [--json]\n"
            "                         manage connected agents (keys shown once, stored as hashes)\n"
            "  audit -c FILE [--since 1h|ISO] [--bot B] [--tool T] [--location L] [--json]\n"
            "  audit verify -c FILE   check the audit log's hash chain\n"
            "  agent -c agent.yaml    run the agent program: dial mcpd's /agent and serve this\n"
            "                         machine's builtins and local MCP servers\n"
            "  plugin pack DIR OUT.mst  check DIR/manifest.yaml and pack DIR as a .mst archive\n"
            "  plugin check DIR|FILE.mst  check a plugin package's manifest\n"
            "  credentials add NAME --kind api_key|bearer -c FILE   (secret from stdin)\n"
            "  credentials add NAME --kind oauth2 --provider P -c FILE\n"
            "  credentials list|show NAME|delete NAME|refresh NAME -c FILE\n"
            "  credentials authorize NAME [--device|--client-credentials] -c FILE\n"
            "\n"
            "options:\n"
            "  -c, --config FILE      configuration (YAML, or JSON with \"mcpServers\")\n"
            "  --listen HOST:PORT     override listen: (serve; stdio: for GET /agent)\n"
            "  --port-file FILE       write the bound HTTP port to FILE once listening\n"
            "  --log-level LEVEL      error|warn|info|debug|trace (overrides log_level:)\n"
            "  --json                 catalog or audit as JSON\n"
            "  --bot NAME             the bot (stdio clients; catalog and explain views)\n"
            "  -h, --help             this text\n"
            "  -V, --version          print the version\n");
}

__attribute__((format(printf, 1, 2))) static int die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "mcpd: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
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
    } else if (strcmp(argv[1], "policy") == 0 && argc > 2 && strcmp(argv[2], "explain") == 0) {
        o->mode = MODE_EXPLAIN;
        i = 3;
    } else if (strcmp(argv[1], "bots") == 0) {
        o->mode = MODE_BOTS;
        if (argc < 3 || argv[2][0] == '-')
            return die("%s", "bots needs a verb: create|list|rotate|disable|enable|delete");
        o->verb = argv[2];
        i = 3;
        if (strcmp(o->verb, "list") != 0) {
            if (argc < 4 || argv[3][0] == '-')
                return die("bots %s needs a bot name", o->verb);
            o->name = argv[3];
            i = 4;
        }
    } else if (strcmp(argv[1], "agents") == 0) {
        o->mode = MODE_AGENTS;
        if (argc < 3 || argv[2][0] == '-')
            return die("%s", "agents needs a verb: create|list|rotate|disable|enable|delete");
        o->verb = argv[2];
        i = 3;
        if (strcmp(o->verb, "list") != 0) {
            if (argc < 4 || argv[3][0] == '-')
                return die("agents %s needs an agent name", o->verb);
            o->name = argv[3];
            i = 4;
        }
    } else if (strcmp(argv[1], "credentials") == 0) {
        o->mode = MODE_CREDENTIALS;
        if (argc < 3 || argv[2][0] == '-')
            return die("%s", "credentials needs a verb: add|list|show|delete|authorize|refresh");
        o->cred.verb = argv[2];
        i = 3;
        if (strcmp(o->cred.verb, "list") != 0) {
            if (argc < 4 || argv[3][0] == '-')
                return die("credentials %s needs a credential name", o->cred.verb);
            o->cred.name = argv[3];
            i = 4;
        }
    } else if (strcmp(argv[1], "audit") == 0) {
        o->mode = MODE_AUDIT;
        o->verb = "query";
        if (argc > 2 && argv[2][0] != '-') {
            o->verb = argv[2];
            i = 3;
        }
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
        else if (strcmp(a, "--bot") == 0)
            slot = &o->bot;
        else if (strcmp(a, "--tool") == 0)
            slot = &o->tool;
        else if (strcmp(a, "--args") == 0)
            slot = &o->args;
        else if (strcmp(a, "--since") == 0)
            slot = &o->since;
        else if (strcmp(a, "--location") == 0)
            slot = &o->location;
        else if (strcmp(a, "--limit") == 0)
            slot = &o->limit;
        else if (strcmp(a, "--kind") == 0)
            slot = &o->cred.kind;
        else if (strcmp(a, "--provider") == 0)
            slot = &o->cred.provider;
        else if (strcmp(a, "--device") == 0 || strcmp(a, "--client-credentials") == 0) {
            *(a[2] == 'd' ? &o->cred.device : &o->cred.client_credentials) = true;
            continue;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
            o->cred.json = true;
            continue;
        } else
            return die("unknown option '%s' (try mcpd --help)", a);
        if (i + 1 >= argc)
            return die("option '%s' needs a value", a);
        *slot = argv[++i];
    }
    if (o->config == NULL)
        return die("%s", "no configuration file given (-c FILE)");
    if (o->mode == MODE_EXPLAIN && (o->bot == NULL || o->tool == NULL))
        return die("%s", "policy explain needs --bot NAME and --tool TOOL (and --args JSON)");
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

static void on_started(struct mcpd_daemon *d)
{
    /* stdio with agents listens too: the port is the listener's */
    if (run.port_file && (run.http || mcpd_listener_port(d) > 0)) {
        FILE *f = fopen(run.port_file, "w");
        if (f) {
            fprintf(f, "%d\n",
                    run.http ? mcpd_http_transport_port(run.http) : mcpd_listener_port(d));
            fclose(f);
        } else {
            LOG_ERROR("daemon", "cannot write port file %s: %s", run.port_file, strerror(errno));
        }
    }
    if (run.http == NULL && d->transports == NULL) { /* catalog or explain */
        if (run.tool)
            d->exit_code = mcpd_admin_explain(d, run.bot, run.tool, run.args);
        else
            d->exit_code = mcpd_admin_print_catalog(d, run.bot, run.json);
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
    /* GET /agent: with serve, and with stdio when there is a listen address */
    d->new_agent_upstream = mcpd_agent_upstream_new;
    d->serve_agents = o->mode == MODE_SERVE || o->mode == MODE_STDIO;
    return 0;
}

static void on_sigxfsz(int sig)
{
    (void)sig;
}

int main(int argc, char **argv)
{
    /*
     * A write past RLIMIT_FSIZE then fails with EFBIG (the audit refuses
     * from then on) instead of killing mcpd, for the whole life of the
     * process, shutdown and journal recovery included. A handler, not
     * SIG_IGN: execve() resets it, so children get the default.
     */
    struct sigaction xfsz = { .sa_handler = on_sigxfsz, .sa_flags = SA_RESTART };
    struct options o;
    struct mcpd_config *cfg = NULL;
    struct mcpd_diag diag;
    struct mcpd_daemon *d = NULL;
    uv_loop_t loop;
    int r, lvl;

    sigemptyset(&xfsz.sa_mask);
    sigaction(SIGXFSZ, &xfsz, NULL);
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0)) {
        printf("mcpd %s\n", MCPD_VERSION);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "agent") == 0)
        return mcpd_agent_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "plugin") == 0)
        return mcpd_mst_cli(argc, argv);
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
    if (o.mode == MODE_AGENTS) {
        r = mcpd_admin_agents(cfg, o.verb, o.name, o.json);
        mcpd_config_free(cfg);
        return r;
    }
    if (o.mode == MODE_CREDENTIALS) {
        r = mcpd_admin_credentials(cfg, &o.cred);
        mcpd_config_free(cfg);
        return r;
    }
    if (o.mode == MODE_BOTS || o.mode == MODE_AUDIT) {
        struct mcpd_audit_query q = {
            .bot = o.bot, .tool = o.tool, .location = o.location, .json = o.json
        };
        if (o.mode == MODE_BOTS) {
            r = mcpd_admin_bots(cfg, o.verb, o.name);
        } else if (mcpd_admin_parse_since(o.since, &q.since_ms) != 0 ||
                   mcpd_admin_parse_limit(o.limit, &q.limit) != 0) {
            r = die("%s",
                    "--since takes a duration (90m, 12h, 7d) or an ISO date; --limit a number");
        } else {
            r = mcpd_admin_audit(cfg, o.verb, &q);
        }
        mcpd_config_free(cfg);
        return r;
    }
    if (o.mode == MODE_CHECK) {
        char err[512];
        if (mcpd_authz_check_config(cfg, err, sizeof(err)) != 0) {
            fprintf(stderr, "mcpd: %s: %s\n", o.config, err);
            mcpd_config_free(cfg);
            return 1;
        }
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
    run.bot = o.bot;
    run.tool = o.mode == MODE_EXPLAIN ? o.tool : NULL;
    run.args = o.args;
    uv_loop_init(&loop);
    if ((r = mcpd_daemon_new(&d, &loop, cfg)) == 0)
        d->stdio_bot = o.bot;
    if (r != 0 || (r = wire(d, &o)) != 0 || (r = mcpd_daemon_start(d)) != 0) {
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
