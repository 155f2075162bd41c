/* POP3 reply classification, response codes, APOP timestamps, CAPA lines and the greeting's
 * [XCLIENT] (Dovecot), each compared with an independent reference written from the RFCs (1939,
 * 2449, 3206, 5034) rather than from the code: the first word of a reply is "+OK", "-ERR" or "+"
 * exactly, nothing else ("+OKAY",
 * "+OK\t", "+ok" are not replies). A difference in either direction aborts. */
#include <stdint.h>

#include "fuzz.h"
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pop3.h"
#include "sasl/mech.h"
#include "verdict.h"

/* The bytes before the first space (or the whole line). */
static size_t first_word(const char *p, size_t n)
{
    const char *sp = memchr(p, ' ', n);

    return sp != NULL ? (size_t)(sp - p) : n;
}

static bool word_equals(const char *w, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(w, lit, n) == 0;
}

/* Case-insensitive, for capability names and response codes. */
static bool word_equals_nocase(const char *w, size_t n, const char *lit)
{
    if (n != strlen(lit))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (toupper((unsigned char)w[i]) != toupper((unsigned char)lit[i]))
            return false;
    }
    return true;
}

static enum pop3_reply reference_classify(const char *p, size_t n)
{
    size_t w = first_word(p, n);

    if (word_equals(p, w, "+OK"))
        return POP3_REPLY_OK;
    if (word_equals(p, w, "-ERR"))
        return POP3_REPLY_ERR;
    if (word_equals(p, w, "+"))
        return POP3_REPLY_CONT;
    return POP3_REPLY_INVALID;
}

/* RFC 2449 response code right after "-ERR ": "[SYS/TEMP]", "[SYS/PERM]", "[IN-USE]" or
 * "[LOGIN-DELAY]" (possibly with more after the closing bracket, as the codes have
 * hierarchies like SYS/TEMP/...). */
static bool reference_unavailable(const char *p, size_t n)
{
    static const char *const codes[] = {"SYS/TEMP", "SYS/PERM", "IN-USE", "LOGIN-DELAY"};
    const char *open = p + 5, *close;

    if (n < 7 || p[4] != ' ' || *open != '[')
        return false;
    close = memchr(open, ']', n - 5);
    if (close == NULL)
        return false;
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (word_equals_nocase(open + 1, (size_t)(close - open - 1), codes[i]))
            return true;
    }
    return false;
}

static void check_timestamp(const char *p, size_t size)
{
    char ts[POP3_APOP_TIMESTAMP_MAX + 1];
    size_t n;
    int ats = 0;

    if (!pop3_apop_timestamp(p, size, ts, sizeof(ts)))
        return;
    n = strlen(ts);
    if (n < 5 || n > POP3_APOP_TIMESTAMP_MAX || ts[0] != '<' || ts[n - 1] != '>')
        abort();
    if (memmem(p, size, ts, n) == NULL)
        abort(); /* the timestamp must be taken from the greeting, verbatim */
    for (size_t i = 1; i + 1 < n; i++) {
        if ((unsigned char)ts[i] < 0x21 || (unsigned char)ts[i] > 0x7e || ts[i] == '<' ||
            ts[i] == '>')
            abort();
        ats += ts[i] == '@';
    }
    if (ats != 1 || ts[1] == '@' || ts[n - 2] == '@')
        abort();
}

static void check_capa(const char *p, size_t n)
{
    struct pop3_caps caps = {0};
    struct pop3_caps want = {0};
    bool want_plain = false;
    size_t w = first_word(p, n);

    pop3_capa_line(p, n, &caps);
    want.user = word_equals_nocase(p, w, "USER");
    want.stls = word_equals_nocase(p, w, "STLS");
    if (word_equals_nocase(p, w, "SASL")) {
        for (size_t i = w; i < n;) {
            size_t len;
            while (i < n && p[i] == ' ')
                i++;
            len = first_word(p + i, n - i);
            want_plain |= word_equals_nocase(p + i, len, "PLAIN");
            i += len;
        }
    }
    if (caps.user != want.user || caps.stls != want.stls ||
        ((caps.sasl_mechs & (1u << SASL_MECH_PLAIN)) != 0) != want_plain)
        abort();
}

/* Dovecot's greeting to a trusted client: "+OK [XCLIENT] ...". The first word is exactly
 * "+OK", a space follows, and the response code that follows in brackets is the word XCLIENT
 * (any case), nothing more. */
static bool reference_xclient(const char *p, size_t n)
{
    static const char want[] = "[XCLIENT]";
    size_t w = first_word(p, n);

    return word_equals(p, w, "+OK") && n >= w + 1 + sizeof(want) - 1 &&
           word_equals_nocase(p + w + 1, sizeof(want) - 1, want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    enum pop3_reply kind = pop3_reply_classify(p, size);

    if (kind != reference_classify(p, size))
        abort();
    /* A "try later" code is never a refusal, whatever the text (verdict.c; its own target
     * fuzz_verdict checks the rest of the rule). */
    if (kind == POP3_REPLY_ERR && reference_unavailable(p, size) &&
        verdict_classify(PROTOCOL_POP3, p, size, false, true) != VERDICT_TEMPORARY)
        abort();
    check_timestamp(p, size);
    check_capa(p, size);
    if (pop3_greeting_offers_xclient(p, size) != reference_xclient(p, size))
        abort();
    return 0;
}
