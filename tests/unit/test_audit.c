/*
 * test_audit.c - the audit log (mcpd/audit*.c) on real sqlite files in a
 * fresh mkdtemp directory per test, driven from a real uv loop.
 *
 * Covers: N records -> N rows, N callbacks with status 0, and a chain that
 * verifies; redaction, NUL and the argument cap, asserted on the stored
 * text; tampering (an edited column, a changed storage class, a deleted
 * middle row, a reordered pair, a truncated tail) named by verify;
 * retention by rows and by age keeping the chain verifiable; failing
 * closed on a held write lock (SQLITE_BUSY past the busy timeout: the
 * journal kept and chained at the next open), on a full file (RLIMIT_FSIZE,
 * in a child) and on a read-only file; close flushing what is queued;
 * print with filters, JSON lines and escaped control characters; the
 * journal (a torn tail, a damaged line, bytes not UTF-8, the watermark,
 * rotation, two writer processes, late outcomes); and crash safety: a
 * child killed with SIGKILL in the middle of writing leaves a database
 * that passes integrity_check and, once its journal is chained, a chain
 * that verifies and holds every record it acknowledged.
 *
 * Forked children never call cmocka: they report through their exit code.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* cmocka.h needs these four first. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <uv.h>

#include "helpers.h"
#include "mcpd/audit.h"
#include "mcpd/audit_int.h"
#include "mcpd/error.h"
#include "mcpd/store.h"

/* ---- fixture --------------------------------------------------------------------------------- */

struct fixture {
    char dir[64];
    char path[128];
    uv_loop_t loop;
    struct mcpd_audit *a;
    struct mcpd_audit_options o;
    int ncb, nok, nerr, last_status;
    int nacked, ncb_at_acked; /* the acked hook: runs, and callbacks run before its last run */
    bool closed;
    char err[256];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    test_make_dir(f->dir, sizeof(f->dir), "audit");
    snprintf(f->path, sizeof(f->path), "%s/mcpd.db", f->dir);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->o.path = f->path;
    *state = f;
    return 0;
}

static void on_closed(void *data)
{
    ((struct fixture *)data)->closed = true;
}

static void close_audit(struct fixture *f)
{
    if (f->a == NULL)
        return;
    mcpd_audit_close(f->a, on_closed, f);
    while (!f->closed)
        uv_run(&f->loop, UV_RUN_ONCE);
    f->a = NULL;
    f->closed = false;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    close_audit(f);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    test_remove_dir(f->dir);
    free(f);
    return 0;
}

static void open_audit(struct fixture *f)
{
    if (mcpd_audit_open(&f->a, &f->loop, &f->o, f->err, sizeof(f->err)) != 0)
        fail_msg("audit open: %s", f->err);
}

static void on_ack(int status, void *data)
{
    struct fixture *f = data;

    f->ncb++;
    f->last_status = status;
    if (status == 0)
        f->nok++;
    else
        f->nerr++;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until f->ncb reaches want (or 30 s pass). */
static void run_until(struct fixture *f, int want)
{
    uv_timer_t tick;
    uint64_t end = uv_hrtime() + 30ull * 1000000000u;

    uv_timer_init(&f->loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    while (f->ncb < want && uv_hrtime() < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->ncb, want);
}

static void fill_record(struct mcpd_audit_record *r, int i, char *tool, size_t cap)
{
    static const char *const bots[] = { "alice", "bob", "carol" };
    static const char *const locs[] = { "local", "remote:gh", "plugin:fs" };

    memset(r, 0, sizeof(*r));
    snprintf(tool, cap, "tool%d", i % 7);
    r->kind = (enum mcpd_audit_kind)(i % 4);
    r->bot = bots[i % 3];
    r->session = "s-1";
    r->transport = "http";
    r->resource = "fs";
    r->tool = tool;
    r->location = locs[i % 3];
    r->decision = i % 4 == 1 ? "deny" : "allow";
    r->reason = i % 4 == 1 ? "path outside /srv" : NULL;
    r->args_json = "{\"path\":\"/srv/a\",\"n\":1}";
    r->args_len = strlen(r->args_json);
    r->status = "ok";
    r->latency_us = 100 + i;
}

/* Submits n generic records from the loop thread and waits for their callbacks. */
static void submit_n(struct fixture *f, int n)
{
    struct mcpd_audit_record r;
    char tool[32];
    int base = f->ncb;

    for (int i = 0; i < n; i++) {
        fill_record(&r, base + i, tool, sizeof(tool));
        assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
    }
    run_until(f, base + n);
}

/* ---- raw sqlite helpers ---------------------------------------------------------------------- */

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/*
 * Tampering goes through the view `audit`: tests/e2e/audit-tamper.sql
 * holds temporary triggers that turn an UPDATE or a one-row DELETE of a
 * record into the edit of its element in the audit_block row.
 */
static char *tamper_triggers(void)
{
    const char *src = getenv("MCPD_SOURCE_DIR");
    char path[512];
    FILE *fp;
    char *text;
    long n;

    snprintf(path, sizeof(path), "%s/tests/e2e/audit-tamper.sql", src ? src : ".");
    if ((fp = fopen(path, "rb")) == NULL)
        fail_msg("%s: cannot open (MCPD_SOURCE_DIR?)", path);
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    rewind(fp);
    text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    return text;
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = raw_open(path);
    char *msg = NULL;

    if (sqlite3_exec(db, "SELECT 1 FROM audit_block LIMIT 0", NULL, NULL, NULL) == SQLITE_OK) {
        char *t = tamper_triggers();
        int rc = sqlite3_exec(db, t, NULL, NULL, &msg);

        free(t);
        if (rc != SQLITE_OK)
            fail_msg("triggers: %s", msg);
    }
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db = raw_open(path);
    sqlite3_stmt *st = NULL;
    int64_t v;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The text of one column of one row, copied (free()), with its length. */
static char *raw_text(const char *path, const char *sql, size_t *len)
{
    sqlite3 *db = raw_open(path);
    sqlite3_stmt *st = NULL;
    char *out;
    int n;

    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    n = sqlite3_column_bytes(st, 0);
    out = malloc((size_t)n + 1);
    assert_non_null(out);
    memcpy(out, sqlite3_column_text(st, 0), (size_t)n);
    out[n] = '\0';
    *len = (size_t)n;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static void sha256_hex(char out[65], const char *p, size_t n)
{
    unsigned char md[32];
    unsigned int len = 32;

    assert_int_equal(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(out + (size_t)2 * i, 3, "%02x", md[i]);
}

static void assert_verifies(const char *path, int64_t want_rows)
{
    int64_t rows = -1, bad = -1;
    char err[256] = "";
    int r = mcpd_audit_verify(path, NULL, &rows, &bad, err, sizeof(err));

    if (r != 0)
        fail_msg("verify: %d bad row %lld (%s)", r, (long long)bad, err);
    assert_int_equal(rows, want_rows);
}

static void assert_bad_row(const char *path, int64_t want_bad)
{
    int64_t rows = -1, bad = -1;
    char err[256] = "";

    assert_int_equal(mcpd_audit_verify(path, NULL, &rows, &bad, err, sizeof(err)), 1);
    assert_int_equal(bad, want_bad);
}

/* ---- volume and the chain -------------------------------------------------------------------- */

static void test_many_records(void **state)
{
    enum { N = 5000 };
    struct fixture *f = *state;

    open_audit(f);
    submit_n(f, N);
    assert_int_equal(f->nok, N);
    assert_int_equal(f->nerr, 0);
    close_audit(f);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), N);
    assert_int_equal(raw_int(f->path, "SELECT min(id) FROM audit"), 1);
    assert_int_equal(raw_int(f->path, "SELECT max(id) FROM audit"), N);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit WHERE kind = 'deny'"), N / 4);
    assert_verifies(f->path, N);
    /* a reopened audit continues the chain */
    open_audit(f);
    submit_n(f, 10);
    close_audit(f);
    assert_verifies(f->path, N + 10);
}

static void test_record_fields(void **state)
{
    struct fixture *f = *state;
    struct mcpd_audit_record r = { 0 };
    struct stat sb;
    size_t len;
    char *s;

    open_audit(f);
    r.kind = MCPD_AUDIT_AUTH;
    r.time_ms = 1700000000123LL;
    r.bot = "alice";
    r.status = "denied";
    assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
    assert_int_equal(f->ncb, 0); /* never synchronously */
    memset(&r, 0, sizeof(r));    /* strings and record were copied */
    run_until(f, 1);
    assert_int_equal(f->last_status, 0);
    close_audit(f);
    s = raw_text(f->path, "SELECT kind || '|' || bot || '|' || status FROM audit", &len);
    assert_string_equal(s, "auth|alice|denied");
    free(s);
    assert_int_equal(raw_int(f->path, "SELECT time_ms FROM audit"), 1700000000123LL);
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600); /* arguments and key hashes: owner only */
    assert_int_equal(raw_int(f->path, "SELECT tool IS NULL AND args IS NULL AND args_digest IS "
                                      "NULL AND args_truncated = 0 FROM audit"),
                     1);
    assert_verifies(f->path, 1);
}

/* ---- arguments ------------------------------------------------------------------------------- */

static void submit_args(struct fixture *f, const char *json, size_t len)
{
    struct mcpd_audit_record r = { 0 };
    int base = f->ncb;

    r.kind = MCPD_AUDIT_CALL;
    r.tool = "t";
    r.args_json = json;
    r.args_len = len;
    assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
    run_until(f, base + 1);
    assert_int_equal(f->last_status, 0);
}

static bool file_has(const char *path, const char *needle)
{
    return test_file_contains(path, needle, strlen(needle));
}

static void test_redaction(void **state)
{
    static const char args[] =
        "{\"user\":\"bob\",\"password\":\"hunter2\",\"nested\":{\"apiKey\":\"k-1\",\"list\":"
        "[{\"Authorization\":\"Bearer zzz\"},{\"cookie\":{\"sid\":\"c00k\"}}],\"depth\":{\"a\":"
        "{\"b\":{\"client_secret\":\"s3cr3t\"}}}},\"headers\":[{\"name\":\"X-Api-Key\",\"value\":"
        "\"v-1\"},{\"name\":\"Accept\",\"value\":\"*/*\"}],\"token_count\":3,\"SESSION-KEY\":[1]}";
    static const char want[] =
        "{\"SESSION-KEY\":\"***\",\"headers\":[{\"name\":\"X-Api-Key\",\"value\":\"***\"},"
        "{\"name\":\"Accept\",\"value\":\"*/"
        "*\"}],\"nested\":{\"apiKey\":\"***\",\"depth\":{\"a\":{\"b\":"
        "{\"client_secret\":\"***\"}}},\"list\":[{\"Authorization\":\"***\"},{\"cookie\":\"***\"}]"
        "},\"password\":\"***\",\"token_count\":\"***\",\"user\":\"bob\"}";
    struct fixture *f = *state;
    char digest[65];
    size_t len;
    char *s;

    open_audit(f);
    submit_args(f, args, strlen(args));
    close_audit(f);
    s = raw_text(f->path, "SELECT args FROM audit", &len);
    assert_string_equal(s, want);
    free(s);
    /* the digest covers the redacted text, never the secrets */
    sha256_hex(digest, want, strlen(want));
    s = raw_text(f->path, "SELECT args_digest FROM audit", &len);
    assert_string_equal(s, digest);
    free(s);
    assert_int_equal(raw_int(f->path, "SELECT args_truncated FROM audit"), 0);
    assert_false(file_has(f->path, "hunter2"));
    assert_false(file_has(f->path, "s3cr3t"));
    assert_false(file_has(f->path, "Bearer zzz"));
    assert_true(file_has(f->path, "X-Api-Key")); /* the right file was searched */
    assert_verifies(f->path, 1);

    assert_true(mcpd_audit_key_is_secret("DB_PASSWORD", 11));
    assert_true(mcpd_audit_key_is_secret("x-api-key", 9));
    assert_true(mcpd_audit_key_is_secret("private.key", 11));
    assert_true(mcpd_audit_key_is_secret("Passwd", 6));
    assert_false(mcpd_audit_key_is_secret("path", 4));
    assert_false(mcpd_audit_key_is_secret("api", 3));
    assert_false(mcpd_audit_key_is_secret("tok", 3));
    assert_true(mcpd_audit_key_is_secret("my-- Session . Key", 18));
    assert_false(mcpd_audit_key_is_secret("tokenize", 3)); /* only len bytes count */
    {
        /* longer than the folded copy: the slow scan still finds the word at the end */
        char longkey[300];
        memset(longkey, 'x', sizeof(longkey));
        memcpy(longkey + sizeof(longkey) - 6, "_tOKen", 6);
        assert_true(mcpd_audit_key_is_secret(longkey, sizeof(longkey)));
        assert_false(mcpd_audit_key_is_secret(longkey, sizeof(longkey) - 6));
    }
}

/* The rule, written plainly: some word is a substring of the key folded (case, separators). */
static bool secret_reference(const char *key, size_t len)
{
    static const char *const words[] = { "password",   "passwd",     "passphrase",    "secret",
                                         "token",      "apikey",     "authorization", "cookie",
                                         "credential", "privatekey", "sessionkey" };
    char folded[64];
    size_t n = 0;

    for (size_t i = 0; i < len && n < sizeof(folded) - 1; i++) {
        char c = key[i];
        if (c == '-' || c == '_' || c == '.' || c == ' ')
            continue;
        folded[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    folded[n] = '\0';
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strstr(folded, words[i]) != NULL)
            return true;
    return false;
}

/* Every word at every offset, cut short, with separators and capitals, and random keys. */
static void test_secret_keys_against_rule(void **state)
{
    static const char *const words[] = { "password",   "passwd",     "passphrase",    "secret",
                                         "token",      "apikey",     "authorization", "cookie",
                                         "credential", "privatekey", "sessionkey" };
    static const char alphabet[] = "acpstokenwrdhiyvlACPST-_. ";
    uint32_t rnd = 12345;
    char key[48];
    int positives = 0;

    (void)state;
    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
        size_t wl = strlen(words[w]);

        for (size_t pre = 0; pre < 6; pre++)
            for (size_t cut = 0; cut <= 2; cut++) {
                size_t n = 0;

                for (size_t i = 0; i < pre; i++)
                    key[n++] = "xpa_s"[i % 5];
                for (size_t i = 0; i + cut < wl; i++) {
                    key[n++] = (char)(i % 2 ? words[w][i] - 32 : words[w][i]);
                    if (i == 1)
                        key[n++] = '-';
                }
                key[n++] = 'z';
                assert_int_equal(mcpd_audit_key_is_secret(key, n), secret_reference(key, n));
                assert_int_equal(mcpd_audit_key_is_secret(key, n), cut == 0);
            }
    }
    for (int t = 0; t < 200000; t++) {
        size_t n;

        size_t want;

        rnd = rnd * 1103515245u + 12345u;
        want = (rnd >> 16) % 30;
        for (n = 0; n < want;) {
            rnd = rnd * 1103515245u + 12345u;
            if ((rnd >> 16) % 4 == 0) {
                /* a word, maybe cut short, its letters in either case */
                const char *wd = words[(rnd >> 18) % (sizeof(words) / sizeof(words[0]))];
                size_t wl = strlen(wd) - (rnd >> 24) % 2;

                for (size_t i = 0; i < wl && n < sizeof(key); i++) {
                    rnd = rnd * 1103515245u + 12345u;
                    key[n++] = (char)((rnd >> 16) % 3 == 0 ? wd[i] - 32 : wd[i]);
                }
            } else {
                key[n++] = alphabet[(rnd >> 18) % (sizeof(alphabet) - 1)];
            }
        }
        if (mcpd_audit_key_is_secret(key, n) != secret_reference(key, n))
            fail_msg("key '%.*s': %d, the rule says %d", (int)n, key,
                     mcpd_audit_key_is_secret(key, n), secret_reference(key, n));
        positives += secret_reference(key, n);
    }
    assert_in_range(positives, 20000, 180000); /* both answers were asked for, often */
}

static void test_nul_and_invalid(void **state)
{
    static const char args[] = "{\"path\":\"/srv/data/ok\\u0000/../../etc/passwd\",\"z\":1}";
    static const char raw_nul[] = "{\"a\":\"x\0y\"}";
    struct fixture *f = *state;
    size_t len;
    char *s;

    open_audit(f);
    submit_args(f, args, strlen(args));
    submit_args(f, raw_nul, sizeof(raw_nul) - 1); /* a raw NUL is not JSON */
    submit_args(f, "{\"a\":", 5);
    submit_args(f, "[1,\"two\",null]", 14); /* not an object: still canonical JSON */
    close_audit(f);
    s = raw_text(f->path, "SELECT args FROM audit WHERE id = 1", &len);
    assert_int_equal(len, strlen(args));
    assert_string_equal(s, args); /* nothing after the NUL was lost */
    free(s);
    assert_int_equal(raw_int(f->path, "SELECT length(CAST(args AS BLOB)) FROM audit WHERE id = 1"),
                     strlen(args));
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit WHERE args IS NULL"), 2);
    s = raw_text(f->path, "SELECT args FROM audit WHERE id = 4", &len);
    assert_string_equal(s, "[1,\"two\",null]");
    free(s);
    assert_verifies(f->path, 4);
}

static void test_args_cap(void **state)
{
    struct fixture *f = *state;
    char *args = malloc(2048), digest[65];
    size_t n = 0, len;
    char *s;

    assert_non_null(args);
    n += (size_t)snprintf(args, 2048, "{\"s\":\"");
    for (int i = 0; i < 500; i++) {
        memcpy(args + n, "\xc3\xa9", 2); /* U+00E9, two bytes */
        n += 2;
    }
    memcpy(args + n, "\"}", 3);
    n += 2;
    f->o.max_args_bytes = 101; /* would split a character: cut to 100 */
    open_audit(f);
    submit_args(f, args, n);
    submit_args(f, "{\"short\":1}", 11);
    close_audit(f);
    s = raw_text(f->path, "SELECT args FROM audit WHERE id = 1", &len);
    assert_int_equal(len, 100);
    assert_memory_equal(s, args, 100);
    free(s);
    assert_int_equal(raw_int(f->path, "SELECT args_truncated FROM audit WHERE id = 1"), 1);
    sha256_hex(digest, args, n); /* canonical already: the digest of the whole text */
    s = raw_text(f->path, "SELECT args_digest FROM audit WHERE id = 1", &len);
    assert_string_equal(s, digest);
    free(s);
    assert_int_equal(raw_int(f->path, "SELECT args_truncated FROM audit WHERE id = 2"), 0);
    assert_verifies(f->path, 2);
    free(args);
}

/* ---- tampering ------------------------------------------------------------------------------- */

static void make_rows(struct fixture *f, int n)
{
    open_audit(f);
    submit_n(f, n);
    close_audit(f);
    assert_verifies(f->path, n);
}

static void make_rows_keyed(struct fixture *f, int n)
{
    open_audit(f);
    submit_n(f, n);
    close_audit(f);
}

static void test_tamper_edit(void **state)
{
    struct fixture *f = *state;
    int64_t rows = -1, bad = -1;

    make_rows(f, 100);
    raw_exec(f->path, "UPDATE audit SET tool = 'innocent' WHERE id = 37");
    assert_int_equal(mcpd_audit_verify(f->path, NULL, &rows, &bad, f->err, sizeof(f->err)), 1);
    assert_int_equal(bad, 37);
    assert_int_equal(rows, 36);
}

static void test_tamper_type(void **state)
{
    struct fixture *f = *state;

    make_rows(f, 20);
    /* same canonical digits, different storage class: still named */
    raw_exec(f->path, "UPDATE audit SET latency_us = latency_us + 0.25 WHERE id = 5");
    assert_bad_row(f->path, 5);
}

static void test_tamper_null(void **state)
{
    struct fixture *f = *state;

    make_rows(f, 20);
    raw_exec(f->path, "UPDATE audit SET reason = NULL WHERE id = 2"); /* id 2 has a reason */
    assert_bad_row(f->path, 2);
}

static void test_tamper_delete(void **state)
{
    struct fixture *f = *state;

    make_rows(f, 100);
    raw_exec(f->path, "DELETE FROM audit WHERE id = 50");
    assert_bad_row(f->path, 50);
}

static void test_tamper_reorder(void **state)
{
    struct fixture *f = *state;

    make_rows(f, 100);
    /* records 20 and 21 swap places */
    raw_exec(f->path, "CREATE TEMP TABLE s AS SELECT * FROM audit WHERE id IN (20, 21);"
                      "UPDATE audit SET (time_ms, kind, bot, session, transport, resource, tool,"
                      " location, decision, reason, args, args_truncated, args_digest, status,"
                      " latency_us, hash) = (SELECT time_ms, kind, bot, session, transport,"
                      " resource, tool, location, decision, reason, args, args_truncated,"
                      " args_digest, status, latency_us, hash FROM s WHERE s.id = 41 - audit.id)"
                      " WHERE id IN (20, 21);");
    assert_bad_row(f->path, 20);
}

static void test_tamper_tail(void **state)
{
    struct fixture *f = *state;

    make_rows(f, 100);
    raw_exec(f->path, "DELETE FROM audit WHERE id = 100; DELETE FROM audit WHERE id = 99;"
                      "DELETE FROM audit WHERE id = 98");
    assert_bad_row(f->path, 98);
}

static void test_tamper_rechain_one(void **state)
{
    struct fixture *f = *state;

    make_rows(f, 10);
    /* an edit that also fixes its own hash still breaks the next link */
    raw_exec(f->path, "UPDATE audit SET hash = (SELECT hash FROM audit WHERE id = 9) WHERE id = 4");
    assert_bad_row(f->path, 4);
}

/* ---- the keyed chain (audit.chain: hmac) ------------------------------------------------------
 */

static const unsigned char key_a[32] = { 1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                         12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                         23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
static const unsigned char key_b[32] = { 9 };

/*
 * What someone who can write the file does after an edit: every hash from
 * the anchor on written again, as the chain's rule says, under `key` (NULL:
 * plain SHA-256), and the head moved along.
 */
static void rechain(const char *path, const unsigned char *key)
{
    sqlite3 *db = raw_open(path);
    sqlite3_stmt *st = NULL;
    char prev[AUDIT_HASH_HEX + 1], (*hashes)[AUDIT_HASH_HEX + 1] = NULL, sql[256];
    int64_t *ids = NULL, n = 0;

    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT hash FROM audit_meta WHERE k = 'anchor'", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(prev, sizeof(prev), "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT " AUDIT_COLUMNS " FROM audit ORDER BY id", -1, &st, NULL),
        SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        struct audit_val row[AC_NCOLS];
        assert_true(mcpd__audit_row_read(st, row));
        hashes = realloc(hashes, (size_t)(n + 1) * sizeof(*hashes));
        ids = realloc(ids, (size_t)(n + 1) * sizeof(*ids));
        assert_non_null(hashes);
        assert_non_null(ids);
        ids[n] = row[AC_ID].i;
        assert_int_equal(mcpd__audit_row_hash(hashes[n], prev, row, key), 0);
        memcpy(prev, hashes[n], sizeof(prev));
        n++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    for (int64_t i = 0; i < n; i++) {
        snprintf(sql, sizeof(sql), "UPDATE audit SET hash = '%s' WHERE id = %lld", hashes[i],
                 (long long)ids[i]);
        raw_exec(path, sql);
    }
    snprintf(sql, sizeof(sql), "UPDATE audit_meta SET hash = '%s' WHERE k = 'head'", prev);
    raw_exec(path, sql);
    free(hashes);
    free(ids);
}

static int verify_with(const char *path, const unsigned char *key, int64_t *bad, char *err,
                       size_t errcap)
{
    int64_t rows = -1;
    return mcpd_audit_verify(path, key, &rows, bad, err, errcap);
}

/* A plain chain finds an edit, but not an edit whose writer chained everything again. */
static void test_plain_chain_rewritten(void **state)
{
    struct fixture *f = *state;
    int64_t bad = -1;

    make_rows(f, 20);
    raw_exec(f->path, "UPDATE audit SET tool = 'innocent' WHERE id = 7");
    assert_bad_row(f->path, 7);
    rechain(f->path, NULL);
    assert_int_equal(verify_with(f->path, NULL, &bad, f->err, sizeof(f->err)), 0);
}

/* Keyed: the same rewrite, without the key (or with another), is found. */
static void test_keyed_chain_rewritten(void **state)
{
    struct fixture *f = *state;
    int64_t bad = -1;

    f->o.chain_key = key_a;
    make_rows_keyed(f, 20);
    assert_int_equal(verify_with(f->path, key_a, &bad, f->err, sizeof(f->err)), 0);
    assert_int_equal(raw_int(f->path, "SELECT id FROM audit_meta WHERE k = 'chain'"), 1);
    raw_exec(f->path, "UPDATE audit SET tool = 'innocent' WHERE id = 7");
    assert_int_equal(verify_with(f->path, key_a, &bad, f->err, sizeof(f->err)), 1);
    assert_int_equal(bad, 7);
    rechain(f->path, NULL); /* plain SHA-256, as a plain chain would be written */
    assert_int_equal(verify_with(f->path, key_a, &bad, f->err, sizeof(f->err)), 1);
    assert_int_equal(bad, 1);
    rechain(f->path, key_b); /* a key of the forger's own */
    assert_int_equal(verify_with(f->path, key_a, &bad, f->err, sizeof(f->err)), 1);
    assert_int_equal(bad, 1);
    rechain(f->path, key_a); /* only the key rewrites it */
    assert_int_equal(verify_with(f->path, key_a, &bad, f->err, sizeof(f->err)), 0);
    /* the forger removes the keyed mark and chains with SHA-256: no verdict with the key */
    raw_exec(f->path, "UPDATE audit SET tool = 'innocent' WHERE id = 7");
    raw_exec(f->path, "DELETE FROM audit_meta WHERE k = 'chain'");
    rechain(f->path, NULL);
    assert_int_equal(verify_with(f->path, NULL, &bad, f->err, sizeof(f->err)), 0); /* as plain */
    assert_true(verify_with(f->path, key_a, &bad, f->err, sizeof(f->err)) < 0);
    assert_non_null(strstr(f->err, "its keyed mark was removed"));
}

/* A keyed store opens and verifies with its key only; a plain one with records stays plain. */
static void test_keyed_chain_rules(void **state)
{
    struct fixture *f = *state;
    int64_t bad = -1;

    f->o.chain_key = key_a;
    make_rows_keyed(f, 3);
    assert_true(verify_with(f->path, NULL, &bad, f->err, sizeof(f->err)) < 0);
    assert_non_null(strstr(f->err, "chained with HMAC under the master key"));
    assert_true(verify_with(f->path, key_b, &bad, f->err, sizeof(f->err)) < 0);
    assert_non_null(strstr(f->err, "the master key is not the one"));
    f->o.chain_key = NULL;
    assert_int_equal(mcpd_audit_open(&f->a, &f->loop, &f->o, f->err, sizeof(f->err)), MCPD_ECONFIG);
    assert_non_null(strstr(f->err, "chained with HMAC under the master key"));
    f->o.chain_key = key_b;
    assert_int_equal(mcpd_audit_open(&f->a, &f->loop, &f->o, f->err, sizeof(f->err)), MCPD_ECONFIG);
    assert_non_null(strstr(f->err, "the master key is not the one"));
    /* with its key it goes on: the chain continues over both opens */
    f->o.chain_key = key_a;
    make_rows_keyed(f, 2);
    assert_int_equal(verify_with(f->path, key_a, &bad, f->err, sizeof(f->err)), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 5);
    /* a plain store with records cannot become keyed */
    unlink(f->path);
    f->o.chain_key = NULL;
    make_rows(f, 2);
    f->o.chain_key = key_a;
    assert_int_equal(mcpd_audit_open(&f->a, &f->loop, &f->o, f->err, sizeof(f->err)), MCPD_ECONFIG);
    assert_non_null(strstr(f->err, "chained with SHA-256 (2 records)"));
    assert_verifies(f->path, 2);
}

/* The key comes from the master key, and differs from it. */
static void test_chain_key_derived(void **state)
{
    struct fixture *f = *state;
    unsigned char k1[32], k2[32];
    char path[200], err[256];

    snprintf(path, sizeof(path), "%s/mcpd.key", f->dir);
    unsetenv("MCPD_MASTER_KEY");
    assert_true(mcpd_audit_chain_key(k1, path, false, err, sizeof(err)) < 0); /* no such file */
    assert_int_equal(mcpd_audit_chain_key(k1, path, true, err, sizeof(err)), 0);
    assert_int_equal(mcpd_audit_chain_key(k2, path, false, err, sizeof(err)), 0);
    assert_memory_equal(k1, k2, 32);
    setenv("MCPD_MASTER_KEY", "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
           1);
    assert_int_equal(mcpd_audit_chain_key(k2, path, false, err, sizeof(err)), 0);
    unsetenv("MCPD_MASTER_KEY");
    assert_memory_not_equal(k1, k2, 32);
    assert_memory_not_equal(k2, key_a, 32); /* derived: not the master key itself */
    /* pinned: HKDF-SHA256 (RFC 5869, no salt, info "mcpd audit chain v1") of key_a, computed
     * apart (Python's hmac); a change would orphan every keyed store */
    {
        static const char want[] =
            "3b909db5e6cd03ff5dd1fed6e3781d0353f6888bcca73d7d61343c70b97ecab8";
        char hex[65];
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", k2[i]);
        assert_string_equal(hex, want);
    }
}

/* ---- retention ------------------------------------------------------------------------------- */

static void test_retention_rows(void **state)
{
    struct fixture *f = *state;

    f->o.retain_rows = 100;
    for (int wave = 0; wave < 10; wave++) { /* a block per wave: each close chains its own */
        open_audit(f);
        submit_n(f, 100);
        close_audit(f);
    }
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 100);
    assert_int_equal(raw_int(f->path, "SELECT min(id) FROM audit"), 901);
    assert_int_equal(raw_int(f->path, "SELECT id FROM audit_meta WHERE k = 'anchor'"), 900);
    assert_verifies(f->path, 100);

    /* the anchor chains the first remaining row: tampering after it is found */
    raw_exec(f->path, "UPDATE audit SET bot = 'mallory' WHERE id = 950");
    assert_bad_row(f->path, 950);
    raw_exec(f->path, "DELETE FROM audit WHERE id = 901");
    assert_bad_row(f->path, 901);
}

static void test_retention_rows_continues(void **state)
{
    struct fixture *f = *state;

    f->o.retain_rows = 50;
    open_audit(f);
    submit_n(f, 30);
    close_audit(f);
    assert_verifies(f->path, 30);
    for (int wave = 0; wave < 10; wave++) { /* blocks of 50: retention deletes whole blocks */
        open_audit(f);
        submit_n(f, 50);
        close_audit(f); /* the helper chains each wave on its own */
    }
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 50);
    assert_verifies(f->path, 50);
    /* moving the anchor forward (hiding deletions) is caught */
    raw_exec(f->path, "UPDATE audit_meta SET id = id + 1 WHERE k = 'anchor'");
    assert_bad_row(f->path, 481);
}

static void test_retention_age(void **state)
{
    struct fixture *f = *state;
    struct mcpd_audit_record r;
    char tool[32];
    int64_t now = (int64_t)time(NULL) * 1000;

    f->o.retain_ms = 60000;
    open_audit(f);
    for (int i = 0; i < 40; i++) {
        fill_record(&r, i, tool, sizeof(tool));
        r.time_ms = now - (i < 30 ? 3600000 : 0); /* 30 rows an hour old, in their own block */
        assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
        if (i == 29) { /* the old ones in a block of their own */
            run_until(f, 30);
            close_audit(f);
            open_audit(f);
        }
    }
    run_until(f, 40);
    close_audit(f);
    open_audit(f);
    submit_n(f, 1); /* the next transaction applies retention (if the second did not) */
    close_audit(f);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 11);
    assert_int_equal(raw_int(f->path, "SELECT min(id) FROM audit"), 31);
    assert_verifies(f->path, 11);
}

/* ---- failing closed -------------------------------------------------------------------------- */

/* Captures stderr into a temporary file while active. */
struct capture {
    int saved, fd;
};

static void capture_start(struct capture *c, const char *dir)
{
    char path[160];

    snprintf(path, sizeof(path), "%s/stderr.txt", dir);
    c->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(c->fd >= 0);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_int_equal(dup2(c->fd, STDERR_FILENO), STDERR_FILENO);
}

static char *capture_stop(struct capture *c)
{
    static char text[4096];
    ssize_t n;

    assert_int_equal(dup2(c->saved, STDERR_FILENO), STDERR_FILENO);
    close(c->saved);
    n = pread(c->fd, text, sizeof(text) - 1, 0);
    close(c->fd);
    text[n > 0 ? n : 0] = '\0';
    return text;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Polls the loop until submit refuses (the helper's failure reached the loop). */
static void wait_refusing(struct fixture *f)
{
    struct mcpd_audit_record r;
    char tool[32];
    uint64_t end = uv_hrtime() + 10ull * 1000000000u;
    int rc;

    fill_record(&r, 0, tool, sizeof(tool));
    do {
        usleep(2000);
        uv_run(&f->loop, UV_RUN_NOWAIT);
        rc = mcpd_audit_submit(f->a, &r, on_ack, f);
        if (rc == 0)
            run_until(f, f->ncb + 1);
    } while (rc == 0 && uv_hrtime() < end);
    assert_int_equal(rc, MCPD_EUNAVAIL);
}

/* Journals in f->dir (left behind). */
static int journals(const struct fixture *f)
{
    char cmd[400];
    FILE *p;
    int n = -1;

    snprintf(cmd, sizeof(cmd), "ls %s | grep -c '\\.jnl$'", f->dir);
    if ((p = popen(cmd, "r")) != NULL) {
        if (fscanf(p, "%d", &n) != 1)
            n = -1;
        pclose(p);
    }
    return n;
}

/*
 * Another connection holds the write lock past busy_timeout_ms: the
 * records already acknowledged are safe in the journal, the audit refuses
 * from then on (said once), and the journal, left behind at close, is
 * chained by the next open: nothing acknowledged is lost.
 */
static void test_fail_closed_busy(void **state)
{
    struct fixture *f = *state;
    struct mcpd_audit_record r;
    struct capture cap;
    sqlite3 *locker;
    char tool[32], *log;
    int acked;

    f->o.busy_timeout_ms = 50;
    open_audit(f);
    submit_n(f, 10);
    close_audit(f);
    open_audit(f);
    locker = raw_open(f->path);
    assert_int_equal(sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    capture_start(&cap, f->dir);
    for (int i = 0; i < 5; i++) {
        fill_record(&r, i, tool, sizeof(tool));
        assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
    }
    run_until(f, 15);
    assert_int_equal(f->nerr, 0); /* durable in the journal */
    wait_refusing(f);
    log = capture_stop(&cap);
    acked = f->nok;
    assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), MCPD_EUNAVAIL);
    assert_int_equal(count_of(log, "refusing audited calls"), 1);
    assert_non_null(strstr(log, "locked"));
    close_audit(f);
    assert_int_equal(journals(f), 1); /* not chained: left for the next start */
    sqlite3_exec(locker, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(locker);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 10);
    open_audit(f); /* chains the journal left behind */
    close_audit(f);
    assert_int_equal(journals(f), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), acked);
    assert_verifies(f->path, acked);
}

static void child_full(const char *path)
{
    struct mcpd_audit_options o = { .path = path };
    struct mcpd_audit *a = NULL;
    struct fixture f = { 0 };
    struct mcpd_audit_record r;
    struct rlimit rl = { (rlim_t)512 * 1024, (rlim_t)512 * 1024 }, hard;
    char tool[32], err[256], *big = malloc(40000);
    int sent = 0;

    signal(SIGXFSZ, SIG_IGN);
    if (getrlimit(RLIMIT_FSIZE, &hard) == 0)
        rl.rlim_max = hard.rlim_max; /* the soft limit only: raised again below */
    if (big == NULL || uv_loop_init(&f.loop) != 0 || setrlimit(RLIMIT_FSIZE, &rl) != 0)
        _exit(10);
    memset(big, 'x', 40000);
    memcpy(big, "{\"s\":\"", 6);
    memcpy(big + 39998, "\"}", 2);
    if (mcpd_audit_open(&a, &f.loop, &o, err, sizeof(err)) != 0)
        _exit(11);
    /*
     * one record per batch until the file limit makes a write fail: the
     * journal's (that record fails) or the helper's transaction (the audit
     * refuses what comes next)
     */
    while (f.nerr == 0 && sent < 200) {
        int rc;
        fill_record(&r, sent, tool, sizeof(tool));
        r.args_json = big;
        r.args_len = 40000;
        if ((rc = mcpd_audit_submit(a, &r, on_ack, &f)) == MCPD_EUNAVAIL)
            break;
        if (rc != 0)
            _exit(12);
        sent++;
        while (f.ncb < sent)
            uv_run(&f.loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    if (f.nerr > 1 || f.nok < 1 ||
        (f.nerr == 1 && f.last_status != UV_ENOSPC && f.last_status != UV_EIO &&
         f.last_status != UV_EFBIG))
        _exit(13);
    if (mcpd_audit_submit(a, &r, on_ack, &f) != MCPD_EUNAVAIL)
        _exit(14);
    {
        char acked[200];
        FILE *out;
        snprintf(acked, sizeof(acked), "%s.acked", path);
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_FSIZE, &rl);
        if ((out = fopen(acked, "w")) == NULL || fprintf(out, "%d\n", f.nok) < 0 ||
            fclose(out) != 0)
            _exit(16);
    }
    mcpd_audit_close(a, on_closed, &f);
    while (!f.closed)
        uv_run(&f.loop, UV_RUN_ONCE);
    if (uv_loop_close(&f.loop) != 0)
        _exit(15);
    free(big);
    _exit(0);
}

static int wait_child(pid_t pid)
{
    int status;

    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void test_fail_closed_full(void **state)
{
    struct fixture *f = *state;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child_full(f->path);
    assert_int_equal(wait_child(pid), 0);
    /* what was acknowledged before the failure is intact (verify chains the journal first) */
    {
        char err[256] = "", acked[200];
        FILE *a;
        int n = -1;

        assert_int_equal(mcpd__audit_recover(f->path, NULL, err, sizeof(err)), 0);
        assert_int_equal(journals(f), 0);
        snprintf(acked, sizeof(acked), "%s.acked", f->path);
        assert_non_null(a = fopen(acked, "r"));
        assert_int_equal(fscanf(a, "%d", &n), 1);
        fclose(a);
        assert_true(n >= 1);
        assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), n);
        assert_verifies(f->path, n);
    }
}

static void child_readonly(const char *path)
{
    struct mcpd_audit_options o = { .path = path };
    struct mcpd_audit *a = NULL;
    uv_loop_t loop;
    char err[256] = "";

    /* root ignores file modes: become nobody first */
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
        _exit(77);
    if (uv_loop_init(&loop) != 0)
        _exit(10);
    if (mcpd_audit_open(&a, &loop, &o, err, sizeof(err)) == 0 || a != NULL)
        _exit(11);
    if (strstr(err, "cannot open for writing") == NULL && strstr(err, "read-only") == NULL)
        _exit(12);
    if (uv_loop_close(&loop) != 0)
        _exit(13);
    _exit(0);
}

static void test_fail_closed_readonly(void **state)
{
    struct fixture *f = *state;
    char ro_dir[160], ro_path[192];
    pid_t pid;
    int rc;

    make_rows(f, 3);
    assert_int_equal(chmod(f->dir, 0755), 0);
    assert_int_equal(chmod(f->path, 0444), 0);
    snprintf(ro_dir, sizeof(ro_dir), "%s/ro", f->dir);
    assert_int_equal(mkdir(ro_dir, 0555), 0);
    snprintf(ro_path, sizeof(ro_path), "%s/new.db", ro_dir);
    for (int i = 0; i < 2; i++) {
        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            child_readonly(i == 0 ? f->path : ro_path);
        rc = wait_child(pid);
        if (rc == 77)
            skip();
        assert_int_equal(rc, 0);
    }
    rmdir(ro_dir);
    assert_int_equal(chmod(f->path, 0600), 0);
    assert_verifies(f->path, 3);
}

static void test_queue_limits(void **state)
{
    struct fixture *f = *state;
    struct mcpd_audit_record r;
    char tool[32];

    f->o.queue_cap = 10;
    open_audit(f);
    for (int i = 0; i < 10; i++) {
        fill_record(&r, i, tool, sizeof(tool));
        assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
    }
    assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), MCPD_EBUSY);
    run_until(f, 10);
    assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0); /* room again */
    run_until(f, 11);
    assert_int_equal(f->nok, 11);
}

/* ---- close ----------------------------------------------------------------------------------- */

static void test_close_flushes(void **state)
{
    struct fixture *f = *state;
    struct mcpd_audit_record r;
    char tool[32];

    open_audit(f);
    for (int i = 0; i < 300; i++) {
        fill_record(&r, i, tool, sizeof(tool));
        assert_int_equal(mcpd_audit_submit(f->a, &r, i % 2 ? on_ack : NULL, f), 0);
    }
    mcpd_audit_close(f->a, on_closed, f);
    assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), MCPD_EUNAVAIL);
    while (!f->closed)
        uv_run(&f->loop, UV_RUN_ONCE);
    f->a = NULL;
    assert_int_equal(f->nok, 150); /* every callback ran before done */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 300);
    assert_verifies(f->path, 300);
}

/* ---- print ----------------------------------------------------------------------------------- */

static char *print_to_string(const char *path, const struct mcpd_audit_query *q)
{
    static char text[1 << 16];
    char err[256];
    FILE *fp = tmpfile();
    size_t n;

    assert_non_null(fp);
    if (mcpd_audit_print(path, q, fp, err, sizeof(err)) != 0)
        fail_msg("print: %s", err);
    rewind(fp);
    n = fread(text, 1, sizeof(text) - 1, fp);
    text[n] = '\0';
    fclose(fp);
    return text;
}

static void submit_at(struct fixture *f, int64_t t, const char *bot, const char *tool,
                      const char *loc)
{
    struct mcpd_audit_record r = { 0 };
    int base = f->ncb;

    r.kind = MCPD_AUDIT_CALL;
    r.time_ms = t;
    r.bot = bot;
    r.tool = tool;
    r.location = loc;
    r.decision = "allow";
    r.status = "ok";
    r.latency_us = 42;
    r.args_json = "{\"q\":\"x\",\"password\":\"pw\"}";
    r.args_len = strlen(r.args_json);
    assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
    run_until(f, base + 1);
}

static int count_lines(const char *s)
{
    return count_of(s, "\n");
}

static void test_print_filters(void **state)
{
    struct fixture *f = *state;
    struct mcpd_audit_query q = { 0 };
    json_t *j;
    char *out, *line, *nl;
    int n = 0;

    open_audit(f);
    submit_at(f, 1700000000000LL, "alice", "read", "local");
    submit_at(f, 1700000001000LL, "bob", "read", "remote:gh");
    submit_at(f, 1700000002000LL, "alice", "write", "remote:gh");
    submit_at(f, 1700000003000LL, "alice", "read", "plugin:fs");
    close_audit(f);

    out = print_to_string(f->path, &q);
    assert_int_equal(count_lines(out), 5); /* header + 4 */
    assert_memory_equal(out, "id\ttime\tkind\tbot\t", 16);
    assert_non_null(strstr(out, "\n1\t2023-11-14T22:13:20.000Z\tcall\talice\t-\t-\t-\tread\tlocal\t"
                                "allow\tok\t42\t-\t{\"password\":\"***\",\"q\":\"x\"}\n"));

    q.bot = "alice";
    out = print_to_string(f->path, &q);
    assert_int_equal(count_lines(out), 4);
    assert_null(strstr(out, "bob"));
    q.tool = "read";
    out = print_to_string(f->path, &q);
    assert_int_equal(count_lines(out), 3);
    q.location = "plugin:fs";
    out = print_to_string(f->path, &q);
    assert_int_equal(count_lines(out), 2);
    assert_non_null(strstr(out, "\n4\t"));

    memset(&q, 0, sizeof(q));
    q.since_ms = 1700000001000LL;
    q.limit = 2;
    q.json = true;
    out = print_to_string(f->path, &q);
    assert_int_equal(count_lines(out), 2); /* the last two, oldest first */
    for (line = out; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        j = json_loads(line, 0, NULL);
        assert_non_null(j);
        assert_int_equal(json_integer_value(json_object_get(j, "id")), 3 + n);
        assert_string_equal(json_string_value(json_object_get(j, "bot")), "alice");
        assert_string_equal(json_string_value(json_object_get(j, "args")),
                            "{\"password\":\"***\",\"q\":\"x\"}");
        assert_true(json_is_false(json_object_get(j, "args_truncated")));
        assert_true(json_is_null(json_object_get(j, "reason")));
        assert_int_equal(json_string_length(json_object_get(j, "hash")), 64);
        assert_int_equal(json_string_length(json_object_get(j, "args_digest")), 64);
        assert_int_equal(json_integer_value(json_object_get(j, "latency_us")), 42);
        json_decref(j);
        n++;
    }
    assert_int_equal(n, 2);
}

static void test_print_escapes(void **state)
{
    static const char evil[] = "evil\n2023-11-14T22:13:20.000Z\tINFO fake\x1b[31m\\\r"
                               "\xc2\x85|\xe2\x80\xae|\xff|\xc3\xa9";
    struct fixture *f = *state;
    struct mcpd_audit_query q = { 0 };
    json_t *j;
    char *out;

    open_audit(f);
    submit_at(f, 1700000000000LL, "alice", evil, "local");
    close_audit(f);

    out = print_to_string(f->path, &q);
    assert_int_equal(count_lines(out), 2); /* no forged line */
    assert_null(strchr(out, '\x1b'));
    assert_null(strchr(out, '\r'));
    assert_non_null(strstr(out, "\tevil\\n2023-11-14T22:13:20.000Z\\tINFO fake\\x1b[31m\\\\\\r"
                                "\\u0085|\\u202e|\\xff|\xc3\xa9\t"));
    q.json = true;
    out = print_to_string(f->path, &q);
    assert_int_equal(count_lines(out), 1);
    assert_null(strchr(out, '\x1b'));
    j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "tool")),
                        "evil\n2023-11-14T22:13:20.000Z\tINFO fake\x1b[31m\\\r"
                        "\xc2\x85|\xe2\x80\xae|\xef\xbf\xbd|\xc3\xa9");
    json_decref(j);
}

/* ---- the lock held for a while, then released ------------------------------------------------ */

static sqlite3 *busy_locker;
static bool unlocked;

static void on_unlock(uv_timer_t *t)
{
    sqlite3_exec(busy_locker, "ROLLBACK", NULL, NULL, NULL);
    unlocked = true;
    uv_close((uv_handle_t *)t, NULL);
}

/* Runs the loop until the unlock timer fired (busy_locker rolled back). */

static void run_until_unlocked(struct fixture *f)
{
    for (int i = 0; i < 2000 && !unlocked; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_true(unlocked);
}

static void test_busy_retried(void **state)
{
    struct fixture *f = *state;
    struct mcpd_audit_record r;
    uv_timer_t unlock;
    char tool[32];
    uint64_t t0;

    f->o.busy_timeout_ms = 3000;
    open_audit(f);
    submit_n(f, 10);
    busy_locker = raw_open(f->path);
    assert_int_equal(sqlite3_exec(busy_locker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    unlocked = false;
    uv_timer_init(&f->loop, &unlock);
    uv_timer_start(&unlock, on_unlock, 150, 0);
    t0 = uv_hrtime();
    for (int i = 0; i < 5; i++) {
        fill_record(&r, i, tool, sizeof(tool));
        assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
    }
    /* acknowledged from the journal without waiting for the lock; the loop never blocks */
    run_until(f, 15);
    assert_true(uv_hrtime() - t0 < 140u * 1000000u);
    assert_int_equal(f->nerr, 0);
    run_until_unlocked(f);
    assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0); /* not refusing */
    run_until(f, 16);
    /* the helper waited for the lock and chained them: none needs the journal */
    for (int i = 0; i < 400 && raw_int(f->path, "SELECT count(*) FROM audit") < 16; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(5000);
    }
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 16);
    sqlite3_close(busy_locker);
    close_audit(f);
    assert_verifies(f->path, 16);
}

/* ---- one record at a time: a journal write per record, the helper's transactions ------------ */

/* n call records, each outcome written in result records that chain with the rest. */
static void assert_calls_and_outcomes(struct fixture *f, int64_t n)
{
    assert_int_equal(f->nerr, 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit r, json_each(r.args) j"
                                      " WHERE r.kind = 'result'"),
                     n);
    assert_verifies(f->path,
                    n + raw_int(f->path, "SELECT count(*) FROM audit WHERE kind = 'result'"));
}

/*
 * n calls one at a time, each submitted as soon as the previous one is
 * acknowledged (one journal write each), with its outcome.
 * Returns the largest size the WAL file reached meanwhile.
 */
static off_t calls_one_at_a_time(struct fixture *f, int n)
{
    struct mcpd_audit_record r;
    char tool[32], wal[160];
    int64_t id = 0;
    struct stat st;
    off_t most = 0;

    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    for (int i = 0; i < n; i++) {
        fill_record(&r, i, tool, sizeof(tool));
        r.row_id = &id;
        assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
        run_until(f, i + 1);
        assert_true(id > 0);
        assert_int_equal(mcpd_audit_outcome(f->a, id, "ok", 10), 0);
        if (stat(wal, &st) == 0 && st.st_size > most)
            most = st.st_size;
    }
    return most;
}

static void test_one_at_a_time(void **state)
{
    struct fixture *f = *state;

    open_audit(f);
    calls_one_at_a_time(f, 200);
    close_audit(f);
    assert_calls_and_outcomes(f, 200);
}

/* The helper's transactions must checkpoint under a steady stream of records, or the WAL
 * grows without end (it once reached 1 GB in seconds). */
static void test_wal_bounded_one_at_a_time(void **state)
{
    struct fixture *f = *state;
    off_t most;

    f->o.checkpoint_pages = 8; /* a RESTART past 64 pages */
    open_audit(f);
    most = calls_one_at_a_time(f, 600);
    close_audit(f);
    assert_calls_and_outcomes(f, 600);
    /* unchecked, 600 calls write megabytes of frames; the checkpoints keep it near 64 pages */
    if (most > 2 * 1024 * 1024)
        fail_msg("the WAL grew to %lld bytes", (long long)most);
}

/*
 * With no checkpoint_pages given, checkpoints go by bytes of WAL (about
 * 4 MB), whatever the file's page size: 1000 pages of 16 KiB (a file made
 * so by someone else) would let the WAL reach 16 MB. About 12 MB of
 * records, in batches: the WAL file stays near the interval (it starts
 * over once a checkpoint has copied it).
 */
static void test_wal_checkpoint_by_bytes(void **state)
{
    struct fixture *f = *state;
    struct mcpd_audit_record r;
    char tool[32], wal[160], big[1100];
    off_t most = 0;
    struct stat st;

    memset(big, 'x', sizeof(big));
    memcpy(big, "{\"a\":\"", 6);
    memcpy(big + sizeof(big) - 3, "\"}", 3); /* with its NUL */
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    raw_exec(f->path, "PRAGMA page_size=16384; PRAGMA journal_mode=WAL; CREATE TABLE t(x);");
    open_audit(f);
    for (int b = 0; b < 100; b++) {
        for (int i = 0; i < 100; i++) {
            fill_record(&r, f->ncb + i, tool, sizeof(tool));
            r.args_json = big;
            r.args_len = strlen(big);
            assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
        }
        run_until(f, (b + 1) * 100);
        usleep(2000); /* the helper chains meanwhile */
        if (stat(wal, &st) == 0 && st.st_size > most)
            most = st.st_size;
    }
    close_audit(f);
    assert_int_equal(raw_int(f->path, "PRAGMA page_size"), 16384);
    assert_verifies(f->path, 10000);
    if (most > 8 * 1024 * 1024)
        fail_msg("the WAL grew to %lld bytes between checkpoints", (long long)most);
    assert_true(most > 0);
}

/* A few records at a time, outcomes in between: journal writes, the outcome timer and the
 * helper's transactions all interleave. */
static void test_few_at_a_time(void **state)
{
    struct fixture *f = *state;
    struct mcpd_audit_record r;
    int64_t ids[3];
    char tool[32];
    int sent = 0;

    open_audit(f);
    for (int i = 0; i < 150; i++) {
        for (int k = 0; k < 3; k++) {
            fill_record(&r, sent, tool, sizeof(tool));
            r.row_id = &ids[k];
            assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
            sent++;
            uv_run(&f->loop, UV_RUN_NOWAIT); /* a job may be out when the next comes */
        }
        run_until(f, sent);
        for (int k = 0; k < 3; k++)
            assert_int_equal(mcpd_audit_outcome(f->a, ids[k], "ok", k), 0);
    }
    close_audit(f);
    assert_calls_and_outcomes(f, 450);
}

/*
 * The outcome timer fires between two flushes, with a record handed over
 * and one waiting: a lone outcome arms it, and it is due by the time the
 * next record comes (a record that goes out first takes the outcome along
 * and stops the timer, which test_one_at_a_time covers).
 */
/* Polls the file until it holds `want` records (5 s at most). */
static void wait_chained(struct fixture *f, int64_t want)
{
    uint64_t end = uv_hrtime() + 5ull * 1000000000u;
    int64_t n = 0;

    while ((n = raw_int(f->path, "SELECT count(*) FROM audit")) < want && uv_hrtime() < end)
        usleep(1000);
    assert_int_equal(n, want);
}

/*
 * Records submitted right after a transaction, and after the helper has
 * gone idle (it waits until the loop wakes it), are chained.
 */
static void test_helper_busy_then_idle(void **state)
{
    struct fixture *f = *state;

    open_audit(f);
    submit_n(f, 3);
    wait_chained(f, 3);
    submit_n(f, 2); /* right after a transaction */
    wait_chained(f, 5);
    usleep(30000); /* idle: the helper waits to be woken */
    submit_n(f, 2);
    wait_chained(f, 7);
    usleep(30000);
    submit_n(f, 1);
    wait_chained(f, 8);
}

static void on_acked(void *data)
{
    struct fixture *f = data;

    f->nacked++;
    f->ncb_at_acked = f->ncb;
}

/*
 * The acked hook (the daemon sends what the callbacks queued) runs once per
 * batch, after all of its callbacks, in the same loop turn.
 */
static void test_acked_after_each_batch(void **state)
{
    struct fixture *f = *state;

    f->o.acked = on_acked;
    f->o.acked_arg = f;
    open_audit(f);
    submit_n(f, 5); /* one batch: submitted in one turn */
    assert_int_equal(f->nacked, 1);
    assert_int_equal(f->ncb_at_acked, 5);
    submit_n(f, 3);
    assert_int_equal(f->nacked, 2);
    assert_int_equal(f->ncb_at_acked, 8);
    /* outcomes alone have no callbacks: no hook */
    assert_int_equal(mcpd_audit_outcome(f->a, 1, "ok", 10), 0);
    close_audit(f);
    assert_int_equal(f->nacked, 2);
}

static void test_timer_between_flushes(void **state)
{
    struct fixture *f = *state;
    struct mcpd_audit_record r;
    int64_t id = 0;
    char tool[32];

    open_audit(f);
    for (int round = 0; round < 20; round++) {
        int base = f->ncb;

        fill_record(&r, round, tool, sizeof(tool));
        r.row_id = &id;
        assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
        run_until(f, base + 1); /* handed over: the helper may be chaining it */
        assert_int_equal(mcpd_audit_outcome(f->a, id, "ok", 1), 0); /* arms the 2 ms timer */
        usleep(5000);                                               /* the timer is due */
        r.row_id = NULL;
        assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0); /* one waits */
        uv_run(&f->loop, UV_RUN_NOWAIT); /* timers first: the outcome and the record go */
        assert_int_equal(f->ncb, base + 2);
        assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
        run_until(f, base + 3);
    }
    close_audit(f);
    assert_int_equal(f->nerr, 0);
    assert_verifies(f->path,
                    60 + raw_int(f->path, "SELECT count(*) FROM audit WHERE kind = 'result'"));
}

static void test_one_at_a_time_busy(void **state)
{
    struct fixture *f = *state;
    struct mcpd_audit_record r;
    uv_timer_t unlock;
    char tool[32];

    f->o.busy_timeout_ms = 3000;
    open_audit(f);
    submit_n(f, 1);
    busy_locker = raw_open(f->path);
    assert_int_equal(sqlite3_exec(busy_locker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    unlocked = false;
    uv_timer_init(&f->loop, &unlock);
    uv_timer_start(&unlock, on_unlock, 100, 0);
    fill_record(&r, 1, tool, sizeof(tool));
    assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
    run_until(f, 2);
    assert_int_equal(f->nerr, 0);
    run_until_unlocked(f); /* the timer lives on this stack */
    sqlite3_close(busy_locker);
    close_audit(f);
    assert_verifies(f->path, 2);
}

/*
 * Outcomes alone meet a held lock (no record in that transaction), then a
 * record is submitted meanwhile: it is acknowledged and chained once the
 * lock goes. (Written for a bug of the design before the journal: the
 * queue's tail pointed into a finished stack frame and the record was lost.)
 */
static void test_outcomes_alone_busy(void **state)
{
    struct fixture *f = *state;
    struct mcpd_audit_record r;
    uv_timer_t unlock;
    int64_t id = 0;
    char tool[32];

    f->o.busy_timeout_ms = 3000;
    open_audit(f);
    fill_record(&r, 0, tool, sizeof(tool));
    r.row_id = &id;
    assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
    run_until(f, 1);
    busy_locker = raw_open(f->path);
    assert_int_equal(sqlite3_exec(busy_locker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(mcpd_audit_outcome(f->a, id, "ok", 1), 0); /* arms the 2 ms timer */
    for (int i = 0; i < 4; i++) { /* the outcomes' transaction is tried and waits */
        usleep(10000);
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    r.row_id = NULL;
    assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
    unlocked = false;
    uv_timer_init(&f->loop, &unlock);
    uv_timer_start(&unlock, on_unlock, 50, 0);
    run_until(f, 2);
    assert_int_equal(f->nerr, 0);
    run_until_unlocked(f); /* the timer lives on this stack */
    sqlite3_close(busy_locker);
    close_audit(f);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit WHERE kind = 'result'"), 1);
    assert_verifies(f->path, 3);
}

/* ---- the journal ------------------------------------------------------------------------------
 */

/* Writes a journal as a killed mcpd would have left it. */
static void write_journal(const struct fixture *f, const char *name, const char *text)
{
    char path[300];
    FILE *j;

    snprintf(path, sizeof(path), "%s-audit-%s.jnl", f->path, name);
    assert_non_null(j = fopen(path, "w"));
    assert_int_equal(fputs(text, j) >= 0, 1);
    assert_int_equal(fclose(j), 0);
}

#define JROW(tool, status)                                                                     \
    "[1700000000000,\"call\",\"alice\",null,\"http\",\"fs\",\"" tool "\",\"local\",\"allow\"," \
    "null,\"{}\",0,null,\"" status "\",0,\"\"]"

/*
 * A journal left behind is chained by the next open: its complete lines,
 * outcomes mapped to their calls; a last line cut short (a write that never
 * returned) is not a record; the file goes.
 */
static void test_journal_torn_tail(void **state)
{
    struct fixture *f = *state;

    write_journal(
        f, "00000000000000aa-0000",
        "R 1 " JROW("read", "forwarded") "\n"
                                         "R 0 " JROW("list",
                                                     "ok") "\n"
                                                           "O 1 250 ok\n"
                                                           "R 2 [1700000000000,\"call\",\"al");
    open_audit(f);
    close_audit(f);
    assert_int_equal(journals(f), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 3);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit WHERE kind = 'result' AND "
                                      "args = '[[1,\"ok\",250]]'"),
                     1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit_meta WHERE k LIKE 'j:%'"), 0);
    assert_verifies(f->path, 3);
}

/* A text field that is not UTF-8 does not strand the records after it: '?' stands for it. */
static void test_journal_invalid_utf8(void **state)
{
    struct fixture *f = *state;

    write_journal(f, "00000000000000ee-0000",
                  "R 0 " JROW("re\xff\xc3"
                              "d",
                              "ok") "\n"
                                    "R 0 " JROW("write", "ok") "\n");
    open_audit(f);
    close_audit(f);
    assert_int_equal(journals(f), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit WHERE tool = 're??d'"), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 2);
    assert_verifies(f->path, 2);
}

/* A damaged line: what precedes it is chained, the file is kept aside as evidence. */
static void test_journal_damaged_line(void **state)
{
    struct fixture *f = *state;
    char bad[300];
    struct stat st;

    write_journal(f, "00000000000000bb-0000",
                  "R 1 " JROW("read", "forwarded") "\n"
                                                   "R 2 [1700000000000,\"call\"]\n"
                                                   "R 3 " JROW("write", "forwarded") "\n");
    open_audit(f);
    close_audit(f);
    assert_int_equal(journals(f), 0);
    snprintf(bad, sizeof(bad), "%s-audit-00000000000000bb-0000.jnl.bad", f->path);
    assert_int_equal(stat(bad, &st), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 1);
    assert_verifies(f->path, 1);
}

/*
 * The watermark says how much of a journal is chained already: a journal
 * killed between its last transaction and its removal (watermark = its
 * size) chains nothing twice; one killed mid-way chains only the rest.
 */
static void test_journal_watermark(void **state)
{
    struct fixture *f = *state;
    const char *l1 = "R 0 " JROW("read", "ok") "\n";
    char text[1024], sql[300];

    open_audit(f); /* the schema */
    close_audit(f);
    snprintf(text, sizeof(text), "%s%s", l1, "R 0 " JROW("write", "ok") "\n");
    write_journal(f, "00000000000000cc-0000", text);
    write_journal(f, "00000000000000dd-0000", text);
    snprintf(sql, sizeof(sql),
             "INSERT INTO audit_meta(k, id, hash) VALUES "
             "('j:mcpd.db-audit-00000000000000cc-0000.jnl', %zu, ''), "
             "('j:mcpd.db-audit-00000000000000dd-0000.jnl', %zu, '')",
             strlen(text), strlen(l1));
    raw_exec(f->path, sql);
    open_audit(f);
    close_audit(f);
    assert_int_equal(journals(f), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit WHERE tool = 'write'"), 1);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit_meta WHERE k LIKE 'j:%'"), 0);
    assert_verifies(f->path, 1);
}

/*
 * A keyed store's journal left behind is chained with the key only: by `mcpd
 * audit` (recover) and by the next open; without it, refused and left alone.
 */
static void test_journal_keyed(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    int64_t bad = -1;

    f->o.chain_key = key_a;
    open_audit(f); /* the schema, and the keyed mark */
    close_audit(f);
    write_journal(f, "00000000000000ee-0000", "R 0 " JROW("read", "ok") "\n");
    assert_true(mcpd__audit_recover(f->path, NULL, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "chained with HMAC under the master key"));
    assert_int_equal(journals(f), 1);
    assert_int_equal(mcpd__audit_recover(f->path, key_b, err, sizeof(err)) < 0, 1);
    assert_int_equal(journals(f), 1);
    assert_int_equal(mcpd__audit_recover(f->path, key_a, err, sizeof(err)), 0);
    assert_int_equal(journals(f), 0);
    assert_int_equal(verify_with(f->path, key_a, &bad, f->err, sizeof(f->err)), 0);
    /* and by the next open, which then goes on chaining with the key */
    write_journal(f, "00000000000000ef-0000", "R 0 " JROW("write", "ok") "\n");
    open_audit(f);
    submit_n(f, 3);
    close_audit(f);
    assert_int_equal(journals(f), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 5);
    assert_int_equal(verify_with(f->path, key_a, &bad, f->err, sizeof(f->err)), 0);
}

/* Retention moves the anchor of a keyed chain as of a plain one: what is left verifies. */
static void test_retention_keyed(void **state)
{
    struct fixture *f = *state;
    int64_t bad = -1;

    f->o.chain_key = key_a;
    f->o.retain_rows = 20;
    for (int wave = 0; wave < 5; wave++) { /* a block per wave */
        open_audit(f);
        submit_n(f, 20);
        close_audit(f);
    }
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 20);
    assert_int_equal(raw_int(f->path, "SELECT id FROM audit_meta WHERE k = 'anchor'"), 80);
    assert_int_equal(verify_with(f->path, key_a, &bad, f->err, sizeof(f->err)), 0);
    raw_exec(f->path, "UPDATE audit SET bot = 'mallory' WHERE id = 90");
    assert_int_equal(verify_with(f->path, key_a, &bad, f->err, sizeof(f->err)), 1);
    assert_int_equal(bad, 90);
}

/* A journal that a live writer holds is left alone (recover skips it). */
static void test_journal_held_is_skipped(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";

    open_audit(f);
    submit_n(f, 3);
    assert_int_equal(journals(f), 1);
    assert_int_equal(mcpd__audit_recover(f->path, NULL, err, sizeof(err)), 0);
    assert_int_equal(journals(f), 1); /* still this writer's */
    close_audit(f);
    assert_int_equal(journals(f), 0);
    assert_verifies(f->path, 3);
}

/* Makes an empty file at "<db><suffix>" whose mtime is age_s seconds ago; its path in out. */
static void make_aged(const char *db, const char *suffix, time_t age_s, bool with_data, char *out,
                      size_t cap)
{
    struct timespec ts[2];
    int fd;

    snprintf(out, cap, "%s%s", db, suffix);
    assert_true((fd = open(out, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0);
    if (with_data)
        assert_int_equal(write(fd, "R 1 x\n", 6), 6);
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= age_s;
    ts[1] = ts[0];
    assert_int_equal(futimens(fd, ts), 0);
    close(fd);
}

/*
 * A "<journal>.new" left by a kill between its creation and its rename:
 * the next open removes it when it is empty, nobody holds it and it is
 * older than a minute; a new one (being made right now) and one that holds
 * bytes stay.
 */
static void test_stale_new_journal_removed(void **state)
{
    struct fixture *f = *state;
    char stale[256], fresh[256], full[256], other[256];
    struct stat st;

    make_aged(f->path, "-audit-00000000000000aa-0000.jnl.new", 120, false, stale, sizeof(stale));
    make_aged(f->path, "-audit-00000000000000bb-0000.jnl.new", 0, false, fresh, sizeof(fresh));
    make_aged(f->path, "-audit-00000000000000cc-0000.jnl.new", 120, true, full, sizeof(full));
    make_aged(f->path, "-other-00000000000000dd-0000.jnl.new", 120, false, other, sizeof(other));
    open_audit(f);
    submit_n(f, 2);
    close_audit(f);
    assert_int_equal(stat(stale, &st), -1);
    assert_int_equal(stat(fresh, &st), 0);
    assert_int_equal(stat(full, &st), 0);
    assert_int_equal(stat(other, &st), 0); /* not an audit journal's name */
    assert_verifies(f->path, 2);
}

static void child_writer(const char *path, int n, int base)
{
    struct mcpd_audit_options o = { .path = path };
    struct mcpd_audit_record r;
    struct fixture f = { 0 };
    int64_t handles[64];
    char tool[32], err[256];

    if (uv_loop_init(&f.loop) != 0 || mcpd_audit_open(&f.a, &f.loop, &o, err, sizeof(err)) != 0)
        _exit(10);
    for (int i = 0; i < n; i++) {
        fill_record(&r, base + i, tool, sizeof(tool));
        r.row_id = &handles[i % 64];
        if (mcpd_audit_submit(f.a, &r, on_ack, &f) != 0)
            _exit(11);
        while (f.ncb < i + 1)
            uv_run(&f.loop, UV_RUN_NOWAIT);
        if (mcpd_audit_outcome(f.a, handles[i % 64], "ok", base + i) != 0)
            _exit(12);
        if (i % 50 == 0)
            usleep(3000); /* transactions of both writers interleave */
    }
    mcpd_audit_close(f.a, on_closed, &f);
    while (!f.closed)
        uv_run(&f.loop, UV_RUN_ONCE);
    _exit(f.nerr == 0 && f.nok == n ? 0 : 13);
}

/*
 * Two processes write one audit file at once (an IDE's `mcpd stdio` per
 * window): each chains inside a write transaction that re-reads the head,
 * so the chain never forks, and every outcome names its own process's call.
 */
static void test_journal_two_writers(void **state)
{
    enum { N = 400 };
    struct fixture *f = *state;
    pid_t pid[2];

    open_audit(f); /* creates the schema before the race */
    close_audit(f);
    fflush(NULL);
    for (int k = 0; k < 2; k++) {
        pid[k] = fork();
        assert_true(pid[k] >= 0);
        if (pid[k] == 0)
            child_writer(f->path, N, k * 1000); /* 1000 % 7 != 0: the two differ */
    }
    for (int k = 0; k < 2; k++)
        assert_int_equal(wait_child(pid[k]), 0);
    assert_int_equal(journals(f), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit WHERE kind != 'result'"), 2 * N);
    /* each record has exactly one outcome, its own (all were submitted with a handle) */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit c JOIN (SELECT "
                                      "json_extract(j.value, '$[0]') AS cid, "
                                      "json_extract(j.value, '$[2]') AS lat FROM audit r, "
                                      "json_each(r.args) j WHERE r.kind = 'result') o ON o.cid = "
                                      "c.id WHERE c.kind != 'result' AND c.tool = 'tool' || "
                                      "(o.lat % 7)"),
                     2 * N); /* record i has tool i % 7, its outcome latency i */
    assert_verifies(f->path, raw_int(f->path, "SELECT count(*) FROM audit"));
}

/*
 * Journals replaced every few KiB (journal_bytes): every record and every
 * outcome arrives, outcomes whose call is in an earlier journal included,
 * and no journal or watermark is left after close.
 */
static void test_journal_rotates(void **state)
{
    enum { N = 300 };
    struct fixture *f = *state;
    struct mcpd_audit_record r;
    static int64_t h[N];
    char tool[32];

    f->o.journal_bytes = 2048;
    open_audit(f);
    for (int i = 0; i < N; i++) {
        fill_record(&r, i, tool, sizeof(tool));
        r.row_id = &h[i];
        assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
        run_until(f, i + 1);
        if (i >= 10) /* the outcome of a call ten records back */
            assert_int_equal(mcpd_audit_outcome(f->a, h[i - 10], "ok", i - 10), 0);
        if (i % 25 == 0)
            usleep(8000); /* let the helper chain (and replace the journal) */
    }
    for (int i = N - 10; i < N; i++)
        assert_int_equal(mcpd_audit_outcome(f->a, h[i], "ok", i), 0);
    close_audit(f);
    assert_int_equal(f->nerr, 0);
    assert_int_equal(journals(f), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit_meta WHERE k LIKE 'j:%'"), 0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit WHERE kind != 'result'"), N);
    /* each outcome names its own call: record i has tool i % 7, its outcome latency i */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit c JOIN (SELECT "
                                      "json_extract(j.value, '$[0]') AS cid, "
                                      "json_extract(j.value, '$[2]') AS lat FROM audit r, "
                                      "json_each(r.args) j WHERE r.kind = 'result') o ON o.cid = "
                                      "c.id WHERE c.tool = 'tool' || (o.lat % 7)"),
                     N);
    assert_verifies(f->path, raw_int(f->path, "SELECT count(*) FROM audit"));
}

/* An outcome that comes long after its call was chained still names it. */
static void test_journal_late_outcome(void **state)
{
    struct fixture *f = *state;
    struct mcpd_audit_record r;
    int64_t h = 0;
    char tool[32];

    open_audit(f);
    fill_record(&r, 0, tool, sizeof(tool));
    r.row_id = &h;
    assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
    run_until(f, 1);
    assert_true(h > 0);
    submit_n(f, 2);
    for (int i = 0; i < 400 && raw_int(f->path, "SELECT count(*) FROM audit") < 3; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(5000);
    }
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 3); /* chained */
    assert_int_equal(mcpd_audit_outcome(f->a, h, "timeout", 60000000), 0);
    close_audit(f);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit WHERE kind = 'result' AND "
                                      "args = '[[1,\"timeout\",60000000]]'"),
                     1);
    assert_verifies(f->path, 4);
}

/* ---- the fast canonical JSON against jansson's ----------------------------------------------- */

static void test_canon_matches_jansson(void **state)
{
    static const char *const corpus[] = {
        "{}",
        "[]",
        "\"\"",
        "0",
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "true",
        "null",
        "{\"b\":1,\"a\":[true,false,null],\"aa\":{},\"A\":\"x\",\"_\":[[]]}",
        "\"\\u0001\\b\\f\\n\\r\\t\\\"\\\\/\\u001f\\u007f\"",
        "\"\\u00e9\\u20ac\\ud834\\udd1e \u00e9\"",
        "\"a\\u0000b\"",
        "{\"\\u00e9\":1,\"e\":2,\"z\":3,\"\\u0001\":4}",
        "[{\"path\":\"/srv/x\",\"command\":\"git status\",\"n\":[1,2,{\"k\":\"v\"}]}]",
        "{\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,\"k9\":9,"
        "\"k10\":10,\"k11\":11,\"k12\":12,\"k13\":13,\"k14\":14,\"k15\":15,\"k16\":16,"
        "\"k17\":17,\"k0\":0}",
        /* what only jansson writes: reals, a key holding a NUL */
        "1.5",
        "[1e300]",
    };
    int fallbacks = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
        json_error_t e;
        json_t *j = json_loads(corpus[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
        struct mcpd_buf b;
        char *want;
        int r;

        if (j == NULL)
            fail_msg("%s: %s", corpus[i], e.text);
        want = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        assert_non_null(want);
        mcpd_buf_init(&b, 1 << 20);
        r = mcpd__audit_canon(&b, j);
        if (r == 1) {
            fallbacks++;
            assert_int_equal(b.len, 0);
        } else {
            assert_int_equal(r, 0);
            if (b.len != strlen(want) || memcmp(b.p, want, b.len) != 0)
                fail_msg("%s: canon %.*s, jansson %s", corpus[i], (int)b.len, b.p, want);
        }
        mcpd_buf_dispose(&b);
        free(want);
        json_decref(j);
    }
    assert_int_equal(fallbacks, 2);
    {
        /* a key holding a NUL (jansson's parser refuses them, its API does not) */
        json_t *o = json_object();
        struct mcpd_buf b;

        assert_int_equal(json_object_setn_new(o, "a\0b", 3, json_integer(1)), 0);
        mcpd_buf_init(&b, 1024);
        assert_int_equal(mcpd__audit_canon(&b, o), 1);
        mcpd_buf_dispose(&b);
        json_decref(o);
    }
    {
        /*
         * Strings are scanned 16 bytes at a time: every byte that
         * needs an escape, and its neighbours that do not, at every offset
         * of strings across a few blocks, against jansson.
         */
        static const char *const bytes[] = { "\x01", "\x1f",     "\"", "\\", "\n", " ",
                                             "\x7f", "\xc3\xa9", "!",  "#",  "[",  "]" };
        char s[48], *want;
        struct mcpd_buf b;

        for (size_t len = 1; len <= 40; len++)
            for (size_t pos = 0; pos < len; pos++)
                for (size_t k = 0; k < sizeof(bytes) / sizeof(bytes[0]); k++) {
                    size_t bl = strlen(bytes[k]), n = 0;
                    json_t *j;

                    for (size_t x = 0; x < len; x++) {
                        if (x == pos) {
                            memcpy(s + n, bytes[k], bl);
                            n += bl;
                        } else {
                            s[n++] = (char)('a' + x % 26);
                        }
                    }
                    if (k % 2 == 0 && len > 12)
                        s[len / 2] = '"'; /* a second escape elsewhere */
                    assert_non_null(j = json_stringn(s, n));
                    want = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
                    assert_non_null(want);
                    mcpd_buf_init(&b, 1024);
                    assert_int_equal(mcpd__audit_canon(&b, j), 0);
                    if (b.len != strlen(want) || memcmp(b.p, want, b.len) != 0)
                        fail_msg("len %zu pos %zu byte %zu: canon %.*s, jansson %s", len, pos, k,
                                 (int)b.len, b.p, want);
                    mcpd_buf_dispose(&b);
                    free(want);
                    json_decref(j);
                }
    }
}

/* ---- a block row spliced from the journal's row text ---------------------------------------- */

/* The helper adds the journal line's row with the hash spliced in: the same bytes as writing it. */
static void test_block_splices_journal_row(void **state)
{
    static const char args[] = "{\"a\":\"x\\\"y\",\"n\":[1,2],\"t\":\"tab\\there\"}";
    static const char hash[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    struct audit_val val[AC_NCOLS];
    struct audit_block spliced = { 0 }, written = { 0 };
    struct mcpd_buf row;

    (void)state;
    memset(val, 0, sizeof(val));
    val[AC_ID].i = 7;
    val[AC_TIME_MS].i = 1700000000123;
    val[AC_KIND].p = "call";
    val[AC_KIND].len = 4;
    val[AC_BOT].p = "bot \"q\" \x01";
    val[AC_BOT].len = strlen(val[AC_BOT].p);
    val[AC_ARGS].p = args;
    val[AC_ARGS].len = strlen(args);
    val[AC_LATENCY_US].i = -3;
    mcpd_buf_init(&row, 1 << 20);
    mcpd_buf_init(&spliced.text, 1 << 20);
    mcpd_buf_init(&written.text, 1 << 20);
    assert_int_equal(mcpd__audit_row_json(&row, val, ""), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mcpd__audit_block_add(&written, val, hash, NULL, 0), 0);
        assert_int_equal(mcpd__audit_block_add(&spliced, val, hash, row.p, row.len), 0);
    }
    /* a text that does not end as a row with an empty hash is not used */
    assert_int_equal(mcpd__audit_block_add(&written, val, hash, NULL, 0), 0);
    assert_int_equal(mcpd__audit_block_add(&spliced, val, hash, row.p, row.len - 1), 0);
    assert_int_equal(spliced.n, 4);
    assert_int_equal(spliced.text.len, written.text.len);
    assert_memory_equal(spliced.text.p, written.text.p, written.text.len);
    assert_non_null(strstr(spliced.text.p, hash));
    mcpd_buf_dispose(&row);
    mcpd_buf_dispose(&spliced.text);
    mcpd_buf_dispose(&written.text);
}

/* ---- schema 1 (one row per record) is converted, unless it does not verify ------------------- */

static void make_v1(struct fixture *f, int n)
{
    make_rows(f, n);
    raw_exec(
        f->path,
        "CREATE TABLE audit1 (id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL,"
        " kind TEXT NOT NULL, bot TEXT, session TEXT, transport TEXT, resource TEXT, tool TEXT,"
        " location TEXT, decision TEXT, reason TEXT, args TEXT,"
        " args_truncated INTEGER NOT NULL, args_digest TEXT, status TEXT,"
        " latency_us INTEGER NOT NULL, hash TEXT NOT NULL);"
        "INSERT INTO audit1 SELECT * FROM audit;"
        "DROP VIEW audit; DROP TABLE audit_block;"
        "ALTER TABLE audit1 RENAME TO audit;"
        "CREATE INDEX audit_time ON audit(time_ms);"
        "UPDATE audit_meta SET id = 1 WHERE k = 'schema'");
}

static void test_upgrade_v1(void **state)
{
    struct fixture *f = *state;
    size_t len;
    char *before, *after;

    make_v1(f, 300);
    assert_verifies(f->path, 300); /* verify reads schema 1 too */
    before = raw_text(f->path,
                      "SELECT group_concat(hash || kind || ifnull(args, '-'), ',')"
                      " FROM (SELECT * FROM audit ORDER BY id)",
                      &len);
    open_audit(f);
    submit_n(f, 5);
    close_audit(f);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                      " AND name = 'audit'"),
                     0);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit_block WHERE id < 301"), 2);
    assert_int_equal(raw_int(f->path, "SELECT id FROM audit_meta WHERE k = 'schema'"), 2);
    after = raw_text(f->path,
                     "SELECT group_concat(hash || kind || ifnull(args, '-'), ',')"
                     " FROM (SELECT * FROM audit WHERE id <= 300 ORDER BY id)",
                     &len);
    assert_string_equal(before, after);
    free(before);
    free(after);
    assert_verifies(f->path, 305);
}

static void test_upgrade_v1_refused(void **state)
{
    struct fixture *f = *state;

    make_v1(f, 50);
    raw_exec(f->path, "UPDATE audit SET tool = 'innocent' WHERE id = 7");
    assert_true(mcpd_audit_open(&f->a, &f->loop, &f->o, f->err, sizeof(f->err)) < 0);
    assert_null(f->a);
    assert_non_null(strstr(f->err, "does not verify (first bad row 7)"));
    /* left as it was: the evidence */
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                                      " AND name = 'audit'"),
                     1);
    assert_int_equal(raw_int(f->path, "SELECT id FROM audit_meta WHERE k = 'schema'"), 1);
}

static void test_bad_files(void **state)
{
    struct fixture *f = *state;
    struct mcpd_audit_query q = { 0 };
    int64_t rows, bad;
    char missing[192];

    snprintf(missing, sizeof(missing), "%s/nope.db", f->dir);
    assert_true(mcpd_audit_verify(missing, NULL, &rows, &bad, f->err, sizeof(f->err)) < 0);
    assert_non_null(strstr(f->err, "nope.db"));
    assert_true(mcpd_audit_print(missing, &q, stderr, f->err, sizeof(f->err)) < 0);
    raw_exec(f->path, "CREATE TABLE unrelated(x)");
    assert_true(mcpd_audit_verify(f->path, NULL, &rows, &bad, f->err, sizeof(f->err)) < 0);
    /* a newer schema is refused rather than guessed at */
    make_rows(f, 1);
    raw_exec(f->path, "UPDATE audit_meta SET id = 3 WHERE k = 'schema'");
    assert_true(mcpd_audit_open(&f->a, &f->loop, &f->o, f->err, sizeof(f->err)) < 0);
    assert_null(f->a);
    assert_non_null(strstr(f->err, "schema version 3"));
}

static void test_shared_with_store(void **state)
{
    struct fixture *f = *state;
    struct mcpd_store *st = NULL;
    char key[MCPD_BOT_KEY_LEN + 1], name[16];
    struct mcpd_audit_record r;
    char tool[32];

    /* the store's CLI writes the same file while the audit writer runs */
    open_audit(f);
    assert_int_equal(mcpd_store_open(&st, f->path, f->err, sizeof(f->err)), 0);
    for (int i = 0; i < 20; i++) {
        for (int k = 0; k < 50; k++) {
            fill_record(&r, i * 50 + k, tool, sizeof(tool));
            assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
        }
        snprintf(name, sizeof(name), "bot-%d", i);
        assert_int_equal(mcpd_store_bot_create(st, name, key, f->err, sizeof(f->err)), 0);
        run_until(f, (i + 1) * 50);
    }
    assert_int_equal(f->nok, 1000);
    assert_int_equal(mcpd_store_bot_list(st, NULL, 0, f->err, sizeof(f->err)), 20);
    mcpd_store_close(st);
    close_audit(f);
    assert_verifies(f->path, 1000);
}

/* ---- crash safety ---------------------------------------------------------------------------- */

struct crash_child {
    struct mcpd_audit *a;
    int fd;
    int64_t acked, sent;
};

static void crash_submit(struct crash_child *c);

static void on_crash_ack(int status, void *data)
{
    struct crash_child *c = data;

    if (status != 0)
        _exit(20);
    c->acked++;
    if (write(c->fd, &c->acked, sizeof(c->acked)) != (ssize_t)sizeof(c->acked))
        _exit(21);
    crash_submit(c);
}

static void crash_submit(struct crash_child *c)
{
    struct mcpd_audit_record r;
    char tool[32];

    /* keep about 64 records in flight, so batches vary in size */
    while (c->sent - c->acked < 64) {
        fill_record(&r, (int)c->sent, tool, sizeof(tool));
        if (mcpd_audit_submit(c->a, &r, on_crash_ack, c) != 0)
            _exit(22);
        c->sent++;
    }
}

static void child_crash(const char *path, int fd, size_t journal_bytes)
{
    struct mcpd_audit_options o = { .path = path, .journal_bytes = journal_bytes };
    struct crash_child c = { .fd = fd };
    uv_loop_t loop;
    char err[256];

    if (uv_loop_init(&loop) != 0 || mcpd_audit_open(&c.a, &loop, &o, err, sizeof(err)) != 0)
        _exit(23);
    crash_submit(&c);
    for (;;)
        uv_run(&loop, UV_RUN_DEFAULT); /* until SIGKILL */
}

/* Acknowledged counts as the child wrote them: 8-byte integers, possibly split across reads. */
struct ack_reader {
    int fd;
    unsigned char buf[4096];
    size_t have;
    int64_t last;
};

/* Reads until the last count reaches want, or to EOF; returns the last count. */
static int64_t read_acks(struct ack_reader *rd, int64_t want)
{
    ssize_t n;
    size_t off;

    while (rd->last < want) {
        n = read(rd->fd, rd->buf + rd->have, sizeof(rd->buf) - rd->have);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n >= 0);
        if (n == 0)
            break;
        rd->have += (size_t)n;
        for (off = 0; rd->have - off >= sizeof(rd->last); off += sizeof(rd->last))
            memcpy(&rd->last, rd->buf + off, sizeof(rd->last));
        memmove(rd->buf, rd->buf + off, rd->have - off);
        rd->have -= off;
    }
    return rd->last;
}

static void test_crash_safety(void **state)
{
    struct fixture *f = *state;
    struct ack_reader rd;
    int64_t acked, rows = 0, before;
    size_t len;
    char *s;
    int fds[2];
    pid_t pid;

    for (int round = 0; round < 2; round++) {
        before = rows;
        assert_int_equal(pipe(fds), 0);
        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child_crash(f->path, fds[1], round == 0 ? 0 : 8192); /* round 1: journals rotate */
        }
        close(fds[1]);
        memset(&rd, 0, sizeof(rd));
        rd.fd = fds[0];
        read_acks(&rd, 1500 + round * 700); /* mid-way through writing */
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_int_equal(wait_child(pid), 128 + SIGKILL);
        acked = read_acks(&rd, INT64_MAX); /* what it acknowledged before dying */
        close(fds[0]);

        s = raw_text(f->path, "PRAGMA integrity_check", &len);
        assert_string_equal(s, "ok");
        free(s);
        {
            /* the journal the killed writer left holds what is not chained yet */
            char err[256] = "";
            assert_int_equal(mcpd__audit_recover(f->path, NULL, err, sizeof(err)), 0);
            assert_int_equal(journals(f), 0);
        }
        rows = raw_int(f->path, "SELECT count(*) FROM audit");
        print_message("round %d: %lld acknowledged, %lld rows\n", round, (long long)acked,
                      (long long)rows);
        assert_true(rows >= before + acked); /* every acknowledged record is there */
        assert_verifies(f->path, rows);
    }
    /* and the audit carries on from where the crash left it */
    open_audit(f);
    submit_n(f, 5);
    close_audit(f);
    assert_verifies(f->path, rows + 5);
}

/* ---- call rows from forwarded requests, outcomes, the canonical text ---------------------------
 */

static int64_t submit_request(struct fixture *f, const char *req, const char *key)
{
    struct mcpd_audit_record r = { 0 };
    int64_t id = -1;
    int base = f->ncb;

    r.kind = MCPD_AUDIT_CALL;
    r.tool = "t";
    r.status = "forwarded";
    r.args_json = req;
    r.args_len = strlen(req);
    r.args_key = key;
    r.row_id = &id;
    assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
    run_until(f, base + 1);
    assert_int_equal(f->last_status, 0);
    return id;
}

static void test_request_args(void **state)
{
    struct fixture *f = *state;
    int64_t id1, id2, id3;
    char *s;
    size_t len;

    open_audit(f);
    /* the forwarded request: the writer takes params.arguments, redacted and sorted */
    id1 = submit_request(f,
                         "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{"
                         "\"name\":\"t\",\"arguments\":{\"z\":1,\"apiKey\":\"s3cr3t-value\","
                         "\"a\":\"x\"},\"_meta\":{\"progressToken\":7}}}",
                         "arguments");
    id2 = submit_request(
        f, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{}}", "arguments");
    id3 = submit_request(f,
                         "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"resources/read\",\"params\":{"
                         "\"uri\":\"file:///srv/a\"}}",
                         "uri");
    assert_int_equal(id1, 1);
    assert_int_equal(id2, 2);
    assert_int_equal(id3, 3);
    close_audit(f);
    s = raw_text(f->path, "SELECT args FROM audit WHERE id = 1", &len);
    assert_string_equal(s, "{\"a\":\"x\",\"apiKey\":\"***\",\"z\":1}");
    free(s);
    assert_false(file_has(f->path, "s3cr3t-value"));
    assert_false(file_has(f->path, "progressToken"));
    assert_int_equal(raw_int(f->path, "SELECT args IS NULL AND args_digest IS NULL FROM audit "
                                      "WHERE id = 2"),
                     1);
    s = raw_text(f->path, "SELECT args FROM audit WHERE id = 3", &len);
    assert_string_equal(s, "\"file:///srv/a\"");
    free(s);
    assert_verifies(f->path, 3);
}

/* Arguments handed over as a value: redacted on a copy, the caller's value untouched. */
static void test_args_value(void **state)
{
    struct fixture *f = *state;
    json_t *secret = json_loads("{\"z\":1,\"apiKey\":\"s3cr3t-value\",\"list\":[{\"name\":"
                                "\"X-Api-Key\",\"value\":\"v-1\"}],\"a\":\"x\"}",
                                0, NULL);
    json_t *plain =
        json_loads("{\"z\":[1,2],\"path\":\"/srv/a\",\"a\":{\"y\":1,\"b\":2}}", 0, NULL);
    json_t *uri = json_string("file:///srv/a");
    json_t *vals[] = { secret, plain, uri, NULL };
    char digest[65], *s, *before;
    size_t len;

    assert_non_null(secret);
    assert_non_null(plain);
    open_audit(f);
    before = json_dumps(secret, JSON_COMPACT);
    for (int i = 0; i < 4; i++) {
        struct mcpd_audit_record r = { 0 };
        int64_t id = -1;
        int base = f->ncb;
        r.kind = MCPD_AUDIT_CALL;
        r.tool = "t";
        r.status = "forwarded";
        r.args_value = vals[i];
        r.row_id = &id;
        assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
        run_until(f, base + 1);
        assert_int_equal(f->last_status, 0);
        assert_int_equal(id, i + 1);
    }
    /* the writer redacted a copy: the caller's value still holds its secret */
    s = json_dumps(secret, JSON_COMPACT);
    assert_string_equal(s, before);
    assert_non_null(strstr(s, "s3cr3t-value"));
    free(s);
    free(before);
    close_audit(f);
    s = raw_text(f->path, "SELECT args FROM audit WHERE id = 1", &len);
    assert_string_equal(s, "{\"a\":\"x\",\"apiKey\":\"***\",\"list\":[{\"name\":\"X-Api-Key\","
                           "\"value\":\"***\"}],\"z\":1}");
    free(s);
    assert_false(file_has(f->path, "s3cr3t-value"));
    s = raw_text(f->path, "SELECT args FROM audit WHERE id = 2", &len);
    assert_string_equal(s, "{\"a\":{\"b\":2,\"y\":1},\"path\":\"/srv/a\",\"z\":[1,2]}");
    sha256_hex(digest, s, strlen(s));
    free(s);
    s = raw_text(f->path, "SELECT args_digest FROM audit WHERE id = 2", &len);
    assert_string_equal(s, digest);
    free(s);
    s = raw_text(f->path, "SELECT args FROM audit WHERE id = 3", &len);
    assert_string_equal(s, "\"file:///srv/a\"");
    free(s);
    assert_int_equal(raw_int(f->path, "SELECT args IS NULL AND args_digest IS NULL FROM audit "
                                      "WHERE id = 4"),
                     1);
    assert_verifies(f->path, 4);
    json_decref(secret);
    json_decref(plain);
    json_decref(uri);
}

static void test_outcomes(void **state)
{
    enum { N = 2500 };
    struct fixture *f = *state;
    int64_t id;

    open_audit(f);
    id = submit_request(f, "{\"params\":{\"arguments\":{}}}", "arguments");
    assert_int_equal(mcpd_audit_outcome(f->a, id, "ok", 1234), 0);
    /* a lone outcome is written without any further record */
    for (int i = 0; i < 400 && raw_int(f->path, "SELECT count(*) FROM audit") < 2; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(5000);
    }
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit WHERE kind = 'result' AND "
                                      "args = '[[1,\"ok\",1234]]' AND reason = '1 outcome'"),
                     1);
    /* many: split into rows of at most MCPD_AUDIT_OUTCOMES_PER_ROW, all flushed on close */
    {
        static int64_t handles[N];
        struct mcpd_audit_record r;
        char tool[32];
        int base = f->ncb;

        for (int i = 0; i < N; i++) { /* calls with ids 3 .. N + 2 (the result row is 2) */
            fill_record(&r, i, tool, sizeof(tool));
            r.row_id = &handles[i];
            assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
        }
        run_until(f, base + N);
        for (int i = 0; i < N; i++)
            assert_int_equal(
                mcpd_audit_outcome(f->a, handles[i], i % 2 ? "tool_error" : "cancelled", i), 0);
    }
    close_audit(f);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit a, json_each(a.args) j WHERE "
                                      "a.kind = 'result'"),
                     N + 1);
    assert_int_equal(raw_int(f->path, "SELECT count(DISTINCT json_extract(j.value, '$[0]')) FROM "
                                      "audit a, json_each(a.args) j WHERE a.kind = 'result'"),
                     N + 1);
    assert_int_equal(raw_int(f->path, "SELECT max(json_array_length(args)) FROM audit WHERE kind "
                                      "= 'result'"),
                     MCPD_AUDIT_OUTCOMES_PER_ROW);
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit a, json_each(a.args) j WHERE "
                                      "a.kind = 'result' AND json_extract(j.value, '$[0]') = 1502 "
                                      "AND json_extract(j.value, '$[1]') = 'tool_error' AND "
                                      "json_extract(j.value, '$[2]') = 1499"),
                     1);
    assert_verifies(f->path, raw_int(f->path, "SELECT count(*) FROM audit"));
    /* the chain covers outcomes: forging one is found at its row */
    raw_exec(f->path, "UPDATE audit SET args = replace(args, '\"ok\"', '\"error\"') WHERE id = 2");
    assert_bad_row(f->path, 2);
}

static void test_outcome_refused_when_closing(void **state)
{
    struct fixture *f = *state;

    open_audit(f);
    mcpd_audit_close(f->a, on_closed, f);
    assert_int_equal(mcpd_audit_outcome(f->a, 1, "ok", 1), MCPD_EUNAVAIL);
    while (!f->closed)
        uv_run(&f->loop, UV_RUN_ONCE);
    f->a = NULL;
    assert_int_equal(raw_int(f->path, "SELECT count(*) FROM audit"), 0);
}

/* The canonical row text (audit_int.h), written out by hand: stored files stay verifiable. */
static void test_canonical_text(void **state)
{
    struct fixture *f = *state;
    struct mcpd_audit_record r = { 0 };
    char want[65], buf[1024], *h;
    size_t len;
    int n;

    open_audit(f);
    r.kind = MCPD_AUDIT_DENY;
    r.time_ms = 1700000000123LL;
    r.bot = "alice";
    r.tool = "rm";
    r.reason = "paths: '/etc'";
    r.status = "denied";
    r.latency_us = -5;
    assert_int_equal(mcpd_audit_submit(f->a, &r, on_ack, f), 0);
    run_until(f, 1);
    close_audit(f);
    n = snprintf(buf, sizeof(buf),
                 "%s\nid=1:1\ntime_ms=13:1700000000123\nkind=4:deny\nbot=5:alice\nsession=-\n"
                 "transport=-\nresource=-\ntool=2:rm\nlocation=-\ndecision=-\n"
                 "reason=13:paths: '/etc'\nargs=-\nargs_truncated=1:0\nargs_digest=-\n"
                 "status=6:denied\nlatency_us=2:-5\n",
                 "0000000000000000000000000000000000000000000000000000000000000000");
    sha256_hex(want, buf, (size_t)n);
    h = raw_text(f->path, "SELECT hash FROM audit WHERE id = 1", &len);
    assert_string_equal(h, want);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_many_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redaction, setup, teardown),
        cmocka_unit_test(test_secret_keys_against_rule),
        cmocka_unit_test_setup_teardown(test_nul_and_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_args_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_edit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_reorder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tamper_rechain_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_chain_rewritten, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyed_chain_rewritten, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keyed_chain_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_key_derived, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_keyed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_keyed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_rows_continues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_closed_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_closed_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_closed_readonly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_print_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_print_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_bounded_one_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_checkpoint_by_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_at_a_time_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outcomes_alone_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_torn_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_damaged_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_watermark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_held_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_new_journal_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_two_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_late_outcome, setup, teardown),
        cmocka_unit_test_setup_teardown(test_journal_rotates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_few_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_between_flushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acked_after_each_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_helper_busy_then_idle, setup, teardown),
        cmocka_unit_test(test_canon_matches_jansson),
        cmocka_unit_test(test_block_splices_journal_row),
        cmocka_unit_test_setup_teardown(test_upgrade_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_v1_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_with_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_safety, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_args_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outcome_refused_when_closing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canonical_text, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
