/*
 * glob.c - the policy's glob matcher. No recursion, no backtracking: a
 * pattern is compiled once (mcpd__glob_new, when the policy is built) into a
 * token program in one heap block sized to the pattern, and matching, which
 * allocates nothing, runs it as an NFA whose state set is a bitset over token positions, so a match
 * costs O(len(subject) * len(pattern)) whatever the pattern ("*a*a*a*b"
 * against 10 KB of 'a' included; compare CVE-2026-0621).
 *
 * Syntax: '*' any run, '?' one code point, '[...]' a class of code points
 * ('!' or '^' first negates, ']' first is literal, '-' at either edge is
 * literal, "a-z" ranges, '\\' escapes, "[:name:]" is refused), '\\' escapes
 * the next code point. Anchored at both ends. No FNM_PERIOD: '*' matches a
 * leading '.', which is harmless where subjects are canonical paths.
 *
 * Path mode: '*', '?' and classes never match '/'. A segment that is '**'
 * matches zero or more whole segments: a final '**' segment after "/a"
 * matches "/a" and everything below it; one between "/a" and "/b" matches
 * "/a/b" and "/a/x/y/b"; a leading one before "/x" matches "x" and "d/x".
 * Elsewhere ("a**") two stars are one star.
 */
#include "policy/glob.h"

#include <stdint.h>
#include <string.h>

#include "policy/policy.h"
#include "policy/text.h"

enum tok_kind {
    T_NOP,    /* matches nothing; only its epsilon edges (entry of a "**" + "/" group) */
    T_LIT,    /* one code point, `val` */
    T_ANY,    /* '?' */
    T_CLASS,  /* '[...]': body at pattern offset `val`, `neg` negates */
    T_STAR,   /* '*': loops on any code point ('/' excepted in path mode) */
    T_ANYRUN, /* path-mode '**' segment: loops on any code point */
};

struct tok {
    uint8_t kind;
    uint8_t neg;
    uint16_t skip; /* extra epsilon edge to this token index; 0: none */
    uint32_t val;
};

#define MAX_TOKS  (MCPD_POLICY_MAX_PATTERN + 1)
#define SET_WORDS ((MAX_TOKS + 1 + 63) / 64)

/*
 * A compiled program. While compiling, `t` points at a scratch array of
 * MAX_TOKS tokens; mcpd__glob_new() then copies it, with its index, into
 * one heap block sized to the pattern.
 */
struct prog {
    const char *pat;
    size_t plen;
    size_t n; /* tokens; state n is "matched" */
    bool path;
    struct tok *t;
    /* the index built by index_prog(): masks over token positions, w words each */
    size_t w;
    uint64_t *loop;      /* T_STAR and T_ANYRUN (self-loop, epsilon to next) */
    uint64_t *star;      /* T_STAR only ('/' excluded in path mode) */
    uint64_t *anyrun;    /* T_ANYRUN */
    uint64_t *nop;       /* T_NOP (epsilon to next) */
    uint64_t *any;       /* T_ANY */
    uint64_t *lit;       /* (nlit + 1) masks: slot litidx[c] holds the T_LIT tokens wanting c */
    uint8_t litidx[128]; /* ASCII code point -> lit slot; 0: the empty mask */
    size_t nlit;
    uint16_t *skips;  /* tokens with a skip edge, ascending */
    uint16_t *others; /* T_CLASS and non-ASCII T_LIT tokens */
    size_t nskips, nothers;
};

enum glob_kind {
    G_LITERAL, /* no metacharacter: a string compare */
    G_PREFIX,  /* a literal then final stars that match any run: a prefix compare */
    G_SEGMENT, /* path mode, a literal then a final '*': the prefix, then no '/' */
    G_TREE,    /* path mode, a literal ending in '/' then a final "**" segment */
    G_PROG,    /* the general matcher */
};

struct mcpd__glob {
    enum glob_kind kind;
    size_t len; /* G_LITERAL: the pattern's length; else the literal prefix's */
    struct prog pr;
    /* then, in one block: the masks, the tokens, skips and others, the pattern text */
};

/* ---- compiling ------------------------------------------------------------------------------ */

/* Reads one class member at pat[*i]; returns false with *why on a bad one. */
static bool class_item(const struct prog *pr, size_t *i, uint32_t *cp, const char **why)
{
    const char *p = pr->pat;

    if (p[*i] == '[' && *i + 1 < pr->plen && strchr(":.=", p[*i + 1])) {
        *why = "POSIX class names such as '[:alpha:]' are not supported";
        return false;
    }
    if (p[*i] == '\\') {
        if (++*i >= pr->plen) {
            *why = "unterminated '['";
            return false;
        }
    }
    *cp = mcpd__policy_utf8_next(p, pr->plen, i);
    if (*cp & MCPD__POLICY_BAD_BYTE) {
        *why = "invalid UTF-8";
        return false;
    }
    return true;
}

/*
 * Scans the class body starting at pat[i] (after '[' and any '!'); returns
 * the offset past its ']', or 0 with *why when the class is invalid. *hit
 * tells whether code point c is a member (negation not applied).
 */
static size_t class_scan(const struct prog *pr, size_t i, uint32_t c, bool *hit, const char **why)
{
    bool first = true;

    *hit = false;
    while (i < pr->plen) {
        uint32_t lo, hi;
        if (pr->pat[i] == ']' && !first)
            return i + 1;
        if (!class_item(pr, &i, &lo, why))
            return 0;
        hi = lo;
        if (i + 1 < pr->plen && pr->pat[i] == '-' && pr->pat[i + 1] != ']') {
            i++;
            if (!class_item(pr, &i, &hi, why))
                return 0;
            if (hi < lo) {
                *why = "reversed range in '[...]'";
                return 0;
            }
        }
        if (c >= lo && c <= hi)
            *hit = true;
        first = false;
    }
    *why = "unterminated '['";
    return 0;
}

/*
 * Compiles a run of stars at pat[i]; returns the offset after it. A path-mode
 * '**' segment becomes T_ANYRUN plus an epsilon edge that skips it for
 * "zero segments". The edge must leave from a state that is not the loop
 * itself (else it would fire after the loop consumed text, and "a/" + "**"
 * + "/b" would match "a/xb"): a T_NOP entry before "**" + "/", or the '/'
 * before a final "**".
 */
static size_t compile_star(struct prog *pr, size_t i)
{
    size_t j = i;
    bool seg_start, seg_end;

    while (j < pr->plen && pr->pat[j] == '*')
        j++;
    seg_start = pr->n == 0 || (pr->t[pr->n - 1].kind == T_LIT && pr->t[pr->n - 1].val == '/');
    seg_end = j == pr->plen || pr->pat[j] == '/';
    if (!pr->path || j - i < 2 || !seg_start || !seg_end) {
        pr->t[pr->n++].kind = T_STAR;
        return j;
    }
    if (j < pr->plen) {
        /* NOP, ANYRUN, '/': zero segments go past the '/' */
        pr->t[pr->n].kind = T_NOP;
        pr->t[pr->n].skip = (uint16_t)(pr->n + 3);
        pr->n++;
        memset(&pr->t[pr->n], 0, sizeof(pr->t[0]));
    } else if (pr->n > 0) {
        pr->t[pr->n - 1].skip = (uint16_t)(pr->n + 1); /* the '/' before it is optional too */
    }
    pr->t[pr->n++].kind = T_ANYRUN;
    return j;
}

/* Compiles one token other than a star at pat[i]; returns the next offset or 0. */
static size_t compile_one(struct prog *pr, size_t i, const char **why)
{
    struct tok *t = &pr->t[pr->n];
    bool hit;

    if (pr->pat[i] == '?') {
        t->kind = T_ANY;
        i++;
    } else if (pr->pat[i] == '[') {
        t->kind = T_CLASS;
        i++;
        if (i < pr->plen && (pr->pat[i] == '!' || pr->pat[i] == '^')) {
            t->neg = 1;
            i++;
        }
        t->val = (uint32_t)i;
        if ((i = class_scan(pr, i, 0, &hit, why)) == 0)
            return 0;
    } else {
        if (pr->pat[i] == '\\' && ++i >= pr->plen) {
            *why = "trailing '\\'";
            return 0;
        }
        t->kind = T_LIT;
        t->val = mcpd__policy_utf8_next(pr->pat, pr->plen, &i);
        if (t->val & MCPD__POLICY_BAD_BYTE) {
            *why = "invalid UTF-8";
            return 0;
        }
    }
    pr->n++;
    return i;
}

/* Compiles into pr->t (MAX_TOKS tokens, set by the caller). */
static int compile(struct prog *pr, const char *pattern, bool path, const char **why)
{
    size_t i = 0;

    pr->pat = pattern;
    pr->plen = strlen(pattern);
    pr->n = 0;
    pr->path = path;
    if (pr->plen > MCPD_POLICY_MAX_PATTERN) {
        *why = "pattern longer than 1024 bytes";
        return -1;
    }
    while (i < pr->plen) {
        memset(&pr->t[pr->n], 0, sizeof(pr->t[0]));
        if (pattern[i] == '*')
            i = compile_star(pr, i);
        else if ((i = compile_one(pr, i, why)) == 0)
            return -1;
    }
    return 0;
}

/* ---- running -------------------------------------------------------------------------------- */

/*
 * The state set is simulated bit-parallel where it can be: self-loops,
 * '?', ASCII literals and the epsilon edges of stars are word operations,
 * so "*a*a*a...b" costs a few word operations per subject code point; only
 * classes, non-ASCII literals and '**' skip edges are visited one by one.
 */

static void set_bit(uint64_t *set, size_t i)
{
    set[i / 64] |= (uint64_t)1 << (i % 64);
}

static bool has_bit(const uint64_t *set, size_t i)
{
    return (set[i / 64] >> (i % 64)) & 1;
}

/* Distinct ASCII code points of the T_LIT tokens; fills pr->litidx. */
static size_t count_lits(struct prog *pr)
{
    size_t nlit = 0;

    memset(pr->litidx, 0, sizeof(pr->litidx));
    for (size_t i = 0; i < pr->n; i++) {
        const struct tok *t = &pr->t[i];
        if (t->kind == T_LIT && t->val < 128 && pr->litidx[t->val] == 0)
            pr->litidx[t->val] = (uint8_t)++nlit;
    }
    return nlit;
}

/*
 * Builds the masks and lists of a compiled program into storage the caller
 * pointed them at (w words each, lit (nlit + 1) * w, skips and others n).
 */
static void index_prog(struct prog *pr)
{
    memset(pr->loop, 0, pr->w * sizeof(pr->loop[0]));
    memset(pr->star, 0, pr->w * sizeof(pr->star[0]));
    memset(pr->anyrun, 0, pr->w * sizeof(pr->anyrun[0]));
    memset(pr->nop, 0, pr->w * sizeof(pr->nop[0]));
    memset(pr->any, 0, pr->w * sizeof(pr->any[0]));
    memset(pr->lit, 0, (pr->nlit + 1) * pr->w * sizeof(pr->lit[0]));
    pr->nskips = pr->nothers = 0;
    for (size_t i = 0; i < pr->n; i++) {
        const struct tok *t = &pr->t[i];
        if (t->skip)
            pr->skips[pr->nskips++] = (uint16_t)i;
        if (t->kind == T_STAR || t->kind == T_ANYRUN)
            set_bit(pr->loop, i);
        if (t->kind == T_STAR)
            set_bit(pr->star, i);
        else if (t->kind == T_ANYRUN)
            set_bit(pr->anyrun, i);
        else if (t->kind == T_NOP)
            set_bit(pr->nop, i);
        else if (t->kind == T_ANY)
            set_bit(pr->any, i);
        else if (t->kind == T_LIT && t->val < 128)
            set_bit(pr->lit + pr->litidx[t->val] * pr->w, i);
        else
            pr->others[pr->nothers++] = (uint16_t)i;
    }
}

/* set |= (set & mask) << 1, over w words. */
static void shift_or(uint64_t *set, const uint64_t *mask, size_t w)
{
    uint64_t carry = 0;

    for (size_t k = 0; k < w; k++) {
        uint64_t x = set[k] & mask[k];
        set[k] |= (x << 1) | carry;
        carry = x >> 63;
    }
}

/*
 * Adds the epsilon edges. They all point forward: a NOP leads to its
 * '**', a star or '**' to the next token, and skip edges (taken in
 * ascending order) further on; repeat while a skip adds a state.
 */
static void closure(const struct prog *pr, uint64_t *set)
{
    bool again = true;

    while (again) {
        again = false;
        shift_or(set, pr->nop, pr->w);
        shift_or(set, pr->loop, pr->w);
        for (size_t k = 0; k < pr->nskips; k++) {
            const struct tok *t = &pr->t[pr->skips[k]];
            if (has_bit(set, pr->skips[k]) && !has_bit(set, t->skip)) {
                set_bit(set, t->skip);
                again = true;
            }
        }
    }
}

static bool tok_accepts(const struct prog *pr, const struct tok *t, uint32_t c)
{
    bool hit;
    const char *why;

    if (pr->path && c == '/' && t->kind != T_LIT && t->kind != T_ANYRUN)
        return false;
    switch (t->kind) {
    case T_NOP:
        return false;
    case T_LIT:
        return c == t->val;
    case T_CLASS:
        class_scan(pr, t->val, c, &hit, &why);
        return hit != (t->neg != 0);
    default:
        return true;
    }
}

/* dst |= src << 1, over w words. */
static void or_shifted(uint64_t *dst, const uint64_t *src, size_t w)
{
    uint64_t carry = 0;

    for (size_t k = 0; k < w; k++) {
        dst[k] |= (src[k] << 1) | carry;
        carry = src[k] >> 63;
    }
}

/* Moves every state of cur over code point c into next; false when none survives. */
static bool step(const struct prog *pr, const uint64_t *cur, uint64_t *next, uint32_t c)
{
    uint64_t adv[SET_WORDS], any = 0;
    bool slash_ok = !pr->path || c != '/';
    const uint64_t *lit = c < 128 ? pr->lit + pr->litidx[c] * pr->w : NULL;

    for (size_t k = 0; k < pr->w; k++) {
        next[k] = cur[k] & (slash_ok ? pr->loop[k] : pr->anyrun[k]); /* self-loops */
        adv[k] = cur[k] & ((slash_ok ? pr->any[k] : 0) | (lit ? lit[k] : 0));
    }
    or_shifted(next, adv, pr->w);
    for (size_t i = 0; i < pr->nothers; i++) {
        const struct tok *t = &pr->t[pr->others[i]];
        if (has_bit(cur, pr->others[i]) && tok_accepts(pr, t, c))
            set_bit(next, pr->others[i] + 1);
    }
    for (size_t k = 0; k < pr->w; k++)
        any |= next[k];
    return any != 0;
}

/*
 * Fast paths that need no program, for the shapes most patterns have
 * (each one is the program's answer, which the fuzz target checks):
 *   "name"       no metacharacter: a string compare;
 *   "pre*"       plain mode: a prefix compare ("**" is the same star);
 *   "pre*"       path mode: the prefix, then a rest without '/' (a star,
 *                or stars that do not form a whole segment, stop at '/');
 *   "dir/" "**"  path mode: "dir/" and everything below it, or "dir"
 *                itself (the '/' before a final "**" is optional); "**"
 *                alone matches everything.
 * Byte compares equal the program's code point compares: the literal is
 * valid UTF-8 (compile checked it), and '/' is never part of a multi-byte
 * sequence. Returns the kind with *len the literal's length.
 */
static enum glob_kind fast_kind(const char *pattern, bool path, size_t *len)
{
    size_t pl = strcspn(pattern, "*?[\\"), j = pl;

    *len = pl;
    if (pattern[pl] == '\0')
        return G_LITERAL;
    while (pattern[j] == '*')
        j++;
    if (pattern[j] != '\0')
        return G_PROG;
    if (!path)
        return G_PREFIX;
    if (j - pl >= 2 && pl == 0)
        return G_PREFIX; /* "**": any run, '/' included */
    if (j - pl >= 2 && pattern[pl - 1] == '/')
        return G_TREE;
    return G_SEGMENT;
}

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

int mcpd__glob_new(struct mcpd__glob **out, const char *pattern, int mode, const char **why)
{
    struct tok scratch[MAX_TOKS];
    struct prog pr = { .t = scratch };
    struct mcpd__glob *g;
    size_t len = 0, masks, size;
    enum glob_kind kind;
    char *mem;
    const char *dummy;

    *out = NULL;
    if (why == NULL)
        why = &dummy;
    if (pattern == NULL) {
        *why = "missing pattern";
        return -1;
    }
    /* compiled in any case: the checks (length, UTF-8, classes) are the same for every kind */
    if (compile(&pr, pattern, (mode & MCPD__GLOB_PATH) != 0, why) != 0)
        return -1;
    kind =
        mode & MCPD__GLOB_NOFAST ? G_PROG : fast_kind(pattern, (mode & MCPD__GLOB_PATH) != 0, &len);
    if (kind == G_PROG) {
        pr.w = (pr.n + 1 + 63) / 64;
        pr.nlit = count_lits(&pr);
    }
    masks = kind == G_PROG ? (5 + pr.nlit + 1) * pr.w : 0;
    size = sizeof(*g) + masks * sizeof(uint64_t) +
           (kind == G_PROG ? align8(pr.n * sizeof(struct tok)) + align8(2 * pr.n * sizeof(uint16_t))
                           : 0) +
           pr.plen + 1;
    if ((g = calloc(1, size)) == NULL) {
        *why = "out of memory";
        return -1;
    }
    g->kind = kind;
    g->len = len;
    mem = (char *)(g + 1);
    if (kind == G_PROG) {
        uint64_t *m = (uint64_t *)(void *)mem;
        g->pr = pr;
        g->pr.loop = m;
        g->pr.star = m + pr.w;
        g->pr.anyrun = m + 2 * pr.w;
        g->pr.nop = m + 3 * pr.w;
        g->pr.any = m + 4 * pr.w;
        g->pr.lit = m + 5 * pr.w;
        mem += masks * sizeof(uint64_t);
        g->pr.t = (struct tok *)(void *)mem;
        memcpy(g->pr.t, scratch, pr.n * sizeof(struct tok));
        mem += align8(pr.n * sizeof(struct tok));
        g->pr.skips = (uint16_t *)(void *)mem;
        g->pr.others = g->pr.skips + pr.n;
        mem += align8(2 * pr.n * sizeof(uint16_t));
        index_prog(&g->pr);
    }
    memcpy(mem, pattern, pr.plen + 1);
    g->pr.pat = mem;
    g->pr.plen = pr.plen;
    *out = g;
    return 0;
}

void mcpd__glob_free(struct mcpd__glob *g)
{
    free(g);
}

const char *mcpd__glob_text(const struct mcpd__glob *g)
{
    return g->pr.pat;
}

bool mcpd__glob_match(const struct mcpd__glob *g, const char *s, size_t len)
{
    const struct prog *pr;
    uint64_t a[SET_WORDS], b[SET_WORDS], *cur = a, *next = b, *tmp;
    size_t i = 0;

    if (g == NULL || (s == NULL && len > 0))
        return false;
    if (s == NULL)
        s = "";
    if (g->kind == G_LITERAL)
        return len == g->len && memcmp(g->pr.pat, s, len) == 0;
    if (g->kind == G_PREFIX)
        return len >= g->len && memcmp(g->pr.pat, s, g->len) == 0;
    if (g->kind == G_SEGMENT)
        return len >= g->len && memcmp(g->pr.pat, s, g->len) == 0 &&
               memchr(s + g->len, '/', len - g->len) == NULL;
    if (g->kind == G_TREE)
        return len >= g->len - 1 && memcmp(g->pr.pat, s, g->len - 1) == 0 &&
               (len == g->len - 1 || s[g->len - 1] == '/');
    pr = &g->pr;
    memset(cur, 0, pr->w * sizeof(*cur));
    set_bit(cur, 0);
    closure(pr, cur);
    while (i < len) {
        uint32_t c = mcpd__policy_utf8_next(s, len, &i);
        if (!step(pr, cur, next, c))
            return false;
        closure(pr, next);
        tmp = cur;
        cur = next;
        next = tmp;
    }
    return has_bit(cur, pr->n);
}

bool mcpd_policy_glob(const char *pattern, const char *s, size_t len, int mode)
{
    struct mcpd__glob *g;
    bool r;

    if (mcpd__glob_new(&g, pattern, mode, NULL) != 0)
        return false;
    r = mcpd__glob_match(g, s, len);
    mcpd__glob_free(g);
    return r;
}

int mcpd_policy_glob_check(const char *pattern, const char **why)
{
    struct tok scratch[MAX_TOKS];
    struct prog pr = { .t = scratch };
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    if (pattern == NULL) {
        *why = "missing pattern";
        return -1;
    }
    return compile(&pr, pattern, true, why);
}

bool mcpd__policy_glob_is_literal(const char *pattern)
{
    return strpbrk(pattern, "*?[\\") == NULL;
}
