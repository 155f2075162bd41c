"""The web case of issue 9: Apache + mod_authnz_pam with HTTP Basic auth, one user, N requests,
against a throwaway Dovecot on loopback. Prints requests/s and the mail logins Dovecot saw, side
by side for:
  - the module without its cache (every request is a mail login),
  - the module with its cache (ttl; hash_cost left at its default),
  - Apache's own mod_authn_socache in front of the module (module cache off).
The Apache setup is the system suite's (tests/lib/apache.py) and the <Location> blocks are the man
page's examples, so this measures what the man page tells admins to do.

Every run starts cold: a fresh Apache (empty mod_authn_socache) and an empty module cache, so the
first request of each run is a real mail login. Runs of the three setups are interleaved, round
after round. Nothing here asserts a timing. Needs root (a sandbox with its own /etc/pam.d;
Apache's workers run as www-data).

usage: web.py BUILD_DIR [--requests N] [--rounds R] [--clients 1,8] [--fast] [--socache-loaded]
              [--hash-cost C]
  --clients: parallel keep-alive connections sharing the N requests (default 1 and 8)
  --fast: Dovecot in high-performance mode (processes reused) instead of as shipped
  --socache-loaded: load mod_authn_socache for every row, not only its own. Loaded, it costs
      every PAM success a bcrypt in the Apache worker, also where a location does not use it.
  --hash-cost: the module cache's hash_cost (default: left out of the config, the module's default)
"""
import argparse
import os
import pwd
import re
import shutil
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "lib"))

import apache as httpd  # noqa: E402
from manpage import man_examples  # noqa: E402
from run import PASSWORD, ROWS, USER, Bench, machine  # noqa: E402

CACHE_TTL = 300

# name, directory under htdocs, PAM service
SETUPS = [
    ("module, no cache", "nocache", "mailauth-web"),
    ("module cache (ttl %d s, default hash_cost)" % CACHE_TTL, "modcache", "mailauth-web-cache"),
    ("mod_authn_socache in front (module cache off)", "socache", "mailauth-web"),
]


def location(directory, service, socache):
    """The man page's <Location> block for mod_authnz_pam (or with mod_authn_socache), moved to
    /directory and pointed at service."""
    if socache:
        block = man_examples("mod_authn_socache")[0]
    else:
        block = man_examples("mod_authnz_pam")[1]
    assert "<Location /private>" in block and "AuthPAMService mailauth-web\n" in block
    return (block.replace("<Location /private>", "<Location /%s>" % directory)
            .replace("AuthPAMService mailauth-web\n", "AuthPAMService %s\n" % service))


class WebBench:
    def __init__(self, b, hash_cost=None):
        self.b = b
        # As the man page says for Apache: the base directory, and www-data's own made once.
        www = pwd.getpwnam("www-data")
        base = os.path.join(b.work, "cache")
        os.mkdir(base, 0o711)
        self.cache_dir = os.path.join(base, str(www.pw_uid))
        os.mkdir(self.cache_dir, 0o700)
        os.chown(self.cache_dir, www.pw_uid, www.pw_gid)
        servers = b.server_block(ROWS[0])   # IMAP plain on loopback
        plain = b.service("web", servers)
        cached = b.service("web-cache", servers, head='cache {\n  dir = "%s"\n  ttl = %d\n%s}\n'
                           % (base, CACHE_TTL, "" if hash_cost is None
                              else "  hash_cost = %d\n" % hash_cost))
        service = man_examples("mod_authnz_pam")[0]
        self.services = {
            "mailauth-web": service.replace("pam_mailauth.so", "%s config=%s" % (
                b.module, os.path.join(b.work, plain + ".conf"))),
            "mailauth-web-cache": service.replace("pam_mailauth.so", "%s config=%s" % (
                b.module, os.path.join(b.work, cached + ".conf"))),
        }
        self.locations = {d: location(d, svc, d == "socache") for _, d, svc in SETUPS}
        self.runs = 0
        self.socache_everywhere = False

    def cold_apache(self, directory):
        """A fresh Apache (mod_authn_socache empty) over an empty module cache, serving the one
        location; mod_authn_socache is loaded only for its own row unless --socache-loaded."""
        for entry in os.listdir(self.cache_dir):
            os.unlink(os.path.join(self.cache_dir, entry))
        self.runs += 1
        socache = directory == "socache" or self.socache_everywhere
        return httpd.Apache(os.path.join(self.b.work, "apache-%d" % self.runs), self.services,
                            {directory: self.locations[directory]},
                            loads=httpd.LOADS if socache else httpd.BASE_LOADS).start()

    def dovecot_logins(self, offset):
        """Logins Dovecot logged since offset, once its log has caught up."""
        seen, count = -1, 0
        for _ in range(20):
            time.sleep(0.25)
            count = len(re.findall(r"imap-login: (?:Info: )?Login: user=<%s>" % re.escape(USER),
                                   self.b.dv.log_since(offset)))
            if count == seen:
                break
            seen = count
        return count

    def run(self, directory, requests, clients):
        """requests GETs of /directory/index.html over clients keep-alive connections. Returns
        (requests/s, median ms, Dovecot logins, PAM calls)."""
        web = self.cold_apache(directory)
        try:
            offset = self.b.dv.log_size()
            shares = [requests // clients + (i < requests % clients) for i in range(clients)]
            lat, errors = [], []

            def client(n):
                conn = web.connection()
                try:
                    for _ in range(n):
                        t0 = time.monotonic()
                        status, body = web.get("/%s/index.html" % directory, USER, PASSWORD, conn)
                        lat.append(time.monotonic() - t0)
                        if (status, body) != (200, "%s page\n" % directory):
                            errors.append(status)
                except Exception as e:   # reported below, with Apache's log
                    errors.append(repr(e))
                finally:
                    conn.close()

            threads = [threading.Thread(target=client, args=(n,)) for n in shares]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.monotonic() - t0
            logins = self.dovecot_logins(offset)
        finally:
            log = web.stop()
        if errors or len(lat) != requests:
            raise RuntimeError("/%s: %d of %d requests failed (%s): %s" % (
                directory, len(errors), requests, errors[:3], log[-2000:]))
        pam_calls = log.count("PAM authentication passed for user %s" % USER)
        return requests / wall, statistics.median(lat) * 1000, logins, pam_calls


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?", default=os.path.join(os.path.dirname(HERE), "build"))
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", default="1,8")
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--socache-loaded", action="store_true")
    ap.add_argument("--hash-cost", type=int, help="for the module cache (default: the module's)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("web.py needs root: Apache runs in a sandbox with its own /etc/pam.d")
    missing = [t for t in httpd.NEEDS if shutil.which(t) is None and not os.path.exists(t)]
    if missing:
        sys.exit("missing: %s (apt-get install apache2 libapache2-mod-authnz-pam)"
                 % " ".join(missing))
    clients = [int(c) for c in args.clients.split(",")]
    b = Bench(os.path.abspath(args.build), True, args.fast)
    try:
        wb = WebBench(b, args.hash_cost)
        wb.socache_everywhere = args.socache_loaded
        results = {}   # (setup index, clients) -> [(req/s, median ms, logins, pam calls)]
        for r in range(args.rounds):
            for c in clients:
                for i in [(r + k) % len(SETUPS) for k in range(len(SETUPS))]:
                    results.setdefault((i, c), []).append(wb.run(SETUPS[i][1], args.requests, c))
    finally:
        b.close()
    report(args, clients, results)


def report(args, clients, results):
    print("## The web case: Apache + mod_authnz_pam, HTTP Basic auth, %d requests for one user"
          % args.requests)
    print()
    print("Machine: " + machine())
    print()
    print("Dovecot %s; %d rounds, each run cold (fresh Apache, empty module cache); figures are "
          "the median over rounds, logins and PAM calls per run as counted in every round. "
          "mod_authn_socache loaded %s." % (
              "in high-performance mode" if args.fast else "as shipped", args.rounds,
              "for every row" if args.socache_loaded else "only for its own row"))

    print()
    head = "| setup |"
    rule = "|---|"
    for c in clients:
        conn = "%d connection%s" % (c, "s" if c > 1 else "")
        head += " %s: requests/s | median ms | Dovecot logins | PAM calls |" % conn
        rule += "---|---|---|---|"
    print(head)
    print(rule)
    for i, (name, _, _) in enumerate(SETUPS):
        if args.hash_cost is not None:
            name = name.replace("default hash_cost", "hash_cost %d" % args.hash_cost)
        line = "| %s |" % name
        for c in clients:
            runs = results[(i, c)]
            line += " %.1f | %.2f | %s | %s |" % (
                statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
                ", ".join(str(r[2]) for r in runs), ", ".join(str(r[3]) for r in runs))
        print(line)
    print()


if __name__ == "__main__":
    main()
