/*
 * test_stsess.c - the STAMP reflector's session table: a new session's
 * sequence numbers start at 0 and count its replies; what one session is
 * (peer and local address and port, SSID; IPv4-mapped as IPv4); expiry
 * after idle_ms; a flood of spoofed sources never evicts an active
 * session, and a refused one is NULL and counted; transmit stamps reach
 * only the session that awaits them, never a newer occupant of its slot.
 * Pure data structure: addresses are built in memory, time is passed in.
 * A table of STSS_WAYS slots is a single set, which lets a test fill the
 * set a session lives in without knowing the secret.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "counter.h"
#include "sock.h"
#include "stsess.h"
#include "unit.h"

#define IDLE_MS ((uint64_t)10000)

static struct stss t;

static int
setup(void **state)
{
    (void)state;
    return stss_init(&t, STSS_SLOTS, IDLE_MS);
}

/* One set: every session competes for the same STSS_WAYS slots. */
static int
setup_one_set(void **state)
{
    (void)state;
    return stss_init(&t, STSS_WAYS, IDLE_MS);
}

static int
teardown(void **state)
{
    (void)state;
    stss_fini(&t);
    return 0;
}

/* Copy a to *ss, to keep it past four more t_sa() calls. */
static const struct sockaddr *
keep(struct sockaddr_storage *ss, const struct sockaddr *a)
{
    memcpy(ss, a, sizeof(*ss));
    return (const struct sockaddr *)ss;
}

/* The reflector's usual end of a session. */
static const struct sockaddr *
here(void)
{
    return t_sa("192.0.2.100", 862);
}

/* The n-th spoofed source: 10.x.y.z port 4000. */
static const struct sockaddr *
spoofed(int n)
{
    char addr[32];

    snprintf(addr, sizeof(addr), "10.%d.%d.%d", (n >> 16) & 255, (n >> 8) & 255,
             n & 255);
    return t_sa(addr, 4000);
}

static struct stss_sess *
get(const struct sockaddr *peer, const struct sockaddr *local, uint16_t ssid,
    uint64_t now)
{
    return stss_get(&t, peer, local, ssid, now);
}

/* One test packet and its reply: the reply's sequence number, or -1 if
 * the session was refused. */
static long
reply(const struct sockaddr *peer, const struct sockaddr *local, uint16_t ssid,
      uint64_t now)
{
    struct stss_sess *s = get(peer, local, ssid, now);

    return s == NULL ? -1 : (long)stss_sent(s);
}

/* The same, to here() with SSID 1. */
static long
exchange(const struct sockaddr *peer, uint64_t now)
{
    return reply(peer, here(), 1, now);
}

static void
test_seq_from_zero(void **state)
{
    struct stss_sess *s;

    (void)state;
    s = get(t_sa("198.51.100.7", 5000), here(), 7, 0);
    assert_non_null(s);
    assert_int_equal(s->next_seq, 0);
    assert_int_equal(s->rx, 1);
    assert_int_equal(s->tx, 0);
    assert_int_equal(stss_sent(s), 0);
    assert_int_equal(stss_sent(s), 1);
    assert_int_equal(s->tx, 2);
    assert_ptr_equal(get(t_sa("198.51.100.7", 5000), here(), 7, 10), s);
    assert_int_equal(s->rx, 2);
    assert_int_equal(stss_sent(s), 2);
    assert_int_equal(ctr_get(&t.created), 1);
}

/* Each part of the key makes another session, which starts at 0 while
 * the first goes on. */
static void
test_what_is_one_session(void **state)
{
    (void)state;
    for (long want = 0; want < 3; want++) {
        assert_int_equal(exchange(t_sa("198.51.100.7", 5000), 0), want);
    }
    /* Another SSID, peer port, peer address, local address, local port. */
    assert_int_equal(reply(t_sa("198.51.100.7", 5000), here(), 2, 0), 0);
    assert_int_equal(exchange(t_sa("198.51.100.7", 5001), 0), 0);
    assert_int_equal(exchange(t_sa("198.51.100.8", 5000), 0), 0);
    assert_int_equal(
        reply(t_sa("198.51.100.7", 5000), t_sa("192.0.2.101", 862), 1, 0), 0);
    assert_int_equal(
        reply(t_sa("198.51.100.7", 5000), t_sa("192.0.2.100", 863), 1, 0), 0);
    /* IPv4-mapped is IPv4, at either end. */
    assert_int_equal(reply(t_sa("::ffff:198.51.100.7", 5000),
                           t_sa("::ffff:192.0.2.100", 862), 1, 0),
                     3);
    assert_int_equal(
        reply(t_sa("198.51.100.7", 5000), t_sa("::ffff:192.0.2.100", 862), 1, 0),
        4);
    /* IPv6 alike; and ::c633:6407 is not 198.51.100.7. */
    for (long want = 0; want < 2; want++) {
        assert_int_equal(
            reply(t_sa("2001:db8::7", 5000), t_sa("2001:db8::100", 862), 1, 0),
            want);
    }
    assert_int_equal(exchange(t_sa("::c633:6407", 5000), 0), 0);
    assert_int_equal(exchange(t_sa("198.51.100.7", 5000), 0), 5);
    assert_int_equal(ctr_get(&t.created), 8);
}

/* Another family is no session, and not a refusal either. */
static void
test_other_family(void **state)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};

    (void)state;
    assert_null(get((const struct sockaddr *)&un, here(), 1, 0));
    assert_null(
        get(t_sa("198.51.100.7", 5000), (const struct sockaddr *)&un, 1, 0));
    assert_int_equal(ctr_get(&t.created), 0);
    assert_int_equal(ctr_get(&t.refused), 0);
}

static void
test_idle_expiry(void **state)
{
    struct sockaddr_storage ss;
    const struct sockaddr *p = keep(&ss, t_sa("198.51.100.7", 5000));

    (void)state;
    assert_int_equal(exchange(p, 1000), 0);
    assert_int_equal(exchange(p, 1000 + IDLE_MS - 1), 1); /* kept alive */
    assert_int_equal(exchange(p, 1000 + 2 * IDLE_MS - 2), 2);
    /* Quiet for idle_ms: over, and the same key starts again. */
    assert_int_equal(exchange(p, 1000 + 3 * IDLE_MS - 2), 0);
    assert_int_equal(get(p, here(), 1, 1000 + 3 * IDLE_MS)->rx, 2);
    assert_int_equal(ctr_get(&t.created), 2);
    assert_int_equal(ctr_get(&t.evicted), 0);
}

/* idle_ms may change between calls (a reload). */
static void
test_idle_change(void **state)
{
    struct sockaddr_storage ss;
    const struct sockaddr *p = keep(&ss, t_sa("198.51.100.7", 5000));

    (void)state;
    assert_int_equal(exchange(p, 0), 0);
    t.idle_ms = 500;
    assert_int_equal(exchange(p, 499), 1);
    assert_int_equal(exchange(p, 999), 0);
}

/* A single set, full of live sessions: an active one is never evicted;
 * a new one is refused (NULL, counted) while every session is recent,
 * and then takes only a slot quiet for STSS_MIN_IDLE_MS. */
static void
test_flood_one_set(void **state)
{
    struct sockaddr_storage ss;
    const struct sockaddr *real = keep(&ss, t_sa("198.51.100.7", 5000));
    uint64_t now = 0;
    long seq = 0;
    int n = 0;

    (void)state;
    assert_int_equal(exchange(real, now), seq++);
    for (; n < STSS_WAYS - 1; n++) {
        assert_int_not_equal(exchange(spoofed(n), now), -1);
    }
    /* Full, all recent: refused, whatever their age order. */
    for (; n < 100; n++) {
        assert_int_equal(exchange(spoofed(n), now + (uint64_t)n), -1);
        if (n % 10 == 0) {
            assert_int_equal(exchange(real, now + (uint64_t)n), seq++);
        }
    }
    assert_int_equal(ctr_get(&t.refused), 100 - (STSS_WAYS - 1));
    assert_int_equal(ctr_get(&t.evicted), 0);
    /* A second on, the real session still active, the spoofed ones quiet:
     * new sessions push out the spoofed ones, one each, never the real
     * one, even when it is the oldest of the set by creation. */
    now = STSS_MIN_IDLE_MS;
    for (int i = 0; i < 3 * STSS_WAYS; i++, n++) {
        long got = exchange(spoofed(n), now + (uint64_t)i);

        assert_int_equal(got, i < STSS_WAYS - 1 ? 0 : -1);
        assert_int_equal(exchange(real, now + (uint64_t)i), seq++);
    }
    assert_int_equal(ctr_get(&t.evicted), STSS_WAYS - 1);
    assert_int_equal(ctr_get(&t.refused),
                     100 - (STSS_WAYS - 1) + 2 * STSS_WAYS + 1);
    /* A live session quiet for STSS_MIN_IDLE_MS is fair game. */
    now += 3 * STSS_WAYS + STSS_MIN_IDLE_MS;
    for (int i = 0; i < STSS_WAYS; i++, n++) {
        assert_int_equal(exchange(spoofed(n), now), 0);
    }
    assert_int_equal(exchange(real, now), -1);
    assert_int_equal(ctr_get(&t.evicted), 2 * STSS_WAYS - 1);
}

/* The full table under ten times more spoofed sources than slots, at
 * about twice the rate it can forget them: a session that sends every
 * 50 ms keeps counting from where it was, every spoofed packet either
 * gets a session or is counted as refused, and the table stays full. */
static void
test_flood_full_table(void **state)
{
    struct sockaddr_storage ss;
    const struct sockaddr *real = keep(&ss, t_sa("198.51.100.7", 5000));
    long seq = 0, got = 0;
    uint64_t now = 0;

    (void)state;
    for (int i = 0; i < 10 * STSS_SLOTS; i++) {
        now = (uint64_t)i / 8; /* 8000 new sources a second */
        if (exchange(spoofed(i), now) >= 0) {
            got++;
        }
        if (i % 400 == 0) {
            assert_int_equal(exchange(real, now), seq++);
        }
    }
    assert_true(ctr_get(&t.refused) > 0);
    assert_true(ctr_get(&t.evicted) > 0);
    assert_int_equal(got + (long)ctr_get(&t.refused), 10 * STSS_SLOTS);
    assert_int_equal(ctr_get(&t.created), (uint64_t)got + 1);
    assert_int_equal(exchange(real, now), seq);
}

static struct timespec
ts(long sec, long nsec)
{
    struct timespec x = {.tv_sec = sec, .tv_nsec = nsec};

    return x;
}

/* Reply S awaits stamp K; K brings its send time, which the next reply
 * carries as follow-up; then the next one, and so on. */
static void
test_stamp_followup(void **state)
{
    struct timespec at = ts(100, 5), got;
    struct stss_sess *s = get(t_sa("198.51.100.7", 5000), here(), 1, 0);
    uint32_t seq = 99;

    (void)state;
    assert_false(stss_followup(s, &seq, &got)); /* no reply yet */
    stss_await(&t, s, stss_sent(s), 1000);
    assert_false(stss_followup(s, &seq, &got)); /* stamp not in */
    assert_true(stss_stamped(&t, 1000, &at));
    assert_true(stss_followup(s, &seq, &got));
    assert_int_equal(seq, 0);
    assert_int_equal(got.tv_sec, 100);
    assert_int_equal(got.tv_nsec, 5);
    /* The same stamp again, or one never awaited: ignored. */
    at = ts(200, 0);
    assert_false(stss_stamped(&t, 1000, &at));
    assert_false(stss_stamped(&t, 1001, &at));
    assert_false(stss_stamped(&t, 1000 + STSS_STAMPS, &at));
    assert_int_equal(ctr_get(&t.stale), 3);
    assert_true(stss_followup(s, &seq, &got));
    assert_int_equal(got.tv_sec, 100);
    /* Reply 1 sent, its stamp late: no follow-up for reply 2 (reply 0's
     * time is not reply 1's), until the stamp arrives. */
    assert_ptr_equal(get(t_sa("198.51.100.7", 5000), here(), 1, 10), s);
    stss_await(&t, s, stss_sent(s), 1001);
    assert_false(stss_followup(s, &seq, &got));
    assert_true(stss_stamped(&t, 1001, &at));
    assert_true(stss_followup(s, &seq, &got));
    assert_int_equal(seq, 1);
    assert_int_equal(got.tv_sec, 200);
    /* Reply 2's stamp never comes and reply 3 goes out: reply 2's stamp
     * would describe the reply before the previous one, so it is stale. */
    stss_await(&t, s, stss_sent(s), 1002);
    (void)stss_sent(s);
    assert_false(stss_stamped(&t, 1002, &at));
    stss_await(&t, s, 3, 1003);
    assert_true(stss_stamped(&t, 1003, &at));
    assert_true(stss_followup(s, &seq, &got));
    assert_int_equal(seq, 3);
}

/* A ring entry overwritten by a later await (same id modulo the ring):
 * the older stamp is stale, the newer one lands. */
static void
test_stamp_ring_overwritten(void **state)
{
    struct timespec at = ts(7, 0), got;
    struct stss_sess *a = get(t_sa("198.51.100.7", 5000), here(), 1, 0);
    struct stss_sess *b = get(t_sa("198.51.100.8", 5000), here(), 1, 0);
    uint32_t seq;

    (void)state;
    stss_await(&t, a, stss_sent(a), 5);
    stss_await(&t, b, stss_sent(b), 5 + STSS_STAMPS);
    assert_false(stss_stamped(&t, 5, &at));
    assert_false(stss_followup(a, &seq, &got));
    assert_true(stss_stamped(&t, 5 + STSS_STAMPS, &at));
    assert_true(stss_followup(b, &seq, &got));
}

/* A stamp awaited by a session whose slot now holds another session
 * (expired, evicted, or the same key started again) does not land. */
static void
test_stamp_recycled_slot(void **state)
{
    struct timespec at = ts(1, 0), got;
    struct stss_sess *a, *b;
    uint32_t seq;
    int n = 0;

    (void)state;
    /* a is the oldest of a full set; then every one expires. */
    a = get(t_sa("198.51.100.7", 5000), here(), 1, 0);
    stss_await(&t, a, stss_sent(a), 42);
    for (; n < STSS_WAYS - 1; n++) {
        assert_non_null(get(spoofed(n), here(), 1, 1 + (uint64_t)n));
    }
    b = get(t_sa("198.51.100.8", 5000), here(), 1, IDLE_MS + 100);
    assert_ptr_equal(b, a); /* the same slot, another session */
    assert_int_equal(b->next_seq, 0);
    stss_await(&t, b, stss_sent(b), 43);
    assert_false(stss_stamped(&t, 42, &at));
    assert_false(stss_followup(b, &seq, &got));
    assert_true(stss_stamped(&t, 43, &at));
    assert_true(stss_followup(b, &seq, &got));

    /* Evicted (live, quiet for STSS_MIN_IDLE_MS): the same. */
    stss_await(&t, b, stss_sent(b), 44);
    for (int i = 0; i < STSS_WAYS - 1; n++, i++) {
        assert_non_null(get(spoofed(n), here(), 1, IDLE_MS + 200));
    }
    a = get(t_sa("198.51.100.9", 5000), here(), 1,
            IDLE_MS + 100 + STSS_MIN_IDLE_MS);
    assert_ptr_equal(a, b);
    assert_int_equal(ctr_get(&t.evicted), 1);
    assert_false(stss_stamped(&t, 44, &at));
    assert_int_equal(a->tx, 0);
    assert_false(a->fu_valid);

    /* Expired and started again under its own key. */
    stss_await(&t, a, stss_sent(a), 45);
    b = get(t_sa("198.51.100.9", 5000), here(), 1, 3 * IDLE_MS);
    assert_ptr_equal(a, b);
    assert_int_equal(b->next_seq, 0);
    assert_false(stss_stamped(&t, 45, &at));
    assert_int_equal(ctr_get(&t.stale), 3);
}

/* stss_clear (a reload out of stateful mode and back): every session
 * starts at 0 again, awaited stamps are stale, the counters stay. */
static void
test_clear(void **state)
{
    struct timespec at = ts(1, 0);
    struct sockaddr_storage ss;
    const struct sockaddr *p = keep(&ss, t_sa("198.51.100.7", 5000));
    struct stss_sess *s;

    (void)state;
    assert_int_equal(exchange(p, 0), 0);
    s = get(p, here(), 1, 1);
    stss_await(&t, s, stss_sent(s), 9);
    stss_clear(&t);
    assert_false(stss_stamped(&t, 9, &at));
    assert_int_equal(exchange(p, 2), 0);
    assert_int_equal(ctr_get(&t.created), 2);
}

static void
test_init_bounds(void **state)
{
    struct stss u;

    (void)state;
    errno = 0;
    assert_int_equal(stss_init(&u, 0, IDLE_MS), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(stss_init(&u, STSS_WAYS + 1, IDLE_MS), -1);
    assert_int_equal(stss_init(&u, STSS_SLOTS, 0), -1);
    stss_fini(&u); /* after a failed init: nothing to free */
    assert_int_equal(stss_init(&u, (size_t)2 * STSS_WAYS, 1), 0);
    assert_non_null(stss_get(&u, t_sa("198.51.100.7", 5000), here(), 1, 0));
    stss_fini(&u);
    stss_fini(&u);
    stss_clear(&u); /* on a finished table: nothing */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_seq_from_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_what_is_one_session, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_other_family, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flood_one_set, setup_one_set,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flood_full_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stamp_followup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stamp_ring_overwritten, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stamp_recycled_slot, setup_one_set,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_clear, setup, teardown),
        cmocka_unit_test(test_init_bounds),
    };

    t_deadline(60);
    return cmocka_run_group_tests_name("stsess", tests, NULL, NULL);
}
