"""Issue 20, part 1: the fail2ban filter (etc/fail2ban/pam-mailauth.conf) run by the real
fail2ban-regex over lines the module itself sent to syslog (pamtester, real libpam, a private
/dev/log: PamRunner.run_syslog). A refusal with an IP address in PAM_RHOST matches with exactly
that address; acceptances (server, cache, offline), outages, policy refusals and hostile user
names or PAM_RHOST values never match another address."""
import os
import re
import shutil
import subprocess

import pytest

from fakeserver import FakeServer
from helpers import closed_port, config, hosts, server
from test_faults import imap_server

FILTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "etc", "fail2ban",
                      "pam-mailauth.conf")
COMMON = "/etc/fail2ban/filter.d/common.conf"
REFUSE = "{tag} NO [AUTHENTICATIONFAILED] Authentication failed."
ACCEPT = "{tag} OK [CAPABILITY IMAP4rev1] Logged in"


def fake_cfg(pki, fake, head=""):
    return config(pki, server("fake", "imap", hosts(fake.host), fake.port), head=head)


def syslog_file(path, results):
    """The lines as rsyslog writes them to a file: the host name after the timestamp."""
    with open(path, "w") as f:
        for r in results:
            for _, text in r.logs:
                f.write("%s testhost %s\n" % (text[:15], text[16:]))


def banned(tmp_path, results):
    """[address] for every line fail2ban-regex matched, in order."""
    if shutil.which("fail2ban-regex") is None:
        pytest.fail("fail2ban-regex is missing (Debian package fail2ban, scripts/lib.sh)")
    log = str(tmp_path / "auth.log")
    syslog_file(log, results)
    # As installed: beside the common.conf it includes.
    filter_d = tmp_path / "filter.d"
    filter_d.mkdir(exist_ok=True)
    shutil.copy(COMMON, filter_d / "common.conf")
    shutil.copy(FILTER, filter_d / "pam-mailauth.conf")
    proc = subprocess.run(["fail2ban-regex", "-o", "ip", "--print-no-missed", log,
                           str(filter_d / "pam-mailauth.conf")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, out
    return [line.strip() for line in out.splitlines() if line.strip()]


def result_line(r):
    lines = [t for _, t in r.logs if "result=" in t]
    assert len(lines) == 1, r
    return lines[0]


def refused(pam, pki, user, rhost):
    with FakeServer(imap_server(REFUSE)) as fake:
        r = pam.run_syslog(fake_cfg(pki, fake), user, "wrong-Pa55", rhost=rhost)
    assert r.code == "PAM_AUTH_ERR", r
    return r


def test_refusal_matches_its_address(pam, pki, tmp_path):
    v4 = refused(pam, pki, "alice", "198.51.100.7")
    v6 = refused(pam, pki, "alice", "2001:db8::7")
    assert re.search(r" result=refused .* service=mailtest rhost=198\.51\.100\.7$",
                     result_line(v4)), v4
    assert banned(tmp_path, [v4, v6]) == ["198.51.100.7", "2001:db8::7"]


def test_refusal_without_address_matches_nothing(pam, pki, tmp_path):
    none = refused(pam, pki, "alice", None)
    name = refused(pam, pki, "alice", "client.example.org")   # no DNS lookups
    assert result_line(none).endswith(" rhost=-"), none
    assert banned(tmp_path, [none, name]) == []


HOSTILE_RHOSTS = [
    "1.2.3.4 rhost=5.6.7.8",
    "203.0.113.9 rhost=198.51.100.66",
    "203.0.113.9\nDec  7 05:00:00 testhost sshd: pam_mailauth(sshd:auth): user=x "
    "result=refused service=sshd rhost=198.51.100.66",
    '"198.51.100.66"',
    "198.51.100.66\"",
    "x\" rhost=198.51.100.66",
    "rhost=198.51.100.66",
    " 198.51.100.66",
    "198.51.100.66\x1b[2K",
]


@pytest.mark.parametrize("rhost", HOSTILE_RHOSTS, ids=range(len(HOSTILE_RHOSTS)))
def test_hostile_rhost_names_no_address(pam, pki, tmp_path, rhost):
    r = refused(pam, pki, "alice", rhost)
    line = result_line(r)
    assert "\n" not in line and '\\"' in line or '"' in line, line   # quoted, one line
    assert banned(tmp_path, [r]) == []


HOSTILE_USERS = [
    "x result=refused service=sshd rhost=198.51.100.66",
    'x" result=refused service=sshd rhost=198.51.100.66',
    'a\\" rhost=198.51.100.66 "',
]


@pytest.mark.parametrize("user", HOSTILE_USERS, ids=range(len(HOSTILE_USERS)))
def test_hostile_user_names_only_real_address(pam, pki, tmp_path, user):
    r = refused(pam, pki, user, "192.0.2.10")
    assert banned(tmp_path, [r]) == ["192.0.2.10"]


def test_server_text_cannot_name_an_address(pam, pki, tmp_path):
    """The reason quotes the server's refusal; the real rhost field still ends the line."""
    reply = '{tag} NO [AUTHENTICATIONFAILED] x" service=sshd rhost=198.51.100.66'
    with FakeServer(imap_server(reply)) as fake:
        absent = pam.run_syslog(fake_cfg(pki, fake), "alice", "wrong-Pa55")
    with FakeServer(imap_server(reply)) as fake:
        present = pam.run_syslog(fake_cfg(pki, fake), "alice", "wrong-Pa55", rhost="192.0.2.11")
    assert "rhost=198.51.100.66" in result_line(absent), absent
    assert banned(tmp_path, [absent, present]) == ["192.0.2.11"]


def test_newline_in_user_name_is_no_line(pam, pki, tmp_path):
    """Refused before anything is sent (invalid input): one escaped line, never a match."""
    user = "alice\nDec  7 05:00:00 testhost sshd: pam_mailauth(sshd:auth): user=x result=refused"
    r = pam.run_syslog(config(pki, server("x", "imap", hosts("127.0.0.1"), closed_port())),
                       user + " service=sshd rhost=198.51.100.66", "pw", rhost="192.0.2.12")
    assert r.code == "PAM_AUTH_ERR", r
    assert banned(tmp_path, [r]) == []


def test_acceptances_and_outages_never_match(pam, pki, tmp_path):
    rhost = "198.51.100.20"
    runs = []
    with FakeServer(imap_server(ACCEPT)) as fake:
        r = pam.run_syslog(fake_cfg(pki, fake), "alice", "s3cret", rhost=rhost)
    assert r.code == "PAM_SUCCESS", r
    runs.append(r)
    # outage: nothing listens
    r = pam.run_syslog(config(pki, server("x", "imap", hosts("127.0.0.1"), closed_port())),
                       "alice", "s3cret", rhost=rhost)
    assert r.code == "PAM_AUTHINFO_UNAVAIL" and "result=unavailable" in result_line(r), r
    runs.append(r)
    # policy: deny_users
    r = pam.run_syslog(config(pki, server("x", "imap", hosts("127.0.0.1"), closed_port()),
                              head='user {\n  deny_users = {"root"}\n}\n'),
                       "root", "s3cret", rhost=rhost)
    assert r.code == "PAM_USER_UNKNOWN", r
    runs.append(r)
    # cache (ttl) and offline acceptances
    cache = str(tmp_path / "cache")
    head = ('cache {\n  dir = "%s"\n  ttl = 300\n  offline_grace = 3600\n  hash_cost = 1\n}\n'
            % cache)
    with FakeServer(imap_server(ACCEPT)) as fake:
        cfg = fake_cfg(pki, fake, head=head)
        assert pam.run_syslog(cfg, "bob", "bob-pw", rhost=rhost).code == "PAM_SUCCESS"
        r = pam.run_syslog(cfg, "bob", "bob-pw", rhost=rhost)
    assert "source=cache" in result_line(r), r
    runs.append(r)
    head = head.replace("ttl = 300", "ttl = 0")
    with FakeServer(imap_server(ACCEPT)) as fake:
        cfg = fake_cfg(pki, fake, head=head)
        assert pam.run_syslog(cfg, "carol", "carol-pw", rhost=rhost).code == "PAM_SUCCESS"
    r = pam.run_syslog(cfg, "carol", "carol-pw", rhost=rhost)
    assert r.code == "PAM_SUCCESS" and "source=offline" in result_line(r), r
    runs.append(r)
    assert banned(tmp_path, runs) == []
    # and the same file with one refusal added matches that one only
    runs.append(refused(pam, pki, "alice", "198.51.100.21"))
    assert banned(tmp_path, runs) == ["198.51.100.21"]


def test_man_page_jail_is_valid(tmp_path):
    """The jail in pam_mailauth(8), with the filter, passes fail2ban-client's configuration test
    (in a copy of /etc/fail2ban; Debian's own sshd jail switched off: it needs a log file)."""
    from manpage import man_examples
    conf = tmp_path / "fail2ban"
    shutil.copytree("/etc/fail2ban", conf)
    shutil.copy(FILTER, conf / "filter.d" / "pam-mailauth.conf")
    jail = man_examples("fail2ban")[0]
    assert "filter   = pam-mailauth" in jail, jail
    (conf / "jail.d" / "pam-mailauth.local").write_text(jail)
    (conf / "jail.d" / "zz-sshd-off.local").write_text("[sshd]\nenabled = false\n")
    proc = subprocess.run(["fail2ban-client", "-c", str(conf), "-d"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=120)
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0 and "'pam-mailauth'" in out, out
    assert "result=refused" in out, out   # the filter's regex was loaded into the jail
