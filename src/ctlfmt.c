/*
 * ctlfmt.c - the answers of the control socket as text or JSON.
 *
 * Owns: rendering a snapshot (struct st_sum) and what only the server
 * knows (struct ctl_info, struct ctl_conn) into a struct mtr_buf. Never
 * reads a counter of a worker, a clock or a socket itself: the server
 * hands everything over, so each answer can be tested without an engine.
 *
 * Invariants: a counter's JSON name is its /metrics family name without
 * "echod_", and a listener gets the families metrics.c gives its
 * protocol (one table below says both). JSON lists every reason, also
 * at 0, so its key set does not depend on what happened. Every string
 * from outside (listener names, the config path, the reload error) goes
 * through jsonw.h, so a quote cannot break the JSON and an escape
 * sequence cannot reach the terminal of whoever reads the text.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "counter.h"
#include "ctlfmt.h"
#include "jsonw.h"
#include "udp.h"

/* ---- times ---- */

/* Unix seconds as "2023-11-14T22:13:20Z" (ISO 8601, UTC); "-" for 0. */
static void
ctl_iso(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t == 0 || gmtime_r(&tt, &tm) == NULL ||
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(buf, len, "-");
    }
}

/* A duration for people: "3d 4h 05m", "4h 05m", "5m 03s" or "42s". */
static void
ctl_human(uint64_t sec, char *buf, size_t len)
{
    unsigned long long d = sec / 86400, h = sec / 3600 % 24;
    unsigned long long m = sec / 60 % 60, s = sec % 60;

    if (d > 0) {
        snprintf(buf, len, "%llud %lluh %02llum", d, h, m);
    } else if (h > 0) {
        snprintf(buf, len, "%lluh %02llum", h, m);
    } else if (m > 0) {
        snprintf(buf, len, "%llum %02llus", m, s);
    } else {
        snprintf(buf, len, "%llus", s);
    }
}

/* A connection's age or idle time: "2.31s" under a minute (what a
 * client that just connected wants to see), else as ctl_human. */
static void
ctl_dur_ms(uint64_t ms, char *buf, size_t len)
{
    if (ms < 60000) {
        snprintf(buf, len, "%llu.%02llus", (unsigned long long)(ms / 1000),
                 (unsigned long long)(ms % 1000 / 10));
    } else {
        ctl_human(ms / 1000, buf, len);
    }
}

/* A clock set back must not show a huge uptime. */
static uint64_t
ctl_uptime(const struct st_sum *s, const struct ctl_info *i)
{
    return i->now > s->start_time ? (uint64_t)(i->now - s->start_time) : 0;
}

/* ---- status ---- */

static const char *
ctl_proto(const struct st_lsn *l)
{
    return l->udp ? "udp" : "tcp";
}

static const char *
ctl_service(const struct st_lsn *l)
{
    return st_service_name(l->service);
}

/* "listener", "protocol" and "service": the labels of /metrics. */
static void
ctl_jlsn(struct mtr_buf *b, bool *more, const struct st_lsn *l)
{
    jw_string(b, more, "listener", l->name);
    jw_string(b, more, "protocol", ctl_proto(l));
    jw_string(b, more, "service", ctl_service(l));
}

/* One "key: value" line whose value comes from outside. */
static void
ctl_tline(struct mtr_buf *b, const char *key, const char *v)
{
    mtr_printf(b, "%s: ", key);
    jw_text(b, v);
    mtr_printf(b, "\n");
}

static void
ctl_reload_text(struct mtr_buf *b, const struct st_sum *s,
                const struct ctl_info *i)
{
    char t[32];

    mtr_printf(b, "reloads: %llu ok, %llu failed\n",
               (unsigned long long)s->reloads_ok,
               (unsigned long long)s->reloads_failed);
    if (i->reload_time == 0) {
        mtr_printf(b, "last reload: none\n");
        return;
    }
    ctl_iso(i->reload_time, t, sizeof(t));
    mtr_printf(b, "last reload: %s %s", t, i->reload_ok ? "ok" : "failed");
    if (!i->reload_ok) {
        mtr_printf(b, ": ");
        jw_text(b, i->reload_error);
    }
    mtr_printf(b, "\n");
}

static void
ctl_status_text(struct mtr_buf *b, const struct st_sum *s,
                const struct ctl_info *i, const char *line)
{
    char t[32], h[32];
    uint64_t up = ctl_uptime(s, i);

    ctl_tline(b, "version", i->version);
    mtr_printf(b, "pid: %ld\n", i->pid);
    ctl_human(up, h, sizeof(h));
    ctl_iso(s->start_time, t, sizeof(t));
    mtr_printf(b, "uptime: %llus (%s), started %s\n", (unsigned long long)up, h,
               t);
    mtr_printf(b, "workers: %zu\n", s->n_workers);
    for (size_t k = 0; k < s->n_lsn; k++) {
        mtr_printf(b, "listener: ");
        jw_text(b, s->lsn[k].name);
        mtr_printf(b, " %s %s\n", ctl_proto(&s->lsn[k]),
                   ctl_service(&s->lsn[k]));
    }
    mtr_printf(b, "connections open: %llu\n", (unsigned long long)s->open);
    ctl_tline(b, "config", i->config);
    ctl_iso(s->config_time, t, sizeof(t));
    mtr_printf(b, "config loaded: %s\n", t);
    ctl_reload_text(b, s, i);
    mtr_printf(b, "status: %s\n", line);
}

/* {"ok":N,"failed":N,"last":null or {"time","result","error"}} */
static void
ctl_reload_json(struct mtr_buf *b, const struct st_sum *s,
                const struct ctl_info *i)
{
    bool more = false, last = false;

    mtr_printf(b, "{");
    jw_u64(b, &more, "ok", s->reloads_ok);
    jw_u64(b, &more, "failed", s->reloads_failed);
    jw_key(b, &more, "last");
    if (i->reload_time == 0) {
        mtr_printf(b, "null}");
        return;
    }
    mtr_printf(b, "{");
    jw_i64(b, &last, "time", i->reload_time);
    jw_string(b, &last, "result", i->reload_ok ? "ok" : "failed");
    if (i->reload_ok) {
        jw_key(b, &last, "error");
        mtr_printf(b, "null");
    } else {
        jw_string(b, &last, "error", i->reload_error);
    }
    mtr_printf(b, "}}");
}

static void
ctl_status_json(struct mtr_buf *b, const struct st_sum *s,
                const struct ctl_info *i, const char *line)
{
    bool more = false, cfg = false;

    mtr_printf(b, "{");
    jw_string(b, &more, "version", i->version);
    jw_i64(b, &more, "pid", i->pid);
    jw_u64(b, &more, "uptime_seconds", ctl_uptime(s, i));
    jw_i64(b, &more, "start_time", s->start_time);
    jw_u64(b, &more, "workers", s->n_workers);
    jw_key(b, &more, "listeners");
    for (size_t k = 0; k < s->n_lsn; k++) {
        bool in = false;

        mtr_printf(b, "%s{", k == 0 ? "[" : ",");
        ctl_jlsn(b, &in, &s->lsn[k]);
        mtr_printf(b, "}");
    }
    mtr_printf(b, "%s", s->n_lsn == 0 ? "[]" : "]");
    jw_u64(b, &more, "connections_open", s->open);
    jw_key(b, &more, "config");
    mtr_printf(b, "{");
    jw_string(b, &cfg, "path", i->config);
    jw_i64(b, &cfg, "loaded_time", s->config_time);
    mtr_printf(b, "}");
    jw_key(b, &more, "reloads");
    ctl_reload_json(b, s, i);
    jw_string(b, &more, "status", line);
    mtr_printf(b, "}\n");
}

int
ctl_fmt_status(struct mtr_buf *b, const struct st_sum *s,
               const struct ctl_info *i, bool json)
{
    char line[512];

    st_text(s, line, sizeof(line));
    if (json) {
        ctl_status_json(b, s, i, line);
    } else {
        ctl_status_text(b, s, i, line);
    }
    return b->failed ? -1 : 0;
}

/* ---- stats ---- */

/* Which listeners have a family in /metrics (mtr_tcp, mtr_udp). */
#define CTL_TCP 1u
#define CTL_UDP 2u

/* One counter family: struct sts_ctr is an array of counters (stats.h,
 * STS_CTR_N), so an offset and a count say where its values are. */
struct ctl_family {
    const char *key;   /* the /metrics family without "echod_" */
    const char *label; /* in text */
    unsigned kinds;    /* CTL_TCP, CTL_UDP */
    unsigned n;        /* 0: one counter; else one per reason */
    size_t off;        /* of its (first) counter in struct sts_ctr */
    const char *(*reason)(unsigned r);
};

static const char *
ctl_refuse_name(unsigned r)
{
    return mtr_refuse_name((enum sts_refuse)r);
}

static const char *
ctl_close_name(unsigned r)
{
    return conn_reason_name((enum conn_reason)r);
}

static const char *
ctl_drop_name(unsigned r)
{
    return udp_drop_name((enum udp_drop)r);
}

#define CTL_OFF(f) offsetof(struct sts_ctr, f)

/* In the order of metrics.c. */
static const struct ctl_family ctl_families[] = {
    {"tcp_connections_open", "connections open", CTL_TCP, 0, CTL_OFF(open),
     NULL},
    {"tcp_connections_accepted_total", "connections accepted", CTL_TCP, 0,
     CTL_OFF(accepted), NULL},
    {"tcp_connections_refused_total", "connections refused", CTL_TCP,
     STS_REF_MAX, CTL_OFF(refused), ctl_refuse_name},
    {"tcp_connections_closed_total", "connections closed", CTL_TCP,
     CONN_REASON_MAX, CTL_OFF(closed), ctl_close_name},
    {"received_bytes_total", "bytes received", CTL_TCP | CTL_UDP, 0,
     CTL_OFF(bytes_in), NULL},
    {"sent_bytes_total", "bytes sent", CTL_TCP | CTL_UDP, 0, CTL_OFF(bytes_out),
     NULL},
    {"tcp_queued_bytes", "bytes queued", CTL_TCP, 0, CTL_OFF(queued), NULL},
    {"tcp_connections_paused", "connections paused", CTL_TCP, 0,
     CTL_OFF(paused), NULL},
    {"udp_datagrams_received_total", "datagrams received", CTL_UDP, 0,
     CTL_OFF(udp_rx), NULL},
    {"udp_datagrams_echoed_total", "datagrams echoed", CTL_UDP, 0,
     CTL_OFF(udp_echoed), NULL},
    {"udp_datagrams_dropped_total", "datagrams dropped", CTL_UDP, UDP_DROP_MAX,
     CTL_OFF(udp_drop), ctl_drop_name},
    {"udp_datagrams_discarded_total", "datagrams discarded", CTL_UDP, 0,
     CTL_OFF(udp_discarded), NULL},
};

#define CTL_FAMILIES (sizeof(ctl_families) / sizeof(ctl_families[0]))

/* Value r of family f (r < f->n, or 0). */
static uint64_t
ctl_get(const struct sts_ctr *c, const struct ctl_family *f, unsigned r)
{
    const char *at = (const char *)c + f->off;

    return ctr_get((const _Atomic uint64_t *)(const void *)at + r);
}

/* The sum over the reasons of f. */
static uint64_t
ctl_sum(const struct sts_ctr *c, const struct ctl_family *f)
{
    uint64_t n = 0;

    for (unsigned r = 0; r < f->n; r++) {
        n += ctl_get(c, f, r);
    }
    return n;
}

/* One line per family, then its reasons that are not 0, indented. */
static void
ctl_ctr_text(struct mtr_buf *b, const struct sts_ctr *c, unsigned kinds)
{
    for (size_t k = 0; k < CTL_FAMILIES; k++) {
        const struct ctl_family *f = &ctl_families[k];

        if ((f->kinds & kinds) == 0) {
            continue;
        }
        mtr_printf(
            b, "  %-28s %14llu\n", f->label,
            (unsigned long long)(f->n == 0 ? ctl_get(c, f, 0) : ctl_sum(c, f)));
        for (unsigned r = 0; r < f->n; r++) {
            uint64_t v = ctl_get(c, f, r);

            if (v > 0) {
                mtr_printf(b, "    %-26s %14llu\n", f->reason(r),
                           (unsigned long long)v);
            }
        }
    }
}

/* Every family of kinds as members; reasons as an object of all. */
static void
ctl_ctr_json(struct mtr_buf *b, bool *more, const struct sts_ctr *c,
             unsigned kinds)
{
    for (size_t k = 0; k < CTL_FAMILIES; k++) {
        const struct ctl_family *f = &ctl_families[k];
        bool in = false;

        if ((f->kinds & kinds) == 0) {
            continue;
        }
        if (f->n == 0) {
            jw_u64(b, more, f->key, ctl_get(c, f, 0));
            continue;
        }
        jw_key(b, more, f->key);
        mtr_printf(b, "{");
        for (unsigned r = 0; r < f->n; r++) {
            jw_u64(b, &in, f->reason(r), ctl_get(c, f, r));
        }
        mtr_printf(b, "}");
    }
}

/* The totals of s as one struct sts_ctr, so that they render like a
 * listener. UDP bytes received have no running total in the snapshot:
 * the UDP listeners in force stand in for it. */
static void
ctl_total(const struct st_sum *s, struct sts_ctr *t)
{
    uint64_t udp_in = 0;

    memset(t, 0, sizeof(*t));
    for (size_t k = 0; k < s->n_lsn; k++) {
        if (s->lsn[k].udp) {
            udp_in += ctr_get(&s->lsn[k].c.bytes_in);
        }
    }
    t->open = s->open;
    t->accepted = s->opened;
    t->refused[STS_REF_MAX_CONNS] = s->rejected;
    t->refused[STS_REF_PER_SOURCE] = s->rejected_source;
    t->refused[STS_REF_ACL] = s->acl;
    t->refused[STS_REF_UNTRUSTED] = s->untrusted;
    t->refused[STS_REF_EMFILE] = s->shed;
    t->refused[STS_REF_PROXY] = s->closed[CONN_PROXY];
    for (int r = 0; r < CONN_REASON_MAX; r++) {
        t->closed[r] = s->closed[r];
    }
    t->bytes_in = s->bytes_in + udp_in;
    t->bytes_out = s->bytes_out + s->udp_bytes;
    t->paused = s->paused;
    t->queued = s->queued;
    t->udp_rx = s->udp_rx;
    t->udp_echoed = s->udp_echoed;
    for (int r = 0; r < UDP_DROP_MAX; r++) {
        t->udp_drop[r] = s->udp_drop[r];
    }
    t->udp_discarded = s->udp_discarded;
}

/* A bucket's bound for people: "1us", "100ms", "10s". */
static void
ctl_le_text(double le, char *buf, size_t len)
{
    if (le < 1e-3) {
        snprintf(buf, len, "%.0fus", le * 1e6);
    } else if (le < 1) {
        snprintf(buf, len, "%.0fms", le * 1e3);
    } else {
        snprintf(buf, len, "%.0fs", le);
    }
}

/* Cumulative, as in /metrics: "<= 1ms  N" counts every delay up to 1 ms.
 * hist: STS_HIST_BUCKETS finite buckets and +Inf, not cumulative. */
static void
ctl_hist_text(struct mtr_buf *b, const char *title, const uint64_t *hist,
              uint64_t sum_ns)
{
    uint64_t cum = 0;
    char le[16], sum[32];

    mtr_printf(b, "%s (cumulative)\n", title);
    for (unsigned k = 0; k < STS_HIST_BUCKETS; k++) {
        cum += hist[k];
        ctl_le_text(sts_bucket_le(k), le, sizeof(le));
        mtr_printf(b, "  <= %-23s %14llu\n", le, (unsigned long long)cum);
    }
    cum += hist[STS_HIST_BUCKETS];
    mtr_printf(b, "  <= %-23s %14llu\n", "+Inf", (unsigned long long)cum);
    snprintf(sum, sizeof(sum), "%llu.%09llus",
             (unsigned long long)(sum_ns / 1000000000),
             (unsigned long long)(sum_ns % 1000000000));
    mtr_printf(b, "  %-28s %14s\n", "sum", sum);
}

/* "le" as /metrics writes it ("%g", "+Inf"); the sum exact. */
static void
ctl_hist_json(struct mtr_buf *b, bool *more, const char *key,
              const uint64_t *hist, uint64_t sum_ns)
{
    uint64_t cum = 0;

    jw_key(b, more, key);
    mtr_printf(b, "{\"buckets\":[");
    for (unsigned k = 0; k < STS_HIST_BUCKETS; k++) {
        cum += hist[k];
        mtr_printf(b, "{\"le\":\"%g\",\"count\":%llu},", sts_bucket_le(k),
                   (unsigned long long)cum);
    }
    cum += hist[STS_HIST_BUCKETS];
    mtr_printf(b, "{\"le\":\"+Inf\",\"count\":%llu}],",
               (unsigned long long)cum);
    mtr_printf(b, "\"sum\":%llu.%09llu,\"count\":%llu}",
               (unsigned long long)(sum_ns / 1000000000),
               (unsigned long long)(sum_ns % 1000000000),
               (unsigned long long)cum);
}

static unsigned
ctl_kinds(const struct st_lsn *l)
{
    return l->udp ? CTL_UDP : CTL_TCP;
}

static void
ctl_stats_text(struct mtr_buf *b, const struct st_sum *s)
{
    struct sts_ctr t;
    char when[32];

    for (size_t k = 0; k < s->n_lsn; k++) {
        const struct st_lsn *l = &s->lsn[k];

        mtr_printf(b, "listener ");
        jw_text(b, l->name);
        mtr_printf(b, " (%s, %s)\n", ctl_proto(l), ctl_service(l));
        ctl_ctr_text(b, &l->c, ctl_kinds(l));
    }
    ctl_total(s, &t);
    mtr_printf(b, "total (echo and discard, with listeners removed by "
                  "reloads)\n");
    ctl_ctr_text(b, &t, CTL_TCP | CTL_UDP);
    ctl_hist_text(b, "echo delay", s->hist, s->hist_sum_us * 1000);
    ctl_hist_text(b, "stamp residence (T3 - T2)", s->stamp_hist,
                  s->stamp_hist_sum_ns);
    mtr_printf(b, "reloads: %llu ok, %llu failed\n",
               (unsigned long long)s->reloads_ok,
               (unsigned long long)s->reloads_failed);
    mtr_printf(b, "workers: %zu\n", s->n_workers);
    ctl_iso(s->start_time, when, sizeof(when));
    mtr_printf(b, "started: %s\n", when);
    ctl_iso(s->config_time, when, sizeof(when));
    mtr_printf(b, "config loaded: %s\n", when);
}

static void
ctl_stats_json(struct mtr_buf *b, const struct st_sum *s)
{
    struct sts_ctr t;
    bool more = false, tot = false, rel = false;

    mtr_printf(b, "{\"listeners\":[");
    for (size_t k = 0; k < s->n_lsn; k++) {
        bool in = false;

        mtr_printf(b, "%s{", k == 0 ? "" : ",");
        ctl_jlsn(b, &in, &s->lsn[k]);
        ctl_ctr_json(b, &in, &s->lsn[k].c, ctl_kinds(&s->lsn[k]));
        mtr_printf(b, "}");
    }
    mtr_printf(b, "]");
    more = true;
    ctl_total(s, &t);
    jw_key(b, &more, "total");
    mtr_printf(b, "{");
    ctl_ctr_json(b, &tot, &t, CTL_TCP | CTL_UDP);
    mtr_printf(b, "}");
    ctl_hist_json(b, &more, "echo_delay_seconds", s->hist,
                  s->hist_sum_us * 1000);
    ctl_hist_json(b, &more, "stamp_residence_seconds", s->stamp_hist,
                  s->stamp_hist_sum_ns);
    jw_key(b, &more, "reloads_total");
    mtr_printf(b, "{");
    jw_u64(b, &rel, "ok", s->reloads_ok);
    jw_u64(b, &rel, "failed", s->reloads_failed);
    mtr_printf(b, "}");
    jw_u64(b, &more, "workers", s->n_workers);
    jw_i64(b, &more, "start_time_seconds", s->start_time);
    jw_i64(b, &more, "config_load_time_seconds", s->config_time);
    mtr_printf(b, "}\n");
}

int
ctl_fmt_stats(struct mtr_buf *b, const struct st_sum *s, bool json)
{
    if (json) {
        ctl_stats_json(b, s);
    } else {
        ctl_stats_text(b, s);
    }
    return b->failed ? -1 : 0;
}

/* ---- connections ---- */

#define CTL_COLS 9
#define CTL_CELL (SOCK_NAME_MAX + 1) /* a source, its '*' and the NUL */

static const char *const ctl_conn_head[CTL_COLS] = {
    "SOURCE", "LISTENER", "WORKER", "AGE",   "IDLE",
    "IN",     "OUT",      "QUEUED", "PAUSED"};
/* Numbers and durations are right-aligned, so their digits line up. */
static const bool ctl_conn_right[CTL_COLS] = {false, false, true, true, true,
                                              true,  true,  true, false};

/* One row's cells, as pointers for ctl_row_put. */
struct ctl_row {
    char cell[CTL_COLS][CTL_CELL];
    const char *at[CTL_COLS];
};

static void
ctl_conn_row(const struct ctl_conn *c, struct ctl_row *r)
{
    /* Less than CTL_CELL - 1 bytes, so the '*' still fits. */
    jw_text_copy(r->cell[0], CTL_CELL - 1, c->source);
    if (c->proxied) {
        size_t len = strlen(r->cell[0]);

        snprintf(r->cell[0] + len, CTL_CELL - len, "*");
    }
    jw_text_copy(r->cell[1], CTL_CELL, c->listener);
    snprintf(r->cell[2], CTL_CELL, "%u", c->worker);
    ctl_dur_ms(c->age_ms, r->cell[3], CTL_CELL);
    ctl_dur_ms(c->idle_ms, r->cell[4], CTL_CELL);
    snprintf(r->cell[5], CTL_CELL, "%llu", (unsigned long long)c->rx);
    snprintf(r->cell[6], CTL_CELL, "%llu", (unsigned long long)c->tx);
    snprintf(r->cell[7], CTL_CELL, "%llu", (unsigned long long)c->queued);
    snprintf(r->cell[8], CTL_CELL, "%s", c->paused ? "yes" : "no");
    for (int k = 0; k < CTL_COLS; k++) {
        r->at[k] = r->cell[k];
    }
}

/* Cells padded to their column's width, two spaces apart; the last one
 * is not padded, so no line ends in blanks. */
static void
ctl_row_put(struct mtr_buf *b, const char *const cell[CTL_COLS],
            const size_t w[CTL_COLS])
{
    for (int k = 0; k < CTL_COLS; k++) {
        int width = k == CTL_COLS - 1 ? 0 : (int)w[k];

        mtr_printf(b, "%s%*s", k > 0 ? "  " : "",
                   ctl_conn_right[k] ? width : -width, cell[k]);
    }
    mtr_printf(b, "\n");
}

static void
ctl_conns_text(struct mtr_buf *b, const struct ctl_conn *v, size_t n,
               uint64_t total)
{
    size_t w[CTL_COLS];
    struct ctl_row r;
    bool proxied = false;

    /* Two passes: the widths first, from the same cells. */
    for (int k = 0; k < CTL_COLS; k++) {
        w[k] = strlen(ctl_conn_head[k]);
    }
    for (size_t i = 0; i < n; i++) {
        ctl_conn_row(&v[i], &r);
        for (int k = 0; k < CTL_COLS; k++) {
            size_t len = strlen(r.cell[k]);

            w[k] = len > w[k] ? len : w[k];
        }
        proxied = proxied || v[i].proxied;
    }
    ctl_row_put(b, ctl_conn_head, w);
    for (size_t i = 0; i < n; i++) {
        ctl_conn_row(&v[i], &r);
        ctl_row_put(b, r.at, w);
    }
    if (proxied) {
        mtr_printf(b, "* source as declared by a PROXY header\n");
    }
    mtr_printf(b, "%zu of %llu connection(s) shown\n", n,
               (unsigned long long)total);
}

static void
ctl_conn_json(struct mtr_buf *b, const struct ctl_conn *c)
{
    bool more = false;

    mtr_printf(b, "{");
    jw_string(b, &more, "source", c->source);
    jw_string(b, &more, "listener", c->listener);
    jw_u64(b, &more, "worker", c->worker);
    jw_ms(b, &more, "age_seconds", c->age_ms);
    jw_ms(b, &more, "idle_seconds", c->idle_ms);
    jw_u64(b, &more, "received_bytes", c->rx);
    jw_u64(b, &more, "sent_bytes", c->tx);
    jw_u64(b, &more, "queued_bytes", c->queued);
    jw_bool(b, &more, "paused", c->paused);
    jw_bool(b, &more, "proxied", c->proxied);
    mtr_printf(b, "}");
}

int
ctl_fmt_conns(struct mtr_buf *b, const struct ctl_conn *v, size_t n,
              uint64_t total, bool json)
{
    bool more = false;

    if (!json) {
        ctl_conns_text(b, v, n, total);
        return b->failed ? -1 : 0;
    }
    mtr_printf(b, "{");
    jw_u64(b, &more, "total", total);
    jw_u64(b, &more, "shown", n);
    jw_key(b, &more, "connections");
    mtr_printf(b, "[");
    for (size_t i = 0; i < n; i++) {
        mtr_printf(b, "%s", i == 0 ? "" : ",");
        ctl_conn_json(b, &v[i]);
    }
    mtr_printf(b, "]}\n");
    return b->failed ? -1 : 0;
}
