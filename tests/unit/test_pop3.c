/* POP3 reply classification, APOP timestamp and digest (RFC 1939 vector), CAPA parsing. */
#include <string.h>

#include "check.h"
#include "pop3.h"
#include "sasl/mech.h"
#include "verdict.h"

#define S(x) x, strlen(x)

static void test_classify(void)
{
    CHECK(pop3_reply_classify(S("+OK")) == POP3_REPLY_OK);
    CHECK(pop3_reply_classify(S("+OK Logged in.")) == POP3_REPLY_OK);
    CHECK(pop3_reply_classify(S("-ERR")) == POP3_REPLY_ERR);
    CHECK(pop3_reply_classify(S("-ERR [AUTH] no")) == POP3_REPLY_ERR);
    CHECK(pop3_reply_classify(S("+ ")) == POP3_REPLY_CONT);
    CHECK(pop3_reply_classify(S("+")) == POP3_REPLY_CONT);
    /* near misses must never read as success */
    CHECK(pop3_reply_classify(S("+OKAY")) == POP3_REPLY_INVALID);
    CHECK(pop3_reply_classify(S("+ok")) == POP3_REPLY_INVALID);
    CHECK(pop3_reply_classify(S("+OK\tx")) == POP3_REPLY_INVALID);
    CHECK(pop3_reply_classify(S(" +OK")) == POP3_REPLY_INVALID);
    CHECK(pop3_reply_classify(S("-ERROR")) == POP3_REPLY_INVALID);
    CHECK(pop3_reply_classify(S("")) == POP3_REPLY_INVALID);
    CHECK(pop3_reply_classify(S("OK")) == POP3_REPLY_INVALID);
}

static void test_unavailable_codes(void)
{
    CHECK(verdict_classify(PROTOCOL_POP3, S("-ERR [SYS/TEMP] try later"), false, true) ==
          VERDICT_TEMPORARY);
    CHECK(verdict_classify(PROTOCOL_POP3, S("-ERR [IN-USE] locked"), false, true) ==
          VERDICT_TEMPORARY);
    CHECK(verdict_classify(PROTOCOL_POP3, S("-ERR [LOGIN-DELAY] slow down"), false, true) ==
          VERDICT_TEMPORARY);
    CHECK(verdict_classify(PROTOCOL_POP3, S("-ERR [sys/perm]"), false, true) == VERDICT_TEMPORARY);
    CHECK(verdict_classify(PROTOCOL_POP3, S("-ERR [AUTH] Authentication failed."), false, true) !=
          VERDICT_TEMPORARY);
    CHECK(verdict_classify(PROTOCOL_POP3, S("-ERR nope"), false, true) != VERDICT_TEMPORARY);
    CHECK(verdict_classify(PROTOCOL_POP3, S("-ERR"), false, true) != VERDICT_TEMPORARY);
}

static void test_timestamp(void)
{
    char ts[POP3_APOP_TIMESTAMP_MAX + 1];
    char big[600];

    CHECK(pop3_apop_timestamp(S("+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>"), ts,
                              sizeof(ts)));
    CHECK_STR(ts, "<1896.697170952@dbc.mtview.ca.us>");
    CHECK(pop3_apop_timestamp(S("+OK <a@b> trailing"), ts, sizeof(ts)));
    CHECK_STR(ts, "<a@b>");
    CHECK(!pop3_apop_timestamp(S("+OK Dovecot ready."), ts, sizeof(ts)));
    CHECK(!pop3_apop_timestamp(S("+OK <no-at-sign>"), ts, sizeof(ts)));
    CHECK(!pop3_apop_timestamp(S("+OK <two@at@signs>"), ts, sizeof(ts)));
    CHECK(!pop3_apop_timestamp(S("+OK <@host>"), ts, sizeof(ts)));
    CHECK(!pop3_apop_timestamp(S("+OK <local@>"), ts, sizeof(ts)));
    CHECK(!pop3_apop_timestamp(S("+OK <sp ace@host>"), ts, sizeof(ts)));
    CHECK(!pop3_apop_timestamp(S("+OK <a@b"), ts, sizeof(ts)));
    CHECK(!pop3_apop_timestamp(S("+OK <a<b@c>"), ts, sizeof(ts)));
    CHECK(!pop3_apop_timestamp(S("+OK <\x80\x81@host>"), ts, sizeof(ts)));
    memset(big, 'x', sizeof(big));
    big[0] = '<';
    big[300] = '@';
    big[599] = '>';
    CHECK(!pop3_apop_timestamp(big, sizeof(big), ts, sizeof(ts)));
    /* too small an output buffer is refused, not truncated */
    CHECK(!pop3_apop_timestamp(S("+OK <a@b>"), ts, 5));
}

static void test_digest(void)
{
    char hex[33];

    /* RFC 1939 section 7 */
    CHECK(pop3_apop_digest("<1896.697170952@dbc.mtview.ca.us>", S("tanstaaf"), hex));
    CHECK_STR(hex, "c4c9334bac560ecc979e58001b3e22fb");
}

static void test_capa(void)
{
    struct pop3_caps c = {0};

    pop3_capa_line(S("TOP"), &c);
    CHECK(!c.user && !c.stls && !((c.sasl_mechs & (1u << SASL_MECH_PLAIN)) != 0));
    pop3_capa_line(S("SASL LOGIN PLAIN"), &c);
    CHECK((c.sasl_mechs & (1u << SASL_MECH_PLAIN)) != 0);
    pop3_capa_line(S("STLS"), &c);
    CHECK(c.stls);
    pop3_capa_line(S("user"), &c);
    CHECK(c.user);
    c = (struct pop3_caps){0};
    pop3_capa_line(S("SASL PLAINX XPLAIN"), &c);
    CHECK(!((c.sasl_mechs & (1u << SASL_MECH_PLAIN)) != 0));
    pop3_capa_line(S("USERS"), &c);
    CHECK(!c.user);
}

static void test_greeting_xclient(void)
{
    CHECK(pop3_greeting_offers_xclient(S("+OK [XCLIENT] Dovecot (Debian) ready. <1.2@vm>")));
    CHECK(pop3_greeting_offers_xclient(S("+OK [xclient] ready")));
    CHECK(pop3_greeting_offers_xclient(S("+OK [XCLIENT]")));
    CHECK(!pop3_greeting_offers_xclient(S("+OK Dovecot ready. <1.2@vm>")));
    CHECK(!pop3_greeting_offers_xclient(S("+OK ready [XCLIENT]"))); /* not a response code */
    CHECK(!pop3_greeting_offers_xclient(S("+OK [XCLIENTS] ready")));
    CHECK(!pop3_greeting_offers_xclient(S("+OK [XCLIENT ready"))); /* never closed */
    CHECK(!pop3_greeting_offers_xclient(S("-ERR [XCLIENT] no")));
    CHECK(!pop3_greeting_offers_xclient(S("+OK [")));
    CHECK(!pop3_greeting_offers_xclient(S("")));
}

int main(void)
{
    test_classify();
    test_unavailable_codes();
    test_timestamp();
    test_digest();
    test_capa();
    test_greeting_xclient();
    return check_summary("pop3");
}
