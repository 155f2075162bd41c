/* One authentication through real libpam (pam_start_confdir), reporting what the module asked of
 * libpam rather than what a wall clock saw:
 *
 *   pam_probe CONFDIR SERVICE USER PASSWORD [MODULE.so]
 *
 * prints key=value lines:
 *   authenticate=CODE        what pam_authenticate returned
 *   prompts=N                echo-off prompts the conversation answered
 *   fail_delay_calls=N       calls to pam_fail_delay (interposed: this executable exports the
 *   fail_delay_usec=N        symbol, so the module's call lands here first), largest value asked
 *   delay_fn_status=CODE     the PAM_FAIL_DELAY item's callback: libpam passes the status and
 *   delay_fn_usec=N          the delay it computed from the largest request (base * 0.5..1.5)
 * and, when MODULE.so is given, the module's own answers on the same handle (dlopen, called
 * directly, so libpam's stack logic cannot turn PAM_IGNORE into something else):
 *   sm_setcred=CODE sm_acct_mgmt=CODE
 * Exit status 0 when everything ran, 2 on a usage or setup error. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <security/pam_appl.h>
#include <security/pam_modules.h>

struct probe {
    const char *password;
    int prompts;
    int delay_fn_calls;
    int delay_fn_status;
    unsigned delay_fn_usec;
};

/* Written by the interposed pam_fail_delay; one thread only. */
static int fail_delay_calls;
static unsigned fail_delay_largest;

static const char *code_name(int rc)
{
    static const struct {
        int rc;
        const char *name;
    } names[] = {
        {PAM_SUCCESS, "PAM_SUCCESS"},
        {PAM_AUTH_ERR, "PAM_AUTH_ERR"},
        {PAM_AUTHINFO_UNAVAIL, "PAM_AUTHINFO_UNAVAIL"},
        {PAM_USER_UNKNOWN, "PAM_USER_UNKNOWN"},
        {PAM_SERVICE_ERR, "PAM_SERVICE_ERR"},
        {PAM_IGNORE, "PAM_IGNORE"},
        {PAM_PERM_DENIED, "PAM_PERM_DENIED"},
        {PAM_CRED_ERR, "PAM_CRED_ERR"},
        {PAM_SYSTEM_ERR, "PAM_SYSTEM_ERR"},
        {PAM_BUF_ERR, "PAM_BUF_ERR"},
        {PAM_CONV_ERR, "PAM_CONV_ERR"},
        {PAM_INCOMPLETE, "PAM_INCOMPLETE"},
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i].rc == rc)
            return names[i].name;
    }
    return "PAM_OTHER";
}

typedef int (*fail_delay_fn)(pam_handle_t *, unsigned int);

/* Interposes libpam's pam_fail_delay for the module (this executable is linked with
 * -rdynamic): record the request, then pass it on unchanged. */
int pam_fail_delay(pam_handle_t *pamh, unsigned int usec)
{
    fail_delay_fn next = (fail_delay_fn)dlsym(RTLD_NEXT, "pam_fail_delay");

    fail_delay_calls++;
    if (usec > fail_delay_largest)
        fail_delay_largest = usec;
    return next != NULL ? next(pamh, usec) : PAM_SYSTEM_ERR;
}

static void delay_fn(int status, unsigned usec, void *appdata)
{
    struct probe *p = appdata;

    p->delay_fn_calls++;
    p->delay_fn_status = status;
    p->delay_fn_usec = usec;
}

static int converse(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
    struct probe *p = data;
    struct pam_response *r = calloc((size_t)n, sizeof(*r));

    if (r == NULL)
        return PAM_BUF_ERR;
    for (int i = 0; i < n; i++) {
        if (msg[i]->msg_style != PAM_PROMPT_ECHO_OFF)
            continue;
        p->prompts++;
        r[i].resp = strdup(p->password);
        if (r[i].resp == NULL) {
            for (int k = 0; k < i; k++)
                free(r[k].resp);
            free(r);
            return PAM_BUF_ERR;
        }
    }
    *resp = r;
    return PAM_SUCCESS;
}

typedef int (*sm_fn)(pam_handle_t *, int, int, const char **);

/* Call the module's setcred and acct_mgmt directly on a live handle. */
static int call_module(pam_handle_t *h, const char *module)
{
    void *so = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    sm_fn setcred, acct;

    if (so == NULL) {
        fprintf(stderr, "dlopen %s: %s\n", module, dlerror());
        return -1;
    }
    setcred = (sm_fn)dlsym(so, "pam_sm_setcred");
    acct = (sm_fn)dlsym(so, "pam_sm_acct_mgmt");
    if (setcred == NULL || acct == NULL) {
        fprintf(stderr, "%s lacks pam_sm_setcred or pam_sm_acct_mgmt\n", module);
        dlclose(so);
        return -1;
    }
    printf("sm_setcred=%s\n", code_name(setcred(h, PAM_ESTABLISH_CRED, 0, NULL)));
    printf("sm_acct_mgmt=%s\n", code_name(acct(h, 0, 0, NULL)));
    dlclose(so);
    return 0;
}

int main(int argc, char **argv)
{
    struct probe p = {0};
    struct pam_conv conv = {converse, &p};
    pam_handle_t *h = NULL;
    int rc, status = 0;

    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s CONFDIR SERVICE USER PASSWORD [MODULE.so]\n", argv[0]);
        return 2;
    }
    p.password = argv[4];
    rc = pam_start_confdir(argv[2], argv[3], &conv, argv[1], &h);
    if (rc != PAM_SUCCESS) {
        fprintf(stderr, "pam_start_confdir: %s\n", pam_strerror(h, rc));
        return 2;
    }
    rc = pam_set_item(h, PAM_FAIL_DELAY, (const void *)delay_fn);
    if (rc != PAM_SUCCESS) {
        fprintf(stderr, "PAM_FAIL_DELAY: %s\n", pam_strerror(h, rc));
        pam_end(h, rc);
        return 2;
    }
    rc = pam_authenticate(h, 0);
    printf("authenticate=%s\n", code_name(rc));
    printf("prompts=%d\n", p.prompts);
    printf("fail_delay_calls=%d\nfail_delay_usec=%u\n", fail_delay_calls, fail_delay_largest);
    printf("delay_fn_calls=%d\ndelay_fn_status=%s\ndelay_fn_usec=%u\n", p.delay_fn_calls,
           code_name(p.delay_fn_status), p.delay_fn_usec);
    if (argc == 6 && call_module(h, argv[5]) != 0)
        status = 2;
    pam_end(h, rc);
    return status;
}
