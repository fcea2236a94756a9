/*
 * policy.c - building the binding policy and answering visibility
 * questions (DESIGN.md "Policy semantics"). mcpd_policy_new() copies the
 * configuration into one owned structure: every bot's and every role's
 * bindings are compiled once (globs validated, command patterns split,
 * image patterns normalised), and each bot gets the ordered list of the
 * bindings that apply to it: its own, then its roles' in role order. Every
 * configuration mistake (unknown role, bad glob, non-canonical path
 * pattern, ...) fails the build with a one-line reason naming the key.
 *
 * Decisions about calls live in check.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/glob.h"
#include "policy/images.h"
#include "policy/internal.h"
#include "policy/paths.h"

#define MAX_DIM_NAME 31

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && cap > 0) {
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);

    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/* ---- compiling one binding ------------------------------------------------------------------ */

static int compile_list(struct mcpd__policy_list *dst, const char *const *src, size_t n,
                        const char *id, const char *what, char *err, size_t errcap)
{
    const char *why;

    if (src == NULL)
        return 0;
    if ((dst->v = calloc(n ? n : 1, sizeof(*dst->v))) == NULL ||
        (dst->g = calloc(n ? n : 1, sizeof(*dst->g))) == NULL)
        return fail(err, errcap, "%s.%s: out of memory", id, what);
    for (size_t i = 0; i < n; i++) {
        if (mcpd_policy_glob_check(src[i], &why) != 0)
            return fail(err, errcap, "%s.%s[%zu]: %s", id, what, i, why);
        if ((dst->v[i] = dup_str(src[i])) == NULL)
            return fail(err, errcap, "%s.%s[%zu]: out of memory", id, what, i);
        dst->n++;
        if (mcpd__glob_new(&dst->g[i], src[i], MCPD__GLOB_PLAIN, &why) != 0)
            return fail(err, errcap, "%s.%s[%zu]: %s", id, what, i, why);
    }
    return 0;
}

static enum mcpd__policy_kind dim_kind(const char *name)
{
    if (strcmp(name, "paths") == 0)
        return MCPD__DIM_PATHS;
    if (strcmp(name, "commands") == 0)
        return MCPD__DIM_COMMANDS;
    if (strcmp(name, "images") == 0)
        return MCPD__DIM_IMAGES;
    return MCPD__DIM_OTHER;
}

/* Validates and prepares one dimension pattern; returns NULL or why not. */
static const char *compile_pattern(struct mcpd__policy_pat *pat, enum mcpd__policy_kind kind)
{
    char norm[MCPD_POLICY_MAX_PATTERN + 1];
    const char *why = NULL;

    switch (kind) {
    case MCPD__DIM_PATHS:
        if (mcpd__policy_path_pattern_check(pat->text, &why) == 0)
            mcpd__glob_new(&pat->g, pat->text, MCPD__GLOB_PATH, &why);
        break;
    case MCPD__DIM_COMMANDS:
        mcpd__policy_cmdpat_new(&pat->cmd, pat->text, &why);
        break;
    case MCPD__DIM_IMAGES:
        if (mcpd__policy_image_norm(norm, sizeof(norm), pat->text, strlen(pat->text), true, &why) !=
                0 ||
            mcpd_policy_glob_check(norm, &why) != 0)
            break;
        if ((pat->norm = dup_str(norm)) == NULL)
            return "out of memory";
        pat->digest = strchr(norm, '@') != NULL;
        mcpd__glob_new(&pat->g, norm, MCPD__GLOB_PATH, &why);
        break;
    case MCPD__DIM_OTHER:
        if (mcpd_policy_glob_check(pat->text, &why) == 0)
            mcpd__glob_new(&pat->g, pat->text, MCPD__GLOB_PLAIN, &why);
        break;
    }
    return why;
}

static bool dim_name_ok(const char *name)
{
    size_t n = strlen(name);

    if (n == 0 || n > MAX_DIM_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

static int compile_dim(struct mcpd__policy_dim *dst, const struct mcpd_policy_dim *src,
                       const char *id, char *err, size_t errcap)
{
    const char *why;

    if (src->name == NULL || !dim_name_ok(src->name))
        return fail(err, errcap, "%s: dimension names are 1-31 characters of [A-Za-z0-9_.-]", id);
    if (src->npatterns > 0 && src->patterns == NULL)
        return fail(err, errcap, "%s.%s: missing patterns", id, src->name);
    if ((dst->name = dup_str(src->name)) == NULL ||
        (dst->pats = calloc(src->npatterns ? src->npatterns : 1, sizeof(*dst->pats))) == NULL)
        return fail(err, errcap, "%s.%s: out of memory", id, src->name);
    dst->kind = dim_kind(src->name);
    for (size_t i = 0; i < src->npatterns; i++) {
        struct mcpd__policy_pat *pat = &dst->pats[i];
        if (src->patterns[i] == NULL)
            return fail(err, errcap, "%s.%s[%zu]: missing pattern", id, src->name, i);
        if ((pat->text = dup_str(src->patterns[i])) == NULL)
            return fail(err, errcap, "%s.%s[%zu]: out of memory", id, src->name, i);
        dst->npats++;
        if ((why = compile_pattern(pat, dst->kind)) != NULL)
            return fail(err, errcap, "%s.%s[%zu]: %s", id, src->name, i, why);
    }
    return 0;
}

static int compile_dims(struct mcpd__policy_binding *dst, const struct mcpd_policy_binding *src,
                        char *err, size_t errcap)
{
    if (src->ndims == 0)
        return 0;
    if ((dst->dims = calloc(src->ndims, sizeof(*dst->dims))) == NULL)
        return fail(err, errcap, "%s: out of memory", dst->id);
    for (size_t i = 0; i < src->ndims; i++) {
        for (size_t j = 0; j < i; j++)
            if (src->dims[i].name && src->dims[j].name &&
                strcmp(src->dims[i].name, src->dims[j].name) == 0)
                return fail(err, errcap, "%s: dimension '%s' given twice", dst->id,
                            src->dims[i].name);
        dst->ndims++;
        if (compile_dim(&dst->dims[i], &src->dims[i], dst->id, err, errcap) != 0)
            return -1;
    }
    return 0;
}

static int compile_binding(struct mcpd__policy_binding *dst, const struct mcpd_policy_binding *src,
                           const char *defid, char *err, size_t errcap)
{
    const char *why;

    if ((dst->id = dup_str(src->id ? src->id : defid)) == NULL)
        return fail(err, errcap, "%s: out of memory", defid);
    if (src->ndims > 0 && src->dims == NULL)
        return fail(err, errcap, "%s: missing dimensions", dst->id);
    if (src->resource == NULL)
        return fail(err, errcap, "%s.resource: missing", dst->id);
    if (mcpd_policy_glob_check(src->resource, &why) != 0)
        return fail(err, errcap, "%s.resource: %s", dst->id, why);
    if ((dst->resource = dup_str(src->resource)) == NULL)
        return fail(err, errcap, "%s: out of memory", dst->id);
    if (mcpd__glob_new(&dst->resource_g, src->resource, MCPD__GLOB_PLAIN, &why) != 0)
        return fail(err, errcap, "%s.resource: %s", dst->id, why);
    dst->all_tools = src->tools == NULL && src->prompts == NULL && src->uris == NULL;
    if (compile_list(&dst->tools, src->tools, src->ntools, dst->id, "tools", err, errcap) ||
        compile_list(&dst->prompts, src->prompts, src->nprompts, dst->id, "prompts", err, errcap) ||
        compile_list(&dst->uris, src->uris, src->nuris, dst->id, "uris", err, errcap))
        return -1;
    return compile_dims(dst, src, err, errcap);
}

/* Compiles n bindings of `owner` ("bots.alice") into dst[0..n). */
static int compile_bindings(struct mcpd__policy_binding *dst, const struct mcpd_policy_binding *src,
                            size_t n, const char *owner, char *err, size_t errcap)
{
    char defid[160];

    for (size_t i = 0; i < n; i++) {
        snprintf(defid, sizeof(defid), "%s.bindings[%zu]", owner, i);
        if (compile_binding(&dst[i], &src[i], defid, err, errcap) != 0)
            return -1;
    }
    return 0;
}

/* ---- bots and roles ------------------------------------------------------------------------- */

/* Index of the role called name, or -1; *first gets the index of its first binding. */
static long find_role(const struct mcpd_policy_role *roles, size_t nroles, size_t base,
                      const char *name, size_t *first)
{
    size_t k = base;

    for (size_t r = 0; r < nroles; r++) {
        if (strcmp(roles[r].name, name) == 0) {
            *first = k;
            return (long)r;
        }
        k += roles[r].nbindings;
    }
    return -1;
}

static int build_bot(struct mcpd_policy *p, size_t bi, const struct mcpd_policy_bot *src,
                     size_t own, const struct mcpd_policy_role *roles, size_t nroles,
                     size_t rolebase, char *err, size_t errcap)
{
    struct mcpd__policy_bot *bot = &p->bots[bi];
    size_t total = src->nbindings;
    size_t first = 0;
    long r;

    for (size_t i = 0; i < src->nroles; i++) {
        if (src->roles[i] == NULL ||
            (r = find_role(roles, nroles, rolebase, src->roles[i], &first)) < 0)
            return fail(err, errcap, "bots.%s: unknown role '%s'", src->name,
                        src->roles[i] ? src->roles[i] : "(null)");
        total += roles[r].nbindings;
    }
    if ((bot->name = dup_str(src->name)) == NULL ||
        (bot->b = calloc(total ? total : 1, sizeof(*bot->b))) == NULL)
        return fail(err, errcap, "bots.%s: out of memory", src->name);
    for (size_t i = 0; i < src->nbindings; i++)
        bot->b[bot->nb++] = &p->bindings[own + i];
    for (size_t i = 0; i < src->nroles; i++) {
        r = find_role(roles, nroles, rolebase, src->roles[i], &first);
        for (size_t j = 0; j < roles[r].nbindings; j++)
            bot->b[bot->nb++] = &p->bindings[first + j];
    }
    return 0;
}

/* Names must be present, non-empty and unique; counted arrays must exist. */
static int check_names(const struct mcpd_policy_bot *bots, size_t nbots,
                       const struct mcpd_policy_role *roles, size_t nroles, char *err,
                       size_t errcap)
{
    for (size_t i = 0; i < nbots; i++) {
        if (bots[i].name == NULL || bots[i].name[0] == '\0')
            return fail(err, errcap, "bots[%zu]: missing name", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(bots[i].name, bots[j].name) == 0)
                return fail(err, errcap, "bots.%s: defined twice", bots[i].name);
        if ((bots[i].nbindings > 0 && bots[i].bindings == NULL) ||
            (bots[i].nroles > 0 && bots[i].roles == NULL))
            return fail(err, errcap, "bots.%s: missing bindings or roles", bots[i].name);
    }
    for (size_t i = 0; i < nroles; i++) {
        if (roles[i].name == NULL || roles[i].name[0] == '\0')
            return fail(err, errcap, "roles[%zu]: missing name", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(roles[i].name, roles[j].name) == 0)
                return fail(err, errcap, "roles.%s: defined twice", roles[i].name);
        if (roles[i].nbindings > 0 && roles[i].bindings == NULL)
            return fail(err, errcap, "roles.%s: missing bindings", roles[i].name);
    }
    return 0;
}

static int build(struct mcpd_policy *p, const struct mcpd_policy_bot *bots, size_t nbots,
                 const struct mcpd_policy_role *roles, size_t nroles, char *err, size_t errcap)
{
    char owner[128];
    size_t k = 0, rolebase;

    for (size_t i = 0; i < nbots; i++)
        p->nbindings += bots[i].nbindings;
    for (size_t i = 0; i < nroles; i++)
        p->nbindings += roles[i].nbindings;
    if ((p->bindings = calloc(p->nbindings ? p->nbindings : 1, sizeof(*p->bindings))) == NULL ||
        (p->bots = calloc(nbots ? nbots : 1, sizeof(*p->bots))) == NULL)
        return fail(err, errcap, "out of memory");
    for (size_t i = 0; i < nbots; i++) {
        snprintf(owner, sizeof(owner), "bots.%s", bots[i].name);
        if (compile_bindings(&p->bindings[k], bots[i].bindings, bots[i].nbindings, owner, err,
                             errcap) != 0)
            return -1;
        k += bots[i].nbindings;
    }
    rolebase = k;
    for (size_t i = 0; i < nroles; i++) {
        snprintf(owner, sizeof(owner), "roles.%s", roles[i].name);
        if (compile_bindings(&p->bindings[k], roles[i].bindings, roles[i].nbindings, owner, err,
                             errcap) != 0)
            return -1;
        k += roles[i].nbindings;
    }
    k = 0; /* a bot's own bindings start here */
    for (size_t i = 0; i < nbots; i++) {
        p->nbots++;
        if (build_bot(p, i, &bots[i], k, roles, nroles, rolebase, err, errcap) != 0)
            return -1;
        k += bots[i].nbindings;
    }
    return 0;
}

int mcpd_policy_new(struct mcpd_policy **out, const struct mcpd_policy_bot *bots, size_t nbots,
                    const struct mcpd_policy_role *roles, size_t nroles, char *err, size_t errcap)
{
    struct mcpd_policy *p;

    if (err != NULL && errcap > 0)
        err[0] = '\0';
    if (out == NULL)
        return fail(err, errcap, "no output");
    *out = NULL;
    if ((nbots > 0 && bots == NULL) || (nroles > 0 && roles == NULL))
        return fail(err, errcap, "missing bots or roles");
    if (check_names(bots, nbots, roles, nroles, err, errcap) != 0)
        return -1;
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return fail(err, errcap, "out of memory");
    if (build(p, bots, nbots, roles, nroles, err, errcap) != 0) {
        mcpd_policy_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

/* ---- freeing -------------------------------------------------------------------------------- */

static void free_list(struct mcpd__policy_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
        if (l->g)
            mcpd__glob_free(l->g[i]);
    }
    free(l->v);
    free(l->g);
}

static void free_binding(struct mcpd__policy_binding *b)
{
    free(b->id);
    free(b->resource);
    mcpd__glob_free(b->resource_g);
    free_list(&b->tools);
    free_list(&b->prompts);
    free_list(&b->uris);
    for (size_t i = 0; i < b->ndims; i++) {
        struct mcpd__policy_dim *d = &b->dims[i];
        for (size_t j = 0; j < d->npats; j++) {
            free(d->pats[j].text);
            free(d->pats[j].norm);
            mcpd__glob_free(d->pats[j].g);
            mcpd__policy_cmdpat_free(d->pats[j].cmd);
        }
        free(d->pats);
        free(d->name);
    }
    free(b->dims);
}

void mcpd_policy_free(struct mcpd_policy *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nbindings; i++)
        free_binding(&p->bindings[i]);
    for (size_t i = 0; i < p->nbots; i++) {
        free(p->bots[i].name);
        free(p->bots[i].b);
    }
    free(p->bindings);
    free(p->bots);
    free(p);
}

/* ---- lookups and visibility ----------------------------------------------------------------- */

const struct mcpd__policy_bot *mcpd__policy_find_bot(const struct mcpd_policy *p, const char *name)
{
    if (p == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < p->nbots; i++)
        if (strcmp(p->bots[i].name, name) == 0)
            return &p->bots[i];
    return NULL;
}

bool mcpd_policy_has_bot(const struct mcpd_policy *p, const char *bot)
{
    return mcpd__policy_find_bot(p, bot) != NULL;
}

const char *mcpd__policy_list_match(const struct mcpd__policy_list *list, const char *s)
{
    size_t len = strlen(s);

    for (size_t i = 0; i < list->n; i++)
        if (mcpd__glob_match(list->g[i], s, len))
            return list->v[i];
    return NULL;
}

const char *mcpd__policy_tool_match(const struct mcpd__policy_binding *b, const char *tool)
{
    return b->all_tools ? "*" : mcpd__policy_list_match(&b->tools, tool);
}

enum what { TOOL, PROMPT, URI };

/* True when a URI has no dot segments, encoded separators or controls. */
static bool uri_is_plain(const char *u)
{
    for (const char *s = u; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7F || c == '\\')
            return false;
        if (c == '%' && s[1] != '\0') {
            char a = s[1], b = (char)(s[2] | 0x20);
            if ((a == '2' && (b == 'e' || b == 'f' || b == '5')) || (a == '5' && b == 'c'))
                return false;
        }
        if (c == '/' && s[1] == '.') {
            size_t k = s[2] == '.' ? 3 : 2;
            if (s[k] == '\0' || s[k] == '/' || s[k] == '?' || s[k] == '#')
                return false;
        }
    }
    return true;
}

static bool visible(const struct mcpd_policy *p, const char *botname, const char *resource,
                    const char *name, enum what what)
{
    const struct mcpd__policy_bot *bot = mcpd__policy_find_bot(p, botname);
    size_t rlen;

    if (bot == NULL || resource == NULL || name == NULL)
        return false;
    if (what == URI && !uri_is_plain(name))
        return false;
    rlen = strlen(resource);
    for (size_t i = 0; i < bot->nb; i++) {
        const struct mcpd__policy_binding *b = bot->b[i];
        if (!mcpd__glob_match(b->resource_g, resource, rlen))
            continue;
        if ((what == TOOL && mcpd__policy_tool_match(b, name)) ||
            (what == PROMPT && mcpd__policy_list_match(&b->prompts, name)) ||
            (what == URI && mcpd__policy_list_match(&b->uris, name)))
            return true;
    }
    return false;
}

bool mcpd_policy_tool_visible(const struct mcpd_policy *p, const char *bot, const char *resource,
                              const char *tool)
{
    return visible(p, bot, resource, tool, TOOL);
}

bool mcpd_policy_prompt_visible(const struct mcpd_policy *p, const char *bot, const char *resource,
                                const char *prompt)
{
    return visible(p, bot, resource, prompt, PROMPT);
}

bool mcpd_policy_uri_visible(const struct mcpd_policy *p, const char *bot, const char *resource,
                             const char *uri)
{
    return visible(p, bot, resource, uri, URI);
}
