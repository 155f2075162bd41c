/* JSON string text for untrusted bytes (server greetings, capability lists, certificate names):
 * the output is always valid JSON whatever the input. */
#ifndef MAILAUTH_JSON_H
#define MAILAUTH_JSON_H

#include <stdio.h>
#include <stddef.h>

/* Write src[0, len) as a JSON string, quotes included, to f. '"' and '\' are escaped; every
 * control byte (below 0x20, and 0x7f) and every character beyond ASCII becomes \uXXXX (a
 * surrogate pair above U+FFFF); a byte that is not part of well-formed UTF-8 (overlong forms,
 * surrogates and values above U+10FFFF included) becomes \ufffd. Nothing from src is ever used
 * as a format. */
void json_write_string(FILE *f, const char *src, size_t len);

#endif
