"""Scripted fake mail servers for faults a real server will not produce.

A FakeServer listens on loopback (IPv4 or IPv6, plain or implicit TLS) and runs a script, a
function taking a Conn, for every connection in its own thread. Conn records every byte the
client sent, so a test can assert that a password never crossed the wire.

A fake server never lets a test pass by giving up quietly:
- an exception in a script (a command that did not arrive, a client that hung up early) is
  raised again when the `with` block ends, unless the test body itself raised;
- a script still running when the block ends is an error too (scripts wait for the client to
  close, never for a fixed time);
- `connections` first accepts whatever is still waiting in the listen queue, so "no connection
  was made" read after the client process has exited cannot race with the accept thread.

Waits scale with MAILAUTH_TIME_SCALE (valgrind and sanitizers are 10-50x slower).
"""
import os
import select
import socket
import ssl
import threading
import time

SCALE = float(os.environ.get("MAILAUTH_TIME_SCALE", "1"))


def scaled(seconds):
    return seconds * SCALE


def tag_of(line):
    """The tag of an IMAP command line (bytes), as text."""
    return line.split(b" ", 1)[0].decode()


class ScriptError(AssertionError):
    """The client did not do what the script expected."""


class Conn:
    def __init__(self, sock, server):
        self.sock = sock
        self.server = server
        self.buf = b""
        self.eof = False

    def send(self, data, peer_may_close=False):
        """Send data; with peer_may_close a client that already hung up (it was right to) is not
        an error."""
        if isinstance(data, str):
            data = data.encode()
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError):
            if not peer_may_close:
                raise
            return False
        return True

    def line(self, text):
        self.send(text.encode() + b"\r\n" if isinstance(text, str) else text + b"\r\n")

    def _fill(self, timeout):
        """Read one chunk into buf. False on EOF, error or timeout."""
        if self.eof:
            return False
        self.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (OSError, ssl.SSLError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.server.record(chunk)
        self.buf += chunk
        return True

    def readline(self, timeout=None):
        """One line from the client, CRLF stripped; None on EOF or timeout (default 10 s,
        scaled)."""
        end = time.monotonic() + (scaled(10) if timeout is None else timeout)
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or not self._fill(left):
                return None
        raw, self.buf = self.buf.split(b"\n", 1)
        return raw.rstrip(b"\r")

    def one_write(self, timeout=None):
        """The complete lines of what one read returned (one recv, or one TLS record): what the
        client sent in one write, e.g. a command pipelined with the login. A client that sends
        one line per write shows one line here. Raises ScriptError when nothing came."""
        if not self._fill(scaled(10) if timeout is None else timeout):
            raise ScriptError("the client sent nothing")
        raw, _, self.buf = self.buf.rpartition(b"\r\n")
        return raw.split(b"\r\n") if raw else []

    def imap_starttls(self, greeting, ctx):
        """Greet with greeting, take the client's STARTTLS (any tag), answer OK and start TLS
        with ctx."""
        self.line(greeting)
        line = self.readline()
        if line is None or not line.upper().endswith(b"STARTTLS"):
            raise ScriptError("expected STARTTLS, got %r" % line)
        self.line(tag_of(line) + " OK begin TLS")
        self.start_tls(ctx)

    def expect(self, prefix):
        got = self.readline()
        if got is None or not got.upper().startswith(prefix.upper().encode()):
            raise ScriptError("expected %r, got %r" % (prefix, got))
        return got

    def drain(self, timeout=1.0):
        """Read (and record) until EOF or until the client is silent for timeout seconds."""
        while self.readline(timeout) is not None:
            pass

    def wait_closed(self, limit=None):
        """Say nothing and record what comes until the client closes the connection. A client
        still connected after limit seconds (default 30, scaled) is a script error: a deadline
        test must see the client give up, not the server."""
        limit = scaled(30) if limit is None else limit
        end = time.monotonic() + limit
        while not self.eof:
            left = end - time.monotonic()
            if left <= 0:
                raise ScriptError("the client was still connected after %.1f s" % limit)
            self._fill(min(left, 0.5))

    def start_tls(self, context):
        self.sock.settimeout(scaled(10))
        self.sock = context.wrap_socket(self.sock, server_side=True)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        """Close with RST instead of FIN."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.close()


class FakeServer:
    def __init__(self, script, family=socket.AF_INET, tls_context=None, host=None, sock=None,
                 handshake_may_fail=False):
        """sock: an already listening socket (e.g. netns.NetNs.listen()); otherwise one is
        bound on loopback (or host) with a free port. handshake_may_fail: an implicit-TLS
        handshake the client aborts (a certificate it must refuse) is expected, not an error."""
        self.script = script
        self.tls_context = tls_context
        self.handshake_may_fail = handshake_may_fail
        if sock is None:
            self.host = host or ("::1" if family == socket.AF_INET6 else "127.0.0.1")
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, 0))
            sock.listen(16)
        else:
            self.host = sock.getsockname()[0]
        sock.setblocking(False)
        self.sock = sock
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self._connections = 0
        self.errors = []          # repr() of every script exception, in order
        self.exceptions = []      # the exceptions themselves, raised again at the end
        self.handshake_errors = []
        self.lock = threading.Lock()
        self.stopping = False
        self.serving = []
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)

    def record(self, chunk):
        with self.lock:
            self.received += chunk

    @property
    def connections(self):
        """Connections made so far, including any still in the listen queue."""
        self._accept_pending()
        with self.lock:
            return self._connections

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._accept_pending()
        self.stopping = True
        self.thread.join(timeout=scaled(5))
        try:
            self.sock.close()
        except OSError:
            pass
        if exc_type is not None:
            return False    # the test already failed: its own error says more
        self._join_scripts()
        if self.exceptions:
            first = self.exceptions[0]
            others = "; ".join(self.errors[1:])
            raise ScriptError("fake server script failed: %r%s" % (
                first, (" (and: %s)" % others) if others else "")) from first
        return False

    def _join_scripts(self):
        end = time.monotonic() + scaled(30)
        for t in list(self.serving):
            t.join(timeout=max(0.0, end - time.monotonic()))
            if t.is_alive():
                self._fail(ScriptError("a script was still running when the test ended"))

    def _fail(self, e):
        with self.lock:
            self.errors.append(repr(e))
            self.exceptions.append(e)

    def _accept_pending(self):
        """Accept every connection waiting in the listen queue. Accept and count happen under
        one lock, so a reader of `connections` never misses one the accept thread holds."""
        while True:
            with self.lock:
                if self.stopping:
                    return
                try:
                    client, _ = self.sock.accept()
                except (BlockingIOError, InterruptedError):
                    return
                except OSError:
                    return
                self._connections += 1
                t = threading.Thread(target=self._serve, args=(client,), daemon=True)
                self.serving.append(t)
            t.start()

    def _accept_loop(self):
        while not self.stopping:
            try:
                ready, _, _ = select.select([self.sock], [], [], 0.05)
            except (OSError, ValueError):
                return
            if ready:
                self._accept_pending()

    def _serve(self, client):
        client.setblocking(True)
        conn = Conn(client, self)
        try:
            if self.tls_context is not None:
                try:
                    conn.start_tls(self.tls_context)
                except (OSError, ssl.SSLError) as e:
                    if not self.handshake_may_fail:
                        raise
                    self.handshake_errors.append(repr(e))
                    return
            self.script(conn)
        except Exception as e:  # noqa: BLE001 - raised again in __exit__
            self._fail(e)
        finally:
            conn.close()


def tls_server_context(cert, key, min_version=ssl.TLSVersion.TLSv1_2, max_version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx
