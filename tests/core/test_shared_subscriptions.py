"""Shared subscriptions ($share/{ShareName}/{filter}, MQTT 5.0 section 4.8.2) and several
Subscription Identifiers in one PUBLISH [MQTT-3.3.4-3] [MQTT-3.3.4-4]: engine scenarios, bytes
in and bytes out (the expected bytes written by hand), and the subscription table's invariants.
Where the specification leaves a choice, the tests assert mosquitto 2.0's (checked with its
2.0.11): 3.1.1 clients may share too, and a member whose client is offline still takes its turn.
"""
from broker.invariants import check_subscriptions
from broker.subscriptions import SubscriptionTable, merge_options
from harness import Hub, drain
from packets import encode_connect, encode_publish, encode_subscribe, encode_unsubscribe
from test_engine_v5 import (
    _frame, _s, connect5, disconnect5, publish5, subscribe5, v5_client, v5_subscriber,
)

SESSION_60S = b"\x11\x00\x00\x00\x3c"  # Session Expiry Interval 60 s


def unsubscribe5(mid: int, filt: bytes) -> bytes:
    return _frame(0xA2, bytes((mid >> 8, mid & 0xFF)) + b"\x00" + _s(filt))


def _q0(topic: bytes, payload: bytes) -> bytes:
    """A v5 QoS 0 PUBLISH without properties, as the broker sends it."""
    return _frame(0x30, _s(topic) + b"\x00" + payload)


# ---- one member of the group gets each message ------------------------------------------------


def test_each_message_goes_to_one_member_in_turn_MQTT_4_8_2():
    hub = Hub()
    a = v5_subscriber(hub, b"a", b"$share/g/t")
    b = v5_subscriber(hub, b"b", b"$share/g/t")
    other = v5_subscriber(hub, b"o", b"$share/h/t")  # another group: every message, too
    plain = v5_subscriber(hub, b"n", b"t")  # not shared: every message
    pub = v5_client(hub, b"p")
    for m in (b"m0", b"m1", b"m2", b"m3"):
        pub.send(publish5(b"t", m))
    assert drain(a.conn) == _q0(b"t", b"m0") + _q0(b"t", b"m2")
    assert drain(b.conn) == _q0(b"t", b"m1") + _q0(b"t", b"m3")
    every = _q0(b"t", b"m0") + _q0(b"t", b"m1") + _q0(b"t", b"m2") + _q0(b"t", b"m3")
    assert drain(other.conn) == every
    assert drain(plain.conn) == every


def test_a_group_of_a_wildcard_filter():
    hub = Hub()
    a = v5_subscriber(hub, b"a", b"$share/g/s/+/t")
    b = v5_subscriber(hub, b"b", b"$share/g/s/+/t")
    pub = v5_client(hub, b"p")
    # the same topic again: what CPython's table remembers of it (broker.routecache) too
    pub.send(publish5(b"s/1/t", b"x") + publish5(b"s/1/t", b"y") + publish5(b"s/3", b"z")
             + publish5(b"s/2/t", b"w"))
    assert drain(a.conn) == _q0(b"s/1/t", b"x") + _q0(b"s/2/t", b"w")
    assert drain(b.conn) == _q0(b"s/1/t", b"y")


def test_each_member_gets_the_message_at_its_granted_qos_MQTT_4_8_2_3():
    hub = Hub()
    a = v5_subscriber(hub, b"a", b"$share/g/t", options=0)
    b = v5_subscriber(hub, b"b", b"$share/g/t", options=2)
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"m0", qos=1, mid=1) + publish5(b"t", b"m1", qos=1, mid=2))
    assert drain(a.conn) == b"\x30\x06\x00\x01t\x00m0"
    assert drain(b.conn) == b"\x32\x08\x00\x01t\x00\x01\x00m1"
    assert drain(pub.conn) == b"\x40\x02\x00\x01\x40\x02\x00\x02"


def test_a_shared_subscription_gets_no_retained_messages_MQTT_4_8_2():
    # "Retained messages are not sent to the Session when it subscribes to a Shared
    # Subscription" (section 4.8.2); mosquitto 2.0.13 and later agree (2.0.11 sends them)
    hub = Hub()
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"kept", retain=True))
    s = v5_client(hub, b"s")
    s.send(subscribe5(1, b"$share/g/t", 0))
    assert drain(s.conn) == b"\x90\x04\x00\x01\x00\x00"
    s.send(subscribe5(2, b"t", 0))
    assert drain(s.conn) == b"\x90\x04\x00\x02\x00\x00\x31\x08\x00\x01t\x00kept"


def test_a_session_subscribed_beside_its_group_gets_one_copy_MQTT_3_3_4_2():
    hub = Hub()
    a = v5_client(hub, b"a")
    a.send(subscribe5(1, b"t", 0) + subscribe5(2, b"$share/g/t", 1))
    assert drain(a.conn) == b"\x90\x04\x00\x01\x00\x00\x90\x04\x00\x02\x00\x01"
    b = v5_subscriber(hub, b"b", b"$share/g/t", options=1)
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"m0", qos=1, mid=1) + publish5(b"t", b"m1", qos=1, mid=2))
    # m0: the group's turn is a's, which gets one copy at the higher QoS [MQTT-3.3.4-2];
    # m1: b's turn; a still gets its own subscription's copy
    assert drain(a.conn) == b"\x32\x08\x00\x01t\x00\x01\x00m0" + _q0(b"t", b"m1")
    assert drain(b.conn) == b"\x32\x08\x00\x01t\x00\x01\x00m1"


def test_unsubscribe_leaves_the_group_MQTT_3_10_4_1():
    hub = Hub()
    a = v5_subscriber(hub, b"a", b"$share/g/t")
    b = v5_subscriber(hub, b"b", b"$share/g/t")
    a.send(unsubscribe5(2, b"$share/g/t"))
    assert drain(a.conn) == b"\xb0\x04\x00\x02\x00\x00"
    check_subscriptions(hub.broker.subs)
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"m0") + publish5(b"t", b"m1"))
    assert drain(a.conn) == b""
    assert drain(b.conn) == _q0(b"t", b"m0") + _q0(b"t", b"m1")
    b.send(unsubscribe5(2, b"$share/g/t"))
    assert drain(b.conn) == b"\xb0\x04\x00\x02\x00\x00"
    subs = hub.broker.subs
    assert subs.count == subs.groups == subs.exact_count == 0
    check_subscriptions(subs)
    b.send(unsubscribe5(3, b"$share/g/t"))  # no longer in it [MQTT-3.11.3-1]
    assert drain(b.conn) == b"\xb0\x04\x00\x03\x00\x11"


def test_a_member_offline_takes_its_turn_and_gets_its_messages_back():
    # as mosquitto 2.0 does: the message waits in the session of the member whose turn it was
    hub = Hub()
    a = v5_subscriber(hub, b"a", b"$share/g/t", options=1)
    b = v5_client(hub, b"b", props=SESSION_60S)
    b.send(subscribe5(1, b"$share/g/t", 1))
    assert drain(b.conn) == b"\x90\x04\x00\x01\x00\x01"
    b.lose()
    pub = v5_client(hub, b"p")
    for i, m in enumerate((b"m0", b"m1", b"m2", b"m3")):
        pub.send(publish5(b"t", m, qos=1, mid=i + 1))
    assert drain(a.conn) == b"\x32\x08\x00\x01t\x00\x01\x00m0\x32\x08\x00\x01t\x00\x02\x00m2"
    back = hub.client("127.0.0.1:7001")
    back.send(connect5(b"b", flags=0x00, props=SESSION_60S))
    assert drain(back.conn)[11:] == \
        b"\x32\x08\x00\x01t\x00\x01\x00m1\x32\x08\x00\x01t\x00\x02\x00m3"


def test_a_session_that_ends_leaves_its_groups():
    hub = Hub()
    a = v5_subscriber(hub, b"a", b"$share/g/t")
    b = v5_subscriber(hub, b"b", b"$share/g/t")
    a.lose()  # Session Expiry Interval 0: the session ends with the connection
    check_subscriptions(hub.broker.subs)
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"m0") + publish5(b"t", b"m1"))
    assert drain(b.conn) == _q0(b"t", b"m0") + _q0(b"t", b"m1")


def test_3_1_1_clients_may_share_as_with_mosquitto():
    hub = Hub()
    a = hub.client("127.0.0.1:7001")
    a.connect("a")
    assert a.subscribe(1, [(b"$share/g/t", 1)]) == [1]
    b = hub.client("127.0.0.1:7002")
    b.connect("b")
    assert b.subscribe(1, [(b"$share/g/t", 0)]) == [0]
    pub = hub.client("127.0.0.1:7003")
    pub.connect("p")
    pub.send(encode_publish(b"t", b"m0", qos=1, mid=1) + encode_publish(b"t", b"m1", qos=1,
                                                                          mid=2))
    assert drain(a.conn) == b"\x32\x07\x00\x01t\x00\x01m0"
    assert drain(b.conn) == b"\x30\x05\x00\x01tm1"


# ---- what a SUBSCRIBE may ask -------------------------------------------------------------------


def test_a_share_name_empty_or_with_wildcards_is_a_protocol_error_MQTT_4_8_2_1_and_2():
    hub = Hub()
    for filt in (b"$share//t", b"$share/g", b"$share/g/", b"$share/+/t", b"$share/#",
                 b"$share/+/#"):
        c = v5_client(hub, b"c")
        c.send(subscribe5(1, filt, 0))
        assert drain(c.conn) == disconnect5(0x82, b"invalid shared subscription"), filt
        assert c.closed
    c = hub.client("127.0.0.1:7009")
    c.connect("c3")
    c.send(encode_subscribe(1, [(b"$share//t", 0)]))
    assert drain(c.conn) == b"" and c.closed  # no DISCONNECT before 5.0
    assert hub.broker.subs.count == 0


def test_no_local_on_a_shared_subscription_is_a_protocol_error_MQTT_3_8_3_4():
    hub = Hub()
    c = v5_client(hub, b"c")
    c.send(subscribe5(1, b"$share/g/t", 0x04))
    assert drain(c.conn) == disconnect5(0x82, b"No Local on a shared subscription")
    assert c.closed


def test_filters_that_only_look_shared_are_not():
    hub = Hub()
    c = v5_client(hub, b"c")
    c.send(subscribe5(1, b"$share", 0) + subscribe5(2, b"$shared/g/t", 0))
    assert drain(c.conn) == b"\x90\x04\x00\x01\x00\x00\x90\x04\x00\x02\x00\x00"
    assert hub.broker.subs.groups == 0


def test_each_member_takes_an_entry_of_the_table():
    hub = Hub("max_subscriptions 2\n")
    v5_subscriber(hub, b"a", b"$share/g/t")
    v5_subscriber(hub, b"b", b"$share/g/t")
    c = v5_client(hub, b"c")
    c.send(subscribe5(1, b"$share/g/t", 0))
    assert drain(c.conn) == b"\x90\x04\x00\x01\x00\x97"  # max_subscriptions
    hub = Hub("max_subscriptions_per_client 1\n")
    c = v5_subscriber(hub, b"c", b"$share/g/t")
    c.send(subscribe5(2, b"$share/h/t", 0))
    assert drain(c.conn) == b"\x90\x04\x00\x02\x00\x97"  # max_subscriptions_per_client
    c.send(subscribe5(3, b"$share/g/t", 1))  # renewed: the same entry [MQTT-3.8.4-3]
    assert drain(c.conn) == b"\x90\x04\x00\x03\x00\x01"
    assert hub.broker.subs.count == 1


class _Session:
    def __init__(self, name: str) -> None:
        self.name = name
        self.route_mark = 0
        self.route_qos = 0


def test_the_table_keeps_groups_beside_filters():
    t = SubscriptionTable(100)
    a = _Session("a")
    b = _Session("b")
    filters = (b"$share/g/x", b"$share/h/x", b"x", b"$share/g/y/+", b"$share/g/y/#", b"y/+")
    for s in (a, b):
        for f in filters:
            assert t.subscribe(s, f, 1) == 1
            check_subscriptions(t)
    assert t.count == 12 and t.groups == 4
    assert t.exact_count == 1 and t.wildcard_count == 2  # x; y/+ and y/#
    assert t.subscribe(a, b"$share/g/x", 2) == 0
    assert sorted(t.filters_of(a))[0] == (b"$share/g/x", 2)
    hits = [None] * 4
    n = t.collect(b"y/1", 0, 3, hits, 1)
    assert sorted([hits[i].name for i in range(n)]) == ["a", "b"]
    assert t.unsubscribe(a, b"$share/g/y/#")
    assert not t.unsubscribe(a, b"$share/g/y/#")
    check_subscriptions(t)
    assert t.remove_session(a) == 5
    check_subscriptions(t)
    assert t.remove_session(b) == 6
    check_subscriptions(t)
    assert t.count == t.groups == t.exact_count == t.wildcard_count == 0
    assert not t.root.kids and t.root.plus is None


# ---- several Subscription Identifiers ----------------------------------------------------------


def _identified(hub, cid: bytes, qos: int = 0, props: bytes = b""):
    """A v5 client whose subscriptions t/# (identifier 1), t/+ (2), t/x (none) and u (3) match
    t/x, but u."""
    c = v5_client(hub, cid, props)
    c.send(subscribe5(1, b"t/#", qos, b"\x0b\x01") + subscribe5(2, b"t/+", qos, b"\x0b\x02")
           + subscribe5(3, b"t/x", qos) + subscribe5(4, b"u", qos, b"\x0b\x03"))
    assert len(drain(c.conn)) == 24
    return c


def test_one_copy_carries_every_matching_subscription_identifier_MQTT_3_3_4_4():
    hub = Hub()
    s = _identified(hub, b"s")
    pub = v5_client(hub, b"p")
    user = b"\x26" + _s(b"k") + _s(b"v")
    pub.send(publish5(b"t/x", b"x") + publish5(b"t/x", b"y", props=user))
    assert drain(s.conn) == b"\x30\x0b\x00\x03t/x\x04\x0b\x01\x0b\x02x" \
        + b"\x30\x12\x00\x03t/x\x0b\x0b\x01\x0b\x02\x26\x00\x01k\x00\x01vy"


def test_several_identifiers_at_qos_1_and_from_its_own_buffer_MQTT_3_3_4_4():
    hub = Hub()
    s = _identified(hub, b"s", qos=1)
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t/x", b"x", qos=1))
    assert drain(s.conn) == b"\x32\x0d\x00\x03t/x\x00\x01\x04\x0b\x01\x0b\x02x"
    hub.broker.copy_max = 0  # sent from the message's own buffer (broker.spool)
    pub.send(publish5(b"t/x", b"y", qos=1, mid=2))
    assert drain(s.conn) == b"\x32\x0d\x00\x03t/x\x00\x02\x04\x0b\x01\x0b\x02y"


def test_several_identifiers_kept_while_queued_and_in_flight_MQTT_3_3_4_4():
    hub = Hub()
    s = _identified(hub, b"s", qos=1, props=SESSION_60S)
    s.lose()
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t/x", b"x", qos=1))
    again = hub.client("127.0.0.1:7001")
    again.send(connect5(b"s", flags=0x00, props=SESSION_60S))
    assert drain(again.conn)[11:] == b"\x32\x0d\x00\x03t/x\x00\x01\x04\x0b\x01\x0b\x02x"
    again.lose()  # not acknowledged: sent again, with DUP, and its identifiers [MQTT-4.4.0-1]
    third = hub.client("127.0.0.1:7002")
    third.send(connect5(b"s", flags=0x00, props=SESSION_60S))
    assert drain(third.conn)[11:] == b"\x3a\x0d\x00\x03t/x\x00\x01\x04\x0b\x01\x0b\x02x"


def test_an_identifier_sent_again_in_flight_is_kept_MQTT_3_3_4_3():
    hub = Hub()
    s = v5_client(hub, b"s", props=SESSION_60S)
    s.send(subscribe5(1, b"t", 1, b"\x0b\x07"))
    drain(s.conn)
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"x", qos=1))
    assert drain(s.conn) == b"\x32\x09\x00\x01t\x00\x01\x02\x0b\x07x"
    s.lose()
    again = hub.client("127.0.0.1:7001")
    again.send(connect5(b"s", flags=0x00, props=SESSION_60S))
    assert drain(again.conn)[11:] == b"\x3a\x09\x00\x01t\x00\x01\x02\x0b\x07x"


def test_the_same_identifier_twice_is_sent_once():
    hub = Hub()
    s = v5_client(hub, b"s")
    s.send(subscribe5(1, b"t/#", 0, b"\x0b\x05") + subscribe5(2, b"t/+", 0, b"\x0b\x05"))
    drain(s.conn)
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t/x", b"x"))
    assert drain(s.conn) == b"\x30\x09\x00\x03t/x\x02\x0b\x05x"


def test_a_shared_subscriptions_identifier_beside_its_sessions_own_MQTT_3_3_4_4():
    hub = Hub()
    s = v5_client(hub, b"s")
    s.send(subscribe5(1, b"t", 0, b"\x0b\x01") + subscribe5(2, b"$share/g/t", 0, b"\x0b\x02"))
    drain(s.conn)
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"x"))
    assert drain(s.conn) == b"\x30\x09\x00\x01t\x04\x0b\x01\x0b\x02x"


def test_a_311_subscriber_beside_gets_no_identifier():
    hub = Hub()
    _identified(hub, b"s")
    c = hub.client("127.0.0.1:7001")
    c.send(encode_connect("c3") + encode_subscribe(1, [(b"t/#", 0), (b"t/+", 0)]))
    drain(c.conn)
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t/x", b"x"))
    assert drain(c.conn) == b"\x30\x06\x00\x03t/xx"
    c.send(encode_unsubscribe(2, [b"t/#"]))
    assert drain(c.conn) == b"\xb0\x02\x00\x02"


def test_merge_options_says_when_identifiers_differ():
    # QoS | No Local 0x04 | Retain As Published 0x08 | several 0x10 | identifier << 5
    assert merge_options(1 | (7 << 5), 2 | (7 << 5)) == 2 | (7 << 5)
    assert merge_options(1 | (7 << 5), 0) == 1 | (7 << 5)
    assert merge_options(0, 2 | (9 << 5)) == 2 | (9 << 5)
    assert merge_options(1 | (7 << 5), 1 | (9 << 5)) & 0x10
    assert merge_options(merge_options(1 | (7 << 5), 1 | (9 << 5)), 1) & 0x10
    assert merge_options(0x04 | 0x08, 0x04) == 0x0C
    assert merge_options(0x04, 1) == 1
