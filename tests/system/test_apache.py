"""Apache httpd with mod_authnz_pam: HTTP Basic authentication through the module.

A private Apache (its own config, pid file and logs in a temp dir, a loopback high port; never
the system's apache2 service) runs in a sandbox whose /etc/pam.d/mailauth-web is the man page's
example. The <Location> blocks are the man page's too: /private as shown, /cached with
mod_authn_socache in front.
"""
import base64
import http.client
import os
import subprocess

import pytest

import sandbox
from common import LOG_TEXTS, USERS, logins, man_examples, need, run, write_root_file
from dovecot import free_port, wait_port
from helpers import closed_port, config, hosts, scaled, server
from sandbox import Sandbox

MODULES = "/usr/lib/apache2/modules"
LOADS = ["mpm_event", "authz_core", "authz_user", "authn_core", "auth_basic", "authnz_pam",
         "authn_socache", "socache_shmcb"]


class Apache:
    def __init__(self, workdir, module):
        self.dir = os.path.join(workdir, "apache")
        for sub in ("htdocs/private", "htdocs/cached", "run"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        for sub in ("private", "cached"):
            with open(os.path.join(self.dir, "htdocs", sub, "index.html"), "w") as f:
                f.write("%s page\n" % sub)
        run(["chmod", "-R", "a+rX", self.dir], check=True)
        self.mail_conf = os.path.join(self.dir, "mail.conf")
        self.error_log = os.path.join(self.dir, "error.log")
        self.port = free_port()
        self.sandbox = Sandbox(os.path.join(self.dir, "view"))
        service, location = man_examples("mod_authnz_pam")
        self.sandbox.pam_service("mailauth-web", service.replace(
            "pam_mailauth.so", "%s config=%s" % (module, self.mail_conf)))
        cached = man_examples("mod_authn_socache")[0].replace("<Location /private>",
                                                              "<Location /cached>")
        self.config = os.path.join(self.dir, "httpd.conf")
        with open(self.config, "w") as f:
            f.write("\n".join([
                "ServerRoot " + self.dir,
                "ServerName localhost",
                "Listen 127.0.0.1:%d" % self.port,
                "PidFile " + os.path.join(self.dir, "run", "httpd.pid"),
                "DefaultRuntimeDir " + os.path.join(self.dir, "run"),
                "ErrorLog " + self.error_log,
                "LogLevel warn authnz_pam:info",
                "User www-data",
                "Group www-data",
                "DocumentRoot " + os.path.join(self.dir, "htdocs"),
                ""] + ["LoadModule %s_module %s/mod_%s.so" % (m, MODULES, m) for m in LOADS]))
            f.write("\n" + location + cached)
        self.proc = None

    def start(self):
        check = self.sandbox.run(["apache2", "-t", "-f", self.config],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert check.returncode == 0, "apache2 -t: " + check.stdout
        self.proc = self.sandbox.popen(["apache2", "-DFOREGROUND", "-f", self.config])
        if not wait_port(self.port, timeout=scaled(10)):
            self.stop()
            raise RuntimeError("apache2 did not listen on %d: %s" % (self.port, self.log_text()))
        return self

    def stop(self):
        if self.proc is not None:
            sandbox.stop(self.proc)
        self.proc = None
        LOG_TEXTS.append(self.log_text())

    def log_text(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def get(self, path, user=None, password=None):
        headers = {}
        if user is not None:
            token = base64.b64encode((user + ":" + password).encode("utf-8")).decode("ascii")
            headers["Authorization"] = "Basic " + token
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=scaled(30))
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            conn.close()


@pytest.fixture(scope="module")
def apache(workdir, module, dv, pki):
    need("apache2", MODULES + "/mod_authnz_pam.so", "unshare")
    a = Apache(workdir, module)
    write_root_file(a.mail_conf, config(pki, server("dv", "imap", hosts("127.0.0.1"),
                                                    dv.ports["imap"])))
    a.start()
    yield a
    a.stop()
    assert not wait_port(a.port, timeout=0.5), "apache2 still listening after stop"


@pytest.mark.parametrize("user", ["alice", "webuser"])
def test_right_password_gets_200(apache, dv, user):
    offset = dv.log_size()
    status, body = apache.get("/private/index.html", user, USERS[user])
    assert (status, body) == (200, "private page\n"), apache.log_text()[-2000:]
    assert logins(dv, user, offset) == 1
    assert "PAM authentication passed for user %s" % user in apache.log_text()


@pytest.mark.parametrize("password", ["wrong", USERS["webuser"] + " ", USERS["webuser"][:-1], ""])
def test_wrong_password_gets_401(apache, password):
    status, _ = apache.get("/private/index.html", "webuser", password)
    assert status == 401


def test_no_credentials_get_401(apache):
    assert apache.get("/private/index.html")[0] == 401


def test_mail_server_down_gets_401_and_a_clear_log_line(apache, pki):
    up = open(apache.mail_conf).read()
    write_root_file(apache.mail_conf, config(pki, server("down", "imap", hosts("127.0.0.1"),
                                                         closed_port())))
    try:
        before = len(apache.log_text())
        status, _ = apache.get("/private/index.html", "alice", USERS["alice"])
    finally:
        write_root_file(apache.mail_conf, up)
    assert status == 401
    assert "Authentication service cannot retrieve authentication info" in \
        apache.log_text()[before:]


def test_socache_answers_without_pam(apache, dv, pki):
    """What the man page says of mod_authn_socache: after one success, Apache answers from its
    own cache without calling PAM, even when the mail server is gone; a wrong password still
    goes to PAM and is refused."""
    offset = dv.log_size()
    assert apache.get("/cached/index.html", "webuser", USERS["webuser"]) == (200, "cached page\n")
    assert logins(dv, "webuser", offset) == 1
    up = open(apache.mail_conf).read()
    write_root_file(apache.mail_conf, config(pki, server("down", "imap", hosts("127.0.0.1"),
                                                         closed_port())))
    try:
        assert apache.get("/cached/index.html", "webuser", USERS["webuser"])[0] == 200
        assert apache.get("/cached/index.html", "webuser", "wrong")[0] == 401
        assert apache.get("/private/index.html", "webuser", USERS["webuser"])[0] == 401
    finally:
        write_root_file(apache.mail_conf, up)
    assert logins(dv, "webuser", offset) == 1
