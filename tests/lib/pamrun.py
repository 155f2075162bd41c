"""Run the module through real libpam: pamtester under pam_wrapper, one process per attempt.

Every password a test hands to the module is registered here (PamRunner.run does it; drivers
that bypass pamtester call register_secret), and at the end of the session every line the module
logged is scanned for each of them in every form a log could carry: see leak_needles()."""
import base64
import os
import re
import subprocess
import tempfile
import time

RESULTS = {
    "successfully authenticated": "PAM_SUCCESS",
    "Authentication failure": "PAM_AUTH_ERR",
    "Authentication service cannot retrieve authentication info": "PAM_AUTHINFO_UNAVAIL",
    "Error in service module": "PAM_SERVICE_ERR",
    "User not known to the underlying authentication module": "PAM_USER_UNKNOWN",
}

SYSLOG_RE = re.compile(r"SYSLOG\((\d+)\): (.*)$")
VALGRIND_RE = re.compile(r"^==\d+== ", re.M)  # valgrind -q prints only what it found

# Every line the module logged during this test session, for the "password never logged" check.
ALL_LOG_LINES = []

# password -> the user names it was used with (the SASL PLAIN blob carries both).
SECRETS = {}

# A run of this many characters of a secret is evidence of a leak, not ordinary text.
MIN_RUN = 8
# Shorter passwords are still scanned whole, but not their prefixes or sanitized forms.
MIN_SCANNED = 4

SCALE = float(os.environ.get("MAILAUTH_TIME_SCALE", "1"))


def register_secret(password, user=None):
    """Remember a password (str or bytes) a test used, and the user it went with."""
    if isinstance(password, bytes):
        password = password.decode("utf-8", "surrogateescape")
    users = SECRETS.setdefault(password, set())
    if user is not None:
        users.add(user)


def _utf8(text):
    return text.encode("utf-8", "surrogateescape")


def sanitized(raw):
    """What util.c text_sanitize makes of raw bytes: printable ASCII kept, any other byte '?'."""
    return "".join(chr(b) if 0x20 <= b < 0x7F else "?" for b in raw)


def leak_needles(password, users=()):
    """(form, text) pairs that must not appear in any log line: the password, the base64 of it
    and of the SASL PLAIN blob for each user, its sanitized form when that keeps enough of the
    password to mean something, and the leading MIN_RUN characters of each form (a cut at the
    excerpt limit leaves a prefix; any longer prefix contains that one)."""
    raw = _utf8(password)
    needles = []

    def add(form, text, prefix_from=0):
        if len(text) >= MIN_SCANNED:
            needles.append((form, text))
        cut = text[:prefix_from + MIN_RUN]
        # A prefix of one or two repeated characters ("xxxxxxxx") is ordinary filler text, not
        # evidence; the whole form above is still looked for.
        if len(text) > len(cut) and len(set(cut[prefix_from:])) > 2:
            needles.append((form + " cut", cut))

    add("password", password)
    b64 = base64.b64encode(raw).decode()
    add("base64(password)", b64, prefix_from=4)
    for user in sorted(users):
        blob_b64 = base64.b64encode(b"\0" + _utf8(user) + b"\0" + raw).decode()
        # Leading base64 groups that encode only "\0user" are the same for every password.
        user_only = 4 * ((2 + len(_utf8(user))) // 3)
        add("base64(SASL PLAIN %s)" % user, blob_b64, prefix_from=user_only + 4)
    clean = sanitized(raw)
    kept = sum(1 for c in clean if c != "?")
    if clean != password and kept >= 3 and len(clean) >= MIN_RUN:
        add("sanitized", clean)
    return needles


def scan_for_secrets(lines, secrets=None):
    """[(line, password, form)] for every log line that carries a form of a registered
    password."""
    found = []
    for password, users in (SECRETS if secrets is None else secrets).items():
        needles = leak_needles(password, users)
        for line in lines:
            for form, text in needles:
                if text in line:
                    found.append((line, password, form))
                    break
    return found


class Result:
    def __init__(self, code, output, logs, elapsed):
        self.code = code          # "PAM_SUCCESS", "PAM_AUTH_ERR", ...
        self.output = output      # pamtester's stdout+stderr
        self.logs = logs          # [(priority, text)] from pam_syslog
        self.elapsed = elapsed    # seconds, wall clock

    def log_text(self):
        return "\n".join(text for _, text in self.logs)

    def __repr__(self):
        lines = [text[:300] for _, text in self.logs[-40:]]
        tail = self.output.strip().splitlines()[-1:] if self.output.strip() else []
        return "<Result %s in %.2fs>\n  log: %s\n  %s" % (
            self.code, self.elapsed, "\n  log: ".join(lines), "".join(tail))


class Probe:
    """What tests/pam_probe reported (key=value lines) and what the module logged."""

    def __init__(self, output, logs):
        self.output = output
        self.values = dict(line.split("=", 1) for line in output.splitlines()
                           if re.match(r"^[a-z_]+=", line))
        self.logs = logs

    def __getitem__(self, key):
        assert key in self.values, "pam_probe printed no %s:\n%s" % (key, self.output[-3000:])
        return self.values[key]

    def number(self, key):
        return int(self[key])

    def __repr__(self):
        return "<Probe %s>\n  log: %s" % (self.values, "\n  log: ".join(self.logs[-20:]))


class PamRunner:
    """Writes a config and a service file, runs pamtester, classifies the outcome."""

    def __init__(self, module, workdir, preload=None, wrapper=None):
        self.module = module
        self.workdir = workdir
        self.preload = preload or "libpam_wrapper.so"
        self.wrapper = wrapper or []
        os.makedirs(workdir, exist_ok=True)

    def write_config(self, text, name="t.conf", mode=0o644):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def probe(self, config, user, password, args=("debug",), service_line=None,
              call_module=False):
        """One authentication through tests/pam_probe (real libpam, pam_start_confdir), with a
        private /dev/log so the module's log lines are captured (see devlog.py)."""
        import devlog
        register_secret(password, user)
        probe = os.environ.get("MAILAUTH_PAM_PROBE")
        assert probe and os.path.exists(probe), "MAILAUTH_PAM_PROBE must name tests/pam_probe"
        path = self.write_config(config)
        confdir = tempfile.mkdtemp(prefix="pamd-", dir=self.workdir)
        os.chmod(confdir, 0o755)   # a wrapper may run the probe as another uid
        with open(os.path.join(confdir, "mailtest"), "w") as f:
            f.write((service_line or "auth required %s config=%s %s"
                     % (self.module, path, " ".join(args))) + "\n")
        cmd = self.wrapper + [probe, confdir, "mailtest", user, password]
        if call_module:
            cmd.append(self.module)
        # No pam_wrapper here (it wraps pam_start, not pam_start_confdir); a sanitized build's
        # probe carries its own sanitizer runtime.
        with devlog.DevLog() as log:
            proc = subprocess.run(log.wrap(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=60 * SCALE)
        output = proc.stdout.decode("utf-8", "replace")
        ALL_LOG_LINES.extend(log.lines)
        if "Sanitizer" in output or "runtime error:" in output or VALGRIND_RE.search(output):
            raise AssertionError("memory checker report from pam_probe:\n" + output[-6000:])
        assert proc.returncode == 0, output[-3000:]
        return Probe(output, log.lines)

    def wipe_check(self, config, user, password, extra_secrets=(), args=("debug",)):
        """One authentication under tests/wipe_check: (exit status, output). extra_secrets are
        bytes that must not survive either (base64 forms, an APOP digest)."""
        import devlog
        register_secret(password, user)
        driver = os.environ.get("MAILAUTH_WIPE_CHECK")
        assert driver and os.path.exists(driver), "MAILAUTH_WIPE_CHECK must name tests/wipe_check"
        path = self.write_config(config)
        confdir = tempfile.mkdtemp(prefix="pamd-", dir=self.workdir)
        with open(os.path.join(confdir, "mailtest"), "w") as f:
            f.write("auth required %s config=%s %s\n" % (self.module, path, " ".join(args)))
        cmd = [driver, confdir, "mailtest", user, password] + [s.hex() for s in extra_secrets]
        # Bind symbols at start, as sshd and su (built with -z now) do: a lazy binding saves the
        # vector registers on the stack, and they may hold bytes of the password from libpam's
        # own strlen or memcpy, which no C code can wipe.
        env = dict(os.environ, LD_BIND_NOW="1")
        with devlog.DevLog() as log:
            proc = subprocess.run(log.wrap(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  env=env, timeout=60 * SCALE)
        ALL_LOG_LINES.extend(log.lines)
        output = proc.stdout.decode("utf-8", "replace")
        if "Sanitizer" in output or "runtime error:" in output:
            raise AssertionError("sanitizer report from wipe_check:\n" + output[-6000:])
        return proc.returncode, output

    def run_syslog(self, config, user, password, rhost=None, args=(), service="mailtest",
                   stdin=None):
        """One authentication through pamtester and the real libpam (no pam_wrapper), with a
        private /etc/pam.d and /dev/log (devlog.py): what a log file or fail2ban reads. Returns
        a Result whose logs are (priority, "Mon DD HH:MM:SS ident[pid]: message") as syslog()
        sent them."""
        import devlog
        register_secret(password, user)
        path = self.write_config(config)
        pamd = tempfile.mkdtemp(prefix="pamd-", dir=self.workdir)
        os.chmod(pamd, 0o755)
        with open(os.path.join(pamd, service), "w") as f:
            f.write("auth required %s config=%s %s\n" % (self.module, path, " ".join(args)))
        preload = " ".join(p for p in self.preload.split() if "pam_wrapper" not in p)
        env = dict(os.environ, LD_PRELOAD=preload)
        items = ["-I", "rhost=" + rhost] if rhost is not None else []
        cmd = ["sh", "-c", 'mount --bind "$0" /etc/pam.d && exec "$@"', pamd] + self.wrapper + \
            ["pamtester"] + items + [service, user, "authenticate"]
        if stdin is None:
            stdin = password.encode("utf-8") + b"\n"
        start = time.monotonic()
        with devlog.DevLog() as log:
            proc = subprocess.run(log.wrap(cmd), input=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, env=env, timeout=60 * SCALE)
        elapsed = time.monotonic() - start
        output = proc.stdout.decode("utf-8", "replace")
        with log.lock:
            logs = list(log.records)
        ALL_LOG_LINES.extend(text for _, text in logs)
        if "Sanitizer" in output or "runtime error:" in output or VALGRIND_RE.search(output):
            raise AssertionError("memory checker report from pamtester:\n" + output[-6000:])
        code = "UNKNOWN"
        for needle, name in RESULTS.items():
            if needle in output:
                code = name
                break
        if (proc.returncode == 0) != (code == "PAM_SUCCESS"):
            code = "UNKNOWN"
        return Result(code, output, logs, elapsed)

    def run(self, config, user, password, args=("debug",), config_path=None, timeout=None,
            stdin=None, service_line=None, operation="authenticate", env=None, rhost=None):
        """rhost: PAM_RHOST, set with pamtester -I rhost=..."""
        register_secret(password, user)
        if stdin is not None:
            for typed in stdin.split(b"\n"):
                if typed:
                    register_secret(typed, user)
        path = config_path or self.write_config(config)
        svc = tempfile.mkdtemp(prefix="svc-", dir=self.workdir)
        os.chmod(svc, 0o755)   # a wrapper may run pamtester as another uid
        line = service_line or "auth required %s config=%s %s" % (self.module, path,
                                                                   " ".join(args))
        with open(os.path.join(svc, "mailtest"), "w") as f:
            f.write(line + "\n")
        env = dict(os.environ, **(env or {}))
        env.update({"LD_PRELOAD": self.preload, "PAM_WRAPPER": "1",
                    "PAM_WRAPPER_SERVICE_DIR": svc, "PAM_WRAPPER_DEBUGLEVEL": "2"})
        if stdin is None:
            stdin = password.encode("utf-8") + b"\n"
        start = time.monotonic()
        items = ["-I", "rhost=" + rhost] if rhost is not None else []
        proc = subprocess.run(self.wrapper + ["pamtester"] + items + ["mailtest", user]
                              + operation.split(),
                              input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=env, timeout=timeout or 60 * SCALE)
        elapsed = time.monotonic() - start
        output = proc.stdout.decode("utf-8", "replace")
        logs = []
        for raw in output.splitlines():
            m = SYSLOG_RE.search(raw)
            if m:
                logs.append((int(m.group(1)), m.group(2)))
        ALL_LOG_LINES.extend(text for _, text in logs)
        if "Sanitizer" in output or "runtime error:" in output or VALGRIND_RE.search(output):
            raise AssertionError("memory checker report from pamtester:\n" + output[-6000:])
        code = "UNKNOWN"
        for needle, name in RESULTS.items():
            if needle in output:
                code = name
                break
        if proc.returncode == 0 and code != "PAM_SUCCESS":
            code = "UNKNOWN"
        if proc.returncode != 0 and code == "PAM_SUCCESS":
            code = "UNKNOWN"
        return Result(code, output, logs, elapsed)
