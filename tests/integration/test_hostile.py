"""Issue 8: hostile servers, through real libpam.

- No "yes" without a verdict: a reply that the server sent before the client finished sending
  the credentials (a tagged OK where "+" was awaited, answers pipelined ahead of the command,
  a line begun before it) is never a success.
- The cleartext rule for every mechanism against a peer that is not on loopback (a network
  namespace): nothing credential-derived crosses the wire without TLS or allow_cleartext.
- Nothing of the password in any log line, whatever form the server echoes it in.
- Config that cannot be steered from the environment and says no to values it would round.
- Deadlines and caps that hold against a server that never stops sending.
- TLS peers that misbehave after the handshake; decisive replies split at every byte.

Every script here ends quietly when the client does what it should (hangs up), so a script error
always means the test is broken; finished() fails the test on any.
"""
import base64
import hashlib
import os
import shutil
import socket
import tempfile
import time

import pytest

import netns
import pamrun
from fakeserver import FakeServer, tag_of, tls_server_context
from helpers import (config, hosts, privileged_listener, scaled, server,
                     unprivileged_port_start)

PW = "s3cret"
UTF8_PW = "gr\u00fc\u00df-\u20ac"
# For the log scans: mostly ASCII, one non-ASCII letter, and no run of 4 of its characters that
# any message of the module could contain by chance.
ECHO_PW = "Qx7;kRz9#wP2-h\u00f6rse@mN5$tY8"
TS = "<1896.697170952@dbc.mtview.ca.us>"
TIMEOUT = 2.0


# ---- helpers ----

def cfg(pki, fake, protocol, tls="none", extra="", host=None, timeout=TIMEOUT, head="",
        cleartext=None):
    return config(pki, server("fake", protocol, hosts(host or fake.host), fake.port, tls,
                              extra=extra, cleartext=cleartext),
                  timeout=scaled(timeout), connect_timeout=scaled(1), head=head)


def b64_plain(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode("utf-8"))


def b64_password(password):
    return base64.b64encode(password.encode("utf-8"))


def apop_digest(timestamp, password):
    return hashlib.md5((timestamp + password).encode("utf-8")).hexdigest()


def never_sent(fake, password=PW):
    return password.encode("utf-8") not in fake.received


def finished(fake):
    """The script ran to its end: a failure there would mean the case tested nothing."""
    assert not fake.errors, fake.errors


def fragments(secret, k=4):
    """Every run of k characters of the secret that is ASCII (what an escaped log could show)."""
    return {secret[i:i + k] for i in range(len(secret) - k + 1)
            if all(ord(ch) < 128 for ch in secret[i:i + k])}


def assert_nothing_logged(r, *forms, k=4):
    """No log line holds any form, nor any k-character ASCII run of the first one (the password),
    nor, for the other forms, their first k characters (a cut echo)."""
    text = r.log_text()
    for form in forms:
        assert form not in text, (form, r)
    for frag in fragments(forms[0], k):
        assert frag not in text, (frag, r)
    for form in forms[1:]:
        assert form[:max(k, 8)] not in text, (form, r)


def send_quietly(conn, data):
    """For what the client may no longer read: a refused send is the client's right."""
    try:
        conn.send(data)
    except OSError:
        pass


def imap_greet(conn, caps="IMAP4rev1 LITERAL+ AUTH=PLAIN", extra=""):
    conn.send("* OK [CAPABILITY %s] fake\r\n%s" % (caps, extra))


def imap_accept_any_login(conn):
    """Answer the LOGIN (with a literal if one is announced) with OK; return the LOGIN line."""
    line = conn.readline(scaled(5))
    if line is None:
        return None
    if line.endswith(b"}") and not line.endswith(b"+}"):
        conn.line("+ go ahead")
        conn.readline(scaled(5))
    elif line.endswith(b"+}"):
        conn.readline(scaled(5))
    send_quietly(conn, tag_of(line) + " OK LOGIN completed\r\n")
    return line


# ---- a reply sent before the credentials went out is no verdict ----

@pytest.mark.parametrize("status", ["OK", "NO", "BAD"])
def test_imap_tagged_reply_instead_of_literal_continuation(pam, pki, status):
    """Without LITERAL+ a non-ASCII password goes as a synchronizing literal: the client sends
    `{n}` and waits for "+". A tagged reply there means the password was never sent: no status
    may count as a verdict (OK was a PAM_SUCCESS before the fix)."""
    seen = {}

    def script(conn):
        imap_greet(conn, "IMAP4rev1")
        first = conn.readline(scaled(5))
        seen["first"] = first
        conn.line("%s %s LOGIN completed" % (tag_of(first), status))
        conn.drain(scaled(1))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", UTF8_PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert seen["first"].endswith(b"{%d}" % len(UTF8_PW.encode()))
    assert "before the credentials were sent" in r.log_text(), r
    assert never_sent(fake, UTF8_PW)


def test_imap_literal_minus_sends_small_literal_at_once(pam, pki):
    """LITERAL- allows a non-synchronizing literal up to 4096 bytes: no "+" to forge."""
    def script(conn):
        imap_greet(conn, "IMAP4rev1 LITERAL-")
        first = conn.readline(scaled(5))
        if conn.readline(scaled(5)) == UTF8_PW.encode():
            conn.line(tag_of(first) + " OK welcome")
        conn.drain(scaled(0.5))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", UTF8_PW)
    finished(fake)
    assert r.code == "PAM_SUCCESS", r
    assert b"{%d+}" % len(UTF8_PW.encode()) in fake.received


@pytest.mark.parametrize("status", ["OK", "NO"])
def test_imap_tagged_reply_instead_of_authenticate_continuation(pam, pki, status):
    """LOGINDISABLED, AUTH=PLAIN without SASL-IR: `AUTHENTICATE PLAIN` then wait for "+". A tagged
    OK there was a PAM_SUCCESS before the fix although the SASL response was never sent."""
    def script(conn):
        imap_greet(conn, "IMAP4rev1 LOGINDISABLED AUTH=PLAIN")
        line = conn.readline(scaled(5))
        conn.line("%s %s AUTHENTICATE completed" % (tag_of(line), status))
        conn.drain(scaled(1))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "before the credentials were sent" in r.log_text(), r
    assert b64_plain("alice", PW) not in fake.received
    assert never_sent(fake)


def test_imap_login_answer_sent_with_the_greeting(pam, pki):
    """The tag of the LOGIN is predictable (A1 when the greeting lists the capabilities): a server
    that sends "A1 OK" in the same segment as its greeting answered before it had anything.
    PAM_SUCCESS before the fix."""
    def script(conn):
        imap_greet(conn, "IMAP4rev1 LITERAL+", "A1 OK LOGIN completed\r\n")
        conn.drain(scaled(1))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'server sent "A1 OK LOGIN completed" before LOGIN went out' in r.log_text(), r


def test_imap_every_answer_pipelined_ahead(pam, pki):
    """Capabilities and the LOGIN answer, all sent with the greeting, before any command: the
    first stale reply (to CAPABILITY) ends the dialogue, and the password is never sent.
    PAM_SUCCESS before the fix."""
    def script(conn):
        conn.send("* OK fake ready\r\n* CAPABILITY IMAP4rev1\r\nA1 OK done\r\n"
                  "A2 OK LOGIN completed\r\n")
        conn.drain(scaled(1))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "before CAPABILITY went out" in r.log_text(), r
    assert never_sent(fake)


def test_imap_continuation_and_ok_in_one_segment(pam, pki):
    """After `{n}` the server sends "+" and the tagged OK together: the OK left the server before
    the password did. PAM_SUCCESS before the fix."""
    def script(conn):
        imap_greet(conn, "IMAP4rev1")
        first = conn.readline(scaled(5))
        conn.send("+ go ahead\r\n%s OK LOGIN completed\r\n" % tag_of(first))
        conn.drain(scaled(1))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", UTF8_PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "before LOGIN went out" in r.log_text(), r


def test_imap_authenticate_continuation_and_ok_in_one_segment(pam, pki):
    """The same for AUTHENTICATE PLAIN without SASL-IR. PAM_SUCCESS before the fix."""
    def script(conn):
        imap_greet(conn, "IMAP4rev1 LOGINDISABLED AUTH=PLAIN")
        line = conn.readline(scaled(5))
        conn.send("+ \r\n%s OK AUTHENTICATE completed\r\n" % tag_of(line))
        conn.drain(scaled(1))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "before AUTHENTICATE went out" in r.log_text(), r


def test_imap_continuation_sent_ahead_for_the_password_literal(pam, pki):
    """A "+" sent with the greeting, before the client announced its literal: following it would
    send the password to a server that never asked. Before the fix the password went out and
    the server's OK made a PAM_SUCCESS."""
    def script(conn):
        imap_greet(conn, "IMAP4rev1", "+ go ahead\r\n")
        first = conn.readline(scaled(5))
        if first is not None and conn.readline(scaled(1)) is not None:
            conn.line(tag_of(first) + " OK LOGIN completed")
        conn.drain(scaled(0.5))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", UTF8_PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'server sent "+ go ahead" before LOGIN went out' in r.log_text(), r
    assert never_sent(fake, UTF8_PW)


def test_imap_continuation_sent_ahead_for_the_user_literal(pam, pki):
    """A non-ASCII user name goes as a literal too; a "+" sent before it was announced is no
    answer either, and nothing more is sent. Before the fix the client followed it and the rest
    of the LOGIN, password included, went out."""
    user = "j\u00fcrgen"

    def script(conn):
        imap_greet(conn, "IMAP4rev1", "+ go ahead\r\n")
        first = conn.readline(scaled(5))
        if first is not None and conn.readline(scaled(1)) is not None:
            conn.line(tag_of(first) + " OK LOGIN completed")
        conn.drain(scaled(0.5))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "imap"), user, PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "before LOGIN went out" in r.log_text(), r
    assert fake.received == b"A1 LOGIN {%d}\r\n" % len(user.encode())


def test_imap_reply_begun_before_the_command(pam, pki):
    """The greeting's segment ends with "A1 O"; the rest comes after LOGIN: the line began before
    the command went out, so it is no reply to it. PAM_SUCCESS before the fix."""
    def script(conn):
        imap_greet(conn, "IMAP4rev1 LITERAL+", "A1 O")
        if conn.readline(scaled(5)) is not None:
            conn.send("K LOGIN completed\r\n")
        conn.drain(scaled(1))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'server sent "A1 OK LOGIN completed" before LOGIN went out' in r.log_text(), r


def test_imap_unsolicited_untagged_data_is_still_read(pam, pki):
    """Untagged data may come at any time: sent ahead, it is read and skipped, and the real
    answer still decides (the stale rule must not refuse what the protocol allows)."""
    def script(conn):
        imap_greet(conn, "IMAP4rev1 LITERAL+", "* OK [ALERT] maintenance tonight\r\n"
                   "* 1 FETCH (BODY {9}\r\nA1 OK no!)\r\n")
        imap_accept_any_login(conn)
        conn.drain(scaled(0.5))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", PW)
    finished(fake)
    assert r.code == "PAM_SUCCESS", r


def test_pop3_answers_pipelined_with_the_greeting(pam, pki):
    """Answers for USER and PASS sent with the greeting: the USER answer is stale, the dialogue
    stops there, PASS is never sent. PAM_SUCCESS before the fix."""
    def script(conn):
        conn.send("+OK ready\r\n+OK\r\n+OK logged in\r\n")
        conn.drain(scaled(1))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "pop3"), "alice", PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'server sent "+OK" before USER went out' in r.log_text(), r
    assert never_sent(fake)


def test_pop3_pass_answer_sent_with_the_user_answer(pam, pki):
    """"+OK" to USER and "+OK logged in" in one segment: the second left before PASS arrived.
    PAM_SUCCESS before the fix."""
    def script(conn):
        conn.line("+OK ready")
        if conn.readline(scaled(5)) is not None:
            conn.send("+OK\r\n+OK logged in\r\n")
        conn.drain(scaled(1))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "pop3"), "alice", PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'server sent "+OK logged in" before PASS went out' in r.log_text(), r


def test_pop3_apop_answer_sent_with_the_greeting(pam, pki):
    """The APOP timestamp and "+OK" for the APOP in one segment. PAM_SUCCESS before the fix."""
    def script(conn):
        conn.send("+OK ready %s\r\n+OK maildrop ready\r\n" % TS)
        conn.drain(scaled(1))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "pop3"), "alice", PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'server sent "+OK maildrop ready" before APOP went out' in r.log_text(), r


def test_pop3_auth_plain_answer_pipelined_with_capa(pam, pki):
    """USER refused, CAPA offers SASL PLAIN, and "+OK" for the AUTH comes with the CAPA list.
    PAM_SUCCESS before the fix."""
    def script(conn):
        conn.line("+OK ready")
        conn.expect("USER")
        conn.line("-ERR USER not supported")
        conn.expect("CAPA")
        conn.send("+OK\r\nSASL PLAIN\r\n.\r\n+OK welcome\r\n")
        conn.drain(scaled(1))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "pop3"), "alice", PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'server sent "+OK welcome" before AUTH PLAIN went out' in r.log_text(), r


def test_pop3_no_password_after_the_server_hung_up(pam, pki):
    """The server half-closes after "+OK" to USER: nothing it could say would come, so the
    password must not be sent (before the fix PASS went out into the closed connection)."""
    def script(conn):
        conn.line("+OK ready")
        conn.expect("USER")
        # Corked: "+OK" and the FIN leave in one segment, so the client sees both at once.
        conn.sock.send(b"+OK\r\n", socket.MSG_MORE)
        conn.sock.shutdown(socket.SHUT_WR)
        conn.drain(scaled(1))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "pop3"), "alice", PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "connection closed by the server" in r.log_text(), r
    assert never_sent(fake)
    assert "(credentials not sent)" in r.log_text(), r


# ---- the cleartext rule against a peer that is not on loopback ----

@pytest.fixture(scope="module")
def remote():
    """A network namespace with a veth pair: the fake server's address is not loopback. Without
    the right to make one the cases fail (loudly), never pass or skip."""
    ok, why = netns.available()
    if not ok:
        pytest.fail("the cleartext rule needs a peer that is not on loopback: %s" % why)
    with netns.NetNs() as ns:
        yield ns


def _imap_login_script(caps, literal):
    def script(conn):
        imap_greet(conn, caps)
        line = conn.readline(scaled(5))
        if line is None:
            return
        if literal:
            conn.line("+ go ahead")
            if conn.readline(scaled(5)) is None:
                return
        conn.line(tag_of(line) + " OK LOGIN completed")
        conn.drain(scaled(0.5))
    return script


def _imap_authenticate_script(sasl_ir):
    def script(conn):
        imap_greet(conn, "IMAP4rev1 LOGINDISABLED AUTH=PLAIN" + (" SASL-IR" if sasl_ir else ""))
        line = conn.readline(scaled(5))
        if line is None:
            return
        if not sasl_ir:
            conn.line("+ ")
            if conn.readline(scaled(5)) is None:
                return
        conn.line(tag_of(line) + " OK AUTHENTICATE completed")
        conn.drain(scaled(0.5))
    return script


def _pop3_script(greeting, steps):
    def script(conn):
        conn.line(greeting)
        for prefix, reply in steps:
            line = conn.readline(scaled(5))
            if line is None:
                return
            assert line.upper().startswith(prefix.encode()), (prefix, line)
            conn.send(reply + "\r\n")
        conn.drain(scaled(0.5))
    return script


MECHANISMS = {
    # name: (protocol, password, script, credential forms on the wire, extra config)
    "imap-login-quoted": ("imap", PW, _imap_login_script("IMAP4rev1", False),
                          lambda: [PW.encode()], ""),
    "imap-login-literal": ("imap", UTF8_PW, _imap_login_script("IMAP4rev1", True),
                           lambda: [UTF8_PW.encode()], ""),
    "imap-authenticate-sasl-ir": ("imap", PW, _imap_authenticate_script(True),
                                  lambda: [b64_plain("alice", PW)], ""),
    "imap-authenticate": ("imap", PW, _imap_authenticate_script(False),
                          lambda: [b64_plain("alice", PW)], ""),
    "pop3-user-pass": ("pop3", PW, _pop3_script("+OK ready", [("USER", "+OK"), ("PASS", "+OK")]),
                       lambda: [PW.encode()], ""),
    "pop3-apop": ("pop3", PW, _pop3_script("+OK ready " + TS, [("APOP", "+OK maildrop")]),
                  lambda: [apop_digest(TS, PW).encode()], ""),
    "pop3-apop-only": ("pop3", PW, _pop3_script("+OK ready " + TS, [("APOP", "+OK maildrop")]),
                       lambda: [apop_digest(TS, PW).encode()], "  apop = only\n"),
    "pop3-auth-plain": ("pop3", PW, _pop3_script("+OK ready", [
        ("USER", "-ERR USER not supported"), ("CAPA", "+OK\r\nSASL PLAIN\r\n."),
        ("AUTH PLAIN", "+OK welcome")]), lambda: [b64_plain("alice", PW)], ""),
}


def _secret_forms(password):
    return [password.encode("utf-8"), b64_plain("alice", password).rstrip(b"="),
            b64_password(password).rstrip(b"="), apop_digest(TS, password).encode()]


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
def test_cleartext_refused_to_a_remote_peer(pam, pki, remote, mechanism):
    """tls = none to an address off loopback, no allow_cleartext: nothing credential-derived
    leaves (not even the user name: the login does not start), the outcome is unavailable with
    the reason, and the walk records that no credentials were sent."""
    protocol, password, script, _, extra = MECHANISMS[mechanism]
    with FakeServer(script, sock=remote.listen()) as fake:
        r = pam.run(cfg(pki, fake, protocol, extra=extra, cleartext=False), "alice", password)
    finished(fake)
    assert fake.host == remote.inner and not fake.host.startswith("127.")
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "refusing to send credentials in clear to %s:%d" % (remote.inner, fake.port) \
        in r.log_text(), r
    assert "(credentials not sent)" in r.log_text(), r
    for form in _secret_forms(password):
        assert form not in fake.received, (form, fake.received)
    assert b"alice" not in fake.received, fake.received


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
def test_cleartext_allowed_to_a_remote_peer(pam, pki, remote, mechanism):
    """The same peer with allow_cleartext = true: the mechanism runs and its credentials go out
    (so the refusal above is the rule, not a broken mechanism)."""
    protocol, password, script, on_wire, extra = MECHANISMS[mechanism]
    with FakeServer(script, sock=remote.listen()) as fake:
        r = pam.run(cfg(pki, fake, protocol, extra=extra + "  allow_cleartext = true\n"),
                    "alice", password)
    finished(fake)
    assert r.code == "PAM_SUCCESS", r
    assert "(credentials sent)" in r.log_text(), r
    for form in on_wire():
        assert form in fake.received, (form, fake.received)


@pytest.mark.parametrize("mechanism", sorted(MECHANISMS))
def test_cleartext_refused_to_a_high_loopback_port(pam, pki, mechanism):
    """Issue 17, section 5: tls = none to a loopback address on an unprivileged port, where any
    local user may listen while the real service is down, collect passwords and answer "+OK".
    Without allow_cleartext nothing is sent (not even the user name) and the reason names the
    rule. Before the fix any loopback peer got the password in clear."""
    protocol, password, script, _, extra = MECHANISMS[mechanism]
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, protocol, extra=extra, cleartext=False), "alice", password)
    finished(fake)
    limit = unprivileged_port_start()
    assert fake.host.startswith("127.") and fake.port >= limit, (fake.host, fake.port, limit)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert ("loopback port %d is not privileged (ip_unprivileged_port_start is %d)"
            % (fake.port, limit)) in r.log_text(), r
    assert "(credentials not sent)" in r.log_text(), r
    assert fake.received == b"", fake.received


def test_cleartext_allowed_to_a_privileged_loopback_port(pam, pki):
    """The exemption itself: a loopback port below ip_unprivileged_port_start, which only root
    can listen on, gets the password in clear without allow_cleartext."""
    limit = unprivileged_port_start()
    sock = privileged_listener()
    protocol, password, script, on_wire, extra = MECHANISMS["pop3-user-pass"]
    with FakeServer(script, sock=sock) as fake:
        r = pam.run(cfg(pki, fake, protocol, extra=extra, cleartext=False), "alice", password)
    finished(fake)
    assert fake.port < limit, (fake.port, limit)
    assert r.code == "PAM_SUCCESS", r
    for form in on_wire():
        assert form in fake.received, (form, fake.received)


def test_cleartext_rule_holds_for_a_second_remote_server(pam, pki, remote):
    """A first server that refuses, a second on the same remote peer: the rule is checked on
    every connection, not once per login."""
    def refuse(conn):
        conn.line("+OK ready")
        conn.drain(scaled(1))
    with FakeServer(refuse, sock=remote.listen()) as a, \
            FakeServer(refuse, sock=remote.listen()) as b:
        text = config(pki, server("a", "pop3", hosts(a.host), a.port, "none", cleartext=False),
                      server("b", "pop3", hosts(b.host), b.port, "none", cleartext=False),
                      timeout=scaled(TIMEOUT), connect_timeout=scaled(1))
        r = pam.run(text, "alice", PW)
    finished(a)
    finished(b)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert r.log_text().count("refusing to send credentials in clear") >= 2, r
    assert a.received == b"" and b.received == b""


# ---- nothing of the password in any log line ----

def _echo_imap(reply_for):
    def script(conn):
        imap_greet(conn, "IMAP4rev1 LITERAL+")
        line = conn.readline(scaled(5))
        if line is None:
            return
        if line.endswith(b"+}"):
            conn.readline(scaled(5))
        conn.send(reply_for(tag_of(line)) + "\r\n")
        conn.drain(scaled(0.5))
    return script


def test_echo_of_a_utf8_password_is_redacted(pam, pki):
    """A UTF-8 password echoed raw: the old order (escape, then look for the password) found
    nothing and logged every ASCII run of it."""
    with FakeServer(_echo_imap(lambda t: "%s NO [AUTHENTICATIONFAILED] you sent %s" %
                               (t, ECHO_PW))) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", ECHO_PW)
    finished(fake)
    assert r.code == "PAM_AUTH_ERR", r
    assert_nothing_logged(r, ECHO_PW)
    assert "you sent <redacted>" in r.log_text(), r


@pytest.mark.parametrize("shift", [1, 3, 8])
def test_echo_cut_at_the_excerpt_limit_is_redacted(pam, pki, shift):
    """The password straddles byte 120 of the quoted text: the old excerpt kept its first bytes
    and the search for the whole password found nothing."""
    password = "Zk4#vQ9-pL2w"
    prefix = "[AUTHENTICATIONFAILED] " + "x" * (120 - 23 - shift)

    with FakeServer(_echo_imap(lambda t: "%s NO %s%s tail" % (t, prefix, password))) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", password)
    finished(fake)
    assert r.code == "PAM_AUTH_ERR", r
    assert_nothing_logged(r, password, k=3)


def test_echo_of_a_password_longer_than_the_excerpt_is_redacted(pam, pki):
    """A 200-byte password echoed whole: the old excerpt kept its first 90-odd bytes, and the
    search for the whole password in them found nothing."""
    password = base64.b64encode(hashlib.sha512(b"long").digest() * 3).decode()[:200]
    with FakeServer(_echo_imap(lambda t: "%s NO [AUTHENTICATIONFAILED] you sent %s" %
                               (t, password))) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", password)
    finished(fake)
    assert r.code == "PAM_AUTH_ERR", r
    assert_nothing_logged(r, password, k=8)
    assert "you sent <redacted>" in r.log_text(), r


def test_echo_cut_by_the_server_is_redacted(pam, pki):
    """The server cut its own echo: the text ends with a prefix of the password."""
    with FakeServer(_echo_imap(lambda t: "%s NO you sent %s" % (t, ECHO_PW[:9]))) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", ECHO_PW)
    finished(fake)
    assert r.code == "PAM_AUTH_ERR", r
    assert_nothing_logged(r, ECHO_PW)


@pytest.mark.parametrize("padded", [True, False])
def test_echo_of_the_sasl_blob_is_redacted(pam, pki, padded):
    """AUTHENTICATE PLAIN, and the server quotes the base64 response back (padded or not)."""
    blob = b64_plain("alice", ECHO_PW).decode()
    shown = blob if padded else blob.rstrip("=")

    def script(conn):
        imap_greet(conn, "IMAP4rev1 LOGINDISABLED AUTH=PLAIN SASL-IR")
        line = conn.readline(scaled(5))
        if line is not None:
            conn.line("%s NO [AUTHENTICATIONFAILED] invalid response %s" % (tag_of(line), shown))
        conn.drain(scaled(0.5))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", ECHO_PW)
    finished(fake)
    assert r.code == "PAM_AUTH_ERR", r
    assert_nothing_logged(r, ECHO_PW, blob.rstrip("="))


def test_echo_of_the_base64_password_is_redacted(pam, pki):
    b64 = b64_password(ECHO_PW).decode()
    steps = [("USER", "+OK"), ("PASS", "-ERR [AUTH] bad password (%s)" % b64)]
    with FakeServer(_pop3_script("+OK ready", steps)) as fake:
        r = pam.run(cfg(pki, fake, "pop3"), "alice", ECHO_PW)
    finished(fake)
    assert r.code == "PAM_AUTH_ERR", r
    assert_nothing_logged(r, ECHO_PW, b64.rstrip("="))


@pytest.mark.parametrize("upper", [False, True])
def test_echo_of_the_apop_digest_is_redacted(pam, pki, upper):
    """The APOP digest is a credential (crackable offline): a server quoting it back must not put
    it in the log, in either case of hex digits."""
    digest = apop_digest(TS, ECHO_PW)
    shown = digest.upper() if upper else digest
    steps = [("APOP", "-ERR [AUTH] digest %s does not match" % shown)]
    with FakeServer(_pop3_script("+OK ready " + TS, steps)) as fake:
        r = pam.run(cfg(pki, fake, "pop3", extra="  apop = only\n"), "alice", ECHO_PW)
    finished(fake)
    assert r.code == "PAM_AUTH_ERR", r
    assert digest not in r.log_text().lower(), r
    assert_nothing_logged(r, ECHO_PW)


# Issue 17, section 3: passwords with the bytes every wire form transforms (IMAP quoting escapes
# '"' and '\\'; '{' and '}' frame a literal's length; a trailing space), ASCII (an IMAP quoted
# string) and UTF-8 (a literal).
SPECIAL_PASSWORDS = ['Tr0ub4dor"&3\\horse{x} ', 'gr\u00fc"\\{\u00df}-\u20ac ']


def imap_escaped(password):
    return password.replace("\\", "\\\\").replace('"', '\\"')


def _echo_everything_imap(caps):
    """Refuse the login command, quoting back every line it took (continuations included)."""
    def script(conn):
        imap_greet(conn, caps)
        line = conn.readline(scaled(5))
        if line is None:
            return
        got = [line]
        while line.endswith(b"}") or line.endswith(b" PLAIN"):
            if line.endswith(b" PLAIN"):
                conn.line("+ ")
            elif not line.endswith(b"+}"):
                conn.line("+ go ahead")
            line = conn.readline(scaled(5))
            if line is None:
                return
            got.append(line)
        conn.line(tag_of(got[0]) + " NO [AUTHENTICATIONFAILED] you sent: " +
                  " ".join(x.decode("utf-8", "replace") for x in got))
        conn.drain(scaled(0.5))
    return script


def _echo_everything_pop3(greeting, refuse_user=False):
    """Refuse the credentials, quoting back the command that carried them."""
    def script(conn):
        conn.line(greeting)
        while True:
            line = conn.readline(scaled(5))
            if line is None:
                return
            text = line.decode("utf-8", "replace")
            if line.startswith(b"USER "):
                conn.line("-ERR [AUTH] no USER here" if refuse_user else "+OK")
            elif line.startswith(b"CAPA"):
                conn.send("+OK\r\nSASL PLAIN\r\n.\r\n")
            elif line.startswith(b"QUIT"):
                conn.line("+OK bye")
                return
            else:
                conn.line("-ERR [AUTH] you sent: " + text)
    return script


ECHO_MECHANISMS = {
    # ASCII: a quoted string with escapes; UTF-8: a synchronizing literal
    "imap-login": ("imap", _echo_everything_imap("IMAP4rev1"), ""),
    "imap-login-literal-plus": ("imap", _echo_everything_imap("IMAP4rev1 LITERAL+"), ""),
    "imap-authenticate": ("imap", _echo_everything_imap("IMAP4rev1 LOGINDISABLED AUTH=PLAIN"), ""),
    "imap-authenticate-sasl-ir": ("imap", _echo_everything_imap(
        "IMAP4rev1 LOGINDISABLED AUTH=PLAIN SASL-IR"), ""),
    "pop3-user-pass": ("pop3", _echo_everything_pop3("+OK ready"), ""),
    "pop3-apop": ("pop3", _echo_everything_pop3("+OK ready " + TS), "  apop = only\n"),
    "pop3-apop-then-user-pass": ("pop3", _echo_everything_pop3("+OK ready " + TS), ""),
    "pop3-auth-plain": ("pop3", _echo_everything_pop3("+OK ready", refuse_user=True), ""),
}


@pytest.mark.parametrize("password", SPECIAL_PASSWORDS, ids=["ascii", "utf8"])
@pytest.mark.parametrize("mechanism", sorted(ECHO_MECHANISMS))
def test_echo_of_every_wire_form_is_redacted(pam, pki, mechanism, password):
    """A server that quotes back the command carrying the credentials: no form the password took
    on the wire reaches a log line (the LOG_NOTICE result line included), whatever the mechanism
    made of it. Before the fix the IMAP quoted string's escaped form (Tr0ub4dor\\"&3\\\\horse)
    was logged: only the raw password and fixed encodings were redacted."""
    protocol, script, extra = ECHO_MECHANISMS[mechanism]
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, protocol, extra=extra), "alice", password)
    finished(fake)
    assert r.code == "PAM_AUTH_ERR", r
    assert "you sent" in r.log_text(), r          # the echo was logged, redacted
    forms = [password, imap_escaped(password), b64_plain("alice", password).decode().rstrip("="),
             b64_password(password).decode().rstrip("="), apop_digest(TS, password)]
    assert_nothing_logged(r, *forms)
    text = r.log_text()
    for form in forms:          # nor the form without its trailing space (a trimmed echo)
        assert form.rstrip(" ") not in text, (form, r)


@pytest.mark.parametrize("caps", ["IMAP4rev1", "IMAP4rev1 LITERAL+"])
def test_password_literal_length_is_not_in_the_debug_trace(pam, pki, caps):
    """The length a literal announces for the password is credential-derived (the cleartext rule
    counts it): the debug trace of the LOGIN must not show it, synchronizing or not. The user
    name's literal may show its length."""
    user = "j\u00fcrgen"
    n = len(UTF8_PW.encode("utf-8"))

    def script(conn):
        imap_greet(conn, caps)
        line = conn.readline(scaled(5))
        if line is None:
            return
        if not line.endswith(b"+}"):
            conn.line("+ go ahead")
            line = conn.readline(scaled(5))
            if line is None:
                return
        if not line.endswith(b"+}"):
            conn.line("+ go ahead")
        conn.readline(scaled(5))
        conn.line("A1 NO [AUTHENTICATIONFAILED] no")
        conn.drain(scaled(0.5))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "imap"), user, UTF8_PW)
    finished(fake)
    assert r.code == "PAM_AUTH_ERR", r
    assert b"{%d" % n in fake.received          # the literal was announced on the wire
    assert "{%d" % len(user.encode("utf-8")) in r.log_text(), r   # the trace ran
    assert "{%d}" % n not in r.log_text() and "{%d+}" % n not in r.log_text(), r


def test_bye_echo_is_redacted(pam, pki):
    """An untagged BYE quoting the password, then the connection closes: the BYE text becomes the
    reason."""
    def script(conn):
        imap_greet(conn, "IMAP4rev1 LITERAL+")
        line = conn.readline(scaled(5))
        if line is not None and line.endswith(b"+}"):
            conn.readline(scaled(5))
        send_quietly(conn, "* BYE wrong password %s, go away\r\n" % ECHO_PW)
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", ECHO_PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'server said BYE: "wrong password <redacted>, go away"' in r.log_text(), r
    assert_nothing_logged(r, ECHO_PW)


# ---- config that cannot be steered from outside ----

def _bare_listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    return s


def _nobody_connected(sock):
    """No connection reached the listener: pamtester has exited, so any connect it made has
    completed and would sit in the accept queue. Cannot race."""
    sock.setblocking(False)
    try:
        c, _ = sock.accept()
    except BlockingIOError:
        return True
    c.close()
    return False


def test_config_environment_reference_is_refused(pam, pki):
    """host = "${VAR}" would be taken from the environment of the program calling PAM (su's
    caller sets it). Before the fix libconfuse expanded it and the module connected where the
    caller said."""
    with _bare_listener() as lsock:
        port = lsock.getsockname()[1]
        text = config(pki, server("x", "imap", '"${MAILAUTH_PICKED_HOST}"', port, "none"),
                      timeout=scaled(1), connect_timeout=scaled(1))
        r = pam.run(text, "alice", PW, env={"MAILAUTH_PICKED_HOST": "127.0.0.1"})
        assert _nobody_connected(lsock)
    assert r.code == "PAM_SERVICE_ERR", r
    assert 't.conf:8: "${" is not allowed' in r.log_text(), r


def test_config_timeout_that_would_round_to_zero_is_refused(pam, pki):
    text = "timeout = 0.0001\n" + server("x", "imap", hosts("127.0.0.1"), 143)
    r = pam.run(text, "alice", PW)
    assert r.code == "PAM_SERVICE_ERR", r
    assert "t.conf:1: timeout = 0.0001 is not a whole number of milliseconds" in r.log_text(), r


def test_append_domain_never_cuts_a_user_name(pam, pki):
    """245 + len("@example.org") = 257 bytes: refused. Before the fix the name was cut to 255
    bytes ("...@example.o"), a different account, and sent to the server, which said yes."""
    user = "u" * 245
    with FakeServer(lambda conn: (imap_greet(conn), imap_accept_any_login(conn),
                                  conn.drain(scaled(0.5)))) as fake:
        r = pam.run(cfg(pki, fake, "imap", head='user {\n  append_domain = "example.org"\n}\n'),
                    user, PW)
    finished(fake)
    assert r.code == "PAM_AUTH_ERR", r
    assert "user name longer than 255 bytes after append_domain" in r.log_text(), r
    assert fake.received == b""


# ---- deadlines and caps against a server that never stops ----

def _flood(conn, first, chunk, seconds):
    """Send first, then chunk again and again until the client hangs up or seconds pass."""
    end = time.monotonic() + seconds
    conn.sock.settimeout(scaled(5))
    try:
        conn.send(first)
        while time.monotonic() < end:
            conn.send(chunk)
    except OSError:
        pass


def test_imap_endless_chain_of_literals(pam, pki):
    """Each literal's line announces the next: before the fix the client followed the chain for
    as long as the server kept the socket readable, deadline or not."""
    def script(conn):
        imap_greet(conn, "IMAP4rev1 LITERAL+")
        if conn.readline(scaled(5)) is not None:
            _flood(conn, "* 1 FETCH (BODY {8}\r\n", "12345678 {8}\r\n" * 512, scaled(30))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", PW, timeout=scaled(60))
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "literals" in r.log_text(), r
    assert r.elapsed < scaled(TIMEOUT) + scaled(1), r


def test_imap_endless_untagged_lines(pam, pki):
    """A flood of untagged lines ends at the per-command cap (or the deadline), never later."""
    def script(conn):
        imap_greet(conn, "IMAP4rev1 LITERAL+")
        if conn.readline(scaled(5)) is not None:
            _flood(conn, "", "* OK still thinking\r\n" * 256, scaled(30))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "imap"), "alice", PW, timeout=scaled(60))
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert r.elapsed < scaled(TIMEOUT) + scaled(1), r


def test_pop3_endless_capa(pam, pki):
    def script(conn):
        conn.line("+OK ready")
        conn.expect("USER")
        conn.line("-ERR no USER here")
        conn.expect("CAPA")
        _flood(conn, "+OK\r\n", "X-FILLER\r\n" * 256, scaled(30))
    with FakeServer(script) as fake:
        r = pam.run(cfg(pki, fake, "pop3"), "alice", PW, timeout=scaled(60))
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "CAPA reply longer than" in r.log_text(), r
    assert never_sent(fake)


# ---- TLS peers that misbehave after the handshake ----

def _tls(pki):
    return tls_server_context(pki["server_cert"], pki["server_key"])


def _raw_fd(conn):
    return conn.sock.fileno()


def test_tls_close_without_close_notify_mid_reply(pam, pki):
    """Half a tagged OK, then the TCP connection closes with no TLS close_notify (a truncation
    attack): never a success."""
    def script(conn):
        imap_greet(conn, "IMAP4rev1 LITERAL+")
        line = conn.readline(scaled(5))
        if line is not None:
            conn.send(tag_of(line) + " OK LOG")
        conn.sock.close()   # Python closes a TLS socket without close_notify
    with FakeServer(script, tls_context=_tls(pki)) as fake:
        r = pam.run(cfg(pki, fake, "imap", "implicit", host="localhost"), "alice", PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r


def test_tls_garbage_record_after_the_handshake(pam, pki):
    """An application-data record that does not decrypt, where the LOGIN answer should be."""
    def script(conn):
        imap_greet(conn, "IMAP4rev1 LITERAL+")
        if conn.readline(scaled(5)) is not None:
            os.write(_raw_fd(conn), b"\x17\x03\x03\x00\x20" + os.urandom(32))
        conn.drain(scaled(1))
    with FakeServer(script, tls_context=_tls(pki)) as fake:
        r = pam.run(cfg(pki, fake, "imap", "implicit", host="localhost"), "alice", PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "TLS read failed" in r.log_text(), r


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_tls_plaintext_answer_after_the_handshake(pam, pki, protocol):
    """The answer written in clear on the TLS connection (an injection by someone who cannot
    speak TLS): never a verdict."""
    def script(conn):
        if protocol == "imap":
            imap_greet(conn, "IMAP4rev1 LITERAL+")
            line = conn.readline(scaled(5))
            answer = (tag_of(line) if line else "A1") + " OK LOGIN completed\r\n"
        else:
            conn.line("+OK ready")
            conn.expect("USER")
            conn.line("+OK")
            conn.expect("PASS")
            answer = "+OK logged in\r\n"
        os.write(_raw_fd(conn), answer.encode())
        conn.drain(scaled(1))
    with FakeServer(script, tls_context=_tls(pki)) as fake:
        r = pam.run(cfg(pki, fake, protocol, "implicit", host="localhost"), "alice", PW)
    finished(fake)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "TLS read failed" in r.log_text(), r


def test_tls_answer_split_into_one_record_per_byte(pam, pki):
    """One TLS record per byte of the decisive reply: the outcome is the same."""
    def script(conn):
        imap_greet(conn, "IMAP4rev1 LITERAL+")
        line = conn.readline(scaled(5))
        if line is not None:
            for b in (tag_of(line) + " NO [AUTHENTICATIONFAILED] no\r\n").encode():
                conn.send(bytes([b]))
        conn.drain(scaled(0.5))
    with FakeServer(script, tls_context=_tls(pki)) as fake:
        r = pam.run(cfg(pki, fake, "imap", "implicit", host="localhost"), "alice", PW)
    finished(fake)
    assert r.code == "PAM_AUTH_ERR", r


# ---- decisive replies split at every byte ----

SPLIT_CASES = {
    # name: (protocol, reply after the credentials, PAM outcome)
    "imap-ok": ("imap", "{tag} OK in\r\n", "PAM_SUCCESS"),
    "imap-no": ("imap", "{tag} NO no\r\n", "PAM_AUTH_ERR"),
    "pop3-ok": ("pop3", "+OK in\r\n", "PAM_SUCCESS"),
    "pop3-err": ("pop3", "-ERR no\r\n", "PAM_AUTH_ERR"),
}


def _split_script(protocol, reply, points):
    """Send the decisive reply in pieces cut at the given points, each piece its own segment."""
    def script(conn):
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if protocol == "imap":
            imap_greet(conn, "IMAP4rev1 LITERAL+")
            line = conn.readline(scaled(5))
            if line is None:
                return
            data = reply.format(tag=tag_of(line)).encode()
        else:
            conn.line("+OK ready")
            conn.expect("USER")
            conn.line("+OK")
            conn.expect("PASS")
            data = reply.encode()
        last = 0
        for p in list(points) + [len(data)]:
            send_quietly(conn, data[last:p])
            last = p
            time.sleep(scaled(0.01))
        conn.drain(scaled(0.5))
    return script


def _split_params():
    for name, (protocol, reply, _) in sorted(SPLIT_CASES.items()):
        n = len(reply.format(tag="A1"))
        for i in range(1, n):
            yield pytest.param(name, [i], id="%s-at-%d" % (name, i))
        yield pytest.param(name, list(range(1, n)), id="%s-every-byte" % name)


@pytest.mark.parametrize("name,points", list(_split_params()))
def test_decisive_reply_split(pam, pki, name, points):
    protocol, reply, outcome = SPLIT_CASES[name]
    with FakeServer(_split_script(protocol, reply, points)) as fake:
        r = pam.run(cfg(pki, fake, protocol), "alice", PW)
    finished(fake)
    assert r.code == outcome, r


# ---- the config owner rule, as README and pam_mailauth.conf(5) state it ----

@pytest.mark.parametrize("owner,accepted", [("root", True), ("self", True), ("other", False)])
def test_config_owner_rule(pam, pki, tmp_path, owner, accepted):
    """Owned by root or by the effective user of the process that loads the module, nothing else:
    run as uid 65534 (nobody) through setpriv, with the file owned by root, by 65534, or by 1
    (daemon)."""
    if os.geteuid() != 0:
        pytest.fail("the owner rule needs root to give the file an owner and to drop to nobody")
    uid = {"root": 0, "self": 65534, "other": 1}[owner]
    # pytest's own temp tree is private to root: nobody needs a directory it can traverse.
    work = tempfile.mkdtemp(prefix="mailauth-owner-")
    os.chmod(work, 0o755)
    try:
        runner = pamrun.PamRunner(pam.module, work, preload=pam.preload,
                                  wrapper=["sh", "-c",
                                           'chmod 755 "$PAM_WRAPPER_SERVICE_DIR" && exec "$@"',
                                           "sh", "setpriv", "--reuid=65534", "--regid=65534",
                                           "--clear-groups"] + pam.wrapper)
        with FakeServer(lambda conn: (imap_greet(conn), imap_accept_any_login(conn),
                                      conn.drain(scaled(0.5)))) as fake:
            path = runner.write_config(cfg(pki, fake, "imap"))
            os.chown(path, uid, 0)
            r = runner.run(None, "alice", PW, config_path=path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    finished(fake)
    if accepted:
        assert r.code == "PAM_SUCCESS", r
    else:
        assert r.code == "PAM_SERVICE_ERR", r
        assert "owned by uid 1; must be owned by root or by the effective user (uid 65534)" \
            in r.log_text(), r
        assert fake.received == b""
