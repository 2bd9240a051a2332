/*
 * echoload - load generator for echo servers (loopback only).
 *
 *   echoload -p PORT [-a ADDR] [-m pingpong|stream|hold] [-c CONNS]
 *            [-s SIZE] [-d SECONDS] [-b SOURCE_BASE]
 *
 * pingpong: each connection sends SIZE bytes, waits for the same SIZE
 *   bytes back (checked), records the round-trip time, repeats. The
 *   round-trip times go in a histogram of 1 us buckets up to HIST_US
 *   (200 ms; a longer one counts as 200 ms): p50, p99 and p99.9 are
 *   read from it, exact to the microsecond; max_us is exact.
 * stream:   each connection keeps up to 256 KiB in flight and reads the
 *   echo back (checked), counting bytes.
 * hold:     opens CONNS connections, echoes one byte on each to be sure
 *   the server registered it, prints "holding N", then holds them for
 *   SECONDS (for memory-per-connection measurements).
 *
 * Prints one line of key=value figures (msgs= round trips done, bytes=
 * bytes echoed back: the exact work behind the rate; pingpong adds
 * p50_us= p99_us= p999_us= max_us=). Every run stops by
 * itself after SECONDS (and a hard alarm). Exit 1 on any mismatch or
 * error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WINDOW (256 * 1024)
#define HIST_US 200000

struct c {
    int fd;
    uint64_t sent;  /* bytes sent in total */
    uint64_t recvd; /* bytes received in total */
    uint64_t t0;    /* pingpong: when the current message started */
};

static unsigned char pattern[1 << 16];
static uint32_t hist[HIST_US + 1];

static uint64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void
die(const char *what)
{
    perror(what);
    exit(1);
}

static int
dial(const char *addr, int port, int idx, const char *srcbase)
{
    struct sockaddr_in sin = { .sin_family = AF_INET };
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    if (fd < 0) {
        die("socket");
    }
    if (srcbase != NULL) {
        /* Spread over 127.0.0.x sources: past the ephemeral port range. */
        struct sockaddr_in src = { .sin_family = AF_INET };
        in_addr_t base = ntohl(inet_addr(srcbase));
        src.sin_addr.s_addr = htonl(base + (in_addr_t)(idx / 20000));
        setsockopt(fd, IPPROTO_IP, 24 /* IP_BIND_ADDRESS_NO_PORT */, &one,
                   sizeof(one));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            die("bind");
        }
    }
    sin.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, addr, &sin.sin_addr);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        die("connect");
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

/* Check echoed bytes against the pattern at stream offset off. */
static void
check(const unsigned char *buf, size_t n, uint64_t off)
{
    for (size_t i = 0; i < n; i++) {
        if (buf[i] != pattern[(off + i) % sizeof(pattern)]) {
            fprintf(stderr, "echoload: mismatch at offset %llu\n",
                    (unsigned long long)(off + i));
            exit(1);
        }
    }
}

/* The smallest bucket (us) with at least q of the n samples at or below
 * it, q in (0, 1]. */
static uint64_t
percentile(uint64_t n, double q)
{
    uint64_t acc = 0;

    for (uint64_t us = 0; us < HIST_US; us++) {
        acc += hist[us];
        if ((double)acc >= q * (double)n) {
            return us;
        }
    }
    return HIST_US;
}

static void
pump_send(struct c *c, uint64_t limit)
{
    while (c->sent < limit) {
        size_t off = c->sent % sizeof(pattern);
        size_t n = sizeof(pattern) - off;
        if (n > limit - c->sent) {
            n = limit - c->sent;
        }
        ssize_t w = send(c->fd, pattern + off, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN) {
                return;
            }
            die("send");
        }
        c->sent += (uint64_t)w;
    }
}

int
main(int argc, char **argv)
{
    const char *addr = "127.0.0.1", *mode = "pingpong", *srcbase = NULL;
    int port = 0, conns = 1, secs = 5, opt, ep;
    size_t size = 64;
    static unsigned char buf[1 << 16];
    struct epoll_event evs[512];
    struct rlimit rl;

    while ((opt = getopt(argc, argv, "a:p:m:c:s:d:b:")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'm': mode = optarg; break;
        case 'c': conns = atoi(optarg); break;
        case 's': size = (size_t)atol(optarg); break;
        case 'd': secs = atoi(optarg); break;
        case 'b': srcbase = optarg; break;
        default:
            fprintf(stderr, "usage: echoload -p PORT [-a ADDR] [-m "
                    "pingpong|stream|hold] [-c N] [-s SIZE] [-d SECS] "
                    "[-b SRC]\n");
            return 2;
        }
    }
    if (port <= 0 || conns <= 0 || size == 0 || secs <= 0) {
        fprintf(stderr, "echoload: bad arguments\n");
        return 2;
    }
    alarm((unsigned)secs + 60); /* hard deadline */
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    for (size_t i = 0; i < sizeof(pattern); i++) {
        pattern[i] = (unsigned char)(i * 131 + i / 256);
    }
    struct c *cs = calloc((size_t)conns, sizeof(*cs));
    ep = epoll_create1(0);
    if (cs == NULL || ep < 0) {
        die("setup");
    }
    for (int i = 0; i < conns; i++) {
        cs[i].fd = dial(addr, port, i, srcbase);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &cs[i] };
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    }
    int hold = strcmp(mode, "hold") == 0;
    int stream = strcmp(mode, "stream") == 0;
    if (hold) {
        size = 1;
    }
    uint64_t start = now_us(), end = start + (uint64_t)secs * 1000000;
    uint64_t rtts = 0, done_hold = 0, max_us = 0;
    for (int i = 0; i < conns; i++) {
        cs[i].t0 = now_us();
        pump_send(&cs[i], stream ? WINDOW : size);
    }
    for (;;) {
        uint64_t t = now_us();
        if (hold ? done_hold == (uint64_t)conns : t >= end) {
            break;
        }
        int n = epoll_wait(ep, evs, 512, 100);
        for (int i = 0; i < n; i++) {
            struct c *c = evs[i].data.ptr;
            ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) {
                    continue;
                }
                fprintf(stderr, "echoload: connection closed early\n");
                return 1;
            }
            check(buf, (size_t)r, c->recvd);
            c->recvd += (uint64_t)r;
            if (hold) {
                if (c->recvd == 1) {
                    done_hold++;
                }
            } else if (stream) {
                pump_send(c, c->recvd + WINDOW);
            } else if (c->recvd == c->sent) {
                uint64_t now = now_us(), us = now - c->t0;
                hist[us > HIST_US ? HIST_US : us]++;
                if (us > max_us) {
                    max_us = us;
                }
                rtts++;
                c->t0 = now;
                pump_send(c, c->sent + size);
            }
        }
    }
    double el = (double)(now_us() - start) / 1e6;
    if (hold) {
        printf("holding %d\n", conns);
        fflush(stdout);
        sleep((unsigned)secs);
        return 0;
    }
    uint64_t bytes = 0;
    for (int i = 0; i < conns; i++) {
        bytes += cs[i].recvd;
    }
    if (stream) {
        printf("mode=stream conns=%d secs=%.2f MiB/s=%.1f bytes=%llu\n",
               conns, el, (double)bytes / el / (1 << 20),
               (unsigned long long)bytes);
        return 0;
    }
    printf("mode=pingpong conns=%d size=%zu secs=%.2f rtt/s=%.0f msgs=%llu "
           "p50_us=%llu p99_us=%llu p999_us=%llu max_us=%llu\n", conns, size,
           el, (double)rtts / el, (unsigned long long)rtts,
           (unsigned long long)percentile(rtts, 0.50),
           (unsigned long long)percentile(rtts, 0.99),
           (unsigned long long)percentile(rtts, 0.999),
           (unsigned long long)max_us);
    return 0;
}
