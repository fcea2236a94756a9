/*
 * config.c - loads and validates the mcpd configuration (see config.h).
 *
 * YAML is read twice with libyaml. An event pass (yaml_prescan) bounds the
 * nesting depth and refuses aliases; then the document API (yaml_parser_load)
 * builds the tree, which keeps a start mark on every node, so each diagnostic
 * carries file:line:col. The tree is walked against static key tables
 * (struct field): unknown keys, duplicate keys and wrong types are errors, and
 * a null value (`key:`, `key: ~`) means the key is absent. Every scalar value,
 * never a key, passes through ${VAR} / ${VAR:-default} expansion first.
 *
 * A file whose first non-space byte is '{' is read with jansson instead, as
 * the common {"mcpServers": {...}} import shape; its strings are taken
 * verbatim (no expansion), like the clients that wrote them.
 *
 * Both paths start from the defaults of limits.h and end in finish(), which
 * fills the derived defaults. The first error stops the load; *out is set
 * only on success, so nothing half-validated escapes this file.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <yaml.h>

#include "buf.h"
#include "config_int.h"
#include "error.h"
#include "limits.h"
#include "log.h"

/* ---- diagnostics ---------------------------------------------------------------------------- */

int mcpd__cfg_failat(struct ctx *c, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int mcpd__cfg_fail(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int mcpd__cfg_vfail(struct ctx *c, int line, int col, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

int mcpd__cfg_vfail(struct ctx *c, int line, int col, const char *fmt, va_list ap)
{
    struct mcpd_diag *d = c->diag;
    int n;

    d->line = line > 0 ? line : 0;
    d->column = line > 0 && col > 0 ? col : 0;
    if (d->line > 0 && d->column > 0)
        n = snprintf(d->msg, sizeof(d->msg), "%s:%d:%d: ", c->name, d->line, d->column);
    else if (d->line > 0)
        n = snprintf(d->msg, sizeof(d->msg), "%s:%d: ", c->name, d->line);
    else
        n = snprintf(d->msg, sizeof(d->msg), "%s: ", c->name);
    if (n < 0)
        n = 0;
    if ((size_t)n < sizeof(d->msg))
        vsnprintf(d->msg + n, sizeof(d->msg) - (size_t)n, fmt, ap);
    return MCPD_ECONFIG;
}

int mcpd__cfg_failat(struct ctx *c, int line, int col, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = mcpd__cfg_vfail(c, line, col, fmt, ap);
    va_end(ap);
    return rc;
}

int mcpd__cfg_node_line(const yaml_node_t *n)
{
    return n ? (int)n->start_mark.line + 1 : 0;
}

int mcpd__cfg_node_col(const yaml_node_t *n)
{
    return n ? (int)n->start_mark.column + 1 : 0;
}

/* Reports at the start of node n (no position when n is NULL). */
int mcpd__cfg_fail(struct ctx *c, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = mcpd__cfg_vfail(c, mcpd__cfg_node_line(n), mcpd__cfg_node_col(n), fmt, ap);
    va_end(ap);
    return rc;
}

int mcpd__cfg_oom(struct ctx *c)
{
    mcpd__cfg_failat(c, 0, 0, "out of memory");
    return MCPD_ENOMEM;
}

/* ---- scalar parsers ------------------------------------------------------------------------- */

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* Reads a run of decimal digits at *s into *v, failing past max; advances *s. */
static int parse_digits(const char **s, uint64_t max, uint64_t *v)
{
    const char *p = *s;
    uint64_t n = 0;

    if (!is_digit(*p))
        return -1;
    for (; is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (n > (max - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    *s = p;
    *v = n;
    return 0;
}

int mcpd_config_parse_duration(const char *s, unsigned *ms)
{
    static const struct {
        const char *suffix;
        unsigned mul;
    } units[] = { { "", 1 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 } };
    uint64_t v;

    if (s == NULL || parse_digits(&s, UINT_MAX, &v) != 0)
        return MCPD_ECONFIG;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(s, units[i].suffix) != 0)
            continue;
        if (v == 0 || v > UINT_MAX / units[i].mul)
            return MCPD_ECONFIG;
        *ms = (unsigned)(v * units[i].mul);
        return 0;
    }
    return MCPD_ECONFIG;
}

int mcpd_config_parse_size(const char *s, size_t *bytes)
{
    static const struct {
        const char *suffix;
        uint64_t mul;
    } units[] = {
        { "", 1 }, { "B", 1 }, { "KiB", 1ull << 10 }, { "MiB", 1ull << 20 }, { "GiB", 1ull << 30 }
    };
    uint64_t v;

    if (s == NULL || parse_digits(&s, SIZE_MAX, &v) != 0)
        return MCPD_ECONFIG;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(s, units[i].suffix) != 0)
            continue;
        if (v == 0 || v > SIZE_MAX / units[i].mul)
            return MCPD_ECONFIG;
        *bytes = (size_t)(v * units[i].mul);
        return 0;
    }
    return MCPD_ECONFIG;
}

bool mcpd_config_is_valid_name(const char *name)
{
    size_t n = 0;

    if (name == NULL)
        return false;
    for (const char *p = name; *p; p++, n++) {
        bool alnum = (*p >= 'a' && *p <= 'z') || is_digit(*p);
        if (!alnum && (n == 0 || *p != '-'))
            return false;
    }
    return n >= 1 && n <= 32;
}

static bool is_env_name(const char *s, size_t len)
{
    if (len == 0 || is_digit(s[0]))
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!(ch == '_' || is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
            return false;
    }
    return true;
}

/* ---- ${VAR} expansion ----------------------------------------------------------------------- */

/*
 * Expands one ${...} reference starting at in[0] == '$', in[1] == '{'.
 * The default runs to the first '}' and is taken literally (no nesting).
 * On success *used is the length of the reference.
 */
static int expand_ref(struct ctx *c, const yaml_node_t *n, const char *path, const char *in,
                      size_t len, struct mcpd_buf *b, size_t *used)
{
    const char *end = memchr(in + 2, '}', len - 2);
    const char *body = in + 2, *def = NULL, *val;
    size_t blen, nlen, dlen = 0;
    int rc;

    if (end == NULL)
        return mcpd__cfg_fail(c, n, "key '%s': unterminated '${' (write '$$' for a literal '$')",
                              path);
    blen = (size_t)(end - body);
    for (nlen = 0; nlen < blen && body[nlen] != ':'; nlen++)
        ;
    if (nlen < blen) {
        if (blen - nlen < 2 || body[nlen + 1] != '-')
            nlen = 0; /* "${X:foo}": not a form we know */
        def = body + nlen + 2;
        dlen = blen > nlen + 2 ? blen - nlen - 2 : 0;
    }
    if (!is_env_name(body, nlen))
        return mcpd__cfg_fail(
            c, n, "key '%s': bad variable reference '${%.*s}' (use ${VAR} or ${VAR:-default})",
            path, (int)(blen > 64 ? 64 : blen), body);
    {
        char name[256];
        if (nlen >= sizeof(name))
            return mcpd__cfg_fail(c, n, "key '%s': variable name too long", path);
        memcpy(name, body, nlen);
        name[nlen] = '\0';
        val = getenv(name);
    }
    if (def != NULL && (val == NULL || val[0] == '\0'))
        rc = mcpd_buf_append(b, def, dlen);
    else if (val != NULL)
        rc = mcpd_buf_append(b, val, strlen(val));
    else
        return mcpd__cfg_fail(
            c, n, "key '%s': environment variable '%.*s' is not set (use ${%.*s:-default})", path,
            (int)nlen, body, (int)nlen, body);
    if (rc == MCPD_ENOMEM)
        return mcpd__cfg_oom(c);
    if (rc != 0)
        return mcpd__cfg_fail(c, n, "key '%s': value exceeds %u bytes after expansion", path,
                              MCPD_MAX_CONFIG_VALUE);
    *used = (size_t)(end - in) + 1;
    return 0;
}

/* Expands ${VAR}, ${VAR:-default} and $$ in in[0..len) into a new string *out. */
static int expand(struct ctx *c, const yaml_node_t *n, const char *path, const char *in, size_t len,
                  char **out)
{
    struct mcpd_buf b;
    size_t i = 0, run, used = 0;
    int rc = 0;

    if (c->literal) { /* plugin manifests: taken verbatim, no ${VAR} from mcpd's environment */
        if (len > (size_t)MCPD_MAX_CONFIG_VALUE)
            return mcpd__cfg_fail(c, n, "key '%s': value exceeds %u bytes", path,
                                  MCPD_MAX_CONFIG_VALUE);
        if ((*out = strndup(in, len)) == NULL)
            return mcpd__cfg_oom(c);
        return 0;
    }
    mcpd_buf_init(&b, (size_t)MCPD_MAX_CONFIG_VALUE);
    while (i < len && rc == 0) {
        if (in[i] == '$' && i + 1 < len && in[i + 1] == '$') {
            rc = mcpd_buf_append(&b, "$", 1);
            used = 2;
        } else if (in[i] == '$' && i + 1 < len && in[i + 1] == '{') {
            if ((rc = expand_ref(c, n, path, in + i, len - i, &b, &used)) != 0)
                goto out;
        } else {
            /* A run of literal bytes; a lone '$' is literal too. */
            for (run = 1; i + run < len && in[i + run] != '$'; run++)
                ;
            rc = mcpd_buf_append(&b, in + i, run);
            used = run;
        }
        i += used;
    }
    if (rc == MCPD_ENOMEM) {
        rc = mcpd__cfg_oom(c);
        goto out;
    }
    if (rc != 0) {
        rc = mcpd__cfg_fail(c, n, "key '%s': value exceeds %u bytes after expansion", path,
                            MCPD_MAX_CONFIG_VALUE);
        goto out;
    }
    *out = b.p ? mcpd_buf_steal(&b, NULL) : strdup("");
    if (*out == NULL)
        rc = mcpd__cfg_oom(c);
out:
    mcpd_buf_dispose(&b);
    return rc;
}

/* ---- YAML node helpers ---------------------------------------------------------------------- */

const char *mcpd__cfg_node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a string";
    }
}

bool mcpd__cfg_is_null(const yaml_node_t *n)
{
    const char *v;

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    v = (const char *)n->data.scalar.value;
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/*
 * Fetches node idx and marks it consumed. A second use would mean an alias;
 * the prescan refuses those already, so this only backs it up (an aliased
 * tree could otherwise make the walk exponential).
 */
int mcpd__cfg_take_node(struct ctx *c, int idx, yaml_node_t **out)
{
    yaml_node_t *n = yaml_document_get_node(c->doc, idx);

    *out = NULL;
    if (n == NULL || (size_t)idx > c->nnodes)
        return mcpd__cfg_failat(c, 0, 0, "internal error: bad YAML node %d", idx);
    if (c->used[idx - 1])
        return mcpd__cfg_fail(c, n,
                              "YAML aliases are not supported (this node is used more than once)");
    c->used[idx - 1] = 1;
    *out = n;
    return 0;
}

/* dst = a + b + c, truncated to size (paths only appear in messages). */
static void concat3(char *dst, size_t size, const char *a, const char *b, const char *c)
{
    const char *parts[3] = { a, b, c };
    size_t n = 0;

    for (int i = 0; i < 3; i++) {
        size_t len = strlen(parts[i]);
        if (len > size - 1 - n)
            len = size - 1 - n;
        memcpy(dst + n, parts[i], len);
        n += len;
    }
    dst[n] = '\0';
}

void mcpd__cfg_join(char *dst, size_t size, const char *path, const char *key)
{
    concat3(dst, size, path, path[0] ? "." : "", key);
}

void mcpd__cfg_join_index(char *dst, size_t size, const char *path, size_t i)
{
    char idx[32];

    snprintf(idx, sizeof(idx), "[%zu]", i);
    concat3(dst, size, path, idx, "");
}

/* " in 'path'" or "" at the top level, for messages about keys. */
const char *mcpd__cfg_in_path(char *dst, size_t size, const char *path)
{
    if (path[0] == '\0')
        dst[0] = '\0';
    else
        concat3(dst, size, " in '", path, "'");
    return dst;
}

/* The scalar value of v, expanded, as a new string. */
int mcpd__cfg_scalar(struct ctx *c, const yaml_node_t *v, const char *path, char **out)
{
    const char *s = (const char *)v->data.scalar.value;

    *out = NULL;
    if (v->type != YAML_SCALAR_NODE)
        return mcpd__cfg_fail(c, v, "key '%s': expected a string, got %s", path,
                              mcpd__cfg_node_kind(v));
    if (mcpd__cfg_is_null(v))
        return mcpd__cfg_fail(c, v, "key '%s': missing value (quote it for a literal string)",
                              path);
    if (strlen(s) != v->data.scalar.length)
        return mcpd__cfg_fail(c, v, "key '%s': value contains a NUL byte", path);
    return expand(c, v, path, s, v->data.scalar.length, out);
}

int mcpd__cfg_word(struct ctx *c, const yaml_node_t *v, const char *path, const char *const *words,
                   int *index)
{
    char *str, list[160] = "";
    int rc, n = 0;

    if ((rc = mcpd__cfg_scalar(c, v, path, &str)) != 0)
        return rc;
    for (*index = -1; words[n] != NULL; n++)
        if (strcmp(str, words[n]) == 0)
            *index = n;
    for (int i = 0; *index < 0 && i < n; i++) {
        size_t at = strlen(list);
        snprintf(list + at, sizeof(list) - at, "%s%s",
                 i == 0       ? ""
                 : i == n - 1 ? " or "
                              : ", ",
                 words[i]);
    }
    if (*index < 0)
        rc = mcpd__cfg_fail(c, v, "key '%s': expected %s, got '%.64s'", path, list, str);
    free(str);
    return rc;
}

/*
 * Checks a mapping's shape: its size, that keys are strings, and that no key
 * repeats. Consumes the key nodes.
 */
int mcpd__cfg_check_mapping(struct ctx *c, yaml_node_t *n, const char *path, size_t max)
{
    yaml_node_pair_t *start = n->data.mapping.pairs.start, *p, *q;
    char in[KEY_PATH_MAX + 8];
    yaml_node_t *k, *o;
    int rc;

    if (n->type != YAML_MAPPING_NODE)
        return mcpd__cfg_fail(c, n, "key '%s': expected a mapping, got %s", path,
                              mcpd__cfg_node_kind(n));
    if ((size_t)(n->data.mapping.pairs.top - start) > max)
        return mcpd__cfg_fail(c, n, "key '%s': too many entries (at most %zu)", path, max);
    for (p = start; p < n->data.mapping.pairs.top; p++) {
        if ((rc = mcpd__cfg_take_node(c, p->key, &k)) != 0)
            return rc;
        if (k->type != YAML_SCALAR_NODE)
            return mcpd__cfg_fail(c, k, "keys must be strings, got %s%s", mcpd__cfg_node_kind(k),
                                  mcpd__cfg_in_path(in, sizeof(in), path));
        if (strlen((const char *)k->data.scalar.value) != k->data.scalar.length)
            return mcpd__cfg_fail(c, k, "key contains a NUL byte%s",
                                  mcpd__cfg_in_path(in, sizeof(in), path));
        for (q = start; q < p; q++) {
            o = yaml_document_get_node(c->doc, q->key);
            if (o->data.scalar.length == k->data.scalar.length &&
                memcmp(o->data.scalar.value, k->data.scalar.value, k->data.scalar.length) == 0)
                return mcpd__cfg_fail(c, k, "duplicate key '%.64s'%s (first at %d:%d)",
                                      (const char *)k->data.scalar.value,
                                      mcpd__cfg_in_path(in, sizeof(in), path),
                                      mcpd__cfg_node_line(o), mcpd__cfg_node_col(o));
        }
    }
    return 0;
}

const char *mcpd__cfg_key_of(struct ctx *c, const yaml_node_pair_t *p, yaml_node_t **k)
{
    *k = yaml_document_get_node(c->doc, p->key);
    return (const char *)(*k)->data.scalar.value;
}

/* Walks mapping n against table; null values are skipped (the key is absent). */
int mcpd__cfg_walk_mapping(struct ctx *c, yaml_node_t *n, const char *path,
                           const struct field *table, void *base)
{
    char sub[KEY_PATH_MAX], in[KEY_PATH_MAX + 8];
    const struct field *f;
    yaml_node_pair_t *p;
    yaml_node_t *k, *v;
    const char *key;
    int rc;

    if ((rc = mcpd__cfg_check_mapping(c, n, path, MCPD_MAX_CONFIG_ITEMS)) != 0)
        return rc;
    for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        key = mcpd__cfg_key_of(c, p, &k);
        for (f = table; f->key != NULL && strcmp(f->key, key) != 0; f++)
            ;
        if (f->key == NULL)
            return mcpd__cfg_fail(c, k, "unknown key '%.64s'%s", key,
                                  mcpd__cfg_in_path(in, sizeof(in), path));
        if ((rc = mcpd__cfg_take_node(c, p->value, &v)) != 0)
            return rc;
        if (mcpd__cfg_is_null(v))
            continue;
        mcpd__cfg_join(sub, sizeof(sub), path, key);
        if ((rc = f->fn(c, v, sub, f, base)) != 0)
            return rc;
    }
    return 0;
}

/* ---- checks shared by YAML and JSON --------------------------------------------------------- */

/* A relative command containing '/' is made absolute against the working directory. */
static int resolve_command(struct ctx *c, int line, int col, const char *path, char **cmd)
{
    char cwd[PATH_MAX];
    const char *rel = *cmd;
    char *abs;
    size_t n;

    if (rel[0] == '\0')
        return mcpd__cfg_failat(c, line, col, "key '%s': must not be empty", path);
    if (rel[0] == '/' || strchr(rel, '/') == NULL)
        return 0;
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return mcpd__cfg_failat(c, line, col, "key '%s': cannot make '%.64s' absolute: %s", path,
                                rel, strerror(errno));
    while (rel[0] == '.' && rel[1] == '/') {
        for (rel += 2; *rel == '/'; rel++)
            ;
    }
    n = strlen(cwd) + strlen(rel) + 2;
    if ((abs = malloc(n)) == NULL)
        return mcpd__cfg_oom(c);
    snprintf(abs, n, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", rel);
    free(*cmd);
    *cmd = abs;
    return 0;
}

int mcpd__cfg_check_name(struct ctx *c, int line, int col, const char *name)
{
    if (mcpd_config_is_valid_name(name))
        return 0;
    return mcpd__cfg_failat(
        c, line, col,
        "server name '%.64s' is invalid: names must match ^[a-z0-9][a-z0-9-]{0,31}$ "
        "(lowercase letters, digits and '-', at most 32 characters)",
        name);
}

static int check_env_name(struct ctx *c, int line, int col, const char *path, const char *name)
{
    if (is_env_name(name, strlen(name)))
        return 0;
    return mcpd__cfg_failat(c, line, col,
                            "key '%s': '%.64s' is not a valid environment variable name "
                            "([A-Za-z_][A-Za-z0-9_]*)",
                            path, name);
}

/* Hosts and origins: non-empty, printable ASCII, no spaces. */
static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* ---- field parsers -------------------------------------------------------------------------- */

int mcpd__cfg_f_string(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                       void *base)
{
    char **slot = AT(base, f->off, char *), *s;
    int rc;

    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    if (s[0] == '\0') {
        free(s);
        return mcpd__cfg_fail(c, v, "key '%s': must not be empty", path);
    }
    free(*slot);
    *slot = s;
    return 0;
}

static int f_command(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base)
{
    char **slot = AT(base, f->off, char *);
    int rc;

    if ((rc = mcpd__cfg_scalar(c, v, path, slot)) != 0)
        return rc;
    return resolve_command(c, mcpd__cfg_node_line(v), mcpd__cfg_node_col(v), path, slot);
}

int mcpd__cfg_f_uint(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base)
{
    const char *p;
    uint64_t n;
    char *s;
    int rc;

    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    p = s;
    if (parse_digits(&p, UINT64_MAX / 2, &n) != 0 || *p != '\0' || n < f->min || n > f->max) {
        rc = mcpd__cfg_fail(c, v, "key '%s': expected an integer from %llu to %llu, got '%.64s'",
                            path, f->min, f->max, s);
    } else {
        *AT(base, f->off, unsigned) = (unsigned)n;
    }
    free(s);
    return rc;
}

int mcpd__cfg_f_duration(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                         void *base)
{
    unsigned ms = 0;
    char *s;
    int rc;

    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    if (mcpd_config_parse_duration(s, &ms) != 0)
        rc = mcpd__cfg_fail(c, v,
                            "key '%s': invalid duration '%.64s' (use e.g. 250ms, 30s, 5m or 1h; "
                            "a bare number is milliseconds; 0 is not allowed)",
                            path, s);
    else if (ms > f->max)
        rc = mcpd__cfg_fail(c, v, "key '%s': %.64s exceeds the maximum of %llums", path, s, f->max);
    else
        *AT(base, f->off, unsigned) = ms;
    free(s);
    return rc;
}

int mcpd__cfg_f_size(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base)
{
    size_t n = 0;
    char *s;
    int rc;

    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    if (mcpd_config_parse_size(s, &n) != 0)
        rc = mcpd__cfg_fail(c, v,
                            "key '%s': invalid size '%.64s' (use a byte count or a KiB, MiB or GiB "
                            "suffix)",
                            path, s);
    else if (n < f->min || n > f->max)
        rc = mcpd__cfg_fail(c, v, "key '%s': %.64s is out of range (%llu to %llu bytes)", path, s,
                            f->min, f->max);
    else
        *AT(base, f->off, size_t) = n;
    free(s);
    return rc;
}

int mcpd__cfg_f_bool(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base)
{
    char *s;
    int rc;

    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    if (strcmp(s, "true") == 0)
        *AT(base, f->off, bool) = true;
    else if (strcmp(s, "false") == 0)
        *AT(base, f->off, bool) = false;
    else
        rc = mcpd__cfg_fail(c, v, "key '%s': expected true or false, got '%.64s'", path, s);
    free(s);
    return rc;
}

static int f_log_level(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                       void *base)
{
    char *s;
    int rc, level;

    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    if ((level = mcpd_log_parse_level(s)) < 0)
        rc = mcpd__cfg_fail(
            c, v, "key '%s': expected error, warn, info, debug or trace, got '%.64s'", path, s);
    else
        *AT(base, f->off, int) = level;
    free(s);
    return rc;
}

static int f_prefix(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                    void *base)
{
    char *s;
    int rc;

    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    if (strcmp(s, "auto") == 0)
        *AT(base, f->off, enum mcpd_prefix_mode) = MCPD_PREFIX_AUTO;
    else if (strcmp(s, "always") == 0)
        *AT(base, f->off, enum mcpd_prefix_mode) = MCPD_PREFIX_ALWAYS;
    else if (strcmp(s, "never") == 0)
        *AT(base, f->off, enum mcpd_prefix_mode) = MCPD_PREFIX_NEVER;
    else
        rc = mcpd__cfg_fail(c, v, "key '%s': expected auto, always or never, got '%.64s'", path, s);
    free(s);
    return rc;
}

/*
 * The separator joins "<server><sep><tool>". It must stay within [_.-] and
 * must contain a character that cannot occur in a server name ('-' can).
 */
static int f_separator(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                       void *base)
{
    size_t n, dashes = 0;
    char *s;
    int rc;

    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    n = strlen(s);
    for (size_t i = 0; i < n; i++)
        dashes += s[i] == '-';
    if (n < 1 || n > 4 || strspn(s, "_-.") != n)
        rc = mcpd__cfg_fail(
            c, v, "key '%s': must be 1 to 4 characters from '_', '-' and '.', got '%.64s'", path,
            s);
    else if (dashes == n)
        rc = mcpd__cfg_fail(
            c, v, "key '%s': '%s' could occur inside a server name; include '_' or '.'", path, s);
    if (rc != 0) {
        free(s);
        return rc;
    }
    free(*AT(base, f->off, char *));
    *AT(base, f->off, char *) = s;
    return 0;
}

static int f_http_path(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                       void *base)
{
    char *s;
    int rc;

    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    if (s[0] != '/' || strlen(s) >= HTTP_PATH_MAX || !is_token(s) || strpbrk(s, "?#") != NULL) {
        rc = mcpd__cfg_fail(c, v,
                            "key '%s': must start with '/' and hold no spaces, '?' or '#' "
                            "(got '%.64s')",
                            path, s);
        free(s);
        return rc;
    }
    free(*AT(base, f->off, char *));
    *AT(base, f->off, char *) = s;
    return 0;
}

/* Sequence of strings into a new array at off (count at off2). */
int mcpd__cfg_strlist(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                      void *base, bool tokens)
{
    char ***arr = AT(base, f->off, char **);
    size_t *count = AT(base, f->off2, size_t), n;
    char sub[KEY_PATH_MAX];
    yaml_node_t *item;
    int rc;

    if (v->type != YAML_SEQUENCE_NODE)
        return mcpd__cfg_fail(c, v, "key '%s': expected a list, got %s", path,
                              mcpd__cfg_node_kind(v));
    n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n > MCPD_MAX_CONFIG_ITEMS)
        return mcpd__cfg_fail(c, v, "key '%s': too many entries (at most %u)", path,
                              MCPD_MAX_CONFIG_ITEMS);
    if ((*arr = calloc(n ? n : 1, sizeof(**arr))) == NULL)
        return mcpd__cfg_oom(c);
    for (size_t i = 0; i < n; i++) {
        mcpd__cfg_join_index(sub, sizeof(sub), path, i);
        if ((rc = mcpd__cfg_take_node(c, v->data.sequence.items.start[i], &item)) != 0)
            return rc;
        if ((rc = mcpd__cfg_scalar(c, item, sub, &(*arr)[i])) != 0)
            return rc;
        (*count)++;
        if (tokens && !is_token((*arr)[i]))
            return mcpd__cfg_fail(
                c, item, "key '%s': must be non-empty with no spaces, got '%.64s'", sub, (*arr)[i]);
    }
    return 0;
}

int mcpd__cfg_f_args(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base)
{
    return mcpd__cfg_strlist(c, v, path, f, base, false);
}

static int f_origins(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base)
{
    return mcpd__cfg_strlist(c, v, path, f, base, true);
}

static int f_hosts(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                   void *base)
{
    c->hosts_set = true;
    return mcpd__cfg_strlist(c, v, path, f, base, true);
}

static int check_url(struct ctx *c, int line, int col, const char *path, const char *url)
{
    if ((strncmp(url, "http://", 7) != 0 || url[7] == '\0') &&
        (strncmp(url, "https://", 8) != 0 || url[8] == '\0'))
        return mcpd__cfg_failat(c, line, col, "key '%s': expected an http:// or https:// URL",
                                path);
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return mcpd__cfg_failat(c, line, col,
                                    "key '%s': the URL must not contain spaces or control "
                                    "or non-ASCII characters (percent-encode them)",
                                    path);
    return 0;
}

static int f_url(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f, void *base)
{
    struct mcpd_server_config *s = base;
    int rc;
    if ((rc = mcpd__cfg_scalar(c, v, path, &s->url)) != 0)
        return rc;
    return check_url(c, mcpd__cfg_node_line(v), mcpd__cfg_node_col(v), path, s->url);
}

int mcpd__cfg_f_section(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                        void *base)
{
    return mcpd__cfg_walk_mapping(c, v, path, f->sub, base);
}

/* ---- listen --------------------------------------------------------------------------------- */

static bool is_host_char(char ch)
{
    return is_digit(ch) || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '.' ||
           ch == '-' || ch == '_';
}

/* Splits "host:port" or "[v6]:port" in place; returns NULL or what is wrong. */
static const char *split_listen(char *s, char **host, int *port)
{
    char *sep, *p, addr[64];
    struct in6_addr a6;
    uint64_t n;
    size_t hlen;

    if (s[0] == '[') {
        if ((sep = strchr(s, ']')) == NULL || sep[1] != ':')
            return "expected host:port or [v6]:port";
        *sep = '\0';
        *host = s + 1;
        p = sep + 2;
        hlen = strcspn(*host, "%"); /* a zone id (fe80::1%eth0) is left to the resolver */
        if (hlen == 0 || hlen >= sizeof(addr))
            return "invalid IPv6 address";
        memcpy(addr, *host, hlen);
        addr[hlen] = '\0';
        if (inet_pton(AF_INET6, addr, &a6) != 1)
            return "invalid IPv6 address";
    } else {
        if ((sep = strrchr(s, ':')) == NULL)
            return "expected host:port or [v6]:port";
        *sep = '\0';
        *host = s;
        p = sep + 1;
        if (strchr(s, ':') != NULL)
            return "IPv6 addresses must be in brackets, e.g. [::1]:8080";
        if (s[0] == '\0')
            return "host must not be empty";
        for (const char *h = s; *h; h++)
            if (!is_host_char(*h))
                return "host holds characters other than letters, digits, '.', '-' and '_'";
    }
    if (parse_digits((const char **)&p, 65535, &n) != 0 || *p != '\0')
        return "port must be a number from 0 to 65535";
    *port = (int)n;
    return NULL;
}

int mcpd__cfg_relative(struct ctx *c, char **path)
{
    const char *slash = strrchr(c->name, '/');
    char *p;

    if (*path == NULL || (*path)[0] == '/' || slash == NULL)
        return 0;
    if (asprintf(&p, "%.*s/%s", (int)(slash - c->name), c->name, *path) < 0)
        return mcpd__cfg_oom(c);
    free(*path);
    *path = p;
    return 0;
}

int mcpd__cfg_path(struct ctx *c, yaml_node_t *v, const char *path, char **out)
{
    char *s;
    int rc;

    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    if (s[0] == '\0') {
        free(s);
        return mcpd__cfg_fail(c, v, "key '%s': must not be empty", path);
    }
    free(*out);
    *out = s;
    return mcpd__cfg_relative(c, out);
}

/* A TLS file: made relative to the config file, then checked for reading (and, for the key, mode).
 */
static int tls_file(struct ctx *c, yaml_node_t *v, const char *path, char **out, bool key)
{
    struct stat st;
    int rc;

    if ((rc = mcpd__cfg_path(c, v, path, out)) != 0)
        return rc;
    if (stat(*out, &st) != 0 || access(*out, R_OK) != 0)
        return mcpd__cfg_fail(c, v, "key '%s': cannot read %s: %s", path, *out, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return mcpd__cfg_fail(c, v, "key '%s': %s is not a regular file", path, *out);
    if (key && (st.st_mode & (S_IRGRP | S_IROTH)))
        return mcpd__cfg_fail(c, v,
                              "key '%s': the private key %s is readable by group or others "
                              "(chmod 600 it)",
                              path, *out);
    return 0;
}

static int f_tls_cert(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                      void *base)
{
    return tls_file(c, v, path, &((struct mcpd_config *)base)->listen_tls_cert, false);
}

static int f_tls_key(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base)
{
    return tls_file(c, v, path, &((struct mcpd_config *)base)->listen_tls_key, true);
}

static const struct field listen_tls_fields[] = {
    { .key = "cert", .fn = f_tls_cert },
    { .key = "key", .fn = f_tls_key },
    { 0 },
};

static int f_listen_tls(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                        void *base)
{
    struct mcpd_config *cfg = base;
    int rc;
    if ((rc = mcpd__cfg_walk_mapping(c, v, path, listen_tls_fields, base)) != 0)
        return rc;
    if (cfg->listen_tls_cert == NULL || cfg->listen_tls_key == NULL)
        return mcpd__cfg_fail(c, v, "key '%s': needs both cert and key", path);
    return 0;
}

static int f_listen_address(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                            void *base);

static const struct field listen_fields[] = {
    { .key = "address", .fn = f_listen_address },
    { .key = "tls", .fn = f_listen_tls },
    { 0 },
};

/* listen: "host:port", or { address: "host:port", tls: { cert, key } }. */
static int f_listen(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                    void *base)
{
    struct mcpd_config *cfg = base;
    int rc;

    if (v->type != YAML_MAPPING_NODE)
        return f_listen_address(c, v, path, f, base);
    if ((rc = mcpd__cfg_walk_mapping(c, v, path, listen_fields, base)) != 0)
        return rc;
    if (cfg->listen_host == NULL)
        return mcpd__cfg_fail(c, v, "key '%s': needs an address (host:port)", path);
    return 0;
}

static int f_listen_address(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                            void *base)
{
    struct mcpd_config *cfg = base;
    const char *why;
    char *s, *copy = NULL, *host = NULL;
    int rc, port = 0;

    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    if ((copy = strdup(s)) == NULL) {
        rc = mcpd__cfg_oom(c);
        goto out;
    }
    if ((why = split_listen(copy, &host, &port)) != NULL) {
        rc = mcpd__cfg_fail(c, v, "key '%s': %s (got '%.64s')", path, why, s);
        goto out;
    }
    free(cfg->listen_host);
    if ((cfg->listen_host = strdup(host)) == NULL) {
        rc = mcpd__cfg_oom(c);
        goto out;
    }
    cfg->listen_port = port;
out:
    free(copy);
    free(s);
    return rc;
}

/* ---- servers -------------------------------------------------------------------------------- */

/* Appends a server with its defaults to cfg->servers (sized by the caller). */
static int new_server(struct ctx *c, const char *name, int line, int col,
                      struct mcpd_server_config **out)
{
    struct mcpd_server_config *s = &c->cfg->servers[c->cfg->nservers];

    *out = NULL;
    if ((s->name = strdup(name)) == NULL)
        return mcpd__cfg_oom(c);
    c->cfg->nservers++;
    s->timeout_ms = MCPD_CALL_TIMEOUT_MS;
    s->connect_timeout_ms = 5000;
    s->tls_verify = true;
    s->enabled = true;
    s->line = line;
    s->column = col;
    *out = s;
    return 0;
}

static int alloc_servers(struct ctx *c, size_t n)
{
    c->cfg->servers = calloc(n ? n : 1, sizeof(*c->cfg->servers));
    return c->cfg->servers ? 0 : mcpd__cfg_oom(c);
}

/* HTTP header names: an RFC 9110 token. */
static int check_header_name(struct ctx *c, int line, int col, const char *path, const char *name)
{
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *p)))
            return mcpd__cfg_failat(
                c, line, col, "key '%s': '%.64s' is not a valid HTTP header name", path, name);
    return *name ? 0 : mcpd__cfg_failat(c, line, col, "key '%s': empty header name", path);
}

/* A value that goes into an HTTP header must hold no line break. */
static int check_header_value(struct ctx *c, int line, int col, const char *path, const char *v)
{
    return strpbrk(v, "\r\n")
               ? mcpd__cfg_failat(c, line, col,
                                  "key '%s': header values must not contain line breaks", path)
               : 0;
}

int mcpd__cfg_no_check(struct ctx *c, int line, int col, const char *path, const char *v)
{
    return 0;
}

int mcpd__cfg_kvs(struct ctx *c, yaml_node_t *v, const char *path, struct mcpd_kv **arr, size_t *n,
                  mcpd__cfg_check_fn check_key, mcpd__cfg_check_fn check_value)
{
    char sub[KEY_PATH_MAX];
    yaml_node_pair_t *p;
    yaml_node_t *k, *val;
    int rc;

    if ((rc = mcpd__cfg_check_mapping(c, v, path, MCPD_MAX_CONFIG_ITEMS)) != 0)
        return rc;
    *arr = calloc((size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start) + 1,
                  sizeof(**arr));
    if (*arr == NULL)
        return mcpd__cfg_oom(c);
    for (p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        struct mcpd_kv *kv = &(*arr)[*n];
        const char *key = mcpd__cfg_key_of(c, p, &k);
        if ((rc = check_key(c, mcpd__cfg_node_line(k), mcpd__cfg_node_col(k), path, key)) != 0)
            return rc;
        if ((kv->key = strdup(key)) == NULL)
            return mcpd__cfg_oom(c);
        (*n)++;
        mcpd__cfg_join(sub, sizeof(sub), path, key);
        if ((rc = mcpd__cfg_take_node(c, p->value, &val)) != 0 ||
            (rc = mcpd__cfg_scalar(c, val, sub, &kv->value)) != 0 ||
            (rc = check_value(c, mcpd__cfg_node_line(val), mcpd__cfg_node_col(val), sub,
                              kv->value)) != 0)
            return rc;
    }
    return 0;
}

static int f_headers(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base)
{
    struct mcpd_server_config *s = base;
    return mcpd__cfg_kvs(c, v, path, &s->headers, &s->nheaders, check_header_name,
                         check_header_value);
}

static int f_share(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                   void *base)
{
    static const char *const words[] = { "shared", "per-client", NULL };
    struct mcpd_server_config *s = base;
    int i, rc = mcpd__cfg_word(c, v, path, words, &i);

    if (rc == 0)
        s->per_client = i == 1;
    return rc;
}

static int f_protocol(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                      void *base)
{
    /* in enum mcpd_upstream_era order */
    static const char *const words[] = { "auto", "legacy", "2026-07-28", NULL };
    struct mcpd_server_config *s = base;
    int i, rc = mcpd__cfg_word(c, v, path, words, &i);

    if (rc == 0)
        s->era = (enum mcpd_upstream_era)i;
    return rc;
}

static int parse_transport(struct ctx *c, int line, int col, const char *path, const char *str,
                           struct mcpd_server_config *s)
{
    if (strcmp(str, "auto") == 0)
        s->transport = MCPD_REMOTE_AUTO;
    else if (strcmp(str, "streamable-http") == 0 || strcmp(str, "http") == 0 ||
             strcmp(str, "streamableHttp") == 0)
        s->transport = MCPD_REMOTE_STREAMABLE;
    else if (strcmp(str, "sse") == 0)
        s->transport = MCPD_REMOTE_SSE;
    else
        return mcpd__cfg_failat(c, line, col,
                                "key '%s': expected auto, streamable-http or sse, got '%.64s'",
                                path, str);
    return 0;
}

static int f_transport(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                       void *base)
{
    char *str;
    int rc;
    if ((rc = mcpd__cfg_scalar(c, v, path, &str)) != 0)
        return rc;
    rc = parse_transport(c, mcpd__cfg_node_line(v), mcpd__cfg_node_col(v), path, str, base);
    free(str);
    return rc;
}

static int f_env(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f, void *base)
{
    struct mcpd_server_config *s = base;
    return mcpd__cfg_kvs(c, v, path, &s->env, &s->nenv, check_env_name, mcpd__cfg_no_check);
}

static const struct field server_fields[] = {
    { .key = "command", .fn = f_command, .off = offsetof(struct mcpd_server_config, command) },
    { .key = "args",
      .fn = mcpd__cfg_f_args,
      .off = offsetof(struct mcpd_server_config, args),
      .off2 = offsetof(struct mcpd_server_config, nargs) },
    { .key = "env", .fn = f_env },
    { .key = "cwd", .fn = mcpd__cfg_f_string, .off = offsetof(struct mcpd_server_config, cwd) },
    { .key = "timeout",
      .fn = mcpd__cfg_f_duration,
      .off = offsetof(struct mcpd_server_config, timeout_ms),
      .max = MCPD_MAX_CALL_TIMEOUT_MS },
    { .key = "enabled",
      .fn = mcpd__cfg_f_bool,
      .off = offsetof(struct mcpd_server_config, enabled) },
    { .key = "share", .fn = f_share },
    { .key = "protocol", .fn = f_protocol },
    { .key = "url", .fn = f_url },
    { .key = "headers", .fn = f_headers },
    { .key = "transport", .fn = f_transport },
    { .key = "connect_timeout",
      .fn = mcpd__cfg_f_duration,
      .off = offsetof(struct mcpd_server_config, connect_timeout_ms),
      .max = MCPD_MAX_CALL_TIMEOUT_MS },
    { .key = "tls_verify",
      .fn = mcpd__cfg_f_bool,
      .off = offsetof(struct mcpd_server_config, tls_verify) },
    { .key = "dimensions", .fn = mcpd__cfg_f_dimensions },
    { .key = "credential", .fn = mcpd__cfg_f_credential },
    { .key = NULL },
};

/* A server is a command (stdio) or a url (remote), and takes only that kind's keys. */
static int check_server_kind(struct ctx *c, int line, int col, const char *path,
                             const struct mcpd_server_config *s)
{
    if (s->command && s->url)
        return mcpd__cfg_failat(c, line, col, "key '%s': give either 'command' or 'url', not both",
                                path);
    if (s->command == NULL && s->url == NULL)
        return mcpd__cfg_failat(c, line, col, "key '%s': missing required key 'command' (or 'url')",
                                path);
    if (s->url && (s->nargs || s->nenv || s->cwd))
        return mcpd__cfg_failat(c, line, col, "key '%s': args, env and cwd are for command servers",
                                path);
    if (s->era == MCPD_SPEAK_MODERN && s->transport == MCPD_REMOTE_SSE)
        return mcpd__cfg_failat(c, line, col,
                                "key '%s': protocol 2026-07-28 runs over streamable HTTP, not the "
                                "2024-11-05 transport sse",
                                path);
    if (s->command && s->credential)
        return mcpd__cfg_failat(c, line, col, "key '%s': credential is for url servers", path);
    if (s->command && (s->nheaders || s->transport != MCPD_REMOTE_AUTO))
        return mcpd__cfg_failat(c, line, col, "key '%s': headers and transport are for url servers",
                                path);
    return 0;
}

static int yaml_server(struct ctx *c, const yaml_node_pair_t *p, const char *path)
{
    struct mcpd_server_config *s;
    char sub[KEY_PATH_MAX];
    yaml_node_t *k, *v;
    const char *name = mcpd__cfg_key_of(c, p, &k);
    int rc;

    if ((rc = mcpd__cfg_check_name(c, mcpd__cfg_node_line(k), mcpd__cfg_node_col(k), name)) != 0)
        return rc;
    if ((rc = new_server(c, name, mcpd__cfg_node_line(k), mcpd__cfg_node_col(k), &s)) != 0)
        return rc;
    if ((rc = mcpd__cfg_take_node(c, p->value, &v)) != 0)
        return rc;
    mcpd__cfg_join(sub, sizeof(sub), path, name);
    if (!mcpd__cfg_is_null(v) && (rc = mcpd__cfg_walk_mapping(c, v, sub, server_fields, s)) != 0)
        return rc;
    return check_server_kind(c, mcpd__cfg_node_line(k), mcpd__cfg_node_col(k), sub, s);
}

static int f_servers(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base)
{
    int rc;

    if ((rc = mcpd__cfg_check_mapping(c, v, path, MCPD_MAX_SERVERS)) != 0)
        return rc;
    rc = alloc_servers(c, (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start));
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
         rc == 0 && p < v->data.mapping.pairs.top; p++)
        rc = yaml_server(c, p, path);
    return rc;
}

/* ---- key tables ----------------------------------------------------------------------------- */

#define CFG(m) offsetof(struct mcpd_config, m)

static const struct field http_fields[] = {
    { .key = "path", .fn = f_http_path, .off = CFG(http_path) },
    { .key = "allowed_origins",
      .fn = f_origins,
      .off = CFG(allowed_origins),
      .off2 = CFG(nallowed_origins) },
    { .key = "allowed_hosts",
      .fn = f_hosts,
      .off = CFG(allowed_hosts),
      .off2 = CFG(nallowed_hosts) },
    { .key = NULL },
};

static const struct field catalog_fields[] = {
    { .key = "separator", .fn = f_separator, .off = CFG(separator) },
    { .key = "prefix", .fn = f_prefix, .off = CFG(prefix) },
    { .key = NULL },
};

static const struct field limits_fields[] = {
    { .key = "max_message",
      .fn = mcpd__cfg_f_size,
      .off = CFG(limits.max_message),
      .min = 1024,
      .max = 1ull << 30 },
    { .key = "max_sessions",
      .fn = mcpd__cfg_f_uint,
      .off = CFG(limits.max_sessions),
      .min = 1,
      .max = 1000000 },
    { .key = "max_inflight",
      .fn = mcpd__cfg_f_uint,
      .off = CFG(limits.max_inflight),
      .min = 1,
      .max = 10000 },
    { .key = "max_connections",
      .fn = mcpd__cfg_f_uint,
      .off = CFG(limits.max_connections),
      .min = 1,
      .max = 1000000 },
    { .key = "page_size",
      .fn = mcpd__cfg_f_uint,
      .off = CFG(limits.page_size),
      .min = 1,
      .max = MCPD_MAX_UPSTREAM_TOOLS },
    { .key = "session_idle",
      .fn = mcpd__cfg_f_duration,
      .off = CFG(limits.session_idle_ms),
      .max = UINT_MAX },
    { .key = "input_wait",
      .fn = mcpd__cfg_f_duration,
      .off = CFG(limits.input_wait_ms),
      .min = 1,
      .max = 3600000 },
    { .key = "header_timeout",
      .fn = mcpd__cfg_f_duration,
      .off = CFG(limits.header_timeout_ms),
      .max = UINT_MAX },
    { .key = "body_timeout",
      .fn = mcpd__cfg_f_duration,
      .off = CFG(limits.body_timeout_ms),
      .max = UINT_MAX },
    { .key = "idle_timeout",
      .fn = mcpd__cfg_f_duration,
      .off = CFG(limits.idle_timeout_ms),
      .max = UINT_MAX },
    { .key = NULL },
};

static int f_agent_timeouts(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                            void *base);

static const struct field agents_fields[] = {
    { .key = "ping_interval",
      .fn = mcpd__cfg_f_duration,
      .off = CFG(agent_ping_interval_ms),
      .max = 3600000 },
    { .key = "ping_timeout",
      .fn = mcpd__cfg_f_duration,
      .off = CFG(agent_ping_timeout_ms),
      .max = 3600000 },
    { .key = "call_timeout",
      .fn = mcpd__cfg_f_duration,
      .off = CFG(agent_call_timeout_ms),
      .max = MCPD_MAX_CALL_TIMEOUT_MS },
    { .key = "call_timeouts", .fn = f_agent_timeouts },
    { .key = "max_message",
      .fn = mcpd__cfg_f_size,
      .off = CFG(agent_max_message),
      .min = 1024,
      .max = MCPD_MAX_AGENT_MESSAGE },
    { .key = NULL },
};

/* agents.call_timeouts: {<resource>: duration}, the per-resource deadline of agent tools */
static int f_agent_timeouts(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                            void *base)
{
    struct mcpd_config *cfg = c->cfg;
    yaml_node_pair_t *p;
    yaml_node_t *k, *val;
    char sub[KEY_PATH_MAX];
    size_t n;
    int rc;

    (void)f;
    (void)base;
    if ((rc = mcpd__cfg_check_mapping(c, v, path, MCPD_MAX_SERVERS)) != 0)
        return rc;
    n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    if ((cfg->agent_timeouts = calloc(n + 1, sizeof(*cfg->agent_timeouts))) == NULL)
        return mcpd__cfg_oom(c);
    for (p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        struct mcpd_agent_timeout *t = &cfg->agent_timeouts[cfg->nagent_timeouts];
        const char *key = mcpd__cfg_key_of(c, p, &k);
        if (!mcpd_config_is_valid_name(key))
            return mcpd__cfg_fail(c, k,
                                  "key '%s': '%.64s' is not a resource name (<agent>-<group>, "
                                  "^[a-z0-9][a-z0-9-]{0,31}$)",
                                  path, key);
        if ((rc = mcpd__cfg_take_node(c, p->value, &val)) != 0)
            return rc;
        mcpd__cfg_join(sub, sizeof(sub), path, key);
        if ((rc = mcpd__cfg_f_duration(
                 c, val, sub, &(struct field){ .max = MCPD_MAX_CALL_TIMEOUT_MS }, &t->ms)) != 0)
            return rc;
        if ((t->resource = strdup(key)) == NULL)
            return mcpd__cfg_oom(c);
        cfg->nagent_timeouts++;
    }
    return 0;
}

/* agents: (an empty section turns the endpoint on with the defaults) */
static int f_agents(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                    void *base)
{
    (void)f;
    c->cfg->agents_enabled = true;
    if (mcpd__cfg_is_null(v))
        return 0;
    return mcpd__cfg_walk_mapping(c, v, path, agents_fields, base);
}

static const struct field top_fields[] = {
    { .key = "listen", .fn = f_listen },
    { .key = "http", .fn = mcpd__cfg_f_section, .sub = http_fields },
    { .key = "log_level", .fn = f_log_level, .off = CFG(log_level) },
    { .key = "servers", .fn = f_servers },
    { .key = "catalog", .fn = mcpd__cfg_f_section, .sub = catalog_fields },
    { .key = "limits", .fn = mcpd__cfg_f_section, .sub = limits_fields },
    { .key = "store", .fn = mcpd__cfg_f_store },
    { .key = "audit", .fn = mcpd__cfg_f_section, .sub = mcpd__cfg_audit_fields },
    { .key = "auth", .fn = mcpd__cfg_f_section, .sub = mcpd__cfg_auth_fields },
    { .key = "roles", .fn = mcpd__cfg_f_roles },
    { .key = "bots", .fn = mcpd__cfg_f_bots },
    { .key = "agents", .fn = f_agents },
    { .key = "plugins", .fn = mcpd__cfg_f_plugins },
    { .key = "master_key_file", .fn = mcpd__cfg_f_master_key_file },
    { .key = "oauth_providers", .fn = mcpd__cfg_f_oauth_providers },
    { .key = NULL },
};

/* ---- YAML ----------------------------------------------------------------------------------- */

static int yaml_error(struct ctx *c, const yaml_parser_t *p, const char *data, size_t len)
{
    const char *problem = p->problem ? p->problem : "syntax error";
    int line = 1, col = 1;

    if (p->error == YAML_MEMORY_ERROR)
        return mcpd__cfg_oom(c);
    if (p->error == YAML_READER_ERROR) {
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            col = data[i] == '\n' ? 1 : col + 1;
            line += data[i] == '\n';
        }
        return mcpd__cfg_failat(c, line, col, "invalid input: %s", problem);
    }
    line = (int)p->problem_mark.line + 1;
    col = (int)p->problem_mark.column + 1;
    if (p->context != NULL)
        return mcpd__cfg_failat(c, line, col, "invalid YAML: %s: %s", p->context, problem);
    return mcpd__cfg_failat(c, line, col, "invalid YAML: %s", problem);
}

/*
 * A first pass over the events, before the document is built: libyaml's
 * scanner is quadratic in nesting depth (a 1 MiB "[[[[..." takes minutes), and
 * the schema nests only four deep. Aliases are refused here too, where the
 * alias itself can be pointed at.
 */
static int yaml_prescan(struct ctx *c, const char *data, size_t len)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    int depth = 0, rc = 0;
    bool done = false;

    if (!yaml_parser_initialize(&parser))
        return mcpd__cfg_oom(c);
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    while (!done && rc == 0) {
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = yaml_error(c, &parser, data, len);
            break;
        }
        if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) {
            if (++depth > YAML_MAX_DEPTH)
                rc = mcpd__cfg_failat(c, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                                      "YAML nesting deeper than %d levels", YAML_MAX_DEPTH);
        } else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
            depth--;
        } else if (ev.type == YAML_ALIAS_EVENT) {
            rc = mcpd__cfg_failat(c, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                                  "YAML aliases are not supported");
        } else if (ev.type == YAML_STREAM_END_EVENT) {
            done = true;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* Rejects a second document ("---" after the first). */
static int yaml_single_document(struct ctx *c, yaml_parser_t *parser, const char *data, size_t len)
{
    yaml_document_t extra;
    yaml_node_t *root;
    int rc = 0;

    if (!yaml_parser_load(parser, &extra))
        return yaml_error(c, parser, data, len);
    if ((root = yaml_document_get_root_node(&extra)) != NULL)
        rc = mcpd__cfg_fail(c, root, "only one YAML document is allowed");
    yaml_document_delete(&extra);
    return rc;
}

/* The section's YAML as written, folded into a SHA-256: scalars, sequences, mappings in order. */
static void digest_node(EVP_MD_CTX *md, yaml_document_t *doc, yaml_node_t *n, int depth)
{
    char tag[32];

    if (n == NULL || depth > YAML_MAX_DEPTH + 1)
        return;
    switch (n->type) {
    case YAML_SCALAR_NODE: /* its style too: a plain null is absent, a quoted one a value */
        snprintf(tag, sizeof(tag), "s%d.%zu:", (int)n->data.scalar.style, n->data.scalar.length);
        EVP_DigestUpdate(md, tag, strlen(tag));
        EVP_DigestUpdate(md, n->data.scalar.value, n->data.scalar.length);
        break;
    case YAML_SEQUENCE_NODE:
        EVP_DigestUpdate(md, "[", 1);
        for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top;
             i++)
            digest_node(md, doc, yaml_document_get_node(doc, *i), depth + 1);
        EVP_DigestUpdate(md, "]", 1);
        break;
    case YAML_MAPPING_NODE:
        EVP_DigestUpdate(md, "{", 1);
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            digest_node(md, doc, yaml_document_get_node(doc, p->key), depth + 1);
            digest_node(md, doc, yaml_document_get_node(doc, p->value), depth + 1);
        }
        EVP_DigestUpdate(md, "}", 1);
        break;
    default:
        break;
    }
}

static void add_section(struct mcpd_config *cfg, const char *key, yaml_document_t *doc,
                        yaml_node_t *v, const char *text, size_t len)
{
    struct mcpd_config_section *s;
    EVP_MD_CTX *md;

    if (cfg->nsections >= MCPD_CONFIG_SECTIONS || (md = EVP_MD_CTX_new()) == NULL)
        return; /* (reload then sees the section as changed) */
    s = &cfg->sections[cfg->nsections++];
    snprintf(s->key, sizeof(s->key), "%s", key);
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1) {
        if (doc != NULL)
            digest_node(md, doc, v, 0);
        else
            EVP_DigestUpdate(md, text, len);
        EVP_DigestFinal_ex(md, s->digest, NULL);
    }
    EVP_MD_CTX_free(md);
}

size_t mcpd_config_changed(const struct mcpd_config *a, const struct mcpd_config *b, char *out,
                           size_t cap)
{
    const struct mcpd_config *sides[2] = { a, b };
    size_t n = 0;

    if (cap > 0)
        out[0] = '\0';
    for (int side = 0; side < 2; side++) {
        const struct mcpd_config *x = sides[side], *y = sides[1 - side];
        for (size_t i = 0; i < x->nsections; i++) {
            const struct mcpd_config_section *s = &x->sections[i], *t = NULL;
            for (size_t j = 0; j < y->nsections && t == NULL; j++)
                if (strcmp(y->sections[j].key, s->key) == 0)
                    t = &y->sections[j];
            /* a changed section is named once (from a's side), a vanished or new one once */
            if ((t != NULL && (side == 1 || memcmp(s->digest, t->digest, 32) == 0)))
                continue;
            if (cap > 0) {
                size_t at = strlen(out);
                snprintf(out + at, cap - at, "%s%s", n ? ", " : "", s->key);
            }
            n++;
        }
    }
    return n;
}

static int walk_top(struct ctx *c, yaml_node_t *root, void *arg)
{
    (void)arg;
    if (root->type == YAML_MAPPING_NODE)
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
            if (k && k->type == YAML_SCALAR_NODE)
                add_section(c->cfg, (const char *)k->data.scalar.value, c->doc,
                            yaml_document_get_node(c->doc, p->value), NULL, 0);
        }
    return mcpd__cfg_walk_mapping(c, root, "", top_fields, c->cfg);
}

static int parse_yaml(struct ctx *c, const char *data, size_t len)
{
    return mcpd__cfg_yaml_doc(c, data, len, walk_top, NULL);
}

struct walk_table {
    const struct field *top;
    void *base;
};

static int walk_table(struct ctx *c, yaml_node_t *root, void *arg)
{
    struct walk_table *t = arg;
    return mcpd__cfg_walk_mapping(c, root, "", t->top, t->base);
}

/* Also used by the agent program's reader (agent/config.c) with its own table. */
int mcpd__cfg_parse_yaml(struct ctx *c, const char *data, size_t len, const struct field *top,
                         void *base)
{
    struct walk_table t = { .top = top, .base = base };
    return mcpd__cfg_yaml_doc(c, data, len, walk_table, &t);
}

int mcpd__cfg_yaml_doc(struct ctx *c, const char *data, size_t len,
                       int (*walk)(struct ctx *c, yaml_node_t *root, void *arg), void *arg)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_node_t *root;
    bool loaded = false;
    int rc;

    if ((rc = yaml_prescan(c, data, len)) != 0)
        return rc;
    if (!yaml_parser_initialize(&parser))
        return mcpd__cfg_oom(c);
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = yaml_error(c, &parser, data, len);
        goto out;
    }
    loaded = true;
    if (yaml_document_get_root_node(&doc) == NULL) {
        rc = mcpd__cfg_failat(c, 0, 0, "the configuration is empty");
        goto out;
    }
    if ((rc = yaml_single_document(c, &parser, data, len)) != 0)
        goto out;
    c->doc = &doc;
    c->nnodes = (size_t)(doc.nodes.top - doc.nodes.start);
    if ((c->used = calloc(c->nnodes, 1)) == NULL) {
        rc = mcpd__cfg_oom(c);
        goto out;
    }
    if ((rc = mcpd__cfg_take_node(c, 1, &root)) != 0)
        goto out;
    if (root->type != YAML_MAPPING_NODE) {
        rc = mcpd__cfg_fail(c, root, "the top level must be a mapping, got %s",
                            mcpd__cfg_node_kind(root));
        goto out;
    }
    rc = walk(c, root, arg);
out:
    free(c->used);
    c->used = NULL;
    c->doc = NULL;
    if (loaded)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

/* ---- JSON import ---------------------------------------------------------------------------- */

static int json_string_dup(struct ctx *c, json_t *v, const char *path, char **out)
{
    if (!json_is_string(v))
        return mcpd__cfg_failat(c, 0, 0, "key '%s': expected a string", path);
    free(*out);
    if ((*out = strdup(json_string_value(v))) == NULL)
        return mcpd__cfg_oom(c);
    return 0;
}

static int json_args(struct ctx *c, json_t *v, const char *path, struct mcpd_server_config *s)
{
    char sub[KEY_PATH_MAX];
    size_t i, n;
    json_t *item;
    int rc;

    if (!json_is_array(v))
        return mcpd__cfg_failat(c, 0, 0, "key '%s': expected an array of strings", path);
    if ((n = json_array_size(v)) > MCPD_MAX_CONFIG_ITEMS)
        return mcpd__cfg_failat(c, 0, 0, "key '%s': too many entries (at most %u)", path,
                                MCPD_MAX_CONFIG_ITEMS);
    if ((s->args = calloc(n ? n : 1, sizeof(*s->args))) == NULL)
        return mcpd__cfg_oom(c);
    json_array_foreach (v, i, item) {
        mcpd__cfg_join_index(sub, sizeof(sub), path, i);
        if ((rc = json_string_dup(c, item, sub, &s->args[i])) != 0)
            return rc;
        s->nargs++;
    }
    return 0;
}

/* A JSON object of strings into (*arr, *n), names checked by `check_name`. */
static int json_kvs(struct ctx *c, json_t *v, const char *path, struct mcpd_kv **arr, size_t *n,
                    mcpd__cfg_check_fn check_key, mcpd__cfg_check_fn check_value)
{
    char sub[KEY_PATH_MAX];
    const char *key;
    json_t *val;
    int rc;

    if (!json_is_object(v))
        return mcpd__cfg_failat(c, 0, 0, "key '%s': expected an object of strings", path);
    if (json_object_size(v) > MCPD_MAX_CONFIG_ITEMS)
        return mcpd__cfg_failat(c, 0, 0, "key '%s': too many entries (at most %u)", path,
                                MCPD_MAX_CONFIG_ITEMS);
    if ((*arr = calloc(json_object_size(v) + 1, sizeof(**arr))) == NULL)
        return mcpd__cfg_oom(c);
    json_object_foreach (v, key, val) {
        struct mcpd_kv *kv = &(*arr)[*n];
        if ((rc = check_key(c, 0, 0, path, key)) != 0)
            return rc;
        if ((kv->key = strdup(key)) == NULL)
            return mcpd__cfg_oom(c);
        (*n)++;
        mcpd__cfg_join(sub, sizeof(sub), path, key);
        if ((rc = json_string_dup(c, val, sub, &kv->value)) != 0 ||
            (rc = check_value(c, 0, 0, sub, kv->value)) != 0)
            return rc;
    }
    return 0;
}

/* One key of an mcpServers entry. */
static int json_server_key(struct ctx *c, const char *key, json_t *v, const char *path,
                           struct mcpd_server_config *s)
{
    char sub[KEY_PATH_MAX];
    int rc;

    mcpd__cfg_join(sub, sizeof(sub), path, key);
    if (strcmp(key, "command") == 0) {
        if ((rc = json_string_dup(c, v, sub, &s->command)) != 0)
            return rc;
        return resolve_command(c, 0, 0, sub, &s->command);
    }
    if (strcmp(key, "args") == 0)
        return json_args(c, v, sub, s);
    if (strcmp(key, "env") == 0)
        return json_kvs(c, v, sub, &s->env, &s->nenv, check_env_name, mcpd__cfg_no_check);
    if (strcmp(key, "cwd") == 0) {
        if ((rc = json_string_dup(c, v, sub, &s->cwd)) != 0)
            return rc;
        return s->cwd[0] ? 0 : mcpd__cfg_failat(c, 0, 0, "key '%s': must not be empty", sub);
    }
    if (strcmp(key, "url") == 0) {
        if ((rc = json_string_dup(c, v, sub, &s->url)) != 0)
            return rc;
        return check_url(c, 0, 0, sub, s->url);
    }
    if (strcmp(key, "headers") == 0)
        return json_kvs(c, v, sub, &s->headers, &s->nheaders, check_header_name,
                        check_header_value);
    if (strcmp(key, "type") == 0) {
        /* clients write "stdio", "http", "streamable-http" or "sse" here */
        if (!json_is_string(v))
            return mcpd__cfg_failat(c, 0, 0, "key '%s': expected a string", sub);
        if (strcmp(json_string_value(v), "stdio") == 0)
            return 0;
        return parse_transport(c, 0, 0, sub, json_string_value(v), s);
    }
    return mcpd__cfg_failat(c, 0, 0, "unknown key '%.64s' in '%s'", key, path);
}

static int json_server(struct ctx *c, const char *name, json_t *v)
{
    struct mcpd_server_config *s;
    char path[KEY_PATH_MAX];
    const char *key;
    json_t *fv;
    int rc;

    mcpd__cfg_join(path, sizeof(path), "mcpServers", name);
    if ((rc = mcpd__cfg_check_name(c, 0, 0, name)) != 0)
        return rc;
    if ((rc = new_server(c, name, 0, 0, &s)) != 0)
        return rc;
    if (!json_is_object(v))
        return mcpd__cfg_failat(c, 0, 0, "key '%s': expected an object", path);
    json_object_foreach (v, key, fv) {
        if (json_is_null(fv))
            continue;
        if ((rc = json_server_key(c, key, fv, path, s)) != 0)
            return rc;
    }
    return check_server_kind(c, 0, 0, path, s);
}

static int parse_json(struct ctx *c, const char *data, size_t len)
{
    json_t *root, *servers = NULL, *v;
    json_error_t err;
    const char *key;
    int rc = 0;

    if ((root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &err)) == NULL)
        return mcpd__cfg_failat(c, err.line, err.column, "invalid JSON: %s", err.text);
    add_section(c->cfg, "mcpServers", NULL, NULL, data, len);
    json_object_foreach (root, key, v) {
        if (strcmp(key, "mcpServers") != 0) {
            rc = mcpd__cfg_failat(
                c, 0, 0, "unknown top-level key '%.64s' (a JSON config holds only 'mcpServers')",
                key);
            goto out;
        }
        servers = v;
    }
    if (!json_is_object(servers)) {
        rc = mcpd__cfg_failat(c, 0, 0, "a JSON config must hold an 'mcpServers' object");
        goto out;
    }
    if (json_object_size(servers) > MCPD_MAX_SERVERS) {
        rc = mcpd__cfg_failat(c, 0, 0, "key 'mcpServers': too many entries (at most %d)",
                              MCPD_MAX_SERVERS);
        goto out;
    }
    if ((rc = alloc_servers(c, json_object_size(servers))) != 0)
        goto out;
    json_object_foreach (servers, key, v) {
        if ((rc = json_server(c, key, v)) != 0)
            goto out;
    }
out:
    json_decref(root);
    return rc;
}

/* ---- defaults, entry points ----------------------------------------------------------------- */

static int set_defaults(struct ctx *c, const char *name)
{
    struct mcpd_config *cfg = c->cfg;

    cfg->path = strdup(name);
    cfg->http_path = strdup("/mcp");
    cfg->separator = strdup("__");
    if (cfg->path == NULL || cfg->http_path == NULL || cfg->separator == NULL)
        return mcpd__cfg_oom(c);
    cfg->prefix = MCPD_PREFIX_AUTO;
    cfg->log_level = MCPD_LOG_INFO;
    cfg->limits.max_message = (size_t)MCPD_MAX_MESSAGE;
    cfg->limits.max_sessions = MCPD_MAX_SESSIONS;
    cfg->limits.max_inflight = MCPD_MAX_INFLIGHT;
    cfg->limits.max_connections = MCPD_MAX_CONNECTIONS;
    cfg->limits.page_size = MCPD_LIST_PAGE_SIZE;
    cfg->limits.session_idle_ms = MCPD_SESSION_IDLE_MS;
    cfg->limits.input_wait_ms = MCPD_MRTR_PARK_MS;
    cfg->limits.header_timeout_ms = MCPD_HEADER_TIMEOUT_MS;
    cfg->limits.body_timeout_ms = MCPD_BODY_TIMEOUT_MS;
    cfg->limits.idle_timeout_ms = MCPD_IDLE_TIMEOUT_MS;
    cfg->agent_ping_interval_ms = MCPD_AGENT_PING_MS;
    cfg->agent_ping_timeout_ms = MCPD_AGENT_PONG_TIMEOUT_MS;
    cfg->agent_call_timeout_ms = MCPD_CALL_TIMEOUT_MS;
    cfg->agent_max_message = MCPD_MAX_AGENT_MESSAGE_DEFAULT;
    return 0;
}

static int add_host(struct ctx *c, const char *host)
{
    struct mcpd_config *cfg = c->cfg;

    for (size_t i = 0; i < cfg->nallowed_hosts; i++)
        if (strcasecmp(cfg->allowed_hosts[i], host) == 0)
            return 0;
    if ((cfg->allowed_hosts[cfg->nallowed_hosts] = strdup(host)) == NULL)
        return mcpd__cfg_oom(c);
    cfg->nallowed_hosts++;
    return 0;
}

/* Derived defaults: allowed_hosts is the loopback names plus the listen host. */
static int finish(struct ctx *c)
{
    static const char *const loopback[] = { "localhost", "127.0.0.1", "[::1]" };
    struct mcpd_config *cfg = c->cfg;
    char host[HTTP_PATH_MAX];
    int rc = 0;

    if (c->hosts_set)
        return 0;
    if ((cfg->allowed_hosts = calloc(4, sizeof(*cfg->allowed_hosts))) == NULL)
        return mcpd__cfg_oom(c);
    for (size_t i = 0; i < 3 && rc == 0; i++)
        rc = add_host(c, loopback[i]);
    if (rc == 0 && cfg->listen_host != NULL) {
        snprintf(host, sizeof(host), strchr(cfg->listen_host, ':') ? "[%s]" : "%s",
                 cfg->listen_host);
        rc = add_host(c, host);
    }
    return rc;
}

void mcpd__cfg_ctx_init(struct ctx *c, const char *name, struct mcpd_diag *diag,
                        struct mcpd_diag *scratch)
{
    memset(c, 0, sizeof(*c));
    c->diag = diag ? diag : scratch;
    c->name = name;
    memset(c->diag, 0, sizeof(*c->diag));
}

int mcpd__cfg_read_fd(struct ctx *c, int fd, struct mcpd_buf *b)
{
    char chunk[16384];
    ssize_t r;
    int rc = 0;

    mcpd_buf_init(b, (size_t)MCPD_MAX_CONFIG_FILE);
    while (rc == 0 && (r = read(fd, chunk, sizeof(chunk))) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = mcpd__cfg_failat(c, 0, 0, "cannot read: %s", strerror(errno));
        else if ((rc = mcpd_buf_append(b, chunk, (size_t)r)) == MCPD_ENOMEM)
            rc = mcpd__cfg_oom(c);
        else if (rc != 0)
            rc = mcpd__cfg_failat(c, 0, 0, "file is larger than %u bytes", MCPD_MAX_CONFIG_FILE);
    }
    return rc;
}

int mcpd_config_parse(struct mcpd_config **out, const char *name, const char *data, size_t len,
                      struct mcpd_diag *diag)
{
    struct mcpd_diag scratch;
    struct ctx c;
    size_t i = 0;
    int rc;

    *out = NULL;
    mcpd__cfg_ctx_init(&c, name ? name : "<config>", diag, &scratch);
    if (len > (size_t)MCPD_MAX_CONFIG_FILE)
        return mcpd__cfg_failat(&c, 0, 0, "file is larger than %u bytes", MCPD_MAX_CONFIG_FILE);
    while (i < len && strchr(" \t\r\n", data[i]) != NULL && data[i] != '\0')
        i++;
    if (i == len)
        return mcpd__cfg_failat(&c, 0, 0, "the configuration is empty");
    if ((c.cfg = calloc(1, sizeof(*c.cfg))) == NULL)
        return mcpd__cfg_oom(&c);
    if ((rc = set_defaults(&c, c.name)) == 0)
        rc = data[i] == '{' ? parse_json(&c, data, len) : parse_yaml(&c, data, len);
    if (rc == 0)
        rc = finish(&c);
    if (rc == 0)
        rc = mcpd__cfg_finish_plugins(&c);
    if (rc == 0)
        rc = mcpd__cfg_check_policy(&c);
    if (rc != 0) {
        mcpd_config_free(c.cfg);
        return rc;
    }
    *out = c.cfg;
    return 0;
}

int mcpd_config_load(struct mcpd_config **out, const char *path, struct mcpd_diag *diag)
{
    struct mcpd_diag scratch;
    struct mcpd_buf b;
    struct ctx c;
    int fd, rc;

    *out = NULL;
    mcpd__cfg_ctx_init(&c, path, diag, &scratch);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return mcpd__cfg_failat(&c, 0, 0, "cannot open: %s", strerror(errno));
    rc = mcpd__cfg_read_fd(&c, fd, &b);
    close(fd);
    if (rc == 0)
        rc = mcpd_config_parse(out, path, b.p ? b.p : "", b.len, c.diag);
    mcpd_buf_dispose(&b);
    return rc;
}

void mcpd__cfg_free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void mcpd_config_free(struct mcpd_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->nagent_timeouts; i++)
        free(cfg->agent_timeouts[i].resource);
    free(cfg->agent_timeouts);
    for (size_t i = 0; i < cfg->nservers; i++) {
        struct mcpd_server_config *s = &cfg->servers[i];
        free(s->name);
        free(s->command);
        mcpd__cfg_free_strv(s->args, s->nargs);
        for (size_t j = 0; j < s->nenv; j++) {
            free(s->env[j].key);
            free(s->env[j].value);
        }
        free(s->env);
        free(s->cwd);
        for (size_t j = 0; j < s->nheaders; j++) {
            free(s->headers[j].key);
            free(s->headers[j].value);
        }
        free(s->headers);
        free(s->url);
        mcpd__cfg_free_dims(s->dims, s->ndims);
        free(s->credential);
    }
    free(cfg->servers);
    mcpd__cfg_free_plugins(cfg);
    mcpd__cfg_free_policy(cfg);
    mcpd__cfg_free_cred(cfg);
    free(cfg->path);
    free(cfg->listen_host);
    free(cfg->listen_tls_cert);
    free(cfg->listen_tls_key);
    free(cfg->http_path);
    mcpd__cfg_free_strv(cfg->allowed_origins, cfg->nallowed_origins);
    mcpd__cfg_free_strv(cfg->allowed_hosts, cfg->nallowed_hosts);
    free(cfg->separator);
    free(cfg);
}
