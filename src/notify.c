/*
 * notify.c - sd_notify messages and socket activation via libsystemd.
 *
 * Owns: every use of sd-daemon.h. Does nothing when not under systemd.
 * Failures to notify are ignored: the service manager judges us by what
 * arrives, and there is nobody else to tell.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

void
ntf_ready(const char *status)
{
    (void)sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void
ntf_reloading(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    (void)sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
                     (unsigned long long)ts.tv_sec * 1000000ULL +
                         (unsigned long long)ts.tv_nsec / 1000ULL);
}

void
ntf_stopping(const char *status, uint64_t drain_usec)
{
    (void)sd_notifyf(0, "STOPPING=1\nSTATUS=%s\nEXTEND_TIMEOUT_USEC=%llu",
                     status, (unsigned long long)drain_usec);
}

void
ntf_status(const char *status)
{
    (void)sd_notifyf(0, "STATUS=%s", status);
}

void
ntf_watchdog(void)
{
    (void)sd_notify(0, "WATCHDOG=1");
}

void
ntf_failed(int err, const char *status)
{
    (void)sd_notifyf(0, "STATUS=%s\nERRNO=%d", status, err);
}

uint64_t
ntf_watchdog_usec(void)
{
    uint64_t usec = 0;

    if (sd_watchdog_enabled(0, &usec) <= 0) {
        return 0;
    }
    return usec;
}

/* A UDP socket from the service manager is bound (it has a port): an
 * unbound one would get a random port no client knows. */
static bool
ntf_bound_udp(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    memset(&ss, 0, sizeof(ss));
    if (sd_is_socket_inet(fd, AF_UNSPEC, SOCK_DGRAM, -1, 0) <= 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        return false;
    }
    if (ss.ss_family == AF_INET) {
        return ((struct sockaddr_in *)(void *)&ss)->sin_port != 0;
    }
    return ((struct sockaddr_in6 *)(void *)&ss)->sin6_port != 0;
}

size_t
ntf_listen_fds(int *fds, bool *dgram, size_t max)
{
    char **names = NULL;
    size_t kept = 0;
    int n;

    n = sd_listen_fds_with_names(1, &names);
    if (n < 0) {
        log_warnx("ignoring inherited sockets: %s", strerror(-n));
        return 0;
    }
    for (int i = 0; i < n; i++) {
        int fd = SD_LISTEN_FDS_START + i;
        const char *name = names != NULL && names[i] ? names[i] : "?";

        bool tcp = sd_is_socket_inet(fd, AF_UNSPEC, SOCK_STREAM, 1, 0) > 0;
        bool udp = !tcp && ntf_bound_udp(fd);

        if (!tcp && !udp) {
            log_warnx("inherited fd %d (%s) is not a listening TCP socket "
                      "or a bound UDP socket; closing it", fd, name);
            close(fd);
        } else if (kept == max) {
            log_warnx("too many inherited sockets; closing fd %d (%s)", fd,
                      name);
            close(fd);
        } else {
            log_info("adopting inherited socket fd %d (%s)%s", fd, name,
                     udp ? ", UDP" : "");
            dgram[kept] = udp;
            fds[kept++] = fd;
        }
    }
    if (names != NULL) {
        for (int i = 0; i < n; i++) {
            free(names[i]);
        }
        free(names);
    }
    return kept;
}
