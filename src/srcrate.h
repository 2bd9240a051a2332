/*
 * srcrate.h - a bounded table of per-source token buckets: how often, and
 * with how many bytes, one source (the address cut to prefix4 or prefix6
 * bits, as srckey.h defines it) may be answered. Fixed size, so a flood
 * of forged sources cannot make it grow: SRATE_SLOTS slots of at most
 * SRATE_SLOT_BYTES each, allocated once by srate_init.
 */
#ifndef ECHOD_SRCRATE_H
#define ECHOD_SRCRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "srckey.h"

#define SRATE_SLOTS 1024 /* sources kept at once */
#define SRATE_WAYS 8     /* a source may live in one of this many slots */
/* The most bytes one slot takes (the table is SRATE_SLOTS of them, as
 * echod.conf(5) states): a key, a flag and two buckets. */
#define SRATE_SLOT_BYTES 88

struct srate_slot; /* one source's buckets */

struct srate {
    struct srate_slot *slot;      /* SRATE_SLOTS entries */
    struct skey_seed seed;        /* keys the hash; random per table */
    double rate, burst;           /* of every reply bucket */
    double byte_rate, byte_burst; /* of every byte bucket; rate 0 = off */
    unsigned prefix4;             /* what one source is (see skey_of) */
    unsigned prefix6;
};

/* What srate_take decided. */
enum srate_verdict {
    SRATE_PASS,       /* a reply and its bytes were taken */
    SRATE_OVER_RATE,  /* the reply bucket is empty */
    SRATE_OVER_BYTES, /* the byte bucket holds fewer than the bytes */
};

/* Allocate the table, every reply bucket to start with `burst` tokens and
 * gain `rate` per second, a source being a client address cut to prefix4
 * (IPv4) or prefix6 (IPv6) bits; no byte limit until srate_configure sets
 * one. Returns 0, or -1 with errno. */
int srate_init(struct srate *t, double rate, double burst, unsigned prefix4,
               unsigned prefix6);
void srate_fini(struct srate *t);

/* New limits and prefix lengths: replies per second and at once, bytes
 * per second (0: no byte limit) and at once (> 0 when byte_rate is not
 * 0). The table is emptied only if one of them changed (other prefixes
 * make other sources). */
void srate_configure(struct srate *t, double rate, double burst,
                     double byte_rate, double byte_burst, unsigned prefix4,
                     unsigned prefix6);

/* Take one reply of `bytes` bytes from the buckets of sa's source at
 * now_ms (milliseconds): both buckets or neither, so a reply refused for
 * its size costs the source no reply token, and the reply bucket is asked
 * first. sa is AF_INET or AF_INET6 (IPv4-mapped counts as the IPv4
 * address). */
enum srate_verdict srate_take(struct srate *t, const struct sockaddr *sa,
                              size_t bytes, uint64_t now_ms);

#endif /* ECHOD_SRCRATE_H */
