/* Benchmark driver. Every mode prints one line per authentication, then a summary:
 *   SAMPLE <latency_us> <cpu_us>
 *   RESULT <n> <median_us> <p95_us> <cpu_us_per_auth> <failures>
 * Latency is wall time per authentication; CPU is the calling thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID), so a server running in another process or thread is not counted.
 *
 *   bench pam CONFDIR SERVICE USER PASSWORD N EXPECT
 *       pam_start_confdir + pam_authenticate + pam_end, N times (EXPECT: 0 success, 7 refused)
 *   bench floor PROTO HOST PORT USER PASSWORD N CAFILE
 *       the protocol's floor: a minimal client doing connect (+TLS) + greeting + login + close.
 *       PROTO: imap, imap-starttls, imaps, pop3-apop, pop3-user, pop3-stls, pop3s
 *   bench concurrent CONFDIR SERVICE USER PASSWORD THREADS PER_THREAD
 *       THREADS threads at once; prints RESULT and "THROUGHPUT <auths per second>"
 *   bench yescrypt COST N
 *       libxcrypt's yescrypt at COST (what the credential cache computes once per hit), N times
 *   bench instant PORT pam|floor ARGS...
 *       first start an instant IMAP server on 127.0.0.1:PORT in a thread of this process (it
 *       greets and says OK to everything), then run the pam or floor mode against it.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <crypt.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <security/pam_appl.h>

static double now_us(clockid_t clk)
{
    struct timespec ts;

    clock_gettime(clk, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(double *lat, const double *cpu, int n, double cpu_total, int failures)
{
    for (int i = 0; i < n; i++)
        printf("SAMPLE %.1f %.1f\n", lat[i], cpu != NULL ? cpu[i] : 0.0);
    qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
    printf("RESULT %d %.1f %.1f %.1f %d\n", n, lat[n / 2],
           lat[(n * 95) / 100 < n ? (n * 95) / 100 : n - 1], cpu_total / n, failures);
}

/* Run login(arg) once unmeasured (first-use costs are per process), then n times measured, and
 * report. login returns 1 when the outcome was the expected one. Returns the failures. */
static int measure(int n, int (*login)(void *arg), void *arg)
{
    double *lat = calloc((size_t)n, sizeof(double)), *cpus = calloc((size_t)n, sizeof(double));
    double cpu = 0;
    int failures = 0;

    if (lat == NULL || cpus == NULL)
        exit(2);
    login(arg);
    for (int i = 0; i < n; i++) {
        double t0 = now_us(CLOCK_MONOTONIC), c0 = now_us(CLOCK_THREAD_CPUTIME_ID);
        failures += !login(arg);
        cpus[i] = now_us(CLOCK_THREAD_CPUTIME_ID) - c0;
        cpu += cpus[i];
        lat[i] = now_us(CLOCK_MONOTONIC) - t0;
    }
    report(lat, cpus, n, cpu, failures);
    free(lat);
    free(cpus);
    return failures;
}

/* ---- through real libpam ---- */

struct creds {
    const char *password;
};

static int converse(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
    const struct creds *c = data;
    struct pam_response *r = calloc((size_t)n, sizeof(*r));

    if (r == NULL)
        return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF)
            r[i].resp = strdup(c->password);
    }
    *resp = r;
    return PAM_SUCCESS;
}

static int pam_once(const char *confdir, const char *service, const char *user,
                    const char *password)
{
    struct creds c = {password};
    struct pam_conv conv = {converse, &c};
    pam_handle_t *h = NULL;
    int rc = pam_start_confdir(service, user, &conv, confdir, &h);

    if (rc == PAM_SUCCESS)
        rc = pam_authenticate(h, PAM_SILENT);
    if (h != NULL)
        pam_end(h, rc);
    return rc;
}

struct pam_args {
    char **a;
    int expect;
};

static int pam_login(void *arg)
{
    const struct pam_args *p = arg;

    return pam_once(p->a[0], p->a[1], p->a[2], p->a[3]) == p->expect;
}

static int run_pam(char **a)
{
    struct pam_args p = {a, atoi(a[5])};

    return measure(atoi(a[4]), pam_login, &p) != 0;
}

/* ---- the floor: the least a client can do ---- */

struct conn {
    int fd;
    SSL *ssl;
    char buf[16384];
    size_t len;
};

static int tcp_connect(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int fd = -1, one = 1;

    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int c_write(struct conn *c, const char *s)
{
    size_t n = strlen(s);
    return c->ssl != NULL ? SSL_write(c->ssl, s, (int)n) == (int)n
                          : send(c->fd, s, n, MSG_NOSIGNAL) == (ssize_t)n;
}

/* Read until a line starting with prefix (or any +/- status line for POP3 when prefix is
 * NULL) has arrived; returns 1 if that line starts with ok. */
static int c_read_until(struct conn *c, const char *prefix, const char *ok)
{
    for (;;) {
        char *line = c->buf, *nl;
        while ((nl = memchr(line, '\n', c->len - (size_t)(line - c->buf))) != NULL) {
            int done = prefix == NULL ? (line[0] == '+' || line[0] == '-')
                                      : strncmp(line, prefix, strlen(prefix)) == 0;
            int good = strncmp(line, ok, strlen(ok)) == 0;
            size_t rest = c->len - (size_t)(nl + 1 - c->buf);
            memmove(c->buf, nl + 1, rest);
            c->len = rest;
            if (done)
                return good;
            line = c->buf;
        }
        int n = c->ssl != NULL ? SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - c->len))
                               : (int)recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
        if (n <= 0)
            return 0;
        c->len += (size_t)n;
    }
}

static int c_tls(struct conn *c, SSL_CTX *ctx, const char *host)
{
    c->len = 0;
    c->ssl = SSL_new(ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_tlsext_host_name(c->ssl, host);
    SSL_set1_host(c->ssl, host);
    return SSL_connect(c->ssl) == 1;
}

static void apop_digest(const char *greeting, const char *password, char out[33])
{
    const char *lt = strchr(greeting, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    unsigned char md[16];
    unsigned int len = 16;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    EVP_DigestInit_ex(ctx, EVP_md5(), NULL);
    if (lt != NULL && gt != NULL)
        EVP_DigestUpdate(ctx, lt, (size_t)(gt - lt) + 1);
    EVP_DigestUpdate(ctx, password, strlen(password));
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* One login; 1 when the server said yes. */
static int floor_once(const char *proto, const char *host, const char *port, const char *user,
                      const char *pw, SSL_CTX *ctx)
{
    struct conn c = {.fd = tcp_connect(host, port)};
    char cmd[1024], greeting[512] = "", digest[33];
    int ok = 0;
    int imap = strncmp(proto, "imap", 4) == 0;
    int implicit = strcmp(proto, "imaps") == 0 || strcmp(proto, "pop3s") == 0;

    if (c.fd < 0)
        return 0;
    if (implicit && !c_tls(&c, ctx, host))
        goto out;
    if (imap) {
        if (!c_read_until(&c, "* ", "* OK"))
            goto out;
        if (strcmp(proto, "imap-starttls") == 0 &&
            !(c_write(&c, "a STARTTLS\r\n") && c_read_until(&c, "a ", "a OK") &&
              c_tls(&c, ctx, host)))
            goto out;
        snprintf(cmd, sizeof(cmd), "b LOGIN \"%s\" \"%s\"\r\n", user, pw);
        ok = c_write(&c, cmd) && c_read_until(&c, "b ", "b OK");
        c_write(&c, "c LOGOUT\r\n");
        goto out;
    }
    /* POP3: keep the greeting for APOP */
    for (;;) {
        int n = c.ssl ? SSL_read(c.ssl, c.buf + c.len, (int)(sizeof(c.buf) - c.len))
                      : (int)recv(c.fd, c.buf + c.len, sizeof(c.buf) - c.len, 0);
        if (n <= 0)
            goto out;
        c.len += (size_t)n;
        char *nl = memchr(c.buf, '\n', c.len);
        if (nl != NULL) {
            size_t l = (size_t)(nl - c.buf) < sizeof(greeting) - 1 ? (size_t)(nl - c.buf)
                                                                   : sizeof(greeting) - 1;
            memcpy(greeting, c.buf, l);
            c.len = 0;
            break;
        }
    }
    if (strcmp(proto, "pop3-stls") == 0 &&
        !(c_write(&c, "STLS\r\n") && c_read_until(&c, NULL, "+OK") && c_tls(&c, ctx, host)))
        goto out;
    if (strcmp(proto, "pop3-user") == 0) {
        snprintf(cmd, sizeof(cmd), "USER %s\r\n", user);
        if (!(c_write(&c, cmd) && c_read_until(&c, NULL, "+OK")))
            goto out;
        snprintf(cmd, sizeof(cmd), "PASS %s\r\n", pw);
    } else {
        apop_digest(greeting, pw, digest);
        snprintf(cmd, sizeof(cmd), "APOP %s %s\r\n", user, digest);
    }
    ok = c_write(&c, cmd) && c_read_until(&c, NULL, "+OK");
    c_write(&c, "QUIT\r\n");
out:
    if (c.ssl != NULL) {
        SSL_shutdown(c.ssl);
        SSL_free(c.ssl);
    }
    close(c.fd);
    return ok;
}

struct floor_args {
    char **a;
    SSL_CTX *ctx;
};

static int floor_login(void *arg)
{
    const struct floor_args *f = arg;

    return floor_once(f->a[0], f->a[1], f->a[2], f->a[3], f->a[4], f->ctx);
}

static int run_floor(char **a)
{
    /* A minimal client sets up its TLS context once, as any long-running client would. */
    struct floor_args f = {a, SSL_CTX_new(TLS_client_method())};
    int failures;

    SSL_CTX_set_verify(f.ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_load_verify_locations(f.ctx, a[6], NULL);
    failures = measure(atoi(a[5]), floor_login, &f);
    SSL_CTX_free(f.ctx);
    return failures != 0;
}

/* ---- concurrency ---- */

struct worker {
    pthread_t t;
    char **a;
    int per_thread;
    double *lat;
    int failures;
};

static void *work(void *arg)
{
    struct worker *w = arg;

    for (int i = 0; i < w->per_thread; i++) {
        double t0 = now_us(CLOCK_MONOTONIC);
        w->failures += pam_once(w->a[0], w->a[1], w->a[2], w->a[3]) != PAM_SUCCESS;
        w->lat[i] = now_us(CLOCK_MONOTONIC) - t0;
    }
    return NULL;
}

static int run_concurrent(char **a)
{
    int threads = atoi(a[4]), per = atoi(a[5]), n = threads * per, failures = 0;
    struct worker *w = calloc((size_t)threads, sizeof(*w));
    double *lat = calloc((size_t)n, sizeof(double));
    double t0 = now_us(CLOCK_MONOTONIC), wall;

    for (int i = 0; i < threads; i++) {
        w[i] = (struct worker){.a = a, .per_thread = per, .lat = lat + i * per};
        pthread_create(&w[i].t, NULL, work, &w[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(w[i].t, NULL);
        failures += w[i].failures;
    }
    wall = now_us(CLOCK_MONOTONIC) - t0;
    report(lat, NULL, n, 0, failures);
    printf("THROUGHPUT %.1f\n", n / (wall / 1e6));
    free(w);
    free(lat);
    return failures != 0;
}

/* ---- an instant IMAP server in a thread of this process (its CPU is not the client's) ---- */

static int instant_fd = -1;

static void *instant_serve(void *arg)
{
    static const char greeting[] = "* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] instant\r\n";
    (void)arg;
    for (;;) {
        char buf[4096];
        ssize_t n;
        int c = accept(instant_fd, NULL, NULL);
        if (c < 0)
            continue;
        if (send(c, greeting, sizeof(greeting) - 1, MSG_NOSIGNAL) < 0) {
            close(c);
            continue;
        }
        while ((n = recv(c, buf, sizeof(buf) - 1, 0)) > 0) {
            char reply[64], *sp;
            buf[n] = '\0';
            sp = strchr(buf, ' ');
            if (sp == NULL)
                break;
            snprintf(reply, sizeof(reply), "%.*s OK done\r\n", (int)(sp - buf), buf);
            if (send(c, reply, strlen(reply), MSG_NOSIGNAL) < 0 || strstr(buf, "LOGOUT") != NULL)
                break;
        }
        close(c);
    }
    return NULL;
}

static int start_instant(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)port)};
    pthread_t t;
    int one = 1;

    instant_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(instant_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(instant_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(instant_fd, 128) != 0)
        return -1;
    return pthread_create(&t, NULL, instant_serve, NULL) == 0 ? 0 : -1;
}

/* ---- the credential cache's hash ---- */

struct yescrypt_args {
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *data;
};

static int yescrypt_once(void *arg)
{
    struct yescrypt_args *y = arg;

    return crypt_rn("bench-password", y->setting, y->data, (int)sizeof(*y->data)) != NULL;
}

static int run_yescrypt(char **a)
{
    struct yescrypt_args y;
    int rc;

    y.data = calloc(1, sizeof(*y.data));
    if (y.data == NULL || crypt_gensalt_rn("$y$", (unsigned long)atol(a[0]), NULL, 0, y.setting,
                                           (int)sizeof(y.setting)) == NULL) {
        perror("yescrypt setting");
        free(y.data);
        return 2;
    }
    rc = measure(atoi(a[1]), yescrypt_once, &y) != 0;
    free(y.data);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "instant") == 0) {
        if (start_instant(atoi(argv[2])) != 0) {
            perror("instant server");
            return 2;
        }
        argv += 2;
        argc -= 2;
    }
    if (argc == 8 && strcmp(argv[1], "pam") == 0)
        return run_pam(argv + 2);
    if (argc == 9 && strcmp(argv[1], "floor") == 0)
        return run_floor(argv + 2);
    if (argc == 8 && strcmp(argv[1], "concurrent") == 0)
        return run_concurrent(argv + 2);
    if (argc == 4 && strcmp(argv[1], "yescrypt") == 0)
        return run_yescrypt(argv + 2);
    fprintf(stderr, "usage: see the comment at the top of bench/bench.c\n");
    return 2;
}
