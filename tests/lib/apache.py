"""A private Apache httpd with mod_authnz_pam, for the system suite (tests/system/test_apache.py)
and the web benchmark (bench/web.py).

Its own config, pid file and logs in a directory of its own, a loopback high port, never the
system's apache2 service; it runs in a sandbox (sandbox.py) whose /etc/pam.d holds the services
given. Each location is a directory with an index.html saying "<name> page" and the caller's
<Location> block; the blocks are usually the man page's examples (manpage.py).
"""
import base64
import http.client
import os
import subprocess

import sandbox
from dovecot import free_port, wait_port
from sandbox import Sandbox

MODULES = "/usr/lib/apache2/modules"
BASE_LOADS = ["mpm_event", "authz_core", "authz_user", "authn_core", "auth_basic", "authnz_pam"]
SOCACHE_LOADS = ["authn_socache", "socache_shmcb"]   # mod_authn_socache, as a2enmod enables it
LOADS = BASE_LOADS + SOCACHE_LOADS
NEEDS = ["apache2", MODULES + "/mod_authnz_pam.so", "unshare"]


def basic_auth(user, password):
    """The Authorization header of HTTP Basic authentication (UTF-8, as browsers send it)."""
    token = base64.b64encode((user + ":" + password).encode("utf-8")).decode("ascii")
    return {"Authorization": "Basic " + token}


class Apache:
    def __init__(self, directory, services, locations, timeout=30.0, loads=LOADS):
        """services: {PAM service name: text of /etc/pam.d/<name>};
        locations: {directory name under htdocs: <Location> block, or server-level lines};
        timeout: seconds for starting and for each request; loads: the modules to load."""
        self.dir = directory
        self.timeout = timeout
        for name in locations:
            os.makedirs(os.path.join(self.dir, "htdocs", name), exist_ok=True)
            with open(os.path.join(self.dir, "htdocs", name, "index.html"), "w") as f:
                f.write("%s page\n" % name)
        os.makedirs(os.path.join(self.dir, "run"), exist_ok=True)
        for root, dirs, files in os.walk(self.dir):   # the workers run as www-data
            for name in dirs + files:
                path = os.path.join(root, name)
                os.chmod(path, os.stat(path).st_mode | 0o444 | (0o111 if name in dirs else 0))
        os.chmod(self.dir, 0o755)
        self.error_log = os.path.join(self.dir, "error.log")
        self.port = free_port()
        self.sandbox = Sandbox(os.path.join(self.dir, "view"))
        for name, text in services.items():
            self.sandbox.pam_service(name, text)
        self.config = os.path.join(self.dir, "httpd.conf")
        with open(self.config, "w") as f:
            f.write("\n".join([
                "ServerRoot " + self.dir,
                "ServerName localhost",
                "Listen 127.0.0.1:%d" % self.port,
                "PidFile " + os.path.join(self.dir, "run", "httpd.pid"),
                "DefaultRuntimeDir " + os.path.join(self.dir, "run"),
                "ErrorLog " + self.error_log,
                "LogLevel warn authnz_pam:info",
                "User www-data",
                "Group www-data",
                "DocumentRoot " + os.path.join(self.dir, "htdocs"),
                ""] + ["LoadModule %s_module %s/mod_%s.so" % (m, MODULES, m) for m in loads]))
            f.write("\n" + "".join(locations.values()))
        self.proc = None

    def start(self):
        check = self.sandbox.run(["apache2", "-t", "-f", self.config],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if check.returncode != 0:
            raise RuntimeError("apache2 -t: " + check.stdout)
        self.proc = self.sandbox.popen(["apache2", "-DFOREGROUND", "-f", self.config])
        if not wait_port(self.port, timeout=self.timeout):
            self.stop()
            raise RuntimeError("apache2 did not listen on %d: %s" % (self.port, self.log_text()))
        return self

    def stop(self):
        """Stop Apache and every worker; returns the error log's text."""
        if self.proc is not None:
            sandbox.stop(self.proc)
        self.proc = None
        return self.log_text()

    def log_text(self):
        try:
            with open(self.error_log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def connection(self):
        """An HTTP/1.1 connection (kept alive between requests until closed)."""
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)

    def get(self, path, user=None, password=None, conn=None):
        """(status, body) of GET path, on conn or on a connection of its own."""
        headers = basic_auth(user, password) if user is not None else {}
        own = conn is None
        conn = conn or self.connection()
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            if own:
                conn.close()
