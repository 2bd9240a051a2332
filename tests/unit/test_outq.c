/*
 * test_outq.c - output queue and chunk pool.
 *
 * Partial writes come from the kernel: a nonblocking AF_UNIX socketpair
 * whose sender has SO_SNDBUF = 4096 takes only part of a large sendmsg.
 * Faults the kernel will not give on demand are injected with
 * --wrap=sendmsg (EINTR, EPIPE, "took everything") and --wrap=malloc
 * (ENOMEM in the middle of an append).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "outq.h"
#include "unit.h"

/* ---- fault injection ---- */

void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
ssize_t __real_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t __wrap_sendmsg(int fd, const struct msghdr *msg, int flags);

static long malloc_calls;
static long malloc_ok_left = -1; /* successes before ENOMEM; -1 = no limit */

void *
__wrap_malloc(size_t n)
{
    malloc_calls++;
    if (malloc_ok_left == 0) {
        errno = ENOMEM;
        return NULL;
    }
    if (malloc_ok_left > 0) {
        malloc_ok_left--;
    }
    return __real_malloc(n);
}

/* Scripted sendmsg results, queued with sm_script(); unscripted calls go
 * to the kernel. cmocka fails a test that leaves a script unconsumed. */
#define SM_REAL 0   /* call the real sendmsg */
#define SM_ALL (-1) /* pretend the kernel took every byte offered */

static int sm_pending;
static int sm_calls;
static size_t sm_last_iovlen;

static void
sm_script(int what)
{
    will_return(__wrap_sendmsg, what);
    sm_pending++;
}

ssize_t
__wrap_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    int what = SM_REAL;

    sm_calls++;
    sm_last_iovlen = msg->msg_iovlen;
    assert_true(flags & MSG_NOSIGNAL); /* or a dead peer kills echod */
    if (sm_pending > 0) {
        sm_pending--;
        what = mock_type(int);
    }
    if (what == SM_REAL) {
        return __real_sendmsg(fd, msg, flags);
    }
    if (what == SM_ALL) {
        size_t total = 0;
        for (size_t i = 0; i < msg->msg_iovlen; i++) {
            total += msg->msg_iov[i].iov_len;
        }
        return (ssize_t)total;
    }
    errno = what;
    return -1;
}

/* ---- helpers ---- */

struct fix {
    struct outq_pool pool;
    struct outq q;
};

static int
setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        return -1;
    }
    outq_pool_init(&f->pool, 8);
    outq_init(&f->q);
    malloc_calls = 0;
    malloc_ok_left = -1;
    sm_pending = 0;
    sm_calls = 0;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fix *f = *state;

    malloc_ok_left = -1;
    outq_clear(&f->q, &f->pool);
    assert_int_equal(f->pool.n_live, 0);
    outq_pool_fini(&f->pool);
    assert_int_equal(f->pool.n_free, 0);
    free(f);
    return 0;
}

/* The invariants of outq.h, checked on every step. Returns the chunk
 * count. */
static size_t
check_q(const struct outq *q)
{
    size_t sum = 0, n = 0;
    const struct outq_chunk *last = NULL;

    assert_true((q->head == NULL) == (q->bytes == 0));
    assert_true((q->head == NULL) == (q->tail == NULL));
    for (const struct outq_chunk *c = q->head; c != NULL; c = c->next) {
        assert_true(c->start < c->end); /* no empty chunk is kept */
        assert_true(c->end <= OUTQ_CHUNK);
        sum += c->end - c->start;
        last = c;
        n++;
    }
    assert_ptr_equal(last, q->tail);
    assert_int_equal(sum, q->bytes);
    return n;
}

/* Copy the queued bytes out, in order. */
static void
q_contents(const struct outq *q, unsigned char *out)
{
    for (const struct outq_chunk *c = q->head; c != NULL; c = c->next) {
        memcpy(out, c->data + c->start, c->end - c->start);
        out += c->end - c->start;
    }
}

static void
assert_q_equals(const struct outq *q, const unsigned char *want, size_t len)
{
    unsigned char *got = malloc(len + 1);

    assert_non_null(got);
    check_q(q);
    assert_int_equal(q->bytes, len);
    q_contents(q, got);
    assert_memory_equal(got, want, len);
    free(got);
}

/* ---- tests ---- */

static void
test_append_across_chunk_boundaries(void **state)
{
    struct fix *f = *state;
    size_t total = 3 + 2 * OUTQ_CHUNK + 100 + 1;
    unsigned char *src = malloc(total);
    size_t off = 0;

    assert_non_null(src);
    t_fill(src, total, 1);
    assert_int_equal(check_q(&f->q), 0);

    assert_int_equal(outq_append(&f->q, &f->pool, src, 3), 0);
    off += 3;
    assert_int_equal(check_q(&f->q), 1);
    /* Fills the first chunk's spare room, then two new chunks. */
    assert_int_equal(
        outq_append(&f->q, &f->pool, src + off, 2 * OUTQ_CHUNK + 100), 0);
    off += 2 * OUTQ_CHUNK + 100;
    assert_int_equal(check_q(&f->q), 3);
    assert_int_equal(f->q.head->end, OUTQ_CHUNK);
    assert_int_equal(f->q.tail->end, 103);
    assert_int_equal(outq_append(&f->q, &f->pool, src + off, 1), 0);
    off += 1;
    assert_int_equal(check_q(&f->q), 3);
    assert_int_equal(f->pool.n_live, 3);
    /* Zero bytes: nothing changes, nothing allocated. */
    assert_int_equal(outq_append(&f->q, &f->pool, src, 0), 0);
    assert_int_equal(f->pool.n_live, 3);
    assert_q_equals(&f->q, src, off);
    free(src);
}

static void
test_consume_exact_and_partial(void **state)
{
    struct fix *f = *state;
    size_t total = 2 * OUTQ_CHUNK + 10;
    unsigned char *src = malloc(total);
    size_t gone = 0;

    assert_non_null(src);
    t_fill(src, total, 2);
    assert_int_equal(outq_append(&f->q, &f->pool, src, total), 0);
    assert_int_equal(check_q(&f->q), 3);

    outq_consume(&f->q, &f->pool, 5); /* partial, inside the head */
    gone += 5;
    assert_int_equal(f->q.head->start, 5);
    assert_int_equal(f->pool.n_live, 3);
    assert_q_equals(&f->q, src + gone, total - gone);

    outq_consume(&f->q, &f->pool, OUTQ_CHUNK - 5); /* exactly the head */
    gone += OUTQ_CHUNK - 5;
    assert_int_equal(f->pool.n_live, 2);
    assert_int_equal(f->pool.n_free, 1);
    assert_int_equal(f->q.head->start, 0);
    assert_q_equals(&f->q, src + gone, total - gone);

    outq_consume(&f->q, &f->pool, OUTQ_CHUNK + 3); /* across a boundary */
    gone += OUTQ_CHUNK + 3;
    assert_int_equal(f->pool.n_live, 1);
    assert_int_equal(f->q.head->start, 3);
    assert_q_equals(&f->q, src + gone, total - gone);

    outq_consume(&f->q, &f->pool, total - gone); /* the rest, exactly */
    assert_int_equal(check_q(&f->q), 0);
    assert_true(outq_empty(&f->q));
    assert_int_equal(f->pool.n_live, 0);
    outq_consume(&f->q, &f->pool, 0); /* harmless on an empty queue */
    assert_int_equal(check_q(&f->q), 0);

    /* An emptied queue takes new bytes from a clean start. */
    assert_int_equal(outq_append(&f->q, &f->pool, src, 7), 0);
    assert_q_equals(&f->q, src, 7);
    free(src);
}

/* Flush through a real socket that takes only part of each write: the
 * bytes come out complete and in order, q->bytes tracks what is left, and
 * short_write says when the kernel refused part of the offer. */
static void
test_flush_partial_socketpair(void **state)
{
    struct fix *f = *state;
    size_t total = OUTQ_IOV * OUTQ_CHUNK + 3 * OUTQ_CHUNK + 777;
    unsigned char *src = malloc(total), *dst = malloc(total);
    size_t got = 0, sent = 0;
    int sv[2], shorts = 0, eagains = 0, flushes = 0;
    uint64_t deadline = t_now_ms() + 20000;

    assert_non_null(src);
    assert_non_null(dst);
    t_fill(src, total, 3);
    t_unix_pair(sv);
    t_setint(sv[0], SOL_SOCKET, SO_SNDBUF, 4096);
    /* Append in odd pieces so chunk edges and write edges never line up. */
    for (size_t off = 0; off < total;) {
        size_t n = total - off < 5000 ? total - off : 5000;
        assert_int_equal(outq_append(&f->q, &f->pool, src + off, n), 0);
        off += n;
    }
    assert_int_equal(f->q.bytes, total);

    while (!outq_empty(&f->q)) {
        size_t before = f->q.bytes;
        bool short_write = true;
        ssize_t w;

        assert_true(t_now_ms() < deadline);
        w = outq_flush(&f->q, &f->pool, sv[0], &short_write);
        flushes++;
        if (w < 0) {
            assert_int_equal(errno, EAGAIN);
            assert_false(short_write);
            assert_int_equal(f->q.bytes, before); /* nothing consumed */
            eagains++;
        } else {
            assert_true(w > 0);
            assert_int_equal(f->q.bytes, before - (size_t)w);
            sent += (size_t)w;
            if (short_write) {
                shorts++;
            }
        }
        check_q(&f->q);
        assert_int_equal(sent, total - f->q.bytes);
        /* What has left is exactly the prefix still missing. */
        if (!outq_empty(&f->q)) {
            unsigned char first =
                (unsigned char)(f->q.head->data[f->q.head->start]);
            assert_int_equal(first, src[sent]);
        }
        /* Every second round, let the peer drain: consecutive flushes
         * against a full buffer must give EAGAIN, not a spin. */
        if (flushes % 2 == 0) {
            assert_int_equal(t_read_avail(sv[1], dst, total, &got), 1);
        }
    }
    while (got < total) {
        assert_true(t_now_ms() < deadline);
        assert_int_equal(t_read_avail(sv[1], dst, total, &got), 1);
    }
    assert_memory_equal(dst, src, total);
    assert_true(shorts > 0);  /* the 4 KiB buffer refused most offers */
    assert_true(eagains > 0); /* and a full buffer said EAGAIN */
    assert_int_equal(f->pool.n_live, 0);
    close(sv[0]);
    close(sv[1]);
    free(src);
    free(dst);
}

static void
test_flush_complete_is_not_short(void **state)
{
    struct fix *f = *state;
    unsigned char src[300];
    bool short_write = true;
    int sv[2];

    t_fill(src, sizeof(src), 4);
    t_unix_pair(sv);
    assert_int_equal(outq_append(&f->q, &f->pool, src, sizeof(src)), 0);
    assert_int_equal(outq_flush(&f->q, &f->pool, sv[0], &short_write),
                     sizeof(src));
    assert_false(short_write);
    assert_true(outq_empty(&f->q));
    assert_int_equal(f->pool.n_live, 0);
    t_expect_bytes(sv[1], src, sizeof(src));
    /* Flushing an empty queue makes no syscall and returns 0. */
    sm_calls = 0;
    assert_int_equal(outq_flush(&f->q, &f->pool, sv[0], &short_write), 0);
    assert_false(short_write);
    assert_int_equal(sm_calls, 0);
    close(sv[0]);
    close(sv[1]);
}

/* One flush offers at most OUTQ_IOV chunks; taking all of them is not a
 * short write even though bytes remain. */
static void
test_flush_iov_cap(void **state)
{
    struct fix *f = *state;
    size_t total = (OUTQ_IOV + 6) * OUTQ_CHUNK;
    unsigned char *src = malloc(total);
    bool short_write = true;

    assert_non_null(src);
    t_fill(src, total, 5);
    assert_int_equal(outq_append(&f->q, &f->pool, src, total), 0);
    sm_script(SM_ALL);
    assert_int_equal(outq_flush(&f->q, &f->pool, 99, &short_write),
                     OUTQ_IOV * OUTQ_CHUNK);
    assert_int_equal(sm_last_iovlen, OUTQ_IOV);
    assert_false(short_write);
    assert_q_equals(&f->q, src + OUTQ_IOV * OUTQ_CHUNK, 6 * OUTQ_CHUNK);
    sm_script(SM_ALL);
    assert_int_equal(outq_flush(&f->q, &f->pool, 99, &short_write),
                     6 * OUTQ_CHUNK);
    assert_int_equal(sm_last_iovlen, 6);
    assert_true(outq_empty(&f->q));
    free(src);
}

static void
test_flush_eintr_retried(void **state)
{
    struct fix *f = *state;
    unsigned char src[1000];
    bool short_write;
    int sv[2];

    t_fill(src, sizeof(src), 6);
    t_unix_pair(sv);
    assert_int_equal(outq_append(&f->q, &f->pool, src, sizeof(src)), 0);
    sm_script(EINTR);
    sm_script(EINTR);
    sm_script(SM_REAL);
    assert_int_equal(outq_flush(&f->q, &f->pool, sv[0], &short_write),
                     sizeof(src));
    assert_int_equal(sm_calls, 3);
    assert_true(outq_empty(&f->q));
    t_expect_bytes(sv[1], src, sizeof(src));
    close(sv[0]);
    close(sv[1]);
}

static void
test_flush_error_leaves_queue(void **state)
{
    struct fix *f = *state;
    unsigned char src[2000];
    bool short_write = true;
    int sv[2];

    t_fill(src, sizeof(src), 7);
    assert_int_equal(outq_append(&f->q, &f->pool, src, sizeof(src)), 0);
    outq_consume(&f->q, &f->pool, 10);

    sm_script(EPIPE); /* scripted: returned as is, once */
    assert_int_equal(outq_flush(&f->q, &f->pool, 99, &short_write), -1);
    assert_int_equal(errno, EPIPE);
    assert_int_equal(sm_calls, 1);
    assert_false(short_write);
    assert_q_equals(&f->q, src + 10, sizeof(src) - 10);

    /* The real thing: the peer is gone. MSG_NOSIGNAL turns SIGPIPE into
     * EPIPE, so this process survives to check it. */
    t_unix_pair(sv);
    close(sv[1]);
    assert_int_equal(outq_flush(&f->q, &f->pool, sv[0], &short_write), -1);
    assert_int_equal(errno, EPIPE);
    assert_q_equals(&f->q, src + 10, sizeof(src) - 10);
    close(sv[0]);
}

/* An append that runs out of memory half-way leaves the queue exactly as
 * it was: same bytes, same tail fill, no chunk leaked. */
static void
test_append_enomem_leaves_queue(void **state)
{
    struct fix *f = *state;
    size_t big = 3 * OUTQ_CHUNK;
    unsigned char *src = malloc(100 + big);

    assert_non_null(src);
    t_fill(src, 100 + big, 8);
    assert_int_equal(outq_append(&f->q, &f->pool, src, 100), 0);
    assert_int_equal(f->pool.n_live, 1);

    malloc_ok_left = 1; /* one new chunk, then ENOMEM */
    errno = 0;
    assert_int_equal(outq_append(&f->q, &f->pool, src + 100, big), -1);
    assert_int_equal(errno, ENOMEM);
    malloc_ok_left = -1;
    assert_int_equal(f->q.tail->end, 100);
    assert_ptr_equal(f->q.head, f->q.tail);
    assert_q_equals(&f->q, src, 100);
    assert_int_equal(f->pool.n_live, 1);
    assert_int_equal(f->pool.n_free, 1); /* the half-built chunk came back */

    /* Memory is back: the same append now works and lands in order. */
    assert_int_equal(outq_append(&f->q, &f->pool, src + 100, big), 0);
    assert_q_equals(&f->q, src, 100 + big);

    /* ENOMEM on an empty queue leaves it empty and holding nothing. */
    outq_clear(&f->q, &f->pool);
    outq_pool_fini(&f->pool);
    outq_pool_init(&f->pool, 8);
    malloc_ok_left = 0;
    assert_int_equal(outq_append(&f->q, &f->pool, src, 10), -1);
    malloc_ok_left = -1;
    assert_int_equal(check_q(&f->q), 0);
    assert_int_equal(f->pool.n_live, 0);
    free(src);
}

/* The steady state makes no malloc: chunks come back from the pool. The
 * pool keeps at most max_free of them. */
static void
test_pool_reuse_and_cap(void **state)
{
    struct fix *f = *state;
    size_t total = 5 * OUTQ_CHUNK;
    unsigned char *src = malloc(total);
    struct outq q2;

    assert_non_null(src);
    t_fill(src, total, 9);
    outq_pool_fini(&f->pool);
    outq_pool_init(&f->pool, 2);
    outq_init(&q2);

    malloc_calls = 0;
    assert_int_equal(outq_append(&f->q, &f->pool, src, total), 0);
    assert_int_equal(malloc_calls, 5);
    assert_int_equal(f->pool.n_live, 5);
    assert_int_equal(f->pool.n_free, 0);
    outq_consume(&f->q, &f->pool, total);
    assert_int_equal(f->pool.n_live, 0);
    assert_int_equal(f->pool.n_free, 2); /* capped; three went to free() */

    /* Two chunks' worth with malloc failing: the pool alone serves it. */
    malloc_calls = 0;
    malloc_ok_left = 0;
    assert_int_equal(outq_append(&f->q, &f->pool, src, OUTQ_CHUNK), 0);
    assert_int_equal(outq_append(&q2, &f->pool, src, OUTQ_CHUNK), 0);
    assert_int_equal(f->pool.n_free, 0);
    assert_int_equal(f->pool.n_live, 2);
    /* A third one needs malloc, fails, and changes nothing. */
    assert_int_equal(outq_append(&q2, &f->pool, src, OUTQ_CHUNK), -1);
    malloc_ok_left = -1;
    assert_int_equal(malloc_calls, 1);
    assert_q_equals(&q2, src, OUTQ_CHUNK);
    assert_q_equals(&f->q, src, OUTQ_CHUNK);

    outq_clear(&q2, &f->pool);
    outq_clear(&f->q, &f->pool);
    assert_int_equal(f->pool.n_live, 0);
    assert_true(f->pool.n_free <= f->pool.max_free);
    free(src);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_across_chunk_boundaries,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_consume_exact_and_partial, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flush_partial_socketpair, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flush_complete_is_not_short, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flush_iov_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flush_eintr_retried, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_flush_error_leaves_queue, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_append_enomem_leaves_queue, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pool_reuse_and_cap, setup,
                                        teardown),
    };

    t_deadline(60);
    return cmocka_run_group_tests_name("outq", tests, NULL, NULL);
}
