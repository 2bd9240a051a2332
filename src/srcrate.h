/*
 * srcrate.h - a bounded table of per-source token buckets: how often one
 * source (the address cut to prefix4 or prefix6 bits, as srckey.h defines
 * it) may be answered. Fixed size, so a flood of forged sources cannot
 * make it grow.
 */
#ifndef ECHOD_SRCRATE_H
#define ECHOD_SRCRATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "srckey.h"

#define SRATE_SLOTS 1024 /* sources kept at once */
#define SRATE_WAYS 8     /* a source may live in one of this many slots */

struct srate_slot; /* one source's bucket */

struct srate {
    struct srate_slot *slot; /* SRATE_SLOTS entries */
    struct skey_seed seed;   /* keys the hash; random per table */
    double rate, burst;      /* of every bucket */
    unsigned prefix4;        /* what one source is (see skey_of) */
    unsigned prefix6;
};

/* Allocate the table, every bucket to start with `burst` tokens and gain
 * `rate` per second, a source being a client address cut to prefix4 (IPv4)
 * or prefix6 (IPv6) bits. Returns 0, or -1 with errno. */
int srate_init(struct srate *t, double rate, double burst, unsigned prefix4,
               unsigned prefix6);
void srate_fini(struct srate *t);

/* New limits and prefix lengths; the table is emptied only if one of
 * them changed (other prefixes make other sources). */
void srate_configure(struct srate *t, double rate, double burst,
                     unsigned prefix4, unsigned prefix6);

/* Take a token from the bucket of sa's source at now_ms (milliseconds);
 * false when it is empty. sa is AF_INET or AF_INET6 (IPv4-mapped counts
 * as the IPv4 address). */
bool srate_take(struct srate *t, const struct sockaddr *sa, uint64_t now_ms);

#endif /* ECHOD_SRCRATE_H */
