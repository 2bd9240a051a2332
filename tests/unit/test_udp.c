/*
 * test_udp.c - UDP echo on a real loop with real sockets on loopback:
 * whole datagrams back over IPv4 and IPv6, the reply leaving from the
 * address asked, the per-turn budget and requeue, a refused send dropped
 * and counted (never retried in a loop, never queued), the loop guard on
 * source ports, truncation, both rate limiters with the source prefix
 * passed through, and both byte budgets (the per-source table itself is
 * tested in test_srcrate.c). A discard socket answers nothing, spends no
 * token and counts what it took as discarded, not dropped.
 *
 * sendmmsg is wrapped: scripted results (EAGAIN, an error, a partial
 * batch) first, the kernel otherwise. clock_gettime is wrapped so the
 * rate limiter tests run on a clock that only the test moves.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/sock_diag.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acl.h"
#include "log.h"
#include "loop.h"
#include "udp.h"
#include "unit.h"
#include "fake_clock.h"

/* ---- sendmmsg fault injection ---- */

int __real_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags);
int __wrap_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags);

#define SND_PASS 0      /* to the kernel */
#define SND_ONE (-1000) /* to the kernel, one message only */

static int snd_script[8]; /* -errno, SND_ONE or SND_PASS, in call order */
static int snd_scripted;
static int snd_calls;
static bool snd_block; /* every call: EAGAIN */

int
__wrap_sendmmsg(int fd, struct mmsghdr *v, unsigned n, int flags)
{
    int what = snd_calls < snd_scripted ? snd_script[snd_calls] : SND_PASS;

    snd_calls++;
    if (snd_block) {
        errno = EAGAIN;
        return -1;
    }
    if (what == SND_ONE) {
        return __real_sendmmsg(fd, v, 1, flags);
    }
    if (what < 0) {
        errno = -what;
        return -1;
    }
    return __real_sendmmsg(fd, v, n, flags);
}

/* ---- fixture ---- */

#define DEADLINE_MS 20000
#define BIG 1000000.0 /* a limit that never bites */

static struct loop l;
static struct udp_set us;
static struct udp_limit lim;
static struct bset_local socks;
static struct bset adopted; /* sockets "inherited" by a test */
static struct bset_sock *u4;
static struct sockaddr_in a4; /* where u4 listens */
static int fds[8];
static int n_fds;

/* The limits in total (replies a second, at once, bytes a second) and
 * per source (the same three), at /32 and /64. */
static void
configure(double rate, double burst, double rate_bytes, double src_rate,
          double src_burst, double src_rate_bytes)
{
    udp_limit_configure(&lim, rate, burst, rate_bytes, src_rate, src_burst,
                        src_rate_bytes, 32, 64, l.now);
}

/* A UDP socket of this worker, set up as bset.c sets up its own. */
static struct bset_sock *
open_udp(const char *addr, bool v6only, struct sockaddr_storage *where)
{
    static uint32_t id;
    struct sockaddr_storage ss;
    socklen_t len;
    struct bset_sock *u;
    int fd;

    assert_int_equal(sock_addr(addr, 0, &ss, &len), 0);
    fd = sock_bound((struct sockaddr *)&ss, len, SOCK_DGRAM, v6only, false, 0);
    assert_true(fd >= 0);
    assert_int_equal(sock_pktinfo(fd, ss.ss_family), 0);
    if (ss.ss_family == AF_INET6) {
        assert_int_equal(sock_pktinfo(fd, AF_INET), 0);
    }
    u = bset_sock_add(&socks, ++id, fd, false, &udp_kind, &us, addr, NULL);
    assert_non_null(u);
    len = sizeof(*where);
    assert_int_equal(getsockname(u->io.fd, (struct sockaddr *)where, &len), 0);
    return u;
}

static int
setup(void **state)
{
    struct sockaddr_storage ss;

    (void)state;
    log_set_level(LOG_ERR); /* the drop lines are expected here */
    fake_clock = false;
    snd_scripted = snd_calls = 0;
    snd_block = false;
    n_fds = 0;
    if (loop_init(&l) < 0 || udp_limit_init(&lim) < 0) {
        return -1;
    }
    bset_local_init(&socks, &l);
    bset_init(&adopted, 1);
    udp_set_init(&us, &l, &socks, &lim);
    configure(BIG, BIG, 0, BIG, BIG, 0);
    u4 = open_udp("127.0.0.1", true, &ss);
    memcpy(&a4, &ss, sizeof(a4));
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    bset_local_fini(&socks);
    bset_fini(&adopted);
    udp_set_fini(&us);
    udp_limit_fini(&lim);
    loop_fini(&l);
    for (int i = 0; i < n_fds; i++) {
        close(fds[i]);
    }
    fake_clock = false;
    log_set_level(LOG_INFO);
    return 0;
}

/* A nonblocking UDP socket bound to addr:port (port 0: any), or -1 with
 * errno if that cannot be bound. Closed by teardown. */
static int
client_at(int family, const char *addr, unsigned port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(sock_addr(addr, (int)port, &ss, &len), 0);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    assert_true(n_fds < (int)(sizeof(fds) / sizeof(fds[0])));
    fds[n_fds++] = fd;
    return fd;
}

static int
client(void)
{
    return client_at(AF_INET, "127.0.0.1", 0);
}

static void
send_to(int fd, const void *to, socklen_t tolen, const void *buf, size_t len)
{
    assert_int_equal(sendto(fd, buf, len, 0, to, tolen), (ssize_t)len);
}

/* Send n datagrams of `size` bytes to u4, the i-th tagged with tag + i. */
static void
send_n(int fd, int n, size_t size, uint32_t tag)
{
    static unsigned char buf[65507];

    assert_true(size >= sizeof(uint32_t) && size <= sizeof(buf));
    for (int i = 0; i < n; i++) {
        uint32_t t = tag + (uint32_t)i;

        t_fill(buf, size, t);
        memcpy(buf, &t, sizeof(t));
        send_to(fd, &a4, sizeof(a4), buf, size);
    }
}

/* Bytes queued on echod's socket (skb truesize, as the kernel counts). */
static uint32_t
rmem(int fd)
{
    uint32_t mi[SK_MEMINFO_VARS];
    socklen_t len = sizeof(mi);

    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mi, &len), 0);
    return mi[SK_MEMINFO_RMEM_ALLOC];
}

/* Send n equal datagrams and wait until all of them sit in u4's receive
 * queue, so that one epoll edge stands for all of them. */
static void
send_n_queued(int fd, int n, size_t size, uint32_t tag)
{
    uint64_t deadline = t_now_ms() + DEADLINE_MS;
    uint32_t one;

    assert_int_equal(rmem(u4->io.fd), 0);
    send_n(fd, 1, size, tag);
    while ((one = rmem(u4->io.fd)) == 0) {
        assert_true(t_now_ms() < deadline);
        usleep(1000);
    }
    send_n(fd, n - 1, size, tag + 1);
    while (rmem(u4->io.fd) < one * (uint32_t)n) {
        assert_true(t_now_ms() < deadline);
        usleep(1000);
    }
    assert_int_equal(rmem(u4->io.fd), one * (uint32_t)n);
}

static void
pump_until_rx(uint64_t n)
{
    uint64_t deadline = t_now_ms() + DEADLINE_MS;

    while (us.n_rx < n) {
        assert_true(t_now_ms() < deadline);
        loop_run_once(&l, 10);
    }
}

/* Every reply waiting on fd now (they were sent before the loop turn
 * returned); returns how many, checking each against its tag. */
static int
replies(int fd, size_t size)
{
    static unsigned char buf[65536], want[65536];
    int n = 0;
    ssize_t r;

    while ((r = recv(fd, buf, sizeof(buf), 0)) >= 0) {
        uint32_t t;

        assert_int_equal(r, (ssize_t)size);
        memcpy(&t, buf, sizeof(t));
        t_fill(want, size, t);
        memcpy(want, &t, sizeof(t));
        assert_memory_equal(buf, want, size);
        n++;
    }
    assert_int_equal(errno, EAGAIN);
    return n;
}

/* Wait for one datagram on a nonblocking fd, pumping the loop. */
static ssize_t
await_reply(int fd, void *buf, size_t cap)
{
    uint64_t deadline = t_now_ms() + DEADLINE_MS;
    ssize_t r;

    while ((r = recv(fd, buf, cap, 0)) < 0) {
        assert_int_equal(errno, EAGAIN);
        assert_true(t_now_ms() < deadline);
        loop_run_once(&l, 10);
    }
    return r;
}

/* The invariant the STATUS line relies on. */
static void
assert_accounted(void)
{
    assert_int_equal(us.n_rx, us.n_echoed + us.n_discarded + udp_dropped(&us));
}

/* The policy of a UDP listen entry with service = "discard" whose
 * allow/deny refuse `denied` (one address), made as the server makes it. */
static struct bset_pol *
discard_pol(const char *denied)
{
    struct acl_builder *b = acl_builder_new();
    struct cfg cf;
    struct cfg_listen cl = cfg_default_listen[0];
    struct bset_pol *pol;

    assert_non_null(b);
    assert_int_equal(acl_add(b, denied, NULL, 0), 0);
    cfg_defaults(&cf);
    cf.deny = acl_build(b);
    assert_non_null(cf.deny);
    cl.protocol = CFG_PROTO_UDP;
    snprintf(cl.service, sizeof(cl.service), "discard");
    pol = bset_pol_new(&cf, &cl);
    assert_non_null(pol);
    assert_true(pol->discard);
    cfg_fini(&cf);
    return pol;
}

/* ---- tests ---- */

/* A discard socket (RFC 863): every datagram is counted (received, its
 * bytes, discarded) and none is answered: no sendmmsg at all. They are
 * not drops, and they spend no rate-limit token: with one token in the
 * bucket and the clock stopped, an echo afterwards still gets it.
 * allow/deny still apply: a refused source is a drop (acl). */
static void
test_discard(void **state)
{
    static struct sts_tab tab;
    struct sts_ctr *ctr = &tab.slot[0].c;
    int c = client(), denied = client_at(AF_INET, "127.0.0.2", 0);
    unsigned char buf[64];

    (void)state;
    sts_tab_init(&tab);
    socks.tab = &tab; /* u4 has slot 0 */
    u4->pol = discard_pol("127.0.0.2");
    fake_clock = true;
    fake_ms = 1000000;
    loop_update_now(&l);
    configure(1, 1, 0, 1, 1, 0);

    send_n_queued(c, 10, 100, 1);
    pump_until_rx(10);
    assert_int_equal(us.n_discarded, 10);
    assert_int_equal(us.n_echoed, 0);
    assert_int_equal(udp_dropped(&us), 0);
    assert_int_equal(snd_calls, 0);
    assert_int_equal(ctr->udp_rx, 10);
    assert_int_equal(ctr->udp_discarded, 10);
    assert_int_equal(ctr->bytes_in, 1000);
    assert_int_equal(ctr->bytes_out, 0);
    assert_int_equal(replies(c, 100), 0);

    send_to(denied, &a4, sizeof(a4), "x", 1);
    pump_until_rx(11);
    assert_int_equal(us.n_drop[UDP_DROP_ACL], 1);
    assert_int_equal(ctr->udp_drop[UDP_DROP_ACL], 1);
    assert_int_equal(us.n_discarded, 10);
    assert_int_equal(snd_calls, 0);
    assert_accounted();

    /* The same socket as echo: the one token is still there. */
    bset_pol_unref(u4->pol);
    u4->pol = NULL;
    send_n(c, 1, 16, 99);
    assert_int_equal(await_reply(c, buf, sizeof(buf)), 16);
    assert_int_equal(us.n_echoed, 1);
    assert_int_equal(us.n_drop[UDP_DROP_RATE], 0);
    assert_accounted();
}

/* Datagrams of 0, 1, 1472, 9000 and 65507 bytes come back whole and
 * byte-exact, over IPv4 and (if the host has it) IPv6. */
static void
test_echo_sizes(void **state)
{
    static const size_t sizes[] = {0, 1, 1472, 9000, 65507};
    static unsigned char out[65507], back[65536];
    struct sockaddr_storage a6;
    uint64_t bytes = 0;
    int c4 = client(), c6 = client_at(AF_INET6, "::1", 0);

    (void)state;
    if (c6 >= 0) {
        open_udp("::1", true, &a6);
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        t_fill(out, sizes[i], i + 1);
        send_to(c4, &a4, sizeof(a4), out, sizes[i]);
        assert_int_equal(await_reply(c4, back, sizeof(back)), sizes[i]);
        assert_memory_equal(back, out, sizes[i]);
        bytes += sizes[i];
        if (c6 < 0) {
            continue;
        }
        send_to(c6, &a6, sizeof(struct sockaddr_in6), out, sizes[i]);
        assert_int_equal(await_reply(c6, back, sizeof(back)), sizes[i]);
        assert_memory_equal(back, out, sizes[i]);
        bytes += sizes[i];
    }
    assert_int_equal(us.n_echoed, c6 >= 0 ? 10 : 5);
    assert_int_equal(us.bytes_echoed, bytes);
    assert_int_equal(udp_dropped(&us), 0);
    assert_accounted();
}

/* Bound to the wildcard, the reply leaves from the address the request
 * was sent to: a client whose socket is connected to 127.0.0.2 takes
 * nothing from 127.0.0.1. Also for IPv4 on a dual-stack IPv6 socket. */
static void
test_reply_from_address_asked(void **state)
{
    struct sockaddr_storage any4, any6;
    struct sockaddr_in to;
    struct sockaddr_in6 to6;
    char back[16];
    int c = client(), c6;

    (void)state;
    open_udp("0.0.0.0", true, &any4);
    memcpy(&to, &any4, sizeof(to));
    assert_int_equal(inet_pton(AF_INET, "127.0.0.2", &to.sin_addr), 1);
    assert_int_equal(connect(c, (struct sockaddr *)&to, sizeof(to)), 0);
    assert_int_equal(send(c, "via .2", 6, 0), 6);
    assert_int_equal(await_reply(c, back, sizeof(back)), 6);
    assert_memory_equal(back, "via .2", 6);

    c6 = client_at(AF_INET6, "::ffff:127.0.0.1", 0);
    if (c6 < 0) {
        return; /* no IPv6 here */
    }
    open_udp("::", false, &any6);
    memcpy(&to6, &any6, sizeof(to6));
    assert_int_equal(inet_pton(AF_INET6, "::ffff:127.0.0.3", &to6.sin6_addr),
                     1);
    assert_int_equal(connect(c6, (struct sockaddr *)&to6, sizeof(to6)), 0);
    assert_int_equal(send(c6, "via .3", 6, 0), 6);
    assert_int_equal(await_reply(c6, back, sizeof(back)), 6);
    assert_memory_equal(back, "via .3", 6);
    assert_accounted();
}

/* An inherited socket (as systemd hands over the one that started echod)
 * holds datagrams that arrived before echod asked for packet info: the
 * kernel then reports no local address. Those are answered too, on a
 * plain IPv4 socket and on a dual-stack one. */
static void
test_adopted_with_datagrams_queued(void **state)
{
    static const char *const binds[] = {"127.0.0.1", "::"};
    char back[16];

    (void)state;
    for (size_t i = 0; i < sizeof(binds) / sizeof(binds[0]); i++) {
        struct sockaddr_storage ss;
        socklen_t len;
        int fam = i == 0 ? AF_INET : AF_INET6;
        int fd = socket(fam, SOCK_DGRAM | SOCK_CLOEXEC, 0), c = client();
        int off = 0;
        uint64_t rx = us.n_rx;

        assert_true(fd >= 0);
        if (fam == AF_INET6) {
            t_setint(fd, IPPROTO_IPV6, IPV6_V6ONLY, off);
        }
        assert_int_equal(sock_addr(binds[i], 0, &ss, &len), 0);
        if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
            close(fd);
            continue; /* no IPv6 here */
        }
        len = sizeof(ss);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
        memcpy(&a4, &ss, sizeof(a4)); /* the port is at the same place */
        a4.sin_family = AF_INET;
        a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        send_to(c, &a4, sizeof(a4), "early", 5);
        {
            struct bset_ent *e = bset_adopt(&adopted, fd, true);

            assert_non_null(e);
            assert_non_null(bset_sock_add(&socks, e->id, e->fd[0], true,
                                          &udp_kind, &us, e->name, NULL));
        }
        assert_int_equal(await_reply(c, back, sizeof(back)), 5);
        assert_memory_equal(back, "early", 5);
        send_to(c, &a4, sizeof(a4), "later", 5);
        assert_int_equal(await_reply(c, back, sizeof(back)), 5);
        assert_int_equal(us.n_rx, rx + 2);
    }
    assert_int_equal(udp_dropped(&us), 0);
    assert_accounted();
}

/* Per-turn counters through shims between the loop and u4. */
static uint64_t turn_rx_max;
static int turns;

static void
shim_event(struct loop_io *io, uint32_t ev)
{
    uint64_t before = us.n_rx;

    t_calls()->events++;
    t_calls()->orig->on_event(io, ev);
    turns++;
    if (us.n_rx - before > turn_rx_max) {
        turn_rx_max = us.n_rx - before;
    }
}

static void
shim_ready(struct loop_io *io)
{
    uint64_t before = us.n_rx;

    t_calls()->readies++;
    t_calls()->orig->on_ready(io);
    turns++;
    if (us.n_rx - before > turn_rx_max) {
        turn_rx_max = us.n_rx - before;
    }
}

/* More datagrams queued than UDP_TURN_BUDGET: a turn takes exactly the
 * budget and requeues the socket, which the ready list serves (in the
 * same iteration, then the next) without a new edge, until EAGAIN.
 * The replies are refused (EAGAIN) so that no send frees buffer space:
 * that would raise an EPOLLOUT edge, which reports the pending input too
 * and would hide a missing requeue. */
static void
test_budget_requeue(void **state)
{
    int n = 2 * UDP_TURN_BUDGET + 10, c = client();

    (void)state;
    t_count_calls(&u4->io);
    t_calls()->shim.on_event = shim_event;
    t_calls()->shim.on_ready = shim_ready;
    turn_rx_max = 0;
    turns = 0;
    snd_block = true;
    send_n_queued(c, n, 32, 1000);

    loop_run_once(&l, 1000);
    assert_int_equal(t_calls()->events, 1);
    assert_int_equal(t_calls()->readies, 1);
    assert_int_equal(us.n_rx, 2 * UDP_TURN_BUDGET);
    assert_int_equal(turn_rx_max, UDP_TURN_BUDGET);
    assert_true(u4->readable);
    assert_ptr_equal(l.ready.next, &u4->io.node); /* requeued again */

    loop_run_once(&l, 1000);
    assert_int_equal(t_calls()->events, 1);
    assert_int_equal(t_calls()->readies, 2);
    assert_int_equal(turns, 3);
    assert_int_equal(us.n_rx, n);
    assert_false(u4->readable); /* a short batch: the queue is empty */
    assert_false(list_linked(&u4->io.node));
    assert_int_equal(us.n_drop[UDP_DROP_BLOCKED], n);
    assert_int_equal(snd_calls, 1); /* then no retry until EPOLLOUT */
    assert_accounted();

    /* Room again: the queued-up input was all read, and the next one is
     * answered (its edge carries EPOLLOUT). */
    snd_block = false;
    send_n(c, 1, 32, 5000);
    pump_until_rx((uint64_t)n + 1);
    assert_int_equal(replies(c, 32), 1);
}

/* A send that would block drops the replies of that batch: counted, not
 * queued, and not retried until an EPOLLOUT edge says there is room
 * (one sendmmsg call for the whole batch, not one per reply). */
static void
test_blocked_send_drops(void **state)
{
    int c = client();

    (void)state;
    snd_block = true;
    send_n_queued(c, 5, 16, 1);
    loop_run_once(&l, 1000);
    assert_int_equal(us.n_rx, 5);
    assert_int_equal(us.n_drop[UDP_DROP_BLOCKED], 5);
    assert_int_equal(us.n_echoed, 0);
    assert_int_equal(snd_calls, 1);
    assert_false(u4->writable);
    assert_int_equal(replies(c, 16), 0);

    /* Room again: the next edge carries EPOLLOUT and replies flow. */
    snd_block = false;
    send_n(c, 1, 16, 77);
    pump_until_rx(6);
    assert_true(u4->writable);
    assert_int_equal(us.n_echoed, 1);
    assert_int_equal(replies(c, 16), 1);
    assert_accounted();
}

/* sendmmsg taking part of a batch, then failing for one reply: the rest
 * still goes out, the failed one is dropped as an error. */
static void
test_partial_and_failed_send(void **state)
{
    int c = client();
    unsigned char buf[16];
    uint32_t t;

    (void)state;
    snd_script[0] = SND_ONE;  /* reply 0 */
    snd_script[1] = -EPERM;   /* reply 1: say a firewall refused it */
    snd_script[2] = SND_PASS; /* replies 2 and 3 */
    snd_scripted = 3;
    send_n_queued(c, 4, 16, 10);
    loop_run_once(&l, 1000);
    assert_int_equal(snd_calls, 3);
    assert_int_equal(us.n_echoed, 3);
    assert_int_equal(us.n_drop[UDP_DROP_ERROR], 1);
    for (uint32_t want = 10; want < 14; want++) {
        if (want == 11) {
            continue;
        }
        assert_int_equal(recv(c, buf, sizeof(buf), 0), 16);
        memcpy(&t, buf, sizeof(t));
        assert_int_equal(t, want);
    }
    assert_int_equal(recv(c, buf, sizeof(buf), 0), -1);
    assert_accounted();
}

/* Source ports that could start a loop get no reply: 0 and 1..1023, a
 * few well-known services above, and the socket's own port. */
static void
test_loop_ports(void **state)
{
    static const unsigned low[] = {7, 19, 13, 17, 37, 123, 1023};
    int lowc = -1, selfc, ok = client();
    char back[8];

    (void)state;
    assert_true(udp_loop_port(0));
    assert_true(udp_loop_port(7));
    assert_true(udp_loop_port(19));
    assert_true(udp_loop_port(1023));
    assert_false(udp_loop_port(1024));
    assert_true(udp_loop_port(2049));
    assert_true(udp_loop_port(5353));
    assert_true(udp_loop_port(11211));
    assert_false(udp_loop_port(32768));
    assert_false(udp_loop_port(60999));

    /* Real datagrams from a low port (needs root; else skipped). */
    for (size_t i = 0; i < sizeof(low) / sizeof(low[0]) && lowc < 0; i++) {
        lowc = client_at(AF_INET, "127.0.0.1", low[i]);
    }
    if (lowc >= 0) {
        send_to(lowc, &a4, sizeof(a4), "loop?", 5);
    }
    /* From 127.0.0.2 on echod's own port number. */
    selfc = client_at(AF_INET, "127.0.0.2", ntohs(a4.sin_port));
    assert_true(selfc >= 0);
    send_to(selfc, &a4, sizeof(a4), "self?", 5);
    /* The queue is FIFO: once this one is back, the others were seen. */
    send_to(ok, &a4, sizeof(a4), "fine", 4);
    assert_int_equal(await_reply(ok, back, sizeof(back)), 4);
    assert_int_equal(us.n_drop[UDP_DROP_LOOP], lowc >= 0 ? 2 : 1);
    assert_int_equal(us.n_echoed, 1);
    if (lowc >= 0) {
        assert_int_equal(recv(lowc, back, sizeof(back), 0), -1);
    }
    assert_int_equal(recv(selfc, back, sizeof(back), 0), -1);
    assert_accounted();
}

/* A datagram from the port of another of echod's own UDP sockets is a
 * loop too (two echo sockets, or two echods, answering each other). */
static void
test_loop_other_own_port(void **state)
{
    struct sockaddr_storage bss;
    int from_b, ok = client();
    char back[8];

    (void)state;
    (void)open_udp("127.0.0.1", true, &bss);
    from_b = client_at(AF_INET, "127.0.0.2",
                       ntohs(((struct sockaddr_in *)&bss)->sin_port));
    assert_true(from_b >= 0);
    send_to(from_b, &a4, sizeof(a4), "loop?", 5);
    send_to(ok, &a4, sizeof(a4), "fine", 4);
    assert_int_equal(await_reply(ok, back, sizeof(back)), 4);
    assert_int_equal(us.n_drop[UDP_DROP_LOOP], 1);
    assert_int_equal(recv(from_b, back, sizeof(back), 0), -1);
    assert_accounted();
}

/* A datagram to a broadcast address gets no reply (one forged datagram
 * would get an answer from every host on the segment). */
static void
test_broadcast_destination(void **state)
{
    struct sockaddr_storage any;
    struct sockaddr_in bc;
    int c = client(), one = 1;
    char back[8];

    (void)state;
    open_udp("0.0.0.0", true, &any);
    memcpy(&bc, &any, sizeof(bc));
    assert_int_equal(inet_pton(AF_INET, "127.255.255.255", &bc.sin_addr), 1);
    assert_int_equal(setsockopt(c, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)),
                     0);
    if (sendto(c, "all?", 4, 0, (struct sockaddr *)&bc, sizeof(bc)) != 4) {
        return; /* no broadcast route on this loopback */
    }
    pump_until_rx(1);
    assert_int_equal(us.n_drop[UDP_DROP_ADDRESS], 1);
    /* A unicast one to the same socket is answered. */
    assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &bc.sin_addr), 1);
    send_to(c, &bc, sizeof(bc), "one", 3);
    assert_int_equal(await_reply(c, back, sizeof(back)), 3);
    assert_int_equal(us.n_echoed, 1);
    assert_accounted();
}

/* A datagram larger than the buffer is dropped whole, not cut. */
static void
test_truncated_dropped(void **state)
{
    unsigned char out[101], back[128];
    int c = client();

    (void)state;
    us.dgram_max = 100;
    t_fill(out, sizeof(out), 5);
    send_to(c, &a4, sizeof(a4), out, 101);
    send_to(c, &a4, sizeof(a4), out, 100);
    assert_int_equal(await_reply(c, back, sizeof(back)), 100);
    assert_memory_equal(back, out, 100);
    assert_int_equal(us.n_drop[UDP_DROP_TRUNCATED], 1);
    assert_int_equal(us.n_echoed, 1);
    assert_int_equal(recv(c, back, sizeof(back), 0), -1);
    assert_accounted();
}

/* The global bucket, on a clock that stands still: exactly the burst
 * goes out, then rate x elapsed seconds more. */
static void
test_global_rate(void **state)
{
    int c = client();

    (void)state;
    fake_clock = true;
    fake_ms = 1000000;
    loop_update_now(&l);
    configure(2, 3, 0, BIG, BIG, 0);
    send_n_queued(c, 10, 16, 100);
    pump_until_rx(10);
    assert_int_equal(us.n_echoed, 3);
    assert_int_equal(us.n_drop[UDP_DROP_RATE], 7);
    assert_int_equal(replies(c, 16), 3);

    fake_ms += 1000; /* two tokens */
    send_n(c, 10, 16, 200);
    pump_until_rx(20);
    assert_int_equal(us.n_echoed, 5);
    assert_int_equal(us.n_drop[UDP_DROP_RATE], 15);
    assert_int_equal(replies(c, 16), 2);
    assert_accounted();
}

/* Each source has its own bucket, and it is asked first: a source over
 * its limit spends none of the global tokens, which stay for others. */
static void
test_per_source_rate(void **state)
{
    int a = client(), b = client_at(AF_INET, "127.0.0.2", 0);

    (void)state;
    fake_clock = true;
    fake_ms = 2000000;
    loop_update_now(&l);
    configure(1, 4, 0, 1, 3, 0);
    send_n(a, 10, 16, 300);
    pump_until_rx(10);
    assert_int_equal(replies(a, 16), 3);
    assert_int_equal(us.n_drop[UDP_DROP_PER_SOURCE], 7);
    assert_int_equal(us.n_drop[UDP_DROP_RATE], 0);

    /* B has a full bucket of 3; the global one has 1 token left. */
    send_n(b, 3, 16, 400);
    pump_until_rx(13);
    assert_int_equal(replies(b, 16), 1);
    assert_int_equal(us.n_drop[UDP_DROP_RATE], 2);

    /* A second later: one token each for A and for everybody. */
    fake_ms += 1000;
    send_n(a, 2, 16, 500);
    pump_until_rx(15);
    assert_int_equal(replies(a, 16), 1);
    assert_int_equal(us.n_echoed, 5);
    assert_accounted();
}

/* One source is what source_prefix_ipv4 says, as for TCP: under /24,
 * 127.0.0.1 and 127.0.0.2 share one bucket; back at /32 (which starts
 * every bucket afresh) each has its own. */
static void
test_per_source_prefix(void **state)
{
    int a = client(), b = client_at(AF_INET, "127.0.0.2", 0);

    (void)state;
    fake_clock = true;
    fake_ms = 3000000;
    loop_update_now(&l);
    udp_limit_configure(&lim, BIG, BIG, 0, 1, 3, 0, 24, 64, l.now);
    send_n(a, 3, 16, 600);
    pump_until_rx(3);
    assert_int_equal(replies(a, 16), 3);
    send_n(b, 2, 16, 700);
    pump_until_rx(5);
    assert_int_equal(replies(b, 16), 0);
    assert_int_equal(us.n_drop[UDP_DROP_PER_SOURCE], 2);

    udp_limit_configure(&lim, BIG, BIG, 0, 1, 3, 0, 32, 64, l.now);
    send_n(b, 2, 16, 800);
    pump_until_rx(7);
    assert_int_equal(replies(b, 16), 2);
    send_n(a, 3, 16, 900);
    pump_until_rx(10);
    assert_int_equal(replies(a, 16), 3);
    assert_int_equal(us.n_drop[UDP_DROP_PER_SOURCE], 2);
    assert_accounted();
}

/* The byte budget of one source: large datagrams beyond it are dropped
 * (per-source-bytes) while small ones within it pass, and a datagram
 * refused for its size costs no reply token: with 10 replies at once, 3
 * large ones answered and 3 refused leave 7 for small ones. */
static void
test_per_source_bytes(void **state)
{
    int a = client();

    (void)state;
    fake_clock = true;
    fake_ms = 4000000;
    loop_update_now(&l);
    /* 1000 bytes a second: the burst is the floor, 65536 bytes. */
    configure(BIG, BIG, 0, 1, 10, 1000);
    send_n(a, 3, 20000, 1000);
    pump_until_rx(3);
    assert_int_equal(replies(a, 20000), 3); /* 5536 bytes left */
    send_n(a, 3, 20000, 1100);
    pump_until_rx(6);
    assert_int_equal(replies(a, 20000), 0);
    assert_int_equal(us.n_drop[UDP_DROP_PER_SOURCE_BYTES], 3);
    send_n(a, 8, 16, 1200);
    pump_until_rx(14);
    assert_int_equal(replies(a, 16), 7);
    assert_int_equal(us.n_drop[UDP_DROP_PER_SOURCE], 1);

    /* 15 s later: 5424 + 15000 bytes, room for one more large one. */
    fake_ms += 15000;
    send_n(a, 2, 20000, 1300);
    pump_until_rx(16);
    assert_int_equal(replies(a, 20000), 1);
    assert_int_equal(us.n_drop[UDP_DROP_PER_SOURCE_BYTES], 4);
    assert_int_equal(us.n_drop[UDP_DROP_RATE] + us.n_drop[UDP_DROP_RATE_BYTES],
                     0);
    assert_int_equal(us.bytes_echoed, 4 * 20000 + 7 * 16);
    assert_accounted();
}

/* The global byte budget, across two sources, asked after the per-source
 * one: A's datagram over its own budget spends none of the global bytes,
 * which are left for B until they run out (rate-bytes). */
static void
test_global_bytes(void **state)
{
    int a = client(), b = client_at(AF_INET, "127.0.0.2", 0);

    (void)state;
    fake_clock = true;
    fake_ms = 5000000;
    loop_update_now(&l);
    /* 100000 bytes a second and at once in all, 65536 at once each. */
    configure(BIG, BIG, 100000, BIG, BIG, 1000);
    send_n(a, 3, 30000, 2000);
    pump_until_rx(3);
    assert_int_equal(replies(a, 30000), 2);
    assert_int_equal(us.n_drop[UDP_DROP_PER_SOURCE_BYTES], 1);
    /* 40000 global bytes left: one more of 30000, from B. */
    send_n(b, 2, 30000, 2100);
    pump_until_rx(5);
    assert_int_equal(replies(b, 30000), 1);
    assert_int_equal(us.n_drop[UDP_DROP_RATE_BYTES], 1);
    send_n(b, 1, 16, 2200); /* 10000 left: a small one passes */
    pump_until_rx(6);
    assert_int_equal(replies(b, 16), 1);

    /* Half a second later: 50000 more in all, but B's own bucket (5520
     * + 500: its refused datagram was taken there) refuses it now. */
    fake_ms += 500;
    send_n(b, 1, 30000, 2300);
    pump_until_rx(7);
    assert_int_equal(replies(b, 30000), 0);
    assert_int_equal(us.n_drop[UDP_DROP_PER_SOURCE_BYTES], 2);
    assert_int_equal(us.n_drop[UDP_DROP_RATE_BYTES], 1);
    assert_int_equal(us.n_drop[UDP_DROP_RATE], 0);
    assert_accounted();
}

/* The global pair is taken whole or not at all too: with 4 replies and
 * 100000 bytes at once, a fourth datagram of 30000 bytes is refused for
 * its size and leaves the fourth reply token to a small one. */
static void
test_global_bytes_both_or_neither(void **state)
{
    int a = client();

    (void)state;
    fake_clock = true;
    fake_ms = 5500000;
    loop_update_now(&l);
    configure(1, 4, 100000, BIG, BIG, 0);
    send_n(a, 4, 30000, 2500);
    pump_until_rx(4);
    assert_int_equal(replies(a, 30000), 3);
    assert_int_equal(us.n_drop[UDP_DROP_RATE_BYTES], 1);
    send_n(a, 2, 16, 2600);
    pump_until_rx(6);
    assert_int_equal(replies(a, 16), 1);
    assert_int_equal(us.n_drop[UDP_DROP_RATE], 1);
    assert_accounted();
}

/* 0 turns both byte budgets off: large datagrams are limited by the
 * reply buckets only. */
static void
test_bytes_off(void **state)
{
    int a = client();

    (void)state;
    fake_clock = true;
    fake_ms = 6000000;
    loop_update_now(&l);
    configure(BIG, BIG, 0, BIG, BIG, 0);
    for (int round = 0; round < 4; round++) {
        send_n(a, 2, 60000, 3000 + 10 * (uint32_t)round);
        pump_until_rx(2 * (uint64_t)round + 2);
        assert_int_equal(replies(a, 60000), 2);
    }
    assert_int_equal(us.bytes_echoed, 8 * 60000);
    assert_int_equal(udp_dropped(&us), 0);
    assert_accounted();
}

/* A byte rate below the largest datagram still answers one: the burst
 * is at least UDP_BYTE_BURST_MIN. At 100 bytes a second a second one of
 * 65507 bytes must wait until the 29 bytes left have grown to 65507, and
 * not a millisecond less. The same for the global budget. */
static void
test_bytes_burst_floor(void **state)
{
    int a = client();

    (void)state;
    assert_true(UDP_BYTE_BURST_MIN >= 65527); /* the IPv6 largest */
    fake_clock = true;
    fake_ms = 7000000;
    loop_update_now(&l);
    configure(BIG, BIG, 0, BIG, BIG, 100);
    send_n(a, 1, 65507, 4000);
    pump_until_rx(1);
    assert_int_equal(replies(a, 65507), 1);
    send_n(a, 1, 65507, 4001);
    pump_until_rx(2);
    assert_int_equal(replies(a, 65507), 0);
    fake_ms += 654779; /* 65506.9 bytes */
    send_n(a, 1, 65507, 4002);
    pump_until_rx(3);
    assert_int_equal(replies(a, 65507), 0);
    assert_int_equal(us.n_drop[UDP_DROP_PER_SOURCE_BYTES], 2);
    fake_ms += 1;
    send_n(a, 1, 65507, 4003);
    pump_until_rx(4);
    assert_int_equal(replies(a, 65507), 1);

    configure(BIG, BIG, 100, BIG, BIG, 0);
    send_n(a, 2, 65507, 4004);
    pump_until_rx(6);
    assert_int_equal(replies(a, 65507), 1);
    assert_int_equal(us.n_drop[UDP_DROP_RATE_BYTES], 1);
    assert_accounted();
}

/* Each reason has its name, as STATUS and the logs print it. */
static void
test_drop_names(void **state)
{
    static const char *const want[UDP_DROP_MAX] = {
        "truncated",  "loop",     "address",    "acl",     "per-source",
        "per-source-bytes", "rate", "rate-bytes", "blocked", "error",
        "stamp-short", "stamp-auth",
    };

    (void)state;
    for (int i = 0; i < UDP_DROP_MAX; i++) {
        assert_string_equal(udp_drop_name((enum udp_drop)i), want[i]);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_from_address_asked, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_adopted_with_datagrams_queued,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_requeue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blocked_send_drops, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_partial_and_failed_send, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_ports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_other_own_port, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_broadcast_destination, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_truncated_dropped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_global_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_source_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_source_prefix, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_per_source_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_global_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_global_bytes_both_or_neither,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_bytes_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bytes_burst_floor, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_discard, setup, teardown),
        cmocka_unit_test(test_drop_names),
    };

    t_deadline(90);
    return cmocka_run_group_tests_name("udp", tests, NULL, NULL);
}
