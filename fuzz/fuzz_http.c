/*
 * fuzz_http.c - libFuzzer target: arbitrary bytes as what a scraper
 * sends to a metrics listener.
 *
 * The listener reads a growing prefix and asks http_read again after
 * each read, so the answers for the prefixes of one input must agree.
 * For the input and each prefix up to HTTP_MAX + 1 bytes:
 *   - HTTP_INCOMPLETE: fewer than HTTP_MAX bytes;
 *   - HTTP_DONE: a status of 200, 400, 404, 405 or 431, 0 < len <= the
 *     bytes given (and <= HTTP_MAX), 431 only at HTTP_MAX bytes, head
 *     (a HEAD request: no body) only with 200 or 404;
 *   - decided once, decided for good: from the first prefix that is
 *     done, every longer one gives the same status, head and len.
 * Each prefix is read from an exact-size heap copy, so a read past len
 * is an ASan report. A broken invariant aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "http.h"

static enum http_state
fz_read(const uint8_t *data, size_t n, struct http_req *r)
{
    char *copy = malloc(n > 0 ? n : 1);
    enum http_state st;

    FZ_CHECK(copy != NULL, "out of memory");
    if (n > 0) {
        memcpy(copy, data, n);
    }
    st = http_read(copy, n, r);
    free(copy);
    return st;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t top = size < HTTP_MAX + 1 ? size : HTTP_MAX + 1;
    struct http_req first = {0}, r;
    bool decided = false;

    for (size_t n = 0; n <= top; n++) {
        enum http_state st = fz_read(data, n, &r);

        if (st == HTTP_INCOMPLETE) {
            FZ_CHECK(n < HTTP_MAX, "incomplete at %zu bytes", n);
            FZ_CHECK(!decided, "undecided again at %zu bytes", n);
            continue;
        }
        FZ_CHECK(r.status == 200 || r.status == 400 || r.status == 404 ||
                     r.status == 405 || r.status == 431,
                 "status %u", r.status);
        FZ_CHECK(r.len > 0 && r.len <= n && r.len <= HTTP_MAX, "len %zu of %zu",
                 r.len, n);
        FZ_CHECK(r.status != 431 || n >= HTTP_MAX, "431 at %zu bytes", n);
        FZ_CHECK(!r.head || r.status == 200 || r.status == 404, "head with %u",
                 r.status);
        if (!decided) {
            first = r;
            decided = true;
        } else {
            FZ_CHECK(r.status == first.status && r.head == first.head &&
                         r.len == first.len,
                     "changed its mind at %zu bytes", n);
        }
    }
    return 0;
}
