/*
 * fake_clock.h - a CLOCK_MONOTONIC the test moves by hand, for tests
 * linked with -Wl,--wrap=clock_gettime (include in exactly those).
 *
 * While fake_clock is false, or for any other clock (the tests' own
 * deadlines use CLOCK_BOOTTIME), calls go to the real clock_gettime.
 */
#ifndef ECHOD_TEST_FAKE_CLOCK_H
#define ECHOD_TEST_FAKE_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

int __real_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_gettime(clockid_t id, struct timespec *ts);

static bool fake_clock;
static uint64_t fake_ms;

int
__wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
    if (!fake_clock || id != CLOCK_MONOTONIC) {
        return __real_clock_gettime(id, ts);
    }
    ts->tv_sec = (time_t)(fake_ms / 1000);
    ts->tv_nsec = (long)(fake_ms % 1000) * 1000000;
    return 0;
}

#endif /* ECHOD_TEST_FAKE_CLOCK_H */
