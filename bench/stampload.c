/*
 * stampload - a STAMP Session-Sender load generator (loopback only).
 *
 *   stampload -p PORT [-a ADDR] [-r PPS] [-n SOCKETS] [-d SECONDS]
 *             [-w WINDOW] [-t TICK_US] [-e]
 *
 * Sends 44-octet unauthenticated STAMP test packets (RFC 8762 section
 * 4.2.1: sequence number, NTP timestamp T1, Error Estimate, SSID, MBZ)
 * from SOCKETS connected UDP sockets (default 4: four source ports, four
 * sessions, SSID = socket index + 1), each with its own sequence numbers.
 *
 * -r PPS > 0: a fixed rate. A timerfd ticks every TICK_US (default 100;
 *   longer if that is less than one packet a tick) and each tick sends
 *   what is due since the start, spread over the sockets, one sendmmsg
 *   per socket: at 100,000 packets/s, bursts of 10 every 100 us. A
 *   sender more than 10 ms behind skips the rest rather than catching up
 *   in a burst (skipped=).
 * -r 0: capacity. Each socket keeps WINDOW packets (default 32) in
 *   flight and sends one more for each reply: the reflector always has
 *   work queued, and the bounded window keeps the sockets' buffers from
 *   overflowing, so a loss is the reflector's, not the load's.
 *
 * Each reply is checked: 44 octets, its Session-Sender Sequence Number
 * (octets 24..27) one this socket sent and not yet answered, the sender
 * timestamp (28..35) the T1 sent with it, the SSID (14..15) this socket's.
 * The residence time is T3 (octets 4..11) minus T2 (16..23), both NTP
 * 64-bit (seconds since 1900 << 32 | fraction), in a histogram of 10 ns
 * buckets up to RES_MAX_NS (10 ms; longer counts as 10 ms; res_max_ns is
 * exact). The round-trip time is the monotonic clock at the reply's
 * recvmmsg minus at its sendmmsg, in 1 us buckets up to 200 ms.
 *
 * -e: the reflector echoes each datagram unchanged (refudp without -t):
 *   the sequence number is then read at octets 0..3 and the whole reply
 *   must equal the request; there is no residence (res_*=na).
 *
 * A packet is lost when no reply came within LOSS_MS (500 ms) of its
 * send; a reply after that counts as late= instead (so sent = reflected
 * + lost + late), one that matches nothing (unknown or repeated number,
 * wrong length, SSID or T1) as bad=.
 * After SECONDS the sender stops and waits up to DRAIN_MS for the replies
 * in flight. Prints one line of key=value figures:
 *   sent= reflected= lost= late= bad= skipped= pps= (replies received
 *   within the SECONDS, per second) res_p50_ns= res_p99_ns= res_max_ns=
 *   rtt_p50_us= rtt_p99_us= cpu= (this process's user+system time over
 *   the elapsed time: near 1.00 means the load, not the reflector, may
 *   be the bottleneck).
 * Every loop is bounded by the clock, plus a hard alarm. Exit 1 on error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define PKT_LEN 44 /* unauthenticated STAMP base packet */
#define RING 65536 /* packets remembered per socket (2^n) */
#define BATCH 64   /* datagrams per sendmmsg / recvmmsg */
#define MAX_SOCKS 64
#define LOSS_MS 500                 /* no reply after this: lost */
#define DRAIN_MS 200                /* waiting for the last replies */
#define BEHIND_MS 10                /* a rate sender further behind skips */
#define RES_BUCKET_NS 10            /* residence histogram resolution */
#define RES_MAX_NS 10000000         /* residence histogram range */
#define RTT_MAX_US 200000           /* round-trip histogram range */
#define NTP_UNIX_OFFSET 2208988800u /* seconds from 1900 to 1970 */

enum slot_state { SLOT_FREE, SLOT_OUT, SLOT_DONE, SLOT_LOST };

struct slot {
    uint64_t t_ns; /* monotonic send time */
    uint64_t t1;   /* the NTP timestamp sent */
    uint32_t seq;
    uint8_t state;
};

struct sk {
    int fd;
    uint16_t ssid;
    uint32_t next; /* sequence number of the next packet */
    uint32_t tail; /* oldest number not yet answered nor lost */
    unsigned inflight;
    struct slot ring[RING];
};

static struct sk *sks;
static int nsock = 4;
static int echo_mode;
static uint64_t n_sent, n_reflected, n_in_time, n_lost, n_late, n_bad;
static uint64_t n_skipped, res_n, rtt_n, res_max, res_neg;
static uint32_t res_hist[RES_MAX_NS / RES_BUCKET_NS + 1];
static uint32_t rtt_hist[RTT_MAX_US + 1];

static uint64_t
mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t
ntp_now(void)
{
    struct timespec ts;
    uint64_t frac;

    clock_gettime(CLOCK_REALTIME, &ts);
    frac = ((uint64_t)ts.tv_nsec << 32) / 1000000000u;
    return ((uint64_t)(uint32_t)(ts.tv_sec + NTP_UNIX_OFFSET) << 32) | frac;
}

static void
die(const char *what)
{
    perror(what);
    exit(1);
}

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static uint64_t
get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static void
put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

/* The request as sent: also what an echo reflector returns. */
static void
build(uint8_t *p, uint32_t seq, uint64_t t1, uint16_t ssid)
{
    memset(p, 0, PKT_LEN);
    put32(p, seq);
    put64(p + 4, t1);
    /* Error Estimate: S = 0 (not synchronised), Scale 0, Multiplier 1. */
    p[12] = 0;
    p[13] = 1;
    p[14] = (uint8_t)(ssid >> 8);
    p[15] = (uint8_t)ssid;
}

static int
open_sock(const char *addr, int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    struct sockaddr_in me;
    socklen_t len = sizeof(me);

    for (int tries = 0; tries < 16; tries++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);

        if (fd < 0) {
            die("socket");
        }
        sin.sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
            fprintf(stderr, "stampload: bad address %s\n", addr);
            exit(2);
        }
        if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
            die("connect");
        }
        if (getsockname(fd, (struct sockaddr *)&me, &len) < 0) {
            die("getsockname");
        }
        /* echod answers no source port of a service that answers
         * datagrams itself; 37810 is the one in the ephemeral range. */
        if (ntohs(me.sin_port) != 37810) {
            return fd;
        }
        close(fd);
    }
    fprintf(stderr, "stampload: no usable source port\n");
    exit(1);
}

/* Send up to n new packets on s; returns how many the kernel took. */
static unsigned
send_some(struct sk *s, unsigned n)
{
    static uint8_t pkt[BATCH][PKT_LEN];
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    uint64_t t1, t;
    unsigned done = 0;

    while (done < n) {
        unsigned k = n - done < BATCH ? n - done : BATCH;
        int r;

        /* Never reuse a slot still in flight (a window or rate far
         * beyond what RING covers within LOSS_MS). */
        for (unsigned i = 0; i < k; i++) {
            if (s->ring[(s->next + i) % RING].state == SLOT_OUT) {
                k = i;
                break;
            }
        }
        if (k == 0) {
            break;
        }
        t1 = ntp_now();
        memset(mm, 0, sizeof(mm[0]) * k);
        for (unsigned i = 0; i < k; i++) {
            build(pkt[i], s->next + i, t1, s->ssid);
            iov[i].iov_base = pkt[i];
            iov[i].iov_len = PKT_LEN;
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        t = mono_ns();
        r = sendmmsg(s->fd, mm, k, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNREFUSED) {
                break; /* the socket buffer is full, or no one there yet */
            }
            die("sendmmsg");
        }
        for (int i = 0; i < r; i++) {
            struct slot *sl = &s->ring[s->next % RING];

            sl->t_ns = t;
            sl->t1 = t1;
            sl->seq = s->next;
            sl->state = SLOT_OUT;
            s->next++;
        }
        s->inflight += (unsigned)r;
        n_sent += (uint64_t)r;
        done += (unsigned)r;
        if ((unsigned)r < k) {
            break;
        }
    }
    return done;
}

/* Move tail past the answered slots and declare lost the ones older
 * than LOSS_MS. */
static void
expire(struct sk *s, uint64_t now)
{
    while (s->tail != s->next) {
        struct slot *sl = &s->ring[s->tail % RING];

        if (sl->state == SLOT_OUT) {
            /* (sent after now was read: not old either) */
            if (now < sl->t_ns + (uint64_t)LOSS_MS * 1000000) {
                break;
            }
            sl->state = SLOT_LOST;
            s->inflight--;
            n_lost++;
        }
        s->tail++;
    }
}

static void
residence(const uint8_t *p)
{
    uint64_t t3 = get64(p + 4), t2 = get64(p + 16);
    int64_t d = (int64_t)(t3 - t2);
    double ns;
    uint64_t v;

    if (t2 == 0 || t3 == 0) {
        return; /* no timestamps in this reply */
    }
    if (d < 0) {
        res_neg++; /* T3 before T2: a clock step */
        return;
    }
    ns = (double)d * (1e9 / 4294967296.0);
    v = (uint64_t)(ns + 0.5);
    if (v > res_max) {
        res_max = v;
    }
    res_hist[v >= RES_MAX_NS ? RES_MAX_NS / RES_BUCKET_NS
                             : v / RES_BUCKET_NS]++;
    res_n++;
}

/* One reply on s, received at now (monotonic) */
static void
reply(struct sk *s, const uint8_t *p, size_t len, uint64_t now, int in_time)
{
    uint8_t want[PKT_LEN];
    uint32_t seq = get32(echo_mode ? p : p + 24);
    struct slot *sl = &s->ring[seq % RING];
    uint64_t us;

    if (len != PKT_LEN || sl->seq != seq ||
        (sl->state != SLOT_OUT && sl->state != SLOT_LOST)) {
        n_bad++;
        return;
    }
    if (echo_mode) {
        build(want, seq, sl->t1, s->ssid);
        if (memcmp(want, p, PKT_LEN) != 0) {
            n_bad++;
            return;
        }
    } else if (get64(p + 28) != sl->t1 ||
               (uint16_t)(p[14] << 8 | p[15]) != s->ssid) {
        n_bad++;
        return;
    }
    if (sl->state == SLOT_LOST) {
        /* Counted lost at LOSS_MS: now late instead, never reflected. */
        sl->state = SLOT_DONE;
        n_lost--;
        n_late++;
        return;
    }
    sl->state = SLOT_DONE;
    s->inflight--;
    n_reflected++;
    n_in_time += (uint64_t)in_time;
    us = (now - sl->t_ns) / 1000;
    rtt_hist[us > RTT_MAX_US ? RTT_MAX_US : us]++;
    rtt_n++;
    if (!echo_mode) {
        residence(p);
    }
}

/* Read every reply queued on s (bounded by the socket's queue: the
 * sender is the only one filling it). */
static void
drain(struct sk *s, int in_time)
{
    static uint8_t buf[BATCH][PKT_LEN + 16];
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];

    for (int turns = 0; turns < 64; turns++) {
        int r;
        uint64_t now;

        memset(mm, 0, sizeof(mm));
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = buf[i];
            iov[i].iov_len = sizeof(buf[i]);
            mm[i].msg_hdr.msg_iov = &iov[i];
            mm[i].msg_hdr.msg_iovlen = 1;
        }
        r = recvmmsg(s->fd, mm, BATCH, MSG_DONTWAIT, NULL);
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNREFUSED) {
                return;
            }
            die("recvmmsg");
        }
        now = mono_ns();
        for (int i = 0; i < r; i++) {
            reply(s, buf[i], mm[i].msg_len, now, in_time);
        }
        if (r < BATCH) {
            return;
        }
    }
}

static uint64_t
percentile(const uint32_t *hist, size_t nb, uint64_t n, double q)
{
    uint64_t acc = 0;

    for (size_t i = 0; i < nb; i++) {
        acc += hist[i];
        if ((double)acc >= q * (double)n) {
            return i;
        }
    }
    return nb - 1;
}

static double
cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* A tick of the rate sender: what is due since the start, spread over
 * the sockets (rotating which gets the remainder). */
static void
tick(uint64_t start, uint64_t now, uint64_t rate, uint64_t *base)
{
    static int rot;
    uint64_t due = (now - start) / 1000 * rate / 1000000 - *base;
    uint64_t behind = rate * BEHIND_MS / 1000;

    if (due <= n_sent) {
        return;
    }
    due -= n_sent;
    if (due > behind + (uint64_t)nsock * BATCH) {
        /* Too far behind (the CPU was elsewhere): skip, do not burst. */
        n_skipped += due;
        *base += due;
        return;
    }
    for (int i = 0; i < nsock && due > 0; i++) {
        uint64_t share = due / (uint64_t)(nsock - i);
        struct sk *s = &sks[(rot + i) % nsock];
        unsigned got;

        if (share == 0) {
            share = 1;
        }
        got = send_some(s, (unsigned)share);
        due -= share;
        if (got < share) {
            /* The kernel refused: those are not sent; skip them. */
            n_skipped += share - got;
            *base += share - got;
        }
    }
    rot = (rot + 1) % nsock;
}

/* The rate sender's clock: a timerfd ticking every tick_us, in ep under
 * the tag MAX_SOCKS. */
static int
add_timer(int ep, long tick_us)
{
    struct itimerspec it = {
        .it_interval = {.tv_sec = tick_us / 1000000,
                        .tv_nsec = tick_us % 1000000 * 1000},
    };
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = MAX_SOCKS};
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);

    it.it_value = it.it_interval;
    if (tfd < 0 || timerfd_settime(tfd, 0, &it, NULL) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) < 0) {
        die("timerfd");
    }
    return tfd;
}

/* Top the window of s up (capacity mode, while sending). */
static void
refill(struct sk *s, long window)
{
    if (s->inflight < (unsigned)window) {
        send_some(s, (unsigned)window - s->inflight);
    }
}

/* Send and receive from start until end, then wait up to DRAIN_MS for
 * the replies still in flight. Returns when it stopped (monotonic). */
static uint64_t
run(int ep, int tfd, uint64_t rate, long window, uint64_t start, uint64_t end)
{
    struct epoll_event evs[MAX_SOCKS + 1];
    uint64_t last_expire = start, base = 0;

    if (rate == 0) {
        for (int i = 0; i < nsock; i++) {
            refill(&sks[i], window);
        }
    }
    for (;;) {
        uint64_t now = mono_ns();
        int busy = 0, n;

        if (now >= end) {
            for (int i = 0; i < nsock; i++) {
                busy |= sks[i].inflight > 0;
            }
            if (!busy || now >= end + (uint64_t)DRAIN_MS * 1000000) {
                return now;
            }
        }
        n = epoll_wait(ep, evs, MAX_SOCKS + 1, 10);
        if (n < 0 && errno != EINTR) {
            die("epoll_wait");
        }
        now = mono_ns();
        for (int i = 0; i < n; i++) {
            uint64_t ticks;
            struct sk *s;

            if (evs[i].data.u32 == MAX_SOCKS) {
                if (read(tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN) {
                    die("read timerfd");
                }
                if (now < end) {
                    tick(start, now, rate, &base);
                }
                continue;
            }
            s = &sks[evs[i].data.u32];
            drain(s, now <= end);
            if (rate == 0 && now < end) {
                refill(s, window);
            }
        }
        if (now - last_expire >= 10000000) {
            /* Every 10 ms: losses free their window places. */
            for (int i = 0; i < nsock; i++) {
                expire(&sks[i], now);
                if (rate == 0 && now < end) {
                    refill(&sks[i], window);
                }
            }
            last_expire = now;
        }
    }
}

static void
report(uint64_t rate, double secs, double cpu)
{
    size_t nb = RES_MAX_NS / RES_BUCKET_NS + 1;
    char res[128];

    if (echo_mode || res_n == 0) {
        snprintf(res, sizeof(res), "res_p50_ns=na res_p99_ns=na res_max_ns=na");
    } else {
        snprintf(res, sizeof(res),
                 "res_p50_ns=%llu res_p99_ns=%llu res_max_ns=%llu",
                 (unsigned long long)percentile(res_hist, nb, res_n, 0.50) *
                     RES_BUCKET_NS,
                 (unsigned long long)percentile(res_hist, nb, res_n, 0.99) *
                     RES_BUCKET_NS,
                 (unsigned long long)res_max);
    }
    printf(
        "mode=%s rate=%llu sockets=%d secs=%.2f sent=%llu reflected=%llu "
        "lost=%llu late=%llu bad=%llu skipped=%llu pps=%.0f %s "
        "res_neg=%llu rtt_p50_us=%llu rtt_p99_us=%llu cpu=%.2f\n",
        echo_mode ? "echo" : "stamp", (unsigned long long)rate, nsock, secs,
        (unsigned long long)n_sent, (unsigned long long)n_reflected,
        (unsigned long long)n_lost, (unsigned long long)n_late,
        (unsigned long long)n_bad, (unsigned long long)n_skipped,
        (double)n_in_time / secs, res, (unsigned long long)res_neg,
        (unsigned long long)percentile(rtt_hist, RTT_MAX_US + 1, rtt_n, 0.50),
        (unsigned long long)percentile(rtt_hist, RTT_MAX_US + 1, rtt_n, 0.99),
        cpu);
}

int
main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 0, secs = 5, opt, ep, tfd = -1;
    long window = 32, tick_us = 100;
    uint64_t rate = 0, start, stop;
    double cpu0;

    while ((opt = getopt(argc, argv, "a:p:r:n:d:w:t:e")) != -1) {
        switch (opt) {
        case 'a':
            addr = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'r':
            rate = strtoull(optarg, NULL, 10);
            break;
        case 'n':
            nsock = atoi(optarg);
            break;
        case 'd':
            secs = atoi(optarg);
            break;
        case 'w':
            window = atol(optarg);
            break;
        case 't':
            tick_us = atol(optarg);
            break;
        case 'e':
            echo_mode = 1;
            break;
        default:
            fprintf(stderr, "usage: stampload -p PORT [-a ADDR] [-r PPS] "
                            "[-n SOCKETS] [-d SECS] [-w WINDOW] [-t TICK_US] "
                            "[-e]\n");
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || secs <= 0 || nsock < 1 ||
        nsock > MAX_SOCKS || window < 1 || window > RING / 2 || tick_us < 10 ||
        tick_us > 1000000 || rate > 100000000) {
        fprintf(stderr, "stampload: bad arguments\n");
        return 2;
    }
    alarm((unsigned)secs + 30); /* hard deadline */
    sks = calloc((size_t)nsock, sizeof(*sks));
    ep = epoll_create1(0);
    if (sks == NULL || ep < 0) {
        die("setup");
    }
    for (int i = 0; i < nsock; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};

        sks[i].fd = open_sock(addr, port);
        sks[i].ssid = (uint16_t)(i + 1);
        if (epoll_ctl(ep, EPOLL_CTL_ADD, sks[i].fd, &ev) < 0) {
            die("epoll_ctl");
        }
    }
    if (rate > 0) {
        /* Below one packet a tick, tick once a packet instead. */
        if ((uint64_t)tick_us < 1000000 / rate) {
            tick_us = (long)(1000000 / rate);
        }
        tfd = add_timer(ep, tick_us);
    }
    cpu0 = cpu_s();
    start = mono_ns();
    stop =
        run(ep, tfd, rate, window, start, start + (uint64_t)secs * 1000000000u);
    for (int i = 0; i < nsock; i++) {
        /* Whatever is still out after the drain is lost. */
        n_lost += sks[i].inflight;
    }
    report(rate, secs,
           stop > start ? (cpu_s() - cpu0) / ((double)(stop - start) / 1e9)
                        : 0.0);
    return 0;
}
