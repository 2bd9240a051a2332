/*
 * worker.c - worker threads: one event loop each (see worker.h).
 *
 * Owns: starting and joining the threads, each worker's loop and sets,
 * its mailbox (main -> worker: configuration values, sockets to add or
 * remove, drain, close all, stop), its heartbeat, and the sums the main
 * thread reads. Never shares a connection or a socket between workers
 * (except an inherited one, which every worker registers with
 * EPOLLEXCLUSIVE and none closes).
 * Invariants: everything a worker mutates hangs off its struct wrk; the
 * main thread reads it only through counters (counter.h, atomics); the
 * mailbox list is the only thing both write, under w->lock.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "counter.h"
#include "log.h"
#include "snap.h"
#include "worker.h"

enum wrk_cmd {
    WRK_CONF,
    WRK_ADD,
    WRK_DEL,
    WRK_DRAIN,
    WRK_CLOSE_ALL,
    WRK_SYNC,
    WRK_POLICY,
    WRK_SNAP,
    WRK_STOP,
};

struct wrk_msg {
    struct wrk_msg *next;
    enum wrk_cmd cmd;
    struct wrk_conf conf;     /* WRK_CONF */
    uint32_t id;              /* WRK_ADD, WRK_DEL, WRK_POLICY */
    struct bset_pol *pol;     /* WRK_ADD, WRK_POLICY: a reference */
    uint64_t seq;             /* WRK_SYNC */
    struct snap *snap;        /* WRK_SNAP: a hold */
    int fd;                   /* WRK_ADD */
    bool shared;              /* WRK_ADD */
    enum bset_type type;      /* WRK_ADD */
    char name[SOCK_NAME_MAX]; /* WRK_ADD */
};

size_t
wrk_count(int64_t workers)
{
    cpu_set_t set;
    int n;

    if (workers > 0) {
        return workers > WRK_MAX ? WRK_MAX : (size_t)workers;
    }
    if (sched_getaffinity(0, sizeof(set), &set) < 0) {
        return 1;
    }
    n = CPU_COUNT(&set);
    if (n < 1) {
        return 1;
    }
    return n > WRK_MAX ? WRK_MAX : (size_t)n;
}

/* ---- the worker's side ---- */

static void
wrk_poke(int fd)
{
    uint64_t one = 1;

    /* Fails only when the counter would overflow: it is already set. */
    (void)!write(fd, &one, sizeof(one));
}

static void
wrk_apply_add(struct wrk *w, struct wrk_msg *m)
{
    const struct bset_kind *kind = m->type == BSET_UDP ? &udp_kind : &lsn_kind;
    void *ctx = m->type == BSET_UDP ? (void *)&w->udps : (void *)&w->lsns;

    if (bset_sock_add(&w->socks, m->id, m->fd, m->shared, kind, ctx, m->name,
                      m->pol) == NULL) {
        log_err("worker %u: cannot serve %s", w->id, m->name);
        if (!m->shared) {
            close(m->fd);
        }
        bset_pol_unref(m->pol);
    }
    m->pol = NULL; /* the socket's now, or dropped */
}

/* Close every socket of this worker: the listeners' accept queues are
 * taken first (bset_sock_close drains). */
static void
wrk_close_socks(struct wrk *w)
{
    bset_local_fini(&w->socks);
}

static void
wrk_apply(struct wrk *w, struct wrk_msg *m)
{
    struct bset_sock *b;

    switch (m->cmd) {
    case WRK_CONF:
        conn_set_configure(&w->conns, m->conf.high, m->conf.low,
                           m->conf.idle_ms);
        break;
    case WRK_ADD:
        wrk_apply_add(w, m);
        break;
    case WRK_POLICY:
        bset_local_repolicy(&w->socks, m->id, m->pol);
        m->pol = NULL;
        break;
    case WRK_DEL:
        b = bset_sock_find(&w->socks, m->id);
        if (b != NULL) {
            bset_sock_close(b);
        }
        break;
    case WRK_DRAIN:
        wrk_close_socks(w);
        conn_set_drain(&w->conns);
        atomic_store(&w->draining, true);
        break;
    case WRK_CLOSE_ALL:
        conn_set_close_all(&w->conns, CONN_SHUTDOWN_TIMEOUT);
        break;
    case WRK_SYNC:
        /* Everything posted before this is applied: count the open
         * connections in a rebuilt per-source table, and say so. */
        adm_lock(&w->pool->adm);
        conn_set_sync_peers(&w->conns);
        adm_unlock(&w->pool->adm);
        atomic_store(&w->acked, m->seq);
        wrk_poke(w->pool->main_fd);
        break;
    case WRK_SNAP:
        snap_fill(m->snap, &w->conns);
        snap_put(m->snap);
        m->snap = NULL;
        wrk_poke(w->pool->main_fd);
        break;
    case WRK_STOP:
        w->stop = true;
        break;
    }
}

static void
wrk_on_mail(struct loop_io *io, uint32_t events)
{
    struct wrk *w = list_entry(io, struct wrk, evio);
    struct wrk_msg *m, *next;
    uint64_t count;

    (void)events;
    /* Reset the counter first: a post after this read raises a new edge. */
    (void)!read(io->fd, &count, sizeof(count));
    (void)pthread_mutex_lock(&w->lock);
    m = w->head;
    w->head = w->tail = NULL;
    (void)pthread_mutex_unlock(&w->lock);
    for (; m != NULL; m = next) {
        next = m->next;
        wrk_apply(w, m);
        free(m);
    }
}

static void
wrk_on_mail_ready(struct loop_io *io)
{
    wrk_on_mail(io, 0);
}

static const struct loop_ops wrk_mail_ops = {
    .on_event = wrk_on_mail,
    .on_ready = wrk_on_mail_ready,
    .on_free = NULL,
};

static void
wrk_beat(struct loop_timer *t)
{
    struct wrk *w = list_entry(t, struct wrk, beat);

    /* From a loop timer: a stalled loop stops stamping. */
    atomic_store_explicit(&w->heartbeat, w->loop.now, memory_order_relaxed);
    log_limit_flush(); /* this thread's limiters */
    loop_timer_arm(&w->loop, t, w->loop.now + w->pool->beat_ms);
}

static void *
wrk_main(void *arg)
{
    struct wrk *w = arg;
    char name[16];

    snprintf(name, sizeof(name), "echod-w%u", w->id);
    (void)pthread_setname_np(pthread_self(), name);
    loop_update_now(&w->loop);
    wrk_beat(&w->beat);
    while (!w->stop) {
        loop_run_once(&w->loop, -1);
        if (atomic_load(&w->draining) && !w->drained_told &&
            ctr_get(&w->conns.n_open) == 0) {
            w->drained_told = true;
            wrk_poke(w->pool->main_fd);
        }
    }
    /* Close what this worker owns, in its own thread. */
    conn_set_close_all(&w->conns, CONN_SHUTDOWN);
    wrk_close_socks(w);
    loop_timer_disarm(&w->beat);
    log_limit_flush();
    return NULL;
}

/* ---- the main thread's side ---- */

/* Set one worker up, not running. Returns 0, or -1 with errno and
 * nothing left to release. */
static int
wrk_init(struct wrk_pool *p, struct wrk *w, unsigned id)
{
    int fd, rc, saved;

    w->pool = p;
    w->id = id;
    w->head = w->tail = NULL;
    atomic_init(&w->heartbeat, 0);
    atomic_init(&w->draining, false);
    atomic_init(&w->acked, 0);
    rc = pthread_mutex_init(&w->lock, NULL);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    if (loop_init(&w->loop) < 0) {
        saved = errno;
        goto fail_lock;
    }
    bset_local_init(&w->socks, &w->loop);
    conn_set_init(&w->conns, &w->loop);
    w->socks.tab = &w->conns.tab;
    w->conns.adm = &p->adm;
    w->conns.worker = id;
    if (lsn_set_init(&w->lsns, &w->loop, &w->conns, &w->socks) < 0) {
        saved = errno;
        goto fail_loop;
    }
    udp_set_init(&w->udps, &w->loop, &w->socks, &p->udp);
    loop_timer_init(&w->beat, wrk_beat);
    fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    loop_io_init(&w->evio, fd, &wrk_mail_ops);
    if (fd < 0 || loop_add(&w->loop, &w->evio, EPOLLIN) < 0) {
        saved = errno;
        if (fd >= 0) {
            close(fd);
        }
        goto fail_lsn;
    }
    return 0;
fail_lsn: /* each undo below may clobber errno: `saved` has it */
    lsn_set_fini(&w->lsns);
fail_loop:
    loop_fini(&w->loop);
fail_lock:
    pthread_mutex_destroy(&w->lock);
    errno = saved;
    return -1;
}

static void
wrk_fini(struct wrk *w)
{
    struct wrk_msg *m;

    while ((m = w->head) != NULL) {
        w->head = m->next;
        if (m->cmd == WRK_ADD && !m->shared) {
            close(m->fd);
        }
        bset_pol_unref(m->pol);
        snap_put(m->snap);
        free(m);
    }
    conn_set_close_all(&w->conns, CONN_SHUTDOWN);
    bset_local_fini(&w->socks);
    lsn_set_fini(&w->lsns);
    udp_set_fini(&w->udps);
    loop_close(&w->loop, &w->evio);
    loop_fini(&w->loop);
    conn_set_fini(&w->conns);
    pthread_mutex_destroy(&w->lock);
}

int
wrk_pool_init(struct wrk_pool *p, size_t n, uint64_t beat_ms)
{
    int saved;
    size_t i = 0;

    memset(p, 0, sizeof(*p));
    p->beat_ms = beat_ms;
    p->main_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->main_fd < 0) {
        return -1;
    }
    if (adm_init(&p->adm) < 0) {
        saved = errno;
        goto fail_fd;
    }
    if (udp_limit_init(&p->udp) < 0) {
        saved = errno;
        goto fail_adm;
    }
    p->w = calloc(n, sizeof(*p->w));
    if (p->w == NULL) {
        saved = errno;
        goto fail_udp;
    }
    for (; i < n; i++) {
        if (wrk_init(p, &p->w[i], (unsigned)i) < 0) {
            saved = errno;
            goto fail_workers;
        }
    }
    p->n = n;
    return 0;
fail_workers: /* each undo below may clobber errno: `saved` has it */
    while (i > 0) {
        wrk_fini(&p->w[--i]);
    }
    free(p->w);
    p->w = NULL;
fail_udp:
    udp_limit_fini(&p->udp);
fail_adm:
    adm_fini(&p->adm);
fail_fd:
    close(p->main_fd);
    p->main_fd = -1;
    errno = saved;
    return -1;
}

int
wrk_pool_start(struct wrk_pool *p)
{
    for (size_t i = 0; i < p->n; i++) {
        struct wrk *w = &p->w[i];
        int rc = pthread_create(&w->thread, NULL, wrk_main, w);

        if (rc != 0) {
            wrk_pool_stop(p);
            errno = rc;
            return -1;
        }
        w->running = true;
    }
    return 0;
}

/* Queue m and wake the worker. */
static int
wrk_post(struct wrk *w, struct wrk_msg *m)
{
    m->next = NULL;
    (void)pthread_mutex_lock(&w->lock);
    if (w->tail != NULL) {
        w->tail->next = m;
    } else {
        w->head = m;
    }
    w->tail = m;
    (void)pthread_mutex_unlock(&w->lock);
    wrk_poke(w->evio.fd);
    return 0;
}

static struct wrk_msg *
wrk_msg_new(enum wrk_cmd cmd)
{
    struct wrk_msg *m = calloc(1, sizeof(*m));

    if (m != NULL) {
        m->cmd = cmd;
        m->fd = -1;
    }
    return m;
}

static int
wrk_post_cmd(struct wrk *w, enum wrk_cmd cmd)
{
    struct wrk_msg *m = wrk_msg_new(cmd);

    return m == NULL ? -1 : wrk_post(w, m);
}

int
wrk_post_conf(struct wrk *w, const struct wrk_conf *c)
{
    struct wrk_msg *m = wrk_msg_new(WRK_CONF);

    if (m == NULL) {
        return -1;
    }
    m->conf = *c;
    return wrk_post(w, m);
}

int
wrk_post_add(struct wrk *w, const struct bset_ent *e, int fd)
{
    struct wrk_msg *m = wrk_msg_new(WRK_ADD);

    if (m == NULL) {
        if (!e->adopted) {
            close(fd);
        }
        return -1;
    }
    m->id = e->id;
    m->fd = fd;
    m->shared = e->adopted;
    m->type = e->type;
    m->pol = bset_pol_ref(e->pol);
    snprintf(m->name, sizeof(m->name), "%s", e->name);
    return wrk_post(w, m);
}

int
wrk_post_policy(struct wrk *w, const struct bset_ent *e)
{
    struct wrk_msg *m = wrk_msg_new(WRK_POLICY);

    if (m == NULL) {
        return -1;
    }
    m->id = e->id;
    m->pol = bset_pol_ref(e->pol);
    return wrk_post(w, m);
}

int
wrk_post_del(struct wrk *w, uint32_t id)
{
    struct wrk_msg *m = wrk_msg_new(WRK_DEL);

    if (m == NULL) {
        return -1;
    }
    m->id = id;
    return wrk_post(w, m);
}

int
wrk_post_drain(struct wrk *w)
{
    return wrk_post_cmd(w, WRK_DRAIN);
}

int
wrk_post_close_all(struct wrk *w)
{
    return wrk_post_cmd(w, WRK_CLOSE_ALL);
}

void
wrk_pool_stop(struct wrk_pool *p)
{
    for (size_t i = 0; i < p->n; i++) {
        struct wrk *w = &p->w[i];

        if (!w->running) {
            continue;
        }
        /* A stop must get through even without memory for a message. */
        if (wrk_post_cmd(w, WRK_STOP) < 0) {
            log_err("worker %u: cannot post stop", w->id);
            abort();
        }
    }
    for (size_t i = 0; i < p->n; i++) {
        struct wrk *w = &p->w[i];

        if (w->running) {
            (void)pthread_join(w->thread, NULL);
            w->running = false;
        }
    }
}

void
wrk_pool_fini(struct wrk_pool *p)
{
    wrk_pool_stop(p);
    for (size_t i = 0; i < p->n; i++) {
        wrk_fini(&p->w[i]);
        snap_put(p->w[i].snap);
        p->w[i].snap = NULL;
    }
    free(p->w);
    p->w = NULL;
    p->n = 0;
    udp_limit_fini(&p->udp);
    adm_fini(&p->adm);
    if (p->main_fd >= 0) {
        close(p->main_fd);
        p->main_fd = -1;
    }
}

uint64_t
wrk_pool_open(const struct wrk_pool *p)
{
    uint64_t n = 0;

    for (size_t i = 0; i < p->n; i++) {
        n += ctr_get(&p->w[i].conns.n_open);
    }
    return n;
}

/* Wait on main's eventfd, which workers poke when they have answered,
 * until done(p, arg) or timeout_ms have passed. Workers answer within
 * one turn of their loop. Returns 0, or -1 with errno ETIMEDOUT. */
static int
wrk_pool_wait(struct wrk_pool *p, int timeout_ms,
              bool (*done)(const struct wrk_pool *p, const void *arg),
              const void *arg)
{
    struct pollfd pfd = {.fd = p->main_fd, .events = POLLIN};
    struct timespec ts;
    uint64_t count, until;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    until = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 +
            (uint64_t)timeout_ms;
    while (!done(p, arg)) {
        uint64_t now;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
        if (now >= until || poll(&pfd, 1, (int)(until - now)) <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        (void)!read(p->main_fd, &count, sizeof(count));
    }
    return 0;
}

static bool
wrk_pool_acked(const struct wrk_pool *p, const void *arg)
{
    uint64_t seq = *(const uint64_t *)arg;

    for (size_t i = 0; i < p->n; i++) {
        if (atomic_load(&p->w[i].acked) < seq) {
            return false;
        }
    }
    return true;
}

int
wrk_pool_sync(struct wrk_pool *p, int timeout_ms)
{
    uint64_t seq = ++p->seq;

    for (size_t i = 0; i < p->n; i++) {
        struct wrk_msg *m = wrk_msg_new(WRK_SYNC);

        if (m == NULL) {
            return -1;
        }
        m->seq = seq;
        wrk_post(&p->w[i], m);
    }
    return wrk_pool_wait(p, timeout_ms, wrk_pool_acked, &seq);
}

static bool
wrk_pool_filled(const struct wrk_pool *p, const void *arg)
{
    struct snap *const *v = arg;

    for (size_t i = 0; i < p->n; i++) {
        if (!atomic_load_explicit(&v[i]->filled, memory_order_acquire)) {
            return false;
        }
    }
    return true;
}

int
wrk_pool_snap(struct wrk_pool *p, struct snap **v, size_t limit,
              int timeout_ms)
{
    for (size_t i = 0; i < p->n; i++) {
        v[i] = NULL;
    }
    /* One listing at a time per worker: a stalled worker must not pile
     * them up in its mailbox while clients keep asking. */
    for (size_t i = 0; i < p->n; i++) {
        struct wrk *w = &p->w[i];

        if (w->snap != NULL &&
            !atomic_load_explicit(&w->snap->filled, memory_order_acquire)) {
            errno = EBUSY;
            return -1;
        }
        snap_put(w->snap);
        w->snap = NULL;
    }
    for (size_t i = 0; i < p->n; i++) {
        struct wrk_msg *m = wrk_msg_new(WRK_SNAP);

        v[i] = snap_new(limit);
        if (m == NULL || v[i] == NULL) {
            free(m);
            snap_put(v[i]); /* both holds: no worker has it */
            snap_put(v[i]);
            v[i] = NULL;
            return -1; /* the ones posted are the caller's to put */
        }
        m->snap = v[i];
        p->w[i].snap = snap_hold(v[i]);
        wrk_post(&p->w[i], m);
    }
    return wrk_pool_wait(p, timeout_ms, wrk_pool_filled, v);
}

bool
wrk_pool_alive(const struct wrk_pool *p, uint64_t since)
{
    for (size_t i = 0; i < p->n; i++) {
        if (atomic_load_explicit(&p->w[i].heartbeat, memory_order_relaxed) <
            since) {
            return false;
        }
    }
    return true;
}

void
wrk_pool_sum(const struct wrk_pool *p, struct st_sum *s)
{
    s->n_workers = p->n;
    for (size_t i = 0; i < p->n; i++) {
        const struct wrk *w = &p->w[i];
        uint64_t opened = ctr_get(&w->conns.n_opened);
        uint64_t rx = ctr_get(&w->udps.n_rx);

        s->open += ctr_get(&w->conns.n_open);
        s->opened += opened;
        s->bytes_out += ctr_get(&w->conns.bytes_out);
        s->rejected += ctr_get(&w->lsns.n_rejected);
        s->rejected_source += ctr_get(&w->lsns.n_rejected_source);
        s->shed += ctr_get(&w->lsns.n_shed);
        s->acl += ctr_get(&w->lsns.n_acl);
        s->untrusted += ctr_get(&w->lsns.n_untrusted);
        s->udp_rx += rx;
        s->udp_echoed += ctr_get(&w->udps.n_echoed);
        s->bytes_in += ctr_get(&w->conns.bytes_in);
        for (int k = 0; k < CONN_REASON_MAX; k++) {
            s->closed[k] += ctr_get(&w->conns.n_closed[k]);
        }
        /* Gauges: every slot, live or left by a reload. */
        for (size_t k = 0; k < STS_SLOTS; k++) {
            s->paused += ctr_get(&w->conns.tab.slot[k].c.paused);
            s->queued += ctr_get(&w->conns.tab.slot[k].c.queued);
        }
        sts_sum_hist(&w->conns.tab, s->hist, &s->hist_sum_us);
        refl_sum_hist(&w->udps.refl, s->stamp_hist, &s->stamp_hist_sum_ns);
        s->udp_bytes += ctr_get(&w->udps.bytes_echoed);
        for (int k = 0; k < UDP_DROP_MAX; k++) {
            s->udp_drop[k] += ctr_get(&w->udps.n_drop[k]);
        }
        s->udp_discarded += ctr_get(&w->udps.n_discarded);
        if (s->per_worker && i < ST_WORKERS_SHOWN) {
            s->w_opened[i] = opened;
            s->w_udp_rx[i] = rx;
        }
    }
}

void
wrk_pool_sum_entry(const struct wrk_pool *p, uint32_t id, struct sts_ctr *sum)
{
    for (size_t i = 0; i < p->n; i++) {
        sts_sum_entry(&p->w[i].conns.tab, id, sum);
    }
}

bool
wrk_pool_drained(const struct wrk_pool *p)
{
    for (size_t i = 0; i < p->n; i++) {
        if (!atomic_load(&p->w[i].draining) ||
            ctr_get(&p->w[i].conns.n_open) > 0) {
            return false;
        }
    }
    return true;
}
