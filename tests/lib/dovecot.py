"""A throwaway Dovecot on loopback: high ports, a temp dir, no system config touched."""
import os
import shutil
import signal
import socket
import subprocess
import time

from fakeserver import scaled

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


# Ports free_port handed out in this process: the kernel may offer a port again once the probing
# socket is closed, and a server given the same port twice (Cyrus's many services) would answer
# on another's (a POP3 test once got an IMAP greeting).
_GIVEN_PORTS = set()


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A port nothing listens on now, never one this process was given before."""
    for _ in range(1000):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port
    raise RuntimeError("no fresh free port after 1000 tries")


def wait_port(port, host="127.0.0.1", timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


CONF = """\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1, ::1
auth_mechanisms = {mechanisms}
disable_plaintext_auth = no
{failure_delay}auth_cache_size = 0
auth_verbose = yes
# Keep user names as sent (Dovecot lowercases by default), so case mapping is really tested.
auth_username_format = %u
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
mail_location = maildir:{d}/mail/%u
mail_max_userip_connections = 1000
login_trusted_networks = {trusted}
{user_settings}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/passwd
}}
userdb {{
  driver = static
  args = {userdb_args} home={d}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = {imaps}
    ssl = yes
  }}
  process_min_avail = 1
{login_tuning}}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = {pop3s}
    ssl = yes
  }}
  process_min_avail = 1
{login_tuning}}}
{mail_services}{anvil}"""

# Without the anvil penalty (a wrong password from an address would slow every later login from
# it by up to 15 s); brute_force_defaults keeps Dovecot's own.
NO_PENALTY = """service anvil {
  chroot =
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
"""


# Dovecot's high-performance mode, for benchmarks: login processes serve many connections and
# post-login mail processes are reused instead of spawned per login.
LOGIN_TUNING = "  service_count = 0\n  client_limit = 1000\n"
MAIL_SERVICES = "".join(
    "service %s {\n  service_count = 0\n  client_limit = 100\n  process_min_avail = 2\n}\n" % s
    for s in ("imap", "pop3"))


class Dovecot:
    """Start with Dovecot(directory, users, cert, key).start(); stop() kills it."""

    def __init__(self, directory, users, cert, key, extra="", apop=True, fast=False,
                 brute_force_defaults=False, trusted="", sasl=False, hashed=(), stored=None):
        """brute_force_defaults: keep Dovecot's auth_failure_delay (2 s) and anvil penalty (up to
        15 s per client address) instead of zeroing them. trusted: login_trusted_networks, whose
        IMAP ID x-originating-ip and POP3 XCLIENT Dovecot believes."""
        # sasl: also offer CRAM-MD5, SCRAM-SHA-1 and SCRAM-SHA-256 (auth_mechanisms). hashed:
        # users whose password is stored as SHA512-CRYPT, for which Dovecot advertises those
        # mechanisms all the same and fails them.
        self.sasl = sasl
        self.hashed = set(hashed)
        self.stored = stored or {}  # user -> the passwd-file field as written ("{SCHEME}...")
        self.brute_force_defaults = brute_force_defaults
        self.trusted = trusted
        self.d = directory
        self.apop = apop
        self.fast = fast
        self.users = users
        self.cert = cert
        self.key = key
        self.extra = extra
        self.ports = {}
        self.proc = None

    def _write_config(self):
        os.makedirs(self.d, exist_ok=True)
        for sub in ("run", "state", "mail"):
            os.makedirs(os.path.join(self.d, sub), exist_ok=True)
        os.chmod(self.d, 0o755)
        os.chmod(os.path.join(self.d, "mail"), 0o1777)
        with open(os.path.join(self.d, "passwd"), "wb") as f:
            for user, password in self.users.items():
                # a (password, extra fields) pair adds passdb extra fields ("nologin reason=x")
                password, fields = password if isinstance(password, tuple) else (password, "")
                if user in self.stored:
                    stored = self.stored[user].encode()
                elif user in self.hashed:
                    stored = b"{SHA512-CRYPT}" + subprocess.run(
                        ["openssl", "passwd", "-6", "-stdin"], input=password.encode("utf-8"),
                        capture_output=True, check=True).stdout.strip()
                else:
                    stored = b"{PLAIN}" + password.encode("utf-8")
                f.write(user.encode() + b":" + stored + b"::::::" + fields.encode() + b"\n")
        os.chmod(os.path.join(self.d, "passwd"), 0o644)
        if os.geteuid() == 0:
            user_settings, userdb_args = "", "uid=65534 gid=65534"
        else:
            import grp
            import pwd
            me = pwd.getpwuid(os.geteuid()).pw_name
            group = grp.getgrgid(os.getegid()).gr_name
            user_settings = ("default_internal_user = {0}\ndefault_internal_group = {1}\n"
                             "default_login_user = {0}\n").format(me, group)
            userdb_args = ""
        self.ports = {name: free_port() for name in ("imap", "imaps", "pop3", "pop3s")}
        conf = CONF.format(d=self.d, cert=self.cert, key=self.key, user_settings=user_settings,
                           userdb_args=userdb_args,
                           mechanisms=("plain login" + (" apop" if self.apop else "") +
                                       (" cram-md5 scram-sha-1 scram-sha-256"
                                        if self.sasl else "")),
                           login_tuning=LOGIN_TUNING if self.fast else "",
                           mail_services=MAIL_SERVICES if self.fast else "",
                           failure_delay=("" if self.brute_force_defaults
                                          else "auth_failure_delay = 0\n"),
                           anvil="" if self.brute_force_defaults else NO_PENALTY,
                           trusted=self.trusted,
                           **self.ports) + self.extra
        self.conf = os.path.join(self.d, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(conf)

    def start(self):
        self._write_config()
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for port in self.ports.values():
            if not wait_port(port):
                self.stop()
                raise RuntimeError("dovecot did not listen on %d: %s" % (port, self.log()))
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self):
        try:
            with open(os.path.join(self.d, "dovecot.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_size(self):
        try:
            return os.path.getsize(os.path.join(self.d, "dovecot.log"))
        except OSError:
            return 0

    def log_since(self, offset):
        return self.log().encode("utf-8", "replace")[offset:].decode("utf-8", "replace")

    def wait_log(self, needle, since=0, timeout=10.0):
        """True once needle is in the log after offset since: Dovecot writes its log lines
        after it answered the client, so a line may come a moment after the login ended. False
        after timeout seconds (scaled)."""
        end = time.monotonic() + scaled(timeout)
        while time.monotonic() < end:
            if needle in self.log_since(since):
                return True
            time.sleep(0.05)
        return False
