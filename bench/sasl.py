"""SCRAM-SHA-256 against PLAIN (issue 18): the same Dovecot (high-performance mode, processes
reused, so the client's share shows), the same user store, IMAPS, in process (bench driver, the
client thread's CPU) and as a process (pamtester under pam_wrapper, child rusage). The user's
password is stored as {SCRAM-SHA-256} with 4096 and with 10000 iterations, so Dovecot does the
same PBKDF2 for a PLAIN login (verifying the plaintext) as for SCRAM (nothing for SCRAM's client
proof beyond two HMACs); the difference is the client's PBKDF2. Prints a Markdown section;
usage: sasl.py BUILD_DIR [--quick]. Nothing here asserts a timing.
"""
import base64
import datetime
import hashlib
import hmac
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402
from run import Bench, Stats, dovecot, machine  # noqa: E402

PASSWORD = run.PASSWORD


def scram_stored(password, iterations):
    """Dovecot's {SCRAM-SHA-256} field: iterations,salt,StoredKey,ServerKey (base64)."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return "{SCRAM-SHA-256}%d,%s,%s,%s" % (
        iterations, b64(salt), b64(hashlib.sha256(client_key).digest()),
        b64(hmac.new(salted, b"Server Key", "sha256").digest()))


def bench_for(build, quick, iterations, say):
    # Bench starts its own Dovecot; replace it with one that offers SCRAM and stores it.
    b = Bench(build, quick, True)
    b.dv.stop()
    b.dv = dovecot.Dovecot(os.path.join(b.work, "dovecot-sasl"), {run.USER: PASSWORD},
                           b.pki["server_cert"], b.pki["server_key"], fast=True, sasl=True,
                           stored={run.USER: scram_stored(PASSWORD, iterations)}).start()
    try:
        rows = []
        for mech in ("plain", "scram-sha-256"):
            block = ('server "imaps" {\n  protocol = imap\n  host = "localhost"\n  port = %d\n'
                     '  tls = implicit\n  mechanisms = %s\n}\n' % (b.dv.ports["imaps"], mech))
            rows.append((mech, b.service("sasl-%s-%d" % (mech, iterations), block)))
        stats = b.interleaved(*[b.pam_cmd(svc) for _, svc in rows])
        procs = []
        for mech, svc in rows:
            procs.append(process_stats(b, svc))
        for (mech, _), s, p in zip(rows, stats, procs):
            say("| %d | %s | %.2f | %.2f | %.2f | %.1f | %.1f |"
                % (iterations, mech.upper(), s.median, s.p95, s.cpu_ms, p.median, p.cpu_ms))
    finally:
        b.close()


def process_stats(b, svc):
    svcdir = os.path.join(b.work, "svc-" + svc)
    os.makedirs(svcdir, exist_ok=True)
    run.shutil.copy(os.path.join(b.confdir, svc), os.path.join(svcdir, "mailtest"))
    env = dict(os.environ, LD_PRELOAD="libpam_wrapper.so", PAM_WRAPPER="1",
               PAM_WRAPPER_SERVICE_DIR=svcdir)
    lat, cpu = [], []
    for _ in range(b.np):
        w, c = b.timed(["pamtester", "mailtest", run.USER, "authenticate"], env=env,
                       stdin=(PASSWORD + "\n").encode())
        lat.append(w)
        cpu.append(c)
    return Stats(lat, cpu)


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(run.ROOT, "build"))
    quick = "--quick" in sys.argv

    def say(s=""):
        print(s, flush=True)

    say("## SCRAM-SHA-256 against PLAIN (issue 18), measured %s"
        % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    say()
    say("Machine: " + machine())
    say()
    say("Dovecot in high-performance mode, IMAPS, the password stored as {SCRAM-SHA-256} at the "
        "given iteration count (Dovecot runs the same PBKDF2 to check a PLAIN login). In process: "
        "latency per login and the client thread's CPU; as a process: pamtester's wall time and "
        "CPU (child rusage). `bench/sasl.py` regenerates it.")
    say()
    say("| iterations | mechanism | in process median ms | p95 ms | client CPU ms | "
        "process median ms | process CPU ms |")
    say("|---|---|---|---|---|---|---|")
    for iterations in (4096, 10000):
        bench_for(build, quick, iterations, say)


if __name__ == "__main__":
    main()
