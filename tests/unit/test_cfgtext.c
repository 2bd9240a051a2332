/*
 * test_cfgtext.c - the raw-text guards around libconfig 1.5: integer
 * literals it would truncate, @include targets its scanner would die or
 * block on, and the quoting that keeps messages on one line. Files are
 * written into a private temporary directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfgtext.h"
#include "unit.h"

static char dir[64];
static char path[128];

static const char *
put(const char *name, const char *text, size_t len)
{
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

static void
test_literal_fits(void **state)
{
    static const char text[] = "a = 1;\n"
                               "max_connections = 4294967301;\n"
                               "idle_timeout = 4294967301L; # 64-bit\n"
                               "port = -2147483648; x = 0x7fffffff;\n"
                               "s = \"max_connections = 4294967301\";\n"
                               "# max_connections = 4294967301;\n";
    const char *p = put("lit.conf", text, sizeof(text) - 1);

    (void)state;
    assert_true(cft_int_literal_fits(p, 1, "a"));
    assert_false(cft_int_literal_fits(p, 2, "max_connections"));
    assert_true(cft_int_literal_fits(p, 3, "idle_timeout"));    /* L suffix */
    assert_true(cft_int_literal_fits(p, 4, "port"));            /* INT_MIN */
    assert_true(cft_int_literal_fits(p, 4, "x"));               /* INT_MAX */
    assert_true(cft_int_literal_fits(p, 5, "max_connections")); /* string */
    assert_true(cft_int_literal_fits(p, 6, "max_connections")); /* comment */
    assert_true(cft_int_literal_fits("/nonexistent/x", 1, "a"));
}

/* A NUL byte earlier in the file must not end the scan. */
static void
test_literal_after_nul(void **state)
{
    static const char text[] = "# \0\nmax_connections = 4294967301;\n";
    const char *p = put("nul.conf", text, sizeof(text) - 1);

    (void)state;
    assert_false(cft_int_literal_fits(p, 2, "max_connections"));
}

static void
test_includes(void **state)
{
    char err[512], line[256];
    const char *p;

    (void)state;
    /* A regular file is fine, and so is a missing one (libconfig says). */
    put("inc.conf", "a = 1;\n", 7);
    snprintf(line, sizeof(line),
             "@include \"%s/inc.conf\"\n"
             "@include \"%s/missing.conf\"\n",
             dir, dir);
    p = put("ok.conf", line, strlen(line));
    assert_int_equal(cft_check_includes(p, 0, err, sizeof(err)), 0);

    /* A directory would make libconfig's scanner exit(2). */
    snprintf(line, sizeof(line), "a = 1;\n  @include \"%s\"\n", dir);
    p = put("dir.conf", line, strlen(line));
    assert_int_equal(cft_check_includes(p, 0, err, sizeof(err)), -1);
    snprintf(line, sizeof(line), "%s:2: @include \"%s\": not a regular file", p,
             dir);
    assert_string_equal(err, line);

    /* An escape in the name is refused, not decoded. */
    p = put("esc.conf", "@include \"\\/etc\"\n", 17);
    assert_int_equal(cft_check_includes(p, 0, err, sizeof(err)), -1);
    assert_non_null(strstr(err, ":1: @include: expected a file name"));
}

/* A file with long access lists runs to megabytes: both guards must see
 * what comes after its first megabyte (they once stopped there). */
static void
test_long_file(void **state)
{
    const size_t lines = 150000; /* 24 bytes each: 3.6 MB */
    size_t cap = lines * 24 + 256, used = 0;
    char *text = malloc(cap), err[512], want[512];
    const char *p;

    (void)state;
    assert_non_null(text);
    used += (size_t)snprintf(text, cap, "deny = [\n");
    for (size_t i = 0; i < lines; i++) {
        used += (size_t)snprintf(text + used, cap - used,
                                 "  \"192.0.%03zu.0/24\",  \n", i % 256);
    }
    used += (size_t)snprintf(text + used, cap - used,
                             "  \"::/0\" ];\nmax_connections = 4294967301;\n"
                             "@include \"%s\"\n",
                             dir);
    assert_true(used < cap && used > 3 * 1024 * 1024);
    p = put("long.conf", text, used);
    assert_false(
        cft_int_literal_fits(p, (unsigned)lines + 3, "max_connections"));
    assert_int_equal(cft_check_includes(p, 0, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:%zu: @include \"%s\": not a regular file",
             p, lines + 4, dir);
    assert_string_equal(err, want);
    free(text);
}

static void
test_quote(void **state)
{
    char buf[64];

    (void)state;
    assert_string_equal(cft_quote("::1", buf, sizeof(buf)), "::1");
    assert_string_equal(cft_quote("1\nREADY=1", buf, sizeof(buf)),
                        "1\\x0aREADY=1");
    assert_string_equal(cft_quote("a\"b\\", buf, sizeof(buf)), "a\\x22b\\x5c");
    /* Cut short rather than overflow. */
    assert_true(strlen(cft_quote("\n\n\n\n\n\n", buf, 12)) < 12);
}

static int
setup_dir(void **state)
{
    (void)state;
    return t_mkdtemp(dir, sizeof(dir), "cft");
}

static int
teardown_dir(void **state)
{
    (void)state;
    return t_rmtree(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_fits),
        cmocka_unit_test(test_literal_after_nul),
        cmocka_unit_test(test_includes),
        cmocka_unit_test(test_long_file),
        cmocka_unit_test(test_quote),
    };

    t_deadline(30);
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
