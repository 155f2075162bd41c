/* verdict.c: the replies real servers send to a login step, and what each means. Texts are
 * those Dovecot 2.3, Cyrus IMAP 3.6 and Courier-IMAP 5.0 / Courier POP3 send (issue 12). */
#include <string.h>

#include "check.h"
#include "verdict.h"

#define P PROTOCOL_POP3
#define I PROTOCOL_IMAP

struct case_row {
    const char *who;
    enum mail_protocol protocol;
    const char *reply;
    bool closed_after;
    bool creds_sent;
    enum verdict want;
};

static const struct case_row table[] = {
    /* Dovecot */
    {"dovecot", I, "A2 NO [AUTHENTICATIONFAILED] Authentication failed.", false, true,
     VERDICT_REFUSED},
    {"dovecot", I, "A2 NO [UNAVAILABLE] Temporary authentication failure. [host:2026-11-23]", false,
     true, VERDICT_TEMPORARY},
    {"dovecot", I,
     "A2 NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) "
     "connections.",
     false, true, VERDICT_NOT_CHECKED},
    {"dovecot", I, "A2 NO [INUSE] Mailbox is locked", false, true, VERDICT_TEMPORARY},
    {"dovecot", I, "A2 NO [SERVERBUG] Internal error occurred.", false, true, VERDICT_TEMPORARY},
    {"dovecot", I, "A2 NO [LIMIT] Too many connections", false, true, VERDICT_TEMPORARY},
    {"dovecot", I, "* BYE Disconnected for inactivity.", true, true, VERDICT_NOT_ANSWERED},
    {"dovecot", I, "* BYE Server shutting down.", true, true, VERDICT_NOT_ANSWERED},
    {"dovecot", P, "-ERR [AUTH] Authentication failed.", false, true, VERDICT_REFUSED},
    {"dovecot", P, "-ERR [SYS/TEMP] Temporary authentication failure.", false, true,
     VERDICT_TEMPORARY},
    {"dovecot", P,
     "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.", false,
     false, VERDICT_NOT_CHECKED},
    {"dovecot", P, "-ERR [IN-USE] Couldn't open INBOX: Mailbox is locked", false, true,
     VERDICT_TEMPORARY},
    {"dovecot", P, "-ERR [LOGIN-DELAY] Too many logins", false, true, VERDICT_TEMPORARY},
    {"dovecot", P, "-ERR [SYS/PERM] Internal error", false, true, VERDICT_TEMPORARY},
    /* Cyrus */
    {"cyrus", I, "A2 NO Login failed: authentication failure", false, true, VERDICT_REFUSED},
    {"cyrus", I, "A2 NO Login failed: authentication failure", true, true, VERDICT_REFUSED},
    {"cyrus", I, "A2 NO Login only available under a layer", false, true, VERDICT_NOT_CHECKED},
    {"cyrus", P, "-ERR [AUTH] Invalid login", false, true, VERDICT_REFUSED},
    {"cyrus", P, "-ERR [AUTH] USER command only available under a layer", false, false,
     VERDICT_NOT_CHECKED},
    {"cyrus", P, "-ERR [SYS/TEMP] Unable to locate maildrop", false, true, VERDICT_TEMPORARY},
    /* Courier */
    {"courier", I, "A2 NO Login failed.", false, true, VERDICT_REFUSED},
    {"courier", I, "* BYE Temporary problem, please try again later", true, true,
     VERDICT_TEMPORARY},
    {"courier", P, "-ERR Login failed.", false, true, VERDICT_REFUSED},
    {"courier", P, "-ERR Temporary problem, please try again later", true, true, VERDICT_TEMPORARY},
    {"courier", P, "-ERR TLS required to log in.", false, false, VERDICT_NOT_CHECKED},
    /* The rule's edges */
    {"closed before the password", P, "-ERR Login failed.", true, false, VERDICT_NOT_ANSWERED},
    {"closed after the password stays a refusal", P, "-ERR Login failed.", true, true,
     VERDICT_REFUSED},
    {"a close is no verdict, not a refusal code either", P, "-ERR", true, false,
     VERDICT_NOT_ANSWERED},
    {"refusal code wins over text", I, "A2 NO [AUTHENTICATIONFAILED] Temporary glitch", true, true,
     VERDICT_REFUSED},
    {"refusal code in a BYE", I, "* BYE [AUTHENTICATIONFAILED] go away", true, true,
     VERDICT_REFUSED},
    {"codes ignore case", I, "a2 no [authenticationfailed] x", false, true, VERDICT_REFUSED},
    {"account", I, "A2 NO [CONTACTADMIN] Account disabled", false, true, VERDICT_REFUSED},
    {"expired", I, "A2 NO [EXPIRED] Password expired", false, true, VERDICT_REFUSED},
    {"authorization", I, "A2 NO [AUTHORIZATIONFAILED] no", false, true, VERDICT_REFUSED},
    {"unavailable alone is ambiguous", P, "-ERR Account unavailable", false, true, VERDICT_REFUSED},
    {"unavailable alone is ambiguous", I, "A2 NO Service unavailable", true, true, VERDICT_REFUSED},
    {"not a code", I, "A2 NO [UNAVAILABLEX] later", false, true, VERDICT_REFUSED},
    {"SYS hierarchy", P, "-ERR [SYS/TEMP/DB] down", false, true, VERDICT_TEMPORARY},
    {"not SYS", P, "-ERR [SYSTEM] no", false, true, VERDICT_REFUSED},
    {"POP3 knows no IMAP codes", P, "-ERR [UNAVAILABLE] x", false, true, VERDICT_REFUSED},
    /* Issue 17: free text never changes a verdict unless it is, whole, a known fixed text. */
    {"try later is free text", P, "-ERR please try later", false, true, VERDICT_REFUSED},
    {"temporar is free text", P, "-ERR TEMPORARILY LOCKED", false, true, VERDICT_REFUSED},
    {"an admin's reason", P, "-ERR [AUTH] Account temporarily suspended", false, true,
     VERDICT_REFUSED},
    {"an admin's reason", I, "A2 NO [ALERT] Account temporarily suspended", false, true,
     VERDICT_REFUSED},
    {"an echoed user name", I, "A2 NO user temporary-try-again-later unknown", false, true,
     VERDICT_REFUSED},
    {"a fixed text inside more text", P, "-ERR alice: Temporary problem, please try again later",
     true, true, VERDICT_REFUSED},
    {"a fixed text with more after it", P, "-ERR Temporary problem, please try again later (alice)",
     true, true, VERDICT_REFUSED},
    {"not checked is whole too", P, "-ERR user tls required to log in. now", false, false,
     VERDICT_REFUSED},
    {"a fixed text, any case, spaces around", P, "-ERR  temporary PROBLEM, please try again later ",
     true, true, VERDICT_TEMPORARY},
    {"a fixed text after a code", P, "-ERR [AUTH] TLS required to log in.", false, false,
     VERDICT_NOT_CHECKED},
    {"try again, not later", P, "-ERR Wrong password, please try again", false, true,
     VERDICT_REFUSED},
    {"tagged BAD", I, "A2 BAD Error in IMAP command LOGIN", false, true, VERDICT_NOT_UNDERSTOOD},
    {"an OK is no negative reply", I, "A2 OK Logged in", false, true, VERDICT_NOT_UNDERSTOOD},
    {"an OK is no negative reply", P, "+OK Logged in.", false, true, VERDICT_NOT_UNDERSTOOD},
    {"near miss", P, "-ERRx", false, true, VERDICT_NOT_UNDERSTOOD},
    {"empty", P, "", true, true, VERDICT_NOT_UNDERSTOOD},
    {"empty", I, "", true, true, VERDICT_NOT_UNDERSTOOD},
    {"tag only", I, "A2", false, true, VERDICT_NOT_UNDERSTOOD},
    {"bare NO", I, "A2 NO", false, true, VERDICT_REFUSED},
    {"unclosed bracket", I, "A2 NO [UNAVAILABLE later", false, true, VERDICT_REFUSED},
};

static void test_table(void)
{
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        const struct case_row *c = &table[i];
        enum verdict got = verdict_classify(c->protocol, c->reply, strlen(c->reply),
                                            c->closed_after, c->creds_sent);
        if (got != c->want)
            fprintf(stderr, "%s: \"%s\" (closed %d, creds %d): got %s, want %s\n", c->who, c->reply,
                    c->closed_after, c->creds_sent, verdict_name(got), verdict_name(c->want));
        CHECK(got == c->want);
    }
}

static void test_never_success(void)
{
    for (int v = VERDICT_REFUSED; v <= VERDICT_NOT_UNDERSTOOD; v++)
        CHECK(verdict_to_proto((enum verdict)v) != PROTO_OK);
    CHECK(verdict_to_proto(VERDICT_REFUSED) == PROTO_EAUTHFAIL);
    CHECK(verdict_to_proto(VERDICT_TEMPORARY) == PROTO_ETEMP);
    CHECK(verdict_to_proto(VERDICT_NOT_ANSWERED) == PROTO_ETEMP);
    CHECK(verdict_to_proto(VERDICT_NOT_CHECKED) == PROTO_EINSECURE);
    CHECK(verdict_to_proto(VERDICT_NOT_UNDERSTOOD) == PROTO_EPROTO);
}

/* Length-bounded: bytes past len (a marker, a code) never count. */
static void test_explicit_length(void)
{
    static const char line[] = "-ERR Temporary problem, please try again later. Or not";

    CHECK(verdict_classify(P, line, strlen("-ERR Temporary problem, please try again later"), false,
                           true) == VERDICT_TEMPORARY);
    CHECK(verdict_classify(P, line, strlen(line), false, true) == VERDICT_REFUSED);
    CHECK(verdict_classify(I, "A2 NO [AUTHENTICATIONFAILED]", 10, false, true) ==
          VERDICT_REFUSED); /* "A2 NO [AUT": no code, no marker */
}

static void test_describe(void)
{
    struct errbuf eb;

    verdict_describe(VERDICT_REFUSED, "PASS", "-ERR Login failed.", false, &eb);
    CHECK_STR(eb.text, "server refused credentials (PASS): \"-ERR Login failed.\"");
    verdict_describe(VERDICT_TEMPORARY, "PASS", "-ERR Temporary problem", true, &eb);
    CHECK_STR(eb.text, "server temporarily unavailable (PASS): \"-ERR Temporary problem\" and "
                       "closed the connection");
    verdict_describe(VERDICT_NOT_CHECKED, "USER", "-ERR TLS required to log in.", false, &eb);
    CHECK(strstr(eb.text, "server would not check the password (USER)") != NULL);
    CHECK(strstr(eb.text, "not a verdict") != NULL);
    verdict_describe(VERDICT_NOT_UNDERSTOOD, "LOGIN", "syntax error", false, &eb);
    CHECK_STR(eb.text, "server rejected LOGIN as malformed: \"syntax error\"");
}

/* RFC 3206 text for the user: [SYS/PERM] always, [AUTH] only answering the credentials, never
 * [SYS/TEMP], other codes, no code or an empty text; the text is what follows the code. */
static void test_pop3_user_text(void)
{
    static const struct {
        const char *reply;
        bool creds_sent;
        const char *code; /* NULL: no text for the user */
        const char *text;
    } rows[] = {
        {"-ERR [AUTH] Application-specific password required: https://x.example/asp", true, "AUTH",
         "Application-specific password required: https://x.example/asp"},
        {"-ERR [AUTH] Web login required", false, NULL, NULL},
        {"-ERR [auth]   Account expired  ", true, "AUTH", "Account expired"},
        {"-ERR [SYS/PERM] Mailbox corrupted; call the help desk", false, "SYS/PERM",
         "Mailbox corrupted; call the help desk"},
        {"-ERR [SYS/PERM] Quota database lost", true, "SYS/PERM", "Quota database lost"},
        {"-ERR [SYS/TEMP] backend down", true, NULL, NULL},
        {"-ERR [SYS] broken", true, NULL, NULL},
        {"-ERR [IN-USE] locked", true, NULL, NULL},
        {"-ERR [LOGIN-DELAY] wait", true, NULL, NULL},
        {"-ERR [AUTHX] nope", true, NULL, NULL},
        {"-ERR Authentication failed.", true, NULL, NULL},
        {"-ERR [AUTH]", true, NULL, NULL},
        {"-ERR [AUTH]   ", true, NULL, NULL},
        {"-ERR [AUTH no closing bracket", true, NULL, NULL},
        {"+OK [AUTH] fine", true, NULL, NULL},
        {"A1 NO [AUTH] imap", true, NULL, NULL},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *code = NULL, *text = NULL;
        size_t n = 0;
        bool got = verdict_pop3_user_text(rows[i].reply, strlen(rows[i].reply), rows[i].creds_sent,
                                          &code, &text, &n);
        bool ok = rows[i].code == NULL
                      ? !got
                      : got && strcmp(code, rows[i].code) == 0 && n == strlen(rows[i].text) &&
                            memcmp(text, rows[i].text, n) == 0;
        if (!ok)
            fprintf(stderr, "pop3 user text of \"%s\" (creds %d): got %d \"%.*s\"\n", rows[i].reply,
                    rows[i].creds_sent, got, got ? (int)n : 0, got ? text : "");
        CHECK(ok);
    }
}

int main(void)
{
    test_pop3_user_text();
    test_table();
    test_never_success();
    test_explicit_length();
    test_describe();
    return check_summary("verdict");
}
