"""Protocol rules checked byte by byte through a raw socket (raw_mqtt.RawClient).

These are the cases a well-behaved client library will not produce: packets out of order,
unsupported protocol levels, silent clients, unacknowledged deliveries.
"""

from __future__ import annotations

import time

import pytest

from raw_mqtt import (
    CONNACK, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, UNSUBACK,
    ack_packet, connect_packet, publish_packet, unsubscribe_packet, PINGREQ_PACKET,
)

pytestmark = pytest.mark.integration


def test_publish_before_connect_closes_connection(broker, raw_client):
    c = raw_client(broker)
    c.send(publish_packet("early/t", b"too soon", qos=0))
    # [MQTT-3.1.0-1] the first packet must be CONNECT: the broker closes without answering
    packets = c.wait_closed(timeout=5)
    assert packets == []


def test_publish_before_connect_is_not_delivered(broker, raw_client, mqtt_client):
    watcher = mqtt_client(broker, "watcher")
    watcher.subscribe("early/#", 0)
    c = raw_client(broker)
    c.send(publish_packet("early/t", b"too soon", qos=0))
    c.wait_closed(timeout=5)  # [MQTT-3.1.0-1]
    other = raw_client(broker)
    assert other.connect("marker").return_code == 0
    other.publish("early/marker", b"m")
    msgs = watcher.get_until("early/marker")
    assert [m.payload for m in msgs] == [b"m"]


def test_second_connect_closes_connection(broker, raw_client):
    c = raw_client(broker)
    ack = c.connect("twice")
    assert (ack.return_code, ack.session_present) == (0, False)
    c.send(connect_packet("twice"))
    # [MQTT-3.1.0-2] a second CONNECT is a protocol violation: disconnect, no second CONNACK
    packets = c.wait_closed(timeout=5)
    assert [p for p in packets if p.type == CONNACK] == []


def test_unsupported_protocol_level_gets_connack_0x01(broker, raw_client):
    c = raw_client(broker)
    ack = c.connect("level7", protocol_level=7)
    # [MQTT-3.1.2-2] return code 0x01 (unacceptable protocol level) and then disconnect;
    # [MQTT-3.2.2-4] Session Present 0 with a non-zero return code
    assert ack.return_code == 0x01
    assert ack.session_present is False
    assert c.wait_closed(timeout=5) == []  # [MQTT-3.2.2-5]


def test_zero_length_client_id_with_persistent_session_rejected(broker, raw_client):
    c = raw_client(broker)
    ack = c.connect("", clean_session=False)
    # [MQTT-3.1.3-8] CONNACK 0x02 (identifier rejected), then the connection is closed
    assert ack.return_code == 0x02
    assert ack.session_present is False  # [MQTT-3.2.2-4]
    assert c.wait_closed(timeout=5) == []  # [MQTT-3.2.2-5]


def test_zero_length_client_id_with_clean_session_accepted(broker, raw_client):
    a = raw_client(broker)
    b = raw_client(broker)
    # [MQTT-3.1.3-6] accepted, the server assigns a unique id to each ...
    assert a.connect("", clean_session=True).return_code == 0
    assert b.connect("", clean_session=True).return_code == 0
    # ... so neither takes the other over: both stay connected and work
    assert a.subscribe([("anon/t", 1)]) == [1]
    b.publish("anon/t", b"from b", qos=1)
    p = a.expect(PUBLISH)
    assert (p.topic, p.payload, p.qos) == ("anon/t", b"from b", 1)
    a.send(ack_packet(PUBACK, p.packet_id))
    assert a.is_open() and b.is_open()


def test_keepalive_silent_client_disconnected_and_will_published(broker, broker_kind,
                                                                 raw_client, mqtt_client):
    watcher = mqtt_client(broker, "watcher")
    watcher.subscribe("ka/#", 1)
    silent = raw_client(broker)
    chatty = raw_client(broker)
    ack = silent.connect("silent", keepalive=1, will=("ka/silent", b"timed out", 1, False))
    assert ack.return_code == 0
    t0 = time.monotonic()
    assert chatty.connect("chatty", keepalive=1).return_code == 0

    # [MQTT-3.1.2-24] no packet within 1.5 x keepalive -> disconnected "as if the network had
    # failed". Allow some slack for timer granularity. mosquitto 2.0 only runs its keepalive
    # check every 5 s, so the reference broker gets a wider window.
    limit = 7.5 if broker_kind.reference else 3.0
    closed_after = None
    pings = 0
    while True:
        elapsed = time.monotonic() - t0
        if closed_after is not None and elapsed >= 2.6:
            break
        assert elapsed < limit + 0.5, "silent client still connected after %.1fs" % elapsed
        # chatty sends a PINGREQ every 0.5 s and must survive [MQTT-3.12.4-1]
        chatty.send(PINGREQ_PACKET)
        assert chatty.expect(PINGRESP, timeout=2).type == PINGRESP
        pings += 1
        if closed_after is None:
            try:
                assert silent.wait_closed(timeout=0.5) == []
                closed_after = time.monotonic() - t0
            except AssertionError:
                pass
        else:
            time.sleep(0.5)
    assert 1.3 <= closed_after <= limit, closed_after  # not before 1.5 x keepalive
    # ... and, as for a network failure, its will is published [MQTT-3.1.2-8]
    m = watcher.get(timeout=2)
    assert (m.topic, m.payload, m.qos) == ("ka/silent", b"timed out", 1)
    assert pings >= 5 and chatty.is_open()


def test_unacknowledged_qos1_redelivered_with_dup_and_same_packet_id(broker, raw_client):
    r = raw_client(broker)
    assert r.connect("redeliver", clean_session=False).return_code == 0
    assert r.subscribe([("redo/t", 1)]) == [1]
    pub = raw_client(broker)
    assert pub.connect("redo-pub").return_code == 0
    pub.publish("redo/t", b"please ack", qos=1)
    first = r.expect(PUBLISH)
    assert (first.topic, first.payload, first.qos, first.dup) == ("redo/t", b"please ack", 1, False)
    r.disconnect()  # without PUBACK

    r2 = raw_client(broker)
    ack = r2.connect("redeliver", clean_session=False)
    assert (ack.return_code, ack.session_present) == (0, True)  # [MQTT-3.2.2-2]
    again = r2.expect(PUBLISH)
    # [MQTT-4.4.0-1] re-sent with its original packet identifier; [MQTT-3.3.1-1] DUP = 1
    assert again.packet_id == first.packet_id
    assert (again.topic, again.payload, again.qos, again.dup) == ("redo/t", b"please ack", 1, True)
    r2.send(ack_packet(PUBACK, again.packet_id))
    r2.disconnect()

    # once acknowledged it is gone: the next reconnect gets only a new message
    r3 = raw_client(broker)
    ack = r3.connect("redeliver", clean_session=False)
    assert (ack.return_code, ack.session_present) == (0, True)
    pub.publish("redo/t", b"fresh", qos=1, packet_id=2)
    p = r3.expect(PUBLISH)
    assert (p.payload, p.dup) == (b"fresh", False)


def test_unsuback_for_unknown_filter_echoes_packet_id(broker, raw_client):
    c = raw_client(broker)
    assert c.connect("unsub-raw").return_code == 0
    c.send(unsubscribe_packet(0x1234, ["not/subscribed", "neither/#"]))
    ack = c.expect(UNSUBACK)
    # [MQTT-3.10.4-5] UNSUBACK although nothing matched; [MQTT-3.11.2-1] same packet id
    assert ack.packet_id == 0x1234
    assert ack.body == b"\x12\x34"
    assert c.is_open()


def test_qos2_publish_flow_and_single_delivery(broker, raw_client):
    sub = raw_client(broker)
    assert sub.connect("q2-sub").return_code == 0
    assert sub.subscribe([("q2/t", 2)]) == [2]
    pub = raw_client(broker)
    assert pub.connect("q2-pub").return_code == 0
    # PUBLISH -> PUBREC -> PUBREL -> PUBCOMP, each with the same packet id [MQTT-4.3.3-1]
    pub.publish("q2/t", b"exactly once", qos=2, packet_id=77)
    p = sub.expect(PUBLISH)
    assert (p.topic, p.payload, p.qos, p.retain) == ("q2/t", b"exactly once", 2, False)
    sub.send(ack_packet(PUBREC, p.packet_id))
    rel = sub.expect(PUBREL)
    assert rel.packet_id == p.packet_id and rel.flags == 0x02  # [MQTT-3.6.1-1]
    sub.send(ack_packet(PUBCOMP, p.packet_id))
    # a resent PUBLISH (DUP) with the same id before PUBREL is not delivered twice
    pub.send(publish_packet("q2/t", b"second", qos=2, packet_id=78))
    assert pub.expect(PUBREC).packet_id == 78
    pub.send(publish_packet("q2/t", b"second", qos=2, dup=True, packet_id=78))
    assert pub.expect(PUBREC).packet_id == 78
    pub.send(ack_packet(PUBREL, 78))
    assert pub.expect(PUBCOMP).packet_id == 78
    p = sub.expect(PUBLISH)
    assert p.payload == b"second"
    sub.send(ack_packet(PUBREC, p.packet_id))
    sub.expect(PUBREL)
    sub.send(ack_packet(PUBCOMP, p.packet_id))
    # [MQTT-4.3.3-2] method B: delivered once only
    sub.send(PINGREQ_PACKET)
    assert sub.recv_packet(timeout=2).type == PINGRESP
