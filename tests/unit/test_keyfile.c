/*
 * test_keyfile.c - the STAMP key file: hex digits with any whitespace,
 * 16..64 bytes, refused when its mode lets group or others in, when it
 * is not a regular file, or when it holds anything but hex; the reason
 * never quotes the file.
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

#include "keyfile.h"

static char dir[64];
static char path[128];
static char why[256];
static uint8_t key[KF_MAX];

static int
setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/echod-test-kf-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    snprintf(path, sizeof(path), "%s/key", dir);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    unlink(path);
    return rmdir(dir);
}

static void
put(const char *text, mode_t mode)
{
    FILE *f;

    unlink(path);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static void
test_good(void **state)
{
    (void)state;
    put("00112233445566778899aabbccddeeff\n", 0600);
    assert_int_equal(kf_load(path, key, why, sizeof(why)), 16);
    assert_int_equal(key[0], 0x00);
    assert_int_equal(key[1], 0x11);
    assert_int_equal(key[15], 0xff);
    /* Whitespace anywhere, either case, a read-only file. */
    put("  0011 2233\t4455\r\n6677 8899 AABB CCDD EEFF 0102\n\n", 0400);
    assert_int_equal(kf_load(path, key, why, sizeof(why)), 18);
    assert_int_equal(key[10], 0xaa);
    assert_int_equal(key[17], 0x02);
}

static void
test_refused(void **state)
{
    static const struct {
        const char *text;
        mode_t mode;
        const char *why;
    } bad[] = {
        {"00112233445566778899aabbccddeeff\n", 0640, "mode 0640"},
        {"00112233445566778899aabbccddeeff\n", 0604, "mode 0604"},
        {"00112233445566778899aabbccddeeff\n", 0620, "group or others"},
        {"00112233445566778899aabbccddee\n", 0600, "shorter than 32"},
        {"00112233445566778899aabbccddeeff0\n", 0600, "odd number"},
        {"0x112233445566778899aabbccddeeff\n", 0600, "not hexadecimal"},
        {"secret-password-secret-password!\n", 0600, "not hexadecimal"},
        {"", 0600, "shorter than 32"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        put(bad[i].text, bad[i].mode);
        why[0] = '\0';
        assert_int_equal(kf_load(path, key, why, sizeof(why)), -1);
        if (strstr(why, bad[i].why) == NULL) {
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, why,
                     bad[i].why);
        }
        assert_null(strstr(why, "secret")); /* never quotes the file */
    }
}

static void
test_long(void **state)
{
    char text[2 * KF_MAX + 8];

    (void)state;
    memset(text, 'a', 2 * KF_MAX);
    text[2 * KF_MAX] = '\n';
    text[2 * KF_MAX + 1] = '\0';
    put(text, 0600);
    assert_int_equal(kf_load(path, key, why, sizeof(why)), KF_MAX);
    text[2 * KF_MAX] = 'a';
    text[2 * KF_MAX + 1] = 'a';
    text[2 * KF_MAX + 2] = '\0';
    put(text, 0600);
    assert_int_equal(kf_load(path, key, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "longer than 128"));
}

static void
test_not_a_file(void **state)
{
    (void)state;
    assert_int_equal(kf_load(dir, key, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "not a regular file"));
    assert_int_equal(kf_load("/nonexistent/key", key, why, sizeof(why)),
                     -1);
    assert_non_null(strstr(why, "cannot open: No such file"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_file, setup, teardown),
    };

    return cmocka_run_group_tests_name("keyfile", tests, NULL, NULL);
}
