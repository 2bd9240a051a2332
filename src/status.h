/*
 * status.h - the STATUS line systemd shows, from one snapshot of the
 * counters summed over the workers (so its parts never disagree).
 */
#ifndef ECHOD_STATUS_H
#define ECHOD_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sock.h"
#include "stats.h"
#include "udp.h"

#define ST_WORKERS_SHOWN 16 /* per-worker figures in the debug log */
#define ST_LISTENERS 128    /* listen entries in a snapshot */

/* What a listen entry serves (the `service` key). */
enum st_service {
    ST_SVC_ECHO,
    ST_SVC_DISCARD,
    ST_SVC_METRICS,
    ST_SVC_STAMP,
};


/* One listen entry's counters, summed over the workers. */
struct st_lsn {
    char name[SOCK_NAME_MAX]; /* ADDRESS:PORT ([v6]:PORT) */
    bool udp;
    enum st_service service;
    struct sts_ctr c;
};

/*
 * One snapshot of every counter, summed over the workers by the main
 * thread: STATUS (st_text) and /metrics (metrics.h) both render it, so
 * they cannot disagree. Totals come from each worker's running totals
 * and so include listeners a reload removed; per-listener figures are
 * those of the entries in force.
 */
struct st_sum {
    size_t n_tcp; /* TCP listen entries that take connections (echo and
                     discard; not metrics) */
    size_t n_udp; /* UDP listen entries (echo and discard) */
    bool stopping;
    bool reload_failed;
    uint64_t open;            /* TCP connections open */
    uint64_t opened;          /* accepted and set up */
    uint64_t rejected;        /* over max_connections */
    uint64_t rejected_source; /* over max_connections_per_source */
    uint64_t shed;            /* no fd or memory */
    uint64_t acl;             /* refused by allow/deny at accept */
    uint64_t untrusted;       /* not in proxy_from */
    uint64_t bytes_out;       /* TCP bytes echoed */
    uint64_t udp_rx;          /* = echoed + discarded + dropped */
    uint64_t udp_echoed;
    uint64_t udp_bytes;
    uint64_t udp_drop[UDP_DROP_MAX];
    uint64_t udp_discarded;              /* taken by discard sockets */
    uint64_t bytes_in;                   /* TCP bytes received */
    uint64_t closed[STS_CLOSE_MAX];      /* TCP closes by reason */
    uint64_t paused;                     /* TCP conns in backpressure */
    uint64_t queued;                     /* TCP bytes queued now */
    uint64_t hist[STS_HIST_BUCKETS + 1]; /* echo delay; last: +Inf only */
    uint64_t hist_sum_us;
    uint64_t stamp_hist[STS_HIST_BUCKETS + 1]; /* STAMP T3 - T2; the same */
    uint64_t stamp_hist_sum_ns;
    /* Per listen entry in force (n_lsn of them, at most ST_LISTENERS). */
    size_t n_lsn;
    struct st_lsn lsn[ST_LISTENERS];
    /* The process. */
    int64_t start_time;  /* unix seconds */
    int64_t config_time; /* unix seconds of the last successful load */
    uint64_t reloads_ok;
    uint64_t reloads_failed;
    /* With per_worker set: each worker's accepted connections and
     * received datagrams, for the first ST_WORKERS_SHOWN workers. */
    bool per_worker;
    size_t n_workers;
    uint64_t w_opened[ST_WORKERS_SHOWN];
    uint64_t w_udp_rx[ST_WORKERS_SHOWN];
};

/*
 * The STATUS line. Its TCP part comes first and keeps its form; the UDP
 * part is added only once UDP is in use:
 *   "2 listener(s), 5 connection(s) open, 17 accepted, 0 refused (0 per
 *    source); udp: 1 socket(s), 40 received, 31 echoed, 9 dropped (9 rate)"
 * "refused" counts every connection closed at accept: over a limit, by
 * allow/deny, from an untrusted proxy, or shed for lack of fds. Discard
 * listeners count with the others (their connections and datagrams are
 * in the same totals); once a discard socket has taken a datagram the UDP
 * part ends in ", N discarded", so that received = echoed + dropped +
 * discarded stays visible. An echo-only echod's line is unchanged.
 * Always NUL-terminates; a line that does not fit is cut.
 */
void st_text(const struct st_sum *s, char *buf, size_t len);

/* "echo", "discard", "metrics" or "stamp": the `service` label of every
 * view. */
const char *st_service_name(enum st_service svc);

/* "w0 5/0, w1 7/2": accepted connections / received datagrams of each
 * worker (s->per_worker). Always NUL-terminates. */
void st_workers_text(const struct st_sum *s, char *buf, size_t len);

/* The sum of s->udp_drop. */
uint64_t st_udp_dropped(const struct st_sum *s);

#endif /* ECHOD_STATUS_H */
