/*
 * test_plugin.c - unit tests of plugin packages and egress safety:
 * manifest parsing (a good manifest and every error class, with
 * file:line:col), URL template checking and expansion with percent-encoding,
 * the JSON Schema subset, .mst extraction refusals (traversal, absolute
 * path, symlink, hard link, device, oversized entry, too many entries; the
 * bad archives are built here with libarchive's writer), pack/extract round
 * trip, egress address classification over every refused range and their
 * IPv4-mapped forms, and host glob matching.
 */
#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* cmocka.h needs these four first. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "mcpd/error.h"
#include "mcpd/limits.h"
#include "mcpd/manifest.h"
#include "mcpd/net/egress.h"

/* ---- manifest ------------------------------------------------------------------------------- */

static const char good_manifest[] =
    "name: gh\n"
    "version: 1.0.0\n"
    "description: test\n"
    "config:\n"
    "  type: object\n"
    "  properties: { base: { type: string }, org: { type: string } }\n"
    "  required: [base]\n"
    "auth:\n"
    "  - { type: api_key, in: query, name: key }\n"
    "  - { type: oauth2, token_url: 'https://t/x', scopes: [repo] }\n"
    "dimensions: { repos: [repo] }\n"
    "operations:\n"
    "  issue.read:\n"
    "    description: one issue\n"
    "    input:\n"
    "      type: object\n"
    "      properties: { repo: { type: string }, number: { type: integer }, q: { type: string } }\n"
    "      required: [repo, number]\n"
    "    method: GET\n"
    "    url: '{config.base}/repos/{+repo}/issues/{number}'\n"
    "    query: [q]\n"
    "    headers: { X-Org: '{config.org}' }\n"
    "    response: { text: /title }\n";

static void test_manifest_good(void **state)
{
    struct mcpd_manifest *m = NULL;
    struct mcpd_diag d;
    const struct mcpd_manifest_op *op;
    (void)state;

    assert_int_equal(mcpd_manifest_parse(&m, "m.yaml", good_manifest, strlen(good_manifest), &d),
                     0);
    assert_string_equal(m->name, "gh");
    assert_int_equal(m->nauth, 2);
    assert_true(m->auth[0].type == MCPD_AUTH_API_KEY && m->auth[0].in_query);
    assert_string_equal(m->auth[0].param, "key");
    assert_int_equal(m->auth[1].type, MCPD_AUTH_OAUTH2);
    assert_int_equal(m->auth[1].scopes.n, 1);
    assert_int_equal(m->ndims, 1);
    assert_string_equal(m->dims[0].dimension, "repos");
    assert_string_equal(m->dims[0].args.v[0], "repo");
    op = mcpd_manifest_find_op(m, "issue.read");
    assert_non_null(op);
    assert_string_equal(op->method, "GET");
    assert_int_equal(op->query.n, 1);
    assert_int_equal(op->nheaders, 1);
    assert_string_equal(op->text_pointer, "/title");
    assert_int_equal(
        json_integer_value(json_object_get(
            json_object_get(json_object_get(m->config_schema, "properties"), "base"), "nope")),
        0);
    assert_null(mcpd_manifest_find_op(m, "nope"));
    mcpd_manifest_free(m);
}

/* Each bad manifest fails with a message matching `want` at line `line`. */
static void bad(const char *text, int line, const char *want)
{
    struct mcpd_manifest *m = NULL;
    struct mcpd_diag d;
    int rc = mcpd_manifest_parse(&m, "m.yaml", text, strlen(text), &d);
    if (rc == 0 || strstr(d.msg, want) == NULL || (line && d.line != line))
        fail_msg("manifest should fail at line %d with '%s'; rc %d, got: %s", line, want, rc,
                 d.msg);
    assert_null(m);
    assert_true(strncmp(d.msg, "m.yaml:", 7) == 0);
}

#define HEAD "name: x\nversion: '1'\n"
#define OP   "operations:\n  o:\n    method: GET\n"

static void test_manifest_errors(void **state)
{
    (void)state;
    bad("", 0, "empty");
    bad("[1, 2]\n", 1, "must be a mapping");
    bad("name: x\nversion: 1\nfoo: 1\n" OP "    url: https://h/\n", 3, "unknown key 'foo'");
    bad("version: 1\n" OP "    url: https://h/\n", 0, "key 'name'");
    bad("name: Bad_Name\nversion: 1\n" OP "    url: https://h/\n", 0, "key 'name'");
    bad("name: x\n" OP "    url: https://h/\n", 0, "key 'version'");
    bad(HEAD, 0, "either 'operations'");
    bad(HEAD OP "    url: https://h/\nexec: { command: x }\n", 0, "either 'operations'");
    bad(HEAD "exec: { command: /bin/sh }\n", 0, "relative to the plugin directory");
    bad(HEAD "exec: { command: ../x }\n", 0, "without '..'");
    bad(HEAD OP "    url: https://h/\n    method2: GET\n", 7, "unknown key 'method2'");
    bad(HEAD OP "    url: ftp://h/\n", 5, "must start with http");
    bad(HEAD OP "    url: 'https://h/{a'\n", 5, "unterminated '{'");
    bad(HEAD OP "    url: 'https://h/a}'\n", 5, "unbalanced '}'");
    bad(HEAD OP "    url: 'https://h/{a{b}}'\n", 5, "nested");
    bad(HEAD OP "    url: 'https://h/{a b}'\n", 5, "placeholder is");
    bad(HEAD OP "    url: 'https://h/a b'\n", 5, "percent-encoded");
    bad(HEAD OP "    url: 'https://h/{a}'\n", 5, "'{a}' names no property of the input schema");
    bad(HEAD OP "    url: 'https://h/{config.a}'\n", 5, "names no property of the config schema");
    bad(HEAD "operations:\n  o:\n    method: BREW\n    url: https://h/\n", 5, "expected GET");
    bad(HEAD "operations:\n  o:\n    url: https://h/\n", 5, "'method' and 'url' are required");
    bad(HEAD OP "    url: https://h/\n    query: [zz]\n", 5, "names no input property");
    bad(HEAD OP "    url: https://h/\n    input: { type: array }\n", 7, "type: object");
    bad(HEAD OP "    url: https://h/\n    input: { type: object, properties: { a: { type: "
                "nope } } }\n",
        7, "unknown type");
    bad(HEAD OP "    url: https://h/\n    input: { type: object, required: [b] }\n", 7,
        "names no property");
    bad(HEAD OP "    url: https://h/\n    headers: { 'Bad Header': x }\n", 7,
        "not a valid HTTP header name");
    bad(HEAD OP "    url: https://h/\n    response: { text: title }\n", 5, "JSON pointer");
    bad(HEAD "operations:\n  'a b':\n    method: GET\n    url: https://h/\n", 4,
        "operation names use");
    bad(HEAD "auth: [{ type: magic }]\n" OP "    url: https://h/\n", 3, "expected none");
    bad(HEAD "auth: [{ type: api_key }]\n" OP "    url: https://h/\n", 3, "needs 'name'");
    bad(HEAD "auth: [{ type: oauth2 }]\n" OP "    url: https://h/\n", 3, "needs 'token_url'");
    bad(HEAD "auth: [{ type: bearer, token_url: 'https://x' }]\n" OP "    url: https://h/\n", 3,
        "are for oauth2");
    bad(HEAD "auth: [{ type: api_key, name: k, in: body }]\n" OP "    url: https://h/\n", 3,
        "expected header or query");
    bad(HEAD "dimensions: { tools: [a] }\n" OP "    url: https://h/\n", 3, "cannot name");
    bad(HEAD "x: &a 1\ny: *a\n", 4, "aliases");
    bad(HEAD "name: y\n" OP "    url: https://h/\n", 3, "duplicate key 'name'");
    bad(HEAD OP "    url: [1]\n", 6, "expected a string");
    bad("name: x\nversion: '1'\n---\nname: y\n", 0, "only one YAML document");
    bad("name: [\n", 0, "invalid YAML");
}

static void test_manifest_literal(void **state)
{
    /* manifests never see mcpd's environment: ${HOME} stays literal */
    static const char t[] = HEAD "description: 'uses ${HOME}'\n" OP "    url: https://h/\n";
    struct mcpd_manifest *m = NULL;
    struct mcpd_diag d;
    (void)state;
    assert_int_equal(mcpd_manifest_parse(&m, "m", t, strlen(t), &d), 0);
    assert_string_equal(m->description, "uses ${HOME}");
    mcpd_manifest_free(m);
}

/* ---- templates ------------------------------------------------------------------------------ */

static char *expand(const char *tmpl, const char *args_json, bool encode, int *rc, char *err)
{
    json_t *args = json_loads(args_json, 0, NULL);
    json_t *cfg = json_pack("{s:s, s:i}", "base", "https://api.example.com/v3", "n", 5);
    struct mcpd_buf b;
    char *out;
    mcpd_buf_init(&b, MCPD_MAX_PLUGIN_URL);
    *rc = mcpd_manifest_expand(&b, tmpl, args, cfg, encode, err, 200);
    out = *rc == 0 ? strdup(b.p ? b.p : "") : NULL;
    mcpd_buf_dispose(&b);
    json_decref(args);
    json_decref(cfg);
    return out;
}

static void want(const char *tmpl, const char *args, const char *expect)
{
    char err[200];
    int rc;
    char *s = expand(tmpl, args, true, &rc, err);
    if (s == NULL || strcmp(s, expect) != 0)
        fail_msg("%s with %s: expected %s, got %s (%s)", tmpl, args, expect, s ? s : "(error)",
                 err);
    free(s);
}

static void want_err(const char *tmpl, const char *args, const char *msg)
{
    char err[200];
    int rc;
    char *s = expand(tmpl, args, true, &rc, err);
    if (s != NULL || strstr(err, msg) == NULL)
        fail_msg("%s with %s: expected error '%s', got %s / %s", tmpl, args, msg, s ? s : "-", err);
}

static void test_template(void **state)
{
    (void)state;
    assert_null(mcpd_manifest_check_template("https://h/{a}/{+b}/{config.c-d}"));
    assert_null(mcpd_manifest_check_template("{config.base}/x"));
    assert_non_null(mcpd_manifest_check_template("/relative"));
    assert_non_null(mcpd_manifest_check_template("https://h/{}"));
    assert_non_null(mcpd_manifest_check_template("https://h/{1a}"));
    assert_non_null(mcpd_manifest_check_template("https://h/{+config.a}"));
    assert_non_null(mcpd_manifest_check_template("https://h/\x01"));

    want("{config.base}/repos/{owner}/{repo}", "{\"owner\":\"acme\",\"repo\":\"x\"}",
         "https://api.example.com/v3/repos/acme/x");
    want("https://h/{a}", "{\"a\":\"a/b c?d#e%f\"}", "https://h/a%2Fb%20c%3Fd%23e%25f");
    want("https://h/{a}", "{\"a\":\"\xc3\xa9-._~\"}", "https://h/%C3%A9-._~");
    want("https://h/{+a}", "{\"a\":\"acme/we ird\"}", "https://h/acme/we%20ird");
    want("https://h/{n}/{f}/{b}", "{\"n\":42,\"f\":1.5,\"b\":true}", "https://h/42/1.5/true");
    want("https://h/{config.n}", "{}", "https://h/5");
    want("https://h/x", "{}", "https://h/x");
    want_err("https://h/{a}", "{}", "missing argument 'a'");
    want_err("https://h/{a}", "{\"a\":null}", "missing argument 'a'");
    want_err("https://h/{a}", "{\"a\":[1]}", "must be a string, number or boolean");
    want_err("https://h/{a}", "{\"a\":{}}", "must be a string, number or boolean");
    want_err("https://h/{+a}", "{\"a\":\"a/../b\"}", "'..' path segment");
    want_err("https://h/{+a}", "{\"a\":\"a/./b\"}", "'.' or '..'");
    want_err("https://h/{+a}", "{\"a\":\"a//b\"}", "empty");
    want_err("https://h/{+a}", "{\"a\":\"/a\"}", "empty");
    want_err("https://h/{config.zz}", "{}", "plugin config key 'zz' is not set");
    {
        /* header mode: raw values, but no line breaks */
        char err[200];
        int rc;
        char *s = expand("v={a}", "{\"a\":\"x y/z\"}", false, &rc, err);
        assert_string_equal(s, "v=x y/z");
        free(s);
        assert_null(expand("v={a}", "{\"a\":\"x\\r\\nEvil: 1\"}", false, &rc, err));
        assert_int_equal(rc, MCPD_EPROTO);
    }
    {
        /* the URL cap */
        char big[MCPD_MAX_PLUGIN_URL + 32], args[MCPD_MAX_PLUGIN_URL + 64], err[200];
        int rc;
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        snprintf(args, sizeof(args), "{\"a\":\"%s\"}", big);
        assert_null(expand("https://h/{a}", args, true, &rc, err));
        assert_int_equal(rc, MCPD_ETOOBIG);
    }
}

static void test_schema(void **state)
{
    json_t *s = json_loads("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"},"
                           "\"n\":{\"type\":\"integer\"},\"x\":{\"type\":\"number\"}},"
                           "\"required\":[\"a\"],\"additionalProperties\":false}",
                           0, NULL);
    char err[200];
    json_t *v;
    (void)state;
#define CHECK(js, ok)                                                                      \
    do {                                                                                   \
        v = json_loads(js, JSON_DECODE_ANY, NULL);                                         \
        assert_true((mcpd_manifest_check_schema(s, v, err, sizeof(err)) == NULL) == (ok)); \
        json_decref(v);                                                                    \
    } while (0)
    CHECK("{\"a\":\"x\"}", true);
    CHECK("{\"a\":\"x\",\"n\":3,\"x\":2.5}", true);
    CHECK("{\"a\":\"x\",\"x\":2}", true);
    CHECK("{}", false);
    CHECK("{\"a\":1}", false);
    CHECK("{\"a\":\"x\",\"n\":1.5}", false);
    CHECK("{\"a\":\"x\",\"zz\":1}", false);
    CHECK("[]", false);
#undef CHECK
    json_decref(s);
}

/* ---- .mst archives -------------------------------------------------------------------------- */

struct entry {
    const char *path;
    mode_t type;
    size_t size;
    const char *link; /* symlink or hardlink target */
    bool hard;
};

static char tmpdir[256];

static void write_archive(const char *file, const struct entry *e, size_t n)
{
    struct archive *a = archive_write_new();
    static char zeros[65536];
    assert_non_null(a);
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_gzip(a);
    assert_int_equal(archive_write_open_filename(a, file), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, e[i].path);
        archive_entry_set_filetype(ae, e[i].type);
        archive_entry_set_perm(ae, 0644);
        if (e[i].link && e[i].hard)
            archive_entry_set_hardlink(ae, e[i].link);
        else if (e[i].link)
            archive_entry_set_symlink(ae, e[i].link);
        if (e[i].type == AE_IFCHR)
            archive_entry_set_rdev(ae, makedev(1, 3));
        archive_entry_set_size(ae, e[i].type == AE_IFREG && !e[i].hard ? (la_int64_t)e[i].size : 0);
        assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
        for (size_t left = e[i].type == AE_IFREG && !e[i].hard ? e[i].size : 0; left > 0;) {
            size_t chunk = left < sizeof(zeros) ? left : sizeof(zeros);
            assert_true(archive_write_data(a, zeros, chunk) == (la_ssize_t)chunk);
            left -= chunk;
        }
        archive_entry_free(ae);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
}

/* Extracting `e` into a fresh directory fails with `msg` and writes nothing outside it. */
static void refuse(const struct entry *e, size_t n, const char *msg)
{
    char file[300], dest[300], err[400], outside[300];
    struct stat st;
    snprintf(file, sizeof(file), "%s/t.mst", tmpdir);
    snprintf(dest, sizeof(dest), "%s/out", tmpdir);
    snprintf(outside, sizeof(outside), "%s/escaped", tmpdir);
    mcpd_mst_remove_tree(dest);
    assert_int_equal(mkdir(dest, 0755), 0);
    write_archive(file, e, n);
    err[0] = '\0';
    if (mcpd_mst_extract(file, dest, err, sizeof(err)) != MCPD_ECONFIG || !strstr(err, msg))
        fail_msg("expected refusal '%s', got '%s'", msg, err);
    assert_int_not_equal(stat(outside, &st), 0);
    assert_int_not_equal(stat("/tmp/mcpd-unit-escaped", &st), 0);
}

static void test_mst_refusals(void **state)
{
    (void)state;
    const struct entry trav[] = { { "manifest.yaml", AE_IFREG, 4, NULL, false },
                                  { "../escaped", AE_IFREG, 4, NULL, false } };
    const struct entry trav2[] = { { "a/../../escaped", AE_IFREG, 4, NULL, false } };
    const struct entry abs[] = { { "/tmp/mcpd-unit-escaped", AE_IFREG, 4, NULL, false } };
    const struct entry sym[] = { { "link", AE_IFLNK, 0, "/etc/passwd", false } };
    const struct entry hard[] = { { "manifest.yaml", AE_IFREG, 4, NULL, false },
                                  { "h", AE_IFREG, 0, "manifest.yaml", true } };
    const struct entry dev[] = { { "null", AE_IFCHR, 0, NULL, false } };
    const struct entry fifo[] = { { "fifo", AE_IFIFO, 0, NULL, false } };
    const struct entry big[] = { { "big", AE_IFREG, MCPD_MAX_MST_ENTRY + 1, NULL, false } };
    const struct entry dup[] = { { "a", AE_IFREG, 1, NULL, false },
                                 { "a", AE_IFREG, 1, NULL, false } };
    struct entry *many = calloc(MCPD_MAX_MST_ENTRIES + 1, sizeof(*many));
    char(*names)[16] = calloc(MCPD_MAX_MST_ENTRIES + 1, 16);

    refuse(trav, 2, "'..' segment");
    refuse(trav2, 1, "'..' segment");
    refuse(abs, 1, "absolute path");
    refuse(sym, 1, "not a regular file or directory");
    refuse(hard, 2, "not a regular file or directory");
    refuse(dev, 1, "not a regular file or directory");
    refuse(fifo, 1, "not a regular file or directory");
    refuse(big, 1, "larger than the entry cap");
    refuse(dup, 2, "cannot create");
    assert_non_null(many);
    for (size_t i = 0; i <= MCPD_MAX_MST_ENTRIES; i++) {
        snprintf(names[i], 16, "f%zu", i);
        many[i] = (struct entry){ names[i], AE_IFREG, 1, NULL, false };
    }
    refuse(many, MCPD_MAX_MST_ENTRIES + 1, "more than");
    free(many);
    free(names);
}

static void test_mst_roundtrip(void **state)
{
    char src[300], file[300], dest[300], p[400], err[400];
    struct mcpd_manifest *m = NULL;
    struct mcpd_diag d;
    FILE *f;
    (void)state;
    snprintf(src, sizeof(src), "%s/src", tmpdir);
    snprintf(file, sizeof(file), "%s/rt.mst", tmpdir);
    snprintf(dest, sizeof(dest), "%s/rt", tmpdir);
    assert_int_equal(mkdir(src, 0755), 0);
    snprintf(p, sizeof(p), "%s/bin", src);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/manifest.yaml", src);
    f = fopen(p, "w");
    fputs(HEAD "exec: { command: bin/run }\n", f);
    fclose(f);
    snprintf(p, sizeof(p), "%s/bin/run", src);
    f = fopen(p, "w");
    fputs("#!/bin/sh\n", f);
    fclose(f);
    chmod(p, 0755);
    assert_int_equal(mcpd_mst_pack(src, file, err, sizeof(err)), 0);
    assert_int_equal(mkdir(dest, 0755), 0);
    assert_int_equal(mcpd_mst_extract(file, dest, err, sizeof(err)), 0);
    assert_int_equal(mcpd_manifest_load(&m, dest, &d), 0);
    assert_string_equal(m->exec_command, "bin/run");
    mcpd_manifest_free(m);
    snprintf(p, sizeof(p), "%s/bin/run", dest);
    assert_int_equal(access(p, X_OK), 0);
    /* a symlink in the source directory is not packed */
    snprintf(p, sizeof(p), "%s/link", src);
    assert_int_equal(symlink("/etc/passwd", p), 0);
    assert_int_not_equal(mcpd_mst_pack(src, file, err, sizeof(err)), 0);
    /* not an archive at all */
    snprintf(p, sizeof(p), "%s/manifest.yaml", src);
    assert_int_equal(mcpd_mst_extract(p, dest, err, sizeof(err)), MCPD_ECONFIG);
}

/* ---- egress --------------------------------------------------------------------------------- */

/* A socket address for an IPv4 or IPv6 literal. */
static struct sockaddr *sockaddr_of(const char *addr, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, addr, &s4->sin_addr), 1);
    }
    return (struct sockaddr *)ss;
}

static const char *cls(const char *addr)
{
    struct sockaddr_storage ss;
    return mcpd_egress_addr_class(sockaddr_of(addr, &ss));
}

static void is(const char *addr, const char *want)
{
    const char *got = cls(addr);
    if (want == NULL ? got != NULL : (got == NULL || strcmp(got, want) != 0))
        fail_msg("%s: expected %s, got %s", addr, want ? want : "public", got ? got : "public");
}

static bool in_ranges(const char *addr, const char *const *ranges, size_t n)
{
    struct mcpd_cidr c[4];
    struct sockaddr_storage ss;

    assert_true(n <= 4);
    for (size_t i = 0; i < n; i++)
        assert_true(mcpd_egress_cidr_parse(ranges[i], &c[i]));
    return mcpd_egress_cidr_match(c, n, sockaddr_of(addr, &ss));
}

static void test_egress_cidrs(void **state)
{
    static const char *const good[] = { "10.0.0.0/8", "127.0.0.0/8", "0.0.0.0/0", "192.168.1.7/32",
                                        "fd00::/8",   "::/0",        "fe80::/10", "2001:db8::/32" };
    static const char *const bad[] = {
        "10.0.0.1/8",    "10.0.0.0", "10.0.0.0/33", "10.0.0.0/08", "10.0.0.0/-1", "/8",
        "fd00::1/8",     "x/8",      "10.0.0.0/ 8", "10.0.0.0/8x", "::/129",      "10.0.0.0/",
        "10.0.0.0/1000", ""
    };
    static const char *const ten[] = { "10.0.0.0/8" };
    static const char *const ula[] = { "fd00::/8" };
    static const char *const two[] = { "172.16.0.0/12", "127.0.0.0/8" };
    struct mcpd_cidr c;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!mcpd_egress_cidr_parse(good[i], &c))
            fail_msg("%s should parse", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (mcpd_egress_cidr_parse(bad[i], &c))
            fail_msg("'%s' should not parse", bad[i]);
    assert_true(mcpd_egress_cidr_parse("172.16.0.0/12", &c));
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.bits, 12);
    assert_true(in_ranges("10.1.2.3", ten, 1));
    assert_true(in_ranges("10.255.255.255", ten, 1));
    assert_false(in_ranges("11.0.0.1", ten, 1));
    assert_false(in_ranges("9.255.255.255", ten, 1));
    assert_true(in_ranges("::ffff:10.1.2.3", ten, 1)); /* IPv4-mapped: matched as IPv4 */
    assert_false(in_ranges("fd12::1", ten, 1));
    assert_true(in_ranges("fd12::1", ula, 1));
    assert_false(in_ranges("fc00::1", ula, 1));
    assert_false(in_ranges("127.0.0.1", ula, 1));
    assert_true(in_ranges("172.31.255.255", two, 2));
    assert_false(in_ranges("172.32.0.0", two, 2));
    assert_true(in_ranges("127.0.0.1", two, 2));
    assert_false(in_ranges("127.0.0.1", two, 0)); /* no ranges, no match */
}

static void test_egress_addr(void **state)
{
    static const struct {
        const char *v4, *want;
    } v4[] = {
        { "127.0.0.1", "loopback" },
        { "127.255.255.254", "loopback" },
        { "10.0.0.1", "private" },
        { "10.255.255.255", "private" },
        { "172.16.0.1", "private" },
        { "172.31.255.255", "private" },
        { "192.168.1.1", "private" },
        { "169.254.0.1", "link-local" },
        { "169.254.169.254", "metadata" },
        { "100.64.0.1", "cgnat" },
        { "100.127.255.255", "cgnat" },
        { "0.0.0.0", "unspecified" },
        { "0.1.2.3", "unspecified" },
        { "224.0.0.1", "multicast" },
        { "239.255.255.255", "multicast" },
        { "240.0.0.1", "reserved" },
        { "255.255.255.255", "reserved" },
        { "192.0.0.8", "reserved" },
        { "198.18.0.1", "reserved" },
        { "8.8.8.8", NULL },
        { "172.15.255.255", NULL },
        { "172.32.0.0", NULL },
        { "100.63.255.255", NULL },
        { "100.128.0.0", NULL },
        { "192.169.0.1", NULL },
        { "169.253.255.255", NULL },
        { "11.0.0.1", NULL },
        { "140.82.112.3", NULL },
    };
    char mapped[64];
    (void)state;
    for (size_t i = 0; i < sizeof(v4) / sizeof(v4[0]); i++) {
        is(v4[i].v4, v4[i].want);
        snprintf(mapped, sizeof(mapped), "::ffff:%s", v4[i].v4); /* IPv4-mapped */
        is(mapped, v4[i].want);
        snprintf(mapped, sizeof(mapped), "64:ff9b::%s", v4[i].v4); /* NAT64 */
        is(mapped, v4[i].want);
        snprintf(mapped, sizeof(mapped), "::ffff:0:%s", v4[i].v4); /* IPv4-translated */
        is(mapped, v4[i].want);
    }
    is("64:ff9b:1::a9fe:a9fe", "reserved"); /* local-use NAT64 (RFC 8215) */
    is("64:ff9b:1:ffff::1", "reserved");
    is("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved"); /* Teredo */
    is("::1", "loopback");
    is("::", "unspecified");
    is("fc00::1", "private");
    is("fdff:ffff::1", "private");
    is("fd00:ec2::254", "metadata");
    is("fe80::1", "link-local");
    is("febf::1", "link-local");
    is("fec0::1", "private");
    is("ff02::1", "multicast");
    is("::7f00:1", "reserved");      /* IPv4-compatible */
    is("2002:7f00:1::", "loopback"); /* 6to4 of 127.0.0.1 */
    is("2002:a9fe:a9fe::1", "metadata");
    is("2002:808:808::1", NULL);
    is("2001:db8::1", NULL);
    is("2606:4700::1111", NULL);
    {
        struct sockaddr sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_family = AF_UNIX;
        assert_string_equal(mcpd_egress_addr_class(&sa), "unsupported address family");
        assert_non_null(mcpd_egress_addr_class(NULL));
    }
}

static void test_egress_hosts(void **state)
{
    char *list[] = { "api.github.com", "*.example.org" };
    (void)state;
    assert_true(mcpd_egress_host_match("api.github.com", "api.github.com"));
    assert_true(mcpd_egress_host_match("api.github.com", "API.GitHub.com"));
    assert_true(mcpd_egress_host_match("api.github.com", "api.github.com."));
    assert_false(mcpd_egress_host_match("api.github.com", "api.github.com.evil.org"));
    assert_false(mcpd_egress_host_match("api.github.com", "evilapi.github.com"));
    assert_true(mcpd_egress_host_match("*.github.com", "api.github.com"));
    assert_false(mcpd_egress_host_match("*.github.com", "github.com"));
    assert_false(mcpd_egress_host_match("*.github.com", "a.b.github.com"));
    assert_false(mcpd_egress_host_match("*.github.com", ".github.com"));
    assert_true(mcpd_egress_host_match("api-*.example.org", "api-eu.example.org"));
    assert_false(mcpd_egress_host_match("api-*.example.org", "api.example.org"));
    assert_true(mcpd_egress_host_match("*", "localhost"));
    assert_false(mcpd_egress_host_match("*", "a.b"));
    assert_false(mcpd_egress_host_match("github.com", ""));
    assert_true(mcpd_egress_host_match("127.0.0.1", "127.0.0.1"));
    assert_false(mcpd_egress_host_match("127.0.0.1", "127.0.0.10"));
    assert_true(mcpd_egress_host_allowed(list, 2, "a.example.org"));
    assert_false(mcpd_egress_host_allowed(list, 2, "example.org"));
    assert_false(mcpd_egress_host_allowed(list, 0, "api.github.com"));
    assert_true(mcpd_egress_pattern_is_valid("*.github.com"));
    assert_true(mcpd_egress_pattern_is_valid("169.254.169.254"));
    assert_false(mcpd_egress_pattern_is_valid(""));
    assert_false(mcpd_egress_pattern_is_valid("a..b"));
    assert_false(mcpd_egress_pattern_is_valid("a/b"));
    assert_false(mcpd_egress_pattern_is_valid("http://a"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_good),    cmocka_unit_test(test_manifest_errors),
        cmocka_unit_test(test_manifest_literal), cmocka_unit_test(test_template),
        cmocka_unit_test(test_schema),           cmocka_unit_test(test_mst_refusals),
        cmocka_unit_test(test_mst_roundtrip),    cmocka_unit_test(test_egress_addr),
        cmocka_unit_test(test_egress_hosts),     cmocka_unit_test(test_egress_cidrs),
    };
    int rc;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/mcpd-unit-plugin-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    mcpd_mst_remove_tree(tmpdir);
    return rc;
}
