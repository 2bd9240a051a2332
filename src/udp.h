/*
 * udp.h - RFC 862 over UDP: every datagram received is sent back to its
 * source, whole, unless a guard against reflection and loops drops it.
 */
#ifndef ECHOD_UDP_H
#define ECHOD_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "list.h"
#include "loop.h"
#include "sock.h"
#include "srcrate.h"
#include "tbucket.h"

#define UDP_BATCH 16       /* datagrams per recvmmsg and per sendmmsg */
#define UDP_TURN_BUDGET 64 /* datagrams per socket turn, then requeue */
/* Receive buffer per datagram: the largest UDP payload (65507 bytes over
 * IPv4, 65527 over IPv6 without jumbograms) fits, so nothing is cut. */
#define UDP_DGRAM_MAX ((size_t)65536)

/* Why a datagram got no reply. */
enum udp_drop {
    UDP_DROP_TRUNCATED,  /* larger than the receive buffer */
    UDP_DROP_LOOP,       /* source port of a service that answers, or ours */
    UDP_DROP_ADDRESS,    /* source or destination not a unicast address */
    UDP_DROP_PER_SOURCE, /* over udp_per_source_rate */
    UDP_DROP_RATE,       /* over udp_rate_limit */
    UDP_DROP_BLOCKED,    /* the send would block: no queue, so dropped */
    UDP_DROP_ERROR,      /* the send failed */
    UDP_DROP_MAX,
};

/* Receive and send buffers, allocated with the first socket. */
struct udp_batch;

/* Everything the UDP sockets of one loop share. Owned by the server. */
struct udp_set {
    struct loop *loop;
    struct list all;            /* struct udp_sock, in config order */
    size_t dgram_max;           /* bytes received per datagram (tests
                                   lower it to see truncation) */
    struct udp_batch *batch;
    struct srate src;           /* each source's bucket (table allocated
                                   with the first socket) */
    struct tb rate;             /* all replies */
    uint64_t n_rx;              /* datagrams received */
    uint64_t n_echoed;          /* replies sent */
    uint64_t bytes_echoed;
    uint64_t n_drop[UDP_DROP_MAX];
};

struct udp_sock {
    struct loop_io io; /* first */
    struct udp_set *set;
    struct list node;  /* on set->all */
    struct cfg_listen conf; /* what it was bound from (if not adopted) */
    bool adopted;           /* inherited from the service manager */
    bool readable;
    bool writable;
    uint16_t port;          /* local port: a datagram from it is a loop */
    char name[SOCK_NAME_MAX];
};

const char *udp_drop_name(enum udp_drop why);

/* Limits start at one reply per second and sources at /32 and /64;
 * udp_set_configure sets them. */
void udp_set_init(struct udp_set *set, struct loop *loop);
/* Closes every socket and frees the buffers and the source table. */
void udp_set_fini(struct udp_set *set);

/* Apply (new) reply limits in replies per second and bursts, and the
 * prefix lengths that make one source (source_prefix_ipv4/6, as for TCP).
 * Buckets are reset only when a value changed. */
void udp_set_configure(struct udp_set *set, double rate, double burst,
                       double src_rate, double src_burst, unsigned prefix4,
                       unsigned prefix6);

/* Bind one configured UDP socket. Returns it, or NULL with errno; the
 * caller logs. */
struct udp_sock *udp_open(struct udp_set *set, const struct cfg_listen *conf);

/* Adopt an inherited, bound UDP socket. Returns it, or NULL with errno. */
struct udp_sock *udp_adopt(struct udp_set *set, int fd);

void udp_close(struct udp_sock *u);

/* Find a bound (not adopted) socket with this configuration; with
 * exact == false, one on the same address and port whatever its options. */
struct udp_sock *udp_find(struct udp_set *set, const struct cfg_listen *conf,
                          bool exact);

size_t udp_count(const struct udp_set *set);
uint64_t udp_dropped(const struct udp_set *set);

/* True for a source port echod never answers: 0, the privileged ports
 * (1..1023) and a few well-known UDP services above them that answer
 * any datagram. Replying to them could start a loop between two services
 * or aim echod at a service as a reflector. */
bool udp_loop_port(unsigned port);

#endif /* ECHOD_UDP_H */
