/*
 * credentials.h - the secrets upstreams need, at run time.
 *
 * CONTRACT (written before the implementation; the implementer may extend
 * it, never silently change it). Credentials live in the sqlite store,
 * encrypted with AES-256-GCM (mcpd/crypto.c) under the master key
 * (MCPD_MASTER_KEY or a 0600 key file created on first run). The daemon
 * keeps a registry, loaded at start-up, with the decrypted values in memory
 * only; OAuth tokens are refreshed ahead of expiry by a timer; refresh
 * requests run on the HTTP client (libcurl multi on the loop), and the
 * store is written from a thread, never from the loop.
 *
 * Users: adapters/remote.c (servers.<name>.credential), adapters/plugin.c
 * (plugins.<name>.credential). A secret value never reaches a log line, an
 * audit row, an error message or the process arguments.
 */
#ifndef MCPD_CREDENTIALS_H
#define MCPD_CREDENTIALS_H

#include <stdbool.h>
#include <stddef.h>

struct mcpd_daemon;
struct mcpd_credential_req;

enum mcpd_credential_kind {
    MCPD_CRED_API_KEY = 1, /* a static key; where it goes (header, query) is the user's choice */
    MCPD_CRED_BEARER,      /* a static bearer token */
    MCPD_CRED_OAUTH2,      /* an OAuth token set: access token (+ refresh token) */
};

/*
 * What cb receives. status 0: secret is the value to send (valid during the
 * call only; copy it). Otherwise a negative code and `why`, one line safe to
 * show to clients (e.g. "credential \"gh\" is expired: re-authorize with mcpd
 * credentials authorize gh"); secret NULL.
 */
typedef void (*mcpd_credential_cb)(int status, enum mcpd_credential_kind kind, const char *secret,
                                   const char *why, void *data);

/*
 * The current secret of credential `name`. An OAuth token that expires within
 * the refresh margin is refreshed first. cb is never called before this
 * returns. *req (may be NULL if not wanted) lets the caller cancel: after
 * mcpd_credential_cancel, cb is not called.
 */
int mcpd_credential_get(struct mcpd_daemon *d, const char *name, mcpd_credential_cb cb, void *data,
                        struct mcpd_credential_req **req);

/*
 * The upstream answered 401 to a request made with `secret`: for OAuth,
 * refresh once (unless a newer token exists already) and hand the new token
 * to cb; for static kinds, or when the refresh fails, cb gets an error and
 * the credential is marked (expired / rejected), logged and audited.
 */
int mcpd_credential_rejected(struct mcpd_daemon *d, const char *name, const char *secret,
                             mcpd_credential_cb cb, void *data, struct mcpd_credential_req **req);

void mcpd_credential_cancel(struct mcpd_credential_req *req);

/*
 * True when a credential of that name exists (config validation at
 * start-up). Before mcpd_daemon_start it reads the store synchronously.
 */
bool mcpd_credential_exists(struct mcpd_daemon *d, const char *name);

/*
 * Extension (credentials.c): the current secret of `name` when it can be
 * used right now without waiting (exists, decrypted, authorized, not
 * expired, no refresh in flight); NULL otherwise (then use
 * mcpd_credential_get). Borrowed: valid until control returns to the loop;
 * copy it. For headers built synchronously (adapters/remote.c).
 */
const char *mcpd_credential_peek(struct mcpd_daemon *d, const char *name);

/*
 * Core-internal (daemon.c): load the registry before upstreams start (reads
 * the store; needs the master key only when credentials exist; registers
 * /oauth/callback when serving HTTP), and close it after the listener.
 */
int mcpd__credentials_start(struct mcpd_daemon *d);
void mcpd__credentials_close(struct mcpd_daemon *d);

#endif
