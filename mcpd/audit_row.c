/*
 * audit_row.c - what one audit row is: the schema, the canonical row text
 * that the hash chain covers, and the treatment of the arguments.
 *
 * Arguments are parsed (jansson, NUL allowed inside strings), redacted and
 * re-serialised canonically (JSON_COMPACT | JSON_SORT_KEYS; a NUL inside a
 * value comes out as the escape \u0000, so nothing after it is lost and the
 * text never holds a raw NUL). Redaction replaces, at any depth, the value
 * of every key that looks like a secret (secret_words below, matched
 * case-insensitively as a substring, ignoring '-', '_', '.' and ' ' in the
 * key, so "apiKey", "X-Api-Key" and "api_key" all match "apikey"), and the
 * "value" of {"name"|"key": <secret-looking name>, "value": ...} pairs
 * (header lists), by the string "***".
 *
 * args_digest is the SHA-256 of the whole *redacted* canonical text, not of
 * the original: a digest of the raw arguments would let anyone holding the
 * audit file confirm guesses of a low-entropy secret (a password, a PIN) by
 * hashing candidates. The digest still identifies the call's arguments
 * past the stored cap.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "audit.h"
#include "audit_int.h"
#include "buf.h"
#include "crypto.h"
#include "error.h"
#include "limits.h"
#include "store_db.h"

#define REDACTED "***"

/*
 * The one list of secret-looking key names (lowercase, without separators).
 * Their first letters are the ones is_first_letter() admits.
 */
#define WORD(s)          \
    {                    \
        s, sizeof(s) - 1 \
    }
static const struct {
    const char *w;
    size_t len;
} secret_words[] = {
    WORD("password"),   WORD("passwd"),     WORD("passphrase"),    WORD("secret"),
    WORD("token"),      WORD("apikey"),     WORD("authorization"), WORD("cookie"),
    WORD("credential"), WORD("privatekey"), WORD("sessionkey"),
};
#undef WORD
#define SECRET_WORD_MIN 5 /* "token" */

static bool is_first_letter(unsigned char c)
{
    return c == 'a' || c == 'c' || c == 'p' || c == 's' || c == 't';
}

/*
 * Schema 2: the records of one commit are one row of audit_block, a JSON
 * array of records (mcpd__audit_row_json), so a commit inserts one row
 * however many records it holds. The view `audit` shows them one record
 * per row, with the columns of schema 1, for queries, verify and sqlite3.
 */
const char mcpd__audit_schema_sql[] =
    AUDIT_BLOCK_TABLE_SQL "CREATE VIEW IF NOT EXISTS audit(" AUDIT_COLUMNS ", hash) AS"
                          " SELECT " AUDIT_RECORD_COLUMNS AUDIT_RECORD_FROM ";"
                          "CREATE TABLE IF NOT EXISTS audit_meta ("
                          " k TEXT PRIMARY KEY NOT NULL, id INTEGER NOT NULL, hash TEXT NOT NULL);"
                          "INSERT OR IGNORE INTO audit_meta(k, id, hash) VALUES"
                          " ('schema', 2, ''),"
                          " ('anchor', 0, '" AUDIT_ZERO_HASH "'),"
                          " ('head', 0, '" AUDIT_ZERO_HASH "');";

static const char *const col_names[AC_NCOLS] = {
    [AC_ID] = "id",
    [AC_TIME_MS] = "time_ms",
    [AC_KIND] = "kind",
    [AC_BOT] = "bot",
    [AC_SESSION] = "session",
    [AC_TRANSPORT] = "transport",
    [AC_RESOURCE] = "resource",
    [AC_TOOL] = "tool",
    [AC_LOCATION] = "location",
    [AC_DECISION] = "decision",
    [AC_REASON] = "reason",
    [AC_ARGS] = "args",
    [AC_ARGS_TRUNCATED] = "args_truncated",
    [AC_ARGS_DIGEST] = "args_digest",
    [AC_STATUS] = "status",
    [AC_LATENCY_US] = "latency_us",
};

bool mcpd__audit_col_is_int(enum audit_col c)
{
    return c == AC_ID || c == AC_TIME_MS || c == AC_ARGS_TRUNCATED || c == AC_LATENCY_US;
}

const char *mcpd__audit_kind_name(int kind)
{
    switch (kind) {
    case MCPD_AUDIT_CALL:
        return "call";
    case MCPD_AUDIT_DENY:
        return "deny";
    case MCPD_AUDIT_LIST:
        return "list";
    case MCPD_AUDIT_AUTH:
        return "auth";
    case MCPD_AUDIT_RESULT:
        return "result";
    case MCPD_AUDIT_CREDENTIAL:
        return "credential";
    default:
        return "unknown";
    }
}

/* ---- the canonical row ----------------------------------------------------------------------- */

size_t mcpd__audit_put_dec(char *out, int64_t v)
{
    char tmp[24];
    size_t n = 0, k = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        out[k++] = '-';
    while (n > 0)
        out[k++] = tmp[--n];
    return k;
}

/* Appends p (n bytes) at *at in buf; the caller sized buf. */
static void put(char *buf, size_t *at, const void *p, size_t n)
{
    memcpy(buf + *at, p, n);
    *at += n;
}

/*
 * The canonical text is built by hand (no printf: it was the writer's top
 * cost) into a stack buffer when it fits, else one allocation.
 */
int mcpd__audit_row_hash(char out[AUDIT_HASH_HEX + 1], const char *prev,
                         const struct audit_val row[AC_NCOLS], const unsigned char *key)
{
    char stack[2048], num[AC_NCOLS][24], *buf = stack;
    size_t numlen[AC_NCOLS], plen = strlen(prev), need = plen + 1, at = 0;
    unsigned char md[32];
    int r;

    for (int c = 0; c < AC_NCOLS; c++) {
        need += 16 + 2 + 21 + 2; /* a name (at most 15 bytes), "=", a length, ":", "\n" */
        if (mcpd__audit_col_is_int((enum audit_col)c)) {
            numlen[c] = mcpd__audit_put_dec(num[c], row[c].i);
            need += numlen[c];
        } else {
            need += row[c].p ? row[c].len : 0;
        }
    }
    if (need > sizeof(stack) && (buf = malloc(need)) == NULL)
        return MCPD_ENOMEM;
    put(buf, &at, prev, plen);
    put(buf, &at, "\n", 1);
    for (int c = 0; c < AC_NCOLS; c++) {
        const char *p = row[c].p;
        size_t len = row[c].len;
        char lenbuf[24];

        put(buf, &at, col_names[c], strlen(col_names[c]));
        if (mcpd__audit_col_is_int((enum audit_col)c)) {
            p = num[c];
            len = numlen[c];
        } else if (p == NULL) {
            put(buf, &at, "=-\n", 3);
            continue;
        }
        put(buf, &at, "=", 1);
        put(buf, &at, lenbuf, mcpd__audit_put_dec(lenbuf, (int64_t)len));
        put(buf, &at, ":", 1);
        put(buf, &at, p, len);
        put(buf, &at, "\n", 1);
    }
    if (key != NULL) {
        unsigned int mdlen = 0;
        r = HMAC(EVP_sha256(), key, 32, (const unsigned char *)buf, at, md, &mdlen) != NULL &&
                    mdlen == sizeof(md)
                ? 0
                : MCPD_ENOMEM;
    } else {
        r = mcpd__store_db_sha256(md, buf, at);
    }
    if (r == 0)
        mcpd__store_db_hex(out, md, sizeof(md));
    if (buf != stack)
        free(buf);
    return r;
}

int mcpd_audit_chain_key(unsigned char out[32], const char *key_file, bool create, char *err,
                         size_t errcap)
{
    unsigned char master[32];
    int r = mcpd_crypto_master_key(master, key_file, create, NULL, err, errcap);

    if (r == 0 && (r = mcpd_crypto_derive(out, master, AUDIT_KEY_INFO)) != 0)
        snprintf(err, errcap, "cannot derive the audit chain's key");
    mcpd_crypto_wipe(master, sizeof(master));
    return r;
}

void mcpd__audit_key_check(const unsigned char key[32], char out[AUDIT_HASH_HEX + 1])
{
    static const char what[] = "mcpd audit key check";
    unsigned char md[32];
    unsigned int mdlen = 0;

    if (HMAC(EVP_sha256(), key, 32, (const unsigned char *)what, sizeof(what) - 1, md, &mdlen) ==
            NULL ||
        mdlen != sizeof(md))
        memset(md, 0, sizeof(md)); /* matches no store's check */
    mcpd__store_db_hex(out, md, sizeof(md));
}

int mcpd__audit_chain_mode(sqlite3_stmt *meta_get, const char *path, const unsigned char *key,
                           bool *keyed, char *err, size_t errcap)
{
    struct audit_link l;
    char check[AUDIT_HASH_HEX + 1];
    int rc = mcpd__audit_meta_get(meta_get, "chain", &l);

    *keyed = rc == SQLITE_OK;
    if (rc != SQLITE_OK && rc != SQLITE_DONE) {
        snprintf(err, errcap, "%s: cannot read the audit chain's kind: %s", path,
                 sqlite3_errstr(rc));
        return MCPD_ECONFIG;
    }
    if (!*keyed)
        return 0;
    if (key == NULL) {
        snprintf(err, errcap,
                 "%s: this audit log is chained with HMAC under the master key: give it "
                 "(audit.chain: hmac, and MCPD_MASTER_KEY or master_key_file)",
                 path);
        return MCPD_ECONFIG;
    }
    mcpd__audit_key_check(key, check);
    if (strlen(l.hash) != AUDIT_HASH_HEX || CRYPTO_memcmp(check, l.hash, AUDIT_HASH_HEX) != 0) {
        snprintf(err, errcap, "%s: the master key is not the one this audit log is chained with",
                 path);
        return MCPD_ECONFIG;
    }
    return 0;
}

bool mcpd__audit_row_read(sqlite3_stmt *st, struct audit_val row[AC_NCOLS])
{
    bool ok = true;

    for (int c = 0; c < AC_NCOLS; c++) {
        int t = sqlite3_column_type(st, c);

        memset(&row[c], 0, sizeof(row[c]));
        if (mcpd__audit_col_is_int((enum audit_col)c)) {
            ok = ok && t == SQLITE_INTEGER;
            row[c].i = sqlite3_column_int64(st, c);
        } else if (t != SQLITE_NULL) {
            ok = ok && t == SQLITE_TEXT;
            row[c].p = (const char *)sqlite3_column_text(st, c);
            row[c].len = (size_t)sqlite3_column_bytes(st, c);
            if (row[c].p == NULL) /* out of memory in sqlite: fail closed */
                ok = false;
        }
    }
    return ok;
}

int mcpd__audit_meta_get(sqlite3_stmt *get, const char *key, struct audit_link *out)
{
    const unsigned char *h;
    int rc;

    sqlite3_reset(get);
    if ((rc = sqlite3_bind_text(get, 1, key, (int)strlen(key), SQLITE_STATIC)) != SQLITE_OK)
        return rc;
    rc = sqlite3_step(get);
    if (rc == SQLITE_ROW) {
        h = sqlite3_column_text(get, 1);
        out->id = sqlite3_column_int64(get, 0);
        if (h == NULL || sqlite3_column_bytes(get, 1) != AUDIT_HASH_HEX)
            h = (const unsigned char *)"";
        snprintf(out->hash, sizeof(out->hash), "%s", (const char *)h);
        rc = SQLITE_OK;
    }
    sqlite3_reset(get);
    return rc;
}

/* ---- redaction ------------------------------------------------------------------------------- */

static bool is_sep(unsigned char c)
{
    return c == '-' || c == '_' || c == '.' || c == ' ';
}

static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* Whether word occurs in key at some start, separators in the key skipped. */
static bool key_has_word(const char *key, size_t len, const char *word)
{
    for (size_t i = 0; i < len; i++) {
        size_t k = i, w = 0;

        if (is_sep((unsigned char)key[i]))
            continue;
        while (word[w] != '\0' && k < len) {
            unsigned char c = (unsigned char)key[k++];
            if (is_sep(c))
                continue;
            if (ascii_lower(c) != (unsigned char)word[w])
                break;
            w++;
        }
        if (word[w] == '\0')
            return true;
    }
    return false;
}

/* Keys too long for the folded copy, or holding a NUL: the word-by-word scan. */
static bool long_key_is_secret(const char *key, size_t len)
{
    for (size_t i = 0; i < sizeof(secret_words) / sizeof(secret_words[0]); i++)
        if (key_has_word(key, len, secret_words[i].w))
            return true;
    return false;
}

bool mcpd_audit_key_is_secret(const char *key, size_t len)
{
    char folded[128];
    size_t n = 0;

    /* lowercase without separators, once; then the words are looked for in that */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];

        if (is_sep(c))
            continue;
        if (c == '\0' || n == sizeof(folded) - 1)
            return long_key_is_secret(key, len);
        folded[n++] = (char)ascii_lower(c);
    }
    /* a word can start only where its first letter is (most keys have few of those) */
    for (size_t i = 0; i + SECRET_WORD_MIN <= n; i++) {
        if (!is_first_letter((unsigned char)folded[i]))
            continue;
        for (size_t w = 0; w < sizeof(secret_words) / sizeof(secret_words[0]); w++)
            if (secret_words[w].w[0] == folded[i] && secret_words[w].len <= n - i &&
                memcmp(folded + i, secret_words[w].w, secret_words[w].len) == 0)
                return true;
    }
    return false;
}

static int redact(json_t *j);

/* {"name": "Authorization", "value": "..."}: the value goes too. */
static int redact_pair(json_t *obj)
{
    const char *names[] = { "name", "key" };
    json_t *v;

    for (size_t i = 0; i < 2; i++) {
        v = json_object_get(obj, names[i]);
        if (json_is_string(v) &&
            mcpd_audit_key_is_secret(json_string_value(v), json_string_length(v)) &&
            json_object_get(obj, "value") != NULL)
            return json_object_set_new(obj, "value", json_string(REDACTED)) == 0 ? 0 : MCPD_ENOMEM;
    }
    return 0;
}

static int redact_object(json_t *obj)
{
    void *it;
    int r;

    for (it = json_object_iter(obj); it != NULL; it = json_object_iter_next(obj, it)) {
        const char *k = json_object_iter_key(it);

        if (mcpd_audit_key_is_secret(k, strlen(k))) {
            if (json_object_iter_set_new(obj, it, json_string(REDACTED)) != 0)
                return MCPD_ENOMEM;
        } else if ((r = redact(json_object_iter_value(it))) != 0) {
            return r;
        }
    }
    return redact_pair(obj);
}

static int redact(json_t *j)
{
    int r;

    if (json_is_object(j))
        return redact_object(j);
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++)
            if ((r = redact(json_array_get(j, i))) != 0)
                return r;
    }
    return 0;
}

size_t mcpd__audit_utf8_cut(const char *s, size_t len, size_t cap)
{
    size_t n = cap;

    if (len <= cap)
        return len;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

static int dump_args(const json_t *j, size_t cap, char **text, size_t *text_len, bool *truncated,
                     char digest[AUDIT_HASH_HEX + 1]);

int mcpd__audit_args(const char *json, size_t len, const char *key, size_t cap, char **text,
                     size_t *text_len, bool *truncated, char digest[AUDIT_HASH_HEX + 1])
{
    json_t *j = NULL, *msg = NULL;
    int r = 0;

    *text = NULL;
    *text_len = 0;
    *truncated = false;
    digest[0] = '\0';
    if (json == NULL)
        return 0;
    if (key != NULL) {
        /* a whole request: the arguments are params[key] (absent: none) */
        if ((msg = json_loadb(json, len, JSON_ALLOW_NUL, NULL)) == NULL)
            return 0;
        j = json_incref(json_object_get(json_object_get(msg, "params"), key));
        json_decref(msg);
    } else {
        j = json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    }
    if (j == NULL)
        return 0; /* not JSON: stored as NULL rather than unredacted */
    if ((r = redact(j)) != 0)
        goto out;
    r = dump_args(j, cap, text, text_len, truncated, digest);
out:
    json_decref(j);
    return r;
}

/* True when redact() would change j (read-only). */
static bool needs_redaction(const json_t *j)
{
    const char *k;
    json_t *v;
    size_t i;

    if (json_is_array(j)) {
        json_array_foreach (j, i, v)
            if (needs_redaction(v))
                return true;
        return false;
    }
    if (!json_is_object(j))
        return false;
    json_object_foreach ((json_t *)j, k, v) {
        if (mcpd_audit_key_is_secret(k, strlen(k)) || needs_redaction(v))
            return true;
    }
    if (json_object_get(j, "value") != NULL) {
        const char *names[] = { "name", "key" };
        for (i = 0; i < 2; i++) {
            v = json_object_get(j, names[i]);
            if (json_is_string(v) &&
                mcpd_audit_key_is_secret(json_string_value(v), json_string_length(v)))
                return true;
        }
    }
    return false;
}

int mcpd__audit_args_value(json_t *args, size_t cap, char **text, size_t *text_len, bool *truncated,
                           char digest[AUDIT_HASH_HEX + 1])
{
    json_t *copy;
    int r;

    *text = NULL;
    *text_len = 0;
    *truncated = false;
    digest[0] = '\0';
    if (args == NULL)
        return 0;
    if (!needs_redaction(args))
        return dump_args(args, cap, text, text_len, truncated, digest);
    /* the value is shared with the loop: redact a copy */
    if ((copy = json_deep_copy(args)) == NULL)
        return MCPD_ENOMEM;
    if ((r = redact(copy)) == 0)
        r = dump_args(copy, cap, text, text_len, truncated, digest);
    json_decref(copy);
    return r;
}

/* Serialises j canonically (sorted keys), digests and caps it. */
static int dump_args(const json_t *j, size_t cap, char **text, size_t *text_len, bool *truncated,
                     char digest[AUDIT_HASH_HEX + 1])
{
    struct mcpd_buf b;
    unsigned char md[32];
    size_t n = 0;
    int r;

    mcpd_buf_init(&b, SIZE_MAX / 2);
    r = mcpd__audit_canon(&b, j);
    if (r == 0 && b.p == NULL)
        r = mcpd_buf_reserve(&b, 1);
    if (r == 0) {
        *text = mcpd_buf_steal(&b, &n);
    } else if (r == 1) { /* what the fast path does not write: jansson's own */
        mcpd_buf_dispose(&b);
        r = 0;
        if ((*text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)) != NULL)
            n = strlen(*text);
    } else {
        mcpd_buf_dispose(&b);
        *text = NULL;
    }
    if (*text == NULL || (r = mcpd__store_db_sha256(md, *text, n)) != 0) {
        r = MCPD_ENOMEM;
        goto out;
    }
    mcpd__store_db_hex(digest, md, sizeof(md));
    *text_len = mcpd__audit_utf8_cut(*text, n, cap);
    *truncated = *text_len < n;
out:
    if (r != 0) {
        free(*text);
        *text = NULL;
        *text_len = 0;
        digest[0] = '\0';
    }
    return r;
}

/* ---- canonical JSON, fast -------------------------------------------------------------------- */

/*
 * The bytes json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)
 * writes, without its callback per token (it was 5 % of mcpd's CPU per call
 * in the audit's profile). Strings: '"', '\\', \b \f \n \r \t escaped by
 * name, other C0 controls as \u00XX (upper-case hex), everything else as
 * is (jansson holds valid UTF-8). Keys sorted bytewise. What this does not
 * write the same way (reals, keys holding a NUL) it refuses with 1, and the
 * caller uses jansson: unit.audit compares both on a corpus, and the fuzz
 * target audit_canon on whatever the fuzzer finds.
 */
/* Bytes an escape adds to a byte: 0 as is, 1 a named escape (\n), 5 \u00XX. */
static const unsigned char esc_extra[256] = {
    5, 5, 5, 5, 5, 5, 5, 5, 1, 1, 1, 5, 1, 1, 5, 5, /* \b \t \n \f \r by name */
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, ['"'] = 1, ['\\'] = 1,
};

#if defined(__SSE2__)
/*
 * A bit per byte of the 16 at s that needs an escape (below 0x20, '"',
 * '\\'). Most fields (ids, hashes, names) need none and go by one memcpy;
 * the arguments' JSON text, quoted inside the row, needs one every few
 * bytes, and goes by runs between escapes.
 */
static inline unsigned esc_mask16(const unsigned char *s)
{
    __m128i x = _mm_loadu_si128((const __m128i *)(const void *)s);
    __m128i ctl = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1f)), x);
    __m128i q = _mm_cmpeq_epi8(x, _mm_set1_epi8('"'));
    __m128i bs = _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'));

    return (unsigned)_mm_movemask_epi8(_mm_or_si128(ctl, _mm_or_si128(q, bs)));
}
#endif

/* Bytes the escapes of s add (0: s goes as it is). */
static size_t escape_extra(const unsigned char *s, size_t len)
{
    size_t extra = 0, i = 0;

#if defined(__SSE2__)
    for (; i + 16 <= len; i += 16)
        for (unsigned m = esc_mask16(s + i); m != 0; m &= m - 1)
            extra += esc_extra[s[i + (size_t)__builtin_ctz(m)]];
#endif
    for (; i < len; i++)
        extra += esc_extra[s[i]];
    return extra;
}

/* Writes one escaped byte c at o; returns the end. */
static char *put_escape(char *o, unsigned char c)
{
    static const char hex[] = "0123456789ABCDEF";

    *o++ = '\\';
    switch (c) {
    case '"':
    case '\\':
        *o++ = (char)c;
        break;
    case '\b':
        *o++ = 'b';
        break;
    case '\f':
        *o++ = 'f';
        break;
    case '\n':
        *o++ = 'n';
        break;
    case '\r':
        *o++ = 'r';
        break;
    case '\t':
        *o++ = 't';
        break;
    default:
        memcpy(o, "u00", 3);
        o[3] = hex[c >> 4];
        o[4] = hex[c & 15];
        o += 5;
        break;
    }
    return o;
}

/* Writes the string, measured first so that it is one reservation and (mostly) one copy. */
static int canon_string(struct mcpd_buf *b, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t extra = escape_extra(s, len), i = 0;
    char *o;
    int r;

    if ((r = mcpd_buf_reserve(b, len + extra + 2)) != 0)
        return r;
    o = b->p + b->len;
    *o++ = '"';
    if (extra == 0) {
        if (len)
            memcpy(o, s, len);
        o += len;
    } else {
#if defined(__SSE2__)
        for (; i + 16 <= len; i += 16) {
            size_t run = 0;

            for (unsigned m = esc_mask16(s + i); m != 0; m &= m - 1) {
                size_t k = (size_t)__builtin_ctz(m);

                memcpy(o, s + i + run, k - run);
                o = put_escape(o + (k - run), s[i + k]);
                run = k + 1;
            }
            memcpy(o, s + i + run, 16 - run);
            o += 16 - run;
        }
#endif
        for (; i < len; i++) {
            if (esc_extra[s[i]] == 0)
                *o++ = (char)s[i];
            else
                o = put_escape(o, s[i]);
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    b->p[b->len] = '\0';
    return 0;
}

struct canon_key {
    const char *k;
    size_t len;
    json_t *v;
};

static int canon_key_cmp(const void *x, const void *y)
{
    const struct canon_key *a = x, *b = y;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->k, b->k, n);

    return c != 0 ? c : (a->len > b->len) - (a->len < b->len);
}

static int canon_value(struct mcpd_buf *b, const json_t *j, int depth);

static int canon_object(struct mcpd_buf *b, const json_t *j, int depth)
{
    struct canon_key stack[16], *keys = stack;
    size_t n = json_object_size(j), i = 0;
    const char *k;
    json_t *v;
    int r = 0;

    if (n > sizeof(stack) / sizeof(stack[0]) && (keys = malloc(n * sizeof(*keys))) == NULL)
        return MCPD_ENOMEM;
    json_object_foreach ((json_t *)j, k, v) {
        size_t len = strlen(k);

        if (i == n || len != json_object_iter_key_len(json_object_key_to_iter(k))) {
            r = 1; /* a key holding a NUL */
            goto out;
        }
        keys[i++] = (struct canon_key){ k, len, v };
    }
    if (i <= sizeof(stack) / sizeof(stack[0])) {
        /* few keys (the usual arguments): insertion sort, without qsort's calls per compare */
        for (size_t x = 1; x < i; x++) {
            struct canon_key k0 = keys[x];
            size_t y = x;

            for (; y > 0 && canon_key_cmp(&keys[y - 1], &k0) > 0; y--)
                keys[y] = keys[y - 1];
            keys[y] = k0;
        }
    } else {
        qsort(keys, i, sizeof(*keys), canon_key_cmp);
    }
    r = mcpd_buf_append(b, "{", 1);
    for (size_t x = 0; r == 0 && x < i; x++) {
        if (x > 0 && (r = mcpd_buf_append(b, ",", 1)) != 0)
            break;
        if ((r = canon_string(b, keys[x].k, keys[x].len)) == 0 &&
            (r = mcpd_buf_append(b, ":", 1)) == 0)
            r = canon_value(b, keys[x].v, depth + 1);
    }
    if (r == 0)
        r = mcpd_buf_append(b, "}", 1);
out:
    if (keys != stack)
        free(keys);
    return r;
}

static int canon_value(struct mcpd_buf *b, const json_t *j, int depth)
{
    char num[24];
    int r = 0;

    if (depth > MCPD_MAX_JSON_DEPTH)
        return 1;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return canon_object(b, j, depth);
    case JSON_ARRAY:
        r = mcpd_buf_append(b, "[", 1);
        for (size_t i = 0; r == 0 && i < json_array_size(j); i++) {
            if (i > 0 && (r = mcpd_buf_append(b, ",", 1)) != 0)
                break;
            r = canon_value(b, json_array_get(j, i), depth + 1);
        }
        return r != 0 ? r : mcpd_buf_append(b, "]", 1);
    case JSON_STRING:
        return canon_string(b, json_string_value(j), json_string_length(j));
    case JSON_INTEGER:
        return mcpd_buf_append(b, num, mcpd__audit_put_dec(num, (int64_t)json_integer_value(j)));
    case JSON_TRUE:
        return mcpd_buf_append(b, "true", 4);
    case JSON_FALSE:
        return mcpd_buf_append(b, "false", 5);
    case JSON_NULL:
        return mcpd_buf_append(b, "null", 4);
    default:
        return 1; /* reals: jansson's own formatting */
    }
}

int mcpd__audit_canon(struct mcpd_buf *b, const json_t *j)
{
    size_t mark = b->len;
    int r = canon_value(b, j, 0);

    if (r != 0 && b->p != NULL) {
        b->len = mark;
        b->p[mark] = '\0';
    }
    if (r == MCPD_ETOOBIG)
        r = MCPD_ENOMEM;
    return r;
}

/* ---- blocks ---------------------------------------------------------------------------------- */

int mcpd__audit_block_add(struct audit_block *b, const struct audit_val row[AC_NCOLS],
                          const char *hash, const char *text, size_t text_len)
{
    static const char empty_hash[] = ",\"\"]"; /* how a row with an empty hash ends */
    size_t hl = strlen(hash);
    int r;

    if (b->n == 0) {
        b->first = row[AC_ID].i;
        b->tmax = row[AC_TIME_MS].i;
    }
    if ((r = mcpd_buf_append(&b->text, b->n == 0 ? "[" : ",", 1)) != 0)
        return r;
    if (text != NULL && text_len >= 4 && memcmp(text + text_len - 4, empty_hash, 4) == 0 &&
        escape_extra((const unsigned char *)hash, hl) == 0) {
        /* `[...,` of the row as written, then `"<hash>"]` */
        if ((r = mcpd_buf_reserve(&b->text, text_len + hl)) != 0 ||
            (r = mcpd_buf_append(&b->text, text, text_len - 3)) != 0 ||
            (r = mcpd_buf_append(&b->text, "\"", 1)) != 0 ||
            (r = mcpd_buf_append(&b->text, hash, hl)) != 0 ||
            (r = mcpd_buf_append(&b->text, "\"]", 2)) != 0)
            return r;
    } else if ((r = mcpd__audit_row_json(&b->text, row, hash)) != 0) {
        return r;
    }
    if (row[AC_TIME_MS].i > b->tmax)
        b->tmax = row[AC_TIME_MS].i;
    b->n++;
    return 0;
}

int mcpd__audit_block_insert(sqlite3_stmt *ins, struct audit_block *b)
{
    int rc;

    if (b->n == 0)
        return SQLITE_OK;
    if (mcpd_buf_append(&b->text, "]", 1) != 0)
        return SQLITE_NOMEM;
    sqlite3_reset(ins);
    if ((rc = sqlite3_bind_int64(ins, 1, b->first)) == SQLITE_OK &&
        (rc = sqlite3_bind_int64(ins, 2, (int64_t)b->n)) == SQLITE_OK &&
        (rc = sqlite3_bind_int64(ins, 3, b->tmax)) == SQLITE_OK &&
        (rc = sqlite3_bind_text(ins, 4, b->text.p, (int)b->text.len, SQLITE_STATIC)) == SQLITE_OK &&
        (rc = sqlite3_step(ins)) == SQLITE_DONE)
        rc = SQLITE_OK;
    sqlite3_reset(ins);
    sqlite3_clear_bindings(ins);
    mcpd_buf_reset(&b->text);
    b->n = 0;
    return rc;
}

bool mcpd__audit_is_v1(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    bool v1 = false;

    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'",
                           -1, &st, NULL) == SQLITE_OK)
        v1 = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return v1;
}

/* ---- a record in its block ------------------------------------------------------------------- */

int mcpd__audit_row_json(struct mcpd_buf *b, const struct audit_val row[AC_NCOLS], const char *hash)
{
    char num[24];
    int r = mcpd_buf_append(b, "[", 1);

    for (int c = AC_ID + 1; r == 0 && c < AC_NCOLS; c++) {
        if (c > AC_ID + 1 && (r = mcpd_buf_append(b, ",", 1)) != 0)
            break;
        if (mcpd__audit_col_is_int((enum audit_col)c))
            r = mcpd_buf_append(b, num, mcpd__audit_put_dec(num, row[c].i));
        else if (row[c].p == NULL)
            r = mcpd_buf_append(b, "null", 4);
        else
            r = canon_string(b, row[c].p, row[c].len);
    }
    if (r == 0 && (r = mcpd_buf_append(b, ",", 1)) == 0 &&
        (r = canon_string(b, hash, strlen(hash))) == 0)
        r = mcpd_buf_append(b, "]", 1);
    return r;
}
