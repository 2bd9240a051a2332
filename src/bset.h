/*
 * bset.h - the bound-socket set: every socket echod serves, whatever it
 * carries, in two halves.
 *
 * The main thread's half (struct bset) has one entry per `listen` entry
 * or inherited socket. It binds one SO_REUSEPORT socket per worker for
 * each entry (so the kernel spreads flows over the workers), adopts
 * inherited sockets (one fd, shared by every worker), and reconciles the
 * set with a new configuration all or nothing.
 *
 * Each worker's half (struct bset_local) holds that worker's sockets as
 * loop owners (struct bset_sock): registration, readiness flags, the
 * ready-list requeue and the close are the same for every kind; a kind
 * (struct bset_kind: TCP in listener.c, UDP in udp.c) only says what a
 * turn does. A service that only changes what becomes of the bytes read
 * (discard) is a flag of the entry's policy, not a kind: it shares the
 * whole turn.
 */
#ifndef ECHOD_BSET_H
#define ECHOD_BSET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "list.h"
#include "loop.h"
#include "refl.h"
#include "sock.h"
#include "stats.h"

enum bset_type {
    BSET_TCP, /* a listening TCP socket */
    BSET_UDP, /* a bound UDP socket */
};

/*
 * Who an entry lets in and how it serves them, from the configuration:
 * immutable once made, and shared by reference (the main thread's entry,
 * each worker's socket, and a connection still waiting for its PROXY
 * header each hold one), so that a reload can swap it under running
 * workers and the old one goes when its last holder lets go, in
 * whichever thread that is. `discard` never changes for an entry: the
 * service is part of its identity (cfg_listen_equal), so a reload that
 * changes it makes a new entry.
 */
struct bset_pol {
    _Atomic unsigned refs;
    struct acl *allow;      /* clients served (NULL: everyone) */
    struct acl *deny;       /* clients refused first (NULL: no one) */
    bool proxy;             /* a PROXY protocol header comes first */
    bool discard;           /* service = "discard": read, count, no reply */
    struct acl *proxy_from; /* who may send it (with proxy) */
    uint32_t proxy_timeout_ms;
    /* UDP: the entry's own reply buckets (a reference), or NULL for the
     * shared ones. A reload's new policy takes over the old one's, so
     * buckets survive a reload that keeps the entry. */
    struct udp_limit *lim;
    /* service = "stamp" (see refl.h) */
    bool stamp;
    struct refl_opts stamp_opts;
    bool stamp_low_ports;
    uint32_t stamp_busy_poll_us; /* loop_busy_poll after replies; 0: off */
    size_t stamp_key_len;        /* 0: unauthenticated */
    uint8_t stamp_key[CFG_KEY_MAX];
};

/* The policy of listen entry cl of c (NULL: an inherited socket, which
 * takes c's top-level lists). Takes its own references to the lists.
 * Returns it with one reference, or NULL with errno ENOMEM. */
struct bset_pol *bset_pol_new(const struct cfg *c, const struct cfg_listen *cl);
struct bset_pol *bset_pol_ref(struct bset_pol *p);
/* Drop one reference (NULL is ignored); the last frees it. */
void bset_pol_unref(struct bset_pol *p);

/* The policies of one configuration, made before anything changes:
 * p[i] for c->listen[i], p[c->n_listen] for inherited sockets. */
struct bset_pols {
    struct bset_pol *p[CFG_MAX_LISTEN + 1];
    size_t n;
};

/* Returns 0, or -1 with errno ENOMEM and nothing held. */
int bset_pols_make(struct bset_pols *ps, const struct cfg *c);
/* Drop the references bset_pols_make took. */
void bset_pols_drop(struct bset_pols *ps);

/* ---- the main thread's half ---- */

struct udp_limit;

struct bset_ent {
    struct list node; /* on bset->all, in config order */
    uint32_t id;      /* names the entry to the workers; never reused */
    enum bset_type type;
    bool adopted;           /* inherited: fd[0], shared by all, closed here */
    bool metrics;           /* service = "metrics": fd[0], the main thread's */
    struct cfg_listen conf; /* what it was bound from (if not adopted) */
    struct bset_pol *pol;   /* its reference; bset_sync renews it */
    char name[SOCK_NAME_MAX];
    /* One per worker until bset_hand_over (then -1: the worker owns it);
     * adopted: fd[0] only, kept until bset_fini. */
    int fd[];
};

struct bset {
    struct list all;  /* struct bset_ent */
    size_t n_workers; /* fds bound per entry */
    uint32_t next_id;
};

/* What a bset_sync changed, for the workers to apply. */
struct bset_change {
    struct bset_ent *added[CFG_MAX_LISTEN];
    size_t n_added;
    uint32_t removed[CFG_MAX_LISTEN];
    size_t n_removed;
};

void bset_init(struct bset *s, size_t n_workers);
/* Closes every fd still held here (adopted ones, unhanded ones) and
 * frees the entries. */
void bset_fini(struct bset *s);

size_t bset_count(const struct bset *s);

/* Adopt an inherited socket (already checked to be an inet socket):
 * nonblocking, close-on-exec, packet info for UDP. Returns the entry (in
 * the set, not yet handed over), or NULL with errno. */
struct bset_ent *bset_adopt(struct bset *s, int fd, bool dgram);

/*
 * Make the set match c->listen, all or nothing, and give every entry
 * its policy from c (inherited entries take the top-level lists). Every entry
 * not present with exactly these options is bound first, one SO_REUSEPORT
 * socket per worker, beside the running ones; if one fails, everything just
 * bound is closed, `fail` names it ("cannot listen on ADDRESS port N"), and -1
 * is returned with errno, nothing changed. Otherwise the entries c no longer
 * lists (adopted ones excepted) are removed, and *ch says what to tell the
 * workers. At startup (at_start) an address family the host lacks is
 * skipped with a warning. A port something else holds is an error
 * (EADDRINUSE), although echod's own sockets share theirs.
 */
int bset_sync(struct bset *s, const struct cfg *c, const struct bset_pols *ps,
              bool at_start, struct bset_change *ch, char *fail,
              size_t faillen);

/* Give every entry its policy from ps (made from c): a bound entry the
 * one of its listen entry in c, an inherited one the top-level one. */
void bset_apply_pols(struct bset *s, const struct cfg *c,
                     const struct bset_pols *ps);

/* Worker w now owns ent's fd for it (or shares the adopted one): the fd
 * to give it; the set forgets bound fds once handed over. A metrics
 * entry has one fd (w = 0), for the main thread. */
int bset_hand_over(struct bset_ent *ent, size_t w);

/* ---- each worker's half ---- */

struct bset_sock;

/* What one kind of socket does; the rest is shared. */
struct bset_kind {
    uint32_t events; /* epoll mask beside EPOLLET */
    /* A turn: serve what is readable within a budget, and requeue with
     * loop_ready while the readiness flag stays set. */
    void (*run)(struct bset_sock *b);
    /* Before closing: take what the socket's queue holds (a closed
     * SO_REUSEPORT listener resets its pending connections). NULL: none. */
    void (*drain)(struct bset_sock *b);
};

struct bset_sock {
    struct loop_io io; /* first; io.shared: an adopted fd, not ours */
    struct list node;  /* on local->all */
    struct bset_local *local;
    const struct bset_kind *kind;
    void *ctx;            /* the kind's per-worker state */
    struct bset_pol *pol; /* its reference: who may connect */
    uint32_t id;          /* the bset_ent it belongs to */
    uint16_t port;        /* local port */
    uint8_t slot;         /* its counters: local->tab->slot[slot] */
    uint32_t tx_stamps;   /* STAMP: transmit stamps asked for (OPT_ID) */
    uint8_t tx_epoch;     /* STAMP: resyncs of that count (refl.h) */
    bool readable;        /* an edge said so and no EAGAIN since */
    bool writable;
    char name[SOCK_NAME_MAX];
};

struct bset_local {
    struct loop *loop;
    struct list all;     /* struct bset_sock */
    struct sts_tab *tab; /* the worker's counter slots (NULL: none) */
};

void bset_local_init(struct bset_local *l, struct loop *loop);
/* Closes every socket (draining listeners first). */
void bset_local_fini(struct bset_local *l);

/* Register fd (owned from now on, unless shared) as entry `id` of
 * `kind`, with policy pol (its reference passes to the socket).
 * EPOLLEXCLUSIVE is added for a shared fd: every worker waits on it, and
 * one at a time is woken. Returns the socket, or NULL with errno (the
 * caller still owns fd and pol). */
struct bset_sock *bset_sock_add(struct bset_local *l, uint32_t id, int fd,
                                bool shared, const struct bset_kind *kind,
                                void *ctx, const char *name,
                                struct bset_pol *pol);

/* A reload's new policy for entry id (the reference passes on; dropped
 * if this worker has no such socket). */
void bset_local_repolicy(struct bset_local *l, uint32_t id,
                         struct bset_pol *pol);

/* Drain (kind->drain) and close; a shared fd is only deregistered. */
void bset_sock_close(struct bset_sock *b);

struct bset_sock *bset_sock_find(struct bset_local *l, uint32_t id);

#endif /* ECHOD_BSET_H */
