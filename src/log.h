/*
 * log.h - logging to syslog(3) and, in the foreground, to stderr.
 *
 * Levels are syslog's (LOG_ERR ... LOG_DEBUG). Every function saves and
 * restores errno, so an error path can log and still report errno. The
 * *_warn/_err forms append ": strerror(errno)"; the *x forms do not.
 * log_debug() evaluates its arguments only when debug logging is on.
 */
#ifndef ECHOD_LOG_H
#define ECHOD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

#include "tbucket.h"

#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Before log_open(): messages go to stderr only, at level LOG_INFO. */
void log_open(const char *ident, int facility, int level, bool to_stderr);
void log_close(void);
void log_set_level(int level);
int log_get_level(void);

/* True when a message at `pri` would be written. */
bool log_enabled(int pri);

/* Write one message at `pri`; with_errno appends strerror(errno). */
void log_write(int pri, bool with_errno, const char *fmt, ...) LOG_PRINTF(3, 4);

#define log_err(...) log_write(LOG_ERR, true, __VA_ARGS__)
#define log_errx(...) log_write(LOG_ERR, false, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARNING, true, __VA_ARGS__)
#define log_warnx(...) log_write(LOG_WARNING, false, __VA_ARGS__)
#define log_notice(...) log_write(LOG_NOTICE, false, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, false, __VA_ARGS__)
#define log_debug(...)                                                         \
    do {                                                                       \
        if (log_enabled(LOG_DEBUG)) {                                          \
            log_write(LOG_DEBUG, false, __VA_ARGS__);                          \
        }                                                                      \
    } while (0)

/*
 * Flood limiter for messages a remote peer can trigger. One per call site
 * and worker (it lives in the worker's sets), used by one thread only, and
 * living as long as that thread (log_limit_flush remembers it).
 * Allows LOG_LIMIT_BURST messages at once and LOG_LIMIT_RATE per second
 * after that; the first message let through after a suppression says how
 * many similar messages were dropped.
 */
#define LOG_LIMIT_RATE 1.0
#define LOG_LIMIT_BURST 5.0

#define LOG_LIMIT_LAST 96 /* how much of the last message a flush repeats */

struct log_limit {
    struct tb tb;
    uint64_t suppressed;
    uint64_t last_ms; /* when a message last got through */
    int pri;          /* of the last message */
    bool started;
    char last[LOG_LIMIT_LAST]; /* the start of the last message logged */
};

#define LOG_LIMIT_INIT                                                         \
    {                                                                          \
        .started = false                                                       \
    }

void log_limited(struct log_limit *lim, int pri, bool with_errno,
                 const char *fmt, ...) LOG_PRINTF(4, 5);

/* log_limited in two steps, for call sites whose arguments cost something
 * to compute (an address to format, say): log_limit_pass takes the token,
 * or counts the message as suppressed, and says whether to write;
 * log_limit_write then writes without asking again. */
bool log_limit_pass(struct log_limit *lim, int pri);
void log_limit_write(struct log_limit *lim, int pri, bool with_errno,
                     const char *fmt, ...) LOG_PRINTF(4, 5);

/* For every limiter of the calling thread that has swallowed messages and
 * let none through for a second (the flood stopped), log how many, so the
 * count is never lost. Each thread calls it about once a second from its
 * own loop (a limiter belongs to the thread that first used it). */
void log_limit_flush(void);

/* Names <-> values for log_level and syslog_facility; -1 if unknown. */
int log_level_from_name(const char *name);
const char *log_level_name(int level);
int log_facility_from_name(const char *name);
const char *log_facility_name(int facility);

/* The names log_level_from_name and log_facility_from_name accept, in
 * table order, as one line for a message: "emerg, alert, ..., debug" and
 * "daemon, user, local0 .. local7" (a run of three or more names that
 * count up, like local0 to local7, is written as its ends). Returns buf,
 * always terminated when len > 0; a list that does not fit is cut. */
const char *log_level_list(char *buf, size_t len);
const char *log_facility_list(char *buf, size_t len);

#endif /* ECHOD_LOG_H */
