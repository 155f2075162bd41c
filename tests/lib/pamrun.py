"""Run the module through real libpam: pamtester under pam_wrapper, one process per attempt."""
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

    def run(self, config, user, password, args=("debug",), config_path=None, timeout=120,
            stdin=None, service_line=None, operation="authenticate", env=None):
        path = config_path or self.write_config(config)
        svc = tempfile.mkdtemp(prefix="svc-", dir=self.workdir)
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
        proc = subprocess.run(self.wrapper + ["pamtester", "mailtest", user, operation],
                              input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=env, timeout=timeout)
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
