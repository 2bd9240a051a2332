/*
 * listener.c - accept connections on TCP echo listening sockets.
 *
 * Owns: the accept loop (accept4 until EAGAIN, at most LSN_ACCEPT_BUDGET
 * per turn, then requeue: listeners are edge-triggered too), admission
 * before allocation (over max_connections, or over
 * max_connections_per_source for the client's source: accept and close
 * at once; both limits are process-wide, see admit.h), and fd
 * exhaustion: EMFILE/ENFILE/ENOBUFS/ENOMEM shed the pending connections
 * with the reserve fd and pause accepting on a timer, so the daemon never
 * spins and never exits. Binding, registration and close belong to the
 * bound-socket set (bset.c).
 * Never reads client bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "acl.h"
#include "counter.h"
#include "listener.h"

static void lsn_pause_end(struct loop_timer *t);

static int
lsn_reserve_open(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

int
lsn_set_init(struct lsn_set *set, struct loop *loop, struct conn_set *conns,
             struct bset_local *socks)
{
    memset(set, 0, sizeof(*set));
    set->loop = loop;
    set->conns = conns;
    set->socks = socks;
    set->adm = conns->adm;
    loop_timer_init(&set->pause_timer, lsn_pause_end);
    set->reserve_fd = lsn_reserve_open();
    return set->reserve_fd < 0 ? -1 : 0;
}

void
lsn_set_fini(struct lsn_set *set)
{
    loop_timer_disarm(&set->pause_timer);
    if (set->reserve_fd >= 0) {
        close(set->reserve_fd);
        set->reserve_fd = -1;
    }
}

/* Pause every listener; lsn_pause_end requeues the readable ones. */
static void
lsn_pause(struct lsn_set *set)
{
    set->paused = true;
    loop_timer_arm(set->loop, &set->pause_timer, set->loop->now + LSN_PAUSE_MS);
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
    for (struct list *n = set->socks->all.next; n != &set->socks->all;
         n = n->next) {
        struct bset_sock *b = list_entry(n, struct bset_sock, node);
        if (b->kind == &lsn_kind && b->readable) {
            loop_ready(set->loop, &b->io);
        }
    }
}

/* The counters of l's listen entry (slot 0 without a table). */
static struct sts_ctr *
lsn_ctr(const struct bset_sock *l)
{
    struct lsn_set *set = l->ctx;

    return &set->conns->tab.slot[l->slot].c;
}

/* Out of fds (or memory): give up the reserve fd, accept-and-close what is
 * pending so those clients get an answer instead of hanging in the
 * backlog, take the reserve back, and pause. */
static void
lsn_shed(struct bset_sock *l, int err)
{
    struct lsn_set *set = l->ctx;
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
    ctr_add(&set->n_shed, shed);
    ctr_add(&lsn_ctr(l)->refused[STS_REF_EMFILE], shed);
    errno = err;
    log_limited(&set->emfile_log, LOG_WARNING, true,
                "%s: accept failed, shed %u pending connection(s), pausing "
                "accepts for %d ms",
                l->name, shed, LSN_PAUSE_MS);
    lsn_pause(set);
}

/* Count the client in its source, or refuse it (accept and close) if the
 * source is at its limit. Returns -1 if refused; fd is then closed. */
static int
lsn_admit_source(struct bset_sock *l, int fd, const struct sockaddr *sa,
                 uint32_t *source)
{
    struct lsn_set *set = l->ctx;
    struct adm *a = set->adm;
    size_t limit =
        atomic_load_explicit(&a->max_per_source, memory_order_relaxed);
    char name[PEER_NAME_MAX];
    enum peer_verdict v;
    bool say;

    adm_lock(a);
    conn_set_sync_peers(set->conns);
    v = peer_acquire(&a->peers, sa, limit, source);
    /* Name the source only for the messages the limiter lets through. */
    say = v != PEER_OK && log_limit_pass(&set->source_log, LOG_WARNING);
    if (say) {
        peer_name(&a->peers, sa, name, sizeof(name));
    }
    adm_unlock(a);
    if (v == PEER_OK) {
        return 0;
    }
    close(fd);
    ctr_add(v == PEER_OVER ? &set->n_rejected_source : &set->n_shed, 1);
    ctr_add(&lsn_ctr(l)->refused[v == PEER_OVER ? STS_REF_PER_SOURCE
                                                : STS_REF_EMFILE],
            1);
    if (!say) {
        return -1;
    }
    if (v == PEER_OVER) {
        log_limit_write(&set->source_log, LOG_WARNING, false,
                        "%s: max_connections_per_source (%zu) reached by %s, "
                        "connection refused",
                        l->name, limit, name);
    } else {
        /* Not while the table has a slot per max_connections, as the
         * server sizes it; should that ever break, refuse, not crash. */
        log_limit_write(&set->source_log, LOG_WARNING, false,
                        "%s: no room to count source %s, connection refused",
                        l->name, name);
    }
    return -1;
}

/* The access lists, right after accept4 and before anything is
 * allocated: on a PROXY listener the peer must be a trusted proxy
 * (proxy_from; the client's own address is judged once its header has
 * come), on any other the client must pass allow and deny. Returns true
 * when refused (fd closed, counted, logged through a limiter). */
static bool
lsn_refused(struct bset_sock *l, int fd, const struct sockaddr *sa)
{
    const struct bset_pol *pol = l->pol;
    struct lsn_set *set = l->ctx;
    char who[SOCK_NAME_MAX];

    if (pol == NULL) {
        return false; /* no policy (unit tests): everyone */
    }
    if (pol->proxy ? acl_match(pol->proxy_from, sa)
                   : acl_permits(pol->allow, pol->deny, sa)) {
        return false;
    }
    close(fd);
    ctr_add(pol->proxy ? &set->n_untrusted : &set->n_acl, 1);
    ctr_add(&lsn_ctr(l)->refused[pol->proxy ? STS_REF_UNTRUSTED : STS_REF_ACL],
            1);
    if (log_limit_pass(&set->acl_log, LOG_INFO)) {
        sock_name(sa, who, sizeof(who));
        log_limit_write(&set->acl_log, LOG_INFO, false,
                        pol->proxy ? "%s: %s is not in proxy_from, "
                                     "connection refused"
                                   : "%s: %s refused by allow/deny",
                        l->name, who);
    }
    return true;
}

static bool
lsn_proxied(const struct bset_sock *l)
{
    return l->pol != NULL && l->pol->proxy;
}

static void
lsn_admit(struct bset_sock *l, int fd, const struct sockaddr_storage *peer)
{
    struct lsn_set *set = l->ctx;
    struct adm *a = set->adm;
    uint32_t source = PEER_NONE;

    if (lsn_refused(l, fd, (const struct sockaddr *)peer)) {
        return;
    }
    if (set->conns->draining || !adm_take(a)) {
        close(fd);
        ctr_add(&set->n_rejected, 1);
        ctr_add(&lsn_ctr(l)->refused[STS_REF_MAX_CONNS], 1);
        log_limited(&set->reject_log, LOG_WARNING, false,
                    "%s: max_connections (%zu) reached, connection refused",
                    l->name,
                    atomic_load_explicit(&a->max_conns, memory_order_relaxed));
        return;
    }
    /* Behind a proxy the source is known only from its header. */
    if (!lsn_proxied(l) &&
        lsn_admit_source(l, fd, (const struct sockaddr *)peer, &source) < 0) {
        adm_give(a);
        return;
    }
    if (conn_new(set->conns, fd, source, l->pol, l->slot) == NULL) {
        int saved = errno;
        unsigned gen = set->conns->peer_gen; /* of the handle */

        close(fd);
        adm_lock(a);
        /* A table rebuilt since the acquire voided the handle. */
        if (a->gen == gen) {
            peer_release(&a->peers, source);
        }
        adm_unlock(a);
        adm_give(a);
        ctr_add(&set->n_shed, 1);
        ctr_add(&lsn_ctr(l)->refused[STS_REF_EMFILE], 1);
        errno = saved;
        log_limited(&set->emfile_log, LOG_WARNING, true,
                    "%s: cannot set up connection", l->name);
    }
}

/* Accept up to `budget` connections; false if the turn ended early
 * (EAGAIN, a pause, a shed), true if the budget ran out first. */
static bool
lsn_accept(struct bset_sock *l, size_t budget)
{
    struct lsn_set *set = l->ctx;
    struct sockaddr_storage peer;
    socklen_t plen;
    int fd;

    for (size_t i = 0; i < budget; i++) {
        if (set->paused || !l->readable) {
            return false;
        }
        plen = sizeof(peer);
        fd = accept4(l->io.fd, (struct sockaddr *)&peer, &plen,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            lsn_admit(l, fd, &peer);
            continue;
        }
        switch (errno) {
        case EAGAIN:
#if EAGAIN != EWOULDBLOCK
        case EWOULDBLOCK:
#endif
            l->readable = false;
            return false;
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
            return false;
        }
    }
    return true;
}

static void
lsn_run(struct bset_sock *l)
{
    /* Budget spent with the backlog maybe not empty: no new edge will say
     * so, so come back before the next blocking wait. */
    if (lsn_accept(l, LSN_ACCEPT_BUDGET)) {
        loop_ready(l->local->loop, &l->io);
    }
}

/* Before this worker closes its SO_REUSEPORT listener: closing resets
 * every connection still in its accept queue, so take them all now and
 * serve them (admission still applies). */
static void
lsn_drain(struct bset_sock *l)
{
    struct lsn_set *set = l->ctx;
    bool paused = set->paused;

    set->paused = false;
    l->readable = true;
    (void)lsn_accept(l, SIZE_MAX);
    set->paused = paused || set->paused;
}

const struct bset_kind lsn_kind = {
    .events = EPOLLIN,
    .run = lsn_run,
    .drain = lsn_drain,
};
