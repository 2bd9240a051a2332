/*
 * test_stats.c - per-listener counter slots: one slot per entry id
 * shared by its socket and its connections, kept while any of them
 * holds it (a listener closed by a reload with connections still open),
 * reused from zero only when nobody does, slot 0 when every slot is
 * taken; sums per entry and over all slots; the echo delay histogram's
 * buckets (decades 1 us .. 10 s, +Inf) and sum.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>

#include "counter.h"
#include "stats.h"

static struct sts_tab *
tab_new(void)
{
    struct sts_tab *t = malloc(sizeof(*t));

    assert_non_null(t);
    sts_tab_init(t);
    return t;
}

static void
test_slot_per_entry(void **state)
{
    struct sts_tab *t = tab_new();
    struct sts_ctr sum = {0};
    uint8_t a = sts_take(t, 7);
    uint8_t b = sts_take(t, 9);

    (void)state;
    assert_int_not_equal(a, 0);
    assert_int_not_equal(b, 0);
    assert_int_not_equal(a, b);
    assert_int_equal(sts_take(t, 7), a); /* a conn of the same entry */
    ctr_add(&t->slot[a].c.accepted, 3);
    ctr_add(&t->slot[b].c.accepted, 5);
    sts_sum_entry(t, 7, &sum);
    assert_int_equal(ctr_get(&sum.accepted), 3);
    sts_sum_all(t, &sum);
    assert_int_equal(ctr_get(&sum.accepted), 3 + 8);
    assert_int_equal(sts_take(t, 0), 0); /* id 0: no entry */
    free(t);
}

static void
test_slot_outlives_listener(void **state)
{
    struct sts_tab *t = tab_new();
    uint8_t sock = sts_take(t, 7);
    struct sts_ctr sum = {0};

    (void)state;
    sts_hold(t, sock); /* a connection */
    ctr_add(&t->slot[sock].c.bytes_in, 100);
    sts_put(t, sock); /* the reload closed the listener */
    /* Still held by the connection: a new entry gets another slot. */
    assert_int_not_equal(sts_take(t, 8), sock);
    sts_sum_entry(t, 7, &sum);
    assert_int_equal(ctr_get(&sum.bytes_in), 100);
    sts_put(t, sock); /* the connection closes: now free */
    uint8_t again = sts_take(t, 9);
    assert_int_equal(again, sock); /* reused, from zero */
    assert_int_equal(ctr_get(&t->slot[again].c.bytes_in), 0);
    free(t);
}

static void
test_slots_run_out(void **state)
{
    struct sts_tab *t = tab_new();

    (void)state;
    for (uint32_t id = 1; id < STS_SLOTS; id++) {
        assert_int_equal(sts_take(t, id), id);
    }
    assert_int_equal(sts_take(t, 1000), 0);
    sts_put(t, 0); /* slot 0 is never freed */
    assert_int_equal(t->slot[0].users, 1);
    sts_put(t, 5);
    assert_int_equal(sts_take(t, 1001), 5);
    free(t);
}

static void
test_histogram(void **state)
{
    struct sts_tab *t = tab_new();
    uint64_t hist[STS_HIST_BUCKETS + 1] = {0};
    uint64_t sum_us = 0;

    (void)state;
    sts_delay_zero(t);      /* sent at once: <= 1 us */
    sts_delay_ms(t, 0);     /* queued, same tick: counted as 1 ms */
    sts_delay_ms(t, 1);     /* <= 1 ms */
    sts_delay_ms(t, 2);     /* <= 10 ms */
    sts_delay_ms(t, 10000); /* <= 10 s */
    sts_delay_ms(t, 10001); /* +Inf */
    sts_sum_hist(t, hist, &sum_us);
    assert_int_equal(hist[0], 1);
    assert_int_equal(hist[3], 2);
    assert_int_equal(hist[4], 1);
    assert_int_equal(hist[7], 1);
    assert_int_equal(hist[STS_HIST_BUCKETS], 1);
    assert_int_equal(sum_us, (1 + 1 + 2 + 10000 + 10001) * 1000);
    assert_true(sts_bucket_le(0) == 1e-6);
    assert_true(sts_bucket_le(3) > 0.00099 && sts_bucket_le(3) < 0.00101);
    assert_true(sts_bucket_le(7) > 9.99 && sts_bucket_le(7) < 10.01);
    free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_per_entry),
        cmocka_unit_test(test_slot_outlives_listener),
        cmocka_unit_test(test_slots_run_out),
        cmocka_unit_test(test_histogram),
    };

    return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
