/*
 * jsonw.c - JSON text (RFC 8259) into a struct mtr_buf, and the same
 * strings made safe for a terminal.
 *
 * Owns: what a string from outside (a listener name, a path, an error
 * message) becomes on the way out. The two forms share one UTF-8 check,
 * which is why they live together: JSON must be valid UTF-8, and a
 * terminal must not get a control character it would act on. Never
 * cuts a string: a long one is appended in pieces (mtr_printf takes
 * under MTR_LINE_MAX bytes at once).
 */
#include <stdio.h>
#include <string.h>

#include "jsonw.h"

/* The code point of the UTF-8 sequence at p in *cp and its length, or 0
 * when it is not valid (RFC 3629: no overlong forms, no surrogates,
 * nothing past U+10FFFF). */
static size_t
jw_utf8(const unsigned char *p, unsigned *cp)
{
    size_t n;
    unsigned min;

    *cp = p[0];
    if (p[0] < 0x80) {
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
    } else {
        return 0;
    }
    *cp = p[0] & (0x7fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0; /* this also stops at the NUL */
        }
        *cp = *cp << 6 | (p[i] & 0x3fu);
    }
    min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

/* Whether a valid character goes out as it is. */
static bool
jw_plain(unsigned cp, bool json)
{
    if (json) {
        return cp >= 0x20 && cp != '"' && cp != '\\';
    }
    /* C0, DEL and C1: a terminal may act on them. */
    return cp >= 0x20 && !(cp >= 0x7f && cp <= 0x9f);
}

/* What stands for a character that is not plain (in 0: an invalid
 * byte): a JSON escape, or '?' in text. */
static void
jw_subst(char *out, size_t len, unsigned cp, size_t in, bool json)
{
    if (!json) {
        snprintf(out, len, "?");
    } else if (in == 0) {
        snprintf(out, len, "\\ufffd");
    } else if (cp == '"' || cp == '\\') {
        snprintf(out, len, "\\%c", (char)cp);
    } else {
        snprintf(out, len, "\\u%04x", cp);
    }
}

/* Copy *src into dst as text for people (json false) or as the inside
 * of a JSON string: as many whole characters as fit (cap >= 8); *src
 * moves past them. dst is always NUL-terminated. */
static void
jw_clean(char *dst, size_t cap, const char **src, bool json)
{
    const unsigned char *p = (const unsigned char *)*src;
    size_t used = 0;

    while (*p != '\0') {
        char esc[16]; /* a backslash, u and up to 8 hex digits */
        unsigned cp;
        size_t in = jw_utf8(p, &cp);
        const char *out = (const char *)p;
        size_t len = in;

        if (in == 0 || !jw_plain(cp, json)) {
            jw_subst(esc, sizeof(esc), cp, in, json);
            out = esc;
            len = strlen(esc);
            in = in > 0 ? in : 1;
        }
        if (used + len >= cap) {
            break;
        }
        memcpy(dst + used, out, len);
        used += len;
        p += in;
    }
    dst[used] = '\0';
    *src = (const char *)p;
}

/* s (NULL: "") as text, or as a JSON string with its quotes. In pieces,
 * because mtr_printf takes only so much at once and a path or an error
 * may be longer once escaped. */
static void
jw_put(struct mtr_buf *b, const char *s, bool json)
{
    char piece[256];

    s = s == NULL ? "" : s;
    mtr_printf(b, "%s", json ? "\"" : "");
    while (*s != '\0') {
        jw_clean(piece, sizeof(piece), &s, json);
        mtr_printf(b, "%s", piece);
    }
    mtr_printf(b, "%s", json ? "\"" : "");
}

void
jw_str(struct mtr_buf *b, const char *s)
{
    jw_put(b, s, true);
}

void
jw_text(struct mtr_buf *b, const char *s)
{
    jw_put(b, s, false);
}

void
jw_text_copy(char *dst, size_t cap, const char *src)
{
    jw_clean(dst, cap, &src, false);
}

void
jw_key(struct mtr_buf *b, bool *more, const char *key)
{
    mtr_printf(b, "%s\"%s\":", *more ? "," : "", key);
    *more = true;
}

void
jw_u64(struct mtr_buf *b, bool *more, const char *key, uint64_t v)
{
    jw_key(b, more, key);
    mtr_printf(b, "%llu", (unsigned long long)v);
}

void
jw_i64(struct mtr_buf *b, bool *more, const char *key, int64_t v)
{
    jw_key(b, more, key);
    mtr_printf(b, "%lld", (long long)v);
}

void
jw_string(struct mtr_buf *b, bool *more, const char *key, const char *v)
{
    jw_key(b, more, key);
    jw_str(b, v);
}

void
jw_bool(struct mtr_buf *b, bool *more, const char *key, bool v)
{
    jw_key(b, more, key);
    mtr_printf(b, "%s", v ? "true" : "false");
}

void
jw_ms(struct mtr_buf *b, bool *more, const char *key, uint64_t ms)
{
    jw_key(b, more, key);
    mtr_printf(b, "%llu.%03llu", (unsigned long long)(ms / 1000),
               (unsigned long long)(ms % 1000));
}
