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
#include "loop.h"
#include "outq.h"
#include "peers.h"

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
};

/* Everything the connections of one loop share. Owned by the server. */
struct conn_set {
    struct loop *loop;
    struct list lru;              /* open conns, least recently active first */
    struct loop_timer idle_timer; /* fires at the LRU head's deadline */
    size_t high;                  /* output_high_watermark */
    size_t low;                   /* output_low_watermark */
    uint64_t idle_ms;             /* 0 = no idle timeout */
    bool draining;                /* graceful shutdown in progress */
    /* Where each connection's source is counted (set by the owner after
     * conn_set_init), or NULL: no per-source accounting. */
    struct peer_table *peers;
    size_t n_open;
    uint64_t n_opened;
    uint64_t n_closed[CONN_SHUTDOWN_TIMEOUT + 1];
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t next_id;
};

struct conn {
    struct loop_io io; /* first: the loop hands us back this pointer */
    struct conn_set *set;
    struct outq out;
    struct list lru;
    uint64_t id;
    uint64_t rx; /* bytes read from the peer */
    uint64_t tx; /* bytes written back */
    uint64_t created;
    uint64_t active; /* loop->now of the last progress */
    struct sockaddr_storage peer;
    uint32_t source; /* handle into set->peers; PEER_NONE if not counted */
    bool readable;  /* an edge said so and no EAGAIN/short read since */
    bool writable;
    bool rdhup;     /* peer shut down its side: read until 0 */
    bool eof;       /* read returned 0: nothing more will come */
    bool rd_paused; /* backpressure: output at or over the high watermark */
    bool draining;  /* graceful shutdown: flush, SHUT_WR, wait for EOF */
    bool wr_shut;   /* shutdown(SHUT_WR) done */
};

const char *conn_reason_name(enum conn_reason why);

void conn_set_init(struct conn_set *set, struct loop *loop);

/* Apply (new) limits. Paused connections now at or under the low watermark
 * resume; the idle timer is re-armed for the new timeout. */
void conn_set_configure(struct conn_set *set, size_t high, size_t low,
                        uint64_t idle_ms);

/*
 * Take ownership of an accepted, nonblocking socket and register it, and
 * of `source`, the peer_acquire handle of its source in set->peers (or
 * PEER_NONE), which conn_close releases. Returns the connection, or NULL
 * with errno (the caller still owns fd and source).
 */
struct conn *conn_new(struct conn_set *set, int fd,
                      const struct sockaddr *peer, socklen_t peer_len,
                      uint32_t source);

/* The only way a connection ends: unlinks it everywhere, counts it,
 * releases its source, closes the fd, logs one debug line with byte
 * counts; freed after the batch. */
void conn_close(struct conn *c, enum conn_reason why);

/* Graceful shutdown: every connection stops echoing new input, flushes
 * what is queued, sends FIN and closes on the peer's EOF. */
void conn_set_drain(struct conn_set *set);

/* After set->peers was rebuilt empty (peer_replace): count every open
 * connection's source in it again, whatever the limit, and keep the new
 * handles. */
void conn_set_recount(struct conn_set *set);

/* Close every connection now with the given reason. */
void conn_set_close_all(struct conn_set *set, enum conn_reason why);

#endif /* ECHOD_CONN_H */
