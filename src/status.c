/*
 * status.c - the STATUS text.
 *
 * Owns: formatting a struct st_sum. Never reads a counter itself: the
 * server sums them (wrk_pool_sum) and hands the snapshot over, so the
 * text can be tested without a running engine.
 */
#include <stdio.h>

#include "status.h"

static const char *const st_service_names[] = {
    [ST_SVC_ECHO] = "echo",
    [ST_SVC_DISCARD] = "discard",
    [ST_SVC_METRICS] = "metrics",
    [ST_SVC_STAMP] = "stamp",
};

const char *
st_service_name(enum st_service svc)
{
    return st_service_names[svc];
}

/* Where the text is after appending the result n of snprintf at used
 * (len when it did not fit: nothing more is appended). */
static size_t
st_put(size_t used, size_t len, int n)
{
    return n < 0 || (size_t)n >= len - used ? len : used + (size_t)n;
}

uint64_t
st_udp_dropped(const struct st_sum *s)
{
    uint64_t n = 0;

    for (int i = 0; i < UDP_DROP_MAX; i++) {
        n += s->udp_drop[i];
    }
    return n;
}

static size_t
st_udp(const struct st_sum *s, char *buf, size_t len, size_t used)
{
    uint64_t dropped = st_udp_dropped(s);
    const char *sep = " (";

    used = st_put(
        used, len,
        snprintf(
            buf + used, len - used,
            "; udp: %zu socket(s), %llu received, %llu echoed, %llu dropped",
            s->n_udp, (unsigned long long)s->udp_rx,
            (unsigned long long)s->udp_echoed, (unsigned long long)dropped));
    for (int i = 0; i < UDP_DROP_MAX && used < len; i++) {
        if (s->udp_drop[i] > 0) {
            used = st_put(used, len,
                          snprintf(buf + used, len - used, "%s%llu %s", sep,
                                   (unsigned long long)s->udp_drop[i],
                                   udp_drop_name((enum udp_drop)i)));
            sep = ", ";
        }
    }
    if (dropped > 0 && used < len) {
        used = st_put(used, len, snprintf(buf + used, len - used, ")"));
    }
    if (s->udp_discarded > 0 && used < len) {
        used = st_put(used, len,
                      snprintf(buf + used, len - used, ", %llu discarded",
                               (unsigned long long)s->udp_discarded));
    }
    return used;
}

void
st_workers_text(const struct st_sum *s, char *buf, size_t len)
{
    size_t n =
        s->n_workers < ST_WORKERS_SHOWN ? s->n_workers : ST_WORKERS_SHOWN;
    size_t used = 0;

    if (len == 0) {
        return;
    }
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        used = st_put(used, len,
                      snprintf(buf + used, len - used, "%sw%zu %llu/%llu",
                               i > 0 ? ", " : "", i,
                               (unsigned long long)s->w_opened[i],
                               (unsigned long long)s->w_udp_rx[i]));
    }
}

void
st_text(const struct st_sum *s, char *buf, size_t len)
{
    uint64_t refused = s->rejected + s->rejected_source + s->shed + s->acl +
                       s->untrusted;
    size_t used = 0;

    if (len == 0) {
        return;
    }
    used = st_put(used, len,
                  snprintf(buf, len,
                           "%s%zu listener(s), %llu connection(s) open, "
                           "%llu accepted, %llu refused (%llu per source)",
                           s->stopping ? "stopping: " : "", s->n_tcp,
                           (unsigned long long)s->open,
                           (unsigned long long)s->opened,
                           (unsigned long long)refused,
                           (unsigned long long)s->rejected_source));
    if (used < len && (s->n_udp > 0 || s->udp_rx > 0)) {
        used = st_udp(s, buf, len, used);
    }
    if (used < len && s->reload_failed) {
        snprintf(buf + used, len - used, "; last reload failed, see the log");
    }
}
