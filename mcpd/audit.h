/*
 * audit.h - the tamper-evident audit log: one sqlite file (WAL), written by
 * one writer thread fed by a bounded queue and woken with a uv_async_t,
 * committed in batches (group commit). The loop thread never touches
 * sqlite for the audit.
 *
 * Every record is acknowledged on the loop thread once its batch is
 * committed (or failed): callers hold a call's answer until then, so no
 * acknowledged call is ever lost, and an audit that cannot be written
 * refuses the call (fail closed).
 *
 * Rows are hash-chained: hash = SHA-256(prev_hash || canonical row content),
 * where the canonical content is a fixed serialisation of every stored
 * column (see audit.c). `mcpd audit verify` recomputes the chain and names
 * the first row that does not match.
 */
#ifndef MCPD_AUDIT_H
#define MCPD_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct mcpd_audit;

enum mcpd_audit_kind {
    MCPD_AUDIT_CALL = 0, /* a tools/call (or prompts/get, resources/read) that was forwarded */
    MCPD_AUDIT_DENY,     /* refused by policy before forwarding */
    MCPD_AUDIT_LIST,     /* a list was filtered: summary in `reason` ("12 of 40 tools") */
    MCPD_AUDIT_AUTH,     /* authentication failure (bot unknown, bad key) */
};

/* One record. Strings are copied by mcpd_audit_submit; any may be NULL. */
struct mcpd_audit_record {
    enum mcpd_audit_kind kind;
    int64_t time_ms;         /* wall clock, ms since the epoch (filled in when 0) */
    const char *bot;
    const char *session;     /* session id */
    const char *transport;   /* "stdio", "http", "sse" */
    const char *resource;    /* upstream resource name */
    const char *tool;        /* tool (or prompt, or uri) */
    const char *location;    /* "local", "remote:<name>", "plugin:<name>", "agent:<name>" */
    const char *decision;    /* "allow" | "deny" */
    const char *reason;      /* deny reason, or list summary */
    const char *args_json;   /* canonical JSON of the arguments as checked (redacted and capped here) */
    size_t args_len;
    const char *status;      /* "ok", "error", "timeout", "cancelled", "denied", ... */
    int64_t latency_us;
};

/* Called on the loop thread when the record's batch is durable (status 0) or failed. */
typedef void (*mcpd_audit_cb)(int status, void *data);

struct mcpd_audit_options {
    const char *path;            /* sqlite file */
    size_t max_args_bytes;       /* stored argument text cap (default 64 KiB) */
    unsigned queue_cap;          /* records waiting at most (default 65536) */
    int64_t retain_ms;           /* delete rows older than this (0: keep) */
    int64_t retain_rows;         /* keep at most this many rows (0: no cap) */
};

/*
 * Opens (creating if needed) the database, checks the schema, starts the
 * writer thread. Returns 0, or a negative code with a one-line reason in err.
 */
int mcpd_audit_open(struct mcpd_audit **out, uv_loop_t *loop, const struct mcpd_audit_options *o,
                    char *err, size_t errcap);

/*
 * Queues a record. `cb` runs later on the loop thread (never synchronously).
 * Returns 0, or MCPD_EBUSY (queue full) / MCPD_EUNAVAIL (the writer failed
 * and the audit is refusing): then cb is not called and the caller must
 * refuse the call.
 */
int mcpd_audit_submit(struct mcpd_audit *a, const struct mcpd_audit_record *r, mcpd_audit_cb cb,
                      void *data);

/*
 * Flushes everything queued, stops the thread, closes the database, and
 * calls done (on the loop thread) when finished. Callbacks of queued records
 * still run first.
 */
void mcpd_audit_close(struct mcpd_audit *a, void (*done)(void *data), void *data);

/* ---- offline use (CLI), synchronous: never call these on the loop ------------- */

/*
 * Verifies the chain. Returns 0 when intact (*rows = rows checked), or 1
 * with *bad_row the id of the first row that does not verify, or a negative
 * code (err filled) when the file cannot be read.
 */
int mcpd_audit_verify(const char *path, int64_t *rows, int64_t *bad_row, char *err, size_t errcap);

struct mcpd_audit_query {
    int64_t since_ms;      /* 0: all */
    const char *bot;       /* NULL: any */
    const char *tool;
    const char *location;
    bool json;             /* JSON lines instead of a table */
    int64_t limit;         /* 0: all */
};

/* Prints matching rows to `out` (control characters escaped). Returns 0 or a negative code. */
int mcpd_audit_print(const char *path, const struct mcpd_audit_query *q, void *out_file, char *err,
                     size_t errcap);

#endif
