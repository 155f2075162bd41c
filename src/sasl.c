#include "sasl.h"

#include <string.h>

#include <openssl/evp.h>

size_t sasl_plain_encode(const struct login_creds *c, char *out, size_t cap)
{
    unsigned char raw[1 + 256 + 1 + 1025];
    size_t n = 0;
    size_t need;
    int len;

    if (c->user_len > 256 || c->password_len > 1025)
        return 0;
    raw[n++] = '\0'; /* empty authorization identity: act as the authenticated user */
    memcpy(raw + n, c->user, c->user_len);
    n += c->user_len;
    raw[n++] = '\0';
    memcpy(raw + n, c->password, c->password_len);
    n += c->password_len;
    need = 4 * ((n + 2) / 3) + 1;
    if (need > cap) {
        secret_wipe(raw, sizeof(raw));
        return 0;
    }
    len = EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
    secret_wipe(raw, sizeof(raw));
    return len > 0 ? (size_t)len : 0;
}
