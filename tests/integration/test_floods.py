"""Floods, storms, slow and silent peers and garbage against a running broker (both runtimes).

After each attack a normal client must still be served, and the broker's memory must be back
within a bound of what it used before: resident memory (VmRSS) for CPython, the heap figure the
broker publishes as $SYS/broker/heap/current for MicroPython, on either port (sys_interval 1
here; the broker collects garbage before it reads the figure; the smallest of a few samples is
compared).
"""

from __future__ import annotations

import random
import socket
import struct
import time

import pytest

from raw_mqtt import (
    CONNACK, PUBACK, PUBLISH, ConnectionClosed, RawClient, connect_packet, publish_packet,
    remaining_length,
)

pytestmark = [pytest.mark.integration, pytest.mark.own_broker]

WAIT = 5.0
SYS = ["sys_interval 1"]  # MicroPython's heap figure comes from $SYS
RSS_BOUND = 4 * 1024 * 1024  # CPython: resident memory may not grow by more than this
HEAP_BOUND = 24 * 1024  # MicroPython: nor the heap by more than this (of 256 KB)
HEAP_KINDS = ("micropython", "wasm32")  # brokers whose heap $SYS reports (not their RSS)
HEAP_TOPIC = "$SYS/broker/heap/current"


def _rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS for %d" % pid)


def _heap_sample(broker):
    c = RawClient(broker.host, broker.port, timeout=WAIT)
    try:
        assert c.connect("heap-probe").return_code == 0
        c.subscribe([(HEAP_TOPIC, 0)])
        p = c.recv_packet(WAIT)  # the current value comes at once, as if retained
        assert p.type == PUBLISH and p.topic == HEAP_TOPIC, p
        return int(p.payload)
    finally:
        c.disconnect()


def memory(broker):
    """The broker's memory in bytes, as this file compares it (see the module docstring)."""
    if broker.kind in HEAP_KINDS:
        samples = []
        for _ in range(2):
            samples.append(_heap_sample(broker))
            time.sleep(1.1)  # the next $SYS tick
        return min(samples)
    return _rss(broker.proc.pid)


def assert_memory_back(broker, before):
    after = memory(broker)
    bound = HEAP_BOUND if broker.kind in HEAP_KINDS else RSS_BOUND
    assert after <= before + bound, "memory grew from %d to %d bytes (bound %d)" % (
        before, after, bound)


def assert_served(broker, client_id="normal"):
    """A normal client connects, subscribes and receives its own QoS 1 message."""
    c = RawClient(broker.host, broker.port, timeout=WAIT)
    try:
        assert c.connect(client_id).return_code == 0
        assert c.subscribe([("served/" + client_id, 1)]) == [1]
        c.send(publish_packet("served/" + client_id, b"ok", qos=1, packet_id=7))
        got = {}
        while len(got) < 2:  # the PUBACK and the delivery, in either order
            p = c.recv_packet(WAIT)
            got[p.type] = p
        assert got[PUBACK].packet_id == 7
        assert got[PUBLISH].payload == b"ok"
    finally:
        c.disconnect()


def assert_no_traceback(broker):
    log = broker.log()
    assert "Traceback" not in log, log


def closed_without_answer(sock, timeout=WAIT, refusal=b"", *others):
    """True when the broker closes sock (EOF or reset) having sent nothing but refusal (or
    one of others)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(64)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    except socket.timeout:
        return False
    return data in (b"", refusal) + others


# --------------------------------------------------------------------------------------------

def test_connection_flood_beyond_max_connections(broker_factory):
    b = broker_factory(["max_connections 4"] + SYS)
    keep = [RawClient(b.host, b.port, timeout=WAIT) for _ in range(2)]
    flood = []
    try:
        for i, c in enumerate(keep):
            assert c.connect("keep-%d" % i).return_code == 0
        assert keep[0].subscribe([("flood/t", 1)]) == [1]
        before = memory(b)
        accepted = refused = closed = 0
        for i in range(60):
            try:
                s = socket.create_connection((b.host, b.port), timeout=WAIT)
            except OSError:
                closed += 1  # the listen backlog is full: refused before accept
                continue
            flood.append(s)
            try:
                s.sendall(connect_packet("flood-%d" % i))
            except OSError:
                closed += 1
        for s in flood:
            s.settimeout(WAIT)
            try:
                head = s.recv(4)
            except socket.timeout:
                raise AssertionError("flood connection %d left unanswered" % flood.index(s))
            except OSError:
                head = b""
            if not head:
                closed += 1
            elif head == bytes([CONNACK << 4, 2, 0, 0]):
                accepted += 1
            else:
                # [MQTT-3.2.2-5]: CONNACK 0x03 "server unavailable", then the close
                assert head == bytes([CONNACK << 4, 2, 0, 3]), head
                assert closed_without_answer(s)
                refused += 1
        assert accepted == 2  # room for max_connections 4 beside the two kept clients
        assert accepted + refused + closed == 60
        assert refused > 0
        # the clients already connected kept their service meanwhile
        keep[1].publish("flood/t", b"during", qos=1)
        p = keep[0].recv_packet(WAIT)
        assert p.type == PUBLISH and p.payload == b"during"
    finally:
        for s in flood:
            s.close()
    for c in keep:
        c.disconnect()
    assert_served(b)
    assert_memory_back(b, before)
    assert_no_traceback(b)


def test_reconnect_storm_of_one_client_id_leaks_nothing(broker_factory):
    b = broker_factory(SYS)

    def storm(n, tag):
        old = None
        for i in range(n):
            c = RawClient(b.host, b.port, timeout=WAIT)
            # persistent and clean sessions in turn, the last one persistent and subscribed
            ack = c.connect("storm", clean_session=bool(i % 2))
            assert ack.return_code == 0, ack
            if old is not None:
                if i % 50 == 0:
                    # [MQTT-3.1.4-2]: the server disconnects the existing client
                    assert old.wait_closed(WAIT) == []
                old.close()
            if i % 2 == 0:
                assert c.subscribe([("storm/" + tag, 1)]) == [1]
            old = c
        return old

    storm(51, "warm").close()
    before = memory(b)
    last = storm(401, "t")
    pub = RawClient(b.host, b.port, timeout=WAIT)
    try:
        assert pub.connect("storm-pub").return_code == 0
        pub.publish("storm/t", b"to the last one", qos=1)
        p = last.recv_packet(WAIT)
        assert p.type == PUBLISH and p.payload == b"to the last one", p
    finally:
        pub.disconnect()
        last.disconnect()
    assert_served(b)
    assert_memory_back(b, before)
    assert_no_traceback(b)


def test_silent_and_half_connect_clients_dropped_after_connect_timeout(broker_factory):
    b = broker_factory(["connect_timeout 1"] + SYS)
    before = memory(b)
    silent = [socket.create_connection((b.host, b.port), timeout=WAIT) for _ in range(5)]
    partial = socket.create_connection((b.host, b.port), timeout=WAIT)
    partial.sendall(connect_packet("partial")[:6])
    start = time.monotonic()
    try:
        assert_served(b, "during")  # the silent ones hold nobody up
        for s in silent + [partial]:
            assert closed_without_answer(s), "still open after %.1fs" % (
                time.monotonic() - start)
        waited = time.monotonic() - start
        assert 0.9 <= waited < 4.0, waited
    finally:
        for s in silent + [partial]:
            s.close()
    b.wait_log(lambda text: text.count("sent no CONNECT in time") >= 6)
    assert_served(b)
    assert_memory_back(b, before)


def test_declared_remaining_length_above_max_packet_size_refused_before_body(broker_factory):
    b = broker_factory(["max_packet_size 1024"] + SYS)
    before = memory(b)
    # after CONNECT: a PUBLISH header announcing 100,000 bytes, and not one byte of its body
    c = RawClient(b.host, b.port, timeout=WAIT)
    assert c.connect("big").return_code == 0
    start = time.monotonic()
    c.send(bytes([PUBLISH << 4]) + remaining_length(100000))
    assert c.wait_closed(WAIT) == []
    assert time.monotonic() - start < 2.0
    c.close()
    # a CONNECT announcing more than the limit gets no CONNACK either
    s = socket.create_connection((b.host, b.port), timeout=WAIT)
    s.sendall(bytes([0x10]) + remaining_length(5000))
    assert closed_without_answer(s)
    s.close()
    # the largest packet the limit allows still goes through
    payload = b"p" * 1014
    assert len(publish_packet("big/t", payload, qos=0)) == 1024
    sub = RawClient(b.host, b.port, timeout=WAIT)
    try:
        assert sub.connect("big-sub").return_code == 0
        assert sub.subscribe([("big/t", 0)]) == [0]
        sub.send(publish_packet("big/t", payload, qos=0))
        p = sub.recv_packet(WAIT)
        assert p.type == PUBLISH and p.payload == payload
    finally:
        sub.disconnect()
    assert_served(b)
    assert_memory_back(b, before)
    assert_no_traceback(b)


def test_trickling_client_cannot_hold_a_buffer(broker_factory):
    b = broker_factory(["max_packet_size 1024"] + SYS)
    before = memory(b)
    # A header announcing one byte over the limit, trickled a byte at a time: refused as soon
    # as the length is complete, with no body sent.
    c = RawClient(b.host, b.port, timeout=WAIT)
    assert c.connect("trickle-over").return_code == 0
    for byte in bytes([PUBLISH << 4]) + remaining_length(1025):
        c.send(bytes([byte]))
        time.sleep(0.05)
    assert c.wait_closed(WAIT) == []
    c.close()
    # A packet within the limit trickled so slowly that it never completes: bytes arriving do
    # not count as activity, only whole packets do [MQTT-3.1.2-24], so keepalive 1 s drops it
    # after 1.5 s while it still trickles.
    slow = RawClient(b.host, b.port, timeout=WAIT)
    assert slow.connect("trickle-slow", keepalive=1).return_code == 0
    stream = publish_packet("trickle/t", b"s" * 900)
    start = time.monotonic()
    dropped = False
    for byte in stream:
        try:
            slow.send(bytes([byte]))
        except OSError:
            dropped = True
            break
        if not slow.is_open(0.0) and slow.closed_by_peer:
            dropped = True
            break
        time.sleep(0.1)
        if time.monotonic() - start > 6.0:
            break
    if not dropped:
        try:
            slow.recv_packet(0.5)
        except ConnectionClosed:
            dropped = True
        except TimeoutError:
            pass
    assert dropped, "a trickling client was still connected after %.1fs" % (
        time.monotonic() - start)
    assert time.monotonic() - start < 4.0
    slow.close()
    # Trickled at a pace keepalive allows, a packet within the limit arrives whole.
    sub = RawClient(b.host, b.port, timeout=WAIT)
    pub = RawClient(b.host, b.port, timeout=WAIT)
    try:
        assert sub.connect("trickle-sub").return_code == 0
        assert sub.subscribe([("trickle/ok", 0)]) == [0]
        assert pub.connect("trickle-pub").return_code == 0
        for byte in publish_packet("trickle/ok", b"slowly"):
            pub.send(bytes([byte]))
            time.sleep(0.01)
        p = sub.recv_packet(WAIT)
        assert p.type == PUBLISH and p.payload == b"slowly"
    finally:
        sub.disconnect()
        pub.disconnect()
    assert_served(b)
    assert_memory_back(b, before)
    assert_no_traceback(b)


GARBAGE = [
    b"GET / HTTP/1.1\r\nHost: broker\r\n\r\n",  # a web scanner
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(32),  # a TLS ClientHello
    b"SSH-2.0-OpenSSH_9.2\r\n",
    b"\x00" * 64,
    b"\xff" * 64,
    b"\x10\xff\xff\xff\xff\x7f",  # a remaining length of five bytes [MQTT-2.2.3]
    b"\x10\x0c\x00\x04MQTX\x04\x02\x00\x3c\x00\x00",  # a protocol name that is not MQTT
    b"\x30\x05\x00\x03a/b",  # PUBLISH before CONNECT [MQTT-3.1.0-1]
]


def test_garbage_and_port_scanner_connections(broker_factory):
    # The random packets may announce bodies longer than what follows: the broker waits for
    # the rest, as a slow client's would arrive, until the connect timeout.
    b = broker_factory(["connect_timeout 1"] + SYS)
    keep = RawClient(b.host, b.port, timeout=WAIT)
    assert keep.connect("keep").return_code == 0
    assert keep.subscribe([("scan/t", 0)]) == [0]
    before = memory(b)
    rng = random.Random(6)
    for round_ in range(3):
        # a connect scan: open and close at once, some with a reset instead of a FIN
        for i in range(20):
            s = socket.create_connection((b.host, b.port), timeout=WAIT)
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        # garbage, fixed and random, each answered with a close and nothing else
        payloads = list(GARBAGE)
        for _ in range(10):
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
            payloads.append(bytes([0x20 | rng.randrange(16)]) + junk)  # never a CONNECT
        socks = []
        try:
            for junk in payloads:
                s = socket.create_connection((b.host, b.port), timeout=WAIT)
                socks.append(s)
                s.sendall(junk)
            for s, junk in zip(socks, payloads):
                # a CONNECT for another protocol may get CONNACK 0x01 first [MQTT-3.1.2-2];
                # on MicroPython, a socket accepted while the others' garbage fills the heap
                # CONNACK 0x03 (server unavailable) before anything of it is read
                assert closed_without_answer(s, WAIT, bytes([CONNACK << 4, 2, 0, 1]),
                                             bytes([CONNACK << 4, 2, 0, 3])), junk
        finally:
            for s in socks:
                s.close()
        # half a CONNECT, then a reset
        s = socket.create_connection((b.host, b.port), timeout=WAIT)
        s.sendall(connect_packet("half")[:7])
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    keep.send(publish_packet("scan/t", b"still here"))
    p = keep.recv_packet(WAIT)
    assert p.type == PUBLISH and p.payload == b"still here"
    keep.disconnect()
    assert_served(b)
    assert_memory_back(b, before)
    assert_no_traceback(b)
