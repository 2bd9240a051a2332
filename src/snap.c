/*
 * snap.c - each worker's share of the connection listing.
 *
 * Owns: the struct snap allocations (reference-counted, see snap.h).
 * snap_fill runs on the worker that owns the connections, so it reads
 * them without a lock; it keeps the busiest in a min-heap of at most
 * `limit` entries (n log limit over all n connections) and asks the
 * kernel for the peer address of only those, since a plain connection
 * keeps none (conn.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "snap.h"

struct snap *
snap_new(size_t limit)
{
    struct snap *s = calloc(1, sizeof(*s) + limit * sizeof(s->v[0]));

    if (s == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&s->refs, 2);
    atomic_init(&s->filled, false);
    s->limit = limit;
    return s;
}

struct snap *
snap_hold(struct snap *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void
snap_put(struct snap *s)
{
    if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1) {
        free(s);
    }
}

int
snap_cmp(const void *a, const void *b)
{
    const struct snap_conn *x = a, *y = b;
    uint64_t bx = x->rx + x->tx, by = y->rx + y->tx;

    if (bx != by) {
        return bx > by ? -1 : 1;
    }
    if (x->age_ms != y->age_ms) {
        return x->age_ms > y->age_ms ? -1 : 1;
    }
    return 0;
}

/* The heap keeps the least busy of the kept ones at v[0]. */
static bool
snap_less(const struct snap_conn *x, const struct snap_conn *y)
{
    return snap_cmp(x, y) > 0;
}

static void
snap_sift_down(struct snap_conn *v, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;

        if (l < n && snap_less(&v[l], &v[m])) {
            m = l;
        }
        if (r < n && snap_less(&v[r], &v[m])) {
            m = r;
        }
        if (m == i) {
            return;
        }
        struct snap_conn t = v[i];
        v[i] = v[m];
        v[m] = t;
        i = m;
    }
}

static void
snap_sift_up(struct snap_conn *v, size_t i)
{
    while (i > 0 && snap_less(&v[i], &v[(i - 1) / 2])) {
        struct snap_conn t = v[i];
        v[i] = v[(i - 1) / 2];
        v[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

/* What the listing shows of c, but its peer (only for those kept). */
static void
snap_figures(struct snap_conn *e, struct conn *c, uint64_t now)
{
    memset(e, 0, sizeof(*e));
    e->conn = c;
    e->worker = c->set->worker;
    e->lsn_id = atomic_load_explicit(&c->set->tab.slot[c->slot].id,
                                     memory_order_relaxed);
    e->paused = c->rd_paused;
    /* created is in centiseconds and active in ms, both 32-bit and
     * wrapping: unsigned differences are right within their range. */
    e->age_ms = (uint64_t)(uint32_t)((uint32_t)(now / 10) - c->created) * 10;
    e->idle_ms = (uint32_t)((uint32_t)now - c->active);
    if (e->idle_ms > e->age_ms) {
        e->idle_ms = e->age_ms; /* age is kept in centiseconds only */
    }
    e->rx = c->rx;
    e->tx = c->tx;
    e->queued = c->out.bytes;
}

void
snap_fill(struct snap *s, struct conn_set *set)
{
    uint64_t now = set->loop->now;
    struct snap_conn e;

    s->n = 0;
    s->total = 0;
    for (struct list *n = set->lru.next; n != &set->lru; n = n->next) {
        struct conn *c = list_entry(n, struct conn, lru);

        s->total++;
        if (s->limit == 0) {
            continue;
        }
        snap_figures(&e, c, now);
        if (s->n < s->limit) {
            s->v[s->n] = e;
            snap_sift_up(s->v, s->n++);
        } else if (snap_less(&s->v[0], &e)) {
            s->v[0] = e;
            snap_sift_down(s->v, s->n, 0);
        }
    }
    qsort(s->v, s->n, sizeof(s->v[0]), snap_cmp);
    /* The peers of the kept ones only: a syscall each. */
    for (size_t i = 0; i < s->n; i++) {
        int rc = conn_peer(s->v[i].conn, &s->v[i].peer);

        s->v[i].proxied = rc == 1;
        if (rc < 0) {
            s->v[i].peer.ss_family = AF_UNSPEC;
        }
        s->v[i].conn = NULL;
    }
    atomic_store_explicit(&s->filled, true, memory_order_release);
}
