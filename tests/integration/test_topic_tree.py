"""Deep wildcard filters, the 200-level limit and the bounded cache of topics, against a running
broker (issue 15, items 8 and 9).

The issue's own size, 10,000 filters of 150 levels, is tools/bench/deep_filters.py: a measurement
to run by hand (a minute or so). Here the sizes are what every kind holds and what runs quickly:
the board kinds take 64 subscriptions of 128-byte filters (boards/rp2/broker.conf), half of them
from one client.
"""

from __future__ import annotations

import socket
import time

import pytest

from raw_mqtt import (
    CONNACK, PINGREQ_PACKET, PINGRESP, PUBLISH, RawClient, connect_packet, publish_packet,
    subscribe_packet, unsubscribe_packet,
)
from test_floods import _rss, assert_no_traceback, assert_served, closed_without_answer

pytestmark = pytest.mark.integration

WAIT = 5.0
BOARD_KINDS = ("micropython", "wasm32")


def _deep(kind):
    """(filters, levels, burst, filters per SUBSCRIBE) for the kind: as many filters of as many
    levels as it holds."""
    if kind in BOARD_KINDS:
        # "+/a/.../a/f29": 121 bytes of 128, half of 64 subscriptions (a client's share of the
        # table). A few per SUBSCRIBE: the 32-bit port collects garbage only between two
        # packets, and each deep filter leaves some (about 0.5 KB), which a board would collect
        # as it goes.
        return 30, 60, 60, 6
    return 4000, 150, 100, 10  # before the tree: about 95 ms per PUBLISH here, 9 s for the burst


def _filter(levels, i):
    return "/".join(["+"] + ["a"] * (levels - 2) + ["f%d" % i])


def _topic(levels, i, tag):
    """A topic only filter i matches, its first level distinct for each tag (no cache helps)."""
    return "/".join([tag] + ["a"] * (levels - 2) + ["f%d" % i])


def test_deep_wildcard_filters_do_not_hold_up_other_clients(broker_factory, broker_kind):
    # One client holds many deep wildcard filters that share no literal first level; a burst of
    # PUBLISH packets to topics they match goes to the broker; another client connecting then
    # gets its CONNACK, and its own PUBLISH round trip, within a few seconds.
    filters, levels, burst, per = _deep(broker_kind.name)
    b = broker_factory()
    deep = RawClient(b.host, b.port, timeout=WAIT)
    pub = RawClient(b.host, b.port, timeout=WAIT)
    try:
        assert deep.connect("deep").return_code == 0
        for first in range(0, filters, per):
            chunk = [(_filter(levels, i), 0) for i in range(first, min(first + per, filters))]
            assert deep.subscribe(chunk, packet_id=1 + first // per, timeout=30) == [0] * len(chunk)
        assert pub.connect("pub").return_code == 0
        pub.send(b"".join(publish_packet(_topic(levels, k % filters, "t%d" % k), b"burst")
                          for k in range(burst)))
        late = RawClient(b.host, b.port, timeout=WAIT)
        try:
            assert late.connect("late").return_code == 0  # within WAIT
            assert late.subscribe([("late/t", 1)]) == [1]
            late.send(publish_packet("late/t", b"mine", qos=1, packet_id=5))
            got = {}
            while len(got) < 2:  # the PUBACK and the delivery, in either order
                p = late.recv_packet(WAIT)
                got[p.type] = p
            assert got[PUBLISH].payload == b"mine"
        finally:
            late.disconnect()
        # the deep filters route: a QoS 1 message to the last of them arrives after the burst
        pub.publish(_topic(levels, filters - 1, "end"), b"last", qos=1, packet_id=9,
                    timeout=WAIT)
        seen = 0  # (a board may drop QoS 0 copies for a subscriber that is not reading)
        while True:
            p = deep.recv_packet(WAIT)
            assert p.type == PUBLISH, p
            first, last = p.topic.split("/")[0], p.topic.split("/")[-1]
            if p.payload == b"last":
                assert (first, last) == ("end", "f%d" % (filters - 1)), p.topic
                break
            assert last == "f%d" % (int(first[1:]) % filters), p.topic
            seen += 1
        assert seen <= burst
    finally:
        deep.close()
        pub.close()
    assert_served(b)
    assert_no_traceback(b)


def test_more_than_200_slashes_refused_as_by_mosquitto(broker_factory, broker_kind):
    # mosquitto 2.0 (TOPIC_HIERARCHY_LIMIT) serves a topic name or filter of 200 '/' (201 levels)
    # and closes the connection of a client that sends one more, in a PUBLISH, SUBSCRIBE,
    # UNSUBSCRIBE or will, as for a malformed packet (mosquitto 2.0.11 checked by
    # BROKER_UNDER_TEST=mosquitto). The board kinds need a max_topic_length above 128 for it.
    b = broker_factory(["max_topic_length 1024"] if broker_kind.name in BOARD_KINDS else [])
    ok = "/".join(["a"] * 201)
    over = ok + "/a"
    sub = RawClient(b.host, b.port, timeout=WAIT)
    try:
        assert sub.connect("deep-sub").return_code == 0
        assert sub.subscribe([(ok, 1), ("+/" * 200 + "#", 0)]) == [1, 0]
        pub = RawClient(b.host, b.port, timeout=WAIT)
        assert pub.connect("deep-pub").return_code == 0
        pub.publish(ok, b"200", qos=1)
        p = sub.recv_packet(WAIT)
        assert (p.type, p.topic, p.payload, p.qos) == (PUBLISH, ok, b"200", 1), p
        sub.send(bytes([0x40, 2, p.packet_id >> 8, p.packet_id & 0xFF]))  # PUBACK
        for packet in (publish_packet(over, b"201", qos=1, packet_id=2),
                       publish_packet("/" * 201, b"201"),
                       subscribe_packet(3, [(over, 0)]),
                       subscribe_packet(4, [("+/" * 201 + "#", 0)]),
                       unsubscribe_packet(5, [over])):
            c = RawClient(b.host, b.port, timeout=WAIT)
            assert c.connect("over").return_code == 0
            c.send(packet)
            assert c.wait_closed(WAIT) == []
            c.close()
        s = socket.create_connection((b.host, b.port), timeout=WAIT)
        s.sendall(connect_packet("will-over", will=(over, b"gone", 0, False)))
        assert closed_without_answer(s, refusal=b"")
        s.close()
        # nothing of it reached the subscriber, which is still served
        sub.send(PINGREQ_PACKET)
        assert sub.recv_packet(WAIT).type == PINGRESP
        pub.disconnect()
    finally:
        sub.disconnect()
    assert_no_traceback(b)


@pytest.mark.kinds("cpython")
def test_topics_cache_bounded_by_bytes(broker_factory):
    # Issue 15, item 9: any wildcard subscription, then 4,096 QoS 0 publishes to distinct
    # 65,000-byte topics, kept 260 MB in CPython's cache of topics (mosquitto: +0.2 MB).
    b = broker_factory(["sys_interval 0"])
    sub = RawClient(b.host, b.port, timeout=WAIT)
    pub = RawClient(b.host, b.port, timeout=WAIT)
    try:
        assert sub.connect("wild").return_code == 0
        assert sub.subscribe([("+/nothing", 0)]) == [0]
        assert pub.connect("long").return_code == 0
        pub.publish("warm/up", b"x", qos=1)
        before = _rss(b.proc.pid)
        filler = "x" * 64990
        for k in range(0, 4096, 64):
            pub.send(b"".join(publish_packet("%05d%s" % (i, filler), b"p")
                              for i in range(k, k + 64)))
        pub.publish("done", b"x", qos=1, timeout=30)  # after all of them were routed
        grown = _rss(b.proc.pid) - before
    finally:
        sub.disconnect()
        pub.disconnect()
    assert grown < 16 * 1024 * 1024, "resident memory grew by %d bytes" % grown
    assert_served(b)
    assert_no_traceback(b)
