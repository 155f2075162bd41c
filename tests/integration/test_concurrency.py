"""Issue 3: one process, 32+ threads, each with its own PAM handle, against Dovecot at once."""
import os
import subprocess

from conftest import USERS
from helpers import config, hosts, server


def test_32_threads_mixed_passwords(pam, dv, pki, module, tmp_path):
    driver = os.environ.get("MAILAUTH_CONCURRENCY")
    assert driver and os.path.exists(driver), "MAILAUTH_CONCURRENCY must name the driver"
    cfg = config(pki, server("plain", "imap", hosts("127.0.0.1"), dv.ports["imap"]),
                 timeout=30)
    cfg_tls = config(pki, server("tls", "pop3", hosts("localhost"), dv.ports["pop3s"],
                                 "implicit"), timeout=30)
    conf = pam.write_config(cfg, name="plain.conf")
    conf_tls = pam.write_config(cfg_tls, name="tls.conf")
    confdir = tmp_path / "pam.d"
    confdir.mkdir()
    (confdir / "mailimap").write_text("auth required %s config=%s\n" % (module, conf))
    (confdir / "mailpop3s").write_text("auth required %s config=%s\n" % (module, conf_tls))
    cases = ["alice:s3cret:0", "alice:wrong-Pa55:7", "erin:%s:0" % USERS["erin"],
             "mallory:s3cret:7"]
    wrapper = os.environ.get("MAILAUTH_CONCURRENCY_WRAPPER", "").split()
    for service in ("mailimap", "mailpop3s"):
        proc = subprocess.run(wrapper + [driver, str(confdir), service, "32", "2"] + cases,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
        out = proc.stdout.decode("utf-8", "replace")
        assert proc.returncode == 0, out[-4000:]
        assert "concurrency: 64 passed, 0 failed" in out, out[-4000:]
