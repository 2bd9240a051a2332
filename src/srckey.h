/*
 * srckey.h - what one source is, for every per-source limit: the key of a
 * client address, the secret that keys its hash, and the hash.
 *
 * A source is the client address cut to a prefix: IPv4 to prefix4 bits
 * (32 = one address), IPv6 to prefix6 bits (64: one host usually owns a
 * whole /64, so counting single addresses would not stop it). An
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d, from a dual-stack socket) is
 * the IPv4 source a.b.c.d. The TCP connection counts (peers.c) and the
 * UDP reply buckets (srcrate.c) both use it, with the same prefixes
 * (source_prefix_ipv4, source_prefix_ipv6), so one host is one source to
 * both.
 *
 * The hash is SipHash-2-4 under a random 128-bit secret, so which
 * sources share a bucket depends on the secret, not on addresses a client
 * can choose (a host that owns a /48 has 65536 /64 sources to pick from).
 */
#ifndef ECHOD_SRCKEY_H
#define ECHOD_SRCKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

/* "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff/128" and its NUL. */
#define SKEY_NAME_MAX 48

/* The masked address; IPv4 as ::ffff:a.b.c.d, so the families never
 * collide. Callers embed it in their table entries. */
struct skey {
    uint8_t b[16];
};

/* The secret that keys skey_hash. */
struct skey_seed {
    uint64_t k[2];
};

/*
 * The source key of sa in *k, sa cut to prefix4 bits (IPv4, also when
 * IPv4-mapped) or prefix6 bits (IPv6); a length at or above the family's
 * width (32, 128) keeps the whole address. Returns the source's family
 * (AF_INET for an IPv4-mapped address), or 0 for another family, with *k
 * all zero.
 */
int skey_of(struct skey *k, const struct sockaddr *sa, unsigned prefix4,
            unsigned prefix6);

static inline bool
skey_equal(const struct skey *a, const struct skey *b)
{
    return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

/* A fresh random secret: getrandom(2), or, when it has no entropy yet
 * (early boot) or is filtered, clocks, pid and addresses mixed with
 * splitmix64, so that two calls still differ. Never fails. */
void skey_seed(struct skey_seed *s);

/* SipHash-2-4 of the key's 16 bytes under the secret s. */
uint64_t skey_hash(const struct skey_seed *s, const struct skey *k);

/* sa's source as text: the address, or the prefix as "net/len" when the
 * prefix is shorter than the address (e.g. "2001:db8:1:2::/64"); "?" for
 * another family. Always NUL-terminates; SKEY_NAME_MAX bytes hold any. */
const char *skey_name(const struct sockaddr *sa, unsigned prefix4,
                      unsigned prefix6, char *buf, size_t len);

#endif /* ECHOD_SRCKEY_H */
