/*
 * fuzz_proxy.c - libFuzzer target: arbitrary bytes as the start of a
 * connection that should begin with a PROXY protocol header.
 *
 * The engine will peek a growing prefix of the stream and parse it again
 * on each readable edge, so the answers for the prefixes of one input must
 * agree. For the input and each of its first PXY_MAX + 1 prefixes:
 *   - PXY_OK: 0 < len <= the bytes given, version 1 (len <= PXY_V1_MAX)
 *     or 2 (len <= PXY_V2_MAX), why NULL; unless local, src and dst of
 *     one family, AF_INET or AF_INET6; local ones carry no address;
 *   - PXY_INCOMPLETE: fewer than PXY_MAX bytes, and *out all zero;
 *   - PXY_BAD: a non-empty one-line reason, and nothing else in *out;
 *   - decided once, decided for good: the prefixes are PXY_INCOMPLETE up
 *     to some length d, and from d on all give the same answer as d (the
 *     same reason, or the same header); a header is OK from exactly its
 *     own length on (d == len), so every strict prefix of it is
 *     PXY_INCOMPLETE and parsing exactly len bytes gives it back.
 * Each prefix is parsed from an exact-size heap copy, so a read past len
 * is an ASan report. A broken invariant aborts. No state survives.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "proxy.h"

/* pxy_parse on a heap copy of exactly n bytes. */
static enum pxy_result
fz_parse(const uint8_t *data, size_t n, struct pxy_header *h)
{
    unsigned char *copy = malloc(n > 0 ? n : 1);
    enum pxy_result r;

    FZ_CHECK(copy != NULL, "out of memory");
    if (n > 0) {
        memcpy(copy, data, n);
    }
    memset(h, 0x5A, sizeof(*h));
    r = pxy_parse(copy, n, h);
    free(copy);
    return r;
}

static bool
fz_zero(const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

/* What one answer for n bytes must look like on its own. */
static void
fz_check_one(enum pxy_result r, const struct pxy_header *h, size_t n)
{
    switch (r) {
    case PXY_OK:
        FZ_CHECK(h->len > 0 && h->len <= n, "len %zu of %zu bytes", h->len, n);
        FZ_CHECK((h->version == 1 && h->len <= PXY_V1_MAX) ||
                     (h->version == 2 && h->len <= PXY_V2_MAX),
                 "version %d, len %zu", h->version, h->len);
        FZ_CHECK(h->why == NULL, "why set on PXY_OK");
        if (h->local) {
            FZ_CHECK(fz_zero(&h->src, sizeof(h->src)) &&
                         fz_zero(&h->dst, sizeof(h->dst)),
                     "a local header with addresses");
        } else {
            FZ_CHECK(h->src.ss_family == AF_INET ||
                         h->src.ss_family == AF_INET6,
                     "src family %d", h->src.ss_family);
            FZ_CHECK(h->dst.ss_family == h->src.ss_family,
                     "dst family %d, src %d", h->dst.ss_family,
                     h->src.ss_family);
        }
        break;
    case PXY_INCOMPLETE:
        FZ_CHECK(n < PXY_MAX, "PXY_INCOMPLETE with %zu bytes", n);
        FZ_CHECK(fz_zero(h, sizeof(*h)), "*out not cleared on INCOMPLETE");
        break;
    case PXY_BAD:
        FZ_CHECK(h->why != NULL && h->why[0] != '\0' &&
                     strchr(h->why, '\n') == NULL,
                 "PXY_BAD without a one-line reason");
        FZ_CHECK(h->len == 0 && h->version == 0 && !h->local &&
                     fz_zero(&h->src, sizeof(h->src)) &&
                     fz_zero(&h->dst, sizeof(h->dst)),
                 "PXY_BAD with a header");
        break;
    default:
        FZ_CHECK(false, "result %d", (int)r);
    }
}

/* Two decided answers are the same answer. */
static void
fz_check_same(enum pxy_result r, const struct pxy_header *h, enum pxy_result r0,
              const struct pxy_header *h0, size_t n, size_t d)
{
    FZ_CHECK(r == r0, "%zu bytes: %d, but %d from %zu bytes on", n, (int)r,
             (int)r0, d);
    if (r == PXY_BAD) {
        FZ_CHECK(strcmp(h->why, h0->why) == 0,
                 "%zu bytes: \"%s\", but \"%s\" from %zu bytes on", n, h->why,
                 h0->why, d);
    } else {
        FZ_CHECK(h->len == h0->len && h->version == h0->version &&
                     h->local == h0->local &&
                     memcmp(&h->src, &h0->src, sizeof(h->src)) == 0 &&
                     memcmp(&h->dst, &h0->dst, sizeof(h->dst)) == 0,
                 "%zu bytes: another header than from %zu bytes on", n, d);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t last = size < PXY_MAX + 1 ? size : PXY_MAX + 1;
    struct pxy_header h, h0;
    enum pxy_result r, r0 = PXY_INCOMPLETE;
    size_t d = 0;

    /* Every prefix up to the decision; after it, the next few and the
     * last: enough to see an answer change, without checking a CRC
     * PXY_MAX times per input. */
    for (size_t n = 0; n <= last; n++) {
        r = fz_parse(data, n, &h);
        fz_check_one(r, &h, n);
        if (r0 == PXY_INCOMPLETE) {
            FZ_CHECK(r != PXY_OK || h.len == n,
                     "OK at %zu bytes with a header of %zu", n, h.len);
            r0 = r;
            h0 = h;
            d = n;
        } else {
            fz_check_same(r, &h, r0, &h0, n, d);
            if (n >= d + 4 && n < last) {
                n = last - 1;
            }
        }
    }
    r = fz_parse(data, size, &h);
    fz_check_one(r, &h, size);
    if (r0 != PXY_INCOMPLETE) {
        fz_check_same(r, &h, r0, &h0, size, d);
    } else {
        FZ_CHECK(r == PXY_INCOMPLETE, "%zu bytes decided, %zu not", size, last);
    }
    return 0;
}
