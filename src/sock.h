/*
 * sock.h - socket option and address helpers.
 *
 * Thin wrappers: each returns what the syscall returns (-1 with errno set)
 * and never logs; the caller knows the context and logs.
 */
#ifndef ECHOD_SOCK_H
#define ECHOD_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* "[2001:db8::7]:50312" or "192.0.2.1:7"; fits every address and port. */
#define SOCK_NAME_MAX 64

/* Build a socket address from a numeric address and a port.
 * Returns 0, or -1 with errno = EINVAL if `addr` is not numeric. */
int sock_addr(const char *addr, int port, struct sockaddr_storage *ss,
              socklen_t *len);

/* The port of an AF_INET or AF_INET6 address, in host order. */
unsigned sock_port(const struct sockaddr *sa);

/* For AF_INET or an IPv4-mapped AF_INET6 address: true, with the IPv4
 * address in host order in *a. */
bool sock_ipv4(const struct sockaddr *sa, uint32_t *a);

/* Format an address as text (IPv6 in brackets). Always NUL-terminates. */
const char *sock_name(const struct sockaddr *sa, char *buf, size_t len);

/*
 * A nonblocking, close-on-exec socket of `type` (SOCK_STREAM: listening
 * with `backlog`; SOCK_DGRAM) bound to `sa`, with IPV6_V6ONLY = v6only
 * for IPv6, SO_REUSEADDR for TCP, and SO_REUSEPORT when asked (one
 * socket per worker: the kernel spreads flows over them). Returns the fd
 * or -1 with errno.
 */
int sock_bound(const struct sockaddr *sa, socklen_t len, int type, bool v6only,
               bool reuseport, int backlog);

/* Whether anything holds `sa` for `type`: bind a socket without
 * SO_REUSEPORT and close it. SO_REUSEPORT lets any process of the same
 * user join a port, so this keeps "port in use" an error instead of
 * silently sharing another program's traffic. Returns 0 or -1 with errno
 * (EADDRINUSE). */
int sock_probe(const struct sockaddr *sa, socklen_t len, int type, bool v6only);

/* Ask for each datagram's destination address (IP_PKTINFO, or
 * IPV6_RECVPKTINFO on an IPv6 socket, which also covers IPv4-mapped
 * traffic), so a reply can leave from the address the request went to. */
int sock_pktinfo(int fd, int family);

/* Disable Nagle: echo replies go out at once. */
int sock_nodelay(int fd);

/* O_NONBLOCK and FD_CLOEXEC on an inherited fd. */
int sock_nonblock_cloexec(int fd);

/* Raise RLIMIT_NOFILE's soft limit to the hard limit; returns the soft
 * limit now in force, which is the old one if raising it was refused (a
 * seccomp filter, say), or -1 with errno if it cannot even be read. */
long sock_fit_nofile(void);

#endif /* ECHOD_SOCK_H */
