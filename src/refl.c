/*
 * refl.c - the STAMP session-reflector on a worker (refl.h).
 *
 * Owns: each worker's struct refl (the clock's state read at most once a
 * second, the stateful session table, the residence histogram). Never
 * sends: udp.c hands it a datagram that passed the guards and sends what
 * it builds. Invariants: T2 is the kernel's receive stamp (SO_TIMESTAMPING
 * software), read from the datagram's control data, not a clock read
 * after the wake-up; T3 is read after everything else is built, right
 * before the sendmsg; a session is touched only once stamp_reflect said
 * the request is good (an authenticated request is checked first).
 */
#include <errno.h>
#include <time.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "counter.h"
#include "log.h"
#include "refl.h"
#include "sock.h"

#define REFL_TX_BITS 20    /* a socket's stamp counter in an id's low bits */
#define REFL_EPOCH_BITS 4  /* its resyncs, above them; the slot on top */

/* Transmit stamps only where a reply asks (refl_tx_ctl): a stateless
 * reply leaves nothing in the error queue, and the counter of OPT_ID
 * counts just the stateful replies. */
#define REFL_TS_FLAGS                                                         \
    (SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE |               \
     SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY)

int
refl_sock_setup(int fd, int family)
{
    int ts = REFL_TS_FLAGS;
    int one = 1;

    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &ts, sizeof(ts)) < 0) {
        return -1;
    }
    if (family == AF_INET6) {
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one,
                       sizeof(one)) < 0 ||
            setsockopt(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof(one)) <
                0) {
            return -1;
        }
        /* IPv4 on a dual-stack socket: harmless if v6-only. */
        (void)setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof(one));
        (void)setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof(one));
        return 0;
    }
    if (setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof(one)) < 0 ||
        setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof(one)) < 0) {
        return -1;
    }
    return 0;
}

void
refl_fini(struct refl *r)
{
    if (r->sess_ok) {
        stss_fini(&r->sess);
        r->sess_ok = false;
    }
}

static int
refl_cmsg_int(const struct cmsghdr *c)
{
    int v = 0;

    if (c->cmsg_len >= CMSG_LEN(sizeof(int))) {
        memcpy(&v, CMSG_DATA(c), sizeof(v));
    } else if (c->cmsg_len >= CMSG_LEN(1)) {
        v = *(const uint8_t *)CMSG_DATA(c);
    }
    return v;
}

void
refl_rx_parse(struct msghdr *m, struct refl_rx *rx)
{
    memset(rx, 0, sizeof(*rx));
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL;
         c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPING &&
            c->cmsg_len >= CMSG_LEN(sizeof(struct scm_timestamping))) {
            struct scm_timestamping t;

            memcpy(&t, CMSG_DATA(c), sizeof(t));
            rx->t2 = t.ts[0]; /* [0]: software */
            rx->have_t2 = t.ts[0].tv_sec != 0 || t.ts[0].tv_nsec != 0;
        } else if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
                   (c->cmsg_level == IPPROTO_IPV6 &&
                    c->cmsg_type == IPV6_HOPLIMIT)) {
            rx->ttl = (uint8_t)refl_cmsg_int(c);
            rx->have_ttl = true;
        } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS &&
                   c->cmsg_len >= CMSG_LEN(1)) {
            rx->tos = *(const uint8_t *)CMSG_DATA(c);
        } else if (c->cmsg_level == IPPROTO_IPV6 &&
                   c->cmsg_type == IPV6_TCLASS) {
            rx->tos = (uint8_t)refl_cmsg_int(c);
        }
    }
}

/* The clock's state for the Error Estimate: a system call, so at most
 * once every REFL_CLOCK_MS of the loop's clock. */
static void
refl_clock(struct refl *r, uint64_t now_ms)
{
    if (r->clock_at == 0 || now_ms - r->clock_at >= REFL_CLOCK_MS) {
        if (stamp_clock_read(&r->clock, false) < 0 && !r->clock_warned) {
            /* A sandbox that forbids adjtimex (systemd's ProtectClock=)
             * would make every reply say "unsynchronised": say why. */
            log_warn("STAMP: cannot read the clock's state (adjtimex; under "
                     "systemd, add the drop-in echod-stamp-clock.conf from "
                     "the documentation's examples): replies say the clock "
                     "is not synchronised");
            r->clock_warned = true;
        }
        r->clock_at = now_ms != 0 ? now_ms : 1;
    }
}

/* Stateful: the session of this request and what its reply says of it;
 * NULL when the table has no place (every way of its set busy). */
static struct stss_sess *
refl_session(struct refl *r, const uint8_t *data, size_t len, bool auth,
             const struct sockaddr *local, const struct sockaddr *peer,
             uint64_t now_ms, struct stamp_params *p)
{
    struct stss_sess *s;

    if (!r->sess_ok) {
        if (stss_init(&r->sess, STSS_SLOTS, REFL_SESSION_IDLE_MS) < 0) {
            return NULL;
        }
        r->sess_ok = true;
    }
    s = stss_get(&r->sess, peer, local, stamp_ssid(data, len, auth), now_ms);
    if (s == NULL) {
        return NULL;
    }
    p->seq = s->next_seq;
    p->rx_count = s->rx; /* stss_get counted this one */
    p->tx_count = s->tx + 1;
    p->fu_valid = stss_followup(s, &p->fu_seq, &p->fu_time);
    p->fu_method = STAMP_TSM_SW;
    return s;
}

/* PTP timestamps count TAI: the kernel's clocks are UTC, and the TAI
 * offset it knows (from the NTP daemon) goes on top. */
static int32_t
refl_ptp(struct refl *r, struct stamp_params *p)
{
    p->ptp = true;
    p->clock = stamp_clock_ptp(r->clock);
    /* Where adjtimex is denied, refl_clock has said why already. */
    if (r->clock.tai <= 0 && !r->tai_warned && !r->clock_warned) {
        log_warnx("STAMP: PTP timestamps, but the kernel does not know TAI "
                  "- UTC (the time daemon sets it: chrony with leapsectz, "
                  "ntpd with a leap file, linuxptp's phc2sys): they are UTC, "
                  "and replies say the clock is not synchronised");
        r->tai_warned = true;
    }
    return r->clock.tai > 0 ? r->clock.tai : 0;
}

enum stamp_drop
refl_build(struct refl *r, const struct refl_opts *o, const void *key,
           size_t key_len, uint8_t *data, size_t len, size_t cap,
           const struct refl_rx *rx, const struct sockaddr *local,
           const struct sockaddr *peer, uint64_t now_ms, struct refl_reply *rep)
{
    struct stamp_params p;
    struct stamp_result res;
    struct stss_sess *s = NULL;
    enum stamp_drop d;

    memset(&p, 0, sizeof(p));
    memset(rep, 0, sizeof(*rep));
    refl_clock(r, now_ms);
    p.mode = o->stateful ? STAMP_STATEFUL : STAMP_STATELESS;
    p.key = key_len > 0 ? key : NULL;
    p.key_len = key_len;
    p.clock = r->clock;
    p.cos_permit = o->cos_permit;
    rep->tai = o->ptp ? refl_ptp(r, &p) : 0;
    p.rx_method = STAMP_TSM_SW;
    p.tx_method = STAMP_TSM_SW;
    p.ttl = rx->ttl;
    p.tos = rx->tos;
    p.local = local;
    p.peer = peer;
    if (rx->have_t2) {
        p.t2 = rx->t2;
    } else {
        /* Only if the kernel gave no stamp (a datagram that came before
         * the socket's options were on): counted. */
        clock_gettime(CLOCK_REALTIME, &p.t2);
        ctr_add(&r->no_t2, 1);
    }
    if (o->stateful) {
        /* A forged or short packet must not touch a session: check it
         * before anything is counted. */
        d = stamp_check(data, len, p.key, key_len);
        if (d != STAMP_OK) {
            return d;
        }
        p.checked = true;
        /* No place for the session (every one near busy, a flood), or
         * the destination unknown: the sender still gets its
         * timestamps, as from a stateless reflector, rather than a loss
         * (stsess.h). */
        s = local != NULL ? refl_session(r, data, len, key_len > 0, local,
                                         peer, now_ms, &p)
                          : NULL;
        if (s == NULL) {
            p.mode = STAMP_STATELESS;
        }
    }
    rep->t2 = p.t2;
    p.t2.tv_sec += rep->tai;
    p.fu_time.tv_sec += p.fu_valid ? rep->tai : 0;
    d = stamp_reflect(data, len, &p, data, cap, &res);
    if (d != STAMP_OK) {
        return d;
    }
    rep->len = res.len;
    rep->cos = res.cos;
    rep->tos = res.tos;
    rep->sess = s;
    /* The session's count moves on now, not when the reply is sent: two
     * of its requests in one send batch must not share a number. */
    rep->seq = s != NULL ? stss_sent(s) : res.sender_seq;
    return STAMP_OK;
}

struct timespec
refl_stamp_t3(uint8_t *data, size_t len, int32_t tai, const void *key,
              size_t key_len)
{
    struct timespec t3, on;

    clock_gettime(CLOCK_REALTIME, &t3);
    on = t3;
    on.tv_sec += tai;
    (void)stamp_set_t3(data, len, &on, key_len > 0 ? key : NULL, key_len);
    return t3;
}

static void
refl_residence(struct refl *r, int64_t ns)
{
    uint64_t us = ns > 0 ? (uint64_t)ns / 1000 : 0;
    uint64_t bound = 1; /* microseconds of bucket 0 */
    unsigned i = 0;

    while (i < STS_HIST_BUCKETS && us > bound) {
        bound *= 10;
        i++;
    }
    if (i < STS_HIST_BUCKETS) {
        ctr_add(&r->hist[i], 1);
    } else {
        ctr_add(&r->hist_inf, 1);
    }
    ctr_add(&r->hist_sum_ns, ns > 0 ? (uint64_t)ns : 0);
}

void
refl_sent(struct refl *r, const struct refl_reply *rep,
          const struct timespec *t3, uint32_t tx_id)
{
    int64_t ns = (int64_t)(t3->tv_sec - rep->t2.tv_sec) * 1000000000 +
                 (t3->tv_nsec - rep->t2.tv_nsec);

    refl_residence(r, ns);
    if (rep->sess != NULL) {
        stss_await(&r->sess, rep->sess, rep->seq, tx_id);
    }
}

size_t
refl_tx_ctl(void *buf, size_t cap)
{
    struct msghdr m = {.msg_control = buf, .msg_controllen = cap};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    uint32_t flags = SOF_TIMESTAMPING_TX_SOFTWARE;

    if (c == NULL || cap < CMSG_SPACE(sizeof(flags))) {
        return 0;
    }
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SO_TIMESTAMPING;
    c->cmsg_len = CMSG_LEN(sizeof(flags));
    memcpy(CMSG_DATA(c), &flags, sizeof(flags));
    return CMSG_SPACE(sizeof(flags));
}

void
refl_sum_hist(const struct refl *r, uint64_t *hist, uint64_t *sum_ns)
{
    for (unsigned i = 0; i < STS_HIST_BUCKETS; i++) {
        hist[i] += ctr_get(&r->hist[i]);
    }
    hist[STS_HIST_BUCKETS] += ctr_get(&r->hist_inf);
    *sum_ns += ctr_get(&r->hist_sum_ns);
}

uint32_t
refl_tx_id(uint8_t slot, uint8_t epoch, uint32_t n)
{
    return (uint32_t)slot << (REFL_TX_BITS + REFL_EPOCH_BITS) |
           (uint32_t)(epoch & ((1u << REFL_EPOCH_BITS) - 1)) << REFL_TX_BITS |
           (n & ((1u << REFL_TX_BITS) - 1));
}

void
refl_tx_resync(struct refl *r, int fd, uint8_t slot, uint8_t epoch)
{
    int off = REFL_TS_FLAGS & ~SOF_TIMESTAMPING_OPT_ID, on = REFL_TS_FLAGS;

    refl_errqueue(r, fd, slot, epoch, 4 * STSS_STAMPS);
    (void)setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &off, sizeof(off));
    (void)setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &on, sizeof(on));
}

void
refl_errqueue(struct refl *r, int fd, uint8_t slot, uint8_t epoch,
              unsigned budget)
{
    union {
        char buf[CMSG_SPACE(sizeof(struct scm_timestamping)) +
                 CMSG_SPACE(sizeof(struct sock_extended_err) +
                            sizeof(struct sockaddr_in6))];
        struct cmsghdr align;
    } ctl;
    char data[64];

    for (unsigned k = 0; k < budget; k++) {
        struct iovec iov = {.iov_base = data, .iov_len = sizeof(data)};
        struct msghdr m = {.msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = ctl.buf,
                           .msg_controllen = sizeof(ctl.buf)};
        struct timespec sent = {0, 0};
        bool have_ts = false, have_id = false;
        uint32_t id = 0;

        if (recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
            return; /* EAGAIN: all read */
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL;
             c = CMSG_NXTHDR(&m, c)) {
            if (c->cmsg_level == SOL_SOCKET &&
                c->cmsg_type == SCM_TIMESTAMPING &&
                c->cmsg_len >= CMSG_LEN(sizeof(struct scm_timestamping))) {
                struct scm_timestamping t;

                memcpy(&t, CMSG_DATA(c), sizeof(t));
                sent = t.ts[0];
                have_ts = true;
            } else if (c->cmsg_len >=
                       CMSG_LEN(sizeof(struct sock_extended_err))) {
                struct sock_extended_err ee;

                memcpy(&ee, CMSG_DATA(c), sizeof(ee));
                if (ee.ee_origin == SO_EE_ORIGIN_TIMESTAMPING) {
                    id = ee.ee_data;
                    have_id = true;
                }
            }
        }
        if (have_ts && have_id && r->sess_ok) {
            (void)stss_stamped(&r->sess, refl_tx_id(slot, epoch, id),
                               &sent);
        }
    }
}
