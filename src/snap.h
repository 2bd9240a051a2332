/*
 * snap.h - the listing of open connections `echodctl connections` shows:
 * each worker picks its own N busiest connections (by bytes in and out)
 * from its loop, and the main thread merges what the workers picked.
 *
 * A snapshot is one allocation shared by the main thread and one worker
 * and freed by whichever lets go last: the main thread waits for the
 * workers only so long (wrk_pool_sync), and a worker that answers after
 * that must still find its snapshot alive.
 */
#ifndef ECHOD_SNAP_H
#define ECHOD_SNAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct conn;
struct conn_set;

/* One connection as its worker saw it. */
struct snap_conn {
    struct sockaddr_storage peer; /* ss_family AF_UNSPEC: unknown */
    uint32_t lsn_id;              /* its listen entry (bset id); 0: none */
    unsigned worker;              /* whose connection it is */
    bool proxied;                 /* peer came from a PROXY header */
    bool paused;                  /* reading paused by backpressure */
    uint64_t age_ms, idle_ms;
    uint64_t rx, tx, queued; /* bytes */
    struct conn *conn;       /* the worker's, while it fills; then NULL */
};

struct snap {
    _Atomic unsigned refs;
    _Atomic bool filled; /* the worker is done (release) */
    size_t limit;        /* the most it keeps */
    size_t n;            /* kept, busiest first */
    uint64_t total;      /* open connections the worker holds */
    struct snap_conn v[];
};

/* A snapshot for up to limit connections, held twice (the asker and
 * the worker); NULL with errno ENOMEM. */
struct snap *snap_new(size_t limit);
/* One more hold (the main thread's, to know whether a worker is done
 * with it). */
struct snap *snap_hold(struct snap *s);
/* Let go of one hold; the last frees it. */
void snap_put(struct snap *s);

/* The worker that owns set: keep its limit busiest connections (rx + tx,
 * then the oldest first), sorted, with their peers. */
void snap_fill(struct snap *s, struct conn_set *set);

/* Order for qsort: busiest first, then oldest. */
int snap_cmp(const void *a, const void *b);

#endif /* ECHOD_SNAP_H */
