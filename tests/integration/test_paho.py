"""MQTT 3.1.1 behaviour through paho-mqtt 2.x clients on real sockets.

Normative statements are cited as [MQTT-x.y.z-n] (OASIS MQTT Version 3.1.1).
Each test uses its own broker process, so retained messages and sessions never leak between tests.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest

from board import board_limit
from paho_client import QUIET

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------------------------
# Connect / disconnect


def test_connect_and_disconnect(broker, mqtt_client):
    c = mqtt_client(broker, "conn-1")
    # [MQTT-3.1.4-4] accepted with return code 0; [MQTT-3.2.2-1] clean session -> SP 0
    assert c.reason_code.value == 0
    assert c.session_present is False
    # the connection is usable: a round trip to itself
    assert c.subscribe("conn/t", 1) == [1]
    c.publish("conn/t", b"ping", qos=1)
    m = c.get()
    assert (m.topic, m.payload, m.qos) == ("conn/t", b"ping", 1)
    c.disconnect()
    assert not c.disconnect_reason.is_failure  # we closed it, cleanly


def test_connect_mqtt31_round_trip(broker, mqtt_client):
    # MQTT 3.1 ("MQIsdp", level 3): client id of at most 23 characters
    sub = mqtt_client(broker, "v31-sub", protocol=mqtt.MQTTv31)
    pub = mqtt_client(broker, "v31-pub", protocol=mqtt.MQTTv31)
    assert sub.reason_code.value == 0 and pub.reason_code.value == 0
    assert sub.subscribe("v31/t", 1) == [1]
    pub.publish("v31/t", b"old protocol", qos=1)
    m = sub.get()
    assert (m.topic, m.payload, m.qos, m.retain) == ("v31/t", b"old protocol", 1, False)


# --------------------------------------------------------------------------------------------
# QoS


@pytest.mark.parametrize("sub_qos", [0, 1, 2])
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
def test_delivered_qos_is_minimum_of_publish_and_granted(broker, mqtt_client, pub_qos, sub_qos):
    sub = mqtt_client(broker, "qsub")
    pub = mqtt_client(broker, "qpub")
    # [MQTT-3.8.4-5] the SUBACK shows the granted QoS (a broker may grant less than asked)
    (granted,) = sub.subscribe("qos/t", sub_qos)
    assert granted in (0, 1, 2) and granted <= sub_qos
    payload = ("p%d-s%d" % (pub_qos, sub_qos)).encode()
    pub.publish("qos/t", payload, qos=pub_qos)
    m = sub.get()
    assert (m.topic, m.payload) == ("qos/t", payload)
    # [MQTT-3.8.4-6] delivered QoS = min(published QoS, granted QoS)
    assert m.qos == min(pub_qos, granted)
    assert m.retain is False
    # exactly one copy (the specification would tolerate a duplicate only for QoS 1 published
    # onto QoS 0 granted; this broker, like mosquitto, sends none)
    sub.assert_no_message(0.2)


# --------------------------------------------------------------------------------------------
# Retained messages


def test_retained_message_delivered_to_new_subscriber(broker, mqtt_client):
    pub = mqtt_client(broker, "rpub")
    pub.publish("ret/a", b"v1", qos=1, retain=True)
    sub = mqtt_client(broker, "rsub")
    assert sub.subscribe("ret/a", 1) == [1]
    m = sub.get()
    # [MQTT-3.3.1-5] stored; [MQTT-3.3.1-6] sent on a new subscription;
    # [MQTT-3.3.1-8] with RETAIN 1; QoS min(stored 1, granted 1)
    assert (m.topic, m.payload, m.qos, m.retain) == ("ret/a", b"v1", 1, True)


def test_retained_message_matched_by_wildcard_subscription(broker, mqtt_client):
    pub = mqtt_client(broker, "rpub")
    pub.publish("ret/w/1", b"one", qos=0, retain=True)
    pub.publish("ret/w/2", b"two", qos=1, retain=True)
    pub.publish("ret/other", b"no", qos=1, retain=True)
    sub = mqtt_client(broker, "rsub")
    assert sub.subscribe("ret/w/+", 2) == [2]
    got = sorted((m.topic, m.payload, m.qos, m.retain) for m in sub.get_many(2))
    # [MQTT-3.3.1-6] the last retained message on *each* matching topic
    assert got == [("ret/w/1", b"one", 0, True), ("ret/w/2", b"two", 1, True)]
    sub.assert_no_message(0.2)


def test_retained_message_replaced_by_newer_one(broker, mqtt_client):
    pub = mqtt_client(broker, "rpub")
    pub.publish("ret/b", b"old", qos=1, retain=True)
    pub.publish("ret/b", b"new", qos=0, retain=True)
    sub = mqtt_client(broker, "rsub")
    sub.subscribe("ret/b", 1)
    pub.publish("ret/b", b"marker", qos=1)
    m = sub.get()
    # [MQTT-3.3.1-7] the newer retained message replaced the older one
    assert (m.payload, m.qos, m.retain) == (b"new", 0, True)
    m = sub.get()
    assert (m.payload, m.retain) == (b"marker", False)
    sub.assert_no_message(0.2)


def test_retained_message_cleared_by_empty_payload(broker, mqtt_client):
    pub = mqtt_client(broker, "rpub")
    live = mqtt_client(broker, "rlive")
    live.subscribe("ret/c", 1)
    pub.publish("ret/c", b"keep me", qos=1, retain=True)
    assert live.get().payload == b"keep me"
    pub.publish("ret/c", b"", qos=1, retain=True)
    # [MQTT-3.3.1-10] the zero-length retained PUBLISH is delivered as normal ...
    m = live.get()
    assert (m.topic, m.payload, m.retain) == ("ret/c", b"", False)
    # ... and removes the retained message: a new subscriber gets nothing retained
    # [MQTT-3.3.1-11]; the first thing it receives is a live marker.
    late = mqtt_client(broker, "rlate")
    late.subscribe("ret/c", 1)
    pub.publish("ret/c", b"marker", qos=1)
    m = late.get()
    assert (m.payload, m.retain) == (b"marker", False)
    late.assert_no_message(0.2)


def test_live_delivery_of_retained_publish_has_retain_flag_0(broker, mqtt_client):
    sub = mqtt_client(broker, "rsub")
    sub.subscribe("ret/d", 2)
    pub = mqtt_client(broker, "rpub")
    pub.publish("ret/d", b"live", qos=2, retain=True)
    m = sub.get()
    # [MQTT-3.3.1-9] RETAIN 0 for a match on an established subscription
    assert (m.topic, m.payload, m.qos, m.retain) == ("ret/d", b"live", 2, False)
    # while a new subscription still gets it with RETAIN 1 [MQTT-3.3.1-8]
    late = mqtt_client(broker, "rlate")
    late.subscribe("ret/d", 2)
    m = late.get()
    assert (m.payload, m.qos, m.retain) == (b"live", 2, True)


# --------------------------------------------------------------------------------------------
# Topic filters


def _received_topics(sub, pub, topics, marker):
    for t in topics:
        pub.publish(t, t.encode(), qos=1)
    pub.publish(marker, b"marker", qos=1)
    msgs = sub.get_until(marker)
    for m in msgs:
        assert m.payload == m.topic.encode() or m.topic == marker
    return [m.topic for m in msgs[:-1]]


def test_single_level_wildcard(broker, mqtt_client):
    sub = mqtt_client(broker, "wsub")
    pub = mqtt_client(broker, "wpub")
    assert sub.subscribe([("sport/+/player", 1), ("+", 1), ("mark/+", 1)]) == [1, 1, 1]
    topics = ["sport/tennis/player", "sport//player", "sport/tennis/player/x", "sport/player",
              "other/tennis/player", "top", "top/level", "/lead"]
    got = _received_topics(sub, pub, topics, "mark/done")
    # [MQTT-4.7.1-3] '+' matches exactly one level, including an empty one
    assert got == ["sport/tennis/player", "sport//player", "top"]


def test_multi_level_wildcard(broker, mqtt_client):
    sub = mqtt_client(broker, "wsub")
    pub = mqtt_client(broker, "wpub")
    assert sub.subscribe([("sport/tennis/#", 1), ("mark/#", 1)]) == [1, 1]
    topics = ["sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking",
              "sport/tennisx", "sport", "other/sport/tennis"]
    got = _received_topics(sub, pub, topics, "mark/done")
    # [MQTT-4.7.1-2] '#' matches the parent level and any number of child levels
    assert got == ["sport/tennis", "sport/tennis/player1", "sport/tennis/player1/ranking"]


def test_hash_alone_matches_everything_not_starting_with_dollar(broker, mqtt_client):
    allsub = mqtt_client(broker, "all")
    plussub = mqtt_client(broker, "plus")
    dollarsub = mqtt_client(broker, "dollar")
    pub = mqtt_client(broker, "pub")
    assert allsub.subscribe("#", 1) == [1]
    assert plussub.subscribe("+/x", 1) == [1]
    assert dollarsub.subscribe("$test/#", 1) == [1]
    pub.publish("$test/x", b"dollar", qos=1)
    pub.publish("plain/x", b"plain", qos=1)
    # [MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with '$'
    assert [(m.topic, m.payload) for m in allsub.get_until("plain/x")] == [("plain/x", b"plain")]
    assert [(m.topic, m.payload) for m in plussub.get_until("plain/x")] == [("plain/x", b"plain")]
    # ... but a filter that names the '$' level does
    m = dollarsub.get()
    assert (m.topic, m.payload, m.qos) == ("$test/x", b"dollar", 1)
    dollarsub.assert_no_message(0.2)


# --------------------------------------------------------------------------------------------
# Will messages


@pytest.mark.parametrize("will_qos", [0, 1, 2])
def test_will_published_when_connection_drops(broker, mqtt_client, will_qos):
    watcher = mqtt_client(broker, "watcher")
    assert watcher.subscribe("will/#", 2) == [2]
    payload = ("gone-%d" % will_qos).encode()
    dying = mqtt_client(broker, "dying", will=("will/dying", payload, will_qos, False))
    dying.drop()  # socket closed without DISCONNECT
    m = watcher.get()
    # [MQTT-3.1.2-8] published when the network connection closes without DISCONNECT;
    # Will QoS honoured [MQTT-3.1.2-14] (watcher granted 2, so delivered QoS = will QoS)
    assert (m.topic, m.payload, m.qos, m.retain) == ("will/dying", payload, will_qos, False)
    watcher.assert_no_message(0.2)


def test_will_not_published_after_disconnect(broker, mqtt_client):
    watcher = mqtt_client(broker, "watcher")
    watcher.subscribe("will/#", 1)
    polite = mqtt_client(broker, "polite", will=("will/polite", b"should not appear", 1, False))
    polite.disconnect()
    other = mqtt_client(broker, "other")
    other.publish("will/marker", b"after", qos=1)
    # [MQTT-3.1.2-10] [MQTT-3.14.4-3] DISCONNECT discards the will
    msgs = watcher.get_until("will/marker")
    assert [(m.topic, m.payload) for m in msgs] == [("will/marker", b"after")]
    watcher.assert_no_message(QUIET)


def test_will_with_retain_flag_is_retained(broker, mqtt_client):
    watcher = mqtt_client(broker, "watcher")
    watcher.subscribe("will/r", 1)
    dying = mqtt_client(broker, "dying", will=("will/r", b"last words", 1, True))
    dying.drop()
    m = watcher.get()
    # live delivery to an established subscription: RETAIN 0 [MQTT-3.3.1-9]
    assert (m.topic, m.payload, m.qos, m.retain) == ("will/r", b"last words", 1, False)
    # [MQTT-3.1.2-17] published as a retained message: a later subscriber gets it, RETAIN 1
    late = mqtt_client(broker, "late")
    late.subscribe("will/r", 1)
    m = late.get()
    assert (m.topic, m.payload, m.qos, m.retain) == ("will/r", b"last words", 1, True)


def test_will_without_retain_flag_is_not_retained(broker, mqtt_client):
    watcher = mqtt_client(broker, "watcher")
    watcher.subscribe("will/nr", 1)
    dying = mqtt_client(broker, "dying", will=("will/nr", b"once", 1, False))
    dying.drop()
    assert watcher.get().payload == b"once"
    # [MQTT-3.1.2-16] published as a non-retained message
    late = mqtt_client(broker, "late")
    late.subscribe("will/nr", 1)
    other = mqtt_client(broker, "other")
    other.publish("will/nr", b"marker", qos=1)
    m = late.get()
    assert (m.payload, m.retain) == (b"marker", False)


# --------------------------------------------------------------------------------------------
# Sessions


def test_persistent_session_receives_messages_published_while_away(broker, mqtt_client):
    first = mqtt_client(broker, "persist-1", clean_session=False)
    # [MQTT-3.2.2-3] no stored session yet -> Session Present 0
    assert first.session_present is False
    assert first.subscribe("ps/t", 1) == [1]
    first.disconnect()

    pub = mqtt_client(broker, "ps-pub")
    pub.publish("ps/t", b"while away q1", qos=1)
    pub.publish("ps/t", b"while away q2", qos=2)

    again = mqtt_client(broker, "persist-1", clean_session=False)
    # [MQTT-3.2.2-2] stored session -> Session Present 1
    assert again.session_present is True
    # [MQTT-3.1.2-5] QoS 1 and 2 messages stored for the offline session, delivered in order
    # at min(published QoS, granted 1) [MQTT-3.8.4-6]
    msgs = again.get_many(2)
    assert [(m.topic, m.payload, m.qos) for m in msgs] == [
        ("ps/t", b"while away q1", 1), ("ps/t", b"while away q2", 1)]
    # the subscription itself survived [MQTT-3.1.2-4]
    pub.publish("ps/t", b"live", qos=1)
    assert again.get().payload == b"live"
    again.disconnect()

    clean = mqtt_client(broker, "persist-1", clean_session=True)
    # [MQTT-3.2.2-1] clean session -> Session Present 0, and [MQTT-3.1.2-6] state discarded
    assert clean.session_present is False
    pub.publish("ps/t", b"after clean", qos=1)
    clean.assert_no_message(QUIET)


def test_qos0_not_queued_for_offline_client(broker, mqtt_client):
    first = mqtt_client(broker, "persist-q0", clean_session=False)
    first.subscribe("pq/t", 1)
    first.disconnect()
    pub = mqtt_client(broker, "pq-pub")
    pub.publish("pq/t", b"qos0 while away", qos=0)
    pub.publish("pq/t", b"qos1 while away", qos=1)
    again = mqtt_client(broker, "persist-q0", clean_session=False)
    assert again.session_present is True
    # queue_qos0_messages defaults to false: only the QoS 1 message was stored [MQTT-3.1.2-5]
    m = again.get()
    assert (m.payload, m.qos) == (b"qos1 while away", 1)
    again.assert_no_message(QUIET)


def test_takeover_disconnects_first_client_and_publishes_its_will(broker, mqtt_client):
    watcher = mqtt_client(broker, "watcher")
    watcher.subscribe("take/#", 1)
    first = mqtt_client(broker, "same-id", will=("take/will", b"first went away", 1, False))
    second = mqtt_client(broker, "same-id")
    # [MQTT-3.1.4-2] the existing client with that ClientId is disconnected
    first.wait_disconnected()
    # its connection closed without DISCONNECT, so its will is published [MQTT-3.1.2-8]
    m = watcher.get()
    assert (m.topic, m.payload, m.qos) == ("take/will", b"first went away", 1)
    # the new connection works
    assert second.subscribe("take/echo", 1) == [1]
    second.publish("take/echo", b"still here", qos=1)
    msgs = second.get_until("take/echo")
    assert [(m.topic, m.payload) for m in msgs] == [("take/echo", b"still here")]
    assert second.client.is_connected()
    watcher.get_until("take/echo")  # the watcher sees it too, and no second will
    watcher.assert_no_message(0.2)


# --------------------------------------------------------------------------------------------
# Subscriptions


def test_overlapping_subscriptions_deliver_one_copy_at_maximum_qos(broker, mqtt_client):
    sub = mqtt_client(broker, "overlap")
    assert sub.subscribe([("a/#", 0), ("a/b", 2), ("z/end", 2)]) == [0, 2, 2]
    pub = mqtt_client(broker, "opub")
    pub.publish("a/b", b"both match", qos=2)
    # the marker travels at QoS 2 too, so it cannot overtake the QoS 2 copy
    pub.publish("z/end", b"marker", qos=2)
    msgs = sub.get_until("z/end")
    copies = [m for m in msgs if m.topic == "a/b"]
    assert all(m.payload == b"both match" for m in copies)
    # [MQTT-3.3.5-1] delivered respecting the maximum QoS of all matching subscriptions.
    # The specification would allow one extra copy per additional matching subscription;
    # this broker (like mosquitto 2) delivers exactly one.
    assert [m.qos for m in copies] == [2]


def test_suback_codes_for_multiple_filters(broker, mqtt_client):
    sub = mqtt_client(broker, "multi")
    # [MQTT-3.8.4-4] one SUBACK for the whole packet; [MQTT-3.8.4-5] one code per filter,
    # in order, showing the granted QoS
    codes = sub.subscribe([("m/zero", 0), ("m/one", 1), ("m/two", 2), ("m/+/deep/#", 1)])
    assert codes == [0, 1, 2, 1]
    pub = mqtt_client(broker, "mpub")
    for t in ("m/zero", "m/one", "m/two", "m/x/deep/y"):
        pub.publish(t, t.encode(), qos=2)
    got = sorted((m.topic, m.qos) for m in sub.get_many(4))
    assert got == [("m/one", 1), ("m/two", 2), ("m/x/deep/y", 1), ("m/zero", 0)]


def test_resubscribe_replaces_qos(broker, mqtt_client):
    sub = mqtt_client(broker, "resub")
    assert sub.subscribe("rs/t", 2) == [2]
    assert sub.subscribe("rs/t", 0) == [0]
    pub = mqtt_client(broker, "rspub")
    pub.publish("rs/t", b"once", qos=2)
    # [MQTT-3.8.4-3] the new subscription replaces the old one: one copy at the new QoS
    m = sub.get()
    assert (m.payload, m.qos) == (b"once", 0)
    sub.assert_no_message(0.3)


def test_unsubscribe_stops_delivery(broker, mqtt_client):
    sub = mqtt_client(broker, "unsub")
    sub.subscribe([("u/t", 1), ("u/keep", 1)])
    pub = mqtt_client(broker, "upub")
    pub.publish("u/t", b"before", qos=1)
    assert sub.get().payload == b"before"
    sub.unsubscribe("u/t")  # [MQTT-3.10.4-4] UNSUBACK received (waited for)
    pub.publish("u/t", b"after", qos=1)
    pub.publish("u/keep", b"marker", qos=1)
    # [MQTT-3.10.4-2] no new messages for the deleted subscription; others unaffected
    msgs = sub.get_until("u/keep")
    assert [(m.topic, m.payload) for m in msgs] == [("u/keep", b"marker")]


def test_unsubscribe_unknown_filter_still_gets_unsuback(broker, mqtt_client):
    sub = mqtt_client(broker, "unsub-unknown")
    # [MQTT-3.10.4-5] UNSUBACK even when nothing was deleted
    sub.unsubscribe("never/subscribed")
    sub.unsubscribe("never/+/#")
    assert sub.subscribe("still/works", 1) == [1]


# --------------------------------------------------------------------------------------------
# Ordering


def test_200_qos1_messages_arrive_in_order(broker_factory, mqtt_client):
    # A subscriber's session holds at most max_inflight_messages in flight plus
    # max_queued_messages queued; past that a broker drops messages for it (mosquitto does,
    # DESIGN.md's fixed-size tables do: the board profile queues 16). So the publisher keeps at
    # most `window` messages that the subscriber has not yet received on their way: with an
    # in-flight window of 4 (an option mosquitto has too) the broker holds at most window + the
    # few received but not yet acknowledged, well inside 4 + 16, so nothing needs to be dropped
    # on any kind, while every kind has to queue and then drain messages in order.
    inflight = 4
    window = board_limit("max_queued_messages") - inflight
    broker = broker_factory(["max_inflight_messages %d" % inflight])
    sub = mqtt_client(broker, "order-sub")
    sub.subscribe("order/t", 1)
    pub = mqtt_client(broker, "order-pub")
    n = 200
    msgs = []
    infos = []
    for i in range(n):
        while len(msgs) <= i - window:  # messages i-window .. i-1 may still be on their way
            msgs.append(sub.get(timeout=5))
        infos.append(pub.client.publish("order/t", str(i).encode(), 1))
    msgs += sub.get_many(n - len(msgs), timeout=15)
    for info in infos:
        info.wait_for_publish(5)
        assert info.is_published()
    # [MQTT-4.6.0-6] same topic, same QoS, one publisher: delivered in the order received
    assert [m.payload for m in msgs] == [str(i).encode() for i in range(n)]
    assert {m.qos for m in msgs} == {1}
    assert not any(m.dup for m in msgs)
    sub.assert_no_message(0.2)
