#include "pop3_reply.h"

#include <stdio.h>
#include <string.h>

/* ---- the status of one line (unit-tested and fuzzed) ---- */

enum pop3_reply pop3_reply_classify(const char *line, size_t len)
{
    if (len >= 3 && memcmp(line, "+OK", 3) == 0 && (len == 3 || line[3] == ' '))
        return POP3_REPLY_OK;
    if (len >= 4 && memcmp(line, "-ERR", 4) == 0 && (len == 4 || line[4] == ' '))
        return POP3_REPLY_ERR;
    if (len >= 1 && line[0] == '+' && (len == 1 || line[1] == ' '))
        return POP3_REPLY_CONT;
    return POP3_REPLY_INVALID;
}

/* ---- the readers ---- */

enum proto_result pop3_read_answer_line(struct stream *s, const char *what, const char **line,
                                        size_t *len, struct errbuf *reason)
{
    enum stream_result r = stream_read_line(s, line, len, reason);
    char q[160];

    if (r != STREAM_OK)
        return stream_result_to_proto(r);
    if (!stream_line_is_stale(s))
        return PROTO_OK;
    stream_excerpt(s, q, sizeof(q), *line, *len);
    errbuf_set(reason,
               "server sent \"%s\" before %s went out: not a reply to it (pipelined or injected)",
               q, what);
    return PROTO_EPROTO;
}

enum proto_result pop3_read_reply(struct stream *s, const char *what, enum pop3_reply *kind,
                                  const char **line, size_t *len, struct errbuf *reason)
{
    enum proto_result r = pop3_read_answer_line(s, what, line, len, reason);
    char q[160];

    if (r != PROTO_OK)
        return r;
    *kind = pop3_reply_classify(*line, *len);
    if (*kind == POP3_REPLY_INVALID) {
        stream_excerpt(s, q, sizeof(q), *line, *len);
        errbuf_set(reason, "unexpected reply to %s: \"%s\"", what, q);
        return PROTO_EPROTO;
    }
    return PROTO_OK;
}

enum proto_result pop3_read_body(struct stream *s, const char *what, unsigned max_lines,
                                 void (*line_fn)(void *ctx, const char *line, size_t len),
                                 void *ctx, struct errbuf *reason)
{
    for (unsigned i = 0; i < max_lines; i++) {
        const char *line;
        size_t len;
        enum proto_result r = pop3_read_answer_line(s, what, &line, &len, reason);

        if (r != PROTO_OK)
            return r;
        if (len == 1 && line[0] == '.')
            return PROTO_OK;
        if (len > 0 && line[0] == '.') { /* dot-stuffed (RFC 1939 3) */
            line++;
            len--;
        }
        line_fn(ctx, line, len);
    }
    errbuf_set(reason, "%s reply longer than %u lines", what, max_lines);
    return PROTO_EPROTO;
}
