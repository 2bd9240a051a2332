/*
 * test_config.c - the key table, defaults, the shipped config file, and
 * every class of load error with its exact "FILE:LINE: key: ..." text.
 *
 * The access lists (allow, deny, proxy_from) are checked for what they
 * hold, where each bad element is reported, and for ownership: every
 * list a load builds is freed by cfg_fini, or by cfg_load itself when it
 * fails (run under ASan, `make SANITIZE=1`, a leak is a failure).
 *
 * Includes src/config.c to reach its static checks with tables of its own.
 * Finds the source tree through $ECHOD_TOP, else by walking up from the
 * working directory, else from the test binary's own directory, looking
 * for conf/echod.conf next to src/config.h. Writes its test files into a
 * fresh directory under $TMPDIR (or /tmp) and removes them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

/* The module itself, so that its static checks can be driven with key
 * tables of the test's own (STYLE.md section 8); config.o is then not
 * taken from libechod.a. */
#include "../../src/config.c"
#include "sock.h"
#include "unit.h"

static char top[PATH_MAX];       /* the source tree */
static char tmpdir[PATH_MAX];    /* scratch files */
static char path[PATH_MAX + 32]; /* the file under test */
static char err[CFG_ERR_MAX];

/* ---- finding the tree and writing files ---- */

static int
is_top(const char *dir)
{
    char p[PATH_MAX + 32];
    struct stat st;

    snprintf(p, sizeof(p), "%s/conf/echod.conf", dir);
    if (stat(p, &st) != 0) {
        return 0;
    }
    snprintf(p, sizeof(p), "%s/src/config.h", dir);
    return stat(p, &st) == 0;
}

/* Walk up from start (a directory) to the first one that is the tree. */
static int
find_top_from(const char *start)
{
    char dir[PATH_MAX];

    if (realpath(start, dir) == NULL) {
        return -1;
    }
    for (int up = 0; up < 8; up++) {
        char *slash;

        if (is_top(dir)) {
            snprintf(top, sizeof(top), "%s", dir);
            return 0;
        }
        slash = strrchr(dir, '/');
        if (slash == NULL || slash == dir) {
            return -1;
        }
        *slash = '\0';
    }
    return -1;
}

static int
find_top(void)
{
    const char *env = getenv("ECHOD_TOP");
    char exe[PATH_MAX];
    ssize_t n;

    if (env != NULL && *env != '\0') {
        return find_top_from(env);
    }
    if (find_top_from(".") == 0) {
        return 0;
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        return -1;
    }
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    return find_top_from(exe);
}

static int
group_setup(void **state)
{
    const char *t = getenv("TMPDIR");

    (void)state;
    if (find_top() < 0) {
        fprintf(stderr, "test_config: cannot find the source tree; "
                        "set ECHOD_TOP\n");
        return -1;
    }
    snprintf(tmpdir, sizeof(tmpdir), "%s/echod-cfg-XXXXXX",
             t != NULL && *t != '\0' ? t : "/tmp");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
group_teardown(void **state)
{
    char p[PATH_MAX + 32];
    static const char *const names[] = {"t.conf", "inc.conf"};

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", tmpdir, names[i]);
        unlink(p);
    }
    return rmdir(tmpdir);
}

static void
write_file(const char *name, const char *text)
{
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Load len bytes, NUL bytes included, as a config file. */
static int
load_bytes(struct cfg *c, const char *bytes, size_t len)
{
    FILE *f;

    snprintf(path, sizeof(path), "%s/t.conf", tmpdir);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    memset(err, 0, sizeof(err));
    return cfg_load(c, path, err, sizeof(err));
}

/* Load text as a config file; returns cfg_load's result. */
static int
load(struct cfg *c, const char *text)
{
    write_file("t.conf", text);
    memset(err, 0, sizeof(err));
    return cfg_load(c, path, err, sizeof(err));
}

/* The load must fail with exactly "PATH:LINE: what". */
static void
expect_error(const char *text, int line, const char *what)
{
    struct cfg c;
    char want[CFG_ERR_MAX + PATH_MAX];

    assert_int_equal(load(&c, text), -1);
    snprintf(want, sizeof(want), "%s:%d: %s", path, line, what);
    assert_string_equal(err, want);
}

/* ---- comparing configs ---- */

static void
assert_listen_equal(const struct cfg_listen *a, const struct cfg_listen *b)
{
    assert_string_equal(a->address, b->address);
    assert_int_equal(a->port, b->port);
    assert_int_equal(a->ipv6_only, b->ipv6_only);
    assert_int_equal(a->protocol, b->protocol);
    assert_int_equal(a->own_acl, b->own_acl);
    assert_true(acl_equal(a->allow, b->allow));
    assert_true(acl_equal(a->deny, b->deny));
    assert_true(acl_equal(a->proxy_from, b->proxy_from));
}

/* Field by field, driven by the table, plus the listen list. */
static void
assert_cfg_equal(const struct cfg *a, const struct cfg *b)
{
    for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++) {
        const char *pa = (const char *)a + k->off;
        const char *pb = (const char *)b + k->off;

        if (k->scope != CFG_TOP) {
            continue;
        }
        switch (k->type) {
        case CFG_INT:
        case CFG_INT_AUTO:
        case CFG_LEVEL:
        case CFG_FACILITY:
        case CFG_PROTOCOL:
            assert_int_equal(*(const int64_t *)(const void *)pa,
                             *(const int64_t *)(const void *)pb);
            break;
        case CFG_BOOL:
            assert_int_equal(*(const bool *)pa, *(const bool *)pb);
            break;
        case CFG_STRING:
            assert_string_equal(pa, pb);
            break;
        case CFG_CIDRS:
            assert_true(acl_equal(*(struct acl *const *)(const void *)pa,
                                  *(struct acl *const *)(const void *)pb));
            break;
        case CFG_LISTEN:
            break;
        }
    }
    assert_int_equal(a->n_listen, b->n_listen);
    for (size_t i = 0; i < a->n_listen; i++) {
        assert_listen_equal(&a->listen[i], &b->listen[i]);
    }
}

/* ---- defaults and the shipped file ---- */

static void
test_defaults_equal_table(void **state)
{
    struct cfg c;
    size_t n_top = 0;

    (void)state;
    cfg_defaults(&c);
    for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++) {
        const char *p = (const char *)&c + k->off;

        assert_non_null(k->doc);
        assert_true(strlen(k->doc) > 0);
        if (k->type == CFG_INT) {
            /* A default must pass its own range check. */
            assert_true(k->min <= k->def && k->def <= k->max);
        }
        if (k->type == CFG_INT_AUTO) {
            /* "auto" cannot be mistaken for a number in range. */
            assert_true(k->min > CFG_AUTO);
            assert_true(k->def == CFG_AUTO ||
                        (k->min <= k->def && k->def <= k->max));
        }
        if (k->scope != CFG_TOP) {
            continue;
        }
        n_top++;
        switch (k->type) {
        case CFG_INT:
        case CFG_INT_AUTO:
        case CFG_LEVEL:
        case CFG_FACILITY:
        case CFG_PROTOCOL:
            assert_int_equal(*(const int64_t *)(const void *)p, k->def);
            break;
        case CFG_BOOL:
            assert_int_equal(*(const bool *)p, k->def != 0);
            break;
        case CFG_STRING:
            assert_non_null(k->def_str);
            assert_string_equal(p, k->def_str);
            break;
        case CFG_CIDRS: /* empty: no list */
            assert_null(*(struct acl *const *)(const void *)p);
            break;
        case CFG_LISTEN:
            break;
        }
    }
    assert_true(n_top >= 9); /* the keys the issue names, at least */
    assert_int_equal(c.n_listen, cfg_n_default_listen);
    for (size_t i = 0; i < cfg_n_default_listen; i++) {
        assert_listen_equal(&c.listen[i], &cfg_default_listen[i]);
    }
    /* The defaults are a valid configuration. */
    assert_true(c.output_low_watermark < c.output_high_watermark);
    assert_int_equal(c.log_level, LOG_INFO);
    assert_int_equal(c.syslog_facility, LOG_DAEMON);
    assert_int_equal(c.workers, CFG_WORKERS_AUTO);
}

/* The columns every row must fill in, and what the issue asked of them:
 * address is the one required key, and it alone has no default. */
static void
test_table_columns(void **state)
{
    (void)state;
    for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++) {
        if (k->reload != CFG_RELOAD && k->reload != CFG_RESTART) {
            fail_msg("%s: .reload is not set", k->name);
        }
        assert_int_equal(k->required, strcmp(k->name, "address") == 0);
        if (k->type == CFG_STRING) {
            /* A default for a required key would never be used. */
            assert_int_equal(k->required, k->def_str == NULL);
        }
        if (k->below != NULL) {
            const struct cfg_key *o = cfg_find(cfg_keys, k->below, k->scope);

            /* An integer below an integer of its own scope, and the
             * defaults keep the rule. */
            assert_non_null(o);
            assert_int_equal(k->type, CFG_INT);
            assert_int_equal(o->type, CFG_INT);
            assert_true(k->def < o->def);
        }
        /* Every key applies on reload (see srv_reload) but workers (a
         * thread's loop and sockets stay until a restart), user and
         * group (root is gone once dropped) and control_socket (made
         * before root is given up). */
        assert_int_equal(k->reload, strcmp(k->name, "workers") == 0 ||
                                            strcmp(k->name, "user") == 0 ||
                                            strcmp(k->name, "group") == 0 ||
                                            strcmp(k->name,
                                                   "control_socket") == 0
                                        ? CFG_RESTART
                                        : CFG_RELOAD);
    }
}

/* Strip #, // and C comments, so that a commented-out key is not found. */
static char *
strip_comments(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;
    bool in_str = false;

    assert_non_null(out);
    while (*s != '\0') {
        if (in_str) {
            if (*s == '\\' && s[1] != '\0') {
                *o++ = *s++;
            } else if (*s == '"') {
                in_str = false;
            }
            *o++ = *s++;
        } else if (*s == '"') {
            in_str = true;
            *o++ = *s++;
        } else if (*s == '#' || (s[0] == '/' && s[1] == '/')) {
            while (*s != '\0' && *s != '\n') {
                s++;
            }
        } else if (s[0] == '/' && s[1] == '*') {
            const char *end = strstr(s + 2, "*/");
            s = end != NULL ? end + 2 : s + strlen(s);
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

/* True when text has `name` as a whole word followed by = or :. */
static bool
sets_key(const char *text, const char *name)
{
    size_t len = strlen(name);

    for (const char *p = strstr(text, name); p != NULL;
         p = strstr(p + 1, name)) {
        const char *q = p + len;
        if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_')) {
            continue;
        }
        while (*q == ' ' || *q == '\t') {
            q++;
        }
        if (*q == '=' || *q == ':') {
            return true;
        }
    }
    return false;
}

static char *
read_text(const char *p)
{
    FILE *f = fopen(p, "r");
    char *buf;
    long len;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    assert_true(len > 0);
    rewind(f);
    buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    return buf;
}

/* conf/echod.conf documents every key at its default: it parses to exactly
 * cfg_defaults(), and it sets every key of the table (outside comments),
 * so a file with everything commented out cannot pass. */
static void
test_shipped_conf_is_defaults(void **state)
{
    struct cfg want, got;
    char shipped[PATH_MAX + 32];
    char *text, *code;

    (void)state;
    snprintf(shipped, sizeof(shipped), "%s/conf/echod.conf", top);
    cfg_defaults(&want);
    memset(&got, 0x5a, sizeof(got)); /* nothing may be left unset */
    if (cfg_load(&got, shipped, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    assert_cfg_equal(&got, &want);

    text = read_text(shipped);
    code = strip_comments(text);
    for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++) {
        if (!sets_key(code, k->name)) {
            fail_msg("conf/echod.conf does not set key \"%s\"", k->name);
        }
    }
    free(code);
    free(text);
}

/* The comment stripper itself, or the previous test proves nothing. */
static void
test_commented_keys_do_not_count(void **state)
{
    char *code = strip_comments("# max_connections = 1;\n"
                                "// idle_timeout = 1;\n"
                                "/* log_level = \"info\"; */\n"
                                "syslog_ident = \"a#b\"; port=7;\n");

    (void)state;
    assert_false(sets_key(code, "max_connections"));
    assert_false(sets_key(code, "idle_timeout"));
    assert_false(sets_key(code, "log_level"));
    assert_true(sets_key(code, "syslog_ident"));
    assert_true(sets_key(code, "port"));
    assert_false(sets_key(code, "ort"));
    free(code);
}

static void
test_valid_file_sets_every_kind(void **state)
{
    struct cfg c;

    (void)state;
    if (load(&c, "listen = (\n"
                 "  { address = \"127.0.0.1\"; port = 7007; },\n"
                 "  { address = \"::1\"; port = 7007; ipv6_only = false; },\n"
                 "  { address = \"::1\"; port = 7007; protocol = \"udp\"; },\n"
                 "  { address = \"::1\"; port = 7008; protocol = \"tcp\"; }\n"
                 ");\n"
                 "max_connections = 1048576;\n"
                 "workers = 3;\n"
                 "idle_timeout = 0;\n"
                 "output_high_watermark = 4096;\n"
                 "output_low_watermark = 0;\n"
                 "shutdown_timeout = 3600;\n"
                 "listen_backlog = 1;\n"
                 "log_level = \"debug\";\n"
                 "syslog_facility = \"local3\";\n"
                 "syslog_ident = \"echo-test\";\n"
                 "udp_rate_limit = 1000000;\n"
                 "udp_rate_burst = 1;\n"
                 "udp_per_source_rate = 7;\n"
                 "udp_per_source_burst = 1000000;\n"
                 "udp_rate_limit_bytes = 0;\n"
                 "udp_per_source_rate_bytes = 1000000000;\n") != 0) {
        fail_msg("%s", err);
    }
    assert_int_equal(c.n_listen, 4);
    assert_int_equal(c.listen[0].protocol, CFG_PROTO_TCP); /* the default */
    assert_int_equal(c.listen[2].protocol, CFG_PROTO_UDP);
    assert_int_equal(c.listen[3].protocol, CFG_PROTO_TCP);
    assert_int_equal(c.udp_rate_limit, 1000000);
    assert_int_equal(c.udp_rate_burst, 1);
    assert_int_equal(c.udp_per_source_rate, 7);
    assert_int_equal(c.udp_per_source_burst, 1000000);
    assert_int_equal(c.udp_rate_limit_bytes, 0);
    assert_int_equal(c.udp_per_source_rate_bytes, 1000000000);
    assert_string_equal(c.listen[0].address, "127.0.0.1");
    assert_int_equal(c.listen[0].port, 7007);
    assert_true(c.listen[0].ipv6_only); /* the item default */
    assert_string_equal(c.listen[1].address, "::1");
    assert_false(c.listen[1].ipv6_only);
    assert_int_equal(c.max_connections, 1048576);
    assert_int_equal(c.workers, 3);
    assert_int_equal(c.idle_timeout, 0);
    assert_int_equal(c.output_high_watermark, 4096);
    assert_int_equal(c.output_low_watermark, 0);
    assert_int_equal(c.shutdown_timeout, 3600);
    assert_int_equal(c.listen_backlog, 1);
    assert_int_equal(c.log_level, LOG_DEBUG);
    assert_int_equal(c.syslog_facility, LOG_LOCAL3);
    assert_string_equal(c.syslog_ident, "echo-test");
}

/* workers: a count of threads, or "auto" for one per CPU (0 inside). */
static void
test_workers_valid(void **state)
{
    static const struct {
        const char *text;
        int64_t want;
    } cases[] = {
        {"workers = 1;\n", 1},
        {"workers = 256;\n", CFG_WORKERS_MAX},
        {"workers = 0x10;\n", 16},
        {"workers = 4L;\n", 4},
        {"workers = \"auto\";\n", CFG_WORKERS_AUTO},
        {"idle_timeout = 1;\n", CFG_WORKERS_AUTO}, /* the default */
    };
    struct cfg c;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&c, 0x5a, sizeof(c));
        if (load(&c, cases[i].text) != 0) {
            fail_msg("%s: %s", cases[i].text, err);
        }
        assert_int_equal(c.workers, cases[i].want);
    }
}

static void
test_error_workers(void **state)
{
    static const char *const values[] = {
        "0",
        "257",
        "-1",
        "\"foo\"",
        "\"AUTO\"",
        "\"auto \"",
        "\"\"",
        "\"4\"",
        "2.0",
        "1e1",
        "true",
        "false",
        "[ \"auto\" ]",
        "4294967297", /* 2^32 + 1: 1 if narrowed */
        "9223372036854775807L",
    };
    char text[128];

    (void)state;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        snprintf(text, sizeof(text), "idle_timeout = 5;\n\nworkers = %s;\n",
                 values[i]);
        expect_error(text, 3,
                     "workers: expected an integer in 1..256 or "
                     "\"auto\"");
    }
}

/* Keys left out keep their defaults; an empty file is all defaults. */
static void
test_missing_keys_keep_defaults(void **state)
{
    struct cfg c, want;

    (void)state;
    cfg_defaults(&want);
    assert_int_equal(load(&c, ""), 0);
    assert_cfg_equal(&c, &want);
    assert_int_equal(load(&c, "\n\nidle_timeout = 17;\n"), 0);
    want.idle_timeout = 17;
    assert_cfg_equal(&c, &want);
}

static void
test_empty_listen_list_is_valid(void **state)
{
    struct cfg c;

    (void)state;
    /* For socket activation only: the inherited sockets are the listeners. */
    if (load(&c, "listen = ();\n") != 0) {
        fail_msg("%s", err);
    }
    assert_int_equal(c.n_listen, 0);
}

/* service: "echo" by default, "discard" for TCP (PROXY too) and UDP,
 * "metrics" for TCP without PROXY; a different service is a different
 * entry (rebound on reload). */
static void
test_listen_service(void **state)
{
    struct cfg c;
    struct cfg_listen echo;

    (void)state;
    if (load(&c, "listen = ( { address = \"127.0.0.1\"; port = 7; },\n"
                 "  { address = \"127.0.0.1\"; port = 9; "
                 "service = \"metrics\"; },\n"
                 "  { address = \"127.0.0.1\"; port = 10; "
                 "service = \"discard\"; proxy_protocol = true;\n"
                 "    proxy_from = [ \"127.0.0.1\" ]; },\n"
                 "  { address = \"127.0.0.1\"; port = 10; "
                 "protocol = \"udp\"; service = \"discard\"; } );\n") != 0) {
        fail_msg("%s", err);
    }
    assert_string_equal(c.listen[0].service, "echo");
    assert_int_equal(cfg_listen_service(&c.listen[0]), CFG_SVC_ECHO);
    assert_false(cfg_listen_metrics(&c.listen[0]));
    assert_true(cfg_listen_metrics(&c.listen[1]));
    assert_int_equal(cfg_listen_service(&c.listen[1]), CFG_SVC_METRICS);
    assert_int_equal(cfg_listen_service(&c.listen[2]), CFG_SVC_DISCARD);
    assert_int_equal(cfg_listen_service(&c.listen[3]), CFG_SVC_DISCARD);
    assert_false(cfg_listen_metrics(&c.listen[2]));
    echo = c.listen[1];
    snprintf(echo.service, sizeof(echo.service), "echo");
    assert_false(cfg_listen_equal(&echo, &c.listen[1]));
    echo = c.listen[3];
    snprintf(echo.service, sizeof(echo.service), "echo");
    assert_false(cfg_listen_equal(&echo, &c.listen[3]));
    /* A zeroed entry (no service key seen) is echo. */
    echo.service[0] = '\0';
    assert_int_equal(cfg_listen_service(&echo), CFG_SVC_ECHO);
    cfg_fini(&c);
    expect_error("listen = (\n { address = \"::1\"; port = 7;\n"
                 "   service = \"chargen\"; } );\n",
                 3,
                 "listen[0].service: expected one of echo, discard, metrics, "
                 "stamp");
    expect_error("listen = (\n { address = \"::1\"; port = 7;\n"
                 "   protocol = \"udp\"; service = \"metrics\"; } );\n",
                 3, "listen[0].service: metrics is TCP only");
    expect_error("listen = (\n { address = \"::1\"; port = 7;\n"
                 "   proxy_protocol = true; proxy_from = [ \"::1\" ];\n"
                 "   service = \"metrics\"; } );\n",
                 4, "listen[0].service: metrics takes no proxy_protocol");
}

static void
test_port_defaults_in_a_listen_item(void **state)
{
    struct cfg c;

    (void)state;
    assert_int_equal(load(&c, "listen = ( { address = \"::\"; } );\n"), 0);
    assert_int_equal(c.n_listen, 1);
    assert_int_equal(c.listen[0].port, 7);
    assert_true(c.listen[0].ipv6_only);
}

/* ---- every error class, with its exact text ---- */

static void
test_error_syntax(void **state)
{
    (void)state;
    expect_error("max_connections = 10;\nidle_timeout = ;\n", 2,
                 "syntax error");
    expect_error("idle_timeout = 5;\n\nlisten = ( { address = \"::1\" );\n", 3,
                 "syntax error");
    expect_error("a = 1;\nmax_connections = = 5;\n", 2, "syntax error");
}

static void
test_error_unknown_top_level_key(void **state)
{
    (void)state;
    expect_error("max_connections = 10;\n\nmax_conections = 10;\n", 3,
                 "max_conections: unknown key");
    expect_error("idle_timeout = 1;\nextra = { a = 1; };\n", 2,
                 "extra: unknown key");
    /* A listen sub-key is not a top-level key. */
    expect_error("port = 7;\n", 1, "port: unknown key");
}

static void
test_error_unknown_listen_key(void **state)
{
    (void)state;
    expect_error("listen = (\n"
                 "  { address = \"127.0.0.1\"; port = 7; },\n"
                 "  { address = \"127.0.0.1\";\n"
                 "    prot = 8; }\n"
                 ");\n",
                 4, "listen[1].prot: unknown key");
    /* A top-level key is not a listen sub-key. */
    expect_error("listen = ( { address = \"::1\"; max_connections = 1; } );\n",
                 1, "listen[0].max_connections: unknown key");
}

static void
test_error_wrong_type_for_int(void **state)
{
    static const char *const values[] = {"1.5",        "1e3",     "\"100\"",
                                         "true",       "[ 1 ]",   "( 1 )",
                                         "{ a = 1; }", "\"auto\""};
    char text[128];

    (void)state;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        snprintf(text, sizeof(text),
                 "idle_timeout = 5;\nmax_connections = "
                 "%s;\n",
                 values[i]);
        expect_error(text, 2,
                     "max_connections: expected an integer in "
                     "1..1048576");
    }
    expect_error("listen = ( { address = \"::1\"; port = \"7\"; } );\n", 1,
                 "listen[0].port: expected an integer in 1..65535");
    expect_error("listen = ( { address = \"::1\"; ipv6_only = 1; } );\n", 1,
                 "listen[0].ipv6_only: expected true or false");
    expect_error("syslog_ident = 5;\n", 1,
                 "syslog_ident: expected a string of 1..31 characters");
    expect_error("listen = ( { address = 127; } );\n", 1,
                 "listen[0].address: expected a string of 1..63 characters");
}

static void
test_error_out_of_range(void **state)
{
    (void)state;
    expect_error("max_connections = 0;\n", 1,
                 "max_connections: expected an integer in 1..1048576");
    expect_error("max_connections = 1048577;\n", 1,
                 "max_connections: expected an integer in 1..1048576");
    expect_error("idle_timeout = -1;\n", 1,
                 "idle_timeout: expected an integer in 0..86400");
    expect_error("output_high_watermark = 4095;\n", 1,
                 "output_high_watermark: expected an integer in "
                 "4096..67108864");
    expect_error("output_high_watermark = 67108865;\n", 1,
                 "output_high_watermark: expected an integer in "
                 "4096..67108864");
    expect_error("shutdown_timeout = 3601;\n", 1,
                 "shutdown_timeout: expected an integer in 0..3600");
    expect_error("udp_rate_limit = 0;\n", 1,
                 "udp_rate_limit: expected an integer in 1..1000000");
    expect_error("udp_per_source_burst = 1000001;\n", 1,
                 "udp_per_source_burst: expected an integer in 1..1000000");
    expect_error("udp_rate_limit_bytes = -1;\n", 1,
                 "udp_rate_limit_bytes: expected an integer in "
                 "0..1000000000");
    expect_error("udp_per_source_rate_bytes = 1000000001;\n", 1,
                 "udp_per_source_rate_bytes: expected an integer in "
                 "0..1000000000");
    expect_error("listen = ( { address = \"::1\"; port = 0; } );\n", 1,
                 "listen[0].port: expected an integer in 1..65535");
    expect_error("listen = ( { address = \"::1\"; port = 65536; } );\n", 1,
                 "listen[0].port: expected an integer in 1..65535");
    expect_error("syslog_ident = \"\";\n", 1,
                 "syslog_ident: expected a string of 1..31 characters");
    expect_error("syslog_ident = \"0123456789012345678901234567890x\";\n", 1,
                 "syslog_ident: expected a string of 1..31 characters");
}

/* Integers are read as 64 bits and checked before narrowing: a value that
 * would wrap into range as an int must still be refused. */
static void
test_error_int64_outside_int(void **state)
{
    struct cfg c;

    (void)state;
    /* 2^32 + 5 would become 5 if narrowed to a 32-bit int. */
    expect_error("max_connections = 4294967301;\n", 1,
                 "max_connections: expected an integer in 1..1048576");
    expect_error("max_connections = 4294967301L;\n", 1,
                 "max_connections: expected an integer in 1..1048576");
    expect_error("max_connections = 0x100000005;\n", 1,
                 "max_connections: expected an integer in 1..1048576");
    expect_error("max_connections =\n  99999999999999999999;\n", 1,
                 "max_connections: expected an integer in 1..1048576");
    expect_error("idle_timeout = -4294967296;\n", 1,
                 "idle_timeout: expected an integer in 0..86400");
    /* Items sharing a line: the line is found, though the check cannot
     * tell which item on it holds the bad literal. */
    assert_int_equal(load(&c, "listen = ( { address = \"::1\"; port = 5; },"
                              " { address = \"::2\"; port = 4294967301; } "
                              ");\n"),
                     -1);
    assert_non_null(strstr(err, ".port: expected an integer in 1..65535"));
    assert_memory_equal(err, path, strlen(path));
    assert_memory_equal(err + strlen(path), ":1: listen[", 11);
    expect_error("idle_timeout = -4294967296L;\n", 1,
                 "idle_timeout: expected an integer in 0..86400");
    expect_error("output_low_watermark = 9223372036854775807L;\n", 1,
                 "output_low_watermark: expected an integer in "
                 "0..67108864");
    /* An int64 literal in range is fine. */
    assert_int_equal(load(&c, "max_connections = 500L;\n"), 0);
    assert_int_equal(c.max_connections, 500);
    /* Literals that fit are untouched by the check, however written, and
     * a big number in a comment or a string is not a literal. */
    assert_int_equal(load(&c, "output_low_watermark = 0x10;\n"
                              "idle_timeout=2147; shutdown_timeout:\n 0;\n"
                              "# max_connections = 4294967301;\n"
                              "listen_backlog = 5; # listen_backlog = "
                              "4294967301\n"
                              "max_connections = 16; syslog_ident = "
                              "\"max_connections = 4294967301\";\n"),
                     0);
    assert_int_equal(c.output_low_watermark, 16);
    assert_int_equal(c.listen_backlog, 5);
    assert_int_equal(c.max_connections, 16);
    assert_int_equal(c.idle_timeout, 2147);
    assert_int_equal(c.shutdown_timeout, 0);
}

static void
test_error_bad_level_and_facility(void **state)
{
    (void)state;
    expect_error("log_level = \"verbose\";\n", 1,
                 "log_level: expected one of emerg, alert, crit, err, "
                 "warning, notice, info, debug");
    expect_error("log_level = 7;\n", 1,
                 "log_level: expected one of emerg, alert, crit, err, "
                 "warning, notice, info, debug");
    expect_error("syslog_facility = \"kern\";\n", 1,
                 "syslog_facility: expected one of daemon, user, "
                 "local0 .. local7");
    expect_error("syslog_facility = \"local8\";\n", 1,
                 "syslog_facility: expected one of daemon, user, "
                 "local0 .. local7");
    expect_error("listen = ( { address = \"::1\";\n"
                 "             protocol = \"sctp\"; } );\n",
                 2, "listen[0].protocol: expected one of tcp, udp");
    expect_error("listen = ( { address = \"::1\"; protocol = 17; } );\n", 1,
                 "listen[0].protocol: expected one of tcp, udp");
    expect_error("listen = ( { address = \"::1\"; protocol = \"UDP\"; } );\n",
                 1, "listen[0].protocol: expected one of tcp, udp");
}

static void
test_error_bad_address(void **state)
{
    (void)state;
    expect_error("listen = (\n  { address = \"localhost\"; port = 7; }\n);\n",
                 2,
                 "listen[0].address: expected a numeric IPv4 or IPv6 "
                 "address, got \"localhost\"");
    expect_error("listen = ( { address = \"127.0.0.256\"; } );\n", 1,
                 "listen[0].address: expected a numeric IPv4 or IPv6 "
                 "address, got \"127.0.0.256\"");
    expect_error("listen = ( { address = \"[::1]\"; } );\n", 1,
                 "listen[0].address: expected a numeric IPv4 or IPv6 "
                 "address, got \"[::1]\"");
    /* The message is one line whatever the value holds: it also goes to
     * sd_notify as STATUS=, where a newline would start a new variable. */
    expect_error("listen = ( { address = \"1\\nREADY=1\\t\\\"\"; } );\n", 1,
                 "listen[0].address: expected a numeric IPv4 or IPv6 "
                 "address, got \"1\\x0aREADY=1\\x09\\x22\"");
}

static void
test_error_missing_address(void **state)
{
    (void)state;
    expect_error("listen = (\n"
                 "  { address = \"::1\"; },\n"
                 "  { port = 7; }\n"
                 ");\n",
                 3, "listen[1].address: missing (required)");
    /* Any entry, empty or not, at the line the entry starts on. */
    expect_error("idle_timeout = 1;\nlisten = ( {\n  ipv6_only = false;\n"
                 "  protocol = \"udp\"; } );\n",
                 2, "listen[0].address: missing (required)");
    expect_error("listen = ( { address = \"::1\"; }, {} );\n", 1,
                 "listen[1].address: missing (required)");
    /* A bad value in the entry is reported first, at its own line. */
    expect_error("listen = ( {\n  port = 0; } );\n", 2,
                 "listen[0].port: expected an integer in 1..65535");
}

/* No key of the real table is a required top-level key yet, so a table
 * of the test's own drives the same check over a parsed file. Rows that
 * are not required, or required in a listen entry, are passed over; the
 * fault is on no line, so the message names the file alone. */
static void
test_error_missing_required_top_level(void **state)
{
    static const struct cfg_key keys[] = {
        {.name = "optional",
         .type = CFG_INT,
         .scope = CFG_TOP,
         .required = false,
         .reload = CFG_RELOAD,
         .doc = "-"},
        {.name = "in_entry",
         .type = CFG_INT,
         .scope = CFG_ITEM,
         .required = true,
         .reload = CFG_RELOAD,
         .doc = "-"},
        {.name = "needed",
         .type = CFG_INT,
         .scope = CFG_TOP,
         .required = true,
         .reload = CFG_RELOAD,
         .doc = "-"},
        {.name = NULL},
    };
    struct cfg_ctx x = {path, err, sizeof(err)};
    char want[CFG_ERR_MAX + PATH_MAX];
    config_t lc;

    (void)state;
    write_file("t.conf", "other = 1;\n\nneed = 2;\n");
    config_init(&lc);
    assert_int_equal(config_read_file(&lc, path), CONFIG_TRUE);
    assert_int_equal(
        cfg_check_required(&x, config_root_setting(&lc), keys, CFG_TOP, ""),
        -1);
    snprintf(want, sizeof(want), "%s: needed: missing (required)", path);
    assert_string_equal(err, want);
    config_destroy(&lc);

    write_file("t.conf", "other = 1;\nneeded = 2;\n");
    config_init(&lc);
    assert_int_equal(config_read_file(&lc, path), CONFIG_TRUE);
    assert_int_equal(
        cfg_check_required(&x, config_root_setting(&lc), keys, CFG_TOP, ""), 0);
    config_destroy(&lc);
}

static void
test_error_listen_shape(void **state)
{
    char text[8192];
    size_t n;

    (void)state;
    expect_error("listen = 7;\n", 1,
                 "listen: expected a list ( { address = ...; port = ...; }, "
                 "... )");
    expect_error("listen = ( \"::1\" );\n", 1,
                 "listen[0]: expected a group { address = ...; port = ...; }");
    /* One more than the fixed array holds. */
    n = (size_t)snprintf(text, sizeof(text), "listen = (\n");
    for (int i = 0; i <= CFG_MAX_LISTEN; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              "%s{ address = \"127.0.0.1\"; port = %d; }\n",
                              i ? "," : "", 1000 + i);
    }
    snprintf(text + n, sizeof(text) - n, ");\n");
    expect_error(text, 1, "listen: at most 64 entries");
}

static void
test_error_duplicate_listen(void **state)
{
    (void)state;
    expect_error("listen = (\n"
                 "  { address = \"127.0.0.1\"; port = 7; },\n"
                 "  { address = \"::1\"; port = 7; },\n"
                 "  { address = \"127.0.0.1\"; }\n"
                 ");\n",
                 4, "listen[2]: duplicate of listen[0]");
    /* TCP and UDP on one address and port are two different sockets. */
    expect_error(
        "listen = (\n"
        "  { address = \"127.0.0.1\"; port = 7; },\n"
        "  { address = \"127.0.0.1\"; port = 7; protocol = \"udp\"; },\n"
        "  { address = \"127.0.0.1\"; protocol = \"udp\"; }\n"
        ");\n",
        4, "listen[2]: duplicate of listen[1]");
    /* ipv6_only does not make a second socket on the same port bindable. */
    expect_error("listen = (\n"
                 "  { address = \"::\"; port = 7; },\n"
                 "  { address = \"::\"; port = 7; ipv6_only = false; }\n"
                 ");\n",
                 3, "listen[1]: duplicate of listen[0]");
}

static void
test_error_watermarks(void **state)
{
    struct cfg c;

    (void)state;
    /* Named at the low watermark's line when the file sets it. */
    expect_error("output_high_watermark = 8192;\n"
                 "output_low_watermark = 8192;\n",
                 2,
                 "output_low_watermark: must be less than "
                 "output_high_watermark (8192)");
    expect_error("output_low_watermark = 9000;\n\n"
                 "output_high_watermark = 8192;\n",
                 1,
                 "output_low_watermark: must be less than "
                 "output_high_watermark (8192)");
    /* Else at the high watermark's line: the default low (16384) is not
     * below a high of 8192. */
    expect_error("idle_timeout = 1;\noutput_high_watermark = 8192;\n", 2,
                 "output_low_watermark: must be less than "
                 "output_high_watermark (8192)");
    assert_int_equal(load(&c, "output_high_watermark = 8192;\n"
                              "output_low_watermark = 8191;\n"),
                     0);
}

/* The same rule for any pair of keys the table links, at any scope, with
 * the prefix of the group: a table of the test's own over struct cfg's
 * fields, and groups of a parsed file. */
static void
test_error_below_any_pair(void **state)
{
    static const struct cfg_key keys[] = {
        {.name = "hi",
         .type = CFG_INT,
         .scope = CFG_ITEM,
         .off = CFG_OFF(shutdown_timeout),
         .reload = CFG_RELOAD,
         .doc = "-"},
        {.name = "top",
         .type = CFG_INT,
         .scope = CFG_TOP,
         .off = CFG_OFF(idle_timeout),
         .below = "hi",
         .reload = CFG_RELOAD,
         .doc = "-"},
        {.name = "lo",
         .type = CFG_INT,
         .scope = CFG_ITEM,
         .off = CFG_OFF(idle_timeout),
         .below = "hi",
         .reload = CFG_RELOAD,
         .doc = "-"},
        {.name = NULL},
    };
    static const struct {
        const char *text;
        int64_t lo, hi;
        int line; /* 0: no error */
    } cases[] = {
        {"g = { x = 1;\n  lo = 5;\n  hi = 5; };\n", 5, 5, 2},
        {"g = { hi = 3;\n  lo = 2; };\n", 2, 3, 0},
        /* lo is its default: the fault is hi's */
        {"g = { x = 1;\n  hi = 3; };\n", 4, 3, 2},
        /* neither set: the group's line */
        {"\ng = { x = 1; };\n", 4, 4, 2},
    };
    struct cfg_ctx x = {path, err, sizeof(err)};
    char want[CFG_ERR_MAX + PATH_MAX];
    struct cfg c;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        config_t lc;
        int rc;

        write_file("t.conf", cases[i].text);
        config_init(&lc);
        assert_int_equal(config_read_file(&lc, path), CONFIG_TRUE);
        cfg_defaults(&c);
        c.idle_timeout = cases[i].lo;
        c.shutdown_timeout = cases[i].hi;
        memset(err, 0, sizeof(err));
        rc = cfg_check_below(&x, config_lookup(&lc, "g"), &c, keys, CFG_ITEM,
                             "g.");
        config_destroy(&lc);
        if (cases[i].line == 0) {
            assert_int_equal(rc, 0);
            continue;
        }
        assert_int_equal(rc, -1);
        snprintf(want, sizeof(want),
                 "%s:%d: g.lo: must be less than g.hi (%lld)", path,
                 cases[i].line, (long long)cases[i].hi);
        assert_string_equal(err, want);
    }
}

static void
test_error_missing_file(void **state)
{
    struct cfg c;
    char want[CFG_ERR_MAX + PATH_MAX];

    (void)state;
    snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
    assert_int_equal(cfg_load(&c, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: cannot open: %s", path, strerror(ENOENT));
    assert_string_equal(err, want);
}

/* An error inside an included file names that file and its line. */
static void
test_error_in_included_file(void **state)
{
    char inc[PATH_MAX + 32], text[PATH_MAX + 128];
    struct cfg c;
    char want[CFG_ERR_MAX + PATH_MAX];

    (void)state;
    write_file("inc.conf", "idle_timeout = 1;\nmax_connections = 0;\n");
    snprintf(inc, sizeof(inc), "%s", path);
    snprintf(text, sizeof(text), "shutdown_timeout = 1;\n@include \"%s\"\n",
             inc);
    assert_int_equal(load(&c, text), -1);
    snprintf(want, sizeof(want),
             "%s:2: max_connections: expected an integer in 1..1048576", inc);
    assert_string_equal(err, want);
}

/* libconfig's scanner calls exit(2) when it cannot read an included file:
 * anything but a regular file must be refused before it gets there, in the
 * file named and in the files it includes. */
static void
test_error_include_target(void **state)
{
    char inc[PATH_MAX + 32], text[2 * PATH_MAX + 128];
    char want[CFG_ERR_MAX + 2 * PATH_MAX];
    struct cfg c;

    (void)state;
    snprintf(text, sizeof(text), "idle_timeout = 1;\n  @include\t\"%s\"\n",
             tmpdir);
    assert_int_equal(load(&c, text), -1);
    assert_int_equal(errno, EINVAL);
    snprintf(want, sizeof(want), "%s:2: @include \"%s\": not a regular file",
             path, tmpdir);
    assert_string_equal(err, want);

    /* One level down: the error names the included file and its line. */
    snprintf(text, sizeof(text), "# a directory\n@include \"%s/\"\n", tmpdir);
    write_file("inc.conf", text);
    snprintf(inc, sizeof(inc), "%s", path);
    snprintf(text, sizeof(text), "@include \"%s\"\n", inc);
    assert_int_equal(load(&c, text), -1);
    snprintf(want, sizeof(want),
             "%s:2: @include \"%s/\": not a regular "
             "file",
             inc, tmpdir);
    assert_string_equal(err, want);

    /* flex would read "\/" as "/": names with escapes, a NUL byte or a
     * line break are refused rather than decoded here. */
    expect_error("@include \"\\/\"\n", 1,
                 "@include: expected a file name "
                 "in double quotes on one line, without escapes");
    expect_error("@include \"/\n\"\n", 1,
                 "@include: expected a file name "
                 "in double quotes on one line, without escapes");

    /* A regular file still works, and a missing one is libconfig's. */
    write_file("inc.conf", "idle_timeout = 7;\n");
    snprintf(text, sizeof(text), "@include \"%s\"\n", path);
    assert_int_equal(load(&c, text), 0);
    assert_int_equal(c.idle_timeout, 7);
    snprintf(text, sizeof(text), "@include \"%s/none.conf\"\n", tmpdir);
    expect_error(text, 1, "cannot open include file");
}

/* libconfig takes a NUL byte in a string or a comment like any other
 * byte: the checks that read the text themselves must see past it. */
static void
test_nul_byte_hides_nothing(void **state)
{
    static const char wrap[] = "# \0\nmax_connections = 4294967301;\n";
    static const char inc[] = "syslog_ident = \"a\0b\";\n@include \".\"\n";
    char want[CFG_ERR_MAX + PATH_MAX];
    struct cfg c;

    (void)state;
    assert_int_equal(load_bytes(&c, wrap, sizeof(wrap) - 1), -1);
    snprintf(want, sizeof(want),
             "%s:2: max_connections: expected an integer in 1..1048576", path);
    assert_string_equal(err, want);
    assert_int_equal(load_bytes(&c, inc, sizeof(inc) - 1), -1);
    snprintf(want, sizeof(want), "%s:2: @include \".\": not a regular file",
             path);
    assert_string_equal(err, want);
}

/* A small error buffer truncates the message and stays terminated. */
static void
test_error_truncated_to_buffer(void **state)
{
    struct cfg c;
    char small[12];

    (void)state;
    write_file("t.conf", "max_connections = 0;\n");
    memset(small, 'x', sizeof(small));
    assert_int_equal(cfg_load(&c, path, small, sizeof(small)), -1);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_memory_equal(small, path, sizeof(small) - 1);
}

/* ---- who may connect: allow, deny, proxy_from ---- */

/* Whether the lists in force for entry l of c serve a client at text. */
static bool
serves(const struct cfg *c, const struct cfg_listen *l, const char *text)
{
    struct sockaddr_storage ss;
    socklen_t len;

    assert_int_equal(sock_addr(text, 7, &ss, &len), 0);
    return acl_permits(cfg_listen_allow(c, l), cfg_listen_deny(c, l),
                       (const struct sockaddr *)&ss);
}

static bool
in_list(const struct acl *a, const char *text)
{
    struct sockaddr_storage ss;
    socklen_t len;

    assert_int_equal(sock_addr(text, 7, &ss, &len), 0);
    return acl_match(a, (const struct sockaddr *)&ss);
}

static void
test_acl_top_level(void **state)
{
    struct cfg c;

    (void)state;
    if (load(&c, "allow = [ \"192.0.2.0/24\", \"2001:db8::/32\",\n"
                 "          \"::ffff:198.51.100.0/120\" ];\n"
                 "deny = ( \"192.0.2.128/25\" );\n") != 0) {
        fail_msg("%s", err);
    }
    assert_int_equal(acl_count(c.allow), 3);
    assert_int_equal(acl_count(c.deny), 1);
    for (size_t i = 0; i < c.n_listen; i++) {
        /* the built-in listeners take the top-level lists */
        assert_false(c.listen[i].own_acl);
        assert_ptr_equal(cfg_listen_allow(&c, &c.listen[i]), c.allow);
        assert_ptr_equal(cfg_listen_deny(&c, &c.listen[i]), c.deny);
    }
    assert_true(serves(&c, &c.listen[0], "192.0.2.1"));
    assert_true(serves(&c, &c.listen[0], "::ffff:192.0.2.127"));
    assert_false(serves(&c, &c.listen[0], "192.0.2.128"));
    assert_true(serves(&c, &c.listen[0], "198.51.100.9"));
    assert_true(serves(&c, &c.listen[0], "2001:db8::1"));
    assert_false(serves(&c, &c.listen[0], "2001:db9::1"));
    assert_false(serves(&c, &c.listen[0], "203.0.113.1"));
    cfg_fini(&c);
    assert_null(c.allow);
    assert_null(c.deny);

    /* An empty list is no list, as an array or as a list. */
    if (load(&c, "allow = [ ];\ndeny = ( );\n") != 0) {
        fail_msg("%s", err);
    }
    assert_null(c.allow);
    assert_null(c.deny);
    assert_true(serves(&c, &c.listen[1], "2001:db8::1"));
}

/* A listen entry that sets allow or deny (even to an empty list)
 * replaces both top-level lists for itself; proxy_from does not. */
static void
test_acl_per_listen(void **state)
{
    struct cfg c;
    const struct cfg_listen *l = c.listen;

    (void)state;
    if (load(&c, "allow = [ \"10.0.0.0/8\" ];\n"
                 "deny = [ \"10.66.0.0/16\" ];\n"
                 "listen = (\n"
                 "  { address = \"127.0.0.1\"; port = 7001; },\n"
                 "  { address = \"127.0.0.1\"; port = 7002;\n"
                 "    deny = [ \"10.1.0.0/16\" ]; },\n"
                 "  { address = \"127.0.0.1\"; port = 7003; allow = [ ]; },\n"
                 "  { address = \"127.0.0.1\"; port = 7004;\n"
                 "    proxy_from = [ \"127.0.0.1\", \"::1\" ]; },\n"
                 "  { address = \"::1\"; port = 7005; deny = [ ];\n"
                 "    allow = ( \"192.0.2.0/24\" ); }\n"
                 ");\n") != 0) {
        fail_msg("%s", err);
    }
    assert_int_equal(c.n_listen, 5);
    /* [0]: the top-level lists */
    assert_false(l[0].own_acl);
    assert_null(l[0].allow);
    assert_true(serves(&c, &l[0], "10.1.2.3"));
    assert_false(serves(&c, &l[0], "10.66.2.3"));
    assert_false(serves(&c, &l[0], "192.0.2.1"));
    /* [1]: only deny set, so allow is empty, not the top-level one */
    assert_true(l[1].own_acl);
    assert_null(cfg_listen_allow(&c, &l[1]));
    assert_int_equal(acl_count(cfg_listen_deny(&c, &l[1])), 1);
    assert_true(serves(&c, &l[1], "192.0.2.1"));
    assert_true(serves(&c, &l[1], "10.66.2.3"));
    assert_false(serves(&c, &l[1], "10.1.2.3"));
    /* [2]: both empty: everyone */
    assert_true(l[2].own_acl);
    assert_null(cfg_listen_allow(&c, &l[2]));
    assert_null(cfg_listen_deny(&c, &l[2]));
    assert_true(serves(&c, &l[2], "10.66.2.3"));
    assert_true(serves(&c, &l[2], "2001:db8::1"));
    /* [3]: proxy_from is stored and changes nothing else */
    assert_false(l[3].own_acl);
    assert_int_equal(acl_count(l[3].proxy_from), 2);
    assert_true(in_list(l[3].proxy_from, "127.0.0.1"));
    assert_true(in_list(l[3].proxy_from, "::1"));
    assert_false(in_list(l[3].proxy_from, "127.0.0.2"));
    assert_false(serves(&c, &l[3], "192.0.2.1"));
    assert_null(l[0].proxy_from);
    /* [4]: its own allow, an empty deny */
    assert_true(l[4].own_acl);
    assert_null(l[4].deny);
    assert_true(serves(&c, &l[4], "192.0.2.1"));
    assert_false(serves(&c, &l[4], "10.1.2.3"));
    cfg_fini(&c);
    for (size_t i = 0; i < 5; i++) {
        assert_null(l[i].allow);
        assert_null(l[i].deny);
        assert_null(l[i].proxy_from);
    }
    assert_null(c.allow);
}

/* Lists are not part of a socket's identity; cfg_listen_same_acl
 * compares what the lists in force match, however they are written. */
static void
test_acl_identity_and_sameness(void **state)
{
    static struct cfg a, b;
    struct cfg_listen copy;

    (void)state;
    if (load(&a,
             "allow = [ \"10.0.0.0/9\", \"10.128.0.0/9\" ];\n"
             "listen = ( { address = \"::1\"; port = 7; },\n"
             "  { address = \"::1\"; port = 8; proxy_from = [ \"::1\" ]; },\n"
             "  { address = \"::1\"; port = 9; deny = [ ]; } );\n") != 0) {
        fail_msg("%s", err);
    }
    if (load(&b, "allow = [ \"10.0.0.0/8\" ];\n"
                 "listen = ( { address = \"::1\"; port = 7; },\n"
                 "  { address = \"::1\"; port = 8; },\n"
                 "  { address = \"::1\"; port = 9; allow = [ \"10.0.0.0/8\" ]; "
                 "} );\n") != 0) {
        fail_msg("%s", err);
    }
    for (size_t i = 0; i < 3; i++) {
        assert_true(cfg_listen_equal(&a.listen[i], &b.listen[i]));
    }
    /* the same allow, written otherwise */
    assert_true(cfg_listen_same_acl(&a, &a.listen[0], &b, &b.listen[0]));
    /* proxy_from differs */
    assert_false(cfg_listen_same_acl(&a, &a.listen[1], &b, &b.listen[1]));
    /* [2]: everyone in a, only 10/8 in b */
    assert_false(cfg_listen_same_acl(&a, &a.listen[2], &b, &b.listen[2]));
    /* b's [2] has its own list equal to b's top-level one */
    assert_true(cfg_listen_same_acl(&b, &b.listen[0], &b, &b.listen[2]));
    /* a copy with other lists is the same socket */
    copy = a.listen[0];
    copy.own_acl = true;
    copy.deny = b.allow;
    assert_true(cfg_listen_equal(&copy, &a.listen[0]));
    assert_false(cfg_listen_same_acl(&a, &copy, &a, &a.listen[0]));
    /* a reload that only rewrites a list is no restart change, and the
     * reloadable ones are told apart by what they match */
    {
        char buf[64];

        assert_int_equal(cfg_restart_changes(&a, &b, buf, sizeof(buf)), 0);
        assert_int_equal(
            cfg_changes(cfg_keys, CFG_RELOAD, &a, &b, buf, sizeof(buf)), 0);
        acl_free(b.deny);
        b.deny = acl_ref(b.allow);
        assert_int_equal(
            cfg_changes(cfg_keys, CFG_RELOAD, &a, &b, buf, sizeof(buf)), 1);
        assert_string_equal(buf, "deny");
    }
    cfg_fini(&a);
    cfg_fini(&b);
}

/* Every bad list and element, at the line of the element. */
static void
test_error_acl(void **state)
{
    static const struct {
        const char *text;
        int line;
        const char *what;
    } cases[] = {
        {"idle_timeout = 1;\ndeny = \"10.0.0.0/8\";\n", 2,
         "deny: expected a list of addresses or prefixes, such as "
         "[ \"192.0.2.0/24\", \"2001:db8::/32\" ]"},
        {"allow = 5;\n", 1,
         "allow: expected a list of addresses or prefixes, such as "
         "[ \"192.0.2.0/24\", \"2001:db8::/32\" ]"},
        {"deny = { a = \"10.0.0.0/8\"; };\n", 1,
         "deny: expected a list of addresses or prefixes, such as "
         "[ \"192.0.2.0/24\", \"2001:db8::/32\" ]"},
        {"allow = [\n  \"10.0.0.0/8\",\n  \"10.0.0.1/8\" ];\n", 3,
         "allow[1]: \"10.0.0.1/8\": host bits set beyond /8: did you mean "
         "\"10.0.0.0/8\"?"},
        {"deny = [ \"2001:db8::1/32\" ];\n", 1,
         "deny[0]: \"2001:db8::1/32\": host bits set beyond /32: did you "
         "mean \"2001:db8::/32\"?"},
        {"deny = [ \"10.0.0.0/33\" ];\n", 1,
         "deny[0]: \"10.0.0.0/33\": prefix length must be 0..32"},
        {"deny = [ \"fe80::/129\" ];\n", 1,
         "deny[0]: \"fe80::/129\": prefix length must be 0..128"},
        {"deny = [ \"::/0\",\n \"300.1.1.1\" ];\n", 2,
         "deny[1]: \"300.1.1.1\": not an IPv4 or IPv6 address"},
        {"deny = [ \"\" ];\n", 1, "deny[0]: \"\": not an IPv4 or IPv6 address"},
        {"deny = [ \"10.0.0.0/8x\" ];\n", 1,
         "deny[0]: \"10.0.0.0/8x\": junk after the prefix length"},
        {"deny = [ \"10.0.0.0/\" ];\n", 1,
         "deny[0]: \"10.0.0.0/\": expected a prefix length 0..32 after "
         "\"/\""},
        /* one line whatever the value holds (it also goes to STATUS=) */
        {"deny = [ \"10.0.0.0/8\\nREADY=1\" ];\n", 1,
         "deny[0]: \"10.0.0.0/8\\x0aREADY=1\": junk after the prefix "
         "length"},
        /* elements that are not strings, in a list or an array */
        {"deny = ( \"10.0.0.0/8\",\n  7 );\n", 2, "deny[1]: expected a string"},
        {"deny = [ 1, 2 ];\n", 1, "deny[0]: expected a string"},
        {"deny = ( ( \"10.0.0.0/8\" ) );\n", 1, "deny[0]: expected a string"},
        {"allow = ( \"::1\", \"::2\",\n\n  { a = 1; } );\n", 3,
         "allow[2]: expected a string"},
        {"deny = ( [ \"10.0.0.0/8\" ] );\n", 1, "deny[0]: expected a string"},
        /* libconfig refuses a mixed array itself */
        {"deny = [ \"10.0.0.0/8\",\n 1 ];\n", 2,
         "mismatched element type in array"},
        /* in a listen entry, with the entry's label */
        {"listen = ( { address = \"::1\";\n  allow = [ \"::1/64\" ]; } );\n", 2,
         "listen[0].allow[0]: \"::1/64\": host bits set beyond /64: did you "
         "mean \"::/64\"?"},
        {"listen = ( { address = \"::1\"; },\n"
         "  { address = \"::2\";\n"
         "    proxy_from = [ \"127.0.0.1\",\n"
         "                   \"localhost\" ]; } );\n",
         4,
         "listen[1].proxy_from[1]: \"localhost\": not an IPv4 or IPv6 "
         "address"},
        {"listen = ( { address = \"::1\"; deny = \"::/0\"; } );\n", 1,
         "listen[0].deny: expected a list of addresses or prefixes, such as "
         "[ \"192.0.2.0/24\", \"2001:db8::/32\" ]"},
        /* proxy_from belongs to a listen entry only */
        {"idle_timeout = 1;\nproxy_from = [ ];\n", 2,
         "proxy_from: unknown key"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_error(cases[i].text, cases[i].line, cases[i].what);
    }
}

/* A load that fails after it built lists frees them all and leaves no
 * pointer to them (ASan finds what it would leak). */
static void
test_acl_failed_load_frees(void **state)
{
    static const char *const texts[] = {
        /* a later top-level key */
        "allow = [ \"10.0.0.0/8\" ];\ndeny = [ \"::/0\" ];\n"
        "max_connections = 0;\n",
        /* a cross-key check, after the whole file was read */
        "deny = [ \"::/0\" ];\noutput_low_watermark = 70000;\n",
        /* a later key of the same entry */
        "listen = ( { address = \"::1\"; allow = [ \"10.0.0.0/8\" ];\n"
        "  deny = [ \"::/0\" ]; proxy_from = [ \"::1\" ]; port = 0; } );\n",
        /* a bad list after a good one in the same entry */
        "listen = ( { address = \"::1\"; allow = [ \"10.0.0.0/8\" ];\n"
        "  deny = [ \"x\" ]; } );\n",
        /* a required key missing, a bad address, after the lists */
        "listen = ( { allow = [ \"10.0.0.0/8\" ]; } );\n",
        "listen = ( { proxy_from = [ \"::1\" ]; address = \"x\"; } );\n",
        /* a duplicate entry, itself complete with lists */
        "listen = ( { address = \"::1\"; allow = [ \"10.0.0.0/8\" ]; },\n"
        "  { address = \"::1\"; deny = [ \"::/0\" ]; } );\n",
        /* an entry after entries with lists */
        "allow = [ \"10.0.0.0/8\" ];\n"
        "listen = ( { address = \"::1\"; deny = [ \"::/0\" ]; },\n"
        "  7 );\n",
    };
    struct cfg c;

    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        if (load(&c, texts[i]) != -1) {
            fail_msg("case %zu loaded", i);
        }
        assert_int_equal(errno, EINVAL);
        assert_null(c.allow);
        assert_null(c.deny);
        for (size_t j = 0; j < c.n_listen && j < CFG_MAX_LISTEN; j++) {
            assert_null(c.listen[j].allow);
            assert_null(c.listen[j].deny);
            assert_null(c.listen[j].proxy_from);
        }
    }
}

/* cfg_fini frees every list of a loaded config once, may be called again
 * and on a config that never held one; a reference taken before it keeps
 * that list alive. */
static void
test_cfg_fini(void **state)
{
    struct cfg c;
    struct acl *kept;

    (void)state;
    cfg_defaults(&c);
    cfg_fini(&c);
    if (load(&c, "allow = [ \"10.0.0.0/8\" ];\ndeny = [ \"::/0\" ];\n"
                 "listen = (\n"
                 "  { address = \"::1\"; allow = [ \"::1\" ];\n"
                 "    deny = [ \"127.0.0.1\" ]; proxy_from = [ \"::1\" ]; },\n"
                 "  { address = \"::2\"; proxy_from = [ \"::2\" ]; },\n"
                 "  { address = \"::3\"; allow = [ ]; }\n"
                 ");\n") != 0) {
        fail_msg("%s", err);
    }
    kept = acl_ref(c.listen[1].proxy_from);
    cfg_fini(&c);
    assert_null(c.allow);
    assert_null(c.deny);
    for (size_t i = 0; i < c.n_listen; i++) {
        assert_null(c.listen[i].allow);
        assert_null(c.listen[i].deny);
        assert_null(c.listen[i].proxy_from);
    }
    assert_int_equal(c.n_listen, 3); /* the rest is left as it was */
    assert_true(c.listen[0].own_acl);
    cfg_fini(&c);
    assert_true(in_list(kept, "::2"));
    acl_free(kept);
}

/* A list of 100,000 prefixes loads whole, and an error in it names the
 * line of the bad element (its timing is bench/aclbench's business). */
static void
test_acl_long_list(void **state)
{
    const size_t n = 100000;
    size_t cap = n * 32 + 256, used = 0;
    char *text = malloc(cap);
    static struct cfg c;
    char want[CFG_ERR_MAX + PATH_MAX];

    (void)state;
    assert_non_null(text);
    used += (size_t)snprintf(text + used, cap - used, "deny = [\n");
    for (size_t i = 0; i < n; i++) {
        used += (size_t)snprintf(text + used, cap - used,
                                 "  \"%zu.%zu.%zu.0/24\",\n", 10 + i / 65536,
                                 i / 256 % 256, i % 256);
    }
    used += (size_t)snprintf(text + used, cap - used,
                             "  \"2001:db8::/32\" ];\nmax_connections = 7;\n");
    assert_true(used < cap);
    if (load(&c, text) != 0) {
        fail_msg("%s", err);
    }
    assert_int_equal(acl_count(c.deny), n + 1);
    assert_int_equal(acl_ranges(c.deny), 2); /* adjacent /24s: one range */
    assert_int_equal(c.max_connections, 7);
    assert_true(in_list(c.deny, "10.0.0.1"));
    assert_true(in_list(c.deny, "11.134.159.255")); /* the last one */
    assert_false(in_list(c.deny, "11.134.160.0"));
    cfg_fini(&c);

    /* The next to last /24 with a host bit: line 1 + n - 1. */
    memcpy(strstr(text, "\"11.134.158.0/24\"") + 12, "1", 1);
    assert_int_equal(load(&c, text), -1);
    snprintf(want, sizeof(want),
             "%s:%zu: deny[%zu]: \"11.134.158.1/24\": host bits set beyond "
             "/24: did you mean \"11.134.158.0/24\"?",
             path, n, n - 2);
    assert_string_equal(err, want);
    free(text);
}

/* ---- what a reload cannot apply ---- */

/* Loaded files, and the real table: only workers needs a restart, and a
 * change to any other key is not reported. */
static void
test_restart_changes(void **state)
{
    static struct cfg old, next; /* large */
    char buf[64];

    (void)state;
    cfg_defaults(&old);
    assert_int_equal(load(&next, "workers = \"auto\";\n"), 0);
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(cfg_restart_changes(&old, &next, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");

    assert_int_equal(load(&next, "workers = 2;\nmax_connections = 5;\n"), 0);
    assert_int_equal(cfg_restart_changes(&old, &next, buf, sizeof(buf)), 1);
    assert_string_equal(buf, "workers");
    /* Back again is a change too, and the count needs no buffer. */
    assert_int_equal(cfg_restart_changes(&next, &old, NULL, 0), 1);
    /* Cut to fit, still counted. */
    assert_int_equal(cfg_restart_changes(&old, &next, buf, 4), 1);
    assert_string_equal(buf, "wor");

    /* Every reloadable key changed at once: nothing needs a restart. */
    if (load(&next,
             "listen = ( { address = \"::1\"; port = 7007; } );\n"
             "max_connections = 5; max_connections_per_source = 1;\n"
             "source_prefix_ipv4 = 24; source_prefix_ipv6 = 48;\n"
             "idle_timeout = 1; output_high_watermark = 8192;\n"
             "output_low_watermark = 1; shutdown_timeout = 1;\n"
             "listen_backlog = 1; log_level = \"debug\";\n"
             "syslog_facility = \"local1\"; syslog_ident = \"e\";\n"
             "udp_rate_limit = 1; udp_rate_burst = 1;\n"
             "udp_per_source_rate = 1; udp_per_source_burst = 1;\n"
             "udp_rate_limit_bytes = 1; udp_per_source_rate_bytes = 1;\n"
             "allow = [ \"10.0.0.0/8\" ]; deny = [ \"::/0\" ];\n") != 0) {
        fail_msg("%s", err);
    }
    assert_int_equal(cfg_restart_changes(&old, &next, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    cfg_fini(&next);
}

/* The walk itself, with a table of the test's own: several keys of every
 * kind, in table order, each compared by its type; reloadable keys and
 * keys of a listen entry are passed over. */
static void
test_restart_changes_any_table(void **state)
{
    static const struct cfg_key keys[] = {
        {.name = "a_int",
         .type = CFG_INT,
         .scope = CFG_TOP,
         .off = CFG_OFF(max_connections),
         .reload = CFG_RESTART},
        {.name = "reloaded",
         .type = CFG_INT,
         .scope = CFG_TOP,
         .off = CFG_OFF(idle_timeout),
         .reload = CFG_RELOAD},
        {.name = "in_entry",
         .type = CFG_INT,
         .scope = CFG_ITEM,
         .off = CFG_OFF(idle_timeout),
         .reload = CFG_RESTART},
        {.name = "a_string",
         .type = CFG_STRING,
         .scope = CFG_TOP,
         .off = CFG_OFF(syslog_ident),
         .max = CFG_IDENT_MAX - 1,
         .reload = CFG_RESTART},
        {.name = "a_list",
         .type = CFG_LISTEN,
         .scope = CFG_TOP,
         .reload = CFG_RESTART},
        {.name = NULL},
    };
    static struct cfg old, next;
    char buf[64];

    (void)state;
    cfg_defaults(&old);
    next = old;
    next.idle_timeout++;
    assert_int_equal(
        cfg_changes(keys, CFG_RESTART, &old, &next, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    assert_int_equal(
        cfg_changes(keys, CFG_RELOAD, &old, &next, buf, sizeof(buf)), 1);
    assert_string_equal(buf, "reloaded");

    next.max_connections++;
    snprintf(next.syslog_ident, sizeof(next.syslog_ident), "other");
    next.listen[1].ipv6_only = false;
    assert_int_equal(
        cfg_changes(keys, CFG_RESTART, &old, &next, buf, sizeof(buf)), 3);
    assert_string_equal(buf, "a_int, a_string, a_list");
    /* A shorter list is a change even where the rest agrees. */
    next = old;
    next.n_listen = 1;
    assert_int_equal(
        cfg_changes(keys, CFG_RESTART, &old, &next, buf, sizeof(buf)), 1);
    assert_string_equal(buf, "a_list");
    /* Cut inside the second name: both counted, the text terminated. */
    next.max_connections++;
    assert_int_equal(cfg_changes(keys, CFG_RESTART, &old, &next, buf, 9), 2);
    assert_string_equal(buf, "a_int, a");
}

static void
test_default_text(void **state)
{
    char buf[256];

    (void)state;
    for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++) {
        cfg_default_text(k, buf, sizeof(buf));
        assert_true(strlen(buf) > 0);
        if (strcmp(k->name, "max_connections") == 0) {
            assert_string_equal(buf, "10000");
        } else if (strcmp(k->name, "log_level") == 0) {
            assert_string_equal(buf, "\"info\"");
        } else if (strcmp(k->name, "syslog_facility") == 0) {
            assert_string_equal(buf, "\"daemon\"");
        } else if (strcmp(k->name, "ipv6_only") == 0) {
            assert_string_equal(buf, "true");
        } else if (strcmp(k->name, "protocol") == 0) {
            assert_string_equal(buf, "\"tcp\"");
        } else if (strcmp(k->name, "workers") == 0) {
            assert_string_equal(buf, "\"auto\"");
        } else if (k->type == CFG_CIDRS) {
            assert_string_equal(buf, "[ ]");
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_equal_table),
        cmocka_unit_test(test_table_columns),
        cmocka_unit_test(test_shipped_conf_is_defaults),
        cmocka_unit_test(test_commented_keys_do_not_count),
        cmocka_unit_test(test_valid_file_sets_every_kind),
        cmocka_unit_test(test_workers_valid),
        cmocka_unit_test(test_missing_keys_keep_defaults),
        cmocka_unit_test(test_empty_listen_list_is_valid),
        cmocka_unit_test(test_listen_service),
        cmocka_unit_test(test_port_defaults_in_a_listen_item),
        cmocka_unit_test(test_error_syntax),
        cmocka_unit_test(test_error_unknown_top_level_key),
        cmocka_unit_test(test_error_unknown_listen_key),
        cmocka_unit_test(test_error_wrong_type_for_int),
        cmocka_unit_test(test_error_out_of_range),
        cmocka_unit_test(test_error_int64_outside_int),
        cmocka_unit_test(test_error_workers),
        cmocka_unit_test(test_error_bad_level_and_facility),
        cmocka_unit_test(test_error_bad_address),
        cmocka_unit_test(test_error_missing_address),
        cmocka_unit_test(test_error_missing_required_top_level),
        cmocka_unit_test(test_error_listen_shape),
        cmocka_unit_test(test_error_duplicate_listen),
        cmocka_unit_test(test_error_watermarks),
        cmocka_unit_test(test_error_below_any_pair),
        cmocka_unit_test(test_error_missing_file),
        cmocka_unit_test(test_error_in_included_file),
        cmocka_unit_test(test_error_include_target),
        cmocka_unit_test(test_nul_byte_hides_nothing),
        cmocka_unit_test(test_error_truncated_to_buffer),
        cmocka_unit_test(test_restart_changes),
        cmocka_unit_test(test_restart_changes_any_table),
        cmocka_unit_test(test_default_text),
        cmocka_unit_test(test_acl_top_level),
        cmocka_unit_test(test_acl_per_listen),
        cmocka_unit_test(test_acl_identity_and_sameness),
        cmocka_unit_test(test_error_acl),
        cmocka_unit_test(test_acl_failed_load_frees),
        cmocka_unit_test(test_cfg_fini),
        cmocka_unit_test(test_acl_long_list),
    };

    t_deadline(60);
    return cmocka_run_group_tests_name("config", tests, group_setup,
                                       group_teardown);
}
