/*
 * admit.c - admission shared by every worker (see admit.h).
 *
 * Owns: the process-wide count of open TCP connections and the lock of
 * the per-source table. Never touches a connection.
 */
#include <errno.h>

#include "admit.h"

int
adm_init(struct adm *a)
{
    int rc;

    atomic_init(&a->n_open, 0);
    atomic_init(&a->max_conns, 0);
    atomic_init(&a->max_per_source, 0);
    a->gen = 0;
    peer_init(&a->peers);
    rc = pthread_mutex_init(&a->lock, NULL);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return 0;
}

void
adm_fini(struct adm *a)
{
    peer_fini(&a->peers);
    pthread_mutex_destroy(&a->lock);
}

bool
adm_take(struct adm *a)
{
    size_t max = atomic_load_explicit(&a->max_conns, memory_order_relaxed);
    size_t cur = atomic_load_explicit(&a->n_open, memory_order_relaxed);

    /* A compare-and-swap, not add-then-undo: a transient overshoot would
     * make a third worker refuse while a place is free. */
    do {
        if (cur >= max) {
            return false;
        }
    } while (!atomic_compare_exchange_weak_explicit(
        &a->n_open, &cur, cur + 1, memory_order_relaxed, memory_order_relaxed));
    return true;
}

void
adm_give(struct adm *a)
{
    atomic_fetch_sub_explicit(&a->n_open, 1, memory_order_relaxed);
}

void
adm_lock(struct adm *a)
{
    /* Only EINVAL or EDEADLK, both programming errors. */
    (void)pthread_mutex_lock(&a->lock);
}

void
adm_unlock(struct adm *a)
{
    (void)pthread_mutex_unlock(&a->lock);
}
