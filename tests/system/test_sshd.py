"""OpenSSH's sshd with UsePAM, logging a local account in with its mail password.

sshd runs on a loopback high port with its own config and host key, in a sandbox (sandbox.py)
whose /etc/pam.d/sshd is the man page's example and whose passwd/shadow have the test account
with a locked password: the host's sshd config, PAM files and accounts are never touched, and the
system's sshd is neither started nor needed. The client is OpenSSH's ssh driven by sshpass.
"""
import os
import subprocess

import pytest

from common import LOG_TEXTS, SSH_USER, USERS, logins, man_examples, need, run, write_root_file
from dovecot import free_port, wait_port
from helpers import closed_port, config, hosts, scaled, server
import sandbox
from sandbox import Sandbox, free_uid

METHODS = {"keyboard-interactive": "keyboard-interactive/pam", "password": "password"}
UNAVAILABLE = "The mail server is unavailable; please try again later."


class Sshd:
    def __init__(self, workdir, module):
        self.dir = os.path.join(workdir, "sshd")
        os.makedirs(self.dir, exist_ok=True)
        self.mail_conf = os.path.join(self.dir, "mail.conf")
        self.log = os.path.join(self.dir, "sshd.log")
        self.port = free_port()
        self.uid = free_uid()
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home, exist_ok=True)
        os.chown(self.home, self.uid, self.uid)
        self.sandbox = Sandbox(os.path.join(self.dir, "view"))
        self.sandbox.account(SSH_USER, self.uid, self.home)
        self.sandbox.with_private_run()
        pam_auth, sshd_settings = man_examples("sshd")
        self.sandbox.pam_service("sshd", pam_auth.replace(
            "pam_mailauth.so", "%s config=%s" % (module, self.mail_conf)) +
            "account required pam_unix.so\nsession required pam_unix.so\n")
        key = os.path.join(self.dir, "host_ed25519")
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        with open(key + ".pub") as f:
            public = " ".join(f.read().split()[:2])
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        with open(self.known_hosts, "w") as f:
            f.write("[127.0.0.1]:%d %s\n" % (self.port, public))
        self.config = os.path.join(self.dir, "sshd_config")
        with open(self.config, "w") as f:
            f.write(sshd_settings + "\n".join([
                "ListenAddress 127.0.0.1:%d" % self.port,
                "HostKey " + key,
                "PidFile " + os.path.join(self.dir, "sshd.pid"),
                "PubkeyAuthentication no",
                "AuthorizedKeysFile none",
                "PermitRootLogin no",
                "AllowUsers " + SSH_USER,
                "PrintMotd no",
                "LogLevel DEBUG1",   # the PAM error text of a failed password login
                ""]))
        self.proc = None

    def start(self):
        check = self.sandbox.run(["/usr/sbin/sshd", "-t", "-f", self.config],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert check.returncode == 0, "sshd -t: " + check.stdout
        self.proc = self.sandbox.popen(["/usr/sbin/sshd", "-D", "-f", self.config,
                                        "-E", self.log])
        if not wait_port(self.port, timeout=scaled(10)):
            self.stop()
            raise RuntimeError("sshd did not listen on %d: %s" % (self.port, self.log_text()))
        return self

    def stop(self):
        if self.proc is not None:
            sandbox.stop(self.proc)
        self.proc = None
        LOG_TEXTS.append(self.log_text())

    def log_text(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def ssh(self, method, password, command):
        """ssh with exactly one authentication method and one password attempt, via sshpass."""
        argv = ["sshpass", "-e", "ssh", "-F", "/dev/null", "-p", str(self.port),
                "-o", "UserKnownHostsFile=" + self.known_hosts, "-o", "StrictHostKeyChecking=yes",
                "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=" + method,
                "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=%d" % scaled(10),
                SSH_USER + "@127.0.0.1", command]
        env = dict(os.environ, SSHPASS=password)
        return run(argv, timeout=scaled(60), env=env, stderr=subprocess.PIPE)


@pytest.fixture(scope="module")
def sshd(workdir, module, dv, pki):
    need("/usr/sbin/sshd", "ssh", "ssh-keygen", "sshpass", "unshare")
    d = Sshd(workdir, module)
    write_root_file(d.mail_conf, config(pki, server("dv", "imap", hosts("127.0.0.1"),
                                                    dv.ports["imap"])))
    d.start()
    yield d
    d.stop()
    assert not wait_port(d.port, timeout=0.5), "sshd still listening after stop"


COMMAND = 'printf "ran as %s (%s)\\n" "$(id -un)" "$(id -u)"'


@pytest.mark.parametrize("method", sorted(METHODS))
def test_right_mail_password_logs_in(sshd, dv, method):
    offset = dv.log_size()
    r = sshd.ssh(method, USERS[SSH_USER], COMMAND)
    assert r.returncode == 0, (r.stdout, r.stderr, sshd.log_text()[-3000:])
    assert r.stdout == "ran as %s (%d)\n" % (SSH_USER, sshd.uid)
    assert "Accepted %s for %s" % (METHODS[method], SSH_USER) in sshd.log_text()
    assert logins(dv, SSH_USER, offset) == 1   # the module really asked the mail server


@pytest.mark.parametrize("method", sorted(METHODS))
def test_wrong_password_is_refused(sshd, dv, method):
    before = sshd.log_text()
    r = sshd.ssh(method, USERS[SSH_USER] + "x", COMMAND)
    assert r.returncode != 0
    assert "ran as" not in r.stdout
    new = sshd.log_text()[len(before):]
    assert "Failed %s for %s" % (METHODS[method], SSH_USER) in new, new
    assert "Accepted" not in new


@pytest.mark.parametrize("method", sorted(METHODS))
def test_mail_server_down_says_so_and_refuses(sshd, pki, dv, method):
    down = config(pki, server("down", "imap", hosts("127.0.0.1"), closed_port()))
    up = open(sshd.mail_conf).read()
    write_root_file(sshd.mail_conf, down)
    try:
        before = sshd.log_text()
        r = sshd.ssh(method, USERS[SSH_USER], COMMAND)
    finally:
        write_root_file(sshd.mail_conf, up)
    new = sshd.log_text()[len(before):]
    assert r.returncode != 0
    assert "ran as" not in r.stdout
    assert "Accepted" not in new
    assert "Failed %s for %s" % (METHODS[method], SSH_USER) in new, new
    if method == "keyboard-interactive":
        # the module's message reaches the user through the PAM conversation
        assert UNAVAILABLE in r.stderr, r.stderr
    else:
        # password authentication cannot show it before login; sshd logs the PAM error instead
        assert "Authentication service cannot retrieve authentication info" in new, new


def test_server_alert_reaches_the_ssh_user(sshd, pki):
    """Issue 20: an IMAP [ALERT] received over TLS is shown through keyboard-interactive, cleaned
    of its escape sequences; the password is refused as the server said."""
    from fakeserver import FakeServer, tls_server_context
    from test_alert import alert_server

    text = "\x1b[31mApplication-specific password required\x1b[0m: see \x1b]0;x\x07the web"
    ctx = tls_server_context(pki["server_cert"], pki["server_key"])
    up = open(sshd.mail_conf).read()
    with FakeServer(alert_server("NO [ALERT] " + text), tls_context=ctx) as fake:
        write_root_file(sshd.mail_conf, config(pki, server("fake", "imap", hosts("localhost"),
                                                          fake.port, "implicit")))
        try:
            r = sshd.ssh("keyboard-interactive", USERS[SSH_USER], COMMAND)
        finally:
            write_root_file(sshd.mail_conf, up)
    assert r.returncode != 0 and "ran as" not in r.stdout
    assert "Mail server: Application-specific password required: see the web" in r.stderr, \
        r.stderr
    assert "\x1b" not in r.stderr, r.stderr
