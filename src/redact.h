/* Server text on its way into a log line or a reason. A server may echo what it received (some
 * do in their refusals; a hostile one will), so everything derived from the password is removed
 * from the raw bytes first, and only then is the text cut to an excerpt and escaped: cutting or
 * escaping first would hide a UTF-8 password behind '?' or leave a prefix of one behind the cut,
 * and the search for the password would then find nothing to remove. */
#ifndef MAILAUTH_REDACT_H
#define MAILAUTH_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"
#include "sasl.h"

#define REDACT_MARK "<redacted>"
/* How much server text a reason quotes: the first REDACT_EXCERPT bytes of the raw text. */
#define REDACT_EXCERPT 120
/* A secret's prefix at the very end of a text (a server that cut its own echo) is removed when
 * it is at least this long; shorter ones are too common by chance to tell apart. */
#define REDACT_MIN_TAIL 3
#define REDACT_MAX_SECRETS 4
#define REDACT_B64_PASSWORD_MAX (4 * ((1024 + 2) / 3) + 1)

struct redact_secret {
    const char *text;
    size_t len;
    bool nocase; /* a hex digest may come back in capitals */
};

/* The secrets of one login: the password, base64 of the password alone, base64 of the SASL
 * PLAIN blob, and the APOP digest once one was computed. Owns copies of the derived forms;
 * redact_wipe() erases them. */
struct redact_set {
    struct redact_secret secrets[REDACT_MAX_SECRETS];
    size_t count;
    char b64_password[REDACT_B64_PASSWORD_MAX];
    char b64_plain[SASL_PLAIN_B64_MAX];
    char apop_hex[33];
};

/* Arm rs with c's password and its base64 forms. c may have no password (nothing is armed). */
void redact_init(struct redact_set *rs, const struct login_creds *c);
/* Add an APOP digest (32 hex digits) to the secrets. */
void redact_add_apop_digest(struct redact_set *rs, const char *hex);
void redact_wipe(struct redact_set *rs);

/* Copy server text src[0, len) into dst (cap bytes, always NUL-terminated) for a log line:
 * 1. every occurrence of a secret of rs (NULL: none) that starts within the first limit bytes
 *    becomes REDACT_MARK, wherever it ends;
 * 2. a prefix (REDACT_MIN_TAIL bytes or more) of a secret that ends the text (a server that cut
 *    its echo) or that would end what is kept (a cut at limit) becomes REDACT_MARK;
 * 3. only the first limit bytes of src are kept, then every byte that is not printable ASCII
 *    becomes '?'.
 * Should the escaped result still hold a secret (bytes that became '?' next to others), the
 * whole excerpt is replaced by REDACT_MARK. Returns true when src was longer than what was
 * kept (the caller may add "..."). */
bool redact_text(const struct redact_set *rs, char *dst, size_t cap, const char *src, size_t len,
                 size_t limit);

/* redact_text with limit REDACT_EXCERPT: the form every reason quotes server text in. */
void redact_excerpt(const struct redact_set *rs, char *dst, size_t cap, const char *src,
                    size_t len);

#endif
