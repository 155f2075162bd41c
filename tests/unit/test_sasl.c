/* The SASL mechanisms (src/sasl/): RFC test vectors, SASLprep, strict base64, and every way a
 * SCRAM server can fail to prove itself. */
#include <string.h>

#include "check.h"
#include "proto.h"
#include "sasl/mech.h"

#define S(x) (const unsigned char *)(x), strlen(x)

static const struct sasl_mech *mech(const char *name)
{
    return sasl_mech_by_name(name, strlen(name));
}

static bool out_is(const struct sasl_client *c, const char *want)
{
    return c->out_len == strlen(want) && memcmp(c->out, want, c->out_len) == 0;
}

static void test_table(void)
{
    CHECK(mech("scram-sha-256-plus") != NULL && mech("SCRAM-SHA-256-PLUS")->channel_binding);
    CHECK(mech("SCRAM-SHA-1")->server_proves && !mech("PLAIN")->server_proves);
    CHECK(mech("CRAM-MD5") != NULL && !mech("CRAM-MD5")->reveals_password);
    CHECK(mech("PLAIN")->reveals_password && mech("LOGIN")->reveals_password);
    CHECK(sasl_mech_by_name("PLAINX", 6) == NULL && sasl_mech_by_name("PLAIN", 4) == NULL);
    for (size_t i = 0; i < SASL_MECH_COUNT; i++) {
        CHECK(sasl_mechs[i].password_derived);
        CHECK(mech(sasl_mechs[i].config) == &sasl_mechs[i]);
    }
}

static void test_b64(void)
{
    unsigned char out[16];
    char enc[16];

    CHECK(sasl_b64_decode("Zm9vYg==", 8, out, sizeof(out)) == 4 && memcmp(out, "foob", 4) == 0);
    CHECK(sasl_b64_decode("Zm9vYmE=", 8, out, sizeof(out)) == 5);
    CHECK(sasl_b64_decode("", 0, out, sizeof(out)) == 0);
    CHECK(sasl_b64_decode("Zm9vYg=", 7, out, sizeof(out)) == -1);  /* length */
    CHECK(sasl_b64_decode("Zm9v Yg=", 8, out, sizeof(out)) == -1); /* whitespace */
    CHECK(sasl_b64_decode("Zm9vYh==", 8, out, sizeof(out)) == -1); /* non-zero pad bits */
    CHECK(sasl_b64_decode("Zg==Zg==", 8, out, sizeof(out)) == -1); /* padding in the middle */
    CHECK(sasl_b64_decode("Z===", 4, out, sizeof(out)) == -1);
    CHECK(sasl_b64_decode("Zm9vYmFy", 8, out, 5) == -1); /* does not fit */
    CHECK(sasl_b64_encode((const unsigned char *)"foob", 4, enc, sizeof(enc)) == 8);
    CHECK_STR(enc, "Zm9vYg==");
    CHECK(sasl_b64_encode((const unsigned char *)"foob", 4, enc, 8) == 0);
}

static void test_saslprep(void)
{
    char out[32];

    CHECK(sasl_saslprep("pencil", 6, out, sizeof(out)) == 6);
    CHECK_STR(out, "pencil");
    CHECK(sasl_saslprep("a b=c,d", 7, out, sizeof(out)) == 7);
    CHECK(sasl_saslprep("a\x07z", 3, out, sizeof(out)) == -1); /* RFC 4013 example: prohibited */
    CHECK(sasl_saslprep("a\x7fz", 3, out, sizeof(out)) == -1);
    CHECK(sasl_saslprep("\xc2\xaa", 2, out, sizeof(out)) == -1); /* non-ASCII: not guessed at */
    CHECK(sasl_saslprep("0123456789", 10, out, 10) == -1);
}

static void test_plain_login(void)
{
    struct sasl_client c = {0};

    sasl_client_begin(&c, mech("PLAIN"), "tim", 3, "tanstaaf", 8, NULL, false);
    CHECK(sasl_client_step(&c, NULL, 0) == SASL_SEND && c.out_secret && c.out_last);
    CHECK(c.out_len == 13 && memcmp(c.out, "\0tim\0tanstaaf", 13) == 0);
    CHECK(sasl_client_step(&c, S("more?")) == SASL_EPROTO);
    sasl_client_begin(&c, mech("PLAIN"), "t\0m", 3, "x", 1, NULL, false);
    CHECK(sasl_client_step(&c, NULL, 0) == SASL_ECREDS);

    sasl_client_begin(&c, mech("LOGIN"), "tim", 3, "tanstaaf", 8, NULL, false);
    CHECK(sasl_client_step(&c, S("Username:")) == SASL_SEND && out_is(&c, "tim") && !c.out_secret);
    CHECK(sasl_client_step(&c, S("Password:")) == SASL_SEND && out_is(&c, "tanstaaf") &&
          c.out_secret && c.out_last);
    CHECK(sasl_client_step(&c, S("Again:")) == SASL_EPROTO);
    sasl_client_end(&c);
}

static void test_cram_md5(void)
{
    struct sasl_client c = {0};

    /* RFC 2195 section 2 */
    sasl_client_begin(&c, mech("CRAM-MD5"), "tim", 3, "tanstaaftanstaaf", 16, NULL, false);
    CHECK(sasl_client_step(&c, S("<1896.697170952@postoffice.reston.mci.net>")) == SASL_SEND);
    CHECK(out_is(&c, "tim b913a602c7eda7a495b4e6e7334d3890") && c.out_secret && c.out_last);
    sasl_client_begin(&c, mech("CRAM-MD5"), "tim", 3, "x", 1, NULL, false);
    CHECK(sasl_client_step(&c, NULL, 0) == SASL_EPROTO); /* no challenge */
    sasl_client_end(&c);
}

struct vector {
    const char *mech, *nonce, *first, *server_first, *final, *server_final;
};

/* RFC 5802 section 5 and RFC 7677 section 3: user "user", password "pencil". */
static const struct vector rfc5802 = {
    "SCRAM-SHA-1",
    "fyko+d2lbbFgONRv9qkxdawL",
    "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
};
static const struct vector rfc7677 = {
    "SCRAM-SHA-256",
    "rOprNGfwEbeRWgbNEkqO",
    "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

/* Run a vector up to the server-final message, which the caller varies. */
static void scram_to_final(struct sasl_client *c, const struct vector *v)
{
    *c = (struct sasl_client){.test_nonce = v->nonce};
    sasl_client_begin(c, mech(v->mech), "user", 4, "pencil", 6, NULL, false);
    CHECK(sasl_client_step(c, NULL, 0) == SASL_SEND && out_is(c, v->first) && !c->out_secret);
    CHECK(sasl_client_step(c, S(v->server_first)) == SASL_SEND && out_is(c, v->final));
    CHECK(c->out_secret && c->out_last && c->iterations == 4096);
}

static enum sasl_status scram_final(const struct vector *v, const char *server_final)
{
    struct sasl_client c;
    enum sasl_status st;

    scram_to_final(&c, v);
    st = sasl_client_step(&c, S(server_final));
    sasl_client_end(&c);
    return st;
}

static void test_scram_vectors(void)
{
    CHECK(scram_final(&rfc5802, rfc5802.server_final) == SASL_DONE);
    CHECK(scram_final(&rfc7677, rfc7677.server_final) == SASL_DONE);
    CHECK(scram_final(&rfc7677, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=ext") ==
          SASL_DONE);
}

static void test_scram_server_proof(void)
{
    /* wrong v= (one bit), v= of the SHA-1 exchange, missing, duplicated, empty, e= */
    CHECK(scram_final(&rfc7677, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G8=") == SASL_EFORGED);
    CHECK(scram_final(&rfc7677, rfc5802.server_final) == SASL_EFORGED);
    CHECK(scram_final(&rfc7677, "") == SASL_EPROTO);
    CHECK(scram_final(&rfc7677, "x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=") == SASL_EPROTO);
    CHECK(scram_final(&rfc7677, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,v=AAAA") ==
          SASL_EPROTO);
    CHECK(scram_final(&rfc7677, "v=AAAA,v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=") ==
          SASL_EPROTO);
    CHECK(scram_final(&rfc7677, "v=") == SASL_EPROTO);
    CHECK(scram_final(&rfc7677, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,") == SASL_EPROTO);
    CHECK(scram_final(&rfc7677, "v=not base64") == SASL_EPROTO);
    CHECK(scram_final(&rfc7677, "e=invalid-proof") == SASL_ESERVER);
    /* The right signature cut short (3 and 31 bytes) or with a byte more: the length is part of
     * the check (a comparison over the server's length alone would take a one-byte guess). */
    CHECK(scram_final(&rfc7677, "v=6rri") == SASL_EFORGED);
    CHECK(scram_final(&rfc7677, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95A==") == SASL_EFORGED);
    CHECK(scram_final(&rfc7677, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4A") == SASL_EFORGED);

    struct sasl_client c;
    scram_to_final(&c, &rfc7677);
    CHECK(sasl_client_step(&c, S(rfc7677.server_final)) == SASL_DONE && c.done);
    CHECK(sasl_client_step(&c, S(rfc7677.server_final)) == SASL_EPROTO); /* no fourth step */
    sasl_client_end(&c);
}

static enum sasl_status scram_first(const char *server_first)
{
    struct sasl_client c = {.test_nonce = rfc7677.nonce};
    enum sasl_status st;

    sasl_client_begin(&c, mech("SCRAM-SHA-256"), "user", 4, "pencil", 6, NULL, false);
    sasl_client_step(&c, NULL, 0);
    st = sasl_client_step(&c, S(server_first));
    if (st != SASL_SEND)
        CHECK(c.out_len == 0); /* nothing to send after a failure */
    sasl_client_end(&c);
    return st;
}

static void test_scram_server_first(void)
{
    CHECK(scram_first("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") == SASL_SEND);
    /* nonce that does not extend ours, or only repeats it */
    CHECK(scram_first("r=XOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") == SASL_EPROTO);
    CHECK(scram_first("r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") == SASL_EPROTO);
    CHECK(scram_first("r=rOprNG,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") == SASL_EPROTO);
    /* iteration count: over the cap, zero, leading zero, not a number, huge */
    CHECK(scram_first("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=100001") ==
          SASL_ELIMIT);
    CHECK(scram_first("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0") == SASL_EPROTO);
    CHECK(scram_first("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=04096") == SASL_EPROTO);
    CHECK(scram_first("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1") == SASL_EPROTO);
    CHECK(scram_first("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999") ==
          SASL_EPROTO);
    /* malformed: order, missing salt, bad salt, mandatory extension, repeated attribute */
    CHECK(scram_first("s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqOx,i=4096") == SASL_EPROTO);
    CHECK(scram_first("r=rOprNGfwEbeRWgbNEkqOx,i=4096") == SASL_EPROTO);
    CHECK(scram_first("r=rOprNGfwEbeRWgbNEkqOx,s=,i=4096") == SASL_EPROTO);
    CHECK(scram_first("r=rOprNGfwEbeRWgbNEkqOx,s=W22Za,i=4096") == SASL_EPROTO);
    CHECK(scram_first("m=x,r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") ==
          SASL_EPROTO);
    CHECK(scram_first("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,i=1") ==
          SASL_EPROTO);
    CHECK(scram_first("r=rOprNGfwEbeRWgbNEkqOx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,") == SASL_EPROTO);
    CHECK(scram_first("r=rOprNGfwEbeRWgbNEkqO\x01x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") ==
          SASL_EPROTO);
    CHECK(scram_first("") == SASL_EPROTO);
    CHECK(scram_first("e=unknown-user") == SASL_ESERVER);
}

/* The channel: gs2 header and c= for both binding types (tls-exporter, tls-unique), "y" when the
 * server offers no -PLUS. */
static void test_scram_channel(void)
{
    struct sasl_channel ch = {SASL_CB_TLS_EXPORTER, 4, {1, 2, 3, 4}};
    struct sasl_client c = {.test_nonce = "abc"};
    const char *sf = "r=abcdef,s=QSXCR+Q6sek8bf92,i=1";

    sasl_client_begin(&c, mech("SCRAM-SHA-256-PLUS"), "u=,v", 4, "p", 1, &ch, true);
    CHECK(sasl_client_step(&c, NULL, 0) == SASL_SEND &&
          out_is(&c, "p=tls-exporter,,n=u=3D=2Cv,r=abc"));
    CHECK(sasl_client_step(&c, S(sf)) == SASL_SEND);
    /* base64("p=tls-exporter,," 01 02 03 04) */
    CHECK(c.out_len > 34 && memcmp(c.out, "c=cD10bHMtZXhwb3J0ZXIsLAECAwQ=,r=abcdef,p=", 42) == 0);

    /* TLS 1.2: tls-unique, the 12 bytes of the first Finished message */
    ch = (struct sasl_channel){SASL_CB_TLS_UNIQUE, 12, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}};
    c = (struct sasl_client){.test_nonce = "abc"};
    sasl_client_begin(&c, mech("SCRAM-SHA-256-PLUS"), "u", 1, "p", 1, &ch, true);
    CHECK(sasl_client_step(&c, NULL, 0) == SASL_SEND && out_is(&c, "p=tls-unique,,n=u,r=abc"));
    CHECK(sasl_client_step(&c, S(sf)) == SASL_SEND);
    /* base64("p=tls-unique,," 01 .. 0c) */
    CHECK(c.out_len > 40 &&
          memcmp(c.out, "c=cD10bHMtdW5pcXVlLCwBAgMEBQYHCAkKCww=,r=abcdef,p=", 50) == 0);

    /* a type outside the table binds nothing: refused before anything is sent */
    ch.type = SASL_CB_COUNT;
    c = (struct sasl_client){.test_nonce = "abc"};
    sasl_client_begin(&c, mech("SCRAM-SHA-256-PLUS"), "u", 1, "p", 1, &ch, true);
    CHECK(sasl_client_step(&c, NULL, 0) == SASL_ECREDS && c.out_len == 0);
    ch.type = SASL_CB_TLS_UNIQUE;

    c = (struct sasl_client){.test_nonce = "abc"};
    sasl_client_begin(&c, mech("SCRAM-SHA-256"), "u", 1, "p", 1, &ch, false);
    CHECK(sasl_client_step(&c, NULL, 0) == SASL_SEND && out_is(&c, "y,,n=u,r=abc"));
    CHECK(sasl_client_step(&c, S(sf)) == SASL_SEND && memcmp(c.out, "c=eSws,", 7) == 0);

    c = (struct sasl_client){.test_nonce = "abc"};
    sasl_client_begin(&c, mech("SCRAM-SHA-256"), "u", 1, "p", 1, &ch, true);
    CHECK(sasl_client_step(&c, NULL, 0) == SASL_SEND && out_is(&c, "n,,n=u,r=abc"));

    /* -PLUS without a channel, a user or password SASLprep refuses */
    sasl_client_begin(&c, mech("SCRAM-SHA-256-PLUS"), "u", 1, "p", 1, NULL, true);
    CHECK(sasl_client_step(&c, NULL, 0) == SASL_ECREDS);
    sasl_client_begin(&c, mech("SCRAM-SHA-256"), "u\x01", 2, "p", 1, NULL, false);
    CHECK(sasl_client_step(&c, NULL, 0) == SASL_ECREDS);
    sasl_client_begin(&c, mech("SCRAM-SHA-256"), "u", 1, "p\xc3\xa9", 3, NULL, false);
    CHECK(sasl_client_step(&c, NULL, 0) == SASL_ECREDS);
    sasl_client_end(&c);
}

/* Nonces come from the RNG: two runs never share one. */
static void test_scram_nonce(void)
{
    struct sasl_client a = {0}, b = {0};

    sasl_client_begin(&a, mech("SCRAM-SHA-1"), "u", 1, "p", 1, NULL, false);
    sasl_client_begin(&b, mech("SCRAM-SHA-1"), "u", 1, "p", 1, NULL, false);
    CHECK(sasl_client_step(&a, NULL, 0) == SASL_SEND && sasl_client_step(&b, NULL, 0) == SASL_SEND);
    CHECK(strlen(a.nonce) == 32 && strcmp(a.nonce, b.nonce) != 0);
    sasl_client_end(&a);
    sasl_client_end(&b);
    CHECK(a.nonce[0] == '\0' && a.mech == NULL);
}

/* The one success gate: a proof-checking mechanism succeeds only with the proof verified. */
static void test_gate(void)
{
    struct login_outcome o = {.creds = CREDS_ALL, .proof = PROOF_PENDING};

    CHECK(proto_accept(&o, "AUTHENTICATE SCRAM-SHA-256") == PROTO_EPROTO);
    CHECK(strstr(o.reason.text, "without proving it knows the password") != NULL);
    CHECK(proto_success_refused(&o) != NULL);
    o.proof = PROOF_VERIFIED;
    CHECK(proto_accept(&o, "AUTHENTICATE SCRAM-SHA-256") == PROTO_OK && o.reason.text[0] == '\0');
    o.creds = CREDS_PARTIAL; /* a proof the server gave before it had ours counts for nothing */
    CHECK(proto_accept(&o, "AUTHENTICATE SCRAM-SHA-256") == PROTO_EPROTO);
    o = (struct login_outcome){.creds = CREDS_ALL, .proof = PROOF_NOT_REQUIRED};
    CHECK(proto_success_refused(&o) == NULL);
}

int main(void)
{
    test_gate();
    test_table();
    test_b64();
    test_saslprep();
    test_plain_login();
    test_cram_md5();
    test_scram_vectors();
    test_scram_server_proof();
    test_scram_server_first();
    test_scram_channel();
    test_scram_nonce();
    return check_summary("test_sasl");
}
