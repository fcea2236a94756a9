/* factory.c - picks the adapter for a configured server. */
#include "adapters.h"

int mcpd_upstream_new_for(struct mcpd_upstream **out, struct mcpd_daemon *d,
                          const struct mcpd_server_config *cfg)
{
    if (cfg->plugin && cfg->command == NULL)
        return mcpd_plugin_upstream_new(out, d, cfg); /* exec plugins have a command: stdio */
    if (cfg->url)
        return mcpd_remote_upstream_new(out, d, cfg);
    return mcpd_stdio_upstream_new(out, d, cfg);
}
