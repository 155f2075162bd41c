/* Test helper: an independent TLS 1.3 end for the SCRAM-SHA-256-PLUS tests (tls-exporter,
 * RFC 9266), which Python's ssl module cannot provide (no keying material export).
 *
 *   tls13_terminator CERT KEY BACKEND_PORT
 *
 * Listens on an ephemeral 127.0.0.1 port and prints it on stdout; accepts one connection,
 * completes a TLS 1.3 handshake (nothing older), connects to 127.0.0.1:BACKEND_PORT in clear,
 * sends it "CB <hex of the 32-byte tls-exporter value>\r\n", then relays bytes both ways until
 * either side closes. The SCRAM server itself (tests/integration/test_sasl.py) runs on the
 * backend, with this channel's binding data. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static int listen_any(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 1) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    printf("%u\n", ntohs(a.sin_port));
    fflush(stdout);
    return fd;
}

static int connect_backend(const char *port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_port = htons((unsigned short)atoi(port));
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        return -1;
    return fd;
}

static int relay(SSL *ssl, int tls_fd, int back)
{
    char buf[4096];
    struct pollfd p[2] = {{.fd = tls_fd, .events = POLLIN}, {.fd = back, .events = POLLIN}};

    for (;;) {
        int n;
        if (SSL_pending(ssl) == 0 && poll(p, 2, 30000) <= 0)
            return 1;
        if (SSL_pending(ssl) > 0 || p[0].revents) {
            n = SSL_read(ssl, buf, sizeof(buf));
            if (n <= 0 || write(back, buf, (size_t)n) != n)
                return 0;
        }
        if (p[1].revents) {
            n = (int)read(back, buf, sizeof(buf));
            if (n <= 0 || SSL_write(ssl, buf, n) != n)
                return 0;
        }
    }
}

int main(int argc, char **argv)
{
    static const char label[] = "EXPORTER-Channel-Binding";
    unsigned char cb[32];
    char line[80];
    SSL_CTX *ctx;
    SSL *ssl;
    int lfd, fd, back;

    if (argc != 4)
        return 2;
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1)
        return 3;
    lfd = listen_any();
    fd = lfd >= 0 ? accept(lfd, NULL, NULL) : -1;
    if (fd < 0)
        return 4;
    ssl = SSL_new(ctx);
    if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_accept(ssl) != 1) {
        ERR_print_errors_fp(stderr);
        return 5;
    }
    if (SSL_export_keying_material(ssl, cb, sizeof(cb), label, sizeof(label) - 1, NULL, 0, 0) != 1)
        return 6;
    back = connect_backend(argv[3]);
    if (back < 0)
        return 7;
    strcpy(line, "CB ");
    for (size_t i = 0; i < sizeof(cb); i++)
        snprintf(line + 3 + 2 * i, 3, "%02x", cb[i]);
    strcat(line, "\r\n");
    if (write(back, line, strlen(line)) != (ssize_t)strlen(line))
        return 8;
    relay(ssl, fd, back);
    SSL_shutdown(ssl);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    close(back);
    close(lfd);
    return 0;
}
