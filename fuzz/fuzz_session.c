/* A whole login dialogue against a server that speaks the fuzzer's bytes, in clear or behind a
 * real TLS handshake (a test CA and certificate made once per process, trusted by the client).
 * The client code under test is the real one: net, tls, stream, imap and pop3 over loopback.
 *
 * Input: two header bytes, then the server's chunks separated by 0xFF (a byte UTF-8 never
 * uses). The server is turn-based: chunk 0 is sent at once (the greeting), chunk i+1 after the
 * client's i-th command has arrived whole (a line; a LITERAL+ literal and the rest of its line
 * belong to it; commands pipelined with it, already there when it is read, share its turn).
 * With no chunk left, or when the client stays silent for a while (it waits for a line the chunk
 * did not finish), the server half-closes. Each chunk leaves in one send (one TLS record), so
 * what the client sees as sent before its command is exactly what the server sent before it.
 *   header[0]: bit 0 POP3 (else IMAP); bits 1-2 apop mode; bit 3 UTF-8 password;
 *              bits 4-5 TLS: 1 implicit, 2 STARTTLS/STLS, else none; bit 6 cram-md5 in the
 *              mechanisms list (alone, or after the SCRAM pair of header[1] bit 7)
 *   header[1]: bit 0 TLS storm (KeyUpdates before every chunk; renegotiation requests with
 *              bit 1); bit 1 TLS 1.2 only; bit 2 a password longer than an excerpt;
 *              bit 3 a non-ASCII user name (an IMAP literal); bit 6 a password holding '"',
 *              '\\', '{', '}' and a trailing space (escaped in an IMAP quoted string);
 *              bit 4 a client address to
 *              forward (IMAP ID; POP3 never sends XCLIENT); bit 5 no allow_cleartext (the
 *              fuzzer listens on a high loopback port: the cleartext rule then refuses); bit 7
 *              mechanisms = {scram-sha-256, scram-sha-1}, a list of only proof-checking
 *              mechanisms
 * Markers in a chunk stand for what a server that echoes would send but the fuzzer cannot know
 * (the client's nonce is random): "%F" becomes a SCRAM server-first message for the client's
 * nonce (base64 of r=<client nonce>fz,s=<salt>,i=64), so the client goes on to its proof;
 * "%D" the client's last message base64-decoded (an echo of the CRAM-MD5 response or the SCRAM
 * client-final, proof included); "%E" the client's last line as it came.
 *
 * Both sides are recorded and the oracles check the rules from the transcript, independently of
 * the client's own bookkeeping:
 * - success needs the credentials on the wire and the server's acceptance sent after them:
 *   IMAP a login command's own tag with OK (then space or end of line) at the start of a
 *   response line outside any literal, in a chunk sent after the credentials arrived; POP3
 *   "+OK" (then space or end of line) as the first line sent after PASS/APOP/AUTH;
 * - POP3 late lines: answers carry no tag, so a line pairs with a command only by counting, and
 *   a server may send a line late (the turn-based server here cannot say which command a line
 *   in a chunk answers: a line in the credentials' turn may be a late one of an earlier
 *   command's). Counting holds only for commands whose answer has a fixed shape (USER, APOP,
 *   PASS, AUTH: one line; CAPA: one, or a list to "."; STLS: one, then TLS): a success after any
 *   other command on the connection (XCLIENT, any extension) is a broken invariant;
 * - after a synchronizing literal announcement ({n}, no LITERAL+) no byte follows before the
 *   server answered, and the password follows only if that answer held a "+";
 * - apop = only: nothing of the password (raw or base64) on the wire;
 * - the outcome's creds_sent is honest: false means nothing credential-derived was sent;
 * - with a SCRAM-only mechanisms list: never success (a valid server signature v= is an
 *   HMAC-SHA-256/SHA-1 over the client's random nonce, out of the fuzzer's reach; fuzz_sasl
 *   checks the honest case with a fixed nonce and an independent computation), and neither the
 *   password nor its PLAIN or LOGIN form on the wire;
 * - an ID line goes only when a client address is to be forwarded, in the same write (turn) as
 *   the login command; a POP3 XCLIENT line never goes (see the late lines above);
 * - no log line (the debug logger is on) holds the password, its base64 forms, the base64 of
 *   the SASL PLAIN blob, its IMAP-escaped form (a quoted string's inside) or the APOP digest
 *   the client sent; nor (after the login, from an independent model: RFC 2195 and RFC 5802 on
 *   OpenSSL's HMAC and PBKDF2, not src/sasl) the CRAM-MD5 digest of any challenge the server
 *   sent or the one the client sent, in hex (either case) or as the base64 response, nor the
 *   SCRAM ClientProof, ClientKey or SaltedPassword (base64 or hex) or the base64 client-final
 *   message; the reason holds none of them either;
 * - a list with cram-md5 alone: neither the password nor its PLAIN or LOGIN form on the wire;
 * - a SCRAM ClientProof on the wire is the one RFC 5802 gives for the test password and the
 *   transcript (SHA-1 or SHA-256). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "fuzz.h"
#include "imap.h"
#include "pop3.h"
#include "sasl/mech.h"

#define FUZZ_MAX_INPUT 65536
#define MAX_CHUNKS 64
#define MAX_CONNS 4
#define CLIENT_MAX 65536
#define SERVER_MAX (FUZZ_MAX_INPUT + 1024)
#define IDLE_MS 20 /* the client waits for something the chunk did not finish */

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_session invariant broken: %s\n", why);
    abort();
}

/* ---- the test PKI: a CA and a certificate for 127.0.0.1, made once ---- */

static SSL_CTX *server_ctx;
static char ca_path[64];

static X509 *make_cert(EVP_PKEY *key, EVP_PKEY *signer, X509 *issuer, const char *cn, bool ca)
{
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    if (x == NULL)
        return NULL;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 1 : 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 7L * 86400);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(issuer != NULL ? issuer : x));
    X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, ca ? NID_basic_constraints : NID_subject_alt_name,
                              ca ? "critical,CA:TRUE" : "IP:127.0.0.1");
    if (ext == NULL || !X509_add_ext(x, ext, -1) || !X509_sign(x, signer, EVP_sha256()))
        fail("cannot make the test certificates");
    X509_EXTENSION_free(ext);
    return x;
}

static void make_pki(void)
{
    EVP_PKEY *ca_key = EVP_EC_gen("P-256");
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *ca = make_cert(ca_key, ca_key, NULL, "fuzz CA", true);
    X509 *leaf = make_cert(key, ca_key, ca, "127.0.0.1", false);
    char tmp[] = "/tmp/fuzz-session-ca-XXXXXX";
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(dup(fd), "w") : NULL;

    /* The client reads the CA by path: hand it /proc/self/fd/N of a file already unlinked, so
     * nothing is left behind however the process ends (libFuzzer's exits skip atexit). */
    if (f == NULL || !PEM_write_X509(f, ca) || fclose(f) != 0 || unlink(tmp) != 0)
        fail("cannot write the test CA");
    snprintf(ca_path, sizeof(ca_path), "/proc/self/fd/%d", fd);
    server_ctx = SSL_CTX_new(TLS_server_method());
    if (server_ctx == NULL || SSL_CTX_use_certificate(server_ctx, leaf) != 1 ||
        SSL_CTX_use_PrivateKey(server_ctx, key) != 1)
        fail("cannot make the server TLS context");
    X509_free(ca);
    X509_free(leaf);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(key);
}

/* ---- what one iteration is, and what happened ---- */

struct conn_log {
    uint8_t srv[SERVER_MAX]; /* everything the server sent, in clear */
    size_t srv_len;
    size_t chunk_at[MAX_CHUNKS + 1]; /* where in srv the chunk sent after turn i-1 starts */
    size_t n_chunks;
    uint8_t cli[CLIENT_MAX]; /* everything the client sent, in clear */
    size_t cli_len;
    size_t turn_end[MAX_CHUNKS + 1]; /* where in cli the client's turn i ends */
    size_t n_turns;
    bool sent_early; /* bytes followed a synchronizing literal before any answer */
};

struct iteration {
    bool pop3;
    int tls; /* TLS_MODE_* */
    bool storm;
    bool tls12;
    bool forward;    /* a client address is to be forwarded */
    bool cleartext;  /* allow_cleartext */
    bool scram_only; /* mechanisms = {scram-sha-256, scram-sha-1} */
    bool cram_only;  /* mechanisms = {cram-md5} */
    /* The SCRAM exchange the "%F" marker answered: the client's first message without its GS2
     * header, and the server-first message sent for it (the model needs both). */
    char scram_bare[1024];
    size_t scram_bare_len;
    char scram_server_first[1200];
    size_t scram_server_first_len;
    const uint8_t *chunk[MAX_CHUNKS + 1];
    size_t chunk_len[MAX_CHUNKS + 1];
    size_t n_chunks;
    size_t next_chunk; /* shared by the connections of one login (POP3 reconnects) */
    struct conn_log conns[MAX_CONNS];
    size_t n_conns;
};

static struct iteration it;
static uint8_t input_copy[FUZZ_MAX_INPUT];
static int listen_fd = -1;
static unsigned listen_port;
static atomic_bool stop_serving;

static void start_listening(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);

    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(listen_fd, 16) != 0 || getsockname(listen_fd, (struct sockaddr *)&sa, &len) != 0)
        fail("cannot listen on loopback");
    listen_port = ntohs(sa.sin_port);
}

/* ---- the server side of one connection ---- */

struct peer {
    int fd;
    SSL *ssl;
    struct conn_log *log;
    size_t in_len;
    bool closed_write;
    uint8_t in[CLIENT_MAX]; /* last: serve() clears what comes before it */
};

static bool wait_readable(struct peer *p, int ms)
{
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};

    if (p->ssl != NULL && SSL_pending(p->ssl) > 0)
        return true;
    return poll(&pfd, 1, ms) > 0;
}

/* The server's sockets are non-blocking once connected (TLS records that carry no data, such as
 * KeyUpdates, must not leave it blocked in a read). > 0: bytes; 0: EOF; -1: error; -2: nothing
 * yet. */
static ssize_t peer_recv(struct peer *p, uint8_t *buf, size_t cap)
{
    ssize_t n;

    if (p->ssl == NULL) {
        n = recv(p->fd, buf, cap, 0);
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? -2 : n;
    }
    n = SSL_read(p->ssl, buf, (int)cap);
    if (n > 0)
        return n;
    switch (SSL_get_error(p->ssl, (int)n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return -2;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        return -1;
    }
}

static void peer_send(struct peer *p, const uint8_t *buf, size_t len)
{
    struct pollfd pfd = {.fd = p->fd, .events = POLLOUT};

    while (len > 0) {
        ssize_t n =
            p->ssl == NULL ? send(p->fd, buf, len, MSG_NOSIGNAL) : SSL_write(p->ssl, buf, (int)len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
            continue;
        }
        if (p->ssl != NULL) {
            int e = SSL_get_error(p->ssl, (int)n);
            ERR_clear_error();
            if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
                return;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return;
        }
        if (poll(&pfd, 1, 1000) <= 0)
            return;
    }
}

static void half_close(struct peer *p)
{
    if (p->closed_write)
        return;
    p->closed_write = true;
    if (p->ssl != NULL)
        SSL_shutdown(p->ssl);
    shutdown(p->fd, SHUT_WR);
}

/* Storms between chunks: KeyUpdates that ask for one back (TLS 1.3), or renegotiation
 * requests (TLS 1.2; the client refuses them). */
static void storm(struct peer *p)
{
    for (int i = 0; i < 8 && p->ssl != NULL; i++) {
        if (SSL_version(p->ssl) >= TLS1_3_VERSION)
            SSL_key_update(p->ssl, SSL_KEY_UPDATE_REQUESTED);
        else if (SSL_renegotiate(p->ssl) != 1)
            break;
        if (SSL_do_handshake(p->ssl) != 1)
            break;
    }
    ERR_clear_error();
}

/* ---- markers: what an echoing server would send (see the top) ---- */

#define SCRAM_SALT_B64 "ZnV6ei1zYWx0LTE2Ynl0ZQ==" /* "fuzz-salt-16byte" */
#define SCRAM_ITERATIONS 64 /* few: the server side gives up after IDLE_MS of silence */

/* Strict base64 (padded, a multiple of 4) of text[0, len) into out (cap bytes); the decoded
 * length, or -1. */
static long b64_decode(const uint8_t *text, size_t len, uint8_t *out, size_t cap)
{
    int n;
    size_t pad = 0;

    if (len == 0 || len % 4 != 0 || len / 4 * 3 > cap || len > INT32_MAX)
        return -1;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = text[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || (c == '=' && i + 2 >= len)))
            return -1;
    }
    while (pad < 2 && text[len - 1 - pad] == '=')
        pad++;
    n = EVP_DecodeBlock(out, text, (int)len);
    return n < 0 || (size_t)n < pad ? -1 : (long)((size_t)n - pad);
}

/* The line of cli[0, end) that ends at end (CR LF removed): *len bytes at the return value. */
static const uint8_t *line_before(const uint8_t *cli, size_t end, size_t *len)
{
    size_t s;

    while (end > 0 && (cli[end - 1] == '\n' || cli[end - 1] == '\r'))
        end--;
    s = end;
    while (s > 0 && cli[s - 1] != '\n')
        s--;
    *len = end - s;
    return cli + s;
}

/* A client line's last word (after the last space), base64-decoded into out; -1 if it is not
 * base64. */
static long decode_last_word(const uint8_t *line, size_t len, uint8_t *out, size_t cap)
{
    size_t s = len;

    while (s > 0 && line[s - 1] != ' ')
        s--;
    return b64_decode(line + s, len - s, out, cap);
}

/* The client's most recent SCRAM client-first message on this connection: sets it.scram_bare
 * (the message after its GS2 header) and returns the nonce in it (r=...), or NULL. */
static const char *client_nonce(const struct conn_log *l, size_t *nonce_len)
{
    static uint8_t msg[2048];
    const char *found = NULL;

    for (size_t end = l->cli_len; end > 0 && found == NULL;) {
        size_t len;
        const uint8_t *line = line_before(l->cli, end, &len);
        long n = decode_last_word(line, len, msg, sizeof(msg) - 1);
        end = (size_t)(line - l->cli);
        if (n < 5 || (msg[0] != 'n' && msg[0] != 'y' && msg[0] != 'p'))
            continue;
        msg[n] = '\0';
        const char *bare = strchr((const char *)msg, ',');
        bare = bare != NULL ? strchr(bare + 1, ',') : NULL;
        const char *r = bare != NULL ? strstr(bare, ",r=") : NULL;
        if (r == NULL || strlen(bare + 1) >= sizeof(it.scram_bare))
            continue;
        it.scram_bare_len = strlen(bare + 1);
        memcpy(it.scram_bare, bare + 1, it.scram_bare_len);
        found = r + 3;
        *nonce_len = strcspn(found, ",");
    }
    return found;
}

/* Append what marker m stands for to out (at *o, cap bytes); false when there is nothing to
 * put there yet (the marker then stays as it is). */
static bool expand_marker(const struct conn_log *l, char m, uint8_t *out, size_t *o, size_t cap)
{
    static uint8_t buf[2048];
    size_t len, nonce_len = 0;
    const uint8_t *line = line_before(l->cli, l->cli_len, &len);
    long n = -1;

    if (m == 'E') {
        memcpy(buf, line, len < sizeof(buf) ? len : sizeof(buf));
        n = (long)(len < sizeof(buf) ? len : sizeof(buf));
    } else if (m == 'D') {
        n = decode_last_word(line, len, buf, sizeof(buf));
    } else if (m == 'F') {
        const char *nonce = client_nonce(l, &nonce_len);
        int sf = nonce == NULL ? -1
                               : snprintf(it.scram_server_first, sizeof(it.scram_server_first),
                                          "r=%.*sfz,s=" SCRAM_SALT_B64 ",i=%d", (int)nonce_len,
                                          nonce, SCRAM_ITERATIONS);
        if (sf > 0 && (size_t)sf < sizeof(it.scram_server_first) && (size_t)sf * 4 / 3 + 4 < cap) {
            it.scram_server_first_len = (size_t)sf;
            n = EVP_EncodeBlock(buf, (const uint8_t *)it.scram_server_first, sf);
        }
    }
    if (n < 0 || *o + (size_t)n > cap)
        return false;
    memcpy(out + *o, buf, (size_t)n);
    *o += (size_t)n;
    return true;
}

/* chunk[0, n) with its markers expanded, into out (cap bytes); the length. */
static size_t expand_markers(const struct conn_log *l, const uint8_t *chunk, size_t n, uint8_t *out,
                             size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n && o < cap; i++) {
        if (chunk[i] == '%' && i + 1 < n && memchr("FDE", chunk[i + 1], 3) != NULL &&
            expand_marker(l, (char)chunk[i + 1], out, &o, cap)) {
            i++;
            continue;
        }
        out[o++] = chunk[i];
    }
    return o;
}

/* Send the next chunk, all of it in one send (one record), and record it. */
static void send_chunk(struct peer *p)
{
    static uint8_t chunk[SERVER_MAX];
    struct conn_log *l = p->log;
    size_t i = it.next_chunk;
    size_t len;

    if (p->closed_write)
        return;
    if (i >= it.n_chunks) {
        half_close(p);
        return;
    }
    it.next_chunk++;
    if (it.storm)
        storm(p);
    len = expand_markers(l, it.chunk[i], it.chunk_len[i], chunk, sizeof(chunk));
    if (l->n_chunks <= MAX_CHUNKS)
        l->chunk_at[l->n_chunks++] = l->srv_len;
    if (l->srv_len + len <= sizeof(l->srv)) {
        memcpy(l->srv + l->srv_len, chunk, len);
        l->srv_len += len;
    }
    peer_send(p, chunk, len);
}

/* A trailing "{digits}" or "{digits+}" on a line: *plus tells which; -1 when there is none. */
static long trailing_literal(const uint8_t *line, size_t len, bool *plus)
{
    size_t i;
    long n = 0;

    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len < 3 || line[len - 1] != '}')
        return -1;
    i = len - 1;
    *plus = line[i - 1] == '+';
    if (*plus)
        i--;
    size_t end = i;
    while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
        i--;
    if (i == 0 || line[i - 1] != '{' || i == end || end - i > 6)
        return -1;
    for (size_t k = i; k < end; k++)
        n = n * 10 + (line[k] - '0');
    return n;
}

/* Length of the client's next whole command in p->in (a line; LITERAL+ literals and the rest of
 * their line included), 0 when it is not all there. *sync: it ends with a synchronizing literal
 * announcement (the client must now wait). */
static size_t whole_command(const struct peer *p, bool *sync)
{
    size_t pos = 0;

    *sync = false;
    for (;;) {
        const uint8_t *nl = memchr(p->in + pos, '\n', p->in_len - pos);
        bool plus = false;
        long lit;
        if (nl == NULL)
            return 0;
        size_t end = (size_t)(nl - p->in) + 1;
        lit = it.pop3 ? -1 : trailing_literal(p->in + pos, end - 1 - pos, &plus);
        if (lit < 0 || !plus) {
            *sync = lit >= 0;
            return end;
        }
        if (p->in_len - end < (size_t)lit)
            return 0;
        pos = end + (size_t)lit;
    }
}

/* Move the first n bytes of what arrived into the client's log. */
static void consume(struct peer *p, size_t n)
{
    struct conn_log *l = p->log;

    if (l->cli_len + n <= sizeof(l->cli)) {
        memcpy(l->cli + l->cli_len, p->in, n);
        l->cli_len += n;
    }
    memmove(p->in, p->in + n, p->in_len - n);
    p->in_len -= n;
}

/* Read the client's next command; false at EOF or error. After IDLE_MS of silence with a
 * command still incomplete the server half-closes (the client waits for more of a reply). */
static bool read_command(struct peer *p)
{
    struct conn_log *l = p->log;
    bool sync;
    size_t n;

    while ((n = whole_command(p, &sync)) == 0) {
        ssize_t got;
        if (p->in_len == sizeof(p->in))
            return false;
        if (!wait_readable(p, p->closed_write ? 3000 : IDLE_MS)) {
            if (p->closed_write)
                return false;
            half_close(p);
            continue;
        }
        got = peer_recv(p, p->in + p->in_len, sizeof(p->in) - p->in_len);
        if (got == -2)
            continue;
        if (got <= 0)
            return false;
        p->in_len += (size_t)got;
    }
    consume(p, n);
    /* Whole commands that had already arrived with it (pipelined: CAPABILITY and LOGIN after
     * STARTTLS) belong to the same turn: the next chunk answers them together, as a server that
     * reads what has arrived would, and it was sent after all of them arrived. */
    while (!sync && p->in_len > 0 && (n = whole_command(p, &sync)) > 0)
        consume(p, n);
    if (l->n_turns <= MAX_CHUNKS)
        l->turn_end[l->n_turns++] = l->cli_len;
    /* After "{n}" the client must wait for "+": anything already here came too early. */
    if (sync && p->in_len > 0)
        l->sent_early = true;
    return true;
}

static bool is_starttls(const struct conn_log *l)
{
    size_t start = l->n_turns > 1 ? l->turn_end[l->n_turns - 2] : 0;
    const char *c = (const char *)l->cli + start;
    size_t n = l->cli_len - start;

    if (it.pop3)
        return n >= 4 && strncasecmp(c, "STLS", 4) == 0;
    return memmem(c, n, " STARTTLS", 9) != NULL;
}

/* The handshake runs blocking, bounded by a receive timeout; the connection is non-blocking
 * after it. */
static bool tls_accept(struct peer *p)
{
    struct timeval tv = {.tv_sec = 2};

    fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) & ~O_NONBLOCK);
    setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    p->ssl = SSL_new(server_ctx);
    if (p->ssl == NULL)
        return false;
    if (it.tls12)
        SSL_set_max_proto_version(p->ssl, TLS1_2_VERSION);
    SSL_set_fd(p->ssl, p->fd);
    p->in_len = 0; /* what came before the handshake is not the client's */
    if (SSL_accept(p->ssl) != 1) {
        ERR_clear_error();
        return false;
    }
    return fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) | O_NONBLOCK) == 0;
}

static void serve(int fd, struct conn_log *l)
{
    static struct peer p;
    int one = 1;

    memset(&p, 0, offsetof(struct peer, in));
    p.fd = fd;
    p.log = l;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (it.tls != TLS_MODE_IMPLICIT)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (it.tls == TLS_MODE_IMPLICIT && !tls_accept(&p))
        goto out;
    send_chunk(&p);
    while (read_command(&p)) {
        send_chunk(&p);
        if (it.tls == TLS_MODE_STARTTLS && p.ssl == NULL && is_starttls(l) && !p.closed_write &&
            !tls_accept(&p))
            goto out;
    }
out:
    if (p.ssl != NULL)
        SSL_free(p.ssl);
    ERR_clear_error();
    close(fd);
}

static void *serve_iteration(void *arg)
{
    (void)arg;
    for (;;) {
        struct pollfd pfd = {.fd = listen_fd, .events = POLLIN};
        bool stopping = atomic_load(&stop_serving);
        int c;
        if (poll(&pfd, 1, stopping ? 0 : 20) <= 0) {
            if (stopping)
                return NULL;
            continue;
        }
        c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        if (it.n_conns < MAX_CONNS)
            serve(c, &it.conns[it.n_conns++]);
        else
            close(c);
    }
}

/* ---- the logger: every line the client logs, debug traces included ---- */

static char log_text[1 << 20];
static size_t log_len;
struct secret_forms {
    char password[2048];
    char b64_password[2048];
    char b64_plain[2048];
    char escaped[4096]; /* the IMAP quoted string's inside: '"' and '\\' escaped */
    char user[SASL_USER_MAX + 1];
};
static struct secret_forms forms;

static bool holds_form(const char *text, size_t len, const char *form)
{
    return form[0] != '\0' && memmem(text, len, form, strlen(form)) != NULL;
}

MA_PRINTF(3, 0)
static void sink(void *ctx, int priority, const char *fmt, va_list ap)
{
    char line[4096];
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;

    (void)ctx;
    (void)priority;
    if (holds_form(line, len, forms.password) || holds_form(line, len, forms.b64_password) ||
        holds_form(line, len, forms.b64_plain) || holds_form(line, len, forms.escaped)) {
        fprintf(stderr, "logged: %s\n", line);
        fail("a secret in a log line");
    }
    if (log_len + len + 1 < sizeof(log_text)) {
        memcpy(log_text + log_len, line, len);
        log_len += len;
        log_text[log_len++] = '\n';
    }
}

static void b64_unpadded(const unsigned char *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);

    while (len > 0 && out[len - 1] == '=')
        out[--len] = '\0';
}

static void make_forms(const struct login_creds *c)
{
    unsigned char blob[2048];
    size_t n = 0;

    memset(&forms, 0, sizeof(forms));
    memcpy(forms.password, c->password, c->password_len);
    memcpy(forms.user, c->user, c->user_len);
    for (size_t i = 0, o = 0; i < c->password_len; i++) {
        if (c->password[i] == '"' || c->password[i] == '\\')
            forms.escaped[o++] = '\\';
        forms.escaped[o++] = c->password[i];
    }
    b64_unpadded((const unsigned char *)c->password, c->password_len, forms.b64_password);
    blob[n++] = '\0';
    memcpy(blob + n, c->user, c->user_len);
    n += c->user_len;
    blob[n++] = '\0';
    memcpy(blob + n, c->password, c->password_len);
    n += c->password_len;
    b64_unpadded(blob, n, forms.b64_plain);
}

/* ---- the oracles ---- */

static bool has(const uint8_t *hay, size_t n, const char *needle)
{
    return needle[0] != '\0' && memmem(hay, n, needle, strlen(needle)) != NULL;
}

/* ---- the mechanisms' derived secrets, from an independent model (RFC 2195, RFC 5802) ----
 * Computed after the login from the transcript and the fixed test credentials with OpenSSL's
 * HMAC, digests and PBKDF2 (not src/sasl), then looked for in every log line and the reason. */

struct derived_form {
    char text[256];
    bool nocase;     /* a hex digest: either case */
    bool credential; /* the CRAM-MD5 response as it goes on the wire: a login's credentials */
    const char *what;
};
static struct derived_form derived[512];
static size_t n_derived;

static bool add_derived(const char *what, const char *text, size_t len, bool nocase)
{
    struct derived_form *d = &derived[n_derived];

    if (n_derived >= MA_ARRAY_LEN(derived) || len == 0 || len >= sizeof(d->text))
        return false;
    memcpy(d->text, text, len);
    d->text[len] = '\0';
    d->nocase = nocase;
    d->credential = false;
    d->what = what;
    n_derived++;
    return true;
}

static void add_hex(const char *what, const uint8_t *bin, size_t n)
{
    char hex[2 * EVP_MAX_MD_SIZE + 1];

    for (size_t i = 0; i < n && i < EVP_MAX_MD_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", bin[i]);
    add_derived(what, hex, 2 * n, true);
}

/* The base64 of bin[0, n), without its padding (a prefix of any padded or unpadded form). */
static bool add_b64(const char *what, const uint8_t *bin, size_t n)
{
    char b64[(SASL_MSG_MAX + 2) / 3 * 4 + 1];

    if (n > SASL_MSG_MAX)
        return false;
    b64_unpadded(bin, n, b64);
    return add_derived(what, b64, strlen(b64), false);
}

/* Whether hay holds a CRAM-MD5 response the model computed (a credential on the wire). */
static bool has_cram_response(const uint8_t *hay, size_t n)
{
    for (size_t i = 0; i < n_derived; i++) {
        if (derived[i].credential && has(hay, n, derived[i].text))
            return true;
    }
    return false;
}

static bool holds_nocase(const char *hay, size_t n, const char *needle)
{
    size_t w = strlen(needle);

    for (size_t i = 0; w > 0 && i + w <= n; i++) {
        if (strncasecmp(hay + i, needle, w) == 0)
            return true;
    }
    return false;
}

/* CRAM-MD5: HMAC-MD5(password, challenge) for every "+ " line any server sent (whatever the
 * client made of it), and the digest of every "user <32 hex>" response the client sent. */
static void model_cram(void)
{
    static uint8_t msg[SASL_MSG_MAX + 1];

    for (size_t c = 0; c < it.n_conns; c++) {
        const struct conn_log *l = &it.conns[c];
        for (size_t end = l->srv_len; end > 0;) {
            size_t len;
            const uint8_t *line = line_before(l->srv, end, &len);
            long n = len > 2 && line[0] == '+' && line[1] == ' '
                         ? b64_decode(line + 2, len - 2, msg, sizeof(msg))
                         : -1;
            uint8_t mac[EVP_MAX_MD_SIZE];
            unsigned mac_len = 0;
            char resp[SASL_USER_MAX + 2 + 2 * 16 + 1];
            end = (size_t)(line - l->srv);
            if (n < 0 || HMAC(EVP_md5(), forms.password, (int)strlen(forms.password), msg,
                              (size_t)n, mac, &mac_len) == NULL)
                continue;
            add_hex("the CRAM-MD5 digest (hex)", mac, mac_len);
            int r = snprintf(resp, sizeof(resp), "%s ", forms.user);
            for (unsigned k = 0; r > 0 && k < mac_len && (size_t)r + 3 <= sizeof(resp); k++)
                r += snprintf(resp + r, 3, "%02x", mac[k]);
            if (r > 0 && (size_t)r < sizeof(resp) &&
                add_b64("the CRAM-MD5 response (base64)", (const uint8_t *)resp, (size_t)r))
                derived[n_derived - 1].credential = true;
        }
        for (size_t end = l->cli_len; end > 0;) {
            size_t len, ulen = strlen(forms.user);
            const uint8_t *line = line_before(l->cli, end, &len);
            long n = decode_last_word(line, len, msg, sizeof(msg));
            end = (size_t)(line - l->cli);
            if (n == (long)(ulen + 33) && memcmp(msg, forms.user, ulen) == 0 && msg[ulen] == ' ')
                add_derived("the CRAM-MD5 digest the client sent", (const char *)msg + ulen + 1, 32,
                            true);
        }
    }
}

/* The client-final message (c=...,r=...,p=...) the client sent last, decoded into msg (cap
 * bytes, NUL-terminated); its length, or -1. */
static long client_final(uint8_t *msg, size_t cap)
{
    for (size_t c = it.n_conns; c > 0; c--) {
        const struct conn_log *l = &it.conns[c - 1];
        for (size_t end = l->cli_len; end > 0;) {
            size_t len;
            const uint8_t *line = line_before(l->cli, end, &len);
            long n = decode_last_word(line, len, msg, cap - 1);
            end = (size_t)(line - l->cli);
            if (n < 2 || memcmp(msg, "c=", 2) != 0)
                continue;
            msg[n] = '\0';
            if (strstr((const char *)msg, ",p=") != NULL)
                return n;
        }
    }
    return -1;
}

/* RFC 5802 with md: SaltedPassword, ClientKey and ClientProof for auth[0, auth_len). */
static bool scram_proof(const EVP_MD *md, const char *auth, size_t auth_len, uint8_t *salted,
                        uint8_t *ckey, uint8_t *proof)
{
    uint8_t salt[32], skey[EVP_MAX_MD_SIZE], sig[EVP_MAX_MD_SIZE];
    long salt_len =
        b64_decode((const uint8_t *)SCRAM_SALT_B64, strlen(SCRAM_SALT_B64), salt, sizeof(salt));
    int dlen = EVP_MD_get_size(md);
    unsigned n = 0;

    if (salt_len < 0 ||
        PKCS5_PBKDF2_HMAC(forms.password, (int)strlen(forms.password), salt, (int)salt_len,
                          SCRAM_ITERATIONS, md, dlen, salted) != 1 ||
        HMAC(md, salted, dlen, (const uint8_t *)"Client Key", 10, ckey, &n) == NULL ||
        EVP_Digest(ckey, (size_t)dlen, skey, NULL, md, NULL) != 1 ||
        HMAC(md, skey, dlen, (const uint8_t *)auth, auth_len, sig, &n) == NULL)
        return false;
    for (int i = 0; i < dlen; i++)
        proof[i] = ckey[i] ^ sig[i];
    return true;
}

/* SCRAM: for the exchange a "%F" marker answered, the proof RFC 5802 gives (SHA-1 or SHA-256,
 * whichever the client used) must be the one on the wire; then it, ClientKey, SaltedPassword and
 * the client-final message are secrets. */
static void model_scram(void)
{
    static uint8_t msg[SASL_MSG_MAX + 1];
    static char auth[3 * SASL_MSG_MAX];
    const EVP_MD *mds[] = {EVP_sha1(), EVP_sha256()};
    char want_r[sizeof(it.scram_server_first)];
    long n = it.scram_server_first_len > 0 ? client_final(msg, sizeof(msg)) : -1;
    const char *p, *r;
    bool matched = false;

    if (n < 0)
        return;
    p = strstr((const char *)msg, ",p=");
    r = strstr((const char *)msg, ",r=");
    /* Only the exchange the recorded server-first belongs to (same nonce). */
    snprintf(want_r, sizeof(want_r), ",%.*s,", (int)strcspn(it.scram_server_first, ","),
             it.scram_server_first);
    if (r == NULL || strncmp(r, want_r, strlen(want_r)) != 0)
        return;
    int a = snprintf(auth, sizeof(auth), "%.*s,%.*s,%.*s", (int)it.scram_bare_len, it.scram_bare,
                     (int)it.scram_server_first_len, it.scram_server_first,
                     (int)(p - (const char *)msg), (const char *)msg);
    if (a < 0 || (size_t)a >= sizeof(auth))
        return;
    for (size_t i = 0; i < MA_ARRAY_LEN(mds) && !matched; i++) {
        uint8_t salted[EVP_MAX_MD_SIZE], ckey[EVP_MAX_MD_SIZE], proof[EVP_MAX_MD_SIZE];
        char b64[2 * EVP_MAX_MD_SIZE];
        size_t dlen = (size_t)EVP_MD_get_size(mds[i]);
        if (!scram_proof(mds[i], auth, (size_t)a, salted, ckey, proof))
            fail("OpenSSL failed in the SCRAM model");
        EVP_EncodeBlock((uint8_t *)b64, proof, (int)dlen);
        if (strncmp(p + 3, b64, strlen(b64)) != 0 ||
            (p[3 + strlen(b64)] != '\0' && p[3 + strlen(b64)] != ','))
            continue;
        matched = true;
        add_b64("the SCRAM ClientProof (base64)", proof, dlen);
        add_hex("the SCRAM ClientProof (hex)", proof, dlen);
        add_b64("the SCRAM ClientKey (base64)", ckey, dlen);
        add_hex("the SCRAM ClientKey (hex)", ckey, dlen);
        add_b64("the SCRAM SaltedPassword (base64)", salted, dlen);
        add_hex("the SCRAM SaltedPassword (hex)", salted, dlen);
        add_b64("the SCRAM client-final message (base64)", msg, (size_t)n);
    }
    if (!matched)
        fail("the SCRAM ClientProof on the wire is not the one RFC 5802 gives for the test "
             "password");
}

static void model_derived_secrets(void)
{
    n_derived = 0;
    model_cram();
    model_scram();
}

static void check_derived_secrets(const struct login_outcome *o)
{
    for (size_t i = 0; i < n_derived; i++) {
        const struct derived_form *d = &derived[i];
        bool in_log = d->nocase ? holds_nocase(log_text, log_len, d->text)
                                : memmem(log_text, log_len, d->text, strlen(d->text)) != NULL;
        bool in_reason = d->nocase ? holds_nocase(o->reason.text, strlen(o->reason.text), d->text)
                                   : strstr(o->reason.text, d->text) != NULL;
        if (in_log || in_reason) {
            fprintf(stderr, "%s in the %s: %s\n", d->what, in_log ? "log" : "reason", d->text);
            fail("a mechanism's password-derived secret in a log line or the reason");
        }
    }
}

/* A server line: where it starts and how long it is (CR LF, or LF, removed; one CR at most). */
struct srv_line {
    size_t at;
    const uint8_t *text;
    size_t len;
};

/* The response lines of an IMAP server stream, literals of untagged responses skipped (what a
 * literal holds is data, never a response line). Returns how many. */
static size_t imap_lines(const struct conn_log *l, struct srv_line *out, size_t cap)
{
    size_t pos = 0;
    size_t n = 0;

    while (pos < l->srv_len && n < cap) {
        const uint8_t *nl = memchr(l->srv + pos, '\n', l->srv_len - pos);
        bool plus = false;
        if (nl == NULL)
            break;
        size_t len = (size_t)(nl - (l->srv + pos));
        out[n] = (struct srv_line){pos, l->srv + pos, len};
        if (len > 0 && l->srv[pos + len - 1] == '\r')
            out[n].len--;
        bool untagged = len >= 2 && l->srv[pos] == '*' && l->srv[pos + 1] == ' ';
        n++;
        pos += len + 1;
        /* An untagged line ending in {N}: N bytes of data, then the line goes on (and may
         * announce another literal). */
        for (long lit = untagged ? trailing_literal(nl - len, len, &plus) : -1; lit >= 0 && !plus;
             lit = trailing_literal(nl - len, len, &plus)) {
            pos += (size_t)lit;
            if (pos >= l->srv_len)
                return n;
            nl = memchr(l->srv + pos, '\n', l->srv_len - pos);
            if (nl == NULL)
                return n;
            len = (size_t)(nl - (l->srv + pos));
            pos += len + 1;
        }
    }
    return n;
}

static bool starts_word(const uint8_t *text, size_t len, const char *word)
{
    size_t w = strlen(word);

    return len >= w && strncasecmp((const char *)text, word, w) == 0 &&
           (len == w || text[w] == ' ');
}

/* The connection the login was decided on: the last one the client spoke in. */
static const struct conn_log *login_conn(void)
{
    for (size_t i = it.n_conns; i > 0; i--) {
        if (it.conns[i - 1].n_turns > 0)
            return &it.conns[i - 1];
    }
    return NULL;
}

/* The turn in which the credentials had all arrived, or -1. */
static long credentials_turn(const struct conn_log *l)
{
    for (size_t k = 0; k < l->n_turns; k++) {
        if (has(l->cli, l->turn_end[k], forms.password) ||
            has(l->cli, l->turn_end[k], forms.b64_plain) ||
            has_cram_response(l->cli, l->turn_end[k]))
            return (long)k;
    }
    return -1;
}

/* Whether the login command (a client line naming LOGIN or AUTHENTICATE) starting at start
 * justifies a success: its credentials were complete in some turn k, and the first response line
 * with its tag was sent after turn k and says OK. */
static bool login_command_accepted(const struct conn_log *l, size_t start,
                                   const struct srv_line *lines, size_t n)
{
    const uint8_t *sp = memchr(l->cli + start, ' ', l->cli_len - start);
    char tag[32];
    size_t tag_len;
    long k = -1;

    for (size_t t = 0; t < l->n_turns && k < 0; t++) {
        if (l->turn_end[t] > start &&
            (has(l->cli + start, l->turn_end[t] - start, forms.password) ||
             has(l->cli + start, l->turn_end[t] - start, forms.b64_plain) ||
             has_cram_response(l->cli + start, l->turn_end[t] - start)))
            k = (long)t;
    }
    if (k < 0 || sp == NULL || (size_t)(sp - (l->cli + start)) >= sizeof(tag) - 4 ||
        (size_t)k + 1 >= l->n_chunks)
        return false;
    snprintf(tag, sizeof(tag), "%.*s OK", (int)(sp - (l->cli + start)), l->cli + start);
    tag_len = (size_t)(sp - (l->cli + start)) + 1; /* the tag and its space */
    /* The first line with the command's tag sent after the credentials answers it; one sent
     * before them (in clear ahead of STARTTLS, which the client throws away) answers nothing. */
    for (size_t i = 0; i < n; i++) {
        if (lines[i].len < tag_len || memcmp(lines[i].text, tag, tag_len) != 0 ||
            lines[i].at < l->chunk_at[k + 1])
            continue;
        return starts_word(lines[i].text, lines[i].len, tag);
    }
    return false;
}

/* A success needs a login command answered OK after its credentials. There may be two: after
 * STARTTLS the client pipelines LOGIN, and if the capabilities then say LOGINDISABLED and LOGIN
 * is refused, it goes on with AUTHENTICATE PLAIN. */
static void check_imap_success(void)
{
    static struct srv_line lines[4096];
    const struct conn_log *l = login_conn();
    bool any = false;
    size_t n;

    if (l == NULL || credentials_turn(l) < 0)
        fail("IMAP success without the credentials on the wire");
    n = imap_lines(l, lines, MA_ARRAY_LEN(lines));
    /* Login commands: client lines naming LOGIN or AUTHENTICATE (a literal's bytes never do: the
     * passwords here hold neither). */
    for (size_t i = 0; i < l->cli_len;) {
        const uint8_t *nl = memchr(l->cli + i, '\n', l->cli_len - i);
        size_t len = nl != NULL ? (size_t)(nl - (l->cli + i)) : l->cli_len - i;
        if (memmem(l->cli + i, len, " LOGIN ", 7) != NULL ||
            memmem(l->cli + i, len, " AUTHENTICATE ", 14) != NULL) {
            any = true;
            if (login_command_accepted(l, i, lines, n))
                return;
        }
        i += len + 1;
    }
    if (!any)
        fail("IMAP success without a login command");
    fail("IMAP success without a login command's OK sent after its credentials");
}

/* How many lines of srv start in [from, to), and whether the last one ends there. */
static size_t pop3_lines(const struct conn_log *l, size_t from, size_t to, bool *whole,
                         const uint8_t **last, size_t *last_len)
{
    size_t n = 0;

    *whole = true;
    *last = NULL;
    *last_len = 0;
    for (size_t pos = from; pos < to;) {
        const uint8_t *nl = memchr(l->srv + pos, '\n', to - pos);
        if (nl == NULL) {
            *whole = false;
            return n + 1;
        }
        *last = l->srv + pos;
        *last_len = (size_t)(nl - (l->srv + pos));
        if (*last_len > 0 && (*last)[*last_len - 1] == '\r')
            (*last_len)--;
        pos = (size_t)(nl - l->srv) + 1;
        n++;
    }
    return n;
}

/* The client's turn t in POP3: where its command starts and its length (t = -1: none). */
static const char *pop3_turn(const struct conn_log *l, long t, size_t *len, size_t *answers)
{
    size_t s = t > 0 ? l->turn_end[t - 1] : 0;

    *answers = 1;
    *len = t >= 0 ? l->turn_end[t] - s : 0;
    return (const char *)l->cli + s;
}

/* Whether the command c[0, n) has an answer of a fixed shape (see the late lines above). */
static bool pop3_fixed_answer(const char *c, size_t n)
{
    static const char *const fixed[] = {"USER ", "PASS ", "APOP ", "AUTH ", "CAPA\r", "STLS\r"};

    for (size_t i = 0; i < MA_ARRAY_LEN(fixed); i++) {
        size_t w = strlen(fixed[i]);
        if (n >= w && memcmp(c, fixed[i], w) == 0 && memchr(c, '\n', n) == c + n - 1)
            return true;
    }
    return false;
}

/* POP3 answers every command with one line (CAPA: lines up to "."), and has no unsolicited
 * data: when a chunk held more, the client had stale lines in hand when it sent its next
 * command, and a correct client cannot have gone on to succeed. STLS is the exception: what
 * follows its answer is thrown away with the handshake. */
static void check_pop3_one_answer_each(const struct conn_log *l, long k)
{
    for (long t = -1; t < k; t++) {
        size_t cmd_len, answers;
        const char *c = pop3_turn(l, t, &cmd_len, &answers);
        size_t from = l->chunk_at[t + 1];
        size_t to = (size_t)t + 2 < l->n_chunks ? l->chunk_at[t + 2] : l->srv_len;
        const uint8_t *last;
        size_t last_len;
        bool whole;
        size_t n = pop3_lines(l, from, to, &whole, &last, &last_len);
        if (t >= 0 && cmd_len >= 4 && strncasecmp(c, "STLS", 4) == 0)
            continue;
        if (t >= 0 && cmd_len >= 4 && strncasecmp(c, "CAPA", 4) == 0 && whole &&
            (n == 1 || (last_len == 1 && last[0] == '.')))
            continue;
        if (!whole || n != answers)
            fail("POP3 success although an answer came with more than its one line");
    }
}

static void check_pop3_success(void)
{
    const struct conn_log *l = login_conn();
    size_t skip = 0; /* answer lines in front of the credentials' own: XCLIENT's */
    long k = -1;

    for (size_t t = 0; l != NULL && t < l->n_turns; t++) {
        size_t n, answers;
        const char *c = pop3_turn(l, (long)t, &n, &answers);
        const uint8_t *u = (const uint8_t *)c;
        if ((n > 5 && strncmp(c, "PASS ", 5) == 0 && has(u, n, forms.password)) ||
            (n > 5 && strncmp(c, "APOP ", 5) == 0) ||
            (n > 11 && strncmp(c, "AUTH PLAIN ", 11) == 0 && has(u, n, forms.b64_plain)) ||
            has_cram_response(u, n)) {
            k = (long)t;
            skip = answers - 1;
        }
    }
    if (k < 0)
        fail("POP3 success without PASS, APOP, AUTH PLAIN or a CRAM-MD5 response on the wire");
    if ((size_t)k + 1 >= l->n_chunks)
        fail("POP3 success although the server said nothing after the credentials");
    for (long t = 0; t < k; t++) {
        size_t n, answers;
        const char *c = pop3_turn(l, t, &n, &answers);
        if (!pop3_fixed_answer(c, n))
            fail("POP3 success after a command whose answer length is unknown (a late line of "
                 "its answer could be the verdict)");
    }
    check_pop3_one_answer_each(l, k);
    /* The first line that starts in the chunk sent after the credentials. */
    for (size_t pos = 0; pos < l->srv_len;) {
        const uint8_t *nl = memchr(l->srv + pos, '\n', l->srv_len - pos);
        if (nl == NULL)
            break;
        size_t len = (size_t)(nl - (l->srv + pos));
        if (len > 0 && l->srv[pos + len - 1] == '\r')
            len--;
        if (pos >= l->chunk_at[k + 1] && skip > 0) {
            skip--;
        } else if (pos >= l->chunk_at[k + 1]) {
            if (starts_word(l->srv + pos, len, "+OK") && memcmp(l->srv + pos, "+OK", 3) == 0)
                return;
            break;
        }
        pos = (size_t)(nl - l->srv) + 1;
    }
    fail("POP3 success without \"+OK\" as the answer to the credentials");
}

/* Whether the server offered non-synchronizing literals before it had turn k. */
static bool offered_literal_plus(const struct conn_log *l, size_t k)
{
    size_t sent = k + 1 < l->n_chunks ? l->chunk_at[k + 1] : l->srv_len;

    for (size_t i = 0; i + 8 <= sent; i++) {
        if (strncasecmp((const char *)l->srv + i, "LITERAL", 7) == 0 &&
            (l->srv[i + 7] == '+' || l->srv[i + 7] == '-'))
            return true;
    }
    return false;
}

/* Literals: "{n+}" only when the server offered it; after "{n}" nothing before the server's
 * answer, and the password only after a "+" came. */
static void check_sync_literals(void)
{
    static struct srv_line lines[4096];

    for (size_t c = 0; c < it.n_conns; c++) {
        const struct conn_log *l = &it.conns[c];
        size_t n = imap_lines(l, lines, MA_ARRAY_LEN(lines));
        if (l->sent_early)
            fail("bytes after a synchronizing literal before the server answered");
        for (size_t k = 0; k < l->n_turns; k++) {
            size_t s = k > 0 ? l->turn_end[k - 1] : 0;
            size_t e = l->turn_end[k];
            bool plus = false, cont = false;
            /* Every line of the turn: a LITERAL+ literal may be followed by another. */
            for (size_t i = s; i < e;) {
                const uint8_t *nl = memchr(l->cli + i, '\n', e - i);
                size_t len = nl != NULL ? (size_t)(nl - (l->cli + i)) : e - i;
                if (trailing_literal(l->cli + i, len, &plus) >= 0 && plus &&
                    !offered_literal_plus(l, k))
                    fail("a non-synchronizing literal the server never offered");
                i += len + 1;
            }
            while (e > s && (l->cli[e - 1] == '\n' || l->cli[e - 1] == '\r'))
                e--;
            if (trailing_literal(l->cli + s, e - s, &plus) < 0 || plus)
                continue;
            size_t from = k + 1 < l->n_chunks ? l->chunk_at[k + 1] : SIZE_MAX;
            size_t to = k + 2 < l->n_chunks ? l->chunk_at[k + 2] : l->srv_len;
            for (size_t i = 0; i < n; i++) {
                if (lines[i].at >= from && lines[i].at < to && lines[i].len >= 1 &&
                    lines[i].text[0] == '+' && (lines[i].len == 1 || lines[i].text[1] == ' '))
                    cont = true;
            }
            if (!cont && has(l->cli + l->turn_end[k], l->cli_len - l->turn_end[k], forms.password))
                fail("the password followed a literal announcement without a \"+\"");
        }
    }
}

static void check_wire(const struct login_outcome *o, enum apop_mode apop)
{
    char digest[33] = "";

    for (size_t c = 0; c < it.n_conns; c++) {
        const struct conn_log *l = &it.conns[c];
        bool secret = has(l->cli, l->cli_len, forms.password) ||
                      has(l->cli, l->cli_len, forms.b64_password) ||
                      has(l->cli, l->cli_len, forms.b64_plain);
        bool cram = has_cram_response(l->cli, l->cli_len);
        const uint8_t *a = memmem(l->cli, l->cli_len, "APOP ", 5);
        if (apop == APOP_ONLY && secret)
            fail("apop = only, but the password went on the wire");
        if (it.tls == TLS_MODE_NONE && !it.cleartext &&
            (secret || a != NULL || memmem(l->cli, l->cli_len, "USER ", 5) != NULL))
            fail("credentials in clear to an unprivileged loopback port without allow_cleartext");
        if (!o->creds_sent && (secret || cram || a != NULL))
            fail("creds_sent is false, but credentials went on the wire");
        if (a != NULL) {
            const uint8_t *nl = memchr(a, '\r', l->cli_len - (size_t)(a - l->cli));
            if (nl != NULL && nl - a > 33)
                snprintf(digest, sizeof(digest), "%.32s", (const char *)nl - 32);
        }
    }
    if (digest[0] != '\0' && memmem(log_text, log_len, digest, 32) != NULL)
        fail("the APOP digest in a log line");
}

/* True when a client line in cli[from, to) starts with (at_start) or holds what. */
static bool turn_has_line(const struct conn_log *l, size_t from, size_t to, const char *what,
                          bool at_start)
{
    size_t w = strlen(what);

    for (size_t i = from; i < to;) {
        const uint8_t *nl = memchr(l->cli + i, '\n', to - i);
        size_t len = nl != NULL ? (size_t)(nl - (l->cli + i)) : to - i;
        if (at_start ? len >= w && memcmp(l->cli + i, what, w) == 0
                     : memmem(l->cli + i, len, what, w) != NULL)
            return true;
        i += len + 1;
    }
    return false;
}

/* Nothing that reveals the password (raw, PLAIN or LOGIN form) on any connection. */
static void check_no_password_on_wire(const char *why)
{
    for (size_t c = 0; c < it.n_conns; c++) {
        const struct conn_log *l = &it.conns[c];
        if (has(l->cli, l->cli_len, forms.password) || has(l->cli, l->cli_len, forms.b64_plain) ||
            has(l->cli, l->cli_len, forms.b64_password))
            fail(why);
    }
}

/* A SCRAM-only list: no success, and nothing that reveals the password on any connection. */
static void check_scram_only(enum proto_result r)
{
    if (r == PROTO_OK)
        fail("success with a SCRAM-only mechanisms list and no valid server signature");
    check_no_password_on_wire(
        "the password or its PLAIN/LOGIN form sent with a SCRAM-only mechanisms list");
}

/* ID only with an address to forward, in the login command's write; POP3 XCLIENT never. */
static void check_forwarding(void)
{
    static const char *const imap_logins[] = {" LOGIN ", " AUTHENTICATE "};

    for (size_t c = 0; c < it.n_conns; c++) {
        const struct conn_log *l = &it.conns[c];
        for (size_t t = 0; t < l->n_turns; t++) {
            size_t from = t > 0 ? l->turn_end[t - 1] : 0, to = l->turn_end[t];
            bool login = false;
            if (it.pop3 && turn_has_line(l, from, to, "XCLIENT", true))
                fail("POP3 XCLIENT sent: its answer's length is unknown, and POP3 answers carry "
                     "no tag");
            if (it.pop3 || !turn_has_line(l, from, to, " ID (", false))
                continue;
            if (!it.forward)
                fail("ID sent without a client address to forward");
            for (size_t i = 0; i < MA_ARRAY_LEN(imap_logins) && !login; i++)
                login = turn_has_line(l, from, to, imap_logins[i], false);
            if (!login)
                fail("ID sent without a login command in the same write");
        }
    }
}

/* ---- one iteration ---- */

static void split_chunks(const uint8_t *d, size_t n)
{
    it.n_chunks = 0;
    while (it.n_chunks <= MAX_CHUNKS) {
        const uint8_t *sep = memchr(d, 0xff, n);
        size_t len = sep != NULL ? (size_t)(sep - d) : n;
        it.chunk[it.n_chunks] = d;
        it.chunk_len[it.n_chunks++] = len;
        if (sep == NULL)
            break;
        d += len + 1;
        n -= len + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char ascii_user[] = "alice";
    static const char utf8_user[] = "j\xc3\xbcrgen";
    static const char special_password[] = "Tr0ub4dor\"&3\\{horse} ";
    static const char utf8_password[] = "gr\xc3\xbc\xc3\x9f-\xe2\x82\xac";
    static const char long_password[] =
        "Lpw-7f3e9a2c-a-password-longer-than-the-excerpt-limit-of-one-hundred-and-twenty-bytes-"
        "so-that-a-cut-could-leave-a-prefix-behind-0123456789";
    static const struct logger log = {.sink = sink, .debug = true};
    struct login_creds creds = {ascii_user, sizeof(ascii_user) - 1, "s3cret", 6, NULL};
    struct login_target t = {
        .label = "fuzz",
        .host = "127.0.0.1",
        .verify = true,
        .connect_timeout_ms = 1000,
        .timeout_ms = 3000,
    };
    struct login_outcome out;
    pthread_t server;
    enum proto_result r;

    if (size < 2 || size - 2 > FUZZ_MAX_INPUT)
        return 0;
    if (listen_fd < 0) {
        signal(SIGPIPE, SIG_IGN); /* the harness's own TLS server writes to closed sockets */
        start_listening();
        make_pki();
    }
    memset(&it, 0, sizeof(it));
    it.pop3 = (data[0] & 1) != 0;
    it.tls = ((data[0] >> 4) & 3) == 1   ? TLS_MODE_IMPLICIT
             : ((data[0] >> 4) & 3) == 2 ? TLS_MODE_STARTTLS
                                         : TLS_MODE_NONE;
    it.storm = (data[1] & 1) != 0;
    it.tls12 = (data[1] & 2) != 0;
    t.port = listen_port;
    t.protocol = it.pop3 ? PROTOCOL_POP3 : PROTOCOL_IMAP;
    t.apop = it.pop3 ? (enum apop_mode)(((data[0] >> 1) & 3) % 3) : APOP_AUTO;
    t.tls = (enum tls_mode)it.tls;
    t.ca_file = ca_path;
    if (data[0] & 8) {
        creds.password = utf8_password;
        creds.password_len = sizeof(utf8_password) - 1;
    }
    if (data[1] & 4) {
        creds.password = long_password;
        creds.password_len = sizeof(long_password) - 1;
    }
    if (data[1] & 64) {
        creds.password = special_password;
        creds.password_len = sizeof(special_password) - 1;
    }
    if (data[1] & 8) {
        creds.user = utf8_user;
        creds.user_len = sizeof(utf8_user) - 1;
    }
    it.forward = (data[1] & 16) != 0;
    it.scram_only = (data[1] & 128) != 0;
    if (it.scram_only) {
        t.mechanisms[0] = SASL_MECH_SCRAM_SHA_256;
        t.mechanisms[1] = SASL_MECH_SCRAM_SHA_1;
        t.n_mechanisms = 2;
    }
    if (data[0] & 64) {
        /* CRAM-MD5 proves nothing about the server: with it the list is no longer SCRAM-only. */
        it.cram_only = !it.scram_only;
        it.scram_only = false;
        t.mechanisms[t.n_mechanisms++] = SASL_MECH_CRAM_MD5;
    }
    creds.client_ip = it.forward ? "192.0.2.1" : NULL;
    t.forward_client_ip = true;
    it.cleartext = (data[1] & 32) == 0;
    t.allow_cleartext = it.cleartext;
    memcpy(input_copy, data + 2, size - 2);
    split_chunks(input_copy, size - 2);
    make_forms(&creds);
    log_len = 0;
    atomic_store(&stop_serving, false);
    if (pthread_create(&server, NULL, serve_iteration, NULL) != 0)
        fail("pthread_create");
    memset(&out, 0, sizeof(out));
    r = it.pop3 ? pop3_login(&t, &creds, &log, &out) : imap_login(&t, &creds, &log, &out);
    atomic_store(&stop_serving, true);
    pthread_join(server, NULL);

    if (getenv("FUZZ_SESSION_VERBOSE") != NULL)
        fprintf(stderr, "%s %s: %s (credentials %s): %s\n", it.pop3 ? "pop3" : "imap",
                tls_mode_name(t.tls), proto_result_name(r), out.creds_sent ? "sent" : "not sent",
                out.reason.text);
    if (getenv("FUZZ_SESSION_VERBOSE") != NULL)
        fprintf(stderr, "log:\n%.*s", (int)log_len, log_text);
    model_derived_secrets();
    if (it.scram_only)
        check_scram_only(r);
    if (it.cram_only)
        check_no_password_on_wire(
            "the password or its PLAIN/LOGIN form sent with a CRAM-MD5-only mechanisms list");
    if (r == PROTO_OK) {
        if (out.creds != CREDS_ALL || !out.creds_sent)
            fail("success without every byte of the credentials sent");
        if (it.pop3)
            check_pop3_success();
        else
            check_imap_success();
    }
    if (!it.pop3)
        check_sync_literals();
    check_wire(&out, t.apop);
    check_forwarding();
    if (holds_form(out.reason.text, strlen(out.reason.text), forms.password) ||
        holds_form(out.reason.text, strlen(out.reason.text), forms.b64_plain) ||
        holds_form(out.reason.text, strlen(out.reason.text), forms.b64_password) ||
        holds_form(out.reason.text, strlen(out.reason.text), forms.escaped))
        fail("a secret in the reason");
    check_derived_secrets(&out);
    return 0;
}
