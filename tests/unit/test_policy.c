/*
 * test_policy.c - unit tests of the binding policy engine (policy/): the
 * glob matcher, the path, command and image canonicalisers, and decisions
 * about bots, roles and bindings.
 *
 * Each bypass class of security.md section 6 is a named test, and the
 * reason strings are pinned exactly: clients (and the models behind them)
 * read them, so they must not drift between releases by accident.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* cmocka.h needs these four first. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "policy/glob.h"
#include "policy/policy.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers -------------------------------------------------------------------------------- */

static bool glob0(const char *pattern, const char *s)
{
    return mcpd_policy_glob(pattern, s, strlen(s), 0);
}

static bool glob1(const char *pattern, const char *s)
{
    return mcpd_policy_glob(pattern, s, strlen(s), 1);
}

static const char *glob_why(const char *pattern)
{
    const char *why = NULL;
    if (mcpd_policy_glob_check(pattern, &why) == 0)
        return "ok";
    assert_non_null(why);
    return why;
}

/* Canonicalises s[0..len): the canonical form, or "ERR: <why>". */
static const char *canon_n(const char *s, size_t len)
{
    static char out[MCPD_POLICY_MAX_PATH + 16];
    char buf[MCPD_POLICY_MAX_PATH + 1];
    const char *why = NULL;

    if (mcpd_policy_path_canon(buf, sizeof(buf), s, len, &why) != 0) {
        assert_non_null(why);
        snprintf(out, sizeof(out), "ERR: %s", why);
    } else {
        assert_null(why);
        snprintf(out, sizeof(out), "%s", buf);
    }
    return out;
}

static const char *canon(const char *s)
{
    return canon_n(s, strlen(s));
}

static const char *image(const char *s)
{
    static char out[640];
    char buf[600];
    const char *why = NULL;

    if (mcpd_policy_image_normalise(buf, sizeof(buf), s, strlen(s), &why) != 0)
        snprintf(out, sizeof(out), "ERR: %s", why);
    else
        snprintf(out, sizeof(out), "%s", buf);
    return out;
}

/*
 * A policy with one bot "alice" holding one binding "b0" on resource
 * "files" (every tool) that constrains dimension `dim` to `pats`.
 */
static struct mcpd_policy *one_dim(const char *dim, const char *const *pats, size_t n)
{
    struct mcpd_policy *p = NULL;
    char err[256];
    const struct mcpd_policy_dim dims[] = { { dim, pats, n } };
    const struct mcpd_policy_binding b[] = {
        { .resource = "files", .dims = dims, .ndims = 1, .id = "b0" },
    };
    const struct mcpd_policy_bot bots[] = { { .name = "alice", .bindings = b, .nbindings = 1 } };

    if (mcpd_policy_new(&p, bots, 1, NULL, 0, err, sizeof(err)) != 0)
        fail_msg("policy: %s", err);
    return p;
}

/* Calls tool "t" of resource "files" with {arg: value (taken)}; keeps the arguments in *args. */
static int call_arg(const struct mcpd_policy *p, const char *dim, const char *arg, json_t *value,
                    json_t **args, struct mcpd_policy_decision *d)
{
    const char *const names[] = { arg };
    const struct mcpd_policy_dim_args da[] = { { dim, names, 1 } };
    const struct mcpd_policy_resource res = { "files", da, 1 };
    int rc;

    *args = json_object();
    assert_non_null(value);
    json_object_set_new(*args, arg, value);
    memset(d, 0x5a, sizeof(*d));
    rc = mcpd_policy_check_call(p, "alice", &res, "t", *args, d);
    assert_int_equal(rc, d->allow ? 0 : -1);
    return rc;
}

/* As call_arg, then returns the decision's reason ("" on allow) and drops the arguments. */
static const char *reason_of(const struct mcpd_policy *p, const char *dim, const char *arg,
                             json_t *value)
{
    static struct mcpd_policy_decision d;
    json_t *args;

    call_arg(p, dim, arg, value, &args, &d);
    json_decref(args);
    return d.allow ? "" : d.reason;
}

static const char *path_reason(const struct mcpd_policy *p, const char *path)
{
    return reason_of(p, "paths", "path", json_string(path));
}

static const char *cmd_reason(const struct mcpd_policy *p, const char *cmd)
{
    return reason_of(p, "commands", "command", json_string(cmd));
}

static const char *image_reason(const struct mcpd_policy *p, const char *ref)
{
    return reason_of(p, "images", "image", json_string(ref));
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- globs ---------------------------------------------------------------------------------- */

static void test_glob_anchoring(void **state)
{
    assert_true(glob0("abc", "abc"));
    assert_false(glob0("abc", "xabc"));
    assert_false(glob0("abc", "abcx"));
    assert_false(glob0("abc", "ab"));
    assert_true(glob0("", ""));
    assert_false(glob0("", "a"));
    assert_false(glob0("a*", "ba"));
    assert_false(glob0("*a", "ab"));
    /* case-sensitive, byte-exact: no folding of any kind */
    assert_false(glob0("abc", "ABC"));
}

static void test_glob_star(void **state)
{
    assert_true(glob0("*", ""));
    assert_true(glob0("*", "anything/at/all"));
    assert_true(glob0("a*c", "ac"));
    assert_true(glob0("a*c", "abbbc"));
    assert_true(glob0("a*c", "a/b/c"));
    assert_false(glob0("a*c", "abcd"));
    assert_true(glob0("agent1-*", "agent1-x"));
    assert_false(glob0("agent1-*", "agent10"));
    /* path mode: '*' stays within a segment */
    assert_true(glob1("/srv/*", "/srv/x"));
    assert_false(glob1("/srv/*", "/srv/x/y"));
    assert_false(glob1("a*c", "a/c"));
    assert_true(glob1("/srv/*/log", "/srv/app/log"));
    /* two stars inside a segment are one star */
    assert_true(glob1("a**", "abc"));
    assert_false(glob1("a**", "a/b"));
    /* no FNM_PERIOD: '*' matches a leading dot */
    assert_true(glob1("/srv/data/*", "/srv/data/.env"));
    /* a subject may hold NUL when given a length; '*' matches it */
    assert_true(mcpd_policy_glob("a*", "a\0b", 3, 0));
    assert_false(mcpd_policy_glob("ab", "a\0b", 3, 0));
}

static void test_glob_question(void **state)
{
    assert_true(glob0("?", "a"));
    assert_false(glob0("?", ""));
    assert_false(glob0("?", "ab"));
    /* one code point, not one byte */
    assert_true(glob0("?", "\xc3\xa9"));
    assert_true(glob0("caf?", "caf\xc3\xa9"));
    assert_true(glob0("??", "\xe2\x82\xac\xf0\x9f\x98\x80"));
    assert_true(glob0("a?c", "a/c"));
    assert_false(glob1("a?c", "a/c"));
}

static void test_glob_globstar(void **state)
{
    assert_true(glob1("/srv/data/**", "/srv/data"));
    assert_true(glob1("/srv/data/**", "/srv/data/a"));
    assert_true(glob1("/srv/data/**", "/srv/data/a/b/c"));
    assert_false(glob1("/srv/data/**", "/srv/database"));
    assert_false(glob1("/srv/data/**", "/srv/data-private/x"));
    assert_false(glob1("/srv/data/**", "/srv"));
    assert_true(glob1("a/**/b", "a/b"));
    assert_true(glob1("a/**/b", "a/x/b"));
    assert_true(glob1("a/**/b", "a/x/y/b"));
    assert_false(glob1("a/**/b", "a/xb"));
    assert_false(glob1("a/**/b", "a/x/bc"));
    assert_true(glob1("**/x", "x"));
    assert_true(glob1("**/x", "d/e/x"));
    assert_false(glob1("**/x", "dx"));
    assert_true(glob1("**", "a/b/c"));
    assert_true(glob1("/**", "/"));
    assert_true(glob1("/srv/**/*.log", "/srv/a/b/c.log"));
    assert_true(glob1("/srv/**/*.log", "/srv/c.log"));
    assert_false(glob1("/srv/**/*.log", "/srv/a/c.txt"));
}

static void test_glob_classes(void **state)
{
    assert_true(glob0("[abc]", "b"));
    assert_false(glob0("[abc]", "d"));
    assert_true(glob0("[a-c]x", "bx"));
    assert_false(glob0("[a-c]x", "dx"));
    assert_true(glob0("[!a-c]", "d"));
    assert_false(glob0("[!a-c]", "a"));
    assert_true(glob0("[^a]", "b"));
    assert_false(glob0("[^a]", "a"));
    /* ']' first is literal, also after the negation */
    assert_true(glob0("[]]", "]"));
    assert_true(glob0("[]a]", "a"));
    assert_false(glob0("[!]]", "]"));
    assert_true(glob0("[!]]", "x"));
    /* '-' at either edge is literal */
    assert_true(glob0("[a-]", "-"));
    assert_true(glob0("[-a]", "-"));
    assert_false(glob0("[a-]", "b"));
    /* members are code points */
    assert_true(glob0("[\xc3\xa9\xc3\xa8]", "\xc3\xa8"));
    assert_false(glob0("[\xc3\xa9]", "\xc3"));
    /* escapes inside a class */
    assert_true(glob0("[\\]]", "]"));
    /* a class never matches '/' in path mode, even negated */
    assert_true(glob0("a[!x]b", "a/b"));
    assert_false(glob1("a[!x]b", "a/b"));
    assert_false(glob1("a[/]b", "a/b"));
}

static void test_glob_escapes(void **state)
{
    assert_true(glob0("\\*", "*"));
    assert_false(glob0("\\*", "a"));
    assert_true(glob0("\\?", "?"));
    assert_false(glob0("\\?", "a"));
    assert_true(glob0("a\\[b", "a[b"));
    assert_true(glob0("\\\\", "\\"));
    assert_true(glob0("\\a", "a"));
    assert_true(glob1("/x/\\*\\*", "/x/**"));
    assert_false(glob1("/x/\\*\\*", "/x/y"));
}

static void test_glob_invalid(void **state)
{
    char longpat[MCPD_POLICY_MAX_PATTERN + 2];

    assert_string_equal(glob_why("[abc"), "unterminated '['");
    assert_string_equal(glob_why("[]"), "unterminated '['");
    assert_string_equal(glob_why("[!"), "unterminated '['");
    assert_string_equal(glob_why("abc\\"), "trailing '\\'");
    assert_string_equal(glob_why("[z-a]"), "reversed range in '[...]'");
    assert_string_equal(glob_why("[[:alpha:]]"),
                        "POSIX class names such as '[:alpha:]' are not supported");
    assert_string_equal(glob_why("a\xff"), "invalid UTF-8");
    assert_string_equal(glob_why("a\xc0\xae"), "invalid UTF-8");
    memset(longpat, 'a', sizeof(longpat) - 1);
    longpat[sizeof(longpat) - 1] = '\0';
    assert_string_equal(glob_why(longpat), "pattern longer than 1024 bytes");
    longpat[MCPD_POLICY_MAX_PATTERN] = '\0';
    assert_string_equal(glob_why(longpat), "ok");
    assert_string_equal(glob_why("a]b"), "ok");
    assert_string_equal(glob_why("[a-]"), "ok");
    assert_int_equal(mcpd_policy_glob_check(NULL, NULL), -1);
    /* an invalid pattern matches nothing, not even itself */
    assert_false(glob0("[abc", "[abc"));
    assert_false(glob0("abc\\", "abc\\"));
}

static void test_glob_invalid_rejected_at_build(void **state)
{
    const char *const pats[] = { "/srv/**", "/srv/[x" };
    const struct mcpd_policy_dim dims[] = { { "paths", pats, 2 } };
    const char *const tools[] = { "read_*", "bad[" };
    struct mcpd_policy_binding b = { .resource = "files", .dims = dims, .ndims = 1 };
    struct mcpd_policy_bot bot = { .name = "alice", .bindings = &b, .nbindings = 1 };
    struct mcpd_policy *p = (struct mcpd_policy *)&b;
    char err[256];

    assert_int_equal(mcpd_policy_new(&p, &bot, 1, NULL, 0, err, sizeof(err)), -1);
    assert_null(p);
    assert_string_equal(err, "bots.alice.bindings[0].paths[1]: unterminated '['");
    b.ndims = 0;
    b.tools = tools;
    b.ntools = 2;
    assert_int_equal(mcpd_policy_new(&p, &bot, 1, NULL, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "bots.alice.bindings[0].tools[1]: unterminated '['");
    b.ntools = 1;
    b.resource = "files[";
    assert_int_equal(mcpd_policy_new(&p, &bot, 1, NULL, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "bots.alice.bindings[0].resource: unterminated '['");
}

/* Runs one match and checks it stays within a generous bound (the target is well under 10 ms). */
static void assert_fast(const char *pattern, const char *s, size_t len, int mode, bool want)
{
    double t0 = now_ms(), dt;
    bool got = mcpd_policy_glob(pattern, s, len, mode);

    dt = now_ms() - t0;
    assert_int_equal(got, want);
    if (dt > 200.0)
        fail_msg("'%.40s' over %zu bytes took %.1f ms", pattern, len, dt);
}

static void test_glob_linear_time(void **state)
{
    enum { LEN = 10 * 1024 };
    char *s = malloc(LEN + 1);
    char pat[MCPD_POLICY_MAX_PATTERN + 1];

    assert_non_null(s);
    memset(s, 'a', LEN);
    s[LEN] = '\0';
    assert_fast("*a*a*a*a*a*a*a*a*a*a*a*a*b", s, LEN, 0, false);
    assert_fast("*a*a*a*a*a*a*a*a*a*a*a*a*b", s, LEN, 1, false);
    assert_fast("*a*a*a*a*a*a*a*a*a*a*a*a*a", s, LEN, 0, true);
    assert_fast("**/**/**/**/**/**/**/b", s, LEN, 1, false);
    assert_fast("*?*?*?*?*?*?*?*?*?*?[b]", s, LEN, 0, false);
    /* a long pathological pattern: "*a" repeated up to the pattern cap */
    for (size_t i = 0; i + 2 <= sizeof(pat) - 2; i += 2)
        memcpy(pat + i, "*a", 2);
    pat[sizeof(pat) - 3] = 'b';
    pat[sizeof(pat) - 2] = '\0';
    assert_fast(pat, s, LEN, 0, false);
    /* segments of "a/" with "*" + "/" patterns */
    for (size_t i = 0; i + 1 < LEN; i += 2)
        s[i + 1] = '/';
    assert_fast("/**/a/**/a/**/a/**/a/**/b", s, LEN, 1, false);
    assert_fast("a/*/*/*/*/*/*/*/*/*/*/*/*/*/*/*/b", s, LEN, 1, false);
    free(s);
}

/* ---- paths ---------------------------------------------------------------------------------- */

static void test_path_traversal(void **state)
{
    const char *const pats[] = { "/srv/data/**" };
    struct mcpd_policy *p = one_dim("paths", pats, 1);

    assert_string_equal(canon("/srv/data/../etc/passwd"), "/srv/etc/passwd");
    assert_string_equal(canon("/srv/data/../../etc/passwd"), "/etc/passwd");
    assert_string_equal(canon("/../../../etc/passwd"), "/etc/passwd");
    assert_string_equal(canon("/srv/data/x/../../data/y"), "/srv/data/y");
    assert_string_equal(path_reason(p, "/srv/data/../etc/passwd"),
                        "paths: '/srv/etc/passwd' (argument 'path') is outside the allowed paths");
    assert_string_equal(path_reason(p, "/srv/data/../../etc/passwd"),
                        "paths: '/etc/passwd' (argument 'path') is outside the allowed paths");
    assert_string_equal(path_reason(p, "/srv/data/x/../../data/y"), "");
    /* "..." is an ordinary name */
    assert_string_equal(canon("/srv/data/.../x"), "/srv/data/.../x");
    mcpd_policy_free(p);
}

static void test_path_double_slash(void **state)
{
    assert_string_equal(canon("//srv///data//x"), "/srv/data/x");
    assert_string_equal(canon("/./a/./b/."), "/a/b");
    assert_string_equal(canon("/"), "/");
    assert_string_equal(canon("//"), "/");
    assert_string_equal(canon("/.."), "/");
    assert_string_equal(canon("/a/b/.."), "/a");
}

static void test_path_trailing_slash(void **state)
{
    const char *const pats[] = { "/srv/data/**" };
    struct mcpd_policy *p = one_dim("paths", pats, 1);
    const char *const bad[] = { "/etc/" };
    const struct mcpd_policy_dim dims[] = { { "paths", bad, 1 } };
    const struct mcpd_policy_binding b = { .resource = "files", .dims = dims, .ndims = 1 };
    const struct mcpd_policy_bot bot = { .name = "alice", .bindings = &b, .nbindings = 1 };
    struct mcpd_policy *q = NULL;
    char err[256];

    assert_string_equal(canon("/srv/data/"), "/srv/data");
    assert_string_equal(canon("/srv/data/x/"), "/srv/data/x");
    assert_string_equal(path_reason(p, "/srv/data/"), "");
    /* a pattern with a trailing '/' could never match: refused at build */
    assert_int_equal(mcpd_policy_new(&q, &bot, 1, NULL, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "bots.alice.bindings[0].paths[0]: path pattern is not canonical "
                             "(\"//\", \".\", \"..\" or a trailing '/'); write \"/dir/**\" for "
                             "a directory and everything below it");
    mcpd_policy_free(p);
}

static void test_path_relative_rejected(void **state)
{
    const char *const pats[] = { "/**" };
    struct mcpd_policy *p = one_dim("paths", pats, 1);

    assert_string_equal(canon("srv/data"), "ERR: relative path");
    assert_string_equal(canon("./x"), "ERR: relative path");
    assert_string_equal(canon("../etc/passwd"), "ERR: relative path");
    assert_string_equal(canon("~/x"), "ERR: relative path");
    assert_string_equal(canon(""), "ERR: empty path");
    assert_string_equal(path_reason(p, "../etc/passwd"),
                        "paths: '../etc/passwd' (argument 'path') is rejected: relative path");
    mcpd_policy_free(p);
}

static void test_path_nul_and_controls_rejected(void **state)
{
    const char *const pats[] = { "/srv/data/**" };
    struct mcpd_policy *p = one_dim("paths", pats, 1);
    static const char nul[] = "/srv/data/ok\0/../../etc/passwd";

    assert_string_equal(canon_n(nul, sizeof(nul) - 1), "ERR: NUL or control character");
    assert_string_equal(canon("/srv/data/a\nb"), "ERR: NUL or control character");
    assert_string_equal(canon("/srv/data/a\rb"), "ERR: NUL or control character");
    assert_string_equal(canon("/srv/data/\x1b[31m"), "ERR: NUL or control character");
    assert_string_equal(canon("/srv/data/\x7f"), "ERR: NUL or control character");
    assert_string_equal(canon("/srv/data/\xc2\x85"), "ERR: NUL or control character");
    assert_string_equal(canon("/srv/data/\xe2\x80\xa8"), "ERR: NUL or control character");
    /* through a decision: the value is escaped, never raw */
    assert_string_equal(reason_of(p, "paths", "path", json_stringn(nul, sizeof(nul) - 1)),
                        "paths: '/srv/data/ok\\x00/../../etc/passwd' (argument 'path') is "
                        "rejected: NUL or control character");
    mcpd_policy_free(p);
}

static void test_path_percent_encoding_rejected(void **state)
{
    assert_string_equal(canon("/srv/data/%2e%2e/etc/passwd"), "ERR: percent-encoding");
    assert_string_equal(canon("/srv/data/..%2fetc"), "ERR: percent-encoding");
    assert_string_equal(canon("/srv/data/%252e%252e/etc"), "ERR: percent-encoding");
    assert_string_equal(canon("/srv/data/%5c"), "ERR: percent-encoding");
    assert_string_equal(canon("/srv/data/100%"), "ERR: percent-encoding");
}

static void test_path_backslash_rejected(void **state)
{
    assert_string_equal(canon("/srv/data\\..\\..\\etc"), "ERR: backslash");
    assert_string_equal(canon("/srv/data/a\\b"), "ERR: backslash");
}

static void test_path_unicode_lookalikes_rejected(void **state)
{
    /* octal escapes, so that no hex escape swallows the letters after it */
    static const char *const cases[] = {
        "/srv/data/\357\274\216\357\274\216/etc", /* U+FF0E fullwidth full stop */
        "/srv/data/..\357\274\217etc",            /* U+FF0F fullwidth solidus */
        "/srv/data/\342\200\244\342\200\244",     /* U+2024 one dot leader */
        "/srv/data/\357\271\222\357\271\222",     /* U+FE52 small full stop */
        "/srv/data/..\342\210\225etc",            /* U+2215 division slash */
        "/srv/data/..\342\201\204etc",            /* U+2044 fraction slash */
        "/srv/data/\342\200\245",                 /* U+2025 two dot leader */
        "/srv/data/..\357\274\274etc",            /* U+FF3C fullwidth reverse solidus */
    };
    /* U+202E right-to-left override, spelled as bytes so that no editor renders it */
    static const char rlo[] = { '/', 'x', '/', 'a', '\342', '\200', '\256', 'b', '\0' };

    for (size_t i = 0; i < N(cases); i++)
        assert_string_equal(canon(cases[i]), "ERR: look-alike of '.', '/' or '\\'");
    assert_string_equal(canon(rlo), "ERR: invisible or bidirectional formatting character");
    /* ordinary non-ASCII names are fine */
    assert_string_equal(canon("/srv/data/caf\303\251/\346\227\245\346\234\254"),
                        "/srv/data/caf\303\251/\346\227\245\346\234\254");
}

static void test_path_invalid_utf8_rejected(void **state)
{
    assert_string_equal(canon("/srv/data/\xc0\xae\xc0\xae/etc"), "ERR: invalid UTF-8");
    assert_string_equal(canon("/srv/data/..\300\257etc"), "ERR: invalid UTF-8");
    assert_string_equal(canon("/srv/data/\xe0\x80\xae"), "ERR: invalid UTF-8");
    assert_string_equal(canon("/srv/data/\xed\xa0\x80"), "ERR: invalid UTF-8");
    assert_string_equal(canon("/srv/data/\xe2\x80"), "ERR: invalid UTF-8");
    assert_string_equal(canon("/srv/data/\xff"), "ERR: invalid UTF-8");
    assert_string_equal(canon("/srv/data/\xf4\x90\x80\x80"), "ERR: invalid UTF-8");
}

static void test_path_prefix_confusion(void **state)
{
    const char *const pats[] = { "/srv/data/**" };
    struct mcpd_policy *p = one_dim("paths", pats, 1);

    assert_string_equal(path_reason(p, "/srv/data/x"), "");
    assert_string_equal(path_reason(p, "/srv/database"),
                        "paths: '/srv/database' (argument 'path') is outside the allowed paths");
    assert_string_equal(path_reason(p, "/srv/data-private/x"),
                        "paths: '/srv/data-private/x' (argument 'path') is outside the allowed "
                        "paths");
    assert_string_equal(path_reason(p, "/srv/dat"),
                        "paths: '/srv/dat' (argument 'path') is outside the allowed paths");
    /* case-sensitive on POSIX */
    assert_string_equal(path_reason(p, "/SRV/DATA/x"),
                        "paths: '/SRV/DATA/x' (argument 'path') is outside the allowed paths");
    mcpd_policy_free(p);
}

static void test_path_exact_directory(void **state)
{
    const char *const pats[] = { "/srv/data/**", "/etc/hosts" };
    struct mcpd_policy *p = one_dim("paths", pats, 2);
    struct mcpd_policy_decision d;
    json_t *args;

    assert_int_equal(call_arg(p, "paths", "path", json_string("/srv/data"), &args, &d), 0);
    assert_string_equal(d.pattern, "/srv/data/**");
    json_decref(args);
    /* a pattern without '**' is exact */
    assert_int_equal(call_arg(p, "paths", "path", json_string("/etc/hosts"), &args, &d), 0);
    assert_string_equal(d.pattern, "/etc/hosts");
    json_decref(args);
    assert_string_equal(path_reason(p, "/etc/hosts/x"),
                        "paths: '/etc/hosts/x' (argument 'path') is outside the allowed paths");
    assert_string_equal(path_reason(p, "/etc"),
                        "paths: '/etc' (argument 'path') is outside the allowed paths");
    mcpd_policy_free(p);
}

static void test_path_argument_replaced(void **state)
{
    const char *const pats[] = { "/srv/data/**" };
    struct mcpd_policy *p = one_dim("paths", pats, 1);
    struct mcpd_policy_decision d;
    json_t *args;

    assert_int_equal(call_arg(p, "paths", "path", json_string("/srv//data/a/../b/./c/"), &args, &d),
                     0);
    assert_string_equal(json_string_value(json_object_get(args, "path")), "/srv/data/b/c");
    json_decref(args);
    /* already canonical: left as it is */
    assert_int_equal(call_arg(p, "paths", "path", json_string("/srv/data/b"), &args, &d), 0);
    assert_string_equal(json_string_value(json_object_get(args, "path")), "/srv/data/b");
    json_decref(args);
    mcpd_policy_free(p);
}

static void test_path_wrong_type_denied(void **state)
{
    const char *const pats[] = { "/srv/data/**" };
    struct mcpd_policy *p = one_dim("paths", pats, 1);
    struct mcpd_policy_decision d;
    json_t *args;

    assert_int_equal(call_arg(p, "paths", "path", json_pack("[s]", "/srv/data/x"), &args, &d), -1);
    assert_string_equal(d.reason, "paths: argument 'path' must be a string, not an array");
    assert_string_equal(d.value, "[\"/srv/data/x\"]");
    assert_string_equal(d.dimension, "paths");
    assert_string_equal(d.argument, "path");
    json_decref(args);
    assert_string_equal(reason_of(p, "paths", "path", json_integer(1)),
                        "paths: argument 'path' must be a string, not a number");
    assert_string_equal(reason_of(p, "paths", "path", json_null()),
                        "paths: argument 'path' must be a string, not null");
    assert_string_equal(reason_of(p, "paths", "path", json_pack("{s:s}", "p", "/srv/data")),
                        "paths: argument 'path' must be a string, not an object");
    assert_string_equal(reason_of(p, "paths", "path", json_true()),
                        "paths: argument 'path' must be a string, not a boolean");
    mcpd_policy_free(p);
}

static void test_path_case_variant_argument_denied(void **state)
{
    const char *const pats[] = { "/srv/data/**" };
    struct mcpd_policy *p = one_dim("paths", pats, 1);
    const char *const names[] = { "path" };
    const struct mcpd_policy_dim_args da[] = { { "paths", names, 1 } };
    const struct mcpd_policy_resource res = { "files", da, 1 };
    struct mcpd_policy_decision d;
    json_t *args = json_pack("{s:s, s:s}", "path", "/srv/data/x", "Path", "/etc/passwd");

    assert_int_equal(mcpd_policy_check_call(p, "alice", &res, "t", args, &d), -1);
    assert_string_equal(d.reason,
                        "paths: argument 'Path' is a case variant of the constrained argument "
                        "'path'");
    assert_string_equal(d.argument, "Path");
    json_decref(args);
    mcpd_policy_free(p);
}

static void test_path_canon_idempotent(void **state)
{
    static const char *const cases[] = { "/", "/a", "/a/b/../c", "//x//y//", "/./.././z/..." };
    char once[64], twice[64];
    const char *why;

    for (size_t i = 0; i < N(cases); i++) {
        assert_int_equal(
            mcpd_policy_path_canon(once, sizeof(once), cases[i], strlen(cases[i]), &why), 0);
        assert_int_equal(mcpd_policy_path_canon(twice, sizeof(twice), once, strlen(once), &why), 0);
        assert_string_equal(once, twice);
    }
    /* too small an output buffer fails cleanly */
    assert_int_equal(mcpd_policy_path_canon(once, 4, "/abcdef", 7, &why), -1);
    assert_string_equal(why, "path too long");
}

/* ---- commands ------------------------------------------------------------------------------- */

/* The command policy most tests use. */
static struct mcpd_policy *cmd_policy(void)
{
    static const char *const pats[] = {
        "git status",     "git diff *", "git log *", "git log -n *",        "ls -la *",
        "find . -name *", "ls **",      "echo **",   "/usr/bin/git status", "make -*",
        "cat *.txt",
    };
    return one_dim("commands", pats, N(pats));
}

static void test_cmd_metacharacters(void **state)
{
    struct mcpd_policy *p = cmd_policy();

    assert_string_equal(cmd_reason(p, "ls; rm -rf /"),
                        "commands: 'ls; rm -rf /' (argument 'command') is rejected: shell "
                        "metacharacter ';'");
    assert_string_equal(cmd_reason(p, "ls && rm -rf /"),
                        "commands: 'ls && rm -rf /' (argument 'command') is rejected: shell "
                        "metacharacter '&'");
    assert_string_equal(cmd_reason(p, "ls | sh"),
                        "commands: 'ls | sh' (argument 'command') is rejected: shell "
                        "metacharacter '|'");
    assert_string_equal(cmd_reason(p, "echo $(id)"),
                        "commands: 'echo $(id)' (argument 'command') is rejected: shell "
                        "metacharacter '$'");
    assert_string_equal(cmd_reason(p, "echo `id`"),
                        "commands: 'echo `id`' (argument 'command') is rejected: shell "
                        "metacharacter '`'");
    assert_string_equal(cmd_reason(p, "ls > /etc/x"),
                        "commands: 'ls > /etc/x' (argument 'command') is rejected: shell "
                        "metacharacter '>'");
    assert_string_equal(cmd_reason(p, "echo ${IFS}"),
                        "commands: 'echo ${IFS}' (argument 'command') is rejected: shell "
                        "metacharacter '$'");
    assert_string_equal(cmd_reason(p, "ls 'a b'"),
                        "commands: 'ls \\'a b\\'' (argument 'command') is rejected: shell quote "
                        "'''");
    assert_string_equal(cmd_reason(p, "ls ~"),
                        "commands: 'ls ~' (argument 'command') is rejected: shell metacharacter "
                        "'~'");
    mcpd_policy_free(p);
}

static void test_cmd_newline_nul_and_non_ascii(void **state)
{
    struct mcpd_policy *p = cmd_policy();

    assert_string_equal(cmd_reason(p, "ls\nrm -rf /"),
                        "commands: 'ls\\x0arm -rf /' (argument 'command') is rejected: newline");
    assert_string_equal(cmd_reason(p, "ls\r"),
                        "commands: 'ls\\x0d' (argument 'command') is rejected: carriage return");
    assert_string_equal(cmd_reason(p, "ls\t-la"),
                        "commands: 'ls\\x09-la' (argument 'command') is rejected: tab");
    assert_string_equal(reason_of(p, "commands", "command", json_stringn("ls\0rm", 5)),
                        "commands: 'ls\\x00rm' (argument 'command') is rejected: NUL character");
    /* NBSP looks like a space but is not one */
    assert_string_equal(cmd_reason(p, "ls\xc2\xa0-la"),
                        "commands: 'ls\xc2\xa0-la' (argument 'command') is rejected: non-ASCII "
                        "character");
    assert_string_equal(cmd_reason(p, "ls\xe2\x80\xa8rm"),
                        "commands: 'ls\\u2028rm' (argument 'command') is rejected: non-ASCII "
                        "character");
    mcpd_policy_free(p);
}

static void test_cmd_env_assignment(void **state)
{
    struct mcpd_policy *p = cmd_policy();

    assert_string_equal(cmd_reason(p, "LD_PRELOAD=/tmp/x.so ls"),
                        "commands: 'LD_PRELOAD=/tmp/x.so ls' (argument 'command') is rejected: "
                        "environment assignment");
    assert_string_equal(cmd_reason(p, "GIT_PAGER=x git status"),
                        "commands: 'GIT_PAGER=x git status' (argument 'command') is rejected: "
                        "environment assignment");
    mcpd_policy_free(p);
}

static void test_cmd_wrappers(void **state)
{
    static const char *const pats[] = { "* **", "sudo ls" };
    struct mcpd_policy *p = one_dim("commands", pats, 2);

    assert_string_equal(cmd_reason(p, "ls"), "");
    assert_string_equal(cmd_reason(p, "env ls"),
                        "commands: 'env ls' (argument 'command') is not an allowed command "
                        "(wrapper program)");
    assert_string_equal(cmd_reason(p, "sh -c ls"),
                        "commands: 'sh -c ls' (argument 'command') is not an allowed command "
                        "(wrapper program)");
    assert_string_equal(cmd_reason(p, "bash"),
                        "commands: 'bash' (argument 'command') is not an allowed command "
                        "(wrapper program)");
    assert_string_equal(cmd_reason(p, "xargs rm"),
                        "commands: 'xargs rm' (argument 'command') is not an allowed command "
                        "(wrapper program)");
    assert_string_equal(cmd_reason(p, "timeout 5 rm"),
                        "commands: 'timeout 5 rm' (argument 'command') is not an allowed command "
                        "(wrapper program)");
    assert_string_equal(cmd_reason(p, "sudo rm"),
                        "commands: 'sudo rm' (argument 'command') is not an allowed command "
                        "(wrapper program)");
    /* a pattern that names the wrapper literally opts in */
    assert_string_equal(cmd_reason(p, "sudo ls"), "");
    mcpd_policy_free(p);
}

static void test_cmd_path_qualified(void **state)
{
    struct mcpd_policy *p = cmd_policy();
    struct mcpd_policy_decision d;
    json_t *args;

    assert_string_equal(cmd_reason(p, "/tmp/git status"),
                        "commands: '/tmp/git status' (argument 'command') is not an allowed "
                        "command (path-qualified program)");
    assert_string_equal(cmd_reason(p, "./git status"),
                        "commands: './git status' (argument 'command') is rejected: relative "
                        "program path");
    assert_string_equal(cmd_reason(p, "bin/git status"),
                        "commands: 'bin/git status' (argument 'command') is rejected: relative "
                        "program path");
    assert_string_equal(cmd_reason(p, "/usr/bin/../../tmp/git status"),
                        "commands: '/usr/bin/../../tmp/git status' (argument 'command') is not "
                        "an allowed command (path-qualified program)");
    /* "git status" does not allow /usr/local/bin/git */
    assert_string_equal(cmd_reason(p, "/usr/local/bin/git status"),
                        "commands: '/usr/local/bin/git status' (argument 'command') is not an "
                        "allowed command (path-qualified program)");
    assert_string_equal(cmd_reason(p, "/usr/bin/git status"), "");
    /* a non-canonical spelling of the allowed path is forwarded canonical */
    assert_int_equal(call_arg(p, "commands", "command",
                              json_string("/usr/bin/./../bin/git   status"), &args, &d),
                     0);
    assert_string_equal(json_string_value(json_object_get(args, "command")), "/usr/bin/git status");
    json_decref(args);
    mcpd_policy_free(p);
}

static void test_cmd_tokenwise(void **state)
{
    struct mcpd_policy *p = cmd_policy();
    struct mcpd_policy_decision d;
    json_t *args;

    assert_string_equal(cmd_reason(p, "git difftool"),
                        "commands: 'git difftool' (argument 'command') is not an allowed command");
    assert_string_equal(cmd_reason(p, "git diff HEAD"), "");
    assert_string_equal(cmd_reason(p, "git status"), "");
    assert_string_equal(cmd_reason(p, "  git   status  "), "");
    assert_string_equal(cmd_reason(p, "git status --porcelain"),
                        "commands: 'git status --porcelain' (argument 'command') is not an "
                        "allowed command");
    assert_string_equal(cmd_reason(p, "git statusx"),
                        "commands: 'git statusx' (argument 'command') is not an allowed command");
    assert_string_equal(cmd_reason(p, "gitx status"),
                        "commands: 'gitx status' (argument 'command') is not an allowed command");
    assert_string_equal(cmd_reason(p, "git"),
                        "commands: 'git' (argument 'command') is not an allowed command");
    /* '*' is exactly one token; "**" any number; token globs stop at '/' */
    assert_string_equal(cmd_reason(p, "git diff a b"),
                        "commands: 'git diff a b' (argument 'command') is not an allowed command");
    assert_string_equal(cmd_reason(p, "ls"), "");
    assert_string_equal(cmd_reason(p, "ls a b c"), "");
    assert_string_equal(cmd_reason(p, "cat notes.txt"), "");
    assert_string_equal(cmd_reason(p, "cat ../x.txt"),
                        "commands: 'cat ../x.txt' (argument 'command') is not an allowed command");
    assert_int_equal(call_arg(p, "commands", "command", json_string("git diff HEAD"), &args, &d),
                     0);
    assert_string_equal(d.pattern, "git diff *");
    json_decref(args);
    mcpd_policy_free(p);
}

static void test_cmd_star_never_matches_flag(void **state)
{
    struct mcpd_policy *p = cmd_policy();

    assert_string_equal(cmd_reason(p, "git log main"), "");
    assert_string_equal(cmd_reason(p, "git log --output=/tmp/x"),
                        "commands: 'git log --output=/tmp/x' (argument 'command') is not an "
                        "allowed command");
    assert_string_equal(cmd_reason(p, "git log -n 5"), "");
    assert_string_equal(cmd_reason(p, "git log -n -5"),
                        "commands: 'git log -n -5' (argument 'command') is not an allowed "
                        "command");
    assert_string_equal(cmd_reason(p, "find . -name foo"), "");
    assert_string_equal(cmd_reason(p, "find . -exec rm"),
                        "commands: 'find . -exec rm' (argument 'command') is not an allowed "
                        "command");
    assert_string_equal(cmd_reason(p, "find . -name -delete"),
                        "commands: 'find . -name -delete' (argument 'command') is not an allowed "
                        "command");
    assert_string_equal(cmd_reason(p, "find . -name x -delete"),
                        "commands: 'find . -name x -delete' (argument 'command') is not an "
                        "allowed command");
    assert_string_equal(cmd_reason(p, "ls a -R"),
                        "commands: 'ls a -R' (argument 'command') is not an allowed command");
    assert_string_equal(cmd_reason(p, "cat -n.txt"),
                        "commands: 'cat -n.txt' (argument 'command') is not an allowed command");
    /* "-*" is one flag token, any flag */
    assert_string_equal(cmd_reason(p, "make --jobs=4"), "");
    assert_string_equal(cmd_reason(p, "make all"),
                        "commands: 'make all' (argument 'command') is not an allowed command");
    mcpd_policy_free(p);
}

static void test_cmd_git_config_injection(void **state)
{
    static const char *const pats[] = { "git **", "git *" };
    struct mcpd_policy *p = one_dim("commands", pats, 2);

    assert_string_equal(cmd_reason(p, "git fetch origin"), "");
    assert_string_equal(cmd_reason(p, "git -c core.sshCommand=x fetch"),
                        "commands: 'git -c core.sshCommand=x fetch' (argument 'command') is not "
                        "an allowed command");
    assert_string_equal(cmd_reason(p, "git --upload-pack=x fetch"),
                        "commands: 'git --upload-pack=x fetch' (argument 'command') is not an "
                        "allowed command");
    mcpd_policy_free(p);
}

static void test_cmd_argv_arrays(void **state)
{
    struct mcpd_policy *p = cmd_policy();

    assert_string_equal(reason_of(p, "commands", "command", json_pack("[ss]", "git", "status")),
                        "");
    assert_string_equal(
        reason_of(p, "commands", "command", json_pack("[sss]", "sh", "-c", "git status")),
        "commands: '[\"sh\",\"-c\",\"git status\"]' (argument 'command') is "
        "rejected: space inside an argument");
    assert_string_equal(reason_of(p, "commands", "command", json_pack("[sss]", "sh", "-c", "x")),
                        "commands: '[\"sh\",\"-c\",\"x\"]' (argument 'command') is not an "
                        "allowed command (wrapper program)");
    assert_string_equal(reason_of(p, "commands", "command", json_pack("[ss]", "git", "status;id")),
                        "commands: '[\"git\",\"status;id\"]' (argument 'command') is rejected: "
                        "shell metacharacter ';'");
    assert_string_equal(reason_of(p, "commands", "command", json_pack("[si]", "git", 1)),
                        "commands: argument 'command' must be a string or an array of strings, "
                        "not an array");
    assert_string_equal(reason_of(p, "commands", "command", json_array()),
                        "commands: '[]' (argument 'command') is rejected: empty command");
    assert_string_equal(reason_of(p, "commands", "command", json_pack("[ss]", "git", "")),
                        "commands: '[\"git\",\"\"]' (argument 'command') is rejected: empty "
                        "argument");
    assert_string_equal(reason_of(p, "commands", "command", json_integer(3)),
                        "commands: argument 'command' must be a string or an array of strings, "
                        "not a number");
    mcpd_policy_free(p);
}

static void test_cmd_complexity_cap(void **state)
{
    struct mcpd_policy *p = cmd_policy();
    char cmd[3 + 2 * 64 + 1];
    json_t *argv = json_array();

    /* "ls" and 63 arguments: 64 tokens */
    memcpy(cmd, "ls", 2);
    for (size_t i = 0; i < 63; i++)
        memcpy(cmd + 2 + 2 * i, " a", 2);
    cmd[2 + 2 * 63] = '\0';
    assert_string_equal(cmd_reason(p, cmd), "");
    memcpy(cmd + 2 + 2 * (size_t)63, " a", 3);
    assert_string_equal(cmd_reason(p, cmd),
                        "commands: 'ls a a a a a a a a a a a a a a a a a a a a a a a a a a a a a "
                        "a a a a a a a a a a a a a a a a...' (argument 'command') is rejected: "
                        "more than 64 tokens");
    json_array_append_new(argv, json_string("ls"));
    for (int i = 0; i < 64; i++)
        json_array_append_new(argv, json_string("a"));
    assert_string_equal(reason_of(p, "commands", "command", argv),
                        "commands: '[\"ls\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
                        "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
                        "\"a\",\"a...' (argument 'command') is rejected: more than 64 tokens");
    mcpd_policy_free(p);
}

static void test_cmd_tokens_api(void **state)
{
    char tokens[4][256];
    char longtok[300];
    const char *why = NULL;

    assert_int_equal(mcpd_policy_command_tokens(tokens, 4, "git  log   -n 3 ", 16, &why), 4);
    assert_string_equal(tokens[0], "git");
    assert_string_equal(tokens[1], "log");
    assert_string_equal(tokens[2], "-n");
    assert_string_equal(tokens[3], "3");
    assert_int_equal(mcpd_policy_command_tokens(tokens, 4, "a b c d e", 9, &why), -1);
    assert_string_equal(why, "too many tokens");
    assert_int_equal(mcpd_policy_command_tokens(tokens, 4, "   ", 3, &why), -1);
    assert_string_equal(why, "empty command");
    assert_int_equal(mcpd_policy_command_tokens(tokens, 4, "a;b", 3, &why), -1);
    assert_string_equal(why, "shell metacharacter ';'");
    memset(longtok, 'x', sizeof(longtok));
    assert_int_equal(mcpd_policy_command_tokens(tokens, 4, longtok, 256, &why), -1);
    assert_string_equal(why, "token longer than 255 bytes");
    assert_int_equal(mcpd_policy_command_tokens(tokens, 4, longtok, 255, &why), 1);
    assert_int_equal(strlen(tokens[0]), 255);
}

static void test_cmd_invalid_patterns(void **state)
{
    static const struct {
        const char *pattern, *err;
    } cases[] = {
        { "git ** log", "'**' is only allowed as the last token" },
        { "./git status", "a path-qualified program must be a canonical absolute path without "
                          "wildcards" },
        { "/usr/bin/../git", "a path-qualified program must be a canonical absolute path "
                             "without wildcards" },
        { "/usr/bin/*", "a path-qualified program must be a canonical absolute path without "
                        "wildcards" },
        { "LD_PRELOAD=x ls", "the program cannot contain '=' (an environment assignment)" },
        { "-* x", "the first token must name a program" },
        { "", "empty command pattern" },
        { "ls [a", "unterminated '['" },
        { "ls; rm", "shell metacharacter ';'" },
    };
    char err[256], want[256];

    for (size_t i = 0; i < N(cases); i++) {
        const char *const pats[] = { cases[i].pattern };
        const struct mcpd_policy_dim dims[] = { { "commands", pats, 1 } };
        const struct mcpd_policy_binding b = { .resource = "r", .dims = dims, .ndims = 1 };
        const struct mcpd_policy_bot bot = { .name = "a", .bindings = &b, .nbindings = 1 };
        struct mcpd_policy *p = NULL;
        assert_int_equal(mcpd_policy_new(&p, &bot, 1, NULL, 0, err, sizeof(err)), -1);
        snprintf(want, sizeof(want), "bots.a.bindings[0].commands[0]: %s", cases[i].err);
        assert_string_equal(err, want);
    }
}

/* ---- images --------------------------------------------------------------------------------- */

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_image_normalise(void **state)
{
    assert_string_equal(image("python:3"), "docker.io/library/python:3");
    assert_string_equal(image("python"), "docker.io/library/python:latest");
    assert_string_equal(image("python:latest"), "docker.io/library/python:latest");
    assert_string_equal(image("library/python:3"), "docker.io/library/python:3");
    assert_string_equal(image("docker.io/python:3"), "docker.io/library/python:3");
    assert_string_equal(image("acme/app"), "docker.io/acme/app:latest");
    assert_string_equal(image("index.docker.io/library/x"), "docker.io/library/x:latest");
    assert_string_equal(image("index.docker.io/x"), "docker.io/library/x:latest");
    assert_string_equal(image("registry-1.docker.io/acme/x:1"), "docker.io/acme/x:1");
    assert_string_equal(image("ghcr.io/acme/app:v1.2-rc_3"), "ghcr.io/acme/app:v1.2-rc_3");
    assert_string_equal(image("quay.io/a/b/c"), "quay.io/a/b/c:latest");
    assert_string_equal(image("my-app_x__y.z---w"), "docker.io/library/my-app_x__y.z---w:latest");
    assert_string_equal(image("python:RC1"), "docker.io/library/python:RC1");
}

static void test_image_registry_host_port(void **state)
{
    assert_string_equal(image("localhost/app"), "localhost/app:latest");
    assert_string_equal(image("localhost:5000/app"), "localhost:5000/app:latest");
    assert_string_equal(image("registry.example.com:8443/team/app:v1"),
                        "registry.example.com:8443/team/app:v1");
    assert_string_equal(image("10.0.0.1:5000/app:1"), "10.0.0.1:5000/app:1");
    /* without a '/', "localhost:5000" is an image with a tag */
    assert_string_equal(image("localhost:5000"), "docker.io/library/localhost:5000");
    assert_string_equal(image("host:0/app"), "ERR: invalid registry port");
    assert_string_equal(image("host:99999/app"), "ERR: invalid registry port");
    assert_string_equal(image("host:05000/app"), "ERR: invalid registry port");
    assert_string_equal(image("host:/app"), "ERR: invalid registry port");
    assert_string_equal(image("-bad.io/app"), "ERR: leading '-' (a flag, not an image)");
    assert_string_equal(image("bad-.io/app"), "ERR: invalid registry host");
    assert_string_equal(image("a..b/app"), "ERR: invalid registry host");
    assert_string_equal(image("[::1]:5000/app"), "ERR: invalid character");
}

static void test_image_rejections(void **state)
{
    assert_string_equal(image("Python:3"), "ERR: uppercase repository name");
    assert_string_equal(image("acme/MyApp"), "ERR: uppercase repository name");
    assert_string_equal(image("GHCR.io/acme/app"), "ERR: uppercase registry host");
    assert_string_equal(image("--privileged"), "ERR: leading '-' (a flag, not an image)");
    assert_string_equal(image("-v"), "ERR: leading '-' (a flag, not an image)");
    assert_string_equal(image("acme/../evil"), "ERR: '.' or '..' path component");
    assert_string_equal(image("acme/./evil"), "ERR: '.' or '..' path component");
    assert_string_equal(image("python:3 --privileged"), "ERR: whitespace");
    assert_string_equal(image(" python"), "ERR: whitespace");
    assert_string_equal(image("python\t"), "ERR: whitespace");
    assert_string_equal(image("python\n"), "ERR: whitespace");
    assert_string_equal(image("d\320\276cker.io/x"), "ERR: non-ASCII character"); /* Cyrillic o */
    assert_string_equal(image(""), "ERR: empty image reference");
    assert_string_equal(image("acme//app"), "ERR: empty path component");
    assert_string_equal(image("acme/app/"), "ERR: empty path component");
    assert_string_equal(image("acme/-app"), "ERR: invalid repository path component");
    assert_string_equal(image("acme/app_"), "ERR: invalid repository path component");
    assert_string_equal(image("acme/a___b"), "ERR: invalid repository path component");
    assert_string_equal(image("python:"), "ERR: empty tag");
    assert_string_equal(image("python:.x"), "ERR: invalid tag");
    assert_string_equal(image("python:3;id"), "ERR: invalid character");
    assert_string_equal(image("python:*"), "ERR: invalid character");
}

static void test_image_digests(void **state)
{
    static const char *const pats[] = { "python:*", "redis@*", ("nginx@sha256:" HEX64) };
    struct mcpd_policy *p = one_dim("images", pats, N(pats));

    assert_string_equal(image("python@sha256:" HEX64), "docker.io/library/python@sha256:" HEX64);
    assert_string_equal(image("python:3@sha256:" HEX64),
                        "docker.io/library/python:3@sha256:" HEX64);
    assert_string_equal(image("python@sha256:abc"), "ERR: invalid digest length");
    assert_string_equal(image("python@sha256:"
                              "0123456789ABCDEF0123456789abcdef0123456789abcdef"
                              "0123456789abcdef"),
                        "ERR: invalid digest (lowercase hex expected)");
    assert_string_equal(image("python@md5:abc"),
                        "ERR: unsupported digest (sha256:<64 hex> or sha512:<128 hex>)");
    assert_string_equal(image("python@sha256:" HEX64 "@sha256:" HEX64), "ERR: more than one '@'");
    /* a tag pattern never admits a digest: the digest wins at runtime */
    assert_string_equal(image_reason(p, "python:3"), "");
    assert_string_equal(image_reason(p, "python@sha256:" HEX64),
                        "images: 'docker.io/library/python@sha256:0123456789abcdef0123456789abcd"
                        "ef0123456789abcdef0123456789ab...' (argument 'image') is not an allowed "
                        "image");
    assert_string_equal(image_reason(p, "redis@sha256:" HEX64), "");
    assert_string_equal(image_reason(p, "redis:7"),
                        "images: 'docker.io/library/redis:7' (argument 'image') is not an "
                        "allowed image");
    assert_string_equal(image_reason(p, "nginx@sha256:" HEX64), "");
    assert_string_equal(image_reason(p, "nginx@sha256:"
                                        "1123456789abcdef0123456789abcdef"
                                        "0123456789abcdef0123456789abcdef"),
                        "images: 'docker.io/library/nginx@sha256:1123456789abcdef0123456789abcde"
                        "f0123456789abcdef0123456789abcdef' (argument 'image') is not an allowed "
                        "image");
    mcpd_policy_free(p);
}

static void test_image_digest_needs_digest_pattern(void **state)
{
    static const char *const pats[] = { "python:*" };
    struct mcpd_policy *p = one_dim("images", pats, 1);
    struct mcpd_policy_decision d;
    json_t *args;

    assert_int_equal(
        call_arg(p, "images", "image", json_string("python:3@sha256:" HEX64), &args, &d), -1);
    assert_string_equal(d.value, "docker.io/library/python:3@sha256:" HEX64);
    assert_non_null(
        strstr(d.reason, "is not an allowed image (a digest needs a pattern with '@')"));
    json_decref(args);
    mcpd_policy_free(p);
}

static void test_image_pattern_normalisation(void **state)
{
    static const char *const pats[] = { "python:*", "ghcr.io/acme/*:*", "*/tools:1" };
    struct mcpd_policy *p = one_dim("images", pats, N(pats));
    struct mcpd_policy_decision d;
    json_t *args;

    assert_string_equal(image_reason(p, "docker.io/library/python:3.12"), "");
    assert_string_equal(image_reason(p, "index.docker.io/library/python:3"), "");
    assert_string_equal(image_reason(p, "python"), "");
    assert_string_equal(image_reason(p, "evil/python:3"),
                        "images: 'docker.io/evil/python:3' (argument 'image') is not an allowed "
                        "image");
    assert_string_equal(image_reason(p, "evil.io/library/python:3"),
                        "images: 'evil.io/library/python:3' (argument 'image') is not an allowed "
                        "image");
    assert_string_equal(image_reason(p, "ghcr.io/acme/app:v1"), "");
    assert_string_equal(image_reason(p, "ghcr.io/acme/team/app:v1"),
                        "images: 'ghcr.io/acme/team/app:v1' (argument 'image') is not an allowed "
                        "image");
    assert_string_equal(image_reason(p, "someone/tools:1"), "");
    assert_string_equal(image_reason(p, "--privileged"),
                        "images: '--privileged' (argument 'image') is rejected: leading '-' (a "
                        "flag, not an image)");
    /* the argument is forwarded normalised, so no other short-name rule applies upstream */
    assert_int_equal(call_arg(p, "images", "image", json_string("python:3.12"), &args, &d), 0);
    assert_string_equal(json_string_value(json_object_get(args, "image")),
                        "docker.io/library/python:3.12");
    assert_string_equal(d.pattern, "python:*");
    json_decref(args);
    mcpd_policy_free(p);
}

static void test_image_invalid_patterns(void **state)
{
    const char *const pats[] = { "python:3", "Python:*" };
    const struct mcpd_policy_dim dims[] = { { "images", pats, 2 } };
    const struct mcpd_policy_binding b = { .resource = "r", .dims = dims, .ndims = 1 };
    const struct mcpd_policy_bot bot = { .name = "a", .bindings = &b, .nbindings = 1 };
    struct mcpd_policy *p = NULL;
    char err[256];

    assert_int_equal(mcpd_policy_new(&p, &bot, 1, NULL, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "bots.a.bindings[0].images[1]: uppercase repository name");
}

static void test_image_normalise_idempotent(void **state)
{
    static const char *const refs[] = {
        "python",
        "python:3",
        ("acme/app@sha256:" HEX64),
        "localhost:5000/a/b:c",
        "docker.io",
        "registry-1.docker.io/x",
        ("a.b/c:d@sha256:" HEX64),
    };
    char once[600], twice[600];
    const char *why;

    for (size_t i = 0; i < N(refs); i++) {
        assert_int_equal(
            mcpd_policy_image_normalise(once, sizeof(once), refs[i], strlen(refs[i]), &why), 0);
        assert_int_equal(
            mcpd_policy_image_normalise(twice, sizeof(twice), once, strlen(once), &why), 0);
        assert_string_equal(once, twice);
    }
    assert_int_equal(mcpd_policy_image_normalise(once, 10, "python:3", 8, &why), -1);
    assert_string_equal(why, "image reference too long");
}

/* ---- bindings ------------------------------------------------------------------------------- */

static const char *const ALICE_PATHS[] = { "/srv/alice/**" };
static const char *const BOB_PATHS[] = { "/srv/bob/**" };
static const char *const READ_TOOLS[] = { "read_*", "list_dir" };
static const char *const PROMPTS[] = { "summarise" };
static const char *const URIS[] = { "file:///srv/docs/*" };
static const char *const PATH_ARGS[] = { "path" };
static const struct mcpd_policy_dim_args FILES_DIMS[] = { { "paths", PATH_ARGS, 1 } };
static const struct mcpd_policy_resource FILES = { "files", FILES_DIMS, 1 };

/* Two bots over the same resource; carol gets hers through the role "reader". */
static struct mcpd_policy *team_policy(void)
{
    static const struct mcpd_policy_dim alice_dims[] = { { "paths", ALICE_PATHS, 1 } };
    static const struct mcpd_policy_dim bob_dims[] = { { "paths", BOB_PATHS, 1 } };
    static const struct mcpd_policy_binding alice_b[] = {
        { .resource = "files", .dims = alice_dims, .ndims = 1 },
    };
    static const struct mcpd_policy_binding bob_b[] = {
        { .resource = "files", .dims = bob_dims, .ndims = 1, .id = "bob-files" },
    };
    static const struct mcpd_policy_binding reader_b[] = {
        { .resource = "files",
          .tools = READ_TOOLS,
          .ntools = 2,
          .prompts = PROMPTS,
          .nprompts = 1,
          .uris = URIS,
          .nuris = 1 },
    };
    static const char *const carol_roles[] = { "reader" };
    static const struct mcpd_policy_bot bots[] = {
        { .name = "alice", .bindings = alice_b, .nbindings = 1 },
        { .name = "bob", .bindings = bob_b, .nbindings = 1 },
        { .name = "carol", .roles = carol_roles, .nroles = 1 },
    };
    static const struct mcpd_policy_role roles[] = {
        { .name = "reader", .bindings = reader_b, .nbindings = 1 },
    };
    struct mcpd_policy *p = NULL;
    char err[256];

    if (mcpd_policy_new(&p, bots, N(bots), roles, N(roles), err, sizeof(err)) != 0)
        fail_msg("policy: %s", err);
    return p;
}

/* Checks tool t of `res` for bot with {"path": path}; returns the decision in *d. */
static int call_path(const struct mcpd_policy *p, const char *bot,
                     const struct mcpd_policy_resource *res, const char *tool, const char *path,
                     struct mcpd_policy_decision *d)
{
    json_t *args = json_pack("{s:s}", "path", path);
    int rc = mcpd_policy_check_call(p, bot, res, tool, args, d);

    json_decref(args);
    return rc;
}

static void test_bind_two_bots_same_resource(void **state)
{
    struct mcpd_policy *p = team_policy();
    struct mcpd_policy_decision d;

    assert_int_equal(call_path(p, "alice", &FILES, "read_file", "/srv/alice/x", &d), 0);
    assert_string_equal(d.binding, "bots.alice.bindings[0]");
    assert_int_equal(call_path(p, "alice", &FILES, "read_file", "/srv/bob/x", &d), -1);
    assert_string_equal(d.reason,
                        "paths: '/srv/bob/x' (argument 'path') is outside the allowed paths");
    assert_int_equal(call_path(p, "bob", &FILES, "read_file", "/srv/bob/x", &d), 0);
    assert_string_equal(d.binding, "bob-files");
    assert_int_equal(call_path(p, "bob", &FILES, "read_file", "/srv/alice/x", &d), -1);
    assert_string_equal(d.binding, "bob-files");
    assert_true(mcpd_policy_has_bot(p, "alice"));
    assert_true(mcpd_policy_has_bot(p, "carol"));
    assert_false(mcpd_policy_has_bot(p, "mallory"));
    assert_false(mcpd_policy_has_bot(p, "Alice"));
    assert_false(mcpd_policy_has_bot(p, NULL));
    mcpd_policy_free(p);
}

static void test_bind_roles(void **state)
{
    struct mcpd_policy *p = team_policy();
    struct mcpd_policy_decision d;

    assert_true(mcpd_policy_tool_visible(p, "carol", "files", "read_file"));
    assert_true(mcpd_policy_tool_visible(p, "carol", "files", "list_dir"));
    assert_false(mcpd_policy_tool_visible(p, "carol", "files", "write_file"));
    /* the role's binding constrains no dimension: any path */
    assert_int_equal(call_path(p, "carol", &FILES, "read_file", "/etc/passwd", &d), 0);
    assert_string_equal(d.binding, "roles.reader.bindings[0]");
    assert_string_equal(d.pattern, "read_*");
    assert_string_equal(d.reason, "allowed by roles.reader.bindings[0]");
    assert_int_equal(call_path(p, "carol", &FILES, "write_file", "/tmp/x", &d), -1);
    assert_string_equal(d.binding, "");
    assert_string_equal(d.reason, "tool 'write_file' of resource 'files' is not bound for bot "
                                  "'carol'");
    mcpd_policy_free(p);
}

static void test_bind_unknown_role_rejected(void **state)
{
    const char *const roles_of_bob[] = { "reader", "admin" };
    const struct mcpd_policy_binding rb[] = { { .resource = "files" } };
    const struct mcpd_policy_role roles[] = {
        { .name = "reader", .bindings = rb, .nbindings = 1 }
    };
    const struct mcpd_policy_bot bots[] = { { .name = "bob", .roles = roles_of_bob, .nroles = 2 } };
    const struct mcpd_policy_bot twice[] = { { .name = "bob" }, { .name = "bob" } };
    struct mcpd_policy *p = NULL;
    char err[256];

    assert_int_equal(mcpd_policy_new(&p, bots, 1, roles, 1, err, sizeof(err)), -1);
    assert_string_equal(err, "bots.bob: unknown role 'admin'");
    assert_null(p);
    assert_int_equal(mcpd_policy_new(&p, twice, 2, NULL, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "bots.bob: defined twice");
    assert_int_equal(mcpd_policy_new(&p, NULL, 0, NULL, 0, err, sizeof(err)), 0);
    assert_false(mcpd_policy_has_bot(p, "bob"));
    mcpd_policy_free(p);
    mcpd_policy_free(NULL);
}

static void test_bind_visibility(void **state)
{
    struct mcpd_policy *p = team_policy();

    /* a binding with no lists at all binds every tool, but no prompt or URI */
    assert_true(mcpd_policy_tool_visible(p, "alice", "files", "anything"));
    assert_false(mcpd_policy_prompt_visible(p, "alice", "files", "summarise"));
    assert_false(mcpd_policy_uri_visible(p, "alice", "files", "file:///srv/docs/a"));
    /* lists: exactly what they name */
    assert_true(mcpd_policy_prompt_visible(p, "carol", "files", "summarise"));
    assert_false(mcpd_policy_prompt_visible(p, "carol", "files", "summarise2"));
    assert_true(mcpd_policy_uri_visible(p, "carol", "files", "file:///srv/docs/a.md"));
    assert_false(mcpd_policy_uri_visible(p, "carol", "files", "file:///srv/other/a.md"));
    /* URIs with dot segments or encodings are refused before matching */
    assert_false(mcpd_policy_uri_visible(p, "carol", "files", "file:///srv/docs/../../etc"));
    assert_false(mcpd_policy_uri_visible(p, "carol", "files", "file:///srv/docs/%2e%2e"));
    assert_false(mcpd_policy_uri_visible(p, "carol", "files", "file:///srv/docs/%252e"));
    assert_false(mcpd_policy_uri_visible(p, "carol", "files", "file:///srv/docs/a\\b"));
    assert_false(mcpd_policy_uri_visible(p, "carol", "files", "file:///srv/docs/./a"));
    assert_true(mcpd_policy_uri_visible(p, "carol", "files", "file:///srv/docs/.hidden"));
    /* unknown bots see nothing */
    assert_false(mcpd_policy_tool_visible(p, "mallory", "files", "read_file"));
    assert_false(mcpd_policy_tool_visible(p, NULL, "files", "read_file"));
    assert_false(mcpd_policy_tool_visible(p, "alice", NULL, "read_file"));
    mcpd_policy_free(p);
}

/* Globs compiled once (as the policy keeps them) match like the one-shot matcher. */
static void test_glob_compiled_once(void **state)
{
    static const struct {
        const char *pat;
        int mode;
    } pats[] = { { "echo", 0 },         { "ec*", 0 },          { "debug_[a-m]*", 0 },
                 { "globex/app-?", 0 }, { "/srv/data/**", 1 }, { "/srv/shared/*.txt", 1 },
                 { "*a*a*a*b", 0 },     { "/**/x", 1 },        { "caf\u00e9*", 0 } };
    static const char *subjects[] = { "echo",
                                      "ech",
                                      "echoes",
                                      "debug_b1",
                                      "debug_z",
                                      "globex/app-1",
                                      "globex/app-12",
                                      "/srv/data",
                                      "/srv/data/x/y",
                                      "/srv/database",
                                      "/srv/shared/a.txt",
                                      "/srv/shared/d/a.txt",
                                      "aaab",
                                      "aaaa",
                                      "x",
                                      "d/x",
                                      "",
                                      "caf\u00e9 au lait" };
    struct mcpd__glob *g;
    const char *why;

    for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
        assert_int_equal(mcpd__glob_new(&g, pats[i].pat, pats[i].mode, &why), 0);
        assert_string_equal(mcpd__glob_text(g), pats[i].pat);
        for (size_t j = 0; j < sizeof(subjects) / sizeof(subjects[0]); j++)
            assert_int_equal(
                mcpd__glob_match(g, subjects[j], strlen(subjects[j])),
                mcpd_policy_glob(pats[i].pat, subjects[j], strlen(subjects[j]), pats[i].mode));
        mcpd__glob_free(g);
    }
    assert_int_equal(mcpd__glob_new(&g, "/srv/data/**", 1, &why), 0);
    assert_true(mcpd__glob_match(g, "/srv/data/x", 11));
    assert_true(mcpd__glob_match(g, "/srv/data", 9));
    assert_false(mcpd__glob_match(g, "/srv/database", 13));
    assert_true(mcpd__glob_match(g, "/srv/data/x", 11));
    mcpd__glob_free(g);
    assert_int_equal(mcpd__glob_new(&g, "a[b", 0, &why), -1);
    assert_string_equal(why, "unterminated '['");
    assert_false(mcpd__glob_match(NULL, "a", 1));
}

/*
 * The fast shapes (literal, "pre*", "dir/" "**", "**") answer exactly as the
 * general program does (MCPD__GLOB_NOFAST), in both modes, on subjects
 * around their edges: the bare directory, a trailing '/', deeper levels,
 * look-alike prefixes, NUL, UTF-8 and invalid bytes.
 */
static void test_glob_fast_shapes(void **state)
{
    static const char *const pats[] = {
        "echo",         "ec*",           "ec**",  "acme/*", "acme/**",
        "/srv/data/**", "/srv/data/***", "/**",   "**",     "*",
        "/srv/data/*",  "caf\u00e9/**",  "a/b**", "",       "/"
    };
    static const struct {
        const char *s;
        size_t len;
    } subj[] = { { "echo", 4 },
                 { "ec", 2 },
                 { "echo/x", 6 },
                 { "acme", 4 },
                 { "acme/", 5 },
                 { "acme/app", 8 },
                 { "acme/app/x", 10 },
                 { "acmex", 5 },
                 { "/srv/data", 9 },
                 { "/srv/data/", 10 },
                 { "/srv/data/x/y", 13 },
                 { "/srv/database", 13 },
                 { "/srv/dat", 8 },
                 { "", 0 },
                 { "/", 1 },
                 { "//", 2 },
                 { "ec\0/x", 5 },
                 { "acme/a\0b", 8 },
                 { "caf\u00e9", 5 },
                 { "caf\u00e9/x", 7 },
                 { "caf\xc3", 4 },
                 { "acme/\xff", 6 },
                 { "a/b", 3 },
                 { "a/bc/d", 6 },
                 { "x", 1 } };
    struct mcpd__glob *fast, *prog;
    const char *why;

    (void)state;
    for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
        for (int mode = 0; mode <= 1; mode++) {
            assert_int_equal(mcpd__glob_new(&fast, pats[i], mode, &why), 0);
            assert_int_equal(mcpd__glob_new(&prog, pats[i], mode | MCPD__GLOB_NOFAST, &why), 0);
            for (size_t j = 0; j < sizeof(subj) / sizeof(subj[0]); j++) {
                bool f = mcpd__glob_match(fast, subj[j].s, subj[j].len);
                bool g = mcpd__glob_match(prog, subj[j].s, subj[j].len);
                if (f != g)
                    fail_msg("'%s' (mode %d) on subject %zu: fast %d, program %d", pats[i], mode, j,
                             f, g);
            }
            mcpd__glob_free(fast);
            mcpd__glob_free(prog);
        }
    }
    /* the answers themselves, for the shapes the fast paths take */
    assert_true(glob1("/srv/data/**", "/srv/data"));
    assert_true(glob1("/srv/data/**", "/srv/data/"));
    assert_true(glob1("/srv/data/**", "/srv/data/x/y"));
    assert_false(glob1("/srv/data/**", "/srv/database"));
    assert_false(glob1("/srv/data/**", "/srv/dat"));
    assert_true(glob1("acme/*", "acme/app"));
    assert_true(glob1("acme/*", "acme/"));
    assert_false(glob1("acme/*", "acme/app/x"));
    assert_false(glob1("acme/*", "acme"));
    assert_true(glob1("/**", ""));
    assert_false(glob1("/**", "x"));
    assert_true(glob1("**", "a/b"));
    assert_false(glob1("a/b**", "a/bc/d")); /* not a whole segment: one star */
    assert_true(glob0("ec**", "echo/x"));
    /* invalid patterns match nothing, whatever their shape */
    assert_int_equal(mcpd__glob_new(&fast, "caf\xc3*", 1, &why), -1);
    assert_string_equal(why, "invalid UTF-8");
    assert_false(mcpd_policy_glob("caf\xc3", "caf\xc3", 4, 0));
}

static void test_bind_unbound_resource_invisible(void **state)
{
    struct mcpd_policy *p = team_policy();
    const struct mcpd_policy_resource secret = { "secret", NULL, 0 };
    struct mcpd_policy_decision d;

    assert_false(mcpd_policy_tool_visible(p, "alice", "secret", "read_file"));
    assert_false(mcpd_policy_tool_visible(p, "alice", "files2", "read_file"));
    assert_false(mcpd_policy_prompt_visible(p, "carol", "secret", "summarise"));
    assert_int_equal(call_path(p, "alice", &secret, "read_file", "/srv/alice/x", &d), -1);
    assert_false(d.allow);
    assert_string_equal(d.binding, "");
    assert_string_equal(d.dimension, "");
    assert_string_equal(d.reason, "tool 'read_file' of resource 'secret' is not bound for bot "
                                  "'alice'");
    assert_false(d.bound); /* not visible: what the router answers as an unknown tool */
    assert_int_equal(call_path(p, "alice", &FILES, "read_file", "/srv/alice/x", &d), 0);
    assert_true(d.bound);
    assert_int_equal(call_path(p, "alice", &FILES, "read_file", "/etc/passwd", &d), -1);
    assert_true(d.bound); /* bound, visible, denied by a dimension */
    assert_int_equal(call_path(p, "mallory", &FILES, "read_file", "/srv/alice/x", &d), -1);
    assert_false(d.bound);
    assert_string_equal(d.reason, "unknown bot 'mallory'");
    assert_int_equal(mcpd_policy_check_call(p, "alice", NULL, "read_file", NULL, &d), -1);
    assert_string_equal(d.reason, "no resource or tool given");
    mcpd_policy_free(p);
}

static void test_bind_first_allowing_wins(void **state)
{
    const char *const data[] = { "/srv/data/**" };
    const char *const tmp[] = { "/tmp/**" };
    const char *const writers[] = { "write_*" };
    const struct mcpd_policy_dim d0[] = { { "paths", data, 1 } };
    const struct mcpd_policy_dim d1[] = { { "paths", tmp, 1 } };
    const struct mcpd_policy_binding b[] = {
        { .resource = "files", .dims = d0, .ndims = 1 },
        { .resource = "fil*", .tools = writers, .ntools = 1, .dims = d1, .ndims = 1 },
        { .resource = "files" },
    };
    struct mcpd_policy_bot bot = { .name = "dave", .bindings = b, .nbindings = 3 };
    struct mcpd_policy *p = NULL;
    struct mcpd_policy_decision d;
    char err[256];

    assert_int_equal(mcpd_policy_new(&p, &bot, 1, NULL, 0, err, sizeof(err)), 0);
    assert_int_equal(call_path(p, "dave", &FILES, "write_file", "/srv/data/x", &d), 0);
    assert_string_equal(d.binding, "bots.dave.bindings[0]");
    assert_int_equal(call_path(p, "dave", &FILES, "write_file", "/tmp/x", &d), 0);
    assert_string_equal(d.binding, "bots.dave.bindings[1]");
    assert_string_equal(d.pattern, "/tmp/**");
    /* the third binding constrains nothing, so it allows what the first two deny */
    assert_int_equal(call_path(p, "dave", &FILES, "write_file", "/etc/passwd", &d), 0);
    assert_string_equal(d.binding, "bots.dave.bindings[2]");
    assert_string_equal(d.pattern, "*");
    /* the allow replaces the first denial, none of whose words remain */
    assert_true(d.allow);
    assert_string_equal(d.reason, "allowed by bots.dave.bindings[2]");
    assert_string_equal(d.dimension, "");
    assert_string_equal(d.value, "");
    mcpd_policy_free(p);

    /* without it, the first binding that denied is reported */
    bot = (struct mcpd_policy_bot){ .name = "dave", .bindings = b, .nbindings = 2 };
    assert_int_equal(mcpd_policy_new(&p, &bot, 1, NULL, 0, err, sizeof(err)), 0);
    assert_int_equal(call_path(p, "dave", &FILES, "write_file", "/etc/passwd", &d), -1);
    assert_string_equal(d.binding, "bots.dave.bindings[0]");
    assert_string_equal(d.reason,
                        "paths: '/etc/passwd' (argument 'path') is outside the allowed paths");
    mcpd_policy_free(p);
}

/* Rewritten arguments: up to 32 per binding are applied, in order; more is a denial. */
static void test_bind_many_rewrites(void **state)
{
    static const char *const all[] = { "/srv/**" };
    const struct mcpd_policy_dim dims[] = { { "paths", all, 1 } };
    const struct mcpd_policy_binding b[] = { { .resource = "many", .dims = dims, .ndims = 1 } };
    const struct mcpd_policy_bot bot = { .name = "erin", .bindings = b, .nbindings = 1 };
    char names[33][8];
    const char *argv[33];
    struct mcpd_policy_dim_args da = { "paths", argv, 32 };
    struct mcpd_policy_resource res = { "many", &da, 1 };
    struct mcpd_policy *p = NULL;
    struct mcpd_policy_decision d;
    char err[256];
    json_t *args = json_object();

    (void)state;
    for (int i = 0; i < 33; i++) {
        snprintf(names[i], sizeof(names[i]), "p%d", i);
        argv[i] = names[i];
        json_object_set_new(args, names[i], json_string("/srv/./data//x"));
    }
    if (mcpd_policy_new(&p, &bot, 1, NULL, 0, err, sizeof(err)) != 0)
        fail_msg("policy: %s", err);
    if (mcpd_policy_check_call(p, "erin", &res, "t", args, &d) != 0)
        fail_msg("denied: %s", d.reason);
    for (int i = 0; i < 32; i++)
        assert_string_equal(json_string_value(json_object_get(args, names[i])), "/srv/data/x");
    assert_string_equal(json_string_value(json_object_get(args, "p32")), "/srv/./data//x");
    for (int i = 0; i < 33; i++)
        json_object_set_new(args, names[i], json_string("/srv/./data//x"));
    da.nargs = 33;
    assert_int_equal(mcpd_policy_check_call(p, "erin", &res, "t", args, &d), -1);
    assert_string_equal(d.reason, "too many arguments to rewrite (at most 32 per binding)");
    /* nothing applied */
    assert_string_equal(json_string_value(json_object_get(args, "p0")), "/srv/./data//x");
    json_decref(args);
    mcpd_policy_free(p);
}

static void test_bind_custom_dimension(void **state)
{
    const char *const regions[] = { "eu-*", "us-east-1" };
    struct mcpd_policy *p = one_dim("region", regions, 2);

    assert_string_equal(reason_of(p, "region", "region", json_string("eu-west-1")), "");
    assert_string_equal(reason_of(p, "region", "region", json_string("eu-a/b")), "");
    assert_string_equal(reason_of(p, "region", "region", json_string("us-east-1")), "");
    assert_string_equal(reason_of(p, "region", "region", json_string("us-west-2")),
                        "region: 'us-west-2' (argument 'region') is not among the allowed values");
    assert_string_equal(reason_of(p, "region", "region", json_stringn("eu-x\0us", 7)),
                        "region: 'eu-x\\x00us' (argument 'region') is rejected: NUL character");
    assert_string_equal(reason_of(p, "region", "region", json_integer(1)),
                        "region: argument 'region' must be a string, not a number");
    mcpd_policy_free(p);
}

static void test_bind_absent_argument_allowed(void **state)
{
    const char *const pats[] = { "/srv/data/**" };
    struct mcpd_policy *p = one_dim("paths", pats, 1);
    struct mcpd_policy_decision d;
    json_t *args = json_pack("{s:s}", "other", "/etc/passwd");

    /* the resource declares "path" for paths; the call does not pass it */
    assert_int_equal(mcpd_policy_check_call(p, "alice", &FILES, "t", args, &d), 0);
    assert_string_equal(d.pattern, "*");
    assert_int_equal(mcpd_policy_check_call(p, "alice", &FILES, "t", NULL, &d), 0);
    json_decref(args);
    mcpd_policy_free(p);
}

static void test_bind_wrong_type_denied(void **state)
{
    const char *const pats[] = { "/srv/data/**" };
    struct mcpd_policy *p = one_dim("paths", pats, 1);
    struct mcpd_policy_decision d;
    json_t *args = json_pack("{s:[s,s]}", "path", "/srv/data/a", "/etc/passwd");
    json_t *notobj = json_pack("[s]", "/srv/data/a");

    assert_int_equal(mcpd_policy_check_call(p, "alice", &FILES, "t", args, &d), -1);
    assert_string_equal(d.reason, "paths: argument 'path' must be a string, not an array");
    assert_int_equal(mcpd_policy_check_call(p, "alice", &FILES, "t", notobj, &d), -1);
    assert_string_equal(d.reason, "arguments must be a JSON object");
    json_decref(args);
    json_decref(notobj);
    mcpd_policy_free(p);
}

static void test_bind_unconfigured_dimension_unrestricted(void **state)
{
    const char *const regions[] = { "eu-*" };
    struct mcpd_policy *p = one_dim("region", regions, 1);
    const char *const path_args[] = { "path" };
    const char *const image_args[] = { "image" };
    const struct mcpd_policy_dim_args da[] = { { "paths", path_args, 1 },
                                               { "images", image_args, 1 } };
    const struct mcpd_policy_resource res = { "files", da, 2 };
    struct mcpd_policy_decision d;
    json_t *args = json_pack("{s:s, s:s}", "path", "relative/../x", "image", "Bad Image");

    /* the binding constrains only "region": paths and images are not checked (nor rewritten) */
    assert_int_equal(mcpd_policy_check_call(p, "alice", &res, "t", args, &d), 0);
    assert_string_equal(json_string_value(json_object_get(args, "path")), "relative/../x");
    json_decref(args);
    mcpd_policy_free(p);
}

static void test_bind_decision_fields(void **state)
{
    const char *const pats[] = { "/srv/data/**", "/srv/logs/*.log" };
    struct mcpd_policy *p = one_dim("paths", pats, 2);
    struct mcpd_policy_decision d;
    json_t *args;

    assert_int_equal(call_arg(p, "paths", "path", json_string("/srv/logs/a.log"), &args, &d), 0);
    assert_true(d.allow);
    assert_string_equal(d.binding, "b0");
    assert_string_equal(d.dimension, "");
    assert_string_equal(d.argument, "");
    assert_string_equal(d.value, "");
    assert_string_equal(d.pattern, "/srv/logs/*.log");
    assert_string_equal(d.reason, "allowed by b0");
    json_decref(args);

    assert_int_equal(call_arg(p, "paths", "path", json_string("/etc/passwd"), &args, &d), -1);
    assert_false(d.allow);
    assert_string_equal(d.binding, "b0");
    assert_string_equal(d.dimension, "paths");
    assert_string_equal(d.argument, "path");
    assert_string_equal(d.value, "/etc/passwd");
    assert_string_equal(d.pattern, "");
    assert_string_equal(d.reason,
                        "paths: '/etc/passwd' (argument 'path') is outside the allowed paths");
    /* a denied call leaves the arguments alone */
    assert_string_equal(json_string_value(json_object_get(args, "path")), "/etc/passwd");
    json_decref(args);
    mcpd_policy_free(p);
}

static void test_bind_reason_escapes_values(void **state)
{
    const char *const pats[] = { "/srv/data/**" };
    struct mcpd_policy *p = one_dim("paths", pats, 1);
    struct mcpd_policy_decision d;
    char longpath[600];
    json_t *args;

    assert_int_equal(call_arg(p, "paths", "path", json_string("/x\x1b[2J'\n"), &args, &d), -1);
    assert_string_equal(d.value, "/x\\x1b[2J\\'\\x0a");
    assert_string_equal(d.reason, "paths: '/x\\x1b[2J\\'\\x0a' (argument 'path') is rejected: NUL "
                                  "or control character");
    json_decref(args);
    /* long values are cut, never split inside an escape */
    longpath[0] = '/';
    memset(longpath + 1, 'a', sizeof(longpath) - 2);
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(call_arg(p, "paths", "path", json_string(longpath), &args, &d), -1);
    assert_int_equal(strlen(d.value), 255);
    assert_string_equal(d.value + 252, "...");
    assert_true(strlen(d.reason) < sizeof(d.reason));
    json_decref(args);
    mcpd_policy_free(p);
}

static void test_bind_build_errors(void **state)
{
    const char *const pats[] = { "relative/**" };
    const struct mcpd_policy_dim dims[] = { { "paths", pats, 1 } };
    const struct mcpd_policy_dim dup[] = { { "paths", pats, 0 }, { "paths", pats, 0 } };
    const struct mcpd_policy_dim badname[] = { { "a b", pats, 0 } };
    struct mcpd_policy_binding b = { .resource = "r", .dims = dims, .ndims = 1, .id = "x.y" };
    const struct mcpd_policy_bot bot = { .name = "alice", .bindings = &b, .nbindings = 1 };
    struct mcpd_policy *p = NULL;
    char err[256];

    assert_int_equal(mcpd_policy_new(&p, &bot, 1, NULL, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "x.y.paths[0]: path pattern must be absolute");
    b.dims = dup;
    b.ndims = 2;
    assert_int_equal(mcpd_policy_new(&p, &bot, 1, NULL, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "x.y: dimension 'paths' given twice");
    b.dims = badname;
    b.ndims = 1;
    assert_int_equal(mcpd_policy_new(&p, &bot, 1, NULL, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "x.y: dimension names are 1-31 characters of [A-Za-z0-9_.-]");
    b.ndims = 0;
    b.resource = NULL;
    assert_int_equal(mcpd_policy_new(&p, &bot, 1, NULL, 0, err, sizeof(err)), -1);
    assert_string_equal(err, "x.y.resource: missing");
    /* an empty pattern list allows no value at all */
    b.resource = "files";
    b.dims = dup;
    b.ndims = 1;
    b.id = NULL;
    assert_int_equal(mcpd_policy_new(&p, &bot, 1, NULL, 0, err, sizeof(err)), 0);
    assert_string_equal(path_reason(p, "/srv/x"),
                        "paths: '/srv/x' (argument 'path') is outside the allowed paths");
    mcpd_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob_anchoring),
        cmocka_unit_test(test_glob_star),
        cmocka_unit_test(test_glob_question),
        cmocka_unit_test(test_glob_globstar),
        cmocka_unit_test(test_glob_classes),
        cmocka_unit_test(test_glob_escapes),
        cmocka_unit_test(test_glob_invalid),
        cmocka_unit_test(test_glob_invalid_rejected_at_build),
        cmocka_unit_test(test_glob_linear_time),
        cmocka_unit_test(test_path_traversal),
        cmocka_unit_test(test_path_double_slash),
        cmocka_unit_test(test_path_trailing_slash),
        cmocka_unit_test(test_path_relative_rejected),
        cmocka_unit_test(test_path_nul_and_controls_rejected),
        cmocka_unit_test(test_path_percent_encoding_rejected),
        cmocka_unit_test(test_path_backslash_rejected),
        cmocka_unit_test(test_path_unicode_lookalikes_rejected),
        cmocka_unit_test(test_path_invalid_utf8_rejected),
        cmocka_unit_test(test_path_prefix_confusion),
        cmocka_unit_test(test_path_exact_directory),
        cmocka_unit_test(test_path_argument_replaced),
        cmocka_unit_test(test_path_wrong_type_denied),
        cmocka_unit_test(test_path_case_variant_argument_denied),
        cmocka_unit_test(test_path_canon_idempotent),
        cmocka_unit_test(test_cmd_metacharacters),
        cmocka_unit_test(test_cmd_newline_nul_and_non_ascii),
        cmocka_unit_test(test_cmd_env_assignment),
        cmocka_unit_test(test_cmd_wrappers),
        cmocka_unit_test(test_cmd_path_qualified),
        cmocka_unit_test(test_cmd_tokenwise),
        cmocka_unit_test(test_cmd_star_never_matches_flag),
        cmocka_unit_test(test_cmd_git_config_injection),
        cmocka_unit_test(test_cmd_argv_arrays),
        cmocka_unit_test(test_cmd_complexity_cap),
        cmocka_unit_test(test_cmd_tokens_api),
        cmocka_unit_test(test_cmd_invalid_patterns),
        cmocka_unit_test(test_image_normalise),
        cmocka_unit_test(test_image_registry_host_port),
        cmocka_unit_test(test_image_rejections),
        cmocka_unit_test(test_image_digests),
        cmocka_unit_test(test_image_digest_needs_digest_pattern),
        cmocka_unit_test(test_image_pattern_normalisation),
        cmocka_unit_test(test_image_invalid_patterns),
        cmocka_unit_test(test_image_normalise_idempotent),
        cmocka_unit_test(test_bind_two_bots_same_resource),
        cmocka_unit_test(test_bind_roles),
        cmocka_unit_test(test_bind_unknown_role_rejected),
        cmocka_unit_test(test_bind_visibility),
        cmocka_unit_test(test_bind_unbound_resource_invisible),
        cmocka_unit_test(test_glob_compiled_once),
        cmocka_unit_test(test_glob_fast_shapes),
        cmocka_unit_test(test_bind_first_allowing_wins),
        cmocka_unit_test(test_bind_many_rewrites),
        cmocka_unit_test(test_bind_custom_dimension),
        cmocka_unit_test(test_bind_absent_argument_allowed),
        cmocka_unit_test(test_bind_wrong_type_denied),
        cmocka_unit_test(test_bind_unconfigured_dimension_unrestricted),
        cmocka_unit_test(test_bind_decision_fields),
        cmocka_unit_test(test_bind_reason_escapes_values),
        cmocka_unit_test(test_bind_build_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
