"""Plain, deterministic reproductions of what the property tests found in the core.

A finding not fixed yet is marked xfail(strict=True): the suite stays green while it is open, and
the day it is fixed the test passes, strict turns that into a failure, and whoever fixed it
removes the marker, leaving a regression test. Every finding below is fixed. Each test says
whether the finding breaks the MQTT 3.1.1 specification or is a hardening / documentation matter.
"""

from broker.const import PINGREQ, PUBLISH

from harness import Hub
import packets


def _publishes(c) -> list:
    return [(p.topic, p.payload) for p in c.recv() if p.type == PUBLISH]


# ---- 1. An in-process client that publishes from on_message breaks the route it is called from --
#
# Broker._route walks `self.hits`, the shared array SubscriptionTable.collect fills, and calls
# LocalClient.receive -> on_message for in-process subscribers in the middle of that walk. A
# publish from on_message (a request/reply handler, natural on a board) runs a nested _route that
# refills and clears the same array: the outer walk then reads None ("AttributeError: 'NoneType'
# object has no attribute 'route_qos'"), or other sessions' entries and QoS. The remaining
# subscribers of the outer message never get it. Through feed() that costs the innocent publisher
# its connection ("Internal error"); through tick() ($SYS updates, keepalive wills) and lost()
# (wills) the exception escapes the engine, and neither port catches it (the CPython loop dies;
# the MicroPython one catches only MemoryError).

def reentrant_hub(config: str = "") -> "tuple":
    """Two network subscribers to 'req' and 'resp', then an in-process client subscribed to
    'req' that answers every message on 'resp' (it subscribes last, so it is walked first)."""
    hub = Hub(config)
    subs = []
    for name in ("n1", "n2"):
        c = hub.client(name)
        c.connect(name, keepalive=0)
        c.subscribe(1, [(b"req", 0), (b"resp", 0), (b"$SYS/broker/uptime", 0), (b"will", 0)])
        c.recv()
        subs.append(c)
    loc = hub.broker.local_client("loc", lambda t, p, q, r: loc.publish(b"resp", b"re:" + p))
    loc.subscribe("req")
    loc.subscribe("$SYS/broker/uptime")  # the current value comes at once, and its answer
    loc.subscribe("will")
    for c in subs:
        c.recv()
    return hub, subs


def reentrant_route_is_fixed() -> bool:
    """Used by test_fuzz_routing to turn on its replying in-process client once this is fixed."""
    hub, subs = reentrant_hub()
    pub = hub.client("pub")
    pub.connect("pub")
    pub.send(packets.encode_publish(b"req", b"x", 0))
    return not pub.closed and "Internal error" not in hub.log_text()


def test_local_client_publishing_from_on_message_during_feed():
    hub, subs = reentrant_hub()
    pub = hub.client("pub")
    pub.connect("pub")
    pub.send(packets.encode_publish(b"req", b"x", 0))
    assert "Internal error" not in hub.log_text()
    assert not pub.closed
    for c in subs:
        assert sorted(_publishes(c)) == [(b"req", b"x"), (b"resp", b"re:x")]


def test_local_client_publishing_from_on_message_during_tick():
    hub, subs = reentrant_hub("sys_interval 1\n")
    hub.advance(1000)  # tick() publishes $SYS/broker/uptime; it must not raise
    for c in subs:
        got = _publishes(c)
        assert (b"$SYS/broker/uptime", b"1 seconds") in got
        assert (b"resp", b"re:1 seconds") in got


def test_local_client_publishing_from_on_message_on_a_will():
    hub, subs = reentrant_hub()
    w = hub.client("w")
    w.connect("w", will_topic=b"will", will_payload=b"bye")
    w.lose()  # publishes the will; must not raise
    for c in subs:
        assert sorted(_publishes(c)) == [(b"resp", b"re:bye"), (b"will", b"bye")]


# 1b. The same walk runs on_message unguarded: an exception in it (a bug in board code) ends the
# route (later subscribers lose the message), costs the innocent publisher its connection through
# feed(), and escapes the engine through tick() and lost(). A design matter rather than the
# specification; the engine's own rule is "a defect must cost one connection, never the broker".

def test_an_exception_in_on_message_stays_with_the_in_process_client():
    def boom(topic, payload, qos, retain):
        raise ValueError("a bug in the board's code")

    hub = Hub("sys_interval 1\n")
    n = hub.client("n")
    n.connect("n", keepalive=0)
    n.subscribe(1, [(b"t", 0)])
    loc = hub.broker.local_client("loc", boom)
    loc.subscribe("t")  # subscribed last: walked before n
    loc.subscribe("$SYS/broker/uptime")
    pub = hub.client("pub")
    pub.connect("pub", keepalive=0)
    pub.send(packets.encode_publish(b"t", b"x", 0))
    assert not pub.closed
    assert _publishes(n) == [(b"t", b"x")]
    hub.advance(1000)  # a $SYS update reaches boom(); tick() must not raise


# ---- 2. Keepalive is refreshed by any byte, not by a whole control packet -----------------------
#
# [MQTT-3.1.2-24]: "If the Keep Alive value is non-zero and the Server does not receive a Control
# Packet from the Client within one and a half times the Keep Alive time period, it MUST
# disconnect". Broker.feed sets conn.last_rx on every call, so a client that trickles the bytes of
# a packet it never finishes is never disconnected, and holds its gathering buffer (up to
# max_packet_size) for as long as it likes. mosquitto refreshes last_msg_in when a packet is
# complete (and, for large packets, while more than 1000 bytes are still to come).
# Arguably a deviation from the letter of the specification; a slow-loris vector on a board.

def test_keepalive_is_not_refreshed_by_a_packet_that_never_completes():
    hub = Hub()
    c = hub.client()
    c.connect("x", keepalive=2)
    part = packets.encode_publish(b"t", b"x" * 100, 0)
    for i in range(10):  # one byte a second of a PUBLISH that never completes
        c.send(part[i:i + 1])
        hub.advance(1000)
    assert c.closed  # 10 s > 1.5 x 2 s without a control packet


# ---- 3. Answers to a peer that does not read grow without limit, at quadratic cost ---------------
#
# Mandatory output (PINGRESP, PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK) is always accepted by
# Broker.reserve, and the ports keep reading a socket whose output is pending. A client that
# sends PINGREQ (or QoS 1 PUBLISH) and never reads makes conn.out grow by as much as it sends.
# Specification-conformant; a hardening matter (the "never allocates without a bound").
# Fixed in the ports: they stop reading a connection whose output is over out_soft until it
# drains (tests/integration/test_backpressure.py); the engine alone still accepts the answers.
#
# Worse, past out_soft reserve() grows the buffer to exactly `end` (no doubling), so every answer
# reallocates and copies all the pending output: quadratic time, on the one thread that serves
# everyone. Measured (CPython, no reads): with max_packet_size 100 (out_soft 4 KiB) 128 KiB of
# PINGREQ take 0.8 s, 256 KiB 4.2 s, 512 KiB 18 s; with the defaults (out_soft 256 KiB) 320 KiB
# take 3 s and 384 KiB 6.3 s. Growth past the soft cap should stay geometric (or be refused).

def test_output_buffer_growth_past_the_soft_cap_is_geometric():
    hub = Hub("max_packet_size 100\n")
    c = hub.client()
    c.connect("x")
    ping = bytearray(packets.encode_simple(PINGREQ))
    reallocations = 0
    buf = c.conn.out  # held, so that a new buffer cannot reuse its id
    for _ in range(16384):  # 32 KiB of PINGRESP, never read
        hub.broker.feed(c.conn, ping, 2)
        if c.conn.out is not buf:
            reallocations += 1
            buf = c.conn.out
    # the engine keeps answering (the ports stop reading such a client instead): every
    # PINGRESP is there, and the buffer grew by steps, not once per answer
    assert not c.closed
    assert c.conn.pending() == 2 * 16384
    assert reallocations <= 32


# ---- 4. QoS 0 output passes the soft cap once the buffer has grown -------------------------------
#
# Broker.reserve documents "Optional output (QoS 0 deliveries) is refused past the soft cap", but
# it applies the cap only when the buffer has to grow: once conn.out was enlarged (by answers, as
# in 3, or by a resumed session's in-flight window), QoS 0 deliveries are queued up to its whole
# size (65505 bytes pending with out_soft 4096 below). No new allocation, so the memory bound
# holds; the documented cap on what a slow subscriber is sent does not, and conn.out never
# shrinks while the connection lives. A documentation / design matter, not the specification.

def test_qos0_deliveries_respect_the_soft_cap_after_the_buffer_grew():
    hub = Hub("max_packet_size 100\n")
    sub = hub.client("s")
    sub.connect("s")
    sub.subscribe(1, [(b"t", 0)])
    pub = hub.client("p")
    pub.connect("p")
    sub.send(packets.encode_simple(PINGREQ) * 32768)  # 64 KiB of PINGRESP: conn.out grows
    sub.recv()  # and is read
    for _ in range(3000):
        pub.send(packets.encode_publish(b"t", b"x" * 50, 0))
    b = hub.broker
    assert sub.conn.pending() <= b.out_soft + 100
