/*
 * unit.h - small helpers shared by the cmocka unit tests: a hard deadline,
 * a test clock that --wrap=clock_gettime cannot fake, deterministic
 * payloads, real kernel socket pairs (AF_UNIX and loopback TCP), an
 * address from text, a scratch directory, and asserting that a rendered
 * text holds (or lacks) a part.
 *
 * Include after <cmocka.h>. Everything is static inline so that a test
 * that uses only part of it compiles without unused-function warnings.
 */
#ifndef ECHOD_TEST_UNIT_H
#define ECHOD_TEST_UNIT_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "sock.h"

static inline void
t_on_alarm(int sig)
{
    static const char msg[] = "\nunit test: hard deadline exceeded\n";

    (void)sig;
    (void)!write(2, msg, sizeof(msg) - 1);
    _exit(124);
}

/* A hang becomes a failure: call first in main(). */
static inline void
t_deadline(unsigned seconds)
{
    signal(SIGALRM, t_on_alarm);
    alarm(seconds);
}

/* Milliseconds for test deadlines. CLOCK_BOOTTIME, because the tests that
 * fake time wrap clock_gettime for CLOCK_MONOTONIC only. */
static inline uint64_t
t_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Deterministic, position-dependent bytes: a reordered, dropped or
 * duplicated byte changes what a comparison sees. */
static inline void
t_fill(void *buf, size_t len, uint64_t seed)
{
    unsigned char *p = buf;
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)(x >> 24);
    }
}

static inline void
t_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    assert_true(fl >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

static inline void
t_setint(int fd, int level, int opt, int val)
{
    assert_int_equal(setsockopt(fd, level, opt, &val, sizeof(val)), 0);
}

/* A nonblocking AF_UNIX stream pair. */
static inline void
t_unix_pair(int sv[2])
{
    assert_int_equal(
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv),
        0);
}

/* A listening TCP socket on 127.0.0.1 with a kernel-chosen port. */
static inline int
t_tcp_listener(struct sockaddr_in *addr, int backlog)
{
    socklen_t len = sizeof(*addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
    assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)addr, &len), 0);
    return fd;
}

/* A blocking connect to addr; the returned socket is nonblocking.
 * bufs > 0 sets SO_RCVBUF (first, so the window scale fits it) and
 * SO_SNDBUF. */
static inline int
t_tcp_connect(const struct sockaddr_in *addr, int bufs)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    if (bufs > 0) {
        t_setint(fd, SOL_SOCKET, SO_RCVBUF, bufs);
        t_setint(fd, SOL_SOCKET, SO_SNDBUF, bufs);
    }
    assert_int_equal(
        connect(fd, (const struct sockaddr *)addr, sizeof(*addr)), 0);
    t_nonblock(fd);
    return fd;
}

/* A connected loopback TCP pair: *cli is the test's end, *srv the end
 * handed to the code under test (nonblocking, as accept4 gives it).
 * small > 0 makes the pair push back early: both buffers of the client
 * and SO_SNDBUF of the server end (setting them also stops the kernel from
 * autotuning them to megabytes). */
static inline void
t_tcp_pair(int *cli, int *srv, struct sockaddr_storage *peer,
           socklen_t *plen, int small)
{
    struct sockaddr_in addr;
    int lfd = t_tcp_listener(&addr, 1);

    *cli = t_tcp_connect(&addr, small);
    *plen = sizeof(*peer);
    *srv = accept4(lfd, (struct sockaddr *)peer, plen,
                   SOCK_NONBLOCK | SOCK_CLOEXEC);
    assert_true(*srv >= 0);
    if (small > 0) {
        t_setint(*srv, SOL_SOCKET, SO_SNDBUF, small);
    }
    close(lfd);
}

/* Read what is available now (nonblocking fd) into buf at *got, up to cap.
 * Returns 0 on EOF, 1 if bytes or EAGAIN, -1 with errno on error. */
static inline int
t_read_avail(int fd, void *buf, size_t cap, size_t *got)
{
    for (;;) {
        ssize_t n;

        if (*got >= cap) {
            char extra;
            /* More than expected is a failure the caller must see. */
            n = read(fd, &extra, 1);
            if (n > 0) {
                errno = EOVERFLOW;
                return -1;
            }
        } else {
            n = read(fd, (char *)buf + *got, cap - *got);
        }
        if (n > 0) {
            *got += (size_t)n;
            continue;
        }
        if (n == 0) {
            return 0;
        }
        if (errno == EINTR) {
            continue;
        }
        return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
    }
}

/* Read exactly len bytes from a nonblocking fd (polling it, with a
 * deadline) and compare them with want. */
static inline void
t_expect_bytes(int fd, const void *want, size_t len)
{
    unsigned char *got = malloc(len + 1);
    uint64_t deadline = t_now_ms() + 10000;
    size_t n = 0;

    assert_non_null(got);
    while (n < len) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        assert_true(t_now_ms() < deadline);
        assert_int_equal(t_read_avail(fd, got, len, &n), 1);
        (void)poll(&p, 1, 100);
    }
    assert_memory_equal(got, want, len);
    free(got);
}

/* Write what the socket takes now from buf at *off, up to len. */
static inline void
t_write_avail(int fd, const void *buf, size_t len, size_t *off)
{
    while (*off < len) {
        ssize_t n = send(fd, (const char *)buf + *off, len - *off,
                         MSG_NOSIGNAL);
        if (n > 0) {
            *off += (size_t)n;
            continue;
        }
        assert_true(n < 0);
        if (errno == EINTR) {
            continue;
        }
        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        return;
    }
}

/* Run the loop until fd (nonblocking) reports EOF or an error, with no
 * byte before it. Returns 0 on EOF, -1 with errno on error. */
static inline int
t_pump_until_closed(struct loop *l, int fd)
{
    uint64_t deadline = t_now_ms() + 20000;
    char buf[64];
    size_t got = 0;
    int r;

    while ((r = t_read_avail(fd, buf, sizeof(buf), &got)) == 1) {
        assert_true(t_now_ms() < deadline);
        loop_run_once(l, 10);
    }
    assert_int_equal(got, 0);
    return r;
}

/* How the loop called one owner (see t_count_calls): through an epoll
 * event, or from the ready list. One owner per test at a time. */
struct t_calls {
    int events;
    int readies;
    const struct loop_ops *orig; /* the owner's own callbacks */
    struct loop_ops shim;        /* counting, then calling orig */
};

static inline struct t_calls *
t_calls(void)
{
    static struct t_calls calls;
    return &calls;
}

static inline void
t_shim_event(struct loop_io *io, uint32_t ev)
{
    t_calls()->events++;
    t_calls()->orig->on_event(io, ev);
}

static inline void
t_shim_ready(struct loop_io *io)
{
    t_calls()->readies++;
    t_calls()->orig->on_ready(io);
}

/* Interpose counting shims between the loop and io's callbacks. */
static inline void
t_count_calls(struct loop_io *io)
{
    struct t_calls *c = t_calls();

    c->events = c->readies = 0;
    c->orig = io->ops;
    c->shim.on_event = t_shim_event;
    c->shim.on_ready = t_shim_ready;
    c->shim.on_free = io->ops->on_free;
    io->ops = &c->shim;
}

/* Fail, showing the whole text, unless text holds part. */
static inline void
t_has(const char *text, const char *part)
{
    if (strstr(text, part) == NULL) {
        fail_msg("missing: %s\n--- text:\n%s", part, text);
    }
}

static inline void
t_lacks(const char *text, const char *part)
{
    if (strstr(text, part) != NULL) {
        fail_msg("unexpected: %s\n--- text:\n%s", part, text);
    }
}

/* addr:port as a sockaddr, in one of four rotating buffers: copy it to
 * keep it. */
static inline const struct sockaddr *
t_sa(const char *addr, unsigned port)
{
    static struct sockaddr_storage ss[4];
    static int next;
    struct sockaddr_storage *s = &ss[next++ % 4];
    socklen_t len;

    assert_int_equal(sock_addr(addr, (int)port, s, &len), 0);
    return (const struct sockaddr *)s;
}

/* A fresh directory /tmp/echod-NAME-XXXXXX in dir[len]; 0 or -1 (a
 * cmocka setup's answer). */
static inline int
t_mkdtemp(char *dir, size_t len, const char *name)
{
    snprintf(dir, len, "/tmp/echod-%s-XXXXXX", name);
    return mkdtemp(dir) == NULL ? -1 : 0;
}

/* Remove dir and what it holds; 0 or -1 (a cmocka teardown's answer). */
static inline int
t_rmtree(const char *dir)
{
    char cmd[160];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif /* ECHOD_TEST_UNIT_H */
