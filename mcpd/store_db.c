/*
 * store_db.c - sqlite plumbing shared by the store and the audit log (see
 * store_db.h). Every connection gets a bounded busy timeout; writable ones
 * run in WAL mode with synchronous=FULL, so a commit that returned is on
 * disk (the WAL is fsynced at every commit) and survives kill -9 and power
 * loss alike. Group commit in the audit writer makes that one fsync per
 * batch, not per record.
 */
#include "store_db.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <uv.h>

#include "error.h"

#define WAL_SIZE_LIMIT "67108864" /* bytes the WAL keeps after a checkpoint */

/*
 * Creates the file 0600 when missing, and refuses one we cannot write.
 * An existing file is never opened and closed here: closing any descriptor
 * of a file drops every POSIX lock this process holds on it, including
 * sqlite's for connections already open (the audit and the store watcher
 * share the file). Without those locks another process (mcpd bots ...)
 * takes itself for the last user and deletes the WAL under our feet.
 */
static int precreate(const char *path, char *err, size_t errcap)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int e;

    if (fd >= 0) { /* we made it: nobody can hold locks on it yet */
        close(fd);
        return 0;
    }
    e = errno;
    if (e == EEXIST && access(path, R_OK | W_OK) == 0)
        return 0;
    if (e == EEXIST)
        e = errno;
    snprintf(err, errcap, "%s: cannot open for writing: %s", path, strerror(e));
    return uv_translate_sys_error(e);
}

int mcpd__store_db_code(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_NOMEM:
        return MCPD_ENOMEM;
    case SQLITE_FULL:
        return UV_ENOSPC;
    case SQLITE_READONLY:
    case SQLITE_PERM:
        return UV_EROFS;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return UV_EBUSY;
    default:
        return UV_EIO;
    }
}

int mcpd__store_db_fail(sqlite3 *db, const char *what, char *err, size_t errcap)
{
    int rc = db ? sqlite3_errcode(db) : SQLITE_NOMEM;
    int r = mcpd__store_db_code(rc);

    if (err != NULL && errcap > 0)
        snprintf(err, errcap, "%s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
    return r != 0 ? r : UV_EIO;
}

int mcpd__store_db_exec(sqlite3 *db, const char *sql, char *err, size_t errcap)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return mcpd__store_db_fail(db, "sqlite", err, errcap);
    return 0;
}

/* PRAGMA journal_mode answers with the mode it ended up in: insist on WAL. */
static int set_wal(sqlite3 *db, const char *path, char *err, size_t errcap)
{
    sqlite3_stmt *st = NULL;
    int r = 0;

    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        r = mcpd__store_db_fail(db, path, err, errcap);
        goto out;
    }
    if (sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
        snprintf(err, errcap, "%s: cannot use WAL journal mode", path);
        r = UV_EIO;
    }
out:
    sqlite3_finalize(st);
    return r;
}

static int setup_writable(sqlite3 *db, const char *path, char *err, size_t errcap)
{
    int r;

    if (sqlite3_db_readonly(db, "main") == 1) {
        snprintf(err, errcap, "%s: database is read-only", path);
        return UV_EROFS;
    }
    if ((r = set_wal(db, path, err, errcap)) != 0)
        return r;
    if (sqlite3_exec(db,
                     "PRAGMA synchronous=FULL;"
                     "PRAGMA journal_size_limit=" WAL_SIZE_LIMIT ";",
                     NULL, NULL, NULL) != SQLITE_OK)
        return mcpd__store_db_fail(db, path, err, errcap);
    return 0;
}

int mcpd__store_db_open(sqlite3 **out, const char *path, bool writable, int busy_ms, char *err,
                        size_t errcap)
{
    sqlite3 *db = NULL;
    int flags = writable ? SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY;
    int r;

    *out = NULL;
    if (writable && (r = precreate(path, err, errcap)) != 0)
        return r;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        r = mcpd__store_db_fail(db, path, err, errcap);
        goto out;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, busy_ms > 0 ? busy_ms : MCPD_STORE_BUSY_MS);
    if (writable && (r = setup_writable(db, path, err, errcap)) != 0)
        goto out;
    *out = db;
    db = NULL;
    r = 0;
out:
    sqlite3_close(db);
    return r;
}

int mcpd__store_db_begin(sqlite3 *db, char *err, size_t errcap)
{
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return mcpd__store_db_fail(db, "begin", err, errcap);
    return 0;
}

void mcpd__store_db_rollback(sqlite3 *db)
{
    if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

int mcpd__store_db_bind_text(sqlite3_stmt *st, int idx, const char *s, size_t len)
{
    if (s == NULL)
        return sqlite3_bind_null(st, idx);
    return sqlite3_bind_text64(st, idx, s, (sqlite3_uint64)len, SQLITE_STATIC, SQLITE_UTF8);
}

void mcpd__store_db_column_text(char *dst, size_t cap, sqlite3_stmt *q, int col)
{
    const unsigned char *s = sqlite3_column_text(q, col);
    int len = sqlite3_column_bytes(q, col);
    size_t n = s == NULL || len < 0 ? 0 : (size_t)len;

    if (n >= cap)
        n = cap - 1;
    if (n > 0)
        memcpy(dst, s, n);
    dst[n] = '\0';
}

/*
 * SHA-256 is fetched from OpenSSL's provider once: EVP_sha256() in
 * EVP_Digest fetches it again on every call, which showed at the top of the
 * audit's profile. EVP_MD objects are immutable and shared between threads.
 */
static EVP_MD *sha256_md;
static uv_once_t sha256_once = UV_ONCE_INIT;

static void fetch_sha256(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

int mcpd__store_db_sha256(unsigned char out[32], const void *p, size_t n)
{
    unsigned int len = 32;

    uv_once(&sha256_once, fetch_sha256);
    /* EVP_Digest on SHA-256 fails only when OpenSSL cannot allocate. */
    if (EVP_Digest(p, n, out, &len, sha256_md ? sha256_md : EVP_sha256(), NULL) != 1 || len != 32) {
        memset(out, 0, 32);
        return MCPD_ENOMEM;
    }
    return 0;
}

void mcpd__store_db_hex(char *out, const unsigned char *in, size_t n)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int64_t mcpd__store_db_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
