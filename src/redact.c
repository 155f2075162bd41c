/* Redaction of server text: secrets out of the raw bytes first, then cut, then escape. */
#include "redact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

bool redact_add(struct redact_set *rs, const char *text, size_t len, bool nocase)
{
    char *copy;

    if (len == 0)
        return true;
    for (size_t k = 0; k < rs->count; k++) {
        if (rs->secrets[k].len == len && rs->secrets[k].nocase == nocase &&
            memcmp(rs->secrets[k].text, text, len) == 0)
            return true;
    }
    if (rs->count == rs->cap) {
        size_t cap = rs->cap == 0 ? 8 : 2 * rs->cap;
        struct redact_secret *grown = calloc(cap, sizeof(*grown));
        if (grown == NULL) {
            rs->broken = true;
            return false;
        }
        if (rs->count > 0)
            memcpy(grown, rs->secrets, rs->count * sizeof(*grown));
        secret_wipe(rs->secrets, rs->cap * sizeof(*rs->secrets));
        free(rs->secrets);
        rs->secrets = grown;
        rs->cap = cap;
    }
    copy = malloc(len);
    if (copy == NULL) {
        rs->broken = true;
        return false;
    }
    memcpy(copy, text, len);
    rs->secrets[rs->count++] = (struct redact_secret){copy, len, nocase};
    return true;
}

/* Base64 without its '=' padding: a server may echo it either way, and the unpadded form is a
 * prefix of the padded one, so matching it covers both. */
static size_t unpadded(const char *b64, size_t n)
{
    while (n > 0 && b64[n - 1] == '=')
        n--;
    return n;
}

/* The password with '"' and '\\' escaped, as inside an IMAP quoted string: known before anything
 * is sent, so a server that echoes it early is covered too. */
static void add_escaped(struct redact_set *rs, const char *pw, size_t n)
{
    char esc[2 * 1024];
    size_t o = 0;

    if (memchr(pw, '"', n) == NULL && memchr(pw, '\\', n) == NULL)
        return;
    if (n > sizeof(esc) / 2) {
        rs->broken = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (pw[i] == '"' || pw[i] == '\\')
            esc[o++] = '\\';
        esc[o++] = pw[i];
    }
    redact_add(rs, esc, o, false);
    secret_wipe(esc, sizeof(esc));
}

void redact_init(struct redact_set *rs, const struct login_creds *c)
{
    char b64[4 * ((1024 + 2) / 3) + 1];
    char plain[SASL_PLAIN_B64_MAX];

    memset(rs, 0, sizeof(*rs));
    if (c == NULL || c->password == NULL || c->password_len == 0)
        return;
    redact_add(rs, c->password, c->password_len, false);
    add_escaped(rs, c->password, c->password_len);
    if (c->password_len <= (sizeof(b64) - 1) / 4 * 3) {
        int n = EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)c->password,
                                (int)c->password_len);
        if (n > 0)
            redact_add(rs, b64, unpadded(b64, (size_t)n), false);
    } else {
        rs->broken = true; /* longer than the policy allows: not expected, not risked */
    }
    if (c->user != NULL) {
        size_t n = sasl_plain_encode(c, plain, sizeof(plain));
        redact_add(rs, plain, unpadded(plain, n), false);
    }
    secret_wipe(b64, sizeof(b64));
    secret_wipe(plain, sizeof(plain));
}

/* One piece of a credential line, with the inside of a quoted string. */
static bool add_piece(struct redact_set *rs, const char *p, size_t n)
{
    bool ok = redact_add(rs, p, n, false);

    if (n > 2 && p[0] == '"' && p[n - 1] == '"')
        ok = redact_add(rs, p + 1, n - 2, false) && ok;
    return ok;
}

bool redact_add_wire(struct redact_set *rs, const char *wire, size_t len)
{
    bool ok = true;
    size_t start = 0;

    for (size_t i = 0; i + 1 < len; i++) {
        if (wire[i] == '\r' && wire[i + 1] == '\n') {
            ok = add_piece(rs, wire + start, i - start) && ok;
            start = i + 2;
            i++;
        }
    }
    return add_piece(rs, wire + start, len - start) && ok;
}

void redact_add_apop_digest(struct redact_set *rs, const char *hex)
{
    redact_add(rs, hex, strlen(hex), true);
}

void redact_wipe(struct redact_set *rs)
{
    for (size_t k = 0; k < rs->count; k++) {
        secret_wipe(rs->secrets[k].text, rs->secrets[k].len);
        free(rs->secrets[k].text);
    }
    if (rs->secrets != NULL)
        secret_wipe(rs->secrets, rs->cap * sizeof(*rs->secrets));
    free(rs->secrets);
    memset(rs, 0, sizeof(*rs));
}

static bool same(const char *a, const char *b, size_t n, bool nocase)
{
    return nocase ? ascii_same_nocase(a, b, n) : memcmp(a, b, n) == 0;
}

/* Length of the longest secret that starts at p (left bytes available), or 0. */
static size_t secret_at(const struct redact_set *rs, const char *p, size_t left)
{
    size_t best = 0;

    for (size_t k = 0; k < rs->count; k++) {
        const struct redact_secret *s = &rs->secrets[k];
        if (s->len <= left && s->len > best && same(p, s->text, s->len, s->nocase))
            best = s->len;
    }
    return best;
}

/* Where the longest proper prefix (REDACT_MIN_TAIL bytes or more) of a secret that ends at
 * src[end] and starts before limit begins; none when there is none. */
static size_t prefix_ending_at(const struct redact_set *rs, const char *src, size_t end,
                               size_t limit, size_t none)
{
    size_t best = none;

    for (size_t k = 0; k < rs->count; k++) {
        const struct redact_secret *s = &rs->secrets[k];
        size_t longest = s->len - 1 < end ? s->len - 1 : end;
        size_t shortest = REDACT_MIN_TAIL;
        /* It must start before limit (else it is cut anyway) and before the best so far. */
        if (end >= limit && end - limit + 1 > shortest)
            shortest = end - limit + 1;
        if (best < end && end - best + 1 > shortest)
            shortest = end - best + 1;
        for (size_t l = longest; l >= shortest; l--) {
            if (same(src + end - l, s->text, l, s->nocase)) {
                best = end - l;
                break;
            }
        }
    }
    return best;
}

/* Where a prefix of a secret would end what is kept, or len: one that ends the text (the
 * server cut its own echo) or one that ends at the cut (whatever the server sent after it). */
static size_t tail_start(const struct redact_set *rs, const char *src, size_t len, size_t limit)
{
    size_t at_end = prefix_ending_at(rs, src, len, limit, len);
    size_t at_cut = len > limit ? prefix_ending_at(rs, src, limit, limit + 1, len) : len;

    return at_end < at_cut ? at_end : at_cut;
}

/* Whether the REDACT_MIN_PIECE bytes at p are a piece of a secret (left bytes available). */
static bool piece_at(const struct redact_set *rs, const char *p, size_t left)
{
    if (left < REDACT_MIN_PIECE)
        return false;
    for (size_t k = 0; k < rs->count; k++) {
        const struct redact_secret *s = &rs->secrets[k];
        for (size_t j = 0; j + REDACT_MIN_PIECE <= s->len; j++) {
            if (same(p, s->text + j, REDACT_MIN_PIECE, s->nocase))
                return true;
        }
    }
    return false;
}

/* Length of the longest proper suffix (REDACT_MIN_TAIL bytes or more) of a secret that starts
 * the text, or 0. */
static size_t suffix_at_start(const struct redact_set *rs, const char *src, size_t len)
{
    size_t best = 0;

    for (size_t k = 0; k < rs->count; k++) {
        const struct redact_secret *s = &rs->secrets[k];
        for (size_t l = s->len - 1; l >= REDACT_MIN_TAIL && l > best && s->len > 0; l--) {
            if (l <= len && same(src, s->text + s->len - l, l, s->nocase)) {
                best = l;
                break;
            }
        }
    }
    return best;
}

struct out {
    char *p;
    size_t cap;
    size_t n;
    bool full; /* something did not fit: write nothing more */
};

static void put_byte(struct out *o, unsigned char c)
{
    if (o->full || o->n + 1 >= o->cap) {
        o->full = true;
        return;
    }
    o->p[o->n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
}

static void put_mark(struct out *o)
{
    size_t m = sizeof(REDACT_MARK) - 1;

    if (o->full || o->n + m + 1 > o->cap) {
        o->full = true;
        return;
    }
    memcpy(o->p + o->n, REDACT_MARK, m);
    o->n += m;
}

/* True when text[0, n) still holds a secret (escaping can make one: a '?' in the password). */
static bool holds_secret(const struct redact_set *rs, const char *text, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (secret_at(rs, text + i, n - i) > 0)
            return true;
    }
    return false;
}

/* Mark in covered[0, stop) every byte that belongs to something of rs: a whole secret starting
 * there, a piece of one (REDACT_MIN_PIECE bytes), or a suffix of one that starts the text. A
 * secret that starts before stop is covered up to stop, wherever it ends. Each position is
 * checked once: the cost is bounded by the text's length times the secrets' total length,
 * whatever a server sends. */
static void cover_secrets(const struct redact_set *rs, const char *src, size_t len, size_t stop,
                          bool *covered)
{
    size_t suffix = suffix_at_start(rs, src, len);

    for (size_t i = 0; i < stop; i++) {
        size_t n = secret_at(rs, src + i, len - i);
        if (n == 0 && piece_at(rs, src + i, len - i))
            n = REDACT_MIN_PIECE;
        if (i == 0 && suffix > n)
            n = suffix;
        for (size_t j = i; j < i + n && j < stop; j++)
            covered[j] = true;
    }
}

bool redact_text(const struct redact_set *rs, char *dst, size_t cap, const char *src, size_t len,
                 size_t limit)
{
    struct out o = {.p = dst, .cap = cap};
    bool covered[REDACT_MAX_KEEP] = {false};
    size_t tail, stop;

    if (limit > REDACT_MAX_KEEP)
        limit = REDACT_MAX_KEEP;
    tail = rs != NULL ? tail_start(rs, src, len, limit) : len;
    stop = len < limit ? len : limit;
    if (cap == 0)
        return len > limit;
    if (rs != NULL && rs->broken) {
        snprintf(dst, cap, "%s", REDACT_MARK);
        return len > limit;
    }
    if (tail < stop)
        stop = tail;
    if (rs != NULL)
        cover_secrets(rs, src, len, stop, covered);
    for (size_t i = 0; i < stop && !o.full; i++) {
        if (!covered[i])
            put_byte(&o, (unsigned char)src[i]);
        else if (i == 0 || !covered[i - 1])
            put_mark(&o); /* one mark for each run of covered bytes */
    }
    if (tail < len && (stop == 0 || !covered[stop - 1]))
        put_mark(&o);
    dst[o.n] = '\0';
    if (rs != NULL && holds_secret(rs, dst, o.n)) {
        secret_wipe(dst, cap);
        if (cap > sizeof(REDACT_MARK) - 1)
            memcpy(dst, REDACT_MARK, sizeof(REDACT_MARK));
    }
    return len > limit;
}

void redact_excerpt(const struct redact_set *rs, char *dst, size_t cap, const char *src, size_t len)
{
    redact_text(rs, dst, cap, src, len, REDACT_EXCERPT);
}
