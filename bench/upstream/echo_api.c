/*
 * echo_api: a small, fast HTTP/1.1 API fixture for bench/plugin.sh.
 *
 * Single thread, epoll, keep-alive, loopback. `GET /echo?text=X` answers
 * 200 application/json {"text":"X"} (X as sent, percent-encoding kept);
 * anything else 404. Requests have no body (GET only). Prints the port on
 * stdout once listening.
 *
 * Build: gcc -O2 -Wall -o echo_api echo_api.c
 * Usage: echo_api [port]   (0 or none: the kernel picks)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXC  4096
#define BUFSZ 8192

struct conn {
    int fd;
    size_t len;
    char buf[BUFSZ];
};

static void answer(struct conn *c, const char *req, size_t hlen)
{
    char out[BUFSZ + 256], body[BUFSZ];
    const char *sp = memchr(req, ' ', hlen), *q, *end;
    int n, bl;

    if (sp && strncmp(sp + 1, "/echo?text=", 11) == 0) {
        q = sp + 12;
        end = memchr(q, ' ', hlen - (size_t)(q - req));
        if (end == NULL)
            end = q;
        bl = snprintf(body, sizeof(body), "{\"text\":\"%.*s\"}", (int)(end - q), q);
        n = snprintf(out, sizeof(out),
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     "%d\r\n\r\n%s",
                     bl, body);
    } else {
        n = snprintf(out, sizeof(out), "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
    if (write(c->fd, out, (size_t)n) != n) {
        /* loopback with tiny answers: a short write means the peer is gone */
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    struct epoll_event ev, evs[256];
    socklen_t al = sizeof(a);
    int ls, ep, one = 1;

    signal(SIGPIPE, SIG_IGN);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)(argc > 1 ? atoi(argv[1]) : 0));
    ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 512) != 0) {
        perror("echo_api: bind/listen");
        return 1;
    }
    getsockname(ls, (struct sockaddr *)&a, &al);
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    ep = epoll_create1(EPOLL_CLOEXEC);
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    c = calloc(1, sizeof(*c));
                    c->fd = fd;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    ev.events = EPOLLIN;
                    ev.data.ptr = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            ssize_t r = read(c->fd, c->buf + c->len, BUFSZ - c->len);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN)
                    continue;
                close(c->fd);
                free(c);
                continue;
            }
            c->len += (size_t)r;
            for (;;) {
                char *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
                size_t used;
                if (e == NULL) {
                    if (c->len == BUFSZ) { /* header too large */
                        close(c->fd);
                        free(c);
                    }
                    break;
                }
                used = (size_t)(e - c->buf) + 4;
                answer(c, c->buf, used);
                memmove(c->buf, c->buf + used, c->len - used);
                c->len -= used;
            }
        }
    }
}
