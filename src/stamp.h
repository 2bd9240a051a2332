/*
 * stamp.h - the STAMP session-reflector core (RFC 8762, with the RFC 8972
 * extensions: the Session-Sender Identifier and the TLVs): from the bytes
 * of one test packet and what the caller knows about it (receive time,
 * TTL, TOS, addresses, session counters) to the bytes of the reply, or a
 * reason to drop it.
 *
 * Pure and I/O-free: no socket, no allocation, no logging, no state kept
 * between calls. The only system call is adjtimex(2) in stamp_clock_read;
 * everything else works on the buffers it is given, never reads a request
 * at or past len, and builds every field with explicit big-endian byte
 * helpers (no struct overlays the wire).
 *
 * The caller's round trip (the UDP engine):
 *   1. recvmmsg with SO_TIMESTAMPING (T2), IP_RECVTTL/IPV6_RECVHOPLIMIT,
 *      IP_RECVTOS/IPV6_RECVTCLASS and IP_PKTINFO (the local address);
 *   2. stateful: find the session (stamp_ssid() and the 4-tuple), take its
 *      next sequence number and counters;
 *   3. stamp_reflect(); a drop is counted by its enum stamp_drop;
 *   4. stamp_set_t3() with the time read right before sendmsg: it writes
 *      T3 and, authenticated, the base HMAC over it, last;
 *   5. sendmsg res.len bytes, with res.tos as IP_TOS/IPV6_TCLASS when
 *      res.cos says a Class of Service TLV chose it.
 *
 * Modes. A key (STAMP authenticated mode) means 112-octet base packets
 * with HMAC-SHA-256 truncated to 128 bits over the first 96 octets (RFC
 * 8762 section 4.4), checked before anything else is read; no key means
 * 44-octet unauthenticated packets. Stateless mode copies the sender's
 * sequence number into the reply; stateful mode uses the one the caller
 * passes (RFC 8762 section 4.2).
 *
 * Short requests (RFC 8762 section 4.6, interworking with a TWAMP-Light
 * Session-Sender, which may send only sequence number, timestamp and error
 * estimate, 14 octets, with no padding): in unauthenticated mode a request
 * of STAMP_TWAMP_MIN..43 octets is answered with a whole 44-octet base
 * reply, as the RFC says a STAMP reflector "will transmit the base packet
 * if it receives a packet smaller than the STAMP base packet"; the sender
 * fields the request lacks (the SSID) are taken as zero. This is the only
 * case where a reply is longer than its request (at most 30 octets more,
 * 44/14 = 3.2 times), so the reply buffer must hold STAMP_UNAUTH_LEN.
 * Anything shorter than 14 octets holds no sequence number and timestamp
 * to reflect and is dropped (STAMP_DROP_SHORT), and so is an authenticated
 * request shorter than 112 octets: its HMAC cannot be checked, and section
 * 4.6 considers TWAMP-Light interworking in unauthenticated mode only.
 *
 * Bytes after the base packet (RFC 8972 section 4) are TLVs, answered in
 * place: the reply has exactly the request's length and every TLV keeps
 * its place and length; only the flags and the fields the RFC gives the
 * reflector change. Flags are U (not understood), M (malformed), I
 * (integrity: HMAC TLV check failed), each set or cleared by the reflector,
 * reserved bits cleared.
 *   - Extra Padding (1): copied.
 *   - Location (2): destination and source UDP port, and each sub-TLV
 *     asking for an address answered from the caller's local and peer
 *     sockaddr (IPv4, also IPv4-mapped, or IPv6; the sub-TLV's type becomes
 *     the family's); a NULL sockaddr leaves its fields zero, unreported.
 *     The source MAC is never known here: answered as a zero EUI-64.
 *   - Timestamp Information (3): the clock's sync source and the receive
 *     and transmit timestamping methods the caller passes.
 *   - Class of Service (4): DSCP2 and ECN from the received TOS byte; the
 *     requested DSCP1 is used for the reply if cos_permit allows it, else
 *     the received DSCP is, and RP is set to 1 (section 4.4).
 *   - Direct Measurement (5): stateful, the session's receive and transmit
 *     counters; stateless keeps no such counters: U.
 *   - Access Report (6): Access ID and Return Code echoed; an ID other
 *     than 1 or 2 makes the TLV one to discard: U.
 *   - Follow-Up Telemetry (7): stateful, the previous reply's sequence
 *     number, its real send time and how it was taken; stateless, or with
 *     no previous reply, those fields zeroed (section 4.7).
 *   - HMAC (8): checked with the key over the sender's sequence number and
 *     the TLVs before it; in the reply recomputed over the reflector's.
 *   - any other type: copied, U.
 * A TLV is malformed when its header or value runs past the end or its
 * length is wrong for its type; it gets M, processing stops there and the
 * rest of the packet is copied unchanged (section 4). A failed HMAC TLV
 * check, an HMAC TLV that is not last (Extra Padding may follow it), no
 * key to check it with, or TLVs in authenticated mode without an HMAC TLV
 * (except a lone Extra Padding TLV) stops all processing: the TLVs are
 * copied with I set on each (section 4.8).
 * An all-zero remainder is padding, not TLVs: a TWAMP-Light sender's
 * Packet Padding (RFC 8762 section 4.6) is copied unchanged. A STAMP
 * sender sets U in every TLV it sends, so it never sends zero bytes there.
 */
#ifndef ECHOD_STAMP_H
#define ECHOD_STAMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#define STAMP_UNAUTH_LEN 44 /* base packet, unauthenticated mode */
#define STAMP_AUTH_LEN 112  /* base packet, authenticated mode */
#define STAMP_TWAMP_MIN 14  /* a TWAMP-Light sender's packet, no padding */

/* RFC 8972 TLV types (IANA "STAMP TLV Types"). */
#define STAMP_TLV_PADDING 1
#define STAMP_TLV_LOCATION 2
#define STAMP_TLV_TSINFO 3
#define STAMP_TLV_COS 4
#define STAMP_TLV_DIRECT 5
#define STAMP_TLV_ACCESS 6
#define STAMP_TLV_FOLLOWUP 7
#define STAMP_TLV_HMAC 8

/* RFC 8972 TLV flags, the first octet of a TLV. */
#define STAMP_FLAG_U 0x80 /* unrecognized */
#define STAMP_FLAG_M 0x40 /* malformed */
#define STAMP_FLAG_I 0x20 /* integrity (HMAC TLV) check failed */

/* Error Estimate bits (RFC 4656 section 4.1.2, Z from RFC 8186). */
#define STAMP_EE_S 0x8000 /* synchronised to an external source (UTC) */
#define STAMP_EE_Z 0x4000 /* timestamps in PTPv2 truncated format */

/* Synchronization sources and timestamping methods, as the Timestamp
 * Information TLV carries them (RFC 8972 sections 5.4 and 5.5). */
#define STAMP_SYNC_NTP 1
#define STAMP_SYNC_PTP 2
#define STAMP_SYNC_LOCAL 5 /* local free-running clock */
#define STAMP_TSM_HW 1     /* hardware assisted */
#define STAMP_TSM_SW 2     /* software, local (SO_TIMESTAMPING software) */

enum stamp_mode {
    STAMP_STATELESS, /* the reply's sequence number is the sender's */
    STAMP_STATEFUL,  /* the caller keeps per-session numbers and counters */
};

/* Why a request gets no reply; callers count them (STAMP_DROP_MAX slots). */
enum stamp_drop {
    STAMP_OK = 0,      /* not a drop: a reply was built */
    STAMP_DROP_SHORT,  /* too short to answer (see the short rule above) */
    STAMP_DROP_HMAC,   /* authenticated: the base packet's HMAC is wrong */
    STAMP_DROP_NOROOM, /* the reply buffer is too small: a caller's bug */
    STAMP_DROP_MAX
};

/* What the clock says, for the reply's Error Estimate and the Timestamp
 * Information TLV. Read it once per batch or second, not per packet. */
struct stamp_clock {
    uint16_t errest; /* the 16-bit Error Estimate field */
    uint8_t sync;    /* STAMP_SYNC_NTP when synchronised, else _LOCAL */
    int32_t tai;     /* TAI - UTC, seconds, as the kernel has it (0: no
                        time daemon has set it) */
};

/* Everything stamp_reflect needs besides the request bytes. */
struct stamp_params {
    enum stamp_mode mode;
    uint32_t seq;       /* stateful: this reply's sequence number */
    const void *key;    /* authenticated mode's HMAC key; NULL: none */
    size_t key_len;     /* any length (HMAC hashes a long key first) */
    bool checked;       /* stamp_check said STAMP_OK for these bytes */
    /* PTPv2 truncated timestamps (Z = 1), else NTP. Every time given
     * here (t2, fu_time) and to stamp_set_t3 is written as it is: pass
     * TAI (CLOCK_REALTIME + the TAI offset) for PTP, UTC for NTP. */
    bool ptp;
    struct timespec t2; /* receive time of the request (kernel stamp) */
    struct stamp_clock clock;
    uint8_t rx_method; /* how T2 was taken (STAMP_TSM_*) */
    uint8_t tx_method; /* how T3 will be taken */
    uint8_t ttl;       /* received IPv4 TTL or IPv6 Hop Limit */
    uint8_t tos;       /* received TOS / Traffic Class: DSCP << 2 | ECN */
    /* Class of Service TLV: bit d set = the reply may use DSCP d. 0: never
     * (every request gets its received DSCP back, RP = 1). */
    uint64_t cos_permit;
    /* Location TLV: the request's destination (ours) and source (the
     * peer's) address and port as received, each a whole sockaddr_in or
     * sockaddr_in6 (or a sockaddr_storage holding one); NULL or another
     * family: not reported (zero). */
    const struct sockaddr *local;
    const struct sockaddr *peer;
    /* Stateful only. Direct Measurement: the session's in-profile test
     * packets received (this one included) and replies sent (this one
     * included). Follow-Up Telemetry: the previous reply of the session,
     * its sequence number, its real send time and how that was taken;
     * fu_valid false: there was none (the fields are zeroed). */
    uint32_t rx_count;
    uint32_t tx_count;
    bool fu_valid;
    uint32_t fu_seq;
    struct timespec fu_time;
    uint8_t fu_method;
};

/* What stamp_reflect says besides the reply bytes. */
struct stamp_result {
    size_t len;          /* reply bytes to send (see the short rule) */
    uint32_t sender_seq; /* the request's sequence number */
    uint16_t ssid;       /* its Session-Sender Identifier (0: none) */
    bool cos;            /* a Class of Service TLV chose the reply's TOS */
    uint8_t tos;         /* if cos: DSCP << 2, ECN Not-ECT (0) */
    unsigned tlvs;       /* TLVs walked (well-formed or the malformed one) */
    uint8_t flags;       /* STAMP_FLAG_* set in any reply TLV, to count */
};

/*
 * Build the reply to req[0..len) in out[0..cap) and describe it in *res.
 * out may be req itself (reflecting in place) or a separate buffer, not a
 * partly overlapping one; cap must be at least max(len, STAMP_UNAUTH_LEN)
 * or the answer is STAMP_DROP_NOROOM. On STAMP_OK out[0..res->len) is the
 * reply with T3 (and, authenticated, the base HMAC) still zero:
 * stamp_set_t3 must run before it is sent. On a drop *res and out are
 * unspecified. Never reads req at or past len.
 */
enum stamp_drop stamp_reflect(const uint8_t *req, size_t len,
                              const struct stamp_params *p, uint8_t *out,
                              size_t cap, struct stamp_result *res);

/*
 * The checks stamp_reflect makes before it reads anything: long enough
 * for the mode, and with a key, the base packet's HMAC (constant time).
 * A caller that keeps state per request (stateful sessions) runs it
 * first, so a forged or short packet touches nothing, and then tells
 * stamp_reflect (params.checked) not to hash again.
 */
enum stamp_drop stamp_check(const uint8_t *req, size_t len, const void *key,
                            size_t key_len);

/*
 * True when req carries data where a reflector's reply has its Receive
 * Timestamp (T2) and a Session-Sender's request must be zero (MBZ, RFC
 * 8762 4.2): it is a reply sent back, not a request. Answering it would
 * bounce packets between two reflectors; a caller that answers senders
 * on reflector ports (stamp_reply_low_ports) drops such packets.
 */
bool stamp_is_reply(const uint8_t *req, size_t len, bool authenticated);

/*
 * Write T3 (the reply's Timestamp, in the format the reply's Error
 * Estimate Z bit names) into reply[0..len) and, with a key (authenticated
 * mode), recompute the base HMAC that covers it. The HMAC TLV covers only
 * the sequence number and the TLVs, which stamp_reflect already settled,
 * so it needs no update. Cheap: run it right before sendmsg. Returns 0, or
 * -1 with errno EINVAL if len is shorter than the mode's base packet.
 */
int stamp_set_t3(uint8_t *reply, size_t len, const struct timespec *t3,
                 const void *key, size_t key_len);

/*
 * The Session-Sender Identifier of a request, for finding a stateful
 * session before stamp_reflect: 0 if it has none or is too short. In
 * authenticated mode it is not verified until stamp_reflect checks the
 * HMAC: commit nothing to the session before that says STAMP_OK.
 */
uint16_t stamp_ssid(const uint8_t *req, size_t len, bool authenticated);

/* A short name for a drop reason ("short", "hmac", ...); "?" if unknown. */
const char *stamp_drop_name(enum stamp_drop d);

/*
 * 64-bit NTP timestamp of ts (a CLOCK_REALTIME time): seconds since 1900
 * in the high 32 bits (wrapping in 2036, era 1, as NTP does), the fraction
 * in units of 2^-32 s rounded to the nearest (0.5 s is 0x80000000).
 * tv_nsec outside 0..999999999 is clamped.
 */
uint64_t stamp_ntp(const struct timespec *ts);

/*
 * PTPv2 truncated timestamp of ts: the low 32 bits of the seconds, then
 * the nanoseconds. PTP counts TAI seconds since 1970, so pass a CLOCK_TAI
 * time for a true PTP timestamp; the encoding does not convert.
 */
uint64_t stamp_ptp(const struct timespec *ts);

/*
 * The Error Estimate field for a clock in the state adjtimex(2) reports:
 * state its return value, status, esterror and maxerror (microseconds)
 * from struct timex; ptp sets Z.
 * Synchronised (state neither TIME_ERROR nor -1, STA_UNSYNC clear, maxerror
 * below the kernel's 16 s limit): S = 1 and esterror encoded as
 * Multiplier * 2^(Scale - 32) s, rounded up to the smallest value that is
 * not below it (the error is never understated; Multiplier is never 0, so
 * 0 us gives 2^-32 s; beyond 255 * 2^31 s it saturates there).
 * Unsynchronised: S = 0 and the largest error the field can say (Scale
 * 63, Multiplier 255, some 17,000 years): such a clock may be off by
 * anything, and a reader that ignores S must still not trust a one-way
 * delay computed with it; the kernel's own maxerror is capped at 16 s and
 * would claim a bound the clock does not have.
 */
uint16_t stamp_errest(int state, int status, long esterror, long maxerror,
                      bool ptp);

/*
 * Read the system clock's state with adjtimex(2) (modes 0: read only) into
 * *c, through stamp_errest. Returns 0, or -1 with errno if adjtimex
 * failed, in which case *c says unsynchronised.
 */
int stamp_clock_read(struct stamp_clock *c, bool ptp);

/*
 * The clock c (read for NTP timestamps) as PTP timestamps see it: Z set,
 * and while the kernel does not know TAI - UTC (c->tai 0) unsynchronised
 * with the largest error, as CLOCK_REALTIME + 0 is then UTC, 37 seconds
 * and more from TAI.
 */
struct stamp_clock stamp_clock_ptp(struct stamp_clock c);

#endif /* ECHOD_STAMP_H */
