"""Issue 20, part 2: a server's IMAP [ALERT] reaches the user through the PAM conversation
(pamtester prints it) when it came over TLS, unless quiet or PAM_SILENT; one received in clear is
logged and not shown. The text is hostile: escape sequences, control bytes, invalid UTF-8, an
echo of the password and endless text arrive cleaned (alert.c) or not at all."""
import re

import pytest

from fakeserver import FakeServer, ScriptError, tls_server_context
from helpers import config, hosts, server

PW = "Zq7-alert-secret"
APP = "Application-specific password required"


def raw(text):
    """str to bytes; surrogate escapes become the invalid bytes they stand for."""
    return text.encode("utf-8", "surrogateescape")


def alert_server(reply, untagged=None):
    """Greet, wait for LOGIN, answer "<tag> <reply>" (after an untagged line when given)."""
    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] fake")
        while True:
            line = conn.readline()
            if line is None:
                raise ScriptError("the client hung up without sending LOGIN")
            if b" LOGIN " in line.upper():
                break
        tag = line.split(b" ", 1)[0]
        data = (raw(untagged) + b"\r\n" if untagged is not None else b"") + tag + b" " + \
            raw(reply) + b"\r\n"
        conn.send(data, peer_may_close=True)
        conn.drain(0.5)
    return script


def run(pam, pki, reply, tls=True, args=("debug",), operation="authenticate", untagged=None):
    """pamtester against a fake IMAP server answering LOGIN with reply (after an untagged line
    when given), over implicit TLS or in clear."""
    ctx = tls_server_context(pki["server_cert"], pki["server_key"]) if tls else None
    script = alert_server(reply, untagged)
    with FakeServer(script, tls_context=ctx) as fake:
        host = "localhost" if tls else fake.host
        cfg = config(pki, server("fake", "imap", hosts(host), fake.port,
                                 "implicit" if tls else "none"))
        return pam.run(cfg, "alice", PW, args=args, operation=operation)


def visible(r):
    """What pamtester printed for the user (pam_wrapper's log lines left out)."""
    return "\n".join(line for line in r.output.splitlines() if "PWRAP_" not in line)


def shown(r):
    """The alert lines pamtester printed from the conversation."""
    return [line for line in r.output.splitlines() if "Mail server: " in line]


def test_alert_over_tls_is_shown_on_refusal(pam, pki):
    r = run(pam, pki, "NO [ALERT] " + APP)
    assert r.code == "PAM_AUTH_ERR", r
    assert shown(r) == ["Mail server: " + APP], r.output
    assert "[ALERT] for the user: \"%s\"" % APP in r.log_text(), r


def test_alert_over_tls_is_shown_on_success(pam, pki):
    text = "Your password expires in 3 days"
    r = run(pam, pki, "OK Logged in", untagged="* OK [ALERT] " + text)
    assert r.code == "PAM_SUCCESS", r
    assert shown(r) == ["Mail server: " + text], r.output


def test_alert_in_clear_is_logged_not_shown(pam, pki):
    r = run(pam, pki, "NO [ALERT] " + APP, tls=False)
    assert r.code == "PAM_AUTH_ERR", r
    assert shown(r) == [] and APP not in visible(r), r.output
    assert "[ALERT] received in clear, not shown to the user: \"%s\"" % APP in r.log_text(), r


def test_quiet_and_silent_show_nothing(pam, pki):
    r = run(pam, pki, "NO [ALERT] " + APP, args=("quiet",))
    assert r.code == "PAM_AUTH_ERR" and shown(r) == [], r.output
    r = run(pam, pki, "NO [ALERT] " + APP, operation="authenticate(PAM_SILENT)")
    assert r.code == "PAM_AUTH_ERR" and shown(r) == [], r.output


def test_no_alert_nothing_shown(pam, pki):
    r = run(pam, pki, "NO [AUTHENTICATIONFAILED] " + APP)
    assert r.code == "PAM_AUTH_ERR" and shown(r) == [], r.output


def test_escape_sequences_and_controls_are_removed(pam, pki):
    text = ("\x1b[2J\x1b[H\x1b]0;owned\x07\x1b[31mPlease\tlog in \x1b[0mvia the\x08 web "
            "\u202eeulav")
    r = run(pam, pki, "NO [ALERT] " + text)
    assert r.code == "PAM_AUTH_ERR", r
    assert shown(r) == ["Mail server: Please log in via the web eulav"], r.output
    assert "\x1b" not in visible(r) and "owned" not in visible(r), r.output


def test_invalid_utf8_is_removed_valid_kept(pam, pki):
    # fakeserver sends str as UTF-8; surrogateescape carries the raw invalid bytes
    text = "Gr\u00fc\u00dfe \udcff\udcfe\udcc0\udcaf aus \u20ac-Land"
    r = run(pam, pki, "NO [ALERT] " + text)
    assert r.code == "PAM_AUTH_ERR", r
    assert shown(r) == ["Mail server: Gr\u00fc\u00dfe aus \u20ac-Land"], r.output


def test_echoed_password_is_not_shown(pam, pki):
    for text in ("Wrong password: " + PW, "Wrong password: " + PW[:9],
                 "Wrong: " + PW[:6] + "\x1b[0m" + PW[6:]):
        r = run(pam, pki, "NO [ALERT] " + text)
        assert r.code == "PAM_AUTH_ERR", r
        assert shown(r) == [], r.output
        assert PW[:6] not in visible(r), r.output
        assert "its [ALERT] held the password; not shown" in r.log_text(), r


def test_long_alert_is_cut(pam, pki):
    r = run(pam, pki, "NO [ALERT] " + "\u20ac" * 2500)
    assert r.code == "PAM_AUTH_ERR", r
    line = shown(r)
    assert len(line) == 1 and line[0].endswith("...") and \
        len(line[0].encode()) <= len("Mail server: ") + 255, line


def test_100kib_alert_shows_nothing(pam, pki):
    """Longer than any line the module reads: the reply is refused whole, nothing is shown."""
    r = run(pam, pki, "NO [ALERT] " + "A" * (100 * 1024))
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert shown(r) == [] and "AAAAAAAA" not in visible(r), r.output


def test_starttls_alert_before_tls_not_shown_after_tls_shown(pam, pki):
    """An alert in the clear greeting (anyone on the path could have sent it) is logged only;
    the one the server sent over TLS after STARTTLS is shown."""
    ctx = tls_server_context(pki["server_cert"], pki["server_key"])

    def script(conn):
        conn.line("* OK [ALERT] Forged in clear")
        while True:
            line = conn.readline()
            if line is None:
                raise ScriptError("the client hung up before STARTTLS")
            tag, cmd = line.decode().split(" ", 1)
            if cmd.upper() == "CAPABILITY":
                conn.line("* CAPABILITY IMAP4rev1 STARTTLS LITERAL+")
                conn.line(tag + " OK done")
            elif cmd.upper() == "STARTTLS":
                conn.line(tag + " OK begin TLS")
                break
        conn.start_tls(ctx)
        while True:
            line = conn.readline()
            if line is None:
                raise ScriptError("the client hung up without sending LOGIN")
            tag, cmd = line.decode().split(" ", 1)
            if cmd.upper() == "CAPABILITY":
                conn.line("* CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN")
                conn.line(tag + " OK done")
            elif cmd.upper().startswith("LOGIN "):
                conn.send("%s NO [ALERT] Sent over TLS\r\n" % tag, peer_may_close=True)
                break
        conn.drain(0.5)
    with FakeServer(script) as fake:
        cfg = config(pki, server("fake", "imap", hosts("localhost"), fake.port, "starttls"))
        r = pam.run(cfg, "alice", PW)
    assert r.code == "PAM_AUTH_ERR", r
    assert shown(r) == ["Mail server: Sent over TLS"], r.output
    assert "Forged" not in visible(r), r.output
    assert "[ALERT] received in clear, not shown to the user: \"Forged in clear\"" in \
        r.log_text(), r


def test_echo_split_across_lines_not_logged(pam, pki):
    """A server that echoes LOGIN wrapped over two lines: the first ends with the password's
    first half (removed: a prefix that ends a text), the second begins with the rest, which the
    debug trace and the refusal's reason quote."""
    half = len(PW) // 2
    r = run(pam, pki, PW[half:] + " was not accepted",
            untagged="* BAD echo: LOGIN alice " + PW[:half])
    assert r.code != "PAM_SUCCESS", r
    assert PW[half:] not in r.log_text(), r


# ---- POP3: RFC 3206 [AUTH] (answering the credentials) and [SYS/PERM] text, by the same rules ----

TS = "<1896.697170952@dbc.mtview.ca.us>"


def pop3_alert_server(pass_reply, greeting="+OK ready", apop_reply=None):
    """Greet; answer APOP with apop_reply when given (then expect USER/PASS), USER with +OK and
    PASS with pass_reply. A command that does not come fails the test."""
    def script(conn):
        conn.line(greeting)
        if apop_reply is not None:
            conn.expect("APOP alice ")
            conn.line(apop_reply)
        conn.expect("USER alice")
        conn.line("+OK")
        conn.expect("PASS ")
        conn.send(raw(pass_reply) + b"\r\n", peer_may_close=True)
        conn.drain(0.5)
    return script


def run_pop3(pam, pki, pass_reply, tls=True, args=("debug",), operation="authenticate",
             greeting="+OK ready", apop_reply=None):
    ctx = tls_server_context(pki["server_cert"], pki["server_key"]) if tls else None
    script = pop3_alert_server(pass_reply, greeting, apop_reply)
    with FakeServer(script, tls_context=ctx) as fake:
        host = "localhost" if tls else fake.host
        cfg = config(pki, server("fake", "pop3", hosts(host), fake.port,
                                 "implicit" if tls else "none"))
        return pam.run(cfg, "alice", PW, args=args, operation=operation)


def test_pop3_auth_text_over_tls_is_shown(pam, pki):
    r = run_pop3(pam, pki, "-ERR [AUTH] " + APP + ": https://help.example/asp")
    assert r.code == "PAM_AUTH_ERR", r
    assert shown(r) == ["Mail server: " + APP + ": https://help.example/asp"], r.output
    assert "[AUTH] for the user: \"%s: https://help.example/asp\"" % APP in r.log_text(), r


def test_pop3_sys_perm_text_is_shown_with_the_unavailable_notice(pam, pki):
    r = run_pop3(pam, pki, "-ERR [SYS/PERM] Mailbox damaged; call the help desk")
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert shown(r) == ["Mail server: Mailbox damaged; call the help desk"], r.output
    assert "The mail server is unavailable" in visible(r), r.output


def test_pop3_text_in_clear_is_logged_not_shown(pam, pki):
    r = run_pop3(pam, pki, "-ERR [AUTH] " + APP, tls=False)
    assert r.code == "PAM_AUTH_ERR", r
    assert shown(r) == [] and APP not in visible(r), r.output
    assert "[AUTH] received in clear, not shown to the user: \"%s\"" % APP in r.log_text(), r


@pytest.mark.parametrize("reply", ["-ERR [SYS/TEMP] backend down", "-ERR Authentication failed.",
                                   "-ERR [IN-USE] " + APP, "-ERR [AUTH]"],
                         ids=["sys-temp", "no-code", "in-use", "empty"])
def test_pop3_other_refusals_show_nothing(pam, pki, reply):
    r = run_pop3(pam, pki, reply)
    assert r.code in ("PAM_AUTH_ERR", "PAM_AUTHINFO_UNAVAIL"), r
    assert shown(r) == [], r.output


def test_pop3_quiet_and_silent_show_nothing(pam, pki):
    r = run_pop3(pam, pki, "-ERR [AUTH] " + APP, args=("quiet",))
    assert r.code == "PAM_AUTH_ERR" and shown(r) == [], r.output
    r = run_pop3(pam, pki, "-ERR [AUTH] " + APP, operation="authenticate(PAM_SILENT)")
    assert r.code == "PAM_AUTH_ERR" and shown(r) == [], r.output


def test_pop3_text_is_cleaned_and_never_holds_the_password(pam, pki):
    r = run_pop3(pam, pki, "-ERR [AUTH] \x1b]0;owned\x07\x1b[31mPlease\tlog in\x1b[0m \u202eeulav")
    assert shown(r) == ["Mail server: Please log in eulav"], r.output
    assert "\x1b" not in visible(r) and "owned" not in visible(r), r.output
    r = run_pop3(pam, pki, "-ERR [AUTH] Wrong password: " + PW)
    assert r.code == "PAM_AUTH_ERR" and shown(r) == [], r.output
    assert PW[:6] not in visible(r), r.output
    assert "its [AUTH] text held the password; not shown" in r.log_text(), r


def test_pop3_refused_apop_text_is_not_shown_when_user_pass_succeeds(pam, pki):
    r = run_pop3(pam, pki, "+OK logged in", greeting="+OK ready " + TS,
                 apop_reply="-ERR [AUTH] " + APP)
    assert r.code == "PAM_SUCCESS", r
    assert shown(r) == [], r.output
