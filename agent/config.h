/*
 * config.h - the `mcpd agent` configuration (agent.yaml): where to dial,
 * the agent key, TLS, reconnect backoff, the builtins and the local stdio
 * MCP servers to bridge. Read with the daemon's YAML helpers, so diagnostics
 * read "[file:line:col] key 'x': reason" and unknown keys are errors.
 *
 * The file holds the agent key: mcpd_agent_config_load() refuses a file
 * that group or other may read or write. The key itself never appears in a
 * diagnostic.
 */
#ifndef MCPD_AGENT_CONFIG_H
#define MCPD_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "mcpd/config.h"

/* A bridged local stdio MCP server; its name is its group. */
struct mcpd_agent_server {
    char *name;
    char *command;
    char **args;
    size_t nargs;
    struct mcpd_kv *env;
    size_t nenv;
    char *cwd;
    json_t *dimensions; /* {"paths": ["path"], ...} for every tool of the group, or NULL */
};

struct mcpd_agent_config {
    char *server_url;  /* ws://host:port/agent or wss://... */
    char *agent_key;   /* ak_<48 hex>; secret */
    char *name;        /* informational */
    char *tls_ca_file; /* relative to the config file's folder */
    bool tls_verify;
    unsigned reconnect_min_ms, reconnect_max_ms;
    unsigned ping_interval_ms, ping_timeout_ms; /* the agent's own pings to mcpd */
    unsigned call_timeout_ms;                   /* bridged calls */
    /* builtins */
    bool sysinfo_enabled;
    bool fileops_enabled;
    char **roots; /* canonical (realpath) after load */
    size_t nroots;
    size_t fileops_max_bytes;
    bool shell_enabled;
    char **commands; /* command globs ("git status", "ls *") */
    size_t ncommands;
    unsigned shell_timeout_ms;
    size_t shell_max_output;
    struct mcpd_agent_server *servers;
    size_t nservers;
    int log_level; /* -1: not set */
};

/*
 * Parses data[0..len) (YAML) named `name` in diagnostics. Returns 0 with
 * *out (new; mcpd_agent_config_free) or MCPD_ECONFIG / MCPD_ENOMEM with
 * diag filled. Does not check file permissions.
 */
int mcpd_agent_config_parse(struct mcpd_agent_config **out, const char *name, const char *data,
                            size_t len, struct mcpd_diag *diag);
/* Reads and parses a file; refuses it when group or other may read or write it. */
int mcpd_agent_config_load(struct mcpd_agent_config **out, const char *path,
                           struct mcpd_diag *diag);
void mcpd_agent_config_free(struct mcpd_agent_config *cfg);

/* True for a valid group name: ^[a-z0-9][a-z0-9-]{0,31}$. */
bool mcpd_agent_group_is_valid(const char *s);

#endif
