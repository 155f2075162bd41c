/* Server alerts made fit for the user's terminal: secrets first (on the raw bytes and again on
 * the result), then escape sequences, controls and invalid UTF-8 out, spaces folded, cut. */
#include "alert.h"

#include <stdint.h>
#include <string.h>

#include "util.h"

enum { ESC = 0x1b, BEL = 0x07 };

/* True when the first ALERT_MAX_INPUT bytes of text hold a secret of rs as the log's redaction
 * finds them (redact_text changes nothing of a text without one but its escaping), or hold one
 * of them verbatim (a password that reads "<redacted>" would survive redaction unchanged). */
static bool holds_secret(const struct redact_set *rs, const char *text, size_t len)
{
    char redacted[ALERT_MAX_INPUT + 2];
    char escaped[ALERT_MAX_INPUT + 2];
    size_t n = len < ALERT_MAX_INPUT ? len : ALERT_MAX_INPUT;
    bool found = false;

    if (rs == NULL || rs->count == 0)
        return false;
    for (size_t k = 0; k < rs->count && !found; k++)
        found = memmem(text, n, rs->secrets[k].text, rs->secrets[k].len) != NULL;
    if (!found) {
        redact_text(rs, redacted, sizeof(redacted), text, len, ALERT_MAX_INPUT);
        text_sanitize(escaped, sizeof(escaped), text, n);
        found = strcmp(redacted, escaped) != 0;
    }
    secret_wipe(redacted, sizeof(redacted));
    secret_wipe(escaped, sizeof(escaped));
    return found;
}

/* Length of the UTF-8 character at p (left bytes) with its code point in *cp; 0 when p does not
 * start a valid, shortest-form character of at most U+10FFFF that is not a surrogate. */
static size_t utf8_char(const unsigned char *p, size_t left, uint32_t *cp)
{
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t n = p[0] < 0x80                    ? 1
               : p[0] >= 0xc2 && p[0] <= 0xdf ? 2
               : (p[0] & 0xf0) == 0xe0        ? 3
               : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                              : 0;
    uint32_t c;

    if (n == 0 || n > left)
        return 0;
    c = n == 1 ? p[0] : p[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return n;
}

/* Code points that are not shown: controls (C0, DEL, C1) and format characters that reorder,
 * hide or break text, and noncharacters. */
static bool invisible(uint32_t c)
{
    return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x061c || (c >= 0x200b && c <= 0x200f) ||
           (c >= 0x2028 && c <= 0x202e) || (c >= 0x2060 && c <= 0x206f) || c == 0xfeff ||
           (c >= 0xfff9 && c <= 0xfffb) || (c >= 0xfdd0 && c <= 0xfdef) || (c & 0xfffe) == 0xfffe ||
           (c >= 0xe0000 && c <= 0xe007f);
}

/* A control string (OSC, DCS, SOS, PM, APC) from i: up to and with BEL, ESC \ or C1 ST. */
static size_t skip_string(const unsigned char *p, size_t n, size_t i)
{
    for (; i < n; i++) {
        if (p[i] == BEL)
            return i + 1;
        if (p[i] == ESC && i + 1 < n && p[i + 1] == '\\')
            return i + 2;
        if (p[i] == 0xc2 && i + 1 < n && p[i + 1] == 0x9c)
            return i + 2;
    }
    return n;
}

/* A CSI sequence's parameters, intermediates and final byte from i. */
static size_t skip_csi(const unsigned char *p, size_t n, size_t i)
{
    while (i < n && p[i] >= 0x30 && p[i] <= 0x3f)
        i++;
    while (i < n && p[i] >= 0x20 && p[i] <= 0x2f)
        i++;
    return i < n && p[i] >= 0x40 && p[i] <= 0x7e ? i + 1 : i;
}

/* After ESC at p[i - 1]: where the sequence it starts ends. */
static size_t skip_escape(const unsigned char *p, size_t n, size_t i)
{
    if (i >= n)
        return n;
    if (p[i] == '[')
        return skip_csi(p, n, i + 1);
    if (p[i] == ']' || p[i] == 'P' || p[i] == 'X' || p[i] == '^' || p[i] == '_')
        return skip_string(p, n, i + 1);
    while (i < n && p[i] >= 0x20 && p[i] <= 0x2f)
        i++;
    return i < n && p[i] >= 0x30 && p[i] <= 0x7e ? i + 1 : i;
}

/* After a C1 control c (2 bytes in UTF-8) ending at p[i - 1]: where its sequence ends. */
static size_t skip_c1(uint32_t c, const unsigned char *p, size_t n, size_t i)
{
    if (c == 0x9b)
        return skip_csi(p, n, i);
    if (c == 0x9d || c == 0x90 || c == 0x98 || c == 0x9e || c == 0x9f)
        return skip_string(p, n, i);
    return i;
}

struct text {
    char *p;
    size_t n;
    size_t cap;
    bool space; /* a space is owed before the next visible character */
};

static void put_char(struct text *t, const unsigned char *c, size_t len)
{
    if (t->space && t->n > 0 && t->n + 1 < t->cap)
        t->p[t->n++] = ' ';
    t->space = false;
    if (t->n + len < t->cap) {
        memcpy(t->p + t->n, c, len);
        t->n += len;
    }
}

/* Everything but printable UTF-8 out of src, spaces folded; returns the length written. */
static size_t strip(char *dst, size_t cap, const char *src, size_t len)
{
    const unsigned char *p = (const unsigned char *)src;
    size_t n = len < ALERT_MAX_INPUT ? len : ALERT_MAX_INPUT;
    struct text t = {.p = dst, .cap = cap};
    size_t i = 0;

    while (i < n) {
        uint32_t c = 0;
        size_t l = utf8_char(p + i, n - i, &c);
        if (l == 0) {
            i++; /* invalid or cut UTF-8: the byte goes */
            continue;
        }
        i += l;
        if (c == ESC)
            i = skip_escape(p, n, i);
        else if (c >= 0x80 && c <= 0x9f)
            i = skip_c1(c, p, n, i);
        else if (c == ' ' || c == '\t')
            t.space = true;
        else if (!invisible(c))
            put_char(&t, p + i - l, l);
    }
    dst[t.n] = '\0';
    return t.n;
}

/* Where text (len bytes) is cut to fit cap with "...": len when it fits. At a character
 * boundary, without trailing spaces. */
static size_t cut_at(const char *text, size_t len, size_t cap)
{
    size_t keep;

    if (len < cap)
        return len;
    keep = cap - 4; /* "..." and the NUL */
    while (keep > 0 && ((unsigned char)text[keep] & 0xc0) == 0x80)
        keep--;
    while (keep > 0 && text[keep - 1] == ' ')
        keep--;
    return keep;
}

enum alert_clean_result alert_clean(const struct redact_set *rs, char *dst, size_t cap,
                                    const char *src, size_t len)
{
    char clean[ALERT_MAX_INPUT + 1];
    size_t n;
    size_t keep;
    enum alert_clean_result res = ALERT_CLEAN;

    if (cap == 0)
        return ALERT_EMPTY;
    dst[0] = '\0';
    if (cap > ALERT_MAX)
        cap = ALERT_MAX;
    if (cap < 8)
        return ALERT_EMPTY;
    /* A set that could not hold a secret (redact.h) may miss the form this text carries: as in
     * the log, no server text at all. */
    if ((rs != NULL && rs->broken) || holds_secret(rs, src, len))
        return ALERT_SECRET;
    n = strip(clean, sizeof(clean), src, len);
    keep = cut_at(clean, n, cap);
    /* The whole cleaned text (bytes removed from inside a secret), and what is kept (a prefix of
     * one at the cut). */
    if (holds_secret(rs, clean, n) || holds_secret(rs, clean, keep)) {
        res = ALERT_SECRET;
    } else if (n == 0) {
        res = ALERT_EMPTY;
    } else {
        memcpy(dst, clean, keep);
        memcpy(dst + keep, keep < n ? "..." : "", keep < n ? 4 : 1);
        if (holds_secret(rs, dst, strlen(dst))) { /* a password ending in dots, met by "..." */
            secret_wipe(dst, cap);
            dst[0] = '\0';
            res = ALERT_SECRET;
        }
    }
    secret_wipe(clean, sizeof(clean));
    return res;
}
