/* LOGIN (draft-murchison-sasl-login): the server prompts twice, the client answers with the user
 * name, then the password. The prompts' text is not checked (servers word it freely); their
 * number is. */
#include "sasl/mech.h"

#include <string.h>

enum sasl_status sasl_login_step(struct sasl_client *c, const unsigned char *in, size_t in_len)
{
    (void)in;
    (void)in_len;
    if (c->user_len > SASL_USER_MAX || c->password_len > SASL_PASSWORD_MAX)
        return SASL_ECREDS;
    if (c->steps == 0) {
        memcpy(c->out, c->user, c->user_len);
        c->out_len = c->user_len;
        return SASL_SEND;
    }
    if (c->steps == 1) {
        memcpy(c->out, c->password, c->password_len);
        c->out_len = c->password_len;
        c->out_secret = true;
        c->out_last = true;
        return SASL_SEND;
    }
    return SASL_EPROTO; /* a third prompt: nothing is left to give */
}
