"""Issue 11, part 1: mailauth-probe against the suite's Dovecot and fake servers. The probe reads
the config with the module's own code, walks every address without credentials, and with --user
logs in through the module's own entry point."""
import json
import os
import re
import ssl
import subprocess
import time

import pytest

import netns
from fakeserver import FakeServer, tls_server_context
from helpers import closed_port, config, hosts, scaled, server

# The exit codes of man/mailauth-probe.8.
READY, USAGE, CONFIG, RESOLVE, CONNECT, GREETING, TLS, CAPS, CREDS = range(9)
LOGIN_REFUSED, LOGIN_FAILED = 9, 10

FIELDS = {"server", "protocol", "host", "port", "tls_mode", "address", "resolve_ms", "resolved",
          "connect_ms", "greeting", "capabilities_before_tls", "capabilities_after_tls", "tls",
          "verify", "forward_client_ip", "credentials_allowed", "credentials_reason",
          "mechanism", "forwarding", "failed_stage", "ready", "verdict"}


@pytest.fixture(scope="session")
def tool():
    path = os.environ.get("MAILAUTH_PROBE_TOOL")
    if not path or not os.path.exists(path):
        pytest.fail("MAILAUTH_PROBE_TOOL must name the built mailauth-probe (got %r)" % path)
    return path


# The valgrind suite (tests/meson.build) runs the probe under memcheck in the cases below, which
# between them reach every path of the tool (every mode, TLS failure and second look, --user,
# the terminal, hostile text, bad config); the other cases run unwrapped there too, to keep the
# suite's time in bounds.
WRAPPER = os.environ.get("MAILAUTH_WRAPPER", "").split()
MEMCHECKED = {"test_every_mode_ready", "test_check_config_reports_file_and_line",
              "test_wrong_certificate_name", "test_untrusted_certificate_over_starttls",
              "test_closed_port", "test_user_login_password_from_stdin",
              "test_user_password_from_terminal_echo_off",
              "test_interrupted_at_the_prompt_restores_echo", "test_hostile_greeting_escaped"}


class Probe:
    def __init__(self, tool, directory, wrapper):
        self.tool = tool
        self.dir = directory
        self.wrapper = wrapper

    def write(self, text, name="probe.conf"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def run(self, cfg_text, *args, stdin=b"", timeout=None):
        path = self.write(cfg_text) if cfg_text is not None else None
        argv = self.wrapper + [self.tool] + (["--config", path] if path else []) + list(args)
        r = subprocess.run(argv, input=stdin, capture_output=True,
                           timeout=timeout or scaled(60))
        r.path = path
        r.out = r.stdout.decode("utf-8", "replace")
        r.err = r.stderr.decode("utf-8", "replace")
        return r

    def json(self, cfg_text, *args, **kw):
        r = self.run(cfg_text, "--json", *args, **kw)
        objs = [json.loads(line) for line in r.out.splitlines()]
        return r, objs


@pytest.fixture
def probe(tool, tmp_path, request):
    os.chmod(tmp_path, 0o755)
    return Probe(tool, str(tmp_path),
                 WRAPPER if request.node.originalname in MEMCHECKED else [])


def dv_server(dv, label, protocol, tls, host="localhost", extra=""):
    port = {("imap", "implicit"): "imaps", ("pop3", "implicit"): "pop3s"}.get(
        (protocol, tls), protocol)
    return server(label, protocol, hosts(host), dv.ports[port], tls, extra=extra)


def imap_greeter(greeting, answers=None):
    """Greet; answer each expected command (by verb) with the given lines ({tag} filled in)."""
    def script(conn):
        conn.line(greeting)
        for verb, lines in (answers or []):
            line = conn.readline(scaled(10))
            if line is None:
                return
            tag, got = line.decode().split(" ", 1)
            assert got.upper() == verb, (verb, line)
            for out in lines:
                conn.line(out.format(tag=tag))
        conn.drain(scaled(1))
    return script


# ---- the configuration ----

def test_check_config_valid(probe, pki):
    r = probe.run(config(pki, server("s", "imap", hosts("127.0.0.1"), closed_port())),
                  "--check-config")
    assert r.returncode == READY, r
    assert "is valid: 1 server" in r.out
    r, objs = probe.json(config(pki, server("s", "imap", hosts("127.0.0.1"), closed_port())),
                         "--check-config")
    assert r.returncode == READY and objs == [{"config": r.path, "valid": True, "servers": 1}]


def test_check_config_reports_file_and_line(probe, pki):
    text = config(pki, server("s", "imap", hosts("127.0.0.1"), 143))
    text += "bogus_option = 1\n"
    line = text.count("\n")
    r = probe.run(text, "--check-config")
    assert r.returncode == CONFIG, r
    assert "%s:%d:" % (r.path, line) in r.err, r.err
    # the full run reads the config exactly the same way
    r2 = probe.run(text)
    assert r2.returncode == CONFIG and "%s:%d:" % (r.path, line) in r2.err, r2


def test_invalid_value_is_config_error(probe, pki):
    r = probe.run(config(pki, server("s", "imap", hosts("127.0.0.1"), 143, tls="sometimes")),
                  "--check-config")
    assert r.returncode == CONFIG, r
    assert re.search(r"probe\.conf:\d+:", r.err), r.err


def test_unreadable_config(probe):
    r = probe.run(None, "--config", os.path.join(probe.dir, "missing.conf"), "--check-config")
    assert r.returncode == CONFIG, r
    assert "missing.conf" in r.err and "unusable" in r.err, r.err


def test_unsafe_config_refused_like_the_module(probe, pki):
    path = probe.write(config(pki, server("s", "imap", hosts("127.0.0.1"), 143)))
    os.chmod(path, 0o666)
    r = probe.run(None, "--config", path, "--check-config")
    assert r.returncode == CONFIG, r


@pytest.mark.parametrize("args", [["--frobnicate"], ["--stop-after", "login"], ["extra"],
                                  ["--user", "alice", "--stop-after", "tls"]])
def test_bad_arguments(probe, pki, args):
    r = probe.run(config(pki, server("s", "imap", hosts("127.0.0.1"), 143)), *args)
    assert r.returncode == USAGE, r
    assert r.err.strip(), r


# ---- every mode against the real Dovecot ----

@pytest.mark.parametrize("protocol,tls,mech", [
    ("imap", "none", "LOGIN"), ("imap", "starttls", "LOGIN"), ("imap", "implicit", "LOGIN"),
    ("pop3", "none", "APOP"), ("pop3", "starttls", "APOP"), ("pop3", "implicit", "APOP")])
def test_every_mode_ready(probe, dv, pki, protocol, tls, mech):
    cfg = config(pki, dv_server(dv, "dv", protocol, tls))
    r, objs = probe.json(cfg)
    assert r.returncode == READY, (r, r.err)
    assert len(objs) >= 1
    for o in objs:
        assert FIELDS <= set(o), o
        assert o["ready"] is True and o["verdict"] == "ready", o
        assert o["mechanism"] == mech and o["credentials_allowed"] is True, o
        assert o["greeting"].startswith("* OK" if protocol == "imap" else "+OK"), o
        assert o["connect_ms"] >= 0 and o["resolve_ms"] >= 0, o
        if tls == "none":
            # a high loopback port: allowed only by allow_cleartext (issue 17)
            assert o["tls"] is None and "allow_cleartext" in o["credentials_reason"], o
            assert o["capabilities_before_tls"], o
        else:
            assert o["tls"]["version"].startswith("TLSv1."), o
            assert o["tls"]["cipher"] and o["tls"]["verified"] is True, o
            leaf = o["tls"]["chain"][0]
            assert leaf["subject"] == "CN=localhost" and "test CA" in leaf["issuer"], leaf
            assert re.match(r"\d{4}-\d\d-\d\dT", leaf["not_after"]) and leaf["days_left"] > 0
            assert o["capabilities_after_tls"] and o["credentials_reason"] == "over TLS", o
        if tls == "starttls":
            starttls_word = "STARTTLS" if protocol == "imap" else "STLS"
            assert starttls_word in o["capabilities_before_tls"], o
            assert starttls_word not in o["capabilities_after_tls"], o
        if protocol == "imap":
            assert o["forwarding"] == "ID", o   # Dovecot announces ID
    human = probe.run(cfg)
    assert human.returncode == READY and "verdict        ready" in human.out, human


def test_mechanism_follows_the_login_path(probe, dv, dv_noapop, pki):
    cfg = config(pki, dv_server(dv, "never", "pop3", "none", extra="  apop = never\n"),
                 dv_server(dv_noapop, "noapop", "pop3", "none"))
    r, objs = probe.json(cfg)
    assert r.returncode == READY, r
    assert [o["mechanism"] for o in objs] == ["USER/PASS", "USER/PASS"], objs
    cfg = config(pki, dv_server(dv_noapop, "only", "pop3", "none", extra="  apop = only\n"))
    r, objs = probe.json(cfg)
    assert r.returncode == CREDS, r
    assert "APOP timestamp" in objs[0]["verdict"], objs
    with FakeServer(imap_greeter("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN] x")) as f:
        r, objs = probe.json(config(pki, server("f", "imap", hosts(f.host), f.port)))
    assert r.returncode == READY and objs[0]["mechanism"] == "AUTHENTICATE PLAIN", objs
    assert objs[0]["forwarding"] is False, objs
    with FakeServer(imap_greeter("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] x")) as f:
        r, objs = probe.json(config(pki, server("f", "imap", hosts(f.host), f.port)))
    assert r.returncode == CREDS and "LOGINDISABLED" in objs[0]["verdict"], objs


def test_logindisabled_after_starttls_names_the_pipelined_login(probe, pki):
    ctx = tls_server_context(pki["server_cert"], pki["server_key"])

    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 STARTTLS] x")
        tag = conn.expect("P1 STARTTLS").split(b" ")[0].decode()
        conn.line(tag + " OK begin TLS")
        conn.start_tls(ctx)
        tag = conn.expect("P2 CAPABILITY").split(b" ")[0].decode()
        conn.line("* CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN")
        conn.line(tag + " OK done")
        conn.drain(scaled(1))
    with FakeServer(script) as f:
        r, objs = probe.json(config(pki, server("f", "imap", hosts("localhost"), f.port,
                                                "starttls")))
    assert r.returncode == READY, (r, objs)
    # the login sends LOGIN first, pipelined behind the CAPABILITY; its NO is no verdict under
    # LOGINDISABLED, so AUTHENTICATE PLAIN follows (the plan says both, in order)
    assert objs[0]["mechanism"] == "LOGIN", objs
    assert [e["method"] for e in objs[0]["plan"]] == ["LOGIN", "AUTHENTICATE PLAIN"], objs
    assert "pipelined LOGIN is refused" in objs[0]["plan"][1]["when"], objs
    with FakeServer(script) as f:   # the same for people (README shows it)
        r = probe.run(config(pki, server("f", "imap", hosts("localhost"), f.port, "starttls")))
    assert r.returncode == READY, r
    assert "  offered        AUTHENTICATE PLAIN\n" in r.out, r.out
    assert "  plan           1. LOGIN (first): the default; sent with the CAPABILITY" in r.out, r.out
    assert "                 2. AUTHENTICATE PLAIN (if the pipelined LOGIN is refused): the " \
        "server lists" in r.out, r.out
    assert "  mechanism      LOGIN\n" in r.out, r.out


def test_pop3_xclient_in_greeting(probe, pki):
    def script(conn):
        conn.line("+OK [XCLIENT] fake ready")
        conn.expect("CAPA")
        conn.line("+OK")
        conn.line("USER")
        conn.line(".")
        conn.drain(scaled(1))
    with FakeServer(script) as f:
        r, objs = probe.json(config(pki, server("f", "pop3", hosts(f.host), f.port)))
    assert r.returncode == READY, r
    assert objs[0]["forwarding"] == "XCLIENT" and objs[0]["mechanism"] == "USER/PASS", objs


def _imap_caps_after_a_literal(conn):
    conn.line("* OK fake without capabilities")
    tag = conn.expect("P1 CAPABILITY").split(b" ")[0].decode()
    conn.send("* 1 FETCH (BODY[] {5}\r\nhello)\r\n")
    conn.line("* CAPABILITY IMAP4rev1 AUTH=PLAIN")
    conn.line(tag + " OK done")
    conn.drain(scaled(1))


def _imap_reply_sent_before_the_command(conn):
    # One write: the tagged reply is in the client's buffer before its command goes out.
    conn.send("* OK fake without capabilities\r\n* CAPABILITY IMAP4rev1\r\nP1 OK early\r\n")
    conn.expect("P1 CAPABILITY")
    conn.drain(scaled(1))


def _pop3_capa_sent_before_the_command(conn):
    conn.send("+OK fake\r\n+OK\r\nUSER\r\n.\r\n")
    conn.expect("CAPA")
    conn.drain(scaled(1))


def _pop3_capa_dot_stuffed(conn):
    conn.line("+OK fake")
    conn.expect("CAPA")
    conn.send("+OK\r\nUSER\r\n..X-DOT-STUFFED\r\n.\r\n")
    conn.drain(scaled(1))


@pytest.mark.parametrize("protocol,script,code,shown", [
    ("imap", _imap_caps_after_a_literal, READY, "AUTH=PLAIN"),
    ("imap", _imap_reply_sent_before_the_command, CAPS, "before CAPABILITY went out"),
    ("pop3", _pop3_capa_sent_before_the_command, CAPS, "before CAPA went out"),
    ("pop3", _pop3_capa_dot_stuffed, READY, "USER; .X-DOT-STUFFED"),
])
def test_replies_read_with_the_login_readers(probe, pki, protocol, script, code, shown):
    """Issue 18: the probe reads replies with the login's own readers (imap_read_tagged,
    pop3_read_reply/pop3_read_body): literals in untagged data are skipped, a reply that began
    before its command went out is no reply, multi-line replies are dot-unstuffed. The probe's
    own dialogue failed the literal, took both early replies and showed the stuffed dot."""
    with FakeServer(script) as f:
        r, objs = probe.json(config(pki, server("f", protocol, hosts(f.host), f.port)))
    assert r.returncode == code, (r, objs)
    o = objs[0]
    assert shown in (o["verdict"] if code != READY else o["capabilities_before_tls"]), o
    if code != READY:
        assert o["failed_stage"] == "capabilities", o


# ---- what is wrong, in plain words, with its exit code ----

def test_wrong_certificate_name(probe, dv, pki):
    # Dovecot's certificate names localhost; 127.0.0.1 is not in it.
    r, objs = probe.json(config(pki, dv_server(dv, "dv", "imap", "implicit", host="127.0.0.1")))
    assert r.returncode == TLS, r
    assert objs[0]["ready"] is False and objs[0]["failed_stage"] == "tls", objs
    assert "certificate verify failed" in objs[0]["verdict"], objs
    assert "mismatch" in objs[0]["verdict"], objs
    # the chain comes from a second handshake without verification, marked as such
    t = objs[0]["tls"]
    assert t["second_look"] is True and t["verified"] is False, t
    assert t["chain"][0]["subject"] == "CN=localhost" and "mismatch" in t["verify_error"], t
    ctx = tls_server_context(pki["wrongname_cert"], pki["wrongname_key"])
    with FakeServer(lambda c: c.drain(scaled(1)), tls_context=ctx, handshake_may_fail=True) as f:
        r = probe.run(config(pki, server("f", "imap", hosts("localhost"), f.port, "implicit")))
    assert r.returncode == TLS, r
    assert "verdict        tls failed: certificate verify failed: hostname mismatch" \
        in r.out.lower(), r.out
    assert "second, unverified handshake" in r.out and "CN=mail.example.net" in r.out, r.out


def _starttls_then_tls(ctx):
    """IMAP STARTTLS; the handshake may fail (a client refusing the certificate), which ends
    the connection. Runs once for the probe and once for its second, unverified look."""
    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 STARTTLS] x")
        line = conn.readline(scaled(10))
        if line is None:
            return
        tag, verb = line.decode().split(" ", 1)
        assert verb.upper() == "STARTTLS", line
        conn.line(tag + " OK begin TLS")
        try:
            conn.start_tls(ctx)
        except (ssl.SSLError, OSError):
            return
        conn.drain(scaled(1))
    return script


def test_untrusted_certificate_over_starttls(probe, pki):
    ctx = tls_server_context(pki["untrusted_cert"], pki["untrusted_key"])
    with FakeServer(_starttls_then_tls(ctx)) as f:
        r, objs = probe.json(config(pki, server("f", "imap", hosts("localhost"), f.port,
                                                "starttls")))
        connections = f.connections
    assert r.returncode == TLS, r
    o = objs[0]
    assert o["failed_stage"] == "tls" and "certificate verify failed" in o["verdict"], o
    assert o["tls"]["second_look"] is True and o["tls"]["verified"] is False, o
    assert o["tls"]["chain"][0]["issuer"] == "CN=some other CA", o
    assert connections == 2, connections


def test_verify_false_shows_the_chain_and_warns(probe, pki):
    ctx = tls_server_context(pki["wrongname_cert"], pki["wrongname_key"])
    script = imap_greeter("* OK [CAPABILITY IMAP4rev1] x")
    with FakeServer(script, tls_context=ctx) as f:
        r = probe.run(config(pki, server("f", "imap", hosts("localhost"), f.port, "implicit",
                                         extra="  verify = false\n")))
    assert r.returncode == READY, r
    assert "CN=mail.example.net" in r.out and "NOT checked at login" in r.out, r.out


def test_closed_port(probe, pki):
    r, objs = probe.json(config(pki, server("s", "imap", hosts("127.0.0.1"), closed_port())))
    assert r.returncode == CONNECT, r
    assert objs[0]["failed_stage"] == "connect" and "cannot connect" in objs[0]["verdict"], objs
    assert "refused" in objs[0]["verdict"].lower(), objs


def test_name_that_does_not_resolve(probe, pki):
    r, objs = probe.json(config(pki, server("s", "imap", hosts("no-such-host.invalid"), 143),
                                timeout=scaled(3)))
    assert r.returncode == RESOLVE, r
    assert objs[0]["failed_stage"] == "resolve", objs
    assert "does not resolve" in objs[0]["verdict"], objs


@pytest.fixture
def remote():
    ok, why = netns.available()
    if not ok:
        pytest.fail("the cleartext rule needs a peer that is not on loopback: %s" % why)
    with netns.NetNs() as ns:
        yield ns


@pytest.mark.parametrize("allow", [False, True])
def test_cleartext_to_non_loopback(probe, pki, remote, allow):
    sock = remote.listen(port=0)
    with FakeServer(imap_greeter("* OK [CAPABILITY IMAP4rev1 ID] x"), sock=sock) as f:
        extra = "  allow_cleartext = true\n" if allow else ""
        r, objs = probe.json(config(pki, server("f", "imap", hosts(f.host), f.port,
                                                extra=extra, cleartext=allow)))
    o = objs[0]
    if allow:
        assert r.returncode == READY and o["credentials_allowed"] is True, (r, o)
        assert "allow_cleartext" in o["credentials_reason"], o
    else:
        assert r.returncode == CREDS, (r, o)
        assert o["credentials_allowed"] is False, o
        assert "refusing to send credentials in clear" in o["credentials_reason"], o
        assert "would not send the password" in o["verdict"], o


def test_cleartext_to_a_high_loopback_port(probe, pki):
    """The probe shows the loopback rule's reason: a port any local user may listen on needs
    allow_cleartext (issue 17, section 5)."""
    with FakeServer(imap_greeter("* OK [CAPABILITY IMAP4rev1] x")) as f:
        r, objs = probe.json(config(pki, server("f", "imap", hosts(f.host), f.port,
                                                cleartext=False)))
    o = objs[0]
    assert r.returncode == CREDS and o["credentials_allowed"] is False, (r, o)
    assert ("loopback port %d is not privileged (ip_unprivileged_port_start is" % f.port) \
        in o["credentials_reason"], o
    assert "would not send the password" in o["verdict"], o


def test_cleartext_rule_judged_before_the_mechanism(probe, pki, remote):
    # both would stop a login; the login path asks the cleartext rule first, so does the probe
    sock = remote.listen(port=0)
    with FakeServer(imap_greeter("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] x"), sock=sock) as f:
        r, objs = probe.json(config(pki, server("f", "imap", hosts(f.host), f.port,
                                                cleartext=False)))
    assert r.returncode == CREDS, r
    assert "would not send the password" in objs[0]["verdict"], objs
    assert objs[0]["mechanism"] == "none", objs


# ---- --stop-after ----

@pytest.mark.parametrize("stage,present,absent", [
    ("connect", ["connect_ms"], ["greeting", "capabilities_before_tls", "tls"]),
    # (Dovecot's greeting carries its capabilities: they are shown from there)
    ("greeting", ["greeting", "capabilities_before_tls"], ["tls", "capabilities_after_tls"]),
    ("tls", ["greeting", "capabilities_before_tls", "tls"], ["capabilities_after_tls"]),
    ("capabilities", ["tls", "capabilities_after_tls"], ["mechanism", "credentials_allowed"]),
])
def test_stop_after_stops_there(probe, dv, pki, stage, present, absent):
    r, objs = probe.json(config(pki, dv_server(dv, "dv", "imap", "starttls")),
                         "--stop-after", stage)
    assert r.returncode == READY, r
    for o in objs:
        assert "stopped there" in o["verdict"] and stage in o["verdict"], o
        for k in present:
            assert o[k] is not None, (k, o)
        for k in absent:
            assert o[k] is None, (k, o)


def _starttls_refused():
    return imap_greeter("* OK [CAPABILITY IMAP4rev1 STARTTLS] x",
                        [("STARTTLS", ["{tag} NO not today"])])


def _caps_broken():
    return imap_greeter("* OK fake without capabilities",
                        [("CAPABILITY", ["{tag} BAD no"])])


@pytest.mark.parametrize("stage,code,script,tls", [
    ("greeting", GREETING, imap_greeter("HELLO this is not IMAP"), "none"),
    ("tls", TLS, _starttls_refused(), "starttls"),
    ("capabilities", CAPS, _caps_broken(), "none"),
])
def test_each_failing_stage_has_its_code(probe, pki, stage, code, script, tls):
    with FakeServer(script) as f:
        r, objs = probe.json(config(pki, server("f", "imap", hosts(f.host), f.port, tls)),
                             "--stop-after", "capabilities")
    assert r.returncode == code, (r, objs)
    assert objs[0]["failed_stage"] == stage, objs


def test_stop_after_connect_on_closed_port_still_fails(probe, pki):
    r = probe.run(config(pki, server("s", "imap", hosts("127.0.0.1"), closed_port())),
                  "--stop-after", "connect")
    assert r.returncode == CONNECT, r


# ---- --user: a real login ----

@pytest.mark.parametrize("password,code,word", [("s3cret", READY, "accepted"),
                                                ("Wrong-Pass-4711", LOGIN_REFUSED, "refused")])
def test_user_login_password_from_stdin(probe, dv, pki, password, code, word):
    cfg = config(pki, dv_server(dv, "dv", "imap", "starttls"))
    r = probe.run(cfg, "--user", "alice", stdin=(password + "\n").encode())
    assert r.returncode == code, (r, r.err)
    assert 'login as "alice": %s' % word in r.out, r.out
    assert 'server "dv"' in r.out, r.out
    assert "LOGIN \"alice\" <redacted>" in r.err, r.err   # the module's debug trace
    assert password not in r.out and password not in r.err
    r, objs = probe.json(cfg, "--user", "alice", stdin=password.encode())
    assert r.returncode == code, r
    assert objs[-1]["login"]["result"] == word and objs[-1]["login"]["server"] == "dv", objs
    assert password not in r.out and password not in r.err


def test_user_login_pop3_apop_trace_redacted(probe, dv, pki):
    r = probe.run(config(pki, dv_server(dv, "dv", "pop3", "none")), "--user", "alice",
                  stdin=b"s3cret\n")
    assert r.returncode == READY, (r, r.err)
    assert "APOP alice <redacted>" in r.err, r.err
    assert "s3cret" not in r.out + r.err


def test_user_login_reports_what_a_refused_apop_cost(probe, pki):
    """issue 12: a server that offers APOP but cannot check it (Cyrus with saslauthd) refuses
    it, then USER/PASS succeeds; --user reports the cost as the module's log does."""
    answers = {b"CAPA": "+OK\r\nUSER\r\n.", b"USER alice": "+OK Name is a valid mailbox",
               b"PASS s3cret": "+OK Mailbox locked and ready", b"QUIT": "+OK bye"}

    def script(conn):
        # The probe's look at the address (CAPA), then the login; any other command fails.
        conn.line("+OK localhost Cyrus POP3 3.6.1 server ready <1234567890.4242@localhost>")
        while True:
            line = conn.readline(scaled(10))
            if line is None or line == b"QUIT":
                return
            if line.startswith(b"APOP alice "):
                time.sleep(0.3)   # the server's failure delay
                conn.line("-ERR [AUTH] authenticating: authentication failure")
                continue
            assert line in answers, line
            conn.line(answers[line])

    with FakeServer(script) as fake:
        cfg = config(pki, server("cy", "pop3", hosts(fake.host), fake.port))
        r = probe.run(cfg, "--user", "alice", stdin=b"s3cret\n")
    assert r.returncode == READY, (r, r.err)
    m = re.search(r"note: APOP refused but USER/PASS accepted: set apop = never for this server "
                  r"to save (\d+) ms per login", r.out)
    assert m and int(m.group(1)) >= 300, r.out
    with FakeServer(script) as fake:
        cfg = config(pki, server("cy", "pop3", hosts(fake.host), fake.port))
        r, objs = probe.json(cfg, "--user", "alice", stdin=b"s3cret")
    assert r.returncode == READY, (r, r.err)
    login = objs[-1]["login"]
    assert login["apop_wasted_ms"] >= 300, objs
    # the general fields say the same: the fallback was from APOP, to USER/PASS
    assert login["fallback_from"] == "APOP" and login["fallback_wasted_ms"] == \
        login["apop_wasted_ms"], objs
    assert login["mechanism"] == "USER/PASS" and login["server_proved"] is False, objs


def test_user_login_no_server_answers(probe, pki):
    r = probe.run(config(pki, server("s", "imap", hosts("127.0.0.1"), closed_port())),
                  "--user", "alice", stdin=b"s3cret\n")
    assert r.returncode == LOGIN_FAILED, r
    assert "unavailable" in r.out, r.out


def test_user_password_with_newline_only_first_line(probe, dv, pki):
    # one line is read: what follows the newline is not part of the password
    r = probe.run(config(pki, dv_server(dv, "dv", "imap", "none", host="127.0.0.1")),
                  "--user", "alice", stdin=b"s3cret\nsecond line\n")
    assert r.returncode == READY, (r, r.err)


# ---- hostile server text ----

HOSTILE = (b"* OK [CAPABILITY IMAP4rev1] \x1b[2J\x1b]0;owned\x07 tab\there \x01\x7f "
           b"\xff\xfe caf\xc3\xa9 \xf0\x9f\x98\x80 back\\slash \"quote\" \xed\xa0\x80 end")


def test_hostile_greeting_escaped(probe, pki):
    with FakeServer(imap_greeter(HOSTILE)) as f:
        cfg = config(pki, server("f", "imap", hosts(f.host), f.port))
        human = probe.run(cfg)
    with FakeServer(imap_greeter(HOSTILE)) as f:
        cfg = config(pki, server("f", "imap", hosts(f.host), f.port))
        r, objs = probe.json(cfg)
    assert human.returncode == READY and r.returncode == READY, (human, r)
    for raw in (human.stdout, r.stdout):
        bad = [b for b in raw if (b < 0x20 and b != 0x0a) or b >= 0x7f]
        assert not bad, raw
    assert "\\x1b[2J\\x1b]0;owned\\x07 tab\\x09here \\x01\\x7f \\xff\\xfe caf\\xc3\\xa9" \
        in human.out, human.out
    assert "back\\\\slash" in human.out, human.out
    g = objs[0]["greeting"]
    assert g == ("* OK [CAPABILITY IMAP4rev1] \x1b[2J\x1b]0;owned\x07 tab\there \x01\x7f "
                 "\ufffd\ufffd caf\u00e9 \U0001F600 back\\slash \"quote\" "
                 "\ufffd\ufffd\ufffd end"), g
    assert "\\u001b" in r.out and "\\ud83d\\ude00" in r.out and "\\u00e9" in r.out, r.out


def _on_a_terminal(probe, tool, path, user="alice"):
    """Start `mailauth-probe --user USER` with a new pseudo-terminal as its controlling
    terminal and stdin; return the process and the terminal's master side."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()

    def controlling_tty():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(probe.wrapper + [tool, "--config", path, "--user", user], stdin=slave,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=controlling_tty)
    os.close(slave)
    return p, master


def _read_until(fd, marker, limit):
    import select
    buf = b""
    end = time.monotonic() + limit
    while marker not in buf and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:   # EIO: the terminal's last user closed it
                break
            if not chunk:
                break
            buf += chunk
    return buf


def test_user_password_from_terminal_echo_off(tool, probe, dv, pki):
    """stdin is a terminal: the prompt and the password go through /dev/tty with echo off, and
    the terminal's settings are restored afterwards."""
    import termios

    path = probe.write(config(pki, dv_server(dv, "dv", "imap", "starttls")))
    p, master = _on_a_terminal(probe, tool, path)
    try:
        shown = _read_until(master, b"Password for alice: ", scaled(20))
        assert b"Password for alice: " in shown, shown
        assert not termios.tcgetattr(master)[3] & termios.ECHO   # echo off while it waits
        os.write(master, b"s3cret\n")
        out, err = p.communicate(timeout=scaled(30))
        shown += _read_until(master, b"\0never", scaled(0.5))
        assert p.returncode == READY, (out, err)
        assert b'login as "alice": accepted' in out, out
        assert b"s3cret" not in shown + out + err
        assert termios.tcgetattr(master)[3] & termios.ECHO, "echo not restored"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


def test_prompt_shows_a_hostile_user_name_escaped(tool, probe, pki):
    """Found by the attacker's review: the prompt printed the --user name raw on the terminal;
    every name from the command line is escaped (tool_output.h), the prompt's too."""
    path = probe.write(config(pki, server("none", "imap", hosts("127.0.0.1"), closed_port())))
    p, master = _on_a_terminal(probe, tool, path, user="eve\x1b]0;owned\x07")
    try:
        shown = _read_until(master, b": ", scaled(20))
        assert b"Password for eve\\x1b]0;owned\\x07: " in shown, shown
        assert b"\x1b" not in shown and b"\x07" not in shown, shown
        os.write(master, b"x\n")
        p.communicate(timeout=scaled(30))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


def test_interrupted_at_the_prompt_restores_echo(tool, probe, dv, pki):
    import signal
    import termios

    path = probe.write(config(pki, dv_server(dv, "dv", "imap", "none", host="127.0.0.1")))
    p, master = _on_a_terminal(probe, tool, path)
    try:
        shown = _read_until(master, b"Password for alice: ", scaled(20))
        assert b"Password for alice: " in shown, shown
        assert not termios.tcgetattr(master)[3] & termios.ECHO
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=scaled(30))
        assert p.returncode == 11, (p.returncode, out, err)   # the password could not be read
        assert b"cannot read the password" in err, err
        assert termios.tcgetattr(master)[3] & termios.ECHO, "echo left off"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


def test_user_non_ascii_password_from_stdin(probe, dv, pki):
    pw = 'p"a\\s{s}%*( ) gr\u00fc\u00df \u20ac'   # bob's, in conftest.USERS
    r = probe.run(config(pki, dv_server(dv, "dv", "imap", "implicit")), "--user", "bob",
                  stdin=pw.encode("utf-8") + b"\n")
    assert r.returncode == READY, (r, r.err)
    assert pw.encode("utf-8") not in r.stdout + r.stderr


# ---- the probe and the login cannot disagree (issue 18: one plan, plan_login) ----

LOGIN_VERBS = {"LOGIN", "AUTHENTICATE", "APOP", "USER", "AUTH"}


def shape_server(protocol, greeting, caps, caps_tls=None, ctx=None, seen=None):
    """A server of a given shape that records, per connection, the first login command it
    received, in the plan's names ("LOGIN", "AUTHENTICATE PLAIN", "APOP", "USER/PASS",
    "AUTH SCRAM-SHA-256"). LOGIN, USER/PASS, APOP and PLAIN are accepted; every other SASL
    mechanism is refused before any credential (a first AUTH/AUTHENTICATE is all it looks at)."""
    def script(conn):
        conn.line(greeting)
        tls = False
        first = None
        while True:
            raw = conn.readline(scaled(10))
            if raw is None:
                break
            words = raw.decode("utf-8", "replace").split(" ")
            tag, words = (words[0], words[1:]) if protocol == "imap" else ("", words)
            verb = words[0].upper()
            ok, no = (tag + " OK", tag + " NO") if protocol == "imap" else ("+OK", "-ERR")
            if first is None and verb in LOGIN_VERBS:
                first = {"USER": "USER/PASS"}.get(verb, verb)
                if verb in ("AUTHENTICATE", "AUTH"):
                    first += " " + words[1].upper()
            listing = caps_tls if tls and caps_tls is not None else caps
            if verb == "CAPABILITY":
                conn.line("* CAPABILITY " + listing)
                conn.line(ok + " done")
            elif verb == "CAPA":
                conn.send("+OK\r\n" + "".join(c + "\r\n" for c in listing) + ".\r\n")
            elif verb in ("STARTTLS", "STLS"):
                conn.line(ok + " begin TLS")
                conn.start_tls(ctx)
                tls = True
            elif verb in ("LOGOUT", "QUIT"):
                conn.line(ok + " bye")
                break
            elif verb == "ID":
                conn.line("* ID NIL")
                conn.line(ok + " ID")
            elif verb in ("LOGIN", "USER", "PASS", "APOP") or \
                    (verb in ("AUTHENTICATE", "AUTH") and words[1].upper() == "PLAIN"):
                if len(words) == 2 and verb in ("AUTHENTICATE", "AUTH"):
                    conn.line("+ ")
                    conn.readline(scaled(10))
                conn.line(ok + " welcome")
            else:
                conn.line(no + " [AUTHENTICATIONFAILED] not for you")
        if first is not None:
            seen.append(first)
    return script


@pytest.mark.parametrize("protocol,tls,greeting,caps,caps_tls,extra,first", [
    ("imap", "none", "* OK ready", "IMAP4rev1 AUTH=PLAIN", None, "", "LOGIN"),
    ("imap", "none", "* OK ready", "IMAP4rev1 LOGINDISABLED AUTH=PLAIN", None, "",
     "AUTHENTICATE PLAIN"),
    ("imap", "none", "* OK ready", "IMAP4rev1 SASL-IR AUTH=PLAIN AUTH=CRAM-MD5", None,
     "  mechanisms = {scram-sha-256, cram-md5, plain}\n", "AUTHENTICATE CRAM-MD5"),
    ("imap", "starttls", "* OK ready", "IMAP4rev1 STARTTLS", "IMAP4rev1 LOGINDISABLED AUTH=PLAIN",
     "", "LOGIN"),
    ("imap", "starttls", "* OK ready", "IMAP4rev1 STARTTLS", "IMAP4rev1 SASL-IR AUTH=PLAIN",
     "  mechanisms = {plain}\n", "AUTHENTICATE PLAIN"),
    ("pop3", "none", "+OK ready <1.2@host>", ["USER"], None, "", "APOP"),
    ("pop3", "none", "+OK ready <1.2@host>", ["USER"], None, "  apop = never\n", "USER/PASS"),
    ("pop3", "none", "+OK ready", ["SASL PLAIN"], None, "", "USER/PASS"),
    ("pop3", "starttls", "+OK ready <1.2@host>", ["STLS", "USER"],
     ["USER", "SASL PLAIN SCRAM-SHA-256"], "  mechanisms = {scram-sha-256, plain}\n",
     "AUTH SCRAM-SHA-256"),
])
def test_probe_first_entry_is_what_the_login_sends(probe, pki, protocol, tls, greeting, caps,
                                                   caps_tls, extra, first):
    """The probe's plan and the login's come from one function: for each server shape the
    probe's first entry is the first login command the module sent (the server's record)."""
    ctx = tls_server_context(pki["server_cert"], pki["server_key"])
    seen = []
    with FakeServer(shape_server(protocol, greeting, caps, caps_tls, ctx, seen)) as f:
        cfg = config(pki, server("f", protocol, hosts("localhost" if tls != "none" else f.host),
                                 f.port, tls, extra=extra))
        r, objs = probe.json(cfg, "--user", "alice", stdin=b"s3cret")
    assert seen == [first], (seen, objs, r.err)   # one login, no command from the probe's look
    assert objs[0]["mechanism"] == first, objs
    assert objs[0]["plan"][0]["method"] == first and objs[0]["plan"][0]["reason"], objs
    assert objs[0]["offered"], objs
    assert objs[-1]["login"]["mechanism"] is not None, objs
