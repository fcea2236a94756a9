/*
 * fuzz_audit_canon.c - libFuzzer target for the audit's canonical JSON
 * (mcpd__audit_canon in mcpd/audit_row.c), which must write exactly what
 * json_dumps(JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) writes: the
 * stored arguments and their digest depend on those bytes.
 *
 * Invariants checked, for every input that jansson parses:
 *   - the fast path writes the same bytes as jansson, or refuses (1) and
 *     leaves the buffer as it was;
 *   - a record element (mcpd__audit_row_json) holding that text as its
 *     arguments parses back to an array of 16 members whose "args" member
 *     is the same text;
 *   - the helper's block row spliced from that element written with an
 *     empty hash (the journal's) is the same bytes as the element written
 *     with the hash.
 */
#include <string.h>

#include "fuzz.h"
#include "mcpd/audit_int.h"
#include "mcpd/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    struct audit_val row[AC_NCOLS];
    struct mcpd_buf b, rec;
    char *want;
    json_t *back;
    int r;

    if (j == NULL)
        return 0;
    want = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    mcpd_buf_init(&b, (size_t)1 << 24);
    r = mcpd__audit_canon(&b, j);
    FUZZ_CHECK(r == 0 || r == 1);
    if (r == 1)
        FUZZ_CHECK(b.len == 0);
    else if (want != NULL)
        FUZZ_CHECK(b.len == strlen(want) && memcmp(b.p, want, b.len) == 0);
    if (r == 0 && b.len > 0) {
        memset(row, 0, sizeof(row));
        row[AC_KIND].p = "call";
        row[AC_KIND].len = 4;
        row[AC_ARGS].p = b.p;
        row[AC_ARGS].len = b.len;
        mcpd_buf_init(&rec, (size_t)1 << 26);
        FUZZ_CHECK(mcpd__audit_row_json(&rec, row, "h") == 0);
        back = json_loadb(rec.p, rec.len, JSON_ALLOW_NUL, NULL);
        FUZZ_CHECK(json_is_array(back) && json_array_size(back) == AC_NCOLS);
        FUZZ_CHECK(json_string_length(json_array_get(back, AC_ARGS - 1)) == b.len &&
                   memcmp(json_string_value(json_array_get(back, AC_ARGS - 1)), b.p, b.len) == 0);
        json_decref(back);
        {
            /* the helper's splice of the journal's row (empty hash) writes the same bytes */
            static const char hash[] =
                "00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff";
            struct audit_block spliced = { 0 }, written = { 0 };

            mcpd_buf_reset(&rec);
            mcpd_buf_init(&spliced.text, (size_t)1 << 26);
            mcpd_buf_init(&written.text, (size_t)1 << 26);
            FUZZ_CHECK(mcpd__audit_row_json(&rec, row, "") == 0);
            FUZZ_CHECK(mcpd__audit_block_add(&spliced, row, hash, rec.p, rec.len) == 0);
            FUZZ_CHECK(mcpd__audit_block_add(&written, row, hash, NULL, 0) == 0);
            FUZZ_CHECK(spliced.text.len == written.text.len &&
                       memcmp(spliced.text.p, written.text.p, written.text.len) == 0);
            mcpd_buf_dispose(&spliced.text);
            mcpd_buf_dispose(&written.text);
        }
        mcpd_buf_dispose(&rec);
    }
    mcpd_buf_dispose(&b);
    free(want);
    json_decref(j);
    return 0;
}
