/*
 * manifest.h - plugin packages: manifest.yaml, .mst archives, URL templates.
 *
 * A plugin is a directory or a `.mst` archive (tar.gz) holding manifest.yaml:
 *
 *   name: github                     # ^[a-z0-9][a-z0-9-]{0,31}$
 *   version: 1.0.0
 *   description: GitHub issues and pull requests
 *   config:                          # JSON Schema subset for plugins.<x>.config:
 *     type: object                   #   properties with a type, required keys
 *     properties: { api_base: { type: string } }
 *     required: [api_base]
 *   auth:                            # the methods the plugin accepts (default: none)
 *     - { type: none }
 *     - { type: bearer }
 *     - { type: api_key, in: header, name: X-Api-Key }     # in: header | query
 *     - { type: oauth2, authorize_url: ..., token_url: ..., device_url: ..., scopes: [repo] }
 *   dimensions: { repos: [repo] }    # dimension -> the arguments it constrains
 *   operations:                      # declarative HTTP operations (or `exec`, not both)
 *     issue.read:
 *       description: Read one issue
 *       input: { type: object, properties: {...}, required: [...] }   # JSON Schema
 *       method: GET                  # GET HEAD POST PUT PATCH DELETE
 *       url: "{config.api_base}/repos/{+repo}/issues/{number}"
 *       query: [state]               # arguments sent as query parameters
 *       body: [title]                # arguments sent as a JSON object body
 *       headers: { Accept: "application/vnd.github+json", X-Org: "{config.org}" }
 *       response: { text: /title }   # JSON pointer of the text (default: the whole body)
 *   exec: { command: bin/server, args: [--stdio] }   # an MCP server over stdio
 *
 * URL templates: `{arg}` is the argument, percent-encoded as ONE path segment
 * ('/' becomes %2F); `{+arg}` keeps '/' between segments, each segment
 * encoded, and refuses empty, "." and ".." segments; `{config.key}` is the
 * operator's plugin config value, inserted verbatim (it may hold a base URL).
 * A template must start with http://, https:// or `{config.key}`. Manifest
 * strings are literal: no ${VAR} expansion.
 */
#ifndef MCPD_MANIFEST_H
#define MCPD_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "buf.h"
#include "config.h"
#include "net/egress.h"

enum mcpd_auth_type {
    MCPD_AUTH_NONE = 1,
    MCPD_AUTH_API_KEY,
    MCPD_AUTH_BEARER,
    MCPD_AUTH_OAUTH2,
};

struct mcpd_manifest_auth {
    enum mcpd_auth_type type;
    bool in_query;                                /* api_key: query parameter (else header) */
    char *param;                                  /* api_key: header or query parameter name */
    char *authorize_url, *token_url, *device_url; /* oauth2 */
    struct mcpd_strv scopes;                      /* oauth2 default scopes */
};

struct mcpd_manifest_op {
    char *name;        /* as in the manifest, e.g. "issue.read" */
    char *description; /* may be NULL */
    json_t *input;     /* input schema (an object schema) */
    char *method;
    char *url; /* template, validated */
    struct mcpd_strv query, body;
    struct mcpd_kv *headers;
    size_t nheaders;
    char *text_pointer; /* response.text or NULL */
};

struct mcpd_manifest {
    char *name, *version, *description;
    json_t *config_schema; /* NULL: the plugin takes no config */
    struct mcpd_manifest_auth *auth;
    size_t nauth;
    struct mcpd_dim_args_config *dims;
    size_t ndims;
    struct mcpd_manifest_op *ops;
    size_t nops;
    char *exec_command; /* NULL for declarative plugins */
    char **exec_args;
    size_t nexec_args;
};

/* plugins.<name> in mcpd.yaml */
struct mcpd_plugin_config {
    char *name;     /* resource name */
    char *source;   /* as configured, made absolute */
    char *dir;      /* the plugin directory (an extraction directory for .mst) */
    bool extracted; /* dir is ours: removed when the config is freed */
    struct mcpd_manifest *manifest;
    json_t *config;          /* plugins.<x>.config, validated against the schema ({} when absent) */
    char *credential;        /* credential name or NULL */
    struct mcpd_kv *aliases; /* allowedOperations: op -> exposed name (value may equal key) */
    size_t naliases;
    bool all_ops; /* allowedOperations absent */
    char **allowed_hosts;
    size_t nallowed_hosts;
    bool allow_private;
    struct mcpd_cidr *private_cidrs; /* egress.allowPrivateCidrs */
    size_t nprivate_cidrs;
    unsigned timeout_ms;
    bool enabled; /* default true */
    int line, column;
};

/*
 * Parses manifest text. `name` is used in diagnostics ("dir/manifest.yaml").
 * Returns 0 and a new manifest, or MCPD_ECONFIG/MCPD_ENOMEM with diag set.
 */
int mcpd_manifest_parse(struct mcpd_manifest **out, const char *name, const char *data, size_t len,
                        struct mcpd_diag *diag);
/* Loads dir/manifest.yaml (capped at MCPD_MAX_MANIFEST_FILE). */
int mcpd_manifest_load(struct mcpd_manifest **out, const char *dir, struct mcpd_diag *diag);
void mcpd_manifest_free(struct mcpd_manifest *m);

/* The operation named `name` (manifest name), or NULL. */
const struct mcpd_manifest_op *mcpd_manifest_find_op(const struct mcpd_manifest *m,
                                                     const char *name);

/*
 * Checks a URL template's syntax (see above). Returns NULL when valid, else a
 * static reason.
 */
const char *mcpd_manifest_check_template(const char *tmpl);

/*
 * Expands `tmpl` with the call's arguments `args` (borrowed object) and the
 * plugin config `config` (borrowed object; may be NULL) into out (capped at
 * MCPD_MAX_PLUGIN_URL). `encode` false inserts argument values without
 * percent-encoding (header values). Returns 0, or MCPD_EPROTO with a
 * message in err (missing argument, bad value type, bad segment), or
 * MCPD_ETOOBIG.
 */
int mcpd_manifest_expand(struct mcpd_buf *out, const char *tmpl, const json_t *args,
                         const json_t *config, bool encode, char *err, size_t errlen);

/* Appends s percent-encoded (everything but RFC 3986 unreserved characters). */
int mcpd_manifest_pct_encode(struct mcpd_buf *out, const char *s, size_t len);

/*
 * Validates `value` against the JSON Schema subset (type, properties with
 * type, required, additionalProperties: false). Returns NULL when valid, else
 * writes a reason to err and returns err.
 */
const char *mcpd_manifest_check_schema(const json_t *schema, const json_t *value, char *err,
                                       size_t errlen);

/*
 * Extracts a .mst archive (tar, optionally gzip) into the existing empty
 * directory dest. Refuses absolute paths, ".." segments, links, devices and
 * other non-regular entries, entries over MCPD_MAX_MST_ENTRY, totals over
 * MCPD_MAX_MST_TOTAL, more than MCPD_MAX_MST_ENTRIES entries. Returns 0 or
 * MCPD_ECONFIG with a one-line reason in err (the caller removes dest).
 */
int mcpd_mst_extract(const char *archive, const char *dest, char *err, size_t errlen);

/* Packs directory dir (regular files and directories only) into a .mst archive. */
int mcpd_mst_pack(const char *dir, const char *archive, char *err, size_t errlen);

/* `mcpd plugin pack DIR OUT.mst` and `mcpd plugin check DIR|FILE.mst`; returns the exit code. */
int mcpd_mst_cli(int argc, char **argv);

/*
 * Creates a new private extraction directory "$TMPDIR/mcpd-plugin-XXXXXX"
 * (/tmp without TMPDIR) into out. Returns 0 or -errno.
 */
int mcpd_mst_tempdir(char *out, size_t cap);

/* Removes a directory tree (extraction directories). */
void mcpd_mst_remove_tree(const char *dir);

#endif
