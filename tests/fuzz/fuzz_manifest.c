/*
 * fuzz_manifest.c - libFuzzer target for the plugin manifest parser
 * (mcpd/manifest.c over the configuration reader's YAML helpers).
 *
 * Invariants checked: the parser either accepts (and then the manifest is
 * complete: a valid name, a version, operations or exec but not both, every
 * operation with a method, a valid URL template and an object input
 * schema) or refuses with a one-line message naming the input; it never
 * crashes, leaks or reads past the input.
 */
#include <string.h>

#include "fuzz.h"
#include "mcpd/error.h"
#include "mcpd/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mcpd_manifest *m = NULL;
    struct mcpd_diag d;
    int rc = mcpd_manifest_parse(&m, "f.yaml", (const char *)data, size, &d);

    if (rc != 0) {
        FUZZ_CHECK(m == NULL);
        FUZZ_CHECK(rc == MCPD_ECONFIG || rc == MCPD_ENOMEM);
        FUZZ_CHECK(strncmp(d.msg, "f.yaml", 6) == 0);
        FUZZ_CHECK(strchr(d.msg, '\n') == NULL);
        return 0;
    }
    FUZZ_CHECK(m != NULL);
    FUZZ_CHECK(mcpd_config_is_valid_name(m->name));
    FUZZ_CHECK(m->version != NULL);
    FUZZ_CHECK((m->nops > 0) != (m->exec_command != NULL));
    for (size_t i = 0; i < m->nops; i++) {
        const struct mcpd_manifest_op *op = &m->ops[i];
        FUZZ_CHECK(op->method && op->url);
        FUZZ_CHECK(mcpd_manifest_check_template(op->url) == NULL);
        FUZZ_CHECK(json_is_object(op->input));
        FUZZ_CHECK(mcpd_manifest_find_op(m, op->name) != NULL);
    }
    mcpd_manifest_free(m);
    return 0;
}
