/*
 * net_missing.c - placeholders used only while mcpd/net/ws.c and tls.c are
 * absent from the tree (see agent/CMakeLists.txt): every dial fails.
 */
#include <stddef.h>

#include "mcpd/error.h"
#include "mcpd/net/tls.h"
#include "mcpd/net/ws.h"

int mcpd_ws_connect(struct mcpd_ws **out, uv_loop_t *loop, const char *url,
                    const char *const *headers, size_t nheaders, struct mcpd_tls_ctx *tls,
                    const struct mcpd_ws_callbacks *cb, void *data, size_t max_message,
                    unsigned timeout_ms)
{
    *out = NULL;
    return MCPD_EUNAVAIL;
}

int mcpd_ws_send_text(struct mcpd_ws *ws, const char *msg, size_t len)
{
    return MCPD_ECLOSED;
}

void mcpd_ws_close(struct mcpd_ws *ws, uint16_t code, const char *reason)
{
}

const char *mcpd_ws_peer(const struct mcpd_ws *ws)
{
    return "";
}

int mcpd_tls_client_ctx_new(struct mcpd_tls_ctx **out, const char *ca_file, bool verify, char *err,
                            size_t errcap)
{
    *out = NULL;
    return 0;
}

void mcpd_tls_ctx_free(struct mcpd_tls_ctx *ctx)
{
}
