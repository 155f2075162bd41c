"""Issue 3: one process, 32+ threads, each with its own PAM handle, against Dovecot at once."""
import os
import subprocess

import devlog
import pamrun
from conftest import USERS
from helpers import config, hosts, scaled, server

CASES = ["alice:s3cret:0", "alice:wrong-Pa55:7", "erin:%s:0" % USERS["erin"], "mallory:s3cret:7"]


def services(pam, dv, pki, module, tmp_path):
    """A PAM config dir with one IMAP and one implicit-TLS POP3 service."""
    cfg = config(pki, server("plain", "imap", hosts("127.0.0.1"), dv.ports["imap"]),
                 timeout=scaled(30))
    cfg_tls = config(pki, server("tls", "pop3", hosts("localhost"), dv.ports["pop3s"],
                                 "implicit"), timeout=scaled(30))
    conf = pam.write_config(cfg, name="plain.conf")
    conf_tls = pam.write_config(cfg_tls, name="tls.conf")
    confdir = tmp_path / "pam.d"
    confdir.mkdir()
    (confdir / "mailimap").write_text("auth required %s config=%s\n" % (module, conf))
    (confdir / "mailpop3s").write_text("auth required %s config=%s\n" % (module, conf_tls))
    for case in CASES:
        user, password, _ = case.split(":")
        pamrun.register_secret(password, user)
    return confdir


def run_driver(confdir, service, outer=()):
    driver = os.environ.get("MAILAUTH_CONCURRENCY")
    assert driver and os.path.exists(driver), "MAILAUTH_CONCURRENCY must name the driver"
    wrapper = os.environ.get("MAILAUTH_CONCURRENCY_WRAPPER", "").split()
    proc = subprocess.run(list(outer) + wrapper + [driver, str(confdir), service, "32", "2"] +
                          CASES, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=scaled(600))
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, out[-4000:]
    assert "concurrency: 64 passed, 0 failed" in out, out[-4000:]
    return out


def test_32_threads_mixed_passwords(pam, dv, pki, module, tmp_path):
    confdir = services(pam, dv, pki, module, tmp_path)
    for service in ("mailimap", "mailpop3s"):
        run_driver(confdir, service)


def test_32_threads_with_a_syslog_socket(pam, dv, pki, module, tmp_path):
    """As on any Debian system running journald or rsyslog: /dev/log exists, the first
    pam_syslog connects to it and libc keeps that socket. The fd check must still tell a leak
    from it. The socket is ours, in a private mount namespace (needs root or user namespaces)."""
    confdir = services(pam, dv, pki, module, tmp_path)
    with devlog.DevLog() as log:
        run_driver(confdir, "mailimap", outer=log.wrap([]))
    lines = [t for t in log.lines if "pam_mailauth" in t and "result=" in t]
    assert len(lines) == 64, log.lines[-10:]     # one line per authentication, all received
    pamrun.ALL_LOG_LINES.extend(log.lines)       # scanned for passwords with the rest
