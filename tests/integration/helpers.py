"""Config builders shared by the integration tests."""
import os
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


def server(label, protocol, host, port, tls="none", extra="", cleartext=None):
    """A server section. tls = none gets allow_cleartext = true unless cleartext is False (the
    cases that test the cleartext rule itself): the suite's servers listen on loopback high
    ports, where the rule's loopback exemption does not hold (issue 17: any local user may
    listen there), or on test addresses off loopback."""
    if cleartext is None:
        cleartext = tls == "none"
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


def unprivileged_port_start():
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        return int(f.read())


def privileged_listener(host="127.0.0.1"):
    """A listening socket on a free port below ip_unprivileged_port_start (needs root): where
    the cleartext rule's loopback exemption holds."""
    limit = unprivileged_port_start()
    if os.geteuid() != 0 or limit < 2:
        raise AssertionError("needs root and a privileged port range (limit %d)" % limit)
    for port in range(min(limit, 1024) - 1, 0, -1):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            continue
        sock.listen(16)
        return sock
    raise AssertionError("no free privileged port")


def closed_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
