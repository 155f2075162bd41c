#include "probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap.h"
#include "mailauth.h"
#include "net.h"
#include "plan.h"
#include "pop3.h"
#include "resolve.h"
#include "sasl/mech.h"
#include "sasl_exchange.h"
#include "stream.h"

/* Lines one reply may take (CAPABILITY's untagged data, a CAPA listing). */
#define PROBE_MAX_LINES 200

struct probe_ctx {
    struct probe_address *pa;
    const struct probe_options *opt;
    const struct logger *log;
    struct stream *s;
    int64_t deadline_ms;
    struct errbuf err;
    unsigned next_tag;
    bool have_timestamp; /* POP3: the greeting carried a usable APOP timestamp */
    struct imap_caps icaps;
    struct pop3_caps pcaps;
    bool pcaps_known;
    bool cert_failed;         /* the handshake failed on the certificate (STREAM_ECERT) */
    const char *no_mechanism; /* why a login would have no mechanism, or NULL */
};

/* What the server offers, in the plan's names: the non-SASL methods, then the SASL mechanisms of
 * the table. */
static void describe_offer(struct probe_address *pa, const struct plan_offer *o)
{
    size_t used = 0;
    bool imap = pa->target.protocol == PROTOCOL_IMAP;

    pa->offered[0] = '\0';
    if (imap && !o->logindisabled)
        used += (size_t)snprintf(pa->offered, sizeof(pa->offered), "%s ",
                                 plan_method_name(PLAN_IMAP_LOGIN));
    if (!imap && o->apop_timestamp)
        used += (size_t)snprintf(pa->offered, sizeof(pa->offered), "%s ",
                                 plan_method_name(PLAN_POP3_APOP));
    if (!imap && (!o->caps_known || o->pop3_user) && used < sizeof(pa->offered))
        used += (size_t)snprintf(pa->offered + used, sizeof(pa->offered) - used, "%s ",
                                 plan_method_name(PLAN_POP3_USER_PASS));
    for (size_t k = 0; k < SASL_MECH_COUNT && used < sizeof(pa->offered); k++)
        if ((o->sasl_mechs & (1u << sasl_mechs[k].id)) != 0)
            used +=
                (size_t)snprintf(pa->offered + used, sizeof(pa->offered) - used, "%s %s ",
                                 plan_method_name(imap ? PLAN_IMAP_AUTHENTICATE : PLAN_POP3_AUTH),
                                 sasl_mechs[k].name);
    used = strlen(pa->offered);
    if (used > 0)
        pa->offered[used - 1] = '\0';
}

/* The login's own plan (plan.c) for what the server offers: the probe shows it whole, and its
 * first entry is what a login sends first. The password is not known here: an IMAP login is
 * planned as if it could be quoted (as nearly every password can). */
static void plan_address(struct probe_ctx *pc, const struct plan_offer *o)
{
    const char *user = pc->opt->user;
    const struct plan_user u = {
        .has_space = user != NULL && strchr(user, ' ') != NULL,
        .quotable = user == NULL || imap_can_quote(user, strlen(user)),
    };
    struct probe_address *pa = pc->pa;

    plan_login(&pa->target, o, &u, &pa->plan);
    pa->plan_known = true;
    describe_offer(pa, o);
    pa->mechanism = pa->plan.n > 0 ? pa->plan.e[0].name : "none";
    pc->no_mechanism = pa->plan.usable ? NULL : pa->plan.none;
}

const char *probe_stage_name(enum probe_stage s)
{
    switch (s) {
    case PROBE_STAGE_NONE:
        return "none";
    case PROBE_STAGE_RESOLVE:
        return "resolve";
    case PROBE_STAGE_CONNECT:
        return "connect";
    case PROBE_STAGE_GREETING:
        return "greeting";
    case PROBE_STAGE_TLS:
        return "tls";
    case PROBE_STAGE_CAPABILITIES:
        return "capabilities";
    case PROBE_STAGE_CREDENTIALS:
        return "credentials";
    }
    return "?";
}

static void text_set(struct probe_text *t, const char *src, size_t len)
{
    size_t n = len < sizeof(t->text) - 1 ? len : sizeof(t->text) - 1;

    memcpy(t->text, src, n);
    t->text[n] = '\0';
    t->len = n;
    t->seen = true;
}

/* Append one line of a multi-line listing, "; " between lines. */
static void text_append(struct probe_text *t, const char *src, size_t len)
{
    size_t room;

    if (t->len > 0 && t->len + 2 < sizeof(t->text)) {
        memcpy(t->text + t->len, "; ", 2);
        t->len += 2;
    }
    room = sizeof(t->text) - 1 - t->len;
    if (len > room)
        len = room;
    memcpy(t->text + t->len, src, len);
    t->len += len;
    t->text[t->len] = '\0';
    t->seen = true;
}

/* Record that stage failed: the verdict says so in words, with the layer's reason. */
static bool fail(struct probe_ctx *pc, enum probe_stage stage, const char *what)
{
    pc->pa->failed = stage;
    snprintf(pc->pa->verdict, sizeof(pc->pa->verdict), "%s: %s", what, pc->err.text);
    return false;
}

/* True when the caller asked to stop after this stage (it completed). */
static bool stop_here(struct probe_ctx *pc, enum probe_stage stage)
{
    if (pc->opt->stop_after != stage)
        return false;
    pc->pa->stopped_after = stage;
    return true;
}

static bool read_line(struct probe_ctx *pc, enum probe_stage stage, const char *what,
                      const char **line, size_t *len)
{
    enum stream_result sr = stream_read_line(pc->s, line, len, &pc->err);

    if (sr == STREAM_OK)
        return true;
    if (stage == PROBE_STAGE_GREETING)
        stream_explain_greeting_failure(pc->s, sr, &pc->err);
    return fail(pc, stage, what);
}

static bool send_command(struct probe_ctx *pc, enum probe_stage stage, const char *cmd)
{
    if (stream_sendf(pc->s, &pc->err, NULL, "%s", cmd) == STREAM_OK)
        return true;
    return fail(pc, stage, "cannot send a command");
}

static bool start_tls(struct probe_ctx *pc)
{
    enum stream_result sr = stream_start_tls(pc->s, &pc->err);

    pc->cert_failed = sr == STREAM_ECERT;
    if (sr != STREAM_OK)
        return fail(pc, PROBE_STAGE_TLS, "TLS failed");
    tls_peer_info(stream_tls(pc->s), &pc->pa->tls);
    pc->pa->tls_done = true;
    return true;
}

/* ---- IMAP ---- */

static void imap_take_caps(struct probe_ctx *pc, struct probe_text *dst, const char *list,
                           size_t len)
{
    pc->icaps = (struct imap_caps){0};
    imap_caps_parse(list, len, &pc->icaps);
    text_set(dst, list, len);
}

/* Untagged data while waiting for a reply: CAPABILITY data (or a [CAPABILITY] code) is kept. */
struct probe_untagged {
    struct probe_ctx *pc;
    struct probe_text *dst;
};

static void imap_untagged(void *ctx, const struct imap_reply *r)
{
    struct probe_untagged *u = ctx;
    const char *list = NULL;
    size_t len = 0;

    if (r->status == IMAP_ST_NONE)
        list = imap_capability_list(r->data, r->data_len, &len);
    else if (r->code != NULL)
        list = imap_capability_list(r->code, r->code_len, &len);
    if (list != NULL)
        imap_take_caps(u->pc, u->dst, list, len);
}

/* Send "Pn verb" and read up to its tagged reply with the login's reader (imap_read_tagged:
 * stale replies refused, literals skipped, the same budget), taking CAPABILITY data into dst. */
static bool imap_command(struct probe_ctx *pc, enum probe_stage stage, const char *verb,
                         struct probe_text *dst, enum imap_status *status)
{
    char cmd[64], tag[16];
    struct probe_untagged u = {.pc = pc, .dst = dst};
    struct imap_reply r;
    enum stream_result failure;

    snprintf(tag, sizeof(tag), "P%u", ++pc->next_tag);
    snprintf(cmd, sizeof(cmd), "%s %s", tag, verb);
    if (!send_command(pc, stage, cmd))
        return false;
    if (imap_read_tagged(pc->s, tag, verb, false, imap_untagged, &u, &r, &failure, &pc->err) !=
        PROTO_OK)
        return fail(pc, stage, failure != STREAM_OK ? verb : "protocol error");
    *status = r.status;
    return true;
}

static bool imap_capabilities(struct probe_ctx *pc, struct probe_text *dst)
{
    enum imap_status st = IMAP_ST_NONE;

    pc->icaps = (struct imap_caps){0};
    if (!imap_command(pc, PROBE_STAGE_CAPABILITIES, "CAPABILITY", dst, &st))
        return false;
    if (st == IMAP_ST_OK && pc->icaps.known)
        return true;
    errbuf_set(&pc->err, "CAPABILITY failed or listed nothing");
    return fail(pc, PROBE_STAGE_CAPABILITIES, "no capabilities");
}

static bool imap_greeting(struct probe_ctx *pc, struct probe_text *caps_dst)
{
    const char *line, *list;
    size_t len, list_len;
    struct imap_reply r;

    if (!read_line(pc, PROBE_STAGE_GREETING, "no greeting", &line, &len))
        return false;
    text_set(&pc->pa->greeting, line, len);
    imap_parse_reply(line, len, "", &r);
    if (r.kind != IMAP_UNTAGGED || r.status != IMAP_ST_OK) {
        errbuf_set(&pc->err, "%s",
                   r.status == IMAP_ST_BYE       ? "the server said BYE"
                   : r.status == IMAP_ST_PREAUTH ? "PREAUTH: a login could check nothing"
                                                 : "not an IMAP OK greeting");
        return fail(pc, PROBE_STAGE_GREETING, "unusable greeting");
    }
    if ((list = imap_capability_list(r.code, r.code_len, &list_len)) != NULL)
        imap_take_caps(pc, caps_dst, list, list_len);
    return true;
}

static bool imap_starttls(struct probe_ctx *pc)
{
    struct probe_text ignored = {.len = 0};
    enum imap_status st = IMAP_ST_NONE;

    if (!pc->icaps.starttls) {
        errbuf_set(&pc->err, "the server does not offer STARTTLS; tls = starttls sends nothing");
        return fail(pc, PROBE_STAGE_TLS, "no STARTTLS");
    }
    if (!imap_command(pc, PROBE_STAGE_TLS, "STARTTLS", &ignored, &st))
        return false;
    if (st != IMAP_ST_OK) {
        errbuf_set(&pc->err, "the server refused STARTTLS; tls = starttls sends nothing");
        return fail(pc, PROBE_STAGE_TLS, "no STARTTLS");
    }
    return start_tls(pc);
}

/* The login path's order: greeting, STARTTLS (capabilities first if the greeting had none),
 * capabilities again after TLS or when the greeting listed none. */
static bool imap_probe(struct probe_ctx *pc)
{
    struct probe_address *pa = pc->pa;
    bool starttls = pa->target.tls == TLS_MODE_STARTTLS;
    struct probe_text *first =
        pa->target.tls == TLS_MODE_IMPLICIT ? &pa->caps_after_tls : &pa->caps_before_tls;

    if (!imap_greeting(pc, first) || stop_here(pc, PROBE_STAGE_GREETING))
        return false;
    if (!pc->icaps.known && !imap_capabilities(pc, first))
        return false;
    if (starttls && (!imap_starttls(pc) || stop_here(pc, PROBE_STAGE_TLS) ||
                     !imap_capabilities(pc, &pa->caps_after_tls)))
        return false;
    if (stop_here(pc, PROBE_STAGE_CAPABILITIES))
        return false;
    pa->forwarding_known = true;
    pa->forwarding = pc->icaps.id;
    plan_address(pc, &(const struct plan_offer){.caps_known = pc->icaps.known,
                                                .logindisabled = pc->icaps.logindisabled,
                                                .sasl_mechs = pc->icaps.sasl_mechs,
                                                .cb_unbindable = sasl_channel_unbindable(pc->s)});
    return true;
}

/* ---- POP3 ---- */

static bool pop3_greeting(struct probe_ctx *pc)
{
    const char *line;
    size_t len;
    char ts[POP3_APOP_TIMESTAMP_MAX + 1];
    enum pop3_reply kind;

    if (!read_line(pc, PROBE_STAGE_GREETING, "no greeting", &line, &len))
        return false;
    text_set(&pc->pa->greeting, line, len);
    kind = pop3_reply_classify(line, len);
    if (kind != POP3_REPLY_OK) {
        errbuf_set(&pc->err, "%s",
                   kind == POP3_REPLY_ERR ? "the server refused service" : "not a POP3 greeting");
        return fail(pc, PROBE_STAGE_GREETING, "unusable greeting");
    }
    pc->have_timestamp = pop3_apop_timestamp(line, len, ts, sizeof(ts));
    pc->pa->forwarding = pop3_greeting_offers_xclient(line, len);
    return true;
}

static void pop3_take_capa_line(void *ctx, const char *line, size_t len)
{
    struct probe_untagged *u = ctx;

    pop3_capa_line(line, len, &u->pc->pcaps);
    text_append(u->dst, line, len);
}

/* CAPA with the login's readers (stale lines refused, dot-unstuffed): an -ERR is no failure (a
 * login needs no CAPA), a broken listing is. */
static bool pop3_capa(struct probe_ctx *pc, struct probe_text *dst)
{
    struct probe_untagged u = {.pc = pc, .dst = dst};
    enum pop3_reply kind;
    const char *line;
    size_t len;

    pc->pcaps = (struct pop3_caps){0};
    pc->pcaps_known = false;
    if (!send_command(pc, PROBE_STAGE_CAPABILITIES, "CAPA"))
        return false;
    if (pop3_read_reply(pc->s, "CAPA", &kind, &line, &len, &pc->err) != PROTO_OK)
        return fail(pc, PROBE_STAGE_CAPABILITIES, "CAPA");
    if (kind != POP3_REPLY_OK) {
        text_set(dst, line, len);
        return true;
    }
    dst->len = 0;
    if (pop3_read_body(pc->s, "CAPA", PROBE_MAX_LINES, pop3_take_capa_line, &u, &pc->err) !=
        PROTO_OK)
        return fail(pc, PROBE_STAGE_CAPABILITIES, "CAPA");
    pc->pcaps_known = dst->seen = true;
    return true;
}

static bool pop3_stls(struct probe_ctx *pc)
{
    enum pop3_reply kind;
    const char *line;
    size_t len;

    if (!send_command(pc, PROBE_STAGE_TLS, "STLS"))
        return false;
    if (pop3_read_reply(pc->s, "STLS", &kind, &line, &len, &pc->err) != PROTO_OK)
        return fail(pc, PROBE_STAGE_TLS, "STLS");
    if (kind != POP3_REPLY_OK) {
        errbuf_set(&pc->err, "the server refused STLS; tls = starttls sends nothing");
        return fail(pc, PROBE_STAGE_TLS, "no STLS");
    }
    return start_tls(pc);
}

static bool pop3_probe(struct probe_ctx *pc)
{
    struct probe_address *pa = pc->pa;

    if (!pop3_greeting(pc) || stop_here(pc, PROBE_STAGE_GREETING))
        return false;
    if (pa->target.tls != TLS_MODE_IMPLICIT && !pop3_capa(pc, &pa->caps_before_tls))
        return false;
    if (pa->target.tls == TLS_MODE_STARTTLS && (!pop3_stls(pc) || stop_here(pc, PROBE_STAGE_TLS)))
        return false;
    if (pa->target.tls != TLS_MODE_NONE && !pop3_capa(pc, &pa->caps_after_tls))
        return false;
    if (stop_here(pc, PROBE_STAGE_CAPABILITIES))
        return false;
    pa->forwarding_known = true;
    plan_address(pc, &(const struct plan_offer){.caps_known = pc->pcaps_known,
                                                .sasl_mechs = pc->pcaps.sasl_mechs,
                                                .pop3_user = pc->pcaps.user,
                                                .apop_timestamp = pc->have_timestamp,
                                                .cb_unbindable = sasl_channel_unbindable(pc->s)});
    return true;
}

/* ---- one address ---- */

static bool connect_address(struct probe_ctx *pc, const struct resolve_addr *ra)
{
    struct probe_address *pa = pc->pa;
    struct net_race *race = net_race_new(NET_STAGGER_MS, NULL, NULL, pc->log);
    struct net_race_winner w;
    int64_t start = clock_now_ms();
    enum net_result nr = NET_ECONNECT;

    errbuf_set(&pc->err, "out of memory");
    if (race != NULL && net_race_add(race, (const struct sockaddr *)&ra->sa, ra->len,
                                     pa->target.connect_timeout_ms, 0))
        nr = net_race_run(race, pc->deadline_ms, &w, &pc->err);
    net_race_free(race);
    if (nr != NET_OK)
        return fail(pc, PROBE_STAGE_CONNECT, "cannot connect");
    pa->connect_ms = (long)(clock_now_ms() - start);
    if (stream_attach(w.fd, &pa->target, pc->deadline_ms, pc->log, &pc->s) != STREAM_OK) {
        errbuf_set(&pc->err, "out of memory");
        return fail(pc, PROBE_STAGE_CONNECT, "cannot connect");
    }
    stream_set_address(pc->s, w.addr);
    return true;
}

/* The cleartext rule exactly as a login applies it (stream_may_send_credentials). */
static bool judge_credentials(struct probe_ctx *pc)
{
    struct probe_address *pa = pc->pa;

    pa->credentials_checked = true;
    pa->credentials_allowed = stream_credentials_rule(pc->s, &pc->err);
    snprintf(pa->credentials_reason, sizeof(pa->credentials_reason), "%s", pc->err.text);
    if (pa->credentials_allowed)
        errbuf_clear(&pc->err);
    if (!pa->credentials_allowed)
        return fail(pc, PROBE_STAGE_CREDENTIALS, "a login would not send the password");
    return true;
}

static void probe_one(struct probe_ctx *pc, const struct resolve_addr *ra);

/* The certificate did not verify, so the handshake showed nothing: go through the same
 * dialogue again up to TLS without verification, only to show what the server presents. The
 * verdict stays the first handshake's. */
static void second_look(struct probe_ctx *pc, const struct resolve_addr *ra)
{
    const struct probe_options opt = {.stop_after = PROBE_STAGE_TLS, .user = pc->opt->user};
    struct probe_address *peek = calloc(1, sizeof(*peek));
    struct probe_ctx pp = {.pa = peek, .opt = &opt, .log = pc->log};
    struct probe_address *pa = pc->pa;

    if (peek == NULL)
        return;
    peek->target = pa->target;
    peek->target.verify = false;
    probe_one(&pp, ra);
    if (peek->tls_done) {
        pa->tls = peek->tls;
        pa->tls.chain_verified = false;
        snprintf(pa->tls.verify_error, sizeof(pa->tls.verify_error), "%s", pc->err.text);
        pa->tls_done = pa->tls_second_look = true;
    }
    free(peek);
}

static void probe_one(struct probe_ctx *pc, const struct resolve_addr *ra)
{
    struct probe_address *pa = pc->pa;

    pc->deadline_ms = clock_now_ms() + pa->target.timeout_ms;
    net_format_addr((const struct sockaddr *)&ra->sa, pa->address, sizeof(pa->address));
    if (!connect_address(pc, ra) || stop_here(pc, PROBE_STAGE_CONNECT))
        goto out;
    if (pa->target.tls == TLS_MODE_IMPLICIT && (!start_tls(pc) || stop_here(pc, PROBE_STAGE_TLS)))
        goto out;
    if (!(pa->target.protocol == PROTOCOL_IMAP ? imap_probe(pc) : pop3_probe(pc)))
        goto out;
    /* The login path's order: the cleartext rule first, then the mechanism. */
    if (!judge_credentials(pc))
        goto out;
    if (pc->no_mechanism != NULL) {
        errbuf_set(&pc->err, "%s", pc->no_mechanism);
        fail(pc, PROBE_STAGE_CREDENTIALS, "no mechanism a login could use");
        goto out;
    }
    snprintf(pa->verdict, sizeof(pa->verdict), "ready");
out:
    if (pa->failed == PROBE_STAGE_NONE && pa->stopped_after != PROBE_STAGE_NONE)
        snprintf(pa->verdict, sizeof(pa->verdict), "no failure up to the %s stage (stopped there)",
                 probe_stage_name(pa->stopped_after));
    if (pc->s != NULL)
        stream_close(pc->s);
    pc->s = NULL;
    if (pc->cert_failed && pa->target.verify)
        second_look(pc, ra);
}

static void address_init(struct probe_address *pa, const struct login_target *t, long resolve_ms,
                         unsigned resolved)
{
    memset(pa, 0, sizeof(*pa));
    pa->target = *t;
    pa->resolve_ms = resolve_ms;
    pa->resolved = resolved;
    pa->connect_ms = -1;
}

enum probe_stage probe_endpoint(const struct mailauth_config *cfg, const struct config_server *srv,
                                const struct config_endpoint *ep, const struct probe_options *opt,
                                const struct logger *log, probe_report_fn report, void *ctx)
{
    struct probe_ctx pc = {.opt = opt, .log = log};
    struct login_target t;
    struct resolve_list *list = calloc(1, sizeof(*list));
    enum probe_stage first_failure = PROBE_STAGE_NONE;
    int64_t start = clock_now_ms();
    enum resolve_result rr = RESOLVE_EFAIL;
    long resolve_ms;

    pc.pa = calloc(1, sizeof(*pc.pa));
    mailauth_login_target(cfg, srv, ep, &t);
    errbuf_set(&pc.err, "out of memory");
    if (list != NULL && pc.pa != NULL)
        rr = resolve_host(ep->host, ep->port, start + t.timeout_ms, list, &pc.err);
    resolve_ms = (long)(clock_now_ms() - start);
    if (pc.pa == NULL)
        goto out;
    if (rr != RESOLVE_OK) {
        address_init(pc.pa, &t, resolve_ms, 0);
        snprintf(pc.pa->address, sizeof(pc.pa->address), "%s:%u", ep->host, ep->port);
        fail(&pc, PROBE_STAGE_RESOLVE, "name does not resolve");
        report(ctx, pc.pa);
        first_failure = PROBE_STAGE_RESOLVE;
        goto out;
    }
    for (size_t i = 0; i < list->n; i++) {
        struct probe_address *pa = pc.pa;

        address_init(pa, &t, resolve_ms, (unsigned)list->n);
        pc = (struct probe_ctx){.pa = pa, .opt = opt, .log = log};
        probe_one(&pc, &list->addrs[i]);
        report(ctx, pc.pa);
        if (first_failure == PROBE_STAGE_NONE)
            first_failure = pc.pa->failed;
    }
out:
    free(pc.pa);
    free(list);
    return first_failure;
}
