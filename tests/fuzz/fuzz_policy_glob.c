/*
 * fuzz_policy_glob.c - libFuzzer target for the policy glob matcher
 * (policy/glob.c).
 *
 * Input: one flags byte (bit 0: path mode), then the pattern, a NUL, and
 * the subject (which may hold further NULs).
 *
 * Invariants checked:
 *   - no crash, and every match finishes within a generous time bound
 *     whatever the pattern (the matcher is an NFA, never backtracking);
 *   - a pattern that fails mcpd_policy_glob_check matches nothing;
 *   - for small ASCII inputs the answer equals a memoised reference
 *     matcher written straight from the documented semantics;
 *   - a subject matches itself escaped as a pattern (every metacharacter
 *     behind '\\'), in both modes, and does not match it plus one byte;
 *   - the compiled glob's fast paths (literal, "pre*", "dir/" "**") answer
 *     as the general program does (MCPD__GLOB_NOFAST), for any subject.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuzz.h"
#include "policy/glob.h"
#include "policy/policy.h"

#define REF_MAX  64
#define BOUND_MS 1000.0

/* ---- the reference matcher ------------------------------------------------------------------ */

struct ref {
    const char *p, *s;
    size_t plen, slen;
    bool path;
    signed char memo[REF_MAX + 1][REF_MAX + 1]; /* -1 unknown, 0, 1 */
};

static bool ref_match(struct ref *r, size_t pi, size_t si, bool prevslash);

/* Parses the class at p[pi] == '['; returns the offset after ']' and whether c is in it. */
static size_t ref_class(const struct ref *r, size_t pi, char c, bool *in)
{
    size_t i = pi + 1;
    bool neg = false, first = true, hit = false;

    if (r->p[i] == '!' || r->p[i] == '^') {
        neg = true;
        i++;
    }
    while (!(r->p[i] == ']' && !first)) {
        char lo, hi;
        if (r->p[i] == '\\')
            i++;
        lo = hi = r->p[i++];
        if (r->p[i] == '-' && r->p[i + 1] != ']') {
            i++;
            if (r->p[i] == '\\')
                i++;
            hi = r->p[i++];
        }
        if (c >= lo && c <= hi)
            hit = true;
        first = false;
    }
    *in = hit != neg;
    return i + 1;
}

/* True when p[i..] is a run of two or more stars up to the end. */
static bool globstar_to_end(const struct ref *r, size_t i)
{
    size_t j = i;
    while (j < r->plen && r->p[j] == '*')
        j++;
    return j == r->plen && j - i >= 2;
}

static bool ref_star(struct ref *r, size_t pi, size_t si, bool prevslash)
{
    size_t j = pi;

    while (j < r->plen && r->p[j] == '*')
        j++;
    if (r->path && j - pi >= 2 && (pi == 0 || prevslash) && (j == r->plen || r->p[j] == '/')) {
        if (j == r->plen)
            return true;
        if (ref_match(r, j + 1, si, true))
            return true;
        for (size_t k = si; k < r->slen; k++)
            if (r->s[k] == '/' && ref_match(r, j + 1, k + 1, true))
                return true;
        return false;
    }
    for (size_t k = si; k <= r->slen; k++) {
        if (ref_match(r, j, k, false))
            return true;
        if (k < r->slen && r->path && r->s[k] == '/')
            break;
    }
    return false;
}

static bool ref_step(struct ref *r, size_t pi, size_t si, bool prevslash)
{
    char c = r->p[pi], lit;
    bool in;
    size_t next;

    if (c == '*')
        return ref_star(r, pi, si, prevslash);
    if (si == r->slen)
        return false;
    if (c == '?')
        return !(r->path && r->s[si] == '/') && ref_match(r, pi + 1, si + 1, false);
    if (c == '[') {
        next = ref_class(r, pi, r->s[si], &in);
        return in && !(r->path && r->s[si] == '/') && ref_match(r, next, si + 1, false);
    }
    next = pi + 1;
    if (c == '\\')
        next++;
    lit = r->p[next - 1];
    if (lit != r->s[si])
        return false;
    /* "/" + "**" at the end: the '/' and everything after it are optional */
    if (r->path && lit == '/' && globstar_to_end(r, next))
        return true;
    return ref_match(r, next, si + 1, lit == '/');
}

static bool ref_match(struct ref *r, size_t pi, size_t si, bool prevslash)
{
    bool m;

    size_t lit_end = r->p[pi] == '\\' ? pi + 2 : pi + 1;

    if (pi == r->plen)
        return si == r->slen;
    /* the '/' (escaped or not) before a final "**" may also be absent */
    if (r->path && r->p[lit_end - 1] == '/' && globstar_to_end(r, lit_end) && si == r->slen)
        return true;
    if (r->memo[pi][si] >= 0)
        return r->memo[pi][si];
    m = ref_step(r, pi, si, prevslash);
    r->memo[pi][si] = m ? 1 : 0;
    return m;
}

static bool ascii_only(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80 || s[i] == '\0')
            return false;
    return true;
}

static void check_reference(const char *pat, const char *s, size_t slen, bool path, bool got)
{
    static struct ref r;
    size_t plen = strlen(pat);

    if (plen > REF_MAX || slen > REF_MAX || !ascii_only(pat, plen) || !ascii_only(s, slen))
        return;
    r.p = pat;
    r.s = s;
    r.plen = plen;
    r.slen = slen;
    r.path = path;
    memset(r.memo, -1, sizeof(r.memo));
    FUZZ_CHECK(ref_match(&r, 0, 0, false) == got);
}

/* The compiled glob, with and without its fast paths, against the one-shot answer. */
static void check_fast(const char *pat, const char *s, size_t slen, bool path, bool got)
{
    struct mcpd__glob *fast, *prog;
    int mode = path ? MCPD__GLOB_PATH : MCPD__GLOB_PLAIN;

    FUZZ_CHECK(mcpd__glob_new(&fast, pat, mode, NULL) == 0);
    FUZZ_CHECK(mcpd__glob_new(&prog, pat, mode | MCPD__GLOB_NOFAST, NULL) == 0);
    FUZZ_CHECK(mcpd__glob_match(fast, s, slen) == got);
    FUZZ_CHECK(mcpd__glob_match(prog, s, slen) == got);
    mcpd__glob_free(fast);
    mcpd__glob_free(prog);
}

/* ---- the target ----------------------------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Escapes s as a literal pattern into out (2 * len + 1 bytes). */
static void escape_literal(char *out, const char *s, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (strchr("*?[]\\!^-", s[i]))
            out[o++] = '\\';
        out[o++] = s[i];
    }
    out[o] = '\0';
}

static void check_literal(const char *s, size_t len)
{
    char pat[2 * MCPD_POLICY_MAX_PATTERN + 1];
    char *longer;

    if (len > MCPD_POLICY_MAX_PATTERN / 2 || memchr(s, '\0', len))
        return;
    escape_literal(pat, s, len);
    if (mcpd_policy_glob_check(pat, NULL) != 0)
        return; /* invalid UTF-8 in s */
    FUZZ_CHECK(mcpd_policy_glob(pat, s, len, 0));
    FUZZ_CHECK(mcpd_policy_glob(pat, s, len, 1));
    longer = malloc(len + 1);
    FUZZ_CHECK(longer != NULL);
    memcpy(longer, s, len);
    longer[len] = 'x';
    FUZZ_CHECK(!mcpd_policy_glob(pat, longer, len + 1, 0));
    free(longer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *pat;
    const char *subj, *why;
    size_t plen, slen;
    bool path, got, valid;
    double t0;

    if (size == 0)
        return 0;
    path = data[0] & 1;
    pat = malloc(size);
    FUZZ_CHECK(pat != NULL);
    memcpy(pat, data + 1, size - 1);
    pat[size - 1] = '\0';
    plen = strlen(pat);
    subj = plen + 1 < size - 1 ? pat + plen + 1 : "";
    slen = plen + 1 < size - 1 ? size - 1 - plen - 1 : 0;

    valid = mcpd_policy_glob_check(pat, &why) == 0;
    t0 = now_ms();
    got = mcpd_policy_glob(pat, subj, slen, path);
    FUZZ_CHECK(now_ms() - t0 < BOUND_MS);
    FUZZ_CHECK(valid || !got);
    if (valid) {
        check_reference(pat, subj, slen, path, got);
        check_fast(pat, subj, slen, path, got);
    }
    check_literal(subj, slen);
    free(pat);
    return 0;
}
