/*
 * admin_credentials.h - `mcpd credentials ...`: the CLI side of the
 * credential store (synchronous; no event loop). Output on stdout, errors
 * one line on stderr; each returns the process exit code.
 *
 *   add NAME --kind api_key|bearer       the secret from stdin (a no-echo prompt on a tty)
 *   add NAME --kind oauth2 --provider P  an oauth2 credential, not yet authorized
 *   list [--json]                        name, kind, provider, status, expiry; never a secret
 *   show NAME [--json]                   the same and the last error, a hint of the last 4
 *                                        characters of a static secret of 16 or more
 *   delete NAME
 *   authorize NAME [--device | --client-credentials]
 *   refresh NAME
 */
#ifndef MCPD_ADMIN_CREDENTIALS_H
#define MCPD_ADMIN_CREDENTIALS_H

#include <stdbool.h>

#include "config.h"

struct mcpd_admin_cred_args {
    const char *verb;
    const char *name;
    const char *kind;     /* add */
    const char *provider; /* add --kind oauth2 */
    bool device;          /* authorize --device */
    bool client_credentials;
    bool json;
};

int mcpd_admin_credentials(const struct mcpd_config *cfg, const struct mcpd_admin_cred_args *a);

/* The master key file of a configuration: master_key_file: or <store>.key; new string. */
char *mcpd_admin_key_file(const struct mcpd_config *cfg, const char *store_path);

#endif
