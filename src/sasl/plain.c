/* PLAIN (RFC 4616): "" NUL user NUL password, the empty authorization identity meaning "act as
 * the authenticated user". One message, the password itself. */
#include "sasl/mech.h"

#include <string.h>

enum sasl_status sasl_plain_step(struct sasl_client *c, const unsigned char *in, size_t in_len)
{
    (void)in;
    if (c->steps > 0 || in_len != 0)
        return SASL_EPROTO; /* nothing to answer: the server must give its verdict */
    if (c->user_len > SASL_USER_MAX || c->password_len > SASL_PASSWORD_MAX ||
        memchr(c->user, '\0', c->user_len) != NULL ||
        memchr(c->password, '\0', c->password_len) != NULL)
        return SASL_ECREDS;
    c->out[0] = '\0';
    memcpy(c->out + 1, c->user, c->user_len);
    c->out[1 + c->user_len] = '\0';
    memcpy(c->out + 2 + c->user_len, c->password, c->password_len);
    c->out_len = 2 + c->user_len + c->password_len;
    c->out_secret = true;
    c->out_last = true;
    return SASL_SEND;
}
