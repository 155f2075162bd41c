/* The one plan of a login (plan.h). */
#include "plan.h"

#include <stdio.h>
#include <string.h>

#define SASL_FALLBACK_ADVICE                                                                       \
    "leave the refused mechanism out of mechanisms for this server, or store passwords it can use"

/* The non-SASL methods and the SASL commands: the one place their names are written. */
static const struct {
    const char *name;
    const char *advice; /* what stops a fallback from this method costing time */
} methods[] = {
    [PLAN_IMAP_LOGIN] = {"LOGIN", NULL},
    [PLAN_IMAP_AUTHENTICATE] = {"AUTHENTICATE", SASL_FALLBACK_ADVICE},
    [PLAN_POP3_APOP] = {"APOP", "set apop = never for this server"},
    [PLAN_POP3_USER_PASS] = {"USER/PASS", NULL},
    [PLAN_POP3_AUTH] = {"AUTH", SASL_FALLBACK_ADVICE},
};

const char *plan_method_name(enum plan_method m)
{
    return (size_t)m < MA_ARRAY_LEN(methods) ? methods[m].name : "?";
}

const char *plan_fallback_advice(enum plan_method m)
{
    return (size_t)m < MA_ARRAY_LEN(methods) ? methods[m].advice : NULL;
}

const char *plan_when_text(enum plan_when w)
{
    switch (w) {
    case PLAN_WHEN_FIRST:
        return "first";
    case PLAN_WHEN_UNUSABLE:
        return "if the entry before ends before the password went out whole";
    case PLAN_WHEN_APOP_REFUSED:
        return "if APOP is refused";
    case PLAN_WHEN_USER_REFUSED:
        return "if USER is refused";
    case PLAN_WHEN_LOGIN_NOT_TAKEN:
        return "if the pipelined LOGIN is refused";
    }
    return "?";
}

static const struct sasl_mech *mech_by_id(unsigned id)
{
    for (size_t k = 0; k < SASL_MECH_COUNT; k++)
        if ((unsigned)sasl_mechs[k].id == id)
            return &sasl_mechs[k];
    return NULL;
}

static struct plan_entry *add(struct login_plan *p, enum plan_method method,
                              const struct sasl_mech *mech, const char *reason)
{
    struct plan_entry *e = &p->e[p->n];

    *e = (struct plan_entry){
        .method = method,
        .mech = mech,
        .when = p->n == 0 ? PLAN_WHEN_FIRST : PLAN_WHEN_UNUSABLE,
        .reason = reason,
    };
    snprintf(e->name, sizeof(e->name), "%s%s%s", plan_method_name(method), mech ? " " : "",
             mech ? mech->name : "");
    p->n++;
    return e;
}

/* mechanisms = ...: the configured mechanisms the server offers, in the configured order. */
static void plan_configured(const struct login_target *t, const struct plan_offer *o,
                            struct login_plan *p)
{
    enum plan_method method =
        t->protocol == PROTOCOL_IMAP ? PLAN_IMAP_AUTHENTICATE : PLAN_POP3_AUTH;

    for (unsigned i = 0; i < t->n_mechanisms && p->n < PLAN_MAX; i++) {
        const struct sasl_mech *m = mech_by_id(t->mechanisms[i]);
        if (m == NULL || (o->sasl_mechs & (1u << m->id)) == 0)
            continue;
        if (m->channel_binding && o->cb_unbindable != NULL) {
            snprintf(p->left_out, sizeof(p->left_out), "%s left out: %s", m->name,
                     o->cb_unbindable);
            continue;
        }
        add(p, method, m,
            p->n == 0 ? "the first mechanism of mechanisms = ... that the server offers"
                      : "listed next in mechanisms = ... and offered; tried only while no "
                        "mechanism before it had the whole password");
    }
    if (p->n == 0)
        p->none =
            p->left_out[0] != '\0'
                ? "the server offers, of the configured mechanisms, only -PLUS ones, and this "
                  "channel cannot be bound"
            : o->caps_known || t->protocol == PROTOCOL_IMAP
                ? "server offers none of the configured mechanisms"
                : "server lists no SASL mechanisms (no CAPA), so none of the configured ones";
}

static const char no_login_no_plain[] = "server has LOGINDISABLED and does not offer AUTH=PLAIN";

static void plan_imap(const struct login_target *t, const struct plan_offer *o,
                      const struct plan_user *u, struct login_plan *p)
{
    bool plain = (o->sasl_mechs & (1u << SASL_MECH_PLAIN)) != 0;
    struct plan_entry *e;

    if (t->tls == TLS_MODE_STARTTLS && u->quotable) {
        e = add(p, PLAN_IMAP_LOGIN, NULL,
                "the default; sent with the CAPABILITY re-query after STARTTLS in one write "
                "(user name and password can be quoted), before the new capabilities are read");
        e->pipelined = true;
        if (!o->caps_known || !o->logindisabled)
            return;
        e->refusal_no_verdict = true;
        if (!plain) {
            p->none = no_login_no_plain;
            return;
        }
        e = add(p, PLAN_IMAP_AUTHENTICATE, mech_by_id(SASL_MECH_PLAIN),
                "the server lists LOGINDISABLED and AUTH=PLAIN after TLS: a NO to the pipelined "
                "LOGIN is no verdict");
        e->when = PLAN_WHEN_LOGIN_NOT_TAKEN;
        return;
    }
    if (!o->logindisabled) {
        add(p, PLAN_IMAP_LOGIN, NULL, "the default: the server does not list LOGINDISABLED");
        return;
    }
    if (plain)
        add(p, PLAN_IMAP_AUTHENTICATE, mech_by_id(SASL_MECH_PLAIN),
            "the server lists LOGINDISABLED and offers AUTH=PLAIN");
    else
        p->none = no_login_no_plain;
}

static void plan_pop3(const struct login_target *t, const struct plan_offer *o,
                      const struct plan_user *u, struct login_plan *p)
{
    bool apop = t->apop != APOP_NEVER && o->apop_timestamp && !u->has_space;
    struct plan_entry *e;

    if (apop)
        add(p, PLAN_POP3_APOP, NULL,
            t->apop == APOP_ONLY ? "apop = only and the greeting carries an APOP timestamp"
                                 : "apop = auto and the greeting carries an APOP timestamp "
                                   "(the password does not travel)");
    if (t->apop == APOP_ONLY) {
        if (!apop)
            p->none = o->apop_timestamp
                          ? "apop = only but the user name has a space (it would split APOP's "
                            "arguments)"
                          : "apop = only but the greeting carries no usable APOP timestamp";
        return;
    }
    e = add(p, PLAN_POP3_USER_PASS, NULL,
            apop ? "apop = auto: a server that cannot check APOP (e.g. Cyrus with saslauthd) may "
                   "accept the password this way"
            : t->apop == APOP_NEVER ? "the default (apop = never)"
            : u->has_space          ? "the default (the user name has a space: no APOP)"
                                    : "the default (the greeting carries no APOP timestamp)");
    if (apop)
        e->when = PLAN_WHEN_APOP_REFUSED;
    if (!o->caps_known || o->pop3_user || (o->sasl_mechs & (1u << SASL_MECH_PLAIN)) == 0)
        return;
    e = add(p, PLAN_POP3_AUTH, mech_by_id(SASL_MECH_PLAIN),
            "CAPA lists SASL PLAIN and no USER: used if the server refuses USER");
    e->when = PLAN_WHEN_USER_REFUSED;
}

void plan_login(const struct login_target *t, const struct plan_offer *o, const struct plan_user *u,
                struct login_plan *p)
{
    *p = (struct login_plan){.none = ""};
    if (t->n_mechanisms > 0)
        plan_configured(t, o, p);
    else if (t->protocol == PROTOCOL_IMAP)
        plan_imap(t, o, u, p);
    else
        plan_pop3(t, o, u, p);
    p->usable = p->n > 0 && !(p->e[p->n - 1].refusal_no_verdict);
    if (p->usable)
        p->none = "";
}

void plan_walk_try(struct plan_walk *w, const struct plan_entry *e, struct login_outcome *o,
                   const struct logger *log, const char *label, int64_t now_ms)
{
    if (w->failed > 0 && e->when == PLAN_WHEN_UNUSABLE)
        log_msg(log, LOG_WARNING,
                "%s %s: %s failed before the password was checked (%s); trying %s: this cost "
                "%lld ms",
                o->address, label, o->mechanism, o->reason.text,
                e->mech != NULL ? e->mech->name : e->name, (long long)(now_ms - w->started_ms));
    if (w->failed == 0)
        w->started_ms = now_ms;
    w->last_try_ms = now_ms;
    snprintf(o->mechanism, sizeof(o->mechanism), "%s", e->name);
}

void plan_walk_failed(struct plan_walk *w, const struct plan_entry *e)
{
    size_t used = strlen(w->failed_names);

    if (w->failed++ == 0)
        w->first_failed = e->method;
    snprintf(w->failed_names + used, sizeof(w->failed_names) - used, "%s%s", used > 0 ? ", " : "",
             e->mech != NULL ? e->mech->name : e->name);
}

enum proto_result plan_walk_run(struct plan_walk *w, const struct login_plan *p, unsigned from,
                                plan_run_fn run, void *ctx, struct login_outcome *o,
                                const struct logger *log, const char *label)
{
    enum proto_result r = PROTO_EINSECURE;

    if (from == 0 && p->left_out[0] != '\0')
        log_msg(log, LOG_WARNING, "%s %s: %s", o->address, label, p->left_out);
    if (from >= p->n) {
        errbuf_set(&o->reason, "%s; password not sent", p->none);
        return PROTO_EINSECURE;
    }
    for (unsigned i = from; i < p->n; i++) {
        bool fell = false;
        plan_walk_try(w, &p->e[i], o, log, label, clock_now_ms());
        r = run(ctx, p, i, &fell);
        if (r == PROTO_OK)
            plan_walk_accepted(w, o);
        if (r == PROTO_OK || !fell)
            return r;
        plan_walk_failed(w, &p->e[i]);
    }
    return r;
}

void plan_walk_accepted(const struct plan_walk *w, struct login_outcome *o)
{
    long ms = (long)(w->last_try_ms - w->started_ms) + w->extra_ms;

    if (w->failed == 0)
        return;
    snprintf(o->fallback_from, sizeof(o->fallback_from), "%s", w->failed_names);
    o->fallback_wasted_ms = ms > 0 ? ms : 1;
    o->fallback_advice = plan_fallback_advice(w->first_failed);
}
