/*
 * test_snap.c - the connection listing's order and its shared snapshot:
 * busiest (bytes in + out) first, then the oldest; a snapshot is freed
 * by whichever of its two holders lets go last.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>

#include "snap.h"

static void
test_order(void **state)
{
    struct snap_conn v[4] = {
        {.lsn_id = 1, .rx = 10, .tx = 0, .age_ms = 5},
        {.lsn_id = 2, .rx = 1, .tx = 30, .age_ms = 1},
        {.lsn_id = 3, .rx = 5, .tx = 5, .age_ms = 9},
        {.lsn_id = 4, .rx = 0, .tx = 0, .age_ms = 1},
    };

    (void)state;
    qsort(v, 4, sizeof(v[0]), snap_cmp);
    assert_int_equal(v[0].lsn_id, 2); /* 31 bytes */
    assert_int_equal(v[1].lsn_id, 3); /* 10 bytes, older */
    assert_int_equal(v[2].lsn_id, 1); /* 10 bytes */
    assert_int_equal(v[3].lsn_id, 4);
}

/* Two holds: the first put leaves it whole (ASan would see a use after
 * free otherwise), the second frees it (LSan would see a leak). */
static void
test_two_holders(void **state)
{
    struct snap *s = snap_new(3);

    (void)state;
    assert_non_null(s);
    assert_int_equal(s->limit, 3);
    assert_false(atomic_load(&s->filled));
    snap_put(s);
    s->v[2].rx = 7; /* still the other holder's */
    assert_int_equal(atomic_load(&s->refs), 1);
    snap_put(s);
    snap_put(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_two_holders),
    };

    return cmocka_run_group_tests_name("snap", tests, NULL, NULL);
}
