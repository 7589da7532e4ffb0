"""broker.codec5 against the MQTT 5.0 specification (OASIS standard, 7 March 2019): the parsers of
CONNECT, SUBSCRIBE, UNSUBSCRIBE, the acknowledgements and DISCONNECT, and the v5 writers.

Plain functions with plain asserts: pytest runs them on CPython, tools/mptest.py on MicroPython.
Expected bytes are written out by hand from the specification, not produced by the codec.
"""
from broker.codec import Connect, MalformedPacket, decode_connect
from broker.props import ProtocolError
from broker.codec5 import (
    ack5_size, connack5_size, decode_ack5, decode_connect5, decode_disconnect5,
    decode_subscribe5, decode_unsubscribe5, disconnect5_size, publish5_props_len, publish5_size,
    put_ack5, put_connack5, put_disconnect5, put_publish5, put_suback5, put_unsuback5,
    suback5_size, unsuback5_size,
)
from support import MPY, SkipTest, raises_exactly

if MPY:
    import micropython

HEAD = b"\x00\x04MQTT\x05"  # protocol name and level: decode_connect5 starts after them

# Every field: clean start, a will (QoS 1, retained), user name and password.
CONNECT_ALL = (
    HEAD + b"\xee\x00\x3c"
    + b"\x0f" b"\x11\x00\x00\x00\x78" b"\x21\x00\x0a" b"\x26\x00\x01a\x00\x01b"
    + b"\x00\x02c1"
    + b"\x1a" b"\x18\x00\x00\x00\x05" b"\x01\x01" b"\x02\x00\x00\x00\x3c" b"\x03\x00\x04text"
    b"\x26\x00\x01k\x00\x01v"
    + b"\x00\x03w/t" + b"\x00\x02hi" + b"\x00\x01u" + b"\x00\x02pw"
)


def connect(body):
    c = Connect()
    decode_connect5(body, 7, len(body), c)
    return c


def connect_fails(cls, body):
    raises_exactly(cls, decode_connect5, body, 7, len(body), Connect())


# ---- CONNECT (3.1) ------------------------------------------------------------------------------

def test_connect_level_5_handed_over_MQTT_3_1_2_1_MQTT_3_1_2_2():
    c = decode_connect(CONNECT_ALL, 0, len(CONNECT_ALL))
    assert c.supported() and (c.protocol_name, c.protocol_level) == ("MQTT", 5)
    assert c.client_id == "c1" and c.props is not None and c.props.receive_maximum == 10
    assert c.will_fwd == b"\x01\x01\x03\x00\x04text\x26\x00\x01k\x00\x01v"
    raises_exactly(MalformedPacket, decode_connect, CONNECT_ALL + b"\x00", 0, len(CONNECT_ALL) + 1)
    for body in (b"\x00\x06MQIsdp\x05\x02\x00\x0a\x00\x00\x01c",
                 b"\x00\x04MQTT\x06\x02\x00\x0a\x00\x00\x01c"):
        c = decode_connect(body, 0, len(body))
        assert not c.supported() and c.props is None


def test_connect_every_field():
    c = connect(CONNECT_ALL)
    assert c.flags == 0xEE and c.clean_session and c.keepalive == 60
    assert c.props is not None
    assert c.props.session_expiry_interval == 120 and c.props.receive_maximum == 10
    assert c.props.user == [("a", "b")]
    assert c.client_id == "c1"
    w = c.will_props
    assert w is not None
    assert (w.will_delay_interval, w.payload_format_indicator, w.message_expiry_interval,
            w.content_type, w.user) == (5, 1, 60, "text", [("k", "v")])
    # forwarded as they came, less Will Delay and Message Expiry Interval
    assert c.will_fwd == b"\x01\x01\x03\x00\x04text\x26\x00\x01k\x00\x01v"
    assert (c.will_topic, c.will_payload, c.will_qos, c.will_retain) == (b"w/t", b"hi", 1, True)
    assert c.username == "u" and c.password == b"pw"


def test_connect_fewest_fields():
    c = connect(HEAD + b"\x00\x00\x00\x00\x00\x00")
    assert c.flags == 0 and not c.clean_session and c.keepalive == 0 and c.client_id == ""
    assert c.props is not None and c.props.session_expiry_interval is None and c.props.user == []
    assert c.will_props is None and c.will_fwd == b"" and c.will_topic is None
    assert c.username is None and c.password is None


def test_connect_password_without_user_name():
    # Version 5.0 allows a password without a user name (3.1.2.9)
    c = connect(HEAD + b"\x42\x00\x0a\x00\x00\x01c\x00\x03pwd")
    assert c.username is None and c.password == b"pwd"


def test_connect_reserved_flag_MQTT_3_1_2_3():
    connect_fails(MalformedPacket, HEAD + b"\x03\x00\x0a\x00\x00\x01c")


def test_connect_will_flags_MQTT_3_1_2_11_MQTT_3_1_2_12_MQTT_3_1_2_13():
    will = b"\x00\x00\x01w\x00\x00"
    connect_fails(MalformedPacket, HEAD + b"\x1e\x00\x0a\x00\x00\x01c" + will)  # will QoS 3
    connect_fails(MalformedPacket, HEAD + b"\x0a\x00\x0a\x00\x00\x01c")  # QoS 1 without will
    connect_fails(MalformedPacket, HEAD + b"\x12\x00\x0a\x00\x00\x01c")  # QoS 2 without will
    connect_fails(MalformedPacket, HEAD + b"\x22\x00\x0a\x00\x00\x01c")  # retain without will
    c = connect(HEAD + b"\x16\x00\x0a\x00\x00\x01c" + will)
    assert c.will_qos == 2 and not c.will_retain and c.will_topic == b"w" and c.will_fwd == b""


def test_connect_properties_checked():
    # Topic Alias in CONNECT, Will Delay Interval outside the will: not valid there (2.2.2.2)
    connect_fails(MalformedPacket, HEAD + b"\x02\x00\x0a\x03\x23\x00\x01\x00\x01c")
    connect_fails(MalformedPacket, HEAD + b"\x02\x00\x0a\x05\x18\x00\x00\x00\x01\x00\x01c")
    # Session Expiry Interval in the will's properties
    connect_fails(MalformedPacket, HEAD + b"\x06\x00\x0a\x00\x00\x01c"
                  b"\x05\x11\x00\x00\x00\x01\x00\x01w\x00\x00")
    # Receive Maximum 0 (3.1.2.11.3), twice (2.2.2.2), Request Problem Information 2 (3.1.2.11.7)
    connect_fails(ProtocolError, HEAD + b"\x02\x00\x0a\x03\x21\x00\x00\x00\x01c")
    connect_fails(ProtocolError, HEAD + b"\x02\x00\x0a\x06\x21\x00\x01\x21\x00\x01\x00\x01c")
    connect_fails(ProtocolError, HEAD + b"\x02\x00\x0a\x02\x17\x02\x00\x01c")
    # Response Topic of the will with a wildcard [MQTT-3.3.2-14]
    connect_fails(ProtocolError, HEAD + b"\x06\x00\x0a\x00\x00\x01c"
                  b"\x04\x08\x00\x01#\x00\x01w\x00\x00")


def test_connect_strings_utf8_MQTT_3_1_3_4_MQTT_1_5_4_1():
    connect_fails(MalformedPacket, HEAD + b"\x02\x00\x0a\x00\x00\x02\xc0\xaf")  # client id
    connect_fails(MalformedPacket, HEAD + b"\x02\x00\x0a\x00\x00\x01\x00")
    connect_fails(MalformedPacket, HEAD + b"\x82\x00\x0a\x00\x00\x01c\x00\x03\xed\xa0\x80")


def test_connect_truncated_or_longer():
    for n in range(8, len(CONNECT_ALL)):
        connect_fails(MalformedPacket, CONNECT_ALL[:n])
    connect_fails(MalformedPacket, CONNECT_ALL + b"\x00")


# ---- SUBSCRIBE (3.8) ----------------------------------------------------------------------------

def test_subscribe():
    body = (b"\x00\x07" b"\x0a\x0b\x81\x01\x26\x00\x01a\x00\x01b"
            b"\x00\x03a/b\x2d" b"\x00\x01#\x00" b"\x00\x00\x12")
    mid, props, topics = decode_subscribe5(body, 0, len(body))
    assert mid == 7 and props.subscription_identifier == 129 and props.user == [("a", "b")]
    assert topics == [(b"a/b", 0x2D), (b"#", 0), (b"", 0x12)]


def test_subscription_options_MQTT_3_8_3_5():
    for opts in range(256):
        body = b"\x00\x01\x00\x00\x01x" + bytes((opts,))
        if opts & 0xC0:
            raises_exactly(MalformedPacket, decode_subscribe5, body, 0, len(body))  # [MQTT-3.8.3-5]
        elif opts & 0x03 == 3 or opts & 0x30 == 0x30:
            # "It is a Protocol Error if the Maximum QoS field has the value 3", "... to send a
            # Retain Handling value of 3" (3.8.3.1)
            raises_exactly(ProtocolError, decode_subscribe5, body, 0, len(body))
        else:
            assert decode_subscribe5(body, 0, len(body))[2] == [(b"x", opts)]


def test_subscribe_malformed():
    # no Topic Filter [MQTT-3.8.3-2]
    raises_exactly(ProtocolError, decode_subscribe5, b"\x00\x01\x00", 0, 3)
    for body in (b"", b"\x00", b"\x00\x01", b"\x00\x01\x00\x00\x01x", b"\x00\x01\x00\x00\x05x\x00",
                 b"\x00\x01\x05\x0b\x01", b"\x00\x01\x02\x11\x00\x00\x01x\x00"):
        raises_exactly(MalformedPacket, decode_subscribe5, body, 0, len(body))
    for body in (b"\x00\x01\x02\x0b\x00\x00\x01x\x00",
                 b"\x00\x01\x04\x0b\x01\x0b\x02\x00\x01x\x00"):
        raises_exactly(ProtocolError, decode_subscribe5, body, 0, len(body))  # 0, twice (3.8.2.1.2)


# ---- UNSUBSCRIBE (3.10) -------------------------------------------------------------------------

def test_unsubscribe():
    body = b"\x00\x09\x06\x26\x00\x01k\x00\x00\x00\x03a/b\x00\x01#"
    mid, props, filters = decode_unsubscribe5(body, 0, len(body))
    assert mid == 9 and props.user == [("k", "")] and filters == [b"a/b", b"#"]
    raises_exactly(ProtocolError, decode_unsubscribe5, b"\x00\x09\x00", 0, 3)  # [MQTT-3.10.3-2]
    for body in (b"\x00", b"\x00\x09", b"\x00\x09\x02\x0b\x01\x00\x01#", b"\x00\x09\x00\x00\x02#"):
        raises_exactly(MalformedPacket, decode_unsubscribe5, body, 0, len(body))


# ---- PUBACK, PUBREC, PUBREL, PUBCOMP (3.4 - 3.7) ------------------------------------------------

def test_ack_forms():
    # Remaining Length 2: reason 0; 3: no Property Length (3.4.2.1)
    assert decode_ack5(b"\xee\x00\x05", 1, 3) == (5, 0)
    assert decode_ack5(b"\x00\x05\x10", 0, 3) == (5, 0x10)
    assert decode_ack5(b"\x00\x05\x87\x00", 0, 4) == (5, 0x87)
    body = b"\x00\x05\x92\x0a\x1f\x00\x02no\x26\x00\x00\x00\x00"
    assert decode_ack5(body, 0, len(body)) == (5, 0x92)


def test_ack_malformed():
    for body in (b"", b"\x00", b"\x00\x05\x00\x01", b"\x00\x05\x00\x00\x00",
                 b"\x00\x05\x00\x05\x11\x00\x00\x00\x01", b"\x00\x05\x00\x02\x23\x00\x01"):
        raises_exactly(MalformedPacket, decode_ack5, body, 0, len(body))
    body = b"\x00\x05\x00\x08\x1f\x00\x01a\x1f\x00\x01b"
    raises_exactly(ProtocolError, decode_ack5, body, 0, len(body))  # Reason String twice


# ---- DISCONNECT (3.14) --------------------------------------------------------------------------

def test_disconnect_forms():
    reason, props = decode_disconnect5(b"", 0, 0)  # 3.14.2.1: no reason means 0
    assert reason == 0 and props.session_expiry_interval is None and props.user == []
    assert decode_disconnect5(b"\x04", 0, 1)[0] == 4
    body = b"\x00\x16\x11\x00\x00\x00\x3c\x1c\x00\x03srv\x1f\x00\x03bye\x26\x00\x00\x00\x00"
    reason, props = decode_disconnect5(body, 0, len(body))
    assert reason == 0 and props.session_expiry_interval == 60
    assert props.server_reference == "srv" and props.reason_string == "bye"
    assert props.user == [("", "")]


def test_disconnect_malformed():
    for body in (b"\x00\x01", b"\x00\x03\x23\x00\x01", b"\x00\x00\x00", b"\x00\x80"):
        raises_exactly(MalformedPacket, decode_disconnect5, body, 0, len(body))
    body = b"\x00\x0a\x11\x00\x00\x00\x01\x11\x00\x00\x00\x02"
    raises_exactly(ProtocolError, decode_disconnect5, body, 0, len(body))


# ---- writers ------------------------------------------------------------------------------------

def written(f, size, expect, *args):
    out = bytearray(b"\xee" * (size + 2))
    assert f(out, 1, *args) == 1 + size
    assert bytes(out) == b"\xee" + expect + b"\xee", bytes(out)
    assert len(expect) == size


def test_connack5():
    written(put_connack5, connack5_size(3), b"\x20\x06\x01\x00\x03\x22\x00\x0a",
            True, 0, b"\x22\x00\x0a")
    written(put_connack5, connack5_size(0), b"\x20\x03\x00\x87\x00", False, 0x87, b"")


def test_ack5_MQTT_3_4_2_1():
    written(put_ack5, ack5_size(0, 0), b"\x40\x02\x00\x07", 0x40, 7, 0, b"")
    written(put_ack5, ack5_size(0x10, 0), b"\x50\x03\x01\x00\x10", 0x50, 256, 0x10, b"")
    written(put_ack5, ack5_size(0x92, 4), b"\x70\x08\x00\x07\x92\x04\x1f\x00\x01x",
            0x70, 7, 0x92, b"\x1f\x00\x01x")
    written(put_ack5, ack5_size(0, 4), b"\x62\x08\xff\xff\x00\x04\x1f\x00\x01x",
            0x62, 0xFFFF, 0, b"\x1f\x00\x01x")


def test_suback5_unsuback5():
    written(put_suback5, suback5_size(3, 0), b"\x90\x06\x00\x01\x00\x00\x01\x87",
            1, [0, 1, 0x87], b"")
    written(put_suback5, suback5_size(3, 4), b"\x90\x0a\x00\x01\x04\x1f\x00\x01x\x00\x01\x87",
            1, [0, 1, 0x87], b"\x1f\x00\x01x")
    written(put_unsuback5, unsuback5_size(2, 0), b"\xb0\x05\x00\x02\x00\x00\x11", 2, [0, 0x11], b"")
    props = b"\x1f\x00\x7dx" + b"y" * 124  # a Remaining Length of two bytes
    written(put_unsuback5, unsuback5_size(1, 128),
            b"\xb0\x85\x01\x00\x02\x80\x01" + props + b"\x11", 2, [0x11], props)


def test_disconnect5():
    written(put_disconnect5, disconnect5_size(0, 0), b"\xe0\x00", 0, b"")
    written(put_disconnect5, disconnect5_size(0x8e, 0), b"\xe0\x01\x8e", 0x8E, b"")
    written(put_disconnect5, disconnect5_size(0x95, 4), b"\xe0\x06\x95\x04\x1f\x00\x01x",
            0x95, b"\x1f\x00\x01x")


SRC = b"XX" b"t/a" b"\x26\x00\x01k\x00\x01v" b"hi"  # topic 2:5, properties 5:12, payload 12:14


def test_publish5_props_len():
    assert publish5_props_len(7, 0, -1) == 7
    assert publish5_props_len(7, 200, 60) == 15
    assert publish5_props_len(0, 1, 0) == 7
    assert publish5_props_len(0, 268435455, -1) == 5


def test_publish5():
    written(put_publish5, publish5_size(0x30, 3, 7, 2),
            b"\x30\x0f\x00\x03t/a\x07\x26\x00\x01k\x00\x01vhi",
            0x30, 0, SRC, 2, 5, 5, 12, 14, 0, -1)
    written(put_publish5, publish5_size(0x33, 3, 15, 2),
            b"\x33\x19\x00\x03t/a\x01\x02\x0f\x0b\xc8\x01\x02\x00\x00\x00\x3c"
            b"\x26\x00\x01k\x00\x01vhi",
            0x33, 0x0102, SRC, 2, 5, 5, 12, 14, 200, 60)
    # no properties at all, and an expiry of 0 still sent
    written(put_publish5, publish5_size(0x34, 3, 0, 2), b"\x34\x0a\x00\x03t/a\x00\x09\x00hi",
            0x34, 9, SRC, 2, 5, 12, 12, 14, 0, -1)
    written(put_publish5, publish5_size(0x30, 3, 5, 0),
            b"\x30\x0b\x00\x03t/a\x05\x02\x00\x00\x00\x00", 0x30, 0, SRC, 2, 5, 12, 12, 12, 0, 0)
    big = b"XX" b"t/a" + b"p" * 200
    written(put_publish5, publish5_size(0x30, 3, 0, 200),
            b"\x30\xce\x01\x00\x03t/a\x00" + b"p" * 200, 0x30, 0, big, 2, 5, 5, 5, 205, 0, -1)


def test_publish5_allocates_nothing():
    if not MPY:
        raise SkipTest("heap_lock exists only on MicroPython")
    out = bytearray(64)
    src = bytearray(SRC)
    micropython.heap_lock()
    try:
        for _ in range(100):
            end = put_publish5(out, 0, 0x32, 0x0102, src, 2, 5, 5, 12, 14, 200, 60)
            size = publish5_size(0x32, 3, publish5_props_len(7, 200, 60), 2)
    finally:
        micropython.heap_unlock()
    assert end == size == 27
