#include "log.h"

void log_msg(const struct logger *lg, int priority, const char *fmt, ...)
{
    va_list ap;

    if (lg == NULL || lg->sink == NULL)
        return;
    va_start(ap, fmt);
    lg->sink(lg->ctx, priority, fmt, ap);
    va_end(ap);
}

void log_debug(const struct logger *lg, const char *fmt, ...)
{
    va_list ap;

    if (lg == NULL || lg->sink == NULL || !lg->debug)
        return;
    va_start(ap, fmt);
    lg->sink(lg->ctx, LOG_DEBUG, fmt, ap);
    va_end(ap);
}
