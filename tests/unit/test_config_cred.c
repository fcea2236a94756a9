/*
 * test_config_cred.c - the credential keys of the configuration
 * (mcpd/config_cred.c): oauth_providers (required keys, URL checks, grant,
 * scopes, client_secret_credential names) with file:line:col diagnostics,
 * master_key_file relative to the config file, servers.<x>.credential
 * (url servers only, name syntax), and mcpd_config_oauth_provider.
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

#include "mcpd/config.h"
#include "mcpd/error.h"

static struct mcpd_config *parse_ok(const char *text)
{
    struct mcpd_config *cfg = NULL;
    struct mcpd_diag d;
    int rc = mcpd_config_parse(&cfg, "/etc/mcpd/t.yaml", text, strlen(text), &d);

    if (rc != 0)
        print_message("unexpected error: %s\n", d.msg);
    assert_int_equal(rc, 0);
    return cfg;
}

static void parse_err(const char *text, const char *want)
{
    struct mcpd_config *cfg = NULL;
    struct mcpd_diag d;

    assert_int_equal(mcpd_config_parse(&cfg, "t.yaml", text, strlen(text), &d), MCPD_ECONFIG);
    assert_null(cfg);
    if (strstr(d.msg, want) == NULL)
        print_message("diagnostic: %s\nwanted: %s\n", d.msg, want);
    assert_non_null(strstr(d.msg, want));
}

static void test_providers(void **state)
{
    struct mcpd_config *cfg;
    const struct mcpd_oauth_provider_config *p;

    (void)state;
    cfg = parse_ok("master_key_file: keys/mcpd.key\n"
                   "oauth_providers:\n"
                   "  gh:\n"
                   "    authorize_url: https://idp.example/auth\n"
                   "    token_url: https://idp.example/token\n"
                   "    device_authorization_url: https://idp.example/device\n"
                   "    client_id: abc\n"
                   "    scopes: [repo, \"read:org\"]\n"
                   "    callback_url: http://127.0.0.1:8080/oauth/callback\n"
                   "    client_secret_credential: gh-client\n"
                   "    grant: device\n"
                   "  public:\n"
                   "    token_url: http://127.0.0.1:9/token\n"
                   "    client_id: pub\n"
                   "servers:\n"
                   "  r: { url: https://mcp.example/mcp, credential: gh_token }\n");
    assert_string_equal(cfg->master_key_file, "/etc/mcpd/keys/mcpd.key");
    assert_int_equal(cfg->noauth_providers, 2);
    p = mcpd_config_oauth_provider(cfg, "gh");
    assert_non_null(p);
    assert_string_equal(p->token_url, "https://idp.example/token");
    assert_string_equal(p->client_id, "abc");
    assert_int_equal(p->scopes.n, 2);
    assert_string_equal(p->scopes.v[1], "read:org");
    assert_string_equal(p->client_secret_credential, "gh-client");
    assert_string_equal(p->grant, "device");
    p = mcpd_config_oauth_provider(cfg, "public");
    assert_non_null(p);
    assert_null(p->client_secret_credential);
    assert_null(p->authorize_url);
    assert_null(mcpd_config_oauth_provider(cfg, "nope"));
    assert_string_equal(cfg->servers[0].credential, "gh_token");
    mcpd_config_free(cfg);
}

static void test_errors(void **state)
{
    (void)state;
    parse_err("oauth_providers:\n  gh:\n    client_id: x\n",
              "t.yaml:3:5: key 'oauth_providers.gh': missing required key 'token_url'");
    parse_err("oauth_providers:\n  gh:\n    token_url: https://x/t\n",
              "missing required key 'client_id'");
    parse_err(
        "oauth_providers:\n  gh:\n    token_url: ftp://x/t\n    client_id: a\n",
        "t.yaml:3:16: key 'oauth_providers.gh.token_url': must be an http:// or https:// URL");
    parse_err("oauth_providers:\n  gh:\n    token_url: https://x/t\n    client_id: a\n"
              "    grant: implicit\n",
              "must be code, device or client_credentials");
    parse_err("oauth_providers:\n  gh:\n    token_url: https://x/t\n    client_id: a\n"
              "    grant: code\n",
              "grant code needs authorize_url");
    parse_err("oauth_providers:\n  gh:\n    token_url: https://x/t\n    client_id: a\n"
              "    client_secret: plain\n",
              "unknown key 'client_secret'");
    parse_err("oauth_providers:\n  gh:\n    token_url: https://x/t\n    client_id: a\n"
              "    client_secret_credential: Not Valid\n",
              "a credential name must match");
    parse_err("oauth_providers:\n  Bad:\n    token_url: https://x/t\n    client_id: a\n",
              "t.yaml:2:3");
    parse_err("servers:\n  s:\n    command: /bin/true\n    credential: gh\n",
              "credential is for url servers");
    parse_err("servers:\n  s:\n    url: http://x/mcp\n    credential: \"-x\"\n",
              "a credential name must match");
    parse_err("master_key_file: \"\"\n", "must not be empty");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_providers),
        cmocka_unit_test(test_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
