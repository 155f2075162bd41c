#include "sasl_exchange.h"

#include <stdio.h>
#include <string.h>

#include "redact.h"
#include "tls.h"

/* Base64 of one message: SASL_MSG_MAX raw bytes. */
#define B64_MAX (4 * ((SASL_MSG_MAX + 2) / 3) + 1)

struct run {
    const struct sasl_exchange *x;
    const struct sasl_mech *m;
    struct sasl_client c;
    bool secret_begun; /* a password-derived piece went out */
    char b64[B64_MAX];
    unsigned char raw[SASL_MSG_MAX];
};

static void channel_of(const struct stream *s, struct sasl_channel *ch)
{
    size_t len = 0;
    enum tls_cb_kind k = tls_channel_binding(stream_tls(s), ch->data, sizeof(ch->data), &len);

    ch->type = k == TLS_CB_EXPORTER ? SASL_CB_TLS_EXPORTER
               : k == TLS_CB_UNIQUE ? SASL_CB_TLS_UNIQUE
                                    : SASL_CB_NONE;
    ch->len = len;
}

/* Arm redaction with the password-derived field of the decoded message, before it leaves: the
 * CRAM-MD5 digest after the user name, the SCRAM proof after "p=" (material for an offline
 * guess). The credential sender registers only the wire form (base64); a server that echoes the
 * decoded response would otherwise put this field in the log. A mechanism that reveals the
 * password carries it whole, armed from the start (redact_init). A hex digest matches in either
 * case, as APOP's does. */
static void arm_decoded(const struct run *r)
{
    struct redact_set *rs = stream_redact_set(r->x->s);
    const char *m = (const char *)r->c.out;
    size_t end = r->c.out_len;
    size_t i = end;
    bool hex = true;

    if (rs == NULL || r->m->reveals_password || end == 0)
        return;
    while (i > 0 && m[i - 1] != ' ' && m[i - 1] != ',')
        i--;
    if (end - i > 2 && m[i + 1] == '=')
        i += 2;
    while (end > i && m[end - 1] == '=')
        end--;
    for (size_t k = i; k < end; k++)
        hex = hex && ((m[k] >= '0' && m[k] <= '9') || (m[k] >= 'a' && m[k] <= 'f') ||
                      (m[k] >= 'A' && m[k] <= 'F'));
    redact_add(rs, m + i, end - i, hex);
}

/* Send the client's message c->out, base64 ("=" for an empty initial response, RFC 4959), on the
 * command line (first) or alone. The trace never shows its content: the proof and the nonces
 * combined with the server's salt are material for an offline guess. */
static enum proto_result send_message(struct run *r, bool first)
{
    const struct sasl_exchange *x = r->x;
    char trace[96];
    enum stream_result sr;
    size_t n = sasl_b64_encode(r->c.out, r->c.out_len, r->b64, sizeof(r->b64));

    if (n == 0 && r->c.out_len > 0) {
        errbuf_set(&x->out->reason, "%s message too long", r->m->name);
        return PROTO_EIO;
    }
    if (first && n == 0)
        snprintf(r->b64, sizeof(r->b64), "=");
    /* A password-derived message is traced as REDACT_MARK where it stands in the line, so that
     * the credential sender registers exactly its encoded bytes for redaction (a trace that does
     * not match the line makes it register the whole line, tag and command included). */
    if (r->c.out_secret && first)
        snprintf(trace, sizeof(trace), "%s %s " REDACT_MARK, x->command, r->m->name);
    else if (r->c.out_secret)
        snprintf(trace, sizeof(trace), REDACT_MARK);
    else if (first)
        snprintf(trace, sizeof(trace), "%s %s <%s message %u>", x->command, r->m->name, r->m->name,
                 r->c.steps);
    else
        snprintf(trace, sizeof(trace), "<%s message %u>", r->m->name, r->c.steps);
    if (r->c.out_secret) {
        enum cred_part part;
        arm_decoded(r);
        part = (r->secret_begun ? CRED_MORE : CRED_FIRST) | (r->c.out_last ? CRED_LAST : CRED_MORE);
        r->secret_begun = true;
        sr = first ? stream_send_credential(x->s, &x->out->reason, part, trace, "%s %s %s",
                                            x->command, r->m->name, r->b64)
                   : stream_send_credential(x->s, &x->out->reason, part, trace, "%s", r->b64);
    } else {
        sr = first ? stream_sendf(x->s, &x->out->reason, trace, "%s %s %s", x->command, r->m->name,
                                  r->b64)
                   : stream_sendf(x->s, &x->out->reason, trace, "%s", r->b64);
    }
    secret_wipe(r->b64, sizeof(r->b64));
    return stream_result_to_proto(sr);
}

/* Read the next reply with the protocol's reader; server messages are not traced verbatim (a
 * SCRAM server-final is a guessing oracle), only their step and size. */
static enum proto_result read_reply(struct run *r, bool *cont, long *raw_len)
{
    const struct sasl_exchange *x = r->x;
    struct logger quiet = {0};
    const struct logger *saved = stream_swap_logger(x->s, &quiet);
    const char *data = NULL;
    size_t len = 0;
    enum proto_result pr;

    if (saved != NULL)
        quiet = *saved;
    quiet.debug = false;
    pr = x->proto->read(x->ctx, cont, &data, &len);
    stream_swap_logger(x->s, saved);
    *raw_len = 0;
    if (pr == PROTO_OK && !*cont) {
        char q[160];
        stream_excerpt(x->s, q, sizeof(q), data, len);
        log_debug(x->log, "%s S: %s <final reply to %s> %s", x->out->address, x->label, r->m->name,
                  q);
    }
    if (pr != PROTO_OK || !*cont)
        return pr;
    if (r->c.steps == 0 && r->m->initial_response)
        return PROTO_OK; /* see exchange(): a "+" standing in for the initial response */
    *raw_len = sasl_b64_decode(data, len, r->raw, sizeof(r->raw));
    log_debug(x->log, "%s S: %s + <%s server message, %zu base64 bytes>", x->out->address, x->label,
              r->m->name, len);
    if (*raw_len < 0) {
        errbuf_set(&x->out->reason, "%s: the server's message is not base64", r->m->name);
        return PROTO_EPROTO;
    }
    return PROTO_OK;
}

/* The server's e= value (SCRAM), its text: cleaned of the secrets as any server text is before
 * it goes into a reason or a log line (a server may echo the password there). */
static void server_error(const struct run *r, char *dst, size_t cap)
{
    stream_excerpt(r->x->s, dst, cap, r->c.error, strlen(r->c.error));
}

/* Give up the exchange: cancel it, never wait for the answer (the connection is closed after). */
static enum proto_result abandon(struct run *r, enum sasl_status st)
{
    const struct sasl_exchange *x = r->x;
    struct errbuf ignored;
    char q[sizeof(r->c.error) + 16];

    stream_sendf(x->s, &ignored, NULL, "%s", x->proto->cancel);
    switch (st) {
    case SASL_EFORGED:
        errbuf_set(&x->out->reason,
                   "%s: the server's signature is wrong: it does not know this user's password "
                   "verifier (an impostor, or TLS interception); not a verdict",
                   r->m->name);
        return PROTO_EPROTO;
    case SASL_ELIMIT:
        errbuf_set(&x->out->reason, "%s: the server asks for %u iterations, more than %u",
                   r->m->name, r->c.iterations,
                   x->max_iterations != 0 ? x->max_iterations : SASL_SCRAM_MAX_ITERATIONS);
        return PROTO_EPROTO;
    case SASL_ESERVER:
        server_error(r, q, sizeof(q));
        errbuf_set(&x->out->reason, "%s: the server reported \"e=%s\"%s", r->m->name, q,
                   strstr(r->c.error, "channel") != NULL
                       ? ": the TLS channel it sees is not ours (interception?); not a verdict"
                       : "; not a verdict");
        return PROTO_EPROTO;
    default:
        errbuf_set(&x->out->reason, "%s: %s", r->m->name, sasl_status_name(st));
        return st == SASL_EINTERNAL ? PROTO_EIO : PROTO_EPROTO;
    }
}

/* The mechanism cannot use these credentials, found after its command went out (SCRAM's
 * client-first waits for the "+" without SASL-IR): cancel it and read the server's final reply
 * to the cancelled command before a next mechanism's command goes out, so that it is never taken
 * for that one's answer (or, in POP3, where replies carry no tag, for its verdict). Only then may
 * a next mechanism be tried (*end SASL_END_UNUSABLE); otherwise *end stays SASL_END_FAILED. */
static enum proto_result cancel_unusable(struct run *r, enum sasl_end *end)
{
    const struct sasl_exchange *x = r->x;
    bool cont = false;
    long n = 0;
    enum proto_result pr =
        stream_result_to_proto(stream_sendf(x->s, &x->out->reason, NULL, "%s", x->proto->cancel));

    if (pr == PROTO_OK)
        pr = read_reply(r, &cont, &n);
    if (pr != PROTO_OK)
        return pr;
    if (cont) {
        errbuf_set(&x->out->reason,
                   "%s: the server asked for more after the exchange was cancelled", r->m->name);
        return PROTO_EPROTO;
    }
    *end = SASL_END_UNUSABLE;
    errbuf_set(&x->out->reason, "%s: %s", r->m->name, sasl_status_name(SASL_ECREDS));
    return PROTO_EINSECURE;
}

static enum proto_result exchange(struct run *r, enum sasl_end *end)
{
    const struct sasl_exchange *x = r->x;
    enum sasl_status st = SASL_SEND;
    enum proto_result pr;
    bool cont = false;
    long n = 0;

    if (r->m->initial_response && x->initial_response) {
        st = sasl_client_step(&r->c, NULL, 0);
        if (st != SASL_SEND) {
            *end = st == SASL_ECREDS ? SASL_END_UNUSABLE : SASL_END_FAILED;
            errbuf_set(&x->out->reason, "%s: %s", r->m->name, sasl_status_name(st));
            return st == SASL_ECREDS ? PROTO_EINSECURE : PROTO_EIO;
        }
        pr = send_message(r, true);
    } else {
        pr = stream_result_to_proto(
            stream_sendf(x->s, &x->out->reason, NULL, "%s %s", x->command, r->m->name));
    }
    *end = SASL_END_FAILED;
    while (pr == PROTO_OK) {
        pr = read_reply(r, &cont, &n);
        if (pr != PROTO_OK || !cont)
            break;
        if (r->c.done) {
            errbuf_set(&x->out->reason, "%s: the server asked for more after its proof",
                       r->m->name);
            return abandon(r, SASL_EPROTO);
        }
        /* The "+" that stands in for a first message the server did not take on the command
         * line carries nothing for the mechanism (servers put text there): not read. */
        if (r->c.steps == 0 && r->m->initial_response)
            n = 0;
        st = sasl_client_step(&r->c, r->raw, (size_t)n);
        if (st == SASL_DONE) {
            x->out->proof = PROOF_VERIFIED;
            log_debug(x->log, "%s %s: %s: the server's signature is verified", x->out->address,
                      x->label, r->m->name);
            r->c.out_len = 0;
            st = SASL_SEND; /* an empty answer asks for the final reply */
        }
        if (st == SASL_ECREDS && !r->secret_begun && x->out->creds == CREDS_NONE)
            return cancel_unusable(r, end);
        if (st == SASL_ESERVER && strstr(r->c.error, "channel") == NULL) {
            /* The server's own "no" inside the mechanism: its final reply, read after the
             * cancel, is the verdict (an OK there still lacks the proof). */
            char q[sizeof(r->c.error) + 16];
            server_error(r, q, sizeof(q));
            log_debug(x->log, "%s %s: %s: the server reported \"e=%s\"", x->out->address, x->label,
                      r->m->name, q);
            pr = stream_result_to_proto(
                stream_sendf(x->s, &x->out->reason, NULL, "%s", x->proto->cancel));
            continue;
        }
        if (st != SASL_SEND)
            return abandon(r, st);
        pr = send_message(r, false);
    }
    if (pr == PROTO_OK)
        *end = SASL_END_FINAL;
    return pr;
}

static const char *unbindable_why(const struct stream *s)
{
    return stream_tls(s) == NULL ? "the connection has no TLS channel to bind"
                                 : "this TLS channel cannot be bound (TLS 1.2 without the extended "
                                   "master secret, RFC 7627)";
}

const char *sasl_channel_unbindable(const struct stream *s)
{
    struct sasl_channel ch = {0};
    bool bindable;

    if (stream_tls(s) != NULL)
        channel_of(s, &ch);
    bindable = ch.type != SASL_CB_NONE;
    secret_wipe(&ch, sizeof(ch));
    return bindable ? NULL : unbindable_why(s);
}

enum proto_result sasl_exchange_run(const struct sasl_exchange *x, const struct sasl_mech *m,
                                    const struct login_creds *c, enum sasl_end *end)
{
    struct run r = {.x = x, .m = m};
    struct sasl_channel ch = {0};
    enum proto_result pr;

    if (stream_tls(x->s) != NULL)
        channel_of(x->s, &ch);
    r.c.max_iterations = x->max_iterations;
    sasl_client_begin(&r.c, m, c->user, c->user_len, c->password, c->password_len, &ch,
                      x->cb_offered);
    /* A new mechanism: what an earlier one sent (IMAP LOGIN refused under LOGINDISABLED, a
     * mechanism that fell back) says nothing about this one's progress. Its first message may
     * carry no credential (SCRAM's client-first, AUTHENTICATE without SASL-IR), so this cannot
     * wait for stream_send_credential's CRED_FIRST. */
    x->out->creds = CREDS_NONE;
    x->out->proof = m->server_proves ? PROOF_PENDING : PROOF_NOT_REQUIRED;
    if (m->channel_binding && ch.type == SASL_CB_NONE) {
        *end = SASL_END_UNUSABLE;
        errbuf_set(&x->out->reason, "%s: %s", m->name, unbindable_why(x->s));
        pr = PROTO_EINSECURE;
    } else {
        pr = exchange(&r, end);
    }
    if (m->server_proves && r.c.iterations > 0)
        log_debug(x->log, "%s %s: %s with %u iterations", x->out->address, x->label, m->name,
                  r.c.iterations);
    sasl_client_end(&r.c);
    secret_wipe(&r, sizeof(r));
    secret_wipe(&ch, sizeof(ch));
    return pr;
}
