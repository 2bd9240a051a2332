/*
 * metrics.c - the Prometheus text exposition format 0.0.4.
 *
 * Owns: rendering one snapshot (struct st_sum) and the process figures
 * as text, and reading those figures from /proc/self. Never reads a
 * counter of a worker itself (the server sums them, as for STATUS), so
 * the text can be tested without an engine. Metric names follow the
 * Prometheus conventions: the echod_ prefix, base units (bytes,
 * seconds), counters ending in _total.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "conn.h"
#include "counter.h"
#include "metrics.h"
#include "udp.h"

static const char *const mtr_refuse_names[] = {
    [STS_REF_MAX_CONNS] = "max-connections",
    [STS_REF_PER_SOURCE] = "per-source",
    [STS_REF_ACL] = "acl",
    [STS_REF_UNTRUSTED] = "proxy-untrusted",
    [STS_REF_EMFILE] = "emfile",
    [STS_REF_PROXY] = "proxy",
};
_Static_assert(sizeof(mtr_refuse_names) / sizeof(mtr_refuse_names[0]) ==
                   STS_REF_MAX,
               "every refusal reason has a name");

const char *
mtr_refuse_name(enum sts_refuse r)
{
    return mtr_refuse_names[r];
}

/* Make room for n more bytes and the NUL. */
static int
mtr_grow(struct mtr_buf *b, size_t n)
{
    size_t cap = b->cap == 0 ? 16384 : b->cap;
    char *p;

    while (cap - b->len <= n) {
        cap *= 2;
    }
    if (cap == b->cap) {
        return 0;
    }
    p = realloc(b->p, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

/* One line at a time: every line here is short (a name, its labels and
 * a number; a HELP text), so it is formatted on the stack once and then
 * appended. A line that would not fit fails the text, never cuts it. */
int
mtr_printf(struct mtr_buf *b, const char *fmt, ...)
{
    char line[MTR_LINE_MAX];
    va_list ap;
    int n;

    if (b->failed) {
        return -1;
    }
    va_start(ap, fmt);
    /* va_start is right above; clang 14's analyzer loses track. */
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) || mtr_grow(b, (size_t)n) < 0) {
        b->failed = 1;
        return -1;
    }
    memcpy(b->p + b->len, line, (size_t)n + 1);
    b->len += (size_t)n;
    return 0;
}

void
mtr_buf_free(struct mtr_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->failed = 0;
}

static void
mtr_family(struct mtr_buf *b, const char *name, const char *type,
           const char *help)
{
    mtr_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* listener="...",protocol="...",service="..." (names need no escaping:
 * addresses, ports and brackets only). */
static void
mtr_labels(const struct st_lsn *l, char *buf, size_t len)
{
    snprintf(buf, len, "listener=\"%s\",protocol=\"%s\",service=\"%s\"",
             l->name, l->udp ? "udp" : "tcp", st_service_name(l->service));
}

/* One series per listener of the given protocol: field f of its
 * counters (f indexes struct sts_ctr as an array). */
static void
mtr_per_lsn(struct mtr_buf *b, const struct st_sum *s, const char *name,
            const char *type, const char *help, int udp,
            const _Atomic uint64_t *(*f)(const struct sts_ctr *c))
{
    char lab[SOCK_NAME_MAX + 64];

    mtr_family(b, name, type, help);
    for (size_t i = 0; i < s->n_lsn; i++) {
        const struct st_lsn *l = &s->lsn[i];

        if (udp >= 0 && l->udp != (udp != 0)) {
            continue;
        }
        mtr_labels(l, lab, sizeof(lab));
        mtr_printf(b, "%s{%s} %llu\n", name, lab,
                   (unsigned long long)ctr_get(f(&l->c)));
    }
}

#define MTR_FIELD(fld)                                                         \
    static const _Atomic uint64_t *mtr_f_##fld(const struct sts_ctr *c)        \
    {                                                                          \
        return &c->fld;                                                        \
    }
MTR_FIELD(open)
MTR_FIELD(accepted)
MTR_FIELD(bytes_in)
MTR_FIELD(bytes_out)
MTR_FIELD(queued)
MTR_FIELD(paused)
MTR_FIELD(udp_rx)
MTR_FIELD(udp_echoed)
MTR_FIELD(udp_discarded)

static void
mtr_tcp(struct mtr_buf *b, const struct st_sum *s)
{
    char lab[SOCK_NAME_MAX + 64];

    mtr_per_lsn(b, s, "echod_tcp_connections_open", "gauge",
                "TCP connections open now.", 0, mtr_f_open);
    mtr_per_lsn(b, s, "echod_tcp_connections_accepted_total", "counter",
                "TCP connections accepted and served.", 0, mtr_f_accepted);
    mtr_family(b, "echod_tcp_connections_refused_total", "counter",
               "TCP connections closed at accept, by reason.");
    for (size_t i = 0; i < s->n_lsn; i++) {
        if (s->lsn[i].udp) {
            continue;
        }
        mtr_labels(&s->lsn[i], lab, sizeof(lab));
        for (int r = 0; r < STS_REF_MAX; r++) {
            mtr_printf(b,
                       "echod_tcp_connections_refused_total{%s,reason=\"%s\"} "
                       "%llu\n",
                       lab, mtr_refuse_name((enum sts_refuse)r),
                       (unsigned long long)ctr_get(&s->lsn[i].c.refused[r]));
        }
    }
    mtr_family(b, "echod_tcp_connections_closed_total", "counter",
               "TCP connections closed after they were served, by reason.");
    for (size_t i = 0; i < s->n_lsn; i++) {
        if (s->lsn[i].udp) {
            continue;
        }
        mtr_labels(&s->lsn[i], lab, sizeof(lab));
        for (int r = 0; r < CONN_REASON_MAX; r++) {
            mtr_printf(b,
                       "echod_tcp_connections_closed_total{%s,reason=\"%s\"} "
                       "%llu\n",
                       lab, conn_reason_name((enum conn_reason)r),
                       (unsigned long long)ctr_get(&s->lsn[i].c.closed[r]));
        }
    }
    mtr_per_lsn(b, s, "echod_received_bytes_total", "counter",
                "Bytes received from clients (TCP data, UDP payloads).", -1,
                mtr_f_bytes_in);
    mtr_per_lsn(b, s, "echod_sent_bytes_total", "counter",
                "Bytes echoed to clients (TCP data, UDP payloads).", -1,
                mtr_f_bytes_out);
    mtr_per_lsn(b, s, "echod_tcp_queued_bytes", "gauge",
                "Bytes read and not yet sent back, now.", 0, mtr_f_queued);
    mtr_per_lsn(b, s, "echod_tcp_connections_paused", "gauge",
                "TCP connections not read because their output is over the "
                "high watermark, now.",
                0, mtr_f_paused);
}

static void
mtr_udp(struct mtr_buf *b, const struct st_sum *s)
{
    char lab[SOCK_NAME_MAX + 64];

    mtr_per_lsn(b, s, "echod_udp_datagrams_received_total", "counter",
                "UDP datagrams received.", 1, mtr_f_udp_rx);
    mtr_per_lsn(b, s, "echod_udp_datagrams_echoed_total", "counter",
                "UDP datagrams echoed.", 1, mtr_f_udp_echoed);
    mtr_family(b, "echod_udp_datagrams_dropped_total", "counter",
               "UDP datagrams not answered, by reason.");
    for (size_t i = 0; i < s->n_lsn; i++) {
        if (!s->lsn[i].udp) {
            continue;
        }
        mtr_labels(&s->lsn[i], lab, sizeof(lab));
        for (int r = 0; r < UDP_DROP_MAX; r++) {
            mtr_printf(b,
                       "echod_udp_datagrams_dropped_total{%s,reason=\"%s\"} "
                       "%llu\n",
                       lab, udp_drop_name((enum udp_drop)r),
                       (unsigned long long)ctr_get(&s->lsn[i].c.udp_drop[r]));
        }
    }
    mtr_per_lsn(b, s, "echod_udp_datagrams_discarded_total", "counter",
                "UDP datagrams a discard listener took and answered "
                "on purpose with nothing.",
                1, mtr_f_udp_discarded);
}

static void
mtr_hist(struct mtr_buf *b, const char *name, const char *help,
         const uint64_t *hist, double sum_s)
{
    uint64_t cum = 0;

    mtr_family(b, name, "histogram", help);
    for (unsigned i = 0; i < STS_HIST_BUCKETS; i++) {
        cum += hist[i];
        mtr_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, sts_bucket_le(i),
                   (unsigned long long)cum);
    }
    cum += hist[STS_HIST_BUCKETS];
    mtr_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name,
               (unsigned long long)cum);
    mtr_printf(b, "%s_sum %.9f\n", name, sum_s);
    mtr_printf(b, "%s_count %llu\n", name, (unsigned long long)cum);
}

static void
mtr_process(struct mtr_buf *b, const struct st_sum *s, const struct mtr_proc *p,
            const char *version)
{
    mtr_family(b, "echod_build_info", "gauge",
               "Always 1; the version is a label.");
    mtr_printf(b, "echod_build_info{version=\"%s\"} 1\n", version);
    mtr_family(b, "echod_workers", "gauge", "Worker threads.");
    mtr_printf(b, "echod_workers %zu\n", s->n_workers);
    mtr_family(b, "echod_reloads_total", "counter",
               "Configuration reloads, by result.");
    mtr_printf(b, "echod_reloads_total{result=\"ok\"} %llu\n",
               (unsigned long long)s->reloads_ok);
    mtr_printf(b, "echod_reloads_total{result=\"failed\"} %llu\n",
               (unsigned long long)s->reloads_failed);
    mtr_family(b, "echod_config_load_time_seconds", "gauge",
               "Unix time of the last successful configuration load.");
    mtr_printf(b, "echod_config_load_time_seconds %lld\n",
               (long long)s->config_time);
    mtr_family(b, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
    mtr_printf(b, "process_cpu_seconds_total %.2f\n", p->cpu_seconds);
    mtr_family(b, "process_resident_memory_bytes", "gauge",
               "Resident memory size in bytes.");
    mtr_printf(b, "process_resident_memory_bytes %llu\n",
               (unsigned long long)p->rss_bytes);
    mtr_family(b, "process_open_fds", "gauge",
               "Number of open file descriptors.");
    mtr_printf(b, "process_open_fds %llu\n", (unsigned long long)p->open_fds);
    mtr_family(b, "process_max_fds", "gauge",
               "Maximum number of open file descriptors.");
    mtr_printf(b, "process_max_fds %llu\n", (unsigned long long)p->max_fds);
    mtr_family(b, "process_start_time_seconds", "gauge",
               "Start time of the process since unix epoch in seconds.");
    mtr_printf(b, "process_start_time_seconds %lld\n",
               (long long)s->start_time);
}

int
mtr_render(struct mtr_buf *b, const struct st_sum *s, const struct mtr_proc *p,
           const char *version)
{
    mtr_tcp(b, s);
    mtr_udp(b, s);
    mtr_hist(b, "echod_echo_delay_seconds",
             "Time from the read that brought TCP bytes in to the write "
             "that sent the last of them (1 ms resolution when queued).",
             s->hist, (double)s->hist_sum_us / 1e6);
    mtr_hist(b, "echod_stamp_residence_seconds",
             "STAMP: time from a request's kernel receive stamp (T2) to its "
             "reply's send time (T3).",
             s->stamp_hist, (double)s->stamp_hist_sum_ns / 1e9);
    mtr_process(b, s, p, version);
    return b->failed ? -1 : 0;
}

void
mtr_proc_read(struct mtr_proc *p)
{
    char buf[1024];
    FILE *f;
    struct rlimit rl;
    DIR *d;

    memset(p, 0, sizeof(*p));
    f = fopen("/proc/self/stat", "re");
    if (f != NULL) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        char *q;
        unsigned long long ut, st;
        long long rss;

        fclose(f);
        buf[n] = '\0';
        /* After "pid (comm) ": field 3 on; comm may hold spaces. */
        q = strrchr(buf, ')');
        if (q != NULL &&
            sscanf(q + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu "
                   "%*d %*d %*d %*d %*d %*d %*u %*u %lld",
                   &ut, &st, &rss) == 3) {
            long tck = sysconf(_SC_CLK_TCK);
            long page = sysconf(_SC_PAGESIZE);

            p->cpu_seconds = tck > 0 ? (double)(ut + st) / (double)tck : 0;
            p->rss_bytes =
                rss > 0 && page > 0 ? (uint64_t)rss * (uint64_t)page : 0;
        }
    }
    d = opendir("/proc/self/fd");
    if (d != NULL) {
        const struct dirent *e;

        while ((e = readdir(d)) != NULL) {
            p->open_fds += e->d_name[0] != '.';
        }
        closedir(d);
        p->open_fds--; /* the directory's own fd */
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        p->max_fds = (uint64_t)rl.rlim_cur;
    }
}
