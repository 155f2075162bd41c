"""TLS session resumption in a long-lived process (issue 21), through real libpam against a real
Dovecot: the in-process driver (tests/concurrency.c) runs several logins in one process, the
module's debug trace (to a private /dev/log, devlog.py) says which handshakes resumed, and every
login is still judged by the server: a wrong password over a resumed session is refused."""
import os
import subprocess

import pytest

import devlog
import dovecot
import pamrun
from conftest import USERS
from helpers import config, hosts, scaled, server


@pytest.fixture(scope="module")
def dv_fast(workdir, pki):
    """Dovecot in high-performance mode: a login process serves many connections with one TLS
    context, so it can resume a session it issued (as a production Dovecot so configured does)."""
    d = dovecot.Dovecot(os.path.join(workdir, "dovecot-resume"), USERS, pki["server_cert"],
                        pki["server_key"], fast=True).start()
    yield d
    d.stop()


def service_dir(module, pam, pki, dv, tmp_path, label, protocol, port, tls):
    cfg = config(pki, server(label, protocol, hosts("localhost"), port, tls),
                 timeout=scaled(30))
    conf = pam.write_config(cfg, name="%s.conf" % label)
    confdir = tmp_path / ("pam.d-" + label)
    confdir.mkdir()
    (confdir / "mail").write_text("auth required %s config=%s debug\n" % (module, conf))
    return confdir


def drive(confdir, cases, rounds):
    """Run the driver with one thread per case, `rounds` logins each; the module's log lines."""
    driver = os.environ.get("MAILAUTH_CONCURRENCY")
    assert driver and os.path.exists(driver), "MAILAUTH_CONCURRENCY must name the driver"
    wrapper = os.environ.get("MAILAUTH_CONCURRENCY_WRAPPER", "").split()
    for case in cases:
        user, password, _ = case.split(":")
        pamrun.register_secret(password, user)
    with devlog.DevLog() as log:
        proc = subprocess.run(log.wrap(wrapper + [driver, str(confdir), "mail", str(len(cases)),
                                                  str(rounds)] + list(cases)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=scaled(300))
    out = proc.stdout.decode("utf-8", "replace")
    pamrun.ALL_LOG_LINES.extend(log.lines)
    total = len(cases) * rounds
    assert proc.returncode == 0 and "concurrency: %d passed, 0 failed" % total in out, out[-3000:]
    return [t for t in log.lines if "pam_mailauth" in t]


@pytest.mark.parametrize("protocol,port_name,tls", [("imap", "imaps", "implicit"),
                                                     ("imap", "imap", "starttls"),
                                                     ("pop3", "pop3s", "implicit")])
def test_resumed_logins_are_still_judged_by_the_server(module, pam, pki, dv_fast, tmp_path,
                                                       protocol, port_name, tls):
    confdir = service_dir(module, pam, pki, dv_fast, tmp_path, "resume", protocol,
                          dv_fast.ports[port_name], tls)
    # One thread: the logins follow one another, each after the previous one kept its session.
    lines = drive(confdir, ["alice:wrong-Pa55:7"], 4)
    results = [t for t in lines if "result=" in t]
    resumed = [t for t in lines if "session resumed" in t]
    assert len(results) == 4 and all("result=refused" in t for t in results), results
    assert len(resumed) >= 2, lines   # the first login cannot resume; later ones do
    lines = drive(confdir, ["alice:s3cret:0"], 3)
    assert sum("result=accepted" in t for t in lines) == 3, lines


def test_verify_false_never_resumes(module, pam, pki, dv_fast, tmp_path):
    cfg = config(pki, server("unverified", "imap", hosts("localhost"), dv_fast.ports["imaps"],
                             "implicit", extra="  verify = false\n"), timeout=scaled(30))
    conf = pam.write_config(cfg, name="unverified.conf")
    confdir = tmp_path / "pam.d-unverified"
    confdir.mkdir()
    (confdir / "mail").write_text("auth required %s config=%s debug\n" % (module, conf))
    lines = drive(confdir, ["alice:s3cret:0"], 3)
    assert sum("result=accepted" in t for t in lines) == 3, lines
    assert sum("TLS established" in t for t in lines) == 3, lines
    assert not any("session resumed" in t for t in lines), lines
