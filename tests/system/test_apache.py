"""Apache httpd with mod_authnz_pam: HTTP Basic authentication through the module.

A private Apache (tests/lib/apache.py: its own config, pid file and logs in a temp dir, a loopback
high port; never the system's apache2 service) runs in a sandbox whose /etc/pam.d/mailauth-web is
the man page's example. The <Location> blocks are the man page's too: /private as shown, /cached
with mod_authn_socache in front.
"""
import os

import pytest

import apache as httpd
from common import LOG_TEXTS, USERS, logins, man_examples, need, write_root_file
from dovecot import wait_port
from helpers import closed_port, config, hosts, scaled, server


def make_apache(workdir, module, mail_conf):
    service, location = man_examples("mod_authnz_pam")
    cached = man_examples("mod_authn_socache")[0].replace("<Location /private>",
                                                          "<Location /cached>")
    return httpd.Apache(
        os.path.join(workdir, "apache"),
        {"mailauth-web": service.replace("pam_mailauth.so",
                                         "%s config=%s" % (module, mail_conf))},
        {"private": location, "cached": cached}, timeout=scaled(30))


@pytest.fixture(scope="module")
def apache(workdir, module, dv, pki):
    need(*httpd.NEEDS)
    mail_conf = write_root_file(os.path.join(workdir, "apache-mail.conf"), config(
        pki, server("dv", "imap", hosts("127.0.0.1"), dv.ports["imap"])))
    a = make_apache(workdir, module, mail_conf)
    a.mail_conf = mail_conf
    try:
        a.start()
        yield a
    finally:
        LOG_TEXTS.append(a.stop())
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
