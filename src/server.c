/*
 * server.c - the control plane, on the main thread.
 *
 * Owns: the one server instance (file-static, main thread only), the
 * current config snapshot, the bound-socket set, the worker pool and the
 * shared limits it holds, reload (parse, validate, bind what is new, then
 * apply the difference without dropping a connection), graceful shutdown
 * with one deadline for every worker, the STATUS tick and the watchdog
 * (pinged only while every worker's heartbeat is fresh).
 * Never moves client bytes: the workers do.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "bset.h"
#include "ctl.h"
#include "ctlfmt.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "metrics.h"
#include "priv.h"
#include "scrape.h"
#include "server.h"
#include "signals.h"
#include "sock.h"
#include "status.h"
#include "worker.h"

#define SRV_STATUS_MS 1000
#define SRV_FD_RESERVE 32  /* fds kept for everything but client conns */
#define SRV_WRK_FDS 3      /* per worker: epoll, eventfd, reserve fd */
#define SRV_STOP_SLACK_S 5 /* stop time asked for beyond shutdown_timeout */
#define SRV_BEAT_MS 250    /* worker heartbeat without a watchdog */
#define SRV_SYNC_MS 1000   /* wait for the workers to apply a reload */

static struct srv {
    struct loop loop;
    struct wrk_pool pool;
    struct bset socks;
    struct cfg cfg;
    struct srv_opts opts;
    struct loop_io sigio;
    struct loop_io drainio; /* pool.main_fd: a worker drained */
    struct scr scr;         /* the metrics listeners (main thread) */
    struct scr ctl;         /* the control socket's clients */
    struct ctl_sock ctl_sock;
    struct loop_timer status_timer;
    struct loop_timer watchdog_timer;
    struct loop_timer shutdown_timer;
    uint64_t watchdog_ms;
    size_t max_conns; /* max_connections as fitted */
    long nofile;
    bool activated; /* sockets came from the service manager */
    bool dropped;   /* root was given up after binding */
    bool stopping;
    bool loop_ok; /* what srv_fini must undo */
    bool pool_ok;
    bool reload_failed;
    int64_t start_time;  /* unix seconds */
    int64_t config_time; /* of the last successful load */
    uint64_t reloads_ok;
    uint64_t reloads_failed;
    int64_t reload_time; /* of the last reload asked for, 0 = none */
    char reload_error[256];
    char status[512];
} srv;

static int srv_fail(int code, int err, const char *what);

int
srv_log_level(const struct cfg *cfg, const struct srv_opts *opts)
{
    return opts->debug ? LOG_DEBUG : (int)cfg->log_level;
}

/* max_connections fitted under RLIMIT_NOFILE, with a warning if lowered. */
static size_t
srv_fit_conns(const struct cfg *c)
{
    long room = srv.nofile - (long)(bset_count(&srv.socks) * srv.pool.n) -
                (long)(SRV_WRK_FDS * srv.pool.n) - SRV_FD_RESERVE;

    if (room < 1) {
        room = 1;
    }
    if ((long)c->max_connections > room) {
        /* Once per change, not on every reload of the same file. */
        if ((size_t)room != srv.max_conns) {
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

/* Serve metrics entry e on this thread (its one fd, a policy ref). */
static int
srv_scr_add(struct bset_ent *e)
{
    return scr_add(&srv.scr, e->id, bset_hand_over(e, 0), e->name,
                   bset_pol_ref(e->pol));
}

/* One listen entry's part of the snapshot. */
static void
srv_status_entry(struct st_lsn *l, const struct bset_ent *e)
{
    size_t len = strlen(e->name);

    l->udp = e->type == BSET_UDP;
    /* The label is ADDRESS:PORT; the protocol is a label of its own. */
    if (l->udp && len >= 4 && strcmp(e->name + len - 4, "/udp") == 0) {
        len -= 4;
    }
    snprintf(l->name, sizeof(l->name), "%.*s", (int)len, e->name);
    if (e->metrics) {
        l->service = ST_SVC_METRICS;
        scr_sum(&srv.scr, e->id, &l->c);
    } else {
        /* The policy is what the workers act on (bset.h). */
        l->service = e->pol != NULL && e->pol->discard ? ST_SVC_DISCARD
                     : e->pol != NULL && e->pol->stamp ? ST_SVC_STAMP
                                                       : ST_SVC_ECHO;
        wrk_pool_sum_entry(&srv.pool, e->id, &l->c);
    }
}

/* The snapshot every view renders (status.h). */
static void
srv_status_sum(struct st_sum *s)
{
    memset(s, 0, sizeof(*s));
    for (struct list *n = srv.socks.all.next; n != &srv.socks.all;
         n = n->next) {
        const struct bset_ent *e = list_entry(n, struct bset_ent, node);

        if (e->type == BSET_UDP) {
            s->n_udp++;
        } else if (!e->metrics) {
            s->n_tcp++; /* echo and discard; metrics ones are not */
        }
        if (s->n_lsn < ST_LISTENERS) {
            srv_status_entry(&s->lsn[s->n_lsn++], e);
        }
    }
    s->stopping = srv.stopping;
    s->reload_failed = srv.reload_failed;
    s->per_worker = log_enabled(LOG_DEBUG);
    s->start_time = srv.start_time;
    s->config_time = srv.config_time;
    s->reloads_ok = srv.reloads_ok;
    s->reloads_failed = srv.reloads_failed;
    wrk_pool_sum(&srv.pool, s);
}

/* The text of /metrics: the same snapshot as STATUS. The struct is too
 * big for comfort on the stack, and only this thread renders. */
static int
srv_metrics_render(struct mtr_buf *b)
{
    static struct st_sum s;
    struct mtr_proc p;

    srv_status_sum(&s);
    mtr_proc_read(&p);
    return mtr_render(b, &s, &p, ECHOD_VERSION);
}

static int
srv_metrics_answer(const char *req, size_t got, struct mtr_buf *out)
{
    return scr_http_answer(req, got, out, srv_metrics_render);
}

/* ---- the control socket (ctl.h) ---- */

static const char *
srv_entry_name(uint32_t id)
{
    for (struct list *n = srv.socks.all.next; n != &srv.socks.all;
         n = n->next) {
        const struct bset_ent *e = list_entry(n, struct bset_ent, node);

        if (e->id == id) {
            return e->name;
        }
    }
    return "-"; /* a listener a reload closed; its connections live on */
}

static int
srv_ctl_status(struct mtr_buf *out, bool json)
{
    static struct st_sum s;
    struct ctl_info i = {
        .version = ECHOD_VERSION,
        .pid = (long)getpid(),
        .now = (int64_t)time(NULL),
        .config = srv.opts.conf_path,
        .reload_time = srv.reload_time,
        .reload_ok = !srv.reload_failed,
    };

    snprintf(i.reload_error, sizeof(i.reload_error), "%s", srv.reload_error);
    srv_status_sum(&s);
    return ctl_fmt_status(out, &s, &i, json);
}

static int
srv_ctl_stats(struct mtr_buf *out, bool json)
{
    static struct st_sum s;

    srv_status_sum(&s);
    return ctl_fmt_stats(out, &s, json);
}

/* One row of the listing, named for people. */
static void
srv_ctl_conn(struct ctl_conn *c, const struct snap_conn *e)
{
    memset(c, 0, sizeof(*c));
    if (e->peer.ss_family == AF_UNSPEC) {
        snprintf(c->source, sizeof(c->source), "?");
    } else {
        sock_name((const struct sockaddr *)&e->peer, c->source,
                  sizeof(c->source));
    }
    snprintf(c->listener, sizeof(c->listener), "%s",
             srv_entry_name(e->lsn_id));
    c->worker = e->worker;
    c->age_ms = e->age_ms;
    c->idle_ms = e->idle_ms;
    c->rx = e->rx;
    c->tx = e->tx;
    c->queued = e->queued;
    c->paused = e->paused;
    c->proxied = e->proxied;
}

/* The `limit` busiest of what every worker picked. */
static int
srv_ctl_merge(struct mtr_buf *out, struct snap *const *v, size_t limit,
              bool json)
{
    size_t all = 0, n = 0;
    uint64_t total = 0;
    struct snap_conn *pick;
    struct ctl_conn *c;
    int rc;

    for (size_t w = 0; w < srv.pool.n; w++) {
        all += v[w]->n;
        total += v[w]->total;
    }
    pick = calloc(all + 1, sizeof(*pick));
    c = calloc(limit + 1, sizeof(*c));
    if (pick == NULL || c == NULL) {
        free(pick);
        free(c);
        out->failed = 1;
        return -1;
    }
    for (size_t w = 0; w < srv.pool.n; w++) {
        memcpy(pick + n, v[w]->v, v[w]->n * sizeof(*pick));
        n += v[w]->n;
    }
    qsort(pick, n, sizeof(*pick), snap_cmp);
    n = n < limit ? n : limit;
    for (size_t k = 0; k < n; k++) {
        srv_ctl_conn(&c[k], &pick[k]);
    }
    rc = ctl_fmt_conns(out, c, n, total, json);
    free(pick);
    free(c);
    return rc;
}

/* Ask every worker for its busiest connections; the main thread waits
 * for them (each answers within one turn of its loop). */
static int
srv_ctl_conns(struct mtr_buf *out, const struct ctl_req *r)
{
    struct snap *v[WRK_MAX];
    int rc = wrk_pool_snap(&srv.pool, v, r->limit, SRV_SYNC_MS);

    if (rc == 0) {
        rc = srv_ctl_merge(out, v, r->limit, r->json);
    } else if (errno == ETIMEDOUT) {
        log_warnx("control: a worker did not answer within %d ms",
                  SRV_SYNC_MS);
    } else if (errno == ENOMEM) {
        out->failed = 1;
    }
    for (size_t w = 0; w < srv.pool.n; w++) {
        snap_put(v[w]);
    }
    return rc;
}

/* One request line in, "OK\n" and a body or "ERR why\n" out. */
static int
srv_ctl_answer(const char *req, size_t got, struct mtr_buf *out)
{
    struct ctl_req r;
    int rc = 0;

    switch (ctl_parse(req, got, &r)) {
    case CTL_INCOMPLETE:
        return 0;
    case CTL_BAD:
        return mtr_printf(out, "ERR %s\n", r.error) < 0 ? -1 : 1;
    case CTL_DONE:
        break;
    }
    if (mtr_printf(out, "OK\n") < 0) {
        return -1;
    }
    switch (r.cmd) {
    case CTL_STATUS:
        rc = srv_ctl_status(out, r.json);
        break;
    case CTL_STATS:
        rc = srv_ctl_stats(out, r.json);
        break;
    case CTL_CONNECTIONS:
        rc = srv_ctl_conns(out, &r);
        break;
    }
    if (rc < 0 && !out->failed) {
        /* Not memory: a worker is stalled. Say so instead. */
        out->len = 0;
        return mtr_printf(out, "ERR a worker did not answer in time\n") < 0
                   ? -1
                   : 1;
    }
    return rc < 0 ? -1 : 1;
}

/* The control socket, before root is given up (the file then goes to the
 * user echod becomes). The built-in path may be missing (no /run/echod
 * outside the service): a warning. A path the file names must work. */
static int
srv_ctl_open(void)
{
    const struct cfg *c = &srv.cfg;
    uid_t uid = (uid_t)-1;
    gid_t gid = (gid_t)-1;
    char err[256];

    srv.ctl_sock.fd = -1;
    if (c->control_socket[0] == '\0') {
        return 0;
    }
    if (c->user[0] != '\0' && priv_is_root() &&
        priv_lookup(c->user, c->group, &uid, &gid, err, sizeof(err)) < 0) {
        return srv_fail(SRV_EX_OSERR, errno, err);
    }
    if (ctl_sock_open(&srv.ctl_sock, c->control_socket, uid, gid, err,
                      sizeof(err)) == 0) {
        log_info("control socket %s ready", c->control_socket);
        return 0;
    }
    if (strcmp(c->control_socket, CFG_CONTROL_DEFAULT) == 0) {
        log_warnx("%s: %s; running without it (echodctl needs it: set "
                  "control_socket in %s)",
                  err, strerror(errno), srv.opts.conf_path);
        return 0;
    }
    return srv_fail(SRV_EX_OSERR, errno, err);
}

static void
srv_status_text(char *buf, size_t len)
{
    struct st_sum s;

    srv_status_sum(&s);
    st_text(&s, buf, len);
}

static void
srv_status_tick(struct loop_timer *t)
{
    char now[sizeof(srv.status)];
    char per[ST_WORKERS_SHOWN * 48];
    struct st_sum s;

    log_limit_flush(); /* the main thread's limiters */
    srv_status_sum(&s);
    st_text(&s, now, sizeof(now));
    if (strcmp(now, srv.status) != 0 && s.per_worker) {
        st_workers_text(&s, per, sizeof(per));
        log_debug("per worker (accepted/udp received): %s", per);
    }
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
    /* From a loop timer, and only while every worker stamped its
     * heartbeat within the watchdog interval (twice this period): a
     * stalled worker stops the pings as surely as a stalled main loop. */
    uint64_t interval = 2 * srv.watchdog_ms;

    if (srv.loop.now < interval ||
        wrk_pool_alive(&srv.pool, srv.loop.now - interval)) {
        ntf_watchdog();
    }
    loop_timer_arm(&srv.loop, t, srv.loop.now + srv.watchdog_ms);
}

/* The limits of c, for every worker: shared ones set here, the others
 * posted. At startup (before the workers run) and on reload. */
static void
srv_configure(const struct cfg *c)
{
    struct wrk_conf wc = {
        .high = (size_t)c->output_high_watermark,
        .low = (size_t)c->output_low_watermark,
        .idle_ms = (uint64_t)c->idle_timeout * 1000,
    };

    srv.max_conns = srv_fit_conns(c);
    atomic_store(&srv.pool.adm.max_conns, srv.max_conns);
    /* A lower per-source limit refuses new connections only. */
    atomic_store(&srv.pool.adm.max_per_source,
                 (size_t)c->max_connections_per_source);
    udp_limit_configure(
        &srv.pool.udp, (double)c->udp_rate_limit, (double)c->udp_rate_burst,
        (double)c->udp_rate_limit_bytes, (double)c->udp_per_source_rate,
        (double)c->udp_per_source_burst, (double)c->udp_per_source_rate_bytes,
        (unsigned)c->source_prefix_ipv4, (unsigned)c->source_prefix_ipv6,
        srv.loop.now);
    for (size_t i = 0; i < srv.pool.n; i++) {
        if (wrk_post_conf(&srv.pool.w[i], &wc) < 0) {
            log_err("worker %zu: cannot post the new limits", i);
        }
    }
}

/* Tell every worker about the sockets a bset_sync added and removed,
 * and every entry's policy. */
static void
srv_hand_over(const struct bset_change *ch)
{
    for (size_t i = 0; i < srv.pool.n; i++) {
        struct wrk *w = &srv.pool.w[i];

        for (struct list *n = srv.socks.all.next; n != &srv.socks.all;
             n = n->next) {
            const struct bset_ent *e = list_entry(n, struct bset_ent, node);

            if (e->metrics) {
                if (i == 0) {
                    scr_repolicy(&srv.scr, e->id, bset_pol_ref(e->pol));
                }
                continue;
            }
            if (wrk_post_policy(w, e) < 0) {
                log_err("worker %zu: cannot post a new policy", i);
            }
        }
        for (size_t k = 0; k < ch->n_removed; k++) {
            if (i == 0) {
                scr_del(&srv.scr, ch->removed[k]); /* if it was metrics */
            }
            if (wrk_post_del(w, ch->removed[k]) < 0) {
                log_err("worker %zu: cannot post a socket removal", i);
            }
        }
        for (size_t k = 0; k < ch->n_added; k++) {
            struct bset_ent *e = ch->added[k];

            if (e->metrics) {
                if (i == 0 && srv_scr_add(e) < 0) {
                    log_err("cannot serve metrics on %s", e->name);
                }
                continue;
            }
            if (wrk_post_add(w, e, bset_hand_over(e, i)) < 0) {
                log_err("worker %zu: cannot hand over %s", i, e->name);
            }
        }
    }
}

/* A reload that changed nothing: say why, keep serving, tell systemd. */
static void
srv_reload_failed(const char *why)
{
    log_errx("reload failed, keeping the current configuration: %s", why);
    snprintf(srv.reload_error, sizeof(srv.reload_error), "%s", why);
    srv.reload_failed = true;
    srv.reloads_failed++;
    srv_status_text(srv.status, sizeof(srv.status));
    ntf_ready(srv.status);
}

/* The socket half of a reload: binds what is new, all or nothing.
 * Returns 0 (*ch says what to hand over), or -1 with the reload failed
 * and reported, nothing changed. */
static int
srv_reload_sockets(const struct cfg *next, const struct bset_pols *pols,
                   struct bset_change *ch)
{
    char err[CFG_ERR_MAX];
    char fail[CFG_ADDR_MAX + 48]; /* "cannot listen on ADDRESS port N (udp)" */

    ch->n_added = ch->n_removed = 0;
    if (srv.activated) {
        log_info("socket-activated: the listen key is ignored on reload");
        return 0;
    }
    if (next->n_listen == 0) {
        snprintf(err, sizeof(err),
                 "%s: listen: no listener configured "
                 "(an empty list needs socket activation)",
                 srv.opts.conf_path);
        srv_reload_failed(err);
        return -1;
    }
    if (bset_sync(&srv.socks, next, pols, false, ch, fail, sizeof(fail)) < 0) {
        snprintf(err, sizeof(err), "%s: %s%s", fail, strerror(errno),
                 errno == EACCES && srv.dropped
                     ? " (echod gave up root after startup: a port below "
                       "1024 needs a restart)"
                     : "");
        srv_reload_failed(err);
        return -1;
    }
    return 0;
}

/* Keys that take effect only on restart: say that they were kept, and
 * keep their running values in the snapshot. */
static void
srv_reload_kept(struct cfg *next)
{
    char keys[256];

    if (cfg_restart_changes(&srv.cfg, next, keys, sizeof(keys)) > 0) {
        log_warnx("%s changed in %s: kept until echod is restarted "
                  "(%zu worker(s) running)",
                  keys, srv.opts.conf_path, srv.pool.n);
    }
    next->workers = srv.cfg.workers;
    memcpy(next->control_socket, srv.cfg.control_socket,
           sizeof(next->control_socket));
}

static void
srv_reload(void)
{
    static struct cfg next; /* large; the server is a singleton */
    struct bset_pols pols;
    struct peer_table peers;
    struct bset_change ch;
    char err[CFG_ERR_MAX];
    struct adm *a = &srv.pool.adm;
    int rebuilt;

    ntf_reloading();
    srv.reload_time = (int64_t)time(NULL);
    if (cfg_load(&next, srv.opts.conf_path, err, sizeof(err)) < 0) {
        srv_reload_failed(err);
        return;
    }
    /* Allocated now, put in place only once nothing else can fail. */
    if (bset_pols_make(&pols, &next) < 0) {
        cfg_fini(&next);
        srv_reload_failed("out of memory for the access lists");
        return;
    }
    adm_lock(a);
    rebuilt = peer_rebuild(&a->peers, &peers, srv_peer_slots(&next),
                           (unsigned)next.source_prefix_ipv4,
                           (unsigned)next.source_prefix_ipv6);
    adm_unlock(a);
    if (rebuilt < 0) {
        snprintf(err, sizeof(err), "per-source table for %zu sources: %s",
                 srv_peer_slots(&next), strerror(errno));
        bset_pols_drop(&pols);
        cfg_fini(&next);
        srv_reload_failed(err);
        return;
    }
    if (srv_reload_sockets(&next, &pols, &ch) < 0) {
        if (rebuilt > 0) {
            peer_fini(&peers);
        }
        bset_pols_drop(&pols);
        cfg_fini(&next);
        return;
    }
    if (rebuilt > 0) {
        /* New prefixes or more slots: each worker counts its open
         * connections again before it next uses the table. */
        adm_lock(a);
        peer_replace(&a->peers, &peers);
        a->gen++;
        adm_unlock(a);
    }
    srv_reload_kept(&next);
    if (strcmp(next.syslog_ident, srv.cfg.syslog_ident) != 0 ||
        next.syslog_facility != srv.cfg.syslog_facility) {
        log_open(next.syslog_ident, (int)next.syslog_facility,
                 srv_log_level(&next, &srv.opts),
                 srv.opts.foreground || isatty(STDERR_FILENO));
    } else {
        log_set_level(srv_log_level(&next, &srv.opts));
    }
    srv.reload_failed = false;
    srv.reload_error[0] = '\0';
    srv.reloads_ok++;
    srv.config_time = (int64_t)time(NULL);
    /* The lists of the old snapshot go with it; the policies the workers
     * hold keep references of their own to what they still use. */
    cfg_fini(&srv.cfg);
    srv.cfg = next;
    bset_apply_pols(&srv.socks, &srv.cfg, &pols);
    bset_pols_drop(&pols);
    srv_hand_over(&ch);
    srv_configure(&srv.cfg);
    /* READY=1 only once every worker runs it: sockets closed (a next
     * reload may bind their ports again), the per-source table whole. */
    if (wrk_pool_sync(&srv.pool, SRV_SYNC_MS) < 0) {
        log_warn("reload: not every worker applied it within %d ms; the "
                 "rest will when they run again",
                 SRV_SYNC_MS);
    }
    log_notice("reloaded configuration from %s", srv.opts.conf_path);
    srv_status_text(srv.status, sizeof(srv.status));
    ntf_ready(srv.status);
}

static void
srv_close_all(void)
{
    for (size_t i = 0; i < srv.pool.n; i++) {
        if (wrk_post_close_all(&srv.pool.w[i]) < 0) {
            log_err("worker %zu: cannot post close-all", i);
        }
    }
}

static void
srv_shutdown_deadline(struct loop_timer *t)
{
    uint64_t open = wrk_pool_open(&srv.pool);

    (void)t;
    if (open > 0) {
        log_notice("shutdown timeout: closing %llu connection(s) with "
                   "output still queued",
                   (unsigned long long)open);
    }
    srv_close_all();
}

static void
srv_shutdown(int sig)
{
    if (srv.stopping) {
        log_notice("%s again: closing all connections now", strsignal(sig));
        srv_close_all();
        return;
    }
    srv.stopping = true;
    srv_status_text(srv.status, sizeof(srv.status));
    /* The drain deadline, plus slack for closing what is left. */
    ntf_stopping(srv.status,
                 ((uint64_t)srv.cfg.shutdown_timeout + SRV_STOP_SLACK_S) *
                     1000000);
    log_notice("%s: shutting down, %llu connection(s) to drain for up to "
               "%llds",
               strsignal(sig), (unsigned long long)wrk_pool_open(&srv.pool),
               (long long)srv.cfg.shutdown_timeout);
    /* Every worker closes its sockets and drains its connections. A
     * drain that cannot be posted is covered by the deadline. */
    for (size_t i = 0; i < srv.pool.n; i++) {
        if (wrk_post_drain(&srv.pool.w[i]) < 0) {
            log_err("worker %zu: cannot post the drain", i);
        }
    }
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

/* A worker drained: srv_run looks at the counters again. */
static void
srv_on_drained(struct loop_io *io, uint32_t events)
{
    uint64_t count;

    (void)events;
    (void)!read(io->fd, &count, sizeof(count));
}

static const struct loop_ops srv_signal_ops = {
    .on_event = srv_on_signal,
    .on_ready = NULL, /* never requeued: signalfd is drained each time */
    .on_free = NULL,
};

static const struct loop_ops srv_drained_ops = {
    .on_event = srv_on_drained,
    .on_ready = NULL,
    .on_free = NULL,
};

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

int
srv_init(const struct cfg *cfg, const struct srv_opts *opts)
{
    uint64_t watchdog_usec = ntf_watchdog_usec();
    uint64_t beat = SRV_BEAT_MS;
    size_t n = wrk_count(cfg->workers);
    int fd;

    srv.cfg = *cfg;
    srv.opts = *opts;
    srv.start_time = (int64_t)time(NULL);
    srv.config_time = srv.start_time; /* main loaded it just now */
    loop_io_init(&srv.sigio, -1, &srv_signal_ops);
    loop_io_init(&srv.drainio, -1, &srv_drained_ops);
    srv.nofile = sock_fit_nofile();
    if (srv.nofile < 0) {
        return srv_fail(SRV_EX_OSERR, errno, "RLIMIT_NOFILE");
    }
    if (loop_init(&srv.loop) < 0) {
        return srv_fail(SRV_EX_OSERR, errno, "creating the event loop");
    }
    srv.loop_ok = true;
    scr_init(&srv.scr, &srv.loop, srv_metrics_answer, "scrapes");
    scr_init(&srv.ctl, &srv.loop, srv_ctl_answer, "control clients");
    srv.ctl_sock.fd = -1;
    fd = sig_init();
    if (fd < 0) {
        return srv_fail(SRV_EX_OSERR, errno, "setting up signals");
    }
    srv.sigio.fd = fd;
    if (loop_add(&srv.loop, &srv.sigio, EPOLLIN) < 0) {
        return srv_fail(SRV_EX_OSERR, errno, "registering the signalfd");
    }
    if (watchdog_usec > 0) {
        /* Half the interval (at least 1 ms: a tiny WatchdogSec= is still
         * a watchdog, not "off"). The first ping goes out at once. */
        srv.watchdog_ms = watchdog_usec >= 2000 ? watchdog_usec / 2000 : 1;
        beat = srv.watchdog_ms < beat ? srv.watchdog_ms : beat;
    }
    if (wrk_pool_init(&srv.pool, n, beat) < 0) {
        return srv_fail(SRV_EX_OSERR, errno, "setting up the workers");
    }
    srv.pool_ok = true;
    srv.drainio.fd = srv.pool.main_fd;
    srv.drainio.shared = true; /* the pool's: loop_close leaves it open */
    if (loop_add(&srv.loop, &srv.drainio, EPOLLIN) < 0) {
        return srv_fail(SRV_EX_OSERR, errno, "registering the eventfd");
    }
    bset_init(&srv.socks, n);
    return 0;
}

static int
srv_adopt(const int *fds, const bool *dgram, size_t n)
{
    srv.activated = true;
    for (size_t i = 0; i < n; i++) {
        struct bset_ent *e = bset_adopt(&srv.socks, fds[i], dgram[i]);

        if (e == NULL) {
            return srv_fail(SRV_EX_OSERR, errno, "adopting a socket");
        }
        log_notice("listening on %s (socket-activated)", e->name);
    }
    log_notice("adopted %zu socket(s) from the service manager; the "
               "listen key is ignored",
               n);
    return 0;
}

int
srv_open_sockets(void)
{
    int fds[CFG_MAX_LISTEN];
    bool dgram[CFG_MAX_LISTEN];
    size_t n = ntf_listen_fds(fds, dgram, CFG_MAX_LISTEN);
    struct bset_change ch;
    struct bset_pols pols;
    struct adm *a = &srv.pool.adm;
    char fail[128];
    int rc;

    if (bset_pols_make(&pols, &srv.cfg) < 0) {
        return srv_fail(SRV_EX_OSERR, errno, "making the access lists");
    }
    if (n > 0) {
        rc = srv_adopt(fds, dgram, n);
    } else if (bset_sync(&srv.socks, &srv.cfg, &pols, true, &ch, fail,
                         sizeof(fail)) < 0) {
        rc = srv_fail(SRV_EX_OSERR, errno, fail);
    } else {
        rc = 0;
    }
    bset_apply_pols(&srv.socks, &srv.cfg, &pols);
    bset_pols_drop(&pols);
    if (rc != 0) {
        return rc;
    }
    if (bset_count(&srv.socks) == 0) {
        return srv_fail(SRV_EX_CONFIG, EINVAL, "no listening sockets");
    }
    adm_lock(a);
    rc = peer_configure(&a->peers, srv_peer_slots(&srv.cfg),
                        (unsigned)srv.cfg.source_prefix_ipv4,
                        (unsigned)srv.cfg.source_prefix_ipv6);
    adm_unlock(a);
    if (rc < 0) {
        return srv_fail(SRV_EX_OSERR, errno,
                        "allocating the per-source "
                        "table");
    }
    return srv_ctl_open();
}

int
srv_drop_privileges(void)
{
    const struct cfg *c = &srv.cfg;
    char why[64];

    if (c->user[0] == '\0') {
        /* systemd starts services with INVOCATION_ID, and the unit says
         * who echod runs as: only a hand-started root echod is told. */
        if (priv_is_root() && getenv("INVOCATION_ID") == NULL) {
            log_warnx("running as root: set `user` (and `group`) in %s to "
                      "give root up once the sockets are bound",
                      srv.opts.conf_path);
        }
        return 0;
    }
    if (!priv_is_root()) {
        log_info("not started as root: user %s not applied, running as "
                 "uid %u",
                 c->user, (unsigned)getuid());
        return 0;
    }
    if (priv_drop(c->user, c->group, &srv.dropped, why, sizeof(why)) < 0) {
        char what[128];

        snprintf(what, sizeof(what), "dropping root to user %s: %s", c->user,
                 why);
        return srv_fail(SRV_EX_OSERR, errno, what);
    }
    log_notice("gave up root: running as user %s, group %s, no "
               "capabilities",
               c->user, c->group[0] != '\0' ? c->group : "(the user's own)");
    return 0;
}

int
srv_start_workers(void)
{
    size_t n_tcp = 0;

    /* Queued before the threads run: each starts with its sockets. */
    for (struct list *p = srv.socks.all.next; p != &srv.socks.all;
         p = p->next) {
        struct bset_ent *e = list_entry(p, struct bset_ent, node);

        n_tcp += e->type == BSET_TCP && !e->metrics;
        if (e->metrics) {
            if (srv_scr_add(e) < 0) {
                return srv_fail(SRV_EX_OSERR, errno, "serving metrics");
            }
            continue;
        }
        for (size_t i = 0; i < srv.pool.n; i++) {
            if (wrk_post_add(&srv.pool.w[i], e, bset_hand_over(e, i)) < 0) {
                return srv_fail(SRV_EX_OSERR, ENOMEM,
                                "handing over "
                                "sockets");
            }
        }
    }
    if (srv.ctl_sock.fd >= 0) {
        int fd = srv.ctl_sock.fd;

        srv.ctl_sock.fd = -1; /* the server's from now on */
        if (scr_add(&srv.ctl, 0, fd, srv.ctl_sock.path, NULL) < 0) {
            return srv_fail(SRV_EX_OSERR, errno, "serving the control socket");
        }
    }
    srv_configure(&srv.cfg);
    if (wrk_pool_start(&srv.pool) < 0) {
        return srv_fail(SRV_EX_OSERR, errno, "starting the workers");
    }
    loop_timer_init(&srv.status_timer, srv_status_tick);
    loop_timer_init(&srv.watchdog_timer, srv_watchdog_tick);
    loop_timer_init(&srv.shutdown_timer, srv_shutdown_deadline);
    loop_timer_arm(&srv.loop, &srv.status_timer, srv.loop.now + SRV_STATUS_MS);
    if (srv.watchdog_ms > 0) {
        log_info("watchdog enabled: pinging every %llu ms while all %zu "
                 "worker(s) are alive",
                 (unsigned long long)srv.watchdog_ms, srv.pool.n);
        loop_timer_arm(&srv.loop, &srv.watchdog_timer, srv.loop.now);
    }
    /* READY=1 once every worker serves its sockets, as after a reload:
     * a worker not yet scheduled would otherwise join a shared socket's
     * queue late, behind workers that already took turns. */
    if (wrk_pool_sync(&srv.pool, SRV_SYNC_MS) < 0) {
        log_warn("not every worker started within %d ms; the rest will "
                 "serve when they run",
                 SRV_SYNC_MS);
    }
    srv_status_text(srv.status, sizeof(srv.status));
    log_notice("echod %s ready: %zu listener(s), max_connections %zu, "
               "max_connections_per_source %lld%s, %zu worker(s)",
               ECHOD_VERSION, n_tcp, srv.max_conns,
               (long long)srv.cfg.max_connections_per_source,
               bset_count(&srv.socks) > n_tcp ? ", udp" : "", srv.pool.n);
    ntf_ready(srv.status);
    return 0;
}

int
srv_run(void)
{
    struct st_sum s;

    while (!(srv.stopping && wrk_pool_drained(&srv.pool))) {
        loop_run_once(&srv.loop, -1);
    }
    memset(&s, 0, sizeof(s));
    wrk_pool_sum(&srv.pool, &s);
    log_notice("exiting: %llu connection(s) served, %llu bytes echoed; "
               "udp: %llu datagram(s) received, %llu echoed (%llu bytes), "
               "%llu dropped, %llu discarded",
               (unsigned long long)s.opened, (unsigned long long)s.bytes_out,
               (unsigned long long)s.udp_rx, (unsigned long long)s.udp_echoed,
               (unsigned long long)s.udp_bytes,
               (unsigned long long)st_udp_dropped(&s),
               (unsigned long long)s.udp_discarded);
    return SRV_EX_OK;
}

void
srv_stop_workers(void)
{
    if (srv.pool_ok) {
        wrk_pool_stop(&srv.pool);
    }
}

void
srv_close_sockets(void)
{
    if (srv.pool_ok) {
        bset_fini(&srv.socks);
    }
    if (srv.ctl_sock.fd >= 0) {
        close(srv.ctl_sock.fd); /* never handed over */
        srv.ctl_sock.fd = -1;
    }
    ctl_sock_unlink(&srv.ctl_sock);
}

void
srv_fini(void)
{
    if (srv.pool_ok) {
        loop_close(&srv.loop, &srv.drainio);
        srv.drainio.fd = -1;
        wrk_pool_fini(&srv.pool);
        srv.pool_ok = false;
    }
    if (srv.loop_ok) {
        scr_fini(&srv.scr);
        scr_fini(&srv.ctl);
        loop_close(&srv.loop, &srv.sigio);
        loop_fini(&srv.loop);
        srv.loop_ok = false;
    }
    cfg_fini(&srv.cfg);
}
