"""Shared subscriptions ($share/{ShareName}/{filter}, MQTT 5.0 section 4.8.2) and several
Subscription Identifiers for one message (section 3.3.4), through paho-mqtt 2.x.

Every expectation was checked against mosquitto 2.0 (BROKER_UNDER_TEST=mosquitto); where the
specification leaves a choice, the test asserts mosquitto's answer, and where this project made
the other one it asserts each broker's (expect()).
"""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conftest import V5_HEAP

pytestmark = [pytest.mark.integration, pytest.mark.heap(V5_HEAP)]

SESSION_60S = 60


def v5_client(mqtt_client, broker, client_id, **kwargs):
    return mqtt_client(broker, client_id, protocol=mqtt.MQTTv5, **kwargs)


def expect(broker, ours, mosquitto):
    """The answer this project chose where the specification allows mosquitto's too."""
    return mosquitto if broker.kind == "mosquitto" else ours


def identified(sid):
    """SUBSCRIBE properties with Subscription Identifier sid."""
    props = Properties(PacketTypes.SUBSCRIBE)
    props.SubscriptionIdentifier = sid
    return props


def payloads(messages):
    return [m.payload for m in messages]


# --------------------------------------------------------------------------------------------
# Shared subscriptions


def test_members_of_a_group_get_alternate_messages(broker, mqtt_client):
    a = v5_client(mqtt_client, broker, "share-a")
    b = v5_client(mqtt_client, broker, "share-b")
    plain = v5_client(mqtt_client, broker, "share-plain")
    # [MQTT-4.8.2-1] [MQTT-4.8.2-2] a ShareName, then a Topic Filter
    assert a.subscribe("$share/workers/jobs/+", 1) == [1]
    assert b.subscribe("$share/workers/jobs/+", 1) == [1]
    assert plain.subscribe("jobs/+", 1) == [1]
    pub = v5_client(mqtt_client, broker, "share-pub")
    sent = [b"job%d" % i for i in range(6)]
    for p in sent:
        pub.publish("jobs/x", p, qos=1)
    # each message to one member of the group, in turn (round robin, as mosquitto does)
    assert payloads(a.get_many(3)) == sent[0::2]
    assert payloads(b.get_many(3)) == sent[1::2]
    a.assert_no_message()
    b.assert_no_message(0.1)
    # a subscription outside the group gets every message
    assert payloads(plain.get_many(6)) == sent


def test_each_member_gets_its_granted_qos(broker, mqtt_client):
    a = v5_client(mqtt_client, broker, "qos-a")
    b = v5_client(mqtt_client, broker, "qos-b")
    assert a.subscribe("$share/g/qos/t", 0) == [0]
    assert b.subscribe("$share/g/qos/t", 2) == [2]
    pub = v5_client(mqtt_client, broker, "qos-pub")
    for p in (b"m0", b"m1", b"m2", b"m3"):
        pub.publish("qos/t", p, qos=1)
    # [MQTT-4.8.2-3] the granted QoS of the member's subscription is respected:
    # min(published, granted) [MQTT-3.8.4-8]
    assert [(m.payload, m.qos) for m in a.get_many(2)] == [(b"m0", 0), (b"m2", 0)]
    assert [(m.payload, m.qos) for m in b.get_many(2)] == [(b"m1", 1), (b"m3", 1)]


def test_no_retained_messages_on_a_shared_subscription(broker, mqtt_client):
    pub = v5_client(mqtt_client, broker, "ret-pub")
    pub.publish("ret/t", b"kept", qos=1, retain=True)
    s = v5_client(mqtt_client, broker, "ret-sub")
    assert s.subscribe("$share/g/ret/t", 1) == [1]
    pub.publish("ret/t", b"live", qos=1)
    got = [s.get()]
    while got[-1].payload != b"live":
        got.append(s.get())
    # "Retained messages are not sent to the Session when it subscribes to a Shared
    # Subscription" (section 4.8.2); mosquitto sends them before 2.0.13 (its ChangeLog: "Don't
    # send retained messages when a shared subscription is made")
    got = [(m.payload, m.retain) for m in got]
    assert got in expect(broker, [[(b"live", False)]],
                         [[(b"live", False)], [(b"kept", True), (b"live", False)]])
    # the same filter not shared gets the retained message [MQTT-3.3.1-6]
    assert s.subscribe("ret/t", 1) == [1]
    m = s.get()
    assert (m.payload, m.retain) == (b"kept", True)


def test_unsubscribe_leaves_the_group(broker, mqtt_client):
    a = v5_client(mqtt_client, broker, "leave-a")
    b = v5_client(mqtt_client, broker, "leave-b")
    assert a.subscribe("$share/g/leave/t", 0) == [0]
    assert b.subscribe("$share/g/leave/t", 0) == [0]
    assert a.unsubscribe("$share/g/leave/t") == [0]
    pub = v5_client(mqtt_client, broker, "leave-pub")
    for p in (b"m0", b"m1"):
        pub.publish("leave/t", p, qos=1)
    assert payloads(b.get_many(2)) == [b"m0", b"m1"]
    a.assert_no_message()


def test_311_clients_share_and_an_offline_member_keeps_its_turn(broker, mqtt_client):
    # shared subscriptions are MQTT 5.0's; mosquitto 2.0 takes them from 3.1.1 clients too,
    # and a member whose client is offline still takes its turn: the message waits in its
    # session for its return
    a = mqtt_client(broker, "old-a")
    b = mqtt_client(broker, "old-b", clean_session=False)
    assert a.subscribe("$share/g/old/t", 1) == [1]
    assert b.subscribe("$share/g/old/t", 1) == [1]
    b.disconnect()
    pub = v5_client(mqtt_client, broker, "old-pub")
    for p in (b"m0", b"m1", b"m2", b"m3"):
        pub.publish("old/t", p, qos=1)
    assert payloads(a.get_many(2)) == [b"m0", b"m2"]
    a.assert_no_message()
    back = mqtt_client(broker, "old-b", clean_session=False)
    assert back.session_present
    assert payloads(back.get_many(2)) == [b"m1", b"m3"]


# --------------------------------------------------------------------------------------------
# Subscription Identifiers


def test_several_subscription_identifiers_for_one_message(broker, mqtt_client):
    s = v5_client(mqtt_client, broker, "sid-sub")
    assert s.subscribe("sid/#", 1, properties=identified(1)) == [1]
    assert s.subscribe("sid/+", 1, properties=identified(2)) == [1]
    assert s.subscribe("sid/x", 1) == [1]  # no identifier
    assert s.subscribe("other/#", 1, properties=identified(3)) == [1]
    pub = v5_client(mqtt_client, broker, "sid-pub")
    pub.publish("sid/x", b"x", qos=1)
    got = s.get_many(expect(broker, 1, 3))
    s.assert_no_message()
    ids = [sorted(getattr(m.properties, "SubscriptionIdentifier", [])) for m in got]
    if len(got) == 1:
        # one copy: every matching subscription's identifier [MQTT-3.3.4-3] [MQTT-3.3.4-4]
        assert ids == [[1, 2]]
    else:
        # a copy per subscription, as mosquitto sends: each with its own identifier
        # [MQTT-3.3.4-5]
        assert sorted(ids) == [[], [1], [2]]
    pub.publish("sid/y/z", b"y", qos=1)  # sid/# alone: its identifier alone
    m = s.get()
    assert m.properties.SubscriptionIdentifier == [1]
