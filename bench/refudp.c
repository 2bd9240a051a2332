/*
 * refudp - the reference for echod's STAMP benchmark: the barest UDP
 * reflector. One thread, one nonblocking socket on 127.0.0.1:PORT, a
 * level-triggered epoll wait, then recvmmsg batches of BATCH (default
 * 16, echod's UDP_BATCH) answered with one sendmmsg each, until a short
 * batch says the queue is empty: the syscall pattern of echod's UDP
 * engine, with none of its guards, limits, counters or per-reply work.
 *
 *   refudp [-t] [-s] [-b BATCH] PORT
 *
 * Without -t each datagram goes back unchanged. With -t the socket asks
 * for the kernel's software receive timestamps (SO_TIMESTAMPING, as
 * echod's stamp sockets do) and a datagram of 44 octets or more gets the
 * least a stateless STAMP reflector must write (RFC 8762 section 4.3.1):
 * the sender's sequence number, timestamp and Error Estimate copied to
 * octets 24..37, T2 (the kernel's receive stamp) at 16..23 and T3 at
 * 4..11, both NTP. T3 is read once per batch, just before the sendmmsg:
 * the cheapest honest choice for a bare loop, though it makes every
 * reply's T3 a little early but the first's (echod reads T3 before each
 * reply's own sendmsg). TTL, TLVs and the Error Estimate's meaning are
 * left alone.
 *
 * With -s each reply gets a sendmsg of its own, and with -t its own T3
 * read just before it: echod's way (a STAMP reply's T3 is its own send
 * time), so the difference to -t alone is the price of that choice; a
 * reply the kernel refuses is then dropped.
 *
 * A send the kernel refuses is retried after a poll for
 * POLLOUT (the rest dropped if none comes within 1 s), which stalls the
 * loop as a real daemon must never do; on loopback it hardly happens.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH_MAX 64
#define DGRAM_MAX 2048 /* loopback test packets only */
#define NTP_UNIX_OFFSET 2208988800u

union ctl {
    char buf[CMSG_SPACE(sizeof(struct scm_timestamping))];
    struct cmsghdr align;
};

/* One batch: what recvmmsg fills and sendmmsg sends back. */
static uint8_t data[BATCH_MAX][DGRAM_MAX];
static union ctl ctl[BATCH_MAX];
static struct mmsghdr in[BATCH_MAX], out[BATCH_MAX];
static struct iovec iov[BATCH_MAX], oiov[BATCH_MAX];
static struct sockaddr_in peer[BATCH_MAX];
static int stamps, single, batch = 16;

static void
put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t
ntp(const struct timespec *ts)
{
    uint64_t frac = ((uint64_t)ts->tv_nsec << 32) / 1000000000u;

    return ((uint64_t)(uint32_t)(ts->tv_sec + NTP_UNIX_OFFSET) << 32) | frac;
}

/* T3, now, into a reply: just before its own send. */
static void
stamp_t3(uint8_t *p)
{
    struct timespec t3;

    clock_gettime(CLOCK_REALTIME, &t3);
    put64(p + 4, ntp(&t3));
}

static void
t2_of(struct msghdr *m, struct timespec *t2)
{
    t2->tv_sec = 0;
    t2->tv_nsec = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL;
         c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPING &&
            c->cmsg_len >= CMSG_LEN(sizeof(struct scm_timestamping))) {
            struct scm_timestamping t;

            memcpy(&t, CMSG_DATA(c), sizeof(t));
            *t2 = t.ts[0]; /* software */
        }
    }
}

/* Receive up to batch datagrams; returns how many (0: none queued). */
static int
receive(int fd)
{
    int n;

    memset(in, 0, sizeof(in[0]) * (size_t)batch);
    for (int i = 0; i < batch; i++) {
        iov[i].iov_base = data[i];
        iov[i].iov_len = sizeof(data[i]);
        in[i].msg_hdr.msg_name = &peer[i];
        in[i].msg_hdr.msg_namelen = sizeof(peer[i]);
        in[i].msg_hdr.msg_iov = &iov[i];
        in[i].msg_hdr.msg_iovlen = 1;
        if (stamps) {
            in[i].msg_hdr.msg_control = ctl[i].buf;
            in[i].msg_hdr.msg_controllen = sizeof(ctl[i].buf);
        }
    }
    n = recvmmsg(fd, in, (unsigned)batch, 0, NULL);
    return n > 0 ? n : 0; /* EAGAIN (or EINTR): back to the wait */
}

/* The replies to the n datagrams received: out[0..n), and with -t the
 * STAMP fields but T3 written. */
static void
build(int n)
{
    struct timespec t2;

    memset(out, 0, sizeof(out[0]) * (size_t)n);
    for (int i = 0; i < n; i++) {
        uint8_t *p = data[i];

        oiov[i].iov_base = p;
        oiov[i].iov_len = in[i].msg_len;
        out[i].msg_hdr.msg_name = &peer[i];
        out[i].msg_hdr.msg_namelen = in[i].msg_hdr.msg_namelen;
        out[i].msg_hdr.msg_iov = &oiov[i];
        out[i].msg_hdr.msg_iovlen = 1;
        if (stamps && in[i].msg_len >= 44) {
            t2_of(&in[i].msg_hdr, &t2);
            memcpy(p + 24, p, 14); /* seq, T1, Error Estimate */
            put64(p + 16, ntp(&t2));
        }
    }
}

/* Send out[0..n): one sendmsg each with its own T3 (-s), or one T3 for
 * the batch and sendmmsg. */
static void
send_all(int fd, int n)
{
    if (single) {
        for (int i = 0; i < n; i++) {
            if (stamps && in[i].msg_len >= 44) {
                stamp_t3(data[i]);
            }
            while (sendmsg(fd, &out[i].msg_hdr, 0) < 0 && errno == EINTR) {
            }
        }
        return;
    }
    if (stamps) {
        struct timespec t3;
        uint64_t t3n;

        clock_gettime(CLOCK_REALTIME, &t3);
        t3n = ntp(&t3);
        for (int i = 0; i < n; i++) {
            if (in[i].msg_len >= 44) {
                put64(data[i] + 4, t3n);
            }
        }
    }
    for (int k = 0; k < n;) {
        int r = sendmmsg(fd, out + k, (unsigned)(n - k), 0);

        if (r > 0) {
            k += r;
        } else if (r < 0 && errno == EAGAIN) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};

            if (poll(&p, 1, 1000) == 0) {
                return; /* not writable for 1 s: drop the rest */
            }
        } else if (r < 0 && errno != EINTR) {
            k++; /* this reply's problem: skip it */
        }
    }
}

static int
setup(const char *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct epoll_event ev = {.events = EPOLLIN};
    int fd, ep;

    sin.sin_port = htons((uint16_t)atoi(port));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        perror("refudp: bind");
        exit(1);
    }
    if (stamps) {
        int ts = SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;

        if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &ts, sizeof(ts)) < 0) {
            perror("refudp: SO_TIMESTAMPING");
            exit(1);
        }
    }
    ep = epoll_create1(0);
    ev.data.fd = fd;
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        perror("refudp: epoll");
        exit(1);
    }
    return ep;
}

int
main(int argc, char **argv)
{
    int opt, fd, ep;

    while ((opt = getopt(argc, argv, "tsb:")) != -1) {
        switch (opt) {
        case 't':
            stamps = 1;
            break;
        case 's':
            single = 1;
            break;
        case 'b':
            batch = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: refudp [-t] [-s] [-b BATCH] PORT\n");
            return 2;
        }
    }
    if (optind != argc - 1 || batch < 1 || batch > BATCH_MAX) {
        fprintf(stderr, "usage: refudp [-t] [-s] [-b 1..%d] PORT\n", BATCH_MAX);
        return 2;
    }
    ep = setup(argv[optind]);
    for (;;) {
        struct epoll_event got;
        int n;

        if (epoll_wait(ep, &got, 1, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("refudp: epoll_wait");
            return 1;
        }
        fd = got.data.fd;
        /* Until a short batch: the queue was empty then. */
        do {
            n = receive(fd);
            build(n);
            send_all(fd, n);
        } while (n == batch);
    }
}
