/*
 * listener.c - bind or adopt listening sockets and accept connections.
 *
 * Owns: the accept loop (accept4 until EAGAIN, at most LSN_ACCEPT_BUDGET
 * per turn, then requeue: listeners are edge-triggered too), admission
 * before allocation (over max_connections, or over
 * max_connections_per_source for the client's source in the conn set's
 * peer table: accept and close at once),
 * and fd exhaustion: EMFILE/ENFILE/ENOBUFS/ENOMEM shed the pending
 * connections with the reserve fd and pause accepting on a timer, so the
 * daemon never spins and never exits.
 * Never reads client bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "listener.h"

static void lsn_pause_end(struct loop_timer *t);

static int
lsn_reserve_open(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

int
lsn_set_init(struct lsn_set *set, struct loop *loop, struct conn_set *conns)
{
    memset(set, 0, sizeof(*set));
    set->loop = loop;
    set->conns = conns;
    list_init(&set->all);
    loop_timer_init(&set->pause_timer, lsn_pause_end);
    set->reserve_fd = lsn_reserve_open();
    return set->reserve_fd < 0 ? -1 : 0;
}

void
lsn_set_fini(struct lsn_set *set)
{
    struct list *n;

    while ((n = list_first(&set->all)) != NULL) {
        lsn_close(list_entry(n, struct lsn, node));
    }
    loop_timer_disarm(&set->pause_timer);
    if (set->reserve_fd >= 0) {
        close(set->reserve_fd);
        set->reserve_fd = -1;
    }
}

size_t
lsn_count(const struct lsn_set *set)
{
    size_t n = 0;

    for (const struct list *p = set->all.next; p != &set->all; p = p->next) {
        n++;
    }
    return n;
}

/* Pause every listener; lsn_pause_end requeues the readable ones. */
static void
lsn_pause(struct lsn_set *set)
{
    set->paused = true;
    loop_timer_arm(set->loop, &set->pause_timer,
                   set->loop->now + LSN_PAUSE_MS);
}

static void
lsn_pause_end(struct loop_timer *t)
{
    struct lsn_set *set = list_entry(t, struct lsn_set, pause_timer);

    set->paused = false;
    if (set->reserve_fd < 0) {
        set->reserve_fd = lsn_reserve_open();
    }
    /* The edges were used up while paused: requeue, do not wait. */
    for (struct list *n = set->all.next; n != &set->all; n = n->next) {
        struct lsn *l = list_entry(n, struct lsn, node);
        if (l->readable) {
            loop_ready(set->loop, &l->io);
        }
    }
}

/* Out of fds (or memory): give up the reserve fd, accept-and-close what is
 * pending so those clients get an answer instead of hanging in the
 * backlog, take the reserve back, and pause. */
static void
lsn_shed(struct lsn *l, int err)
{
    struct lsn_set *set = l->set;
    unsigned shed = 0;
    int fd;

    if (set->reserve_fd >= 0) {
        close(set->reserve_fd);
        set->reserve_fd = -1;
        while (shed < LSN_ACCEPT_BUDGET &&
               (fd = accept4(l->io.fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
            close(fd);
            shed++;
        }
        set->reserve_fd = lsn_reserve_open();
    }
    set->n_shed += shed;
    errno = err;
    log_limited(&set->emfile_log, LOG_WARNING, true,
                "%s: accept failed, shed %u pending connection(s), pausing "
                "accepts for %d ms", l->name, shed, LSN_PAUSE_MS);
    lsn_pause(set);
}

/* Count the client in its source, or refuse it (accept and close) if the
 * source is at its limit. Returns -1 if refused; fd is then closed. */
static int
lsn_admit_source(struct lsn *l, int fd, const struct sockaddr *sa,
                 uint32_t *source)
{
    struct lsn_set *set = l->set;
    struct peer_table *peers = set->conns->peers;
    char name[PEER_NAME_MAX];
    enum peer_verdict v;

    *source = PEER_NONE;
    if (peers == NULL) {
        return 0;
    }
    v = peer_acquire(peers, sa, set->max_per_source, source);
    if (v == PEER_OK) {
        return 0;
    }
    close(fd);
    if (v == PEER_OVER) {
        set->n_rejected_source++;
    } else {
        set->n_shed++;
    }
    /* Name the source only for the messages the limiter lets through. */
    if (!log_limit_pass(&set->source_log, LOG_WARNING)) {
        return -1;
    }
    peer_name(peers, sa, name, sizeof(name));
    if (v == PEER_OVER) {
        log_limit_write(&set->source_log, LOG_WARNING, false,
                    "%s: max_connections_per_source (%zu) reached by %s, "
                    "connection refused", l->name, set->max_per_source,
                    name);
    } else {
        /* Not while the table has a slot per max_connections, as the
         * server sizes it; should that ever break, refuse, not crash. */
        log_limit_write(&set->source_log, LOG_WARNING, false,
                    "%s: no room to count source %s, connection refused",
                    l->name, name);
    }
    return -1;
}

static void
lsn_admit(struct lsn *l, int fd, const struct sockaddr_storage *peer,
          socklen_t plen)
{
    struct lsn_set *set = l->set;
    const struct sockaddr *sa = (const struct sockaddr *)peer;
    uint32_t source;

    if (set->conns->n_open >= set->max_conns || set->conns->draining) {
        close(fd);
        set->n_rejected++;
        log_limited(&set->reject_log, LOG_WARNING, false,
                    "%s: max_connections (%zu) reached, connection refused",
                    l->name, set->max_conns);
        return;
    }
    if (lsn_admit_source(l, fd, sa, &source) < 0) {
        return;
    }
    if (conn_new(set->conns, fd, sa, plen, source) == NULL) {
        int saved = errno;
        close(fd);
        peer_release(set->conns->peers, source);
        set->n_shed++;
        errno = saved;
        log_limited(&set->emfile_log, LOG_WARNING, true,
                    "%s: cannot set up connection", l->name);
    }
}

static void
lsn_run(struct lsn *l)
{
    struct sockaddr_storage peer;
    socklen_t plen;
    int fd;

    for (unsigned i = 0; i < LSN_ACCEPT_BUDGET; i++) {
        if (l->set->paused || !l->readable) {
            return;
        }
        plen = sizeof(peer);
        fd = accept4(l->io.fd, (struct sockaddr *)&peer, &plen,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            lsn_admit(l, fd, &peer, plen);
            continue;
        }
        switch (errno) {
        case EAGAIN:
#if EAGAIN != EWOULDBLOCK
        case EWOULDBLOCK:
#endif
            l->readable = false;
            return;
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case EPERM: /* firewall rules */
        case ENETDOWN:
        case ENOPROTOOPT:
        case EHOSTDOWN:
        case ENONET:
        case EHOSTUNREACH:
        case EOPNOTSUPP:
        case ENETUNREACH:
            continue; /* that connection's problem, not ours */
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
        default:
            lsn_shed(l, errno);
            return;
        }
    }
    /* Budget spent with the backlog maybe not empty: no new edge will say
     * so, so come back before the next blocking wait. */
    loop_ready(l->set->loop, &l->io);
}

static void
lsn_on_event(struct loop_io *io, uint32_t events)
{
    struct lsn *l = (struct lsn *)io;

    if (events & EPOLLIN) {
        l->readable = true;
    }
    lsn_run(l);
}

static void
lsn_on_ready(struct loop_io *io)
{
    lsn_run((struct lsn *)io);
}

static void
lsn_on_free(struct loop_io *io)
{
    free(io);
}

static struct lsn *
lsn_register(struct lsn_set *set, int fd)
{
    struct lsn *l = calloc(1, sizeof(*l));
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (l == NULL) {
        return NULL;
    }
    loop_io_init(&l->io, fd, lsn_on_event, lsn_on_ready, lsn_on_free);
    l->set = set;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
        sock_name((struct sockaddr *)&ss, l->name, sizeof(l->name));
    } else {
        snprintf(l->name, sizeof(l->name), "fd %d", fd);
    }
    if (loop_add(set->loop, &l->io, EPOLLIN) < 0) {
        int saved = errno;
        free(l);
        errno = saved;
        return NULL;
    }
    list_insert_tail(&set->all, &l->node);
    return l;
}

struct lsn *
lsn_open(struct lsn_set *set, const struct cfg_listen *conf, int backlog)
{
    struct sockaddr_storage ss;
    socklen_t len;
    struct lsn *l;
    int fd, saved;

    if (sock_addr(conf->address, (int)conf->port, &ss, &len) < 0) {
        return NULL;
    }
    fd = sock_listen((struct sockaddr *)&ss, len, conf->ipv6_only, backlog);
    if (fd < 0) {
        return NULL;
    }
    l = lsn_register(set, fd);
    if (l == NULL) {
        saved = errno;
        close(fd);
        errno = saved;
        return NULL;
    }
    l->conf = *conf;
    return l;
}

struct lsn *
lsn_adopt(struct lsn_set *set, int fd)
{
    struct lsn *l;

    if (sock_nonblock_cloexec(fd) < 0) {
        return NULL;
    }
    l = lsn_register(set, fd);
    if (l != NULL) {
        l->adopted = true;
        l->io.shared = true; /* the service manager keeps its copy */
    }
    return l;
}

void
lsn_close(struct lsn *l)
{
    list_remove(&l->node);
    loop_close(l->set->loop, &l->io);
}

struct lsn *
lsn_find(struct lsn_set *set, const struct cfg_listen *conf, bool exact)
{
    for (struct list *n = set->all.next; n != &set->all; n = n->next) {
        struct lsn *l = list_entry(n, struct lsn, node);
        if (l->adopted) {
            continue;
        }
        if (exact ? cfg_listen_equal(&l->conf, conf)
                  : strcmp(l->conf.address, conf->address) == 0 &&
                        l->conf.port == conf->port) {
            return l;
        }
    }
    return NULL;
}
