/*
 * test_peers.c - the per-source table: counting against a limit, prefix
 * aggregation (IPv4 and IPv6, whole and partial bytes), IPv4-mapped IPv6
 * addresses as their IPv4 source, removal and slot reuse, a full table,
 * every key in one bucket (forced with shift 64), a secret per table that
 * decides the buckets, a random walk checked against a plain model,
 * reconfiguration, and no allocation per connection.
 *
 * --wrap=calloc,malloc,realloc counts allocations and makes calloc fail
 * on demand (ENOMEM during peer_configure).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "peers.h"
#include "unit.h"

/* ---- allocation counting and failure ---- */

void *__real_calloc(size_t n, size_t size);
void *__wrap_calloc(size_t n, size_t size);
void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);

static long allocs;
static int calloc_fail_at = -1; /* fail the Nth calloc from now; -1 never */

void *
__wrap_calloc(size_t n, size_t size)
{
    allocs++;
    if (calloc_fail_at >= 0 && calloc_fail_at-- == 0) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_calloc(n, size);
}

void *
__wrap_malloc(size_t n)
{
    allocs++;
    return __real_malloc(n);
}

void *
__wrap_realloc(void *p, size_t n)
{
    allocs++;
    return __real_realloc(p, n);
}

/* ---- addresses ---- */

static struct sockaddr_storage
addr(const char *text)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(40000);
        assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(40000);
        assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
    }
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

/* Acquire for text, expecting `want`; returns the handle. */
static uint32_t
acq(struct peer_table *t, const char *text, size_t limit,
    enum peer_verdict want)
{
    struct sockaddr_storage ss = addr(text);
    uint32_t ref = 12345;
    enum peer_verdict v = peer_acquire(t, SA(ss), limit, &ref);

    if (v != want) {
        fail_msg("%s: verdict %d, expected %d", text, (int)v, (int)want);
    }
    if (v == PEER_OK) {
        assert_int_not_equal(ref, PEER_NONE);
    } else {
        assert_int_equal(ref, PEER_NONE);
    }
    return ref;
}

static size_t
count(const struct peer_table *t, const char *text)
{
    struct sockaddr_storage ss = addr(text);

    return peer_count(t, SA(ss));
}

static void
expect_name(const struct peer_table *t, const char *text, const char *want)
{
    struct sockaddr_storage ss = addr(text);
    char buf[PEER_NAME_MAX];

    assert_string_equal(peer_name(t, SA(ss), buf, sizeof(buf)), want);
}

/* ---- fixture ---- */

static struct peer_table t;

static int
setup(void **state)
{
    (void)state;
    calloc_fail_at = -1;
    peer_init(&t);
    return peer_configure(&t, 64, 32, 64) == 1 ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    peer_fini(&t);
    return 0;
}

/* ---- tests ---- */

static void
test_counts_up_to_the_limit(void **state)
{
    uint32_t a[3];

    (void)state;
    for (int i = 0; i < 3; i++) {
        a[i] = acq(&t, "192.0.2.1", 3, PEER_OK);
    }
    assert_int_equal(count(&t, "192.0.2.1"), 3);
    acq(&t, "192.0.2.1", 3, PEER_OVER); /* refused: nothing counted */
    assert_int_equal(count(&t, "192.0.2.1"), 3);
    /* Another source is not held back by the first. */
    acq(&t, "192.0.2.2", 3, PEER_OK);
    assert_int_equal(count(&t, "192.0.2.2"), 1);
    assert_int_equal(peer_sources(&t), 2);
    /* One leaves: one more may come. The same handle every time. */
    peer_release(&t, a[1]);
    assert_int_equal(count(&t, "192.0.2.1"), 2);
    assert_int_equal(acq(&t, "192.0.2.1", 3, PEER_OK), a[0]);
    /* A lower limit refuses new ones only; a higher one admits again. */
    acq(&t, "192.0.2.1", 2, PEER_OVER);
    assert_int_equal(count(&t, "192.0.2.1"), 3);
    acq(&t, "192.0.2.1", 4, PEER_OK);
    /* 0 = no limit. */
    for (int i = 0; i < 100; i++) {
        acq(&t, "192.0.2.1", 0, PEER_OK);
    }
    assert_int_equal(count(&t, "192.0.2.1"), 104);
    assert_int_equal(peer_sources(&t), 2);
}

/* Under prefixes p4 and p6, a and b are one source (named `name`) and
 * other is another one. */
struct agg_case {
    unsigned p4, p6;
    const char *a, *b, *other, *name;
};

static void
check_aggregation(const struct agg_case *c, size_t n)
{
    for (size_t i = 0; i < n; i++, c++) {
        peer_fini(&t);
        assert_int_equal(peer_configure(&t, 64, c->p4, c->p6), 1);
        acq(&t, c->a, 2, PEER_OK);
        acq(&t, c->b, 2, PEER_OK);
        acq(&t, c->a, 2, PEER_OVER);
        acq(&t, c->b, 2, PEER_OVER);
        acq(&t, c->other, 2, PEER_OK);
        assert_int_equal(count(&t, c->a), 2);
        assert_int_equal(count(&t, c->other), 1);
        assert_int_equal(peer_sources(&t), 2);
        expect_name(&t, c->b, c->name);
    }
}

static void
test_ipv6_aggregated_by_prefix(void **state)
{
    static const struct agg_case cases[] = {
        /* The default /64: the interface identifier is the host's. */
        {32, 64, "2001:db8:1:2::1", "2001:db8:1:2:ffff:eeee:dddd:cccc",
         "2001:db8:1:3::1", "2001:db8:1:2::/64"},
        /* A prefix that ends inside a byte keeps part of it. */
        {32, 60, "2001:db8:0:10::1", "2001:db8:0:1f:1::", "2001:db8:0:20::1",
         "2001:db8:0:10::/60"},
        {32, 65, "2001:db8::7fff:0:0:1", "2001:db8::1", "2001:db8::8000:0:0:1",
         "2001:db8::/65"},
        /* /1: half the address space is one source. */
        {32, 1, "2001:db8::1", "3fff::1", "fe80::1", "::/1"},
        /* Other prefix lengths do not touch IPv6. */
        {8, 64, "2001:db8::1", "2001:db8::2", "2001:db9::1", "2001:db8::/64"},
    };

    (void)state;
    check_aggregation(cases, sizeof(cases) / sizeof(cases[0]));
    /* /128: every address is its own source, named without a length. */
    assert_int_equal(peer_configure(&t, 64, 32, 128), 1);
    acq(&t, "2001:db8::1", 1, PEER_OK);
    acq(&t, "2001:db8::2", 1, PEER_OK);
    acq(&t, "2001:db8::1", 1, PEER_OVER);
    expect_name(&t, "2001:db8::1", "2001:db8::1");
}

static void
test_ipv4_aggregated_by_prefix(void **state)
{
    static const struct agg_case cases[] = {
        {24, 64, "192.0.2.1", "192.0.2.200", "192.0.3.1", "192.0.2.0/24"},
        {27, 64, "198.51.100.32", "198.51.100.63", "198.51.100.64",
         "198.51.100.32/27"},
        {1, 64, "10.0.0.1", "127.0.0.1", "192.0.2.1", "0.0.0.0/1"},
        /* Other prefix lengths do not touch IPv4. */
        {32, 1, "192.0.2.1", "192.0.2.1", "192.0.2.2", "192.0.2.1"},
    };

    (void)state;
    check_aggregation(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
test_ipv4_mapped_is_the_ipv4_source(void **state)
{
    (void)state;
    /* A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d. */
    acq(&t, "192.0.2.7", 3, PEER_OK);
    acq(&t, "::ffff:192.0.2.7", 3, PEER_OK);
    assert_int_equal(count(&t, "192.0.2.7"), 2);
    assert_int_equal(count(&t, "::ffff:192.0.2.7"), 2);
    acq(&t, "::ffff:192.0.2.7", 3, PEER_OK);
    acq(&t, "192.0.2.7", 3, PEER_OVER);
    acq(&t, "::ffff:192.0.2.7", 3, PEER_OVER);
    expect_name(&t, "::ffff:192.0.2.7", "192.0.2.7");
    /* The IPv6 /64 does not swallow all of IPv4: other IPv4 addresses,
     * mapped or not, are other sources. */
    acq(&t, "::ffff:198.51.100.1", 3, PEER_OK);
    assert_int_equal(count(&t, "198.51.100.1"), 1);
    /* Nor is ::/64 (IPv4-compatible and other low addresses) an IPv4
     * source. */
    acq(&t, "::192.0.2.7", 3, PEER_OK);
    assert_int_equal(count(&t, "192.0.2.7"), 3);
    assert_int_equal(count(&t, "::1"), 1);
    assert_int_equal(peer_sources(&t), 3);
    /* Mapped addresses follow the IPv4 prefix. */
    assert_int_equal(peer_configure(&t, 64, 24, 64), 1);
    acq(&t, "::ffff:192.0.2.7", 0, PEER_OK);
    acq(&t, "192.0.2.9", 0, PEER_OK);
    assert_int_equal(count(&t, "::ffff:192.0.2.1"), 2);
    expect_name(&t, "::ffff:192.0.2.7", "192.0.2.0/24");
}

static void
test_release_frees_and_reuses(void **state)
{
    uint32_t a, b, c;

    (void)state;
    a = acq(&t, "192.0.2.1", 0, PEER_OK);
    b = acq(&t, "192.0.2.1", 0, PEER_OK);
    c = acq(&t, "2001:db8::1", 0, PEER_OK);
    assert_int_equal(a, b);
    assert_int_not_equal(a, c);
    assert_int_equal(peer_sources(&t), 2);
    peer_release(&t, a);
    assert_int_equal(count(&t, "192.0.2.1"), 1);
    peer_release(&t, b);
    assert_int_equal(count(&t, "192.0.2.1"), 0);
    assert_int_equal(peer_sources(&t), 1);
    assert_int_equal(count(&t, "2001:db8::1"), 1);
    /* The freed slot is the next one handed out. */
    assert_int_equal(acq(&t, "203.0.113.5", 0, PEER_OK), a);
    peer_release(&t, c);
    peer_release(&t, a);
    assert_int_equal(peer_sources(&t), 0);
    peer_release(&t, PEER_NONE); /* does nothing */
    assert_int_equal(peer_sources(&t), 0);
}

static void
test_full_table(void **state)
{
    char text[32];
    uint32_t ref[4];

    (void)state;
    peer_fini(&t);
    assert_int_equal(peer_configure(&t, 4, 32, 64), 1);
    for (int i = 0; i < 4; i++) {
        snprintf(text, sizeof(text), "192.0.2.%d", i + 1);
        ref[i] = acq(&t, text, 0, PEER_OK);
    }
    /* No slot for a fifth source, IPv4 or IPv6 ... */
    acq(&t, "192.0.2.99", 0, PEER_FULL);
    acq(&t, "2001:db8::1", 0, PEER_FULL);
    assert_int_equal(count(&t, "192.0.2.99"), 0);
    assert_int_equal(peer_sources(&t), 4);
    /* ... but the known ones are still counted. */
    assert_int_equal(acq(&t, "192.0.2.3", 0, PEER_OK), ref[2]);
    assert_int_equal(count(&t, "192.0.2.3"), 2);
    /* The limit is checked before fullness matters. */
    acq(&t, "192.0.2.3", 2, PEER_OVER);
    /* A source that leaves makes room. */
    peer_release(&t, ref[1]);
    acq(&t, "192.0.2.99", 0, PEER_OK);
    acq(&t, "192.0.2.100", 0, PEER_FULL);
}

static void
test_unconfigured_and_other_families(void **state)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct peer_table empty;
    char buf[PEER_NAME_MAX];
    uint32_t ref = 7;

    (void)state;
    /* Not counted, not refused: a handle that releases nothing. */
    assert_int_equal(peer_acquire(&t, (struct sockaddr *)&un, 1, &ref),
                     PEER_OK);
    assert_int_equal(ref, PEER_NONE);
    assert_int_equal(peer_count(&t, (struct sockaddr *)&un), 0);
    assert_string_equal(peer_name(&t, (struct sockaddr *)&un, buf, sizeof(buf)),
                        "?");
    /* Before peer_configure there is no slot at all. */
    peer_init(&empty);
    acq(&empty, "192.0.2.1", 0, PEER_FULL);
    assert_int_equal(count(&empty, "192.0.2.1"), 0);
    peer_fini(&empty);
}

/* A plain model of the table: counts per source index. */
#define MODEL_N 48

static void
model_text(int i, char *buf, size_t len)
{
    /* Alternate families; the IPv6 ones differ inside their /64 too, and
     * some IPv4 ones arrive mapped. */
    if (i % 3 == 0) {
        snprintf(buf, len, "2001:db8:%x:%x::%x", i, i * 7, i);
    } else if (i % 3 == 1) {
        snprintf(buf, len, "198.51.%d.%d", i, 255 - i);
    } else {
        snprintf(buf, len, "::ffff:203.0.%d.%d", i, i);
    }
}

/* The IPv6 sources again, another host in the same /64. */
static void
model_alias(int i, char *buf, size_t len)
{
    if (i % 3 == 0) {
        snprintf(buf, len, "2001:db8:%x:%x:ffff::%x", i, i * 7, i + 1);
    } else if (i % 3 == 1) {
        snprintf(buf, len, "::ffff:198.51.%d.%d", i, 255 - i);
    } else {
        snprintf(buf, len, "203.0.%d.%d", i, i);
    }
}

/* Random acquires and releases (deterministic xorshift) against the
 * model; after every step every source's count must agree. one_bucket
 * sends every key to bucket 0 (as if the hash always collided). */
static void
random_walk(uint64_t seed, size_t size, int steps, bool one_bucket)
{
    uint32_t held[MODEL_N][16];
    int n_held[MODEL_N] = {0};
    uint64_t x = seed;
    char text[64];
    size_t live = 0;

    peer_fini(&t);
    assert_int_equal(peer_configure(&t, size, 32, 64), 1);
    if (one_bucket) {
        t.shift = 64;
    }
    for (int s = 0; s < steps; s++) {
        int i;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        i = (int)(x % MODEL_N);
        if ((x >> 32) % 5 < 3 && n_held[i] < 16) {
            enum peer_verdict want =
                n_held[i] > 0 || live < size ? PEER_OK : PEER_FULL;
            ((x >> 40) & 1 ? model_alias : model_text)(i, text, sizeof(text));
            uint32_t r = acq(&t, text, 16, want);
            if (r != PEER_NONE) {
                live += n_held[i] == 0;
                held[i][n_held[i]++] = r;
            }
        } else if (n_held[i] > 0) {
            peer_release(&t, held[i][--n_held[i]]);
            live -= n_held[i] == 0;
        }
        assert_int_equal(peer_sources(&t), live);
        for (int k = 0; k < MODEL_N; k++) {
            model_alias(k, text, sizeof(text));
            if (count(&t, text) != (size_t)n_held[k]) {
                fail_msg("step %d: source %d (%s) counts %zu, model %d", s, k,
                         text, count(&t, text), n_held[k]);
            }
        }
    }
    for (int k = 0; k < MODEL_N; k++) {
        while (n_held[k] > 0) {
            peer_release(&t, held[k][--n_held[k]]);
        }
    }
    assert_int_equal(peer_sources(&t), 0);
}

static void
test_random_walk_matches_model(void **state)
{
    (void)state;
    random_walk(0x5EED1234ULL, 64, 3000, false);
    random_walk(0xFEEDULL, 20, 3000, false); /* FULL must be exact */
}

/* Every source in bucket 0 (shift 64, as in a one-bucket table): one long
 * chain, unlinked at its head, middle and tail. Counting must not care. */
static void
test_every_key_in_one_bucket(void **state)
{
    uint32_t ref[10];
    char text[32];

    (void)state;
    t.shift = 64;
    for (int i = 0; i < 10; i++) {
        snprintf(text, sizeof(text), "192.0.2.%d", i);
        ref[i] = acq(&t, text, 0, PEER_OK);
    }
    for (size_t b = 1; b <= t.mask; b++) {
        assert_int_equal(t.bucket[b], PEER_NONE);
    }
    peer_release(&t, ref[9]); /* the chain's head (newest first) */
    peer_release(&t, ref[4]); /* middle */
    peer_release(&t, ref[0]); /* tail */
    for (int i = 0; i < 10; i++) {
        snprintf(text, sizeof(text), "192.0.2.%d", i);
        assert_int_equal(count(&t, text), i == 9 || i == 4 || i == 0 ? 0 : 1);
    }
    assert_int_equal(peer_sources(&t), 7);
    /* And the random walk again, all in one chain. */
    random_walk(0xC0111DEULL, 64, 2000, true);
    for (size_t b = 1; b <= t.mask; b++) {
        assert_int_equal(t.bucket[b], PEER_NONE);
    }
}

/* With the real key, structured sources (consecutive IPv4 addresses,
 * consecutive IPv6 /64s) spread over the buckets like random ones. */
static void
test_random_key_spreads(void **state)
{
    char text[64];

    (void)state;
    for (int v6 = 0; v6 < 2; v6++) {
        size_t used = 0, longest = 0;

        peer_fini(&t);
        assert_int_equal(peer_configure(&t, 1024, 32, 64), 1);
        assert_int_equal(t.mask, 1023);
        for (int i = 0; i < 1024; i++) {
            if (v6) {
                snprintf(text, sizeof(text), "2001:db8:0:%x::1", i);
            } else {
                snprintf(text, sizeof(text), "10.0.%d.%d", i / 256, i % 256);
            }
            acq(&t, text, 0, PEER_OK);
        }
        for (size_t b = 0; b <= t.mask; b++) {
            size_t len = 0;

            for (uint32_t r = t.bucket[b]; r != PEER_NONE;
                 r = t.ent[r - 1].next) {
                len++;
            }
            used += len > 0;
            longest = len > longest ? len : longest;
        }
        /* 1024 keys thrown at random into 1024 buckets fill about 63% of
         * them and the longest chain is about 5 (12 or more: p < 1e-6). A
         * hash that ignored the varying bytes would fill a handful. */
        if (used <= 1024 / 2 || longest >= 12) {
            fail_msg("%s: %zu buckets used, longest chain %zu",
                     v6 ? "IPv6" : "IPv4", used, longest);
        }
    }
}

/* Each table draws its own secret, and the secret decides the buckets:
 * the same sources, acquired in the same order, are chained otherwise in
 * another table. */
static void
test_secret_per_table(void **state)
{
    struct peer_table u;
    char text[32];

    (void)state;
    peer_init(&u);
    assert_int_equal(peer_configure(&u, 64, 32, 64), 1);
    assert_memory_not_equal(&t.seed, &u.seed, sizeof(t.seed));
    for (int i = 0; i < 64; i++) {
        snprintf(text, sizeof(text), "192.0.2.%d", i);
        assert_int_equal(acq(&t, text, 0, PEER_OK), acq(&u, text, 0, PEER_OK));
    }
    assert_int_equal(t.mask, u.mask);
    assert_memory_not_equal(t.bucket, u.bucket,
                            (t.mask + 1) * sizeof(t.bucket[0]));
    peer_fini(&u);
}

static void
test_configure(void **state)
{
    uint32_t a;

    (void)state;
    a = acq(&t, "192.0.2.1", 0, PEER_OK);
    /* Same size and prefixes, or a smaller size: nothing changes. */
    assert_int_equal(peer_configure(&t, 64, 32, 64), 0);
    assert_int_equal(peer_configure(&t, 8, 32, 64), 0);
    assert_int_equal(t.size, 64);
    assert_int_equal(count(&t, "192.0.2.1"), 1);
    /* Out-of-range prefixes are clamped: 99 is 32, no change. */
    assert_int_equal(peer_configure(&t, 64, 99, 64), 0);
    assert_int_equal(t.prefix4, 32);
    assert_int_equal(peer_configure(&t, 64, 32, 0), 1);
    assert_int_equal(t.prefix6, 1);
    /* A rebuild empties the table: the caller counts again. */
    assert_int_equal(count(&t, "192.0.2.1"), 0);
    a = acq(&t, "192.0.2.1", 0, PEER_OK);
    /* Out of memory while growing: -1, ENOMEM, the table as it was. */
    calloc_fail_at = 1; /* the bucket array */
    errno = 0;
    assert_int_equal(peer_configure(&t, 1000, 32, 64), -1);
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(t.size, 64);
    assert_int_equal(t.prefix6, 1);
    assert_int_equal(count(&t, "192.0.2.1"), 1);
    calloc_fail_at = 0; /* the entries */
    assert_int_equal(peer_configure(&t, 1000, 32, 64), -1);
    assert_int_equal(count(&t, "192.0.2.1"), 1);
    peer_release(&t, a);
    assert_int_equal(peer_sources(&t), 0);
    calloc_fail_at = -1;
    assert_int_equal(peer_configure(&t, 1000, 32, 64), 1);
    assert_int_equal(t.size, 1000);
    assert_int_equal(t.mask, 1023);
}

/* A reload backs out of a rebuild (t untouched) or puts it in place. */
static void
test_rebuild_then_back_out_or_replace(void **state)
{
    struct peer_table fresh;
    struct skey_seed seed;
    uint32_t a;

    (void)state;
    seed = t.seed;
    a = acq(&t, "192.0.2.1", 0, PEER_OK);
    assert_int_equal(peer_rebuild(&t, &fresh, 64, 32, 64), 0);
    assert_int_equal(peer_rebuild(&t, &fresh, 100, 24, 56), 1);
    assert_int_equal(fresh.size, 100);
    assert_int_equal(fresh.prefix4, 24);
    assert_int_equal(fresh.prefix6, 56);
    assert_int_equal(peer_sources(&fresh), 0);
    assert_memory_equal(&fresh.seed, &seed, sizeof(seed));
    /* Backing out leaves t as it was. */
    peer_fini(&fresh);
    assert_int_equal(t.size, 64);
    assert_int_equal(count(&t, "192.0.2.1"), 1);
    /* Replacing empties t under the new sizes; counting starts again. */
    assert_int_equal(peer_rebuild(&t, &fresh, 100, 24, 56), 1);
    peer_replace(&t, &fresh);
    assert_int_equal(t.size, 100);
    assert_int_equal(count(&t, "192.0.2.1"), 0);
    a = acq(&t, "192.0.2.1", 0, PEER_OK);
    acq(&t, "192.0.2.2", 0, PEER_OK);
    assert_int_equal(count(&t, "192.0.2.99"), 2);
    peer_release(&t, a);
    assert_int_equal(count(&t, "192.0.2.99"), 1);
}

/* The steady state allocates nothing: every slot was set up by
 * peer_configure. */
static void
test_no_allocation_per_connection(void **state)
{
    uint32_t ref[200];
    struct sockaddr_storage ss[200];
    char text[32];

    (void)state;
    peer_fini(&t);
    assert_int_equal(peer_configure(&t, 200, 32, 64), 1);
    for (int i = 0; i < 200; i++) {
        if (i % 2) {
            snprintf(text, sizeof(text), "10.1.%d.1", i);
        } else {
            snprintf(text, sizeof(text), "2001:db8:%x::1", i);
        }
        ss[i] = addr(text);
    }
    allocs = 0;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 200; i++) {
            assert_int_equal(peer_acquire(&t, SA(ss[i]), 0, &ref[i]), PEER_OK);
        }
        for (int i = 0; i < 200; i++) {
            peer_release(&t, ref[(i * 7 + round) % 200]);
        }
    }
    assert_int_equal(allocs, 0);
    assert_int_equal(peer_sources(&t), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counts_up_to_the_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_aggregated_by_prefix, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ipv4_aggregated_by_prefix, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ipv4_mapped_is_the_ipv4_source,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_frees_and_reuses, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_full_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unconfigured_and_other_families,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_walk_matches_model, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_every_key_in_one_bucket, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_random_key_spreads, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_secret_per_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_configure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_then_back_out_or_replace,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_allocation_per_connection,
                                        setup, teardown),
    };

    t_deadline(30);
    return cmocka_run_group_tests_name("peers", tests, NULL, NULL);
}
