/*
 * config.h - the validated configuration of one mcpd process.
 *
 * config.c is the only file that sees YAML (libyaml) or the imported
 * "mcpServers" JSON shape. What it produces is fully validated: every other
 * module trusts these values. Diagnostics read "file:line:col: key 'x': reason".
 *
 * Contract (examples/mcpd.yaml documents every key):
 *
 *   listen: 127.0.0.1:8080          # host:port or [v6]:port; streamable HTTP at http.path
 *   listen:                          # or a mapping, for TLS (https and wss on one port):
 *     address: 127.0.0.1:8443
 *     tls: { cert: FILE, key: FILE } # PEM; relative to the config file; the key file must
 *                                    # not be readable by group or others
 *   http:
 *     path: /mcp
 *     allowed_origins: ["http://localhost:*"]   # Origin globs besides the listen host
 *     allowed_hosts: ["localhost", "127.0.0.1", "[::1]"]  # Host header values (port ignored)
 *   log_level: info                  # error|warn|info|debug|trace
 *   servers:
 *     remote:                        # a remote MCP server: url instead of command
 *       url: https://host/mcp
 *       headers: { Authorization: "Bearer ${TOKEN}" }
 *       transport: auto              # auto | streamable-http | sse
 *       connect_timeout: 5s
 *       tls_verify: true
 *     files:                         # resource name ^[a-z0-9][a-z0-9-]{0,31}$
 *       command: npx                 # PATH lookup; a relative path with '/' is made absolute
 *       args: ["-y", "pkg"]          #   against mcpd's working directory at load time
 *       env: { KEY: value }
 *       cwd: /some/dir
 *       timeout: 30s                 # per-call deadline (ms, s or m suffix; capped)
 *       enabled: true
 *       share: shared                # shared: one upstream session for every client (default);
 *                                    # per-client: one process per client session, which
 *                                    # gets that client's capabilities (sampling,
 *                                    # elicitation, roots) and its server->client requests
 *       dimensions: { paths: [path, source] }  # which arguments each dimension constrains
 *   catalog: { separator: "__", prefix: auto }   # auto | always | never
 *   store: mcpd.db                   # sqlite file (bot keys, audit), relative to the config file
 *   audit: { enabled: true, retain: 30d, max_rows: 1000000, max_args: 64KiB }
 *   auth: { default_bot: alice }     # the bot of stdio clients (mcpd stdio --bot overrides)
 *   roles:
 *     reader:
 *       - { resource: files, tools: ["read_*"], paths: ["/srv/data/<double star>"] }
 *   bots:
 *     alice:
 *       roles: [reader]
 *       bindings:
 *         - { resource: "*", tools: ["*"], commands: ["git status"] }
 *   limits:
 *     max_message: 4MiB
 *     max_sessions: 1000
 *     max_inflight: 32               # per session
 *     session_idle: 30m
 *     header_timeout: 10s
 *     body_timeout: 30s
 *     idle_timeout: 60s
 *     max_connections: 1024
 *     page_size: 500
 *
 * Scalars may use ${VAR} and ${VAR:-default}; an unset VAR without default
 * is an error naming the variable. A JSON file (by content: first non-space
 * byte '{') with a top-level "mcpServers" object is accepted too; its entries
 * have command/args/env/cwd (and "type": "stdio"); its strings are taken
 * verbatim, without ${VAR} expansion.
 *
 * YAML details: `$$` is a literal '$', a lone '$' not followed by '{' is
 * literal, and a ${VAR:-default} default runs to the first '}' (taken
 * literally, no nesting); the default applies when VAR is unset or empty. A
 * null value (`key:` or `key: ~`) means the key is absent. Anchors may be
 * defined but a node may not be used twice (no aliases). Booleans are
 * exactly true/false. Sizes are bytes or a B/KiB/MiB/GiB suffix (1024-based;
 * KB/MB are rejected). Durations are ms/s/m/h or bare milliseconds.
 */
#ifndef MCPD_CONFIG_H
#define MCPD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* Caps of the loader itself (kept here until limits.h takes them). */
#ifndef MCPD_MAX_CONFIG_VALUE
#define MCPD_MAX_CONFIG_VALUE (64u * 1024) /* one scalar after ${VAR} expansion */
#endif
#ifndef MCPD_MAX_CONFIG_ITEMS
#define MCPD_MAX_CONFIG_ITEMS 1024u /* entries of one list or mapping (args, env, ...) */
#endif

enum mcpd_prefix_mode {
    MCPD_PREFIX_AUTO = 0, /* prefix only when more than one server */
    MCPD_PREFIX_ALWAYS,
    MCPD_PREFIX_NEVER,
};

struct mcpd_plugin_config;

struct mcpd_kv {
    char *key;
    char *value;
};

/* How a remote (url) server is spoken to. */
enum mcpd_remote_transport {
    MCPD_REMOTE_AUTO = 0,   /* streamable HTTP, falling back to legacy SSE on 400/404/405 */
    MCPD_REMOTE_STREAMABLE, /* streamable HTTP only */
    MCPD_REMOTE_SSE,        /* legacy HTTP+SSE (2024-11-05) only */
};

/* Which revision an upstream is spoken to in (servers.<x>.protocol). */
enum mcpd_upstream_era {
    MCPD_SPEAK_AUTO = 0, /* initialize; 2026-07-28 when the server refuses it naming that one */
    MCPD_SPEAK_LEGACY,   /* initialize only (2024-11-05 ... 2025-11-25) */
    MCPD_SPEAK_MODERN,   /* 2026-07-28: server/discover, _meta on every request, MRTR */
};

/* Top-level sections a file may have (the keys of config.c's top_fields, and mcpServers). */
#define MCPD_CONFIG_SECTIONS 20

/* A list of strings. */
struct mcpd_strv {
    char **v;
    size_t n;
};

/* dimension name -> patterns, in a binding */
struct mcpd_dim_config {
    char *name;
    struct mcpd_strv patterns;
};

/* One binding of a bot or role (see policy/policy.h for the semantics). */
struct mcpd_binding_config {
    char *resource; /* glob over resource names */
    struct mcpd_strv tools, prompts, uris;
    bool has_tools, has_prompts, has_uris;
    struct mcpd_dim_config *dims;
    size_t ndims;
    char *id; /* "bots.alice.bindings[0]" */
};

struct mcpd_role_config {
    char *name;
    struct mcpd_binding_config *bindings;
    size_t nbindings;
};

struct mcpd_bot_config {
    char *name;
    struct mcpd_strv roles;
    struct mcpd_binding_config *bindings;
    size_t nbindings;
};

/* dimension -> the arguments of a server's tools it constrains */
struct mcpd_dim_args_config {
    char *dimension;
    struct mcpd_strv args;
};

struct mcpd_server_config {
    char *name;    /* resource name, validated */
    char *command; /* executable (absolute when it contained a '/') */
    char **args;   /* nargs entries, not NULL-terminated */
    size_t nargs;
    struct mcpd_kv *env; /* merged over mcpd's own environment at spawn */
    size_t nenv;
    char *cwd;           /* NULL: inherit */
    unsigned timeout_ms; /* per-call deadline, 1..MCPD_MAX_CALL_TIMEOUT_MS */
    bool enabled;
    bool per_client; /* share: per-client */
    enum mcpd_upstream_era era;
    /* remote servers (url instead of command) */
    char *url;               /* http:// or https:// */
    struct mcpd_kv *headers; /* sent with every request, e.g. Authorization */
    size_t nheaders;
    enum mcpd_remote_transport transport;
    unsigned connect_timeout_ms;
    bool tls_verify;                   /* default true */
    struct mcpd_dim_args_config *dims; /* dimensions: {paths: [path, source], ...} */
    size_t ndims;
    int line, column; /* where the entry starts, for later diagnostics */
    /* plugins.<name> entries become servers too (borrowed from mcpd_config.plugins) */
    const struct mcpd_plugin_config *plugin;
    char *credential; /* servers.<x>.credential: a credential name in the store (credentials.h) */
};

/* oauth_providers.<name> (see config_cred.c and examples/mcpd.yaml). */
struct mcpd_oauth_provider_config {
    char *name;
    char *authorize_url;            /* authorization code flow */
    char *token_url;                /* required */
    char *device_authorization_url; /* device flow */
    char *client_id;                /* required */
    struct mcpd_strv scopes;
    char *callback_url;             /* redirect_uri; default http://<listen>/oauth/callback */
    char *client_secret_credential; /* an api_key credential holding the client secret; NULL:
                                     * a public client (token endpoint auth "none") */
    char *grant; /* default flow of `authorize`: code | device | client_credentials */
    int line, column;
};

struct mcpd_limits_config {
    size_t max_message;
    unsigned max_sessions;
    unsigned max_inflight;
    unsigned max_connections;
    unsigned page_size;
    unsigned session_idle_ms;
    unsigned input_wait_ms; /* MRTR: how long a call waits for a modern client's retry */
    unsigned header_timeout_ms;
    unsigned body_timeout_ms;
    unsigned idle_timeout_ms;
};

struct mcpd_config {
    char *path;             /* file it was loaded from */
    char *listen_host;      /* NULL when no listen key (stdio-only use); IPv6 without [] */
    int listen_port;        /* 0..65535 (0 = ephemeral) */
    char *listen_tls_cert;  /* PEM chain; NULL: plain HTTP. Absolute or config-relative */
    char *listen_tls_key;   /* PEM private key; set iff listen_tls_cert is */
    char *http_path;        /* default "/mcp" */
    char **allowed_origins; /* globs ('*' matches any run of characters) */
    size_t nallowed_origins;
    char **allowed_hosts; /* Host header names, port stripped before match; when the key
                           * is absent: localhost, 127.0.0.1, [::1] and the listen host
                           * (bracketed if IPv6) */
    size_t nallowed_hosts;
    int log_level;                      /* enum mcpd_log_level */
    struct mcpd_server_config *servers; /* in file order */
    size_t nservers;
    char *separator; /* default "__" */
    enum mcpd_prefix_mode prefix;
    struct mcpd_limits_config limits;
    /* bots and policy (an empty `bots` means no authentication and no policy) */
    struct mcpd_bot_config *bots;
    size_t nbots;
    struct mcpd_role_config *roles;
    size_t nroles;
    char *default_bot;                  /* auth.default_bot: the bot of stdio clients */
    char *store_path;                   /* store: sqlite file for keys and the audit */
    bool audit_enabled;                 /* audit.enabled (default: true when there are bots) */
    bool audit_set;                     /* audit.enabled was given */
    unsigned long long audit_retain_ms; /* audit.retain (0: keep) */
    unsigned long long audit_max_rows;  /* audit.max_rows (0: no cap) */
    size_t audit_max_args;              /* audit.max_args (default 64 KiB) */
    bool audit_sync_full;  /* audit.sync: full (fsync each commit) | normal (default) */
    bool audit_chain_hmac; /* audit.chain: hmac (keyed by the master key) | sha256 (default) */
    /* agents: connected agents (GET /agent is served when the section is present) */
    bool agents_enabled;
    unsigned agent_ping_interval_ms; /* agents.ping_interval (default 30 s) */
    unsigned agent_ping_timeout_ms;  /* agents.ping_timeout: no pong within -> dropped (40 s) */
    unsigned agent_call_timeout_ms;  /* agents.call_timeout: per-call deadline (30 s) */
    size_t agent_max_message;        /* agents.max_message: one WebSocket message (4 MiB) */
    struct mcpd_agent_timeout {      /* agents.call_timeouts: {<agent>-<group>: duration} */
        char *resource;
        unsigned ms;
    } * agent_timeouts;
    size_t nagent_timeouts;
    struct mcpd_plugin_config *plugins; /* plugins.<name> (mcpd/manifest.h), in file order */
    size_t nplugins;
    /* credentials (config_cred.c) */
    char *master_key_file; /* master_key_file: (default <store>.key); MCPD_MASTER_KEY wins */
    struct mcpd_oauth_provider_config *oauth_providers;
    size_t noauth_providers;
    /*
     * What the file said, per top-level key: a SHA-256 of the section's YAML
     * as written (before ${VAR} expansion), so a reload can tell which
     * sections changed. A JSON (mcpServers) file is one section, "mcpServers".
     */
    struct mcpd_config_section {
        char key[24];
        unsigned char digest[32];
    } sections[MCPD_CONFIG_SECTIONS];
    size_t nsections;
};

/*
 * The top-level keys whose sections differ between a and b (present in one
 * only, or written differently), comma-separated into out; returns how many.
 */
size_t mcpd_config_changed(const struct mcpd_config *a, const struct mcpd_config *b, char *out,
                           size_t cap);

struct mcpd_diag {
    int line, column; /* 1-based, 0 when unknown */
    char msg[512];    /* "file:line:col: ..." ready to print */
};

/*
 * Loads and validates `path`. On success *out is a new config (free with
 * mcpd_config_free) and 0 is returned. On failure *out is NULL, diag->msg
 * holds one line, and MCPD_ECONFIG is returned (or MCPD_ENOMEM).
 */
int mcpd_config_load(struct mcpd_config **out, const char *path, struct mcpd_diag *diag);

/* Same, from a buffer; `name` is used in diagnostics. */
int mcpd_config_parse(struct mcpd_config **out, const char *name, const char *data, size_t len,
                      struct mcpd_diag *diag);

/* Frees a config; NULL is a no-op. */
void mcpd_config_free(struct mcpd_config *cfg);

/*
 * Parses a duration "250ms", "30s", "5m", "1h", or bare milliseconds. Returns
 * 0 and sets *ms, or MCPD_ECONFIG (leaving *ms alone) for anything else,
 * including 0, signs, spaces, fractions and values past UINT_MAX ms.
 */
int mcpd_config_parse_duration(const char *s, unsigned *ms);
/*
 * Parses a size "4MiB", "512KiB", "1024", "1024B", "2GiB" (1024-based only).
 * Returns 0 and sets *bytes, or MCPD_ECONFIG for anything else, including 0,
 * "KB"/"MB" and overflow.
 */
int mcpd_config_parse_size(const char *s, size_t *bytes);

/* True when name matches ^[a-z0-9][a-z0-9-]{0,31}$ (a server/resource name). Borrows name. */
bool mcpd_config_is_valid_name(const char *name);
/* The provider named `name`, or NULL. */
const struct mcpd_oauth_provider_config *mcpd_config_oauth_provider(const struct mcpd_config *cfg,
                                                                    const char *name);

#endif
