/* SCRAM (RFC 5802, RFC 7677) with channel binding (RFC 5056: tls-exporter RFC 9266 under
 * TLS 1.3, tls-unique RFC 5929 under TLS 1.2; src/tls.h says when a channel can be bound). The
 * client proves it knows the password without sending it, and the server proves (v=) that it knows
 * the verifier stored for this user: SASL_DONE is returned only after that proof was checked, in
 * constant time. With -PLUS both proofs cover the TLS channel, so a relay between two TLS sessions
 * can use neither. Every derived key lives in wiped buffers; a server's iteration count is capped
 * (SASL_SCRAM_MAX_ITERATIONS). */
#include "sasl/mech.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define AUTH_MESSAGE_MAX (3 * SASL_MSG_MAX)

static const EVP_MD *scram_md(const struct sasl_client *c)
{
    return c->mech->id == SASL_MECH_SCRAM_SHA_1 ? EVP_sha1() : EVP_sha256();
}

/* The GS2 header of a -PLUS run, by binding type (the RFC 5056 channel binding names). */
static const char *const cb_header[SASL_CB_COUNT] = {
    [SASL_CB_TLS_EXPORTER] = "p=tls-exporter,,",
    [SASL_CB_TLS_UNIQUE] = "p=tls-unique,,",
};

/* The GS2 header: whether and how the channel is bound; NULL for -PLUS without a channel. "y":
 * this client could bind but the server did not advertise a -PLUS variant (a server that did,
 * seeing "y", knows a downgrade). */
static const char *gs2_header(const struct sasl_client *c)
{
    if (c->mech->channel_binding)
        return (unsigned)c->channel.type < SASL_CB_COUNT ? cb_header[c->channel.type] : NULL;
    return c->channel.type != SASL_CB_NONE && !c->cb_offered ? "y,," : "n,,";
}

static bool append(unsigned char *buf, size_t cap, size_t *len, const void *p, size_t n)
{
    if (n > cap - *len)
        return false;
    memcpy(buf + *len, p, n);
    *len += n;
    return true;
}

/* saslname: SASLprep, then "=" and "," escaped. */
static bool put_saslname(struct sasl_client *c, char *dst, size_t cap, size_t *len)
{
    char prep[SASL_USER_MAX + 1];
    long n = sasl_saslprep(c->user, c->user_len, prep, sizeof(prep));
    bool ok = n > 0;

    for (long i = 0; ok && i < n; i++) {
        const char *e = prep[i] == '=' ? "=3D" : prep[i] == ',' ? "=2C" : NULL;
        ok = append((unsigned char *)dst, cap, len, e != NULL ? e : &prep[i], e != NULL ? 3 : 1);
    }
    OPENSSL_cleanse(prep, sizeof(prep));
    return ok;
}

static enum sasl_status client_first(struct sasl_client *c)
{
    unsigned char raw[SASL_NONCE_BYTES];
    char pw[SASL_PASSWORD_MAX + 1];
    const char *gs2 = gs2_header(c);
    size_t len = 0;
    bool pw_ok = sasl_saslprep(c->password, c->password_len, pw, sizeof(pw)) >= 0;

    OPENSSL_cleanse(pw, sizeof(pw));
    if (gs2 == NULL)
        return SASL_ECREDS; /* the caller offers -PLUS only over a channel it can bind */
    if (!pw_ok || c->password_len > SASL_PASSWORD_MAX)
        return SASL_ECREDS;
    if (c->test_nonce != NULL) {
        snprintf(c->nonce, sizeof(c->nonce), "%s", c->test_nonce);
    } else {
        if (RAND_bytes(raw, sizeof(raw)) != 1)
            return SASL_EINTERNAL;
        sasl_b64_encode(raw, sizeof(raw), c->nonce, sizeof(c->nonce));
    }
    if (!append((unsigned char *)c->first_bare, sizeof(c->first_bare) - 1, &len, "n=", 2) ||
        !put_saslname(c, c->first_bare, sizeof(c->first_bare) - 1, &len) ||
        !append((unsigned char *)c->first_bare, sizeof(c->first_bare) - 1, &len, ",r=", 3) ||
        !append((unsigned char *)c->first_bare, sizeof(c->first_bare) - 1, &len, c->nonce,
                strlen(c->nonce)))
        return SASL_ECREDS;
    c->first_bare_len = len;
    if (!append(c->out, sizeof(c->out), &c->out_len, gs2, strlen(gs2)) ||
        !append(c->out, sizeof(c->out), &c->out_len, c->first_bare, len))
        return SASL_ECREDS;
    return SASL_SEND;
}

/* One "a=value" attribute at *pos of [m, m+n): value must be non-empty and end at "," or the
 * end. Returns false when the next attribute is not name. */
static bool attr(const unsigned char *m, size_t n, size_t *pos, char name, const unsigned char **v,
                 size_t *vlen)
{
    size_t p = *pos;
    size_t start;

    if (n - p < 2 || m[p] != (unsigned char)name || m[p + 1] != '=')
        return false;
    start = p + 2;
    p = start;
    while (p < n && m[p] != ',')
        p++;
    if (p == start)
        return false;
    *v = m + start;
    *vlen = p - start;
    *pos = p < n ? p + 1 : p;
    return p == n || p + 1 < n; /* a trailing "," starts nothing */
}

static bool parse_count(const unsigned char *v, size_t n, unsigned long *out)
{
    unsigned long x = 0;

    if (n == 0 || n > 10 || v[0] == '0')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        x = x * 10 + (unsigned long)(v[i] - '0');
    }
    *out = x;
    return true;
}

/* What the server sent after its mandatory attributes: extensions a=value, each with a letter
 * not already used by the message (a repeated one would be a second, maybe different, value). */
static bool extensions_ok(const unsigned char *m, size_t n, size_t pos, const char *used)
{
    while (pos < n) {
        const unsigned char *v;
        size_t vlen;
        char name = (char)m[pos];
        if (!((name >= 'a' && name <= 'z') || (name >= 'A' && name <= 'Z')) ||
            strchr(used, name) != NULL || !attr(m, n, &pos, name, &v, &vlen))
            return false;
    }
    return true;
}

/* The server's e= value, for the log: printable ASCII only, cut to fit. */
static void copy_error(struct sasl_client *c, const unsigned char *v, size_t n)
{
    size_t i;

    for (i = 0; i < n && i + 1 < sizeof(c->error); i++)
        c->error[i] = v[i] >= 0x20 && v[i] < 0x7f ? (char)v[i] : '?';
    c->error[i] = '\0';
}

static bool printable_nonce(const unsigned char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x21 || v[i] > 0x7e || v[i] == ',')
            return false;
    return true;
}

struct server_first {
    const unsigned char *nonce;
    size_t nonce_len;
    unsigned char salt[SASL_MSG_MAX];
    long salt_len;
    unsigned long iterations;
};

static enum sasl_status parse_server_first(struct sasl_client *c, const unsigned char *in, size_t n,
                                           struct server_first *sf)
{
    const unsigned char *v;
    size_t vlen;
    size_t pos = 0;
    size_t ours = strlen(c->nonce);

    if (attr(in, n, &pos, 'e', &v, &vlen)) {
        copy_error(c, v, vlen);
        return SASL_ESERVER;
    }
    pos = 0;
    /* m= is a mandatory extension this client does not know: it must fail (RFC 5802 5.1). */
    if (!attr(in, n, &pos, 'r', &sf->nonce, &sf->nonce_len) || sf->nonce_len <= ours ||
        memcmp(sf->nonce, c->nonce, ours) != 0 || !printable_nonce(sf->nonce, sf->nonce_len))
        return SASL_EPROTO;
    if (!attr(in, n, &pos, 's', &v, &vlen) ||
        (sf->salt_len = sasl_b64_decode((const char *)v, vlen, sf->salt, sizeof(sf->salt))) <= 0)
        return SASL_EPROTO;
    if (!attr(in, n, &pos, 'i', &v, &vlen) || !parse_count(v, vlen, &sf->iterations) ||
        !extensions_ok(in, n, pos, "rsim"))
        return SASL_EPROTO;
    c->iterations = sf->iterations > 0xffffffffUL ? 0xffffffffU : (unsigned)sf->iterations;
    if (sf->iterations > (c->max_iterations != 0 ? c->max_iterations : SASL_SCRAM_MAX_ITERATIONS))
        return SASL_ELIMIT;
    return SASL_SEND;
}

struct keys {
    unsigned char salted[EVP_MAX_MD_SIZE];
    unsigned char client_key[EVP_MAX_MD_SIZE];
    unsigned char stored_key[EVP_MAX_MD_SIZE];
    unsigned char client_sig[EVP_MAX_MD_SIZE];
    unsigned char proof[EVP_MAX_MD_SIZE];
    char pw[SASL_PASSWORD_MAX + 1];
};

static bool hmac(const EVP_MD *md, const unsigned char *key, size_t klen, const void *data,
                 size_t dlen, unsigned char *out)
{
    unsigned len = 0;

    return HMAC(md, key, (int)klen, data, dlen, out, &len) != NULL &&
           (int)len == EVP_MD_get_size(md);
}

/* SaltedPassword, ClientKey, StoredKey, ServerKey (RFC 5802 section 3). */
static bool derive(struct sasl_client *c, const struct server_first *sf, struct keys *k)
{
    const EVP_MD *md = scram_md(c);
    size_t hl = (size_t)EVP_MD_get_size(md);
    long pl = sasl_saslprep(c->password, c->password_len, k->pw, sizeof(k->pw));
    unsigned dl = 0;

    c->key_len = hl;
    return pl >= 0 &&
           PKCS5_PBKDF2_HMAC(k->pw, (int)pl, sf->salt, (int)sf->salt_len, (int)sf->iterations, md,
                             (int)hl, k->salted) == 1 &&
           hmac(md, k->salted, hl, "Client Key", 10, k->client_key) &&
           EVP_Digest(k->client_key, hl, k->stored_key, &dl, md, NULL) == 1 && dl == hl &&
           hmac(md, k->salted, hl, "Server Key", 10, c->server_key);
}

/* c= value: base64(gs2 header, then the channel's binding data for -PLUS). */
static bool put_channel(const struct sasl_client *c, unsigned char *dst, size_t cap, size_t *len)
{
    unsigned char raw[96];
    size_t rn = 0;
    const char *gs2 = gs2_header(c);
    char b64[160];
    size_t bn;

    if (!append(raw, sizeof(raw), &rn, gs2, strlen(gs2)) ||
        (c->mech->channel_binding &&
         !append(raw, sizeof(raw), &rn, c->channel.data, c->channel.len)))
        return false;
    bn = sasl_b64_encode(raw, rn, b64, sizeof(b64));
    return bn > 0 && append(dst, cap, len, "c=", 2) && append(dst, cap, len, b64, bn);
}

static enum sasl_status client_final(struct sasl_client *c, const unsigned char *in, size_t n)
{
    struct server_first sf;
    struct keys k;
    unsigned char am[AUTH_MESSAGE_MAX];
    size_t am_len = 0;
    size_t hl;
    char b64[2 * EVP_MAX_MD_SIZE];
    enum sasl_status st = parse_server_first(c, in, n, &sf);

    if (st != SASL_SEND)
        return st;
    st = SASL_EINTERNAL;
    /* client-final-message-without-proof, straight into out */
    if (!put_channel(c, c->out, sizeof(c->out), &c->out_len) ||
        !append(c->out, sizeof(c->out), &c->out_len, ",r=", 3) ||
        !append(c->out, sizeof(c->out), &c->out_len, sf.nonce, sf.nonce_len))
        goto out;
    if (!append(am, sizeof(am), &am_len, c->first_bare, c->first_bare_len) ||
        !append(am, sizeof(am), &am_len, ",", 1) || !append(am, sizeof(am), &am_len, in, n) ||
        !append(am, sizeof(am), &am_len, ",", 1) ||
        !append(am, sizeof(am), &am_len, c->out, c->out_len))
        goto out;
    if (!derive(c, &sf, &k)) {
        st = sasl_saslprep(c->password, c->password_len, k.pw, sizeof(k.pw)) < 0 ? SASL_ECREDS
                                                                                 : SASL_EINTERNAL;
        goto out;
    }
    hl = c->key_len;
    if (!hmac(scram_md(c), k.stored_key, hl, am, am_len, k.client_sig) ||
        !hmac(scram_md(c), c->server_key, hl, am, am_len, c->auth_sig_expected))
        goto out;
    for (size_t i = 0; i < hl; i++)
        k.proof[i] = k.client_key[i] ^ k.client_sig[i];
    if (sasl_b64_encode(k.proof, hl, b64, sizeof(b64)) == 0 ||
        !append(c->out, sizeof(c->out), &c->out_len, ",p=", 3) ||
        !append(c->out, sizeof(c->out), &c->out_len, b64, strlen(b64)))
        goto out;
    c->out_secret = true;
    c->out_last = true;
    st = SASL_SEND;
out:
    if (st != SASL_SEND) {
        OPENSSL_cleanse(c->out, sizeof(c->out));
        c->out_len = 0;
    }
    OPENSSL_cleanse(&k, sizeof(k));
    OPENSSL_cleanse(b64, sizeof(b64));
    OPENSSL_cleanse(am, sizeof(am));
    OPENSSL_cleanse(&sf, sizeof(sf));
    OPENSSL_cleanse(c->server_key, sizeof(c->server_key));
    return st;
}

/* server-final-message = (server-error / verifier) ["," extensions] */
static enum sasl_status check_server_final(struct sasl_client *c, const unsigned char *in, size_t n)
{
    const unsigned char *v;
    size_t vlen;
    size_t pos = 0;
    unsigned char sig[SASL_MSG_MAX];
    long sig_len;
    enum sasl_status st = SASL_EPROTO;

    if (attr(in, n, &pos, 'e', &v, &vlen)) {
        copy_error(c, v, vlen);
        return SASL_ESERVER;
    }
    pos = 0;
    if (!attr(in, n, &pos, 'v', &v, &vlen) || !extensions_ok(in, n, pos, "ve"))
        return SASL_EPROTO;
    sig_len = sasl_b64_decode((const char *)v, vlen, sig, sizeof(sig));
    if (sig_len < 0)
        goto out;
    st = SASL_EFORGED;
    if ((size_t)sig_len == c->key_len && CRYPTO_memcmp(sig, c->auth_sig_expected, c->key_len) == 0)
        st = SASL_DONE;
out:
    OPENSSL_cleanse(sig, sizeof(sig));
    OPENSSL_cleanse(c->auth_sig_expected, sizeof(c->auth_sig_expected));
    return st;
}

enum sasl_status sasl_scram_step(struct sasl_client *c, const unsigned char *in, size_t in_len)
{
    switch (c->steps) {
    case 0:
        return in_len == 0 ? client_first(c) : SASL_EPROTO;
    case 1:
        return client_final(c, in, in_len);
    case 2:
        return check_server_final(c, in, in_len);
    }
    return SASL_EPROTO;
}
