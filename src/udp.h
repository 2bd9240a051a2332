/*
 * udp.h - RFC 862 over UDP: every datagram received is sent back to its
 * source, whole, unless a guard against reflection and loops drops it.
 * On a discard socket (RFC 863, the policy's discard) every datagram is
 * counted and none is answered.
 */
#ifndef ECHOD_UDP_H
#define ECHOD_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <pthread.h>
#include <stdatomic.h>

#include "bset.h"
#include "config.h"
#include "log.h"
#include "refl.h"
#include "loop.h"
#include "srcrate.h"
#include "tbucket.h"

#define UDP_BATCH 16       /* datagrams per recvmmsg and per sendmmsg */
#define UDP_TURN_BUDGET 64 /* datagrams per socket turn, then requeue */
/* Receive buffer per datagram: the largest UDP payload (65507 bytes over
 * IPv4, 65527 over IPv6 without jumbograms) fits, so nothing is cut. */
#define UDP_DGRAM_MAX ((size_t)65536)
/* The least burst of a byte bucket, whatever its rate: a bucket smaller
 * than a datagram would never answer it, so every datagram that fits the
 * receive buffer must fit the bucket. */
#define UDP_BYTE_BURST_MIN ((double)UDP_DGRAM_MAX)

/* Why a datagram got no reply. */
enum udp_drop {
    UDP_DROP_TRUNCATED,  /* larger than the receive buffer */
    UDP_DROP_LOOP,       /* source port of a service that answers, or ours */
    UDP_DROP_ADDRESS,    /* source or destination not a unicast address */
    UDP_DROP_ACL,        /* the source is refused by allow/deny */
    UDP_DROP_PER_SOURCE, /* over udp_per_source_rate */
    UDP_DROP_PER_SOURCE_BYTES, /* over udp_per_source_rate_bytes */
    UDP_DROP_RATE,             /* over udp_rate_limit */
    UDP_DROP_RATE_BYTES,       /* over udp_rate_limit_bytes */
    UDP_DROP_BLOCKED,          /* the send would block: no queue, so dropped */
    UDP_DROP_ERROR,            /* the send failed */
    UDP_DROP_STAMP_SHORT,      /* STAMP: too short to answer */
    UDP_DROP_STAMP_AUTH,       /* STAMP: the base packet's HMAC is wrong */
    UDP_DROP_MAX,
};

/* Receive and send buffers, allocated with the first socket. */
struct udp_batch;

/* The reply limits, one for the whole process: udp_rate_limit(_bytes)
 * and udp_per_source_rate(_bytes) are totals over every worker. A worker
 * takes the lock once per received batch (at most UDP_BATCH datagrams),
 * never per byte; the main thread, to configure. */
struct udp_limit {
    _Atomic unsigned refs; /* udp_limit_new's; 0: embedded (init/fini) */
    pthread_mutex_t lock;
    struct srate src; /* each source's buckets (table allocated at init) */
    struct tb rate;   /* all replies */
    struct tb bytes;  /* the bytes of all replies; rate 0 = off */
};

/* A listen entry's own buckets (its policy holds them, bset.h): one
 * reference, limits as udp_limit_init's until configured; NULL with
 * errno. The last udp_limit_unref frees them (NULL is ignored). */
struct udp_limit *udp_limit_new(void);
struct udp_limit *udp_limit_ref(struct udp_limit *lim);
void udp_limit_unref(struct udp_limit *lim);
/* Apply entry cl's own limits (config c gives the source prefixes). */
void udp_limit_configure_entry(struct udp_limit *lim, const struct cfg *c,
                               const struct cfg_listen *cl);

/* Returns 0, or -1 with errno. Limits start at one reply per second and
 * no byte limit, sources at /32 and /64. */
int udp_limit_init(struct udp_limit *lim);
void udp_limit_fini(struct udp_limit *lim);
/* Apply (new) limits under the lock: in total, replies per second, their
 * burst and bytes per second; the same per source; and the prefix
 * lengths that make one source (source_prefix_ipv4/6, as for TCP). A
 * byte rate of 0 turns that limit off; its burst is one second's worth
 * but at least UDP_BYTE_BURST_MIN. Buckets are reset only when a value
 * changed. now_ms: monotonic milliseconds. */
void udp_limit_configure(struct udp_limit *lim, double rate, double burst,
                         double rate_bytes, double src_rate, double src_burst,
                         double src_rate_bytes, unsigned prefix4,
                         unsigned prefix6, uint64_t now_ms);

/* The UDP sockets of one worker share this (bset_sock.ctx). */
struct udp_set {
    struct loop *loop;
    struct bset_local *socks; /* the worker's sockets (loop guard) */
    struct udp_limit *lim;    /* shared */
    size_t dgram_max;         /* bytes received per datagram (tests
                                 lower it to see truncation) */
    struct udp_batch *batch;  /* allocated with the first socket */
    struct refl refl;         /* STAMP (its session table made lazily) */
    double src_rate, rate;    /* as last seen under lim->lock (logs) */
    double src_rate_bytes, rate_bytes;
    /* Written by this worker only, read by anyone (counter.h). */
    _Atomic uint64_t n_rx;     /* datagrams received */
    _Atomic uint64_t n_echoed; /* replies sent */
    _Atomic uint64_t bytes_echoed;
    _Atomic uint64_t n_drop[UDP_DROP_MAX];
    _Atomic uint64_t n_discarded;            /* taken by discard sockets */
    struct log_limit drop_log[UDP_DROP_MAX]; /* a peer can cause each */
    struct log_limit recv_log;
};

const char *udp_drop_name(enum udp_drop why);

/* The kind for bset_sock_add (ctx: the worker's udp_set). */
extern const struct bset_kind udp_kind;

void udp_set_init(struct udp_set *set, struct loop *loop,
                  struct bset_local *socks, struct udp_limit *lim);
/* Frees the buffers (the sockets belong to the bset_local). */
void udp_set_fini(struct udp_set *set);

/* The sum of set->n_drop. */
uint64_t udp_dropped(const struct udp_set *set);

/* True for a source port echod never answers: 0, the privileged ports
 * (1..1023) and a few well-known UDP services above them that answer
 * any datagram. Replying to them could start a loop between two services
 * or aim echod at a service as a reflector. */
bool udp_loop_port(unsigned port);

#endif /* ECHOD_UDP_H */
