/*
 * fuzz_ws_handshake.c - libFuzzer target for the WebSocket client's
 * upgrade-response parser (mcpd_ws_handshake_*: llhttp in response mode
 * over a capped header buffer, then the 101 checks).
 *
 * Input: one flags byte (bits 0-2: slice size as in fuzz_http), then the
 * server's bytes. The Sec-WebSocket-Key is RFC 6455's sample, so a valid
 * answer carries Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=.
 */
#include <string.h>

#include "../../mcpd/error.h"
#include "../../mcpd/limits.h"
#include "../../mcpd/net/ws.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t slices[] = { 0, 1, 2, 3, 7, 16, 64, 512 };
    struct mcpd_ws_handshake *h;
    size_t slice, off, fed = 0;
    int r = 0;

    if (size == 0)
        return 0;
    slice = slices[data[0] & 7] ? slices[data[0] & 7] : size;
    data++;
    size--;
    FUZZ_CHECK(mcpd_ws_handshake_new(&h, "dGhlIHNhbXBsZSBub25jZQ==") == 0);
    for (off = 0; off < size && r == 0; off += slice) {
        size_t n = size - off < slice ? size - off : slice, used = 0;
        r = mcpd_ws_handshake_feed(h, (const char *)data + off, n, &used);
        FUZZ_CHECK(used <= n);
        FUZZ_CHECK(r == 0 || r == 1 || r == MCPD_EPROTO || r == MCPD_ETOOBIG);
        if (r == 0)
            FUZZ_CHECK(used == n);
        fed += used;
        /* the head is bounded: no verdict is ever postponed past the cap */
        FUZZ_CHECK(r != 0 || fed <= MCPD_WS_MAX_HANDSHAKE);
    }
    if (r == 1) {
        FUZZ_CHECK(mcpd_ws_handshake_status(h) == 101);
        FUZZ_CHECK(memmem(data, fed, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28) != NULL);
    }
    if (r != 0)
        FUZZ_CHECK(strlen(mcpd_ws_handshake_error(h)) > 0);
    mcpd_ws_handshake_free(h);
    return 0;
}
