/*
 * srcrate.c - a bounded table of per-source token buckets.
 *
 * Owns: SRATE_SLOTS buckets in sets of SRATE_WAYS, found by the keyed
 * hash of the source (skey_of under the table's prefix lengths, then
 * skey_hash under its secret). A source not in the table takes a free
 * slot of its set, or else the slot with the most tokens: forgetting that
 * one costs nothing, since a new entry starts full, while a source that
 * is being held back (an empty bucket) is kept. Only a flood of fresh
 * sources that outruns the refill can push a held-back source out and
 * give it a fresh burst, so callers keep a global limit as well.
 * Never allocates after srate_init, never logs, and never decides on its
 * own what a source is (srckey does, for TCP and UDP alike).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "srcrate.h"
#include "tbucket.h"

struct srate_slot {
    struct skey key; /* the source */
    bool used;
    struct tb tb;
};

int
srate_init(struct srate *t, double rate, double burst, unsigned prefix4,
           unsigned prefix6)
{
    t->rate = rate;
    t->burst = burst;
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
srate_configure(struct srate *t, double rate, double burst, unsigned prefix4,
                unsigned prefix6)
{
    if (rate == t->rate && burst == t->burst && prefix4 == t->prefix4 &&
        prefix6 == t->prefix6) {
        return;
    }
    t->rate = rate;
    t->burst = burst;
    t->prefix4 = prefix4;
    t->prefix6 = prefix6;
    if (t->slot != NULL) {
        memset(t->slot, 0, SRATE_SLOTS * sizeof(*t->slot));
    }
}

bool
srate_take(struct srate *t, const struct sockaddr *sa, uint64_t now_ms)
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
        double tokens;

        if (!slot->used) {
            if (victim == NULL || victim->used) {
                victim = slot;
                most = t->burst + 1; /* nothing beats a free slot */
            }
            continue;
        }
        if (skey_equal(&slot->key, &key)) {
            return tb_take(&slot->tb, now_ms);
        }
        tokens = tb_peek(&slot->tb, now_ms);
        if (tokens > most) {
            most = tokens;
            victim = slot;
        }
    }
    victim->key = key;
    victim->used = true;
    tb_init(&victim->tb, t->rate, t->burst, now_ms);
    return tb_take(&victim->tb, now_ms);
}
