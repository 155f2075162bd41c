#include "stream.h"

#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net.h"
#include "policy.h"

struct stream {
    int fd;
    struct tls_conn *tls;
    const struct login_target *target;
    const struct logger *log;
    struct login_outcome *outcome; /* credential progress is recorded here (stream_open_login) */
    int64_t deadline_ms;
    char address[80];
    /* The secrets to keep out of traces and excerpts of server text; NULL: none. Every
     * credential line sent adds its wire form (stream_send_credential). */
    struct redact_set *redact;
    /* Stale input: in_total counts every byte the server sent (read into buf); fence is its
     * value when the last command went out, after everything already readable was read. A
     * line that starts below the fence was sent before the server could have seen that
     * command, so it cannot be the reply to it (line_stale). */
    uint64_t in_total;
    uint64_t fence;
    bool line_stale;
    /* Lines queued by stream_queue_line, CRLF-terminated, that go out in front of the next
     * command in the same write. */
    char queued[STREAM_MAX_QUEUED];
    size_t queued_len;
    /* When the last piece of a mechanism's credentials went out, while their verdict is awaited
     * (no other command since); 0 otherwise. A timeout or close then says so. */
    int64_t verdict_since_ms;
    size_t start, end; /* unread bytes are buf[start, end) */
    size_t buf_used;   /* high-water mark of buf, what stream_close must wipe */
    size_t line_used;  /* likewise for line */
    char buf[2 * STREAM_MAX_LINE];
    char line[STREAM_MAX_LINE + 1];
};

enum proto_result stream_result_to_proto(enum stream_result r)
{
    switch (r) {
    case STREAM_OK:
        return PROTO_OK;
    case STREAM_EPROTO:
        return PROTO_EPROTO;
    case STREAM_ETLS:
    case STREAM_ECERT:
        return PROTO_ETLS;
    case STREAM_EINSECURE:
        return PROTO_EINSECURE;
    case STREAM_EINVAL:
    case STREAM_ETIMEOUT:
    case STREAM_EEOF:
    case STREAM_EIO:
    case STREAM_ECONNECT:
    case STREAM_ESETUP:
        break;
    }
    return PROTO_EIO;
}

static enum stream_result from_tls(enum tls_result r)
{
    switch (r) {
    case TLS_OK:
        return STREAM_OK;
    case TLS_ECERT:
        return STREAM_ECERT;
    case TLS_EHANDSHAKE:
        return STREAM_ETLS;
    case TLS_ETIMEOUT:
        return STREAM_ETIMEOUT;
    case TLS_EEOF:
        return STREAM_EEOF;
    case TLS_EIO:
        return STREAM_EIO;
    case TLS_ESETUP:
        return STREAM_ESETUP;
    }
    return STREAM_EIO;
}

static enum stream_result from_net(enum net_result r)
{
    switch (r) {
    case NET_OK:
        return STREAM_OK;
    case NET_ETIMEOUT:
        return STREAM_ETIMEOUT;
    case NET_EEOF:
        return STREAM_EEOF;
    case NET_ERESOLVE:
    case NET_ECONNECT:
        return STREAM_ECONNECT;
    case NET_ELOCAL:
        return STREAM_ESETUP;
    case NET_EIO:
        break;
    }
    return STREAM_EIO;
}

/* Server lines and commands in debug traces: at most TRACE_LIMIT bytes, redacted first. */
#define TRACE_LIMIT 200

static void trace(const struct stream *s, const char *dir, const char *text, size_t len)
{
    char clean[TRACE_LIMIT + 64];
    bool cut;

    if (s->log == NULL || !s->log->debug)
        return;
    cut = redact_text(s->redact, clean, sizeof(clean), text, len, TRACE_LIMIT);
    log_debug(s->log, "%s %s %s %s%s", s->address, dir, s->target->label, clean, cut ? "..." : "");
}

enum stream_result stream_start_tls(struct stream *s, struct errbuf *err)
{
    struct tls_options opt = {
        .ca_file = s->target->ca_file,
        .ca_dir = s->target->ca_dir,
        .verify = s->target->verify,
    };
    enum tls_result r;
    char desc[96];

    /* Bytes the server sent before the handshake are not protected: never read them as a
     * reply (the STARTTLS response-injection attack). */
    s->start = s->end = 0;
    r = tls_connect(s->fd, s->target->host, &opt, s->deadline_ms, &s->tls, err);
    if ((r == TLS_ETIMEOUT || r == TLS_ESETUP) && s->outcome != NULL)
        s->outcome->local_failure = true; /* the module's clock, or its own TLS setup */
    if (r != TLS_OK)
        return from_tls(r);
    tls_describe(s->tls, desc, sizeof(desc));
    log_debug(s->log, "%s %s TLS established: %s, certificate %s", s->address, s->target->label,
              desc, s->target->verify ? "verified" : "NOT verified (verify = false)");
    return STREAM_OK;
}

/* Use the connection the walk's race established (target->conn), or resolve and connect: without
 * one, and for a second connection in the same dialogue (POP3 starts over after a refused APOP),
 * as the host's own connect did before the race. The dialogue's deadline counts from when the
 * race's connect began, so connect and dialogue together stay within the target's timeout. */
static enum stream_result take_or_connect(struct stream *s, const struct login_target *target,
                                          struct errbuf *err)
{
    enum net_result nr;

    if (target->conn != NULL) {
        s->deadline_ms =
            deadline_min(s->deadline_ms, target->conn->started_ms + target->timeout_ms);
        if (target->conn->fd >= 0) {
            s->fd = target->conn->fd;
            target->conn->fd = -1;
            snprintf(s->address, sizeof(s->address), "%s", target->conn->address);
            return STREAM_OK;
        }
    }
    nr = net_connect(target->host, target->port, target->connect_timeout_ms, s->deadline_ms, s->log,
                     &s->fd, s->address, sizeof(s->address), err);
    if (nr == NET_ETIMEOUT)
        return STREAM_ECONNECT; /* a connect timeout is a connect failure: try the next host */
    return from_net(nr);
}

enum stream_result stream_open(const struct login_target *target, int64_t deadline_ms,
                               const struct logger *log, struct stream **out, struct errbuf *err)
{
    /* Not calloc: the 24 KiB of buffers need no zeroing, only the header does. */
    struct stream *s = malloc(sizeof(*s));
    enum stream_result r;

    *out = NULL;
    if (s == NULL) {
        errbuf_set(err, "out of memory");
        return STREAM_ESETUP;
    }
    memset(s, 0, offsetof(struct stream, buf));
    s->fd = -1;
    s->target = target;
    s->log = log;
    s->deadline_ms = deadline_ms;
    r = take_or_connect(s, target, err);
    if (r != STREAM_OK)
        goto fail;
    log_debug(log, "%s %s connected", s->address, target->label);
    if (target->tls == TLS_MODE_IMPLICIT) {
        r = stream_start_tls(s, err);
        if (r != STREAM_OK)
            goto fail;
    }
    *out = s;
    return STREAM_OK;
fail:
    stream_close(s);
    return r;
}

enum stream_result stream_attach(int fd, const struct login_target *target, int64_t deadline_ms,
                                 const struct logger *log, struct stream **out)
{
    struct stream *s = malloc(sizeof(*s));

    int flags = fcntl(fd, F_GETFL);

    *out = NULL;
    if (s == NULL || flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
        free(s);
        close(fd);
        return STREAM_ESETUP;
    }
    memset(s, 0, offsetof(struct stream, buf));
    s->fd = fd;
    s->target = target;
    s->log = log;
    s->deadline_ms = deadline_ms;
    snprintf(s->address, sizeof(s->address), "fd %d", fd);
    *out = s;
    return STREAM_OK;
}

/* Milliseconds since the credentials went out, when their verdict is awaited; -1 otherwise. */
static long long verdict_wait_ms(const struct stream *s)
{
    return s->verdict_since_ms != 0 ? (long long)(clock_now_ms() - s->verdict_since_ms) : -1;
}

/* A timeout after the password went out is the server withholding its verdict (on purpose, as
 * failure delays do, or not): say so, it is what an admin tuning timeout needs to see. */
static void explain_timeout(const struct stream *s, struct errbuf *err, const char *more)
{
    long long waited = verdict_wait_ms(s);

    if (waited >= 0)
        errbuf_set(err, "no verdict within %lld ms after the password was sent (timeout %d ms)%s",
                   waited, s->target->timeout_ms, more);
    else
        errbuf_set(err, "no answer within the %d ms timeout%s", s->target->timeout_ms, more);
}

static void explain_close(const struct stream *s, struct errbuf *err)
{
    long long waited = verdict_wait_ms(s);

    if (waited >= 0)
        errbuf_set(err,
                   "connection closed by the server %lld ms after the password was sent, "
                   "without a verdict",
                   waited);
    else
        errbuf_set(err, "connection closed by the server");
}

/* Read what the connection has into the buffer, compacting it first; wait until deadline_ms at
 * most (0: do not wait). */
static enum stream_result read_more(struct stream *s, int64_t deadline_ms, struct errbuf *err)
{
    size_t got = 0;

    if (s->start > 0) {
        memmove(s->buf, s->buf + s->start, s->end - s->start);
        s->end -= s->start;
        s->start = 0;
    }
    if (s->end == sizeof(s->buf))
        return STREAM_EPROTO;
    if (s->tls != NULL) {
        enum tls_result r =
            tls_read_some(s->tls, s->buf + s->end, sizeof(s->buf) - s->end, &got, deadline_ms, err);
        if (r != TLS_OK) {
            if (r == TLS_ETIMEOUT)
                explain_timeout(s, err, "");
            else if (r == TLS_EEOF)
                explain_close(s, err);
            return from_tls(r);
        }
    } else {
        enum net_result r =
            net_recv_some(s->fd, s->buf + s->end, sizeof(s->buf) - s->end, &got, deadline_ms);
        if (r != NET_OK) {
            if (r == NET_ETIMEOUT)
                explain_timeout(s, err, "");
            else if (r == NET_EEOF)
                explain_close(s, err);
            else
                errbuf_set(err, "connection reset while reading");
            return from_net(r);
        }
    }
    s->end += got;
    s->in_total += got;
    if (s->end > s->buf_used)
        s->buf_used = s->end;
    return STREAM_OK;
}

/* Read more for a reader. The deadline is checked here, before every read, because the lower
 * layers check it only when a read would block: a server that keeps the connection readable
 * (a flood of lines, a chain of literals) would otherwise never be cut off. */
static enum stream_result fill(struct stream *s, struct errbuf *err)
{
    enum stream_result r;
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};

    if (deadline_left_ms(s->deadline_ms) == 0) {
        /* Say what happened: the server's bytes waiting unread mean this process did not run
         * in time (stopped, or starved of CPU), not that the server was slow. */
        bool waiting = poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN) != 0;
        const char *what = "";

        if (waiting)
            what = " (the deadline passed with the server's data already waiting: this process "
                   "did not run in time)";
        else if (s->end > s->start)
            what = " (the server was still sending)";
        explain_timeout(s, err, what);
        r = STREAM_ETIMEOUT;
    } else {
        r = read_more(s, s->deadline_ms, err);
    }
    /* A timeout is the module's own clock: never evidence that the server is down. */
    if (r == STREAM_ETIMEOUT && s->outcome != NULL)
        s->outcome->local_failure = true;
    return r;
}

/* Before a command goes out: read, without waiting, whatever the server has already sent, and
 * move the fence past it. Those bytes were sent before the server could see the command, so no
 * line that starts among them may count as its reply; reading them now also catches what still
 * sits in the socket (or TLS) buffers, not only what an earlier read happened to take. A server
 * that closed the connection or sent more than the buffer holds gets nothing. */
static enum stream_result take_pending(struct stream *s, struct errbuf *err)
{
    for (;;) {
        struct errbuf why = {{0}};
        enum stream_result r = read_more(s, 0, &why);

        if (r == STREAM_ETIMEOUT)
            break; /* nothing more right now */
        if (r == STREAM_OK)
            continue;
        if (r == STREAM_EPROTO)
            errbuf_set(err, "server sent more than %zu bytes nobody asked for", sizeof(s->buf));
        else
            errbuf_set(err, "%s", why.text);
        return r;
    }
    s->fence = s->in_total;
    return STREAM_OK;
}

bool stream_peer_closed(struct stream *s)
{
    struct errbuf ignored;
    enum stream_result r;

    /* Bounded: the buffer fills (STREAM_EPROTO) before a flood could keep this going. */
    while ((r = read_more(s, 0, &ignored)) == STREAM_OK)
        ;
    return r == STREAM_EEOF;
}

bool stream_line_is_stale(const struct stream *s)
{
    return s->line_stale;
}

enum stream_result stream_read_line(struct stream *s, const char **line, size_t *len,
                                    struct errbuf *err)
{
    /* Where the line starts in the server's byte stream; reading more does not move it. */
    uint64_t line_start = s->in_total - (s->end - s->start);

    for (;;) {
        char *nl = memchr(s->buf + s->start, '\n', s->end - s->start);
        if (nl != NULL) {
            size_t n = (size_t)(nl - (s->buf + s->start));
            size_t full = n + 1;
            if (n > 0 && s->buf[s->start + n - 1] == '\r')
                n--;
            if (n > STREAM_MAX_LINE) {
                errbuf_set(err, "server line longer than %d bytes", STREAM_MAX_LINE);
                return STREAM_EPROTO;
            }
            if (memchr(s->buf + s->start, '\0', n) != NULL) {
                errbuf_set(err, "NUL byte in a server line");
                return STREAM_EPROTO;
            }
            memcpy(s->line, s->buf + s->start, n);
            s->line[n] = '\0';
            if (n + 1 > s->line_used)
                s->line_used = n + 1;
            s->start += full;
            s->line_stale = line_start < s->fence;
            *line = s->line;
            *len = n;
            trace(s, "S:", s->line, n);
            return STREAM_OK;
        }
        if (s->end - s->start > STREAM_MAX_LINE + 1) {
            errbuf_set(err, "server line longer than %d bytes", STREAM_MAX_LINE);
            return STREAM_EPROTO;
        }
        enum stream_result r = fill(s, err);
        if (r != STREAM_OK)
            return r;
    }
}

enum stream_result stream_skip(struct stream *s, size_t n, struct errbuf *err)
{
    while (n > 0) {
        size_t avail = s->end - s->start;
        if (avail == 0) {
            enum stream_result r = fill(s, err);
            if (r != STREAM_OK)
                return r;
            continue;
        }
        if (avail > n)
            avail = n;
        s->start += avail;
        n -= avail;
    }
    return STREAM_OK;
}

static enum stream_result send_bytes(struct stream *s, const char *buf, size_t len,
                                     struct errbuf *err)
{
    enum stream_result sr;

    if (s->tls != NULL) {
        sr = from_tls(tls_write_all(s->tls, buf, len, s->deadline_ms, err));
    } else {
        enum net_result r = net_send_all(s->fd, buf, len, s->deadline_ms);
        if (r != NET_OK)
            errbuf_set(err, "%s",
                       r == NET_ETIMEOUT ? "server stopped reading before the deadline"
                                         : "connection lost while sending");
        sr = from_net(r);
    }
    if ((sr == STREAM_ETIMEOUT || sr == STREAM_ESETUP) && s->outcome != NULL)
        s->outcome->local_failure = true; /* the module's clock or resources */
    return sr;
}

/* True when cmd[0, n) holds exactly breaks CRLF pairs (where the caller split a command that
 * spans lines: an IMAP LITERAL+ literal) and no other CR, LF or NUL. A CR or LF anywhere else
 * would let data smuggle in a second command; vsnprintf stops at NUL, so a NUL would mean
 * truncation upstream. */
static bool lines_are_clean(const char *cmd, size_t n, unsigned breaks)
{
    unsigned seen = 0;

    for (size_t i = 0; i < n; i++) {
        if (cmd[i] == '\r' && i + 1 < n && cmd[i + 1] == '\n') {
            seen++;
            i++;
        } else if (cmd[i] == '\r' || cmd[i] == '\n' || cmd[i] == '\0') {
            return false;
        }
    }
    return seen == breaks;
}

static enum stream_result send_with_queued(struct stream *s, const char *cmd, size_t len,
                                           struct errbuf *err);

/* Length of the common prefix of a[0, an) and b[0, bn). */
static size_t common_prefix(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i = 0;

    while (i < an && i < bn && a[i] == b[i])
        i++;
    return i;
}

static size_t common_suffix(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i = 0;

    while (i < an && i < bn && a[an - 1 - i] == b[bn - 1 - i])
        i++;
    return i;
}

/* Register the credential-bearing bytes of cmd[0, n), a credential line about to go out, with
 * the stream's redaction set: from where trace (the line with REDACT_MARK in place of each
 * credential piece) puts its first mark to where its last ends, as far as the text around them
 * matches the line; where it does not, more of the line (at worst all of it) is registered,
 * never less. */
static void register_credential(struct stream *s, const char *cmd, size_t n, const char *trace)
{
    size_t tn = strlen(trace), mark = sizeof(REDACT_MARK) - 1;
    const char *first = strstr(trace, REDACT_MARK);
    const char *last = first;
    size_t head, tail;

    if (s->redact == NULL)
        return;
    for (const char *m = first; m != NULL; m = strstr(m + mark, REDACT_MARK))
        last = m;
    head = first != NULL ? (size_t)(first - trace) : 0;
    tail = first != NULL ? tn - (size_t)(last + mark - trace) : 0;
    head = common_prefix(cmd, n, trace, head);
    tail = common_suffix(cmd, n, trace + tn - tail, tail);
    if (head + tail > n)
        tail = n - head;
    redact_add_wire(s->redact, cmd + head, n - head - tail);
}

/* Format a command, refuse it when it holds CR, LF or NUL (but for the breaks CRLF pairs the
 * caller asked for) or is too long, take what the server already sent (take_pending), trace it,
 * send it with CRLF in one write. *partial is set once bytes may have left (a failed send may
 * have sent some). */
MA_PRINTF(7, 0)
static enum stream_result send_command(struct stream *s, struct errbuf *err, const char *trace_text,
                                       unsigned breaks, bool credential, bool *partial,
                                       const char *fmt, va_list ap)
{
    char cmd[STREAM_MAX_COMMAND + 3];
    enum stream_result r = STREAM_EINVAL;
    int n = vsnprintf(cmd, STREAM_MAX_COMMAND + 1, fmt, ap);

    if (n < 0 || n > STREAM_MAX_COMMAND) {
        errbuf_set(err, "command too long");
        goto out;
    }
    if (!lines_are_clean(cmd, (size_t)n, breaks)) {
        errbuf_set(err, "refusing to send a command containing CR, LF or NUL");
        goto out;
    }
    s->verdict_since_ms = 0; /* a new command: what comes now answers it */
    r = take_pending(s, err);
    if (r != STREAM_OK)
        goto out;
    if (credential)
        register_credential(s, cmd, (size_t)n, trace_text != NULL ? trace_text : "");
    trace(s, "C:", trace_text != NULL ? trace_text : cmd,
          trace_text != NULL ? strlen(trace_text) : (size_t)n);
    cmd[n] = '\r';
    cmd[n + 1] = '\n';
    *partial = true;
    r = send_with_queued(s, cmd, (size_t)n + 2, err);
out:
    secret_wipe(cmd, sizeof(cmd));
    return r;
}

/* Send cmd with the queued lines in front, in one write, and empty the queue. */
static enum stream_result send_with_queued(struct stream *s, const char *cmd, size_t len,
                                           struct errbuf *err)
{
    char all[STREAM_MAX_QUEUED + STREAM_MAX_COMMAND + 3];
    size_t q = s->queued_len;
    enum stream_result r;

    if (q == 0)
        return send_bytes(s, cmd, len, err);
    memcpy(all, s->queued, q);
    memcpy(all + q, cmd, len);
    s->queued_len = 0;
    r = send_bytes(s, all, q + len, err);
    secret_wipe(all, q + len);
    return r;
}

enum stream_result stream_queue_line(struct stream *s, struct errbuf *err, const char *fmt, ...)
{
    char line[STREAM_MAX_QUEUED];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n + 2 > sizeof(s->queued) - s->queued_len ||
        !lines_are_clean(line, (size_t)n, 0)) {
        errbuf_set(err, "internal error: cannot queue a command line");
        return STREAM_EINVAL;
    }
    if (!stream_may_send_credentials(s, err))
        return STREAM_EINSECURE;
    trace(s, "C:", line, (size_t)n);
    memcpy(s->queued + s->queued_len, line, (size_t)n);
    memcpy(s->queued + s->queued_len + (size_t)n, "\r\n", 2);
    s->queued_len += (size_t)n + 2;
    return STREAM_OK;
}

enum stream_result stream_sendf(struct stream *s, struct errbuf *err, const char *trace_text,
                                const char *fmt, ...)
{
    enum stream_result r;
    bool partial = false;
    va_list ap;

    va_start(ap, fmt);
    r = send_command(s, err, trace_text, 0, false, &partial, fmt, ap);
    va_end(ap);
    return r;
}

MA_PRINTF(6, 0)
static enum stream_result send_credential(struct stream *s, struct errbuf *err, enum cred_part part,
                                          unsigned breaks, const char *trace_text, const char *fmt,
                                          va_list ap)
{
    struct login_outcome *o = s->outcome;
    enum stream_result r;
    bool partial = false;

    if (o == NULL) {
        errbuf_set(err, "internal error: credentials on a stream not opened for a login");
        return STREAM_EINVAL;
    }
    if ((part & CRED_FIRST) != 0)
        o->creds = CREDS_NONE;
    if (!stream_may_send_credentials(s, err))
        return STREAM_EINSECURE;
    r = send_command(s, err, trace_text, breaks, true, &partial, fmt, ap);
    if (partial) {
        o->creds_sent = true;
        if (o->creds == CREDS_NONE)
            o->creds = CREDS_PARTIAL;
    }
    if (r == STREAM_OK && (part & CRED_LAST) != 0) {
        o->creds = CREDS_ALL;
        s->verdict_since_ms = clock_now_ms();
    }
    return r;
}

enum stream_result stream_send_credential(struct stream *s, struct errbuf *err, enum cred_part part,
                                          const char *trace_text, const char *fmt, ...)
{
    enum stream_result r;
    va_list ap;

    va_start(ap, fmt);
    r = send_credential(s, err, part, 0, trace_text, fmt, ap);
    va_end(ap);
    return r;
}

enum stream_result stream_send_credential_lines(struct stream *s, struct errbuf *err,
                                                enum cred_part part, unsigned breaks,
                                                const char *trace_text, const char *fmt, ...)
{
    enum stream_result r;
    va_list ap;

    va_start(ap, fmt);
    r = send_credential(s, err, part, breaks, trace_text, fmt, ap);
    va_end(ap);
    return r;
}

void stream_explain_greeting_failure(const struct stream *s, enum stream_result r,
                                     struct errbuf *err)
{
    if (r != STREAM_ETIMEOUT || s->tls != NULL)
        return;
    errbuf_set(err,
               "no greeting within %d ms (if port %u expects implicit TLS, set tls = "
               "implicit)",
               s->target->timeout_ms, s->target->port);
}

enum proto_result stream_open_login(const struct login_target *t, struct redact_set *rs,
                                    int64_t deadline_ms, const struct logger *log,
                                    struct stream **out, struct login_outcome *o)
{
    enum stream_result r = stream_open(t, deadline_ms, log, out, &o->reason);

    /* The module's clock, memory, descriptors or TLS setup: no evidence about the server. */
    if (r == STREAM_ETIMEOUT || r == STREAM_ESETUP || r == STREAM_EINVAL)
        o->local_failure = true;
    if (r != STREAM_OK)
        return stream_result_to_proto(r);
    snprintf(o->address, sizeof(o->address), "%s", (*out)->address);
    stream_arm_login(*out, o, rs);
    return PROTO_OK;
}

void stream_excerpt(const struct stream *s, char *dst, size_t cap, const char *src, size_t len)
{
    redact_excerpt(s->redact, dst, cap, src, len);
}

bool stream_credentials_rule(const struct stream *s, struct errbuf *why)
{
    unsigned port, limit;

    if (s->tls != NULL) {
        errbuf_set(why, "over TLS");
        return true;
    }
    if (s->target->allow_cleartext) {
        errbuf_set(why, "in clear, allow_cleartext = true");
        return true;
    }
    if (!net_peer_is_loopback(s->fd)) {
        errbuf_set(why,
                   "refusing to send credentials in clear to %s (tls = none; set "
                   "allow_cleartext = true to permit it)",
                   s->address);
        return false;
    }
    port = net_peer_port(s->fd);
    if (policy_loopback_port_privileged(port, &limit)) {
        errbuf_set(why,
                   "in clear, to a loopback address on privileged port %u (below "
                   "ip_unprivileged_port_start %u: only root can listen there)",
                   port, limit);
        return true;
    }
    errbuf_set(why,
               "refusing to send credentials in clear to %s: loopback port %u is not privileged "
               "(ip_unprivileged_port_start is %u), any local user may listen there (tls = none; "
               "set allow_cleartext = true to permit it)",
               s->address, port, limit);
    return false;
}

bool stream_may_send_credentials(const struct stream *s, struct errbuf *err)
{
    struct errbuf why = {{0}};

    if (stream_credentials_rule(s, &why))
        return true;
    errbuf_set(err, "%s", why.text);
    return false;
}

void stream_close(struct stream *s)
{
    if (s == NULL)
        return;
    tls_close(s->tls);
    if (s->fd >= 0)
        close(s->fd);
    /* The buffers hold server replies only, but wipe what was used: cheap and certain. */
    secret_wipe(s->buf, s->buf_used);
    secret_wipe(s->line, s->line_used);
    free(s);
}

struct tls_conn *stream_tls(const struct stream *s)
{
    return s->tls;
}

const char *stream_address(const struct stream *s)
{
    return s->address;
}

void stream_set_address(struct stream *s, const char *address)
{
    snprintf(s->address, sizeof(s->address), "%s", address);
}

struct redact_set *stream_redact_set(const struct stream *s)
{
    return s->redact;
}

const struct logger *stream_swap_logger(struct stream *s, const struct logger *log)
{
    const struct logger *previous = s->log;

    s->log = log;
    return previous;
}

void stream_arm_login(struct stream *s, struct login_outcome *o, struct redact_set *rs)
{
    s->outcome = o;
    s->redact = rs;
}
