/*
 * builtins.c - the builtin tools: their definitions (name, schema, the
 * io.mcpd _meta keys that mcpd's policy needs) and their calls. system_info
 * and file_ops answer at once; shell_exec runs a process (shell.c).
 */
#include "agent/builtins.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "agent/fileops.h"
#include "mcpd/buf.h"
#include "mcpd/error.h"
#include "mcpd/log.h"

struct mcpd_agent_builtins {
    uv_loop_t *loop;
    const struct mcpd_agent_config *cfg;
    struct mcpd_agent_files files;
    struct mcpd_agent_shell *shell;
};

json_t *mcpd_agent_tool_text(const char *text, int is_error)
{
    json_t *r = json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text", text);
    if (r == NULL) /* not UTF-8 */
        r = json_pack("{s:[{s:s,s:s}]}", "content", "type", "text", "text",
                      "(the result is not valid UTF-8 text)");
    if (r && is_error)
        json_object_set_new(r, "isError", json_true());
    return r;
}

int mcpd_agent_builtins_new(struct mcpd_agent_builtins **out, uv_loop_t *loop,
                            const struct mcpd_agent_config *cfg)
{
    struct mcpd_agent_builtins *b;
    char why[256];
    int rc;

    *out = NULL;
    if ((b = calloc(1, sizeof(*b))) == NULL)
        return MCPD_ENOMEM;
    b->loop = loop;
    b->cfg = cfg;
    b->files.roots = cfg->roots;
    b->files.nroots = cfg->nroots;
    b->files.max_bytes = cfg->fileops_max_bytes;
    if (cfg->shell_enabled &&
        (rc = mcpd_agent_shell_new(&b->shell, (const char *const *)cfg->commands, cfg->ncommands,
                                   why, sizeof(why))) != 0) {
        LOG_ERROR("agent", "shell_exec: %s", why);
        free(b);
        return rc;
    }
    *out = b;
    return 0;
}

void mcpd_agent_builtins_free(struct mcpd_agent_builtins *b)
{
    if (b == NULL)
        return;
    mcpd_agent_shell_free(b->shell);
    free(b);
}

static json_t *tool_def(const char *tool, const char *desc, json_t *props, const char *const *req,
                        const char *dim, const char *dim_arg)
{
    char name[64];
    json_t *meta, *required = json_array(), *t;

    for (; req && *req; req++)
        json_array_append_new(required, json_string(*req));
    snprintf(name, sizeof(name), "builtin.%s", tool);
    meta = json_pack("{s:s,s:s}", "io.mcpd/group", "builtin", "io.mcpd/tool", tool);
    if (dim)
        json_object_set_new(meta, "io.mcpd/dimensions", json_pack("{s:[s]}", dim, dim_arg));
    t = json_pack("{s:s,s:s,s:{s:s,s:o,s:o},s:o}", "name", name, "description", desc, "inputSchema",
                  "type", "object", "properties", props, "required", required, "_meta", meta);
    return t;
}

void mcpd_agent_builtins_tools(const struct mcpd_agent_builtins *b, json_t *arr)
{
    static const char *const req_path[] = { "path", NULL };
    static const char *const req_write[] = { "path", "content", NULL };
    static const char *const req_cmd[] = { "command", NULL };
    const struct mcpd_agent_config *c = b->cfg;

    if (c->sysinfo_enabled)
        json_array_append_new(
            arr, tool_def("system_info",
                          "Host name, operating system, CPU count, memory, uptime and load of "
                          "the agent's machine.",
                          json_object(), NULL, NULL, NULL));
    if (c->fileops_enabled) {
        json_array_append_new(
            arr, tool_def("read_file", "Read a UTF-8 text file below the agent's allowed roots.",
                          json_pack("{s:{s:s,s:s}}", "path", "type", "string", "description",
                                    "absolute path"),
                          req_path, "paths", "path"));
        json_array_append_new(
            arr, tool_def("write_file",
                          "Create or overwrite a text file below the agent's allowed roots.",
                          json_pack("{s:{s:s,s:s},s:{s:s}}", "path", "type", "string",
                                    "description", "absolute path", "content", "type", "string"),
                          req_write, "paths", "path"));
        json_array_append_new(
            arr, tool_def("list_directory",
                          "List a directory below the agent's allowed roots ([DIR]/[FILE]).",
                          json_pack("{s:{s:s,s:s}}", "path", "type", "string", "description",
                                    "absolute path"),
                          req_path, "paths", "path"));
    }
    if (c->shell_enabled)
        json_array_append_new(
            arr, tool_def("shell_exec",
                          "Run one allowed command on the agent's machine, without a shell "
                          "(no pipes, redirections or variables).",
                          json_pack("{s:{s:s,s:s}}", "command", "type", "string", "description",
                                    "the command line, e.g. \"git status\""),
                          req_cmd, "commands", "command"));
}

static json_t *system_info(void)
{
    struct utsname u;
    struct sysinfo si;
    char host[256] = "";
    json_t *info;
    char *text;

    gethostname(host, sizeof(host) - 1);
    uname(&u);
    sysinfo(&si);
    info = json_pack("{s:s,s:{s:s,s:s,s:s,s:s},s:I,s:{s:I,s:I},s:I,s:[f,f,f]}", "hostname", host,
                     "os", "sysname", u.sysname, "release", u.release, "version", u.version,
                     "machine", u.machine, "cpus", (json_int_t)sysconf(_SC_NPROCESSORS_ONLN),
                     "memory", "total_bytes", (json_int_t)si.totalram * si.mem_unit, "free_bytes",
                     (json_int_t)si.freeram * si.mem_unit, "uptime_s", (json_int_t)si.uptime,
                     "load", si.loads[0] / 65536.0, si.loads[1] / 65536.0, si.loads[2] / 65536.0);
    if (info == NULL)
        return mcpd_agent_tool_text("system information is not available", 1);
    text = json_dumps(info, JSON_INDENT(2));
    json_t *r = mcpd_agent_tool_text(text ? text : "{}", 0);
    free(text);
    json_object_set_new(r, "structuredContent", info);
    return r;
}

static const char *str_arg(json_t *args, const char *name, size_t *len)
{
    json_t *v = json_object_get(args, name);
    if (!json_is_string(v))
        return NULL;
    *len = json_string_length(v);
    return json_string_value(v);
}

static json_t *file_call(struct mcpd_agent_builtins *b, const char *tool, json_t *args)
{
    char why[512];
    const char *path, *content = NULL;
    size_t plen = 0, clen = 0, len;
    json_t *entries, *r;
    char *data;
    int rc;

    if ((path = str_arg(args, "path", &plen)) == NULL)
        return mcpd_agent_tool_text("argument 'path' (a string) is required", 1);
    if (strcmp(tool, "read_file") == 0) {
        if ((rc = mcpd_agent_files_read(&b->files, path, plen, &data, &len, why, sizeof(why))) != 0)
            return mcpd_agent_tool_text(why, 1);
        r = json_pack("{s:[{s:s,s:s%}]}", "content", "type", "text", "text", data, len);
        free(data);
        return r ? r : mcpd_agent_tool_text("the file is not UTF-8 text", 1);
    }
    if (strcmp(tool, "write_file") == 0) {
        if ((content = str_arg(args, "content", &clen)) == NULL)
            return mcpd_agent_tool_text("argument 'content' (a string) is required", 1);
        if ((rc = mcpd_agent_files_write(&b->files, path, plen, content, clen, why, sizeof(why))) !=
            0)
            return mcpd_agent_tool_text(why, 1);
        snprintf(why, sizeof(why), "wrote %zu bytes to %.300s", clen, path);
        return mcpd_agent_tool_text(why, 0);
    }
    if ((rc = mcpd_agent_files_list(&b->files, path, plen, &entries, why, sizeof(why))) != 0)
        return mcpd_agent_tool_text(why, 1);
    {
        struct mcpd_buf t;
        size_t i;
        json_t *e;
        mcpd_buf_init(&t, b->files.max_bytes);
        json_array_foreach (entries, i, e) {
            const char *ty = json_string_value(json_object_get(e, "type"));
            if (mcpd_buf_appendf(&t, "%s %s\n", strcmp(ty, "directory") == 0 ? "[DIR]" : "[FILE]",
                                 json_string_value(json_object_get(e, "name"))) != 0)
                break;
        }
        r = mcpd_agent_tool_text(t.p ? t.p : "", 0);
        mcpd_buf_dispose(&t);
        json_object_set_new(r, "structuredContent", json_pack("{s:o}", "entries", entries));
    }
    return r;
}

int mcpd_agent_builtins_call(struct mcpd_agent_builtins *b, const char *tool, json_t *args,
                             json_t **result, struct mcpd_agent_shell_run **run,
                             mcpd_agent_shell_cb cb, void *data)
{
    const struct mcpd_agent_config *c = b->cfg;
    char why[512];
    char **argv = NULL;
    int rc;

    *result = NULL;
    *run = NULL;
    if (args != NULL && !json_is_object(args)) {
        *result = mcpd_agent_tool_text("arguments must be an object", 1);
        return 0;
    }
    if (strcmp(tool, "system_info") == 0 && c->sysinfo_enabled) {
        *result = system_info();
        return 0;
    }
    if (c->fileops_enabled && (strcmp(tool, "read_file") == 0 || strcmp(tool, "write_file") == 0 ||
                               strcmp(tool, "list_directory") == 0)) {
        *result = file_call(b, tool, args);
        return 0;
    }
    if (strcmp(tool, "shell_exec") != 0 || !c->shell_enabled)
        return -1;
    rc =
        mcpd_agent_shell_check(b->shell, json_object_get(args, "command"), &argv, why, sizeof(why));
    if (rc != 0) {
        LOG_WARN("agent", "shell_exec refused: %s", why);
        *result = mcpd_agent_tool_text(rc == MCPD_EDENIED ? why : "out of memory", 1);
        return 0;
    }
    LOG_INFO("agent", "shell_exec: running '%s' (%s)", argv[0], "allowed by configuration");
    rc = mcpd_agent_shell_run(run, b->loop, argv, c->shell_timeout_ms, c->shell_max_output, cb,
                              data);
    if (rc != 0) {
        snprintf(why, sizeof(why), "cannot run '%.200s': %s", argv[0], uv_strerror(rc));
        *result = mcpd_agent_tool_text(why, 1);
        mcpd_agent_shell_argv_free(argv);
        return 0;
    }
    mcpd_agent_shell_argv_free(argv);
    return 1;
}
