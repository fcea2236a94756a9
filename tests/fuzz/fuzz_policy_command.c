/*
 * fuzz_policy_command.c - libFuzzer target for command tokenising and
 * token-wise matching (policy/commands.c, policy/check.c).
 *
 * Input: the command, then optionally a NUL and a command pattern.
 *
 * Invariants checked:
 *   - tokens are 1..255 bytes of the safe set (letters, digits and
 *     -_./,:=+@%), never more than the cap, and re-tokenising them joined
 *     by one space gives the same tokens;
 *   - a command given as a string and the same tokens given as an argv
 *     array get the same decision, under fixed patterns and under the
 *     fuzzed one (when it compiles);
 *   - an allowed command has no leading VAR=value and no relative program
 *     path; under the fixed patterns it never runs a wrapper, and a flag
 *     appears only where a pattern has "-*" or spells the flag.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "policy/policy.h"

#define MAXTOK MCPD_POLICY_MAX_TOKENS

static bool safe(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-_./,:=+@%", c) != NULL);
}

static int tokens_of(char tok[][256], const char *s, size_t len)
{
    const char *why = NULL;
    int n = mcpd_policy_command_tokens(tok, MAXTOK, s, len, &why);

    FUZZ_CHECK(n == -1 ? why != NULL : n >= 1 && n <= MAXTOK);
    for (int i = 0; i < n; i++) {
        size_t k = strlen(tok[i]);
        FUZZ_CHECK(k >= 1 && k <= 255);
        for (size_t j = 0; j < k; j++)
            FUZZ_CHECK(safe(tok[i][j]));
    }
    return n;
}

static void check_rejoin(char tok[][256], int n)
{
    static char joined[MAXTOK * 257], again[MAXTOK][256];
    size_t o = 0;

    for (int i = 0; i < n; i++) {
        size_t k = strlen(tok[i]);
        if (i)
            joined[o++] = ' ';
        memcpy(joined + o, tok[i], k);
        o += k;
    }
    FUZZ_CHECK(tokens_of(again, joined, o) == n);
    for (int i = 0; i < n; i++)
        FUZZ_CHECK(strcmp(again[i], tok[i]) == 0);
}

static struct mcpd_policy *policy_of(const char *const *pats, size_t n)
{
    const struct mcpd_policy_dim dims[] = { { "commands", pats, n } };
    const struct mcpd_policy_binding b = { .resource = "r", .dims = dims, .ndims = 1 };
    const struct mcpd_policy_bot bot = { .name = "b", .bindings = &b, .nbindings = 1 };
    struct mcpd_policy *p = NULL;
    char err[256];

    if (mcpd_policy_new(&p, &bot, 1, NULL, 0, err, sizeof(err)) != 0)
        return NULL;
    return p;
}

static bool decide(const struct mcpd_policy *p, json_t *value, struct mcpd_policy_decision *d)
{
    const char *const names[] = { "cmd" };
    const struct mcpd_policy_dim_args da[] = { { "commands", names, 1 } };
    const struct mcpd_policy_resource res = { "r", da, 1 };
    json_t *args = json_object();
    int rc;

    FUZZ_CHECK(args != NULL && value != NULL);
    json_object_set_new(args, "cmd", value);
    rc = mcpd_policy_check_call(p, "b", &res, "t", args, d);
    FUZZ_CHECK(rc == (d->allow ? 0 : -1));
    FUZZ_CHECK(strlen(d->reason) < sizeof(d->reason));
    json_decref(args);
    return d->allow;
}

/*
 * Under the fixed patterns a flag is only ever allowed where a pattern
 * says "-*" (the second of two tokens) or spells it ("find . -name *").
 */
static void check_fixed_flags(char tok[][256], int n)
{
    if (n == 2 && tok[1][0] == '-')
        return;
    for (int i = 1; i < n; i++) {
        if (n == 4 && i == 2 && strcmp(tok[0], "find") == 0)
            continue;
        FUZZ_CHECK(tok[i][0] != '-');
    }
}

static void check_allowed(char tok[][256], int n, bool fixed)
{
    FUZZ_CHECK(strchr(tok[0], '=') == NULL);
    FUZZ_CHECK(strchr(tok[0], '/') == NULL || tok[0][0] == '/');
    if (!fixed)
        return;
    FUZZ_CHECK(strcmp(tok[0], "sudo") != 0 && strcmp(tok[0], "sh") != 0 &&
               strcmp(tok[0], "env") != 0 && strcmp(tok[0], "xargs") != 0);
    check_fixed_flags(tok, n);
}

/* The string and the argv form must agree under policy p. */
static void check_forms(const struct mcpd_policy *p, const char *s, size_t len, char tok[][256],
                        int n, bool fixed)
{
    struct mcpd_policy_decision ds, da;
    json_t *argv = json_array();
    bool as_string, as_argv;

    FUZZ_CHECK(argv != NULL);
    for (int i = 0; i < n; i++)
        json_array_append_new(argv, json_string(tok[i]));
    as_string = decide(p, json_stringn(s, len), &ds);
    as_argv = decide(p, argv, &da);
    FUZZ_CHECK(as_string == as_argv);
    if (as_string)
        check_allowed(tok, n, fixed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const fixed[] = { "git status", "git log *",       "ls **",
                                         "* -*",       "/usr/bin/git **", "find . -name *" };
    static char tok[MAXTOK][256];
    const char *s = (const char *)data, *nul = memchr(data, '\0', size);
    size_t len = nul ? (size_t)(nul - s) : size;
    struct mcpd_policy *p;
    char *pat;
    int n;

    n = tokens_of(tok, s, len);
    if (n < 0)
        return 0;
    check_rejoin(tok, n);
    p = policy_of(fixed, sizeof(fixed) / sizeof(fixed[0]));
    FUZZ_CHECK(p != NULL);
    check_forms(p, s, len, tok, n, true);
    mcpd_policy_free(p);
    if (nul == NULL)
        return 0;
    pat = malloc(size - len);
    FUZZ_CHECK(pat != NULL);
    memcpy(pat, nul + 1, size - len - 1);
    pat[size - len - 1] = '\0';
    if ((p = policy_of((const char *const *)&pat, 1)) != NULL) {
        check_forms(p, s, len, tok, n, false);
        mcpd_policy_free(p);
    }
    free(pat);
    return 0;
}
