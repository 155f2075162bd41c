/* mailauth-probe: check the configuration as the module reads it, and show for every address of
 * every configured server what a login would meet there, without credentials; with --user, log
 * in as the module would. Arguments and output only: the diagnosis is src/probe.c, the login is
 * the module's own mailauth_check. The exit codes are documented in mailauth-probe(8). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "config.h"
#include "json.h"
#include "log.h"
#include "mailauth.h"
#include "probe.h"
#include "tool_output.h"

enum exit_code {
    EXIT_READY = 0,
    EXIT_USAGE = 1,
    EXIT_CONFIG = 2,
    EXIT_RESOLVE = 3,
    EXIT_CONNECT = 4,
    EXIT_GREETING = 5,
    EXIT_TLS = 6,
    EXIT_CAPABILITIES = 7,
    EXIT_CREDENTIALS = 8,
    EXIT_LOGIN_REFUSED = 9,
    EXIT_LOGIN_FAILED = 10,
    EXIT_INTERNAL = 11,
};

/* Longest password read; longer input is refused, never cut. */
#define PASSWORD_MAX 1024

struct options {
    const char *config_path;
    const char *user;
    bool check_only;
    bool json;
    enum probe_stage stop_after;
};

static const char usage_text[] =
    "usage: mailauth-probe [--config PATH] [--check-config] [--json]\n"
    "                      [--stop-after connect|greeting|tls|capabilities] [--user NAME]\n";

/* ---- output: server text is untrusted, so every byte outside printable ASCII is escaped
 * (tool_output.c) ---- */

static void put_field(const char *name, const char *s, size_t len)
{
    printf("  %-14s ", name);
    tool_put_text(stdout, s, len);
    putchar('\n');
}

static void put_str(const char *name, const char *s)
{
    put_field(name, s, strlen(s));
}

static void human_tls(const struct tls_peer_info *ti, bool verify)
{
    char line[384];

    snprintf(line, sizeof(line), "%s %s", ti->version, ti->cipher);
    put_str("tls", line);
    for (size_t i = 0; i < ti->n_chain; i++) {
        const struct tls_cert_info *ci = &ti->chain[i];
        printf("  certificate %zu\n", i);
        put_str("  subject", ci->subject);
        put_str("  issuer", ci->issuer);
        snprintf(line, sizeof(line), "%s (%ld days left)", ci->not_after, ci->days_left);
        put_str("  expires", line);
    }
    snprintf(line, sizeof(line), "%s%s%s", ti->chain_verified ? "yes" : "no: ", ti->verify_error,
             verify ? "" : " (verify = false: NOT checked at login)");
    put_str("verified", line);
}

/* What the server offers and the login's plan for it, one entry a line, with its reason. */
static void human_plan(const struct probe_address *pa)
{
    char line[512];

    put_str("offered", pa->offered[0] != '\0' ? pa->offered : "nothing a login could use");
    for (unsigned i = 0; i < pa->plan.n; i++) {
        const struct plan_entry *e = &pa->plan.e[i];
        snprintf(line, sizeof(line), "%u. %s (%s): %s", i + 1, e->name, plan_when_text(e->when),
                 e->reason);
        put_str(i == 0 ? "plan" : "", line);
    }
    if (!pa->plan.usable)
        put_str(pa->plan.n == 0 ? "plan" : "", pa->plan.none);
    if (pa->plan.left_out[0] != '\0')
        put_str("left out", pa->plan.left_out);
}

static void human_report(void *ctx, const struct probe_address *pa)
{
    char line[160];

    (void)ctx;
    printf("server \"");
    tool_put_str(stdout, pa->target.label);
    printf("\" %s %s (tls %s)\n", protocol_name(pa->target.protocol), pa->address,
           tls_mode_name(pa->target.tls));
    snprintf(line, sizeof(line), "%s: %u address%s in %ld ms", pa->target.host, pa->resolved,
             pa->resolved == 1 ? "" : "es", pa->resolve_ms);
    put_str("resolve", line);
    if (pa->connect_ms >= 0) {
        snprintf(line, sizeof(line), "%ld ms", pa->connect_ms);
        put_str("connect", line);
    }
    if (pa->greeting.seen)
        put_field("greeting", pa->greeting.text, pa->greeting.len);
    if (pa->caps_before_tls.seen)
        put_field("caps", pa->caps_before_tls.text, pa->caps_before_tls.len);
    if (pa->tls_second_look)
        put_str("note", "the certificate did not verify; shown from a second, unverified "
                        "handshake:");
    if (pa->tls_done)
        human_tls(&pa->tls, pa->target.verify);
    if (pa->caps_after_tls.seen)
        put_field("caps (TLS)", pa->caps_after_tls.text, pa->caps_after_tls.len);
    if (pa->credentials_checked)
        put_str("password", pa->credentials_allowed ? "would be sent" : "would NOT be sent");
    if (pa->credentials_checked)
        put_str("  because", pa->credentials_reason);
    if (pa->plan_known)
        human_plan(pa);
    if (pa->mechanism != NULL)
        put_str("mechanism", pa->mechanism);
    if (pa->forwarding_known && pa->target.protocol == PROTOCOL_IMAP) {
        snprintf(line, sizeof(line), "ID %s; forward_client_ip = %s",
                 pa->forwarding ? "offered" : "not offered",
                 pa->target.forward_client_ip ? "auto" : "no");
        put_str("forwarding", line);
    } else if (pa->forwarding_known) {
        snprintf(line, sizeof(line), "XCLIENT %s; never sent (POP3 answers carry no tag)",
                 pa->forwarding ? "offered" : "not offered");
        put_str("forwarding", line);
    }
    put_str("verdict", pa->verdict);
    fflush(stdout);
}

/* ---- JSON: one object per line ---- */

static void json_key_str(const char *key, const char *s, size_t len, bool comma)
{
    printf("%s\"%s\":", comma ? "," : "", key);
    json_write_string(stdout, s, len);
}

static void json_key_text(const char *key, const struct probe_text *t)
{
    if (t->seen)
        json_key_str(key, t->text, t->len, true);
    else
        printf(",\"%s\":null", key);
}

static void json_tls(const struct tls_peer_info *ti, bool second_look)
{
    printf(",\"tls\":{");
    json_key_str("version", ti->version, strlen(ti->version), false);
    json_key_str("cipher", ti->cipher, strlen(ti->cipher), true);
    printf(",\"chain\":[");
    for (size_t i = 0; i < ti->n_chain; i++) {
        const struct tls_cert_info *ci = &ti->chain[i];
        printf("%s{", i > 0 ? "," : "");
        json_key_str("subject", ci->subject, strlen(ci->subject), false);
        json_key_str("issuer", ci->issuer, strlen(ci->issuer), true);
        json_key_str("not_after", ci->not_after, strlen(ci->not_after), true);
        printf(",\"days_left\":%ld}", ci->days_left);
    }
    printf("],\"verified\":%s,\"second_look\":%s", ti->chain_verified ? "true" : "false",
           second_look ? "true" : "false");
    json_key_str("verify_error", ti->verify_error, strlen(ti->verify_error), true);
    putchar('}');
}

/* "offered": the methods as one string; "plan": its entries in order; "plan_none": why no
 * entry can bring a verdict (null when one can); "plan_left_out": a configured, offered mechanism
 * the plan left out and why (a -PLUS one on a channel that cannot be bound; null when none); all
 * null when the probe did not get there. */
static void json_plan(const struct probe_address *pa)
{
    if (!pa->plan_known) {
        printf(",\"offered\":null,\"plan\":null,\"plan_none\":null,\"plan_left_out\":null");
        return;
    }
    json_key_str("offered", pa->offered, strlen(pa->offered), true);
    printf(",\"plan\":[");
    for (unsigned i = 0; i < pa->plan.n; i++) {
        const struct plan_entry *e = &pa->plan.e[i];
        const char *when = plan_when_text(e->when);
        printf("%s{", i > 0 ? "," : "");
        json_key_str("method", e->name, strlen(e->name), false);
        if (e->mech != NULL)
            json_key_str("sasl", e->mech->name, strlen(e->mech->name), true);
        else
            printf(",\"sasl\":null");
        json_key_str("when", when, strlen(when), true);
        json_key_str("reason", e->reason, strlen(e->reason), true);
        putchar('}');
    }
    putchar(']');
    if (pa->plan.usable)
        printf(",\"plan_none\":null");
    else
        json_key_str("plan_none", pa->plan.none, strlen(pa->plan.none), true);
    if (pa->plan.left_out[0] == '\0')
        printf(",\"plan_left_out\":null");
    else
        json_key_str("plan_left_out", pa->plan.left_out, strlen(pa->plan.left_out), true);
}

static void json_report(void *ctx, const struct probe_address *pa)
{
    const char *fwd = pa->target.protocol == PROTOCOL_IMAP ? "ID" : "XCLIENT";

    (void)ctx;
    putchar('{');
    json_key_str("server", pa->target.label, strlen(pa->target.label), false);
    json_key_str("protocol", protocol_name(pa->target.protocol), 4, true);
    json_key_str("host", pa->target.host, strlen(pa->target.host), true);
    printf(",\"port\":%u", pa->target.port);
    json_key_str("tls_mode", tls_mode_name(pa->target.tls), strlen(tls_mode_name(pa->target.tls)),
                 true);
    json_key_str("address", pa->address, strlen(pa->address), true);
    printf(",\"resolve_ms\":%ld,\"resolved\":%u,\"connect_ms\":%ld", pa->resolve_ms, pa->resolved,
           pa->connect_ms);
    json_key_text("greeting", &pa->greeting);
    json_key_text("capabilities_before_tls", &pa->caps_before_tls);
    json_key_text("capabilities_after_tls", &pa->caps_after_tls);
    if (pa->tls_done)
        json_tls(&pa->tls, pa->tls_second_look);
    else
        printf(",\"tls\":null");
    printf(",\"verify\":%s,\"forward_client_ip\":%s", pa->target.verify ? "true" : "false",
           pa->target.forward_client_ip ? "true" : "false");
    if (pa->credentials_checked) {
        printf(",\"credentials_allowed\":%s", pa->credentials_allowed ? "true" : "false");
        json_key_str("credentials_reason", pa->credentials_reason, strlen(pa->credentials_reason),
                     true);
    } else {
        printf(",\"credentials_allowed\":null,\"credentials_reason\":null");
    }
    if (pa->mechanism != NULL)
        json_key_str("mechanism", pa->mechanism, strlen(pa->mechanism), true);
    else
        printf(",\"mechanism\":null");
    json_plan(pa);
    if (pa->forwarding_known)
        printf(",\"forwarding\":%s%s%s", pa->forwarding ? "\"" : "false", pa->forwarding ? fwd : "",
               pa->forwarding ? "\"" : "");
    else
        printf(",\"forwarding\":null");
    json_key_str("failed_stage", probe_stage_name(pa->failed), strlen(probe_stage_name(pa->failed)),
                 true);
    printf(",\"ready\":%s", strcmp(pa->verdict, "ready") == 0 ? "true" : "false");
    json_key_str("verdict", pa->verdict, strlen(pa->verdict), true);
    printf("}\n");
    fflush(stdout);
}

/* ---- arguments ---- */

static bool parse_stage(const char *s, enum probe_stage *out)
{
    static const enum probe_stage stages[] = {PROBE_STAGE_CONNECT, PROBE_STAGE_GREETING,
                                              PROBE_STAGE_TLS, PROBE_STAGE_CAPABILITIES};

    for (size_t i = 0; i < MA_ARRAY_LEN(stages); i++) {
        if (strcmp(s, probe_stage_name(stages[i])) == 0) {
            *out = stages[i];
            return true;
        }
    }
    return false;
}

/* 0 when the arguments are good, else the exit code (the error is printed). */
static int parse_args(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"user", required_argument, NULL, 'u'},
        {"json", no_argument, NULL, 'j'},
        {"stop-after", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    *o = (struct options){.config_path = CONFIG_DEFAULT_PATH};
    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:u:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config_path = optarg;
            break;
        case 'C':
            o->check_only = true;
            break;
        case 'u':
            o->user = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        case 's':
            if (!parse_stage(optarg, &o->stop_after)) {
                fputs("mailauth-probe: --stop-after takes connect, greeting, tls or "
                      "capabilities\n",
                      stderr);
                return EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(usage_text, stdout);
            return -1;
        default:
            fputs("mailauth-probe: unknown option or missing argument: ", stderr);
            tool_put_str(stderr, argv[optind - 1]);
            fputc('\n', stderr);
            fputs(usage_text, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fputs("mailauth-probe: unexpected argument: ", stderr);
        tool_put_str(stderr, argv[optind]);
        fputc('\n', stderr);
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    if (o->user != NULL && o->stop_after != PROBE_STAGE_NONE) {
        fputs("mailauth-probe: --user logs in; it cannot stop early (--stop-after)\n", stderr);
        return EXIT_USAGE;
    }
    return 0;
}

static int stage_exit_code(enum probe_stage s)
{
    switch (s) {
    case PROBE_STAGE_NONE:
        return EXIT_READY;
    case PROBE_STAGE_RESOLVE:
        return EXIT_RESOLVE;
    case PROBE_STAGE_CONNECT:
        return EXIT_CONNECT;
    case PROBE_STAGE_GREETING:
        return EXIT_GREETING;
    case PROBE_STAGE_TLS:
        return EXIT_TLS;
    case PROBE_STAGE_CAPABILITIES:
        return EXIT_CAPABILITIES;
    case PROBE_STAGE_CREDENTIALS:
        return EXIT_CREDENTIALS;
    }
    return EXIT_INTERNAL;
}

/* ---- the password: from the terminal with echo off, or from stdin; never from argv ---- */

/* Set by a signal that arrives while echo is off: the read stops, the terminal is restored, and
 * only then does the program end. (A program of its own, unlike the module, may own signals.) */
static volatile sig_atomic_t interrupted;

static void note_signal(int sig)
{
    interrupted = sig;
}

/* Wait until fd is readable with the signals of echo_off_signals, blocked everywhere else,
 * let through (ppoll swaps the mask atomically: a signal that came at any time before is seen
 * here, never lost between a check and a blocking read). False once one has come. */
static bool wait_readable(int fd, const sigset_t *wait_mask)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    while (!interrupted) {
        if (ppoll(&pfd, 1, NULL, wait_mask) >= 0)
            return true;
        if (errno != EINTR)
            return false;
    }
    return false;
}

/* Read one line from fd byte by byte (no stdio buffer keeps a copy). False when it is longer
 * than cap - 1, nothing could be read, or a signal interrupted it. wait_mask: NULL for a plain
 * read, else the mask to wait with (wait_readable). */
static bool read_secret_line(int fd, const sigset_t *wait_mask, char *buf, size_t cap, size_t *len)
{
    *len = 0;
    for (;;) {
        char c;
        ssize_t n;

        if (wait_mask != NULL && !wait_readable(fd, wait_mask))
            return false;
        n = read(fd, &c, 1);
        if (n < 0 && errno == EINTR && !interrupted)
            continue;
        if (n < 0)
            return false;
        if (n <= 0 || c == '\n')
            break;
        if (*len + 1 >= cap)
            return false;
        buf[(*len)++] = c;
    }
    if (*len > 0 && buf[*len - 1] == '\r')
        (*len)--;
    buf[*len] = '\0';
    return true;
}

static const int echo_off_signals[] = {SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGTSTP};

struct saved_signals {
    struct sigaction actions[MA_ARRAY_LEN(echo_off_signals)];
    sigset_t mask; /* the mask before: what wait_readable waits with */
};

/* Catch the signals that would end or stop the program with echo off, and block them except
 * while waiting for input (wait_readable); restore_signals undoes both. */
static void catch_signals(struct saved_signals *old)
{
    struct sigaction sa;
    sigset_t block;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = note_signal;
    sigemptyset(&sa.sa_mask);
    sigemptyset(&block);
    for (size_t i = 0; i < MA_ARRAY_LEN(echo_off_signals); i++) {
        sigaddset(&block, echo_off_signals[i]);
        sigaction(echo_off_signals[i], &sa, &old->actions[i]);
    }
    sigprocmask(SIG_BLOCK, &block, &old->mask);
    for (size_t i = 0; i < MA_ARRAY_LEN(echo_off_signals); i++)
        sigdelset(&old->mask, echo_off_signals[i]);
}

static void restore_signals(const struct saved_signals *old, const sigset_t *before)
{
    sigprocmask(SIG_SETMASK, before, NULL);
    for (size_t i = 0; i < MA_ARRAY_LEN(echo_off_signals); i++)
        sigaction(echo_off_signals[i], &old->actions[i], NULL);
}

/* The user name as the prompt shows it: escaped as every name from the command line is
 * (tool_output.h), cut to fit. */
static const char *shown_user(const char *user, char *out, size_t cap)
{
    FILE *m;

    memset(out, 0, cap);
    m = fmemopen(out, cap, "w");
    if (m == NULL)
        return "the given user";
    setvbuf(m, NULL, _IONBF, 0);
    tool_put_str(m, user);
    fclose(m);
    out[cap - 1] = '\0';
    return out;
}

static bool read_password_tty(const char *user, char *buf, size_t cap, size_t *len)
{
    int fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    struct saved_signals old;
    sigset_t before;
    struct termios saved, quiet;
    char shown[4 * 256 + 1];
    bool ok = false;

    if (fd < 0 || tcgetattr(fd, &saved) != 0)
        goto out;
    sigprocmask(SIG_SETMASK, NULL, &before);
    catch_signals(&old);
    quiet = saved;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quiet.c_lflag |= ECHONL;
    /* Echo goes off before the prompt appears: nothing typed after it is ever shown. */
    if (tcsetattr(fd, TCSAFLUSH, &quiet) == 0) {
        dprintf(fd, "Password for %s: ", shown_user(user, shown, sizeof(shown)));
        ok = read_secret_line(fd, &old.mask, buf, cap, len);
        tcsetattr(fd, TCSAFLUSH, &saved);
    }
    restore_signals(&old, &before);
    if (interrupted) {
        ok = false;
        dprintf(fd, "\n");
    }
out:
    if (fd >= 0)
        close(fd);
    return ok;
}

static bool read_password(const char *user, char *buf, size_t cap, size_t *len)
{
    if (isatty(STDIN_FILENO))
        return read_password_tty(user, buf, cap, len);
    return read_secret_line(STDIN_FILENO, NULL, buf, cap, len);
}

/* ---- the login ---- */

/* Whether the server that decided proved it knows the password (SCRAM v=), in words. */
static const char *proof_name(const struct mailauth_report *rep)
{
    if (rep->mechanism[0] == '\0')
        return "no server decided";
    switch (rep->proof) {
    case PROOF_VERIFIED:
        return "verified";
    case PROOF_PENDING:
        return "not verified";
    case PROOF_NOT_REQUIRED:
        break;
    }
    return "none (the mechanism has no server proof)";
}

/* apop_wasted_ms: the fallback cost when it was APOP's (kept for scripts written before the
 * fallback covered SASL mechanisms; mailauth-probe(8)). */
static long apop_wasted_ms(const struct mailauth_report *rep)
{
    return strcmp(rep->fallback_from, plan_method_name(PLAN_POP3_APOP)) == 0
               ? rep->fallback_wasted_ms
               : 0;
}

static void json_login(enum mailauth_result r, const struct mailauth_report *rep)
{
    const char *proof = proof_name(rep);

    printf("{\"login\":{");
    json_key_str("user", rep->user, strlen(rep->user), false);
    json_key_str("result", mailauth_result_name(r), strlen(mailauth_result_name(r)), true);
    json_key_str("server", rep->label, strlen(rep->label), true);
    json_key_str("address", rep->address, strlen(rep->address), true);
    json_key_str("source", mailauth_source_name(rep->source),
                 strlen(mailauth_source_name(rep->source)), true);
    json_key_str("reason", rep->reason, strlen(rep->reason), true);
    if (rep->mechanism[0] != '\0') {
        json_key_str("mechanism", rep->mechanism, strlen(rep->mechanism), true);
        printf(",\"server_proved\":%s", rep->proof == PROOF_VERIFIED ? "true" : "false");
    } else {
        printf(",\"mechanism\":null,\"server_proved\":null");
    }
    json_key_str("server_proof", proof, strlen(proof), true);
    if (rep->fallback_from[0] != '\0')
        json_key_str("fallback_from", rep->fallback_from, strlen(rep->fallback_from), true);
    else
        printf(",\"fallback_from\":null");
    printf(",\"fallback_wasted_ms\":%ld", rep->fallback_wasted_ms);
    printf(",\"elapsed_ms\":%ld,\"apop_wasted_ms\":%ld}}\n", rep->elapsed_ms, apop_wasted_ms(rep));
}

static void print_login(const struct options *o, enum mailauth_result r,
                        const struct mailauth_report *rep)
{
    if (o->json) {
        json_login(r, rep);
        return;
    }
    printf("login as \"");
    tool_put_str(stdout, rep->user);
    printf("\": %s", mailauth_result_name(r));
    if (rep->label[0] != '\0') {
        printf(" by server \"");
        tool_put_str(stdout, rep->label);
        printf("\" %s", rep->address);
    }
    printf(" (answer from %s, %ld ms)\n", mailauth_source_name(rep->source), rep->elapsed_ms);
    if (r != MAILAUTH_OK)
        put_str("reason", rep->reason);
    if (rep->mechanism[0] != '\0')
        put_str("mechanism", rep->mechanism);
    put_str("server proof", proof_name(rep));
    if (rep->fallback_wasted_ms > 0) /* the module logs the same advice at LOG_NOTICE */
        printf("  note: %s refused but %s accepted: %s to save %ld ms per login\n",
               rep->fallback_from, rep->mechanism,
               rep->fallback_advice != NULL ? rep->fallback_advice : "change the configuration",
               rep->fallback_wasted_ms);
}

static int login(const struct options *o, const struct mailauth_config *cfg)
{
    const struct logger trace = tool_stderr_logger("mailauth-probe", true);
    struct mailauth_report rep;
    char password[PASSWORD_MAX + 1];
    size_t len = 0;
    enum mailauth_result r;
    int code = EXIT_INTERNAL;

    if (!read_password(o->user, password, sizeof(password), &len)) {
        fprintf(stderr, "mailauth-probe: cannot read the password (at most %d bytes, one line)\n",
                PASSWORD_MAX);
        goto out;
    }
    r = mailauth_check(cfg, o->user, strlen(o->user), password, len, &trace, &rep);
    print_login(o, r, &rep);
    code = r == MAILAUTH_OK         ? EXIT_READY
           : r == MAILAUTH_REJECTED ? EXIT_LOGIN_REFUSED
                                    : EXIT_LOGIN_FAILED;
out:
    secret_wipe(password, sizeof(password));
    return code;
}

/* ---- main ---- */

static void print_config_valid(const struct options *o, const struct mailauth_config *cfg)
{
    if (o->json) {
        putchar('{');
        json_key_str("config", o->config_path, strlen(o->config_path), false);
        printf(",\"valid\":true,\"servers\":%zu}\n", cfg->n_servers);
        return;
    }
    printf("configuration ");
    tool_put_str(stdout, o->config_path);
    printf(" is valid: %zu server(s)\n", cfg->n_servers);
}

static int probe_all(const struct options *o, const struct mailauth_config *cfg,
                     const struct logger *log)
{
    const struct probe_options popt = {.stop_after = o->stop_after, .user = o->user};
    enum probe_stage first = PROBE_STAGE_NONE;

    for (size_t i = 0; i < cfg->n_servers; i++) {
        const struct config_server *srv = &cfg->servers[i];
        for (size_t k = 0; k < srv->n_endpoints; k++) {
            enum probe_stage s = probe_endpoint(cfg, srv, &srv->endpoints[k], &popt, log,
                                                o->json ? json_report : human_report, NULL);
            if (first == PROBE_STAGE_NONE)
                first = s;
        }
    }
    return stage_exit_code(first);
}

int main(int argc, char **argv)
{
    const struct logger log = tool_stderr_logger("mailauth-probe", false);
    struct mailauth_config *cfg = NULL;
    struct options o;
    int code = parse_args(argc, argv, &o);

    if (code != 0)
        return code < 0 ? EXIT_READY : code;
    switch (config_load_file(o.config_path, &log, &cfg)) {
    case CONFIG_OK:
        break;
    case CONFIG_ENOMEM:
        fputs("mailauth-probe: out of memory\n", stderr);
        return EXIT_INTERNAL;
    default:
        fputs("mailauth-probe: configuration ", stderr);
        tool_put_str(stderr, o.config_path);
        fputs(" is unusable; see the error above\n", stderr);
        return EXIT_CONFIG;
    }
    if (o.check_only) {
        print_config_valid(&o, cfg);
        goto out;
    }
    code = probe_all(&o, cfg, &log);
    if (o.user != NULL)
        code = login(&o, cfg);
out:
    config_free(cfg);
    return code;
}
