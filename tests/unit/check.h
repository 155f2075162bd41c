/* A minimal test harness: CHECK counts, reports the failing expression, never aborts early. */
#ifndef MAILAUTH_CHECK_H
#define MAILAUTH_CHECK_H

#include <stdio.h>
#include <string.h>

static int checks_passed;
static int checks_failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            checks_passed++;                                                                       \
        } else {                                                                                   \
            checks_failed++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_STR(got, want)                                                                       \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        if (g_ != NULL && strcmp(g_, w_) == 0) {                                                   \
            checks_passed++;                                                                       \
        } else {                                                                                   \
            checks_failed++;                                                                       \
            fprintf(stderr, "%s:%d: CHECK_STR failed: got \"%s\", want \"%s\"\n", __FILE__,        \
                    __LINE__, g_ != NULL ? g_ : "(null)", w_);                                     \
        }                                                                                          \
    } while (0)

static inline int check_summary(const char *suite)
{
    printf("%s: %d passed, %d failed\n", suite, checks_passed, checks_failed);
    return checks_failed == 0 && checks_passed > 0 ? 0 : 1;
}

#endif
