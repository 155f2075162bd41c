/* The config text before libconfuse sees it: comments blanked so its line numbers stay true,
 * unclosed sections and environment references found. */
#include "config.h"

#include <string.h>

static bool starts_token(const char *buf, size_t i)
{
    return i == 0 || strchr(" \t\r\n={},", buf[i - 1]) != NULL;
}

/* libconfuse 3.3 miscounts lines after comments ('#' and '//' lines count three times, block
 * comments one extra), which would make every file:line we report point past the real line.
 * Overwrite comments with spaces, keeping newlines (the lexer then sees the same tokens), so its
 * line counter stays true. Quoted strings are tracked so that a '#' inside a value is kept;
 * '#' outside quotes is always a comment to libconfuse, '//' only where a token starts.
 * libconfuse also accepts a section left open at the end of the file; return the line of the
 * first '{' never closed (0 when all are closed) so that a truncated file is refused. */
int config_blank_comments(char *buf, size_t len)
{
    enum { NORMAL, DQUOTE, SQUOTE, BLOCK, LINE } st = NORMAL;
    int line = 1;
    int depth = 0;
    int open_line = 0;

    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (c == '\n')
            line++;
        switch (st) {
        case NORMAL:
            if (c == '"')
                st = DQUOTE;
            else if (c == '\'')
                st = SQUOTE;
            else if (c == '{' && depth++ == 0)
                open_line = line;
            else if (c == '}' && depth > 0)
                depth--;
            else if (c == '/' && i + 1 < len && buf[i + 1] == '*')
                st = BLOCK, buf[i] = ' ', buf[++i] = ' ';
            else if (c == '#' ||
                     (c == '/' && i + 1 < len && buf[i + 1] == '/' && starts_token(buf, i)))
                st = LINE, buf[i] = ' ';
            break;
        case DQUOTE:
        case SQUOTE:
            if (c == '\\' && i + 1 < len && buf[i + 1] != '\n')
                i++;
            else if (c == (st == DQUOTE ? '"' : '\''))
                st = NORMAL;
            break;
        case BLOCK:
            if (c == '*' && i + 1 < len && buf[i + 1] == '/')
                st = NORMAL, buf[i] = ' ', buf[++i] = ' ';
            else if (c != '\n')
                buf[i] = ' ';
            break;
        case LINE:
            if (c == '\n')
                st = NORMAL;
            else
                buf[i] = ' ';
            break;
        }
    }
    return depth > 0 ? open_line : 0;
}

/* libconfuse replaces ${NAME} (and ${NAME:-default}) with the process environment, in unquoted
 * and double-quoted values alike. The module runs inside setuid programs (su, sudo, passwd)
 * whose caller sets that environment, so a config using it would let the caller choose the
 * server, its port or its CA. No value needs "${": refuse it everywhere outside comments (run
 * after config_blank_comments), escaped or single-quoted too, so the rule is simple to state. */
int config_find_env_reference(const char *buf, size_t len)
{
    int line = 1;

    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] == '\n')
            line++;
        else if (buf[i] == '$' && buf[i + 1] == '{')
            return line;
    }
    return 0;
}
