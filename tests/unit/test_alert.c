/* alert_clean: a server's [ALERT] text as the user may see it. Printable UTF-8 only, no escape
 * sequence or control byte, never a secret of the login (then nothing at all), cut to size. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "check.h"

#define S(x) x, sizeof(x) - 1

static const char pw[] = "s3cret-Pa55";
static const struct login_creds creds = {"alice", 5, pw, sizeof(pw) - 1, NULL};
static struct redact_set rs;

static void expect(const char *src, size_t len, enum alert_clean_result want_res, const char *want)
{
    char out[ALERT_MAX];
    enum alert_clean_result res = alert_clean(&rs, out, sizeof(out), src, len);

    CHECK(res == want_res);
    CHECK_STR(out, want);
}

/* Valid UTF-8, nothing below 0x20, no DEL and no C1 control. */
static int printable_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; p[i] != '\0'; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return 0;
        if (p[i] == 0xc2 && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f)
            return 0;
        if (p[i] >= 0x80) {
            size_t n = p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : p[i] >= 0xc2 ? 2 : 0;
            if (n == 0)
                return 0;
            for (size_t k = 1; k < n; k++) {
                if ((p[i + k] & 0xc0) != 0x80)
                    return 0;
            }
            i += n - 1;
        }
    }
    return 1;
}

static void text(void)
{
    expect(S("Application-specific password required"), ALERT_CLEAN,
           "Application-specific password required");
    expect(S("Gr\xc3\xbc\xc3\x9f"
             "e \xe2\x82\xac 100%s%n"),
           ALERT_CLEAN,
           "Gr\xc3\xbc\xc3\x9f"
           "e \xe2\x82\xac 100%s%n");
    expect(S("  Please\t\tlog in   via the web  "), ALERT_CLEAN, "Please log in via the web");
    expect(S(""), ALERT_EMPTY, "");
    expect(S("\x01\x02\x1b[2J\x7f "), ALERT_EMPTY, "");
}

static void escapes(void)
{
    expect(S("\x1b[31mRED\x1b[0m alert"), ALERT_CLEAN, "RED alert");
    expect(S("\x1b[2J\x1b[H\x1b[?25lclear"), ALERT_CLEAN, "clear");
    expect(S("\x1b]0;pwned title\x07visible"), ALERT_CLEAN, "visible");
    expect(S("\x1b]8;;http://evil/\x1b\\link\x1b]8;;\x1b\\"), ALERT_CLEAN, "link");
    expect(S("\x1bP+q544e\x1b\\after"), ALERT_CLEAN, "after");
    expect(S("a\x1b(Bb\x1b"
             "7c\x1b"),
           ALERT_CLEAN, "abc");
    expect(S("\xc2\x9b"
             "31mC1\xc2\x9d"
             "0;t\xc2\x9cok"),
           ALERT_CLEAN, "C1ok");
    expect(S("evil\xe2\x80\xae"
             "txt.exe\xe2\x80\x8b\xef\xbb\xbf"),
           ALERT_CLEAN, "eviltxt.exe");
    expect(S("line\xe2\x80\xa8two"), ALERT_CLEAN, "linetwo");
    expect(S("a\rb\0c\bd"), ALERT_CLEAN, "abcd");
}

static void invalid_utf8(void)
{
    expect(S("a\xff\xfe"
             "b"),
           ALERT_CLEAN, "ab");
    expect(S("over\xc0\xaflong\xe0\x80\xaf"), ALERT_CLEAN, "overlong");
    expect(S("sur\xed\xa0\x80rogate"), ALERT_CLEAN, "surrogate");
    expect(S("big\xf4\x90\x80\x80!"), ALERT_CLEAN, "big!");
    expect(S("cut\xe2\x82"), ALERT_CLEAN, "cut");
    expect(S("\x80\x80\x80"), ALERT_EMPTY, "");
}

static void secrets(void)
{
    char text[600];

    expect(S("Your password s3cret-Pa55 is wrong"), ALERT_SECRET, "");
    expect(S("echo czNjcmV0LVBhNTU= back"), ALERT_SECRET, ""); /* base64 of the password */
    expect(S("AGFsaWNlAHMzY3JldC1QYTU1"), ALERT_SECRET, "");   /* SASL PLAIN */
    expect(S("s3cret\x1b[0m-Pa55"), ALERT_SECRET, "");         /* joined by the cleaning */
    expect(S("s3cret\xff-Pa55"), ALERT_SECRET, "");
    expect(S("cut by the server: s3cret"), ALERT_SECRET, "");
    /* a prefix of the password where the shown text is cut */
    memset(text, 'a', sizeof(text));
    memcpy(text + ALERT_MAX - 4 - 4, "s3cr", 4);
    memcpy(text + ALERT_MAX - 4, "et!!", 4);
    expect(text, sizeof(text), ALERT_SECRET, "");
    /* a password ending in dots would be completed by the "..." of the cut */
    {
        static const struct login_creds dots = {"alice", 5, "aaa...", 6, NULL};
        struct redact_set rd;
        char out[ALERT_MAX];
        memset(text, 'a', sizeof(text));
        redact_init(&rd, &dots);
        CHECK(alert_clean(&rd, out, sizeof(out), text, sizeof(text)) == ALERT_SECRET);
        CHECK_STR(out, "");
        redact_wipe(&rd);
    }
    /* A set that could not hold a secret (out of memory: a caller can lower RLIMIT_AS) may miss
     * the form this alert carries: like the log (redact_excerpt), show no server text at all. */
    {
        struct redact_set rd = {.broken = true};
        char out[ALERT_MAX];
        CHECK(alert_clean(&rd, out, sizeof(out), S("c2VjcmV0IGZvcm0gbm90IGhlbGQ")) == ALERT_SECRET);
        CHECK_STR(out, "");
    }
    /* without secrets the same text is only cut */
    {
        char out[ALERT_MAX];
        CHECK(alert_clean(NULL, out, sizeof(out), text, sizeof(text)) == ALERT_CLEAN);
        CHECK(strlen(out) == ALERT_MAX - 1 && strcmp(out + ALERT_MAX - 4, "...") == 0);
    }
}

static void lengths(void)
{
    size_t big = 100 * 1024;
    char *src = malloc(big);
    char out[ALERT_MAX];
    char small[16];

    memset(src, 'A', big);
    CHECK(alert_clean(&rs, out, sizeof(out), src, big) == ALERT_CLEAN);
    CHECK(strlen(out) == ALERT_MAX - 1 && strcmp(out + ALERT_MAX - 4, "...") == 0);
    for (size_t i = 0; i + 2 < big; i += 3)
        memcpy(src + i, "\xe2\x82\xac", 3);
    CHECK(alert_clean(&rs, out, sizeof(out), src, big) == ALERT_CLEAN);
    CHECK(strlen(out) <= ALERT_MAX - 1 && printable_utf8(out));
    CHECK(alert_clean(&rs, small, sizeof(small), src, big) == ALERT_CLEAN);
    CHECK_STR(small, "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac...");
    for (size_t i = 0; i + 4 < big; i += 4)
        memcpy(src + i, "\x1b[0m", 4);
    CHECK(alert_clean(&rs, out, sizeof(out), src, big) == ALERT_EMPTY);
    CHECK(alert_clean(&rs, out, 4, "abc", 3) == ALERT_EMPTY && out[0] == '\0');
    free(src);
}

/* Whatever the bytes, what comes out is printable UTF-8 of bounded length. */
static void random_bytes(void)
{
    static const char pieces[][6] = {
        "\x1b", "[", "]", "\x07", "\xc2\x9b", "\xe2\x80\xae",     "\xff",
        "\xc3", "a", " ", "\t",   "\\",       "\xf0\x9f\x98\x80", "\r"};
    uint32_t seed = 20;
    int bad = 0;

    for (int round = 0; round < 5000; round++) {
        char src[400];
        char out[ALERT_MAX];
        size_t n = 0;
        while (n + 6 < sizeof(src)) {
            seed = seed * 1103515245u + 12345u;
            const char *p = pieces[(seed >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
            size_t l = strlen(p);
            memcpy(src + n, p, l);
            n += l;
            if ((seed >> 8) % 97 == 0)
                break;
        }
        alert_clean(&rs, out, sizeof(out), src, n);
        bad += !(printable_utf8(out) && strlen(out) < ALERT_MAX);
    }
    CHECK(bad == 0);
}

int main(void)
{
    redact_init(&rs, &creds);
    text();
    escapes();
    invalid_utf8();
    secrets();
    lengths();
    random_bytes();
    redact_wipe(&rs);
    return check_summary("test_alert");
}
