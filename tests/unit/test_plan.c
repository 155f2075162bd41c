/* plan_login (src/plan.c): the one plan the login walks and the probe shows. Every default case
 * of both protocols (as the choosers it replaced decided them) and the mechanisms list. */
#include <string.h>

#include "capture_log.h"
#include "check.h"
#include "plan.h"

#define BIT(id) (1u << (id))

static struct login_target target(enum mail_protocol p, enum tls_mode tls, enum apop_mode apop)
{
    return (struct login_target){.label = "t", .protocol = p, .tls = tls, .apop = apop};
}

static const struct plan_user plain_user = {.quotable = true};

/* The names of the plan's entries, "A,B" (empty: none). */
static const char *names(const struct login_plan *p)
{
    static char out[256];
    size_t used = 0;

    out[0] = '\0';
    for (unsigned i = 0; i < p->n; i++)
        used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%s", i > 0 ? "," : "",
                                 p->e[i].name);
    return out;
}

static void test_imap_default(void)
{
    struct login_target t = target(PROTOCOL_IMAP, TLS_MODE_IMPLICIT, APOP_AUTO);
    struct plan_offer o = {.caps_known = true, .sasl_mechs = BIT(SASL_MECH_PLAIN)};
    struct login_plan p;

    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "LOGIN");
    CHECK(p.usable && p.e[0].method == PLAN_IMAP_LOGIN && !p.e[0].pipelined);
    CHECK(p.e[0].when == PLAN_WHEN_FIRST && p.e[0].reason != NULL);
    o.logindisabled = true;
    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "AUTHENTICATE PLAIN");
    CHECK(p.usable && p.e[0].mech == &sasl_mechs[4] && p.e[0].mech->id == SASL_MECH_PLAIN);
    o.sasl_mechs = BIT(SASL_MECH_SCRAM_SHA_256); /* only PLAIN is the default's */
    plan_login(&t, &o, &plain_user, &p);
    CHECK(p.n == 0 && !p.usable);
    CHECK(strstr(p.none, "LOGINDISABLED and does not offer AUTH=PLAIN") != NULL);
    /* tls = none: the same choice (the cleartext rule is the stream's, not the plan's) */
    t.tls = TLS_MODE_NONE;
    o = (struct plan_offer){.caps_known = true};
    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "LOGIN");
}

/* STARTTLS: LOGIN goes out with the capability re-query when it can be quoted; what the new
 * capabilities say decides what a NO to it means. */
static void test_imap_starttls_pipelined(void)
{
    struct login_target t = target(PROTOCOL_IMAP, TLS_MODE_STARTTLS, APOP_AUTO);
    struct plan_offer unknown = {0};
    struct plan_offer o = {.caps_known = true};
    struct plan_user literal = {.quotable = false};
    struct login_plan p;

    plan_login(&t, &unknown, &plain_user, &p);
    CHECK_STR(names(&p), "LOGIN");
    CHECK(p.usable && p.e[0].pipelined && !p.e[0].refusal_no_verdict);
    plan_login(&t, &o, &plain_user, &p);
    CHECK(p.n == 1 && p.e[0].pipelined && !p.e[0].refusal_no_verdict && p.usable);
    o.logindisabled = true;
    o.sasl_mechs = BIT(SASL_MECH_PLAIN);
    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "LOGIN,AUTHENTICATE PLAIN");
    CHECK(p.e[0].pipelined && p.e[0].refusal_no_verdict && p.usable);
    CHECK(p.e[1].when == PLAN_WHEN_LOGIN_NOT_TAKEN);
    o.sasl_mechs = 0;
    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "LOGIN");
    CHECK(!p.usable && strstr(p.none, "LOGINDISABLED") != NULL);
    /* a literal is needed: no pipelining, the capabilities after TLS decide first */
    plan_login(&t, &unknown, &literal, &p);
    CHECK(p.n == 1 && !p.e[0].pipelined);
    o.sasl_mechs = BIT(SASL_MECH_PLAIN);
    plan_login(&t, &o, &literal, &p);
    CHECK_STR(names(&p), "AUTHENTICATE PLAIN");
    CHECK(p.e[0].when == PLAN_WHEN_FIRST && p.usable);
}

static void test_pop3_default(void)
{
    struct login_target t = target(PROTOCOL_POP3, TLS_MODE_IMPLICIT, APOP_AUTO);
    struct plan_offer o = {.apop_timestamp = true};
    struct plan_user space = {.has_space = true};
    struct login_plan p;

    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "APOP,USER/PASS");
    CHECK(p.usable && p.e[1].when == PLAN_WHEN_APOP_REFUSED);
    plan_login(&t, &o, &space, &p); /* a space would split APOP's arguments */
    CHECK_STR(names(&p), "USER/PASS");
    CHECK(p.e[0].when == PLAN_WHEN_FIRST);
    o.apop_timestamp = false;
    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "USER/PASS");
    t.apop = APOP_NEVER;
    o.apop_timestamp = true;
    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "USER/PASS");
    t.apop = APOP_ONLY;
    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "APOP");
    CHECK(p.usable);
    plan_login(&t, &o, &space, &p);
    CHECK(p.n == 0 && !p.usable && strstr(p.none, "apop = only") != NULL);
    /* the timestamp is there: the reason is the space, not the greeting */
    CHECK(strstr(p.none, "space") != NULL && strstr(p.none, "timestamp") == NULL);
    o.apop_timestamp = false;
    plan_login(&t, &o, &plain_user, &p);
    CHECK(p.n == 0 && !p.usable);
    CHECK_STR(p.none, "apop = only but the greeting carries no usable APOP timestamp");
}

/* AUTH PLAIN follows a refused USER only when CAPA lists SASL PLAIN and no USER. */
static void test_pop3_after_user_refused(void)
{
    struct login_target t = target(PROTOCOL_POP3, TLS_MODE_NONE, APOP_AUTO);
    struct plan_offer o = {.caps_known = true, .sasl_mechs = BIT(SASL_MECH_PLAIN)};
    struct login_plan p;

    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "USER/PASS,AUTH PLAIN");
    CHECK(p.e[1].when == PLAN_WHEN_USER_REFUSED && p.e[1].mech->id == SASL_MECH_PLAIN);
    o.pop3_user = true;
    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "USER/PASS");
    o = (struct plan_offer){.caps_known = true, .sasl_mechs = BIT(SASL_MECH_CRAM_MD5)};
    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "USER/PASS");
    o = (struct plan_offer){.caps_known = false, .sasl_mechs = BIT(SASL_MECH_PLAIN)};
    plan_login(&t, &o, &plain_user, &p); /* CAPA not read (yet): nothing assumed */
    CHECK_STR(names(&p), "USER/PASS");
    o = (struct plan_offer){
        .caps_known = true, .apop_timestamp = true, .sasl_mechs = BIT(SASL_MECH_PLAIN)};
    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "APOP,USER/PASS,AUTH PLAIN");
}

/* mechanisms = ...: SASL only, in the configured order, skipping what is not offered; replaces
 * the defaults (no LOGIN, APOP or USER/PASS whatever the server offers). */
static void test_mechanisms_list(void)
{
    struct login_target t = target(PROTOCOL_IMAP, TLS_MODE_STARTTLS, APOP_AUTO);
    struct plan_offer o = {.caps_known = true,
                           .sasl_mechs = BIT(SASL_MECH_SCRAM_SHA_256) | BIT(SASL_MECH_PLAIN) |
                                         BIT(SASL_MECH_LOGIN) | BIT(SASL_MECH_CRAM_MD5)};
    struct login_plan p;

    t.mechanisms[0] = SASL_MECH_SCRAM_SHA_256_PLUS;
    t.mechanisms[1] = SASL_MECH_SCRAM_SHA_256;
    t.mechanisms[2] = SASL_MECH_PLAIN;
    t.n_mechanisms = 3;
    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "AUTHENTICATE SCRAM-SHA-256,AUTHENTICATE PLAIN");
    CHECK(p.usable && !p.e[0].pipelined && p.e[0].when == PLAN_WHEN_FIRST);
    CHECK(p.e[1].when == PLAN_WHEN_UNUSABLE);
    o.sasl_mechs |= BIT(SASL_MECH_SCRAM_SHA_256_PLUS);
    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p),
              "AUTHENTICATE SCRAM-SHA-256-PLUS,AUTHENTICATE SCRAM-SHA-256,AUTHENTICATE PLAIN");
    CHECK_STR(p.left_out, "");
    /* a channel that cannot be bound: -PLUS left out, and said so */
    o.cb_unbindable = "no TLS 1.3 and no EMS";
    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "AUTHENTICATE SCRAM-SHA-256,AUTHENTICATE PLAIN");
    CHECK_STR(p.left_out, "SCRAM-SHA-256-PLUS left out: no TLS 1.3 and no EMS");
    t.n_mechanisms = 1;
    plan_login(&t, &o, &plain_user, &p);
    CHECK(p.n == 0 && !p.usable && strstr(p.none, "only -PLUS") != NULL);
    o.cb_unbindable = NULL;
    t.n_mechanisms = 1; /* -PLUS alone */
    o.sasl_mechs &= ~BIT(SASL_MECH_SCRAM_SHA_256_PLUS);
    plan_login(&t, &o, &plain_user, &p);
    CHECK(p.n == 0 && !p.usable && strstr(p.none, "none of the configured") != NULL);
    /* the configured order, not the table's */
    t.mechanisms[0] = SASL_MECH_PLAIN;
    t.mechanisms[1] = SASL_MECH_CRAM_MD5;
    t.n_mechanisms = 2;
    o.logindisabled = true;
    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "AUTHENTICATE PLAIN,AUTHENTICATE CRAM-MD5");
    /* POP3: AUTH, never APOP or USER/PASS */
    t.protocol = PROTOCOL_POP3;
    o.apop_timestamp = true;
    o.pop3_user = true;
    plan_login(&t, &o, &plain_user, &p);
    CHECK_STR(names(&p), "AUTH PLAIN,AUTH CRAM-MD5");
    o.caps_known = false;
    o.sasl_mechs = 0;
    plan_login(&t, &o, &plain_user, &p);
    CHECK(p.n == 0 && !p.usable && strstr(p.none, "no CAPA") != NULL);
}

static void test_names_and_walk(void)
{
    struct login_target t = target(PROTOCOL_POP3, TLS_MODE_IMPLICIT, APOP_AUTO);
    struct plan_offer o = {.apop_timestamp = true};
    struct login_outcome out = {0};
    struct plan_walk w = {0};
    struct logger quiet = {.sink = capture};
    struct login_plan p;

    CHECK_STR(plan_method_name(PLAN_IMAP_LOGIN), "LOGIN");
    CHECK_STR(plan_method_name(PLAN_POP3_USER_PASS), "USER/PASS");
    CHECK(plan_fallback_advice(PLAN_POP3_USER_PASS) == NULL);
    CHECK(strstr(plan_fallback_advice(PLAN_POP3_APOP), "apop = never") != NULL);
    plan_login(&t, &o, &plain_user, &p);
    /* no fallback: nothing reported */
    plan_walk_try(&w, &p.e[0], &out, &quiet, "t", 1000);
    plan_walk_accepted(&w, &out);
    CHECK_STR(out.mechanism, "APOP");
    CHECK(out.fallback_from[0] == '\0' && out.fallback_wasted_ms == 0);
    /* APOP refused (300 ms), a reconnect (50 ms), USER/PASS accepted */
    plan_walk_failed(&w, &p.e[0]);
    plan_walk_try(&w, &p.e[1], &out, &quiet, "t", 1300);
    w.extra_ms += 50;
    plan_walk_accepted(&w, &out);
    CHECK(logged[0] == '\0'); /* APOP refused is no "failed before the password" */
    CHECK_STR(out.mechanism, "USER/PASS");
    CHECK_STR(out.fallback_from, "APOP");
    CHECK(out.fallback_wasted_ms == 350);
    CHECK(out.fallback_advice == plan_fallback_advice(PLAN_POP3_APOP));
    /* two SASL mechanisms failed: both named, the cost from the first */
    t.protocol = PROTOCOL_IMAP;
    t.mechanisms[0] = SASL_MECH_SCRAM_SHA_256;
    t.mechanisms[1] = SASL_MECH_CRAM_MD5;
    t.mechanisms[2] = SASL_MECH_PLAIN;
    t.n_mechanisms = 3;
    o.caps_known = true;
    o.sasl_mechs = BIT(SASL_MECH_SCRAM_SHA_256) | BIT(SASL_MECH_CRAM_MD5) | BIT(SASL_MECH_PLAIN);
    plan_login(&t, &o, &plain_user, &p);
    w = (struct plan_walk){0};
    out = (struct login_outcome){0};
    plan_walk_try(&w, &p.e[0], &out, &quiet, "t", 10);
    plan_walk_failed(&w, &p.e[0]);
    plan_walk_try(&w, &p.e[1], &out, &quiet, "t", 20);
    plan_walk_failed(&w, &p.e[1]);
    plan_walk_try(&w, &p.e[2], &out, &quiet, "t", 35);
    plan_walk_accepted(&w, &out);
    CHECK(strstr(logged, "SCRAM-SHA-256 failed before the password was checked") != NULL);
    CHECK(strstr(logged, "trying CRAM-MD5: this cost 10 ms") != NULL);
    CHECK(strstr(logged, "trying PLAIN: this cost 25 ms") != NULL);
    CHECK_STR(out.fallback_from, "SCRAM-SHA-256, CRAM-MD5");
    CHECK_STR(out.mechanism, "AUTHENTICATE PLAIN");
    CHECK(out.fallback_wasted_ms == 25);
    CHECK(strstr(out.fallback_advice, "mechanisms") != NULL);
}

int main(void)
{
    test_imap_default();
    test_imap_starttls_pipelined();
    test_pop3_default();
    test_pop3_after_user_refused();
    test_mechanisms_list();
    test_names_and_walk();
    return check_summary("plan");
}
