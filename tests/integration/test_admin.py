"""Issue 4: user-name policy, per-domain routing, failure handling and logs, through real
libpam against Dovecot (and fake servers where a count of connections is the evidence)."""
import os
import socket
import threading

import pytest

from fakeserver import FakeServer
from helpers import closed_port, config, hosts, scaled, server
from test_core import login_attempts
from test_faults import fake_cfg, imap_server

LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO = 3, 4, 5, 6


def imap_dv(dv, label="dv", extra=""):
    return server(label, "imap", hosts("127.0.0.1"), dv.ports["imap"], extra=extra)


def final_line(r):
    lines = [(p, t) for p, t in r.logs if "result=" in t]
    assert len(lines) == 1, r   # one line per authentication
    return lines[0]


# ---- user names ----

def test_lowercase(pam, dv, pki):
    cfg = config(pki, imap_dv(dv), head="user {\n  lowercase = true\n}\n")
    r = pam.run(cfg, "ALICE", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    assert "user=alice result=accepted" in r.log_text()
    r = pam.run(config(pki, imap_dv(dv)), "ALICE", "s3cret")
    assert r.code == "PAM_AUTH_ERR", r   # without the rule Dovecot sees ALICE


def test_append_domain(pam, dv, pki):
    cfg = config(pki, imap_dv(dv), head='user {\n  append_domain = "example.org"\n}\n')
    r = pam.run(cfg, "carol", "carol-pw")
    assert r.code == "PAM_SUCCESS", r
    assert "user=carol@example.org" in r.log_text()
    # a name that already has a domain is left alone
    r = pam.run(cfg, "dave@other.example", "dave-pw")
    assert r.code == "PAM_SUCCESS", r


def test_strip_domain(pam, dv, pki):
    cfg = config(pki, imap_dv(dv), head="user {\n  strip_domain = true\n}\n")
    r = pam.run(cfg, "alice@example.org", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    assert "user=alice result=accepted" in r.log_text()


def test_rules_apply_in_order(pam, dv, pki):
    """lowercase, then strip, ... then deny_users sees the final name."""
    head = ('user {\n  lowercase = true\n  strip_domain = true\n'
            '  deny_users = {"alice"}\n}\n')
    with FakeServer(imap_server("{tag} OK welcome", login_expected=False)) as fake:
        r = pam.run(config(pki, server("fake", "imap", hosts("127.0.0.1"), fake.port),
                           head=head), "Alice@Example.ORG", "s3cret")
    assert r.code == "PAM_USER_UNKNOWN", r
    assert "user=alice" in r.log_text() and "deny_users" in r.log_text(), r
    assert fake.connections == 0   # exact: counts what still waits in the listen queue


@pytest.mark.parametrize("user", ["root", "ROOT", "root@example.org"])
def test_root_denied_by_default(pam, pki, user):
    with FakeServer(imap_server("{tag} OK welcome", login_expected=False)) as fake:
        r = pam.run(fake_cfg(pki, fake, "imap"), user, "s3cret")
    assert r.code == "PAM_USER_UNKNOWN", r
    assert fake.connections == 0
    assert "deny_users" in r.log_text()


def test_deny_users_can_be_emptied(pam, pki):
    with FakeServer(imap_server("{tag} OK welcome")) as fake:
        cfg = config(pki, server("fake", "imap", hosts("127.0.0.1"), fake.port),
                     head="user {\n  deny_users = {}\n}\n")
        r = pam.run(cfg, "root", "s3cret")
    assert r.code == "PAM_SUCCESS", r


def test_allowed_domains(pam, dv, pki):
    head = 'user {\n  allowed_domains = {"example.org"}\n}\n'
    off = dv.log_size()
    r = pam.run(config(pki, imap_dv(dv), head=head), "dave@other.example", "dave-pw")
    assert r.code == "PAM_USER_UNKNOWN", r
    assert "allowed_domains" in r.log_text()
    r2 = pam.run(config(pki, imap_dv(dv), head=head), "alice", "s3cret")
    assert r2.code == "PAM_USER_UNKNOWN", r2   # no domain at all
    assert "Login:" not in dv.log_since(off) and login_attempts(dv, off, "imap") == []
    r3 = pam.run(config(pki, imap_dv(dv), head=head), "carol@example.org", "carol-pw")
    assert r3.code == "PAM_SUCCESS", r3


def test_pam_user_is_not_changed(pam, dv, pki, module):
    """The mapped name is only what the servers see: the next module sees the PAM user as
    typed. pam_succeed_if checks it after us in the stack."""
    cfg = config(pki, imap_dv(dv), head='user {\n  append_domain = "example.org"\n}\n')
    path = pam.write_config(cfg)
    stack = ("auth requisite %s config=%s\nauth required pam_succeed_if.so user = carol"
             % (module, path))
    r = pam.run(None, "carol", "carol-pw", config_path=path, service_line=stack)
    assert r.code == "PAM_SUCCESS", r


# ---- routing ----

def test_routing_by_domain(pam, dv, pki):
    with FakeServer(imap_server("{tag} NO [AUTHENTICATIONFAILED] not here")) as other:
        cfg = config(pki,
                     server("other", "imap", hosts("127.0.0.1"), other.port,
                            extra='  domains = {"other.example"}\n'),
                     imap_dv(dv, "org", extra='  domains = {"example.org"}\n'))
        r = pam.run(cfg, "carol@example.org", "carol-pw")
        assert r.code == "PAM_SUCCESS", r
        assert other.connections == 0       # never asked about a domain it does not serve
        r = pam.run(cfg, "dave@other.example", "dave-pw")
        assert r.code == "PAM_AUTH_ERR", r  # only "other" serves it, and it refuses
        assert other.connections == 1


def test_servers_without_domains_serve_everyone(pam, dv, pki):
    with FakeServer(imap_server("{tag} NO [AUTHENTICATIONFAILED] not here",
                                login_expected=False)) as org:
        cfg = config(pki, server("org", "imap", hosts("127.0.0.1"), org.port,
                                 extra='  domains = {"example.org"}\n'),
                     imap_dv(dv, "any"))
        r = pam.run(cfg, "dave@other.example", "dave-pw")
    assert r.code == "PAM_SUCCESS", r
    assert "server=any" in r.log_text()
    # What a try of "org" would leave: its trace line and a connection.
    assert 'server "any" 127.0.0.1:%d' % dv.ports["imap"] in r.log_text(), r
    assert 'server "org"' not in r.log_text(), r
    assert org.connections == 0


def test_no_server_for_the_domain(pam, dv, pki):
    cfg = config(pki, imap_dv(dv, "org", extra='  domains = {"example.org"}\n'))
    off = dv.log_size()
    r = pam.run(cfg, "dave@other.example", "dave-pw")
    assert r.code == "PAM_USER_UNKNOWN", r
    assert "no server serves the user's domain" in r.log_text()
    assert login_attempts(dv, off, "imap") == []


def test_public_provider_pinned_by_allow_list_and_routing(pam, dv, pki):
    """The README's example: a server that would accept anyone only sees our domain."""
    head = 'user {\n  allowed_domains = {"example.org"}\n}\n'
    cfg = config(pki, imap_dv(dv, "provider", extra='  domains = {"example.org"}\n'), head=head)
    assert pam.run(cfg, "carol@example.org", "carol-pw").code == "PAM_SUCCESS"
    assert pam.run(cfg, "dave@other.example", "dave-pw").code == "PAM_USER_UNKNOWN"


# ---- failure handling ----

# What the module asks of libpam is checked, not a wall clock: tests/pam_probe interposes
# pam_fail_delay (the exact request) and sets a PAM_FAIL_DELAY callback (libpam's choice).

def assert_delay_asked(p, status, base_ms):
    """The module asked for base_ms; libpam (Linux-PAM _pam_compute_delay) then chose a delay of
    base * (0.5 .. 1.5) and reported it, with the status, to the PAM_FAIL_DELAY callback."""
    assert p["authenticate"] == status, p
    assert p.number("fail_delay_usec") == base_ms * 1000, p
    assert p["delay_fn_status"] == status, p
    assert base_ms * 500 <= p.number("delay_fn_usec") <= base_ms * 1500, p


@pytest.mark.parametrize("head,base_ms", [("fail_delay = 1500\n", 1500), ("", 2000)],
                         ids=["configured", "default"])
def test_fail_delay_on_refusal(pam, pki, head, base_ms):
    with FakeServer(imap_server("{tag} NO [AUTHENTICATIONFAILED] no")) as fake:
        cfg = fake_cfg(pki, fake, "imap").replace("fail_delay = 0\n", head)
        p = pam.probe(cfg, "alice", "wrong-Pa55")
    assert_delay_asked(p, "PAM_AUTH_ERR", base_ms)


def test_fail_delay_when_unavailable(pam, pki):
    cfg = config(pki, server("down", "imap", hosts("127.0.0.1"), closed_port()))
    p = pam.probe(cfg.replace("fail_delay = 0", "fail_delay = 700"), "alice", "s3cret")
    assert_delay_asked(p, "PAM_AUTHINFO_UNAVAIL", 700)


def test_fail_delay_zero_asks_for_none(pam, pki):
    with FakeServer(imap_server("{tag} NO [AUTHENTICATIONFAILED] no")) as fake:
        p = pam.probe(fake_cfg(pki, fake, "imap"), "alice", "wrong-Pa55")
    assert p["authenticate"] == "PAM_AUTH_ERR", p
    assert p.number("fail_delay_usec") == 0 and p.number("delay_fn_usec") == 0, p


def test_no_delay_on_success(pam, pki):
    """Asked on success, the delay would still hit the user whenever a later module in the
    stack fails."""
    with FakeServer(imap_server("{tag} OK welcome")) as fake:
        cfg = fake_cfg(pki, fake, "imap").replace("fail_delay = 0", "fail_delay = 3000")
        p = pam.probe(cfg, "alice", "s3cret")
    assert p["authenticate"] == "PAM_SUCCESS", p
    assert p.number("fail_delay_calls") == 0, p
    assert p["delay_fn_status"] == "PAM_SUCCESS" and p.number("delay_fn_usec") == 0, p


UNAVAILABLE_MESSAGE = "The mail server is unavailable; please try again later."


def test_user_told_when_unavailable(pam, pki):
    cfg = config(pki, server("down", "imap", hosts("127.0.0.1"), closed_port()))
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert UNAVAILABLE_MESSAGE in r.output


def test_quiet_and_pam_silent_suppress_the_message(pam, pki):
    cfg = config(pki, server("down", "imap", hosts("127.0.0.1"), closed_port()))
    r = pam.run(cfg, "alice", "s3cret", args=("quiet",))
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert UNAVAILABLE_MESSAGE not in r.output
    r = pam.run(cfg, "alice", "s3cret", operation="authenticate(PAM_SILENT)")
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert UNAVAILABLE_MESSAGE not in r.output


def test_no_hint_whether_the_user_exists(pam, dv, pki):
    cfg = config(pki, imap_dv(dv))
    unknown = pam.run(cfg, "mallory", "s3cret")
    wrong = pam.run(cfg, "alice", "wrong-Pa55")
    assert unknown.code == wrong.code == "PAM_AUTH_ERR"
    strip = lambda r: [l for l in r.output.splitlines() if "PWRAP" not in l and l.strip()]
    assert strip(unknown) == strip(wrong)   # the user sees exactly the same


# ---- logs ----

def test_log_levels_and_fields(pam, dv, pki):
    cfg = config(pki, imap_dv(dv))
    ok = final_line(pam.run(cfg, "alice", "s3cret", args=()))
    assert ok[0] == LOG_INFO
    assert "user=alice result=accepted server=dv address=127.0.0.1:%d elapsed_ms=" \
        % dv.ports["imap"] in ok[1]
    refused = final_line(pam.run(cfg, "alice", "wrong-Pa55", args=()))
    assert refused[0] == LOG_NOTICE
    assert "result=refused" in refused[1] and "server refused credentials" in refused[1]
    down = final_line(pam.run(config(pki, server("down", "imap", hosts("127.0.0.1"),
                                                  closed_port())), "alice", "s3cret", args=()))
    assert down[0] == LOG_ERR and "result=unavailable" in down[1]
    bad = pam.run("server x {\n protocol = imap\n}\n", "alice", "s3cret", args=())
    assert bad.code == "PAM_SERVICE_ERR"
    assert any(p == LOG_ERR and "t.conf:3: server \"x\": host is required" in t
               for p, t in bad.logs), bad


def test_without_debug_only_the_outcome_is_logged(pam, dv, pki):
    r = pam.run(config(pki, imap_dv(dv)), "alice", "s3cret", args=())
    mine = [t for p, t in r.logs if "_pam_init_handlers" not in t]
    assert len(mine) == 1 and "result=accepted" in mine[0], r


def test_reason_certificate_hostname(pam, dv, pki):
    cfg = config(pki, server("dv", "imap", hosts("127.0.0.1"), dv.ports["imaps"], "implicit"))
    line = final_line(pam.run(cfg, "alice", "s3cret", args=()))
    assert 'certificate verify failed: IP address mismatch' in line[1]


def test_reason_connect_timeout(pam, pki):
    """A listener whose backlog is full drops SYNs: a real connect timeout on loopback."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))
    # The overall timeout is far beyond the bound: a connect that ignored connect_timeout
    # would read about 30 s (scaled), not about 1 s.
    try:
        cfg = config(pki, server("slow", "imap", hosts("127.0.0.1"), port), connect_timeout=1,
                     timeout=scaled(30))
        r = pam.run(cfg, "alice", "s3cret", args=())
    finally:
        filler.close()
        listener.close()
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    line = final_line(r)
    assert "connect to 127.0.0.1:%d: connect timeout after 1 s" % port in line[1]
    assert 990 <= int(line[1].split("elapsed_ms=")[1].split()[0]) <= 1000 + scaled(1000)


def test_unknown_argument_is_logged_and_ignored(pam, dv, pki):
    r = pam.run(config(pki, imap_dv(dv)), "alice", "s3cret", args=("bogus_arg",))
    assert r.code == "PAM_SUCCESS", r
    assert any(p == LOG_ERR and "unknown module argument ignored: bogus_arg" in t
               for p, t in r.logs), r


# ---- what pam_mailauth(8) promises beyond authentication ----

def test_setcred_and_acct_mgmt_answer_as_documented(pam, dv, pki):
    """pam_mailauth(8): "pam_sm_setcred returns PAM_SUCCESS and pam_sm_acct_mgmt returns
    PAM_IGNORE". Called directly on a live handle after a real authentication, so libpam's
    stack rules cannot mask a different answer."""
    for password, status in (("s3cret", "PAM_SUCCESS"), ("wrong-Pa55", "PAM_AUTH_ERR")):
        p = pam.probe(config(pki, imap_dv(dv)), "alice", password, call_module=True)
        assert p["authenticate"] == status, p
        assert p["sm_setcred"] == "PAM_SUCCESS", p
        assert p["sm_acct_mgmt"] == "PAM_IGNORE", p


# ---- the password from earlier in the stack (pam_get_authtok) ----

def set_items_module():
    import glob
    found = glob.glob("/usr/lib/*/pam_wrapper/pam_set_items.so")
    assert found, "pam_set_items.so (package libpam-wrapper) is missing"
    return found[0]


def stack(module, path, option, token_first=True):
    first = "auth optional %s\n" % set_items_module() if token_first else ""
    return first + "auth required %s config=%s debug %s" % (module, path, option)


PROMPT = "Password: "


@pytest.mark.parametrize("option", ["", "try_first_pass", "use_first_pass", "use_authtok"])
def test_password_from_earlier_in_the_stack_is_used(pam, dv, pki, module, option):
    """An earlier module set PAM_AUTHTOK: the module must use it and not prompt. What is typed
    at a prompt (a wrong password here) must never reach the server."""
    path = pam.write_config(config(pki, imap_dv(dv)))
    r = pam.run(None, "alice", "typed-Wrong1", config_path=path,
                service_line=stack(module, path, option), env={"PAM_AUTHTOK": "s3cret"})
    assert r.code == "PAM_SUCCESS", r
    assert PROMPT not in r.output, r


def test_use_first_pass_without_a_token_fails_without_prompting(pam, pki, module):
    with FakeServer(imap_server("{tag} OK welcome", login_expected=False)) as fake:
        path = pam.write_config(fake_cfg(pki, fake, "imap"))
        r = pam.run(None, "alice", "s3cret", config_path=path,
                    service_line=stack(module, path, "use_first_pass", token_first=False))
    assert r.code == "PAM_AUTH_ERR", r
    assert PROMPT not in r.output, r
    assert "cannot get the password" in r.log_text(), r
    assert fake.connections == 0


@pytest.mark.parametrize("option", ["try_first_pass", "use_authtok"])
def test_without_a_token_the_module_prompts(pam, dv, pki, module, option):
    """try_first_pass (and use_authtok, which only matters when changing passwords) fall back to
    asking the user."""
    path = pam.write_config(config(pki, imap_dv(dv)))
    r = pam.run(None, "alice", "s3cret", config_path=path,
                service_line=stack(module, path, option, token_first=False))
    assert r.code == "PAM_SUCCESS", r
    assert PROMPT in r.output, r


# ---- config safety (pam_mailauth(8): a symbolic link, not owned by root, group or world
# writable, or too large is PAM_SERVICE_ERR) ----

def unsafe_config_refused(pam, path, why):
    r = pam.run(None, "alice", "s3cret", config_path=path)
    assert r.code == "PAM_SERVICE_ERR", r
    assert why in r.log_text(), r
    assert "configuration %s is unusable" % path in r.log_text(), r


def test_config_owned_by_another_user_is_refused(pam, dv, pki):
    if os.geteuid() != 0:
        pytest.fail("needs root: only root can give a file to another owner")
    path = pam.write_config(config(pki, imap_dv(dv)))
    os.chown(path, 65534, 65534)
    unsafe_config_refused(pam, path, "owned by uid 65534; must be owned by root")


def test_group_writable_config_is_refused(pam, dv, pki):
    path = pam.write_config(config(pki, imap_dv(dv)), mode=0o620)
    unsafe_config_refused(pam, path, "group or world writable")


def test_config_through_a_symlink_is_refused(pam, dv, pki, tmp_path):
    path = pam.write_config(config(pki, imap_dv(dv)))
    assert pam.run(None, "alice", "s3cret", config_path=path).code == "PAM_SUCCESS"
    link = str(tmp_path / "link.conf")
    os.symlink(path, link)
    unsafe_config_refused(pam, link, "cannot open")


def test_relative_config_path_is_refused(pam, dv, pki):
    """config= relative to the caller's working directory (su run from a directory the user
    chose) would let the user pick the file; the module refuses it before opening anything. The
    same file by its absolute path works, so only the path's form is refused."""
    path = pam.write_config(config(pki, imap_dv(dv)))
    assert pam.run(None, "alice", "s3cret", config_path=path).code == "PAM_SUCCESS"
    relative = os.path.relpath(path)
    assert not relative.startswith("/")
    r = pam.run(None, "alice", "s3cret", config_path=relative)
    assert r.code == "PAM_SERVICE_ERR", r
    assert "config=%s is not an absolute path; refused" % relative in r.log_text(), r


def test_config_that_is_a_fifo_is_refused_without_waiting(pam, tmp_path):
    """A named pipe where the config should be: open() without O_NONBLOCK waits for a writer
    before fstat() can see that it is no regular file, so whoever can create it at that path
    hangs every login with no deadline (sshd, su). The module must refuse it at once. A helper
    opens the write end if the login has not ended within a generous bound (so a broken module
    does not hang the suite), and the test fails if it had to."""
    path = str(tmp_path / "fifo.conf")
    os.mkfifo(path, 0o644)
    ended, released = threading.Event(), threading.Event()

    def release_after_bound():
        if not ended.wait(scaled(20)):
            released.set()
            with open(path, "w"):
                pass
    helper = threading.Thread(target=release_after_bound)
    helper.start()
    try:
        r = pam.run(None, "alice", "s3cret", config_path=path)
    finally:
        ended.set()
        helper.join()
    assert not released.is_set(), "the module waited for a writer on the config FIFO"
    assert r.code == "PAM_SERVICE_ERR", r
    assert "%s: not a regular file" % path in r.log_text(), r


CONFIG_MAX_BYTES = 256 * 1024   # src/config.h


@pytest.mark.parametrize("size,code", [(CONFIG_MAX_BYTES, "PAM_SUCCESS"),
                                       (CONFIG_MAX_BYTES + 1, "PAM_SERVICE_ERR")],
                         ids=["at-the-limit", "one-byte-over"])
def test_config_size_limit(pam, dv, pki, size, code):
    text = config(pki, imap_dv(dv))
    pad = size - len(text.encode())
    text += "#" * (pad - 1) + "\n"
    assert len(text.encode()) == size
    r = pam.run(text, "alice", "s3cret")
    assert r.code == code, r
    if code == "PAM_SERVICE_ERR":
        assert "larger than %d bytes" % CONFIG_MAX_BYTES in r.log_text(), r


@pytest.mark.parametrize("text,line,why", [
    ("bogus = 1\n", 1, "no such option 'bogus'"),
    ("user {\n  lowercase = true\n  bogus = 1\n}\n", 3, "no such option 'bogus'"),
    ('server "x" {\n  protocol = imap\n  host = "127.0.0.1"\n  bogus = 1\n}\n', 4,
     "no such option 'bogus'"),
    ('timeout = 3\n"" = 1\n', 2, "syntax error"),
], ids=["global", "user-section", "server-section", "empty-option-name"])
def test_config_errors_name_file_and_line(pam, text, line, why):
    """pam_mailauth.conf(5): "the log names the file and line", inside sections too."""
    r = pam.run(text, "alice", "s3cret")
    assert r.code == "PAM_SERVICE_ERR", r
    assert "t.conf:%d: %s" % (line, why) in r.log_text(), r
