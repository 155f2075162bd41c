"""Issue 10: staggered failover across the hosts and servers of the walk (src/walk.c), through
real libpam (pamtester under pam_wrapper, and the threaded driver) against peers in a network
namespace of the suite's own (tests/lib/netns.py).

- A black-holed first server, a black-holed first host of a server, a dual-stack first server
  with both addresses black-holed: the live candidate after them starts 250 ms later (per
  candidate ahead of it), not after connect_timeout; the dead ones never get a dialogue.
- A first server that connects but is slow to answer is not bypassed: it judges (the race is
  about connecting at all, pam_mailauth.conf(5) ORDER AND FAILOVER).
- A first server that cannot connect at first is passed over: the second judges; with
  on_reject = next and a refusal there, the first gets its turn after all.
- A name resolved for a later server while an earlier one is still connecting: the lookup
  stops when that connect completes.
- A first server that accepts TCP but never finishes the TLS handshake costs its timeout, no
  more, then the next server answers.
- Every server dead: PAM_AUTHINFO_UNAVAIL within connect_timeout + 250 ms per further address,
  not the sum of the connect timeouts.
- No descriptor left behind by abandoned attempts (threaded driver, fd count before/after).

Root is needed (CAP_NET_ADMIN for the namespace); without it these tests fail, never skip.
"""
import os
import re
import socket
import subprocess
import threading
import time

import pytest

import netns
import pamrun
from fakeserver import FakeServer
from helpers import SCALE, config, hosts, server
from test_network import (PW, STAGGER_MS, best_of, elapsed_ms, imap_accepting, private_files,
                          seconds, shown, use_private_files)
from test_network import root_net  # noqa: F401 - a fixture, used by name

CLEAR = "  allow_cleartext = true\n"  # plain IMAP to a test address that is not loopback
CAPS = "IMAP4rev1 LITERAL+ AUTH=PLAIN"
WRONG = "wrong-Pa55"


def imap_judging(delay=0.0, accept=True):
    """An IMAP server that waits delay seconds before its greeting, then accepts PW (unless
    accept is false) and refuses anything else."""
    def script(conn):
        time.sleep(delay)
        conn.line("* OK [CAPABILITY %s] fake" % CAPS)
        while True:
            line = conn.readline()
            if line is None:
                return
            tag = line.split(b" ", 1)[0].decode()
            if b" LOGIN " in line.upper():
                ok = accept and PW.encode() in line
                conn.line(tag + (" OK logged in" if ok else " NO [AUTHENTICATIONFAILED] no"))
            elif line.upper().endswith(b"LOGOUT"):
                return
    return script


def dialogues_with(result, address):
    """Per-dialogue debug lines (auth.c) and protocol traces naming address."""
    return [t for t in result.log_text().splitlines()
            if re.search(r"server \"[^\"]*\" %s \(" % re.escape(address), t)
            or t.lstrip().startswith(address + " C:")]


def assert_penalty(direct, failover, candidates_ahead):
    penalty = elapsed_ms(failover) - elapsed_ms(direct)
    # Correct: one stagger per dead candidate ahead, plus noise. Broken (sequential): at least
    # connect_timeout (3 s scaled) per dead candidate.
    bound = candidates_ahead * STAGGER_MS + 50 * SCALE
    assert penalty <= bound, "dead candidates added %d ms (bound %d ms): %r" % (
        penalty, bound, failover)
    return penalty


def failover_case(pam, pki, fake, dead_servers, live_server):
    """Best of 3 direct logins against live_server alone, and best of 3 with dead_servers
    before it. connect_timeout far above the stagger: waiting for it is obvious."""
    ct = seconds(3)
    direct_cfg = config(pki, live_server, timeout=ct + seconds(2), connect_timeout=ct)
    failover_cfg = config(pki, *(dead_servers + [live_server]), timeout=ct + seconds(2),
                          connect_timeout=ct)
    runs = []

    def run(cfg):
        runs.append(pam.run(cfg, "alice", PW))
        return runs[-1]
    direct = best_of(3, lambda: run(direct_cfg))
    failover = best_of(3, lambda: run(failover_cfg))
    # The password went to the live server only, once per login.
    assert fake.received.count(PW.encode()) == 6, "%r\n%s" % (
        fake.received, "\n".join(r.log_text() for r in runs))
    return direct, failover


def test_black_holed_first_server_adds_one_stagger(root_net, pam, pki):
    with netns.NetNs() as ns:
        hole = ns.black_hole(3)
        with FakeServer(imap_accepting(), sock=ns.listen()) as fake:
            live = server("live", "imap", hosts(fake.host), fake.port, extra=CLEAR)
            dead = server("dead", "imap", hosts(hole), fake.port, extra=CLEAR)
            direct, failover = failover_case(pam, pki, fake, [dead], live)
    text = failover.log_text()
    assert "connect to %s: abandoned" % shown(hole, fake.port) in text, failover
    assert "result=accepted server=live address=%s" % shown(fake.host, fake.port) in text
    assert dialogues_with(failover, shown(hole, fake.port)) == [], failover
    penalty = assert_penalty(direct, failover, 1)
    print("black-holed first server: +%d ms (direct %d ms)" % (penalty, elapsed_ms(direct)))


def test_black_holed_first_host_of_a_server_adds_one_stagger(root_net, pam, pki):
    with netns.NetNs() as ns:
        hole = ns.black_hole(3)
        with FakeServer(imap_accepting(), sock=ns.listen()) as fake:
            live = server("live", "imap", hosts(fake.host), fake.port, extra=CLEAR)
            both = server("live", "imap", hosts(hole, fake.host), fake.port, extra=CLEAR)
            ct = seconds(3)
            direct = best_of(3, lambda: pam.run(
                config(pki, live, timeout=ct + seconds(2), connect_timeout=ct), "alice", PW))
            failover = best_of(3, lambda: pam.run(
                config(pki, both, timeout=ct + seconds(2), connect_timeout=ct), "alice", PW))
    assert "connect to %s: abandoned" % shown(hole, fake.port) in failover.log_text(), failover
    assert dialogues_with(failover, shown(hole, fake.port)) == [], failover
    penalty = assert_penalty(direct, failover, 1)
    print("black-holed first host: +%d ms (direct %d ms)" % (penalty, elapsed_ms(direct)))


def test_dual_stack_first_server_black_holed_on_both_families(root_net, pam, pki, tmp_path):
    """The first server's name has a black-holed IPv6 and a black-holed IPv4 address: both are
    tried, IPv6 first, then the second server, 250 ms apart."""
    with netns.NetNs(ipv6=True) as ns:
        hole6, hole4 = ns.black_hole6(), ns.black_hole(3)
        use_private_files(pam, private_files(
            tmp_path, "%s dual.test\n%s dual.test\n" % (hole6, hole4)))
        with FakeServer(imap_accepting(), sock=ns.listen()) as fake:
            live = server("live", "imap", hosts(fake.host), fake.port, extra=CLEAR)
            dead = server("dual", "imap", hosts("dual.test"), fake.port, extra=CLEAR)
            direct, failover = failover_case(pam, pki, fake, [dead], live)
    text = failover.log_text()
    for hole in (hole6, hole4):
        assert "connect to %s: abandoned" % shown(hole, fake.port) in text, failover
        assert dialogues_with(failover, shown(hole, fake.port)) == [], failover
    assert "server=live" in text, failover
    penalty = assert_penalty(direct, failover, 2)
    print("dual-stack first server, both black-holed: +%d ms (direct %d ms)"
          % (penalty, elapsed_ms(direct)))


def test_connected_but_slow_first_server_is_not_bypassed(root_net, pam, pki):
    """The first server connects at once and answers only after 0.6 s (more than two staggers):
    it still judges. With on_reject = stop its refusal is final and the second server,
    which would accept, is never contacted at all."""
    slow = 0.6 * SCALE
    with FakeServer(imap_judging(delay=slow)) as first, \
            FakeServer(imap_judging()) as second:
        cfg = config(pki, server("first", "imap", hosts(first.host), first.port),
                     server("second", "imap", hosts(second.host), second.port),
                     head="on_reject = stop\n", timeout=seconds(5), connect_timeout=seconds(3))
        refused = pam.run(cfg, "alice", WRONG)
        accepted = pam.run(cfg, "alice", PW)
        assert second.connections == 0
    assert refused.code == "PAM_AUTH_ERR", refused
    assert "server=first" in refused.log_text(), refused
    assert accepted.code == "PAM_SUCCESS", accepted
    assert "result=accepted server=first" in accepted.log_text(), accepted
    assert elapsed_ms(accepted) >= slow * 1000 * 0.9, accepted


@pytest.mark.parametrize("on_reject", ["next", "stop"])
def test_passed_over_first_server(root_net, pam, pki, on_reject):
    """The first server cannot connect at first (its listen queue is full: SYNs are dropped) and
    can a moment later; the second connects after the stagger and refuses. With on_reject = stop
    that refusal is final (the documented price of the race: a first server that has not
    connected is passed over); with next the walk goes back to the first server, which was
    passed over, not given up on, and it accepts."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname())  # fills the queue
    with FakeServer(imap_judging(accept=False)) as second:
        cfg = config(pki, server("first", "imap", hosts("127.0.0.1"),
                                 listener.getsockname()[1]),
                     server("second", "imap", hosts(second.host), second.port),
                     head="on_reject = %s\n" % on_reject, timeout=seconds(10),
                     connect_timeout=seconds(3))
        box = {}
        login = threading.Thread(target=lambda: box.update(r=pam.run(cfg, "alice", PW)))
        login.start()
        end = time.monotonic() + 30 * SCALE
        while second.connections == 0 and time.monotonic() < end:
            time.sleep(0.01)  # until the race has passed the first server over
        assert second.connections == 1
        with FakeServer(imap_judging(), sock=listener) as first:  # accepts the filler: room
            filler.close()
            login.join(timeout=60 * SCALE)
            assert not login.is_alive()
            got_first = first.received
        second_refused = second.received.count(b"LOGIN")
    r = box["r"]
    assert second_refused == 1, r  # the second judged first: it was asked and refused
    if on_reject == "stop":
        assert r.code == "PAM_AUTH_ERR", r
        assert "server=second" in r.log_text(), r
        assert PW.encode() not in got_first
    else:
        assert r.code == "PAM_SUCCESS", r
        assert "result=accepted server=first" in r.log_text(), r
        assert got_first.count(PW.encode()) == 1


def test_lookup_of_a_later_name_does_not_hold_up_a_connection(root_net, pam, pki, tmp_path):
    """The first server connects late (its listen queue is full until the race has moved on, so
    its SYN is answered at the first retransmission, about 1 s in); the second is a name whose
    nameserver never answers. The lookup started after the stagger must stop when the first
    server's connect completes: the login takes about 1 s, not the lookup's timeout."""
    lookup_timeout = seconds(6)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname())  # fills the queue
    with netns.NetNs() as ns:
        nameserver = ns.listen(type=socket.SOCK_DGRAM, port=53)  # hears queries, never answers
        nameserver.settimeout(30 * SCALE)
        use_private_files(pam, private_files(
            tmp_path, "127.0.0.1 localhost\n",
            "nameserver %s\noptions timeout:30 attempts:2\n" % ns.inner))
        cfg = config(pki, server("first", "imap", hosts("127.0.0.1"), listener.getsockname()[1]),
                     server("byname", "imap", hosts("mail.slow-dns.test"), 143),
                     timeout=lookup_timeout, connect_timeout=seconds(3))
        box = {}
        login = threading.Thread(target=lambda: box.update(r=pam.run(cfg, "alice", PW)))
        login.start()
        try:
            query = nameserver.recv(4096)  # the race reached the second server's name
        finally:
            with FakeServer(imap_judging(), sock=listener) as first:  # room in the queue now
                filler.close()
                login.join(timeout=120 * SCALE)
                assert not login.is_alive()
        nameserver.close()
    assert b"slow-dns" in query
    r = box["r"]
    assert r.code == "PAM_SUCCESS", r
    assert "result=accepted server=first" in r.log_text(), r
    assert first.received.count(PW.encode()) == 1
    took = elapsed_ms(r)
    # Correct: the SYN retransmission, about 1 s. Broken: the whole lookup timeout.
    assert took < lookup_timeout * 1000 / 2, "took %d ms: %r" % (took, r)
    print("connect completed during a later name's lookup: login in %d ms (lookup timeout %d s)"
          % (took, lookup_timeout))


def test_tls_handshake_that_never_finishes_costs_the_timeout(root_net, pam, pki):
    """Implicit TLS: the race is over once TCP connects (walk.c says why); a server that then
    never answers the ClientHello has the rest of its timeout, then the next server answers."""
    timeout = seconds(1)

    def silent(conn):
        conn.wait_closed()  # the ClientHello is read and never answered

    with FakeServer(silent) as stuck, FakeServer(imap_accepting()) as live:
        cfg = config(pki, server("stuck", "imap", hosts(stuck.host), stuck.port, "implicit"),
                     server("live", "imap", hosts(live.host), live.port),
                     timeout=timeout, connect_timeout=seconds(1))
        r = pam.run(cfg, "alice", PW)
    assert stuck.received.startswith(b"\x16\x03"), stuck.received[:16]  # a TLS ClientHello
    assert r.code == "PAM_SUCCESS", r
    assert "server=live" in r.log_text(), r
    took = elapsed_ms(r)
    assert timeout * 1000 <= took <= timeout * 1000 + 300 * SCALE, r


def test_all_servers_dead_is_unavailable_within_the_bound(root_net, pam, pki):
    """Three black-holed servers: unavailable after connect_timeout + 2 x 250 ms (the attempts
    overlap), not 3 x connect_timeout as when tried one after another."""
    ct = seconds(2)
    with netns.NetNs() as ns:
        holes = [ns.black_hole(n) for n in (3, 4, 5)]
        cfg = config(pki, *[server("dead%d" % i, "imap", hosts(h), 143, extra=CLEAR)
                            for i, h in enumerate(holes)],
                     timeout=ct + seconds(1), connect_timeout=ct)
        r = pam.run(cfg, "alice", PW)
    assert r.code == "PAM_AUTHINFO_UNAVAIL", r
    text = r.log_text()
    assert "attempts=3" in text, r
    for h in holes:
        assert "connect to %s: connect timeout after" % shown(h, 143) in text, r
    took = elapsed_ms(r)
    bound = ct * 1000 + 2 * STAGGER_MS + 300 * SCALE
    assert ct * 1000 <= took <= bound, "all dead took %d ms (bound %d ms): %r" % (took, bound, r)
    print("3 black-holed servers: unavailable in %d ms (connect_timeout %d s)" % (took, ct))


def run_driver(confdir, service, case, threads=8, rounds=3):
    driver = os.environ.get("MAILAUTH_CONCURRENCY")
    assert driver and os.path.exists(driver), "MAILAUTH_CONCURRENCY must name the driver"
    wrapper = os.environ.get("MAILAUTH_CONCURRENCY_WRAPPER", "").split()
    proc = subprocess.run(wrapper + [driver, str(confdir), service, str(threads), str(rounds),
                                     case], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=600 * SCALE)
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, out[-4000:]
    assert "concurrency: %d passed, 0 failed" % (threads * rounds) in out, out[-4000:]
    return out


def test_abandoned_attempts_leave_no_descriptor(root_net, pam, pki, module, tmp_path):
    """Many logins in one process, each abandoning an attempt to a black hole (and, when every
    server is dead, failing them all): the process holds the same descriptors afterwards."""
    pamrun.register_secret(PW, "alice")
    pamrun.register_secret(WRONG, "alice")
    with netns.NetNs() as ns:
        hole = ns.black_hole(3)
        with FakeServer(imap_judging(), sock=ns.listen(backlog=64)) as fake:
            dead = server("dead", "imap", hosts(hole), fake.port, extra=CLEAR)
            live = server("live", "imap", hosts(fake.host), fake.port, extra=CLEAR)
            # connect_timeout well above the stagger (the live server wins the race, the black
            # hole is abandoned) and no longer: after a refusal the passed-over black hole is
            # tried again (on_reject = next) and every wrong-password login waits it out.
            failover = pam.write_config(config(pki, dead, live, timeout=seconds(5),
                                               connect_timeout=seconds(1)), name="fo.conf")
            alldead = pam.write_config(config(pki, dead, server("dead2", "imap",
                                                               hosts(ns.black_hole(4)), 143,
                                                               extra=CLEAR),
                                              timeout=seconds(2), connect_timeout=seconds(1)),
                                       name="dead.conf")
            confdir = tmp_path / "pam.d"
            confdir.mkdir()
            (confdir / "failover").write_text("auth required %s config=%s\n" % (module, failover))
            (confdir / "alldead").write_text("auth required %s config=%s\n" % (module, alldead))
            run_driver(confdir, "failover", "alice:%s:0" % PW)
            run_driver(confdir, "failover", "alice:%s:7" % WRONG)
            run_driver(confdir, "alldead", "alice:%s:9" % PW, threads=4, rounds=2)
        assert fake.received.count(PW.encode()) == 8 * 3
