"""Issue 18: SASL mechanisms (src/sasl/, src/sasl_exchange.c) through real libpam.

- Dovecot 2.3 offering CRAM-MD5, SCRAM-SHA-1 and SCRAM-SHA-256 (tests/lib/dovecot.py sasl=True):
  every mechanism over IMAP and POP3 in every TLS mode, right and wrong password; a user whose password
  Dovecot stores hashed (it advertises SCRAM and then fails it): the fallback and its cost in the
  log, and a SCRAM-only list, which leaves that server unavailable.
- An independent SCRAM peer written here from RFC 5802/5929 (hashlib, hmac; nothing shared with
  the C code), behind Python's ssl limited to TLS 1.2, so SCRAM-SHA-256-PLUS binds with
  tls-unique, which this peer takes from its own end of the channel (ssl's
  get_channel_binding): success proves the binding data and the proofs are right, also over a
  resumed session (the server's Finished) in a long-lived process. Without the extended master
  secret (RFC 7627) the channel cannot be bound: -PLUS is skipped before anything is sent.
- The same peer behind tests/tls13_terminator.c (OpenSSL, TLS 1.3 only), which hands it the
  channel's tls-exporter value: SCRAM-SHA-256-PLUS with RFC 9266 binding.
- The same peer turned hostile: OK without v=, a forged v=, a v= computed for another TLS channel
  (what the real server signs when a relay sits between two TLS sessions), an OK before the proof:
  never PAM_SUCCESS.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import ssl
import subprocess
import time

import pytest

import dovecot as dovecot_lib
from conftest import USERS
from fakeserver import FakeServer, tls_server_context
from helpers import config, hosts, scaled, server

SASL_USERS = {"alice": USERS["alice"], "henry": "henry-Hashed-9"}
MECHS = ["scram-sha-256", "scram-sha-1", "cram-md5", "plain", "login"]
MODES = [("imap", "implicit", "imaps"), ("imap", "starttls", "imap"), ("imap", "none", "imap"),
         ("pop3", "implicit", "pop3s"), ("pop3", "starttls", "pop3"), ("pop3", "none", "pop3")]


@pytest.fixture(scope="module")
def dvs(workdir, pki):
    d = dovecot_lib.Dovecot(os.path.join(workdir, "dovecot-sasl"), SASL_USERS,
                            pki["server_cert"], pki["server_key"], sasl=True,
                            hashed=("henry",)).start()
    yield d
    d.stop()


def dv_cfg(pki, dvs, mechanisms, tls="implicit", port="imaps", protocol="imap"):
    extra = "  mechanisms = {%s}\n" % ", ".join(mechanisms)
    if tls == "none":
        extra += "  allow_cleartext = true\n"
    return config(pki, server("dv", protocol, hosts("localhost"), dvs.ports[port], tls,
                              extra=extra))


def logged(d, offset, text):
    """Dovecot writes its log line after the answer: wait for it, within a scaled bound."""
    deadline = time.monotonic() + scaled(3)
    while text not in d.log_since(offset):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("mech", MECHS)
@pytest.mark.parametrize("protocol,tls,port", MODES)
def test_dovecot_mechanism(pam, pki, dvs, mech, protocol, tls, port):
    offset = dvs.log_size()
    r = pam.run(dv_cfg(pki, dvs, [mech], tls, port, protocol), "alice", SASL_USERS["alice"])
    assert r.code == "PAM_SUCCESS", r
    assert logged(dvs, offset, "method=%s," % mech.upper()), dvs.log_since(offset)
    r = pam.run(dv_cfg(pki, dvs, [mech], tls, port, protocol), "alice", "wrong-pw")
    assert r.code == "PAM_AUTH_ERR", r


@pytest.mark.parametrize("protocol,port", [("imap", "imaps"), ("pop3", "pop3s")])
def test_dovecot_hashed_password_falls_back(pam, pki, dvs, protocol, port):
    """Dovecot advertises SCRAM for a user whose stored hash cannot run it, and fails it after the
    first message: the next listed mechanism is tried, and the cost is logged."""
    cfg = dv_cfg(pki, dvs, ["scram-sha-256", "plain"], port=port, protocol=protocol)
    r = pam.run(cfg, "henry", SASL_USERS["henry"])
    assert r.code == "PAM_SUCCESS", r.log_text()
    assert "SCRAM-SHA-256 failed before the password was checked" in r.log_text(), r
    assert "trying PLAIN: this cost" in r.log_text(), r
    # the walk's advice (LOG_NOTICE), as for APOP: which mechanism, what it cost, what to change
    verb = "AUTHENTICATE" if protocol == "imap" else "AUTH"
    m = re.search(r"SCRAM-SHA-256 refused but %s PLAIN accepted: leave the refused mechanism out "
                  r"of mechanisms for this server, or store passwords it can use to save (\d+) ms "
                  r"per login" % verb, r.log_text())
    assert m and int(m.group(1)) >= 1, r.log_text()
    r = pam.run(cfg, "henry", "wrong-pw")
    assert r.code == "PAM_AUTH_ERR", r


@pytest.mark.parametrize("protocol,port", [("imap", "imaps"), ("pop3", "pop3s")])
def test_dovecot_scram_only_list_never_sends_password(pam, pki, dvs, protocol, port):
    """A SCRAM-only list: that user cannot be checked by SCRAM, so the server is unavailable,
    not a refusal, and nothing else is tried."""
    r = pam.run(dv_cfg(pki, dvs, ["scram-sha-256", "scram-sha-1"], port=port, protocol=protocol),
                "henry", SASL_USERS["henry"])
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "AUTH PLAIN" not in r.log_text() and "PASS" not in r.log_text(), r


def test_dovecot_not_offering_listed_mechanism_is_unavailable(pam, pki, dvs):
    r = pam.run(dv_cfg(pki, dvs, ["scram-sha-256-plus"]), "alice", SASL_USERS["alice"])
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "offers none of the configured mechanisms" in r.log_text(), r


# ---- an independent SCRAM peer (RFC 5802, RFC 5929) ----

SALT = b"independent-salt"
ITER = 4096
PW = "s3cret-Scram"


def keys(name, password):
    h = {"SCRAM-SHA-1": "sha1"}.get(name.replace("-PLUS", ""), "sha256")
    salted = hashlib.pbkdf2_hmac(h, password.encode(), SALT, ITER)
    client_key = hmac.new(salted, b"Client Key", h).digest()
    return h, hashlib.new(h, client_key).digest(), hmac.new(salted, b"Server Key", h).digest()


def scram_script(pki, behaviour, caps="AUTH=SCRAM-SHA-256 AUTH=SCRAM-SHA-256-PLUS",
                 seen=None, exporter=False):
    """An IMAPS server speaking SCRAM itself. behaviour: honest, ok_without_v, forged_v,
    other_channel (v= over another channel's c=), ok_before_proof. exporter: behind
    tls13_terminator, whose first line gives the channel's tls-exporter value."""
    seen = {} if seen is None else seen

    def script(conn):
        exported = b""
        if exporter:
            exported = bytes.fromhex(conn.readline(scaled(5)).decode().split()[1])
        conn.line("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGINDISABLED %s] scram peer" % caps)
        line = conn.readline(scaled(5)).decode()
        tag, _, mech, first = line.split(" ", 3)
        first = base64.b64decode(first).decode()
        seen["mech"], seen["first"] = mech, first
        gs2, _, bare = first.partition(",,")
        gs2 += ",,"
        nonce = dict(a.split("=", 1) for a in bare.split(","))["r"] + "srvNonce42"
        if behaviour == "ok_before_proof":
            conn.line(tag + " OK welcome")
            conn.drain(scaled(0.5))
            return
        server_first = "r=%s,s=%s,i=%d" % (nonce, base64.b64encode(SALT).decode(), ITER)
        conn.line("+ " + base64.b64encode(server_first.encode()).decode())
        final = base64.b64decode(conn.readline(scaled(5))).decode()
        seen["final"] = final
        without_proof, _, proof = final.rpartition(",p=")
        cb = gs2.encode()
        if gs2.startswith("p=tls-unique"):
            cb += conn.sock.get_channel_binding("tls-unique")
        elif gs2.startswith("p=tls-exporter"):
            cb += exported
        expected_c = "c=" + base64.b64encode(cb).decode()
        h, stored, server_key = keys(mech, PW)
        am = ",".join([bare, server_first, without_proof])
        sig = hmac.new(stored, am.encode(), h).digest()
        client_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof), sig))
        seen["proof_ok"] = hashlib.new(h, client_key).digest() == stored
        seen["channel_ok"] = without_proof.startswith(expected_c + ",")
        seen.setdefault("runs", []).append((getattr(conn.sock, "session_reused", None),
                                            seen["proof_ok"] and seen["channel_ok"]))
        if not seen["proof_ok"] or not seen["channel_ok"]:
            conn.line(tag + " NO [AUTHENTICATIONFAILED] Authentication failed.")
            conn.drain(scaled(0.5))
            return
        if behaviour == "other_channel":
            other = base64.b64encode(gs2.encode() + b"\x00" * 32).decode()
            am = am.replace(expected_c, "c=" + other, 1)
        v = base64.b64encode(hmac.new(server_key, am.encode(), h).digest()).decode()
        if behaviour == "forged_v":
            v = base64.b64encode(os.urandom(len(base64.b64decode(v)))).decode()
        if behaviour != "ok_without_v":
            conn.line("+ " + base64.b64encode(("v=" + v).encode()).decode())
            if conn.readline(scaled(5)) != b"":
                conn.line(tag + " BAD expected an empty response")
                return
        conn.line(tag + " OK Logged in")
        conn.drain(scaled(0.5))
    return script


def peer_cfg(pki, fake, mechanisms):
    return config(pki, server("peer", "imap", hosts("localhost"), fake.port, "implicit",
                              extra="  mechanisms = {%s}\n" % ", ".join(mechanisms)),
                  timeout=scaled(3), connect_timeout=scaled(1))


# OpenSSL 3's SSL_OP_NO_EXTENDED_MASTER_SECRET (SSL_OP_BIT(0)); Python's ssl has no name for it.
OP_NO_EXTENDED_MASTER_SECRET = 1


def tls12(pki, ems=True):
    ctx = tls_server_context(pki["server_cert"], pki["server_key"],
                             max_version=ssl.TLSVersion.TLSv1_2)
    if not ems:
        ctx.options |= OP_NO_EXTENDED_MASTER_SECRET
    return ctx


@pytest.mark.parametrize("mech", ["scram-sha-256-plus", "scram-sha-256"])
def test_independent_peer_accepts_and_proves(pam, pki, mech):
    seen = {}
    with FakeServer(scram_script(pki, "honest", seen=seen), tls_context=tls12(pki)) as fake:
        r = pam.run(peer_cfg(pki, fake, [mech]), "alice", PW)
    assert not fake.errors, fake.errors
    assert r.code == "PAM_SUCCESS", r
    assert seen["mech"] == mech.upper() and seen["proof_ok"] and seen["channel_ok"], seen
    # -PLUS binds the channel; plain SCRAM over TLS tells the server it could have ("y").
    assert seen["first"].startswith("p=tls-unique,," if mech.endswith("plus") else "n,,"), seen
    assert PW.encode() not in fake.received
    # The debug trace shows the steps, never the proof, the nonces or v= (offline-guess material).
    text = r.log_text()
    proof = seen["final"].rpartition(",p=")[2]
    assert "<%s message" % mech.upper() in text, r
    for secret in (proof, base64.b64encode(seen["final"].encode()).decode()[:16],
                   seen["final"].split(",")[1][2:]):
        assert secret not in text, (secret, r)
    # v= and the server-first (the combined nonce) in base64: "+ dj..." and "+ cj..."
    assert not re.search(r"\+ [cd]j[0-9A-Za-z+/]", text), r


def test_independent_peer_without_plus_gets_y(pam, pki):
    """A server that offers no -PLUS: "y" says this client could bind (downgrade detection)."""
    seen = {}
    with FakeServer(scram_script(pki, "honest", caps="AUTH=SCRAM-SHA-256", seen=seen),
                    tls_context=tls12(pki)) as fake:
        r = pam.run(peer_cfg(pki, fake, ["scram-sha-256"]), "alice", PW)
    assert r.code == "PAM_SUCCESS", r
    assert seen["first"].startswith("y,,"), seen


def test_independent_peer_wrong_password_refused(pam, pki):
    with FakeServer(scram_script(pki, "honest"), tls_context=tls12(pki)) as fake:
        r = pam.run(peer_cfg(pki, fake, ["scram-sha-256-plus"]), "alice", "not-" + PW)
    assert r.code == "PAM_AUTH_ERR", r


def test_without_extended_master_secret_plus_is_skipped(pam, pki):
    """TLS 1.2 without the extended master secret (RFC 7627): tls-unique would not pin the
    channel (the triple handshake attack), so -PLUS is unusable and nothing of it is sent; a list
    with SCRAM-SHA-256 next runs that, unbound ("n": this client cannot bind this channel)."""
    def greet_only(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 SASL-IR LOGINDISABLED AUTH=SCRAM-SHA-256-PLUS] hi")
        conn.wait_closed()

    with FakeServer(greet_only, tls_context=tls12(pki, ems=False)) as fake:
        r = pam.run(peer_cfg(pki, fake, ["scram-sha-256-plus"]), "alice", PW)
    assert not fake.errors, fake.errors
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "TLS 1.2 without the extended master secret" in r.log_text(), r
    assert b"AUTHENTICATE" not in fake.received, fake.received
    seen = {}
    with FakeServer(scram_script(pki, "honest", seen=seen),
                    tls_context=tls12(pki, ems=False)) as fake:
        r = pam.run(peer_cfg(pki, fake, ["scram-sha-256-plus", "scram-sha-256"]), "alice", PW)
    assert not fake.errors, fake.errors
    assert r.code == "PAM_SUCCESS", r
    assert seen["mech"] == "SCRAM-SHA-256" and seen["first"].startswith("n,,"), seen
    assert b"SCRAM-SHA-256-PLUS" not in fake.received, fake.received


def test_resumed_session_binds_with_the_servers_finished(pam, pki, module, tmp_path):
    """tls-unique is the first Finished of the handshake: the server's in a resumed one (RFC 5929
    section 3). Logins one after another in one process (the concurrency driver, real libpam)
    resume the TLS 1.2 session the first one kept (tls_cache.c); the peer checks c= and the
    proof against its own end of each channel."""
    driver = os.environ.get("MAILAUTH_CONCURRENCY")
    assert driver and os.path.exists(driver), "MAILAUTH_CONCURRENCY must name the driver"
    wrapper = os.environ.get("MAILAUTH_CONCURRENCY_WRAPPER", "").split()
    confdir = tmp_path / "pam.d"
    confdir.mkdir()
    seen = {}
    with FakeServer(scram_script(pki, "honest", seen=seen), tls_context=tls12(pki)) as fake:
        conf = pam.write_config(peer_cfg(pki, fake, ["scram-sha-256-plus"]), name="resume.conf")
        (confdir / "mail").write_text("auth required %s config=%s\n" % (module, conf))
        proc = subprocess.run(wrapper + [driver, str(confdir), "mail", "1", "3",
                                         "alice:%s:0" % PW],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=scaled(120))
    out = proc.stdout.decode("utf-8", "replace")
    assert not fake.errors, fake.errors
    assert proc.returncode == 0 and "concurrency: 3 passed, 0 failed" in out, out[-3000:]
    assert seen["first"].startswith("p=tls-unique,,"), seen
    # (resumed, proof and channel right) per login: the first full, the others resumed
    assert seen["runs"] == [(False, True), (True, True), (True, True)], seen["runs"]


@pytest.mark.parametrize("behaviour", ["ok_without_v", "forged_v", "other_channel",
                                       "ok_before_proof"])
@pytest.mark.parametrize("mech", ["scram-sha-256-plus", "scram-sha-256"])
def test_hostile_peer_never_succeeds(pam, pki, behaviour, mech):
    """The server says OK but does not (or cannot) prove it knows the password for this
    channel: never PAM_SUCCESS, and never a refusal either (a forged "no" is as cheap)."""
    with FakeServer(scram_script(pki, behaviour), tls_context=tls12(pki)) as fake:
        r = pam.run(peer_cfg(pki, fake, [mech]), "alice", PW)
    assert not fake.errors, fake.errors
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert PW.encode() not in fake.received


# ---- SCRAM-SHA-256-PLUS with tls-exporter: TLS 1.3 through tests/tls13_terminator.c ----

def terminated(pki, fake):
    """Start the TLS 1.3 terminator in front of fake; return (process, its port)."""
    proc = subprocess.Popen([os.environ["MAILAUTH_TLS13_TERMINATOR"], pki["server_cert"],
                             pki["server_key"], str(fake.port)], stdout=subprocess.PIPE)
    return proc, int(proc.stdout.readline())


def exporter_cfg(pki, port):
    return config(pki, server("peer", "imap", hosts("localhost"), port, "implicit",
                              extra="  mechanisms = scram-sha-256-plus\n"),
                  timeout=scaled(3), connect_timeout=scaled(1))


@pytest.mark.parametrize("behaviour,code", [("honest", "PAM_SUCCESS"),
                                            ("other_channel", "PAM_AUTHINFO_UNAVAIL"),
                                            ("forged_v", "PAM_AUTHINFO_UNAVAIL"),
                                            ("ok_without_v", "PAM_AUTHINFO_UNAVAIL")])
def test_tls_exporter_peer(pam, pki, behaviour, code):
    """Under TLS 1.3 the client binds with tls-exporter; the independent end computes the same
    32 bytes on its side of the channel (success proves it), and a v= for another channel, a
    forged one or none is never success."""
    seen = {}
    with FakeServer(scram_script(pki, behaviour, seen=seen, exporter=True)) as fake:
        proc, port = terminated(pki, fake)
        try:
            r = pam.run(exporter_cfg(pki, port), "alice", PW)
        finally:
            proc.wait(timeout=scaled(10))
    assert not fake.errors, fake.errors
    assert r.code == code, r
    assert seen["first"].startswith("p=tls-exporter,,"), seen
    assert seen["channel_ok"] and seen["proof_ok"], seen


def test_mechanism_after_refused_login_starts_with_nothing_sent(pam, pki):
    """Found by fuzz_session: after STARTTLS the client pipelines LOGIN; the capabilities then say
    LOGINDISABLED and LOGIN is refused, so AUTHENTICATE PLAIN follows (no SASL-IR). A tagged OK in
    place of its "+" came before any of its credentials: LOGIN's, sent whole, must not count for
    it (the driver starts every mechanism at "nothing sent")."""
    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 STARTTLS] hi")
        conn.line(conn.readline(scaled(5)).split(b" ")[0].decode() + " OK go")
        conn.start_tls(tls_server_context(pki["server_cert"], pki["server_key"]))
        cap = conn.readline(scaled(5)).split(b" ")[0].decode()
        login = conn.readline(scaled(5)).split(b" ")[0].decode()
        conn.send("* CAPABILITY IMAP4rev1 LOGINDISABLED AUTH=PLAIN\r\n%s OK\r\n%s NO disabled\r\n"
                  % (cap, login))
        conn.line(conn.readline(scaled(5)).split(b" ")[0].decode() + " OK in")
        conn.drain(scaled(0.5))
    with FakeServer(script) as fake:
        r = pam.run(config(pki, server("fake", "imap", hosts("localhost"), fake.port, "starttls"),
                           timeout=scaled(3), connect_timeout=scaled(1)), "alice", PW)
    assert not fake.errors, fake.errors
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "before the credentials were sent" in r.log_text(), r


# ---- the probe reports the login's plan (plan_login) ----

def run_probe(tmp_path, cfg):
    path = os.path.join(str(tmp_path), "probe.conf")
    with open(path, "w") as f:
        f.write(cfg)
    os.chmod(path, 0o644)
    r = subprocess.run([os.environ["MAILAUTH_PROBE_TOOL"], "--config", path, "--json"],
                       capture_output=True, timeout=scaled(60))
    return r, [json.loads(line) for line in r.stdout.decode().splitlines()]


@pytest.mark.parametrize("protocol,port", [("imap", "imaps"), ("pop3", "pop3s")])
def test_probe_shows_the_planned_mechanism(tmp_path, pki, dvs, protocol, port):
    cfg = dv_cfg(pki, dvs, ["scram-sha-256-plus", "scram-sha-256", "plain"], port=port,
                 protocol=protocol)
    r, objs = run_probe(tmp_path, cfg)
    assert r.returncode == 0 and objs, (r, objs)
    verb = "AUTHENTICATE" if protocol == "imap" else "AUTH"
    assert all(o["mechanism"] == verb + " SCRAM-SHA-256" for o in objs), objs
    assert all([e["sasl"] for e in o["plan"]] == ["SCRAM-SHA-256", "PLAIN"] for o in objs), objs
    # Dovecot 2.3 has no -PLUS: a list of it alone leaves no mechanism, as the login finds.
    r, objs = run_probe(tmp_path, dv_cfg(pki, dvs, ["scram-sha-256-plus"], port=port,
                                         protocol=protocol))
    assert r.returncode != 0 and objs, (r, objs)
    assert all(o["mechanism"] == "none" and o["ready"] is False for o in objs), objs


@pytest.mark.parametrize("ems,mechanism", [(True, "AUTHENTICATE SCRAM-SHA-256-PLUS"),
                                           (False, "AUTHENTICATE SCRAM-SHA-256")])
def test_probe_plans_without_plus_when_the_channel_cannot_be_bound(tmp_path, pki, ems, mechanism):
    """TLS 1.2 without the extended master secret: the login skips -PLUS before sending anything
    (test_without_extended_master_secret_plus_is_skipped), so the probe shows the mechanism the
    login then uses; with it, -PLUS. A -PLUS-only list has no mechanism there, and says why."""
    def answer_all(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=SCRAM-SHA-256 "
                  "AUTH=SCRAM-SHA-256-PLUS] hi")
        while True:
            line = conn.readline(scaled(5))
            if not line:
                return
            conn.line(line.split(b" ")[0].decode() + " OK done")

    with FakeServer(answer_all, tls_context=tls12(pki, ems=ems)) as fake:
        r, objs = run_probe(tmp_path, peer_cfg(pki, fake, ["scram-sha-256-plus",
                                                           "scram-sha-256"]))
        assert r.returncode == 0 and objs, (r, objs)
        assert [o["mechanism"] for o in objs] == [mechanism], objs
        assert all((o["plan_left_out"] is None) == ems for o in objs), objs
        if ems:
            return
        r, objs = run_probe(tmp_path, peer_cfg(pki, fake, ["scram-sha-256-plus"]))
        assert r.returncode != 0 and objs, (r, objs)
        assert all(o["mechanism"] == "none" for o in objs), objs
        assert b"extended master secret" in r.stdout + r.stderr, r
    assert not fake.errors, fake.errors


@pytest.mark.parametrize("mech", ["cram-md5", "scram-sha-256"])
def test_echoed_decoded_response_not_logged(pam, pki, mech):
    """Found by the attacker's review: a server that echoes the client's SASL response decoded
    (the CRAM-MD5 "user digest", the SCRAM client-final with its p= proof) in its refusal put that
    offline-guess material into the LOG_NOTICE result line: only the base64 line as sent was
    registered for redaction. The decoded message and its proof are password-derived forms too."""
    seen = {}

    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=CRAM-MD5 AUTH=SCRAM-SHA-256] echo")
        line = conn.readline(scaled(5)).decode().split()
        tag = line[0]
        if mech == "cram-md5":
            conn.line("+ " + base64.b64encode(b"<1896.697170952@postoffice.example>").decode())
        else:
            first = base64.b64decode(line[3]).decode().partition(",,")[2]
            nonce = dict(a.split("=", 1) for a in first.split(","))["r"] + "srv"
            conn.line("+ " + base64.b64encode(("r=%s,s=%s,i=4096" % (
                nonce, base64.b64encode(SALT).decode())).encode()).decode())
        decoded = base64.b64decode(conn.readline(scaled(5))).decode()
        seen["secret"] = decoded.split(" ")[-1] if mech == "cram-md5" \
            else decoded.rpartition(",p=")[2]
        conn.line("%s NO [AUTHENTICATIONFAILED] bad response %s" % (tag, decoded))
        conn.drain(scaled(0.5))

    with FakeServer(script, tls_context=tls12(pki)) as fake:
        r = pam.run(peer_cfg(pki, fake, [mech]), "alice", PW)
    assert not fake.errors, fake.errors
    assert r.code == "PAM_AUTH_ERR", r
    text = r.log_text()
    assert "bad response" in text, r
    assert seen["secret"] not in text, (seen, r)
    assert seen["secret"].upper() not in text.upper(), (seen, r)


def test_no_next_mechanism_after_a_refused_proof_imap(pam, pki):
    """Found by the attacker's mutations (main's suite let a fallback after the whole credentials
    pass): mechanisms = scram-sha-256, plain. The server refuses after SCRAM's client proof went
    out; that is the verdict, and PLAIN (the password itself, to a server that may be the relay
    SCRAM protects against) must never follow."""
    with FakeServer(scram_script(pki, "honest", caps="AUTH=SCRAM-SHA-256 AUTH=PLAIN"),
                    tls_context=tls12(pki)) as fake:
        r = pam.run(peer_cfg(pki, fake, ["scram-sha-256", "plain"]), "alice", "not-" + PW)
    assert not fake.errors, fake.errors
    assert r.code == "PAM_AUTH_ERR", r
    assert b"PLAIN" not in fake.received.upper(), fake.received


def test_no_next_mechanism_after_a_refused_proof_pop3(pam, pki):
    """The same over POP3 AUTH: -ERR after the client proof, then nothing more but QUIT."""
    def script(conn):
        conn.line("+OK ready")
        assert conn.readline(scaled(5)).strip().upper() == b"CAPA"
        conn.send("+OK\r\nSASL SCRAM-SHA-256 PLAIN\r\nUSER\r\n.\r\n")
        first = base64.b64decode(conn.readline(scaled(5)).split()[2]).decode()
        nonce = dict(a.split("=", 1) for a in first.partition(",,")[2].split(","))["r"] + "srv"
        conn.line("+ " + base64.b64encode(("r=%s,s=%s,i=4096" % (
            nonce, base64.b64encode(SALT).decode())).encode()).decode())
        conn.readline(scaled(5))
        conn.line("-ERR [AUTH] Authentication failed.")
        conn.drain(scaled(0.5))

    with FakeServer(script, tls_context=tls12(pki)) as fake:
        cfg = config(pki, server("peer", "pop3", hosts("localhost"), fake.port, "implicit",
                                 extra="  mechanisms = {scram-sha-256, plain}\n"),
                     timeout=scaled(3), connect_timeout=scaled(1))
        r = pam.run(cfg, "alice", PW)
    assert not fake.errors, fake.errors
    assert r.code == "PAM_AUTH_ERR", r
    assert b"PLAIN" not in fake.received.upper(), fake.received


def run_probe_user(tmp_path, cfg, user, password):
    path = os.path.join(str(tmp_path), "probe.conf")
    with open(path, "w") as f:
        f.write(cfg)
    os.chmod(path, 0o644)
    r = subprocess.run([os.environ["MAILAUTH_PROBE_TOOL"], "--config", path, "--json", "--user",
                        user], input=password.encode(), capture_output=True, timeout=scaled(60))
    return r, [json.loads(line) for line in r.stdout.decode().splitlines()]


@pytest.mark.parametrize("protocol,port", [("imap", "imaps"), ("pop3", "pop3s")])
def test_probe_user_reports_fallback_and_proof(tmp_path, pki, dvs, protocol, port):
    """--user through the module's own entry point: which mechanism decided, whether the server
    proved it knows the password, and what a SCRAM fallback cost (henry's hash cannot run SCRAM:
    Dovecot advertises it and fails it)."""
    verb = "AUTHENTICATE" if protocol == "imap" else "AUTH"
    cfg = dv_cfg(pki, dvs, ["scram-sha-256", "plain"], port=port, protocol=protocol)
    r, objs = run_probe_user(tmp_path, cfg, "alice", SASL_USERS["alice"])
    login = objs[-1]["login"]
    assert r.returncode == 0 and login["result"] == "accepted", (r, objs)
    assert login["mechanism"] == verb + " SCRAM-SHA-256", login
    assert login["server_proved"] is True and login["server_proof"] == "verified", login
    assert login["fallback_from"] is None and login["fallback_wasted_ms"] == 0, login
    assert login["apop_wasted_ms"] == 0, login
    r, objs = run_probe_user(tmp_path, cfg, "henry", SASL_USERS["henry"])
    login = objs[-1]["login"]
    assert r.returncode == 0 and login["result"] == "accepted", (r, objs)
    assert login["mechanism"] == verb + " PLAIN" and login["server_proved"] is False, login
    assert login["fallback_from"] == "SCRAM-SHA-256" and login["fallback_wasted_ms"] >= 1, login
    assert login["apop_wasted_ms"] == 0, login   # the alias is APOP's alone
    # the probe's plan for the address said so beforehand
    assert [e["method"] for e in objs[0]["plan"]] == [verb + " SCRAM-SHA-256", verb + " PLAIN"]
