/*
 * worker.h - the engines: one thread per worker, each with its own epoll
 * loop, connections, chunk pool, timers, log limiters and counters, and
 * its own socket for every listen entry. Connections never migrate.
 *
 * The main thread talks to a worker only through its mailbox (an eventfd
 * plus a list under a lock, touched on reload and shutdown only); a
 * worker answers only through counters, its heartbeat, and a poke of the
 * main thread's eventfd when it has drained.
 */
#ifndef ECHOD_WORKER_H
#define ECHOD_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admit.h"
#include "bset.h"
#include "conn.h"
#include "listener.h"
#include "loop.h"
#include "status.h"
#include "snap.h"
#include "udp.h"

#define WRK_MAX 256       /* workers = 1..WRK_MAX */
#define WRK_FLUSH_MS 1000 /* log flood counts are flushed this often */

/* The values of a configuration a worker applies itself; the shared
 * limits (admit.h, struct udp_limit) the main thread sets directly. */
struct wrk_conf {
    size_t high;      /* output_high_watermark */
    size_t low;       /* output_low_watermark */
    uint64_t idle_ms; /* 0 = no idle timeout */
};

struct wrk_msg;

struct wrk {
    struct wrk_pool *pool;
    unsigned id;
    pthread_t thread;
    bool running; /* the thread was started (main's view) */
    struct loop loop;
    struct bset_local socks;
    struct conn_set conns;
    struct lsn_set lsns;
    struct udp_set udps;
    struct loop_io evio; /* the mailbox's eventfd */
    struct loop_timer beat;
    bool stop;                  /* leave the loop (worker's own) */
    bool drained_told;          /* main was poked about the drain */
    _Atomic bool draining;      /* a drain was applied */
    _Atomic uint64_t heartbeat; /* loop.now of the last beat (ms) */
    _Atomic uint64_t acked;     /* the last wrk_pool_sync it applied */
    struct snap *snap;          /* main's: the last listing asked (a hold) */
    pthread_mutex_t lock;       /* guards the mailbox */
    struct wrk_msg *head, *tail;
};

/* Every worker, and what they share. Owned by the main thread. */
struct wrk_pool {
    size_t n;
    struct wrk *w;        /* n workers */
    struct adm adm;       /* max_connections and per-source */
    struct udp_limit udp; /* UDP reply limits */
    uint64_t beat_ms;     /* heartbeat period */
    uint64_t seq;         /* of the last wrk_pool_sync */
    int main_fd;          /* eventfd poked when a worker has drained */
};

/* The number of workers `workers = N` or "auto" (0) means: the CPUs in
 * the process's affinity mask, at least 1, at most WRK_MAX. */
size_t wrk_count(int64_t workers);

/*
 * Set up n workers (loops, sets, mailboxes), not yet running, and the
 * shared limits. beat_ms: how often each stamps its heartbeat. Returns
 * 0, or -1 with errno (everything set up is released again).
 */
int wrk_pool_init(struct wrk_pool *p, size_t n, uint64_t beat_ms);
/* Start the threads. Returns 0, or -1 with errno (the started ones are
 * stopped again). */
int wrk_pool_start(struct wrk_pool *p);
/* Tell every running worker to stop, join them; each closes what it
 * owns first. Safe to call more than once. */
void wrk_pool_stop(struct wrk_pool *p);
/* After wrk_pool_stop: release the loops and the shared limits. */
void wrk_pool_fini(struct wrk_pool *p);

/* Mailbox (main thread). Each returns 0, or -1 with errno ENOMEM (the
 * message is lost; the caller logs). */
int wrk_post_conf(struct wrk *w, const struct wrk_conf *c);
/* Hand the worker fd (owned by it from now on unless shared) as its
 * socket of entry `id`; on failure the fd is closed unless shared. */
int wrk_post_add(struct wrk *w, const struct bset_ent *e, int fd);
int wrk_post_del(struct wrk *w, uint32_t id);
/* Entry e's policy (allow/deny, PROXY) changed on reload. */
int wrk_post_policy(struct wrk *w, const struct bset_ent *e);
/* Close every socket, then let connections finish (graceful shutdown). */
int wrk_post_drain(struct wrk *w);
/* Close every connection now (the shutdown deadline passed). */
int wrk_post_close_all(struct wrk *w);

/* Add the workers' counters into s (its other fields are the caller's);
 * per-worker figures too when s->per_worker. Reads while they run. */
void wrk_pool_sum(const struct wrk_pool *p, struct st_sum *s);

/* Add entry id's counters of every worker into sum. */
void wrk_pool_sum_entry(const struct wrk_pool *p, uint32_t id,
                        struct sts_ctr *sum);

/* True once every worker has applied a drain and holds no connection. */
bool wrk_pool_drained(const struct wrk_pool *p);

/* Sum of the connections the workers hold open. */
uint64_t wrk_pool_open(const struct wrk_pool *p);

/* A barrier: wait up to timeout_ms until every worker has applied all
 * that was posted to it (sockets added and closed, limits, and its open
 * connections counted in a rebuilt per-source table), so that READY=1
 * after a reload means every worker runs the new configuration. Returns
 * 0, or -1 with errno (ETIMEDOUT: a worker is stalled; ENOMEM). */
int wrk_pool_sync(struct wrk_pool *p, int timeout_ms);

/* The connection listing: each worker's `limit` busiest connections, in
 * v[0..n) (one snapshot per worker, snap.h). Waits up to timeout_ms for
 * them to be filled. Returns 0, or -1 with errno (ETIMEDOUT: a worker is
 * stalled; ENOMEM). Either way the caller snap_puts every v[i] that is
 * not NULL, filled or not. */
int wrk_pool_snap(struct wrk_pool *p, struct snap **v, size_t limit,
                  int timeout_ms);

/* True when every worker stamped its heartbeat after `since` (ms). */
bool wrk_pool_alive(const struct wrk_pool *p, uint64_t since);

#endif /* ECHOD_WORKER_H */
