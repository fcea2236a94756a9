/*
 * test_agent_shell.c - shell_exec of the agent program (agent/shell.c):
 * which commands are refused before anything runs (metacharacters,
 * command substitution, environment assignments, wrappers, relative
 * program paths, commands no pattern allows), token-wise matching of the
 * configured globs, and the runner on a real loop: output, exit code, the
 * output cap and the timeout (the whole process group is killed).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "agent/shell.h"
#include "mcpd/error.h"

static struct mcpd_agent_shell *make(const char *const *pats, size_t n)
{
    struct mcpd_agent_shell *sh = NULL;
    char why[256];
    assert_int_equal(mcpd_agent_shell_new(&sh, pats, n, why, sizeof(why)), 0);
    return sh;
}

/* 0 when allowed (argv checked against want, space-joined), else MCPD_EDENIED. */
static int check(const struct mcpd_agent_shell *sh, const char *cmd, const char *want, char *why)
{
    json_t *c = json_string(cmd);
    char **argv = NULL, joined[512] = "";
    int rc = mcpd_agent_shell_check(sh, c, &argv, why, 256);
    json_decref(c);
    if (rc == 0) {
        for (char **p = argv; *p; p++) {
            strncat(joined, *p, sizeof(joined) - strlen(joined) - 2);
            if (p[1])
                strncat(joined, " ", sizeof(joined) - strlen(joined) - 1);
        }
        if (want)
            assert_string_equal(joined, want);
        mcpd_agent_shell_argv_free(argv);
    } else {
        assert_null(argv);
    }
    return rc;
}

static void test_refusals(void **state)
{
    static const char *const pats[] = { "ls *", "ls", "git status", "echo **", "env" };
    struct mcpd_agent_shell *sh = make(pats, 5);
    char why[256];

    assert_int_equal(check(sh, "ls; rm -rf /", NULL, why), MCPD_EDENIED);
    assert_non_null(strstr(why, ";"));
    assert_int_equal(check(sh, "ls $(rm -rf /)", NULL, why), MCPD_EDENIED);
    assert_int_equal(check(sh, "ls `id`", NULL, why), MCPD_EDENIED);
    assert_int_equal(check(sh, "ls | sh", NULL, why), MCPD_EDENIED);
    assert_int_equal(check(sh, "ls && rm x", NULL, why), MCPD_EDENIED);
    assert_int_equal(check(sh, "ls > /etc/passwd", NULL, why), MCPD_EDENIED);
    assert_int_equal(check(sh, "ls\nrm -rf /", NULL, why), MCPD_EDENIED);
    assert_int_equal(check(sh, "ls '$HOME'", NULL, why), MCPD_EDENIED);
    assert_int_equal(check(sh, "echo ${PATH}", NULL, why), MCPD_EDENIED);
    /* environment assignments before the program */
    assert_int_equal(check(sh, "LD_PRELOAD=/tmp/x.so ls", NULL, why), MCPD_EDENIED);
    assert_int_equal(check(sh, "PATH=/tmp ls", NULL, why), MCPD_EDENIED);
    /* relative program paths never match */
    assert_int_equal(check(sh, "./ls", NULL, why), MCPD_EDENIED);
    /* not configured */
    assert_int_equal(check(sh, "rm -rf /", NULL, why), MCPD_EDENIED);
    assert_int_equal(check(sh, "git push", NULL, why), MCPD_EDENIED);
    assert_int_equal(check(sh, "", NULL, why), MCPD_EDENIED);
    /* not a string */
    {
        json_t *arr = json_pack("[s,s]", "ls", "-l");
        char **argv = NULL;
        assert_int_equal(mcpd_agent_shell_check(sh, arr, &argv, why, sizeof(why)), MCPD_EDENIED);
        json_decref(arr);
        assert_int_equal(mcpd_agent_shell_check(sh, NULL, &argv, why, sizeof(why)), MCPD_EDENIED);
    }
    mcpd_agent_shell_free(sh);
}

static void test_matching(void **state)
{
    static const char *const pats[] = { "ls *", "ls", "git status", "echo **" };
    struct mcpd_agent_shell *sh = make(pats, 4);
    char why[256];

    assert_int_equal(check(sh, "ls", "ls", why), 0);
    assert_int_equal(check(sh, "ls /tmp", "ls /tmp", why), 0);
    assert_int_equal(check(sh, "git status", "git status", why), 0);
    assert_int_equal(check(sh, "echo a b c", "echo a b c", why), 0);
    /* '*' is one token that is not a flag */
    assert_int_equal(check(sh, "ls -la", NULL, why), MCPD_EDENIED);
    assert_int_equal(check(sh, "ls /tmp /etc", NULL, why), MCPD_EDENIED);
    assert_int_equal(check(sh, "git status --porcelain", NULL, why), MCPD_EDENIED);
    mcpd_agent_shell_free(sh);

    /* no patterns: nothing runs */
    sh = make(NULL, 0);
    assert_int_equal(check(sh, "ls", NULL, why), MCPD_EDENIED);
    mcpd_agent_shell_free(sh);
    /* a wrapper program is refused unless named literally */
    {
        static const char *const any[] = { "* **" };
        sh = make(any, 1);
        assert_int_equal(check(sh, "sh -c id", NULL, why), MCPD_EDENIED);
        assert_int_equal(check(sh, "env ls", NULL, why), MCPD_EDENIED);
        assert_int_equal(check(sh, "sudo id", NULL, why), MCPD_EDENIED);
        mcpd_agent_shell_free(sh);
    }
    {
        static const char *const bad[] = { "ls; rm" };
        struct mcpd_agent_shell *x = NULL;
        assert_int_equal(mcpd_agent_shell_new(&x, bad, 1, why, sizeof(why)), MCPD_ECONFIG);
        assert_null(x);
    }
}

/* ---- the runner ------------------------------------------------------------------------------ */

struct outcome {
    json_t *result;
    int calls;
};

static void on_done(struct mcpd_agent_shell_run *run, json_t *result, void *data)
{
    struct outcome *o = data;
    o->result = result;
    o->calls++;
}

static json_t *run_cmd(const char *const *argv_in, unsigned timeout, size_t cap, uint64_t *ms)
{
    static struct outcome o;
    struct mcpd_agent_shell_run *run;
    uv_loop_t loop;
    uint64_t t0;
    char *argv[8];
    size_t i;

    for (i = 0; argv_in[i]; i++)
        argv[i] = (char *)argv_in[i];
    argv[i] = NULL;
    memset(&o, 0, sizeof(o));
    uv_loop_init(&loop);
    uv_update_time(&loop);
    t0 = uv_now(&loop);
    assert_int_equal(mcpd_agent_shell_run(&run, &loop, argv, timeout, cap, on_done, &o), 0);
    assert_int_equal(o.calls, 0); /* never synchronously */
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_update_time(&loop);
    *ms = uv_now(&loop) - t0;
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(o.calls, 1);
    return o.result;
}

static const char *text_of(json_t *r)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(r, "content"), 0), "text"));
}

static void test_run_output(void **state)
{
    static const char *const argv[] = { "echo", "hello", NULL };
    uint64_t ms;
    json_t *r = run_cmd(argv, 5000, 1024, &ms);

    assert_non_null(strstr(text_of(r), "hello\n"));
    assert_non_null(strstr(text_of(r), "[exit code 0]"));
    assert_false(json_is_true(json_object_get(r, "isError")));
    json_decref(r);
    {
        static const char *const fail[] = { "ls", "/nonexistent-mcpd-test", NULL };
        r = run_cmd(fail, 5000, 1024, &ms);
        assert_true(json_is_true(json_object_get(r, "isError")));
        assert_non_null(strstr(text_of(r), "No such file")); /* stderr is kept */
        json_decref(r);
    }
}

static void test_run_timeout(void **state)
{
    /* sh only to make a grandchild that keeps the pipe: the group must die with it */
    static const char *const argv[] = { "sh", "-c", "sleep 30 & sleep 30", NULL };
    uint64_t ms;
    json_t *r = run_cmd(argv, 300, 1024, &ms);

    assert_true(ms < 5000);
    assert_true(
        json_is_true(json_object_get(json_object_get(r, "structuredContent"), "timed_out")));
    assert_true(json_is_true(json_object_get(r, "isError")));
    assert_non_null(strstr(text_of(r), "killed after 300 ms"));
    json_decref(r);
}

static void test_run_cap(void **state)
{
    static const char *const argv[] = { "yes", NULL };
    uint64_t ms;
    json_t *r = run_cmd(argv, 10000, 4096, &ms);
    const char *t = text_of(r);

    assert_true(ms < 5000);
    assert_true(
        json_is_true(json_object_get(json_object_get(r, "structuredContent"), "truncated")));
    assert_non_null(strstr(t, "[output truncated at 4096 bytes]"));
    assert_true(strlen(t) < 4096 + 200);
    json_decref(r);
}

static void test_run_missing_program(void **state)
{
    struct mcpd_agent_shell_run *run = NULL;
    struct outcome o = { 0 };
    char *argv[] = { "/nonexistent/mcpd-no-such-program", NULL };
    uv_loop_t loop;

    uv_loop_init(&loop);
    assert_true(mcpd_agent_shell_run(&run, &loop, argv, 1000, 100, on_done, &o) < 0);
    assert_null(run);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(o.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),   cmocka_unit_test(test_matching),
        cmocka_unit_test(test_run_output), cmocka_unit_test(test_run_timeout),
        cmocka_unit_test(test_run_cap),    cmocka_unit_test(test_run_missing_program),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
