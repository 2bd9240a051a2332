/*
 * main.c - command line, exit codes, init order and the reverse fini order.
 * Never does socket I/O.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "notify.h"
#include "server.h"
#include "signals.h"

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: echod [-c FILE] [-t] [-f] [-d] [-V] [-h]\n"
            "RFC 862 echo daemon (TCP, and UDP where configured).\n"
            "\n"
            "  -c, --config FILE  configuration file (default %s)\n"
            "  -t, --test         check the configuration and exit\n"
            "  -f, --foreground   also log to stderr (echod never forks)\n"
            "  -d, --debug        log at debug level, whatever log_level says\n"
            "  -V, --version      print the version and exit\n"
            "  -h, --help         print this help and exit\n"
            "\n"
            "Signals: SIGHUP reloads the configuration; SIGTERM or SIGINT\n"
            "shut down gracefully (a second one closes everything at once).\n"
            "Exit codes: 0 ok, 64 usage error, 71 OS error at startup,\n"
            "78 configuration error.\n",
            ECHOD_CONF_PATH);
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"test", no_argument, NULL, 't'},
        {"foreground", no_argument, NULL, 'f'},
        {"debug", no_argument, NULL, 'd'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static struct cfg cfg; /* large: keep it off the stack */
    struct srv_opts opts = {ECHOD_CONF_PATH, false, false};
    char err[CFG_ERR_MAX];
    bool test = false;
    int ch, rc;

    while ((ch = getopt_long(argc, argv, "c:tfdVh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            opts.conf_path = optarg;
            break;
        case 't':
            test = true;
            break;
        case 'f':
            opts.foreground = true;
            break;
        case 'd':
            opts.debug = true;
            break;
        case 'V':
            printf("echod %s\n", ECHOD_VERSION);
            return SRV_EX_OK;
        case 'h':
            usage(stdout);
            return SRV_EX_OK;
        default:
            usage(stderr);
            return SRV_EX_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "echod: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        return SRV_EX_USAGE;
    }
    if (!test && sig_block() < 0) {
        perror("echod: blocking signals");
        return SRV_EX_OSERR;
    }
    if (cfg_load(&cfg, opts.conf_path, err, sizeof(err)) < 0) {
        int saved = errno;

        fprintf(stderr, "echod: %s\n", err);
        if (!test) {
            /* Under systemd this is all `systemctl status` will show. */
            char status[CFG_ERR_MAX + 32];

            snprintf(status, sizeof(status), "failed to start: %s", err);
            ntf_failed(saved, status);
        }
        return SRV_EX_CONFIG;
    }
    if (test) {
        printf("echod: %s: configuration OK\n", opts.conf_path);
        cfg_fini(&cfg);
        return SRV_EX_OK;
    }
    /* Init in this order, undone in the reverse order below; each undo
     * step is safe whether its step ran, failed or never started. */
    log_open(cfg.syslog_ident, (int)cfg.syslog_facility,
             srv_log_level(&cfg, &opts),
             opts.foreground || isatty(STDERR_FILENO));
    rc = srv_init(&cfg, &opts);
    if (rc == SRV_EX_OK) {
        rc = srv_open_sockets();
    }
    if (rc == SRV_EX_OK) {
        rc = srv_drop_privileges(); /* nothing to undo */
    }
    if (rc == SRV_EX_OK) {
        rc = srv_start_workers();
    }
    if (rc == SRV_EX_OK) {
        rc = srv_run();
    }
    srv_stop_workers();
    srv_close_sockets();
    srv_fini();
    log_close();
    return rc;
}
