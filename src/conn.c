/*
 * conn.c - one connection's state machine.
 *
 * Owns: reading the peer until EAGAIN (within a budget), writing the echo
 * at once, queueing only what the kernel refused, backpressure by the
 * output watermarks, half-close, the idle LRU, and conn_close(). A
 * discard connection takes the same path and stops after the read: its
 * queue stays empty, so it never pauses, writes or holds a chunk.
 * Never calls epoll_ctl after registration (loop_add is the only call).
 * Invariants: bytes leave in the order they arrived: new input goes behind
 * anything queued, never ahead of it; a read never asks for more than the
 * room left under the high watermark, and never for 0 bytes (that would
 * look like EOF); readable/writable are set only by epoll events and
 * cleared only by EAGAIN or a short read/write (docs/design.md section 3).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acl.h"
#include "admit.h"
#include "bset.h"
#include "conn.h"
#include "counter.h"
#include "log.h"
#include "proxy.h"
#include "sock.h"

static const char *const conn_reason_names[] = {
    [CONN_EOF] = "eof",
    [CONN_RESET] = "reset",
    [CONN_ERROR] = "error",
    [CONN_IDLE] = "idle-timeout",
    [CONN_NOMEM] = "out-of-memory",
    [CONN_SHUTDOWN] = "shutdown",
    [CONN_SHUTDOWN_TIMEOUT] = "shutdown-timeout",
    [CONN_PROXY] = "proxy",
    [CONN_ACL] = "acl",
    [CONN_PER_SOURCE] = "per-source",
};

const char *
conn_reason_name(enum conn_reason why)
{
    return conn_reason_names[why];
}

static void conn_idle_fire(struct loop_timer *t);

static void conn_pend_fire(struct loop_timer *t);

void
conn_set_init(struct conn_set *set, struct loop *loop)
{
    memset(set, 0, sizeof(*set));
    set->loop = loop;
    list_init(&set->lru);
    list_init(&set->pending);
    loop_timer_init(&set->idle_timer, conn_idle_fire);
    loop_timer_init(&set->pend_timer, conn_pend_fire);
    sts_tab_init(&set->tab);
}

_Static_assert(CONN_REASON_MAX == STS_CLOSE_MAX, "stats.h counts closes");
/* An idle connection costs exactly this (docs/design.md section 8): a
 * new field has to fit in what is left of the padding. */
_Static_assert(sizeof(void *) != 8 || sizeof(struct conn) <= 112,
               "struct conn stays 112 bytes");

/* c's listener's counters. */
static struct sts_ctr *
conn_ctr(struct conn *c)
{
    return &c->set->tab.slot[c->slot].c;
}

/* Backpressure on or off, with its gauge. */
static void
conn_pause(struct conn *c, bool on)
{
    if (c->rd_paused == on) {
        return;
    }
    c->rd_paused = on;
    if (on) {
        ctr_add(&conn_ctr(c)->paused, 1);
    } else {
        ctr_sub(&conn_ctr(c)->paused, 1);
    }
}

/* ---- the per-worker pool ---- */

/* ASan finds a use after free only in memory that really is freed. */
#if defined(__SANITIZE_ADDRESS__)
#define CONN_POOLED 0
#else
#define CONN_POOLED 1
#endif

/*
 * What some conns carry behind the struct (c->ext): the client's address
 * and its name, and while a PROXY header is awaited, the listener's
 * policy and the deadline. A conn from a PROXY listener needs the
 * address the header declares (getpeername() gives the proxy's); with
 * debug logging on, every conn keeps its name for the close line (after
 * a reset or our own FIN getpeername() no longer answers). Other conns
 * spend nothing on it.
 */
struct conn_ext {
    struct bset_pol *pol; /* pending: the listener's (a reference) */
    struct list pend;     /* pending: on set->pending, by deadline */
    uint64_t deadline;    /* pending: loop->now ms the header is due */
    bool have_src;
    bool proxied;                /* src came from a PROXY header */
    struct sockaddr_storage src; /* the client */
    char name[SOCK_NAME_MAX];    /* src as text */
};

static struct conn_ext *
conn_ext(struct conn *c)
{
    return (struct conn_ext *)(void *)(c + 1);
}

/*
 * A fresh zeroed conn from the set's pool, or with a struct conn_ext
 * behind it from calloc (ext); NULL with errno ENOMEM.
 */
static struct conn *
conn_alloc(struct conn_set *set, bool ext)
{
    struct conn *c;

    if (ext) {
        c = calloc(1, sizeof(struct conn) + sizeof(struct conn_ext));
        if (c != NULL) {
            c->ext = true;
        }
        return c;
    }
    if (!CONN_POOLED) {
        return calloc(1, sizeof(struct conn));
    }
    if (set->free != NULL) {
        c = set->free;
        set->free = (struct conn *)c->set; /* the free link */
    } else {
        if (set->carve == NULL ||
            set->carve + sizeof(struct conn) > set->carve_end) {
            /* A slab: a link to the previous slab, then conns carved one
             * by one as needed, so only pages in use become resident. */
            char *slab = malloc(CONN_SLAB);

            if (slab == NULL) {
                return NULL;
            }
            memcpy(slab, &set->slabs, sizeof(set->slabs));
            set->slabs = slab;
            set->carve = slab + sizeof(struct conn);
            set->carve_end = slab + CONN_SLAB;
        }
        c = (struct conn *)(void *)set->carve;
        set->carve += sizeof(struct conn);
    }
    memset(c, 0, sizeof(*c));
    return c;
}

static void
conn_release(struct conn *c)
{
    struct conn_set *set = c->set;

    if (!CONN_POOLED || c->ext) {
        /* Only conns that calloc gave: a carved one never has ext
         * (it is set only on conn_alloc's calloc path). */
        free(c); // NOLINT(clang-analyzer-unix.Malloc)
        return;
    }
    c->set = (struct conn_set *)set->free;
    set->free = c;
}

void
conn_set_fini(struct conn_set *set)
{
    void *slab;

    loop_timer_disarm(&set->idle_timer);
    while ((slab = set->slabs) != NULL) {
        memcpy(&set->slabs, slab, sizeof(set->slabs));
        free(slab);
    }
    set->free = NULL;
    set->carve = set->carve_end = NULL;
}

static struct conn *
conn_of_lru(struct list *n)
{
    return list_entry(n, struct conn, lru);
}

/* Milliseconds since c last made progress (32-bit, wrapping: idle
 * timeouts are at most a day, far below the 49 days of a wrap). */
static uint32_t
conn_idle_for(const struct conn *c)
{
    return (uint32_t)c->set->loop->now - c->active;
}

static void
conn_idle_arm(struct conn_set *set)
{
    struct list *head = list_first(&set->lru);
    uint32_t idle;

    if (set->idle_ms == 0 || head == NULL) {
        loop_timer_disarm(&set->idle_timer);
        return;
    }
    idle = conn_idle_for(conn_of_lru(head));
    loop_timer_arm(set->loop, &set->idle_timer,
                   set->loop->now +
                       (idle < set->idle_ms ? set->idle_ms - idle : 0));
}

static void
conn_idle_fire(struct loop_timer *t)
{
    struct conn_set *set = list_entry(t, struct conn_set, idle_timer);
    struct list *head;

    while (set->idle_ms != 0 && (head = list_first(&set->lru)) != NULL) {
        struct conn *c = conn_of_lru(head);
        if (conn_idle_for(c) < set->idle_ms) {
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
    uint32_t now = (uint32_t)c->set->loop->now;

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
    conn_release((struct conn *)io);
}

static const struct loop_ops conn_ops = {
    .on_event = conn_on_event,
    .on_ready = conn_on_ready,
    .on_free = conn_on_free,
};

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
            conn_pause(c, false);
            loop_ready(set->loop, &c->io);
        }
    }
    conn_idle_arm(set);
}

/* ---- the PROXY header phase ---- */

static void
conn_pend_arm(struct conn_set *set)
{
    struct list *head = list_first(&set->pending);

    if (head == NULL) {
        loop_timer_disarm(&set->pend_timer);
        return;
    }
    loop_timer_arm(set->loop, &set->pend_timer,
                   list_entry(head, struct conn_ext, pend)->deadline);
}

/* The header came, or the conn closes: off the pending list. */
static void
conn_unpend(struct conn *c)
{
    struct conn_ext *x = conn_ext(c);
    bool head = list_first(&c->set->pending) == &x->pend;

    c->pending = false;
    list_remove(&x->pend);
    bset_pol_unref(x->pol);
    x->pol = NULL;
    if (head) {
        conn_pend_arm(c->set);
    }
}

/* Close a conn whose PROXY header is wrong, late or missing. */
static void
conn_proxy_bad(struct conn *c, const char *why)
{
    struct conn_ext *x = conn_ext(c);

    log_limited(&c->set->proxy_log, LOG_INFO, false,
                "conn %d from %s: %s, closed", c->io.fd, x->name, why);
    conn_close(c, CONN_PROXY);
}

static void
conn_pend_fire(struct loop_timer *t)
{
    struct conn_set *set = list_entry(t, struct conn_set, pend_timer);
    struct list *head;

    while ((head = list_first(&set->pending)) != NULL) {
        struct conn_ext *x = list_entry(head, struct conn_ext, pend);

        if (x->deadline > set->loop->now) {
            break;
        }
        /* The conn is right before its ext. */
        conn_proxy_bad((struct conn *)(void *)x - 1,
                       "no complete PROXY header within proxy_timeout");
    }
    conn_pend_arm(set);
}

int
conn_peer(struct conn *c, struct sockaddr_storage *ss)
{
    socklen_t len = sizeof(*ss);

    if (c->ext && conn_ext(c)->have_src) {
        *ss = conn_ext(c)->src;
        return conn_ext(c)->proxied ? 1 : 0;
    }
    memset(ss, 0, sizeof(*ss));
    return getpeername(c->io.fd, (struct sockaddr *)ss, &len) == 0 ? 0 : -1;
}

/* Keep the client's address and name (ext conns). */
static void
conn_set_src(struct conn *c, const struct sockaddr *sa, socklen_t len)
{
    struct conn_ext *x = conn_ext(c);

    memset(&x->src, 0, sizeof(x->src));
    memcpy(&x->src, sa, len < sizeof(x->src) ? len : sizeof(x->src));
    x->have_src = true;
    sock_name((const struct sockaddr *)&x->src, x->name, sizeof(x->name));
}

/* Wait for c's PROXY header until the listener's deadline: the pending
 * list is kept in deadline order (from the tail: listeners seldom differ
 * in proxy_timeout), and its timer watches the head. */
static void
conn_pend(struct conn *c, struct bset_pol *pol)
{
    struct conn_set *set = c->set;
    struct conn_ext *x = conn_ext(c);
    struct list *n = set->pending.prev;

    c->pending = true;
    x->pol = bset_pol_ref(pol);
    x->deadline = set->loop->now + pol->proxy_timeout_ms;
    while (n != &set->pending &&
           list_entry(n, struct conn_ext, pend)->deadline > x->deadline) {
        n = n->prev;
    }
    list_insert_tail(n->next, &x->pend); /* i.e. right after n */
    conn_pend_arm(set);
}

struct conn *
conn_new(struct conn_set *set, int fd, uint32_t source, struct bset_pol *pol,
         uint8_t slot)
{
    bool proxy = pol != NULL && pol->proxy;
    struct conn *c = conn_alloc(set, proxy || log_enabled(LOG_DEBUG));

    if (c == NULL) {
        return NULL;
    }
    loop_io_init(&c->io, fd, &conn_ops);
    c->set = set;
    outq_init(&c->out);
    list_init(&c->lru);
    /* A fresh socket can take bytes; readability comes with the first
     * edge, which registration reports if data is already waiting. */
    c->writable = true;
    if (loop_add(set->loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP) < 0) {
        int saved = errno;
        conn_release(c);
        errno = saved;
        return NULL;
    }
    (void)sock_nodelay(fd); /* best effort: only latency depends on it */
    if (c->ext) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);

        list_init(&conn_ext(c)->pend);
        snprintf(conn_ext(c)->name, SOCK_NAME_MAX, "?");
        if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
            conn_set_src(c, (const struct sockaddr *)&ss, len);
        }
        if (proxy) {
            conn_pend(c, pol);
        }
    }
    c->discard = pol != NULL && pol->discard;
    c->source = source;
    c->active = (uint32_t)set->loop->now;
    c->created = (uint32_t)(set->loop->now / 10);
    list_insert_tail(&set->lru, &c->lru);
    ctr_add(&set->n_open, 1);
    ctr_add(&set->n_opened, 1);
    c->slot = slot;
    sts_hold(&set->tab, slot);
    ctr_add(&conn_ctr(c)->open, 1);
    ctr_add(&conn_ctr(c)->accepted, 1);
    if (set->idle_ms != 0 && !loop_timer_armed(&set->idle_timer)) {
        conn_idle_arm(set);
    }
    return c;
}

/* The debug line of a close, with the name kept since the accept. */
static void
conn_log_close(struct conn *c, enum conn_reason why)
{
    uint32_t age = (uint32_t)(c->set->loop->now / 10) - c->created;

    log_debug("conn %d %s closed: %s in=%llu out=%llu queued=%zu "
              "age=%lu.%02lus worker=%u",
              c->io.fd, c->ext ? conn_ext(c)->name : "?", conn_reason_name(why),
              (unsigned long long)c->rx, (unsigned long long)c->tx,
              c->out.bytes, (unsigned long)(age / 100),
              (unsigned long)(age % 100), c->set->worker);
}

void
conn_close(struct conn *c, enum conn_reason why)
{
    struct conn_set *set = c->set;

    if (c->io.closed) {
        return;
    }
    if (log_enabled(LOG_DEBUG)) {
        conn_log_close(c, why);
    }
    ctr_sub(&conn_ctr(c)->queued, c->out.bytes);
    conn_pause(c, false);
    outq_clear(&c->out, &set->loop->pool);
    if (c->pending) {
        conn_unpend(c);
    }
    if (set->adm != NULL) {
        /* Still on the LRU: a recount after a rebuilt table gives c a
         * handle in the new table, which is the one to release. */
        adm_lock(set->adm);
        conn_set_sync_peers(set);
        peer_release(&set->adm->peers, c->source);
        adm_unlock(set->adm);
        adm_give(set->adm);
    }
    list_remove(&c->lru);
    c->source = PEER_NONE;
    ctr_sub(&set->n_open, 1);
    ctr_add(&set->n_closed[why], 1);
    ctr_sub(&conn_ctr(c)->open, 1);
    ctr_add(&conn_ctr(c)->closed[why], 1);
    if (why == CONN_PROXY) {
        /* Accepted by the kernel, but never served. */
        ctr_add(&conn_ctr(c)->refused[STS_REF_PROXY], 1);
    }
    sts_put(&set->tab, c->slot);
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
    log_limited(&c->set->error_log, LOG_INFO, true, "conn %d: %s", c->io.fd,
                op);
    conn_close(c, CONN_ERROR);
}

/* Flush the queue; returns -1 if the connection was closed. */
static int
conn_flush(struct conn *c)
{
    struct conn_set *set = c->set;
    uint32_t born[OUTQ_IOV];
    size_t len[OUTQ_IOV];
    size_t n = 0;
    bool short_write;
    ssize_t w;

    /* What each chunk it may complete holds, and since when: freed by
     * the flush, so noted before. */
    for (const struct outq_chunk *k = c->out.head; k != NULL && n < OUTQ_IOV;
         k = k->next, n++) {
        born[n] = k->born;
        len[n] = k->end - k->start;
    }
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
    ctr_add(&set->bytes_out, (uint64_t)w);
    ctr_add(&conn_ctr(c)->bytes_out, (uint64_t)w);
    ctr_sub(&conn_ctr(c)->queued, (uint64_t)w);
    /* One delay per chunk whose last byte left: since its first came. */
    for (size_t i = 0, left = (size_t)w; i < n && left >= len[i]; i++) {
        left -= len[i];
        sts_delay_ms(&set->tab, (uint32_t)set->loop->now - born[i]);
    }
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
            ctr_add(&set->bytes_out, off);
            ctr_add(&conn_ctr(c)->bytes_out, off);
            if (off == n) {
                sts_delay_zero(&set->tab);
            }
        }
    }
    if (off < n) {
        struct outq_chunk *tail = c->out.tail;

        if (outq_append(&c->out, &set->loop->pool, buf + off, n - off) < 0) {
            log_limited(&set->nomem_log, LOG_WARNING, true,
                        "conn %d: cannot queue output", c->io.fd);
            conn_close(c, CONN_NOMEM);
            return -1;
        }
        ctr_add(&conn_ctr(c)->queued, n - off);
        /* New chunks are stamped with the loop's clock (ms). */
        for (struct outq_chunk *k = tail != NULL ? tail->next : c->out.head;
             k != NULL; k = k->next) {
            k->born = (uint32_t)set->loop->now;
        }
    }
    if (outq_footprint(&c->out) >= set->high) {
        conn_pause(c, true);
    }
    return 0;
}

/* How much the next read may ask for; 0 means do not read now. */
static size_t
conn_read_size(const struct conn *c, size_t budget)
{
    size_t want = LOOP_SCRATCH < budget ? LOOP_SCRATCH : budget;

    if (c->set->draining) {
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

/* The client a PROXY header declared must pass the listener's allow
 * and deny, and its source's limit, like a direct client at accept.
 * Returns -1 if c was closed. */
static int
conn_admit_declared(struct conn *c, const struct bset_pol *pol)
{
    struct conn_set *set = c->set;
    struct conn_ext *x = conn_ext(c);
    const struct sockaddr *sa = (const struct sockaddr *)&x->src;
    enum peer_verdict v = PEER_OK;

    if (!acl_permits(pol->allow, pol->deny, sa)) {
        log_limited(&set->proxy_log, LOG_INFO, false,
                    "conn %d: %s refused by allow/deny", c->io.fd, x->name);
        conn_close(c, CONN_ACL);
        return -1;
    }
    if (set->adm != NULL) {
        adm_lock(set->adm);
        conn_set_sync_peers(set);
        v = peer_acquire(&set->adm->peers, sa,
                         atomic_load_explicit(&set->adm->max_per_source,
                                              memory_order_relaxed),
                         &c->source);
        adm_unlock(set->adm);
    }
    if (v != PEER_OK) {
        log_limited(&set->proxy_log, LOG_INFO, false,
                    "conn %d: %s over max_connections_per_source, closed",
                    c->io.fd, x->name);
        conn_close(c, v == PEER_OVER ? CONN_PER_SOURCE : CONN_NOMEM);
        return -1;
    }
    return 0;
}

/*
 * Before any byte is echoed on a PROXY listener: peek at what has come,
 * and once it holds a whole header, consume exactly that header (the
 * bytes after it are the client's, read as usual) and take the declared
 * client as the conn's source. Nothing is buffered per conn: the kernel
 * keeps the bytes until the header is whole. Returns 1 when the header
 * is done, 0 to wait for more, -1 if c was closed.
 */
static int
conn_header(struct conn *c)
{
    struct conn_set *set = c->set;
    struct conn_ext *x = conn_ext(c);
    struct bset_pol *pol;
    struct pxy_header h;
    ssize_t n;
    int rc;

    if (!c->readable) {
        return 0;
    }
    do {
        n = recv(c->io.fd, set->loop->scratch, PXY_MAX, MSG_PEEK);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->readable = false;
            return 0;
        }
        conn_fail(c, "recv");
        return -1;
    }
    if (n == 0) {
        conn_proxy_bad(c, "closed before its PROXY header");
        return -1;
    }
    switch (
        pxy_parse((const unsigned char *)set->loop->scratch, (size_t)n, &h)) {
    case PXY_INCOMPLETE:
        if (c->rdhup) {
            conn_proxy_bad(c, "closed inside its PROXY header");
            return -1;
        }
        /* Every byte there was has been seen: the next comes with an
         * edge of its own. */
        c->readable = false;
        return 0;
    case PXY_BAD:
        conn_proxy_bad(c, h.why);
        return -1;
    case PXY_OK:
        break;
    }
    do {
        n = recv(c->io.fd, set->loop->scratch, h.len, 0);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)h.len) {
        conn_fail(c, "recv");
        return -1;
    }
    if (!h.local) {
        conn_set_src(c, (const struct sockaddr *)&h.src, sizeof(h.src));
        x->proxied = true;
    }
    pol = bset_pol_ref(x->pol);
    conn_unpend(c);
    rc = conn_admit_declared(c, pol);
    bset_pol_unref(pol);
    return rc < 0 ? -1 : 1;
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

    if (c->pending && conn_header(c) <= 0) {
        return;
    }
    for (;;) {
        if (c->writable && !outq_empty(&c->out) && conn_flush(c) < 0) {
            return;
        }
        if (c->rd_paused) {
            if (c->out.bytes > set->low) {
                break;
            }
            conn_pause(c, false);
        }
        if (c->set->draining && !c->wr_shut && outq_empty(&c->out)) {
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
            ctr_add(&set->bytes_in, (uint64_t)n);
            ctr_add(&conn_ctr(c)->bytes_in, (uint64_t)n);
            conn_touch(c);
            /* A short read means the receive queue was empty just now;
             * any later byte raises a new edge. Not so after RDHUP: keep
             * reading until 0, or the EOF is never seen. */
            if ((size_t)n < want && !c->rdhup) {
                c->readable = false;
            }
            /* Discard: counted above, gone now. Its queue stays empty,
             * so it never pauses and reads on at once. */
            if (!set->draining && !c->discard &&
                conn_echo(c, set->loop->scratch, (size_t)n) < 0) {
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
        conn_close(c, set->draining ? CONN_SHUTDOWN : CONN_EOF);
    }
}

void
conn_set_drain(struct conn_set *set)
{
    struct list *n, *next;

    set->draining = true;
    for (n = set->lru.next; n != &set->lru; n = next) {
        struct conn *c = conn_of_lru(n);

        next = n->next;
        if (c->pending) {
            /* Nothing of the client's was echoed yet: nothing to drain. */
            conn_close(c, CONN_SHUTDOWN);
            continue;
        }
        conn_pause(c, false);
        loop_ready(set->loop, &c->io);
    }
}

void
conn_set_sync_peers(struct conn_set *set)
{
    struct adm *a = set->adm;

    if (set->peer_gen == a->gen) {
        return;
    }
    set->peer_gen = a->gen;
    for (struct list *n = set->lru.next; n != &set->lru; n = n->next) {
        struct conn *c = conn_of_lru(n);
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);

        c->source = PEER_NONE;
        if (c->pending) {
            continue; /* its source is not known yet */
        }
        /* Not PEER_OVER (no limit), and not PEER_FULL: the table is
         * sized for max_connections and never shrinks. If it ever were,
         * the conn would just go uncounted. */
        if (c->ext && conn_ext(c)->have_src) {
            (void)peer_acquire(&a->peers,
                               (const struct sockaddr *)&conn_ext(c)->src, 0,
                               &c->source);
        } else if (getpeername(c->io.fd, (struct sockaddr *)&ss, &len) == 0) {
            (void)peer_acquire(&a->peers, (const struct sockaddr *)&ss, 0,
                               &c->source);
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
