/*
 * metrics.h - the Prometheus text format (0.0.4) of one snapshot
 * (status.h, struct st_sum) and of the process (/proc/self).
 */
#ifndef ECHOD_METRICS_H
#define ECHOD_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* A growing text buffer. */
struct mtr_buf {
    char *p;
    size_t len, cap;
    int failed; /* an allocation failed: the text is incomplete */
};

/* The longest piece one mtr_printf call may append, with its NUL. */
#define MTR_LINE_MAX 1024

/*
 * Append printf-formatted text (under MTR_LINE_MAX bytes) to b, which
 * then stays NUL-terminated. A longer piece or a failed allocation sets
 * b->failed and appends nothing, now or later: the text is never cut
 * silently. Returns 0, or -1 once b->failed is set.
 */
int mtr_printf(struct mtr_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The reason label of a refusal ("max-connections", "acl", ...). */
const char *mtr_refuse_name(enum sts_refuse r);

/* What the process collector reports (process_*). */
struct mtr_proc {
    double cpu_seconds; /* user + system */
    uint64_t rss_bytes;
    uint64_t open_fds;
    uint64_t max_fds; /* RLIMIT_NOFILE soft limit */
};

/* From /proc/self and getrlimit; figures it cannot read stay 0. */
void mtr_proc_read(struct mtr_proc *p);

/*
 * Append the exposition of s and p to b: echod_* families with HELP and
 * TYPE, per-listener series labelled listener="ADDRESS:PORT", protocol
 * and service, and the process_* collector metrics. Returns 0, or -1 if
 * memory ran out (b->failed).
 */
int mtr_render(struct mtr_buf *b, const struct st_sum *s,
               const struct mtr_proc *p, const char *version);

void mtr_buf_free(struct mtr_buf *b);

#endif /* ECHOD_METRICS_H */
