"""Forwarding the end user's address (issue 10) and pipelining after STARTTLS, through real libpam
(pamtester under pam_wrapper, PAM_RHOST set with -I rhost=).

Fake servers check the wire: IMAP ID arrives in the same read as the login command (one write, no
round trip), its reply never decides the outcome, and nothing is sent without a numeric
PAM_RHOST, with forward_client_ip = never, or where cleartext credentials are forbidden. POP3
XCLIENT is never sent (issue 17: an answer of unknown length in front of untagged credentials).
After STARTTLS, CAPABILITY and LOGIN go in one write, and a LOGINDISABLED that appears after TLS
keeps its meaning. A real Dovecot with its brute-force defences shows that one attacker's wrong
passwords no longer slow another user's login when the address is forwarded.
"""
import re
import tempfile
import time

import pytest

import dovecot
import netns
from fakeserver import FakeServer, ScriptError, tag_of, tls_server_context
from helpers import config, hosts, scaled, server

PW = "s3cret"
CLIENT = "192.0.2.10"
ATTACKER = "198.51.100.66"
CAPS = "IMAP4rev1 LITERAL+ ID AUTH=PLAIN"


def fake_cfg(pki, fake, protocol, tls="none", extra="", head="", host=None, cleartext=None):
    return config(pki, server("fake", protocol, hosts(host or fake.host), fake.port, tls,
                              extra=extra, cleartext=cleartext), head=head)


def debug_lines(result):
    return result.log_text()


# ---- IMAP ----

def imap_script(seen, caps=CAPS, id_reply="{tag} OK ID completed", login_reply="{tag} OK in",
                id_first=True):
    """Greet; record the lines of the first write; answer the ID (if any) and the LOGIN."""
    def script(conn):
        conn.line("* OK [CAPABILITY %s] fake" % caps)
        lines = conn.one_write()
        seen.extend(lines)
        ids = [ln for ln in lines if b" ID " in ln]
        logins = [ln for ln in lines if b" LOGIN " in ln]
        if not logins:
            raise ScriptError("no LOGIN in the first write: %r" % lines)
        replies = []
        for ln in ids:
            replies.append("* ID NIL")
            replies.append(id_reply.format(tag=tag_of(ln)))
        login = login_reply.format(tag=tag_of(logins[0]))
        replies = replies + [login] if id_first else [login] + replies
        conn.send("".join(r + "\r\n" for r in replies))
        conn.drain(0.5)
    return script


def test_imap_id_goes_with_login_in_one_write(pam, pki):
    seen = []
    with FakeServer(imap_script(seen)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW, rhost=CLIENT)
    assert r.code == "PAM_SUCCESS", r
    assert len(seen) == 2, seen
    assert re.fullmatch(rb'A\d+ ID \("x-originating-ip" "192\.0\.2\.10"\)', seen[0]), seen
    assert re.fullmatch(rb"A\d+ LOGIN \"alice\" \"s3cret\"", seen[1]), seen
    assert tag_of(seen[0]) != tag_of(seen[1])


def test_imap_ipv6_rhost_is_forwarded_canonical(pam, pki):
    seen = []
    with FakeServer(imap_script(seen)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW, rhost="2001:DB8:0:0::7")
    assert r.code == "PAM_SUCCESS", r
    assert b'"x-originating-ip" "2001:db8::7"' in seen[0], seen


@pytest.mark.parametrize("id_reply", ["{tag} NO not from you", "{tag} BAD unknown command"])
def test_imap_id_refused_is_no_verdict(pam, pki, id_reply):
    seen = []
    with FakeServer(imap_script(seen, id_reply=id_reply)) as fake:
        ok = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW, rhost=CLIENT)
    assert ok.code == "PAM_SUCCESS", ok
    assert "did not take the forwarded client address" in debug_lines(ok), ok
    with FakeServer(imap_script(seen, id_reply=id_reply, login_reply="{tag} NO wrong")) as fake:
        no = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW, rhost=CLIENT)
    assert no.code == "PAM_AUTH_ERR", no


@pytest.mark.parametrize("id_reply", ["+ more please", "{tag} PREAUTH huh", "garbage"])
def test_imap_odd_id_reply_never_a_verdict(pam, pki, id_reply):
    """Whatever the server answers the ID with, the LOGIN's OK behind it is not read as a
    verdict unless the ID's reply was a proper tagged one."""
    seen = []
    with FakeServer(imap_script(seen, id_reply=id_reply)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW, rhost=CLIENT)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r


def test_imap_login_answered_before_id_is_no_verdict(pam, pki):
    seen = []
    with FakeServer(imap_script(seen, id_first=False)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), "alice", PW, rhost=CLIENT)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "unexpected reply to ID" in r.log_text(), r


@pytest.mark.parametrize("rhost,head,extra,caps", [
    (None, "", "", CAPS),                                   # no PAM_RHOST (a local su)
    ("mail.example.org", "", "", CAPS),                     # a name, never sent
    ("fe80::1%eth0", "", "", CAPS),                         # scoped: not a plain address
    ("[192.0.2.10]", "", "", CAPS),
    ('192.0.2.10" "x', "", "", CAPS),                       # needs quoting: never sent
    (CLIENT, "forward_client_ip = never\n", "", CAPS),      # globally off
    (CLIENT, "", "  forward_client_ip = never\n", CAPS),    # off for this server
    (CLIENT, "", "", "IMAP4rev1 LITERAL+ AUTH=PLAIN"),      # the server offers no ID
], ids=["no-rhost", "name", "scoped", "bracketed", "quote", "never-global", "never-server",
        "no-ID"])
def test_imap_nothing_forwarded(pam, pki, rhost, head, extra, caps):
    seen = []
    with FakeServer(imap_script(seen, caps=caps)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", head=head, extra=extra), "alice", PW,
                    rhost=rhost)
        received = fake.received
    assert r.code == "PAM_SUCCESS", r
    assert len(seen) == 1 and b" LOGIN " in seen[0], seen
    assert b" ID " not in received and b"originating" not in received, received


def test_server_never_overrides_global_auto(pam, pki):
    seen = []
    with FakeServer(imap_script(seen)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", head="forward_client_ip = never\n",
                             extra="  forward_client_ip = auto\n"), "alice", PW, rhost=CLIENT)
    assert r.code == "PAM_SUCCESS", r
    assert len(seen) == 2 and b" ID " in seen[0], seen


def test_bad_forward_value_is_a_config_error(pam, pki):
    with FakeServer(imap_script([])) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", head="forward_client_ip = always\n"),
                    "alice", PW, rhost=CLIENT)
        assert fake.connections == 0
    assert r.code == "PAM_SERVICE_ERR", r
    assert "forward_client_ip" in r.log_text(), r


def test_nothing_forwarded_where_cleartext_is_forbidden(root_net, pam, pki):
    """A peer that is not loopback, tls = none, allow_cleartext false: the login does not start,
    and no ID goes out either."""
    with netns.NetNs() as ns:
        with FakeServer(lambda conn: (conn.line("* OK [CAPABILITY %s] fake" % CAPS),
                                      conn.drain(scaled(2))), sock=ns.listen()) as fake:
            r = pam.run(fake_cfg(pki, fake, "imap", cleartext=False), "alice", PW,
                        rhost=CLIENT)
            received = fake.received
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert b" ID " not in received and b"LOGIN" not in received, received


@pytest.fixture
def root_net():
    ok, why = netns.available()
    if not ok:
        pytest.fail("this test needs root (CAP_NET_ADMIN): " + why)


# ---- IMAP STARTTLS: CAPABILITY (ID) LOGIN in one write over the verified channel ----

def starttls_script(pki, seen, post_caps, login_reply="{tag} OK in", after=None):
    ctx = tls_server_context(pki["server_cert"], pki["server_key"])

    def script(conn):
        conn.imap_starttls("* OK [CAPABILITY IMAP4rev1 ID STARTTLS LOGINDISABLED] fake", ctx)
        lines = conn.one_write()
        seen.extend(lines)
        out = []
        for ln in lines:
            t = tag_of(ln)
            if ln.upper().endswith(b"CAPABILITY"):
                out += ["* CAPABILITY " + post_caps, t + " OK done"]
            elif b" ID " in ln:
                out += ["* ID NIL", t + " OK ID completed"]
            elif b" LOGIN " in ln:
                out.append(login_reply.format(tag=t))
        conn.send("".join(x + "\r\n" for x in out))
        if after is not None:
            after(conn, seen)
        conn.drain(0.5)
    return script


def test_starttls_capability_and_login_in_one_write(pam, pki):
    seen = []
    with FakeServer(starttls_script(pki, seen, "IMAP4rev1 ID AUTH=PLAIN")) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", tls="starttls", host="localhost"), "alice", PW,
                    rhost=CLIENT)
    assert r.code == "PAM_SUCCESS", r
    assert len(seen) == 3, seen
    assert seen[0].endswith(b" CAPABILITY") and b" ID (" in seen[1], seen
    assert re.fullmatch(rb"A\d+ LOGIN \"alice\" \"s3cret\"", seen[2]), seen


def test_starttls_without_rhost_pipelines_capability_and_login(pam, pki):
    seen = []
    with FakeServer(starttls_script(pki, seen, "IMAP4rev1 ID AUTH=PLAIN")) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", tls="starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_SUCCESS", r
    assert len(seen) == 2 and seen[0].endswith(b" CAPABILITY") and b" LOGIN " in seen[1], seen


def test_starttls_logindisabled_after_tls_falls_back_to_authenticate(pam, pki):
    """LOGIN went out with the CAPABILITY that, after TLS, says LOGINDISABLED: its NO is not a
    refusal of the password; the client goes on with AUTHENTICATE PLAIN as it would have."""
    def after(conn, seen):
        line = conn.readline()
        if line is None or b"AUTHENTICATE PLAIN" not in line.upper():
            raise ScriptError("expected AUTHENTICATE PLAIN, got %r" % line)
        seen.append(line)
        conn.line(tag_of(line) + " OK authenticated")

    seen = []
    with FakeServer(starttls_script(pki, seen, "IMAP4rev1 SASL-IR LOGINDISABLED AUTH=PLAIN",
                                    login_reply="{tag} NO [PRIVACYREQUIRED] use AUTHENTICATE",
                                    after=after)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", tls="starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_SUCCESS", r
    assert b"AUTHENTICATE PLAIN" in seen[-1].upper(), seen


@pytest.mark.parametrize("reply", ["{tag} NO no LOGIN here", "{tag} BAD disabled"])
def test_starttls_logindisabled_without_plain_is_no_refusal(pam, pki, reply):
    """Without pipelining this server would get no credentials (unavailable); with it, LOGIN's
    NO must not become "wrong password"."""
    seen = []
    with FakeServer(starttls_script(pki, seen, "IMAP4rev1 LOGINDISABLED",
                                    login_reply=reply)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", tls="starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "LOGINDISABLED" in r.log_text(), r


def test_starttls_logindisabled_but_login_ok_stands(pam, pki):
    seen = []
    with FakeServer(starttls_script(pki, seen, "IMAP4rev1 LOGINDISABLED")) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", tls="starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_SUCCESS", r


def test_starttls_capability_failure_is_no_verdict(pam, pki):
    """The pipelined CAPABILITY fails: the LOGIN's OK behind it is never read as a verdict."""
    ctx = tls_server_context(pki["server_cert"], pki["server_key"])

    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 STARTTLS] fake")
        line = conn.readline()
        conn.line(tag_of(line) + " OK begin TLS")
        conn.start_tls(ctx)
        lines = conn.one_write()
        conn.send("".join("%s %s\r\n" % (tag_of(ln), "BAD no" if b"CAPAB" in ln else "OK in")
                          for ln in lines))
        conn.drain(0.5)

    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", tls="starttls", host="localhost"), "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r


def test_starttls_literal_password_is_not_pipelined(pam, pki):
    """A password that needs a literal depends on LITERAL+ after TLS: CAPABILITY goes alone."""
    pw = "gr\u00fc\u00df"
    ctx = tls_server_context(pki["server_cert"], pki["server_key"])
    seen = []

    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 STARTTLS] fake")
        line = conn.readline()
        conn.line(tag_of(line) + " OK begin TLS")
        conn.start_tls(ctx)
        first = conn.one_write()
        seen.append(first)
        conn.line("* CAPABILITY IMAP4rev1 LITERAL+")
        conn.line(tag_of(first[0]) + " OK done")
        login = conn.readline()
        seen.append(login)
        conn.readline()  # the literal's bytes
        conn.line(tag_of(login) + " OK in")
        conn.drain(0.5)

    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap", tls="starttls", host="localhost"), "alice", pw)
    assert r.code == "PAM_SUCCESS", r
    assert len(seen[0]) == 1 and seen[0][0].endswith(b" CAPABILITY"), seen
    assert b" LOGIN \"alice\" {" in seen[1], seen


# ---- POP3: never forwarded (issue 17 section 2) ----

def late_line_script(seen, greeting="+OK [XCLIENT] fake <1.2@fake>"):
    """A server whose answers fall one line behind once XCLIENT arrived: it answers XCLIENT with
    "+OK Updated" and, late (with the next command), "+OK fake ready"; from then on every
    command gets the previous command's answer first. It refuses every credential (APOP, PASS)
    and takes USER. A client that sent XCLIENT in front of credentials reads "+OK fake ready"
    (APOP) or USER's "+OK" (PASS) as their verdict; a client that did not is answered in step."""
    def script(conn):
        conn.line(greeting)
        owed = []          # answers the server still holds back (one behind after XCLIENT)
        behind = False
        while True:
            try:
                lines = conn.one_write()
            except ScriptError:
                return     # the client hung up
            seen.extend(lines)
            out = []
            for ln in lines:
                if ln.startswith(b"XCLIENT "):
                    out.append("+OK Updated")
                    behind = True
                    owed.append("+OK fake ready")
                    continue
                answer = "+OK user" if ln.startswith(b"USER ") else \
                    "+OK bye" if ln.startswith(b"QUIT") else "-ERR [AUTH] Authentication failed."
                if behind:
                    out.extend(owed)
                    owed = [answer]
                else:
                    out.append(answer)
            if not conn.send("".join(x + "\r\n" for x in out), peer_may_close=True):
                return
    return script


@pytest.mark.parametrize("extra,mech", [("", "APOP"), ("  apop = never\n", "PASS")],
                         ids=["apop", "user-pass"])
def test_pop3_late_xclient_line_is_never_a_verdict(pam, pki, extra, mech):
    """Issue 17, section 2, as reproduced: a server answering XCLIENT with a second, late line.
    Before the fix the late "+OK fake ready" was APOP's verdict, or (XCLIENT pipelined with USER)
    USER's own "+OK" the verdict on PASS: a wrong password got PAM_SUCCESS. Now XCLIENT never
    goes out over POP3, and the server's own refusal is the verdict."""
    seen = []
    with FakeServer(late_line_script(seen)) as fake:
        r = pam.run(fake_cfg(pki, fake, "pop3", extra=extra), "alice", "wrong-Pa55",
                    rhost=CLIENT)
        received = fake.received
    assert r.code == "PAM_AUTH_ERR", r
    assert b"XCLIENT" not in received, received
    assert any(ln.startswith(mech.encode() + b" ") for ln in seen), seen
    assert "the client address is not forwarded" in debug_lines(r), r


@pytest.mark.parametrize("rhost,head,greeting,apop", [
    (CLIENT, "", "+OK [XCLIENT] fake <1.2@fake>", ""),
    (CLIENT, "", "+OK [XCLIENT] fake <1.2@fake>", "  apop = never\n"),
    (None, "", "+OK [XCLIENT] fake <1.2@fake>", ""),
    ("mail.example.org", "", "+OK [XCLIENT] fake <1.2@fake>", ""),
    (CLIENT, "forward_client_ip = never\n", "+OK [XCLIENT] fake <1.2@fake>", ""),
    (CLIENT, "", "+OK fake <1.2@fake>", ""),                  # not offered
], ids=["apop", "user-pass", "no-rhost", "name", "never", "not-offered"])
def test_pop3_nothing_forwarded(pam, pki, rhost, head, greeting, apop):
    """The right password is accepted, and XCLIENT is never sent, offered or not."""
    def script(conn):
        conn.line(greeting)
        while True:
            try:
                lines = conn.one_write()
            except ScriptError:
                return
            for ln in lines:
                if ln.startswith(b"QUIT"):
                    conn.send("+OK bye\r\n", peer_may_close=True)
                    return
                conn.line("+OK in" if not ln.startswith(b"XCLIENT") else "+OK Updated")

    with FakeServer(script) as fake:
        r = pam.run(fake_cfg(pki, fake, "pop3", head=head, extra=apop), "alice", PW, rhost=rhost)
        received = fake.received
    assert r.code == "PAM_SUCCESS", r
    assert b"XCLIENT" not in received, received


# ---- a real Dovecot with its brute-force defences ----

def test_dovecot_attack_does_not_slow_another_client(pam, pki, workdir):
    """Dovecot as shipped penalises a client address after failed logins (auth_failure_delay,
    then anvil's penalty of up to 15 s). The PAM host is one address for all its users; with the
    end user's address forwarded, an attacker's wrong passwords cost only the attacker."""
    # Under the session's workdir: Dovecot's auth process (user dovecot) must reach the passwd.
    dv = dovecot.Dovecot(tempfile.mkdtemp(prefix="dovecot-penalty-", dir=workdir),
                         {"alice": PW, "mallory": "m-pw"}, pki["server_cert"], pki["server_key"],
                         brute_force_defaults=True,
                         trusted="127.0.0.0/8 ::1").start()
    try:
        imap = config(pki, server("dv", "imap", '"127.0.0.1"', dv.ports["imap"]),
                      timeout=scaled(40))
        pop3 = config(pki, server("dv", "pop3", '"127.0.0.1"', dv.ports["pop3"],
                                  extra="  apop = never\n"), timeout=scaled(40))
        start = time.monotonic()
        assert pam.run(imap, "alice", PW, rhost=CLIENT).code == "PAM_SUCCESS"
        baseline = time.monotonic() - start
        for cfg in (imap, imap, pop3):
            bad = pam.run(cfg, "mallory", "wrong-pw", rhost=ATTACKER)
            assert bad.code == "PAM_AUTH_ERR", bad
        start = time.monotonic()
        good = pam.run(imap, "alice", PW, rhost=CLIENT)
        took = time.monotonic() - start
        assert good.code == "PAM_SUCCESS", good
        # After these failures Dovecot holds an IMAP login from the same address for 4 s (anvil
        # doubles from 2 s, up to 15 s), in wall time whatever the client's slowdown: without
        # forwarding this login takes baseline + 4 s (measured 4.02 s against 0.03 s). Dovecot
        # 2.3 delayed no POP3 login in bench/roundtrips.py, so POP3 is checked by its log only.
        assert took < baseline + 3.0, (took, baseline, good)
        assert pam.run(pop3, "alice", PW, rhost=CLIENT).code == "PAM_SUCCESS"
        # IMAP over STARTTLS (CAPABILITY, ID and LOGIN pipelined) forwards; POP3 never does,
        # although this Dovecot trusts us and offers [XCLIENT] (issue 17: untagged answers).
        for proto, port, tls, method, rip in (
                ("pop3", "pop3", "none", "APOP", r"(127\.0\.0\.1|::1)"),
                ("imap", "imap", "starttls", "PLAIN", r"2001:db8::a"),
                ("pop3", "pop3", "starttls", "APOP", r"(127\.0\.0\.1|::1)")):
            extra = "  allow_cleartext = true\n" if tls == "none" else ""
            cfg = config(pki, server("dv", proto, '"localhost"', dv.ports[port], tls, extra),
                         timeout=scaled(40))
            offset = dv.log_size()
            r = pam.run(cfg, "alice", PW, rhost="2001:db8::a")
            assert r.code == "PAM_SUCCESS", (proto, tls, r)
            time.sleep(0.3)
            assert re.search(r"%s-login: Info: Login: user=<alice>, method=%s, rip=%s,"
                             % (proto, method, rip), dv.log_since(offset)), dv.log_since(offset)
        time.sleep(0.3)
        log = dv.log()
        assert re.search(r"imap-login: Info: Login: user=<alice>.*rip=192\.0\.2\.10", log), log
        assert not re.search(r"pop3-login: .*rip=192\.0\.2\.10", log), log
        assert re.search(r"imap-login: .*user=<mallory>.*rip=198\.51\.100\.66", log), log
        assert not re.search(r"pop3-login: .*rip=198\.51\.100\.66", log), log
    finally:
        dv.stop()
