"""Engine scenarios for MQTT 5.0 clients, beside 3.1.1 ones: bytes in, bytes out.

The packets a client sends are built by the small helpers below; what the broker must send back
is written out byte by byte in each test. Plain functions with plain asserts, so that pytest
(CPython) and tools/mptest.py (MicroPython) run the same file.
"""
from broker import lifecycle
from harness import Hub, drain
from packets import encode_connect, encode_publish, encode_subscribe

# ---- what a v5 client sends ---------------------------------------------------------------------


def _s(text: bytes) -> bytes:
    return bytes((len(text) >> 8, len(text) & 0xFF)) + text


def _frame(b0: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes((b0, len(body))) + body


def _props(p: bytes) -> bytes:
    assert len(p) < 128
    return bytes((len(p),)) + p


def connect5(cid: bytes = b"c", flags: int = 0x02, keepalive: int = 60, props: bytes = b"",
             will: bytes = b"") -> bytes:
    """A v5 CONNECT; `will`: the will's properties, topic and payload as they go on the wire
    (flags must then have the will bits)."""
    return _frame(0x10, _s(b"MQTT") + bytes((5, flags, keepalive >> 8, keepalive & 0xFF))
                  + _props(props) + _s(cid) + will)


def publish5(topic: bytes, payload: bytes, qos: int = 0, mid: int = 1, props: bytes = b"",
             retain: bool = False) -> bytes:
    body = _s(topic) + (bytes((mid >> 8, mid & 0xFF)) if qos else b"") + _props(props) + payload
    return _frame(0x30 | (qos << 1) | (1 if retain else 0), body)


def subscribe5(mid: int, filt: bytes, options: int, props: bytes = b"") -> bytes:
    return _frame(0x82, bytes((mid >> 8, mid & 0xFF)) + _props(props) + _s(filt)
                  + bytes((options,)))


def disconnect5(reason: int, why: bytes) -> bytes:
    """The broker's DISCONNECT: its Reason Code and a Reason String (0x1F) that says why."""
    return _frame(0xE0, bytes((reason,)) + _props(b"\x1f" + _s(why)))


def v5_client(hub, cid: bytes = b"c", props: bytes = b""):
    c = hub.client("127.0.0.1:%d" % (6000 + len(hub.broker.conns)))
    c.send(connect5(cid, props=props))
    got = drain(c.conn)
    assert got[:5] == b"\x20\x09\x00\x00\x06", got  # accepted, with its properties
    return c


def v5_subscriber(hub, cid: bytes, filt: bytes, options: int = 0, props: bytes = b""):
    c = v5_client(hub, cid)
    c.send(subscribe5(1, filt, options, props))
    assert drain(c.conn) == b"\x90\x04\x00\x01\x00" + bytes((options & 3,))
    return c


USER_PROPS = b"\x26" + _s(b"k") + _s(b"2") + b"\x26" + _s(b"a") + _s(b"1") \
    + b"\x26" + _s(b"k") + _s(b"1")


# ---- CONNECT and CONNACK ------------------------------------------------------------------------


def test_v5_connect_gets_a_v5_connack_with_the_brokers_limits_MQTT_3_2_2_3():
    hub = Hub()
    c = hub.client()
    c.send(connect5())
    # Receive Maximum 1020 (max_inflight_messages + max_queued_messages of QoS 2 messages
    # unreleased), Topic Alias Maximum 10; no Shared Subscription Available: absent, it says
    # they are available (section 3.2.2.3.15)
    assert drain(c.conn) == b"\x20\x09\x00\x00\x06\x21\x03\xfc\x22\x00\x0a"
    assert not c.closed


def test_empty_client_id_gets_an_assigned_client_identifier_MQTT_3_2_2_16():
    hub = Hub()
    c = hub.client()
    c.send(connect5(b"", flags=0x00))  # clean start 0 is allowed with an empty id in v5
    assigned = b"auto-00000001"
    props = b"\x21\x03\xfc\x12" + _s(assigned) + b"\x22\x00\x0a"
    assert drain(c.conn) == b"\x20" + bytes((3 + len(props), 0, 0, len(props))) + props
    assert assigned.decode() in hub.broker.sessions


def test_keepalive_above_max_keepalive_gets_server_keep_alive_MQTT_3_2_2_21():
    hub = Hub("max_keepalive 30\n")
    c = hub.client()
    c.send(connect5(keepalive=600))
    assert drain(c.conn) == b"\x20\x0c\x00\x00\x09\x21\x03\xfc\x22\x00\x0a\x13\x00\x1e"
    assert c.conn.keepalive_ms == 30 * 1500


def test_authentication_method_is_refused_with_0x8c_MQTT_4_12_0_1():
    hub = Hub()
    c = hub.client()
    c.send(connect5(props=b"\x15" + _s(b"SCRAM-SHA-1")))
    assert drain(c.conn) == b"\x20\x03\x00\x8c\x00"
    assert c.closed


def test_refusals_carry_v5_reason_codes():
    hub = Hub("allow_anonymous false\n")
    c = hub.client()
    c.send(connect5())
    assert drain(c.conn) == b"\x20\x03\x00\x87\x00"  # Not authorized
    assert c.closed


def test_malformed_connect_properties_get_connack_0x81():
    hub = Hub()
    c = hub.client()
    c.send(connect5(props=b"\x21\x00"))  # Receive Maximum cut short
    assert drain(c.conn) == b"\x20\x03\x00\x81\x00"
    assert c.closed


# ---- PUBLISH ------------------------------------------------------------------------------------


def test_properties_are_forwarded_in_order_to_v5_and_dropped_for_311_MQTT_3_3_2_18():
    hub = Hub()
    sub5 = v5_subscriber(hub, b"s5", b"t/#")
    sub3 = hub.client("127.0.0.1:7000")
    sub3.connect("s3")
    sub3.subscribe(1, [(b"t/#", 0)])
    pub = v5_client(hub, b"p")
    props = b"\x01\x01\x03" + _s(b"text/plain") + b"\x08" + _s(b"r/1") + b"\x09" + _s(b"id") \
        + USER_PROPS
    pub.send(publish5(b"t/x", b"hello", props=props))
    assert drain(sub5.conn) == _frame(0x30, _s(b"t/x") + _props(props) + b"hello")
    assert drain(sub3.conn) == b"\x30\x0a\x00\x03t/xhello"
    assert drain(pub.conn) == b""


def test_a_311_message_reaches_a_v5_subscriber_without_properties():
    hub = Hub()
    sub5 = v5_subscriber(hub, b"s5", b"t")
    pub = hub.client("127.0.0.1:7000")
    pub.connect("p3")
    pub.send(encode_publish(b"t", b"x"))
    assert drain(sub5.conn) == b"\x30\x05\x00\x01t\x00x"


def test_a_publish_goes_on_as_it_came_only_when_nothing_changes_MQTT_3_3_2_17():
    # A v5 subscriber gets a plain QoS 0 PUBLISH as its publisher sent it; what the broker
    # writes differently (the fewest bytes for a length, RETAIN cleared, a Subscription
    # Identifier, a 3.1.1 publisher's missing Property Length) it writes [MQTT-1.5.5-1].
    hub = Hub()
    sub = v5_subscriber(hub, b"s", b"t/#")
    sub_id = v5_subscriber(hub, b"si", b"t/x", props=b"\x0b\x05")
    pub = v5_client(hub, b"p")
    pub3 = hub.client("127.0.0.1:7000")
    pub3.connect("p3")
    as_sent = b"\x30\x0f\x00\x03t/x\x07\x26\x00\x01k\x00\x01vhi"
    pub.send(as_sent)
    assert drain(sub.conn) == as_sent
    assert drain(sub_id.conn) == b"\x30\x11\x00\x03t/x\x09\x0b\x05\x26\x00\x01k\x00\x01vhi"
    # a 3.1.1 PUBLISH of the same length right after it
    pub3.send(b"\x30\x0f\x00\x03t/x\x07\x26\x00\x01k\x00\x01vhi")
    assert drain(sub.conn) == b"\x30\x10\x00\x03t/x\x00\x07\x26\x00\x01k\x00\x01vhi"
    pub.send(b"\x30\x8f\x00\x00\x03t/x\x07\x26\x00\x01k\x00\x01vhi")  # 2-byte length
    assert drain(sub.conn) == as_sent
    pub.send(b"\x31\x0f\x00\x03t/x\x07\x26\x00\x01k\x00\x01vhi")  # retained
    assert drain(sub.conn) == as_sent
    assert not pub.closed and not pub3.closed


def test_properties_sent_again_are_checked_as_the_first_time():
    # The same properties again, then a Topic Alias, then a Subscription Identifier, which a
    # client may not send [MQTT-3.3.4-6]: each PUBLISH is read for what it carries.
    hub = Hub()
    sub = v5_subscriber(hub, b"s", b"a/#")
    pub = v5_client(hub, b"p")
    up = b"\x26\x00\x01k\x00\x01v"
    pub.send(publish5(b"a/1", b"1", props=up) + publish5(b"a/1", b"2", props=up))
    pub.send(publish5(b"a/2", b"3", props=up + b"\x23\x00\x01"))
    pub.send(publish5(b"", b"4", props=up + b"\x23\x00\x01"))
    one = b"\x30\x0e\x00\x03a/1\x07" + up
    two = b"\x30\x0e\x00\x03a/2\x07" + up
    assert drain(sub.conn) == one + b"1" + one + b"2" + two + b"3" + two + b"4"
    pub.send(publish5(b"a/1", b"5", props=up + b"\x0b\x01"))
    assert drain(pub.conn) == disconnect5(0x82, b"Subscription Identifier from a client")
    assert pub.closed


def test_qos1_publish_nobody_subscribed_to_gets_puback_0x10():
    hub = Hub()
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"none", b"x", qos=1, mid=7))
    assert drain(pub.conn) == b"\x40\x03\x00\x07\x10"


def test_qos1_publish_delivered_gets_the_short_puback_MQTT_3_4_2_1():
    hub = Hub()
    sub = v5_subscriber(hub, b"s", b"t", options=1)
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"x", qos=1, mid=7))
    assert drain(pub.conn) == b"\x40\x02\x00\x07"
    assert drain(sub.conn) == b"\x32\x07\x00\x01t\x00\x01\x00x"


def test_topic_alias_set_then_used_MQTT_3_3_2_12():
    hub = Hub()
    sub = v5_subscriber(hub, b"s", b"a/#")
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"a/long", b"1", props=b"\x23\x00\x01"))
    pub.send(publish5(b"", b"2", props=b"\x23\x00\x01"))
    # the alias is the publisher's connection's own: subscribers get the topic name
    assert drain(sub.conn) == b"\x30\x0a\x00\x06a/long\x001" + b"\x30\x0a\x00\x06a/long\x002"
    assert not pub.closed


def test_topic_alias_above_the_maximum_gets_disconnect_0x94_MQTT_3_3_2_9():
    hub = Hub()
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"x", props=b"\x23\x00\x0b"))  # the CONNACK said 10
    assert drain(pub.conn) == disconnect5(
        0x94, b"Topic Alias 11 above the Topic Alias Maximum 10")
    assert pub.closed


def test_unknown_topic_alias_is_a_protocol_error():
    hub = Hub()
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"", b"x", props=b"\x23\x00\x02"))
    assert drain(pub.conn) == disconnect5(0x82, b"Topic Alias 2 was never set")
    assert pub.closed


def test_malformed_property_gets_disconnect_0x81_MQTT_4_13_1_1():
    hub = Hub()
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"x", props=b"\x00\x01"))  # no property has identifier 0
    assert drain(pub.conn) == disconnect5(0x81, b"unknown property 0x00")
    assert pub.closed


def test_property_not_allowed_in_publish_gets_disconnect_0x81():
    # an identifier not valid for its packet type makes it a Malformed Packet (2.2.2.2)
    hub = Hub()
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"x", props=b"\x11\x00\x00\x00\x0a"))  # Session Expiry Interval
    assert drain(pub.conn) == disconnect5(
        0x81, b"property 0x11 not allowed in packet type 3")
    assert pub.closed


def test_payload_not_utf8_as_announced_gets_0x99():
    hub = Hub()
    sub = v5_subscriber(hub, b"s", b"t")
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"\xff", qos=1, props=b"\x01\x01"))
    assert drain(pub.conn) == b"\x40\x03\x00\x01\x99"
    assert drain(sub.conn) == b""


def test_message_expiry_counts_down_while_queued_MQTT_3_3_2_6():
    hub = Hub()
    sub = v5_client(hub, b"s", props=b"\x11\x00\x00\x00\x3c")  # session kept 60 s
    sub.send(subscribe5(1, b"t", 1))
    assert drain(sub.conn) == b"\x90\x04\x00\x01\x00\x01"
    sub.lose()
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"a", qos=1, props=b"\x02\x00\x00\x00\x0a"))  # expires in 10 s
    pub.send(publish5(b"t", b"b", qos=1, mid=2, props=b"\x02\x00\x00\x00\x02"))  # in 2 s
    hub.advance(3000)
    again = hub.client("127.0.0.1:7001")
    again.send(connect5(b"s", flags=0x00, props=b"\x11\x00\x00\x00\x3c"))
    out = drain(again.conn)
    assert out[:4] == b"\x20\x09\x01\x00"  # session present
    # "a" with 7 s left; "b" expired while it waited and is never delivered [MQTT-3.3.2-5]
    assert out[11:] == b"\x32\x0c\x00\x01t\x00\x01\x05\x02\x00\x00\x00\x07a"


def test_no_local_MQTT_3_8_3_3():
    hub = Hub()
    c = v5_subscriber(hub, b"c", b"t", options=0x04)
    c.send(publish5(b"t", b"mine"))
    assert drain(c.conn) == b""
    other = v5_client(hub, b"o")
    other.send(publish5(b"t", b"theirs"))
    assert drain(c.conn) == b"\x30\x0a\x00\x01t\x00theirs"


def test_retain_as_published_MQTT_3_3_1_12():
    hub = Hub()
    rap = v5_subscriber(hub, b"rap", b"t", options=0x08)
    plain = v5_subscriber(hub, b"plain", b"t")
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"x", retain=True))
    assert drain(rap.conn) == b"\x31\x05\x00\x01t\x00x"
    assert drain(plain.conn) == b"\x30\x05\x00\x01t\x00x"


def test_retain_handling_MQTT_3_3_1_9_to_11():
    hub = Hub()
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"kept", retain=True))
    never = v5_client(hub, b"never")
    never.send(subscribe5(1, b"t", 0x20))
    assert drain(never.conn) == b"\x90\x04\x00\x01\x00\x00"
    new_only = v5_client(hub, b"new")
    new_only.send(subscribe5(1, b"t", 0x10))
    assert drain(new_only.conn) == b"\x90\x04\x00\x01\x00\x00\x31\x08\x00\x01t\x00kept"
    new_only.send(subscribe5(2, b"t", 0x10))  # exists already: nothing sent again
    assert drain(new_only.conn) == b"\x90\x04\x00\x02\x00\x00"


def test_subscription_identifier_is_sent_with_the_message_MQTT_3_3_4_3():
    hub = Hub()
    sub = v5_client(hub, b"s")
    sub.send(subscribe5(1, b"t", 0, props=b"\x0b\x05"))
    assert drain(sub.conn) == b"\x90\x04\x00\x01\x00\x00"
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"x"))
    assert drain(sub.conn) == b"\x30\x07\x00\x01t\x02\x0b\x05x"


def test_maximum_packet_size_of_the_client_is_never_exceeded_MQTT_3_1_2_25():
    hub = Hub()
    sub = v5_client(hub, b"s", props=b"\x27\x00\x00\x00\x10")  # 16 bytes at most
    sub.send(subscribe5(1, b"t", 1))
    assert drain(sub.conn) == b"\x90\x04\x00\x01\x00\x01"
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"0123456789abcdef", qos=1))
    pub.send(publish5(b"t", b"ok", qos=1, mid=2))
    assert drain(sub.conn) == b"\x32\x08\x00\x01t\x00\x01\x00ok"


def test_receive_maximum_of_the_client_bounds_what_is_in_flight_MQTT_3_3_4_9():
    hub = Hub()
    sub = v5_client(hub, b"s", props=b"\x21\x00\x01")
    sub.send(subscribe5(1, b"t", 1))
    assert drain(sub.conn) == b"\x90\x04\x00\x01\x00\x01"
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"1", qos=1) + publish5(b"t", b"2", qos=1, mid=2))
    first = drain(sub.conn)
    assert first[-1:] == b"1" and first.count(b"\x32") == 1
    sub.send(b"\x40\x02" + first[5:7])  # PUBACK
    assert drain(sub.conn)[-1:] == b"2"


# ---- acknowledgements, SUBSCRIBE, UNSUBSCRIBE, DISCONNECT --------------------------------------


def test_pubrel_for_an_unknown_packet_identifier_gets_pubcomp_0x92():
    hub = Hub()
    c = v5_client(hub)
    c.send(b"\x62\x02\x00\x09")
    assert drain(c.conn) == b"\x70\x03\x00\x09\x92"


def test_acknowledgements_with_reason_codes_and_properties_are_accepted():
    hub = Hub()
    sub = v5_subscriber(hub, b"s", b"t", options=1)
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"x", qos=1))
    out = drain(sub.conn)
    mid = out[5:7]
    sub.send(b"\x40\x09" + mid + b"\x00\x05\x1f" + _s(b"ok"))  # Reason String
    assert not sub.closed
    assert hub.broker.sessions["s"].inflight == 0


def test_unsubscribe_reason_codes_MQTT_3_11_3_1():
    hub = Hub()
    c = v5_subscriber(hub, b"c", b"a")
    c.send(_frame(0xA2, b"\x00\x02\x00" + _s(b"a") + _s(b"b")))
    assert drain(c.conn) == b"\xb0\x05\x00\x02\x00\x00\x11"


def _with_will(hub, cid: bytes):
    c = hub.client("127.0.0.1:%d" % (6000 + len(hub.broker.conns)))
    will = _props(b"\x03" + _s(b"text/plain")) + _s(b"will/t") + _s(b"gone")
    c.send(connect5(cid, flags=0x06, will=will))
    assert drain(c.conn)[:2] == b"\x20\x09"
    return c


def test_disconnect_with_will_message_0x04_sends_the_will_MQTT_3_14_4_3():
    hub = Hub()
    watcher = v5_subscriber(hub, b"w", b"will/#")
    c = _with_will(hub, b"c")
    c.send(b"\xe0\x01\x04")
    assert c.closed
    assert drain(watcher.conn) == _frame(
        0x30, _s(b"will/t") + _props(b"\x03" + _s(b"text/plain")) + b"gone")


def test_normal_disconnect_discards_the_will():
    hub = Hub()
    watcher = v5_subscriber(hub, b"w", b"will/#")
    c = _with_will(hub, b"c")
    c.send(b"\xe0\x00")
    assert c.closed
    assert drain(watcher.conn) == b""


def test_session_expiry_set_at_disconnect_after_0_is_a_protocol_error_MQTT_3_14_2_2():
    hub = Hub()
    c = v5_client(hub)
    c.send(b"\xe0\x07\x00\x05\x11\x00\x00\x00\x0a")
    assert drain(c.conn) == disconnect5(
        0x82, b"Session Expiry Interval set by DISCONNECT after 0 in CONNECT")
    assert c.closed


def test_session_expiry_interval_MQTT_3_1_2_23():
    hub = Hub()
    gone = v5_client(hub, b"gone")  # Session Expiry Interval 0: ends with the connection
    gone.lose()
    assert "gone" not in hub.broker.sessions
    kept = v5_client(hub, b"kept", props=b"\x11\x00\x00\x00\x05")
    kept.lose()
    hub.advance(3000)
    assert "kept" in hub.broker.sessions
    hub.advance(3000)
    assert "kept" not in hub.broker.sessions


def test_session_taken_over_gets_disconnect_0x8e_MQTT_3_1_4_3():
    hub = Hub()
    old = v5_client(hub, b"c")
    v5_client(hub, b"c")
    assert drain(old.conn) == b"\xe0\x01\x8e"
    assert old.closed


def test_keep_alive_timeout_gets_disconnect_0x8d():
    hub = Hub()
    c = hub.client()
    c.send(connect5(keepalive=10))
    drain(c.conn)
    hub.advance(16000)
    assert drain(c.conn) == b"\xe0\x01\x8d"
    assert c.closed


def test_311_clients_are_unchanged_beside_v5_ones():
    hub = Hub()
    v5_subscriber(hub, b"s5", b"t")
    c = hub.client("127.0.0.1:7000")
    c.send(encode_connect("c3") + encode_subscribe(1, [(b"t", 1)]))
    assert drain(c.conn) == b"\x20\x02\x00\x00\x90\x03\x00\x01\x01"


def test_no_room_for_the_v5_code_is_still_refused_in_v5():
    hub = Hub()
    c = hub.client()
    c.conn.level = 5  # as handle_connect sets it before importing broker.v5, which failed
    assert hub.broker.v5 is None
    lifecycle.out_of_memory(hub.broker, c.conn, True)
    assert drain(c.conn) == b"\x20\x03\x00\x88\x00"  # Server unavailable
    assert c.closed


# ---- will delay, limits of the configuration, the broker's own DISCONNECTs ----------------------


def _delayed_will(hub, cid: bytes, delay: int, expiry: bytes = b"", session: int = 60):
    """A v5 client with a will delayed by `delay` s and a session kept `session` s."""
    c = hub.client("127.0.0.1:%d" % (6000 + len(hub.broker.conns)))
    will = _props(bytes((0x18, 0, 0, 0, delay)) + expiry) + _s(b"will/t") + _s(b"gone")
    c.send(connect5(cid, flags=0x06, props=b"\x11" + bytes((0, 0, 0, session)), will=will))
    assert drain(c.conn)[:4] == b"\x20\x09\x00\x00"
    return c


def test_will_delay_interval_MQTT_3_1_3_9():
    hub = Hub()
    watcher = v5_subscriber(hub, b"w", b"will/#")
    c = _delayed_will(hub, b"c", 5)
    c.lose()
    hub.advance(3000)
    assert drain(watcher.conn) == b""
    hub.advance(3000)
    assert drain(watcher.conn) == b"\x30\x0d\x00\x06will/t\x00gone"


def test_reconnecting_within_the_will_delay_cancels_the_will_MQTT_3_1_3_9():
    hub = Hub()
    watcher = v5_subscriber(hub, b"w", b"will/#")
    c = _delayed_will(hub, b"c", 5)
    c.lose()
    hub.advance(2000)
    again = hub.client("127.0.0.1:7003")
    again.send(connect5(b"c", flags=0x00, props=b"\x11\x00\x00\x00\x3c"))
    assert drain(again.conn)[:4] == b"\x20\x09\x01\x00"
    hub.advance(10000)
    assert drain(watcher.conn) == b""


def test_a_delayed_will_goes_out_when_the_session_ends_first_MQTT_3_1_3_9():
    hub = Hub()
    watcher = v5_subscriber(hub, b"w", b"will/#")
    c = _delayed_will(hub, b"c", 60, session=2)
    c.lose()
    hub.advance(4000)
    assert "c" not in hub.broker.sessions
    assert drain(watcher.conn) == b"\x30\x0d\x00\x06will/t\x00gone"


def test_a_wills_message_expiry_counts_from_its_publication():
    hub = Hub()
    watcher = v5_subscriber(hub, b"w", b"will/#")
    c = _delayed_will(hub, b"c", 2, expiry=b"\x02\x00\x00\x00\x1e")  # 30 s
    c.lose()
    hub.advance(3000)
    assert drain(watcher.conn) == b"\x30\x12\x00\x06will/t\x05\x02\x00\x00\x00\x1egone"


def test_max_qos_MQTT_3_2_2_9_to_12():
    hub = Hub("max_qos 1\n")
    c = hub.client()
    c.send(connect5())
    # Maximum QoS 1 in the CONNACK [MQTT-3.2.2-9]
    assert drain(c.conn) == b"\x20\x0b\x00\x00\x08\x21\x03\xfc\x24\x01\x22\x00\x0a"
    c.send(subscribe5(1, b"t", 2))
    assert drain(c.conn) == b"\x90\x04\x00\x01\x00\x01"  # granted 1 [MQTT-3.2.2-10]
    c.send(publish5(b"t", b"x", qos=2))
    assert drain(c.conn) == disconnect5(0x9B, b"QoS 2 above max_qos 1")  # QoS not supported
    assert c.closed
    w = hub.client("127.0.0.1:7004")
    w.send(connect5(b"w", flags=0x16, will=_props(b"") + _s(b"t") + _s(b"x")))  # will QoS 2
    assert drain(w.conn) == b"\x20\x03\x00\x9b\x00"  # [MQTT-3.2.2-12]
    assert w.closed


def test_retain_not_available_MQTT_3_2_2_14():
    hub = Hub("retain_available false\n")
    c = hub.client()
    c.send(connect5())
    assert drain(c.conn)[5:] == b"\x21\x03\xfc\x25\x00\x22\x00\x0a"
    c.send(publish5(b"t", b"x", retain=True))
    assert drain(c.conn) == disconnect5(0x9A, b"RETAIN set but retain_available is false")
    assert c.closed


def test_packet_too_large_gets_disconnect_0x95_MQTT_3_2_2_15():
    hub = Hub("max_packet_size 64\n")
    c = hub.client()
    c.send(connect5())
    assert drain(c.conn)[5:10] == b"\x21\x03\xfc\x27\x00"  # Maximum Packet Size 64
    c.send(publish5(b"t", b"x" * 80))
    assert drain(c.conn) == disconnect5(
        0x95, b"packet of 86 bytes exceeds max_packet_size 64")
    assert c.closed


def test_receive_maximum_exceeded_gets_disconnect_0x93_MQTT_3_3_4_7():
    hub = Hub("max_inflight_messages 1\nmax_queued_messages 1\n")
    c = hub.client()
    c.send(connect5())
    assert drain(c.conn)[5:8] == b"\x21\x00\x02"  # Receive Maximum 2
    c.send(publish5(b"t", b"1", qos=2, mid=1) + publish5(b"t", b"2", qos=2, mid=2))
    assert drain(c.conn) == b"\x50\x03\x00\x01\x10" + b"\x50\x03\x00\x02\x10"
    c.send(publish5(b"t", b"3", qos=2, mid=3))
    assert drain(c.conn) == b"\xe0\x01\x93"
    assert c.closed


def test_no_room_to_keep_a_message_is_quota_exceeded_0x97():
    hub = Hub("memory_limit 400\n")
    sub = v5_client(hub, b"s", props=b"\x11\x00\x00\x00\x3c")
    sub.send(subscribe5(1, b"t", 1))
    drain(sub.conn)
    sub.lose()
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"x" * 100, qos=1, mid=1))
    assert drain(pub.conn) == b"\x40\x02\x00\x01"
    pub.send(publish5(b"t", b"y" * 100, qos=1, mid=2))
    assert drain(pub.conn) == b"\x40\x03\x00\x02\x97"
    assert not pub.closed  # MQTT 5 can refuse the one message


def test_shutdown_tells_v5_clients_0x8b():
    hub = Hub()
    c = v5_client(hub)
    c3 = hub.client("127.0.0.1:7005")
    c3.connect("c3")
    lifecycle.shutdown(hub.broker)
    assert drain(c.conn) == b"\xe0\x01\x8b"
    assert drain(c3.conn) == b""


def test_a_311_client_continuing_a_v5_session_gets_311_semantics():
    hub = Hub()
    c = v5_client(hub, b"c", props=b"\x11\x00\x00\x00\x05\x21\x00\x01")  # 5 s, Receive Max 1
    c.lose()
    c3 = hub.client("127.0.0.1:7006")
    c3.connect("c", clean_session=False)
    c3.subscribe(1, [(b"t", 1)])
    c3.lose()
    hub.advance(10000)  # no Session Expiry Interval any more: clean session 0 keeps it
    back = hub.client("127.0.0.1:7007")
    assert back.connect("c", clean_session=False).session_present
    pub = v5_client(hub, b"p")
    pub.send(publish5(b"t", b"1", qos=1) + publish5(b"t", b"2", qos=1, mid=2))
    assert len(back.publishes()) == 2  # no Receive Maximum of 1 any more


def test_one_copy_encoded_for_every_v5_subscriber_that_adds_nothing():
    hub = Hub()
    plain = [v5_subscriber(hub, b"a", b"t/#"), v5_subscriber(hub, b"b", b"t/x", options=0x04)]
    with_id = v5_client(hub, b"id")
    with_id.send(subscribe5(1, b"t/+", 0, props=b"\x0b\x07"))
    drain(with_id.conn)
    rap = v5_subscriber(hub, b"rap", b"t/#", options=0x08)
    small = v5_client(hub, b"small", props=b"\x27\x00\x00\x00\x0c")  # 12 bytes at most
    small.send(subscribe5(1, b"t/#", 0))
    drain(small.conn)
    big = v5_client(hub, b"big", props=b"\x27\x00\x00\x10\x00")  # 4,096 bytes at most
    big.send(subscribe5(1, b"t/#", 0))
    drain(big.conn)
    pub = v5_client(hub, b"p")
    for retain in (False, True):
        pub.send(publish5(b"t/x", b"hello", props=USER_PROPS, retain=retain))
        want = _frame(0x30, _s(b"t/x") + _props(USER_PROPS) + b"hello")
        for c in plain:
            assert drain(c.conn) == want
        assert drain(with_id.conn) == _frame(0x30, _s(b"t/x") + _props(b"\x0b\x07" + USER_PROPS)
                                             + b"hello")
        assert drain(rap.conn) == (want[:1] if not retain else b"\x31") + want[1:]
        assert drain(small.conn) == b""  # larger than its Maximum Packet Size [MQTT-3.1.2-25]
        assert drain(big.conn) == want


def test_an_invalid_topic_filter_gets_suback_0x8f_the_others_their_qos():
    hub = Hub()
    c = v5_client(hub)
    c.send(_frame(0x82, b"\x00\x01\x00" + _s(b"a/#/b") + b"\x01" + _s(b"ok/+") + b"\x01"))
    assert drain(c.conn) == b"\x90\x05\x00\x01\x00\x8f\x01"
    assert not c.closed


def test_the_reason_string_is_left_out_past_the_clients_maximum_packet_size_MQTT_3_14_2_3():
    hub = Hub()
    c = v5_client(hub, b"c", props=b"\x27\x00\x00\x00\x0a")  # 10 bytes at most
    c.send(publish5(b"", b"x", props=b"\x23\x00\x02"))
    assert drain(c.conn) == b"\xe0\x01\x82"
    assert c.closed


def test_auth_without_an_authentication_method_is_a_protocol_error():
    hub = Hub()
    c = v5_client(hub)
    c.send(b"\xf0\x00")
    assert drain(c.conn) == disconnect5(0x82, b"AUTH without an Authentication Method")
    assert c.closed
    c3 = hub.client("127.0.0.1:7008")
    c3.connect("c3")
    c3.send(b"\xf0\x00")  # type 15 is reserved in 3.1.1 (section 2.2.1): closed
    assert drain(c3.conn) == b""
    assert c3.closed
