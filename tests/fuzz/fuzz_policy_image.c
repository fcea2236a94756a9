/*
 * fuzz_policy_image.c - libFuzzer target for container image references
 * (policy/images.c).
 *
 * Input: the reference bytes.
 *
 * Invariants checked:
 *   - a normalised reference re-normalises to itself, both as a reference
 *     and as a pattern (patterns are normalised the same way);
 *   - it has a registry and a path ("host/path..."), a tag or a digest
 *     after the last '/', no whitespace, control or non-ASCII byte, no
 *     leading '-', no "." or ".." component, and uppercase only in the tag;
 *   - as a pattern it matches itself (it has no glob character), and a
 *     digest reference is never matched by its own tag-only form;
 *   - a too-small output buffer fails cleanly.
 */
#include <string.h>

#include "fuzz.h"
#include "policy/images.h"
#include "policy/policy.h"

#define CAP 600

static void check_shape(const char *n)
{
    const char *slash = strchr(n, '/'), *last = strrchr(n, '/');
    const char *at = strchr(n, '@'), *colon;
    size_t name_end = at ? (size_t)(at - n) : strlen(n);

    FUZZ_CHECK(slash != NULL && slash != n);
    colon = strchr(last, ':');
    FUZZ_CHECK(n[0] != '-');
    FUZZ_CHECK(at != NULL || colon != NULL);
    FUZZ_CHECK(strstr(n, "/../") == NULL && strstr(n, "/./") == NULL);
    for (size_t i = 0; n[i]; i++) {
        unsigned char c = (unsigned char)n[i];
        FUZZ_CHECK(c > 0x20 && c < 0x7f);
        /* uppercase only inside the tag */
        if (c >= 'A' && c <= 'Z')
            FUZZ_CHECK(colon != NULL && n + i > colon && i < name_end);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[CAP], again[CAP], pat[CAP], tiny[8];
    const char *ref = (const char *)data, *why = NULL;
    size_t n;

    if (mcpd_policy_image_normalise(out, sizeof(out), ref, size, &why) != 0) {
        FUZZ_CHECK(why != NULL && out[0] == '\0');
        return 0;
    }
    n = strlen(out);
    check_shape(out);
    FUZZ_CHECK(mcpd_policy_image_normalise(again, sizeof(again), out, n, &why) == 0);
    FUZZ_CHECK(strcmp(again, out) == 0);
    FUZZ_CHECK(mcpd__policy_image_norm(pat, sizeof(pat), out, n, true, &why) == 0);
    FUZZ_CHECK(strcmp(pat, out) == 0);
    FUZZ_CHECK(mcpd__policy_image_norm(pat, sizeof(pat), ref, size, true, &why) == 0);
    FUZZ_CHECK(strcmp(pat, out) == 0);
    FUZZ_CHECK(mcpd_policy_glob(pat, out, n, 1));
    if (strchr(out, '@')) {
        /* the same reference without its digest must not match it */
        *strchr(pat, '@') = '\0';
        FUZZ_CHECK(!mcpd_policy_glob(pat, out, n, 1));
    }
    if (n >= sizeof(tiny))
        FUZZ_CHECK(mcpd_policy_image_normalise(tiny, sizeof(tiny), ref, size, &why) == -1);
    return 0;
}
