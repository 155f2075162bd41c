#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define PORT_START_FILE "/proc/sys/net/ipv4/ip_unprivileged_port_start"
#define PORT_START_DEFAULT 1024u

enum policy_result policy_check_password(const char *password, size_t len, struct errbuf *err)
{
    if (password == NULL || len == 0) {
        errbuf_set(err, "empty password");
        return POLICY_EINVAL;
    }
    if (len > POLICY_MAX_PASSWORD) {
        errbuf_set(err, "password longer than %d bytes", POLICY_MAX_PASSWORD);
        return POLICY_EINVAL;
    }
    if (bytes_have_crlf_nul(password, len)) {
        errbuf_set(err, "password contains CR, LF or NUL");
        return POLICY_EINVAL;
    }
    return POLICY_OK;
}

static enum policy_result check_user_bytes(const char *user, size_t len, struct errbuf *err)
{
    if (user == NULL || len == 0) {
        errbuf_set(err, "empty user name");
        return POLICY_EINVAL;
    }
    if (len > POLICY_MAX_USER) {
        errbuf_set(err, "user name longer than %d bytes", POLICY_MAX_USER);
        return POLICY_EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)user[i];
        if (c < 0x20 || c == 0x7f) {
            errbuf_set(err, "user name contains a control character (CR, LF, NUL, ...)");
            return POLICY_EINVAL;
        }
    }
    return POLICY_OK;
}

const char *policy_user_domain(const char *mapped)
{
    const char *at = strrchr(mapped, '@');

    return at != NULL && at[1] != '\0' ? at + 1 : NULL;
}

static int in_list(char *const *list, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (ascii_word_is(s, len, list[i]))
            return 1;
    }
    return 0;
}

static enum policy_result check_lists(const struct config_user_policy *p, const char *mapped,
                                      struct errbuf *err)
{
    const char *at = strrchr(mapped, '@');
    size_t local_len = at != NULL ? (size_t)(at - mapped) : strlen(mapped);
    const char *domain = policy_user_domain(mapped);

    if (in_list(p->deny_users, p->n_deny_users, mapped, strlen(mapped)) ||
        in_list(p->deny_users, p->n_deny_users, mapped, local_len)) {
        errbuf_set(err, "user is listed in deny_users");
        return POLICY_EDENIED;
    }
    if (p->n_allowed_domains > 0 &&
        (domain == NULL ||
         !in_list(p->allowed_domains, p->n_allowed_domains, domain, strlen(domain)))) {
        errbuf_set(err, "user's domain is not in allowed_domains");
        return POLICY_EDENIED;
    }
    return POLICY_OK;
}

enum policy_result policy_map_user(const struct config_user_policy *p, const char *user, size_t len,
                                   char *out, size_t cap, struct errbuf *err)
{
    enum policy_result r = check_user_bytes(user, len, err);
    char *at;

    if (r != POLICY_OK)
        return r;
    if (cap < POLICY_MAX_USER + 1)
        return POLICY_EINVAL;
    memcpy(out, user, len);
    out[len] = '\0';
    if (p->lowercase) {
        for (size_t i = 0; i < len; i++) {
            if (out[i] >= 'A' && out[i] <= 'Z')
                out[i] = (char)(out[i] - 'A' + 'a');
        }
    }
    at = strrchr(out, '@');
    if (p->strip_domain && at != NULL)
        *at = '\0';
    if (p->append_domain != NULL && strchr(out, '@') == NULL) {
        /* Measured before writing: snprintf would cut the name to fit, and a cut name is
         * somebody else's. */
        size_t used = strlen(out);
        if (used + 1 + strlen(p->append_domain) > POLICY_MAX_USER) {
            errbuf_set(err, "user name longer than %d bytes after append_domain", POLICY_MAX_USER);
            return POLICY_EINVAL;
        }
        snprintf(out + used, cap - used, "@%s", p->append_domain);
    }
    if (out[0] == '\0' || out[0] == '@') {
        errbuf_set(err, "empty user name after mapping");
        return POLICY_EINVAL;
    }
    return check_lists(p, out, err);
}

int policy_server_serves(const struct config_server *srv, const char *mapped)
{
    const char *domain = policy_user_domain(mapped);

    if (srv->n_domains == 0)
        return 1;
    return domain != NULL && in_list(srv->domains, srv->n_domains, domain, strlen(domain));
}

unsigned policy_parse_port_start(const char *text, size_t len)
{
    unsigned v = 0;
    size_t i = 0;

    while (i < len && text[i] >= '0' && text[i] <= '9' && i < 6)
        v = v * 10 + (unsigned)(text[i++] - '0');
    if (i == 0 || v > 65536 || (i < len && !(text[i] == '\n' && i + 1 == len)))
        return 0;
    return v;
}

bool policy_loopback_port_privileged(unsigned port, unsigned *first_unprivileged)
{
    char buf[16];
    unsigned limit = PORT_START_DEFAULT;
    int fd = open(PORT_START_FILE, O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        ssize_t n;
        do
            n = read(fd, buf, sizeof(buf));
        while (n < 0 && errno == EINTR);
        limit = n > 0 ? policy_parse_port_start(buf, (size_t)n) : 0;
        close(fd);
    } else if (errno != ENOENT) {
        limit = 0; /* there, but unreadable: nothing is known to be privileged */
    }
    *first_unprivileged = limit;
    return port > 0 && port < limit;
}
