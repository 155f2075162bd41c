"""Attacks on the login plan (plan.c and its walks in imap.c and pop3.c), the shared reply
readers and the POP3 user text, through real libpam, by scripted fake servers.

The rule: a yes only after every credential byte went out and the server's own answer to it
accepted it; a reply that is no verdict (the pipelined LOGIN under LOGINDISABLED) must not turn
into one either way, and the reason logged must say what happened.
"""
import base64

import pytest

from fakeserver import FakeServer, ScriptError, tag_of, tls_server_context
from helpers import config, hosts, scaled, server

PW = "s3cret"


def fake_cfg(pki, fake, protocol, tls="none", extra="", host=None):
    return config(pki, server("fake", protocol, hosts(host or fake.host), fake.port, tls,
                              extra=extra), timeout=scaled(3), connect_timeout=scaled(1))


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
        conn.imap_starttls("* OK [CAPABILITY IMAP4rev1 STARTTLS] fake", ctx)
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


# ---- a mechanism that cannot take the credentials after its command went out ----

UTF8_PW = "gr\u00fc\u00df-\u20ac"


def b64_plain(user, password):
    return base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode("utf-8"))


@pytest.mark.parametrize("cancel_reply", ["BAD AUTHENTICATE cancelled", "NO cancelled"])
def test_imap_scram_unusable_without_sasl_ir_then_plain(pam, pki, cancel_reply):
    """mechanisms = scram-sha-256, plain; the server has no SASL-IR, so AUTHENTICATE SCRAM-SHA-256
    goes out alone and the client-first message only after the "+". A non-ASCII password is
    refused by SASLprep then: the client cancels ("*") and falls back to PLAIN, which the plan
    allows (nothing of the password went out). The server's answer to the cancel must be read
    as such; before the fix it was left unread and met AUTHENTICATE PLAIN as its reply (a reply
    of another tag: protocol error, the server unavailable, while it accepts the password)."""
    seen = []

    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 AUTH=SCRAM-SHA-256 AUTH=PLAIN] fake")
        first = conn.expect("")
        if b"AUTHENTICATE SCRAM-SHA-256" not in first.upper():
            raise ScriptError("expected AUTHENTICATE SCRAM-SHA-256, got %r" % first)
        conn.line("+ ")
        cancel = conn.readline()
        seen.append(cancel)
        if cancel != b"*":
            raise ScriptError("expected the cancel, got %r" % cancel)
        conn.line("%s %s" % (tag_of(first), cancel_reply))
        second = conn.readline()
        seen.append(second)
        if second is None or b"AUTHENTICATE PLAIN" not in second.upper():
            raise ScriptError("expected AUTHENTICATE PLAIN, got %r" % second)
        if tag_of(second) == tag_of(first):
            raise ScriptError("tag reused: %r" % second)
        conn.line("+ ")
        blob = conn.readline()
        ok = blob == b64_plain("alice", UTF8_PW)
        send_quietly(conn, "%s %s\r\n" % (tag_of(second), "OK in" if ok else "NO wrong"))
        conn.wait_closed()

    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", host="localhost",
                             extra="  mechanisms = {scram-sha-256, plain}\n"), "alice", UTF8_PW)
    assert not fake.errors, fake.errors
    assert r.code == "PAM_SUCCESS", r


# ---- server text that holds the password never reaches a log ----

ECHO_PW = "Qx7;kRz9#wP2-horse@mN5$tY8"


@pytest.mark.parametrize("where", ["server-first", "server-final"])
@pytest.mark.parametrize("error", ["other-error {pw}", "channel-bindings-dont-match {pw}"])
def test_scram_server_error_echoing_the_password_is_redacted(pam, pki, where, error):
    """A SCRAM server's e= value is the server's text: one that holds the password (a server
    that stores it in clear, or a guess) must be redacted like any other server text. The
    debug line "the server reported e=..." carried it verbatim before the fix."""
    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=SCRAM-SHA-256] fake")
        line = conn.readline()
        if line is None or b"AUTHENTICATE SCRAM-SHA-256 " not in line.upper():
            raise ScriptError("expected AUTHENTICATE SCRAM-SHA-256, got %r" % line)
        tag = tag_of(line)
        e = ("e=" + error.format(pw=ECHO_PW)).encode()
        if where == "server-final":
            first = base64.b64decode(line.split(b" ")[3]).decode()
            nonce = dict(a.split("=", 1) for a in first.partition(",,")[2].split(","))["r"]
            server_first = "r=%sS3rv,s=%s,i=4096" % (nonce, base64.b64encode(b"salt").decode())
            conn.line("+ " + base64.b64encode(server_first.encode()).decode())
            if conn.readline() is None:
                raise ScriptError("no client-final")
        conn.line("+ " + base64.b64encode(e).decode())
        while True:
            got = conn.readline(scaled(3))
            if got is None:
                return
            if got == b"*":
                send_quietly(conn, tag + " NO [AUTHENTICATIONFAILED] failed\r\n")

    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", extra="  mechanisms = scram-sha-256\n"),
                    "alice", ECHO_PW)
    assert not fake.errors, fake.errors
    assert r.code in ("PAM_AUTH_ERR", "PAM_AUTHINFO_UNAVAIL"), r
    assert ECHO_PW not in r.log_text(), r
    assert ECHO_PW[:8] not in r.log_text(), r


# ---- POP3 RFC 3206 text: only what answers the whole credentials, over TLS ----

def shown(r):
    return [line for line in r.output.splitlines() if "Mail server: " in line]


@pytest.mark.parametrize("capa", [["+OK", "USER", "."], ["+OK", "SASL PLAIN", "."]],
                         ids=["capa-user", "capa-sasl-plain"])
def test_pop3_auth_text_answering_user_is_never_shown(pam, pki, capa):
    """A server that answers USER (the name only, nothing of the password) with -ERR [AUTH] and
    an account description: over TLS, the text must not reach whoever typed the name, neither
    when the refusal stands (CAPA lists USER) nor when AUTH PLAIN follows and is refused
    without text. Held: the text is logged, never shown."""
    ctx = tls_server_context(pki["server_cert"], pki["server_key"])

    def script(conn):
        conn.line("+OK ready")
        conn.expect("USER alice")
        conn.line("-ERR [AUTH] Account alice suspended since Monday, owes 42 EUR")
        conn.expect("CAPA")
        conn.send("".join(x + "\r\n" for x in capa))
        line = conn.readline()
        if line is not None and line.upper().startswith(b"AUTH PLAIN"):
            send_quietly(conn, "-ERR authentication failed\r\n")
        conn.drain(0.5)

    with FakeServer(script, tls_context=ctx) as fake:
        r = pam.run(config(pki, server("fake", "pop3", hosts("localhost"), fake.port,
                                       "implicit")), "alice", PW)
    assert not fake.errors, fake.errors
    assert r.code == "PAM_AUTH_ERR", r
    visible = [line for line in r.output.splitlines() if "PWRAP_" not in line]
    assert shown(r) == [] and not [line for line in visible if "owes 42" in line], r.output


# ---- reply order is never evidence: the pipelined CAPABILITY's reply comes first ----

def test_pipelined_login_ok_before_capability_reply_is_no_success(pam, pki):
    """After STARTTLS the LOGIN's OK arrives ahead of the pipelined CAPABILITY's own reply (and
    the CAPABILITY's reply after it): out of order, it is a protocol error, never a yes. Held."""
    ctx = tls_server_context(pki["server_cert"], pki["server_key"])

    def script(conn):
        conn.imap_starttls("* OK [CAPABILITY IMAP4rev1 STARTTLS] fake", ctx)
        lines = conn.one_write()
        conn.send("%s OK in\r\n* CAPABILITY IMAP4rev1\r\n%s OK done\r\n"
                  % (tag_of(lines[-1]), tag_of(lines[0])))
        conn.drain(0.5)

    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", tls="starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
