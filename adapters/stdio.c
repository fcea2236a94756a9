/*
 * stdio.c - upstream adapter for child MCP servers over stdio.
 *
 * Spawns the configured command in its own session (so a terminal's ^C
 * reaches mcpd, which then stops children in order) with stdin/stdout/stderr
 * pipes. stdout is newline-delimited JSON-RPC for the core; stderr lines are
 * relayed to mcpd's log with the server name. An attempt ends when the
 * process has exited and its stdout reached EOF (or 1 s after exit, should a
 * grandchild keep the pipe open); only then is the core told.
 *
 * Stop ladder: close the child's stdin, wait MCPD_STOP_GRACE_MS, SIGTERM,
 * wait MCPD_KILL_GRACE_MS, SIGKILL.
 */
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters.h"
#include "mcpd/env.h"
#include "mcpd/error.h"
#include "mcpd/limits.h"
#include "mcpd/log.h"
#include "mcpd/net/lines.h"

enum stop_step { STEP_NONE, STEP_STDIN_CLOSED, STEP_TERM_SENT, STEP_KILL_SENT };

struct stdio_up {
    struct mcpd_upstream up; /* first: the core casts */
    uv_process_t proc;
    uv_pipe_t in, out, err;
    uv_timer_t timer;           /* stop ladder and exit grace */
    struct mcpd_deferred flush; /* writes of one loop iteration leave in one syscall */
    struct mcpd_buf outq;
    int own_handles; /* the timer, closed in up_free */
    struct mcpd_line_reader out_lines, err_lines;
    int open_handles; /* of the current attempt (proc + pipes) */
    bool running, exited, out_eof, in_closed, closing_attempt, attempt_closing;
    enum stop_step step;
    int64_t exit_status;
    int term_signal;
    char why[128];
};

static struct stdio_up *from_up(struct mcpd_upstream *up)
{
    return (struct stdio_up *)up;
}

/* ---- attempt teardown ------------------------------------------------------- */

static void on_attempt_handle_closed(uv_handle_t *h)
{
    struct stdio_up *s = h->data;
    if (--s->open_handles > 0)
        return;
    s->running = false;
    s->attempt_closing = false;
    uv_timer_stop(&s->timer);
    mcpd_line_reader_dispose(&s->out_lines);
    mcpd_line_reader_dispose(&s->err_lines);
    mcpd_upstream_on_disconnected(&s->up, s->why);
}

static void close_attempt(struct stdio_up *s)
{
    if (s->attempt_closing)
        return;
    s->attempt_closing = true;
    if (s->why[0] == '\0') {
        if (!s->exited)
            snprintf(s->why, sizeof(s->why), "closed its stdout");
        else if (s->term_signal)
            snprintf(s->why, sizeof(s->why), "killed by signal %d", s->term_signal);
        else
            snprintf(s->why, sizeof(s->why), "exited with status %lld", (long long)s->exit_status);
    }
    uv_close((uv_handle_t *)&s->proc, on_attempt_handle_closed);
    if (!s->in_closed)
        uv_close((uv_handle_t *)&s->in, on_attempt_handle_closed);
    uv_close((uv_handle_t *)&s->out, on_attempt_handle_closed);
    uv_close((uv_handle_t *)&s->err, on_attempt_handle_closed);
}

static void on_grace(uv_timer_t *t)
{
    struct stdio_up *s = t->data;
    if (s->exited) { /* exited, but stdout is still held open by someone */
        close_attempt(s);
        return;
    }
    if (s->step == STEP_STDIN_CLOSED) {
        LOG_INFO("upstream", "upstream=%s did not exit after stdin closed; SIGTERM", s->up.name);
        uv_process_kill(&s->proc, SIGTERM);
        s->step = STEP_TERM_SENT;
        uv_timer_start(&s->timer, on_grace, MCPD_KILL_GRACE_MS, 0);
    } else if (s->step == STEP_TERM_SENT) {
        LOG_WARN("upstream", "upstream=%s ignored SIGTERM; SIGKILL", s->up.name);
        uv_process_kill(&s->proc, SIGKILL);
        s->step = STEP_KILL_SENT;
    }
}

static void on_child_exit(uv_process_t *p, int64_t status, int sig)
{
    struct stdio_up *s = p->data;
    s->exited = true;
    s->exit_status = status;
    s->term_signal = sig;
    if (s->out_eof)
        close_attempt(s);
    else
        uv_timer_start(&s->timer, on_grace, 1000, 0);
}

/* ---- pipes -------------------------------------------------------------------- */

static void up_stop(struct mcpd_upstream *up);

static void on_eof_grace(uv_timer_t *t)
{
    struct stdio_up *s = t->data;
    if (!s->exited)
        up_stop(&s->up);
}

static void on_out_line(void *arg, const char *line, size_t len)
{
    struct stdio_up *s = arg;
    mcpd_upstream_on_message(&s->up, line, len);
}

static void on_out_overflow(void *arg)
{
    struct stdio_up *s = arg;
    LOG_WARN("upstream", "upstream=%s sent a message over %u bytes; skipped", s->up.name,
             MCPD_MAX_UPSTREAM_MSG);
}

static void on_err_line(void *arg, const char *line, size_t len)
{
    struct stdio_up *s = arg;
    LOG_INFO("upstream", "upstream=%s stderr: %.*s", s->up.name, (int)(len > 1000 ? 1000 : len),
             line);
}

static void on_alloc_out(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    mcpd_line_reader_alloc(&((struct stdio_up *)h->data)->out_lines, buf);
}

static void on_alloc_err(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    mcpd_line_reader_alloc(&((struct stdio_up *)h->data)->err_lines, buf);
}

static void on_read_out(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct stdio_up *s = st->data;
    if (n < 0 && n != UV_ENOBUFS) {
        uv_read_stop(st);
        s->out_eof = true;
        if (s->exited)
            close_attempt(s);
        else /* usually the exit follows at once; if not, stop it in order */
            uv_timer_start(&s->timer, on_eof_grace, 500, 0);
        return;
    }
    mcpd_line_reader_feed(&s->out_lines, n, &s->attempt_closing);
}

static void on_read_err(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct stdio_up *s = st->data;
    if (n < 0 && n != UV_ENOBUFS) {
        uv_read_stop(st);
        return;
    }
    mcpd_line_reader_feed(&s->err_lines, n, &s->attempt_closing);
}

/* ---- vtable ------------------------------------------------------------------- */

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

static int up_start(struct mcpd_upstream *up)
{
    struct stdio_up *s = from_up(up);
    const struct mcpd_server_config *cfg = up->cfg;
    uv_loop_t *loop = up->daemon->loop;
    uv_process_options_t opt;
    uv_stdio_container_t stdio[3];
    char **args = calloc(cfg->nargs + 2, sizeof(*args));
    char **env = mcpd_env_child(cfg->env, cfg->nenv);
    int r;

    if (args == NULL || env == NULL) {
        free(args);
        free_strv(env);
        return MCPD_ENOMEM;
    }
    args[0] = cfg->command;
    for (size_t i = 0; i < cfg->nargs; i++)
        args[i + 1] = cfg->args[i];
    s->exited = s->out_eof = s->in_closed = s->attempt_closing = false;
    s->step = STEP_NONE;
    s->why[0] = '\0';
    mcpd_line_reader_init(&s->out_lines, MCPD_MAX_UPSTREAM_MSG, on_out_line, on_out_overflow, s);
    mcpd_line_reader_init(&s->err_lines, MCPD_MAX_STDERR_LINE, on_err_line, NULL, s);
    uv_pipe_init(loop, &s->in, 0);
    uv_pipe_init(loop, &s->out, 0);
    uv_pipe_init(loop, &s->err, 0);
    s->in.data = s->out.data = s->err.data = s->proc.data = s;
    memset(&opt, 0, sizeof(opt));
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&s->in;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&s->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&s->err;
    opt.file = cfg->command;
    opt.args = args;
    opt.env = env;
    opt.cwd = cfg->cwd;
    opt.stdio = stdio;
    opt.stdio_count = 3;
    opt.exit_cb = on_child_exit;
    opt.flags = UV_PROCESS_DETACHED; /* own session: ^C goes to mcpd, which stops us in order */
    r = uv_spawn(loop, &s->proc, &opt);
    free(args);
    free_strv(env);
    s->open_handles = 4;
    s->running = true;
    if (r != 0) {
        snprintf(s->why, sizeof(s->why), "cannot run '%s': %s", cfg->command, uv_strerror(r));
        LOG_ERROR("upstream", "upstream=%s %s", up->name, s->why);
        s->exited = true;
        close_attempt(s); /* reports the disconnect once the handles are closed */
        return 0;
    }
    LOG_INFO("upstream", "upstream=%s started pid %d: %s", up->name, s->proc.pid, cfg->command);
    uv_read_start((uv_stream_t *)&s->out, on_alloc_out, on_read_out);
    uv_read_start((uv_stream_t *)&s->err, on_alloc_err, on_read_err);
    mcpd_upstream_on_connected(up);
    return 0;
}

/*
 * Messages queued during one loop iteration are written together just
 * before the loop blocks again (mcpd__daemon_defer): under load that turns
 * one write (and one wake-up of the child) per call into one per iteration.
 */
static void on_flush(struct mcpd_deferred *w)
{
    struct stdio_up *s = (struct stdio_up *)((char *)w - offsetof(struct stdio_up, flush));

    if (s->outq.len == 0 || !s->running || s->in_closed || s->attempt_closing) {
        mcpd_buf_reset(&s->outq);
        return;
    }
    /* the last byte is a newline: write_line adds it back */
    if (mcpd_write_line((uv_stream_t *)&s->in, s->outq.p, s->outq.len - 1, MCPD_MAX_UPSTREAM_MSG) !=
        0)
        LOG_WARN("upstream", "upstream=%s does not read its stdin; %zu bytes dropped", s->up.name,
                 s->outq.len);
    mcpd_buf_reset(&s->outq);
}

static int up_send(struct mcpd_upstream *up, const char *data, size_t len)
{
    struct stdio_up *s = from_up(up);
    int r;
    if (!s->running || s->in_closed || s->attempt_closing)
        return MCPD_ECLOSED;
    if ((r = mcpd_buf_reserve(&s->outq, len + 1)) != 0)
        return MCPD_EBUSY;
    mcpd_buf_append(&s->outq, data, len);
    mcpd_buf_append(&s->outq, "\n", 1);
    mcpd__daemon_defer(up->daemon, &s->flush);
    return 0;
}

static void up_stop(struct mcpd_upstream *up)
{
    struct stdio_up *s = from_up(up);
    if (!s->running || s->step != STEP_NONE || s->attempt_closing)
        return;
    /* MCP lifecycle (stdio): close the child's stdin and let it exit */
    s->step = STEP_STDIN_CLOSED;
    if (s->why[0] == '\0')
        snprintf(s->why, sizeof(s->why), s->out_eof ? "closed its stdout" : "stopped by mcpd");
    if (!s->exited) {
        s->in_closed = true;
        uv_close((uv_handle_t *)&s->in, on_attempt_handle_closed);
        uv_timer_start(&s->timer, on_grace, MCPD_STOP_GRACE_MS, 0);
    }
}

static void on_own_handle_closed(uv_handle_t *h)
{
    struct stdio_up *s = h->data;
    if (--s->own_handles > 0)
        return;
    mcpd_buf_dispose(&s->outq);
    free(s);
}

static void up_free(struct mcpd_upstream *up)
{
    struct stdio_up *s = from_up(up);
    mcpd__daemon_undefer(up->daemon, &s->flush);
    s->own_handles = 1;
    uv_close((uv_handle_t *)&s->timer, on_own_handle_closed);
}

static const struct mcpd_upstream_ops stdio_ops = { "stdio", up_start, up_send, up_stop, up_free };

int mcpd_stdio_upstream_new(struct mcpd_upstream **out, struct mcpd_daemon *d,
                            const struct mcpd_server_config *cfg)
{
    struct stdio_up *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (s == NULL)
        return MCPD_ENOMEM;
    mcpd_upstream_init(&s->up, d, cfg, &stdio_ops);
    uv_timer_init(d->loop, &s->timer);
    s->flush.run = on_flush;
    s->timer.data = s;
    mcpd_buf_init(&s->outq, MCPD_MAX_UPSTREAM_MSG);
    *out = &s->up;
    return 0;
}
