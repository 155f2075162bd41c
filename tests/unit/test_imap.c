/* IMAP reply parsing, capabilities, quoting and literal decisions, SASL PLAIN encoding. */
#include <string.h>

#include "check.h"
#include "imap.h"
#include "sasl/mech.h"
#include "verdict.h"
#include "sasl.h"
#include "util.h"

#define S(x) x, strlen(x)

static void test_parse(void)
{
    struct imap_reply r;

    CHECK(imap_parse_reply(S("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready"), "A1", &r));
    CHECK(r.kind == IMAP_UNTAGGED && r.status == IMAP_ST_OK);
    CHECK(r.code != NULL && r.code_len == strlen("CAPABILITY IMAP4rev1 STARTTLS"));
    CHECK(r.data_len == 5 && memcmp(r.data, "ready", 5) == 0);

    CHECK(imap_parse_reply(S("A1 OK Logged in"), "A1", &r));
    CHECK(r.kind == IMAP_TAGGED && r.status == IMAP_ST_OK);
    CHECK(imap_parse_reply(S("a1 ok done"), "A1", &r) && r.kind == IMAP_OTHER_TAG);
    CHECK(imap_parse_reply(S("A1 no [AUTHENTICATIONFAILED] x"), "A1", &r));
    CHECK(r.kind == IMAP_TAGGED && r.status == IMAP_ST_NO &&
          verdict_classify(PROTOCOL_IMAP, r.line, r.line_len, false, true) == VERDICT_REFUSED);
    CHECK(imap_parse_reply(S("A1 NO [UNAVAILABLE] later"), "A1", &r));
    CHECK(verdict_classify(PROTOCOL_IMAP, r.line, r.line_len, false, true) == VERDICT_TEMPORARY);
    CHECK(imap_parse_reply(S("A1 NO [UNAVAILABLEX] later"), "A1", &r));
    CHECK(verdict_classify(PROTOCOL_IMAP, r.line, r.line_len, false, true) == VERDICT_REFUSED);
    CHECK(imap_parse_reply(S("A1 BAD"), "A1", &r) && r.status == IMAP_ST_BAD);
    CHECK(imap_parse_reply(S("A12 OK x"), "A1", &r) && r.kind == IMAP_OTHER_TAG);
    CHECK(imap_parse_reply(S("A2 OK x"), "A1", &r) && r.kind == IMAP_OTHER_TAG);
    /* a tagged reply with an unknown status is not an answer */
    CHECK(!imap_parse_reply(S("A1 OKAY x"), "A1", &r) && r.kind == IMAP_MALFORMED);
    CHECK(!imap_parse_reply(S("A1 PREAUTH x"), "A1", &r));
    CHECK(!imap_parse_reply(S("A1"), "A1", &r));
    CHECK(!imap_parse_reply(S(""), "A1", &r));
    CHECK(!imap_parse_reply(S("A1 OK [unterminated"), "A1", &r));

    CHECK(imap_parse_reply(S("+ go ahead"), "A1", &r) && r.kind == IMAP_CONTINUATION);
    CHECK(imap_parse_reply(S("+"), "A1", &r) && r.kind == IMAP_CONTINUATION);
    CHECK(imap_parse_reply(S("* BYE shutting down"), "A1", &r) && r.status == IMAP_ST_BYE);
    CHECK(imap_parse_reply(S("* PREAUTH hi"), "", &r) && r.status == IMAP_ST_PREAUTH);
    CHECK(imap_parse_reply(S("* 3 EXISTS"), "A1", &r) && r.status == IMAP_ST_NONE);
    CHECK(imap_parse_reply(S("* CAPABILITY IMAP4rev1"), "A1", &r) && r.status == IMAP_ST_NONE);

    CHECK(imap_parse_reply(S("* 1 FETCH (BODY {12}"), "A1", &r));
    CHECK(r.has_literal && r.literal_len == 12);
    CHECK(imap_parse_reply(S("* OK no literal {x}"), "A1", &r) && !r.has_literal);
    CHECK(imap_parse_reply(S("* OK no literal }"), "A1", &r) && !r.has_literal);
    CHECK(!imap_parse_reply(S("* 1 FETCH (BODY {99999999999999999999}"), "A1", &r));
}

static void test_caps(void)
{
    struct imap_caps c = {0};
    struct imap_reply r;

    imap_caps_parse(S(" IMAP4rev1 starttls AUTH=PLAIN LOGINDISABLED SASL-IR LITERAL+"), &c);
    CHECK(c.known && c.starttls && (c.sasl_mechs & (1u << SASL_MECH_PLAIN)) != 0 &&
          c.logindisabled && c.sasl_ir && c.literal_plus && !c.literal_minus);
    c = (struct imap_caps){0};
    imap_caps_parse(S("AUTH=PLAINX STARTTLSX LITERAL-"), &c);
    CHECK(c.known && !((c.sasl_mechs & (1u << SASL_MECH_PLAIN)) != 0) && !c.starttls &&
          c.literal_minus && !c.id);
    c = (struct imap_caps){0};
    imap_caps_parse(S("IMAP4rev1 id"), &c);
    CHECK(c.id);
    c = (struct imap_caps){0};
    imap_caps_parse(S("IDLE IDX X-ID"), &c);
    CHECK(c.known && !c.id);

    c = (struct imap_caps){0};
    CHECK(imap_parse_reply(S("* OK [CAPABILITY IMAP4rev1 STARTTLS] hi"), "", &r));
    imap_caps_from_code(&r, &c);
    CHECK(c.known && c.starttls);
    c = (struct imap_caps){0};
    CHECK(imap_parse_reply(S("* OK [CAPABILITYX STARTTLS] hi"), "", &r));
    imap_caps_from_code(&r, &c);
    CHECK(!c.known);
}

static void test_quote(void)
{
    char out[64];
    const char tricky[] = "p\"a\\s{s}%*( )";

    CHECK(imap_quote(S("alice"), out, sizeof(out)) == 7);
    CHECK_STR(out, "\"alice\"");
    CHECK(imap_quote(S(tricky), out, sizeof(out)) > 0);
    CHECK_STR(out, "\"p\\\"a\\\\s{s}%*( )\"");
    CHECK(imap_quote(S(""), out, sizeof(out)) == 2);
    CHECK_STR(out, "\"\"");
    /* 8-bit and control line bytes go as literals */
    CHECK(!imap_can_quote(S("gr\xc3\xbc\xc3\x9f")));
    CHECK(imap_quote(S("gr\xc3\xbc\xc3\x9f"), out, sizeof(out)) == 0);
    CHECK(!imap_can_quote(S("a\rb")));
    CHECK(!imap_can_quote(S("a\nb")));
    CHECK(imap_can_quote(S("tab\there")));
    /* no truncation: too small a buffer fails */
    CHECK(imap_quote(S("alice"), out, 7) == 0);
    CHECK(imap_quote(S("\"\""), out, 6) == 0);
    CHECK(imap_quote(S("\"\""), out, 7) == 6);
}

static void test_sasl_plain(void)
{
    char out[SASL_PLAIN_B64_MAX];
    struct login_creds c = {S("tim"), S("tanstaaftanstaaf"), NULL};

    /* RFC 4616 section 4 example: "\0tim\0tanstaaftanstaaf" */
    CHECK(sasl_plain_encode(&c, out, sizeof(out)) > 0);
    CHECK_STR(out, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
    CHECK(sasl_plain_encode(&c, out, 10) == 0);
}

/* The one word compare (util.c) the IMAP, POP3 and verdict code use: whole words only, ASCII
 * case folding only. */
static void test_word_compare(void)
{
    CHECK(ascii_word_is("LOGIN", 5, "login"));
    CHECK(ascii_word_is("Login", 5, "LOGIN"));
    CHECK(!ascii_word_is("LOGINX", 6, "LOGIN"));
    CHECK(!ascii_word_is("LOGIN", 4, "LOGIN"));
    CHECK(!ascii_word_is("LOG", 3, "LOGIN"));
    CHECK(ascii_word_is("", 0, ""));
    CHECK(!ascii_word_is("\xc4\xb0"
                         "D",
                         3, "ID")); /* a dotted capital I is not "I" */
    CHECK(!ascii_word_is("O\0", 2, "O"));
}

int main(void)
{
    test_word_compare();
    test_parse();
    test_caps();
    test_quote();
    test_sasl_plain();
    return check_summary("imap");
}
