/*
 * counter.h - counters one thread writes and another reads.
 *
 * A worker bumps its own counters on the per-message path; the main
 * thread sums them for STATUS (and later the control socket and metrics)
 * without stopping anyone. With a single writer a relaxed load and store
 * is enough: on x86 and arm64 they are plain moves, no locked
 * instruction, and readers see each value whole.
 */
#ifndef ECHOD_COUNTER_H
#define ECHOD_COUNTER_H

#include <stdatomic.h>
#include <stdint.h>

/* Only the owning thread may call ctr_add/ctr_sub. */
static inline void
ctr_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void
ctr_sub(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) - n,
                          memory_order_relaxed);
}

/* Any thread. */
static inline uint64_t
ctr_get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

#endif /* ECHOD_COUNTER_H */
