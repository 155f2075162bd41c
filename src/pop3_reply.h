/* Reading POP3 replies (RFC 1939, 2449): the status of one line, and the readers a login and the
 * probe both use. POP3 has no unsolicited data: every line after the greeting answers the last
 * command, so a line that began before that command went out is refused, never taken for its
 * answer; multi-line replies are dot-unstuffed. */
#ifndef MAILAUTH_POP3_REPLY_H
#define MAILAUTH_POP3_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"
#include "stream.h"

enum pop3_reply {
    POP3_REPLY_OK,      /* "+OK" alone or followed by a space */
    POP3_REPLY_ERR,     /* "-ERR" alone or followed by a space */
    POP3_REPLY_CONT,    /* "+" alone or "+ ..." (SASL continuation) */
    POP3_REPLY_INVALID, /* anything else, "+OKAY" included */
};

enum pop3_reply pop3_reply_classify(const char *line, size_t len);

/* Read one line of the answer to the command what (a status line or a line of a multi-line
 * body). A line that began before the command went out (stream_line_is_stale) was sent ahead of
 * time, pipelined or injected: PROTO_EPROTO with reason; the dialogue cannot go on. A stream
 * failure as its proto_result. */
enum proto_result pop3_read_answer_line(struct stream *s, const char *what, const char **line,
                                        size_t *len, struct errbuf *reason);

/* Read one status reply to what: PROTO_OK with *kind set. An unrecognised reply is PROTO_EPROTO:
 * only a well-formed +OK may ever count as success. */
enum proto_result pop3_read_reply(struct stream *s, const char *what, enum pop3_reply *kind,
                                  const char **line, size_t *len, struct errbuf *reason);

/* Read the body of a multi-line reply (after its +OK) up to the terminating ".", at most
 * max_lines lines, each dot-unstuffed and handed to line_fn. PROTO_EPROTO when longer. */
enum proto_result pop3_read_body(struct stream *s, const char *what, unsigned max_lines,
                                 void (*line_fn)(void *ctx, const char *line, size_t len),
                                 void *ctx, struct errbuf *reason);

#endif
