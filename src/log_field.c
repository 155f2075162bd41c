/* Field values of key=value log lines: bare when harmless, quoted and escaped otherwise. */
#include "log_field.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool bare_byte(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '=';
}

static bool is_bare(const char *s, size_t len, size_t cap)
{
    if (len == 0 || len >= cap)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!bare_byte((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* The escaped form of one byte into out (at least 5 bytes); returns its length. */
static size_t escape_byte(unsigned char c, char out[5])
{
    if (c == '"' || c == '\\') {
        out[0] = '\\';
        out[1] = (char)c;
        return 2;
    }
    if (c >= 0x20 && c < 0x7f) {
        out[0] = (char)c;
        return 1;
    }
    snprintf(out, 5, "\\x%02x", c);
    return 4;
}

static void quoted(char *dst, size_t cap, const char *s, size_t len)
{
    static const char cut[] = "...\"";
    size_t n = 0;

    dst[n++] = '"';
    for (size_t i = 0; i < len; i++) {
        char e[5];
        size_t el = escape_byte((unsigned char)s[i], e);
        /* room for this byte, then either the closing quote or the cut mark, then the NUL */
        if (n + el + sizeof(cut) > cap && (i + 1 < len || n + el + 2 > cap)) {
            memcpy(dst + n, cut, sizeof(cut));
            return;
        }
        memcpy(dst + n, e, el);
        n += el;
    }
    dst[n++] = '"';
    dst[n] = '\0';
}

void log_field(char *dst, size_t cap, const char *s)
{
    size_t len;

    if (cap < 8) {
        if (cap > 0)
            dst[0] = '\0';
        return;
    }
    if (s == NULL) {
        memcpy(dst, "-", 2);
        return;
    }
    len = strlen(s);
    if (is_bare(s, len, cap)) {
        memcpy(dst, s, len + 1);
        return;
    }
    quoted(dst, cap, s, len);
}
