/* client_addr_from_rhost: only numeric addresses, written back canonical. */
#include "check.h"
#include "client_addr.h"

static void expect(const char *rhost, const char *want)
{
    char out[CLIENT_ADDR_MAX];
    bool ok = client_addr_from_rhost(rhost, out);

    if (want == NULL) {
        CHECK(!ok && out[0] == '\0');
        if (ok)
            fprintf(stderr, "  accepted \"%s\" as \"%s\"\n", rhost, out);
        return;
    }
    CHECK(ok);
    CHECK_STR(out, want);
}

int main(void)
{
    expect("192.0.2.10", "192.0.2.10");
    expect("2001:DB8:0:0:0:0:0:7", "2001:db8::7");
    expect("::1", "::1");
    expect("::ffff:192.0.2.1", "::ffff:192.0.2.1");
    expect("0.0.0.0", "0.0.0.0");
    expect(NULL, NULL);
    expect("", NULL);
    expect("mail.example.org", NULL);
    expect("localhost", NULL);
    expect("fe80::1%eth0", NULL);
    expect("[2001:db8::7]", NULL);
    expect("192.0.2.10:22", NULL);
    expect(" 192.0.2.10", NULL);
    expect("192.0.2.10 ", NULL);
    expect("192.0.2.010", NULL); /* inet_pton refuses leading zeros: no octal surprises */
    expect("1.2.3", NULL);
    expect("192.0.2.10\" \"x", NULL);
    expect("192.0.2.10\r\nA1 LOGOUT", NULL);
    expect("2001:db8:0000:0000:0000:0000:0000:0000:0007", NULL); /* too long for any form */
    return check_summary("client_addr");
}
