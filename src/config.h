/*
 * config.h - echod's configuration: one table of keys drives defaults,
 * validation (with file:line), unknown-key detection, -t and the checks
 * that conf/echod.conf and man/echod.conf.5 agree with the code.
 *
 * A load builds a complete new struct cfg; live code only ever sees a
 * const struct cfg * and swaps snapshots on reload.
 *
 * Ownership: a loaded struct cfg owns its access lists (the struct acl
 * pointers of allow, deny and of each listen entry's allow, deny and
 * proxy_from), which live outside it because they can be long. Copying a
 * struct cfg (or a struct cfg_listen) by value copies the pointers, not
 * the lists: the copies alias them, and exactly one copy must be handed
 * to cfg_fini, once, after every reader is done with all of them (a
 * reader that must outlive it takes its own reference, acl_ref). A
 * config filled by cfg_defaults, or one whose lists were all empty, holds
 * nothing and needs no cfg_fini, though it does no harm.
 */
#ifndef ECHOD_CONFIG_H
#define ECHOD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef ECHOD_CONF_PATH
#define ECHOD_CONF_PATH "/etc/echod.conf"
#endif

#define CFG_MAX_LISTEN 64
#define CFG_ADDR_MAX 64
#define CFG_SERVICE_MAX 16
#define CFG_IDENT_MAX 32
#define CFG_NAME_MAX 33 /* a user or group name (32) and its NUL */
#define CFG_ERR_MAX 512
#define CFG_PATH_MAX 108 /* a UNIX socket path (sun_path) and its NUL */
#define CFG_CONTROL_DEFAULT "/run/echod/control.sock"
#define CFG_KEY_MAX 64     /* bytes of a stamp key (keyfile.h KF_MAX) */
#define CFG_STAMP_PORT 862 /* a stamp entry's port when it names none */

struct acl; /* acl.h: NULL stands for an empty list */

/* How a CFG_INT_AUTO key stores the string "auto". */
#define CFG_AUTO 0

/* workers: 1..CFG_WORKERS_MAX threads, or CFG_WORKERS_AUTO ("auto"): one
 * per CPU in the process's affinity mask, which the server resolves. */
#define CFG_WORKERS_AUTO CFG_AUTO
#define CFG_WORKERS_MAX 256

/* The transport of one `listen` entry (its `protocol` key). */
enum cfg_proto {
    CFG_PROTO_TCP,
    CFG_PROTO_UDP,
};

/* What a `listen` entry serves (its `service` key). */
enum cfg_service {
    CFG_SVC_ECHO,    /* RFC 862: send every byte back */
    CFG_SVC_DISCARD, /* RFC 863: read and count, answer nothing */
    CFG_SVC_METRICS, /* TCP: GET /metrics, served by the main thread */
    CFG_SVC_STAMP,   /* UDP: a STAMP session-reflector (RFC 8762) */
};

struct cfg_listen {
    char address[CFG_ADDR_MAX]; /* numeric IPv4 or IPv6 address */
    /* What it serves: "echo" (also ""), "discard", or "metrics" (see
     * enum cfg_service). Part of its identity. */
    char service[CFG_SERVICE_MAX];
    int64_t port;
    int64_t protocol;      /* enum cfg_proto */
    int64_t proxy_timeout; /* seconds for the whole PROXY header */
    /* Who may connect through this entry (acl_permits): when own_acl is
     * set (the entry has an allow or a deny key, even an empty one), its
     * allow and deny replace the top-level lists for this entry, both of
     * them; else they are NULL and the top-level ones apply (use
     * cfg_listen_allow/_deny). Not part of the socket's identity. */
    struct acl *allow;
    struct acl *deny;
    struct acl *proxy_from; /* who may send a PROXY header */
    bool own_acl;
    bool ipv6_only;
    bool proxy_protocol; /* a PROXY header first (TCP only) */
    /* UDP reply limits of its own (own_limits: the entry sets one of
     * these keys, or it is a stamp entry); those it does not set come
     * from the top level, or for stamp from cfg_stamp_limits. Without
     * own_limits the top-level buckets are shared and these unused. */
    bool own_limits;
    uint8_t limits_set; /* bit i: the i-th of CFG_LIMIT_KEYS was set */
    int64_t udp_rate_limit;
    int64_t udp_rate_burst;
    int64_t udp_rate_limit_bytes;
    int64_t udp_per_source_rate;
    int64_t udp_per_source_burst;
    int64_t udp_per_source_rate_bytes;
    /* service = "stamp": */
    char stamp_mode[CFG_SERVICE_MAX];  /* "stateless" or "stateful" */
    char stamp_key_file[CFG_PATH_MAX]; /* "" = unauthenticated */
    bool stamp_reply_low_ports;        /* opt out of the low-port guard */
    bool stamp_honour_dscp;            /* CoS TLV: reply with DSCP1 */
    int64_t stamp_busy_poll;           /* microseconds, 0 = off */
    char stamp_timestamp[CFG_SERVICE_MAX]; /* "ntp" or "ptp" */
    size_t stamp_key_len;              /* 0 = unauthenticated */
    uint8_t stamp_key[CFG_KEY_MAX];    /* read from stamp_key_file */
};

struct cfg {
    struct cfg_listen listen[CFG_MAX_LISTEN];
    size_t n_listen;
    int64_t workers; /* 1..CFG_WORKERS_MAX or _AUTO */
    int64_t max_connections;
    int64_t max_connections_per_source; /* 0 = no limit */
    int64_t source_prefix_ipv4;         /* bits that make one source */
    int64_t source_prefix_ipv6;
    int64_t idle_timeout;          /* seconds, 0 = off */
    int64_t output_high_watermark; /* bytes */
    int64_t output_low_watermark;  /* bytes */
    int64_t shutdown_timeout;      /* seconds */
    int64_t listen_backlog;
    int64_t log_level;       /* syslog level (LOG_*) */
    int64_t syslog_facility; /* syslog facility (LOG_*) */
    char syslog_ident[CFG_IDENT_MAX];
    char user[CFG_NAME_MAX];  /* "" = do not change user */
    char group[CFG_NAME_MAX]; /* "" = the user's primary group */
    /* "" = none. CFG_CONTROL_DEFAULT may fail with a warning (no
     * /run/echod outside the service); any other path must work. */
    char control_socket[CFG_PATH_MAX];
    int64_t udp_rate_limit; /* UDP replies per second, all sources */
    int64_t udp_rate_burst;
    int64_t udp_rate_limit_bytes; /* their bytes per second, 0 = off */
    int64_t udp_per_source_rate;  /* UDP replies per second, one source */
    int64_t udp_per_source_burst;
    int64_t udp_per_source_rate_bytes; /* their bytes per second, 0 = off */
    struct acl *allow;                 /* clients served; NULL: everyone */
    struct acl *deny; /* clients refused, before allow; NULL: no one */
};

enum cfg_type {
    CFG_INT,
    CFG_BOOL,
    CFG_STRING,
    CFG_LEVEL,    /* string naming a syslog level */
    CFG_FACILITY, /* string naming a syslog facility */
    CFG_LISTEN,   /* list of groups described by the CFG_ITEM rows */
    CFG_PROTOCOL, /* string naming an enum cfg_proto */
    CFG_INT_AUTO, /* CFG_INT, or the string "auto" stored as CFG_AUTO
                     (so its min is above CFG_AUTO) */
    CFG_CIDRS,    /* array or list of address/prefix strings, stored as
                     a struct acl *, NULL when empty (default: empty) */
};

enum cfg_scope {
    CFG_TOP,  /* a top-level key */
    CFG_ITEM, /* a key inside one `listen` entry */
};

/* When a changed value takes effect. 0 is no value, so that a row which
 * forgets to say is caught (test_config checks every row). */
enum cfg_reload {
    CFG_RELOAD = 1, /* a reload (SIGHUP) applies it */
    CFG_RESTART,    /* a reload keeps the running value until a restart */
};

/* One row per key: the only place a default or a range is written. */
struct cfg_key {
    const char *name;
    enum cfg_type type;
    enum cfg_scope scope;
    size_t off;          /* into struct cfg or struct cfg_listen */
    int64_t def;         /* CFG_INT, CFG_INT_AUTO, CFG_BOOL, CFG_LEVEL,
                            CFG_FACILITY, CFG_PROTOCOL */
    const char *def_str; /* CFG_STRING; NULL for a required key */
    int64_t min, max;    /* CFG_INT(_AUTO) range; CFG_STRING length */
    bool required;       /* must be set: at the top level, or in every
                            group of its list (CFG_ITEM) */
    enum cfg_reload reload;
    const char *below; /* CFG_INT: the name of a CFG_INT key of the same
                          scope this one must be less than; NULL: none */
    /* CFG_STRING: a value other than "" must pass this check, or it is an
     * error saying "no such <what>" (a user name that does not exist). */
    bool (*exists)(const char *value);
    const char *what;
    const char *doc; /* one line */
};

/* The key table, terminated by a row whose name is NULL. */
extern const struct cfg_key cfg_keys[];

/* The built-in listeners used when the file has no `listen` key. */
extern const struct cfg_listen cfg_default_listen[];
extern const size_t cfg_n_default_listen;

/* Fill *c with the built-in defaults (no lists). Overwrites *c without
 * freeing anything: cfg_fini a loaded config first. */
void cfg_defaults(struct cfg *c);

/*
 * Read and validate `path` into *c, which it overwrites as cfg_defaults
 * does. On success returns 0 and *c is complete; it owns the lists it
 * holds (see above). On failure returns -1, has freed every list it
 * built (*c holds none and is otherwise unspecified) and writes one line
 * to err, of the form "FILE:LINE: KEY: what was expected" (no trailing
 * newline), or "FILE: KEY: ..." when no line holds the fault (a required
 * top-level key that is missing); a bad element of a list names its own
 * line and index ("deny[3]: ..."); errno is fopen's when the file cannot
 * be opened, EINVAL otherwise.
 */
int cfg_load(struct cfg *c, const char *path, char *err, size_t errlen);

/* Free the lists *c owns (drop its reference to each) and set their
 * pointers to NULL; everything else is left as it was. Calling it again,
 * or on a config that holds no list, does nothing. */
void cfg_fini(struct cfg *c);

/* The default of a key as it would be written in the config file. */
void cfg_default_text(const struct cfg_key *k, char *buf, size_t len);

/* "tcp" or "udp" ("?" for anything else). */
const char *cfg_proto_name(int64_t proto);

/* Same address, port, protocol and options: the socket's identity. The
 * access lists are not part of it (see cfg_listen_same_acl). */
bool cfg_listen_equal(const struct cfg_listen *a, const struct cfg_listen *b);

/* What entry l serves (CFG_SVC_ECHO for "" and for a name that is no
 * service, which a loaded config never holds). */
enum cfg_service cfg_listen_service(const struct cfg_listen *l);
/* True for a listen entry with service = "stamp". */
bool cfg_listen_stamp(const struct cfg_listen *l);

/* True for a listen entry with service = "metrics". */
bool cfg_listen_metrics(const struct cfg_listen *l);

/* The allow and deny lists that apply to entry l of config c: its own
 * when l->own_acl, else c's top-level ones. NULL is an empty list. */
const struct acl *cfg_listen_allow(const struct cfg *c,
                                   const struct cfg_listen *l);
const struct acl *cfg_listen_deny(const struct cfg *c,
                                  const struct cfg_listen *l);

/* Whether entry a of config ca and entry b of config cb apply the same
 * allow and deny lists and have the same proxy_from, by the addresses
 * they match (so a reload can tell whether an entry's lists changed). */
bool cfg_listen_same_acl(const struct cfg *ca, const struct cfg_listen *a,
                         const struct cfg *cb, const struct cfg_listen *b);

/*
 * For a reload: the top-level keys marked CFG_RESTART whose values differ
 * between old (running) and next (just loaded). Writes their names to buf
 * in table order, separated by ", " (cut to fit, terminated when len > 0;
 * buf may be NULL when len is 0) and returns how many differ, whether or
 * not all fit. The caller keeps the running values of those keys and logs
 * "<names> changed: kept until restart".
 */
size_t cfg_restart_changes(const struct cfg *old, const struct cfg *next,
                           char *buf, size_t len);

#endif /* ECHOD_CONFIG_H */
