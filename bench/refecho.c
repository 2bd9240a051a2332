/*
 * refecho - the reference for echod's benchmark: the barest epoll echo
 * loop (level-triggered, one 64 KiB buffer, no queue, no limits, no
 * config, no logging). When the kernel refuses part of a reply it waits
 * for that one socket with poll(2), stalling everyone else, which a real
 * daemon must never do; for a benchmark on loopback it is the upper bound
 * of what one thread can do.
 *
 *   refecho PORT [THREADS]
 *
 * With THREADS > 1 (default 1), each thread has its own SO_REUSEPORT
 * listening socket and its own epoll loop, as echod's workers do: the
 * floor for a multi-threaded echo server on the same machine.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_THREADS 256

static void *
serve(void *arg)
{
    static __thread char buf[1 << 16];
    struct epoll_event ev, evs[256];
    int lfd = (int)(intptr_t)arg, ep, one = 1;

    ep = epoll_create1(0);
    if (ep < 0) {
        perror("refecho: epoll_create1");
        exit(1);
    }
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
    return NULL;
}

int
main(int argc, char **argv)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    int lfds[MAX_THREADS], nthreads = 1, one = 1;
    pthread_t tid;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: refecho PORT [THREADS]\n");
        return 2;
    }
    if (argc == 3) {
        nthreads = atoi(argv[2]);
        if (nthreads < 1 || nthreads > MAX_THREADS) {
            fprintf(stderr, "refecho: THREADS is 1..%d\n", MAX_THREADS);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    sin.sin_port = htons((uint16_t)atoi(argv[1]));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Every socket listens before any thread runs. */
    for (int i = 0; i < nthreads; i++) {
        lfds[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        setsockopt(lfds[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(lfds[i], SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        if (bind(lfds[i], (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
            listen(lfds[i], 4096) < 0) {
            perror("refecho: listen");
            return 1;
        }
    }
    for (int i = 1; i < nthreads; i++) {
        if (pthread_create(&tid, NULL, serve, (void *)(intptr_t)lfds[i])) {
            fprintf(stderr, "refecho: pthread_create failed\n");
            return 1;
        }
    }
    serve((void *)(intptr_t)lfds[0]);
    return 0;
}
