/*
 * test_env.c - child environments never carry mcpd's secrets (mcpd/env.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mcpd/config.h"
#include "mcpd/env.h"

static const char *find(char **env, const char *name)
{
    size_t l = strlen(name);
    for (size_t i = 0; env[i]; i++)
        if (strncmp(env[i], name, l) == 0 && env[i][l] == '=')
            return env[i] + l + 1;
    return NULL;
}

static void test_secrets_dropped(void **state)
{
    (void)state;
    setenv("MCPD_MASTER_KEY", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
           1);
    setenv("MCPD_AGENT_KEY", "ak_0123", 1);
    setenv("MCPD_TEST_KEEP", "kept", 1);
    char **env = mcpd_env_child(NULL, 0);
    assert_non_null(env);
    assert_null(find(env, "MCPD_MASTER_KEY"));
    assert_null(find(env, "MCPD_AGENT_KEY"));
    assert_string_equal(find(env, "MCPD_TEST_KEEP"), "kept");
    mcpd_env_free(env);
    assert_true(mcpd_env_is_secret("MCPD_MASTER_KEY=x"));
    assert_false(mcpd_env_is_secret("MCPD_MASTER_KEYS=x"));
    assert_false(mcpd_env_is_secret("MCPD_MASTER_KEY"));
}

static void test_configured_win(void **state)
{
    (void)state;
    setenv("MCPD_TEST_OVER", "old", 1);
    struct mcpd_kv set[] = { { .key = "MCPD_TEST_OVER", .value = "new" },
                             { .key = "MCPD_TEST_ADDED", .value = "a=b" } };
    char **env = mcpd_env_child(set, 2);
    size_t seen = 0;
    assert_non_null(env);
    for (size_t i = 0; env[i]; i++)
        if (strncmp(env[i], "MCPD_TEST_OVER=", 15) == 0)
            seen++;
    assert_int_equal(seen, 1);
    assert_string_equal(find(env, "MCPD_TEST_OVER"), "new");
    assert_string_equal(find(env, "MCPD_TEST_ADDED"), "a=b");
    mcpd_env_free(env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secrets_dropped),
        cmocka_unit_test(test_configured_win),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
