/*
 * udp.c - RFC 862 over UDP: send each datagram back to its source.
 *
 * Owns: UDP sockets (bound or inherited), draining them with recvmmsg
 * until EAGAIN within UDP_TURN_BUDGET datagrams per turn (then the ready
 * list), replies with sendmmsg from the address the request was sent to
 * (IP_PKTINFO / IPV6_PKTINFO), and the guards that keep a UDP echo
 * service from being abused on the open internet, where source addresses
 * can be forged:
 *   - no reply to a source port that belongs to a service which answers
 *     datagrams itself (udp_loop_port) or to our own port: two such
 *     services aimed at each other would bounce one datagram forever;
 *   - no reply to or for a broadcast, multicast or unspecified address;
 *   - token buckets per source (a bounded, keyed table) and for all
 *     replies, counting replies and their bytes, so a forged flood cannot
 *     make echod a high-rate or high-bandwidth reflector.
 * Never queues a reply: UDP has no backpressure, so a reply the kernel
 * will not take now is dropped and counted. Every drop is counted by
 * reason and logged through a flood limiter. A discard socket (RFC 863)
 * answers nothing: each datagram it takes is counted as discarded, not
 * as a drop (nothing went wrong), and spends no rate-limit token.
 * Binding, registration and close belong to the bound-socket set
 * (bset.c); the rate limits are shared by all workers (struct udp_limit).
 * Invariants: readable/writable are set only by epoll events and cleared
 * only by EAGAIN or a short batch (docs/design.md section 3); n_rx equals
 * n_echoed plus n_discarded plus the sum of n_drop once a batch is done,
 * in total and per listen entry.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "acl.h"
#include "counter.h"
#include "log.h"
#include "udp.h"

/* Control data of one datagram: room for its packet info and whatever an
 * inherited socket was set up to add (a timestamp, say). */
#define UDP_CTL_MAX 256
/* STAMP replies sent by one sendmmsg: the replies of one receive batch,
 * as the bare reflector the issue measures against sends them. A reply's
 * T3 is read just before the call, so under load it is early by the
 * sending of the ones ahead of it (a microsecond or two each on
 * loopback); at measurement rates a batch holds one reply. One reply per
 * call (T3 exact) cost 0.7-1.1 us a packet: 0.63-0.77 of the bare
 * reflector's speed; 4 per call, 0.79-0.88 (bench/README.md). */
#define UDP_STAMP_SEND UDP_BATCH

struct udp_batch {
    struct mmsghdr in[UDP_BATCH];
    struct mmsghdr out[UDP_BATCH];
    struct iovec in_iov[UDP_BATCH];
    struct iovec out_iov[UDP_BATCH];
    struct sockaddr_storage peer[UDP_BATCH];
    union {
        char buf[UDP_CTL_MAX];
        struct cmsghdr align;
    } in_ctl[UDP_BATCH], out_ctl[UDP_BATCH];
    unsigned char data[UDP_BATCH][UDP_DGRAM_MAX];
};

/* Where a datagram was sent to, from its packet info. */
struct udp_dest {
    bool have4, have6;
    struct in_pktinfo v4;
    struct in6_pktinfo v6;
};

/*
 * Source ports above 1023 that are not answered: well-known UDP services
 * that reply to any datagram and are abused as reflectors (NFS, which
 * inetd's dg_badinput also refuses; SSDP, WS-Discovery, mDNS, memcached,
 * ARD, STUN, SIP, CoAP, Ubiquiti discovery, DVR discovery). Clients send from
 * ephemeral ports (Linux 32768-60999, IANA and Windows 49152-65535, old BSDs
 * 1024-5000), so a legitimate request from one of these is rare and its next
 * try comes from another port.
 */
static const uint16_t udp_service_ports[] = {
    1900, 2049, 3283, 3478, 3702, 5060, 5353, 5683, 10001, 11211, 37810,
};

static const char *const udp_drop_names[] = {
    [UDP_DROP_TRUNCATED] = "truncated",
    [UDP_DROP_LOOP] = "loop",
    [UDP_DROP_ADDRESS] = "address",
    [UDP_DROP_ACL] = "acl",
    [UDP_DROP_PER_SOURCE] = "per-source",
    [UDP_DROP_PER_SOURCE_BYTES] = "per-source-bytes",
    [UDP_DROP_RATE] = "rate",
    [UDP_DROP_RATE_BYTES] = "rate-bytes",
    [UDP_DROP_BLOCKED] = "blocked",
    [UDP_DROP_ERROR] = "error",
    [UDP_DROP_STAMP_SHORT] = "stamp-short",
    [UDP_DROP_STAMP_AUTH] = "stamp-auth",
};
/* A reason without a name would print as "(null)" in STATUS. */
_Static_assert(sizeof(udp_drop_names) / sizeof(udp_drop_names[0]) ==
                   UDP_DROP_MAX,
               "udp_drop_names must name every enum udp_drop");

_Static_assert(UDP_DROP_MAX == STS_UDP_DROP_MAX, "stats.h counts drops");

/* The counters of u's listen entry, or NULL (no table: unit tests). */
static struct sts_ctr *
udp_ctr(const struct bset_sock *u)
{
    return u->local->tab != NULL ? &u->local->tab->slot[u->slot].c : NULL;
}

const char *
udp_drop_name(enum udp_drop why)
{
    return udp_drop_names[why];
}

bool
udp_loop_port(unsigned port)
{
    if (port < 1024) {
        /* 0 cannot be answered at all; 1..1023 are the services (echo 7,
         * daytime 13, qotd 17, chargen 19, time 37, DNS 53, NTP 123,
         * SNMP 161, ...) that answer datagrams from anyone, as inetd's
         * dg_badinput has refused them since the 1990s. */
        return true;
    }
    for (size_t i = 0;
         i < sizeof(udp_service_ports) / sizeof(udp_service_ports[0]); i++) {
        if (port == udp_service_ports[i]) {
            return true;
        }
    }
    return false;
}

int
udp_limit_init(struct udp_limit *lim)
{
    struct timespec ts;
    uint64_t now;
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    tb_init(&lim->rate, 1, 1, now);
    tb_init(&lim->bytes, 0, 0, now);
    if (srate_init(&lim->src, 1, 1, 32, 64) < 0) {
        return -1;
    }
    rc = pthread_mutex_init(&lim->lock, NULL);
    if (rc != 0) {
        srate_fini(&lim->src);
        errno = rc;
        return -1;
    }
    return 0;
}

void
udp_limit_fini(struct udp_limit *lim)
{
    srate_fini(&lim->src);
    pthread_mutex_destroy(&lim->lock);
}

struct udp_limit *
udp_limit_new(void)
{
    struct udp_limit *lim = calloc(1, sizeof(*lim));

    if (lim == NULL) {
        return NULL;
    }
    if (udp_limit_init(lim) < 0) {
        int saved = errno;
        free(lim);
        errno = saved;
        return NULL;
    }
    atomic_init(&lim->refs, 1);
    return lim;
}

struct udp_limit *
udp_limit_ref(struct udp_limit *lim)
{
    if (lim != NULL) {
        atomic_fetch_add_explicit(&lim->refs, 1, memory_order_relaxed);
    }
    return lim;
}

void
udp_limit_unref(struct udp_limit *lim)
{
    if (lim == NULL ||
        atomic_fetch_sub_explicit(&lim->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    udp_limit_fini(lim);
    free(lim);
}

void
udp_limit_configure_entry(struct udp_limit *lim, const struct cfg *c,
                          const struct cfg_listen *cl)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    udp_limit_configure(
        lim, (double)cl->udp_rate_limit, (double)cl->udp_rate_burst,
        (double)cl->udp_rate_limit_bytes, (double)cl->udp_per_source_rate,
        (double)cl->udp_per_source_burst,
        (double)cl->udp_per_source_rate_bytes,
        (unsigned)c->source_prefix_ipv4, (unsigned)c->source_prefix_ipv6,
        (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

/* The burst of a byte bucket of `rate` bytes per second (0: off). One
 * second's worth, so that over any span of t seconds at most rate x (t +
 * 1) bytes go out; but never less than the largest datagram, which could
 * otherwise never be answered at all. */
static double
udp_byte_burst(double rate)
{
    if (rate <= 0) {
        return 0;
    }
    return rate > UDP_BYTE_BURST_MIN ? rate : UDP_BYTE_BURST_MIN;
}

void
udp_limit_configure(struct udp_limit *lim, double rate, double burst,
                    double rate_bytes, double src_rate, double src_burst,
                    double src_rate_bytes, unsigned prefix4, unsigned prefix6,
                    uint64_t now_ms)
{
    (void)pthread_mutex_lock(&lim->lock);
    if (rate != lim->rate.rate || burst != lim->rate.burst) {
        tb_init(&lim->rate, rate, burst, now_ms);
    }
    if (rate_bytes != lim->bytes.rate) {
        tb_init(&lim->bytes, rate_bytes, udp_byte_burst(rate_bytes), now_ms);
    }
    srate_configure(&lim->src, src_rate, src_burst, src_rate_bytes,
                    udp_byte_burst(src_rate_bytes), prefix4, prefix6);
    (void)pthread_mutex_unlock(&lim->lock);
}

void
udp_set_init(struct udp_set *set, struct loop *loop, struct bset_local *socks,
             struct udp_limit *lim)
{
    memset(set, 0, sizeof(*set));
    set->loop = loop;
    set->socks = socks;
    set->lim = lim;
    set->dgram_max = UDP_DGRAM_MAX;
}

void
udp_set_fini(struct udp_set *set)
{
    free(set->batch);
    set->batch = NULL;
    refl_fini(&set->refl);
}

uint64_t
udp_dropped(const struct udp_set *set)
{
    uint64_t n = 0;

    for (int i = 0; i < UDP_DROP_MAX; i++) {
        n += set->n_drop[i];
    }
    return n;
}

/* ---- the guards ---- */

/* "This network" (0/8), multicast (224/4) and reserved (240/4, with the
 * limited broadcast 255.255.255.255): never a host that asked. */
static bool
udp_v4_bad(uint32_t a)
{
    return (a >> 24) == 0 || (a >> 28) >= 0xe;
}

static bool
udp_source_ok(const struct sockaddr_storage *ss)
{
    const struct sockaddr_in6 *sin6 = (const void *)ss;
    uint32_t a;

    if (sock_ipv4((const struct sockaddr *)ss, &a)) {
        return !udp_v4_bad(a);
    }
    return ss->ss_family == AF_INET6 &&
           !IN6_IS_ADDR_MULTICAST(&sin6->sin6_addr) &&
           !IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
}

/* Read the packet info; false if the datagram was not sent to a unicast
 * address of this host (a broadcast is answered by every host on the
 * segment: one forged datagram, many replies). */
static bool
udp_dest_ok(struct msghdr *m, struct udp_dest *d)
{
    uint32_t be;

    d->have4 = d->have6 = false;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL;
         c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
            c->cmsg_len >= CMSG_LEN(sizeof(d->v4))) {
            memcpy(&d->v4, CMSG_DATA(c), sizeof(d->v4));
            d->have4 = true;
        } else if (c->cmsg_level == IPPROTO_IPV6 &&
                   c->cmsg_type == IPV6_PKTINFO &&
                   c->cmsg_len >= CMSG_LEN(sizeof(d->v6))) {
            memcpy(&d->v6, CMSG_DATA(c), sizeof(d->v6));
            d->have6 = true;
        }
    }
    if (d->have4 && d->v4.ipi_spec_dst.s_addr != INADDR_ANY) {
        /* The kernel sets spec_dst to the header's destination for a
         * local unicast address, and to some local address otherwise. */
        return d->v4.ipi_addr.s_addr == d->v4.ipi_spec_dst.s_addr &&
               !udp_v4_bad(ntohl(d->v4.ipi_addr.s_addr));
    }
    if (d->have4) {
        /* Queued before echod turned the option on (an inherited socket
         * that systemd held): only the header's destination is known. */
        d->have4 = false;
        if (udp_v4_bad(ntohl(d->v4.ipi_addr.s_addr))) {
            return false;
        }
    }
    if (d->have6) {
        if (IN6_IS_ADDR_V4MAPPED(&d->v6.ipi6_addr)) {
            memcpy(&be, &d->v6.ipi6_addr.s6_addr[12], sizeof(be));
            return !udp_v4_bad(ntohl(be));
        }
        return !IN6_IS_ADDR_MULTICAST(&d->v6.ipi6_addr);
    }
    return true; /* no packet info: the socket filters what it binds */
}

/* Control data that makes the reply leave from the address the request
 * was sent to: with a wildcard bind on a host with several addresses the
 * kernel would otherwise pick one by route, and a client that connected
 * its socket to the address it asked would discard the reply. Returns
 * its length, 0 for none. */
static size_t
udp_reply_ctl(const struct udp_dest *d, void *buf, size_t cap)
{
    struct msghdr m = {.msg_control = buf, .msg_controllen = cap};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    struct in_pktinfo p4;
    struct in6_pktinfo p6;
    const void *info = &p4;
    size_t len = sizeof(p4);

    if (d->have4) {
        memset(&p4, 0, sizeof(p4));
        p4.ipi_spec_dst = d->v4.ipi_spec_dst;
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
    } else if (d->have6) {
        memset(&p6, 0, sizeof(p6));
        p6.ipi6_addr = d->v6.ipi6_addr;
        if (IN6_IS_ADDR_LINKLOCAL(&p6.ipi6_addr)) {
            p6.ipi6_ifindex = d->v6.ipi6_ifindex; /* scoped: same link */
        }
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        info = &p6;
        len = sizeof(p6);
    } else {
        return 0;
    }
    c->cmsg_len = CMSG_LEN(len);
    memcpy(CMSG_DATA(c), info, len);
    return CMSG_SPACE(len);
}

/* What the peer did wrong is info; what echod had to shed, warning. */
static int
udp_drop_level(enum udp_drop why)
{
    return why < UDP_DROP_PER_SOURCE || why == UDP_DROP_STAMP_SHORT ||
                   why == UDP_DROP_STAMP_AUTH
               ? LOG_INFO
               : LOG_WARNING;
}

/* Count a drop and say so, through the limiter of its kind. */
static void
udp_drop(struct bset_sock *u, enum udp_drop why,
         const struct sockaddr_storage *peer)
{
    struct udp_set *set = u->ctx;
    struct log_limit *lim = &set->drop_log[why];
    char who[SOCK_NAME_MAX];
    int saved = errno;

    ctr_add(&set->n_drop[why], 1);
    if (udp_ctr(u) != NULL) {
        ctr_add(&udp_ctr(u)->udp_drop[why], 1);
    }
    /* What the peer did wrong is info; what echod had to shed, warning.
     * Ask the limiter first: under a flood nearly every drop is
     * suppressed, and the address need not be formatted for those. */
    if (!log_limit_pass(lim, udp_drop_level(why))) {
        return;
    }
    sock_name((const struct sockaddr *)peer, who, sizeof(who));
    errno = saved;
    switch (why) {
    case UDP_DROP_TRUNCATED:
        log_limit_write(lim, LOG_INFO, false,
                        "%s: dropped a datagram from %s: "
                        "longer than %zu bytes",
                        u->name, who, set->dgram_max);
        break;
    case UDP_DROP_LOOP:
        log_limit_write(lim, LOG_INFO, false,
                        "%s: dropped a datagram from %s: "
                        "no replies to source port %u (echo loop guard)",
                        u->name, who, sock_port((const struct sockaddr *)peer));
        break;
    case UDP_DROP_ADDRESS:
        log_limit_write(lim, LOG_INFO, false,
                        "%s: dropped a datagram from %s: "
                        "not between unicast addresses",
                        u->name, who);
        break;
    case UDP_DROP_ACL:
        log_limit_write(lim, LOG_INFO, false,
                        "%s: dropped a datagram from %s: refused by "
                        "allow/deny",
                        u->name, who);
        break;
    case UDP_DROP_PER_SOURCE:
        log_limit_write(lim, LOG_WARNING, false,
                        "%s: replies to %s over "
                        "udp_per_source_rate (%g/s), dropping",
                        u->name, who, set->src_rate);
        break;
    case UDP_DROP_PER_SOURCE_BYTES:
        log_limit_write(lim, LOG_WARNING, false,
                        "%s: replies to %s over "
                        "udp_per_source_rate_bytes (%g bytes/s), dropping",
                        u->name, who, set->src_rate_bytes);
        break;
    case UDP_DROP_RATE:
        log_limit_write(lim, LOG_WARNING, false,
                        "%s: replies over "
                        "udp_rate_limit (%g/s), dropping (this one to %s)",
                        u->name, set->rate, who);
        break;
    case UDP_DROP_RATE_BYTES:
        log_limit_write(lim, LOG_WARNING, false,
                        "%s: replies over udp_rate_limit_bytes "
                        "(%g bytes/s), dropping (this one to %s)",
                        u->name, set->rate_bytes, who);
        break;
    case UDP_DROP_BLOCKED:
        log_limit_write(lim, LOG_WARNING, false,
                        "%s: send buffer full, reply "
                        "to %s dropped",
                        u->name, who);
        break;
    case UDP_DROP_ERROR:
        log_limit_write(lim, LOG_WARNING, true, "%s: reply to %s failed",
                        u->name, who);
        break;
    case UDP_DROP_STAMP_SHORT:
        log_limit_write(lim, LOG_INFO, false,
                        "%s: dropped a STAMP packet from %s: too short",
                        u->name, who);
        break;
    case UDP_DROP_STAMP_AUTH:
        log_limit_write(lim, LOG_INFO, false,
                        "%s: dropped a STAMP packet from %s: its HMAC is "
                        "wrong (another key?)",
                        u->name, who);
        break;

    case UDP_DROP_MAX:
        break;
    }
    errno = saved;
}

/* True when the datagram comes from the port of any of our own UDP
 * sockets: another echo service (maybe us on another address, or a second
 * echod) would answer the answer, forever. At most CFG_MAX_LISTEN. */
static bool
udp_own_port(const struct udp_set *set, unsigned port)
{
    const struct list *all = &set->socks->all;

    for (const struct list *n = all->next; n != all; n = n->next) {
        const struct bset_sock *b = list_entry(n, struct bset_sock, node);

        if (b->kind == &udp_kind && b->port == port) {
            return true;
        }
    }
    return false;
}

/* The buckets u's replies are taken from: its entry's own, or the shared
 * ones of the top-level keys. */
static struct udp_limit *
udp_limit_of(const struct bset_sock *u)
{
    const struct udp_set *set = u->ctx;

    return u->pol != NULL && u->pol->lim != NULL ? u->pol->lim : set->lim;
}

/* True when the socket's allow/deny refuse the source. */
static bool
udp_refused(const struct bset_sock *u, const struct sockaddr_storage *peer)
{
    return u->pol != NULL && !acl_permits(u->pol->allow, u->pol->deny,
                                          (const struct sockaddr *)peer);
}

/* Decide about one received datagram before the rate limits: -1 to go
 * on, or why not. */
static int
udp_judge(struct bset_sock *u, struct msghdr *m, size_t len,
          struct udp_dest *d)
{
    const struct sockaddr_storage *peer = m->msg_name;
    const struct bset_pol *pol = u->pol;
    unsigned port = sock_port((const struct sockaddr *)peer);
    bool stamp = pol != NULL && pol->stamp;

    if (m->msg_flags & MSG_TRUNC) {
        return UDP_DROP_TRUNCATED;
    }
    /* Before the rate limits: a STAMP request too short for its mode
     * costs nobody a token. */
    if (stamp && len < (pol->stamp_key_len > 0 ? (size_t)STAMP_AUTH_LEN
                                               : (size_t)STAMP_TWAMP_MIN)) {
        return UDP_DROP_STAMP_SHORT;
    }
    if (udp_loop_port(port) || udp_own_port(u->ctx, port)) {
        /* A stamp entry may opt in to senders on low ports, 862 above
         * all, ours included; then what keeps two reflectors from
         * bouncing is that a reply is never answered (stamp.h). */
        if (!stamp || !pol->stamp_low_ports || port == 0 ||
            stamp_is_reply(m->msg_iov[0].iov_base, len,
                           pol->stamp_key_len > 0)) {
            return UDP_DROP_LOOP;
        }
    }
    /* Control data cut short may have lost the packet info (an inherited
     * socket with more options on): then the destination is unknown and
     * could be a broadcast, so do not answer. */
    if ((m->msg_flags & MSG_CTRUNC) || !udp_source_ok(peer) ||
        !udp_dest_ok(m, d)) {
        return UDP_DROP_ADDRESS;
    }
    if (udp_refused(u, peer)) {
        return UDP_DROP_ACL;
    }
    return -1;
}

/* The rate limits for a reply of `bytes` bytes, with lim->lock held: the
 * per-source buckets before the global ones, so one flooding source
 * cannot spend everybody's tokens. Each pair (replies, bytes) is taken
 * whole or not at all: a reply too large for the byte budget leaves the
 * reply tokens to smaller ones. */
static int
udp_rate(struct udp_set *set, struct udp_limit *lim,
         const struct sockaddr_storage *peer, size_t bytes)
{
    uint64_t now = set->loop->now;
    bool by_bytes = lim->bytes.rate > 0;

    switch (srate_take(&lim->src, (const struct sockaddr *)peer, bytes, now)) {
    case SRATE_PASS:
        break;
    case SRATE_OVER_RATE:
        return UDP_DROP_PER_SOURCE;
    case SRATE_OVER_BYTES:
        return UDP_DROP_PER_SOURCE_BYTES;
    }
    if (tb_peek(&lim->rate, now) < 1.0) {
        return UDP_DROP_RATE;
    }
    if (by_bytes && tb_peek(&lim->bytes, now) < (double)bytes) {
        return UDP_DROP_RATE_BYTES;
    }
    (void)tb_take(&lim->rate, now);
    if (by_bytes) {
        (void)tb_take_n(&lim->bytes, (double)bytes, now);
    }
    return -1;
}

/* Send out[0..n): what the kernel refuses is dropped, never queued. */
static void
udp_send(struct bset_sock *u, unsigned n)
{
    struct udp_set *set = u->ctx;
    struct mmsghdr *out = set->batch->out;
    unsigned k = 0;

    while (k < n) {
        int r;

        if (!u->writable) {
            /* No EAGAIN loop: the next EPOLLOUT edge says when to try. */
            for (; k < n; k++) {
                udp_drop(u, UDP_DROP_BLOCKED, out[k].msg_hdr.msg_name);
            }
            return;
        }
        r = sendmmsg(u->io.fd, out + k, n - k, 0);
        if (r > 0) {
            uint64_t bytes = 0;

            for (unsigned j = k; j < k + (unsigned)r; j++) {
                bytes += out[j].msg_len;
            }
            ctr_add(&set->bytes_echoed, bytes);
            ctr_add(&set->n_echoed, (uint64_t)r);
            if (udp_ctr(u) != NULL) {
                ctr_add(&udp_ctr(u)->bytes_out, bytes);
                ctr_add(&udp_ctr(u)->udp_echoed, (uint64_t)r);
            }
            k += (unsigned)r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            u->writable = false;
        } else {
            /* This reply's problem (no route, a firewall): skip it. */
            udp_drop(u, UDP_DROP_ERROR, out[k].msg_hdr.msg_name);
            k++;
        }
    }
}

/* ---- STAMP (refl.h): one sendmsg per reply, T3 read right before ---- */

/* Where the request went: the packet info's destination, our port. */
static const struct sockaddr *
udp_local(const struct bset_sock *u, const struct udp_dest *d,
          struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (d->have4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;

        sin->sin_family = AF_INET;
        sin->sin_addr = d->v4.ipi_addr;
        sin->sin_port = htons(u->port);
    } else if (d->have6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = d->v6.ipi6_addr;
        sin6->sin6_port = htons(u->port);
    } else {
        return NULL;
    }
    return (const struct sockaddr *)ss;
}

/* Control data giving the reply the TOS a Class of Service TLV chose:
 * IP_TOS to an IPv4 peer (also one mapped on a dual-stack socket),
 * IPV6_TCLASS otherwise. Returns its length. */
static size_t
udp_tos_ctl(const struct sockaddr_storage *peer, uint8_t tos, void *buf,
            size_t cap)
{
    struct msghdr m = {.msg_control = buf, .msg_controllen = cap};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    int v = tos;
    uint32_t a;

    if (c == NULL || cap < CMSG_SPACE(sizeof(v))) {
        return 0;
    }
    if (sock_ipv4((const struct sockaddr *)peer, &a)) {
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_TOS;
    } else {
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_TCLASS;
    }
    c->cmsg_len = CMSG_LEN(sizeof(v));
    memcpy(CMSG_DATA(c), &v, sizeof(v));
    return CMSG_SPACE(sizeof(v));
}

/* Build the message of reply k (datagram i) in the batch's out slots:
 * from the address asked, with the TOS a Class of Service TLV chose and,
 * stateful, a request for its transmit stamp. */
static void
udp_stamp_msg(struct bset_sock *u, unsigned k, unsigned i,
              const struct udp_dest *d, const struct refl_reply *rep)
{
    struct udp_batch *b = ((struct udp_set *)u->ctx)->batch;
    struct msghdr *o = &b->out[k].msg_hdr;
    char *ctl = b->out_ctl[k].buf;
    size_t cl = udp_reply_ctl(d, ctl, UDP_CTL_MAX);

    if (rep->cos) {
        cl += udp_tos_ctl(&b->peer[i], rep->tos, ctl + cl, UDP_CTL_MAX - cl);
    }
    if (rep->sess != NULL) {
        cl += refl_tx_ctl(ctl + cl, UDP_CTL_MAX - cl);
    }
    b->out_iov[k].iov_base = b->data[i];
    b->out_iov[k].iov_len = rep->len;
    memset(o, 0, sizeof(*o));
    o->msg_name = &b->peer[i];
    o->msg_namelen = b->in[i].msg_hdr.msg_namelen;
    o->msg_iov = &b->out_iov[k];
    o->msg_iovlen = 1;
    o->msg_control = cl > 0 ? ctl : NULL;
    o->msg_controllen = cl;
}

/* A stateful reply's send failed: the kernel may have used a transmit
 * stamp id for it, so count from 0 again under a new epoch. */
static void
udp_stamp_resync(struct bset_sock *u)
{
    struct udp_set *set = u->ctx;

    refl_tx_resync(&set->refl, u->io.fd, u->slot, u->tx_epoch);
    u->tx_epoch++;
    u->tx_stamps = 0;
}

/*
 * Send replies out[0..n) (their refl_reply in rep[], their datagrams in
 * idx[]) with one sendmmsg: each one's T3 is read, and written with its
 * HMAC, just before the call, so it is early by at most the sending of
 * the UDP_STAMP_SEND - 1 replies ahead of it. What the kernel refuses is
 * dropped, never queued.
 */
static void
udp_send_stamps(struct bset_sock *u, unsigned n, const struct refl_reply *rep,
                const unsigned *idx)
{
    struct udp_set *set = u->ctx;
    struct udp_batch *b = set->batch;
    const struct bset_pol *pol = u->pol;
    struct timespec t3[UDP_STAMP_SEND];
    unsigned k = 0;

    for (unsigned j = 0; j < n; j++) {
        t3[j] = refl_stamp_t3(b->data[idx[j]], rep[j].len, rep[j].tai,
                              pol->stamp_key, pol->stamp_key_len);
    }
    while (k < n) {
        int r;

        if (!u->writable) {
            for (; k < n; k++) {
                udp_drop(u, UDP_DROP_BLOCKED, &b->peer[idx[k]]);
                if (rep[k].sess != NULL) {
                    udp_stamp_resync(u);
                }
            }
            return;
        }
        r = sendmmsg(u->io.fd, b->out + k, n - k, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                u->writable = false;
                continue; /* the rest are dropped above */
            }
            udp_drop(u, UDP_DROP_ERROR, &b->peer[idx[k]]);
            if (rep[k].sess != NULL) {
                udp_stamp_resync(u);
            }
            k++;
            continue;
        }
        for (unsigned j = k; j < k + (unsigned)r; j++) {
            ctr_add(&set->bytes_echoed, b->out[j].msg_len);
            ctr_add(&set->n_echoed, 1);
            if (udp_ctr(u) != NULL) {
                ctr_add(&udp_ctr(u)->bytes_out, b->out[j].msg_len);
                ctr_add(&udp_ctr(u)->udp_echoed, 1);
            }
            refl_sent(&set->refl, &rep[j], &t3[j],
                      rep[j].sess != NULL ? refl_tx_id(u->slot, u->tx_epoch,
                                                       u->tx_stamps++)
                                          : 0);
        }
        k += (unsigned)r;
    }
}

static enum udp_drop
udp_stamp_drop(enum stamp_drop d)
{
    switch (d) {
    case STAMP_DROP_SHORT:
        return UDP_DROP_STAMP_SHORT;
    case STAMP_DROP_HMAC:
        return UDP_DROP_STAMP_AUTH;
    case STAMP_OK:
    case STAMP_DROP_NOROOM:
    case STAMP_DROP_MAX:
        break;
    }
    return UDP_DROP_ERROR;
}

/* A stamp socket's batch: reflect each good datagram in place and send
 * it on its own, so that each reply's T3 is its own. */
static void
udp_answer_stamp(struct bset_sock *u, unsigned n, const int *why,
                 const struct udp_dest *d)
{
    struct udp_set *set = u->ctx;
    struct udp_batch *b = set->batch;
    const struct bset_pol *pol = u->pol;

    struct refl_reply rep[UDP_STAMP_SEND];
    unsigned idx[UDP_STAMP_SEND];
    unsigned k = 0;
    bool replied = false;

    for (unsigned i = 0; i < n; i++) {
        struct sockaddr_storage here;
        struct refl_rx rx;
        enum stamp_drop dr;

        if (why[i] >= 0) {
            udp_drop(u, (enum udp_drop)why[i], &b->peer[i]);
            continue;
        }
        refl_rx_parse(&b->in[i].msg_hdr, &rx);
        dr = refl_build(&set->refl, &pol->stamp_opts, pol->stamp_key,
                        pol->stamp_key_len, b->data[i], b->in[i].msg_len,
                        sizeof(b->data[i]), &rx, udp_local(u, &d[i], &here),
                        (const struct sockaddr *)&b->peer[i], set->loop->now,
                        &rep[k]);
        if (dr != STAMP_OK) {
            udp_drop(u, udp_stamp_drop(dr), &b->peer[i]);
            continue;
        }
        udp_stamp_msg(u, k, i, &d[i], &rep[k]);
        idx[k++] = i;
        replied = true;
        if (k == UDP_STAMP_SEND) {
            udp_send_stamps(u, k, rep, idx);
            k = 0;
        }
    }
    if (k > 0) {
        udp_send_stamps(u, k, rep, idx);
    }
    /* Only a request that passed every guard and check opens the
     * window: a denied, limited or forged flood cannot keep the worker
     * polling. */
    if (replied && pol->stamp_busy_poll_us != 0) {
        loop_busy_poll(set->loop, pol->stamp_busy_poll_us);
    }
    if (pol->stamp_opts.stateful) {
        /* Software transmit stamps come as the reply leaves: collect
         * them for the sessions' next Follow-Up Telemetry TLVs. */
        refl_errqueue(&set->refl, u->io.fd, u->slot, u->tx_epoch,
                      2 * UDP_BATCH);
    }
}

/* The bytes a reply to a datagram of len bytes takes: the same, but a
 * STAMP request shorter than the base packet gets a whole base packet. */
static size_t
udp_reply_size(const struct bset_sock *u, size_t len)
{
    bool stamp = u->pol != NULL && u->pol->stamp;

    return stamp && len < STAMP_UNAUTH_LEN ? STAMP_UNAUTH_LEN : len;
}

/* The n datagrams just received, and their bytes. */
static void
udp_count_rx(struct bset_sock *u, unsigned n)
{
    struct udp_set *set = u->ctx;
    uint64_t bytes = 0;

    ctr_add(&set->n_rx, n);
    if (udp_ctr(u) == NULL) {
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        bytes += set->batch->in[i].msg_len;
    }
    ctr_add(&udp_ctr(u)->udp_rx, n);
    ctr_add(&udp_ctr(u)->bytes_in, bytes);
}

/* Discard (RFC 863): count the n datagrams just received and answer
 * none. Of the guards only allow/deny apply: the others protect a
 * reply, and the rate limits meter replies, so no token is spent. What
 * is discarded is not a drop: nothing went wrong. */
static void
udp_discard(struct bset_sock *u, unsigned n)
{
    struct udp_set *set = u->ctx;
    uint64_t kept = 0;

    udp_count_rx(u, n);
    for (unsigned i = 0; i < n; i++) {
        if (udp_refused(u, &set->batch->peer[i])) {
            udp_drop(u, UDP_DROP_ACL, &set->batch->peer[i]);
        } else {
            kept++;
        }
    }
    ctr_add(&set->n_discarded, kept);
    if (udp_ctr(u) != NULL) {
        ctr_add(&udp_ctr(u)->udp_discarded, kept);
    }
}

/* Judge the n datagrams just received and send back the good ones. The
 * shared limits are asked under one lock for the whole batch; drops are
 * logged after it is released. */
static void
udp_answer(struct bset_sock *u, unsigned n)
{
    struct udp_set *set = u->ctx;
    struct udp_batch *b = set->batch;
    struct udp_limit *lim = udp_limit_of(u);
    struct udp_dest d[UDP_BATCH];
    int why[UDP_BATCH];
    bool locked = false;
    unsigned nout = 0;

    for (unsigned i = 0; i < n; i++) {
        why[i] = udp_judge(u, &b->in[i].msg_hdr, b->in[i].msg_len, &d[i]);
        if (why[i] < 0) {
            if (!locked) {
                (void)pthread_mutex_lock(&lim->lock);
                set->src_rate = lim->src.rate;
                set->rate = lim->rate.rate;
                set->src_rate_bytes = lim->src.byte_rate;
                set->rate_bytes = lim->bytes.rate;
                locked = true;
            }
            why[i] = udp_rate(set, lim, &b->peer[i], udp_reply_size(u, b->in[i].msg_len));
        }
    }
    if (locked) {
        (void)pthread_mutex_unlock(&lim->lock);
    }
    udp_count_rx(u, n);
    if (u->pol != NULL && u->pol->stamp) {
        udp_answer_stamp(u, n, why, d);
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        struct msghdr *m = &b->in[i].msg_hdr;
        struct msghdr *o = &b->out[nout].msg_hdr;

        if (why[i] >= 0) {
            udp_drop(u, (enum udp_drop)why[i], &b->peer[i]);
            continue;
        }
        b->out_iov[nout].iov_base = b->data[i];
        b->out_iov[nout].iov_len = b->in[i].msg_len;
        memset(o, 0, sizeof(*o));
        o->msg_name = &b->peer[i];
        o->msg_namelen = m->msg_namelen;
        o->msg_iov = &b->out_iov[nout];
        o->msg_iovlen = 1;
        o->msg_controllen = udp_reply_ctl(&d[i], b->out_ctl[nout].buf,
                                          sizeof(b->out_ctl[nout].buf));
        o->msg_control = o->msg_controllen > 0 ? b->out_ctl[nout].buf : NULL;
        nout++;
    }
    udp_send(u, nout);
}

static void
udp_prepare(struct udp_set *set, unsigned n)
{
    struct udp_batch *b = set->batch;

    for (unsigned i = 0; i < n; i++) {
        struct msghdr *m = &b->in[i].msg_hdr;

        b->in_iov[i].iov_base = b->data[i];
        b->in_iov[i].iov_len = set->dgram_max;
        memset(m, 0, sizeof(*m));
        m->msg_name = &b->peer[i];
        m->msg_namelen = sizeof(b->peer[i]);
        m->msg_iov = &b->in_iov[i];
        m->msg_iovlen = 1;
        m->msg_control = b->in_ctl[i].buf;
        m->msg_controllen = sizeof(b->in_ctl[i].buf);
        b->in[i].msg_len = 0;
    }
}

/* Receive and answer until EAGAIN or `budget` datagrams; true if the
 * budget ran out with the socket still readable. */
static bool
udp_serve(struct bset_sock *u, unsigned budget)
{
    struct udp_set *set = u->ctx;
    unsigned done = 0;

    if (set->batch == NULL) {
        /* The buffers, with this worker's first datagram: a TCP-only
         * echod holds no UDP memory. */
        set->batch = malloc(sizeof(*set->batch));
        if (set->batch == NULL) {
            log_limited(&set->recv_log, LOG_WARNING, true,
                        "%s: no buffers to receive", u->name);
            return false;
        }
    }
    while (u->readable && done < budget) {
        unsigned want = budget - done;
        int n;

        want = want < UDP_BATCH ? want : UDP_BATCH;
        udp_prepare(set, want);
        n = recvmmsg(u->io.fd, set->batch->in, want, 0, NULL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                u->readable = false;
                break;
            }
            log_limited(&set->recv_log, LOG_WARNING, true, "%s: receive failed",
                        u->name);
            done++; /* an error costs budget too: it cannot spin */
            continue;
        }
        /* A short batch found the queue empty; any later datagram raises
         * a new edge. */
        if ((unsigned)n < want) {
            u->readable = false;
        }
        done += (unsigned)n;
        if (u->pol != NULL && u->pol->discard) {
            udp_discard(u, (unsigned)n);
        } else {
            udp_answer(u, (unsigned)n);
        }
    }
    return u->readable;
}

/* One turn: receive until EAGAIN or the budget is spent, then requeue. */
static void
udp_run(struct bset_sock *u)
{
    struct udp_set *set = u->ctx;

    /* A transmit stamp may come after its batch was answered (EPOLLERR
     * then wakes us): file it before the session's next reply. */
    if (u->pol != NULL && u->pol->stamp && u->pol->stamp_opts.stateful) {
        refl_errqueue(&set->refl, u->io.fd, u->slot, u->tx_epoch,
                      2 * UDP_BATCH);
    }
    /* Budget spent with datagrams maybe still queued: no new edge will
     * come for those, so come back before the next blocking wait. */
    if (udp_serve(u, UDP_TURN_BUDGET)) {
        loop_ready(u->local->loop, &u->io);
    }
}

/* Before this worker closes its SO_REUSEPORT socket: what is queued on
 * it would be lost, so answer it first (bounded: a flood cannot hold the
 * close up for long). */
static void
udp_drain(struct bset_sock *u)
{
    u->readable = true;
    (void)udp_serve(u, 16 * UDP_TURN_BUDGET);
}

const struct bset_kind udp_kind = {
    .events = EPOLLIN | EPOLLOUT,
    .run = udp_run,
    .drain = udp_drain,
};
