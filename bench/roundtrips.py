"""Round trips per login through a delaying proxy, and the attack-isolation figure (issue 10).

usage: roundtrips.py BUILD_DIR [OLD_BUILD_DIR]

Round trips: a TCP proxy on loopback holds every chunk DELAY_MS in each direction (one round trip
= 2 x DELAY_MS), in front of a throwaway Dovecot. For each mode, pamtester (under pam_wrapper)
with this build's module, optionally with an older build's, and curl log in directly and through
the proxy, interleaved; round trips = (median through the proxy - median direct) / round-trip
time. The proxy accepts at once, so the TCP handshake with the client costs nothing here: add 1
for it on a real link (the proxy's own connect to Dovecot is on loopback).

Attack isolation: a Dovecot with its brute-force defences (auth_failure_delay, anvil penalty)
that trusts loopback (login_trusted_networks); 3 wrong passwords from PAM_RHOST 198.51.100.66,
then a correct login of another user from 192.0.2.10, with forward_client_ip auto and never.

Prints a Markdown section for bench/RESULTS.md. Nothing here asserts a timing.
"""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

import certs  # noqa: E402
import dovecot  # noqa: E402

DELAY_MS = 25
RUNS = 7
USER, PASSWORD = "alice", "s3cret"

MODES = [
    # name, protocol, port name, tls, extra, curl arguments ({p}: port)
    ("IMAP plain", "imap", "imap", "none", "",
     ["-X", "NOOP", "imap://127.0.0.1:{p}/"]),
    ("IMAP STARTTLS", "imap", "imap", "starttls", "",
     ["--ssl-reqd", "-X", "NOOP", "imap://localhost:{p}/"]),
    ("POP3 STLS (APOP)", "pop3", "pop3", "starttls", "",
     ["--ssl-reqd", "--login-options", "AUTH=+APOP", "-X", "NOOP", "-I",
      "pop3://localhost:{p}/"]),
]


class DelayProxy:
    """Forwards 127.0.0.1:port to target, holding each chunk delay seconds in each direction
    (order kept: one sender thread per direction)."""

    def __init__(self, target_port, delay):
        self.target = target_port
        self.delay = delay
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            for a, b in ((c, s), (s, c)):
                a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        import queue
        q = queue.Queue()

        def sender():
            while True:
                due, chunk = q.get()
                if chunk is None:
                    try:
                        dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    dst.sendall(chunk)
                except OSError:
                    return

        threading.Thread(target=sender, daemon=True).start()
        while True:
            try:
                chunk = src.recv(65536)
            except OSError:
                chunk = b""
            q.put((time.monotonic() + self.delay, chunk or None))
            if not chunk:
                return

    def close(self):
        self.stopping = True
        self.sock.close()


def timed(argv, env=None, stdin=None):
    t0 = time.monotonic()
    p = subprocess.run(argv, env=env, input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    return time.monotonic() - t0, p


class Run:
    def __init__(self, build, old_build):
        self.work = tempfile.mkdtemp(prefix="mailauth-rt-")
        os.chmod(self.work, 0o755)
        self.modules = [("module", os.path.join(build, "pam_mailauth.so"))]
        if old_build:
            self.modules.append(("module before", os.path.join(old_build, "pam_mailauth.so")))
        self.pki = certs.make_pki(os.path.join(self.work, "pki"))

    def pamtester(self, module, conf_text, user=USER, password=PASSWORD, rhost=None):
        n = len(os.listdir(self.work))
        conf = os.path.join(self.work, "c%d.conf" % n)
        with open(conf, "w") as f:
            f.write(conf_text)
        os.chmod(conf, 0o644)
        svc = os.path.join(self.work, "svc%d" % n)
        os.makedirs(svc)
        with open(os.path.join(svc, "mailtest"), "w") as f:
            f.write("auth required %s config=%s\n" % (module, conf))
        env = dict(os.environ, LD_PRELOAD="libpam_wrapper.so", PAM_WRAPPER="1",
                   PAM_WRAPPER_SERVICE_DIR=svc)
        items = ["-I", "rhost=" + rhost] if rhost else []
        return lambda: timed(["pamtester"] + items + ["mailtest", user, "authenticate"], env=env,
                             stdin=(password + "\n").encode())

    def config(self, proto, port, tls, extra="", head="", timeout=10):
        host = "127.0.0.1" if tls == "none" else "localhost"
        if tls == "none":   # a high loopback port: the cleartext rule wants it said
            extra += "  allow_cleartext = true\n"
        return ('timeout = %s\nfail_delay = 0\nca_file = "%s"\n%s\nserver "s" {\n  protocol = '
                '%s\n  host = "%s"\n  port = %d\n  tls = %s\n%s}\n'
                % (timeout, self.pki["ca"], head, proto, host, port, tls, extra))

    def round_trips(self, say):
        dv = dovecot.Dovecot(os.path.join(self.work, "dv"), {USER: PASSWORD},
                             self.pki["server_cert"], self.pki["server_key"]).start()
        try:
            say("| login | %s | curl |" % " | ".join(name for name, _ in self.modules))
            say("|---|%s---|" % ("---|" * len(self.modules)))
            for name, proto, portname, tls, extra, curl_args in MODES:
                port = dv.ports[portname]
                proxy = DelayProxy(port, DELAY_MS / 1000.0)
                try:
                    cells = [self._rt(dv, proto, tls, extra, curl_args, port, proxy.port, m)
                             for _, m in self.modules]
                    cells.append(self._rt(dv, proto, tls, extra, curl_args, port, proxy.port,
                                          None))
                finally:
                    proxy.close()
                say("| %s | %s |" % (name, " | ".join(cells)))
        finally:
            dv.stop()

    def _rt(self, dv, proto, tls, extra, curl_args, port, proxy_port, module):
        def runner(p):
            if module is not None:
                return self.pamtester(module, self.config(proto, p, tls, extra))
            argv = (["curl", "-s", "-o", "/dev/null", "--cacert", self.pki["ca"], "--user",
                     "%s:%s" % (USER, PASSWORD)] + [a.format(p=p) for a in curl_args])
            return lambda: timed(argv)
        direct, delayed = runner(port), runner(proxy_port)
        d, x = [], []
        for _ in range(RUNS):
            for fn, pool in ((direct, d), (delayed, x)):
                t, p = fn()
                if p.returncode != 0:
                    raise RuntimeError("login failed: %s" % p.stdout[-500:])
                pool.append(t)
        rtt = 2 * DELAY_MS / 1000.0
        return "%.2f" % ((statistics.median(x) - statistics.median(d)) / rtt)

    def attack(self, say):
        dv = dovecot.Dovecot(os.path.join(self.work, "dv-penalty"),
                             {USER: PASSWORD, "mallory": "m-pw"}, self.pki["server_cert"],
                             self.pki["server_key"], brute_force_defaults=True,
                             trusted="127.0.0.0/8 ::1").start()
        module = self.modules[0][1]
        try:
            say("| forward_client_ip | protocol | 3 wrong passwords from 198.51.100.66 (s) "
                "| then a correct login from 192.0.2.10 (s) | result |")
            say("|---|---|---|---|---|")
            for mode in ("auto", "never"):
                for proto in ("imap", "pop3"):
                    # Each case starts afresh: a success from an address clears its penalty, so
                    # log in correctly from both addresses first.
                    cfg = self.config(proto, dv.ports[proto], "none",
                                      "  apop = never\n" if proto == "pop3" else "",
                                      head="forward_client_ip = %s" % mode, timeout=30)
                    for rhost in ("198.51.100.66", "192.0.2.10"):
                        self.pamtester(module, cfg, rhost=rhost)()
                    t0 = time.monotonic()
                    for _ in range(3):
                        self.pamtester(module, cfg, "mallory", "wrong", rhost="198.51.100.66")()
                    attack = time.monotonic() - t0
                    t, p = self.pamtester(module, cfg, rhost="192.0.2.10")()
                    say("| %s | %s | %.1f | %.2f | %s |" % (
                        mode, proto, attack, t,
                        "accepted" if p.returncode == 0 else p.stdout.decode()
                        .strip().splitlines()[-1]))
        finally:
            dv.stop()

    def close(self):
        shutil.rmtree(self.work, ignore_errors=True)


def main():
    build = os.path.abspath(sys.argv[1])
    old = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
    r = Run(build, old)

    def say(s=""):
        print(s, flush=True)

    try:
        say("### Round trips per login (delay proxy, %d ms each way; median of %d; add 1 for "
            "the TCP handshake on a real link)" % (DELAY_MS, RUNS))
        say()
        r.round_trips(say)
        say()
        say("### Attack isolation: Dovecot with its brute-force defences, loopback trusted")
        say()
        r.attack(say)
    finally:
        r.close()


if __name__ == "__main__":
    main()
