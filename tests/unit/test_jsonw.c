/*
 * test_jsonw.c - JSON strings: quote, backslash and control characters
 * escaped, valid UTF-8 kept, each byte of invalid UTF-8 (stray, overlong,
 * surrogate, past U+10FFFF, cut short) as \ufffd, any length; the text
 * twin leaves nothing a terminal acts on and never cuts a character;
 * members get their commas only between them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "jsonw.h"
#include "unit.h"

static char *
json_of(const char *s)
{
    struct mtr_buf b = {0};

    jw_str(&b, s);
    assert_false(b.failed);
    return b.p;
}

static void
test_escapes(void **state)
{
    char *t;

    (void)state;
    t = json_of("a\"b\\c\x01\x1f\t\x7f/");
    assert_string_equal(t, "\"a\\\"b\\\\c\\u0001\\u001f\\u0009\x7f/\"");
    free(t);
    t = json_of(NULL);
    assert_string_equal(t, "\"\"");
    free(t);
}

static void
test_utf8(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        /* é, €, U+1F600: kept */
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80",
         "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""},
        {"\xff", "\"\\ufffd\""},                       /* stray */
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},            /* overlong */
        {"\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""}, /* overlong */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""}, /* surrogate */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* big */
        {"a\xe2\x82", "\"a\\ufffd\\ufffd\""}, /* cut short */
        {"\xe2\x82z", "\"\\ufffd\\ufffdz\""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *t = json_of(cases[i].in);

        assert_string_equal(t, cases[i].out);
        free(t);
    }
}

/* Longer than one mtr_printf piece once escaped. */
static void
test_long(void **state)
{
    char in[3001];
    char *t;

    (void)state;
    memset(in, '\\', sizeof(in) - 1);
    in[sizeof(in) - 1] = '\0';
    t = json_of(in);
    assert_int_equal(strlen(t), 2 + 2 * 3000);
    for (size_t i = 1; i <= 2 * 3000; i++) {
        assert_int_equal(t[i], '\\');
    }
    free(t);
}

static void
test_text(void **state)
{
    struct mtr_buf b = {0};
    char cell[8];

    (void)state;
    jw_text(&b, "a\x1b[31m\x7f\xc2\x9b\t\"\\\xc3\xa9\xff");
    assert_string_equal(b.p, "a?[31m???\"\\\xc3\xa9?");
    mtr_buf_free(&b);
    /* é would need bytes 7 and 8: left out whole. */
    jw_text_copy(cell, sizeof(cell), "aaaaaa\xc3\xa9");
    assert_string_equal(cell, "aaaaaa");
    jw_text_copy(cell, sizeof(cell), "ab\ncd");
    assert_string_equal(cell, "ab?cd");
}

static void
test_members(void **state)
{
    struct mtr_buf b = {0};
    bool more = false, in = false;

    (void)state;
    mtr_printf(&b, "{");
    jw_u64(&b, &more, "a", UINT64_MAX);
    jw_i64(&b, &more, "b", -2);
    jw_string(&b, &more, "c", "x\"");
    jw_bool(&b, &more, "d", true);
    jw_ms(&b, &more, "e", 7);
    jw_ms(&b, &more, "f", 1234567);
    jw_key(&b, &more, "g");
    mtr_printf(&b, "{");
    jw_bool(&b, &in, "h", false);
    mtr_printf(&b, "}}");
    assert_string_equal(b.p, "{\"a\":18446744073709551615,\"b\":-2,"
                             "\"c\":\"x\\\"\",\"d\":true,\"e\":0.007,"
                             "\"f\":1234.567,\"g\":{\"h\":false}}");
    mtr_buf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapes), cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_long),    cmocka_unit_test(test_text),
        cmocka_unit_test(test_members),
    };

    t_deadline(10);
    return cmocka_run_group_tests_name("jsonw", tests, NULL, NULL);
}
