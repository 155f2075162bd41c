"""A private view of a few system files, for real daemons and real libpam without touching them.

Commands run in a mount namespace of their own (unshare --mount --propagation private) in which
/etc/pam.d, /etc/security, /etc/passwd, /etc/shadow and /etc/group can be bind-mounted copies
with the test's additions: a PAM service file, a module config at its default path, a local
account with a locked password. The host's files are never written, and the view disappears
with the last process in it, also when a test is killed halfway.
"""
import os
import shutil
import signal
import subprocess
import time

import hostview

# Bind each (source, target) pair, optionally put a private /run in place (sshd wants its
# privilege separation directory /run/sshd, which exists only while the system sshd runs), then
# become the command.
_SCRIPT = r"""
set -e
while [ "$1" != "--" ]; do
    if [ "$1" = "--overlay" ]; then
        # a writable view of directory $2 whose changes go to $3 (overlayfs work dir $4)
        mount -t overlay mailauth-overlay -o "lowerdir=$2,upperdir=$3,workdir=$4" "$2"
        shift 4
        continue
    fi
    if [ "$1" = "--mkdir" ]; then
        mkdir -p "$2"
        shift 2
        continue
    fi
    if [ "$1" = "--private-run" ]; then
        mount -t tmpfs -o mode=0755 mailauth-run /run
        mkdir -m 0755 /run/sshd
        shift
        continue
    fi
    mount --bind "$1" "$2"
    shift 2
done
shift
exec "$@"
"""


class Sandbox:
    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        os.chmod(directory, 0o755)
        self.binds = []
        self.private_run = False
        self.prepare = []   # --overlay/--mkdir steps, before the binds

    def _bind_copy_of_dir(self, target, name):
        copy = os.path.join(self.dir, name)
        if not os.path.isdir(copy):
            shutil.copytree(target, copy, symlinks=True)
            os.chmod(copy, 0o755)
            self.binds.append((copy, target))
        return copy

    def _bind_copy_of_file(self, target):
        copy = os.path.join(self.dir, os.path.basename(target))
        if not os.path.exists(copy):
            shutil.copy2(target, copy)
            self.binds.append((copy, target))
        return copy

    def pam_service(self, name, text):
        """/etc/pam.d/<name> inside the sandbox (the host's other service files stay visible)."""
        path = os.path.join(self._bind_copy_of_dir("/etc/pam.d", "pam.d"), name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        return path

    def security_file(self, name, text):
        """/etc/security/<name> inside the sandbox, owned by root, mode 0644."""
        path = os.path.join(self._bind_copy_of_dir("/etc/security", "security"), name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        return path

    def account(self, name, uid, home):
        """A local account with a locked password ('!' in shadow): no local password works. It
        replaces a host account of the same name in the view (hostview.replace_entry)."""
        for path, line in ((self._bind_copy_of_file("/etc/passwd"),
                            "%s:x:%d:%d:pam_mailauth test:%s:/bin/sh\n" % (name, uid, uid, home)),
                           (self._bind_copy_of_file("/etc/shadow"),
                            "%s:!:19000:0:99999:7:::\n" % name),
                           (self._bind_copy_of_file("/etc/group"), "%s:x:%d:\n" % (name, uid))):
            hostview.replace_entry(path, name, line)

    def no_account(self, name):
        """No account or group `name` in the view, whatever the host has (a mail-only user)."""
        for target in ("/etc/passwd", "/etc/shadow", "/etc/group"):
            hostview.replace_entry(self._bind_copy_of_file(target), name)

    def writable_dir(self, target, name, mkdir=()):
        """target (an existing directory) writable inside the sandbox through an overlay whose
        changes stay under this sandbox's directory; mkdir: paths to create in it."""
        upper = os.path.join(self.dir, name + ".upper")
        work = os.path.join(self.dir, name + ".work")
        os.makedirs(upper, exist_ok=True)
        os.makedirs(work, exist_ok=True)
        self.prepare += ["--overlay", target, upper, work]
        for path in mkdir:
            self.prepare += ["--mkdir", path]

    def bind(self, source, target):
        self.binds.append((source, target))

    def with_private_run(self):
        self.private_run = True

    def argv(self, command):
        args = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _SCRIPT,
                "sandbox"]
        if self.private_run:
            args.append("--private-run")
        args += self.prepare
        for source, target in self.binds:
            args += [source, target]
        return args + ["--"] + list(command)

    def run(self, command, **kwargs):
        return subprocess.run(self.argv(command), **kwargs)

    def popen(self, command, **kwargs):
        return subprocess.Popen(self.argv(command), **kwargs)


def _pids_in_namespace(ns):
    pids = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.readlink("/proc/%s/ns/mnt" % pid) == ns:
                    pids.append(int(pid))
            except OSError:
                pass
    return pids


def stop(proc, timeout=10.0):
    """Stop a daemon started with Sandbox.popen and every process left in its sandbox (sshd's
    per-connection children, Apache's workers): SIGTERM, then SIGKILL after timeout seconds."""
    if proc.poll() is not None:
        return
    try:
        ns = os.readlink("/proc/%d/ns/mnt" % proc.pid)
    except OSError:
        ns = None
    if ns == os.readlink("/proc/self/ns/mnt"):
        ns = None   # not yet in its own namespace: only the process itself to stop
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if ns is None:
        return
    deadline = time.monotonic() + timeout
    sig = signal.SIGTERM
    while True:
        left = _pids_in_namespace(ns)
        if not left:
            return
        if time.monotonic() > deadline:
            sig = signal.SIGKILL
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def free_uid(start=61000):
    """A numeric id no host account or group uses, for an account that exists only in a view."""
    used = set()
    for path in ("/etc/passwd", "/etc/group"):
        with open(path) as f:
            for line in f:
                fields = line.split(":")
                if len(fields) > 2 and fields[2].isdigit():
                    used.add(int(fields[2]))
    uid = start
    while uid in used:
        uid += 1
    return uid
