/*
 * srcrate.c - a bounded table of per-source token buckets.
 *
 * Owns: SRATE_SLOTS slots in sets of SRATE_WAYS, found by the keyed
 * hash of the source (skey_of under the table's prefix lengths, then
 * skey_hash under its secret). Each slot holds two buckets: replies, and
 * the bytes of those replies (when a byte limit is on). A source not in
 * the table takes a free slot of its set, or else the slot with the most
 * room (srate_room: the fill of its emptier bucket): forgetting that one
 * costs nothing, since a new entry starts full, while a source that is
 * being held back by either bucket is kept. Only a flood of fresh
 * sources that outruns the refill can push a held-back source out and
 * give it a fresh burst, so callers keep a global limit as well.
 * Never allocates after srate_init, never logs, and never decides on its
 * own what a source is (srckey does, for TCP and UDP alike).
 * Invariant: a take spends from both buckets of a slot or from neither.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "srcrate.h"
#include "tbucket.h"

struct srate_slot {
    struct skey key; /* the source */
    bool used;
    struct tb tb;    /* replies */
    struct tb bytes; /* their bytes; unused while t->byte_rate is 0 */
};

/* The bound srcrate.h states (and echod.conf(5) repeats). */
_Static_assert(sizeof(struct srate_slot) <= SRATE_SLOT_BYTES,
               "a slot outgrew SRATE_SLOT_BYTES: update it and the man page");

int
srate_init(struct srate *t, double rate, double burst, unsigned prefix4,
           unsigned prefix6)
{
    t->rate = rate;
    t->burst = burst;
    t->byte_rate = 0;
    t->byte_burst = 0;
    t->prefix4 = prefix4;
    t->prefix6 = prefix6;
    t->slot = calloc(SRATE_SLOTS, sizeof(*t->slot));
    if (t->slot == NULL) {
        errno = ENOMEM;
        return -1;
    }
    /* A secret nobody outside knows: forged sources cannot be picked so
     * that they all land in a victim's set. */
    skey_seed(&t->seed);
    return 0;
}

void
srate_fini(struct srate *t)
{
    free(t->slot);
    t->slot = NULL;
}

void
srate_configure(struct srate *t, double rate, double burst, double byte_rate,
                double byte_burst, unsigned prefix4, unsigned prefix6)
{
    if (rate == t->rate && burst == t->burst && byte_rate == t->byte_rate &&
        byte_burst == t->byte_burst && prefix4 == t->prefix4 &&
        prefix6 == t->prefix6) {
        return;
    }
    t->rate = rate;
    t->burst = burst;
    t->byte_rate = byte_rate;
    t->byte_burst = byte_burst;
    t->prefix4 = prefix4;
    t->prefix6 = prefix6;
    if (t->slot != NULL) {
        memset(t->slot, 0, SRATE_SLOTS * sizeof(*t->slot));
    }
}

/* How far a used slot is from held back: the fill (0..1) of its emptier
 * bucket. A fresh entry is 1, so replacing a slot near 1 costs little. */
static double
srate_room(const struct srate *t, const struct srate_slot *slot,
           uint64_t now_ms)
{
    double room = tb_peek(&slot->tb, now_ms) / t->burst;

    if (t->byte_rate > 0) {
        double b = tb_peek(&slot->bytes, now_ms) / t->byte_burst;

        room = b < room ? b : room;
    }
    return room;
}

/* The slot of sa's source: its own, or a fresh one (full buckets) that
 * replaces a free slot of its set or the one with the most room. */
static struct srate_slot *
srate_find(struct srate *t, const struct sockaddr *sa, uint64_t now_ms)
{
    struct skey key;
    struct srate_slot *slot, *victim = NULL;
    double most = -1;

    /* Another family keys as all zero: one shared bucket (UDP sockets
     * are AF_INET or AF_INET6, so it does not happen). */
    (void)skey_of(&key, sa, t->prefix4, t->prefix6);
    slot = t->slot + (skey_hash(&t->seed, &key) % (SRATE_SLOTS / SRATE_WAYS)) *
                         SRATE_WAYS;
    for (int w = 0; w < SRATE_WAYS; w++, slot++) {
        double room;

        if (!slot->used) {
            if (victim == NULL || victim->used) {
                victim = slot;
                most = 2; /* nothing beats a free slot */
            }
            continue;
        }
        if (skey_equal(&slot->key, &key)) {
            return slot;
        }
        room = srate_room(t, slot, now_ms);
        if (room > most) {
            most = room;
            victim = slot;
        }
    }
    victim->key = key;
    victim->used = true;
    tb_init(&victim->tb, t->rate, t->burst, now_ms);
    tb_init(&victim->bytes, t->byte_rate, t->byte_burst, now_ms);
    return victim;
}

enum srate_verdict
srate_take(struct srate *t, const struct sockaddr *sa, size_t bytes,
           uint64_t now_ms)
{
    struct srate_slot *slot = srate_find(t, sa, now_ms);
    bool by_bytes = t->byte_rate > 0;

    /* Look at both before taking from either. */
    if (tb_peek(&slot->tb, now_ms) < 1.0) {
        return SRATE_OVER_RATE;
    }
    if (by_bytes && tb_peek(&slot->bytes, now_ms) < (double)bytes) {
        return SRATE_OVER_BYTES;
    }
    (void)tb_take(&slot->tb, now_ms);
    if (by_bytes) {
        (void)tb_take_n(&slot->bytes, (double)bytes, now_ms);
    }
    return SRATE_PASS;
}
