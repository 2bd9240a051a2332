/*
 * stamp.c - the STAMP session-reflector core (see stamp.h for the
 * contract; RFC 8762 for the base packets, RFC 8972 for SSID and TLVs).
 *
 * Owns: the field offsets of both modes' packets, the NTP and PTP
 * timestamp encodings, the Error Estimate of the clock, the base and TLV
 * HMACs (nettle's HMAC-SHA-256, compared in constant time), and the TLV
 * walk that answers each TLV in place.
 * Never: touches a socket, allocates, logs, keeps state between calls,
 * reads a request at or past its length, or changes a TLV's place or
 * length (a reply is its request's size: RFC 8762's symmetric packets).
 * Invariant: everything read from the request (sender fields, HMACs, the
 * TLV structure) is read before the first byte of the reply is written,
 * so the reply may be built in the request's own buffer.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/timex.h>

#include <nettle/hmac.h>
#include <nettle/memops.h>

#include "stamp.h"

#define ST_HMAC_LEN 16   /* HMAC-SHA-256 truncated to 128 bits */
#define ST_HMAC_COVER 96 /* octets the base packet's HMAC covers */
#define ST_SEQ_LEN 4     /* the sequence number, first in every packet */
#define ST_TLV_HEAD 4    /* flags, type, 16-bit length */
#define ST_NTP_EPOCH UINT64_C(2208988800) /* 1900 to 1970, in seconds */
#define ST_PHASE_LIMIT_US 16000000L       /* the kernel's NTP_PHASE_LIMIT */
#define ST_NSEC 1000000000L

/* Field offsets of one mode's packets: RFC 8762 sections 4.2 (sender) and
 * 4.3 (reflector), with the SSID of RFC 8972 section 3 after the Error
 * Estimate in both directions. */
struct st_layout {
    size_t len;                 /* base packet */
    size_t q_ts, q_err, q_ssid; /* in the Session-Sender's packet */
    size_t r_ts, r_err, r_ssid; /* the reflector's own fields ... */
    size_t r_t2, r_sseq, r_sts; /* ... and the copies of the sender's */
    size_t r_serr, r_ttl;
};

static const struct st_layout st_unauth = {
    .len = STAMP_UNAUTH_LEN,
    .q_ts = 4,
    .q_err = 12,
    .q_ssid = 14,
    .r_ts = 4,
    .r_err = 12,
    .r_ssid = 14,
    .r_t2 = 16,
    .r_sseq = 24,
    .r_sts = 28,
    .r_serr = 36,
    .r_ttl = 40,
};

static const struct st_layout st_auth = {
    .len = STAMP_AUTH_LEN,
    .q_ts = 16,
    .q_err = 24,
    .q_ssid = 26,
    .r_ts = 16,
    .r_err = 24,
    .r_ssid = 26,
    .r_t2 = 32,
    .r_sseq = 48,
    .r_sts = 64,
    .r_serr = 72,
    .r_ttl = 80,
};

static const char *const st_drop_names[STAMP_DROP_MAX] = {
    [STAMP_OK] = "ok",
    [STAMP_DROP_SHORT] = "short",
    [STAMP_DROP_HMAC] = "hmac",
    [STAMP_DROP_NOROOM] = "noroom",
};

/* ---- big-endian fields ---- */

static uint16_t
st_get16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t
st_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static void
st_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void
st_put32(uint8_t *p, uint32_t v)
{
    st_put16(p, (uint16_t)(v >> 16));
    st_put16(p + 2, (uint16_t)v);
}

static void
st_put64(uint8_t *p, uint64_t v)
{
    st_put32(p, (uint32_t)(v >> 32));
    st_put32(p + 4, (uint32_t)v);
}

/* ---- timestamps and the Error Estimate ---- */

static uint64_t
st_nsec(const struct timespec *ts)
{
    if (ts->tv_nsec < 0) {
        return 0;
    }
    return ts->tv_nsec >= ST_NSEC ? ST_NSEC - 1 : (uint64_t)ts->tv_nsec;
}

uint64_t
stamp_ntp(const struct timespec *ts)
{
    /* Unsigned arithmetic: a time before 1900 or after 2036 wraps into
     * the 32-bit era, as NTP's own seconds do. */
    uint64_t sec = ((uint64_t)ts->tv_sec + ST_NTP_EPOCH) & 0xFFFFFFFFu;
    /* nsec * 2^32 / 10^9, to the nearest; at most 0xFFFFFFFC, so the
     * rounding never carries into the seconds. */
    uint64_t frac = ((st_nsec(ts) << 32) + ST_NSEC / 2) / ST_NSEC;

    return sec << 32 | frac;
}

uint64_t
stamp_ptp(const struct timespec *ts)
{
    return ((uint64_t)ts->tv_sec & 0xFFFFFFFFu) << 32 | st_nsec(ts);
}

static uint64_t
st_ts(const struct timespec *ts, bool ptp)
{
    return ptp ? stamp_ptp(ts) : stamp_ntp(ts);
}

/* Scale and Multiplier (Scale << 8 | Multiplier) for the smallest
 * Multiplier * 2^(Scale - 32) s that is at least us microseconds: the
 * smallest Scale whose Multiplier fits 8 bits gives the tightest bound. */
static uint16_t
st_ee_value(uint64_t us)
{
    for (unsigned scale = 0; scale < 64; scale++) {
        uint64_t mult;

        if (scale < 32) {
            /* From 2^31 us (35 min) up no Scale below 32 can fit (their
             * largest value is 127.5 s), and the shift would overflow. */
            if (us > UINT64_C(1) << 31) {
                continue;
            }
            mult = ((us << (32 - scale)) + 999999) / 1000000;
        } else {
            uint64_t unit = UINT64_C(1000000) << (scale - 32);

            mult = us / unit + (us % unit != 0);
        }
        if (mult <= 0xFF) {
            /* Multiplier 0 is not allowed (RFC 4656 4.1.2): 0 us is
             * said as the smallest error there is. */
            return (uint16_t)(scale << 8 | (mult == 0 ? 1 : mult));
        }
    }
    return 63 << 8 | 0xFF; /* beyond 255 * 2^31 s: saturate */
}

uint16_t
stamp_errest(int state, int status, long esterror, long maxerror, bool ptp)
{
    uint16_t z = ptp ? STAMP_EE_Z : 0;
    bool synced = state >= 0 && state != TIME_ERROR &&
                  (status & STA_UNSYNC) == 0 && maxerror < ST_PHASE_LIMIT_US;

    if (!synced) {
        return (uint16_t)(z | 63 << 8 | 0xFF); /* S = 0, the most: stamp.h */
    }
    return (uint16_t)(STAMP_EE_S | z |
                      st_ee_value(esterror > 0 ? (uint64_t)esterror : 0));
}

struct stamp_clock
stamp_clock_ptp(struct stamp_clock c)
{
    c.errest |= STAMP_EE_Z;
    if (c.tai <= 0) {
        c.errest = stamp_errest(TIME_ERROR, STA_UNSYNC, 0, 0, true);
        c.sync = STAMP_SYNC_LOCAL;
    }
    return c;
}

int
stamp_clock_read(struct stamp_clock *c, bool ptp)
{
    struct timex tx;
    int state, saved;

    memset(&tx, 0, sizeof(tx)); /* modes 0: only read */
    state = adjtimex(&tx);
    saved = errno;
    c->errest = stamp_errest(state, tx.status, tx.esterror, tx.maxerror, ptp);
    c->sync = (c->errest & STAMP_EE_S) ? STAMP_SYNC_NTP : STAMP_SYNC_LOCAL;
    c->tai = state >= 0 ? tx.tai : 0;
    if (state < 0) {
        errno = saved;
        return -1;
    }
    return 0;
}

/* ---- HMAC ---- */

/* HMAC-SHA-256 under the key of a then b, truncated to ST_HMAC_LEN. */
static void
st_hmac(const void *key, size_t key_len, const uint8_t *a, size_t alen,
        const uint8_t *b, size_t blen, uint8_t *out)
{
    struct hmac_sha256_ctx ctx;

    hmac_sha256_set_key(&ctx, key_len, key);
    hmac_sha256_update(&ctx, alen, a);
    if (blen > 0) {
        hmac_sha256_update(&ctx, blen, b);
    }
    hmac_sha256_digest(&ctx, ST_HMAC_LEN, out);
    explicit_bzero(&ctx, sizeof(ctx)); /* it holds the padded key */
}

/* ---- TLVs ---- */

/* What the walk of the request found, before the reply is written. */
struct st_tlvs {
    size_t end;     /* where the well-formed TLVs end: len, or a bad one */
    size_t hmac;    /* offset of the HMAC TLV; 0: none */
    unsigned n;     /* well-formed TLVs */
    bool misplaced; /* a TLV other than Extra Padding after the HMAC TLV */
    bool padding;   /* the remainder is all zero: padding, not TLVs */
    bool intact;    /* integrity holds: the TLVs may be used (4.8) */
};

static bool
st_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

/* A value length the RFC allows for the type (RFC 8972 sections 4.1 to
 * 4.8); Extra Padding and types this code does not know take any. */
static bool
st_len_ok(uint8_t type, size_t vlen)
{
    switch (type) {
    case STAMP_TLV_LOCATION:
        return vlen >= 4; /* the two ports, then sub-TLVs */
    case STAMP_TLV_TSINFO:
    case STAMP_TLV_COS:
    case STAMP_TLV_ACCESS:
        return vlen == 4;
    case STAMP_TLV_DIRECT:
        return vlen == 12;
    case STAMP_TLV_FOLLOWUP:
    case STAMP_TLV_HMAC:
        return vlen == 16;
    default:
        return true;
    }
}

/* Whether the reflector understands the type in this mode: Direct
 * Measurement counts per session, which a stateless reflector has not. */
static bool
st_known(uint8_t type, enum stamp_mode mode)
{
    if (type == STAMP_TLV_DIRECT) {
        return mode == STAMP_STATEFUL;
    }
    return type >= STAMP_TLV_PADDING && type <= STAMP_TLV_HMAC;
}

/* Size of the well-formed TLV at buf[off..len) (off < len), or 0 when it
 * is malformed: its header or value runs past len, or its length is not
 * one its type allows. */
static size_t
st_tlv_size(const uint8_t *buf, size_t off, size_t len)
{
    size_t vlen;

    if (len - off < ST_TLV_HEAD) {
        return 0;
    }
    vlen = st_get16(buf + off + 2);
    if (vlen > len - off - ST_TLV_HEAD || !st_len_ok(buf[off + 1], vlen)) {
        return 0;
    }
    return ST_TLV_HEAD + vlen;
}

/* The integrity rule of RFC 8972 section 4.8 for the walked request. */
static bool
st_tlv_intact(const uint8_t *req, size_t base, size_t len,
              const struct st_tlvs *t, const struct stamp_params *p)
{
    uint8_t mac[ST_HMAC_LEN];

    if (t->hmac == 0) {
        /* Authenticated TLVs must come with an HMAC TLV, but for a lone
         * Extra Padding TLV; a malformed walk says M instead. */
        return p->key == NULL || t->end < len ||
               (t->n == 1 && req[base + 1] == STAMP_TLV_PADDING);
    }
    if (t->misplaced || p->key == NULL) {
        return false;
    }
    /* Over the sender's sequence number and the TLVs before it. */
    st_hmac(p->key, p->key_len, req, ST_SEQ_LEN, req + base, t->hmac - base,
            mac);
    return memeql_sec(mac, req + t->hmac + ST_TLV_HEAD, ST_HMAC_LEN) != 0;
}

/* Walk the TLVs of req[base..len) (len > base) and check their integrity. */
static void
st_tlv_walk(const uint8_t *req, size_t base, size_t len,
            const struct stamp_params *p, struct st_tlvs *t)
{
    size_t off = base;

    memset(t, 0, sizeof(*t));
    if (st_zero(req + base, len - base)) {
        t->padding = true;
        return;
    }
    while (off < len) {
        size_t size = st_tlv_size(req, off, len);
        uint8_t type;

        if (size == 0) {
            break; /* malformed: processing stops here (section 4) */
        }
        type = req[off + 1];
        if (t->hmac != 0 && type != STAMP_TLV_PADDING) {
            t->misplaced = true;
        } else if (type == STAMP_TLV_HMAC) {
            t->hmac = off;
        }
        t->n++;
        off += size;
    }
    t->end = off;
    t->intact = st_tlv_intact(req, base, len, t, p);
}

/* Port and address of sa as they are on the wire (an IPv4-mapped IPv6
 * address as the IPv4 address it is): 4 for IPv4, 6 for IPv6, 0 for NULL
 * or another family (then both zero). Copied out, as sa need not be
 * aligned for the family's struct. */
static int
st_addr(const struct sockaddr *sa, uint8_t *port, uint8_t *addr)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;

    memset(port, 0, 2);
    memset(addr, 0, 16);
    if (sa != NULL && sa->sa_family == AF_INET) {
        memcpy(&sin, sa, sizeof(sin));
        memcpy(port, &sin.sin_port, 2);
        memcpy(addr, &sin.sin_addr, 4);
        return 4;
    }
    if (sa != NULL && sa->sa_family == AF_INET6) {
        memcpy(&sin6, sa, sizeof(sin6));
        memcpy(port, &sin6.sin6_port, 2);
        if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
            memcpy(addr, sin6.sin6_addr.s6_addr + 12, 4);
            return 4;
        }
        memcpy(addr, &sin6.sin6_addr, 16);
        return 6;
    }
    return 0;
}

/* Answer an address sub-TLV (16-octet value) with sa: the type becomes
 * v4type (IPv4 address, then 12 octets MBZ) or v4type + 1 (IPv6) by the
 * family of the received packet. No address: the type stays, the value is
 * zero (unreported). */
static void
st_loc_addr(uint8_t *sub, const struct sockaddr *sa, uint8_t v4type)
{
    uint8_t port[2];
    int fam = st_addr(sa, port, sub + ST_TLV_HEAD);

    if (fam != 0) {
        sub[1] = (uint8_t)(fam == 4 ? v4type : v4type + 1);
    }
}

/* Answer one Location sub-TLV (RFC 8972 section 4.2.1; types 1-3 source
 * MAC, 4-6 destination IP, 7-9 source IP); returns its flags. */
static uint8_t
st_loc_sub(uint8_t *sub, size_t slen, const struct stamp_params *p)
{
    uint8_t type = sub[1];

    if (type >= 1 && type <= 3) {
        if (slen != 8) {
            return STAMP_FLAG_M;
        }
        /* A UDP socket never sees the source MAC: a zero EUI-64. */
        sub[1] = 3;
        memset(sub + ST_TLV_HEAD, 0, 8);
        return 0;
    }
    if (type >= 4 && type <= 9) {
        if (slen != 16) {
            return STAMP_FLAG_M;
        }
        if (type <= 6) {
            st_loc_addr(sub, p->local, 5);
        } else {
            st_loc_addr(sub, p->peer, 8);
        }
        return 0;
    }
    return STAMP_FLAG_U;
}

/* Location (section 4.2): the ports, then each sub-TLV; a malformed one
 * gets M and ends the sub-TLVs, the TLV itself staying well formed. */
static void
st_location(uint8_t *v, size_t vlen, const struct stamp_params *p)
{
    uint8_t addr[16];
    size_t off = 4;

    (void)st_addr(p->local, v, addr); /* Destination Port: ours */
    (void)st_addr(p->peer, v + 2, addr);
    while (off < vlen) {
        uint8_t *sub = v + off;
        bool head = vlen - off >= ST_TLV_HEAD;
        size_t slen = head ? st_get16(sub + 2) : 0;

        if (!head || slen > vlen - off - ST_TLV_HEAD) { /* past the TLV */
            sub[0] = STAMP_FLAG_M;
            return;
        }
        /* The I flag of a sub-TLV is always 0 (section 4.2.1). */
        sub[0] = st_loc_sub(sub, slen, p);
        if (sub[0] & STAMP_FLAG_M) {
            return;
        }
        off += ST_TLV_HEAD + slen;
    }
}

/* Class of Service (section 4.4): DSCP1 (6 bits) | DSCP2 (6) | ECN (2) |
 * RP (2) | Reserved (16). */
static void
st_cos(uint8_t *v, const struct stamp_params *p, struct stamp_result *res)
{
    unsigned dscp1 = v[0] >> 2;
    unsigned dscp2 = (unsigned)p->tos >> 2;
    unsigned ecn = (unsigned)p->tos & 3;
    bool permit = ((p->cos_permit >> dscp1) & 1) != 0;

    v[0] = (uint8_t)(dscp1 << 2 | dscp2 >> 4);
    v[1] = (uint8_t)((dscp2 & 0xF) << 4 | ecn << 2 | (permit ? 0 : 1));
    v[2] = 0;
    v[3] = 0;
    res->cos = true;
    /* ECN Not-ECT: the reflector is no ECN-capable transport. */
    res->tos = (uint8_t)((permit ? dscp1 : dscp2) << 2);
}

/* Follow-Up Telemetry (section 4.7): Sequence Number (4), Follow-Up
 * Timestamp (8), Timestamp Mode (1), Reserved (3). */
static void
st_followup(uint8_t *v, const struct stamp_params *p)
{
    memset(v, 0, 16);
    if (p->mode != STAMP_STATEFUL || !p->fu_valid) {
        return;
    }
    st_put32(v, p->fu_seq);
    st_put64(v + 4, st_ts(&p->fu_time, p->ptp));
    v[12] = p->fu_method;
}

/* Answer the well-formed TLV t (value vlen octets); returns its flags. */
static uint8_t
st_answer(uint8_t *t, size_t vlen, const struct stamp_params *p,
          struct stamp_result *res)
{
    uint8_t *v = t + ST_TLV_HEAD;

    if (!st_known(t[1], p->mode)) {
        return STAMP_FLAG_U; /* copied as it came */
    }
    switch (t[1]) {
    case STAMP_TLV_LOCATION:
        st_location(v, vlen, p);
        break;
    case STAMP_TLV_TSINFO: /* Sync Src In, Timestamp In, ... Out */
        v[0] = p->clock.sync;
        v[1] = p->rx_method;
        v[2] = p->clock.sync;
        v[3] = p->tx_method;
        break;
    case STAMP_TLV_COS:
        st_cos(v, p, res);
        break;
    case STAMP_TLV_DIRECT: /* S_TxC stays; R_RxC, R_TxC */
        st_put32(v + 4, p->rx_count);
        st_put32(v + 8, p->tx_count);
        break;
    case STAMP_TLV_ACCESS: /* ID (4 bits), Resv (4), Return Code, Rsvd */
        if ((v[0] >> 4) != 1 && (v[0] >> 4) != 2) {
            return STAMP_FLAG_U; /* "MUST be discarded" (section 4.6) */
        }
        v[0] &= 0xF0;
        v[2] = 0;
        v[3] = 0;
        break;
    case STAMP_TLV_FOLLOWUP:
        st_followup(v, p);
        break;
    default: /* Extra Padding is copied; HMAC is computed last */
        break;
    }
    return 0;
}

/* The malformed TLV at t, r octets before the end (r > 0): M, and the
 * rest copied, but for a Follow-Up Telemetry TLV's fields (4.7). */
static uint8_t
st_malformed(uint8_t *t, size_t r, const struct st_tlvs *w,
             const struct stamp_params *p)
{
    uint8_t flags = STAMP_FLAG_M | (w->intact ? 0 : STAMP_FLAG_I);

    if (r >= 2 && !st_known(t[1], p->mode)) {
        flags |= STAMP_FLAG_U;
    }
    if (r > ST_TLV_HEAD && t[1] == STAMP_TLV_FOLLOWUP) {
        /* Only inside its own value: what follows is not its to zero. */
        size_t n = st_get16(t + 2);

        n = n < r - ST_TLV_HEAD ? n : r - ST_TLV_HEAD;
        memset(t + ST_TLV_HEAD, 0, n < 12 ? n : 12);
    }
    return flags;
}

/* Answer the TLVs now in out[base..len) as the walk w of the request
 * found them, then the reflector's HMAC TLV over its own sequence number
 * and the answered TLVs before it. */
static void
st_tlv_answer(uint8_t *out, size_t base, size_t len, const struct st_tlvs *w,
              const struct stamp_params *p, struct stamp_result *res)
{
    size_t off = base;

    while (off < w->end) {
        uint8_t *t = out + off;
        size_t vlen = st_get16(t + 2);

        if (w->intact) {
            t[0] = st_answer(t, vlen, p, res);
        } else {
            /* Nothing in them is used; each is copied with I (4.8). */
            t[0] = STAMP_FLAG_I | (st_known(t[1], p->mode) ? 0 : STAMP_FLAG_U);
        }
        res->flags |= t[0];
        res->tlvs++;
        off += ST_TLV_HEAD + vlen;
    }
    if (w->end < len) {
        out[w->end] = st_malformed(out + w->end, len - w->end, w, p);
        res->flags |= out[w->end];
        res->tlvs++;
    }
    if (w->hmac != 0 && p->key != NULL) {
        st_hmac(p->key, p->key_len, out, ST_SEQ_LEN, out + base, w->hmac - base,
                out + w->hmac + ST_TLV_HEAD);
    }
}

/* ---- base packets ---- */

/* The Session-Sender's fields, read before the reply is written. */
struct st_sender {
    uint32_t seq;
    uint8_t ts[8]; /* copied as they are, whatever their format */
    uint8_t err[2];
    uint16_t ssid;
};

static void
st_read_sender(const uint8_t *req, size_t len, const struct st_layout *l,
               struct st_sender *s)
{
    /* len >= STAMP_TWAMP_MIN holds all but the SSID in either mode. */
    s->seq = st_get32(req);
    memcpy(s->ts, req + l->q_ts, sizeof(s->ts));
    memcpy(s->err, req + l->q_err, sizeof(s->err));
    s->ssid = len >= l->q_ssid + 2 ? st_get16(req + l->q_ssid) : 0;
}

static void
st_write_base(uint8_t *out, const struct st_layout *l,
              const struct stamp_params *p, const struct st_sender *s)
{
    uint16_t err = (uint16_t)(p->clock.errest & ~STAMP_EE_Z);

    memset(out, 0, l->len); /* MBZ, T3 and the base HMAC until set_t3 */
    st_put32(out, p->mode == STAMP_STATEFUL ? p->seq : s->seq);
    /* Z names the format of the reflector's own timestamps. */
    st_put16(out + l->r_err, err | (p->ptp ? STAMP_EE_Z : 0));
    st_put16(out + l->r_ssid, s->ssid);
    st_put64(out + l->r_t2, st_ts(&p->t2, p->ptp));
    st_put32(out + l->r_sseq, s->seq);
    memcpy(out + l->r_sts, s->ts, sizeof(s->ts));
    memcpy(out + l->r_serr, s->err, sizeof(s->err));
    out[l->r_ttl] = p->ttl;
}

enum stamp_drop
stamp_reflect(const uint8_t *req, size_t len, const struct stamp_params *p,
              uint8_t *out, size_t cap, struct stamp_result *res)
{
    const struct st_layout *l = p->key != NULL ? &st_auth : &st_unauth;
    size_t rlen = len > l->len ? len : l->len;
    struct st_sender s;
    struct st_tlvs w = {.padding = true}; /* no remainder: nothing to do */
    enum stamp_drop d;

    /* Checked first: nothing of a forged packet is used. */
    if (!p->checked &&
        (d = stamp_check(req, len, p->key, p->key_len)) != STAMP_OK) {
        return d;
    }
    if (cap < rlen) {
        return STAMP_DROP_NOROOM;
    }
    memset(res, 0, sizeof(*res));
    st_read_sender(req, len, l, &s);
    if (len > l->len) {
        st_tlv_walk(req, l->len, len, p, &w);
    }
    st_write_base(out, l, p, &s);
    if (len > l->len) {
        if (out != req) {
            memcpy(out + l->len, req + l->len, len - l->len);
        }
        if (!w.padding) {
            st_tlv_answer(out, l->len, len, &w, p, res);
        }
    }
    res->len = rlen;
    res->sender_seq = s.seq;
    res->ssid = s.ssid;
    return STAMP_OK;
}

enum stamp_drop
stamp_check(const uint8_t *req, size_t len, const void *key, size_t key_len)
{
    uint8_t mac[ST_HMAC_LEN];

    if (len < (key != NULL ? STAMP_AUTH_LEN : STAMP_TWAMP_MIN)) {
        return STAMP_DROP_SHORT;
    }
    if (key != NULL) {
        st_hmac(key, key_len, req, ST_HMAC_COVER, NULL, 0, mac);
        if (!memeql_sec(mac, req + ST_HMAC_COVER, ST_HMAC_LEN)) {
            return STAMP_DROP_HMAC;
        }
    }
    return STAMP_OK;
}

bool
stamp_is_reply(const uint8_t *req, size_t len, bool authenticated)
{
    size_t off = authenticated ? st_auth.r_t2 : st_unauth.r_t2;
    uint8_t any = 0;

    if (len < off + 8) {
        return false;
    }
    for (size_t i = off; i < off + 8; i++) {
        any |= req[i];
    }
    return any != 0;
}

int
stamp_set_t3(uint8_t *reply, size_t len, const struct timespec *t3,
             const void *key, size_t key_len)
{
    const struct st_layout *l = key != NULL ? &st_auth : &st_unauth;
    bool ptp;

    if (len < l->len) {
        errno = EINVAL;
        return -1;
    }
    ptp = (st_get16(reply + l->r_err) & STAMP_EE_Z) != 0;
    st_put64(reply + l->r_ts, st_ts(t3, ptp));
    if (key != NULL) {
        st_hmac(key, key_len, reply, ST_HMAC_COVER, NULL, 0,
                reply + ST_HMAC_COVER);
    }
    return 0;
}

uint16_t
stamp_ssid(const uint8_t *req, size_t len, bool authenticated)
{
    size_t off = authenticated ? st_auth.q_ssid : st_unauth.q_ssid;

    if (authenticated && len < STAMP_AUTH_LEN) {
        return 0; /* stamp_reflect drops it anyway */
    }
    return len >= off + 2 ? st_get16(req + off) : 0;
}

const char *
stamp_drop_name(enum stamp_drop d)
{
    if ((unsigned)d >= STAMP_DROP_MAX || st_drop_names[d] == NULL) {
        return "?";
    }
    return st_drop_names[d];
}
