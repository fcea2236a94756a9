/*
 * fuzz_catalog_name.c - libFuzzer target for catalog naming and paging
 * (mcpd/catalog.c).
 *
 * Input: one flags byte, then NUL-separated strings: the resource, the
 * tool, and further tool names (the catalog part replaces a resource that
 * is not UTF-8, which configuration never lets through). Flags: bit 0 prefixing, bits 1-2 pick the
 * separator, bits 3-5 the page size.
 *
 * Invariants checked:
 *   - mcpd_catalog_name always yields 1..64 characters of [A-Za-z0-9_-],
 *     the same output for the same input, the plain name when that is
 *     valid, and otherwise the sanitized stem plus "_" and 8 hex digits;
 *   - a catalog built from the names holds every tool once (kept or
 *     reported as a collision), each exposed name is unique and found by
 *     lookup, and paging with mcpd's cursors visits every entry in order;
 *   - any string used as a cursor is either refused or yields a page.
 */
#include <string.h>

#include "fuzz.h"
#include "mcpd/catalog.h"
#include "mcpd/limits.h"

#define MAX_TOOLS 64

static bool valid_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MCPD_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!valid_char(s[i]))
            return false;
    return true;
}

static void check_name(const char *res, const char *tool, const char *sep, bool prefix)
{
    char out[MCPD_MAX_NAME + 1], again[MCPD_MAX_NAME + 1];
    char plain[4 * MCPD_MAX_NAME + 64];
    size_t n, stem;
    bool rewritten, plain_ok;

    memset(out, 0x7f, sizeof(out));
    rewritten = mcpd_catalog_name(out, res, tool, sep, prefix);
    FUZZ_CHECK(memchr(out, '\0', sizeof(out)) != NULL);
    FUZZ_CHECK(valid_name(out));
    FUZZ_CHECK(mcpd_catalog_name(again, res, tool, sep, prefix) == rewritten);
    FUZZ_CHECK(strcmp(out, again) == 0);

    /* the plain name, cut where the catalog cuts (it keeps 55 characters at most) */
    plain_ok = strlen(tool) + (prefix ? strlen(res) + strlen(sep) : 0) <= MCPD_MAX_NAME;
    if (prefix)
        snprintf(plain, sizeof(plain), "%s%s%s", res, sep, tool);
    else
        snprintf(plain, sizeof(plain), "%s", tool);
    plain_ok = plain_ok && valid_name(plain);
    if (plain_ok) {
        FUZZ_CHECK(!rewritten);
        FUZZ_CHECK(strcmp(out, plain) == 0);
        return;
    }
    FUZZ_CHECK(rewritten);
    n = strlen(out);
    FUZZ_CHECK(n >= 9 && out[n - 9] == '_');
    for (size_t i = n - 8; i < n; i++)
        FUZZ_CHECK((out[i] >= '0' && out[i] <= '9') || (out[i] >= 'a' && out[i] <= 'f'));
    stem = n - 9;
    FUZZ_CHECK(stem <= MCPD_MAX_NAME - 9);
    FUZZ_CHECK(stem == (strlen(plain) < MCPD_MAX_NAME - 9 ? strlen(plain) : MCPD_MAX_NAME - 9));
    for (size_t i = 0; i < stem; i++)
        FUZZ_CHECK(out[i] == (valid_char(plain[i]) ? plain[i] : '_'));
}

static void check_catalog(const char *res, const char *const *names, size_t nnames, const char *sep,
                          bool prefix, unsigned page_size, const char *cursor)
{
    struct mcpd_catalog_source src[2];
    struct mcpd_catalog *cat = NULL;
    json_t *list1 = json_array(), *list2 = json_array(), *page;
    size_t seen = 0;
    char *next = NULL;

    FUZZ_CHECK(list1 && list2);
    /* every name goes to the fuzzed resource; the odd ones also to a second one */
    for (size_t i = 0; i < nnames; i++) {
        json_array_append_new(
            list1, json_pack("{s:s, s:{s:s}}", "name", names[i], "inputSchema", "type", "object"));
        if (i % 2)
            json_array_append_new(list2, json_pack("{s:s}", "name", names[i]));
    }
    memset(src, 0, sizeof(src));
    src[0].resource = res;
    src[0].tools = list1;
    src[0].owner = &src[0];
    src[1].resource = "second";
    src[1].tools = list2;
    src[1].owner = &src[1];
    FUZZ_CHECK(mcpd_catalog_build(&cat, src, 2, sep, prefix, 5) == 0);
    FUZZ_CHECK(cat->count + json_array_size(cat->collisions) ==
               json_array_size(list1) + json_array_size(list2));
    for (size_t i = 0; i < cat->count; i++) {
        const struct mcpd_catalog_entry *e = &cat->entries[i];
        FUZZ_CHECK(valid_name(e->name));
        FUZZ_CHECK(mcpd_catalog_lookup(cat, e->name) == e);
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(e->json, "name")), e->name) == 0);
    }

    /* paging visits every entry once, in order */
    for (int guard = 0; guard <= MAX_TOOLS * 2 + 1; guard++) {
        json_t *tools, *nc;
        page = mcpd_catalog_page(cat, next, page_size);
        FUZZ_CHECK(page != NULL);
        tools = json_object_get(page, "tools");
        FUZZ_CHECK(json_is_array(tools));
        for (size_t i = 0; i < json_array_size(tools); i++) {
            FUZZ_CHECK(seen < cat->count);
            FUZZ_CHECK(json_array_get(tools, i) == cat->entries[seen].json);
            seen++;
        }
        free(next);
        next = NULL;
        nc = json_object_get(page, "nextCursor");
        if (nc) {
            FUZZ_CHECK(json_array_size(tools) == page_size);
            next = strdup(json_string_value(nc));
        }
        json_decref(page);
        if (next == NULL)
            break;
    }
    FUZZ_CHECK(next == NULL);
    FUZZ_CHECK(seen == cat->count);

    /* an arbitrary cursor is refused or gives a well-formed page */
    page = mcpd_catalog_page(cat, cursor, page_size);
    if (page) {
        FUZZ_CHECK(json_is_array(json_object_get(page, "tools")));
        FUZZ_CHECK(json_array_size(json_object_get(page, "tools")) <= page_size);
        json_decref(page);
    }
    mcpd_catalog_free(cat);
    json_decref(list1);
    json_decref(list2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const seps[] = { "__", "-", "", "." };
    const char *names[MAX_TOOLS + 2];
    size_t nnames = 0;
    char *copy;
    unsigned flags, page_size;
    bool prefix;
    const char *sep;

    if (size == 0)
        return 0;
    flags = data[0];
    prefix = flags & 1;
    sep = seps[(flags >> 1) & 3];
    page_size = ((flags >> 3) & 7) + 1;

    /* NUL-terminated copy, split at NULs */
    copy = malloc(size);
    FUZZ_CHECK(copy != NULL);
    memcpy(copy, data + 1, size - 1);
    copy[size - 1] = '\0';
    for (char *p = copy; p < copy + size && nnames < MAX_TOOLS + 2; p += strlen(p) + 1)
        names[nnames++] = p;
    if (nnames < 2)
        names[nnames++] = "";

    check_name(names[0], names[1], sep, prefix);
    check_name(names[0], names[1], sep, !prefix);
    {
        /* resource names are validated by the config ([a-z0-9-]); the
         * catalog may assume UTF-8 there (it reports collisions as JSON) */
        json_t *probe = json_string(names[0]);
        check_catalog(probe ? names[0] : "r", names + 1, nnames - 1, sep, prefix, page_size,
                      names[1]);
        json_decref(probe);
    }
    free(copy);
    return 0;
}
