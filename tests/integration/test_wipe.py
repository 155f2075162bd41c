""""The password is wiped from memory after use" (README), checked: tests/wipe_check runs one
authentication through real libpam and searches every heap block freed meanwhile, and the dead
stack afterwards, for the password and what is derived from it (the SASL PLAIN blob in base64,
the APOP digest). Each mechanism that builds a credential buffer has a case."""
import base64
import hashlib

import pytest

from fakeserver import FakeServer, tls_server_context
from conftest import USERS
from helpers import config, hosts, server
from test_faults import CAPS, fake_cfg, imap_server, pop3_script

# No byte IMAP quoting would escape: the quoted form on the wire holds the password verbatim.
# Longer than 16 bytes, so no single (vector) register holds all of it: a register that a
# function saves on the stack is not a copy the module left.
PW = "wipe-Me-Pa55word-2024"
UTF8_PW = "wipe-m\u00e9-\u20ac-Pa55"
TS = "<4711.1234@wipe.test>"


def sasl_b64(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())


def assert_wiped(pam, cfg, password, extra=(), expected="0 (Success)"):
    status, out = pam.wipe_check(cfg, "alice", password, extra_secrets=extra)
    assert "authenticate=%s" % expected in out, out
    assert status == 0 and "0 copies found" in out, out


def sasl_ir_script(password):
    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN SASL-IR] fake")
        conn.expect("A1 AUTHENTICATE PLAIN " + sasl_b64("alice", password).decode())
        conn.line("A1 OK welcome")
        conn.drain(0.5)
    return script


@pytest.mark.parametrize("name", ["imap-login", "imap-login-refused", "imap-literal",
                                  "imap-authenticate-plain", "pop3-user-pass", "pop3-apop",
                                  "pop3-auth-plain"])
def test_no_copy_of_the_password_survives(pam, pki, name):
    password, extra, expected, protocol = PW, [], "0 (Success)", "imap"
    if name == "imap-login":
        script = imap_server("{tag} OK welcome")
    elif name == "imap-login-refused":
        script, expected = imap_server("{tag} NO [AUTHENTICATIONFAILED] no"), "7 ("
    elif name == "imap-literal":
        password, script = UTF8_PW, imap_server("{tag} OK welcome")
    elif name == "imap-authenticate-plain":
        script, extra = sasl_ir_script(PW), [sasl_b64("alice", PW)]
    elif name == "pop3-user-pass":
        protocol = "pop3"
        script = pop3_script(["+OK ready", ("USER alice", "+OK"), ("PASS " + PW, "+OK in")])
    elif name == "pop3-apop":
        protocol = "pop3"
        digest = hashlib.md5((TS + PW).encode()).hexdigest()
        script = pop3_script(["+OK ready " + TS, ("APOP alice " + digest, "+OK in")])
        extra = [digest.encode()]
    else:
        protocol = "pop3"
        blob = sasl_b64("alice", PW)
        script = pop3_script(["+OK ready", ("USER", "-ERR USER not supported"),
                              ("CAPA", "+OK\r\nSASL PLAIN\r\n."),
                              ("AUTH PLAIN " + blob.decode(), "+OK in")])
        extra = [blob]
    with FakeServer(script) as fake:
        assert_wiped(pam, fake_cfg(pki, fake, protocol), password, extra, expected)
    assert password.encode() in fake.received or any(e in fake.received for e in extra)


def test_no_copy_survives_a_tls_session(pam, pki):
    ctx = tls_server_context(pki["server_cert"], pki["server_key"])
    with FakeServer(imap_server("{tag} OK welcome"), tls_context=ctx) as fake:
        assert_wiped(pam, fake_cfg(pki, fake, "imap", "implicit", host="localhost"), PW)


def test_no_copy_survives_a_starttls_login_to_dovecot(pam, dv, pki):
    cfg = config(pki, server("dv", "imap", hosts("localhost"), dv.ports["imap"], "starttls"))
    status, out = pam.wipe_check(cfg, "frank", USERS["frank"])
    assert "authenticate=0 (Success)" in out, out
    assert status == 0 and "0 copies found" in out, out
