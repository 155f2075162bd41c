/* The redaction layer: secrets leave server text on the raw bytes, before it is cut or escaped,
 * in every form a server could echo (the password raw or as UTF-8, cut at the excerpt limit or
 * by the server, base64 of the SASL PLAIN blob or of the password, the APOP digest). */
#include <string.h>

#include "check.h"
#include "redact.h"

#define S(x) x, strlen(x)

static const char pw[] = "s3cret-pw";
static const struct login_creds ascii = {"alice", 5, pw, sizeof(pw) - 1, NULL};

/* True when no run of min bytes of secret appears in text. */
static int no_fragment(const char *text, const char *secret, size_t min)
{
    size_t n = strlen(secret);

    for (size_t i = 0; i + min <= n; i++) {
        if (memmem(text, strlen(text), secret + i, min) != NULL)
            return 0;
    }
    return 1;
}

static void test_plain_echo(void)
{
    struct redact_set rs;
    char out[200];

    redact_init(&rs, &ascii);
    redact_excerpt(&rs, out, sizeof(out), S("NO bad password s3cret-pw, try again"));
    CHECK_STR(out, "NO bad password <redacted>, try again");
    redact_excerpt(&rs, out, sizeof(out), S("s3cret-pw s3cret-pw"));
    CHECK_STR(out, "<redacted> <redacted>");
    redact_excerpt(&rs, out, sizeof(out), S("NO [AUTHENTICATIONFAILED] nope"));
    CHECK_STR(out, "NO [AUTHENTICATIONFAILED] nope");
    redact_excerpt(NULL, out, sizeof(out), S("no secrets\x01\xff"));
    CHECK_STR(out, "no secrets??");
    redact_wipe(&rs);
    CHECK(rs.count == 0 && rs.secrets == NULL && !rs.broken);
}

/* The old order (escape, then look for the password) found nothing in a UTF-8 echo and logged
 * every ASCII byte of it. */
static void test_utf8_echo(void)
{
    static const char utf8[] = "correct-h\xc3\xb6rse-battery";
    const struct login_creds c = {"bob", 3, utf8, sizeof(utf8) - 1, NULL};
    struct redact_set rs;
    char out[200];

    redact_init(&rs, &c);
    redact_excerpt(&rs, out, sizeof(out), S("-ERR wrong: correct-h\xc3\xb6rse-battery"));
    CHECK_STR(out, "-ERR wrong: <redacted>");
    CHECK(no_fragment(out, utf8, 4));
    redact_wipe(&rs);
}

/* A password across the excerpt limit: its first bytes are inside the excerpt, so it must be
 * found on the raw text, before the cut. */
static void test_cut_at_the_limit(void)
{
    struct redact_set rs;
    char text[300];
    char out[200];

    redact_init(&rs, &ascii);
    for (size_t at = REDACT_EXCERPT - 8; at <= REDACT_EXCERPT; at++) {
        memset(text, 'x', at);
        memcpy(text + at, pw, sizeof(pw) - 1);
        memcpy(text + at + sizeof(pw) - 1, " tail", 6);
        CHECK(redact_text(&rs, out, sizeof(out), text, strlen(text), REDACT_EXCERPT));
        CHECK(no_fragment(out, pw, 3));
        if (at < REDACT_EXCERPT)
            CHECK(strstr(out, REDACT_MARK) != NULL);
        CHECK(strlen(out) <= REDACT_EXCERPT + sizeof(REDACT_MARK));
    }
    redact_wipe(&rs);
}

/* A server that cut its own echo: a prefix of the password ends the text. */
static void test_prefix_at_the_end(void)
{
    struct redact_set rs;
    char text[300];
    char out[200];

    redact_init(&rs, &ascii);
    redact_excerpt(&rs, out, sizeof(out), S("-ERR you sent s3cre"));
    CHECK_STR(out, "-ERR you sent <redacted>");
    redact_excerpt(&rs, out, sizeof(out), S("-ERR you sent s3c"));
    CHECK_STR(out, "-ERR you sent <redacted>");
    /* Shorter than REDACT_MIN_TAIL: common by chance ("...s"), kept. */
    redact_excerpt(&rs, out, sizeof(out), S("-ERR bad pass"));
    CHECK_STR(out, "-ERR bad pass");
    /* A prefix across our own cut, in a text that ends inside the password. */
    memset(text, 'y', REDACT_EXCERPT - 2);
    memcpy(text + REDACT_EXCERPT - 2, "s3cret-", 8);
    redact_excerpt(&rs, out, sizeof(out), text, strlen(text));
    CHECK(no_fragment(out, pw, 3));
    CHECK(strstr(out, REDACT_MARK) != NULL);
    /* What is kept never ends with a prefix of a secret, whatever followed it. */
    memset(text, 'z', REDACT_EXCERPT - 4);
    memcpy(text + REDACT_EXCERPT - 4, "s3crXXXXXXXX", 13);
    CHECK(redact_text(&rs, out, sizeof(out), text, strlen(text), REDACT_EXCERPT));
    CHECK(no_fragment(out, pw, 3));
    CHECK(strlen(out) == REDACT_EXCERPT - 4 + strlen(REDACT_MARK));
    redact_wipe(&rs);
}

static void test_base64_forms(void)
{
    struct redact_set rs;
    char out[300];

    redact_init(&rs, &ascii);
    /* base64("\0alice\0s3cret-pw") = AGFsaWNlAHMzY3JldC1wdw== ; base64("s3cret-pw") = czNjcmV0LXB3
     */
    redact_excerpt(&rs, out, sizeof(out), S("NO invalid response AGFsaWNlAHMzY3JldC1wdw=="));
    CHECK_STR(out, "NO invalid response <redacted>==");
    redact_excerpt(&rs, out, sizeof(out), S("NO invalid response AGFsaWNlAHMzY3JldC1wdw"));
    CHECK_STR(out, "NO invalid response <redacted>");
    redact_excerpt(&rs, out, sizeof(out), S("NO bad czNjcmV0LXB3 here"));
    CHECK_STR(out, "NO bad <redacted> here");
    redact_excerpt(&rs, out, sizeof(out), S("NO cut AGFsaWNlAHMzY3Jl"));
    CHECK_STR(out, "NO cut <redacted>");
    redact_wipe(&rs);
}

static void test_apop_digest(void)
{
    static const char tanstaaf[] = "tanstaaf";
    const struct login_creds c = {"mrose", 5, tanstaaf, sizeof(tanstaaf) - 1, NULL};
    struct redact_set rs;
    char out[200];

    redact_init(&rs, &c);
    redact_add_apop_digest(&rs, "c4c9334bac560ecc979e58001b3e22fb");
    redact_excerpt(&rs, out, sizeof(out), S("-ERR digest c4c9334bac560ecc979e58001b3e22fb wrong"));
    CHECK_STR(out, "-ERR digest <redacted> wrong");
    redact_excerpt(&rs, out, sizeof(out), S("-ERR digest C4C9334BAC560ECC979E58001B3E22FB wrong"));
    CHECK_STR(out, "-ERR digest <redacted> wrong");
    redact_wipe(&rs);
}

/* Escaping must not assemble a secret: a password with '?' and a server that sends another
 * byte in its place. */
static void test_escape_cannot_rebuild(void)
{
    static const char q[] = "ab?cd";
    const struct login_creds c = {"u", 1, q, sizeof(q) - 1, NULL};
    struct redact_set rs;
    char out[200];

    redact_init(&rs, &c);
    redact_excerpt(&rs, out, sizeof(out),
                   S("NO ab\x01"
                     "cd"));
    CHECK_STR(out, REDACT_MARK);
    redact_wipe(&rs);
}

/* When the mark does not fit, the excerpt ends before it: never with part of the secret. */
static void test_small_buffer(void)
{
    struct redact_set rs;
    char out[16];

    redact_init(&rs, &ascii);
    redact_excerpt(&rs, out, sizeof(out), S("NO echo: s3cret-pw"));
    CHECK_STR(out, "NO echo: ");
    redact_excerpt(&rs, out, 1, S("anything"));
    CHECK_STR(out, "");
    redact_wipe(&rs);
}

/* Issue 17: no fixed number of slots. Forty secrets are all held and all redacted (four slots
 * dropped every one past the fourth silently). */
static void test_no_capacity_limit(void)
{
    struct redact_set rs;
    char secret[32], text[64], out[200];

    redact_init(&rs, &ascii);
    for (int i = 0; i < 40; i++) {
        snprintf(secret, sizeof(secret), "wire-form-%02d-xyz", i);
        CHECK(redact_add(&rs, secret, strlen(secret), false));
    }
    CHECK(!rs.broken && rs.count >= 43);
    for (int i = 0; i < 40; i++) {
        snprintf(text, sizeof(text), "-ERR got wire-form-%02d-xyz", i);
        redact_excerpt(&rs, out, sizeof(out), text, strlen(text));
        CHECK_STR(out, "-ERR got <redacted>");
    }
    redact_wipe(&rs);
}

/* A set that could not hold a secret lets no server text through at all. */
static void test_broken_set_logs_nothing(void)
{
    struct redact_set rs;
    char out[200];

    redact_init(&rs, &ascii);
    rs.broken = true;
    redact_excerpt(&rs, out, sizeof(out), S("-ERR nothing secret here"));
    CHECK_STR(out, REDACT_MARK);
    redact_wipe(&rs);
}

/* The wire form of an IMAP quoted string: the escaped password is redacted with or without the
 * quotes the server may have kept; each piece of a line that spans lines is registered. */
static void test_wire_forms(void)
{
    static const char escaped[] = "\"Tr0ub4dor\\\"&3\\\\horse \"";
    struct redact_set rs;
    char out[200];

    redact_init(&rs, NULL);
    CHECK(redact_add_wire(&rs, escaped, strlen(escaped)));
    redact_excerpt(&rs, out, sizeof(out), S("NO you sent Tr0ub4dor\\\"&3\\\\horse  here"));
    CHECK_STR(out, "NO you sent <redacted> here");
    redact_excerpt(&rs, out, sizeof(out), S("NO [x] a1 LOGIN alice \"Tr0ub4dor\\\"&3\\\\horse \""));
    CHECK_STR(out, "NO [x] a1 LOGIN alice <redacted>");
    CHECK(redact_add_wire(&rs, S("{9+}\r\np\"a{s}\\ ")));
    redact_excerpt(&rs, out, sizeof(out), S("BAD p\"a{s}\\  wrong"));
    CHECK_STR(out, "BAD <redacted> wrong");
    redact_wipe(&rs);
}

/* The escaped form is known before anything is sent: a server echoing it early is covered. */
static void test_escaped_known_ahead(void)
{
    static const char special[] = "Tr0ub\"&3\\{h} ";
    const struct login_creds c = {"alice", 5, special, sizeof(special) - 1, NULL};
    struct redact_set rs;
    char out[200];

    redact_init(&rs, &c);
    redact_excerpt(&rs, out, sizeof(out), S("+OK hello Tr0ub\\\"&3\\\\{h}  there"));
    CHECK_STR(out, "+OK hello <redacted> there");
    redact_wipe(&rs);
}

/* An echo the server split: the rest of the password at the start of a line (after a prefix
 * that ends the line before, removed by the prefix rule), or a piece of it anywhere. Pieces
 * shorter than REDACT_MIN_PIECE in the middle of a line are too common to tell apart. */
static void test_split_echo(void)
{
    struct redact_set rs;
    char out[200];

    redact_init(&rs, &ascii);
    redact_excerpt(&rs, out, sizeof(out), S("et-pw was not accepted"));
    CHECK_STR(out, "<redacted> was not accepted");
    redact_excerpt(&rs, out, sizeof(out), S("* BAD echo cret-pw"));
    CHECK_STR(out, "* BAD echo <redacted>");
    redact_excerpt(&rs, out, sizeof(out), S("* BAD 3cret- and s3cre"));
    CHECK_STR(out, "* BAD <redacted> and <redacted>");
    redact_excerpt(&rs, out, sizeof(out), S("secret words"));
    CHECK_STR(out, "secret words");
    redact_wipe(&rs);
}

int main(void)
{
    test_split_echo();
    test_escaped_known_ahead();
    test_no_capacity_limit();
    test_broken_set_logs_nothing();
    test_wire_forms();
    test_plain_echo();
    test_utf8_echo();
    test_cut_at_the_limit();
    test_prefix_at_the_end();
    test_base64_forms();
    test_apop_digest();
    test_escape_cannot_rebuild();
    test_small_buffer();
    return check_summary("redact");
}
