"""Peers that are not on loopback: a network namespace with a veth pair, made and removed by the
test suite itself (needs CAP_NET_ADMIN, i.e. root in CI).

    with NetNs() as ns:                       # 198.18.N.1 here, 198.18.N.2 in the namespace
        sock = ns.listen(port=0)              # a listening socket inside the namespace
        with FakeServer(script, sock=sock) as fake: ...
        ns.black_hole()                       # an address whose frames vanish: no RST, no ICMP

    with NetNs(ipv6=True) as ns:              # also 2001:db8:0:N::1 here, 2001:db8:0:N::2 inside
        ns.listen(family=socket.AF_INET6)     # on ns.inner6
        ns.black_hole6()                      # an IPv6 address whose frames vanish
        ns.listen(type=socket.SOCK_DGRAM, port=53)   # a UDP socket inside (a silent nameserver)

Addresses come from 198.18.0.0/15 (RFC 2544, benchmarking) and 2001:db8::/32 (RFC 3849,
documentation). Not 2001:2::/48, the IPv6 benchmarking range: it lies inside 2001::/32, which
RFC 6724's address selection ranks as Teredo, below IPv4, so a resolver would never put such an
address first. IPv6 addresses are added without duplicate address detection, usable at once. Every instance takes its own /24 and
interface names derived from the pid and a counter, so parallel runs never collide. Nothing is
left behind: __exit__ deletes the veth pair (which removes the neighbour entries) and the
namespace.
"""
import ctypes
import itertools
import os
import socket
import subprocess
import threading

CLONE_NEWNET = 0x40000000
_counter = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)


def available():
    """(True, "") when this process may create namespaces, else (False, why)."""
    if os.geteuid() != 0:
        return False, "not root: creating a network namespace needs CAP_NET_ADMIN"
    probe = subprocess.run(["ip", "netns", "list"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    if probe.returncode != 0:
        return False, "ip netns unusable: " + probe.stderr.strip()
    return True, ""


def _ip(*args):
    subprocess.run(["ip"] + list(args), check=True, stdout=subprocess.DEVNULL)


class NetNs:
    def __init__(self, ipv6=False):
        n = next(_counter)
        tag = "%d%d" % (os.getpid() % 100000, n)
        self.name = "mat" + tag
        self.outer_if = "mta" + tag
        self.inner_if = "mtb" + tag
        # 198.18.0.0/15 has 512 /24s; pick one from the tag, avoiding .0.x.
        subnet = 1 + (os.getpid() * 7 + n) % 510
        self.prefix = "198.%d.%d" % (18 + subnet // 256, subnet % 256)
        self.outer = self.prefix + ".1"
        self.inner = self.prefix + ".2"
        self.ipv6 = ipv6
        self.prefix6 = "2001:db8:0:%x:" % subnet
        self.outer6 = self.prefix6 + ":1"
        self.inner6 = self.prefix6 + ":2"
        self.created = False

    def __enter__(self):
        try:
            _ip("netns", "add", self.name)
            self.created = True
            _ip("link", "add", self.outer_if, "type", "veth", "peer", "name", self.inner_if)
            _ip("link", "set", self.inner_if, "netns", self.name)
            _ip("addr", "add", self.outer + "/24", "dev", self.outer_if)
            _ip("link", "set", self.outer_if, "up")
            self.run(["ip", "addr", "add", self.inner + "/24", "dev", self.inner_if])
            self.run(["ip", "link", "set", self.inner_if, "up"])
            self.run(["ip", "link", "set", "lo", "up"])
            if self.ipv6:
                _ip("-6", "addr", "add", self.outer6 + "/64", "dev", self.outer_if, "nodad")
                self.run(["ip", "-6", "addr", "add", self.inner6 + "/64", "dev", self.inner_if,
                          "nodad"])
        except Exception:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "link", "del", self.outer_if], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        if self.created:
            subprocess.run(["ip", "netns", "del", self.name], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            self.created = False

    def run(self, argv, **kw):
        """Run a command inside the namespace (check=True unless overridden)."""
        kw.setdefault("check", True)
        kw.setdefault("stdout", subprocess.DEVNULL)
        return subprocess.run(["ip", "netns", "exec", self.name] + list(argv), **kw)

    def black_hole(self, last_octet=9):
        """An address on the link whose frames go to a MAC nobody has: a SYN to it is dropped
        silently, as by a dead host or a DROP firewall. Returns the address."""
        addr = "%s.%d" % (self.prefix, last_octet)
        _ip("neigh", "add", addr, "lladdr", "02:00:5e:00:53:99", "dev", self.outer_if,
            "nud", "permanent")
        return addr

    def black_hole6(self, last=9):
        """black_hole() for IPv6 (needs ipv6=True): 2001:db8:0:N::LAST."""
        addr = "%s:%x" % (self.prefix6, last)
        _ip("-6", "neigh", "add", addr, "lladdr", "02:00:5e:00:53:99", "dev", self.outer_if,
            "nud", "permanent")
        return addr

    def listen(self, port=0, family=socket.AF_INET, addr=None, backlog=16,
               type=socket.SOCK_STREAM):
        """A listening TCP socket bound inside the namespace (to self.inner, or self.inner6 for
        AF_INET6, by default), or with type=SOCK_DGRAM a bound UDP socket. A socket keeps the
        namespace it was created in, so the caller may use it from anywhere."""
        result = {}

        def make():
            try:
                fd = os.open("/var/run/netns/" + self.name, os.O_RDONLY)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns")
                finally:
                    os.close(fd)
                s = socket.socket(family, type)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                default = self.inner6 if family == socket.AF_INET6 else self.inner
                s.bind((addr or default, port))
                if type == socket.SOCK_STREAM:
                    s.listen(backlog)
                result["sock"] = s
            except Exception as e:  # noqa: BLE001 - re-raised in the caller's thread
                result["error"] = e

        # setns changes only the calling thread's namespace: a short-lived thread does it, so
        # the test's own threads stay where they are.
        t = threading.Thread(target=make)
        t.start()
        t.join()
        if "error" in result:
            raise result["error"]
        return result["sock"]
