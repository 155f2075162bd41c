/* The process-wide TLS context cache: what is shared, what is never shared, that changed trust
 * anchors are seen by the next login, and that a child process never inherits the lock state
 * of its parent. Goes through tls_context_get, i.e. the module's own context builder. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "check.h"
#include "tls.h"
#include "tls_cache.h"

static char tmpdir[] = "/tmp/mailauth-tls-cache-XXXXXX";

static char *path_in(const char *name)
{
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];

    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

/* A self-signed CA certificate with common name cn. */
static X509 *make_ca(const char *cn)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name = X509_get_subject_name(x);

    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    X509_sign(x, key, EVP_sha256());
    EVP_PKEY_free(key);
    return x;
}

static void write_pem(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");

    PEM_write_X509(f, x);
    fclose(f);
}

/* Write a new CA named cn to path: by rename over it (a new inode), or in place. */
static void put_ca(const char *path, const char *cn, bool in_place)
{
    X509 *x = make_ca(cn);
    char tmp[300];

    if (in_place) {
        write_pem(path, x);
    } else {
        snprintf(tmp, sizeof(tmp), "%s.new", path);
        write_pem(tmp, x);
        rename(tmp, path);
    }
    X509_free(x);
}

/* A hash link for a CA named cn in dir (what `openssl rehash` makes). */
static void put_hash_link(const char *dir, const char *cn, char *link, size_t cap)
{
    X509 *x = make_ca(cn);
    char file[300];

    snprintf(file, sizeof(file), "%s/%s.pem", dir, cn);
    write_pem(file, x);
    snprintf(link, cap, "%s/%08lx.0", dir, X509_subject_name_hash(x));
    if (symlink(file, link) != 0)
        perror("symlink");
    X509_free(x);
}

static bool store_has(SSL_CTX *ctx, const char *cn)
{
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
    char buf[128];

    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
        X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        if (x != NULL &&
            X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof(buf)) >
                0 &&
            strcmp(buf, cn) == 0)
            return true;
    }
    return false;
}

static int store_count(SSL_CTX *ctx)
{
    return sk_X509_OBJECT_num(X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx)));
}

static SSL_CTX *get(const char *ca_file, const char *ca_dir, bool verify)
{
    struct tls_options opt = {.ca_file = ca_file, .ca_dir = ca_dir, .verify = verify};
    struct errbuf err = {{0}};

    return tls_context_get(&opt, &err);
}

static void test_shared_and_separate(void)
{
    const char *ca = path_in("shared.pem");
    SSL_CTX *a, *b, *nv;

    put_ca(ca, "shared", false);
    a = get(ca, NULL, true);
    b = get(ca, NULL, true);
    CHECK(a != NULL && a == b); /* same settings, same files: one context */
    nv = get(ca, NULL, false);
    /* verify = false never shares a context with verify = true */
    CHECK(nv != NULL && nv != a);
    CHECK(nv != NULL && SSL_CTX_get_verify_mode(nv) == SSL_VERIFY_NONE);
    CHECK(a != NULL && (SSL_CTX_get_verify_mode(a) & SSL_VERIFY_PEER) != 0);
    CHECK(nv != NULL && store_count(nv) == 0);
    CHECK(a != NULL && store_has(a, "shared"));
    SSL_CTX_free(a);
    SSL_CTX_free(b);
    SSL_CTX_free(nv);
}

static void test_replaced_ca_file_is_seen(void)
{
    const char *ca = path_in("rotating.pem");
    SSL_CTX *one, *two, *three, *again;

    put_ca(ca, "one", false);
    one = get(ca, NULL, true);
    put_ca(ca, "two", false); /* replaced: rename over it */
    two = get(ca, NULL, true);
    CHECK(two != NULL && two != one);
    CHECK(two != NULL && store_has(two, "two") && !store_has(two, "one"));
    put_ca(ca, "three", true); /* rewritten in place: same inode */
    three = get(ca, NULL, true);
    CHECK(three != NULL && three != two);
    CHECK(three != NULL && store_has(three, "three") && !store_has(three, "two"));
    again = get(ca, NULL, true);
    CHECK(again == three);
    /* The stale contexts stay valid for whoever still holds them. */
    CHECK(one != NULL && store_has(one, "one"));
    SSL_CTX_free(one);
    SSL_CTX_free(two);
    SSL_CTX_free(three);
    SSL_CTX_free(again);
}

static void test_ca_dir_links(void)
{
    const char *dir = path_in("hashed");
    char link1[300], link2[300];
    SSL_CTX *a, *b, *c, *d;

    mkdir(dir, 0755);
    put_hash_link(dir, "four", link1, sizeof(link1));
    a = get(NULL, dir, true);
    b = get(NULL, dir, true);
    CHECK(a != NULL && a == b);
    put_hash_link(dir, "five", link2, sizeof(link2)); /* a link added */
    c = get(NULL, dir, true);
    CHECK(c != NULL && c != a);
    unlink(link1); /* a link removed: a CA withdrawn must not stay trusted */
    d = get(NULL, dir, true);
    CHECK(d != NULL && d != c);
    SSL_CTX_free(a);
    SSL_CTX_free(b);
    SSL_CTX_free(c);
    SSL_CTX_free(d);
}

static void test_system_store_override(void)
{
    const char *dir_a = path_in("sys-a"), *dir_b = path_in("sys-b");
    char link[300];
    SSL_CTX *a, *b, *a2;

    mkdir(dir_a, 0755);
    mkdir(dir_b, 0755);
    put_hash_link(dir_a, "sys-a", link, sizeof(link));
    put_hash_link(dir_b, "sys-b", link, sizeof(link));
    setenv("SSL_CERT_DIR", dir_a, 1);
    a = get(NULL, NULL, true);
    setenv("SSL_CERT_DIR", dir_b, 1);
    b = get(NULL, NULL, true);
    CHECK(a != NULL && b != NULL && a != b);
    setenv("SSL_CERT_DIR", dir_a, 1);
    a2 = get(NULL, NULL, true);
    CHECK(a2 == a);
    unsetenv("SSL_CERT_DIR");
    SSL_CTX_free(a);
    SSL_CTX_free(b);
    SSL_CTX_free(a2);
}

static void test_failure_not_cached_and_eviction(void)
{
    const char *ca = path_in("late.pem");
    SSL_CTX *ctx[TLS_CACHE_SLOTS + 3];
    char name[32];

    CHECK(get(ca, NULL, true) == NULL); /* missing file */
    put_ca(ca, "late", false);
    ctx[0] = get(ca, NULL, true);
    CHECK(ctx[0] != NULL && store_has(ctx[0], "late"));
    SSL_CTX_free(ctx[0]);
    /* More settings than slots: every answer is still right. */
    for (int i = 0; i < TLS_CACHE_SLOTS + 3; i++) {
        snprintf(name, sizeof(name), "evict%d.pem", i);
        put_ca(path_in(name), name, false);
        ctx[i] = get(path_in(name), NULL, true);
        CHECK(ctx[i] != NULL && store_has(ctx[i], name));
    }
    snprintf(name, sizeof(name), "evict%d.pem", 0);
    ctx[0] = (SSL_CTX_free(ctx[0]), get(path_in(name), NULL, true));
    CHECK(ctx[0] != NULL && store_has(ctx[0], name));
    for (int i = 0; i < TLS_CACHE_SLOTS + 3; i++)
        SSL_CTX_free(ctx[i]);
}

/* ---- fork ---- */

static volatile int stop_hammer;

static void *hammer(void *arg)
{
    const char *ca = arg;

    while (!stop_hammer) {
        SSL_CTX *c = get(ca, NULL, true);
        SSL_CTX_free(c);
    }
    return NULL;
}

/* One thread takes the cache lock in a tight loop while the main thread forks; each child must
 * get contexts (a hit on the inherited key, a build for a new one) without deadlocking on a
 * lock that was held in the parent at the moment of the fork. */
static void test_fork_while_locked(void)
{
    const char *hot = path_in("hot.pem"), *cold = path_in("cold.pem");
    pthread_t t[2];
    int ok = 0, forks = 400, tried = 0;

    put_ca(hot, "hot", false);
    put_ca(cold, "cold", false);
    SSL_CTX_free(get(hot, NULL, true));
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, hammer, (void *)hot);
    /* Stop at the first child that fails: a deadlock costs the alarm's 5 s. */
    for (int i = 0; i < forks && ok == tried; i++, tried++) {
        int status = 0;
        pid_t pid = fork();
        if (pid == 0) {
            SSL_CTX *a, *b;
            alarm(5); /* a deadlock shows as SIGALRM */
            a = get(hot, NULL, true);
            b = get(cold, NULL, true);
            _exit(a != NULL && b != NULL && store_has(a, "hot") && store_has(b, "cold") ? 0 : 1);
        }
        if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
            WEXITSTATUS(status) == 0)
            ok++;
        else
            fprintf(stderr, "fork %d: child status %#x\n", i, status);
    }
    stop_hammer = 1;
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK(ok == forks);
}

static void cleanup(void)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_shared_and_separate();
    test_replaced_ca_file_is_seen();
    test_ca_dir_links();
    test_system_store_override();
    test_failure_not_cached_and_eviction();
    test_fork_while_locked();
    cleanup();
    return check_summary("test_tls_cache");
}
