/*
 * test_http.c - the metrics listener's request reader: a head is done
 * at its empty line (CRLF or LF), not before, whatever the split; GET
 * and HEAD of /metrics (with or without a query) are 200, another path
 * 404, another method 405, a malformed line 400, and no end within
 * HTTP_MAX bytes 431; the answer is the same for every longer buffer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "http.h"

static unsigned
judge(const char *text)
{
    struct http_req r;

    assert_int_equal(http_read(text, strlen(text), &r), HTTP_DONE);
    return r.status;
}

static void
test_routes(void **state)
{
    (void)state;
    assert_int_equal(judge("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
    assert_int_equal(judge("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), 200);
    assert_int_equal(judge("GET /metrics HTTP/1.1\n\n"), 200);
    assert_int_equal(judge("GET / HTTP/1.1\r\n\r\n"), 404);
    assert_int_equal(judge("GET /metricsx HTTP/1.1\r\n\r\n"), 404);
    assert_int_equal(judge("POST /metrics HTTP/1.1\r\n\r\n"), 405);
    assert_int_equal(judge("DELETE /x HTTP/1.1\r\n\r\n"), 405);
    assert_int_equal(judge("get /metrics HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(judge("GET /metrics\r\n\r\n"), 400);
    assert_int_equal(judge("GET  /metrics HTTP/1.1\r\n\r\n"), 400);
    assert_int_equal(judge("GET /metrics HTTP/2.0\r\n\r\n"), 400);
    assert_int_equal(judge("\r\n\r\n"), 400);
}

static void
test_head(void **state)
{
    struct http_req r;
    const char *t = "HEAD /metrics HTTP/1.1\r\n\r\n";

    (void)state;
    assert_int_equal(http_read(t, strlen(t), &r), HTTP_DONE);
    assert_int_equal(r.status, 200);
    assert_true(r.head);
    assert_int_equal(r.len, strlen(t));
}

/* Every prefix short of the empty line is incomplete; from there on the
 * answer does not change. */
static void
test_prefixes(void **state)
{
    const char *t = "GET /metrics HTTP/1.1\r\nAccept: */*\r\n\r\nextra";
    size_t end = strlen(t) - strlen("extra");
    struct http_req r;

    (void)state;
    for (size_t n = 0; n < end; n++) {
        assert_int_equal(http_read(t, n, &r), HTTP_INCOMPLETE);
    }
    for (size_t n = end; n <= strlen(t); n++) {
        assert_int_equal(http_read(t, n, &r), HTTP_DONE);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.len, end);
    }
}

static void
test_too_big(void **state)
{
    static char buf[HTTP_MAX + 10];
    struct http_req r;

    (void)state;
    memset(buf, 'a', sizeof(buf));
    assert_int_equal(http_read(buf, HTTP_MAX - 1, &r), HTTP_INCOMPLETE);
    assert_int_equal(http_read(buf, HTTP_MAX, &r), HTTP_DONE);
    assert_int_equal(r.status, 431);
    assert_int_equal(http_read(buf, sizeof(buf), &r), HTTP_DONE);
    assert_int_equal(r.status, 431);
    assert_string_equal(http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(http_reason(405), "Method Not Allowed");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_too_big),
    };

    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
