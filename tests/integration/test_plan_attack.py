"""Attacks on the login plan (plan.c and its walks in imap.c and pop3.c), the shared reply
readers and the POP3 user text, through real libpam, by scripted fake servers.

The rule: a yes only after every credential byte went out and the server's own answer to it
accepted it; a reply that is no verdict (the pipelined LOGIN under LOGINDISABLED) must not turn
into one either way, and the reason logged must say what happened.
"""
import pytest

from fakeserver import FakeServer, ScriptError, tls_server_context
from helpers import config, hosts, scaled, server

PW = "s3cret"


def fake_cfg(pki, fake, protocol, tls="none", extra="", host=None):
    return config(pki, server("fake", protocol, hosts(host or fake.host), fake.port, tls,
                              extra=extra), timeout=scaled(3), connect_timeout=scaled(1))


def tag_of(line):
    return line.split(b" ", 1)[0].decode()


def send_quietly(conn, data):
    try:
        conn.send(data)
    except OSError:
        pass


def starttls_pipelined(pki, post_caps, login_answer, after=None):
    """STARTTLS, then answer the pipelined CAPABILITY with post_caps and the LOGIN with
    login_answer (lines, {tag} replaced); after(conn) runs next, else the server closes."""
    ctx = tls_server_context(pki["server_cert"], pki["server_key"])

    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 STARTTLS] fake")
        line = conn.readline()
        if line is None or not line.upper().endswith(b"STARTTLS"):
            raise ScriptError("expected STARTTLS, got %r" % line)
        conn.line(tag_of(line) + " OK begin TLS")
        conn.start_tls(ctx)
        lines = conn.one_write()
        if len(lines) != 2 or b" LOGIN " not in lines[1]:
            raise ScriptError("expected CAPABILITY and LOGIN in one write, got %r" % lines)
        out = ["* CAPABILITY " + post_caps, tag_of(lines[0]) + " OK done"]
        out += [x.format(tag=tag_of(lines[1])) for x in login_answer]
        conn.send("".join(x + "\r\n" for x in out))
        if after is not None:
            after(conn)
        else:
            conn.close()
    return script


# ---- the pipelined LOGIN under LOGINDISABLED: its refusal is no verdict, in every form ----

@pytest.mark.parametrize("post_caps", ["IMAP4rev1 LOGINDISABLED AUTH=PLAIN",
                                       "IMAP4rev1 LOGINDISABLED"])
def test_pipelined_login_bye_under_logindisabled_is_no_refusal(pam, pki, post_caps):
    """The server lists LOGINDISABLED after TLS and answers the LOGIN it disabled with a BYE
    carrying a refusal code, then hangs up. A tagged NO there is no verdict (the server refused
    the command, not the password); the same refusal as a BYE must not become "wrong password"
    either (PAM_AUTH_ERR: the cache forgets the password, on_reject = stop ends the walk).
    Before the fix: PAM_AUTH_ERR."""
    with FakeServer(starttls_pipelined(
            pki, post_caps, ["* BYE [AUTHENTICATIONFAILED] LOGIN is disabled"])) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", tls="starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "LOGINDISABLED" in r.log_text(), r


@pytest.mark.parametrize("reply", ["{tag} NO [AUTHENTICATIONFAILED] LOGIN disabled here",
                                   "{tag} BAD LOGIN disabled here"])
def test_pipelined_login_refused_without_plain_says_the_password_went(pam, pki, reply):
    """LOGINDISABLED after TLS and no AUTH=PLAIN: the pipelined LOGIN's NO or BAD is no verdict
    (unavailable, as before), but the password did go out with it. The reason said "password
    not sent" and dropped the server's words before the fix."""
    def after(conn):
        conn.wait_closed()

    with FakeServer(starttls_pipelined(pki, "IMAP4rev1 LOGINDISABLED", [reply],
                                       after=after)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", tls="starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    text = r.log_text()
    assert "password not sent" not in text, r
    assert "LOGIN disabled here" in text and "LOGINDISABLED" in text, r
