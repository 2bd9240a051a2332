/*
 * proxy.c - the PROXY protocol header parser (see proxy.h for the
 * contract, HAProxy's doc/proxy-protocol.txt for the protocol).
 *
 * Owns: telling v1 from v2 by the first byte, checking every field of
 * either form, the v2 TLV walk and its CRC32C.
 * Never allocates, logs, keeps state or reads buf at or past len; never
 * looks past the header's last byte (the client's data follows it).
 * Invariant: a check fires at the first byte that can no longer belong to
 * a header, and a field's partial check is implied by its whole check, so
 * an answer other than PXY_INCOMPLETE, once given for n bytes, is given
 * again for every longer buffer (the fuzz target checks this).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy.h"

static const char pxy_v1_sig[] = "PROXY ";
#define PXY_V1_SIG_LEN (sizeof(pxy_v1_sig) - 1)

static const unsigned char pxy_v2_sig[] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                           0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
#define PXY_V2_FIXED 16 /* signature, ver_cmd, fam, 16-bit length */
#define PXY_V2_LOCAL 0x0
#define PXY_V2_PROXY 0x1
#define PXY_V2_TCP4 0x11
#define PXY_V2_TCP6 0x21
#define PXY_TLV_CRC32C 0x03
#define PXY_TLV_HEAD 3 /* type, 16-bit length */

/* The v1 line's protocols, in the order of pxy_v1_protos[]. */
enum pxy_v1_proto { PXY_V1_TCP4, PXY_V1_TCP6, PXY_V1_UNKNOWN, PXY_V1_NONE };

static const char *const pxy_v1_protos[] = {"TCP4", "TCP6", "UNKNOWN"};

_Static_assert(PXY_V1_MAX <= PXY_MAX, "PXY_MAX must cover a v1 line");
_Static_assert(PXY_V2_MAX <= PXY_V2_FIXED + 0xFFFF,
               "PXY_V2_MAX beyond what a 16-bit length can say");

/* ---- CRC32C ---- */

uint32_t
pxy_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    /* Reflected, polynomial 0x1EDC6F41 reversed. Bit by bit: a header is
     * checked once, and this needs no table in the binary. */
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

/* ---- v1: one text line ---- */

/* A field of the line: f[0..n), whole when its space or the line's end
 * has arrived, else only a beginning. */
struct pxy_field {
    const unsigned char *f;
    size_t n;
    bool whole;
};

static enum pxy_v1_proto
pxy_v1_proto(const struct pxy_field *fd)
{
    for (int i = PXY_V1_TCP4; i < PXY_V1_NONE; i++) {
        size_t n = strlen(pxy_v1_protos[i]);

        if (fd->n > n || (fd->whole && fd->n != n)) {
            continue;
        }
        if (memcmp(fd->f, pxy_v1_protos[i], fd->n) == 0) {
            return (enum pxy_v1_proto)i;
        }
    }
    return PXY_V1_NONE;
}

/* An address of the family: characters it may hold and a length it may
 * have as they arrive, inet_pton's word when whole. */
static bool
pxy_v1_addr(const struct pxy_field *fd, int family, void *addr)
{
    size_t max = family == AF_INET ? INET_ADDRSTRLEN - 1 : INET6_ADDRSTRLEN - 1;
    char text[INET6_ADDRSTRLEN];

    if (fd->n > max) {
        return false;
    }
    for (size_t i = 0; i < fd->n; i++) {
        unsigned char c = fd->f[i];
        bool ok = (c >= '0' && c <= '9') || c == '.';

        if (family == AF_INET6) {
            ok = ok || c == ':' || (c >= 'a' && c <= 'f') ||
                 (c >= 'A' && c <= 'F');
        }
        if (!ok) {
            return false;
        }
    }
    if (!fd->whole) {
        return true;
    }
    memcpy(text, fd->f, fd->n);
    text[fd->n] = '\0';
    return inet_pton(family, text, addr) == 1;
}

/* A port: decimal digits, no leading zero, at most 65535; more digits
 * only make a number larger, so a beginning already over is bad. */
static bool
pxy_v1_port(const struct pxy_field *fd, uint16_t *port)
{
    uint32_t v = 0;

    if (fd->n > 5 || (fd->n > 1 && fd->f[0] == '0') ||
        (fd->whole && fd->n == 0)) {
        return false;
    }
    for (size_t i = 0; i < fd->n; i++) {
        if (fd->f[i] < '0' || fd->f[i] > '9') {
            return false;
        }
        v = v * 10 + (uint32_t)(fd->f[i] - '0');
    }
    *port = (uint16_t)v;
    return v <= 65535;
}

/* The field at *pos (at most n) of line[0..n), which ended at n when
 * whole. A field is whole once a space follows it or the line has ended.
 * *pos moves past the space, or to n + 1 when the field ran to n. */
static struct pxy_field
pxy_v1_next(const unsigned char *line, size_t n, bool whole, size_t *pos)
{
    struct pxy_field fd = {.f = line + *pos};
    const unsigned char *sp = memchr(fd.f, ' ', n - *pos);

    fd.n = sp != NULL ? (size_t)(sp - fd.f) : n - *pos;
    fd.whole = sp != NULL || whole;
    *pos += fd.n + 1;
    return fd;
}

/* Put addresses and ports of the family into h. */
static void
pxy_set(struct pxy_header *h, int family, const void *src, const void *dst,
        const uint16_t port_be[2])
{
    if (family == AF_INET) {
        struct sockaddr_in s = {.sin_family = AF_INET};

        memcpy(&s.sin_addr, src, sizeof(s.sin_addr));
        s.sin_port = port_be[0];
        memcpy(&h->src, &s, sizeof(s));
        memcpy(&s.sin_addr, dst, sizeof(s.sin_addr));
        s.sin_port = port_be[1];
        memcpy(&h->dst, &s, sizeof(s));
    } else {
        struct sockaddr_in6 s = {.sin6_family = AF_INET6};

        memcpy(&s.sin6_addr, src, sizeof(s.sin6_addr));
        s.sin6_port = port_be[0];
        memcpy(&h->src, &s, sizeof(s));
        memcpy(&s.sin6_addr, dst, sizeof(s.sin6_addr));
        s.sin6_port = port_be[1];
        memcpy(&h->dst, &s, sizeof(s));
    }
}

/* The fields of line[0..n): NULL while they are a header or its
 * beginning (whole: the line ended at n), else what is wrong. Fills h's
 * addresses or local once they are all there. */
static const char *
pxy_v1_fields(const unsigned char *line, size_t n, bool whole,
              struct pxy_header *h)
{
    size_t pos = PXY_V1_SIG_LEN;
    unsigned char addr[2][sizeof(struct in6_addr)];
    uint16_t port[2];
    struct pxy_field fd;
    enum pxy_v1_proto proto;
    int family;

    if (memcmp(line, pxy_v1_sig, n < pos ? n : pos) != 0 ||
        (whole && n < pos)) {
        return "not a PROXY header";
    }
    if (n < pos) {
        return NULL;
    }
    fd = pxy_v1_next(line, n, whole, &pos);
    proto = pxy_v1_proto(&fd);
    if (proto == PXY_V1_NONE) {
        return "v1 bad protocol";
    }
    if (!fd.whole) {
        return NULL;
    }
    if (proto == PXY_V1_UNKNOWN) {
        /* The spec: ignore whatever follows, up to the CRLF. */
        h->local = true;
        return NULL;
    }
    family = proto == PXY_V1_TCP4 ? AF_INET : AF_INET6;
    for (int i = 0; i < 4; i++) {
        /* The line ended right after the previous field. */
        bool missing = pos > n;

        fd = missing ? (struct pxy_field){.f = line, .whole = true}
                     : pxy_v1_next(line, n, whole, &pos);
        if (i < 2 && !pxy_v1_addr(&fd, family, addr[i])) {
            return "v1 bad address";
        }
        if (i >= 2 && !pxy_v1_port(&fd, &port[i - 2])) {
            return "v1 bad port";
        }
        if (!fd.whole) {
            return NULL;
        }
        /* A space after the last port. */
        if (i == 3 && pos <= n) {
            return "v1 trailing data";
        }
    }
    port[0] = htons(port[0]);
    port[1] = htons(port[1]);
    pxy_set(h, family, addr[0], addr[1], port);
    return NULL;
}

static enum pxy_result
pxy_bad(struct pxy_header *h, const char *why)
{
    h->why = why;
    return PXY_BAD;
}

static enum pxy_result
pxy_v1(const unsigned char *buf, size_t len, struct pxy_header *h)
{
    size_t lim = len < PXY_V1_MAX ? len : PXY_V1_MAX;
    size_t eol = 0;
    const char *why;

    while (eol < lim && buf[eol] != '\r' && buf[eol] != '\n') {
        eol++;
    }
    why = pxy_v1_fields(buf, eol, eol < lim, h);
    if (why != NULL) {
        return pxy_bad(h, why);
    }
    if (eol == lim) {
        return len >= PXY_V1_MAX ? pxy_bad(h, "v1 line too long")
                                 : PXY_INCOMPLETE;
    }
    if (buf[eol] != '\r') {
        return pxy_bad(h, "v1 bad line end");
    }
    if (eol + 2 > PXY_V1_MAX) {
        return pxy_bad(h, "v1 line too long");
    }
    if (eol + 1 == len) {
        return PXY_INCOMPLETE;
    }
    if (buf[eol + 1] != '\n') {
        return pxy_bad(h, "v1 bad line end");
    }
    h->len = eol + 2;
    h->version = 1;
    return PXY_OK;
}

/* ---- v2: a binary header ---- */

static size_t
pxy_be16(const unsigned char *p)
{
    return (size_t)p[0] << 8 | p[1];
}

/* The bytes of the address block of a family byte, or SIZE_MAX for one
 * the spec does not define. UDP and UNIX are defined, then taken as
 * UNSPEC (local) by the caller, as the spec allows a receiver. */
static size_t
pxy_v2_addr_len(unsigned char fam)
{
    switch (fam) {
    case 0x00:
        return 0;
    case PXY_V2_TCP4:
    case 0x12:
        return 12;
    case PXY_V2_TCP6:
    case 0x22:
        return 36;
    case 0x31:
    case 0x32:
        return 216;
    default:
        return SIZE_MAX;
    }
}

/* The TLVs in buf[off..end) must tile it exactly. The one CRC32C TLV
 * allowed must hold the CRC of buf[0..end) with its own value zeroed.
 * NULL if all is well, else what is wrong. */
static const char *
pxy_v2_tlvs(const unsigned char *buf, size_t off, size_t end)
{
    static const unsigned char zero[4];
    size_t crc_at = 0; /* 0: none (a TLV value never starts at 0) */
    uint32_t crc;

    while (off < end) {
        size_t vlen;

        if (end - off < PXY_TLV_HEAD) {
            return "v2 malformed TLV";
        }
        vlen = pxy_be16(buf + off + 1);
        if (end - off - PXY_TLV_HEAD < vlen) {
            return "v2 malformed TLV";
        }
        if (buf[off] == PXY_TLV_CRC32C) {
            /* Two would leave "the" checksum field ambiguous. */
            if (vlen != 4 || crc_at != 0) {
                return "v2 malformed TLV";
            }
            crc_at = off + PXY_TLV_HEAD;
        }
        off += PXY_TLV_HEAD + vlen;
    }
    if (crc_at == 0) {
        return NULL;
    }
    crc = pxy_crc32c(0, buf, crc_at);
    crc = pxy_crc32c(crc, zero, sizeof(zero));
    crc = pxy_crc32c(crc, buf + crc_at + 4, end - crc_at - 4);
    if (crc != ((uint32_t)pxy_be16(buf + crc_at) << 16 |
                (uint32_t)pxy_be16(buf + crc_at + 2))) {
        return "v2 crc32c mismatch";
    }
    return NULL;
}

static enum pxy_result
pxy_v2(const unsigned char *buf, size_t len, struct pxy_header *h)
{
    size_t sig = len < sizeof(pxy_v2_sig) ? len : sizeof(pxy_v2_sig);
    size_t alen, total;
    const char *why;
    unsigned cmd;

    /* Each fixed field is judged as soon as its byte is in. */
    if (memcmp(buf, pxy_v2_sig, sig) != 0) {
        return pxy_bad(h, "not a PROXY header");
    }
    if (len <= sizeof(pxy_v2_sig)) {
        return PXY_INCOMPLETE;
    }
    cmd = buf[12] & 0x0Fu;
    if (buf[12] >> 4 != 2 || (cmd != PXY_V2_LOCAL && cmd != PXY_V2_PROXY)) {
        return pxy_bad(h, "v2 bad version/command");
    }
    if (len < 14) {
        return PXY_INCOMPLETE;
    }
    alen = pxy_v2_addr_len(buf[13]);
    if (alen == SIZE_MAX) {
        return pxy_bad(h, "v2 bad family");
    }
    if (len < PXY_V2_FIXED) {
        return PXY_INCOMPLETE;
    }
    total = PXY_V2_FIXED + pxy_be16(buf + 14);
    if (total > PXY_V2_MAX) {
        return pxy_bad(h, "v2 length beyond limit");
    }
    /* LOCAL ignores the addresses, but a block that says it holds them
     * and does not is a broken header either way. */
    if (total - PXY_V2_FIXED < alen) {
        return pxy_bad(h, "v2 length beyond its frame");
    }
    if (len < total) {
        return PXY_INCOMPLETE;
    }
    why = pxy_v2_tlvs(buf, PXY_V2_FIXED + alen, total);
    if (why != NULL) {
        return pxy_bad(h, why);
    }
    h->len = total;
    h->version = 2;
    if (cmd == PXY_V2_LOCAL ||
        (buf[13] != PXY_V2_TCP4 && buf[13] != PXY_V2_TCP6)) {
        h->local = true;
    } else {
        const unsigned char *a = buf + PXY_V2_FIXED;
        size_t w = buf[13] == PXY_V2_TCP4 ? 4 : 16;
        uint16_t port[2];

        /* Ports stay in network order, as sockaddr wants them. */
        memcpy(port, a + 2 * w, sizeof(port));
        pxy_set(h, buf[13] == PXY_V2_TCP4 ? AF_INET : AF_INET6, a, a + w, port);
    }
    return PXY_OK;
}

enum pxy_result
pxy_parse(const unsigned char *buf, size_t len, struct pxy_header *out)
{
    struct pxy_header h;
    enum pxy_result r;

    memset(&h, 0, sizeof(h));
    if (len == 0) {
        r = PXY_INCOMPLETE;
    } else if (buf[0] == (unsigned char)pxy_v1_sig[0]) {
        r = pxy_v1(buf, len, &h);
    } else if (buf[0] == pxy_v2_sig[0]) {
        r = pxy_v2(buf, len, &h);
    } else {
        r = pxy_bad(&h, "not a PROXY header");
    }
    memset(out, 0, sizeof(*out));
    if (r == PXY_OK) {
        *out = h;
    } else if (r == PXY_BAD) {
        out->why = h.why;
    }
    return r;
}
