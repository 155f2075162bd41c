"""Issue 2: real logins through real libpam against a real Dovecot on loopback."""
import pytest

from conftest import USERS
from fakeserver import FakeServer
from helpers import closed_port, config, hosts, ports, server
from test_faults import imap_server


def login_count(dv, offset, user):
    return dv.log_since(offset).count("Login: user=<%s>" % user)


def login_attempts(dv, offset, service):
    """Lines where a client tried to log in through SERVICE ("imap", "pop3"). The suite's own
    readiness probes also leave "...-login: Disconnected ... (no auth attempts" lines, written
    whenever Dovecot gets to it: they are not attempts."""
    return [line for line in dv.log_since(offset).splitlines()
            if "%s-login" % service in line and "no auth attempts" not in line]


# ---- POP3 ----

def test_pop3_apop(pam, dv, pki):
    off = dv.log_size()
    cfg = config(pki, server("dv", "pop3", hosts("127.0.0.1"), dv.ports["pop3"]))
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    assert dv.wait_log("method=APOP", off), dv.log_since(off)


def test_pop3_user_pass_when_no_apop_offered(pam, dv_noapop, pki):
    off = dv_noapop.log_size()
    cfg = config(pki, server("dv", "pop3", hosts("127.0.0.1"), dv_noapop.ports["pop3"]))
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    assert "C: dv APOP" not in r.log_text()
    assert "C: dv USER alice" in r.log_text()
    assert dv_noapop.wait_log("method=PLAIN", off), dv_noapop.log_since(off)


def test_pop3_apop_never_uses_user_pass(pam, dv, pki):
    off = dv.log_size()
    cfg = config(pki, server("dv", "pop3", hosts("127.0.0.1"), dv.ports["pop3"],
                             extra="  apop = never\n"))
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    assert dv.wait_log("method=PLAIN", off), dv.log_since(off)


def test_pop3_wrong_password_falls_back_then_refuses(pam, dv, pki):
    cfg = config(pki, server("dv", "pop3", hosts("127.0.0.1"), dv.ports["pop3"]))
    r = pam.run(cfg, "alice", "wrong-Pa55")
    assert r.code == "PAM_AUTH_ERR", r
    text = r.log_text()
    assert "APOP refused; trying USER/PASS" in text
    assert "result=refused" in text and "server refused credentials (PASS)" in text


def test_pop3_apop_only_refused_does_not_fall_back(pam, dv, pki):
    cfg = config(pki, server("dv", "pop3", hosts("127.0.0.1"), dv.ports["pop3"],
                             extra="  apop = only\n"))
    r = pam.run(cfg, "alice", "wrong-Pa55")
    assert r.code == "PAM_AUTH_ERR", r
    assert "C: dv USER" not in r.log_text()


def test_pop3_apop_only_without_timestamp_is_unavailable(pam, dv_noapop, pki):
    cfg = config(pki, server("dv", "pop3", hosts("127.0.0.1"), dv_noapop.ports["pop3"],
                             extra="  apop = only\n"))
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "no usable APOP timestamp" in r.log_text()


# ---- IMAP ----

def test_imap_login(pam, dv, pki):
    off = dv.log_size()
    cfg = config(pki, server("dv", "imap", hosts("127.0.0.1"), dv.ports["imap"]))
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    assert 'C: dv A1 LOGIN "alice" <redacted>' in r.log_text()
    assert login_count(dv, off, "alice") == 1


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_wrong_password_is_auth_err(pam, dv, pki, protocol):
    cfg = config(pki, server("dv", protocol, hosts("127.0.0.1"), dv.ports[protocol]))
    r = pam.run(cfg, "alice", "wrong-Pa55")
    assert r.code == "PAM_AUTH_ERR", r


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_unknown_user_is_auth_err(pam, dv, pki, protocol):
    cfg = config(pki, server("dv", protocol, hosts("127.0.0.1"), dv.ports[protocol]))
    r = pam.run(cfg, "mallory", "s3cret")
    assert r.code == "PAM_AUTH_ERR", r


# ---- TLS with verification on ----

TLS_CASES = [("imap", "starttls", "imap"), ("imap", "implicit", "imaps"),
             ("pop3", "starttls", "pop3"), ("pop3", "implicit", "pop3s")]


@pytest.mark.parametrize("protocol,tls,portname", TLS_CASES)
def test_tls_modes_verified(pam, dv, pki, protocol, tls, portname):
    cfg = config(pki, server("dv", protocol, hosts("localhost"), dv.ports[portname], tls))
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    assert "certificate verified" in r.log_text()
    r = pam.run(cfg, "alice", "wrong-Pa55")
    assert r.code == "PAM_AUTH_ERR", r


@pytest.mark.parametrize("protocol,tls,portname", TLS_CASES)
def test_certificate_for_another_name(pam, dv, pki, protocol, tls, portname):
    """The certificate names localhost; connecting to 127.0.0.1 must fail before any login."""
    off = dv.log_size()
    cfg = config(pki, server("dv", protocol, hosts("127.0.0.1"), dv.ports[portname], tls))
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "certificate verify failed: IP address mismatch" in r.log_text()
    log = dv.log_since(off)
    assert "user=<alice>" not in log and "Login:" not in log, log


def test_untrusted_ca_is_unavailable(pam, dv, pki):
    cfg = config(pki, server("dv", "imap", hosts("localhost"), dv.ports["imaps"], "implicit",
                             extra='  ca_file = "%s"\n' % pki["other_ca"]))
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "certificate verify failed" in r.log_text()


# ---- passwords with special bytes ----

@pytest.mark.parametrize("user", ["bob", "erin", "tess"])
@pytest.mark.parametrize("protocol,extra", [("imap", ""), ("pop3", ""),
                                            ("pop3", "  apop = never\n")])
def test_special_characters_in_password(pam, dv, pki, user, protocol, extra):
    cfg = config(pki, server("dv", protocol, hosts("127.0.0.1"), dv.ports[protocol],
                             extra=extra))
    r = pam.run(cfg, user, USERS[user])
    assert r.code == "PAM_SUCCESS", r
    if protocol == "imap" and user == "bob":
        # A LITERAL+ literal for UTF-8: its announcement and its bytes, both redacted (the
        # announced length is credential-derived too).
        assert 'LOGIN "bob" <redacted> <redacted>' in r.log_text(), r
        assert "{%d+}" % len(USERS[user].encode()) not in r.log_text(), r
    if protocol == "imap" and user in ("erin", "tess"):
        assert 'LOGIN "%s" <redacted>' % user in r.log_text()        # quoted string
    escaped = USERS[user].replace("\\", "\\\\").replace('"', '\\"')
    assert USERS[user].rstrip() not in r.log_text() and escaped.rstrip() not in r.log_text(), r
    r = pam.run(cfg, user, USERS[user][:-1])
    assert r.code == "PAM_AUTH_ERR", r


# ---- the server walk ----

def test_closed_port_then_second_server(pam, dv, pki):
    cfg = config(pki, server("down", "imap", hosts("127.0.0.1"), closed_port()),
                 server("dv", "imap", hosts("127.0.0.1"), dv.ports["imap"]))
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    assert "server=dv" in r.log_text()
    assert "Connection refused" in r.log_text()


def test_all_servers_down(pam, pki):
    cfg = config(pki, server("a", "imap", hosts("127.0.0.1"), closed_port()),
                 server("b", "pop3", hosts("127.0.0.1"), closed_port()))
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    line = [t for _, t in r.logs if "result=unavailable" in t]
    assert line and "attempts=2" in line[0] and "Connection refused" in line[0], r


def test_refusal_then_unavailable_is_auth_err(pam, dv, pki):
    cfg = config(pki, server("dv", "imap", hosts("127.0.0.1"), dv.ports["imap"]),
                 server("down", "imap", hosts("127.0.0.1"), closed_port()))
    r = pam.run(cfg, "alice", "wrong-Pa55")
    assert r.code == "PAM_AUTH_ERR", r
    assert "server=dv" in r.log_text()


def test_on_reject_stop(pam, dv, pki):
    off = dv.log_size()
    cfg = config(pki, server("first", "imap", hosts("127.0.0.1"), dv.ports["imap"]),
                 server("second", "pop3", hosts("127.0.0.1"), dv.ports["pop3"]),
                 head="on_reject = stop\n")
    r = pam.run(cfg, "alice", "wrong-Pa55")
    assert r.code == "PAM_AUTH_ERR", r
    assert "second" not in r.log_text().replace("server=first", "")
    assert login_attempts(dv, off, "pop3") == []


@pytest.mark.parametrize("head", ["", "on_reject = next\n"], ids=["default", "explicit"])
def test_on_reject_next_tries_the_next_server(pam, dv, pki, head):
    """pam_mailauth.conf(5): on_reject defaults to next, which tries the remaining servers after
    one refused. The first server here refuses whatever it is sent; Dovecot accepts."""
    refuse = imap_server("{tag} NO [AUTHENTICATIONFAILED] not known here")
    with FakeServer(refuse) as first:
        cfg = config(pki, server("first", "imap", hosts("127.0.0.1"), first.port),
                     server("dv", "imap", hosts("127.0.0.1"), dv.ports["imap"]), head=head)
        off = dv.log_size()
        r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    assert first.connections == 1 and b"LOGIN" in first.received
    assert 'server "first"' in r.log_text() and "refused" in r.log_text(), r
    assert "result=accepted server=dv" in r.log_text(), r
    assert login_count(dv, off, "alice") == 1


def test_host_list_with_one_port(pam, dv, pki):
    cfg = config(pki, server("dv", "imap", hosts("no-such-host.invalid", "127.0.0.1"),
                             ports(dv.ports["imap"])))
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    assert "cannot resolve no-such-host.invalid" in r.log_text()


def test_host_and_port_lists_of_equal_length(pam, dv, pki):
    dead = closed_port()
    cfg = config(pki, server("dv", "imap", hosts("127.0.0.1", "127.0.0.1"),
                             ports(dead, dv.ports["imap"])))
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    assert "127.0.0.1:%d: Connection refused" % dead in r.log_text()
    assert "address=127.0.0.1:%d" % dv.ports["imap"] in r.log_text()


def test_unequal_lists_are_a_service_error(pam, dv, pki):
    cfg = config(pki, server("dv", "imap", hosts("127.0.0.1", "localhost"),
                             ports(dv.ports["imap"], dv.ports["imap"], 1)))
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SERVICE_ERR", r
    assert "t.conf:" in r.log_text() and "3 ports for 2 hosts" in r.log_text()


def test_missing_config_is_a_service_error(pam):
    r = pam.run(None, "alice", "s3cret", config_path="/nonexistent/pam_mailauth.conf")
    assert r.code == "PAM_SERVICE_ERR", r
    assert "/nonexistent/pam_mailauth.conf: cannot open" in r.log_text()


def test_world_writable_config_is_refused(pam, dv, pki):
    cfg = config(pki, server("dv", "imap", hosts("127.0.0.1"), dv.ports["imap"]))
    path = pam.write_config(cfg, mode=0o666)
    r = pam.run(None, "alice", "s3cret", config_path=path)
    assert r.code == "PAM_SERVICE_ERR", r
    assert "world writable" in r.log_text()


# ---- trust anchors ----

def test_ca_dir_hashed(pam, dv, pki):
    cfg = config(pki, server("dv", "imap", hosts("localhost"), dv.ports["imaps"], "implicit",
                             extra='  ca_dir = "%s"\n' % pki["ca_dir"]), ca=False)
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    cfg = cfg.replace(pki["ca_dir"], pki["other_ca_dir"])
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r


def test_default_trust_store_is_the_hashed_directory(pam, dv, pki):
    """No ca_file/ca_dir: the system store, searched through its hashed directory, whose place
    SSL_CERT_DIR overrides (so the test CA never enters the real system store)."""
    cfg = config(pki, server("dv", "imap", hosts("localhost"), dv.ports["imaps"], "implicit"),
                 ca=False)
    r = pam.run(cfg, "alice", "s3cret", env={"SSL_CERT_DIR": pki["ca_dir"]})
    assert r.code == "PAM_SUCCESS", r
    r = pam.run(cfg, "alice", "s3cret", env={"SSL_CERT_DIR": pki["other_ca_dir"]})
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "certificate verify failed" in r.log_text()
    r = pam.run(cfg, "alice", "s3cret")   # the real system store does not know our test CA
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
