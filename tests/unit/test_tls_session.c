/* TLS session resumption in a long-lived process (tls_cache.h): a session is offered again only
 * to the same host name and port under the same trust settings, never when they changed, never
 * in a forked child, never with verify = false, never after its lifetime, and a TLS 1.3 ticket
 * only once. The server is OpenSSL in a thread of this process on a loopback port; it reports
 * whether each handshake resumed, which is what every case checks. It also computes the channel
 * binding data on its side (tls-unique under TLS 1.2, tls-exporter under TLS 1.3), which the
 * client's (tls_channel_binding) must equal, resumed or not.
 *
 * usage: test_tls_session            the cases one after the other
 *        test_tls_session threads    many threads resuming at once (the ThreadSanitizer stage) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "check.h"
#include "tls.h"
#include "tls_cache.h"
#include "util.h"

static char tmpdir[] = "/tmp/mailauth-tls-session-XXXXXX";
static char ca_path[256];

struct pki {
    EVP_PKEY *ca_key;
    X509 *ca;
};

/* A certificate for name, signed by issuer (self-signed when issuer is NULL). */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
                       const char *san)
{
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext = NULL;
    bool ok;

    if (x == NULL)
        return NULL;
    ok = X509_set_version(x, 2) == 1 && ASN1_INTEGER_set(X509_get_serialNumber(x), 7) == 1 &&
         X509_gmtime_adj(X509_getm_notBefore(x), -60) != NULL &&
         X509_gmtime_adj(X509_getm_notAfter(x), 3600) != NULL &&
         X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                    (const unsigned char *)cn, -1, -1, 0) == 1 &&
         X509_set_issuer_name(x, X509_get_subject_name(issuer != NULL ? issuer : x)) == 1 &&
         X509_set_pubkey(x, key) == 1;
    if (ok) {
        X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &v3,
                                  san != NULL ? NID_subject_alt_name : NID_basic_constraints,
                                  san != NULL ? san : "critical,CA:TRUE");
        ok = ext != NULL && X509_add_ext(x, ext, -1) == 1 &&
             X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0;
    }
    X509_EXTENSION_free(ext);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static bool make_ca(struct pki *p, const char *cn)
{
    p->ca_key = EVP_EC_gen("P-256");
    p->ca = p->ca_key != NULL ? make_cert(p->ca_key, cn, NULL, NULL, NULL) : NULL;
    return p->ca != NULL;
}

static void free_ca(struct pki *p)
{
    X509_free(p->ca);
    EVP_PKEY_free(p->ca_key);
}

static bool write_ca(const struct pki *p, const char *path)
{
    char tmp[300];
    FILE *f;
    bool ok;

    /* A new file renamed over the old one: a new inode, as a package update does. */
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    f = fopen(tmp, "w");
    if (f == NULL)
        return false;
    ok = PEM_write_X509(f, p->ca) == 1;
    ok = fclose(f) == 0 && ok;
    return ok && rename(tmp, path) == 0;
}

/* A server context with a leaf for localhost and 127.0.0.1 signed by p's CA; its own ticket
 * keys, as a restarted server has. max_version 0: TLS 1.3. */
static SSL_CTX *server_context(const struct pki *p, int max_version)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *leaf = key != NULL
                     ? make_cert(key, "localhost", p->ca, p->ca_key, "DNS:localhost,IP:127.0.0.1")
                     : NULL;
    bool ok = ctx != NULL && leaf != NULL && SSL_CTX_use_certificate(ctx, leaf) == 1 &&
              SSL_CTX_use_PrivateKey(ctx, key) == 1 &&
              (max_version == 0 || SSL_CTX_set_max_proto_version(ctx, max_version) == 1);

    X509_free(leaf);
    EVP_PKEY_free(key);
    if (!ok) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

struct server {
    int listen_fd;
    unsigned port;
    SSL_CTX *ctx;
    int tickets; /* TLS 1.3 tickets sent after the handshake; -1: OpenSSL's default (2) */
};

struct one_conn {
    struct server *srv;
    int reused;    /* -1: the handshake did not complete */
    size_t cb_len; /* the server's channel binding data: 0 when it cannot bind */
    unsigned char cb[64];
};

/* What the client's side (tls_channel_binding) returned. */
struct cb_seen {
    enum tls_cb_kind kind;
    size_t len;
    unsigned char data[64];
};

/* The server's view (RFC 5929 section 3, RFC 9266): tls-unique is the first Finished of the
 * handshake, the client's (the peer's, here) in a full one, the server's own in a resumed one;
 * under TLS 1.2 only with the extended master secret. */
static void server_binding(SSL *ssl, struct one_conn *c)
{
    static const char label[] = "EXPORTER-Channel-Binding";

    if (SSL_version(ssl) == TLS1_3_VERSION)
        c->cb_len =
            SSL_export_keying_material(ssl, c->cb, 32, label, sizeof(label) - 1, NULL, 0, 0) == 1
                ? 32
                : 0;
    else if (SSL_get_extms_support(ssl) == 1)
        c->cb_len = SSL_session_reused(ssl) ? SSL_get_finished(ssl, c->cb, sizeof(c->cb))
                                            : SSL_get_peer_finished(ssl, c->cb, sizeof(c->cb));
}

/* Accept one connection: handshake, report resumption, send a line (the client's read makes it
 * process the tickets sent before it), wait for the client to close. */
static void *serve_one(void *arg)
{
    struct one_conn *c = arg;
    int fd = accept(c->srv->listen_fd, NULL, NULL);
    SSL *ssl = fd >= 0 ? SSL_new(c->srv->ctx) : NULL;
    char buf[64];

    c->reused = -1;
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1)
        goto out;
    if (c->srv->tickets >= 0)
        SSL_set_num_tickets(ssl, (size_t)c->srv->tickets);
    if (SSL_accept(ssl) != 1)
        goto out;
    c->reused = SSL_session_reused(ssl) ? 1 : 0;
    server_binding(ssl, c);
    if (SSL_write(ssl, "ok\n", 3) == 3)
        while (SSL_read(ssl, buf, sizeof(buf)) > 0)
            continue;
out:
    SSL_free(ssl);
    if (fd >= 0)
        close(fd);
    return NULL;
}

static bool server_listen(struct server *srv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);

    srv->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv->listen_fd < 0 || bind(srv->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(srv->listen_fd, 64) != 0 ||
        getsockname(srv->listen_fd, (struct sockaddr *)&sa, &len) != 0)
        return false;
    srv->port = ntohs(sa.sin_port);
    return true;
}

/* The client side of one login: connect, handshake through tls.c, read the line, close. cb: where
 * the channel binding data goes, or NULL. */
static enum tls_result client_login(unsigned port, const char *host, const struct tls_options *opt,
                                    struct cb_seen *cb)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct tls_conn *t = NULL;
    struct errbuf err = {{0}};
    enum tls_result r = TLS_EIO;
    char buf[8];
    size_t got = 0;

    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto out;
    r = tls_connect(fd, host, opt, clock_now_ms() + 10000, &t, &err);
    if (r == TLS_OK && cb != NULL)
        cb->kind = tls_channel_binding(t, cb->data, sizeof(cb->data), &cb->len);
    if (r == TLS_OK)
        r = tls_read_some(t, buf, sizeof(buf), &got, clock_now_ms() + 10000, &err);
    if (r != TLS_OK && r != TLS_ECERT)
        fprintf(stderr, "login to %s:%u: %s\n", host, port, err.text);
out:
    tls_close(t);
    if (fd >= 0)
        close(fd);
    return r;
}

/* One login against c->srv, the server's side of it in *c; returns whether the server saw a
 * resumed handshake (-1: it saw no completed handshake) and stores the client's result in *r. */
static int login_conn(struct one_conn *c, const char *host, const struct tls_options *opt,
                      enum tls_result *r, struct cb_seen *cb)
{
    pthread_t th;

    c->reused = -1;
    if (pthread_create(&th, NULL, serve_one, c) != 0)
        return -1;
    *r = client_login(c->srv->port, host, opt, cb);
    pthread_join(th, NULL);
    return c->reused;
}

static int login(struct server *srv, const char *host, const struct tls_options *opt,
                 enum tls_result *r)
{
    struct one_conn c = {.srv = srv};

    return login_conn(&c, host, opt, r, NULL);
}

static int login_ok(struct server *srv, const char *host, const struct tls_options *opt)
{
    enum tls_result r = TLS_EIO;
    int reused = login(srv, host, opt, &r);

    CHECK(r == TLS_OK);
    return r == TLS_OK ? reused : -1;
}

static const struct tls_options verified = {.ca_file = ca_path, .verify = true};

static void test_resumes_and_each_ticket_once(struct server *srv)
{
    srv->tickets = -1;
    CHECK(login_ok(srv, "localhost", &verified) == 0);
    CHECK(login_ok(srv, "localhost", &verified) == 1);
    /* A resumed login whose server sends no new ticket: the ticket it used is not kept. */
    srv->tickets = 0;
    CHECK(login_ok(srv, "localhost", &verified) == 1);
    CHECK(login_ok(srv, "localhost", &verified) == 0);
    srv->tickets = -1;
}

static void test_other_name_or_port(struct server *srv, struct server *other)
{
    CHECK(login_ok(srv, "localhost", &verified) == 0);
    CHECK(login_ok(srv, "127.0.0.1", &verified) == 0);   /* another name: full handshake */
    CHECK(login_ok(other, "localhost", &verified) == 0); /* another port */
    CHECK(login_ok(srv, "localhost", &verified) == 1);   /* its own is still there */
}

static void test_changed_ca_file(struct server *srv, const struct pki *p)
{
    CHECK(login_ok(srv, "localhost", &verified) >= 0);
    CHECK(login_ok(srv, "localhost", &verified) == 1);
    CHECK(write_ca(p, ca_path)); /* same trust, new file: the context is rebuilt */
    CHECK(login_ok(srv, "localhost", &verified) == 0);
}

static void test_never_without_verify(struct server *srv)
{
    const struct tls_options unverified = {.verify = false};

    /* 127.0.0.1: the verified context holds no session for that name (the CA file change
     * above dropped the one test_other_name_or_port kept). */
    CHECK(login_ok(srv, "127.0.0.1", &unverified) == 0);
    CHECK(login_ok(srv, "127.0.0.1", &unverified) == 0);
    /* and a verified login never gets an unverified one's session */
    CHECK(login_ok(srv, "127.0.0.1", &verified) == 0);
}

static void test_forked_child_starts_afresh(struct server *srv)
{
    struct one_conn c = {.srv = srv, .reused = -1};
    pthread_t th;
    int status = 0;
    pid_t pid;

    CHECK(login_ok(srv, "localhost", &verified) >= 0); /* the parent holds a session */
    pid = fork();
    if (pid == 0)
        _exit(client_login(srv->port, "localhost", &verified, NULL) == TLS_OK ? 0 : 1);
    if (pid < 0 || pthread_create(&th, NULL, serve_one, &c) != 0) {
        CHECK(!"fork or pthread_create");
        return;
    }
    pthread_join(th, NULL);
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(c.reused == 0);
    CHECK(login_ok(srv, "localhost", &verified) == 1); /* the parent's is untouched */
}

/* The server restarted with a new certificate and new ticket keys: the kept session is refused
 * and the new certificate verified, so one from an untrusted CA fails the handshake. */
static void test_server_with_a_new_certificate(struct server *srv, const struct pki *p)
{
    struct pki rogue = {0};
    SSL_CTX *old = srv->ctx, *fresh = server_context(p, 0), *rogue_ctx = NULL;
    enum tls_result r = TLS_OK;

    CHECK(login_ok(srv, "localhost", &verified) >= 0); /* a session from the old server */
    if (fresh == NULL || !make_ca(&rogue, "rogue CA") ||
        (rogue_ctx = server_context(&rogue, 0)) == NULL) {
        CHECK(!"setup");
        goto out;
    }
    srv->ctx = fresh;
    CHECK(login_ok(srv, "localhost", &verified) == 0);
    srv->ctx = rogue_ctx;
    CHECK(login(srv, "localhost", &verified, &r) != 1);
    CHECK(r == TLS_ECERT);
out:
    srv->ctx = old;
    SSL_CTX_free(fresh);
    SSL_CTX_free(rogue_ctx);
    free_ca(&rogue);
}

/* A session past its lifetime is not offered, even to a server that would still take it: the
 * server's own clock is inside its ticket, so only the client's check can refuse it here. */
static void test_lifetime(struct server *srv)
{
    struct errbuf err = {{0}};
    SSL_CTX *ctx = tls_context_get(&verified, &err);
    SSL_SESSION *sess;

    CHECK(login_ok(srv, "localhost", &verified) >= 0);
    sess = ctx != NULL ? tls_cache_session_take(ctx, "localhost", srv->port) : NULL;
    CHECK(sess != NULL);
    if (sess != NULL) {
        SSL_SESSION_set_time(sess, SSL_SESSION_get_time(sess) - SSL_SESSION_get_timeout(sess));
        tls_cache_session_put(ctx, "localhost", srv->port, sess);
    }
    CHECK(login_ok(srv, "localhost", &verified) == 0);
    CHECK(login_ok(srv, "localhost", &verified) == 1);
    SSL_CTX_free(ctx);
}

static void test_tls12_sessions(const struct pki *p)
{
    struct server srv = {.tickets = -1};

    srv.ctx = server_context(p, TLS1_2_VERSION);
    if (srv.ctx == NULL || !server_listen(&srv)) {
        CHECK(!"server");
        goto out;
    }
    CHECK(login_ok(&srv, "localhost", &verified) == 0);
    CHECK(login_ok(&srv, "localhost", &verified) == 1);
    CHECK(login_ok(&srv, "localhost", &verified) == 1);
out:
    if (srv.listen_fd > 0)
        close(srv.listen_fd);
    SSL_CTX_free(srv.ctx);
}

/* SCRAM-PLUS channel binding (tls.h): the client's data equals the server's for a full and
 * a resumed handshake, and differs from one connection to the next; TLS 1.2 without the
 * extended master secret (RFC 7627) cannot be bound at all. */
static void test_channel_binding(const struct pki *p, int version, bool ems)
{
    struct server srv = {.tickets = -1};
    unsigned char first[64] = {0};
    enum tls_cb_kind want = version == TLS1_2_VERSION ? TLS_CB_UNIQUE : TLS_CB_EXPORTER;
    size_t want_len = version == TLS1_2_VERSION ? 12 : 32;

    srv.ctx = server_context(p, version);
    if (srv.ctx == NULL || !server_listen(&srv)) {
        CHECK(!"server");
        goto out;
    }
    if (!ems)
        SSL_CTX_set_options(srv.ctx, SSL_OP_NO_EXTENDED_MASTER_SECRET);
    for (int i = 0; i < 3; i++) {
        struct one_conn c = {.srv = &srv};
        struct cb_seen cb = {TLS_CB_NONE, 0, {0}};
        enum tls_result r = TLS_EIO;

        CHECK(login_conn(&c, "localhost", &verified, &r, &cb) == (i > 0) && r == TLS_OK);
        if (!ems) {
            CHECK(cb.kind == TLS_CB_NONE && cb.len == 0 && c.cb_len == 0);
            continue;
        }
        CHECK(cb.kind == want && cb.len == want_len && c.cb_len == want_len);
        CHECK(memcmp(cb.data, c.cb, want_len) == 0);
        CHECK(memcmp(cb.data, first, want_len) != 0);
        memcpy(first, cb.data, want_len);
    }
out:
    if (srv.listen_fd > 0)
        close(srv.listen_fd);
    SSL_CTX_free(srv.ctx);
}

/* ---- many threads at once ---- */

#define THREADS 8
#define ROUNDS 12

struct worker {
    struct server *srv;
    int ok;
    int resumed;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < ROUNDS; i++) {
        enum tls_result r = TLS_EIO;
        int reused = login(w->srv, i % 2 ? "localhost" : "127.0.0.1", &verified, &r);
        w->ok += r == TLS_OK;
        w->resumed += reused == 1;
    }
    return NULL;
}

static void test_threads(struct server *srv)
{
    struct worker w[THREADS] = {{0}};
    pthread_t th[THREADS];
    int ok = 0, resumed = 0, started = 0;

    for (int i = 0; i < THREADS; i++) {
        w[i].srv = srv;
        if (pthread_create(&th[i], NULL, worker_run, &w[i]) != 0)
            break;
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        ok += w[i].ok;
        resumed += w[i].resumed;
    }
    CHECK(started == THREADS && ok == THREADS * ROUNDS);
    CHECK(resumed > 0); /* resumption happened, under contention */
    fprintf(stderr, "threads: %d logins, %d resumed\n", ok, resumed);
}

int main(int argc, char **argv)
{
    struct server srv = {.tickets = -1}, other = {.tickets = -1};
    struct pki p = {0};

    signal(SIGPIPE, SIG_IGN);
    alarm(120);
    if (mkdtemp(tmpdir) == NULL || !make_ca(&p, "test CA")) {
        CHECK(!"setup");
        return check_summary("tls_session");
    }
    snprintf(ca_path, sizeof(ca_path), "%s/ca.pem", tmpdir);
    srv.ctx = server_context(&p, 0);
    other.ctx = server_context(&p, 0);
    if (!write_ca(&p, ca_path) || srv.ctx == NULL || other.ctx == NULL || !server_listen(&srv) ||
        !server_listen(&other)) {
        CHECK(!"setup");
        goto out;
    }
    if (argc > 1 && strcmp(argv[1], "threads") == 0) {
        test_threads(&srv);
        goto out;
    }
    test_resumes_and_each_ticket_once(&srv);
    test_other_name_or_port(&srv, &other);
    test_changed_ca_file(&srv, &p);
    test_never_without_verify(&srv);
    test_forked_child_starts_afresh(&srv);
    test_server_with_a_new_certificate(&srv, &p);
    test_tls12_sessions(&p);
    test_channel_binding(&p, TLS1_2_VERSION, true);
    test_channel_binding(&p, TLS1_2_VERSION, false);
    test_channel_binding(&p, TLS1_3_VERSION, true);
    test_lifetime(&srv);
out:
    close(srv.listen_fd);
    close(other.listen_fd);
    SSL_CTX_free(srv.ctx);
    SSL_CTX_free(other.ctx);
    free_ca(&p);
    unlink(ca_path);
    rmdir(tmpdir);
    return check_summary("tls_session");
}
