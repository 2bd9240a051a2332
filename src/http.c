/*
 * http.c - reading an HTTP/1.x request head for the metrics listener.
 *
 * Owns: finding the end of the head (an empty line, CRLF or bare LF)
 * within HTTP_MAX bytes and judging the request line. Never reads a
 * socket, allocates or keeps state: the caller owns the buffer, so the
 * same bytes always get the same answer (tests and the fuzzer rely on
 * it). Header fields are skipped: the answer depends on the method and
 * the path only.
 */
#include <string.h>

#include "http.h"

/* The length of the head up to and with its empty line, or 0. */
static size_t
http_head_len(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n') {
            continue;
        }
        if (i + 1 < len && buf[i + 1] == '\n') {
            return i + 2;
        }
        if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n') {
            return i + 3;
        }
    }
    return 0;
}

static int
http_tchar(char c)
{
    return c >= 'A' && c <= 'Z';
}

/* Judge "METHOD SP TARGET SP HTTP/1.x" in line[0..n). */
static unsigned
http_line(const char *line, size_t n, struct http_req *r)
{
    static const char metrics[] = "/metrics";
    size_t m = 0, t0, t1;

    if (n > 0 && line[n - 1] == '\r') {
        n--;
    }
    while (m < n && http_tchar(line[m])) {
        m++;
    }
    if (m == 0 || m >= n || line[m] != ' ') {
        return 400;
    }
    t0 = m + 1;
    t1 = t0;
    while (t1 < n && line[t1] > ' ' && line[t1] < 0x7f) {
        t1++;
    }
    if (t1 == t0 || t1 >= n || line[t1] != ' ' || n - (t1 + 1) != 8 ||
        memcmp(line + t1 + 1, "HTTP/1.", 7) != 0 || line[n - 1] < '0' ||
        line[n - 1] > '9') {
        return 400;
    }
    r->head = m == 4 && memcmp(line, "HEAD", 4) == 0;
    if (!r->head && !(m == 3 && memcmp(line, "GET", 3) == 0)) {
        return 405;
    }
    /* The path, without a query string. */
    size_t plen = t1 - t0;
    const char *q = memchr(line + t0, '?', plen);
    if (q != NULL) {
        plen = (size_t)(q - (line + t0));
    }
    if (plen != sizeof(metrics) - 1 || memcmp(line + t0, metrics, plen) != 0) {
        return 404;
    }
    return 200;
}

enum http_state
http_read(const char *buf, size_t len, struct http_req *r)
{
    size_t head;
    const char *eol;

    if (len > HTTP_MAX) {
        len = HTTP_MAX;
    }
    memset(r, 0, sizeof(*r));
    head = http_head_len(buf, len);
    if (head == 0) {
        if (len < HTTP_MAX) {
            return HTTP_INCOMPLETE;
        }
        r->status = 431;
        r->len = len;
        return HTTP_DONE;
    }
    r->len = head;
    eol = memchr(buf, '\n', head); /* found: the head ends with one */
    r->status = http_line(buf, (size_t)(eol - buf), r);
    return HTTP_DONE;
}

const char *
http_reason(unsigned status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Error";
    }
}
