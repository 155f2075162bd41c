/* The SASL client mechanisms, as one table: pure code, no I/O (src/sasl/README says why they are
 * written here on OpenSSL 3 and not taken from GNU SASL). A protocol drives a mechanism with raw
 * (already base64-decoded) server messages and sends what each step returns; it never needs to
 * know which mechanism it runs. */
#ifndef MAILAUTH_SASL_MECH_H
#define MAILAUTH_SASL_MECH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest raw client or server message of one step. */
#define SASL_MSG_MAX 2048
/* Credentials a mechanism takes: longer ones are refused (SASL_ECREDS), never cut. */
#define SASL_USER_MAX 255
#define SASL_PASSWORD_MAX 1024
/* The most PBKDF2 iterations a SCRAM server may ask for: the CPU is spent inside the login's
 * deadline (about 19 ms at this count with SHA-256 on the test machine: bench/RESULTS.md). RFC 7677
 * asks for at least 4096; Dovecot uses 4096, Cyrus 10000. */
#define SASL_SCRAM_MAX_ITERATIONS 100000
#define SASL_SCRAM_MIN_ITERATIONS 1
#define SASL_NONCE_BYTES 24

enum sasl_mech_id {
    SASL_MECH_PLAIN,
    SASL_MECH_LOGIN,
    SASL_MECH_CRAM_MD5,
    SASL_MECH_SCRAM_SHA_1,
    SASL_MECH_SCRAM_SHA_256,
    SASL_MECH_SCRAM_SHA_256_PLUS,
    SASL_MECH_COUNT
};

/* What the TLS channel under the login can be bound by (RFC 5056), filled by the stream layer. */
enum sasl_cb_type {
    SASL_CB_NONE,
    SASL_CB_TLS_EXPORTER, /* RFC 9266: TLS 1.3 */
    SASL_CB_TLS_UNIQUE,   /* RFC 5929: TLS 1.2 with the extended master secret (RFC 7627) */
    SASL_CB_COUNT
};

struct sasl_channel {
    enum sasl_cb_type type;
    size_t len;
    unsigned char data[64];
};

enum sasl_status {
    SASL_SEND,      /* c->out holds the next client message (maybe empty) */
    SASL_DONE,      /* the mechanism completed; for a server_proves mechanism: the server proved
                       it knows the verifier (v= checked) */
    SASL_EPROTO,    /* the server's message is malformed or breaks the mechanism's rules */
    SASL_ESERVER,   /* the server reported an error inside the mechanism (SCRAM e=) */
    SASL_EFORGED,   /* SCRAM: the server's signature is wrong: it does not know the verifier */
    SASL_ECREDS,    /* the credentials cannot be used with this mechanism (too long, SASLprep) */
    SASL_ELIMIT,    /* SCRAM: the server asks for more iterations than SASL_SCRAM_MAX_ITERATIONS */
    SASL_EINTERNAL, /* OpenSSL failed (no memory, no randomness) */
};

struct sasl_client;

/* One row of the table. */
struct sasl_mech {
    enum sasl_mech_id id;
    const char *name;      /* as servers advertise it, upper case */
    const char *config;    /* as the configuration spells it, lower case */
    bool password_derived; /* its responses carry password-derived data */
    bool reveals_password; /* the server (and whoever holds its certificate) reads the password */
    bool server_proves;    /* success needs the server's own proof (SCRAM v=) */
    bool initial_response; /* the client speaks first (SASL-IR, POP3 AUTH with an argument) */
    bool channel_binding;  /* -PLUS: needs struct sasl_channel data */
    /* One step: in is the server's message (empty for the initial response). */
    enum sasl_status (*step)(struct sasl_client *c, const unsigned char *in, size_t in_len);
};

/* A mechanism run. Every secret it holds is wiped by sasl_client_end. */
struct sasl_client {
    const struct sasl_mech *mech;
    const char *user;
    size_t user_len;
    const char *password;
    size_t password_len;
    struct sasl_channel channel; /* SASL_CB_NONE unless the channel can be bound */
    bool cb_offered;             /* the server advertised a -PLUS variant (SCRAM gs2 "y" vs "n") */
    unsigned steps;              /* step calls so far */
    bool out_secret;         /* the message in out is password-derived: send it as a credential */
    bool out_last;           /* after out, nothing more password-derived follows */
    bool done;               /* SASL_DONE was returned */
    char error[64];          /* SASL_ESERVER: the server's e= value, printable */
    unsigned iterations;     /* SCRAM: what the server asked for (may be logged) */
    unsigned max_iterations; /* SCRAM cap; 0: SASL_SCRAM_MAX_ITERATIONS (kept by begin) */
    size_t out_len;
    unsigned char out[SASL_MSG_MAX];
    /* SCRAM state between steps. */
    char nonce[2 * SASL_NONCE_BYTES + 1];
    size_t first_bare_len;
    char first_bare[SASL_MSG_MAX / 2];
    unsigned char server_key[64];
    unsigned char auth_sig_expected[64];
    size_t key_len;
    /* For tests only: a fixed client nonce (RFC vectors); NULL: RAND_bytes (kept by begin). */
    const char *test_nonce;
};

/* The table, in order of preference (strongest first). */
extern const struct sasl_mech sasl_mechs[SASL_MECH_COUNT];

/* The row whose advertised (or configured) name is [name, name+len), case-insensitive; NULL. */
const struct sasl_mech *sasl_mech_by_name(const char *name, size_t len);

/* Start a run of m for user/password. channel may be NULL. */
void sasl_client_begin(struct sasl_client *c, const struct sasl_mech *m, const char *user,
                       size_t user_len, const char *password, size_t password_len,
                       const struct sasl_channel *channel, bool cb_offered);

/* Run one step (see struct sasl_mech.step). Calling again after SASL_DONE or an error is
 * SASL_EPROTO. */
enum sasl_status sasl_client_step(struct sasl_client *c, const unsigned char *in, size_t in_len);

/* Wipe every secret of the run. */
void sasl_client_end(struct sasl_client *c);

const char *sasl_status_name(enum sasl_status s);

/* SASLprep (RFC 4013, with RFC 7613's view of passwords) of [in, in+n) into out (cap bytes, NUL
 * added). Returns the length, or -1 when the string is prohibited or not supported (see saslprep.c:
 * non-ASCII input is refused, not guessed at). */
long sasl_saslprep(const char *in, size_t n, char *out, size_t cap);

/* Strict base64 (RFC 4648, padding required, no whitespace). encode: returns the length written
 * with a NUL, 0 if it does not fit. decode: returns the length, -1 when malformed or too long. */
size_t sasl_b64_encode(const unsigned char *in, size_t n, char *out, size_t cap);
long sasl_b64_decode(const char *in, size_t n, unsigned char *out, size_t cap);

/* The mechanism files' step functions (the table in mechs.c names them). */
enum sasl_status sasl_plain_step(struct sasl_client *c, const unsigned char *in, size_t in_len);
enum sasl_status sasl_login_step(struct sasl_client *c, const unsigned char *in, size_t in_len);
enum sasl_status sasl_cram_md5_step(struct sasl_client *c, const unsigned char *in, size_t in_len);
enum sasl_status sasl_scram_step(struct sasl_client *c, const unsigned char *in, size_t in_len);

#endif
