/* Logging without PAM: the core calls a sink that the caller provides (the PAM glue routes it to
 * pam_vsyslog, tests capture it). Priorities are syslog's LOG_* values. */
#ifndef MAILAUTH_LOG_H
#define MAILAUTH_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

#include "util.h"

typedef void (*log_sink_fn)(void *ctx, int priority, const char *fmt, va_list ap);

struct logger {
    log_sink_fn sink; /* NULL: drop everything */
    void *ctx;
    bool debug; /* emit LOG_DEBUG protocol traces */
};

void log_msg(const struct logger *lg, int priority, const char *fmt, ...) MA_PRINTF(3, 4);
/* Only when lg->debug is set. */
void log_debug(const struct logger *lg, const char *fmt, ...) MA_PRINTF(2, 3);

#endif
