"""TLS session resumption (issue 21): what it saves the client and the mail server per login, in
one long-lived process (the in-process driver: an Apache worker or a PAM-using daemon), side by
side in one run with a build that does not resume (an older commit, built elsewhere).

usage: resume.py BUILD_DIR --before OLD_BUILD_DIR [--n N] [--blocks B]

Against Dovecot in high-performance mode (login processes serve many connections, so a login
process can resume a session it issued). Per login: the client's thread CPU (the driver's
figure), latency, and the CPU of every Dovecot process (utime + stime from /proc/PID/stat,
summed over the whole block, divided by the logins). Blocks of the two builds alternate.
Dovecot as shipped starts a login process per connection with fresh ticket keys, so it cannot
resume: nothing changes there, as the last lines show. Prints a table; asserts nothing.
"""
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402  (bench/run.py: the driver, services and Dovecot)

TLS_ROWS = [r for r in run.ROWS if r[4] != "none"]


def dovecot_cpu_ticks(dv):
    """utime + stime of this Dovecot's master and every process under it, in clock ticks
    (other Dovecots on the machine are not counted)."""
    stats = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(pid)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    ours, total = {dv.proc.pid}, 0
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in stats.items():
            if ppid in ours and pid not in ours:
                ours.add(pid)
                grew = True
    for pid in ours:
        total += stats.get(pid, (0, 0))[1]
    return total


def block(b, cmd):
    before = dovecot_cpu_ticks(b.dv)
    lat, cpu, _ = run.run_driver(cmd)
    ticks = dovecot_cpu_ticks(b.dv) - before
    return lat, cpu, ticks * 1000.0 / os.sysconf("SC_CLK_TCK") / len(lat)


def main():
    build = os.path.abspath(sys.argv[1])
    old = os.path.abspath(sys.argv[sys.argv.index("--before") + 1])
    n = int(sys.argv[sys.argv.index("--n") + 1]) if "--n" in sys.argv else 200
    blocks = int(sys.argv[sys.argv.index("--blocks") + 1]) if "--blocks" in sys.argv else 3
    print("machine: %s" % run.machine())
    for fast in (True, False):
        b = run.Bench(build, quick=False, fast=fast)
        try:
            print()
            print("Dovecot %s, %d logins per block, %d blocks per build, interleaved"
                  % ("high-performance (processes reused)" if fast else "as shipped",
                     n, blocks))
            print()
            print("| login | client CPU ms new / before | ratio | median ms new / before "
                  "| Dovecot CPU ms new / before | ratio |")
            print("|---|---|---|---|---|---|")
            for row in TLS_ROWS:
                svc = b.service("new-" + row[6], b.server_block(row))
                svc_old = b.service("old-" + row[6], b.server_block(row),
                                    module=os.path.join(old, "pam_mailauth.so"))
                pools = {"new": ([], [], []), "old": ([], [], [])}
                for _ in range(blocks):
                    for key, s in (("new", svc), ("old", svc_old)):
                        lat, cpu, dcpu = block(b, b.pam_cmd(s, n=n))
                        pools[key][0].extend(lat)
                        pools[key][1].extend(cpu)
                        pools[key][2].append(dcpu)
                med = {k: (statistics.median(v[0]) / 1000, statistics.mean(v[1]) / 1000,
                           statistics.mean(v[2])) for k, v in pools.items()}
                print("| %s | %.3f / %.3f | %.2fx | %.2f / %.2f | %.3f / %.3f | %.2fx |"
                      % (row[0], med["new"][1], med["old"][1], med["new"][1] / med["old"][1],
                         med["new"][0], med["old"][0], med["new"][2], med["old"][2],
                         med["new"][2] / med["old"][2] if med["old"][2] else float("nan")))
                if not fast:
                    break   # as shipped: one row shows it (no resumption possible)
        finally:
            b.close()


if __name__ == "__main__":
    main()
