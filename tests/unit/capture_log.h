/* A logger for unit tests that appends every formatted line to one buffer, so a test can check
 * what the code under test would have written to syslog. Thread-safe: the cache tests log from
 * several threads at once. */
#ifndef MAILAUTH_CAPTURE_LOG_H
#define MAILAUTH_CAPTURE_LOG_H

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static char logged[8192];
static pthread_mutex_t logged_lock = PTHREAD_MUTEX_INITIALIZER;

MA_PRINTF(3, 0)
static void capture(void *ctx, int priority, const char *fmt, va_list ap)
{
    size_t used;

    (void)ctx;
    (void)priority;
    pthread_mutex_lock(&logged_lock);
    used = strlen(logged);
    vsnprintf(logged + used, sizeof(logged) - used, fmt, ap);
    used = strlen(logged);
    if (used + 1 < sizeof(logged))
        strcat(logged, "\n");
    pthread_mutex_unlock(&logged_lock);
}

__attribute__((unused)) static const struct logger test_log = {.sink = capture};
__attribute__((unused)) static const struct logger debug_log = {.sink = capture, .debug = true};

#endif
