/*
 * store_cred.c - credentials in the store (see store_cred.h).
 */
#include "store_cred.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "crypto.h"
#include "error.h"
#include "store_db.h"

#define KCV_AAD   "mcpd-master-key-check"
#define KCV_PLAIN "mcpd master key check v1"

struct mcpd_cred_store {
    sqlite3 *db;
    bool has_key;
    unsigned char key[MCPD_CRYPTO_KEY_LEN];
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS credentials ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " kind TEXT NOT NULL,"
    " provider TEXT NOT NULL DEFAULT '',"
    " status TEXT NOT NULL,"
    " secret BLOB,"
    " expires_ms INTEGER NOT NULL DEFAULT 0,"
    " scopes TEXT NOT NULL DEFAULT '',"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " refreshed_ms INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT NOT NULL DEFAULT '',"
    " grant_type TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE IF NOT EXISTS credential_pending ("
    " state TEXT PRIMARY KEY NOT NULL,"
    " name TEXT NOT NULL,"
    " verifier BLOB NOT NULL,"
    " expires_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS credential_meta (k TEXT PRIMARY KEY NOT NULL, v BLOB);"
    "CREATE TABLE IF NOT EXISTS store_meta (k TEXT PRIMARY KEY NOT NULL, v INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO store_meta(k, v) VALUES('generation', 0), ('schema', 1);";

static const char *const kind_names[] = {
    [MCPD_CRED_API_KEY] = "api_key",
    [MCPD_CRED_BEARER] = "bearer",
    [MCPD_CRED_OAUTH2] = "oauth2",
};
static const char *const status_names[] = {
    [MCPD_CRED_STATUS_OK] = "ok",
    [MCPD_CRED_STATUS_EXPIRED] = "expired",
    [MCPD_CRED_STATUS_REJECTED] = "rejected",
    [MCPD_CRED_STATUS_PENDING] = "pending",
};

/* ---- names ----------------------------------------------------------------------------------- */

bool mcpd_cred_name_valid(const char *name)
{
    size_t i;

    if (name == NULL || !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9')))
        return false;
    for (i = 0; name[i] != '\0'; i++) {
        char c = name[i];

        if (i >= MCPD_CRED_NAME_MAX)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

const char *mcpd_cred_kind_name(enum mcpd_credential_kind kind)
{
    return kind >= MCPD_CRED_API_KEY && kind <= MCPD_CRED_OAUTH2 ? kind_names[kind] : "?";
}

int mcpd_cred_kind_parse(const char *s)
{
    for (int k = MCPD_CRED_API_KEY; k <= MCPD_CRED_OAUTH2; k++)
        if (s != NULL && strcmp(s, kind_names[k]) == 0)
            return k;
    return -1;
}

const char *mcpd_cred_status_name(enum mcpd_cred_status st)
{
    return st <= MCPD_CRED_STATUS_PENDING ? status_names[st] : "?";
}

static enum mcpd_cred_status status_parse(const char *s)
{
    for (int k = 0; k <= MCPD_CRED_STATUS_PENDING; k++)
        if (s != NULL && strcmp(s, status_names[k]) == 0)
            return (enum mcpd_cred_status)k;
    return MCPD_CRED_STATUS_REJECTED;
}

/* A name as it may appear in a message: printable ASCII, '?' for the rest, at most 64 chars. */
static int user_error(char *err, size_t errcap, const char *pre, const char *name, const char *post)
{
    char shown[72];
    size_t n = 0;

    for (size_t i = 0; name != NULL && name[i] != '\0' && n < 64; i++) {
        char c = name[i];

        shown[n++] = c < 0x20 || c >= 0x7f || c == '"' ? '?' : c;
    }
    shown[n] = '\0';
    snprintf(err, errcap, "%s\"%s\"%s", pre, shown, post);
    return MCPD_ECONFIG;
}

static int check_name(const char *name, char *err, size_t errcap)
{
    if (mcpd_cred_name_valid(name))
        return 0;
    return user_error(err, errcap, "invalid credential name ", name,
                      ": must match ^[a-z0-9][a-z0-9_-]{0,63}$");
}

char *mcpd_cred_default_key_file(const char *store_path)
{
    char *p;

    if (asprintf(&p, "%s.key", store_path) < 0)
        return NULL;
    return p;
}

/* ---- sealing --------------------------------------------------------------------------------- */

static int aad_of(char *out, size_t cap, const char *name, const char *field, size_t *len)
{
    size_t a = strlen(name), b = strlen(field);

    if (a + b + 1 > cap)
        return MCPD_ETOOBIG;
    memcpy(out, name, a);
    out[a] = '\0';
    memcpy(out + a + 1, field, b);
    *len = a + 1 + b;
    return 0;
}

static int seal_json(struct mcpd_cred_store *cs, const char *name, const char *field, json_t *obj,
                     unsigned char **blob, size_t *bloblen)
{
    char aad[160];
    size_t aadlen;
    char *text;
    int r;

    if ((r = aad_of(aad, sizeof(aad), name, field, &aadlen)) != 0)
        return r;
    if ((text = json_dumps(obj, JSON_COMPACT)) == NULL)
        return MCPD_ENOMEM;
    r = mcpd_crypto_seal(blob, bloblen, cs->key, aad, aadlen, text, strlen(text));
    mcpd_crypto_free_str(text);
    return r;
}

static int seal_text(struct mcpd_cred_store *cs, const char *name, const char *field,
                     const char *text, unsigned char **blob, size_t *bloblen)
{
    char aad[160];
    size_t aadlen;
    int r;

    if ((r = aad_of(aad, sizeof(aad), name, field, &aadlen)) != 0)
        return r;
    return mcpd_crypto_seal(blob, bloblen, cs->key, aad, aadlen, text, strlen(text));
}

static int open_text(struct mcpd_cred_store *cs, const char *name, const char *field,
                     const void *blob, size_t bloblen, char **out)
{
    char aad[160];
    size_t aadlen, n;
    int r;

    *out = NULL;
    if ((r = aad_of(aad, sizeof(aad), name, field, &aadlen)) != 0)
        return r;
    return mcpd_crypto_open((unsigned char **)out, &n, cs->key, aad, aadlen, blob, bloblen);
}

static char *json_str_dup(json_t *obj, const char *k)
{
    const char *s = json_string_value(json_object_get(obj, k));

    return s != NULL ? strdup(s) : NULL;
}

/* Fills the secret fields of row from its sealed blob; damaged on any failure. */
static void open_row(struct mcpd_cred_store *cs, struct mcpd_cred_row *row, const void *blob,
                     size_t bloblen)
{
    char *text = NULL;
    json_t *obj;

    if (blob == NULL || bloblen == 0) { /* an oauth2 credential not yet authorized */
        row->damaged = row->kind != MCPD_CRED_OAUTH2;
        return;
    }
    if (open_text(cs, row->name, "secret", blob, bloblen, &text) != 0) {
        row->damaged = true;
        return;
    }
    obj = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    mcpd_crypto_free_str(text);
    if (!json_is_object(obj)) {
        row->damaged = true;
    } else if (row->kind == MCPD_CRED_OAUTH2) {
        row->access_token = json_str_dup(obj, "access_token");
        row->refresh_token = json_str_dup(obj, "refresh_token");
    } else {
        row->secret = json_str_dup(obj, "secret");
        row->damaged = row->secret == NULL;
    }
    /* wipe the decoded strings jansson holds before it frees them */
    if (obj != NULL) {
        const char *k;
        json_t *v;

        json_object_foreach (obj, k, v) {
            if (json_is_string(v))
                OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
        }
    }
    json_decref(obj);
}

/* ---- open, close ----------------------------------------------------------------------------- */

/* Writes the key check value on first keyed use; compares it afterwards. */
static int check_key(struct mcpd_cred_store *cs, const char *path, char *err, size_t errcap)
{
    sqlite3_stmt *q = NULL;
    unsigned char *blob = NULL, *plain = NULL;
    size_t bloblen, plen;
    int r = 0, rc;

    if (sqlite3_prepare_v2(cs->db, "SELECT v FROM credential_meta WHERE k = 'kcv'", -1, &q, NULL) !=
        SQLITE_OK)
        return mcpd__store_db_fail(cs->db, path, err, errcap);
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        r = mcpd_crypto_open(&plain, &plen, cs->key, KCV_AAD, strlen(KCV_AAD),
                             sqlite3_column_blob(q, 0), (size_t)sqlite3_column_bytes(q, 0));
        if (r != 0 || plen != strlen(KCV_PLAIN) || memcmp(plain, KCV_PLAIN, plen) != 0) {
            snprintf(err, errcap, "%s: the master key does not match this store", path);
            r = MCPD_EDENIED;
        }
        free(plain);
        goto out;
    }
    if (rc != SQLITE_DONE) {
        r = mcpd__store_db_fail(cs->db, path, err, errcap);
        goto out;
    }
    sqlite3_finalize(q);
    q = NULL;
    if ((r = mcpd_crypto_seal(&blob, &bloblen, cs->key, KCV_AAD, strlen(KCV_AAD), KCV_PLAIN,
                              strlen(KCV_PLAIN))) != 0) {
        snprintf(err, errcap, "%s: cannot seal the key check value", path);
        goto out;
    }
    if (sqlite3_prepare_v2(cs->db, "INSERT OR IGNORE INTO credential_meta(k, v) VALUES('kcv', ?1)",
                           -1, &q, NULL) != SQLITE_OK ||
        sqlite3_bind_blob(q, 1, blob, (int)bloblen, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_DONE) {
        r = mcpd__store_db_fail(cs->db, path, err, errcap);
        goto out;
    }
    if (sqlite3_changes(cs->db) == 0) { /* another process wrote one first: compare with it */
        sqlite3_finalize(q);
        free(blob);
        return check_key(cs, path, err, errcap);
    }
out:
    sqlite3_finalize(q);
    free(blob);
    return r;
}

/* Columns added after the table first shipped (ALTER TABLE in the open transaction). */
static int add_missing_columns(sqlite3 *db, char *err, size_t errcap)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT grant_type FROM credentials LIMIT 0", -1, &q, NULL);

    sqlite3_finalize(q);
    if (rc == SQLITE_OK)
        return 0;
    return mcpd__store_db_exec(
        db, "ALTER TABLE credentials ADD COLUMN grant_type TEXT NOT NULL DEFAULT ''", err, errcap);
}

int mcpd_cred_store_open(struct mcpd_cred_store **out, const char *path, const char *key_file,
                         bool create_key, char *err, size_t errcap)
{
    struct mcpd_cred_store *cs;
    int r;

    *out = NULL;
    if ((cs = calloc(1, sizeof(*cs))) == NULL) {
        snprintf(err, errcap, "out of memory");
        return MCPD_ENOMEM;
    }
    if ((r = mcpd__store_db_open(&cs->db, path, true, MCPD_STORE_BUSY_MS, err, errcap)) != 0)
        goto fail;
    if ((r = mcpd__store_db_begin(cs->db, err, errcap)) != 0 ||
        (r = mcpd__store_db_exec(cs->db, schema_sql, err, errcap)) != 0 ||
        (r = add_missing_columns(cs->db, err, errcap)) != 0 ||
        (r = mcpd__store_db_exec(cs->db, "COMMIT", err, errcap)) != 0) {
        mcpd__store_db_rollback(cs->db);
        goto fail;
    }
    if (key_file != NULL) {
        if ((r = mcpd_crypto_master_key(cs->key, key_file, create_key, NULL, err, errcap)) != 0)
            goto fail;
        cs->has_key = true;
        if ((r = check_key(cs, path, err, errcap)) != 0)
            goto fail;
    }
    *out = cs;
    return 0;
fail:
    mcpd_cred_store_close(cs);
    return r;
}

void mcpd_cred_store_close(struct mcpd_cred_store *cs)
{
    if (cs == NULL)
        return;
    sqlite3_close(cs->db);
    OPENSSL_cleanse(cs->key, sizeof(cs->key));
    free(cs);
}

int64_t mcpd_cred_store_generation(struct mcpd_cred_store *cs)
{
    sqlite3_stmt *q = NULL;
    int64_t gen;

    if (sqlite3_prepare_v2(cs->db, "SELECT v FROM store_meta WHERE k = 'generation'", -1, &q,
                           NULL) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW)
        gen = mcpd__store_db_fail(cs->db, "generation", NULL, 0);
    else
        gen = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return gen;
}

/* ---- changes --------------------------------------------------------------------------------- */

/* Prepares sql into *q with `key` (a name or a state) bound to ?1; SQLITE_OK or sqlite's code. */
static int prepare_bound(struct mcpd_cred_store *cs, const char *sql, const char *key,
                         sqlite3_stmt **q)
{
    int rc = sqlite3_prepare_v2(cs->db, sql, -1, q, NULL);

    return rc == SQLITE_OK ? mcpd__store_db_bind_text(*q, 1, key, strlen(key)) : rc;
}

static int need_key(struct mcpd_cred_store *cs, char *err, size_t errcap)
{
    if (cs->has_key)
        return 0;
    snprintf(err, errcap, "the store was opened without the master key");
    return MCPD_ECONFIG;
}

/* Runs q (prepared, bound) as one change + generation bump; "no credential" when nothing changed.
 */
static int run_change(struct mcpd_cred_store *cs, sqlite3_stmt *q, const char *name, char *err,
                      size_t errcap)
{
    int rc = sqlite3_step(q), r;

    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return user_error(err, errcap, "credential ", name, " already exists");
    if (rc != SQLITE_DONE)
        return mcpd__store_db_fail(cs->db, "credentials", err, errcap);
    if (sqlite3_changes(cs->db) == 0)
        return user_error(err, errcap, "no credential named ", name, "");
    r = mcpd__store_db_exec(cs->db, "UPDATE store_meta SET v = v + 1 WHERE k = 'generation'", err,
                            errcap);
    return r;
}

static int finish(struct mcpd_cred_store *cs, sqlite3_stmt *q, int r, char *err, size_t errcap)
{
    sqlite3_finalize(q);
    if (r == 0)
        r = mcpd__store_db_exec(cs->db, "COMMIT", err, errcap);
    if (r != 0)
        mcpd__store_db_rollback(cs->db);
    return r;
}

int mcpd_cred_store_add(struct mcpd_cred_store *cs, const char *name,
                        enum mcpd_credential_kind kind, const char *provider, const char *secret,
                        char *err, size_t errcap)
{
    unsigned char *blob = NULL;
    size_t bloblen = 0;
    sqlite3_stmt *q = NULL;
    int64_t now = mcpd__store_db_now_ms();
    int r;

    if ((r = check_name(name, err, errcap)) != 0)
        return r;
    if (kind == MCPD_CRED_OAUTH2) {
        if (provider == NULL || !mcpd_cred_name_valid(provider))
            return user_error(err, errcap, "invalid provider name ", provider ? provider : "", "");
    } else {
        json_t *obj;

        if ((r = need_key(cs, err, errcap)) != 0)
            return r;
        if (secret == NULL || secret[0] == '\0') {
            snprintf(err, errcap, "the secret is empty");
            return MCPD_ECONFIG;
        }
        if ((obj = json_pack("{s:s}", "secret", secret)) == NULL) {
            snprintf(err, errcap, "the secret is not valid UTF-8");
            return MCPD_ECONFIG;
        }
        r = seal_json(cs, name, "secret", obj, &blob, &bloblen);
        OPENSSL_cleanse((char *)json_string_value(json_object_get(obj, "secret")), strlen(secret));
        json_decref(obj);
        if (r != 0) {
            snprintf(err, errcap, "cannot seal the secret: %s", mcpd_strerror(r));
            return r;
        }
    }
    if ((r = mcpd__store_db_begin(cs->db, err, errcap)) != 0)
        goto out;
    if (prepare_bound(cs,
                      "INSERT INTO credentials(name, kind, provider, status, secret, "
                      "created_ms, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                      name, &q) != SQLITE_OK ||
        sqlite3_bind_text(q, 2, mcpd_cred_kind_name(kind), -1, SQLITE_STATIC) != SQLITE_OK ||
        mcpd__store_db_bind_text(q, 3, provider ? provider : "", provider ? strlen(provider) : 0) !=
            SQLITE_OK ||
        sqlite3_bind_text(q, 4, kind == MCPD_CRED_OAUTH2 ? "pending" : "ok", -1, SQLITE_STATIC) !=
            SQLITE_OK ||
        (blob ? sqlite3_bind_blob(q, 5, blob, (int)bloblen, SQLITE_STATIC)
              : sqlite3_bind_null(q, 5)) != SQLITE_OK ||
        sqlite3_bind_int64(q, 6, now) != SQLITE_OK) {
        r = mcpd__store_db_fail(cs->db, "credentials", err, errcap);
        r = finish(cs, q, r, err, errcap);
        goto out;
    }
    r = finish(cs, q, run_change(cs, q, name, err, errcap), err, errcap);
out:
    free(blob);
    return r;
}

int mcpd_cred_store_delete(struct mcpd_cred_store *cs, const char *name, char *err, size_t errcap)
{
    sqlite3_stmt *q = NULL;
    int r;

    if ((r = check_name(name, err, errcap)) != 0)
        return r;
    if ((r = mcpd__store_db_begin(cs->db, err, errcap)) != 0)
        return r;
    if (prepare_bound(cs, "DELETE FROM credential_pending WHERE name = ?1", name, &q) !=
            SQLITE_OK ||
        sqlite3_step(q) != SQLITE_DONE) {
        r = mcpd__store_db_fail(cs->db, "credentials", err, errcap);
        return finish(cs, q, r, err, errcap);
    }
    sqlite3_finalize(q);
    q = NULL;
    if (prepare_bound(cs, "DELETE FROM credentials WHERE name = ?1", name, &q) != SQLITE_OK)
        return finish(cs, q, mcpd__store_db_fail(cs->db, "credentials", err, errcap), err, errcap);
    return finish(cs, q, run_change(cs, q, name, err, errcap), err, errcap);
}

int mcpd_cred_store_set_tokens(struct mcpd_cred_store *cs, const char *name,
                               const char *access_token, const char *refresh_token,
                               int64_t expires_ms, const char *scopes, const char *grant, char *err,
                               size_t errcap)
{
    struct mcpd_cred_row old;
    unsigned char *blob = NULL;
    size_t bloblen = 0;
    sqlite3_stmt *q = NULL;
    json_t *obj = NULL;
    int r;

    memset(&old, 0, sizeof(old));
    if ((r = check_name(name, err, errcap)) != 0 || (r = need_key(cs, err, errcap)) != 0)
        return r;
    if ((r = mcpd__store_db_begin(cs->db, err, errcap)) != 0)
        return r;
    if (refresh_token == NULL && grant == NULL) { /* a refresh: keep the stored refresh token */
        if ((r = mcpd_cred_store_get(cs, name, &old, err, errcap)) != 0)
            goto out;
        refresh_token = old.refresh_token;
    }
    obj = json_pack("{s:s}", "access_token", access_token);
    if (obj != NULL && refresh_token != NULL)
        json_object_set_new(obj, "refresh_token", json_string(refresh_token));
    if (obj == NULL || (r = seal_json(cs, name, "secret", obj, &blob, &bloblen)) != 0) {
        snprintf(err, errcap, "cannot seal the tokens");
        r = r ? r : MCPD_ENOMEM;
        goto out;
    }
    if (prepare_bound(cs,
                      "UPDATE credentials SET secret = ?2, expires_ms = ?3, "
                      "scopes = COALESCE(?4, scopes), status = 'ok', last_error = '', "
                      "updated_ms = ?5, refreshed_ms = ?5, grant_type = COALESCE(?6, "
                      "grant_type) WHERE name = ?1 AND kind = 'oauth2'",
                      name, &q) != SQLITE_OK ||
        sqlite3_bind_blob(q, 2, blob, (int)bloblen, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(q, 3, expires_ms) != SQLITE_OK ||
        mcpd__store_db_bind_text(q, 4, scopes, scopes ? strlen(scopes) : 0) != SQLITE_OK ||
        sqlite3_bind_int64(q, 5, mcpd__store_db_now_ms()) != SQLITE_OK ||
        mcpd__store_db_bind_text(q, 6, grant, grant ? strlen(grant) : 0) != SQLITE_OK) {
        r = mcpd__store_db_fail(cs->db, "credentials", err, errcap);
        goto out;
    }
    r = run_change(cs, q, name, err, errcap);
out:
    if (obj != NULL) {
        const char *k;
        json_t *v;

        json_object_foreach (obj, k, v) {
            OPENSSL_cleanse((char *)json_string_value(v), json_string_length(v));
        }
        json_decref(obj);
    }
    mcpd_cred_row_dispose(&old);
    free(blob);
    return finish(cs, q, r, err, errcap);
}

int mcpd_cred_store_set_status(struct mcpd_cred_store *cs, const char *name,
                               enum mcpd_cred_status status, const char *last_error, char *err,
                               size_t errcap)
{
    sqlite3_stmt *q = NULL;
    int r;

    if ((r = check_name(name, err, errcap)) != 0)
        return r;
    if ((r = mcpd__store_db_begin(cs->db, err, errcap)) != 0)
        return r;
    if (prepare_bound(cs,
                      "UPDATE credentials SET status = ?2, last_error = ?3, updated_ms = ?4 "
                      "WHERE name = ?1",
                      name, &q) != SQLITE_OK ||
        sqlite3_bind_text(q, 2, mcpd_cred_status_name(status), -1, SQLITE_STATIC) != SQLITE_OK ||
        mcpd__store_db_bind_text(q, 3, last_error ? last_error : "",
                                 last_error ? strnlen(last_error, 255) : 0) != SQLITE_OK ||
        sqlite3_bind_int64(q, 4, mcpd__store_db_now_ms()) != SQLITE_OK)
        return finish(cs, q, mcpd__store_db_fail(cs->db, "credentials", err, errcap), err, errcap);
    return finish(cs, q, run_change(cs, q, name, err, errcap), err, errcap);
}

/* ---- reading --------------------------------------------------------------------------------- */

#define ROW_COLUMNS                                                                             \
    "SELECT name, kind, provider, status, secret, expires_ms, scopes, created_ms, updated_ms, " \
    "refreshed_ms, last_error, grant_type FROM credentials "

static void read_row(struct mcpd_cred_store *cs, sqlite3_stmt *q, bool decrypt,
                     struct mcpd_cred_row *row)
{
    char kind[16], status[16];
    int k;

    memset(row, 0, sizeof(*row));
    mcpd__store_db_column_text(row->name, sizeof(row->name), q, 0);
    mcpd__store_db_column_text(kind, sizeof(kind), q, 1);
    k = mcpd_cred_kind_parse(kind);
    row->kind = k > 0 ? (enum mcpd_credential_kind)k : MCPD_CRED_API_KEY;
    mcpd__store_db_column_text(row->provider, sizeof(row->provider), q, 2);
    mcpd__store_db_column_text(status, sizeof(status), q, 3);
    row->status = status_parse(status);
    row->expires_ms = sqlite3_column_int64(q, 5);
    mcpd__store_db_column_text(row->scopes, sizeof(row->scopes), q, 6);
    row->created_ms = sqlite3_column_int64(q, 7);
    row->updated_ms = sqlite3_column_int64(q, 8);
    row->refreshed_ms = sqlite3_column_int64(q, 9);
    mcpd__store_db_column_text(row->last_error, sizeof(row->last_error), q, 10);
    mcpd__store_db_column_text(row->grant, sizeof(row->grant), q, 11);
    if (k < 0)
        row->damaged = true;
    else if (decrypt && cs->has_key)
        open_row(cs, row, sqlite3_column_blob(q, 4), (size_t)sqlite3_column_bytes(q, 4));
}

void mcpd_cred_row_dispose(struct mcpd_cred_row *row)
{
    if (row == NULL)
        return;
    mcpd_crypto_free_str(row->secret);
    mcpd_crypto_free_str(row->access_token);
    mcpd_crypto_free_str(row->refresh_token);
    row->secret = row->access_token = row->refresh_token = NULL;
}

void mcpd_cred_rows_free(struct mcpd_cred_row *rows, size_t n)
{
    for (size_t i = 0; rows != NULL && i < n; i++)
        mcpd_cred_row_dispose(&rows[i]);
    free(rows);
}

int mcpd_cred_store_get(struct mcpd_cred_store *cs, const char *name, struct mcpd_cred_row *row,
                        char *err, size_t errcap)
{
    sqlite3_stmt *q = NULL;
    int r = 0, rc;

    memset(row, 0, sizeof(*row));
    if ((r = check_name(name, err, errcap)) != 0)
        return r;
    if (prepare_bound(cs, ROW_COLUMNS "WHERE name = ?1", name, &q) != SQLITE_OK) {
        r = mcpd__store_db_fail(cs->db, "credentials", err, errcap);
        goto out;
    }
    rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        read_row(cs, q, true, row);
    else if (rc == SQLITE_DONE)
        r = user_error(err, errcap, "no credential named ", name, "");
    else
        r = mcpd__store_db_fail(cs->db, "credentials", err, errcap);
out:
    sqlite3_finalize(q);
    return r;
}

int mcpd_cred_store_list(struct mcpd_cred_store *cs, bool decrypt, struct mcpd_cred_row **rows,
                         size_t *n, int64_t *gen, char *err, size_t errcap)
{
    sqlite3_stmt *q = NULL;
    struct mcpd_cred_row *v = NULL, *p;
    size_t cnt = 0, cap = 0;
    int r, rc;

    *rows = NULL;
    *n = 0;
    if ((r = mcpd__store_db_exec(cs->db, "BEGIN", err, errcap)) != 0)
        return r;
    if (gen != NULL && (*gen = mcpd_cred_store_generation(cs)) < 0) {
        r = mcpd__store_db_fail(cs->db, "generation", err, errcap);
        goto out;
    }
    if (sqlite3_prepare_v2(cs->db, ROW_COLUMNS "ORDER BY name", -1, &q, NULL) != SQLITE_OK) {
        r = mcpd__store_db_fail(cs->db, "credentials", err, errcap);
        goto out;
    }
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            if ((p = realloc(v, cap * sizeof(*p))) == NULL) {
                snprintf(err, errcap, "out of memory");
                r = MCPD_ENOMEM;
                goto out;
            }
            v = p;
        }
        read_row(cs, q, decrypt, &v[cnt++]);
    }
    if (rc != SQLITE_DONE)
        r = mcpd__store_db_fail(cs->db, "credentials", err, errcap);
out:
    sqlite3_finalize(q);
    if (r == 0)
        r = mcpd__store_db_exec(cs->db, "COMMIT", err, errcap);
    if (r != 0) {
        mcpd__store_db_rollback(cs->db);
        mcpd_cred_rows_free(v, cnt);
        return r;
    }
    *rows = v;
    *n = cnt;
    return 0;
}

/* ---- pending authorizations ------------------------------------------------------------------ */

int mcpd_cred_store_pending_add(struct mcpd_cred_store *cs, const char *state, const char *name,
                                const char *verifier, char *err, size_t errcap)
{
    unsigned char *blob = NULL;
    size_t bloblen;
    sqlite3_stmt *q = NULL;
    int64_t now = mcpd__store_db_now_ms();
    int r;

    if ((r = check_name(name, err, errcap)) != 0 || (r = need_key(cs, err, errcap)) != 0)
        return r;
    if ((r = seal_text(cs, state, "verifier", verifier, &blob, &bloblen)) != 0) {
        snprintf(err, errcap, "cannot seal the verifier");
        return r;
    }
    if ((r = mcpd__store_db_begin(cs->db, err, errcap)) != 0)
        goto out;
    /* expired ones go first */
    if ((r = mcpd__store_db_exec(cs->db,
                                 "DELETE FROM credential_pending WHERE expires_ms < "
                                 "CAST(strftime('%s','now') AS INTEGER) * 1000",
                                 err, errcap)) != 0) {
        r = finish(cs, q, r, err, errcap);
        goto out;
    }
    if (prepare_bound(cs,
                      "INSERT INTO credential_pending(state, name, verifier, expires_ms) "
                      "VALUES(?1, ?2, ?3, ?4)",
                      state, &q) != SQLITE_OK ||
        mcpd__store_db_bind_text(q, 2, name, strlen(name)) != SQLITE_OK ||
        sqlite3_bind_blob(q, 3, blob, (int)bloblen, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_int64(q, 4, now + MCPD_CRED_PENDING_MS) != SQLITE_OK) {
        r = finish(cs, q, mcpd__store_db_fail(cs->db, "credential_pending", err, errcap), err,
                   errcap);
        goto out;
    }
    r = finish(cs, q, run_change(cs, q, name, err, errcap), err, errcap);
out:
    free(blob);
    return r;
}

int mcpd_cred_store_pending_take(struct mcpd_cred_store *cs, const char *state,
                                 char name_out[MCPD_CRED_NAME_MAX + 1], char **verifier, char *err,
                                 size_t errcap)
{
    sqlite3_stmt *q = NULL;
    int64_t expires = 0;
    char *v = NULL;
    int r, rc;

    *verifier = NULL;
    name_out[0] = '\0';
    if ((r = need_key(cs, err, errcap)) != 0)
        return r;
    if ((r = mcpd__store_db_begin(cs->db, err, errcap)) != 0)
        return r;
    if (prepare_bound(cs,
                      "DELETE FROM credential_pending WHERE state = ?1 "
                      "RETURNING name, verifier, expires_ms",
                      state, &q) != SQLITE_OK) {
        r = mcpd__store_db_fail(cs->db, "credential_pending", err, errcap);
        goto out;
    }
    rc = sqlite3_step(q);
    if (rc == SQLITE_DONE) {
        snprintf(err, errcap, "unknown or already used state");
        r = MCPD_EDENIED;
        goto out;
    }
    if (rc != SQLITE_ROW) {
        r = mcpd__store_db_fail(cs->db, "credential_pending", err, errcap);
        goto out;
    }
    mcpd__store_db_column_text(name_out, MCPD_CRED_NAME_MAX + 1, q, 0);
    expires = sqlite3_column_int64(q, 2);
    if (open_text(cs, state, "verifier", sqlite3_column_blob(q, 1),
                  (size_t)sqlite3_column_bytes(q, 1), &v) != 0) {
        snprintf(err, errcap, "the pending authorization is damaged (or the master key changed)");
        r = MCPD_EDENIED;
        goto out;
    }
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
    }
    if (rc != SQLITE_DONE) {
        r = mcpd__store_db_fail(cs->db, "credential_pending", err, errcap);
        goto out;
    }
    sqlite3_finalize(q);
    q = NULL;
    /* the row is gone either way: an expired state is not retried */
    r = mcpd__store_db_exec(cs->db, "UPDATE store_meta SET v = v + 1 WHERE k = 'generation'", err,
                            errcap);
    if (r == 0 && expires < mcpd__store_db_now_ms()) {
        r = finish(cs, q, 0, err, errcap);
        snprintf(err, errcap, "the authorization expired (10 minutes): run authorize again");
        mcpd_crypto_free_str(v);
        return r ? r : MCPD_EDENIED;
    }
out:
    r = finish(cs, q, r, err, errcap);
    if (r != 0) {
        mcpd_crypto_free_str(v);
        name_out[0] = '\0';
        return r;
    }
    *verifier = v;
    return 0;
}
