import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import certs  # noqa: E402
import dovecot  # noqa: E402
import hostview  # noqa: E402
import pamrun  # noqa: E402

USERS = {
    "alice": "s3cret",
    # every byte IMAP quoting cares about, a space, and UTF-8
    "bob": 'p"a\\s{s}%*( ) gr\u00fc\u00df \u20ac',
    # ASCII only: travels as an IMAP quoted string with escapes
    "erin": 'q"u\\o{t}e%*( )d',
    # issue 17: '"', '\\', '{', '}' and a trailing space (a quoted string, escaped)
    "tess": 'Tr0ub4dor"&3\\{horse} ',
    "carol@example.org": "carol-pw",
    "dave@other.example": "dave-pw",
    # longer than any register: a search of memory for it cannot match a spilled register
    "frank": "frank-Wipe-Me-after-use-2024",
}


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="mailauth-it-")
    os.chmod(d, 0o755)
    yield d
    if os.environ.get("MAILAUTH_KEEP_TMP") is None:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def pki(workdir):
    return certs.make_pki(os.path.join(workdir, "pki"))


@pytest.fixture(scope="session")
def dv(workdir, pki):
    d = dovecot.Dovecot(os.path.join(workdir, "dovecot"), USERS, pki["server_cert"],
                        pki["server_key"]).start()
    yield d
    d.stop()


@pytest.fixture(scope="session")
def dv_noapop(workdir, pki):
    """A second Dovecot whose POP3 greeting carries no APOP timestamp."""
    d = dovecot.Dovecot(os.path.join(workdir, "dovecot-noapop"), USERS, pki["server_cert"],
                        pki["server_key"], apop=False).start()
    yield d
    d.stop()


@pytest.fixture(scope="session", autouse=True)
def shared_programs(workdir):
    """The build tree's programs that some cases run as another uid, copied where that uid can
    execute them: the checkout's parents may be mode 0700 (hostview.share_programs)."""
    hostview.share_programs(os.path.join(workdir, "bin"))


@pytest.fixture(scope="session")
def module(workdir):
    """The module under test, copied where every uid can load it: the checkout's parents may be
    mode 0700, and some cases drop to another uid (hostview.shared_copy)."""
    path = os.environ.get("MAILAUTH_MODULE")
    if not path or not os.path.exists(path):
        pytest.fail("MAILAUTH_MODULE must name the built pam_mailauth.so (got %r)" % path)
    return hostview.shared_copy(os.path.abspath(path), os.path.join(workdir, "module"))


@pytest.fixture
def pam(module, workdir, tmp_path):
    os.chmod(tmp_path, 0o755)
    hostview.searchable_up_to(str(tmp_path), tempfile.gettempdir())
    return pamrun.PamRunner(module, str(tmp_path),
                            preload=os.environ.get("MAILAUTH_PRELOAD"),
                            wrapper=os.environ.get("MAILAUTH_WRAPPER", "").split() or None)


def pytest_collection_modifyitems(config, items):
    """MAILAUTH_SAMPLE=i/n keeps, of each test file, the cases whose position in the file is i
    modulo n, and deselects the others (they are counted as deselected, not passed). The
    valgrind stage uses it: every case runs under ASan+UBSan, and under memcheck a fixed quarter of
    each file's cases, so that every file and most parameters are memchecked within CI's time."""
    sample = os.environ.get("MAILAUTH_SAMPLE")
    if not sample:
        return
    want, every = (int(x) for x in sample.split("/"))
    keep, drop, position = [], [], {}
    for item in items:
        at = position.get(item.fspath, 0)
        position[item.fspath] = at + 1
        (keep if at % every == want else drop).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when == "call":
        item.call_failed = outcome.get_result().failed


@pytest.fixture(autouse=True)
def no_password_in_this_tests_logs(request):
    """Name the test whose module logs carried a password (the session scan below is the
    backstop for passwords registered after the line was logged). A test that already failed
    is not reported twice."""
    start = len(pamrun.ALL_LOG_LINES)
    yield
    leaked = pamrun.scan_for_secrets(pamrun.ALL_LOG_LINES[start:])
    if getattr(request.node, "call_failed", False):
        return
    assert not leaked, "password in the module's log: " + "; ".join(
        "%s of %r in %r" % (form, pw[:40], line[:300]) for line, pw, form in leaked)


def pytest_sessionfinish(session, exitstatus):
    """No form of any password a test used may appear in anything the module logged, debug
    traces included: the registry in pamrun holds every password handed to the module."""
    for user, password in USERS.items():
        pamrun.register_secret(password, user)
    leaked = pamrun.scan_for_secrets(pamrun.ALL_LOG_LINES)
    secrets = pamrun.SECRETS
    kinds = "%d non-ASCII, %d longer than 120 bytes, APOP vector %s" % (
        sum(1 for p in secrets if not p.isascii()),
        sum(1 for p in secrets if len(p.encode("utf-8", "surrogateescape")) > 120),
        "included" if "tanstaaf" in secrets else "absent")
    if leaked:
        sys.stderr.write("PASSWORD FOUND IN LOGS:\n" + "\n".join(
            "  %s of %r in: %s" % (form, pw[:40], line[:300]) for line, pw, form in leaked) + "\n")
        session.exitstatus = 1
    else:
        sys.stderr.write("password check: %d module log lines scanned for %d passwords (%s), "
                         "none found\n" % (len(pamrun.ALL_LOG_LINES), len(secrets), kinds))
