/*
 * fuzz_modern_state.c - libFuzzer target for what mcpd reads of a
 * 2026-07-28 client's own strings (mcpd/modern.c): a requestState it is
 * handed back (MRTR) and the header values it compares with the body
 * (Mcp-Name, Mcp-Param-*, with their =?base64?...?= form).
 *
 * Input: bytes up to the first NUL are the value, the rest is `want`.
 *
 * Also the requestState mcpd wraps for a 2026-07-28 upstream's (router.h,
 * mcpd__mrtr_wrap/_unwrap): `value` is unwrapped as a client would send it,
 * `want` is wrapped as an upstream's state and unwrapped again.
 *
 * Invariants checked:
 *   - mcpd__mrtr_parse_state accepts exactly the canonical spelling: a
 *     parsed state prints back to the same text, with 32 and 64 lowercase
 *     hex digits;
 *   - a value that is not wrapped whole in =?base64?...?= compares
 *     literally; `want` wrapped in Base64 by us always matches itself;
 *   - a wrapped state unwraps to exactly the upstream's state, for the same
 *     bot, server, kind and name only; one mcpd did not wrap (the fuzzer
 *     cannot forge the HMAC) never unwraps, and if it did, it would be the
 *     very text mcpd writes for what it unwrapped to;
 *   - nothing crashes or reads past its input.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "fuzz.h"
#include "mcpd/router.h"
#include "mcpd/session.h"

#define CAP 512

static bool hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return s[n] == '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char value[CAP + 1], want[CAP + 1], again[CAP + 40], sid[33], mac[65];
    unsigned char wrapped[CAP * 2 + 16];
    size_t vn = 0, wn;
    unsigned round;

    while (vn < size && vn < CAP && data[vn] != 0)
        vn++;
    memcpy(value, data, vn);
    value[vn] = '\0';
    wn = size > vn + 1 ? size - vn - 1 : 0;
    wn = wn > CAP ? CAP : wn;
    if (wn > 0)
        memcpy(want, data + vn + 1, wn);
    want[wn] = '\0';
    wn = strlen(want);

    if (mcpd__mrtr_parse_state(value, sid, &round, mac)) {
        FUZZ_CHECK(hex(sid, 32) && hex(mac, 64));
        snprintf(again, sizeof(again), "%s.%u.%s", sid, round, mac);
        FUZZ_CHECK(strcmp(again, value) == 0);
    }

    {
        bool wrapper =
            vn >= 11 && strncmp(value, "=?base64?", 9) == 0 && strcmp(value + vn - 2, "?=") == 0;
        bool same = mcpd_session_header_is(value, want);
        if (!wrapper)
            FUZZ_CHECK(same == (strcmp(value, want) == 0));
    }

    {
        char *w = mcpd__mrtr_wrap("alice", "srv", 1, "tool", want), *u = NULL, *w2;
        FUZZ_CHECK(w != NULL);
        FUZZ_CHECK(mcpd__mrtr_unwrap("alice", "srv", 1, "tool", w, &u) == 0);
        FUZZ_CHECK(u != NULL && strcmp(u, want) == 0);
        free(u);
        FUZZ_CHECK(mcpd__mrtr_unwrap("bob", "srv", 1, "tool", w, &u) != 0 && u == NULL);
        FUZZ_CHECK(mcpd__mrtr_unwrap("alice", "srv", 2, "tool", w, &u) != 0 && u == NULL);
        free(w);
        if (mcpd__mrtr_unwrap("alice", "srv", 1, "tool", value, &u) == 0) {
            w2 = mcpd__mrtr_wrap("alice", "srv", 1, "tool", u);
            FUZZ_CHECK(w2 != NULL && strcmp(w2, value) == 0);
            free(w2);
            free(u);
        }
    }

    memcpy(wrapped, "=?base64?", 9);
    {
        int n = EVP_EncodeBlock(wrapped + 9, (const unsigned char *)want, (int)wn);
        memcpy(wrapped + 9 + n, "?=", 3);
        FUZZ_CHECK(mcpd_session_header_is((const char *)wrapped, want) || wn == 0);
    }
    return 0;
}
