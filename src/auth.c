/* The server walk: walk.c races the candidates (servers in file order, the hosts of a server in
 * order, the addresses of a host) and hands over one connection at a time; the dialogue on it
 * decides. The first acceptance wins; a refusal ends that server and, with on_reject = stop,
 * the walk. */
#include "mailauth.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth_cache.h"
#include "client_addr.h"
#include "imap.h"
#include "policy.h"
#include "pop3.h"
#include "redact.h"
#include "walk.h"

const char *mailauth_result_name(enum mailauth_result r)
{
    switch (r) {
    case MAILAUTH_OK:
        return "accepted";
    case MAILAUTH_REJECTED:
        return "refused";
    case MAILAUTH_UNAVAIL:
        return "unavailable";
    case MAILAUTH_BADINPUT:
        return "invalid input";
    case MAILAUTH_DENIED:
        return "denied by policy";
    }
    return "?";
}

const char *mailauth_source_name(enum mailauth_source s)
{
    switch (s) {
    case MAILAUTH_SOURCE_SERVER:
        return "server";
    case MAILAUTH_SOURCE_CACHE:
        return "cache";
    case MAILAUTH_SOURCE_OFFLINE:
        return "offline";
    }
    return "?";
}

/* The protocol layers quote server text only through the redaction layer (stream_excerpt), so a
 * reason holds no secret; this pass over the finished text is the second line of defence, for
 * any text a future change might add without it. */
static void scrub_reason(struct errbuf *reason, const struct redact_set *rs)
{
    char clean[sizeof(reason->text)];
    size_t len = strlen(reason->text);

    redact_text(rs, clean, sizeof(clean), reason->text, len, len);
    if (strcmp(clean, reason->text) != 0)
        memcpy(reason->text, clean, sizeof(clean));
    secret_wipe(clean, sizeof(clean));
}

static void make_target(const struct mailauth_config *cfg, const struct config_server *srv,
                        const struct config_endpoint *ep, struct login_target *t)
{
    *t = (struct login_target){
        .label = srv->label,
        .protocol = srv->protocol,
        .host = ep->host,
        .port = ep->port,
        .tls = ep->tls,
        .verify = srv->verify,
        .allow_cleartext = srv->allow_cleartext,
        .apop = srv->apop,
        .n_mechanisms = srv->n_mechanisms,
        .forward_client_ip = srv->forward_client_ip,
        .ca_file = srv->ca_file != NULL || srv->ca_dir != NULL ? srv->ca_file : cfg->ca_file,
        .ca_dir = srv->ca_file != NULL || srv->ca_dir != NULL ? srv->ca_dir : cfg->ca_dir,
        .connect_timeout_ms = cfg->connect_timeout_ms,
        .timeout_ms = cfg->timeout_ms,
    };
    memcpy(t->mechanisms, srv->mechanisms, sizeof(t->mechanisms));
}

void mailauth_login_target(const struct mailauth_config *cfg, const struct config_server *srv,
                           const struct config_endpoint *ep, struct login_target *t)
{
    make_target(cfg, srv, ep, t);
}

static void note_attempt(struct mailauth_report *rep, const struct login_target *t,
                         const struct login_outcome *o, bool append)
{
    size_t used = strlen(rep->reason);

    snprintf(rep->label, sizeof(rep->label), "%s", t->label);
    snprintf(rep->address, sizeof(rep->address), "%s", o->address);
    if (!append || used == 0)
        used = 0;
    else if (used + 2 < sizeof(rep->reason))
        used += (size_t)snprintf(rep->reason + used, sizeof(rep->reason) - used, "; ");
    if (used < sizeof(rep->reason))
        snprintf(rep->reason + used, sizeof(rep->reason) - used, "%s %s: %s", t->label, o->address,
                 o->reason.text[0] != '\0' ? o->reason.text : proto_result_name(o->result));
}

/* The server advertises a method it cannot run for this user (Cyrus with saslauthd and APOP,
 * Dovecot with hashed passwords and SCRAM or CRAM-MD5): every login pays the failure, and leaves
 * a failed login in the server's log. Say which and what it costs. */
static void note_fallback(struct mailauth_report *rep, const struct login_target *t,
                          const struct login_outcome *o, const struct logger *log)
{
    snprintf(rep->fallback_from, sizeof(rep->fallback_from), "%s", o->fallback_from);
    rep->fallback_wasted_ms = o->fallback_wasted_ms;
    rep->fallback_advice = o->fallback_advice;
    log_msg(log, LOG_NOTICE,
            "server \"%s\" %s: %s refused but %s accepted: %s to save %ld ms per login", t->label,
            o->address, o->fallback_from, o->mechanism,
            o->fallback_advice != NULL ? o->fallback_advice : "change the configuration",
            o->fallback_wasted_ms);
}

static enum proto_result try_target(const struct login_target *t, const struct login_creds *c,
                                    const struct logger *log, struct login_outcome *o)
{
    if (!t->verify && t->tls != TLS_MODE_NONE)
        log_msg(log, LOG_WARNING,
                "server \"%s\" %s:%u: verify = false: the certificate is NOT "
                "checked; anyone on the path can collect passwords",
                t->label, t->host, t->port);
    enum proto_result r =
        t->protocol == PROTOCOL_POP3 ? pop3_login(t, c, log, o) : imap_login(t, c, log, o);

    /* The protocol layers pass every OK through proto_accept(); this is the second line of
     * defence should a future change forget to: the same rule, asked again. */
    const char *why = r == PROTO_OK ? proto_success_refused(o) : NULL;
    if (why != NULL) {
        log_msg(log, LOG_ERR,
                "server \"%s\": internal error: success reported %s; treated as a protocol "
                "error",
                t->label, why);
        errbuf_set(&o->reason, "success reported %s", why);
        r = o->result = PROTO_EPROTO;
    }
    return r;
}

/* What the walk's callbacks need to write the report. */
struct walk_ctx {
    const struct mailauth_config *cfg;
    const struct logger *log;
    struct mailauth_report *rep;
    const struct redact_set *rs; /* armed with the credentials before the walk starts */
};

/* One dialogue's outcome into the report: attempts, credentials, the reason, a debug line. */
static void record_attempt(struct walk_ctx *wc, const struct login_target *t,
                           struct login_outcome *o)
{
    enum proto_result r = o->result;

    wc->rep->attempts++;
    wc->rep->creds_sent |= o->creds_sent; /* offline acceptance needs "no server got it" */
    /* ... and that every failure was the network's answer, not this process's clock or
     * resources */
    if (r != PROTO_OK && r != PROTO_EAUTHFAIL)
        wc->rep->local_failure |= o->local_failure;
    scrub_reason(&o->reason, wc->rs);
    log_debug(wc->log, "server \"%s\" %s (%s, tls %s): %s%s%s (credentials %s)%s", t->label,
              o->address, protocol_name(t->protocol), tls_mode_name(t->tls), proto_result_name(r),
              o->reason.text[0] != '\0' ? ": " : "", o->reason.text,
              o->creds_sent ? "sent" : "not sent",
              o->local_failure ? "; a failure of this process, not the server's" : "");
    /* Failures accumulate into the report; a decision replaces them. */
    note_attempt(wc->rep, t, o, r != PROTO_OK && r != PROTO_EAUTHFAIL);
}

/* A server's alert (IMAP [ALERT], POP3 [AUTH] or [SYS/PERM] text): logged (as printable ASCII),
 * and kept for the user when it came over TLS. */
static void note_alert(struct walk_ctx *wc, const struct login_target *t,
                       const struct login_outcome *o)
{
    char shown[PROTO_ALERT_MAX];

    if (o->alert[0] == '\0')
        return;
    text_sanitize(shown, sizeof(shown), o->alert, strlen(o->alert));
    log_msg(wc->log, LOG_NOTICE, "server \"%s\" %s: [%s] %s: \"%s\"", t->label, o->address,
            o->alert_code != NULL ? o->alert_code : "ALERT",
            o->alert_tls ? "for the user" : "received in clear, not shown to the user", shown);
    if (o->alert_tls)
        snprintf(wc->rep->alert, sizeof(wc->rep->alert), "%s", o->alert);
}

/* walk.c: a host that did not resolve or whose every address failed to connect. Nothing was
 * sent to it. */
static void host_failed(void *arg, size_t server, size_t endpoint, const char *why, bool local)
{
    struct walk_ctx *wc = arg;
    const struct config_server *srv = &wc->cfg->servers[server];
    struct login_target t;
    struct login_outcome o = {.result = PROTO_EIO, .local_failure = local};

    make_target(wc->cfg, srv, &srv->endpoints[endpoint], &t);
    snprintf(o.address, sizeof(o.address), "%s:%u", t.host, t.port);
    errbuf_set(&o.reason, "%s", why);
    record_attempt(wc, &t, &o);
}

/* The dialogue on the connection the race handed over. */
static enum proto_result login_on(struct walk_ctx *wc, struct walk_conn *conn,
                                  const struct login_creds *c)
{
    const struct config_server *srv = &wc->cfg->servers[conn->server];
    struct login_target t;
    struct login_outcome o = {0};
    enum proto_result r;

    make_target(wc->cfg, srv, &srv->endpoints[conn->endpoint], &t);
    t.conn = &conn->conn;
    r = try_target(&t, c, wc->log, &o);
    if (conn->conn.fd >= 0)
        close(conn->conn.fd); /* the protocol layer ended before taking it over */
    conn->conn.fd = -1;
    o.result = r;
    if (r == PROTO_EINSECURE)
        o.local_failure = true; /* our own rule, not the server's: it answered */
    record_attempt(wc, &t, &o);
    note_alert(wc, &t, &o);
    if (r == PROTO_OK || r == PROTO_EAUTHFAIL) {
        snprintf(wc->rep->mechanism, sizeof(wc->rep->mechanism), "%s", o.mechanism);
        wc->rep->proof = o.proof;
    }
    if (r == PROTO_OK && o.fallback_wasted_ms > 0)
        note_fallback(wc->rep, &t, &o, wc->log);
    return r;
}

/* The end user's address to forward, or NULL: PAM_RHOST only when it is numeric. */
static const char *client_ip(const struct mailauth_client *client, char out[CLIENT_ADDR_MAX],
                             const struct logger *log)
{
    const char *rhost = client != NULL ? client->rhost : NULL;

    if (client_addr_from_rhost(rhost, out))
        return out;
    if (rhost != NULL && rhost[0] != '\0')
        log_debug(log, "the remote host is not a numeric IP address; it is not forwarded");
    return NULL;
}

enum mailauth_result mailauth_check(const struct mailauth_config *cfg, const char *user,
                                    size_t user_len, const char *password, size_t password_len,
                                    const struct logger *log, struct mailauth_report *rep)
{
    return mailauth_check_client(cfg, user, user_len, password, password_len, NULL, log, rep);
}

enum mailauth_result mailauth_check_client(const struct mailauth_config *cfg, const char *user,
                                           size_t user_len, const char *password,
                                           size_t password_len,
                                           const struct mailauth_client *client,
                                           const struct logger *log, struct mailauth_report *rep)
{
    char ip[CLIENT_ADDR_MAX];
    int64_t start = clock_now_ms();
    enum mailauth_result res = MAILAUTH_UNAVAIL;
    struct errbuf err = {{0}};
    struct login_creds creds;
    bool tried = false;
    enum policy_result pr;
    struct mailauth_report refusal;
    struct redact_set rs;
    struct auth_cache ac = {0};
    struct walk_ctx wc = {.cfg = cfg, .log = log, .rep = rep, .rs = &rs};
    struct walk_params wp = {0};
    struct walk *walk = NULL;
    struct walk_conn conn;

    memset(rep, 0, sizeof(*rep));
    memset(&refusal, 0, sizeof(refusal));
    redact_init(&rs, NULL);
    text_sanitize(rep->user, sizeof(rep->user), user, user_len);
    pr = policy_map_user(&cfg->user, user, user_len, rep->user, sizeof(rep->user), &err);
    if (pr == POLICY_OK)
        pr = policy_check_password(password, password_len, &err);
    if (pr != POLICY_OK) {
        snprintf(rep->reason, sizeof(rep->reason), "%s; nothing sent", err.text);
        res = pr == POLICY_EDENIED ? MAILAUTH_DENIED : MAILAUTH_BADINPUT;
        goto out;
    }
    creds = (struct login_creds){rep->user, strlen(rep->user), password, password_len,
                                 client_ip(client, ip, log)};
    redact_init(&rs, &creds);
    auth_cache_begin(&ac, cfg, rep->user, password, password_len, log);
    if (auth_cache_ttl_hit(&ac, cfg, rep)) {
        res = MAILAUTH_OK;
        goto out;
    }
    wp.cfg = cfg;
    wp.user = rep->user;
    wp.log = log;
    wp.host_failed = host_failed;
    wp.arg = &wc;
    walk = walk_new(&wp);
    if (walk == NULL) {
        snprintf(rep->reason, sizeof(rep->reason), "out of memory; nothing sent");
        rep->local_failure = true;
        goto out;
    }
    tried = walk_hosts(walk) > 0;
    /* One connection at a time: credentials never go to two servers at once. */
    while (walk_next(walk, &conn)) {
        enum proto_result r = login_on(&wc, &conn, &creds);

        if (r == PROTO_OK) {
            res = MAILAUTH_OK;
            goto out;
        }
        if (r == PROTO_EAUTHFAIL) {
            res = MAILAUTH_REJECTED;
            refusal = *rep;
            if (cfg->on_reject == ON_REJECT_STOP)
                goto out;
            /* later failures must not hide that this server refused */
            rep->reason[0] = '\0';
            walk_skip_server(walk, conn.server);
        }
    }
    if (res == MAILAUTH_REJECTED) {
        refusal.attempts = rep->attempts;
        refusal.creds_sent = rep->creds_sent;
        *rep = refusal;
    }
    if (!tried) {
        snprintf(rep->reason, sizeof(rep->reason), "no server serves the user's domain");
        res = MAILAUTH_DENIED;
    }
out:
    /* Every walk outcome passes here, on_reject = stop included. */
    walk_free(walk);
    res = auth_cache_after_walk(&ac, res, rep);
    auth_cache_end(&ac);
    redact_wipe(&rs);
    rep->elapsed_ms = (long)(clock_now_ms() - start);
    return res;
}
