/*
 * test_srcrate.c - the per-source bucket table: burst and refill, what
 * counts as one source (by default an IPv4 address, IPv4-mapped alike, an
 * IPv6 /64, any port; other prefix lengths as configured), a fixed size
 * under a flood of fresh sources that never forgets a source being held
 * back (by its reply or its byte bucket), a reply's bytes taken from both
 * buckets or neither, and limits and prefixes reset the table only on
 * change.
 * Pure data structure: addresses are built in memory, time is passed in.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sock.h"
#include "srcrate.h"
#include "unit.h"

static struct srate t;

static int
setup(void **state)
{
    (void)state;
    return srate_init(&t, 1, 2, 32, 64);
}

static int
teardown(void **state)
{
    (void)state;
    srate_fini(&t);
    return 0;
}

/* Take until refused (at most 100); returns how many were granted. */
static int
drain(const struct sockaddr *s, uint64_t now)
{
    int n = 0;

    while (n < 100 && srate_take(&t, s, 0, now) == SRATE_PASS) {
        n++;
    }
    return n;
}

static void
test_burst_then_rate(void **state)
{
    (void)state;
    srate_configure(&t, 2, 3, 0, 0, 32, 64);
    assert_int_equal(drain(t_sa("192.0.2.1", 4000), 1000), 3);
    assert_int_equal(drain(t_sa("192.0.2.1", 4000), 1499), 0);
    assert_int_equal(drain(t_sa("192.0.2.1", 4000), 1500), 1);
    assert_int_equal(drain(t_sa("192.0.2.1", 4000), 2500), 2);
    assert_int_equal(drain(t_sa("192.0.2.1", 4000), 99999), 3); /* capped */
}

static void
test_what_is_one_source(void **state)
{
    (void)state;
    /* Any port of one IPv4 address; IPv4-mapped is the same address. */
    assert_int_equal(drain(t_sa("192.0.2.1", 4000), 0), 2);
    assert_int_equal(drain(t_sa("192.0.2.1", 5000), 0), 0);
    assert_int_equal(drain(t_sa("::ffff:192.0.2.1", 6000), 0), 0);
    assert_int_equal(drain(t_sa("192.0.2.2", 4000), 0), 2);
    /* One IPv6 /64, whatever the host part; another /64 is another. */
    assert_int_equal(drain(t_sa("2001:db8:0:1::1", 4000), 0), 2);
    assert_int_equal(drain(t_sa("2001:db8:0:1:ffff::9", 4000), 0), 0);
    assert_int_equal(drain(t_sa("2001:db8:0:2::1", 4000), 0), 2);
    /* ::1 and the IPv4 space do not collide. */
    assert_int_equal(drain(t_sa("::1", 4000), 0), 2);
    assert_int_equal(drain(t_sa("0.0.0.1", 4000), 0), 2);
}

/* Ten times more fresh sources than slots, on a clock that stands still:
 * each gets its burst, and a source being held back (its bucket empty,
 * the others' not) keeps its slot, so it stays held back. With the least
 * recently used policy it would be forgotten and come back full. */
static void
test_bounded_and_keeps_the_held_back(void **state)
{
    struct sockaddr_storage keep;
    const struct sockaddr *busy = (const struct sockaddr *)&keep;
    char addr[32];

    (void)state;
    memcpy(&keep, t_sa("198.51.100.7", 4000), sizeof(keep));
    assert_int_equal(drain(busy, 0), 2);
    for (int i = 0; i < 10 * SRATE_SLOTS; i++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.%d", (i >> 16) & 255,
                 (i >> 8) & 255, i & 255);
        assert_int_equal(srate_take(&t, t_sa(addr, 4000), 0, 0), SRATE_PASS);
        if (i % 7 == 0) {
            assert_int_equal(srate_take(&t, busy, 0, 0), SRATE_OVER_RATE);
        }
    }
    assert_int_equal(srate_take(&t, busy, 0, 0), SRATE_OVER_RATE);
}

static void
test_configure_resets_only_on_change(void **state)
{
    (void)state;
    assert_int_equal(drain(t_sa("192.0.2.9", 1), 0), 2);
    srate_configure(&t, 1, 2, 0, 0, 32, 64); /* the same: keep the state */
    assert_int_equal(drain(t_sa("192.0.2.9", 1), 0), 0);
    srate_configure(&t, 1, 5, 0, 0, 32, 64); /* changed: all start afresh */
    assert_int_equal(drain(t_sa("192.0.2.9", 1), 0), 5);
    /* Other prefixes make other sources: afresh as well. */
    srate_configure(&t, 1, 5, 0, 0, 32, 56);
    assert_int_equal(drain(t_sa("192.0.2.9", 1), 0), 5);
    srate_configure(&t, 1, 5, 0, 0, 31, 56);
    assert_int_equal(drain(t_sa("192.0.2.9", 1), 0), 5);
    /* A byte limit turned on, or changed, is a change too. */
    srate_configure(&t, 1, 5, 100, 200, 31, 56);
    assert_int_equal(drain(t_sa("192.0.2.9", 1), 0), 5);
    srate_configure(&t, 1, 5, 100, 300, 31, 56);
    assert_int_equal(drain(t_sa("192.0.2.9", 1), 0), 5);
    srate_configure(&t, 1, 5, 100, 300, 31, 56);
    assert_int_equal(drain(t_sa("192.0.2.9", 1), 0), 0);
}

/* The byte bucket: a reply takes as many tokens as it has bytes, and it
 * must pass both buckets. One refused for its size takes nothing from
 * either, so a source sending large datagrams over its byte budget still
 * gets its small ones answered; the reply bucket is asked first. */
static void
test_bytes_both_or_neither(void **state)
{
    const struct sockaddr *a;
    struct sockaddr_storage keep;

    (void)state;
    /* 3 replies at once, 1000 bytes a second with 3000 at once. */
    srate_configure(&t, 1, 3, 1000, 3000, 32, 64);
    memcpy(&keep, t_sa("192.0.2.5", 4000), sizeof(keep));
    a = (const struct sockaddr *)&keep;
    assert_int_equal(srate_take(&t, a, 2000, 0), SRATE_PASS);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(srate_take(&t, a, 1001, 0), SRATE_OVER_BYTES);
    }
    /* Those refusals took no reply token and no byte: two replies and
     * 1000 bytes are left. */
    assert_int_equal(srate_take(&t, a, 600, 0), SRATE_PASS);
    assert_int_equal(srate_take(&t, a, 400, 0), SRATE_PASS);
    assert_int_equal(srate_take(&t, a, 0, 0), SRATE_OVER_RATE);
    /* Reply bucket first: empty, whatever the bytes say. */
    assert_int_equal(srate_take(&t, a, 5000, 0), SRATE_OVER_RATE);
    /* A second later: one reply and 1000 bytes. */
    assert_int_equal(srate_take(&t, a, 1001, 1000), SRATE_OVER_BYTES);
    assert_int_equal(srate_take(&t, a, 1000, 1000), SRATE_PASS);
    /* Another source has its own byte bucket. */
    assert_int_equal(srate_take(&t, t_sa("192.0.2.6", 4000), 3000, 1000),
                     SRATE_PASS);
}

/* Byte rate 0: no byte limit, any size passes while replies are left. */
static void
test_bytes_off(void **state)
{
    (void)state;
    srate_configure(&t, 1, 3, 0, 0, 32, 64);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(srate_take(&t, t_sa("192.0.2.7", 4000), 65507, 0),
                         SRATE_PASS);
    }
    assert_int_equal(srate_take(&t, t_sa("192.0.2.7", 4000), 0, 0),
                     SRATE_OVER_RATE);
}

/* A source held back by its byte bucket alone (reply tokens to spare) is
 * not the one a fresh source replaces: under a flood of fresh sources
 * that each spend more reply tokens than it did, it stays held back. */
static void
test_bounded_keeps_the_held_back_by_bytes(void **state)
{
    struct sockaddr_storage keep;
    const struct sockaddr *busy = (const struct sockaddr *)&keep;
    char addr[32];

    (void)state;
    srate_configure(&t, 1, 100, 1, 1000, 32, 64);
    memcpy(&keep, t_sa("198.51.100.8", 4000), sizeof(keep));
    assert_int_equal(srate_take(&t, busy, 1000, 0), SRATE_PASS);
    for (int i = 0; i < 10 * SRATE_SLOTS; i++) {
        const struct sockaddr *s;

        snprintf(addr, sizeof(addr), "10.%d.%d.%d", (i >> 16) & 255,
                 (i >> 8) & 255, i & 255);
        s = t_sa(addr, 4000);
        assert_int_equal(srate_take(&t, s, 1, 0), SRATE_PASS);
        assert_int_equal(srate_take(&t, s, 1, 0), SRATE_PASS);
    }
    assert_int_equal(srate_take(&t, busy, 1000, 0), SRATE_OVER_BYTES);
}

/* The prefix lengths decide what one source is, as for TCP: under /24,
 * 10.0.0.1 and 10.0.0.2 (mapped or not) share one bucket; under /32 each
 * has its own. IPv6 likewise by prefix6. */
static void
test_prefix_lengths(void **state)
{
    (void)state;
    srate_configure(&t, 1, 2, 0, 0, 24, 64);
    assert_int_equal(drain(t_sa("10.0.0.1", 4000), 0), 2);
    assert_int_equal(drain(t_sa("10.0.0.2", 4000), 0), 0);
    assert_int_equal(drain(t_sa("::ffff:10.0.0.200", 4000), 0), 0);
    assert_int_equal(drain(t_sa("10.0.1.1", 4000), 0), 2);

    srate_configure(&t, 1, 2, 0, 0, 32, 64);
    assert_int_equal(drain(t_sa("10.0.0.1", 4000), 0), 2);
    assert_int_equal(drain(t_sa("10.0.0.2", 4000), 0), 2);

    srate_configure(&t, 1, 2, 0, 0, 32, 48);
    assert_int_equal(drain(t_sa("2001:db8:1:2::1", 4000), 0), 2);
    assert_int_equal(drain(t_sa("2001:db8:1:3::1", 4000), 0), 0);
    assert_int_equal(drain(t_sa("2001:db8:2::1", 4000), 0), 2);
    srate_configure(&t, 1, 2, 0, 0, 32, 128);
    assert_int_equal(drain(t_sa("2001:db8:1:2::1", 4000), 0), 2);
    assert_int_equal(drain(t_sa("2001:db8:1:2::2", 4000), 0), 2);
}

/* A table made with other prefixes uses them from its first take. */
static void
test_prefix_lengths_from_init(void **state)
{
    (void)state;
    srate_fini(&t);
    assert_int_equal(srate_init(&t, 1, 1, 24, 48), 0);
    assert_int_equal(srate_take(&t, t_sa("10.0.0.1", 4000), 0, 0), SRATE_PASS);
    assert_int_equal(srate_take(&t, t_sa("10.0.0.2", 4000), 0, 0),
                     SRATE_OVER_RATE);
    assert_int_equal(srate_take(&t, t_sa("2001:db8:1:2::1", 4000), 0, 0),
                     SRATE_PASS);
    assert_int_equal(srate_take(&t, t_sa("2001:db8:1:3::1", 4000), 0, 0),
                     SRATE_OVER_RATE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_then_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_what_is_one_source, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bounded_and_keeps_the_held_back,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_configure_resets_only_on_change,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefix_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefix_lengths_from_init, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bytes_both_or_neither, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bytes_off, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_bounded_keeps_the_held_back_by_bytes, setup, teardown),
    };

    t_deadline(60);
    return cmocka_run_group_tests_name("srcrate", tests, NULL, NULL);
}
