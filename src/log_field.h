/* One value of a key=value log line that a log reader (fail2ban, a grep) can trust: whatever the
 * value holds (a user name or PAM_RHOST chosen by whoever logs in), it stays one field on one
 * line and cannot forge another field or another line. */
#ifndef MAILAUTH_LOG_FIELD_H
#define MAILAUTH_LOG_FIELD_H

#include <stddef.h>

/* Room for any value: the longest bare or quoted form log_field writes, NUL included. */
#define LOG_FIELD_MAX 300

/* Write s (NULL: absent) as a field value into dst (cap bytes, at least 8; always
 * NUL-terminated):
 * - NULL becomes "-";
 * - a non-empty value of printable ASCII without space, '"', '\\' or '=' is written as it is;
 * - anything else is quoted: "..." with \" and \\ escaped and every byte outside printable ASCII
 *   (newlines, controls, UTF-8) written as \xHH. A value that does not fit is cut between two
 * escapes and ends with ..." (the closing quote is always there). So a field written by this
 * function ends at the first space after a bare value, or at the first '"' not preceded by a
 * backslash after a quoted one. */
void log_field(char *dst, size_t cap, const char *s);

#endif
