"""A raw WebSocket client for the integration tests (RFC 6455, written here so that each byte on
the wire is the test's), and the configuration lines of a broker whose port speaks WebSockets."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import time

from conftest import free_port

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 section 1.3's example: its accept value is below
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
WAIT = 5.0

# A CONNECT (MQTT 3.1.1, clean session, keepalive 60, client id "ws") and its CONNACK
CONNECT = bytes.fromhex("100e00044d5154540402003c00027773")
CONNACK = bytes.fromhex("20020000")
PINGREQ = b"\xc0\x00"
PINGRESP = b"\xd0\x00"


def ws_lines(kind, *extra):
    """Config lines that make the test broker's port a websockets listener (extra after it).
    mosquitto 2.0.11 does not start with websockets listeners only: it gets an MQTT one too."""
    lines = ["protocol websockets"] + list(extra)
    if kind.name == "mosquitto":
        lines.append("listener %d 127.0.0.1" % free_port())
    return lines


def upgrade_request(key=KEY, protocol="mqtt", version="13", path="/mqtt", extra=""):
    head = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Version: %s\r\n" % (path, version))
    if key is not None:
        head += "Sec-WebSocket-Key: %s\r\n" % key
    if protocol is not None:
        head += "Sec-WebSocket-Protocol: %s\r\n" % protocol
    return (head + extra + "\r\n").encode()


def frame(op, data, mask=True, fin=True, rsv=0, length=None):
    """One client frame (section 5.2); length overrides the payload length it says."""
    n = len(data) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv | op])
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack(">H", n)
    else:
        head += bytes([m | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + data
    key = os.urandom(4)
    return head + key + bytes(c ^ key[i % 4] for i, c in enumerate(data))


def binary(data, **kw):
    return frame(2, data, **kw)


class WsConn:
    """A TCP connection to the broker that speaks raw WebSocket frames."""

    def __init__(self, broker):
        self.sock = socket.create_connection((broker.host, broker.port), timeout=WAIT)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            data = b""
        if not data:
            raise EOFError("closed")
        self.buf += data
        return True

    def http_response(self, timeout=WAIT):
        """(status line, {lower-case header: value}, body so far); the status line is None when
        the broker closed the connection without answering."""
        deadline = time.monotonic() + timeout
        try:
            while b"\r\n\r\n" not in self.buf:
                if not self._fill(deadline):
                    raise AssertionError("no HTTP response within %.1fs" % timeout)
        except EOFError:
            if not self.buf:
                return None, {}, b""
            raise
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.buf = rest
        n = int(headers.get("content-length", "-1"))
        if n >= 0:
            try:
                while len(self.buf) < n:
                    if not self._fill(deadline):
                        break
            except EOFError:
                pass
            body, self.buf = self.buf[:n], self.buf[n:]
            return lines[0], headers, body
        return lines[0], headers, b""

    def open(self, protocol="mqtt"):
        """The opening handshake (section 4); the 101's headers."""
        self.send(upgrade_request(protocol=protocol))
        status, headers, _ = self.http_response()
        assert status is not None and status.split(" ")[1] == "101", status
        return headers

    def frame(self, timeout=WAIT):
        """(opcode, fin, payload) of the next frame from the broker; EOFError once closed."""
        deadline = time.monotonic() + timeout
        while True:
            b = self.buf
            if len(b) >= 2:
                assert not b[1] & 0x80, "a server must not mask its frames (section 5.1)"
                n = b[1] & 0x7F
                at = 2
                if n == 126 and len(b) >= 4:
                    n = struct.unpack(">H", b[2:4])[0]
                    at = 4
                elif n == 127 and len(b) >= 10:
                    n = struct.unpack(">Q", b[2:10])[0]
                    at = 10
                if (b[1] & 0x7F) < 126 or at > 2:
                    if len(b) >= at + n:
                        self.buf = b[at + n:]
                        return b[0] & 0x0F, bool(b[0] & 0x80), b[at:at + n]
            if not self._fill(deadline):
                raise AssertionError("no frame within %.1fs" % timeout)

    def mqtt(self, n, timeout=WAIT):
        """The next n bytes of MQTT from binary frames (and continuations)."""
        out = b""
        while len(out) < n:
            op, _, data = self.frame(timeout)
            assert op in (0, 2), "opcode %d where MQTT bytes were expected" % op
            out += data
        assert len(out) == n, out
        return out

    def closed_with(self, timeout=WAIT):
        """The status code of the Close frame the broker sends before it closes the
        connection (None: no status); fails if it sends anything else first."""
        op, _, data = self.frame(timeout)
        assert op == 8, (op, data)
        code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else None
        self.wait_eof(timeout)
        return code

    def wait_eof(self, timeout=WAIT):
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline) or time.monotonic() < deadline:
                self.buf = b""
        except EOFError:
            return
        raise AssertionError("still open after %.1fs" % timeout)


def accept_value(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
