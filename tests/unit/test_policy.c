/* Credential checks, user-name mapping rules in their documented order, routing by domain. */
#include <string.h>

#include "check.h"
#include "policy.h"

#define S(x) x, strlen(x)

static void test_password(void)
{
    char big[POLICY_MAX_PASSWORD + 2];

    CHECK(policy_check_password(S("s3cret"), NULL) == POLICY_OK);
    CHECK(policy_check_password(S(""), NULL) == POLICY_EINVAL);
    CHECK(policy_check_password(S("a\rb"), NULL) == POLICY_EINVAL);
    CHECK(policy_check_password(S("a\nb"), NULL) == POLICY_EINVAL);
    CHECK(policy_check_password("a\0b", 3, NULL) == POLICY_EINVAL);
    memset(big, 'x', sizeof(big));
    CHECK(policy_check_password(big, POLICY_MAX_PASSWORD, NULL) == POLICY_OK);
    CHECK(policy_check_password(big, POLICY_MAX_PASSWORD + 1, NULL) == POLICY_EINVAL);
}

static void test_map(void)
{
    char deny0[] = "root", deny1[] = "admin@corp.example";
    char *deny[] = {deny0, deny1};
    char dom0[] = "example.org";
    char *domains[] = {dom0};
    struct config_user_policy p = {.deny_users = deny, .n_deny_users = 2};
    char out[POLICY_MAX_USER + 1];
    char big[POLICY_MAX_USER + 2];

    CHECK(policy_map_user(&p, S("Alice"), out, sizeof(out), NULL) == POLICY_OK);
    CHECK_STR(out, "Alice");
    CHECK(policy_map_user(&p, S(""), out, sizeof(out), NULL) == POLICY_EINVAL);
    CHECK(policy_map_user(&p, S("a\nb"), out, sizeof(out), NULL) == POLICY_EINVAL);
    CHECK(policy_map_user(&p, S("a\tb"), out, sizeof(out), NULL) == POLICY_EINVAL);
    memset(big, 'u', sizeof(big));
    CHECK(policy_map_user(&p, big, POLICY_MAX_USER, out, sizeof(out), NULL) == POLICY_OK);
    CHECK(policy_map_user(&p, big, POLICY_MAX_USER + 1, out, sizeof(out), NULL) == POLICY_EINVAL);

    CHECK(policy_map_user(&p, S("root"), out, sizeof(out), NULL) == POLICY_EDENIED);
    CHECK(policy_map_user(&p, S("ROOT"), out, sizeof(out), NULL) == POLICY_EDENIED);
    CHECK(policy_map_user(&p, S("root@example.org"), out, sizeof(out), NULL) == POLICY_EDENIED);
    CHECK(policy_map_user(&p, S("admin@corp.example"), out, sizeof(out), NULL) == POLICY_EDENIED);
    CHECK(policy_map_user(&p, S("admin@other.example"), out, sizeof(out), NULL) == POLICY_OK);

    p.lowercase = true;
    p.append_domain = dom0;
    CHECK(policy_map_user(&p, S("Alice"), out, sizeof(out), NULL) == POLICY_OK);
    CHECK_STR(out, "alice@example.org");
    CHECK(policy_map_user(&p, S("Bob@Other.Net"), out, sizeof(out), NULL) == POLICY_OK);
    CHECK_STR(out, "bob@other.net");

    p.append_domain = NULL;
    p.strip_domain = true;
    CHECK(policy_map_user(&p, S("Carol@Example.org"), out, sizeof(out), NULL) == POLICY_OK);
    CHECK_STR(out, "carol");
    CHECK(policy_map_user(&p, S("@example.org"), out, sizeof(out), NULL) == POLICY_EINVAL);

    p.strip_domain = false;
    p.allowed_domains = domains;
    p.n_allowed_domains = 1;
    CHECK(policy_map_user(&p, S("dave@EXAMPLE.org"), out, sizeof(out), NULL) == POLICY_OK);
    CHECK(policy_map_user(&p, S("dave@gmail.com"), out, sizeof(out), NULL) == POLICY_EDENIED);
    CHECK(policy_map_user(&p, S("dave"), out, sizeof(out), NULL) == POLICY_EDENIED);
    CHECK(policy_map_user(&p, S("dave@evil.org@example.org"), out, sizeof(out), NULL) ==
          POLICY_OK); /* the domain is what follows the last '@' */
}

static void test_routing(void)
{
    char d0[] = "example.org";
    char *domains[] = {d0};
    struct config_server any = {0};
    struct config_server routed = {.domains = domains, .n_domains = 1};

    CHECK(policy_server_serves(&any, "alice"));
    CHECK(policy_server_serves(&any, "alice@x.net"));
    CHECK(policy_server_serves(&routed, "alice@Example.Org"));
    CHECK(!policy_server_serves(&routed, "alice@x.net"));
    CHECK(!policy_server_serves(&routed, "alice"));
    CHECK(!policy_server_serves(&routed, "alice@sub.example.org"));
}

/* The loopback exemption's limit (issue 17): the sysctl's text, strictly; anything odd is 0, so
 * no port counts as privileged. */
static void test_port_start(void)
{
    unsigned limit = 7;

    CHECK(policy_parse_port_start("1024\n", 5) == 1024);
    CHECK(policy_parse_port_start("0\n", 2) == 0);
    CHECK(policy_parse_port_start("80", 2) == 80);
    CHECK(policy_parse_port_start("65536\n", 6) == 65536);
    CHECK(policy_parse_port_start("65537\n", 6) == 0);
    CHECK(policy_parse_port_start("", 0) == 0);
    CHECK(policy_parse_port_start("1024 \n", 6) == 0);
    CHECK(policy_parse_port_start("-1\n", 3) == 0);
    CHECK(policy_parse_port_start("1024\n\n", 6) == 0);
    CHECK(policy_parse_port_start("9999999\n", 8) == 0);
    /* The live value: port 0 (no peer) is never privileged; the limit itself is not. */
    CHECK(!policy_loopback_port_privileged(0, &limit));
    CHECK(!policy_loopback_port_privileged(limit, &limit));
    CHECK(limit > 0 ? policy_loopback_port_privileged(limit - 1, &limit) : true);
}

int main(void)
{
    test_port_start();
    test_password();
    test_map();
    test_routing();
    return check_summary("policy");
}
