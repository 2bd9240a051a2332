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
#include <sys/socket.h>

/* "[2001:db8::7]:50312" or "192.0.2.1:7"; fits every address and port. */
#define SOCK_NAME_MAX 64

/* Build a socket address from a numeric address and a port.
 * Returns 0, or -1 with errno = EINVAL if `addr` is not numeric. */
int sock_addr(const char *addr, int port, struct sockaddr_storage *ss,
              socklen_t *len);

/* Format an address as text (IPv6 in brackets). Always NUL-terminates. */
const char *sock_name(const struct sockaddr *sa, char *buf, size_t len);

/* A nonblocking, close-on-exec listening TCP socket bound to `sa` with
 * SO_REUSEADDR (and IPV6_V6ONLY = v6only for IPv6). Returns the fd or -1. */
int sock_listen(const struct sockaddr *sa, socklen_t len, bool v6only,
                int backlog);

/* Disable Nagle: echo replies go out at once. */
int sock_nodelay(int fd);

/* O_NONBLOCK and FD_CLOEXEC on an inherited fd. */
int sock_nonblock_cloexec(int fd);

/* Raise RLIMIT_NOFILE's soft limit to the hard limit; returns the soft
 * limit now in force, which is the old one if raising it was refused (a
 * seccomp filter, say), or -1 with errno if it cannot even be read. */
long sock_fit_nofile(void);

#endif /* ECHOD_SOCK_H */
