/*
 * listener.h - listening sockets: bind or adopt, the accept loop with a
 * budget, admission (max_connections, max_connections_per_source), the
 * EMFILE reserve fd and pause.
 */
#ifndef ECHOD_LISTENER_H
#define ECHOD_LISTENER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "conn.h"
#include "list.h"
#include "log.h"
#include "loop.h"
#include "sock.h"

#define LSN_ACCEPT_BUDGET 64 /* accepts per listener turn */
#define LSN_PAUSE_MS 100     /* accept pause after EMFILE and friends */

/* Shared by all listeners of a loop. Owned by the server. */
struct lsn_set {
    struct loop *loop;
    struct conn_set *conns;
    struct list all;               /* struct lsn, in config order */
    size_t max_conns;              /* admission limit (fitted to NOFILE) */
    size_t max_per_source;         /* per source in conns->peers; 0 = none */
    int reserve_fd;                /* spare fd, sacrificed on EMFILE */
    bool paused;                   /* accepting stopped until the timer */
    struct loop_timer pause_timer;
    uint64_t n_rejected;           /* over max_connections */
    uint64_t n_rejected_source;    /* over max_connections_per_source */
    uint64_t n_shed;               /* dropped for lack of fds or memory */
    struct log_limit reject_log;
    struct log_limit source_log;
    struct log_limit emfile_log;
};

struct lsn {
    struct loop_io io; /* first */
    struct lsn_set *set;
    struct list node;  /* on set->all */
    struct cfg_listen conf; /* what it was bound from (if not adopted) */
    bool adopted;           /* inherited from the service manager */
    bool readable;
    char name[SOCK_NAME_MAX];
};

/* Returns 0, or -1 with errno if the reserve fd cannot be opened. */
int lsn_set_init(struct lsn_set *set, struct loop *loop,
                 struct conn_set *conns);
/* Closes every listener and the reserve fd. */
void lsn_set_fini(struct lsn_set *set);

/* Bind one configured listener. Returns it, or NULL with errno; the
 * caller logs (the name of what failed is in `conf`). */
struct lsn *lsn_open(struct lsn_set *set, const struct cfg_listen *conf,
                     int backlog);

/* Adopt an inherited listening socket (already validated as a listening
 * TCP socket). Returns it, or NULL with errno. */
struct lsn *lsn_adopt(struct lsn_set *set, int fd);

/* Stop listening on one socket (its pending connections are reset). */
void lsn_close(struct lsn *l);

/* Find a bound (not adopted) listener with this configuration; with
 * exact == false, one on the same address and port whatever its options. */
struct lsn *lsn_find(struct lsn_set *set, const struct cfg_listen *conf,
                     bool exact);

size_t lsn_count(const struct lsn_set *set);

#endif /* ECHOD_LISTENER_H */
