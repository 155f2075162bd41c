#include "json.h"

#include <stdint.h>

/* Length of the well-formed UTF-8 sequence at s (RFC 3629, table 3-7 of Unicode), with its code
 * point in *cp; 0 when the bytes there are not one. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    size_t n;
    uint32_t min;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2, min = 0x80, *cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3, min = 0x800, *cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4, min = 0x10000, *cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (s[i] & 0x3f);
    }
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
        return 0;
    return n;
}

static void put_u16(FILE *f, uint32_t unit)
{
    fprintf(f, "\\u%04x", (unsigned)unit);
}

static void put_code_point(FILE *f, uint32_t cp)
{
    if (cp < 0x10000) {
        put_u16(f, cp);
        return;
    }
    cp -= 0x10000;
    put_u16(f, 0xd800 | (cp >> 10));
    put_u16(f, 0xdc00 | (cp & 0x3ff));
}

void json_write_string(FILE *f, const char *src, size_t len)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0;

    fputc('"', f);
    while (i < len) {
        uint32_t cp;
        size_t n;

        if (s[i] == '"' || s[i] == '\\') {
            fputc('\\', f);
            fputc(s[i++], f);
        } else if (s[i] >= 0x20 && s[i] < 0x7f) {
            fputc(s[i++], f);
        } else if (s[i] < 0x80) {
            put_u16(f, s[i++]);
        } else if ((n = utf8_decode(s + i, len - i, &cp)) > 0) {
            put_code_point(f, cp);
            i += n;
        } else {
            put_u16(f, 0xfffd);
            i++;
        }
    }
    fputc('"', f);
}
