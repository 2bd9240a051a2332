/*
 * fuzz_stamp.c - libFuzzer target: arbitrary bytes as a STAMP test packet
 * to reflect (stamp_reflect, then stamp_set_t3).
 *
 * The first three bytes choose the call, the rest is the request:
 *   byte 0: bit 0 authenticated (the fixed key below), bit 1 stateful,
 *           bit 2 PTP timestamps, bit 3 re-sign the base HMAC so that the
 *           authenticated path gets past its first check, bit 4 no
 *           addresses for the Location TLV, bit 5 IPv6 ones (else IPv4),
 *           bit 6 a previous reply for Follow-Up Telemetry;
 *   byte 1: the received TOS byte; byte 2: the Class of Service permit
 *           mask (each bit for eight DSCP values).
 * The request is an exact-size heap copy and the reply buffer exactly the
 * size the contract asks for, so a read or write past either is an ASan
 * report. Whatever the bytes:
 *   - a drop only for the documented reasons (short, bad base HMAC);
 *   - a reply of the request's length, or 44 octets for a short
 *     unauthenticated one, carrying the sender's sequence number,
 *     timestamp, error estimate and SSID where RFC 8762 puts them, the
 *     TTL, and the stateless or stateful sequence number;
 *   - every TLV header of the request keeps its type and length (a reply
 *     never moves or resizes a TLV), and an all-zero remainder is copied;
 *   - an I flag (integrity failed) means no Class of Service was applied;
 *   - the same reply when built in the request's own buffer, and again;
 *   - after stamp_set_t3, T3 in place and, authenticated, a base HMAC
 *     that nettle verifies.
 * A broken invariant aborts. No state survives an input.
 */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/hmac.h>

#include "fuzz.h"
#include "stamp.h"

#define FZ_CFG 3

static const uint8_t fz_key[] = "echod fuzz key";
#define FZ_KEYLEN (sizeof(fz_key) - 1)

static uint32_t
fz_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static void
fz_mac(const uint8_t *msg, size_t n, uint8_t *out)
{
    struct hmac_sha256_ctx c;

    hmac_sha256_set_key(&c, FZ_KEYLEN, fz_key);
    hmac_sha256_update(&c, n, msg);
    hmac_sha256_digest(&c, 16, out);
}

static bool
fz_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

struct fz_addrs {
    struct sockaddr_in l4, p4;
    struct sockaddr_in6 l6, p6;
};

static void
fz_params(uint8_t cfg, const uint8_t *data, struct fz_addrs *a,
          struct stamp_params *p)
{
    memset(p, 0, sizeof(*p));
    memset(a, 0, sizeof(*a));
    p->mode = (cfg & 2) ? STAMP_STATEFUL : STAMP_STATELESS;
    p->seq = 0xA5A5A5A5u;
    if (cfg & 1) {
        p->key = fz_key;
        p->key_len = FZ_KEYLEN;
    }
    p->ptp = (cfg & 4) != 0;
    p->t2.tv_sec = 1700000000;
    p->t2.tv_nsec = 123456789;
    p->clock.errest = 0x8F84;
    p->clock.sync = STAMP_SYNC_NTP;
    p->rx_method = STAMP_TSM_SW;
    p->tx_method = STAMP_TSM_SW;
    p->ttl = 64;
    p->tos = data[1];
    p->cos_permit = UINT64_C(0x0101010101010101) * data[2];
    a->l4.sin_family = AF_INET;
    a->l4.sin_port = htons(862);
    a->l4.sin_addr.s_addr = htonl(0xC0000201);
    a->p4 = a->l4;
    a->p4.sin_port = htons(40000);
    a->l6.sin6_family = AF_INET6;
    a->l6.sin6_port = htons(862);
    a->l6.sin6_addr.s6_addr[15] = 1;
    a->p6 = a->l6;
    a->p6.sin6_addr.s6_addr[0] = 0x20;
    if (!(cfg & 16)) {
        p->local = (cfg & 32) ? (const struct sockaddr *)&a->l6
                              : (const struct sockaddr *)&a->l4;
        p->peer = (cfg & 32) ? (const struct sockaddr *)&a->p6
                             : (const struct sockaddr *)&a->p4;
    }
    p->rx_count = 10;
    p->tx_count = 9;
    p->fu_valid = (cfg & 64) != 0;
    p->fu_seq = 8;
    p->fu_time = p->t2;
    p->fu_method = STAMP_TSM_SW;
}

/* The base fields of the reply against the request (RFC 8762 4.3). */
static void
fz_check_base(const uint8_t *req, size_t len, const uint8_t *out,
              const struct stamp_params *p, const struct stamp_result *res)
{
    bool auth = p->key != NULL;
    size_t q_ts = auth ? 16 : 4, q_err = auth ? 24 : 12, q_ssid = q_err + 2;
    size_t r_sseq = auth ? 48 : 24, r_sts = auth ? 64 : 28;
    size_t r_serr = auth ? 72 : 36, r_ttl = auth ? 80 : 40;
    uint16_t ssid =
        len >= q_ssid + 2 ? (uint16_t)(req[q_ssid] << 8 | req[q_ssid + 1]) : 0;

    FZ_CHECK(res->sender_seq == fz_get32(req), "sender seq %u",
             res->sender_seq);
    FZ_CHECK(fz_get32(out) ==
                 (p->mode == STAMP_STATEFUL ? p->seq : fz_get32(req)),
             "reply sequence number");
    FZ_CHECK(fz_get32(out + r_sseq) == fz_get32(req), "sender seq copy");
    FZ_CHECK(memcmp(out + r_sts, req + q_ts, 8) == 0, "sender timestamp");
    FZ_CHECK(memcmp(out + r_serr, req + q_err, 2) == 0, "sender errest");
    FZ_CHECK(res->ssid == ssid, "ssid %u, expected %u", res->ssid, ssid);
    FZ_CHECK((out[q_ssid] << 8 | out[q_ssid + 1]) == ssid, "reply ssid");
    FZ_CHECK(out[r_ttl] == p->ttl, "ttl");
}

/* No TLV moves or changes size: the type and length of every header the
 * request's structure reaches are the same in the reply. */
static void
fz_check_tlvs(const uint8_t *req, size_t len, const uint8_t *out, size_t base,
              const struct stamp_result *res)
{
    size_t off = base;

    if (len > base && fz_zero(req + base, len - base)) {
        FZ_CHECK(fz_zero(out + base, len - base), "zero padding changed");
        FZ_CHECK(res->tlvs == 0, "padding seen as TLVs");
    }
    while (off < len && len - off >= 4) {
        size_t vlen = (size_t)req[off + 2] << 8 | req[off + 3];

        FZ_CHECK(memcmp(out + off + 1, req + off + 1, 3) == 0,
                 "TLV header at %zu changed", off);
        if (vlen > len - off - 4) {
            break;
        }
        off += 4 + vlen;
    }
    FZ_CHECK(!(res->flags & STAMP_FLAG_I) || !res->cos,
             "CoS applied despite a failed integrity check");
}

static bool
fz_same(const struct stamp_result *a, const struct stamp_result *b)
{
    return a->len == b->len && a->sender_seq == b->sender_seq &&
           a->ssid == b->ssid && a->cos == b->cos && a->tos == b->tos &&
           a->tlvs == b->tlvs && a->flags == b->flags;
}

static void
fz_check_t3(uint8_t *out, size_t n, const struct stamp_params *p)
{
    struct timespec t3 = {1700000001, 999999999};
    uint8_t mac[16];
    size_t ts = p->key != NULL ? 16 : 4;
    uint64_t want = p->ptp ? stamp_ptp(&t3) : stamp_ntp(&t3);

    FZ_CHECK(stamp_set_t3(out, n, &t3, p->key, p->key_len) == 0, "set_t3");
    FZ_CHECK(fz_get32(out + ts) == (uint32_t)(want >> 32) &&
                 fz_get32(out + ts + 4) == (uint32_t)want,
             "T3");
    if (p->key != NULL) {
        fz_mac(out, 96, mac);
        FZ_CHECK(memcmp(out + 96, mac, 16) == 0, "reply base HMAC");
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct stamp_params p;
    struct stamp_result res, res2;
    struct fz_addrs a;
    enum stamp_drop d;
    uint8_t *req, *out, *inplace;
    size_t len, cap, base;

    if (size < FZ_CFG) {
        return 0;
    }
    fz_params(data[0], data, &a, &p);
    len = size - FZ_CFG;
    base = p.key != NULL ? STAMP_AUTH_LEN : STAMP_UNAUTH_LEN;
    cap = len > STAMP_UNAUTH_LEN ? len : STAMP_UNAUTH_LEN;
    req = malloc(len > 0 ? len : 1);
    out = malloc(cap);
    inplace = malloc(cap);
    FZ_CHECK(req != NULL && out != NULL && inplace != NULL, "no memory");
    if (len > 0) {
        memcpy(req, data + FZ_CFG, len);
    }
    if ((data[0] & 8) && p.key != NULL && len >= STAMP_AUTH_LEN) {
        fz_mac(req, 96, req + 96);
    }

    d = stamp_reflect(req, len, &p, out, cap, &res);
    if (len < (p.key != NULL ? STAMP_AUTH_LEN : STAMP_TWAMP_MIN)) {
        FZ_CHECK(d == STAMP_DROP_SHORT, "len %zu: %s", len, stamp_drop_name(d));
    } else if (d != STAMP_OK) {
        FZ_CHECK(d == STAMP_DROP_HMAC && p.key != NULL, "drop %s",
                 stamp_drop_name(d));
    } else {
        FZ_CHECK(res.len == (len > base ? len : base), "reply len %zu of %zu",
                 res.len, len);
        fz_check_base(req, len, out, &p, &res);
        fz_check_tlvs(req, len, out, base, &res);
        /* In the request's own buffer: the same reply. */
        memcpy(inplace, req, len);
        FZ_CHECK(stamp_reflect(inplace, len, &p, inplace, cap, &res2) ==
                     STAMP_OK,
                 "in place");
        FZ_CHECK(fz_same(&res, &res2) && memcmp(out, inplace, res.len) == 0,
                 "in place differs");
        fz_check_t3(out, res.len, &p);
    }
    free(req);
    free(out);
    free(inplace);
    return 0;
}
