#include "imap.h"

#include <stdio.h>
#include <string.h>

#include "alert.h"
#include "plan.h"
#include "redact.h"
#include "sasl_exchange.h"
#include "stream.h"
#include "verdict.h"

/* ---- pure parsers (unit-tested and fuzzed) ---- */

void imap_caps_parse(const char *list, size_t len, struct imap_caps *caps)
{
    size_t i = 0;

    caps->known = true;
    while (i < len) {
        size_t start;
        while (i < len && list[i] == ' ')
            i++;
        start = i;
        while (i < len && list[i] != ' ')
            i++;
        const char *w = list + start;
        size_t n = i - start;
        if (ascii_word_is(w, n, "STARTTLS"))
            caps->starttls = true;
        else if (ascii_word_is(w, n, "LOGINDISABLED"))
            caps->logindisabled = true;
        if (n > 5 && ascii_same_nocase(w, "AUTH=", 5)) {
            const struct sasl_mech *m = sasl_mech_by_name(w + 5, n - 5);
            if (m != NULL)
                caps->sasl_mechs |= 1u << m->id;
            if (n > 10 && ascii_same_nocase(w + n - 5, "-PLUS", 5))
                caps->sasl_plus = true;
        } else if (ascii_word_is(w, n, "SASL-IR"))
            caps->sasl_ir = true;
        else if (ascii_word_is(w, n, "LITERAL+"))
            caps->literal_plus = true;
        else if (ascii_word_is(w, n, "LITERAL-"))
            caps->literal_minus = true;
        else if (ascii_word_is(w, n, "ID"))
            caps->id = true;
    }
}

const char *imap_capability_list(const char *p, size_t len, size_t *list_len)
{
    static const char word[] = "CAPABILITY";
    size_t n = sizeof(word) - 1;

    if (p == NULL || len < n || !ascii_same_nocase(p, word, n) || (len > n && p[n] != ' '))
        return NULL;
    *list_len = len > n ? len - n - 1 : 0;
    return p + (len > n ? n + 1 : n);
}

void imap_caps_from_code(const struct imap_reply *r, struct imap_caps *caps)
{
    size_t len;
    const char *list = imap_capability_list(r->code, r->code_len, &len);

    if (list == NULL)
        return;
    *caps = (struct imap_caps){0};
    imap_caps_parse(list, len, caps);
}

bool imap_can_quote(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0 || c == '\r' || c == '\n' || c > 0x7f)
            return false;
    }
    return true;
}

size_t imap_quote(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    if (!imap_can_quote(s, n) || cap < 3)
        return 0;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            if (o + 1 >= cap)
                return 0;
            out[o++] = '\\';
        }
        if (o + 1 >= cap)
            return 0;
        out[o++] = s[i];
    }
    if (o + 2 > cap)
        return 0;
    out[o++] = '"';
    out[o] = '\0';
    return o;
}

/* ---- the dialogue ---- */

/* A command queued in front of the next one (stream_queue_line), whose reply must be read, in
 * order, before that command's. */
enum pipelined_kind { PIPELINED_CAPABILITY, PIPELINED_ID };

struct pipelined {
    enum pipelined_kind kind;
    char tag[16];
};

struct imap_session {
    const struct login_target *t;
    const struct login_creds *c;
    const struct logger *log;
    struct login_outcome *out;
    struct stream *s;
    struct imap_caps caps;
    struct redact_set rs; /* what server text is cleaned of before it is logged */
    unsigned next_tag;
    char tag[16];
    struct pipelined pipelined[2]; /* queued commands whose replies are still to be read */
    unsigned n_pipelined;
    struct imap_caps tls_caps;    /* what the CAPABILITY pipelined after STARTTLS listed */
    char bye[160];                /* text of an untagged BYE, if one came (redacted) */
    enum verdict bye_verdict;     /* what that BYE means should the connection end after it */
    bool creds_begun;             /* a piece of the current command's credentials went out */
    struct imap_reply sasl_final; /* the reply that ended an AUTHENTICATE exchange */
};

static void new_tag(struct imap_session *is)
{
    snprintf(is->tag, sizeof(is->tag), "A%u", ++is->next_tag);
    /* A BYE that came before this command (the server carried on) says nothing about it: a
     * later close must not be explained by an earlier step's BYE. */
    is->bye[0] = '\0';
}

/* An [ALERT] response code (RFC 9051 7.1) in any reply: its text, cleaned, for the user. The
 * first one of the dialogue is kept, unless it came in clear (before STARTTLS) and this one
 * over TLS. */
static void note_alert(struct imap_session *is, const struct imap_reply *r)
{
    bool tls = stream_tls(is->s) != NULL;

    if (r->code == NULL || !ascii_word_is(r->code, r->code_len, "ALERT") ||
        (is->out->alert[0] != '\0' && (is->out->alert_tls || !tls)))
        return;
    if (is->out->alert[0] != '\0') {
        char shown[PROTO_ALERT_MAX];
        text_sanitize(shown, sizeof(shown), is->out->alert, strlen(is->out->alert));
        log_msg(is->log, LOG_NOTICE,
                "server \"%s\" %s: [ALERT] received in clear, not shown to the user: \"%s\"",
                is->t->label, is->out->address, shown);
    }
    is->out->alert_tls = tls;
    is->out->alert_code = "ALERT";
    if (alert_clean(&is->rs, is->out->alert, sizeof(is->out->alert), r->data, r->data_len) ==
        ALERT_SECRET)
        log_msg(is->log, LOG_NOTICE, "server \"%s\" %s: its [ALERT] held the password; not shown",
                is->t->label, is->out->address);
}

/* Untagged data (the reader skips its literals): note BYE and [ALERT], take CAPABILITY. */
static void absorb_untagged(void *ctx, const struct imap_reply *r)
{
    struct imap_session *is = ctx;
    const char *list;
    size_t list_len;

    if (r->status == IMAP_ST_BYE) {
        /* Only a BYE the server sent after it had the whole credentials can refuse them. One
         * before (in clear ahead of STARTTLS anyone on the path can send it) judged nothing: it
         * must neither end the walk (on_reject = stop) nor make the cache forget a password. */
        bool answers_creds = is->out->creds == CREDS_ALL && !stream_line_is_stale(is->s);

        stream_excerpt(is->s, is->bye, sizeof(is->bye), r->data, r->data_len);
        is->bye_verdict =
            verdict_classify(PROTOCOL_IMAP, r->line, r->line_len, true, answers_creds);
        if (is->bye_verdict == VERDICT_REFUSED && !answers_creds)
            is->bye_verdict = VERDICT_NOT_ANSWERED;
    }
    imap_caps_from_code(r, &is->caps);
    note_alert(is, r);
    if (r->status == IMAP_ST_NONE &&
        (list = imap_capability_list(r->data, r->data_len, &list_len)) != NULL) {
        is->caps = (struct imap_caps){0};
        imap_caps_parse(list, list_len, &is->caps);
    }
}

static enum proto_result connection_lost(struct imap_session *is, enum stream_result sr)
{
    if (sr == STREAM_EEOF && is->bye[0] != '\0') {
        /* A BYE in place of the answer is no verdict unless it carries a refusal code and came
         * after the credentials (absorb_untagged). */
        if (is->bye_verdict == VERDICT_REFUSED)
            verdict_describe(is->bye_verdict, "BYE", is->bye, true, &is->out->reason);
        else
            errbuf_set(&is->out->reason, "server said BYE: \"%s\"", is->bye);
        return verdict_to_proto(is->bye_verdict);
    }
    return stream_result_to_proto(sr);
}

/* Read until the tagged reply to tag (or a continuation, when want_cont) with the one IMAP reader
 * (imap_reply.c); a close in place of it may be explained by a BYE that came before. */
static enum proto_result read_tagged(struct imap_session *is, const char *tag, const char *what,
                                     bool want_cont, struct imap_reply *r)
{
    enum stream_result failure;
    enum proto_result pr = imap_read_tagged(is->s, tag, what, want_cont, absorb_untagged, is, r,
                                            &failure, &is->out->reason);

    return failure != STREAM_OK ? connection_lost(is, failure) : pr;
}

/* The reply to a pipelined CAPABILITY replaces whatever was known: it must be OK and list
 * something. The reply to a pipelined ID never decides anything: NO or BAD only means the server
 * did not take the forwarded address (said once, at debug level). Anything else than a tagged
 * reply to the queued command (the next command's reply first, a continuation) is a protocol
 * error, so no answer to the login can be mistaken for, or hidden by, an answer to these. */
static enum proto_result read_pipelined(struct imap_session *is, const struct pipelined *p)
{
    struct imap_reply r;
    enum proto_result pr;
    char q[160];

    if (p->kind == PIPELINED_CAPABILITY)
        is->caps = (struct imap_caps){0};
    pr = read_tagged(is, p->tag, p->kind == PIPELINED_ID ? "ID" : "CAPABILITY", false, &r);
    if (pr != PROTO_OK)
        return pr;
    if (p->kind == PIPELINED_CAPABILITY) {
        if (r.status != IMAP_ST_OK || !is->caps.known) {
            errbuf_set(&is->out->reason, "CAPABILITY failed or listed nothing");
            return PROTO_EPROTO;
        }
        is->tls_caps = is->caps;
        return PROTO_OK;
    }
    if (r.status != IMAP_ST_OK) {
        stream_excerpt(is->s, q, sizeof(q), r.data, r.data_len);
        log_debug(is->log, "%s %s: the server did not take the forwarded client address (ID: %s)",
                  is->out->address, is->t->label, q);
    }
    return PROTO_OK;
}

/* Read until the tagged reply to is->tag (or a continuation, when want_cont), after the replies
 * to the commands pipelined in front of it, in the order they went out. */
static enum proto_result read_until(struct imap_session *is, const char *what, bool want_cont,
                                    struct imap_reply *r)
{
    for (unsigned i = 0; i < is->n_pipelined; i++) {
        enum proto_result pr = read_pipelined(is, &is->pipelined[i]);
        if (pr != PROTO_OK)
            return pr;
    }
    is->n_pipelined = 0;
    return read_tagged(is, is->tag, what, want_cont, r);
}

/* Queue a command to go out with the next one (see struct pipelined). */
static enum proto_result pipeline(struct imap_session *is, enum pipelined_kind kind,
                                  const char *fmt_arg)
{
    struct pipelined *p;
    enum proto_result pr;

    if (is->n_pipelined >= MA_ARRAY_LEN(is->pipelined)) {
        errbuf_set(&is->out->reason, "internal error: too many pipelined commands");
        return PROTO_EIO;
    }
    p = &is->pipelined[is->n_pipelined];
    new_tag(is);
    snprintf(p->tag, sizeof(p->tag), "%s", is->tag);
    p->kind = kind;
    if (kind == PIPELINED_CAPABILITY)
        pr = stream_result_to_proto(
            stream_queue_line(is->s, &is->out->reason, "%s CAPABILITY", p->tag));
    else
        pr = stream_result_to_proto(stream_queue_line(
            is->s, &is->out->reason, "%s ID (\"x-originating-ip\" \"%s\")", p->tag, fmt_arg));
    if (pr == PROTO_OK)
        is->n_pipelined++;
    return pr;
}

/* Forward the end user's address (IMAP ID, RFC 2971; Dovecot believes x-originating-ip from
 * login_trusted_networks) in front of the login command, when there is one to forward, the
 * server's configuration allows it and the server offers ID. */
static enum proto_result forward_client_ip(struct imap_session *is, bool offers_id)
{
    if (is->c->client_ip == NULL || !is->t->forward_client_ip || !offers_id)
        return PROTO_OK;
    return pipeline(is, PIPELINED_ID, is->c->client_ip);
}

/* Send a command without arguments and wait for its tagged reply. */
static enum proto_result simple_command(struct imap_session *is, const char *verb,
                                        struct imap_reply *r)
{
    enum proto_result pr;

    new_tag(is);
    pr =
        stream_result_to_proto(stream_sendf(is->s, &is->out->reason, NULL, "%s %s", is->tag, verb));
    if (pr == PROTO_OK)
        pr = read_until(is, verb, false, r);
    return pr;
}

static enum proto_result ask_capabilities(struct imap_session *is)
{
    struct imap_reply r;
    enum proto_result pr;

    is->caps = (struct imap_caps){0};
    pr = simple_command(is, "CAPABILITY", &r);
    if (pr != PROTO_OK)
        return pr;
    if (r.status != IMAP_ST_OK || !is->caps.known) {
        errbuf_set(&is->out->reason, "CAPABILITY failed or listed nothing");
        return PROTO_EPROTO;
    }
    return PROTO_OK;
}

static enum proto_result read_greeting(struct imap_session *is)
{
    const char *line;
    size_t len;
    struct imap_reply r;
    char q[160];
    enum stream_result sr = stream_read_line(is->s, &line, &len, &is->out->reason);

    if (sr != STREAM_OK) {
        stream_explain_greeting_failure(is->s, sr, &is->out->reason);
        return stream_result_to_proto(sr);
    }
    imap_parse_reply(line, len, "", &r);
    note_alert(is, &r);
    stream_excerpt(is->s, q, sizeof(q), line, len);
    if (r.kind != IMAP_UNTAGGED || r.status == IMAP_ST_NONE || r.status == IMAP_ST_NO ||
        r.status == IMAP_ST_BAD) {
        errbuf_set(&is->out->reason, "not an IMAP greeting: \"%s\"", q);
        return PROTO_EPROTO;
    }
    if (r.status == IMAP_ST_BYE) {
        errbuf_set(&is->out->reason, "server refused service: \"%s\"", q);
        return PROTO_ETEMP;
    }
    if (r.status == IMAP_ST_PREAUTH) {
        /* Logged in without credentials: nothing here can vouch for the password. */
        errbuf_set(&is->out->reason, "server greeted with PREAUTH; cannot check credentials");
        return PROTO_EPROTO;
    }
    imap_caps_from_code(&r, &is->caps);
    return PROTO_OK;
}

static enum proto_result start_tls(struct imap_session *is)
{
    struct imap_reply r;
    enum proto_result pr;

    if (!is->caps.known && (pr = ask_capabilities(is)) != PROTO_OK)
        return pr;
    if (!is->caps.starttls) {
        errbuf_set(&is->out->reason,
                   "server does not offer STARTTLS; tls = starttls: password not sent");
        return PROTO_EINSECURE;
    }
    pr = simple_command(is, "STARTTLS", &r);
    if (pr != PROTO_OK)
        return pr;
    if (r.status != IMAP_ST_OK) {
        errbuf_set(&is->out->reason, "server refused STARTTLS; tls = starttls: password not sent");
        return PROTO_EINSECURE;
    }
    /* Capabilities seen before TLS may have been forged: the caller asks again. */
    return stream_result_to_proto(stream_start_tls(is->s, &is->out->reason));
}

/* A command line being assembled, with a parallel trace in which secrets are redacted. holds_creds
 * is set once a credential-derived piece (the password, or the length announced for it) is put:
 * the line then goes out through stream_send_credential. */
struct cmd_line {
    char text[STREAM_MAX_COMMAND + 1];
    size_t len;
    char trace[256];
    size_t trace_len;
    unsigned breaks; /* CRLFs inside: after each LITERAL+ announcement */
    bool overflow;
    bool holds_creds;
};

static void cmd_put(struct cmd_line *cl, const char *s, size_t n, bool secret)
{
    bool crlf = n == 2 && s[0] == '\r' && s[1] == '\n';
    const char *shown = secret ? "<redacted>" : crlf ? " " : s;
    size_t shown_len = secret || crlf ? strlen(shown) : n;

    if (cl->len + n >= sizeof(cl->text)) {
        cl->overflow = true;
        return;
    }
    memcpy(cl->text + cl->len, s, n);
    cl->len += n;
    cl->text[cl->len] = '\0';
    if (cl->trace_len + shown_len < sizeof(cl->trace)) {
        memcpy(cl->trace + cl->trace_len, shown, shown_len);
        cl->trace_len += shown_len;
        cl->trace[cl->trace_len] = '\0';
    }
}

/* Send the line assembled so far and start a new one. last: it ends the command, so when it
 * carries credentials, they are now all sent. */
static enum proto_result cmd_send(struct imap_session *is, struct cmd_line *cl, bool last)
{
    enum proto_result pr = PROTO_EIO;

    if (cl->overflow) {
        errbuf_set(&is->out->reason, "command too long");
    } else if (cl->holds_creds) {
        enum cred_part part =
            (is->creds_begun ? CRED_MORE : CRED_FIRST) | (last ? CRED_LAST : CRED_MORE);
        is->creds_begun = true;
        pr = stream_result_to_proto(stream_send_credential_lines(
            is->s, &is->out->reason, part, cl->breaks, cl->trace, "%s", cl->text));
    } else if (cl->breaks > 0) {
        /* The user name comes first, the password after it: a line that spans literals
         * always holds credentials. */
        errbuf_set(&is->out->reason, "internal error: a literal without credentials");
    } else {
        pr = stream_result_to_proto(
            stream_sendf(is->s, &is->out->reason, cl->trace, "%s", cl->text));
    }
    secret_wipe(cl, sizeof(*cl));
    return pr;
}

/* Wait for the "+" that lets the rest of a command go. Any tagged reply instead means the server
 * ended the command before it had everything (for LOGIN: before it had the password): that is no
 * verdict on the credentials, whatever its status. */
static enum proto_result await_continuation(struct imap_session *is, const char *what)
{
    struct imap_reply r;
    enum proto_result pr = read_until(is, what, true, &r);
    char q[160];

    if (pr != PROTO_OK || r.kind == IMAP_CONTINUATION)
        return pr;
    stream_excerpt(is->s, q, sizeof(q), r.data, r.data_len);
    errbuf_set(&is->out->reason,
               "server answered %s %s before the credentials were sent (no \"+\" came): \"%s\"",
               what,
               r.status == IMAP_ST_OK   ? "OK"
               : r.status == IMAP_ST_NO ? "NO"
                                        : "BAD",
               q);
    return PROTO_EPROTO;
}

/* Append one astring argument: quoted when possible, else a literal. A synchronizing literal
 * sends the line so far and waits for the server's "+"; a non-synchronizing one (LITERAL+, or
 * LITERAL- up to 4096 bytes) stays in the same command, which then leaves in one write.
 * secret: s is the password (its literal's announced length is then credential-derived too). */
static enum proto_result put_astring(struct imap_session *is, struct cmd_line *cl, const char *s,
                                     size_t n, bool secret)
{
    char quoted[2 * 1024 + 3];
    char prefix[32];
    bool non_sync = is->caps.literal_plus || (is->caps.literal_minus && n <= 4096);
    enum proto_result pr;
    size_t q = imap_quote(s, n, quoted, sizeof(quoted));

    cl->holds_creds |= secret;
    if (q > 0) {
        cmd_put(cl, quoted, q, secret);
        secret_wipe(quoted, sizeof(quoted));
        return PROTO_OK;
    }
    secret_wipe(quoted, sizeof(quoted));
    snprintf(prefix, sizeof(prefix), "{%zu%s}", n, non_sync ? "+" : "");
    cmd_put(cl, prefix, strlen(prefix), secret); /* the password's length is no trace material */
    if (non_sync) {
        cmd_put(cl, "\r\n", 2, false);
        cl->breaks++;
        cmd_put(cl, s, n, secret);
        return PROTO_OK;
    }
    pr = cmd_send(is, cl, false);
    if (pr == PROTO_OK)
        pr = await_continuation(is, "LOGIN");
    cl->holds_creds = secret;
    if (pr == PROTO_OK)
        cmd_put(cl, s, n, secret);
    return pr;
}

static enum proto_result send_login(struct imap_session *is, struct imap_reply *r)
{
    struct cmd_line cl = {0};
    enum proto_result pr;

    new_tag(is);
    is->creds_begun = false;
    cmd_put(&cl, is->tag, strlen(is->tag), false);
    cmd_put(&cl, " LOGIN ", 7, false);
    pr = put_astring(is, &cl, is->c->user, is->c->user_len, false);
    if (pr == PROTO_OK) {
        cmd_put(&cl, " ", 1, false);
        pr = put_astring(is, &cl, is->c->password, is->c->password_len, true);
    }
    if (pr == PROTO_OK)
        pr = cmd_send(is, &cl, true);
    secret_wipe(&cl, sizeof(cl));
    if (pr == PROTO_OK)
        pr = read_until(is, "LOGIN", false, r);
    return pr;
}

static enum proto_result judge(struct imap_session *is, const char *what,
                               const struct imap_reply *r)
{
    char q[160];
    enum verdict v;
    bool closed;

    stream_excerpt(is->s, q, sizeof(q), r->code != NULL ? r->code - 1 : r->data,
                   r->code != NULL ? (size_t)(r->data + r->data_len - r->code + 1) : r->data_len);
    note_alert(is, r);
    if (r->status == IMAP_ST_OK)
        return proto_accept(is->out, what);
    closed = stream_peer_closed(is->s);
    v = verdict_classify(PROTOCOL_IMAP, r->line, r->line_len, closed, is->out->creds == CREDS_ALL);
    verdict_describe(v, what, q, closed, &is->out->reason);
    return verdict_to_proto(v);
}

/* AUTHENTICATE through the one SASL driver (sasl_exchange.c): continuations are "+ base64",
 * the tagged reply ends the exchange. */
static enum proto_result sasl_read(void *ctx, bool *cont, const char **data, size_t *len)
{
    struct imap_session *is = ctx;
    enum proto_result pr = read_until(is, "AUTHENTICATE", true, &is->sasl_final);

    *cont = pr == PROTO_OK && is->sasl_final.kind == IMAP_CONTINUATION;
    *data = is->sasl_final.data;
    *len = is->sasl_final.data_len;
    return pr;
}

static const struct sasl_proto imap_sasl = {.read = sasl_read, .cancel = "*"};

/* Run mechanism m; *fell: it ended before the password went whole (the server cannot run it
 * for this user, or the credentials cannot be used with it), so a next mechanism may be tried. */
static enum proto_result authenticate_with(struct imap_session *is, const struct sasl_mech *m,
                                           bool *fell)
{
    char what[48];
    char q[160];
    char command[32];
    enum sasl_end end;
    enum proto_result pr;
    const struct imap_reply *r = &is->sasl_final;
    struct sasl_exchange x = {
        .proto = &imap_sasl,
        .ctx = is,
        .out = is->out,
        .log = is->log,
        .label = is->t->label,
        .initial_response = is->caps.sasl_ir,
        .cb_offered = is->caps.sasl_plus,
    };

    *fell = false;
    new_tag(is);
    snprintf(command, sizeof(command), "%s AUTHENTICATE", is->tag);
    snprintf(what, sizeof(what), "AUTHENTICATE %s", m->name);
    x.s = is->s;
    x.command = command;
    pr = sasl_exchange_run(&x, m, is->c, &end);
    *fell = end == SASL_END_UNUSABLE;
    if (pr != PROTO_OK || end != SASL_END_FINAL)
        return pr;
    if (is->out->creds != CREDS_ALL) {
        /* Ended before it had the password: no verdict, whatever the status. A NO or BAD may
         * mean the server cannot run the mechanism for this user: a next one may be tried. */
        stream_excerpt(is->s, q, sizeof(q), r->data, r->data_len);
        errbuf_set(&is->out->reason,
                   "server answered %s %s before the credentials were sent: \"%s\"", what,
                   r->status == IMAP_ST_OK   ? "OK"
                   : r->status == IMAP_ST_NO ? "NO"
                                             : "BAD",
                   q);
        *fell = r->status != IMAP_ST_OK;
        return PROTO_EPROTO;
    }
    return judge(is, what, r);
}

/* What the plan (plan.c) is made from: the capabilities as known now, the credentials' form. */
static void plan_now(const struct imap_session *is, bool caps_known, struct login_plan *p)
{
    const struct plan_offer o = {
        .caps_known = caps_known && is->caps.known,
        .logindisabled = is->caps.logindisabled,
        .sasl_mechs = is->caps.sasl_mechs,
        .cb_unbindable = sasl_channel_unbindable(is->s),
    };
    const struct plan_user u = {
        .has_space = memchr(is->c->user, ' ', is->c->user_len) != NULL,
        .quotable = imap_can_quote(is->c->user, is->c->user_len) &&
                    imap_can_quote(is->c->password, is->c->password_len),
    };

    plan_login(is->t, &o, &u, p);
}

/* One entry of the plan (plan_run_fn); the client address goes out in front of the plan's first
 * command unless it already went (pipelined). */
static enum proto_result run_entry(void *ctx, const struct login_plan *p, unsigned i, bool *fell)
{
    struct imap_session *is = ctx;
    const struct plan_entry *e = &p->e[i];
    struct imap_reply r;
    enum proto_result pr = i == 0 ? forward_client_ip(is, is->caps.id) : PROTO_OK;

    *fell = false;
    if (pr != PROTO_OK)
        return pr;
    if (e->method == PLAN_IMAP_AUTHENTICATE)
        return authenticate_with(is, e->mech, fell);
    pr = send_login(is, &r);
    return pr == PROTO_OK ? judge(is, "LOGIN", &r) : pr;
}

/* The plan's entries from entry from on, by the one fallback rule (plan_walk_run). */
static enum proto_result walk_plan(struct imap_session *is, const struct login_plan *p,
                                   unsigned from, struct plan_walk *w)
{
    return plan_walk_run(w, p, from, run_entry, is, is->out, is->log, is->t->label);
}

/* True when the connection is over TLS from STARTTLS and the plan, made into p before the new
 * capabilities are known, starts with LOGIN pipelined behind their re-query (plan.c decides). */
static bool plan_pipelines(const struct imap_session *is, struct login_plan *p)
{
    if (is->t->tls != TLS_MODE_STARTTLS)
        return false;
    plan_now(is, false, p);
    return p->n > 0 && p->e[0].pipelined;
}

/* The pipelined LOGIN was refused under LOGINDISABLED and the plan has nothing after it: no
 * verdict. The password did go out (with LOGIN): the reason says so, and what the server said. */
static enum proto_result login_not_taken(struct imap_session *is, const struct login_plan *p,
                                         const struct imap_reply *r)
{
    char q[160];

    note_alert(is, r);
    stream_excerpt(is->s, q, sizeof(q), r->line, r->line_len);
    errbuf_set(&is->out->reason,
               "server refused the pipelined LOGIN (\"%s\") and lists LOGINDISABLED after TLS: "
               "not a verdict on the password sent with it, and nothing to go on with (%s)",
               q, p->none);
    return PROTO_EINSECURE;
}

/* After STARTTLS, over the verified channel: CAPABILITY (ID) LOGIN in one write, the capability
 * re-query costing no round trip. Only LOGIN's form is fixed in advance (quoted strings, no
 * literal: the plan checks), so nothing the new capabilities say can change the bytes sent; they
 * still decide what LOGIN's answer means. An OK is the server's own verdict on the whole
 * credentials and stands. A NO or BAD from a server that now lists LOGINDISABLED is no verdict
 * (it refused the command, not necessarily the password; the plan marks the entry so): the
 * login goes on with the plan's next entry (AUTHENTICATE PLAIN) or, if none, no answer
 * (PROTO_EINSECURE). Whether to send ID can only be judged from the capabilities seen before
 * TLS; its reply never decides anything (read_pipelined). */
static enum proto_result pipelined_login(struct imap_session *is, struct login_plan *p)
{
    struct imap_reply r;
    struct plan_walk w = {0};
    bool id_before_tls = is->caps.id;
    enum proto_result pr = pipeline(is, PIPELINED_CAPABILITY, NULL);

    if (pr == PROTO_OK)
        pr = forward_client_ip(is, id_before_tls);
    plan_walk_try(&w, &p->e[0], is->out, is->log, is->t->label, clock_now_ms());
    if (pr == PROTO_OK)
        pr = send_login(is, &r);
    if (pr == PROTO_EAUTHFAIL && is->tls_caps.known && is->tls_caps.logindisabled) {
        /* A BYE with a refusal code and a close in place of the answer to the LOGIN the server
         * lists as disabled: as its NO would be, a refusal of the command, no verdict. */
        errbuf_set(&is->out->reason,
                   "server said BYE to the pipelined LOGIN, which it lists as disabled "
                   "(LOGINDISABLED after TLS), and closed the connection: \"%s\"; not a verdict",
                   is->bye);
        return PROTO_ETEMP;
    }
    if (pr != PROTO_OK)
        return pr;
    is->caps = is->tls_caps;
    plan_now(is, true, p);
    if (!p->e[0].refusal_no_verdict || r.status == IMAP_ST_OK)
        return judge(is, "LOGIN", &r);
    log_debug(is->log,
              "%s %s: LOGIN not taken and the server lists LOGINDISABLED after TLS; "
              "no verdict from it",
              is->out->address, is->t->label);
    if (p->n < 2)
        return login_not_taken(is, p, &r);
    return walk_plan(is, p, 1, &w);
}

static enum proto_result login(struct imap_session *is)
{
    struct login_plan p;
    struct plan_walk w = {0};
    enum proto_result pr;

    pr = stream_open_login(is->t, &is->rs, clock_now_ms() + is->t->timeout_ms, is->log, &is->s,
                           is->out);
    if (pr != PROTO_OK)
        return pr;
    pr = read_greeting(is);
    if (pr == PROTO_OK && is->t->tls == TLS_MODE_STARTTLS)
        pr = start_tls(is);
    if (pr != PROTO_OK)
        return pr;
    /* stream_send_credential enforces the cleartext rule on every credential; asking first
     * keeps a login that could not be finished from starting at all (no user name in clear). */
    if (!stream_may_send_credentials(is->s, &is->out->reason))
        return PROTO_EINSECURE;
    if (plan_pipelines(is, &p))
        return pipelined_login(is, &p);
    if (is->t->tls == TLS_MODE_STARTTLS || !is->caps.known)
        pr = ask_capabilities(is);
    if (pr != PROTO_OK)
        return pr;
    plan_now(is, true, &p);
    return walk_plan(is, &p, 0, &w);
}

enum proto_result imap_login(const struct login_target *t, const struct login_creds *c,
                             const struct logger *log, struct login_outcome *out)
{
    struct imap_session is = {.t = t, .c = c, .log = log, .out = out};
    enum proto_result r;

    errbuf_clear(&out->reason);
    snprintf(out->address, sizeof(out->address), "%s:%u", t->host, t->port);
    redact_init(&is.rs, c);
    r = login(&is);
    if (is.s != NULL) {
        struct errbuf ignored;
        /* LOGOUT when the dialogue ended cleanly; never wait for its answer. */
        if (r == PROTO_OK || r == PROTO_EAUTHFAIL) {
            new_tag(&is);
            stream_sendf(is.s, &ignored, NULL, "%s LOGOUT", is.tag);
        }
        stream_close(is.s);
    }
    redact_wipe(&is.rs);
    out->result = r;
    return r;
}
