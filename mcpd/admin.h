/*
 * admin.h - the administrative commands of the mcpd binary: bots (keys in
 * the store), audit (query, verify), and the catalog and policy views that
 * need a running catalog (called from main.c once upstreams have started).
 * Output goes to stdout; errors are one line on stderr. Each returns the
 * process exit code.
 */
#ifndef MCPD_ADMIN_H
#define MCPD_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "config.h"

struct mcpd_daemon;

/* mcpd bots create|list|rotate|disable|enable|delete [NAME] */
int mcpd_admin_bots(const struct mcpd_config *cfg, const char *verb, const char *name);
/* mcpd agents create|list|rotate|disable|enable|delete [NAME] [--json] */
int mcpd_admin_agents(const struct mcpd_config *cfg, const char *verb, const char *name,
                      bool as_json);
/* mcpd audit [query] / mcpd audit verify */
int mcpd_admin_audit(const struct mcpd_config *cfg, const char *verb,
                     const struct mcpd_audit_query *q);
/* "90m", "12h", "7d" (before now) or "2026-11-22[THH:MM[:SS][Z]]"; NULL: 0. Returns 0 or -1. */
int mcpd_admin_parse_since(const char *s, int64_t *ms);
int mcpd_admin_parse_limit(const char *s, int64_t *limit);

/* mcpd catalog [--bot B] [--json] */
int mcpd_admin_print_catalog(struct mcpd_daemon *d, const char *bot, bool json);
/* mcpd policy explain --bot B --tool T [--args JSON]: 0 allow, 1 deny or unknown */
int mcpd_admin_explain(struct mcpd_daemon *d, const char *bot, const char *tool,
                       const char *args_json);

/* ms since the epoch as "YYYY-MM-DDTHH:MM:SSZ" (UTC) into buf; "-" for 0 or less. */
void mcpd_admin_time_text(char *buf, size_t cap, int64_t ms);

/* The store file of a configuration (store: or mcpd.db beside the file); new string. */
char *mcpd_admin_store_path(const struct mcpd_config *cfg);

#endif
