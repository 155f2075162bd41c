/* IMAP reply parsing, capability parsing and quoting, checked against independent reference
 * rules written from RFC 9051 rather than from the code:
 * - a line is a continuation when it is "+" or starts with "+ "; untagged when it starts with
 *   "* "; ours only when it starts with our tag and a space;
 * - our tagged reply is OK, NO or BAD only when that word (any case) follows the tag and is
 *   followed by a space or the end of the line ("A1 OKAY", "A1 OK\t" are not OK);
 * - a trailing "{digits}" announces a literal of that many bytes; more than the limit is an
 *   error, never a smaller count;
 * - a quoted string unquotes to its input.
 * A success the reference does not grant, or a verdict it contradicts, aborts. */
#include <stdint.h>

#include "fuzz.h"
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "imap.h"

enum ref_status { REF_NOT_OURS, REF_OK, REF_NO, REF_BAD, REF_OTHER };

static bool starts_with(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);

    return n >= l && memcmp(p, lit, l) == 0;
}

/* The status of our tagged reply by the reference rule. */
static enum ref_status reference_tagged(const char *p, size_t n, const char *tag)
{
    size_t t = strlen(tag), w = 0;
    const char *word;

    if (n < t + 1 || memcmp(p, tag, t) != 0 || p[t] != ' ')
        return REF_NOT_OURS;
    word = p + t + 1;
    while (t + 1 + w < n && word[w] != ' ')
        w++;
    if (w == 2 && toupper((unsigned char)word[0]) == 'O' && toupper((unsigned char)word[1]) == 'K')
        return REF_OK;
    if (w == 2 && toupper((unsigned char)word[0]) == 'N' && toupper((unsigned char)word[1]) == 'O')
        return REF_NO;
    if (w == 3 && toupper((unsigned char)word[0]) == 'B' &&
        toupper((unsigned char)word[1]) == 'A' && toupper((unsigned char)word[2]) == 'D')
        return REF_BAD;
    return REF_OTHER;
}

/* -1: no literal announced; -2: announced but over the limit; else the count. */
static long reference_literal(const char *p, size_t n)
{
    size_t i = n, digits;
    long v = 0;

    if (n < 3 || p[n - 1] != '}')
        return -1;
    i = n - 1;
    while (i > 0 && isdigit((unsigned char)p[i - 1]))
        i--;
    digits = n - 1 - i;
    if (digits == 0 || i == 0 || p[i - 1] != '{')
        return -1;
    for (size_t k = i; k < n - 1; k++) {
        v = v * 10 + (p[k] - '0');
        if (v > IMAP_MAX_LITERAL)
            return -2;
    }
    return v;
}

static void check_reply(const char *p, size_t n)
{
    static const char tag[] = "A1";
    struct imap_reply r;
    bool parsed = imap_parse_reply(p, n, tag, &r);
    bool continuation = starts_with(p, n, "+ ") || (n == 1 && p[0] == '+');
    enum ref_status want = reference_tagged(p, n, tag);
    long literal = reference_literal(p, n);

    if (!parsed && r.kind != IMAP_MALFORMED)
        abort();
    if ((r.kind == IMAP_CONTINUATION) != continuation)
        abort();
    if (continuation)
        return;
    if (r.kind == IMAP_UNTAGGED && !starts_with(p, n, "* "))
        abort();
    if (parsed && starts_with(p, n, "* ") && r.kind != IMAP_UNTAGGED)
        abort();
    /* A verdict for our command only when the reference sees that very verdict. */
    if (r.kind == IMAP_TAGGED && !((r.status == IMAP_ST_OK && want == REF_OK) ||
                                   (r.status == IMAP_ST_NO && want == REF_NO) ||
                                   (r.status == IMAP_ST_BAD && want == REF_BAD)))
        abort();
    if (r.kind == IMAP_OTHER_TAG && want != REF_NOT_OURS)
        abort();
    /* And a reply the reference calls OK, NO or BAD is never read as another verdict or as
     * someone else's: at worst it is malformed (a broken response code or literal). */
    if (want == REF_OK || want == REF_NO || want == REF_BAD) {
        if (parsed && r.kind != IMAP_TAGGED)
            abort();
    }
    if (literal == -2 && parsed)
        abort();
    if (parsed && (literal >= 0) != r.has_literal)
        abort();
    if (parsed && r.has_literal && (long)r.literal_len != literal)
        abort();
}

static void check_quote(const char *s, size_t n)
{
    char out[2 * 256 + 3];
    char back[256];
    size_t q = imap_quote(s, n, out, sizeof(out));
    size_t b = 0;

    if (q == 0)
        return;
    if (out[0] != '"' || out[q - 1] != '"' || !imap_can_quote(s, n))
        abort();
    for (size_t i = 1; i + 1 < q; i++) {
        if (out[i] == '\\')
            i++;
        else if (out[i] == '"')
            abort(); /* an unescaped quote inside would end the string early */
        back[b++] = out[i];
    }
    if (b != n || memcmp(back, s, n) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    struct imap_reply r;
    struct imap_caps caps = {0};

    check_reply(p, size);
    if (imap_parse_reply(p, size, "A1", &r)) {
        if (r.has_literal && r.literal_len > IMAP_MAX_LITERAL)
            abort();
        if (r.code != NULL && (r.code < p || r.code + r.code_len > p + size))
            abort();
        imap_caps_from_code(&r, &caps);
        if (r.line != p || r.line_len != size)
            abort();
    }
    imap_parse_reply(p, size, "", &r);
    imap_caps_parse(p, size, &caps);
    if (size <= 256)
        check_quote(p, size);
    return 0;
}
