/* The JSON string escaper of mailauth-probe: untrusted server bytes in, valid JSON out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "json.h"

/* json_write_string of src[0, len) as a NUL-terminated string (the caller frees it). */
static char *escaped(const char *src, size_t len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);

    if (f == NULL)
        return NULL;
    json_write_string(f, src, len);
    fclose(f);
    return buf;
}

static void expect(const char *src, size_t len, const char *want)
{
    char *got = escaped(src, len);

    CHECK_STR(got, want);
    free(got);
}

#define E(lit, want) expect(lit, sizeof(lit) - 1, want)

static void test_ascii(void)
{
    E("", "\"\"");
    E("plain text 123", "\"plain text 123\"");
    E("\"quoted\" back\\slash /", "\"\\\"quoted\\\" back\\\\slash /\"");
    E("%s %n %x", "\"%s %n %x\""); /* never a format */
}

static void test_controls(void)
{
    E("\x1b[2J", "\"\\u001b[2J\"");
    E("a\tb\r\nc\x07\x7f", "\"a\\u0009b\\u000d\\u000ac\\u0007\\u007f\"");
    expect("a\0b", 3, "\"a\\u0000b\"");
}

static void test_utf8(void)
{
    E("caf\xc3\xa9", "\"caf\\u00e9\"");
    E("\xe2\x82\xac", "\"\\u20ac\"");
    E("\xf0\x9f\x98\x80", "\"\\ud83d\\ude00\""); /* U+1F600: a surrogate pair */
    E("\xf4\x8f\xbf\xbf", "\"\\udbff\\udfff\""); /* U+10FFFF, the last code point */
    E("\xc2\x80", "\"\\u0080\"");                /* a C1 control */
    E("\xef\xbb\xbf", "\"\\ufeff\"");            /* BOM passes as a character */
}

static void test_invalid_utf8(void)
{
    E("\xff", "\"\\ufffd\"");
    E("\xc3", "\"\\ufffd\"");                                  /* cut sequence at the end */
    E("\xc3(", "\"\\ufffd(\"");                                /* bad continuation */
    E("\xc0\xaf", "\"\\ufffd\\ufffd\"");                       /* overlong "/" */
    E("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");            /* overlong, three bytes */
    E("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");            /* a surrogate */
    E("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* above U+10FFFF */
    E("\x80x", "\"\\ufffdx\"");                                /* lone continuation byte */
}

/* Every byte value alone: the output is quoted printable ASCII without a raw control. */
static void test_every_byte(void)
{
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        char *got = escaped(&c, 1);
        int clean = got != NULL && got[0] == '"';
        for (size_t i = 0; clean && got[i] != '\0'; i++)
            clean = (unsigned char)got[i] >= 0x20 && (unsigned char)got[i] < 0x7f;
        CHECK(clean);
        free(got);
    }
}

int main(void)
{
    test_ascii();
    test_controls();
    test_utf8();
    test_invalid_utf8();
    test_every_byte();
    return check_summary("json");
}
