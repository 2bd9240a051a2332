/*
 * listener.h - TCP echo listening sockets, as a kind of the bound-socket
 * set: the accept loop with a budget, admission (max_connections and
 * max_connections_per_source, totals over all workers), the EMFILE
 * reserve fd and pause.
 */
#ifndef ECHOD_LISTENER_H
#define ECHOD_LISTENER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "admit.h"
#include "bset.h"
#include "conn.h"
#include "log.h"
#include "loop.h"

#define LSN_ACCEPT_BUDGET 64 /* accepts per listener turn */
#define LSN_PAUSE_MS 100     /* accept pause after EMFILE and friends */

/* The listeners of one worker share this (bset_sock.ctx). */
struct lsn_set {
    struct loop *loop;
    struct conn_set *conns;
    struct bset_local *socks; /* the worker's sockets: requeued on resume */
    struct adm *adm;          /* shared limits (conns->adm) */
    int reserve_fd;           /* spare fd, sacrificed on EMFILE */
    bool paused;              /* accepting stopped until the timer */
    struct loop_timer pause_timer;
    /* Written by this worker only, read by anyone (counter.h). */
    _Atomic uint64_t n_rejected;        /* over max_connections */
    _Atomic uint64_t n_rejected_source; /* over max_connections_per_source */
    _Atomic uint64_t n_shed;            /* dropped for lack of fds/memory */
    _Atomic uint64_t n_acl;             /* refused by allow/deny */
    _Atomic uint64_t n_untrusted;       /* not in proxy_from */
    struct log_limit reject_log;
    struct log_limit source_log;
    struct log_limit emfile_log;
    struct log_limit acl_log;
};

/* The kind for bset_sock_add: a turn accepts, the drain before a close
 * takes every pending connection. */
extern const struct bset_kind lsn_kind;

/* conns->adm must be set. Returns 0, or -1 with errno if the reserve fd
 * cannot be opened. */
int lsn_set_init(struct lsn_set *set, struct loop *loop, struct conn_set *conns,
                 struct bset_local *socks);
/* Stops the pause timer and closes the reserve fd (the sockets belong to
 * the bset_local). */
void lsn_set_fini(struct lsn_set *set);

#endif /* ECHOD_LISTENER_H */
