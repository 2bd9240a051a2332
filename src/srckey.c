/*
 * srckey.c - the source key of a client address, its secret and its hash
 * (see srckey.h for what a source is).
 *
 * Owns: cutting an address to its prefix (IPv4-mapped IPv6 as IPv4), the
 * one way echod draws a hash secret, and SipHash-2-4 over a key.
 * Never allocates, never logs, keeps no state: every table holds its own
 * secret, so a worker's tables share nothing writable.
 * Invariant: a key's bits past the prefix are zero, so two addresses of
 * one source give byte-equal keys and equal hashes.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "srckey.h"

static const uint8_t skey_v4mapped[12] = {0, 0, 0, 0, 0,    0,
                                          0, 0, 0, 0, 0xFF, 0xFF};

/* Keep the first `bits` bits of b[0..n). */
static void
skey_mask(uint8_t *b, size_t n, unsigned bits)
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

int
skey_of(struct skey *k, const struct sockaddr *sa, unsigned prefix4,
        unsigned prefix6)
{
    memset(k->b, 0, sizeof(k->b));
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;

        memcpy(&sin, sa, sizeof(sin));
        memcpy(k->b, skey_v4mapped, sizeof(skey_v4mapped));
        memcpy(k->b + 12, &sin.sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;

        memcpy(&sin6, sa, sizeof(sin6));
        memcpy(k->b, &sin6.sin6_addr, 16);
        if (memcmp(k->b, skey_v4mapped, sizeof(skey_v4mapped)) != 0) {
            skey_mask(k->b, 16, prefix6);
            return AF_INET6;
        }
    } else {
        return 0;
    }
    /* Only the IPv4 part: the ::ffff: marker stays. */
    skey_mask(k->b + 12, 4, prefix4);
    return AF_INET;
}

/* splitmix64's finaliser: every input bit moves every output bit. */
static uint64_t
skey_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

#define SKEY_GOLDEN 0x9E3779B97F4A7C15ULL

static uint64_t
skey_ns(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void
skey_seed(struct skey_seed *s)
{
    ssize_t got = getrandom(s->k, sizeof(s->k), GRND_NONBLOCK);
    uint64_t in[6], x = 0;

    if (got == (ssize_t)sizeof(s->k)) {
        return;
    }
    /* No entropy yet (early boot) or a seccomp filter: still better than
     * a fixed secret, though a patient attacker could guess it. Each
     * input goes through the finaliser, so a bit that differs (the
     * address of s, for two tables seeded in the same nanosecond) changes
     * about half the secret. */
    in[0] = skey_ns(CLOCK_REALTIME);
    in[1] = skey_ns(CLOCK_MONOTONIC);
    in[2] = (uint64_t)getpid() << 32 ^ (uint64_t)gettid();
    in[3] = (uint64_t)(uintptr_t)s;          /* heap or stack layout */
    in[4] = (uint64_t)(uintptr_t)&skey_seed; /* where the code landed */
    in[5] = (uint64_t)(uintptr_t)&got;
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        x = skey_mix(x ^ in[i]) + SKEY_GOLDEN;
    }
    s->k[0] = skey_mix(x + SKEY_GOLDEN);
    s->k[1] = skey_mix(x + 2 * SKEY_GOLDEN);
}

/* SipHash reads its message as little-endian words, whatever the host. */
static uint64_t
skey_le64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

#define SKEY_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void
skey_sipround(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = SKEY_ROTL(v[1], 13);
    v[1] ^= v[0];
    v[0] = SKEY_ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = SKEY_ROTL(v[3], 16);
    v[3] ^= v[2];
    v[0] += v[3];
    v[3] = SKEY_ROTL(v[3], 21);
    v[3] ^= v[0];
    v[2] += v[1];
    v[1] = SKEY_ROTL(v[1], 17);
    v[1] ^= v[2];
    v[2] = SKEY_ROTL(v[2], 32);
}

uint64_t
skey_hash(const struct skey_seed *s, const struct skey *k)
{
    uint64_t v[4] = {
        s->k[0] ^ 0x736f6d6570736575ULL,
        s->k[1] ^ 0x646f72616e646f6dULL,
        s->k[0] ^ 0x6c7967656e657261ULL,
        s->k[1] ^ 0x7465646279746573ULL,
    };
    uint64_t m[3];

    m[0] = skey_le64(k->b);
    m[1] = skey_le64(k->b + 8);
    m[2] = (uint64_t)sizeof(k->b) << 56; /* the length block, no tail */
    for (size_t i = 0; i < 3; i++) {
        v[3] ^= m[i];
        skey_sipround(v);
        skey_sipround(v);
        v[0] ^= m[i];
    }
    v[2] ^= 0xff;
    for (int i = 0; i < 4; i++) {
        skey_sipround(v);
    }
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

const char *
skey_name(const struct sockaddr *sa, unsigned prefix4, unsigned prefix6,
          char *buf, size_t len)
{
    char text[INET6_ADDRSTRLEN];
    struct skey k;
    int fam = skey_of(&k, sa, prefix4, prefix6);
    unsigned plen = fam == AF_INET ? prefix4 : prefix6;
    unsigned full = fam == AF_INET ? 32 : 128;

    if (fam == 0 || inet_ntop(fam, fam == AF_INET ? k.b + 12 : k.b, text,
                              sizeof(text)) == NULL) {
        snprintf(buf, len, "?");
    } else if (plen < full) {
        snprintf(buf, len, "%s/%u", text, plen);
    } else {
        snprintf(buf, len, "%s", text);
    }
    return buf;
}
