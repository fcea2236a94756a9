/*
 * manifest.c - plugin manifest.yaml (see manifest.h). Parsed with the
 * configuration reader's helpers (config_int.h) in literal mode: a manifest
 * comes from a plugin author, so it never sees mcpd's environment.
 */
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_int.h"
#include "error.h"
#include "limits.h"

#define M(m)  offsetof(struct mcpd_manifest, m)
#define OP(m) offsetof(struct mcpd_manifest_op, m)
#define AU(m) offsetof(struct mcpd_manifest_auth, m)

/* ---- YAML -> JSON ---------------------------------------------------------------------------- */

static json_t *plain_scalar(const char *s)
{
    char *end;
    if (strcmp(s, "true") == 0)
        return json_true();
    if (strcmp(s, "false") == 0)
        return json_false();
    if (s[0] == '\0' || strcmp(s, "null") == 0 || strcmp(s, "~") == 0)
        return json_null();
    if ((s[0] >= '0' && s[0] <= '9') || ((s[0] == '-') && s[1] >= '0' && s[1] <= '9')) {
        errno = 0;
        long long ll = strtoll(s, &end, 10);
        if (*end == '\0' && errno == 0)
            return json_integer(ll);
        double d = strtod(s, &end);
        if (*end == '\0' && errno == 0)
            return json_real(d);
    }
    return json_string(s);
}

int mcpd__cfg_to_json(struct ctx *c, yaml_node_t *v, const char *path, int depth, json_t **out)
{
    char sub[KEY_PATH_MAX];
    json_t *j = NULL, *item;
    yaml_node_t *k, *n;
    int rc = 0;

    *out = NULL;
    if (depth > YAML_MAX_DEPTH)
        return mcpd__cfg_fail(c, v, "key '%s': nested too deeply", path);
    if (v->type == YAML_SCALAR_NODE) {
        char *s;
        if (strlen((const char *)v->data.scalar.value) != v->data.scalar.length)
            return mcpd__cfg_fail(c, v, "key '%s': value contains a NUL byte", path);
        if (v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
            if (mcpd__cfg_is_null(v))
                j = json_null();
            else if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
                return rc;
            else {
                j = plain_scalar(s);
                free(s);
            }
        } else {
            if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
                return rc;
            j = json_string(s);
            free(s);
        }
        if (j == NULL)
            return mcpd__cfg_fail(c, v, "key '%s': not valid UTF-8", path);
        *out = j;
        return 0;
    }
    if (v->type == YAML_SEQUENCE_NODE) {
        size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
        if (cnt > MCPD_MAX_CONFIG_ITEMS)
            return mcpd__cfg_fail(c, v, "key '%s': too many entries", path);
        if ((j = json_array()) == NULL)
            return mcpd__cfg_oom(c);
        for (size_t i = 0; i < cnt && rc == 0; i++) {
            mcpd__cfg_join_index(sub, sizeof(sub), path, i);
            if ((rc = mcpd__cfg_take_node(c, v->data.sequence.items.start[i], &n)) == 0 &&
                (rc = mcpd__cfg_to_json(c, n, sub, depth + 1, &item)) == 0)
                json_array_append_new(j, item);
        }
    } else {
        if ((rc = mcpd__cfg_check_mapping(c, v, path, MCPD_MAX_CONFIG_ITEMS)) != 0)
            return rc;
        if ((j = json_object()) == NULL)
            return mcpd__cfg_oom(c);
        for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
             rc == 0 && p < v->data.mapping.pairs.top; p++) {
            const char *key = mcpd__cfg_key_of(c, p, &k);
            mcpd__cfg_join(sub, sizeof(sub), path, key);
            if ((rc = mcpd__cfg_take_node(c, p->value, &n)) == 0 &&
                (rc = mcpd__cfg_to_json(c, n, sub, depth + 1, &item)) == 0)
                json_object_set_new(j, key, item);
        }
    }
    if (rc != 0) {
        json_decref(j);
        return rc;
    }
    *out = j;
    return 0;
}

/* ---- JSON Schema subset ---------------------------------------------------------------------- */

static bool type_ok(const char *type, const json_t *v)
{
    if (strcmp(type, "string") == 0)
        return json_is_string(v);
    if (strcmp(type, "integer") == 0)
        return json_is_integer(v);
    if (strcmp(type, "number") == 0)
        return json_is_number(v);
    if (strcmp(type, "boolean") == 0)
        return json_is_boolean(v);
    if (strcmp(type, "object") == 0)
        return json_is_object(v);
    if (strcmp(type, "array") == 0)
        return json_is_array(v);
    if (strcmp(type, "null") == 0)
        return json_is_null(v);
    return false;
}

static bool type_known(const char *t)
{
    static const char *const k[] = { "string", "integer", "number", "boolean",
                                     "object", "array",   "null" };
    for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++)
        if (strcmp(k[i], t) == 0)
            return true;
    return false;
}

const char *mcpd_manifest_check_schema(const json_t *schema, const json_t *value, char *err,
                                       size_t errlen)
{
    const json_t *props = json_object_get(schema, "properties"), *req, *t, *sv;
    const char *key;
    size_t i;

    if (!json_is_object(value)) {
        snprintf(err, errlen, "expected an object");
        return err;
    }
    req = json_object_get(schema, "required");
    json_array_foreach (req, i, t) {
        if (json_is_string(t) && json_object_get(value, json_string_value(t)) == NULL) {
            snprintf(err, errlen, "missing required key '%.64s'", json_string_value(t));
            return err;
        }
    }
    json_object_foreach ((json_t *)value, key, sv) {
        const json_t *ps = json_object_get(props, key);
        const char *type = json_string_value(json_object_get(ps, "type"));
        if (ps == NULL && json_is_false(json_object_get(schema, "additionalProperties"))) {
            snprintf(err, errlen, "unknown key '%.64s'", key);
            return err;
        }
        if (type && !type_ok(type, sv)) {
            snprintf(err, errlen, "key '%.64s' must be of type %s", key, type);
            return err;
        }
    }
    return NULL;
}

/* A schema we can use: an object schema whose properties have known types. */
static int check_object_schema(struct ctx *c, yaml_node_t *at, const char *path, json_t *s)
{
    const json_t *props, *req, *v;
    const char *key, *type;
    size_t i;

    if (!json_is_object(s) || !json_is_string(json_object_get(s, "type")) ||
        strcmp(json_string_value(json_object_get(s, "type")), "object") != 0)
        return mcpd__cfg_fail(c, at, "key '%s': must be a schema with 'type: object'", path);
    props = json_object_get(s, "properties");
    if (props && !json_is_object(props))
        return mcpd__cfg_fail(c, at, "key '%s': 'properties' must be a mapping", path);
    json_object_foreach ((json_t *)props, key, v) {
        if (!json_is_object(v))
            return mcpd__cfg_fail(c, at, "key '%s': property '%.64s' must be a mapping", path, key);
        type = json_string_value(json_object_get(v, "type"));
        if (json_object_get(v, "type") && (type == NULL || !type_known(type)))
            return mcpd__cfg_fail(c, at, "key '%s': property '%.64s' has an unknown type", path,
                                  key);
    }
    req = json_object_get(s, "required");
    if (req && !json_is_array(req))
        return mcpd__cfg_fail(c, at, "key '%s': 'required' must be a list", path);
    json_array_foreach (req, i, v) {
        if (!json_is_string(v) || json_object_get(props, json_string_value(v)) == NULL)
            return mcpd__cfg_fail(c, at, "key '%s': required[%zu] names no property", path, i);
    }
    return 0;
}

/* ---- URL templates --------------------------------------------------------------------------- */

static bool is_ident(const char *s, size_t n, bool dash)
{
    if (n == 0 || n > 64 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || (dash && ch == '-')))
            return false;
    }
    return true;
}

/* Iterates the placeholders of a valid template: calls fn(name, len, plus, config, arg). */
typedef int (*ph_fn)(const char *name, size_t len, bool plus, bool config, void *arg);

static const char *walk_template(const char *t, ph_fn fn, void *arg, int *rc)
{
    const char *p = t;
    *rc = 0;
    while (*p) {
        if (*p == '}')
            return "unbalanced '}'";
        if (*p != '{') {
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
                return "spaces, control and non-ASCII characters must be percent-encoded";
            p++;
            continue;
        }
        const char *end = strchr(p, '}');
        const char *name = p + 1;
        bool plus = false, config = false;
        if (end == NULL)
            return "unterminated '{'";
        if (memchr(name, '{', (size_t)(end - name)))
            return "nested '{'";
        if (*name == '+') {
            plus = true;
            name++;
        } else if (strncmp(name, "config.", 7) == 0) {
            config = true;
            name += 7;
        }
        if (!is_ident(name, (size_t)(end - name), config))
            return "a placeholder is {arg}, {+arg} or {config.key}";
        if (fn && (*rc = fn(name, (size_t)(end - name), plus, config, arg)) != 0)
            return "placeholder refused";
        p = end + 1;
    }
    return NULL;
}

const char *mcpd_manifest_check_template(const char *tmpl)
{
    int rc;
    if (strncmp(tmpl, "http://", 7) != 0 && strncmp(tmpl, "https://", 8) != 0 &&
        strncmp(tmpl, "{config.", 8) != 0)
        return "must start with http://, https:// or {config.key}";
    return walk_template(tmpl, NULL, NULL, &rc);
}

int mcpd_manifest_pct_encode(struct mcpd_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        int rc;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            rc = mcpd_buf_append(out, s + i, 1);
        } else {
            char e[3] = { '%', hex[ch >> 4], hex[ch & 15] };
            rc = mcpd_buf_append(out, e, 3);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* A scalar argument as text into tmp (numbers, booleans) or borrowed (strings). */
static const char *scalar_text(const json_t *v, char *tmp, size_t n, size_t *len)
{
    if (json_is_string(v)) {
        *len = json_string_length(v);
        return json_string_value(v);
    }
    if (json_is_integer(v))
        snprintf(tmp, n, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(tmp, n, "%.17g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(tmp, n, "%s", json_is_true(v) ? "true" : "false");
    else
        return NULL;
    *len = strlen(tmp);
    return tmp;
}

struct expand_ctx {
    struct mcpd_buf *out;
    const json_t *args, *config;
    bool encode;
    char *err;
    size_t errlen;
};

static int expand_one(const char *name, size_t len, bool plus, bool config, void *arg)
{
    struct expand_ctx *x = arg;
    char key[72], tmp[64];
    const json_t *v;
    const char *s;
    size_t slen;

    memcpy(key, name, len);
    key[len] = '\0';
    v = json_object_get(config ? x->config : x->args, key);
    if (v == NULL || json_is_null(v)) {
        snprintf(x->err, x->errlen,
                 config ? "plugin config key '%s' is not set" : "missing argument '%s'", key);
        return MCPD_EPROTO;
    }
    if ((s = scalar_text(v, tmp, sizeof(tmp), &slen)) == NULL) {
        snprintf(x->err, x->errlen, "argument '%s' must be a string, number or boolean", key);
        return MCPD_EPROTO;
    }
    if (memchr(s, '\0', slen) || (!x->encode && strpbrk(s, "\r\n"))) {
        snprintf(x->err, x->errlen, "argument '%s' holds a forbidden character", key);
        return MCPD_EPROTO;
    }
    if (config || !x->encode)
        return mcpd_buf_append(x->out, s, slen);
    if (!plus)
        return mcpd_manifest_pct_encode(x->out, s, slen);
    for (const char *seg = s, *end = s + slen; seg <= end;) {
        const char *sl = memchr(seg, '/', (size_t)(end - seg));
        size_t sn = sl ? (size_t)(sl - seg) : (size_t)(end - seg);
        int rc;
        if (sn == 0 || (sn == 1 && seg[0] == '.') || (sn == 2 && seg[0] == '.' && seg[1] == '.')) {
            snprintf(x->err, x->errlen, "argument '%s' has an empty, '.' or '..' path segment",
                     key);
            return MCPD_EPROTO;
        }
        if ((rc = mcpd_manifest_pct_encode(x->out, seg, sn)) != 0)
            return rc;
        if (sl == NULL)
            break;
        if ((rc = mcpd_buf_append(x->out, "/", 1)) != 0)
            return rc;
        seg = sl + 1;
    }
    return 0;
}

int mcpd_manifest_expand(struct mcpd_buf *out, const char *tmpl, const json_t *args,
                         const json_t *config, bool encode, char *err, size_t errlen)
{
    struct expand_ctx x = { out, args, config, encode, err, errlen };
    const char *p = tmpl;
    int rc = 0;

    err[0] = '\0';
    while (*p && rc == 0) {
        const char *open = strchr(p, '{');
        size_t lit = open ? (size_t)(open - p) : strlen(p);
        if ((rc = mcpd_buf_append(out, p, lit)) != 0 || open == NULL)
            break;
        const char *end = strchr(open, '}');
        const char *name = open + 1;
        bool plus = false, config_ref = false;
        if (end == NULL) {
            snprintf(err, errlen, "bad template");
            return MCPD_EPROTO;
        }
        if (*name == '+') {
            plus = true;
            name++;
        } else if (strncmp(name, "config.", 7) == 0) {
            config_ref = true;
            name += 7;
        }
        if (!is_ident(name, (size_t)(end - name), config_ref)) {
            snprintf(err, errlen, "bad template");
            return MCPD_EPROTO;
        }
        rc = expand_one(name, (size_t)(end - name), plus, config_ref, &x);
        p = end + 1;
    }
    if (rc == MCPD_ETOOBIG && err[0] == '\0')
        snprintf(err, errlen, "expanded value longer than %zu bytes", out->max);
    return rc;
}

/* ---- the manifest ---------------------------------------------------------------------------- */

static int f_strlist(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base)
{
    return mcpd__cfg_strlist(c, v, path, f, base, true);
}

static int f_json(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                  void *base)
{
    json_t **slot = AT(base, f->off, json_t *);
    int rc;
    json_decref(*slot);
    *slot = NULL;
    if ((rc = mcpd__cfg_to_json(c, v, path, 0, slot)) != 0)
        return rc;
    return check_object_schema(c, v, path, *slot);
}

static int f_headers(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base)
{
    struct mcpd_manifest_op *op = base;
    char sub[KEY_PATH_MAX];
    yaml_node_t *k, *val;
    int rc;

    if ((rc = mcpd__cfg_check_mapping(c, v, path, 64)) != 0)
        return rc;
    op->headers = calloc((size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start) + 1,
                         sizeof(*op->headers));
    if (op->headers == NULL)
        return mcpd__cfg_oom(c);
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        struct mcpd_kv *kv = &op->headers[op->nheaders];
        const char *key = mcpd__cfg_key_of(c, p, &k);
        for (const char *s = key; *s; s++)
            if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                  (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s)))
                return mcpd__cfg_fail(c, k, "key '%s': '%.64s' is not a valid HTTP header name",
                                      path, key);
        if ((kv->key = strdup(key)) == NULL)
            return mcpd__cfg_oom(c);
        op->nheaders++;
        mcpd__cfg_join(sub, sizeof(sub), path, key);
        if ((rc = mcpd__cfg_take_node(c, p->value, &val)) != 0 ||
            (rc = mcpd__cfg_scalar(c, val, sub, &kv->value)) != 0)
            return rc;
        if (strpbrk(kv->value, "\r\n"))
            return mcpd__cfg_fail(c, val, "key '%s': header values must not contain line breaks",
                                  sub);
        int dummy;
        const char *why = walk_template(kv->value, NULL, NULL, &dummy);
        if (why)
            return mcpd__cfg_fail(c, val, "key '%s': bad template: %s", sub, why);
    }
    return 0;
}

static const struct field response_fields[] = {
    { .key = "text", .fn = mcpd__cfg_f_string, .off = OP(text_pointer) },
    { .key = NULL },
};

static const struct field op_fields[] = {
    { .key = "description", .fn = mcpd__cfg_f_string, .off = OP(description) },
    { .key = "input", .fn = f_json, .off = OP(input) },
    { .key = "method", .fn = mcpd__cfg_f_string, .off = OP(method) },
    { .key = "url", .fn = mcpd__cfg_f_string, .off = OP(url) },
    { .key = "query", .fn = f_strlist, .off = OP(query.v), .off2 = OP(query.n) },
    { .key = "body", .fn = f_strlist, .off = OP(body.v), .off2 = OP(body.n) },
    { .key = "headers", .fn = f_headers },
    { .key = "response", .fn = mcpd__cfg_f_section, .sub = response_fields },
    { .key = NULL },
};

/* Placeholders of an op's templates must name a declared argument / config key. */
struct ph_check {
    const json_t *props, *config_props;
    char bad[72];
    bool bad_config;
};

static int ph_declared(const char *name, size_t len, bool plus, bool config, void *arg)
{
    struct ph_check *pc = arg;
    (void)plus;
    memcpy(pc->bad, name, len);
    pc->bad[len] = '\0';
    pc->bad_config = config;
    return json_object_get(config ? pc->config_props : pc->props, pc->bad) ? 0 : -1;
}

static int check_refs(struct ctx *c, yaml_node_t *at, const char *path, const char *tmpl,
                      const struct mcpd_manifest *m, const struct mcpd_manifest_op *op)
{
    struct ph_check pc = { json_object_get(op->input, "properties"),
                           json_object_get(m->config_schema, "properties"), "", false };
    int rc;
    walk_template(tmpl, ph_declared, &pc, &rc);
    if (rc != 0)
        return mcpd__cfg_fail(
            c, at, "key '%s': '{%s%s}' names no %s", path, pc.bad_config ? "config." : "", pc.bad,
            pc.bad_config ? "property of the config schema" : "property of the input schema");
    return 0;
}

static int check_op(struct ctx *c, yaml_node_t *at, const char *path, struct mcpd_manifest *m,
                    struct mcpd_manifest_op *op)
{
    static const char *const methods[] = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE" };
    const json_t *props;
    const char *why;
    bool ok = false;
    int rc;

    if (op->url == NULL || op->method == NULL)
        return mcpd__cfg_fail(c, at, "key '%s': 'method' and 'url' are required", path);
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        ok |= strcmp(methods[i], op->method) == 0;
    if (!ok)
        return mcpd__cfg_fail(c, at,
                              "key '%s.method': expected GET, HEAD, POST, PUT, PATCH or "
                              "DELETE",
                              path);
    if ((why = mcpd_manifest_check_template(op->url)) != NULL)
        return mcpd__cfg_fail(c, at, "key '%s.url': bad template: %s", path, why);
    if (op->input == NULL &&
        (op->input = json_pack("{s:s, s:{}}", "type", "object", "properties")) == NULL)
        return mcpd__cfg_oom(c);
    if ((rc = check_refs(c, at, path, op->url, m, op)) != 0)
        return rc;
    for (size_t i = 0; i < op->nheaders; i++)
        if ((rc = check_refs(c, at, path, op->headers[i].value, m, op)) != 0)
            return rc;
    props = json_object_get(op->input, "properties");
    for (size_t i = 0; i < op->query.n + op->body.n; i++) {
        const char *a = i < op->query.n ? op->query.v[i] : op->body.v[i - op->query.n];
        if (json_object_get(props, a) == NULL)
            return mcpd__cfg_fail(c, at, "key '%s': '%.64s' (query/body) names no input property",
                                  path, a);
    }
    if (op->text_pointer && op->text_pointer[0] != '/')
        return mcpd__cfg_fail(c, at, "key '%s.response.text': a JSON pointer starts with '/'",
                              path);
    return 0;
}

static int f_operations(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                        void *base)
{
    struct mcpd_manifest *m = base;
    char sub[KEY_PATH_MAX];
    yaml_node_t *k, *val;
    int rc;
    (void)f;

    if ((rc = mcpd__cfg_check_mapping(c, v, path, MCPD_MAX_PLUGIN_OPS)) != 0)
        return rc;
    m->ops = calloc((size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start) + 1,
                    sizeof(*m->ops));
    if (m->ops == NULL)
        return mcpd__cfg_oom(c);
    for (yaml_node_pair_t *p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        struct mcpd_manifest_op *op = &m->ops[m->nops];
        const char *name = mcpd__cfg_key_of(c, p, &k);
        if (!is_ident(name, strlen(name), true) && strspn(name, "abcdefghijklmnopqrstuvwxyz"
                                                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                "0123456789_-.") != strlen(name))
            return mcpd__cfg_fail(c, k,
                                  "key '%s': operation names use [A-Za-z0-9_.-], got "
                                  "'%.64s'",
                                  path, name);
        if (strlen(name) == 0 || strlen(name) > 128)
            return mcpd__cfg_fail(c, k, "key '%s': operation names are 1-128 characters", path);
        if ((op->name = strdup(name)) == NULL)
            return mcpd__cfg_oom(c);
        m->nops++;
        mcpd__cfg_join(sub, sizeof(sub), path, name);
        if ((rc = mcpd__cfg_take_node(c, p->value, &val)) != 0)
            return rc;
        if (mcpd__cfg_is_null(val))
            return mcpd__cfg_fail(c, val, "key '%s': expected a mapping", sub);
        if ((rc = mcpd__cfg_walk_mapping(c, val, sub, op_fields, op)) != 0 ||
            (rc = check_op(c, val, sub, m, op)) != 0)
            return rc;
    }
    return 0;
}

static int f_auth_type(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                       void *base)
{
    static const char *const names[] = { "none", "api_key", "bearer", "oauth2" };
    struct mcpd_manifest_auth *a = base;
    char *s;
    int rc;
    (void)f;
    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            a->type = (enum mcpd_auth_type)(MCPD_AUTH_NONE + i);
    free(s);
    return a->type
               ? 0
               : mcpd__cfg_fail(c, v, "key '%s': expected none, api_key, bearer or oauth2", path);
}

static int f_auth_in(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base)
{
    struct mcpd_manifest_auth *a = base;
    char *s;
    int rc;
    (void)f;
    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    rc = strcmp(s, "query") == 0 || strcmp(s, "header") == 0 ? 0 : -1;
    a->in_query = strcmp(s, "query") == 0;
    free(s);
    return rc == 0 ? 0 : mcpd__cfg_fail(c, v, "key '%s': expected header or query", path);
}

static int f_url(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f, void *base)
{
    char **slot = AT(base, f->off, char *);
    int rc;
    if ((rc = mcpd__cfg_f_string(c, v, path, f, base)) != 0)
        return rc;
    if (strncmp(*slot, "https://", 8) != 0 && strncmp(*slot, "http://", 7) != 0)
        return mcpd__cfg_fail(c, v, "key '%s': expected an http:// or https:// URL", path);
    return 0;
}

static const struct field auth_fields[] = {
    { .key = "type", .fn = f_auth_type },
    { .key = "in", .fn = f_auth_in },
    { .key = "name", .fn = mcpd__cfg_f_string, .off = AU(param) },
    { .key = "authorize_url", .fn = f_url, .off = AU(authorize_url) },
    { .key = "token_url", .fn = f_url, .off = AU(token_url) },
    { .key = "device_url", .fn = f_url, .off = AU(device_url) },
    { .key = "scopes", .fn = f_strlist, .off = AU(scopes.v), .off2 = AU(scopes.n) },
    { .key = NULL },
};

static int f_auth(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                  void *base)
{
    struct mcpd_manifest *m = base;
    char sub[KEY_PATH_MAX];
    yaml_node_t *item;
    size_t n;
    int rc;
    (void)f;

    if (v->type != YAML_SEQUENCE_NODE)
        return mcpd__cfg_fail(c, v, "key '%s': expected a list, got %s", path,
                              mcpd__cfg_node_kind(v));
    n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n > 8)
        return mcpd__cfg_fail(c, v, "key '%s': at most 8 methods", path);
    if ((m->auth = calloc(n + 1, sizeof(*m->auth))) == NULL)
        return mcpd__cfg_oom(c);
    for (size_t i = 0; i < n; i++) {
        struct mcpd_manifest_auth *a = &m->auth[i];
        mcpd__cfg_join_index(sub, sizeof(sub), path, i);
        m->nauth++;
        if ((rc = mcpd__cfg_take_node(c, v->data.sequence.items.start[i], &item)) != 0 ||
            (rc = mcpd__cfg_walk_mapping(c, item, sub, auth_fields, a)) != 0)
            return rc;
        if (a->type == 0)
            return mcpd__cfg_fail(c, item, "key '%s': missing 'type'", sub);
        if (a->type == MCPD_AUTH_API_KEY && a->param == NULL)
            return mcpd__cfg_fail(c, item, "key '%s': api_key needs 'name' (and 'in')", sub);
        if (a->type != MCPD_AUTH_API_KEY && a->param)
            return mcpd__cfg_fail(c, item, "key '%s': 'in' and 'name' are for api_key", sub);
        if (a->type == MCPD_AUTH_OAUTH2 && a->token_url == NULL)
            return mcpd__cfg_fail(c, item, "key '%s': oauth2 needs 'token_url'", sub);
        if (a->type != MCPD_AUTH_OAUTH2 &&
            (a->token_url || a->authorize_url || a->device_url || a->scopes.n))
            return mcpd__cfg_fail(c, item, "key '%s': endpoints and scopes are for oauth2", sub);
    }
    return 0;
}

static int f_dims(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                  void *base)
{
    struct mcpd_manifest *m = base;
    struct mcpd_server_config tmp;
    int rc;
    memset(&tmp, 0, sizeof(tmp));
    rc = mcpd__cfg_f_dimensions(c, v, path, f, &tmp);
    m->dims = tmp.dims;
    m->ndims = tmp.ndims;
    return rc;
}

static const struct field exec_fields[] = {
    { .key = "command", .fn = mcpd__cfg_f_string, .off = M(exec_command) },
    { .key = "args", .fn = mcpd__cfg_f_args, .off = M(exec_args), .off2 = M(nexec_args) },
    { .key = NULL },
};

static int f_config_schema(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                           void *base)
{
    return f_json(c, v, path, f, base);
}

static const struct field manifest_fields[] = {
    { .key = "name", .fn = mcpd__cfg_f_string, .off = M(name) },
    { .key = "version", .fn = mcpd__cfg_f_string, .off = M(version) },
    { .key = "description", .fn = mcpd__cfg_f_string, .off = M(description) },
    { .key = "config", .fn = f_config_schema, .off = M(config_schema) },
    { .key = "auth", .fn = f_auth },
    { .key = "dimensions", .fn = f_dims },
    { .key = "operations", .fn = f_operations },
    { .key = "exec", .fn = mcpd__cfg_f_section, .sub = exec_fields },
    { .key = NULL },
};

static int walk_manifest(struct ctx *c, yaml_node_t *root, void *arg)
{
    struct mcpd_manifest *m = arg;
    int rc;

    if (root->type != YAML_MAPPING_NODE)
        return mcpd__cfg_fail(c, root, "the manifest must be a mapping, got %s",
                              mcpd__cfg_node_kind(root));
    /* config first: operations refer to its properties, whatever the key order */
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE &&
            strcmp((const char *)k->data.scalar.value, "config") == 0) {
            yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
            json_decref(m->config_schema);
            m->config_schema = NULL;
            if (v && !mcpd__cfg_is_null(v) &&
                (rc = mcpd__cfg_to_json(c, v, "config", 0, &m->config_schema)) != 0)
                return rc;
            if (v && !mcpd__cfg_is_null(v) &&
                (rc = check_object_schema(c, v, "config", m->config_schema)) != 0)
                return rc;
            memset(c->used, 0, c->nnodes); /* the walk below takes these nodes again */
            c->used[0] = 1;
            break; /* a duplicate key is the walk's error */
        }
    }
    if ((rc = mcpd__cfg_walk_mapping(c, root, "", manifest_fields, m)) != 0)
        return rc;
    if (m->name == NULL || !mcpd_config_is_valid_name(m->name))
        return mcpd__cfg_fail(c, root, "key 'name': required, ^[a-z0-9][a-z0-9-]{0,31}$");
    if (m->version == NULL)
        return mcpd__cfg_fail(c, root, "key 'version': required");
    if ((m->nops == 0) == (m->exec_command == NULL))
        return mcpd__cfg_fail(c, root, "give either 'operations' (at least one) or 'exec'");
    if (m->exec_command && (m->exec_command[0] == '/' || strstr(m->exec_command, "..")))
        return mcpd__cfg_fail(c, root,
                              "key 'exec.command': must be relative to the plugin "
                              "directory, without '..'");
    return 0;
}

int mcpd_manifest_parse(struct mcpd_manifest **out, const char *name, const char *data, size_t len,
                        struct mcpd_diag *diag)
{
    struct mcpd_diag scratch;
    struct mcpd_manifest *m;
    struct ctx c;
    int rc;

    *out = NULL;
    memset(&c, 0, sizeof(c));
    c.diag = diag ? diag : &scratch;
    c.name = name ? name : "<manifest>";
    c.literal = true;
    memset(c.diag, 0, sizeof(*c.diag));
    if (len > (size_t)MCPD_MAX_MANIFEST_FILE)
        return mcpd__cfg_failat(&c, 0, 0, "manifest is larger than %u bytes",
                                MCPD_MAX_MANIFEST_FILE);
    if (len == 0)
        return mcpd__cfg_failat(&c, 0, 0, "the manifest is empty");
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return mcpd__cfg_oom(&c);
    rc = mcpd__cfg_yaml_doc(&c, data, len, walk_manifest, m);
    if (rc != 0) {
        mcpd_manifest_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int mcpd_manifest_load(struct mcpd_manifest **out, const char *dir, struct mcpd_diag *diag)
{
    char path[4096], *data = NULL;
    struct mcpd_diag scratch;
    size_t len = 0;
    ssize_t r;
    int fd, rc;

    *out = NULL;
    diag = diag ? diag : &scratch;
    memset(diag, 0, sizeof(*diag));
    snprintf(path, sizeof(path), "%s/manifest.yaml", dir);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(diag->msg, sizeof(diag->msg), "%s: cannot open: %s", path, strerror(errno));
        return MCPD_ECONFIG;
    }
    if ((data = malloc(MCPD_MAX_MANIFEST_FILE + 1)) == NULL) {
        close(fd);
        return MCPD_ENOMEM;
    }
    while (len <= MCPD_MAX_MANIFEST_FILE &&
           (r = read(fd, data + len, MCPD_MAX_MANIFEST_FILE + 1 - len)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(diag->msg, sizeof(diag->msg), "%s: cannot read: %s", path, strerror(errno));
            close(fd);
            free(data);
            return MCPD_ECONFIG;
        }
        len += (size_t)r;
    }
    close(fd);
    rc = mcpd_manifest_parse(out, path, data, len, diag);
    free(data);
    return rc;
}

static void free_strv(struct mcpd_strv *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
}

void mcpd_manifest_free(struct mcpd_manifest *m)
{
    if (m == NULL)
        return;
    free(m->name);
    free(m->version);
    free(m->description);
    json_decref(m->config_schema);
    for (size_t i = 0; i < m->nauth; i++) {
        free(m->auth[i].param);
        free(m->auth[i].authorize_url);
        free(m->auth[i].token_url);
        free(m->auth[i].device_url);
        free_strv(&m->auth[i].scopes);
    }
    free(m->auth);
    mcpd__cfg_free_dims(m->dims, m->ndims);
    for (size_t i = 0; i < m->nops; i++) {
        struct mcpd_manifest_op *op = &m->ops[i];
        free(op->name);
        free(op->description);
        json_decref(op->input);
        free(op->method);
        free(op->url);
        free_strv(&op->query);
        free_strv(&op->body);
        for (size_t j = 0; j < op->nheaders; j++) {
            free(op->headers[j].key);
            free(op->headers[j].value);
        }
        free(op->headers);
        free(op->text_pointer);
    }
    free(m->ops);
    free(m->exec_command);
    for (size_t i = 0; i < m->nexec_args; i++)
        free(m->exec_args[i]);
    free(m->exec_args);
    free(m);
}

const struct mcpd_manifest_op *mcpd_manifest_find_op(const struct mcpd_manifest *m,
                                                     const char *name)
{
    for (size_t i = 0; i < m->nops; i++)
        if (strcmp(m->ops[i].name, name) == 0)
            return &m->ops[i];
    return NULL;
}
