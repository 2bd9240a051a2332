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
 *   - a token bucket per source (a bounded, keyed table) and one for all
 *     replies, so a forged flood cannot make echod a high-rate reflector.
 * Never queues a reply: UDP has no backpressure, so a reply the kernel
 * will not take now is dropped and counted. Every drop is counted by
 * reason and logged through a flood limiter.
 * Invariants: readable/writable are set only by epoll events and cleared
 * only by EAGAIN or a short batch (docs/design.md section 3); n_rx equals
 * n_echoed plus the sum of n_drop once a batch is done.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "log.h"
#include "udp.h"

/* Control data of one datagram: room for its packet info and whatever an
 * inherited socket was set up to add (a timestamp, say). */
#define UDP_CTL_MAX 256

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
 * ARD, STUN, SIP, CoAP, Ubiquiti discovery, DVR discovery). Clients send from ephemeral ports (Linux 32768-60999, IANA
 * and Windows 49152-65535, old BSDs 1024-5000), so a legitimate request
 * from one of these is rare and its next try comes from another port.
 */
static const uint16_t udp_service_ports[] = {
    1900, 2049, 3283, 3478, 3702, 5060, 5353, 5683, 10001, 11211, 37810,
};

static const char *const udp_drop_names[] = {
    [UDP_DROP_TRUNCATED] = "truncated",
    [UDP_DROP_LOOP] = "loop",
    [UDP_DROP_ADDRESS] = "address",
    [UDP_DROP_PER_SOURCE] = "per-source",
    [UDP_DROP_RATE] = "rate",
    [UDP_DROP_BLOCKED] = "blocked",
    [UDP_DROP_ERROR] = "error",
};

/* One flood limiter per kind of drop: a peer can trigger each of them. */
static struct log_limit udp_drop_log[UDP_DROP_MAX];
static struct log_limit udp_recv_log = LOG_LIMIT_INIT;

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
    for (size_t i = 0; i < sizeof(udp_service_ports) / sizeof(udp_service_ports[0]);
         i++) {
        if (port == udp_service_ports[i]) {
            return true;
        }
    }
    return false;
}

void
udp_set_init(struct udp_set *set, struct loop *loop)
{
    memset(set, 0, sizeof(*set));
    set->loop = loop;
    list_init(&set->all);
    set->dgram_max = UDP_DGRAM_MAX;
    tb_init(&set->rate, 1, 1, loop->now);
    set->src.rate = set->src.burst = 1;
    set->src.prefix4 = 32;
    set->src.prefix6 = 64;
}

void
udp_set_fini(struct udp_set *set)
{
    struct list *n;

    while ((n = list_first(&set->all)) != NULL) {
        udp_close(list_entry(n, struct udp_sock, node));
    }
    free(set->batch);
    set->batch = NULL;
    srate_fini(&set->src);
}

void
udp_set_configure(struct udp_set *set, double rate, double burst,
                  double src_rate, double src_burst, unsigned prefix4,
                  unsigned prefix6)
{
    if (rate != set->rate.rate || burst != set->rate.burst) {
        tb_init(&set->rate, rate, burst, set->loop->now);
    }
    srate_configure(&set->src, src_rate, src_burst, prefix4, prefix6);
}

size_t
udp_count(const struct udp_set *set)
{
    size_t n = 0;

    for (const struct list *p = set->all.next; p != &set->all; p = p->next) {
        n++;
    }
    return n;
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
    struct msghdr m = { .msg_control = buf, .msg_controllen = cap };
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

/* Count a drop and say so, through the limiter of its kind. */
static void
udp_drop(struct udp_sock *u, enum udp_drop why,
         const struct sockaddr_storage *peer)
{
    struct log_limit *lim = &udp_drop_log[why];
    char who[SOCK_NAME_MAX];
    int saved = errno;

    u->set->n_drop[why]++;
    /* What the peer did wrong is info; what echod had to shed, warning.
     * Ask the limiter first: under a flood nearly every drop is
     * suppressed, and the address need not be formatted for those. */
    if (!log_limit_pass(lim, why < UDP_DROP_PER_SOURCE ? LOG_INFO
                                                       : LOG_WARNING)) {
        return;
    }
    sock_name((const struct sockaddr *)peer, who, sizeof(who));
    errno = saved;
    switch (why) {
    case UDP_DROP_TRUNCATED:
        log_limit_write(lim, LOG_INFO, false, "%s: dropped a datagram from %s: "
                    "longer than %zu bytes", u->name, who, u->set->dgram_max);
        break;
    case UDP_DROP_LOOP:
        log_limit_write(lim, LOG_INFO, false, "%s: dropped a datagram from %s: "
                    "no replies to source port %u (echo loop guard)", u->name,
                    who, sock_port((const struct sockaddr *)peer));
        break;
    case UDP_DROP_ADDRESS:
        log_limit_write(lim, LOG_INFO, false, "%s: dropped a datagram from %s: "
                    "not between unicast addresses", u->name, who);
        break;
    case UDP_DROP_PER_SOURCE:
        log_limit_write(lim, LOG_WARNING, false, "%s: replies to %s over "
                    "udp_per_source_rate (%g/s), dropping", u->name, who,
                    u->set->src.rate);
        break;
    case UDP_DROP_RATE:
        log_limit_write(lim, LOG_WARNING, false, "%s: replies over "
                    "udp_rate_limit (%g/s), dropping (this one to %s)",
                    u->name, u->set->rate.rate, who);
        break;
    case UDP_DROP_BLOCKED:
        log_limit_write(lim, LOG_WARNING, false, "%s: send buffer full, reply "
                    "to %s dropped", u->name, who);
        break;
    case UDP_DROP_ERROR:
        log_limit_write(lim, LOG_WARNING, true, "%s: reply to %s failed",
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
    for (const struct list *n = set->all.next; n != &set->all; n = n->next) {
        if (list_entry(n, struct udp_sock, node)->port == port) {
            return true;
        }
    }
    return false;
}

/* Decide about one received datagram: -1 to answer it, or why not. The
 * cheap checks come first, and the per-source bucket before the global
 * one, so one flooding source cannot spend everybody's tokens. */
static int
udp_judge(struct udp_sock *u, struct msghdr *m, struct udp_dest *d)
{
    const struct sockaddr_storage *peer = m->msg_name;
    unsigned port = sock_port((const struct sockaddr *)peer);

    if (m->msg_flags & MSG_TRUNC) {
        return UDP_DROP_TRUNCATED;
    }
    if (udp_loop_port(port) || udp_own_port(u->set, port)) {
        return UDP_DROP_LOOP;
    }
    /* Control data cut short may have lost the packet info (an inherited
     * socket with more options on): then the destination is unknown and
     * could be a broadcast, so do not answer. */
    if ((m->msg_flags & MSG_CTRUNC) || !udp_source_ok(peer) ||
        !udp_dest_ok(m, d)) {
        return UDP_DROP_ADDRESS;
    }
    if (!srate_take(&u->set->src, (const struct sockaddr *)peer,
                    u->set->loop->now)) {
        return UDP_DROP_PER_SOURCE;
    }
    if (!tb_take(&u->set->rate, u->set->loop->now)) {
        return UDP_DROP_RATE;
    }
    return -1;
}

/* Send out[0..n): what the kernel refuses is dropped, never queued. */
static void
udp_send(struct udp_sock *u, unsigned n)
{
    struct udp_set *set = u->set;
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
            for (unsigned j = k; j < k + (unsigned)r; j++) {
                set->n_echoed++;
                set->bytes_echoed += out[j].msg_len;
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

/* Judge the n datagrams just received and send back the good ones. */
static void
udp_answer(struct udp_sock *u, unsigned n)
{
    struct udp_set *set = u->set;
    struct udp_batch *b = set->batch;
    unsigned nout = 0;

    for (unsigned i = 0; i < n; i++) {
        struct msghdr *m = &b->in[i].msg_hdr;
        struct msghdr *o = &b->out[nout].msg_hdr;
        struct udp_dest d;
        int why;

        set->n_rx++;
        why = udp_judge(u, m, &d);
        if (why >= 0) {
            udp_drop(u, (enum udp_drop)why, &b->peer[i]);
            continue;
        }
        b->out_iov[nout].iov_base = b->data[i];
        b->out_iov[nout].iov_len = b->in[i].msg_len;
        memset(o, 0, sizeof(*o));
        o->msg_name = &b->peer[i];
        o->msg_namelen = m->msg_namelen;
        o->msg_iov = &b->out_iov[nout];
        o->msg_iovlen = 1;
        o->msg_controllen = udp_reply_ctl(&d, b->out_ctl[nout].buf,
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

/* One turn: receive until EAGAIN or the budget is spent, then requeue. */
static void
udp_run(struct udp_sock *u)
{
    unsigned done = 0;

    while (u->readable && done < UDP_TURN_BUDGET) {
        unsigned want = UDP_TURN_BUDGET - done;
        int n;

        want = want < UDP_BATCH ? want : UDP_BATCH;
        udp_prepare(u->set, want);
        n = recvmmsg(u->io.fd, u->set->batch->in, want, 0, NULL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                u->readable = false;
                break;
            }
            log_limited(&udp_recv_log, LOG_WARNING, true,
                        "%s: receive failed", u->name);
            done++; /* an error costs budget too: it cannot spin */
            continue;
        }
        /* A short batch found the queue empty; any later datagram raises
         * a new edge. */
        if ((unsigned)n < want) {
            u->readable = false;
        }
        done += (unsigned)n;
        udp_answer(u, (unsigned)n);
    }
    /* Budget spent with datagrams maybe still queued: no new edge will
     * come for those, so come back before the next blocking wait. */
    if (u->readable) {
        loop_ready(u->set->loop, &u->io);
    }
}

static void
udp_on_event(struct loop_io *io, uint32_t events)
{
    struct udp_sock *u = (struct udp_sock *)io;

    if (events & EPOLLIN) {
        u->readable = true;
    }
    if (events & EPOLLOUT) {
        u->writable = true;
    }
    udp_run(u);
}

static void
udp_on_ready(struct loop_io *io)
{
    udp_run((struct udp_sock *)io);
}

static void
udp_on_free(struct loop_io *io)
{
    free(io);
}

/* The buffers and the source table, on the first socket only: a TCP-only
 * echod holds no UDP memory. */
static int
udp_alloc(struct udp_set *set)
{
    if (set->batch != NULL) {
        return 0;
    }
    if (srate_init(&set->src, set->src.rate, set->src.burst,
                   set->src.prefix4, set->src.prefix6) < 0) {
        return -1;
    }
    set->batch = malloc(sizeof(*set->batch));
    if (set->batch == NULL) {
        srate_fini(&set->src);
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

static struct udp_sock *
udp_register(struct udp_set *set, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    struct udp_sock *u;
    char addr[SOCK_NAME_MAX];
    int saved;

    memset(&ss, 0, sizeof(ss));
    if (udp_alloc(set) < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
        sock_pktinfo(fd, ss.ss_family) < 0) {
        return NULL;
    }
    if (ss.ss_family == AF_INET6) {
        /* IPv4 datagrams on a dual-stack socket: their IP_PKTINFO tells a
         * broadcast from a unicast destination. Harmless if v6-only. */
        (void)sock_pktinfo(fd, AF_INET);
    }
    u = calloc(1, sizeof(*u));
    if (u == NULL) {
        return NULL;
    }
    loop_io_init(&u->io, fd, udp_on_event, udp_on_ready, udp_on_free);
    u->set = set;
    u->writable = true;
    u->port = (uint16_t)sock_port((const struct sockaddr *)&ss);
    sock_name((struct sockaddr *)&ss, addr, sizeof(addr));
    snprintf(u->name, sizeof(u->name), "%.*s/udp",
             (int)sizeof(u->name) - 5, addr);
    /* Readable and writable, once: the first edge comes at once if
     * datagrams are already waiting (an inherited socket). */
    if (loop_add(set->loop, &u->io, EPOLLIN | EPOLLOUT) < 0) {
        saved = errno;
        free(u);
        errno = saved;
        return NULL;
    }
    list_insert_tail(&set->all, &u->node);
    return u;
}

struct udp_sock *
udp_open(struct udp_set *set, const struct cfg_listen *conf)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct udp_sock *u;
    int fd, saved;

    if (sock_addr(conf->address, (int)conf->port, &ss, &len) < 0) {
        return NULL;
    }
    fd = sock_udp((struct sockaddr *)&ss, len, conf->ipv6_only);
    if (fd < 0) {
        return NULL;
    }
    u = udp_register(set, fd);
    if (u == NULL) {
        saved = errno;
        close(fd);
        errno = saved;
        return NULL;
    }
    u->conf = *conf;
    return u;
}

struct udp_sock *
udp_adopt(struct udp_set *set, int fd)
{
    struct udp_sock *u;

    if (sock_nonblock_cloexec(fd) < 0) {
        return NULL;
    }
    u = udp_register(set, fd);
    if (u != NULL) {
        u->adopted = true;
        u->io.shared = true; /* the service manager keeps its copy */
    }
    return u;
}

void
udp_close(struct udp_sock *u)
{
    list_remove(&u->node);
    loop_close(u->set->loop, &u->io);
}

struct udp_sock *
udp_find(struct udp_set *set, const struct cfg_listen *conf, bool exact)
{
    for (struct list *n = set->all.next; n != &set->all; n = n->next) {
        struct udp_sock *u = list_entry(n, struct udp_sock, node);

        if (u->adopted) {
            continue;
        }
        if (exact ? cfg_listen_equal(&u->conf, conf)
                  : strcmp(u->conf.address, conf->address) == 0 &&
                        u->conf.port == conf->port) {
            return u;
        }
    }
    return NULL;
}
