/*
 * fuzz_policy_path.c - libFuzzer target for lexical path canonicalisation
 * (policy/paths.c) and path-mode containment.
 *
 * Input: the raw path bytes.
 *
 * Invariants checked:
 *   - the canonical form is absolute, never longer than the input, and
 *     never contains "//", "/./", "/../", a final "/." or "/..", a trailing
 *     '/' (except "/" itself), '\\', '%' or a control character;
 *   - it is idempotent: canon(canon(x)) == canon(x);
 *   - appending "/x/.." or "/." changes nothing, and appending "/.."
 *     drops the last segment;
 *   - containment agrees with plain string logic: canon matches
 *     "/srv/data/" + "**" exactly when it is "/srv/data" or starts with
 *     "/srv/data/", and never when it merely starts with "/srv/data";
 *   - a too-small output buffer fails cleanly.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "policy/policy.h"

static void check_shape(const char *c, size_t inlen)
{
    size_t n = strlen(c);

    FUZZ_CHECK(n >= 1 && c[0] == '/');
    FUZZ_CHECK(n <= inlen);
    FUZZ_CHECK(strstr(c, "//") == NULL);
    FUZZ_CHECK(strstr(c, "/./") == NULL);
    FUZZ_CHECK(strstr(c, "/../") == NULL);
    FUZZ_CHECK(n == 1 || c[n - 1] != '/');
    FUZZ_CHECK(!(n >= 2 && strcmp(c + n - 2, "/.") == 0));
    FUZZ_CHECK(!(n >= 3 && strcmp(c + n - 3, "/..") == 0));
    FUZZ_CHECK(strpbrk(c, "\\%") == NULL);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)c[i] >= 0x20 && c[i] != 0x7f);
}

/* canon(c + suffix) must equal want. */
static void check_suffix(const char *c, const char *suffix, const char *want)
{
    char in[MCPD_POLICY_MAX_PATH + 8], out[MCPD_POLICY_MAX_PATH + 8];
    size_t n = strlen(c), k = strlen(suffix);
    const char *why;

    if (n + k > MCPD_POLICY_MAX_PATH)
        return;
    memcpy(in, c, n);
    memcpy(in + n, suffix, k + 1);
    FUZZ_CHECK(mcpd_policy_path_canon(out, sizeof(out), in, n + k, &why) == 0);
    FUZZ_CHECK(strcmp(out, want) == 0);
}

static void check_parent(const char *c)
{
    char want[MCPD_POLICY_MAX_PATH + 1];
    const char *slash = strrchr(c, '/');
    size_t n = (size_t)(slash - c);

    if (n == 0)
        n = 1; /* the parent of "/x" and of "/" is "/" */
    memcpy(want, c, n);
    want[n] = '\0';
    check_suffix(c, "/..", want);
}

static void check_containment(const char *c)
{
    size_t n = strlen(c);
    bool under = strcmp(c, "/srv/data") == 0 || strncmp(c, "/srv/data/", 10) == 0;

    FUZZ_CHECK(mcpd_policy_glob("/srv/data/**", c, n, 1) == under);
    FUZZ_CHECK(mcpd_policy_glob("/srv/data", c, n, 1) == (strcmp(c, "/srv/data") == 0));
    FUZZ_CHECK(mcpd_policy_glob("/**", c, n, 1));
    FUZZ_CHECK(mcpd_policy_glob("**", c, n, 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[MCPD_POLICY_MAX_PATH + 1], again[MCPD_POLICY_MAX_PATH + 1], tiny[4];
    const char *path = (const char *)data, *why = NULL;
    int rc;

    memset(out, 0x7f, sizeof(out));
    rc = mcpd_policy_path_canon(out, sizeof(out), path, size, &why);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1 && why != NULL && out[0] == '\0');
        return 0;
    }
    FUZZ_CHECK(why == NULL);
    check_shape(out, size);
    FUZZ_CHECK(mcpd_policy_path_canon(again, sizeof(again), out, strlen(out), &why) == 0);
    FUZZ_CHECK(strcmp(again, out) == 0);
    check_suffix(out, "/x/..", out);
    check_suffix(out, "/.", out);
    check_suffix(out, "//", out);
    check_parent(out);
    check_containment(out);
    if (strlen(out) >= sizeof(tiny))
        FUZZ_CHECK(mcpd_policy_path_canon(tiny, sizeof(tiny), path, size, &why) == -1);
    return 0;
}
