/*
 * paths.c - the `paths` dimension: lexical canonicalisation of absolute
 * POSIX paths and validation of path patterns (security.md 6.1).
 *
 * Validation rejects instead of guessing: NUL and control characters (a C
 * strlen() upstream would truncate), '\\' (a separator on Windows
 * upstreams), '%' (any encoding, so "%2e%2e", "%2f" and the multiply
 * encoded "%252e" never reach a decoder), invalid UTF-8 (overlong C0 AE is
 * a '.'), look-alikes of '.', '/' and '\\' that NFKC or a lax renderer folds
 * (U+FF0E, U+FF0F, U+2024, U+FE52, U+2215, U+2044, ...) and invisible or
 * bidirectional formatting characters. Then "." and ".." are resolved
 * lexically ("/.." stays "/"), "//" collapses and a trailing '/' goes. The
 * result is what the caller forwards, so the checked string is the used one.
 * Symbolic links are not resolved: a proxy cannot see the upstream's file
 * system (documented limitation; sandbox the upstream).
 */
#include "policy/paths.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "policy/policy.h"
#include "policy/text.h"

/* Code points that display as or fold to '.', '/' or '\\'. */
static bool is_lookalike(uint32_t cp)
{
    static const uint32_t list[] = {
        0x2024, 0x2025, 0x2026, 0xFE52, 0xFF0E, 0xFF61, /* dots */
        0x2044, 0x2215, 0x29F8, 0xFF0F, 0x2571,         /* slashes */
        0x2216, 0x29F5, 0x29F9, 0xFE68, 0xFF3C, 0x2572, /* backslashes */
    };
    for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++)
        if (list[i] == cp)
            return true;
    return false;
}

/* Zero-width, bidirectional and other invisible formatting characters. */
static bool is_invisible(uint32_t cp)
{
    return (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2060 && cp <= 0x2069) || cp == 0xFEFF || cp == 0x00AD;
}

/* Returns NULL when path[0..len) has only acceptable code points, else why not. */
static const char *bad_char(const char *path, size_t len)
{
    size_t i = 0;

    while (i < len) {
        uint32_t cp = mcpd__policy_utf8_next(path, len, &i);
        if (cp & MCPD__POLICY_BAD_BYTE)
            return "invalid UTF-8";
        if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029)
            return "NUL or control character";
        if (cp == '\\')
            return "backslash";
        if (cp == '%')
            return "percent-encoding";
        if (is_lookalike(cp))
            return "look-alike of '.', '/' or '\\'";
        if (is_invisible(cp))
            return "invisible or bidirectional formatting character";
    }
    return NULL;
}

/* Appends segment seg[0..n) to out[0..*o); false when it does not fit. */
static bool push_segment(char *out, size_t cap, size_t *o, const char *seg, size_t n)
{
    size_t sep = *o > 1 ? 1 : 0;

    if (*o + sep + n + 1 > cap)
        return false;
    if (sep)
        out[(*o)++] = '/';
    memcpy(out + *o, seg, n);
    *o += n;
    return true;
}

/* Drops the last segment of out[0..*o) ("/a/b" -> "/a", "/a" -> "/", "/" -> "/"). */
static void pop_segment(const char *out, size_t *o)
{
    while (*o > 1 && out[*o - 1] != '/')
        (*o)--;
    if (*o > 1)
        (*o)--;
}

int mcpd_policy_path_canon(char *out, size_t cap, const char *path, size_t len, const char **why)
{
    const char *dummy;
    size_t i = 0, o = 1;

    if (why == NULL)
        why = &dummy;
    if (cap < 2 || out == NULL) {
        *why = "path too long";
        return -1;
    }
    out[0] = '\0';
    if (path == NULL || len == 0) {
        *why = "empty path";
        return -1;
    }
    if (len > MCPD_POLICY_MAX_PATH) {
        *why = "path too long";
        return -1;
    }
    if ((*why = bad_char(path, len)) != NULL)
        return -1;
    if (path[0] != '/') {
        *why = "relative path";
        return -1;
    }
    out[0] = '/';
    while (i < len) {
        size_t start = i, n;
        while (i < len && path[i] != '/')
            i++;
        n = i - start;
        if (i < len)
            i++;
        if (n == 0 || (n == 1 && path[start] == '.'))
            continue;
        if (n == 2 && path[start] == '.' && path[start + 1] == '.') {
            pop_segment(out, &o);
            continue;
        }
        if (!push_segment(out, cap, &o, path + start, n)) {
            out[0] = '\0';
            *why = "path too long";
            return -1;
        }
    }
    out[o] = '\0';
    *why = NULL;
    return 0;
}

/* True when pattern has an empty, "." or ".." segment, or a trailing '/'. */
static bool non_canonical(const char *p)
{
    size_t n = strlen(p);

    if (n > 1 && p[n - 1] == '/')
        return true;
    for (const char *s = p; *s; s++) {
        if (*s != '/')
            continue;
        if (s[1] == '/')
            return true;
        if (s[1] == '.' && (s[2] == '/' || s[2] == '\0'))
            return true;
        if (s[1] == '.' && s[2] == '.' && (s[3] == '/' || s[3] == '\0'))
            return true;
    }
    return false;
}

int mcpd__policy_path_pattern_check(const char *pattern, const char **why)
{
    if (mcpd_policy_glob_check(pattern, why) != 0)
        return -1;
    if (pattern[0] != '/' &&
        !(strncmp(pattern, "**", 2) == 0 && (pattern[2] == '\0' || pattern[2] == '/'))) {
        *why = "path pattern must be absolute";
        return -1;
    }
    if (non_canonical(pattern)) {
        *why = "path pattern is not canonical (\"//\", \".\", \"..\" or a trailing '/'); "
               "write \"/dir/**\" for a directory and everything below it";
        return -1;
    }
    return 0;
}
