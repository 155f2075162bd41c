/* The meaning of a negative reply to a login step (see verdict.h for the rule and the texts real
 * servers send). */
#include "verdict.h"

#include <string.h>
#include <strings.h>

/* A negative reply taken apart: its response code (first atom inside the leading brackets,
 * without them) and everything after the status word, code included, for the text markers. */
struct negative_reply {
    bool bye;         /* IMAP untagged BYE in place of the tagged reply */
    const char *code; /* NULL when the reply has none */
    size_t code_len;
    const char *text;
    size_t text_len;
};

/* Bytes before the first of stops (a NUL byte is never one: replies are length-bounded). */
static size_t span_until(const char *p, size_t n, const char *stops)
{
    size_t i = 0;

    while (i < n && memchr(stops, p[i], strlen(stops)) == NULL)
        i++;
    return i;
}

/* After the status word: an optional "[CODE ...]" (its first atom is the code), then text. */
static void take_code(const char *p, size_t n, struct negative_reply *nr)
{
    nr->text = p;
    nr->text_len = n;
    if (n == 0 || p[0] != '[' || memchr(p, ']', n) == NULL)
        return;
    nr->code = p + 1;
    nr->code_len = span_until(p + 1, n - 1, "] ");
}

/* "-ERR" alone or followed by a space, as pop3_reply_classify. */
static bool parse_pop3(const char *p, size_t n, struct negative_reply *nr)
{
    if (n < 4 || memcmp(p, "-ERR", 4) != 0 || (n > 4 && p[4] != ' '))
        return false;
    p += n > 4 ? 5 : 4;
    n -= n > 4 ? 5 : 4;
    take_code(p, n, nr);
    return true;
}

/* "TAG NO ...", "* NO ..." or "* BYE ..."; anything else (BAD, OK) is no negative reply. */
static bool parse_imap(const char *p, size_t n, struct negative_reply *nr)
{
    size_t tag = span_until(p, n, " ");
    size_t status;

    if (tag == 0 || tag == n)
        return false;
    p += tag + 1;
    n -= tag + 1;
    status = span_until(p, n, " ");
    if (ascii_word_is(p, status, "BYE"))
        nr->bye = true;
    else if (!ascii_word_is(p, status, "NO"))
        return false;
    p += status;
    n -= status;
    if (n > 0) {
        p++;
        n--;
    }
    take_code(p, n, nr);
    return true;
}

static bool code_in(const struct negative_reply *nr, const char *const *codes, size_t count)
{
    for (size_t i = 0; nr->code != NULL && i < count; i++) {
        if (ascii_word_is(nr->code, nr->code_len, codes[i]))
            return true;
    }
    return false;
}

/* RFC 5530 codes that judge the credentials or the account. */
static bool imap_refusal_code(const struct negative_reply *nr)
{
    static const char *const codes[] = {"AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED",
                                        "CONTACTADMIN"};

    return code_in(nr, codes, MA_ARRAY_LEN(codes));
}

/* RFC 2449/3206 (POP3, hierarchical: the first component decides) and RFC 5530 (IMAP). */
static bool temporary_code(enum mail_protocol protocol, const struct negative_reply *nr)
{
    static const char *const pop3[] = {"SYS", "IN-USE", "LOGIN-DELAY"};
    static const char *const imap[] = {"UNAVAILABLE", "SERVERBUG", "INUSE", "LIMIT"};

    if (protocol == PROTOCOL_POP3) {
        struct negative_reply first = *nr;
        if (nr->code != NULL)
            first.code_len = span_until(nr->code, nr->code_len, "/");
        return code_in(&first, pop3, MA_ARRAY_LEN(pop3));
    }
    return code_in(nr, imap, MA_ARRAY_LEN(imap));
}

/* The free text: what follows the response code (and the spaces after it), or the whole text
 * when there is none, without trailing spaces. */
static void free_text(const struct negative_reply *nr, const char **p, size_t *n)
{
    const char *t = nr->text;
    size_t len = nr->text_len;

    if (nr->code != NULL) {
        const char *close = memchr(t, ']', len);
        len -= (size_t)(close + 1 - t);
        t = close + 1;
    }
    while (len > 0 && t[0] == ' ') {
        t++;
        len--;
    }
    while (len > 0 && t[len - 1] == ' ')
        len--;
    *p = t;
    *n = len;
}

/* The free text is, whole (ignoring case), one of texts. Never a search inside it: the free text
 * may hold what the user typed (a name echoed back) or an administrator's own refusal reason
 * ("Account temporarily suspended"), and neither may turn a refusal into something else. */
static bool text_is_one_of(const struct negative_reply *nr, const char *const *texts, size_t count)
{
    const char *t;
    size_t n;

    free_text(nr, &t, &n);
    for (size_t i = 0; i < count; i++) {
        if (memchr(t, '\0', n) == NULL && ascii_word_is(t, n, texts[i]))
            return true;
    }
    return false;
}

/* "The server says it is temporary", in the fixed words of a server that has no code for it:
 * Courier (POP3 -ERR and IMAP BYE with its authentication daemon down). */
static bool says_temporary(const struct negative_reply *nr)
{
    static const char *const texts[] = {"Temporary problem, please try again later"};

    return text_is_one_of(nr, texts, MA_ARRAY_LEN(texts));
}

/* "The password was not looked at, for how the client came", in the fixed words of Courier
 * POP3, Cyrus (POP3 after [AUTH], IMAP) and Dovecot POP3 (after [AUTH]). */
static bool says_not_checked(const struct negative_reply *nr)
{
    static const char *const texts[] = {
        "TLS required to log in.",
        "USER command only available under a layer",
        "Login only available under a layer",
        "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
    };

    return text_is_one_of(nr, texts, MA_ARRAY_LEN(texts));
}

enum verdict verdict_classify(enum mail_protocol protocol, const char *reply, size_t len,
                              bool closed_after, bool creds_sent)
{
    static const char *const privacy[] = {"PRIVACYREQUIRED"};
    struct negative_reply nr = {0};
    bool parsed =
        protocol == PROTOCOL_POP3 ? parse_pop3(reply, len, &nr) : parse_imap(reply, len, &nr);

    if (!parsed)
        return VERDICT_NOT_UNDERSTOOD;
    if (protocol == PROTOCOL_IMAP && imap_refusal_code(&nr))
        return VERDICT_REFUSED;
    if (temporary_code(protocol, &nr))
        return VERDICT_TEMPORARY;
    if (protocol == PROTOCOL_IMAP && code_in(&nr, privacy, MA_ARRAY_LEN(privacy)))
        return VERDICT_NOT_CHECKED;
    if (says_temporary(&nr))
        return VERDICT_TEMPORARY;
    if (says_not_checked(&nr))
        return VERDICT_NOT_CHECKED;
    if (nr.bye)
        return VERDICT_NOT_ANSWERED;
    if (closed_after && !creds_sent)
        return VERDICT_NOT_ANSWERED;
    return VERDICT_REFUSED;
}

bool verdict_pop3_user_text(const char *reply, size_t len, bool creds_sent, const char **code,
                            const char **text, size_t *text_len)
{
    struct negative_reply nr = {0};

    if (!parse_pop3(reply, len, &nr) || nr.code == NULL)
        return false;
    if (ascii_word_is(nr.code, nr.code_len, "SYS/PERM"))
        *code = "SYS/PERM";
    else if (creds_sent && ascii_word_is(nr.code, nr.code_len, "AUTH"))
        *code = "AUTH";
    else
        return false;
    free_text(&nr, text, text_len);
    return *text_len > 0;
}

enum proto_result verdict_to_proto(enum verdict v)
{
    switch (v) {
    case VERDICT_REFUSED:
        return PROTO_EAUTHFAIL;
    case VERDICT_TEMPORARY:
    case VERDICT_NOT_ANSWERED:
        return PROTO_ETEMP;
    case VERDICT_NOT_CHECKED:
        return PROTO_EINSECURE;
    case VERDICT_NOT_UNDERSTOOD:
        break;
    }
    return PROTO_EPROTO;
}

const char *verdict_name(enum verdict v)
{
    switch (v) {
    case VERDICT_REFUSED:
        return "refused";
    case VERDICT_TEMPORARY:
        return "temporary";
    case VERDICT_NOT_CHECKED:
        return "not checked";
    case VERDICT_NOT_ANSWERED:
        return "not answered";
    case VERDICT_NOT_UNDERSTOOD:
        return "not understood";
    }
    return "?";
}

void verdict_describe(enum verdict v, const char *what, const char *excerpt, bool closed_after,
                      struct errbuf *reason)
{
    const char *closed = closed_after ? " and closed the connection" : "";

    switch (v) {
    case VERDICT_REFUSED:
        errbuf_set(reason, "server refused credentials (%s): \"%s\"%s", what, excerpt, closed);
        return;
    case VERDICT_TEMPORARY:
        errbuf_set(reason, "server temporarily unavailable (%s): \"%s\"%s", what, excerpt, closed);
        return;
    case VERDICT_NOT_CHECKED:
        errbuf_set(reason,
                   "server would not check the password (%s): \"%s\"%s; not a verdict (it wants "
                   "TLS or another security layer: check tls for this server)",
                   what, excerpt, closed);
        return;
    case VERDICT_NOT_ANSWERED:
        errbuf_set(reason, "server gave no verdict (%s): \"%s\"%s", what, excerpt, closed);
        return;
    case VERDICT_NOT_UNDERSTOOD:
        break;
    }
    errbuf_set(reason, "server rejected %s as malformed: \"%s\"%s", what, excerpt, closed);
}
