/*
 * refl.h - the STAMP session-reflector on a worker (`service = "stamp"`):
 * what a stamp socket does with a datagram that passed the UDP guards
 * and limits (udp.c): read the kernel's receive timestamp, TTL and TOS
 * from its control data, build the reply in place (stamp.h), keep the
 * session state of stateful mode (stsess.h), stamp T3 right before the
 * reply's own sendmsg, and later match the kernel's transmit timestamp
 * to the session for the Follow-Up Telemetry TLV.
 *
 * One struct refl per worker (udp_set.refl), made with the worker's
 * first stamp datagram; only that worker touches it but for the
 * counters (counter.h), which any thread may read.
 */
#ifndef ECHOD_REFL_H
#define ECHOD_REFL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "stamp.h"
#include "stats.h"
#include "stsess.h"

#define REFL_CLOCK_MS 1000     /* how often the clock's state is read */
#define REFL_SESSION_IDLE_MS 60000 /* a stateful session forgotten after */

/* What the kernel said about one received datagram. */
struct refl_rx {
    struct timespec t2; /* software receive timestamp (CLOCK_REALTIME) */
    bool have_t2;
    bool have_ttl;
    uint8_t ttl; /* IPv4 TTL or IPv6 Hop Limit */
    uint8_t tos; /* TOS or Traffic Class */
};

struct refl {
    struct stamp_clock clock;
    uint64_t clock_at; /* loop ms of the last read; 0: never */
    bool clock_warned; /* adjtimex failed, and the log said so */
    bool tai_warned;   /* PTP without the kernel's TAI offset: said */
    struct stss sess;  /* stateful sessions (allocated with the first) */
    bool sess_ok;
    /* T3 - T2 of every reply sent, decades of seconds as the echo delay
     * histogram (stats.h), not cumulative; written by the worker only. */
    _Atomic uint64_t hist[STS_HIST_BUCKETS];
    _Atomic uint64_t hist_inf;
    _Atomic uint64_t hist_sum_ns;
    _Atomic uint64_t no_t2; /* replies whose T2 had to be read late */
};

/* Socket options a stamp socket needs: kernel receive (and, stateful,
 * transmit) timestamps, the received TTL/Hop Limit and TOS/Traffic Class.
 * family: the socket's. Returns 0, or -1 with errno. */
int refl_sock_setup(int fd, int family);

/* Frees the session table, if one was made (a zeroed struct refl is a
 * valid empty one). */
void refl_fini(struct refl *r);

/* Any thread: add r's residence histogram into hist[0..STS_HIST_BUCKETS]
 * (the last is +Inf only; not cumulative) and *sum_ns. */
void refl_sum_hist(const struct refl *r, uint64_t *hist, uint64_t *sum_ns);

/* Parse m's control data into *rx. */
void refl_rx_parse(struct msghdr *m, struct refl_rx *rx);

/* What a stamp entry says of its replies (its policy holds one). */
struct refl_opts {
    bool stateful;       /* numbered per session; DM and Follow-Up */
    bool ptp;            /* PTPv2 timestamps in TAI, else NTP */
    uint64_t cos_permit; /* bit d: a Class of Service TLV may ask for
                            DSCP d for its reply (0: never) */
};

/* What refl_build decided for a reply. */
struct refl_reply {
    size_t len;             /* reply bytes */
    struct stss_sess *sess; /* stateful: its session, for refl_sent */
    struct timespec t2;     /* T2, CLOCK_REALTIME (the residence's start) */
    int32_t tai;            /* seconds the reply's times add: TAI - UTC
                               for PTP timestamps, else 0 */
    uint32_t seq;           /* the reply's own sequence number */
    bool cos;               /* send with tos: a Class of Service TLV chose it */
    uint8_t tos;
};

/*
 * Build the reply to data[0..len) in place (data holds cap bytes, at
 * least STAMP_UNAUTH_LEN), for a stamp socket whose entry says o, key
 * and key_len. local and peer: where the request went and came from.
 * now_ms: the loop's clock. Returns STAMP_OK and fills *rep, or why not
 * (counted by the caller). A stateful request the session table has no
 * place for is answered as a stateless one (stsess.h says why).
 */
enum stamp_drop refl_build(struct refl *r, const struct refl_opts *o,
                           const void *key, size_t key_len, uint8_t *data,
                           size_t len, size_t cap, const struct refl_rx *rx,
                           const struct sockaddr *local,
                           const struct sockaddr *peer, uint64_t now_ms,
                           struct refl_reply *rep);

/* T3, as late as possible: write it (and the HMAC over it) into the
 * reply, tai seconds on (refl_reply.tai); returns T3 (CLOCK_REALTIME)
 * for refl_sent. */
struct timespec refl_stamp_t3(uint8_t *data, size_t len, int32_t tai,
                              const void *key, size_t key_len);

/* The reply went out (sendmmsg took it) with T3 t3: count its residence
 * time T3 - T2, and in stateful mode the transmit stamp id it will be
 * reported under (the session counted the reply when it was built). */
void refl_sent(struct refl *r, const struct refl_reply *rep,
               const struct timespec *t3, uint32_t tx_id);

/* Read the transmit timestamps waiting in fd's error queue (a stateful
 * stamp socket; slot and epoch name the socket and its count in the top
 * bits of its ids) into the sessions. Bounded: at most budget messages. */
void refl_errqueue(struct refl *r, int fd, uint8_t slot, uint8_t epoch,
                   unsigned budget);

/* A send that asked for a transmit stamp failed: the kernel may or may
 * not have used an id for it, so the worker's count could be off by one
 * from then on. Read what is queued (the old epoch), then turn the
 * socket's OPT_ID off and on, which restarts the kernel's count at 0;
 * the caller counts from 0 in the next epoch. */
void refl_tx_resync(struct refl *r, int fd, uint8_t slot, uint8_t epoch);

/* Control data asking for this one reply's software transmit stamp
 * (stateful); its length, 0 if cap is too small. */
size_t refl_tx_ctl(void *buf, size_t cap);

/* The id a transmit stamp of counter value n on socket slot, in its
 * epoch, is filed under: slot (8 bits), epoch (4), n (20). */
uint32_t refl_tx_id(uint8_t slot, uint8_t epoch, uint32_t n);

#endif /* ECHOD_REFL_H */
