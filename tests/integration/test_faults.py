"""Issue 3: hostile and faulty servers. No case may yield PAM_SUCCESS unless the server really
accepted the credentials; where it matters, the password must never have been sent.

Every script raises when the client does not do what it expects (FakeServer raises it again at
the end of the test), so a case expecting "unavailable" cannot pass because the script gave up
before sending the reply under test; cases also assert the reason the module logged."""
import base64
import os
import re
import socket
import ssl
import subprocess
import time

import pamrun
import pytest

from fakeserver import FakeServer, ScriptError, tls_server_context
from helpers import config, hosts, scaled, server

PW = "s3cret"
CAPS = "IMAP4rev1 LITERAL+ AUTH=PLAIN"
# The per-server timeout of the deadline tests: short, and not scaled, because what they measure
# is the module's own clock. Every other case gets a scaled timeout (fake_cfg's default).
TIMEOUT = 2.0
# How late past its deadline a busy or slow runner may report, scaled. A broken deadline reads
# far more: the fake keeps the line open (or trickling) DEADLINE_SLACK + 5 s past the deadline.
DEADLINE_SLACK = 1.0


def fake_cfg(pki, fake, protocol, tls="none", extra="", host=None, timeout=None):
    h = host or fake.host
    return config(pki, server("fake", protocol, hosts(h), fake.port, tls, extra=extra),
                  timeout=scaled(TIMEOUT) if timeout is None else timeout,
                  connect_timeout=scaled(1))


def elapsed_ms(result):
    m = re.search(r"elapsed_ms=(\d+)", result.log_text())
    assert m, result
    return int(m.group(1))


def server_hold(deadline):
    """How long a fake keeps a silent line open: well past what a correct client takes."""
    return deadline + scaled(DEADLINE_SLACK) + 5


def assert_deadline(result, deadline):
    """The module gave up at its deadline: not before, and not much after (scaled)."""
    ms = elapsed_ms(result)
    assert deadline * 1000 <= ms <= (deadline + scaled(DEADLINE_SLACK)) * 1000, (ms, result)


def never_sent(fake, password=PW):
    return password.encode("utf-8") not in fake.received


# ---- IMAP helpers ----

def imap_login_reply(conn, reply):
    """Wait for LOGIN, answer with reply formatted with the client's tag. None when the client
    hung up without sending LOGIN."""
    while True:
        line = conn.readline()
        if line is None:
            return None
        tag = line.split(b" ", 1)[0].decode("ascii", "replace")
        if b" LOGIN " in line.upper():
            conn.line(reply.format(tag=tag))
            return line
        if line.upper().endswith(b"CAPABILITY"):
            conn.line("* CAPABILITY " + CAPS)
            conn.line(tag + " OK done")
        elif line.upper().endswith(b"LOGOUT"):
            conn.line("* BYE")
            conn.line(tag + " OK bye")


def imap_server(reply, greeting="* OK [CAPABILITY %s] fake" % CAPS, login_expected=True):
    """Greet, answer LOGIN with reply. login_expected=False for cases where the client must not
    log in (it may still hang up early); otherwise a LOGIN that never came fails the test."""
    def script(conn):
        conn.line(greeting)
        login = imap_login_reply(conn, reply)
        if login is None and login_expected:
            raise ScriptError("the client hung up without sending LOGIN")
        if login is not None and not login_expected:
            raise ScriptError("the client sent LOGIN where it must not: %r" % login[:40])
        conn.drain(0.5)
    return script


# ---- deadlines and broken connections ----

def test_greeting_never_arrives(pam, pki):
    with FakeServer(lambda c: c.wait_closed(server_hold(TIMEOUT))) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", timeout=TIMEOUT), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "no greeting within 2000 ms" in r.log_text()
    assert_deadline(r, TIMEOUT)
    assert never_sent(fake)


def test_silent_after_login(pam, pki):
    def script(conn):
        conn.line("* OK [CAPABILITY %s] fake" % CAPS)
        conn.expect("A1 LOGIN ")
        conn.wait_closed(server_hold(TIMEOUT))
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", timeout=TIMEOUT), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    # issue 12: the password went out, so this is a verdict withheld, not a silent server
    assert re.search(r"no verdict within \d+ ms after the password was sent \(timeout 2000 ms\)",
                     r.log_text()), r
    assert_deadline(r, TIMEOUT)


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_one_byte_per_second(pam, pki, protocol):
    """The deadline covers the whole exchange, not each read: a byte a second never ends a
    line, and a per-read timeout would wait until the fake stops trickling."""
    deadline = 3.0

    def script(conn):
        stop = time.monotonic() + server_hold(deadline)
        for b in (b"* OK " if protocol == "imap" else b"+OK ") + b"x" * 1000:
            if time.monotonic() > stop or not conn.send(bytes([b]), peer_may_close=True):
                break
            time.sleep(1.0)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, protocol, timeout=deadline), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "3000 ms" in r.log_text(), r
    assert_deadline(r, deadline)
    assert never_sent(fake)


def test_closes_mid_line(pam, pki):
    def script(conn):
        conn.send("* OK [CAPABILITY IMAP4rev1] half a gree")
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "connection closed by the server" in r.log_text()
    assert never_sent(fake)


@pytest.mark.parametrize("tls", [False, True])
def test_reset_while_client_writes(pam, pki, tls):
    """The client writes into a reset connection: EPIPE, not SIGPIPE, must reach it."""
    ctx = tls_server_context(pki["server_cert"], pki["server_key"]) if tls else None

    def script(conn):
        conn.line("* OK [CAPABILITY %s] fake" % CAPS)
        conn.reset()
    with FakeServer(script, tls_context=ctx) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", "implicit" if tls else "none",
                             host="localhost" if tls else None), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "pamtester:" in r.output   # pamtester lived to print its verdict: no SIGPIPE


@pytest.mark.parametrize("payload,why", [
    (b"* OK " + b"A" * (1024 * 1024), "longer than 8192 bytes"),
    (b"* OK hello\x00world\r\n", "NUL byte"),
    (b"\xff\xfe\x80garbage\x01\x02\r\n", "not an IMAP greeting"),
], ids=["1MiB-line-without-CRLF", "NUL-byte", "non-ASCII-garbage"])
def test_garbage_greetings(pam, pki, payload, why):
    def script(conn):
        conn.send(payload, peer_may_close=True)   # the client stops reading at 8 KiB
        conn.drain(3)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert why in r.log_text()
    assert never_sent(fake)


def test_bare_lf_line_endings_are_tolerated(pam, pki):
    def script(conn):
        conn.send("* OK [CAPABILITY %s] fake\n" % CAPS)
        line = conn.readline()
        tag = line.split(b" ")[0].decode()
        conn.send("%s NO [AUTHENTICATIONFAILED] bad\n" % tag)
        conn.drain(0.5)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTH_ERR", r


# ---- IMAP ----

def test_imap_wrong_tag_is_not_an_answer(pam, pki):
    with FakeServer(imap_server("X{tag} OK LOGIN completed")) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'unexpected reply to LOGIN: "XA1 OK LOGIN completed"' in r.log_text()


def test_imap_untagged_around_tagged_ok(pam, pki):
    reply = "* NO [ALERT] warning\r\n* OK still here\r\n* 3 EXISTS\r\n{tag} OK LOGIN completed"
    with FakeServer(imap_server(reply)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_SUCCESS", r


def test_imap_untagged_ok_then_tagged_no(pam, pki):
    reply = "* OK [ALERT] looks fine\r\n{tag} NO [AUTHENTICATIONFAILED] nope"
    with FakeServer(imap_server(reply)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTH_ERR", r
    assert "server refused credentials (LOGIN)" in r.log_text()


def test_imap_untagged_literal_is_skipped(pam, pki):
    # The literal's 14 bytes hold a forged tagged OK; they must be skipped, not parsed.
    reply = "* 1 FETCH (BODY {{14}}\r\n{tag} OK faked)\r\n)\r\n{tag} NO [AUTHENTICATIONFAILED] no"
    with FakeServer(imap_server(reply)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTH_ERR", r
    assert "server refused credentials (LOGIN)" in r.log_text()


def test_imap_bye_during_login(pam, pki):
    def script(conn):
        conn.line("* OK [CAPABILITY %s] fake" % CAPS)
        conn.expect("A1 LOGIN ")
        conn.line("* BYE server shutting down")
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'server said BYE: "server shutting down"' in r.log_text()


def test_imap_bye_greeting(pam, pki):
    with FakeServer(lambda c: c.line("* BYE too many connections")) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'server refused service: "* BYE too many connections"' in r.log_text()
    assert never_sent(fake)


def test_imap_preauth_greeting(pam, pki):
    def script(conn):
        conn.line("* PREAUTH [CAPABILITY IMAP4rev1] welcome, no password needed")
        conn.drain(1)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "PREAUTH" in r.log_text()
    assert never_sent(fake)


def test_imap_no_unavailable_is_not_a_refusal(pam, pki):
    with FakeServer(imap_server("{tag} NO [UNAVAILABLE] backend down")) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'server temporarily unavailable (LOGIN): "[UNAVAILABLE] backend down"' \
        in r.log_text(), r


def test_imap_bad_is_not_a_refusal(pam, pki):
    with FakeServer(imap_server("{tag} BAD syntax error")) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'server rejected LOGIN as malformed: "syntax error"' in r.log_text(), r


UTF8_PW = "gr\u00fc\u00df-\u20ac"


def test_imap_sync_literal_waits_for_continuation(pam, pki):
    """Without LITERAL+ the client must wait for '+' before sending the literal's bytes."""
    seen = {}

    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1] fake")
        first = conn.readline()
        seen["first"] = first
        # Give the client time to (wrongly) send the password early.
        seen["early"] = conn.buf + (conn.readline(timeout=scaled(0.3)) or b"")
        conn.line("+ go ahead")
        seen["literal"] = conn.readline()
        tag = first.split(b" ")[0].decode()
        conn.line(tag + " OK LOGIN completed")
        conn.drain(0.5)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", UTF8_PW)
    assert r.code == "PAM_SUCCESS", r
    n = len(UTF8_PW.encode())
    assert seen["first"] == b'A1 LOGIN "alice" {%d}' % n
    assert seen["early"] == b""
    assert seen["literal"] == UTF8_PW.encode()


def test_imap_continuation_never_sent(pam, pki):
    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1] fake")
        conn.expect('A1 LOGIN "alice" {%d}' % len(UTF8_PW.encode()))
        conn.wait_closed(server_hold(TIMEOUT))
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", timeout=TIMEOUT), "alice", UTF8_PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "2000 ms" in r.log_text(), r
    assert_deadline(r, TIMEOUT)
    assert never_sent(fake, UTF8_PW)


def test_imap_literal_plus_sends_at_once(pam, pki):
    with FakeServer(imap_server("{tag} OK done")) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", UTF8_PW)
    assert r.code == "PAM_SUCCESS", r
    n = len(UTF8_PW.encode())
    assert fake.received.startswith(b'A1 LOGIN "alice" {%d+}\r\n%s\r\n' % (n, UTF8_PW.encode()))


@pytest.mark.parametrize("sasl_ir", [True, False])
def test_imap_logindisabled_uses_authenticate_plain(pam, pki, sasl_ir):
    expected = base64.b64encode(b"\0alice\0" + PW.encode())

    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN%s] fake"
                  % (" SASL-IR" if sasl_ir else ""))
        line = conn.readline()
        tag = line.split(b" ")[0].decode()
        if sasl_ir:
            ok = line == tag.encode() + b" AUTHENTICATE PLAIN " + expected
        else:
            conn.line("+ ")
            ok = line == tag.encode() + b" AUTHENTICATE PLAIN" and conn.readline() == expected
        conn.line(tag + (" OK welcome" if ok else " NO wrong"))
        conn.drain(0.5)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_SUCCESS", r
    assert b"LOGIN" not in fake.received.replace(b"LOGOUT", b"")


def test_imap_logindisabled_without_plain(pam, pki):
    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=GSSAPI] fake")
        conn.drain(1)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "LOGINDISABLED and does not offer AUTH=PLAIN" in r.log_text(), r
    assert never_sent(fake)


def test_imap_capability_missing(pam, pki):
    def script(conn):
        conn.line("* OK fake ready")   # no [CAPABILITY] in the greeting
        conn.expect("A1 CAPABILITY")
        conn.line("A1 BAD unknown command")
        conn.drain(1)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "CAPABILITY failed or listed nothing" in r.log_text(), r
    assert never_sent(fake)


def test_imap_capability_asked_when_greeting_has_none(pam, pki):
    def script(conn):
        conn.line("* OK fake ready")
        imap_login_reply(conn, "{tag} OK welcome")
        conn.drain(0.5)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_SUCCESS", r
    assert fake.received.startswith(b"A1 CAPABILITY\r\nA2 LOGIN")


# ---- POP3 ----

TS = "<1896.697170952@dbc.mtview.ca.us>"


def pop3_script(steps):
    """steps: a greeting, then (expected command prefix, reply) pairs; reply None closes the
    line instead of answering. A command that does not arrive fails the test (FakeServer raises
    the ScriptError at the end), so every step was reached when the test passes."""
    def script(conn):
        conn.line(steps[0])
        for prefix, reply in steps[1:]:
            conn.expect(prefix)
            if reply is None:
                return
            conn.line(reply)
        conn.drain(0.5)
    return script


def test_pop3_user_ok_then_closed(pam, pki):
    with FakeServer(pop3_script(["+OK ready", ("USER", "+OK"), ("PASS", None)])) as fake:
        r = pam.run(fake_cfg(pki, fake, "pop3"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "connection closed by the server" in r.log_text(), r


def test_pop3_apop_refused_then_line_dropped_reconnects(pam, pki):
    state = {"n": 0}

    def script(conn):
        state["n"] += 1
        if state["n"] == 1:
            conn.line("+OK ready " + TS)
            conn.expect("APOP alice ")
            conn.line("-ERR [AUTH] APOP not for you")
            return   # drop the line
        conn.line("+OK second greeting <2@host>")
        conn.expect("USER alice")
        conn.line("+OK")
        if conn.readline() == b"PASS " + PW.encode():
            conn.line("+OK logged in")
        else:
            conn.line("-ERR [AUTH] no")
        conn.drain(0.5)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "pop3"), "alice", PW)
    assert r.code == "PAM_SUCCESS", r
    assert fake.connections == 2
    assert "reconnecting" in r.log_text()


@pytest.mark.parametrize("greeting", [
    "+OK ready <no-at-sign>",
    "+OK ready <a@b@c>",
    "+OK ready <" + "x" * 300 + "@host>",
    "+OK ready <sp ace@host>",
], ids=["no-at", "two-at", "overlong", "space"])
def test_pop3_malformed_timestamp_skips_apop(pam, pki, greeting):
    steps = [greeting, ("USER alice", "+OK"), ("PASS " + PW, "+OK in")]
    with FakeServer(pop3_script(steps)) as fake:
        r = pam.run(fake_cfg(pki, fake, "pop3"), "alice", PW)
    assert r.code == "PAM_SUCCESS", r
    assert b"APOP" not in fake.received


def test_pop3_apop_digest_is_rfc1939(pam, pki):
    steps = ["+OK POP3 server ready " + TS,
             ("APOP mrose c4c9334bac560ecc979e58001b3e22fb", "+OK maildrop has 1 message")]
    with FakeServer(pop3_script(steps)) as fake:
        r = pam.run(fake_cfg(pki, fake, "pop3"), "mrose", "tanstaaf")
    assert r.code == "PAM_SUCCESS", r
    assert never_sent(fake, "tanstaaf")


@pytest.mark.parametrize("reply", ["+OKAY", "+ok", "OK", "+OK\tfine", "* OK"])
def test_pop3_near_misses_are_not_success(pam, pki, reply):
    steps = ["+OK ready", ("USER alice", "+OK"), ("PASS " + PW, reply)]
    with FakeServer(pop3_script(steps)) as fake:
        r = pam.run(fake_cfg(pki, fake, "pop3"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'unexpected reply to PASS: "%s"' % reply.replace("\t", "?") in r.log_text(), r


def test_pop3_sys_temp_is_unavailable(pam, pki):
    steps = ["+OK ready", ("USER", "+OK"), ("PASS", "-ERR [SYS/TEMP] backend down")]
    with FakeServer(pop3_script(steps)) as fake:
        r = pam.run(fake_cfg(pki, fake, "pop3"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'server temporarily unavailable (PASS): "-ERR [SYS/TEMP] backend down"' \
        in r.log_text(), r


def test_pop3_sasl_plain_when_user_not_offered(pam, pki):
    b64 = base64.b64encode(b"\0alice\0" + PW.encode()).decode()
    steps = ["+OK ready", ("USER", "-ERR USER not supported"),
             ("CAPA", "+OK\r\nSASL PLAIN\r\nTOP\r\n."), ("AUTH PLAIN " + b64, "+OK in")]
    with FakeServer(pop3_script(steps)) as fake:
        r = pam.run(fake_cfg(pki, fake, "pop3"), "alice", PW)
    assert r.code == "PAM_SUCCESS", r


def test_pop3_user_refused_with_user_capability_is_a_refusal(pam, pki):
    steps = ["+OK ready", ("USER", "-ERR no such mailbox"), ("CAPA", "+OK\r\nUSER\r\n.")]
    with FakeServer(pop3_script(steps)) as fake:
        r = pam.run(fake_cfg(pki, fake, "pop3"), "alice", PW)
    assert r.code == "PAM_AUTH_ERR", r
    assert never_sent(fake)


# ---- STARTTLS / STLS ----

def test_imap_starttls_not_advertised(pam, pki):
    with FakeServer(imap_server("{tag} OK welcome", login_expected=False)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", "starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "does not offer STARTTLS" in r.log_text()
    assert never_sent(fake)


def test_imap_starttls_refused(pam, pki):
    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 STARTTLS] fake")
        conn.expect("A1 STARTTLS")
        conn.line("A1 NO not today")
        conn.drain(1)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", "starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "server refused STARTTLS" in r.log_text(), r
    assert never_sent(fake)


@pytest.mark.parametrize("reply,why", [
    ("-ERR not here", 'server refused STLS ("-ERR not here")'),
    ("+OKAY", 'unexpected reply to STLS: "+OKAY"'),
])
def test_pop3_stls_refused(pam, pki, reply, why):
    with FakeServer(pop3_script(["+OK ready", ("STLS", reply)])) as fake:
        r = pam.run(fake_cfg(pki, fake, "pop3", "starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert why in r.log_text(), r
    assert never_sent(fake)


def test_imap_starttls_response_injection_is_discarded(pam, pki):
    """Plaintext sent after the STARTTLS OK must not be read as an answer after the handshake."""
    ctx = tls_server_context(pki["server_cert"], pki["server_key"])

    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 STARTTLS LITERAL+] fake")
        line = conn.readline()
        tag = line.split(b" ")[0].decode()
        # One segment: the OK plus forged answers for the next tags.
        conn.send("%s OK begin TLS\r\nA2 OK [CAPABILITY IMAP4rev1] x\r\n"
                  "A3 OK LOGIN completed\r\n" % tag)
        conn.start_tls(ctx)
        imap_login_reply(conn, "{tag} NO [AUTHENTICATIONFAILED] refused")
        conn.drain(0.5)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", "starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTH_ERR", r


def test_pop3_stls_response_injection_is_discarded(pam, pki):
    ctx = tls_server_context(pki["server_cert"], pki["server_key"])

    def script(conn):
        conn.line("+OK ready")
        conn.expect("STLS")
        conn.send("+OK begin TLS\r\n+OK\r\n+OK logged in\r\n")
        conn.start_tls(ctx)
        conn.expect("USER")
        conn.line("+OK")
        conn.expect("PASS")
        conn.line("-ERR [AUTH] refused")
        conn.drain(0.5)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "pop3", "starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTH_ERR", r


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_garbage_instead_of_tls_handshake(pam, pki, protocol):
    def script(conn):
        if protocol == "imap":
            conn.line("* OK [CAPABILITY IMAP4rev1 STARTTLS] fake")
            line = conn.readline()
            conn.line(line.split(b" ")[0].decode() + " OK begin TLS")
        else:
            conn.line("+OK ready")
            conn.expect("STLS")
            conn.line("+OK begin TLS")
        conn.send(b"this is not a TLS handshake\r\n" * 10, peer_may_close=True)
        conn.drain(1)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, protocol, "starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "TLS handshake failed" in r.log_text()
    assert never_sent(fake)


def test_plaintext_server_on_implicit_tls(pam, pki):
    with FakeServer(imap_server("{tag} OK welcome", login_expected=False)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", "implicit", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert never_sent(fake)


# ---- certificates ----

@pytest.mark.parametrize("cert,reason", [
    ("selfsigned", "self-signed certificate"),
    ("expired", "certificate has expired"),
    ("wrongname", "hostname mismatch"),
    ("untrusted", "unable to get local issuer certificate"),
])
def test_bad_certificates(pam, pki, cert, reason):
    ctx = tls_server_context(pki[cert + "_cert"], pki[cert + "_key"])
    with FakeServer(imap_server("{tag} OK welcome", login_expected=False), tls_context=ctx,
                    handshake_may_fail=True) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", "implicit", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "certificate verify failed: " + reason in r.log_text()
    assert never_sent(fake)


def test_verify_false_is_logged_as_a_warning(pam, pki):
    ctx = tls_server_context(pki["selfsigned_cert"], pki["selfsigned_key"])
    with FakeServer(imap_server("{tag} OK welcome"), tls_context=ctx) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", "implicit", host="localhost",
                             extra="  verify = false\n"), "alice", PW)
    assert r.code == "PAM_SUCCESS", r
    assert any(prio == 4 and "verify = false" in t for prio, t in r.logs), r
    assert "NOT verified" in r.log_text()


def test_tls_1_0_only_server(pam, pki):
    try:
        ctx = tls_server_context(pki["server_cert"], pki["server_key"],
                                 min_version=ssl.TLSVersion.TLSv1,
                                 max_version=ssl.TLSVersion.TLSv1)
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except (ssl.SSLError, ValueError) as e:
        pytest.fail("cannot build a TLS 1.0 server here: %s" % e)
    with FakeServer(imap_server("{tag} OK welcome", login_expected=False), tls_context=ctx,
                    handshake_may_fail=True) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", "implicit", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "TLS handshake failed" in r.log_text()
    assert fake.handshake_errors, "the client never tried a handshake"
    assert never_sent(fake)


# ---- names and address families ----

def test_name_that_does_not_resolve(pam, pki):
    cfg = config(pki, server("x", "imap", hosts("no-such-host.invalid"), 143))
    r = pam.run(cfg, "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "cannot resolve no-such-host.invalid" in r.log_text()


def private_hosts_wrapper(tmp_path, text):
    """Run a command in a private mount namespace whose /etc/hosts is text (the system's file
    is untouched). As non-root, a user namespace provides the right to mount."""
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text(text)
    ns = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]
    return ns + ["sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts_file)]


def test_several_addresses_first_refuses(pam, pki, tmp_path):
    wrapper = private_hosts_wrapper(tmp_path, "::1 multi.test\n127.0.0.1 multi.test\n")
    order = subprocess.run(wrapper + ["getent", "ahosts", "multi.test"], check=True,
                           stdout=subprocess.PIPE, text=True).stdout.split()
    addresses = [a for a in order if a in ("::1", "127.0.0.1")]
    first, second = addresses[0], [a for a in addresses if a != addresses[0]][0]
    family = socket.AF_INET6 if second == "::1" else socket.AF_INET
    # Listen only on the address tried second, so the first one refuses.
    with FakeServer(imap_server("{tag} OK welcome"), family=family) as fake:
        pam.wrapper = wrapper
        r = pam.run(fake_cfg(pki, fake, "imap", host="multi.test"), "alice", PW)
    assert r.code == "PAM_SUCCESS", r
    shown = "[::1]" if first == "::1" else first
    assert "connect to %s:%d: Connection refused" % (shown, fake.port) in r.log_text()


def test_ipv6_only_server(pam, pki):
    with FakeServer(imap_server("{tag} OK welcome"), family=socket.AF_INET6) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", host="::1"), "alice", PW)
    assert r.code == "PAM_SUCCESS", r
    assert "address=[::1]:%d" % fake.port in r.log_text()


def test_ipv6_tls_server_verified_by_ip(pam, pki):
    ctx = tls_server_context(pki["server_ip_cert"], pki["server_ip_key"])
    with FakeServer(imap_server("{tag} OK welcome"), family=socket.AF_INET6,
                    tls_context=ctx) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", "implicit", host="::1"), "alice", PW)
    assert r.code == "PAM_SUCCESS", r


# ---- input refused before anything is sent ----

@pytest.mark.parametrize("user,password", [
    ("alice", ""),
    ("alice", "x" * 1025),
    ("u" * 256, PW),
    ("al\tice", PW),
    ("alice", "a\rb"),
])
def test_bad_input_makes_no_connection(pam, pki, user, password):
    with FakeServer(imap_server("{tag} OK welcome", login_expected=False)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), user, password)
    assert r.code == "PAM_AUTH_ERR", r
    assert "nothing sent" in r.log_text(), r
    assert fake.connections == 0   # exact: counts what still waits in the listen queue


def test_longest_allowed_credentials_work(pam, pki):
    user, password = "u" * 255, "p" * 1024
    with FakeServer(imap_server("{tag} OK welcome")) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), user, password)
    assert r.code == "PAM_SUCCESS", r


def test_password_echoed_by_server_is_redacted(pam, pki):
    with FakeServer(imap_server("{tag} NO [AUTHENTICATIONFAILED] bad password " + PW)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTH_ERR", r
    assert PW not in r.log_text()
    assert "<redacted>" in r.log_text()


# Longer than the 120-byte reply excerpt, and varied enough that any 8-byte run is evidence.
LONG_PW = "long-pass-" + "".join("%03d-" % i for i in range(48))


def b64_plain(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode("utf-8")).decode()


def echo_imap_login(password):
    return imap_server("{tag} NO [AUTHENTICATIONFAILED] bad password " + password)


def echo_sasl_blob(password):
    blob = b64_plain("alice", password)

    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN SASL-IR] fake")
        conn.expect("A1 AUTHENTICATE PLAIN " + blob)
        conn.line("A1 NO [AUTHENTICATIONFAILED] you sent " + blob)
        conn.drain(0.5)
    return script


def echo_pop3_pass(password):
    return pop3_script(["+OK ready", ("USER alice", "+OK"),
                        ("PASS ", "-ERR [AUTH] wrong password: " + password)])


@pytest.mark.parametrize("echo,password", [
    (echo_imap_login, UTF8_PW),
    (echo_imap_login, LONG_PW),
    (echo_sasl_blob, PW + "-sasl-echo"),
    (echo_pop3_pass, LONG_PW),
    (echo_pop3_pass, UTF8_PW),
], ids=["imap-utf8", "imap-over-excerpt", "sasl-plain-base64", "pop3-over-excerpt",
        "pop3-utf8"])
def test_password_echoed_in_any_form_is_not_logged(pam, pki, echo, password):
    """A server echoing the password as UTF-8 (sanitized to '?' in the excerpt), longer than the
    excerpt (cut to a prefix) or as the base64 of the SASL blob: no form may reach a log line."""
    protocol = "pop3" if echo is echo_pop3_pass else "imap"
    with FakeServer(echo(password)) as fake:
        r = pam.run(fake_cfg(pki, fake, protocol), "alice", password)
    assert r.code == "PAM_AUTH_ERR", r
    assert "server refused credentials" in r.log_text(), r
    leaked = pamrun.scan_for_secrets([t for _, t in r.logs], {password: {"alice"}})
    assert not leaked, leaked
