/*
 * check.c - decisions about tools/call (DESIGN.md "Policy semantics").
 *
 * The bot's bindings are tried in order (its own, then its roles'); a
 * binding takes part when its resource glob matches the resource and one
 * of its tool globs the tool. Within it, every dimension it configures is
 * applied to every argument the resource declares for that dimension:
 * absent arguments pass, arguments of the wrong JSON type are denied, and
 * an argument whose name is a case variant of a constrained one ("Path")
 * is denied so that a case-insensitive upstream cannot be fed around the
 * check. The first binding that accepts everything decides (allow); when
 * none does, the first binding that took part and denied decides, or, when
 * none took part, the tool is simply not bound.
 *
 * What is forwarded is what was checked: the deciding binding's canonical
 * paths, normalised image references and canonicalised program paths are
 * written back into the arguments object.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/commands.h"
#include "policy/glob.h"
#include "policy/images.h"
#include "policy/internal.h"
#include "policy/text.h"

#define SHOWN_VALUE 96 /* bytes of a value quoted inside a reason */
#define IMAGE_MAX   600

#define REPL_MAX 32 /* arguments one binding may rewrite (more: a denial) */

/* What a binding rewrites, in order (a later value for the same name wins); owned. */
struct repl {
    size_t n;
    const char *name[REPL_MAX];
    json_t *value[REPL_MAX];
};

/* One argument under one dimension of one binding. */
struct arg_check {
    const struct mcpd__policy_dim *dim;
    const char *name;               /* the argument */
    json_t *value;                  /* borrowed from the arguments */
    struct repl *repl;              /* replacement values, applied on allow */
    struct mcpd_policy_decision *d; /* filled on deny; pattern on allow */
    bool quiet;                     /* deny without words (see try_binding) */
};

/* ---- denials -------------------------------------------------------------------------------- */

/* Denies with "<dim>: '<value>' (argument '<arg>') <what>". */
static int deny_value(const struct arg_check *c, const char *val, size_t len, const char *what)
{
    struct mcpd_policy_decision *d = c->d;
    char shown[SHOWN_VALUE], arg[sizeof(d->argument)];

    if (c->quiet)
        return -1;
    d->allow = false;
    d->pattern[0] = '\0';
    mcpd__policy_copy(d->dimension, sizeof(d->dimension), c->dim->name);
    mcpd__policy_escape(d->argument, sizeof(d->argument), c->name, strlen(c->name));
    mcpd__policy_escape(d->value, sizeof(d->value), val, len);
    mcpd__policy_escape(shown, sizeof(shown), val, len);
    mcpd__policy_escape(arg, sizeof(arg), c->name, strlen(c->name));
    snprintf(d->reason, sizeof(d->reason), "%s: '%s' (argument '%s') %s", c->dim->name, shown, arg,
             what);
    return -1;
}

static int deny_rejected(const struct arg_check *c, const char *val, size_t len, const char *why)
{
    char what[160];

    if (c->quiet)
        return -1;
    snprintf(what, sizeof(what), "is rejected: %s", why);
    return deny_value(c, val, len, what);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

/* Denies a value of the wrong JSON type (fail closed); `want` names the right ones. */
static int deny_type(const struct arg_check *c, const json_t *v, const char *want)
{
    struct mcpd_policy_decision *d = c->d;
    char *dump, arg[sizeof(d->argument)];

    if (c->quiet)
        return -1;
    dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    d->allow = false;
    d->pattern[0] = '\0';
    mcpd__policy_copy(d->dimension, sizeof(d->dimension), c->dim->name);
    mcpd__policy_escape(d->argument, sizeof(d->argument), c->name, strlen(c->name));
    mcpd__policy_escape(d->value, sizeof(d->value), dump ? dump : "", dump ? strlen(dump) : 0);
    free(dump);
    mcpd__policy_escape(arg, sizeof(arg), c->name, strlen(c->name));
    snprintf(d->reason, sizeof(d->reason), "%s: argument '%s' must be %s, not %s", c->dim->name,
             arg, want, type_name(v));
    return -1;
}

/* Denies with a reason that is not about one argument. */
static int deny_plain(struct mcpd_policy_decision *d, const char *reason)
{
    d->allow = false;
    d->pattern[0] = '\0';
    mcpd__policy_copy(d->reason, sizeof(d->reason), reason);
    return -1;
}

/* Denies naming the tool, resource and bot nothing bound. */
static int deny_unbound(struct mcpd_policy_decision *d, const char *tool, const char *res,
                        const char *bot)
{
    char et[72], er[72], eb[72];

    mcpd__policy_escape(et, sizeof(et), tool, strlen(tool));
    mcpd__policy_escape(er, sizeof(er), res, strlen(res));
    mcpd__policy_escape(eb, sizeof(eb), bot, strlen(bot));
    snprintf(d->reason, sizeof(d->reason), "tool '%s' of resource '%s' is not bound for bot '%s'",
             et, er, eb);
    return -1;
}

/* Records that pattern text accepted the argument. */
static int accept(const struct arg_check *c, const char *pattern)
{
    mcpd__policy_copy(c->d->pattern, sizeof(c->d->pattern), pattern);
    return 0;
}

/* Queues value (new) to replace the argument on allow; fails closed when it is NULL. */
static int replace(const struct arg_check *c, json_t *value)
{
    struct repl *r = c->repl;

    if (value == NULL)
        return deny_plain(c->d, "internal error: out of memory");
    if (r->n == REPL_MAX) {
        json_decref(value);
        return deny_plain(c->d, "too many arguments to rewrite (at most 32 per binding)");
    }
    r->name[r->n] = c->name;
    r->value[r->n++] = value;
    return 0;
}

/* ---- the dimensions ------------------------------------------------------------------------- */

static int check_path(const struct arg_check *c)
{
    const char *s = json_string_value(c->value), *why;
    size_t n = json_string_length(c->value), clen;
    char canon[MCPD_POLICY_MAX_PATH + 1];

    if (!json_is_string(c->value))
        return deny_type(c, c->value, "a string");
    if (mcpd_policy_path_canon(canon, sizeof(canon), s, n, &why) != 0)
        return deny_rejected(c, s, n, why);
    clen = strlen(canon);
    for (size_t i = 0; i < c->dim->npats; i++) {
        if (!mcpd__glob_match(c->dim->pats[i].g, canon, clen))
            continue;
        if ((clen != n || memcmp(canon, s, n) != 0) && replace(c, json_string(canon)) != 0)
            return -1;
        return accept(c, c->dim->pats[i].text);
    }
    return deny_value(c, canon, clen, "is outside the allowed paths");
}

static int check_image(const struct arg_check *c)
{
    const char *s = json_string_value(c->value), *why;
    size_t n = json_string_length(c->value), nlen;
    char norm[IMAGE_MAX];
    bool digest, any_digest = false;

    if (!json_is_string(c->value))
        return deny_type(c, c->value, "a string");
    if (mcpd_policy_image_normalise(norm, sizeof(norm), s, n, &why) != 0)
        return deny_rejected(c, s, n, why);
    nlen = strlen(norm);
    digest = strchr(norm, '@') != NULL;
    for (size_t i = 0; i < c->dim->npats; i++) {
        const struct mcpd__policy_pat *pat = &c->dim->pats[i];
        any_digest = any_digest || pat->digest;
        /* a digest wins at runtime, so only patterns that speak of digests may admit one */
        if (digest != pat->digest || !mcpd__glob_match(pat->g, norm, nlen))
            continue;
        if ((nlen != n || memcmp(norm, s, n) != 0) && replace(c, json_string(norm)) != 0)
            return -1;
        return accept(c, pat->text);
    }
    return deny_value(c, norm, nlen,
                      digest && !any_digest
                          ? "is not an allowed image (a digest needs a pattern with '@')"
                          : "is not an allowed image");
}

static int check_other(const struct arg_check *c)
{
    const char *s = json_string_value(c->value);
    size_t n = json_string_length(c->value);

    if (!json_is_string(c->value))
        return deny_type(c, c->value, "a string");
    if (memchr(s, '\0', n) != NULL)
        return deny_rejected(c, s, n, "NUL character");
    for (size_t i = 0; i < c->dim->npats; i++)
        if (mcpd__glob_match(c->dim->pats[i].g, s, n))
            return accept(c, c->dim->pats[i].text);
    return deny_value(c, s, n, "is not among the allowed values");
}

/* ---- commands ------------------------------------------------------------------------------- */

/* The value as one line for reasons: the string, or the array as compact JSON. */
static int deny_command(const struct arg_check *c, const char *what, bool rejected)
{
    char *dump = NULL;
    const char *s = json_string_value(c->value);
    size_t n = json_string_length(c->value);
    int r;

    if (c->quiet)
        return -1;
    if (s == NULL) {
        dump = json_dumps(c->value, JSON_COMPACT);
        s = dump ? dump : "";
        n = strlen(s);
    }
    r = rejected ? deny_rejected(c, s, n, what) : deny_value(c, s, n, what);
    free(dump);
    return r;
}

/* Reads the argument into cmd; 0, or -1 after denying. */
static int read_command(const struct arg_check *c, struct mcpd__policy_cmd *cmd)
{
    const char *why = "empty command";
    size_t i;
    json_t *el;

    cmd->n = 0;
    if (json_is_string(c->value)) {
        if (mcpd__policy_cmd_split(cmd, json_string_value(c->value), json_string_length(c->value),
                                   &why) != 0)
            return deny_command(c, why, true);
        return 0;
    }
    if (!json_is_array(c->value))
        return deny_type(c, c->value, "a string or an array of strings");
    json_array_foreach (c->value, i, el) {
        if (!json_is_string(el))
            return deny_type(c, c->value, "a string or an array of strings");
        if (mcpd__policy_cmd_push(cmd, json_string_value(el), json_string_length(el), &why) != 0)
            return deny_command(c, why, true);
    }
    return cmd->n == 0 ? deny_command(c, why, true) : 0;
}

/* Queues the command with its program replaced by the canonical path. */
static int rewrite_program(const struct arg_check *c, const struct mcpd__policy_cmd *cmd,
                           const char *canon)
{
    json_t *v;
    char *s;
    size_t len = strlen(canon), o;

    if (json_is_array(c->value)) {
        v = json_copy(c->value);
        if (v && json_array_set_new(v, 0, json_string(canon)) != 0) {
            json_decref(v);
            v = NULL;
        }
        return replace(c, v);
    }
    for (int i = 1; i < cmd->n; i++)
        len += 1 + cmd->tok[i].len;
    if ((s = malloc(len + 1)) == NULL)
        return replace(c, NULL);
    o = strlen(canon);
    memcpy(s, canon, o);
    for (int i = 1; i < cmd->n; i++) {
        s[o++] = ' ';
        memcpy(s + o, cmd->tok[i].p, cmd->tok[i].len);
        o += cmd->tok[i].len;
    }
    s[o] = '\0';
    v = json_string(s);
    free(s);
    return replace(c, v);
}

static int check_command(const struct arg_check *c)
{
    struct mcpd__policy_cmd cmd;
    char canon[MCPD_POLICY_MAX_PATH + 1];
    const char *why, *hint = "is not an allowed command";
    int prog;

    if (read_command(c, &cmd) != 0)
        return -1;
    if ((prog = mcpd__policy_cmd_program(&cmd, canon, sizeof(canon), &why)) < 0)
        return deny_command(c, why, true);
    for (size_t i = 0; i < c->dim->npats; i++) {
        if (!mcpd__policy_cmdpat_match(c->dim->pats[i].cmd, &cmd, prog == 1 ? canon : NULL))
            continue;
        if (prog == 1 &&
            (strlen(canon) != cmd.tok[0].len || memcmp(canon, cmd.tok[0].p, cmd.tok[0].len) != 0) &&
            rewrite_program(c, &cmd, canon) != 0)
            return -1;
        return accept(c, c->dim->pats[i].text);
    }
    if (prog == 1)
        hint = "is not an allowed command (path-qualified program)";
    else if (mcpd__policy_cmd_is_wrapper(cmd.tok[0].p, cmd.tok[0].len))
        hint = "is not an allowed command (wrapper program)";
    return deny_command(c, hint, false);
}

/* ---- bindings ------------------------------------------------------------------------------- */

/* Denies when args holds a case variant of the constrained argument name ("Path"). */
static int check_case_variant(const struct arg_check *c, json_t *args)
{
    struct mcpd_policy_decision *d = c->d;
    const char *key;
    json_t *v;
    char other[72];

    unsigned char first = (unsigned char)(c->name[0] | 0x20);

    json_object_foreach (args, key, v) {
        /* cheap reject first: a case variant starts with the same letter, either case */
        if ((unsigned char)(key[0] | 0x20) != first || strcasecmp(key, c->name) != 0 ||
            strcmp(key, c->name) == 0)
            continue;
        if (c->quiet)
            return -1;
        deny_plain(d, "");
        mcpd__policy_copy(d->dimension, sizeof(d->dimension), c->dim->name);
        mcpd__policy_escape(d->argument, sizeof(d->argument), key, strlen(key));
        mcpd__policy_escape(other, sizeof(other), c->name, strlen(c->name));
        snprintf(d->reason, sizeof(d->reason),
                 "%s: argument '%s' is a case variant of the constrained argument '%s'",
                 c->dim->name, d->argument, other);
        return -1;
    }
    return 0;
}

static int check_arg(struct arg_check *c, json_t *args)
{
    if (args == NULL)
        return 0;
    if (check_case_variant(c, args) != 0)
        return -1;
    if ((c->value = json_object_get(args, c->name)) == NULL)
        return 0; /* absent: nothing to check */
    switch (c->dim->kind) {
    case MCPD__DIM_PATHS:
        return check_path(c);
    case MCPD__DIM_COMMANDS:
        return check_command(c);
    case MCPD__DIM_IMAGES:
        return check_image(c);
    default:
        return check_other(c);
    }
}

/* Applies every dimension of b to the resource's declared arguments. */
static int check_binding(const struct mcpd__policy_binding *b,
                         const struct mcpd_policy_resource *res, json_t *args, struct repl *repl,
                         struct mcpd_policy_decision *d, bool quiet)
{
    struct arg_check c = { .repl = repl, .d = d, .quiet = quiet };

    for (size_t i = 0; i < b->ndims; i++) {
        c.dim = &b->dims[i];
        for (size_t j = 0; j < res->ndims; j++) {
            const struct mcpd_policy_dim_args *da = &res->dims[j];
            if (da->dimension == NULL || strcmp(da->dimension, c.dim->name) != 0)
                continue;
            if (da->args == NULL && da->nargs > 0)
                return deny_plain(d, "invalid resource declaration (missing argument names)");
            for (size_t k = 0; k < da->nargs; k++) {
                if ((c.name = da->args[k]) == NULL)
                    continue;
                if (check_arg(&c, args) != 0)
                    return -1;
            }
        }
    }
    return 0;
}

/*
 * Evaluates one binding that matches resource and tool; 0 on allow. Quiet:
 * d is a scratch decision and a denial is not put into words; only the
 * binding, the pattern and (on allow) the reason are filled.
 */
static int try_binding(const struct mcpd__policy_binding *b, const char *toolpat,
                       const struct mcpd_policy_resource *res, json_t *args,
                       struct mcpd_policy_decision *d, bool quiet)
{
    struct repl repl;
    int r;

    if (!quiet)
        memset(d, 0, sizeof(*d));
    d->allow = false;
    mcpd__policy_copy(d->binding, sizeof(d->binding), b->id);
    mcpd__policy_copy(d->pattern, sizeof(d->pattern), toolpat);
    repl.n = 0;
    r = check_binding(b, res, args, &repl, d, quiet);
    for (size_t i = 0; i < repl.n; i++) {
        /* in order: a later value for the same argument wins */
        if (r == 0 && json_object_set(args, repl.name[i], repl.value[i]) != 0)
            r = deny_plain(d, "internal error: out of memory");
        json_decref(repl.value[i]);
    }
    if (r == 0) {
        /* "allowed by <binding>", without snprintf's cost on every allowed call */
        static const char by[] = "allowed by ";

        d->allow = true;
        memcpy(d->reason, by, sizeof(by) - 1);
        mcpd__policy_copy(d->reason + sizeof(by) - 1, sizeof(d->reason) - (sizeof(by) - 1),
                          d->binding);
    }
    return r;
}

int mcpd_policy_check_call(const struct mcpd_policy *p, const char *botname,
                           const struct mcpd_policy_resource *res, const char *tool, json_t *args,
                           struct mcpd_policy_decision *d)
{
    const struct mcpd__policy_bot *bot = mcpd__policy_find_bot(p, botname);
    struct mcpd_policy_decision quiet; /* binding, pattern and reason only: see try_binding */
    const struct mcpd__policy_binding *first = NULL; /* the first binding that took part */
    const char *first_pat = NULL;
    char eb[72];
    size_t rlen;

    memset(d, 0, sizeof(*d));
    if (bot == NULL) {
        mcpd__policy_escape(eb, sizeof(eb), botname ? botname : "", botname ? strlen(botname) : 0);
        snprintf(d->reason, sizeof(d->reason), "unknown bot '%s'", eb);
        return -1;
    }
    if (res == NULL || res->name == NULL || tool == NULL || (res->ndims > 0 && res->dims == NULL))
        return deny_plain(d, "no resource or tool given");
    if (args != NULL && !json_is_object(args))
        return deny_plain(d, "arguments must be a JSON object");
    rlen = strlen(res->name);
    /*
     * Quietly first: a binding that denies is not put into words, since a
     * later one may allow (the usual case with several bindings). Only when
     * none allows is the first that took part run again, for its words.
     */
    for (size_t i = 0; i < bot->nb; i++) {
        const struct mcpd__policy_binding *b = bot->b[i];
        const char *toolpat;
        if (!mcpd__glob_match(b->resource_g, res->name, rlen) ||
            (toolpat = mcpd__policy_tool_match(b, tool)) == NULL)
            continue;
        if (try_binding(b, toolpat, res, args, &quiet, true) == 0) {
            d->allow = true; /* d is still all zeros */
            d->bound = true;
            mcpd__policy_copy(d->binding, sizeof(d->binding), quiet.binding);
            mcpd__policy_copy(d->pattern, sizeof(d->pattern), quiet.pattern);
            mcpd__policy_copy(d->reason, sizeof(d->reason), quiet.reason);
            return 0;
        }
        if (first == NULL) {
            first = b;
            first_pat = toolpat;
        }
    }
    if (first != NULL) {
        /* a denial leaves the arguments as they were, so the second run sees the same */
        int r = try_binding(first, first_pat, res, args, d, false);

        d->bound = true;
        return r == 0 ? 0 : -1;
    }
    return deny_unbound(d, tool, res->name, botname);
}
