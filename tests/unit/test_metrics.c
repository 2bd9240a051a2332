/*
 * test_metrics.c - the Prometheus text of a snapshot: every family has
 * HELP and TYPE once, per-listener series carry listener, protocol and
 * service labels, TCP families only for TCP listeners and UDP ones only
 * for UDP, refusals, closes and drops by reason, the histogram's
 * buckets are cumulative and end in +Inf equal to _count, and the
 * process figures; the STATUS line of the same snapshot is unchanged.
 * Discard listeners carry service="discard", and the datagrams a UDP one
 * took show as discarded, in /metrics and at the end of STATUS.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "metrics.h"
#include "status.h"
#include "unit.h"

static struct st_sum s;

static void
fill(void)
{
    memset(&s, 0, sizeof(s));
    s.n_tcp = 1;
    s.n_udp = 1;
    s.n_workers = 4;
    s.n_lsn = 2;
    snprintf(s.lsn[0].name, sizeof(s.lsn[0].name), "127.0.0.1:7");
    s.lsn[0].c.open = 2;
    s.lsn[0].c.accepted = 17;
    s.lsn[0].c.refused[STS_REF_ACL] = 3;
    s.lsn[0].c.closed[CONN_EOF] = 15;
    s.lsn[0].c.bytes_in = 1000;
    s.lsn[0].c.bytes_out = 999;
    s.lsn[0].c.queued = 1;
    snprintf(s.lsn[1].name, sizeof(s.lsn[1].name), "[::1]:7");
    s.lsn[1].udp = true;
    s.lsn[1].c.udp_rx = 40;
    s.lsn[1].c.udp_echoed = 31;
    s.lsn[1].c.udp_drop[UDP_DROP_RATE] = 9;
    s.hist[0] = 5;
    s.hist[3] = 2;
    s.hist[STS_HIST_BUCKETS] = 1;
    s.hist_sum_us = 12000000;
    s.reloads_ok = 2;
    s.reloads_failed = 1;
    s.start_time = 1700000000;
    s.config_time = 1700000100;
    s.open = 2;
    s.opened = 17;
    s.acl = 3;
}

static char *
render(void)
{
    struct mtr_buf b = {0};
    struct mtr_proc p = {
        .cpu_seconds = 1.5, .rss_bytes = 4096, .open_fds = 9, .max_fds = 1024};

    assert_int_equal(mtr_render(&b, &s, &p, "1.2.3"), 0);
    assert_non_null(b.p);
    assert_int_equal(strlen(b.p), b.len);
    return b.p;
}

#define TCP "listener=\"127.0.0.1:7\",protocol=\"tcp\",service=\"echo\""
#define UDP "listener=\"[::1]:7\",protocol=\"udp\",service=\"echo\""

static void
test_listener_series(void **state)
{
    char *t;

    (void)state;
    fill();
    t = render();
    t_has(t, "# TYPE echod_tcp_connections_accepted_total counter\n");
    t_has(t, "echod_tcp_connections_open{" TCP "} 2\n");
    t_has(t, "echod_tcp_connections_accepted_total{" TCP "} 17\n");
    t_has(t, "echod_tcp_connections_refused_total{" TCP ",reason=\"acl\"} 3\n");
    t_has(t, "echod_tcp_connections_refused_total{" TCP
             ",reason=\"per-source\"} 0\n");
    t_has(t, "echod_tcp_connections_closed_total{" TCP ",reason=\"eof\"} 15\n");
    t_has(t, "echod_received_bytes_total{" TCP "} 1000\n");
    t_has(t, "echod_sent_bytes_total{" TCP "} 999\n");
    t_has(t, "echod_tcp_queued_bytes{" TCP "} 1\n");
    t_has(t, "echod_tcp_connections_paused{" TCP "} 0\n");
    t_has(t, "echod_udp_datagrams_received_total{" UDP "} 40\n");
    t_has(t, "echod_udp_datagrams_echoed_total{" UDP "} 31\n");
    t_has(t, "echod_udp_datagrams_dropped_total{" UDP ",reason=\"rate\"} 9\n");
    t_lacks(t, "echod_tcp_connections_open{" UDP);
    t_lacks(t, "echod_udp_datagrams_received_total{" TCP);
    free(t);
}

static void
test_histogram_cumulative(void **state)
{
    char *t;

    (void)state;
    fill();
    t = render();
    t_has(t, "# TYPE echod_echo_delay_seconds histogram\n");
    t_has(t, "echod_echo_delay_seconds_bucket{le=\"1e-06\"} 5\n");
    t_has(t, "echod_echo_delay_seconds_bucket{le=\"0.0001\"} 5\n");
    t_has(t, "echod_echo_delay_seconds_bucket{le=\"0.001\"} 7\n");
    t_has(t, "echod_echo_delay_seconds_bucket{le=\"10\"} 7\n");
    t_has(t, "echod_echo_delay_seconds_bucket{le=\"+Inf\"} 8\n");
    t_has(t, "echod_echo_delay_seconds_count 8\n");
    t_has(t, "echod_echo_delay_seconds_sum 12.000000000\n");
    free(t);
}

static void
test_process(void **state)
{
    char *t;
    char line[256];

    (void)state;
    fill();
    t = render();
    t_has(t, "echod_build_info{version=\"1.2.3\"} 1\n");
    t_has(t, "echod_workers 4\n");
    t_has(t, "echod_reloads_total{result=\"ok\"} 2\n");
    t_has(t, "echod_reloads_total{result=\"failed\"} 1\n");
    t_has(t, "echod_config_load_time_seconds 1700000100\n");
    t_has(t, "process_cpu_seconds_total 1.50\n");
    t_has(t, "process_resident_memory_bytes 4096\n");
    t_has(t, "process_open_fds 9\n");
    t_has(t, "process_max_fds 1024\n");
    t_has(t, "process_start_time_seconds 1700000000\n");
    /* One snapshot, two views: STATUS says the same. */
    st_text(&s, line, sizeof(line));
    assert_string_equal(line, "1 listener(s), 2 connection(s) open, 17 "
                              "accepted, 3 refused (0 per source); udp: 1 "
                              "socket(s), 0 received, 0 echoed, 0 dropped");
    free(t);
}

#define DTCP "listener=\"127.0.0.1:9\",protocol=\"tcp\",service=\"discard\""
#define DUDP "listener=\"127.0.0.1:9\",protocol=\"udp\",service=\"discard\""

/* A TCP and a UDP discard listener beside the echo ones. */
static void
test_discard(void **state)
{
    char line[512];
    char *t;

    (void)state;
    fill();
    s.n_tcp = 2;
    s.n_udp = 2;
    s.n_lsn = 4;
    snprintf(s.lsn[2].name, sizeof(s.lsn[2].name), "127.0.0.1:9");
    s.lsn[2].service = ST_SVC_DISCARD;
    s.lsn[2].c.accepted = 1;
    s.lsn[2].c.bytes_in = 67108864;
    snprintf(s.lsn[3].name, sizeof(s.lsn[3].name), "127.0.0.1:9");
    s.lsn[3].udp = true;
    s.lsn[3].service = ST_SVC_DISCARD;
    s.lsn[3].c.udp_rx = 6;
    s.lsn[3].c.udp_discarded = 5;
    s.lsn[3].c.udp_drop[UDP_DROP_ACL] = 1;
    s.lsn[3].c.bytes_in = 600;
    s.udp_rx = 46;
    s.udp_echoed = 31;
    s.udp_drop[UDP_DROP_RATE] = 9;
    s.udp_drop[UDP_DROP_ACL] = 1;
    s.udp_discarded = 5;
    t = render();
    t_has(t, "echod_tcp_connections_accepted_total{" DTCP "} 1\n");
    t_has(t, "echod_received_bytes_total{" DTCP "} 67108864\n");
    t_has(t, "echod_sent_bytes_total{" DTCP "} 0\n");
    t_has(t, "echod_udp_datagrams_received_total{" DUDP "} 6\n");
    t_has(t, "echod_udp_datagrams_echoed_total{" DUDP "} 0\n");
    t_has(t, "echod_udp_datagrams_discarded_total{" DUDP "} 5\n");
    t_has(t, "echod_udp_datagrams_dropped_total{" DUDP ",reason=\"acl\"} 1\n");
    t_has(t, "echod_udp_datagrams_discarded_total{" UDP "} 0\n");
    t_lacks(t, "echod_udp_datagrams_discarded_total{" DTCP);
    st_text(&s, line, sizeof(line));
    assert_string_equal(line, "2 listener(s), 2 connection(s) open, 17 "
                              "accepted, 3 refused (0 per source); udp: 2 "
                              "socket(s), 46 received, 31 echoed, 10 dropped "
                              "(1 acl, 9 rate), 5 discarded");
    free(t);
}

static void
test_service_names(void **state)
{
    (void)state;
    assert_string_equal(st_service_name(ST_SVC_ECHO), "echo");
    assert_string_equal(st_service_name(ST_SVC_DISCARD), "discard");
    assert_string_equal(st_service_name(ST_SVC_METRICS), "metrics");
}

/* Each family is introduced once, before its samples. */
static void
test_help_type_once(void **state)
{
    char *t;
    char *line, *save = NULL;
    char seen[64][64];
    size_t n = 0;

    (void)state;
    fill();
    t = render();
    for (line = strtok_r(t, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char name[64];

        if (sscanf(line, "# TYPE %63s", name) != 1) {
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            assert_string_not_equal(seen[i], name);
        }
        assert_true(n < 64);
        snprintf(seen[n++], sizeof(seen[0]), "%s", name);
    }
    assert_true(n >= 20);
    free(t);
}

static void
test_proc_read(void **state)
{
    struct mtr_proc p;

    (void)state;
    mtr_proc_read(&p);
    assert_true(p.rss_bytes > 0);
    assert_true(p.open_fds >= 3); /* stdin, stdout, stderr at least */
    assert_true(p.max_fds >= p.open_fds);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listener_series),
        cmocka_unit_test(test_histogram_cumulative),
        cmocka_unit_test(test_process),
        cmocka_unit_test(test_discard),
        cmocka_unit_test(test_service_names),
        cmocka_unit_test(test_help_type_once),
        cmocka_unit_test(test_proc_read),
    };

    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
