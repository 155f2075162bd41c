"""The system suite: the Debian package, real sshd, real Apache and pam_faillock, as root.

Shares the integration suite's harness (tests/lib: Dovecot and the test PKI; helpers.py: config
writers) but starts its own Dovecot, whose users include the local account the sshd test logs in
as. Everything it changes on the machine it puts back, and the session ends by checking that
/etc/pam.d, /var/lib/pam and the system's sshd/Apache are as it found them.
"""
import os
import shutil
import sys
import tempfile
import time

import pytest

from common import USERS, LOG_TEXTS, SYSTEM_PORTS, daemon_pids, listening_ports, need, \
    snapshot, snapshot_diff

import certs  # noqa: E402  (tests/lib, put on sys.path by common)
import dovecot  # noqa: E402
import hostview  # noqa: E402


def host_state():
    return {"files": snapshot("/etc/pam.d", "/var/lib/pam"),
            "ports": listening_ports() & set(SYSTEM_PORTS),
            "daemons": daemon_pids()}


@pytest.fixture(scope="session", autouse=True)
def machine_left_as_found():
    """Root is required (fail, not skip); at the end the machine must be as it was."""
    if os.geteuid() != 0:
        pytest.fail("the system suite needs root (package install, namespaces, sshd)")
    before = host_state()
    yield
    after = host_state()
    deadline = time.monotonic() + 10   # processes killed a moment ago may still be exiting
    while after["daemons"] - before["daemons"] and time.monotonic() < deadline:
        time.sleep(0.1)
        after = host_state()
    problems = []
    changed = snapshot_diff(before["files"], after["files"])
    if changed:
        problems.append("files changed: %s" % ", ".join(changed))
    if after["ports"] - before["ports"]:
        problems.append("now listening: %s" % sorted(after["ports"] - before["ports"]))
    if after["daemons"] - before["daemons"]:
        problems.append("daemons left running: %s" % sorted(after["daemons"] - before["daemons"]))
    if problems:
        pytest.fail("the machine is not as the suite found it: " + "; ".join(problems))


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="mailauth-sys-")
    os.chmod(d, 0o755)   # Apache's workers (www-data) read the module config in here
    yield d
    if os.environ.get("MAILAUTH_KEEP_TMP") is None:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def scratch(workdir, request):
    """A directory of the test's own under workdir, mode 0755, removed after the test (unlike
    tmp_path, which pytest keeps: sandboxes hold copies of /etc/shadow)."""
    d = tempfile.mkdtemp(prefix=request.node.name[:40] + "-", dir=workdir)
    os.chmod(d, 0o755)
    yield d
    if os.environ.get("MAILAUTH_KEEP_TMP") is None:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pki(workdir):
    return certs.make_pki(os.path.join(workdir, "pki"))


@pytest.fixture(scope="session")
def dv(workdir, pki):
    need("dovecot")
    d = dovecot.Dovecot(os.path.join(workdir, "dovecot"), USERS, pki["server_cert"],
                        pki["server_key"]).start()
    yield d
    d.stop()


@pytest.fixture(scope="session")
def module(workdir):
    """The module under test, copied where every uid can load it: the checkout's parents may be
    mode 0700, and some cases drop to another uid (hostview.shared_copy)."""
    path = os.environ.get("MAILAUTH_MODULE")
    if not path or not os.path.exists(path):
        pytest.fail("MAILAUTH_MODULE must name the built pam_mailauth.so (got %r)" % path)
    return hostview.shared_copy(os.path.abspath(path), os.path.join(workdir, "module"))


def pytest_sessionfinish(session, exitstatus):
    leaked = [secret for secret in USERS.values() if any(secret in t for t in LOG_TEXTS)]
    if leaked:
        sys.stderr.write("PASSWORD FOUND IN LOGS (%d of them)\n" % len(leaked))
        session.exitstatus = 1
    else:
        sys.stderr.write("password check: %d logs scanned, no password found\n" % len(LOG_TEXTS))
