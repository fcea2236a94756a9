/*
 * httpload: a closed-loop HTTP/1.1 GET load generator (the baseline of
 * bench/plugin.sh: the API fixture called directly, like curl in a loop
 * but without process start-up per request).
 *
 * -c N threads, each with one keep-alive connection to 127.0.0.1:PORT,
 * send `GET PATH` and read one Content-Length response, for -w warm-up
 * plus -d measured seconds. A response must be 200 and contain -t TEXT.
 * Output with -j: one JSON line like mcpload's (calls, rps, p50_us,
 * p99_us, errors).
 *
 * Build: gcc -O2 -Wall -pthread -o httpload httpload.c
 * Usage: httpload -p PORT -P /echo?text=hello -t hello -c 16 -d 4 -w 1 -j
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port, conc = 1, json;
static double dur = 4, warm = 1;
static const char *path = "/echo?text=hello", *text = "hello";
static uint64_t t_start, t_measure, t_end;

struct worker {
    pthread_t th;
    uint64_t *lat;
    size_t nlat, cap;
    uint64_t errors;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int dial(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* one request/response; 0 ok, -1 error */
static int exchange(int fd, const char *req, size_t reqlen)
{
    char buf[16384];
    size_t len = 0;
    long clen = -1;
    char *hend = NULL;
    if (write(fd, req, reqlen) != (ssize_t)reqlen)
        return -1;
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        if (hend == NULL && (hend = strstr(buf, "\r\n\r\n")) != NULL) {
            char *cl = strcasestr(buf, "Content-Length:");
            clen = cl && cl < hend ? strtol(cl + 15, NULL, 10) : 0;
        }
        if (hend && len >= (size_t)(hend - buf) + 4 + (size_t)clen)
            break;
        if (len >= sizeof(buf) - 1)
            return -1;
    }
    return strncmp(buf, "HTTP/1.1 200", 12) == 0 && strstr(hend, text) ? 0 : -1;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    char req[1024];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", path, port);
    int fd = dial();
    while (now_ns() < t_end) {
        uint64_t t0 = now_ns();
        if (fd < 0 || exchange(fd, req, (size_t)n) != 0) {
            w->errors += t0 >= t_measure;
            if (fd >= 0)
                close(fd);
            fd = dial();
            continue;
        }
        if (t0 >= t_measure) {
            if (w->nlat == w->cap) {
                w->cap = w->cap ? w->cap * 2 : 65536;
                w->lat = realloc(w->lat, w->cap * sizeof(*w->lat));
            }
            w->lat[w->nlat++] = now_ns() - t0;
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "p:P:t:c:d:w:j")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'P':
            path = optarg;
            break;
        case 't':
            text = optarg;
            break;
        case 'c':
            conc = atoi(optarg);
            break;
        case 'd':
            dur = atof(optarg);
            break;
        case 'w':
            warm = atof(optarg);
            break;
        case 'j':
            json = 1;
            break;
        default:
            fprintf(stderr,
                    "usage: httpload -p PORT [-P PATH] [-t TEXT] [-c N] [-d S] [-w S] [-j]\n");
            return 2;
        }
    }
    if (port <= 0 || conc < 1 || conc > 1024 || dur <= 0)
        return 2;
    struct worker *w = calloc((size_t)conc, sizeof(*w));
    t_start = now_ns();
    t_measure = t_start + (uint64_t)(warm * 1e9);
    t_end = t_measure + (uint64_t)(dur * 1e9);
    for (int i = 0; i < conc; i++)
        pthread_create(&w[i].th, NULL, run, &w[i]);
    size_t total = 0;
    uint64_t errors = 0;
    for (int i = 0; i < conc; i++) {
        pthread_join(w[i].th, NULL);
        total += w[i].nlat;
        errors += w[i].errors;
    }
    uint64_t *all = malloc((total ? total : 1) * sizeof(*all));
    size_t k = 0;
    double sum = 0;
    for (int i = 0; i < conc; i++)
        for (size_t j = 0; j < w[i].nlat; j++) {
            all[k++] = w[i].lat[j];
            sum += (double)w[i].lat[j];
        }
    qsort(all, total, sizeof(*all), cmp);
#define PCT(p) (total ? (double)all[(size_t)((double)(total - 1) * (p) / 100.0)] / 1000.0 : 0)
    fprintf(stderr, "httpload c=%d: %zu calls, %.0f req/s, p50 %.0f us, p99 %.0f us, errors %lu\n",
            conc, total, (double)total / dur, PCT(50), PCT(99), (unsigned long)errors);
    if (json)
        printf("{\"mode\":\"http-get\",\"c\":%d,\"duration\":%.1f,\"calls\":%zu,\"rps\":%.1f,"
               "\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,\"max_us\":%.0f,\"mean_us\":%.1f,"
               "\"errors\":%lu,\"sessions\":%d}\n",
               conc, dur, total, (double)total / dur, PCT(50), PCT(90), PCT(99),
               total ? (double)all[total - 1] / 1000.0 : 0,
               total ? sum / (double)total / 1000.0 : 0, (unsigned long)errors, conc);
    return 0;
}
