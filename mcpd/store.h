/*
 * store.h - mcpd's state in sqlite (the same file as the audit, its own
 * tables): bot keys today; agents and credentials later.
 *
 * Keys are random, shown once, and stored only as SHA-256 hashes. The CLI
 * (`mcpd bots ...`) writes the store synchronously; a running mcpd keeps the
 * bot table in memory and re-reads it when the store's generation changes
 * (polled from a thread, so the loop never blocks on sqlite): a rotated,
 * disabled or deleted key stops working within about a second, and that
 * bot's sessions are closed.
 */
#ifndef MCPD_STORE_H
#define MCPD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define MCPD_BOT_KEY_PREFIX "mk_"
#define MCPD_BOT_KEY_LEN    (3 + 48) /* "mk_" + 48 hex digits (192 random bits) */

struct mcpd_store;

struct mcpd_bot_row {
    char name[64];
    unsigned char key_hash[32]; /* SHA-256 of the whole key string */
    char key_hint[16];          /* "mk_ab1…cd34": first 6 + "…" (UTF-8) + last 4, for listing */
    bool disabled;              /* also set for a row whose stored hash is damaged */
    int64_t created_ms, rotated_ms; /* rotated_ms: 0 until the first rotation */
};

/*
 * Errors: the functions below return 0 or a negative code and fill err
 * with one line. Mistakes of the caller are MCPD_ECONFIG with these exact
 * messages (the name shown with non-printable characters as '?'):
 *   invalid bot name "<name>": must match ^[a-z0-9][a-z0-9-]{0,31}$
 *   bot "<name>" already exists
 *   no bot named "<name>"
 * Storage failures are UV_EBUSY (locked past the 5 s busy timeout),
 * UV_EROFS, UV_ENOSPC, UV_EIO or MCPD_ENOMEM, with sqlite's message.
 * Every change bumps the generation in its own transaction.
 */

/*
 * Opens or creates the store (file mode 0600, WAL, synchronous=FULL;
 * schema created, version checked). Synchronous: CLI and start-up only.
 * One handle per thread.
 */
int mcpd_store_open(struct mcpd_store **out, const char *path, char *err, size_t errcap);
/* NULL is a no-op. */
void mcpd_store_close(struct mcpd_store *st);

/*
 * Creates a bot with a new key; writes the key (NUL-terminated,
 * MCPD_BOT_KEY_LEN chars) to key_out. Fails (MCPD_ECONFIG, err says why)
 * when the name is taken or invalid (^[a-z0-9][a-z0-9-]{0,31}$).
 */
int mcpd_store_bot_create(struct mcpd_store *st, const char *name, char *key_out, char *err,
                          size_t errcap);
/* New key for an existing bot; the old one stops working. */
int mcpd_store_bot_rotate(struct mcpd_store *st, const char *name, char *key_out, char *err,
                          size_t errcap);
int mcpd_store_bot_set_disabled(struct mcpd_store *st, const char *name, bool disabled, char *err,
                                size_t errcap);
int mcpd_store_bot_delete(struct mcpd_store *st, const char *name, char *err, size_t errcap);
/* Fills rows (up to cap) in name order; returns the number of bots or a negative code. */
int mcpd_store_bot_list(struct mcpd_store *st, struct mcpd_bot_row *rows, size_t cap, char *err,
                        size_t errcap);
/* A counter bumped by every change, to notice changes cheaply; a negative code on failure. */
int64_t mcpd_store_generation(struct mcpd_store *st);

/*
 * SHA-256 of a presented key (borrowed, len bytes, any bytes), for
 * comparison against key_hash with CRYPTO_memcmp. Should OpenSSL fail to
 * allocate, out is all zeros, which matches no stored hash.
 */
void mcpd_store_key_hash(unsigned char out[32], const char *key, size_t len);
/* Whether key hashes to key_hash; the digests are compared with CRYPTO_memcmp. */
bool mcpd_store_key_equal(const unsigned char key_hash[32], const char *key, size_t len);
/*
 * The row (borrowed from rows) whose key is `key`, or NULL. The key is
 * hashed once and compared with every row's hash in constant time, so
 * neither the key's length or prefix nor the matching row's position
 * shows in the timing. Disabled rows are returned too: the caller refuses
 * them, and can say why.
 */
const struct mcpd_bot_row *mcpd_store_bot_find(const struct mcpd_bot_row *rows, size_t n,
                                               const char *key, size_t len);

/*
 * Runtime view for the daemon: a watcher thread (its own connection)
 * re-reads the bot table when the generation changes (polled every
 * `poll_ms`, 0: 500) and hands the new table to `on_change` on the loop
 * thread (the callee takes ownership of rows, an array of n rows in name
 * order, to free with free(); NULL when n is 0). Tables are read with
 * their generation from one snapshot; a newer table replaces one not yet
 * delivered. The first table is delivered before mcpd_store_watch returns
 * (synchronously, at start-up, after *out is set). A read error keeps the
 * last table and is logged (WARN) once per streak. Returns 0 or a
 * negative code (err filled, nothing delivered, *out NULL).
 *
 * mcpd_store_watch_close stops the thread; on_change is not called after
 * it, and done (may be NULL) runs on the loop once the thread is joined
 * and the handle closed, when the watch is freed. A second close is
 * ignored.
 */
struct mcpd_store_watch;
int mcpd_store_watch(struct mcpd_store_watch **out, uv_loop_t *loop, const char *path,
                     unsigned poll_ms,
                     void (*on_change)(struct mcpd_bot_row *rows, size_t n, void *data), void *data,
                     char *err, size_t errcap);
void mcpd_store_watch_close(struct mcpd_store_watch *w, void (*done)(void *data), void *data);

/* ---- agents (store_agents.c) -----------------------------------------------------------------
 *
 * Connected agents: a key "ak_" + 48 hex digits (shown once, stored as
 * SHA-256), a status the running daemon records (online, last online), and
 * the resources (<agent>-<group>) its tool groups created, kept while the
 * agent is offline. Errors as for bots, with "agent" in the messages:
 *   invalid agent name "<name>": must match ^[a-z0-9][a-z0-9-]{0,31}$
 *   agent "<name>" already exists
 *   no agent named "<name>"
 * create/rotate/enable/disable/delete bump the generation (the daemon's
 * watcher reacts); status and resource writes do not.
 */
#define MCPD_AGENT_KEY_PREFIX "ak_"
#define MCPD_AGENT_KEY_LEN    (3 + 48) /* "ak_" + 48 hex digits (192 random bits) */

struct mcpd_agent_row {
    char name[64];
    unsigned char key_hash[32];
    char key_hint[24]; /* "ak_1a2b3…cd34": first 8 + "…" + last 4 */
    bool disabled;     /* also set for a row whose stored hash is damaged */
    bool online;       /* as last recorded by a running daemon */
    int64_t created_ms, rotated_ms, last_online_ms; /* 0: never */
    unsigned nresources;
};

struct mcpd_agent_resource_row {
    char agent[64];
    char group[64];
    char name[80]; /* <agent>-<group> */
    int64_t created_ms;
};

int mcpd_store_agent_create(struct mcpd_store *st, const char *name, char *key_out, char *err,
                            size_t errcap);
int mcpd_store_agent_rotate(struct mcpd_store *st, const char *name, char *key_out, char *err,
                            size_t errcap);
int mcpd_store_agent_set_disabled(struct mcpd_store *st, const char *name, bool disabled, char *err,
                                  size_t errcap);
/* Deletes the agent (its key stops working); its resources stay, disconnected. */
int mcpd_store_agent_delete(struct mcpd_store *st, const char *name, char *err, size_t errcap);
/* All agents in name order, into a new array (*rows, free()); 0 or a negative code. */
int mcpd_store_agent_list(struct mcpd_store *st, struct mcpd_agent_row **rows, size_t *n, char *err,
                          size_t errcap);
/* Records online (last_online_ms = now) or offline; a missing agent is not an error. */
int mcpd_store_agent_set_online(struct mcpd_store *st, const char *name, bool online, char *err,
                                size_t errcap);
/* Every agent offline (a daemon starting after a crash). */
int mcpd_store_agents_all_offline(struct mcpd_store *st, char *err, size_t errcap);
/* Persists a resource (INSERT OR IGNORE on its name). */
int mcpd_store_agent_add_resource(struct mcpd_store *st, const char *agent, const char *group,
                                  const char *resource, char *err, size_t errcap);
/* Every agent resource, by name, into a new array (*rows, free()). */
int mcpd_store_agent_resources(struct mcpd_store *st, struct mcpd_agent_resource_row **rows,
                               size_t *n, char *err, size_t errcap);
/* The row whose key is `key` (constant time over all rows, as mcpd_store_bot_find), or NULL. */
const struct mcpd_agent_row *mcpd_store_agent_find(const struct mcpd_agent_row *rows, size_t n,
                                                   const char *key, size_t len);

/*
 * A watcher for the agent table, exactly like mcpd_store_watch for bots:
 * on_change gets every new table (owned, free()), the first one
 * synchronously; close with mcpd_store_watch_close.
 */
int mcpd_store_watch_agents(struct mcpd_store_watch **out, uv_loop_t *loop, const char *path,
                            unsigned poll_ms,
                            void (*on_change)(struct mcpd_agent_row *rows, size_t n, void *data),
                            void *data, char *err, size_t errcap);

#endif
