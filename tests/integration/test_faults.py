"""Issue 3: hostile and faulty servers. No case may yield PAM_SUCCESS unless the server really
accepted the credentials; where it matters, the password must never have been sent."""
import base64
import os
import re
import socket
import ssl
import subprocess
import time

import pytest

from fakeserver import FakeServer, tls_server_context
from helpers import config, hosts, server

PW = "s3cret"
CAPS = "IMAP4rev1 LITERAL+ AUTH=PLAIN"
TIMEOUT = 2.0


def fake_cfg(pki, fake, protocol, tls="none", extra="", host=None, timeout=TIMEOUT):
    h = host or fake.host
    return config(pki, server("fake", protocol, hosts(h), fake.port, tls, extra=extra),
                  timeout=timeout, connect_timeout=1)


def elapsed_ms(result):
    m = re.search(r"elapsed_ms=(\d+)", result.log_text())
    assert m, result
    return int(m.group(1))


def never_sent(fake, password=PW):
    return password.encode("utf-8") not in fake.received


# ---- IMAP helpers ----

def imap_login_reply(conn, reply):
    """Wait for LOGIN, answer with reply formatted with the client's tag."""
    while True:
        line = conn.readline()
        if line is None:
            return None
        tag = line.split(b" ", 1)[0].decode()
        if b" LOGIN " in line.upper():
            conn.line(reply.format(tag=tag))
            return line
        if line.upper().endswith(b"CAPABILITY"):
            conn.line("* CAPABILITY " + CAPS)
            conn.line(tag + " OK done")
        elif line.upper().endswith(b"LOGOUT"):
            conn.line("* BYE")
            conn.line(tag + " OK bye")


def imap_server(reply, greeting="* OK [CAPABILITY %s] fake" % CAPS):
    def script(conn):
        conn.line(greeting)
        imap_login_reply(conn, reply)
        conn.drain(0.5)
    return script


# ---- deadlines and broken connections ----

def test_greeting_never_arrives(pam, pki):
    with FakeServer(lambda c: time.sleep(TIMEOUT + 3)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "no greeting within 2000 ms" in r.log_text()
    assert 2000 <= elapsed_ms(r) <= 2200
    assert never_sent(fake)


def test_silent_after_login(pam, pki):
    def script(conn):
        conn.line("* OK [CAPABILITY %s] fake" % CAPS)
        conn.readline()
        time.sleep(TIMEOUT + 3)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "no answer within the 2000 ms timeout" in r.log_text()
    assert 2000 <= elapsed_ms(r) <= 2200


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_one_byte_per_second(pam, pki, protocol):
    def script(conn):
        for b in (b"* OK " if protocol == "imap" else b"+OK ") + b"x" * 100:
            conn.send(bytes([b]))
            time.sleep(1.0)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, protocol, timeout=3), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 3000 <= elapsed_ms(r) <= 3300   # the per-server deadline holds within 10%


def test_closes_mid_line(pam, pki):
    def script(conn):
        conn.send("* OK [CAPABILITY IMAP4rev1] half a gree")
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "connection closed by the server" in r.log_text()


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
        conn.send(payload)
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
    assert "unexpected reply to LOGIN" in r.log_text()


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


def test_imap_untagged_literal_is_skipped(pam, pki):
    # The literal's 14 bytes hold a forged tagged OK; they must be skipped, not parsed.
    reply = "* 1 FETCH (BODY {{14}}\r\n{tag} OK faked)\r\n)\r\n{tag} NO [AUTHENTICATIONFAILED] no"
    with FakeServer(imap_server(reply)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTH_ERR", r


def test_imap_bye_during_login(pam, pki):
    def script(conn):
        conn.line("* OK [CAPABILITY %s] fake" % CAPS)
        conn.readline()
        conn.line("* BYE server shutting down")
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'server said BYE: "server shutting down"' in r.log_text()


def test_imap_bye_greeting(pam, pki):
    with FakeServer(lambda c: c.line("* BYE too many connections")) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
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


def test_imap_bad_is_not_a_refusal(pam, pki):
    with FakeServer(imap_server("{tag} BAD syntax error")) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r


UTF8_PW = "gr\u00fc\u00df-\u20ac"


def test_imap_sync_literal_waits_for_continuation(pam, pki):
    """Without LITERAL+ the client must wait for '+' before sending the literal's bytes."""
    seen = {}

    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1] fake")
        first = conn.readline()
        seen["first"] = first
        # Give the client time to (wrongly) send the password early.
        time.sleep(0.3)
        seen["early"] = conn.buf
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
        conn.readline()
        time.sleep(TIMEOUT + 2)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", UTF8_PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
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
    assert never_sent(fake)


def test_imap_capability_missing(pam, pki):
    def script(conn):
        conn.line("* OK fake ready")   # no [CAPABILITY] in the greeting
        line = conn.readline()
        conn.line(line.split(b" ")[0].decode() + " BAD unknown command")
        conn.drain(1)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
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
    """steps: list of (expected command prefix, reply) after a greeting."""
    def script(conn):
        conn.line(steps[0])
        for prefix, reply in steps[1:]:
            line = conn.readline()
            if line is None or not line.upper().startswith(prefix.upper().encode()):
                return
            if reply is None:
                return
            conn.line(reply)
        conn.drain(0.5)
    return script


def test_pop3_user_ok_then_closed(pam, pki):
    with FakeServer(pop3_script(["+OK ready", ("USER", "+OK"), ("PASS", None)])) as fake:
        r = pam.run(fake_cfg(pki, fake, "pop3"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r


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
    steps = ["+OK ready", ("USER", "+OK"), ("PASS", reply)]
    with FakeServer(pop3_script(steps)) as fake:
        r = pam.run(fake_cfg(pki, fake, "pop3"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r


def test_pop3_sys_temp_is_unavailable(pam, pki):
    steps = ["+OK ready", ("USER", "+OK"), ("PASS", "-ERR [SYS/TEMP] backend down")]
    with FakeServer(pop3_script(steps)) as fake:
        r = pam.run(fake_cfg(pki, fake, "pop3"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r


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
    with FakeServer(imap_server("{tag} OK welcome")) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", "starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "does not offer STARTTLS" in r.log_text()
    assert never_sent(fake)


def test_imap_starttls_refused(pam, pki):
    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 STARTTLS] fake")
        line = conn.readline()
        conn.line(line.split(b" ")[0].decode() + " NO not today")
        conn.drain(1)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", "starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert never_sent(fake)


@pytest.mark.parametrize("reply", ["-ERR not here", "+OKAY"])
def test_pop3_stls_refused(pam, pki, reply):
    with FakeServer(pop3_script(["+OK ready", ("STLS", reply)])) as fake:
        r = pam.run(fake_cfg(pki, fake, "pop3", "starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
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
        conn.send(b"this is not a TLS handshake\r\n" * 10)
        conn.drain(1)
    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, protocol, "starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "TLS handshake failed" in r.log_text()
    assert never_sent(fake)


def test_plaintext_server_on_implicit_tls(pam, pki):
    with FakeServer(imap_server("{tag} OK welcome")) as fake:
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
    with FakeServer(imap_server("{tag} OK welcome"), tls_context=ctx) as fake:
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
    with FakeServer(imap_server("{tag} OK welcome"), tls_context=ctx) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", "implicit", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "TLS handshake failed" in r.log_text()
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
    with FakeServer(imap_server("{tag} OK welcome")) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), user, password)
        time.sleep(0.1)
    assert r.code == "PAM_AUTH_ERR", r
    assert fake.connections == 0


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
