"""Scripted fake mail servers for faults a real server will not produce.

A FakeServer listens on loopback (IPv4 or IPv6, plain or implicit TLS) and runs a script, a
function taking a Conn, for every connection in its own thread. Conn records every byte the
client sent, so a test can assert that a password never crossed the wire.
"""
import socket
import ssl
import threading
import time


class Conn:
    def __init__(self, sock, server):
        self.sock = sock
        self.server = server
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self, text):
        self.send(text.encode() + b"\r\n" if isinstance(text, str) else text + b"\r\n")

    def readline(self, timeout=10.0):
        """One line from the client, CRLF stripped; None on EOF or timeout."""
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, OSError, ssl.SSLError):
                return None
            if not chunk:
                return None
            self.server.record(chunk)
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\n", 1)
        return raw.rstrip(b"\r")

    def expect(self, prefix):
        got = self.readline()
        if got is None or not got.upper().startswith(prefix.upper().encode()):
            raise AssertionError("expected %r, got %r" % (prefix, got))
        return got

    def drain(self, timeout=1.0):
        """Read (and record) until EOF or timeout."""
        while self.readline(timeout) is not None:
            pass

    def start_tls(self, context):
        self.sock.settimeout(10)
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
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        self.close()


class FakeServer:
    def __init__(self, script, family=socket.AF_INET, tls_context=None, host=None, sock=None):
        """sock: an already listening socket (e.g. netns.NetNs.listen()); otherwise one is
        bound on loopback (or host) with a free port."""
        self.script = script
        self.tls_context = tls_context
        if sock is None:
            self.host = host or ("::1" if family == socket.AF_INET6 else "127.0.0.1")
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, 0))
            sock.listen(16)
        else:
            self.host = sock.getsockname()[0]
        self.sock = sock
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.connections = 0
        self.errors = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)

    def record(self, chunk):
        with self.lock:
            self.received += chunk

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept_loop(self):
        while not self.stopping:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        conn = Conn(client, self)
        try:
            if self.tls_context is not None:
                conn.start_tls(self.tls_context)
            self.script(conn)
        except Exception as e:  # noqa: BLE001 - recorded for the test to inspect
            self.errors.append(repr(e))
        finally:
            conn.close()


def tls_server_context(cert, key, min_version=ssl.TLSVersion.TLSv1_2, max_version=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx
