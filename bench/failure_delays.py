#!/usr/bin/env python3
"""How late Dovecot answers a wrong password with its brute-force defences at their defaults
(auth_failure_delay = 2 s, the anvil auth penalty): the measurement behind the default
`timeout` (issue 12). Starts a private Dovecot on loopback, sends successive wrong IMAP logins
from one address, then a right one, then wrong APOP logins, and prints how long each answer
took. About 110 s. Run as root or as an ordinary user: python3 bench/failure_delays.py

Dovecot 2.3.19.1 on the 2-core test machine (2026-11-23): wrong IMAP logins answered after
1.50, 6.01, 9.51, 17.02, 17.02, 17.02, 17.02 s; the right password after them 15.03 s, then
0.01 s; wrong APOP 2.00, 6.01, 10.01 s."""
import hashlib
import os
import shutil
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))

import certs  # noqa: E402
import dovecot  # noqa: E402

DEFAULT_DELAYS = dovecot.CONF.replace("auth_failure_delay = 0\n", "").replace(
    "  unix_listener anvil-auth-penalty {{\n    mode = 0\n  }}\n", "")


def imap_login(port, password):
    with socket.create_connection(("127.0.0.1", port)) as s:
        f = s.makefile("rb")
        f.readline()
        start = time.monotonic()
        s.sendall(b'A1 LOGIN "alice" "%s"\r\n' % password.encode())
        line = f.readline()
        while not line.startswith(b"A1 ") and line:
            line = f.readline()
        return time.monotonic() - start, line.strip().decode(errors="replace")


def apop_login(port, password):
    with socket.create_connection(("127.0.0.1", port)) as s:
        f = s.makefile("rb")
        greeting = f.readline().decode()
        ts = greeting[greeting.index("<"):greeting.index(">") + 1]
        digest = hashlib.md5((ts + password).encode()).hexdigest()
        start = time.monotonic()
        s.sendall(b"APOP alice %s\r\n" % digest.encode())
        line = f.readline()
        return time.monotonic() - start, line.strip().decode(errors="replace")


def main():
    if "auth_failure_delay = 0" not in dovecot.CONF:
        sys.exit("tests/lib/dovecot.py changed: cannot restore Dovecot's default delays")
    d = tempfile.mkdtemp(prefix="failure-delays-")
    os.chmod(d, 0o755)
    dovecot.CONF = DEFAULT_DELAYS
    pki = certs.make_pki(os.path.join(d, "pki"))
    dv = dovecot.Dovecot(os.path.join(d, "dovecot"), {"alice": "s3cret"}, pki["server_cert"],
                         pki["server_key"]).start()
    try:
        for i in range(7):
            print("imap wrong #%d: %.2f s  %s" % ((i + 1,) + imap_login(dv.ports["imap"],
                                                                         "wrong%d" % i)))
        print("imap right after them: %.2f s" % imap_login(dv.ports["imap"], "s3cret")[0])
        print("imap right again: %.2f s" % imap_login(dv.ports["imap"], "s3cret")[0])
        for i in range(3):
            print("apop wrong #%d: %.2f s  %s" % ((i + 1,) + apop_login(dv.ports["pop3"],
                                                                         "wrong%d" % i)))
    finally:
        dv.stop()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
