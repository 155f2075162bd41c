"""Issue 20, part 3: mailauth-cache against the real store after real logins (pamtester, the
module's own cache), and against a store someone tampered with: list shows user, config, age
and failure counter and never a hash; forget and flush remove only what the module wrote, with
its failure slots; symlinks are never followed; exit codes and --json as documented in
mailauth-cache(8)."""
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

from fakeserver import FakeServer
from helpers import config, hosts, server

PASSWORDS = {"alice": "s3cret", "bob": "bob-pw"}
EXIT_DONE, EXIT_USAGE, EXIT_CONFIG, EXIT_NO_ENTRY, EXIT_STORE = 0, 1, 2, 3, 4


def checking_server(conn):
    """LOGIN is accepted with the user's password in PASSWORDS, refused otherwise."""
    conn.line("* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] fake")
    while True:
        line = conn.readline()
        if line is None:
            return
        tag, rest = line.decode("utf-8", "replace").split(" ", 1)
        m = re.match(r'LOGIN "([^"]*)" "([^"]*)"$', rest)
        if m:
            ok = PASSWORDS.get(m.group(1)) == m.group(2)
            conn.line(tag + (" OK done" if ok else " NO [AUTHENTICATIONFAILED] no"))
        elif rest.upper() == "LOGOUT":
            conn.send("* BYE\r\n%s OK bye\r\n" % tag, peer_may_close=True)
            return


def tool(*args, user=None):
    exe = os.environ.get("MAILAUTH_CACHE_TOOL")
    assert exe and os.path.exists(exe), "MAILAUTH_CACHE_TOOL must name the built mailauth-cache"
    cmd = [exe] + list(args)
    if user is not None:
        cmd = ["setpriv", "--reuid", str(user), "--regid", str(user), "--clear-groups"] + cmd
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), \
        proc.stderr.decode("utf-8", "replace")


def records(d):
    return sorted(p for p in glob.glob(os.path.join(d, "*", "*"))
                  if re.fullmatch(r"[0-9a-f]{64}", os.path.basename(p)))


@pytest.fixture
def logged_in(pam, pki, tmp_path):
    """Real logins through the module with a cache: alice and bob confirmed by the server, one
    wrong password for bob (the ttl check counts it). Returns (config path, cache dir)."""
    d = str(tmp_path / "cache")
    head = ('cache {\n  dir = "%s"\n  ttl = 300\n  offline_grace = 3600\n  hash_cost = 1\n}\n'
            % d)
    with FakeServer(checking_server) as fake:
        cfg = config(pki, server("fake", "imap", hosts(fake.host), fake.port), head=head)
        for user, pw in PASSWORDS.items():
            assert pam.run(cfg, user, pw).code == "PAM_SUCCESS"
        assert pam.run(cfg, "bob", "wrong-Pa55").code == "PAM_AUTH_ERR"
    path = os.path.join(pam.workdir, "t.conf")
    assert len(records(d)) == 2
    return path, d


def listed(*args):
    code, out, err = tool(*(args + ("--json", "list")))
    assert code == EXIT_DONE, (out, err)
    doc = json.loads(out)
    return {e["user"]: e for e in doc["entries"]}, doc


def test_list_shows_users_never_hashes(logged_in):
    path, d = logged_in
    entries, doc = listed("--config", path)
    assert sorted(entries) == ["alice", "bob"], doc
    assert doc["dir"] == d and doc["all_stores"] is True and doc["problems"] == 0
    for e in entries.values():
        assert e["uid"] == os.geteuid() and e["current_config"] is True
        assert re.fullmatch(r"[0-9a-f]{64}", e["config"]) and 0 <= e["age_s"] < 600
    assert entries["alice"]["failures"] == 0 and entries["bob"]["failures"] == 1, entries
    code, out, err = tool("--config", path, "list")
    assert code == EXIT_DONE and re.search(r"^\d+ +alice +[0-9a-f]{12}\* ", out, re.M), out
    for text in (out, json.dumps(doc)):
        assert "$y$" not in text and "s3cret" not in text
        for p in records(d):
            assert os.path.basename(p) not in text   # no file name (a hash) either


def test_forget_removes_one_user(logged_in, pam):
    path, d = logged_in
    code, out, err = tool("--dir", d, "forget", "alice")
    assert code == EXIT_DONE and "1 record(s) removed" in out, (out, err)
    entries, _ = listed("--dir", d)
    assert sorted(entries) == ["bob"]
    assert len(records(d)) == 1
    code, out, err = tool("--dir", d, "--json", "forget", "alice")
    assert code == EXIT_NO_ENTRY and json.loads(out)["removed"] == [], (out, err)
    # the module finds no entry (within ttl it would answer from it): the server is gone
    r = pam.run(None, "alice", "s3cret", config_path=path)
    assert r.code == "PAM_AUTHINFO_UNAVAIL" and "offline cache: no entry" in r.log_text(), r
    r = pam.run(None, "bob", "bob-pw", config_path=path)
    assert r.code == "PAM_SUCCESS" and "source=cache" in r.log_text(), r


def test_flush_removes_everything(logged_in):
    path, d = logged_in
    code, out, err = tool("--config", path, "--json", "flush")
    assert code == EXIT_DONE, (out, err)
    assert sorted(e["user"] for e in json.loads(out)["removed"]) == ["alice", "bob"]
    assert records(d) == []
    # bob's wrong password left a failure slot; it goes with his record
    assert os.listdir(os.path.join(d, str(os.geteuid()))) == []
    code, out, err = tool("--config", path, "list")
    assert code == EXIT_DONE and "no records" in out


def test_never_follows_links_or_touches_foreign_files(logged_in, tmp_path):
    path, d = logged_in
    store = os.path.join(d, str(os.geteuid()))
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    os.chmod(victim, 0o600)
    alice = [p for p in records(d) if b"\nuser alice\n" in open(p, "rb").read()][0]
    link = os.path.join(store, "a" * 64)
    os.symlink(str(victim), link)
    foreign = os.path.join(store, "notes.txt")
    with open(foreign, "w") as f:
        f.write("admin notes\n")
    renamed = os.path.join(store, "b" * 64)          # a record under a name not its own
    with open(alice, "rb") as f, open(renamed, "wb") as g:
        g.write(f.read())
    os.chmod(renamed, 0o600)
    code, out, err = tool("--config", path, "flush")
    assert code == EXIT_STORE, (out, err)
    assert "2 record(s) removed" in out, out
    assert victim.read_text() == "keep me\n" and os.path.islink(link)
    assert os.path.exists(foreign) and os.path.exists(renamed)
    assert "a symbolic link" in err and "notes.txt" in err and "not that of its user" in err, err
    # a cache directory that is a link is not followed either
    os.symlink(d, str(tmp_path / "link"))
    code, out, err = tool("--dir", str(tmp_path / "link"), "list")
    assert code == EXIT_STORE and "not a directory (or a link)" in err, (out, err)


def test_other_uid_sees_only_its_own_store(logged_in):
    assert os.geteuid() == 0, "runs the tool as uid 65534 with setpriv: needs root"
    path, old = logged_in
    top = tempfile.mkdtemp(prefix="mailauth-cache-tool-")   # a path uid 65534 can search
    os.chmod(top, 0o755)
    d = os.path.join(top, "cache")
    os.rename(old, d)
    code, out, err = tool("--dir", d, "--json", "list", user=65534)
    assert code == EXIT_DONE, (out, err)
    doc = json.loads(out)
    assert doc["all_stores"] is False and doc["entries"] == [], doc
    code, out, err = tool("--dir", d, "flush", user=65534)
    assert code == EXIT_DONE and len(records(d)) == 2, (out, err)
    code, out, err = tool("--dir", d, "forget", "alice", user=65534)
    assert code == EXIT_NO_ENTRY and len(records(d)) == 2, (out, err)
    shutil.rmtree(top)


def test_usage_and_config_errors(tmp_path):
    assert tool()[0] == EXIT_USAGE
    assert tool("forget")[0] == EXIT_USAGE
    assert tool("list", "extra")[0] == EXIT_USAGE
    assert tool("--dir", "/x", "--config", "/y", "list")[0] == EXIT_USAGE
    assert tool("--config", str(tmp_path / "missing.conf"), "list")[0] == EXIT_CONFIG
    code, out, _ = tool("--dir", str(tmp_path / "never-created"), "list")
    assert code == EXIT_DONE and "no records" in out
