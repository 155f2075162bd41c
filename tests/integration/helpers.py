"""Config builders shared by the integration tests."""
import os
import re
import socket

# How much slower than a plain build this run is (valgrind, sanitizers): set by tests/meson.build.
# Every timeout a test configures or waits for is multiplied by it; so are the bounds of the few
# tests that measure a deadline.
SCALE = float(os.environ.get("MAILAUTH_TIME_SCALE", "1"))


def scaled(seconds):
    return seconds * SCALE


def hosts(*names):
    if len(names) == 1:
        return '"%s"' % names[0]
    return "{" + ", ".join('"%s"' % n for n in names) + "}"


def ports(*numbers):
    if len(numbers) == 1:
        return str(numbers[0])
    return "{" + ", ".join(str(n) for n in numbers) + "}"


LOOPBACK_NAMES = ("localhost", "::1")


def on_loopback(host):
    """Whether every name in a hosts() string is a loopback one."""
    names = re.findall(r'"([^"]*)"', host)
    return bool(names) and all(n in LOOPBACK_NAMES or n.startswith("127.") for n in names)


def server(label, protocol, host, port, tls="none", extra="", cleartext=None):
    """A server section. tls = none to loopback gets allow_cleartext = true unless cleartext is
    False: the suite's servers listen on high ports, where the cleartext rule's loopback
    exemption does not hold (issue 17: any local user may listen there)."""
    if cleartext is None:
        cleartext = tls == "none" and on_loopback(host)
    if cleartext and "allow_cleartext" not in extra:
        extra += "  allow_cleartext = true\n"
    return ('server "%s" {\n  protocol = %s\n  host = %s\n  port = %s\n  tls = %s\n%s}\n'
            % (label, protocol, host, port, tls, extra))


def config(pki, *servers, head="", timeout=None, connect_timeout=None, ca=True):
    """A config with fail_delay = 0; timeouts default to 5 s and 2 s, scaled."""
    timeout = scaled(5) if timeout is None else timeout
    connect_timeout = scaled(2) if connect_timeout is None else connect_timeout
    trust = 'ca_file = "%s"\n' % pki["ca"] if ca else ""
    return ('timeout = %s\nconnect_timeout = %s\nfail_delay = 0\n%s%s\n'
            % (timeout, connect_timeout, trust, head)) + "".join(servers)


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
