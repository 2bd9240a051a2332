/*
 * loop.c - epoll instance, dispatch, ready list, timers, deferred free.
 *
 * Owns: the epoll fd, the cached monotonic time, the ready and closed
 * lists, the few named timers, the busy-poll window, the scratch buffer
 * and the chunk pool.
 * Never knows what TCP is: it calls owners back only through the
 * callbacks stored in their struct loop_io.
 * Invariants: an io is on at most one of ready/closed (one node); a closed
 * io is never called back; closed owners are freed only after the batch,
 * because later entries of the same epoll_wait array may point at them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"

int
loop_init(struct loop *l)
{
    memset(l, 0, sizeof(*l));
    list_init(&l->ready);
    list_init(&l->closed);
    list_init(&l->timers);
    outq_pool_init(&l->pool, LOOP_POOL_FREE_MAX);
    l->scratch = malloc(LOOP_SCRATCH);
    if (l->scratch == NULL) {
        return -1;
    }
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        int saved = errno;
        free(l->scratch);
        l->scratch = NULL;
        errno = saved;
        return -1;
    }
    loop_update_now(l);
    return 0;
}

static void
loop_free_closed(struct loop *l)
{
    struct list *n;

    while ((n = list_first(&l->closed)) != NULL) {
        struct loop_io *io = list_entry(n, struct loop_io, node);
        list_remove(n);
        if (io->ops->on_free != NULL) {
            io->ops->on_free(io);
        }
    }
}

void
loop_fini(struct loop *l)
{
    loop_free_closed(l);
    if (l->epfd >= 0) {
        close(l->epfd);
        l->epfd = -1;
    }
    free(l->scratch);
    l->scratch = NULL;
    outq_pool_fini(&l->pool);
}

void
loop_update_now(struct loop *l)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    l->now_ns = (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
    l->now = l->now_ns / 1000000;
}

void
loop_busy_poll(struct loop *l, unsigned us)
{
    struct timespec ts;
    uint64_t until;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    until = (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec +
            (uint64_t)us * 1000;

    if (until > l->poll_until) {
        l->poll_until = until;
    }
}

void
loop_io_init(struct loop_io *io, int fd, const struct loop_ops *ops)
{
    io->ops = ops;
    io->fd = fd;
    io->closed = false;
    io->shared = false;
    list_init(&io->node);
}

int
loop_add(struct loop *l, struct loop_io *io, uint32_t events)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = events | EPOLLET;
    ev.data.ptr = io;
    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev);
}

int
loop_rotate(struct loop *l, struct loop_io *io, uint32_t events)
{
    if (epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL) < 0) {
        return -1;
    }
    /* ADD reports readiness that is already there: nothing queued on the
     * fd is lost by the round trip. */
    return loop_add(l, io, events);
}

void
loop_ready(struct loop *l, struct loop_io *io)
{
    if (!io->closed && !list_linked(&io->node)) {
        list_insert_tail(&l->ready, &io->node);
    }
}

void
loop_close(struct loop *l, struct loop_io *io)
{
    if (io->closed) {
        return;
    }
    list_remove(&io->node);
    if (io->fd >= 0) {
        /* epoll watches the open file, not the fd: a shared fd stays open
         * (other workers and the service manager hold it), so without
         * the DEL the registration would point at an owner about to be
         * freed. Its owner closes it. */
        if (io->shared) {
            (void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
        } else {
            close(io->fd);
        }
        io->fd = -1;
    }
    io->closed = true;
    list_insert_tail(&l->closed, &io->node);
}

void
loop_timer_init(struct loop_timer *t, void (*fn)(struct loop_timer *))
{
    t->deadline = 0;
    t->fn = fn;
    list_init(&t->node);
}

void
loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t deadline)
{
    t->deadline = deadline;
    /* Relink even if linked: the timer may be on the list of timers due in
     * this iteration (another timer's callback re-arms it), and with a new
     * deadline it must not fire from there. */
    list_remove(&t->node);
    list_insert_tail(&l->timers, &t->node);
}

void
loop_timer_disarm(struct loop_timer *t)
{
    list_remove(&t->node);
}

/* Milliseconds until the earliest timer, or -1 when none is armed. */
static int
loop_next_timeout(const struct loop *l)
{
    uint64_t best = UINT64_MAX;

    for (const struct list *n = l->timers.next; n != &l->timers; n = n->next) {
        const struct loop_timer *t = list_entry(n, struct loop_timer, node);
        if (t->deadline < best) {
            best = t->deadline;
        }
    }
    if (best == UINT64_MAX) {
        return -1;
    }
    if (best <= l->now) {
        return 0;
    }
    return best - l->now > 60000 ? 60000 : (int)(best - l->now);
}

static void
loop_run_timers(struct loop *l)
{
    struct list due;
    struct list *n, *next;

    /* Take the expired timers aside first: a callback may re-arm itself or
     * disarm another, and each timer fires at most once per iteration. */
    list_init(&due);
    for (n = l->timers.next; n != &l->timers; n = next) {
        next = n->next;
        if (list_entry(n, struct loop_timer, node)->deadline <= l->now) {
            list_remove(n);
            list_insert_tail(&due, n);
        }
    }
    while ((n = list_first(&due)) != NULL) {
        struct loop_timer *t = list_entry(n, struct loop_timer, node);
        loop_timer_disarm(t);
        t->fn(t);
    }
}

static void
loop_serve_ready(struct loop *l)
{
    struct list snap;
    struct list *n;

    /* Serve a snapshot: whatever is requeued now waits for the next round,
     * after the next (non-blocking) epoll_wait. */
    list_init(&snap);
    list_splice_tail(&snap, &l->ready);
    while ((n = list_first(&snap)) != NULL) {
        struct loop_io *io = list_entry(n, struct loop_io, node);
        list_remove(n);
        io->ops->on_ready(io);
    }
}

void
loop_run_once(struct loop *l, int max_wait_ms)
{
    struct epoll_event ev[LOOP_MAX_EVENTS];
    int timeout, n;

    timeout = list_empty(&l->ready) ? loop_next_timeout(l) : 0;
    if (max_wait_ms >= 0 && (timeout < 0 || timeout > max_wait_ms)) {
        timeout = max_wait_ms;
    }
    if (timeout != 0 && l->poll_until != 0) {
        if (l->now_ns < l->poll_until) {
            timeout = 0;
        } else {
            l->poll_until = 0;
        }
    }
    n = epoll_wait(l->epfd, ev, LOOP_MAX_EVENTS, timeout);
    if (n < 0) {
        if (errno != EINTR) {
            log_err("epoll_wait");
            abort();
        }
        n = 0;
    }
    loop_update_now(l);
    for (int i = 0; i < n; i++) {
        struct loop_io *io = ev[i].data.ptr;
        uint32_t e = ev[i].events;

        if (io->closed) {
            continue; /* closed earlier in this batch; freed below */
        }
        /* ERR/HUP alone: let the next read or write report the errno. */
        if (e & (EPOLLERR | EPOLLHUP)) {
            e |= EPOLLIN | EPOLLOUT;
        }
        io->ops->on_event(io, e);
    }
    loop_serve_ready(l);
    loop_run_timers(l);
    loop_free_closed(l);
}
