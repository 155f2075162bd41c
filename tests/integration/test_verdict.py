"""Issue 12: "server trouble" is never reported as "wrong password", and a wrong password is never
reported as trouble. Scripted fake servers send the exact texts Cyrus IMAP 3.6 and Courier-IMAP
5.0 / Courier POP3 send (quoted in the issue), through real libpam (pamtester under pam_wrapper).

Every script raises when the client does not do what it expects, so a case cannot pass because
the script gave up before sending the reply under test."""
import re
import tempfile
import time

import pytest

import dovecot
import netns
from fakeserver import FakeServer, ScriptError
from helpers import config, hosts, scaled, server
from test_cache import cache_section, final_line
from test_network import imap_accepting, root_net  # noqa: F401 (root_net: a fixture)

PW = "s3cret"
LOG_NOTICE = 5
COURIER_POP3_GREETING = "+OK Hello there."
COURIER_POP3_CAPA = ("+OK Here's what I can do:\r\nSTLS\r\nTOP\r\nUSER\r\nLOGIN-DELAY 10\r\n"
                     "PIPELINING\r\nUIDL\r\nIMPLEMENTATION Courier Mail Server\r\n.")
CYRUS_POP3_GREETING = "+OK localhost Cyrus POP3 3.6.1 server ready"
CYRUS_TS = "<1234567890.4242@localhost>"
COURIER_IMAP_CAPS = "IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT SORT QUOTA IDLE"
CYRUS_IMAP_CAPS = "IMAP4rev1 LITERAL+ ID ENABLE SASL-IR AUTH=PLAIN"


def cfg_for(pki, fake, protocol, extra="", timeout=None, head=""):
    return config(pki, server("fake", protocol, hosts(fake.host), fake.port, "none", extra=extra),
                  timeout=scaled(5) if timeout is None else timeout,
                  connect_timeout=scaled(1), head=head)


def never_sent(fake, password=PW):
    return password.encode("utf-8") not in fake.received


def walk_summary(result):
    """The debug line the walk writes for the server's attempt."""
    lines = [t for _, t in result.logs
             if re.match(r'server "fake" \S+ \((pop3|imap), tls \w+\): ', t)]
    assert lines, result
    return lines[-1]


def pop3_dialogue(greeting, answers, close_after=None):
    """A POP3 server: greeting, then for each command the first answer whose key prefixes it
    (exactly, case included; QUIT is answered politely). close_after: a command prefix after whose
    answer the server hangs up at once. A command with no answer fails the test."""
    def script(conn):
        conn.line(greeting)
        while True:
            line = conn.readline()
            if line is None:
                return
            upper = line.upper()
            if upper.startswith(b"QUIT"):
                conn.send("+OK Bye-bye.\r\n", peer_may_close=True)
                return
            for key, answer in answers:
                if line.startswith(key.encode()):
                    if callable(answer):
                        answer = answer(line)
                    conn.line(answer)
                    if close_after is not None and line.startswith(close_after.encode()):
                        return
                    break
            else:
                raise ScriptError("unexpected command %r" % line[:40])
    return script


def imap_dialogue(greeting, login_reply, close_after_login=False):
    """An IMAP server: greeting, CAPABILITY and LOGOUT answered, LOGIN answered with login_reply
    (formatted with the client's tag), then the line closes if close_after_login."""
    def script(conn):
        conn.line(greeting)
        while True:
            line = conn.readline()
            if line is None:
                raise ScriptError("the client hung up without sending LOGIN")
            tag = line.split(b" ", 1)[0].decode("ascii", "replace")
            if b" LOGIN " in line.upper():
                conn.send((login_reply.format(tag=tag) + "\r\n").encode(), peer_may_close=True)
                break
            if line.upper().endswith(b"CAPABILITY"):
                conn.line("* CAPABILITY " + COURIER_IMAP_CAPS)
                conn.line(tag + " OK CAPABILITY completed")
            else:
                raise ScriptError("unexpected command %r" % line[:40])
        if not close_after_login:
            conn.drain(0.5)
    return script


# ---- Courier POP3: its auth daemon down, TLS required ----

def test_courier_pop3_temporary_problem_then_close_is_unavailable(pam, pki):
    """Courier POP3 with authdaemond stopped answers PASS like this and closes at once. The old
    module said result=refused: an outage shown as a wrong password."""
    script = pop3_dialogue(COURIER_POP3_GREETING, [
        ("USER", "+OK Password required."),
        ("PASS", "-ERR Temporary problem, please try again later"),
    ], close_after="PASS")
    with FakeServer(script) as fake:
        r = pam.run(cfg_for(pki, fake, "pop3"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert ('server temporarily unavailable (PASS): "-ERR Temporary problem, please try again '
            'later"') in r.log_text(), r
    assert "result=unavailable" in r.log_text(), r


def test_courier_pop3_tls_required_is_not_a_refusal(pam, pki):
    """Courier POP3 with TLS required, tls = none: CAPA still lists USER, USER gets this. The
    password was never checked (nor sent): not a refusal."""
    script = pop3_dialogue(COURIER_POP3_GREETING, [
        ("USER", "-ERR TLS required to log in."),
        ("CAPA", COURIER_POP3_CAPA),
        ("PASS", "-ERR Login failed."),
    ])
    with FakeServer(script) as fake:
        r = pam.run(cfg_for(pki, fake, "pop3"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert ('server would not check the password (USER): "-ERR TLS required to log in."'
            in r.log_text()), r
    assert never_sent(fake)


# ---- Cyrus: policy refusals tagged [AUTH] ----

def test_cyrus_pop3_user_only_under_a_layer_is_not_a_refusal(pam, pki):
    """Cyrus tags its policy refusal [AUTH] like a wrong password; the text says the password
    was not looked at. (A CAPA that still lists USER made the old module say refused.)"""
    script = pop3_dialogue(CYRUS_POP3_GREETING, [
        ("USER", "-ERR [AUTH] USER command only available under a layer"),
        ("CAPA", "+OK List of capabilities follows\r\nSTLS\r\nUSER\r\n"
                 "IMPLEMENTATION Cyrus POP3 3.6.1\r\n."),
    ])
    with FakeServer(script) as fake:
        r = pam.run(cfg_for(pki, fake, "pop3"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert ('server would not check the password (USER): "-ERR [AUTH] USER command only '
            'available under a layer"') in r.log_text(), r
    assert never_sent(fake)


def test_cyrus_imap_login_only_under_a_layer_is_not_a_refusal(pam, pki):
    with FakeServer(imap_dialogue("* OK [CAPABILITY %s] localhost Cyrus IMAP 3.6.1 server ready"
                                  % CYRUS_IMAP_CAPS,
                                  "{tag} NO Login only available under a layer")) as fake:
        r = pam.run(cfg_for(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "server would not check the password (LOGIN)" in r.log_text(), r


# ---- real refusals stay refusals ----

def pop3_refusal(greeting, text, close):
    return pop3_dialogue(greeting, [("USER", "+OK Password required."), ("PASS", text)],
                         close_after="PASS" if close else None)


REFUSALS = [
    ("cyrus-imap", "imap", "{tag} NO Login failed: authentication failure"),
    ("courier-imap", "imap", "{tag} NO Login failed."),
    ("cyrus-pop3", "pop3", "-ERR [AUTH] Invalid login"),
    ("courier-pop3", "pop3", "-ERR Login failed."),
]


@pytest.mark.parametrize("who,protocol,text,close", [
    (who, protocol, text, close) for who, protocol, text in REFUSALS for close in (False, True)
], ids=["%s%s" % (who, "-then-close" if close else "")
        for who, _, _ in REFUSALS for close in (False, True)])
def test_real_refusal_texts_are_refusals(pam, pki, who, protocol, text, close):
    """A wrong password stays PAM_AUTH_ERR, also when the server hangs up right after saying so
    (after the password was sent, an ambiguous reply is a refusal)."""
    if protocol == "imap":
        greeting = "* OK [CAPABILITY %s] ready" % (
            CYRUS_IMAP_CAPS if who.startswith("cyrus") else COURIER_IMAP_CAPS)
        script = imap_dialogue(greeting, text, close_after_login=close)
    else:
        greeting = CYRUS_POP3_GREETING if who.startswith("cyrus") else COURIER_POP3_GREETING
        script = pop3_refusal(greeting, text, close)
    with FakeServer(script) as fake:
        r = pam.run(cfg_for(pki, fake, protocol), "alice", "wrong-Pa55")
    assert r.code == "PAM_AUTH_ERR", r
    assert "server refused credentials" in r.log_text(), r
    assert "result=refused" in r.log_text(), r


# ---- an administrator's refusal reason is no "try later" (issue 17, section 5) ----

NOLOGIN_REASON = "Account_temporarily_suspended,_try_again_later"


@pytest.mark.parametrize("protocol,extra", [("imap", ""), ("pop3", ""),
                                            ("pop3", "  apop = never\n")],
                         ids=["imap", "pop3-apop", "pop3-user-pass"])
def test_dovecot_nologin_reason_is_a_refusal(pam, pki, workdir, protocol, extra):
    """Dovecot refuses an account marked nologin with the administrator's reason as the text
    (passdb extra fields "nologin reason=..."). The reason says "temporarily" and "try again
    later"; before the fix those words anywhere in a reply made the refusal "unavailable", so
    the walk went on past on_reject = stop and a second server that accepts the password gave
    PAM_SUCCESS. Only codes and whole fixed texts count now: refused, and the walk stops."""
    dv = dovecot.Dovecot(tempfile.mkdtemp(prefix="dovecot-nologin-", dir=workdir),
                         {"alice": (PW, "nologin reason=" + NOLOGIN_REASON)},
                         pki["server_cert"], pki["server_key"]).start()

    def accepts(conn):
        raise ScriptError("on_reject = stop: the second server must not be asked")

    try:
        with FakeServer(accepts) as second:
            cfg = config(pki, server("dv", protocol, hosts("127.0.0.1"), dv.ports[protocol],
                                     extra=extra),
                         server("second", protocol, hosts(second.host), second.port),
                         head="on_reject = stop\n")
            r = pam.run(cfg, "alice", PW)
            connections = second.connections
    finally:
        dv.stop()
    assert r.code == "PAM_AUTH_ERR", r
    assert connections == 0, r
    assert "server refused credentials" in r.log_text(), r
    assert NOLOGIN_REASON in r.log_text(), r        # Dovecot did send the reason
    assert "result=refused" in r.log_text(), r


# ---- APOP the server cannot check ----

def test_apop_refused_then_user_pass_accepted_reports_the_cost(pam, pki):
    """Cyrus with saslauthd puts an APOP timestamp in its greeting but cannot check APOP: it
    refuses after its failure delay, then USER/PASS with the same password succeeds. The log
    says what APOP cost; the final reason is the success, not the APOP refusal."""
    delay = 0.4

    def refuse_apop(_line):
        time.sleep(delay)   # the server's failure delay (Cyrus: 3 s)
        return "-ERR [AUTH] authenticating: authentication failure"
    script = pop3_dialogue(CYRUS_POP3_GREETING + " " + CYRUS_TS, [
        ("APOP alice ", refuse_apop),
        ("USER alice", "+OK Name is a valid mailbox"),
        ("PASS " + PW, "+OK Mailbox locked and ready"),
    ])
    with FakeServer(script) as fake:
        r = pam.run(cfg_for(pki, fake, "pop3"), "alice", PW)
    assert r.code == "PAM_SUCCESS", r
    cost = [(prio, t) for prio, t in r.logs if "APOP refused but USER/PASS accepted" in t]
    assert len(cost) == 1, r
    prio, text = cost[0]
    assert prio == LOG_NOTICE, cost
    m = re.search(r'server "fake" \S+: APOP refused but USER/PASS accepted: set apop = never for '
                  r"this server to save (\d+) ms per login$", text)
    assert m, text
    # A lower bound only: the refusal cannot have come before the server sent it.
    assert int(m.group(1)) >= delay * 1000, text
    summary = walk_summary(r)
    assert ": accepted" in summary and "refused" not in summary and "APOP" not in summary, summary
    final = [t for _, t in r.logs if "result=accepted" in t]
    assert final and "refused" not in final[-1], r


def test_apop_refused_then_user_pass_refused_says_pass(pam, pki):
    """The control: both refused, the reason is the last step's (PASS), not APOP's."""
    script = pop3_dialogue(CYRUS_POP3_GREETING + " " + CYRUS_TS, [
        ("APOP alice ", "-ERR [AUTH] authenticating: authentication failure"),
        ("USER alice", "+OK Name is a valid mailbox"),
        ("PASS ", "-ERR [AUTH] Invalid login"),
    ])
    with FakeServer(script) as fake:
        r = pam.run(cfg_for(pki, fake, "pop3"), "alice", "wrong-Pa55")
    assert r.code == "PAM_AUTH_ERR", r
    final = [t for _, t in r.logs if "result=refused" in t]
    assert final and 'server refused credentials (PASS): "-ERR [AUTH] Invalid login"' in final[-1]
    assert "(APOP)" not in final[-1], final
    assert "APOP refused but USER/PASS accepted" not in r.log_text(), r


# ---- a verdict that comes after the deadline ----

def late_verdict_imap(conn):
    conn.line("* OK [CAPABILITY %s] ready" % CYRUS_IMAP_CAPS)
    line = conn.expect("A1 LOGIN ")
    conn.wait_closed()   # the refusal would come after the client's deadline
    conn.send("A1 NO Login failed: authentication failure\r\n", peer_may_close=True)
    return line


def test_verdict_after_the_timeout_is_unavailable_and_says_so(pam, pki):
    timeout = scaled(1.5)
    with FakeServer(late_verdict_imap) as fake:
        r = pam.run(cfg_for(pki, fake, "imap", timeout=timeout), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert re.search(r"no verdict within \d+ ms after the password was sent \(timeout %d ms\)"
                     % round(timeout * 1000), r.log_text()), r


def test_pop3_verdict_after_the_timeout_is_unavailable_and_says_so(pam, pki):
    def script(conn):
        conn.line(COURIER_POP3_GREETING)
        conn.expect("USER alice")
        conn.line("+OK Password required.")
        conn.expect("PASS ")
        conn.wait_closed()
    timeout = scaled(1.5)
    with FakeServer(script) as fake:
        r = pam.run(cfg_for(pki, fake, "pop3", timeout=timeout), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "no verdict within" in r.log_text() and "after the password was sent" in r.log_text()


def test_no_offline_acceptance_when_the_verdict_is_late_or_temporary(pam, pki, tmp_path):
    """The cache's offline grace never answers for a server that received the password: not
    after a withheld verdict, and not after a "temporary" reply (which a man in the middle could
    forge in place of a refusal)."""
    mode = {"now": "accept"}

    def script(conn):
        conn.line(COURIER_POP3_GREETING)
        conn.expect("USER alice")
        conn.line("+OK Password required.")
        conn.expect("PASS ")
        if mode["now"] == "accept":
            conn.line("+OK logged in.")
            conn.drain(0.5)
        elif mode["now"] == "late":
            conn.wait_closed()
        else:
            conn.line("-ERR Temporary problem, please try again later")
    head = cache_section(str(tmp_path / "cache"), offline=3600)
    with FakeServer(script) as fake:
        cfg = cfg_for(pki, fake, "pop3", timeout=scaled(1.5), head=head)
        first = pam.run(cfg, "alice", PW)
        assert first.code == "PAM_SUCCESS", first
        mode["now"] = "late"
        late = pam.run(cfg, "alice", PW)
        mode["now"] = "temporary"
        temporary = pam.run(cfg, "alice", PW)
    for r in (late, temporary):
        assert r.code == "PAM_AUTHINFO_UNAVAIL", r
        line = final_line(r)[1]
        assert "offline cache not used: a server received the credentials" in line, r
    assert "no verdict within" in final_line(late)[1], late
    assert "server temporarily unavailable (PASS)" in final_line(temporary)[1], temporary


# ---- Courier IMAP in the same outage ----

def test_imap_bye_temporary_problem_is_unavailable(pam, pki):
    with FakeServer(imap_dialogue("* OK [CAPABILITY %s] Courier-IMAP ready." % COURIER_IMAP_CAPS,
                                  "* BYE Temporary problem, please try again later",
                                  close_after_login=True)) as fake:
        r = pam.run(cfg_for(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert 'server said BYE: "Temporary problem, please try again later"' in r.log_text(), r


def test_an_earlier_bye_does_not_explain_a_later_close(pam, pki):
    """A BYE sent with the CAPABILITY answer (the server carried on) is not the reason the
    connection closed after LOGIN: the reason is the close, after the password was sent."""
    def script(conn):
        conn.line("* OK ready")
        conn.expect("A1 CAPABILITY")
        conn.line("* BYE maybe later")
        conn.line("* CAPABILITY " + CYRUS_IMAP_CAPS)
        conn.line("A1 OK done")
        conn.expect("A2 LOGIN ")
    with FakeServer(script) as fake:
        r = pam.run(cfg_for(pki, fake, "imap"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    final = [t for _, t in r.logs if "result=unavailable" in t]
    assert final and "BYE" not in final[-1], r
    assert re.search(r"connection closed by the server \d+ ms after the password was sent, "
                     r"without a verdict", final[-1]), r


# ---- a BYE before the credentials went out judges nothing ----

def bye_before_credentials(stage):
    """An IMAP server (or, before STARTTLS, anyone on the path) that answers with a BYE carrying
    a refusal code, and hangs up, before the password was sent: in place of the CAPABILITY
    answer or of STARTTLS's (both in clear), or of the "+" that AUTHENTICATE PLAIN waits for."""
    def script(conn):
        conn.line("* OK %s fake" % ("[CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN]"
                                      if stage == "authenticate" else
                                      "[CAPABILITY IMAP4rev1 STARTTLS]" if stage == "starttls"
                                      else ""))
        conn.expect({"capability": "A1 CAPABILITY", "starttls": "A1 STARTTLS",
                     "authenticate": "A1 AUTHENTICATE PLAIN"}[stage])
        conn.line("* BYE [AUTHENTICATIONFAILED] Authentication failed.")
    return script


@pytest.mark.parametrize("stage", ["capability", "starttls", "authenticate"])
def test_bye_with_a_refusal_code_before_the_password_is_no_refusal(pam, pki, stage, tmp_path):
    """A refusal of credentials the server never had is no refusal: before STARTTLS anyone on the
    path can send it, and taken as one it would end the walk (on_reject = stop) before a server
    that could judge was asked, and make the cache forget the password. The old module said
    result=refused here."""
    tls = "none" if stage == "authenticate" else "starttls"
    with FakeServer(bye_before_credentials(stage)) as fake, \
            FakeServer(imap_accepting()) as good:
        cfg = config(pki, server("first", "imap", hosts(fake.host), fake.port, tls),
                     server("second", "imap", hosts(good.host), good.port),
                     head="on_reject = stop\n", timeout=scaled(5), connect_timeout=scaled(1))
        r = pam.run(cfg, "alice", PW)
    assert never_sent(fake)
    assert r.code == "PAM_SUCCESS", r
    assert "server=second" in r.log_text(), r
    assert 'server "first"' in r.log_text() and "server refused credentials" not in r.log_text(), r


def test_bye_with_a_refusal_code_after_the_password_is_a_refusal(pam, pki):
    """The counterpart: in place of LOGIN's answer, the same BYE is the server's verdict."""
    with FakeServer(imap_dialogue("* OK [CAPABILITY %s] ready" % CYRUS_IMAP_CAPS,
                                  "* BYE [AUTHENTICATIONFAILED] Authentication failed.",
                                  close_after_login=True)) as fake:
        r = pam.run(cfg_for(pki, fake, "imap"), "alice", "wrong-Pa55")
    assert r.code == "PAM_AUTH_ERR", r
    assert 'server refused credentials (BYE): "Authentication failed."' in r.log_text(), r


# ---- the default timeout and dead servers ----

def test_default_timeout_does_not_make_a_dead_server_cost_more(root_net, pam, pki):
    """timeout defaults to 20 s to leave room for failure delays; a server that never answers
    the TCP connect still costs connect_timeout, not timeout. No timeout line in the config."""
    connect_timeout = scaled(1)
    with netns.NetNs() as ns:
        dead = ns.black_hole()
        with FakeServer(imap_accepting()) as fake:
            cfg = ('connect_timeout = %s\nfail_delay = 0\nca_file = "%s"\n' % (
                connect_timeout, pki["ca"])
                + server("dead", "imap", hosts(dead), 143)
                + server("live", "imap", hosts(fake.host), fake.port))
            r = pam.run(cfg, "alice", PW)
    assert r.code == "PAM_SUCCESS", r
    assert "server=live" in r.log_text(), r
    took = int(re.search(r"elapsed_ms=(\d+)", r.log_text()).group(1))
    # Correct: one 250 ms stagger plus a login (the walk's race starts the live server while the
    # dead one is still trying, test_failover.py), at most connect_timeout plus a login. Broken
    # (the dead server given the whole default timeout): 20 s.
    assert 250 <= took <= (connect_timeout + scaled(3)) * 1000, r
