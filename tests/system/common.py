"""Helpers shared by the system suite's fixtures and tests.

The suite uses the integration suite's harness (tests/lib: Dovecot and the test PKI; helpers.py:
config writers), so both directories go on sys.path here.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from manpage import man_examples  # noqa: E402,F401  (tests/lib; the tests import it from here)

SSH_USER = "mailauth-ssh"   # a local account (only inside the test's sandbox) and a mail user
USERS = {
    "alice": "s3cret",
    SSH_USER: "ssh Pa55 w\u00f6rd",
    # quotes, backslashes, spaces and non-ASCII, through HTTP Basic auth
    "webuser": 'q"u\\o\\"te d \u00fcml\u00e4ut \u20ac',
}
# Mail users with no local account anywhere: test_sshd_accounts.py registers them.
MAIL_ONLY = {"mu%d" % i: "mail-only Pa55 %d" % i for i in range(12)}
USERS.update(MAIL_ONLY)

# Log text of every daemon and pamtester run, for the "password never logged" check.
LOG_TEXTS = []

# The system's own daemons this suite must never leave running or bound.
SYSTEM_DAEMONS = ("sshd", "apache2", "httpd")
SYSTEM_PORTS = (22, 80, 443)


def need(*tools):
    """Fail loudly (never skip) when a tool the suite needs is missing."""
    missing = [t for t in tools if shutil.which(t) is None and not os.path.exists(t)]
    if missing:
        pytest.fail("missing tools: %s (scripts/test.sh installs them)" % " ".join(missing))


def run(argv, timeout=120, **kwargs):
    """subprocess.run with text output captured, stdin closed and a deadline."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.STDOUT)
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(argv, timeout=timeout, text=True, errors="replace", **kwargs)


def snapshot(*paths):
    """{path: sha256} of every file under paths, symlinks by their target."""
    state = {}
    for top in paths:
        for root, dirs, files in os.walk(top):
            for name in dirs + files:
                p = os.path.join(root, name)
                if os.path.islink(p):
                    state[p] = "-> " + os.readlink(p)
                elif os.path.isfile(p):
                    with open(p, "rb") as f:
                        state[p] = hashlib.sha256(f.read()).hexdigest()
    return state


def snapshot_diff(before, after):
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def listening_ports():
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A":   # LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def daemon_pids():
    """pids of live (not zombie) processes named like a system daemon."""
    pids = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/stat" % pid) as f:
                    stat = f.read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            state = stat[stat.rindex(")") + 2:].split()[0]
            if name in SYSTEM_DAEMONS and state != "Z":
                pids.add(int(pid))
    return pids


def write_root_file(path, text, mode=0o644):
    """Replace a file atomically (the module re-reads its config on every login)."""
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return path


def logins(dv, user, offset=0):
    """How many successful logins Dovecot logged for user since offset."""
    return len(re.findall(r"Login: user=<%s>" % re.escape(user), dv.log_since(offset)))


