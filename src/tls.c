#include "tls.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "net.h"
#include "tls_cache.h"

struct tls_conn {
    SSL *ssl;
    int fd; /* not owned; our BIO is not a descriptor BIO, so SSL_get_fd() cannot find it */
    BIO_METHOD *bio_method; /* owned here: SSL_free frees the BIO that points to it */
    /* Resumption (tls_cache.h): where the session is kept at close; NULL host: not kept. */
    char *resume_host;
    unsigned resume_port;
    SSL_SESSION *offered; /* the stored session offered in the hello, our reference */
};

/* ---- a socket BIO that sends with MSG_NOSIGNAL ----
 * OpenSSL's own socket BIO uses write(), which raises SIGPIPE when the peer has reset the
 * connection; a PAM module must never change or trigger the host's signal handling. */

static int nosig_write(BIO *bio, const char *buf, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(bio);
    ssize_t n;

    BIO_clear_retry_flags(bio);
    n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(bio);
    return n < 0 ? -1 : (int)n;
}

static int nosig_read(BIO *bio, char *buf, int len)
{
    int fd = (int)(intptr_t)BIO_get_data(bio);
    ssize_t n;

    BIO_clear_retry_flags(bio);
    n = recv(fd, buf, (size_t)len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(bio);
    return n < 0 ? -1 : (int)n;
}

static long nosig_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    (void)bio;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int nosig_create(BIO *bio)
{
    BIO_set_init(bio, 1);
    return 1;
}

static BIO_METHOD *nosig_method_new(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOURCE_SINK, "mailauth-socket");

    if (m == NULL)
        return NULL;
    if (!BIO_meth_set_write(m, nosig_write) || !BIO_meth_set_read(m, nosig_read) ||
        !BIO_meth_set_ctrl(m, nosig_ctrl) || !BIO_meth_set_create(m, nosig_create)) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}

/* ---- errors ---- */

/* The first queued OpenSSL error in words, then clear the (thread-local) queue. */
static const char *ssl_error_text(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;

    if (reason != NULL)
        snprintf(buf, cap, "%s", reason);
    else if (e != 0)
        snprintf(buf, cap, "OpenSSL error %lx", e);
    else
        snprintf(buf, cap, "connection closed during the handshake");
    ERR_clear_error();
    return buf;
}

/* Wait for what OpenSSL asked for after a call returned rc. TLS_OK means "try again". */
static enum tls_result wait_for_ssl(const struct tls_conn *t, int rc, int64_t deadline_ms)
{
    enum net_result nr;

    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        nr = net_wait(t->fd, POLLIN, deadline_ms);
        break;
    case SSL_ERROR_WANT_WRITE:
        nr = net_wait(t->fd, POLLOUT, deadline_ms);
        break;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_EEOF;
    case SSL_ERROR_SYSCALL:
        return ERR_peek_error() == 0 && (rc == 0 || errno == 0) ? TLS_EEOF : TLS_EIO;
    default:
        return TLS_EIO;
    }
    if (nr == NET_ETIMEOUT)
        return TLS_ETIMEOUT;
    return nr == NET_OK ? TLS_OK : TLS_EIO;
}

/* ---- setup ---- */

/* True when dir holds at least one OpenSSL hash link ("1a2b3c4d.0"), i.e. it can be searched by
 * subject hash. */
static bool dir_has_hash_links(const char *dir)
{
    DIR *d = dir != NULL ? opendir(dir) : NULL;
    struct dirent *e;
    bool found = false;

    if (d == NULL)
        return false;
    while (!found && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        found = n >= 10 && e->d_name[8] == '.' && strspn(e->d_name, "0123456789abcdef") == 8 &&
                strspn(e->d_name + 9, "0123456789") == n - 9;
    }
    closedir(d);
    return found;
}

static enum tls_result load_trust(SSL_CTX *ctx, const struct tls_options *opt, struct errbuf *err)
{
    char ebuf[160];

    if (opt->ca_file == NULL && opt->ca_dir == NULL) {
        /* The system store. OpenSSL's default loads the whole bundle file (on Debian 144
         * certificates, about 19 ms of CPU) for every context it builds; the
         * hashed directory is searched lazily for the one issuer needed. Use it when there is
         * one; SSL_CERT_DIR overrides its place as it does for OpenSSL itself. */
        const char *dir = tls_system_cert_dir();
        if (dir_has_hash_links(dir) && SSL_CTX_load_verify_dir(ctx, dir) == 1)
            return TLS_OK;
        if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            errbuf_set(err, "cannot load the system trust store: %s",
                       ssl_error_text(ebuf, sizeof(ebuf)));
            return TLS_ESETUP;
        }
        return TLS_OK;
    }
    if (SSL_CTX_load_verify_locations(ctx, opt->ca_file, opt->ca_dir) != 1) {
        errbuf_set(err, "cannot load CA %s: %s", opt->ca_file != NULL ? opt->ca_file : opt->ca_dir,
                   ssl_error_text(ebuf, sizeof(ebuf)));
        return TLS_ESETUP;
    }
    return TLS_OK;
}

/* A fresh context for opt; tls_cache.c calls it when it has none for these trust settings. */
static SSL_CTX *new_context(const struct tls_options *opt, struct errbuf *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        errbuf_set(err, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* No AUTO_RETRY (OpenSSL's default): with it one SSL_read() goes on to the next record by
     * itself after a record without application data (a KeyUpdate, a ticket) for as long as one
     * is readable, so a peer sending nothing else never lets the read return to see the deadline.
     * Without it the read returns WANT_READ after each such record and net_wait checks. */
    SSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
    SSL_CTX_set_verify(ctx, opt->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (opt->verify && load_trust(ctx, opt, err) != TLS_OK) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

SSL_CTX *tls_context_get(const struct tls_options *opt, struct errbuf *err)
{
    return tls_cache_get(opt, new_context, err);
}

static bool set_peer_name(SSL *ssl, const char *host, bool verify)
{
    if (net_host_is_ip_literal(host))
        return !verify || X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
    if (SSL_set_tlsext_host_name(ssl, host) != 1)
        return false;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return !verify || SSL_set1_host(ssl, host) == 1;
}

/* Offer a session kept from an earlier login to the same host and port under the same trust
 * (only when verifying: an unverified session is never kept or offered). Without one, or out of
 * memory, the handshake is simply a full one. */
static void offer_kept_session(struct tls_conn *t, SSL_CTX *ctx, int fd, const char *host,
                               const struct tls_options *opt)
{
    if (!opt->verify || (t->resume_host = strdup(host)) == NULL)
        return;
    t->resume_port = net_peer_port(fd); /* 0 for a socket without one (a socketpair) */
    t->offered = tls_cache_session_take(ctx, host, t->resume_port);
    if (t->offered != NULL && SSL_set_session(t->ssl, t->offered) != 1) {
        SSL_SESSION_free(t->offered);
        t->offered = NULL;
    }
}

/* At close: keep the session this connection ends with for the next login, unless it is the
 * TLS 1.3 ticket it resumed with and the server sent no new one (single-use). */
static void keep_session(struct tls_conn *t)
{
    SSL_SESSION *sess;

    if (t->resume_host == NULL || !SSL_is_init_finished(t->ssl) ||
        SSL_get_verify_result(t->ssl) != X509_V_OK)
        return;
    sess = SSL_get1_session(t->ssl);
    if (sess != NULL && sess == t->offered && SSL_version(t->ssl) >= TLS1_3_VERSION) {
        SSL_SESSION_free(sess);
        return;
    }
    tls_cache_session_put(SSL_get_SSL_CTX(t->ssl), t->resume_host, t->resume_port, sess);
}

static enum tls_result new_session(int fd, const char *host, const struct tls_options *opt,
                                   struct tls_conn *t, struct errbuf *err)
{
    SSL_CTX *ctx = tls_context_get(opt, err);
    BIO *bio;

    if (ctx == NULL)
        return TLS_ESETUP;
    t->ssl = SSL_new(ctx);
    t->bio_method = nosig_method_new();
    if (t->ssl == NULL || t->bio_method == NULL || !set_peer_name(t->ssl, host, opt->verify)) {
        SSL_CTX_free(ctx);
        errbuf_set(err, "cannot set up a TLS session for %s", host);
        return TLS_ESETUP;
    }
    offer_kept_session(t, ctx, fd, host, opt);
    SSL_CTX_free(ctx); /* the session keeps its own reference */
    bio = BIO_new(t->bio_method);
    if (bio == NULL) {
        errbuf_set(err, "cannot create a TLS socket BIO");
        return TLS_ESETUP;
    }
    BIO_set_data(bio, (void *)(intptr_t)fd);
    SSL_set_bio(t->ssl, bio, bio);
    t->fd = fd;
    return TLS_OK;
}

static enum tls_result handshake_failed(SSL *ssl, enum tls_result r, struct errbuf *err)
{
    char ebuf[160];
    long vr = SSL_get_verify_result(ssl);

    if (r == TLS_ETIMEOUT) {
        /* Say what happened: the server's bytes waiting unread mean this process did not run in
         * time (stopped, starved), not that the server was slow. Either way it is the module's
         * clock, never evidence that the server is down (stream.c marks it local). */
        struct pollfd pfd = {.fd = SSL_get_fd(ssl), .events = POLLIN};
        bool waiting = pfd.fd >= 0 && poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN) != 0;

        errbuf_set(err, "TLS handshake timed out%s",
                   waiting ? " with the server's data already waiting: this process did not run "
                             "in time"
                           : "");
        ERR_clear_error();
        return TLS_ETIMEOUT;
    }
    if (vr != X509_V_OK) {
        errbuf_set(err, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
        ERR_clear_error();
        return TLS_ECERT;
    }
    errbuf_set(err, "TLS handshake failed: %s", ssl_error_text(ebuf, sizeof(ebuf)));
    return TLS_EHANDSHAKE;
}

enum tls_result tls_connect(int fd, const char *host, const struct tls_options *opt,
                            int64_t deadline_ms, struct tls_conn **out, struct errbuf *err)
{
    struct tls_conn *t = calloc(1, sizeof(*t));
    enum tls_result r;

    *out = NULL;
    if (t == NULL)
        return TLS_ESETUP;
    ERR_clear_error();
    r = new_session(fd, host, opt, t, err);
    if (r != TLS_OK)
        goto out;
    for (;;) {
        int rc = SSL_connect(t->ssl);
        if (rc == 1)
            break;
        r = wait_for_ssl(t, rc, deadline_ms);
        if (r != TLS_OK) {
            r = handshake_failed(t->ssl, r, err);
            goto out;
        }
    }
    *out = t;
    return TLS_OK;
out:
    tls_close(t);
    return r;
}

enum tls_result tls_write_all(struct tls_conn *t, const void *buf, size_t len, int64_t deadline_ms,
                              struct errbuf *err)
{
    const char *p = buf;
    char ebuf[160];

    ERR_clear_error();
    while (len > 0) {
        size_t written = 0;
        int rc = SSL_write_ex(t->ssl, p, len, &written);
        enum tls_result r;

        if (rc == 1) {
            p += written;
            len -= written;
            continue;
        }
        r = wait_for_ssl(t, rc, deadline_ms);
        if (r == TLS_OK)
            continue;
        if (r == TLS_ETIMEOUT)
            errbuf_set(err, "TLS write timed out");
        else
            errbuf_set(err, "TLS write failed: %s", ssl_error_text(ebuf, sizeof(ebuf)));
        ERR_clear_error();
        return r == TLS_ETIMEOUT ? TLS_ETIMEOUT : TLS_EIO;
    }
    return TLS_OK;
}

enum tls_result tls_read_some(struct tls_conn *t, void *buf, size_t cap, size_t *got,
                              int64_t deadline_ms, struct errbuf *err)
{
    char ebuf[160];

    *got = 0;
    ERR_clear_error();
    for (;;) {
        int rc = SSL_read_ex(t->ssl, buf, cap, got);
        enum tls_result r;

        if (rc == 1)
            return TLS_OK;
        r = wait_for_ssl(t, rc, deadline_ms);
        if (r == TLS_OK)
            continue;
        if (r == TLS_EIO)
            errbuf_set(err, "TLS read failed: %s", ssl_error_text(ebuf, sizeof(ebuf)));
        ERR_clear_error();
        return r;
    }
}

void tls_close(struct tls_conn *t)
{
    if (t == NULL)
        return;
    if (t->ssl != NULL) {
        keep_session(t);
        /* One non-blocking close_notify; waiting for the peer's would only add latency. */
        if (SSL_is_init_finished(t->ssl))
            SSL_shutdown(t->ssl);
        SSL_free(t->ssl);
    }
    SSL_SESSION_free(t->offered);
    free(t->resume_host);
    BIO_meth_free(t->bio_method);
    ERR_clear_error();
    free(t);
}

void tls_describe(const struct tls_conn *t, char *out, size_t cap)
{
    snprintf(out, cap, "%s %s%s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl),
             SSL_session_reused(t->ssl) ? ", session resumed" : "");
}

static void name_text(const X509_NAME *name, char *out, size_t cap)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n;

    out[0] = '\0';
    if (bio == NULL)
        return;
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
        n = BIO_get_mem_data(bio, &data);
        if (n > 0)
            snprintf(out, cap, "%.*s", (int)n, data);
    }
    BIO_free(bio);
}

static void cert_info(X509 *cert, struct tls_cert_info *ci)
{
    const ASN1_TIME *end = X509_get0_notAfter(cert);
    struct tm tm;
    int days = 0, secs = 0;

    name_text(X509_get_subject_name(cert), ci->subject, sizeof(ci->subject));
    name_text(X509_get_issuer_name(cert), ci->issuer, sizeof(ci->issuer));
    ci->not_after[0] = '\0';
    if (end != NULL && ASN1_TIME_to_tm(end, &tm) == 1)
        strftime(ci->not_after, sizeof(ci->not_after), "%Y-%m-%dT%H:%M:%SZ", &tm);
    ci->days_left = end != NULL && ASN1_TIME_diff(&days, &secs, NULL, end) == 1 ? days : 0;
}

void tls_peer_info(const struct tls_conn *t, struct tls_peer_info *info)
{
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(t->ssl);
    long vr = SSL_get_verify_result(t->ssl);
    int n = chain != NULL ? sk_X509_num(chain) : 0;

    memset(info, 0, sizeof(*info));
    snprintf(info->version, sizeof(info->version), "%s", SSL_get_version(t->ssl));
    snprintf(info->cipher, sizeof(info->cipher), "%s", SSL_get_cipher_name(t->ssl));
    for (int i = 0; i < n && info->n_chain < TLS_CHAIN_MAX; i++)
        cert_info(sk_X509_value(chain, i), &info->chain[info->n_chain++]);
    info->chain_verified = vr == X509_V_OK && n > 0;
    if (!info->chain_verified)
        snprintf(info->verify_error, sizeof(info->verify_error), "%s",
                 n > 0 ? X509_verify_cert_error_string(vr) : "no certificate presented");
}

/* RFC 5929 section 3: the first Finished message of the most recent handshake, which is the
 * client's (ours) in a full handshake and the server's in an abbreviated one (a resumed session,
 * tls_cache.h). Renegotiation is off (new_context), so the handshake is the only one. Only
 * with the extended master secret (RFC 7627): without it a man in the middle can give two
 * sessions the same master secret and Finished messages (the triple handshake attack), so the
 * binding would not pin this channel. */
static enum tls_cb_kind tls_unique(const struct tls_conn *t, unsigned char *out, size_t cap,
                                   size_t *len)
{
    size_t n;

    if (SSL_get_extms_support(t->ssl) != 1)
        return TLS_CB_NONE;
    n = SSL_session_reused(t->ssl) ? SSL_get_peer_finished(t->ssl, out, cap)
                                   : SSL_get_finished(t->ssl, out, cap);
    if (n == 0 || n > cap) {
        OPENSSL_cleanse(out, cap);
        return TLS_CB_NONE;
    }
    *len = n;
    return TLS_CB_UNIQUE;
}

enum tls_cb_kind tls_channel_binding(const struct tls_conn *t, unsigned char *out, size_t cap,
                                     size_t *len)
{
    static const char label[] = "EXPORTER-Channel-Binding";

    *len = 0;
    if (t == NULL || t->ssl == NULL)
        return TLS_CB_NONE;
    if (SSL_version(t->ssl) >= TLS1_3_VERSION) {
        if (cap < 32 ||
            SSL_export_keying_material(t->ssl, out, 32, label, sizeof(label) - 1, NULL, 0, 0) != 1)
            return TLS_CB_NONE;
        *len = 32;
        return TLS_CB_EXPORTER;
    }
    return SSL_version(t->ssl) == TLS1_2_VERSION ? tls_unique(t, out, cap, len) : TLS_CB_NONE;
}
