/* Reading the config file safely (pam-u2f's open_safely): no symlink, a regular file, trusted
 * owner, not group/world writable, bounded size. Also the config's identity, which keys the
 * credential cache. Parsing is config.c's, above this file. */
#include "config_internal.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"

static_assert(CONFIG_IDENTITY_LEN == SHA256_HEX_LEN, "an identity is a SHA-256 in hex");

/* SHA-256 of a tag, the name and the exact contents, NUL-separated. The contents are in it so that
 * any edit (a server removed, a policy tightened) starts the cache afresh; the name is in it so
 * that two files never share entries even with equal contents. */
int config_identity(const char *name, const char *buf, size_t len,
                    char out[CONFIG_IDENTITY_LEN + 1])
{
    static const char tag[] = "pam_mailauth config identity v1";
    const struct digest_part parts[] = {
        {tag, sizeof(tag)},
        {name, strlen(name) + 1},
        {buf, len},
    };

    return sha256_hex(parts, sizeof(parts) / sizeof(parts[0]), out);
}

enum config_result config_read_file(const char *path, const struct logger *log, char **buf_out,
                                    size_t *len_out)
{
    enum config_result res = CONFIG_EIO;
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    char ebuf[128];
    /* O_NONBLOCK: a FIFO (or a device) at the path would otherwise block open() until a writer
     * came, before fstat() could refuse it; on a regular file it changes nothing. */
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0) {
        log_msg(log, LOG_ERR, "%s: cannot open: %s", path, errno_text(errno, ebuf, sizeof(ebuf)));
        return CONFIG_EIO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        log_msg(log, LOG_ERR, "%s: not a regular file", path);
        goto out;
    }
    /* Only a file that root, or the identity this process already runs as, could write may
     * steer it: a setuid caller runs with euid 0, so there only root's files count. */
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        log_msg(log, LOG_ERR,
                "%s: owned by uid %u; must be owned by root or by the effective user (uid %u)",
                path, (unsigned)st.st_uid, (unsigned)geteuid());
        goto out;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        log_msg(log, LOG_ERR, "%s: group or world writable; refusing to trust it", path);
        goto out;
    }
    if (st.st_size > CONFIG_MAX_BYTES) {
        log_msg(log, LOG_ERR, "%s: larger than %d bytes", path, CONFIG_MAX_BYTES);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        res = CONFIG_ENOMEM;
        goto out;
    }
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            log_msg(log, LOG_ERR, "%s: read failed", path);
            goto out;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    *buf_out = buf;
    *len_out = len;
    buf = NULL;
    res = CONFIG_OK;
out:
    free(buf);
    close(fd);
    return res;
}
