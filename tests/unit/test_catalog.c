/*
 * test_catalog.c - unit tests of the merged tool namespace (mcpd/catalog.c):
 * exposed names (prefix on/off, separator, deterministic rewriting of
 * invalid or long names), collisions, exact lookup, mcpd's own pagination
 * cursors, and the promise that tool objects pass through unchanged except
 * for "name".
 *
 * Rewritten names are pinned to exact strings: they are what clients and
 * policies see, so they must not change between releases by accident.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs these four first. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "mcpd/catalog.h"
#include "mcpd/limits.h"

/* ---- helpers -------------------------------------------------------------------------------- */

/* True when `s` is 1..64 characters of [A-Za-z0-9_-]. */
static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MCPD_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* True when `s` ends in "_" and 8 lowercase hex digits. */
static bool has_hash_suffix(const char *s)
{
    size_t n = strlen(s);
    if (n < 9 || s[n - 9] != '_')
        return false;
    for (size_t i = n - 8; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Names (resource, tool) and checks the result is `want` and whether it was rewritten. */
static void check_name(const char *res, const char *tool, const char *sep, bool prefix,
                       const char *want, bool want_rewritten)
{
    char out[MCPD_MAX_NAME + 1 + 16];
    char again[MCPD_MAX_NAME + 1 + 16];

    memset(out, 'Z', sizeof(out));
    assert_int_equal(mcpd_catalog_name(out, res, tool, sep, prefix), want_rewritten);
    assert_string_equal(out, want);
    assert_true(name_ok(out));
    /* deterministic */
    assert_int_equal(mcpd_catalog_name(again, res, tool, sep, prefix), want_rewritten);
    assert_string_equal(again, out);
}

static json_t *tool(const char *name)
{
    return json_pack("{s:s, s:s, s:{s:s}}", "name", name, "description", "d", "inputSchema", "type",
                     "object");
}

/* A source's tool list from names. */
static json_t *tools(const char *const *names, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, tool(names[i]));
    return a;
}

static char *dumps(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT);
    assert_non_null(s);
    return s;
}

static void assert_json(const json_t *v, const char *want)
{
    char *s = dumps(v);
    assert_string_equal(s, want);
    free(s);
}

/* ---- naming --------------------------------------------------------------------------------- */

static void test_name_plain(void **state)
{
    check_name("files", "read_file", "__", true, "files__read_file", false);
    check_name("files", "read_file", "__", false, "read_file", false);
    check_name("files", "read-file", "-", true, "files-read-file", false);
    check_name("git", "Status2", "_", true, "git_Status2", false);
    check_name("a", "b", "", true, "ab", false);
    /* with prefixing off the resource plays no part */
    check_name("anything-at-all", "t", "__", false, "t", false);
}

static void test_name_boundaries(void **state)
{
    char tool64[MCPD_MAX_NAME + 1], tool65[MCPD_MAX_NAME + 2];
    char res32[33], tool30[31], full[MCPD_MAX_NAME + 1];

    memset(tool64, 'a', MCPD_MAX_NAME);
    tool64[MCPD_MAX_NAME] = '\0';
    check_name("r", tool64, "__", false, tool64, false);

    memset(tool65, 'a', MCPD_MAX_NAME + 1);
    tool65[MCPD_MAX_NAME + 1] = '\0';
    /* 55 characters of stem, '_' and 8 hex digits: exactly 64 */
    check_name("r", tool65, "__", false,
               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa_00a9febd", true);

    /* prefix: 32 + 2 + 30 = 64 fits; one more does not */
    memset(res32, 'r', 32);
    res32[32] = '\0';
    memset(tool30, 't', 30);
    tool30[30] = '\0';
    snprintf(full, sizeof(full), "%s__%s", res32, tool30);
    check_name(res32, tool30, "__", true, full, false);
    {
        char out[MCPD_MAX_NAME + 1];
        char tool31[32];
        memset(tool31, 't', 31);
        tool31[31] = '\0';
        assert_true(mcpd_catalog_name(out, res32, tool31, "__", true));
        assert_int_equal(strlen(out), MCPD_MAX_NAME);
        assert_int_equal(strncmp(out, full, 55), 0);
        assert_true(has_hash_suffix(out));
    }
}

static void test_name_invalid_chars(void **state)
{
    char out1[MCPD_MAX_NAME + 1], out2[MCPD_MAX_NAME + 1];

    check_name("files", "read.file", "__", true, "files__read_file_937a5ccf", true);
    check_name("files", "read file", "__", false, "read_file_a9f46614", true);
    /* multi-byte UTF-8: one '_' per byte */
    check_name("docs", "r\xc3\xa9sum\xc3\xa9", "__", true, "docs__r__sum___b3b77f3e", true);
    /* an empty name is not a name */
    check_name("r", "", "__", false, "_7a0b824e", true);
    /* a separator outside the charset is rewritten like the rest */
    check_name("files", "read", ".", true, "files_read_8583999d", true);

    /* same stem, different originals: different names */
    assert_true(mcpd_catalog_name(out1, "files", "a.b", "__", true));
    assert_true(mcpd_catalog_name(out2, "files", "a,b", "__", true));
    assert_int_equal(strncmp(out1, "files__a_b_", 11), 0);
    assert_int_equal(strncmp(out2, "files__a_b_", 11), 0);
    assert_string_not_equal(out1, out2);
    /* the resource is part of the hash when prefixing */
    assert_true(mcpd_catalog_name(out1, "one", "x.y", "__", true));
    assert_true(mcpd_catalog_name(out2, "two", "x.y", "__", true));
    assert_string_not_equal(out1 + strlen(out1) - 8, out2 + strlen(out2) - 8);
}

static void test_name_long(void **state)
{
    static const char *const odd[] = { "\x01\x02\x03", "////", "\xff\xfe", "-", "_", "a b c" };
    char big[10000], out[MCPD_MAX_NAME + 1];

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[17] = '.';
    assert_true(mcpd_catalog_name(out, "res", big, "__", true));
    assert_int_equal(strlen(out), MCPD_MAX_NAME);
    assert_true(name_ok(out));
    assert_true(has_hash_suffix(out));
    assert_int_equal(strncmp(out, "res__xxxxxxxxxxxxxxxxx_xxx", 26), 0);

    /* a huge resource name with prefixing */
    assert_true(mcpd_catalog_name(out, big, "t", "__", true));
    assert_int_equal(strlen(out), MCPD_MAX_NAME);
    assert_true(name_ok(out));

    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
        mcpd_catalog_name(out, "r", odd[i], "__", false);
        assert_true(name_ok(out));
        mcpd_catalog_name(out, "r", odd[i], "__", true);
        assert_true(name_ok(out));
    }
}

/* ---- build, collisions, lookup -------------------------------------------------------------- */

static void test_build_prefixed(void **state)
{
    static const char *const a[] = { "read", "write" }, *const b[] = { "status", "read" };
    int o1, o2;
    struct mcpd_catalog_source src[2] = {
        { .resource = "files", .tools = tools(a, 2), .owner = &o1 },
        { .resource = "git", .tools = tools(b, 2), .owner = &o2 },
    };
    struct mcpd_catalog *cat;
    const struct mcpd_catalog_entry *e;

    assert_int_equal(mcpd_catalog_build(&cat, src, 2, "__", true, 3), 0);
    assert_int_equal(cat->count, 4);
    assert_int_equal(cat->generation, 3);
    assert_string_equal(cat->entries[0].name, "files__read");
    assert_string_equal(cat->entries[1].name, "files__write");
    assert_string_equal(cat->entries[2].name, "git__status");
    assert_string_equal(cat->entries[3].name, "git__read");
    assert_int_equal(json_array_size(cat->collisions), 0);

    e = mcpd_catalog_lookup(cat, "git__read");
    assert_non_null(e);
    assert_ptr_equal(e, &cat->entries[3]);
    assert_string_equal(e->tool, "read");
    assert_string_equal(e->resource, "git");
    assert_ptr_equal(e->owner, &o2);
    assert_false(e->renamed);
    assert_string_equal(json_string_value(json_object_get(e->json, "name")), "git__read");

    /* exact lookup only */
    assert_null(mcpd_catalog_lookup(cat, "read"));
    assert_null(mcpd_catalog_lookup(cat, "git__rea"));
    assert_null(mcpd_catalog_lookup(cat, "git__read "));
    assert_null(mcpd_catalog_lookup(cat, "GIT__read"));
    assert_null(mcpd_catalog_lookup(cat, ""));
    assert_null(mcpd_catalog_lookup(NULL, "git__read"));

    /* the sources are not modified */
    assert_string_equal(json_string_value(json_object_get(json_array_get(src[1].tools, 1), "name")),
                        "read");
    mcpd_catalog_free(cat);
    json_decref(src[0].tools);
    json_decref(src[1].tools);
}

static void test_build_collisions(void **state)
{
    static const char *const a[] = { "read", "write" }, *const b[] = { "status", "read", "read" };
    int o1, o2;
    struct mcpd_catalog_source src[2] = {
        { .resource = "files", .tools = tools(a, 2), .owner = &o1 },
        { .resource = "git", .tools = tools(b, 3), .owner = &o2 },
    };
    struct mcpd_catalog *cat;
    const struct mcpd_catalog_entry *e;

    /* without prefixes, git's "read" meets files' "read": the first one keeps it */
    assert_int_equal(mcpd_catalog_build(&cat, src, 2, "__", false, 1), 0);
    assert_int_equal(cat->count, 3);
    assert_string_equal(cat->entries[0].name, "read");
    assert_string_equal(cat->entries[1].name, "write");
    assert_string_equal(cat->entries[2].name, "status");
    e = mcpd_catalog_lookup(cat, "read");
    assert_non_null(e);
    assert_string_equal(e->resource, "files");
    assert_ptr_equal(e->owner, &o1);
    assert_json(cat->collisions, "[{\"resource\":\"git\",\"tool\":\"read\",\"name\":\"read\","
                                 "\"kept_by\":\"files\"},"
                                 "{\"resource\":\"git\",\"tool\":\"read\",\"name\":\"read\","
                                 "\"kept_by\":\"files\"}]");
    mcpd_catalog_free(cat);

    /* with prefixes, only the duplicate inside git collides (with itself) */
    assert_int_equal(mcpd_catalog_build(&cat, src, 2, "__", true, 1), 0);
    assert_int_equal(cat->count, 4);
    assert_json(cat->collisions, "[{\"resource\":\"git\",\"tool\":\"read\",\"name\":\"git__read\","
                                 "\"kept_by\":\"git\"}]");
    mcpd_catalog_free(cat);
    json_decref(src[0].tools);
    json_decref(src[1].tools);
}

static void test_build_rewritten_collision(void **state)
{
    /* "a.b" is rewritten to a hashed name, so it does not take "a_b" away */
    static const char *const a[] = { "a.b", "a_b" };
    struct mcpd_catalog_source src = { .resource = "r", .tools = tools(a, 2), .owner = NULL };
    struct mcpd_catalog *cat;

    assert_int_equal(mcpd_catalog_build(&cat, &src, 1, "__", false, 1), 0);
    assert_int_equal(cat->count, 2);
    assert_true(cat->entries[0].renamed);
    assert_true(has_hash_suffix(cat->entries[0].name));
    assert_string_equal(cat->entries[0].tool, "a.b");
    assert_false(cat->entries[1].renamed);
    assert_string_equal(cat->entries[1].name, "a_b");
    assert_ptr_equal(mcpd_catalog_lookup(cat, cat->entries[0].name), &cat->entries[0]);
    assert_null(mcpd_catalog_lookup(cat, "a.b"));
    mcpd_catalog_free(cat);
    json_decref(src.tools);
}

static void test_build_skips_invalid(void **state)
{
    json_t *list = json_pack("[{s:s}, {s:i}, {}, s, i, n, {s:s}]", "name", "ok", "name", 5, "x", 3,
                             "name", "ok2");
    struct mcpd_catalog_source src[3] = {
        { .resource = "r", .tools = list, .owner = NULL },
        { .resource = "empty", .tools = NULL, .owner = NULL },
        { .resource = "none", .tools = json_array(), .owner = NULL },
    };
    struct mcpd_catalog *cat;

    assert_int_equal(mcpd_catalog_build(&cat, src, 3, "__", false, 1), 0);
    assert_int_equal(cat->count, 2);
    assert_string_equal(cat->entries[0].name, "ok");
    assert_string_equal(cat->entries[1].name, "ok2");
    mcpd_catalog_free(cat);

    assert_int_equal(mcpd_catalog_build(&cat, NULL, 0, "__", true, 1), 0);
    assert_int_equal(cat->count, 0);
    assert_null(mcpd_catalog_lookup(cat, "ok"));
    mcpd_catalog_free(cat);
    mcpd_catalog_free(NULL);
    json_decref(list);
    json_decref(src[2].tools);
}

/* ---- pass-through --------------------------------------------------------------------------- */

static const char rich_tool[] =
    "{\"name\":\"query\",\"title\":\"Query\",\"description\":\"Runs a query \xe2\x9c\x93\","
    "\"inputSchema\":{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\","
    "\"type\":\"object\",\"$defs\":{\"lim\":{\"type\":\"integer\",\"minimum\":1}},"
    "\"properties\":{\"sql\":{\"type\":\"string\"},\"limit\":{\"$ref\":\"#/$defs/lim\"},"
    "\"opts\":{\"type\":\"object\",\"additionalProperties\":{\"type\":[\"string\",\"null\"]}}},"
    "\"required\":[\"sql\"],\"additionalProperties\":false},"
    "\"outputSchema\":{\"type\":\"object\",\"properties\":{\"rows\":{\"type\":\"array\"}}},"
    "\"annotations\":{\"readOnlyHint\":true,\"openWorldHint\":false},"
    "\"_meta\":{\"vendor/x\":{\"n\":1.5,\"z\":null}},\"icons\":[{\"src\":\"data:,\"}]}";

static void test_passthrough(void **state)
{
    json_t *orig = json_loads(rich_tool, 0, NULL), *list = json_array(), *copy;
    struct mcpd_catalog_source src = { .resource = "db", .tools = list, .owner = NULL };
    struct mcpd_catalog *cat;
    const struct mcpd_catalog_entry *e;
    char *want;

    assert_non_null(orig);
    json_array_append_new(list, json_deep_copy(orig));
    assert_int_equal(mcpd_catalog_build(&cat, &src, 1, "__", true, 1), 0);
    e = mcpd_catalog_lookup(cat, "db__query");
    assert_non_null(e);

    /* everything but the name is untouched, member order included */
    copy = json_deep_copy(e->json);
    json_object_set_new(copy, "name", json_string("query"));
    assert_true(json_equal(copy, orig));
    {
        char *a = dumps(copy), *b = dumps(orig);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    json_decref(copy);

    /* the exposed object differs only in the name */
    json_object_set_new(orig, "name", json_string("db__query"));
    want = dumps(orig);
    assert_json(e->json, want);
    free(want);

    /* the source keeps its own name */
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "name")),
                        "query");

    /* and a page carries the same object */
    {
        json_t *page = mcpd_catalog_page(cat, NULL, 0);
        assert_non_null(page);
        assert_true(json_equal(json_array_get(json_object_get(page, "tools"), 0), e->json));
        json_decref(page);
    }
    mcpd_catalog_free(cat);
    json_decref(list);
    json_decref(orig);
}

/* ---- pagination ----------------------------------------------------------------------------- */

static void test_pages(void **state)
{
    static const char *const names[] = { "t0", "t1", "t2", "t3", "t4" };
    struct mcpd_catalog_source src = { .resource = "r", .tools = tools(names, 5), .owner = NULL };
    struct mcpd_catalog *cat;
    json_t *page;

    assert_int_equal(mcpd_catalog_build(&cat, &src, 1, "__", false, 7), 0);

    page = mcpd_catalog_page(cat, NULL, 2);
    assert_non_null(page);
    assert_int_equal(json_array_size(json_object_get(page, "tools")), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(page, "tools"), 0), "name")),
                        "t0");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(page, "tools"), 1), "name")),
                        "t1");
    assert_string_equal(json_string_value(json_object_get(page, "nextCursor")), "mcpd:7:2");
    json_decref(page);

    page = mcpd_catalog_page(cat, "mcpd:7:2", 2);
    assert_non_null(page);
    assert_int_equal(json_array_size(json_object_get(page, "tools")), 2);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(page, "tools"), 0), "name")),
                        "t2");
    assert_string_equal(json_string_value(json_object_get(page, "nextCursor")), "mcpd:7:4");
    json_decref(page);

    /* the last page has no nextCursor at all */
    page = mcpd_catalog_page(cat, "mcpd:7:4", 2);
    assert_non_null(page);
    assert_int_equal(json_array_size(json_object_get(page, "tools")), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(page, "tools"), 0), "name")),
                        "t4");
    assert_null(json_object_get(page, "nextCursor"));
    assert_int_equal(json_object_size(page), 1);
    json_decref(page);

    /* a cursor of an older generation is honoured by offset */
    page = mcpd_catalog_page(cat, "mcpd:6:4", 2);
    assert_non_null(page);
    assert_int_equal(json_array_size(json_object_get(page, "tools")), 1);
    json_decref(page);

    /* one page holds everything: no cursor */
    page = mcpd_catalog_page(cat, NULL, 5);
    assert_int_equal(json_array_size(json_object_get(page, "tools")), 5);
    assert_null(json_object_get(page, "nextCursor"));
    json_decref(page);

    /* page size 0 means the default */
    page = mcpd_catalog_page(cat, NULL, 0);
    assert_int_equal(json_array_size(json_object_get(page, "tools")), 5);
    assert_null(json_object_get(page, "nextCursor"));
    json_decref(page);

    /* invalid cursors */
    {
        static const char *const bad[] = { "",
                                           "garbage",
                                           "mcpd:",
                                           "mcpd:7",
                                           "mcpd:7:",
                                           "mcpd:7:6",
                                           "mcpd:7:2x",
                                           "mcpd:x:2",
                                           "mcpd:7:-1",
                                           "MCPD:7:2",
                                           " mcpd:7:2",
                                           "mcpd:7:2 ",
                                           "mcpd:7:99999999999999999999999" };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            page = mcpd_catalog_page(cat, bad[i], 2);
            if (page != NULL)
                fail_msg("cursor '%s' accepted", bad[i]);
        }
    }
    mcpd_catalog_free(cat);
    json_decref(src.tools);
}

static void test_page_empty(void **state)
{
    json_t *page = mcpd_catalog_page(NULL, NULL, 2);
    assert_non_null(page);
    assert_json(page, "{\"tools\":[]}");
    json_decref(page);
    assert_null(mcpd_catalog_page(NULL, "garbage", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_plain),
        cmocka_unit_test(test_name_boundaries),
        cmocka_unit_test(test_name_invalid_chars),
        cmocka_unit_test(test_name_long),
        cmocka_unit_test(test_build_prefixed),
        cmocka_unit_test(test_build_collisions),
        cmocka_unit_test(test_build_rewritten_collision),
        cmocka_unit_test(test_build_skips_invalid),
        cmocka_unit_test(test_passthrough),
        cmocka_unit_test(test_pages),
        cmocka_unit_test(test_page_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
