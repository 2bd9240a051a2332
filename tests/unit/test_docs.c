/*
 * test_docs.c - the documentation agrees with the code.
 *
 * The key table in src/config.c is the only place a key, its type, range
 * and default are written. These tests walk that table and check that
 * man/echod.conf.5 and conf/echod.conf describe every key with the same
 * type, range and default (and name no key the code does not know), say
 * whether a reload applies it as the table's .reload column does, that
 * the memory bound in the man page uses the code's chunk and scratch
 * sizes, and that echod(8) lists the exit codes main() returns.
 *
 * Files are read relative to the source tree: $ECHOD_SRCDIR, or the
 * current directory (make check runs from the top of the tree).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "loop.h"
#include "outq.h"
#include "peers.h"
#include "server.h"
#include "srcrate.h"

/* One source file split into lines (the buffer owns the text). */
struct doc {
    char *text;
    char **line;
    size_t n;
};

static void
doc_load(struct doc *d, const char *rel)
{
    const char *dir = getenv("ECHOD_SRCDIR");
    char path[1024];
    FILE *f;
    long len;
    size_t cap = 64;

    snprintf(path, sizeof(path), "%s/%s", dir != NULL ? dir : ".", rel);
    f = fopen(path, "r");
    if (f == NULL) {
        fail_msg("cannot open %s (run from the top of the source tree "
                 "or set ECHOD_SRCDIR)",
                 path);
    }
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    assert_true(len > 0);
    rewind(f);
    d->text = malloc((size_t)len + 1);
    assert_non_null(d->text);
    assert_int_equal(fread(d->text, 1, (size_t)len, f), (size_t)len);
    d->text[len] = '\0';
    fclose(f);

    d->line = malloc(cap * sizeof(*d->line));
    assert_non_null(d->line);
    d->n = 0;
    for (char *p = d->text; *p != '\0';) {
        char *nl = strchr(p, '\n');

        if (d->n == cap) {
            cap *= 2;
            d->line = realloc(d->line, cap * sizeof(*d->line));
            assert_non_null(d->line);
        }
        d->line[d->n++] = p;
        if (nl == NULL) {
            break;
        }
        *nl = '\0';
        p = nl + 1;
    }
}

static void
doc_free(struct doc *d)
{
    free(d->line);
    free(d->text);
}

/* Replace the roff escapes the pages use by the characters they print. */
static void
roff_plain(const char *in, char *out, size_t len)
{
    static const struct {
        const char *esc, *txt;
    } map[] = {
        {"\\(dq", "\""}, {"\\(mu", "x"}, {"\\&", ""},
        {"\\-", "-"},    {"\\e", "\\"},
    };
    size_t o = 0;

    while (*in != '\0' && o + 1 < len) {
        size_t i;

        for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
            size_t el = strlen(map[i].esc);

            if (strncmp(in, map[i].esc, el) == 0) {
                size_t tl = strlen(map[i].txt);

                if (o + tl + 1 > len) {
                    tl = 0;
                }
                memcpy(out + o, map[i].txt, tl);
                o += tl;
                in += el;
                break;
            }
        }
        if (i == sizeof(map) / sizeof(map[0])) {
            out[o++] = *in++;
        }
    }
    out[o] = '\0';
}

/* Index of the line ".It Cm NAME" (NAME followed by a blank or the end). */
static long
man_key_item(const struct doc *d, const char *name)
{
    size_t nl = strlen(name);

    for (size_t i = 0; i < d->n; i++) {
        const char *l = d->line[i];

        if (strncmp(l, ".It Cm ", 7) == 0 && strncmp(l + 7, name, nl) == 0 &&
            (l[7 + nl] == ' ' || l[7 + nl] == '\0')) {
            return (long)i;
        }
    }
    return -1;
}

/* The item's lines after its head, up to the next key item or section,
 * with roff escapes replaced, each line preceded and followed by "\n". */
static void
man_item_body(const struct doc *d, long head, char *out, size_t len)
{
    char plain[1024];
    size_t o;

    snprintf(out, len, "\n");
    o = 1;
    for (size_t i = (size_t)head + 1; i < d->n; i++) {
        const char *l = d->line[i];

        if (strncmp(l, ".It Cm ", 7) == 0 || strncmp(l, ".Sh ", 4) == 0) {
            break;
        }
        roff_plain(l, plain, sizeof(plain));
        o += (size_t)snprintf(out + o, len - o, "%s\n", plain);
        assert_true(o < len);
    }
}

static const char *
type_word(enum cfg_type t)
{
    switch (t) {
    case CFG_INT:
    case CFG_INT_AUTO:
        return "integer";
    case CFG_BOOL:
        return "boolean";
    case CFG_STRING:
    case CFG_LEVEL:
    case CFG_FACILITY:
    case CFG_PROTOCOL:
        return "string";
    case CFG_LISTEN:
    case CFG_CIDRS:
        return "list";
    }
    return "?";
}

/* Integers, strings (by length) and the listen list have a range. */
static bool
has_range(const struct cfg_key *k)
{
    return k->type == CFG_INT || k->type == CFG_INT_AUTO ||
           k->type == CFG_STRING || k->type == CFG_LISTEN;
}

static void
man_conf_documents_every_key(void **state)
{
    struct doc d;
    char want[512], def[256], body[8192];
    int n = 0;

    (void)state;
    doc_load(&d, "man/echod.conf.5");
    for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++, n++) {
        long head = man_key_item(&d, k->name);

        if (head < 0) {
            fail_msg("man/echod.conf.5: no \".It Cm %s\" item", k->name);
        }
        snprintf(want, sizeof(want), " Pq %s", type_word(k->type));
        if (strstr(d.line[head], want) == NULL) {
            fail_msg("man/echod.conf.5:%ld: %s: type should read \"%s\"",
                     head + 1, k->name, want + 1);
        }
        if (has_range(k)) {
            snprintf(want, sizeof(want), " %lld..%lld%s", (long long)k->min,
                     (long long)k->max,
                     k->type == CFG_INT_AUTO ? " or \\(dqauto\\(dq" : "");
            if (strstr(d.line[head], want) == NULL) {
                fail_msg("man/echod.conf.5:%ld: %s: range should be%s",
                         head + 1, k->name, want);
            }
        }
        man_item_body(&d, head, body, sizeof(body));
        if (k->required) {
            /* A required key (address) has no default and says so. */
            snprintf(want, sizeof(want), "Required");
        } else {
            /* The default is a whole line of its own. */
            cfg_default_text(k, def, sizeof(def));
            snprintf(want, sizeof(want), "\n.Dl %s = %s;\n", k->name, def);
        }
        if (strstr(body, want) == NULL) {
            const char *w = want + strspn(want, "\n");

            fail_msg("man/echod.conf.5:%ld: %s: the item must show the "
                     "default as \"%.*s\"",
                     head + 1, k->name, (int)strcspn(w, "\n"), w);
        }
    }
    assert_true(n > 0);
    doc_free(&d);
}

/* What an item says of a key whose .reload is CFG_RELOAD or CFG_RESTART,
 * as a line of its own. */
static const char *const reload_line[] = {
    [CFG_RELOAD] = "Applies on reload.",
    [CFG_RESTART] = "Needs a restart; a reload keeps the running value.",
};

/* Each item says whether a reload applies the key, as .reload in the
 * table says, and does not also say the opposite. */
static void
man_conf_marks_restart_keys(void **state)
{
    struct doc d;
    char want[128], body[8192];

    (void)state;
    doc_load(&d, "man/echod.conf.5");
    for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++) {
        long head = man_key_item(&d, k->name);
        enum cfg_reload other =
            k->reload == CFG_RESTART ? CFG_RELOAD : CFG_RESTART;

        if (k->reload != CFG_RELOAD && k->reload != CFG_RESTART) {
            fail_msg("src/config.c: %s: .reload is not set", k->name);
        }
        if (head < 0) {
            fail_msg("man/echod.conf.5: no \".It Cm %s\" item", k->name);
        }
        man_item_body(&d, head, body, sizeof(body));
        snprintf(want, sizeof(want), "\n%s\n", reload_line[k->reload]);
        if (strstr(body, want) == NULL) {
            fail_msg("man/echod.conf.5:%ld: %s: the item must say \"%s\" "
                     "on a line of its own",
                     head + 1, k->name, reload_line[k->reload]);
        }
        if (strstr(body, reload_line[other]) != NULL) {
            fail_msg("man/echod.conf.5:%ld: %s: the item says \"%s\", but "
                     "src/config.c says the opposite",
                     head + 1, k->name, reload_line[other]);
        }
    }
    doc_free(&d);
}

static void
man_conf_names_no_unknown_key(void **state)
{
    struct doc d;

    (void)state;
    doc_load(&d, "man/echod.conf.5");
    for (size_t i = 0; i < d.n; i++) {
        char name[64];
        const struct cfg_key *k;

        if (sscanf(d.line[i], ".It Cm %63s", name) != 1) {
            continue;
        }
        for (k = cfg_keys; k->name != NULL; k++) {
            if (strcmp(k->name, name) == 0) {
                break;
            }
        }
        if (k->name == NULL) {
            fail_msg("man/echod.conf.5:%zu: %s is not a key of src/config.c",
                     i + 1, name);
        }
    }
    doc_free(&d);
}

/* True if some line of d contains s. */
static bool
doc_has(const struct doc *d, const char *s)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strstr(d->line[i], s) != NULL) {
            return true;
        }
    }
    return false;
}

static const struct cfg_key *
key_named(const char *name)
{
    for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++) {
        if (strcmp(k->name, name) == 0) {
            return k;
        }
    }
    fail_msg("src/config.c has no key %s", name);
    return NULL;
}

/* The bound written in the page is the one the code implements: one
 * chunk of slack over the high watermark per connection, plus each
 * worker's scratch buffer and free-chunk cache; and the figure for the
 * defaults is right. Likewise the
 * per-source table: PEER_SLOT_BYTES per max_connections, and the UDP
 * per-source table: SRATE_SLOTS slots of SRATE_SLOT_BYTES. */
static void
man_conf_states_memory_bound(void **state)
{
    const struct cfg_key *maxc = key_named("max_connections");
    const struct cfg_key *high = key_named("output_high_watermark");
    struct doc d;
    char want[256];

    (void)state;
    doc_load(&d, "man/echod.conf.5");
    snprintf(want, sizeof(want),
             "max_connections \\(mu (output_high_watermark + %zu) + "
             "workers \\(mu (%zu + %zu)",
             OUTQ_CHUNK, LOOP_SCRATCH, LOOP_POOL_FREE_MAX * OUTQ_CHUNK);
    if (!doc_has(&d, want)) {
        fail_msg("man/echod.conf.5: no line \"%s\"", want);
    }
    snprintf(want, sizeof(want),
             "that is %lld bytes plus %zu bytes per "
             "worker",
             (long long)maxc->def * (high->def + (long long)OUTQ_CHUNK),
             LOOP_SCRATCH + LOOP_POOL_FREE_MAX * OUTQ_CHUNK);
    if (!doc_has(&d, want)) {
        fail_msg("man/echod.conf.5: the defaults' figure should read \"%s\"",
                 want);
    }
    /* And the per-source table's bound, in peers.h's slot size. */
    snprintf(want, sizeof(want), "takes a table of at most %d bytes per",
             PEER_SLOT_BYTES);
    if (!doc_has(&d, want)) {
        fail_msg("man/echod.conf.5: no line \"%s\"", want);
    }
    snprintf(want, sizeof(want), "(%lld bytes with the defaults)",
             (long long)maxc->def * PEER_SLOT_BYTES);
    if (!doc_has(&d, want)) {
        fail_msg("man/echod.conf.5: the table's figure should read \"%s\"",
                 want);
    }
    /* And the UDP per-source table: SRATE_SLOTS of SRATE_SLOT_BYTES. */
    snprintf(want, sizeof(want), "and %d KiB for the per-source table",
             SRATE_SLOTS * SRATE_SLOT_BYTES / 1024);
    if (!doc_has(&d, want)) {
        fail_msg("man/echod.conf.5: the UDP table's figure should read "
                 "\"%s\"",
                 want);
    }
    doc_free(&d);
}

/* Index of the first line that sets `name = ...` outside a comment (a key
 * of a listen group sits inside its `{ ... }`), or -1. */
static long
conf_setting_line(const struct doc *d, const char *name)
{
    size_t nl = strlen(name);

    for (size_t i = 0; i < d->n; i++) {
        const char *l = d->line[i];
        const char *hash = strchr(l, '#');

        for (const char *p = strstr(l, name);
             p != NULL && (hash == NULL || p < hash); p = strstr(p + 1, name)) {
            bool starts = p == l || strchr(" \t{;", p[-1]) != NULL;

            if (starts && p[nl + strspn(p + nl, " \t")] == '=') {
                return (long)i;
            }
        }
    }
    return -1;
}

/* True if the setting's line at `at`, or the comment block above line
 * `top` (the setting, or `listen` for a key of a listen group), has s. */
static bool
conf_comment_has(const struct doc *d, long top, long at, const char *s)
{
    if (strstr(d->line[at], s) != NULL) {
        return true;
    }
    for (long i = top - 1; i >= 0 && d->line[i][0] == '#'; i--) {
        if (strstr(d->line[i], s) != NULL) {
            return true;
        }
    }
    return false;
}

static bool
top_level_key(const char *name)
{
    for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++) {
        if (k->scope == CFG_TOP && strcmp(k->name, name) == 0) {
            return true;
        }
    }
    return false;
}

static void
conf_file_names_every_key_with_range(void **state)
{
    struct doc d;
    long listen_at;

    (void)state;
    doc_load(&d, "conf/echod.conf");
    listen_at = conf_setting_line(&d, "listen");
    assert_true(listen_at >= 0);
    for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++) {
        long at = conf_setting_line(&d, k->name);
        long top = k->scope == CFG_ITEM ? listen_at : at;
        char want[64];

        /* An entry's own udp_* limits are the top-level keys again: the
         * top-level one is where the file documents the name. */
        if (k->scope == CFG_ITEM && top_level_key(k->name)) {
            continue;
        }

        if (at < 0) {
            fail_msg("conf/echod.conf: key %s is not set", k->name);
        }
        /* A key a reload cannot change says so where it is set. */
        if (k->reload == CFG_RESTART &&
            !conf_comment_has(&d, top, at, "Needs a restart")) {
            fail_msg("conf/echod.conf:%ld: %s: the comment should say "
                     "\"Needs a restart\"",
                     at + 1, k->name);
        }
        if (k->type != CFG_INT && k->type != CFG_INT_AUTO) {
            continue;
        }
        snprintf(want, sizeof(want), "%lld..%lld", (long long)k->min,
                 (long long)k->max);
        if (!conf_comment_has(&d, top, at, want)) {
            fail_msg("conf/echod.conf:%ld: %s: the comment should give the "
                     "range %s",
                     at + 1, k->name, want);
        }
    }
    doc_free(&d);
}

/* Loading the shipped file gives exactly the built-in defaults. */
static void
conf_file_sets_the_defaults(void **state)
{
    static struct cfg got, def;
    char err[CFG_ERR_MAX];
    const char *dir = getenv("ECHOD_SRCDIR");
    char path[1024];

    (void)state;
    snprintf(path, sizeof(path), "%s/conf/echod.conf", dir != NULL ? dir : ".");
    cfg_defaults(&def);
    if (cfg_load(&got, path, err, sizeof(err)) < 0) {
        fail_msg("%s", err);
    }
    for (const struct cfg_key *k = cfg_keys; k->name != NULL; k++) {
        const char *a = (const char *)&got + k->off;
        const char *b = (const char *)&def + k->off;

        if (k->scope != CFG_TOP) {
            continue;
        }
        switch (k->type) {
        case CFG_INT:
        case CFG_INT_AUTO:
        case CFG_LEVEL:
        case CFG_FACILITY:
        case CFG_PROTOCOL:
            if (*(const int64_t *)(const void *)a !=
                *(const int64_t *)(const void *)b) {
                fail_msg("conf/echod.conf: %s differs from its default",
                         k->name);
            }
            break;
        case CFG_BOOL:
            assert_int_equal(*(const bool *)a, *(const bool *)b);
            break;
        case CFG_STRING:
            assert_string_equal(a, b);
            break;
        case CFG_CIDRS: /* empty by default: no list at all */
            assert_null(*(struct acl *const *)(const void *)a);
            assert_null(*(struct acl *const *)(const void *)b);
            break;
        case CFG_LISTEN:
            assert_int_equal(got.n_listen, def.n_listen);
            for (size_t i = 0; i < def.n_listen; i++) {
                assert_true(cfg_listen_equal(&got.listen[i], &def.listen[i]));
                /* and no lists of its own (proxy_from = [ ] is none) */
                assert_int_equal(got.listen[i].own_acl, def.listen[i].own_acl);
                assert_true(cfg_listen_same_acl(&got, &got.listen[i], &def,
                                                &def.listen[i]));
            }
            break;
        }
    }
    cfg_fini(&got);
}

/* echod(8) has an EXIT STATUS item for every code main() returns. */
static void
man_echod_lists_exit_codes(void **state)
{
    static const int codes[] = {SRV_EX_OK, SRV_EX_USAGE, SRV_EX_OSERR,
                                SRV_EX_CONFIG};
    struct doc d;
    size_t sh = 0, end;

    (void)state;
    doc_load(&d, "man/echod.8");
    while (sh < d.n && strcmp(d.line[sh], ".Sh EXIT STATUS") != 0) {
        sh++;
    }
    assert_true(sh < d.n);
    for (end = sh + 1; end < d.n && strncmp(d.line[end], ".Sh ", 4) != 0;
         end++) {
    }
    for (size_t c = 0; c < sizeof(codes) / sizeof(codes[0]); c++) {
        char want[16];
        bool found = false;

        snprintf(want, sizeof(want), ".It %d", codes[c]);
        for (size_t i = sh; i < end; i++) {
            found = found || strcmp(d.line[i], want) == 0;
        }
        if (!found) {
            fail_msg("man/echod.8: EXIT STATUS lacks \"%s\"", want);
        }
    }
    doc_free(&d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(man_conf_documents_every_key),
        cmocka_unit_test(man_conf_marks_restart_keys),
        cmocka_unit_test(man_conf_names_no_unknown_key),
        cmocka_unit_test(man_conf_states_memory_bound),
        cmocka_unit_test(conf_file_names_every_key_with_range),
        cmocka_unit_test(conf_file_sets_the_defaults),
        cmocka_unit_test(man_echod_lists_exit_codes),
    };

    alarm(30);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
