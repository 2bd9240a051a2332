/*
 * notify.h - the service manager protocol (sd_notify) and socket
 * activation. The only module that includes sd-daemon.h. When echod is
 * not run by systemd (no NOTIFY_SOCKET, no LISTEN_FDS) every call does
 * nothing, so echod and its tests behave the same either way.
 */
#ifndef ECHOD_NOTIFY_H
#define ECHOD_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* READY=1 with a STATUS= line. */
void ntf_ready(const char *status);
/* RELOADING=1 with MONOTONIC_USEC= (now). */
void ntf_reloading(void);
/* STOPPING=1 with a STATUS= line, and EXTEND_TIMEOUT_USEC= so that a
 * drain longer than the unit's TimeoutStopSec= is not cut short (it
 * only ever extends the stop timeout). */
void ntf_stopping(const char *status, uint64_t drain_usec);
/* STATUS= and WATCHDOG=1 never block (a full manager queue drops them);
 * ntf_status returns false when the line was not sent, so the caller can
 * send it again later. */
bool ntf_status(const char *status);
void ntf_watchdog(void);
/* Startup failed: STATUS= and ERRNO=. */
void ntf_failed(int err, const char *status);

/* The watchdog interval in microseconds, or 0 when not enabled for us. */
uint64_t ntf_watchdog_usec(void);

/*
 * Inherited sockets (LISTEN_FDS for our PID). Each is checked to be a
 * listening TCP socket or a bound UDP socket (ListenDatagram=); others
 * are closed and logged. Stores up to max fds in fds[], with dgram[i]
 * true for a UDP socket, and returns how many, 0 if not socket-activated.
 */
size_t ntf_listen_fds(int *fds, bool *dgram, size_t max);

#endif /* ECHOD_NOTIFY_H */
