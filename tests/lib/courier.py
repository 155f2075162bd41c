"""A throwaway Courier-IMAP 5.0 / Courier POP3 (Debian 12's packages, unpacked, not installed)
on loopback high ports, in a private mount namespace (mailns.py) where Courier's compiled-in
/etc/courier, /run/courier and /var/lib/courier are temp dirs.

Passwords live in a userdb (courier-authlib-userdb) that authdaemond serves; the login
programs ask authdaemond over its socket in /run/courier/authdaemon. stop_authdaemon() is the
"auth backend down" outage, start_authdaemon() ends it.

Listeners (couriertcpd, one per port), ports[variant][service]:
  normal  imap (STARTTLS offered), imaps, pop3 (STLS offered), pop3s
  tlsreq  imap with IMAP_TLS_REQUIRED=1, pop3 with POP3_TLS_REQUIRED=1
  cram    imap, imaps, pop3, pop3s also offering CRAM-MD5 (AUTH=CRAM-MD5, POP3AUTH), checked
          against the userdb's hmac-md5pw
Courier sleeps 5 s after a failed login (compiled in: there is no setting to shorten it).
Courier POP3 has no APOP.
"""
import os
import pwd
import warnings

with warnings.catch_warnings():
    # Deprecated in 3.11, but Debian 12's python has it and its crypt() is libxcrypt's.
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

import hostview
import mailns
from dovecot import free_port, wait_port

COURIER = "/usr/lib/courier"
COURIERTLS = "/usr/bin/couriertls"

IMAP_CAPABILITY = ("IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT "
                   "THREAD=REFERENCES SORT QUOTA IDLE")

AUTHDAEMONRC = """\
authmodulelist="authuserdb"
daemons=2
authdaemonvar=/run/courier/authdaemon
DEBUG_LOGIN=0
DEFAULTOPTIONS=""
LOGGEROPTS=""
"""


def _hash(password):
    """SHA-512 crypt, which authlib's crypt() checks."""
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))


class Courier:
    """Courier(directory, users, cert, key).start(); stop() ends every process and the
    namespace."""

    def __init__(self, directory, users, cert, key):
        self.d = directory
        self.users = users
        self.cert = cert
        self.key = key
        self.ns = None
        self.authdaemon = None
        self.ports = {}

    def _write(self):
        os.makedirs(self.d, exist_ok=True)
        os.chmod(self.d, 0o755)
        self.ns = mailns.MountNamespace(os.path.join(self.d, "ns"))
        etc = self.ns.upper("/etc/courier")
        os.makedirs(etc, exist_ok=True)
        os.makedirs(self.ns.upper("/run/courier/authdaemon"), exist_ok=True)
        os.chmod(self.ns.upper("/run/courier/authdaemon"), 0o755)
        os.makedirs(self.ns.upper("/var/lib/courier"), exist_ok=True)
        with open(os.path.join(etc, "authdaemonrc"), "w") as f:
            f.write(AUTHDAEMONRC)
        with open(os.path.join(etc, "tls.pem"), "wb") as f:
            for part in (self.key, self.cert):
                with open(part, "rb") as src:
                    f.write(src.read())
        nobody = pwd.getpwnam("nobody")
        # couriertls started for STARTTLS/STLS drops to the user "courier" (which the package's
        # postinst would create): the namespace's /etc/passwd has one, mapped to nobody, who
        # must then be able to read the key.
        os.chown(os.path.join(etc, "tls.pem"), nobody.pw_uid, nobody.pw_gid)
        os.chmod(os.path.join(etc, "tls.pem"), 0o600)
        for name, line in (("passwd", "courier:x:%d:%d:courier:/nonexistent:/usr/sbin/nologin\n"
                            % (nobody.pw_uid, nobody.pw_gid)),
                           ("group", "courier:x:%d:\n" % nobody.pw_gid)):
            # The host may have a courier account of its own (a uid that cannot read tls.pem):
            # in the namespace, ours replaces it.
            with open("/etc/" + name) as src, open(self.ns.upper("/etc/" + name), "w") as dst:
                dst.write(hostview.with_entry(src.read(), "courier", line))
            os.chmod(self.ns.upper("/etc/" + name), 0o644)
        for user in self.users:
            home = os.path.join(self.d, "home", user)
            for sub in ("", "Maildir", "Maildir/cur", "Maildir/new", "Maildir/tmp"):
                os.makedirs(os.path.join(home, sub), exist_ok=True)
                os.chown(os.path.join(home, sub), nobody.pw_uid, nobody.pw_gid)

    def _write_userdb(self):
        """systempw (SHA-512 crypt) for LOGIN/USER-PASS, and hmac-md5pw for CRAM-MD5: authlib
        needs the password's HMAC-MD5 inner and outer contexts, which only its own userdbpw
        prints (a cleartext equivalent: anyone holding it can answer any challenge)."""
        nobody = pwd.getpwnam("nobody")
        lines = []
        for user, password in self.users.items():
            home = os.path.join(self.d, "home", user)
            hmac_md5 = self.ns.run(["/usr/sbin/userdbpw", "-hmac-md5"],
                                   input=password.encode("utf-8") + b"\n").strip()
            lines.append("%s\tuid=%d|gid=%d|home=%s|mail=%s/Maildir|systempw=%s|hmac-md5pw=%s\n"
                         % (user, nobody.pw_uid, nobody.pw_gid, home, home, _hash(password),
                            hmac_md5))
        # Written inside the namespace: the overlay is mounted by now.
        self.ns.run(["sh", "-c", "umask 077 && cat >/etc/courier/userdb"],
                    input="".join(lines).encode("utf-8"))

    def _env(self, service, variant):
        tls_required = variant == "tlsreq"
        tls = {"COURIERTLS": COURIERTLS, "TLS_CERTFILE": "/etc/courier/tls.pem",
               "TLS_VERIFYPEER": "NONE", "MAILDIRPATH": "Maildir"}
        cram = " AUTH=CRAM-MD5" if variant == "cram" else ""
        if service.startswith("imap"):
            env = {"IMAP_CAPABILITY": IMAP_CAPABILITY + cram,
                   "IMAP_CAPABILITY_TLS": IMAP_CAPABILITY + cram + " AUTH=PLAIN",
                   "IMAP_STARTTLS": "NO" if service == "imaps" else "YES",
                   "IMAP_TLS_REQUIRED": "1" if tls_required else "0",
                   "IMAP_TLS": "1" if service == "imaps" else "0",
                   "IMAP_UMASK": "022", "IMAP_USELOCKS": "1"}
        else:
            env = {"POP3AUTH": "CRAM-MD5" if cram else "",
                   "POP3AUTH_TLS": ("CRAM-MD5 " if cram else "") + "LOGIN PLAIN",
                   "POP3_STARTTLS": "NO" if service == "pop3s" else "YES",
                   "POP3_TLS_REQUIRED": "1" if tls_required else "0",
                   "POP3_TLS": "1" if service == "pop3s" else "0"}
        env.update(tls)
        return env

    def _listen(self, variant, service):
        port = free_port()
        self.ports.setdefault(variant, {})[service] = port
        if service.startswith("imap"):
            login = [COURIER + "/courier/imaplogin", "/usr/bin/imapd", "Maildir"]
        else:
            login = [COURIER + "/courier/courierpop3login", COURIER + "/courier/courierpop3d",
                     "Maildir"]
        if service in ("imaps", "pop3s"):
            login = [COURIERTLS, "-server", "-tcpd"] + login
        argv = ["/usr/sbin/couriertcpd", "-address=127.0.0.1", "-maxprocs=40", "-maxperip=100",
                "-nodnslookup", "-noidentlookup", str(port)] + login
        self.ns.popen(argv, env=self._env(service, variant),
                      log=os.path.join(self.d, "courier.log"))
        return port

    def start(self):
        self._write()
        self.ns.start()
        try:
            self._write_userdb()
            self.ns.run(["/usr/sbin/makeuserdb"])
            self.start_authdaemon()
            for variant, services in (("normal", ("imap", "imaps", "pop3", "pop3s")),
                                      ("tlsreq", ("imap", "pop3")),
                                      ("cram", ("imap", "imaps", "pop3", "pop3s"))):
                for service in services:
                    self._listen(variant, service)
            for variant, services in self.ports.items():
                for service, port in services.items():
                    if not wait_port(port):
                        raise AssertionError("Courier %s %s did not listen on %d: %s"
                                             % (variant, service, port, self.log()))
        except BaseException:
            self.stop()
            raise
        return self

    def start_authdaemon(self):
        sock = self.ns.upper("/run/courier/authdaemon/socket")
        # Inside the namespace: the overlay must see the removal.
        self.ns.run(["rm", "-f", "/run/courier/authdaemon/socket",
                     "/run/courier/authdaemon/pid"])
        self.authdaemon = self.ns.popen([COURIER + "/courier-authlib/authdaemond"],
                                        log=os.path.join(self.d, "authdaemond.log"))
        mailns.wait_for(lambda: os.path.exists(sock), 10, "authdaemond's socket")

    def stop_authdaemon(self):
        """The outage: authdaemond is killed, the login programs find no one on its socket."""
        if self.authdaemon is not None:
            self.ns.stop_proc(self.authdaemon)
            self.authdaemon = None

    def stop(self):
        if self.ns is not None:
            self.ns.stop()
        self.ns = None
        self.authdaemon = None

    def log(self):
        return mailns.tail_logs(self.d, ("courier.log", "authdaemond.log"))
