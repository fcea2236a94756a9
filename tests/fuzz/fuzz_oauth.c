/*
 * fuzz_oauth.c - libFuzzer target for the OAuth parsers (mcpd/oauth.c):
 * token and device endpoint responses (mcpd_oauth_parse) and the
 * /oauth/callback query (mcpd_oauth_query_param). The first byte picks the
 * status code and the mode; the rest is the body or query.
 *
 * Invariants checked:
 *   - parse returns 0, MCPD_EDENIED or MCPD_EPROTO; on 0 a token response has
 *     an access token (a device response its code, user code and URI), on
 *     MCPD_EDENIED an error code is set; error strings are printable ASCII;
 *   - nothing but a successful parse leaves token strings behind;
 *   - a query value never contains a NUL before its end and is no longer
 *     than the query.
 */
#include <string.h>

#include "fuzz.h"
#include "mcpd/error.h"
#include "mcpd/oauth.h"

static void check_printable(const char *s)
{
    for (; *s; s++)
        FUZZ_CHECK(*s >= 0x20 && *s < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int statuses[] = { 200, 400, 401, 500 };
    struct mcpd_oauth_token t;
    char *q;
    int r;

    if (size < 1)
        return 0;
    q = malloc(size);
    if (q == NULL)
        return 0;
    memcpy(q, data + 1, size - 1);
    q[size - 1] = '\0';
    if (data[0] & 0x80) {
        static const char *const keys[] = { "code", "state", "error", "x" };
        for (size_t i = 0; i < 4; i++) {
            char *v = mcpd_oauth_query_param(q, keys[i]);
            if (v != NULL) {
                FUZZ_CHECK(strlen(v) < size);
                free(v);
            }
        }
    } else {
        bool device = (data[0] & 0x40) != 0;
        r = mcpd_oauth_parse(&t, statuses[data[0] & 3], (const char *)data + 1, size - 1, device,
                             1000);
        FUZZ_CHECK(r == 0 || r == MCPD_EDENIED || r == MCPD_EPROTO);
        check_printable(t.error);
        check_printable(t.error_description);
        if (r == 0 && !device)
            FUZZ_CHECK(t.access_token != NULL && t.access_token[0] != '\0');
        if (r == 0 && device)
            FUZZ_CHECK(t.device_code && t.user_code && t.verification_uri && t.interval_s > 0);
        if (r == MCPD_EDENIED)
            FUZZ_CHECK(t.error[0] != 0);
        if (r == MCPD_EPROTO)
            FUZZ_CHECK(t.access_token == NULL && t.refresh_token == NULL && t.device_code == NULL);
        mcpd_oauth_token_dispose(&t);
    }
    free(q);
    return 0;
}
