/* CRAM-MD5 (RFC 2195): user SP hex(HMAC-MD5(password, challenge)). The server must store the
 * password (or its HMAC inner and outer states); the wire shows no password, but one capture
 * allows an offline guess. The HMAC is computed in a buffer that is wiped. */
#include "sasl/mech.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

enum sasl_status sasl_cram_md5_step(struct sasl_client *c, const unsigned char *in, size_t in_len)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    enum sasl_status st = SASL_EINTERNAL;

    if (c->steps > 0 || in_len == 0)
        return SASL_EPROTO; /* one challenge, never empty (RFC 2195: a msg-id) */
    if (c->user_len > SASL_USER_MAX || c->password_len > SASL_PASSWORD_MAX)
        return SASL_ECREDS;
    if (HMAC(EVP_md5(), c->password, (int)c->password_len, in, in_len, mac, &mac_len) == NULL ||
        mac_len != 16)
        goto out;
    memcpy(c->out, c->user, c->user_len);
    c->out[c->user_len] = ' ';
    for (unsigned i = 0; i < mac_len; i++) {
        c->out[c->user_len + 1 + 2 * i] = (unsigned char)hex[mac[i] >> 4];
        c->out[c->user_len + 2 + 2 * i] = (unsigned char)hex[mac[i] & 15];
    }
    c->out_len = c->user_len + 1 + 2 * mac_len;
    c->out_secret = true;
    c->out_last = true;
    st = SASL_SEND;
out:
    OPENSSL_cleanse(mac, sizeof(mac));
    return st;
}
