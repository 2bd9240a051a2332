/*
 * test_ctlfmt.c - the control socket's answers: every JSON answer is one
 * valid RFC 8259 document and a newline (checked by a small validator
 * here, which is shown to reject broken JSON); strings from outside are
 * escaped in JSON and defanged in text; `stats --json` has, for each
 * listener, exactly the series /metrics has, by the same names and with
 * the same values; every reason is listed; totals come from the
 * snapshot's running totals; the histogram is cumulative; the
 * connection list is aligned and ends in "N of M"; `status` with a
 * failed reload, a good one and none.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "ctlfmt.h"
#include "metrics.h"
#include "status.h"
#include "unit.h"
#include "udp.h"

/* ---- a JSON validator (RFC 8259), independent of the code under test ---- */

struct jv {
    const char *p;
};

static bool jv_value(struct jv *v, int depth);

static void
jv_ws(struct jv *v)
{
    while (*v->p == ' ' || *v->p == '\t' || *v->p == '\n' || *v->p == '\r') {
        v->p++;
    }
}

/* One multi-byte UTF-8 character (lead and continuation bytes only). */
static bool
jv_utf8(struct jv *v)
{
    unsigned char c = (unsigned char)*v->p++;
    int more = c >= 0xc2 && c <= 0xdf   ? 1
               : c >= 0xe0 && c <= 0xef ? 2
               : c >= 0xf0 && c <= 0xf4 ? 3
                                        : -1;

    for (int i = 0; i < more; i++, v->p++) {
        if (((unsigned char)*v->p & 0xc0) != 0x80) {
            return false;
        }
    }
    return more > 0;
}

static bool
jv_escape(struct jv *v)
{
    if (*v->p != '\0' && strchr("\"\\/bfnrt", *v->p) != NULL) {
        v->p++;
        return true;
    }
    if (*v->p++ != 'u') {
        return false;
    }
    for (int i = 0; i < 4; i++) {
        if (!isxdigit((unsigned char)*v->p++)) {
            return false;
        }
    }
    return true;
}

static bool
jv_string(struct jv *v)
{
    if (*v->p++ != '"') {
        return false;
    }
    for (;;) {
        unsigned char c = (unsigned char)*v->p;

        if (c == '"') {
            v->p++;
            return true;
        }
        if (c < 0x20) { /* raw control character, or the end */
            return false;
        }
        if (c == '\\') {
            v->p++;
            if (!jv_escape(v)) {
                return false;
            }
        } else if (c >= 0x80) {
            if (!jv_utf8(v)) {
                return false;
            }
        } else {
            v->p++;
        }
    }
}

static bool
jv_digits(struct jv *v)
{
    if (!isdigit((unsigned char)*v->p)) {
        return false;
    }
    while (isdigit((unsigned char)*v->p)) {
        v->p++;
    }
    return true;
}

static bool
jv_number(struct jv *v)
{
    v->p += *v->p == '-';
    if (*v->p == '0') {
        v->p++;
    } else if (!jv_digits(v)) {
        return false;
    }
    if (*v->p == '.') {
        v->p++;
        if (!jv_digits(v)) {
            return false;
        }
    }
    if (*v->p == 'e' || *v->p == 'E') {
        v->p++;
        v->p += *v->p == '+' || *v->p == '-';
        return jv_digits(v);
    }
    return true;
}

/* The names seen in one object: none may come twice. */
struct jv_keys {
    const char *at[128];
    size_t len[128];
    size_t n;
};

/* "name": value */
static bool
jv_member(struct jv *v, int depth, struct jv_keys *k)
{
    const char *at;
    size_t len;

    jv_ws(v);
    at = v->p;
    if (!jv_string(v)) {
        return false;
    }
    len = (size_t)(v->p - at);
    for (size_t i = 0; i < k->n; i++) {
        if (k->len[i] == len && memcmp(k->at[i], at, len) == 0) {
            return false;
        }
    }
    if (k->n < 128) {
        k->at[k->n] = at;
        k->len[k->n++] = len;
    }
    jv_ws(v);
    return *v->p++ == ':' && jv_value(v, depth + 1);
}

/* The items of an object (k: its names) or array (k NULL) after the
 * opening bracket: none, or items separated by commas, then close. */
static bool
jv_items(struct jv *v, int depth, char close, struct jv_keys *k)
{
    v->p++;
    jv_ws(v);
    if (*v->p == close) {
        v->p++;
        return true;
    }
    for (;;) {
        if (!(k != NULL ? jv_member(v, depth, k) : jv_value(v, depth + 1))) {
            return false;
        }
        jv_ws(v);
        if (*v->p == close) {
            v->p++;
            return true;
        }
        if (*v->p++ != ',') {
            return false;
        }
    }
}

static bool
jv_word(struct jv *v, const char *w)
{
    size_t n = strlen(w);

    if (strncmp(v->p, w, n) != 0) {
        return false;
    }
    v->p += n;
    return true;
}

static bool
jv_value(struct jv *v, int depth)
{
    if (depth > 32) {
        return false;
    }
    jv_ws(v);
    switch (*v->p) {
    case '{': {
        struct jv_keys k = {.n = 0};

        return jv_items(v, depth, '}', &k);
    }
    case '[':
        return jv_items(v, depth, ']', NULL);
    case '"':
        return jv_string(v);
    case 't':
        return jv_word(v, "true");
    case 'f':
        return jv_word(v, "false");
    case 'n':
        return jv_word(v, "null");
    default:
        return jv_number(v);
    }
}

/* Exactly one JSON value, then white space only. */
static bool
json_valid(const char *s)
{
    struct jv v = {s};

    if (!jv_value(&v, 0)) {
        return false;
    }
    jv_ws(&v);
    return *v.p == '\0';
}

/* What every JSON answer must be: one document, one newline. */
static void
json_ok(const char *s)
{
    size_t n = strlen(s);

    if (!json_valid(s) || n < 2 || s[n - 1] != '\n' || s[n - 2] != '}') {
        fail_msg("not one JSON document and a newline:\n%s", s);
    }
}

/* ---- helpers ---- */

/* The text with each run of spaces as one, to look for lines by their
 * words (alignment is tested on its own). */
static char *
squeeze(const char *t)
{
    char *s = malloc(strlen(t) + 1), *o = s;

    assert_non_null(s);
    for (; *t != '\0'; t++) {
        if (!(*t == ' ' && o > s && o[-1] == ' ')) {
            *o++ = *t;
        }
    }
    *o = '\0';
    return s;
}

/* A copy of the object that starts at p (braces balanced; the names
 * used here hold none). */
static char *
object_at(const char *p)
{
    int depth = 0;
    const char *q = p;

    assert_non_null(p);
    do {
        depth += (*q == '{') - (*q == '}');
        q++;
    } while (depth > 0 && *q != '\0');
    return strndup(p, (size_t)(q - p));
}

/* The JSON object of one listener of a `stats` answer. */
static char *
listener_obj(const char *json, const char *name)
{
    char head[128];

    snprintf(head, sizeof(head), "{\"listener\":\"%s\"", name);
    return object_at(strstr(json, head));
}

static struct st_sum s;

/* Every counter of c a value of its own (base + index), so that a field
 * shown under another's name is seen. */
static void
distinct(struct sts_ctr *c, uint64_t base)
{
    _Atomic uint64_t *a = (_Atomic uint64_t *)(void *)c;

    for (size_t i = 0; i < STS_CTR_N; i++) {
        a[i] = base + i;
    }
}

/* A TCP echo, a UDP echo and a metrics listener, and totals that differ
 * from their sums (totals count removed listeners too). */
static void
fill(void)
{
    memset(&s, 0, sizeof(s));
    s.n_tcp = 1;
    s.n_udp = 1;
    s.n_workers = 4;
    s.n_lsn = 3;
    snprintf(s.lsn[0].name, sizeof(s.lsn[0].name), "127.0.0.1:7");
    distinct(&s.lsn[0].c, 100);
    snprintf(s.lsn[1].name, sizeof(s.lsn[1].name), "[::1]:7");
    s.lsn[1].udp = true;
    distinct(&s.lsn[1].c, 200);
    snprintf(s.lsn[2].name, sizeof(s.lsn[2].name), "127.0.0.1:9100");
    s.lsn[2].service = ST_SVC_METRICS;
    distinct(&s.lsn[2].c, 300);
    s.open = 1001;
    s.opened = 1002;
    s.rejected = 1003;
    s.rejected_source = 1004;
    s.shed = 1005;
    s.acl = 1006;
    s.untrusted = 1007;
    s.bytes_out = 1008;
    s.udp_rx = 1009;
    s.udp_echoed = 1010;
    s.udp_bytes = 1011;
    s.bytes_in = 1012;
    s.paused = 1013;
    s.queued = 1014;
    for (int r = 0; r < CONN_REASON_MAX; r++) {
        s.closed[r] = 2000 + (uint64_t)r;
    }
    for (int r = 0; r < UDP_DROP_MAX; r++) {
        s.udp_drop[r] = 3000 + (uint64_t)r;
    }
    s.hist[0] = 5;
    s.hist[3] = 2;
    s.hist[STS_HIST_BUCKETS] = 1;
    s.hist_sum_us = 12000001;
    s.reloads_ok = 2;
    s.reloads_failed = 1;
    s.start_time = 1700000000; /* 2023-11-14T22:13:20Z */
    s.config_time = 1700000100;
}

static char *
stats(bool json)
{
    struct mtr_buf b = {0};

    assert_int_equal(ctl_fmt_stats(&b, &s, json), 0);
    assert_non_null(b.p);
    assert_int_equal(strlen(b.p), b.len);
    if (json) {
        json_ok(b.p);
    }
    return b.p;
}

/* ---- the validator can fail ---- */

static void
test_validator(void **state)
{
    static const char *const bad[] = {
        "{\"a\":1,}",
        "[1,]",
        "{\"a\" 1}",
        "\"a\x01\"",
        "\"\\q\"",
        "01",
        "1.",
        "-",
        "{\"a\":1}{\"b\":2}",
        "{\"a\":1,\"a\":2}",
        "{\"a\":",
        "\"\xff\"",
        "{'a':1}",
        "[1 2]",
        "[tru]",
        "\"\\u12g4\"",
        "{\"a\":1]",
        "",
    };

    (void)state;
    assert_true(json_valid("{\"a\":[1,-2.5e3,0.125,true,false,null,"
                           "\"\\u00e9 \xc3\xa9 \\\" \\\\ \\n\"],\"b\":{}}"));
    assert_true(json_valid(" [ ] \n"));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (json_valid(bad[i])) {
            fail_msg("accepted broken JSON: %s", bad[i]);
        }
    }
}

/* ---- strings from outside ---- */

static void
test_json_escapes_names(void **state)
{
    char *t, *x;

    (void)state;
    fill();
    /* quote, backslash, C0 controls, é, an invalid byte, a C1 control */
    snprintf(s.lsn[0].name, sizeof(s.lsn[0].name),
             "a\"b\\c\x01"
             "d\x1f\xc3\xa9\xff\x1b[31m\xc2\x9b");
    t = stats(true);
    t_has(t, "{\"listener\":\"a\\\"b\\\\c\\u0001d\\u001f\xc3\xa9\\ufffd"
             "\\u001b[31m\xc2\x9b\",");
    free(t);
    t = stats(false);
    x = squeeze(t);
    /* In text nothing a terminal acts on is left. */
    t_has(x, "listener a\"b\\c?d?\xc3\xa9??[31m? (tcp, echo)\n");
    free(x);
    free(t);
}

/* An error longer than one mtr_printf piece once escaped. */
static void
test_long_escaped_string(void **state)
{
    struct ctl_info i = {.version = "1.2.3", .pid = 42, .now = 1700000042};
    struct mtr_buf b = {0};
    char *p;

    (void)state;
    fill();
    i.reload_time = 1700000030;
    memset(i.reload_error, '\x02', sizeof(i.reload_error) - 1);
    assert_int_equal(ctl_fmt_status(&b, &s, &i, true), 0);
    json_ok(b.p);
    p = strstr(b.p, "\"error\":\"");
    assert_non_null(p);
    p += strlen("\"error\":\"");
    for (size_t k = 0; k < sizeof(i.reload_error) - 1; k++) {
        assert_memory_equal(p + 6 * k, "\\u0002", 6);
    }
    assert_memory_equal(p + 6 * (sizeof(i.reload_error) - 1), "\"}", 2);
    mtr_buf_free(&b);
}

/* ---- stats ---- */

/* Each listener's JSON has the series /metrics has for it, by the same
 * name (less "echod_") and with the same value, and nothing more. */
static void
test_stats_mirror_metrics(void **state)
{
    struct mtr_buf m = {0};
    struct mtr_proc proc = {0};
    char *j, *line, *save = NULL;
    size_t series[ST_LISTENERS] = {0};

    (void)state;
    fill();
    j = stats(true);
    assert_int_equal(mtr_render(&m, &s, &proc, "1.2.3"), 0);
    for (line = strtok_r(m.p, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char name[128], lsn[64], reason[64] = "", want[256];
        unsigned long long v;
        const char *rp = strstr(line, ",reason=\"");
        char *o, *in;
        size_t k;

        if (sscanf(line, "echod_%127[a-z_]{listener=\"%63[^\"]\"", name, lsn) !=
            2) {
            continue; /* HELP, TYPE, histogram, process */
        }
        assert_int_equal(sscanf(strrchr(line, '}'), "} %llu", &v), 1);
        if (rp != NULL) {
            assert_int_equal(sscanf(rp, ",reason=\"%63[^\"]", reason), 1);
        }
        for (k = 0; strcmp(s.lsn[k].name, lsn) != 0; k++) {
            assert_true(k + 1 < s.n_lsn);
        }
        series[k]++;
        o = listener_obj(j, lsn);
        snprintf(want, sizeof(want), "\"%s\":", name);
        in = strstr(o, want);
        if (in == NULL) {
            fail_msg("%s has no %s\n%s", lsn, name, o);
        }
        if (rp != NULL) {
            in = object_at(in + strlen(want));
            snprintf(want, sizeof(want), "\"%s\":%llu", reason, v);
        } else {
            in = strdup(o);
            snprintf(want, sizeof(want), "\"%s\":%llu", name, v);
        }
        strcat(want, ",");
        if (strstr(in, want) == NULL) {
            want[strlen(want) - 1] = '}';
            t_has(in, want);
        }
        free(in);
        free(o);
    }
    /* Nothing more: as many numbers as series. */
    for (size_t k = 0; k < s.n_lsn; k++) {
        char *o = listener_obj(j, s.lsn[k].name);
        size_t nums = 0;

        for (const char *p = o; (p = strstr(p, "\":")) != NULL; p++) {
            nums += isdigit((unsigned char)p[2]) != 0;
        }
        assert_true(series[k] > 0);
        assert_int_equal(nums, series[k]);
        free(o);
    }
    free(j);
    mtr_buf_free(&m);
}

static void
test_every_reason_in_json(void **state)
{
    char *j, *tcp, *udp, *tot, want[64];

    (void)state;
    fill();
    memset(&s.lsn[0].c, 0, sizeof(s.lsn[0].c)); /* zeros are listed too */
    j = stats(true);
    tcp = listener_obj(j, "127.0.0.1:7");
    udp = listener_obj(j, "[::1]:7");
    tot = object_at(strstr(j, "\"total\":") + strlen("\"total\":"));
    for (int r = 0; r < STS_REF_MAX; r++) {
        snprintf(want, sizeof(want),
                 "\"%s\":", mtr_refuse_name((enum sts_refuse)r));
        t_has(tcp, want);
        t_has(tot, want);
    }
    for (int r = 0; r < CONN_REASON_MAX; r++) {
        snprintf(want, sizeof(want), "\"%s\":0",
                 conn_reason_name((enum conn_reason)r));
        t_has(tcp, want);
    }
    for (int r = 0; r < UDP_DROP_MAX; r++) {
        snprintf(want, sizeof(want),
                 "\"%s\":", udp_drop_name((enum udp_drop)r));
        t_has(udp, want);
        t_has(tot, want);
    }
    t_has(tcp, "\"protocol\":\"tcp\",\"service\":\"echo\"");
    t_has(udp, "\"protocol\":\"udp\",\"service\":\"echo\"");
    t_lacks(tcp, "udp_datagrams");
    t_lacks(udp, "tcp_connections");
    t_lacks(udp, "tcp_queued_bytes");
    free(tot);
    free(udp);
    free(tcp);
    free(j);
}

/* A discard listener is named so, in JSON and text, and a UDP one has
 * its discarded datagrams, as in /metrics; so have the totals. */
static void
test_discard_listener(void **state)
{
    char *j, *udp, *tot, *t;

    (void)state;
    fill();
    s.lsn[1].service = ST_SVC_DISCARD;
    s.lsn[1].c.udp_discarded = 77;
    s.udp_discarded = 78;
    j = stats(true);
    udp = listener_obj(j, "[::1]:7");
    tot = object_at(strstr(j, "\"total\":") + strlen("\"total\":"));
    t_has(udp, "\"protocol\":\"udp\",\"service\":\"discard\"");
    t_has(udp, "\"udp_datagrams_discarded_total\":77");
    t_has(tot, "\"udp_datagrams_discarded_total\":78");
    t = stats(false);
    t_has(t, "listener [::1]:7 (udp, discard)\n");
    free(t);
    free(tot);
    free(udp);
    free(j);
}

static void
test_totals(void **state)
{
    char *j, *tot, *t, *x;

    (void)state;
    fill();
    j = stats(true);
    tot = object_at(strstr(j, "\"total\":") + strlen("\"total\":"));
    t_has(tot, "{\"tcp_connections_open\":1001,"
               "\"tcp_connections_accepted_total\":1002,"
               "\"tcp_connections_refused_total\":{\"max-connections\":1003,"
               "\"per-source\":1004,\"acl\":1006,\"proxy-untrusted\":1007,"
               "\"emfile\":1005,\"proxy\":2007},"
               "\"tcp_connections_closed_total\":{\"eof\":2000,");
    /* TCP 1012 + the UDP listener's 218 (bytes_in is counter 18 of
     * struct sts_ctr); TCP 1008 + UDP 1011. */
    t_has(tot, "\"received_bytes_total\":1230,\"sent_bytes_total\":2019,"
               "\"tcp_queued_bytes\":1014,\"tcp_connections_paused\":1013,"
               "\"udp_datagrams_received_total\":1009,"
               "\"udp_datagrams_echoed_total\":1010,"
               "\"udp_datagrams_dropped_total\":{\"truncated\":3000,");
    t_has(j, "\"reloads_total\":{\"ok\":2,\"failed\":1},\"workers\":4,"
             "\"start_time_seconds\":1700000000,"
             "\"config_load_time_seconds\":1700000100}\n");
    t = stats(false);
    x = squeeze(t);
    t_has(x, "total (echo and discard, with listeners removed by reloads)\n"
             " connections open 1001\n connections accepted 1002\n"
             " connections refused 7032\n max-connections 1003\n");
    t_has(x, " bytes received 1230\n bytes sent 2019\n");
    t_has(x, "reloads: 2 ok, 1 failed\nworkers: 4\n"
             "started: 2023-11-14T22:13:20Z\n"
             "config loaded: 2023-11-14T22:15:00Z\n");
    free(x);
    free(t);
    free(tot);
    free(j);
}

/* Text leaves zero reasons out, never the family's line. */
static void
test_text_zero_reasons(void **state)
{
    char *t, *x;

    (void)state;
    fill();
    memset(&s.lsn[0].c, 0, sizeof(s.lsn[0].c));
    s.lsn[0].c.refused[STS_REF_ACL] = 3;
    s.lsn[0].c.closed[CONN_IDLE] = 4;
    t = stats(false);
    x = squeeze(t);
    t_has(x, "listener 127.0.0.1:7 (tcp, echo)\n connections open 0\n"
             " connections accepted 0\n connections refused 3\n acl 3\n"
             " connections closed 4\n idle-timeout 4\n bytes received 0\n"
             " bytes sent 0\n bytes queued 0\n connections paused 0\n"
             "listener [::1]:7 (udp, echo)\n bytes received 218\n");
    t_lacks(x, " per-source 0");
    free(x);
    free(t);
}

static void
test_histogram(void **state)
{
    char *j, *t, *x;

    (void)state;
    fill();
    j = stats(true);
    t_has(j, "\"echo_delay_seconds\":{\"buckets\":[{\"le\":\"1e-06\","
             "\"count\":5},{\"le\":\"1e-05\",\"count\":5},{\"le\":\"0.0001\","
             "\"count\":5},{\"le\":\"0.001\",\"count\":7},{\"le\":\"0.01\","
             "\"count\":7},{\"le\":\"0.1\",\"count\":7},{\"le\":\"1\","
             "\"count\":7},{\"le\":\"10\",\"count\":7},{\"le\":\"+Inf\","
             "\"count\":8}],\"sum\":12.000001000,\"count\":8}");
    t = stats(false);
    x = squeeze(t);
    t_has(x, "echo delay (cumulative)\n <= 1us 5\n <= 10us 5\n <= 100us 5\n"
             " <= 1ms 7\n <= 10ms 7\n <= 100ms 7\n <= 1s 7\n <= 10s 7\n"
             " <= +Inf 8\n sum 12.000001000s\n");
    free(x);
    free(t);
    free(j);
}

/* ---- connections ---- */

static const struct ctl_conn conns[] = {
    {.source = "192.0.2.1:50000",
     .listener = "127.0.0.1:7",
     .age_ms = 2310,
     .idle_ms = 10,
     .rx = 1048576,
     .tx = 1048576},
    {.source = "[2001:db8::7]:50312",
     .listener = "[::]:7",
     .worker = 12,
     .age_ms = 3723000,
     .idle_ms = 61000,
     .rx = 5,
     .tx = 3,
     .queued = 2,
     .paused = true,
     .proxied = true},
};

static void
test_conns_text(void **state)
{
    struct mtr_buf b = {0};

    (void)state;
    assert_int_equal(ctl_fmt_conns(&b, conns, 2, 7, false), 0);
    assert_string_equal(
        b.p, "SOURCE                LISTENER     WORKER     AGE    IDLE     "
             "  IN      OUT  QUEUED  PAUSED\n"
             "192.0.2.1:50000       127.0.0.1:7       0   2.31s   0.01s  "
             "1048576  1048576       0  no\n"
             "[2001:db8::7]:50312*  [::]:7           12  1h 02m  1m 01s     "
             "   5        3       2  yes\n"
             "* source as declared by a PROXY header\n"
             "2 of 7 connection(s) shown\n");
    mtr_buf_free(&b);
    assert_int_equal(ctl_fmt_conns(&b, conns, 0, 0, false), 0);
    assert_string_equal(b.p, "SOURCE  LISTENER  WORKER  AGE  IDLE  IN  OUT  "
                             "QUEUED  PAUSED\n0 of 0 connection(s) shown\n");
    mtr_buf_free(&b);
}

static void
test_conns_json(void **state)
{
    struct mtr_buf b = {0};

    (void)state;
    assert_int_equal(ctl_fmt_conns(&b, conns, 2, 7, true), 0);
    json_ok(b.p);
    assert_string_equal(
        b.p, "{\"total\":7,\"shown\":2,\"connections\":["
             "{\"source\":\"192.0.2.1:50000\",\"listener\":\"127.0.0.1:7\","
             "\"worker\":0,\"age_seconds\":2.310,\"idle_seconds\":0.010,"
             "\"received_bytes\":1048576,\"sent_bytes\":1048576,"
             "\"queued_bytes\":0,\"paused\":false,\"proxied\":false},"
             "{\"source\":\"[2001:db8::7]:50312\",\"listener\":\"[::]:7\","
             "\"worker\":12,\"age_seconds\":3723.000,"
             "\"idle_seconds\":61.000,\"received_bytes\":5,\"sent_bytes\":3,"
             "\"queued_bytes\":2,\"paused\":true,\"proxied\":true}]}\n");
    mtr_buf_free(&b);
    assert_int_equal(ctl_fmt_conns(&b, conns, 0, 0, true), 0);
    json_ok(b.p);
    assert_string_equal(b.p, "{\"total\":0,\"shown\":0,\"connections\":[]}\n");
    mtr_buf_free(&b);
}

/* ---- status ---- */

static char *
status(const struct ctl_info *i, bool json)
{
    struct mtr_buf b = {0};

    assert_int_equal(ctl_fmt_status(&b, &s, i, json), 0);
    if (json) {
        json_ok(b.p);
    }
    return b.p;
}

static struct ctl_info
info(void)
{
    struct ctl_info i = {
        .version = "1.2.3",
        .pid = 4242,
        .now = 1700000000 + 3 * 86400 + 4 * 3600 + 5 * 60 + 7,
        .config = "/etc/echod \"x\".conf",
        .reload_time = 1700003600,
        .reload_ok = false,
    };

    snprintf(i.reload_error, sizeof(i.reload_error),
             "/etc/echod.conf:3: bad\nvalue");
    return i;
}

static void
test_status_reload_failed(void **state)
{
    struct ctl_info i = info();
    char *t;

    (void)state;
    fill();
    s.reload_failed = true;
    t = status(&i, false);
    assert_string_equal(
        t, "version: 1.2.3\n"
           "pid: 4242\n"
           "uptime: 273907s (3d 4h 05m), started 2023-11-14T22:13:20Z\n"
           "workers: 4\n"
           "listener: 127.0.0.1:7 tcp echo\n"
           "listener: [::1]:7 udp echo\n"
           "listener: 127.0.0.1:9100 tcp metrics\n"
           "connections open: 1001\n"
           "config: /etc/echod \"x\".conf\n"
           "config loaded: 2023-11-14T22:15:00Z\n"
           "reloads: 2 ok, 1 failed\n"
           "last reload: 2023-11-14T23:13:20Z failed: "
           "/etc/echod.conf:3: bad?value\n"
           "status: 1 listener(s), 1001 connection(s) open, 1002 accepted, "
           "5025 refused (1004 per source); udp: 1 socket(s), 1009 "
           "received, 1010 echoed, 36066 dropped (3000 truncated, 3001 loop, "
           "3002 address, 3003 acl, 3004 per-source, 3005 per-source-bytes, "
           "3006 rate, 3007 rate-bytes, 3008 blocked, 3009 error, "
           "3010 stamp-short, 3011 stamp-auth); last "
           "reload failed, see the log\n");
    free(t);
    t = status(&i, true);
    t_has(t, "{\"version\":\"1.2.3\",\"pid\":4242,\"uptime_seconds\":273907,"
             "\"start_time\":1700000000,\"workers\":4,\"listeners\":["
             "{\"listener\":\"127.0.0.1:7\",\"protocol\":\"tcp\","
             "\"service\":\"echo\"},{\"listener\":\"[::1]:7\",\"protocol\":"
             "\"udp\",\"service\":\"echo\"},{\"listener\":\"127.0.0.1:9100\","
             "\"protocol\":\"tcp\",\"service\":\"metrics\"}],"
             "\"connections_open\":1001,\"config\":{\"path\":"
             "\"/etc/echod \\\"x\\\".conf\",\"loaded_time\":1700000100},"
             "\"reloads\":{\"ok\":2,\"failed\":1,\"last\":{\"time\":1700003600,"
             "\"result\":\"failed\",\"error\":"
             "\"/etc/echod.conf:3: bad\\u000avalue\"}},\"status\":\"1 "
             "listener(s), 1001 connection(s) open");
    t_has(t, "; last reload failed, see the log\"}\n");
    free(t);
}

static void
test_status_reload_ok_and_none(void **state)
{
    struct ctl_info i = info();
    char *t;

    (void)state;
    fill();
    i.reload_ok = true;
    i.reload_error[0] = '\0';
    t = status(&i, false);
    t_has(t, "\nlast reload: 2023-11-14T23:13:20Z ok\n");
    free(t);
    t = status(&i, true);
    t_has(t,
          "\"last\":{\"time\":1700003600,\"result\":\"ok\",\"error\":null}}");
    free(t);
    i.reload_time = 0;
    t = status(&i, false);
    t_has(t, "\nlast reload: none\n");
    free(t);
    t = status(&i, true);
    t_has(t, "\"reloads\":{\"ok\":2,\"failed\":1,\"last\":null},");
    free(t);
}

static void
test_uptime_human(void **state)
{
    static const struct {
        int64_t up;
        const char *line;
    } cases[] = {
        {42, "uptime: 42s (42s),"},
        {5 * 60 + 3, "uptime: 303s (5m 03s),"},
        {4 * 3600 + 5 * 60, "uptime: 14700s (4h 05m),"},
        {86400, "uptime: 86400s (1d 0h 00m),"},
        {-5, "uptime: 0s (0s),"}, /* the clock went back */
    };
    struct ctl_info i = info();

    (void)state;
    fill();
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        char *t;

        i.now = s.start_time + cases[k].up;
        t = status(&i, false);
        t_has(t, cases[k].line);
        free(t);
    }
}

/* Empty snapshot: still valid JSON (empty arrays, no stray commas). */
static void
test_empty_snapshot(void **state)
{
    struct ctl_info i = {0};
    char *t;

    (void)state;
    memset(&s, 0, sizeof(s));
    t = stats(true);
    t_has(t, "{\"listeners\":[],\"total\":{\"tcp_connections_open\":0,");
    free(t);
    t = status(&i, true);
    t_has(t, "\"version\":\"\",");
    t_has(t, "\"listeners\":[],");
    free(t);
}

/* A failed buffer fails every answer. */
static void
test_failed_buffer(void **state)
{
    struct mtr_buf b = {0};
    struct ctl_info i = info();

    (void)state;
    fill();
    b.failed = 1;
    assert_int_equal(ctl_fmt_stats(&b, &s, true), -1);
    assert_int_equal(ctl_fmt_status(&b, &s, &i, false), -1);
    assert_int_equal(ctl_fmt_conns(&b, conns, 2, 2, true), -1);
    assert_int_equal(b.len, 0);
    mtr_buf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validator),
        cmocka_unit_test(test_json_escapes_names),
        cmocka_unit_test(test_long_escaped_string),
        cmocka_unit_test(test_stats_mirror_metrics),
        cmocka_unit_test(test_every_reason_in_json),
        cmocka_unit_test(test_discard_listener),
        cmocka_unit_test(test_totals),
        cmocka_unit_test(test_text_zero_reasons),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_conns_text),
        cmocka_unit_test(test_conns_json),
        cmocka_unit_test(test_status_reload_failed),
        cmocka_unit_test(test_status_reload_ok_and_none),
        cmocka_unit_test(test_uptime_human),
        cmocka_unit_test(test_empty_snapshot),
        cmocka_unit_test(test_failed_buffer),
    };

    t_deadline(10);
    return cmocka_run_group_tests_name("ctlfmt", tests, NULL, NULL);
}
