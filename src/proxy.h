/*
 * proxy.h - the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * versions 1 and 2) a load balancer may send before a client's bytes.
 *
 * A pure parser over a buffer: the engine peeks (recv MSG_PEEK) up to
 * PXY_MAX bytes, asks pxy_parse, and consumes nothing until it answers
 * PXY_OK, then exactly out->len bytes. It keeps no state between calls,
 * never allocates, never reads past len and never logs.
 *
 * The answer is decided as early as the bytes allow, and once decided it
 * stays: if buf[0..n) gives PXY_BAD or PXY_OK, every longer buffer that
 * starts with those n bytes gives the same answer (PXY_OK with the same
 * header, whose len is that n). PXY_INCOMPLETE means "a valid beginning
 * of a header", never with PXY_MAX bytes or more, so a peek of PXY_MAX
 * bytes always decides.
 */
#ifndef ECHOD_PROXY_H
#define ECHOD_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A v1 line, CRLF included, is at most this long (the spec's worst case:
 * "PROXY UNKNOWN" with two full IPv6 addresses and ports). */
#define PXY_V1_MAX 107

/*
 * A v2 header (16 fixed bytes, then the length they announce) is at most
 * this long, though the 16-bit length could say 65551. The spec aims at
 * one minimum TCP segment (536 bytes); what real senders add (authority
 * up to 255 bytes, a unique id up to 128, ALPN, an SSL block with
 * version, CN and algorithms, a CRC) comes to some 600 bytes with IPv6
 * addresses, and UNIX addresses take 216. 1024 bytes after the fixed part
 * holds all that with room to spare, and keeps what a peer may make the
 * engine peek, and parse again on each readable edge, small.
 */
#define PXY_V2_MAX (16 + 1024)

/* The most bytes pxy_parse ever needs: the size of the engine's peek. */
#define PXY_MAX PXY_V2_MAX

enum pxy_result {
    PXY_INCOMPLETE, /* a valid beginning: peek again when more arrives */
    PXY_OK,         /* a whole header; *out describes it */
    PXY_BAD,        /* no header can start like this; out->why says why */
};

struct pxy_header {
    size_t len;  /* PXY_OK: the header's bytes, to consume; else 0 */
    int version; /* PXY_OK: 1 or 2; else 0 */
    /* PXY_OK: use the socket's own addresses. v1 "PROXY UNKNOWN", the v2
     * LOCAL command, and v2 PROXY with a family echod does not take over
     * (UNSPEC, UDP, UNIX: the spec's fallback to UNSPEC). */
    bool local;
    /* PXY_OK and !local: the client (src) and the address it connected
     * to (dst), sockaddr_in or sockaddr_in6 with the port, both of one
     * family; else all zero. */
    struct sockaddr_storage src;
    struct sockaddr_storage dst;
    /* PXY_BAD: a short static reason for a log line ("v1 bad address",
     * "v2 crc32c mismatch", ...); else NULL. */
    const char *why;
};

/*
 * Parse the header at the start of buf[0..len). Writes all of *out
 * whatever the answer (see struct pxy_header). Bytes after a complete
 * header are not looked at: they are the client's.
 *
 * v1: "PROXY TCP4 SRC DST SPORT DPORT\r\n", TCP6 alike, or
 * "PROXY UNKNOWN" then anything up to CRLF. Single spaces, addresses that
 * inet_pton takes for the family, ports 0..65535 in decimal without a
 * sign or a leading zero, CRLF within PXY_V1_MAX bytes; a lone CR or LF
 * is an error. A field is checked character by character as it arrives
 * (a ':' in a TCP4 address is bad at once) and as a whole when its space
 * or CR arrives.
 * v2: the 12-byte signature, version 2 with command LOCAL or PROXY, a
 * family the spec defines, a length up to PXY_V2_MAX - 16 that holds the
 * family's addresses, each checked as soon as its byte arrives; then,
 * with the whole header, the TLVs after the addresses must tile the rest
 * exactly, and a PP2_TYPE_CRC32C one (at most one, 4 bytes) must match.
 */
enum pxy_result pxy_parse(const unsigned char *buf, size_t len,
                          struct pxy_header *out);

/*
 * CRC32C (Castagnoli, as in RFC 4960 appendix B) of buf[0..len), going on
 * from crc, the value of the bytes before (0 for none):
 * pxy_crc32c(pxy_crc32c(0, a, n), b, m) is the CRC of a then b, and
 * pxy_crc32c(0, "123456789", 9) == 0xE3069283.
 */
uint32_t pxy_crc32c(uint32_t crc, const void *buf, size_t len);

#endif /* ECHOD_PROXY_H */
