/*
 * test_proxy.c - the PROXY protocol parser: v1 TCP4, TCP6 and UNKNOWN
 * lines and the malformed ones (each with its reason), v2 headers of each
 * command and family, the length limits, TLVs skipped and malformed, the
 * CRC32C TLV right and wrong, and CRC32C itself against published check
 * values. For every valid header each of its beginnings is
 * PXY_INCOMPLETE, bytes after it are not taken, and a bad input is
 * refused at the first byte that decides it and at every length after.
 *
 * Every input is copied into a heap block of exactly its size, so a read
 * past len is an AddressSanitizer error (make check SANITIZE=1). The seed
 * corpus of fuzz_proxy is checked too: fuzz/corpus/proxy/ok-* must parse,
 * bad-* must be refused and part-* be incomplete (files are read from
 * $ECHOD_SRCDIR or the current directory, as test_docs does).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"
#include "unit.h"

/* ---- helpers ---- */

/* pxy_parse on an exact-size copy of buf[0..len), *out prefilled with
 * junk so that a field the parser forgets to write shows. */
static enum pxy_result
parse(const void *buf, size_t len, struct pxy_header *out)
{
    unsigned char *copy = malloc(len > 0 ? len : 1);
    enum pxy_result r;

    assert_non_null(copy);
    if (len > 0) {
        memcpy(copy, buf, len);
    }
    memset(out, 0xA5, sizeof(*out));
    r = pxy_parse(copy, len, out);
    free(copy);
    return r;
}

static enum pxy_result
parse_str(const char *s, struct pxy_header *out)
{
    return parse(s, strlen(s), out);
}

/* Every beginning of buf[0..len) is incomplete, and says nothing more. */
static void
expect_prefixes_incomplete(const void *buf, size_t len)
{
    static const struct pxy_header zero;

    for (size_t n = 0; n < len; n++) {
        struct pxy_header h;

        if (parse(buf, n, &h) != PXY_INCOMPLETE) {
            fail_msg("%zu of %zu bytes: not PXY_INCOMPLETE (%s)", n, len,
                     h.why != NULL ? h.why : "ok");
        }
        assert_memory_equal(&h, &zero, sizeof(h));
    }
}

/* buf[0..len) is refused for why, and so is every longer buffer that
 * starts like it (up to PXY_MAX + 1 bytes, padded with pad). Every
 * beginning shorter than decide bytes is incomplete. */
static void
expect_bad_at(const void *buf, size_t len, size_t decide, const char *why)
{
    unsigned char longer[PXY_MAX + 1];
    struct pxy_header h;

    assert_true(decide <= len && len <= sizeof(longer));
    expect_prefixes_incomplete(buf, decide);
    memset(longer, 'x', sizeof(longer));
    memcpy(longer, buf, len);
    for (size_t n = decide; n <= sizeof(longer); n += n < len + 8 ? 1 : 97) {
        if (parse(longer, n, &h) != PXY_BAD) {
            fail_msg("%zu bytes: not PXY_BAD (want \"%s\")", n, why);
        }
        assert_non_null(h.why);
        assert_string_equal(h.why, why);
        assert_int_equal(h.len, 0);
        assert_int_equal(h.src.ss_family, 0);
    }
}

/* s is refused for why once whole, at the latest. */
static void
expect_bad(const char *s, const char *why)
{
    struct pxy_header h;

    if (parse_str(s, &h) != PXY_BAD) {
        fail_msg("\"%s\": not PXY_BAD (want \"%s\")", s, why);
    }
    assert_non_null(h.why);
    if (strcmp(h.why, why) != 0) {
        fail_msg("\"%s\": \"%s\", want \"%s\"", s, h.why, why);
    }
}

static void
expect_addr(const struct sockaddr_storage *ss, int family, const char *text,
            unsigned port)
{
    char got[INET6_ADDRSTRLEN];

    assert_int_equal(ss->ss_family, family);
    if (family == AF_INET) {
        struct sockaddr_in sin;

        memcpy(&sin, ss, sizeof(sin));
        assert_non_null(inet_ntop(AF_INET, &sin.sin_addr, got, sizeof(got)));
        assert_int_equal(ntohs(sin.sin_port), port);
    } else {
        struct sockaddr_in6 sin6;

        memcpy(&sin6, ss, sizeof(sin6));
        assert_non_null(inet_ntop(AF_INET6, &sin6.sin6_addr, got, sizeof(got)));
        assert_int_equal(ntohs(sin6.sin6_port), port);
    }
    assert_string_equal(got, text);
}

/* A valid header: PXY_OK with len, every beginning incomplete, and the
 * same answer with client bytes after it. */
static void
expect_ok(const void *buf, size_t len, struct pxy_header *h)
{
    unsigned char more[PXY_MAX + 64];
    struct pxy_header h2;

    if (parse(buf, len, h) != PXY_OK) {
        fail_msg("not PXY_OK: %s", h->why != NULL ? h->why : "incomplete");
    }
    assert_int_equal(h->len, len);
    assert_null(h->why);
    expect_prefixes_incomplete(buf, len);

    /* Client data that looks like another header, then random bytes. */
    assert_true(len + 64 <= sizeof(more));
    memcpy(more, buf, len);
    memcpy(more + len, "PROXY UNKNOWN\r\n", 15);
    t_fill(more + len + 15, 64 - 15, len);
    assert_int_equal(parse(more, len + 64, &h2), PXY_OK);
    assert_int_equal(h2.len, len);
    assert_int_equal(h2.version, h->version);
    assert_int_equal(h2.local, h->local);
    assert_memory_equal(&h2.src, &h->src, sizeof(h->src));
    assert_memory_equal(&h2.dst, &h->dst, sizeof(h->dst));
}

/* ---- v2 headers built for the tests ---- */

struct v2 {
    unsigned char b[PXY_V2_MAX + 16];
    size_t n;
    size_t crc_at; /* the CRC32C value's offset, 0 for none */
};

static const unsigned char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static void
v2_put(struct v2 *v, const void *p, size_t n)
{
    assert_true(v->n + n <= sizeof(v->b));
    memcpy(v->b + v->n, p, n);
    v->n += n;
}

static void
v2_start(struct v2 *v, unsigned char ver_cmd, unsigned char fam)
{
    unsigned char head[4] = {ver_cmd, fam, 0, 0};

    v->n = 0;
    v->crc_at = 0;
    v2_put(v, v2_sig, sizeof(v2_sig));
    v2_put(v, head, sizeof(head));
}

/* The TCP address block: 4 or 16 bytes each, then the ports. */
static void
v2_addrs(struct v2 *v, int family, const char *src, const char *dst,
         uint16_t sport, uint16_t dport)
{
    unsigned char a[16];
    size_t w = family == AF_INET ? 4 : 16;
    uint16_t p[2] = {htons(sport), htons(dport)};

    assert_int_equal(inet_pton(family, src, a), 1);
    v2_put(v, a, w);
    assert_int_equal(inet_pton(family, dst, a), 1);
    v2_put(v, a, w);
    v2_put(v, p, sizeof(p));
}

static void
v2_tlv(struct v2 *v, unsigned char type, const void *val, size_t n)
{
    unsigned char head[3] = {type, (unsigned char)(n >> 8), (unsigned char)n};

    v2_put(v, head, sizeof(head));
    v2_put(v, val, n);
}

static void
v2_crc_tlv(struct v2 *v)
{
    static const unsigned char zero[4];

    v2_tlv(v, 0x03, zero, sizeof(zero));
    v->crc_at = v->n - 4;
}

/* Write the length field (what follows the 16 fixed bytes) and, if there
 * is a CRC32C TLV, its value. */
static void
v2_finish(struct v2 *v)
{
    size_t len = v->n - 16;

    v->b[14] = (unsigned char)(len >> 8);
    v->b[15] = (unsigned char)len;
    if (v->crc_at != 0) {
        uint32_t c;

        memset(v->b + v->crc_at, 0, 4);
        c = pxy_crc32c(0, v->b, v->n);
        v->b[v->crc_at] = (unsigned char)(c >> 24);
        v->b[v->crc_at + 1] = (unsigned char)(c >> 16);
        v->b[v->crc_at + 2] = (unsigned char)(c >> 8);
        v->b[v->crc_at + 3] = (unsigned char)c;
    }
}

static void
v2_tcp4(struct v2 *v)
{
    v2_start(v, 0x21, 0x11);
    v2_addrs(v, AF_INET, "192.0.2.1", "198.51.100.2", 56324, 443);
}

/* ---- CRC32C ---- */

static void
test_crc32c_check_values(void **state)
{
    unsigned char b[32];

    (void)state;
    /* The catalogue's check value, and RFC 3720 B.4's vectors. */
    assert_int_equal(pxy_crc32c(0, "123456789", 9), 0xE3069283u);
    memset(b, 0, sizeof(b));
    assert_int_equal(pxy_crc32c(0, b, sizeof(b)), 0x8A9136AAu);
    memset(b, 0xFF, sizeof(b));
    assert_int_equal(pxy_crc32c(0, b, sizeof(b)), 0x62A8AB43u);
    for (size_t i = 0; i < sizeof(b); i++) {
        b[i] = (unsigned char)i;
    }
    assert_int_equal(pxy_crc32c(0, b, sizeof(b)), 0x46DD794Eu);
    assert_int_equal(pxy_crc32c(0, b, 0), 0);
    /* In pieces, as the parser skips the checksum field. */
    for (size_t k = 0; k <= 9; k++) {
        uint32_t c = pxy_crc32c(0, "123456789", k);

        assert_int_equal(pxy_crc32c(c, "123456789" + k, 9 - k), 0xE3069283u);
    }
}

/* ---- v1 ---- */

static void
test_v1_tcp4(void **state)
{
    static const char s[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
    struct pxy_header h;

    (void)state;
    expect_ok(s, sizeof(s) - 1, &h);
    assert_int_equal(h.version, 1);
    assert_false(h.local);
    expect_addr(&h.src, AF_INET, "192.0.2.1", 56324);
    expect_addr(&h.dst, AF_INET, "198.51.100.2", 443);

    {
        static const char edge[] = "PROXY TCP4 0.0.0.0 255.255.255.255 0 "
                                   "65535\r\n";

        expect_ok(edge, sizeof(edge) - 1, &h);
        expect_addr(&h.src, AF_INET, "0.0.0.0", 0);
        expect_addr(&h.dst, AF_INET, "255.255.255.255", 65535);
    }
}

static void
test_v1_tcp6(void **state)
{
    static const char s[] = "PROXY TCP6 2001:db8::1 2001:DB8::2 65535 7\r\n";
    static const char full[] =
        "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe 65535 65535\r\n";
    static const char mapped[] = "PROXY TCP6 ::ffff:192.0.2.1 ::1 1 2\r\n";
    struct pxy_header h;

    (void)state;
    expect_ok(s, sizeof(s) - 1, &h);
    assert_int_equal(h.version, 1);
    assert_false(h.local);
    expect_addr(&h.src, AF_INET6, "2001:db8::1", 65535);
    expect_addr(&h.dst, AF_INET6, "2001:db8::2", 7);
    /* The spec's longest TCP6 line, 104 bytes. */
    assert_int_equal(sizeof(full) - 1, 104);
    expect_ok(full, sizeof(full) - 1, &h);
    expect_addr(&h.dst, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
                65535);
    /* What inet_pton takes: a mapped address stays IPv6. */
    expect_ok(mapped, sizeof(mapped) - 1, &h);
    expect_addr(&h.src, AF_INET6, "::ffff:192.0.2.1", 1);
}

static void
test_v1_unknown(void **state)
{
    static const char s[] = "PROXY UNKNOWN\r\n";
    /* The spec's worst case: exactly PXY_V1_MAX bytes. */
    static const char full[] =
        "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    static const char junk[] = "PROXY UNKNOWN what ever\x01 ::\r\n";
    static const struct sockaddr_storage zero;
    struct pxy_header h;

    (void)state;
    expect_ok(s, sizeof(s) - 1, &h);
    assert_int_equal(h.version, 1);
    assert_true(h.local);
    assert_memory_equal(&h.src, &zero, sizeof(zero));
    assert_memory_equal(&h.dst, &zero, sizeof(zero));
    assert_int_equal(sizeof(full) - 1, PXY_V1_MAX);
    expect_ok(full, sizeof(full) - 1, &h);
    assert_true(h.local);
    /* After UNKNOWN and a space, anything up to the CRLF is ignored. */
    expect_ok(junk, sizeof(junk) - 1, &h);
    assert_true(h.local);
}

static void
test_v1_malformed(void **state)
{
    (void)state;
    expect_bad("PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n", "v1 bad protocol");
    expect_bad("PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n", "v1 bad protocol");
    expect_bad("PROXY  TCP4 192.0.2.1 198.51.100.2 1 2\r\n", "v1 bad protocol");
    expect_bad("PROXY UNKNOWNX\r\n", "v1 bad protocol");
    expect_bad("PROXY UNKNOW\r\n", "v1 bad protocol");
    expect_bad("PROXY TCP 192.0.2.1 198.51.100.2 1 2\r\n", "v1 bad protocol");
    expect_bad("PROXY \r\n", "v1 bad protocol");
    expect_bad("PROXY TCP4 192.0.2.1  198.51.100.2 1 2\r\n", "v1 bad address");
    expect_bad("PROXY TCP4 192.0.2.1 198.51.100.2  1 2\r\n", "v1 bad port");
    expect_bad("PROXY TCP4 192.0.2.1 198.51.100.2 1  2\r\n", "v1 bad port");
    expect_bad("PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n", "v1 bad port");
    expect_bad("PROXY TCP4 192.0.2.1 198.51.100.2 1 99999\r\n", "v1 bad port");
    expect_bad("PROXY TCP4 192.0.2.1 198.51.100.2 +1 2\r\n", "v1 bad port");
    expect_bad("PROXY TCP4 192.0.2.1 198.51.100.2 -1 2\r\n", "v1 bad port");
    expect_bad("PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n", "v1 bad port");
    expect_bad("PROXY TCP4 192.0.2.1 198.51.100.2 0x1 2\r\n", "v1 bad port");
    expect_bad("PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n", "v1 bad port");
    expect_bad("PROXY TCP4 192.0.2.1 198.51.100.2 1 \r\n", "v1 bad port");
    expect_bad("PROXY TCP4 192.0.2.1 198.51.100.2\r\n", "v1 bad port");
    expect_bad("PROXY TCP4 192.0.2.1\r\n", "v1 bad address");
    expect_bad("PROXY TCP4\r\n", "v1 bad address");
    expect_bad("PROXY TCP4 192.0.2 198.51.100.2 1 2\r\n", "v1 bad address");
    expect_bad("PROXY TCP4 192.0.2.256 198.51.100.2 1 2\r\n", "v1 bad address");
    expect_bad("PROXY TCP4 192.0.02.1 198.51.100.2 1 2\r\n", "v1 bad address");
    expect_bad("PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n", "v1 bad address");
    expect_bad("PROXY TCP4 192.0.2.1 2001:db8::2 1 2\r\n", "v1 bad address");
    expect_bad("PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n", "v1 bad address");
    expect_bad("PROXY TCP6 2001:db8:::1 2001:db8::2 1 2\r\n", "v1 bad address");
    expect_bad("PROXY TCP6 2001:db8::g 2001:db8::2 1 2\r\n", "v1 bad address");
    expect_bad("PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n",
               "v1 trailing data");
    expect_bad("PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n",
               "v1 trailing data");
    expect_bad("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n", "v1 bad line end");
    expect_bad("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\r\n",
               "v1 bad line end");
    expect_bad("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\rX", "v1 bad line end");
    expect_bad("PROXY UNKNOWN x\ny\r\n", "v1 bad line end");
    expect_bad("proxy TCP4 192.0.2.1 198.51.100.2 1 2\r\n",
               "not a PROXY header");
    expect_bad("PROXY\r\n", "not a PROXY header");
    expect_bad("PROXYTCP4 192.0.2.1 198.51.100.2 1 2\r\n",
               "not a PROXY header");
    expect_bad("GET / HTTP/1.0\r\n\r\n", "not a PROXY header");
}

/* No CRLF within PXY_V1_MAX bytes: refused at PXY_V1_MAX, not before. */
static void
test_v1_too_long(void **state)
{
    char s[PXY_V1_MAX + 8];
    struct pxy_header h;

    (void)state;
    memset(s, 'x', sizeof(s));
    memcpy(s, "PROXY UNKNOWN ", 14);
    expect_bad_at(s, PXY_V1_MAX, PXY_V1_MAX, "v1 line too long");
    /* A CR as byte 107: its LF would be byte 108. */
    s[PXY_V1_MAX - 1] = '\r';
    s[PXY_V1_MAX] = '\n';
    expect_bad_at(s, PXY_V1_MAX, PXY_V1_MAX, "v1 line too long");
    /* One shorter fits. */
    s[PXY_V1_MAX - 2] = '\r';
    s[PXY_V1_MAX - 1] = '\n';
    assert_int_equal(parse(s, PXY_V1_MAX, &h), PXY_OK);
    assert_int_equal(h.len, PXY_V1_MAX);
}

/* A field is refused at the byte that spoils it, not at the CRLF. */
static void
test_v1_decided_early(void **state)
{
    static const struct {
        const char *s;
        const char *why;
    } cases[] = {
        {"X", "not a PROXY header"},
        {"PROXY_", "not a PROXY header"},
        {"PROXy", "not a PROXY header"},
        {"PROXY X", "v1 bad protocol"},
        {"PROXY TCP4X", "v1 bad protocol"},
        {"PROXY UNKNOWN_", "v1 bad protocol"},
        {"PROXY TCP4 192.0.2.1:", "v1 bad address"},
        {"PROXY TCP4 192.0.2.11111111", "v1 bad address"}, /* 16 long */
        {"PROXY TCP6 2001:db8::g", "v1 bad address"},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 65536", "v1 bad port"},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 00", "v1 bad port"},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 1 2 ", "v1 trailing data"},
        {"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n", "v1 bad line end"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = strlen(cases[i].s);

        expect_bad_at(cases[i].s, n, n, cases[i].why);
    }
}

/* Neither signature starts with anything but 'P' or CR. */
static void
test_first_byte(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        unsigned char b = (unsigned char)c;
        struct pxy_header h;
        enum pxy_result r = parse(&b, 1, &h);

        if (c == 'P' || c == '\r') {
            assert_int_equal(r, PXY_INCOMPLETE);
        } else {
            assert_int_equal(r, PXY_BAD);
            assert_string_equal(h.why, "not a PROXY header");
        }
    }
}

/* ---- v2 ---- */

static void
test_v2_tcp4(void **state)
{
    struct v2 v;
    struct pxy_header h;

    (void)state;
    v2_tcp4(&v);
    v2_finish(&v);
    assert_int_equal(v.n, 28);
    expect_ok(v.b, v.n, &h);
    assert_int_equal(h.version, 2);
    assert_false(h.local);
    expect_addr(&h.src, AF_INET, "192.0.2.1", 56324);
    expect_addr(&h.dst, AF_INET, "198.51.100.2", 443);
}

static void
test_v2_tcp6(void **state)
{
    struct v2 v;
    struct pxy_header h;

    (void)state;
    v2_start(&v, 0x21, 0x21);
    v2_addrs(&v, AF_INET6, "2001:db8::1", "2001:db8::2", 65535, 0);
    v2_finish(&v);
    assert_int_equal(v.n, 52);
    expect_ok(v.b, v.n, &h);
    assert_int_equal(h.version, 2);
    assert_false(h.local);
    expect_addr(&h.src, AF_INET6, "2001:db8::1", 65535);
    expect_addr(&h.dst, AF_INET6, "2001:db8::2", 0);
}

/* LOCAL: the socket's own addresses, whatever the block holds. */
static void
test_v2_local(void **state)
{
    static const struct sockaddr_storage zero;
    struct v2 v;
    struct pxy_header h;

    (void)state;
    v2_start(&v, 0x20, 0x00);
    v2_finish(&v);
    expect_ok(v.b, v.n, &h);
    assert_int_equal(h.len, 16);
    assert_int_equal(h.version, 2);
    assert_true(h.local);
    assert_memory_equal(&h.src, &zero, sizeof(zero));

    v2_start(&v, 0x20, 0x21);
    v2_addrs(&v, AF_INET6, "2001:db8::1", "2001:db8::2", 1, 2);
    v2_finish(&v);
    expect_ok(v.b, v.n, &h);
    assert_true(h.local);
    assert_memory_equal(&h.src, &zero, sizeof(zero));
    assert_memory_equal(&h.dst, &zero, sizeof(zero));
}

/* PROXY with UNSPEC, UDP or UNIX: the spec's fallback, local. */
static void
test_v2_unspec_udp_unix(void **state)
{
    static const unsigned char fams[] = {0x00, 0x12, 0x22, 0x31, 0x32};
    static const size_t alens[] = {0, 12, 36, 216, 216};
    struct v2 v;
    struct pxy_header h;

    (void)state;
    for (size_t i = 0; i < sizeof(fams); i++) {
        unsigned char block[216];

        t_fill(block, sizeof(block), i);
        v2_start(&v, 0x21, fams[i]);
        v2_put(&v, block, alens[i]);
        v2_finish(&v);
        expect_ok(v.b, v.n, &h);
        assert_true(h.local);
        assert_int_equal(h.src.ss_family, 0);
    }
    /* An UNSPEC block holds no addresses: what follows must be TLVs. */
    v2_start(&v, 0x21, 0x00);
    v2_put(&v, "\x04\x00\x05", 3);
    v2_finish(&v);
    expect_bad_at(v.b, v.n, v.n, "v2 malformed TLV");
}

static void
test_v2_bad_version_command(void **state)
{
    static const unsigned char bad[] = {0x01, 0x11, 0x31, 0xF1,
                                        0x00, 0x22, 0x2F, 0x12};
    struct v2 v;

    (void)state;
    for (size_t i = 0; i < sizeof(bad); i++) {
        v2_tcp4(&v);
        v.b[12] = bad[i];
        v2_finish(&v);
        /* Known at byte 13. */
        expect_bad_at(v.b, v.n, 13, "v2 bad version/command");
    }
}

static void
test_v2_bad_family(void **state)
{
    static const unsigned char bad[] = {0x01, 0x02, 0x10, 0x13, 0x20,
                                        0x30, 0x33, 0x41, 0xFF};
    struct v2 v;

    (void)state;
    for (size_t i = 0; i < sizeof(bad); i++) {
        v2_tcp4(&v);
        v.b[13] = bad[i];
        v2_finish(&v);
        expect_bad_at(v.b, v.n, 14, "v2 bad family");
    }
}

/* A signature byte wrong anywhere is refused at that byte. */
static void
test_v2_bad_signature(void **state)
{
    struct v2 v;

    (void)state;
    for (size_t i = 1; i < 12; i++) {
        v2_tcp4(&v);
        v2_finish(&v);
        v.b[i] ^= 0x40;
        expect_bad_at(v.b, v.n, i + 1, "not a PROXY header");
    }
}

/* The length must hold the family's addresses, LOCAL or not. */
static void
test_v2_length_below_family(void **state)
{
    static const struct {
        unsigned char ver_cmd, fam;
        size_t need;
    } cases[] = {
        {0x21, 0x11, 12},  {0x21, 0x21, 36}, {0x21, 0x12, 12},
        {0x21, 0x31, 216}, {0x20, 0x11, 12}, {0x20, 0x21, 36},
    };
    unsigned char block[216];
    struct v2 v;
    struct pxy_header h;

    (void)state;
    memset(block, 0, sizeof(block));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        v2_start(&v, cases[i].ver_cmd, cases[i].fam);
        v2_put(&v, block, cases[i].need - 1);
        v2_finish(&v);
        /* Known from the length field, at byte 16. */
        expect_bad_at(v.b, v.n, 16, "v2 length beyond its frame");
        v2_put(&v, block, 1);
        v2_finish(&v);
        assert_int_equal(parse(v.b, v.n, &h), PXY_OK);
    }
}

static void
test_v2_length_limit(void **state)
{
    static unsigned char pad[PXY_V2_MAX];
    struct v2 v;
    struct pxy_header h;

    (void)state;
    /* Exactly PXY_V2_MAX: addresses and one NOOP TLV. */
    v2_tcp4(&v);
    v2_tlv(&v, 0x04, pad, PXY_V2_MAX - v.n - 3);
    v2_finish(&v);
    assert_int_equal(v.n, PXY_V2_MAX);
    expect_ok(v.b, v.n, &h);
    /* One more byte is refused as soon as the length field is in. */
    v2_put(&v, "", 1);
    v2_finish(&v);
    expect_bad_at(v.b, 16, 16, "v2 length beyond limit");
    /* And the largest length the field can say. */
    v.b[14] = v.b[15] = 0xFF;
    expect_bad_at(v.b, 16, 16, "v2 length beyond limit");
}

/* TLVs other than CRC32C are walked over, whatever their type. */
static void
test_v2_tlvs_skipped(void **state)
{
    static const unsigned char ssl[] = {0x01, 0, 0,   0,   0,  0x21,
                                        0,    3, 'T', 'L', 'S'};
    struct v2 v;
    struct pxy_header h;

    (void)state;
    v2_tcp4(&v);
    v2_tlv(&v, 0x01, "h2", 2);
    v2_tlv(&v, 0x02, "echo.example", 12);
    v2_tlv(&v, 0x04, "", 0);
    v2_tlv(&v, 0x20, ssl, sizeof(ssl));
    v2_tlv(&v, 0xE0, "\x00\x01\x02", 3);
    v2_tlv(&v, 0xFF, "\x03\x00\x04", 3); /* not a CRC TLV: inside a value */
    v2_finish(&v);
    expect_ok(v.b, v.n, &h);
    assert_int_equal(h.len, v.n);
    assert_false(h.local);
    expect_addr(&h.src, AF_INET, "192.0.2.1", 56324);
}

static void
test_v2_malformed_tlv(void **state)
{
    struct v2 v;

    (void)state;
    /* One or two bytes left: no room for a TLV's head. */
    for (size_t left = 1; left <= 2; left++) {
        v2_tcp4(&v);
        v2_put(&v, "\x04\x00", left);
        v2_finish(&v);
        expect_bad_at(v.b, v.n, v.n, "v2 malformed TLV");
    }
    /* A value longer than what is left of the header. */
    v2_tcp4(&v);
    v2_tlv(&v, 0x04, "abc", 3);
    v.b[v.n - 4] = 4;
    v2_finish(&v);
    expect_bad_at(v.b, v.n, v.n, "v2 malformed TLV");
    /* A CRC32C TLV of another size than 4. */
    v2_tcp4(&v);
    v2_tlv(&v, 0x03, "abc", 3);
    v2_finish(&v);
    expect_bad_at(v.b, v.n, v.n, "v2 malformed TLV");
    /* Two CRC32C TLVs. */
    v2_tcp4(&v);
    v2_crc_tlv(&v);
    v2_crc_tlv(&v);
    v2_finish(&v);
    expect_bad_at(v.b, v.n, v.n, "v2 malformed TLV");
}

static void
test_v2_crc32c(void **state)
{
    /* Built and checksummed outside echod (Python): TCP4 192.0.2.1:56324
     * to 198.51.100.2:443 with a CRC32C TLV, 0x20EC9549. */
    static const unsigned char fixed[] = {
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
        0x21, 0x11, 0x00, 0x13, 0xC0, 0x00, 0x02, 0x01, 0xC6, 0x33, 0x64, 0x02,
        0xDC, 0x04, 0x01, 0xBB, 0x03, 0x00, 0x04, 0x20, 0xEC, 0x95, 0x49};
    struct v2 v;
    struct pxy_header h;

    (void)state;
    expect_ok(fixed, sizeof(fixed), &h);
    expect_addr(&h.src, AF_INET, "192.0.2.1", 56324);

    /* The CRC TLV between others, and on a LOCAL header. */
    v2_start(&v, 0x21, 0x21);
    v2_addrs(&v, AF_INET6, "2001:db8::1", "2001:db8::2", 1, 2);
    v2_tlv(&v, 0x01, "h2", 2);
    v2_crc_tlv(&v);
    v2_tlv(&v, 0x05, "id-1234", 7);
    v2_finish(&v);
    expect_ok(v.b, v.n, &h);
    assert_false(h.local);
    v2_start(&v, 0x20, 0x00);
    v2_crc_tlv(&v);
    v2_finish(&v);
    expect_ok(v.b, v.n, &h);
    assert_true(h.local);

    /* Any bit changed anywhere in the header, checksum included. */
    v2_start(&v, 0x21, 0x11);
    v2_addrs(&v, AF_INET, "192.0.2.1", "198.51.100.2", 1, 2);
    v2_crc_tlv(&v);
    v2_tlv(&v, 0x04, "pad", 3);
    v2_finish(&v);
    for (size_t i = 16; i < v.n; i++) {
        struct v2 w = v;

        if ((i >= 28 && i < 31) || i == 36 || i == 37) {
            continue; /* TLV heads and lengths: other errors */
        }
        w.b[i] ^= 0x10;
        expect_bad_at(w.b, w.n, w.n, "v2 crc32c mismatch");
    }
    /* The value zeroed is not "no checksum". */
    memset(v.b + v.crc_at, 0, 4);
    expect_bad_at(v.b, v.n, v.n, "v2 crc32c mismatch");
}

/* ---- both ---- */

/* Whatever the answer, all of *out is written: nothing stale is left
 * from the caller's last use of it. */
static void
test_out_written(void **state)
{
    static const struct pxy_header zero;
    struct pxy_header h;

    (void)state;
    assert_int_equal(parse("PROXY TCP4", 10, &h), PXY_INCOMPLETE);
    assert_memory_equal(&h, &zero, sizeof(h));
    assert_int_equal(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", &h),
                     PXY_BAD);
    assert_string_equal(h.why, "v1 trailing data");
    h.why = NULL;
    assert_memory_equal(&h, &zero, sizeof(h));
}

/* The fuzz target's seeds say by their names what they are. */
static void
test_fuzz_seeds(void **state)
{
    const char *top = getenv("ECHOD_SRCDIR");
    char dir[512];
    struct dirent *e;
    DIR *d;
    int seen = 0;

    (void)state;
    snprintf(dir, sizeof(dir), "%s/fuzz/corpus/proxy", top != NULL ? top : ".");
    d = opendir(dir);
    if (d == NULL) {
        fail_msg("cannot open %s (run from the top of the source tree "
                 "or set ECHOD_SRCDIR)",
                 dir);
    }
    while ((e = readdir(d)) != NULL) {
        unsigned char buf[PXY_MAX + 256];
        char path[1024];
        struct pxy_header h;
        enum pxy_result want, r;
        size_t n;
        FILE *f;

        if (strncmp(e->d_name, "ok-", 3) == 0) {
            want = PXY_OK;
        } else if (strncmp(e->d_name, "bad-", 4) == 0) {
            want = PXY_BAD;
        } else if (strncmp(e->d_name, "part-", 5) == 0) {
            want = PXY_INCOMPLETE;
        } else {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        f = fopen(path, "rb");
        assert_non_null(f);
        n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        r = parse(buf, n, &h);
        if (r != want) {
            fail_msg("%s: %d, want %d (%s)", e->d_name, r, want,
                     h.why != NULL ? h.why : "-");
        }
        if (r == PXY_OK) {
            expect_ok(buf, h.len, &h);
        }
        seen++;
    }
    closedir(d);
    assert_true(seen >= 10);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_check_values),
        cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_tcp6),
        cmocka_unit_test(test_v1_unknown),
        cmocka_unit_test(test_v1_malformed),
        cmocka_unit_test(test_v1_too_long),
        cmocka_unit_test(test_v1_decided_early),
        cmocka_unit_test(test_first_byte),
        cmocka_unit_test(test_v2_tcp4),
        cmocka_unit_test(test_v2_tcp6),
        cmocka_unit_test(test_v2_local),
        cmocka_unit_test(test_v2_unspec_udp_unix),
        cmocka_unit_test(test_v2_bad_version_command),
        cmocka_unit_test(test_v2_bad_family),
        cmocka_unit_test(test_v2_bad_signature),
        cmocka_unit_test(test_v2_length_below_family),
        cmocka_unit_test(test_v2_length_limit),
        cmocka_unit_test(test_v2_tlvs_skipped),
        cmocka_unit_test(test_v2_malformed_tlv),
        cmocka_unit_test(test_v2_crc32c),
        cmocka_unit_test(test_out_written),
        cmocka_unit_test(test_fuzz_seeds),
    };

    t_deadline(60);
    return cmocka_run_group_tests_name("proxy", tests, NULL, NULL);
}
