/* One escaper and one stderr log sink for mailauth-probe, mailauth-cache and mailauth-accounts
 * (tool_output.h). */
#include "tool_output.h"

#include <string.h>

void tool_put_text(FILE *f, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\\')
            fputs("\\\\", f);
        else if (c >= 0x20 && c < 0x7f)
            fputc(c, f);
        else
            fprintf(f, "\\x%02x", c);
    }
}

void tool_put_str(FILE *f, const char *s)
{
    tool_put_text(f, s, strlen(s));
}

MA_PRINTF(3, 0)
static void stderr_sink(void *ctx, int priority, const char *fmt, va_list ap)
{
    const char *prog = ctx;
    char line[TOOL_LOG_LINE_MAX];
    int n = vsnprintf(line, sizeof(line), fmt, ap);

    if (n < 0)
        return;
    fputs(prog, stderr);
    fputs(priority == LOG_DEBUG ? ": debug: " : ": ", stderr);
    tool_put_str(stderr, line);
    fputc('\n', stderr);
}

struct logger tool_stderr_logger(const char *prog, bool debug)
{
    return (struct logger){.sink = stderr_sink, .ctx = (void *)prog, .debug = debug};
}
