"""A tiny blocking MQTT 3.1.1 client on a plain socket, and leak probes, for tests/plugin."""
from __future__ import annotations

import os
import socket
import threading

from broker.const import CONNACK, PINGREQ, PUBACK, PUBLISH, SUBACK

from packets import (
    Packet, decode, encode_ack, encode_connect, encode_publish, encode_simple, encode_subscribe,
)

TIMEOUT = 5.0


class Client:
    def __init__(self, port: int, client_id: str = "", host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=TIMEOUT)
        self.buf = b""
        self.mid = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def recv(self) -> Packet | None:
        """The next packet, or None when the broker closed the connection."""
        while True:
            if len(self.buf) >= 2:
                n, mult, pos = 0, 1, 1
                while pos < len(self.buf):
                    byte = self.buf[pos]
                    n += (byte & 0x7F) * mult
                    mult *= 128
                    pos += 1
                    if not byte & 0x80:
                        break
                if not self.buf[pos - 1] & 0x80 and len(self.buf) >= pos + n:
                    packet = decode(self.buf[0], self.buf, pos, pos + n)
                    self.buf = self.buf[pos + n:]
                    return packet
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk

    def expect(self, packet_type: int) -> Packet:
        p = self.recv()
        assert p is not None, "connection closed while waiting for packet type %d" % packet_type
        assert p.type == packet_type, "expected packet type %d, got %d" % (packet_type, p.type)
        return p

    def connect(self, client_id: str = "", clean_session: bool = True) -> int:
        """Send CONNECT; the CONNACK return code."""
        self.sock.sendall(encode_connect(client_id, clean_session))
        return self.expect(CONNACK).return_code

    def subscribe(self, topic: str, qos: int = 0) -> int:
        self.mid += 1
        self.sock.sendall(encode_subscribe(self.mid, [(topic.encode(), qos)]))
        return self.expect(SUBACK).codes[0]

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Publish; at QoS 1, wait for the PUBACK (the broker has routed the message)."""
        self.mid += 1
        self.sock.sendall(encode_publish(topic.encode(), payload, qos, retain, mid=self.mid))
        if qos == 1:
            assert self.expect(PUBACK).mid == self.mid

    def ping(self) -> None:
        self.sock.sendall(encode_simple(PINGREQ))

    def puback(self, mid: int) -> None:
        self.sock.sendall(encode_ack(PUBACK, mid))

    def message(self) -> Packet:
        return self.expect(PUBLISH)


def first_message_after_subscribing(port: int, topic_filter: str, sentinel_topic: str
                                    ) -> Packet:
    """Subscribe, then publish a sentinel: a retained message, if any, arrives first."""
    with Client(port) as sub, Client(port) as pub:
        sub.connect("sub")
        pub.connect("pub")
        sub.subscribe(topic_filter, 0)
        pub.publish(sentinel_topic, b"sentinel")
        return sub.message()


def open_fds() -> set[tuple[str, str]]:
    """(fd, what it points at) for every open descriptor of this process."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add((fd, os.readlink("/proc/self/fd/" + fd)))
        except OSError:
            pass  # the descriptor listdir itself used, closed by now
    return out


def threads() -> set[threading.Thread]:
    return set(threading.enumerate())
