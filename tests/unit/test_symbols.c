/* The module must export exactly the PAM service functions and nothing of the core. */
#include <dlfcn.h>
#include <stdio.h>

#include "check.h"

int main(int argc, char **argv)
{
    static const char *const wanted[] = {"pam_sm_authenticate", "pam_sm_setcred",
                                         "pam_sm_acct_mgmt"};
    static const char *const hidden[] = {"mailauth_check", "config_parse_buffer", "imap_login",
                                         "pop3_login",     "tls_connect",         "net_connect",
                                         "stream_sendf",   "parse_lock"};
    void *h;

    if (argc != 2) {
        fprintf(stderr, "usage: %s MODULE.so\n", argv[0]);
        return 2;
    }
    h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CHECK(h != NULL);
    if (h == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return check_summary("symbols");
    }
    for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++)
        CHECK(dlsym(h, wanted[i]) != NULL);
    for (size_t i = 0; i < sizeof(hidden) / sizeof(hidden[0]); i++)
        CHECK(dlsym(h, hidden[i]) == NULL);
    dlclose(h);
    return check_summary("symbols");
}
