"""MQTT 5.0 through clients no one here wrote: paho-mqtt 2.x (protocol=MQTTv5), aiomqtt
(ProtocolVersion.V5) and mosquitto_pub / mosquitto_sub -V 5.

Normative statements are cited as [MQTT-x.y.z-n] (OASIS MQTT Version 5.0); where the statement
has no number, the section is cited. Every expectation was checked against mosquitto 2.0
(BROKER_UNDER_TEST=mosquitto); where mosquitto's answer is one the specification leaves open,
the test asserts mosquitto's answer and says so.
"""

from __future__ import annotations

import asyncio

import aiomqtt
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from conftest import V5_HEAP
from test_mosquitto_clients import clients  # noqa: F401  (the mosquitto_pub/_sub fixture)

pytestmark = [pytest.mark.integration, pytest.mark.heap(V5_HEAP)]

# The PUBLISH properties a server forwards as they came (section 3.3.2.3), as paho names them.
FORWARDED = ("PayloadFormatIndicator", "ContentType", "ResponseTopic", "CorrelationData",
             "UserProperty")


def publish_properties(**values):
    """paho PUBLISH Properties: publish_properties(ContentType="text/plain", UserProperty=[...])."""
    props = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(props, name, value)
    return props


def forwarded(props):
    """{paho name: value} of the forwarded properties present in what a subscriber received."""
    return {name: getattr(props, name) for name in FORWARDED if hasattr(props, name)}


# A message with every forwarded property: three User Properties, the name "unit" twice, out of
# alphabetical order, so that a server that sorts, merges or drops one is caught.
RICH = dict(
    PayloadFormatIndicator=1,
    ContentType="application/json",
    ResponseTopic="v5/reply/42",
    CorrelationData=b"\x00\x01req-42\xff",
    UserProperty=[("unit", "C"), ("site", "lyon"), ("unit", "F")],
)


def v5_client(mqtt_client, broker, client_id, **kwargs):
    """A connected paho client speaking MQTT 5.0."""
    return mqtt_client(broker, client_id, protocol=mqtt.MQTTv5, **kwargs)


# --------------------------------------------------------------------------------------------
# CONNECT / CONNACK


def test_v5_connect_accepted_with_legal_connack_properties(broker, mqtt_client):
    c = v5_client(mqtt_client, broker, "v5-conn")
    # [MQTT-3.1.4-5] CONNACK 0x00 (Success); [MQTT-3.2.2-2] Clean Start 1 -> Session Present 0
    assert c.reason_code.value == 0
    assert c.session_present is False
    props = c.connack_properties
    # Each CONNACK property is optional; where present its value is one the specification
    # allows (sections 3.2.2.3.3 to 3.2.2.3.8): mosquitto's own numbers are not asserted.
    assert getattr(props, "ReceiveMaximum", 65535) > 0
    assert getattr(props, "MaximumPacketSize", 1) > 0
    assert getattr(props, "MaximumQoS", 0) in (0, 1)
    assert getattr(props, "RetainAvailable", 0) in (0, 1)
    assert 0 <= getattr(props, "TopicAliasMaximum", 0) <= 65535
    # the client gave an id: none is assigned [MQTT-3.2.2-16]
    assert not hasattr(props, "AssignedClientIdentifier")


def test_empty_client_id_gets_assigned_client_identifier(broker, mqtt_client):
    a = v5_client(mqtt_client, broker, "")
    b = v5_client(mqtt_client, broker, "")
    # [MQTT-3.1.3-6] [MQTT-3.1.3-7] [MQTT-3.2.2-16] each gets an Assigned Client Identifier,
    # new and not used by any other Session
    id_a = a.connack_properties.AssignedClientIdentifier
    id_b = b.connack_properties.AssignedClientIdentifier
    assert id_a and id_b and id_a != id_b
    # ... so neither took the other over: both still work
    assert a.subscribe("assigned/t", 1) == [1]
    b.publish("assigned/t", b"from b", qos=1)
    assert a.get().payload == b"from b"


# --------------------------------------------------------------------------------------------
# PUBLISH properties


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_properties_forwarded_unchanged(broker, mqtt_client, qos):
    sub = v5_client(mqtt_client, broker, "props-sub")
    pub = v5_client(mqtt_client, broker, "props-pub")
    assert sub.subscribe("props/#", 2) == [2]
    pub.publish("props/rich", b'{"t": 21.5}', qos=qos, properties=publish_properties(**RICH))
    pub.publish("props/plain", b"no properties", qos=qos)
    pub.publish("props/one", b"one", qos=qos,
                properties=publish_properties(UserProperty=[("only", "this")]))
    rich, plain, one = sub.get_many(3)
    # [MQTT-4.6.0-6] in the order published; [MQTT-3.8.4-8] at the QoS published
    assert [(m.topic, m.qos) for m in (rich, plain, one)] == [
        ("props/rich", qos), ("props/plain", qos), ("props/one", qos)]
    assert rich.payload == b'{"t": 21.5}'
    # [MQTT-3.3.2-4] Payload Format Indicator, [MQTT-3.3.2-20] Content Type, [MQTT-3.3.2-15]
    # Response Topic, [MQTT-3.3.2-16] Correlation Data, [MQTT-3.3.2-17] User Properties: all
    # unaltered; [MQTT-3.3.2-18] the User Properties in their order, the repeated name kept
    assert forwarded(rich.properties) == RICH
    # each message has its own properties: none carried over from the message before
    assert forwarded(plain.properties) == {}
    assert forwarded(one.properties) == {"UserProperty": [("only", "this")]}


def test_v311_subscriber_gets_v5_message_without_properties(broker, mqtt_client):
    old = mqtt_client(broker, "v311-sub")  # MQTT 3.1.1
    new = v5_client(mqtt_client, broker, "v5-pub")
    assert old.subscribe("mixed/#", 1) == [1]
    new.publish("mixed/to-old", b"payload only", qos=1, properties=publish_properties(**RICH))
    m = old.get()
    # a 3.1.1 PUBLISH has no properties: the payload arrives exactly, nothing of the v5
    # properties before it (issue 17: properties are dropped toward 3.x subscribers)
    assert (m.topic, m.payload, m.qos) == ("mixed/to-old", b"payload only", 1)


def test_v5_subscriber_gets_v311_message(broker, mqtt_client):
    new = v5_client(mqtt_client, broker, "v5-sub")
    old = mqtt_client(broker, "v311-pub")  # MQTT 3.1.1
    assert new.subscribe("mixed/#", 2) == [2]
    old.publish("mixed/to-new", b"from 3.1.1", qos=2)
    m = new.get()
    assert (m.topic, m.payload, m.qos) == ("mixed/to-new", b"from 3.1.1", 2)
    assert forwarded(m.properties) == {}


# --------------------------------------------------------------------------------------------
# Reason codes in acknowledgements


def test_puback_no_matching_subscribers(broker, mqtt_client):
    c = v5_client(mqtt_client, broker, "nobody-home")
    # section 3.4.2.1: 0x10 (No matching subscribers) where the server knows there are none,
    # a MAY that mosquitto 2.0 takes for QoS 1 (for QoS 2 it answers 0x00: test_mqtt5_raw)
    assert c.publish_reason("nobody/t", b"x", qos=1).value == 0x10
    # once someone subscribes: 0x00 (Success)
    assert c.subscribe("nobody/t", 0) == [0]
    assert c.publish_reason("nobody/t", b"y", qos=1).value == 0x00
    assert c.get().payload == b"y"


def test_suback_reason_codes_are_granted_qos(broker, mqtt_client):
    c = v5_client(mqtt_client, broker, "suback")
    codes = c.subscribe([("s/zero", 0), ("s/one", 1), ("s/two", 2), ("s/+/wild/#", 1)])
    # [MQTT-3.8.4-6] a reason code per filter, [MQTT-3.9.3-1] in the order of the filters,
    # [MQTT-3.8.4-7] each the QoS granted: all that was asked, as mosquitto grants it
    assert codes == [0, 1, 2, 1]


def test_unsuback_reason_codes(broker, mqtt_client):
    c = v5_client(mqtt_client, broker, "unsuback")
    assert c.subscribe("u/was", 1) == [1]
    # [MQTT-3.11.3-1] a reason code per filter, in order; [MQTT-3.11.3-2] 0x00 (Success) for
    # the subscription removed, 0x11 (No subscription existed) for the filter never subscribed
    assert c.unsubscribe(["u/was", "u/never"]) == [0x00, 0x11]
    # ... and the removed one is gone: [MQTT-3.10.4-1] unsubscribing again finds nothing
    assert c.unsubscribe("u/was") == [0x11]


# --------------------------------------------------------------------------------------------
# DISCONNECT and the will


def test_disconnect_0x04_publishes_will_and_0x00_does_not(broker, mqtt_client):
    watcher = v5_client(mqtt_client, broker, "will-watcher")
    assert watcher.subscribe("will/#", 1) == [1]
    will_props = Properties(PacketTypes.WILLMESSAGE)
    will_props.ContentType = "text/plain"
    will_props.UserProperty = [("why", "asked"), ("why", "twice")]
    normal = v5_client(mqtt_client, broker, "will-normal",
                       will=("will/normal", b"must not be sent", 1, False, will_props))
    asked = v5_client(mqtt_client, broker, "will-asked",
                      will=("will/asked", b"sent on request", 1, False, will_props))
    # [MQTT-3.14.4-3] DISCONNECT 0x00 (Normal disconnection): the will is discarded
    normal.disconnect()
    # section 3.14.2.1: 0x04 (Disconnect with Will Message): the server publishes the will
    asked.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT,
                                           "Disconnect with will message"))
    m = watcher.get()
    assert (m.topic, m.payload, m.qos, m.retain) == ("will/asked", b"sent on request", 1, False)
    # the will's properties go with it (section 3.1.3.2)
    assert forwarded(m.properties) == {"ContentType": "text/plain",
                                       "UserProperty": [("why", "asked"), ("why", "twice")]}
    # nothing from the normal disconnect: the next message is a marker published after both
    watcher.publish("will/marker", b"m", qos=1)
    assert [x.topic for x in watcher.get_until("will/marker")] == ["will/marker"]


# --------------------------------------------------------------------------------------------
# aiomqtt


@pytest.mark.asyncio
async def test_aiomqtt_v5_round_trip_with_properties(broker):
    v5 = aiomqtt.ProtocolVersion.V5
    async with aiomqtt.Client(broker.host, broker.port, identifier="aio-sub", protocol=v5) as sub, \
            aiomqtt.Client(broker.host, broker.port, identifier="aio-pub", protocol=v5) as pub:
        codes = await sub.subscribe("aio/#", qos=1)
        # [MQTT-3.8.4-7] the SUBACK's reason code is the QoS granted
        assert [code.value for code in codes] == [1]
        await pub.publish("aio/t", b"from aiomqtt", qos=1, properties=publish_properties(**RICH))
        async with asyncio.timeout(5):
            msg = await anext(sub.messages)
    assert (msg.topic.value, msg.payload, msg.qos) == ("aio/t", b"from aiomqtt", 1)
    # [MQTT-3.3.2-4] [MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20]
    assert forwarded(msg.properties) == RICH


# --------------------------------------------------------------------------------------------
# mosquitto_pub / mosquitto_sub -V 5

# topic | qos | user properties (name:value, space-separated) | content type | response topic |
# payload format indicator | payload; this -F comes after the fixture's own and replaces it
FORMAT5 = "MSG|%t|%q|%P|%C|%R|%F|%p"


def test_mosquitto_clients_v5_properties(broker, clients):
    sub = clients.sub(broker, "-V", "5", "-F", FORMAT5, "-C", "1", "-W", "5", "-q", "1",
                      "-t", "mc5/t")
    sub.wait_line("Subscribed")
    clients.pub(broker, "-V", "5", "-q", "1", "-t", "mc5/t", "-m", "hello v5",
                "-D", "publish", "user-property", "unit", "C",
                "-D", "publish", "user-property", "site", "lyon",
                "-D", "publish", "user-property", "unit", "F",
                "-D", "publish", "content-type", "text/plain",
                "-D", "publish", "response-topic", "mc5/reply",
                "-D", "publish", "payload-format-indicator", "1")
    assert sub.wait() == 0
    # [MQTT-3.3.2-17] [MQTT-3.3.2-18] the User Properties in order, the repeated name kept;
    # [MQTT-3.3.2-20] [MQTT-3.3.2-15] [MQTT-3.3.2-4] the others unaltered
    assert sub.messages() == ["mc5/t|1|unit:C site:lyon unit:F|text/plain|mc5/reply|1|hello v5"]
    assert any("received CONNACK (0)" in line for line in sub.lines())
