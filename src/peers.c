/*
 * peers.c - the bounded per-source table (see peers.h for the bounds).
 *
 * Owns: counting open connections per source in a chained hash table
 * whose slots are allocated up front, and the table's prefix lengths and
 * hash secret. What a source is, the secret and the hash are srckey's.
 * Never allocates per connection, never logs (callers do), and knows
 * nothing of sockets beyond the address they came from.
 * Invariants: an entry is in exactly one place: in the chain of the
 * bucket its key hashes to (count > 0), in the free list (count == 0,
 * index below hi), or unused (index at or above hi); n is the number of
 * entries in chains; chains are doubly linked, so release unlinks in
 * O(1) without walking.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "peers.h"

/* The bound peers.h states (and echod.conf(5) repeats): an entry plus at
 * most two bucket heads per slot (buckets are the next power of two). */
_Static_assert(sizeof(struct peer_entry) + 2 * sizeof(uint32_t) <=
                   PEER_SLOT_BYTES,
               "a slot outgrew PEER_SLOT_BYTES: update it and the man page");

void
peer_init(struct peer_table *t)
{
    memset(t, 0, sizeof(*t));
    t->prefix4 = 32;
    t->prefix6 = 64;
    t->shift = 64;
    skey_seed(&t->seed);
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
peer_rebuild(const struct peer_table *t, struct peer_table *fresh, size_t size,
             unsigned prefix4, unsigned prefix6)
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
    fresh->seed = t->seed;
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

/* The source key of sa under t's prefixes; 0 if its family is not
 * counted. */
static int
peer_key(const struct peer_table *t, const struct sockaddr *sa, struct skey *k)
{
    return skey_of(k, sa, t->prefix4, t->prefix6);
}

/* The bucket of key k: the top bits of its hash (shift 64: one bucket). */
static size_t
peer_hash(const struct peer_table *t, const struct skey *k)
{
    return t->shift >= 64 ? 0 : (size_t)(skey_hash(&t->seed, k) >> t->shift);
}

static struct peer_entry *
peer_at(const struct peer_table *t, uint32_t ref)
{
    return &t->ent[ref - 1];
}

/* The chain entry for key k, or PEER_NONE. */
static uint32_t
peer_find(const struct peer_table *t, const struct skey *k, size_t b)
{
    uint32_t r;

    for (r = t->bucket[b]; r != PEER_NONE; r = peer_at(t, r)->next) {
        if (skey_equal(&peer_at(t, r)->key, k)) {
            return r;
        }
    }
    return PEER_NONE;
}

enum peer_verdict
peer_acquire(struct peer_table *t, const struct sockaddr *sa, size_t limit,
             uint32_t *ref)
{
    struct skey k;
    struct peer_entry *e;
    uint32_t r;
    size_t b;

    *ref = PEER_NONE;
    if (peer_key(t, sa, &k) == 0) {
        return PEER_OK;
    }
    if (t->ent == NULL) {
        return PEER_FULL;
    }
    b = peer_hash(t, &k);
    r = peer_find(t, &k, b);
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
    e->key = k;
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
        t->bucket[peer_hash(t, &e->key)] = e->next;
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
    struct skey k;
    uint32_t r;

    if (t->ent == NULL || peer_key(t, sa, &k) == 0) {
        return 0;
    }
    r = peer_find(t, &k, peer_hash(t, &k));
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
    return skey_name(sa, t->prefix4, t->prefix6, buf, len);
}
