"""Issue 8: hostile servers that try to get a "yes" without a verdict on the password, or to get
something credential-derived out where the config forbids it."""
import base64

import pytest

from fakeserver import FakeServer
from test_faults import PW, UTF8_PW, fake_cfg, never_sent


def b64_plain(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode("utf-8"))


# ---- a tagged reply where the client waits for "+" ----

@pytest.mark.parametrize("status", ["OK", "NO", "BAD"])
def test_imap_tagged_reply_instead_of_literal_continuation(pam, pki, status):
    """Without LITERAL+ a non-ASCII password goes as a synchronizing literal: the client sends
    `{n}` and waits for "+". A tagged reply there means the password was never sent: no status
    may count as a verdict (OK was a PAM_SUCCESS before the fix)."""
    seen = {}

    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1] fake")
        first = conn.readline()
        seen["first"] = first
        tag = first.split(b" ")[0].decode()
        conn.line("%s %s LOGIN completed" % (tag, status))
        conn.drain(1)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", UTF8_PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert seen["first"].endswith(b"{%d}" % len(UTF8_PW.encode()))
    assert "before the credentials were sent" in r.log_text(), r
    assert never_sent(fake, UTF8_PW)


def test_imap_literal_minus_sends_small_literal_at_once(pam, pki):
    """LITERAL- allows a non-synchronizing literal up to 4096 bytes: no "+" to forge."""
    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 LITERAL-] fake")
        first = conn.readline()
        tag = first.split(b" ")[0].decode()
        if conn.readline() == UTF8_PW.encode():
            conn.line(tag + " OK welcome")
        conn.drain(0.5)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", UTF8_PW)
    assert r.code == "PAM_SUCCESS", r
    assert b"{%d+}" % len(UTF8_PW.encode()) in fake.received


@pytest.mark.parametrize("status", ["OK", "NO"])
def test_imap_tagged_reply_instead_of_authenticate_continuation(pam, pki, status):
    """LOGINDISABLED, AUTH=PLAIN without SASL-IR: `AUTHENTICATE PLAIN` then wait for "+". A tagged
    OK there was a PAM_SUCCESS before the fix although the SASL response was never sent."""
    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN] fake")
        line = conn.readline()
        tag = line.split(b" ")[0].decode()
        conn.line("%s %s AUTHENTICATE completed" % (tag, status))
        conn.drain(1)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "before the credentials were sent" in r.log_text(), r
    assert b64_plain("alice", PW) not in fake.received
    assert never_sent(fake)
