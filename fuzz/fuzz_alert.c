/* alert_clean (server text shown to the user) and log_field (values of the result line), with
 * properties that must hold whatever the bytes:
 * - an alert comes out as valid UTF-8 with no C0/C1 control, DEL or ESC, shorter than ALERT_MAX,
 *   and never holding the password;
 * - a log field is one token: bare (no space, quote, backslash) or one quoted string that ends
 *   at its last byte, with no byte outside printable ASCII.
 * Input: one length byte n, then n bytes of password (none when 0), then the text. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "fuzz.h"
#include "log_field.h"

static bool printable_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; p[i] != '\0'; i++) {
        size_t n = p[i] < 0x80 ? 1 : p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : p[i] >= 0xc2 ? 2 : 0;
        if (n == 0 || p[i] < 0x20 || p[i] == 0x7f)
            return false;
        if (n == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0)
            return false; /* C1 */
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
        }
        i += n - 1;
    }
    return true;
}

static bool one_field(const char *f)
{
    size_t n = strlen(f);

    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)f[i] < 0x20 || (unsigned char)f[i] >= 0x7f)
            return false;
    }
    if (f[0] != '"')
        return n > 0 && strpbrk(f, " \"\\") == NULL;
    for (size_t i = 1; i < n; i++) {
        if (f[i] == '\\')
            i++;
        else if (f[i] == '"')
            return i == n - 1;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct redact_set rs;
    struct login_creds c = {"alice", 5, NULL, 0, NULL};
    char out[ALERT_MAX];
    char field[LOG_FIELD_MAX];
    char *text;
    size_t pw_len;

    if (size < 1)
        return 0;
    pw_len = data[0];
    if (pw_len + 1 > size)
        return 0;
    c.password = (const char *)data + 1;
    c.password_len = pw_len;
    redact_init(&rs, pw_len > 0 ? &c : NULL);
    data += 1 + pw_len;
    size -= 1 + pw_len;
    alert_clean(&rs, out, sizeof(out), (const char *)data, size);
    if (!printable_utf8(out) || strlen(out) >= ALERT_MAX ||
        (pw_len > 0 && memmem(out, strlen(out), c.password, pw_len) != NULL))
        abort();
    redact_wipe(&rs);
    text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* log_field takes C strings: the part before a NUL */
    log_field(field, sizeof(field), text);
    if (!one_field(field))
        abort();
    free(text);
    return 0;
}
