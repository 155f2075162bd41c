/* The tools' output of untrusted text (server greetings and replies, registry and cache names,
 * paths and names from the command line): one escaper and one stderr log sink, so that no tool
 * can draw on an administrator's terminal. Tool-only code (tools_lib), never in the module. */
#ifndef MAILAUTH_TOOL_OUTPUT_H
#define MAILAUTH_TOOL_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "log.h"

/* Write s[0, len) to f: printable ASCII as it is, '\' as "\\", every other byte (control bytes,
 * ESC, DEL, bytes beyond ASCII) as "\xHH". */
void tool_put_text(FILE *f, const char *s, size_t len);
/* The same for a NUL-terminated string. */
void tool_put_str(FILE *f, const char *s);

/* A logger whose lines go to stderr as "PROG: text" ("PROG: debug: text" at LOG_DEBUG), the text
 * escaped with tool_put_text and cut at TOOL_LOG_LINE_MAX bytes. prog must outlive it. */
#define TOOL_LOG_LINE_MAX 2048
struct logger tool_stderr_logger(const char *prog, bool debug);

#endif
