/*
 * stats.h - each worker's counters per listen entry ("slots"), its echo
 * delay histogram, and the sums the main thread reads from them.
 *
 * A worker writes only its own table (counter.h: relaxed load and store,
 * no lock, nothing shared on the per-message path); the main thread sums
 * the tables of every worker into one snapshot (status.h, struct
 * st_sum), which STATUS and /metrics both render.
 *
 * A slot belongs to one bound-socket entry (bset_ent.id) in one worker.
 * It is taken when the worker's socket of that entry is added and by
 * every connection accepted on it (struct conn keeps the slot's index),
 * and is given back by each of them; so it outlives a listener a reload
 * closed while its connections are still open. A slot is reused only
 * when nobody holds it, and then starts from zero. Slot 0 is never
 * given out by id: it counts what belongs to no entry (connections made
 * by unit tests, or any taken while every slot was in use).
 */
#ifndef ECHOD_STATS_H
#define ECHOD_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define STS_SLOTS 128       /* per worker: > CFG_MAX_LISTEN, fits uint8_t */
#define STS_CLOSE_MAX 10    /* == CONN_REASON_MAX (checked in conn.c) */
#define STS_UDP_DROP_MAX 12 /* == UDP_DROP_MAX (checked in udp.c) */

/* Why a TCP connection was refused at accept, before it was served. */
enum sts_refuse {
    STS_REF_MAX_CONNS,  /* over max_connections (or draining) */
    STS_REF_PER_SOURCE, /* over max_connections_per_source */
    STS_REF_ACL,        /* refused by allow/deny */
    STS_REF_UNTRUSTED,  /* a PROXY listener's peer not in proxy_from */
    STS_REF_EMFILE,     /* shed: no fd or memory */
    STS_REF_PROXY,      /* its PROXY header was bad, late or missing
                           (also counted as closed: proxy) */
    STS_REF_MAX,
};

/*
 * The echo delay histogram: decades from 1 us to 10 s (upper bounds
 * 1e-6 .. 1e1 seconds) and +Inf. Bytes sent in the turn that read them
 * count as 0. Queued bytes are timed with the loop's cached clock, in
 * whole milliseconds, and a delay under one tick counts as 1 ms: so
 * below 1 ms the histogram only says "sent at once" or "queued".
 */
#define STS_HIST_BUCKETS 8 /* finite buckets; +Inf is the count */

/* The counters of one entry in one worker. Gauges (open, paused,
 * queued) go up and down; everything else only up. */
struct sts_ctr {
    _Atomic uint64_t open;     /* TCP connections open now */
    _Atomic uint64_t accepted; /* TCP connections set up */
    _Atomic uint64_t refused[STS_REF_MAX];
    _Atomic uint64_t closed[STS_CLOSE_MAX];
    _Atomic uint64_t bytes_in;  /* TCP bytes received, UDP bytes received */
    _Atomic uint64_t bytes_out; /* TCP bytes sent, UDP bytes echoed */
    _Atomic uint64_t paused;    /* TCP connections paused (backpressure) */
    _Atomic uint64_t queued;    /* TCP bytes queued now */
    _Atomic uint64_t udp_rx;
    _Atomic uint64_t udp_echoed;
    _Atomic uint64_t udp_drop[STS_UDP_DROP_MAX];
    _Atomic uint64_t udp_discarded; /* taken by a discard socket, unanswered */
};

struct sts_slot {
    _Atomic uint32_t id; /* the entry (0: free, or slot 0) */
    uint32_t users;      /* holders: the socket, each connection */
    struct sts_ctr c;
};

/* One worker's table and histogram. */
struct sts_tab {
    struct sts_slot slot[STS_SLOTS];
    _Atomic uint64_t hist[STS_HIST_BUCKETS]; /* not cumulative */
    _Atomic uint64_t hist_inf;               /* over the last bound */
    _Atomic uint64_t hist_sum_us;            /* sum of delays, microseconds */
};

void sts_tab_init(struct sts_tab *t);

/* The owning worker: the slot of entry id (the one already held, else a
 * free one, zeroed), with one more user. 0 when every slot is taken. */
uint8_t sts_take(struct sts_tab *t, uint32_t id);
/* One more user of a slot already held (a connection of its socket). */
void sts_hold(struct sts_tab *t, uint8_t slot);
/* One user fewer; the last one frees the slot. Slot 0 is kept. */
void sts_put(struct sts_tab *t, uint8_t slot);

/* The owning worker: one delay observation of d_ms milliseconds of the
 * loop clock (queued bytes: counted as at least 1 ms). */
void sts_delay_ms(struct sts_tab *t, uint64_t d_ms);

/* The owning worker: bytes sent at once (delay 0). Inline: per echo. */
static inline void
sts_delay_zero(struct sts_tab *t)
{
    atomic_store_explicit(
        &t->hist[0],
        atomic_load_explicit(&t->hist[0], memory_order_relaxed) + 1,
        memory_order_relaxed);
}

/* The upper bound of finite bucket i, in seconds (1e-6 .. 1e1). */
double sts_bucket_le(unsigned i);

/* Any thread: add t's counters of entry id into sum (none if the worker
 * holds no slot for it). */
void sts_sum_entry(const struct sts_tab *t, uint32_t id, struct sts_ctr *sum);
/* Any thread: add every slot's counters (all entries, live or gone). */
void sts_sum_all(const struct sts_tab *t, struct sts_ctr *sum);
/* Any thread: add t's histogram into hist[0..STS_HIST_BUCKETS] (the
 * last is +Inf only; not cumulative) and
 * *sum_us. The count is the sum of the buckets. */
void sts_sum_hist(const struct sts_tab *t, uint64_t *hist, uint64_t *sum_us);

/* Counters of a struct sts_ctr, in order, for sums (all _Atomic
 * uint64_t, so the struct is an array of them). */
#define STS_CTR_N (sizeof(struct sts_ctr) / sizeof(_Atomic uint64_t))

#endif /* ECHOD_STATS_H */
