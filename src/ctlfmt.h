/*
 * ctlfmt.h - the answers of the control socket (`echodctl status`,
 * `stats`, `connections`), as text for people or as one JSON document
 * (RFC 8259) for programs, rendered by the daemon from one snapshot
 * (status.h) so that they agree with STATUS and /metrics.
 */
#ifndef ECHOD_CTLFMT_H
#define ECHOD_CTLFMT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "sock.h"
#include "status.h"

/* What `status` shows beyond the snapshot. */
struct ctl_info {
    const char *version;
    long pid;
    int64_t now;            /* unix seconds, for the uptime */
    const char *config;     /* path of the config file */
    int64_t reload_time;    /* unix seconds of the last reload attempt;
                               0: none yet */
    bool reload_ok;         /* its result */
    char reload_error[256]; /* why it failed ("" if ok) */
};

/* One open connection, as `connections` lists it. */
struct ctl_conn {
    char source[SOCK_NAME_MAX];   /* "ADDRESS:PORT" of the client
                                     ([v6]:PORT), as PROXY declared it
                                     if proxied */
    char listener[SOCK_NAME_MAX]; /* "ADDRESS:PORT" of the listen entry */
    unsigned worker;
    uint64_t age_ms, idle_ms;
    uint64_t rx, tx; /* bytes received from / sent to the client */
    uint64_t queued; /* bytes waiting in its output queue */
    bool paused;     /* reading paused by backpressure */
    bool proxied;    /* source came from a PROXY header */
};

/*
 * Each appends one answer to b: text when json is false, else one JSON
 * object and "\n". Strings from outside (names, paths, the reload
 * error) are escaped in JSON (invalid UTF-8 becomes U+FFFD) and have
 * their control characters replaced by '?' in text. Times in JSON are
 * unix seconds, durations float seconds. Each returns 0, or -1 if
 * memory ran out (b->failed: the answer is incomplete).
 */

/* version, pid, uptime, workers, listeners, connections open, config
 * path and load time, the last reload and the STATUS line (st_text). */
int ctl_fmt_status(struct mtr_buf *b, const struct st_sum *s,
                   const struct ctl_info *i, bool json);

/*
 * Every counter, per listener and in total, the echo delay histogram,
 * reloads, workers, start and config load time. The JSON names are
 * those of /metrics (metrics.h) without the echod_ prefix, and each
 * listener has the families /metrics gives its protocol; every reason
 * is listed in JSON, only those not 0 in text. "total" has every
 * family, from the workers' running totals (so it counts listeners a
 * reload removed, and no metrics scrapes), except that the UDP bytes
 * received come from the UDP listeners in force: the snapshot has no
 * running total of them.
 */
int ctl_fmt_stats(struct mtr_buf *b, const struct st_sum *s, bool json);

/* v: the n connections shown (already sorted: the busiest first,
 * snap.h); total: how many are open in all. Text: one aligned row each
 * under a header, then "N of M connection(s) shown". */
int ctl_fmt_conns(struct mtr_buf *b, const struct ctl_conn *v, size_t n,
                  uint64_t total, bool json);

#endif /* ECHOD_CTLFMT_H */
