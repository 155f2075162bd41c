/* The one table of SASL mechanisms and the run around each step. */
#include "sasl/mech.h"

#include <string.h>

#include <openssl/crypto.h>

#include "util.h"

/* Strongest first. */
const struct sasl_mech sasl_mechs[SASL_MECH_COUNT] = {
    {SASL_MECH_SCRAM_SHA_256_PLUS, "SCRAM-SHA-256-PLUS", "scram-sha-256-plus", true, false, true,
     true, true, sasl_scram_step},
    {SASL_MECH_SCRAM_SHA_256, "SCRAM-SHA-256", "scram-sha-256", true, false, true, true, false,
     sasl_scram_step},
    {SASL_MECH_SCRAM_SHA_1, "SCRAM-SHA-1", "scram-sha-1", true, false, true, true, false,
     sasl_scram_step},
    {SASL_MECH_CRAM_MD5, "CRAM-MD5", "cram-md5", true, false, false, false, false,
     sasl_cram_md5_step},
    {SASL_MECH_PLAIN, "PLAIN", "plain", true, true, false, true, false, sasl_plain_step},
    {SASL_MECH_LOGIN, "LOGIN", "login", true, true, false, false, false, sasl_login_step},
};

const struct sasl_mech *sasl_mech_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < SASL_MECH_COUNT; i++) {
        const struct sasl_mech *m = &sasl_mechs[i];
        /* Never the locale's rules: su runs PAM in its caller's (util.h). */
        if (ascii_word_is(name, len, m->name))
            return m;
    }
    return NULL;
}

void sasl_client_begin(struct sasl_client *c, const struct sasl_mech *m, const char *user,
                       size_t user_len, const char *password, size_t password_len,
                       const struct sasl_channel *channel, bool cb_offered)
{
    const char *test_nonce = c->test_nonce;
    unsigned max_iterations = c->max_iterations;

    OPENSSL_cleanse(c, sizeof(*c));
    c->mech = m;
    c->user = user;
    c->user_len = user_len;
    c->password = password;
    c->password_len = password_len;
    if (channel != NULL)
        c->channel = *channel;
    c->cb_offered = cb_offered;
    c->test_nonce = test_nonce;
    c->max_iterations = max_iterations;
}

enum sasl_status sasl_client_step(struct sasl_client *c, const unsigned char *in, size_t in_len)
{
    enum sasl_status st;

    OPENSSL_cleanse(c->out, c->out_len);
    c->out_len = 0;
    c->out_secret = false;
    c->out_last = false;
    if (c->mech == NULL || c->done || in_len > SASL_MSG_MAX)
        return SASL_EPROTO;
    st = c->mech->step(c, in, in_len);
    c->steps++;
    if (st == SASL_DONE)
        c->done = true;
    else if (st != SASL_SEND)
        c->mech = NULL; /* an error ends the run: a further step is a protocol error */
    return st;
}

void sasl_client_end(struct sasl_client *c)
{
    OPENSSL_cleanse(c, sizeof(*c));
}

const char *sasl_status_name(enum sasl_status s)
{
    switch (s) {
    case SASL_SEND:
        return "continues";
    case SASL_DONE:
        return "completed";
    case SASL_EPROTO:
        return "malformed server message";
    case SASL_ESERVER:
        return "server reported an error";
    case SASL_EFORGED:
        return "server signature wrong";
    case SASL_ECREDS:
        return "credentials not usable with this mechanism";
    case SASL_ELIMIT:
        return "iteration count over the limit";
    case SASL_EINTERNAL:
        return "internal error";
    }
    return "?";
}
