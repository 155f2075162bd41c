"""Issue 9: the credential cache, through real libpam against Dovecot and scripted fake servers.

ttl hits never reach Dovecot; offline acceptance happens only when no server received anything
derived from the password; a refusal of the cached password removes the entry; a hostile or
damaged store is ignored with a log line and never yields a yes; many threads and processes at
once keep every answer right and every record whole. After every test the cache directory is
scanned for the passwords used."""
import ctypes
import glob
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

import dovecot
import pamrun
from conftest import USERS
from fakeserver import FakeServer
from helpers import config as plain_config
from helpers import hosts, scaled, server

LOG_NOTICE, LOG_INFO = 5, 6
OTHER_PASSWORDS = ["wrong-Pa55", "evil-Pa55", "old-Pa55", "new-Pa55", "fake-Pa55"]
CAPS = "IMAP4rev1 LITERAL+ AUTH=PLAIN"


# ---- helpers ----

def config(pki, *servers, head="", ca=True, timeout=5, connect_timeout=2):
    """helpers.config with the timeouts scaled for valgrind and sanitizer runs."""
    return plain_config(pki, *servers, head=head, ca=ca, timeout=scaled(timeout),
                        connect_timeout=scaled(connect_timeout))


@pytest.fixture
def cache_dir(tmp_path):
    """The test's cache directory; afterwards no file in it may hold a password."""
    d = str(tmp_path / "cache")
    yield d
    secrets = [p.encode("utf-8") for p in list(USERS.values()) + OTHER_PASSWORDS]
    for root, _, files in os.walk(d):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                data = f.read()
            for s in secrets:
                assert s not in data, "password found in cache file %s" % path


def cache_section(d, ttl=0, offline=0, max_failures=5, cost=1):
    return ('cache {\n  dir = "%s"\n  ttl = %d\n  offline_grace = %d\n  hash_cost = %d\n'
            '  max_failures = %d\n}\n' % (d, ttl, offline, cost, max_failures))


def dv_imap(d, label="dv"):
    return server(label, "imap", hosts("127.0.0.1"), d.ports["imap"])


def final_line(r):
    lines = [(p, t) for p, t in r.logs if "result=" in t]
    assert len(lines) == 1, r
    return lines[0]


def records(d):
    """Record files (64 hex characters) under the cache dir."""
    return sorted(p for p in glob.glob(os.path.join(d, "*", "*"))
                  if re.fullmatch(r"[0-9a-f]{64}", os.path.basename(p)))


def record_of(d, user):
    for p in records(d):
        with open(p, "rb") as f:
            if b"\nuser %s\n" % user.encode() in f.read():
                return p
    return None


def read_record(path):
    with open(path) as f:
        lines = f.read().splitlines()
    assert lines[0] == "pam_mailauth cache 1", lines
    return dict(line.split(" ", 1) for line in lines[1:])


def failures(path):
    """The failures counted against the record at path: its own counter, then one slot file
    (NAME.f<16 hex of SHA-256 of the hash>.K) per password counted since it was written."""
    fields = read_record(path)
    tag = hashlib.sha256(fields["hash"].encode()).hexdigest()[:16]
    k = int(fields["failures"])
    while os.path.lexists("%s.f%s.%d" % (path, tag, k)):
        k += 1
    return k


def write_record(path, fields, mode=0o600):
    text = "pam_mailauth cache 1\n" + "".join(
        "%s %s\n" % (k, fields[k]) for k in ("user", "config", "hash", "confirmed", "failures"))
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def age_record(path, seconds):
    fields = read_record(path)
    fields["confirmed"] = str(int(time.time()) - seconds)
    write_record(path, fields)


def yescrypt(password, setting):
    """libxcrypt's crypt(3), for crafting records the module would accept when intact."""
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    out = lib.crypt(password.encode(), setting.encode()).decode()
    assert out.startswith("$y$"), out
    return out


def logins(dv, user, since=0):
    return dv.log_since(since).count("Login: user=<%s>" % user)


def barrier(dv, pam, since):
    """Make sure every line Dovecot would log for what happened before is in its log: log in
    another user (no cache section) and wait for that line, which comes after them."""
    r = pam.run(None, "erin", USERS["erin"], args=(),
                config_path=pam.write_config(config(None, dv_imap(dv), ca=False),
                                             name="barrier.conf"))
    assert r.code == "PAM_SUCCESS", r
    assert dv.wait_log("Login: user=<erin>", since), dv.log_since(since)


def private_dovecot(workdir, pki, users):
    """Under the session's workdir: Dovecot's mail processes (uid 65534) must reach it, and
    pytest's own tmp_path is not open to them."""
    d = dovecot.Dovecot(tempfile.mkdtemp(prefix="cache-dv-", dir=workdir), users,
                        pki["server_cert"], pki["server_key"])
    try:
        return d.start()
    except Exception:
        shutil.rmtree(d.d, ignore_errors=True)
        raise


@pytest.fixture
def own_dv(workdir, pki):
    """A private Dovecot that a test may stop or whose password file it may change."""
    d = private_dovecot(workdir, pki, {"alice": "s3cret", "bob": "bob-pw", "frank": "old-Pa55"})
    yield d
    d.stop()
    shutil.rmtree(d.d, ignore_errors=True)


def restart(d):
    """Start a stopped Dovecot again with the same config, hence on the same ports."""
    d.proc = subprocess.Popen([dovecot.DOVECOT, "-F", "-c", d.conf], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    for port in d.ports.values():
        assert dovecot.wait_port(port, timeout=scaled(10)), d.log()


def set_password(d, user, password):
    """Rewrite the private Dovecot's passwd-file (re-read when it changes)."""
    d.users = dict(d.users, **{user: password})
    path = os.path.join(d.d, "passwd")
    tmp = path + ".new"
    with open(tmp, "wb") as f:
        for u, p in d.users.items():
            f.write(u.encode() + b":{PLAIN}" + p.encode("utf-8") + b"::::::\n")
    os.chmod(tmp, 0o644)
    # Dovecot re-reads the file when its mtime or size changes, checking at most once per
    # second of its clock (passwd_file_sync): change the mtime, and let that second pass.
    later = os.stat(path).st_mtime + 10
    os.utime(tmp, (later, later))
    os.rename(tmp, path)
    time.sleep(1.1)


# ---- without a cache section nothing is touched ----

def test_no_cache_section_touches_nothing(pam, dv, pki, cache_dir):
    cfg = config(pki, dv_imap(dv))
    for _ in range(2):
        r = pam.run(cfg, "alice", "s3cret")
        assert r.code == "PAM_SUCCESS", r
        assert "cache" not in r.log_text(), r
    # a section with both ttl and offline_grace at 0 is off too
    r = pam.run(config(pki, dv_imap(dv), head=cache_section(cache_dir)), "alice", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    assert not os.path.exists(cache_dir)


# ---- ttl ----

def test_ttl_second_login_does_not_reach_dovecot(pam, dv, pki, cache_dir):
    cfg = config(pki, dv_imap(dv), head=cache_section(cache_dir, ttl=300))
    start = dv.log_size()
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    assert "server=dv" in final_line(r)[1]
    assert dv.wait_log("Login: user=<alice>", start), dv.log_since(start)
    assert len(records(cache_dir)) == 1

    mark = dv.log_size()
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    prio, line = final_line(r)
    assert prio == LOG_INFO and "user=alice result=accepted source=cache age_s=" in line, r
    barrier(dv, pam, mark)
    assert logins(dv, "alice", mark) == 0, dv.log_since(mark)

    # a different password within ttl goes to Dovecot, which refuses it
    mark = dv.log_size()
    r = pam.run(cfg, "alice", "wrong-Pa55")
    assert r.code == "PAM_AUTH_ERR", r
    assert "the password differs from the one confirmed" in r.log_text(), r
    assert "a server refused a password other than the cached one; entry kept" in r.log_text()
    assert "user=alice result=refused server=dv" in final_line(r)[1]
    assert dv.wait_log("alice", mark), dv.log_since(mark)
    # the entry is kept, its counter shows the mismatch, and it still answers
    assert failures(record_of(cache_dir, "alice")) == 1
    r = pam.run(cfg, "alice", "s3cret")
    assert "source=cache" in final_line(r)[1], r


def test_ttl_expired_goes_to_dovecot_and_hits_do_not_extend(pam, dv, pki, cache_dir):
    cfg = config(pki, dv_imap(dv), head=cache_section(cache_dir, ttl=60))
    assert pam.run(cfg, "alice", "s3cret").code == "PAM_SUCCESS"
    path = record_of(cache_dir, "alice")
    age_record(path, 50)
    before = read_record(path)
    r = pam.run(cfg, "alice", "s3cret")
    assert re.search(r"source=cache age_s=5\d ", final_line(r)[1]), r
    assert read_record(path) == before   # a hit writes nothing
    age_record(path, 61)
    mark = dv.log_size()
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS" and "server=dv" in final_line(r)[1], r
    assert dv.wait_log("Login: user=<alice>", mark)
    # the server's yes renewed the record with a fresh salt
    after = read_record(path)
    assert int(after["confirmed"]) >= int(time.time()) - 5
    assert after["hash"] != before["hash"] and after["hash"].startswith("$y$j75$")


def test_ttl_keys_by_mapped_user_and_config(pam, dv, pki, cache_dir):
    head = cache_section(cache_dir, ttl=300)
    cfg = config(pki, dv_imap(dv), head=head)
    assert pam.run(cfg, "alice", "s3cret").code == "PAM_SUCCESS"
    # the same settings in another file: another config, no shared entries
    r = pam.run(None, "alice", "s3cret", config_path=pam.write_config(cfg, name="other.conf"))
    assert r.code == "PAM_SUCCESS" and "server=dv" in final_line(r)[1], r
    # an edited file starts afresh
    r = pam.run(cfg + "# edited\n", "alice", "s3cret")
    assert "server=dv" in final_line(r)[1], r
    # the name the servers see is the key: ALICE lowercased is alice
    cfg_lower = config(pki, dv_imap(dv), head=head + "user {\n  lowercase = true\n}\n")
    assert pam.run(cfg_lower, "alice", "s3cret").code == "PAM_SUCCESS"
    r = pam.run(cfg_lower, "ALICE", "s3cret")
    assert "user=alice result=accepted source=cache" in final_line(r)[1], r
    assert len(records(cache_dir)) == 4


def test_max_failures_locks_ttl_until_server_confirms(pam, dv, pki, cache_dir):
    cfg = config(pki, dv_imap(dv), head=cache_section(cache_dir, ttl=300, max_failures=2))
    assert pam.run(cfg, "alice", "s3cret").code == "PAM_SUCCESS"
    for _ in range(2):
        assert pam.run(cfg, "alice", "wrong-Pa55").code == "PAM_AUTH_ERR"
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS" and "server=dv" in final_line(r)[1], r
    assert "entry locked after 2 mismatches" in r.log_text(), r
    # that server-confirmed login unlocked it
    r = pam.run(cfg, "alice", "s3cret")
    assert "source=cache" in final_line(r)[1], r


# ---- a password changed on the server ----

def test_changed_password_refused_and_entry_removed(pam, own_dv, pki, cache_dir):
    cfg = config(pki, dv_imap(own_dv), head=cache_section(cache_dir, offline=3600))
    r = pam.run(cfg, "frank", "old-Pa55")
    assert r.code == "PAM_SUCCESS", r
    assert record_of(cache_dir, "frank") is not None
    set_password(own_dv, "frank", "new-Pa55")
    r = pam.run(cfg, "frank", "old-Pa55")
    assert r.code == "PAM_AUTH_ERR", r
    assert "a server refused the cached password; entry removed" in r.log_text(), r
    assert record_of(cache_dir, "frank") is None
    # and it cannot come back offline
    own_dv.stop()
    r = pam.run(cfg, "frank", "old-Pa55")
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "offline cache: no entry" in final_line(r)[1], r


def test_changed_password_within_ttl(pam, own_dv, pki, cache_dir):
    """The documented trade-off, and its end: the old password works from the cache until the
    server is asked; the new one is asked, confirmed and replaces it."""
    cfg = config(pki, dv_imap(own_dv), head=cache_section(cache_dir, ttl=300))
    assert pam.run(cfg, "frank", "old-Pa55").code == "PAM_SUCCESS"
    set_password(own_dv, "frank", "new-Pa55")
    assert "source=cache" in final_line(pam.run(cfg, "frank", "old-Pa55"))[1]
    r = pam.run(cfg, "frank", "new-Pa55")
    assert r.code == "PAM_SUCCESS" and "server=dv" in final_line(r)[1], r
    r = pam.run(cfg, "frank", "old-Pa55")
    assert r.code == "PAM_AUTH_ERR", r
    assert "source=cache" in final_line(pam.run(cfg, "frank", "new-Pa55"))[1]


# ---- offline ----

def test_offline_grace_with_dovecot_stopped(pam, own_dv, pki, cache_dir):
    cfg = config(pki, dv_imap(own_dv),
                 head=cache_section(cache_dir, offline=3600, max_failures=3))
    for user, pw in (("alice", "s3cret"), ("bob", "bob-pw")):
        r = pam.run(cfg, user, pw)
        assert r.code == "PAM_SUCCESS" and "server=dv" in final_line(r)[1], r
    own_dv.stop()

    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    prio, line = final_line(r)
    assert prio == LOG_NOTICE, r
    assert re.search(r"user=alice result=accepted source=offline age_s=\d+ ", line), line
    assert "Connection refused" in line, line

    # older than the grace: unavailable
    age_record(record_of(cache_dir, "bob"), 3601)
    r = pam.run(cfg, "bob", "bob-pw")
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "beyond offline_grace (3600 s)" in final_line(r)[1], r

    # wrong passwords: never accepted; the third locks the entry
    for i in range(1, 4):
        r = pam.run(cfg, "alice", "wrong-Pa55")
        assert r.code == "PAM_AUTHINFO_UNAVAIL", r
        assert "the password does not match (mismatch %d of 3)" % i in final_line(r)[1], r
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "entry locked after 3 mismatches" in final_line(r)[1], r


def test_offline_grace_after_server_restart_and_unlock(pam, own_dv, pki, cache_dir):
    """A locked entry is unlocked by the next server-confirmed login, and offline works again."""
    d = own_dv
    cfg = config(pki, dv_imap(d), head=cache_section(cache_dir, offline=3600,
                                                     max_failures=1))
    assert pam.run(cfg, "alice", "s3cret").code == "PAM_SUCCESS"
    d.stop()
    assert pam.run(cfg, "alice", "wrong-Pa55").code == "PAM_AUTHINFO_UNAVAIL"
    r = pam.run(cfg, "alice", "s3cret")
    assert "entry locked after 1 mismatches" in final_line(r)[1], r
    # the same Dovecot, back on the same ports
    restart(d)
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS" and "server=dv" in final_line(r)[1], r
    d.stop()
    r = pam.run(cfg, "alice", "s3cret")
    assert "source=offline" in final_line(r)[1], r


# ---- offline_grace and servers that got the password ----

class Phased:
    """A fake IMAP server whose behaviour the test switches between logins."""

    def __init__(self):
        self.mode = "accept"
        self.logins = []

    def __call__(self, conn):
        mode = self.mode
        if mode == "close-at-once":
            return
        if mode == "garbage-greeting":
            conn.line("HTTP/1.1 400 Bad Request")
            conn.drain(0.5)
            return
        conn.line("* OK [CAPABILITY %s] fake" % CAPS)
        line = conn.readline()
        while line is not None and b" LOGIN " not in line.upper():
            line = conn.readline()
        if line is None:
            return
        self.logins.append(line)
        tag = line.split(b" ", 1)[0].decode()
        if mode == "accept":
            conn.line(tag + " OK LOGIN completed")
        elif mode == "refuse":
            conn.line(tag + " NO [AUTHENTICATIONFAILED] Authentication failed.")
        elif mode == "stall":
            conn.readline(timeout=scaled(30))   # answers only after the client gave up
            return
        elif mode == "close":
            return
        conn.drain(0.5)


def fake_imap_cfg(fake, head, timeout=1.0):
    return config(None, server("fake", "imap", hosts(fake.host), fake.port), ca=False,
                  head=head, timeout=timeout, connect_timeout=1)


@pytest.mark.parametrize("after", ["stall", "close"])
def test_no_offline_when_the_server_got_the_password(pam, cache_dir, after):
    script = Phased()
    with FakeServer(script) as fake:
        cfg = fake_imap_cfg(fake, cache_section(cache_dir, offline=3600))
        r = pam.run(cfg, "alice", "s3cret")
        assert r.code == "PAM_SUCCESS" and "server=fake" in final_line(r)[1], r
        script.mode = after
        r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "offline cache not used: a server received the credentials" in final_line(r)[1], r
    assert len(script.logins) == 2 and b"s3cret" in script.logins[1]
    # the entry itself is untouched: it was neither refused nor compared
    assert failures(record_of(cache_dir, "alice")) == 0


def test_no_offline_when_only_the_literal_length_was_sent(pam, cache_dir):
    """A synchronizing literal announced and never answered with '+': only the password's length
    left the client, and that is already credential-derived."""
    pw = USERS["bob"]   # UTF-8: travels as a literal
    state = {"mode": "accept"}

    def script(conn):
        conn.line("* OK [CAPABILITY IMAP4rev1] fake")
        first = conn.readline()
        if first is None:
            return
        if state["mode"] == "stall":
            conn.readline(timeout=scaled(30))
            return
        conn.line("+ go ahead")
        conn.readline()
        conn.line(first.split(b" ")[0].decode() + " OK LOGIN completed")
        conn.drain(0.5)
    with FakeServer(script) as fake:
        cfg = fake_imap_cfg(fake, cache_section(cache_dir, offline=3600))
        assert pam.run(cfg, "bob", pw).code == "PAM_SUCCESS"
        state["mode"] = "stall"
        received = len(fake.received)
        r = pam.run(cfg, "bob", pw)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert pw.encode() not in fake.received[received:]
    assert b"{%d}" % len(pw.encode()) in fake.received[received:]
    assert "offline cache not used" in final_line(r)[1], r


def test_no_offline_after_apop_digest(pam, cache_dir):
    state = {"mode": "accept"}

    def script(conn):
        conn.line("+OK ready <1896.697170952@dbc.mtview.ca.us>")
        line = conn.readline()
        if line is None or not line.startswith(b"APOP "):
            return
        if state["mode"] == "stall":
            conn.readline(timeout=scaled(30))
            return
        conn.line("+OK maildrop ready")
        conn.drain(0.5)
    with FakeServer(script) as fake:
        cfg = config(None, server("fake", "pop3", hosts(fake.host), fake.port), ca=False,
                     head=cache_section(cache_dir, offline=3600), timeout=1, connect_timeout=1)
        assert pam.run(cfg, "alice", "s3cret").code == "PAM_SUCCESS"
        state["mode"] = "stall"
        r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    assert "offline cache not used" in final_line(r)[1], r


@pytest.mark.parametrize("mode", ["close-at-once", "garbage-greeting"])
def test_offline_when_the_server_failed_before_login(pam, cache_dir, mode):
    """The control: the same fake server failing before the login command is offline."""
    script = Phased()
    with FakeServer(script) as fake:
        cfg = fake_imap_cfg(fake, cache_section(cache_dir, offline=3600))
        assert pam.run(cfg, "alice", "s3cret").code == "PAM_SUCCESS"
        script.mode = mode
        r = pam.run(cfg, "alice", "s3cret")
        wrong = pam.run(cfg, "alice", "wrong-Pa55")
    assert r.code == "PAM_SUCCESS" and "source=offline" in final_line(r)[1], r
    assert wrong.code == "PAM_AUTHINFO_UNAVAIL", wrong
    assert len(script.logins) == 1


def test_refusal_is_never_offline_and_removes_the_entry(pam, cache_dir):
    script = Phased()
    with FakeServer(script) as fake:
        head = cache_section(cache_dir, offline=3600)
        cfg = config(None, server("fake", "imap", hosts(fake.host), fake.port),
                     server("down", "imap", hosts("127.0.0.1"), dovecot.free_port()),
                     ca=False, head=head, timeout=1, connect_timeout=1)
        assert pam.run(cfg, "alice", "s3cret").code == "PAM_SUCCESS"
        script.mode = "refuse"
        # the first server refuses, the second is down: a refusal, whatever the cache holds
        r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_AUTH_ERR", r
    assert "entry removed" in r.log_text(), r
    assert record_of(cache_dir, "alice") is None


# ---- a hostile or damaged store ----

def crafted(pam, dv, pki, cache_dir, password="evil-Pa55"):
    """Store alice's record through a real login, then give it the hash of another password,
    as an attacker able to write it would. Returns (cfg, path, fields)."""
    cfg = config(pki, dv_imap(dv), head=cache_section(cache_dir, ttl=300))
    assert pam.run(cfg, "alice", "s3cret").code == "PAM_SUCCESS"
    path = record_of(cache_dir, "alice")
    fields = read_record(path)
    fields["hash"] = yescrypt(password, fields["hash"].rsplit("$", 1)[0])
    write_record(path, fields)
    return cfg, path, fields


def test_crafted_record_control(pam, dv, pki, cache_dir):
    """Without damage the crafted record is honoured: what the hostile cases below change is
    what makes the module ignore it."""
    cfg, _, _ = crafted(pam, dv, pki, cache_dir)
    r = pam.run(cfg, "alice", "evil-Pa55")
    assert r.code == "PAM_SUCCESS" and "source=cache" in final_line(r)[1], r


def damage_symlink(path, fields, cache_dir):
    target = os.path.join(os.path.dirname(cache_dir), "elsewhere")
    write_record(target, fields)
    os.unlink(path)
    os.symlink(target, path)


def damage_world_writable_dir(path, fields, cache_dir):
    os.chmod(os.path.dirname(path), 0o777)


def damage_other_uid(path, fields, cache_dir):
    assert os.geteuid() == 0, "this case needs root (chown): FAILED, not skipped"
    os.chown(path, 65534, 65534)


def damage_truncated(path, fields, cache_dir):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 8)


def damage_future(path, fields, cache_dir):
    write_record(path, dict(fields, confirmed=str(int(time.time()) + 3600)))


def damage_huge(path, fields, cache_dir):
    with open(path, "ab") as f:
        f.write(b"#" * 100000)


def damage_world_readable(path, fields, cache_dir):
    os.chmod(path, 0o644)


def damage_hard_link(path, fields, cache_dir):
    os.link(path, os.path.join(os.path.dirname(cache_dir), "second-link"))


def damage_base_dir(path, fields, cache_dir):
    os.chmod(cache_dir, 0o777)


@pytest.mark.parametrize("damage,logged", [
    (damage_symlink, "is a symbolic link; ignored"),
    (damage_world_writable_dir, "not writable by group or others; cache off"),
    (damage_other_uid, "owned by uid 65534, not 0; ignored"),
    (damage_truncated, "corrupt record"),
    (damage_future, "in the future; ignored"),
    (damage_huge, "larger than 2048 bytes; ignored"),
    (damage_world_readable, "accessible by group or others"),
    (damage_hard_link, "has 2 links; ignored"),
    (damage_base_dir, "not writable by group or others (unless sticky); cache off"),
], ids=lambda v: v.__name__[7:] if callable(v) else "")
def test_hostile_store_is_ignored(pam, dv, pki, cache_dir, damage, logged):
    cfg, path, fields = crafted(pam, dv, pki, cache_dir)
    damage(path, fields, cache_dir)
    mark = dv.log_size()
    r = pam.run(cfg, "alice", "evil-Pa55")
    assert r.code == "PAM_AUTH_ERR", r           # never a wrong yes: Dovecot was asked
    assert logged in r.log_text(), r
    assert "source=cache" not in r.log_text()
    assert dv.wait_log("alice", mark)
    # and the right password still works, through the server
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS" and "server=dv" in final_line(r)[1], r


def test_base_dir_made_by_root_serves_a_service_of_another_uid(pam, dv, pki, module, workdir):
    """The Apache setup of pam_mailauth.conf(5): root's first login creates the base directory
    (0711), the admin makes the web server's own subdirectory once, and the web server's logins,
    as another uid, use it. Only the search bit of 0711 is open to that uid: a base directory
    opened for reading would turn its cache off for good."""
    assert os.geteuid() == 0, "this case needs root (another uid): FAILED, not skipped"
    nobody = 65534
    top = tempfile.mkdtemp(prefix="cache-uid-", dir=workdir)   # reachable by uid 65534
    os.chmod(top, 0o755)
    base = os.path.join(top, "cache")
    cfg = config(pki, dv_imap(dv), head=cache_section(base, ttl=300))
    r = pam.run(cfg, "alice", "s3cret")
    assert r.code == "PAM_SUCCESS", r
    assert os.stat(base).st_mode & 0o777 == 0o711 and len(records(base)) == 1
    os.mkdir(os.path.join(base, str(nobody)), 0o700)   # install -d -o www-data -m 0700 DIR/33
    os.chown(os.path.join(base, str(nobody)), nobody, nobody)
    runner_dir = tempfile.mkdtemp(prefix="runner-", dir=top)
    os.chmod(runner_dir, 0o755)
    as_nobody = pamrun.PamRunner(module, runner_dir, preload=pam.preload, wrapper=[
        "setpriv", "--reuid=%d" % nobody, "--regid=%d" % nobody, "--clear-groups"] + pam.wrapper)
    path = as_nobody.write_config(cfg)
    r = as_nobody.run(None, "alice", "s3cret", config_path=path)
    assert r.code == "PAM_SUCCESS" and "server=dv" in final_line(r)[1], r
    assert "cache off" not in r.log_text(), r
    mark = dv.log_size()
    r = as_nobody.run(None, "alice", "s3cret", config_path=path)
    assert r.code == "PAM_SUCCESS" and "source=cache" in final_line(r)[1], r
    barrier(dv, pam, mark)
    assert logins(dv, "alice", mark) == 0, dv.log_since(mark)
    assert len(glob.glob(os.path.join(base, str(nobody), "*"))) >= 1
    for path in glob.glob(os.path.join(base, "*", "*")):
        with open(path, "rb") as f:
            assert b"s3cret" not in f.read(), path


def test_modes_whatever_the_umask(pam, dv, pki, module, workdir):
    """Issue 17: su run with umask 0777 used to create the base directory as 0000, and from then
    on every other uid's cache was off. Every directory and file of the store has its exact mode
    whatever the umask of whoever creates it, and another uid (with umask 0777 too) can use its
    own directory afterwards."""
    assert os.geteuid() == 0, "this case needs root (another uid): FAILED, not skipped"
    nobody = 65534
    umask = ["sh", "-c", 'umask 0777 && exec "$@"', "umask"]
    top = tempfile.mkdtemp(prefix="cache-umask-", dir=workdir)   # reachable by uid 65534
    os.chmod(top, 0o755)
    base = os.path.join(top, "cache")
    cfg = config(pki, dv_imap(dv), head=cache_section(base, ttl=300))
    # tests/pam_probe: pam_wrapper itself does not start under umask 0777
    as_root = pamrun.PamRunner(module, pam.workdir, wrapper=umask + pam.wrapper)

    def probe_final(runner, config_text):
        r = runner.probe(config_text, "alice", "s3cret")
        lines = [line for line in r.logs if "result=" in line]
        assert r["authenticate"] == "PAM_SUCCESS" and len(lines) == 1, r
        assert "cache off" not in "\n".join(r.logs), r
        return lines[0]
    assert "server=dv" in probe_final(as_root, cfg)
    mine = os.path.join(base, str(os.geteuid()))
    assert os.stat(base).st_mode & 0o7777 == 0o711
    assert os.stat(mine).st_mode & 0o7777 == 0o700
    names = os.listdir(mine)
    assert names and all(os.stat(os.path.join(mine, n)).st_mode & 0o7777 == 0o600
                         for n in names), [(n, oct(os.stat(os.path.join(mine, n)).st_mode))
                                           for n in names]
    assert "source=cache" in probe_final(as_root, cfg)
    # another uid, umask 0777 as well, in the directory the admin made for it
    os.mkdir(os.path.join(base, str(nobody)), 0o700)
    os.chown(os.path.join(base, str(nobody)), nobody, nobody)
    runner_dir = tempfile.mkdtemp(prefix="runner-", dir=top)
    os.chmod(runner_dir, 0o755)
    as_nobody = pamrun.PamRunner(module, runner_dir, wrapper=[
        "setpriv", "--reuid=%d" % nobody, "--regid=%d" % nobody, "--clear-groups"] + umask +
        pam.wrapper)
    assert "server=dv" in probe_final(as_nobody, cfg)
    assert "source=cache" in probe_final(as_nobody, cfg)
    theirs = os.path.join(base, str(nobody))
    for n in os.listdir(theirs):
        assert os.stat(os.path.join(theirs, n)).st_mode & 0o7777 == 0o600, n


# ---- many threads and processes at once ----
# Only the concurrency driver (real libpam, pam_start_confdir) runs here, no pamtester, so the
# ThreadSanitizer build can run these two tests too (tests/meson.build, suite concurrency).

def driver_service(module, tmp_path, conf, name):
    driver = os.environ.get("MAILAUTH_CONCURRENCY")
    assert driver and os.path.exists(driver), "MAILAUTH_CONCURRENCY must name the driver"
    confdir = tmp_path / "pam.d"
    confdir.mkdir(exist_ok=True)
    (confdir / name).write_text("auth required %s config=%s\n" % (module, conf))
    wrapper = os.environ.get("MAILAUTH_CONCURRENCY_WRAPPER", "").split()

    def start(threads, rounds, *cases):
        return subprocess.Popen(wrapper + [driver, str(confdir), name, str(threads),
                                           str(rounds)] + list(cases),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return start


def finish(proc, passed):
    out = proc.communicate(timeout=600)[0].decode("utf-8", "replace")
    assert proc.returncode == 0, out[-4000:]
    assert "concurrency: %d passed, 0 failed" % passed in out, out[-4000:]


def test_threads_and_processes_with_cache(pam, dv, pki, module, tmp_path, cache_dir):
    head = cache_section(cache_dir, ttl=300, offline=3600, max_failures=3, cost=2)
    conf = pam.write_config(config(pki, dv_imap(dv), head=head, timeout=30),
                            name="threads.conf")
    start = driver_service(module, tmp_path, conf, "mailcache")
    cases = ["alice:s3cret:0", "alice:wrong-Pa55:7", "erin:%s:0" % USERS["erin"],
             "mallory:s3cret:7", "carol@example.org:carol-pw:0"]
    # one process with 32 threads and 8 processes with 4 threads each, all at once
    procs = [start(32, 2, *cases)] + [start(4, 3, *cases) for _ in range(8)]
    for proc, passed in zip(procs, [64] + [12] * 8):
        finish(proc, passed)
    # every record whole and valid, no temp file left
    names = os.listdir(os.path.join(cache_dir, str(os.geteuid())))
    assert not [n for n in names if n.startswith("tmp.")], names
    recs = records(cache_dir)
    assert len(recs) == 3, names   # alice, erin, carol; nothing for refused users
    for path in recs:
        fields = read_record(path)
        assert fields["hash"].startswith("$y$j85$") and failures(path) <= 3


def test_offline_burst_of_wrong_passwords_is_capped(pam, own_dv, pki, module, tmp_path,
                                                   cache_dir):
    """16 threads guessing at once while the server is down: the counter stops at max_failures
    and the entry is locked (cache.c compares offline under the record's lock)."""
    cfg = config(pki, dv_imap(own_dv), head=cache_section(cache_dir, offline=3600,
                                                          max_failures=3))
    start = driver_service(module, tmp_path, pam.write_config(cfg, name="burst.conf"), "burst")
    finish(start(1, 1, "alice:s3cret:0"), 1)
    assert failures(record_of(cache_dir, "alice")) == 0
    own_dv.stop()
    finish(start(16, 1, "alice:wrong-Pa55:9"), 16)   # 9: PAM_AUTHINFO_UNAVAIL
    assert failures(record_of(cache_dir, "alice")) == 3
    # locked: the right password is no longer accepted offline
    finish(start(1, 1, "alice:s3cret:9"), 1)
