/*
 * test_config.c - unit tests of the configuration loader (mcpd/config.c).
 *
 * Every example under $MCPD_SOURCE_DIR/examples/ must load, so the examples
 * cannot rot. Each error class is checked against its full one-line message,
 * including the exact "file:line:col:" prefix. The source directory falls
 * back to the one this file was compiled from when MCPD_SOURCE_DIR is unset.
 */
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* cmocka.h needs these four first. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "mcpd/config.h"
#include "mcpd/error.h"
#include "mcpd/limits.h"
#include "mcpd/log.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static const char *source_dir(void)
{
    static char dir[PATH_MAX];
    const char *env = getenv("MCPD_SOURCE_DIR");
    char *slash;

    if (env != NULL && env[0] != '\0')
        return env;
    /* __FILE__ is <source>/tests/unit/test_config.c: drop three components. */
    snprintf(dir, sizeof(dir), "%s", __FILE__);
    for (int i = 0; i < 3; i++) {
        if ((slash = strrchr(dir, '/')) == NULL) {
            snprintf(dir, sizeof(dir), ".");
            break;
        }
        *slash = '\0';
    }
    if (dir[0] == '\0')
        snprintf(dir, sizeof(dir), "/");
    return dir;
}

static struct mcpd_config *parse_named(const char *name, const char *text)
{
    struct mcpd_config *cfg = (struct mcpd_config *)1;
    struct mcpd_diag d;
    int rc;

    rc = mcpd_config_parse(&cfg, name, text, strlen(text), &d);
    if (rc != 0)
        print_message("unexpected error: %s\n", d.msg);
    assert_int_equal(rc, 0);
    assert_non_null(cfg);
    return cfg;
}

static struct mcpd_config *parse_ok(const char *text)
{
    return parse_named("t.yaml", text);
}

static void check_err_named(const char *name, const char *text, const char *want)
{
    struct mcpd_config *cfg = (struct mcpd_config *)1;
    struct mcpd_diag d;
    int rc;

    rc = mcpd_config_parse(&cfg, name, text, strlen(text), &d);
    assert_int_equal(rc, MCPD_ECONFIG);
    assert_null(cfg);
    assert_string_equal(d.msg, want);
}

static void check_err(const char *text, const char *want)
{
    check_err_named("t.yaml", text, want);
}

/* cwd + "/" + rel, for commands made absolute at load time. */
static void in_cwd(char *dst, size_t size, const char *rel)
{
    char cwd[PATH_MAX];

    assert_non_null(getcwd(cwd, sizeof(cwd)));
    snprintf(dst, size, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, rel);
}

/* ---- examples ------------------------------------------------------------------------------- */

static size_t load_matching(const char *pattern)
{
    char pat[PATH_MAX];
    glob_t g;
    size_t n;

    snprintf(pat, sizeof(pat), "%s/examples/%s", source_dir(), pattern);
    memset(&g, 0, sizeof(g));
    if (glob(pat, 0, NULL, &g) != 0)
        return 0;
    for (n = 0; n < g.gl_pathc; n++) {
        struct mcpd_config *cfg = NULL;
        struct mcpd_diag d;
        int rc;
        /* agent.yaml configures `mcpd agent`, not mcpd (test_agent_files.c loads it) */
        if (strcmp(strrchr(g.gl_pathv[n], '/'), "/agent.yaml") == 0)
            continue;
        rc = mcpd_config_load(&cfg, g.gl_pathv[n], &d);
        if (rc != 0)
            print_message("%s\n", d.msg);
        assert_int_equal(rc, 0);
        assert_non_null(cfg);
        mcpd_config_free(cfg);
    }
    globfree(&g);
    return n;
}

static void test_examples_all_load(void **state)
{
    size_t n = load_matching("*.yaml") + load_matching("*.json");

    assert_true(n >= 2); /* at least mcpd.yaml and claude_desktop.json */
}

static struct mcpd_config *load_example(const char *file)
{
    struct mcpd_config *cfg = NULL;
    struct mcpd_diag d;
    char path[PATH_MAX];
    int rc;

    snprintf(path, sizeof(path), "%s/examples/%s", source_dir(), file);
    rc = mcpd_config_load(&cfg, path, &d);
    if (rc != 0)
        print_message("%s\n", d.msg);
    assert_int_equal(rc, 0);
    return cfg;
}

static void test_example_mcpd_yaml(void **state)
{
    struct mcpd_config *cfg;
    char want[PATH_MAX + 64];

    unsetenv("MCPD_BUILD");
    unsetenv("MCPD_LISTEN");
    cfg = load_example("mcpd.yaml");
    assert_string_equal(cfg->listen_host, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 8080);
    assert_string_equal(cfg->http_path, "/mcp");
    assert_int_equal(cfg->nallowed_origins, 2);
    assert_int_equal(cfg->nallowed_hosts, 3);
    assert_int_equal(cfg->nservers, 4 + cfg->nplugins); /* plugins are servers too */
    assert_int_equal(cfg->nplugins, 3);
    assert_string_equal(cfg->servers[3].name, "remote-oauth");
    assert_string_equal(cfg->servers[3].credential, "example-oauth");
    assert_int_equal(cfg->noauth_providers, 1);
    assert_string_equal(cfg->servers[2].name, "remote");
    assert_string_equal(cfg->servers[2].url, "http://127.0.0.1:3001/mcp");
    assert_int_equal(cfg->servers[2].nheaders, 1);
    assert_string_equal(cfg->servers[2].headers[0].key, "Authorization");
    assert_false(cfg->servers[2].enabled);
    assert_false(cfg->servers[0].per_client);
    in_cwd(want, sizeof(want), "build/mcpd-demo-server");
    assert_string_equal(cfg->servers[0].name, "demo");
    assert_string_equal(cfg->servers[0].command, want);
    assert_true(cfg->servers[0].enabled);
    assert_int_equal(cfg->servers[0].nenv, 1);
    assert_string_equal(cfg->servers[0].env[0].key, "LC_ALL");
    assert_string_equal(cfg->servers[0].env[0].value, "C");
    assert_string_equal(cfg->servers[1].name, "files");
    assert_string_equal(cfg->servers[1].command, "npx");
    assert_int_equal(cfg->servers[1].nargs, 3);
    assert_string_equal(cfg->servers[1].args[2], "/tmp");
    assert_int_equal(cfg->servers[1].timeout_ms, 60000);
    assert_false(cfg->servers[1].enabled);
    assert_string_equal(cfg->separator, "__");
    assert_int_equal(cfg->prefix, MCPD_PREFIX_AUTO);
    assert_int_equal(cfg->limits.max_message, MCPD_MAX_MESSAGE);
    assert_int_equal(cfg->limits.session_idle_ms, MCPD_SESSION_IDLE_MS);
    assert_int_equal(cfg->limits.input_wait_ms, MCPD_MRTR_PARK_MS);
    mcpd_config_free(cfg);

    setenv("MCPD_BUILD", "/opt/mcpd", 1);
    setenv("MCPD_LISTEN", "[::1]:0", 1);
    cfg = load_example("mcpd.yaml");
    assert_string_equal(cfg->servers[0].command, "/opt/mcpd/mcpd-demo-server");
    assert_string_equal(cfg->listen_host, "::1");
    assert_int_equal(cfg->listen_port, 0);
    mcpd_config_free(cfg);
    unsetenv("MCPD_BUILD");
    unsetenv("MCPD_LISTEN");
}

static void test_example_claude_desktop(void **state)
{
    struct mcpd_config *cfg = load_example("claude_desktop.json");
    char want[PATH_MAX + 64];

    in_cwd(want, sizeof(want), "build/mcpd-demo-server");
    assert_null(cfg->listen_host);
    assert_int_equal(cfg->nservers, 1);
    assert_string_equal(cfg->servers[0].name, "demo");
    assert_string_equal(cfg->servers[0].command, want);
    assert_true(cfg->servers[0].enabled);
    assert_int_equal(cfg->servers[0].timeout_ms, MCPD_CALL_TIMEOUT_MS);
    mcpd_config_free(cfg);
}

/* ---- defaults and values -------------------------------------------------------------------- */

static void test_defaults(void **state)
{
    struct mcpd_config *cfg = parse_ok("servers:\n  a:\n    command: /bin/cat\n");

    assert_string_equal(cfg->path, "t.yaml");
    assert_null(cfg->listen_host);
    assert_string_equal(cfg->http_path, "/mcp");
    assert_int_equal(cfg->nallowed_origins, 0);
    assert_int_equal(cfg->nallowed_hosts, 3);
    assert_string_equal(cfg->allowed_hosts[0], "localhost");
    assert_string_equal(cfg->allowed_hosts[1], "127.0.0.1");
    assert_string_equal(cfg->allowed_hosts[2], "[::1]");
    assert_int_equal(cfg->log_level, MCPD_LOG_INFO);
    assert_string_equal(cfg->separator, "__");
    assert_int_equal(cfg->prefix, MCPD_PREFIX_AUTO);
    assert_int_equal(cfg->limits.max_message, MCPD_MAX_MESSAGE);
    assert_int_equal(cfg->limits.max_sessions, MCPD_MAX_SESSIONS);
    assert_int_equal(cfg->limits.max_inflight, MCPD_MAX_INFLIGHT);
    assert_int_equal(cfg->limits.max_connections, MCPD_MAX_CONNECTIONS);
    assert_int_equal(cfg->limits.page_size, MCPD_LIST_PAGE_SIZE);
    assert_int_equal(cfg->limits.session_idle_ms, MCPD_SESSION_IDLE_MS);
    assert_int_equal(cfg->limits.header_timeout_ms, MCPD_HEADER_TIMEOUT_MS);
    assert_int_equal(cfg->limits.body_timeout_ms, MCPD_BODY_TIMEOUT_MS);
    assert_int_equal(cfg->limits.idle_timeout_ms, MCPD_IDLE_TIMEOUT_MS);
    assert_int_equal(cfg->nservers, 1);
    assert_string_equal(cfg->servers[0].name, "a");
    assert_string_equal(cfg->servers[0].command, "/bin/cat");
    assert_int_equal(cfg->servers[0].nargs, 0);
    assert_int_equal(cfg->servers[0].nenv, 0);
    assert_null(cfg->servers[0].cwd);
    assert_int_equal(cfg->servers[0].timeout_ms, MCPD_CALL_TIMEOUT_MS);
    assert_true(cfg->servers[0].enabled);
    assert_int_equal(cfg->servers[0].line, 2);
    assert_int_equal(cfg->servers[0].column, 3);
    mcpd_config_free(cfg);
}

static void test_null_values_are_absent(void **state)
{
    struct mcpd_config *cfg =
        parse_ok("listen:\nhttp:\nlog_level: ~\nservers:\ncatalog: null\nlimits: {}\n");

    assert_null(cfg->listen_host);
    assert_int_equal(cfg->nservers, 0);
    assert_int_equal(cfg->nallowed_hosts, 3);
    assert_int_equal(cfg->log_level, MCPD_LOG_INFO);
    mcpd_config_free(cfg);
}

static void test_full_values(void **state)
{
    struct mcpd_config *cfg =
        parse_ok("listen: 0.0.0.0:9000\n"
                 "http:\n"
                 "  path: /rpc/v1\n"
                 "  allowed_origins: [\"https://app.example\", \"http://localhost:*\"]\n"
                 "log_level: trace\n"
                 "catalog: { separator: \".\", prefix: never }\n"
                 "servers:\n"
                 "  zeta:\n"
                 "    command: ./bin/z\n"
                 "    args: [\"--flag\", \"\", '7']\n"
                 "    env: { A: 1, b_2: \"two words\" }\n"
                 "    cwd: /srv\n"
                 "    timeout: 250ms\n"
                 "    enabled: false\n"
                 "  alpha-1:\n"
                 "    command: tools/x\n");
    char want[PATH_MAX + 64];

    assert_string_equal(cfg->listen_host, "0.0.0.0");
    assert_int_equal(cfg->listen_port, 9000);
    assert_int_equal(cfg->nallowed_hosts, 4);
    assert_string_equal(cfg->allowed_hosts[3], "0.0.0.0");
    assert_string_equal(cfg->http_path, "/rpc/v1");
    assert_int_equal(cfg->nallowed_origins, 2);
    assert_string_equal(cfg->allowed_origins[1], "http://localhost:*");
    assert_int_equal(cfg->log_level, MCPD_LOG_TRACE);
    assert_string_equal(cfg->separator, ".");
    assert_int_equal(cfg->prefix, MCPD_PREFIX_NEVER);
    assert_int_equal(cfg->nservers, 2);
    assert_string_equal(cfg->servers[0].name, "zeta"); /* file order, not sorted */
    in_cwd(want, sizeof(want), "bin/z");
    assert_string_equal(cfg->servers[0].command, want);
    assert_int_equal(cfg->servers[0].nargs, 3);
    assert_string_equal(cfg->servers[0].args[0], "--flag");
    assert_string_equal(cfg->servers[0].args[1], "");
    assert_string_equal(cfg->servers[0].args[2], "7");
    assert_int_equal(cfg->servers[0].nenv, 2);
    assert_string_equal(cfg->servers[0].env[0].key, "A");
    assert_string_equal(cfg->servers[0].env[0].value, "1");
    assert_string_equal(cfg->servers[0].env[1].key, "b_2");
    assert_string_equal(cfg->servers[0].env[1].value, "two words");
    assert_string_equal(cfg->servers[0].cwd, "/srv");
    assert_int_equal(cfg->servers[0].timeout_ms, 250);
    assert_false(cfg->servers[0].enabled);
    assert_string_equal(cfg->servers[1].name, "alpha-1");
    in_cwd(want, sizeof(want), "tools/x");
    assert_string_equal(cfg->servers[1].command, want);
    assert_int_equal(cfg->servers[1].line, 15);
    mcpd_config_free(cfg);
}

static void test_limits_overrides(void **state)
{
    struct mcpd_config *cfg = parse_ok("limits:\n"
                                       "  max_message: 512KiB\n"
                                       "  max_sessions: 10\n"
                                       "  max_inflight: 2\n"
                                       "  session_idle: 5m\n"
                                       "  input_wait: 30s\n"
                                       "  header_timeout: 1500\n"
                                       "  body_timeout: 2s\n"
                                       "  idle_timeout: 1h\n"
                                       "  max_connections: 64\n"
                                       "  page_size: 50\n");

    assert_int_equal(cfg->limits.max_message, 512 * 1024);
    assert_int_equal(cfg->limits.max_sessions, 10);
    assert_int_equal(cfg->limits.max_inflight, 2);
    assert_int_equal(cfg->limits.session_idle_ms, 300000);
    assert_int_equal(cfg->limits.input_wait_ms, 30000);
    assert_int_equal(cfg->limits.header_timeout_ms, 1500);
    assert_int_equal(cfg->limits.body_timeout_ms, 2000);
    assert_int_equal(cfg->limits.idle_timeout_ms, 3600000);
    assert_int_equal(cfg->limits.max_connections, 64);
    assert_int_equal(cfg->limits.page_size, 50);
    mcpd_config_free(cfg);

    check_err("limits:\n  max_message: 4MB\n",
              "t.yaml:2:16: key 'limits.max_message': invalid size '4MB' (use a byte count or a "
              "KiB, MiB or GiB suffix)");
    check_err("limits:\n  max_message: 512\n",
              "t.yaml:2:16: key 'limits.max_message': 512 is out of range (1024 to 1073741824 "
              "bytes)");
    check_err("limits:\n  max_sessions: lots\n",
              "t.yaml:2:17: key 'limits.max_sessions': expected an integer from 1 to 1000000, got "
              "'lots'");
    check_err("limits:\n  max_inflight: 0\n",
              "t.yaml:2:17: key 'limits.max_inflight': expected an integer from 1 to 10000, got "
              "'0'");
    check_err("limits:\n  page_size: -5\n",
              "t.yaml:2:14: key 'limits.page_size': expected an integer from 1 to 10000, got '-5'");
    check_err("limits:\n  idle_timeout: 0s\n",
              "t.yaml:2:17: key 'limits.idle_timeout': invalid duration '0s' (use e.g. 250ms, 30s, "
              "5m or 1h; a bare number is milliseconds; 0 is not allowed)");
    check_err("limits:\n  input_wait: 2h\n",
              "t.yaml:2:15: key 'limits.input_wait': 2h exceeds the maximum of 3600000ms");
    check_err("limits:\n  max_streams: 3\n", "t.yaml:2:3: unknown key 'max_streams' in 'limits'");
}

/* ---- listen --------------------------------------------------------------------------------- */

static void test_listen(void **state)
{
    struct mcpd_config *cfg;

    cfg = parse_ok("listen: \"[::1]:9000\"\n");
    assert_string_equal(cfg->listen_host, "::1");
    assert_int_equal(cfg->listen_port, 9000);
    assert_int_equal(cfg->nallowed_hosts, 3); /* [::1] is already there */
    mcpd_config_free(cfg);

    cfg = parse_ok("listen: localhost:65535\n");
    assert_string_equal(cfg->listen_host, "localhost");
    assert_int_equal(cfg->listen_port, 65535);
    assert_int_equal(cfg->nallowed_hosts, 3);
    mcpd_config_free(cfg);

    cfg = parse_ok("listen: \"[fe80::1%eth0]:80\"\n");
    assert_string_equal(cfg->listen_host, "fe80::1%eth0");
    assert_int_equal(cfg->nallowed_hosts, 4);
    assert_string_equal(cfg->allowed_hosts[3], "[fe80::1%eth0]");
    mcpd_config_free(cfg);

    /* An explicit allowed_hosts is used as written. */
    cfg = parse_ok("listen: my.host:80\nhttp:\n  allowed_hosts: [my.host]\n");
    assert_int_equal(cfg->nallowed_hosts, 1);
    assert_string_equal(cfg->allowed_hosts[0], "my.host");
    mcpd_config_free(cfg);
    cfg = parse_ok("http:\n  allowed_hosts: []\n");
    assert_int_equal(cfg->nallowed_hosts, 0);
    mcpd_config_free(cfg);

    check_err("listen: 8080\n",
              "t.yaml:1:9: key 'listen': expected host:port or [v6]:port (got '8080')");
    check_err("listen: :80\n", "t.yaml:1:9: key 'listen': host must not be empty (got ':80')");
    check_err("listen: ::1:80\n", "t.yaml:1:9: key 'listen': IPv6 addresses must be in brackets, "
                                  "e.g. [::1]:8080 (got '::1:80')");
    check_err("listen: host:65536\n",
              "t.yaml:1:9: key 'listen': port must be a number from 0 to 65535 (got 'host:65536')");
    check_err("listen: \"host:\"\n",
              "t.yaml:1:9: key 'listen': port must be a number from 0 to 65535 (got 'host:')");
    check_err("listen: \"[zz]:80\"\n",
              "t.yaml:1:9: key 'listen': invalid IPv6 address (got '[zz]:80')");
    check_err("listen: \"[::1]80\"\n",
              "t.yaml:1:9: key 'listen': expected host:port or [v6]:port (got '[::1]80')");
    check_err("listen: \"a b:80\"\n",
              "t.yaml:1:9: key 'listen': host holds characters other than letters, digits, '.', "
              "'-' and '_' (got 'a b:80')");
    check_err("listen: {host: a}\n", "t.yaml:1:10: unknown key 'host' in 'listen'");
    check_err("listen: [a]\n", "t.yaml:1:9: key 'listen': expected a string, got a list");
}

/* ---- unknown keys, types, duplicates -------------------------------------------------------- */

static void test_unknown_keys(void **state)
{
    check_err("listen: 127.0.0.1:1\nfoo: 1\n", "t.yaml:2:1: unknown key 'foo'");
    check_err("servers:\n  files:\n    command: x\n    bogus: 1\n",
              "t.yaml:4:5: unknown key 'bogus' in 'servers.files'");
    check_err("http:\n  paths: /x\n", "t.yaml:2:3: unknown key 'paths' in 'http'");
    check_err("catalog: {sep: x}\n", "t.yaml:1:11: unknown key 'sep' in 'catalog'");
    /* Unknown keys are rejected even with a null value. */
    check_err("servers:\n  a:\n    command: x\n    extra:\n",
              "t.yaml:4:5: unknown key 'extra' in 'servers.a'");
}

static void test_wrong_types(void **state)
{
    check_err("- a\n- b\n", "t.yaml:1:1: the top level must be a mapping, got a list");
    check_err("just text\n", "t.yaml:1:1: the top level must be a mapping, got a string");
    check_err("servers: [a]\n", "t.yaml:1:10: key 'servers': expected a mapping, got a list");
    check_err("http: /mcp\n", "t.yaml:1:7: key 'http': expected a mapping, got a string");
    check_err("servers:\n  a:\n    command: {x: y}\n",
              "t.yaml:3:14: key 'servers.a.command': expected a string, got a mapping");
    check_err("servers:\n  a:\n    command: x\n    args: x\n",
              "t.yaml:4:11: key 'servers.a.args': expected a list, got a string");
    check_err("servers:\n  a:\n    command: x\n    args: [a, [b]]\n",
              "t.yaml:4:15: key 'servers.a.args[1]': expected a string, got a list");
    check_err(
        "servers:\n  a:\n    command: x\n    args: [a, ~]\n",
        "t.yaml:4:15: key 'servers.a.args[1]': missing value (quote it for a literal string)");
    check_err("servers:\n  a:\n    command: x\n    env: [A]\n",
              "t.yaml:4:10: key 'servers.a.env': expected a mapping, got a list");
    check_err("servers:\n  a:\n    command: x\n    env:\n      A:\n",
              "t.yaml:5:9: key 'servers.a.env.A': missing value (quote it for a literal string)");
    check_err("servers:\n  a: [x]\n",
              "t.yaml:2:6: key 'servers.a': expected a mapping, got a list");
    check_err("? [a]\n: b\n", "t.yaml:1:3: keys must be strings, got a list");
    check_err("servers:\n  a:\n    command: \"x\\0y\"\n",
              "t.yaml:3:14: key 'servers.a.command': value contains a NUL byte");
    check_err("servers:\n  a:\n    command: x\n    enabled: yes\n",
              "t.yaml:4:14: key 'servers.a.enabled': expected true or false, got 'yes'");
    check_err("servers:\n  a:\n    command: x\n    enabled: True\n",
              "t.yaml:4:14: key 'servers.a.enabled': expected true or false, got 'True'");
    check_err("servers:\n  a:\n    command: x\n    cwd: \"\"\n",
              "t.yaml:4:10: key 'servers.a.cwd': must not be empty");
    check_err("log_level: loud\n",
              "t.yaml:1:12: key 'log_level': expected error, warn, info, debug or trace, got "
              "'loud'");
    check_err("http:\n  path: mcp\n",
              "t.yaml:2:9: key 'http.path': must start with '/' and hold no spaces, '?' or '#' "
              "(got 'mcp')");
    check_err("http:\n  path: /a?b\n",
              "t.yaml:2:9: key 'http.path': must start with '/' and hold no spaces, '?' or '#' "
              "(got '/a?b')");
    check_err("http:\n  allowed_hosts: [\"a b\"]\n",
              "t.yaml:2:19: key 'http.allowed_hosts[0]': must be non-empty with no spaces, got "
              "'a b'");
    check_err("http:\n  allowed_origins: [\"\"]\n",
              "t.yaml:2:21: key 'http.allowed_origins[0]': must be non-empty with no spaces, got "
              "''");
}

static void test_duplicate_keys(void **state)
{
    check_err("log_level: info\nlog_level: warn\n",
              "t.yaml:2:1: duplicate key 'log_level' (first at 1:1)");
    check_err("servers:\n  a:\n    command: x\n  a:\n    command: y\n",
              "t.yaml:4:3: duplicate key 'a' in 'servers' (first at 2:3)");
    check_err("servers:\n  a:\n    command: x\n    env:\n      A: 1\n      A: 2\n",
              "t.yaml:6:7: duplicate key 'A' in 'servers.a.env' (first at 5:7)");
    check_err("catalog: {prefix: auto, \"prefix\": never}\n",
              "t.yaml:1:25: duplicate key 'prefix' in 'catalog' (first at 1:11)");
}

/* ---- servers -------------------------------------------------------------------------------- */

static void test_server_names(void **state)
{
    struct mcpd_config *cfg;

    assert_true(mcpd_config_is_valid_name("a"));
    assert_true(mcpd_config_is_valid_name("0"));
    assert_true(mcpd_config_is_valid_name("a-"));
    assert_true(mcpd_config_is_valid_name("web-search-2"));
    assert_true(mcpd_config_is_valid_name("abcdefghijklmnopqrstuvwxyz012345"));   /* 32 */
    assert_false(mcpd_config_is_valid_name("abcdefghijklmnopqrstuvwxyz0123456")); /* 33 */
    assert_false(mcpd_config_is_valid_name(""));
    assert_false(mcpd_config_is_valid_name("-a"));
    assert_false(mcpd_config_is_valid_name("Files"));
    assert_false(mcpd_config_is_valid_name("a_b"));
    assert_false(mcpd_config_is_valid_name("a.b"));
    assert_false(mcpd_config_is_valid_name(NULL));

    cfg = parse_ok("servers:\n  abcdefghijklmnopqrstuvwxyz012345:\n    command: x\n");
    assert_string_equal(cfg->servers[0].name, "abcdefghijklmnopqrstuvwxyz012345");
    mcpd_config_free(cfg);

    check_err("servers:\n  Files:\n    command: x\n",
              "t.yaml:2:3: server name 'Files' is invalid: names must match "
              "^[a-z0-9][a-z0-9-]{0,31}$ (lowercase letters, digits and '-', at most 32 "
              "characters)");
    check_err("servers:\n  -x:\n    command: x\n",
              "t.yaml:2:3: server name '-x' is invalid: names must match "
              "^[a-z0-9][a-z0-9-]{0,31}$ (lowercase letters, digits and '-', at most 32 "
              "characters)");
    check_err("servers:\n  \"\":\n    command: x\n",
              "t.yaml:2:3: server name '' is invalid: names must match "
              "^[a-z0-9][a-z0-9-]{0,31}$ (lowercase letters, digits and '-', at most 32 "
              "characters)");
    check_err("servers:\n  abcdefghijklmnopqrstuvwxyz0123456:\n    command: x\n",
              "t.yaml:2:3: server name 'abcdefghijklmnopqrstuvwxyz0123456' is invalid: names "
              "must match ^[a-z0-9][a-z0-9-]{0,31}$ (lowercase letters, digits and '-', at most "
              "32 characters)");
}

static void test_server_fields(void **state)
{
    struct mcpd_config *cfg;

    cfg = parse_ok("servers:\n  a:\n    command: /usr/bin/env\n    timeout: 10m\n"
                   "  b:\n    command: npx\n    timeout: 600000\n");
    assert_string_equal(cfg->servers[0].command, "/usr/bin/env");
    assert_int_equal(cfg->servers[0].timeout_ms, MCPD_MAX_CALL_TIMEOUT_MS);
    assert_string_equal(cfg->servers[1].command, "npx");
    assert_int_equal(cfg->servers[1].timeout_ms, MCPD_MAX_CALL_TIMEOUT_MS);
    mcpd_config_free(cfg);

    cfg = parse_ok("servers:\n  r:\n    url: https://example.com/mcp\n"
                   "    headers: {Authorization: \"Bearer t\", X-Api-Key: k}\n"
                   "    transport: sse\n    connect_timeout: 2s\n    tls_verify: false\n"
                   "    share: per-client\n");
    assert_string_equal(cfg->servers[0].url, "https://example.com/mcp");
    assert_null(cfg->servers[0].command);
    assert_int_equal(cfg->servers[0].nheaders, 2);
    assert_string_equal(cfg->servers[0].headers[0].key, "Authorization");
    assert_string_equal(cfg->servers[0].headers[0].value, "Bearer t");
    assert_int_equal(cfg->servers[0].transport, MCPD_REMOTE_SSE);
    assert_int_equal(cfg->servers[0].connect_timeout_ms, 2000);
    assert_false(cfg->servers[0].tls_verify);
    assert_true(cfg->servers[0].per_client);
    mcpd_config_free(cfg);
    cfg = parse_ok("servers:\n  r:\n    url: http://127.0.0.1:9/mcp\n");
    assert_int_equal(cfg->servers[0].transport, MCPD_REMOTE_AUTO);
    assert_true(cfg->servers[0].tls_verify);
    assert_false(cfg->servers[0].per_client);
    mcpd_config_free(cfg);
    check_err("servers:\n  r:\n    url: ftp://example.com/mcp\n",
              "t.yaml:3:10: key 'servers.r.url': expected an http:// or https:// URL");
    check_err("servers:\n  r:\n    url: https://x\n    command: y\n",
              "t.yaml:2:3: key 'servers.r': give either 'command' or 'url', not both");
    check_err("servers:\n  r:\n    url: https://x\n    args: [a]\n",
              "t.yaml:2:3: key 'servers.r': args, env and cwd are for command servers");
    check_err("servers:\n  r:\n    command: x\n    headers: {A: b}\n",
              "t.yaml:2:3: key 'servers.r': headers and transport are for url servers");
    check_err("servers:\n  r:\n    url: https://x\n    headers: {\"A b\": c}\n",
              "t.yaml:4:15: key 'servers.r.headers': 'A b' is not a valid HTTP header name");
    check_err("servers:\n  r:\n    url: https://x\n    transport: carrier-pigeon\n",
              "t.yaml:4:16: key 'servers.r.transport': expected auto, streamable-http or sse, got "
              "'carrier-pigeon'");
    check_err("servers:\n  a:\n    command: x\n    share: sometimes\n",
              "t.yaml:4:12: key 'servers.a.share': expected shared or per-client, got 'sometimes'");
    /* audit.chain: keyed (hmac) or plain (sha256, the default) */
    cfg = parse_ok("store: a.db\naudit: {chain: hmac}\n");
    assert_true(cfg->audit_chain_hmac);
    mcpd_config_free(cfg);
    cfg = parse_ok("store: a.db\naudit: {chain: sha256}\n");
    assert_false(cfg->audit_chain_hmac);
    mcpd_config_free(cfg);
    check_err("store: a.db\naudit: {chain: md5}\n",
              "t.yaml:2:16: key 'audit.chain': expected sha256 or hmac, got 'md5'");
    /* protocol: which revision an upstream is spoken to in */
    cfg = parse_ok("servers:\n  a:\n    command: x\n  b:\n    command: x\n    protocol: legacy\n"
                   "  c:\n    command: x\n    protocol: 2026-07-28\n"
                   "  d:\n    command: x\n    protocol: auto\n");
    assert_int_equal(cfg->servers[0].era, MCPD_SPEAK_AUTO);
    assert_int_equal(cfg->servers[1].era, MCPD_SPEAK_LEGACY);
    assert_int_equal(cfg->servers[2].era, MCPD_SPEAK_MODERN);
    assert_int_equal(cfg->servers[3].era, MCPD_SPEAK_AUTO);
    mcpd_config_free(cfg);
    check_err("servers:\n  a:\n    command: x\n    protocol: 2025-06-18\n",
              "t.yaml:4:15: key 'servers.a.protocol': expected auto, legacy or 2026-07-28, got "
              "'2025-06-18'");
    cfg = parse_ok("servers:\n  r:\n    url: https://x\n    protocol: 2026-07-28\n");
    assert_int_equal(cfg->servers[0].era, MCPD_SPEAK_MODERN);
    mcpd_config_free(cfg);
    check_err("servers:\n  r:\n    url: https://x\n    protocol: 2026-07-28\n    transport: sse\n",
              "t.yaml:2:3: key 'servers.r': protocol 2026-07-28 runs over streamable HTTP, not the "
              "2024-11-05 transport sse");
    check_err("servers:\n  a:\n    args: [x]\n",
              "t.yaml:2:3: key 'servers.a': missing required key 'command' (or 'url')");
    check_err("servers:\n  a:\n",
              "t.yaml:2:3: key 'servers.a': missing required key 'command' (or 'url')");
    check_err("servers:\n  a:\n    command: \"\"\n",
              "t.yaml:3:14: key 'servers.a.command': must not be empty");
    check_err("servers:\n  a:\n    command: x\n    timeout: 11m\n",
              "t.yaml:4:14: key 'servers.a.timeout': 11m exceeds the maximum of 600000ms");
    check_err("servers:\n  a:\n    command: x\n    timeout: 0\n",
              "t.yaml:4:14: key 'servers.a.timeout': invalid duration '0' (use e.g. 250ms, 30s, "
              "5m or 1h; a bare number is milliseconds; 0 is not allowed)");
    check_err("servers:\n  a:\n    command: x\n    env:\n      ${X}: y\n",
              "t.yaml:5:7: key 'servers.a.env': '${X}' is not a valid environment variable name "
              "([A-Za-z_][A-Za-z0-9_]*)");
}

#define TEXT_SIZE ((size_t)300 * 32)

static void test_too_many_servers(void **state)
{
    char *text = malloc(TEXT_SIZE);
    size_t n = 0;

    assert_non_null(text);
    n += (size_t)snprintf(text + n, TEXT_SIZE - n, "servers:\n");
    for (int i = 0; i < MCPD_MAX_SERVERS; i++)
        n += (size_t)snprintf(text + n, TEXT_SIZE - n, "  s%d: {command: x}\n", i);
    {
        struct mcpd_config *cfg = parse_ok(text);
        assert_int_equal(cfg->nservers, MCPD_MAX_SERVERS);
        mcpd_config_free(cfg);
    }
    snprintf(text + n, TEXT_SIZE - n, "  one-more: {command: x}\n");
    check_err(text, "t.yaml:2:3: key 'servers': too many entries (at most 256)");
    free(text);
}

/* ---- catalog -------------------------------------------------------------------------------- */

static void test_catalog(void **state)
{
    static const char *const good[] = { "_", ".", "__", "_-", "-.", "...", "_-_-" };
    char text[128];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct mcpd_config *cfg;
        snprintf(text, sizeof(text), "catalog:\n  separator: \"%s\"\n  prefix: always\n", good[i]);
        cfg = parse_ok(text);
        assert_string_equal(cfg->separator, good[i]);
        assert_int_equal(cfg->prefix, MCPD_PREFIX_ALWAYS);
        mcpd_config_free(cfg);
    }
    check_err("catalog:\n  separator: \"-\"\n",
              "t.yaml:2:14: key 'catalog.separator': '-' could occur inside a server name; "
              "include '_' or '.'");
    check_err("catalog:\n  separator: \"--\"\n",
              "t.yaml:2:14: key 'catalog.separator': '--' could occur inside a server name; "
              "include '_' or '.'");
    check_err("catalog:\n  separator: \"\"\n",
              "t.yaml:2:14: key 'catalog.separator': must be 1 to 4 characters from '_', '-' and "
              "'.', got ''");
    check_err("catalog:\n  separator: _____\n",
              "t.yaml:2:14: key 'catalog.separator': must be 1 to 4 characters from '_', '-' and "
              "'.', got '_____'");
    check_err("catalog:\n  separator: \"::\"\n",
              "t.yaml:2:14: key 'catalog.separator': must be 1 to 4 characters from '_', '-' and "
              "'.', got '::'");
    check_err("catalog:\n  prefix: sometimes\n",
              "t.yaml:2:11: key 'catalog.prefix': expected auto, always or never, got 'sometimes'");
}

/* ---- ${VAR} expansion ----------------------------------------------------------------------- */

static void test_env_expansion(void **state)
{
    struct mcpd_config *cfg;

    setenv("MCPD_T_CMD", "/bin/cat", 1);
    setenv("MCPD_T_EMPTY", "", 1);
    setenv("MCPD_T_PORT", "7001", 1);
    unsetenv("MCPD_T_UNSET");
    cfg = parse_ok("listen: 127.0.0.1:${MCPD_T_PORT}\n"
                   "servers:\n"
                   "  a:\n"
                   "    command: ${MCPD_T_CMD}\n"
                   "    args:\n"
                   "      - ${MCPD_T_UNSET:-fallback}\n"
                   "      - ${MCPD_T_EMPTY:-was-empty}\n"
                   "      - x${MCPD_T_EMPTY}y\n"
                   "      - cost $$5 and $HOME and $\n"
                   "      - ${MCPD_T_UNSET:-}\n"
                   "      - '${MCPD_T_CMD}:${MCPD_T_CMD}'\n"
                   "      - ${MCPD_T_UNSET:-a:b-c}\n"
                   "    env:\n"
                   "      MCPD_T_CMD: $${MCPD_T_CMD}\n");
    assert_int_equal(cfg->listen_port, 7001);
    assert_string_equal(cfg->servers[0].command, "/bin/cat");
    assert_int_equal(cfg->servers[0].nargs, 7);
    assert_string_equal(cfg->servers[0].args[0], "fallback");
    assert_string_equal(cfg->servers[0].args[1], "was-empty");
    assert_string_equal(cfg->servers[0].args[2], "xy");
    assert_string_equal(cfg->servers[0].args[3], "cost $5 and $HOME and $");
    assert_string_equal(cfg->servers[0].args[4], "");
    assert_string_equal(cfg->servers[0].args[5], "/bin/cat:/bin/cat");
    assert_string_equal(cfg->servers[0].args[6], "a:b-c");
    assert_string_equal(cfg->servers[0].env[0].key, "MCPD_T_CMD"); /* keys are not expanded */
    assert_string_equal(cfg->servers[0].env[0].value, "${MCPD_T_CMD}");
    mcpd_config_free(cfg);

    check_err("servers:\n  a:\n    command: ${MCPD_T_UNSET}\n",
              "t.yaml:3:14: key 'servers.a.command': environment variable 'MCPD_T_UNSET' is not "
              "set (use ${MCPD_T_UNSET:-default})");
    check_err("log_level: ${MCPD_T_UNSET}\n",
              "t.yaml:1:12: key 'log_level': environment variable 'MCPD_T_UNSET' is not set (use "
              "${MCPD_T_UNSET:-default})");
    check_err("servers:\n  a:\n    command: ${MCPD_T_CMD\n",
              "t.yaml:3:14: key 'servers.a.command': unterminated '${' (write '$$' for a literal "
              "'$')");
    check_err("servers:\n  a:\n    command: ${1X}\n",
              "t.yaml:3:14: key 'servers.a.command': bad variable reference '${1X}' (use ${VAR} "
              "or ${VAR:-default})");
    check_err("servers:\n  a:\n    command: ${X-y}\n",
              "t.yaml:3:14: key 'servers.a.command': bad variable reference '${X-y}' (use ${VAR} "
              "or ${VAR:-default})");
    check_err("servers:\n  a:\n    command: ${X:y}\n",
              "t.yaml:3:14: key 'servers.a.command': bad variable reference '${X:y}' (use ${VAR} "
              "or ${VAR:-default})");
    check_err("servers:\n  a:\n    command: ${}\n",
              "t.yaml:3:14: key 'servers.a.command': bad variable reference '${}' (use ${VAR} or "
              "${VAR:-default})");
    /* Expansion can't turn a value into a type error or unknown key. */
    setenv("MCPD_T_LEVEL", "debug", 1);
    cfg = parse_ok("log_level: ${MCPD_T_LEVEL}\n");
    assert_int_equal(cfg->log_level, MCPD_LOG_DEBUG);
    mcpd_config_free(cfg);
    unsetenv("MCPD_T_CMD");
    unsetenv("MCPD_T_EMPTY");
    unsetenv("MCPD_T_PORT");
    unsetenv("MCPD_T_LEVEL");
}

static void test_env_expansion_cap(void **state)
{
    char *big = malloc(40001);
    struct mcpd_config *cfg;

    assert_non_null(big);
    memset(big, 'a', 40000);
    big[40000] = '\0';
    setenv("MCPD_T_BIG", big, 1);
    cfg = parse_ok("servers:\n  a:\n    command: x\n    args: [\"${MCPD_T_BIG}\"]\n");
    assert_int_equal(strlen(cfg->servers[0].args[0]), 40000);
    mcpd_config_free(cfg);
    check_err("servers:\n  a:\n    command: ${MCPD_T_BIG}${MCPD_T_BIG}\n",
              "t.yaml:3:14: key 'servers.a.command': value exceeds 65536 bytes after expansion");
    unsetenv("MCPD_T_BIG");
    free(big);
}

/* ---- durations and sizes -------------------------------------------------------------------- */

static void test_parse_duration(void **state)
{
    static const struct {
        const char *in;
        unsigned ms;
    } good[] = { { "1", 1 },
                 { "250ms", 250 },
                 { "30s", 30000 },
                 { "5m", 300000 },
                 { "1h", 3600000 },
                 { "007s", 7000 },
                 { "1193h", 4294800000u },
                 { "4294967295", 4294967295u },
                 { "4294967295ms", 4294967295u } };
    static const char *const bad[] = { "",      "0",      "0s",       "0ms",
                                       "-1",    "+1",     " 1",       "1 ",
                                       "1 s",   "1.5s",   "1d",       "1S",
                                       "ms",    "s",      "1sm",      "4294967296",
                                       "1194h", "71583m", "4294968s", "99999999999999999999999" };
    unsigned ms;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ms = 0;
        assert_int_equal(mcpd_config_parse_duration(good[i].in, &ms), 0);
        assert_int_equal(ms, good[i].ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ms = 12345;
        if (mcpd_config_parse_duration(bad[i], &ms) == 0)
            fail_msg("duration '%s' was accepted", bad[i]);
        assert_int_equal(ms, 12345);
    }
    assert_int_not_equal(mcpd_config_parse_duration(NULL, &ms), 0);
}

static void test_parse_size(void **state)
{
    static const struct {
        const char *in;
        size_t bytes;
    } good[] = { { "1", 1 },
                 { "1024", 1024 },
                 { "1024B", 1024 },
                 { "512KiB", (size_t)512 * 1024 },
                 { "4MiB", (size_t)4 * 1024 * 1024 },
                 { "1GiB", 1u << 30 },
                 { "16GiB", (size_t)16 << 30 },
                 { "18446744073709551615", SIZE_MAX } };
    static const char *const bad[] = { "",
                                       "0",
                                       "0KiB",
                                       "-1",
                                       "4MB",
                                       "4KB",
                                       "4M",
                                       "4k",
                                       "4mib",
                                       "4 MiB",
                                       "1.5MiB",
                                       "KiB",
                                       "18446744073709551616",
                                       "17179869184GiB" };
    size_t n;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        n = 0;
        assert_int_equal(mcpd_config_parse_size(good[i].in, &n), 0);
        assert_true(n == good[i].bytes);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = 7;
        if (mcpd_config_parse_size(bad[i], &n) == 0)
            fail_msg("size '%s' was accepted", bad[i]);
        assert_int_equal(n, 7);
    }
    assert_int_not_equal(mcpd_config_parse_size(NULL, &n), 0);
}

/* ---- JSON import ---------------------------------------------------------------------------- */

static void test_json_import(void **state)
{
    struct mcpd_config *cfg;
    char want[PATH_MAX + 64];

    cfg = parse_named(
        "t.json", "  \n{\"mcpServers\": {\n"
                  "  \"demo\": {\"command\": \"/bin/demo\", \"args\": [\"a\", \"${HOME}\"],\n"
                  "            \"env\": {\"K\": \"v\"}, \"cwd\": \"/tmp\", \"type\": \"stdio\"},\n"
                  "  \"two\": {\"command\": \"rel/x\", \"cwd\": null}\n"
                  "}}\n");
    assert_string_equal(cfg->path, "t.json");
    assert_int_equal(cfg->nservers, 2);
    assert_string_equal(cfg->servers[0].name, "demo");
    assert_string_equal(cfg->servers[0].command, "/bin/demo");
    assert_int_equal(cfg->servers[0].nargs, 2);
    assert_string_equal(cfg->servers[0].args[1], "${HOME}"); /* imported verbatim */
    assert_int_equal(cfg->servers[0].nenv, 1);
    assert_string_equal(cfg->servers[0].env[0].key, "K");
    assert_string_equal(cfg->servers[0].env[0].value, "v");
    assert_string_equal(cfg->servers[0].cwd, "/tmp");
    assert_true(cfg->servers[0].enabled);
    assert_string_equal(cfg->servers[1].name, "two");
    in_cwd(want, sizeof(want), "rel/x");
    assert_string_equal(cfg->servers[1].command, want);
    assert_null(cfg->servers[1].cwd);
    assert_int_equal(cfg->nallowed_hosts, 3);
    assert_string_equal(cfg->http_path, "/mcp");
    mcpd_config_free(cfg);

    cfg = parse_named("t.json", "{\"mcpServers\": {}}");
    assert_int_equal(cfg->nservers, 0);
    mcpd_config_free(cfg);
}

static void test_json_errors(void **state)
{
    struct mcpd_diag d;
    struct mcpd_config *cfg;
    const char *text;

    check_err_named("t.json", "{\n  \"mcpServers\": {\n    \"a\": }\n}\n",
                    "t.json:3:10: invalid JSON: unexpected token near '}'");
    check_err_named("t.json", "{\"mcpServers\": {\"a\": {\"command\": \"x\"}, \"a\": {}}}",
                    "t.json:1:42: invalid JSON: duplicate object key near '\"a\"'");
    check_err_named("t.json", "{\"mcpServers\": {}, \"globalShortcut\": \"x\"}",
                    "t.json: unknown top-level key 'globalShortcut' (a JSON config holds only "
                    "'mcpServers')");
    check_err_named("t.json", "{}", "t.json: a JSON config must hold an 'mcpServers' object");
    check_err_named("t.json", "{\"mcpServers\": []}",
                    "t.json: a JSON config must hold an 'mcpServers' object");
    check_err_named("t.json", "{\"mcpServers\": {\"r\": {\"url\": \"gopher://x\"}}}",
                    "t.json: key 'mcpServers.r.url': expected an http:// or https:// URL");
    check_err_named("t.json", "{\"mcpServers\": {\"r\": {\"type\": \"sse\", \"command\": \"x\"}}}",
                    "t.json: key 'mcpServers.r': headers and transport are for url servers");
    check_err_named(
        "t.json", "{\"mcpServers\": {\"r\": {\"type\": \"fax\", \"url\": \"http://x\"}}}",
        "t.json: key 'mcpServers.r.type': expected auto, streamable-http or sse, got 'fax'");
    {
        struct mcpd_config *jc = NULL;
        struct mcpd_diag diag;
        const char *jtext =
            "{\"mcpServers\": {\"r\": {\"type\": \"http\", \"url\": \"http://h/mcp\", "
            "\"headers\": {\"Authorization\": \"Bearer x\"}}}}";
        assert_int_equal(mcpd_config_parse(&jc, "t.json", jtext, strlen(jtext), &diag), 0);
        assert_string_equal(jc->servers[0].url, "http://h/mcp");
        assert_int_equal(jc->servers[0].transport, MCPD_REMOTE_STREAMABLE);
        assert_string_equal(jc->servers[0].headers[0].value, "Bearer x");
        mcpd_config_free(jc);
    }
    check_err_named("t.json", "{\"mcpServers\": {\"a\": {\"command\": \"x\", \"foo\": 1}}}",
                    "t.json: unknown key 'foo' in 'mcpServers.a'");
    check_err_named("t.json", "{\"mcpServers\": {\"My_Server\": {\"command\": \"x\"}}}",
                    "t.json: server name 'My_Server' is invalid: names must match "
                    "^[a-z0-9][a-z0-9-]{0,31}$ (lowercase letters, digits and '-', at most 32 "
                    "characters)");
    check_err_named("t.json", "{\"mcpServers\": {\"a\": {\"args\": []}}}",
                    "t.json: key 'mcpServers.a': missing required key 'command' (or 'url')");
    check_err_named("t.json", "{\"mcpServers\": {\"a\": \"x\"}}",
                    "t.json: key 'mcpServers.a': expected an object");
    check_err_named("t.json", "{\"mcpServers\": {\"a\": {\"command\": \"x\", \"args\": \"-v\"}}}",
                    "t.json: key 'mcpServers.a.args': expected an array of strings");
    check_err_named("t.json",
                    "{\"mcpServers\": {\"a\": {\"command\": \"x\", \"args\": [\"-v\", 2]}}}",
                    "t.json: key 'mcpServers.a.args[1]': expected a string");
    check_err_named("t.json", "{\"mcpServers\": {\"a\": {\"command\": 1}}}",
                    "t.json: key 'mcpServers.a.command': expected a string");
    check_err_named("t.json",
                    "{\"mcpServers\": {\"a\": {\"command\": \"x\", \"env\": {\"K\": 1}}}}",
                    "t.json: key 'mcpServers.a.env.K': expected a string");
    check_err_named("t.json",
                    "{\"mcpServers\": {\"a\": {\"command\": \"x\", \"env\": {\"A-B\": \"1\"}}}}",
                    "t.json: key 'mcpServers.a.env': 'A-B' is not a valid environment variable "
                    "name ([A-Za-z_][A-Za-z0-9_]*)");

    /* The diag carries jansson's position too. */
    text = "{\n  \"mcpServers\": {\n    \"a\": }\n}\n";
    assert_int_equal(mcpd_config_parse(&cfg, "t.json", text, strlen(text), &d), MCPD_ECONFIG);
    assert_int_equal(d.line, 3);
    assert_int_equal(d.column, 10);
}

/* ---- whole-file errors ---------------------------------------------------------------------- */

/* 32 levels load; the 33rd is refused before libyaml's quadratic scan of deep input. */
static void check_deep(void)
{
    size_t size = (size_t)MCPD_MAX_CONFIG_FILE, n;
    char *text = malloc(size);
    struct mcpd_config *cfg;

    assert_non_null(text);
    n = (size_t)snprintf(text, size, "x: ");
    memset(text + n, '[', 31);
    memset(text + n + 31, ']', 31);
    text[n + 62] = '\0';
    cfg = parse_ok("limits: {}\n"); /* a baseline that loads */
    mcpd_config_free(cfg);
    check_err(text, "t.yaml:1:1: unknown key 'x'"); /* depth 32 reaches the walker */
    memset(text + n, '[', 32);
    memset(text + n + 32, ']', 32);
    text[n + 64] = '\0';
    check_err(text, "t.yaml:1:35: YAML nesting deeper than 32 levels");
    memset(text + n, '[', size - n - 1);
    text[size - 1] = '\0';
    check_err(text, "t.yaml:1:35: YAML nesting deeper than 32 levels");
    free(text);
}

static void test_file_errors(void **state)
{
    struct mcpd_config *cfg = (struct mcpd_config *)1;
    struct mcpd_diag d;

    check_err("", "t.yaml: the configuration is empty");
    check_err(" \n\t\n", "t.yaml: the configuration is empty");
    check_err("# only a comment\n", "t.yaml: the configuration is empty");
    check_err("log_level: info\n---\nlog_level: warn\n",
              "t.yaml:3:1: only one YAML document is allowed");
    check_err("servers:\n  a: &s\n    command: x\n  b: *s\n",
              "t.yaml:4:6: YAML aliases are not supported");
    check_err("a: &x 1\nb: {c: *x}\n", "t.yaml:2:8: YAML aliases are not supported");
    check_deep();
    check_err("servers:\n  a: [x\n",
              "t.yaml:3:1: invalid YAML: while parsing a flow sequence: did not find expected ',' "
              "or ']'");
    check_err("a: b: c\n", "t.yaml:1:5: invalid YAML: mapping values are not allowed in this "
                           "context");
    check_err("log_level: \"\xff\"\n", "t.yaml:1:13: invalid input: invalid leading UTF-8 octet");

    /* The position lands in the diag fields as well. */
    assert_int_equal(mcpd_config_parse(&cfg, "x", "foo: 1\n", 7, &d), MCPD_ECONFIG);
    assert_null(cfg);
    assert_int_equal(d.line, 1);
    assert_int_equal(d.column, 1);
    assert_string_equal(d.msg, "x:1:1: unknown key 'foo'");

    /* A NULL diag is allowed. */
    assert_int_equal(mcpd_config_parse(&cfg, "x", "foo: 1\n", 7, NULL), MCPD_ECONFIG);
}

/* listen as a mapping with tls: files relative to the config, the key's mode checked. */
static void test_listen_tls(void **state)
{
    char dir[] = "/tmp/mcpd-test-tls-XXXXXX", name[128], cert[128], key[128], want[512];
    struct mcpd_config *cfg;
    struct mcpd_diag d;
    FILE *f;

    assert_non_null(mkdtemp(dir));
    snprintf(name, sizeof(name), "%s/mcpd.yaml", dir);
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    assert_non_null(f = fopen(cert, "w"));
    fclose(f);
    assert_non_null(f = fopen(key, "w"));
    fclose(f);
    assert_int_equal(chmod(key, 0600), 0);

    cfg = parse_named(name, "listen:\n  address: 127.0.0.1:8443\n"
                            "  tls: { cert: cert.pem, key: key.pem }\n");
    assert_string_equal(cfg->listen_host, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 8443);
    assert_string_equal(cfg->listen_tls_cert, cert);
    assert_string_equal(cfg->listen_tls_key, key);
    mcpd_config_free(cfg);

    /* the mapping form without tls is plain HTTP; the scalar form has no TLS */
    cfg = parse_named(name, "listen: { address: \"[::1]:0\" }\n");
    assert_string_equal(cfg->listen_host, "::1");
    assert_null(cfg->listen_tls_cert);
    mcpd_config_free(cfg);
    cfg = parse_named(name, "listen: 127.0.0.1:80\n");
    assert_null(cfg->listen_tls_cert);
    assert_null(cfg->listen_tls_key);
    mcpd_config_free(cfg);

    snprintf(want, sizeof(want), "%s:2:3: key 'listen': needs an address (host:port)", name);
    check_err_named(name, "listen:\n  tls: { cert: cert.pem, key: key.pem }\n", want);
    snprintf(want, sizeof(want), "%s:3:8: key 'listen.tls': needs both cert and key", name);
    check_err_named(name, "listen:\n  address: 127.0.0.1:1\n  tls: { cert: cert.pem }\n", want);
    snprintf(want, sizeof(want),
             "%s:1:44: key 'listen.tls.cert': cannot read %s/nope.pem: No such file or directory",
             name, dir);
    check_err_named(name, "listen: { address: 1.2.3.4:1, tls: { cert: nope.pem, key: key.pem } }\n",
                    want);
    snprintf(want, sizeof(want), "%s:1:31: unknown key 'port' in 'listen'", name);
    check_err_named(name, "listen: { address: 1.2.3.4:1, port: 3 }\n", want);
    snprintf(want, sizeof(want),
             "%s:1:20: key 'listen.address': expected host:port or [v6]:port (got '8080')", name);
    check_err_named(name, "listen: { address: 8080 }\n", want);
    assert_int_equal(chmod(key, 0640), 0);
    snprintf(want, sizeof(want),
             "%s:1:59: key 'listen.tls.key': the private key %s is readable by group or others "
             "(chmod 600 it)",
             name, key);
    check_err_named(name, "listen: { address: 1.2.3.4:1, tls: { cert: cert.pem, key: key.pem } }\n",
                    want);
    (void)d;
    unlink(cert);
    unlink(key);
    rmdir(dir);
}

static void test_load_files(void **state)
{
    char path[] = "/tmp/mcpd-test-config-XXXXXX";
    struct mcpd_config *cfg = (struct mcpd_config *)1;
    struct mcpd_diag d;
    char want[600];
    char *big;
    FILE *f;
    int fd;

    assert_int_equal(mcpd_config_load(&cfg, "/nonexistent/mcpd.yaml", &d), MCPD_ECONFIG);
    assert_null(cfg);
    assert_string_equal(d.msg, "/nonexistent/mcpd.yaml: cannot open: No such file or directory");

    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("servers:\n  a:\n    command: x\n    color: red\n", f);
    fclose(f);
    assert_int_equal(mcpd_config_load(&cfg, path, &d), MCPD_ECONFIG);
    snprintf(want, sizeof(want), "%s:4:5: unknown key 'color' in 'servers.a'", path);
    assert_string_equal(d.msg, want);

    /* Exactly at the cap is fine (a comment); one byte more is not. */
    big = malloc(MCPD_MAX_CONFIG_FILE + 1);
    assert_non_null(big);
    memset(big, '#', MCPD_MAX_CONFIG_FILE + 1);
    big[MCPD_MAX_CONFIG_FILE - 1] = '\n';
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(big, 1, (size_t)MCPD_MAX_CONFIG_FILE, f), MCPD_MAX_CONFIG_FILE);
    fclose(f);
    assert_int_equal(mcpd_config_load(&cfg, path, &d), MCPD_ECONFIG);
    snprintf(want, sizeof(want), "%s: the configuration is empty", path);
    assert_string_equal(d.msg, want);
    f = fopen(path, "a");
    assert_non_null(f);
    fputc('#', f);
    fclose(f);
    assert_int_equal(mcpd_config_load(&cfg, path, &d), MCPD_ECONFIG);
    assert_null(cfg);
    snprintf(want, sizeof(want), "%s: file is larger than 1048576 bytes", path);
    assert_string_equal(d.msg, want);
    check_err_named("t.yaml", "", "t.yaml: the configuration is empty");
    assert_int_equal(mcpd_config_parse(&cfg, "t.yaml", big, MCPD_MAX_CONFIG_FILE + 1, &d),
                     MCPD_ECONFIG);
    assert_string_equal(d.msg, "t.yaml: file is larger than 1048576 bytes");
    free(big);

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("servers:\n  a:\n    command: /bin/true\n", f);
    fclose(f);
    assert_int_equal(mcpd_config_load(&cfg, path, &d), 0);
    assert_string_equal(cfg->path, path);
    mcpd_config_free(cfg);
    mcpd_config_free(NULL);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples_all_load),
        cmocka_unit_test(test_example_mcpd_yaml),
        cmocka_unit_test(test_example_claude_desktop),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_null_values_are_absent),
        cmocka_unit_test(test_full_values),
        cmocka_unit_test(test_limits_overrides),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_listen_tls),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_server_names),
        cmocka_unit_test(test_server_fields),
        cmocka_unit_test(test_too_many_servers),
        cmocka_unit_test(test_catalog),
        cmocka_unit_test(test_env_expansion),
        cmocka_unit_test(test_env_expansion_cap),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_json_import),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_load_files),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
