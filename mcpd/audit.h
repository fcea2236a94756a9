/*
 * audit.h - the tamper-evident audit log: one sqlite file (WAL), fed
 * through a journal. The records submitted during a loop iteration are
 * written to the journal (a file next to the database) with one write(),
 * from a prepare handle before the loop polls (Redis writes its AOF in
 * beforeSleep the same way), and acknowledged; a helper thread then chains
 * them into sqlite in large transactions (audit.c has the why). Callers
 * hold a call's answer until its record is acknowledged (the router
 * submits a call's row as it forwards the call, so the write happens while
 * the upstream works, and records the outcome afterwards with
 * mcpd_audit_outcome, which nothing waits for), so no acknowledged call is
 * ever lost, and an audit that cannot be written refuses the call (fail
 * closed). Durability: a journal line sits in the page cache once written,
 * so an acknowledged record survives a crash or kill -9 of mcpd (the next
 * open, or `mcpd audit`, chains a journal left behind); with sync_full
 * (an fdatasync per write) also power loss. Nothing that holds the
 * database's write lock (another mcpd, a CLI command, a checkpoint) ever
 * blocks the loop; past busy_timeout_ms the audit refuses.
 * Records are hash-chained: hash = hex SHA-256(prev_hash_hex "\n" canonical
 * row text), where the canonical text is a fixed, length-prefixed
 * serialisation of every column (see audit_int.h); the first record's
 * prev is 64 zeros, and after retention the last deleted record's hash (the
 * "anchor"). `mcpd audit verify` recomputes the chain and names the first
 * record that does not match. The view `audit` shows one record per row.
 *
 * Arguments are stored redacted (values of secret-looking keys become
 * "***", at any depth), as canonical JSON (sorted keys, compact), capped
 * at max_args_bytes with a truncation flag, plus args_digest: the SHA-256
 * of the whole redacted canonical text (never of the secrets, which could
 * be brute-forced from it). They are serialised when submitted: the audit
 * keeps no reference to the caller's values.
 */
#ifndef MCPD_AUDIT_H
#define MCPD_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

struct mcpd_audit;

#define MCPD_AUDIT_OUTCOMES_PER_ROW 1024 /* call outcomes listed in one `result` row at most */
#define MCPD_AUDIT_OUTCOME_DELAY_MS 2    /* a lone outcome waits this long for company */

enum mcpd_audit_kind {
    MCPD_AUDIT_CALL = 0,   /* a tools/call (or prompts/get, resources/read) that was forwarded */
    MCPD_AUDIT_DENY,       /* refused by policy before forwarding */
    MCPD_AUDIT_LIST,       /* a list was filtered: summary in `reason` ("12 of 40 tools") */
    MCPD_AUDIT_AUTH,       /* authentication failure (bot unknown, bad key) */
    MCPD_AUDIT_RESULT,     /* outcomes of forwarded calls (written by the audit itself) */
    MCPD_AUDIT_CREDENTIAL, /* a credential refused (refresh failed, 401): resource = its name */
};

/* One record. Strings are copied by mcpd_audit_submit; any may be NULL. */
struct mcpd_audit_record {
    enum mcpd_audit_kind kind;
    int64_t time_ms; /* wall clock, ms since the epoch (filled in when 0) */
    const char *bot;
    const char *session;   /* session id */
    const char *transport; /* "stdio", "http", "sse" */
    const char *resource;  /* upstream resource name */
    const char *tool;      /* tool (or prompt, or uri) */
    const char *location;  /* "local", "remote:<name>", "plugin:<name>", "agent:<name>" */
    const char *decision;  /* "allow" | "deny" */
    const char *reason;    /* deny reason, or list summary */
    const char
        *args_json; /* canonical JSON of the arguments as checked (redacted and capped here) */
    size_t args_len;
    const char *status; /* "ok", "error", "timeout", "cancelled", "not_sent", "denied", ... */
    int64_t latency_us;
    /*
     * When args_key is set (a static string: "arguments", "uri"), args_json
     * is the whole JSON-RPC request and the arguments are its params[args_key].
     */
    const char *args_key;
    /*
     * Or, instead of args_json: the arguments themselves (params.arguments
     * or params.uri of the request as forwarded), borrowed: they are
     * redacted (on a copy), serialised and digested inside submit, so
     * nothing is parsed and no reference is kept. NULL with args_json NULL:
     * no arguments.
     */
    json_t *args_value;
    /*
     * When set, receives before cb runs the record's handle (> 0; 0 when it
     * failed), for mcpd_audit_outcome: the row id itself is given later,
     * when the helper chains the record.
     */
    int64_t *row_id;
};

/*
 * Called on the loop thread when the record is durable in the journal
 * (status 0) or failed: a negative code from the storage failure
 * (UV_ENOSPC, UV_EFBIG, UV_EIO, UV_EBUSY when the chaining failed before,
 * MCPD_ENOMEM). Every record accepted after a failure fails with the same
 * code.
 */
typedef void (*mcpd_audit_cb)(int status, void *data);

struct mcpd_audit_options {
    const char *path;      /* sqlite file */
    size_t max_args_bytes; /* stored argument text cap (default 64 KiB) */
    unsigned queue_cap;    /* records waiting at most (default 65536) */
    int64_t retain_ms;     /* delete the leading rows older than this (0: keep) */
    int64_t retain_rows;   /* keep at most this many rows (0: no cap) */
    /* Retention runs in each commit's transaction, deletes only a prefix of
     * the chain, whole blocks (at most about a commit + 4096 records at a
     * time), and moves the anchor, so the remaining records still verify. */
    int busy_timeout_ms; /* longest wait for another connection's write lock (0: 5000) */
    bool sync_full;      /* fsync every commit (power loss); default: survive a crash of mcpd */
    /*
     * audit.chain: hmac: 32 bytes derived from the master key (copied), and
     * the chain is HMAC-SHA256 under it; NULL: SHA-256. A new or empty store
     * becomes keyed; a keyed store refuses to open without its key, and a
     * store with SHA-256 records cannot become keyed (audit_int.h).
     */
    const unsigned char *chain_key;
    unsigned checkpoint_pages; /* WAL pages between two checkpoints (0: 4000 KiB of them; tests) */
    size_t journal_bytes;      /* a journal is replaced past this size (0: 16 MiB; tests) */
    /*
     * Optional: called on the loop after each batch of callbacks ran, so
     * that what they queued to be written before the loop blocks is
     * written now (they run in a prepare handle: see mcpd_deferred).
     */
    void (*acked)(void *arg);
    void *acked_arg;
};

/*
 * Opens (creating if needed, mode 0600) the database, checks the schema
 * (converting a schema 1 log that verifies; one that does not is refused
 * and left as it is), starts the helper thread. Borrows loop and o
 * (o->path is required). A file that cannot be opened for writing fails
 * here ("<path>: cannot open for writing: ..." or "<path>: database is
 * read-only"), as does an unknown schema version (MCPD_ECONFIG). Returns
 * 0, or a negative code with a one-line reason in err; *out is set only on
 * success. Should the thread fail to start, the handles are already
 * closing: run the loop once before uv_loop_close.
 */
int mcpd_audit_open(struct mcpd_audit **out, uv_loop_t *loop, const struct mcpd_audit_options *o,
                    char *err, size_t errcap);

/*
 * Queues a record; borrows r (its strings are copied, arguments redacted
 * and capped here, text fields cut to 4 KiB). `cb` (may be NULL) runs
 * later on the loop thread, never synchronously, in submission order.
 * Returns 0, or MCPD_EBUSY (queue_cap records, or 64 MiB, waiting),
 * MCPD_EUNAVAIL (a commit failed and the audit is refusing, for good:
 * the reason is logged once; or close was called), MCPD_ENOMEM: then cb
 * is not called and the caller must refuse the call. Loop thread only.
 */
int mcpd_audit_submit(struct mcpd_audit *a, const struct mcpd_audit_record *r, mcpd_audit_cb cb,
                      void *data);

/*
 * Records the outcome of a call whose `call` record is acknowledged (call_id:
 * the handle its row_id received; the helper writes the row id instead):
 * status ("ok", "tool_error", "error", "timeout", "upstream_error",
 * "cancelled", "not_sent": ended before the request left; cut to 23 bytes) and latency. Nothing
 * waits for it: outcomes are collected and written, in the chain, as `result` rows, each listing
 * the outcomes of one batch as a JSON array [[call_id, status,
 * latency_us], ...] in `args` (at most MCPD_AUDIT_OUTCOMES_PER_ROW per
 * row). A lone outcome waits up to MCPD_AUDIT_OUTCOME_DELAY_MS for a record
 * to share its commit. Returns 0, or MCPD_EBUSY (queue_cap outcomes
 * waiting), MCPD_EUNAVAIL (refusing or closing), MCPD_ENOMEM. Loop only.
 */
int mcpd_audit_outcome(struct mcpd_audit *a, int64_t call_id, const char *status,
                       int64_t latency_us);

/*
 * Flushes everything queued (on the next loop iteration, waiting for the
 * write lock up to busy_timeout_ms), stops the helper thread, closes the
 * database, and
 * calls done (may be NULL; on the loop thread, never synchronously) when
 * finished; the audit is freed then. Callbacks of queued records still run
 * first. Submit returns MCPD_EUNAVAIL once close was called. A second
 * close is ignored.
 */
void mcpd_audit_close(struct mcpd_audit *a, void (*done)(void *data), void *data);

/*
 * Whether a JSON object key (len bytes) names a secret, by the audit's
 * redaction list (audit_row.c): "password", "token", "apiKey",
 * "X-Api-Key", "Authorization", ... Other modules redacting their own
 * output use the same rule.
 */
bool mcpd_audit_key_is_secret(const char *key, size_t len);

/* ---- offline use (CLI), synchronous: never call these on the loop ------------- */

/*
 * Whether the audit log at path is keyed already (its mark is there); false
 * when the file does not exist or cannot be read. For the daemon: the key
 * file is created only for a store that is not keyed yet, so a mistyped
 * key file path is an error, not a new key.
 */
bool mcpd_audit_store_keyed(const char *path);

/*
 * The key of a keyed chain: the master key (MCPD_MASTER_KEY, or key_file,
 * created when `create`: see mcpd_crypto_master_key) through HKDF for the
 * audit alone. Returns 0 or a negative code (err filled).
 */
int mcpd_audit_chain_key(unsigned char out[32], const char *key_file, bool create, char *err,
                         size_t errcap);

/*
 * Verifies the chain from the anchor to the head the writer recorded (a
 * keyed chain with chain_key: a keyed store without it, or with another
 * key, is an error, not a broken chain).
 * Returns 0 when intact (*rows = rows checked), or 1 with *bad_row the id
 * of the first row that does not verify (an edited row: its id; a deleted
 * row: the missing id; a reordered pair: the first; a truncated tail: the
 * first missing id) and *rows the good rows before it, or a negative code
 * (err filled) when the file cannot be read or holds no audit.
 */
int mcpd_audit_verify(const char *path, const unsigned char *chain_key, int64_t *rows,
                      int64_t *bad_row, char *err, size_t errcap);

struct mcpd_audit_query {
    int64_t since_ms;               /* rows with time_ms >= this (0: all) */
    const unsigned char *chain_key; /* a keyed store's key, to chain a journal left behind */
    const char *bot;                /* NULL: any */
    const char *tool;
    const char *location;
    bool json;     /* JSON lines instead of a table */
    int64_t limit; /* 0: all; else the last `limit` matches, oldest first */
};

/*
 * Prints matching rows (filters are exact matches) to `out_file` (a FILE *)
 * in id order: a tab-separated table with a header line, or JSON lines
 * with every column. Every field is escaped (control characters, bidi
 * overrides, invalid UTF-8), so a stored value cannot forge a line.
 * Returns 0 or a negative code (err filled).
 */
int mcpd_audit_print(const char *path, const struct mcpd_audit_query *q, void *out_file, char *err,
                     size_t errcap);

#endif
