/*
 * log.c - syslog(3) and stderr output, level filter, flood limiter.
 *
 * Owns the only process-wide logging state. Never allocates: messages are
 * formatted into a stack buffer, so logging works on ENOMEM paths. Every
 * entry point preserves errno.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"

#define LOG_LINE_MAX 1024

/* Written by the main thread (open, reload), read by every worker: the
 * level is an atomic, and the rest changes only under `lock`, which every
 * line is written under too (lines are rare: the flood limiter sees to
 * that), so a reload that renames the ident never tears a line. */
static struct {
    _Atomic int level;
    bool to_stderr;
    bool to_syslog;
    char ident[64]; /* openlog keeps the pointer: we own the string */
    pthread_mutex_t lock;
} log_state = {LOG_INFO, true, false, "echod", PTHREAD_MUTEX_INITIALIZER};

void
log_open(const char *ident, int facility, int level, bool to_stderr)
{
    int saved = errno;

    (void)pthread_mutex_lock(&log_state.lock);
    if (log_state.to_syslog) {
        closelog();
    }
    snprintf(log_state.ident, sizeof(log_state.ident), "%s", ident);
    atomic_store(&log_state.level, level);
    log_state.to_stderr = to_stderr;
    log_state.to_syslog = true;
    openlog(log_state.ident, LOG_PID | LOG_NDELAY, facility);
    (void)pthread_mutex_unlock(&log_state.lock);
    errno = saved;
}

void
log_close(void)
{
    (void)pthread_mutex_lock(&log_state.lock);
    if (log_state.to_syslog) {
        closelog();
        log_state.to_syslog = false;
    }
    log_state.to_stderr = true;
    (void)pthread_mutex_unlock(&log_state.lock);
}

void
log_set_level(int level)
{
    atomic_store(&log_state.level, level);
}

int
log_get_level(void)
{
    return atomic_load(&log_state.level);
}

bool
log_enabled(int pri)
{
    return pri <= atomic_load_explicit(&log_state.level, memory_order_relaxed);
}

/* The started limiters of this thread: each worker flushes its own, from
 * its own loop, so no limiter is ever touched by two threads. */
#define LOG_LIMITS_MAX 32
static _Thread_local struct log_limit *log_limits[LOG_LIMITS_MAX];

/* Format and write one line; with `copy`, also keep its start there. */
static void log_vwrite(int pri, bool with_errno, const char *suffix, char *copy,
                       const char *fmt, va_list ap) LOG_PRINTF(5, 0);

static void
log_vwrite(int pri, bool with_errno, const char *suffix, char *copy,
           const char *fmt, va_list ap)
{
    char line[LOG_LINE_MAX];
    int saved = errno;
    int n;

    if (!log_enabled(pri)) {
        return;
    }
    /* The analyzer loses track of va_start across the call (clang 14). */
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
    n = vsnprintf(line, sizeof(line), fmt, ap);
    if (n < 0) {
        n = 0;
        line[0] = '\0';
    }
    if ((size_t)n < sizeof(line) && with_errno) {
        snprintf(line + n, sizeof(line) - (size_t)n, ": %s", strerror(saved));
    }
    if (suffix != NULL) {
        size_t len = strlen(line);
        snprintf(line + len, sizeof(line) - len, "%s", suffix);
    }
    if (copy != NULL) { /* truncation is the point: keep the start */
        size_t keep = strnlen(line, LOG_LIMIT_LAST - 1);
        memcpy(copy, line, keep);
        copy[keep] = '\0';
    }
    (void)pthread_mutex_lock(&log_state.lock);
    if (log_state.to_syslog) {
        syslog(pri, "%s", line);
    }
    if (log_state.to_stderr) {
        fprintf(stderr, "%s: %s\n", log_state.ident, line);
    }
    (void)pthread_mutex_unlock(&log_state.lock);
    errno = saved;
}

void
log_write(int pri, bool with_errno, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(pri, with_errno, NULL, NULL, fmt, ap);
    va_end(ap);
}

static uint64_t
log_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Remember a limiter once (a re-initialised one is the same pointer). */
static void
log_limit_remember(struct log_limit *lim)
{
    for (size_t i = 0; i < LOG_LIMITS_MAX; i++) {
        if (log_limits[i] == lim) {
            return;
        }
        if (log_limits[i] == NULL) {
            log_limits[i] = lim;
            return;
        }
    }
}

bool
log_limit_pass(struct log_limit *lim, int pri)
{
    int saved = errno;
    uint64_t now;
    bool pass;

    if (!log_enabled(pri)) {
        return false;
    }
    now = log_now_ms();
    if (!lim->started) {
        tb_init(&lim->tb, LOG_LIMIT_RATE, LOG_LIMIT_BURST, now);
        lim->started = true;
        log_limit_remember(lim);
    }
    pass = tb_take(&lim->tb, now);
    if (pass) {
        lim->last_ms = now;
    } else {
        lim->suppressed++;
    }
    errno = saved;
    return pass;
}

static void log_limit_vwrite(struct log_limit *lim, int pri, bool with_errno,
                             const char *fmt, va_list ap) LOG_PRINTF(4, 0);

static void
log_limit_vwrite(struct log_limit *lim, int pri, bool with_errno,
                 const char *fmt, va_list ap)
{
    char suffix[64];

    suffix[0] = '\0';
    if (lim->suppressed > 0) {
        snprintf(suffix, sizeof(suffix), " (%llu similar messages suppressed)",
                 (unsigned long long)lim->suppressed);
        lim->suppressed = 0;
    }
    lim->pri = pri;
    log_vwrite(pri, with_errno, suffix, lim->last, fmt, ap);
}

void
log_limit_write(struct log_limit *lim, int pri, bool with_errno,
                const char *fmt, ...)
{
    int saved = errno;
    va_list ap;

    va_start(ap, fmt);
    log_limit_vwrite(lim, pri, with_errno, fmt, ap);
    va_end(ap);
    errno = saved;
}

void
log_limited(struct log_limit *lim, int pri, bool with_errno, const char *fmt,
            ...)
{
    int saved = errno;
    va_list ap;

    if (!log_limit_pass(lim, pri)) {
        return;
    }
    va_start(ap, fmt);
    log_limit_vwrite(lim, pri, with_errno, fmt, ap);
    va_end(ap);
    errno = saved;
}

void
log_limit_flush(void)
{
    uint64_t now = log_now_ms();

    for (size_t i = 0; i < LOG_LIMITS_MAX && log_limits[i] != NULL; i++) {
        struct log_limit *lim = log_limits[i];

        if (lim->suppressed > 0 && now - lim->last_ms >= 1000) {
            log_write(lim->pri, false,
                      "%llu similar messages suppressed after: %s",
                      (unsigned long long)lim->suppressed, lim->last);
            lim->suppressed = 0;
            lim->last_ms = now;
        }
    }
}

struct log_name {
    const char *name;
    int value;
};

static const struct log_name log_levels[] = {
    {"emerg", LOG_EMERG}, {"alert", LOG_ALERT},     {"crit", LOG_CRIT},
    {"err", LOG_ERR},     {"warning", LOG_WARNING}, {"notice", LOG_NOTICE},
    {"info", LOG_INFO},   {"debug", LOG_DEBUG},     {NULL, 0},
};

static const struct log_name log_facilities[] = {
    {"daemon", LOG_DAEMON},
    {"user", LOG_USER},
    {"local0", LOG_LOCAL0},
    {"local1", LOG_LOCAL1},
    {"local2", LOG_LOCAL2},
    {"local3", LOG_LOCAL3},
    {"local4", LOG_LOCAL4},
    {"local5", LOG_LOCAL5},
    {"local6", LOG_LOCAL6},
    {"local7", LOG_LOCAL7},
    {NULL, 0},
};

static int
log_name_find(const struct log_name *t, const char *name)
{
    for (; t->name != NULL; t++) {
        if (strcasecmp(name, t->name) == 0) {
            return t->value;
        }
    }
    return -1;
}

static const char *
log_value_find(const struct log_name *t, int value)
{
    for (; t->name != NULL; t++) {
        if (t->value == value) {
            return t->name;
        }
    }
    return "?";
}

int
log_level_from_name(const char *name)
{
    return log_name_find(log_levels, name);
}

const char *
log_level_name(int level)
{
    return log_value_find(log_levels, level);
}

int
log_facility_from_name(const char *name)
{
    return log_name_find(log_facilities, name);
}

const char *
log_facility_name(int facility)
{
    return log_value_find(log_facilities, facility);
}

/* The number a name ends in, or -1 if none (or if it is all digits);
 * *stem gets the length of what comes before the number. */
static long
log_name_number(const char *name, size_t *stem)
{
    size_t n = strlen(name), i = n;

    while (i > 0 && isdigit((unsigned char)name[i - 1])) {
        i--;
    }
    *stem = i;
    if (i == n || i == 0 || n - i > 4) {
        return -1;
    }
    return strtol(name + i, NULL, 10);
}

/* How many names from t on count up by one with the same stem
 * ("local0", "local1", ...); 1 when t->name ends in no number. */
static size_t
log_name_run(const struct log_name *t)
{
    size_t stem, other;
    long first = log_name_number(t->name, &stem);
    size_t n = 1;

    if (first < 0) {
        return 1;
    }
    while (t[n].name != NULL &&
           log_name_number(t[n].name, &other) == first + (long)n &&
           other == stem && strncmp(t[n].name, t->name, stem) == 0) {
        n++;
    }
    return n;
}

/* Write the names of t, comma-separated, a run of 3 or more as its ends.
 * The tables above are the only place the names are written: a message
 * listing what is accepted is built from them, so it cannot drift. */
static const char *
log_names_list(const struct log_name *t, char *buf, size_t len)
{
    size_t used = 0;

    if (len == 0) {
        return buf;
    }
    buf[0] = '\0';
    while (t->name != NULL) {
        const char *sep = used > 0 ? ", " : "";
        size_t run = log_name_run(t);
        int n;

        if (run >= 3) {
            n = snprintf(buf + used, len - used, "%s%s .. %s", sep, t->name,
                         t[run - 1].name);
        } else {
            run = 1;
            n = snprintf(buf + used, len - used, "%s%s", sep, t->name);
        }
        if (n < 0 || (size_t)n >= len - used) {
            break; /* cut, and snprintf terminated it */
        }
        used += (size_t)n;
        t += run;
    }
    return buf;
}

const char *
log_level_list(char *buf, size_t len)
{
    return log_names_list(log_levels, buf, len);
}

const char *
log_facility_list(char *buf, size_t len)
{
    return log_names_list(log_facilities, buf, len);
}
