/*
 * test_agent_files.c - file_ops containment of the agent program
 * (agent/fileops.c) on a real directory tree under a fresh temporary
 * directory: traversal with "..", symbolic links pointing out of the root
 * (as a directory component and as the final component, for read, write
 * and list), NUL bytes, relative paths, sibling-prefix roots, the size cap,
 * and the agent configuration's file checks (mode, unknown keys, roots).
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "agent/config.h"
#include "agent/fileops.h"
#include "mcpd/error.h"

static char base[PATH_MAX], root[PATH_MAX + 8], outside[PATH_MAX + 16];

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void rm_rf(const char *p)
{
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    char tmpl[] = "/tmp/mcpd-agent-files-XXXXXX", p[PATH_MAX + 64];
    assert_non_null(mkdtemp(tmpl));
    assert_non_null(realpath(tmpl, base));
    snprintf(root, sizeof(root), "%s/root", base);
    snprintf(outside, sizeof(outside), "%s/rootx", base); /* a sibling sharing the prefix */
    assert_int_equal(mkdir(root, 0700), 0);
    assert_int_equal(mkdir(outside, 0700), 0);
    snprintf(p, sizeof(p), "%s/secret.txt", outside);
    put(p, "secret");
    snprintf(p, sizeof(p), "%s/sub", root);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/sub/hello.txt", root);
    put(p, "hello world\n");
    snprintf(p, sizeof(p), "%s/esc", root); /* directory link out of the root */
    assert_int_equal(symlink(outside, p), 0);
    snprintf(p, sizeof(p), "%s/esc.txt", root); /* file link out of the root */
    char target[PATH_MAX + 32];
    snprintf(target, sizeof(target), "%s/secret.txt", outside);
    assert_int_equal(symlink(target, p), 0);
    snprintf(p, sizeof(p), "%s/inside.txt", root); /* link that stays inside */
    snprintf(target, sizeof(target), "%s/sub/hello.txt", root);
    assert_int_equal(symlink(target, p), 0);
    *state = NULL;
    return 0;
}

static int teardown(void **state)
{
    rm_rf(base);
    return 0;
}

static struct mcpd_agent_files files(size_t max)
{
    static char *roots[1];
    roots[0] = root;
    return (struct mcpd_agent_files){ .roots = roots, .nroots = 1, .max_bytes = max };
}

static int read_at(const char *a, const char *b, char **data, char *why)
{
    char p[PATH_MAX + 128];
    size_t len;
    struct mcpd_agent_files f = files(1024);
    snprintf(p, sizeof(p), "%s%s", a, b);
    *data = NULL;
    return mcpd_agent_files_read(&f, p, strlen(p), data, &len, why, 512);
}

static void test_read_inside(void **state)
{
    char why[512], *data;
    assert_int_equal(read_at(root, "/sub/hello.txt", &data, why), 0);
    assert_string_equal(data, "hello world\n");
    free(data);
    /* "." and ".." that stay inside are fine */
    assert_int_equal(read_at(root, "/sub/../sub/./hello.txt", &data, why), 0);
    free(data);
    /* a link whose target is inside the root is followed by realpath, then opened without links */
    assert_int_equal(read_at(root, "/inside.txt", &data, why), 0);
    assert_string_equal(data, "hello world\n");
    free(data);
}

static void test_traversal(void **state)
{
    char why[512], *data;
    assert_int_equal(read_at(root, "/../rootx/secret.txt", &data, why), MCPD_EDENIED);
    assert_non_null(strstr(why, "outside the allowed roots"));
    assert_null(data);
    assert_int_equal(read_at(root, "/sub/../../rootx/secret.txt", &data, why), MCPD_EDENIED);
    assert_int_equal(read_at(root, "/../../../../etc/passwd", &data, why), MCPD_EDENIED);
    assert_int_equal(read_at("/etc/passwd", "", &data, why), MCPD_EDENIED);
    /* a sibling directory whose name starts with the root's is not inside it */
    assert_int_equal(read_at(outside, "/secret.txt", &data, why), MCPD_EDENIED);
    /* percent-encoded dots are refused, not decoded */
    assert_int_equal(read_at(root, "/%2e%2e/rootx/secret.txt", &data, why), MCPD_EDENIED);
}

static void test_symlink_escape(void **state)
{
    char why[512], *data, p[PATH_MAX + 64];
    struct mcpd_agent_files f = files(1024);
    json_t *entries = NULL;

    /* final component links outside */
    assert_int_equal(read_at(root, "/esc.txt", &data, why), MCPD_EDENIED);
    assert_non_null(strstr(why, "outside"));
    /* a directory component links outside */
    assert_int_equal(read_at(root, "/esc/secret.txt", &data, why), MCPD_EDENIED);
    snprintf(p, sizeof(p), "%s/esc", root);
    assert_int_equal(mcpd_agent_files_list(&f, p, strlen(p), &entries, why, sizeof(why)),
                     MCPD_EDENIED);
    assert_null(entries);
    /* writing through the link must not touch the target */
    snprintf(p, sizeof(p), "%s/esc.txt", root);
    assert_int_equal(mcpd_agent_files_write(&f, p, strlen(p), "pwned", 5, why, sizeof(why)),
                     MCPD_EDENIED);
    snprintf(p, sizeof(p), "%s/esc/new.txt", root);
    assert_int_equal(mcpd_agent_files_write(&f, p, strlen(p), "pwned", 5, why, sizeof(why)),
                     MCPD_EDENIED);
    snprintf(p, sizeof(p), "%s/new.txt", outside);
    assert_int_equal(access(p, F_OK), -1);
    /* a dangling link inside the root pointing out: creating through it is refused */
    {
        char link[PATH_MAX + 64], target[PATH_MAX + 64];
        snprintf(link, sizeof(link), "%s/dangling.txt", root);
        snprintf(target, sizeof(target), "%s/created-through-link.txt", outside);
        assert_int_equal(symlink(target, link), 0);
        assert_int_equal(
            mcpd_agent_files_write(&f, link, strlen(link), "pwned", 5, why, sizeof(why)),
            MCPD_EDENIED);
        assert_int_equal(access(target, F_OK), -1);
        unlink(link);
    }
    assert_int_equal(read_at(outside, "/secret.txt", &data, why), MCPD_EDENIED);
    {
        char buf[16] = "";
        snprintf(p, sizeof(p), "%s/secret.txt", outside);
        FILE *fp = fopen(p, "r");
        assert_non_null(fp);
        assert_non_null(fgets(buf, sizeof(buf), fp));
        fclose(fp);
        assert_string_equal(buf, "secret");
    }
}

static void test_nul_and_relative(void **state)
{
    char why[512], p[PATH_MAX + 64], *data = NULL;
    struct mcpd_agent_files f = files(1024);
    size_t len, n;

    n = (size_t)snprintf(p, sizeof(p), "%s/sub/hello.txt", root);
    p[strlen(root)] = '\0'; /* "<root>\0sub/hello.txt" */
    assert_int_equal(mcpd_agent_files_read(&f, p, n, &data, &len, why, sizeof(why)), MCPD_EDENIED);
    assert_non_null(strstr(why, "NUL"));
    assert_int_equal(mcpd_agent_files_read(&f, "sub/hello.txt", 13, &data, &len, why, sizeof(why)),
                     MCPD_EDENIED);
    assert_non_null(strstr(why, "not absolute"));
    assert_int_equal(mcpd_agent_files_read(&f, "../etc/passwd", 13, &data, &len, why, sizeof(why)),
                     MCPD_EDENIED);
    assert_int_equal(mcpd_agent_files_read(&f, "", 0, &data, &len, why, sizeof(why)), MCPD_EDENIED);
    assert_null(data);
}

static void test_write_list_and_cap(void **state)
{
    char why[512], p[PATH_MAX + 64], *data;
    struct mcpd_agent_files f = files(16);
    json_t *entries, *e;
    size_t len;

    snprintf(p, sizeof(p), "%s/sub/new.txt", root);
    assert_int_equal(mcpd_agent_files_write(&f, p, strlen(p), "0123456789", 10, why, sizeof(why)),
                     0);
    assert_int_equal(mcpd_agent_files_read(&f, p, strlen(p), &data, &len, why, sizeof(why)), 0);
    assert_int_equal(len, 10);
    free(data);
    /* over the cap in both directions */
    assert_int_equal(
        mcpd_agent_files_write(&f, p, strlen(p), "01234567890123456789", 20, why, sizeof(why)),
        MCPD_ETOOBIG);
    snprintf(p, sizeof(p), "%s/sub/big.txt", root);
    put(p, "this file is longer than sixteen bytes");
    assert_int_equal(mcpd_agent_files_read(&f, p, strlen(p), &data, &len, why, sizeof(why)),
                     MCPD_ETOOBIG);
    /* a directory is not a file */
    snprintf(p, sizeof(p), "%s/sub", root);
    assert_int_equal(mcpd_agent_files_read(&f, p, strlen(p), &data, &len, why, sizeof(why)),
                     MCPD_EDENIED);
    /* listing: sorted, typed, the root itself allowed */
    assert_int_equal(mcpd_agent_files_list(&f, p, strlen(p), &entries, why, sizeof(why)), 0);
    assert_int_equal(json_array_size(entries), 3);
    e = json_array_get(entries, 0);
    assert_string_equal(json_string_value(json_object_get(e, "name")), "big.txt");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "file");
    json_decref(entries);
    assert_int_equal(mcpd_agent_files_list(&f, root, strlen(root), &entries, why, sizeof(why)), 0);
    assert_int_equal(json_array_size(entries), 4); /* esc esc.txt inside.txt sub */
    json_decref(entries);
    /* a missing parent is an error, not a mkdir */
    snprintf(p, sizeof(p), "%s/nope/x.txt", root);
    assert_true(mcpd_agent_files_write(&f, p, strlen(p), "x", 1, why, sizeof(why)) < 0);
}

/* ---- the agent configuration ---------------------------------------------------------------- */

#define KEY "ak_000000000000000000000000000000000000000000000000"

static int parse(const char *yaml, struct mcpd_diag *d)
{
    struct mcpd_agent_config *c = NULL;
    int rc = mcpd_agent_config_parse(&c, "agent.yaml", yaml, strlen(yaml), d);
    mcpd_agent_config_free(c);
    return rc;
}

static void test_config(void **state)
{
    struct mcpd_diag d;
    struct mcpd_agent_config *c = NULL;
    char y[2048], p[PATH_MAX + 64];
    int fd;

    snprintf(y, sizeof(y),
             "server_url: wss://127.0.0.1:8443/agent\nagent_key: " KEY "\nname: laptop\n"
             "tls: { verify: false }\nreconnect: { min: 100ms, max: 2s }\n"
             "builtins:\n  file_ops: { enabled: true, roots: [%s/sub/..], max_bytes: 1KiB }\n"
             "  shell_exec: { enabled: true, commands: [\"ls *\"], timeout: 1s }\n"
             "servers:\n  fs: { command: /bin/cat, args: [-u], env: { A: b }, dimensions: { paths: "
             "[path, dest] } }\n",
             root);
    assert_int_equal(mcpd_agent_config_parse(&c, "agent.yaml", y, strlen(y), &d), 0);
    assert_string_equal(c->roots[0], root); /* canonicalised */
    assert_int_equal(c->reconnect_min_ms, 100);
    assert_int_equal(c->fileops_max_bytes, 1024);
    assert_string_equal(c->servers[0].name, "fs");
    assert_int_equal(json_array_size(json_object_get(c->servers[0].dimensions, "paths")), 2);
    mcpd_agent_config_free(c);

    {
        const char *y2 = "server_url: wss://h/agent\nagent_key: " KEY
                         "\ntls: { ca_file: ca.pem }\nheartbeat: { interval: 5s, timeout: 9s }\n";
        assert_int_equal(mcpd_agent_config_parse(&c, "/etc/mcpd/agent.yaml", y2, strlen(y2), &d),
                         0);
        assert_string_equal(c->tls_ca_file, "/etc/mcpd/ca.pem"); /* relative to the file */
        assert_int_equal(c->ping_interval_ms, 5000);
        assert_int_equal(c->ping_timeout_ms, 9000);
        mcpd_agent_config_free(c);
    }
    assert_int_equal(parse("server_url: ws://h/agent\nagent_key: " KEY "\nbogus: 1\n", &d),
                     MCPD_ECONFIG);
    assert_non_null(strstr(d.msg, "agent.yaml:3:1: unknown key 'bogus'"));
    assert_int_equal(parse("server_url: http://h/agent\nagent_key: " KEY "\n", &d), MCPD_ECONFIG);
    assert_int_equal(parse("server_url: ws://h/agent\nagent_key: ak_123\n", &d), MCPD_ECONFIG);
    assert_null(strstr(d.msg, "ak_123")); /* the key is never echoed */
    assert_int_equal(parse("server_url: ws://h/agent\nagent_key: " KEY
                           "\nservers:\n  Bad_Name: { command: x }\n",
                           &d),
                     MCPD_ECONFIG);
    assert_int_equal(parse("server_url: ws://h/agent\nagent_key: " KEY
                           "\nbuiltins: { file_ops: { enabled: true, roots: [/nonexistent/x] } }\n",
                           &d),
                     MCPD_ECONFIG);
    assert_int_equal(
        parse("server_url: ws://h/agent\nagent_key: " KEY
              "\nbuiltins: { shell_exec: { enabled: true, commands: [\"ls; rm\"] } }\n",
              &d),
        MCPD_ECONFIG);

    /* a file others may read is refused, whatever it holds */
    snprintf(p, sizeof(p), "%s/agent.yaml", base);
    fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, y, strlen(y)), (ssize_t)strlen(y));
    close(fd);
    assert_int_equal(mcpd_agent_config_load(&c, p, &d), 0);
    mcpd_agent_config_free(c);
    assert_int_equal(chmod(p, 0644), 0);
    assert_int_equal(mcpd_agent_config_load(&c, p, &d), MCPD_ECONFIG);
    assert_non_null(strstr(d.msg, "chmod 600"));
    assert_null(c);
    assert_int_equal(chmod(p, 0620), 0);
    assert_int_equal(mcpd_agent_config_load(&c, p, &d), MCPD_ECONFIG);
}

/* examples/agent.yaml documents every key and must parse. */
static void test_example(void **state)
{
    const char *src = getenv("MCPD_SOURCE_DIR");
    struct mcpd_agent_config *c = NULL;
    struct mcpd_diag d;
    char p[PATH_MAX], *text;
    long n;
    FILE *f;

    assert_non_null(src);
    snprintf(p, sizeof(p), "%s/examples/agent.yaml", src);
    assert_non_null(f = fopen(p, "r"));
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    assert_non_null(text = calloc(1, (size_t)n + 1));
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    setenv("MCPD_AGENT_KEY", KEY, 1);
    if (getenv("HOME") == NULL)
        setenv("HOME", "/", 1);
    if (mcpd_agent_config_parse(&c, p, text, (size_t)n, &d) != 0)
        print_message("%s\n", d.msg);
    assert_non_null(c);
    assert_string_equal(c->agent_key, KEY);
    assert_int_equal(c->nservers, 1);
    assert_false(c->shell_enabled);
    assert_int_equal(c->ncommands, 2);
    mcpd_agent_config_free(c);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_inside),
        cmocka_unit_test(test_traversal),
        cmocka_unit_test(test_symlink_escape),
        cmocka_unit_test(test_nul_and_relative),
        cmocka_unit_test(test_write_list_and_cap),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_example),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
