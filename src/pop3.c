#include "pop3.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "alert.h"
#include "plan.h"
#include "redact.h"
#include "sasl_exchange.h"
#include "stream.h"
#include "verdict.h"

#define CAPA_MAX_LINES 200

/* ---- pure parsers (unit-tested and fuzzed) ---- */

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
        const struct sasl_mech *m = sasl_mech_by_name(line + start, i - start);
        if (m != NULL)
            caps->sasl_mechs |= 1u << m->id;
        if (i - start > 5 && ascii_word_is(line + i - 5, 5, "-PLUS"))
            caps->sasl_plus = true;
    }
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
    struct plan_walk walk; /* the plan's entries tried so far (plan.h) */
};

static enum proto_result read_reply(struct pop3_session *ps, const char *what,
                                    enum pop3_reply *kind, const char **line, size_t *len)
{
    return pop3_read_reply(ps->s, what, kind, line, len, &ps->out->reason);
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
    ps->out->alert_tls = stream_tls(ps->s) != NULL;
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

static void take_capa_line(void *ctx, const char *line, size_t len)
{
    pop3_capa_line(line, len, ctx);
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
    caps->known = true;
    return pop3_read_body(ps->s, "CAPA", CAPA_MAX_LINES, take_capa_line, caps, &ps->out->reason);
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

/* What the plan (plan.c) is made from: the greeting, CAPA when it was read, the user name. */
static void plan_now(const struct pop3_session *ps, const struct pop3_caps *caps,
                     struct login_plan *p)
{
    const struct plan_offer o = {
        .caps_known = caps->known,
        .sasl_mechs = caps->sasl_mechs,
        .pop3_user = caps->user,
        .apop_timestamp = ps->have_timestamp,
        .cb_unbindable = sasl_channel_unbindable(ps->s),
    };
    const struct plan_user u = {
        .has_space = memchr(ps->c->user, ' ', ps->c->user_len) != NULL,
    };

    plan_login(ps->t, &o, &u, p);
}

/* USER was refused. Not a verdict when the server said why it would not look (TLS required,
 * try later) or hung up; otherwise CAPA, and the plan made with it says what follows: AUTH PLAIN
 * when it lists SASL PLAIN and no USER; nothing when it lists neither (no verdict); the refusal
 * stands when it lists USER. */
static enum proto_result after_user_refused(struct pop3_session *ps, const char *line, size_t len)
{
    struct pop3_caps caps = {0};
    struct login_plan p;
    char q[160];
    bool fell;
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
    plan_now(ps, &caps, &p);
    for (unsigned i = 0; i < p.n; i++) {
        if (p.e[i].when != PLAN_WHEN_USER_REFUSED)
            continue;
        plan_walk_try(&ps->walk, &p.e[i], ps->out, ps->log, ps->t->label, clock_now_ms());
        return try_auth(ps, p.e[i].mech, &caps, &fell);
    }
    if (!caps.user) {
        errbuf_set(&ps->out->reason, "server refused USER (\"%s\") and offers no SASL PLAIN", q);
        return PROTO_EPROTO;
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
        ps->walk.extra_ms += (long)(clock_now_ms() - began);
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

/* APOP was refused: if the plan's next entry is USER/PASS (apop = auto), the refusal was of
 * APOP, not of the password: it describes nothing from here on, and its [AUTH] text is not for
 * the user. */
static bool apop_falls_back(struct pop3_session *ps, const struct login_plan *p, unsigned i)
{
    if (i + 1 >= p->n || p->e[i + 1].when != PLAN_WHEN_APOP_REFUSED)
        return false;
    log_debug(ps->log, "%s %s: APOP refused; trying USER/PASS (%s)", ps->out->address, ps->t->label,
              ps->out->reason.text);
    errbuf_clear(&ps->out->reason);
    ps->out->alert[0] = '\0';
    return true;
}

/* One entry of the plan (plan_run_fn). */
struct pop3_run {
    struct pop3_session *ps;
    const struct pop3_caps *caps;
};

static enum proto_result run_entry(void *ctx, const struct login_plan *p, unsigned i, bool *fell)
{
    struct pop3_run *run = ctx;
    struct pop3_session *ps = run->ps;
    const struct plan_entry *e = &p->e[i];
    enum proto_result r;

    *fell = false;
    switch (e->method) {
    case PLAN_POP3_APOP:
        r = try_apop(ps);
        *fell = r == PROTO_EAUTHFAIL && apop_falls_back(ps, p, i);
        return r;
    case PLAN_POP3_USER_PASS:
        return try_user_pass(ps, ps->walk.failed > 0);
    default:
        return try_auth(ps, e->mech, run->caps, fell);
    }
}

/* With mechanisms = ..., CAPA over the channel the password will travel on first: the plan
 * needs the server's SASL list. The default login needs none (read only if USER is refused). */
static enum proto_result login(struct pop3_session *ps)
{
    struct pop3_caps caps = {0};
    struct login_plan p;
    enum proto_result r = open_for_credentials(ps);

    if (r != PROTO_OK)
        return r;
    note_no_xclient(ps);
    if (ps->t->n_mechanisms > 0 && (r = read_capa(ps, &caps)) != PROTO_OK)
        return r;
    plan_now(ps, &caps, &p);
    return plan_walk_run(&ps->walk, &p, 0, run_entry, &(struct pop3_run){.ps = ps, .caps = &caps},
                         ps->out, ps->log, ps->t->label);
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
