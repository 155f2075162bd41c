"""A private mount namespace for mail servers that are unpacked, not installed (Cyrus, Courier).

scripts/fetch_servers.sh unpacks their Debian packages into a tree (default
<repo>/build-servers/root). Their binaries expect compiled-in paths: /usr/lib/cyrus,
/usr/lib/courier-authlib, /etc/courier, /run/courier, /var/lib/courier... Inside the namespace
that this module holds open:
  - /usr is an overlay with the unpacked tree's /usr over the system's (read-only);
  - /etc, /run and /var are overlays whose upper (writable) layers are temp dirs, so a server may
    create /etc/courier or /run/courier/authdaemon and every write lands in the temp dir.
Nothing outside the namespace sees any of it; when the last process in it exits, the kernel
drops the mounts. The servers' processes are ordinary processes in the same PID namespace, so
the tests signal them directly (an outage is a kill).

Needs root (unshare -m, mount). Fails loudly, never skips, when something is missing.
"""
import os
import signal
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))

OVERLAID = ("etc", "run", "var")


def servers_root():
    """The unpacked package tree; AssertionError with the fix when it is not there."""
    base = os.environ.get("MAILAUTH_SERVERS_DIR", os.path.join(REPO, "build-servers"))
    root = os.path.join(base, "root")
    if not os.path.exists(os.path.join(root, ".unpacked")):
        raise AssertionError("Cyrus/Courier are not unpacked in %s: run scripts/fetch_servers.sh "
                             "(scripts/test.sh does)" % root)
    if os.geteuid() != 0:
        raise AssertionError("the Cyrus/Courier interop tests need root (unshare -m, mount)")
    return root


def kill_group(proc, timeout=5.0):
    """SIGTERM the process group led by proc (it was started with start_new_session), then
    SIGKILL what is left; reap proc."""
    if proc is None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; its children may not be: make sure of the group.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        break
    if proc.poll() is None:
        proc.wait()


class MountNamespace:
    """start() opens the namespace (a holder process); popen()/run() start programs inside it;
    stop() ends everything started in it and removes nothing itself (the caller owns base)."""

    def __init__(self, base):
        self.base = base
        self.root = servers_root()
        self.holder = None
        self.procs = []

    def upper(self, path):
        """Where the file `path` (absolute, under /etc, /run or /var) lives outside the
        namespace: write configs there before starting, read logs there afterwards."""
        top, _, rest = path.lstrip("/").partition("/")
        assert top in OVERLAID, path
        return os.path.join(self.base, top + "-up", rest)

    def start(self):
        mounts = ["mount -t overlay mailauth-usr -o lowerdir=%s/usr:/usr /usr" % self.root]
        for top in OVERLAID:
            up, work = (os.path.join(self.base, top + suffix) for suffix in ("-up", "-wk"))
            os.makedirs(up, exist_ok=True)
            os.makedirs(work, exist_ok=True)
            mounts.append("mount -t overlay mailauth-%s -o lowerdir=/%s,upperdir=%s,workdir=%s /%s"
                          % (top, top, up, work, top))
        script = "set -e; %s; echo ready; exec sleep 86400" % "; ".join(mounts)
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh",
                                        "-c", script], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, start_new_session=True)
        line = self.holder.stdout.readline()
        if line.strip() != b"ready":
            err = self.holder.stderr.read().decode(errors="replace") if self.holder.poll() else ""
            self.stop()
            raise AssertionError("could not set up the mount namespace: %r %s" % (line, err))
        return self

    def _argv(self, argv):
        return ["nsenter", "--target", str(self.holder.pid), "--mount", "--"] + list(argv)

    def popen(self, argv, env=None, log=None):
        """Start a long-running program in the namespace, in a session of its own (so stop()
        ends its children too), with a clean environment plus env."""
        out = open(log, "ab") if log else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(self._argv(argv), env=self.env(env), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            if log:
                out.close()
        self.procs.append(proc)
        return proc

    def run(self, argv, env=None, input=None, timeout=30):
        """Run a short program in the namespace; AssertionError with its output if it fails."""
        proc = subprocess.run(self._argv(argv), env=self.env(env), input=input,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError("%s failed (%d): %s" % (" ".join(argv), proc.returncode,
                                                         proc.stdout.decode(errors="replace")))
        return proc.stdout.decode(errors="replace")

    @staticmethod
    def env(extra):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        env.update(extra or {})
        return env

    def stop_proc(self, proc):
        kill_group(proc)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop(self):
        for proc in reversed(self.procs):
            kill_group(proc)
        self.procs = []
        kill_group(self.holder)
        self.holder = None


def wait_for(predicate, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def tail_logs(directory, names, limit=3000):
    """The last limit characters of each of a server's log files that exists, for a failure
    message."""
    out = []
    for name in names:
        try:
            with open(os.path.join(directory, name), errors="replace") as f:
                out.append(f.read()[-limit:])
        except OSError:
            pass
    return "\n".join(out)
