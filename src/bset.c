/*
 * bset.c - the bound-socket set (see bset.h).
 *
 * Owns: binding and adopting sockets, the reconciliation of the set with
 * a new configuration (bind everything new first, then drop what is no
 * longer listed: all or nothing), and, per worker, the registration,
 * readiness flags and close of each socket. Never accepts a connection or
 * reads a datagram itself: a kind's run does.
 * Invariants: an entry's fds are bound before any worker hears of it; a
 * worker's socket is closed only by that worker (an adopted one only by
 * bset_fini on the main thread, after the workers are gone).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "acl.h"
#include "bset.h"
#include "log.h"
#include "refl.h"
#include "udp.h"

/* ---- policies ---- */

struct bset_pol *
bset_pol_new(const struct cfg *c, const struct cfg_listen *cl)
{
    struct bset_pol *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        return NULL;
    }
    atomic_init(&p->refs, 1);
    /* The lists are immutable: sharing them is taking a reference. */
    if (cl == NULL) {
        p->allow = acl_ref(c->allow);
        p->deny = acl_ref(c->deny);
        return p;
    }
    p->allow = acl_ref((struct acl *)cfg_listen_allow(c, cl));
    p->deny = acl_ref((struct acl *)cfg_listen_deny(c, cl));
    p->proxy = cl->proxy_protocol;
    p->discard = cfg_listen_service(cl) == CFG_SVC_DISCARD;
    p->proxy_from = acl_ref(cl->proxy_from);
    p->proxy_timeout_ms = (uint32_t)cl->proxy_timeout * 1000;
    p->stamp = cfg_listen_stamp(cl);
    p->stamp_opts.stateful = strcmp(cl->stamp_mode, "stateful") == 0;
    p->stamp_opts.ptp = strcmp(cl->stamp_timestamp, "ptp") == 0;
    p->stamp_opts.cos_permit = cl->stamp_honour_dscp ? UINT64_MAX : 0;
    p->stamp_low_ports = cl->stamp_reply_low_ports;
    p->stamp_busy_poll_us = (uint32_t)cl->stamp_busy_poll;
    p->stamp_key_len = cl->stamp_key_len;
    memcpy(p->stamp_key, cl->stamp_key, cl->stamp_key_len);
    return p;
}

struct bset_pol *
bset_pol_ref(struct bset_pol *p)
{
    if (p != NULL) {
        atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    }
    return p;
}

void
bset_pol_unref(struct bset_pol *p)
{
    /* acq_rel: the thread that frees sees every other thread's reads
     * of it done. */
    if (p == NULL ||
        atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    acl_free(p->allow);
    acl_free(p->deny);
    acl_free(p->proxy_from);
    udp_limit_unref(p->lim);
    explicit_bzero(p->stamp_key, sizeof(p->stamp_key));
    free(p);
}

int
bset_pols_make(struct bset_pols *ps, const struct cfg *c)
{
    ps->n = 0;
    for (size_t i = 0; i <= c->n_listen; i++) {
        ps->p[i] = bset_pol_new(c, i < c->n_listen ? &c->listen[i] : NULL);
        if (ps->p[i] == NULL) {
            bset_pols_drop(ps);
            errno = ENOMEM;
            return -1;
        }
        ps->n = i + 1;
    }
    return 0;
}

void
bset_pols_drop(struct bset_pols *ps)
{
    while (ps->n > 0) {
        bset_pol_unref(ps->p[--ps->n]);
    }
}

/* Make pol entry e's policy (a reference of its own). An entry with
 * buckets of its own keeps them: the new policy takes the old one's (a
 * policy is made before the reload is sure to happen, the buckets only
 * now). Returns 0, or -1 with errno ENOMEM (the entry keeps no buckets
 * and uses the shared ones). */
static int
bset_set_pol(struct bset_ent *e, struct bset_pol *pol, const struct cfg *c,
             const struct cfg_listen *cl)
{
    struct bset_pol *old = e->pol;
    int rc = 0;

    if (pol != NULL && cl != NULL && cl->own_limits && pol->lim == NULL) {
        pol->lim = old != NULL && old->lim != NULL ? udp_limit_ref(old->lim)
                                                   : udp_limit_new();
        if (pol->lim != NULL) {
            udp_limit_configure_entry(pol->lim, c, cl);
        } else {
            rc = -1;
        }
    }
    e->pol = bset_pol_ref(pol);
    bset_pol_unref(old);
    return rc;
}

void
bset_apply_pols(struct bset *s, const struct cfg *c, const struct bset_pols *ps)
{
    for (struct list *n = s->all.next; n != &s->all; n = n->next) {
        struct bset_ent *e = list_entry(n, struct bset_ent, node);

        if (e->adopted) {
            (void)bset_set_pol(e, ps->p[c->n_listen], c, NULL);
            continue;
        }
        for (size_t i = 0; i < c->n_listen; i++) {
            if (!cfg_listen_equal(&e->conf, &c->listen[i])) {
                continue;
            }
            if (bset_set_pol(e, ps->p[i], c, &c->listen[i]) < 0) {
                log_warn("%s: no memory for its own UDP limits; the "
                         "top-level ones apply",
                         e->name);
            }
            break;
        }
    }
}

/* ---- the main thread's half ---- */

void
bset_init(struct bset *s, size_t n_workers)
{
    list_init(&s->all);
    s->n_workers = n_workers;
    s->next_id = 0;
}

/* Sockets an entry binds: one per worker, but one for an inherited
 * socket and for a metrics listener (the main thread serves it). */
static size_t
bset_nfd(const struct bset *s, const struct bset_ent *e)
{
    return e->adopted || e->metrics ? 1 : s->n_workers;
}

static void
bset_ent_free(struct bset *s, struct bset_ent *e)
{
    size_t n = bset_nfd(s, e);

    for (size_t i = 0; i < n; i++) {
        if (e->fd[i] >= 0) {
            close(e->fd[i]);
        }
    }
    list_remove(&e->node);
    bset_pol_unref(e->pol);
    free(e);
}

void
bset_fini(struct bset *s)
{
    struct list *n;

    while ((n = list_first(&s->all)) != NULL) {
        bset_ent_free(s, list_entry(n, struct bset_ent, node));
    }
}

size_t
bset_count(const struct bset *s)
{
    size_t n = 0;

    for (const struct list *p = s->all.next; p != &s->all; p = p->next) {
        n++;
    }
    return n;
}

static struct bset_ent *
bset_ent_new(struct bset *s, enum bset_type type, size_t n_fd)
{
    struct bset_ent *e = calloc(1, sizeof(*e) + n_fd * sizeof(int));

    if (e == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n_fd; i++) {
        e->fd[i] = -1;
    }
    e->id = ++s->next_id;
    e->type = type;
    list_init(&e->node);
    return e;
}

/* The entry's name from its socket: "127.0.0.1:7", "[::1]:7/udp". */
static void
bset_name(struct bset_ent *e, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char addr[SOCK_NAME_MAX];

    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        sock_name((struct sockaddr *)&ss, addr, sizeof(addr));
    } else {
        snprintf(addr, sizeof(addr), "fd %d", fd);
    }
    snprintf(e->name, sizeof(e->name), "%.*s%s", (int)sizeof(e->name) - 5, addr,
             e->type == BSET_UDP ? "/udp" : "");
}

/* UDP sockets learn each datagram's destination, so a reply leaves from
 * the address asked and a broadcast is told from a unicast. */
static int
bset_setup(const struct bset_ent *e, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    memset(&ss, 0, sizeof(ss)); /* the analyzer cannot see getsockname */
    if (e->type != BSET_UDP) {
        return 0;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
        sock_pktinfo(fd, ss.ss_family) < 0) {
        return -1;
    }
    if (ss.ss_family == AF_INET6) {
        /* IPv4 datagrams on a dual-stack socket: their IP_PKTINFO tells
         * a broadcast from a unicast destination. Harmless if v6-only. */
        (void)sock_pktinfo(fd, AF_INET);
    }
    if (cfg_listen_stamp(&e->conf)) {
        return refl_sock_setup(fd, ss.ss_family);
    }
    return 0;
}

struct bset_ent *
bset_adopt(struct bset *s, int fd, bool dgram)
{
    struct bset_ent *e = bset_ent_new(s, dgram ? BSET_UDP : BSET_TCP, 1);

    if (e == NULL) {
        return NULL;
    }
    if (sock_nonblock_cloexec(fd) < 0 || bset_setup(e, fd) < 0) {
        int saved = errno;
        free(e);
        errno = saved;
        return NULL;
    }
    e->adopted = true;
    e->fd[0] = fd;
    bset_name(e, fd);
    list_insert_tail(&s->all, &e->node);
    return e;
}

/* A bound (not adopted) entry with this configuration; with exact false,
 * one on the same address, port and protocol whatever its options. */
static struct bset_ent *
bset_find(struct bset *s, const struct cfg_listen *conf, bool exact)
{
    for (struct list *n = s->all.next; n != &s->all; n = n->next) {
        struct bset_ent *e = list_entry(n, struct bset_ent, node);

        if (e->adopted) {
            continue;
        }
        if (exact ? cfg_listen_equal(&e->conf, conf)
                  : strcmp(e->conf.address, conf->address) == 0 &&
                        e->conf.port == conf->port &&
                        e->conf.protocol == conf->protocol) {
            return e;
        }
    }
    return NULL;
}

/* Bind one entry: a socket per worker. Returns it (not in the set yet),
 * or NULL with errno. */
static struct bset_ent *
bset_bind(struct bset *s, const struct cfg_listen *cl, int backlog)
{
    enum bset_type type = cl->protocol == CFG_PROTO_UDP ? BSET_UDP : BSET_TCP;
    int st = type == BSET_UDP ? SOCK_DGRAM : SOCK_STREAM;
    struct sockaddr_storage ss;
    struct bset_ent *e;
    socklen_t len;
    int saved;

    if (sock_addr(cl->address, (int)cl->port, &ss, &len) < 0) {
        return NULL;
    }
    /* Our own running socket on the same port (other options) shares it;
     * anybody else's is "in use", as without SO_REUSEPORT. */
    if (bset_find(s, cl, false) == NULL &&
        sock_probe((struct sockaddr *)&ss, len, st, cl->ipv6_only) < 0) {
        return NULL;
    }
    e = bset_ent_new(s, type, cfg_listen_metrics(cl) ? 1 : s->n_workers);
    if (e == NULL) {
        return NULL;
    }
    e->conf = *cl;
    e->metrics = cfg_listen_metrics(cl);
    for (size_t i = 0; i < bset_nfd(s, e); i++) {
        e->fd[i] = sock_bound((struct sockaddr *)&ss, len, st, cl->ipv6_only,
                              true, backlog);
        if (e->fd[i] < 0 || bset_setup(e, e->fd[i]) < 0) {
            goto fail;
        }
    }
    bset_name(e, e->fd[0]);
    return e;
fail:
    saved = errno;
    bset_ent_free(s, e);
    errno = saved;
    return NULL;
}

static bool
bset_wanted(const struct cfg *c, const struct cfg_listen *have)
{
    for (size_t i = 0; i < c->n_listen; i++) {
        if (cfg_listen_equal(have, &c->listen[i])) {
            return true;
        }
    }
    return false;
}

/* "127.0.0.1 port 7", and " (udp)" for UDP: names an entry in errors. */
static void
bset_entry_name(const struct cfg_listen *cl, char *buf, size_t len)
{
    snprintf(buf, len, "%s port %lld%s", cl->address, (long long)cl->port,
             cl->protocol == CFG_PROTO_UDP ? " (udp)" : "");
}

int
bset_sync(struct bset *s, const struct cfg *c, const struct bset_pols *ps,
          bool at_start, struct bset_change *ch, char *fail, size_t faillen)
{
    char what[CFG_ADDR_MAX + 32];
    struct list *n, *next;

    ch->n_added = ch->n_removed = 0;
    for (size_t i = 0; i < c->n_listen; i++) {
        const struct cfg_listen *cl = &c->listen[i];
        struct bset_ent *e;

        if (bset_find(s, cl, true) != NULL) {
            continue;
        }
        e = bset_bind(s, cl, (int)c->listen_backlog);
        if (e != NULL) {
            e->pol = bset_pol_ref(ps->p[i]);
            ch->added[ch->n_added++] = e;
            continue;
        }
        bset_entry_name(cl, what, sizeof(what));
        if (errno == EAFNOSUPPORT && at_start) {
            log_warn("skipping listen address %s", what);
            continue;
        }
        int saved = errno;
        snprintf(fail, faillen, "cannot listen on %s", what);
        while (ch->n_added > 0) {
            bset_ent_free(s, ch->added[--ch->n_added]);
        }
        errno = saved;
        return -1;
    }
    for (n = s->all.next; n != &s->all; n = next) {
        struct bset_ent *e = list_entry(n, struct bset_ent, node);

        next = n->next;
        if (!e->adopted && !bset_wanted(c, &e->conf)) {
            log_notice("no longer listening on %s", e->name);
            ch->removed[ch->n_removed++] = e->id;
            bset_ent_free(s, e);
        }
    }
    for (size_t k = 0; k < ch->n_added; k++) {
        log_notice("listening on %s", ch->added[k]->name);
        list_insert_tail(&s->all, &ch->added[k]->node);
    }
    return 0;
}

int
bset_hand_over(struct bset_ent *e, size_t w)
{
    int fd;

    if (e->adopted) {
        return e->fd[0];
    }
    fd = e->fd[w];
    e->fd[w] = -1;
    return fd;
}

/* ---- each worker's half ---- */

static void
bset_on_event(struct loop_io *io, uint32_t events)
{
    struct bset_sock *b = (struct bset_sock *)io;

    if (events & EPOLLIN) {
        b->readable = true;
    }
    if (events & EPOLLOUT) {
        b->writable = true;
    }
    b->kind->run(b);
    /* An inherited fd that every worker waits on: go to the back of its
     * wait queue, so the next wakeup goes to another idle worker
     * (measured in bench/README.md: without it one worker took all). */
    if (b->io.shared && !b->io.closed &&
        loop_rotate(b->local->loop, &b->io, b->kind->events | EPOLLEXCLUSIVE) <
            0) {
        log_err("%s: cannot register again, this worker stops serving it",
                b->name);
        bset_sock_close(b);
    }
}

static void
bset_on_ready(struct loop_io *io)
{
    struct bset_sock *b = (struct bset_sock *)io;

    b->kind->run(b);
}

static void
bset_on_free(struct loop_io *io)
{
    free(io);
}

static const struct loop_ops bset_ops = {
    .on_event = bset_on_event,
    .on_ready = bset_on_ready,
    .on_free = bset_on_free,
};

void
bset_local_init(struct bset_local *l, struct loop *loop)
{
    l->loop = loop;
    list_init(&l->all);
    l->tab = NULL;
}

void
bset_local_fini(struct bset_local *l)
{
    struct list *n;

    while ((n = list_first(&l->all)) != NULL) {
        bset_sock_close(list_entry(n, struct bset_sock, node));
    }
}

struct bset_sock *
bset_sock_add(struct bset_local *l, uint32_t id, int fd, bool shared,
              const struct bset_kind *kind, void *ctx, const char *name,
              struct bset_pol *pol)
{
    struct bset_sock *b = calloc(1, sizeof(*b));
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    uint32_t events = kind->events;

    if (b == NULL) {
        return NULL;
    }
    loop_io_init(&b->io, fd, &bset_ops);
    b->io.shared = shared;
    b->local = l;
    b->kind = kind;
    b->ctx = ctx;
    b->id = id;
    /* A fresh socket can take datagrams; readability comes with the
     * first edge, at once if something is already queued. */
    b->writable = true;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        b->port = (uint16_t)sock_port((struct sockaddr *)&ss);
    }
    snprintf(b->name, sizeof(b->name), "%s", name);
    if (shared) {
        /* One fd in every worker's epoll: wake one waiter, not all. */
        events |= EPOLLEXCLUSIVE;
    }
    if (loop_add(l->loop, &b->io, events) < 0) {
        int saved = errno;
        free(b);
        errno = saved;
        return NULL;
    }
    b->pol = pol;
    b->slot = l->tab != NULL ? sts_take(l->tab, id) : 0;
    list_insert_tail(&l->all, &b->node);
    return b;
}

void
bset_sock_close(struct bset_sock *b)
{
    if (b->kind->drain != NULL && !b->io.shared) {
        b->kind->drain(b);
    }
    list_remove(&b->node);
    if (b->local->tab != NULL) {
        sts_put(b->local->tab, b->slot); /* its conns may hold it on */
    }
    bset_pol_unref(b->pol);
    b->pol = NULL;
    loop_close(b->local->loop, &b->io);
}

void
bset_local_repolicy(struct bset_local *l, uint32_t id, struct bset_pol *pol)
{
    struct bset_sock *b = bset_sock_find(l, id);
    struct bset_pol *old = pol;

    if (b != NULL) {
        old = b->pol;
        b->pol = pol;
    }
    bset_pol_unref(old);
}

struct bset_sock *
bset_sock_find(struct bset_local *l, uint32_t id)
{
    for (struct list *n = l->all.next; n != &l->all; n = n->next) {
        struct bset_sock *b = list_entry(n, struct bset_sock, node);

        if (b->id == id) {
            return b;
        }
    }
    return NULL;
}
