/*
 * config.c - the key table, defaults, load and validate.
 *
 * Owns: parsing /etc/echod.conf with libconfig into a fresh struct cfg.
 * Never touches live state: the caller decides what to do with a result.
 * Errors name the file and line of the offending setting, the key, and
 * what was expected; integers are read as 64-bit and range-checked before
 * they are stored, and a float, string or bool where an integer belongs is
 * an error, never a conversion.
 */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "acl.h"
#include "cfgtext.h"
#include "config.h"
#include "keyfile.h"
#include "log.h"
#include "priv.h"

#define CFG_OFF(f) offsetof(struct cfg, f)
#define CFG_LOFF(f) offsetof(struct cfg_listen, f)
#define CFG_MIB ((int64_t)1024 * 1024)

/*
 * Every row says, by name, each column that matters for it: .required and
 * .reload always, so that a new key makes its author decide both. A row
 * that leaves .reload out is caught by test_config.
 */
/* A UDP reply limit: the top-level key, and the same key inside a listen
 * entry, which gives the entry buckets of its own (cfg_resolve_limits);
 * one default and one range for both. */
#define CFG_UDP_LIMIT(key, dflt, lo, hi, text)                                \
    {.name = #key,                                                            \
     .type = CFG_INT,                                                         \
     .scope = CFG_TOP,                                                        \
     .off = CFG_OFF(key),                                                     \
     .def = (dflt),                                                           \
     .min = (lo),                                                             \
     .max = (hi),                                                             \
     .required = false,                                                       \
     .reload = CFG_RELOAD,                                                    \
     .doc = (text)},                                                          \
    {                                                                         \
        .name = #key, .type = CFG_INT, .scope = CFG_ITEM,                     \
        .off = CFG_LOFF(key), .def = (dflt), .min = (lo), .max = (hi),        \
        .required = false, .reload = CFG_RELOAD,                              \
        .doc = "For this listen entry alone: replaces the top-level " #key    \
               "."                                                            \
    }

const struct cfg_key cfg_keys[] = {
    {.name = "listen",
     .type = CFG_LISTEN,
     .scope = CFG_TOP,
     .min = 0,
     .max = CFG_MAX_LISTEN,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "Listening sockets: a list of { address; port; ipv6_only; "
            "protocol; allow; deny; proxy_from; } groups."},
    {.name = "address",
     .type = CFG_STRING,
     .scope = CFG_ITEM,
     .off = CFG_LOFF(address),
     .def_str = NULL,
     .min = 1,
     .max = CFG_ADDR_MAX - 1,
     .required = true,
     .reload = CFG_RELOAD,
     .doc = "Numeric IPv4 or IPv6 address to bind (\"0.0.0.0\" or \"::\" "
            "for all)."},
    {.name = "port",
     .type = CFG_INT,
     .scope = CFG_ITEM,
     .off = CFG_LOFF(port),
     .def = 7,
     .min = 1,
     .max = 65535,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "TCP or UDP port to bind."},
    {.name = "ipv6_only",
     .type = CFG_BOOL,
     .scope = CFG_ITEM,
     .off = CFG_LOFF(ipv6_only),
     .def = 1,
     .min = 0,
     .max = 1,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "For an IPv6 address: accept IPv6 only (IPV6_V6ONLY)."},
    /* A restart: each worker owns its loop, connections and SO_REUSEPORT
     * sockets, and nothing moves from one thread to another. */
    {.name = "workers",
     .type = CFG_INT_AUTO,
     .scope = CFG_TOP,
     .off = CFG_OFF(workers),
     .def = CFG_WORKERS_AUTO,
     .min = 1,
     .max = CFG_WORKERS_MAX,
     .required = false,
     .reload = CFG_RESTART,
     .doc = "Worker threads, each with its own event loop and "
            "SO_REUSEPORT sockets; \"auto\" = one per CPU."},
    {.name = "max_connections",
     .type = CFG_INT,
     .scope = CFG_TOP,
     .off = CFG_OFF(max_connections),
     .def = 10000,
     .min = 1,
     .max = 1048576,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "Concurrent TCP connections; beyond it, accept and close at "
            "once."},
    {.name = "max_connections_per_source",
     .type = CFG_INT,
     .scope = CFG_TOP,
     .off = CFG_OFF(max_connections_per_source),
     .def = 64,
     .min = 0,
     .max = 1048576,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "Concurrent connections from one source; beyond it, accept "
            "and close at once; 0 = no limit."},
    {.name = "source_prefix_ipv4",
     .type = CFG_INT,
     .scope = CFG_TOP,
     .off = CFG_OFF(source_prefix_ipv4),
     .def = 32,
     .min = 1,
     .max = 32,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "IPv4 prefix length that makes one source (32 = one "
            "address)."},
    {.name = "source_prefix_ipv6",
     .type = CFG_INT,
     .scope = CFG_TOP,
     .off = CFG_OFF(source_prefix_ipv6),
     .def = 64,
     .min = 1,
     .max = 128,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "IPv6 prefix length that makes one source (64 = one "
            "subnet)."},
    /* Who may connect: lists of prefixes (acl.h), kept outside struct
     * cfg and owned by it (cfg_fini). A listen entry that sets allow or
     * deny replaces both top-level lists for that entry. */
    {.name = "allow",
     .type = CFG_CIDRS,
     .scope = CFG_TOP,
     .off = CFG_OFF(allow),
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "Client addresses or prefixes served (\"192.0.2.0/24\", "
            "\"2001:db8::/32\"); empty = every client."},
    {.name = "deny",
     .type = CFG_CIDRS,
     .scope = CFG_TOP,
     .off = CFG_OFF(deny),
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "Client addresses or prefixes refused, whatever allow says; "
            "empty = none."},
    {.name = "allow",
     .type = CFG_CIDRS,
     .scope = CFG_ITEM,
     .off = CFG_LOFF(allow),
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "allow for this listen entry; with it or deny, the entry's "
            "own lists replace both top-level ones."},
    {.name = "deny",
     .type = CFG_CIDRS,
     .scope = CFG_ITEM,
     .off = CFG_LOFF(deny),
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "deny for this listen entry; with it or allow, the entry's "
            "own lists replace both top-level ones."},
    {.name = "proxy_from",
     .type = CFG_CIDRS,
     .scope = CFG_ITEM,
     .off = CFG_LOFF(proxy_from),
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "With proxy_protocol: the addresses or prefixes of the proxies "
            "that may connect (required)."},
    {.name = "proxy_protocol",
     .type = CFG_BOOL,
     .scope = CFG_ITEM,
     .off = CFG_LOFF(proxy_protocol),
     .def = 0,
     .min = 0,
     .max = 1,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "TCP: each connection starts with a PROXY protocol header (v1 "
            "or v2) naming the client."},
    {.name = "service",
     .type = CFG_STRING,
     .scope = CFG_ITEM,
     .off = CFG_LOFF(service),
     .def_str = "echo",
     .min = 1,
     .max = CFG_SERVICE_MAX - 1,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "What a listen entry serves: \"echo\", \"discard\" (RFC 863: "
            "read and count, answer nothing), or \"metrics\" (TCP: "
            "Prometheus metrics at GET /metrics)."},
    {.name = "proxy_timeout",
     .type = CFG_INT,
     .scope = CFG_ITEM,
     .off = CFG_LOFF(proxy_timeout),
     .def = 5,
     .min = 1,
     .max = 3600,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "Seconds a PROXY header may take to arrive in full."},
    {.name = "idle_timeout",
     .type = CFG_INT,
     .scope = CFG_TOP,
     .off = CFG_OFF(idle_timeout),
     .def = 300,
     .min = 0,
     .max = 86400,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "Seconds without progress before a connection is closed; "
            "0 = off."},
    {.name = "output_high_watermark",
     .type = CFG_INT,
     .scope = CFG_TOP,
     .off = CFG_OFF(output_high_watermark),
     .def = 65536,
     .min = 4096,
     .max = 64 * CFG_MIB,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "Queued output bytes per connection at which echod stops "
            "reading it."},
    {.name = "output_low_watermark",
     .type = CFG_INT,
     .scope = CFG_TOP,
     .off = CFG_OFF(output_low_watermark),
     .def = 16384,
     .min = 0,
     .max = 64 * CFG_MIB,
     .required = false,
     .reload = CFG_RELOAD,
     .below = "output_high_watermark",
     .doc = "Queued output bytes at or below which reading resumes."},
    {.name = "shutdown_timeout",
     .type = CFG_INT,
     .scope = CFG_TOP,
     .off = CFG_OFF(shutdown_timeout),
     .def = 5,
     .min = 0,
     .max = 3600,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "Seconds to let queued output drain on SIGTERM."},
    /* Reloadable: a new value applies to listeners bound from then on. */
    {.name = "listen_backlog",
     .type = CFG_INT,
     .scope = CFG_TOP,
     .off = CFG_OFF(listen_backlog),
     .def = 1024,
     .min = 1,
     .max = 65535,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "listen(2) backlog (the kernel caps it at somaxconn)."},
    {.name = "log_level",
     .type = CFG_LEVEL,
     .scope = CFG_TOP,
     .off = CFG_OFF(log_level),
     .def = LOG_INFO,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "Lowest syslog(3) level logged, by its name."},
    {.name = "syslog_facility",
     .type = CFG_FACILITY,
     .scope = CFG_TOP,
     .off = CFG_OFF(syslog_facility),
     .def = LOG_DAEMON,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "syslog(3) facility, by its name."},
    /* Privilege drop outside systemd: a restart, since root is gone
     * once dropped and cannot be taken back to apply a new user. */
    {.name = "user",
     .type = CFG_STRING,
     .scope = CFG_TOP,
     .off = CFG_OFF(user),
     .def_str = "",
     .min = 0,
     .max = CFG_NAME_MAX - 1,
     .required = false,
     .reload = CFG_RESTART,
     .exists = priv_user_exists,
     .what = "user",
     .doc = "Started as root: the user to become once every socket is bound "
            "(\"\" = stay)."},
    {.name = "group",
     .type = CFG_STRING,
     .scope = CFG_TOP,
     .off = CFG_OFF(group),
     .def_str = "",
     .min = 0,
     .max = CFG_NAME_MAX - 1,
     .required = false,
     .reload = CFG_RESTART,
     .exists = priv_group_exists,
     .what = "group",
     .doc = "The group to become with user (\"\" = the user's primary "
            "group)."},
    {.name = "control_socket",
     .type = CFG_STRING,
     .scope = CFG_TOP,
     .off = CFG_OFF(control_socket),
     .def_str = CFG_CONTROL_DEFAULT,
     .min = 0,
     .max = CFG_PATH_MAX - 1,
     .required = false,
     .reload = CFG_RESTART,
     .doc = "UNIX socket echodctl reads (mode 0660, \"\" = none)."},
    {.name = "syslog_ident",
     .type = CFG_STRING,
     .scope = CFG_TOP,
     .off = CFG_OFF(syslog_ident),
     .def_str = "echod",
     .min = 1,
     .max = CFG_IDENT_MAX - 1,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "syslog identity (the tag in front of each line)."},
    /* UDP (RFC 862 section 2): opt-in per listen entry, rate-limited so
     * that spoofed requests cannot turn echod into a reflector. */
    {.name = "protocol",
     .type = CFG_PROTOCOL,
     .scope = CFG_ITEM,
     .off = CFG_LOFF(protocol),
     .def = CFG_PROTO_TCP,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "Transport of a listen entry: \"tcp\" or \"udp\"."},
    CFG_UDP_LIMIT(udp_rate_limit, 1000, 1, 1000000,
                  "UDP replies per second, all sources together."),
    CFG_UDP_LIMIT(udp_rate_burst, 200, 1, 1000000,
                  "UDP replies allowed at once above udp_rate_limit."),
    /* Bytes as well as replies: 1000 replies of 65507 bytes would be 524
     * Mbit/s. No burst key: the burst is one second's worth, at least one
     * largest datagram (udp.c, udp_byte_burst). */
    CFG_UDP_LIMIT(udp_rate_limit_bytes, 1250000, 0, 1000000000,
                  "Bytes of UDP replies per second, all sources together; "
                  "0 = no byte limit."),
    CFG_UDP_LIMIT(udp_per_source_rate, 20, 1, 1000000,
                  "UDP replies per second to one source (IPv4 address, IPv6 "
                  "/64)."),
    CFG_UDP_LIMIT(udp_per_source_burst, 40, 1, 1000000,
                  "UDP replies allowed at once to one source."),
    CFG_UDP_LIMIT(udp_per_source_rate_bytes, 125000, 0, 1000000000,
                  "Bytes of UDP replies per second to one source; 0 = no byte "
                  "limit."),
    /* STAMP (RFC 8762, RFC 8972): service = "stamp", UDP. */
    {.name = "stamp_mode",
     .type = CFG_STRING,
     .scope = CFG_ITEM,
     .off = CFG_LOFF(stamp_mode),
     .def_str = "stateless",
     .min = 1,
     .max = CFG_SERVICE_MAX - 1,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "STAMP: \"stateless\" (reflect the sender's sequence "
            "numbers) or \"stateful\" (count per session)."},
    {.name = "stamp_key_file",
     .type = CFG_STRING,
     .scope = CFG_ITEM,
     .off = CFG_LOFF(stamp_key_file),
     .def_str = "",
     .min = 0,
     .max = CFG_PATH_MAX - 1,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "STAMP: a file with the HMAC key in hex (authenticated mode); "
            "\"\" = unauthenticated."},
    {.name = "stamp_reply_low_ports",
     .type = CFG_BOOL,
     .scope = CFG_ITEM,
     .off = CFG_LOFF(stamp_reply_low_ports),
     .def = 0,
     .min = 0,
     .max = 1,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "STAMP: also answer senders on ports below 1024 (and the "
            "other loop-guarded ports)."},
    {.name = "stamp_timestamp",
     .type = CFG_STRING,
     .scope = CFG_ITEM,
     .off = CFG_LOFF(stamp_timestamp),
     .def_str = "ntp",
     .min = 1,
     .max = CFG_SERVICE_MAX - 1,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "STAMP: the format of the reply's timestamps, \"ntp\" (64-bit "
            "NTP) or \"ptp\" (PTPv2 truncated, TAI)."},
    {.name = "stamp_honour_dscp",
     .type = CFG_BOOL,
     .scope = CFG_ITEM,
     .off = CFG_LOFF(stamp_honour_dscp),
     .def = 0,
     .min = 0,
     .max = 1,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "STAMP: send a reply with the DSCP its Class of Service TLV "
            "asks for (else the DSCP the request came with)."},
    {.name = "stamp_busy_poll",
     .type = CFG_INT,
     .scope = CFG_ITEM,
     .off = CFG_LOFF(stamp_busy_poll),
     .def = 0,
     .min = 0,
     .max = 10000,
     .required = false,
     .reload = CFG_RELOAD,
     .doc = "STAMP: microseconds a worker keeps polling, without sleeping, "
            "after answering a test packet (0 = off): a lower residence "
            "time for CPU."},
    {.name = NULL},
};

/* Every item key at its table default (proxy_timeout too, though these
 * entries have no proxy_protocol): the fuzzer holds them to the ranges. */
const struct cfg_listen cfg_default_listen[] = {
    {.address = "0.0.0.0",
     .service = "echo",
     .port = 7,
     .ipv6_only = true,
     .protocol = CFG_PROTO_TCP,
     .proxy_timeout = 5,
     .stamp_mode = "stateless",
     .stamp_timestamp = "ntp",
     .udp_rate_limit = 1000,
     .udp_rate_burst = 200,
     .udp_rate_limit_bytes = 1250000,
     .udp_per_source_rate = 20,
     .udp_per_source_burst = 40,
     .udp_per_source_rate_bytes = 125000},
    {.address = "::",
     .service = "echo",
     .port = 7,
     .ipv6_only = true,
     .protocol = CFG_PROTO_TCP,
     .proxy_timeout = 5,
     .stamp_mode = "stateless",
     .stamp_timestamp = "ntp",
     .udp_rate_limit = 1000,
     .udp_rate_burst = 200,
     .udp_rate_limit_bytes = 1250000,
     .udp_per_source_rate = 20,
     .udp_per_source_burst = 40,
     .udp_per_source_rate_bytes = 125000},
};

static const char *const cfg_proto_names[] = {
    [CFG_PROTO_TCP] = "tcp",
    [CFG_PROTO_UDP] = "udp",
};
#define CFG_N_PROTO (sizeof(cfg_proto_names) / sizeof(cfg_proto_names[0]))

static const char *const cfg_service_names[] = {
    [CFG_SVC_ECHO] = "echo",
    [CFG_SVC_DISCARD] = "discard",
    [CFG_SVC_METRICS] = "metrics",
    [CFG_SVC_STAMP] = "stamp",
};
#define CFG_N_SERVICE (sizeof(cfg_service_names) / sizeof(cfg_service_names[0]))

/* The index of name in names[0..n), or -1. */
static int
cfg_name_index(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(name, names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *
cfg_proto_name(int64_t proto)
{
    return proto >= 0 && (size_t)proto < CFG_N_PROTO ? cfg_proto_names[proto]
                                                     : "?";
}

static int
cfg_proto_from_name(const char *name)
{
    return cfg_name_index(cfg_proto_names, CFG_N_PROTO, name);
}
const size_t cfg_n_default_listen =
    sizeof(cfg_default_listen) / sizeof(cfg_default_listen[0]);

static int64_t *
cfg_int_field(void *base, const struct cfg_key *k)
{
    return (int64_t *)(void *)((char *)base + k->off);
}

static struct acl **
cfg_acl_field(void *base, const struct cfg_key *k)
{
    return (struct acl **)(void *)((char *)base + k->off);
}

static void
cfg_key_default(void *base, const struct cfg_key *k)
{
    switch (k->type) {
    case CFG_INT:
    case CFG_INT_AUTO:
    case CFG_LEVEL:
    case CFG_FACILITY:
    case CFG_PROTOCOL:
        *cfg_int_field(base, k) = k->def;
        break;
    case CFG_BOOL:
        *(bool *)((char *)base + k->off) = k->def != 0;
        break;
    case CFG_STRING:
        snprintf((char *)base + k->off, (size_t)k->max + 1, "%s",
                 k->def_str != NULL ? k->def_str : "");
        break;
    case CFG_CIDRS:
        *cfg_acl_field(base, k) = NULL; /* empty; frees nothing */
        break;
    case CFG_LISTEN:
        break;
    }
}

void
cfg_defaults(struct cfg *c)
{
    memset(c, 0, sizeof(*c));
    for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++) {
        if (k->scope == CFG_TOP) {
            cfg_key_default(c, k);
        }
    }
    memcpy(c->listen, cfg_default_listen, sizeof(cfg_default_listen));
    c->n_listen = cfg_n_default_listen;
}

void
cfg_default_text(const struct cfg_key *k, char *buf, size_t len)
{
    switch (k->type) {
    case CFG_INT:
        snprintf(buf, len, "%lld", (long long)k->def);
        break;
    case CFG_INT_AUTO:
        if (k->def == CFG_AUTO) {
            snprintf(buf, len, "\"auto\"");
        } else {
            snprintf(buf, len, "%lld", (long long)k->def);
        }
        break;
    case CFG_BOOL:
        snprintf(buf, len, "%s", k->def ? "true" : "false");
        break;
    case CFG_STRING:
        snprintf(buf, len, "\"%s\"", k->def_str != NULL ? k->def_str : "");
        break;
    case CFG_LEVEL:
        snprintf(buf, len, "\"%s\"", log_level_name((int)k->def));
        break;
    case CFG_FACILITY:
        snprintf(buf, len, "\"%s\"", log_facility_name((int)k->def));
        break;
    case CFG_PROTOCOL:
        snprintf(buf, len, "\"%s\"", cfg_proto_name(k->def));
        break;
    case CFG_CIDRS:
        snprintf(buf, len, "[ ]");
        break;
    case CFG_LISTEN: {
        size_t used = 0;
        used += (size_t)snprintf(buf, len, "(");
        for (size_t i = 0; i < cfg_n_default_listen && used < len; i++) {
            used += (size_t)snprintf(
                buf + used, len - used, "%s { address = \"%s\"; port = %lld; }",
                i ? "," : "", cfg_default_listen[i].address,
                (long long)cfg_default_listen[i].port);
        }
        if (used < len) {
            snprintf(buf + used, len - used, " )");
        }
        break;
    }
    }
}

bool
cfg_listen_equal(const struct cfg_listen *a, const struct cfg_listen *b)
{
    /* Own buckets or the shared ones: the workers' sockets hold one or
     * the other, so a change makes a new socket. */
    return strcmp(a->address, b->address) == 0 && a->port == b->port &&
           a->ipv6_only == b->ipv6_only && a->protocol == b->protocol &&
           cfg_listen_service(a) == cfg_listen_service(b) &&
           a->own_limits == b->own_limits;
}

enum cfg_service
cfg_listen_service(const struct cfg_listen *l)
{
    int i = cfg_name_index(cfg_service_names, CFG_N_SERVICE, l->service);

    return i < 0 ? CFG_SVC_ECHO : (enum cfg_service)i;
}

bool
cfg_listen_stamp(const struct cfg_listen *l)
{
    return cfg_listen_service(l) == CFG_SVC_STAMP;
}

bool
cfg_listen_metrics(const struct cfg_listen *l)
{
    return cfg_listen_service(l) == CFG_SVC_METRICS;
}

const struct acl *
cfg_listen_allow(const struct cfg *c, const struct cfg_listen *l)
{
    return l->own_acl ? l->allow : c->allow;
}

const struct acl *
cfg_listen_deny(const struct cfg *c, const struct cfg_listen *l)
{
    return l->own_acl ? l->deny : c->deny;
}

bool
cfg_listen_same_acl(const struct cfg *ca, const struct cfg_listen *a,
                    const struct cfg *cb, const struct cfg_listen *b)
{
    return acl_equal(cfg_listen_allow(ca, a), cfg_listen_allow(cb, b)) &&
           acl_equal(cfg_listen_deny(ca, a), cfg_listen_deny(cb, b)) &&
           acl_equal(a->proxy_from, b->proxy_from);
}

/* Every list the table says base holds, for keys of `scope`. */
static void
cfg_fini_lists(void *base, enum cfg_scope scope)
{
    for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++) {
        if (k->scope == scope && k->type == CFG_CIDRS) {
            acl_free(*cfg_acl_field(base, k));
            *cfg_acl_field(base, k) = NULL;
        }
    }
}

void
cfg_fini(struct cfg *c)
{
    cfg_fini_lists(c, CFG_TOP);
    for (size_t i = 0; i < c->n_listen && i < CFG_MAX_LISTEN; i++) {
        cfg_fini_lists(&c->listen[i], CFG_ITEM);
    }
}

/* Whether a top-level key has the same value in a and b. */
static bool
cfg_key_equal(const struct cfg_key *k, const struct cfg *a, const struct cfg *b)
{
    const char *pa = (const char *)a + k->off;
    const char *pb = (const char *)b + k->off;

    switch (k->type) {
    case CFG_INT:
    case CFG_INT_AUTO:
    case CFG_LEVEL:
    case CFG_FACILITY:
    case CFG_PROTOCOL:
        return *(const int64_t *)(const void *)pa ==
               *(const int64_t *)(const void *)pb;
    case CFG_BOOL:
        return *(const bool *)pa == *(const bool *)pb;
    case CFG_STRING:
        return strcmp(pa, pb) == 0;
    case CFG_CIDRS:
        return acl_equal(*(struct acl *const *)(const void *)pa,
                         *(struct acl *const *)(const void *)pb);
    case CFG_LISTEN:
        if (a->n_listen != b->n_listen) {
            return false;
        }
        for (size_t i = 0; i < a->n_listen; i++) {
            if (!cfg_listen_equal(&a->listen[i], &b->listen[i])) {
                return false;
            }
        }
        return true;
    }
    return false;
}

/* cfg_restart_changes over any table and either kind of key. */
static size_t
cfg_changes(const struct cfg_key *keys, enum cfg_reload reload,
            const struct cfg *old, const struct cfg *next, char *buf,
            size_t len)
{
    size_t n = 0, used = 0;

    if (len > 0) {
        buf[0] = '\0';
    }
    for (const struct cfg_key *k = keys; k->name != NULL; k++) {
        if (k->scope != CFG_TOP || k->reload != reload ||
            cfg_key_equal(k, old, next)) {
            continue;
        }
        if (used < len) {
            int w = snprintf(buf + used, len - used, "%s%s", n > 0 ? ", " : "",
                             k->name);

            used = w < 0 ? len : used + (size_t)w;
        }
        n++;
    }
    return n;
}

size_t
cfg_restart_changes(const struct cfg *old, const struct cfg *next, char *buf,
                    size_t len)
{
    return cfg_changes(cfg_keys, CFG_RESTART, old, next, buf, len);
}

/* ---- loading ---- */

struct cfg_ctx {
    const char *path;
    char *err;
    size_t errlen;
};

static int cfg_fail(struct cfg_ctx *x, const config_setting_t *s,
                    const char *fmt, ...) LOG_PRINTF(3, 4);

static int
cfg_fail(struct cfg_ctx *x, const config_setting_t *s, const char *fmt, ...)
{
    va_list ap;
    const char *file = NULL;
    unsigned line = 0;
    int n;

    if (s != NULL) {
        file = config_setting_source_file(s);
        line = config_setting_source_line(s);
    }
    if (line > 0) {
        n = snprintf(x->err, x->errlen, "%s:%u: ", file ? file : x->path, line);
    } else { /* the root group: a missing key is on no line */
        n = snprintf(x->err, x->errlen, "%s: ", file ? file : x->path);
    }
    if (n >= 0 && (size_t)n < x->errlen) {
        va_start(ap, fmt);
        /* va_start is right above; clang 14's analyzer loses track. */
        // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
        vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static const struct cfg_key *
cfg_find(const struct cfg_key *keys, const char *name, enum cfg_scope scope)
{
    for (const struct cfg_key *k = keys; k->name != NULL; k++) {
        if (k->scope == scope && strcmp(k->name, name) == 0) {
            return k;
        }
    }
    return NULL;
}

/* See cft_int_literal_fits: libconfig 1.5 truncates big int literals. */
static bool
cfg_literal_fits_int(const struct cfg_ctx *x, const config_setting_t *s)
{
    const char *file = config_setting_source_file(s);

    return cft_int_literal_fits(file != NULL ? file : x->path,
                                config_setting_source_line(s),
                                config_setting_name(s));
}

/* CFG_INT: an integer literal in range, read as 64 bits. CFG_INT_AUTO:
 * that, or the string "auto" (exactly), stored as CFG_AUTO; 0 is not
 * "auto" but out of range, so a typo cannot mean "every CPU". */
static int
cfg_set_int(struct cfg_ctx *x, const config_setting_t *s,
            const struct cfg_key *k, void *base, const char *label)
{
    int t = config_setting_type(s);

    if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
        long long v = config_setting_get_int64(s);

        if (v >= k->min && v <= k->max &&
            (t == CONFIG_TYPE_INT64 || cfg_literal_fits_int(x, s))) {
            *cfg_int_field(base, k) = v;
            return 0;
        }
    } else if (k->type == CFG_INT_AUTO && t == CONFIG_TYPE_STRING &&
               strcmp(config_setting_get_string(s), "auto") == 0) {
        *cfg_int_field(base, k) = CFG_AUTO;
        return 0;
    }
    return cfg_fail(x, s, "%s: expected an integer in %lld..%lld%s", label,
                    (long long)k->min, (long long)k->max,
                    k->type == CFG_INT_AUTO ? " or \"auto\"" : "");
}

/*
 * CFG_CIDRS: an array or list of address/prefix strings, built into one
 * list (NULL when empty). Each element is checked where it is written:
 * the error names its line and index ("deny[2]: ..."), with acl_add's
 * reason. Nothing is stored unless every element is good.
 */
static int
cfg_set_cidrs(struct cfg_ctx *x, const config_setting_t *s,
              const struct cfg_key *k, void *base, const char *label)
{
    struct acl_builder *b;
    struct acl *a;
    int n;

    if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
        return cfg_fail(x, s,
                        "%s: expected a list of addresses or prefixes, "
                        "such as [ \"192.0.2.0/24\", \"2001:db8::/32\" ]",
                        label);
    }
    n = config_setting_length(s);
    if (n == 0) {
        return 0;
    }
    b = acl_builder_new();
    if (b == NULL) {
        return cfg_fail(x, s, "%s: out of memory", label);
    }
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *str = config_setting_type(e) == CONFIG_TYPE_STRING
                              ? config_setting_get_string(e)
                              : NULL;
        char why[ACL_ERR_MAX], quoted[4 * CFG_ADDR_MAX + 1];

        if (str == NULL) {
            acl_builder_free(b);
            return cfg_fail(x, e, "%s[%d]: expected a string", label, i);
        }
        if (acl_add(b, str, why, sizeof(why)) < 0) {
            acl_builder_free(b);
            return cfg_fail(x, e, "%s[%d]: \"%s\": %s", label, i,
                            cft_quote(str, quoted, sizeof(quoted)), why);
        }
    }
    a = acl_build(b);
    if (a == NULL) {
        return cfg_fail(x, s, "%s: out of memory", label);
    }
    acl_free(*cfg_acl_field(base, k)); /* NULL: a key is set once */
    *cfg_acl_field(base, k) = a;
    return 0;
}

/* Store one setting into base after checking type and range: a scalar,
 * or a list of prefixes. */
static int
cfg_set_scalar(struct cfg_ctx *x, const config_setting_t *s,
               const struct cfg_key *k, void *base, const char *label)
{
    int t = config_setting_type(s);
    const char *str;
    char names[128];
    int code;

    switch (k->type) {
    case CFG_INT:
    case CFG_INT_AUTO:
        return cfg_set_int(x, s, k, base, label);
    case CFG_BOOL:
        if (t != CONFIG_TYPE_BOOL) {
            return cfg_fail(x, s, "%s: expected true or false", label);
        }
        *(bool *)((char *)base + k->off) = config_setting_get_bool(s) != 0;
        return 0;
    case CFG_STRING:
        str = t == CONFIG_TYPE_STRING ? config_setting_get_string(s) : NULL;
        if (str == NULL || strlen(str) < (size_t)k->min ||
            strlen(str) > (size_t)k->max) {
            return cfg_fail(x, s,
                            "%s: expected a string of %lld..%lld "
                            "characters",
                            label, (long long)k->min, (long long)k->max);
        }
        if (k->exists != NULL && str[0] != '\0' && !k->exists(str)) {
            return cfg_fail(x, s, "%s: no such %s \"%s\"", label, k->what, str);
        }
        snprintf((char *)base + k->off, (size_t)k->max + 1, "%s", str);
        return 0;
    case CFG_LEVEL:
    case CFG_FACILITY:
        str = t == CONFIG_TYPE_STRING ? config_setting_get_string(s) : NULL;
        code = str == NULL            ? -1
               : k->type == CFG_LEVEL ? log_level_from_name(str)
                                      : log_facility_from_name(str);
        if (code < 0) {
            return cfg_fail(x, s, "%s: expected one of %s", label,
                            k->type == CFG_LEVEL
                                ? log_level_list(names, sizeof(names))
                                : log_facility_list(names, sizeof(names)));
        }
        *cfg_int_field(base, k) = code;
        return 0;
    case CFG_PROTOCOL:
        str = t == CONFIG_TYPE_STRING ? config_setting_get_string(s) : NULL;
        code = str == NULL ? -1 : cfg_proto_from_name(str);
        if (code < 0) {
            return cfg_fail(x, s, "%s: expected one of tcp, udp", label);
        }
        *cfg_int_field(base, k) = code;
        return 0;
    case CFG_CIDRS:
        return cfg_set_cidrs(x, s, k, base, label);
    case CFG_LISTEN:
        break;
    }
    return cfg_fail(x, s, "%s: internal error: bad key type", label);
}

static int
cfg_check_address(struct cfg_ctx *x, const config_setting_t *s,
                  const struct cfg_listen *l, const char *label)
{
    unsigned char buf[sizeof(struct in6_addr)];
    char quoted[CFG_ADDR_MAX * 4 + 1];

    if (inet_pton(AF_INET, l->address, buf) != 1 &&
        inet_pton(AF_INET6, l->address, buf) != 1) {
        return cfg_fail(x, s,
                        "%s.address: expected a numeric IPv4 or IPv6 "
                        "address, got \"%s\"",
                        label, cft_quote(l->address, quoted, sizeof(quoted)));
    }
    return 0;
}

/* Every key of `scope` that keys marks required is set in group (the
 * root, or one listen entry). The error names the group's line, since the
 * key has none; prefix goes in front of the key's name ("listen[1]."). */
static int
cfg_check_required(struct cfg_ctx *x, const config_setting_t *group,
                   const struct cfg_key *keys, enum cfg_scope scope,
                   const char *prefix)
{
    for (const struct cfg_key *k = keys; k->name != NULL; k++) {
        if (k->scope == scope && k->required &&
            config_setting_get_member(group, k->name) == NULL) {
            return cfg_fail(x, group, "%s%s: missing (required)", prefix,
                            k->name);
        }
    }
    return 0;
}

/* Every key of `scope` with a .below is less than the key it names, both
 * as stored in base (after the whole group was read, so the order of the
 * settings does not matter). The error is at the key's own setting when
 * the group has it, else at the other key's: its value is what the
 * default of this one does not fit. */
static int
cfg_check_below(struct cfg_ctx *x, const config_setting_t *group, void *base,
                const struct cfg_key *keys, enum cfg_scope scope,
                const char *prefix)
{
    for (const struct cfg_key *k = keys; k->name != NULL; k++) {
        const struct cfg_key *o;
        const config_setting_t *at;
        int64_t lim;

        if (k->scope != scope || k->below == NULL) {
            continue;
        }
        o = cfg_find(keys, k->below, scope);
        assert(o != NULL && k->type == CFG_INT && o->type == CFG_INT);
        lim = *cfg_int_field(base, o);
        if (*cfg_int_field(base, k) < lim) {
            continue;
        }
        at = config_setting_get_member(group, k->name);
        if (at == NULL) {
            at = config_setting_get_member(group, o->name);
        }
        return cfg_fail(x, at != NULL ? at : group,
                        "%s%s: must be less than %s%s (%lld)", prefix, k->name,
                        prefix, o->name, (long long)lim);
    }
    return 0;
}

/* The PROXY protocol is for TCP, and trusts only the proxies named:
 * without proxy_from anybody could claim any address. */
static int
cfg_check_proxy(struct cfg_ctx *x, const config_setting_t *item,
                const struct cfg_listen *l, const char *label)
{
    const config_setting_t *s =
        config_setting_get_member(item, "proxy_protocol");

    if (!l->proxy_protocol) {
        return 0;
    }
    if (l->protocol != CFG_PROTO_TCP) {
        return cfg_fail(x, s, "%s.proxy_protocol: TCP only", label);
    }
    if (config_setting_get_member(item, "proxy_from") == NULL) {
        return cfg_fail(x, s,
                        "%s.proxy_from: required with proxy_protocol (the "
                        "proxies that may name the client)",
                        label);
    }
    return 0;
}

/* service: one of cfg_service_names. Echo and discard serve TCP or UDP,
 * with or without a PROXY header; metrics is TCP and speaks HTTP itself,
 * so no PROXY header comes first. */
static int
cfg_check_service(struct cfg_ctx *x, const config_setting_t *item,
                  const struct cfg_listen *l, const char *label)
{
    const config_setting_t *s = config_setting_get_member(item, "service");

    if (cfg_name_index(cfg_service_names, CFG_N_SERVICE, l->service) < 0) {
        return cfg_fail(x, s,
                        "%s.service: expected one of echo, discard, metrics, "
                        "stamp",
                        label);
    }
    if (cfg_listen_metrics(l) && l->protocol != CFG_PROTO_TCP) {
        return cfg_fail(x, s, "%s.service: metrics is TCP only", label);
    }
    if (cfg_listen_metrics(l) && l->proxy_protocol) {
        return cfg_fail(x, s, "%s.service: metrics takes no proxy_protocol",
                        label);
    }
    return 0;
}

/* The keys of a stamp entry elsewhere: only at their defaults. */
static int
cfg_check_not_stamp(struct cfg_ctx *x, const config_setting_t *item,
                    const struct cfg_listen *l, const char *label)
{
    const char *key = NULL;

    if (strcmp(l->stamp_mode, "stateless") != 0) {
        key = "stamp_mode";
    } else if (l->stamp_key_file[0] != '\0') {
        key = "stamp_key_file";
    } else if (l->stamp_reply_low_ports) {
        key = "stamp_reply_low_ports";
    } else if (l->stamp_busy_poll != 0) {
        key = "stamp_busy_poll";
    } else if (l->stamp_honour_dscp) {
        key = "stamp_honour_dscp";
    } else if (strcmp(l->stamp_timestamp, "ntp") != 0) {
        key = "stamp_timestamp";
    }
    if (key == NULL) {
        return 0;
    }
    return cfg_fail(x, config_setting_get_member(item, key),
                    "%s.%s: only for service = \"stamp\"", label, key);
}

/* service = "stamp": UDP (its default), port 862 unless the entry names
 * one, a known mode, and the key file read now (a reload reads it
 * again), so that `echod -t` and a reload catch a bad key. */
static int
cfg_check_stamp(struct cfg_ctx *x, const config_setting_t *item,
                struct cfg_listen *l, const char *label)
{
    const config_setting_t *s;
    char why[160];
    uint8_t key[KF_MAX];
    int n;

    if (!cfg_listen_stamp(l)) {
        return cfg_check_not_stamp(x, item, l, label);
    }
    s = config_setting_get_member(item, "protocol");
    if (s == NULL) {
        l->protocol = CFG_PROTO_UDP;
    } else if (l->protocol != CFG_PROTO_UDP) {
        return cfg_fail(x, s, "%s.protocol: stamp is UDP only", label);
    }
    if (config_setting_get_member(item, "port") == NULL) {
        l->port = CFG_STAMP_PORT;
    }
    if (strcmp(l->stamp_mode, "stateless") != 0 &&
        strcmp(l->stamp_mode, "stateful") != 0) {
        return cfg_fail(x, config_setting_get_member(item, "stamp_mode"),
                        "%s.stamp_mode: expected \"stateless\" or "
                        "\"stateful\"",
                        label);
    }
    if (strcmp(l->stamp_timestamp, "ntp") != 0 &&
        strcmp(l->stamp_timestamp, "ptp") != 0) {
        return cfg_fail(x, config_setting_get_member(item, "stamp_timestamp"),
                        "%s.stamp_timestamp: expected \"ntp\" or \"ptp\"",
                        label);
    }
    if (l->stamp_key_file[0] == '\0') {
        return 0;
    }
    n = kf_load(l->stamp_key_file, key, why, sizeof(why));
    if (n < 0) {
        explicit_bzero(key, sizeof(key)); /* what a bad file left in it */
        return cfg_fail(x, config_setting_get_member(item, "stamp_key_file"),
                        "%s.stamp_key_file: %s: %s", label,
                        l->stamp_key_file, why);
    }
    memcpy(l->stamp_key, key, (size_t)n);
    l->stamp_key_len = (size_t)n;
    explicit_bzero(key, sizeof(key));
    return 0;
}

/* The item keys that make an entry's own UDP reply limits, in the order
 * of cfg_stamp_limits and struct cfg_listen's limits_set bits. */
static const char *const cfg_limit_keys[] = {
    "udp_rate_limit",       "udp_rate_burst",       "udp_rate_limit_bytes",
    "udp_per_source_rate",  "udp_per_source_burst", "udp_per_source_rate_bytes",
};
#define CFG_N_LIMITS (sizeof(cfg_limit_keys) / sizeof(cfg_limit_keys[0]))

/*
 * A stamp entry's limits for those keys it does not set. Measurement
 * sessions, not echo: a sender runs 1 to 1000 packets a second per
 * session, a few sessions at once, so 2000 replies a second per source
 * (and a second's worth at once) leaves room, where echo's 20 would cut
 * a 100 pps session to a fifth. The bytes follow from full-size 1500-byte
 * packets at that rate (3 MB/s per source); in total ten such sources. A
 * reply is never larger than its request (but for the 14-byte TWAMP-Light
 * form, answered with 44: 3.1 times), so a forged sender gets at most
 * these byte budgets aimed at one victim.
 */
static const int64_t cfg_stamp_limits[CFG_N_LIMITS] = {
    20000, 20000, 30000000, 2000, 2000, 3000000,
};

static int64_t *
cfg_limit_field(struct cfg_listen *l, size_t i)
{
    int64_t *const f[CFG_N_LIMITS] = {
        &l->udp_rate_limit,      &l->udp_rate_burst,
        &l->udp_rate_limit_bytes, &l->udp_per_source_rate,
        &l->udp_per_source_burst, &l->udp_per_source_rate_bytes,
    };

    return f[i];
}

/* After the whole file: what an entry with own limits does not set comes
 * from the top level (any order of keys in the file), or for stamp from
 * cfg_stamp_limits. */
static void
cfg_resolve_limits(struct cfg *c)
{
    const int64_t top[CFG_N_LIMITS] = {
        c->udp_rate_limit,      c->udp_rate_burst,
        c->udp_rate_limit_bytes, c->udp_per_source_rate,
        c->udp_per_source_burst, c->udp_per_source_rate_bytes,
    };

    for (size_t i = 0; i < c->n_listen; i++) {
        struct cfg_listen *l = &c->listen[i];
        bool stamp = cfg_listen_stamp(l);

        l->own_limits = l->limits_set != 0 || stamp;
        if (!l->own_limits) {
            continue;
        }
        for (size_t k = 0; k < CFG_N_LIMITS; k++) {
            if (!(l->limits_set & (1u << k))) {
                *cfg_limit_field(l, k) = stamp ? cfg_stamp_limits[k] : top[k];
            }
        }
    }
}

/* An entry's own UDP limits only where there are UDP replies to limit. */
static int
cfg_check_limits(struct cfg_ctx *x, const config_setting_t *item,
                 const struct cfg_listen *l, const char *label)
{
    for (size_t k = 0; k < CFG_N_LIMITS; k++) {
        if ((l->limits_set & (1u << k)) && l->protocol != CFG_PROTO_UDP) {
            return cfg_fail(x,
                            config_setting_get_member(item, cfg_limit_keys[k]),
                            "%s.%s: for UDP entries only", label,
                            cfg_limit_keys[k]);
        }
    }
    return 0;
}

static int
cfg_load_item(struct cfg_ctx *x, const config_setting_t *item,
              struct cfg_listen *l, unsigned idx)
{
    char label[48];
    char sublabel[80];

    snprintf(label, sizeof(label), "listen[%u]", idx);
    if (!config_setting_is_group(item)) {
        return cfg_fail(x, item,
                        "%s: expected a group { address = ...; "
                        "port = ...; }",
                        label);
    }
    for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++) {
        if (k->scope == CFG_ITEM) {
            cfg_key_default(l, k);
        }
    }
    for (int i = 0; i < config_setting_length(item); i++) {
        const config_setting_t *s = config_setting_get_elem(item, (unsigned)i);
        const char *name = config_setting_name(s);
        const struct cfg_key *k = cfg_find(cfg_keys, name, CFG_ITEM);

        snprintf(sublabel, sizeof(sublabel), "%s.%s", label, name);
        if (k == NULL) {
            return cfg_fail(x, s, "%s: unknown key", sublabel);
        }
        if (cfg_set_scalar(x, s, k, l, sublabel) < 0) {
            return -1;
        }
    }
    /* Either key replaces both top-level lists (see struct cfg_listen). */
    l->own_acl = config_setting_get_member(item, "allow") != NULL ||
                 config_setting_get_member(item, "deny") != NULL;
    l->limits_set = 0;
    for (size_t k = 0; k < CFG_N_LIMITS; k++) {
        if (config_setting_get_member(item, cfg_limit_keys[k]) != NULL) {
            l->limits_set |= (uint8_t)(1u << k);
        }
    }
    snprintf(sublabel, sizeof(sublabel), "%s.", label);
    if (cfg_check_required(x, item, cfg_keys, CFG_ITEM, sublabel) < 0 ||
        cfg_check_below(x, item, l, cfg_keys, CFG_ITEM, sublabel) < 0 ||
        cfg_check_service(x, item, l, label) < 0 ||
        cfg_check_stamp(x, item, l, label) < 0 ||
        cfg_check_limits(x, item, l, label) < 0 ||
        cfg_check_proxy(x, item, l, label) < 0) {
        return -1;
    }
    return cfg_check_address(x, item, l, label);
}

static int
cfg_load_listen(struct cfg_ctx *x, const config_setting_t *s, struct cfg *c)
{
    unsigned n;

    if (!config_setting_is_list(s) && !config_setting_is_array(s)) {
        return cfg_fail(x, s,
                        "listen: expected a list ( { address = ...; "
                        "port = ...; }, ... )");
    }
    n = (unsigned)config_setting_length(s);
    if (n > CFG_MAX_LISTEN) {
        return cfg_fail(x, s, "listen: at most %d entries", CFG_MAX_LISTEN);
    }
    c->n_listen = 0;
    for (unsigned i = 0; i < n; i++) {
        const config_setting_t *item = config_setting_get_elem(s, i);

        /* Counted before it is read, so that cfg_fini also frees the
         * lists of an entry that fails half-way. */
        memset(&c->listen[i], 0, sizeof(c->listen[i]));
        c->n_listen = i + 1;
        if (cfg_load_item(x, item, &c->listen[i], i) < 0) {
            return -1;
        }
        for (unsigned j = 0; j < i; j++) {
            /* ipv6_only is not part of the identity: two sockets on one
             * address, port and protocol cannot both be bound. */
            const struct cfg_listen *a = &c->listen[i], *b = &c->listen[j];
            if (strcmp(a->address, b->address) == 0 && a->port == b->port &&
                a->protocol == b->protocol) {
                return cfg_fail(x, item,
                                "listen[%u]: duplicate of "
                                "listen[%u]",
                                i, j);
            }
        }
    }
    return 0;
}

static int
cfg_load_root(struct cfg_ctx *x, const config_setting_t *root, struct cfg *c)
{
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(s);
        const struct cfg_key *k = cfg_find(cfg_keys, name, CFG_TOP);

        if (k == NULL) {
            return cfg_fail(x, s, "%s: unknown key", name);
        }
        if (k->type == CFG_LISTEN) {
            if (cfg_load_listen(x, s, c) < 0) {
                return -1;
            }
            continue;
        }
        if (cfg_set_scalar(x, s, k, c, name) < 0) {
            return -1;
        }
    }
    if (cfg_check_required(x, root, cfg_keys, CFG_TOP, "") < 0 ||
        cfg_check_below(x, root, c, cfg_keys, CFG_TOP, "") < 0) {
        return -1;
    }
    cfg_resolve_limits(c);
    return 0;
}

int
cfg_load(struct cfg *c, const char *path, char *err, size_t errlen)
{
    struct cfg_ctx x = {path, err, errlen};
    config_t lc;
    int rc = -1;

    FILE *probe;

    cfg_defaults(c);
    /* libconfig reports an I/O error without errno; ask the kernel first. */
    probe = fopen(path, "r");
    if (probe == NULL) {
        int saved = errno;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(saved));
        errno = saved;
        return -1;
    }
    fclose(probe);
    config_init(&lc);
    if (cft_check_includes(path, 0, err, errlen) < 0) {
        /* err says which include */
    } else if (config_read_file(&lc, path) != CONFIG_TRUE) {
        if (config_error_type(&lc) == CONFIG_ERR_FILE_IO) {
            snprintf(err, errlen, "%s: cannot read", path);
        } else {
            snprintf(err, errlen, "%s:%d: %s",
                     config_error_file(&lc) ? config_error_file(&lc) : path,
                     config_error_line(&lc), config_error_text(&lc));
        }
    } else {
        rc = cfg_load_root(&x, config_root_setting(&lc), c);
    }
    config_destroy(&lc);
    if (rc < 0) {
        cfg_fini(c);    /* whatever lists were built before the fault */
        errno = EINVAL; /* the file is there but wrong */
    }
    return rc;
}
