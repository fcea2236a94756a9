/*
 * authz.h - who a client is (bots and their keys) and what it may do (the
 * binding policy), and the audit of every decision and call: the core's
 * single door to policy/, mcpd/store and mcpd/audit.
 *
 * Without `bots:` in the configuration there is no authentication and no
 * policy: every client sees everything (the foundation's behaviour), and
 * the audit runs only if `audit.enabled` says so.
 */
#ifndef MCPD_AUTHZ_H
#define MCPD_AUTHZ_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "audit.h"

struct mcpd_daemon;
struct mcpd_config;
struct mcpd_authz;
struct mcpd_upstream;
struct mcpd_policy_decision;

/*
 * Builds the policy from the configuration, opens the store (bot keys) and
 * the audit. Returns 0 or a negative code with a one-line reason in err.
 */
int mcpd_authz_new(struct mcpd_authz **out, struct mcpd_daemon *d, char *err, size_t errcap);
/* Whether cfg's policy builds (what `mcpd config check` adds to loading the file). */
int mcpd_authz_check_config(const struct mcpd_config *cfg, char *err, size_t errcap);
/*
 * Swaps in the policy of cfg (bots, roles and their bindings; the servers
 * must be the running ones). Sessions of bots cfg no longer has are closed,
 * and the cache of accepted keys is emptied. Fails (nothing changed, err
 * filled) when the policy does not build, or when bots would appear or
 * vanish altogether (authentication on or off takes a restart).
 */
int mcpd_authz_reload(struct mcpd_authz *az, const struct mcpd_config *cfg, char *err,
                      size_t errcap);
/* Flushes the audit and stops the store watcher; `done` runs when finished. */
void mcpd_authz_close(struct mcpd_authz *az, void (*done)(void *data), void *data);

/* True when bots are configured: clients must be a bot, the policy applies. */
bool mcpd_authz_active(const struct mcpd_authz *az);
/* True when the audit is on. */
bool mcpd_authz_auditing(const struct mcpd_authz *az);

/*
 * The bot presenting `key` (a bearer token), or NULL. *key_hash receives
 * the key's SHA-256 (to tie the session to that very key).
 */
const char *mcpd_authz_bot_for_key(struct mcpd_authz *az, const char *key,
                                   unsigned char key_hash[32]);
/* True while that key is still the bot's current, enabled key. */
bool mcpd_authz_key_valid(struct mcpd_authz *az, const char *bot, const unsigned char key_hash[32]);
/* True when `bot` is configured (stdio clients name their bot). */
bool mcpd_authz_has_bot(const struct mcpd_authz *az, const char *bot);

/* Visibility of catalog items for a bot (always true when not active). */
bool mcpd_authz_tool_visible(const struct mcpd_authz *az, const char *bot, const char *resource,
                             const char *tool);
bool mcpd_authz_prompt_visible(const struct mcpd_authz *az, const char *bot, const char *resource,
                               const char *prompt);
bool mcpd_authz_uri_visible(const struct mcpd_authz *az, const char *bot, const char *resource,
                            const char *uri);

/*
 * Checks a tools/call for `bot` on `up` (arguments borrowed, canonicalised
 * in place). Returns 0 when allowed; -1 when denied, with d filled.
 */
int mcpd_authz_check_call(const struct mcpd_authz *az, const char *bot,
                          const struct mcpd_upstream *up, const char *tool, json_t *args,
                          struct mcpd_policy_decision *d);

/*
 * The same for a catalog entry: an agent's tool is checked against its
 * resource (<agent>-<group>) with the dimensions the agent declared for it
 * (_meta["io.mcpd/dimensions"]); other entries as mcpd_authz_check_call.
 */
struct mcpd_catalog_entry;
int mcpd_authz_check_entry(const struct mcpd_authz *az, const char *bot,
                           const struct mcpd_catalog_entry *e, json_t *args,
                           struct mcpd_policy_decision *d);

/*
 * mcpd_authz_check_entry() that also tells whether the tool is visible to
 * the bot (*visible), from the same walk of its bindings when it can: a
 * tools/call walks them once instead of twice.
 */
int mcpd_authz_check_tool(const struct mcpd_authz *az, const char *bot,
                          const struct mcpd_catalog_entry *e, json_t *args,
                          struct mcpd_policy_decision *d, bool *visible);

/*
 * Queues an audit record; `cb` runs on the loop when it is durable (status
 * 0) or failed. Returns 0, or a negative code (then cb is not called and
 * the call must be refused). With the audit off: returns MCPD_ECLOSED and
 * does nothing (callers go on without waiting).
 */
int mcpd_authz_audit(struct mcpd_authz *az, const struct mcpd_audit_record *r, mcpd_audit_cb cb,
                     void *data);
/* Records the outcome of the call row call_id (mcpd_audit_outcome); nothing waits for it. */
int mcpd_authz_audit_outcome(struct mcpd_authz *az, int64_t call_id, const char *status,
                             int64_t latency_us);

#endif
