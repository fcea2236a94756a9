/*
 * stdioload: a small closed-loop load generator for MCP servers over stdio.
 *
 * Spawns COMMAND with its stdin/stdout on pipes (stderr inherited), in its own
 * process group, and speaks newline-delimited JSON-RPC to it:
 *   initialize (id 1)  ->  wait for the result  ->  notifications/initialized
 *   then keeps -c requests  tools/call <tool> {"text":<text>}  in flight for
 *   -w + -d seconds: closed loop, a new request goes out as soon as one is
 *   answered. Ids are unique integers (slot k of c uses ids 2+k, 2+k+c, ...).
 * Every answer is checked: an integer id that is in flight, a "result" member,
 * no "error" member, "isError" not true, the text echoed inside the result.
 * Only calls started and finished inside the measured window (after the -w
 * warm-up) count toward calls/latency; errors count from the first call on.
 * A request unanswered after -T seconds counts as a timeout and its slot gets
 * a new request (a late answer is then counted as "late", not as an error).
 * Requests still in flight at the end are neither counted nor errors.
 *
 * At the end stdin of the child is closed and the child waited for; after 5 s
 * its whole process group gets SIGKILL. The child's peak RSS (VmHWM, read just
 * before stdin is closed) and the CPU time of its process group over the
 * measured window are reported too.
 *
 * Output: a human summary on stderr (same shape as mcpload's); with -j one
 * JSON line on stdout. Exit status 0 when the run completed without errors,
 * 1 when errors were counted, 2 on usage or start-up failure.
 *
 * Build: gcc -O2 -Wall -Wextra -Werror -o stdioload stdioload.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ID_INIT  1
#define ID_BASE  2
#define MAX_LINE (16u * 1024 * 1024) /* one answer line; longer is an error */

/* ------------------------------------------------------------------ util */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "stdioload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

typedef struct {
    char *p;
    size_t len, cap, off; /* off: bytes already consumed/written from the front */
} buf_t;

static void buf_reserve(buf_t *b, size_t extra)
{
    if (b->off && b->off == b->len) /* fully consumed: rewind */
        b->off = b->len = 0;
    if (b->len + extra <= b->cap)
        return;
    if (b->off) { /* compact before growing */
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + extra <= b->cap)
            return;
    }
    size_t nc = b->cap ? b->cap : 65536;
    while (nc < b->len + extra)
        nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np)
        die("out of memory");
    b->p = np;
    b->cap = nc;
}

static void buf_add(buf_t *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* --------------------------------------------------------------- options */
static struct {
    int conc;
    double dur, warm, timeout, init_timeout;
    const char *text, *tool, *proto;
    size_t max_samples;
    int json;
} O = { 1, 10, 1, 5, 10, "hello", "echo", "2025-06-18", 8000000, 0 };

/* ----------------------------------------------------------------- state */
typedef struct {
    uint64_t id;     /* in flight; 0 = none */
    uint64_t next_k; /* next id of this slot: ID_BASE + slot + next_k * conc */
    uint64_t t_start;
} slot_t;

static slot_t *slots;
static uint32_t *lat; /* microseconds */
static size_t nlat;
static uint64_t n_done, n_sent, n_err_rpc, n_err_id, n_err_timeout, n_err_eof, n_late, n_other;
static uint64_t t_measure_start, t_measure_end;
static int init_done, init_failed, stopping;
static char init_error[256];

static pid_t child = -1;
static int to_child = -1, from_child = -1;
static buf_t out, in;
static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

/* ------------------------------------------------------- minimal JSON scan */
static const char *ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* Pointer just past the JSON value at p, or NULL when malformed/truncated. */
static const char *skip_value(const char *p, const char *e, int depth)
{
    p = ws(p, e);
    if (p >= e || depth > 128)
        return NULL;
    if (*p == '"') {
        for (p++; p < e; p++) {
            if (*p == '\\') {
                p++;
                continue;
            }
            if (*p == '"')
                return p + 1;
        }
        return NULL;
    }
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        int is_obj = *p == '{';
        p = ws(p + 1, e);
        if (p < e && *p == close)
            return p + 1;
        for (;;) {
            if (is_obj) {
                p = ws(p, e);
                if (p >= e || *p != '"')
                    return NULL;
                p = skip_value(p, e, depth + 1);
                if (!p)
                    return NULL;
                p = ws(p, e);
                if (p >= e || *p != ':')
                    return NULL;
                p++;
            }
            p = skip_value(p, e, depth + 1);
            if (!p)
                return NULL;
            p = ws(p, e);
            if (p >= e)
                return NULL;
            if (*p == ',') {
                p++;
                continue;
            }
            if (*p == close)
                return p + 1;
            return NULL;
        }
    }
    const char *s = p;
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' && *p != '\r' &&
           *p != '\n')
        p++;
    return p > s ? p : NULL;
}

/* The top-level members of one JSON-RPC message that matter here. */
typedef struct {
    int ok;                 /* a well-formed object */
    int has_id, id_is_uint; /* "id" present; it is a non-negative integer */
    uint64_t id;
    const char *ids, *ide; /* raw id token */
    const char *rs, *re;   /* raw "result" value, NULL when absent */
    int has_error, has_method;
    const char *ms, *me; /* raw "method" value */
} msg_t;

static int key_is(const char *ks, const char *ke, const char *lit)
{
    size_t l = strlen(lit);
    return (size_t)(ke - ks) == l + 2 && memcmp(ks + 1, lit, l) == 0;
}

static void scan_msg(const char *s, const char *e, msg_t *m)
{
    memset(m, 0, sizeof *m);
    const char *p = ws(s, e);
    if (p >= e || *p != '{')
        return;
    p = ws(p + 1, e);
    if (p < e && *p == '}') {
        m->ok = 1;
        return;
    }
    for (;;) {
        p = ws(p, e);
        if (p >= e || *p != '"')
            return;
        const char *ks = p;
        p = skip_value(p, e, 0);
        if (!p)
            return;
        const char *ke = p;
        p = ws(p, e);
        if (p >= e || *p != ':')
            return;
        const char *vs = ws(p + 1, e);
        p = skip_value(vs, e, 0);
        if (!p)
            return;
        if (key_is(ks, ke, "id")) {
            m->has_id = 1;
            m->ids = vs;
            m->ide = p;
            if (*vs >= '0' && *vs <= '9') {
                uint64_t v = 0;
                const char *q = vs;
                while (q < p && *q >= '0' && *q <= '9' && v < UINT64_MAX / 10)
                    v = v * 10 + (uint64_t)(*q++ - '0');
                if (q == p) {
                    m->id_is_uint = 1;
                    m->id = v;
                }
            }
        } else if (key_is(ks, ke, "result")) {
            m->rs = vs;
            m->re = p;
        } else if (key_is(ks, ke, "error")) {
            m->has_error = 1;
        } else if (key_is(ks, ke, "method")) {
            m->has_method = 1;
            m->ms = vs;
            m->me = p;
        }
        p = ws(p, e);
        if (p >= e)
            return;
        if (*p == '}') {
            m->ok = ws(p + 1, e) == e;
            return;
        }
        if (*p != ',')
            return;
        p++;
    }
}

/* "isError" : true anywhere in the result */
static int has_is_error_true(const char *s, const char *e)
{
    const char *p = s;
    while (p < e && (p = memmem(p, (size_t)(e - p), "\"isError\"", 9)) != NULL) {
        p += 9;
        const char *q = ws(p, e);
        if (q < e && *q == ':') {
            q = ws(q + 1, e);
            if ((size_t)(e - q) >= 4 && memcmp(q, "true", 4) == 0)
                return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------- requests */
static void send_call(int k)
{
    slot_t *sl = &slots[k];
    char body[1024];
    sl->id = ID_BASE + (uint64_t)k + sl->next_k++ * (uint64_t)O.conc;
    sl->t_start = now_ns();
    int n = snprintf(body, sizeof body,
                     "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":\"tools/call\",\"params\":"
                     "{\"name\":\"%s\",\"arguments\":{\"text\":\"%s\"}}}\n",
                     sl->id, O.tool, O.text);
    buf_add(&out, body, (size_t)n);
    n_sent++;
}

static void flush_out(void)
{
    while (out.off < out.len) {
        ssize_t w = write(to_child, out.p + out.off, out.len - out.off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            n_err_eof++; /* EPIPE: the child closed its stdin */
            stopping = 1;
            out.off = out.len = 0;
            return;
        }
        out.off += (size_t)w;
    }
    out.off = out.len = 0;
}

static void reply_to_server_request(const msg_t *m)
{
    /* a server-to-client request: answer ping, refuse anything else */
    char tmp[256];
    size_t il = (size_t)(m->ide - m->ids);
    if (il > 100)
        return;
    int is_ping = (size_t)(m->me - m->ms) == 6 && memcmp(m->ms, "\"ping\"", 6) == 0;
    int n = snprintf(tmp, sizeof tmp, "{\"jsonrpc\":\"2.0\",\"id\":%.*s,%s}\n", (int)il, m->ids,
                     is_ping ? "\"result\":{}"
                             : "\"error\":{\"code\":-32601,\"message\":\"Method not found\"}");
    buf_add(&out, tmp, (size_t)n);
}

static void handle_line(const char *s, const char *e)
{
    msg_t m;
    char pat[300];
    s = ws(s, e);
    if (s >= e)
        return; /* blank line */
    scan_msg(s, e, &m);
    if (!m.ok) {
        n_err_id++; /* not one JSON object: unusable answer */
        return;
    }
    if (m.has_method) {
        n_other++;
        if (m.has_id)
            reply_to_server_request(&m);
        return;
    }
    if (!init_done) {
        if (m.id_is_uint && m.id == ID_INIT) {
            if (m.has_error || !m.rs || *m.rs != '{') {
                init_failed = 1;
                snprintf(init_error, sizeof init_error, "%.*s", (int)(e - s < 200 ? e - s : 200),
                         s);
            }
            init_done = 1;
        } else {
            n_other++;
        }
        return;
    }
    if (!m.id_is_uint || m.id < ID_BASE) {
        n_err_id++;
        return;
    }
    int k = (int)((m.id - ID_BASE) % (uint64_t)O.conc);
    slot_t *sl = &slots[k];
    if (sl->id != m.id) {
        if (m.id < ID_BASE + (uint64_t)k + sl->next_k * (uint64_t)O.conc)
            n_late++; /* a request that already timed out (or a duplicate) */
        else
            n_err_id++; /* an id that was never sent */
        return;
    }
    uint64_t t = now_ns();
    int good = !m.has_error && m.rs && *m.rs == '{';
    if (good) {
        snprintf(pat, sizeof pat, "\"%s\"", O.text);
        good = memmem(m.rs, (size_t)(m.re - m.rs), pat, strlen(pat)) != NULL &&
               !has_is_error_true(m.rs, m.re);
    }
    if (!good) {
        n_err_rpc++;
    } else if (sl->t_start >= t_measure_start && t <= t_measure_end) {
        n_done++;
        if (nlat < O.max_samples)
            lat[nlat++] = (uint32_t)((t - sl->t_start) / 1000);
    }
    sl->id = 0;
    if (!stopping && t < t_measure_end)
        send_call(k);
}

/* Reads what the child wrote; returns -1 at EOF/error, else 0. */
static int read_child(void)
{
    for (int rounds = 0; rounds < 16; rounds++) {
        buf_reserve(&in, 65536);
        size_t room = in.cap - in.len;
        ssize_t r = read(from_child, in.p + in.len, room);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            return -1;
        }
        if (r == 0)
            return -1;
        in.len += (size_t)r;
        char *start = in.p + in.off, *end = in.p + in.len, *nl;
        while ((nl = memchr(start, '\n', (size_t)(end - start))) != NULL) {
            handle_line(start, nl);
            start = nl + 1;
        }
        in.off = (size_t)(start - in.p);
        if (in.len - in.off > MAX_LINE) {
            n_err_id++;
            in.off = in.len; /* drop the oversized line */
        }
        if ((size_t)r < room) /* short read: drained for now */
            break;
    }
    return 0;
}

/* --------------------------------------------------------------- child */
static void spawn(char **argv)
{
    int pin[2], pout[2];
    if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0)
        die("pipe: %s", strerror(errno));
    child = fork();
    if (child < 0)
        die("fork: %s", strerror(errno));
    if (child == 0) {
        setpgid(0, 0);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        if (dup2(pin[0], 0) < 0 || dup2(pout[1], 1) < 0)
            _exit(127);
        execvp(argv[0], argv);
        fprintf(stderr, "stdioload: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(child, child); /* also here: no race with the first kill */
    close(pin[0]);
    close(pout[1]);
    to_child = pin[1];
    from_child = pout[0];
    fcntl(to_child, F_SETFL, fcntl(to_child, F_GETFL) | O_NONBLOCK);
    fcntl(from_child, F_SETFL, fcntl(from_child, F_GETFL) | O_NONBLOCK);
}

/* CPU clock ticks (utime+stime+cutime+cstime) of every process in the group. */
static long long group_ticks(pid_t pgrp)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    long long sum = 0;
    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char path[64], buf[1024];
        if (strlen(de->d_name) > 20)
            continue;
        snprintf(path, sizeof path, "/proc/%.20s/stat", de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = 0;
        char *p = strrchr(buf, ')');
        if (!p)
            continue;
        /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
         * utime stime cutime cstime */
        char state;
        long ppid, pg, sess, tty, tpgid;
        unsigned long flags, f1, f2, f3, f4, ut, st;
        long cut, cst;
        if (sscanf(p + 2, "%c %ld %ld %ld %ld %ld %lu %lu %lu %lu %lu %lu %lu %ld %ld", &state,
                   &ppid, &pg, &sess, &tty, &tpgid, &flags, &f1, &f2, &f3, &f4, &ut, &st, &cut,
                   &cst) != 15)
            continue;
        if (pg == (long)pgrp)
            sum += (long long)(ut + st) + cut + cst;
    }
    closedir(d);
    return sum;
}

static long status_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    size_t kl = strlen(key);
    long v = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = atol(line + kl + 1);
            break;
        }
    fclose(f);
    return v;
}

static int group_alive(pid_t pgrp)
{
    return kill(-pgrp, 0) == 0 || errno == EPERM;
}

/* Close the child's stdin, wait for it (and its group) at most 5 s, then SIGKILL
 * the group. Returns the child's wait status, or -1. */
static int stop_child(uint64_t *shutdown_ns)
{
    int status = -1, reaped = 0;
    uint64_t t0 = now_ns(), deadline = t0 + 5000000000ull;
    if (to_child >= 0) {
        close(to_child);
        to_child = -1;
    }
    while (now_ns() < deadline) {
        if (!reaped) {
            pid_t r = waitpid(child, &status, WNOHANG);
            if (r == child || (r < 0 && errno == ECHILD))
                reaped = 1;
        }
        if (reaped && !group_alive(child))
            break;
        /* keep draining its stdout so it never blocks on a full pipe */
        if (from_child >= 0) {
            char tmp[65536];
            ssize_t n = read(from_child, tmp, sizeof tmp);
            if (n == 0) {
                close(from_child);
                from_child = -1;
            }
        }
        struct timespec ts = { 0, 2000000 };
        nanosleep(&ts, NULL);
    }
    *shutdown_ns = now_ns() - t0;
    if (!reaped || group_alive(child)) {
        fprintf(stderr, "stdioload: child group %d still running after 5 s: SIGKILL\n", (int)child);
        kill(-child, SIGKILL);
        if (!reaped)
            waitpid(child, &status, 0);
    }
    if (from_child >= 0)
        close(from_child);
    return status;
}

/* ---------------------------------------------------------------- stats */
static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p)
{
    if (!nlat)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(nlat - 1) + 0.5);
    return lat[i];
}

static void usage(void)
{
    fprintf(stderr,
            "usage: stdioload [options] [--] COMMAND [ARGS...]\n"
            "  COMMAND   an MCP server speaking newline-delimited JSON-RPC on stdin/stdout\n"
            "            (e.g. mcpd stdio -c cfg.yaml); spawned in its own process group\n"
            "  -c N      requests kept in flight on the one session (default 1)\n"
            "  -d SEC    measured duration (default 10, at most 600)\n"
            "  -w SEC    warm-up before measuring (default 1, at most 60)\n"
            "  -t TEXT   text for the echo tool (default hello; no quotes or backslashes)\n"
            "  -n NAME   tool name (default echo)\n"
            "  -P VER    protocolVersion to offer (default 2025-06-18)\n"
            "  -T SEC    per-request timeout (default 5)\n"
            "  -i SEC    initialize timeout (default 10, at most 60)\n"
            "  -M N      max latency samples kept (default 8000000)\n"
            "  -j        print one JSON result line on stdout\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "+c:d:w:t:n:P:T:i:M:j")) != -1) {
        switch (opt) {
        case 'c':
            O.conc = atoi(optarg);
            break;
        case 'd':
            O.dur = atof(optarg);
            break;
        case 'w':
            O.warm = atof(optarg);
            break;
        case 't':
            O.text = optarg;
            break;
        case 'n':
            O.tool = optarg;
            break;
        case 'P':
            O.proto = optarg;
            break;
        case 'T':
            O.timeout = atof(optarg);
            break;
        case 'i':
            O.init_timeout = atof(optarg);
            break;
        case 'M':
            O.max_samples = (size_t)atol(optarg);
            break;
        case 'j':
            O.json = 1;
            break;
        default:
            usage();
        }
    }
    if (optind >= argc)
        usage();
    if (O.conc < 1 || O.conc > 100000)
        die("-c must be in [1, 100000]");
    if (!(O.dur > 0 && O.dur <= 600))
        die("-d must be in (0, 600]");
    if (!(O.warm >= 0 && O.warm <= 60))
        die("-w must be in [0, 60]");
    if (!(O.init_timeout > 0 && O.init_timeout <= 60))
        die("-i must be in (0, 60]");
    if (!(O.timeout > 0 && O.timeout <= 600))
        die("-T must be in (0, 600]");
    if (strpbrk(O.text, "\"\\\n") || strlen(O.text) > 200)
        die("-t: no quotes, backslashes or newlines, at most 200 bytes");
    if (strpbrk(O.tool, "\"\\\n") || strlen(O.tool) > 200)
        die("-n: no quotes, backslashes or newlines, at most 200 bytes");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    lat = malloc(sizeof(uint32_t) * (O.max_samples ? O.max_samples : 1));
    slots = calloc((size_t)O.conc, sizeof *slots);
    if (!lat || !slots)
        die("out of memory");

    spawn(argv + optind);

    /* ---- initialize ---- */
    char body[1024];
    int n = snprintf(body, sizeof body,
                     "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"initialize\",\"params\":{"
                     "\"protocolVersion\":\"%s\",\"capabilities\":{},"
                     "\"clientInfo\":{\"name\":\"stdioload\",\"version\":\"1.0.0\"}}}\n",
                     ID_INIT, O.proto);
    buf_add(&out, body, (size_t)n);
    uint64_t t_spawn = now_ns();
    uint64_t init_deadline = t_spawn + (uint64_t)(O.init_timeout * 1e9);
    t_measure_start = t_measure_end = UINT64_MAX;
    int eof = 0;
    while (!init_done && !eof && !got_signal && !stopping && now_ns() < init_deadline) {
        flush_out();
        struct pollfd pf[2] = { { from_child, POLLIN, 0 },
                                { to_child, out.len > out.off ? POLLOUT : 0, 0 } };
        if (poll(pf, 2, 50) < 0 && errno != EINTR)
            break;
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR))
            eof = read_child() < 0;
    }
    uint64_t init_ns = now_ns() - t_spawn;
    if (!init_done || init_failed) {
        uint64_t sd;
        fprintf(stderr, "stdioload: initialize %s%s\n",
                init_failed ? "failed: " : (eof ? "failed: child closed stdout" : "timed out"),
                init_failed ? init_error : "");
        int st = stop_child(&sd);
        if (WIFEXITED(st) || WIFSIGNALED(st))
            fprintf(stderr, "stdioload: child %s %d\n",
                    WIFEXITED(st) ? "exited" : "killed by signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        return 2;
    }
    n = snprintf(body, sizeof body,
                 "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n");
    buf_add(&out, body, (size_t)n);

    /* ---- closed loop ---- */
    uint64_t t0 = now_ns();
    t_measure_start = t0 + (uint64_t)(O.warm * 1e9);
    t_measure_end = t_measure_start + (uint64_t)(O.dur * 1e9);
    uint64_t tmo = (uint64_t)(O.timeout * 1e9), last_check = t0;
    long long ticks0 = -1, ticks1 = -1;
    uint64_t tick_t0 = 0, tick_t1 = 0;
    for (int k = 0; k < O.conc; k++)
        send_call(k);
    flush_out();
    while (!stopping) {
        uint64_t t = now_ns();
        if (ticks0 < 0 && t >= t_measure_start) {
            ticks0 = group_ticks(child);
            tick_t0 = now_ns();
        }
        if (t >= t_measure_end)
            break;
        if (got_signal) {
            fprintf(stderr, "stdioload: signal %d: stopping early\n", (int)got_signal);
            t_measure_end = t; /* report what was measured so far */
            break;
        }
        uint64_t left_ms = (t_measure_end - t) / 1000000 + 1;
        struct pollfd pf[2] = { { from_child, POLLIN, 0 },
                                { to_child, out.len > out.off ? POLLOUT : 0, 0 } };
        int pr = poll(pf, 2, left_ms < 20 ? (int)left_ms : 20);
        if (pr < 0 && errno != EINTR)
            die("poll: %s", strerror(errno));
        if (pr > 0 && (pf[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            if (read_child() < 0) {
                fprintf(stderr, "stdioload: child closed its stdout\n");
                n_err_eof++;
                stopping = 1;
                if (now_ns() < t_measure_end)
                    t_measure_end = now_ns(); /* report what was measured so far */
            }
        }
        if (out.len > out.off)
            flush_out();
        t = now_ns();
        if (t - last_check > 100000000ull) {
            last_check = t;
            for (int k = 0; k < O.conc; k++) {
                slot_t *sl = &slots[k];
                if (sl->id && t - sl->t_start > tmo) {
                    n_err_timeout++;
                    sl->id = 0;
                    if (t < t_measure_end)
                        send_call(k);
                }
            }
            flush_out();
        }
    }
    if (ticks0 >= 0) {
        ticks1 = group_ticks(child);
        tick_t1 = now_ns();
    }
    long hwm_kb = status_kb(child, "VmHWM"), rss_kb = status_kb(child, "VmRSS");

    /* ---- stop ---- */
    uint64_t shutdown_ns = 0;
    int st = stop_child(&shutdown_ns);

    qsort(lat, nlat, sizeof *lat, cmp_u32);
    double measured = (double)(t_measure_end - t_measure_start) / 1e9;
    if (t_measure_end < t_measure_start)
        measured = 0;
    double rps = measured > 0 ? (double)n_done / measured : 0;
    uint64_t errs = n_err_rpc + n_err_id + n_err_timeout + n_err_eof;
    double mean = 0;
    for (size_t i = 0; i < nlat; i++)
        mean += lat[i];
    if (nlat)
        mean /= (double)nlat;
    double cpu_s = -1, cores = -1, cpu_us_call = -1;
    if (ticks0 >= 0 && ticks1 >= ticks0 && tick_t1 > tick_t0) {
        cpu_s = (double)(ticks1 - ticks0) / (double)sysconf(_SC_CLK_TCK);
        cores = cpu_s / ((double)(tick_t1 - tick_t0) / 1e9);
        if (rps > 0)
            cpu_us_call = cores * 1e6 / rps;
    }
    int exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : (WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1);
    fprintf(stderr,
            "stdioload c=%d %.1fs: %" PRIu64
            " calls, %.0f req/s, p50 %.0f us, p90 %.0f us, p99 %.0f us, "
            "max %.0f us, errors %" PRIu64 " (rpc %" PRIu64 ", id %" PRIu64 ", timeout %" PRIu64
            ", eof %" PRIu64 "), late %" PRIu64
            ", server cpu %.2f cores (%.1f us/call), peak rss %ld kB, "
            "child exit %d after %.0f ms\n",
            O.conc, measured, n_done, rps, pct(50), pct(90), pct(99),
            nlat ? (double)lat[nlat - 1] : 0, errs, n_err_rpc, n_err_id, n_err_timeout, n_err_eof,
            n_late, cores, cpu_us_call, hwm_kb, exit_code, (double)shutdown_ns / 1e6);
    if (O.json)
        printf(
            "{\"mode\":\"stdio\",\"c\":%d,\"duration\":%.1f,\"calls\":%" PRIu64 ",\"rps\":%.1f,"
            "\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,\"max_us\":%.0f,\"mean_us\":%.1f,"
            "\"errors\":%" PRIu64 ",\"err_rpc\":%" PRIu64 ",\"err_id\":%" PRIu64
            ",\"err_timeout\":%" PRIu64 ",\"err_eof\":%" PRIu64 ",\"late\":%" PRIu64
            ",\"other_msgs\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"sessions\":1,\"init_ms\":%.1f,"
            "\"server_cpu_s\":%.3f,\"server_cores\":%.3f,\"cpu_us_per_call\":%.2f,"
            "\"child_hwm_kb\":%ld,\"child_rss_kb\":%ld,\"child_exit\":%d,\"shutdown_ms\":%.1f}\n",
            O.conc, measured, n_done, rps, pct(50), pct(90), pct(99),
            nlat ? (double)lat[nlat - 1] : 0, mean, errs, n_err_rpc, n_err_id, n_err_timeout,
            n_err_eof, n_late, n_other, n_sent, (double)init_ns / 1e6, cpu_s, cores, cpu_us_call,
            hwm_kb, rss_kb, exit_code, (double)shutdown_ns / 1e6);
    return errs ? 1 : 0;
}
