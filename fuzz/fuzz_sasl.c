/* The SASL mechanisms (src/sasl/) fed arbitrary server messages, with an independent SCRAM
 * oracle: the fuzzer plays the server and, when the header asks for it, computes the correct
 * server signature itself (from the bytes the client actually sent, with OpenSSL primitives
 * called directly, not through scram.c) and sends it. Properties:
 * - a mechanism whose server must prove itself completes only when the v= it was given equals
 *   the one the oracle computes (so a honest server's proof is accepted, and nothing else is);
 * - the client-final's c= is the GS2 header and, for -PLUS, the channel's binding data under
 *   its RFC 5056 name (tls-exporter or tls-unique), as the oracle encodes it;
 * - no message is longer than SASL_MSG_MAX, a failed run answers nothing more.
 * Input: header byte (bits 0-2 mechanism, bit 3 honest final, bit 4 channel bound, bit 5 near
 * honest final, bit 6 tls-unique rather than tls-exporter), then server messages separated by '\n'.
 * Near honest: the server-final is the oracle's v= cut to the length the fuzzer's message begins
 * with, then the rest of that message (a cut, lengthened or extended signature: what no blind
 * mutation could reach). Completion needs the oracle's whole v= value, followed by nothing or by
 * ",". */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "fuzz.h"
#include "sasl/mech.h"

#define PASSWORD "pencil"

/* The value of attribute a= in a SCRAM message [m, m+n), or NULL. */
static const unsigned char *find_attr(const unsigned char *m, size_t n, char a, size_t *len)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if ((i == 0 || m[i - 1] == ',') && m[i] == (unsigned char)a && m[i + 1] == '=') {
            const unsigned char *end = memchr(m + i + 2, ',', n - i - 2);
            *len = end != NULL ? (size_t)(end - m - i - 2) : n - i - 2;
            return m + i + 2;
        }
    }
    return NULL;
}

/* Whether the client-final's c= is what RFC 5802 section 7 asks for: base64 of the GS2 header
 * ("n": the server offers -PLUS in this harness) and, for -PLUS, the channel's data. */
static bool oracle_c(const struct sasl_client *c, const struct sasl_channel *ch,
                     const unsigned char *final, size_t final_len)
{
    const char *gs2 = !c->mech->channel_binding        ? "n,,"
                      : ch->type == SASL_CB_TLS_UNIQUE ? "p=tls-unique,,"
                                                       : "p=tls-exporter,,";
    unsigned char raw[128];
    unsigned char b64[200];
    size_t rn = strlen(gs2);
    size_t cl = 0;
    const unsigned char *cv = find_attr(final, final_len, 'c', &cl);
    int bn;

    memcpy(raw, gs2, rn);
    if (c->mech->channel_binding) {
        memcpy(raw + rn, ch->data, ch->len);
        rn += ch->len;
    }
    bn = EVP_EncodeBlock(b64, raw, (int)rn);
    return cv != NULL && bn > 0 && cl == (size_t)bn && memcmp(cv, b64, cl) == 0;
}

/* The correct v= for this run, from the client's messages and the server-first we sent. */
static bool oracle_v(const struct sasl_client *c, const unsigned char *first, size_t first_len,
                     const unsigned char *sfirst, size_t sf_len, const unsigned char *final,
                     size_t final_len, char *v, size_t cap)
{
    const EVP_MD *md = c->mech->id == SASL_MECH_SCRAM_SHA_1 ? EVP_sha1() : EVP_sha256();
    int hl = EVP_MD_get_size(md);
    unsigned char salt[SASL_MSG_MAX], sp[64], sk[64], sig[64], am[3 * SASL_MSG_MAX];
    size_t slen, ilen, am_len = 0;
    const unsigned char *s = find_attr(sfirst, sf_len, 's', &slen);
    const unsigned char *it = find_attr(sfirst, sf_len, 'i', &ilen);
    const unsigned char *gs2_end = memmem(first, first_len, ",,n=", 4);
    const unsigned char *bare = gs2_end != NULL ? gs2_end + 2 : NULL; /* after the gs2 header */
    const unsigned char *p = memmem(final, final_len, ",p=", 3);
    unsigned len = 0;
    long sl;
    int iter = 0;

    if (s == NULL || it == NULL || bare == NULL || p == NULL)
        return false;
    for (size_t i = 0; i < ilen && iter < 1000000; i++)
        iter = iter * 10 + (it[i] - '0');
    sl = sasl_b64_decode((const char *)s, slen, salt, sizeof(salt));
    if (sl <= 0)
        return false;
    memcpy(am, bare, first_len - (size_t)(bare - first));
    am_len = first_len - (size_t)(bare - first);
    am[am_len++] = ',';
    memcpy(am + am_len, sfirst, sf_len);
    am_len += sf_len;
    am[am_len++] = ',';
    memcpy(am + am_len, final, (size_t)(p - final));
    am_len += (size_t)(p - final);
    return PKCS5_PBKDF2_HMAC(PASSWORD, 6, salt, (int)sl, iter, md, hl, sp) == 1 &&
           HMAC(md, sp, hl, (const unsigned char *)"Server Key", 10, sk, &len) != NULL &&
           HMAC(md, sk, hl, am, am_len, sig, &len) != NULL &&
           sasl_b64_encode(sig, (size_t)hl, v + 2, cap - 2) > 0 && memcpy(v, "v=", 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct sasl_channel exporter = {SASL_CB_TLS_EXPORTER, 32, {7}};
    static const struct sasl_channel unique = {SASL_CB_TLS_UNIQUE, 12, {9, 8, 7}};
    struct sasl_client c = {.test_nonce = "fyko+d2lbbFgONRv9qkxdawL", .max_iterations = 64};
    unsigned char first[SASL_MSG_MAX], sfirst[SASL_MSG_MAX], final[SASL_MSG_MAX];
    size_t first_len = 0, sf_len = 0, final_len = 0, pos = 1;
    char v[160] = "";
    enum sasl_status st = SASL_SEND;

    if (size < 1)
        return 0;
    const struct sasl_mech *m = &sasl_mechs[(data[0] & 7) % SASL_MECH_COUNT];
    bool honest = data[0] & 8;
    bool near = data[0] & 32;
    unsigned char near_msg[SASL_MSG_MAX];
    const struct sasl_channel *ch = (data[0] & 64) ? &unique : &exporter;
    sasl_client_begin(&c, m, "user", 4, PASSWORD, 6, (data[0] & 16) ? ch : NULL, true);
    if (m->initial_response) {
        st = sasl_client_step(&c, NULL, 0);
        memcpy(first, c.out, c.out_len);
        first_len = c.out_len;
    }
    for (unsigned step = 0; st == SASL_SEND && pos <= size && step < 8; step++) {
        const uint8_t *msg = data + pos;
        const uint8_t *nl = memchr(msg, '\n', size - pos);
        size_t n = nl != NULL ? (size_t)(nl - msg) : size - pos;
        bool server_final = m->server_proves && c.steps == 2;
        pos += n + 1;
        if (server_final && honest && v[0] != '\0') {
            msg = (const uint8_t *)v;
            n = strlen(v);
        } else if (server_final && near && v[0] != '\0' && n > 0) {
            size_t cut = msg[0] % (strlen(v) + 1);
            memcpy(near_msg, v, cut);
            memcpy(near_msg + cut, msg + 1,
                   n - 1 < SASL_MSG_MAX - cut ? n - 1 : SASL_MSG_MAX - cut);
            n = cut + (n - 1 < SASL_MSG_MAX - cut ? n - 1 : SASL_MSG_MAX - cut);
            msg = near_msg;
        }
        if (n > SASL_MSG_MAX)
            n = SASL_MSG_MAX;
        st = sasl_client_step(&c, msg, n);
        if (c.out_len > SASL_MSG_MAX)
            abort();
        if (m->server_proves && c.steps == 2 && st == SASL_SEND) {
            memcpy(sfirst, msg, n);
            sf_len = n;
            memcpy(final, c.out, c.out_len);
            final_len = c.out_len;
            if (!oracle_v(&c, first, first_len, sfirst, sf_len, final, final_len, v, sizeof(v)))
                abort(); /* the client accepted a server-first the oracle cannot use */
            if (!oracle_c(&c, ch, final, final_len))
                abort(); /* the channel binding sent is not this channel's */
        }
        if (server_final) {
            size_t vl = strlen(v);
            bool correct = vl > 0 && n == vl && memcmp(msg, v, n) == 0;
            bool proven =
                vl > 0 && n >= vl && memcmp(msg, v, vl) == 0 && (n == vl || msg[vl] == ',');
            if (st == SASL_DONE && !proven)
                abort(); /* success without the server's valid proof */
            if (correct && st != SASL_DONE)
                abort(); /* a honest server's proof refused */
        }
    }
    if (st != SASL_SEND && st != SASL_DONE && sasl_client_step(&c, NULL, 0) != SASL_EPROTO)
        abort();
    sasl_client_end(&c);
    return 0;
}
