/*
 * env.c - child environments without mcpd's secrets (see env.h).
 */
#include "env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

extern char **environ;

static const char *const secret_names[] = { "MCPD_MASTER_KEY", "MCPD_AGENT_KEY" };

static bool names(const char *entry, const char *name)
{
    size_t l = strlen(name);
    return strncmp(entry, name, l) == 0 && entry[l] == '=';
}

bool mcpd_env_is_secret(const char *entry)
{
    for (size_t i = 0; i < sizeof(secret_names) / sizeof(secret_names[0]); i++)
        if (names(entry, secret_names[i]))
            return true;
    return false;
}

char **mcpd_env_child(const struct mcpd_kv *set, size_t n)
{
    size_t have = 0, k = 0;
    char **env;

    while (environ[have])
        have++;
    if ((env = calloc(have + n + 1, sizeof(*env))) == NULL)
        return NULL;
    for (size_t i = 0; i < have; i++) {
        bool skip = mcpd_env_is_secret(environ[i]);
        for (size_t j = 0; j < n && !skip; j++)
            skip = names(environ[i], set[j].key);
        if (!skip && (env[k++] = strdup(environ[i])) == NULL)
            goto oom;
    }
    for (size_t j = 0; j < n; j++) {
        size_t l = strlen(set[j].key) + strlen(set[j].value) + 2;
        if ((env[k] = malloc(l)) == NULL)
            goto oom;
        snprintf(env[k++], l, "%s=%s", set[j].key, set[j].value);
    }
    return env;
oom:
    mcpd_env_free(env);
    return NULL;
}

void mcpd_env_free(char **env)
{
    if (env == NULL)
        return;
    for (size_t i = 0; env[i]; i++)
        free(env[i]);
    free(env);
}
