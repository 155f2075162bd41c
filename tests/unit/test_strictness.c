/* Input the code would otherwise expand, round or cut is refused instead, with a clear error:
 * "${...}" in the config (libconfuse takes it from the caller's environment), timeouts that are
 * no whole number of milliseconds, a user name that append_domain would make too long. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "config.h"
#include "config_expect.h"
#include "policy.h"

static void test_environment_references(void)
{
    struct mailauth_config *cfg = NULL;

    /* Set, so that an expansion would succeed and produce a valid host if it were allowed. */
    setenv("MAILAUTH_TEST_HOST", "evil.example", 1);
    EXPECT_INVALID("server a {\n protocol = imap\n host = ${MAILAUTH_TEST_HOST}\n}\n",
                   "t.conf:3: \"${\" is not allowed");
    EXPECT_INVALID(
        "# a comment\nserver a {\n protocol = imap\n host = \"${MAILAUTH_TEST_HOST}\"\n}\n",
        "t.conf:4: \"${\" is not allowed");
    EXPECT_INVALID("server a {\n protocol = imap\n host = \"h\"\n"
                   " ca_file = \"${MAILAUTH_TEST_HOST:-/etc/ssl/certs/ca-certificates.crt}\"\n}\n",
                   "t.conf:4: \"${\" is not allowed");
    EXPECT_INVALID("timeout = ${T}\nserver a { protocol = imap\n host = h }\n",
                   "t.conf:1: \"${\" is not allowed");
    EXPECT_INVALID("server a {\n protocol = imap\n host = 'x${Y}'\n}\n",
                   "t.conf:3: \"${\" is not allowed");
    /* In a comment it is only text; a lone '$' is not a reference. */
    CHECK(parse("# host = ${MAILAUTH_TEST_HOST}\n/* ${X} */\nserver a { protocol = imap\n"
                " host = h }\n",
                &cfg) == CONFIG_OK);
    if (cfg != NULL)
        CHECK_STR(cfg->servers[0].endpoints[0].host, "h");
    config_free(cfg);
    CHECK(config_find_env_reference("a\nb\n$x ${", 9) == 3);
    CHECK(config_find_env_reference("a $ {b}", 7) == 0);
    unsetenv("MAILAUTH_TEST_HOST");
}

static void test_timeouts_in_whole_milliseconds(void)
{
    struct mailauth_config *cfg = NULL;

    EXPECT_INVALID("timeout = 0.0001\nserver a { protocol = imap\n host = h }\n",
                   "t.conf:1: timeout = 0.0001 is not a whole number of milliseconds");
    EXPECT_INVALID("\nconnect_timeout = 0.0009\nserver a { protocol = imap\n host = h }\n",
                   "t.conf:2: connect_timeout = 0.0009 is not a whole number");
    EXPECT_INVALID("timeout = 1.0005\nserver a { protocol = imap\n host = h }\n",
                   "timeout = 1.0005 is not a whole number of milliseconds");
    CHECK(parse("timeout = 0.001\nconnect_timeout = 2.5\nserver a { protocol = imap\n"
                " host = h }\n",
                &cfg) == CONFIG_OK);
    if (cfg != NULL)
        CHECK(cfg->timeout_ms == 1 && cfg->connect_timeout_ms == 2500);
    config_free(cfg);
    CHECK(parse("timeout = 0.1\nconnect_timeout = 600\nserver a { protocol = imap\n host = h }\n",
                &cfg) == CONFIG_OK);
    if (cfg != NULL)
        CHECK(cfg->timeout_ms == 100 && cfg->connect_timeout_ms == 600000);
    config_free(cfg);
}

/* append_domain must refuse a name it would make too long: snprintf used to cut it to 255
 * bytes, and a cut name is another user's. */
static void test_append_domain_never_cuts(void)
{
    char dom[] = "example.org";
    struct config_user_policy p = {.append_domain = dom};
    char out[POLICY_MAX_USER + 1];
    char user[POLICY_MAX_USER + 1];
    struct errbuf err = {{0}};
    size_t fits = POLICY_MAX_USER - 1 - strlen(dom);

    memset(user, 'u', sizeof(user));
    CHECK(policy_map_user(&p, user, fits, out, sizeof(out), &err) == POLICY_OK);
    CHECK(strlen(out) == POLICY_MAX_USER && strcmp(out + fits, "@example.org") == 0);
    CHECK(policy_map_user(&p, user, fits + 1, out, sizeof(out), &err) == POLICY_EINVAL);
    CHECK(strstr(err.text, "longer than 255 bytes after append_domain") != NULL);
    CHECK(policy_map_user(&p, user, POLICY_MAX_USER, out, sizeof(out), &err) == POLICY_EINVAL);
}

int main(void)
{
    test_environment_references();
    test_timeouts_in_whole_milliseconds();
    test_append_domain_never_cuts();
    return check_summary("strictness");
}
