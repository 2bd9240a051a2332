/*
 * admit.h - admission shared by every worker: max_connections and
 * max_connections_per_source are totals over the process, not per
 * worker.
 *
 * The count of open connections is one atomic, taken at accept (by
 * compare-and-swap, never past the limit) and given back at close, so
 * `max_connections = 5` serves exactly 5 whatever the number of workers. The
 * per-source table is one table under a mutex taken only at accept and close,
 * never per message. The main thread rebuilds the table on a reload that
 * changes its size or prefixes (under the lock) and bumps `gen`; each worker
 * counts its own connections into the new table the next time it holds the lock
 * (conn_set_sync_peers), before it uses or releases a handle.
 */
#ifndef ECHOD_ADMIT_H
#define ECHOD_ADMIT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "peers.h"

struct adm {
    _Atomic size_t n_open;         /* TCP connections open, all workers */
    _Atomic size_t max_conns;      /* fitted max_connections */
    _Atomic size_t max_per_source; /* 0 = no limit */
    pthread_mutex_t lock;          /* guards peers and gen */
    struct peer_table peers;
    unsigned gen; /* bumped when peers was rebuilt */
};

/* Returns 0, or -1 with errno. The table has no slots until
 * peer_configure (under the lock). */
int adm_init(struct adm *a);
void adm_fini(struct adm *a);

/* Take one place under max_connections; false (nothing taken) when all
 * are taken. */
bool adm_take(struct adm *a);
/* Give back a place adm_take gave. */
void adm_give(struct adm *a);

void adm_lock(struct adm *a);
void adm_unlock(struct adm *a);

#endif /* ECHOD_ADMIT_H */
