/*
 * conn.h - one TCP connection's state machine: drain reads, write-through,
 * output queue with backpressure, half-close, idle LRU, one close function.
 */
#ifndef ECHOD_CONN_H
#define ECHOD_CONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "list.h"
#include "log.h"
#include "loop.h"
#include "outq.h"
#include "peers.h"
#include "stats.h"

/* Bytes one turn of a connection may read before yielding (ready list). */
#define CONN_READ_BUDGET ((size_t)64 * 1024)

enum conn_reason {
    CONN_EOF,
    CONN_RESET,
    CONN_ERROR,
    CONN_IDLE,
    CONN_NOMEM,
    CONN_SHUTDOWN,
    CONN_SHUTDOWN_TIMEOUT,
    CONN_PROXY,      /* PROXY header bad, late or missing */
    CONN_ACL,        /* the client a PROXY header declared is refused */
    CONN_PER_SOURCE, /* ... or over max_connections_per_source */
    CONN_REASON_MAX,
};

/* Connections are carved from slabs of this many bytes (one worker's
 * pool): an idle connection costs sizeof(struct conn), no allocator
 * header and no rounding. */
#define CONN_SLAB ((size_t)64 * 1024)

struct adm;
struct bset_pol;

/* Everything the connections of one loop (one worker) share. */
struct conn_set {
    struct loop *loop;
    struct list lru;              /* open conns, least recently active first */
    struct list pending;          /* awaiting a PROXY header, by deadline */
    struct loop_timer pend_timer; /* fires at the pending head's deadline */
    struct loop_timer idle_timer; /* fires at the LRU head's deadline */
    size_t high;                  /* output_high_watermark */
    size_t low;                   /* output_low_watermark */
    uint64_t idle_ms;             /* 0 = no idle timeout */
    bool draining;                /* graceful shutdown: every conn drains */
    unsigned worker;              /* names the worker in debug lines */
    /* Shared admission (the per-source table and the process-wide open
     * count), set by the owner after conn_set_init; NULL: no accounting
     * (unit tests). */
    struct adm *adm;
    unsigned peer_gen;       /* adm->gen this set's handles are of */
    struct conn *free;       /* recycled conns (slab mode) */
    void *slabs;             /* slab list, freed by conn_set_fini */
    char *carve, *carve_end; /* the newest slab's unused part */
    struct log_limit nomem_log;
    struct log_limit error_log;
    struct log_limit proxy_log;
    /* Written by this worker only, read by anyone (counter.h). */
    _Atomic uint64_t n_open;
    _Atomic uint64_t n_opened;
    _Atomic uint64_t n_closed[CONN_REASON_MAX];
    _Atomic uint64_t bytes_in;
    _Atomic uint64_t bytes_out;
    /* Per listen entry and the echo delay histogram (stats.h); each
     * conn holds its slot. */
    struct sts_tab tab;
};

/*
 * One connection. Kept small, since an idle one costs exactly this much
 * (112 bytes): the peer's address is not stored (only with debug
 * logging on, behind the struct, for the close line), times are 32-bit,
 * flags are bits.
 */
struct conn {
    struct loop_io io; /* first: the loop hands us back this pointer */
    struct conn_set *set;
    struct outq out;
    struct list lru;   /* on set->lru; on set->free once freed */
    uint64_t rx;       /* bytes read from the peer */
    uint64_t tx;       /* bytes written back */
    uint32_t active;   /* loop->now (ms, wrapping) of the last progress */
    uint32_t created;  /* loop->now / 10 (centiseconds, wrapping) */
    uint32_t source;   /* handle into set->adm's table; PEER_NONE if none */
    bool readable : 1; /* an edge said so and no EAGAIN/short read since */
    bool writable : 1;
    bool rdhup : 1;     /* peer shut down its side: read until 0 */
    bool eof : 1;       /* read returned 0: nothing more will come */
    bool rd_paused : 1; /* backpressure: output at or over the high mark */
    bool wr_shut : 1;   /* shutdown(SHUT_WR) done (draining) */
    bool ext : 1;       /* a struct conn_ext follows (see conn.c) */
    bool pending : 1;   /* waiting for a PROXY header: nothing echoed */
    bool discard : 1;   /* service = "discard": read and count, never write */
    uint8_t slot;       /* its listener's counters: set->tab.slot[slot] */
};

const char *conn_reason_name(enum conn_reason why);

void conn_set_init(struct conn_set *set, struct loop *loop);
/* After every connection is closed: frees the slabs. */
void conn_set_fini(struct conn_set *set);

/* Apply (new) limits. Paused connections now at or under the low watermark
 * resume; the idle timer is re-armed for the new timeout. */
void conn_set_configure(struct conn_set *set, size_t high, size_t low,
                        uint64_t idle_ms);

/*
 * Take ownership of an accepted, nonblocking socket and register it
 * (counted in set->tab's slot `slot`, which it holds until closed), and
 * of `source`, the handle of its source in set->adm's table (or
 * PEER_NONE), which conn_close releases. pol is its listener's policy
 * (NULL: none, an echo connection; unit tests). With pol->proxy nothing
 * is read as data until a PROXY header has come within
 * pol->proxy_timeout_ms; then the client it declares must pass pol's
 * allow and deny and its source's limit (closes with reason CONN_PROXY,
 * CONN_ACL, CONN_PER_SOURCE). With pol->discard every byte read is
 * counted and thrown away: nothing is ever written or queued, and the
 * peer's EOF closes it (CONN_EOF). pol itself is not kept (a pending
 * connection takes a reference until its header is done). Returns the
 * connection, or NULL with errno (the caller still owns fd and source).
 */
struct conn *conn_new(struct conn_set *set, int fd, uint32_t source,
                      struct bset_pol *pol, uint8_t slot);

/* The only way a connection ends: unlinks it everywhere, counts it,
 * releases its source and its place under max_connections, closes the
 * fd, logs one debug line with byte counts; freed after the batch. */
void conn_close(struct conn *c, enum conn_reason why);

/* The client's address: the one its PROXY header declared (returns 1),
 * else the socket's peer (0); -1 with errno if it has none (reset). */
int conn_peer(struct conn *c, struct sockaddr_storage *ss);

/* Graceful shutdown: every connection stops echoing new input, flushes
 * what is queued, sends FIN and closes on the peer's EOF. */
void conn_set_drain(struct conn_set *set);

/* With set->adm's lock held: if the table was rebuilt (a reload changed
 * its size or prefixes), count every open connection of this set in it
 * again, whatever the limit, and keep the new handles. */
void conn_set_sync_peers(struct conn_set *set);

/* Close every connection now with the given reason. */
void conn_set_close_all(struct conn_set *set, enum conn_reason why);

#endif /* ECHOD_CONN_H */
