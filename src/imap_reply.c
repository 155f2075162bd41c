#include "imap_reply.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

/* What one command may be answered with before its tagged reply. Untagged data is legal at any
 * time, but a login needs none: a server that sends more is stalling or attacking, and without a
 * cap a chain of literals (each announcing the next) would never end. */
#define MAX_UNTAGGED_LINES 1000
#define MAX_LITERALS 16
#define MAX_LITERAL_BYTES (256 * 1024)

/* ---- the parser of one line (unit-tested and fuzzed) ---- */

static enum imap_status status_of(const char *p, size_t n)
{
    if (ascii_word_is(p, n, "OK"))
        return IMAP_ST_OK;
    if (ascii_word_is(p, n, "NO"))
        return IMAP_ST_NO;
    if (ascii_word_is(p, n, "BAD"))
        return IMAP_ST_BAD;
    if (ascii_word_is(p, n, "BYE"))
        return IMAP_ST_BYE;
    if (ascii_word_is(p, n, "PREAUTH"))
        return IMAP_ST_PREAUTH;
    return IMAP_ST_NONE;
}

/* A trailing "{N}" announces N bytes of literal data after this line. Returns false when the
 * count is absurd; *has tells whether there is one. */
static bool find_trailing_literal(const char *line, size_t len, bool *has, size_t *count)
{
    size_t i;
    size_t n = 0;

    *has = false;
    *count = 0;
    if (len < 3 || line[len - 1] != '}')
        return true;
    i = len - 1;
    while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
        i--;
    if (i == 0 || line[i - 1] != '{' || i == len - 1)
        return true; /* "}" without "{digits": just text */
    for (size_t k = i; k < len - 1; k++) {
        n = n * 10 + (size_t)(line[k] - '0');
        if (n > IMAP_MAX_LITERAL)
            return false;
    }
    *has = true;
    *count = n;
    return true;
}

/* After a status word: optional "[code]" then text. */
static bool parse_code_and_text(const char *p, size_t n, struct imap_reply *r)
{
    if (n > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (close == NULL)
            return false;
        r->code = p + 1;
        r->code_len = (size_t)(close - p) - 1;
        n -= (size_t)(close - p) + 1;
        p = close + 1;
        if (n > 0 && p[0] == ' ') {
            p++;
            n--;
        }
    }
    r->data = p;
    r->data_len = n;
    return true;
}

static bool parse_status_line(const char *p, size_t n, struct imap_reply *r)
{
    const char *sp = memchr(p, ' ', n);
    size_t word = sp != NULL ? (size_t)(sp - p) : n;

    r->status = status_of(p, word);
    if (r->status == IMAP_ST_NONE) {
        r->data = p;
        r->data_len = n;
        return true;
    }
    if (sp == NULL) {
        r->data = p + n;
        r->data_len = 0;
        return true;
    }
    return parse_code_and_text(sp + 1, n - word - 1, r);
}

static bool malformed(struct imap_reply *r)
{
    r->kind = IMAP_MALFORMED;
    return false;
}

bool imap_parse_reply(const char *line, size_t len, const char *tag, struct imap_reply *r)
{
    size_t tag_len = strlen(tag);
    const char *sp;

    memset(r, 0, sizeof(*r));
    r->line = line;
    r->line_len = len;
    if (len == 0)
        return malformed(r);
    if (line[0] == '+' && (len == 1 || line[1] == ' ')) {
        r->kind = IMAP_CONTINUATION;
        r->data = len > 2 ? line + 2 : line + len;
        r->data_len = len > 2 ? len - 2 : 0;
        return true;
    }
    if (!find_trailing_literal(line, len, &r->has_literal, &r->literal_len))
        return malformed(r);
    if (len >= 2 && line[0] == '*' && line[1] == ' ') {
        r->kind = IMAP_UNTAGGED;
        if (!parse_status_line(line + 2, len - 2, r))
            return malformed(r);
        return true;
    }
    sp = memchr(line, ' ', len);
    if (sp == NULL || sp == line)
        return malformed(r);
    if ((size_t)(sp - line) != tag_len || memcmp(line, tag, tag_len) != 0) {
        r->kind = IMAP_OTHER_TAG;
        return true;
    }
    r->kind = IMAP_TAGGED;
    if (!parse_status_line(sp + 1, len - tag_len - 1, r))
        return malformed(r);
    if (r->status != IMAP_ST_OK && r->status != IMAP_ST_NO && r->status != IMAP_ST_BAD)
        return malformed(r);
    return true;
}

/* ---- the reader ---- */

/* What untagged data the current command has been answered with so far. */
struct untagged_budget {
    unsigned lines; /* response lines, the parts between literals included */
    unsigned literals;
    size_t literal_bytes;
};

static enum proto_result over_budget(struct errbuf *reason)
{
    errbuf_set(reason,
               "server sent more than %d untagged lines or %d literals (%d bytes) without "
               "answering",
               MAX_UNTAGGED_LINES, MAX_LITERALS, MAX_LITERAL_BYTES);
    return PROTO_EPROTO;
}

/* Skip the literals that follow an untagged line (each continuation line may announce another),
 * within the command's budget. */
static enum stream_result skip_literals(struct stream *s, struct untagged_budget *b, bool more,
                                        size_t count, struct errbuf *reason, bool *over)
{
    while (more) {
        const char *line;
        size_t len;
        enum stream_result sr;

        if (++b->literals > MAX_LITERALS || count > MAX_LITERAL_BYTES - b->literal_bytes ||
            ++b->lines > MAX_UNTAGGED_LINES) {
            *over = true;
            return STREAM_EPROTO;
        }
        b->literal_bytes += count;
        sr = stream_skip(s, count, reason);
        if (sr == STREAM_OK)
            sr = stream_read_line(s, &line, &len, reason);
        if (sr != STREAM_OK)
            return sr;
        /* The response goes on after the literal; only a further literal matters. */
        if (!find_trailing_literal(line, len, &more, &count)) {
            errbuf_set(reason, "literal of more than %d bytes in a reply", IMAP_MAX_LITERAL);
            return STREAM_EPROTO;
        }
    }
    return STREAM_OK;
}

/* A reply that began before its command went out (stream_line_is_stale): the server sent it
 * before it could know the command, so it answers nothing; pipelined, injected or confused,
 * it is never taken as the answer, and the dialogue cannot go on. */
static enum proto_result stale_reply(struct stream *s, const char *what, const char *line,
                                     size_t len, struct errbuf *reason)
{
    char q[160];

    stream_excerpt(s, q, sizeof(q), line, len);
    errbuf_set(reason,
               "server sent \"%s\" before %s went out: not a reply to it (pipelined or injected)",
               q, what);
    return PROTO_EPROTO;
}

static enum proto_result unexpected(struct stream *s, const char *what, const char *line,
                                    size_t len, struct errbuf *reason)
{
    char q[160];

    stream_excerpt(s, q, sizeof(q), line, len);
    errbuf_set(reason, "unexpected reply to %s: \"%s\"", what, q);
    return PROTO_EPROTO;
}

static enum proto_result failed(enum stream_result sr, enum stream_result *failure)
{
    *failure = sr;
    return stream_result_to_proto(sr);
}

enum proto_result imap_read_tagged(struct stream *s, const char *tag, const char *what,
                                   bool want_cont, imap_untagged_fn untagged, void *ctx,
                                   struct imap_reply *r, enum stream_result *failure,
                                   struct errbuf *reason)
{
    struct untagged_budget budget = {0};

    *failure = STREAM_OK;
    while (budget.lines++ < MAX_UNTAGGED_LINES) {
        const char *line;
        size_t len;
        bool over = false;
        enum stream_result sr = stream_read_line(s, &line, &len, reason);

        if (sr != STREAM_OK)
            return failed(sr, failure);
        imap_parse_reply(line, len, tag, r);
        switch (r->kind) {
        case IMAP_UNTAGGED:
            if (untagged != NULL)
                untagged(ctx, r);
            sr = skip_literals(s, &budget, r->has_literal, r->literal_len, reason, &over);
            if (over)
                return over_budget(reason);
            if (sr != STREAM_OK)
                return stream_result_to_proto(sr); /* inside a reply: no close after a BYE */
            continue;
        case IMAP_TAGGED:
            return stream_line_is_stale(s) ? stale_reply(s, what, line, len, reason) : PROTO_OK;
        case IMAP_CONTINUATION:
            if (want_cont)
                return stream_line_is_stale(s) ? stale_reply(s, what, line, len, reason) : PROTO_OK;
            break;
        case IMAP_OTHER_TAG:
        case IMAP_MALFORMED:
            break;
        }
        return unexpected(s, what, line, len, reason);
    }
    return over_budget(reason);
}
