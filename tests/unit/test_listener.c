/*
 * test_listener.c - the accept loop: its budget and requeue, admission at
 * max_connections and max_connections_per_source, and fd exhaustion
 * (shed, pause, resume on the timer), on a real loop with a real listener
 * on 127.0.0.1 (clients of other sources bind 127.0.0.x first).
 *
 * accept4 is wrapped: scripted errnos (queued with acc_script) come first,
 * every other call goes to the kernel. EMFILE is also produced for real
 * by lowering RLIMIT_NOFILE.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "peers.h"
#include "unit.h"

/* ---- accept4 fault injection ---- */

int __real_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);
int __wrap_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags);

static int acc_pending; /* scripted results not yet used */
static int acc_calls;

static void
acc_script(int err)
{
    will_return(__wrap_accept4, err);
    acc_pending++;
}

int
__wrap_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    acc_calls++;
    if (acc_pending > 0) {
        int err = mock_type(int);
        acc_pending--;
        errno = err;
        return -1;
    }
    return __real_accept4(fd, sa, len, flags);
}

/* ---- fixture ---- */

#define MAX_CLI 160
#define DEADLINE_MS 20000

static struct loop l;
static struct conn_set cs;
static struct lsn_set ls;
static struct bset_local socks;
static struct bset_sock *lsn;
static struct adm adm; /* the shared limits, as a worker pool has them */
#define pt (adm.peers)
static struct sockaddr_in addr;
static int cli[MAX_CLI];
static int n_cli;

static int
setup(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(addr);
    int fd;

    (void)state;
    log_set_level(LOG_ERR); /* the shed warnings are expected here */
    acc_pending = acc_calls = 0;
    n_cli = 0;
    if (loop_init(&l) < 0 || adm_init(&adm) < 0 ||
        peer_configure(&pt, 10000, 32, 64) < 0) {
        return -1;
    }
    atomic_store(&adm.max_conns, 10000);
    conn_set_init(&cs, &l);
    cs.adm = &adm;
    conn_set_configure(&cs, 64 * 1024, 16 * 1024, 0);
    bset_local_init(&socks, &l);
    if (lsn_set_init(&ls, &l, &cs, &socks) < 0) {
        return -1;
    }
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = sock_bound((struct sockaddr *)&sa, sizeof(sa), SOCK_STREAM, false,
                    false, 512);
    lsn = fd < 0 ? NULL
                 : bset_sock_add(&socks, 1, fd, false, &lsn_kind, &ls,
                                 "127.0.0.1", NULL);
    if (lsn == NULL ||
        getsockname(lsn->io.fd, (struct sockaddr *)&addr, &len) < 0) {
        return -1;
    }
    t_count_calls(&lsn->io);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    bset_local_fini(&socks);
    lsn_set_fini(&ls);
    conn_set_close_all(&cs, CONN_SHUTDOWN);
    assert_int_equal(peer_sources(&pt), 0); /* all released */
    assert_int_equal(atomic_load(&adm.n_open), 0);
    loop_fini(&l);
    conn_set_fini(&cs);
    adm_fini(&adm);
    for (int i = 0; i < n_cli; i++) {
        if (cli[i] >= 0) {
            close(cli[i]);
        }
    }
    log_set_level(LOG_INFO);
    return 0;
}

/* Connections that completed the handshake and wait in the backlog. */
static unsigned
backlog_len(void)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    /* For a listening socket the kernel reports the accept queue length
     * in tcpi_unacked. */
    assert_int_equal(getsockopt(lsn->io.fd, IPPROTO_TCP, TCP_INFO, &ti, &len),
                     0);
    return ti.tcpi_unacked;
}

/* A nonblocking client of the listener from source address src. */
static int
connect_from(const char *src)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(inet_pton(AF_INET, src, &sin.sin_addr), 1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    t_nonblock(fd);
    return fd;
}

/* Connect n clients from src (NULL: the kernel picks, 127.0.0.1) and wait
 * until all of them sit in the backlog, so that one epoll edge stands for
 * all of them. */
static void
connect_clients_from(int n, const char *src)
{
    uint64_t deadline = t_now_ms() + DEADLINE_MS;
    unsigned want = backlog_len() + (unsigned)n;

    assert_true(n_cli + n <= MAX_CLI);
    for (int i = 0; i < n; i++) {
        cli[n_cli++] =
            src != NULL ? connect_from(src) : t_tcp_connect(&addr, 0);
    }
    while (backlog_len() < want) {
        assert_true(t_now_ms() < deadline);
        usleep(1000); /* the kernel finishes handshakes on its own */
    }
}

static void
connect_clients(int n)
{
    connect_clients_from(n, NULL);
}

/* The client was accepted and is served: a byte comes back. */
static void
expect_echo(int fd)
{
    uint64_t deadline = t_now_ms() + DEADLINE_MS;
    char c = 'e', back;
    size_t got = 0;

    assert_int_equal(write(fd, &c, 1), 1);
    while (got == 0) {
        assert_true(t_now_ms() < deadline);
        loop_run_once(&l, 10);
        assert_int_equal(t_read_avail(fd, &back, 1, &got), 1);
    }
    assert_int_equal(back, c);
}

/* The client was accepted and closed at once: EOF (or RST) comes. */
static void
expect_closed(int fd)
{
    int r = t_pump_until_closed(&l, fd);

    assert_true(r == 0 || errno == ECONNRESET);
}

/* ---- tests ---- */

/* More pending connections than LSN_ACCEPT_BUDGET: each turn accepts
 * exactly the budget and requeues the listener, which is then served from
 * the ready list (same iteration, after the batch, and the next ones)
 * without any new edge, until the backlog is empty. */
static void
test_accept_budget_requeue(void **state)
{
    int n = 2 * LSN_ACCEPT_BUDGET + 5;

    (void)state;
    connect_clients(n);
    loop_run_once(&l, 1000);
    assert_int_equal(t_calls()->events, 1);
    assert_int_equal(t_calls()->readies, 1);
    assert_int_equal(cs.n_open, 2 * LSN_ACCEPT_BUDGET);
    assert_ptr_equal(l.ready.next, &lsn->io.node); /* requeued again */
    assert_true(lsn->readable);

    loop_run_once(&l, 1000);
    assert_int_equal(t_calls()->events, 1);
    assert_int_equal(t_calls()->readies, 2);
    assert_int_equal(cs.n_open, n);
    assert_false(lsn->readable); /* EAGAIN: the backlog is empty */
    assert_false(list_linked(&lsn->io.node));
    assert_int_equal(ls.n_rejected + ls.n_shed, 0);
    expect_echo(cli[0]);
    expect_echo(cli[n - 1]);
}

/* A worker closing its SO_REUSEPORT listener (a reload dropped the entry,
 * or a shutdown) first takes every connection waiting in the accept
 * queue, which close() would reset, and serves it. */
static void
test_close_drains_accept_queue(void **state)
{
    (void)state;
    connect_clients(5);
    assert_int_equal(backlog_len(), 5);
    bset_sock_close(lsn); /* no loop turn ran: all 5 still queued */
    lsn = NULL;
    assert_int_equal(cs.n_open, 5);
    assert_int_equal(cs.n_opened, 5);
    for (int i = 0; i < 5; i++) {
        expect_echo(cli[i]);
    }
}

/* Over max_connections: accepted and closed at once, and counted. */
static void
test_max_connections(void **state)
{
    uint64_t deadline = t_now_ms() + DEADLINE_MS;

    (void)state;
    atomic_store(&adm.max_conns, 3);
    connect_clients(5);
    loop_run_once(&l, 1000);
    assert_int_equal(cs.n_open, 3);
    assert_int_equal(ls.n_rejected, 2);
    /* The backlog is FIFO: the last two were refused. */
    expect_closed(cli[3]);
    expect_closed(cli[4]);
    for (int i = 0; i < 3; i++) {
        expect_echo(cli[i]);
    }

    /* A slot freed is a slot for the next client. */
    close(cli[0]);
    cli[0] = -1;
    while (cs.n_open == 3) {
        assert_true(t_now_ms() < deadline);
        loop_run_once(&l, 10);
    }
    connect_clients(2);
    loop_run_once(&l, 1000);
    assert_int_equal(cs.n_open, 3);
    assert_int_equal(ls.n_rejected, 3);
    expect_echo(cli[5]);
    expect_closed(cli[6]);

    /* During a graceful shutdown nothing new is admitted. */
    conn_set_drain(&cs);
    connect_clients(1);
    loop_run_once(&l, 1000);
    assert_int_equal(ls.n_rejected, 4);
    expect_closed(cli[7]);
}

static size_t
count_of(const char *src)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};

    assert_int_equal(inet_pton(AF_INET, src, &sin.sin_addr), 1);
    return peer_count(&pt, (struct sockaddr *)&sin);
}

/* Over max_connections_per_source: that source's client is accepted and
 * closed at once and counted apart; other sources are admitted; a close
 * releases the source; a source the table has no room for is shed. */
static void
test_max_connections_per_source(void **state)
{
    uint64_t deadline = t_now_ms() + DEADLINE_MS;

    (void)state;
    peer_fini(&pt); /* a fresh, small table: 2 sources */
    peer_init(&pt);
    assert_int_equal(peer_configure(&pt, 2, 32, 64), 1);
    atomic_store(&adm.max_per_source, 2);
    connect_clients_from(3, "127.0.0.1");
    connect_clients_from(1, "127.0.0.2");
    loop_run_once(&l, 1000);
    assert_int_equal(cs.n_open, 3);
    assert_int_equal(ls.n_rejected_source, 1);
    assert_int_equal(ls.n_rejected + ls.n_shed, 0);
    assert_int_equal(count_of("127.0.0.1"), 2);
    assert_int_equal(count_of("127.0.0.2"), 1);
    expect_closed(cli[2]); /* FIFO: the third from 127.0.0.1 */
    expect_echo(cli[0]);
    expect_echo(cli[1]);
    expect_echo(cli[3]);

    /* A close releases its source: the next one from it is admitted. */
    close(cli[0]);
    cli[0] = -1;
    while (cs.n_open == 3) {
        assert_true(t_now_ms() < deadline);
        loop_run_once(&l, 10);
    }
    assert_int_equal(count_of("127.0.0.1"), 1);
    connect_clients_from(1, "127.0.0.1");
    loop_run_once(&l, 1000);
    assert_int_equal(count_of("127.0.0.1"), 2);
    expect_echo(cli[4]);

    /* A third source finds no slot in a 2-source table: shed. */
    connect_clients_from(1, "127.0.0.3");
    loop_run_once(&l, 1000);
    assert_int_equal(ls.n_shed, 1);
    assert_int_equal(ls.n_rejected_source, 1);
    assert_int_equal(count_of("127.0.0.3"), 0);
    expect_closed(cli[5]);
    assert_int_equal(peer_sources(&pt), 2);
}

/* Out of fds (scripted EMFILE): shed what is pending with the reserve fd,
 * pause, and accept nothing until the pause timer fires; then resume from
 * the ready list, without waiting for a new edge. */
static void
test_emfile_shed_pause_resume(void **state)
{
    uint64_t pause_end, deadline = t_now_ms() + DEADLINE_MS;
    int calls, events;

    (void)state;
    connect_clients(3);
    acc_script(EMFILE);
    loop_run_once(&l, 1000);
    assert_int_equal(acc_pending, 0);
    assert_true(ls.paused);
    assert_true(loop_timer_armed(&ls.pause_timer));
    pause_end = ls.pause_timer.deadline;
    assert_int_equal(pause_end, l.now + LSN_PAUSE_MS);
    assert_int_equal(ls.n_shed, 3);
    assert_int_equal(cs.n_open, 0);
    assert_true(ls.reserve_fd >= 0); /* taken back after the shed */
    /* 1 EMFILE, 3 shed, 1 EAGAIN that ended the shed */
    assert_int_equal(acc_calls, 5);
    for (int i = 0; i < 3; i++) {
        expect_closed(cli[i]);
    }

    /* Clients arriving during the pause: their edge comes and is used up,
     * and no accept4 is tried (no spinning on a full fd table). */
    calls = acc_calls;
    connect_clients(2);
    while (t_calls()->events < 2) {
        assert_true(t_now_ms() < deadline);
        assert_true(ls.paused);
        loop_run_once(&l, 0);
    }
    assert_int_equal(acc_calls, calls);
    assert_int_equal(cs.n_open, 0);
    events = t_calls()->events;

    /* The pause ends by the timer alone; the listener is requeued. */
    while (cs.n_open < 2) {
        assert_true(t_now_ms() < deadline);
        loop_run_once(&l, 1000);
    }
    assert_false(ls.paused);
    assert_true(l.now >= pause_end);
    assert_int_equal(t_calls()->events, events);
    assert_true(t_calls()->readies >= 1);
    expect_echo(cli[3]);
    expect_echo(cli[4]);
}

/* Errors that are the connection's problem, not ours: keep accepting. */
static void
test_transient_errors_continue(void **state)
{
    (void)state;
    connect_clients(1);
    acc_script(ECONNABORTED);
    acc_script(EINTR);
    acc_script(EPROTO);
    acc_script(EPERM);
    loop_run_once(&l, 1000);
    assert_int_equal(acc_pending, 0);
    assert_int_equal(cs.n_open, 1);
    assert_false(ls.paused);
    assert_int_equal(ls.n_shed, 0);
    assert_int_equal(acc_calls, 6); /* 4 errors, 1 accept, 1 EAGAIN */
    expect_echo(cli[0]);
}

/* ENFILE, ENOBUFS and ENOMEM take the same path as EMFILE. */
static void
test_other_exhaustion_errors_pause(void **state)
{
    static const int errs[] = {ENFILE, ENOBUFS, ENOMEM};
    uint64_t deadline = t_now_ms() + DEADLINE_MS;

    (void)state;
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        acc_script(errs[i]);
        lsn->readable = true; /* as an edge would set it */
        loop_ready(&l, &lsn->io);
        loop_run_once(&l, 0);
        assert_true(ls.paused);
        assert_true(loop_timer_armed(&ls.pause_timer));
        while (ls.paused) {
            assert_true(t_now_ms() < deadline);
            loop_run_once(&l, 1000);
        }
    }
    assert_int_equal(acc_pending, 0);
    assert_int_equal(ls.n_shed, 0); /* nothing was pending */
}

/* Set the soft RLIMIT_NOFILE so that exactly n fds are still free. */
static void
leave_free_fds(int n, struct rlimit *old)
{
    struct rlimit rl;
    int fd, free_seen = 0;

    assert_int_equal(getrlimit(RLIMIT_NOFILE, old), 0);
    for (fd = 0; free_seen < n; fd++) {
        assert_true((rlim_t)fd < old->rlim_cur);
        if (fcntl(fd, F_GETFD) < 0) {
            free_seen++;
        }
    }
    rl = *old;
    rl.rlim_cur = (rlim_t)fd;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

/* The real thing: with 2 fds left, 2 clients are served and the rest are
 * shed; once fds are back, the next client is served again. */
static void
test_emfile_real(void **state)
{
    uint64_t deadline = t_now_ms() + DEADLINE_MS;
    struct rlimit old;

    (void)state;
    connect_clients(5);
    leave_free_fds(2, &old);
    loop_run_once(&l, 1000);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(cs.n_open, 2);
    assert_int_equal(ls.n_shed, 3);
    assert_true(ls.paused);
    assert_true(ls.reserve_fd >= 0);
    expect_echo(cli[0]);
    expect_echo(cli[1]);
    for (int i = 2; i < 5; i++) {
        expect_closed(cli[i]);
    }
    while (ls.paused) {
        assert_true(t_now_ms() < deadline);
        loop_run_once(&l, 1000);
    }
    connect_clients(1);
    loop_run_once(&l, 1000);
    assert_int_equal(cs.n_open, 3);
    expect_echo(cli[5]);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_accept_budget_requeue, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_drains_accept_queue, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_max_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_connections_per_source, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_emfile_shed_pause_resume, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_transient_errors_continue, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_exhaustion_errors_pause,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_emfile_real, setup, teardown),
    };

    t_deadline(90);
    return cmocka_run_group_tests_name("listener", tests, NULL, NULL);
}
