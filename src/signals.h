/*
 * signals.h - signals arrive through a signalfd read by the loop; no work
 * is ever done in a signal handler. Policy (what a signal means) belongs
 * to the server.
 */
#ifndef ECHOD_SIGNALS_H
#define ECHOD_SIGNALS_H

/* Block SIGTERM, SIGINT and SIGHUP, ignore SIGPIPE, and return a
 * nonblocking, close-on-exec signalfd for the blocked set (-1 + errno). */
int sig_init(void);

/* The next pending signal number, 0 when none is left, -1 on error. */
int sig_next(int fd);

#endif /* ECHOD_SIGNALS_H */
