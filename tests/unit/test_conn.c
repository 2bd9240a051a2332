/*
 * test_conn.c - one connection's state machine, on a real loop with real
 * kernel sockets: loopback TCP pairs (RDHUP, FIN, RST, windows) and
 * AF_UNIX pairs (every byte written is at once in the peer's queue, which
 * makes the read budget exact).
 *
 * Time is real, except in the idle test: --wrap=clock_gettime lets the
 * test move CLOCK_MONOTONIC (and so loop->now) by hand. Every wait is a
 * bounded loop of loop_run_once() against a deadline. --wrap=send and
 * --wrap=sendmsg count what the engine writes to one watched fd (a
 * discard connection must write nothing) and pass every call on.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bset.h"
#include "conn.h"
#include "loop.h"
#include "fake_clock.h"
#include "unit.h"

/* ---- what the engine writes: conn_echo sends, outq_flush sendmsgs ---- */

ssize_t __real_send(int fd, const void *buf, size_t len, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags);
ssize_t __real_sendmsg(int fd, const struct msghdr *m, int flags);
ssize_t __wrap_sendmsg(int fd, const struct msghdr *m, int flags);

static int watched_fd = -1; /* a conn's fd; the clients' sends are not it */
static unsigned n_writes;   /* send and sendmsg calls on watched_fd */

ssize_t
__wrap_send(int fd, const void *buf, size_t len, int flags)
{
    n_writes += fd == watched_fd;
    return __real_send(fd, buf, len, flags);
}

ssize_t
__wrap_sendmsg(int fd, const struct msghdr *m, int flags)
{
    n_writes += fd == watched_fd;
    return __real_sendmsg(fd, m, flags);
}

/* ---- fixture ---- */

#define MAX_CLI 16
#define DEADLINE_MS 20000

static struct loop l;
static struct conn_set cs;
static int cli[MAX_CLI];
static int n_cli;

static int
setup(void **state)
{
    (void)state;
    fake_clock = false;
    n_cli = 0;
    watched_fd = -1;
    n_writes = 0;
    if (loop_init(&l) < 0) {
        return -1;
    }
    conn_set_init(&cs, &l);
    conn_set_configure(&cs, 64 * 1024, 16 * 1024, 0);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    conn_set_close_all(&cs, CONN_SHUTDOWN);
    assert_int_equal(cs.n_open, 0);
    assert_int_equal(l.pool.n_live, 0); /* every chunk came back */
    loop_fini(&l);
    conn_set_fini(&cs); /* after loop_fini freed the last batch */
    for (int i = 0; i < n_cli; i++) {
        close(cli[i]);
    }
    fake_clock = false;
    return 0;
}

/* A conn of a listener with policy pol (NULL: plain echo) on the server
 * end of a fresh loopback TCP pair; the client end goes to cli[].
 * small > 0: tiny socket buffers (see t_tcp_pair). */
static struct conn *
new_tcp_conn_pol(int *client, int small, struct bset_pol *pol)
{
    struct sockaddr_storage peer;
    socklen_t plen;
    struct conn *c;
    int srv;

    assert_true(n_cli < MAX_CLI);
    t_tcp_pair(client, &srv, &peer, &plen, small);
    cli[n_cli++] = *client;
    (void)plen;
    c = conn_new(&cs, srv, PEER_NONE, pol, 0);
    assert_non_null(c);
    return c;
}

static struct conn *
new_tcp_conn(int *client, int small)
{
    return new_tcp_conn_pol(client, small, NULL);
}

static struct conn *
new_unix_conn_pol(int *client, struct bset_pol *pol)
{
    struct conn *c;
    int sv[2];

    assert_true(n_cli < MAX_CLI);
    t_unix_pair(sv);
    *client = sv[1];
    cli[n_cli++] = *client;
    c = conn_new(&cs, sv[0], PEER_NONE, pol, 0);
    assert_non_null(c);
    return c;
}

static struct conn *
new_unix_conn(int *client)
{
    return new_unix_conn_pol(client, NULL);
}

/* Nothing waits to be read on the client's end fd (and no EOF). */
static void
assert_nothing_back(int fd)
{
    char b;

    assert_int_equal(recv(fd, &b, 1, MSG_DONTWAIT), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

/* The policy of a listen entry with service = "discard" (and
 * proxy_protocol as asked), made as the server makes it. */
static struct bset_pol *
discard_pol(bool proxy)
{
    struct cfg cf;
    struct cfg_listen cl = cfg_default_listen[0];
    struct bset_pol *pol;

    cfg_defaults(&cf);
    snprintf(cl.service, sizeof(cl.service), "discard");
    cl.proxy_protocol = proxy;
    pol = bset_pol_new(&cf, &cl);
    assert_non_null(pol);
    assert_true(pol->discard);
    return pol;
}

/* Run the loop while the client writes src (from off on) and reads the
 * echo into dst, until all len bytes came back. With shut, the client
 * sends FIN after its last byte and also expects the EOF that must follow
 * the echo. The memory bound is checked after each iteration. */
static void
echo_through(int fd, const unsigned char *src, unsigned char *dst, size_t len,
             size_t off, bool shut)
{
    uint64_t deadline = t_now_ms() + DEADLINE_MS;
    size_t got = 0;
    bool shut_done = false, eof = false;

    while (got < len || (shut && !eof)) {
        int r;

        assert_true(t_now_ms() < deadline);
        t_write_avail(fd, src, len, &off);
        if (shut && off == len && !shut_done) {
            assert_int_equal(shutdown(fd, SHUT_WR), 0);
            shut_done = true;
        }
        loop_run_once(&l, 10);
        r = t_read_avail(fd, dst, len, &got);
        assert_true(r >= 0);
        if (r == 0) {
            assert_int_equal(got, len); /* EOF only after every byte */
            eof = true;
        }
        assert_true(l.pool.n_live * OUTQ_CHUNK <=
                    cs.n_open * (cs.high + OUTQ_CHUNK));
    }
    assert_memory_equal(dst, src, len);
}

static unsigned char *
payload(size_t len, uint64_t seed)
{
    unsigned char *p = malloc(len);

    assert_non_null(p);
    t_fill(p, len, seed);
    return p;
}

/* ---- tests ---- */

static void
test_echo_byte_exact(void **state)
{
    size_t len = 3 * 1024 * 1024 + 17;
    unsigned char *src = payload(len, 11), *dst = malloc(len);
    struct conn *c;
    int fd;

    (void)state;
    assert_non_null(dst);
    c = new_tcp_conn(&fd, 0);
    echo_through(fd, src, dst, len, 0, false);
    assert_int_equal(c->rx, len);
    assert_int_equal(c->tx, len);
    assert_true(outq_empty(&c->out));
    assert_int_equal(cs.bytes_in, len);
    assert_int_equal(cs.bytes_out, len);
    assert_int_equal(cs.n_open, 1);
    /* The same in its listener's slot (0: none), and nothing queued. */
    assert_int_equal(cs.tab.slot[0].c.bytes_in, len);
    assert_int_equal(cs.tab.slot[0].c.bytes_out, len);
    assert_int_equal(cs.tab.slot[0].c.open, 1);
    assert_int_equal(cs.tab.slot[0].c.accepted, 1);
    assert_int_equal(cs.tab.slot[0].c.queued, 0);
    free(src);
    free(dst);
}

/* A peer that sent more than CONN_READ_BUDGET: one turn reads exactly the
 * budget and puts the conn on the ready list; the next loop_run_once
 * serves it from there, with no new epoll edge, and reads the rest. The
 * conn is of a listener with policy pol; returns it and the client's end
 * in *fd, with all len bytes of src read. */
static struct conn *
budget_requeue(const unsigned char *src, size_t len, struct bset_pol *pol,
               int *fd)
{
    struct epoll_event ev[4];
    struct conn *c;
    size_t off = 0;
    int inq = 0;

    conn_set_configure(&cs, 8 * 1024 * 1024, 1024 * 1024, 0); /* no pause */
    c = new_unix_conn_pol(fd, pol);
    /* AF_UNIX queues what the sender's buffer allows: even capped by a
     * default wmem_max (208 KiB, doubled) that is about 420 KiB. */
    t_setint(*fd, SOL_SOCKET, SO_SNDBUF, 1024 * 1024);
    t_write_avail(*fd, src, len, &off);
    assert_int_equal(off, len); /* all of it waits in the conn's queue */
    assert_int_equal(ioctl(c->io.fd, FIONREAD, &inq), 0);
    assert_int_equal(inq, len);
    t_count_calls(&c->io);

    /* One turn, dispatched the way the loop does it. */
    assert_int_equal(epoll_wait(l.epfd, ev, 4, 1000), 1);
    assert_ptr_equal(ev[0].data.ptr, &c->io);
    assert_true(ev[0].events & EPOLLIN);
    c->io.ops->on_event(&c->io, ev[0].events);
    assert_int_equal(t_calls()->events, 1);
    assert_int_equal(c->rx, CONN_READ_BUDGET);
    assert_true(c->readable);
    assert_ptr_equal(l.ready.next, &c->io.node); /* requeued */
    /* ET: the bytes still waiting will raise no new edge. */
    assert_int_equal(epoll_wait(l.epfd, ev, 4, 0), 0);

    loop_run_once(&l, 1000);
    assert_int_equal(t_calls()->readies, 1);
    assert_int_equal(t_calls()->events, 1);
    assert_int_equal(c->rx, len);
    assert_false(list_linked(&c->io.node)); /* drained: off the list */
    return c;
}

static void
test_budget_requeue(void **state)
{
    size_t len = CONN_READ_BUDGET + CONN_READ_BUDGET / 2 + 123;
    unsigned char *src = payload(len, 12), *dst = malloc(len);
    int fd;

    (void)state;
    assert_non_null(dst);
    (void)budget_requeue(src, len, NULL, &fd);
    echo_through(fd, src, dst, len, len, false);
    free(src);
    free(dst);
}

/* A discard conn keeps to the same budget: a fast sender cannot hold
 * the loop for longer than an echo client can. */
static void
test_discard_budget_requeue(void **state)
{
    size_t len = CONN_READ_BUDGET + CONN_READ_BUDGET / 2 + 123;
    unsigned char *src = payload(len, 22);
    struct bset_pol *pol = discard_pol(false);
    struct conn *c;
    int fd;

    (void)state;
    c = budget_requeue(src, len, pol, &fd);
    assert_int_equal(c->tx, 0);
    assert_nothing_back(fd);
    bset_pol_unref(pol);
    free(src);
}

/* A discard conn reads everything at full speed, even under the least
 * high watermark (an echo conn there would pause after 4 KiB), counts
 * it like echo's input, and never writes: no send, no sendmsg, no
 * chunk, nothing for the peer to read. The peer's FIN closes it at once
 * (nothing to flush), as eof, and the peer sees EOF with no byte. */
static void
test_discard_counts_never_writes(void **state)
{
    size_t len = 3 * 1024 * 1024 + 17, off = 0;
    unsigned char *src = payload(len, 21);
    uint64_t deadline = t_now_ms() + DEADLINE_MS;
    struct bset_pol *pol = discard_pol(false);
    struct conn *c;
    int fd;

    (void)state;
    conn_set_configure(&cs, 4096, 0, 0);
    c = new_tcp_conn_pol(&fd, 0, pol);
    bset_pol_unref(pol); /* the conn keeps no reference */
    assert_true(c->discard);
    watched_fd = c->io.fd;
    while (c->rx < len) {
        assert_true(t_now_ms() < deadline);
        t_write_avail(fd, src, len, &off);
        loop_run_once(&l, 10);
        assert_false(c->rd_paused);
        assert_true(outq_empty(&c->out));
        assert_int_equal(l.pool.n_live, 0);
    }
    assert_int_equal(c->rx, len);
    assert_int_equal(c->tx, 0);
    assert_int_equal(n_writes, 0);
    assert_int_equal(cs.bytes_in, len);
    assert_int_equal(cs.bytes_out, 0);
    assert_int_equal(cs.tab.slot[0].c.bytes_in, len);
    assert_int_equal(cs.tab.slot[0].c.bytes_out, 0);
    assert_int_equal(cs.tab.slot[0].c.queued, 0);
    assert_int_equal(cs.tab.slot[0].c.paused, 0);
    assert_nothing_back(fd);

    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    assert_int_equal(t_pump_until_closed(&l, fd), 0);
    assert_int_equal(cs.n_closed[CONN_EOF], 1);
    assert_int_equal(cs.tab.slot[0].c.closed[CONN_EOF], 1);
    assert_int_equal(cs.n_open, 0);
    assert_int_equal(n_writes, 0);
    watched_fd = -1;
    free(src);
}

/* Behind a PROXY header: the header is consumed, never counted as data,
 * and every byte after it (in the same segment too) is discarded. */
static void
test_discard_after_proxy_header(void **state)
{
    static const char hdr[] = "PROXY TCP4 192.0.2.7 192.0.2.1 4000 9\r\n";
    static const char data[] = "one-way bytes";
    char msg[sizeof(hdr) + sizeof(data)];
    uint64_t deadline = t_now_ms() + DEADLINE_MS;
    struct bset_pol *pol = discard_pol(true);
    struct conn *c;
    int fd;

    (void)state;
    c = new_tcp_conn_pol(&fd, 0, pol);
    bset_pol_unref(pol); /* the pending conn holds its own */
    assert_true(c->pending);
    watched_fd = c->io.fd;
    memcpy(msg, hdr, sizeof(hdr) - 1);
    memcpy(msg + sizeof(hdr) - 1, data, sizeof(data));
    assert_int_equal(write(fd, msg, sizeof(msg) - 1), sizeof(msg) - 1);
    while (c->rx < sizeof(data)) {
        assert_true(t_now_ms() < deadline);
        loop_run_once(&l, 10);
    }
    assert_false(c->pending);
    assert_int_equal(c->rx, sizeof(data));
    assert_int_equal(c->tx, 0);
    assert_int_equal(n_writes, 0);
    assert_nothing_back(fd);
    watched_fd = -1;
}

/* Run the loop, the client never reading, until the conn is paused and
 * nothing moves any more. Checks the queue bound on every iteration. */
static void
run_until_paused(struct conn *c, int fd, const unsigned char *src, size_t len,
                 size_t *off)
{
    uint64_t deadline = t_now_ms() + DEADLINE_MS;
    uint64_t last_in = UINT64_MAX, last_out = UINT64_MAX;
    int still = 0;

    while (still < 5) {
        assert_true(t_now_ms() < deadline);
        t_write_avail(fd, src, len, off);
        loop_run_once(&l, 20);
        assert_true(c->out.bytes <= cs.high);
        assert_true(l.pool.n_live * OUTQ_CHUNK <= cs.high + OUTQ_CHUNK);
        if (c->rd_paused && c->rx == last_in && c->tx == last_out) {
            still++;
        } else {
            still = 0;
        }
        last_in = c->rx;
        last_out = c->tx;
    }
    assert_true(*off < len); /* the client was stopped by TCP, not done */
}

/* A peer that does not read: the conn stops reading at the high
 * watermark, its queue never grows past it, and once the peer reads
 * again everything comes back byte-exact. */
static void
test_pause_resume_watermarks(void **state)
{
    size_t len = 1024 * 1024, off = 0;
    unsigned char *src = payload(len, 13), *dst = malloc(len);
    struct conn *c;
    uint64_t rx;
    int fd;

    (void)state;
    assert_non_null(dst);
    c = new_tcp_conn(&fd, 4096);
    run_until_paused(c, fd, src, len, &off);
    assert_true(c->rd_paused);
    assert_true(c->out.bytes > cs.low);
    /* The gauges show it paused, with what it has queued. */
    assert_int_equal(cs.tab.slot[0].c.paused, 1);
    assert_int_equal(cs.tab.slot[0].c.queued, c->out.bytes);
    assert_true(c->readable); /* input is waiting; only the pause holds */
    rx = c->rx;
    for (int i = 0; i < 5; i++) {
        loop_run_once(&l, 10);
    }
    assert_int_equal(c->rx, rx); /* paused means not reading at all */

    echo_through(fd, src, dst, len, off, false); /* resumes, all back */
    assert_false(c->rd_paused);
    assert_int_equal(c->rx, len);
    assert_int_equal(cs.tab.slot[0].c.paused, 0);
    assert_int_equal(cs.tab.slot[0].c.queued, 0);
    /* Queued chunks were timed once their last byte left. */
    uint64_t queued_obs = 0;
    for (unsigned i = 1; i <= STS_HIST_BUCKETS; i++) {
        queued_obs += i < STS_HIST_BUCKETS ? cs.tab.hist[i] : cs.tab.hist_inf;
    }
    assert_true(queued_obs > 0);
    assert_true(cs.tab.hist_sum_us >= queued_obs * 1000);
    free(src);
    free(dst);
}

/* A high watermark that is not a multiple of the chunk size, and a peer
 * that reads a little at a time: the head chunk's sent prefix is memory
 * too, so the chunks held must never exceed ceil(high / OUTQ_CHUNK) --
 * that is what makes "high watermark + one chunk" a true bound. */
static void
test_bound_with_odd_watermark(void **state)
{
    const size_t high = 20000, per_chunk = OUTQ_CHUNK;
    const size_t max_chunks = (high + per_chunk - 1) / per_chunk;
    size_t len = 2 * 1024 * 1024, off = 0, got = 0;
    unsigned char *src = payload(len, 29), *dst = malloc(len);
    uint64_t deadline = t_now_ms() + DEADLINE_MS;
    size_t peak = 0;
    int fd;

    (void)state;
    assert_non_null(dst);
    conn_set_configure(&cs, high, 4000, 0);
    (void)new_tcp_conn(&fd, 4096);
    while (got < len) {
        ssize_t n;

        assert_true(t_now_ms() < deadline);
        t_write_avail(fd, src, len, &off);
        loop_run_once(&l, 10);
        if (l.pool.n_live > peak) {
            peak = l.pool.n_live;
        }
        assert_true(l.pool.n_live <= max_chunks);
        /* Small odd reads keep the head chunk half-sent (3001 was seen to
         * need a third chunk before the footprint rule). */
        n = recv(fd, dst + got, len - got < 3001 ? len - got : 3001,
                 MSG_DONTWAIT);
        if (n > 0) {
            got += (size_t)n;
        } else {
            assert_true(n < 0 && errno == EAGAIN);
        }
    }
    assert_memory_equal(dst, src, len);
    assert_true(peak >= 1); /* the queue was really used */
    free(src);
    free(dst);
}

/* Raising the watermarks of a paused conn resumes it at once: its input
 * edge was used up while paused, so resuming must requeue it. */
static void
test_configure_resumes_paused(void **state)
{
    size_t len = 1024 * 1024, off = 0;
    unsigned char *src = payload(len, 14);
    struct conn *c;
    uint64_t rx;
    int fd;

    (void)state;
    c = new_tcp_conn(&fd, 4096);
    run_until_paused(c, fd, src, len, &off);
    rx = c->rx;
    t_count_calls(&c->io);
    conn_set_configure(&cs, 1024 * 1024, 512 * 1024, 0);
    assert_false(c->rd_paused);
    assert_true(list_linked(&c->io.node));
    loop_run_once(&l, 1000);
    assert_true(c->rx > rx);
    assert_true(t_calls()->readies >= 1);
    free(src);
}

/* The peer sends everything and FIN without reading: the conn sees the
 * EOF with most of the echo still queued, stays open until the queue is
 * flushed, then closes with reason eof; the peer gets every byte, then
 * EOF. */
static void
test_eof_flush_close(void **state)
{
    size_t len = 300 * 1024 + 9, off = 0;
    unsigned char *src = payload(len, 18), *dst = malloc(len);
    uint64_t deadline = t_now_ms() + DEADLINE_MS;
    struct conn *c;
    int fd;

    (void)state;
    assert_non_null(dst);
    conn_set_configure(&cs, 1024 * 1024, 16 * 1024, 0); /* never pauses */
    c = new_tcp_conn(&fd, 4096);
    while (!c->eof) {
        assert_true(t_now_ms() < deadline);
        if (off < len) {
            t_write_avail(fd, src, len, &off);
            if (off == len) {
                assert_int_equal(shutdown(fd, SHUT_WR), 0);
            }
        }
        loop_run_once(&l, 10);
    }
    assert_int_equal(c->rx, len);
    assert_true(c->out.bytes > 0); /* the kernel refused most of it */
    for (int i = 0; i < 5; i++) {
        loop_run_once(&l, 10);
    }
    assert_int_equal(cs.n_open, 1); /* not closed with output queued */
    echo_through(fd, src, dst, len, len, true);
    assert_int_equal(cs.n_closed[CONN_EOF], 1);
    assert_int_equal(cs.n_open, 0);
    free(src);
    free(dst);
}

/* The same while the conn is paused at the high watermark: the EOF is
 * found only after reading resumes, and still nothing is lost. */
static void
test_eof_while_paused(void **state)
{
    size_t len = 1024 * 1024 + 5;
    unsigned char *src = payload(len, 15), *dst = malloc(len);
    int fd;

    (void)state;
    assert_non_null(dst);
    (void)new_tcp_conn(&fd, 4096);
    echo_through(fd, src, dst, len, 0, true);
    assert_int_equal(cs.n_closed[CONN_EOF], 1);
    assert_int_equal(cs.n_open, 0);
    assert_int_equal(cs.bytes_out, len);
    assert_int_equal(cs.tab.slot[0].c.closed[CONN_EOF], 1);
    assert_int_equal(cs.tab.slot[0].c.open, 0);
    assert_int_equal(cs.tab.slot[0].c.paused, 0);
    assert_int_equal(cs.tab.slot[0].c.queued, 0);
    free(src);
    free(dst);
}

/* Bytes and FIN in the same edge (EPOLLIN|EPOLLRDHUP): the short read
 * must not end the turn before read() returns 0. */
static void
test_eof_with_first_bytes(void **state)
{
    static const unsigned char msg[] = "ten bytes!";
    unsigned char dst[sizeof(msg)];
    int fd;

    (void)state;
    (void)new_tcp_conn(&fd, 0);
    assert_int_equal(write(fd, msg, sizeof(msg)), sizeof(msg));
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    echo_through(fd, msg, dst, sizeof(msg), sizeof(msg), true);
    assert_int_equal(cs.n_closed[CONN_EOF], 1);
}

/* RST from the peer, with and without output queued: reason reset. */
static void
test_rst_is_reset(void **state)
{
    size_t len = 1024 * 1024, off = 0;
    unsigned char *src = payload(len, 16);
    struct linger lg = {1, 0};
    uint64_t deadline = t_now_ms() + DEADLINE_MS;
    struct conn *c;
    int fd, idle_fd;

    (void)state;
    c = new_tcp_conn(&fd, 4096);
    (void)new_tcp_conn(&idle_fd, 0);
    run_until_paused(c, fd, src, len, &off);
    assert_true(c->out.bytes > 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    assert_int_equal(
        setsockopt(idle_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    /* close() with unread data, or with SO_LINGER 0, sends RST. */
    assert_int_equal(close(fd), 0);
    assert_int_equal(close(idle_fd), 0);
    cli[0] = cli[1] = -1;
    while (cs.n_open > 0) {
        assert_true(t_now_ms() < deadline);
        loop_run_once(&l, 10);
    }
    assert_int_equal(cs.n_closed[CONN_RESET], 2);
    assert_int_equal(l.pool.n_live, 0);
    free(src);
}

/* Idle timeout on a hand-moved clock: each conn closes exactly when it
 * has been quiet for idle_ms, and activity (moving it to the LRU tail)
 * postpones that. */
static void
test_idle_timeout(void **state)
{
    unsigned char b = 'x', back;
    uint64_t t0;
    int fa, fb;

    (void)state;
    fake_clock = true;
    fake_ms = t0 = 5000000;
    loop_update_now(&l);
    conn_set_configure(&cs, 64 * 1024, 16 * 1024, 10000);
    (void)new_tcp_conn(&fa, 0);
    (void)new_tcp_conn(&fb, 0);
    loop_run_once(&l, 0); /* registration edges */
    assert_true(loop_timer_armed(&cs.idle_timer));

    fake_ms = t0 + 6000; /* b speaks at 6 s */
    echo_through(fb, &b, &back, 1, 0, false);

    fake_ms = t0 + 9999;
    loop_run_once(&l, 0);
    assert_int_equal(cs.n_closed[CONN_IDLE], 0);
    fake_ms = t0 + 10000; /* a: quiet for exactly idle_ms */
    loop_run_once(&l, 0);
    assert_int_equal(cs.n_closed[CONN_IDLE], 1);
    assert_int_equal(cs.n_open, 1);
    assert_int_equal(t_pump_until_closed(&l, fa), 0);

    fake_ms = t0 + 15999;
    loop_run_once(&l, 0);
    assert_int_equal(cs.n_open, 1);
    fake_ms = t0 + 16000;
    loop_run_once(&l, 0);
    assert_int_equal(cs.n_closed[CONN_IDLE], 2);
    assert_int_equal(cs.n_open, 0);
    /* Nothing left to watch. */
    assert_false(loop_timer_armed(&cs.idle_timer));
    assert_int_equal(t_pump_until_closed(&l, fb), 0);
}

/* idle_ms = 0 means never. */
static void
test_idle_timeout_off(void **state)
{
    int fd;

    (void)state;
    fake_clock = true;
    fake_ms = 1000;
    loop_update_now(&l);
    (void)new_tcp_conn(&fd, 0);
    assert_false(loop_timer_armed(&cs.idle_timer));
    fake_ms += 86400 * 1000;
    loop_run_once(&l, 0);
    assert_int_equal(cs.n_open, 1);
}

/* Graceful shutdown: what was read before the drain is flushed, then
 * FIN; input after it is not echoed; the conn closes on the peer's EOF. */
static void
test_drain_flushes_then_fin(void **state)
{
    size_t len = 2 * 1024 * 1024, off = 0, got = 0;
    unsigned char *src = payload(len, 17), *dst = malloc(len);
    uint64_t deadline = t_now_ms() + DEADLINE_MS;
    struct conn *c;
    uint64_t rx;
    int fd, r;

    (void)state;
    assert_non_null(dst);
    c = new_tcp_conn(&fd, 4096);
    run_until_paused(c, fd, src, len, &off);
    assert_true(c->out.bytes > 0);
    conn_set_drain(&cs);
    rx = c->rx;
    while ((r = t_read_avail(fd, dst, len, &got)) == 1) {
        assert_true(t_now_ms() < deadline);
        t_write_avail(fd, src, len, &off); /* more input: ignored */
        loop_run_once(&l, 10);
    }
    assert_int_equal(r, 0); /* FIN, after exactly what was read before */
    assert_int_equal(got, rx);
    assert_memory_equal(dst, src, got);
    assert_true(c->wr_shut);
    assert_int_equal(cs.n_open, 1); /* waits for the peer's EOF */

    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    while (cs.n_open > 0) {
        assert_true(t_now_ms() < deadline);
        loop_run_once(&l, 10);
    }
    assert_int_equal(cs.n_closed[CONN_SHUTDOWN], 1);
    free(src);
    free(dst);
}

/* conn_new on an fd epoll refuses: NULL with errno, the fd still ours. */
static void
test_new_fails_cleanly(void **state)
{
    struct sockaddr_storage peer;
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

    (void)state;
    assert_true(fd >= 0);
    memset(&peer, 0, sizeof(peer));
    errno = 0;
    assert_null(conn_new(&cs, fd, PEER_NONE, NULL, 0));
    assert_int_equal(errno, EPERM);
    assert_int_equal(fcntl(fd, F_GETFD) >= 0, 1);
    assert_int_equal(cs.n_open, 0);
    assert_int_equal(cs.n_opened, 0);
    close(fd);
}

static void
test_reason_names(void **state)
{
    (void)state;
    assert_string_equal(conn_reason_name(CONN_EOF), "eof");
    assert_string_equal(conn_reason_name(CONN_RESET), "reset");
    assert_string_equal(conn_reason_name(CONN_IDLE), "idle-timeout");
    /* Every reason up to the sentinel has its own non-empty name. */
    for (int i = 0; i < CONN_REASON_MAX; i++) {
        const char *a = conn_reason_name((enum conn_reason)i);

        assert_non_null(a);
        assert_true(a[0] != '\0');
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(a, conn_reason_name((enum conn_reason)j));
        }
    }
    assert_int_equal(sizeof(cs.n_closed) / sizeof(cs.n_closed[0]),
                     CONN_REASON_MAX);
}

/* An idle connection costs sizeof(struct conn) and nothing else: the
 * struct stays within 112 bytes (the idle-memory benchmark measures the
 * process), and closed conns are recycled from the worker's pool rather
 * than handed back to malloc (not under ASan, which needs real frees). */
static void
test_conn_is_small_and_pooled(void **state)
{
    struct conn *first[8];
    int fd[8];

    (void)state;
    assert_true(sizeof(struct conn) <= 112);
    for (int i = 0; i < 8; i++) {
        first[i] = new_unix_conn(&fd[i]);
    }
    for (int i = 0; i < 8; i++) {
        conn_close(first[i], CONN_EOF);
    }
    loop_run_once(&l, 0); /* frees the closed batch into the pool */
#if !defined(__SANITIZE_ADDRESS__)
    {
        struct conn *again = new_unix_conn(&fd[0]);
        bool reused = false;

        /* Carved side by side: no allocator header between two conns. */
        for (int i = 1; i < 8; i++) {
            assert_int_equal((char *)first[i] - (char *)first[i - 1],
                             sizeof(struct conn));
        }
        for (int i = 0; i < 8; i++) {
            reused = reused || again == first[i];
        }
        assert_true(reused);
    }
#endif
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo_byte_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_budget_requeue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discard_budget_requeue, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_discard_counts_never_writes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_discard_after_proxy_header, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pause_resume_watermarks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bound_with_odd_watermark, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_configure_resumes_paused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_eof_flush_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof_while_paused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eof_with_first_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rst_is_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_timeout_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_flushes_then_fin, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_new_fails_cleanly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reason_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_is_small_and_pooled, setup,
                                        teardown),
    };

    t_deadline(90);
    return cmocka_run_group_tests_name("conn", tests, NULL, NULL);
}
