#include "pop3.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "alert.h"
#include "redact.h"
#include "sasl_exchange.h"
#include "stream.h"
#include "verdict.h"

#define CAPA_MAX_LINES 200

/* ---- pure parsers (unit-tested and fuzzed) ---- */

enum pop3_reply pop3_reply_classify(const char *line, size_t len)
{
    if (len >= 3 && memcmp(line, "+OK", 3) == 0 && (len == 3 || line[3] == ' '))
        return POP3_REPLY_OK;
    if (len >= 4 && memcmp(line, "-ERR", 4) == 0 && (len == 4 || line[4] == ' '))
        return POP3_REPLY_ERR;
    if (len >= 1 && line[0] == '+' && (len == 1 || line[1] == ' '))
        return POP3_REPLY_CONT;
    return POP3_REPLY_INVALID;
}

bool pop3_apop_timestamp(const char *greeting, size_t len, char *out, size_t cap)
{
    const char *lt = memchr(greeting, '<', len);
    const char *gt;
    size_t n;
    int ats = 0;
    size_t at_pos = 0;

    if (lt == NULL)
        return false;
    gt = memchr(lt, '>', len - (size_t)(lt - greeting));
    if (gt == NULL)
        return false;
    n = (size_t)(gt - lt) + 1;
    if (n > POP3_APOP_TIMESTAMP_MAX || n + 1 > cap)
        return false;
    for (size_t i = 1; i + 1 < n; i++) {
        unsigned char c = (unsigned char)lt[i];
        if (c < 0x21 || c > 0x7e || c == '<')
            return false;
        if (c == '@') {
            ats++;
            at_pos = i;
        }
    }
    if (ats != 1 || at_pos == 1 || at_pos == n - 2)
        return false;
    memcpy(out, lt, n);
    out[n] = '\0';
    return true;
}

bool pop3_apop_digest(const char *timestamp, const char *password, size_t password_len,
                      char hex_out[33])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_MD *md5 = EVP_MD_fetch(NULL, "MD5", NULL);
    bool ok = false;

    if (ctx == NULL || md5 == NULL)
        goto out;
    if (EVP_DigestInit_ex(ctx, md5, NULL) != 1 ||
        EVP_DigestUpdate(ctx, timestamp, strlen(timestamp)) != 1 ||
        EVP_DigestUpdate(ctx, password, password_len) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &md_len) != 1 || md_len != 16)
        goto out;
    for (unsigned i = 0; i < 16; i++) {
        hex_out[2 * i] = hex[md[i] >> 4];
        hex_out[2 * i + 1] = hex[md[i] & 0x0f];
    }
    hex_out[32] = '\0';
    ok = true;
out:
    secret_wipe(md, sizeof(md));
    EVP_MD_CTX_free(ctx); /* cleanses the digest state */
    EVP_MD_free(md5);
    return ok;
}

bool pop3_greeting_offers_xclient(const char *greeting, size_t len)
{
    const char *close;

    if (len < 5 || memcmp(greeting, "+OK [", 5) != 0)
        return false;
    close = memchr(greeting + 5, ']', len - 5);
    return close != NULL && ascii_word_is(greeting + 5, (size_t)(close - greeting) - 5, "XCLIENT");
}

void pop3_capa_line(const char *line, size_t len, struct pop3_caps *caps)
{
    size_t i = 0;
    size_t first_end;

    while (i < len && line[i] != ' ')
        i++;
    first_end = i;
    if (ascii_word_is(line, first_end, "USER"))
        caps->user = true;
    else if (ascii_word_is(line, first_end, "STLS"))
        caps->stls = true;
    if (!ascii_word_is(line, first_end, "SASL"))
        return;
    while (i < len) {
        size_t start;
        while (i < len && line[i] == ' ')
            i++;
        start = i;
        while (i < len && line[i] != ' ')
            i++;
        if (ascii_word_is(line + start, i - start, "PLAIN"))
            caps->sasl_plain = true;
        const struct sasl_mech *m = sasl_mech_by_name(line + start, i - start);
        if (m != NULL)
            caps->sasl_mechs |= 1u << m->id;
        if (i - start > 5 && ascii_word_is(line + i - 5, 5, "-PLUS"))
            caps->sasl_plus = true;
    }
}

enum pop3_mech pop3_first_mechanism(enum apop_mode apop, bool have_timestamp, bool user_has_space)
{
    if (apop != APOP_NEVER && have_timestamp && !user_has_space)
        return POP3_MECH_APOP;
    return apop == APOP_ONLY ? POP3_MECH_NONE : POP3_MECH_USER_PASS;
}

enum pop3_mech pop3_mechanism_after_user_refused(const struct pop3_caps *caps)
{
    if (caps->user)
        return POP3_MECH_USER_PASS;
    return caps->sasl_plain ? POP3_MECH_AUTH_PLAIN : POP3_MECH_NONE;
}

const char *pop3_mech_name(enum pop3_mech m)
{
    switch (m) {
    case POP3_MECH_APOP:
        return "APOP";
    case POP3_MECH_USER_PASS:
        return "USER/PASS";
    case POP3_MECH_AUTH_PLAIN:
        return "AUTH PLAIN";
    case POP3_MECH_NONE:
        return "none";
    }
    return "?";
}

/* ---- the dialogue ---- */

struct pop3_session {
    const struct login_target *t;
    const struct login_creds *c;
    const struct logger *log;
    struct login_outcome *out;
    int64_t deadline_ms;
    struct stream *s;
    struct redact_set rs; /* what server text is cleaned of before it is logged */
    bool have_timestamp;
    bool offers_xclient; /* the greeting carried [XCLIENT] (never used: see note_no_xclient) */
    char timestamp[POP3_APOP_TIMESTAMP_MAX + 1];
    long apop_cost_ms; /* APOP refused: its round trip and any reconnect it caused */
};

/* Read one line of the answer to the command what. Every POP3 line after the greeting answers
 * the last command, and POP3 has no unsolicited data that could be skipped: a line that began
 * before the command went out (stream_line_is_stale) was sent ahead of time, pipelined or
 * injected, and is no answer to it. PROTO_EPROTO then; the dialogue cannot go on. */
static enum proto_result read_answer_line(struct pop3_session *ps, const char *what,
                                          const char **line, size_t *len)
{
    enum stream_result r = stream_read_line(ps->s, line, len, &ps->out->reason);
    char q[160];

    if (r != STREAM_OK)
        return stream_result_to_proto(r);
    if (!stream_line_is_stale(ps->s))
        return PROTO_OK;
    stream_excerpt(ps->s, q, sizeof(q), *line, *len);
    errbuf_set(&ps->out->reason,
               "server sent \"%s\" before %s went out: not a reply to it (pipelined or injected)",
               q, what);
    return PROTO_EPROTO;
}

/* Read one status reply. PROTO_OK with *kind set, or the stream failure. An unrecognised reply
 * is PROTO_EPROTO: only a well-formed +OK may ever count as success. */
static enum proto_result read_reply(struct pop3_session *ps, const char *what,
                                    enum pop3_reply *kind, const char **line, size_t *len)
{
    enum proto_result r = read_answer_line(ps, what, line, len);
    char q[160];

    if (r != PROTO_OK)
        return r;
    *kind = pop3_reply_classify(*line, *len);
    if (*kind == POP3_REPLY_INVALID) {
        stream_excerpt(ps->s, q, sizeof(q), *line, *len);
        errbuf_set(&ps->out->reason, "unexpected reply to %s: \"%s\"", what, q);
        return PROTO_EPROTO;
    }
    return PROTO_OK;
}

/* The text of an -ERR meant for the user (verdict_pop3_user_text: [SYS/PERM], or [AUTH] that
 * answered the credentials), kept as imap.c keeps an [ALERT]: the first of the dialogue, cleaned
 * (alert.c), with whether it came over TLS (auth.c shows only that, and logs the rest). */
static void note_user_text(struct pop3_session *ps, const char *line, size_t len, bool creds_sent)
{
    const char *code, *text;
    size_t n;

    if (ps->out->alert[0] != '\0' ||
        !verdict_pop3_user_text(line, len, creds_sent, &code, &text, &n))
        return;
    ps->out->alert_tls = ps->s->tls != NULL;
    ps->out->alert_code = code;
    if (alert_clean(&ps->rs, ps->out->alert, sizeof(ps->out->alert), text, n) == ALERT_SECRET)
        log_msg(ps->log, LOG_NOTICE, "server \"%s\" %s: its [%s] text held the password; not shown",
                ps->t->label, ps->out->address, code);
}

/* Judge an -ERR to a login step (verdict.c decides what it means; the reason says so).
 * creds_sent: the step carried the password (APOP, PASS, AUTH PLAIN), not only the name. */
static enum verdict judge_err(struct pop3_session *ps, const char *what, const char *line,
                              size_t len, bool closed_after, bool creds_sent)
{
    enum verdict v = verdict_classify(PROTOCOL_POP3, line, len, closed_after, creds_sent);
    char q[160];

    note_user_text(ps, line, len, creds_sent);

    stream_excerpt(ps->s, q, sizeof(q), line, len);
    verdict_describe(v, what, q, closed_after, &ps->out->reason);
    return v;
}

static enum proto_result refused(struct pop3_session *ps, const char *what, const char *line,
                                 size_t len)
{
    bool creds_sent = ps->out->creds == CREDS_ALL;

    return verdict_to_proto(judge_err(ps, what, line, len, stream_peer_closed(ps->s), creds_sent));
}

/* Read and judge the reply to a command that carried credentials (APOP, PASS, AUTH PLAIN). */
static enum proto_result credential_reply(struct pop3_session *ps, const char *what)
{
    enum pop3_reply kind;
    const char *line;
    size_t len;
    enum proto_result r = read_reply(ps, what, &kind, &line, &len);

    if (r != PROTO_OK)
        return r;
    if (kind == POP3_REPLY_OK)
        return proto_accept(ps->out, what);
    if (kind == POP3_REPLY_ERR)
        return refused(ps, what, line, len);
    errbuf_set(&ps->out->reason, "unexpected continuation after %s", what);
    return PROTO_EPROTO;
}

static enum proto_result start_tls(struct pop3_session *ps)
{
    enum pop3_reply kind;
    const char *line;
    size_t len;
    char q[160];
    enum proto_result r =
        stream_result_to_proto(stream_sendf(ps->s, &ps->out->reason, NULL, "STLS"));

    if (r == PROTO_OK)
        r = read_reply(ps, "STLS", &kind, &line, &len);
    if (r != PROTO_OK)
        return r;
    if (kind != POP3_REPLY_OK) {
        stream_excerpt(ps->s, q, sizeof(q), line, len);
        errbuf_set(&ps->out->reason,
                   "server refused STLS (\"%s\"); tls = starttls: password not sent", q);
        return PROTO_EINSECURE;
    }
    return stream_result_to_proto(stream_start_tls(ps->s, &ps->out->reason));
}

/* Connect, read the greeting, STLS when configured. */
static enum proto_result open_session(struct pop3_session *ps)
{
    enum stream_result sr;
    enum pop3_reply kind;
    const char *line;
    size_t len;
    char q[160];
    enum proto_result r;

    r = stream_open_login(ps->t, &ps->rs, ps->deadline_ms, ps->log, &ps->s, ps->out);
    if (r != PROTO_OK)
        return r;
    sr = stream_read_line(ps->s, &line, &len, &ps->out->reason);
    if (sr != STREAM_OK) {
        stream_explain_greeting_failure(ps->s, sr, &ps->out->reason);
        return stream_result_to_proto(sr);
    }
    kind = pop3_reply_classify(line, len);
    if (kind != POP3_REPLY_OK) {
        stream_excerpt(ps->s, q, sizeof(q), line, len);
        errbuf_set(&ps->out->reason, "server refused service: \"%s\"", q);
        return kind == POP3_REPLY_ERR ? PROTO_ETEMP : PROTO_EPROTO;
    }
    ps->have_timestamp = pop3_apop_timestamp(line, len, ps->timestamp, sizeof(ps->timestamp));
    ps->offers_xclient = pop3_greeting_offers_xclient(line, len);
    if (ps->t->tls == TLS_MODE_STARTTLS)
        return start_tls(ps);
    return PROTO_OK;
}

/* Open a session that credentials may follow. stream_send_credential enforces the cleartext rule
 * on every credential; asking first keeps a login that could not be finished from starting at all
 * (no USER in clear). Also on a reconnect, which may land on another address of the host. */
static enum proto_result open_for_credentials(struct pop3_session *ps)
{
    enum proto_result r = open_session(ps);

    if (r == PROTO_OK && !stream_may_send_credentials(ps->s, &ps->out->reason))
        r = PROTO_EINSECURE;
    return r;
}

/* The end user's address is never forwarded over POP3, although Dovecot offers XCLIENT: POP3
 * replies carry no tag, so the client pairs them with its commands by counting lines, and the
 * number of lines a server answers an extension with is not fixed (a proxy may greet again after
 * XCLIENT; the line may come late). Any line past the count would be read as the answer to the
 * next command, and in front of credentials that is a verdict: "+OK" to the password. Nothing
 * read afterwards can prove the stream back in step (a late line looks like any answer), so
 * only commands whose answer has a fixed shape (RFC 1939, 2449, 2595, 5034: one status line;
 * CAPA's list ends with ".") go out in front of credentials. Said at debug level when
 * forwarding was asked for and offered. */
static void note_no_xclient(const struct pop3_session *ps)
{
    if (ps->c->client_ip == NULL || !ps->t->forward_client_ip || !ps->offers_xclient)
        return;
    log_debug(ps->log,
              "%s %s: the client address is not forwarded: POP3 answers carry no tag, and an "
              "XCLIENT answer of unknown length in front of the credentials could be read as "
              "their verdict",
              ps->out->address, ps->t->label);
}

static enum proto_result try_apop(struct pop3_session *ps)
{
    char digest[33];
    char trace[320];
    enum proto_result r;

    if (!pop3_apop_digest(ps->timestamp, ps->c->password, ps->c->password_len, digest)) {
        errbuf_set(&ps->out->reason, "cannot compute the APOP digest (MD5 unavailable)");
        return PROTO_EIO;
    }
    /* The sender registers the digest as sent; a server may echo it in capitals too. */
    redact_add_apop_digest(&ps->rs, digest);
    snprintf(trace, sizeof(trace), "APOP %.*s " REDACT_MARK, (int)ps->c->user_len, ps->c->user);
    /* The digest can be cracked offline and answered by anyone on the path: a credential. */
    r = stream_result_to_proto(stream_send_credential(ps->s, &ps->out->reason, CRED_WHOLE, trace,
                                                      "APOP %.*s %s", (int)ps->c->user_len,
                                                      ps->c->user, digest));
    secret_wipe(digest, sizeof(digest));
    return r == PROTO_OK ? credential_reply(ps, "APOP") : r;
}

/* CAPA, multi-line, dot-terminated. */
static enum proto_result read_capa(struct pop3_session *ps, struct pop3_caps *caps)
{
    enum pop3_reply kind;
    const char *line;
    size_t len;
    enum proto_result r =
        stream_result_to_proto(stream_sendf(ps->s, &ps->out->reason, NULL, "CAPA"));

    if (r == PROTO_OK)
        r = read_reply(ps, "CAPA", &kind, &line, &len);
    if (r != PROTO_OK)
        return r;
    if (kind != POP3_REPLY_OK)
        return PROTO_OK; /* no CAPA: no capabilities known */
    for (int i = 0; i < CAPA_MAX_LINES; i++) {
        r = read_answer_line(ps, "CAPA", &line, &len);
        if (r != PROTO_OK)
            return r;
        if (len == 1 && line[0] == '.')
            return PROTO_OK;
        if (len > 0 && line[0] == '.') {
            line++;
            len--;
        }
        pop3_capa_line(line, len, caps);
    }
    errbuf_set(&ps->out->reason, "CAPA reply longer than %d lines", CAPA_MAX_LINES);
    return PROTO_EPROTO;
}

/* AUTH through the one SASL driver (sasl_exchange.c): "+ base64" continues, +OK or -ERR ends
 * the exchange and is kept here for the judge. */
struct pop3_sasl {
    struct pop3_session *ps;
    const char *what; /* "AUTH PLAIN", for the reasons read_reply gives */
    enum pop3_reply kind;
    const char *line;
    size_t len;
};

static enum proto_result sasl_read(void *ctx, bool *cont, const char **data, size_t *len)
{
    struct pop3_sasl *x = ctx;
    enum proto_result r = read_reply(x->ps, x->what, &x->kind, &x->line, &x->len);

    *cont = r == PROTO_OK && x->kind == POP3_REPLY_CONT;
    *data = !*cont ? x->line : x->len > 2 ? x->line + 2 : x->line + x->len;
    *len = !*cont ? x->len : x->len > 2 ? x->len - 2 : 0;
    return r;
}

static const struct sasl_proto pop3_sasl = {.read = sasl_read, .cancel = "*"};

/* Run mechanism m with AUTH; *fell: it ended before the password went whole (the server cannot
 * run it for this user, or the credentials cannot be used with it): a next one may be tried. */
static enum proto_result try_auth(struct pop3_session *ps, const struct sasl_mech *m,
                                  const struct pop3_caps *caps, bool *fell)
{
    char what[48];
    struct pop3_sasl reply = {.ps = ps, .what = what};
    struct sasl_exchange x = {
        .proto = &pop3_sasl,
        .ctx = &reply,
        .s = ps->s,
        .out = ps->out,
        .log = ps->log,
        .label = ps->t->label,
        .command = "AUTH",
        .initial_response = true, /* RFC 5034 */
        .cb_offered = caps != NULL && caps->sasl_plus,
    };
    enum sasl_end end;
    enum proto_result r;

    snprintf(what, sizeof(what), "AUTH %s", m->name);
    r = sasl_exchange_run(&x, m, ps->c, &end);
    *fell = end == SASL_END_UNUSABLE;
    if (r != PROTO_OK || end != SASL_END_FINAL)
        return r;
    if (reply.kind == POP3_REPLY_OK)
        return proto_accept(ps->out, what);
    if (ps->out->creds != CREDS_ALL) {
        /* -ERR before it had the password: no verdict on it (Dovecot cannot run SCRAM for a
         * user whose stored hash is of another scheme, and says so only by -ERR). */
        char q[160];
        stream_excerpt(ps->s, q, sizeof(q), reply.line, reply.len);
        errbuf_set(&ps->out->reason, "server answered %s before the credentials were sent: \"%s\"",
                   what, q);
        *fell = true;
        return PROTO_EPROTO;
    }
    return refused(ps, what, reply.line, reply.len);
}

static enum proto_result try_auth_plain(struct pop3_session *ps)
{
    bool fell;

    return try_auth(ps, sasl_mech_by_name("PLAIN", 5), NULL, &fell);
}

/* mechanisms = ...: as in IMAP (imap.c: authenticate_configured), after CAPA over the channel
 * the password will travel on. */
static enum proto_result auth_configured(struct pop3_session *ps)
{
    struct pop3_caps caps = {0};
    enum proto_result r = read_capa(ps, &caps);
    int64_t started = clock_now_ms();
    const char *failed = NULL;

    if (r != PROTO_OK)
        return r;
    const struct sasl_mech *m;

    for (unsigned i = 0; (m = sasl_plan_next(ps->t->mechanisms, ps->t->n_mechanisms,
                                             caps.sasl_mechs, i, &i)) != NULL;
         i++) {
        bool fell = false;
        if (failed != NULL)
            log_msg(ps->log, LOG_WARNING,
                    "%s %s: %s failed before the password was checked (%s); trying %s: this "
                    "cost %lld ms",
                    ps->out->address, ps->t->label, failed, ps->out->reason.text, m->name,
                    (long long)(clock_now_ms() - started));
        r = try_auth(ps, m, &caps, &fell);
        if (r == PROTO_OK || !fell)
            return r;
        failed = m->name;
    }
    if (failed == NULL) {
        errbuf_set(&ps->out->reason,
                   "server offers none of the configured mechanisms; password not sent");
        r = PROTO_EINSECURE;
    }
    return r;
}

/* USER was refused. Not a verdict when the server said why it would not look (TLS required,
 * try later) or hung up; if it has no USER command but SASL PLAIN, use that instead. */
static enum proto_result after_user_refused(struct pop3_session *ps, const char *line, size_t len)
{
    struct pop3_caps caps = {0};
    char q[160];
    enum verdict v = judge_err(ps, "USER", line, len, stream_peer_closed(ps->s), false);
    enum proto_result r;

    if (v != VERDICT_REFUSED)
        return verdict_to_proto(v);
    stream_excerpt(ps->s, q, sizeof(q), line, len);
    r = read_capa(ps, &caps);
    if (r == PROTO_EIO && stream_peer_closed(ps->s)) /* it hung up right after refusing USER */
        return verdict_to_proto(judge_err(ps, "USER", line, len, true, false));
    if (r != PROTO_OK)
        return r;
    switch (pop3_mechanism_after_user_refused(&caps)) {
    case POP3_MECH_AUTH_PLAIN:
        return try_auth_plain(ps);
    case POP3_MECH_NONE:
        errbuf_set(&ps->out->reason, "server refused USER (\"%s\") and offers no SASL PLAIN", q);
        return PROTO_EPROTO;
    default:
        break;
    }
    errbuf_set(&ps->out->reason, "server refused the user name (USER): \"%s\"", q);
    return PROTO_EAUTHFAIL;
}

static enum proto_result send_user(struct pop3_session *ps, enum pop3_reply *kind,
                                   const char **line, size_t *len)
{
    enum proto_result r = stream_result_to_proto(stream_sendf(
        ps->s, &ps->out->reason, NULL, "USER %.*s", (int)ps->c->user_len, ps->c->user));

    if (r == PROTO_OK)
        r = read_reply(ps, "USER", kind, line, len);
    return r;
}

static enum proto_result try_user_pass(struct pop3_session *ps, bool may_reconnect)
{
    enum pop3_reply kind;
    const char *line;
    size_t len;
    enum proto_result r = send_user(ps, &kind, &line, &len);

    if (r == PROTO_EIO && may_reconnect) {
        /* Some servers drop the line after a refused APOP: start over once (RFC 1939 allows
         * it) and read the new greeting before anything else. */
        int64_t began = clock_now_ms();
        log_debug(ps->log, "%s %s: connection lost after APOP was refused; reconnecting",
                  ps->out->address, ps->t->label);
        stream_close(ps->s);
        ps->s = NULL;
        r = open_for_credentials(ps);
        ps->apop_cost_ms += (long)(clock_now_ms() - began);
        if (r == PROTO_OK)
            r = send_user(ps, &kind, &line, &len);
    }
    if (r != PROTO_OK)
        return r;
    if (kind == POP3_REPLY_ERR)
        return after_user_refused(ps, line, len);
    if (kind != POP3_REPLY_OK) {
        errbuf_set(&ps->out->reason, "unexpected continuation after USER");
        return PROTO_EPROTO;
    }
    r = stream_result_to_proto(stream_send_credential(ps->s, &ps->out->reason, CRED_WHOLE,
                                                      "PASS <redacted>", "PASS %.*s",
                                                      (int)ps->c->password_len, ps->c->password));
    return r == PROTO_OK ? credential_reply(ps, "PASS") : r;
}

static enum proto_result login(struct pop3_session *ps)
{
    bool apop_refused = false;
    enum pop3_mech mech;
    int64_t apop_began;
    enum proto_result r = open_for_credentials(ps);

    if (r != PROTO_OK)
        return r;
    note_no_xclient(ps);
    if (ps->t->n_mechanisms > 0)
        return auth_configured(ps);
    mech = pop3_first_mechanism(ps->t->apop, ps->have_timestamp,
                                memchr(ps->c->user, ' ', ps->c->user_len) != NULL);
    if (mech == POP3_MECH_APOP) {
        apop_began = clock_now_ms();
        r = try_apop(ps);
        if (r != PROTO_EAUTHFAIL || ps->t->apop == APOP_ONLY)
            return r;
        ps->apop_cost_ms = (long)(clock_now_ms() - apop_began);
        log_debug(ps->log, "%s %s: APOP refused; trying USER/PASS (%s)", ps->out->address,
                  ps->t->label, ps->out->reason.text);
        /* The refusal was of APOP, not of the password: it describes nothing from here on, and
         * its [AUTH] text is not for the user. */
        errbuf_clear(&ps->out->reason);
        ps->out->alert[0] = '\0';
        apop_refused = true;
    } else if (mech == POP3_MECH_NONE) {
        errbuf_set(&ps->out->reason,
                   "apop = only but the greeting carries no usable APOP timestamp");
        return PROTO_EINSECURE;
    }
    r = try_user_pass(ps, apop_refused);
    if (r == PROTO_OK && apop_refused)
        ps->out->apop_wasted_ms = ps->apop_cost_ms > 0 ? ps->apop_cost_ms : 1;
    return r;
}

enum proto_result pop3_login(const struct login_target *t, const struct login_creds *c,
                             const struct logger *log, struct login_outcome *out)
{
    struct pop3_session ps = {
        .t = t,
        .c = c,
        .log = log,
        .out = out,
        .deadline_ms = clock_now_ms() + t->timeout_ms,
    };
    enum proto_result r;

    errbuf_clear(&out->reason);
    out->apop_wasted_ms = 0;
    snprintf(out->address, sizeof(out->address), "%s:%u", t->host, t->port);
    redact_init(&ps.rs, c);
    r = login(&ps);
    if (ps.s != NULL) {
        struct errbuf ignored;
        /* QUIT politely when the dialogue ended cleanly; never wait for its answer. */
        if (r == PROTO_OK || r == PROTO_EAUTHFAIL)
            stream_sendf(ps.s, &ignored, NULL, "QUIT");
        stream_close(ps.s);
    }
    redact_wipe(&ps.rs);
    out->result = r;
    return r;
}
