/*
 * fuzz_conn.c - libFuzzer target: the connection engine (loop, conn, outq)
 * under a hostile schedule of client actions.
 *
 * Each input builds a fresh loop and conn_set, and one conn on the server
 * end of a nonblocking AF_UNIX stream pair with small socket buffers; the
 * other end is the client. The first bytes choose the watermarks and the
 * buffer sizes; the rest is a script, one opcode byte each, some with a
 * 16-bit argument:
 *   write N, read up to N, shutdown(SHUT_WR), loop_run_once(l, 0) 1-4
 *   times, new watermarks, conn_set_drain, close the client, settle (run
 *   the loop and read until every byte written so far came back).
 * The client writes a position-dependent byte stream and checks, after
 * every step:
 *   - every byte it reads is the next byte it wrote (byte-exact, in order);
 *   - EOF comes only after everything the conn sent, and, unless the set
 *     was drained, only after every byte written came back;
 *   - the conn's queue footprint never exceeds the largest high watermark
 *     in force since the queue was last empty, and the pool holds no more
 *     chunks than that plus one (the "high watermark + one chunk" bound);
 *   - bytes are conserved: written = read by the conn + waiting in its
 *     socket; read by the conn = sent + queued (until a drain discards);
 *     sent = read by the client + waiting in the client's socket;
 *   - the conn never closes for an error, a reset or lack of memory while
 *     the client is open;
 *   - liveness: a settle ends within a bounded number of loop runs; with
 *     no FIN to wake it, a conn that lost an edge stalls and is caught.
 * At the end the client shuts down its side and reads until EOF while the
 * loop runs, within a bounded number of iterations (a stall is a bug: an
 * edge was lost), and everything must be back, the conn closed and every
 * chunk returned. A broken invariant aborts. Nothing survives an input.
 * FUZZ_CONN_TRACE=1 in the environment prints each step (to replay an
 * artifact: build-fuzz/fuzz_conn FILE).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "peers.h"
#include "fuzz.h"
#include "loop.h"
#include "outq.h"

#define FZ_IO_MAX ((size_t)64 * 1024) /* largest single write or read */
#define FZ_FINAL_RUNS 20000           /* loop runs allowed to finish */

enum fz_op {
    FZ_WRITE,
    FZ_READ,
    FZ_SHUT_WR,
    FZ_RUN,
    FZ_CONFIGURE,
    FZ_DRAIN,
    FZ_CLOSE,
    FZ_SETTLE,
    FZ_N_OPS,
};

struct fz {
    struct loop l;
    struct conn_set cs;
    struct conn *c; /* valid while cs.n_open == 1 */
    int srv;        /* the conn's fd number, for FIONREAD */
    int cli;        /* -1 once closed */
    uint64_t w_off; /* bytes the client wrote */
    uint64_t r_off; /* bytes the client read back */
    size_t hw_max;  /* largest high watermark since the queue was empty */
    bool shut_wr;
    bool drained;
    bool eof;
    bool trace;
    unsigned char *buf;
    const uint8_t *in; /* the rest of the script */
    size_t left;
};

/* The byte at stream offset i: splitmix64 of i / 8, so a reordered,
 * repeated or dropped span shows up at once. */
static unsigned char
fz_byte(uint64_t i)
{
    uint64_t z = (i >> 3) + 0x9E3779B97F4A7C15ULL;

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (unsigned char)(z >> ((i & 7) * 8));
}

static unsigned
fz_u8(struct fz *f)
{
    if (f->left == 0) {
        return 0;
    }
    f->left--;
    return *f->in++;
}

static unsigned
fz_u16(struct fz *f)
{
    unsigned lo = fz_u8(f);

    return lo | fz_u8(f) << 8;
}

/* Watermarks as the config allows them (high >= 4096, low < high), kept
 * small so that backpressure happens within a few kilobytes. */
static void
fz_configure(struct fz *f, unsigned hsel, unsigned lsel)
{
    size_t high = 4096 + (size_t)hsel * 256;
    size_t low = high * (lsel & 0xff) / 256;

    conn_set_configure(&f->cs, high, low, 0);
    if (high > f->hw_max) {
        f->hw_max = high;
    }
}

static void
fz_setbuf(int fd, unsigned sel)
{
    int v = 1024 * (1 + (int)(sel % 64));

    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
}

static uint64_t
fz_inq(int fd)
{
    int n = 0;

    FZ_CHECK(ioctl(fd, FIONREAD, &n) == 0, "FIONREAD: %s", strerror(errno));
    return (uint64_t)n;
}

static void
fz_check(struct fz *f)
{
    const struct conn_set *cs = &f->cs;

    FZ_CHECK(cs->n_open <= 1, "n_open %llu", (unsigned long long)cs->n_open);
    FZ_CHECK(cs->n_closed[CONN_ERROR] == 0 && cs->n_closed[CONN_NOMEM] == 0,
             "conn closed for an error (%llu) or no memory (%llu)",
             (unsigned long long)cs->n_closed[CONN_ERROR],
             (unsigned long long)cs->n_closed[CONN_NOMEM]);
    FZ_CHECK(f->cli < 0 || cs->n_closed[CONN_RESET] == 0,
             "conn reset while the client is open");
    FZ_CHECK(f->r_off <= cs->bytes_out && cs->bytes_out <= cs->bytes_in &&
                 cs->bytes_in <= f->w_off,
             "client read %llu, conn sent %llu, conn read %llu, client "
             "wrote %llu",
             (unsigned long long)f->r_off, (unsigned long long)cs->bytes_out,
             (unsigned long long)cs->bytes_in, (unsigned long long)f->w_off);
    if (cs->n_open == 0) {
        FZ_CHECK(f->l.pool.n_live == 0, "%zu chunks live, no conn open",
                 f->l.pool.n_live);
        return;
    }
    if (outq_empty(&f->c->out)) {
        f->hw_max = cs->high;
    }
    FZ_CHECK(outq_footprint(&f->c->out) <= f->hw_max,
             "queue footprint %zu over the high watermark %zu",
             outq_footprint(&f->c->out), f->hw_max);
    FZ_CHECK(f->l.pool.n_live * OUTQ_CHUNK <= f->hw_max + OUTQ_CHUNK,
             "%zu chunks live, high watermark %zu", f->l.pool.n_live,
             f->hw_max);
    if (f->cli >= 0 && !f->eof) {
        FZ_CHECK(f->w_off == cs->bytes_in + fz_inq(f->srv),
                 "client wrote %llu, conn read %llu + %llu waiting",
                 (unsigned long long)f->w_off, (unsigned long long)cs->bytes_in,
                 (unsigned long long)fz_inq(f->srv));
        FZ_CHECK(cs->bytes_out == f->r_off + fz_inq(f->cli),
                 "conn sent %llu, client read %llu + %llu waiting",
                 (unsigned long long)cs->bytes_out,
                 (unsigned long long)f->r_off,
                 (unsigned long long)fz_inq(f->cli));
    }
    if (!f->drained) {
        FZ_CHECK(cs->bytes_in == cs->bytes_out + f->c->out.bytes,
                 "conn read %llu, sent %llu, queued %zu",
                 (unsigned long long)cs->bytes_in,
                 (unsigned long long)cs->bytes_out, f->c->out.bytes);
    }
}

static void
fz_write(struct fz *f, size_t n)
{
    ssize_t w;

    if (f->cli < 0 || f->shut_wr) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        f->buf[i] = fz_byte(f->w_off + i);
    }
    w = send(f->cli, f->buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
        FZ_CHECK(errno == EAGAIN || errno == EWOULDBLOCK, "client send: %s",
                 strerror(errno));
        return;
    }
    f->w_off += (uint64_t)w;
}

/* Read up to n bytes; returns 0 at EOF, 1 if bytes came, -1 if none. */
static int
fz_read(struct fz *f, size_t n)
{
    ssize_t r;

    if (f->cli < 0 || f->eof) {
        return -1;
    }
    r = recv(f->cli, f->buf, n, MSG_DONTWAIT);
    if (r < 0) {
        FZ_CHECK(errno == EAGAIN || errno == EWOULDBLOCK, "client recv: %s",
                 strerror(errno));
        return -1;
    }
    if (r == 0) {
        f->eof = true;
        FZ_CHECK(f->r_off == f->cs.bytes_out,
                 "EOF after %llu bytes, the conn sent %llu",
                 (unsigned long long)f->r_off,
                 (unsigned long long)f->cs.bytes_out);
        FZ_CHECK(f->drained || (f->shut_wr && f->r_off == f->w_off),
                 "EOF after %llu of %llu bytes, client shut down: %d",
                 (unsigned long long)f->r_off, (unsigned long long)f->w_off,
                 f->shut_wr);
        return 0;
    }
    for (ssize_t i = 0; i < r; i++) {
        FZ_CHECK(f->buf[i] == fz_byte(f->r_off + (uint64_t)i),
                 "byte %llu of the echo is 0x%02x, expected 0x%02x",
                 (unsigned long long)(f->r_off + (uint64_t)i), f->buf[i],
                 fz_byte(f->r_off + (uint64_t)i));
    }
    f->r_off += (uint64_t)r;
    FZ_CHECK(f->r_off <= f->w_off, "read %llu, wrote only %llu",
             (unsigned long long)f->r_off, (unsigned long long)f->w_off);
    return 1;
}

/* Echo is owed for every byte written: run the loop and read until all
 * of it came back, without the FIN that would wake a stalled conn. */
static void
fz_settle(struct fz *f)
{
    unsigned runs;

    if (f->cli < 0 || f->eof || f->drained || f->cs.n_open == 0) {
        return;
    }
    for (runs = 0; f->r_off < f->w_off && runs < FZ_FINAL_RUNS; runs++) {
        loop_run_once(&f->l, 0);
        while (fz_read(f, FZ_IO_MAX) > 0) {
        }
        fz_check(f);
    }
    FZ_CHECK(f->r_off == f->w_off,
             "stalled: after %u loop runs the client read %llu of %llu "
             "bytes",
             runs, (unsigned long long)f->r_off, (unsigned long long)f->w_off);
}

static const char *const fz_op_names[] = {
    "write", "read", "shut_wr", "run", "configure", "drain", "close", "settle",
};

static void
fz_trace(const struct fz *f, const char *what, unsigned arg)
{
    if (f->trace) {
        fprintf(stderr,
                "%-9s %5u: wrote %llu conn in %llu out %llu "
                "queued %zu read %llu%s%s\n",
                what, arg, (unsigned long long)f->w_off,
                (unsigned long long)f->cs.bytes_in,
                (unsigned long long)f->cs.bytes_out,
                f->cs.n_open ? f->c->out.bytes : 0,
                (unsigned long long)f->r_off, f->eof ? " EOF" : "",
                f->cs.n_open ? "" : " closed");
    }
}

static void
fz_step(struct fz *f, enum fz_op op)
{
    unsigned a = 0;

    switch (op) {
    case FZ_WRITE:
        a = 1 + fz_u16(f) % FZ_IO_MAX;
        fz_write(f, a);
        break;
    case FZ_READ:
        a = 1 + fz_u16(f) % FZ_IO_MAX;
        (void)fz_read(f, a);
        break;
    case FZ_SHUT_WR:
        if (f->cli >= 0 && !f->shut_wr) {
            FZ_CHECK(shutdown(f->cli, SHUT_WR) == 0, "shutdown: %s",
                     strerror(errno));
            f->shut_wr = true;
        }
        break;
    case FZ_RUN:
        for (a = fz_u8(f) % 4;; a--) {
            loop_run_once(&f->l, 0);
            if (a == 0) {
                break;
            }
        }
        break;
    case FZ_CONFIGURE:
        a = fz_u16(f);
        fz_configure(f, a & 0xff, a >> 8);
        break;
    case FZ_DRAIN:
        /* A conn that already closed with CONN_EOF is not drained. */
        f->drained = f->drained || f->cs.n_open == 1;
        conn_set_drain(&f->cs);
        break;
    case FZ_CLOSE:
        if (f->cli >= 0) {
            close(f->cli);
            f->cli = -1;
        }
        break;
    case FZ_SETTLE:
        fz_settle(f);
        break;
    case FZ_N_OPS:
        break;
    }
    fz_trace(f, fz_op_names[op], a);
}

/* The client finishes: FIN, then read while the loop runs, until EOF. */
static void
fz_finish(struct fz *f)
{
    unsigned runs;

    if (f->cli >= 0 && !f->shut_wr) {
        fz_step(f, FZ_SHUT_WR);
    }
    for (runs = 0; runs < FZ_FINAL_RUNS; runs++) {
        if (f->cs.n_open == 0 && (f->cli < 0 || f->eof)) {
            break;
        }
        loop_run_once(&f->l, 0);
        while (fz_read(f, FZ_IO_MAX) > 0) {
        }
        fz_check(f);
    }
    FZ_CHECK(runs < FZ_FINAL_RUNS,
             "stalled: after %u loop runs the conn is %s, the client read "
             "%llu of %llu bytes%s",
             runs, f->cs.n_open ? "open" : "closed",
             (unsigned long long)f->r_off, (unsigned long long)f->w_off,
             f->eof ? " and EOF" : ", no EOF");
    if (f->cli >= 0) {
        FZ_CHECK(f->cs.n_closed[f->drained ? CONN_SHUTDOWN : CONN_EOF] == 1,
                 "the conn closed for another reason");
        FZ_CHECK(f->drained || f->r_off == f->w_off,
                 "EOF after %llu of %llu bytes", (unsigned long long)f->r_off,
                 (unsigned long long)f->w_off);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f;
    unsigned hsel, lsel;
    int sv[2];

    memset(&f, 0, sizeof(f));
    f.in = data;
    f.left = size;
    f.trace = getenv("FUZZ_CONN_TRACE") != NULL;
    f.buf = malloc(FZ_IO_MAX);
    FZ_CHECK(f.buf != NULL, "malloc");
    FZ_CHECK(loop_init(&f.l) == 0, "loop_init: %s", strerror(errno));
    conn_set_init(&f.cs, &f.l);
    hsel = fz_u8(&f);
    lsel = fz_u8(&f);
    fz_configure(&f, hsel, lsel);
    FZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
                        sv) == 0,
             "socketpair: %s", strerror(errno));
    fz_setbuf(sv[0], fz_u8(&f));
    fz_setbuf(sv[1], fz_u8(&f));
    f.c = conn_new(&f.cs, sv[0], PEER_NONE, NULL, 0);
    FZ_CHECK(f.c != NULL, "conn_new: %s", strerror(errno));
    f.srv = sv[0];
    f.cli = sv[1];

    while (f.left > 0) {
        fz_step(&f, (enum fz_op)(fz_u8(&f) % FZ_N_OPS));
        fz_check(&f);
    }
    fz_finish(&f);
    fz_trace(&f, "finished", 0);

    /* Free everything, whatever state the script left. */
    conn_set_close_all(&f.cs, CONN_SHUTDOWN);
    loop_fini(&f.l);
    conn_set_fini(&f.cs);
    FZ_CHECK(f.l.pool.n_live == 0, "%zu chunks never returned",
             f.l.pool.n_live);
    if (f.cli >= 0) {
        close(f.cli);
    }
    free(f.buf);
    return 0;
}
