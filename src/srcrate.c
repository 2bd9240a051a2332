/*
 * srcrate.c - a bounded table of per-source token buckets.
 *
 * Owns: SRATE_SLOTS buckets in sets of SRATE_WAYS, found by a keyed hash
 * of the source. A source not in the table takes a free slot of its set,
 * or else the slot with the most tokens: forgetting that one costs
 * nothing, since a new entry starts full, while a source that is being
 * held back (an empty bucket) is kept. Only a flood of fresh sources that
 * outruns the refill can push a held-back source out and give it a fresh
 * burst, so callers keep a global limit as well.
 * Never allocates after srate_init, never logs.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "sock.h"
#include "srcrate.h"
#include "tbucket.h"

struct srate_slot {
    unsigned char key[16]; /* IPv4 as ::ffff:a.b.c.d, IPv6 by its /64 */
    bool used;
    struct tb tb;
};

int
srate_init(struct srate *t, double rate, double burst)
{
    struct timespec ts;

    t->rate = rate;
    t->burst = burst;
    t->slot = calloc(SRATE_SLOTS, sizeof(*t->slot));
    if (t->slot == NULL) {
        errno = ENOMEM;
        return -1;
    }
    /* A seed nobody outside knows: forged sources cannot be picked so
     * that they all land in a victim's set. */
    if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) !=
        (ssize_t)sizeof(t->seed)) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t->seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    }
    return 0;
}

void
srate_fini(struct srate *t)
{
    free(t->slot);
    t->slot = NULL;
}

void
srate_configure(struct srate *t, double rate, double burst)
{
    if (rate == t->rate && burst == t->burst) {
        return;
    }
    t->rate = rate;
    t->burst = burst;
    if (t->slot != NULL) {
        memset(t->slot, 0, SRATE_SLOTS * sizeof(*t->slot));
    }
}

/* The key: an IPv4 address, or an IPv6 /64 (one host commonly owns a
 * whole /64, so finer keys would let it use many buckets). */
static void
srate_key(const struct sockaddr *sa, unsigned char key[16])
{
    uint32_t a;

    memset(key, 0, 16);
    if (sock_ipv4(sa, &a)) {
        uint32_t be = htonl(a);
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &be, sizeof(be));
    } else if (sa->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
               8);
    }
}

/* splitmix64's finalizer: every input bit moves every output bit. */
static uint64_t
srate_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

bool
srate_take(struct srate *t, const struct sockaddr *sa, uint64_t now_ms)
{
    unsigned char key[16];
    struct srate_slot *slot, *victim = NULL;
    double most = -1;
    uint64_t a, b;

    srate_key(sa, key);
    memcpy(&a, key, 8);
    memcpy(&b, key + 8, 8);
    slot = t->slot + (srate_mix(srate_mix(t->seed ^ a) ^ b) %
                      (SRATE_SLOTS / SRATE_WAYS)) * SRATE_WAYS;
    for (int w = 0; w < SRATE_WAYS; w++, slot++) {
        double tokens;

        if (!slot->used) {
            if (victim == NULL || victim->used) {
                victim = slot;
                most = t->burst + 1; /* nothing beats a free slot */
            }
            continue;
        }
        if (memcmp(slot->key, key, sizeof(key)) == 0) {
            return tb_take(&slot->tb, now_ms);
        }
        tokens = tb_peek(&slot->tb, now_ms);
        if (tokens > most) {
            most = tokens;
            victim = slot;
        }
    }
    memcpy(victim->key, key, sizeof(key));
    victim->used = true;
    tb_init(&victim->tb, t->rate, t->burst, now_ms);
    return tb_take(&victim->tb, now_ms);
}
