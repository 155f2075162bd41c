/* Parsing a config text in a unit test, and expecting it to be refused with a given message
 * (e.g. "t.conf:3: ..."): shared by the config and strictness tests. */
#ifndef MAILAUTH_CONFIG_EXPECT_H
#define MAILAUTH_CONFIG_EXPECT_H

#include <stdio.h>
#include <string.h>

#include "capture_log.h"
#include "check.h"
#include "config.h"

static enum config_result parse(const char *text, struct mailauth_config **out)
{
    logged[0] = '\0';
    *out = NULL;
    return config_parse_buffer(text, strlen(text), "t.conf", &test_log, out);
}

/* Parse text, expect CONFIG_EINVAL and the log to contain want. */
static void expect_invalid(const char *text, const char *want, const char *file, int line)
{
    struct mailauth_config *cfg = NULL;
    enum config_result r = parse(text, &cfg);

    if (r != CONFIG_EINVAL || cfg != NULL || strstr(logged, want) == NULL) {
        checks_failed++;
        fprintf(stderr, "%s:%d: expected invalid with \"%s\", got %d, log: %s\n", file, line, want,
                (int)r, logged);
    } else {
        checks_passed++;
    }
    config_free(cfg);
}
#define EXPECT_INVALID(text, want) expect_invalid(text, want, __FILE__, __LINE__)

#endif
