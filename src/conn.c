/*
 * conn.c - one connection's state machine.
 *
 * Owns: reading the peer until EAGAIN (within a budget), writing the echo
 * at once, queueing only what the kernel refused, backpressure by the
 * output watermarks, half-close, the idle LRU, and conn_close().
 * Never calls epoll_ctl after registration (loop_add is the only call).
 * Invariants: bytes leave in the order they arrived: new input goes behind
 * anything queued, never ahead of it; a read never asks for more than the
 * room left under the high watermark, and never for 0 bytes (that would
 * look like EOF); readable/writable are set only by epoll events and
 * cleared only by EAGAIN or a short read/write (docs/design.md section 3).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "sock.h"

static const char *const conn_reason_names[] = {
    [CONN_EOF] = "eof",
    [CONN_RESET] = "reset",
    [CONN_ERROR] = "error",
    [CONN_IDLE] = "idle-timeout",
    [CONN_NOMEM] = "out-of-memory",
    [CONN_SHUTDOWN] = "shutdown",
    [CONN_SHUTDOWN_TIMEOUT] = "shutdown-timeout",
};

static struct log_limit conn_nomem_log = LOG_LIMIT_INIT;
static struct log_limit conn_error_log = LOG_LIMIT_INIT;

const char *
conn_reason_name(enum conn_reason why)
{
    return conn_reason_names[why];
}

static void conn_idle_fire(struct loop_timer *t);

void
conn_set_init(struct conn_set *set, struct loop *loop)
{
    memset(set, 0, sizeof(*set));
    set->loop = loop;
    list_init(&set->lru);
    loop_timer_init(&set->idle_timer, conn_idle_fire);
}

static struct conn *
conn_of_lru(struct list *n)
{
    return list_entry(n, struct conn, lru);
}

static void
conn_idle_arm(struct conn_set *set)
{
    struct list *head = list_first(&set->lru);

    if (set->idle_ms == 0 || head == NULL) {
        loop_timer_disarm(&set->idle_timer);
        return;
    }
    loop_timer_arm(set->loop, &set->idle_timer,
                   conn_of_lru(head)->active + set->idle_ms);
}

static void
conn_idle_fire(struct loop_timer *t)
{
    struct conn_set *set = list_entry(t, struct conn_set, idle_timer);
    struct list *head;

    while (set->idle_ms != 0 && (head = list_first(&set->lru)) != NULL) {
        struct conn *c = conn_of_lru(head);
        if (c->active + set->idle_ms > set->loop->now) {
            break;
        }
        conn_close(c, CONN_IDLE);
    }
    conn_idle_arm(set);
}

/* Progress: move to the LRU tail. The timer watches only the head and is
 * re-armed when it fires, so this stays O(1) and syscall-free. */
static void
conn_touch(struct conn *c)
{
    uint64_t now = c->set->loop->now;

    if (c->active != now) {
        c->active = now;
        list_remove(&c->lru);
        list_insert_tail(&c->set->lru, &c->lru);
    }
}

static void conn_run(struct conn *c);

static void
conn_on_event(struct loop_io *io, uint32_t events)
{
    struct conn *c = (struct conn *)io;

    if (events & EPOLLIN) {
        c->readable = true;
    }
    if (events & EPOLLOUT) {
        c->writable = true;
    }
    if (events & EPOLLRDHUP) {
        c->rdhup = true;
        c->readable = true;
    }
    conn_run(c);
}

static void
conn_on_ready(struct loop_io *io)
{
    conn_run((struct conn *)io);
}

static void
conn_on_free(struct loop_io *io)
{
    free(io);
}

void
conn_set_configure(struct conn_set *set, size_t high, size_t low,
                   uint64_t idle_ms)
{
    set->high = high;
    set->low = low;
    set->idle_ms = idle_ms;
    for (struct list *n = set->lru.next; n != &set->lru; n = n->next) {
        struct conn *c = conn_of_lru(n);
        /* The edge was used up while paused: resuming means requeueing. */
        if (c->rd_paused && c->out.bytes <= low) {
            c->rd_paused = false;
            loop_ready(set->loop, &c->io);
        }
    }
    conn_idle_arm(set);
}

struct conn *
conn_new(struct conn_set *set, int fd, const struct sockaddr *peer,
         socklen_t peer_len, uint32_t source)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    loop_io_init(&c->io, fd, conn_on_event, conn_on_ready, conn_on_free);
    c->set = set;
    outq_init(&c->out);
    list_init(&c->lru);
    if (peer_len > sizeof(c->peer)) {
        peer_len = sizeof(c->peer);
    }
    memcpy(&c->peer, peer, peer_len);
    /* A fresh socket can take bytes; readability comes with the first
     * edge, which registration reports if data is already waiting. */
    c->writable = true;
    if (loop_add(set->loop, &c->io,
                 EPOLLIN | EPOLLOUT | EPOLLRDHUP) < 0) {
        int saved = errno;
        free(c);
        errno = saved;
        return NULL;
    }
    (void)sock_nodelay(fd); /* best effort: only latency depends on it */
    c->source = source;
    c->id = ++set->next_id;
    c->created = c->active = set->loop->now;
    list_insert_tail(&set->lru, &c->lru);
    set->n_open++;
    set->n_opened++;
    if (set->idle_ms != 0 && !loop_timer_armed(&set->idle_timer)) {
        conn_idle_arm(set);
    }
    if (set->draining) {
        c->draining = true;
    }
    return c;
}

void
conn_close(struct conn *c, enum conn_reason why)
{
    struct conn_set *set = c->set;

    if (c->io.closed) {
        return;
    }
    if (log_enabled(LOG_DEBUG)) {
        char name[SOCK_NAME_MAX];
        uint64_t age = set->loop->now - c->created;
        log_debug("conn %llu %s closed: %s in=%llu out=%llu queued=%zu "
                  "age=%llu.%02llus", (unsigned long long)c->id,
                  sock_name((const struct sockaddr *)&c->peer, name,
                            sizeof(name)),
                  conn_reason_name(why), (unsigned long long)c->rx,
                  (unsigned long long)c->tx, c->out.bytes,
                  (unsigned long long)(age / 1000),
                  (unsigned long long)(age % 1000 / 10));
    }
    outq_clear(&c->out, &set->loop->pool);
    list_remove(&c->lru);
    if (set->peers != NULL) {
        peer_release(set->peers, c->source);
    }
    c->source = PEER_NONE;
    set->n_open--;
    set->n_closed[why]++;
    loop_close(set->loop, &c->io);
}

/* Close after a failed read or write, naming the peer's doing as reset. */
static void
conn_fail(struct conn *c, const char *op)
{
    if (errno == ECONNRESET || errno == EPIPE || errno == ETIMEDOUT) {
        conn_close(c, CONN_RESET);
        return;
    }
    log_limited(&conn_error_log, LOG_INFO, true, "conn %llu: %s",
                (unsigned long long)c->id, op);
    conn_close(c, CONN_ERROR);
}

/* Flush the queue; returns -1 if the connection was closed. */
static int
conn_flush(struct conn *c)
{
    struct conn_set *set = c->set;
    bool short_write;
    ssize_t w;

    w = outq_flush(&c->out, &set->loop->pool, c->io.fd, &short_write);
    if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->writable = false;
            return 0;
        }
        conn_fail(c, "send");
        return -1;
    }
    c->tx += (uint64_t)w;
    set->bytes_out += (uint64_t)w;
    if (short_write) {
        c->writable = false;
    }
    if (w > 0) {
        conn_touch(c);
    }
    return 0;
}

/* Echo n bytes just read: straight out if nothing is queued, the rest
 * behind the queue. Returns -1 if the connection was closed. */
static int
conn_echo(struct conn *c, const char *buf, size_t n)
{
    struct conn_set *set = c->set;
    size_t off = 0;
    ssize_t w;

    if (outq_empty(&c->out) && c->writable) {
        do {
            w = send(c->io.fd, buf, n, MSG_NOSIGNAL);
        } while (w < 0 && errno == EINTR);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            conn_fail(c, "send");
            return -1;
        }
        if (w < 0 || (size_t)w < n) {
            c->writable = false;
        }
        if (w > 0) {
            off = (size_t)w;
            c->tx += off;
            set->bytes_out += off;
        }
    }
    if (off < n && outq_append(&c->out, &set->loop->pool, buf + off,
                               n - off) < 0) {
        log_limited(&conn_nomem_log, LOG_WARNING, true,
                    "conn %llu: cannot queue output",
                    (unsigned long long)c->id);
        conn_close(c, CONN_NOMEM);
        return -1;
    }
    if (outq_footprint(&c->out) >= set->high) {
        c->rd_paused = true;
    }
    return 0;
}

/* How much the next read may ask for; 0 means do not read now. */
static size_t
conn_read_size(const struct conn *c, size_t budget)
{
    size_t want = LOOP_SCRATCH < budget ? LOOP_SCRATCH : budget;

    if (c->draining) {
        /* Input after the shutdown began is read only to find the EOF. */
        return c->wr_shut ? want : 0;
    }
    /* The footprint, not just the queued bytes: the head chunk's sent
     * prefix is memory too, and the bound counts chunks. */
    size_t used = outq_footprint(&c->out);
    if (used >= c->set->high) {
        return 0;
    }
    if (want > c->set->high - used) {
        want = c->set->high - used;
    }
    return want;
}

/* One turn: flush, then read and echo until EAGAIN, EOF, backpressure or
 * the budget runs out (then requeue on the ready list). */
static void
conn_run(struct conn *c)
{
    struct conn_set *set = c->set;
    size_t budget = CONN_READ_BUDGET;
    size_t want;
    ssize_t n;

    for (;;) {
        if (c->writable && !outq_empty(&c->out) && conn_flush(c) < 0) {
            return;
        }
        if (c->rd_paused) {
            if (c->out.bytes > set->low) {
                break;
            }
            c->rd_paused = false;
        }
        if (c->draining && !c->wr_shut && outq_empty(&c->out)) {
            (void)shutdown(c->io.fd, SHUT_WR);
            c->wr_shut = true;
        }
        if (c->eof || !c->readable) {
            break;
        }
        want = conn_read_size(c, budget);
        if (want == 0) {
            if (budget == 0) {
                loop_ready(set->loop, &c->io);
            }
            break;
        }
        n = read(c->io.fd, set->loop->scratch, want);
        if (n > 0) {
            budget -= (size_t)n;
            c->rx += (uint64_t)n;
            set->bytes_in += (uint64_t)n;
            conn_touch(c);
            /* A short read means the receive queue was empty just now;
             * any later byte raises a new edge. Not so after RDHUP: keep
             * reading until 0, or the EOF is never seen. */
            if ((size_t)n < want && !c->rdhup) {
                c->readable = false;
            }
            if (!c->draining && conn_echo(c, set->loop->scratch,
                                          (size_t)n) < 0) {
                return;
            }
        } else if (n == 0) {
            c->eof = true;
            c->readable = false;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->readable = false;
        } else if (errno != EINTR) {
            conn_fail(c, "read");
            return;
        }
    }
    /* A flush that took all it was offered (OUTQ_IOV chunks) leaves the
     * socket writable, so no edge will come for the rest of the queue:
     * come back for it before the next wait. */
    if (c->writable && !outq_empty(&c->out)) {
        loop_ready(set->loop, &c->io);
    }
    if (c->eof && outq_empty(&c->out)) {
        conn_close(c, c->draining ? CONN_SHUTDOWN : CONN_EOF);
    }
}

void
conn_set_drain(struct conn_set *set)
{
    set->draining = true;
    for (struct list *n = set->lru.next; n != &set->lru; n = n->next) {
        struct conn *c = conn_of_lru(n);
        c->draining = true;
        c->rd_paused = false;
        loop_ready(set->loop, &c->io);
    }
}

void
conn_set_recount(struct conn_set *set)
{
    for (struct list *n = set->lru.next; n != &set->lru; n = n->next) {
        struct conn *c = conn_of_lru(n);

        c->source = PEER_NONE;
        if (set->peers != NULL) {
            /* Not PEER_OVER (no limit), and not PEER_FULL: the table is
             * sized for max_connections and never shrinks. If it ever
             * were, the conn would just go uncounted. */
            (void)peer_acquire(set->peers, (const struct sockaddr *)&c->peer,
                               0, &c->source);
        }
    }
}

void
conn_set_close_all(struct conn_set *set, enum conn_reason why)
{
    struct list *n;

    while ((n = list_first(&set->lru)) != NULL) {
        conn_close(conn_of_lru(n), why);
    }
}
