"""The Debian package: build, lintian, install, pam-auth-update, log in, remove, purge.

Builds libpam-mailauth from a copy of the source tree with dpkg-buildpackage -us -uc -b, checks
it with lintian, installs it with dpkg -i, and logs in through the installed module against the
suite's Dovecot: once with a service file of its own (config= a test path), once through
/etc/pam.d/common-auth as `pam-auth-update --enable mailauth` wrote it. Logins run in a sandbox
(sandbox.py) holding the service file and /etc/security/pam_mailauth.conf, so nothing but the
package itself and pam-auth-update touch the host. Removing and purging the package must leave
/etc/pam.d, /var/lib/pam and libpam-runtime's debconf records exactly as they were; the fixture
puts them back (and reports it) if a test fails halfway.
"""
import os
import pathlib
import re
import shutil
import subprocess
import time

import pytest

from common import (LOG_TEXTS, SOURCE_ROOT, USERS, logins, man_examples, need, run, snapshot,
                    snapshot_diff, write_root_file)
from helpers import config, hosts, server
from pamrun import RESULTS
from sandbox import Sandbox

PACKAGE = "libpam-mailauth"
NSS_PACKAGE = "libnss-mailauth"
ARCH_TRIPLET = "x86_64-linux-gnu"
MODULE = "/lib/%s/security/pam_mailauth.so" % ARCH_TRIPLET
PROFILE = "/usr/share/pam-configs/mailauth"
STATE_DIRS = ("/etc/pam.d", "/var/lib/pam")
DEBCONF_DB = "/var/cache/debconf/config.dat"
CACHE_DIR = "/var/cache/pam_mailauth"   # the cache section's default dir
# Exactly what the package ships (debian/libpam-mailauth.install).
SHIPPED = {
    MODULE,
    PROFILE,
    "/usr/share/doc/libpam-mailauth/changelog.gz",
    "/usr/share/doc/libpam-mailauth/copyright",
    "/usr/share/doc/libpam-mailauth/pam_mailauth.conf.example",
    "/usr/share/man/man5/pam_mailauth.conf.5.gz",
    "/usr/share/man/man8/pam_mailauth.8.gz",
    "/usr/sbin/mailauth-probe",
    "/usr/share/man/man8/mailauth-probe.8.gz",
    "/usr/sbin/mailauth-cache",
    "/usr/share/man/man8/mailauth-cache.8.gz",
    "/etc/fail2ban/filter.d/pam-mailauth.conf",
}
# Files under /etc that the administrator may edit: dpkg must keep their changes.
CONFFILES = ["/etc/fail2ban/filter.d/pam-mailauth.conf"]
NSS_MODULE = "/usr/lib/%s/libnss_mailauth.so.2" % ARCH_TRIPLET
NSS_SHIPPED = {
    NSS_MODULE,
    "/usr/sbin/mailauth-accounts",
    "/usr/share/man/man8/mailauth-accounts.8.gz",
    "/usr/share/doc/libnss-mailauth/changelog.gz",
    "/usr/share/doc/libnss-mailauth/copyright",
}
NSSWITCH = "/etc/nsswitch.conf"
REGISTRY_DIR = "/var/lib/pam_mailauth"
NONINTERACTIVE = dict(os.environ, DEBIAN_FRONTEND="noninteractive")


def known_to_dpkg(package=PACKAGE):
    r = run(["dpkg-query", "-W", "-f", "${Status}", package])
    return r.returncode == 0 and "not-installed" not in r.stdout


def debconf_pam():
    """libpam-runtime's records in debconf's database: the enabled profiles pam-auth-update
    keeps, and the profile names it offers."""
    with open(DEBCONF_DB) as f:
        return [block for block in f.read().split("\n\n")
                if block.startswith("Name: libpam-runtime/")]


def debconf_set_profiles(blocks):
    for block in blocks:
        value = re.search(r"^Name: libpam-runtime/profiles\n(?:.*\n)*?Value: (.*)$", block, re.M)
        if value:
            run(["debconf-communicate", "libpam-runtime"],
                input="set libpam-runtime/profiles %s\n" % value.group(1), stdin=None)


def host_pam_state():
    with open(NSSWITCH, "rb") as f:
        nsswitch = f.read()
    return {"files": snapshot(*STATE_DIRS), "debconf": debconf_pam(), "nsswitch": nsswitch}


def auth_lines(path):
    """The auth lines of a PAM file, comments dropped, whitespace normalised."""
    with open(path) as f:
        return [" ".join(line.split()) for line in f
                if line.strip() and not line.lstrip().startswith("#")]


@pytest.fixture(scope="module")
def package(workdir):
    """Build from a copy of the git-tracked tree: nothing lands in the checkout or beside it."""
    need("dpkg-buildpackage", "dh", "lintian", "git")
    top = pathlib.Path(workdir) / "package"
    src = top / "src"
    files = run(["git", "-C", SOURCE_ROOT, "ls-files", "-z", "--cached", "--others",
                 "--exclude-standard"], stderr=subprocess.PIPE)
    assert files.returncode == 0, "the package test builds from a git checkout: " + files.stdout
    for name in filter(None, files.stdout.split("\0")):
        if os.path.isfile(os.path.join(SOURCE_ROOT, name)):
            os.makedirs(os.path.dirname(src / name), exist_ok=True)
            shutil.copy2(os.path.join(SOURCE_ROOT, name), src / name)
    start = time.monotonic()
    build = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, timeout=600,
                env=dict(os.environ, DEB_BUILD_OPTIONS="parallel=2"))
    elapsed = time.monotonic() - start
    assert build.returncode == 0, "dpkg-buildpackage failed:\n" + build.stdout[-6000:]
    debs = sorted(top.glob(PACKAGE + "_*.deb"))
    nss_debs = sorted(top.glob(NSS_PACKAGE + "_*.deb"))
    changes = sorted(top.glob("*.changes"))
    assert len(debs) == 1 and len(nss_debs) == 1 and len(changes) == 1, sorted(os.listdir(top))
    print("package built in %.1fs" % elapsed)
    return {"deb": str(debs[0]), "nss_deb": str(nss_debs[0]), "changes": str(changes[0]),
            "log": build.stdout}


def test_build_runs_the_unit_suite_only(package):
    log = package["log"]
    assert re.search(r"^Ok:\s+[1-9]\d*\s*$", log, re.M), log[-3000:]
    assert re.search(r"^Fail:\s+0\s*$", log, re.M), log[-3000:]
    ran = {name: suite for suite, name in re.findall(r"^ *\d+/\d+ pam_mailauth:(\S+) / (\S+) ",
                                                     log, re.M)}
    assert "test_manpage" in ran and "install_check" in ran, log[-3000:]
    assert set(ran.values()) == {"unit"}, ran   # not integration or system: no Dovecot, no root
    assert "format_check" not in ran            # needs a git checkout and clang-format


def test_lintian_clean(package):
    r = run(["lintian", "--display-level", ">=warning", package["changes"]], timeout=300,
            stderr=subprocess.PIPE)
    tags = [line for line in r.stdout.splitlines() if re.match(r"[EW]: ", line)]
    assert tags == [] and r.returncode == 0, r.stdout + r.stderr


def test_package_contents(package):
    listing = run(["dpkg-deb", "-c", package["deb"]]).stdout
    files = {line.split()[-1].lstrip(".") for line in listing.splitlines()
             if not line.startswith("d")}
    assert files == SHIPPED, listing
    conffiles = run(["dpkg-deb", "-I", package["deb"], "conffiles"]).stdout.split()
    assert conffiles == CONFFILES, conffiles
    fields = run(["dpkg-deb", "-f", package["deb"], "Version", "Architecture", "Depends"]).stdout
    with open(os.path.join(SOURCE_ROOT, "meson.build")) as f:
        version = re.search(r"version : '([^']+)'", f.read()).group(1)
    assert "Version: %s\n" % version in fields, fields   # debian/changelog follows meson.build
    assert "libpam-runtime" in fields and "libssl3" in fields and "libconfuse" in fields
    # the module exports only the PAM entry points, as the meson build does
    scratch = os.path.join(os.path.dirname(package["deb"]), "contents")
    run(["dpkg-deb", "-x", package["deb"], scratch], check=True)
    nm = run(["nm", "-D", "--defined-only", scratch + MODULE]).stdout
    assert sorted(line.split()[-1] for line in nm.splitlines()) == [
        "pam_sm_acct_mgmt", "pam_sm_authenticate", "pam_sm_setcred"], nm


def test_nss_package_contents(package):
    listing = run(["dpkg-deb", "-c", package["nss_deb"]]).stdout
    files = {line.split()[-1].lstrip(".") for line in listing.splitlines()
             if not line.startswith("d")}
    assert files == NSS_SHIPPED, listing
    scratch = os.path.join(os.path.dirname(package["deb"]), "nss-contents")
    run(["dpkg-deb", "-x", package["nss_deb"], scratch], check=True)
    needed = run(["readelf", "-d", scratch + NSS_MODULE]).stdout
    assert re.findall(r"NEEDED.*\[(.*)\]", needed) == ["libc.so.6"], needed   # libc only
    nm = run(["nm", "-D", "--defined-only", scratch + NSS_MODULE]).stdout
    assert all(line.split()[-1].startswith("_nss_mailauth_") for line in nm.splitlines()), nm


def test_profile_is_off_and_after_pam_unix():
    with open(os.path.join(SOURCE_ROOT, "debian", "pam-configs", "mailauth")) as f:
        profile = f.read()
    fields = dict(re.findall(r"^([\w-]+):[ \t]*(.*)$", profile, re.M))
    assert fields["Default"] == "no"
    assert int(fields["Priority"]) < 256   # pam_unix's profile has 256: we come after it
    assert re.search(r"^Auth:\n\t.*pam_mailauth\.so use_first_pass$", profile, re.M)


@pytest.fixture(scope="module")
def install(package):
    """dpkg -i; afterwards purge, and restore /etc/pam.d and /var/lib/pam if anything is off."""
    need("dpkg", "pam-auth-update", "debconf-communicate", "pamtester", "unshare")
    if (known_to_dpkg() or known_to_dpkg(NSS_PACKAGE) or os.path.exists(PROFILE)
            or os.path.exists(MODULE) or os.path.exists(NSS_MODULE)
            or os.path.exists(REGISTRY_DIR) or os.path.exists(CACHE_DIR)):
        pytest.fail("%s (or its files, or %s) is already on this machine; the test installs and "
                    "purges it, and will not touch an existing installation"
                    % (PACKAGE, CACHE_DIR))
    saved = os.path.join(os.path.dirname(package["deb"]), "saved-state")
    for d in STATE_DIRS:
        shutil.copytree(d, saved + d, symlinks=True)
    before = host_pam_state()
    r = run(["dpkg", "-i", package["deb"], package["nss_deb"]], env=NONINTERACTIVE)
    try:
        assert r.returncode == 0, "dpkg -i: " + r.stdout
        yield before
    finally:
        for p in (NSS_PACKAGE, PACKAGE):
            if known_to_dpkg(p):
                run(["dpkg", "--purge", p], env=NONINTERACTIVE)
        after = host_pam_state()
        if after["nsswitch"] != before["nsswitch"]:
            with open(NSSWITCH, "wb") as f:
                f.write(before["nsswitch"])
        shutil.rmtree(REGISTRY_DIR, ignore_errors=True)
        changed = snapshot_diff(before["files"], after["files"])
        for path in changed:   # last resort: put back what removal did not
            if os.path.lexists(path) and not os.path.isdir(path):
                os.unlink(path)
            if os.path.lexists(saved + path):
                shutil.copy2(saved + path, path, follow_symlinks=False)
        if before["debconf"] != after["debconf"]:
            # the enabled list back, then pam-auth-update recomputes the offered names from
            # /usr/share/pam-configs and rewrites common-* from the restored list
            debconf_set_profiles(before["debconf"])
            run(["pam-auth-update", "--package"], env=NONINTERACTIVE)
            changed.append("debconf libpam-runtime/* (%s)" % (
                "restored" if debconf_pam() == before["debconf"] else "NOT restored"))
            changed += snapshot_diff(before["files"], snapshot(*STATE_DIRS))
        if after["nsswitch"] != before["nsswitch"]:
            changed.append(NSSWITCH)
        if changed:
            pytest.fail("restored by hand after the package was purged: %s" % ", ".join(changed))


def pamtester(sandbox, service, user, password):
    r = sandbox.run(["pamtester", service, user, "authenticate"], stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, input=(password + "\n").encode("utf-8"), timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    LOG_TEXTS.append(out)
    for needle, name in RESULTS.items():
        if needle in out:
            return (name if (r.returncode == 0) == (name == "PAM_SUCCESS") else "UNKNOWN"), out
    return "UNKNOWN", out


def test_install_changes_no_login(install):
    assert os.path.isfile(MODULE) and os.path.isfile(PROFILE)
    now = snapshot("/etc/pam.d")
    assert snapshot_diff({p: h for p, h in install["files"].items()
                          if p.startswith("/etc/pam.d")}, now) == []
    with open("/var/lib/pam/seen") as f:
        assert "mailauth" in f.read().split()   # registered, and left off
    with open("/etc/pam.d/common-auth") as f:
        assert "pam_mailauth" not in f.read()


def test_login_through_the_installed_module(install, dv, pki, scratch):
    """A service file naming the module as admins do (no path: the multiarch PAM directory)."""
    conf = write_root_file(os.path.join(scratch, "mail.conf"), config(
        pki, server("dv", "imap", hosts("127.0.0.1"), dv.ports["imap"])))
    box = Sandbox(os.path.join(scratch, "view"))
    box.pam_service("mailauth-pkg", "auth required pam_mailauth.so config=%s\n" % conf)
    offset = dv.log_size()
    assert pamtester(box, "mailauth-pkg", "alice", USERS["alice"])[0] == "PAM_SUCCESS"
    assert logins(dv, "alice", offset) == 1
    assert pamtester(box, "mailauth-pkg", "alice", "wrong")[0] == "PAM_AUTH_ERR"


def test_enabled_profile_stack_and_login(install, dv, pki, scratch):
    r = run(["pam-auth-update", "--enable", "mailauth"], env=NONINTERACTIVE)
    assert r.returncode == 0, r.stdout
    stack = [line for line in auth_lines("/etc/pam.d/common-auth") if line.startswith("auth")]
    documented = [" ".join(line.split()) for line in
                  man_examples("pam-auth-update")[1].splitlines()]
    at = stack.index(documented[0]) if documented[0] in stack else -1
    assert stack[at:at + len(documented)] == documented, stack   # as man/pam_mailauth.8 shows

    # Log in through common-auth itself, the module reading its default config path.
    box = Sandbox(os.path.join(scratch, "view"))
    box.security_file("pam_mailauth.conf", config(
        pki, server("dv", "imap", hosts("127.0.0.1"), dv.ports["imap"])))
    box.pam_service("mailauth-stack", "@include common-auth\n")
    offset = dv.log_size()
    result, out = pamtester(box, "mailauth-stack", "alice", USERS["alice"])
    assert result == "PAM_SUCCESS", out
    assert out.count("Password:") == 1, out   # pam_unix asked; the module used that password
    assert logins(dv, "alice", offset) == 1
    result, out = pamtester(box, "mailauth-stack", "alice", "wrong")
    assert result == "PAM_AUTH_ERR", out


def test_cache_in_its_default_directory(install, dv, pki, scratch):
    """A login with a cache section writes its record under /var/cache/pam_mailauth (purged
    below)."""
    conf = write_root_file(os.path.join(scratch, "cache.conf"), config(
        pki, server("dv", "imap", hosts("127.0.0.1"), dv.ports["imap"]),
        head="cache {\n  ttl = 300\n  hash_cost = 1\n}\n"))
    box = Sandbox(os.path.join(scratch, "view"))
    box.pam_service("mailauth-cache", "auth required pam_mailauth.so config=%s\n" % conf)
    for _ in range(2):
        assert pamtester(box, "mailauth-cache", "alice", USERS["alice"])[0] == "PAM_SUCCESS"
    records = os.listdir(os.path.join(CACHE_DIR, "0"))
    assert [n for n in records if re.fullmatch(r"[0-9a-f]{64}", n)], records


def pamtester_ops(sandbox, service, user, password, ops):
    r = sandbox.run(["pamtester", service, user] + ops, stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT, input=(password + "\n").encode("utf-8"), timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    LOG_TEXTS.append(out)
    return r.returncode, out


def test_new_mail_user_through_common_stacks(install, dv, pki, scratch):
    """mailauth-accounts(8)'s steps on the host: the profile (common-auth and common-account),
    nsswitch enable; a mail user no source knows logs in through @include common-*: the first
    login registers and is refused, the next passes, and the host resolves the name."""
    user = "mu0"
    assert run(["getent", "passwd", user]).returncode == 2
    assert run(["pam-auth-update", "--enable", "mailauth"], env=NONINTERACTIVE).returncode == 0
    assert "pam_mailauth.so" in open("/etc/pam.d/common-account").read()
    r = run(["/usr/sbin/mailauth-accounts", "nsswitch", "enable"])
    assert r.returncode == 0, r.stdout
    assert run(["/usr/sbin/mailauth-accounts", "nsswitch", "status"]).stdout == "enabled\n"
    box = Sandbox(os.path.join(scratch, "view"))
    box.security_file("pam_mailauth.conf", config(
        pki, server("dv", "imap", hosts("127.0.0.1"), dv.ports["imap"]), head="accounts { }\n"))
    box.pam_service("mailauth-acct", "@include common-auth\n@include common-account\n")
    ops = ["authenticate", "acct_mgmt"]
    rc, out = pamtester_ops(box, "mailauth-acct", user, USERS[user], ops)
    assert rc != 0 and "successfully authenticated" in out, out
    assert "has been created; please connect again" in out, out
    got = run(["getent", "passwd", user]).stdout.split(":")
    assert got[0] == user and 70000 <= int(got[2]) <= 99999, got
    rc, out = pamtester_ops(box, "mailauth-acct", user, USERS[user], ops)
    assert rc == 0 and "account management done" in out, out
    rc, out = pamtester_ops(box, "mailauth-acct", user, "wrong", ops)
    assert rc != 0 and "successfully authenticated" not in out, out
    r = run(["/usr/sbin/mailauth-accounts", "nsswitch", "disable"])
    assert r.returncode == 0, r.stdout
    with open(NSSWITCH, "rb") as f:
        assert f.read() == install["nsswitch"]   # byte for byte
    assert run(["getent", "passwd", user]).returncode == 2
    assert run(["pam-auth-update", "--disable", "mailauth"], env=NONINTERACTIVE).returncode == 0
    # enabled again: removing the package must take the word out of nsswitch.conf itself
    assert run(["/usr/sbin/mailauth-accounts", "nsswitch", "enable"]).returncode == 0


def test_remove_and_purge_restore_everything(install):
    assert os.path.isdir(REGISTRY_DIR)   # the registry the last test wrote
    r = run(["dpkg", "--remove", NSS_PACKAGE], env=NONINTERACTIVE)
    assert r.returncode == 0, r.stdout
    assert not os.path.exists(NSS_MODULE)
    with open(NSSWITCH, "rb") as f:
        assert f.read() == install["nsswitch"]   # prerm disabled it: never a missing module
    assert os.path.isdir(REGISTRY_DIR)   # removal keeps the registry; purge does not
    r = run(["dpkg", "--purge", NSS_PACKAGE], env=NONINTERACTIVE)
    assert r.returncode == 0, r.stdout
    assert not os.path.exists(REGISTRY_DIR)
    r = run(["dpkg", "--remove", PACKAGE], env=NONINTERACTIVE)
    assert r.returncode == 0, r.stdout
    assert not os.path.exists(MODULE)
    assert os.path.isdir(CACHE_DIR)   # data is kept on remove
    with open("/etc/pam.d/common-auth") as f:
        assert "pam_mailauth" not in f.read()   # prerm took the profile out first
    r = run(["dpkg", "--purge", PACKAGE], env=NONINTERACTIVE)
    assert r.returncode == 0, r.stdout
    assert not known_to_dpkg()
    # issue 17: the yescrypt records go with the package
    assert not os.path.exists(CACHE_DIR), os.listdir(CACHE_DIR)
    after = host_pam_state()
    assert snapshot_diff(install["files"], after["files"]) == []   # byte for byte
    assert after["debconf"] == install["debconf"]
    assert after["nsswitch"] == install["nsswitch"]
