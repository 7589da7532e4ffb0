"""A deliberately small MQTT 3.1.1 client on a plain socket, for byte-level integration tests.

It encodes exactly what a test asks for (including packets a real client would refuse to send)
and decodes what the broker sends back. Every read has a deadline.
"""

from __future__ import annotations

import socket
import struct
import time

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

NAMES = {
    CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK",
    PUBREC: "PUBREC", PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE",
    SUBACK: "SUBACK", UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBACK: "UNSUBACK", PINGREQ: "PINGREQ",
    PINGRESP: "PINGRESP", DISCONNECT: "DISCONNECT",
}

DEFAULT_TIMEOUT = 5.0


# --------------------------------------------------------------------------------------------
# Encoding


def _bytes(value) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        digit = n % 128
        n //= 128
        if n:
            digit |= 0x80
        out.append(digit)
        if not n:
            return bytes(out)


def field(value) -> bytes:
    """A two-byte length followed by the bytes (UTF-8 string or binary data)."""
    data = _bytes(value)
    return struct.pack("!H", len(data)) + data


def packet(ptype: int, flags: int, body: bytes = b"") -> bytes:
    return bytes([(ptype << 4) | flags]) + remaining_length(len(body)) + body


def connect_packet(client_id="", clean_session=True, keepalive=60, will=None,
                   protocol_name="MQTT", protocol_level=4, username=None, password=None) -> bytes:
    """will: (topic, payload, qos, retain) or None."""
    flags = 0x02 if clean_session else 0x00
    payload = field(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += field(topic) + field(message)
    if username is not None:
        flags |= 0x80
        payload += field(username)
    if password is not None:
        flags |= 0x40
        payload += field(password)
    variable = field(protocol_name) + bytes([protocol_level, flags]) + struct.pack("!H", keepalive)
    return packet(CONNECT, 0, variable + payload)


def publish_packet(topic, payload=b"", qos=0, retain=False, dup=False, packet_id=None) -> bytes:
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = field(topic)
    if qos:
        body += struct.pack("!H", packet_id if packet_id is not None else 1)
    return packet(PUBLISH, flags, body + _bytes(payload))


def subscribe_packet(packet_id, filters) -> bytes:
    """filters: list of (topic_filter, requested_qos)."""
    body = struct.pack("!H", packet_id)
    for topic_filter, qos in filters:
        body += field(topic_filter) + bytes([qos])
    return packet(SUBSCRIBE, 0x02, body)


def unsubscribe_packet(packet_id, filters) -> bytes:
    body = struct.pack("!H", packet_id)
    for topic_filter in filters:
        body += field(topic_filter)
    return packet(UNSUBSCRIBE, 0x02, body)


def ack_packet(ptype, packet_id) -> bytes:
    return packet(ptype, 0x02 if ptype == PUBREL else 0, struct.pack("!H", packet_id))


PINGREQ_PACKET = packet(PINGREQ, 0)
DISCONNECT_PACKET = packet(DISCONNECT, 0)


# --------------------------------------------------------------------------------------------
# Decoding


class Packet:
    """One decoded control packet; PUBLISH/CONNACK/SUBACK/acks get convenient attributes."""

    def __init__(self, first_byte: int, body: bytes):
        self.type = first_byte >> 4
        self.flags = first_byte & 0x0F
        self.body = body
        self.packet_id = None
        if self.type == PUBLISH:
            self.dup = bool(self.flags & 0x08)
            self.qos = (self.flags >> 1) & 0x03
            self.retain = bool(self.flags & 0x01)
            (n,) = struct.unpack_from("!H", body, 0)
            self.topic = body[2:2 + n].decode("utf-8")
            pos = 2 + n
            if self.qos:
                (self.packet_id,) = struct.unpack_from("!H", body, pos)
                pos += 2
            self.payload = body[pos:]
        elif self.type == CONNACK:
            self.session_present = bool(body[0] & 0x01)
            self.return_code = body[1]
        elif self.type == SUBACK:
            (self.packet_id,) = struct.unpack_from("!H", body, 0)
            self.codes = list(body[2:])
        elif self.type in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK):
            (self.packet_id,) = struct.unpack_from("!H", body, 0)

    @property
    def name(self):
        return NAMES.get(self.type, "type%d" % self.type)

    def __repr__(self):
        if self.type == PUBLISH:
            return "<PUBLISH %r %r qos=%d retain=%d dup=%d id=%s>" % (
                self.topic, self.payload, self.qos, self.retain, self.dup, self.packet_id)
        if self.type == CONNACK:
            return "<CONNACK sp=%d rc=%d>" % (self.session_present, self.return_code)
        if self.type == SUBACK:
            return "<SUBACK id=%d %r>" % (self.packet_id, self.codes)
        return "<%s flags=%#x body=%r>" % (self.name, self.flags, self.body)


class ConnectionClosed(Exception):
    """The broker closed the connection (EOF or reset)."""


class RawClient:
    packet_class = Packet  # how received packets are decoded (raw_mqtt5.RawClient5: Packet5)

    def __init__(self, host, port, timeout=DEFAULT_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.closed_by_peer = False

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _take_packet(self):
        """Decode one packet from the buffer, or return None if it is incomplete."""
        if len(self.buffer) < 2:
            return None
        length = 0
        multiplier = 1
        pos = 1
        while True:
            if pos >= len(self.buffer):
                return None
            byte = self.buffer[pos]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            pos += 1
            if not byte & 0x80:
                break
            if pos > 4:
                raise ValueError("malformed remaining length from broker")
        if len(self.buffer) < pos + length:
            return None
        first = self.buffer[0]
        body = bytes(self.buffer[pos:pos + length])
        del self.buffer[:pos + length]
        return self.packet_class(first, body)

    def recv_packet(self, timeout=DEFAULT_TIMEOUT) -> Packet:
        """Next packet; ConnectionClosed if the broker closes, TimeoutError if nothing comes."""
        deadline = time.monotonic() + timeout
        while True:
            pkt = self._take_packet()
            if pkt is not None:
                return pkt
            if self.closed_by_peer:
                raise ConnectionClosed()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete packet from the broker within %.1fs" % timeout)
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.closed_by_peer = True
            self.buffer += chunk

    def expect(self, ptype, timeout=DEFAULT_TIMEOUT) -> Packet:
        try:
            pkt = self.recv_packet(timeout)
        except ConnectionClosed:
            raise AssertionError("connection closed while waiting for %s" % NAMES[ptype])
        assert pkt.type == ptype, "expected %s, got %r" % (NAMES[ptype], pkt)
        return pkt

    def wait_closed(self, timeout=DEFAULT_TIMEOUT):
        """Read until the broker closes the connection; return the packets that came first.

        Fails if the connection is still open after `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        packets = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    "broker did not close the connection within %.1fs (received %r)"
                    % (timeout, packets))
            try:
                packets.append(self.recv_packet(remaining))
            except ConnectionClosed:
                return packets
            except TimeoutError:
                continue

    def is_open(self, timeout=0.2) -> bool:
        """True if the connection is still open: a PINGREQ gets a PINGRESP."""
        try:
            self.send(PINGREQ_PACKET)
            return self.recv_packet(timeout).type == PINGRESP
        except (ConnectionClosed, OSError):
            return False

    # -- conveniences -----------------------------------------------------------------------
    def connect(self, client_id="", timeout=DEFAULT_TIMEOUT, **kwargs) -> Packet:
        """Send CONNECT and return the CONNACK packet (whatever its return code)."""
        self.send(connect_packet(client_id, **kwargs))
        return self.expect(CONNACK, timeout)

    def subscribe(self, filters, packet_id=1, timeout=DEFAULT_TIMEOUT):
        """Send SUBSCRIBE; return the SUBACK return codes (packet id checked)."""
        self.send(subscribe_packet(packet_id, filters))
        ack = self.expect(SUBACK, timeout)
        assert ack.packet_id == packet_id  # [MQTT-3.8.4-2]
        return ack.codes

    def publish(self, topic, payload=b"", qos=0, retain=False, packet_id=1,
                timeout=DEFAULT_TIMEOUT):
        """Publish and complete the QoS flow as sender."""
        self.send(publish_packet(topic, payload, qos, retain, packet_id=packet_id))
        if qos == 1:
            assert self.expect(PUBACK, timeout).packet_id == packet_id
        elif qos == 2:
            assert self.expect(PUBREC, timeout).packet_id == packet_id
            self.send(ack_packet(PUBREL, packet_id))
            assert self.expect(PUBCOMP, timeout).packet_id == packet_id

    def disconnect(self):
        try:
            self.send(DISCONNECT_PACKET)
        except OSError:
            pass
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
