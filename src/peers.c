/*
 * peers.c - the bounded per-source table (see peers.h for the bounds).
 *
 * Owns: turning a client address into its source key, counting open
 * connections per source in a chained hash table whose slots are
 * allocated up front, and the secret hash key.
 * Never allocates per connection, never logs (callers do), and knows
 * nothing of sockets beyond the address they came from.
 * Invariants: an entry is in exactly one place: in the chain of the
 * bucket its key hashes to (count > 0), in the free list (count == 0,
 * index below hi), or unused (index at or above hi); n is the number of
 * entries in chains; chains are doubly linked, so release unlinks in
 * O(1) without walking.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "peers.h"

/* The bound peers.h states (and echod.conf(5) repeats): an entry plus at
 * most two bucket heads per slot (buckets are the next power of two). */
_Static_assert(sizeof(struct peer_entry) + 2 * sizeof(uint32_t) <=
                   PEER_SLOT_BYTES,
               "a slot outgrew PEER_SLOT_BYTES: update it and the man page");

/* splitmix64: spreads a weak seed (time, pid) over 64 bits. */
static uint64_t
peer_mix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void
peer_seed(struct peer_table *t)
{
    ssize_t got = getrandom(t->seed, sizeof(t->seed), GRND_NONBLOCK);

    if (got != (ssize_t)sizeof(t->seed)) {
        /* No entropy yet (early boot) or a seccomp filter: still better
         * than a fixed key, though a patient attacker could guess it. */
        struct timespec ts;
        uint64_t x;

        clock_gettime(CLOCK_REALTIME, &ts);
        x = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
        x ^= (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)t;
        for (size_t i = 0; i < sizeof(t->seed) / sizeof(t->seed[0]); i++) {
            t->seed[i] = peer_mix(&x);
        }
    }
}

void
peer_init(struct peer_table *t)
{
    memset(t, 0, sizeof(*t));
    t->prefix4 = 32;
    t->prefix6 = 64;
    t->shift = 64;
    peer_seed(t);
}

void
peer_fini(struct peer_table *t)
{
    free(t->ent);
    free(t->bucket);
    peer_init(t);
}

static unsigned
peer_clamp(unsigned v, unsigned max)
{
    return v < 1 ? 1 : v > max ? max : v;
}

int
peer_rebuild(const struct peer_table *t, struct peer_table *fresh,
             size_t size, unsigned prefix4, unsigned prefix6)
{
    size_t nb = 1;
    unsigned bits = 0;

    prefix4 = peer_clamp(prefix4, 32);
    prefix6 = peer_clamp(prefix6, 128);
    if (size > PEER_SIZE_MAX) {
        size = PEER_SIZE_MAX;
    }
    if (size < t->size) {
        size = t->size; /* never shrink: open connections hold slots */
    }
    if (t->ent != NULL && size == t->size && prefix4 == t->prefix4 &&
        prefix6 == t->prefix6) {
        return 0;
    }
    while (nb < size) {
        nb <<= 1;
        bits++;
    }
    memset(fresh, 0, sizeof(*fresh));
    /* calloc: zero means "empty bucket" and "unused entry", and pages no
     * source ever reached are never touched. */
    fresh->ent = calloc(size > 0 ? size : 1, sizeof(*fresh->ent));
    fresh->bucket = calloc(nb, sizeof(*fresh->bucket));
    if (fresh->ent == NULL || fresh->bucket == NULL) {
        free(fresh->ent);
        free(fresh->bucket);
        memset(fresh, 0, sizeof(*fresh));
        errno = ENOMEM;
        return -1;
    }
    fresh->size = size;
    fresh->mask = nb - 1;
    fresh->shift = 64 - bits;
    fresh->free = PEER_NONE;
    fresh->prefix4 = prefix4;
    fresh->prefix6 = prefix6;
    memcpy(fresh->seed, t->seed, sizeof(fresh->seed));
    return 1;
}

void
peer_replace(struct peer_table *t, const struct peer_table *fresh)
{
    free(t->ent);
    free(t->bucket);
    *t = *fresh;
}

int
peer_configure(struct peer_table *t, size_t size, unsigned prefix4,
               unsigned prefix6)
{
    struct peer_table fresh;
    int rc = peer_rebuild(t, &fresh, size, prefix4, prefix6);

    if (rc == 1) {
        peer_replace(t, &fresh);
    }
    return rc;
}

/* Keep the first `bits` bits of b[0..n). */
static void
peer_mask(uint8_t *b, size_t n, unsigned bits)
{
    for (size_t i = 0; i < n; i++) {
        if (bits >= 8) {
            bits -= 8;
            continue;
        }
        b[i] &= (uint8_t)(0xFFu << (8 - bits));
        bits = 0;
    }
}

/* The source key of sa in k; returns its family (AF_INET for an
 * IPv4-mapped IPv6 address), or 0 if the family is not counted. */
static int
peer_key(const struct peer_table *t, const struct sockaddr *sa, uint8_t k[16])
{
    static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0xFF, 0xFF };

    memset(k, 0, 16);
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;

        memcpy(&sin, sa, sizeof(sin));
        memcpy(k, v4mapped, sizeof(v4mapped));
        memcpy(k + 12, &sin.sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;

        memcpy(&sin6, sa, sizeof(sin6));
        memcpy(k, &sin6.sin6_addr, 16);
        if (memcmp(k, v4mapped, sizeof(v4mapped)) != 0) {
            peer_mask(k, 16, t->prefix6);
            return AF_INET6;
        }
    } else {
        return 0;
    }
    peer_mask(k + 12, 4, t->prefix4);
    return AF_INET;
}

#define PEER_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void
peer_sipround(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = PEER_ROTL(v[1], 13);
    v[1] ^= v[0];
    v[0] = PEER_ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = PEER_ROTL(v[3], 16);
    v[3] ^= v[2];
    v[0] += v[3];
    v[3] = PEER_ROTL(v[3], 21);
    v[3] ^= v[0];
    v[2] += v[1];
    v[1] = PEER_ROTL(v[1], 17);
    v[1] ^= v[2];
    v[2] = PEER_ROTL(v[2], 32);
}

/* SipHash-2-4 of the 16-byte key under the table's secret 128-bit key:
 * a keyed hash made against hash flooding, so which sources share a
 * bucket depends on a secret, not on addresses a client can choose (a
 * host that owns a /48 has 65536 /64 sources to pick from). */
static size_t
peer_hash(const struct peer_table *t, const uint32_t w[4])
{
    uint64_t v[4] = {
        t->seed[0] ^ 0x736f6d6570736575ULL, t->seed[1] ^ 0x646f72616e646f6dULL,
        t->seed[0] ^ 0x6c7967656e657261ULL, t->seed[1] ^ 0x7465646279746573ULL,
    };
    uint64_t m[3];

    memcpy(m, w, 16);
    m[2] = (uint64_t)16 << 56; /* the length block: 16 bytes, no tail */
    for (size_t i = 0; i < 3; i++) {
        v[3] ^= m[i];
        peer_sipround(v);
        peer_sipround(v);
        v[0] ^= m[i];
    }
    v[2] ^= 0xff;
    for (int i = 0; i < 4; i++) {
        peer_sipround(v);
    }
    /* The top bits select the bucket (shift 64: one bucket). */
    return t->shift >= 64
               ? 0
               : (size_t)((v[0] ^ v[1] ^ v[2] ^ v[3]) >> t->shift);
}

static struct peer_entry *
peer_at(const struct peer_table *t, uint32_t ref)
{
    return &t->ent[ref - 1];
}

/* The chain entry for key w, or PEER_NONE. */
static uint32_t
peer_find(const struct peer_table *t, const uint32_t w[4], size_t b)
{
    uint32_t r;

    for (r = t->bucket[b]; r != PEER_NONE; r = peer_at(t, r)->next) {
        if (memcmp(peer_at(t, r)->key, w, sizeof(peer_at(t, r)->key)) == 0) {
            return r;
        }
    }
    return PEER_NONE;
}

enum peer_verdict
peer_acquire(struct peer_table *t, const struct sockaddr *sa, size_t limit,
             uint32_t *ref)
{
    uint8_t k[16];
    uint32_t w[4];
    struct peer_entry *e;
    uint32_t r;
    size_t b;

    *ref = PEER_NONE;
    if (peer_key(t, sa, k) == 0) {
        return PEER_OK;
    }
    if (t->ent == NULL) {
        return PEER_FULL;
    }
    memcpy(w, k, sizeof(w));
    b = peer_hash(t, w);
    r = peer_find(t, w, b);
    if (r != PEER_NONE) {
        e = peer_at(t, r);
        if (limit != 0 && e->count >= limit) {
            return PEER_OVER;
        }
        e->count++;
        *ref = r;
        return PEER_OK;
    }
    if (t->free != PEER_NONE) {
        r = t->free;
        t->free = peer_at(t, r)->next;
    } else if (t->hi < t->size) {
        r = (uint32_t)++t->hi;
    } else {
        return PEER_FULL;
    }
    e = peer_at(t, r);
    memcpy(e->key, w, sizeof(e->key));
    e->count = 1;
    e->prev = PEER_NONE;
    e->next = t->bucket[b];
    if (e->next != PEER_NONE) {
        peer_at(t, e->next)->prev = r;
    }
    t->bucket[b] = r;
    t->n++;
    *ref = r;
    return PEER_OK;
}

void
peer_release(struct peer_table *t, uint32_t ref)
{
    struct peer_entry *e;

    if (ref == PEER_NONE) {
        return;
    }
    assert(ref <= t->hi);
    e = peer_at(t, ref);
    assert(e->count > 0);
    if (--e->count > 0) {
        return;
    }
    if (e->prev != PEER_NONE) {
        peer_at(t, e->prev)->next = e->next;
    } else {
        t->bucket[peer_hash(t, e->key)] = e->next;
    }
    if (e->next != PEER_NONE) {
        peer_at(t, e->next)->prev = e->prev;
    }
    e->prev = PEER_NONE;
    e->next = t->free;
    t->free = ref;
    t->n--;
}

size_t
peer_count(const struct peer_table *t, const struct sockaddr *sa)
{
    uint8_t k[16];
    uint32_t w[4];
    uint32_t r;

    if (t->ent == NULL || peer_key(t, sa, k) == 0) {
        return 0;
    }
    memcpy(w, k, sizeof(w));
    r = peer_find(t, w, peer_hash(t, w));
    return r == PEER_NONE ? 0 : peer_at(t, r)->count;
}

size_t
peer_sources(const struct peer_table *t)
{
    return t->n;
}

const char *
peer_name(const struct peer_table *t, const struct sockaddr *sa, char *buf,
          size_t len)
{
    char text[INET6_ADDRSTRLEN];
    uint8_t k[16];
    int fam = peer_key(t, sa, k);
    unsigned plen = fam == AF_INET ? t->prefix4 : t->prefix6;
    unsigned full = fam == AF_INET ? 32 : 128;

    if (fam == 0 ||
        inet_ntop(fam, fam == AF_INET ? k + 12 : k, text, sizeof(text)) ==
            NULL) {
        snprintf(buf, len, "?");
    } else if (plen < full) {
        snprintf(buf, len, "%s/%u", text, plen);
    } else {
        snprintf(buf, len, "%s", text);
    }
    return buf;
}
