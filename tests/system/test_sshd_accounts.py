"""SSH for mail users without a local account (mailauth-accounts(8)): real sshd, real libpam,
real Dovecot, the built libnss_mailauth.so.2.

sshd runs in a sandbox (sandbox.py) whose nsswitch.conf lists mailauth after files, whose
ld.so.cache also knows the build directory (so every process in it, sshd and the user's session,
loads the built NSS module by its name), whose /var/lib is an overlay with pam_mailauth/ bound to
the test's registry directory, and whose /home is a scratch directory. The host's files are
never written.
"""
import os
import subprocess
import threading

import pytest

from common import LOG_TEXTS, MAIL_ONLY, need, run, write_root_file
from dovecot import free_port, wait_port
from helpers import closed_port, config, hosts, scaled, server
import hostview
import sandbox
from sandbox import Sandbox

CREATED = "has been created; please connect again"
COMMAND = 'printf "%s %s %s %s\\n" "$(id -un)" "$(id -u)" "$(id -g)" "$HOME"'
REGISTRY = "/var/lib/pam_mailauth/accounts"


class AccountsSshd:
    def __init__(self, workdir, module, nss_module):
        self.dir = os.path.join(workdir, "sshd-accounts")
        os.makedirs(self.dir, exist_ok=True)
        self.mail_conf = os.path.join(self.dir, "mail.conf")
        self.log = os.path.join(self.dir, "sshd.log")
        self.port = free_port()
        self.regdir = os.path.join(self.dir, "registry")
        self.homes = os.path.join(self.dir, "home")
        os.makedirs(self.regdir, mode=0o755, exist_ok=True)
        os.makedirs(self.homes, mode=0o755, exist_ok=True)
        self.registry = os.path.join(self.regdir, "accounts")
        self.sandbox = Sandbox(os.path.join(self.dir, "view"))
        self.sandbox.with_private_run()
        self.sandbox.writable_dir("/var/lib", "varlib", mkdir=("/var/lib/pam_mailauth",))
        self.sandbox.bind(self.regdir, "/var/lib/pam_mailauth")
        self.sandbox.bind(self.homes, "/home")
        self._nsswitch()
        self._ld_cache(os.path.dirname(os.path.abspath(nss_module)))
        self.sandbox.pam_service("sshd", "\n".join([
            "auth required %s config=%s" % (module, self.mail_conf),
            "account required pam_unix.so",
            "account required %s config=%s" % (module, self.mail_conf),
            "session optional pam_mkhomedir.so umask=0077",
            "session required pam_unix.so", ""]))
        key = os.path.join(self.dir, "host_ed25519")
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        with open(key + ".pub") as f:
            public = " ".join(f.read().split()[:2])
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        with open(self.known_hosts, "w") as f:
            f.write("[127.0.0.1]:%d %s\n" % (self.port, public))
        self.config = os.path.join(self.dir, "sshd_config")
        with open(self.config, "w") as f:
            f.write("\n".join([
                "UsePAM yes", "KbdInteractiveAuthentication yes", "PasswordAuthentication yes",
                "ListenAddress 127.0.0.1:%d" % self.port, "HostKey " + key,
                "PidFile " + os.path.join(self.dir, "sshd.pid"),
                "PubkeyAuthentication no", "AuthorizedKeysFile none", "PermitRootLogin no",
                "PrintMotd no", "MaxStartups 30", "LogLevel DEBUG1", ""]))
        self.proc = None

    def _nsswitch(self):
        copy = os.path.join(self.dir, "nsswitch.conf")
        with open("/etc/nsswitch.conf") as f:
            text = f.read()
        with open(copy, "w") as f:
            f.write(text)
        tool = os.environ["MAILAUTH_ACCOUNTS_TOOL"]
        r = run([tool, "--nsswitch", copy, "nsswitch", "enable"])
        assert r.returncode == 0, r.stdout
        self.sandbox.bind(copy, "/etc/nsswitch.conf")

    def _ld_cache(self, nss_dir):
        conf = os.path.join(self.dir, "ld.so.conf")
        cache = os.path.join(self.dir, "ld.so.cache")
        with open(conf, "w") as f:
            f.write("include /etc/ld.so.conf.d/*.conf\n%s\n" % nss_dir)
        r = run(["ldconfig", "-X", "-C", cache, "-f", conf])
        assert r.returncode == 0, r.stdout
        self.sandbox.bind(cache, "/etc/ld.so.cache")

    def start(self):
        check = self.sandbox.run(["/usr/sbin/sshd", "-t", "-f", self.config],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert check.returncode == 0, "sshd -t: " + check.stdout
        self.proc = self.sandbox.popen(["/usr/sbin/sshd", "-D", "-f", self.config,
                                        "-E", self.log])
        if not wait_port(self.port, timeout=scaled(10)):
            self.stop()
            raise RuntimeError("sshd did not listen: " + self.log_text())
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

    def ssh(self, user, method, password, command=COMMAND):
        argv = ["sshpass", "-e", "ssh", "-F", "/dev/null", "-p", str(self.port),
                "-o", "UserKnownHostsFile=" + self.known_hosts, "-o", "StrictHostKeyChecking=yes",
                "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=" + method,
                "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=%d" % scaled(10),
                user + "@127.0.0.1", command]
        return run(argv, timeout=scaled(60), env=dict(os.environ, SSHPASS=password),
                   stderr=subprocess.PIPE)

    def getent(self, *args):
        return self.sandbox.run(["getent"] + list(args), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def tool(self, *args):
        return run([os.environ["MAILAUTH_ACCOUNTS_TOOL"], "--registry", self.registry]
                   + list(args))

    def entries(self):
        try:
            with open(self.registry) as f:
                return [line.split(":") for line in f.read().splitlines()]
        except FileNotFoundError:
            return []

    def uid_of(self, name):
        for e in self.entries():
            if e[0] == name:
                return int(e[1])
        return None


def mail_config(pki, dv, user=""):
    return config(pki, server("dv", "imap", hosts("127.0.0.1"), dv.ports["imap"]),
                  head='user { %s }\naccounts { }\n' % user)


@pytest.fixture(scope="module")
def acc(workdir, module, dv, pki):
    need("/usr/sbin/sshd", "ssh", "ssh-keygen", "sshpass", "unshare", "ldconfig", "getent")
    nss = os.environ.get("MAILAUTH_NSS_MODULE")
    assert nss and os.path.exists(nss), "MAILAUTH_NSS_MODULE must name libnss_mailauth.so.2"
    # The user's session (a registered uid) loads it too: a copy it can read, whatever the
    # checkout's parents allow (hostview.shared_copy).
    nss = hostview.shared_copy(os.path.abspath(nss), os.path.join(workdir, "nss"))
    d = AccountsSshd(workdir, module, nss)
    write_root_file(d.mail_conf, mail_config(pki, dv, user='deny_users = {"root", "mu11"}'))
    d.start()
    yield d
    d.stop()
    assert not wait_port(d.port, timeout=0.5), "sshd still listening after stop"


@pytest.mark.parametrize("method,user", [("password", "mu0"), ("keyboard-interactive", "mu1")])
def test_first_login_registers_and_the_next_logs_in(acc, method, user):
    assert acc.getent("passwd", user).returncode == 2   # nobody knows the name yet
    r = acc.ssh(user, method, MAIL_ONLY[user])
    assert r.returncode != 0 and r.stdout == "", (r.stdout, r.stderr)
    if method == "keyboard-interactive":
        assert CREATED in r.stderr, r.stderr   # told plainly to connect again
    uid = acc.uid_of(user)
    assert uid is not None and 70000 <= uid <= 99999, acc.entries()
    got = acc.getent("passwd", user)
    assert got.stdout.strip() == "%s:*:%d:%d::/home/%s:/bin/bash" % (user, uid, uid, user), got
    r = acc.ssh(user, method, MAIL_ONLY[user])
    assert r.returncode == 0, (r.stdout, r.stderr, acc.log_text()[-3000:])
    assert r.stdout == "%s %d %d /home/%s\n" % (user, uid, uid, user)
    st = os.stat(os.path.join(acc.homes, user))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (uid, uid, 0o700)
    assert acc.getent("group", user).stdout.strip() == "%s:*:%d:" % (user, uid)


def test_eight_first_logins_at_once_get_eight_uids(acc):
    users = ["mu%d" % i for i in range(2, 10)]
    results = {}

    def one(u):
        results[u] = acc.ssh(u, "password", MAIL_ONLY[u])

    threads = [threading.Thread(target=one, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    uids = [acc.uid_of(u) for u in users]
    assert None not in uids and len(set(uids)) == 8, acc.entries()
    assert len(acc.entries()) == len({e[1] for e in acc.entries()})   # no uid twice, ever
    r = acc.ssh("mu5", "password", MAIL_ONLY["mu5"])
    assert r.stdout == "mu5 %d %d /home/mu5\n" % (acc.uid_of("mu5"), acc.uid_of("mu5")), r


@pytest.mark.parametrize("case", ["wrong password", "outside the policy", "server down",
                                  "never heard of"])
def test_nothing_is_created_without_a_server_yes(acc, pki, dv, case):
    user, password = "mu10", MAIL_ONLY["mu10"]
    up = open(acc.mail_conf).read()
    if case == "wrong password":
        password += "x"
    elif case == "outside the policy":
        user, password = "mu11", MAIL_ONLY["mu11"]   # deny_users
    elif case == "server down":
        write_root_file(acc.mail_conf, config(
            pki, server("down", "imap", hosts("127.0.0.1"), closed_port()),
            head="accounts { }\n"))
    else:
        user, password = "zz-nobody-knows", "whatever Pa55"
    try:
        r = acc.ssh(user, "password", password)
    finally:
        write_root_file(acc.mail_conf, up)
    assert r.returncode != 0 and r.stdout == ""
    assert acc.uid_of(user) is None, acc.entries()
    assert acc.getent("passwd", user).returncode == 2
    assert acc.getent("group", user).returncode == 2


def test_locked_is_refused_and_a_removed_uid_is_never_reused(acc):
    user = "mu0"
    if acc.uid_of(user) is None:
        acc.ssh(user, "password", MAIL_ONLY[user])
    uid = acc.uid_of(user)
    assert acc.tool("lock", user).returncode == 0
    before = acc.log_text()
    r = acc.ssh(user, "password", MAIL_ONLY[user])
    assert r.returncode != 0 and r.stdout == ""
    assert "Accepted" not in acc.log_text()[len(before):]   # the right password, refused
    assert acc.tool("unlock", user).returncode == 0
    assert acc.ssh(user, "password", MAIL_ONLY[user]).returncode == 0
    assert acc.tool("remove", user).returncode == 0
    assert acc.getent("passwd", user).returncode == 2
    assert acc.getent("passwd", str(uid)).returncode == 2
    highest = max(int(e[1]) for e in acc.entries())
    acc.ssh("mu10", "password", MAIL_ONLY["mu10"])   # a new name: a new uid, not the removed one
    assert acc.uid_of("mu10") == highest + 1 != uid
    # enumeration lists registered accounts only, and not the tombstone
    names = [l.split(":")[0] for l in acc.getent("passwd").stdout.splitlines()]
    assert "mu10" in names and user not in names
