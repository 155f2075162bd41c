/* The TLS layer's deadline against a peer that keeps sending records that carry no application
 * data: a TLS 1.3 server that sends KeyUpdate after KeyUpdate once the handshake is done.
 * OpenSSL's SSL_MODE_AUTO_RETRY makes one SSL_read() go on to the next record by itself for as
 * long as one is readable, so a read that never returned to tls.c never saw the deadline: a 2 s
 * login took 3.5 to 14 s against such a server. The server runs in a thread over a socketpair,
 * with a certificate made in memory (verify = false: trust is not what this tests). */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "check.h"
#include "tls.h"
#include "util.h"

#define STORM_MS 20000 /* far beyond the deadline below: a broken client stays this long */

struct storm {
    int fd;
    SSL_CTX *ctx;
    int64_t until_ms;
    long key_updates;
};

static SSL_CTX *server_context(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = X509_new();
    X509_NAME *name = cert != NULL ? X509_get_subject_name(cert) : NULL;
    bool ok = ctx != NULL && key != NULL && name != NULL &&
              ASN1_INTEGER_set(X509_get_serialNumber(cert), 1) == 1 &&
              X509_gmtime_adj(X509_getm_notBefore(cert), -60) != NULL &&
              X509_gmtime_adj(X509_getm_notAfter(cert), 3600) != NULL &&
              X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"peer",
                                         -1, -1, 0) == 1 &&
              X509_set_issuer_name(cert, name) == 1 && X509_set_pubkey(cert, key) == 1 &&
              X509_sign(cert, key, EVP_sha256()) > 0 &&
              SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1 &&
              SSL_CTX_use_certificate(ctx, cert) == 1 && SSL_CTX_use_PrivateKey(ctx, key) == 1;

    X509_free(cert);
    EVP_PKEY_free(key);
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_num_tickets(ctx, 0);
    return ctx;
}

/* Handshake, then KeyUpdates until the client hangs up or STORM_MS have passed. */
static void *key_update_storm(void *arg)
{
    struct storm *st = arg;
    SSL *ssl = SSL_new(st->ctx);

    if (ssl == NULL || SSL_set_fd(ssl, st->fd) != 1 || SSL_accept(ssl) != 1)
        goto out;
    while (clock_now_ms() < st->until_ms &&
           SSL_key_update(ssl, SSL_KEY_UPDATE_NOT_REQUESTED) == 1 && SSL_do_handshake(ssl) == 1)
        st->key_updates++;
out:
    SSL_free(ssl);
    return NULL;
}

static void test_deadline_against_a_key_update_storm(void)
{
    const struct tls_options opt = {.verify = false};
    struct storm st = {.fd = -1};
    struct tls_conn *t = NULL;
    struct errbuf err = {{0}};
    enum tls_result r = TLS_OK;
    pthread_t server;
    int64_t start;
    char buf[256];
    int sv[2];

    st.ctx = server_context();
    if (st.ctx == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        CHECK(!"setup");
        SSL_CTX_free(st.ctx);
        return;
    }
    st.fd = sv[1];
    st.until_ms = clock_now_ms() + STORM_MS;
    if (pthread_create(&server, NULL, key_update_storm, &st) != 0) {
        CHECK(!"pthread_create");
        goto out;
    }
    r = tls_connect(sv[0], "peer", &opt, clock_now_ms() + 10000, &t, &err);
    CHECK(r == TLS_OK);
    start = clock_now_ms();
    while (r == TLS_OK) {
        size_t got = 0;
        r = tls_read_some(t, buf, sizeof(buf), &got, start + 300, &err);
    }
    CHECK(r == TLS_ETIMEOUT);
    CHECK(clock_now_ms() - start < 3000);
    if (clock_now_ms() - start >= 3000)
        fprintf(stderr, "read returned after %lld ms (deadline 300 ms), %ld KeyUpdates\n",
                (long long)(clock_now_ms() - start), st.key_updates);
    tls_close(t);
    shutdown(sv[0], SHUT_RDWR);
    pthread_join(server, NULL);
    CHECK(st.key_updates > 0); /* the storm ran: the case tested what it names */
out:
    close(sv[0]);
    close(sv[1]);
    SSL_CTX_free(st.ctx);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(60); /* a broken deadline must fail the test, not hang it */
    test_deadline_against_a_key_update_storm();
    return check_summary("tls");
}
