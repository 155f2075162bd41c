/* verdict.c against an independent reference written from the rule as OUTCOMES in
 * pam_mailauth.conf(5) states it (lower-case copy, memmem, no shared helpers), plus properties
 * that must hold whatever the rule's details:
 * - no class is a success (verdict_to_proto never gives PROTO_OK);
 * - an IMAP NO or BYE carrying [AUTHENTICATIONFAILED] is always a refusal;
 * - a reply with a "try later" code or fixed text and no refusal code is never a refusal;
 * - words in free text ("temporarily", "try later", "TLS required": an echoed user name, an
 *   administrator's refusal reason) never change a verdict: only codes and a server's fixed
 *   texts matched whole do (issue 17);
 * - the connection closing never turns a non-refusal into a refusal, and sending the password
 *   never turns a refusal into "no verdict" (a man in the middle must not gain from either).
 * verdict_pop3_user_text (POP3 only, whatever bit 0 says) against the same reference: text
 * only for a POP3 -ERR with [SYS/PERM], or [AUTH] with creds_sent, and then exactly the free
 * text (never empty).
 * Input: one header byte (bit 0 POP3, bit 1 closed_after, bit 2 creds_sent), then the reply. */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "verdict.h"

#define MAX_REPLY 4096

struct ref_reply {
    const char *rest; /* lower-cased, after the status word and one space */
    size_t rest_len;
    const char *code; /* lower-cased first atom of a leading [...], NULL when none */
    size_t code_len;
    bool bye;
};

static bool has(const char *hay, size_t n, const char *needle)
{
    return memmem(hay, n, needle, strlen(needle)) != NULL;
}

static void ref_code(struct ref_reply *r)
{
    size_t i = 1;

    if (r->rest_len == 0 || r->rest[0] != '[' || memchr(r->rest, ']', r->rest_len) == NULL)
        return;
    while (i < r->rest_len && r->rest[i] != ']' && r->rest[i] != ' ')
        i++;
    r->code = r->rest + 1;
    r->code_len = i - 1;
}

static bool same(const char *p, size_t n, const char *word)
{
    return p != NULL && n == strlen(word) && memcmp(p, word, n) == 0;
}

/* low: the reply lower-cased; orig: as sent (POP3's "-ERR" is case-sensitive). */
static bool ref_parse(bool pop3, const char *orig, const char *low, size_t n, struct ref_reply *r)
{
    const char *sp, *status;
    size_t status_len;

    memset(r, 0, sizeof(*r));
    if (pop3) {
        if (n < 4 || strncmp(orig, "-ERR", 4) != 0 || (n > 4 && orig[4] != ' '))
            return false;
        r->rest = low + (n > 4 ? 5 : 4);
        r->rest_len = n - (n > 4 ? 5 : 4);
        ref_code(r);
        return true;
    }
    sp = memchr(low, ' ', n);
    if (sp == NULL || sp == low)
        return false;
    status = sp + 1;
    sp = memchr(status, ' ', n - (size_t)(status - low));
    status_len = sp != NULL ? (size_t)(sp - status) : n - (size_t)(status - low);
    if (status_len == 3 && memcmp(status, "bye", 3) == 0)
        r->bye = true;
    else if (status_len != 2 || memcmp(status, "no", 2) != 0)
        return false;
    r->rest = sp != NULL ? sp + 1 : status + status_len;
    r->rest_len = n - (size_t)(r->rest - low);
    ref_code(r);
    return true;
}

static bool code_is(const char *code, size_t len, const char *const *list, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (same(code, len, list[i]))
            return true;
    }
    return false;
}

static bool ref_refusal_code(bool pop3, const struct ref_reply *r)
{
    static const char *const imap[] = {"authenticationfailed", "authorizationfailed", "expired",
                                       "contactadmin"};

    return !pop3 && code_is(r->code, r->code_len, imap, sizeof(imap) / sizeof(imap[0]));
}

static bool ref_temporary_code(bool pop3, const struct ref_reply *r)
{
    static const char *const imap[] = {"unavailable", "serverbug", "inuse", "limit"};
    static const char *const pop[] = {"in-use", "login-delay", "sys"};
    const char *slash;

    if (!pop3)
        return code_is(r->code, r->code_len, imap, sizeof(imap) / sizeof(imap[0]));
    if (r->code == NULL)
        return false;
    /* hierarchical: the first component decides */
    slash = memchr(r->code, '/', r->code_len);
    return code_is(r->code, slash != NULL ? (size_t)(slash - r->code) : r->code_len, pop,
                   sizeof(pop) / sizeof(pop[0]));
}

/* The text after the code (and the spaces after it), trailing spaces dropped, lower-cased. */
static void ref_free_text(const struct ref_reply *r, const char **t, size_t *n)
{
    const char *p = r->rest;
    size_t len = r->rest_len;

    if (r->code != NULL) {
        const char *close = memchr(p, ']', len);
        len -= (size_t)(close - p) + 1;
        p = close + 1;
    }
    for (; len > 0 && *p == ' '; p++, len--)
        ;
    for (; len > 0 && p[len - 1] == ' '; len--)
        ;
    *t = p;
    *n = len;
}

/* The free text is exactly one of the fixed texts (lower case): never a search inside it. */
static bool ref_text_is(const struct ref_reply *r, const char *const *texts, size_t count)
{
    const char *t;
    size_t n;

    ref_free_text(r, &t, &n);
    for (size_t i = 0; i < count; i++) {
        if (n == strlen(texts[i]) && memcmp(t, texts[i], n) == 0)
            return true;
    }
    return false;
}

static bool ref_says_temporary(const struct ref_reply *r)
{
    static const char *const texts[] = {"temporary problem, please try again later"};

    return ref_text_is(r, texts, sizeof(texts) / sizeof(texts[0]));
}

static bool ref_says_not_checked(const struct ref_reply *r)
{
    static const char *const texts[] = {
        "tls required to log in.", "user command only available under a layer",
        "login only available under a layer",
        "plaintext authentication disallowed on non-secure (ssl/tls) connections."};

    return ref_text_is(r, texts, sizeof(texts) / sizeof(texts[0]));
}

/* Free text that merely holds a "try later" or "not checked" word: what a user name or an
 * administrator's reason can put into a reply (issue 17). */
static bool ref_free_text_has_marker(const struct ref_reply *r)
{
    static const char *const markers[] = {"temporar",     "try again later", "try later",
                                          "tls required", "under a layer",   "unavailable"};

    for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++) {
        if (has(r->rest, r->rest_len, markers[i]))
            return true;
    }
    return false;
}

static enum verdict reference(bool pop3, const char *orig, const char *low, size_t n, bool closed,
                              bool creds)
{
    struct ref_reply r;

    if (!ref_parse(pop3, orig, low, n, &r))
        return VERDICT_NOT_UNDERSTOOD;
    if (ref_refusal_code(pop3, &r))
        return VERDICT_REFUSED;
    if (ref_temporary_code(pop3, &r))
        return VERDICT_TEMPORARY;
    if (!pop3 && same(r.code, r.code_len, "privacyrequired"))
        return VERDICT_NOT_CHECKED;
    if (ref_says_temporary(&r))
        return VERDICT_TEMPORARY;
    if (ref_says_not_checked(&r))
        return VERDICT_NOT_CHECKED;
    if (r.bye || (closed && !creds))
        return VERDICT_NOT_ANSWERED;
    return VERDICT_REFUSED;
}

static void check_properties(bool pop3, const char *orig, const char *low, size_t n, enum verdict v,
                             bool closed, bool creds)
{
    enum mail_protocol p = pop3 ? PROTOCOL_POP3 : PROTOCOL_IMAP;
    struct ref_reply r;

    if (verdict_to_proto(v) == PROTO_OK)
        abort();
    if (ref_parse(pop3, orig, low, n, &r)) {
        if (ref_refusal_code(pop3, &r) && v != VERDICT_REFUSED)
            abort();
        if (!ref_refusal_code(pop3, &r) &&
            (ref_temporary_code(pop3, &r) || ref_says_temporary(&r)) && v == VERDICT_REFUSED)
            abort();
        /* Words in free text never change a verdict: with no code and no whole fixed text, a
         * reply (not a BYE, not a close before the password) is a refusal whatever it says. */
        if (ref_free_text_has_marker(&r) && !ref_temporary_code(pop3, &r) &&
            !(!pop3 && same(r.code, r.code_len, "privacyrequired")) && !r.bye &&
            (creds || !closed) && !ref_says_temporary(&r) && !ref_says_not_checked(&r) &&
            v != VERDICT_REFUSED)
            abort();
    }
    /* closing never makes a refusal; sending the password never unmakes one */
    if (closed && v == VERDICT_REFUSED && verdict_classify(p, orig, n, false, creds) != v)
        abort();
    if (!creds && v == VERDICT_REFUSED && verdict_classify(p, orig, n, closed, true) != v)
        abort();
}

static void check_user_text(const char *orig, const char *low, size_t n, bool creds)
{
    const char *code = NULL, *text = NULL, *want;
    size_t len = 0, want_len;
    bool got = verdict_pop3_user_text(orig, n, creds, &code, &text, &len);
    struct ref_reply r;
    bool ref = ref_parse(true, orig, low, n, &r) && (same(r.code, r.code_len, "sys/perm") ||
                                                     (creds && same(r.code, r.code_len, "auth")));

    if (ref) {
        ref_free_text(&r, &want, &want_len);
        ref = want_len > 0;
    }
    if (got != ref)
        abort();
    if (got && (len != want_len || text != orig + (want - low) ||
                (strcmp(code, "AUTH") != 0 && strcmp(code, "SYS/PERM") != 0)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char low[MAX_REPLY];
    const char *orig = (const char *)data + 1;
    size_t n;
    bool pop3, closed, creds;
    enum verdict v;
    struct errbuf eb;

    if (size < 1 || size - 1 > MAX_REPLY)
        return 0;
    pop3 = (data[0] & 1) != 0;
    closed = (data[0] & 2) != 0;
    creds = (data[0] & 4) != 0;
    n = size - 1;
    for (size_t i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)orig[i]);
    v = verdict_classify(pop3 ? PROTOCOL_POP3 : PROTOCOL_IMAP, orig, n, closed, creds);
    if (v != reference(pop3, orig, low, n, closed, creds))
        abort();
    check_properties(pop3, orig, low, n, v, closed, creds);
    check_user_text(orig, low, n, creds); /* POP3 whatever the header says */
    if (strcmp(verdict_name(v), "?") == 0)
        abort();
    verdict_describe(v, "PASS", "excerpt", closed, &eb);
    return 0;
}
