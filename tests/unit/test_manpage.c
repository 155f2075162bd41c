/* The manual must document what the code does: every option the config parser knows appears in
 * pam_mailauth.conf(5), the defaults the parser applies are the ones the page states, and every
 * module argument appears in pam_mailauth(8).
 * usage: test_manpage pam_mailauth.conf.5 pam_mailauth.8 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
        perror(path);
        exit(2);
    }
    buf = calloc(1, (size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
        exit(2);
    fclose(f);
    return buf;
}

static int is_word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The line of page where word stands as a whole word, or NULL. */
static const char *find_word(const char *page, const char *word)
{
    size_t n = strlen(word);

    for (const char *p = strstr(page, word); p != NULL; p = strstr(p + 1, word)) {
        if ((p == page || !is_word_char(p[-1])) && !is_word_char(p[n])) {
            while (p > page && p[-1] != '\n')
                p--;
            return p;
        }
    }
    return NULL;
}

/* A line naming the option that also says "(default VALUE". */
static int states_default(const char *page, const char *option, const char *value)
{
    char want[64];
    size_t n = strlen(option);

    snprintf(want, sizeof(want), "(default %s", value);
    for (const char *p = strstr(page, option); p != NULL; p = strstr(p + 1, option)) {
        const char *eol = strchr(p, '\n');
        const char *bol = p;
        if ((p != page && is_word_char(p[-1])) || is_word_char(p[n]))
            continue;
        while (bol > page && bol[-1] != '\n')
            bol--;
        char line[512];
        size_t len = (size_t)((eol != NULL ? eol : p + strlen(p)) - bol);
        if (len >= sizeof(line))
            len = sizeof(line) - 1;
        memcpy(line, bol, len);
        line[len] = '\0';
        if (strstr(line, want) != NULL)
            return 1;
    }
    fprintf(stderr, "page does not say \"%s\" next to %s\n", want, option);
    return 0;
}

/* The cache section's defaults apply only when the section is there. */
static void check_cache_defaults(const char *page)
{
    struct mailauth_config *cfg = NULL;
    const char *text = "server s { protocol = pop3\n host = h }\ncache {\n}\n";
    char buf[80];

    CHECK(config_parse_buffer(text, strlen(text), "t", NULL, &cfg) == CONFIG_OK);
    if (cfg == NULL)
        return;
    snprintf(buf, sizeof(buf), "%s)", cfg->cache.dir);
    CHECK(states_default(page, "dir", buf));
    snprintf(buf, sizeof(buf), "%ld)", cfg->cache.ttl_s);
    CHECK(states_default(page, "ttl", buf));
    snprintf(buf, sizeof(buf), "%ld)", cfg->cache.offline_grace_s);
    CHECK(states_default(page, "offline_grace", buf));
    snprintf(buf, sizeof(buf), "%u)", cfg->cache.hash_cost);
    CHECK(states_default(page, "hash_cost", buf));
    snprintf(buf, sizeof(buf), "%u)", cfg->cache.max_failures);
    CHECK(states_default(page, "max_failures", buf));
    config_free(cfg);
}

static void check_defaults(const char *page)
{
    struct mailauth_config *cfg = NULL;
    const char *text = "server s { protocol = pop3\n host = h }\n";
    char buf[32];

    CHECK(config_parse_buffer(text, strlen(text), "t", NULL, &cfg) == CONFIG_OK);
    if (cfg == NULL)
        return;
    snprintf(buf, sizeof(buf), "%d)", cfg->timeout_ms / 1000);
    CHECK(states_default(page, "timeout", buf));
    snprintf(buf, sizeof(buf), "%d)", cfg->connect_timeout_ms / 1000);
    CHECK(states_default(page, "connect_timeout", buf));
    snprintf(buf, sizeof(buf), "%d)", cfg->fail_delay_ms);
    CHECK(states_default(page, "fail_delay", buf));
    CHECK(states_default(page, "on_reject", cfg->on_reject == ON_REJECT_NEXT ? "next)" : "stop)"));
    CHECK(states_default(page, "verify", cfg->servers[0].verify ? "true)" : "false)"));
    CHECK(states_default(page, "allow_cleartext",
                         cfg->servers[0].allow_cleartext ? "true)" : "false)"));
    CHECK(cfg->servers[0].apop == APOP_AUTO && states_default(page, "apop", "auto"));
    CHECK(states_default(page, "lowercase", cfg->user.lowercase ? "true)" : "false)"));
    CHECK(states_default(page, "strip_domain", cfg->user.strip_domain ? "true)" : "false)"));
    CHECK(cfg->user.n_deny_users == 1 && strcmp(cfg->user.deny_users[0], "root") == 0 &&
          states_default(page, "deny_users", "{\\(dqroot\\(dq})"));
    CHECK(cfg->servers[0].endpoints[0].port == 995 &&
          cfg->servers[0].endpoints[0].tls == TLS_MODE_IMPLICIT);
    CHECK(strstr(page, "995 for pop3 with implicit TLS") != NULL);
    config_free(cfg);
    check_cache_defaults(page);
}

int main(int argc, char **argv)
{
    static const char *const module_args[] = {"config",         "debug",          "quiet",
                                              "use_first_pass", "try_first_pass", "use_authtok"};
    char *conf_page, *module_page;

    if (argc != 3) {
        fprintf(stderr, "usage: %s pam_mailauth.conf.5 pam_mailauth.8\n", argv[0]);
        return 2;
    }
    conf_page = slurp(argv[1]);
    module_page = slurp(argv[2]);
    for (const char *const *o = config_option_names(); *o != NULL; o++) {
        if (find_word(conf_page, *o) == NULL) {
            checks_failed++;
            fprintf(stderr, "option \"%s\" is not documented in %s\n", *o, argv[1]);
        } else {
            checks_passed++;
        }
    }
    for (size_t i = 0; i < sizeof(module_args) / sizeof(module_args[0]); i++)
        CHECK(find_word(module_page, module_args[i]) != NULL);
    check_defaults(conf_page);
    free(conf_page);
    free(module_page);
    return check_summary("manpage");
}
