/*
 * test_stamp.c - the STAMP reflector core against the RFC byte layouts:
 * requests are built here byte by byte at the offsets of RFC 8762 (4.2,
 * 4.3) and RFC 8972 (SSID, TLVs), not with the code under test, and
 * replies are read back the same way. HMACs are computed and checked here
 * with nettle directly.
 *
 * Covers: the NTP fraction and PTP encodings on known values; the Error
 * Estimate of synchronised and unsynchronised clocks, and adjtimex read
 * through --wrap=adjtimex (read only, its failure); both base layouts,
 * stateless and stateful sequence numbers, SSID, TTL, T2/T3; the base
 * HMAC (good, bad, wrong key, short); TWAMP-Light short requests; padding;
 * each TLV type's answer, U, M and I flags; in-place and separate buffers
 * giving the same reply. And one level up, a worker's reflector (refl.c)
 * with PTP timestamps: the kernel's TAI offset added once to T2, T3 (under
 * the HMAC too) and Follow-Up Telemetry's time, never to the residence.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/timex.h>

#include <nettle/hmac.h>

#include "refl.h"
#include "stamp.h"
#include "unit.h"

/* ---- adjtimex, scripted ---- */

int __wrap_adjtimex(struct timex *tx);

static struct {
    int ret; /* what adjtimex returns */
    int err; /* errno when ret is -1 */
    int status;
    long esterror, maxerror;
    int tai;
    int calls;
    unsigned modes; /* what the caller asked for */
} fake;

int
__wrap_adjtimex(struct timex *tx)
{
    fake.calls++;
    fake.modes = tx->modes;
    if (fake.ret < 0) {
        errno = fake.err;
        return -1;
    }
    tx->status = fake.status;
    tx->esterror = fake.esterror;
    tx->maxerror = fake.maxerror;
    tx->tai = fake.tai;
    return fake.ret;
}

/* A clock synchronised within 1 us (Error Estimate 0x8587), with the
 * kernel's TAI offset tai. */
static void
fake_synced(int tai)
{
    fake.ret = TIME_OK;
    fake.esterror = 1;
    fake.maxerror = 2000;
    fake.tai = tai;
}

static int
setup(void **state)
{
    (void)state;
    memset(&fake, 0, sizeof(fake));
    return 0;
}

/* ---- bytes, written the way the RFC draws them ---- */

static const uint8_t key[] = "a key of the session, 32 octets!";
#define KEYLEN (sizeof(key) - 1)

static void
be16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void
be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (24 - 8 * i));
    }
}

static void
be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (56 - 8 * i));
    }
}

static uint32_t
rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static uint64_t
rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) << 32 | rd32(p + 4);
}

static unsigned
rd16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static void
expect_zero(const uint8_t *p, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        if (p[i] != 0) {
            fail_msg("octet %zu is 0x%02x, expected MBZ", i, p[i]);
        }
    }
}

/* HMAC-SHA-256 truncated to 16 octets, of a then b. */
static void
mac16(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
      uint8_t *out)
{
    struct hmac_sha256_ctx c;

    hmac_sha256_set_key(&c, KEYLEN, key);
    hmac_sha256_update(&c, alen, a);
    if (blen > 0) {
        hmac_sha256_update(&c, blen, b);
    }
    hmac_sha256_digest(&c, 16, out);
}

#define SEQ 0x01020304u
#define TS1 UINT64_C(0x1112131415161718)
#define ERR1 0x8123u
#define SSID 0xBEEFu

/* Unauthenticated sender packet (RFC 8762 Figure 1, SSID: RFC 8972):
 * Sequence Number @0, Timestamp @4, Error Estimate @12, SSID @14, MBZ
 * @16..44, here non-zero to see it ignored. */
static void
req_unauth(uint8_t *b)
{
    memset(b, 0xEE, 44);
    be32(b, SEQ);
    be64(b + 4, TS1);
    be16(b + 12, ERR1);
    be16(b + 14, SSID);
}

/* Authenticated sender packet (RFC 8762 Figure 2): Sequence Number @0,
 * MBZ @4..16, Timestamp @16, Error Estimate @24, SSID @26, MBZ @28..96,
 * HMAC @96 over octets 0..96. */
static void
req_auth(uint8_t *b)
{
    memset(b, 0xEE, 96);
    be32(b, SEQ);
    be64(b + 16, TS1);
    be16(b + 24, ERR1);
    be16(b + 26, SSID);
    mac16(b, 96, NULL, 0, b + 96);
}

/* A TLV header at p; returns the offset after a value of vlen octets. */
static size_t
tlv(uint8_t *b, size_t off, uint8_t flags, uint8_t type, unsigned vlen)
{
    b[off] = flags;
    b[off + 1] = type;
    be16(b + off + 2, vlen);
    return off + 4 + vlen;
}

static const struct timespec t2 = {1700000000, 500000000};
/* t2 in NTP format, worked out by hand: 1700000000 + 2208988800 seconds,
 * half a second. */
#define T2_NTP                                                                 \
    ((UINT64_C(1700000000) + UINT64_C(2208988800)) << 32 | 0x80000000u)

static struct stamp_params
params(void)
{
    struct stamp_params p;

    memset(&p, 0, sizeof(p));
    p.mode = STAMP_STATELESS;
    p.t2 = t2;
    p.clock.errest = 0x8F84; /* synchronised, about 1 ms */
    p.clock.sync = STAMP_SYNC_NTP;
    p.rx_method = STAMP_TSM_SW;
    p.tx_method = STAMP_TSM_SW;
    p.ttl = 61;
    return p;
}

static void
reflect_ok(const uint8_t *req, size_t len, const struct stamp_params *p,
           uint8_t *out, struct stamp_result *res)
{
    assert_int_equal(stamp_reflect(req, len, p, out, 2048, res), STAMP_OK);
}

/* ---- timestamps ---- */

static void
test_ntp_known_values(void **state)
{
    struct timespec ts = {0, 0};

    (void)state;
    assert_true(stamp_ntp(&ts) == UINT64_C(2208988800) << 32);
    ts.tv_nsec = 500000000;
    assert_true((uint32_t)stamp_ntp(&ts) == 0x80000000u);
    ts.tv_nsec = 250000000;
    assert_true((uint32_t)stamp_ntp(&ts) == 0x40000000u);
    /* 1 ns is 4.29 units: to the nearest, 4. */
    ts.tv_nsec = 1;
    assert_true((uint32_t)stamp_ntp(&ts) == 4);
    /* The last nanosecond of a second does not carry into the next. */
    ts.tv_nsec = 999999999;
    assert_true(stamp_ntp(&ts) >> 32 == 2208988800u);
    assert_true((uint32_t)stamp_ntp(&ts) == 0xFFFFFFFCu);
    /* 2036-02-07T06:28:16Z starts NTP era 1: seconds wrap to 0. */
    ts.tv_sec = 2085978496;
    ts.tv_nsec = 0;
    assert_true(stamp_ntp(&ts) == 0);
    assert_true(stamp_ntp(&t2) == T2_NTP);
    /* PTPv2 truncated: 32-bit seconds, then nanoseconds. */
    ts.tv_sec = 0x100000005;
    ts.tv_nsec = 123456789;
    assert_true(stamp_ptp(&ts) == (UINT64_C(5) << 32 | 123456789));
}

/* ---- Error Estimate ---- */

/* The error an Error Estimate says, in units of 2^-32 s. */
static unsigned __int128
ee_units(unsigned ee)
{
    return (unsigned __int128)(ee & 0xFF) << ((ee >> 8) & 0x3F);
}

static void
test_errest_synced(void **state)
{
    static const long us[] = {
        0,     1,      2,       3,        999,         1000,         1001,
        65536, 999999, 1000000, 16000000, 3600000000L, 123456789012L};

    (void)state;
    /* Worked out by hand: Multiplier * 2^(Scale-32) s, rounded up. */
    assert_int_equal(stamp_errest(TIME_OK, 0, 0, 0, false), 0x8001);
    assert_int_equal(stamp_errest(TIME_OK, 0, 1, 100, false), 0x8587);
    assert_int_equal(stamp_errest(TIME_OK, 0, 1000, 5000, false), 0x8F84);
    assert_int_equal(stamp_errest(TIME_OK, 0, 16000000, 0, false), 0x9D80);
    assert_int_equal(stamp_errest(TIME_OK, 0, 3600000000L, 0, false), 0xA4E1);
    assert_int_equal(stamp_errest(TIME_OK, 0, LONG_MAX, 0, false), 0xBFFF);
    assert_int_equal(stamp_errest(TIME_INS, 0, 1000, 0, true), 0xCF84);
    /* Never below the error, and one Multiplier step less would be
     * (compared in units of 2^-32 us, exactly). */
    for (size_t i = 0; i < sizeof(us) / sizeof(us[0]); i++) {
        unsigned ee = stamp_errest(TIME_OK, 0, us[i], 0, false);
        unsigned __int128 err = (unsigned __int128)us[i] << 32;
        unsigned __int128 step = (unsigned __int128)1 << ((ee >> 8) & 0x3F);

        assert_true(ee & 0x8000);
        assert_true((ee & 0xFF) != 0);
        assert_true(ee_units(ee) * 1000000 >= err);
        assert_true((ee_units(ee) - step) * 1000000 < err || (ee & 0xFF) == 1);
    }
}

static void
test_errest_unsynced(void **state)
{
    (void)state;
    assert_int_equal(stamp_errest(TIME_OK, STA_UNSYNC, 0, 0, false), 0x3FFF);
    assert_int_equal(stamp_errest(TIME_ERROR, 0, 0, 0, false), 0x3FFF);
    assert_int_equal(stamp_errest(-1, 0, 0, 0, false), 0x3FFF);
    assert_int_equal(stamp_errest(TIME_OK, 0, 10, 16000000, false), 0x3FFF);
    assert_int_equal(stamp_errest(TIME_OK, STA_UNSYNC, 0, 0, true), 0x7FFF);
}

static void
test_clock_read_wrapped(void **state)
{
    struct stamp_clock c;

    (void)state;
    fake_synced(0);
    assert_int_equal(stamp_clock_read(&c, false), 0);
    assert_int_equal(fake.calls, 1);
    assert_int_equal(fake.modes, 0); /* it must never set the clock */
    assert_int_equal(c.errest, 0x8587);
    assert_int_equal(c.sync, STAMP_SYNC_NTP);

    fake.ret = TIME_ERROR;
    fake.status = STA_UNSYNC;
    assert_int_equal(stamp_clock_read(&c, true), 0);
    assert_int_equal(c.errest, 0x7FFF);
    assert_int_equal(c.sync, STAMP_SYNC_LOCAL);

    fake.ret = -1;
    fake.err = EPERM;
    errno = 0;
    assert_int_equal(stamp_clock_read(&c, false), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(c.errest, 0x3FFF);
    assert_int_equal(c.sync, STAMP_SYNC_LOCAL);
}

/* The TAI offset comes with the clock's state; for PTP timestamps a
 * clock without one is unsynchronised (its times are UTC, not TAI), and
 * one with it keeps its Error Estimate, with Z. */
static void
test_clock_ptp(void **state)
{
    struct stamp_clock c, p;

    (void)state;
    fake_synced(37);
    assert_int_equal(stamp_clock_read(&c, false), 0);
    assert_int_equal(c.tai, 37);
    p = stamp_clock_ptp(c);
    assert_int_equal(p.errest, 0x8587 | STAMP_EE_Z);
    assert_int_equal(p.sync, STAMP_SYNC_NTP);
    assert_int_equal(p.tai, 37);

    fake.tai = 0;
    assert_int_equal(stamp_clock_read(&c, false), 0);
    assert_int_equal(c.errest, 0x8587); /* NTP timestamps need no TAI */
    p = stamp_clock_ptp(c);
    assert_int_equal(p.errest, 0x7FFF);
    assert_int_equal(p.sync, STAMP_SYNC_LOCAL);

    fake.ret = -1;
    fake.err = EPERM;
    fake.tai = 37; /* not believed from a failed call */
    assert_int_equal(stamp_clock_read(&c, false), -1);
    assert_int_equal(c.tai, 0);
}

/* ---- refl: PTP times on a worker ---- */

/* The request's T2 as the kernel's receive stamp would give it. */
static struct refl_rx
rx_at(time_t sec, long nsec)
{
    struct refl_rx rx;

    memset(&rx, 0, sizeof(rx));
    rx.t2.tv_sec = sec;
    rx.t2.tv_nsec = nsec;
    rx.have_t2 = true;
    rx.ttl = 64;
    return rx;
}

static const struct refl_opts ntp1 = {.stateful = false, .ptp = false};
static const struct refl_opts ptp1 = {.stateful = false, .ptp = true};
static const struct refl_opts ptp_sessions = {.stateful = true, .ptp = true};

/* A PTPv2 truncated timestamp of CLOCK_REALTIME time t plus tai. */
static uint64_t
ptp_of(const struct timespec *t, int tai)
{
    return ((uint64_t)(t->tv_sec + tai) & 0xFFFFFFFFu) << 32 |
           (uint64_t)t->tv_nsec;
}

#define REFL_BUF 2048 /* a worker's datagram buffer, as large as needed */

/* A worker's reply to a plain 44-octet request (no TLVs, no addresses)
 * received at rx, built in b (REFL_BUF octets). */
static void
reflect_plain(struct refl *r, const struct refl_opts *o,
              const struct refl_rx *rx, uint8_t *b, struct refl_reply *rep)
{
    req_unauth(b);
    assert_int_equal(
        refl_build(r, o, NULL, 0, b, 44, REFL_BUF, rx, NULL, NULL, 1000, rep),
        STAMP_OK);
}

static void
test_refl_ptp_adds_tai(void **state)
{
    static struct refl r; /* zeroed: a valid empty one */
    struct refl_rx rx = rx_at(1700000000, 123456789);
    struct refl_reply rep;
    struct timespec before, t3, after;
    uint8_t b[REFL_BUF];

    (void)state;
    fake_synced(37);
    reflect_plain(&r, &ptp1, &rx, b, &rep);
    assert_int_equal(rep.tai, 37);
    assert_true(rep.t2.tv_sec == 1700000000); /* the residence's start */
    assert_int_equal(rd16(b + 12), 0x8587 | STAMP_EE_Z);
    assert_true(rd64(b + 16) == ptp_of(&rx.t2, 37));
    clock_gettime(CLOCK_REALTIME, &before);
    t3 = refl_stamp_t3(b, rep.len, rep.tai, NULL, 0);
    clock_gettime(CLOCK_REALTIME, &after);
    assert_true(rd64(b + 4) == ptp_of(&t3, 37));
    assert_true(t3.tv_sec >= before.tv_sec && t3.tv_sec <= after.tv_sec);

    /* The same request for NTP timestamps: nothing added. */
    reflect_plain(&r, &ntp1, &rx, b, &rep);
    assert_int_equal(rep.tai, 0);
    assert_int_equal(rd16(b + 12), 0x8587);
    assert_true(rd64(b + 16) == stamp_ntp(&rx.t2));

    /* Authenticated: T3 at @16 with the offset, and the HMAC over it. */
    req_auth(b);
    assert_int_equal(refl_build(&r, &ptp1, key, KEYLEN, b, 112, sizeof(b), &rx,
                                NULL, NULL, 1000, &rep),
                     STAMP_OK);
    t3 = refl_stamp_t3(b, rep.len, rep.tai, key, KEYLEN);
    assert_true(rd64(b + 16) == ptp_of(&t3, 37));
    {
        uint8_t mac[16];

        mac16(b, 96, NULL, 0, mac);
        assert_memory_equal(b + 96, mac, 16);
    }
    refl_fini(&r);
}

/* Stateful: the previous reply's send time, reported by Follow-Up
 * Telemetry, is in TAI too; a kernel without the offset gives UTC and a
 * clock that says so. */
static void
test_refl_ptp_followup_and_no_tai(void **state)
{
    static struct refl r;
    struct refl_rx rx = rx_at(1700000000, 0);
    struct sockaddr_in here = {.sin_family = AF_INET, .sin_port = htons(862)};
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(40000)};
    const struct timespec sent = {1700000100, 5};
    struct refl_reply rep;
    struct timespec t3;
    uint8_t b[REFL_BUF];
    size_t len;

    (void)state;
    here.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fake_synced(37);
    for (int k = 0; k < 2; k++) {
        req_unauth(b);
        len = tlv(b, 44, STAMP_FLAG_U, STAMP_TLV_FOLLOWUP, 16);
        memset(b + 48, 0, 16);
        assert_int_equal(refl_build(&r, &ptp_sessions, NULL, 0, b, len,
                                    sizeof(b), &rx,
                                    (const struct sockaddr *)&here,
                                    (const struct sockaddr *)&peer, 1000, &rep),
                         STAMP_OK);
        assert_non_null(rep.sess);
        t3 = refl_stamp_t3(b, rep.len, rep.tai, NULL, 0);
        refl_sent(&r, &rep, &t3, 7 + (uint32_t)k);
        /* The kernel's transmit stamp of this reply. */
        assert_true(stss_stamped(&r.sess, 7 + (uint32_t)k, &sent));
    }
    /* The second reply reports the first (sequence 0) at sent + 37. */
    assert_int_equal(rd32(b + 48), 0);
    assert_true(rd64(b + 52) == ptp_of(&sent, 37));
    refl_fini(&r);

    memset(&r, 0, sizeof(r));
    fake.tai = 0;
    reflect_plain(&r, &ptp1, &rx, b, &rep);
    assert_int_equal(rep.tai, 0);
    assert_int_equal(rd16(b + 12), 0x7FFF);
    assert_true(rd64(b + 16) == ptp_of(&rx.t2, 0));
}

/* ---- base packets ---- */

static void
test_unauth_layout(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    struct timespec t3 = {1700000001, 0};
    uint8_t req[44], out[2048], before[44];

    (void)state;
    req_unauth(req);
    reflect_ok(req, sizeof(req), &p, out, &res);
    assert_int_equal(res.len, 44);
    assert_int_equal(res.sender_seq, SEQ);
    assert_int_equal(res.ssid, SSID);
    assert_false(res.cos);
    assert_int_equal(res.tlvs, 0);
    /* RFC 8762 Figure 5 (and RFC 8972 SSID): */
    assert_true(rd32(out) == SEQ);            /* stateless: the sender's */
    expect_zero(out, 4, 12);                  /* T3: not yet */
    assert_int_equal(rd16(out + 12), 0x8F84); /* the reflector's */
    assert_int_equal(rd16(out + 14), SSID);
    assert_true(rd64(out + 16) == T2_NTP);
    assert_true(rd32(out + 24) == SEQ);
    assert_true(rd64(out + 28) == TS1);
    assert_int_equal(rd16(out + 36), ERR1);
    expect_zero(out, 38, 40);
    assert_int_equal(out[40], 61); /* TTL */
    expect_zero(out, 41, 44);

    /* T3 goes in last, and nothing else moves. */
    memcpy(before, out, 44);
    assert_int_equal(stamp_set_t3(out, 44, &t3, NULL, 0), 0);
    assert_true(rd64(out + 4) == (UINT64_C(1700000001) + UINT64_C(2208988800))
                                     << 32);
    assert_memory_equal(out, before, 4);
    assert_memory_equal(out + 12, before + 12, 32);
    errno = 0;
    assert_int_equal(stamp_set_t3(out, 43, &t3, NULL, 0), -1);
    assert_int_equal(errno, EINVAL);
}

static void
test_stateful_sequence(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    uint8_t req[44], out[2048];

    (void)state;
    req_unauth(req);
    p.mode = STAMP_STATEFUL;
    p.seq = 77;
    reflect_ok(req, sizeof(req), &p, out, &res);
    assert_int_equal(rd32(out), 77);
    assert_true(rd32(out + 24) == SEQ); /* the sender's, still copied */
}

static void
test_ptp_format(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    struct timespec t3 = {7, 42};
    uint8_t req[44], out[2048];

    (void)state;
    req_unauth(req);
    p.ptp = true;
    reflect_ok(req, sizeof(req), &p, out, &res);
    /* Z says PTP, whatever errest the caller had; T2 and T3 follow it. */
    assert_int_equal(rd16(out + 12), 0xCF84);
    assert_true(rd64(out + 16) == (UINT64_C(1700000000) << 32 | 500000000));
    assert_int_equal(stamp_set_t3(out, 44, &t3, NULL, 0), 0);
    assert_true(rd64(out + 4) == (UINT64_C(7) << 32 | 42));
}

static void
test_auth_layout(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    struct timespec t3 = {1700000001, 0};
    uint8_t req[112], out[2048], mac[16];

    (void)state;
    req_auth(req);
    p.key = key;
    p.key_len = KEYLEN;
    p.ttl = 255;
    reflect_ok(req, sizeof(req), &p, out, &res);
    assert_int_equal(res.len, 112);
    assert_int_equal(res.ssid, SSID);
    /* RFC 8762 Figure 6 (and RFC 8972 SSID): */
    assert_true(rd32(out) == SEQ);
    expect_zero(out, 4, 24); /* MBZ, then T3 (not yet) */
    assert_int_equal(rd16(out + 24), 0x8F84);
    assert_int_equal(rd16(out + 26), SSID);
    expect_zero(out, 28, 32);
    assert_true(rd64(out + 32) == T2_NTP);
    expect_zero(out, 40, 48);
    assert_true(rd32(out + 48) == SEQ);
    expect_zero(out, 52, 64);
    assert_true(rd64(out + 64) == TS1);
    assert_int_equal(rd16(out + 72), ERR1);
    expect_zero(out, 74, 80);
    assert_int_equal(out[80], 255);
    expect_zero(out, 81, 96);

    /* T3, then the HMAC over the first 96 octets, T3 included. */
    assert_int_equal(stamp_set_t3(out, 112, &t3, key, KEYLEN), 0);
    assert_true(rd64(out + 16) == (UINT64_C(1700000001) + UINT64_C(2208988800))
                                      << 32);
    mac16(out, 96, NULL, 0, mac);
    assert_memory_equal(out + 96, mac, 16);
    assert_int_equal(stamp_set_t3(out, 111, &t3, key, KEYLEN), -1);
}

static void
test_auth_bad_hmac(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    uint8_t req[112], out[2048];
    static const uint8_t other[] = "another key";

    (void)state;
    req_auth(req);
    p.key = key;
    p.key_len = KEYLEN;
    req[5] ^= 1; /* an MBZ octet: covered by the HMAC all the same */
    assert_int_equal(stamp_reflect(req, 112, &p, out, sizeof(out), &res),
                     STAMP_DROP_HMAC);
    req[5] ^= 1;
    req[111] ^= 0x80;
    assert_int_equal(stamp_reflect(req, 112, &p, out, sizeof(out), &res),
                     STAMP_DROP_HMAC);
    req[111] ^= 0x80;
    p.key = other;
    p.key_len = sizeof(other) - 1;
    assert_int_equal(stamp_reflect(req, 112, &p, out, sizeof(out), &res),
                     STAMP_DROP_HMAC);
    /* Shorter than the authenticated base: no HMAC to check. */
    p.key = key;
    p.key_len = KEYLEN;
    assert_int_equal(stamp_reflect(req, 111, &p, out, sizeof(out), &res),
                     STAMP_DROP_SHORT);
    assert_int_equal(stamp_reflect(req, 112, &p, out, sizeof(out), &res),
                     STAMP_OK);
    assert_string_equal(stamp_drop_name(STAMP_DROP_HMAC), "hmac");
    assert_string_equal(stamp_drop_name(STAMP_DROP_SHORT), "short");
    assert_string_equal(stamp_drop_name(STAMP_DROP_MAX), "?");
}

/* RFC 8762 section 4.6: a TWAMP-Light sender's 14 octets get the whole
 * 44-octet base packet back; fewer cannot be answered. */
static void
test_short_requests(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    uint8_t req[44], out[2048];

    (void)state;
    req_unauth(req);
    reflect_ok(req, 14, &p, out, &res);
    assert_int_equal(res.len, 44);
    assert_int_equal(res.ssid, 0); /* not in the request: zero */
    assert_true(rd32(out) == SEQ);
    assert_true(rd32(out + 24) == SEQ);
    assert_true(rd64(out + 28) == TS1);
    assert_int_equal(rd16(out + 36), ERR1);
    assert_int_equal(rd16(out + 14), 0);
    assert_int_equal(out[40], 61);
    expect_zero(out, 41, 44);
    reflect_ok(req, 15, &p, out, &res);
    assert_int_equal(res.ssid, 0);
    reflect_ok(req, 16, &p, out, &res);
    assert_int_equal(res.ssid, SSID);
    assert_int_equal(res.len, 44);
    assert_int_equal(stamp_reflect(req, 13, &p, out, sizeof(out), &res),
                     STAMP_DROP_SHORT);
    assert_int_equal(stamp_reflect(req, 0, &p, out, sizeof(out), &res),
                     STAMP_DROP_SHORT);
    /* The reply needs 44 octets of room even for 14 in. */
    assert_int_equal(stamp_reflect(req, 14, &p, out, 43, &res),
                     STAMP_DROP_NOROOM);
    assert_int_equal(stamp_reflect(req, 44, &p, out, 43, &res),
                     STAMP_DROP_NOROOM);
}

static void
test_ssid_peek(void **state)
{
    uint8_t req[112];

    (void)state;
    req_unauth(req);
    assert_int_equal(stamp_ssid(req, 44, false), SSID);
    assert_int_equal(stamp_ssid(req, 15, false), 0);
    req_auth(req);
    assert_int_equal(stamp_ssid(req, 112, true), SSID);
    assert_int_equal(stamp_ssid(req, 100, true), 0);
}

/* ---- padding and TLVs ---- */

static void
test_padding_copied(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    uint8_t req[1044], out[2048];
    size_t end;

    (void)state;
    /* A TWAMP-Light sender's zero Packet Padding: not TLVs. */
    req_unauth(req);
    memset(req + 44, 0, 1000);
    reflect_ok(req, sizeof(req), &p, out, &res);
    assert_int_equal(res.len, 1044);
    assert_int_equal(res.tlvs, 0);
    expect_zero(out, 44, 1044);

    /* An Extra Padding TLV: copied octet for octet, U cleared. */
    end = tlv(req, 44, STAMP_FLAG_U, STAMP_TLV_PADDING, 996);
    assert_int_equal(end, 1044);
    t_fill(req + 48, 996, 7);
    reflect_ok(req, sizeof(req), &p, out, &res);
    assert_int_equal(res.tlvs, 1);
    assert_int_equal(res.flags, 0);
    assert_int_equal(out[44], 0);
    assert_memory_equal(out + 45, req + 45, 999);
}

static void
test_unknown_tlv(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    uint8_t req[44 + 10 + 8], out[2048];
    size_t off;

    (void)state;
    req_unauth(req);
    off = tlv(req, 44, STAMP_FLAG_U, 200, 6);
    for (int i = 0; i < 6; i++) {
        req[48 + i] = (uint8_t)(i + 1);
    }
    off = tlv(req, off, STAMP_FLAG_U | 0x01, STAMP_TLV_PADDING, 4);
    memset(req + off - 4, 0x99, 4);
    reflect_ok(req, sizeof(req), &p, out, &res);
    assert_int_equal(res.tlvs, 2);
    assert_int_equal(out[44], STAMP_FLAG_U); /* not understood */
    assert_memory_equal(out + 45, req + 45, 9);
    assert_int_equal(out[54], 0); /* understood; reserved bit cleared */
    assert_memory_equal(out + 55, req + 55, 7);
    assert_int_equal(res.flags, STAMP_FLAG_U);
}

static void
test_malformed_tlv(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    uint8_t req[200], out[2048];
    size_t off;

    (void)state;
    /* A Class of Service TLV of 3 octets (it must be 4): M, and the
     * valid one after it is not processed, only copied. */
    req_unauth(req);
    p.tos = 0x2A;
    off = tlv(req, 44, STAMP_FLAG_U, STAMP_TLV_COS, 3);
    memset(req + 48, 0xB8, 3);
    off = tlv(req, off, STAMP_FLAG_U, STAMP_TLV_COS, 4);
    be32(req + off - 4, 0xB8000000u);
    reflect_ok(req, off, &p, out, &res);
    assert_int_equal(out[44], STAMP_FLAG_M);
    assert_memory_equal(out + 45, req + 45, off - 45);
    assert_false(res.cos);
    assert_int_equal(res.flags, STAMP_FLAG_M);

    /* A length running past the end. */
    req_unauth(req);
    tlv(req, 44, STAMP_FLAG_U, STAMP_TLV_PADDING, 100);
    reflect_ok(req, 60, &p, out, &res);
    assert_int_equal(res.len, 60);
    assert_int_equal(out[44], STAMP_FLAG_M);
    assert_memory_equal(out + 45, req + 45, 15);

    /* Two octets: not even a TLV header. */
    req_unauth(req);
    req[44] = 0;
    req[45] = 9;
    reflect_ok(req, 46, &p, out, &res);
    assert_int_equal(out[44], STAMP_FLAG_M | STAMP_FLAG_U);
    assert_int_equal(out[45], 9);

    /* A Follow-Up Telemetry TLV of the wrong length: M, and its sequence
     * number and timestamp zeroed (RFC 8972 section 4.7). */
    req_unauth(req);
    off = tlv(req, 44, STAMP_FLAG_U, STAMP_TLV_FOLLOWUP, 20);
    memset(req + 48, 0x77, 20);
    p.mode = STAMP_STATEFUL;
    reflect_ok(req, off, &p, out, &res);
    assert_int_equal(out[44], STAMP_FLAG_M);
    expect_zero(out, 48, 60);
    assert_memory_equal(out + 60, req + 60, 8);
    /* ... but no further than its own value (found by fuzz_stamp). */
    off = tlv(req, 44, STAMP_FLAG_U, STAMP_TLV_FOLLOWUP, 0);
    memset(req + off, 0x77, 20);
    reflect_ok(req, off + 20, &p, out, &res);
    assert_int_equal(out[44], STAMP_FLAG_M);
    assert_memory_equal(out + 45, req + 45, 23);
}

/* An authenticated request with a Class of Service TLV and an HMAC TLV
 * over the sender's sequence number and the CoS TLV (RFC 8972 4.8). */
static size_t
req_auth_cos_hmac(uint8_t *req)
{
    size_t off;

    req_auth(req);
    off = tlv(req, 112, STAMP_FLAG_U, STAMP_TLV_COS, 4);
    be32(req + 116, 0xB8000000u); /* DSCP1 46 (EF) */
    off = tlv(req, off, STAMP_FLAG_U, STAMP_TLV_HMAC, 16);
    mac16(req, 4, req + 112, 8, req + 124);
    return off;
}

static void
test_hmac_tlv_good(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    uint8_t req[200], out[2048], mac[16];
    size_t len = req_auth_cos_hmac(req);

    (void)state;
    assert_int_equal(len, 140);
    p.key = key;
    p.key_len = KEYLEN;
    p.mode = STAMP_STATEFUL;
    p.seq = 9;
    p.cos_permit = UINT64_C(1) << 46;
    reflect_ok(req, len, &p, out, &res);
    assert_int_equal(res.len, 140);
    assert_int_equal(res.tlvs, 2);
    assert_int_equal(res.flags, 0);
    assert_int_equal(out[112], 0);
    assert_int_equal(out[120], 0);
    assert_true(res.cos);
    /* The reflector's HMAC TLV: over its own sequence number (9) and its
     * own CoS TLV as answered. */
    assert_int_equal(rd32(out), 9);
    mac16(out, 4, out + 112, 8, mac);
    assert_memory_equal(out + 124, mac, 16);
}

static void
test_hmac_tlv_bad(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    uint8_t req[200], out[2048], mac[16];
    size_t len = req_auth_cos_hmac(req);

    (void)state;
    p.key = key;
    p.key_len = KEYLEN;
    p.cos_permit = UINT64_C(1) << 46;
    p.tos = 0x2A;
    req[135] ^= 1; /* inside the HMAC TLV's value */
    reflect_ok(req, len, &p, out, &res);
    /* Every TLV gets I; the CoS TLV's data is neither used nor filled. */
    assert_int_equal(out[112], STAMP_FLAG_I);
    assert_int_equal(out[120], STAMP_FLAG_I);
    assert_memory_equal(out + 113, req + 113, 7);
    assert_false(res.cos);
    assert_int_equal(res.flags, STAMP_FLAG_I);
    /* The reply's own HMAC TLV is still the reflector's. */
    mac16(out, 4, out + 112, 8, mac);
    assert_memory_equal(out + 124, mac, 16);

    /* A TLV that is no Extra Padding after the HMAC TLV: I as well. */
    len = req_auth_cos_hmac(req);
    len = tlv(req, len, STAMP_FLAG_U, STAMP_TLV_TSINFO, 4);
    memset(req + len - 4, 0, 4);
    reflect_ok(req, len, &p, out, &res);
    assert_int_equal(out[112], STAMP_FLAG_I);
    assert_int_equal(out[140], STAMP_FLAG_I);
    /* Extra Padding may follow it. */
    len = req_auth_cos_hmac(req);
    len = tlv(req, len, STAMP_FLAG_U, STAMP_TLV_PADDING, 4);
    reflect_ok(req, len, &p, out, &res);
    assert_int_equal(res.flags, 0);
    assert_true(res.cos);
}

static void
test_hmac_tlv_required(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    uint8_t req[200], out[2048];
    size_t off;

    (void)state;
    p.key = key;
    p.key_len = KEYLEN;
    /* Authenticated TLVs without an HMAC TLV: I. */
    req_auth(req);
    off = tlv(req, 112, STAMP_FLAG_U, STAMP_TLV_COS, 4);
    memset(req + 116, 0, 4);
    reflect_ok(req, off, &p, out, &res);
    assert_int_equal(out[112], STAMP_FLAG_I);
    assert_false(res.cos);
    /* But a lone Extra Padding TLV needs none. */
    off = tlv(req, 112, STAMP_FLAG_U, STAMP_TLV_PADDING, 4);
    reflect_ok(req, off, &p, out, &res);
    assert_int_equal(out[112], 0);
    /* Unauthenticated, an HMAC TLV cannot be checked without a key: I. */
    p.key = NULL;
    req_unauth(req);
    off = tlv(req, 44, STAMP_FLAG_U, STAMP_TLV_COS, 4);
    memset(req + 48, 0, 4);
    off = tlv(req, off, STAMP_FLAG_U, STAMP_TLV_HMAC, 16);
    memset(req + 56, 0x11, 16);
    reflect_ok(req, off, &p, out, &res);
    assert_int_equal(out[44], STAMP_FLAG_I);
    assert_int_equal(out[52], STAMP_FLAG_I);
    assert_memory_equal(out + 56, req + 56, 16); /* no key: as it came */
}

static void
test_cos_tlv(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    uint8_t req[60], out[2048];
    size_t off;

    (void)state;
    req_unauth(req);
    off = tlv(req, 44, STAMP_FLAG_U, STAMP_TLV_COS, 4);
    /* DSCP1 46 | DSCP2 0 | ECN 0 | RP 0 | Reserved (junk, to be zeroed) */
    be32(req + 48, 0xB8001234u);
    p.tos = 10 << 2 | 1; /* received: DSCP 10 (AF11), ECT(1) */
    p.cos_permit = UINT64_C(1) << 46;
    reflect_ok(req, off, &p, out, &res);
    assert_int_equal(out[44], 0);
    /* DSCP1 46, DSCP2 10, ECN 1, RP 0: 101110 001010 01 00 */
    assert_int_equal(out[48], 0xB8);
    assert_int_equal(out[49], 0xA4);
    expect_zero(out, 50, 52);
    assert_true(res.cos);
    assert_int_equal(res.tos, 46 << 2);

    /* Not permitted: the received DSCP goes back, and RP = 1. */
    p.cos_permit = ~(UINT64_C(1) << 46);
    reflect_ok(req, off, &p, out, &res);
    assert_int_equal(out[48], 0xB8);
    assert_int_equal(out[49], 0xA5);
    assert_true(res.cos);
    assert_int_equal(res.tos, 10 << 2);
}

static void
test_direct_measurement(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    uint8_t req[60], out[2048];
    size_t off;

    (void)state;
    req_unauth(req);
    off = tlv(req, 44, STAMP_FLAG_U, STAMP_TLV_DIRECT, 12);
    be32(req + 48, 1234); /* S_TxC */
    memset(req + 52, 0, 8);
    p.mode = STAMP_STATEFUL;
    p.rx_count = 1200;
    p.tx_count = 1199;
    reflect_ok(req, off, &p, out, &res);
    assert_int_equal(out[44], 0);
    assert_int_equal(rd32(out + 48), 1234);
    assert_int_equal(rd32(out + 52), 1200);
    assert_int_equal(rd32(out + 56), 1199);

    /* Stateless keeps no counters: U, copied. */
    p.mode = STAMP_STATELESS;
    reflect_ok(req, off, &p, out, &res);
    assert_int_equal(out[44], STAMP_FLAG_U);
    assert_memory_equal(out + 45, req + 45, 15);
}

static void
test_followup_telemetry(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    uint8_t req[64], out[2048];
    size_t off;

    (void)state;
    req_unauth(req);
    off = tlv(req, 44, STAMP_FLAG_U, STAMP_TLV_FOLLOWUP, 16);
    memset(req + 48, 0x55, 16); /* should be zero; ignored anyway */
    p.mode = STAMP_STATEFUL;
    p.fu_valid = true;
    p.fu_seq = 41;
    p.fu_time.tv_sec = 1700000000;
    p.fu_time.tv_nsec = 250000000;
    p.fu_method = STAMP_TSM_SW;
    reflect_ok(req, off, &p, out, &res);
    assert_int_equal(out[44], 0);
    assert_int_equal(rd32(out + 48), 41);
    assert_true(
        rd64(out + 52) ==
        ((UINT64_C(1700000000) + UINT64_C(2208988800)) << 32 | 0x40000000u));
    assert_int_equal(out[60], STAMP_TSM_SW);
    expect_zero(out, 61, 64);

    /* No previous reply yet, or stateless: the fields are zeroed. */
    p.fu_valid = false;
    reflect_ok(req, off, &p, out, &res);
    assert_int_equal(out[44], 0);
    expect_zero(out, 48, 64);
    p.fu_valid = true;
    p.mode = STAMP_STATELESS;
    reflect_ok(req, off, &p, out, &res);
    assert_int_equal(out[44], 0);
    expect_zero(out, 48, 64);
}

static void
test_timestamp_info_and_access(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    uint8_t req[60], out[2048];
    size_t off;

    (void)state;
    req_unauth(req);
    off = tlv(req, 44, STAMP_FLAG_U, STAMP_TLV_TSINFO, 4);
    memset(req + 48, 0, 4);
    off = tlv(req, off, STAMP_FLAG_U, STAMP_TLV_ACCESS, 4);
    be32(req + 56, 0x1F02AABBu); /* ID 1, Resv 0xF, RC 2 */
    p.rx_method = STAMP_TSM_SW;
    p.tx_method = STAMP_TSM_HW;
    reflect_ok(req, off, &p, out, &res);
    /* Sync Src In, Timestamp In, Sync Src Out, Timestamp Out */
    assert_int_equal(out[44], 0);
    assert_memory_equal(out + 48, "\x01\x02\x01\x01", 4);
    /* Access ID and Return Code echoed, reserved bits zeroed. */
    assert_int_equal(out[52], 0);
    assert_memory_equal(out + 56, "\x10\x02\x00\x00", 4);

    /* Access ID 3 is invalid: the TLV is to be discarded, U. */
    req[56] = 0x30;
    reflect_ok(req, off, &p, out, &res);
    assert_int_equal(out[52], STAMP_FLAG_U);
    assert_memory_equal(out + 53, req + 53, 7);
}

/* A Location TLV asking for every address sub-TLV, the MAC and an
 * unknown one (RFC 8972 section 4.2). */
static size_t
req_location(uint8_t *req)
{
    size_t off;

    req_unauth(req);
    off = tlv(req, 44, STAMP_FLAG_U, STAMP_TLV_LOCATION, 4 + 20 + 20 + 12 + 8);
    memset(req + 48, 0, off - 48);
    tlv(req, 52, STAMP_FLAG_U, 4, 16);  /* Destination IP Address */
    tlv(req, 72, STAMP_FLAG_U, 7, 16);  /* Source IP Address */
    tlv(req, 92, STAMP_FLAG_U, 1, 8);   /* Source MAC Address */
    tlv(req, 104, STAMP_FLAG_U, 42, 4); /* not a sub-TLV type */
    memset(req + 108, 0x42, 4);
    return off;
}

static void
test_location_tlv(void **state)
{
    struct stamp_params p = params();
    struct stamp_result res;
    struct sockaddr_in l4, p4;
    struct sockaddr_in6 l6, p6;
    uint8_t req[200], out[2048], want[16];
    size_t len = req_location(req);

    (void)state;
    assert_int_equal(len, 112);
    memset(&l4, 0, sizeof(l4));
    l4.sin_family = AF_INET;
    l4.sin_port = htons(862);
    inet_pton(AF_INET, "192.0.2.1", &l4.sin_addr);
    p4 = l4;
    p4.sin_port = htons(50000);
    inet_pton(AF_INET, "198.51.100.7", &p4.sin_addr);
    p.local = (const struct sockaddr *)&l4;
    p.peer = (const struct sockaddr *)&p4;
    reflect_ok(req, len, &p, out, &res);
    assert_int_equal(out[44], 0);
    assert_int_equal(rd16(out + 48), 862);   /* destination port */
    assert_int_equal(rd16(out + 50), 50000); /* source port */
    assert_memory_equal(out + 52, "\x00\x05\x00\x10\xC0\x00\x02\x01", 8);
    expect_zero(out, 60, 72);
    assert_memory_equal(out + 72, "\x00\x08\x00\x10\xC6\x33\x64\x07", 8);
    expect_zero(out, 80, 92);
    assert_memory_equal(out + 92, "\x00\x03\x00\x08", 4); /* EUI-64 */
    expect_zero(out, 96, 104);
    assert_int_equal(out[104], STAMP_FLAG_U);
    assert_memory_equal(out + 105, req + 105, 7);

    /* IPv6 here, an IPv4-mapped peer there (a dual-stack socket). */
    memset(&l6, 0, sizeof(l6));
    l6.sin6_family = AF_INET6;
    l6.sin6_port = htons(8620);
    inet_pton(AF_INET6, "2001:db8::1", &l6.sin6_addr);
    p6 = l6;
    p6.sin6_port = htons(1);
    inet_pton(AF_INET6, "::ffff:198.51.100.7", &p6.sin6_addr);
    p.local = (const struct sockaddr *)&l6;
    p.peer = (const struct sockaddr *)&p6;
    reflect_ok(req, len, &p, out, &res);
    assert_int_equal(rd16(out + 48), 8620);
    assert_int_equal(rd16(out + 50), 1);
    inet_pton(AF_INET6, "2001:db8::1", want);
    assert_memory_equal(out + 52, "\x00\x06\x00\x10", 4);
    assert_memory_equal(out + 56, want, 16);
    assert_memory_equal(out + 72, "\x00\x08\x00\x10\xC6\x33\x64\x07", 8);
    expect_zero(out, 80, 92);

    /* Not reported: zero ports and values, the generic types stay. */
    p.local = NULL;
    p.peer = NULL;
    reflect_ok(req, len, &p, out, &res);
    expect_zero(out, 48, 52);
    assert_memory_equal(out + 52, "\x00\x04\x00\x10", 4);
    expect_zero(out, 56, 72);
    assert_memory_equal(out + 72, "\x00\x07\x00\x10", 4);

    /* A sub-TLV of the wrong length: M on it, the rest as it came. */
    len = req_location(req);
    be16(req + 74, 12);
    reflect_ok(req, len, &p, out, &res);
    assert_int_equal(out[72], STAMP_FLAG_M);
    assert_memory_equal(out + 73, req + 73, len - 73);
}

/* Reflecting in the request's own buffer gives the same reply. */
static void
test_in_place(void **state)
{
    struct stamp_params p = params();
    struct stamp_result r1, r2;
    uint8_t req[200], out[2048], inplace[2048];
    size_t len = req_auth_cos_hmac(req);

    (void)state;
    p.key = key;
    p.key_len = KEYLEN;
    p.mode = STAMP_STATEFUL;
    p.seq = 5;
    p.cos_permit = UINT64_C(1) << 46;
    reflect_ok(req, len, &p, out, &r1);
    memcpy(inplace, req, len);
    reflect_ok(inplace, len, &p, inplace, &r2);
    assert_int_equal(r1.len, r2.len);
    assert_memory_equal(out, inplace, len);

    p.key = NULL;
    len = req_location(req);
    reflect_ok(req, len, &p, out, &r1);
    memcpy(inplace, req, len);
    reflect_ok(inplace, len, &p, inplace, &r2);
    assert_memory_equal(out, inplace, len);
    /* A short request grows in place to the base packet. */
    reflect_ok(req, 20, &p, out, &r1);
    memcpy(inplace, req, 20);
    reflect_ok(inplace, 20, &p, inplace, &r2);
    assert_int_equal(r2.len, 44);
    assert_memory_equal(out, inplace, 44);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_ntp_known_values, setup),
        cmocka_unit_test_setup(test_errest_synced, setup),
        cmocka_unit_test_setup(test_errest_unsynced, setup),
        cmocka_unit_test_setup(test_clock_read_wrapped, setup),
        cmocka_unit_test_setup(test_unauth_layout, setup),
        cmocka_unit_test_setup(test_stateful_sequence, setup),
        cmocka_unit_test_setup(test_ptp_format, setup),
        cmocka_unit_test_setup(test_auth_layout, setup),
        cmocka_unit_test_setup(test_auth_bad_hmac, setup),
        cmocka_unit_test_setup(test_short_requests, setup),
        cmocka_unit_test_setup(test_ssid_peek, setup),
        cmocka_unit_test_setup(test_padding_copied, setup),
        cmocka_unit_test_setup(test_unknown_tlv, setup),
        cmocka_unit_test_setup(test_malformed_tlv, setup),
        cmocka_unit_test_setup(test_hmac_tlv_good, setup),
        cmocka_unit_test_setup(test_hmac_tlv_bad, setup),
        cmocka_unit_test_setup(test_hmac_tlv_required, setup),
        cmocka_unit_test_setup(test_cos_tlv, setup),
        cmocka_unit_test_setup(test_direct_measurement, setup),
        cmocka_unit_test_setup(test_followup_telemetry, setup),
        cmocka_unit_test_setup(test_timestamp_info_and_access, setup),
        cmocka_unit_test_setup(test_location_tlv, setup),
        cmocka_unit_test_setup(test_in_place, setup),
        cmocka_unit_test_setup(test_clock_ptp, setup),
        cmocka_unit_test_setup(test_refl_ptp_adds_tai, setup),
        cmocka_unit_test_setup(test_refl_ptp_followup_and_no_tai, setup),
    };

    t_deadline(30);
    return cmocka_run_group_tests_name("stamp", tests, NULL, NULL);
}
