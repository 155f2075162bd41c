/* The caller's locale decides nothing. su and sudo call setlocale(LC_ALL, "") with the caller's
 * LC_ALL/LANG before PAM runs, and in the Turkish locales strcasecmp("plain", "PLAIN") is not 0
 * (tolower('I') is not 'i'): a module comparing names with the C library's case-insensitive
 * functions would then read another configuration (mechanisms = plain unknown: PAM_SERVICE_ERR),
 * let a user name past deny_users ("ADMIN" against "admin"), route a domain to another server, or
 * miss a server's capability. Every name comparison is ASCII-only, whatever the locale.
 *
 * The locale is built here (localedef into a temporary LOCPATH) from the locales package's
 * sources, so the test does not depend on what the machine has generated; without them it fails. */
#include <ctype.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "imap.h"
#include "policy.h"
#include "sasl/mech.h"

#define S(x) x, strlen(x)

static char dir[] = "/tmp/mailauth-locale-XXXXXX";

static int turkish(void)
{
    char cmd[256];

    if (mkdtemp(dir) == NULL)
        return 0;
    snprintf(cmd, sizeof(cmd), "localedef -i tr_TR -f UTF-8 %s/tr_TR.UTF-8 >/dev/null 2>&1", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "localedef -i tr_TR -f UTF-8 failed (package locales)\n");
    setenv("LOCPATH", dir, 1);
    return setlocale(LC_ALL, "tr_TR.UTF-8") != NULL;
}

static void cleanup(void)
{
    char cmd[256];

    setlocale(LC_ALL, "C");
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", dir);
}

static void test_names(void)
{
    char deny0[] = "admin", dom0[] = "italy.example";
    char *deny[] = {deny0};
    char *domains[] = {dom0};
    struct config_user_policy p = {.deny_users = deny, .n_deny_users = 1};
    struct config_server srv = {.domains = domains, .n_domains = 1};
    struct imap_caps caps = {0};
    size_t len = 0;
    char out[POLICY_MAX_USER + 1];

    /* the premise: in this locale 'I' is not the capital of 'i' (what glibc's strcasecmp goes by;
     * the sanitizers' own strcasecmp, which replaces it under ASan, ignores the locale) */
    CHECK(tolower('I') != 'i');
    CHECK(policy_map_user(&p, S("ADMIN"), out, sizeof(out), NULL) == POLICY_EDENIED);
    CHECK(policy_server_serves(&srv, "bob@ITALY.example"));
    CHECK(sasl_mech_by_name(S("plain")) != NULL && sasl_mech_by_name(S("LOGIN")) != NULL);
    imap_caps_parse(S("imap4rev1 auth=plain auth=scram-sha-256-plus"), &caps);
    CHECK((caps.sasl_mechs & (1u << SASL_MECH_PLAIN)) != 0 && caps.sasl_plus);
    CHECK(imap_capability_list(S("capability IMAP4rev1"), &len) != NULL && len == 9);
}

int main(void)
{
    int ok = turkish();

    CHECK(ok);
    if (ok)
        test_names();
    cleanup();
    return check_summary("locale");
}
