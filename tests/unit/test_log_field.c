/* log_field: one key=value field whatever the value holds; cut values keep their closing quote. */
#include <string.h>

#include "check.h"
#include "log_field.h"

static void expect(const char *value, const char *want)
{
    char out[LOG_FIELD_MAX];

    log_field(out, sizeof(out), value);
    CHECK_STR(out, want);
}

/* A quoted value ends at its first '"' not after a backslash, and that is the last byte. */
static void check_one_field(const char *out)
{
    size_t n = strlen(out);

    if (out[0] != '"') {
        CHECK(strpbrk(out, " \"\\=") == NULL || strcmp(out, "-") == 0);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        if (out[i] == '\\') {
            i++;
            continue;
        }
        if (out[i] == '"') {
            CHECK(i == n - 1);
            return;
        }
    }
    CHECK(!"no closing quote");
}

static void cuts(void)
{
    char big[1000];
    char out[LOG_FIELD_MAX];

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    log_field(out, sizeof(out), big);
    CHECK(strlen(out) == sizeof(out) - 1);
    CHECK(strcmp(out + strlen(out) - 4, "...\"") == 0);
    check_one_field(out);
    memset(big, '"', sizeof(big) - 1);
    log_field(out, sizeof(out), big);
    CHECK(strcmp(out + strlen(out) - 4, "...\"") == 0);
    check_one_field(out);
    for (size_t cap = 8; cap < 40; cap++) {
        char small[40];
        memset(small, 'x', sizeof(small));
        log_field(small, cap, "\x01\x02 \"\\abc\"\x7f");
        CHECK(strlen(small) < cap);
        check_one_field(small);
    }
}

int main(void)
{
    expect(NULL, "-");
    expect("", "\"\"");
    expect("alice", "alice");
    expect("198.51.100.7", "198.51.100.7");
    expect("2001:db8::7", "2001:db8::7");
    expect("alice@example.org", "alice@example.org");
    expect("1.2.3.4 rhost=5.6.7.8", "\"1.2.3.4 rhost=5.6.7.8\"");
    expect("rhost=5.6.7.8", "\"rhost=5.6.7.8\"");
    expect("a\"b", "\"a\\\"b\"");
    expect("a\\", "\"a\\\\\"");
    expect("x\ny", "\"x\\x0ay\"");
    expect("\x1b[2K", "\"\\x1b[2K\"");
    expect("gr\xc3\xbc\xc3\x9f", "\"gr\\xc3\\xbc\\xc3\\x9f\"");
    expect("-", "-");
    cuts();
    return check_summary("test_log_field");
}
