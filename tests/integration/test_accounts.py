"""Accounts for mail users (mailauth-accounts(8)) through real libpam (pamtester under
pam_wrapper) and a real Dovecot: a server-confirmed login registers the name, the login that
registered it is refused by acct_mgmt with a word to connect again, the next one passes; nothing
is registered for a wrong password, a server that is down or a name outside the policy; a locked
account is refused with the right password; a removed account's uid is never given to another
name."""
import os
import subprocess

from helpers import closed_port, config, hosts, server
from test_admin import imap_dv

CREATED = "has been created; please connect again"


def tool(registry, *args):
    path = os.environ["MAILAUTH_ACCOUNTS_TOOL"]
    return subprocess.run([path, "--registry", registry] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=30)


def registry_path(pam):
    return os.path.join(pam.workdir, "reg", "accounts")


def accounts_config(pki, registry, srv, user="", extra=""):
    head = 'user { %s }\naccounts { registry = "%s" %s }\n' % (user, registry, extra)
    return config(pki, srv, head=head)


def login(pam, cfg, user, password):
    """authenticate then acct_mgmt, both lines of the module, in one PAM handle."""
    path = pam.write_config(cfg)
    line = ("auth required %s config=%s debug\naccount required %s config=%s debug"
            % (pam.module, path, pam.module, path))
    return pam.run(None, user, password, config_path=path, service_line=line,
                   operation="authenticate acct_mgmt")


def lines(registry):
    if not os.path.exists(registry):
        return []
    with open(registry) as f:
        return [l for l in f.read().splitlines() if l and not l.startswith("#")]


def test_first_login_registers_then_the_next_passes(pam, dv, pki):
    reg = registry_path(pam)
    cfg = accounts_config(pki, reg, imap_dv(dv), extra='home = "/home/mail/%u"')
    r = login(pam, cfg, "alice", "s3cret")
    assert "successfully authenticated" in r.output, r
    assert CREATED in r.output, r
    assert "Permission denied" in r.output, r
    assert lines(reg) == ["alice:70000:70000:active:/home/mail/alice:/bin/bash:"], lines(reg)
    assert any("registered alice" in t and "uid 70000" in t for _, t in r.logs), r
    r = login(pam, cfg, "alice", "s3cret")
    assert "successfully authenticated" in r.output and CREATED not in r.output, r
    assert r.output.rstrip().endswith("account management done."), r
    assert len(lines(reg)) == 1
    st = os.stat(reg)
    assert st.st_uid == 0 and (st.st_mode & 0o777) == 0o644


def test_nothing_registered_without_a_server_yes(pam, dv, pki):
    reg = registry_path(pam)
    cfg = accounts_config(pki, reg, imap_dv(dv))
    r = login(pam, cfg, "alice", "wrong-Pa55")
    assert "Authentication failure" in r.output, r
    down = server("down", "imap", hosts("127.0.0.1"), closed_port())
    r = login(pam, accounts_config(pki, reg, down), "alice", "s3cret")
    assert "successfully authenticated" not in r.output, r
    # outside the policy: allowed_domains lets only example.org through
    r = login(pam, accounts_config(pki, reg, imap_dv(dv),
                                   user='allowed_domains = {"example.org"}'), "alice", "s3cret")
    assert "successfully authenticated" not in r.output, r
    # accepted by the server, but not the one form of the name (lowercase = true)
    r = login(pam, accounts_config(pki, reg, imap_dv(dv), user="lowercase = true"),
              "ALICE", "s3cret")
    assert "successfully authenticated" in r.output, r
    assert any("not registered" in t and "capital" in t for _, t in r.logs), r
    assert lines(reg) == []


def test_locked_account_is_refused_with_the_right_password(pam, dv, pki):
    reg = registry_path(pam)
    cfg = accounts_config(pki, reg, imap_dv(dv))
    login(pam, cfg, "alice", "s3cret")
    assert tool(reg, "lock", "alice").returncode == 0
    r = login(pam, cfg, "alice", "s3cret")
    assert "successfully authenticated" in r.output, r
    assert "Permission denied" in r.output and CREATED not in r.output, r
    assert any("account locked" in t for _, t in r.logs), r
    assert tool(reg, "unlock", "alice").returncode == 0
    r = login(pam, cfg, "alice", "s3cret")
    assert r.output.rstrip().endswith("account management done."), r


def test_removed_uid_is_never_given_to_another_name(pam, dv, pki):
    reg = registry_path(pam)
    cfg = accounts_config(pki, reg, imap_dv(dv))
    login(pam, cfg, "alice", "s3cret")
    assert tool(reg, "remove", "alice").returncode == 0
    assert "alice" not in tool(reg, "list").stdout
    login(pam, cfg, "erin", 'q"u\\o{t}e%*( )d')
    login(pam, cfg, "alice", "s3cret")
    got = sorted(lines(reg))
    assert got == ["alice:70000:70000:active:/home/alice:/bin/bash:",
                   "erin:70001:70001:active:/home/erin:/bin/bash:"], got


def test_unsafe_registry_changes_nothing(pam, dv, pki):
    reg = registry_path(pam)
    cfg = accounts_config(pki, reg, imap_dv(dv))
    login(pam, cfg, "alice", "s3cret")
    os.chmod(reg, 0o666)
    r = login(pam, cfg, "erin", 'q"u\\o{t}e%*( )d')
    assert any("unsafe" in t for _, t in r.logs), r
    os.chmod(reg, 0o644)
    assert [l.split(":")[0] for l in lines(reg)] == ["alice"]


def test_range_meeting_an_existing_id_is_refused(pam, dv, pki):
    reg = registry_path(pam)
    cfg = accounts_config(pki, reg, imap_dv(dv), extra="uid_min = 70000 uid_max = 200000")
    r = login(pam, cfg, "alice", "s3cret")
    assert "Error in service module" in r.output, r
    assert any("t.conf:" in t and "subordinate" in t for _, t in r.logs), r
    assert not os.path.exists(reg)


def test_tool_prints_hostile_names_escaped(tmp_path):
    """Names from the registry and the command line, and paths, reach the terminal escaped
    (\\xHH), never as control sequences that could draw on an administrator's screen."""
    reg_dir = tmp_path / "reg"
    reg_dir.mkdir(mode=0o755)
    reg = reg_dir / "accounts"
    reg.write_text("alice:70000:70000:active:/home/mail/alice:/bin/bash:\n"
                   "ev\x1b[2Jil:70001:70001:active:/home/mail/evil:/bin/sh:\n")
    os.chmod(reg, 0o644)
    hostile = "\x1b]2;owned\x07\x1b[31mbob"
    shown = "\\x1b]2;owned\\x07\\x1b[31mbob"
    expect = {"show": "no account " + shown, "lock": "no registered account " + shown,
              "unlock": "no registered account " + shown}
    for cmd, want in expect.items():
        r = tool(str(reg), cmd, hostile)
        assert r.returncode == 1, r
        assert "\x1b" not in r.stdout and "\x07" not in r.stdout, r
        assert "mailauth-accounts: " + want in r.stdout, r
    r = tool(str(reg), "list")
    assert r.returncode == 0 and r.stdout.startswith("alice 70000 70000 active /home/mail/alice"), r
    assert "\x1b" not in r.stdout, r
    r = subprocess.run([os.environ["MAILAUTH_ACCOUNTS_TOOL"], "--nsswitch",
                        str(tmp_path / ("nss\x1b[2J")), "nsswitch", "status"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode == 1 and "\x1b" not in r.stdout, r
    assert "cannot read " + str(tmp_path) + "/nss\\x1b[2J" in r.stdout, r
