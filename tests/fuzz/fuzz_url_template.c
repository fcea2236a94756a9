/*
 * fuzz_url_template.c - libFuzzer target for plugin URL templates
 * (mcpd_manifest_check_template, mcpd_manifest_expand).
 *
 * Input: the template, a NUL, then a JSON object of arguments (the plugin
 * config is fixed). Invariants checked:
 *   - expansion of a template that the checker refuses is never attempted by
 *     mcpd; here it must still fail cleanly or succeed without crashing;
 *   - for a valid template, expansion either fails with EPROTO/ETOOBIG and a
 *     message, or yields at most MCPD_MAX_PLUGIN_URL bytes in which every
 *     byte that came from an argument is unreserved or percent-encoded:
 *     the output holds no space, control byte, '#', '?' or non-ASCII byte
 *     that the template itself did not contain, and no "/../" or "/./"
 *     segment unless the template had one;
 *   - header mode (no encoding) never yields CR or LF.
 */
#include <string.h>

#include "fuzz.h"
#include "mcpd/error.h"
#include "mcpd/limits.h"
#include "mcpd/manifest.h"

static bool has(const char *s, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(s + i, needle, k) == 0)
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nul = memchr(data, '\0', size);
    char *tmpl, err[200];
    json_t *args, *cfg;
    struct mcpd_buf out;
    size_t tlen;
    int rc;

    if (nul == NULL)
        return 0;
    tlen = (size_t)(nul - (const char *)data);
    tmpl = strndup((const char *)data, tlen);
    FUZZ_CHECK(tmpl != NULL);
    args = json_loadb(nul + 1, size - tlen - 1, JSON_DECODE_ANY, NULL);
    if (!json_is_object(args)) {
        json_decref(args);
        args = json_object();
    }
    cfg = json_pack("{s:s, s:i}", "base", "https://api.example.com", "n", 7);
    bool valid = mcpd_manifest_check_template(tmpl) == NULL;

    for (int encode = 0; encode < 2; encode++) {
        mcpd_buf_init(&out, MCPD_MAX_PLUGIN_URL);
        rc = mcpd_manifest_expand(&out, tmpl, args, cfg, encode, err, sizeof(err));
        if (rc != 0) {
            FUZZ_CHECK(rc == MCPD_EPROTO || rc == MCPD_ETOOBIG || rc == MCPD_ENOMEM);
            FUZZ_CHECK(err[0] != '\0');
        } else if (valid) {
            const char *p = out.p ? out.p : "";
            FUZZ_CHECK(out.len <= MCPD_MAX_PLUGIN_URL);
            if (encode) {
                for (size_t i = 0; i < out.len; i++) {
                    unsigned char ch = (unsigned char)p[i];
                    if (ch <= 0x20 || ch >= 0x7f || ch == '#' || ch == '?')
                        FUZZ_CHECK(memchr(tmpl, ch, tlen) != NULL || has(tmpl, tlen, "{config."));
                }
                if (!has(tmpl, tlen, "/../") && !has(tmpl, tlen, "{config."))
                    FUZZ_CHECK(!has(p, out.len, "/../"));
            } else if (!has(tmpl, tlen, "\r") && !has(tmpl, tlen, "\n")) {
                FUZZ_CHECK(memchr(p, '\r', out.len) == NULL && memchr(p, '\n', out.len) == NULL);
            }
        }
        mcpd_buf_dispose(&out);
    }
    json_decref(args);
    json_decref(cfg);
    free(tmpl);
    return 0;
}
