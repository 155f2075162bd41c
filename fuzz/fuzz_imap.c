/* IMAP reply parsing, capability parsing and quoting. Properties checked, not just crashes:
 * a parsed literal count stays within the limit, and a quoted string unquotes to its input. */
#include <stdint.h>

#include "fuzz.h"
#include <stdlib.h>
#include <string.h>

#include "imap.h"

static void check_quote(const char *s, size_t n)
{
    char out[2 * 256 + 3];
    char back[256];
    size_t q = imap_quote(s, n, out, sizeof(out));
    size_t b = 0;

    if (q == 0)
        return;
    if (out[0] != '"' || out[q - 1] != '"' || !imap_can_quote(s, n))
        abort();
    for (size_t i = 1; i + 1 < q; i++) {
        if (out[i] == '\\')
            i++;
        else if (out[i] == '"')
            abort(); /* an unescaped quote inside would end the string early */
        back[b++] = out[i];
    }
    if (b != n || memcmp(back, s, n) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    struct imap_reply r;
    struct imap_caps caps = {0};

    if (imap_parse_reply(p, size, "A1", &r)) {
        if (r.has_literal && r.literal_len > IMAP_MAX_LITERAL)
            abort();
        if (r.code != NULL && (r.code < p || r.code + r.code_len > p + size))
            abort();
        imap_caps_from_code(&r, &caps);
        (void)imap_no_is_unavailable(&r);
    }
    imap_parse_reply(p, size, "", &r);
    imap_caps_parse(p, size, &caps);
    if (size <= 256)
        check_quote(p, size);
    return 0;
}
