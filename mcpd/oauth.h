/*
 * oauth.h - sans-I/O OAuth 2.0 pieces shared by the CLI (libcurl easy) and
 * the daemon (net/http_client on the loop): PKCE (S256), state, the
 * authorization URL, token request bodies (RFC 6749, RFC 8628 device flow)
 * with client_secret_basic or none, and the token/device response parser
 * (fuzzed: tests/fuzz/fuzz_oauth.c).
 *
 * Token endpoint authentication: with a client secret, client_secret_basic
 * (Authorization: Basic of the form-encoded id and secret); without, a
 * public client ("none"): client_id in the body.
 */
#ifndef MCPD_OAUTH_H
#define MCPD_OAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define MCPD_OAUTH_VERIFIER_LEN 43 /* base64url of 32 random bytes */
#define MCPD_OAUTH_STATE_LEN    43

/* A new PKCE verifier and its S256 challenge (both NUL-terminated). 0 or UV_EIO. */
int mcpd_oauth_pkce(char verifier[MCPD_OAUTH_VERIFIER_LEN + 1],
                    char challenge[MCPD_OAUTH_VERIFIER_LEN + 1]);
/* A new random state. 0 or UV_EIO. */
int mcpd_oauth_state(char state[MCPD_OAUTH_STATE_LEN + 1]);

/* The redirect_uri of a provider: callback_url, or http://<listen>/oauth/callback; new string. */
char *mcpd_oauth_redirect_uri(const struct mcpd_config *cfg,
                              const struct mcpd_oauth_provider_config *p);
/* authorize_url?response_type=code&client_id&redirect_uri&scope&state&code_challenge(S256). */
char *mcpd_oauth_authorize_url(const struct mcpd_oauth_provider_config *p, const char *redirect,
                               const char *state, const char *challenge);

enum mcpd_oauth_grant {
    MCPD_OAUTH_CODE,               /* a = code, b = verifier, c = redirect_uri */
    MCPD_OAUTH_REFRESH,            /* a = refresh_token */
    MCPD_OAUTH_CLIENT_CREDENTIALS, /* (scopes from the provider) */
    MCPD_OAUTH_DEVICE_CODE,        /* a = device_code */
    MCPD_OAUTH_DEVICE_AUTHORIZE,   /* the device authorization request itself */
};

/*
 * The x-www-form-urlencoded body (new string, mcpd_crypto_free_str) and,
 * with a client secret, the "Authorization: Basic ..." header line (new
 * string or NULL). Returns 0 or MCPD_ENOMEM.
 */
int mcpd_oauth_request(char **body, char **auth_header, const struct mcpd_oauth_provider_config *p,
                       const char *client_secret, enum mcpd_oauth_grant g, const char *a,
                       const char *b, const char *c);

/* What a token or device endpoint answered. Strings are new (mcpd_oauth_token_dispose). */
struct mcpd_oauth_token {
    char *access_token, *refresh_token, *scope;
    int64_t expires_ms; /* absolute, from expires_in and `now`; 0 when not given */
    /* device authorization responses */
    char *device_code, *user_code, *verification_uri, *verification_uri_complete;
    unsigned interval_s, device_expires_s;
    /* an error response: the OAuth error code ("invalid_grant", "slow_down", ...) */
    char error[64];
    char error_description[160]; /* printable ASCII only */
};

/*
 * Parses a JSON response (status: the HTTP status). Returns 0 with tokens
 * (or the device fields when device is true); MCPD_EDENIED with
 * out->error set for an OAuth error response; MCPD_EPROTO for anything
 * else (error set to a short reason). Bounded by MCPD_MAX_TOKEN_RESPONSE.
 */
int mcpd_oauth_parse(struct mcpd_oauth_token *out, int status, const char *body, size_t len,
                     bool device, int64_t now_ms);
void mcpd_oauth_token_dispose(struct mcpd_oauth_token *t);

/*
 * When to refresh a token obtained at `obtained` expiring at `expires` (ms):
 * once 80 % of its lifetime passed, or 60 s before expiry when that is
 * earlier and still in the second half of the lifetime (short-lived tokens
 * would otherwise be refreshed in a loop); never sooner than 1 s after it
 * was obtained. 0: never (no expiry known).
 */
int64_t mcpd_oauth_refresh_at(int64_t obtained, int64_t expires);

/*
 * The value of `key` in a query string ("a=1&b=2"), %XX and '+' decoded, as
 * a new string; NULL when absent, malformed (bad or NUL escape) or on
 * ENOMEM. The callback's code, state and error come through it (fuzzed).
 */
char *mcpd_oauth_query_param(const char *query, const char *key);

/* Percent-encoding of s (unreserved kept), appended to a new string; NULL on ENOMEM. */
char *mcpd_oauth_escape(const char *s);

#endif
