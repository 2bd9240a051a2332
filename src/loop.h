/*
 * loop.h - the event loop: one epoll instance, edge-triggered on every fd.
 *
 * The rules every owner of an fd follows (register once, readiness kept in
 * the owner's flags, budgets, the ready list, close now / free later) are
 * written once, in docs/design.md section 3 ("The edge-triggered rules");
 * this interface exists to make them easy to follow.
 */
#ifndef ECHOD_LOOP_H
#define ECHOD_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "outq.h"

#define LOOP_MAX_EVENTS 256              /* events per epoll_wait */
#define LOOP_SCRATCH ((size_t)64 * 1024) /* the one read buffer of the loop */
#define LOOP_POOL_FREE_MAX 256           /* cached free output chunks (4 MiB) */

struct loop_io;

/* What the loop calls back; one static table per kind of owner. */
struct loop_ops {
    /* An epoll event arrived: set readiness flags, then do the work. */
    void (*on_event)(struct loop_io *io, uint32_t events);
    /* Served from the ready list (a budget ran out with work left). */
    void (*on_ready)(struct loop_io *io);
    /* Called after the batch once loop_close() was called; frees it
     * (NULL: nothing to free). */
    void (*on_free)(struct loop_io *io);
};

/* Embedded first in every owner of an fd (conn, socket, signalfd). Kept
 * small: every connection carries one. */
struct loop_io {
    const struct loop_ops *ops;
    struct list node; /* on the ready list or the closed list */
    int fd;
    bool closed;
    /* The fd is not this owner's (an inherited socket every worker
     * shares): loop_close deregisters it and leaves it open. */
    bool shared;
};

struct loop_timer {
    uint64_t deadline; /* loop->now milliseconds */
    void (*fn)(struct loop_timer *t);
    struct list node; /* linked exactly while armed */
};

struct loop {
    int epfd;
    uint64_t now;    /* monotonic milliseconds, read once per iteration */
    uint64_t now_ns; /* the same reading in nanoseconds */
    struct list ready;
    struct list closed;
    struct list timers;
    struct outq_pool pool;
    char *scratch; /* LOOP_SCRATCH bytes */
    /* Busy polling (loop_busy_poll): CLOCK_MONOTONIC nanoseconds before
     * which epoll_wait does not block; 0 = off. */
    uint64_t poll_until;
};

/* Returns 0, or -1 with errno (epoll_create1 or malloc failed). */
int loop_init(struct loop *l);
/* Frees what loop_close() deferred, the pool and the scratch buffer. */
void loop_fini(struct loop *l);

/* Refresh l->now from CLOCK_MONOTONIC. */
void loop_update_now(struct loop *l);

/* Prepare an io for fd with its callbacks (not registered yet). */
void loop_io_init(struct loop_io *io, int fd, const struct loop_ops *ops);

/* EPOLL_CTL_ADD with the full mask: the one epoll_ctl an owner makes
 * (but for loop_rotate on a shared fd). Returns 0 or -1 with errno. */
int loop_add(struct loop *l, struct loop_io *io, uint32_t events);

/* For a shared fd only (io->shared, registered with EPOLLEXCLUSIVE in
 * every worker's loop): deregister and register again with the same
 * mask, which puts this loop at the back of the fd's wait queue. The
 * kernel wakes the first idle waiter of that queue, so without this one
 * worker would take every connection. Returns 0 or -1 with errno (then
 * the fd may be left deregistered: the caller closes its owner). */
int loop_rotate(struct loop *l, struct loop_io *io, uint32_t events);

/* Queue io to be served (on_ready) before the next epoll_wait blocks.
 * At most once: a second call while queued does nothing. */
void loop_ready(struct loop *l, struct loop_io *io);

/* Close the fd now (which also deregisters it; a shared fd is only
 * deregistered), forget any ready-list entry, and free the owner after
 * the current batch. */
void loop_close(struct loop *l, struct loop_io *io);

/* Do not sleep for the next `us` microseconds (from now: the clock is
 * read, as a turn may have outlasted a short window): until then
 * epoll_wait gets a zero timeout, so the next datagram is seen without
 * a wake-up (what the scheduler and an idle CPU add to a reply's
 * delay). Extends, never shortens, a window already open. The loop
 * checks it against its cached `now_ns`, so it may run over by one
 * iteration. */
void loop_busy_poll(struct loop *l, unsigned us);

void loop_timer_init(struct loop_timer *t, void (*fn)(struct loop_timer *));
/* (Re)arm to fire once at `deadline` (loop->now milliseconds). */
void loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t deadline);
void loop_timer_disarm(struct loop_timer *t);

/* Armed: waiting to fire (also while due in this iteration, until its
 * callback runs). Derived from the node, so it cannot disagree with the
 * timer list. The timer must have been through loop_timer_init. */
static inline bool
loop_timer_armed(const struct loop_timer *t)
{
    return list_linked(&t->node);
}

/* One iteration: wait (at most max_wait_ms, -1 = no cap; 0 while the
 * ready list is not empty or a busy-poll window is open), dispatch, serve the
 * ready list snapshot, run expired timers, free closed owners. */
void loop_run_once(struct loop *l, int max_wait_ms);

#endif /* ECHOD_LOOP_H */
