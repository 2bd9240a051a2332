/*
 * test_log.c - the token bucket (one token or n at once), the flood
 * limiter, the level filter, errno preservation and the strerror suffix.
 *
 * --wrap=clock_gettime gives the limiter a clock the test moves by hand
 * (CLOCK_MONOTONIC only; other clocks pass through), and --wrap=syslog
 * (and its _FORTIFY_SOURCE twin __syslog_chk) captures what would reach
 * syslog. The capture also clobbers errno, as a real syslog may.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "tbucket.h"
#include "fake_clock.h"
#include "unit.h"

/* ---- the syslog capture ---- */

void __wrap_syslog(int pri, const char *fmt, ...);
void __wrap___syslog_chk(int pri, int flag, const char *fmt, ...);

#define CAP_MAX 64

static struct {
    int pri;
    char msg[1200];
} cap[CAP_MAX];
static int n_cap;

static void
capture(int pri, const char *fmt, va_list ap)
{
    assert_true(n_cap < CAP_MAX);
    cap[n_cap].pri = pri;
    vsnprintf(cap[n_cap].msg, sizeof(cap[n_cap].msg), fmt, ap);
    n_cap++;
    errno = EBADF; /* what a real syslog may leave behind */
}

void
__wrap_syslog(int pri, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    capture(pri, fmt, ap);
    va_end(ap);
}

void
__wrap___syslog_chk(int pri, int flag, const char *fmt, ...)
{
    va_list ap;

    (void)flag;
    va_start(ap, fmt);
    capture(pri, fmt, ap);
    va_end(ap);
}

static int
setup(void **state)
{
    (void)state;
    n_cap = 0;
    fake_clock = true;
    fake_ms = 1000000;
    /* syslog on (captured), stderr off, everything up to debug. */
    log_open("echod-test", LOG_USER, LOG_DEBUG, false);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    log_close();
    fake_clock = false;
    return 0;
}

static void
assert_cap(int i, int pri, const char *msg)
{
    assert_true(i < n_cap);
    assert_int_equal(cap[i].pri, pri);
    assert_string_equal(cap[i].msg, msg);
}

/* ---- token bucket ---- */

static void
test_tb_burst_then_refill(void **state)
{
    struct tb tb;
    uint64_t t = 5000;

    (void)state;
    tb_init(&tb, 2.0, 3.0, t); /* 2 per second, burst of 3 */
    assert_true(tb_take(&tb, t));
    assert_true(tb_take(&tb, t));
    assert_true(tb_take(&tb, t));
    assert_false(tb_take(&tb, t));
    assert_false(tb_take(&tb, t + 250)); /* half a token */
    assert_true(tb_take(&tb, t + 500));  /* the other half arrived */
    assert_false(tb_take(&tb, t + 500));
    /* Fractions accumulate across calls instead of being lost. */
    assert_false(tb_take(&tb, t + 750));
    assert_true(tb_take(&tb, t + 1000));
    /* A long quiet spell refills to the burst, never beyond it. */
    t += 3600 * 1000;
    for (int i = 0; i < 3; i++) {
        assert_true(tb_take(&tb, t));
    }
    assert_false(tb_take(&tb, t));
    assert_true(tb.tokens >= 0.0 && tb.tokens <= tb.burst);
}

static void
test_tb_clock_backwards(void **state)
{
    struct tb tb;
    uint64_t t = 100000;

    (void)state;
    tb_init(&tb, 1.0, 2.0, t);
    assert_true(tb_take(&tb, t));
    assert_true(tb_take(&tb, t));
    assert_false(tb_take(&tb, t));
    /* Going back in time adds nothing (an unsigned t - last would add
     * about 2^64 ms worth of tokens). */
    assert_false(tb_take(&tb, t - 50000));
    assert_false(tb_take(&tb, 0));
    assert_true(tb.tokens >= 0.0 && tb.tokens < 1.0);
    /* Time measured from the latest reading, not from the bogus one. */
    assert_false(tb_take(&tb, t + 999));
    assert_true(tb_take(&tb, t + 1000));
    assert_false(tb_take(&tb, t + 1000));
}

/* n tokens at once (bytes of a reply): all or none, so a refused large
 * take leaves the tokens for smaller ones; more than the burst never. */
static void
test_tb_take_n(void **state)
{
    struct tb tb;
    uint64_t t = 7000;

    (void)state;
    tb_init(&tb, 1000.0, 3000.0, t); /* 1000 a second, burst of 3000 */
    assert_true(tb_take_n(&tb, 2000.0, t));
    assert_false(tb_take_n(&tb, 1001.0, t)); /* 1000 left: refused... */
    assert_true(tb.tokens == 1000.0);        /* ...and none taken */
    assert_true(tb_take_n(&tb, 600.0, t));   /* smaller ones still pass */
    assert_true(tb_take_n(&tb, 400.0, t));
    assert_false(tb_take(&tb, t));
    assert_true(tb_take_n(&tb, 0.0, t)); /* nothing costs nothing */
    /* Refill by rate x time, in n-token steps too. */
    assert_false(tb_take_n(&tb, 500.0, t + 499));
    assert_true(tb_take_n(&tb, 500.0, t + 500));
    /* More than the burst: never, however long the wait. */
    assert_false(tb_take_n(&tb, 3001.0, t + 3600 * 1000));
    assert_true(tb_take_n(&tb, 3000.0, t + 3600 * 1000));
    assert_true(tb.tokens >= 0.0 && tb.tokens <= tb.burst);
}

/* ---- flood limiter ---- */

static void
test_limited_burst_then_suppressed_count(void **state)
{
    static struct log_limit lim = LOG_LIMIT_INIT;
    char want[128];
    int burst = (int)LOG_LIMIT_BURST;

    (void)state;
    for (int i = 0; i < 20; i++) {
        log_limited(&lim, LOG_WARNING, false, "flood %d", i);
    }
    assert_int_equal(n_cap, burst);
    for (int i = 0; i < burst; i++) {
        snprintf(want, sizeof(want), "flood %d", i);
        assert_cap(i, LOG_WARNING, want);
    }
    /* Still within the same second: nothing more gets through. */
    fake_ms += 999;
    log_limited(&lim, LOG_WARNING, false, "flood %d", 20);
    assert_int_equal(n_cap, burst);
    /* One token per second: the next one carries the count. */
    fake_ms += 1;
    log_limited(&lim, LOG_WARNING, false, "flood %d", 21);
    assert_int_equal(n_cap, burst + 1);
    snprintf(want, sizeof(want), "flood 21 (%d similar messages suppressed)",
             20 - burst + 1);
    assert_cap(burst, LOG_WARNING, want);
    /* The count restarts after it was reported. */
    log_limited(&lim, LOG_WARNING, false, "flood %d", 22);
    fake_ms += 1000;
    log_limited(&lim, LOG_WARNING, false, "flood %d", 23);
    assert_int_equal(n_cap, burst + 2);
    assert_cap(burst + 1, LOG_WARNING,
               "flood 23 (1 similar messages suppressed)");
    /* Nothing suppressed since: no suffix. */
    fake_ms += 1000;
    log_limited(&lim, LOG_WARNING, false, "flood %d", 24);
    assert_cap(burst + 2, LOG_WARNING, "flood 24");
}

/* A flood that simply stops still gets its count logged by the periodic
 * flush, once nothing has got through for a second -- and only then. */
static void
test_limit_flush_reports_stopped_flood(void **state)
{
    static struct log_limit lim = LOG_LIMIT_INIT;
    int burst = (int)LOG_LIMIT_BURST;

    (void)state;
    /* Earlier tests' limiters are remembered too: let them report first. */
    fake_ms += 60000;
    log_limit_flush();
    n_cap = 0;
    for (int i = 0; i < burst + 7; i++) {
        log_limited(&lim, LOG_WARNING, false, "shed %d", i);
    }
    assert_int_equal(n_cap, burst);
    fake_ms += 999;
    log_limit_flush(); /* too early: the flood may still be going on */
    assert_int_equal(n_cap, burst);
    fake_ms += 1;
    log_limit_flush();
    assert_int_equal(n_cap, burst + 1);
    assert_cap(burst, LOG_WARNING,
               "7 similar messages suppressed after: shed 4");
    fake_ms += 5000;
    log_limit_flush(); /* nothing new: nothing to say */
    assert_int_equal(n_cap, burst + 1);
}

/* Each call site has its own bucket. */
static void
test_limited_per_site(void **state)
{
    static struct log_limit a = LOG_LIMIT_INIT, b = LOG_LIMIT_INIT;

    (void)state;
    for (int i = 0; i < 10; i++) {
        log_limited(&a, LOG_WARNING, false, "a");
    }
    log_limited(&b, LOG_WARNING, false, "b");
    assert_int_equal(n_cap, (int)LOG_LIMIT_BURST + 1);
    assert_cap(n_cap - 1, LOG_WARNING, "b");
}

static void
test_limited_with_errno(void **state)
{
    static struct log_limit lim = LOG_LIMIT_INIT;
    char want[160];

    (void)state;
    for (int i = 0; i < (int)LOG_LIMIT_BURST + 3; i++) {
        errno = EMFILE;
        log_limited(&lim, LOG_WARNING, true, "accept");
        assert_int_equal(errno, EMFILE); /* suppressed or not */
    }
    snprintf(want, sizeof(want), "accept: %s", strerror(EMFILE));
    assert_cap(0, LOG_WARNING, want);
    fake_ms += 1000;
    errno = ENFILE;
    log_limited(&lim, LOG_WARNING, true, "accept");
    assert_int_equal(errno, ENFILE);
    snprintf(want, sizeof(want), "accept: %s (3 similar messages suppressed)",
             strerror(ENFILE));
    assert_cap((int)LOG_LIMIT_BURST, LOG_WARNING, want);
}

/* A message below the level is neither written nor counted. */
static void
test_limited_below_level(void **state)
{
    static struct log_limit lim = LOG_LIMIT_INIT;

    (void)state;
    log_set_level(LOG_ERR);
    for (int i = 0; i < 50; i++) {
        log_limited(&lim, LOG_WARNING, false, "quiet");
    }
    assert_int_equal(n_cap, 0);
    log_set_level(LOG_DEBUG);
    log_limited(&lim, LOG_WARNING, false, "loud");
    assert_cap(0, LOG_WARNING, "loud");
}

/* ---- level filter, errno, strerror ---- */

static int side_effects;

static int
count_eval(void)
{
    return ++side_effects;
}

static void
test_level_filter(void **state)
{
    (void)state;
    log_set_level(LOG_NOTICE);
    assert_int_equal(log_get_level(), LOG_NOTICE);
    assert_true(log_enabled(LOG_ERR));
    assert_true(log_enabled(LOG_NOTICE));
    assert_false(log_enabled(LOG_INFO));
    log_info("info %d", 1);
    side_effects = 0;
    log_debug("debug %d", count_eval()); /* not even evaluated */
    assert_int_equal(side_effects, 0);
    assert_int_equal(n_cap, 0);
    log_notice("notice %d", 2);
    log_errx("err %d", 3);
    log_warnx("warning %d", 4);
    assert_int_equal(n_cap, 3);
    assert_cap(0, LOG_NOTICE, "notice 2");
    assert_cap(1, LOG_ERR, "err 3");
    assert_cap(2, LOG_WARNING, "warning 4");

    log_set_level(LOG_DEBUG);
    log_debug("debug %d", count_eval());
    assert_int_equal(side_effects, 1);
    assert_cap(3, LOG_DEBUG, "debug 1");
}

static void
test_errno_preserved_and_strerror(void **state)
{
    char want[160];

    (void)state;
    errno = ENOENT;
    log_err("open %s", "x.conf");
    assert_int_equal(errno, ENOENT);
    snprintf(want, sizeof(want), "open x.conf: %s", strerror(ENOENT));
    assert_cap(0, LOG_ERR, want);

    errno = ECONNRESET;
    log_warn("read");
    assert_int_equal(errno, ECONNRESET);
    snprintf(want, sizeof(want), "read: %s", strerror(ECONNRESET));
    assert_cap(1, LOG_WARNING, want);

    errno = EPIPE; /* the x forms leave errno out of the text, and alone */
    log_errx("plain");
    log_info("info");
    assert_int_equal(errno, EPIPE);
    assert_cap(2, LOG_ERR, "plain");
    assert_cap(3, LOG_INFO, "info");

    /* Filtered out: errno still untouched. */
    log_set_level(LOG_ERR);
    errno = EAGAIN;
    log_warn("filtered");
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(n_cap, 4);
}

/* An over-long message is cut to the line buffer, errno suffix or not. */
static void
test_long_message_truncated(void **state)
{
    char big[3000];

    (void)state;
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    errno = EIO;
    log_err("%s", big);
    assert_int_equal(n_cap, 1);
    assert_true(strlen(cap[0].msg) < 1024);
    assert_true(strlen(cap[0].msg) > 1000);
    assert_int_equal(errno, EIO);
}

/* In the foreground each line also goes to stderr as "ident: text". */
static void
test_stderr_copy(void **state)
{
    char tmpl[] = "/tmp/echod-log-XXXXXX";
    char buf[256];
    int fd = mkstemp(tmpl), saved;
    ssize_t n;

    (void)state;
    assert_true(fd >= 0);
    unlink(tmpl);
    saved = dup(2);
    assert_true(saved >= 0);
    log_open("echod-test", LOG_USER, LOG_INFO, true);
    assert_int_equal(dup2(fd, 2), 2);
    log_notice("hello %d", 7);
    log_debug("not at info");
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    n = pread(fd, buf, sizeof(buf) - 1, 0);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "echod-test: hello 7\n");
    assert_cap(0, LOG_NOTICE, "hello 7");
    assert_int_equal(n_cap, 1);
}

static void
test_names(void **state)
{
    (void)state;
    assert_int_equal(log_level_from_name("warning"), LOG_WARNING);
    assert_int_equal(log_level_from_name("debug"), LOG_DEBUG);
    assert_int_equal(log_level_from_name("verbose"), -1);
    assert_string_equal(log_level_name(LOG_ERR), "err");
    assert_int_equal(log_facility_from_name("local7"), LOG_LOCAL7);
    assert_int_equal(log_facility_from_name("daemon"), LOG_DAEMON);
    assert_int_equal(log_facility_from_name("kern"), -1);
    assert_string_equal(log_facility_name(LOG_USER), "user");
}

/* The lists a config error prints come from the same tables the names are
 * looked up in, with a counting run written as its two ends. */
static void
test_name_lists(void **state)
{
    char buf[128];

    (void)state;
    assert_string_equal(log_level_list(buf, sizeof(buf)),
                        "emerg, alert, crit, err, warning, notice, info, "
                        "debug");
    assert_string_equal(log_facility_list(buf, sizeof(buf)),
                        "daemon, user, local0 .. local7");
    /* Too small a buffer cuts the list, terminated. */
    memset(buf, 'x', sizeof(buf));
    assert_string_equal(log_facility_list(buf, 9), "daemon, ");
    assert_string_equal(log_level_list(buf, 1), "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tb_burst_then_refill),
        cmocka_unit_test(test_tb_clock_backwards),
        cmocka_unit_test(test_tb_take_n),
        cmocka_unit_test_setup_teardown(
            test_limited_burst_then_suppressed_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limited_per_site, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limited_with_errno, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_limited_below_level, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_level_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errno_preserved_and_strerror,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_message_truncated, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stderr_copy, setup, teardown),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_name_lists),
        cmocka_unit_test_setup_teardown(test_limit_flush_reports_stopped_flood,
                                        setup, teardown),
    };

    t_deadline(30);
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
