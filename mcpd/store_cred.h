/*
 * store_cred.h - credentials in the store (the same sqlite file as bot keys
 * and the audit; tables of their own, created with CREATE TABLE IF NOT
 * EXISTS at open, so the store's schema version is unchanged).
 *
 * Tables:
 *   credentials(name PK, kind, provider, status, secret BLOB, expires_ms,
 *               scopes, created_ms, updated_ms, refreshed_ms, last_error, grant_type)
 *     secret: the sealed JSON of the secret fields (crypto.h), AAD
 *     "<name>\0secret": {"secret": "..."} for api_key and bearer,
 *     {"access_token": "...", "refresh_token": "..."} for oauth2. Kind,
 *     provider, status, expiry, scopes and times are not secret and stay in
 *     clear, so `list` needs no key. last_error never holds a secret.
 *   credential_pending(state PK, name, verifier BLOB, expires_ms)
 *     a pending authorization-code flow; the PKCE verifier sealed with AAD
 *     "<state>\0verifier"; taken (deleted) on first use; 10 minutes.
 *   credential_meta(k PK, v BLOB)
 *     'kcv': a known constant sealed under the master key (AAD
 *     "mcpd-master-key-check"), written by the first keyed open; a later
 *     open with another key fails with "the master key does not match this
 *     store".
 * Every change bumps store_meta.generation in its own transaction, which is
 * what the daemon's registry polls.
 */
#ifndef MCPD_STORE_CRED_H
#define MCPD_STORE_CRED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "credentials.h"

#define MCPD_CRED_NAME_MAX   64               /* ^[a-z0-9][a-z0-9_-]{0,63}$ */
#define MCPD_CRED_PENDING_MS (10 * 60 * 1000) /* an authorization code flow must finish within */

enum mcpd_cred_status {
    MCPD_CRED_STATUS_OK = 0,
    MCPD_CRED_STATUS_EXPIRED,  /* refresh failed (invalid_grant, revoked): re-authorize */
    MCPD_CRED_STATUS_REJECTED, /* a static secret the upstream answered 401 to */
    MCPD_CRED_STATUS_PENDING,  /* oauth2, not authorized yet */
};

struct mcpd_cred_row {
    char name[MCPD_CRED_NAME_MAX + 1];
    enum mcpd_credential_kind kind;
    char provider[MCPD_CRED_NAME_MAX + 1]; /* oauth2; "" otherwise */
    enum mcpd_cred_status status;
    int64_t expires_ms; /* access token expiry; 0: none or unknown */
    int64_t created_ms, updated_ms, refreshed_ms;
    char scopes[512];
    char last_error[256];
    char grant[24]; /* how the tokens were obtained: code | device | client_credentials */
    /* decrypted (only when asked and the key matched); wiped by dispose */
    char *secret;                       /* api_key, bearer */
    char *access_token, *refresh_token; /* oauth2; refresh_token may be NULL */
    bool damaged;                       /* the sealed fields did not open */
};

struct mcpd_cred_store;

/* Names: ^[a-z0-9][a-z0-9_-]{0,63}$ */
bool mcpd_cred_name_valid(const char *name);
const char *mcpd_cred_kind_name(enum mcpd_credential_kind kind);
int mcpd_cred_kind_parse(const char *s); /* kind, or -1 */
const char *mcpd_cred_status_name(enum mcpd_cred_status st);

/*
 * Opens the store at path (created 0600 when missing). With key_file
 * non-NULL the master key is loaded (MCPD_MASTER_KEY first, then the file,
 * created when create_key) and checked against the store's key check
 * value; without, only the clear columns can be read. Synchronous; one
 * handle per thread. Returns 0 or a negative code with err filled.
 */
int mcpd_cred_store_open(struct mcpd_cred_store **out, const char *path, const char *key_file,
                         bool create_key, char *err, size_t errcap);
/* Wipes the key; NULL is a no-op. */
void mcpd_cred_store_close(struct mcpd_cred_store *cs);

/*
 * Adds a credential. api_key/bearer: secret (borrowed) is sealed, status
 * ok. oauth2: provider required, secret NULL, status pending. Errors
 * (MCPD_ECONFIG): invalid name, "credential \"x\" already exists".
 */
int mcpd_cred_store_add(struct mcpd_cred_store *cs, const char *name,
                        enum mcpd_credential_kind kind, const char *provider, const char *secret,
                        char *err, size_t errcap);
/* "no credential named \"x\"" when absent. Also drops its pending authorizations. */
int mcpd_cred_store_delete(struct mcpd_cred_store *cs, const char *name, char *err, size_t errcap);

/*
 * Every credential in name order into *rows (free with
 * mcpd_cred_rows_free), their count in *n, and the generation they were
 * read at (gen may be NULL), from one snapshot. decrypt needs the key; a
 * row whose fields do not open is marked damaged (never garbage).
 */
int mcpd_cred_store_list(struct mcpd_cred_store *cs, bool decrypt, struct mcpd_cred_row **rows,
                         size_t *n, int64_t *gen, char *err, size_t errcap);
/* One credential (decrypted when the key is loaded); "no credential named" when absent. */
int mcpd_cred_store_get(struct mcpd_cred_store *cs, const char *name, struct mcpd_cred_row *row,
                        char *err, size_t errcap);
void mcpd_cred_row_dispose(struct mcpd_cred_row *row);
void mcpd_cred_rows_free(struct mcpd_cred_row *rows, size_t n);

/*
 * New OAuth tokens: status ok, refreshed now, last_error cleared. grant
 * ("code", "device", "client_credentials") marks a new authorization: its
 * refresh token (NULL: none) replaces the stored one. A NULL grant is a
 * refresh: grant kept, and a NULL refresh_token keeps the stored one.
 * scopes may be NULL (kept).
 */
int mcpd_cred_store_set_tokens(struct mcpd_cred_store *cs, const char *name,
                               const char *access_token, const char *refresh_token,
                               int64_t expires_ms, const char *scopes, const char *grant, char *err,
                               size_t errcap);
/* Status and last error (one line, never a secret; NULL clears). */
int mcpd_cred_store_set_status(struct mcpd_cred_store *cs, const char *name,
                               enum mcpd_cred_status status, const char *last_error, char *err,
                               size_t errcap);

/* A pending authorization (state → credential, verifier sealed), valid MCPD_CRED_PENDING_MS. */
int mcpd_cred_store_pending_add(struct mcpd_cred_store *cs, const char *state, const char *name,
                                const char *verifier, char *err, size_t errcap);
/*
 * Takes (deletes, single use) the pending authorization of state: name
 * into name_out, the verifier as a new string (mcpd_crypto_free_str).
 * MCPD_EDENIED with err "unknown or already used state" or "the
 * authorization expired (10 minutes)".
 */
int mcpd_cred_store_pending_take(struct mcpd_cred_store *cs, const char *state,
                                 char name_out[MCPD_CRED_NAME_MAX + 1], char **verifier, char *err,
                                 size_t errcap);

int64_t mcpd_cred_store_generation(struct mcpd_cred_store *cs);

/* "<store>.key" for a store path: the default master key file; new string. */
char *mcpd_cred_default_key_file(const char *store_path);

#endif
