/*
 * sock.c - socket options and address helpers. No logging, no state.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "sock.h"

int
sock_addr(const char *addr, int port, struct sockaddr_storage *ss,
          socklen_t *len)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;

    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof(*sin);
        return 0;
    }
    if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*sin6);
        return 0;
    }
    errno = EINVAL;
    return -1;
}

unsigned
sock_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
    }
    return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
}

bool
sock_ipv4(const struct sockaddr *sa, uint32_t *a)
{
    const struct sockaddr_in6 *sin6 = (const void *)sa;
    uint32_t be;

    if (sa->sa_family == AF_INET) {
        *a = ntohl(
            ((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr);
        return true;
    }
    if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
        memcpy(&be, &sin6->sin6_addr.s6_addr[12], sizeof(be));
        *a = ntohl(be);
        return true;
    }
    return false;
}

const char *
sock_name(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const void *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const void *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
    } else {
        snprintf(buf, len, "(family %d)", sa->sa_family);
    }
    return buf;
}

/* Options every bound socket of echod shares, set before bind(). */
static int
sock_prepare(int fd, const struct sockaddr *sa, int type, bool v6only,
             bool reuseport)
{
    int one = 1;
    int v6 = v6only ? 1 : 0;

    /* TCP only: a restart must not wait for TIME_WAIT. For UDP it would
     * let any process bind the port and take a share of the datagrams. */
    if (type == SOCK_STREAM &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0) {
        return -1;
    }
    if (reuseport &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        return -1;
    }
    if (sa->sa_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof(v6)) < 0) {
        return -1;
    }
    return 0;
}

int
sock_bound(const struct sockaddr *sa, socklen_t len, int type, bool v6only,
           bool reuseport, int backlog)
{
    int fd, saved;

    fd = socket(sa->sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    if (sock_prepare(fd, sa, type, v6only, reuseport) < 0 ||
        bind(fd, sa, len) < 0 ||
        (type == SOCK_STREAM && listen(fd, backlog) < 0)) {
        saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int
sock_probe(const struct sockaddr *sa, socklen_t len, int type, bool v6only)
{
    int fd = sock_bound(sa, len, type, v6only, false, 1);

    if (fd < 0) {
        return -1;
    }
    close(fd);
    return 0;
}

int
sock_pktinfo(int fd, int family)
{
    int one = 1;

    if (family == AF_INET6) {
        return setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one,
                          sizeof(one));
    }
    return setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
}

int
sock_nodelay(int fd)
{
    int one = 1;

    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int
sock_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        return -1;
    }
    fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0) {
        return -1;
    }
    return 0;
}

long
sock_fit_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        return -1;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            rl.rlim_cur = old; /* keep what we have; the caller fits to it */
        }
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)1 << 30) {
        return 1L << 30;
    }
    return (long)rl.rlim_cur;
}
