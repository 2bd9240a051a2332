/*
 * test_acl.c - access-control lists: every text form and every error
 * text, matching at the edges of IPv4 and IPv6 ranges, IPv4-mapped IPv6
 * as IPv4, merging of overlapping, nested and adjacent ranges (also
 * across the middle of an IPv6 address and at the top of each space),
 * allow/deny semantics, references, and a 100,000-prefix list checked on
 * 1,000,000 random addresses against a reference that knows nothing of
 * ranges (it masks the address to every prefix length in use and looks
 * the network up), from one thread and from several at once.
 *
 * The random test prints its seed; ECHOD_TEST_SEED=N replays it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>

#include "acl.h"
#include "sock.h"
#include "unit.h"

/* ---- helpers ---- */

/* A list of the given texts; every one must be accepted. */
static struct acl *
build(const char *const *texts, size_t n)
{
    struct acl_builder *b = acl_builder_new();
    char err[ACL_ERR_MAX];
    struct acl *a;

    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        if (acl_add(b, texts[i], err, sizeof(err)) != 0) {
            acl_builder_free(b);
            fail_msg("\"%s\": %s", texts[i], err);
        }
    }
    a = acl_build(b);
    assert_non_null(a);
    return a;
}

#define BUILD(...)                                                             \
    build((const char *const[]){__VA_ARGS__},                                  \
          sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* The address as a socket address (IPv4, IPv6 or IPv4-mapped IPv6). */
static struct sockaddr_storage
addr(const char *text)
{
    struct sockaddr_storage ss;
    socklen_t len;

    if (sock_addr(text, 7, &ss, &len) != 0) {
        fail_msg("test bug: %s is no address", text);
    }
    return ss;
}

static bool
match(const struct acl *a, const char *text)
{
    struct sockaddr_storage ss = addr(text);

    return acl_match(a, (const struct sockaddr *)&ss);
}

static bool
permits(const struct acl *allow, const struct acl *deny, const char *text)
{
    struct sockaddr_storage ss = addr(text);

    return acl_permits(allow, deny, (const struct sockaddr *)&ss);
}

/* The add must fail with exactly `want`, and add nothing. */
static void
expect_error(const char *text, const char *want)
{
    struct acl_builder *b = acl_builder_new();
    char err[ACL_ERR_MAX];
    struct acl *a;

    assert_non_null(b);
    memset(err, 'x', sizeof(err));
    if (acl_add(b, text, err, sizeof(err)) != -1) {
        acl_builder_free(b);
        fail_msg("\"%s\" was accepted", text);
    }
    if (strcmp(err, want) != 0) {
        acl_builder_free(b);
        fail_msg("\"%s\": got \"%s\", want \"%s\"", text, err, want);
    }
    a = acl_build(b);
    assert_non_null(a);
    assert_int_equal(acl_count(a), 0);
    assert_int_equal(acl_ranges(a), 0);
    acl_free(a);
}

/* ---- text ---- */

static void
test_parse_forms(void **state)
{
    struct acl *a;

    (void)state;
    a = BUILD("10.0.0.0/8", "192.0.2.7", "0.0.0.0/32", "198.51.100.0/24",
              "2001:db8::/32", "2001:db9::1", "::/128", "fe80::/10",
              "172.16.0.0/012");
    assert_int_equal(acl_count(a), 9);
    assert_int_equal(acl_ranges(a), 9);
    /* A bare address is one address. */
    assert_true(match(a, "192.0.2.7"));
    assert_false(match(a, "192.0.2.6"));
    assert_false(match(a, "192.0.2.8"));
    assert_true(match(a, "2001:db9::1"));
    assert_false(match(a, "2001:db9::"));
    assert_false(match(a, "2001:db9::2"));
    assert_true(match(a, "2001:db8:ffff::2"));
    assert_true(match(a, "0.0.0.0"));
    assert_true(match(a, "::"));
    assert_false(match(a, "::1"));
    /* A leading zero in the length is still decimal: /12. */
    assert_true(match(a, "172.31.255.255"));
    assert_false(match(a, "172.32.0.0"));
    assert_true(match(a, "fe80::1"));
    assert_true(match(a, "febf:ffff::"));
    assert_false(match(a, "fec0::"));
    acl_free(a);

    /* /0 in each family is the whole family. */
    a = BUILD("0.0.0.0/0");
    assert_true(match(a, "0.0.0.0"));
    assert_true(match(a, "255.255.255.255"));
    assert_false(match(a, "::1"));
    acl_free(a);
    a = BUILD("::/0");
    assert_true(match(a, "::"));
    assert_true(match(a, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_false(match(a, "10.0.0.1"));
    acl_free(a);
}

static void
test_parse_errors(void **state)
{
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"10.0.0.0/33", "prefix length must be 0..32"},
        {"fe80::/129", "prefix length must be 0..128"},
        {"10.0.0.0/99999999999999999999", "prefix length must be 0..32"},
        {"::/4294967424", "prefix length must be 0..128"},
        {"300.1.1.1", "not an IPv4 or IPv6 address"},
        {"", "not an IPv4 or IPv6 address"},
        {"/8", "not an IPv4 or IPv6 address"},
        {"10/8", "not an IPv4 or IPv6 address"},
        {"10.1", "not an IPv4 or IPv6 address"},
        {"010.0.0.0/8", "not an IPv4 or IPv6 address"},
        {" 10.0.0.0/8", "not an IPv4 or IPv6 address"},
        {"localhost", "not an IPv4 or IPv6 address"},
        {"[::1]", "not an IPv4 or IPv6 address"},
        {"fe80::1%lo", "not an IPv4 or IPv6 address"},
        {"fe80::1%lo/64", "not an IPv4 or IPv6 address"},
        {"1:2:3:4:5:6:7:8:9", "not an IPv4 or IPv6 address"},
        {"0000:0000:0000:0000:0000:0000:0000:00001",
         "not an IPv4 or IPv6 address"},
        {"10.0.0.0/", "expected a prefix length 0..32 after \"/\""},
        {"10.0.0.0/-1", "expected a prefix length 0..32 after \"/\""},
        {"10.0.0.0/+8", "expected a prefix length 0..32 after \"/\""},
        {"10.0.0.0/ 8", "expected a prefix length 0..32 after \"/\""},
        {"::/", "expected a prefix length 0..128 after \"/\""},
        {"::/x", "expected a prefix length 0..128 after \"/\""},
        {"10.0.0.0/8x", "junk after the prefix length"},
        {"10.0.0.0/8 ", "junk after the prefix length"},
        {"10.0.0.0/8/8", "junk after the prefix length"},
        {"10.0.0.0/8\n", "junk after the prefix length"},
        {"2001:db8::/32,", "junk after the prefix length"},
        {"10.0.0.0/33x", "junk after the prefix length"},
        {"10.0.0.1/8", "host bits set beyond /8: did you mean \"10.0.0.0/8\"?"},
        {"192.168.1.1/24",
         "host bits set beyond /24: did you mean \"192.168.1.0/24\"?"},
        {"10.0.0.1/0", "host bits set beyond /0: did you mean \"0.0.0.0/0\"?"},
        {"10.0.0.1/31",
         "host bits set beyond /31: did you mean \"10.0.0.0/31\"?"},
        {"2001:db8::1/32",
         "host bits set beyond /32: did you mean \"2001:db8::/32\"?"},
        {"2001:db8:0:0:8000::/64",
         "host bits set beyond /64: did you mean \"2001:db8::/64\"?"},
        {"2001:db8::1/127",
         "host bits set beyond /127: did you mean \"2001:db8::/127\"?"},
        {"fe80::1/10", "host bits set beyond /10: did you mean \"fe80::/10\"?"},
        {"::1/0", "host bits set beyond /0: did you mean \"::/0\"?"},
        {"::ffff:10.0.0.1/104",
         "host bits set beyond /104: did you mean \"::ffff:10.0.0.0/104\"?"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_error(cases[i].text, cases[i].err);
    }
}

/* The message is cut to the buffer and terminated; a buffer of 0 bytes
 * is not written. A failed add leaves the builder as it was. */
static void
test_error_buffer(void **state)
{
    struct acl_builder *b = acl_builder_new();
    char err[8];
    struct acl *a;

    (void)state;
    assert_non_null(b);
    assert_int_equal(acl_add(b, "10.0.0.0/8", err, sizeof(err)), 0);
    memset(err, 'x', sizeof(err));
    assert_int_equal(acl_add(b, "10.0.0.1/8", err, sizeof(err)), -1);
    assert_string_equal(err, "host bi");
    assert_int_equal(acl_add(b, "10.0.0.0/33", err, 1), -1);
    assert_string_equal(err, "");
    memset(err, 'x', sizeof(err));
    assert_int_equal(acl_add(b, "nonsense", err, 0), -1);
    assert_int_equal(err[0], 'x');
    assert_int_equal(acl_add(b, "10.0.0.1/33", NULL, 0), -1);
    assert_int_equal(acl_add(b, "10.0.0.1/8", NULL, 0), -1);
    a = acl_build(b);
    assert_non_null(a);
    assert_int_equal(acl_count(a), 1);
    assert_int_equal(acl_ranges(a), 1);
    assert_true(match(a, "10.255.255.255"));
    assert_false(match(a, "11.0.0.0"));
    acl_free(a);

    /* Abandoning a builder that holds entries frees them (ASan). */
    b = acl_builder_new();
    assert_non_null(b);
    for (int i = 0; i < 1000; i++) {
        char text[32];

        snprintf(text, sizeof(text), "10.%d.%d.0/24", i / 256, i % 256);
        assert_int_equal(acl_add(b, text, err, sizeof(err)), 0);
        assert_int_equal(acl_add(b, "2001:db8::/48", err, sizeof(err)), 0);
    }
    acl_builder_free(b);
    acl_builder_free(NULL);
}

/* ---- matching ---- */

static void
test_match_edges(void **state)
{
    struct acl *a;

    (void)state;
    a = BUILD("192.0.2.0/24", "198.51.100.128/25", "2001:db8::/64",
              "2001:db8:0:2::/63", "255.255.255.254/31",
              "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127");
    assert_false(match(a, "192.0.1.255"));
    assert_true(match(a, "192.0.2.0"));
    assert_true(match(a, "192.0.2.255"));
    assert_false(match(a, "192.0.3.0"));
    assert_false(match(a, "198.51.100.127"));
    assert_true(match(a, "198.51.100.128"));
    assert_true(match(a, "198.51.100.255"));
    assert_false(match(a, "198.51.101.0"));
    assert_false(match(a, "255.255.255.253"));
    assert_true(match(a, "255.255.255.254"));
    assert_true(match(a, "255.255.255.255"));
    assert_false(match(a, "0.0.0.0"));
    /* A /64 ends where the low word wraps. */
    assert_false(match(a, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_true(match(a, "2001:db8::"));
    assert_true(match(a, "2001:db8::ffff:ffff:ffff:ffff"));
    assert_false(match(a, "2001:db8:0:1::"));
    assert_false(match(a, "2001:db8:0:1:ffff:ffff:ffff:ffff"));
    assert_true(match(a, "2001:db8:0:2::"));
    assert_true(match(a, "2001:db8:0:3:ffff:ffff:ffff:ffff"));
    assert_false(match(a, "2001:db8:0:4::"));
    assert_true(match(a, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_false(match(a, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd"));
    assert_false(match(a, "::"));
    /* IPv4 entries say nothing of IPv6 and the other way round. */
    assert_false(match(a, "::c000:200")); /* ::192.0.2.0, not mapped */
    acl_free(a);
}

/* An IPv4-mapped IPv6 client is its IPv4 address; a mapped entry is the
 * IPv4 entry it stands for; an IPv6 entry that merely spans the mapped
 * range does not catch IPv4 clients. */
static void
test_mapped_is_ipv4(void **state)
{
    struct acl *a;

    (void)state;
    a = BUILD("10.0.0.0/8");
    assert_true(match(a, "::ffff:10.1.2.3"));
    assert_true(match(a, "::ffff:10.255.255.255"));
    assert_false(match(a, "::ffff:11.0.0.0"));
    assert_false(match(a, "::a01:203")); /* ::10.1.2.3, not mapped */
    acl_free(a);

    a = BUILD("::ffff:192.0.2.0/120", "::ffff:198.51.100.7",
              "::ffff:0.0.0.0/96");
    assert_int_equal(acl_count(a), 3);
    assert_true(match(a, "192.0.2.200"));
    assert_true(match(a, "::ffff:192.0.2.200"));
    assert_true(match(a, "198.51.100.7"));
    assert_true(match(a, "1.2.3.4")); /* ::ffff:0.0.0.0/96 = 0.0.0.0/0 */
    assert_false(match(a, "::1"));
    assert_false(match(a, "::ffff:0:0:0")); /* not mapped: 7 words */
    acl_free(a);
    /* Written either way, the same list. */
    a = BUILD("::ffff:192.0.2.0/120");
    {
        struct acl *b = BUILD("192.0.2.0/24");

        assert_true(acl_equal(a, b));
        acl_free(b);
    }
    acl_free(a);

    a = BUILD("::/0", "::fffe:0:0/95");
    assert_false(match(a, "10.0.0.1"));
    assert_false(match(a, "::ffff:10.0.0.1"));
    assert_true(match(a, "::fffe:1:2"));
    assert_true(match(a, "2001:db8::1"));
    acl_free(a);
}

static void
test_other_family_and_null(void **state)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct sockaddr_storage v4 = addr("10.0.0.1");
    const struct sockaddr *sa = (const struct sockaddr *)&un;
    struct acl *all = BUILD("0.0.0.0/0", "::/0");
    struct acl *empty = build(NULL, 0);

    (void)state;
    assert_false(acl_match(all, sa));
    assert_false(acl_permits(all, NULL, sa));
    assert_true(acl_permits(NULL, all, sa));
    assert_false(acl_match(NULL, (const struct sockaddr *)&v4));
    assert_false(acl_match(empty, (const struct sockaddr *)&v4));
    assert_int_equal(acl_count(NULL), 0);
    assert_int_equal(acl_ranges(NULL), 0);
    assert_int_equal(acl_count(empty), 0);
    assert_int_equal(acl_ranges(empty), 0);
    assert_true(acl_equal(NULL, NULL));
    assert_true(acl_equal(NULL, empty));
    assert_true(acl_equal(empty, NULL));
    assert_false(acl_equal(NULL, all));
    assert_false(acl_equal(all, empty));
    assert_null(acl_ref(NULL));
    acl_free(NULL);
    acl_free(all);
    acl_free(empty);
}

/* ---- merging ---- */

static void
test_merge(void **state)
{
    static const struct {
        const char *text[4];
        size_t n, ranges;
        const char *same; /* one prefix it must equal, or NULL */
    } cases[] = {
        /* overlapping, nested, duplicated */
        {{"10.0.0.0/8", "10.1.0.0/16"}, 2, 1, "10.0.0.0/8"},
        {{"10.1.0.0/16", "10.0.0.0/8", "10.1.2.3"}, 3, 1, "10.0.0.0/8"},
        {{"10.0.0.0/8", "10.0.0.0/8", "10.0.0.0/8"}, 3, 1, "10.0.0.0/8"},
        /* adjacent halves make the whole */
        {{"10.128.0.0/9", "10.0.0.0/9"}, 2, 1, "10.0.0.0/8"},
        {{"10.0.0.0/10", "10.64.0.0/10", "10.128.0.0/9"}, 3, 1, "10.0.0.0/8"},
        /* a gap of one address is a gap */
        {{"10.0.0.0/31", "10.0.0.3"}, 2, 2, NULL},
        {{"10.0.0.0/31", "10.0.0.2"}, 2, 1, NULL},
        /* the top of the space: no wrap to 0 */
        {{"0.0.0.0/1", "128.0.0.0/1"}, 2, 1, "0.0.0.0/0"},
        {{"255.255.255.255", "0.0.0.0/0"}, 2, 1, "0.0.0.0/0"},
        {{"255.255.255.255", "0.0.0.0"}, 2, 2, NULL},
        /* IPv6: across the 64-bit middle, with and without a carry */
        {{"2001:db8::/64", "2001:db8:0:1::/64"}, 2, 1, "2001:db8::/63"},
        {{"::ffff:ffff:ffff:ffff", "0:0:0:1::"}, 2, 1, NULL},
        {{"::ffff:ffff:ffff:fffe", "0:0:0:1::"}, 2, 2, NULL},
        {{"2001:db8::/48", "2001:db8::/32", "2001:db8:1::/48"},
         3,
         1,
         "2001:db8::/32"},
        {{"8000::/1", "::/1"}, 2, 1, "::/0"},
        {{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0"}, 2, 1, "::/0"},
        /* the families never merge with each other */
        {{"0.0.0.0/0", "::/0"}, 2, 2, NULL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct acl *a = build(cases[i].text, cases[i].n);

        assert_int_equal(acl_count(a), cases[i].n);
        if (acl_ranges(a) != cases[i].ranges) {
            fail_msg("case %zu: %zu ranges, want %zu", i, acl_ranges(a),
                     cases[i].ranges);
        }
        if (cases[i].same != NULL) {
            struct acl *b = build(&cases[i].same, 1);

            if (!acl_equal(a, b)) {
                fail_msg("case %zu: not the same as %s", i, cases[i].same);
            }
            acl_free(b);
        }
        acl_free(a);
    }
}

/* The merged list still matches exactly the union: edges of the joined
 * ranges, and the gap kept between ranges that only nearly touch. */
static void
test_merge_keeps_edges(void **state)
{
    struct acl *a;

    (void)state;
    a = BUILD("10.0.0.0/24", "10.0.1.0/24", "10.0.0.128/25", "10.0.3.0/24",
              "::ffff:ffff:ffff:ffff", "0:0:0:1::/64", "0:0:0:2::1");
    assert_int_equal(acl_ranges(a), 4);
    assert_false(match(a, "9.255.255.255"));
    assert_true(match(a, "10.0.0.0"));
    assert_true(match(a, "10.0.1.255"));
    assert_false(match(a, "10.0.2.0"));
    assert_false(match(a, "10.0.2.255"));
    assert_true(match(a, "10.0.3.0"));
    assert_true(match(a, "10.0.3.255"));
    assert_false(match(a, "10.0.4.0"));
    assert_false(match(a, "::ffff:ffff:ffff:fffe"));
    assert_true(match(a, "::ffff:ffff:ffff:ffff"));
    assert_true(match(a, "0:0:0:1::"));
    assert_true(match(a, "0:0:0:1:ffff:ffff:ffff:ffff"));
    assert_false(match(a, "0:0:0:2::"));
    assert_true(match(a, "0:0:0:2::1"));
    assert_false(match(a, "0:0:0:2::2"));
    acl_free(a);
}

/* ---- allow and deny ---- */

static void
test_permits(void **state)
{
    struct acl *allow = BUILD("10.0.0.0/8", "2001:db8::/32");
    struct acl *deny = BUILD("10.66.0.0/16", "2001:db8:bad::/48");
    struct acl *empty = build(NULL, 0);

    (void)state;
    /* No lists: everyone. */
    assert_true(permits(NULL, NULL, "192.0.2.1"));
    assert_true(permits(empty, empty, "2001:db8::1"));
    /* Only deny: everyone but the denied. */
    assert_true(permits(NULL, deny, "192.0.2.1"));
    assert_false(permits(NULL, deny, "10.66.1.1"));
    assert_false(permits(empty, deny, "::ffff:10.66.1.1"));
    assert_false(permits(NULL, deny, "2001:db8:bad::1"));
    /* Only allow: only the allowed. */
    assert_true(permits(allow, NULL, "10.66.1.1"));
    assert_true(permits(allow, NULL, "::ffff:10.1.1.1"));
    assert_false(permits(allow, NULL, "192.0.2.1"));
    assert_false(permits(allow, NULL, "::1"));
    /* Both: deny wins inside allow. */
    assert_true(permits(allow, deny, "10.1.1.1"));
    assert_false(permits(allow, deny, "10.66.1.1"));
    assert_true(permits(allow, deny, "2001:db8:bad0::1"));
    assert_false(permits(allow, deny, "2001:db8:bad:1::1"));
    assert_false(permits(allow, deny, "192.0.2.1"));
    /* An allow list of one family refuses the other family entirely. */
    {
        struct acl *only4 = BUILD("0.0.0.0/0");

        assert_true(permits(only4, NULL, "::ffff:192.0.2.1"));
        assert_false(permits(only4, NULL, "2001:db8::1"));
        acl_free(only4);
    }
    acl_free(allow);
    acl_free(deny);
    acl_free(empty);
}

/* The last reference frees (ASan reports a leak or a double free). */
static void
test_references(void **state)
{
    struct acl *a = BUILD("10.0.0.0/8");

    (void)state;
    assert_ptr_equal(acl_ref(a), a);
    assert_ptr_equal(acl_ref(a), a);
    acl_free(a);
    acl_free(a);
    assert_true(match(a, "10.0.0.1")); /* one reference left */
    acl_free(a);
}

/* ---- 100,000 random prefixes against a reference ---- */

#define RND_PREFIXES 100000
#define RND_LOOKUPS 1000000

/* The reference: for each prefix length, the sorted networks of that
 * length. An address is in the list when, cut to some length in use, it
 * is one of that length's networks. IPv4 (and mapped) as 32-bit values,
 * IPv6 as two words. */
struct ref6 {
    uint64_t hi, lo;
};

struct ref {
    uint32_t *net4[33];
    size_t n4[33];
    struct ref6 *net6[129];
    size_t n6[129];
};

static uint64_t rnd_state;

static uint64_t
rnd(void)
{
    /* splitmix64 */
    uint64_t z = (rnd_state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint32_t
mask4(unsigned len)
{
    return len == 0 ? 0 : UINT32_MAX << (32 - len);
}

static struct ref6
mask6(struct ref6 a, unsigned len)
{
    struct ref6 m;

    m.hi = len == 0 ? 0 : len >= 64 ? UINT64_MAX : UINT64_MAX << (64 - len);
    m.lo = len <= 64 ? 0 : UINT64_MAX << (128 - len);
    a.hi &= m.hi;
    a.lo &= m.lo;
    return a;
}

static int
cmp32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return (x > y) - (x < y);
}

static int
cmp128(const void *a, const void *b)
{
    const struct ref6 *x = a, *y = b;

    if (x->hi != y->hi) {
        return (x->hi > y->hi) - (x->hi < y->hi);
    }
    return (x->lo > y->lo) - (x->lo < y->lo);
}

static void
ref_add4(struct ref *r, uint32_t net, unsigned len)
{
    r->net4[len] = realloc(r->net4[len], (r->n4[len] + 1) * sizeof(uint32_t));
    assert_non_null(r->net4[len]);
    r->net4[len][r->n4[len]++] = net;
}

static void
ref_add6(struct ref *r, struct ref6 net, unsigned len)
{
    r->net6[len] =
        realloc(r->net6[len], (r->n6[len] + 1) * sizeof(struct ref6));
    assert_non_null(r->net6[len]);
    r->net6[len][r->n6[len]++] = net;
}

static void
ref_sort(struct ref *r)
{
    for (unsigned l = 0; l <= 32; l++) {
        if (r->n4[l] > 0) {
            qsort(r->net4[l], r->n4[l], sizeof(uint32_t), cmp32);
        }
    }
    for (unsigned l = 0; l <= 128; l++) {
        if (r->n6[l] > 0) {
            qsort(r->net6[l], r->n6[l], sizeof(struct ref6), cmp128);
        }
    }
}

/* Whether key is in the sorted v[0..n): a plain binary search. */
static bool
has4(const uint32_t *v, size_t n, uint32_t key)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (v[mid] == key) {
            return true;
        }
        if (v[mid] < key) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return false;
}

static bool
has6(const struct ref6 *v, size_t n, struct ref6 key)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (v[mid].hi == key.hi && v[mid].lo == key.lo) {
            return true;
        }
        if (v[mid].hi < key.hi || (v[mid].hi == key.hi && v[mid].lo < key.lo)) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return false;
}

static bool
ref_match4(const struct ref *r, uint32_t a)
{
    for (unsigned l = 0; l <= 32; l++) {
        if (has4(r->net4[l], r->n4[l], a & mask4(l))) {
            return true;
        }
    }
    return false;
}

static bool
ref_match6(const struct ref *r, struct ref6 a)
{
    for (unsigned l = 0; l <= 128; l++) {
        if (has6(r->net6[l], r->n6[l], mask6(a, l))) {
            return true;
        }
    }
    return false;
}

static void
ref_free(struct ref *r)
{
    for (unsigned l = 0; l <= 32; l++) {
        free(r->net4[l]);
    }
    for (unsigned l = 0; l <= 128; l++) {
        free(r->net6[l]);
    }
}

/* IPv6 entries and addresses stay inside 2001:db8::/32, so that short
 * prefixes there hold longer ones and random addresses sometimes hit. */
static struct ref6
rnd6(void)
{
    struct ref6 a = {0x20010db800000000ULL | (rnd() & 0xffffffffULL), rnd()};

    return a;
}

/* Random prefix lengths: mostly long (many small ranges), a few short
 * (large ones that swallow others), chosen so that a few percent of each
 * space is covered and neither answer dominates. */
static unsigned
rnd_len4(void)
{
    return rnd() % 2000 == 0 ? 8 + (unsigned)(rnd() % 5)
                             : 16 + (unsigned)(rnd() % 17);
}

static unsigned
rnd_len6(void)
{
    return rnd() % 5000 == 0 ? 40 + (unsigned)(rnd() % 8)
                             : 48 + (unsigned)(rnd() % 81);
}

struct rnd_set {
    struct acl *acl;
    struct ref ref;
    uint32_t *lo4; /* the networks, to aim lookups at */
    struct ref6 *lo6;
    size_t n4, n6;
};

static void
rnd_set_build(struct rnd_set *s)
{
    struct acl_builder *b = acl_builder_new();
    char text[80], err[ACL_ERR_MAX];

    memset(s, 0, sizeof(*s));
    s->lo4 = calloc(RND_PREFIXES, sizeof(*s->lo4));
    s->lo6 = calloc(RND_PREFIXES, sizeof(*s->lo6));
    assert_non_null(b);
    assert_non_null(s->lo4);
    assert_non_null(s->lo6);
    for (size_t i = 0; i < RND_PREFIXES; i++) {
        uint64_t kind = rnd() % 10;

        if (kind < 5) { /* IPv4, written as IPv4 or as mapped IPv6 */
            unsigned len = rnd_len4();
            uint32_t net = (uint32_t)rnd() & mask4(len);
            struct in_addr in = {htonl(net)};
            char name[INET_ADDRSTRLEN];

            inet_ntop(AF_INET, &in, name, sizeof(name));
            if (kind == 0) {
                snprintf(text, sizeof(text), "::ffff:%s/%u", name, len + 96);
            } else {
                snprintf(text, sizeof(text), "%s/%u", name, len);
            }
            ref_add4(&s->ref, net, len);
            s->lo4[s->n4++] = net;
        } else {
            unsigned len = rnd_len6();
            struct ref6 net = mask6(rnd6(), len);
            struct in6_addr in6;
            char name[INET6_ADDRSTRLEN];

            for (int k = 0; k < 8; k++) {
                in6.s6_addr[k] = (uint8_t)(net.hi >> (56 - 8 * k));
                in6.s6_addr[8 + k] = (uint8_t)(net.lo >> (56 - 8 * k));
            }
            inet_ntop(AF_INET6, &in6, name, sizeof(name));
            snprintf(text, sizeof(text), "%s/%u", name, len);
            ref_add6(&s->ref, net, len);
            s->lo6[s->n6++] = net;
        }
        if (acl_add(b, text, err, sizeof(err)) != 0) {
            acl_builder_free(b);
            fail_msg("%s: %s", text, err);
        }
    }
    s->acl = acl_build(b);
    assert_non_null(s->acl);
    assert_int_equal(acl_count(s->acl), RND_PREFIXES);
    assert_true(acl_ranges(s->acl) < RND_PREFIXES); /* some merged */
    ref_sort(&s->ref);
}

static void
rnd_set_free(struct rnd_set *s)
{
    acl_free(s->acl);
    ref_free(&s->ref);
    free(s->lo4);
    free(s->lo6);
}

/* A random address: uniform, or next to or inside a random entry, in
 * each family, and as IPv4-mapped IPv6; the reference's answer in *want. */
static void
rnd_addr(const struct rnd_set *s, struct sockaddr_storage *ss, bool *want)
{
    uint64_t kind = rnd() % 8;

    memset(ss, 0, sizeof(*ss));
    if (kind < 4) {
        uint32_t a = (uint32_t)rnd();

        if (kind >= 1) { /* near an entry's network address */
            a = s->lo4[rnd() % s->n4] + (uint32_t)(rnd() % 5) - 2;
        }
        if (kind == 3) { /* as a dual-stack socket reports it */
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
            uint32_t be = htonl(a);

            sin6->sin6_family = AF_INET6;
            sin6->sin6_addr.s6_addr[10] = 0xff;
            sin6->sin6_addr.s6_addr[11] = 0xff;
            memcpy(&sin6->sin6_addr.s6_addr[12], &be, 4);
        } else {
            struct sockaddr_in *sin = (struct sockaddr_in *)ss;

            sin->sin_family = AF_INET;
            sin->sin_addr.s_addr = htonl(a);
        }
        *want = ref_match4(&s->ref, a);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        struct ref6 a = rnd6();

        if (kind >= 5) {
            a = s->lo6[rnd() % s->n6];
            if (kind == 6) { /* just below it: borrow across the words */
                if (a.lo-- == 0) {
                    a.hi--;
                }
            } else if (kind == 7) {
                a.lo += rnd() % 3;
            }
        }
        sin6->sin6_family = AF_INET6;
        for (int k = 0; k < 8; k++) {
            sin6->sin6_addr.s6_addr[k] = (uint8_t)(a.hi >> (56 - 8 * k));
            sin6->sin6_addr.s6_addr[8 + k] = (uint8_t)(a.lo >> (56 - 8 * k));
        }
        *want = ref_match6(&s->ref, a);
    }
}

static uint64_t
test_seed(void)
{
    const char *env = getenv("ECHOD_TEST_SEED");
    uint64_t seed = env != NULL && *env != '\0'
                        ? strtoull(env, NULL, 0)
                        : (uint64_t)time(NULL) ^ (uint64_t)clock();

    fprintf(stderr, "test_acl: seed %llu (ECHOD_TEST_SEED replays it)\n",
            (unsigned long long)seed);
    return seed;
}

static void
test_random_against_reference(void **state)
{
    struct rnd_set s;
    size_t hits = 0, v6 = 0;

    (void)state;
    rnd_state = test_seed();
    rnd_set_build(&s);
    for (size_t i = 0; i < RND_LOOKUPS; i++) {
        struct sockaddr_storage ss;
        bool want, got;
        char name[SOCK_NAME_MAX];

        rnd_addr(&s, &ss, &want);
        got = acl_match(s.acl, (const struct sockaddr *)&ss);
        if (got != want) {
            fail_msg(
                "lookup %zu: %s: acl says %d, reference %d", i,
                sock_name((const struct sockaddr *)&ss, name, sizeof(name)),
                got, want);
        }
        hits += got;
        v6 += ss.ss_family == AF_INET6;
    }
    fprintf(stderr, "test_acl: %zu ranges, %zu hits, %zu IPv6\n",
            acl_ranges(s.acl), hits, v6);
    /* The draw tests both answers, both families, in earnest. */
    assert_true(hits > RND_LOOKUPS / 10 && hits < RND_LOOKUPS * 9 / 10);
    assert_true(v6 > RND_LOOKUPS / 4);
    rnd_set_free(&s);
}

/* ---- several threads on one list ---- */

#define THR_N 4
#define THR_LOOKUPS 50000

struct thr_job {
    struct acl *acl; /* the thread's own reference */
    const struct sockaddr_storage *ss;
    const bool *want;
    size_t wrong;
};

static void *
thr_run(void *arg)
{
    struct thr_job *j = arg;

    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < THR_LOOKUPS; i++) {
            j->wrong += acl_match(j->acl, (const struct sockaddr *)&j->ss[i]) !=
                        j->want[i];
        }
    }
    return NULL;
}

/* Read-only lookups need no lock: the same answers from every thread
 * (and under ThreadSanitizer, no race). */
static void
test_concurrent_lookups(void **state)
{
    struct sockaddr_storage *ss = calloc(THR_LOOKUPS, sizeof(*ss));
    bool *want = calloc(THR_LOOKUPS, sizeof(*want));
    struct thr_job job[THR_N];
    pthread_t th[THR_N];
    struct rnd_set s;

    (void)state;
    assert_non_null(ss);
    assert_non_null(want);
    rnd_state = test_seed();
    rnd_set_build(&s);
    for (size_t i = 0; i < THR_LOOKUPS; i++) {
        rnd_addr(&s, &ss[i], &want[i]);
    }
    for (int t = 0; t < THR_N; t++) {
        job[t] = (struct thr_job){acl_ref(s.acl), ss, want, 0};
        assert_int_equal(pthread_create(&th[t], NULL, thr_run, &job[t]), 0);
    }
    for (int t = 0; t < THR_N; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        assert_int_equal(job[t].wrong, 0);
        acl_free(job[t].acl);
    }
    rnd_set_free(&s);
    free(ss);
    free(want);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_error_buffer),
        cmocka_unit_test(test_match_edges),
        cmocka_unit_test(test_mapped_is_ipv4),
        cmocka_unit_test(test_other_family_and_null),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_merge_keeps_edges),
        cmocka_unit_test(test_permits),
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_random_against_reference),
        cmocka_unit_test(test_concurrent_lookups),
    };

    t_deadline(100);
    return cmocka_run_group_tests_name("acl", tests, NULL, NULL);
}
