/* error.c - descriptions for mcpd's error codes; libuv's defer to uv_strerror(). */
#include "error.h"

#include <uv.h>

const char *mcpd_strerror(int err)
{
    switch (err) {
#define XX(name, code, msg) \
    case code:              \
        return msg;
        MCPD_ERRNO_MAP(XX)
#undef XX
    default:
        return uv_strerror(err);
    }
}
