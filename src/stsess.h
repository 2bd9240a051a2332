/*
 * stsess.h - the sessions of a STAMP Session-Reflector in stateful mode
 * (RFC 8762 §4.2.1): per session, the reflector's own sequence number
 * (from 0), the Direct Measurement counters (RFC 8972 §4.5) and the send
 * time of the previous reply for the Follow-Up Telemetry TLV (RFC 8972
 * §4.7).
 *
 * A session is (peer address and port, local address and port, SSID);
 * the protocol is always UDP. The local address is part of it because a
 * reflector bound to a wildcard receives on several addresses. An
 * IPv4-mapped IPv6 address is its IPv4 address (srckey.h), so a
 * dual-stack socket and an IPv4 socket see one session.
 *
 * Bounded: a table holds at most `slots` sessions (STSS_SLOTS by
 * default) in sets of STSS_WAYS, allocated once by stss_init and never
 * grown, so spoofed sources cannot exhaust memory. A slot takes
 * STSS_SLOT_BYTES (96) bytes: 4096 slots are 384 KiB per worker, plus
 * the stamp ring (STSS_STAMPS x 8 bytes = 2 KiB). The set of a session
 * comes from SipHash-2-4 under a random secret per table (srckey.h), so
 * an attacker cannot aim sources at one set.
 *
 * Eviction: a new session takes, in its set, an empty slot, else the
 * oldest expired one (idle for idle_ms), else the least recently active
 * session if that has been idle for at least STSS_MIN_IDLE_MS (1 s);
 * if every session of the set was active within that second, the new
 * session is refused (stss_get returns NULL) and counted. Why: a real
 * Session-Sender sends test packets at a steady interval, normally well
 * under a second, so its session stays recent; a flood of spoofed
 * sources sends each one once or a few times from addresses it does not
 * own, so it can only push out sessions that have been quiet for a
 * second (a sender slower than that keeps its state unless its set fills
 * up). Evicting the least recent session regardless would let any flood
 * faster than the table reset every real session's counters; refusing
 * while anything is unexpired would let one short burst lock new
 * sessions out for idle_ms. Under this rule only a sustained flood of
 * about as many new sources per second as the table has slots keeps
 * *new* sessions out, and only while it lasts; running sessions keep
 * their state. (A forged packet with a real session's own addresses,
 * ports and SSID is that session: only authenticated mode can tell.)
 *
 * On NULL the caller answers statelessly (RFC 8762 §4.2.2: the
 * sender's sequence number reflected): the Session-Sender still gets
 * its timestamps, only the reflector's own count is missing until a
 * slot frees up, and then the session starts at 0 as after an expiry.
 * Dropping instead would turn a spoofed flood into packet loss for real
 * senders.
 *
 * Threads: one table per worker, touched only by its thread; no lock.
 * The counters (created, evicted, refused, stale) may be read by any
 * thread with ctr_get (counter.h).
 */
#ifndef ECHOD_STSESS_H
#define ECHOD_STSESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <stdatomic.h>

#include "srckey.h"

#define STSS_SLOTS 4096 /* sessions kept at once, per worker */
#define STSS_WAYS 8     /* a session may live in one of this many slots */
/* A live session idle for less than this is never evicted (see above). */
#define STSS_MIN_IDLE_MS 1000
/* Transmit stamps awaited at once per table: a stamp that arrives after
 * this many later replies were sent is ignored (counted as stale). A
 * power of two. */
#define STSS_STAMPS 256
/* The most bytes one slot takes (see the _Static_assert in stsess.c). */
#define STSS_SLOT_BYTES 96

/* Who a session is: the addresses as srckey keys (whole, IPv4 as
 * ::ffff:a.b.c.d), ports and SSID in host order. */
struct stss_key {
    struct skey peer;
    struct skey local;
    uint16_t peer_port;
    uint16_t local_port;
    uint16_t ssid;
};

/* One session, one slot. The caller may read next_seq, rx, tx and the
 * fu_ fields (stss_followup picks the ones a reply carries); it changes
 * nothing but through stss_* calls, and the rest is the table's. */
struct stss_sess {
    struct timespec fu_sent; /* real send time of reply fu_seq */
    uint64_t last_ms;        /* last activity (stss_get's now_ms) */
    uint32_t next_seq;       /* the sequence number of the next reply */
    uint32_t rx;             /* test packets received, this one included */
    uint32_t tx;             /* replies sent */
    uint32_t fu_seq;         /* the reply whose send time fu_sent holds */
    uint32_t await_seq;      /* the reply whose stamp is awaited ... */
    uint32_t await_id;       /* ... under this tx-stamp id */
    struct stss_key key;
    bool used;
    bool awaiting; /* await_seq/await_id are set */
    bool fu_valid; /* fu_seq/fu_sent are set */
};

struct stss_stamp; /* one awaited tx-stamp: id -> slot */

struct stss {
    struct stss_sess *slot;   /* nslots entries */
    struct stss_stamp *stamp; /* STSS_STAMPS entries, by id % STSS_STAMPS */
    size_t nslots;
    uint64_t idle_ms;      /* a session idle this long is over; the caller
                              may change it between calls */
    struct skey_seed seed; /* keys the hash; random per table */
    /* Written by the owning thread only, read by anyone (counter.h). */
    _Atomic uint64_t created; /* sessions started (also after expiry) */
    _Atomic uint64_t evicted; /* live sessions pushed out (idle >= 1 s) */
    _Atomic uint64_t refused; /* new sessions refused: stss_get NULL */
    _Atomic uint64_t stale;   /* tx stamps nobody awaited any more */
};

/* Allocate an empty table of `slots` sessions (a multiple of STSS_WAYS,
 * at least STSS_WAYS) that expire after idle_ms (> 0) without a packet,
 * with a fresh secret. Returns 0, or -1 with errno (EINVAL, ENOMEM). */
int stss_init(struct stss *t, size_t slots, uint64_t idle_ms);
/* Free the table; stss_fini again, or on a table whose init failed, is a
 * no-op. */
void stss_fini(struct stss *t);

/* Forget every session and awaited stamp, and draw a new secret: for a
 * reload that leaves stateful mode (or comes back to it), so that no
 * session resumes with counters from before. The table's own counters
 * (created, evicted, refused, stale) are kept. */
void stss_clear(struct stss *t);

/*
 * The session of one in-profile test packet from peer to local with
 * this SSID, at now_ms (the caller's monotonic milliseconds): found, or
 * started (next_seq, rx, tx 0) if absent or idle for idle_ms. Counts the
 * packet in rx and marks the session active. peer and local are AF_INET
 * or AF_INET6 (IPv4-mapped counts as IPv4).
 *
 * Returns NULL when the set is full of sessions active within
 * STSS_MIN_IDLE_MS (counted in refused: answer statelessly, see above),
 * or for another address family. The pointer stays valid until
 * stss_clear or stss_fini, but its slot may hold another session after
 * a later stss_get, which never happens to one active within
 * STSS_MIN_IDLE_MS of that call.
 */
struct stss_sess *stss_get(struct stss *t, const struct sockaddr *peer,
                           const struct sockaddr *local, uint16_t ssid,
                           uint64_t now_ms);

/* A reply of s carrying s->next_seq goes out (call once per reply the
 * caller commits to sending): counts it in tx and moves next_seq on.
 * The stamp s awaited, if any, no longer matters (it would describe the
 * reply before the previous one). Returns the sequence number the reply
 * carries. */
uint32_t stss_sent(struct stss_sess *s);

/* Reply `seq` of s will have its real send time reported under tx-stamp
 * id `id` (e.g. the socket's SOF_TIMESTAMPING_OPT_ID counter; with
 * several sockets per table the caller makes the ids of stamps in flight
 * distinct, say with the socket's number in the top bits). s awaits
 * only this one: a stamp for an earlier id is ignored from now on. */
void stss_await(struct stss *t, struct stss_sess *s, uint32_t seq, uint32_t id);

/* The transmit stamp for id arrived (MSG_ERRQUEUE) with time *sent: if
 * the session that awaits id still holds its slot, it keeps *sent as the
 * follow-up data of that reply, and this returns true. Otherwise (an id
 * nobody awaits or already delivered, its session replaced in its slot
 * by eviction, by expiry or by stss_clear, a later reply of it sent, the
 * ring entry taken by a later await) no session changes, stale is
 * counted, and this returns false. */
bool stss_stamped(struct stss *t, uint32_t id, const struct timespec *sent);

/* The Follow-Up Telemetry data of s's next reply: true, with the
 * sequence number and real send time of the reply just before it, when
 * that time is known; false otherwise (no reply yet, or its stamp not
 * (yet) in). */
bool stss_followup(const struct stss_sess *s, uint32_t *seq,
                   struct timespec *sent);

#endif /* ECHOD_STSESS_H */
