/*
 * peers.h - the bounded per-source table: open connections counted by
 * source, so that max_connections_per_source can refuse one hostile host
 * before it fills max_connections.
 *
 * A source is the client address cut to prefix4 (IPv4) or prefix6 (IPv6)
 * bits, as srckey.h defines it for every per-source limit.
 *
 * Memory: the table is allocated for `size` sources by peer_configure
 * (echod passes max_connections: every source in it holds at least one
 * connection), grows only when reconfigured larger, never shrinks, and
 * never allocates per connection. It takes at most PEER_SLOT_BYTES bytes
 * per slot: one struct peer_entry (28 bytes), plus 4-byte bucket heads,
 * as many as the power of two at or above `size` (under 8 bytes per
 * slot). Both arrays come zeroed from calloc and entries are used from
 * the front, so a large table that few sources use stays mostly
 * untouched, and on Linux mostly not resident.
 *
 * Time: acquire hashes the source and walks one bucket chain; release is
 * O(1) through the handle acquire returned, whatever the chains look like.
 * The hash is skey_hash under a random secret per table, so a client
 * cannot pick addresses that share a bucket.
 */
#ifndef ECHOD_PEERS_H
#define ECHOD_PEERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "srckey.h"

/* A handle that counts nothing: releasing it does nothing. */
#define PEER_NONE 0u
/* The most bytes the table takes per slot of `size` (see above). */
#define PEER_SLOT_BYTES 36
/* The most slots a table can have (handles are 32-bit). */
#define PEER_SIZE_MAX ((size_t)1 << 30)
/* Room for any peer_name. */
#define PEER_NAME_MAX SKEY_NAME_MAX

/* References inside the table are index + 1; 0 is "none". */
struct peer_entry {
    struct skey key; /* the source */
    uint32_t count;  /* open connections; 0 = on the free list */
    uint32_t next;   /* in its bucket chain, or in the free list */
    uint32_t prev;   /* in its bucket chain; 0 = first in its bucket */
};

/* Callers embed it (the server does); only peers.c touches the fields. */
struct peer_table {
    struct peer_entry *ent; /* `size` entries */
    uint32_t *bucket;       /* mask + 1 chain heads; 0 = empty */
    size_t size;            /* most sources at once */
    size_t mask;
    unsigned shift;        /* 64 - log2(mask + 1) */
    size_t n;              /* sources with at least one connection */
    size_t hi;             /* entries [0, hi) were handed out once */
    uint32_t free;         /* released entries below hi */
    unsigned prefix4;      /* 1..32 */
    unsigned prefix6;      /* 1..128 */
    struct skey_seed seed; /* keys the hash; random per table */
};

enum peer_verdict {
    PEER_OK,   /* counted; the handle releases it */
    PEER_OVER, /* the source already has `limit` connections */
    PEER_FULL, /* a new source, and no slot is left for it */
};

/* An empty table with no slots (every acquire is PEER_FULL until
 * peer_configure) and a fresh random hash key. */
void peer_init(struct peer_table *t);

/* Frees the slots; the table is as after peer_init. */
void peer_fini(struct peer_table *t);

/*
 * Size the table for `size` sources (at most PEER_SIZE_MAX) and set the
 * prefix lengths (clamped to 1..32 and 1..128). It never shrinks: a
 * smaller size keeps the slots it has. Returns 0 when nothing changed; 1
 * when it was rebuilt empty, so every handle given out before is void
 * and the caller must count its open connections again (peer_acquire
 * with limit 0); -1 with errno ENOMEM when the new slots cannot be
 * allocated, leaving the table and its handles as they were.
 */
int peer_configure(struct peer_table *t, size_t size, unsigned prefix4,
                   unsigned prefix6);

/*
 * The first half of peer_configure, for a caller that must be able to
 * back out (a reload that may still fail): returns 0 when t already fits
 * (fresh untouched); 1 when *fresh is a new, empty table with t's hash
 * key, which the caller either frees with peer_fini or puts in place of
 * t with peer_replace; -1 with errno ENOMEM.
 */
int peer_rebuild(const struct peer_table *t, struct peer_table *fresh,
                 size_t size, unsigned prefix4, unsigned prefix6);

/* Free t's slots and make it *fresh (from peer_rebuild). As after a
 * rebuild, every handle of t is void: count the connections again. */
void peer_replace(struct peer_table *t, const struct peer_table *fresh);

/*
 * Count one more connection from sa (AF_INET or AF_INET6) unless its
 * source already has `limit` (0 = no limit). On PEER_OK *ref is the
 * handle to pass to peer_release once; another address family is not
 * counted (PEER_OK with PEER_NONE). Otherwise nothing changed.
 */
enum peer_verdict peer_acquire(struct peer_table *t, const struct sockaddr *sa,
                               size_t limit, uint32_t *ref);

/* One connection of the handle's source ended. PEER_NONE does nothing. */
void peer_release(struct peer_table *t, uint32_t ref);

/* Open connections counted for sa's source (0 if none). */
size_t peer_count(const struct peer_table *t, const struct sockaddr *sa);

/* Sources with at least one open connection. */
size_t peer_sources(const struct peer_table *t);

/* sa's source as text: the address, or the prefix as "net/len" when the
 * table aggregates (e.g. "2001:db8:1:2::/64"). Always NUL-terminates. */
const char *peer_name(const struct peer_table *t, const struct sockaddr *sa,
                      char *buf, size_t len);

#endif /* ECHOD_PEERS_H */
