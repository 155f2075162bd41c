/* POP3 reply classification, APOP timestamp extraction and CAPA lines. A timestamp that is
 * accepted must really be "<...@...>" in printable ASCII. */
#include <stdint.h>

#include "fuzz.h"
#include <stdlib.h>
#include <string.h>

#include "pop3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    char ts[POP3_APOP_TIMESTAMP_MAX + 1];
    struct pop3_caps caps = {0};
    enum pop3_reply kind = pop3_reply_classify(p, size);

    if (kind == POP3_REPLY_OK && (size < 3 || memcmp(p, "+OK", 3) != 0))
        abort();
    (void)pop3_err_is_unavailable(p, size);
    if (pop3_apop_timestamp(p, size, ts, sizeof(ts))) {
        size_t n = strlen(ts);
        int ats = 0;
        if (n < 5 || ts[0] != '<' || ts[n - 1] != '>')
            abort();
        for (size_t i = 1; i + 1 < n; i++) {
            if ((unsigned char)ts[i] < 0x21 || (unsigned char)ts[i] > 0x7e)
                abort();
            ats += ts[i] == '@';
        }
        if (ats != 1)
            abort();
    }
    pop3_capa_line(p, size, &caps);
    return 0;
}
