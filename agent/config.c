/*
 * config.c - reads agent.yaml into struct mcpd_agent_config with the
 * daemon's YAML helpers (mcpd/config_int.h): the same ${VAR} expansion,
 * sizes, durations and "[file:line:col]" diagnostics, its own key tables.
 * Validation that needs the file system (roots resolved with realpath) and
 * the command patterns (compiled by the policy engine) happens here too, so
 * a bad file fails at start, not at the first call.
 */
#include "agent/config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/shell.h"
#include "mcpd/buf.h"
#include "mcpd/config_int.h"
#include "mcpd/error.h"
#include "mcpd/limits.h"
#include "mcpd/log.h"

#define AGENT_MAX_SERVERS 64

bool mcpd_agent_group_is_valid(const char *s)
{
    size_t n = 0;
    if (s == NULL || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return false;
    for (; s[n]; n++) {
        char ch = s[n];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
            return false;
    }
    return n <= 32;
}

/* server_url: ws:// or wss:// with a host. */
static int f_url(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f, void *base)
{
    char **slot = AT(base, f->off, char *);
    int rc;

    if ((rc = mcpd__cfg_f_string(c, v, path, f, base)) != 0)
        return rc;
    if ((strncmp(*slot, "ws://", 5) != 0 || (*slot)[5] == '\0') &&
        (strncmp(*slot, "wss://", 6) != 0 || (*slot)[6] == '\0'))
        return mcpd__cfg_fail(c, v, "key '%s': expected a ws:// or wss:// URL", path);
    for (const char *p = *slot; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return mcpd__cfg_fail(c, v, "key '%s': the URL must not contain spaces or controls",
                                  path);
    return 0;
}

/* agent_key: ak_ + 48 lowercase hex. The value is never echoed. */
static int f_key(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f, void *base)
{
    char *k;
    int rc;

    if ((rc = mcpd__cfg_f_string(c, v, path, f, base)) != 0)
        return rc;
    k = *AT(base, f->off, char *);
    if (strncmp(k, "ak_", 3) != 0 || strlen(k) != 51 || strspn(k + 3, "0123456789abcdef") != 48)
        return mcpd__cfg_fail(c, v, "key '%s': expected ak_ followed by 48 hex digits", path);
    return 0;
}

static int f_level(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                   void *base)
{
    char *s;
    int rc, lvl;

    if ((rc = mcpd__cfg_scalar(c, v, path, &s)) != 0)
        return rc;
    if ((lvl = mcpd_log_parse_level(s)) < 0)
        rc = mcpd__cfg_fail(c, v, "key '%s': expected error, warn, info, debug or trace", path);
    else
        *AT(base, f->off, int) = lvl;
    free(s);
    return rc;
}

/* Any name without '=' is passed to the server's environment. */
static int check_env_name(struct ctx *c, int line, int col, const char *path, const char *name)
{
    if (name[0] == '\0' || strchr(name, '=') != NULL)
        return mcpd__cfg_failat(c, line, col, "key '%s': invalid variable name", path);
    return 0;
}

static int f_env(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f, void *base)
{
    struct mcpd_agent_server *s = base;

    (void)f;
    return mcpd__cfg_kvs(c, v, path, &s->env, &s->nenv, check_env_name, mcpd__cfg_no_check);
}

/* dimensions: { <dimension>: [<argument>, ...] } -> io.mcpd/dimensions of every tool */
static int f_dims(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                  void *base)
{
    struct mcpd_agent_server *s = base;
    char sub[KEY_PATH_MAX], sub2[KEY_PATH_MAX];
    yaml_node_pair_t *p;
    yaml_node_t *k, *val, *item;
    json_t *args;
    char *str;
    int rc;

    if ((rc = mcpd__cfg_check_mapping(c, v, path, 16)) != 0)
        return rc;
    if ((s->dimensions = json_object()) == NULL)
        return mcpd__cfg_oom(c);
    for (p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        const char *name = mcpd__cfg_key_of(c, p, &k);
        if (!mcpd_agent_group_is_valid(name))
            return mcpd__cfg_fail(c, k, "key '%s': invalid dimension name '%.64s'", path, name);
        mcpd__cfg_join(sub, sizeof(sub), path, name);
        if ((rc = mcpd__cfg_take_node(c, p->value, &val)) != 0)
            return rc;
        if (val->type != YAML_SEQUENCE_NODE)
            return mcpd__cfg_fail(c, val, "key '%s': expected a list of argument names", sub);
        args = json_array();
        json_object_set_new(s->dimensions, name, args);
        for (yaml_node_item_t *it = val->data.sequence.items.start;
             it < val->data.sequence.items.top; it++) {
            mcpd__cfg_join_index(sub2, sizeof(sub2), sub,
                                 (size_t)(it - val->data.sequence.items.start));
            if ((rc = mcpd__cfg_take_node(c, *it, &item)) != 0 ||
                (rc = mcpd__cfg_scalar(c, item, sub2, &str)) != 0)
                return rc;
            json_array_append_new(args, json_string(str));
            free(str);
        }
    }
    return 0;
}

static const struct field server_fields[] = {
    { .key = "command",
      .fn = mcpd__cfg_f_string,
      .off = offsetof(struct mcpd_agent_server, command) },
    { .key = "args",
      .fn = mcpd__cfg_f_args,
      .off = offsetof(struct mcpd_agent_server, args),
      .off2 = offsetof(struct mcpd_agent_server, nargs) },
    { .key = "env", .fn = f_env },
    { .key = "cwd", .fn = mcpd__cfg_f_string, .off = offsetof(struct mcpd_agent_server, cwd) },
    { .key = "dimensions", .fn = f_dims },
    { .key = NULL },
};

static int f_servers(struct ctx *c, yaml_node_t *v, const char *path, const struct field *f,
                     void *base)
{
    struct mcpd_agent_config *cfg = base;
    char sub[KEY_PATH_MAX];
    yaml_node_pair_t *p;
    yaml_node_t *k, *val;
    size_t n;
    int rc;

    if ((rc = mcpd__cfg_check_mapping(c, v, path, AGENT_MAX_SERVERS)) != 0)
        return rc;
    n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    if ((cfg->servers = calloc(n + 1, sizeof(*cfg->servers))) == NULL)
        return mcpd__cfg_oom(c);
    for (p = v->data.mapping.pairs.start; p < v->data.mapping.pairs.top; p++) {
        const char *name = mcpd__cfg_key_of(c, p, &k);
        struct mcpd_agent_server *s = &cfg->servers[cfg->nservers];
        if (!mcpd_agent_group_is_valid(name) || strcmp(name, "builtin") == 0)
            return mcpd__cfg_fail(c, k,
                                  "server name '%.64s' must match ^[a-z0-9][a-z0-9-]{0,31}$ and "
                                  "not be 'builtin' (it names the tool group)",
                                  name);
        if ((s->name = strdup(name)) == NULL)
            return mcpd__cfg_oom(c);
        cfg->nservers++;
        mcpd__cfg_join(sub, sizeof(sub), path, name);
        if ((rc = mcpd__cfg_take_node(c, p->value, &val)) != 0)
            return rc;
        if (!mcpd__cfg_is_null(val) &&
            (rc = mcpd__cfg_walk_mapping(c, val, sub, server_fields, s)) != 0)
            return rc;
        if (s->command == NULL)
            return mcpd__cfg_fail(c, k, "key '%s': missing required key 'command'", sub);
    }
    return 0;
}

#define OFF(m) offsetof(struct mcpd_agent_config, m)

static const struct field tls_fields[] = {
    { .key = "ca_file", .fn = mcpd__cfg_f_string, .off = OFF(tls_ca_file) },
    { .key = "verify", .fn = mcpd__cfg_f_bool, .off = OFF(tls_verify) },
    { .key = NULL },
};

static const struct field reconnect_fields[] = {
    { .key = "min", .fn = mcpd__cfg_f_duration, .off = OFF(reconnect_min_ms), .max = 3600000 },
    { .key = "max", .fn = mcpd__cfg_f_duration, .off = OFF(reconnect_max_ms), .max = 3600000 },
    { .key = NULL },
};

static const struct field heartbeat_fields[] = {
    { .key = "interval", .fn = mcpd__cfg_f_duration, .off = OFF(ping_interval_ms), .max = 3600000 },
    { .key = "timeout", .fn = mcpd__cfg_f_duration, .off = OFF(ping_timeout_ms), .max = 3600000 },
    { .key = NULL },
};

static const struct field sysinfo_fields[] = {
    { .key = "enabled", .fn = mcpd__cfg_f_bool, .off = OFF(sysinfo_enabled) },
    { .key = NULL },
};

static const struct field fileops_fields[] = {
    { .key = "enabled", .fn = mcpd__cfg_f_bool, .off = OFF(fileops_enabled) },
    { .key = "roots", .fn = mcpd__cfg_f_args, .off = OFF(roots), .off2 = OFF(nroots) },
    { .key = "max_bytes",
      .fn = mcpd__cfg_f_size,
      .off = OFF(fileops_max_bytes),
      .min = 1,
      .max = 256u * 1024 * 1024 },
    { .key = NULL },
};

static const struct field shell_fields[] = {
    { .key = "enabled", .fn = mcpd__cfg_f_bool, .off = OFF(shell_enabled) },
    { .key = "commands", .fn = mcpd__cfg_f_args, .off = OFF(commands), .off2 = OFF(ncommands) },
    { .key = "timeout", .fn = mcpd__cfg_f_duration, .off = OFF(shell_timeout_ms), .max = 3600000 },
    { .key = "max_output",
      .fn = mcpd__cfg_f_size,
      .off = OFF(shell_max_output),
      .min = 1,
      .max = 64u * 1024 * 1024 },
    { .key = NULL },
};

static const struct field builtin_fields[] = {
    { .key = "system_info", .fn = mcpd__cfg_f_section, .sub = sysinfo_fields },
    { .key = "file_ops", .fn = mcpd__cfg_f_section, .sub = fileops_fields },
    { .key = "shell_exec", .fn = mcpd__cfg_f_section, .sub = shell_fields },
    { .key = NULL },
};

static const struct field top_fields[] = {
    { .key = "server_url", .fn = f_url, .off = OFF(server_url) },
    { .key = "agent_key", .fn = f_key, .off = OFF(agent_key) },
    { .key = "name", .fn = mcpd__cfg_f_string, .off = OFF(name) },
    { .key = "log_level", .fn = f_level, .off = OFF(log_level) },
    { .key = "call_timeout",
      .fn = mcpd__cfg_f_duration,
      .off = OFF(call_timeout_ms),
      .max = MCPD_MAX_CALL_TIMEOUT_MS },
    { .key = "tls", .fn = mcpd__cfg_f_section, .sub = tls_fields },
    { .key = "reconnect", .fn = mcpd__cfg_f_section, .sub = reconnect_fields },
    { .key = "heartbeat", .fn = mcpd__cfg_f_section, .sub = heartbeat_fields },
    { .key = "builtins", .fn = mcpd__cfg_f_section, .sub = builtin_fields },
    { .key = "servers", .fn = f_servers },
    { .key = NULL },
};

/* Roots must exist; they are replaced by their realpath. */
static int check_roots(struct ctx *c, struct mcpd_agent_config *cfg)
{
    char real[PATH_MAX];

    for (size_t i = 0; i < cfg->nroots; i++) {
        if (cfg->roots[i][0] != '/')
            return mcpd__cfg_failat(c, 0, 0,
                                    "builtins.file_ops.roots[%zu]: '%.200s' is not absolute", i,
                                    cfg->roots[i]);
        if (realpath(cfg->roots[i], real) == NULL)
            return mcpd__cfg_failat(c, 0, 0, "builtins.file_ops.roots[%zu]: '%.200s': %s", i,
                                    cfg->roots[i], strerror(errno));
        free(cfg->roots[i]);
        if ((cfg->roots[i] = strdup(real)) == NULL)
            return mcpd__cfg_oom(c);
    }
    if (cfg->fileops_enabled && cfg->nroots == 0)
        return mcpd__cfg_failat(c, 0, 0, "builtins.file_ops: enabled without any roots");
    return 0;
}

static int finish(struct ctx *c, struct mcpd_agent_config *cfg)
{
    struct mcpd_agent_shell *sh = NULL;
    char why[256];
    int rc;

    if (cfg->server_url == NULL)
        return mcpd__cfg_failat(c, 0, 0, "missing required key 'server_url'");
    if (cfg->agent_key == NULL)
        return mcpd__cfg_failat(c, 0, 0, "missing required key 'agent_key'");
    if (cfg->reconnect_min_ms > cfg->reconnect_max_ms)
        return mcpd__cfg_failat(c, 0, 0, "reconnect: min is larger than max");
    if ((rc = check_roots(c, cfg)) != 0)
        return rc;
    /* a relative path is taken from the configuration file's folder (as mcpd's listen.tls) */
    if ((rc = mcpd__cfg_relative(c, &cfg->tls_ca_file)) != 0)
        return rc;
    if (cfg->shell_enabled && cfg->ncommands == 0)
        return mcpd__cfg_failat(c, 0, 0, "builtins.shell_exec: enabled without any commands");
    /* Compile the patterns once here so a bad one fails at start. */
    rc = mcpd_agent_shell_new(&sh, (const char *const *)cfg->commands, cfg->ncommands, why,
                              sizeof(why));
    mcpd_agent_shell_free(sh);
    if (rc == MCPD_ENOMEM)
        return mcpd__cfg_oom(c);
    if (rc != 0)
        return mcpd__cfg_failat(c, 0, 0, "builtins.shell_exec.commands: %s", why);
    return 0;
}

int mcpd_agent_config_parse(struct mcpd_agent_config **out, const char *name, const char *data,
                            size_t len, struct mcpd_diag *diag)
{
    struct mcpd_diag scratch;
    struct mcpd_agent_config *cfg;
    struct ctx c;
    int rc;

    *out = NULL;
    mcpd__cfg_ctx_init(&c, name ? name : "<agent config>", diag, &scratch);
    if (len > (size_t)MCPD_MAX_CONFIG_FILE)
        return mcpd__cfg_failat(&c, 0, 0, "file is larger than %u bytes", MCPD_MAX_CONFIG_FILE);
    if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
        return mcpd__cfg_oom(&c);
    cfg->tls_verify = true;
    cfg->reconnect_min_ms = MCPD_AGENT_RECONNECT_MIN;
    cfg->reconnect_max_ms = MCPD_AGENT_RECONNECT_MAX;
    cfg->ping_interval_ms = MCPD_AGENT_PING_MS;
    cfg->ping_timeout_ms = MCPD_AGENT_PONG_TIMEOUT_MS;
    cfg->call_timeout_ms = MCPD_CALL_TIMEOUT_MS;
    cfg->sysinfo_enabled = true;
    cfg->fileops_max_bytes = MCPD_AGENT_MAX_FILE_BYTES;
    cfg->shell_timeout_ms = MCPD_AGENT_SHELL_TIMEOUT;
    cfg->shell_max_output = MCPD_AGENT_MAX_SHELL_OUT;
    cfg->log_level = -1;
    for (size_t i = 0; i < len && data[i] != '\0'; i++)
        if (strchr(" \t\r\n", data[i]) == NULL)
            goto parse;
    rc = mcpd__cfg_failat(&c, 0, 0, "the configuration is empty");
    goto out;
parse:
    rc = mcpd__cfg_parse_yaml(&c, data, len, top_fields, cfg);
    if (rc == 0)
        rc = finish(&c, cfg);
out:
    if (rc != 0) {
        mcpd_agent_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return 0;
}

int mcpd_agent_config_load(struct mcpd_agent_config **out, const char *path, struct mcpd_diag *diag)
{
    struct mcpd_diag scratch;
    struct mcpd_buf b;
    struct stat st;
    struct ctx c;
    int fd, rc;

    *out = NULL;
    mcpd__cfg_ctx_init(&c, path, diag, &scratch);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return mcpd__cfg_failat(&c, 0, 0, "cannot open: %s", strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return mcpd__cfg_failat(&c, 0, 0, "not a regular file");
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        close(fd);
        return mcpd__cfg_failat(&c, 0, 0,
                                "refusing a configuration that group or other may access (mode "
                                "%04o); it holds the agent key: run chmod 600 %s",
                                (unsigned)(st.st_mode & 07777), path);
    }
    rc = mcpd__cfg_read_fd(&c, fd, &b);
    close(fd);
    if (rc == 0)
        rc = mcpd_agent_config_parse(out, path, b.p ? b.p : "", b.len, c.diag);
    mcpd_buf_dispose(&b);
    return rc;
}

void mcpd_agent_config_free(struct mcpd_agent_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->nservers; i++) {
        struct mcpd_agent_server *s = &cfg->servers[i];
        free(s->name);
        free(s->command);
        mcpd__cfg_free_strv(s->args, s->nargs);
        for (size_t j = 0; j < s->nenv; j++) {
            free(s->env[j].key);
            free(s->env[j].value);
        }
        free(s->env);
        free(s->cwd);
        json_decref(s->dimensions);
    }
    free(cfg->servers);
    free(cfg->server_url);
    if (cfg->agent_key) {
        explicit_bzero(cfg->agent_key, strlen(cfg->agent_key));
        free(cfg->agent_key);
    }
    free(cfg->name);
    free(cfg->tls_ca_file);
    mcpd__cfg_free_strv(cfg->roots, cfg->nroots);
    mcpd__cfg_free_strv(cfg->commands, cfg->ncommands);
    free(cfg);
}
