/* What a login sends, in which order, and why: one plan that the login (imap.c, pop3.c) walks
 * and the probe (probe.c) shows, so the two cannot disagree. Pure: no I/O.
 *
 * Without `mechanisms` the plan is the protocol's default login: IMAP LOGIN (pipelined behind
 * STARTTLS's CAPABILITY when user name and password can be quoted), AUTHENTICATE PLAIN under
 * LOGINDISABLED; POP3 APOP (apop = auto/only), USER/PASS, AUTH PLAIN when USER is refused and CAPA
 * lists SASL PLAIN and no USER. With `mechanisms` it is the configured SASL mechanisms the server
 * offers, in the configured order, and nothing else. */
#ifndef MAILAUTH_PLAN_H
#define MAILAUTH_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "proto.h"
#include "sasl/mech.h"

/* One login method. Their names are in one table (plan.c); SASL names in sasl_mechs. */
enum plan_method {
    PLAN_IMAP_LOGIN,
    PLAN_IMAP_AUTHENTICATE, /* with a SASL mechanism */
    PLAN_POP3_APOP,
    PLAN_POP3_USER_PASS,
    PLAN_POP3_AUTH, /* with a SASL mechanism */
};

/* When an entry is tried: the first one always; each later one only on its condition. */
enum plan_when {
    PLAN_WHEN_FIRST,
    /* the entry before ended before the password went out whole (a SASL mechanism the server
     * advertises but cannot run for this user, or credentials it cannot take) */
    PLAN_WHEN_UNUSABLE,
    PLAN_WHEN_APOP_REFUSED, /* POP3, apop = auto: APOP was refused (the password went, digested) */
    PLAN_WHEN_USER_REFUSED, /* POP3: USER was refused and CAPA lists SASL PLAIN and no USER */
    /* IMAP: the LOGIN pipelined after STARTTLS was refused and the server lists LOGINDISABLED
     * after TLS: its NO refused the command, not necessarily the password */
    PLAN_WHEN_LOGIN_NOT_TAKEN,
};

#define PLAN_NAME_MAX PROTO_MECH_NAME_MAX
#define PLAN_MAX (SASL_MECH_COUNT + 3)

struct plan_entry {
    enum plan_method method;
    const struct sasl_mech *mech; /* PLAN_IMAP_AUTHENTICATE, PLAN_POP3_AUTH; else NULL */
    enum plan_when when;
    /* IMAP LOGIN sent with STARTTLS's CAPABILITY re-query in one write, before the capabilities
     * after TLS are known */
    bool pipelined;
    /* a refusal of this entry is no verdict: the server lists LOGINDISABLED (the pipelined
     * LOGIN); the next entry, if any, is tried, else the login has no answer */
    bool refusal_no_verdict;
    char name[PLAN_NAME_MAX]; /* as the command starts: "LOGIN", "AUTH SCRAM-SHA-256" */
    const char *reason;       /* why it is in the plan, and in this place */
};

/* What the server offers, as far as it is known when the plan is made. */
struct plan_offer {
    bool caps_known;     /* IMAP: capabilities (after TLS); POP3: a CAPA listing was read */
    bool logindisabled;  /* IMAP LOGINDISABLED */
    unsigned sasl_mechs; /* AUTH=... / CAPA SASL ... of the mechanism table, bit 1 << id */
    bool pop3_user;      /* CAPA lists USER */
    bool apop_timestamp; /* the POP3 greeting carries a well-formed APOP timestamp */
    /* Why a -PLUS mechanism cannot run on this connection (sasl_channel_unbindable: no TLS, TLS
     * 1.2 without the extended master secret); NULL: it can. The plan then leaves it out. */
    const char *cb_unbindable;
};

/* What of the credentials matters to the choice. */
struct plan_user {
    bool has_space; /* it would split APOP's arguments */
    bool quotable;  /* IMAP: user name and password travel as quoted strings (no literal) */
};

struct login_plan {
    struct plan_entry e[PLAN_MAX];
    unsigned n;
    /* Some entry can bring a verdict. False when the plan is empty, or when its only entry is a
     * pipelined LOGIN whose refusal is no verdict and nothing follows it. */
    bool usable;
    const char *none; /* !usable: why no login method can be used ("" otherwise) */
    /* A configured mechanism the server offers that the plan left out, and why ("" when none):
     * the login logs it, the probe shows it. */
    char left_out[160];
};

/* The plan for target t (protocol, tls, apop, mechanisms) given what the server offers and what
 * matters of the credentials. */
void plan_login(const struct login_target *t, const struct plan_offer *o, const struct plan_user *u,
                struct login_plan *p);

/* The command word of a method ("LOGIN", "AUTHENTICATE", "APOP", "USER/PASS", "AUTH"). */
const char *plan_method_name(enum plan_method m);

/* Why an entry with this condition comes where it does, in words. */
const char *plan_when_text(enum plan_when w);

/* What to change so that a fallback from method m stops costing time (the walk logs it at
 * LOG_NOTICE when a later entry accepted the password m could not check); NULL for a method no
 * entry falls back from on a refusal (LOGIN, USER/PASS). */
const char *plan_fallback_advice(enum plan_method m);

/* A walk through a plan: which entries failed before the password was checked, from when. */
struct plan_walk {
    int64_t started_ms;  /* the first entry began */
    int64_t last_try_ms; /* the entry tried last began */
    long extra_ms;       /* time a failure cost after the next entry began (a reconnect) */
    unsigned failed;     /* entries that failed so far */
    enum plan_method first_failed;
    char failed_names[PROTO_FALLBACK_MAX];
};

/* Entry e is about to be tried (now_ms): o->mechanism names it. When it follows an entry that
 * ended before the password went out (PLAN_WHEN_UNUSABLE), a LOG_WARNING line says which failed,
 * why (o->reason) and what that has cost so far. label: the server's name. */
void plan_walk_try(struct plan_walk *w, const struct plan_entry *e, struct login_outcome *o,
                   const struct logger *log, const char *label, int64_t now_ms);

/* The entry tried last failed without a verdict on the password (or APOP was refused). */
void plan_walk_failed(struct plan_walk *w, const struct plan_entry *e);

/* The entry tried last succeeded: if some entry failed before it, o says which and what that
 * cost (fallback_from, fallback_wasted_ms, fallback_advice). */
void plan_walk_accepted(const struct plan_walk *w, struct login_outcome *o);

/* Run entry i of p for a protocol; *fell: it ended without a verdict on the password by the
 * entry's rule (plan.h: before the password went whole; APOP refused under apop = auto), so the
 * next entry may be tried. */
typedef enum proto_result (*plan_run_fn)(void *ctx, const struct login_plan *p, unsigned i,
                                         bool *fell);

/* The one fallback rule, for imap.c and pop3.c: p's entries from entry from on, each run by run,
 * on to the next only when it fell; what a fallback cost goes into o (the walk logs it, auth.c).
 * From the start, a -PLUS mechanism the plan left out is logged at LOG_WARNING; an empty plan
 * sends nothing (PROTO_EINSECURE, o->reason says why). */
enum proto_result plan_walk_run(struct plan_walk *w, const struct login_plan *p, unsigned from,
                                plan_run_fn run, void *ctx, struct login_outcome *o,
                                const struct logger *log, const char *label);

#endif
