"""Running out of heap on MicroPython costs one client, never the broker.

A client whose message the broker has no room to keep is refused before it is acknowledged:
its connection is closed, 3.1.1's only refusal, so that it sends the message again. A MemoryError
while serving one client closes that client the same way (Broker.feed catches it). Either way
its will is published ([MQTT-3.1.2-8]: the will is published when the network connection is
closed without a DISCONNECT; 3.1.2.5 counts a connection the server closes among those cases)
and the broker keeps serving the others.

How the heap is exhausted: the board profile bounds counts, not bytes. A clean-session client
subscribed at QoS 1 to a topic it publishes to, that never acknowledges what it is sent, makes
the broker keep a copy of every message for it: max_inflight_messages (8) in flight plus
max_queued_messages (16) queued. With PUBLISH packets of about 3.5 KB (max_packet_size is 4096)
that is some 85 KB for one session, more than a small heap holds. The heap for this test is the
smallest that starts the broker and serves a small round trip (found by bisection, so the test
follows the broker's footprint as it changes) plus a margin for a few small clients.
"""

from __future__ import annotations

import re

import pytest

from board import board_limit
from raw_mqtt import PUBACK, PUBLISH, ConnectionClosed, RawClient, ack_packet, publish_packet

pytestmark = [pytest.mark.integration, pytest.mark.kinds("micropython")]

LOW_K = 16          # bisection range for the heap, in KB
HIGH_K = 512
STEP_K = 2          # bisection resolution
MARGIN_K = 6        # above the smallest heap that serves a round trip: room for a few clients
PAYLOAD = 3500      # bytes per PUBLISH payload (the packet stays under max_packet_size 4096)

_CACHE = {}


def publish_to_self(c, topic, payload, packet_id=5, timeout=5.0):
    """c (subscribed to topic at QoS 1) publishes at QoS 1 and receives its own message.
    The PUBACK for its PUBLISH and the delivery may come in either order."""
    c.send(publish_packet(topic, payload, qos=1, packet_id=packet_id))
    got = {}
    while len(got) < 2:
        p = c.recv_packet(timeout)
        assert p.type in (PUBACK, PUBLISH) and p.type not in got, (p, got)
        got[p.type] = p
    assert got[PUBACK].packet_id == packet_id
    p = got[PUBLISH]
    assert (p.topic, p.payload, p.qos) == (topic, payload, 1)
    c.send(ack_packet(PUBACK, p.packet_id))


def _round_trip(broker, client_id, topic, timeout=5.0):
    """A small client connects, subscribes at QoS 1, publishes to itself and receives it."""
    c = RawClient(broker.host, broker.port, timeout=timeout)
    try:
        assert c.connect(client_id, timeout=timeout).return_code == 0
        assert c.subscribe([(topic, 1)], timeout=timeout) == [1]
        publish_to_self(c, topic, b"small", timeout=timeout)
        assert c.is_open(timeout=timeout)
    finally:
        c.disconnect()


def _serves(broker_factory, kind_with_heap, heap_k):
    """None if the MicroPython broker with heap_k KB starts and serves one small round trip,
    else why not."""
    b = broker_factory(start=False, kind=kind_with_heap("%dK" % heap_k))
    try:
        b.start()
        _round_trip(b, "probe", "probe/t")
        return None
    except (AssertionError, ConnectionClosed, OSError) as e:  # BrokerError is an AssertionError
        return "%r\nbroker log:\n%s" % (e, b.log())
    finally:
        b.stop()


def _smallest_serving_heap_k(broker_factory, kind_with_heap):
    """The smallest heap (KB, to STEP_K) that starts the broker and serves a round trip."""
    if "heap_k" not in _CACHE:
        lo, hi = LOW_K, HIGH_K  # lo: assumed too small, hi: must serve
        why = _serves(broker_factory, kind_with_heap, hi)
        if why is not None:
            pytest.fail("the MicroPython broker does not serve a round trip even with %dK: %s"
                        % (hi, why))
        while hi - lo > STEP_K:
            mid = (lo + hi) // 2
            if _serves(broker_factory, kind_with_heap, mid) is None:
                hi = mid
            else:
                lo = mid
        _CACHE["heap_k"] = hi
    return _CACHE["heap_k"]


@pytest.fixture
def tiny_heap_k(broker_factory, broker_kind):
    """The heap (KB) for these tests: smallest serving heap + MARGIN_K (bisected once)."""
    return _smallest_serving_heap_k(broker_factory, broker_kind.with_heap) + MARGIN_K


def test_memory_error_closes_only_that_client_with_its_will(broker_factory, broker_kind,
                                                            tiny_heap_k, record_property):
    heap_k = tiny_heap_k
    record_property("heap", "%dK" % heap_k)
    broker = broker_factory(kind=broker_kind.with_heap("%dK" % heap_k))
    clients = []

    def client():
        c = RawClient(broker.host, broker.port, timeout=10)
        clients.append(c)
        return c

    try:
        # someone who watches for the will, and stays connected throughout
        watcher = client()
        assert watcher.connect("oom-watcher").return_code == 0
        assert watcher.subscribe([("oom/will", 1)]) == [1]

        # the client that exhausts the heap: it subscribes to what it publishes and never
        # acknowledges a delivery, so the broker stores every message for it
        victim = client()
        ack = victim.connect("oom-victim", will=("oom/will", b"out of memory", 1, False))
        assert ack.return_code == 0
        assert victim.subscribe([("oom/fill", 1)]) == [1]
        stored = board_limit("max_inflight_messages") + board_limit("max_queued_messages")
        payload = b"m" * PAYLOAD
        try:
            for i in range(stored + 8):
                victim.send(publish_packet("oom/fill", payload, qos=1, packet_id=i + 1))
        except OSError:
            pass  # the broker may already have closed it

        # the victim is disconnected ...
        try:
            victim.wait_closed(timeout=15)
        except AssertionError:
            pytest.fail("with heap %dK the broker stored %d messages of %d bytes for one "
                        "client without running out of memory (the heap is too large for this "
                        "test); log:\n%s" % (heap_k, stored + 8, PAYLOAD, broker.log()))
        assert broker.proc.poll() is None, (
            "the broker died (heap %dK):\n%s" % (heap_k, broker.log()))
        # ... because the heap ran out while it was being served (not for another reason): as
        # the broker refuses a message it has no room to keep before acknowledging it, or when
        # an allocation fails all the same
        log = broker.wait_log(
            lambda text: re.search(r"(?i)out of memory|MemoryError|no room to keep", text))
        assert "Traceback" not in log, log

        # its will is published to the watcher [MQTT-3.1.2-8]
        p = watcher.expect(PUBLISH, timeout=10)
        assert (p.topic, p.payload, p.qos, p.retain) == ("oom/will", b"out of memory", 1, False)
        watcher.send(ack_packet(PUBACK, p.packet_id))
        # the watcher is still served
        assert watcher.is_open(timeout=5)

        # and a new client is served from start to end: connect, subscribe, publish, receive
        fresh = client()
        assert fresh.connect("oom-after").return_code == 0
        assert fresh.subscribe([("oom/after", 1)]) == [1]
        publish_to_self(fresh, "oom/after", b"still serving", packet_id=7)
        assert fresh.is_open(timeout=5)
        assert broker.proc.poll() is None, broker.log()
    finally:
        for c in clients:
            c.close()
    # and it still stops cleanly (Ctrl-C)
    assert broker.stop() == 0, broker.log()
    assert "Traceback" not in broker.log(), broker.log()


def test_small_clients_are_served_with_the_tiny_heap(broker_factory, broker_kind, tiny_heap_k):
    """With the same heap, a few small clients all work: the margin the test above relies on
    is real, so its MemoryError comes from the big messages, not from a heap too small for
    anyone."""
    broker = broker_factory(kind=broker_kind.with_heap("%dK" % tiny_heap_k))
    clients = []
    try:
        for i in range(3):
            c = RawClient(broker.host, broker.port, timeout=10)
            clients.append(c)
            assert c.connect("small-%d" % i).return_code == 0
            assert c.subscribe([("small/%d" % i, 1)]) == [1]
        for i, c in enumerate(clients):
            publish_to_self(c, "small/%d" % i, b"x" * 100, packet_id=3)
        assert all(c.is_open(timeout=5) for c in clients)
        assert broker.proc.poll() is None, broker.log()
    finally:
        for c in clients:
            c.close()


def test_a_heap_too_small_to_load_the_broker_stops_start_up_in_one_line(broker_factory,
                                                                         broker_kind):
    # Compiling the broker from source needs far more than 48K (make mem): start-up stops with
    # status 1 and a line that says what to do, not with a MemoryError traceback.
    b = broker_factory(start=False, kind=broker_kind.with_heap("48K"))
    b.start([], wait=False)
    assert b.wait_exit() == 1
    log = b.log()
    assert "Error: out of memory loading the broker (heap " in log, log
    assert "-X heapsize" in log and "Traceback" not in log, log
