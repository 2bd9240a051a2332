/*
 * server.c - the control plane.
 *
 * Owns: the one server instance (file-static, main thread only), the
 * current config snapshot, listener set, connection set and per-source
 * table, reload
 * (parse, validate, then apply the difference without dropping a
 * connection), graceful shutdown with a deadline, the STATUS line and the
 * watchdog tick. Never moves client bytes.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "conn.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "peers.h"
#include "server.h"
#include "signals.h"
#include "sock.h"
#include "udp.h"

#define SRV_STATUS_MS 1000
#define SRV_FD_RESERVE 32 /* fds kept for everything but client conns */
#define SRV_STOP_SLACK_S 5 /* stop time asked for beyond shutdown_timeout */

static struct srv {
    struct loop loop;
    struct conn_set conns;
    struct lsn_set lsns;
    struct peer_table peers;
    struct udp_set udps;
    struct cfg cfg;
    struct srv_opts opts;
    struct loop_io sigio;
    struct loop_timer status_timer;
    struct loop_timer watchdog_timer;
    struct loop_timer shutdown_timer;
    uint64_t watchdog_ms;
    long nofile;
    bool activated; /* listeners came from the service manager */
    bool stopping;
    bool started;   /* loop_init succeeded */
    bool reload_failed;
    char status[512];
} srv;

static void
srv_apply_logging(const struct cfg *c, bool reopen)
{
    int level = srv.opts.debug ? LOG_DEBUG : (int)c->log_level;

    if (reopen) {
        log_open(c->syslog_ident, (int)c->syslog_facility, level,
                 srv.opts.foreground || isatty(STDERR_FILENO));
    } else {
        log_set_level(level);
    }
}

/* max_connections fitted under RLIMIT_NOFILE, with a warning if lowered. */
static size_t
srv_fit_conns(const struct cfg *c, size_t n_listeners)
{
    long room = srv.nofile - (long)n_listeners - SRV_FD_RESERVE;

    if (room < 1) {
        room = 1;
    }
    if ((long)c->max_connections > room) {
        /* Once per change, not on every reload of the same file. */
        if ((size_t)room != srv.lsns.max_conns) {
            log_warnx("max_connections %lld lowered to %ld to fit the open "
                      "files limit (RLIMIT_NOFILE %ld)",
                      (long long)c->max_connections, room, srv.nofile);
        }
        return (size_t)room;
    }
    return (size_t)c->max_connections;
}

/* Slots for the per-source table: every source in it holds a connection,
 * and the fitted max_connections never exceeds this. */
static size_t
srv_peer_slots(const struct cfg *c)
{
    return (size_t)(c->max_connections < srv.nofile ? c->max_connections
                                                     : srv.nofile);
}

/* Where the text is after appending the result n of snprintf at used
 * (len when it did not fit: nothing more is appended). */
static size_t
srv_put(size_t used, size_t len, int n)
{
    return n < 0 || (size_t)n >= len - used ? len : used + (size_t)n;
}

/*
 * The STATUS line. Its TCP part comes first and keeps its form; the UDP
 * part is added only once UDP is in use:
 *   "2 listener(s), 5 connection(s) open, 17 accepted, 0 refused (0 per source);
 *    udp: 1 socket(s), 40 received, 31 echoed, 9 dropped (9 rate)"
 */
static void
srv_status_text(char *buf, size_t len)
{
    const struct conn_set *cs = &srv.conns;
    const struct udp_set *us = &srv.udps;
    uint64_t refused = srv.lsns.n_rejected + srv.lsns.n_rejected_source +
                       srv.lsns.n_shed;
    uint64_t dropped = udp_dropped(us);
    size_t used = 0;

    used = srv_put(used, len, snprintf(buf, len,
        "%s%zu listener(s), %zu connection(s) open, %llu accepted, "
        "%llu refused (%llu per source)", srv.stopping ? "stopping: " : "",
        lsn_count(&srv.lsns), cs->n_open, (unsigned long long)cs->n_opened,
        (unsigned long long)refused,
        (unsigned long long)srv.lsns.n_rejected_source));
    if (udp_count(us) > 0 || us->n_rx > 0) {
        const char *sep = " (";

        used = srv_put(used, len, snprintf(buf + used, len - used,
            "; udp: %zu socket(s), %llu received, %llu echoed, "
            "%llu dropped", udp_count(us), (unsigned long long)us->n_rx,
            (unsigned long long)us->n_echoed, (unsigned long long)dropped));
        for (int i = 0; i < UDP_DROP_MAX; i++) {
            if (us->n_drop[i] > 0) {
                used = srv_put(used, len, snprintf(buf + used, len - used,
                    "%s%llu %s", sep, (unsigned long long)us->n_drop[i],
                    udp_drop_name((enum udp_drop)i)));
                sep = ", ";
            }
        }
        if (dropped > 0) {
            used = srv_put(used, len, snprintf(buf + used, len - used, ")"));
        }
    }
    if (srv.reload_failed) {
        snprintf(buf + used, len - used, "; last reload failed, see the log");
    }
}

static void
srv_status_tick(struct loop_timer *t)
{
    char now[sizeof(srv.status)];

    log_limit_flush(); /* a flood that stopped still gets its count */
    srv_status_text(now, sizeof(now));
    /* Remembered only once sent: a line the manager had no room for is
     * offered again at the next tick. */
    if (strcmp(now, srv.status) != 0 && ntf_status(now)) {
        memcpy(srv.status, now, sizeof(now));
    }
    loop_timer_arm(&srv.loop, t, srv.loop.now + SRV_STATUS_MS);
}

static void
srv_watchdog_tick(struct loop_timer *t)
{
    /* From a loop timer: a stalled loop stops petting the watchdog. */
    ntf_watchdog();
    loop_timer_arm(&srv.loop, t, srv.loop.now + srv.watchdog_ms);
}

/* A bound socket of either kind, while srv_sync_listeners works. */
struct srv_sock {
    struct lsn *tcp;
    struct udp_sock *udp;
};

static bool
srv_find(const struct cfg_listen *cl, bool exact)
{
    return cl->protocol == CFG_PROTO_UDP
               ? udp_find(&srv.udps, cl, exact) != NULL
               : lsn_find(&srv.lsns, cl, exact) != NULL;
}

/* Bind one entry. Returns its name, or NULL with errno. */
static const char *
srv_bind(const struct cfg_listen *cl, int backlog, struct srv_sock *s)
{
    s->tcp = NULL;
    s->udp = NULL;
    if (cl->protocol == CFG_PROTO_UDP) {
        s->udp = udp_open(&srv.udps, cl);
        return s->udp != NULL ? s->udp->name : NULL;
    }
    s->tcp = lsn_open(&srv.lsns, cl, backlog);
    return s->tcp != NULL ? s->tcp->name : NULL;
}

static void
srv_unbind(struct srv_sock *s)
{
    if (s->udp != NULL) {
        udp_close(s->udp);
    } else {
        lsn_close(s->tcp);
    }
}

/* "127.0.0.1 port 7", and " (udp)" for UDP: names an entry in errors. */
static void
srv_entry_name(const struct cfg_listen *cl, char *buf, size_t len)
{
    snprintf(buf, len, "%s port %lld%s", cl->address, (long long)cl->port,
             cl->protocol == CFG_PROTO_UDP ? " (udp)" : "");
}

static bool
srv_wanted(const struct cfg *c, const struct cfg_listen *have)
{
    for (size_t i = 0; i < c->n_listen; i++) {
        if (cfg_listen_equal(have, &c->listen[i])) {
            return true;
        }
    }
    return false;
}

/* Close the bound (not adopted) sockets that c no longer lists. */
static void
srv_close_unwanted(const struct cfg *c)
{
    struct list *n, *next;

    for (n = srv.lsns.all.next; n != &srv.lsns.all; n = next) {
        struct lsn *l = list_entry(n, struct lsn, node);

        next = n->next;
        if (!l->adopted && !srv_wanted(c, &l->conf)) {
            log_notice("no longer listening on %s", l->name);
            lsn_close(l);
        }
    }
    for (n = srv.udps.all.next; n != &srv.udps.all; n = next) {
        struct udp_sock *u = list_entry(n, struct udp_sock, node);

        next = n->next;
        if (!u->adopted && !srv_wanted(c, &u->conf)) {
            log_notice("no longer listening on %s", u->name);
            udp_close(u);
        }
    }
}

/*
 * Make the bound sockets (TCP listeners and UDP sockets) match c->listen,
 * and do it all or nothing: first bind every new entry beside the running
 * ones; if one fails, close what was just bound and return -1 with errno,
 * and `fail` naming it, having changed nothing. Then close the sockets no
 * longer configured. An entry on the address, port and protocol of a
 * running socket with other options (ipv6_only) cannot be bound beside
 * it, so it replaces it last; the number of those that failed (logged) is
 * returned. TCP and UDP on one port are two entries that never clash.
 * At startup an address family the host lacks is skipped with a warning.
 */
static int
srv_sync_listeners(const struct cfg *c, bool at_start, char *fail,
                   size_t faillen)
{
    struct srv_sock fresh[CFG_MAX_LISTEN];
    bool replace[CFG_MAX_LISTEN] = { false };
    size_t n_fresh = 0;
    char what[CFG_ADDR_MAX + 32];
    int late = 0;

    for (size_t i = 0; i < c->n_listen; i++) {
        const struct cfg_listen *cl = &c->listen[i];

        if (srv_find(cl, true)) {
            continue;
        }
        if (srv_find(cl, false)) {
            replace[i] = true;
            continue;
        }
        if (srv_bind(cl, (int)c->listen_backlog, &fresh[n_fresh]) != NULL) {
            n_fresh++;
            continue;
        }
        srv_entry_name(cl, what, sizeof(what));
        if (errno == EAFNOSUPPORT && at_start) {
            log_warn("skipping listen address %s", what);
        } else {
            int saved = errno;

            snprintf(fail, faillen, "cannot listen on %s", what);
            while (n_fresh > 0) {
                srv_unbind(&fresh[--n_fresh]);
            }
            errno = saved;
            return -1;
        }
    }
    for (size_t k = 0; k < n_fresh; k++) {
        log_notice("listening on %s", fresh[k].udp != NULL
                                          ? fresh[k].udp->name
                                          : fresh[k].tcp->name);
    }
    srv_close_unwanted(c);
    for (size_t i = 0; i < c->n_listen; i++) {
        const struct cfg_listen *cl = &c->listen[i];
        struct srv_sock s;
        const char *name;

        if (!replace[i]) {
            continue;
        }
        name = srv_bind(cl, (int)c->listen_backlog, &s);
        if (name != NULL) {
            log_notice("listening on %s (options changed)", name);
        } else {
            srv_entry_name(cl, what, sizeof(what));
            log_err("cannot listen on %s", what);
            late++;
        }
    }
    return late;
}

/* Apply the limits of c (at startup and on reload). */
static void
srv_configure(const struct cfg *c)
{
    srv.lsns.max_conns =
        srv_fit_conns(c, lsn_count(&srv.lsns) + udp_count(&srv.udps));
    /* A lower per-source limit refuses new connections only. */
    srv.lsns.max_per_source = (size_t)c->max_connections_per_source;
    conn_set_configure(&srv.conns, (size_t)c->output_high_watermark,
                       (size_t)c->output_low_watermark,
                       (uint64_t)c->idle_timeout * 1000);
    udp_set_configure(&srv.udps, (double)c->udp_rate_limit,
                      (double)c->udp_rate_burst,
                      (double)c->udp_per_source_rate,
                      (double)c->udp_per_source_burst,
                      (unsigned)c->source_prefix_ipv4,
                      (unsigned)c->source_prefix_ipv6);
}

/* A reload that changed nothing: say why, keep serving, tell systemd. */
static void
srv_reload_failed(const char *why)
{
    log_errx("reload failed, keeping the current configuration: %s", why);
    srv.reload_failed = true;
    srv_status_text(srv.status, sizeof(srv.status));
    ntf_ready(srv.status);
}

/* The listener half of a reload. Returns the number of listeners that
 * failed late (logged), or -1 if the reload failed with nothing changed
 * (reported). */
static int
srv_reload_listeners(const struct cfg *next)
{
    char err[CFG_ERR_MAX];
    char fail[CFG_ERR_MAX - 64];
    int late;

    if (srv.activated) {
        log_info("socket-activated: the listen key is ignored on reload");
        return 0;
    }
    if (next->n_listen == 0) {
        snprintf(err, sizeof(err), "%s: listen: no listener configured "
                 "(an empty list needs socket activation)",
                 srv.opts.conf_path);
        srv_reload_failed(err);
        return -1;
    }
    late = srv_sync_listeners(next, false, fail, sizeof(fail));
    if (late < 0) {
        snprintf(err, sizeof(err), "%s: %s", fail, strerror(errno));
        srv_reload_failed(err);
    }
    return late;
}

static void
srv_reload(void)
{
    static struct cfg next; /* large; the server is a singleton */
    struct peer_table peers;
    char err[CFG_ERR_MAX];
    int late, rebuilt;

    ntf_reloading();
    if (cfg_load(&next, srv.opts.conf_path, err, sizeof(err)) < 0) {
        srv_reload_failed(err);
        return;
    }
    /* Allocated now, put in place only once nothing else can fail. */
    rebuilt = peer_rebuild(&srv.peers, &peers, srv_peer_slots(&next),
                           (unsigned)next.source_prefix_ipv4,
                           (unsigned)next.source_prefix_ipv6);
    if (rebuilt < 0) {
        snprintf(err, sizeof(err), "per-source table for %zu sources: %s",
                 srv_peer_slots(&next), strerror(errno));
        srv_reload_failed(err);
        return;
    }
    late = srv_reload_listeners(&next);
    if (late < 0) {
        if (rebuilt > 0) {
            peer_fini(&peers);
        }
        return;
    }
    if (rebuilt > 0) {
        /* New prefixes or more slots: count what is open again. */
        peer_replace(&srv.peers, &peers);
        conn_set_recount(&srv.conns);
    }
    srv_apply_logging(&next,
                      strcmp(next.syslog_ident, srv.cfg.syslog_ident) != 0 ||
                          next.syslog_facility != srv.cfg.syslog_facility);
    srv.reload_failed = late > 0;
    srv_configure(&next);
    srv.cfg = next;
    log_notice("reloaded configuration from %s%s", srv.opts.conf_path,
               late > 0 ? " (some listeners failed)" : "");
    srv_status_text(srv.status, sizeof(srv.status));
    ntf_ready(srv.status);
}

static void
srv_shutdown_deadline(struct loop_timer *t)
{
    (void)t;
    if (srv.conns.n_open > 0) {
        log_notice("shutdown timeout: closing %zu connection(s) with output "
                   "still queued", srv.conns.n_open);
    }
    conn_set_close_all(&srv.conns, CONN_SHUTDOWN_TIMEOUT);
}

static void
srv_shutdown(int sig)
{
    struct list *n;

    if (srv.stopping) {
        log_notice("%s again: closing all connections now", strsignal(sig));
        srv_shutdown_deadline(&srv.shutdown_timer);
        return;
    }
    srv.stopping = true;
    srv_status_text(srv.status, sizeof(srv.status));
    /* The drain deadline, plus slack for closing what is left. */
    ntf_stopping(srv.status,
                 ((uint64_t)srv.cfg.shutdown_timeout + SRV_STOP_SLACK_S) *
                     1000000);
    log_notice("%s: shutting down, %zu connection(s) to drain for up to "
               "%llds", strsignal(sig), srv.conns.n_open,
               (long long)srv.cfg.shutdown_timeout);
    while ((n = list_first(&srv.lsns.all)) != NULL) {
        lsn_close(list_entry(n, struct lsn, node));
    }
    /* Nothing to drain for UDP: every reply went out at once or not. */
    while ((n = list_first(&srv.udps.all)) != NULL) {
        udp_close(list_entry(n, struct udp_sock, node));
    }
    conn_set_drain(&srv.conns);
    loop_timer_arm(&srv.loop, &srv.shutdown_timer,
                   srv.loop.now + (uint64_t)srv.cfg.shutdown_timeout * 1000);
}

static void
srv_on_signal(struct loop_io *io, uint32_t events)
{
    int sig;

    (void)events;
    while ((sig = sig_next(io->fd)) > 0) {
        if (sig == SIGHUP) {
            if (!srv.stopping) {
                srv_reload();
            }
        } else {
            srv_shutdown(sig);
        }
    }
    if (sig < 0) {
        log_err("reading signals");
    }
}

static void
srv_on_signal_ready(struct loop_io *io)
{
    srv_on_signal(io, 0);
}

/* Fail before READY: log, tell the service manager, return the code. */
static int
srv_fail(int code, int err, const char *what)
{
    char status[256];

    snprintf(status, sizeof(status), "failed to start: %s: %s", what,
             strerror(err));
    errno = err;
    log_err("%s", what);
    ntf_failed(err, status);
    return code;
}

static int
srv_open_listeners(void)
{
    int fds[CFG_MAX_LISTEN];
    bool dgram[CFG_MAX_LISTEN];
    size_t n = ntf_listen_fds(fds, dgram, CFG_MAX_LISTEN);
    char fail[128];

    if (n > 0) {
        srv.activated = true;
        for (size_t i = 0; i < n; i++) {
            struct udp_sock *u = NULL;
            struct lsn *l = NULL;

            if (dgram[i]) {
                u = udp_adopt(&srv.udps, fds[i]);
            } else {
                l = lsn_adopt(&srv.lsns, fds[i]);
            }
            if (l == NULL && u == NULL) {
                return srv_fail(SRV_EX_OSERR, errno, "adopting a socket");
            }
            log_notice("listening on %s (socket-activated)",
                       u != NULL ? u->name : l->name);
        }
        log_notice("adopted %zu socket(s) from the service manager; the "
                   "listen key is ignored", n);
        return 0;
    }
    if (srv_sync_listeners(&srv.cfg, true, fail, sizeof(fail)) < 0) {
        return srv_fail(SRV_EX_OSERR, errno, fail);
    }
    if (lsn_count(&srv.lsns) + udp_count(&srv.udps) == 0) {
        return srv_fail(SRV_EX_CONFIG, EINVAL, "no listening sockets");
    }
    return 0;
}

int
srv_start(const struct cfg *cfg, const struct srv_opts *opts)
{
    uint64_t watchdog_usec;
    int fd, rc;

    srv.cfg = *cfg;
    srv.opts = *opts;
    loop_io_init(&srv.sigio, -1, srv_on_signal, srv_on_signal_ready, NULL);
    srv_apply_logging(cfg, true);
    srv.nofile = sock_fit_nofile();
    if (srv.nofile < 0) {
        return srv_fail(SRV_EX_OSERR, errno, "RLIMIT_NOFILE");
    }
    if (loop_init(&srv.loop) < 0) {
        return srv_fail(SRV_EX_OSERR, errno, "creating the event loop");
    }
    srv.started = true;
    peer_init(&srv.peers);
    udp_set_init(&srv.udps, &srv.loop);
    conn_set_init(&srv.conns, &srv.loop);
    srv.conns.peers = &srv.peers;
    if (lsn_set_init(&srv.lsns, &srv.loop, &srv.conns) < 0) {
        return srv_fail(SRV_EX_OSERR, errno, "opening the reserve fd");
    }
    fd = sig_init();
    if (fd < 0) {
        return srv_fail(SRV_EX_OSERR, errno, "setting up signals");
    }
    srv.sigio.fd = fd;
    if (loop_add(&srv.loop, &srv.sigio, EPOLLIN) < 0) {
        return srv_fail(SRV_EX_OSERR, errno, "registering the signalfd");
    }
    rc = srv_open_listeners();
    if (rc != 0) {
        return rc;
    }
    if (peer_configure(&srv.peers, srv_peer_slots(cfg),
                       (unsigned)cfg->source_prefix_ipv4,
                       (unsigned)cfg->source_prefix_ipv6) < 0) {
        return srv_fail(SRV_EX_OSERR, errno, "allocating the per-source "
                        "table");
    }
    srv_configure(cfg);
    loop_timer_init(&srv.status_timer, srv_status_tick);
    loop_timer_init(&srv.watchdog_timer, srv_watchdog_tick);
    loop_timer_init(&srv.shutdown_timer, srv_shutdown_deadline);
    loop_timer_arm(&srv.loop, &srv.status_timer,
                   srv.loop.now + SRV_STATUS_MS);
    watchdog_usec = ntf_watchdog_usec();
    if (watchdog_usec > 0) {
        /* Half the interval (at least 1 ms: a tiny WatchdogSec= is still
         * a watchdog, not "off"). The first ping goes out at once. */
        srv.watchdog_ms = watchdog_usec >= 2000 ? watchdog_usec / 2000 : 1;
        log_info("watchdog enabled: pinging every %llu ms",
                 (unsigned long long)srv.watchdog_ms);
        loop_timer_arm(&srv.loop, &srv.watchdog_timer, srv.loop.now);
    }
    srv_status_text(srv.status, sizeof(srv.status));
    log_notice("echod %s ready: %zu listener(s), max_connections %zu, "
               "max_connections_per_source %zu%s", ECHOD_VERSION,
               lsn_count(&srv.lsns), srv.lsns.max_conns,
               srv.lsns.max_per_source,
               udp_count(&srv.udps) > 0 ? ", udp" : "");
    ntf_ready(srv.status);
    return 0;
}

int
srv_run(void)
{
    while (!(srv.stopping && srv.conns.n_open == 0)) {
        loop_run_once(&srv.loop, -1);
    }
    log_notice("exiting: %llu connection(s) served, %llu bytes echoed; "
               "udp: %llu datagram(s) received, %llu echoed (%llu bytes), "
               "%llu dropped",
               (unsigned long long)srv.conns.n_opened,
               (unsigned long long)srv.conns.bytes_out,
               (unsigned long long)srv.udps.n_rx,
               (unsigned long long)srv.udps.n_echoed,
               (unsigned long long)srv.udps.bytes_echoed,
               (unsigned long long)udp_dropped(&srv.udps));
    return SRV_EX_OK;
}

void
srv_fini(void)
{
    if (!srv.started) {
        return;
    }
    conn_set_close_all(&srv.conns, CONN_SHUTDOWN);
    lsn_set_fini(&srv.lsns);
    peer_fini(&srv.peers); /* after the last conn_close released into it */
    udp_set_fini(&srv.udps);
    loop_close(&srv.loop, &srv.sigio);
    loop_fini(&srv.loop);
    srv.started = false;
}
