/* A whole login dialogue against a server that speaks the fuzzer's bytes. The first byte picks
 * the protocol and options; the rest is what the server sends (then it closes its side).
 * The client code under test is the real one: stream, imap and pop3 over a loopback socket.
 * The invariant: a login may succeed only if the server said a success word. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>

#include "fuzz.h"
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "imap.h"
#include "pop3.h"

static int listen_fd = -1;
static unsigned listen_port;
/* What the server sends: copied in by the fuzzing thread and out by the server thread under the
 * lock, so a connection served late never reads a buffer libFuzzer has already freed. */
#define MAX_INPUT 65536
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t server_data[MAX_INPUT];
static size_t server_len;

static void *serve(void *arg)
{
    static uint8_t copy[MAX_INPUT];
    (void)arg;
    for (;;) {
        char sink[4096];
        size_t n;
        int c = accept(listen_fd, NULL, NULL);
        if (c < 0)
            continue;
        pthread_mutex_lock(&lock);
        n = server_len;
        memcpy(copy, server_data, n);
        pthread_mutex_unlock(&lock);
        if (n == 0 || send(c, copy, n, MSG_NOSIGNAL) >= 0) {
            shutdown(c, SHUT_WR);
            while (recv(c, sink, sizeof(sink), 0) > 0)
                ;
        }
        close(c);
    }
    return NULL;
}

static void start_server(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    pthread_t t;

    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(listen_fd, 16) != 0 || getsockname(listen_fd, (struct sockaddr *)&sa, &len) != 0)
        abort();
    listen_port = ntohs(sa.sin_port);
    if (pthread_create(&t, NULL, serve, NULL) != 0)
        abort();
}

static int said_success(const uint8_t *d, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++) {
        if (memcmp(d + i, "+OK", 3) == 0 || memcmp(d + i, "OK", 2) == 0 ||
            memcmp(d + i, "ok", 2) == 0 || memcmp(d + i, "Ok", 2) == 0 ||
            memcmp(d + i, "oK", 2) == 0)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char user[] = "alice";
    static const char utf8_password[] = "gr\xc3\xbc\xc3\x9f";
    struct login_creds creds = {user, sizeof(user) - 1, "s3cret", 6};
    struct login_target t = {
        .label = "fuzz",
        .host = "127.0.0.1",
        .tls = TLS_MODE_NONE,
        .verify = true,
        .connect_timeout_ms = 2000,
        .timeout_ms = 2000,
    };
    struct login_outcome out;
    enum proto_result r;

    if (size < 1)
        return 0;
    if (listen_fd < 0)
        start_server();
    t.port = listen_port;
    t.protocol = (data[0] & 1) ? PROTOCOL_POP3 : PROTOCOL_IMAP;
    t.apop = (enum apop_mode)((data[0] >> 1) % 3);
    if (t.protocol == PROTOCOL_IMAP)
        t.apop = APOP_AUTO;
    if (data[0] & 8) {
        creds.password = utf8_password;
        creds.password_len = sizeof(utf8_password) - 1;
    }
    if (size - 1 > MAX_INPUT)
        return 0;
    pthread_mutex_lock(&lock);
    memcpy(server_data, data + 1, size - 1);
    server_len = size - 1;
    pthread_mutex_unlock(&lock);
    memset(&out, 0, sizeof(out));
    r = t.protocol == PROTOCOL_POP3 ? pop3_login(&t, &creds, NULL, &out)
                                    : imap_login(&t, &creds, NULL, &out);
    if (r == PROTO_OK && !said_success(data + 1, size - 1))
        abort(); /* a "yes" nobody said */
    return 0;
}
