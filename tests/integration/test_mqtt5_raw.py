"""MQTT 5.0 rules checked byte by byte through a raw socket (raw_mqtt5.RawClient5).

The packets here are those a v5 client library will not send: malformed properties, properties
in the wrong packet, a Topic Alias out of range, a PUBREL for nothing, a second CONNECT.
Normative statements are cited as [MQTT-x.y.z-n] (OASIS MQTT Version 5.0); where the statement
has no number, the section is cited. Every expectation was checked against mosquitto 2.0
(BROKER_UNDER_TEST=mosquitto); where mosquitto's answer is one the specification leaves open,
the test asserts mosquitto's answer and says so, unless issue 17 asks for the other answer the
specification allows: then the test asserts ours, and mosquitto's for mosquitto (expect()).
"""

from __future__ import annotations

import struct

import pytest

from conftest import V5_HEAP
from raw_mqtt import PUBCOMP, PUBLISH, PUBREC, PUBREL, field, packet
from raw_mqtt5 import (
    ASSIGNED_CLIENT_IDENTIFIER, CONTENT_TYPE, DISCONNECT, MALFORMED_PACKET,
    MAXIMUM_PACKET_SIZE, MAXIMUM_QOS, NO_MATCHING_SUBSCRIBERS, PACKET_ID_NOT_FOUND,
    PROTOCOL_ERROR, RECEIVE_MAXIMUM, RESPONSE_TOPIC,
    RETAIN_AVAILABLE, SESSION_EXPIRY_INTERVAL, SUCCESS, TOPIC_ALIAS, TOPIC_ALIAS_INVALID,
    TOPIC_ALIAS_MAXIMUM, USER_PROPERTY, RawClient5, ack5_packet, connect5_packet,
    publish5_packet,
)

pytestmark = [pytest.mark.integration, pytest.mark.heap(V5_HEAP)]


@pytest.fixture
def raw5(broker):
    """Factory: raw5(client_id) -> a RawClient5 connected with a v5 CONNECT (CONNACK 0x00
    checked, kept as .connack); closed at teardown."""
    made = []

    def make(client_id):
        c = RawClient5(broker.host, broker.port)
        made.append(c)
        c.connack = c.connect(client_id)
        assert c.connack.reason == SUCCESS, c.connack
        return c

    yield make
    for c in made:
        c.close()


def expect(broker, ours, mosquitto):
    """The answer this project chose where the specification allows mosquitto's too."""
    return mosquitto if broker.kind == "mosquitto" else ours


def subscribed_watcher(raw5, topic_filter):
    """A v5 client subscribed to topic_filter at QoS 0."""
    watcher = raw5("watcher")
    assert watcher.subscribe([(topic_filter, 0)]) == [0]
    return watcher


def assert_only_marker_arrives(watcher, marker_topic):
    """The watcher publishes a marker to itself: the first PUBLISH it receives must be the
    marker, so nothing sent before it (by a connection the broker closed) was delivered."""
    watcher.send(publish5_packet(marker_topic, b"marker"))
    first = watcher.expect(PUBLISH)
    assert first.topic == marker_topic, "delivered although refused: %r" % first


def closing_disconnect_reason(client):
    """Read until the broker closes the connection; the reason code of the DISCONNECT it sent
    before closing, or None if it closed without one."""
    packets = client.wait_closed()
    assert [p.type for p in packets] in ([], [DISCONNECT]), packets
    return packets[0].reason if packets else None


# --------------------------------------------------------------------------------------------
# CONNECT / CONNACK


def test_v5_connect_gets_v5_connack(broker, raw5, raw_client):
    ack = raw5("v5-connack").connack
    # [MQTT-3.1.4-5] accepted with 0x00; [MQTT-3.2.2-2] Clean Start 1 -> Session Present 0
    assert (ack.reason, ack.session_present) == (SUCCESS, False)
    # [MQTT-3.2.2-1] reserved flag bits 0; the v5 CONNACK has its Property Length (section
    # 3.2.2.3.1), and the properties fill the packet exactly (Packet5 checks it)
    assert ack.body[0] == 0x00
    assert len(ack.body) >= 3
    ids = [prop_id for prop_id, _ in ack.properties]
    # only User Property may appear more than once (section 3.2.2.3)
    repeated = [i for i in set(ids) if ids.count(i) > 1 and i != USER_PROPERTY]
    assert repeated == [], ack.properties
    # an id was given: nothing to assign [MQTT-3.2.2-16]
    assert ack.property(ASSIGNED_CLIENT_IDENTIFIER) is None
    # the same broker still answers a 3.1.1 CONNECT with a 3.1.1 CONNACK: two bytes, no
    # properties
    ack = raw_client(broker).connect("v311-connack")
    assert ack.return_code == 0 and ack.body == b"\x00\x00"


def test_connack_properties_have_legal_values(raw5):
    ack = raw5("v5-props").connack
    # each is optional; where present it must hold a value the specification allows
    # (sections 3.2.2.3.3, 3.2.2.3.4, 3.2.2.3.5, 3.2.2.3.6): a Receive Maximum or Maximum
    # Packet Size of 0 is a Protocol Error, Maximum QoS and Retain Available are 0 or 1
    assert ack.property(RECEIVE_MAXIMUM, 65535) > 0
    assert ack.property(MAXIMUM_PACKET_SIZE, 1) > 0
    assert ack.property(MAXIMUM_QOS, 0) in (0, 1)
    assert ack.property(RETAIN_AVAILABLE, 0) in (0, 1)
    assert 0 <= ack.property(TOPIC_ALIAS_MAXIMUM, 0) <= 65535


def test_second_connect_closes_without_connack(raw5):
    c = raw5("twice")
    c.send(connect5_packet("twice"))
    # [MQTT-3.1.0-2] a second CONNECT is a Protocol Error and the connection is closed, with no
    # second CONNACK [MQTT-3.2.0-2]. The DISCONNECT before the close is a MAY (section 4.13.1);
    # mosquitto 2.0 closes without one: if one is sent, its reason is 0x82 (Protocol Error).
    assert closing_disconnect_reason(c) in (None, PROTOCOL_ERROR)


# --------------------------------------------------------------------------------------------
# Malformed properties and properties where they may not be


# Property bytes (after the Property Length) that cannot be parsed, and a PUBLISH whose
# Property Length runs past the end of the packet (section 1.2: a Malformed Packet).
MALFORMED = {
    "property id 0x00": publish5_packet("bad/t", b"x", properties=b"\x00\x01"),
    "string past the Property Length": publish5_packet(
        "bad/t", b"x", properties=b"\x03\x00\x09ab"),
    "Property Length past the packet": packet(PUBLISH, 0, field("bad/t") + b"\x05\x03\x00"),
}


@pytest.mark.parametrize("bad", sorted(MALFORMED))
def test_malformed_property_gets_disconnect_0x81(raw5, bad):
    watcher = subscribed_watcher(raw5, "bad/#")
    c = raw5("malformed")
    c.send(MALFORMED[bad])
    # [MQTT-4.13.1-1] a Malformed Packet closes the connection; a v5 server sends DISCONNECT
    # 0x81 (Malformed Packet) first (section 4.13.1), as mosquitto 2.0 does: never a silent
    # close
    assert c.disconnected_with() == MALFORMED_PACKET
    assert_only_marker_arrives(watcher, "bad/marker")


@pytest.mark.parametrize("prop", [(SESSION_EXPIRY_INTERVAL, 10),
                                  (ASSIGNED_CLIENT_IDENTIFIER, "mine")],
                         ids=["Session Expiry Interval", "Assigned Client Identifier"])
def test_property_not_allowed_in_publish_gets_disconnect_0x81(raw5, prop):
    watcher = subscribed_watcher(raw5, "bad/#")
    c = raw5("wrong-packet")
    c.send(publish5_packet("bad/t", b"x", properties=[prop]))
    # section 2.2.2.2: "A Control Packet which contains an Identifier which is not valid for
    # its packet type ... is a Malformed Packet": DISCONNECT 0x81, as mosquitto 2.0 sends
    # (not 0x82), then the close [MQTT-4.13.1-1]
    assert c.disconnected_with() == MALFORMED_PACKET
    assert_only_marker_arrives(watcher, "bad/marker")


@pytest.mark.parametrize("prop", [(CONTENT_TYPE, "text/plain"), (RESPONSE_TOPIC, "re/t")],
                         ids=["Content Type", "Response Topic"])
def test_duplicate_property_in_publish_closes_connection(raw5, prop):
    watcher = subscribed_watcher(raw5, "bad/#")
    c = raw5("duplicate")
    c.send(publish5_packet("bad/t", b"x", properties=[prop, prop]))
    # sections 3.3.2.3.9 and 3.3.2.3.5: "It is a Protocol Error to include the Content Type
    # (Response Topic) more than once": the connection is closed [MQTT-4.13.1-1] and the
    # message not delivered. mosquitto 2.0.11 closes without a DISCONNECT here; a DISCONNECT,
    # if sent, says 0x82 (Protocol Error).
    assert closing_disconnect_reason(c) in (None, PROTOCOL_ERROR)
    assert_only_marker_arrives(watcher, "bad/marker")


# --------------------------------------------------------------------------------------------
# Topic Alias


def test_topic_alias_zero_gets_disconnect(broker, raw5):
    watcher = subscribed_watcher(raw5, "bad/#")
    c = raw5("alias-zero")
    c.send(publish5_packet("bad/t", b"x", properties=[(TOPIC_ALIAS, 0)]))
    # [MQTT-3.3.2-8] a sender MUST NOT send Topic Alias 0; section 3.3.2.3.4 names 0x94
    # (Topic Alias invalid) for the receiver's DISCONNECT, which this broker sends; mosquitto
    # 2.0 sends 0x81 (Malformed Packet) for 0 (and 0x94 only above its maximum, below): the
    # reason code of a DISCONNECT is not a MUST (section 4.13.1).
    assert c.disconnected_with() == expect(broker, TOPIC_ALIAS_INVALID, MALFORMED_PACKET)
    assert_only_marker_arrives(watcher, "bad/marker")


def test_topic_alias_above_maximum_gets_disconnect_0x94(raw5):
    watcher = subscribed_watcher(raw5, "bad/#")
    c = raw5("alias-big")
    # absent, the Topic Alias Maximum is 0: no alias at all is allowed [MQTT-3.2.2-18]
    too_big = c.connack.property(TOPIC_ALIAS_MAXIMUM, 0) + 1
    c.send(publish5_packet("bad/t", b"x", properties=[(TOPIC_ALIAS, too_big)]))
    # [MQTT-3.3.2-9] past the Topic Alias Maximum of the CONNACK: section 3.3.2.3.4, DISCONNECT
    # 0x94 (Topic Alias invalid), then the close [MQTT-4.13.1-1]
    assert c.disconnected_with() == TOPIC_ALIAS_INVALID
    assert_only_marker_arrives(watcher, "bad/marker")


# --------------------------------------------------------------------------------------------
# Acknowledgements


def test_pubrel_for_unknown_packet_id_gets_pubcomp(broker, raw5):
    c = raw5("pubrel-unknown")
    c.send(ack5_packet(PUBREL, 0x4242))
    comp = c.expect(PUBCOMP)
    # [MQTT-4.3.3-11] a PUBREL is answered by a PUBCOMP with its Packet Identifier, here with
    # 0x92 (Packet Identifier not found, section 3.7.2.1), as issue 17 asks; mosquitto 2.0
    # answers 0x00 (a PUBREL repeated after a reconnect is not an error to it).
    unknown = expect(broker, PACKET_ID_NOT_FOUND, SUCCESS)
    assert (comp.packet_id, comp.reason) == (0x4242, unknown)
    # the short form with no reason code (section 3.6.2.1: 0x00) is answered the same way
    c.send(packet(PUBREL, 0x02, struct.pack("!H", 0x4243)))
    comp = c.expect(PUBCOMP)
    assert (comp.packet_id, comp.reason) == (0x4243, unknown)
    assert c.is_open()


def test_qos2_publish_without_subscribers_gets_pubrec_0x10(broker, raw5):
    c = raw5("q2-nobody")
    c.send(publish5_packet("nobody/q2", b"x", qos=2, packet_id=9))
    rec = c.expect(PUBREC)
    # section 3.5.2.1: 0x10 (No matching subscribers) is a MAY, which this broker sends as it
    # does in a PUBACK; mosquitto 2.0 sends it in a PUBACK (test_mqtt5_clients) but answers a
    # QoS 2 PUBLISH with 0x00. Below 0x80, the exchange goes on [MQTT-4.3.3-11].
    assert (rec.packet_id, rec.reason) == (9, expect(broker, NO_MATCHING_SUBSCRIBERS, SUCCESS))
    c.send(ack5_packet(PUBREL, 9))
    comp = c.expect(PUBCOMP)
    assert (comp.packet_id, comp.reason) == (9, SUCCESS)  # [MQTT-4.3.3-11]

