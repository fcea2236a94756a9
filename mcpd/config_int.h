/*
 * config_int.h - internals shared by the configuration reader's files
 * (config.c: the document, servers, limits; config_policy.c: bots, roles,
 * bindings, store and audit). Nothing outside mcpd/config*.c includes it.
 */
#ifndef MCPD_CONFIG_INT_H
#define MCPD_CONFIG_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <yaml.h>

#include "config.h"

#define KEY_PATH_MAX   192 /* "servers.<name>.env.<VAR>" and the like, truncated */
#define HTTP_PATH_MAX  256
#define YAML_MAX_DEPTH 32 /* mappings and lists inside each other */

struct ctx {
    const char *name;       /* file name used in diagnostics */
    struct mcpd_diag *diag; /* where the one error goes */
    struct mcpd_config *cfg;
    yaml_document_t *doc; /* NULL while importing JSON */
    unsigned char *used;  /* per node: already consumed (catches aliases) */
    size_t nnodes;
    bool hosts_set; /* http.allowed_hosts was given explicitly */
    bool literal;   /* no ${VAR} expansion (plugin manifests) */
};

/* One known key of a mapping and how to parse its value into base + off. */
struct field;
typedef int (*field_fn)(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                        void *base);
struct field {
    const char *key;
    field_fn fn;
    size_t off, off2;            /* target (and count, for lists) inside base */
    unsigned long long min, max; /* numeric range, where it applies */
    const struct field *sub;     /* nested table for sections */
};

#define AT(base, off, type) ((type *)(void *)((char *)(base) + (off)))

int mcpd__cfg_failat(struct ctx *c, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int mcpd__cfg_fail(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int mcpd__cfg_oom(struct ctx *c);
int mcpd__cfg_node_line(const yaml_node_t *n);
int mcpd__cfg_node_col(const yaml_node_t *n);
bool mcpd__cfg_is_null(const yaml_node_t *n);
const char *mcpd__cfg_node_kind(const yaml_node_t *n);
int mcpd__cfg_take_node(struct ctx *c, int idx, yaml_node_t **out);
void mcpd__cfg_join(char *dst, size_t size, const char *path, const char *key);
void mcpd__cfg_join_index(char *dst, size_t size, const char *path, size_t i);
const char *mcpd__cfg_in_path(char *dst, size_t size, const char *path);
int mcpd__cfg_scalar(struct ctx *c, const yaml_node_t *v, const char *path, char **out);
/*
 * A scalar that must be one of `words` (NULL-terminated, at most 4): *index
 * is its position. Anything else fails with "expected a, b or c, got 'x'".
 */
int mcpd__cfg_word(struct ctx *c, const yaml_node_t *v, const char *path, const char *const *words,
                   int *index);
int mcpd__cfg_check_mapping(struct ctx *c, yaml_node_t *n, const char *path, size_t max);
const char *mcpd__cfg_key_of(struct ctx *c, const yaml_node_pair_t *p, yaml_node_t **k);
int mcpd__cfg_walk_mapping(struct ctx *c, yaml_node_t *n, const char *path,
                           const struct field *table, void *base);
int mcpd__cfg_strlist(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                      void *base, bool tokens);
int mcpd__cfg_check_name(struct ctx *c, int line, int col, const char *name);
/* A relative *path (owned) joined to the configuration file's folder; NULL, absolute: unchanged. */
int mcpd__cfg_relative(struct ctx *c, char **path);
/* A non-empty path scalar into *out (the old value freed), relative to the configuration file. */
int mcpd__cfg_path(struct ctx *c, yaml_node_t *v, const char *path, char **out);
/* A zeroed context naming `name` in diagnostics, into diag (or scratch, when diag is NULL). */
void mcpd__cfg_ctx_init(struct ctx *c, const char *name, struct mcpd_diag *diag,
                        struct mcpd_diag *scratch);
/* How one kind of name -> string map checks its names and values (env, headers). */
typedef int (*mcpd__cfg_check_fn)(struct ctx *c, int line, int col, const char *path,
                                  const char *s);
/* A checker that accepts everything. */
int mcpd__cfg_no_check(struct ctx *c, int line, int col, const char *path, const char *s);
/* A YAML mapping of strings into (*arr, *n) (new array, its count), names and values checked. */
int mcpd__cfg_kvs(struct ctx *c, yaml_node_t *v, const char *path, struct mcpd_kv **arr, size_t *n,
                  mcpd__cfg_check_fn check_key, mcpd__cfg_check_fn check_value);
/* Frees n strings and their array. */
void mcpd__cfg_free_strv(char **v, size_t n);
struct mcpd_buf;
/* The whole of fd into b (initialised here, capped at MCPD_MAX_CONFIG_FILE; dispose it). */
int mcpd__cfg_read_fd(struct ctx *c, int fd, struct mcpd_buf *b);

int mcpd__cfg_f_bool(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base);
int mcpd__cfg_f_size(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base);
int mcpd__cfg_f_uint(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base);
int mcpd__cfg_f_duration(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                         void *base);
int mcpd__cfg_f_string(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                       void *base);
/* A list of strings (any text) into base + off, its count at base + off2. */
int mcpd__cfg_f_args(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base);
/* A nested mapping, walked against f->sub into the same base. */
int mcpd__cfg_f_section(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                        void *base);

/*
 * Parses one YAML document (prescan, single document, mapping at the top)
 * and walks it against `top` into `base`. c->name and c->diag must be set;
 * c->cfg may be NULL when no field of `top` needs it. The agent program's
 * reader (agent/config.c) uses it with its own table.
 */
int mcpd__cfg_parse_yaml(struct ctx *c, const char *data, size_t len, const struct field *top,
                         void *base);
/* Parses one YAML document (prescan, single document) and hands its root to walk. */
int mcpd__cfg_yaml_doc(struct ctx *c, const char *data, size_t len,
                       int (*walk)(struct ctx *c, yaml_node_t *root, void *arg), void *arg);

/* config_plugin.c: plugins.<name> entries; after the document, one server per plugin. */
int mcpd__cfg_f_plugins(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                        void *base);
int mcpd__cfg_finish_plugins(struct ctx *c);
void mcpd__cfg_free_plugins(struct mcpd_config *cfg);
/* A YAML node (consumed) as JSON: plain true/false/null/numbers typed, others strings. */
int mcpd__cfg_to_json(struct ctx *c, yaml_node_t *v, const char *path, int depth, json_t **out);

/* config_policy.c */
int mcpd__cfg_f_bots(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base);
int mcpd__cfg_f_roles(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                      void *base);
int mcpd__cfg_f_dimensions(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                           void *base);
extern const struct field mcpd__cfg_audit_fields[];
extern const struct field mcpd__cfg_auth_fields[];
int mcpd__cfg_f_store(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                      void *base);
/* After the whole document: cross-checks (roles exist, dimensions declared, ...). */
int mcpd__cfg_check_policy(struct ctx *c);
void mcpd__cfg_free_policy(struct mcpd_config *cfg);
void mcpd__cfg_free_dims(struct mcpd_dim_args_config *d, size_t n);

/* config_cred.c */
int mcpd__cfg_f_oauth_providers(struct ctx *c, yaml_node_t *v, const char *path,
                                const struct field *f, void *base);
int mcpd__cfg_f_master_key_file(struct ctx *c, yaml_node_t *v, const char *path,
                                const struct field *f, void *base);
int mcpd__cfg_f_credential(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                           void *base);
void mcpd__cfg_free_cred(struct mcpd_config *cfg);

#endif
