/*
 * server.h - the control plane, on the main thread: the current
 * configuration snapshot, the bound-socket set, the workers, reload,
 * graceful shutdown, STATUS and the watchdog. One instance per process.
 *
 * main.c calls the steps in this order and undoes them in reverse:
 *   srv_init -> srv_open_sockets -> srv_drop_privileges ->
 *   srv_start_workers -> srv_run
 *   srv_stop_workers -> srv_close_sockets -> srv_fini
 * Each undo step is safe to call whether or not its step ran or failed.
 */
#ifndef ECHOD_SERVER_H
#define ECHOD_SERVER_H

#include <stdbool.h>

#include "config.h"

/* sysexits(3) codes used by echod. */
#define SRV_EX_OK 0
#define SRV_EX_USAGE 64
#define SRV_EX_OSERR 71
#define SRV_EX_CONFIG 78

struct srv_opts {
    const char *conf_path; /* reread on SIGHUP */
    bool debug;            /* -d: log_level debug, whatever the file says */
    bool foreground;       /* -f: also log to stderr */
};

/* The log level the configuration and -d ask for. */
int srv_log_level(const struct cfg *cfg, const struct srv_opts *opts);

/*
 * Each returns 0, or an exit code after logging why and telling the
 * service manager (STATUS=, ERRNO=).
 */
/* Signals, the main loop, the workers' loops (not running yet) and the
 * shared limits. Takes a copy of cfg, and with it its access lists
 * (srv_fini frees them: the caller must not cfg_fini its copy). */
int srv_init(const struct cfg *cfg, const struct srv_opts *opts);
/* Adopt the sockets the service manager passed, or bind the configured
 * ones (a socket per worker per entry), and size the limits. */
int srv_open_sockets(void);
/* Started as root with `user` set: become that user and group, with no
 * capabilities, before any worker starts (the sockets are bound by
 * now). Started as root without it, outside systemd: a warning. */
int srv_drop_privileges(void);
/* Start the workers, hand them their sockets, then READY=1. */
int srv_start_workers(void);

/* Serve until a graceful shutdown completes. Returns the exit code. */
int srv_run(void);

void srv_stop_workers(void);
void srv_close_sockets(void);
void srv_fini(void);

#endif /* ECHOD_SERVER_H */
