/*
 * shell.c - shell_exec: command checks through the policy engine's public
 * API (one bot "agent" with one binding whose `commands` dimension holds the
 * configured globs, so matching is exactly mcpd's), and the runner.
 *
 * Runner states: running -> exited (status known) and drained (pipe EOF) ->
 * done (cb called) -> closed (three handles closed, memory freed). A
 * timeout or an output past the cap kills the whole process group
 * (UV_PROCESS_DETACHED makes the child a session and group leader).
 */
#include "agent/shell.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcpd/buf.h"
#include "mcpd/env.h"
#include "mcpd/error.h"
#include "policy/policy.h"

struct mcpd_agent_shell {
    struct mcpd_policy *policy; /* NULL: nothing allowed */
};

static const char *const shell_tool = "shell_exec";

int mcpd_agent_shell_new(struct mcpd_agent_shell **out, const char *const *patterns, size_t n,
                         char *why, size_t whycap)
{
    struct mcpd_agent_shell *sh;
    struct mcpd_policy_dim dim = { .name = "commands", .patterns = patterns, .npatterns = n };
    struct mcpd_policy_binding b = { .resource = "builtin",
                                     .tools = &shell_tool,
                                     .ntools = 1,
                                     .dims = &dim,
                                     .ndims = 1,
                                     .id = "builtins.shell_exec.commands" };
    struct mcpd_policy_bot bot = { .name = "agent", .bindings = &b, .nbindings = 1 };

    *out = NULL;
    if ((sh = calloc(1, sizeof(*sh))) == NULL)
        return MCPD_ENOMEM;
    if (n > 0 && mcpd_policy_new(&sh->policy, &bot, 1, NULL, 0, why, whycap) != 0) {
        free(sh);
        return MCPD_ECONFIG;
    }
    *out = sh;
    return 0;
}

void mcpd_agent_shell_free(struct mcpd_agent_shell *sh)
{
    if (sh == NULL)
        return;
    mcpd_policy_free(sh->policy);
    free(sh);
}

void mcpd_agent_shell_argv_free(char **argv)
{
    if (argv == NULL)
        return;
    for (char **p = argv; *p; p++)
        free(*p);
    free(argv);
}

static int tokens_to_argv(const char *s, size_t len, char ***argv, char *why, size_t whycap)
{
    static char tok[MCPD_POLICY_MAX_TOKENS][256];
    const char *w = "invalid command";
    int n = mcpd_policy_command_tokens(tok, MCPD_POLICY_MAX_TOKENS, s, len, &w);
    char **v;

    if (n <= 0) {
        snprintf(why, whycap, "command refused: %s", w);
        return MCPD_EDENIED;
    }
    if ((v = calloc((size_t)n + 1, sizeof(*v))) == NULL)
        return MCPD_ENOMEM;
    for (int i = 0; i < n; i++) {
        if ((v[i] = strdup(tok[i])) == NULL) {
            mcpd_agent_shell_argv_free(v);
            return MCPD_ENOMEM;
        }
    }
    *argv = v;
    return 0;
}

int mcpd_agent_shell_check(const struct mcpd_agent_shell *sh, const json_t *command, char ***argv,
                           char *why, size_t whycap)
{
    const struct mcpd_policy_dim_args da = { .dimension = "commands",
                                             .args = (const char *const[]){ "command" },
                                             .nargs = 1 };
    const struct mcpd_policy_resource res = { .name = "builtin", .dims = &da, .ndims = 1 };
    struct mcpd_policy_decision d;
    json_t *args, *c;
    char **v = NULL;
    int rc;

    *argv = NULL;
    if (!json_is_string(command)) {
        snprintf(why, whycap, "argument 'command' must be a string");
        return MCPD_EDENIED;
    }
    /* Tokenise first: metacharacters are refused whatever the patterns say. */
    if ((rc = tokens_to_argv(json_string_value(command), json_string_length(command), &v, why,
                             whycap)) != 0)
        return rc;
    mcpd_agent_shell_argv_free(v);
    if (sh == NULL || sh->policy == NULL) {
        snprintf(why, whycap, "no command is allowed (builtins.shell_exec.commands is empty)");
        return MCPD_EDENIED;
    }
    if ((args = json_object()) == NULL)
        return MCPD_ENOMEM;
    json_object_set(args, "command", (json_t *)command);
    if (mcpd_policy_check_call(sh->policy, "agent", &res, shell_tool, args, &d) != 0) {
        snprintf(why, whycap, "%s", d.reason);
        json_decref(args);
        return MCPD_EDENIED;
    }
    /* The check may have canonicalised the program path: run what was checked. */
    c = json_object_get(args, "command");
    rc = tokens_to_argv(json_string_value(c), json_string_length(c), argv, why, whycap);
    json_decref(args);
    return rc;
}

/* ---- the runner ----------------------------------------------------------------------------- */

struct mcpd_agent_shell_run {
    uv_process_t proc;
    uv_pipe_t out;
    uv_timer_t timer;
    struct mcpd_buf buf;
    mcpd_agent_shell_cb cb;
    void *data;
    int64_t status;
    int term_signal;
    int open_handles;
    bool exited, eof, timed_out, truncated, cancelled, done;
    unsigned timeout_ms;
};

static void on_handle_closed(uv_handle_t *h)
{
    struct mcpd_agent_shell_run *r = h->data;
    if (--r->open_handles == 0) {
        mcpd_buf_dispose(&r->buf);
        free(r);
    }
}

static void kill_group(struct mcpd_agent_shell_run *r)
{
    if (!r->exited && r->proc.pid > 0)
        kill(-r->proc.pid, SIGKILL);
}

static json_t *make_result(struct mcpd_agent_shell_run *r)
{
    struct mcpd_buf t;
    json_t *res;
    bool err = r->timed_out || r->cancelled || r->status != 0 || r->term_signal != 0;

    mcpd_buf_init(&t, r->buf.max + 256);
    if (r->buf.len)
        mcpd_buf_append(&t, r->buf.p, r->buf.len);
    if (r->truncated)
        mcpd_buf_appendf(&t, "\n[output truncated at %zu bytes]", r->buf.max);
    if (r->timed_out)
        mcpd_buf_appendf(&t, "\n[killed after %u ms]", r->timeout_ms);
    else if (r->cancelled)
        mcpd_buf_appendf(&t, "\n[cancelled]");
    else if (r->term_signal)
        mcpd_buf_appendf(&t, "\n[killed by signal %d]", r->term_signal);
    else
        mcpd_buf_appendf(&t, "\n[exit code %lld]", (long long)r->status);
    res = json_pack("{s:[{s:s,s:s%}],s:{s:I,s:i,s:b,s:b},s:b}", "content", "type", "text", "text",
                    t.p ? t.p : "", t.len, "structuredContent", "exit_code", (json_int_t)r->status,
                    "signal", r->term_signal, "timed_out", r->timed_out, "truncated", r->truncated,
                    "isError", err);
    if (res == NULL) /* output that is not UTF-8 */
        res = json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text",
                        "the command's output is not valid UTF-8", "isError", true);
    mcpd_buf_dispose(&t);
    return res;
}

static void maybe_finish(struct mcpd_agent_shell_run *r)
{
    if (r->done || !r->exited || !(r->eof || r->timed_out || r->cancelled))
        return;
    r->done = true;
    uv_timer_stop(&r->timer);
    r->cb(r, make_result(r), r->data);
    uv_close((uv_handle_t *)&r->proc, on_handle_closed);
    uv_close((uv_handle_t *)&r->out, on_handle_closed);
    uv_close((uv_handle_t *)&r->timer, on_handle_closed);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    struct mcpd_agent_shell_run *r = p->data;
    r->exited = true;
    r->status = status;
    r->term_signal = sig;
    /* Grandchildren may keep the pipe open: they die with the group. */
    kill(-p->pid, SIGKILL);
    maybe_finish(r);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char scratch[16384];
    (void)h;
    (void)hint;
    *b = uv_buf_init(scratch, sizeof(scratch));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct mcpd_agent_shell_run *r = s->data;
    if (n < 0) {
        r->eof = true;
        uv_read_stop(s);
        maybe_finish(r);
        return;
    }
    if (n == 0 || r->truncated)
        return;
    size_t room = r->buf.max - r->buf.len;
    if ((size_t)n > room) {
        mcpd_buf_append(&r->buf, b->base, room);
        r->truncated = true;
        kill_group(r);
        return;
    }
    mcpd_buf_append(&r->buf, b->base, (size_t)n);
}

static void on_timeout(uv_timer_t *t)
{
    struct mcpd_agent_shell_run *r = t->data;
    r->timed_out = true;
    kill_group(r);
    maybe_finish(r);
}

int mcpd_agent_shell_run(struct mcpd_agent_shell_run **out, uv_loop_t *loop, char **argv,
                         unsigned timeout_ms, size_t max_output, mcpd_agent_shell_cb cb, void *data)
{
    struct mcpd_agent_shell_run *r;
    uv_process_options_t opt;
    uv_stdio_container_t io[3];
    uv_file fds[2] = { -1, -1 };
    bool tried = false;
    int rc;

    *out = NULL;
    if ((r = calloc(1, sizeof(*r))) == NULL)
        return MCPD_ENOMEM;
    mcpd_buf_init(&r->buf, max_output);
    r->cb = cb;
    r->data = data;
    r->timeout_ms = timeout_ms;
    uv_pipe_init(loop, &r->out, 0);
    uv_timer_init(loop, &r->timer);
    r->out.data = r->timer.data = r->proc.data = r;
    /* One pipe for stdout and stderr, so the output keeps its order. */
    if ((rc = uv_pipe(fds, UV_NONBLOCK_PIPE, 0)) != 0 || (rc = uv_pipe_open(&r->out, fds[0])) != 0)
        goto fail;
    memset(&opt, 0, sizeof(opt));
    io[0].flags = UV_IGNORE;
    io[1].flags = UV_INHERIT_FD;
    io[1].data.fd = fds[1];
    io[2].flags = UV_INHERIT_FD;
    io[2].data.fd = fds[1];
    opt.file = argv[0];
    opt.args = argv;
    opt.stdio = io;
    opt.stdio_count = 3;
    opt.exit_cb = on_exit_cb;
    opt.flags = UV_PROCESS_DETACHED;
    if ((opt.env = mcpd_env_child(NULL, 0)) == NULL) { /* without the agent key */
        rc = MCPD_ENOMEM;
        goto fail;
    }
    tried = true;
    rc = uv_spawn(loop, &r->proc, &opt);
    mcpd_env_free(opt.env);
    close(fds[1]);
    fds[1] = -1;
    if (rc != 0)
        goto fail;
    r->open_handles = 3;
    uv_read_start((uv_stream_t *)&r->out, on_alloc, on_read);
    uv_timer_start(&r->timer, on_timeout, timeout_ms, 0);
    *out = r;
    return 0;
fail:
    /* A failed spawn still needs its handle closed (libuv docs). */
    if (fds[1] >= 0)
        close(fds[1]);
    if (fds[0] >= 0 && uv_fileno((uv_handle_t *)&r->out, &(uv_os_fd_t){ 0 }) != 0)
        close(fds[0]);
    r->open_handles = tried ? 3 : 2;
    if (tried)
        uv_close((uv_handle_t *)&r->proc, on_handle_closed);
    uv_close((uv_handle_t *)&r->out, on_handle_closed);
    uv_close((uv_handle_t *)&r->timer, on_handle_closed);
    return rc;
}

void mcpd_agent_shell_cancel(struct mcpd_agent_shell_run *r)
{
    if (r == NULL || r->done)
        return;
    r->cancelled = true;
    kill_group(r);
    maybe_finish(r);
}
