"""MQTT 5.0 sessions, wills and subscription options through paho-mqtt 2.x (protocol=MQTTv5):
Session Expiry Interval across a client's restart, Will Delay Interval, Message Expiry Interval,
Subscription Identifier, No Local, Retain As Published, Retain Handling, Topic Alias, max_qos.

Normative statements are cited as [MQTT-x.y.z-n] (OASIS MQTT Version 5.0); every expectation
holds against mosquitto 2.0 too (BROKER_UNDER_TEST=mosquitto).
"""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from conftest import V5_HEAP

pytestmark = [pytest.mark.integration, pytest.mark.heap(V5_HEAP)]


def props(packet_type, **values):
    p = Properties(packet_type)
    for name, value in values.items():
        setattr(p, name, value)
    return p


def v5(mqtt_client, broker, client_id, **kwargs):
    return mqtt_client(broker, client_id, protocol=mqtt.MQTTv5, **kwargs)


def persistent(mqtt_client, broker, client_id, expiry=60, **kwargs):
    """A v5 client whose session outlives its connection by `expiry` seconds, continuing the
    session left by an earlier connection with that id (Clean Start 0)."""
    return v5(mqtt_client, broker, client_id, clean_start=False,
              properties=props(PacketTypes.CONNECT, SessionExpiryInterval=expiry), **kwargs)


def test_session_survives_the_client_within_its_expiry_MQTT_3_1_2_23(broker, mqtt_client):
    sub = persistent(mqtt_client, broker, "expiry-sub")
    assert sub.subscribe("expiry/t", 1) == [1]
    sub.disconnect()
    pub = v5(mqtt_client, broker, "expiry-pub")
    pub.publish("expiry/t", b"while away", qos=1)
    back = persistent(mqtt_client, broker, "expiry-sub")
    assert back.session_present is True  # [MQTT-3.2.2-2]
    assert back.get().payload == b"while away"


def test_session_expiry_0_ends_the_session_with_the_connection_MQTT_3_1_2_11(broker,
                                                                              mqtt_client):
    sub = persistent(mqtt_client, broker, "gone-sub", expiry=0)
    assert sub.subscribe("gone/t", 1) == [1]
    sub.disconnect()
    back = persistent(mqtt_client, broker, "gone-sub")
    assert back.session_present is False


def test_will_delay_interval_MQTT_3_1_3_9(broker, mqtt_client):
    watcher = v5(mqtt_client, broker, "delay-watcher")
    assert watcher.subscribe("delay/#", 1) == [1]
    will = ("delay/will", b"late", 1, False, props(PacketTypes.WILLMESSAGE, WillDelayInterval=2))
    c = persistent(mqtt_client, broker, "delay-client", will=will)
    dropped_at = time.monotonic()
    c.drop()
    m = watcher.get(timeout=6)
    assert m.payload == b"late"
    assert time.monotonic() - dropped_at >= 1.5  # not before the delay (1 s granularity)


def test_reconnecting_within_the_will_delay_cancels_it_MQTT_3_1_3_9(broker, mqtt_client):
    watcher = v5(mqtt_client, broker, "cancel-watcher")
    assert watcher.subscribe("cancel/#", 1) == [1]
    will = ("cancel/will", b"never", 1, False, props(PacketTypes.WILLMESSAGE, WillDelayInterval=2))
    c = persistent(mqtt_client, broker, "cancel-client", will=will)
    c.drop()
    persistent(mqtt_client, broker, "cancel-client")
    watcher.assert_no_message(timeout=3.5)


def test_message_expiry_interval_counts_down_while_queued_MQTT_3_3_2_6(broker, mqtt_client):
    sub = persistent(mqtt_client, broker, "mexp-sub")
    assert sub.subscribe("mexp/#", 1) == [1]
    sub.disconnect()
    pub = v5(mqtt_client, broker, "mexp-pub")
    pub.publish("mexp/short", b"expires", qos=1,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    pub.publish("mexp/long", b"stays", qos=1,
                properties=props(PacketTypes.PUBLISH, MessageExpiryInterval=60))
    time.sleep(2.5)  # the first one's interval must run out while it waits
    back = persistent(mqtt_client, broker, "mexp-sub")
    m = back.get()
    # the expired one is never delivered [MQTT-3.3.2-5]; the other with what is left of its
    # interval [MQTT-3.3.2-6]
    assert m.topic == "mexp/long"
    assert 55 <= m.properties.MessageExpiryInterval < 60
    back.assert_no_message()


def test_subscription_identifier_MQTT_3_3_4_3(broker, mqtt_client):
    sub = v5(mqtt_client, broker, "sid-sub")
    assert sub.subscribe("sid/#", 1,
                         properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=42)) == [1]
    pub = v5(mqtt_client, broker, "sid-pub")
    pub.publish("sid/t", b"x", qos=1)
    assert sub.get().properties.SubscriptionIdentifier == [42]


def test_no_local_MQTT_3_8_3_3(broker, mqtt_client):
    c = v5(mqtt_client, broker, "nolocal")
    assert c.subscribe("nolocal/t", SubscribeOptions(qos=1, noLocal=True)) == [1]
    c.publish("nolocal/t", b"mine", qos=1)
    other = v5(mqtt_client, broker, "nolocal-other")
    other.publish("nolocal/t", b"theirs", qos=1)
    assert c.get().payload == b"theirs"


def test_retain_as_published_and_retain_handling_MQTT_3_3_1_9_to_12(broker, mqtt_client):
    pub = v5(mqtt_client, broker, "rap-pub")
    pub.publish("rap/t", b"kept", qos=1, retain=True)
    never = v5(mqtt_client, broker, "rh2")
    assert never.subscribe("rap/t", SubscribeOptions(qos=1, retainHandling=2)) == [1]
    rap = v5(mqtt_client, broker, "rap")
    assert rap.subscribe("rap/t", SubscribeOptions(qos=1, retainAsPublished=True)) == [1]
    assert rap.get().retain is True  # the retained message itself: RETAIN set
    pub.publish("rap/t", b"live", qos=1, retain=True)
    assert rap.get().retain is True  # forwarded with RETAIN as published [MQTT-3.3.1-12]
    m = never.get()
    assert (m.payload, m.retain) == (b"live", False)  # no retained on subscribe, RETAIN 0


def test_topic_alias_from_the_client_MQTT_3_3_2_12(broker, mqtt_client):
    sub = v5(mqtt_client, broker, "alias-sub")
    assert sub.subscribe("alias/#", 1) == [1]
    pub = v5(mqtt_client, broker, "alias-pub")
    assert pub.connack_properties.TopicAliasMaximum >= 1
    pub.publish("alias/long/topic", b"1", qos=1,
                properties=props(PacketTypes.PUBLISH, TopicAlias=1))
    pub.publish("", b"2", qos=1, properties=props(PacketTypes.PUBLISH, TopicAlias=1))
    got = sub.get_many(2)
    assert [(m.topic, m.payload) for m in got] == [("alias/long/topic", b"1"),
                                                  ("alias/long/topic", b"2")]
    assert not hasattr(got[1].properties, "TopicAlias")  # the publisher's own [MQTT-3.3.2-7]


def test_max_qos(broker_factory, mqtt_client):
    broker = broker_factory(["max_qos 1"])
    c = v5(mqtt_client, broker, "maxqos")
    assert c.connack_properties.MaximumQoS == 1  # [MQTT-3.2.2-9]
    assert c.subscribe("maxqos/t", 2) == [1]  # [MQTT-3.2.2-10]
