"""A throwaway Cyrus IMAP 3.6 (imapd, pop3d; Debian 12's packages, unpacked, not installed) on
loopback high ports, in a private mount namespace (mailns.py).

One master process serves every variant the tests need, each on its own ports with its own
imapd.conf (they share the mail spool and the sasldb):
  fast      sasldb (auxprop) passwords, failedloginpause: 0      imap imaps pop3 pop3s
  real      the same with Cyrus's default failure pause (3 s)     imap pop3
  sa        passwords checked by saslauthd (rimap to the suite's Dovecot), pause 0
                                                                 imap pop3
  sa_real   saslauthd with the default pause                      pop3
  tlsreq    allowplaintext: no (login only under TLS), pause 0   imap pop3
  mech      sasldb, offering SCRAM-SHA-256, SCRAM-SHA-1 (and their imap imaps pop3 pop3s
            -PLUS under TLS), CRAM-MD5, PLAIN, LOGIN; pause 0
  mech12    the same, TLS 1.2 only                                imaps pop3s
  mechpriv  the same on privileged ports given by the caller      imap pop3
The plain ports also offer STARTTLS/STLS (the suite's PKI: a certificate for "localhost").
saslauthd is a process of its own: stop_saslauthd() is the "auth backend down" outage.
"""
import os
import pwd
import shutil
import socket

import mailns
from dovecot import free_port, wait_port

CYRUS_BIN = "/usr/lib/cyrus/bin"
REALM = "localhost"

VARIANTS = {
    # name: (imapd.conf lines, services)
    "fast": ("failedloginpause: 0\n", ("imap", "imaps", "pop3", "pop3s")),
    "real": ("", ("imap", "pop3")),
    "sa": ("failedloginpause: 0\n", ("imap", "pop3")),
    "sa_real": ("", ("pop3",)),
    "tlsreq": ("failedloginpause: 0\n", ("imap", "pop3")),
    "mech": ("failedloginpause: 0\n", ("imap", "imaps", "pop3", "pop3s")),
    "mech12": ("failedloginpause: 0\n", ("imaps", "pop3s")),
}
# What the "mech" variants offer (sasl_mech_list; the others: PLAIN LOGIN), all checked against
# the sasldb's cleartext userPassword. Under TLS Cyrus adds the -PLUS variants itself.
MECH_LIST = "SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN"
# "mech12" speaks TLS 1.2 only: the module's SCRAM-PLUS then binds with tls-unique, as Cyrus does
# (TLS 1.3: tls-exporter, which Cyrus lacks).
TLS_VERSIONS = {"mech12": "tls1_2"}

IMAPD_CONF = """\
configdirectory: {d}/lib
proc_path: {d}/run/proc
mboxname_lockpath: {d}/run/lock
defaultpartition: default
partition-default: {d}/spool
lmtpsocket: {d}/run/socket/lmtp
idlesocket: {d}/run/socket/idle
notifysocket: {d}/run/socket/notify
servername: {realm}
cyrus_user: {user}
cyrus_group: {group}
allowplaintext: {plaintext}
allowapop: yes
autocreate_quota: 0
sasl_mech_list: {mechs}
sasl_pwcheck_method: {pwcheck}
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {sasldb}
sasl_saslauthd_path: {d}/saslauthd/mux
tls_server_cert: {d}/tls/cert.pem
tls_server_key: {d}/tls/key.pem
tls_versions: {tls_versions}
virtdomains: off
syslog_prefix: cyrus-{variant}
{extra}"""


class Cyrus:
    """Cyrus(directory, users, cert, key, rimap_port).start(); stop() ends every process and
    the namespace. ports[variant][service] is the TCP port on 127.0.0.1."""

    def __init__(self, directory, users, cert, key, rimap_port, privileged=None):
        """privileged: {"imap": port, "pop3": port} on which the "mechpriv" variant listens
        (ports below ip_unprivileged_port_start, where the module's cleartext rule exempts
        loopback); None: no such variant."""
        self.d = directory
        self.privileged = privileged
        self.users = users
        self.cert = cert
        self.key = key
        self.rimap_port = rimap_port
        self.ns = None
        self.master = None
        self.saslauthd = None
        self.ports = {}

    def _write(self):
        os.makedirs(self.d, exist_ok=True)
        os.chmod(self.d, 0o755)
        nobody = pwd.getpwnam("nobody")
        for sub in ("lib", "spool", "run", "run/proc", "run/lock", "run/socket", "tls"):
            path = os.path.join(self.d, sub)
            os.makedirs(path, exist_ok=True)
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        os.makedirs(os.path.join(self.d, "saslauthd"), exist_ok=True)
        os.chmod(os.path.join(self.d, "saslauthd"), 0o755)
        for src, name in ((self.cert, "cert.pem"), (self.key, "key.pem")):
            dst = os.path.join(self.d, "tls", name)
            shutil.copy(src, dst)
            os.chown(dst, nobody.pw_uid, nobody.pw_gid)
            os.chmod(dst, 0o600)
        group = "nogroup"
        services = []
        variants = dict(VARIANTS)
        if self.privileged:
            variants["mechpriv"] = ("failedloginpause: 0\n", tuple(self.privileged))
        for variant, (extra, names) in variants.items():
            conf = os.path.join(self.d, "imapd-%s.conf" % variant)
            with open(conf, "w") as f:
                f.write(IMAPD_CONF.format(
                    d=self.d, realm=REALM, user="nobody", group=group, variant=variant,
                    plaintext="no" if variant == "tlsreq" else "yes",
                    mechs=MECH_LIST if variant.startswith("mech") else "PLAIN LOGIN",
                    tls_versions=TLS_VERSIONS.get(variant, "tls1_2 tls1_3"),
                    pwcheck="saslauthd" if variant.startswith("sa") else "auxprop",
                    # With saslauthd nothing can check APOP (no sasldb), yet the greeting
                    # still offers it: the situation issue 12 describes.
                    sasldb=os.path.join(self.d, "no-sasldb" if variant.startswith("sa")
                                        else "sasldb2"),
                    extra=extra))
            self.ports[variant] = {}
            for name in names:
                port = (self.privileged[name] if variant == "mechpriv" else free_port())
                self.ports[variant][name] = port
                daemon = "imapd" if name.startswith("imap") else "pop3d"
                implicit = " -s" if name.endswith("s") else ""
                services.append('  %s%s cmd="%s/%s%s -C %s" listen="127.0.0.1:%d" prefork=0\n'
                                % (variant.replace("_", ""), name, CYRUS_BIN, daemon, implicit,
                                   conf, port))
        self.cyrus_conf = os.path.join(self.d, "cyrus.conf")
        with open(self.cyrus_conf, "w") as f:
            f.write('START {\n  recover cmd="%s/ctl_cyrusdb -C %s/imapd-fast.conf -r"\n}\n'
                    'SERVICES {\n%s}\nEVENTS {\n}\n' % (CYRUS_BIN, self.d, "".join(services)))

    def _make_sasldb(self):
        db = os.path.join(self.d, "sasldb2")
        for user, password in self.users.items():
            self.ns.run(["/usr/sbin/saslpasswd2", "-f", db, "-u", REALM, "-p", "-c", user],
                        input=password.encode("utf-8"))
        nobody = pwd.getpwnam("nobody")
        os.chown(db, nobody.pw_uid, nobody.pw_gid)
        os.chmod(db, 0o600)

    def start(self):
        self._write()
        self.ns = mailns.MountNamespace(os.path.join(self.d, "ns")).start()
        try:
            self._make_sasldb()
            self.start_saslauthd()
            self.master = self.ns.popen([CYRUS_BIN + "/master", "-C",
                                         os.path.join(self.d, "imapd-fast.conf"), "-M",
                                         self.cyrus_conf, "-p",
                                         os.path.join(self.d, "run", "master.pid")],
                                        log=os.path.join(self.d, "master.log"))
            for variant, names in self.ports.items():
                for name, port in names.items():
                    if not wait_port(port):
                        raise AssertionError("Cyrus %s %s did not listen on %d: %s"
                                             % (variant, name, port, self.log()))
            self._create_inboxes()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_inboxes(self):
        """Log every user in once over IMAP (autocreate_quota: 0 creates the INBOX), so that
        POP3, which needs a maildrop, has one. A literal carries any password as it is."""
        port = self.ports["fast"]["imap"]
        for user, password in self.users.items():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                f = s.makefile("rb")
                f.readline()
                raw = password.encode("utf-8")
                s.sendall(b'a LOGIN "%s" {%d}\r\n' % (user.encode(), len(raw)))
                line = f.readline()
                assert line.startswith(b"+"), line
                s.sendall(raw + b"\r\n")
                while True:
                    line = f.readline()
                    if not line or line.startswith(b"a "):
                        break
                assert line.startswith(b"a OK"), "Cyrus refused %s's password: %r (%s)" % (
                    user, line, self.log())
                s.sendall(b"b LOGOUT\r\n")

    def start_saslauthd(self):
        """saslauthd -a rimap against the suite's Dovecot (the way a Cyrus front end checks
        passwords on another server)."""
        mux = os.path.join(self.d, "saslauthd")
        self.saslauthd = self.ns.popen(["/usr/sbin/saslauthd", "-d", "-a", "rimap", "-O",
                                        "127.0.0.1/%d" % self.rimap_port, "-m", mux, "-n", "0"],
                                       log=os.path.join(self.d, "saslauthd.log"))
        mailns.wait_for(lambda: os.path.exists(os.path.join(mux, "mux")), 10,
                        "saslauthd's socket")

    def stop_saslauthd(self):
        """The outage: Cyrus's password backend is gone (its socket with it)."""
        if self.saslauthd is not None:
            self.ns.stop_proc(self.saslauthd)
            self.saslauthd = None
        for name in ("mux", "mux.accept", "saslauthd.pid"):
            try:
                os.unlink(os.path.join(self.d, "saslauthd", name))
            except FileNotFoundError:
                pass

    def stop(self):
        if self.ns is not None:
            self.ns.stop()
        self.ns = None
        self.master = None
        self.saslauthd = None

    def log(self):
        return mailns.tail_logs(self.d, ("master.log", "saslauthd.log"))

