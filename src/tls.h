/* TLS client over an already connected non-blocking socket (OpenSSL 3, TLS 1.2 or later).
 * Chain and host name (or IP address) are verified unless verify is false; SNI is sent for names.
 */
#ifndef MAILAUTH_TLS_H
#define MAILAUTH_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

enum tls_result {
    TLS_OK,
    TLS_ECERT,      /* the certificate did not verify */
    TLS_EHANDSHAKE, /* the handshake failed for another reason (protocol version, garbage) */
    TLS_ETIMEOUT,
    TLS_EEOF,   /* the peer closed the connection */
    TLS_EIO,    /* socket error or TLS error after the handshake */
    TLS_ESETUP, /* local problem: out of memory, unreadable CA file */
};

struct tls_options {
    const char *ca_file; /* NULL with ca_dir NULL: the system trust store */
    const char *ca_dir;
    bool verify;
};

struct tls_conn;
struct ssl_ctx_st;

/* The client context for opt, from the process-wide cache (tls_cache.c): a new reference that
 * the caller releases with SSL_CTX_free. NULL when it cannot be built (err says why, e.g. an
 * unreadable CA file). tls_connect uses it; tests call it to check what is shared. */
struct ssl_ctx_st *tls_context_get(const struct tls_options *opt, struct errbuf *err);

/* Run a client handshake on fd for host. On TLS_OK *out owns the session (not the fd).
 * Returns any tls_result but TLS_EEOF may also be reported as TLS_EHANDSHAKE; err says why. */
enum tls_result tls_connect(int fd, const char *host, const struct tls_options *opt,
                            int64_t deadline_ms, struct tls_conn **out, struct errbuf *err);

/* TLS_OK, TLS_ETIMEOUT, TLS_EIO. */
enum tls_result tls_write_all(struct tls_conn *t, const void *buf, size_t len, int64_t deadline_ms,
                              struct errbuf *err);

/* At least one byte. TLS_OK, TLS_EEOF, TLS_ETIMEOUT, TLS_EIO. */
enum tls_result tls_read_some(struct tls_conn *t, void *buf, size_t cap, size_t *got,
                              int64_t deadline_ms, struct errbuf *err);

/* Send close_notify without waiting for the peer's, and free the session. NULL is fine. */
void tls_close(struct tls_conn *t);

#define TLS_CHAIN_MAX 8

/* One certificate of the peer's chain, as text for people (subject and issuer in RFC 2253 form,
 * escaped by OpenSSL; not_after as "2027-01-31T12:00:00Z"). */
struct tls_cert_info {
    char subject[256];
    char issuer[256];
    char not_after[32];
    long days_left; /* negative: expired */
};

/* What the handshake settled on and what the peer presented (diagnostics: the probe tool). */
struct tls_peer_info {
    char version[16];
    char cipher[64];
    size_t n_chain; /* leaf first; at most TLS_CHAIN_MAX shown */
    struct tls_cert_info chain[TLS_CHAIN_MAX];
    bool chain_verified;    /* OpenSSL's verdict on chain and name (name: only with verify on) */
    char verify_error[256]; /* why not, when !chain_verified */
};

void tls_peer_info(const struct tls_conn *t, struct tls_peer_info *info);

/* Channel binding data for SCRAM-PLUS (RFC 5056), by the version the handshake settled on:
 * TLS 1.3: "tls-exporter" (RFC 9266: 32 bytes exported with label "EXPORTER-Channel-Binding"
 * and an empty context); TLS 1.2: "tls-unique" (RFC 5929: the first Finished message of the
 * handshake, the client's or, when the session was resumed, the server's), and only when the
 * extended master secret (RFC 7627) was used: without it tls-unique does not identify the
 * channel (the triple handshake attack). tls-unique is what every SCRAM-PLUS server implements
 * (RFC 5802 section 6); tls-server-end-point binds only the certificate, not the channel.
 * Returns the kind, or TLS_CB_NONE when the channel cannot be bound (then *len is 0). */
enum tls_cb_kind { TLS_CB_NONE, TLS_CB_EXPORTER, TLS_CB_UNIQUE };
enum tls_cb_kind tls_channel_binding(const struct tls_conn *t, unsigned char *out, size_t cap,
                                     size_t *len);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for debug logs. */
void tls_describe(const struct tls_conn *t, char *out, size_t cap);

#endif
