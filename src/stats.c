/*
 * stats.c - per-listener counter slots and the echo delay histogram.
 *
 * Owns: each worker's slot table (struct sts_tab) and the sums read from
 * it. Never locks, never allocates, never reads a clock: the worker
 * passes the loop's cached time. Only the owning worker writes a table
 * (sts_take, sts_put, sts_delay_*); any thread may sum one.
 *
 * Invariant: slot i with users > 0 has id != 0 (or is slot 0); a freed
 * slot keeps its counters until it is taken again, and is zeroed before
 * its new id is published.
 */
#include <stddef.h>
#include <string.h>

#include "counter.h"
#include "stats.h"

_Static_assert(STS_SLOTS <= 256, "a slot index is a uint8_t");
_Static_assert(sizeof(struct sts_ctr) % sizeof(_Atomic uint64_t) == 0,
               "struct sts_ctr holds only counters");

static _Atomic uint64_t *
sts_ctr_at(struct sts_ctr *c, size_t i)
{
    return (_Atomic uint64_t *)(void *)c + i;
}

static const _Atomic uint64_t *
sts_ctr_cat(const struct sts_ctr *c, size_t i)
{
    return (const _Atomic uint64_t *)(const void *)c + i;
}

void
sts_tab_init(struct sts_tab *t)
{
    memset(t, 0, sizeof(*t));
    t->slot[0].users = 1; /* never freed */
}

static void
sts_zero(struct sts_ctr *c)
{
    for (size_t i = 0; i < STS_CTR_N; i++) {
        atomic_store_explicit(sts_ctr_at(c, i), 0, memory_order_relaxed);
    }
}

uint8_t
sts_take(struct sts_tab *t, uint32_t id)
{
    size_t free_at = 0;

    if (id == 0) {
        return 0;
    }
    for (size_t i = 1; i < STS_SLOTS; i++) {
        struct sts_slot *s = &t->slot[i];

        if (s->users > 0 &&
            atomic_load_explicit(&s->id, memory_order_relaxed) == id) {
            s->users++;
            return (uint8_t)i;
        }
        if (s->users == 0 && free_at == 0) {
            free_at = i;
        }
    }
    if (free_at == 0) {
        return 0; /* counted, but under no entry */
    }
    struct sts_slot *s = &t->slot[free_at];
    /* Unpublish the old id first, so no reader adds fresh zeroes to it. */
    atomic_store_explicit(&s->id, 0, memory_order_release);
    sts_zero(&s->c);
    atomic_store_explicit(&s->id, id, memory_order_release);
    s->users = 1;
    return (uint8_t)free_at;
}

void
sts_hold(struct sts_tab *t, uint8_t slot)
{
    if (slot != 0) {
        t->slot[slot].users++;
    }
}

void
sts_put(struct sts_tab *t, uint8_t slot)
{
    struct sts_slot *s = &t->slot[slot];

    if (slot == 0 || s->users == 0) {
        return;
    }
    s->users--;
}

/* The bucket of a delay in microseconds: the first decade bound >= it. */
static unsigned
sts_bucket_us(uint64_t us)
{
    uint64_t le = 1;
    unsigned i = 0;

    while (i < STS_HIST_BUCKETS && us > le) {
        le *= 10;
        i++;
    }
    return i; /* STS_HIST_BUCKETS: only in +Inf */
}

void
sts_delay_ms(struct sts_tab *t, uint64_t d_ms)
{
    uint64_t us = (d_ms == 0 ? 1 : d_ms) * 1000;
    unsigned i = sts_bucket_us(us);

    if (i < STS_HIST_BUCKETS) {
        ctr_add(&t->hist[i], 1);
    } else {
        ctr_add(&t->hist_inf, 1);
    }
    ctr_add(&t->hist_sum_us, us);
}

double
sts_bucket_le(unsigned i)
{
    double le = 1e-6;

    while (i-- > 0) {
        le *= 10;
    }
    return le;
}

static void
sts_add(struct sts_ctr *sum, const struct sts_ctr *c)
{
    for (size_t i = 0; i < STS_CTR_N; i++) {
        _Atomic uint64_t *d = sts_ctr_at(sum, i);

        atomic_store_explicit(d,
                              atomic_load_explicit(d, memory_order_relaxed) +
                                  ctr_get(sts_ctr_cat(c, i)),
                              memory_order_relaxed);
    }
}

void
sts_sum_entry(const struct sts_tab *t, uint32_t id, struct sts_ctr *sum)
{
    for (size_t i = 1; i < STS_SLOTS; i++) {
        if (atomic_load_explicit(&t->slot[i].id, memory_order_acquire) == id) {
            sts_add(sum, &t->slot[i].c);
        }
    }
}

void
sts_sum_all(const struct sts_tab *t, struct sts_ctr *sum)
{
    for (size_t i = 0; i < STS_SLOTS; i++) {
        sts_add(sum, &t->slot[i].c);
    }
}

void
sts_sum_hist(const struct sts_tab *t, uint64_t *hist, uint64_t *sum_us)
{
    for (size_t i = 0; i < STS_HIST_BUCKETS; i++) {
        hist[i] += ctr_get(&t->hist[i]);
    }
    hist[STS_HIST_BUCKETS] += ctr_get(&t->hist_inf);
    *sum_us += ctr_get(&t->hist_sum_us);
}
