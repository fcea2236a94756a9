/*
 * test_buf.c - unit tests of the capped buffer (mcpd/buf.c) and the hash
 * map (mcpd/map.c).
 *
 * The buffer contract under test: an append past the cap returns
 * MCPD_ETOOBIG and leaves contents, length and NUL terminator untouched;
 * storage never exceeds max + 1 bytes. The map is exercised with 10,000
 * byte-string keys and 10,000 u64 keys through growth, replacement and
 * deletion.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs these four first. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "mcpd/buf.h"
#include "mcpd/error.h"
#include "mcpd/map.h"

#define NKEYS 10000

/* ---- mcpd_buf ------------------------------------------------------------------------------- */

static void test_buf_cap(void **state)
{
    struct mcpd_buf b;

    mcpd_buf_init(&b, 10);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.max, 10);

    assert_int_equal(mcpd_buf_append(&b, "hello", 5), 0);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.p, "hello");

    /* one byte too many: refused, nothing changes */
    assert_int_equal(mcpd_buf_append(&b, "world!", 6), MCPD_ETOOBIG);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.p, "hello");

    /* exactly up to the cap */
    assert_int_equal(mcpd_buf_append(&b, "world", 5), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.p, "helloworld");
    assert_true(b.alloc <= 11);

    assert_int_equal(mcpd_buf_append(&b, "", 0), 0);
    assert_int_equal(mcpd_buf_append(&b, "x", 1), MCPD_ETOOBIG);
    assert_int_equal(mcpd_buf_reserve(&b, 1), MCPD_ETOOBIG);
    assert_int_equal(b.len, 10);
    assert_string_equal(b.p, "helloworld");
    mcpd_buf_dispose(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
}

static void test_buf_zero_cap(void **state)
{
    struct mcpd_buf b;

    mcpd_buf_init(&b, 0);
    assert_int_equal(mcpd_buf_append(&b, "", 0), 0);
    assert_non_null(b.p);
    assert_string_equal(b.p, "");
    assert_int_equal(mcpd_buf_append(&b, "a", 1), MCPD_ETOOBIG);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.p, "");
    mcpd_buf_dispose(&b);
}

static void test_buf_growth(void **state)
{
    struct mcpd_buf b;
    char chunk[1000];

    memset(chunk, 'z', sizeof(chunk));
    mcpd_buf_init(&b, 1024 * 1024);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(mcpd_buf_append(&b, chunk, sizeof(chunk)), 0);
    assert_int_equal(b.len, 1000000);
    assert_int_equal(b.p[b.len], '\0');
    assert_true(b.alloc <= b.max + 1);
    assert_true(b.alloc >= b.len + 1);

    /* 1048576 - 1000000 = 48576 bytes left */
    assert_int_equal(mcpd_buf_reserve(&b, 48577), MCPD_ETOOBIG);
    assert_int_equal(mcpd_buf_reserve(&b, 48576), 0);
    assert_int_equal(b.alloc, 1024 * 1024 + 1);
    assert_int_equal(b.len, 1000000);
    for (size_t i = 0; i < b.len; i++)
        if (b.p[i] != 'z')
            fail_msg("byte %zu changed", i);
    mcpd_buf_dispose(&b);
}

static void test_buf_reset_keeps_storage(void **state)
{
    struct mcpd_buf b;
    char *p;
    size_t alloc;

    mcpd_buf_init(&b, 100);
    assert_int_equal(mcpd_buf_append(&b, "abc", 3), 0);
    p = b.p;
    alloc = b.alloc;
    mcpd_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_ptr_equal(b.p, p);
    assert_int_equal(b.alloc, alloc);
    assert_string_equal(b.p, "");
    assert_int_equal(mcpd_buf_append(&b, "de", 2), 0);
    assert_string_equal(b.p, "de");
    mcpd_buf_dispose(&b);

    /* reset of a buffer that never allocated */
    mcpd_buf_init(&b, 100);
    mcpd_buf_reset(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
}

static void test_buf_appendf(void **state)
{
    struct mcpd_buf b;

    mcpd_buf_init(&b, 16);
    assert_int_equal(mcpd_buf_appendf(&b, "%d-%s", 42, "ab"), 0);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.p, "42-ab");

    assert_int_equal(mcpd_buf_appendf(&b, "%s", ""), 0);
    assert_int_equal(b.len, 5);

    /* 5 + 12 = 17 > 16: refused, unchanged */
    assert_int_equal(mcpd_buf_appendf(&b, "%012d", 7), MCPD_ETOOBIG);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.p, "42-ab");

    /* 5 + 11 = 16: fits exactly */
    assert_int_equal(mcpd_buf_appendf(&b, "%011u", 7u), 0);
    assert_int_equal(b.len, 16);
    assert_string_equal(b.p, "42-ab00000000007");
    assert_true(b.alloc <= 17);
    assert_int_equal(mcpd_buf_appendf(&b, "%c", 'x'), MCPD_ETOOBIG);
    assert_string_equal(b.p, "42-ab00000000007");
    mcpd_buf_dispose(&b);

    /* appendf after append, with a long formatted string that forces growth */
    mcpd_buf_init(&b, 4096);
    assert_int_equal(mcpd_buf_append(&b, "[", 1), 0);
    assert_int_equal(mcpd_buf_appendf(&b, "%0300d]", 1), 0);
    assert_int_equal(b.len, 302);
    assert_int_equal(b.p[0], '[');
    assert_int_equal(b.p[300], '1');
    assert_int_equal(b.p[301], ']');
    assert_int_equal(b.p[302], '\0');
    mcpd_buf_dispose(&b);
}

static void test_buf_consume(void **state)
{
    struct mcpd_buf b;

    mcpd_buf_init(&b, 64);
    assert_int_equal(mcpd_buf_append(&b, "abcdef", 6), 0);
    mcpd_buf_consume(&b, 0);
    assert_string_equal(b.p, "abcdef");
    assert_int_equal(b.len, 6);
    mcpd_buf_consume(&b, 2);
    assert_string_equal(b.p, "cdef");
    assert_int_equal(b.len, 4);
    mcpd_buf_consume(&b, 3);
    assert_string_equal(b.p, "f");
    assert_int_equal(b.len, 1);
    mcpd_buf_consume(&b, 1);
    assert_string_equal(b.p, "");
    assert_int_equal(b.len, 0);

    assert_int_equal(mcpd_buf_append(&b, "xyz", 3), 0);
    mcpd_buf_consume(&b, 100); /* more than held: empties */
    assert_int_equal(b.len, 0);
    assert_string_equal(b.p, "");

    /* after consuming, the freed room is usable up to the cap again */
    for (int i = 0; i < 64; i++)
        assert_int_equal(mcpd_buf_append(&b, "q", 1), 0);
    assert_int_equal(mcpd_buf_append(&b, "q", 1), MCPD_ETOOBIG);
    mcpd_buf_consume(&b, 60);
    assert_int_equal(b.len, 4);
    assert_int_equal(mcpd_buf_append(&b, "0123456789", 10), 0);
    assert_string_equal(b.p, "qqqq0123456789");
    mcpd_buf_dispose(&b);

    /* consume on a buffer that never allocated */
    mcpd_buf_init(&b, 8);
    mcpd_buf_consume(&b, 3);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
}

static void test_buf_steal(void **state)
{
    struct mcpd_buf b;
    size_t len = 99;
    char *p;

    mcpd_buf_init(&b, 32);
    p = mcpd_buf_steal(&b, &len);
    assert_null(p);
    assert_int_equal(len, 0);

    assert_int_equal(mcpd_buf_append(&b, "stolen", 6), 0);
    p = mcpd_buf_steal(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 6);
    assert_string_equal(p, "stolen");
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.alloc, 0);
    assert_int_equal(b.max, 32);

    /* the buffer is reusable and independent of the stolen storage */
    assert_int_equal(mcpd_buf_append(&b, "again", 5), 0);
    assert_string_equal(b.p, "again");
    assert_string_equal(p, "stolen");
    free(p);

    p = mcpd_buf_steal(&b, NULL);
    assert_string_equal(p, "again");
    free(p);
    mcpd_buf_dispose(&b);
}

/* ---- mcpd_map ------------------------------------------------------------------------------- */

static void *val(size_t i)
{
    return (void *)(uintptr_t)(i + 1);
}

static void count_cb(void *value, void *arg)
{
    size_t *sum = arg;
    sum[0]++;
    sum[1] += (size_t)(uintptr_t)value;
}

static void test_map_strings(void **state)
{
    struct mcpd_map m;
    char key[32];
    size_t sum[2] = { 0, 0 };

    mcpd_map_init(&m);
    assert_null(mcpd_map_get(&m, "nothing", 7));
    assert_null(mcpd_map_del(&m, "nothing", 7));

    for (size_t i = 0; i < NKEYS; i++) {
        int n = snprintf(key, sizeof(key), "key-%zu", i);
        assert_int_equal(mcpd_map_put(&m, key, (size_t)n, val(i)), 0);
    }
    assert_int_equal(m.count, NKEYS);
    assert_true(m.nbuckets >= m.count);
    assert_int_equal(m.nbuckets & (m.nbuckets - 1), 0); /* power of two */

    for (size_t i = 0; i < NKEYS; i++) {
        int n = snprintf(key, sizeof(key), "key-%zu", i);
        assert_ptr_equal(mcpd_map_get(&m, key, (size_t)n), val(i));
    }
    assert_null(mcpd_map_get(&m, "key-10000", 9));
    assert_null(mcpd_map_get(&m, "key-1", 4)); /* a prefix of a key is another key */

    mcpd_map_foreach(&m, count_cb, sum);
    assert_int_equal(sum[0], NKEYS);
    assert_int_equal(sum[1], (size_t)NKEYS * (NKEYS + 1) / 2);

    /* replace keeps the count */
    assert_int_equal(mcpd_map_put(&m, "key-7", 5, val(700000)), 0);
    assert_int_equal(m.count, NKEYS);
    assert_ptr_equal(mcpd_map_get(&m, "key-7", 5), val(700000));

    /* delete the even keys */
    for (size_t i = 0; i < NKEYS; i += 2) {
        int n = snprintf(key, sizeof(key), "key-%zu", i);
        void *want = i == 7 ? val(700000) : val(i);
        assert_ptr_equal(mcpd_map_del(&m, key, (size_t)n), want);
    }
    assert_int_equal(m.count, NKEYS / 2);
    for (size_t i = 0; i < NKEYS; i++) {
        int n = snprintf(key, sizeof(key), "key-%zu", i);
        void *got = mcpd_map_get(&m, key, (size_t)n);
        if (i % 2 == 0)
            assert_null(got);
        else
            assert_ptr_equal(got, i == 7 ? val(700000) : val(i));
    }
    assert_null(mcpd_map_del(&m, "key-0", 5)); /* already gone */
    assert_int_equal(m.count, NKEYS / 2);

    /* put after delete */
    assert_int_equal(mcpd_map_put(&m, "key-0", 5, val(0)), 0);
    assert_ptr_equal(mcpd_map_get(&m, "key-0", 5), val(0));
    assert_int_equal(m.count, NKEYS / 2 + 1);

    mcpd_map_dispose(&m);
    assert_int_equal(m.count, 0);
    assert_int_equal(m.nbuckets, 0);
    assert_null(mcpd_map_get(&m, "key-1", 5));

    /* usable again after dispose */
    assert_int_equal(mcpd_map_put(&m, "again", 5, val(1)), 0);
    assert_ptr_equal(mcpd_map_get(&m, "again", 5), val(1));
    mcpd_map_dispose(&m);
}

static void test_map_binary_keys(void **state)
{
    struct mcpd_map m;

    mcpd_map_init(&m);
    /* keys are byte strings: embedded NULs and lengths matter */
    assert_int_equal(mcpd_map_put(&m, "ab", 2, val(1)), 0);
    assert_int_equal(mcpd_map_put(&m, "ab\0", 3, val(2)), 0);
    assert_int_equal(mcpd_map_put(&m, "ab\0c", 4, val(3)), 0);
    assert_int_equal(mcpd_map_put(&m, "", 0, val(4)), 0);
    assert_int_equal(m.count, 4);
    assert_ptr_equal(mcpd_map_get(&m, "ab", 2), val(1));
    assert_ptr_equal(mcpd_map_get(&m, "ab\0", 3), val(2));
    assert_ptr_equal(mcpd_map_get(&m, "ab\0c", 4), val(3));
    assert_ptr_equal(mcpd_map_get(&m, "", 0), val(4));
    assert_null(mcpd_map_get(&m, "ab\0d", 4));
    assert_ptr_equal(mcpd_map_del(&m, "", 0), val(4));
    assert_null(mcpd_map_get(&m, "", 0));
    assert_int_equal(m.count, 3);
    mcpd_map_dispose(&m);
}

static void test_map_u64(void **state)
{
    struct mcpd_map m;
    const uint64_t special[] = {
        0, 1, UINT64_MAX, UINT64_MAX - 1, (uint64_t)1 << 32, (uint64_t)1 << 63
    };
    const size_t nspecial = sizeof(special) / sizeof(special[0]);

    mcpd_map_init(&m);
    assert_null(mcpd_map_get_u64(&m, 0));
    assert_null(mcpd_map_del_u64(&m, 0));
    /* keys spread over the high bits, so that a weak hash would cluster them */
    for (size_t i = 0; i < NKEYS; i++)
        assert_int_equal(mcpd_map_put_u64(&m, ((uint64_t)i << 32) | 0x5u, val(i)), 0);
    for (size_t i = 0; i < nspecial; i++)
        assert_int_equal(mcpd_map_put_u64(&m, special[i], val(NKEYS + i)), 0);
    assert_int_equal(m.count, NKEYS + nspecial);

    for (size_t i = 0; i < NKEYS; i++)
        assert_ptr_equal(mcpd_map_get_u64(&m, ((uint64_t)i << 32) | 0x5u), val(i));
    for (size_t i = 0; i < nspecial; i++)
        assert_ptr_equal(mcpd_map_get_u64(&m, special[i]), val(NKEYS + i));
    assert_null(mcpd_map_get_u64(&m, 2));
    assert_null(mcpd_map_get_u64(&m, ((uint64_t)NKEYS << 32) | 0x5u));

    for (size_t i = 0; i < NKEYS; i++)
        assert_ptr_equal(mcpd_map_del_u64(&m, ((uint64_t)i << 32) | 0x5u), val(i));
    assert_int_equal(m.count, nspecial);
    for (size_t i = 0; i < nspecial; i++)
        assert_ptr_equal(mcpd_map_get_u64(&m, special[i]), val(NKEYS + i));
    assert_ptr_equal(mcpd_map_del_u64(&m, UINT64_MAX), val(NKEYS + 2));
    assert_null(mcpd_map_del_u64(&m, UINT64_MAX));
    assert_int_equal(m.count, nspecial - 1);

    /* a sequential id pattern, as the router uses */
    for (uint64_t id = 1; id <= NKEYS; id++)
        assert_int_equal(mcpd_map_put_u64(&m, id + 1000000, val((size_t)id)), 0);
    for (uint64_t id = 1; id <= NKEYS; id++)
        assert_ptr_equal(mcpd_map_get_u64(&m, id + 1000000), val((size_t)id));
    mcpd_map_dispose(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_cap),         cmocka_unit_test(test_buf_zero_cap),
        cmocka_unit_test(test_buf_growth),      cmocka_unit_test(test_buf_reset_keeps_storage),
        cmocka_unit_test(test_buf_appendf),     cmocka_unit_test(test_buf_consume),
        cmocka_unit_test(test_buf_steal),       cmocka_unit_test(test_map_strings),
        cmocka_unit_test(test_map_binary_keys), cmocka_unit_test(test_map_u64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
