/*
 * fuzz_agent_config.c - libFuzzer target for the agent program's
 * configuration reader (agent/config.c) and the file_ops path resolver
 * (agent/fileops.c).
 *
 * Input: an agent.yaml document. When it starts with '/', the bytes are
 * also given to the resolver as a path below the root "/srv/mcpd-fuzz".
 *
 * Invariants checked:
 *   - the reader returns 0, MCPD_ECONFIG or MCPD_ENOMEM; an error fills
 *     a one-line diagnostic starting with the file name;
 *   - a diagnostic never contains the value of agent_key ("agent_key: ak_...");
 *   - a parsed configuration has a ws:// or wss:// server_url, a key of
 *     the form ak_<48 hex>, valid group names and reconnect.min <= max;
 *   - a resolved path is the root or lies below it (segment-wise).
 */
#include <string.h>

#include "agent/config.h"
#include "agent/fileops.h"
#include "fuzz.h"
#include "mcpd/error.h"

static void check_resolve(const char *p, size_t n)
{
    static char root[] = "/srv/mcpd-fuzz";
    char *roots[] = { root };
    struct mcpd_agent_files f = { .roots = roots, .nroots = 1, .max_bytes = 1 };
    char out[8192], why[256];
    int rc = mcpd_agent_files_resolve(&f, p, n, out, sizeof(out), why, sizeof(why));

    if (rc >= 0) {
        size_t rl = strlen(root);
        FUZZ_CHECK(rc == 0);
        FUZZ_CHECK(strncmp(out, root, rl) == 0 && (out[rl] == '\0' || out[rl] == '/'));
        FUZZ_CHECK(strstr(out, "/../") == NULL && strstr(out, "//") == NULL);
    } else {
        FUZZ_CHECK(why[0] != '\0');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mcpd_agent_config *cfg = NULL;
    struct mcpd_diag d;
    const char *key;
    int rc;

    if (size > 65536)
        return 0;
    rc = mcpd_agent_config_parse(&cfg, "agent.yaml", (const char *)data, size, &d);
    FUZZ_CHECK(rc == 0 || rc == MCPD_ECONFIG || rc == MCPD_ENOMEM);
    if (rc != 0) {
        FUZZ_CHECK(cfg == NULL);
        FUZZ_CHECK(strncmp(d.msg, "agent.yaml", 10) == 0);
        FUZZ_CHECK(strchr(d.msg, '\n') == NULL || rc == MCPD_ECONFIG);
        /* the value of agent_key, if any, must not reach the message */
        key = memmem(data, size, "agent_key: ak_", 14);
        if (key && (size_t)((const char *)data + size - key) >= 11 + 51) {
            char k[52];
            memcpy(k, key + 11, 51);
            k[51] = '\0';
            /* (when it occurs elsewhere too, e.g. as a key name, it may be echoed as that) */
            const char *first = memmem(data, size, k, 51);
            const char *again =
                memmem(key + 12, size - (size_t)(key + 12 - (const char *)data), k, 51);
            if (strspn(k + 3, "0123456789abcdef") == 48 && first == key + 11 && again == NULL)
                FUZZ_CHECK(strstr(d.msg, k) == NULL);
        }
    } else {
        FUZZ_CHECK(strncmp(cfg->server_url, "ws://", 5) == 0 ||
                   strncmp(cfg->server_url, "wss://", 6) == 0);
        FUZZ_CHECK(strlen(cfg->agent_key) == 51 && strncmp(cfg->agent_key, "ak_", 3) == 0);
        FUZZ_CHECK(cfg->reconnect_min_ms <= cfg->reconnect_max_ms);
        for (size_t i = 0; i < cfg->nservers; i++)
            FUZZ_CHECK(mcpd_agent_group_is_valid(cfg->servers[i].name));
        mcpd_agent_config_free(cfg);
    }
    if (size > 0 && data[0] == '/')
        check_resolve((const char *)data, size);
    return 0;
}
