/*
 * test_loop.c - the event loop's own promises: the ready list is served as
 * a snapshot, timers fire once and at their deadline, a closed io is never
 * dispatched and is freed only after the batch, ERR/HUP become IN|OUT.
 * Real epoll, real AF_UNIX socket pairs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop.h"
#include "unit.h"

/* An owner that counts what the loop does to it. */
struct probe {
    struct loop_io io;
    struct loop *l;
    int events, readies, frees;
    uint32_t last_events;
    struct probe *requeue; /* on_ready/on_event: loop_ready() this one */
    struct probe *close;   /* on_ready/on_event: loop_close() this one */
    int peer;              /* the other end of io.fd, or -1 */
};

/* Probes live in a static array so their counters outlive on_free. */
static struct probe probes[4];
static int frees_seen_in_callback;

static void
probe_act(struct probe *p)
{
    if (p->requeue != NULL) {
        loop_ready(p->l, &p->requeue->io);
    }
    if (p->close != NULL) {
        loop_close(p->l, &p->close->io);
    }
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        frees_seen_in_callback += probes[i].frees;
    }
}

static void
probe_event(struct loop_io *io, uint32_t ev)
{
    struct probe *p = (struct probe *)io;

    p->events++;
    p->last_events = ev;
    probe_act(p);
}

static void
probe_ready(struct loop_io *io)
{
    struct probe *p = (struct probe *)io;

    p->readies++;
    probe_act(p);
}

static void
probe_free(struct loop_io *io)
{
    struct probe *p = (struct probe *)io;

    assert_true(io->closed);
    p->frees++;
    if (p->peer >= 0) {
        close(p->peer);
        p->peer = -1;
    }
}

static struct loop loop;

/* Probe i without an fd (ready-list only) or, with sock, registered on
 * one end of a fresh socketpair. */
static const struct loop_ops probe_ops = {
    .on_event = probe_event,
    .on_ready = probe_ready,
    .on_free = probe_free,
};

static struct probe *
probe(int i, bool sock)
{
    struct probe *p = &probes[i];
    int sv[2] = {-1, -1};

    memset(p, 0, sizeof(*p));
    p->l = &loop;
    if (sock) {
        t_unix_pair(sv);
    }
    p->peer = sv[1];
    loop_io_init(&p->io, sv[0], &probe_ops);
    if (sock) {
        assert_int_equal(loop_add(&loop, &p->io, EPOLLIN | EPOLLRDHUP), 0);
    }
    return p;
}

static int
setup(void **state)
{
    (void)state;
    frees_seen_in_callback = 0;
    return loop_init(&loop);
}

static int
teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        struct probe *p = &probes[i];
        if (p->l != NULL && !p->io.closed) {
            loop_close(&loop, &p->io);
        }
    }
    loop_fini(&loop); /* frees what loop_close deferred */
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        if (probes[i].l != NULL) {
            assert_int_equal(probes[i].frees, 1);
        }
        probes[i].l = NULL;
    }
    return 0;
}

/* What is requeued while the ready list is served waits for the next
 * iteration: a self-requeueing owner runs once per iteration, not forever,
 * and one requeued by another owner waits as well. */
static void
test_ready_snapshot(void **state)
{
    struct probe *a = probe(0, false), *b = probe(1, false);

    (void)state;
    a->requeue = a;
    loop_ready(&loop, &a->io);
    loop_ready(&loop, &a->io); /* at most once */
    loop_run_once(&loop, -1);  /* a ready list means no blocking wait */
    assert_int_equal(a->readies, 1);
    assert_true(list_linked(&a->io.node));

    a->requeue = b;
    loop_run_once(&loop, -1);
    assert_int_equal(a->readies, 2);
    assert_int_equal(b->readies, 0); /* queued during the serve */
    assert_true(list_linked(&b->io.node));
    assert_false(list_linked(&a->io.node));
    loop_run_once(&loop, -1);
    assert_int_equal(b->readies, 1);
    assert_int_equal(a->readies, 2);
    assert_true(list_empty(&loop.ready));
}

static int timer_fires[3];
static struct loop_timer timers[3];
static uint64_t fired_at[3];
static int timer_disarm_other = -1;
static int timer_rearm_other = -1;
static uint64_t timer_rearm_delay;
static int timer_watch = -1;    /* timer_fn records whether it is armed */
static int timer_watch_seen[3]; /* per firing timer: 1 armed, 0 not */

static void
timer_fn(struct loop_timer *t)
{
    int i = (int)(t - timers);

    assert_false(loop_timer_armed(t)); /* disarmed before the callback */
    timer_fires[i]++;
    fired_at[i] = loop.now;
    if (timer_watch >= 0) {
        timer_watch_seen[i] = loop_timer_armed(&timers[timer_watch]);
    }
    if (timer_disarm_other >= 0) {
        loop_timer_disarm(&timers[timer_disarm_other]);
    }
    if (timer_rearm_other >= 0) {
        loop_timer_arm(&loop, &timers[timer_rearm_other],
                       loop.now + timer_rearm_delay);
    }
}

static void
timers_reset(void)
{
    for (int i = 0; i < 3; i++) {
        loop_timer_init(&timers[i], timer_fn);
        timer_fires[i] = 0;
        timer_watch_seen[i] = -1;
    }
    timer_disarm_other = timer_rearm_other = timer_watch = -1;
}

static void
test_timer_fires_once_at_deadline(void **state)
{
    uint64_t deadline;

    (void)state;
    timers_reset();
    deadline = loop.now + 30;
    loop_timer_arm(&loop, &timers[0], deadline);
    loop_timer_arm(&loop, &timers[1], loop.now + 3600 * 1000);
    /* No cap: the wait is bounded by the nearest timer alone. */
    while (timer_fires[0] == 0) {
        loop_run_once(&loop, -1);
    }
    assert_true(fired_at[0] >= deadline); /* never early */
    assert_false(loop_timer_armed(&timers[0]));
    assert_int_equal(timer_fires[1], 0);
    loop_run_once(&loop, 0);
    assert_int_equal(timer_fires[0], 1); /* once */

    /* Re-arming moves the deadline instead of adding a second timer. */
    loop_timer_arm(&loop, &timers[1], loop.now);
    loop_timer_arm(&loop, &timers[1], loop.now);
    loop_run_once(&loop, -1);
    assert_int_equal(timer_fires[1], 1);
    loop_run_once(&loop, 0);
    assert_int_equal(timer_fires[1], 1);

    /* A disarmed timer never fires. */
    loop_timer_arm(&loop, &timers[2], loop.now);
    loop_timer_disarm(&timers[2]);
    loop_run_once(&loop, 0);
    assert_int_equal(timer_fires[2], 0);
}

/* A callback may disarm or re-arm another timer that is also due in this
 * iteration; the other one then obeys its new state, not the old one. */
static void
test_timer_callback_changes_other_timer(void **state)
{
    uint64_t t0;

    (void)state;
    timers_reset();
    loop_timer_arm(&loop, &timers[0], loop.now);
    loop_timer_arm(&loop, &timers[1], loop.now);
    timer_disarm_other = 1;
    loop_run_once(&loop, 0);
    assert_int_equal(timer_fires[0], 1);
    assert_int_equal(timer_fires[1], 0);

    timers_reset();
    loop_timer_arm(&loop, &timers[0], loop.now);
    loop_timer_arm(&loop, &timers[1], loop.now);
    timer_rearm_other = 1;
    timer_rearm_delay = 40;
    t0 = loop.now;
    loop_run_once(&loop, 0);
    assert_int_equal(timer_fires[0], 1);
    assert_int_equal(timer_fires[1], 0); /* pushed 40 ms out: not yet */
    assert_true(loop_timer_armed(&timers[1]));
    timer_rearm_other = -1;
    while (timer_fires[1] == 0) {
        loop_run_once(&loop, -1);
    }
    assert_true(fired_at[1] >= t0 + 40);
}

/* Armed is derived from the timer list, so it follows arm, re-arm,
 * disarm and firing; a timer due in the same iteration stays armed until
 * its own callback runs, and one that re-arms itself from its callback is
 * armed afterwards. */
static void
test_timer_armed_follows_the_list(void **state)
{
    (void)state;
    timers_reset();
    assert_false(loop_timer_armed(&timers[0]));
    loop_timer_arm(&loop, &timers[0], loop.now + 3600 * 1000);
    assert_true(loop_timer_armed(&timers[0]));
    loop_timer_arm(&loop, &timers[0], loop.now + 7200 * 1000);
    assert_true(loop_timer_armed(&timers[0]));
    loop_timer_disarm(&timers[0]);
    assert_false(loop_timer_armed(&timers[0]));
    loop_timer_disarm(&timers[0]); /* twice: harmless */
    assert_false(loop_timer_armed(&timers[0]));
    assert_true(list_empty(&loop.timers));

    /* Both due: timers[0] (armed first) fires first and sees timers[1]
     * still armed; timers[1] sees itself disarmed. */
    loop_timer_arm(&loop, &timers[0], loop.now);
    loop_timer_arm(&loop, &timers[1], loop.now);
    timer_watch = 1;
    loop_run_once(&loop, 0);
    assert_int_equal(timer_fires[0] + timer_fires[1], 2);
    assert_int_equal(timer_watch_seen[0], 1);
    assert_int_equal(timer_watch_seen[1], 0);
    assert_false(loop_timer_armed(&timers[0]));
    assert_false(loop_timer_armed(&timers[1]));

    /* A callback that re-arms its own timer leaves it armed. */
    timer_watch = -1;
    timer_rearm_other = 2;
    timer_rearm_delay = 3600 * 1000;
    loop_timer_arm(&loop, &timers[2], loop.now);
    loop_run_once(&loop, 0);
    assert_int_equal(timer_fires[2], 1);
    assert_true(loop_timer_armed(&timers[2]));
    loop_timer_disarm(&timers[2]);
    assert_false(loop_timer_armed(&timers[2]));
}

/* Two owners readable in the same epoll batch, each closing the other:
 * whichever is dispatched first closes the second, which must then not be
 * dispatched, and neither is freed before the batch is over. */
static void
test_closed_io_not_dispatched(void **state)
{
    struct probe *a = probe(0, true), *b = probe(1, true);
    struct probe *first, *second;

    (void)state;
    a->close = b;
    b->close = a;
    assert_int_equal(write(a->peer, "x", 1), 1);
    assert_int_equal(write(b->peer, "y", 1), 1);
    loop_run_once(&loop, 1000);
    assert_int_equal(a->events + b->events, 1);
    assert_int_equal(frees_seen_in_callback, 0);
    /* The one not dispatched was closed at once and freed after. */
    first = a->events == 1 ? a : b;
    second = first == a ? b : a;
    assert_int_equal(second->frees, 1);
    assert_int_equal(second->io.fd, -1);
    assert_int_equal(first->frees, 0);
    assert_true(first->io.fd >= 0);
}

/* Closing an owner that waits on the ready list, or in the snapshot being
 * served, drops it from there. */
static void
test_close_drops_ready_entry(void **state)
{
    struct probe *a = probe(0, false), *b = probe(1, false),
                 *c = probe(2, false);

    (void)state;
    loop_ready(&loop, &a->io);
    loop_ready(&loop, &b->io);
    loop_ready(&loop, &c->io);
    a->close = b; /* b is later in the same snapshot */
    loop_close(&loop, &c->io);
    loop_ready(&loop, &c->io); /* a closed io cannot be queued again */
    loop_run_once(&loop, 0);
    assert_int_equal(a->readies, 1);
    assert_int_equal(b->readies, 0);
    assert_int_equal(c->readies, 0);
    assert_int_equal(b->frees, 1);
    assert_int_equal(c->frees, 1);
    assert_int_equal(a->frees, 0);
}

/* EPOLLHUP alone (the peer is gone) is handed on as IN|OUT, so the
 * owner's next read or write reports what happened. */
static void
test_hup_becomes_in_out(void **state)
{
    struct probe *a = probe(0, false);
    int sv[2];

    (void)state;
    t_unix_pair(sv);
    a->io.fd = sv[0];
    assert_int_equal(loop_add(&loop, &a->io, 0), 0); /* no IN, no OUT */
    close(sv[1]);
    loop_run_once(&loop, 1000);
    assert_int_equal(a->events, 1);
    assert_true(a->last_events & EPOLLHUP);
    assert_true(a->last_events & EPOLLIN);
    assert_true(a->last_events & EPOLLOUT);
}

/* max_wait_ms caps the wait when nothing is ready and no timer is near. */
static void
test_wait_is_capped(void **state)
{
    uint64_t t0 = t_now_ms();

    (void)state;
    timers_reset();
    loop_timer_arm(&loop, &timers[0], loop.now + 3600 * 1000);
    loop_run_once(&loop, 20);
    loop_run_once(&loop, 0);
    assert_int_equal(timer_fires[0], 0);
    assert_true(t_now_ms() - t0 < 30000); /* alarm() is the real guard */
    loop_timer_disarm(&timers[0]);
}

/* An open busy-poll window keeps epoll_wait from blocking: with no timer
 * and no cap, one blocking wait would hang until alarm() ends the test.
 * A later, shorter window does not cut it short, and once it has passed
 * (by the loop's clock, read once per iteration) the loop forgets it and
 * may sleep again. */
static void
test_busy_poll_window(void **state)
{
    uint64_t until;

    (void)state;
    loop_busy_poll(&loop, 10 * 1000 * 1000); /* 10 s */
    until = loop.poll_until;
    assert_true(until != 0);
    loop_busy_poll(&loop, 1);
    assert_true(loop.poll_until == until);
    for (int i = 0; i < 100; i++) {
        loop_run_once(&loop, -1);
    }
    assert_true(loop.poll_until == until);

    loop.poll_until = 0;
    loop_busy_poll(&loop, 1000); /* 1 ms */
    until = loop.poll_until;
    for (;;) { /* let it pass (CLOCK_MONOTONIC, as the loop's) */
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        if ((uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec > until) {
            break;
        }
    }
    /* The loop compares with its cached clock: one iteration may still
     * poll, the next may block and forgets the window. */
    loop_run_once(&loop, 1);
    loop_run_once(&loop, 1);
    assert_true(loop.poll_until == 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ready_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_fires_once_at_deadline,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_callback_changes_other_timer,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_armed_follows_the_list,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_io_not_dispatched, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_close_drops_ready_entry, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hup_becomes_in_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wait_is_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_poll_window, setup, teardown),
    };

    t_deadline(30);
    return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
