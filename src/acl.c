/*
 * acl.c - access-control lists (see acl.h for the contract).
 *
 * Owns: parsing CIDR text, the builder's growing arrays, sorting and
 * merging them into the immutable list, and matching an address.
 * Never logs, never touches a socket, and never writes a built list
 * except its reference count: matching is read-only, so threads share a
 * list without locks.
 * Invariants of a built list, per family: ranges are sorted by lo, each
 * has lo <= hi, and any two are disjoint and not adjacent (the next lo
 * is above the previous hi + 1), so an address lies in at most one and
 * the last range with lo <= address is the only one to check. IPv4 is
 * kept apart from IPv6 (mapped entries are converted when added), so
 * the two families never meet in one array.
 *
 * Layout: the lo bounds are an array of their own, so the binary search
 * reads only them (4 or 16 bytes a step) and then one hi. At 100,000
 * random prefixes a lookup of a random address costs 30-50 ns (IPv4) and
 * 130-220 ns (IPv6, whose 1.5 MB of lo bounds outgrow the L2 cache) on
 * a shared 2-CPU VM (bench/aclbench); an index of every 16th bound in
 * front of the search gained under 10% there, so there is none.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "sock.h"

/* An IPv6 address as a 128-bit number: hi holds the first 8 bytes. */
struct acl_u128 {
    uint64_t hi, lo;
};

struct acl_r4 {
    uint32_t lo, hi;
};

struct acl_r6 {
    struct acl_u128 lo, hi;
};

struct acl_builder {
    struct acl_r4 *r4;
    struct acl_r6 *r6;
    size_t n4, cap4, n6, cap6;
    size_t given; /* successful acl_add calls */
};

/* One family of a built list: n ranges [lo[i], hi[i]], both arrays in
 * one allocation, hi right after lo (NULL when n == 0). */
struct acl_set4 {
    size_t n;
    uint32_t *lo, *hi;
};

struct acl_set6 {
    size_t n;
    struct acl_u128 *lo, *hi;
};

struct acl {
    atomic_size_t refs;
    size_t given;
    struct acl_set4 v4;
    struct acl_set6 v6;
};

/* The first 12 bytes of an IPv4-mapped IPv6 address. */
static const uint8_t acl_v4mapped[12] = {0, 0, 0, 0, 0,    0,
                                         0, 0, 0, 0, 0xFF, 0xFF};

/* ---- 128-bit arithmetic on two words ---- */

static struct acl_u128
acl_u128_of(const uint8_t b[16])
{
    struct acl_u128 v = {0, 0};

    for (int i = 0; i < 8; i++) {
        v.hi = v.hi << 8 | b[i];
        v.lo = v.lo << 8 | b[8 + i];
    }
    return v;
}

static void
acl_u128_bytes(struct acl_u128 v, uint8_t b[16])
{
    for (int i = 7; i >= 0; i--) {
        b[i] = (uint8_t)v.hi;
        b[8 + i] = (uint8_t)v.lo;
        v.hi >>= 8;
        v.lo >>= 8;
    }
}

/* a <= b. Bitwise & and |, not && and ||: no branch to mispredict, so
 * the search steps that use it stay conditional moves. */
static bool
acl_u128_le(struct acl_u128 a, struct acl_u128 b)
{
    return (a.hi < b.hi) | ((a.hi == b.hi) & (a.lo <= b.lo));
}

/* The host part of a /len prefix: the low 128 - len bits set. */
static struct acl_u128
acl_u128_host(unsigned len)
{
    struct acl_u128 m;

    m.hi = len >= 64 ? 0 : len == 0 ? UINT64_MAX : UINT64_MAX >> len;
    m.lo = len >= 128 ? 0 : len <= 64 ? UINT64_MAX : UINT64_MAX >> (len - 64);
    return m;
}

static uint32_t
acl_u32_host(unsigned len)
{
    return len == 0 ? UINT32_MAX : len >= 32 ? 0 : UINT32_MAX >> len;
}

/* ---- the builder ---- */

struct acl_builder *
acl_builder_new(void)
{
    return calloc(1, sizeof(struct acl_builder));
}

void
acl_builder_free(struct acl_builder *b)
{
    if (b != NULL) {
        free(b->r4);
        free(b->r6);
        free(b);
    }
}

/* Room for one more element of size `size` in *arr (n used of *cap).
 * Returns 0, or -1 with errno ENOMEM and *arr unchanged. */
static int
acl_grow(void **arr, size_t *cap, size_t n, size_t size)
{
    size_t want;
    void *p;

    if (n < *cap) {
        return 0;
    }
    want = *cap == 0 ? 64 : *cap * 2;
    if (want > SIZE_MAX / size) {
        errno = ENOMEM;
        return -1;
    }
    p = realloc(*arr, want * size);
    if (p == NULL) {
        errno = ENOMEM;
        return -1;
    }
    *arr = p;
    *cap = want;
    return 0;
}

static int
acl_fail(char *err, size_t errlen, const char *what)
{
    if (errlen > 0) {
        snprintf(err, errlen, "%s", what);
    }
    return -1;
}

/* The "/len" part of a prefix: p is what follows the address (empty,
 * or "/" and digits). Returns 0 with *len (width when p is empty), or -1
 * with the message in err. */
static int
acl_parse_len(const char *p, unsigned width, unsigned *len, char *err,
              size_t errlen)
{
    unsigned v = 0;

    *len = width;
    if (*p == '\0') {
        return 0;
    }
    p++; /* the '/' */
    if (*p < '0' || *p > '9') {
        if (errlen > 0) {
            snprintf(err, errlen, "expected a prefix length 0..%u after \"/\"",
                     width);
        }
        return -1;
    }
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v <= width) { /* past width it is wrong anyway: no overflow */
            v = v * 10 + (unsigned)(*p - '0');
        }
    }
    if (*p != '\0') {
        return acl_fail(err, errlen, "junk after the prefix length");
    }
    if (v > width) {
        if (errlen > 0) {
            snprintf(err, errlen, "prefix length must be 0..%u", width);
        }
        return -1;
    }
    *len = v;
    return 0;
}

/* The error for an address with bits set past its prefix, naming the
 * network the operator most likely meant. */
static int
acl_fail_host(int family, const void *net, unsigned len, char *err,
              size_t errlen)
{
    char name[INET6_ADDRSTRLEN];

    if (errlen > 0) {
        if (inet_ntop(family, net, name, sizeof(name)) == NULL) {
            snprintf(name, sizeof(name), "?");
        }
        snprintf(err, errlen,
                 "host bits set beyond /%u: did you mean \"%s/%u\"?", len, name,
                 len);
    }
    return -1;
}

static int
acl_push4(struct acl_builder *b, uint32_t lo, uint32_t hi, char *err,
          size_t errlen)
{
    if (acl_grow((void **)&b->r4, &b->cap4, b->n4, sizeof(*b->r4)) < 0) {
        return acl_fail(err, errlen, "out of memory");
    }
    b->r4[b->n4].lo = lo;
    b->r4[b->n4].hi = hi;
    b->n4++;
    b->given++;
    return 0;
}

static int
acl_add4(struct acl_builder *b, const struct in_addr *in, unsigned len,
         char *err, size_t errlen)
{
    uint32_t a = ntohl(in->s_addr), host = acl_u32_host(len);

    if ((a & host) != 0) {
        struct in_addr net = {htonl(a & ~host)};

        return acl_fail_host(AF_INET, &net, len, err, errlen);
    }
    return acl_push4(b, a, a | host, err, errlen);
}

static int
acl_add6(struct acl_builder *b, const struct in6_addr *in6, unsigned len,
         char *err, size_t errlen)
{
    struct acl_u128 a = acl_u128_of(in6->s6_addr), host = acl_u128_host(len);
    struct acl_r6 *r;

    if ((a.hi & host.hi) != 0 || (a.lo & host.lo) != 0) {
        struct in6_addr net;
        struct acl_u128 n = {a.hi & ~host.hi, a.lo & ~host.lo};

        acl_u128_bytes(n, net.s6_addr);
        return acl_fail_host(AF_INET6, &net, len, err, errlen);
    }
    if (len >= 96 && memcmp(in6->s6_addr, acl_v4mapped, 12) == 0) {
        /* ::ffff:a.b.c.d/len is the IPv4 prefix a.b.c.d/(len - 96):
         * mapped clients are matched as IPv4 (see acl.h). */
        uint32_t v4 = (uint32_t)a.lo;

        return acl_push4(b, v4, v4 | acl_u32_host(len - 96), err, errlen);
    }
    if (acl_grow((void **)&b->r6, &b->cap6, b->n6, sizeof(*b->r6)) < 0) {
        return acl_fail(err, errlen, "out of memory");
    }
    r = &b->r6[b->n6++];
    r->lo = a;
    r->hi.hi = a.hi | host.hi;
    r->hi.lo = a.lo | host.lo;
    b->given++;
    return 0;
}

int
acl_add(struct acl_builder *b, const char *text, char *err, size_t errlen)
{
    char addr[INET6_ADDRSTRLEN];
    size_t alen = strcspn(text, "/");
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } u;
    int family;
    unsigned len;

    if (alen == 0 || alen >= sizeof(addr)) {
        return acl_fail(err, errlen, "not an IPv4 or IPv6 address");
    }
    memcpy(addr, text, alen);
    addr[alen] = '\0';
    /* inet_pton, not inet_aton: "10/8" or "10.1" are not addresses. */
    family = strchr(addr, ':') != NULL ? AF_INET6 : AF_INET;
    if (inet_pton(family, addr, &u) != 1) {
        return acl_fail(err, errlen, "not an IPv4 or IPv6 address");
    }
    if (acl_parse_len(text + alen, family == AF_INET ? 32 : 128, &len, err,
                      errlen) < 0) {
        return -1;
    }
    return family == AF_INET ? acl_add4(b, &u.v4, len, err, errlen)
                             : acl_add6(b, &u.v6, len, err, errlen);
}

/* ---- sorting and merging ---- */

static int
acl_cmp4(const void *a, const void *b)
{
    uint32_t x = ((const struct acl_r4 *)a)->lo;
    uint32_t y = ((const struct acl_r4 *)b)->lo;

    return (x > y) - (x < y);
}

static int
acl_cmp6(const void *a, const void *b)
{
    struct acl_u128 x = ((const struct acl_r6 *)a)->lo;
    struct acl_u128 y = ((const struct acl_r6 *)b)->lo;

    if (x.hi != y.hi) {
        return (x.hi > y.hi) - (x.hi < y.hi);
    }
    return (x.lo > y.lo) - (x.lo < y.lo);
}

/* Merge sorted r[0..n) in place; returns how many ranges are left. A
 * range joins the previous one when it starts at or below prev.hi + 1,
 * written as lo - 1 <= prev.hi so that prev.hi at the top of the space
 * does not wrap (lo - 1 cannot wrap: lo > prev.lo >= 0 or lo == 0). */
static size_t
acl_merge4(struct acl_r4 *r, size_t n)
{
    size_t out = 0;

    for (size_t i = 0; i < n; i++) {
        struct acl_r4 *prev = out > 0 ? &r[out - 1] : NULL;

        if (prev != NULL && (r[i].lo == 0 || r[i].lo - 1 <= prev->hi)) {
            if (r[i].hi > prev->hi) {
                prev->hi = r[i].hi;
            }
        } else {
            r[out++] = r[i];
        }
    }
    return out;
}

static size_t
acl_merge6(struct acl_r6 *r, size_t n)
{
    size_t out = 0;

    for (size_t i = 0; i < n; i++) {
        struct acl_r6 *prev = out > 0 ? &r[out - 1] : NULL;
        struct acl_u128 below = r[i].lo; /* lo - 1, unless lo is 0 */

        if (below.lo-- == 0) {
            below.hi--;
        }
        if (prev != NULL && ((r[i].lo.hi == 0 && r[i].lo.lo == 0) ||
                             acl_u128_le(below, prev->hi))) {
            if (!acl_u128_le(r[i].hi, prev->hi)) {
                prev->hi = r[i].hi;
            }
        } else {
            r[out++] = r[i];
        }
    }
    return out;
}

/* Lay merged ranges r[0..n) out as s (see the layout above). */
static int
acl_set4_fill(struct acl_set4 *s, const struct acl_r4 *r, size_t n)
{
    if (n == 0) {
        return 0;
    }
    s->lo = calloc(2 * n, sizeof(*s->lo));
    if (s->lo == NULL) {
        return -1;
    }
    s->hi = s->lo + n;
    for (size_t i = 0; i < n; i++) {
        s->lo[i] = r[i].lo;
        s->hi[i] = r[i].hi;
    }
    s->n = n;
    return 0;
}

static int
acl_set6_fill(struct acl_set6 *s, const struct acl_r6 *r, size_t n)
{
    if (n == 0) {
        return 0;
    }
    s->lo = calloc(2 * n, sizeof(*s->lo));
    if (s->lo == NULL) {
        return -1;
    }
    s->hi = s->lo + n;
    for (size_t i = 0; i < n; i++) {
        s->lo[i] = r[i].lo;
        s->hi[i] = r[i].hi;
    }
    s->n = n;
    return 0;
}

static void
acl_destroy(struct acl *a)
{
    free(a->v4.lo);
    free(a->v6.lo);
    free(a);
}

struct acl *
acl_build(struct acl_builder *b)
{
    struct acl *a = calloc(1, sizeof(*a));
    size_t n4, n6;

    if (a == NULL) {
        acl_builder_free(b);
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&a->refs, 1);
    a->given = b->given;
    if (b->n4 > 1) {
        qsort(b->r4, b->n4, sizeof(*b->r4), acl_cmp4);
    }
    if (b->n6 > 1) {
        qsort(b->r6, b->n6, sizeof(*b->r6), acl_cmp6);
    }
    n4 = acl_merge4(b->r4, b->n4);
    n6 = acl_merge6(b->r6, b->n6);
    if (acl_set4_fill(&a->v4, b->r4, n4) < 0 ||
        acl_set6_fill(&a->v6, b->r6, n6) < 0) {
        acl_builder_free(b);
        acl_destroy(a);
        errno = ENOMEM;
        return NULL;
    }
    acl_builder_free(b);
    return a;
}

/* ---- references ---- */

struct acl *
acl_ref(struct acl *a)
{
    if (a != NULL) {
        atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
    }
    return a;
}

void
acl_free(struct acl *a)
{
    /* acq_rel: the thread that frees sees every other thread's last use
     * as done (ThreadSanitizer follows this; a lone fence it would not). */
    if (a != NULL &&
        atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) == 1) {
        acl_destroy(a);
    }
}

size_t
acl_count(const struct acl *a)
{
    return a != NULL ? a->given : 0;
}

size_t
acl_ranges(const struct acl *a)
{
    return a != NULL ? a->v4.n + a->v6.n : 0;
}

/* ---- matching ---- */

/* The index of the last v[i] <= x in sorted v[0..n), n > 0, given
 * v[0] <= x; by halving without a data-dependent branch (the compiler
 * makes the step a conditional move). */
static size_t
acl_last_le4(const uint32_t *v, size_t n, uint32_t x)
{
    const uint32_t *p = v;

    while (n > 1) {
        size_t half = n / 2;

        p = p[half] <= x ? p + half : p;
        n -= half;
    }
    return (size_t)(p - v);
}

static size_t
acl_last_le6(const struct acl_u128 *v, size_t n, struct acl_u128 x)
{
    const struct acl_u128 *p = v;

    while (n > 1) {
        size_t half = n / 2;

        p = acl_u128_le(p[half], x) ? p + half : p;
        n -= half;
    }
    return (size_t)(p - v);
}

/* The only range that can hold x is the last one starting at or below
 * it (the ranges are disjoint). */
static bool
acl_find4(const struct acl_set4 *s, uint32_t x)
{
    if (s->n == 0 || x < s->lo[0]) {
        return false;
    }
    return x <= s->hi[acl_last_le4(s->lo, s->n, x)];
}

static bool
acl_find6(const struct acl_set6 *s, struct acl_u128 x)
{
    if (s->n == 0 || !acl_u128_le(s->lo[0], x)) {
        return false;
    }
    return acl_u128_le(x, s->hi[acl_last_le6(s->lo, s->n, x)]);
}

bool
acl_match(const struct acl *a, const struct sockaddr *sa)
{
    uint32_t v4;

    if (a == NULL) {
        return false;
    }
    if (sock_ipv4(sa, &v4)) { /* AF_INET, or IPv4-mapped AF_INET6 */
        return acl_find4(&a->v4, v4);
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;

        memcpy(&sin6, sa, sizeof(sin6));
        return acl_find6(&a->v6, acl_u128_of(sin6.sin6_addr.s6_addr));
    }
    return false;
}

bool
acl_permits(const struct acl *allow, const struct acl *deny,
            const struct sockaddr *sa)
{
    if (acl_match(deny, sa)) {
        return false;
    }
    return acl_count(allow) == 0 || acl_match(allow, sa);
}

bool
acl_equal(const struct acl *a, const struct acl *b)
{
    size_t n4 = a != NULL ? a->v4.n : 0, n6 = a != NULL ? a->v6.n : 0;

    if (n4 != (b != NULL ? b->v4.n : 0) || n6 != (b != NULL ? b->v6.n : 0)) {
        return false;
    }
    /* Merged ranges are canonical: the same addresses, the same arrays
     * (lo then hi, contiguous; struct acl_u128 is two words, no padding). */
    return (n4 == 0 || memcmp(a->v4.lo, b->v4.lo, 2 * n4 * 4) == 0) &&
           (n6 == 0 ||
            memcmp(a->v6.lo, b->v6.lo, 2 * n6 * sizeof(*a->v6.lo)) == 0);
}
