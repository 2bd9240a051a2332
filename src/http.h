/*
 * http.h - the HTTP/1.x request reader of the metrics listener: a
 * request line and headers, up to HTTP_MAX bytes, judged from the bytes
 * received so far. Nothing is kept between calls: the answer for a
 * buffer depends only on its bytes, and once decided it is the same for
 * every longer buffer with the same start.
 */
#ifndef ECHOD_HTTP_H
#define ECHOD_HTTP_H

#include <stddef.h>

#define HTTP_MAX 8192 /* request line and headers, in bytes */

enum http_state {
    HTTP_INCOMPLETE, /* no empty line yet, and fewer than HTTP_MAX bytes */
    HTTP_DONE,       /* a whole request head: see status */
};

struct http_req {
    /* With HTTP_DONE: 200 (GET or HEAD of /metrics), 404 (another
     * path), 405 (another method), 400 (not HTTP/1.x), 431 (no end
     * within HTTP_MAX bytes). */
    unsigned status;
    int head;   /* HEAD: answer without the body */
    size_t len; /* bytes of the head, with its empty line */
};

/* Judge buf[0..len); len may exceed HTTP_MAX (only the first HTTP_MAX
 * bytes are looked at). */
enum http_state http_read(const char *buf, size_t len, struct http_req *r);

/* "OK", "Not Found", ...: the reason phrase of a status it returns. */
const char *http_reason(unsigned status);

#endif /* ECHOD_HTTP_H */
