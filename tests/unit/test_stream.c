/* The stream layer's rules, over a socketpair (a peer that is not on loopback):
 * - a line the server sent before a command went out is marked stale, whether it was already in
 *   the buffer, still in the socket, or only begun;
 * - credentials obey the cleartext rule and their progress is recorded; nothing goes to a server
 *   that already closed the connection or flooded it;
 * - the one gate to success (proto_accept) needs every byte of the credentials sent;
 * - after the last piece of credentials a timeout or close says the verdict was withheld;
 * - the deadline holds against a peer that never lets a read block;
 * - traces are redacted. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "capture_log.h"
#include "check.h"
#include "stream.h"

#define S(x) x, strlen(x)

struct pair {
    struct stream *s;
    int peer;
    struct login_target t;
    struct login_outcome o;
};

static int open_pair(struct pair *p, bool allow_cleartext, int64_t deadline_ms)
{
    int sv[2];

    memset(p, 0, sizeof(*p));
    p->t = (struct login_target){.label = "unit",
                                 .host = "peer",
                                 .tls = TLS_MODE_NONE,
                                 .allow_cleartext = allow_cleartext,
                                 .timeout_ms = 2000};
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    p->peer = sv[1];
    if (stream_attach(sv[0], &p->t, deadline_ms, &debug_log, &p->s) != STREAM_OK) {
        close(p->peer);
        return -1;
    }
    stream_arm_login(p->s, &p->o, NULL);
    return 0;
}

static void close_pair(struct pair *p)
{
    stream_close(p->s);
    if (p->peer >= 0)
        close(p->peer);
}

static void peer_says(struct pair *p, const char *text)
{
    if (write(p->peer, text, strlen(text)) != (ssize_t)strlen(text))
        CHECK(!"peer write");
}

/* What the client sent so far (without waiting). */
static size_t peer_got(struct pair *p, char *buf, size_t cap)
{
    ssize_t n = recv(p->peer, buf, cap - 1, MSG_DONTWAIT);

    buf[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

static int64_t later(void)
{
    return clock_now_ms() + 5000;
}

static bool read_is(struct pair *p, const char *want, bool stale)
{
    struct errbuf err = {{0}};
    const char *line;
    size_t len;

    return stream_read_line(p->s, &line, &len, &err) == STREAM_OK && strcmp(line, want) == 0 &&
           stream_line_is_stale(p->s) == stale;
}

static void test_stale_lines(void)
{
    struct pair p;
    struct errbuf err = {{0}};

    if (open_pair(&p, true, later()) != 0) {
        CHECK(!"socketpair");
        return;
    }
    /* Nothing was sent yet: the greeting is no reply to anything, and not stale. */
    peer_says(&p, "+OK greeting\r\n+OK early\r\n");
    CHECK(read_is(&p, "+OK greeting", false));
    /* "+OK early" was already in the buffer when USER went out. */
    CHECK(stream_sendf(p.s, &err, NULL, "USER alice") == STREAM_OK);
    CHECK(read_is(&p, "+OK early", true));
    /* Sent after the command: a reply. */
    peer_says(&p, "+OK fresh\r\n");
    CHECK(read_is(&p, "+OK fresh", false));

    /* Still in the socket, not yet read, when the command goes out: stale all the same. */
    peer_says(&p, "+OK queued\r\n");
    CHECK(stream_sendf(p.s, &err, NULL, "PASS x") == STREAM_OK);
    peer_says(&p, "+OK after\r\n");
    CHECK(read_is(&p, "+OK queued", true));
    CHECK(read_is(&p, "+OK after", false));

    /* A line begun before the command and finished after it. */
    peer_says(&p, "* one\r\nA1 O");
    CHECK(read_is(&p, "* one", false));
    CHECK(stream_sendf(p.s, &err, NULL, "A1 NOOP") == STREAM_OK);
    peer_says(&p, "K done\r\n");
    CHECK(read_is(&p, "A1 OK done", true));
    close_pair(&p);
}

static void test_cleartext_rule(void)
{
    struct pair p;
    struct errbuf err = {{0}};
    char got[256];

    /* A socketpair is no loopback peer: without allow_cleartext nothing may leave. */
    if (open_pair(&p, false, later()) != 0) {
        CHECK(!"socketpair");
        return;
    }
    CHECK(stream_send_credential(p.s, &err, CRED_WHOLE, "PASS <redacted>", "PASS %s", "pw") ==
          STREAM_EINSECURE);
    CHECK(strstr(err.text, "refusing to send credentials in clear") != NULL);
    CHECK(peer_got(&p, got, sizeof(got)) == 0);
    CHECK(!p.o.creds_sent && p.o.creds == CREDS_NONE);
    CHECK(proto_accept(&p.o, "PASS") == PROTO_EPROTO);
    close_pair(&p);

    if (open_pair(&p, true, later()) != 0) {
        CHECK(!"socketpair");
        return;
    }
    CHECK(stream_send_credential(p.s, &err, CRED_WHOLE, "PASS <redacted>", "PASS %s", "pw") ==
          STREAM_OK);
    CHECK(peer_got(&p, got, sizeof(got)) > 0 && strcmp(got, "PASS pw\r\n") == 0);
    CHECK(p.o.creds_sent && p.o.creds == CREDS_ALL);
    CHECK(proto_accept(&p.o, "PASS") == PROTO_OK);
    close_pair(&p);
}

static void test_progress(void)
{
    struct pair p;
    struct errbuf err = {{0}};
    char got[256];

    if (open_pair(&p, true, later()) != 0) {
        CHECK(!"socketpair");
        return;
    }
    CHECK(stream_send_credential(p.s, &err, CRED_FIRST, "A1 LOGIN u {2}", "A1 LOGIN u {2}") ==
          STREAM_OK);
    CHECK(p.o.creds == CREDS_PARTIAL && p.o.creds_sent);
    CHECK(proto_accept(&p.o, "LOGIN") == PROTO_EPROTO);
    CHECK(strstr(p.o.reason.text, "only partly sent") != NULL);
    CHECK(stream_send_credential(p.s, &err, CRED_LAST, "<redacted>", "pw") == STREAM_OK);
    CHECK(p.o.creds == CREDS_ALL);
    CHECK(proto_accept(&p.o, "LOGIN") == PROTO_OK);
    /* A new mechanism starts over. */
    CHECK(stream_send_credential(p.s, &err, CRED_FIRST, "x", "x") == STREAM_OK);
    CHECK(p.o.creds == CREDS_PARTIAL);
    peer_got(&p, got, sizeof(got));
    close_pair(&p);
}

/* After the last piece of credentials, a timeout or a close is a verdict withheld and says so;
 * once another command went out it is an ordinary one again. stream_peer_closed sees a close
 * that already arrived, without waiting. */
static void test_verdict_wait_and_peer_closed(void)
{
    struct pair p;
    struct errbuf err = {{0}};
    const char *line;
    size_t len;

    if (open_pair(&p, true, clock_now_ms() + 200) != 0) {
        CHECK(!"socketpair");
        return;
    }
    CHECK(!stream_peer_closed(p.s));
    CHECK(stream_send_credential(p.s, &err, CRED_WHOLE, "PASS <redacted>", "PASS pw") == STREAM_OK);
    CHECK(stream_read_line(p.s, &line, &len, &err) == STREAM_ETIMEOUT);
    CHECK(strstr(err.text, "no verdict within ") != NULL);
    CHECK(strstr(err.text, " ms after the password was sent (timeout 2000 ms)") != NULL);
    close_pair(&p);

    if (open_pair(&p, true, clock_now_ms() + 200) != 0) {
        CHECK(!"socketpair");
        return;
    }
    CHECK(stream_send_credential(p.s, &err, CRED_WHOLE, "PASS <redacted>", "PASS pw") == STREAM_OK);
    CHECK(stream_sendf(p.s, &err, NULL, "NOOP") == STREAM_OK);
    CHECK(stream_read_line(p.s, &line, &len, &err) == STREAM_ETIMEOUT);
    CHECK_STR(err.text, "no answer within the 2000 ms timeout");
    close_pair(&p);

    if (open_pair(&p, true, later()) != 0) {
        CHECK(!"socketpair");
        return;
    }
    CHECK(stream_send_credential(p.s, &err, CRED_WHOLE, "PASS <redacted>", "PASS pw") == STREAM_OK);
    peer_says(&p, "-ERR Temporary problem, please try again later\r\n");
    shutdown(p.peer, SHUT_WR);
    CHECK(stream_read_line(p.s, &line, &len, &err) == STREAM_OK);
    CHECK(stream_peer_closed(p.s));
    CHECK(stream_read_line(p.s, &line, &len, &err) == STREAM_EEOF);
    CHECK(strstr(err.text, "connection closed by the server ") != NULL);
    CHECK(strstr(err.text, " ms after the password was sent, without a verdict") != NULL);
    close_pair(&p);
}

/* A command that spans lines (LITERAL+) leaves in one write with exactly the line breaks the
 * caller announced; any other CR, LF or NUL refuses it, so data cannot add a command. */
static void test_lines(void)
{
    struct pair p;
    struct errbuf err = {{0}};
    char got[256];

    if (open_pair(&p, true, later()) != 0) {
        CHECK(!"socketpair");
        return;
    }
    CHECK(stream_send_credential_lines(p.s, &err, CRED_WHOLE, 1, "A1 LOGIN u {2+} <redacted>",
                                       "A1 LOGIN u {2+}\r\n%s", "pw") == STREAM_OK);
    CHECK(peer_got(&p, got, sizeof(got)) > 0 && strcmp(got, "A1 LOGIN u {2+}\r\npw\r\n") == 0);
    CHECK(stream_send_credential_lines(p.s, &err, CRED_WHOLE, 1, "x", "a\r\n%s", "b\r\nc") ==
          STREAM_EINVAL);
    CHECK(stream_send_credential_lines(p.s, &err, CRED_WHOLE, 1, "x", "a\r\n%s", "b\nc") ==
          STREAM_EINVAL);
    CHECK(stream_send_credential(p.s, &err, CRED_WHOLE, "x", "a\r\n%s", "b") == STREAM_EINVAL);
    CHECK(stream_sendf(p.s, &err, NULL, "a%sb", "\r") == STREAM_EINVAL);
    CHECK(peer_got(&p, got, sizeof(got)) == 0);
    close_pair(&p);
}

/* Nothing goes to a server that has closed the connection or flooded it. */
static void test_no_send_after_close_or_flood(void)
{
    struct pair p;
    struct errbuf err = {{0}};
    char got[256];
    static char flood[3 * STREAM_MAX_LINE];

    if (open_pair(&p, true, later()) != 0) {
        CHECK(!"socketpair");
        return;
    }
    peer_says(&p, "+OK bye\r\n");
    shutdown(p.peer, SHUT_WR);
    CHECK(stream_send_credential(p.s, &err, CRED_WHOLE, "PASS <redacted>", "PASS pw") ==
          STREAM_EEOF);
    CHECK(peer_got(&p, got, sizeof(got)) == 0);
    CHECK(!p.o.creds_sent && p.o.creds == CREDS_NONE);
    close_pair(&p);

    if (open_pair(&p, true, later()) != 0) {
        CHECK(!"socketpair");
        return;
    }
    memset(flood, '*', sizeof(flood));
    CHECK(write(p.peer, flood, sizeof(flood)) == (ssize_t)sizeof(flood));
    CHECK(stream_send_credential(p.s, &err, CRED_WHOLE, "PASS <redacted>", "PASS pw") ==
          STREAM_EPROTO);
    CHECK(strstr(err.text, "nobody asked for") != NULL);
    CHECK(peer_got(&p, got, sizeof(got)) == 0);
    CHECK(!p.o.creds_sent);
    close_pair(&p);
}

static void *flood_lines(void *arg)
{
    int fd = *(int *)arg;
    static const char line[] = "* OK still here\r\n";

    while (send(fd, line, sizeof(line) - 1, MSG_NOSIGNAL) > 0)
        ;
    return NULL;
}

/* A peer that keeps the connection readable: every read finds data at once, so only a deadline
 * checked on every read ends it. Correct: ~300 ms; broken: never (the test's own alarm fires). */
static void test_deadline_against_a_flood(void)
{
    struct pair p;
    struct errbuf err = {{0}};
    pthread_t writer;
    enum stream_result r = STREAM_OK;
    int64_t start = clock_now_ms();
    int peer;

    if (open_pair(&p, true, start + 300) != 0) {
        CHECK(!"socketpair");
        return;
    }
    peer = p.peer;
    if (pthread_create(&writer, NULL, flood_lines, &peer) != 0) {
        CHECK(!"pthread_create");
        close_pair(&p);
        return;
    }
    while (r == STREAM_OK) {
        const char *line;
        size_t len;
        r = stream_read_line(p.s, &line, &len, &err);
    }
    CHECK(r == STREAM_ETIMEOUT);
    CHECK(clock_now_ms() - start < 3000);
    shutdown(p.peer, SHUT_RDWR);
    stream_close(p.s);
    pthread_join(writer, NULL);
    close(p.peer);
}

/* Data is waiting, but the deadline has passed: no read happens, and the reason says the data
 * was waiting. (Whether the flood above ever
 * let a read block depends on the scheduler; this does not.) */
static void test_deadline_before_every_read(void)
{
    struct pair p;
    struct errbuf err = {{0}};
    const char *line;
    size_t len;

    if (open_pair(&p, true, clock_now_ms() - 1) != 0) {
        CHECK(!"socketpair");
        return;
    }
    peer_says(&p, "* OK ready\r\n");
    CHECK(stream_read_line(p.s, &line, &len, &err) == STREAM_ETIMEOUT);
    /* issue 17: the server's line was waiting; "the server was still sending" would be false */
    CHECK(strstr(err.text, "data already waiting: this process did not run in time") != NULL);
    CHECK(strstr(err.text, "still sending") == NULL);
    close_pair(&p);
}

static void test_trace_is_redacted(void)
{
    static const char pw[] = "gr\xc3\xbc\xc3\x9f-s3cret";
    const struct login_creds c = {"alice", 5, pw, sizeof(pw) - 1, NULL};
    struct redact_set rs;
    struct pair p;
    char line[128];

    if (open_pair(&p, true, later()) != 0) {
        CHECK(!"socketpair");
        return;
    }
    redact_init(&rs, &c);
    stream_arm_login(p.s, &p.o, &rs);
    logged[0] = '\0';
    snprintf(line, sizeof(line), "* BYE you said %s\r\n", pw);
    peer_says(&p, line);
    peer_says(&p, "* NO AGFsaWNlAGdyw7zDny1zM2NyZXQ=\r\n");
    CHECK(read_is(&p, "* BYE you said gr\xc3\xbc\xc3\x9f-s3cret", false));
    CHECK(read_is(&p, "* NO AGFsaWNlAGdyw7zDny1zM2NyZXQ=", false));
    CHECK(strstr(logged, "S: unit * BYE you said <redacted>") != NULL);
    CHECK(strstr(logged, "S: unit * NO <redacted>") != NULL);
    CHECK(strstr(logged, "s3cret") == NULL &&
          strstr(logged, "AGFsaWNlAGdyw7zDny1zM2NyZXQ") == NULL);
    close_pair(&p);
    redact_wipe(&rs);
}

/* Issue 17: the credential sender registers what it sends, in its wire form, before it goes:
 * an IMAP quoted string with escapes, a SASL continuation line, and (where the trace does not
 * match the line) the whole line. No mechanism registers anything itself. */
static void test_credential_wire_form_is_redacted(void)
{
    struct redact_set rs;
    struct pair p;
    struct errbuf err = {{0}};
    char out[200];

    if (open_pair(&p, true, later()) != 0) {
        CHECK(!"socketpair");
        return;
    }
    redact_init(&rs, NULL); /* nothing known ahead: only what the sender registers */
    stream_arm_login(p.s, &p.o, &rs);
    CHECK(stream_send_credential(p.s, &err, CRED_WHOLE, "a1 LOGIN alice <redacted>",
                                 "a1 LOGIN alice %s", "\"Tr0ub\\\"&3\\\\ \"") == STREAM_OK);
    stream_excerpt(p.s, out, sizeof(out), S("a1 NO you sent Tr0ub\\\"&3\\\\ !"));
    CHECK_STR(out, "a1 NO you sent <redacted>!");
    stream_excerpt(p.s, out, sizeof(out), S("a1 NO alice"));
    CHECK_STR(out, "a1 NO alice"); /* the name around it is not secret */
    CHECK(stream_send_credential(p.s, &err, CRED_WHOLE, "<redacted>", "%s",
                                 "c=biws,r=nonce,p=cHJvb2Y=") == STREAM_OK);
    stream_excerpt(p.s, out, sizeof(out), S("NO bad c=biws,r=nonce,p=cHJvb2Y="));
    CHECK_STR(out, "NO bad <redacted>");
    CHECK(stream_send_credential(p.s, &err, CRED_WHOLE, "no mark here", "XAUTH %s", "k3y-blob") ==
          STREAM_OK);
    stream_excerpt(p.s, out, sizeof(out), S("NO XAUTH k3y-blob"));
    CHECK_STR(out, "NO <redacted>");
    close_pair(&p);
    redact_wipe(&rs);
}

/* A queued line goes out in front of the next command, in the same write (one recv takes
 * both); the fence covers both replies; the queue obeys the cleartext rule and refuses CR/LF. */
static void test_queued_line(void)
{
    struct pair p;
    struct errbuf err = {{0}};
    char got[256];

    if (open_pair(&p, false, later()) != 0) {
        CHECK(!"socketpair");
        return;
    }
    /* no loopback, no TLS, no allow_cleartext: nothing is queued, nothing leaves */
    CHECK(stream_queue_line(p.s, &err, "XCLIENT ADDR=%s", "192.0.2.10") == STREAM_EINSECURE);
    CHECK(stream_sendf(p.s, &err, NULL, "NOOP") == STREAM_OK);
    CHECK(peer_got(&p, got, sizeof(got)) > 0 && strcmp(got, "NOOP\r\n") == 0);
    close_pair(&p);

    if (open_pair(&p, true, later()) != 0) {
        CHECK(!"socketpair");
        return;
    }
    CHECK(stream_queue_line(p.s, &err, "A1 ID (%s)", "x\r\nA9 LOGOUT") == STREAM_EINVAL);
    CHECK(stream_queue_line(p.s, &err, "A1 CAPABILITY") == STREAM_OK);
    CHECK(stream_queue_line(p.s, &err, "A2 ID (\"x-originating-ip\" \"%s\")", "192.0.2.10") ==
          STREAM_OK);
    peer_says(&p, "* early\r\n");
    CHECK(stream_send_credential(p.s, &err, CRED_WHOLE, "A3 LOGIN <redacted>", "A3 LOGIN u %s",
                                 "pw") == STREAM_OK);
    CHECK(peer_got(&p, got, sizeof(got)) > 0 &&
          strcmp(got, "A1 CAPABILITY\r\nA2 ID (\"x-originating-ip\" \"192.0.2.10\")\r\n"
                      "A3 LOGIN u pw\r\n") == 0);
    CHECK(p.o.creds == CREDS_ALL);
    peer_says(&p, "A1 OK\r\n");
    CHECK(read_is(&p, "* early", true));
    CHECK(read_is(&p, "A1 OK", false));
    /* the queue is empty again */
    CHECK(stream_sendf(p.s, &err, NULL, "A4 NOOP") == STREAM_OK);
    CHECK(peer_got(&p, got, sizeof(got)) > 0 && strcmp(got, "A4 NOOP\r\n") == 0);
    /* a full queue refuses more */
    for (int i = 0; i < 64; i++)
        if (stream_queue_line(p.s, &err, "A%d CAPABILITY", i) != STREAM_OK)
            break;
    CHECK(stream_queue_line(p.s, &err, "A99 CAPABILITY") == STREAM_EINVAL);
    close_pair(&p);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(60); /* a broken deadline must fail the test, not hang it */
    test_credential_wire_form_is_redacted();
    test_stale_lines();
    test_cleartext_rule();
    test_progress();
    test_verdict_wait_and_peer_closed();
    test_lines();
    test_no_send_after_close_or_flood();
    test_deadline_against_a_flood();
    test_deadline_before_every_read();
    test_trace_is_redacted();
    test_queued_line();
    return check_summary("stream");
}
