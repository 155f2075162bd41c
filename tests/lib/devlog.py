"""A syslog socket for one process tree only, without touching the machine.

    with DevLog() as log:
        subprocess.run(log.wrap(["prog", ...]))   # prog sees /dev/log: our listener
        log.lines                                 # what it logged, "<pri>..." prefix removed

wrap() runs the command in a private mount namespace (unshare -m; as non-root a user namespace
grants the right to mount) where /dev is a bind of a prepared directory: the harmless device
nodes bound from the real /dev, the usual /proc/self/fd links, and a listening datagram socket
named "log". Mounts made in the namespace vanish with it; the machine's /dev and syslog never see
anything. Datagrams are what glibc's syslog() tries first.
"""
import os
import re
import shlex
import shutil
import socket
import tempfile
import threading

NODES = ("null", "zero", "full", "random", "urandom", "tty")
LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
         "stderr": "/proc/self/fd/2"}
PRI_RE = re.compile(r"^<(\d+)>")


class DevLog:
    def __init__(self):
        # Short: a socket path has at most 107 bytes.
        self.top = tempfile.mkdtemp(prefix="mailauth-devlog-")
        self.dir = os.path.join(self.top, "dev")
        os.mkdir(self.dir)
        os.chmod(self.top, 0o755)
        os.chmod(self.dir, 0o755)
        for name in NODES:
            open(os.path.join(self.dir, name), "w").close()
        os.mkdir(os.path.join(self.dir, "shm"))
        os.mkdir(os.path.join(self.dir, "pts"))
        for name, target in LINKS.items():
            os.symlink(target, os.path.join(self.dir, name))
        self.path = os.path.join(self.dir, "log")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.records = []        # (priority, text)
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._receive, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()
        shutil.rmtree(self.top, ignore_errors=True)
        return False

    def _receive(self):
        self.sock.settimeout(0.05)
        while True:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                if self.stopping:
                    return     # the child has exited: every datagram it sent is queued
                continue
            except OSError:
                return
            text = data.decode("utf-8", "replace").rstrip("\n")
            m = PRI_RE.match(text)
            prio = int(m.group(1)) & 7 if m else -1
            with self.lock:
                self.records.append((prio, text[m.end():] if m else text))

    @property
    def lines(self):
        with self.lock:
            return [t for _, t in self.records]

    def wrap(self, cmd):
        """cmd, run with this directory as /dev in a private mount namespace."""
        binds = " && ".join('mount --bind /dev/%s "$D/%s"' % (n, n) for n in NODES)
        script = ('D=%s && %s && mount --bind /dev/shm "$D/shm" && mount --bind /dev/pts '
                  '"$D/pts" && mount --rbind "$D" /dev && exec "$@"'
                  % (shlex.quote(self.dir), binds))
        ns = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]
        return ns + ["sh", "-c", script, "devlog"] + list(cmd)
