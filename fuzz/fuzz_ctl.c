/*
 * fuzz_ctl.c - libFuzzer target: arbitrary bytes as what a client sends
 * to the control socket.
 *
 * The server reads a growing prefix and asks ctl_parse again after each
 * read, so the verdicts for the prefixes of one input must agree. For
 * the input and each prefix up to CTL_REQ_MAX + 1 bytes:
 *   - CTL_INCOMPLETE: fewer than CTL_REQ_MAX bytes;
 *   - CTL_DONE: a known command, limit 1..CTL_LIMIT_MAX;
 *   - CTL_BAD: an error text that is one of ctl.c's own (printable, no
 *     byte of the input can reach it: it is not inside the input copy);
 *   - decided once, decided for good: from the first decided prefix on,
 *     every longer one gives the same verdict and request.
 * Each prefix is parsed from an exact-size heap copy, so a read past
 * len is an ASan report. A broken invariant aborts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "fuzz.h"

static enum ctl_state
fz_parse(const uint8_t *data, size_t n, struct ctl_req *r)
{
    char *copy = malloc(n > 0 ? n : 1);
    enum ctl_state st;

    FZ_CHECK(copy != NULL, "out of memory");
    if (n > 0) {
        memcpy(copy, data, n);
    }
    st = ctl_parse(copy, n, r);
    FZ_CHECK(st != CTL_BAD ||
                 (r->error != NULL &&
                  (r->error < copy || r->error >= copy + (n > 0 ? n : 1))),
             "error text from the input");
    free(copy);
    return st;
}

static bool
fz_same(const struct ctl_req *a, const struct ctl_req *b, enum ctl_state st)
{
    if (st == CTL_BAD) {
        return strcmp(a->error, b->error) == 0;
    }
    return a->cmd == b->cmd && a->json == b->json && a->limit == b->limit;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t top = size < CTL_REQ_MAX + 1 ? size : CTL_REQ_MAX + 1;
    struct ctl_req first = {0}, r;
    enum ctl_state first_st = CTL_INCOMPLETE;

    for (size_t n = 0; n <= top; n++) {
        enum ctl_state st = fz_parse(data, n, &r);

        if (st == CTL_INCOMPLETE) {
            FZ_CHECK(n < CTL_REQ_MAX, "incomplete at %zu bytes", n);
            FZ_CHECK(first_st == CTL_INCOMPLETE, "undecided again at %zu", n);
            continue;
        }
        if (st == CTL_DONE) {
            FZ_CHECK(r.cmd == CTL_STATUS || r.cmd == CTL_STATS ||
                         r.cmd == CTL_CONNECTIONS,
                     "command %d", (int)r.cmd);
            FZ_CHECK(r.limit >= 1 && r.limit <= CTL_LIMIT_MAX, "limit %u",
                     r.limit);
        } else {
            for (const char *p = r.error; *p != '\0'; p++) {
                FZ_CHECK(*p >= 0x20 && *p <= 0x7e, "unprintable error");
            }
        }
        if (first_st == CTL_INCOMPLETE) {
            first = r;
            first_st = st;
        } else {
            FZ_CHECK(st == first_st && fz_same(&r, &first, st),
                     "changed its mind at %zu bytes", n);
        }
    }
    return 0;
}
