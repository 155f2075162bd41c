/* Strict base64 for SASL messages: what a server sends is decoded only when it is exactly what
 * RFC 4648 allows (OpenSSL's EVP_DecodeBlock skips whitespace and hides padding). */
#include "sasl/mech.h"

#include <string.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t sasl_b64_encode(const unsigned char *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    if (n > (SIZE_MAX - 1) / 4 * 3 - 3 || 4 * ((n + 2) / 3) + 1 > cap)
        return 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        size_t k = n - i;
        if (k > 1)
            v |= (unsigned)in[i + 1] << 8;
        if (k > 2)
            v |= in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = k > 1 ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = k > 2 ? alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

static int value_of(char ch)
{
    const char *p = ch != '\0' ? memchr(alphabet, ch, sizeof(alphabet) - 1) : NULL;

    return p != NULL ? (int)(p - alphabet) : -1;
}

long sasl_b64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    size_t o = 0;

    if (n % 4 != 0 || n / 4 * 3 > cap + 2)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        bool last = i + 4 == n;
        size_t pad = 0;
        for (size_t k = 0; k < 4; k++) {
            v[k] = value_of(in[i + k]);
            if (v[k] < 0 && !(last && k >= 2 && in[i + k] == '=' && (k == 3 || in[i + 3] == '=')))
                return -1;
            if (v[k] < 0) {
                v[k] = 0;
                pad++;
            }
        }
        unsigned w =
            (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
        /* Bits a padded group leaves over must be zero: one encoding per message. */
        if ((pad == 1 && (w & 0xff) != 0) || (pad == 2 && (w & 0xffff) != 0))
            return -1;
        if (o + 3 - pad > cap)
            return -1;
        out[o++] = (unsigned char)(w >> 16);
        if (pad < 2)
            out[o++] = (unsigned char)(w >> 8);
        if (pad < 1)
            out[o++] = (unsigned char)w;
    }
    return (long)o;
}
