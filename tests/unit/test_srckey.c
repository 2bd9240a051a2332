/*
 * test_srckey.c - what one source is: masking at whole and partial-byte
 * prefix lengths for both families, IPv4-mapped IPv6 as its IPv4 source,
 * other families as no source; SipHash-2-4 against the reference vector,
 * stable for one key and different for other keys and other secrets; the
 * secret from getrandom, and a well-mixed one when getrandom fails; the
 * "net/len" names.
 *
 * --wrap=getrandom scripts the kernel's answer (bytes, a failure, a short
 * read) to reach the fallback the kernel will not take on demand.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <sys/un.h>

#include "sock.h"
#include "srckey.h"
#include "unit.h"

/* ---- getrandom, scripted ---- */

ssize_t __real_getrandom(void *buf, size_t len, unsigned flags);
ssize_t __wrap_getrandom(void *buf, size_t len, unsigned flags);

enum rnd_mode { RND_REAL, RND_BYTES, RND_FAIL, RND_SHORT };

static enum rnd_mode rnd_mode = RND_REAL;
static int rnd_calls;
static unsigned rnd_flags;

ssize_t
__wrap_getrandom(void *buf, size_t len, unsigned flags)
{
    rnd_calls++;
    rnd_flags = flags;
    switch (rnd_mode) {
    case RND_BYTES:
        for (size_t i = 0; i < len; i++) {
            ((uint8_t *)buf)[i] = (uint8_t)(0xA0 + i);
        }
        return (ssize_t)len;
    case RND_FAIL:
        errno = ENOSYS;
        return -1;
    case RND_SHORT:
        return (ssize_t)(len / 2);
    case RND_REAL:
    default:
        return __real_getrandom(buf, len, flags);
    }
}

static int
setup(void **state)
{
    (void)state;
    rnd_mode = RND_REAL;
    rnd_calls = 0;
    return 0;
}

/* ---- helpers ---- */

static struct sockaddr_storage
addr(const char *text, unsigned port)
{
    struct sockaddr_storage ss;
    socklen_t len;

    memset(&ss, 0, sizeof(ss));
    assert_int_equal(sock_addr(text, (int)port, &ss, &len), 0);
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

/* The key of text under p4/p6, expecting family fam. */
static struct skey
key(const char *text, unsigned p4, unsigned p6, int fam)
{
    struct sockaddr_storage ss = addr(text, 4000);
    struct skey k;

    memset(&k, 0xAA, sizeof(k));
    assert_int_equal(skey_of(&k, SA(ss), p4, p6), fam);
    return k;
}

/* An expected key written as an IPv6 address (IPv4 as ::ffff:a.b.c.d). */
static struct skey
want(const char *v6)
{
    struct skey k;

    assert_int_equal(inet_pton(AF_INET6, v6, k.b), 1);
    return k;
}

static void
expect_key(const char *text, unsigned p4, unsigned p6, int fam, const char *v6)
{
    struct skey got = key(text, p4, p6, fam), w = want(v6);
    char buf[INET6_ADDRSTRLEN];

    if (!skey_equal(&got, &w)) {
        fail_msg("%s at /%u /%u: key %s, expected %s", text, p4, p6,
                 inet_ntop(AF_INET6, got.b, buf, sizeof(buf)), v6);
    }
}

static int
popcount128(const struct skey_seed *a, const struct skey_seed *b)
{
    return __builtin_popcountll(a->k[0] ^ b->k[0]) +
           __builtin_popcountll(a->k[1] ^ b->k[1]);
}

/* ---- tests ---- */

static void
test_ipv4_masking(void **state)
{
    (void)state;
    expect_key("192.0.2.200", 32, 64, AF_INET, "::ffff:192.0.2.200");
    expect_key("192.0.2.200", 24, 64, AF_INET, "::ffff:192.0.2.0");
    /* Inside a byte: /27 keeps the top three bits of the last one. */
    expect_key("198.51.100.63", 27, 64, AF_INET, "::ffff:198.51.100.32");
    expect_key("198.51.100.64", 27, 64, AF_INET, "::ffff:198.51.100.64");
    expect_key("255.255.255.255", 1, 64, AF_INET, "::ffff:128.0.0.0");
    expect_key("255.255.255.255", 9, 64, AF_INET, "::ffff:255.128.0.0");
    /* 0: the whole family is one source; past 32: the whole address. */
    expect_key("10.1.2.3", 0, 64, AF_INET, "::ffff:0.0.0.0");
    expect_key("10.1.2.3", 40, 64, AF_INET, "::ffff:10.1.2.3");
    /* The IPv6 length never touches IPv4. */
    expect_key("10.1.2.3", 32, 1, AF_INET, "::ffff:10.1.2.3");
}

static void
test_ipv6_masking(void **state)
{
    (void)state;
    expect_key("2001:db8:1:2:ffff:eeee:dddd:cccc", 32, 64, AF_INET6,
               "2001:db8:1:2::");
    expect_key("2001:db8:1:2:ffff:eeee:dddd:cccc", 32, 48, AF_INET6,
               "2001:db8:1::");
    expect_key("2001:db8:0:1f:1::", 32, 60, AF_INET6, "2001:db8:0:10::");
    expect_key("2001:db8::ffff:0:0:1", 32, 65, AF_INET6,
               "2001:db8::8000:0:0:0");
    expect_key("3fff::1", 32, 1, AF_INET6, "::");
    expect_key("ffff::1", 32, 1, AF_INET6, "8000::");
    expect_key("2001:db8::1", 32, 128, AF_INET6, "2001:db8::1");
    expect_key("2001:db8::1", 32, 200, AF_INET6, "2001:db8::1");
    /* The IPv4 length never touches IPv6. */
    expect_key("2001:db8::1", 1, 128, AF_INET6, "2001:db8::1");
}

static void
test_ipv4_mapped_is_ipv4(void **state)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct skey k, zero, a, b;

    (void)state;
    /* A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d: the
     * IPv4 source, cut to the IPv4 length, not to the IPv6 one. */
    a = key("::ffff:192.0.2.7", 24, 1, AF_INET);
    b = key("192.0.2.99", 24, 1, AF_INET);
    assert_true(skey_equal(&a, &b));
    expect_key("::ffff:192.0.2.7", 32, 1, AF_INET, "::ffff:192.0.2.7");
    /* Not mapped: IPv4-compatible and other low addresses are IPv6. */
    expect_key("::192.0.2.7", 32, 128, AF_INET6, "::192.0.2.7");
    expect_key("::ffff:0:c000:207", 32, 128, AF_INET6, "::ffff:0:c000:207");
    a = key("::192.0.2.7", 32, 128, AF_INET6);
    b = key("192.0.2.7", 32, 128, AF_INET);
    assert_false(skey_equal(&a, &b));
    /* The port is not part of a source. */
    {
        struct sockaddr_storage p1 = addr("2001:db8::1", 1);
        struct sockaddr_storage p2 = addr("2001:db8::1", 65535);

        assert_int_equal(skey_of(&a, SA(p1), 32, 128), AF_INET6);
        assert_int_equal(skey_of(&b, SA(p2), 32, 128), AF_INET6);
        assert_true(skey_equal(&a, &b));
    }
    /* Another family is no source, with an all-zero key. */
    memset(&k, 0xAA, sizeof(k));
    memset(&zero, 0, sizeof(zero));
    assert_int_equal(skey_of(&k, (const struct sockaddr *)&un, 32, 64), 0);
    assert_true(skey_equal(&k, &zero));
}

/* SipHash-2-4's published vector: secret 00..0f, message 00..0f. */
static void
test_hash_reference_vector(void **state)
{
    const struct skey_seed s = {
        {0x0706050403020100ULL, 0x0F0E0D0C0B0A0908ULL},
    };
    struct skey k;

    (void)state;
    for (int i = 0; i < 16; i++) {
        k.b[i] = (uint8_t)i;
    }
    assert_int_equal(skey_hash(&s, &k), 0x3F2ACC7F57C29BDBULL);
}

static void
test_hash_keyed(void **state)
{
    struct skey_seed s1 = {{1, 2}}, s2 = {{1, 3}};
    struct skey a = key("2001:db8:7:7::1", 32, 64, AF_INET6);
    struct skey b = key("2001:db8:7:7:ffff::9", 32, 64, AF_INET6);
    uint64_t h[256];
    char text[64];

    (void)state;
    /* One source, one hash, every time. */
    assert_int_equal(skey_hash(&s1, &a), skey_hash(&s1, &a));
    assert_int_equal(skey_hash(&s1, &a), skey_hash(&s1, &b));
    /* Another secret, another hash (one bit of it is enough). */
    assert_int_not_equal(skey_hash(&s1, &a), skey_hash(&s2, &a));
    /* Neighbouring sources hash apart: every one of 256 consecutive
     * /64s and IPv4 addresses gets its own 64-bit hash. */
    for (int v6 = 0; v6 < 2; v6++) {
        for (int i = 0; i < 256; i++) {
            struct skey k;

            if (v6) {
                snprintf(text, sizeof(text), "2001:db8:0:%x::1", i);
                k = key(text, 32, 64, AF_INET6);
            } else {
                snprintf(text, sizeof(text), "10.0.0.%d", i);
                k = key(text, 32, 64, AF_INET);
            }
            h[i] = skey_hash(&s1, &k);
            for (int j = 0; j < i; j++) {
                if (h[j] == h[i]) {
                    fail_msg("%s hashes as source %d", text, j);
                }
            }
        }
    }
}

static void
test_seed_from_getrandom(void **state)
{
    struct skey_seed s, t;

    (void)state;
    rnd_mode = RND_BYTES;
    skey_seed(&s);
    assert_int_equal(rnd_calls, 1);
    /* Never blocks a daemon that starts early in boot. */
    assert_true(rnd_flags & GRND_NONBLOCK);
    for (size_t i = 0; i < sizeof(s.k); i++) {
        assert_int_equal(((const uint8_t *)s.k)[i], 0xA0 + i);
    }
    /* The real kernel: two secrets, unrelated. */
    rnd_mode = RND_REAL;
    skey_seed(&s);
    skey_seed(&t);
    assert_true(popcount128(&s, &t) > 16);
}

/* getrandom failing or short: still a secret per table, and two tables
 * seeded back to back get unrelated ones (about half the bits differ;
 * fewer than 32 of 128 would happen by chance with p < 1e-8). */
static void
test_seed_fallback_is_mixed(void **state)
{
    static const enum rnd_mode modes[] = {RND_FAIL, RND_SHORT};
    struct skey_seed s[2];
    struct skey k = key("192.0.2.1", 32, 64, AF_INET);

    (void)state;
    for (size_t m = 0; m < 2; m++) {
        rnd_mode = modes[m];
        rnd_calls = 0;
        memset(s, 0, sizeof(s));
        skey_seed(&s[0]);
        skey_seed(&s[1]);
        assert_int_equal(rnd_calls, 2);
        for (int i = 0; i < 2; i++) {
            assert_true(s[i].k[0] != 0 || s[i].k[1] != 0);
        }
        if (popcount128(&s[0], &s[1]) < 32) {
            fail_msg("mode %zu: the secrets differ in %d bits of 128", m,
                     popcount128(&s[0], &s[1]));
        }
        assert_int_not_equal(skey_hash(&s[0], &k), skey_hash(&s[1], &k));
    }
}

static void
expect_name(const char *text, unsigned p4, unsigned p6, const char *name)
{
    struct sockaddr_storage ss = addr(text, 4000);
    char buf[SKEY_NAME_MAX];

    assert_string_equal(skey_name(SA(ss), p4, p6, buf, sizeof(buf)), name);
}

static void
test_name(void **state)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    char buf[SKEY_NAME_MAX];

    (void)state;
    expect_name("2001:db8:1:2:ffff::1", 32, 64, "2001:db8:1:2::/64");
    expect_name("2001:db8:0:1f::1", 32, 60, "2001:db8:0:10::/60");
    expect_name("2001:db8::1", 32, 128, "2001:db8::1");
    expect_name("192.0.2.200", 24, 64, "192.0.2.0/24");
    expect_name("192.0.2.200", 32, 64, "192.0.2.200");
    expect_name("::ffff:192.0.2.7", 32, 64, "192.0.2.7");
    expect_name("::ffff:192.0.2.7", 24, 64, "192.0.2.0/24");
    /* The longest name fits SKEY_NAME_MAX. */
    expect_name("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", 32, 127,
                "2001:db8:aaaa:bbbb:cccc:dddd:eeee:fffe/127");
    assert_string_equal(
        skey_name((const struct sockaddr *)&un, 32, 64, buf, sizeof(buf)), "?");
    /* A short buffer is cut, and still a string. */
    {
        struct sockaddr_storage ss = addr("192.0.2.200", 4000);
        char small[8];

        assert_string_equal(skey_name(SA(ss), 24, 64, small, sizeof(small)),
                            "192.0.2");
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_ipv4_masking, setup),
        cmocka_unit_test_setup(test_ipv6_masking, setup),
        cmocka_unit_test_setup(test_ipv4_mapped_is_ipv4, setup),
        cmocka_unit_test_setup(test_hash_reference_vector, setup),
        cmocka_unit_test_setup(test_hash_keyed, setup),
        cmocka_unit_test_setup(test_seed_from_getrandom, setup),
        cmocka_unit_test_setup(test_seed_fallback_is_mixed, setup),
        cmocka_unit_test_setup(test_name, setup),
    };

    t_deadline(30);
    return cmocka_run_group_tests_name("srckey", tests, NULL, NULL);
}
