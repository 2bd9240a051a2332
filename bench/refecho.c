/*
 * refecho - the reference for echod's benchmark: the barest epoll echo
 * loop (level-triggered, one 64 KiB buffer, no queue, no limits, no
 * config, no logging). When the kernel refuses part of a reply it waits
 * for that one socket with poll(2), stalling everyone else, which a real
 * daemon must never do; for a benchmark on loopback it is the upper bound
 * of what one thread can do.
 *
 *   refecho PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
    static char buf[1 << 16];
    struct sockaddr_in sin = { .sin_family = AF_INET };
    struct epoll_event ev, evs[256];
    int lfd, ep, one = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: refecho PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sin.sin_port = htons((uint16_t)atoi(argv[1]));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        listen(lfd, 4096) < 0) {
        perror("refecho: listen");
        return 1;
    }
    ep = epoll_create1(0);
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    ev.events = EPOLLIN;
                    ev.data.fd = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof(buf));
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) {
                    continue;
                }
                close(fd);
                continue;
            }
            for (ssize_t off = 0; off < r;) {
                ssize_t w = send(fd, buf + off, (size_t)(r - off),
                                 MSG_NOSIGNAL);
                if (w > 0) {
                    off += w;
                } else if (w < 0 && errno == EAGAIN) {
                    struct pollfd p = { .fd = fd, .events = POLLOUT };
                    poll(&p, 1, 1000);
                } else {
                    break;
                }
            }
        }
    }
}
